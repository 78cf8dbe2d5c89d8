"""Per-step overhead: runlab's Trainer against a hand-written loop doing identical work.

    python benchmarks/bench_step.py [--quick] [--repeats N] [--epochs E] [--models mlp ...]

Both sides train the same model (same initial weights) on MNIST-1D with AdamW and a
cosine schedule, batch 128, on one thread: per step forward, backward, optimiser step,
loss and accuracy kept on the device, their window means logged to CSV every 20 steps;
per epoch train means, validation (loss, accuracy) and a flushed CSV. The Trainer is
built the documented way (`runlab.train.api.prepare` + `Trainer`, CSVWriter).
`mlp-own-step` trains the MLP through a model-defined `training_step` doing the same work.

The two loops run in lockstep, alternating epoch by epoch in A B B A order, so a burst
of load from a neighbour hits both alike; the first epoch is warm-up. Each time is the median epoch
time over all repeats divided by the steps per epoch; the target is judged on the median
(and IQR) of the per-epoch paired ratios, which a neighbour's burst moves least. Both sides
train a model built by `prepare` (neither a deepcopy: see `hand_epochs`). Two clocks: wall time, and the CPU time of the training thread (with
one torch thread every op runs inline in it), which does not count time spent waiting
for a core on a shared machine. Target: runlab / hand-written <= 1.03.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import ROOT, Row, pin_threads, ratio_row, save, table

TARGET = 1.03
WARMUP_EPOCHS = 1
LOG_EVERY = 20
MODELS = {"mlp": {"name": "mlp", "hidden": [256, 128]},
          "cnn": {"name": "cnn", "channels": [32, 64], "hidden": 128},
          # the same MLP, trained through its own `training_step` doing the default step's work
          "mlp-own-step": {"name": "bench_mlp_own_step", "hidden": [256, 128]}}


def register_own_step_model() -> None:
    """`bench_mlp_own_step`: runlab's MLP with a `training_step` (runlab.train.step) that
    returns the loss and accuracy of a batch; the framework backpropagates and steps."""
    from runlab.models.classifiers import MLP
    from runlab.registry import MODELS as REGISTRY

    if "bench_mlp_own_step" in REGISTRY:
        return

    @REGISTRY.register("bench_mlp_own_step")
    class OwnStepMLP(MLP):
        def training_step(self, batch, ctx):
            x, y = batch
            out = self(x)
            return {"loss": F.cross_entropy(out, y), "acc": (out.argmax(-1) == y).float().mean()}


def make_config(model: dict[str, Any], epochs: int) -> dict[str, Any]:
    from runlab.config import fill_defaults

    return fill_defaults({
        "name": "bench-step", "seed": 0,
        "data": {"name": "mnist1d", "root": str(ROOT / "data"), "batch_size": 128},
        "model": model,
        "optimizer": {"name": "adamw", "lr": 2.0e-3, "weight_decay": 0.01},
        "scheduler": {"name": "cosine"},
        "trainer": {"max_epochs": epochs, "device": "cpu", "test": False},
        "logging": {"log_every_steps": LOG_EVERY, "console": False},
    })


def clocks() -> tuple[float, float]:
    """(wall, CPU time of this thread) in seconds."""
    return time.perf_counter(), time.thread_time()


def hand_epochs(cfg: dict[str, Any], tmp: Path) -> Iterator[None]:
    """The loop a careful researcher writes, one epoch per `next()`: same data order,
    same metrics, same CSV rows as the Trainer."""
    from runlab.train.api import prepare

    p = prepare(cfg)  # identical data splits and initial weights, built as the Trainer's are
    # (not a deepcopy: a copied model's tensors sit elsewhere in memory, which alone moved an
    # A/A comparison of the same loop by ~5 % in bench_dataloader.py)
    model, (x, y), (xv, yv) = p.model, p.splits.train, p.splits.val
    epochs, bs, seed = cfg["trainer"]["max_epochs"], cfg["data"]["batch_size"], cfg["seed"]
    opt = torch.optim.AdamW(model.parameters(), lr=2.0e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    f = open(tmp / "hand.csv", "w")
    f.write("step,epoch,time,metric,value\n")
    t_start, step = time.time(), 0

    def write(metrics: dict[str, float], epoch: int) -> None:
        t = f"{time.time() - t_start:.3f}"
        f.write("".join(f"{step},{epoch},{t},{k},{v!r}\n" for k, v in metrics.items()))

    yield  # built; the first next() after this one trains epoch 0
    for epoch in range(epochs):
        model.train()
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(len(x), generator=g)
        window, window_n = torch.zeros(2), 0  # (loss, acc) sums, on the device
        total, total_n = torch.zeros(2), 0
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            vals = torch.stack([loss.detach(), (out.argmax(-1) == yb).float().mean()])
            window.add_(vals, alpha=len(xb))
            total.add_(vals, alpha=len(xb))
            window_n, total_n = window_n + len(xb), total_n + len(xb)
            if step % LOG_EVERY == 0:
                loss_m, acc_m = (window / window_n).tolist()
                write({"train/loss": loss_m, "train/acc": acc_m, "lr": opt.param_groups[0]["lr"]}, epoch)
                window.zero_()
                window_n = 0
        model.eval()
        with torch.no_grad():
            out = model(xv)  # the validation split is one eval batch (<= 512)
            val = {"val/loss": F.cross_entropy(out, yv).item(),
                   "val/acc": (out.argmax(-1) == yv).float().mean().item()}
        if window_n:
            loss_m, acc_m = (window / window_n).tolist()
            write({"train/loss": loss_m, "train/acc": acc_m, "lr": opt.param_groups[0]["lr"]}, epoch)
        loss_m, acc_m = (total / total_n).tolist()
        write({"train/loss_epoch": loss_m, "train/acc_epoch": acc_m, **val,
               "epoch": float(epoch + 1)}, epoch + 1)
        sched.step()
        f.flush()
        yield
    f.close()


def lockstep(cfg: dict[str, Any], tmp: Path) -> tuple[list[tuple[float, float]], ...]:
    """Train with runlab's Trainer (built as `runlab train` builds it) and by hand,
    epoch by epoch in A B B A order, so both see the same machine load and neither is
    always first. Returns the per-step (wall, CPU) seconds of every epoch of each,
    the warm-up epoch left out.

    The Trainer advances one epoch per `fit()` call (`max_epochs` raised by one), which
    adds its fit start/end events and a log flush to every runlab epoch: if anything,
    this counts against runlab."""
    from runlab.logging.csv import CSVWriter
    from runlab.train.api import prepare
    from runlab.train.trainer import Trainer

    hand = hand_epochs(cfg, tmp)
    next(hand)
    p = prepare(cfg)
    csv = CSVWriter(tmp / "runlab.csv")
    trainer = Trainer(cfg, p.splits, p.model, p.loss, p.optimizers, p.device, csv,
                      **p.trainer_kwargs(), callbacks=p.callbacks, csv=csv)
    trainer.max_epochs = 0

    def ours() -> None:
        trainer.max_epochs += 1
        trainer.fit()

    def ref() -> None:
        next(hand)

    steps = len(trainer.train_loader)
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "ref": []}
    for epoch in range(cfg["trainer"]["max_epochs"]):
        order = (("ours", ours), ("ref", ref)) if epoch % 2 == 0 else (("ref", ref), ("ours", ours))
        for side, train_one_epoch in order:
            a = clocks()
            train_one_epoch()
            b = clocks()
            times[side].append(((b[0] - a[0]) / steps, (b[1] - a[1]) / steps))
    csv.close()
    return times["ours"][WARMUP_EPOCHS:], times["ref"][WARMUP_EPOCHS:]


def run(quick: bool = False, repeats: int | None = None, epochs: int | None = None,
        models: list[str] | None = None) -> list[Row]:
    pin_threads()
    register_own_step_model()
    repeats = repeats or (2 if quick else 5)
    epochs = epochs or (8 if quick else 20)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, model in ((n, MODELS[n]) for n in models or MODELS):
            cfg = make_config(model, WARMUP_EPOCHS + epochs)
            ours, ref = [], []
            for _ in range(repeats):
                a, b = lockstep(cfg, tmp)
                ours += a
                ref += b
            for i, clock in enumerate(("wall", "CPU")):
                a_i, b_i = [v[i] for v in ours], [v[i] for v in ref]
                row = ratio_row("step", f"per step, MNIST-1D {name.upper()}, {clock} time",
                                a_i, b_i, "hand-written", unit="ms", max_ratio=TARGET, scale=1e3)
                row.extra.update({"samples_ms": {"runlab": [round(v * 1e3, 4) for v in a_i],
                                                 "hand": [round(v * 1e3, 4) for v in b_i]},
                                  "repeats": repeats, "epochs_per_repeat": epochs,
                                  "steps_per_epoch": 29})
                rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and epochs")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--epochs", type=int, help="timed epochs per repeat (after 1 warm-up)")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all")
    args = ap.parse_args()
    rows = run(args.quick, args.repeats, args.epochs, args.models)
    print(table(rows))
    save("step", rows)


if __name__ == "__main__":
    main()
