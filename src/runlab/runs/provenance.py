"""Where a run came from: git state, package versions, devices, host and command.

`collect_provenance` gives the run.json keys `git`, `versions`, `devices`, `host`,
`command` and `source`; `write_provenance_files` writes `git.diff` (only when the tree has
uncommitted changes), `environment.txt`, and `source/`: a copy of the plugin files and of
the untracked source files the run imported (which neither git nor git.diff records). Both are cheap
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
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 5.0
MAX_UNTRACKED = 100  # run.json stays small even in a tree full of stray files
OPTIONAL_PACKAGES = ("optuna", "pandas", "wandb", "tensorboard")
_STATUS = ("status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z")
MAX_SOURCE_FILE_BYTES = 1_000_000  # source/ copies nothing bigger (data files named *.py)
MAX_SOURCE_BYTES = 10_000_000  # nor more than this in all


def collect_provenance(cwd: Path, plugins: Sequence[str] = ()) -> dict[str, Any]:
    """The provenance keys of run.json for a run started in `cwd` with `plugins`.

    `git.dirty` is also true when the run imported untracked files (listed in
    `git.untracked_imported`); `source` lists what `write_provenance_files` copies.

    Example:
        >>> info = collect_provenance(Path.cwd())
        >>> sorted(info)
        ['command', 'devices', 'git', 'host', 'source', 'versions']
    """
    with same_git_state():
        git = git_info(cwd)
        sources, untracked = source_files(cwd, plugins)
    if untracked:
        git = {**git, "dirty": True, "untracked_imported": untracked}
    copied, skipped = _within_cap(sources)
    return {
        "git": git,
        "versions": dict(versions()),
        "devices": list(devices()),
        "host": socket.gethostname(),
        "command": list(sys.argv),
        "source": {"files": sorted(copied), "skipped": sorted(skipped)},
    }


def write_provenance_files(run_dir: Path, cwd: Path, plugins: Sequence[str] = ()) -> None:
    """Write `git.diff` (when `cwd` has uncommitted changes), `environment.txt` and
    `source/` (plugin files and untracked imported files, within the size caps)."""
    run_dir = Path(run_dir)
    diff = _git(cwd, "diff", "HEAD", "--no-color", "--no-ext-diff")
    if isinstance(diff, str) and diff:
        (run_dir / "git.diff").write_text(diff, encoding="utf-8")
    (run_dir / "environment.txt").write_text(_environment_txt(), encoding="utf-8")
    copied, _ = _within_cap(source_files(cwd, plugins)[0])
    for name, file in copied.items():
        target = run_dir / "source" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)


def source_files(cwd: Path, plugins: Sequence[str] = ()) -> tuple[dict[str, Path], list[str]]:
    """Source files this process imported that a run folder must keep a copy of.

    Returns `({name in source/: file}, untracked)`: every imported module file under a
    `plugins:` path, and every imported file that is untracked in the git repository
    holding `cwd` (named by its path in the repository; plugin files outside it as
    `external/<plugin folder>/<file>`). `untracked` lists the latter's names.
    """
    roots = [Path(p).resolve() for p in plugins]
    top = _git(cwd, "rev-parse", "--show-toplevel")
    repo = Path(top.strip()).resolve() if isinstance(top, str) and top.strip() else None
    entries = _untracked_entries(cwd) if repo is not None else []
    found: dict[str, Path] = {}
    untracked: list[str] = []
    for file in _imported_files():
        rel = _relative(file, repo)
        if rel is not None and any(rel == e or (e.endswith("/") and rel.startswith(e))
                                   for e in entries):
            found[rel] = file
            untracked.append(rel)
            continue
        root = next((r for r in roots if file == r or r in file.parents), None)
        if root is not None:
            name = rel or f"external/{root.name if root.is_dir() else root.parent.name}/" \
                          f"{file.relative_to(root) if root.is_dir() else file.name}"
            found[name] = file
    return found, sorted(untracked)


def _imported_files() -> list[Path]:
    """Every imported module's .py file, minus installed packages and the standard library
    (a virtualenv inside the repository is not the run's source)."""
    prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix)
    installed = tuple({f(p) + os.sep for p in prefixes for f in (os.path.abspath,
                                                                 os.path.realpath)})
    files = set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not (isinstance(name, str) and name.endswith(".py")) or name.startswith(installed):
            continue  # the string test first: realpath of every torch module costs ~50 ms
        real = os.path.realpath(name)
        if not real.startswith(installed) and "site-packages" not in real:
            files.add(Path(real))
    return sorted(files)


def _relative(file: Path, repo: Path | None) -> str | None:
    if repo is None or repo not in file.parents:
        return None
    return file.relative_to(repo).as_posix()


def _untracked_entries(cwd: Path) -> list[str]:
    """Untracked paths relative to the repository root (folders end with `/`)."""
    out = _git(cwd, *_STATUS)  # the same command as git_info: asked once in same_git_state
    if isinstance(out, _GitError):
        return []
    return [entry[2:] for entry in out.split("\0") if entry.startswith("? ")]


def _within_cap(files: dict[str, Path]) -> tuple[dict[str, Path], list[str]]:
    """The files to copy (smallest first) within MAX_SOURCE_*; the names left out."""
    kept, skipped, total = {}, [], 0
    for name, file in sorted(files.items(), key=lambda kv: _size(kv[1])):
        size = _size(file)
        if size > MAX_SOURCE_FILE_BYTES or total + size > MAX_SOURCE_BYTES:
            skipped.append(name)
            continue
        kept[name], total = file, total + size
    return kept, skipped


def _size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return MAX_SOURCE_BYTES + 1  # gone since it was imported: nothing to copy


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
    out = _git(cwd, *_STATUS)
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
