"""Regenerate the README's "A run in one picture" from a real run.

    python scripts/readme_run.py          # trains configs/quickstart.yaml for 3 epochs

The run happens in a temporary folder (the repository's `configs/` and `data/` linked in,
so paths print as a user would see them); the README block between the
`<!-- run-excerpt -->` markers is replaced by the command, its first epoch line and its
closing lines. Nothing else in the README changes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["train", "configs/quickstart.yaml", "trainer.max_epochs=3"]
START, END = "<!-- run-excerpt -->", "<!-- /run-excerpt -->"


def run_excerpt() -> str:
    """The command and what it printed: first epoch line, `...`, the closing lines."""
    (ROOT / "data").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("configs", "data"):
            os.symlink(ROOT / name, Path(tmp) / name)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
        env.pop("RUNLAB_RUNS_DIR", None)
        proc = subprocess.run([sys.executable, "-m", "runlab", *COMMAND], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"the run failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    lines = proc.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    closing = [line for line in lines if line.startswith("runlab: run ")]
    return "\n".join([f"$ runlab {' '.join(COMMAND)}", epochs[0], "...", epochs[-1], *closing])


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    block = f"{START}\n```\n{run_excerpt()}\n```\n{END}"
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                             flags=re.S))
    print(block)


if __name__ == "__main__":
    main()
