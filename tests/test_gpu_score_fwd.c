/* The forward's score modifications on the GPU (issue 13; docs/SCORE-WIRING.md)
 * against the float64 reference (runtime/reference.c, itself checked against
 * the formula in test_score_fwd_cpu): softcap, ALiBi ([heads] and [batch,
 * heads] slopes), local windows and attention sinks, each alone and
 * combined; causal both alignments, GQA and MQA, odd lengths, seqlen_q !=
 * seqlen_k both ways, windows that leave rows empty (o = 0, lse = -inf or
 * the sink), a decode shape (which takes the inference kernel),
 * head dims 64 / 128 / 256, fp16 and bf16; user score expressions (a
 * relative-position bias table, where/tanh/int tables) alone and with all
 * four.  Outputs are NaN-poisoned first.
 * Criterion (FlashAttention's, as tools/harness.c): relative L2 of o <=
 * 1e-2 (bf16) / 2e-3 (fp16), max |err| <= 4 units of rounding of the
 * largest output, lse within 5e-3 and -inf exactly where the reference is.
 * Each case runs twice: FG_PATH_AUTO (the TMA kernel on sm_90a, mma.sync
 * elsewhere) and FG_PATH_MMA; the kernel that ran must be that one, with the
 * case's mods (and score) in its key.
 * Exit 77 (skipped) without a GPU.
 *
 *   build/tests/test_gpu_score_fwd [case-name substring] */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen/score_expr.h"
#include "runtime/cuda_api.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "test_gpu_util.h"
#include "test_util.h"

typedef struct scase {
    const char *name;
    fg_dtype dt;
    int d, b, hq, hkv, sq, sk;
    fg_causal causal;
    float softcap;
    int alibi;   /* 0 off, 1 [heads_q], 2 [batch, heads_q] */
    int wl, wr;  /* window, -1 unbounded */
    int sinks;
    int user;    /* a score expression: 0 none, 1 relative-position bias table, 2 tanh / where / int table */
    double density; /* > 0: a random block-sparse layout of 128 x 128 blocks with this density */
} scase;

/* The score expressions of the cases (tables of 4 * 9 floats and 64 ints). */
static const char *const user_exprs[3] = {
    NULL,
    "score + bias[h * 9 + min(max(kv_idx - q_idx, -4), 4) + 4]",
    "where(bucket[kv_idx % 64] > 0, score * w, tanh(score) - 0.5) + bias[h % 4]",
};

static const fg_cuda *cu;

static CUdeviceptr dalloc(size_t bytes) { return gpu_dalloc(cu, bytes); }

static const char *mods_item(const scase *c) {
    static char buf[64];
    snprintf(buf, sizeof buf, ",mods=%s%s%s%s", c->softcap > 0 ? "softcap+" : "", c->alibi ? "alibi+" : "",
             c->wl >= 0 || c->wr >= 0 ? "window+" : "", c->sinks ? "sink+" : "");
    buf[strlen(buf) - 1] = 0; /* the last '+' */
    if (!strcmp(buf, ",mods")) buf[0] = 0;
    if (c->user) strcat(buf, ",score=");
    return buf;
}

static int run(fg_context *ctx, const scase *c, fg_kernel_path path, uint64_t seed) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, c->dt, c->d, c->b, c->hq, c->hkv, c->sq, c->sk);
    d.causal = c->causal;
    d.path = path;
    d.softcap = c->softcap;
    d.window_left = c->wl;
    d.window_right = c->wr;
    const size_t nq = (size_t)c->b * c->sq * c->hq * c->d, nk = (size_t)c->b * c->sk * c->hkv * c->d;
    const size_t nl = (size_t)c->b * c->hq * c->sq;
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    uint16_t *q = malloc(nq * 2), *k = malloc(nk * 2), *v = malloc(nk * 2), *o = malloc(nq * 2);
    float *slopes = malloc(sizeof(float) * c->b * c->hq), *sinks = malloc(sizeof(float) * c->hq), *lse = malloc(nl * 4);
    double *ro = malloc(sizeof(double) * nq), *rl = malloc(sizeof(double) * nl);
    fg_fill_normal(q, nq, c->dt, &rng);
    fg_fill_normal(k, nk, c->dt, &rng);
    fg_fill_normal(v, nk, c->dt, &rng);
    for (int i = 0; i < c->b * c->hq; ++i) slopes[i] = (float)(0.01 + 0.5 * fg_rng_uniform(&rng));
    for (int i = 0; i < c->hq; ++i) sinks[i] = (float)(2 * fg_rng_normal(&rng));
    CUdeviceptr dq = dalloc(nq * 2), dk = dalloc(nk * 2), dv = dalloc(nk * 2), dout = dalloc(nq * 2), dl = dalloc(nl * 4);
    CUdeviceptr dsl = dalloc(sizeof(float) * c->b * c->hq), dsk = dalloc(sizeof(float) * c->hq);
    cu->MemcpyHtoD(dq, q, nq * 2);
    cu->MemcpyHtoD(dk, k, nk * 2);
    cu->MemcpyHtoD(dv, v, nk * 2);
    cu->MemcpyHtoD(dsl, slopes, sizeof(float) * c->b * c->hq);
    cu->MemcpyHtoD(dsk, sinks, sizeof(float) * c->hq);
    /* the score expression's tables, on both sides */
    float bias[36];
    int32_t bucket[64];
    for (int i = 0; i < 36; ++i) bias[i] = (float)fg_rng_normal(&rng);
    for (int i = 0; i < 64; ++i) bucket[i] = (int32_t)(fg_rng_uniform(&rng) * 3) - 1;
    CUdeviceptr dbias = dalloc(sizeof bias), dbucket = dalloc(sizeof bucket);
    cu->MemcpyHtoD(dbias, bias, sizeof bias);
    cu->MemcpyHtoD(dbucket, bucket, sizeof bucket);
    fg_score *score = NULL;
    if (c->user) {
        const fg_score_arg args[] = {{"w", FG_SCORE_CONST_FLOAT, 0, 0.3, NULL, 0},
                                     {"bias", FG_SCORE_TABLE_FLOAT, 0, 0, (const void *)(uintptr_t)dbias, 36},
                                     {"bucket", FG_SCORE_TABLE_INT32, 0, 0, (const void *)(uintptr_t)dbucket, 64}};
        CHECK(fg_score_create(ctx, user_exprs[c->user], args, 3, &score) == FG_OK, "%s: %s", c->name, fg_errmsg(ctx));
        d.score = score;
    }
    fg_host_layout hl = {0};
    fg_block_layout *layout = NULL;
    if (c->density > 0) {
        CHECK(fg_host_layout_random(&hl, c->b, c->hq, c->sq, c->sk, 128, 128, c->density, &rng), "out of memory");
        CHECK(fg_block_layout_create(ctx, &hl.desc, &layout) == FG_OK, "%s: layout: %s", c->name, fg_errmsg(ctx));
        d.layout = layout;
    }
    cu->MemsetD32(dout, 0x7fff7fffu, nq / 2); /* NaN in fp16 and bf16 */
    cu->MemsetD32(dl, 0x7fc00000u, nl);
    if (c->alibi) {
        d.alibi_slopes = (const float *)(uintptr_t)dsl;
        d.alibi_batch_stride = c->alibi == 2 ? c->hq : 0;
    }
    if (c->sinks) d.sinks = (const float *)(uintptr_t)dsk;
    char name[512] = "";
    int bad = 0;
    fg_status st = fg_attention_kernel_name(ctx, &d, name, sizeof name);
    CHECK(st == FG_OK, "%s: kernel name: %s", c->name, fg_errmsg(ctx));
    /* FG_PATH_MMA: the mma.sync kernel; AUTO: the TMA kernel on sm_90a (every
     * head dim here is a multiple of 16), else mma.sync; never wgmma.  A
     * decode shape (GQA packing) takes the inference kernel with its mods */
    const int hopper = strstr(name, "arch=sm_90a") != NULL, decode = strstr(c->name, "decode") != NULL;
    const char *want = path == FG_PATH_AUTO && hopper && !decode ? "fwd_ws:" : "fwd_mma:";
    if (c->density > 0 && path == FG_PATH_AUTO) want = ""; /* block-sparse: whichever family the heuristic picks */
    CHECK(!strncmp(name, want, strlen(want)) && strstr(name, mods_item(c)) && !strstr(name, "infer=1") == !decode &&
              !strstr(name, "sparse=1") == !(c->density > 0),
          "%s: ran %s, want %s with %s%s", c->name, name, want, mods_item(c), decode ? " and infer=1" : "");
    st = fg_attention_forward(ctx, &d, (void *)(uintptr_t)dq, (void *)(uintptr_t)dk, (void *)(uintptr_t)dv,
                              (void *)(uintptr_t)dout, (float *)(uintptr_t)dl, NULL);
    CHECK(st == FG_OK, "%s: forward: %s", c->name, fg_errmsg(ctx));
    cu->CtxSynchronize();
    cu->MemcpyDtoH(o, dout, nq * 2);
    cu->MemcpyDtoH(lse, dl, nl * 4);
    const fg_score_table tabs[2] = {{bias, 36}, {bucket, 64}};
    const fg_ref_mods rm = {.alibi_slopes = c->alibi ? slopes : NULL, .sinks = c->sinks ? sinks : NULL,
                            .score = score ? score->expr : NULL, .score_ci = score ? (const int64_t *)score->ci : NULL,
                            .score_cf = score ? score->cf : NULL, .score_tables = tabs};
    fg_reference_forward_mods(&d, layout ? &hl.desc : NULL, &rm, q, k, v, ro, rl);
    double num = 0, den = 0, max_abs = 0, ref_max = 0, lse_err = 0;
    size_t nan = 0, inf_mismatch = 0;
    for (size_t i = 0; i < nq; ++i) {
        const double x = fg_half_to_float(o[i], c->dt), r = ro[i];
        if (isnan(x)) { ++nan; continue; }
        num += (x - r) * (x - r);
        den += r * r;
        max_abs = fmax(max_abs, fabs(x - r));
        ref_max = fmax(ref_max, fabs(r));
    }
    for (size_t i = 0; i < nl; ++i) {
        if (isinf(rl[i]) != isinf((double)lse[i]) || isnan(lse[i])) { ++inf_mismatch; continue; }
        if (!isinf(rl[i])) lse_err = fmax(lse_err, fabs(lse[i] - rl[i]));
    }
    const double rel = sqrt(num / fmax(den, 1e-30));
    const double eps = c->dt == FG_BF16 ? 1.0 / 256 : 1.0 / 2048;
    const double tol_rel = c->dt == FG_BF16 ? 1e-2 : 2e-3, tol_abs = 4 * eps * fmax(ref_max, 1.0);
    bad = st != FG_OK || nan || inf_mismatch || !(rel <= tol_rel) || !(max_abs <= tol_abs) || !(lse_err <= 5e-3);
    printf("%-4s %-44s %s %-8s rel=%.2e max|err|=%.2e lse=%.2e nan=%zu lse-mismatch=%zu\n", bad ? "FAIL" : "ok", c->name,
           fg_dtype_name(c->dt), path == FG_PATH_MMA ? "mma" : "auto", rel, max_abs, lse_err, nan, inf_mismatch);
    CHECK(!bad, "%s (%s): rel %.3g (tol %.3g), max|err| %.3g (tol %.3g), lse %.3g, %zu NaN, %zu lse -inf/NaN mismatches",
          c->name, path == FG_PATH_MMA ? "FG_PATH_MMA" : "FG_PATH_AUTO", rel, tol_rel, max_abs, tol_abs, lse_err, nan,
          inf_mismatch);
    CUdeviceptr all[] = {dq, dk, dv, dout, dl, dsl, dsk, dbias, dbucket};
    for (int i = 0; i < 9; ++i) cu->MemFree(all[i]);
    fg_score_destroy(score);
    fg_block_layout_destroy(ctx, layout);
    fg_host_layout_free(&hl);
    free(q); free(k); free(v); free(o); free(slopes); free(sinks); free(lse); free(ro); free(rl);
    return bad;
}

int main(int argc, char **argv) {
    fg_context *ctx = gpu_context(&cu);
    const char *only = argc > 1 ? argv[1] : NULL;
    const fg_causal NO = FG_CAUSAL_NONE, BR = FG_CAUSAL_BOTTOM_RIGHT, TL = FG_CAUSAL_TOP_LEFT;
    static scase cases[40];
    int n = 0;
#define CASE(...) cases[n++] = (scase){__VA_ARGS__}
    /*   name                                 dt       d    b  hq hkv  sq    sk  causal cap  alibi wl  wr  sinks user */
    CASE("softcap 30",                        FG_BF16, 128, 2, 4, 4, 300, 300, NO, 30.f, 0, -1, -1, 0, 0, 0.0);
    CASE("softcap 2 saturating causal",       FG_FP16, 64, 1, 4, 2, 257, 511, BR, 2.f, 0, -1, -1, 0, 0, 0.0);
    CASE("alibi heads",                       FG_BF16, 128, 2, 8, 2, 200, 333, NO, 0.f, 1, -1, -1, 0, 0, 0.0);
    CASE("alibi batch x heads causal",        FG_FP16, 64, 3, 4, 4, 129, 129, BR, 0.f, 2, -1, -1, 0, 0, 0.0);
    CASE("alibi top-left sq > sk",            FG_BF16, 256, 1, 4, 1, 300, 190, TL, 0.f, 1, -1, -1, 0, 0, 0.0);
    CASE("window 64/0",                       FG_BF16, 128, 2, 4, 4, 1000, 1000, NO, 0.f, 0, 64, 0, 0, 0, 0.0);
    CASE("window 17/9 causal GQA",            FG_FP16, 64, 1, 6, 3, 333, 777, BR, 0.f, 0, 17, 9, 0, 0, 0.0);
    CASE("window 5/- causal sq > sk (empty)", FG_BF16, 128, 1, 2, 2, 400, 100, BR, 0.f, 0, 5, -1, 0, 0, 0.0);
    CASE("window -/3 top-left",               FG_BF16, 256, 2, 4, 2, 250, 500, TL, 0.f, 0, -1, 3, 0, 0, 0.0);
    CASE("window 0/0 sq > sk (empty)",        FG_FP16, 64, 1, 2, 2, 300, 130, NO, 0.f, 0, 0, 0, 0, 0, 0.0);
    CASE("window 300/-1 long",                FG_BF16, 128, 1, 2, 1, 2049, 4097, BR, 0.f, 0, 300, -1, 0, 0, 0.0);
    CASE("sinks",                             FG_BF16, 128, 2, 4, 4, 300, 300, NO, 0.f, 0, -1, -1, 1, 0, 0.0);
    CASE("sinks causal sq > sk (lse = sink)", FG_FP16, 64, 1, 4, 1, 300, 100, BR, 0.f, 0, -1, -1, 1, 0, 0.0);
    CASE("sinks decode GQA (infer)",           FG_BF16, 128, 4, 8, 2, 1, 1500, NO, 0.f, 0, -1, -1, 1, 0, 0.0);
    CASE("all four causal GQA odd",           FG_BF16, 128, 2, 8, 2, 517, 1031, BR, 20.f, 1, 100, 50, 1, 0, 0.0);
    CASE("all four top-heavy",                FG_FP16, 64, 1, 4, 4, 1031, 517, NO, 50.f, 2, 33, 77, 1, 0, 0.0);
    CASE("all four top-left hd256",           FG_BF16, 256, 1, 4, 2, 333, 333, TL, 30.f, 1, 64, -1, 1, 0, 0.0);
    CASE("softcap + window empty rows",       FG_FP16, 128, 2, 2, 2, 200, 77, NO, 10.f, 0, 0, 0, 1, 0, 0.0);
    CASE("user rel-bias table",               FG_BF16, 128, 2, 4, 2, 333, 517, NO, 0.f, 0, -1, -1, 0, 1, 0.0);
    CASE("user rel-bias causal top-left",     FG_FP16, 64, 1, 4, 4, 300, 200, TL, 0.f, 0, -1, -1, 0, 1, 0.0);
    CASE("user where/tanh/int table",         FG_BF16, 64, 2, 4, 1, 257, 257, BR, 0.f, 0, -1, -1, 0, 2, 0.0);
    CASE("user + all four",                   FG_BF16, 128, 1, 4, 2, 400, 700, BR, 30.f, 1, 128, -1, 1, 2, 0.0);
    /* the inference kernel (GQA packing: each row's own head and query index) */
    CASE("user rel-bias decode GQA (infer)",  FG_BF16, 128, 3, 8, 2, 1, 1300, NO, 0.f, 0, -1, -1, 0, 1, 0.0);
    CASE("user + softcap + sinks decode",     FG_FP16, 64, 2, 8, 1, 2, 700, BR, 20.f, 0, 64, -1, 1, 2, 0.0);
    /* block-sparse layouts (random, 128 x 128 blocks; rows with no block are empty) */
    CASE("sparse softcap + alibi",            FG_BF16, 128, 2, 4, 2, 500, 700, NO, 20.f, 1, -1, -1, 0, 0, 0.5);
    CASE("sparse window + sinks causal",      FG_FP16, 64, 1, 4, 4, 600, 600, BR, 0.f, 0, 100, 20, 1, 0, 0.6);
    CASE("sparse user where/tanh top-left",   FG_BF16, 128, 2, 4, 1, 400, 300, TL, 0.f, 0, -1, -1, 0, 2, 0.5);
    CASE("sparse all four + user",            FG_FP16, 128, 1, 8, 2, 517, 1031, BR, 30.f, 2, 200, -1, 1, 1, 0.4);
    /* several work tiles per CTA of the persistent grid, which runs from
     * one tile into the next (fg_fwd_ws.cuh, XTILE): each tile's own ALiBi
     * slope and sink; windows leaving whole tiles empty between others */
    CASE("alibi + sinks, many tiles",         FG_BF16, 128, 2, 40, 8, 600, 500, NO, 0.f, 2, -1, -1, 1, 0, 0.0);
    CASE("softcap + alibi causal, many tiles", FG_FP16, 64, 2, 40, 8, 600, 600, BR, 15.f, 1, -1, -1, 1, 0, 0.0);
    CASE("window 0/0 sq > sk, many tiles",    FG_BF16, 128, 2, 24, 6, 900, 300, NO, 0.f, 0, 0, 0, 0, 0, 0.0);
#undef CASE
    int failed = 0, ran = 0;
    for (int i = 0; i < n; ++i) {
        if (only && !strstr(cases[i].name, only)) continue;
        for (int pi = 0; pi < 2; ++pi, ++ran) /* AUTO (TMA on Hopper), then the mma.sync kernel */
            failed += run(ctx, &cases[i], pi ? FG_PATH_MMA : FG_PATH_AUTO, 1000 + (uint64_t)i);
    }
    printf("test_gpu_score_fwd: %d cases, %d failed\n", ran, failed);
    fg_context_destroy(ctx);
    return test_summary("test_gpu_score_fwd");
}
