#!/usr/bin/env bash
# Nsight Compute on flashgen's forward and on FlashAttention-4's sm90 forward
# at the same shape (bf16, non-causal, 16384 tokens of one sequence, width
# 2048), one launch each, in one device call.  For each head dim in $HDIMS
# (default "128"): the details page (cycles, pipe utilisation, stall
# reasons) and the per-instruction SASS page as CSV, tarred into
# $OUT/profile.tgz; summarise them with bench/sass_profile.py (mix, stalls,
# loop).  ncu locks the clocks, so the two kernels' cycles compare directly.
# Run from the repository root with build/ built (FLASHGEN_BIN,
# FLASHGEN_LIBRARY to override); FlashAttention-4 from bench/fa4_peer.sh
# (/tmp/fa4/env.sh), skipped without it.  docs/PERF.md v15 is its first use.
# DTYPE=e4m3 profiles flashgen's FP8 kernel (FlashAttention-4 has no FP8
# sm90 path: skipped); CAUSAL=1 the causal kernels.
#   OUT=out HDIMS="128 64" bench/profile_fwd.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
fg=${FLASHGEN_BIN:-./build/flashgen}
export FLASHGEN_LIBRARY=${FLASHGEN_LIBRARY:-$PWD/build/libflashgen.so}
export FLASHGEN_CACHE=${FLASHGEN_CACHE:-/tmp/flashgen-profile.db}
[ -f /tmp/fa4/env.sh ] && . /tmp/fa4/env.sh
. bench/ncu_pages.sh # ncu, ncu_pages, ncu_tar
[ -n "$ncu" ] || { echo "profile_fwd: ncu not found" >&2; exit 1; }
t=$(mktemp -d)
mkdir -p "$OUT"
dt=${DTYPE:-bf16}
causal=${CAUSAL:-0}
for d in ${HDIMS:-128}; do
  # flashgen bench checks the shape once (the first launch), then times it
  timeout 200 "$ncu" -k flashgen_fwd -c 1 --set full -f -o "$t/fg$d" \
    "$fg" bench --dtype "$dt" --hdims "$d" --seqlens 16384 --causal "$causal" --heat 0 --iters 1 > "$t/fg$d.log" 2>&1
  reps="fg$d"
  if [ "$dt" = bf16 ] && python3 -c "import flash_attn.cute" 2>/dev/null; then
    cat > "$t/fa4.py" <<PY
import torch
from flash_attn.cute import flash_attn_func
q, k, v = (torch.randn(1, 16384, 2048 // $d, $d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
for _ in range(3):
    flash_attn_func(q, k, v, causal=bool($causal))
torch.cuda.synchronize()
PY
    # the first two launches compile (CuTe DSL JIT) and warm up
    timeout 300 "$ncu" -k regex:Sm90 --launch-skip 2 -c 1 --set full -f -o "$t/fa4_$d" python3 "$t/fa4.py" > "$t/fa4_$d.log" 2>&1
    reps="$reps fa4_$d"
  fi
  ncu_pages "$t" $reps
done
ncu_tar "$t" "$OUT/profile.tgz" profile_fwd
