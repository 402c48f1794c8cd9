#!/usr/bin/env bash
# Every C GPU test, the Python GPU tests and compute-sanitizer runs, in
# parallel on one GPU (most of their time is NVRTC compiling on the CPU),
# each job with its own kernel cache file so that none waits on another's
# SQLite lock.  One log per job in $OUT/gpu_check (default ./out), a summary
# line per job at the end, exit 1 if any job failed.  About 7 minutes on a
# 16-core H200 machine, cold caches (2026-12-01: the forward, backward and
# Python jobs ~200 s each; test_gpu_fp8 ~390 s, measured beside one other test).
#   tools/gpu_check.sh            tests and sanitizers
#   tools/gpu_check.sh --no-san   tests only
set -u
cd "$(dirname "$0")/.."
out=${OUT:-out}/gpu_check
mkdir -p "$out" "$out/cache"
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-/usr/local/cuda/lib64} FLASHGEN_LIBRARY=${FLASHGEN_LIBRARY:-$PWD/build/libflashgen.so}
limit=${GPU_CHECK_TIMEOUT:-400}
san=${COMPUTE_SANITIZER:-compute-sanitizer}
job() {
  local n=$1 l=$limit; shift
  # test_gpu_fp8 ran past a 300 s limit beside the other jobs and took
  # ~390 s beside one other test on a 16-core H200 machine (2026-12-01)
  [ "$n" = fp8 ] && l=$(( limit > 600 ? limit : 600 ))
  ( export FLASHGEN_CACHE=$out/cache/$n.db; s=$(date +%s)
    timeout "$l" "$@" > "$out/$n.log" 2>&1; echo "exit=$? secs=$(( $(date +%s) - s ))" >> "$out/$n.log" ) &
}
B=./build/tests
for t in forward backward infer kv_append score score_fwd fp8 patterns cache threads; do
  [ -x "$B/test_gpu_$t" ] && job "$t" "$B/test_gpu_$t"
done
job python bash -c 'rc=0; for t in python/tests/test_*_gpu.py; do echo "== $t"; python3 "$t" 2>&1 | tail -8; r=${PIPESTATUS[0]}; echo "exit=$r"; [ "$r" = 0 ] || [ "$r" = 77 ] || rc=1; done; exit $rc'
if [ "${1:-}" != "--no-san" ]; then
  job san_forward bash tools/sanitize.sh
  for tool in memcheck racecheck synccheck; do
    job "san_bwd_$tool" "$san" --tool "$tool" --error-exitcode 9 "$B/test_gpu_backward" wgmma
    job "san_kv_$tool" "$san" --tool "$tool" --error-exitcode 9 "$B/test_gpu_kv_append"
  done
  job san_score_race "$san" --tool racecheck --error-exitcode 9 "$B/test_gpu_score_fwd" window
fi
wait
rc=0
for f in "$out"/*.log; do
  last=$(tail -1 "$f")
  summary=$(grep -E "passed|checks|SUMMARY" "$f" | tail -2 | tr '\n' ' ')
  printf "%-18s %s  %s\n" "$(basename "$f" .log)" "$last" "$summary"
  case "$last" in exit=0*|exit=77*) ;; *) rc=1 ;; esac
done
exit $rc
