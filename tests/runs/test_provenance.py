"""Provenance in a clean, a dirty and a missing git repository."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runlab.runs.provenance import collect_provenance, same_git_state, write_provenance_files


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one committed file, independent of the user's git config."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('hello')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_clean_repo(repo: Path, tmp_path: Path) -> None:
    info = collect_provenance(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    assert info["git"] == {"commit": head, "branch": "main", "dirty": False, "untracked": []}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_provenance_files(run_dir, repo)
    assert not (run_dir / "git.diff").exists()
    json.dumps(info)  # everything lands in run.json


def test_dirty_repo_with_staged_unstaged_and_untracked(repo: Path, tmp_path: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "staged.py").write_text("x = 1\n")
    git(repo, "add", "staged.py")
    (repo / "notes.txt").write_text("scratch\n")
    git_info = collect_provenance(repo)["git"]
    assert git_info["dirty"] is True
    assert git_info["untracked"] == ["notes.txt"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_provenance_files(run_dir, repo)
    diff = (run_dir / "git.diff").read_text()
    assert "+print('changed')" in diff
    assert "+x = 1" in diff  # staged changes are part of `git diff HEAD`
    assert "notes.txt" not in diff


def test_same_git_state_reuses_answers_inside_the_block_only(repo: Path) -> None:
    with same_git_state():
        before = collect_provenance(repo)["git"]
        (repo / "train.py").write_text("print('changed')\n")
        assert collect_provenance(repo)["git"] == before  # one ensemble, one recorded state
    assert before["dirty"] is False
    assert collect_provenance(repo)["git"]["dirty"] is True


def test_untracked_only_is_not_dirty_and_branch_detached(repo: Path) -> None:
    (repo / "new.py").write_text("")
    git(repo, "checkout", "-q", "--detach")
    info = collect_provenance(repo)["git"]
    assert info["dirty"] is False
    assert info["branch"] is None
    assert info["untracked"] == ["new.py"]


def test_rename_is_dirty_and_odd_names_survive(repo: Path) -> None:
    git(repo, "mv", "train.py", "main.py")
    (repo / "my notes.txt").write_text("")
    info = collect_provenance(repo)["git"]
    assert info["dirty"] is True
    assert info["untracked"] == ["my notes.txt"]


def test_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    info = collect_provenance(tmp_path)
    assert info["git"] == {"error": "not a git repository"}
    write_provenance_files(tmp_path, tmp_path)
    assert not (tmp_path / "git.diff").exists()


def test_without_git_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable on PATH
    assert collect_provenance(tmp_path)["git"] == {"error": "git is not installed"}


def test_versions_devices_host_command(tmp_path: Path) -> None:
    info = collect_provenance(tmp_path)
    v = info["versions"]
    assert v["python"] == ".".join(map(str, sys.version_info[:3]))
    assert v["torch"] == torch.__version__
    assert v["runlab"] is not None and v["numpy"] is not None
    assert {"cuda", "cudnn"} <= set(v)
    if torch.cuda.is_available():
        assert len(info["devices"]) == torch.cuda.device_count()
    elif not torch.backends.mps.is_available():
        assert info["devices"] == ["cpu"]
    assert info["command"] == sys.argv
    assert isinstance(info["host"], str) and info["host"]


def test_environment_txt_lists_installed_packages(tmp_path: Path) -> None:
    start = time.perf_counter()
    write_provenance_files(tmp_path, tmp_path)
    assert time.perf_counter() - start < 1.0
    lines = (tmp_path / "environment.txt").read_text().splitlines()
    names = [line.split("==")[0] for line in lines]
    assert all("==" in line for line in lines)
    assert names == sorted(names, key=str.lower)
    assert f"torch=={torch.__version__}" in lines
    assert any(name.lower() == "runlab" for name in names)


def test_imported_plugin_and_untracked_files_are_copied_and_make_the_tree_dirty(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin folder nobody committed, a helper it imports, a plugin outside the repository:
    git cannot restore any of them, so the run folder keeps a copy and `dirty` is true."""
    from runlab.runs import provenance
    from runlab.validate import load_plugins

    (repo / "models").mkdir()
    (repo / "models" / "mine.py").write_text("import helper_i17\nVALUE = helper_i17.X\n")
    (repo / "helper_i17.py").write_text("X = 41\n")
    (repo / "unused.py").write_text("never imported\n")
    outside = tmp_path / "shared_plugins"
    outside.mkdir()
    (outside / "extra.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(repo))
    plugins = [str(repo / "models"), str(outside)]
    assert load_plugins(plugins) == []
    monkeypatch.setattr(provenance, "MAX_SOURCE_BYTES", 10_000)
    (repo / "big_i17.py").write_text("# " + "x" * 20_000 + "\n")
    import big_i17  # noqa: F401 - imported by "the run", too big to copy

    info = collect_provenance(repo, plugins)
    assert info["git"]["dirty"] is True  # nothing tracked changed; the imports make it dirty
    assert info["git"]["untracked_imported"] == ["big_i17.py", "helper_i17.py", "models/mine.py"]
    assert info["source"] == {"files": ["external/shared_plugins/extra.py", "helper_i17.py",
                                        "models/mine.py"], "skipped": ["big_i17.py"]}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_provenance_files(run_dir, repo, plugins)
    copied = sorted(p.relative_to(run_dir / "source").as_posix()
                    for p in (run_dir / "source").rglob("*.py"))
    assert copied == info["source"]["files"]
    assert (run_dir / "source" / "models" / "mine.py").read_text() == \
        (repo / "models" / "mine.py").read_text()


def test_a_committed_plugin_is_copied_but_leaves_the_tree_clean(repo: Path, tmp_path: Path) -> None:
    from runlab.validate import load_plugins

    (repo / "plugins_i17").mkdir()
    (repo / "plugins_i17" / "ok.py").write_text("Z = 3\n")
    git(repo, "add", "plugins_i17")
    git(repo, "commit", "-q", "-m", "plugin")
    assert load_plugins([str(repo / "plugins_i17")]) == []
    info = collect_provenance(repo, [str(repo / "plugins_i17")])
    assert info["git"]["dirty"] is False and "untracked_imported" not in info["git"]
    assert info["source"]["files"] == ["plugins_i17/ok.py"]
