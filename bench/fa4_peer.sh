#!/usr/bin/env bash
# FlashAttention-4 as a benchmark peer on the GPU machine (no network there),
# from the wheels that ../shared/tools/fa4-peer.sh fetch puts in .peers/a and
# .peers/b (about 100 MiB: more than one device call carries).
#
# A path carried in one device call is gone in the next, so the first call
# copies part a out of the tree, the second joins it with part b and installs:
#   here:        ../shared/tools/fa4-peer.sh fetch     (and .peers/ in .git/info/exclude)
#   device call: carry [".peers/a"], command "bash bench/fa4_peer.sh stage"
#   device call: carry [".peers/b"], command "bash bench/fa4_peer.sh install"
#   later calls (same warm machine): bench/gpu_python.sh and vs_torch.py find
#   it through /tmp/fa4/env.sh
# The calls must follow each other within the machine's idle time (~30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=/tmp/fa4
case "${1:-}" in
stage)
  mkdir -p "$stage"
  cp .peers/a/cu13.part.* "$stage/"
  echo "staged $(ls "$stage" | wc -l) part(s) in $stage" ;;
install)
  [ -n "$(ls "$stage"/cu13.part.* 2>/dev/null)" ] || { echo "fa4_peer: run 'stage' first (in the previous call)" >&2; exit 1; }
  w=$(mktemp -d)
  cat "$stage"/cu13.part.* .peers/b/cu13.part.* > "$w/$(cat .peers/b/big.name)"
  cp .peers/b/*.whl "$w/"
  python3 -m pip install -q --no-deps "$w"/*.whl 2>&1 | grep -vi warn || true
  sp=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "export PYTHONPATH=$sp/nvidia_cutlass_dsl/dsl_packages:\${PYTHONPATH:-}" > "$stage/env.sh"
  . "$stage/env.sh"
  python3 -c "from flash_attn.cute import flash_attn_func; print('FlashAttention-4 imports')" ;;
*)
  echo "usage: bench/fa4_peer.sh stage|install" >&2; exit 2 ;;
esac
