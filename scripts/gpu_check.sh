#!/usr/bin/env bash
# GPU check (see README "Checking NVML on a GPU"): on an NVIDIA machine, run
# tpw's bench on a CUDA build with NVML and compare, per window, the energy
# counter with the integrated instantaneous power. Results go to $OUT
# (default ./gpu-check-out): gpu-check.json, gpu-check.log, nvidia-smi.txt.
#
# Two ways to run it:
#   - on a machine where `make install` worked with CUDA: it uses .venv;
#   - on an offline machine: put llama-cpp-python's CUDA wheel and the pure-
#     Python dependencies in .gpu-wheels/ (see packaging/gpu-wheels.txt);
#     they are installed into a throwaway folder, nothing else is touched.
# Extra arguments go to benchmarks/gpu_check.py (e.g. --model M.gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"

if [ -d .gpu-wheels ] && ls .gpu-wheels/*.whl >/dev/null 2>&1; then
    site=$(mktemp -d /tmp/tpw-site.XXXX)
    python3 -m pip install -q --no-index --no-deps --target "$site" .gpu-wheels/*.whl
    export PYTHONPATH="$site:$PWD"
    # CUDA runtime libraries shipped as Python packages (nvidia-cublas, ...), if any.
    for d in $(python3 -c "import nvidia, os; print(' '.join(os.path.join(p, s, 'lib') for p in nvidia.__path__ for s in os.listdir(p)))" 2>/dev/null); do
        LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
    done
    export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
    PY=python3
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    echo "gpu_check: run 'make install' (with CUDA) first, or provide .gpu-wheels/" >&2
    exit 2
fi

nvidia-smi --query-gpu=name,uuid,driver_version,power.limit,power.draw,clocks.sm,temperature.gpu --format=csv \
    > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available" > "$OUT/nvidia-smi.txt"
cat "$OUT/nvidia-smi.txt"
"$PY" benchmarks/gpu_check.py --out "$OUT/gpu-check.json" "$@" 2>&1 | tee "$OUT/gpu-check.log"
