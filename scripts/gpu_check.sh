#!/usr/bin/env bash
# The GPU checks: CUDA tests (placement, bf16/fp16 + GradScaler, torch.compile, seed
# ensembles) and the seed-ensemble benchmark on the GPU.
#
#   bash scripts/gpu_check.sh prepare   # here, once: wheels the GPU machine lacks, in .whl/
#   bash scripts/gpu_check.sh           # on the GPU machine, from the repository root
#
# The GPU machine has python3 with a CUDA build of torch and most of runlab's
# dependencies, and no network; what it lacks travels as wheels in .whl/ (ignored by
# git). Results go to $OUT (default /tmp/gpu-check): logs and bench_ensemble.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "prepare" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl omegaconf==2.4.0 mnist1d==0.0.2.post1
    ls -l .whl
    exit 0
fi

OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CI=true PYTHONPATH="$PWD/src"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
status=0
python3 -m pytest -q -p no:cacheprovider tests/gpu tests/ensemble \
    2>&1 | tee "$OUT/tests.log" || status=1
python3 benchmarks/bench_ensemble.py --device cuda --ks 1,4,16,64 --models mlp,cnn --epochs 5 --no-per-step \
    2>&1 | tee "$OUT/bench_ensemble.log" || status=1
cp benchmarks/results/bench_ensemble.json "$OUT/" 2>/dev/null || true
exit $status
