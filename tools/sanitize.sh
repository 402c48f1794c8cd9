#!/usr/bin/env bash
# compute-sanitizer memcheck, racecheck and synccheck on small, odd-sized
# variants of each kernel family (mma / wgmma / tma x dense / causal /
# block-sparse).
# Then the inference variants: the GPU test test_gpu_infer (varlen, paged,
# split-KV, GQA packing, out-of-range tables) under each tool.
# Prints one line per run with the sanitizer's error summary.
set -u
fg=${FLASHGEN:-./build/flashgen}
san=${COMPUTE_SANITIZER:-compute-sanitizer}
cases=(
  "hdim=96,wgmma=2,causal=none --batch 2 --heads-q 4 --heads-kv 2 --seqlen-q 333 --seqlen-k 517"
  "hdim=128,wgmma=2,causal=bottom_right --batch 2 --heads-q 4 --heads-kv 2 --seqlen-q 700 --seqlen-k 333"
  "hdim=64,wgmma=2,causal=top_left,sparse=1 --batch 2 --heads-q 2 --seqlen-q 300 --seqlen-k 333 --density 0.5"
  "hdim=256,wgmma=2,causal=none --batch 1 --heads-q 2 --heads-kv 1 --seqlen-q 1 --seqlen-k 200"
  # more work tiles than CTAs: the persistent grid runs from one tile into the next (XTILE)
  "hdim=128,wgmma=2,causal=none --batch 2 --heads-q 40 --heads-kv 8 --seqlen-q 300 --seqlen-k 400"
  "hdim=64,wgmma=2,causal=bottom_right --batch 2 --heads-q 40 --heads-kv 8 --seqlen-q 700 --seqlen-k 300"
  "hdim=96,wgmma=0,causal=none --batch 2 --heads-q 4 --heads-kv 2 --seqlen-q 333 --seqlen-k 517"
  "hdim=40,causal=bottom_right --batch 1 --heads-q 3 --heads-kv 1 --seqlen-q 300 --seqlen-k 100"
  "hdim=96,wgmma=0,causal=top_left,sparse=1 --batch 2 --heads-q 2 --seqlen-q 300 --seqlen-k 333 --density 0.5"
  "hdim=128,wgmma=1,causal=none --batch 2 --heads-q 4 --heads-kv 2 --seqlen-q 333 --seqlen-k 517"
  "hdim=64,wgmma=1,causal=bottom_right --batch 1 --heads-q 3 --heads-kv 1 --seqlen-q 300 --seqlen-k 257"
  "hdim=128,wgmma=1,causal=top_left,sparse=1 --batch 2 --heads-q 2 --seqlen-q 300 --seqlen-k 333 --density 0.5"
)
rc=0
for tool in memcheck racecheck synccheck; do
  for c in "${cases[@]}"; do
    out=$($san --tool $tool --error-exitcode 9 $fg run $c --iters 1 2>&1)
    st=$?
    summary=$(echo "$out" | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|SYNCCHECK SUMMARY" | tail -1)
    result=$(echo "$out" | grep -E "^result:" | tr -s ' ')
    printf "%-9s %-100s exit=%d  %s  %s\n" "$tool" "$c" "$st" "$summary" "$result"
    [ $st -eq 0 ] || rc=1
  done
  infer=${FLASHGEN_INFER_TEST:-./build/tests/test_gpu_infer}
  if [ -x "$infer" ]; then
    out=$($san --tool $tool --error-exitcode 9 $infer san 2>&1)
    st=$?
    summary=$(echo "$out" | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|SYNCCHECK SUMMARY" | tail -1)
    result=$(echo "$out" | grep -E "^test_gpu_infer:" | tr -s ' ')
    printf "%-9s %-100s exit=%d  %s  %s\n" "$tool" "test_gpu_infer (varlen, paged, split-KV, packing, bad tables)" "$st" "$summary" "$result"
    [ $st -eq 0 ] || rc=1
  fi
done
exit $rc
