"""`runlab init DIR`: a research project skeleton that trains at once."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from runlab.errors import ConfigError


def scaffold(directory: Path) -> list[Path]:
    """Copy the project template into `directory` (which must be empty or absent)."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"init: {directory} exists and is not empty; choose a new folder")
    template = resources.files("runlab") / "templates" / "project"
    with resources.as_file(template) as src:
        shutil.copytree(src, directory, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return sorted(p.relative_to(directory) for p in directory.rglob("*") if p.is_file())
