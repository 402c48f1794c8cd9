#!/usr/bin/env bash
# The wheel on a GPU machine that has PyTorch but no network (issue 15): the
# wheel built elsewhere (`pip wheel . --no-deps -w dist`, dist/ carried) is
# installed next to PyTorch without its dependencies (PyTorch's CUDA 13 wheels
# brought nvidia-cuda-nvrtc and nvidia-cuda-runtime), and then, with no CUDA
# toolkit on any path (no CUDA variable, PATH and LD_LIBRARY_PATH without it,
# /usr/local/cuda* hidden where a mount namespace can be made), from a folder
# outside the repository: `python -m flashgen info` (NVRTC and headers must
# come from a pip package), the Python GPU test and the CPU Python tests
# against the installed package, and `flashgen run` through the console
# script.  Logs go to $OUT (default ./out).
#
#   OUT=out tools/gpu_wheel.sh dist/flashgen-*.whl
#
# The install is `pip install --target` into a folder on PYTHONPATH rather
# than a virtual environment: a venv made from the image's python3 (itself a
# venv) would not see that venv's torch.  Exit status 1 if a check failed.
set -uo pipefail
wheel=${1:?usage: tools/gpu_wheel.sh WHEEL}
wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")
cd "$(dirname "$0")/.."
OUT=${OUT:-./out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
py=$(command -v "${PYTHON:-python3}")
work=$(mktemp -d /tmp/flashgen-gpu-wheel.XXXXXX)
site="$work/site-packages"
"$py" -m pip install -q --no-deps --no-index --no-compile --target "$site" "$wheel" || exit 1
mkdir -p "$work/run/python/tests" "$work/run/tests"
cp python/tests/_testenv.py python/tests/test_attention_gpu.py python/tests/test_binding_cpu.py python/tests/test_cuda_paths.py \
  "$work/run/python/tests/"
cp tests/test_mask_python.py "$work/run/tests/"
cp -r templates "$work/run/templates"
cat > "$work/run/check.sh" <<'EOF'
set -u
cd "$(dirname "$0")"
pass=0 fail=0 skip=0
check() {  # check NAME LIMIT_S COMMAND...
  local r
  echo "=== $1"
  timeout "$2" "${@:3}" > "$OUT/$1.log" 2>&1; r=$?
  tail -5 "$OUT/$1.log" | sed 's/^/   | /'
  if [ $r = 0 ]; then pass=$((pass + 1)); echo "ok: $1"
  elif [ $r = 77 ]; then skip=$((skip + 1)); echo "skipped: $1"
  else fail=$((fail + 1)); echo "FAIL: $1 (exit $r)"; fi
}
echo "toolkit visible: $(ls -d /usr/local/cuda*/lib64/libnvrtc.so.13 2>/dev/null || echo no)"
check info 60 python -m flashgen info
check nvrtc_from_pip 5 grep -q '^NVRTC: .*, from pip package)$' "$OUT/info.log"
check headers_from_pip 5 grep -q '^headers: .*(from pip package)$' "$OUT/info.log"
check library_from_wheel 30 sh -c "python -c 'import flashgen; print(flashgen.library_path())' | grep '^$SITE/flashgen/_lib/'"
check test_attention_gpu 300 python python/tests/test_attention_gpu.py
check test_binding_cpu 120 python python/tests/test_binding_cpu.py
check test_cuda_paths 120 python python/tests/test_cuda_paths.py
check test_mask_python 60 python tests/test_mask_python.py
check flashgen_run 120 "$SITE/bin/flashgen" run hdim=128,dtype=bf16,causal=bottom_right --require-gpu
echo "gpu wheel: $pass passed, $fail failed, $skip skipped"
[ $fail = 0 ]
EOF
envs=(env -i HOME="$HOME" LANG=C.UTF-8 PATH="$(dirname "$py"):/usr/bin:/bin" PYTHONPATH="$site" SITE="$site"
      OUT="$OUT" FLASHGEN_CACHE=off PYTHONUNBUFFERED=1)
# the driver may be found through LD_LIBRARY_PATH (/usr/local/nvidia): keep all but the toolkit's entries
ld=$(printf '%s' "${LD_LIBRARY_PATH:-}" | tr ':' '\n' | grep -v '^/usr/local/cuda' | paste -sd: -)
envs+=(LD_LIBRARY_PATH="$ld")
[ -n "${NVIDIA_VISIBLE_DEVICES:-}" ] && envs+=(NVIDIA_VISIBLE_DEVICES="$NVIDIA_VISIBLE_DEVICES")
masks=$(for d in /usr/local/cuda*; do [ -d "$d" ] && [ ! -L "$d" ] && printf 'mount -t tmpfs none %q; ' "$d"; done)
if [ -n "$masks" ] && unshare -m true 2>/dev/null; then
  unshare -m sh -c "${masks}exec \"\$@\"" _ "${envs[@]}" bash "$work/run/check.sh"
else
  echo "(no mount namespace here: /usr/local/cuda stays on disk, but on no path; info must still name a pip package)"
  "${envs[@]}" bash "$work/run/check.sh"
fi
rc=$?
rm -rf "$work"
exit $rc
