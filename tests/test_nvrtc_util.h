/* test_nvrtc_util.h: what the NVRTC probe tests share: skipping (exit
 * status 77) where NVRTC cannot be loaded, and the template sources. */
#ifndef FG_TEST_NVRTC_UTIL_H
#define FG_TEST_NVRTC_UTIL_H
#include <stdio.h>
#include <stdlib.h>

#include "gen/compile.h"
#include "gen/sources.h"
#include "test_util.h"

/* Loads NVRTC (else prints SKIP and exits 77) and the sources into *src;
 * returns 0, or 1 with the reason printed when the sources fail. */
static inline int nvrtc_sources_or_skip(fg_sources *src) {
    fg_error e = {0};
    fg_nvrtc_info info;
    if (fg_nvrtc_load(&info, &e) != FG_OK) {
        printf("SKIP: %s\n", e.msg);
        fg_error_clear(&e);
        exit(77);
    }
    if (fg_sources_load(src, &e) != FG_OK) {
        fprintf(stderr, "loading the template sources: %s\n", e.msg);
        fg_error_clear(&e);
        return 1;
    }
    return 0;
}

/* A compile-time probe (static_asserts over the kernels' constexpr
 * helpers): it must compile for sm_80, and must fail with an error naming
 * `fails_with` once its text `good` is replaced by `bad` (as long): so the
 * probe can fail. */
static inline void nvrtc_probe(const fg_sources *src, const char *name, const char *probe, const char *good,
                               const char *bad, const char *fails_with) {
    fg_cubin cb;
    fg_error e = {0};
    const fg_status st = fg_compile_cubin(src, probe, "sm_80", name, &cb, &e);
    CHECK(st == FG_OK, "%s: %s", name, e.msg);
    if (st == FG_OK) fg_cubin_free(&cb);
    fg_error_clear(&e);
    char *inverted = malloc(strlen(probe) + 1);
    strcpy(inverted, probe);
    char *at = strstr(inverted, good);
    CHECK(at && strlen(good) == strlen(bad), "%s: '%s' not in the probe", name, good);
    if (at) memcpy(at, bad, strlen(bad));
    CHECK(fg_compile_cubin(src, inverted, "sm_80", name, &cb, &e) == FG_ERR_COMPILE, "%s: an inverted probe compiles", name);
    CHECK_CONTAINS(e.msg, fails_with);
    fg_error_clear(&e);
    free(inverted);
}
#endif
