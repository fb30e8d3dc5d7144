#!/usr/bin/env bash
# Create .venv and install tpw-desktop into it, with a llama-cpp-python build
# that runs on this machine. Usage: scripts/install.sh [EXTRAS]   (e.g. "test")
#
# Why the flags: a default llama.cpp build uses -march=native (GGML_NATIVE=ON),
# and on CPUs that advertise AMX but fault on it (some cloud VMs) that build
# dies with SIGILL. We build for a fixed AVX2 baseline instead, and add CUDA
# only when both the CUDA toolkit (nvcc) and an NVIDIA driver are present.
# Set CMAKE_ARGS yourself to override.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${1:-}

if [ -z "${CMAKE_ARGS:-}" ]; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
    case "$(uname -m)" in
        x86_64|amd64)
            CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" ;;
    esac
    if command -v nvcc >/dev/null 2>&1 && { command -v nvidia-smi >/dev/null 2>&1 || [ -e /proc/driver/nvidia/version ]; }; then
        CMAKE_ARGS="$CMAKE_ARGS -DGGML_CUDA=on"
    fi
fi
export CMAKE_ARGS

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)

# pip's wheel cache is keyed by version, not by CMAKE_ARGS: when the flags
# change (say a GPU build after a CPU one), drop the cached wheel and rebuild.
flags_file="$VENV/.llama-cmake-args"
if [ -f "$flags_file" ] && [ "$(cat "$flags_file")" != "$CMAKE_ARGS" ]; then
    echo "llama-cpp-python build flags changed: rebuilding it" >&2
    "${PIP[@]}" cache remove llama_cpp_python >/dev/null 2>&1 || true
    "${PIP[@]}" uninstall -y llama-cpp-python >/dev/null 2>&1 || true
fi

echo "llama-cpp-python build flags: $CMAKE_ARGS" >&2
echo "(the first install builds llama.cpp from source: about 7 minutes on 2 cores)" >&2
"${PIP[@]}" install --quiet -c packaging/constraints.txt -e ".${EXTRAS:+[$EXTRAS]}"
printf '%s' "$CMAKE_ARGS" > "$flags_file"
# The stamps make's rules check: an install done here, by hand or by make, is not repeated by
# `make run` (any install gives the app; one with the test extra also gives the tests).
touch "$VENV/.installed"
case ",$EXTRAS," in *,test,*) touch "$VENV/.installed-test" ;; esac
