"""Fault injection: kill, pause, race and feed bad files to real `runlab` processes, and check
that every run stays consistent (issue 16). Each case is repeated `--tries` times.

    python benchmarks/fault_injection.py [--tries 3] [--cases a,b] [--keep DIR]

Prints a table (case, tries, held) and writes it to benchmarks/results/fault_injection.json.
A try "holds" when every check of the case passes; the first failed check of a case is
printed under the table. The disk-full case mounts a small tmpfs (needs root); where that
is impossible it is reported as skipped, not held.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

TINY = {  # trains in seconds; the long variant runs until stopped
    "name": "fi", "seed": 0,
    "data": {"name": "moons", "n_samples": 64, "batch_size": 16},
    "model": {"name": "mlp", "hidden": [8]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "trainer": {"max_epochs": 3, "device": "cpu"},
    "logging": {"log_every_steps": 1, "console": False},
}
LONG = {**TINY, "data": {**TINY["data"], "n_samples": 4000},
        "trainer": {"max_epochs": 500, "device": "cpu"},
        "logging": {"log_every_steps": 10, "console": False}}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
ENV.pop("RUNLAB_RUNS_DIR", None)


class Failed(Exception):
    """A check of the case did not hold."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


def cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runlab", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runlab", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def write_config(work: Path, cfg: dict, name: str = "c.yaml") -> Path:
    path = work / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def only_run(runs: Path) -> Path:
    found = [p.parent for p in runs.rglob("run.json")]
    check(len(found) == 1, f"expected one run folder under {runs}, found {len(found)}")
    return found[0]


def info(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def rows(run_dir: Path) -> int:
    try:
        return (run_dir / "metrics.csv").read_text().count("\n") - 1
    except OSError:
        return 0


def wait_rows(runs: Path, at_least: int, proc: subprocess.Popen, timeout: float = 180) -> Path:
    """The run folder once its metrics.csv has `at_least` more rows than now (training)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = [p.parent for p in runs.rglob("metrics.csv")]
        if found and rows(found[0]) >= at_least:
            return found[0]
        if proc.poll() is not None:
            raise Failed(f"training ended early with {proc.returncode}: "
                         f"{proc.stderr.read()[-300:] if proc.stderr else ''}")
        time.sleep(0.1)
    raise Failed("training made no progress")


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        where = subprocess.run(["ps", "-o", "pid,stat,wchan:24,cmd", "--ppid", str(proc.pid),
                                "-p", str(proc.pid)], capture_output=True, text=True).stdout
        proc.kill()
        proc.wait()
        tail = proc.stderr.read()[-600:] if proc.stderr else ""
        raise Failed(f"process did not stop within {timeout} s after {sig!r}:\n{where}"
                     f"stderr: {tail}") from None


def no_duplicate_rows(run_dir: Path) -> None:
    lines = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    keys = [tuple(line.split(",")[i] for i in (0, 3)) for line in lines]
    check(len(keys) == len(set(keys)), f"metrics.csv has {len(keys) - len(set(keys))} "
                                       "duplicated (step, metric) rows")


def interrupted_run(work: Path) -> Path:
    """A finished tiny run marked `interrupted` (resume then trains from its checkpoint)."""
    runs = work / "runs"
    done = cli("train", write_config(work, TINY), "--runs-dir", runs)
    check(done.returncode == 0, f"train failed: {done.stderr[-300:]}")
    run_dir = only_run(runs)
    (run_dir / "run.json").write_text(json.dumps({**info(run_dir), "status": "interrupted"}))
    return run_dir


# ---------------------------------------------------------------- cases

def concurrent_resume(work: Path, i: int) -> None:
    runs = work / "runs"
    first = start("train", write_config(work, LONG), "--runs-dir", runs)
    run_dir = wait_rows(runs, 20, first)
    check(stop(first) == 130, "first training not interrupted cleanly")
    a, b = start("runs", "resume", run_dir), start("runs", "resume", run_dir)
    t0 = time.time()
    while a.poll() is None and b.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    refused, other = (a, b) if a.poll() is not None else (b, a)
    check(refused.returncode == 2, f"a second resume exited {refused.returncode}, not 2")
    check("in use by another process" in refused.stderr.read(), "no 'in use' message")
    before = rows(run_dir)
    wait_rows(runs, before + 20, other)
    check(stop(other) == 130, "the resume that trains did not stop cleanly")
    no_duplicate_rows(run_dir)


def paused_run(work: Path, i: int) -> None:
    runs = work / "runs"
    proc = start("train", write_config(work, LONG), "--runs-dir", runs)
    run_dir = wait_rows(runs, 20, proc)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)
        stale = {**info(run_dir), "heartbeat": time.time() - 3600}  # paused for an hour
        (run_dir / "run.json").write_text(json.dumps(stale))
        listed = json.loads(cli("runs", "list", runs, "--json").stdout)
        check([r["status"] for r in listed] == ["running"], f"listed as {listed[0]['status']}")
        cli("runs", "clean", "-s", "crashed", "--yes", "--runs-dir", runs)
        check(run_dir.exists(), "`runs clean -s crashed` deleted a paused run")
        check(cli("runs", "resume", run_dir).returncode == 2, "a paused run was resumed")
        check(cli("runs", "delete", run_dir, "--yes", "--runs-dir", runs).returncode == 2,
              "`runs delete` of a paused run did not exit 2")
        check(run_dir.exists(), "a paused run was deleted")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    check(stop(proc) == 130, "the paused run did not stop cleanly after SIGCONT")
    check(info(run_dir)["status"] == "interrupted", "run.json not `interrupted`")


def created_delete(work: Path, i: int) -> None:
    runs = work / "runs"
    code = ("import sys, time; from pathlib import Path; from runlab.train.api import "
            "create_run_dir; from runlab.config import fill_defaults; "
            f"cfg = fill_defaults({TINY!r}); r = create_run_dir(cfg, Path(sys.argv[1]), None, {{}}); "
            "print(r.dir, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(runs)], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    try:
        run_dir = Path(proc.stdout.readline().strip())
        check(info(run_dir)["status"] == "created", "not in `created` state")
        result = cli("runs", "delete", run_dir, "--yes", "--runs-dir", runs)
        check(result.returncode == 2 and run_dir.exists(), "a `created` run was deleted")
    finally:
        proc.kill()
        proc.wait()


def parallel_ids(work: Path, i: int) -> None:
    code = ("import sys; from pathlib import Path; from runlab.runs.folder import make_run_folder; "
            "[make_run_folder(Path(sys.argv[1]), 'same') for _ in range(200)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(work / "ids")], env=ENV)
             for _ in range(4)]
    check(all(p.wait(120) == 0 for p in procs), "a folder-making process failed")
    check(len(list((work / "ids").iterdir())) == 800, "4 x 200 folders are not 800 folders")


def seeds_300(work: Path, i: int) -> None:
    runs = work / "runs"
    cfg = {**TINY, "trainer": {"max_epochs": 1, "device": "cpu"}}
    result = cli("train", write_config(work, cfg), "--seeds", "300", "--runs-dir", runs,
                 timeout=900)
    check(result.returncode == 0, f"--seeds 300 failed: {result.stderr[-300:]}")
    seeds = sorted(info(p.parent)["seed"] for p in runs.rglob("run.json"))
    check(seeds == list(range(300)), f"{len(seeds)} run folders for 300 seeds")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))


def malformed_runs(work: Path, i: int) -> None:
    runs = work / "runs"
    done = cli("train", write_config(work, TINY), "--runs-dir", runs)
    check(done.returncode == 0, "the good run failed")
    good = only_run(runs)
    damage = {"list": ("run.json", "[1, 2]"), "types": ("run.json", '{"summary": [1]}'),
              "truncated": ("run.json", '{"id": "x", "sta'), "yaml": ("config.yaml", "a: [1"),
              "bomb": ("config.yaml", BOMB),
              "rows": ("metrics.csv", "step,epoch,time,metric,value\n1,1,0.1,val/loss,abc\n")}
    for name, (file, text) in damage.items():
        bad = runs / "manual" / f"bad-{name}"
        shutil.copytree(good, bad)
        (bad / file).write_text(text)
    (runs / "manual" / "run.json").write_text('{"status": "failed"}')  # a stray one
    commands = [("runs", "list", runs), ("runs", "list", runs, "--json"),
                ("analyze", runs, "-m", "val/loss", "-f", "json"),
                ("report", runs, "-o", work / "new" / "dir" / "r.html")]
    commands += [("runs", "show", p, "--runs-dir", runs) for p in (runs / "manual").iterdir()
                 if p.is_dir()]
    for args in commands:
        result = cli(*args)
        check(result.returncode == 0 and "Traceback" not in result.stderr,
              f"`runlab {' '.join(map(str, args[:2]))}` exited {result.returncode}: "
              f"{result.stderr[-200:]}")
    check((work / "new" / "dir" / "r.html").is_file(), "report not written")
    cli("runs", "clean", "--yes", "--runs-dir", runs)
    check(good.exists(), "`runs clean` deleted a completed run (stray run.json)")


BAD_CONFIGS = {
    "string-bool": {"trainer": {"compile": "false"}}, "eval-bs": {"data": {"eval_batch_size": -5}},
    "log-0": {"logging": {"log_every_steps": 0}}, "wandb-typo": {"logging": {"wandb": {"enabeld": True}}},
    "seed-float": {"seed": 1e23}, "long-name": {"name": "n" * 300},
    "epochs-str": {"trainer": {"max_epochs": "ten"}}, "bad-device": {"trainer": {"device": "gpu"}},
    "fractions": {"data": {"val_fraction": 0.6, "test_fraction": 0.5}},
    "unknown-top": {"trainr": {}}, "es-mode": {"trainer": {"early_stopping": {"mode": "up"}}},
    "workers": {"data": {"num_workers": -1}}, "plugins": {"plugins": "x.py"},
}


def bad_configs(work: Path, i: int) -> None:
    from typer.testing import CliRunner

    from runlab.cli import app

    files = []
    for name, over in BAD_CONFIGS.items():
        cfg = json.loads(json.dumps(TINY))
        for k, v in over.items():
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
        files.append(write_config(work, cfg, f"{name}.yaml"))
    for name, text in {"yaml": "trainer: {max_epochs: 3\n", "bomb": BOMB}.items():
        (work / f"{name}.yaml").write_text(text)
        files.append(work / f"{name}.yaml")
    for path in files:
        result = CliRunner().invoke(app, ["train", str(path), "--runs-dir", str(work / "runs")])
        check(result.exit_code == 2, f"{path.name}: exit {result.exit_code}, not 2")
        check(not (work / "runs").exists(), f"{path.name}: a run folder was created")


def disk_full(work: Path, i: int) -> None:
    disk = work / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    if not mounted:
        raise Skipped("cannot mount a tmpfs (needs root)")
    try:
        (disk / "fill").write_bytes(b"\0" * (1_700_000 + 20_000 * i))
        cfg = {**TINY, "data": {**TINY["data"], "n_samples": 2000, "batch_size": 8},
               "trainer": {"max_epochs": 60, "device": "cpu"}}
        result = cli("train", write_config(work, cfg), "--runs-dir", disk / "runs")
        run_dir = only_run(disk / "runs")
        rec = info(run_dir)
        check(result.returncode == 1 and rec["status"] == "failed", f"status {rec['status']}")
        message = (rec["error"] or {}).get("message", "")
        check("No space left" in message, f"error not recorded: {message[:200]!r}")
        check(not [p for p in run_dir.rglob("*.tmp")], "a temp file was left behind")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


class Skipped(Exception):
    """The case cannot run here."""


def bad_last_pt(work: Path, i: int) -> None:
    run_dir = interrupted_run(work)
    last = run_dir / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes([b"", b"garbage", data[: len(data) // 2]][i % 3])
    result = cli("runs", "resume", run_dir)
    check(result.returncode == 0 and "Traceback" not in result.stderr, "resume failed")
    check("is unusable" in result.stderr and "best.pt" in result.stderr, "no fallback message")
    check(info(run_dir)["status"] == "completed", "not completed")


def short_metrics(work: Path, i: int) -> None:
    run_dir = interrupted_run(work)
    (run_dir / "metrics.csv").write_text("step,epoch,time,metric,value\n")
    result = cli("runs", "resume", run_dir)
    check(result.returncode == 0 and "is shorter" in result.stderr, "lost rows not reported")


def no_checkpoint(work: Path, i: int) -> None:
    run_dir = interrupted_run(work)
    shutil.rmtree(run_dir / "checkpoints")
    result = cli("runs", "resume", run_dir)
    check(result.returncode == 0 and "restarts from scratch" in result.stderr,
          "restart from scratch not announced")


def head_pipe(work: Path, i: int) -> None:
    cfg = {**TINY, "logging": {"log_every_steps": 1, "console": True}}
    runs = work / "runs"
    pipe = subprocess.run(f"'{sys.executable}' -m runlab train '{write_config(work, cfg)}' "
                          f"--runs-dir '{runs}' | head -1; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", env=ENV, capture_output=True,
                          text=True, timeout=300)
    run_dir = only_run(runs)
    check(pipe.returncode == 0, f"runlab exited {pipe.returncode} under `| head -1`")
    check(info(run_dir)["status"] == "completed", "run not completed")
    check("completed" in (run_dir / "stdout.log").read_text(), "stdout.log lost the end")


def markup_command(work: Path, i: int) -> None:
    run_dir = interrupted_run(work)
    rec = info(run_dir)
    (run_dir / "run.json").write_text(json.dumps({**rec, "command": ["runlab", "x[/]", "[red]"]}))
    result = cli("runs", "show", run_dir)
    check(result.returncode == 0 and "x[/]" in result.stdout, "`runs show` failed on [/]")


def analyze_json(work: Path, i: int) -> None:
    runs = work / "runs"
    check(cli("train", write_config(work, TINY), "--runs-dir", runs).returncode == 0, "train")
    result = cli("analyze", runs, "-m", "val/loss", "-f", "json")  # one run: std is NaN

    def refuse(name: str) -> None:
        raise Failed(f"analyze -f json wrote {name}")

    json.loads(result.stdout, parse_constant=refuse)


def double_ctrl_c(work: Path, i: int) -> None:
    runs = work / "runs"
    proc = start("train", write_config(work, {**LONG, "diagnostics": []}), "--runs-dir", runs)
    run_dir = wait_rows(runs, 10 + 7 * i, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    code = stop(proc, signal.SIGINT, timeout=60)
    check(code in (130, -2), f"exit {code}")
    check(info(run_dir)["status"] in ("interrupted", "failed"), "run.json still `running`")


def launcher_kill(work: Path, i: int) -> None:
    runs = work / "runs"
    proc = start("train", write_config(work, LONG), "--runs-dir", runs, "--nproc", "2")
    wait_rows(runs, 20, proc, timeout=300)
    ranks = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                           text=True).stdout.split()
    check(len(ranks) == 2, f"found {len(ranks)} ranks")
    proc.kill()
    proc.wait()
    t0 = time.time()
    while time.time() - t0 < 60:
        alive = [r for r in ranks if _alive(int(r))]
        if not alive:
            return
        time.sleep(0.2)
    for r in ranks:
        if _alive(int(r)):
            os.kill(int(r), signal.SIGKILL)
    raise Failed("ranks still running 60 s after the launcher was killed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


CASES: dict[str, Callable[[Path, int], None]] = {
    "concurrent resume (2 at once)": concurrent_resume,
    "SIGSTOP'd run: list/clean/resume/delete": paused_run,
    "delete a `created` run": created_delete,
    "ids: 4 processes x 200 folders, one name": parallel_ids,
    "--seeds 300 -> 300 folders": seeds_300,
    "malformed runs + stray run.json": malformed_runs,
    f"bad configs ({len(BAD_CONFIGS) + 2} files) exit 2": bad_configs,
    "disk full (2 MB tmpfs)": disk_full,
    "bad last.pt (0 B / garbage / cut)": bad_last_pt,
    "metrics.csv shorter than checkpoint": short_metrics,
    "no checkpoint: restart announced": no_checkpoint,
    "`| head -1` on the console": head_pipe,
    "`[/]` in the recorded command": markup_command,
    "analyze -f json: no NaN": analyze_json,
    "second Ctrl-C 20 ms after the first": double_ctrl_c,
    "SIGKILL of the --nproc launcher": launcher_kill,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--cases", default="", help="comma-separated substrings of case names")
    parser.add_argument("--keep", type=Path, default=None, help="keep the work folders here")
    args = parser.parse_args()
    wanted = [c for c in CASES if not args.cases or any(w in c for w in args.cases.split(","))]
    base = args.keep or Path(tempfile.mkdtemp(prefix="runlab-faults-"))
    results = []
    for name in wanted:
        held, notes, skipped, t0 = 0, [], 0, time.time()
        for i in range(args.tries):
            work = base / f"{CASES[name].__name__}-{i}"
            work.mkdir(parents=True)
            try:
                CASES[name](work, i)
                held += 1
            except Skipped as e:
                skipped += 1
                notes.append(f"skipped: {e}")
            except (Failed, subprocess.TimeoutExpired, OSError, ValueError) as e:
                notes.append(f"try {i}: {type(e).__name__}: {e}")
        row = {"case": name, "tries": args.tries - skipped, "held": held,
               "seconds": round(time.time() - t0, 1), "notes": notes[:3]}
        results.append(row)
        print(f"{name:<44} {row['tries']:>5} {held:>5}  ({row['seconds']} s)", flush=True)
    print("\n| case | tries | held |\n|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['tries']} | {r['held']} |")
    for r in results:
        for note in r["notes"]:
            print(f"  {r['case']}: {note}")
    out = Path(__file__).parent / "results" / "fault_injection.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
