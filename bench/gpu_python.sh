#!/usr/bin/env bash
# Every GPU check of the Python binding, in one run, from the repository
# root with build/ already built (libflashgen.so):
#   1. python/tests/test_attention_gpu.py (flashgen vs the float32 math backend)
#   2. bench/vs_torch.py, bf16, the full BENCHMARK.md grid (FlashAttention-4
#      too when bench/fa4_peer.sh installed it: /tmp/fa4/env.sh); FlexAttention at
#      seqlens 1024,4096,16384 only, as in BENCHMARK.md (each new shape costs
#      it a torch.compile)
#   3. bench/vs_torch.py, fp16, --quick (seqlens 1024,4096,16384), SDPA peers
# Each step has its own time limit, so the whole run stays under 8 minutes;
# a bench step cut short keeps the shapes it finished, and the charts are
# redrawn from what is there.  Everything goes to $OUT (default ./out):
# log.txt, tests.txt, bench_bf16/ and bench_fp16/ (results.csv,
# results.json, tflops_*.png).  Exit status: the first failing step's.
#
#   OUT=out bench/gpu_python.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export FLASHGEN_LIBRARY=${FLASHGEN_LIBRARY:-$PWD/build/libflashgen.so}
# FlashAttention-4 as a peer when bench/fa4_peer.sh installed it on this machine
if [ -f /tmp/fa4/env.sh ]; then . /tmp/fa4/env.sh; fi
export LD_LIBRARY_PATH="${CUDA_HOME:-/usr/local/cuda}/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
rc=0
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local r=$?
  echo "=== $name: exit $r after $((SECONDS - t0)) s"
  if [ $r -ne 0 ] && [ $rc -eq 0 ]; then rc=$r; fi
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
$PY -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__, "cuda", torch.version.cuda)' || true
step tests 90 $PY python/tests/test_attention_gpu.py
step bench_bf16 240 $PY bench/vs_torch.py --out "$OUT/bench_bf16" --dtypes bf16 --flex-seqlens 1024,4096,16384
step bench_fp16 75 $PY bench/vs_torch.py --out "$OUT/bench_fp16" --dtypes fp16 --quick --peers fa2,cudnn
for d in "$OUT/bench_bf16" "$OUT/bench_fp16"; do
  [ -f "$d/results.json" ] && step "charts $(basename "$d")" 15 $PY bench/vs_torch.py --replot "$d"
done
echo "=== done in $SECONDS s, exit $rc; results in $OUT"
exit $rc
