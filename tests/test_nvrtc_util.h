/* test_nvrtc_util.h: what the NVRTC probe tests share: skipping (exit
 * status 77) where NVRTC cannot be loaded, and the template sources. */
#ifndef FG_TEST_NVRTC_UTIL_H
#define FG_TEST_NVRTC_UTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/compile.h"
#include "gen/render.h"
#include "gen/sources.h"
#include "select/bwd_config.h"
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
/* The runtime's rule for the backward (fg_bwd_pick_config): v's backward
 * candidates for arch (smem bytes per block) rendered and compiled in turn
 * until one has no spills; each source must contain `need` (NULL: none).
 * Returns whether one compiled clean; what: the caller's name for v. */
static inline int bwd_compile_clean(const fg_sources *src, fg_variant *v, const char *arch, int smem, const char *need,
                                    const char *what) {
    fg_config c[8];
    const int n = fg_bwd_candidates(&v->spec, smem, 0, 0, c, 8);
    for (int i = 0; i < n; ++i) {
        v->cfg = c[i];
        char key[512];
        fg_variant_key(v, src->hash_hex, 0, 0, arch, key, sizeof key);
        fg_rendered r;
        fg_error e = {0};
        if (fg_render_forward(src, v, key, &r, &e) != FG_OK) {
            CHECK(0, "render %s: %s", what, e.msg);
            fg_error_clear(&e);
            return 0;
        }
        if (need) CHECK(strstr(r.source, need) != NULL, "%s: the source has no '%s'", what, need);
        fg_cubin cb;
        const fg_status st = fg_compile_cubin(src, r.source, arch, key, &cb, &e);
        fg_rendered_free(&r);
        CHECK(st == FG_OK, "compile %s %s: %s", what, arch, e.msg);
        if (st != FG_OK) { fg_error_clear(&e); return 0; }
        const int clean = !cb.stats.spill_stores && !cb.stats.spill_loads && !cb.stats.stack_frame;
        printf("  %s %-6s block %dx%d warps %d: %d registers%s\n", what, arch, c[i].block_m, c[i].block_n, c[i].warps,
               cb.stats.registers, clean ? "" : " (spills: next candidate)");
        fflush(stdout);
        fg_cubin_free(&cb);
        if (clean) return 1;
    }
    return 0;
}

#endif
