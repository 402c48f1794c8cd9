#!/usr/bin/env bash
# CPU test (no GPU): every Hopper TMA variant the heuristic starts from
# compiles for sm_90a with NVRTC, and its SASS has what the design needs:
# HGMMA (wgmma; QGMMA, LDSM and STSM and no HGMMA for the FP8 e4m3 variants; score
# modifications in 16-bit variants only), UTMALDG (TMA loads), USETMAXREG (setmaxnreg), SYNCS
# (mbarriers), NANOSLEEP.SYNCS (the producer sleeps on its mbarriers), the
# softmax's exponentials before the wait for the previous P V (the overlap
# ptxas can undo), no local-memory traffic (LDL/STL), and ptxas neither ignored
# setmaxnreg (C7508) nor serialised the wgmma pipeline ("Potential
# Performance Loss", C7510..C7520; C7519, an injected warpgroup.arrive, is
# informational).
#
#   tests/hopper_sass.sh FLASHGEN_BINARY
# cuobjdump (and the nvdisasm it runs): PATH, $CUDA_HOME/bin, or the pip
# packages nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm (.ci/run installs
# them).  Without it the test is skipped (77), except under CI=true.
set -uo pipefail
fg="$1"
find_tool() {
  local t="$1" p
  for p in "$(command -v "$t" 2>/dev/null)" "${CUDA_HOME:-/usr/local/cuda}/bin/$t" \
           $(python3 -c 'import site,sys; print(" ".join(site.getsitepackages()+[site.getusersitepackages()]))' 2>/dev/null | tr ' ' '\n' | sed "s|$|/nvidia/cu13/bin/$t|"); do
    [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}
cuobjdump=$(find_tool cuobjdump) || cuobjdump=""
nvdisasm=$(find_tool nvdisasm) || nvdisasm=""
if [ -z "$cuobjdump" ] || [ -z "$nvdisasm" ]; then
  echo "hopper_sass: cuobjdump/nvdisasm not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)"
  [ "${CI:-}" = "true" ] && exit 1
  exit 77
fi
export PATH="$(dirname "$nvdisasm"):$PATH"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
# Compiles SPEC (expected in template FAMILY) into $tmp/log and its SASS
# into $tmp/sass; prints FAIL and counts it otherwise.
sass_of() {
  local spec="$1" family="$2" f="$tmp/k.cubin"
  n=$((n + 1))
  if ! "$fg" compile "$spec" --arch sm_90a --cubin "$f" --log >"$tmp/log" 2>&1; then
    echo "FAIL $spec: does not compile"; sed 's/^/    /' "$tmp/log" | tail -20; fail=$((fail + 1)); return 1
  fi
  grep -q "$family:" "$tmp/log" || { echo "FAIL $spec: not the $family family"; fail=$((fail + 1)); return 1; }
  "$cuobjdump" -sass "$f" >"$tmp/sass" 2>&1 || { echo "FAIL $spec: cuobjdump"; cat "$tmp/sass"; fail=$((fail + 1)); return 1; }
}
# Reports SPEC against what SASS file $3 lacks of the instructions $2 (and
# local memory in it).
verdict() {
  local spec="$1" bad="$4" need
  for need in $2; do grep -q "$need" "$3" || bad="$bad no-$need"; done
  grep -qE '\b(LDL|STL)\b' "$3" && bad="$bad local-memory"
  if [ -n "$bad" ]; then echo "FAIL $spec:$bad"; fail=$((fail + 1)); else echo "ok   $spec"; fi
}
# check SPEC [block_m=N]: with a second argument, the configuration chosen
# must have that tile height (the choice falls back to a smaller tile when
# the first spills, which would otherwise pass here unseen).
check() {
  local spec="$1" want="${2:-}" log="$tmp/log" sass="$tmp/sass"
  sass_of "$spec" fwd_ws || return
  local bad="" mma=HGMMA
  [ -n "$want" ] && ! grep -q "[:,]$want," "$log" && bad="$bad not-$want($(grep -o 'block_m=[0-9]*' "$log" | head -1))"
  # FP8: the V transpose moves 32 x 16-byte items by ldmatrix.trans and
  # stmatrix (fg_fp8.cuh)
  case "$spec" in *dtype=e4m3*) mma="QGMMA LDSM STSM"; grep -q HGMMA "$sass" && bad="$bad HGMMA-in-fp8";; esac
  grep -qE 'C7508|Performance Loss' "$log" && bad="$bad $(grep -oE 'C75[0-9][0-9]\) [A-Za-z ]*' "$log" | grep -E 'C7508|Potential' | sort -u | tr '\n' ' ')"
  # the key-tile loop: after the wait for S (DEPBAR.LE gsb0, 0x1) the
  # softmax's exponentials come before the wait for the previous P V
  # (DEPBAR.LE gsb0, 0x0), so that P V runs under the softmax; ptxas hoists
  # that wait to the top of its basic block when nothing stops it
  # (docs/PERF.md v15)
  local under
  under=$(awk '/DEPBAR.LE gsb0, 0x1/ && !seen { seen = 1; on = 1; next }
               on && /DEPBAR.LE gsb0, 0x0/ { print n + 0; exit }
               on && /MUFU.EX2/ { n++ }' "$sass")
  [ "${under:-0}" -ge 16 ] || bad="$bad P-V-not-under-softmax(${under:-none})"
  verdict "$spec" "$mma UTMALDG USETMAXREG SYNCS NANOSLEEP.SYNCS" "$sass" "$bad"
}
for h in 64 96 128 192 256; do
  for c in 0 1; do
    for s in 0 1; do check "hdim=$h,wgmma=2,causal=$c,sparse=$s"; done
  done
done
# the tiles the benchmarks run (HOPPER-KERNELS.md, select/heuristic.c)
check "hdim=64,wgmma=2" block_m=192
check "hdim=128,wgmma=2" block_m=128
check "hdim=256,wgmma=2" block_m=128
for c in 0 1; do check "hdim=128,dtype=fp16,wgmma=2,causal=$c"; done
check "hdim=128,wgmma=2,block_m=192,block_n=64"
check "hdim=64,wgmma=2,block_m=64,block_n=128,stages=3"
# a value head dim of its own (head_dim_v != head_dim), both directions
for p in 192,128 128,64 64,128 256,128; do
  for c in 0 1; do check "hdim=${p%,*},hdim_v=${p#*,},wgmma=2,causal=$c"; done
done
check "hdim=192,hdim_v=128,wgmma=2,sparse=1"
# sparse tiles of one consumer warpgroup: the producer walks the tile list
# in 32 registers (in 24 it spilled 8-32 bytes, session 11)
for c in 0 1; do check "hdim=64,wgmma=2,causal=$c,sparse=1,block_m=64,block_n=128"; done
check "hdim=192,wgmma=2,causal=1,sparse=1,block_m=64,block_n=64"
# score modifications (16-bit; docs/SCORE-WIRING.md), which share the
# kernel source with FP8's changes
for c in 0 1; do check "hdim=128,wgmma=2,causal=$c,mods=softcap+alibi+window+sink"; done
check "hdim=64,wgmma=2,causal=1,mods=window+sink"
# FP8 (e4m3): every head dim the issue names, causal both ways, both output
# types, both tile heights, a value head dim of its own, three stages
for h in 64 128 256; do
  for c in 0 1; do check "hdim=$h,dtype=e4m3,wgmma=2,causal=$c" block_m=$([ $h = 64 ] && echo 192 || echo 128); done
done
check "hdim=128,dtype=e4m3,out=bf16,wgmma=2,causal=1"
check "hdim=128,dtype=e4m3,wgmma=2,block_m=64,block_n=128"
check "hdim=64,dtype=e4m3,wgmma=2,block_m=128,block_n=128,stages=3"
check "hdim=192,hdim_v=128,dtype=e4m3,wgmma=2"
# The Hopper backward (bwd_wgmma, fg_bwd_wgmma.cuh; fg_bwd_wgmma_cols.cuh at
# head dim 256), its main kernel
# flashgen_bwd: HGMMA, mbarriers (SYNCS), the dQ bulk reduction (UBLKRED),
# no local memory, and LDGDEPBAR: the K and V copies committed to a group
# before the group wait of a CTA that visits no query block (causal), since
# cp.async.wait_group waits for committed groups only.
# wgmma=2 (TMA loads): UTMALDG for Q, dO, K, V, UBLKCP for the lse2 and D
# rows, and no LDGSTS: no thread copies anything itself.
check_bwd() {
  local spec="$1" need="$2" bad=""
  sass_of "$spec" bwd_wgmma || return
  awk '/Function :/ { on = ($3 == "flashgen_bwd") } on' "$tmp/sass" >"$tmp/bsass"
  grep -qE 'Performance Loss' "$tmp/log" && bad=" serialised-wgmma"
  case "$spec" in *wgmma=2*) grep -q LDGSTS "$tmp/bsass" && bad="$bad LDGSTS-with-TMA";; esac
  # the wgmma descriptors in uniform registers: an R2UR between two HGMMAs of
  # one chain (no arrive, wait, barrier or branch between them) means ptxas
  # built a descriptor in vector registers and moved it, two instructions a
  # wgmma (docs/PERF.md v22: 20-35 a kernel before the stage indices went
  # through a shuffle; 0-3 since, in once-per-block paths).  Not for head
  # dims 256/256 (the column kernel): ptxas hoists its K, V and dO
  # descriptors out of the loop and moves them back (20-27 R2URs), and the
  # version without them measured 2-5% slower causal (docs/PERF.md v23)
  local moved
  case "$spec" in
  *hdim=256,hdim_v=256*|hdim=256,kind*) ;;
  *)
    moved=$(awk '/HGMMA/ { if (chain && moved) bad++; chain = 1; moved = 0; next }
                 /WARPGROUP|BAR\.|SYNCS|BRA/ { chain = 0; moved = 0; next }
                 /R2UR/ { if (chain) moved = 1 }
                 END { print bad + 0 }' "$tmp/bsass")
    [ "$moved" -le 3 ] || bad="$bad vector-descriptors($moved)" ;;
  esac
  verdict "$spec" "$need" "$tmp/bsass" "$bad"
  # not a check yet (docs/PERF.md v15): how many of P^T's exponentials stay
  # under the dP^T GEMM (P_FIRST) before ptxas's wait for it
  awk '/DEPBAR.LE gsb0, 0x1/ && !seen { seen = 1; on = 1; next }
       on && /DEPBAR.LE gsb0, 0x0/ { under = n + 0; on = 0 }
       /MUFU.EX2/ { if (on) n++; all++ }
       END { if (seen) printf "     info: %d of %d exponentials before the wait for dP^T\n", under, all }' "$tmp/bsass"
}
for h in 64 128 256; do
  for c in 0 1; do check_bwd "hdim=$h,kind=bwd,wgmma=1,causal=$c" "HGMMA SYNCS UBLKRED LDGDEPBAR"; done
done
check_bwd "hdim=128,dtype=fp16,kind=bwd,wgmma=1,causal=1" "HGMMA SYNCS UBLKRED LDGDEPBAR"
for p in 64,64 128,128 128,64 64,128 256,256; do
  for c in 0 1; do check_bwd "hdim=${p%,*},hdim_v=${p#*,},kind=bwd,wgmma=2,causal=$c" "HGMMA SYNCS UBLKRED UTMALDG UBLKCP"; done
done
check_bwd "hdim=128,dtype=fp16,kind=bwd,wgmma=2" "HGMMA SYNCS UBLKRED UTMALDG UBLKCP"
echo "hopper_sass: $n variants, $fail failed"
[ "$fail" -eq 0 ]
