/* The rendered CUDA of a mask computes what the host evaluator computes,
 * bit for bit, with no undefined behaviour that NVRTC may fold (issue 16
 * item 2: `kv_idx <= q_idx && kv_idx * 4611686018427387904 >= 0` became
 * "kv >= 0" in the PTX while the host masks every key with kv % 4 in {2, 3}).
 *
 * A probe is compiled with NVRTC for sm_90a (no GPU needed): the rendered
 * expression, with the real fg_mask.cuh helpers, in a constexpr function,
 * and static_asserts that it equals fg_mask_expr_eval at points where the
 * arithmetic wraps.  Constant evaluation must diagnose signed overflow, so
 * the probe does not compile if the rendering has any (the control case
 * checks that with plain long long arithmetic), nor if a value differs.
 * Exit 77 (skipped) without NVRTC. */
#include <stdlib.h>

#include "gen/mask_expr.h"
#include "gen/sources.h"
#include "gen/compile.h"
#include "runtime/pattern.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

typedef struct sbuf { char *s; size_t n, cap; } sbuf;

static void put(sbuf *b, const char *t) {
    const size_t k = strlen(t);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
    memcpy(b->s + b->n, t, k + 1);
    b->n += k;
}

/* The probe for one mask: cuda (rendered), its constants, and the host's
 * value at each point (q, kv) of qs x ks. */
static char *probe_source(const char *cuda, const fg_mask_expr *e, const int64_t *consts, int nconst, int sq, int sk,
                          const int *qs, const int *ks, int n) {
    sbuf b = {0};
    char line[512];
    put(&b, "#include \"fg_mask.cuh\"\n"
            "struct fg_probe_params { long long mask_c[16]; int seqlen_q, seqlen_k; };\n"
            "__host__ __device__ constexpr bool fg_probe_mask(const fg_probe_params &p, int b, int h, int q_idx, int kv_idx) {\n"
            "    return (");
    put(&b, cuda);
    put(&b, ") != 0;\n}\nconstexpr fg_probe_params P0 = {{");
    for (int i = 0; i < nconst; ++i) {
        snprintf(line, sizeof line, "%s%lldll", i ? ", " : "", (long long)consts[i]);
        put(&b, line);
    }
    snprintf(line, sizeof line, "}, %d, %d};\n", sq, sk);
    put(&b, line);
    fg_mask_env env = {0, 0, 0, 0, sq, sk, consts};
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
            env.q_idx = qs[i];
            env.kv_idx = ks[j];
            const int want = fg_mask_expr_eval(e, &env) != 0;
            snprintf(line, sizeof line, "static_assert(fg_probe_mask(P0, 0, 0, %d, %d) == %d, \"q_idx=%d kv_idx=%d: the host says %d\");\n",
                     qs[i], ks[j], want, qs[i], ks[j], want);
            put(&b, line);
        }
    put(&b, "extern \"C\" __global__ void fg_probe_kernel(int *o) { o[0] = fg_probe_mask(P0, 0, 0, threadIdx.x, threadIdx.y); }\n");
    return b.s;
}

int main(void) {
    fg_error e = {0};
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) { CHECK(0, "no template sources"); return test_summary("test_mask_nvrtc"); }
    static const char *const masks[] = {
        "{mask='kv_idx <= q_idx && kv_idx * 4611686018427387904 >= 0'}",
        "{mask='(q_idx * 3000000007 + kv_idx * 7) % 5 != 1 && kv_idx <= q_idx + 100'}",
        "{mask='(q_idx - kv_idx + 4718756564 + 5068239458) % 7919 < 3960'}",
        "{mask='-(kv_idx * 4611686018427387904) - q_idx * 4611686018427387904 * 2 < abs(kv_idx - q_idx * 4611686018427387904)'}",
        "{mask='max(q_idx * w, kv_idx) / (kv_idx - 3) > min(kv_idx * w, 2)', consts={w=4611686018427387904}}",
        "sliding_window", /* 32-bit: the same probe */
    };
    const int qs[] = {0, 1, 2, 3, 5, 6, 7, 100, 2047, 1 << 20}, ks[] = {0, 1, 2, 3, 4, 5, 6, 7, 99, 1 << 20};
    const int npts = (int)(sizeof qs / sizeof qs[0]);
    for (unsigned i = 0; i < sizeof masks / sizeof masks[0]; ++i) {
        fg_pattern *p = NULL;
        if (fg_pattern_create_internal(&src, masks[i], NULL, &p, &e) != FG_OK) { CHECK(0, "%s: %s", masks[i], e.msg); fg_error_clear(&e); continue; }
        const char *cuda = fg_pattern_mask(p, FG_MASK_CUDA);
        int64_t consts[FG_MASK_MAX_CONSTS];
        const int nc = fg_pattern_mask_consts(p, NULL, consts, FG_MASK_MAX_CONSTS);
        char *probe = probe_source(cuda, fg_pattern_expr(p), consts, nc, 4096, 4096, qs, ks, npts);
        fg_cubin cb;
        const fg_status st = fg_compile_cubin(&src, probe, "sm_90a", masks[i], &cb, &e);
        CHECK(st == FG_OK, "%s (rendered %s): %s", masks[i], cuda, e.msg);
        printf("%-4s %s -> %s\n", st == FG_OK ? "ok" : "FAIL", masks[i], cuda);
        if (st == FG_OK) fg_cubin_free(&cb);
        fg_error_clear(&e);
        free(probe);
        fg_pattern_destroy(p);
    }
    /* control: the old rendering (plain long long arithmetic) of the first
     * mask is refused by the probe, so the probe can fail */
    fg_mask_expr *x;
    if (fg_mask_expr_parse("kv_idx <= q_idx && kv_idx * 4611686018427387904 >= 0", NULL, 0, &x, &e) == FG_OK) {
        char *probe = probe_source("(((long long)kv_idx <= (long long)q_idx) && (((long long)kv_idx * 4611686018427387904ll) >= 0ll))", x,
                                   NULL, 0, 4096, 4096, qs, ks, npts);
        fg_cubin cb;
        const fg_status st = fg_compile_cubin(&src, probe, "sm_90a", "control", &cb, &e);
        CHECK(st == FG_ERR_COMPILE, "the probe accepted signed overflow");
        CHECK_CONTAINS(e.msg, "expression must have a constant value");
        if (st == FG_OK) fg_cubin_free(&cb);
        fg_error_clear(&e);
        free(probe);
        fg_mask_expr_free(x);
    }
    fg_sources_free(&src);
    return test_summary("test_mask_nvrtc");
}
