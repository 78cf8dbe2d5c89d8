"""Data path: runlab's in-memory loader against a DataLoader over a TensorDataset.

    python benchmarks/bench_data.py [--quick] [--repeats N]

Time to draw one shuffled epoch of batches (no model), one thread, after a warm-up
epoch, interleaved, medians. Two datasets: MNIST-1D's train split (3,600 x 40, batch
128, what the other benchmarks train on) and an MNIST-sized one (60,000 x 784, batch
256). runlab's `data.loader: auto` picks the in-memory path for both.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import Row, interleave, pin_threads, ratio_row, save, table


def epoch_time(batches) -> float:
    t = time.perf_counter()
    for _ in batches():
        pass
    return time.perf_counter() - t


def run(quick: bool = False, repeats: int | None = None) -> list[Row]:
    from runlab.data.loader import MemoryLoader

    pin_threads()
    repeats = repeats or (5 if quick else 15)
    rows = []
    for name, (n, dim, bs) in {"MNIST-1D": (3_600, 40, 128), "60k x 784": (60_000, 784, 256)}.items():
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(n, dim, generator=g), torch.randint(0, 10, (n,), generator=g)
        ours = MemoryLoader(x, y, bs, shuffle=True, seed=0)
        ref = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs,
                                          shuffle=True, generator=torch.Generator().manual_seed(0))
        s = interleave({"runlab": lambda o=ours: epoch_time(lambda: o.epoch(0)),
                        "dataloader": lambda r=ref: epoch_time(lambda: r)}, repeats)
        row = ratio_row("data", f"one shuffled epoch, {name} ({-(-n // bs)} batches of {bs})",
                        s["runlab"], s["dataloader"], "DataLoader(TensorDataset)", unit="ms",
                        scale=1e3)
        row.target, row.passed = "< 1", row.ratio < 1
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeats", type=int)
    args = ap.parse_args()
    rows = run(args.quick, args.repeats)
    print(table(rows))
    save("data", rows)


if __name__ == "__main__":
    main()
