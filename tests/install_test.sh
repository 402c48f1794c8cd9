#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds two consumers of it:
# one through find_package(flashgen), one through pkg-config.  Each must
# start and report (without a GPU: FG_ERR_NO_DRIVER; with one: FG_OK).
set -euo pipefail
build=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
mkdir -p "$tmp/consumer"
cat > "$tmp/consumer/main.c" <<'C'
#include <flashgen.h>
#include <stdio.h>
int main(void) {
    fg_context *ctx;
    if (fg_context_create(&ctx) != FG_OK) return 1;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 1, 1, 1, 16, 16);
    fg_status s = fg_attention_prepare(ctx, &d);
    printf("consumer: %s\n", fg_status_name(s));
    fg_context_destroy(ctx);
    return s == FG_OK || s == FG_ERR_NO_DRIVER || s == FG_ERR_NO_DEVICE ? 0 : 1;
}
C
cat > "$tmp/consumer/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(flashgen REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE flashgen::flashgen_shared)
C
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
"$tmp/consumer/build/consumer"
export PKG_CONFIG_PATH="$(dirname "$(find "$tmp/prefix" -name flashgen.pc)")"
cc "$tmp/consumer/main.c" $(pkg-config --cflags --libs flashgen) -o "$tmp/pc"
LD_LIBRARY_PATH="$(pkg-config --variable=libdir flashgen)" "$tmp/pc"
echo "install_test: 2 passed, 0 failed"
