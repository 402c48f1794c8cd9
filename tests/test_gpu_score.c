/* On the GPU: the rendered CUDA of score expressions computes what the host
 * evaluator computes (gen/score_expr.h's promise): the built-ins, their
 * derivatives, and random expressions (tests/score_gen.h) with their
 * derivatives, at points with small and huge positions, special scores
 * (0, -0, denormal, 1e30, inf, NaN), int constants that make regions 32- or
 * 64-bit, and table indices out of range.  Bit-identical for expressions
 * without tanh, exp2, log2; within 1e-5 relative with them.  Without a GPU
 * it compiles the probe (NVRTC) and skips (77). */
#include <math.h>
#include <stdlib.h>

#include "gen/compile.h"
#include "gen/score_lib.h"
#include "gen/sources.h"
#include "score_gen.h"
#include "score_probe.h"
#include "runtime/cuda_api.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

#define NPTS 512
#define MAXFN 700

typedef struct fn { fg_score_expr *e; int param; } fn; /* param: which environment below */

static const fg_cuda *cu;

#define CU(call) do { CUresult r_ = (call); if (r_ != CUDA_SUCCESS) { char m_[128]; CHECK(0, "%s: %s", #call, fg_cuda_errstr(cu, r_, m_, sizeof m_)); goto out; } } while (0)

static int has_transcendental(const fg_score_expr *e) {
    char *t = fg_score_expr_render(e, FG_SCORE_RENDER_TEXT, NULL);
    const int r = t && (strstr(t, "tanh(") || strstr(t, "exp2(") || strstr(t, "log2("));
    free(t);
    return r;
}

int main(void) {
    fg_error err = {0};
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) { CHECK(0, "no template sources"); return test_summary("test_gpu_score"); }
    sg_seed(getenv("FG_TEST_SEED") ? strtoull(getenv("FG_TEST_SEED"), NULL, 10) : 13);

    /* the functions: built-ins (param set 0) and random ones with derivatives */
    static fn fns[MAXFN];
    int nfn = 0;
    int nb;
    const fg_score_builtin *bi = fg_score_builtins(&nb);
    const fg_score_name consts[] = {{"c", FG_SCORE_FLOAT}, {"n", FG_SCORE_INT}}, tables[] = {{"tf", FG_SCORE_FLOAT}, {"ti", FG_SCORE_INT}};
    for (int i = 0; i < nb; ++i)
        for (int w = 0; w < 2; ++w)
            if (fg_score_builtin_parse(&bi[i], w, &fns[nfn].e, &err) == FG_OK)
                fns[nfn++].param = !strcmp(bi[i].name, "rel_bias") ? 3 : !strcmp(bi[i].name, "t5_bias") ? 4 : 2;
    while (nfn + 2 <= MAXFN) {
        sg_tree t;
        sg_generate(&t, 2 + sg_pick(4));
        fg_score_expr *x;
        if (fg_score_expr_parse(t.text, consts, 2, tables, 2, &x, &err) != FG_OK) { CHECK(0, "%s", err.msg); break; }
        const int param = nfn % 2;
        fns[nfn].e = x; fns[nfn++].param = param;
        if (fg_score_expr_derivative(x, &fns[nfn].e, &err) == FG_OK) fns[nfn++].param = param;
        fg_error_clear(&err);
    }
    /* the environments: 0 and 1 the random names with n small and huge;
     * 2 softcap and alibi; 3 rel_bias; 4 t5_bias (L = nb = 5) */
    sg_env base;
    sg_random_env(&base);
    static const float slope[4] = {0.5f, 0.25f, 0.125f, 0.0625f};
    static float bias[64];
    static int32_t bucket[9];
    for (int i = 0; i < 64; ++i) bias[i] = (float)i * 0.75f - 20.0f;
    for (int i = 0; i < 9; ++i) bucket[i] = i / 2;
    const int64_t ci[5][2] = {{0, 7}, {0, (int64_t)1 << 40}, {5, 5}, {5, 5}, {5, 5}};
    const float cf[5][2] = {{base.cf[0], 0}, {base.cf[0], 0}, {30.0f, 0}, {0, 0}, {0, 0}};
    const fg_score_table tabs[5][2] = {{{base.tf, 7}, {base.ti, 5}}, {{base.tf, 7}, {base.ti, 5}}, {{slope, 4}, {slope, 4}},
                                       {{bias, 64}, {bias, 64}}, {{bucket, 9}, {bias, 64}}};

    /* the points */
    static float score[NPTS];
    static int pts[NPTS][4];
    for (int i = 0; i < NPTS; ++i) {
        sg_env v;
        sg_random_env(&v);
        score[i] = v.score;
        pts[i][0] = (int)v.b; pts[i][1] = (int)v.h; pts[i][2] = (int)v.q; pts[i][3] = (int)v.kv;
    }

    /* the probe: out[k * NPTS + i] = fg_score_k(P[param k], point i) */
    fg_xbuf body = {0};
    fg_xbuf_put(&body, "%s", sp_head);
    for (int k = 0; k < nfn; ++k) {
        char *c = fg_score_expr_render(fns[k].e, FG_SCORE_RENDER_CUDA, ci[fns[k].param]);
        sp_add_fn(&body, k, c);
        free(c);
    }
    fg_xbuf_put(&body, "extern \"C\" __global__ void fg_probe(const fg_score_probe_params *P, const float *score, const int *pt, float *out) {\n"
                       "    const int i = blockIdx.x * blockDim.x + threadIdx.x;\n    if (i >= %d) return;\n"
                       "    const float s = score[i];\n    const int b = pt[4 * i], h = pt[4 * i + 1], q = pt[4 * i + 2], kv = pt[4 * i + 3];\n", NPTS);
    for (int k = 0; k < nfn; ++k) fg_xbuf_put(&body, "    out[%d * %d + i] = fg_score_%d(P[%d], s, b, h, q, kv);\n", k, NPTS, k, fns[k].param);
    fg_xbuf_put(&body, "}\n");
    CHECK(!body.oom, "out of memory");
    fg_cubin cb = {0};
    CUdevice dev = 0;
    CUcontext ctx = NULL;
    int skipped = 0;
    CUmodule mod = NULL;
    CUfunction f;
    CUdeviceptr dp = 0, ds = 0, dpt = 0, dout = 0, dt[8] = {0};
    float *host_out = malloc(sizeof(float) * (size_t)nfn * NPTS);
    /* compiled first: without a GPU the test still checks that much, then skips */
    if (fg_compile_cubin(&src, body.s, "sm_90a", "score_gpu_probe", &cb, &err) != FG_OK) { CHECK(0, "%s", err.msg); goto out; }
    printf("probe of %d functions compiled (%zu bytes of cubin)\n", nfn, cb.size);
    if (fg_cuda_get(&cu, &err) != FG_OK) {
        printf("SKIP: %s\n", err.msg);
        skipped = 1;
        goto out;
    }
    CU(cu->DeviceGet(&dev, 0));
    CU(cu->DevicePrimaryCtxRetain(&ctx, dev));
    CU(cu->CtxSetCurrent(ctx));
    CU(cu->ModuleLoadData(&mod, cb.data));
    CU(cu->ModuleGetFunction(&f, mod, "fg_probe"));
    /* tables on the device: tf, ti, slope, bucket, bias */
    const void *th[5] = {base.tf, base.ti, slope, bucket, bias};
    const size_t tsz[5] = {sizeof base.tf, sizeof base.ti, sizeof slope, sizeof bucket, sizeof bias};
    for (int i = 0; i < 5; ++i) { CU(cu->MemAlloc(&dt[i], tsz[i])); CU(cu->MemcpyHtoD(dt[i], th[i], tsz[i])); }
    sp_params P[5];
    memset(P, 0, sizeof P);
    for (int p = 0; p < 5; ++p)
        for (int j = 0; j < 2; ++j) {
            P[p].score_ci[j] = ci[p][j];
            P[p].score_cf[j] = cf[p][j];
            for (int d = 0; d < 5; ++d)
                if (th[d] == tabs[p][j].data) P[p].score_ti[j] = P[p].score_tf[j] = dt[d];
            P[p].score_tn[j] = tabs[p][j].n;
        }
    CU(cu->MemAlloc(&dp, sizeof P)); CU(cu->MemcpyHtoD(dp, P, sizeof P));
    CU(cu->MemAlloc(&ds, sizeof score)); CU(cu->MemcpyHtoD(ds, score, sizeof score));
    CU(cu->MemAlloc(&dpt, sizeof pts)); CU(cu->MemcpyHtoD(dpt, pts, sizeof pts));
    CU(cu->MemAlloc(&dout, sizeof(float) * (size_t)nfn * NPTS));
    void *args[] = {&dp, &ds, &dpt, &dout};
    CU(cu->LaunchKernel(f, NPTS / 128, 1, 1, 128, 1, 1, 0, NULL, args, NULL));
    CU(cu->CtxSynchronize());
    CU(cu->MemcpyDtoH(host_out, dout, sizeof(float) * (size_t)nfn * NPTS));
    long exact = 0, approx = 0, bad = 0;
    for (int k = 0; k < nfn; ++k) {
        const int tr = has_transcendental(fns[k].e), pa = fns[k].param;
        for (int i = 0; i < NPTS; ++i) {
            fg_score_env env = {score[i], pts[i][0], pts[i][1], pts[i][2], pts[i][3], ci[pa], cf[pa], tabs[pa]};
            const float want = fg_score_expr_eval(fns[k].e, &env), got = host_out[(size_t)k * NPTS + i];
            const int same = !memcmp(&want, &got, sizeof got) || (isnan(want) && isnan(got));
            const int ok = same || (tr && ((isinf(want) && want == got) || fabsf(got - want) <= 1e-5f * fmaxf(1.0f, fabsf(want))));
            tr ? ++approx : ++exact;
            if (!ok && ++bad <= 20) {
                char *t = fg_score_expr_render(fns[k].e, FG_SCORE_RENDER_TEXT, NULL);
                CHECK(0, "%s at score=%a b=%d h=%d q=%d kv=%d: device %a, host %a", t, (double)score[i], pts[i][0], pts[i][1], pts[i][2],
                      pts[i][3], (double)got, (double)want);
                free(t);
            }
        }
    }
    CHECK(bad == 0, "%ld of %ld values differ", bad, exact + approx);
    printf("%d functions x %d points: %ld compared bit for bit, %ld with tanh/exp2/log2 within 1e-5; %ld differ\n", nfn, NPTS, exact, approx, bad);
out:
    for (int i = 0; i < 5; ++i) if (dt[i]) cu->MemFree(dt[i]);
    if (dp) cu->MemFree(dp);
    if (ds) cu->MemFree(ds);
    if (dpt) cu->MemFree(dpt);
    if (dout) cu->MemFree(dout);
    if (mod) cu->ModuleUnload(mod);
    if (ctx) cu->DevicePrimaryCtxRelease(dev);
    fg_cubin_free(&cb);
    free(host_out);
    free(body.s);
    for (int k = 0; k < nfn; ++k) fg_score_expr_free(fns[k].e);
    fg_error_clear(&err);
    fg_sources_free(&src);
    if (skipped && !t_failures) return 77;
    return test_summary("test_gpu_score");
}
