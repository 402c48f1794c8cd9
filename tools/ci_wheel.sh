#!/usr/bin/env bash
# The wheel in CI (issue 15): `pip wheel .` from this checkout, `auditwheel
# show` on it, then a fresh virtual environment with the wheel installed, and
# there, with no CUDA toolkit on any path (no CUDA variable, PATH and
# LD_LIBRARY_PATH without it, and /usr/local/cuda* hidden by an empty mount
# where a mount namespace can be made): `python -m flashgen info` must name
# NVRTC and the headers of the nvidia-* pip packages in that environment,
# `python -m flashgen compile hdim=128 --arch sm_90a` and the `flashgen`
# console script must compile, and the CPU Python tests run against the
# installed package (copied outside the repository, so the source tree's
# python/ is not what they import).
#
#   tools/ci_wheel.sh            (needs network for PyPI: scikit-build-core,
#                                 auditwheel, nvidia-cuda-nvrtc/-runtime)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d /tmp/flashgen-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

echo "== pip wheel ."
python3 -m venv "$work/tools"
t0=$SECONDS
"$work/tools/bin/pip" wheel -q --no-deps -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/flashgen-*.whl)
echo "built $(basename "$wheel") in $((SECONDS - t0)) s, $(du -k "$wheel" | cut -f1) KiB"
"$work/tools/bin/python" -m zipfile -l "$wheel" | awk 'NR > 1 && $1 !~ /dist-info/ {print "  " $1}'

echo "== auditwheel show"
"$work/tools/bin/pip" install -q auditwheel
"$work/tools/bin/auditwheel" show "$wheel" | tee "$work/auditwheel.txt"
tr -s '\n ' '  ' < "$work/auditwheel.txt" | grep -q 'is consistent with the following platform tag: "manylinux_' ||
  { echo "FAIL: the wheel is not manylinux-consistent"; exit 1; }

echo "== pip install into a fresh venv"
python3 -m venv "$work/venv"
t0=$SECONDS
"$work/venv/bin/pip" install -q "$wheel"
echo "installed in $((SECONDS - t0)) s"

# the installed package's tests, outside the repository, in the repository's
# layout (test_cuda_paths reads templates/fg_params.h) but without python/flashgen
mkdir -p "$work/run/tests" "$work/run/python/tests"
cp tests/test_mask_python.py "$work/run/tests/"
cp python/tests/_testenv.py python/tests/test_cuda_paths.py python/tests/test_binding_cpu.py "$work/run/python/tests/"
cp -r templates "$work/run/templates"
cat > "$work/run/check.sh" <<'EOF'
# runs with a clean environment in the venv; $1: the venv
set -u
venv=$1
cd "$(dirname "$0")"
pass=0 fail=0 skip=0
check() {  # check NAME COMMAND...: exit 0 passes, 77 skips
  local out r
  out=$("${@:2}" 2>&1); r=$?
  printf '%s\n' "$out" | tail -4 | sed 's/^/   | /'
  if [ $r = 0 ]; then pass=$((pass + 1)); echo "ok: $1"
  elif [ $r = 77 ]; then skip=$((skip + 1)); echo "skipped: $1"
  else fail=$((fail + 1)); echo "FAIL: $1 (exit $r)"; fi
}
info=$(python -m flashgen info 2>&1)
printf '%s\n' "$info" | sed 's/^/   | /'
check "NVRTC from the pip package" sh -c "printf '%s\n' \"\$1\" | grep -q \"^NVRTC: .*($venv/lib/python[0-9.]*/site-packages/nvidia/cu13/lib/libnvrtc.so.13, from pip package)\"" _ "$info"
check "headers from the pip package" sh -c "printf '%s\n' \"\$1\" | grep -q \"^headers: $venv/lib/python[0-9.]*/site-packages/nvidia/cu13/include (from pip package)\"" _ "$info"
check "library from the wheel" sh -c "python -c 'import flashgen; print(flashgen.library_path())' | grep -q '^$venv/.*/flashgen/_lib/libflashgen.so\$'"
check "python -m flashgen compile hdim=128 --arch sm_90a" python -m flashgen compile hdim=128 --arch sm_90a
check "flashgen compile hdim=64,causal=1 (console script)" flashgen compile hdim=64,causal=1 --arch sm_90a
check "cache file per user (XDG)" sh -c 'env -u FLASHGEN_CACHE XDG_CACHE_HOME="$PWD/xdg" flashgen cache path | grep -qx "$PWD/xdg/flashgen/cache.db"'
check "no toolkit visible" sh -c '! ls /usr/local/cuda/lib64/libnvrtc.so.13 2>/dev/null || [ "$FG_NO_MASK" = 1 ]'
for t in tests/test_mask_python.py python/tests/test_cuda_paths.py python/tests/test_binding_cpu.py; do
  check "$t" python "$t"
done
echo "wheel: $pass passed, $fail failed, $skip skipped"
[ $fail = 0 ]
EOF

echo "== in the venv, no CUDA toolkit on any path"
envs=(env -i HOME="$HOME" LANG=C.UTF-8 PATH="$work/venv/bin:/usr/bin:/bin" FLASHGEN_CACHE=off)
if unshare -m true 2>/dev/null; then
  # hide every /usr/local/cuda* folder (the toolkit, and ldconfig's entries into it)
  masks=$(for d in /usr/local/cuda*; do [ -d "$d" ] && [ ! -L "$d" ] && printf 'mount -t tmpfs none %q; ' "$d"; done)
  unshare -m sh -c "${masks}exec \"\$@\"" _ "${envs[@]}" FG_NO_MASK=0 bash "$work/run/check.sh" "$work/venv"
else
  echo "(no mount namespace here: /usr/local/cuda stays visible; flashgen must still prefer the pip packages)"
  "${envs[@]}" FG_NO_MASK=1 bash "$work/run/check.sh" "$work/venv"
fi
