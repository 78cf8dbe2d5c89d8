"""Where a run came from: git state, package versions, devices, host and command.

`collect_provenance` gives the run.json keys `git`, `versions`, `devices`, `host`
and `command`; `write_provenance_files` writes `git.diff` (only when the tree has
uncommitted changes) and `environment.txt` into the run folder. Both are cheap
(a few git calls with short timeouts, no heavy imports) and never raise because
git is missing or the folder is not a repository.

What cannot change under a running process (versions, devices, the installed
packages it imported from) is read once per process; inside `same_git_state()`
git is asked once per folder and command, for the K runs of one `--seeds` call.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 5.0
MAX_UNTRACKED = 100  # run.json stays small even in a tree full of stray files
OPTIONAL_PACKAGES = ("optuna", "pandas", "wandb", "tensorboard")


def collect_provenance(cwd: Path) -> dict[str, Any]:
    """The provenance keys of run.json for a run started in `cwd`.

    Example:
        >>> info = collect_provenance(Path.cwd())
        >>> sorted(info)
        ['command', 'devices', 'git', 'host', 'versions']
    """
    return {
        "git": git_info(cwd),
        "versions": dict(versions()),
        "devices": list(devices()),
        "host": socket.gethostname(),
        "command": list(sys.argv),
    }


def write_provenance_files(run_dir: Path, cwd: Path) -> None:
    """Write `git.diff` (when `cwd` has uncommitted changes) and `environment.txt`."""
    run_dir = Path(run_dir)
    diff = _git(cwd, "diff", "HEAD", "--no-color", "--no-ext-diff")
    if isinstance(diff, str) and diff:
        (run_dir / "git.diff").write_text(diff, encoding="utf-8")
    (run_dir / "environment.txt").write_text(_environment_txt(), encoding="utf-8")


@functools.cache
def _environment_txt() -> str:
    lines = [f"{name}=={version}" for name, version in installed_distributions().items()]
    return "\n".join(lines) + "\n"


_git_memo: dict[tuple[str, ...], str | _GitError] | None = None


@contextlib.contextmanager
def same_git_state() -> Iterator[None]:
    """Within this block each git command runs once per folder and its answer is reused.

    For runs that start together from one process (the seeds of `--seeds K`): their
    code was imported once, so they record one tree state; asking git again per run
    costs ~20 ms each. Nested blocks share the outer one's answers."""
    global _git_memo
    if _git_memo is not None:
        yield
        return
    _git_memo = {}
    try:
        yield
    finally:
        _git_memo = None


def git_info(cwd: Path) -> dict[str, Any]:
    """`{commit, branch, dirty, untracked}` of the repository holding `cwd`, or `{error}`."""
    out = _git(cwd, "status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z")
    if isinstance(out, _GitError):
        return {"error": out.message}
    commit = branch = None
    dirty = False
    untracked: list[str] = []
    entries = iter(out.split("\0"))
    for entry in entries:
        kind, _, rest = entry.partition(" ")
        if entry.startswith("# branch.oid "):
            commit = None if rest.endswith("(initial)") else entry.split()[-1]
        elif entry.startswith("# branch.head "):
            branch = None if entry.endswith("(detached)") else entry.split(" ", 2)[-1]
        elif kind == "?":
            untracked.append(rest)
        elif kind in ("1", "u"):
            dirty = True
        elif kind == "2":
            dirty = True
            next(entries, None)  # a rename entry is followed by its original path
    if len(untracked) > MAX_UNTRACKED:
        untracked = [*untracked[:MAX_UNTRACKED], f"... ({len(untracked) - MAX_UNTRACKED} more)"]
    return {"commit": commit, "branch": branch, "dirty": dirty, "untracked": untracked}


@functools.cache
def versions() -> dict[str, str | None]:
    """Versions of python, torch, runlab, numpy, CUDA, cuDNN and the optional packages present."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    found: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "runlab": _version("runlab"),
        "numpy": _version("numpy"),
        "cuda": torch.version.cuda,
        "cudnn": None if cudnn is None else str(cudnn),
    }
    for name in OPTIONAL_PACKAGES:
        version = _version(name)
        if version is not None:
            found[name] = version
    return found


@functools.cache
def devices() -> list[str]:
    """Names of the accelerators torch sees, or `["cpu"]`."""
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        return ["mps"]
    return ["cpu"]


def installed_distributions() -> dict[str, str]:
    """`{name: version}` of every installed distribution, sorted case-insensitively by name.

    Reads only the header lines of each METADATA file: `dist.metadata` runs the
    full email parser and is ten times slower over a typical environment.
    """
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        name = version = None
        for line in text.splitlines():
            if not line or (name and version):
                break  # the headers end at the first blank line
            if line.startswith("Name: "):
                name = line[6:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
        if name and version:
            found.setdefault(name, version)  # first on sys.path wins, as for imports
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class _GitError:
    message: str


def _git(cwd: Path, *args: str) -> str | _GitError:
    """stdout of `git <args>` run in `cwd`, or why it gave none (reused in `same_git_state`)."""
    if _git_memo is None:
        return _run_git(cwd, *args)
    key = (str(Path(cwd).resolve()), *args)
    if key not in _git_memo:
        _git_memo[key] = _run_git(cwd, *args)
    return _git_memo[key]


def _run_git(cwd: Path, *args: str) -> str | _GitError:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=GIT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            # no index.lock: runs started in parallel must not block each other or the user's
            # own git commands; C locale: the error text below is matched in English
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except FileNotFoundError:
        return _GitError("git is not installed")
    except subprocess.TimeoutExpired:
        return _GitError(f"git {args[0]} timed out after {GIT_TIMEOUT_S:g}s")
    except OSError as e:
        return _GitError(f"git could not run: {e}")
    if proc.returncode != 0:
        if "not a git repository" in proc.stderr:
            return _GitError("not a git repository")
        first = proc.stderr.strip().splitlines()[:1]
        return _GitError(first[0] if first else f"git {args[0]} exited with {proc.returncode}")
    return proc.stdout
