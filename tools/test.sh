#!/usr/bin/env bash
# Builds (if needed) and runs every test: label `cpu` everywhere, label
# `gpu` where there is a GPU (reported as skipped where there is none).
#
#   ./tools/test.sh [ctest options, e.g. -L cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
cuda="${CUDA_HOME:-/usr/local/cuda}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCUDA_HOME="$cuda" >/dev/null
fi
cmake --build build -j"$(nproc)"
export LD_LIBRARY_PATH="$cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ctest --test-dir build --output-on-failure "$@"
