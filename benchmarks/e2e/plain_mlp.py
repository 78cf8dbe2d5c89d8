"""Plain PyTorch: the run of benchmarks/e2e/mlp.yaml written by hand, as a careful
researcher would (no runlab import).

    python benchmarks/e2e/plain_mlp.py --data data/mnist1d/mnist1d-n5000-s42-sh0.npz --out DIR

Same data split, model, optimiser, schedule and batch order as `runlab train`; logs
train loss/accuracy every 20 steps and epoch metrics to a long-format CSV, prints one
line per epoch, validates every epoch, saves last.pt every epoch and best.pt on a new
best val/loss (both atomically), and evaluates the test split at the end. With
RUNLAB_PROFILE_STARTUP=<launch time.time()> it prints the time of its first step, as
runlab does (benchmarks/bench_startup.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_EVERY = 20


def load(npz: Path, val_fraction: float = 0.1, split_seed: int = 0):
    """Train/val/test tensors, split exactly as runlab splits them."""
    d = np.load(npz)
    x = torch.as_tensor(d["x"], dtype=torch.float32).reshape(len(d["x"]), 1, -1)
    y = torch.as_tensor(d["y"], dtype=torch.long)
    xt = torch.as_tensor(d["x_test"], dtype=torch.float32).reshape(len(d["x_test"]), 1, -1)
    yt = torch.as_tensor(d["y_test"], dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    n_val = max(1, int(round(len(x) * val_fraction)))
    val, train = perm[:n_val], perm[n_val:].sort().values
    return (x[train], y[train]), (x[val], y[val]), (xt, yt)


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 512) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(x), bs):
        out = model(x[i:i + bs])
        loss += F.cross_entropy(out, y[i:i + bs], reduction="sum").item()
        correct += (out.argmax(-1) == y[i:i + bs]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="MNIST-1D .npz (runlab's cache)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    launched = float(os.environ.get("RUNLAB_PROFILE_STARTUP") or 0)

    (x, y), (xv, yv), (xt, yt) = load(args.data)
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(x.shape[-1], 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=2.0e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    (args.out / "checkpoints").mkdir(parents=True, exist_ok=True)
    f = open(args.out / "metrics.csv", "w")
    f.write("step,epoch,time,metric,value\n")
    t_start, step, best, bs = time.time(), 0, float("inf"), 128

    def log(metrics: dict[str, float], epoch: int) -> None:
        t = f"{time.time() - t_start:.3f}"
        f.write("".join(f"{step},{epoch},{t},{k},{v!r}\n" for k, v in metrics.items()))

    for epoch in range(args.epochs):
        t_epoch = time.monotonic()
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(x), generator=g)
        window, window_n = torch.zeros(2), 0  # (loss, acc) sums since the last log line
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
            if step == 1 and launched:
                print(f"first training step done {time.time() - launched:.3f} s after process start",
                      file=sys.stderr, flush=True)
            vals = torch.stack([loss.detach(), (out.argmax(-1) == yb).float().mean()])
            window.add_(vals, alpha=len(xb))
            total.add_(vals, alpha=len(xb))
            window_n, total_n = window_n + len(xb), total_n + len(xb)
            if step % LOG_EVERY == 0:
                loss_m, acc_m = (window / window_n).tolist()
                log({"train/loss": loss_m, "train/acc": acc_m, "lr": opt.param_groups[0]["lr"]}, epoch)
                window.zero_()
                window_n = 0
        val_loss, val_acc = evaluate(model, xv, yv)
        loss_m, acc_m = (total / total_n).tolist()
        log({"train/loss": loss_m, "train/acc": acc_m, "val/loss": val_loss, "val/acc": val_acc,
             "epoch": float(epoch + 1)}, epoch + 1)
        f.flush()
        sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}  train/loss {loss_m:.4f}  val/loss {val_loss:.4f}  "
              f"val/acc {val_acc:.4f}  {time.monotonic() - t_epoch:.1f}s", flush=True)
        state = {"epoch": epoch + 1, "step": step, "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
        if val_loss < best:
            best = val_loss
            save_atomic(state, args.out / "checkpoints" / "best.pt")
        save_atomic(state, args.out / "checkpoints" / "last.pt")
    test_loss, test_acc = evaluate(model, xt, yt)
    log({"test/loss": test_loss, "test/acc": test_acc}, args.epochs)
    f.close()
    print(f"done: val/acc {val_acc:.4f}, test/acc {test_acc:.4f}")


if __name__ == "__main__":
    main()
