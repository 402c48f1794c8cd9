/* identity.c: the GPU identity every row is tagged with, and the cubin
 * checksum. */
#include "cache/store.h"
#include "gen/sources.h"

#include <stdio.h>

uint64_t fg_store_hash(const void *data, size_t n) { return fg_hash64(FG_HASH_SEED, data, n); }

void fg_store_build_suffix(int nvrtc_major, int nvrtc_minor, const char *tpl_hash, char *buf, size_t n) {
    snprintf(buf, n, "|nvrtc=%d.%d|tpl=%s", nvrtc_major, nvrtc_minor, tpl_hash);
}

void fg_store_identity(const char *gpu_name, int cc_major, int cc_minor, int sms, int driver, int nvrtc_major,
                       int nvrtc_minor, const char *tpl_hash, char *buf, size_t n) {
    char suffix[128];
    fg_store_build_suffix(nvrtc_major, nvrtc_minor, tpl_hash, suffix, sizeof suffix);
    snprintf(buf, n, "%s|cc=%d.%d|sms=%d|driver=%d%s", gpu_name, cc_major, cc_minor, sms, driver, suffix);
}
