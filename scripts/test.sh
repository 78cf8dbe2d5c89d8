#!/usr/bin/env bash
# Set up a virtualenv and run the test suite (what CI runs).
#   bash scripts/test.sh              # default suite (slow tests excluded)
#   RUNLAB_SLOW=1 bash scripts/test.sh  # everything
# Extra pytest arguments pass through: bash scripts/test.sh -k resume
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real: Chromium (the HTML report is rendered and
# screenshotted) and a single-node SLURM cluster (the sweep launcher submits to it).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=""
  command -v chromium >/dev/null || missing="$missing chromium"
  command -v slurmctld >/dev/null || missing="$missing slurm-wlm munge"
  if [ -n "$missing" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) \
      >/tmp/runlab-apt.log 2>&1 || echo "warning: apt-get install$missing failed (see /tmp/runlab-apt.log); those tests will skip"
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0          # the CPU build; a bare `torch` pulls CUDA wheels
python -m pip install -q -e '.[dev]'

marker="not slow"
[ "${RUNLAB_SLOW:-0}" = 1 ] && marker=""
python -m pytest -m "$marker" "$@"
