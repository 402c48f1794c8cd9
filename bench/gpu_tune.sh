#!/usr/bin/env bash
# The GPU half of issue 3 in one device call: GPU tests, `flashgen tune --all`,
# then the benchmark grid with tuned vs heuristic configurations, both dtypes.
# Logs go to $OUT (default ./out).  Run from the repository root after build/.
set -uo pipefail
OUT=${OUT:-./out}
mkdir -p "$OUT"
export FLASHGEN_CACHE=${FLASHGEN_CACHE:-/tmp/flashgen-tune/cache.db}
rm -rf "$(dirname "$FLASHGEN_CACHE")"
fg=./build/flashgen
$fg info | tee "$OUT/info.log"
echo "== ctest -L gpu"
(cd build && timeout ${CTEST_LIMIT:-200} ctest -L gpu -R "${CTEST_FILTER:-.}" --output-on-failure) > "$OUT/ctest_gpu.log" 2>&1
tail -15 "$OUT/ctest_gpu.log"
grep -E "first launch|fg_tune|tuned |identity" "$OUT/ctest_gpu.log" || true
echo "== tune --all"
rm -rf "$(dirname "$FLASHGEN_CACHE")"
time timeout ${TUNE_LIMIT:-260} $fg tune --all --dtype ${TUNE_DTYPE:-both} 2> "$OUT/tune_all.err" | tee "$OUT/tune_all.log"
grep -E "TFLOP/s  heuristic|error|FG_ERR" "$OUT/tune_all.err" | tail -90
$fg cache ls | tee "$OUT/cache_ls.log"
timeout 30 $fg cache show > "$OUT/cache_show.log"
timeout 30 $fg cache show --candidates --spec "hdim=128,dtype=bf16,causal=0" > "$OUT/cache_candidates_128.log"
echo "== bench tuned vs heuristic"
for dt in ${BENCH_DTYPES:-bf16 fp16}; do
  timeout ${BENCH_LIMIT:-60} $fg bench --dtype $dt --compare-heuristic --csv "$OUT/bench_$dt.csv" | tee "$OUT/bench_$dt.log"
done
echo "== warm start after tune (new process, cache file full)"
$fg run hdim=128,dtype=bf16,causal=bottom_right --iters 5 | tail -4
