#!/usr/bin/env bash
# Nsight Compute on flashgen's Hopper backward kernel (flashgen_bwd) and on
# FlashAttention-4's sm90 backward at the same shape: bf16, 16384 tokens
# (batch 16384 / SEQ), model width 2048 (heads 2048 / head dim), one launch
# each, in one device call.  For each head dim in $HDIMS (default "128"):
# the details page (cycles, pipe utilisation, stall reasons) and the
# per-instruction SASS page as CSV, tarred into $OUT/profile_bwd.tgz;
# summarise them with bench/sass_profile.py (mix, stalls, loop).  ncu locks
# the clocks, so the two kernels' cycles compare directly.
# flashgen's side runs `test_gpu_backward bench` (FG_BWD_TEST, default
# build/tests/test_gpu_backward); FlashAttention-4 from bench/fa4_peer.sh
# (/tmp/fa4/env.sh), skipped without it.  CAUSAL=1 the causal kernels,
# SEQ=N the sequence length (default 4096).
#   OUT=out HDIMS="128 64" bench/profile_bwd.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
test_bin=${FG_BWD_TEST:-./build/tests/test_gpu_backward}
export FLASHGEN_CACHE=${FLASHGEN_CACHE:-/tmp/flashgen-profile.db}
[ -f /tmp/fa4/env.sh ] && . /tmp/fa4/env.sh
. bench/ncu_pages.sh # ncu, ncu_pages, ncu_tar
[ -n "$ncu" ] || { echo "profile_bwd: ncu not found" >&2; exit 1; }
t=$(mktemp -d)
mkdir -p "$OUT"
causal=${CAUSAL:-0}
seq=${SEQ:-4096}
for d in ${HDIMS:-128}; do
  # the bench times causal and non-causal; -c 1 takes the first launch of the main kernel of the wanted one
  skip=0
  [ "$causal" = 1 ] && skip=6 # the bench's non-causal warm-up and 5 timed launches come first
  timeout 200 "$ncu" -k flashgen_bwd --launch-skip $skip -c 1 --set full -f -o "$t/fg$d" \
    "$test_bin" bench "$d" seq="$seq" auto > "$t/fg$d.log" 2>&1
  reps="fg$d"
  if python3 -c "import flash_attn.cute" 2>/dev/null; then
    cat > "$t/fa4.py" <<PY
import torch
from flash_attn.cute import flash_attn_func
b, h = 16384 // $seq, 2048 // $d
q, k, v = (torch.randn(b, $seq, h, $d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
r = flash_attn_func(q, k, v, causal=bool($causal))
out = r[0] if isinstance(r, tuple) else r
g = torch.randn_like(out)
for _ in range(3):
    torch.autograd.grad(out, (q, k, v), g, retain_graph=True)
torch.cuda.synchronize()
PY
    # the first two launches compile (CuTe DSL JIT) and warm up
    timeout 300 "$ncu" -k regex:BackwardSm90 --launch-skip 2 -c 1 --set full -f -o "$t/fa4_$d" python3 "$t/fa4.py" > "$t/fa4_$d.log" 2>&1
    reps="$reps fa4_$d"
  fi
  ncu_pages "$t" $reps
done
ncu_tar "$t" "$OUT/profile_bwd.tgz" profile_bwd
