#!/usr/bin/env bash
# Builds (if needed) and runs every test: label `cpu` everywhere, label
# `gpu` where there is a GPU (reported as skipped where there is none).
#
#   ./tools/test.sh [ctest options, e.g. -L cpu]
#   FLASHGEN_SANITIZE=1 ./tools/test.sh -L cpu
#
# FLASHGEN_SANITIZE=1 builds in build-asan with -fsanitize=address,undefined
# (any report fails its test) and leaves out the tests that cannot or need
# not run there: py_abi, py_binding_cpu, py_ops_cpu, py_infer_cpu, py_score_mod_cpu, mask_python and py_cuda_paths load
# the instrumented libflashgen.so into an uninstrumented python;
# install_consumers links the installed static library into programs built
# without the sanitizers; and
# test_compile_matrix and hopper_sass are minutes of NVRTC (not instrumented) whose calls into
# our code (render, heuristic, ptxas log and cubin parsing) test_cpu_core and
# test_cache make too.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda="${CUDA_HOME:-/usr/local/cuda}"
build=build
opts=(-DCMAKE_BUILD_TYPE=Release)
exclude=()
if [ "${FLASHGEN_SANITIZE:-0}" = 1 ]; then
  build=build-asan
  opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLASHGEN_SANITIZE=ON)
  exclude=(-E '^(py_abi|py_binding_cpu|py_ops_cpu|py_infer_cpu|py_score_mod_cpu|mask_python|py_cuda_paths|install_consumers|test_compile_matrix|hopper_sass)$')
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" "${opts[@]}" -DCUDA_HOME="$cuda" >/dev/null
fi
cmake --build "$build" -j"$(nproc)"
export LD_LIBRARY_PATH="$cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ctest --test-dir "$build" --output-on-failure "${exclude[@]}" "$@"
