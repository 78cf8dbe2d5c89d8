"""DataLoader path: runlab's `TorchLoader` against a hand-written DataLoader loop doing the
same work.

    python benchmarks/bench_dataloader.py [--quick] [--repeats N] [--workers W ...]

Both sides read a lazy CIFAR-10-shaped dataset (`synthetic_images`, lazy: each sample made
on request in the worker), collate, augment every batch in the workers (random crop with
padding 4, horizontal flip, normalize: the same runlab transforms, seeded per batch on
both sides) and train the same small CNN (same initial weights) with Adam, one thread per
process. runlab's side is `make_loader(..., kind="dataloader")`, as the Trainer builds it
for data over `data.memory_limit_mb` (its workers persist across epochs); the hand-written
side is `DataLoader(dataset, batch_size, shuffle=True, num_workers=W, collate_fn=...,
persistent_workers=W > 0)`, the same worker lifetime. Epochs alternate A B B A; the first
is warm-up. Figure: median epoch time / steps per epoch; the ratio's spread is the
interquartile range of the per-epoch-pair ratios. Target: runlab / hand-written <= 1.05
per step. A second row per worker count gives the CPU time per step (main process plus
its workers, from /proc), which a neighbour's load moves far less than wall time; the
JSON keeps every sample, the median of the paired ratios and the ratio of the minima.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
import torch.nn.functional as F
from common import interleave, pin_threads, ratio_row, save, table

TARGET = 1.05
SCHEDSTAT = os.path.exists("/proc/self/schedstat")
AUGMENT = [{"name": "random_crop", "padding": 4}, {"name": "horizontal_flip"},
           {"name": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}]


class AugmentingCollate:
    """The hand-written side's collate_fn: stack, then augment with a per-batch generator
    (a module-level class so DataLoader workers can pickle it)."""

    def __init__(self, steps):
        self.steps, self.calls = steps, 0

    def __call__(self, samples):
        x, y = torch.utils.data.default_collate(samples)
        self.calls += 1
        g = torch.Generator().manual_seed(self.calls)
        for step in self.steps:
            x = step(x, g)
        return x, y


def run(quick: bool = False, repeats: int | None = None, workers: tuple[int, ...] = (0, 2)) -> list:
    return [row for w in workers for row in run_one(quick, repeats, w)]


def run_one(quick: bool, repeats: int | None, workers: int) -> list:
    from runlab.config import fill_defaults
    from runlab.data.base import DatasetMeta
    from runlab.data.loader import make_loader
    from runlab.data.synthetic import GeneratedImages
    from runlab.data.transforms import Pipeline, build_transforms
    from runlab.train.build import build_model_and_loss

    pin_threads()
    repeats = repeats or (3 if quick else 7)
    n, bs = (1024, 64) if quick else (2048, 64)
    dataset = GeneratedImages(n, (3, 32, 32), 10, 0.5, random_state=0)
    steps = build_transforms(AUGMENT, "bench")
    cpu = torch.device("cpu")
    ours = make_loader(dataset, bs, kind="dataloader", shuffle=True, seed=0, device=cpu,
                       num_workers=workers, transform=Pipeline(AUGMENT, seed=0))
    ref = torch.utils.data.DataLoader(dataset, batch_size=bs, shuffle=True, num_workers=workers,
                                      collate_fn=AugmentingCollate(steps),
                                      persistent_workers=workers > 0,
                                      generator=torch.Generator().manual_seed(0))
    cfg = fill_defaults({"data": {"name": "synthetic_images"},
                         "model": {"name": "cnn", "channels": [16, 32], "kernel_size": 3, "hidden": 64}})
    built = build_model_and_loss(cfg, DatasetMeta("synthetic_images", (3, 32, 32), 10))
    # a copy each: the built model against its copy read 1.05 with the same loop on both sides
    models = {k: copy.deepcopy(built.model) for k in ("runlab", "hand")}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    epochs = {"runlab": 0, "hand": 0}

    data_loaders = {"runlab": lambda: ours._loader, "hand": lambda: ref}  # whose workers to time
    cpu_s: dict[str, list[float]] = {"runlab": [], "hand": []}

    def train_epoch(name: str, batches) -> float:
        model, opt = models[name], opts[name]
        c, t = cpu_seconds(data_loaders[name]()), time.perf_counter()
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        wall = time.perf_counter() - t
        cpu_s[name].append((cpu_seconds(data_loaders[name]()) - c) / len(ours))
        epochs[name] += 1
        return wall / len(ours)

    s = interleave({"runlab": lambda: train_epoch("runlab", ours.epoch(epochs["runlab"])),
                    "hand": lambda: train_epoch("hand", ref)}, repeats)
    what = (f"lazy 3x32x32 dataset, batch {bs}, {workers} workers, crop+flip+normalize "
            f"{'in the workers' if workers else 'in-process'}")
    rows = [ratio_row("dataloader", f"one training step (wall), {what}", s["runlab"], s["hand"],
                      "hand-written DataLoader loop", unit="ms", scale=1e3, max_ratio=TARGET)]
    if SCHEDSTAT:  # CPU time barely moves with the machine's load: the cross-check
        rows.append(ratio_row("dataloader", f"CPU per step, main process + workers, {what}",
                              *(cpu_s[k][-repeats:] for k in ("runlab", "hand")), "same",
                              unit="ms", scale=1e3))
    samples = ((s["runlab"], s["hand"]), (cpu_s["runlab"][-repeats:], cpu_s["hand"][-repeats:]))
    for row, (a, b) in zip(rows, samples):
        row.extra.update({"min_ratio": min(a) / min(b),  # load only adds time: the quiet-machine estimate
                          "runlab_s_per_step": a, "reference_s_per_step": b})
    return rows


def cpu_seconds(loader: torch.utils.data.DataLoader | None) -> float:
    """CPU seconds of this process and of `loader`'s live (persistent) workers, from the
    kernel's per-process run time (Linux `/proc/<pid>/schedstat`, in ns)."""
    it = getattr(loader, "_iterator", None)
    pids = [w.pid for w in getattr(it, "_workers", [])]
    ns = 0
    for pid in pids if SCHEDSTAT else []:
        with open(f"/proc/{pid}/schedstat") as f:
            ns += int(f.read().split()[0])
    return time.process_time() + ns / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller dataset, fewer repeats")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    rows = run(args.quick, args.repeats, tuple(args.workers))
    print(table(rows))
    save("dataloader", rows)


if __name__ == "__main__":
    main()
