#!/usr/bin/env bash
# Times explicit block configurations of one shape per head dim with
# `flashgen run` (checked against the CPU reference, then timed), to feed
# the heuristic's candidate order.  Usage: bench/explore.sh [extra run args]
set -u
fg=./build/flashgen
for spec in \
  hdim=64,wgmma=0 hdim=64,wgmma=1,block_m=64,block_n=128,stages=2 hdim=64,wgmma=1,block_m=64,block_n=64,stages=2 \
  hdim=64,wgmma=1,block_m=128,block_n=64,stages=2 hdim=64,wgmma=1,block_m=192,block_n=128,stages=2 \
  hdim=128,wgmma=1,block_m=64,block_n=64,stages=2 hdim=128,wgmma=1,block_m=64,block_n=128,stages=1 \
  hdim=128,wgmma=1,block_m=64,block_n=64,stages=1 hdim=128,wgmma=1,block_m=128,block_n=64,stages=2 \
  hdim=128,wgmma=1,block_m=192,block_n=64,stages=2 \
  hdim=256,wgmma=1,block_m=64,block_n=64,stages=1 hdim=256,wgmma=1,block_m=64,block_n=64,stages=2 \
  hdim=256,wgmma=1,block_m=128,block_n=64,stages=1; do
  for causal in 0 1; do
    d=${spec#hdim=}; d=${d%%,*}
    out=$($fg run "$spec,causal=$causal" --batch $((16384 / 4096)) --heads $((2048 / d)) --seqlen 4096 --iters 30 "$@" 2>&1)
    printf "%-55s causal=%d  %s\n" "$spec" "$causal" "$(echo "$out" | grep -E 'time:|FAIL|error' | tr -s ' ' | cut -c1-120)"
  done
done
