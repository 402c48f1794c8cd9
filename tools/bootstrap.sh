#!/usr/bin/env bash
# One command on a fresh Debian/Ubuntu machine with the CUDA toolkit:
# installs the missing packages, builds, and runs the main job
# (`flashgen run`: generate, compile, launch, check against the CPU
# reference, report).  Without a GPU, `flashgen run` generates and compiles
# the kernel for sm_90a and says why it cannot launch.
#
#   ./tools/bootstrap.sh [flashgen run options...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
[ -f /usr/include/lua5.4/lua.h ] || need+=(liblua5.4-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
    echo "bootstrap: need root to install ${need[*]}: run as root or install sudo" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

cuda="${CUDA_HOME:-/usr/local/cuda}"
if [ ! -f "$cuda/include/cuda.h" ] || [ ! -f "$cuda/include/nvrtc.h" ]; then
  echo "bootstrap: the CUDA toolkit headers are not in $cuda/include; install the CUDA toolkit" >&2
  echo "           (NVRTC 12.8+; 13.x is tested) or set CUDA_HOME" >&2
  exit 1
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCUDA_HOME="$cuda" >/dev/null
cmake --build build -j"$(nproc)"
export LD_LIBRARY_PATH="$cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
./build/flashgen info
./build/flashgen run "$@"
