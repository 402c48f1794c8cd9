/* The rendered CUDA of score expressions compiles with NVRTC for sm_90a
 * (no GPU needed): the built-ins and their derivatives, and a sample of
 * random expressions and their derivatives (tests/score_gen.h) with small and huge int
 * constants (32- and 64-bit regions), each as a __device__ function over
 * the names of gen/score_expr.h, all in one probe.  The control: a
 * rendering with a name outside them is refused, so the probe can fail.
 * Exit 77 (skipped) without NVRTC. */
#include <stdlib.h>

#include "gen/compile.h"
#include "gen/expr_parse.h"
#include "gen/score_expr.h"
#include "gen/score_lib.h"
#include "gen/sources.h"
#include "score_gen.h"
#include "score_probe.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

static fg_status compile(const fg_sources *src, const char *body, int nfn, const char *name, fg_error *e) {
    fg_xbuf b = {0};
    fg_xbuf_put(&b, "%s%s", sp_head, body);
    /* every function's value reaches the output, so none is dead code */
    fg_xbuf_put(&b, "extern \"C\" __global__ void fg_probe_kernel(fg_score_probe_params p, float *o) {\n"
                    "    const float s = o[threadIdx.x];\n    float acc = 0.0f;\n");
    for (int k = 0; k < nfn; ++k) fg_xbuf_put(&b, "    acc += fg_score_%d(p, s, blockIdx.x, blockIdx.y, threadIdx.x, threadIdx.y);\n", k);
    fg_xbuf_put(&b, "    o[threadIdx.x] = acc;\n}\n");
    fg_cubin cb;
    const fg_status st = b.oom ? FG_ERR_OUT_OF_MEMORY : fg_compile_cubin(src, b.s, "sm_90a", name, &cb, e);
    if (st == FG_OK) {
        /* a real cubin: the kernel, with its registers counted */
        CHECK(cb.size > 1000 && cb.stats.registers > 0, "%s: a cubin of %zu bytes, %d registers", name, cb.size, cb.stats.registers);
        printf("%s: cubin of %zu bytes, %d registers\n", name, cb.size, cb.stats.registers);
        fg_cubin_free(&cb);
    }
    free(b.s);
    return st;
}

int main(void) {
    fg_error e = {0};
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) { CHECK(0, "no template sources"); return test_summary("test_score_nvrtc"); }
    fg_xbuf body = {0};
    int nfn = 0;
    /* the built-ins and their derivatives */
    int nb;
    const fg_score_builtin *bi = fg_score_builtins(&nb);
    const int64_t ci_small[2] = {64, 8};
    for (int i = 0; i < nb; ++i)
        for (int w = 0; w < 2; ++w) {
            fg_score_expr *x;
            if (fg_score_builtin_parse(&bi[i], w, &x, &e) != FG_OK) { CHECK(0, "%s", e.msg); fg_error_clear(&e); continue; }
            char *c = fg_score_expr_render(x, FG_SCORE_RENDER_CUDA, ci_small);
            if (w == 0) printf("%-12s %s\n", bi[i].name, c);
            sp_add_fn(&body, nfn++, c);
            free(c);
            fg_score_expr_free(x);
        }
    /* inf (FlexAttention's masking score_mod) and its derivative */
    {
        fg_score_expr *x = NULL, *d = NULL;
        if (fg_score_expr_parse("where(q_idx >= kv_idx, score, -inf) + min(score, inf) * 0.0 + sin(cos(score)) + tan(b)", NULL, 0,
                                NULL, 0, &x, &e) != FG_OK ||
            fg_score_expr_derivative(x, &d, &e) != FG_OK) {
            CHECK(0, "inf: %s", e.msg);
            fg_error_clear(&e);
        } else {
            for (int k = 0; k < 2; ++k) {
                char *c = fg_score_expr_render(k ? d : x, FG_SCORE_RENDER_CUDA, NULL);
                sp_add_fn(&body, nfn++, c);
                free(c);
            }
        }
        fg_score_expr_free(d);
        fg_score_expr_free(x);
    }
    /* random ones */
    const fg_score_name consts[] = {{"c", FG_SCORE_FLOAT}, {"n", FG_SCORE_INT}}, tables[] = {{"tf", FG_SCORE_FLOAT}, {"ti", FG_SCORE_INT}};
    sg_seed(getenv("FG_TEST_SEED") ? strtoull(getenv("FG_TEST_SEED"), NULL, 10) : 13);
    int w32 = 0;
    for (int i = 0; i < 150; ++i) {
        sg_tree t;
        sg_generate(&t, 2 + sg_pick(4));
        fg_score_expr *x;
        if (fg_score_expr_parse(t.text, consts, 2, tables, 2, &x, &e) != FG_OK) { CHECK(0, "%s: %s", t.text, e.msg); fg_error_clear(&e); continue; }
        const int64_t ci[2] = {0, i % 2 ? 7 : (int64_t)1 << 40};
        char *c = fg_score_expr_render(x, FG_SCORE_RENDER_CUDA, ci);
        w32 += strstr(c, "32(") != NULL;
        sp_add_fn(&body, nfn++, c);
        free(c);
        fg_score_expr *d = NULL;
        if (fg_score_expr_derivative(x, &d, &e) == FG_OK) {
            c = fg_score_expr_render(d, FG_SCORE_RENDER_CUDA, ci);
            sp_add_fn(&body, nfn++, c);
            free(c);
        }
        fg_error_clear(&e);
        fg_score_expr_free(d);
        fg_score_expr_free(x);
    }
    const fg_status st = body.oom ? FG_ERR_OUT_OF_MEMORY : compile(&src, body.s, nfn, "score_probe", &e);
    CHECK(st == FG_OK, "the probe of %d score functions: %s", nfn, e.msg);
    printf("%s: %d score functions (%d with 32-bit regions) compiled for sm_90a\n", st == FG_OK ? "ok" : "FAIL", nfn, w32);
    fg_error_clear(&e);
    /* control: a name the kernel does not define */
    CHECK(compile(&src, "__device__ __forceinline__ float fg_score_0(const fg_score_probe_params &p, float s, int b, int h, int q_idx, int kv_idx) "
                        "{ return p.score_c[0] + s; }\n", 1, "control", &e) == FG_ERR_COMPILE, "the probe accepted an unknown name");
    fg_error_clear(&e);
    free(body.s);
    fg_sources_free(&src);
    return test_summary("test_score_nvrtc");
}
