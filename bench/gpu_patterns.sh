#!/usr/bin/env bash
# GPU checks and timings of block-sparse patterns (issue 5), in one run:
#   1. tests/test_gpu_patterns: every built-in, combinations and a user file
#      on both kernel families against the float64 reference (NaN-poisoned
#      outputs, odd sizes)
#   2. bench/sparse_flex.py: head dim 128, bf16, seqlen 8k and 16k, sliding
#      window and random layouts at densities 10/25/50%: dense flashgen,
#      sparse flashgen and FlexAttention with the identical block mask
#   3. flashgen explore on three patterns (pictures, check, timing, a sweep)
# Run from the repository root with build/ present (PyTorch + triton for 2):
#   OUT=out bench/gpu_patterns.sh
# Logs and pictures go to $OUT (default ./out).  Exit status 1 if any step failed.
set -u
out="${OUT:-./out}"
mkdir -p "$out"
cuda="${CUDA_HOME:-/usr/local/cuda}"
export LD_LIBRARY_PATH="$cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fg=./build/flashgen
rc=0
t0=$(date +%s)
step() { # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local s=$(date +%s)
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local r=$?
  echo "   exit $r after $(($(date +%s) - s))s (log: $out/$name.log)"
  tail -n 25 "$out/$name.log" | sed 's/^/   | /'
  [ "$r" = 0 ] || rc=1
}
$fg info >"$out/info.log" 2>&1
head -3 "$out/info.log"
step test_gpu_patterns 140 ./build/tests/test_gpu_patterns
step sparse_flex 140 python3 bench/sparse_flex.py --csv "$out/sparse_flex.csv"
step explore_sliding_window 20 $fg explore sliding_window --param window=768 --seqlen 16384 --png "$out/sliding_window.png"
step explore_document_causal 20 $fg explore 'intersection(document{lengths={3000,4000,1192}}, causal{})' --seqlen 8192 \
  --verify --png "$out/document_causal.png"
step explore_bigbird_sweep 40 $fg explore bigbird --param window=256 --param random=0.05 --seqlen 8192 --sweep \
  --png "$out/bigbird.png"
echo "== total $(($(date +%s) - t0))s, exit $rc"
exit $rc
