"""Benchmark: K seeds of the MNIST-1D MLPs and CNN, vectorised vs one after another.

    python benchmarks/bench_ensemble.py [--ks 1,4,16,64] [--models mlp,mlp-small,cnn] [--epochs 15] [--repeats 1]
        [--device cpu|cuda] [--no-per-step]

Each (model, K, mode) runs in its own process with one torch thread, and
`train_seeds` is timed from the call to its return: run folders, checkpoints and
evaluation are included. Library imports are not: torch, and torch._dynamo (which
torch.optim imports on first use: 1.3 s here, once per process whatever K is), are
imported before the clock starts. The end-of-run metric plots are switched off in
both modes (they cost the same per run; both modes send them to runlab's drawing
workers, which `NoDrawing` replaces). Peak RSS is the process's, read from wait4.

With `--per-step` (default) each K also gets the training steps alone, ms per
member-step against hand-written loops one model after another: a hand-written
torch.func loop (stack_module_state + functional_call + vmap, the recipe of issue 8)
and runlab's stacked step. Target (issue 8): >= 4x at K=16 for the MLP on CPU.
Prints the table, writes benchmarks/results/bench_ensemble.json.

`--device cuda` trains on the GPU instead (peak memory: the GPU's, from
torch.cuda.max_memory_allocated; target >= 20x at K=64; bench_ensemble_cuda.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from common import ROOT, Row, check, child_env, pin_threads, python_bin, run_process, save, table

MODELS = {  # the quickstart MLP, a small one (less compute per step), the built-in CNN
    "mlp": {"name": "mlp", "hidden": [256, 128]},
    "mlp-small": {"name": "mlp", "hidden": [64, 32]},
    "cnn": {"name": "cnn", "channels": [16, 32], "kernel_size": 5, "hidden": 64},
}


class NoDrawing:
    """Stands in for runlab's drawing workers: no end-of-run plots, no matplotlib."""

    def submit(self, fn, *args) -> Future:
        done: Future = Future()
        done.set_result([])
        return done


def config(model: str, epochs: int, device: str = "cpu") -> dict:
    from runlab.config import fill_defaults

    return fill_defaults({
        "name": f"bench-{model}", "seed": 0,
        "data": {"name": "mnist1d", "root": str(ROOT / "data"), "batch_size": 128},
        "model": MODELS[model],
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "trainer": {"max_epochs": epochs, "device": device},
        "logging": {"console": False, "log_every_steps": 50},
    })


def child(model: str, k: int, vectorize: bool, epochs: int, runs: Path, device: str) -> None:
    """Train K seeds once; print the seconds `train_seeds` took (and the GPU's peak memory)."""
    pin_threads()
    import torch
    import torch._dynamo  # noqa: F401 - a library import (see the module doc), before the clock

    import runlab.background
    from runlab.ensemble.api import train_seeds

    runlab.background._executor = NoDrawing  # both modes send their plots there
    cfg = config(model, epochs, device)
    t0 = time.perf_counter()
    code = train_seeds(cfg, list(range(k)), runs, vectorize=vectorize)
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(code)
    gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    print(json.dumps({"seconds": seconds, "gpu_peak_mib": gpu_mib}))


def steps_child(model: str, k: int, steps: int = 60) -> None:
    """Training steps alone: ms per member-step of K copies of the model (forward,
    cross-entropy, backward, AdamW on random MNIST-1D batches) trained by hand-written
    loops one after another, by a hand-written torch.func loop, and by runlab's Stack
    (the step of `--seeds K`, stacked kernels or vmap). Prints JSON."""
    pin_threads()
    import copy

    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    from runlab.ensemble.stacked import Stack, StepModule
    from runlab.train.api import prepare

    first = prepare(config(model, 1))
    models = [first.model] + [prepare({**config(model, 1), "seed": s}, first.splits).model
                              for s in range(1, k)]
    x, y = first.splits.train
    batches = [torch.randint(0, len(x), (k, 128)) for _ in range(steps)]

    def sequential() -> None:
        for i, m in enumerate(models):
            opt = torch.optim.AdamW(m.parameters(), 1e-3)
            for idx in batches:
                loss = F.cross_entropy(m(x[idx[i]]), y[idx[i]])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.AdamW(params.values(), 1e-3)
    member = vmap(lambda p, b, xb, yb: F.cross_entropy(functional_call(base, (p, b), (xb,)), yb))

    def stacked() -> None:
        for idx in batches:
            loss = member(params, buffers, x[idx], y[idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    stack = Stack([StepModule(m, first.loss, True) for m in models])
    stack_opt = torch.optim.AdamW(stack.trained, 1e-3)

    def runlab() -> None:
        for idx in batches:
            loss = stack.terms(x[idx], y[idx])["loss"].sum()
            stack_opt.zero_grad(set_to_none=True)
            loss.backward()
            stack_opt.step()

    out = {"method": stack.method}
    for name, fn in (("sequential", sequential), ("torch.func", stacked), ("runlab", runlab)):
        fn()  # warm-up
        t0 = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t0) * 1000 / (steps * k)
    print(json.dumps(out))


def per_step(model: str, k: int) -> dict[str, float]:
    cmd = [python_bin(), __file__, "--steps", model, str(k)]
    proc = check(run_process(cmd, cwd=ROOT, env=child_env(), timeout_s=1800), f"steps {model} K={k}")
    return json.loads(proc.output.strip().splitlines()[-1])


def measure(model: str, k: int, vectorize: bool, epochs: int, device: str) -> tuple[float, float]:
    """(seconds in train_seeds, peak MiB: the process's RSS, or on CUDA the GPU's) of one child."""
    with tempfile.TemporaryDirectory() as runs:
        cmd = [python_bin(), __file__, "--child", model, str(k), str(int(vectorize)), str(epochs), runs, device]
        proc = check(run_process(cmd, cwd=ROOT, env=child_env(), timeout_s=1800),
                     f"{model} K={k} vectorize={vectorize}")
    out = json.loads(proc.output.strip().splitlines()[-1])
    return out["seconds"], out["gpu_peak_mib"] if device == "cuda" else proc.peak_rss_mib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="1,4,16,64")
    ap.add_argument("--models", default="mlp,mlp-small,cnn")
    ap.add_argument("--epochs", type=int, default=15, help="per seed (15: configs/quickstart.yaml)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per mode (alternating); the median is shown")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--per-step", action=argparse.BooleanOptionalAction, default=True,
                    help="also time training steps alone: hand-written loops, torch.func, runlab's Stack")
    args = ap.parse_args()
    rows, records = [], []
    for model in args.models.split(","):
        for k in (int(x) for x in args.ks.split(",")):
            times: dict[bool, list[float]] = {True: [], False: []}
            peaks: dict[bool, float] = {True: 0.0, False: 0.0}
            for r in range(args.repeats):  # alternating order: A B, B A, ...
                for vectorize in ((True, False) if r % 2 == 0 else (False, True)):
                    seconds, mib = measure(model, k, vectorize, args.epochs, args.device)
                    times[vectorize].append(seconds)
                    peaks[vectorize] = max(peaks[vectorize], mib)
            (vec_s, seq_s), (vec_mib, seq_mib) = map(statistics.median, times.values()), peaks.values()
            row = Row("ensemble", f"{model} K={k}: time for K seeds", vec_s, seq_s, "one after another")
            if model.startswith("mlp") and k == (16 if args.device == "cpu" else 64):
                need = 4 if args.device == "cpu" else 20
                row.target, row.passed = f">= {need}x faster", seq_s / vec_s >= need
            rows.append(row)
            if args.per_step and k > 1 and args.device == "cpu":
                raw = per_step(model, k)
                for name, label in (("torch.func", "hand-written torch.func"), ("runlab", f"runlab {raw['method']}")):
                    rows.append(Row("ensemble", f"{model} K={k}: ms per member-step, {label}",
                                    raw[name], raw["sequential"], "hand-written, one after another", unit="ms"))
            memory = "peak GPU memory" if args.device == "cuda" else "peak RSS"
            rows.append(Row("ensemble", f"{model} K={k}: {memory}", vec_mib, seq_mib,
                            "one after another", unit="MiB"))
            records.append({"model": model, "k": k, "vectorised_s": vec_s, "sequential_s": seq_s,
                            "speedup": seq_s / vec_s, "vectorised_peak_mib": vec_mib,
                            "sequential_peak_mib": seq_mib})
            print(f"{model} K={k}: vectorised {vec_s:.2f} s ({vec_mib:.0f} MiB), one after another "
                  f"{seq_s:.2f} s ({seq_mib:.0f} MiB): {seq_s / vec_s:.2f}x", flush=True)
    print(table(rows))
    name = "bench_ensemble" if args.device == "cpu" else f"bench_ensemble_{args.device}"
    print(f"wrote {save(name, rows, records=records, epochs=args.epochs, repeats=args.repeats, device=args.device)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, k, vec, epochs, runs, device = sys.argv[2:8]
        child(model, int(k), vec == "1", int(epochs), Path(runs), device)
    elif len(sys.argv) > 1 and sys.argv[1] == "--steps":
        steps_child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
