/* GPU test of fg_attention_backward against the float64 CPU reference
 * (runtime/reference_bwd.c): fresh random q, k, v, dout per case; o and lse
 * from fg_attention_forward; dq, dk, dv poisoned with NaN before the call.
 * Head dims 32/40/64/96/128/256, fp16 and bf16, no / bottom-right /
 * top-left causal, GQA and MQA, batch > 1, lengths off the tiles,
 * seqlen_q != seqlen_k both ways, seqlen 1, BHSD strides, rows that see no
 * key (their dq exactly 0) and keys no row sees (dk, dv exactly 0).  Passes
 * when each gradient's relative L2 error is within the dtype's tolerance
 * and nothing is NaN.  The deterministic mode, run twice, must give
 * bitwise equal dq, dk, dv.  Block-sparse: random layouts (rows with no
 * block included) and patterns with an element mask.  A value head dim of
 * its own (v, o, dout, dv head_dim_v wide): 192/128, 256/128, 128/64,
 * 64/128, 40/72, 8/256 with odd lengths, both causal alignments, GQA/MQA,
 * BHSD, deterministic and block-sparse.  Score modifications (group
 * "mods"): softcap, ALiBi ([heads] and [batch, heads] slopes), windows
 * (rows left empty included) and sinks with their gradient dsinks, each
 * alone and all together, on the mma.sync backward.  Arguments select
 * groups (head dims, "det", "sparse", "dv", "wgmma", "tma", "mma", "bm64", "mods"; "bench"
 * times).  Exit 77 (skipped) without a GPU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/cuda_api.h"
#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/pattern.h"
#include "runtime/reference.h"
#include "runtime/reference_bwd.h"
#include "gen/score_expr.h"
#include "select/heuristic.h"
#include "test_util.h"

typedef struct bcase {
    fg_dtype dt;
    int d, b, hq, hkv, sq, sk;
    fg_causal causal;
    int bhsd, deterministic;
    uint64_t seed;
    /* block-sparse: a random layout of `block`-sized blocks with this
     * density, or a pattern (with its element mask) */
    double density;
    int block;
    const char *pattern, *params;
    int dv; /* value head dim; 0: d */
    fg_kernel_path path; /* of the backward call (the forward runs AUTO) */
    int bm;              /* the backward's block_m (0: the library's choice) */
} bcase;

/* Score modifications: softcap (0 off); alibi 0 off, 1 [heads_q], 2
 * [batch, heads_q] slopes; win 1: the window (wl, wr); sink 1: sinks and
 * dsinks; score: a user expression over a float constant w = 0.75 and a
 * float table tb[16] (NULL: none). */
typedef struct bmods {
    float softcap;
    int alibi, win, wl, wr, sink;
    const char *score;
} bmods;
typedef struct mcase { bcase c; bmods m; } mcase;

typedef struct dev { CUdeviceptr q, k, v, o, lse, dout, dq, dk, dv, ws, slopes, sinks, dsinks, tb; } dev;

static const fg_cuda *cu;
static int g_dead; /* a kernel fault: the CUDA context is unusable, stop */

static double rel_l2(const uint16_t *got, const double *ref, size_t n, fg_dtype dt, size_t *nans, size_t *worst) {
    double e = 0, r = 0, w = -1;
    for (size_t i = 0; i < n; ++i) {
        const double g = fg_half_to_float(got[i], dt);
        if (isnan(g)) { if (!*nans) *worst = i; ++*nans; w = INFINITY; continue; }
        const double x = fabs(g - ref[i]);
        if (x > w) { w = x; *worst = i; }
        e += (g - ref[i]) * (g - ref[i]);
        r += ref[i] * ref[i];
    }
    /* relative to the reference, with a floor of RMS 0.1 per element: where
     * the exact gradient is ~0 (one key: dS = P (dP - D) = 0) the error of D
     * is all there is */
    const double floor = 1e-2 * (double)n;
    return sqrt(e / (r > floor ? r : floor));
}

/* The elements of a [batch, seqlen, heads, D] tensor stored with strides s, gathered BSHD. */
static void gather(uint16_t *dst, const uint16_t *src, const int64_t s[3], int b, int sl, int h, int D) {
    for (int x = 0; x < b; ++x)
        for (int i = 0; i < sl; ++i)
            for (int y = 0; y < h; ++y)
                memcpy(dst + (((size_t)x * sl + i) * h + y) * D, src + x * s[0] + y * s[1] + (int64_t)i * s[2], 2 * (size_t)D);
}

static void bhsd(int64_t s[3], int h, int sl, int D) { s[0] = (int64_t)h * sl * D; s[1] = (int64_t)sl * D; s[2] = D; }

/* Runs the backward once; copies dq, dk (nq, nk elements, head_dim wide)
 * and dv (nv, head_dim_v wide), BSHD, into the host buffers. */
static int backward(fg_context *ctx, const fg_attention_desc *d, const dev *m, size_t wsb, size_t nq, size_t nk, size_t nv,
                    uint16_t *hdq, uint16_t *hdk, uint16_t *hdv, uint16_t *tmp) {
    CUresult e = cu->MemsetD32(m->dq, 0xFFFFFFFFu, nq / 2 + 1);
    if (!e) e = cu->MemsetD32(m->dk, 0xFFFFFFFFu, nk / 2 + 1);
    if (!e) e = cu->MemsetD32(m->dv, 0xFFFFFFFFu, nv / 2 + 1);
    if (!e) e = cu->MemsetD32(m->ws, 0x7fc00000u, wsb / 4); /* the workspace needs no initialisation */
    CHECK(!e, "poison");
    fg_status st = fg_attention_backward(ctx, d, (void *)m->q, (void *)m->k, (void *)m->v, (void *)m->o, (void *)m->dout,
                                         (float *)m->lse, (void *)m->dq, (void *)m->dk, (void *)m->dv, (void *)m->ws, wsb, NULL);
    CHECK(st == FG_OK, "fg_attention_backward: %s", fg_errmsg(ctx));
    if (st != FG_OK) return 0;
    e = cu->CtxSynchronize();
    if (e) {
        g_dead = 1;
        const char *name = "?";
        cu->GetErrorName(e, &name);
        CHECK(!e, "backward kernels failed: %s", name);
    }
    if (e) return 0;
    cu->MemcpyDtoH(tmp, m->dq, nq * 2);
    gather(hdq, tmp, d->q_strides, d->batch, d->seqlen_q, d->heads_q, d->head_dim);
    cu->MemcpyDtoH(tmp, m->dk, nk * 2);
    gather(hdk, tmp, d->k_strides, d->batch, d->seqlen_k, d->heads_kv, d->head_dim);
    cu->MemcpyDtoH(tmp, m->dv, nv * 2);
    gather(hdv, tmp, d->v_strides, d->batch, d->seqlen_k, d->heads_kv, d->head_dim_v);
    return 1;
}

/* dsinks against the float64 reference (ref) and against the same sum
 * evaluated in float64 from the kernels' own o and lse (which isolates the
 * kernel's sum from the 16-bit rounding of o): each error over the mass
 * A_h = sum_{b,i} |exp(sink - lse_i) D_i| of its head, the worst of the two
 * tests (the second at a hundredth of the tolerance's scale: fp32 atomics). */
static double dsinks_error(const bcase *c, const fg_attention_desc *d, const dev *m, const uint16_t *hdo, const double *ref,
                           const float *sinks) {
    const int dv = fg_desc_head_dim_v(d);
    const size_t no = (size_t)c->b * c->hq * c->sq * dv, nl = (size_t)c->b * c->hq * c->sq;
    uint16_t *o = malloc(no * 2), *dob = malloc(no * 2), *ob = malloc(no * 2);
    float *lse = malloc(nl * 4), got[16];
    double worst = INFINITY;
    if (o && dob && ob && lse && !cu->MemcpyDtoH(o, m->o, no * 2) && !cu->MemcpyDtoH(lse, m->lse, nl * 4) &&
        !cu->MemcpyDtoH(got, m->dsinks, (size_t)c->hq * 4)) {
        gather(ob, o, d->o_strides, c->b, c->sq, c->hq, dv);
        gather(dob, hdo, d->o_strides, c->b, c->sq, c->hq, dv);
        worst = 0;
        for (int h = 0; h < c->hq; ++h) {
            double own = 0, mass = 0;
            for (int b = 0; b < c->b; ++b)
                for (int i = 0; i < c->sq; ++i) {
                    const double l = lse[((size_t)b * c->hq + h) * c->sq + i];
                    if (l == -INFINITY) continue;
                    double D = 0;
                    const size_t row = (((size_t)b * c->sq + i) * c->hq + h) * dv;
                    for (int x = 0; x < dv; ++x) D += fg_half_to_float(ob[row + x], c->dt) * fg_half_to_float(dob[row + x], c->dt);
                    own -= exp(sinks[h] - l) * D;
                    mass += fabs(exp(sinks[h] - l) * D);
                }
            mass = fmax(mass, 1e-3);
            const double e1 = fabs(got[h] - ref[h]) / mass, e2 = 100 * fabs(got[h] - own) / mass;
            worst = fmax(worst, fmax(e1, e2));
            if (isnan(got[h])) worst = INFINITY;
            if (e1 > 1e-3 || e2 > 1e-3)
                printf("     dsinks[%d] %.6g, reference %.6g, from the kernel's o and lse %.6g (mass %.3g)\n", h, (double)got[h],
                       ref[h], own, mass);
        }
    }
    free(o); free(dob); free(ob); free(lse);
    return worst;
}

static int run_case(fg_context *ctx, const bcase *c, const bmods *md, int *passed, int *failed) {
    static const bmods none = {0};
    if (!md) md = &none;
    fg_attention_desc d;
    fg_attention_desc_init(&d, c->dt, c->d, c->b, c->hq, c->hkv, c->sq, c->sk);
    const int dv = c->dv ? c->dv : c->d;
    CHECK(fg_attention_desc_set_head_dim_v(&d, dv) == FG_OK, "set head_dim_v");
    d.causal = c->causal;
    d.deterministic = c->deterministic;
    /* score modifications: slopes powers of 2 from 1/2 to 1/256, sinks from 6 down */
    const int mods = md->softcap > 0 || md->alibi || md->win || md->sink || md->score;
    float slopes[64], sinks[16];
    const int slope_stride = md->alibi == 2 ? c->hq + 1 : 0; /* [batch, heads_q] with a row pitch past heads_q */
    for (int i = 0; i < 64; ++i) slopes[i] = ldexpf(1.f, -1 - (i / (slope_stride ? slope_stride : 1) + i) % 8);
    for (int i = 0; i < 16; ++i) sinks[i] = 6.f - 2.5f * (float)i;
    fg_ref_mods rmods = {md->alibi ? slopes : NULL, md->sink ? sinks : NULL, NULL, NULL, NULL, NULL, NULL};
    if (mods) d.softmax_scale = 0.25f; /* logits of a few units: softcap bends them, sinks compete */
    d.softcap = md->softcap;
    if (md->win) { d.window_left = md->wl; d.window_right = md->wr; }
    if (c->bhsd) {
        bhsd(d.q_strides, c->hq, c->sq, c->d);
        bhsd(d.o_strides, c->hq, c->sq, dv);
        bhsd(d.k_strides, c->hkv, c->sk, c->d);
        bhsd(d.v_strides, c->hkv, c->sk, dv);
    }
    /* q, dq and k, dk: head_dim wide; o, dout and v, dv: head_dim_v wide */
    const size_t nq = (size_t)c->b * c->hq * c->sq * c->d, nk = (size_t)c->b * c->hkv * c->sk * c->d;
    const size_t no = (size_t)c->b * c->hq * c->sq * dv, nv = (size_t)c->b * c->hkv * c->sk * dv;
    const size_t nl = (size_t)c->b * c->hq * c->sq, nmax = nq > nk ? (nq > nv ? nq : nv) : (nk > nv ? nk : nv);
    fg_host_layout hl = {0};
    const fg_block_layout_desc *host_layout = NULL;
    fg_ref_mask mask = {NULL, NULL};
    fg_block_layout *layout = NULL;
    fg_pattern *pat = NULL;
    fg_rng lrng;
    fg_rng_seed(&lrng, c->seed ^ 0x5eed);
    if (c->pattern) {
        CHECK(fg_pattern_create(ctx, c->pattern, c->params, &pat) == FG_OK, "%s", fg_errmsg(ctx));
        CHECK(pat && fg_pattern_layout(ctx, pat, c->b, c->hq, c->sq, c->sk, c->block, c->block, &layout) == FG_OK, "%s",
              fg_errmsg(ctx));
        if (layout) {
            host_layout = fg_pattern_last(pat);
            mask.expr = fg_pattern_expr(pat);
            mask.consts = fg_pattern_consts(pat);
        }
    } else if (c->density > 0) {
        CHECK(fg_host_layout_random(&hl, c->b, c->hq, c->sq, c->sk, c->block, c->block, c->density, &lrng), "out of memory");
        CHECK(fg_block_layout_create(ctx, &hl.desc, &layout) == FG_OK, "%s", fg_errmsg(ctx));
        host_layout = &hl.desc;
    }
    const int sparse = c->pattern || c->density > 0;
    if (sparse && !layout) { /* reported above */
        ++*failed;
        fg_pattern_destroy(pat);
        fg_host_layout_free(&hl);
        return 0;
    }
    d.layout = layout;
    uint16_t *hq = malloc(nq * 2), *hk = malloc(nk * 2), *hv = malloc(nv * 2), *hdo = malloc(no * 2);
    uint16_t *gdq = malloc(nq * 2), *gdk = malloc(nk * 2), *gdv = malloc(nv * 2), *tmp = malloc(nmax * 2);
    uint16_t *gdq2 = malloc(nq * 2), *gdk2 = malloc(nk * 2), *gdv2 = malloc(nv * 2);
    double *rdq = malloc(nq * 8), *rdk = malloc(nk * 8), *rdv = malloc(nv * 8);
    float *hlse = malloc(nl * 4);
    fg_rng rng;
    fg_rng_seed(&rng, c->seed);
    fg_fill_normal(hq, nq, c->dt, &rng);
    fg_fill_normal(hk, nk, c->dt, &rng);
    fg_fill_normal(hv, nv, c->dt, &rng);
    fg_fill_normal(hdo, no, c->dt, &rng);
    dev m = {0};
    /* binds the device (and compiles the forward) before allocating */
    CUresult e = fg_attention_prepare(ctx, &d) == FG_OK ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
    CHECK(!e, "fg_attention_prepare: %s", fg_errmsg(ctx));
    if (!e) e = cu->MemAlloc(&m.q, nq * 2);
    if (!e) e = cu->MemAlloc(&m.k, nk * 2);
    if (!e) e = cu->MemAlloc(&m.v, nv * 2);
    if (!e) e = cu->MemAlloc(&m.o, no * 2);
    if (!e) e = cu->MemAlloc(&m.dout, no * 2);
    if (!e) e = cu->MemAlloc(&m.lse, nl * 4);
    if (!e) e = cu->MemAlloc(&m.dq, nq * 2 + 4);
    if (!e) e = cu->MemAlloc(&m.dk, nk * 2 + 4);
    if (!e) e = cu->MemAlloc(&m.dv, nv * 2 + 4);
    if (!e && md->alibi) e = cu->MemAlloc(&m.slopes, 64 * 4);
    if (!e && md->alibi) e = cu->MemcpyHtoD(m.slopes, slopes, 64 * 4);
    if (!e && md->sink) e = cu->MemAlloc(&m.sinks, 16 * 4);
    if (!e && md->sink) e = cu->MemcpyHtoD(m.sinks, sinks, 16 * 4);
    if (!e && md->sink) e = cu->MemAlloc(&m.dsinks, 16 * 4);
    if (!e && md->sink) e = cu->MemsetD32(m.dsinks, 0x7fc00000u, 16); /* NaN: the call overwrites it */
    /* a user expression: its table on the device, the reference's host copy */
    float tb[16];
    for (int i = 0; i < 16; ++i) tb[i] = 0.5f * (float)(i % 5) - 1.f;
    const fg_score_table rtables[1] = {{tb, 16}};
    fg_score *score = NULL;
    if (!e && md->score && !(e = cu->MemAlloc(&m.tb, 16 * 4))) e = cu->MemcpyHtoD(m.tb, tb, 16 * 4);
    if (!e && md->score) {
        const fg_score_arg args[2] = {{"w", FG_SCORE_CONST_FLOAT, 0, 0.75, NULL, 0}, {"tb", FG_SCORE_TABLE_FLOAT, 0, 0, (const void *)m.tb, 16}};
        CHECK(fg_score_create(ctx, md->score, args, 2, &score) == FG_OK, "fg_score_create: %s", fg_errmsg(ctx));
        if (!score) e = CUDA_ERROR_INVALID_VALUE;
    }
    if (score) {
        d.score = score;
        rmods.score = score->expr, rmods.score_d = score->deriv;
        rmods.score_ci = (const int64_t *)score->ci, rmods.score_cf = score->cf, rmods.score_tables = rtables;
    }
    d.alibi_slopes = (const float *)m.slopes;
    d.alibi_batch_stride = slope_stride; /* only with slopes (fg_score_check) */
    d.sinks = (const float *)m.sinks;
    /* the workspace of the full descriptor: the score modifications pick the kernel */
    size_t wsb = 0;
    if (!e) CHECK(fg_attention_backward_workspace(ctx, &d, &wsb) == FG_OK, "%s", fg_errmsg(ctx));
    if (!e) e = cu->MemAlloc(&m.ws, wsb);
    /* the host arrays are in the descriptor's layout: BSHD, or BHSD (same bytes, other order) */
    if (!e) e = cu->MemcpyHtoD(m.q, hq, nq * 2);
    if (!e) e = cu->MemcpyHtoD(m.k, hk, nk * 2);
    if (!e) e = cu->MemcpyHtoD(m.v, hv, nv * 2);
    if (!e) e = cu->MemcpyHtoD(m.dout, hdo, no * 2);
    CHECK(!e, "device setup (%d)", (int)e);
    int ok = !e;
    if (ok) {
        fg_status st = fg_attention_forward(ctx, &d, (void *)m.q, (void *)m.k, (void *)m.v, (void *)m.o, (float *)m.lse, NULL);
        CHECK(st == FG_OK, "forward: %s", fg_errmsg(ctx));
        d.path = c->path;
        d.block_m = c->bm;
        d.dsinks = (float *)m.dsinks;
        ok = st == FG_OK && backward(ctx, &d, &m, wsb, nq, nk, nv, gdq, gdk, gdv, tmp);
    }
    double eq = 0, ek = 0, ev = 0;
    size_t nan = 0, zero_bad = 0;
    char worst[512] = "";
    int repeat_ok = 1;
    double rds[16], eds = 0;
    if (ok) {
        ok = fg_reference_backward_mods(&d, host_layout, &mask, &rmods, hq, hk, hv, hdo, rdq, rdk, rdv, rds);
        CHECK(ok, "reference out of memory");
    }
    if (ok && md->sink) eds = dsinks_error(c, &d, &m, hdo, rds, sinks);
    if (ok) {
        size_t wq = 0, wk = 0, wv = 0;
        eq = rel_l2(gdq, rdq, nq, c->dt, &nan, &wq);
        ek = rel_l2(gdk, rdk, nk, c->dt, &nan, &wk);
        ev = rel_l2(gdv, rdv, nv, c->dt, &nan, &wv);
        /* the worst element of each, as (row, head, column) of the BSHD arrays */
        snprintf(worst, sizeof worst, "     worst: dq[%zu,%zu,%zu] %g vs %g  dk[%zu,%zu,%zu] %g vs %g  dv[%zu,%zu,%zu] %g vs %g\n",
               wq / c->d / c->hq, wq / c->d % c->hq, wq % c->d, fg_half_to_float(gdq[wq], c->dt), rdq[wq],
               wk / c->d / c->hkv, wk / c->d % c->hkv, wk % c->d, fg_half_to_float(gdk[wk], c->dt), rdk[wk],
               wv / dv / c->hkv, wv / dv % c->hkv, wv % dv, fg_half_to_float(gdv[wv], c->dt), rdv[wv]);
        /* a row that sees no key (lse = -inf) has dq exactly 0; a key that
         * no row sees (causal: j > seqlen_q - 1 + offset) dk and dv exactly 0 */
        cu->MemcpyDtoH(hlse, m.lse, nl * 4);
        for (int b = 0; b < c->b; ++b)
            for (int h = 0; h < c->hq; ++h)
                for (int i = 0; i < c->sq; ++i)
                    if (hlse[((size_t)b * c->hq + h) * c->sq + i] == -INFINITY)
                        for (int x = 0; x < c->d; ++x)
                            zero_bad += fg_half_to_float(gdq[(((size_t)b * c->sq + i) * c->hq + h) * c->d + x], c->dt) != 0;
        const int off = c->causal == FG_CAUSAL_BOTTOM_RIGHT ? c->sk - c->sq : 0;
        for (int b = 0; b < (sparse ? 0 : c->b); ++b) /* dense: which keys no row sees is plain */
            for (int j = c->causal ? (c->sq + off > 0 ? c->sq + off : 0) : c->sk; j < c->sk; ++j)
                for (int t = 0; t < 2; ++t) { /* dk, then dv */
                    const size_t w = (size_t)c->hkv * (t ? dv : c->d), row = ((size_t)b * c->sk + j) * w;
                    for (size_t x = 0; x < w; ++x) zero_bad += fg_half_to_float((t ? gdv : gdk)[row + x], c->dt) != 0;
                }
        if (c->deterministic) {
            ok = backward(ctx, &d, &m, wsb, nq, nk, nv, gdq2, gdk2, gdv2, tmp);
            repeat_ok = ok && !memcmp(gdq, gdq2, nq * 2) && !memcmp(gdk, gdk2, nk * 2) && !memcmp(gdv, gdv2, nv * 2);
        }
    }
    /* the forward's relative L2 tolerance (runtime/check.c); measured on H200:
     * at most 2.9e-3 (bf16) and 3.4e-4 (fp16) */
    const double tol = c->dt == FG_BF16 ? 1e-2 : 2e-3;
    const int good = ok && !nan && !zero_bad && eq <= tol && ek <= tol && ev <= tol && repeat_ok && eds <= tol;
    if (mods)
        printf("     mods: softcap %g, alibi %s, window %s (%d, %d), sinks %s%s%s; dsinks error %.2e (tol %.0e)\n",
               (double)md->softcap, md->alibi == 2 ? "[b, h]" : md->alibi ? "[h]" : "off", md->win ? "on" : "off", md->wl, md->wr,
               md->sink ? "on" : "off", md->score ? ", score " : "", md->score ? md->score : "", eds, tol);
    printf("%-4s %s d=%3d dv=%3d b=%d hq=%d hkv=%d sq=%4d sk=%4d causal=%d %s%s%s%s%s rel L2 dq %.2e dk %.2e dv %.2e (tol %.0e) NaN %zu "
           "nonzero-where-0 %zu%s\n%s",
           good ? "ok" : "FAIL", c->dt == FG_BF16 ? "bf16" : "fp16", c->d, dv, c->b, c->hq, c->hkv, c->sq, c->sk, (int)c->causal,
           c->bhsd ? "bhsd" : "bshd", c->deterministic ? " det" : "", c->pattern ? " pattern" : sparse ? " sparse" : "",
           c->path == FG_PATH_WGMMA ? " wgmma" : c->path == FG_PATH_TMA ? " tma" : c->path == FG_PATH_MMA ? " mma" : "",
           c->bm == 64 ? " bm=64" : c->bm == 128 ? " bm=128" : "", eq, ek, ev, tol, nan, zero_bad,
           c->deterministic ? (repeat_ok ? " bitwise-repeat ok" : " bitwise-repeat DIFFERS") : "", good ? "" : worst);
    fflush(stdout);
    CHECK(good, "case failed (see the line above)");
    if (good) ++*passed; else ++*failed;
    CUdeviceptr all[] = {m.q, m.k, m.v, m.o, m.dout, m.lse, m.dq, m.dk, m.dv, m.ws, m.slopes, m.sinks, m.dsinks, m.tb};
    fg_score_destroy(score);
    for (unsigned i = 0; i < sizeof all / sizeof all[0]; ++i)
        if (all[i]) cu->MemFree(all[i]);
    free(hq); free(hk); free(hv); free(hdo); free(gdq); free(gdk); free(gdv); free(tmp);
    free(gdq2); free(gdk2); free(gdv2); free(rdq); free(rdk); free(rdv); free(hlse);
    fg_block_layout_destroy(ctx, layout);
    fg_pattern_destroy(pat);
    fg_host_layout_free(&hl);
    return good;
}

/* "bench": backward TFLOP/s (2.5x the forward's FLOPs, BENCHMARK.md) at
 * 16k tokens, heads * head_dim = 2048, atomics and deterministic; random
 * inputs, not checked (the other cases check).  Later arguments pick head
 * dims ("128") and modes ("auto", "wgmma", "mma", "det"); none: all.
 * "seq=N" sets the sequence length (4096; a divisor of 16384, batch
 * 16384 / N), "bm=N" the query block of the Hopper kernel at head dim 64
 * in modes auto (then FG_PATH_TMA) and wgmma (desc.block_m: 64 or 128; 0,
 * the library's choice; other head dims ignore it). */
static int bench_opt(int argc, char **argv, const char *key, int dflt) {
    const size_t n = strlen(key);
    for (int i = 2; i < argc; ++i)
        if (!strncmp(argv[i], key, n)) return atoi(argv[i] + n);
    return dflt;
}
static int bench_wants(int argc, char **argv, const char *what, int numeric) {
    int any = 0;
    for (int i = 2; i < argc; ++i) {
        if (strchr(argv[i], '=')) continue; /* seq=, bm= */
        const int is_num = argv[i][0] >= '0' && argv[i][0] <= '9';
        if (is_num != numeric) continue;
        any = 1;
        if (!strcmp(argv[i], what)) return 1;
    }
    return !any;
}
static void bench(fg_context *ctx, int argc, char **argv) {
    for (int d = 64; d <= 256; d *= 2)
        for (int causal = 0; causal < 2; ++causal) {
            char dn[8];
            snprintf(dn, sizeof dn, "%d", d);
            if (!bench_wants(argc, argv, dn, 1)) continue;
            const int s = bench_opt(argc, argv, "seq=", 4096), b = s > 0 && 16384 % s == 0 ? 16384 / s : 0, h = 2048 / d;
            if (!b) { printf("bench: seq=%d: must divide 16384 (16k tokens)\n", s); return; }
            fg_attention_desc desc;
            fg_attention_desc_init(&desc, FG_BF16, d, b, h, h, s, s);
            desc.causal = causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
            const int bm = d == 64 ? bench_opt(argc, argv, "bm=", 0) : 0; /* the choice exists at 64/64 only */
            if (fg_attention_prepare(ctx, &desc) != FG_OK) { printf("bench: %s\n", fg_errmsg(ctx)); return; }
            const size_t n = (size_t)b * h * s * d;
            size_t wsb = 0;
            fg_attention_backward_workspace(ctx, &desc, &wsb);
            CUdeviceptr t[9] = {0}, lse = 0, ws = 0;
            CUresult e = CUDA_SUCCESS;
            for (int i = 0; i < 8 && !e; ++i) e = cu->MemAlloc(&t[i], n * 2);
            if (!e) e = cu->MemAlloc(&lse, (size_t)b * h * s * 4);
            if (!e) e = cu->MemAlloc(&ws, wsb);
            for (int i = 0; i < 8 && !e; ++i) e = cu->MemsetD32(t[i], 0x3c003c00u, n / 2); /* 1.0 fp16 pattern: finite */
            fg_status st = e ? FG_ERR_CUDA : fg_attention_forward(ctx, &desc, (void *)t[0], (void *)t[1], (void *)t[2], (void *)t[3], (float *)lse, NULL);
            /* AUTO (the Hopper kernel on sm_90a at these head dims, TMA
             * loads at 64/128), the Hopper kernel with cp.async loads, the
             * mma.sync kernel, and the deterministic mode (mma.sync) */
            static const char *const mode_name[4] = {"auto", "wgmma", "mma", "det"};
            static const fg_kernel_path mode_path[4] = {FG_PATH_AUTO, FG_PATH_WGMMA, FG_PATH_MMA, FG_PATH_AUTO};
            for (int mode = 0; mode < 4 && st == FG_OK; ++mode) {
                if (!bench_wants(argc, argv, mode_name[mode], 0)) continue;
                desc.deterministic = mode == 3;
                /* an explicit block_m with AUTO would name an mma.sync configuration: the TMA kernel's */
                desc.path = bm && mode == 0 ? FG_PATH_TMA : mode_path[mode];
                desc.block_m = mode == 0 || mode == 1 ? bm : 0;
                CUevent e0, e1;
                cu->EventCreate(&e0, 0);
                cu->EventCreate(&e1, 0);
                float ms = 0;
                for (int rep = 0; rep < 2 && st == FG_OK; ++rep) { /* warm-up, then 5 timed */
                    cu->EventRecord(e0, NULL);
                    for (int k = 0; k < (rep ? 5 : 1) && st == FG_OK; ++k)
                        st = fg_attention_backward(ctx, &desc, (void *)t[0], (void *)t[1], (void *)t[2], (void *)t[3], (void *)t[4],
                                                   (float *)lse, (void *)t[5], (void *)t[6], (void *)t[7], (void *)ws, wsb, NULL);
                    cu->EventRecord(e1, NULL);
                    cu->EventSynchronize(e1);
                    cu->EventElapsedTime(&ms, e0, e1);
                }
                const double flops = 2.5 * fg_attention_flops(b, h, s, s, d, d, causal);
                if (st == FG_OK)
                    printf("bench bwd hd=%d causal=%d seqlen=%d bm=%d %-5s: %.3f ms, %.1f TFLOP/s\n", d, causal, s, bm, mode_name[mode],
                           ms / 5, flops / (ms / 5 * 1e-3) / 1e12);
                else
                    printf("bench bwd hd=%d causal=%d seqlen=%d bm=%d %-5s: failed: %s\n", d, causal, s, bm, mode_name[mode], fg_errmsg(ctx));
                cu->EventDestroy(e0);
                cu->EventDestroy(e1);
            }
            for (int i = 0; i < 8; ++i) if (t[i]) cu->MemFree(t[i]);
            if (lse) cu->MemFree(lse);
            if (ws) cu->MemFree(ws);
        }
}

/* argv: optional head dims to run (e.g. "64 128"), "det" for the
 * deterministic cases; none: everything (a kernel fault ends a process, so
 * a script may run the groups one process each). */
static int wanted(int argc, char **argv, const char *what) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; ++i)
        if (!strcmp(argv[i], what)) return 1;
    return 0;
}

/* The cases of one group, when wanted, each with its own seed. */
static void run_group(fg_context *ctx, const bcase *cases, unsigned n, uint64_t seed, int want, int *passed, int *failed) {
    for (unsigned i = 0; i < n && !g_dead && want; ++i) {
        bcase c = cases[i];
        c.seed = seed + i;
        run_case(ctx, &c, NULL, passed, failed);
    }
}

int main(int argc, char **argv) {
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) {
        printf("SKIP: %s\n", e.msg);
        return 77;
    }
    fg_context *ctx;
    fg_context_create(&ctx);
    if (argc > 1 && !strcmp(argv[1], "bench")) {
        bench(ctx, argc, argv);
        fg_context_destroy(ctx);
        return 0;
    }
    static const int dims[] = {32, 40, 64, 96, 128, 256};
    static const int shapes[][5] = {
        {2, 4, 2, 333, 517}, /* GQA 2:1, sq < sk, off the tiles */
        {1, 3, 1, 300, 100}, /* MQA, sq > sk: bottom-right leaves rows that see no key */
        {3, 2, 2, 257, 129}, /* batch 3, one past a tile */
        {1, 2, 2, 1, 200},   /* one query */
        {2, 4, 4, 200, 1},   /* one key */
        {1, 4, 2, 130, 190}, /* top-left: keys past seqlen_q are seen by no row */
    };
    const uint64_t seed = (uint64_t)time(NULL);
    printf("seed base %llu\n", (unsigned long long)seed);
    int passed = 0, failed = 0, k = 0;
    for (unsigned di = 0; di < sizeof dims / sizeof dims[0]; ++di)
        for (int dt = 0; dt < 2; ++dt)
            for (int causal = 0; causal < 3; ++causal, ++k) {
                char name[16];
                snprintf(name, sizeof name, "%d", dims[di]);
                if (g_dead || !wanted(argc, argv, name)) continue;
                const int *s = shapes[k % 6];
                bcase c = {.dt = dt ? FG_FP16 : FG_BF16, .d = dims[di], .b = s[0], .hq = s[1], .hkv = s[2], .sq = s[3],
                           .sk = s[4], .causal = (fg_causal)causal, .bhsd = k % 4 == 3, .seed = seed + (uint64_t)k};
                run_case(ctx, &c, NULL, &passed, &failed);
            }
    /* deterministic mode: many key blocks add into each dQ row */
    for (int i = 0; i < 4 && !g_dead && wanted(argc, argv, "det"); ++i) {
        bcase c = {.dt = i & 1 ? FG_FP16 : FG_BF16, .d = i < 2 ? 64 : 128, .b = 1, .hq = 4, .hkv = 2, .sq = 700, .sk = 1000,
                   .causal = i & 1 ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE, .deterministic = 1, .seed = seed + 100 + (uint64_t)i};
        run_case(ctx, &c, NULL, &passed, &failed);
    }
    /* block-sparse: random layouts (one with every row empty) and patterns
     * whose element mask applies to partial blocks */
    static const bcase sp[] = {
        {FG_BF16, 64, 2, 4, 2, 300, 517, FG_CAUSAL_NONE, 0, 0, 0, 0.4, 128, NULL, NULL, 0, 0, 0},
        {FG_FP16, 128, 1, 2, 2, 257, 260, FG_CAUSAL_TOP_LEFT, 1, 0, 0, 0.5, 64, NULL, NULL, 0, 0, 0},
        {FG_BF16, 96, 2, 2, 1, 300, 260, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 1e-9, 128, NULL, NULL, 0, 0, 0},
        {FG_FP16, 256, 1, 3, 1, 200, 333, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 1.0, 128, NULL, NULL, 0, 0, 0},
        {FG_BF16, 64, 1, 2, 2, 400, 400, FG_CAUSAL_NONE, 0, 0, 0, 0, 128, "sliding_window", "window=100", 0, 0, 0},
        {FG_FP16, 128, 2, 2, 1, 333, 300, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 128,
         "{ mask = '(q_idx * 3000000007 + kv_idx) % 5 != 1' }", NULL, 0, 0, 0},
    };
    run_group(ctx, sp, sizeof sp / sizeof sp[0], seed + 200, wanted(argc, argv, "sparse"), &passed, &failed);
    /* a value head dim of its own, both directions (issue 17): odd lengths,
     * both causal alignments, GQA/MQA, BHSD, seqlen 1, deterministic and
     * block-sparse (a random layout and a pattern with an element mask) */
    static const bcase dvc[] = {
        {FG_BF16, 192, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_FP16, 192, 1, 3, 1, 300, 100, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_BF16, 256, 3, 2, 2, 257, 129, FG_CAUSAL_TOP_LEFT, 1, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_FP16, 256, 1, 4, 2, 130, 190, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_BF16, 128, 1, 4, 1, 200, 333, FG_CAUSAL_TOP_LEFT, 0, 0, 0, 0, 0, NULL, NULL, 64, 0, 0},
        {FG_FP16, 128, 2, 2, 2, 1, 200, FG_CAUSAL_NONE, 1, 0, 0, 0, 0, NULL, NULL, 64, 0, 0},
        {FG_BF16, 64, 2, 4, 2, 333, 517, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_FP16, 64, 1, 2, 2, 130, 190, FG_CAUSAL_TOP_LEFT, 1, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_BF16, 40, 2, 4, 4, 200, 1, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 72, 0, 0},
        {FG_FP16, 8, 1, 2, 1, 129, 257, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 256, 0, 0},
        {FG_BF16, 256, 1, 2, 1, 257, 129, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 8, 0, 0},
        {FG_BF16, 192, 1, 4, 2, 700, 1000, FG_CAUSAL_BOTTOM_RIGHT, 0, 1, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_FP16, 128, 1, 4, 2, 700, 1000, FG_CAUSAL_NONE, 0, 1, 0, 0, 0, NULL, NULL, 64, 0, 0},
        {FG_BF16, 192, 2, 4, 2, 300, 517, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0.4, 128, NULL, NULL, 128, 0, 0},
        {FG_FP16, 64, 1, 2, 2, 257, 260, FG_CAUSAL_TOP_LEFT, 1, 0, 0, 0.5, 64, NULL, NULL, 128, 0, 0},
        {FG_FP16, 128, 2, 2, 1, 333, 300, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 128,
         "{ mask = '(q_idx * 3000000007 + kv_idx) % 5 != 1' }", NULL, 64, 0, 0},
    };
    run_group(ctx, dvc, sizeof dvc / sizeof dvc[0], seed + 300, wanted(argc, argv, "dv"), &passed, &failed);
    /* Both kernels at head dims 64 and 128, where AUTO takes the Hopper one
     * on sm_90a: FG_PATH_WGMMA named (on sm_90a only) and FG_PATH_MMA, over
     * odd lengths, many key and query blocks, both causal alignments,
     * GQA/MQA, BHSD, seqlen 1 both ways, rows that see no key, dv != d. */
    static const bcase pc[] = {
        {FG_BF16, 128, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_FP16, 128, 1, 4, 2, 700, 1000, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 64, 2, 8, 1, 1000, 700, FG_CAUSAL_TOP_LEFT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_FP16, 64, 1, 2, 2, 1, 300, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 128, 3, 2, 2, 257, 129, FG_CAUSAL_BOTTOM_RIGHT, 1, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 128, 1, 3, 1, 300, 100, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_FP16, 64, 2, 4, 4, 200, 1, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 128, 1, 4, 2, 200, 333, FG_CAUSAL_TOP_LEFT, 0, 0, 0, 0, 0, NULL, NULL, 64, 0, 0},
        {FG_FP16, 64, 2, 4, 2, 333, 517, FG_CAUSAL_BOTTOM_RIGHT, 1, 0, 0, 0, 0, NULL, NULL, 128, 0, 0},
        {FG_BF16, 128, 1, 2, 2, 2048, 2048, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        /* head dim 256: the column-split Hopper kernel (fg_bwd_wgmma_cols.cuh) */
        {FG_BF16, 256, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_FP16, 256, 1, 3, 1, 300, 100, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 256, 3, 2, 2, 257, 129, FG_CAUSAL_TOP_LEFT, 1, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_FP16, 256, 1, 2, 2, 1, 300, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 256, 2, 4, 4, 200, 1, FG_CAUSAL_NONE, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 256, 1, 2, 1, 1100, 1300, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        /* causal grids of several longest-first sections (bwd_block_coords:
         * pairs within 32 MiB), the last one partial: hd128 107 + 21 of 128
         * (kv head, batch) pairs, hd256 63 + 33 of 96 */
        {FG_FP16, 128, 16, 16, 8, 190, 230, FG_CAUSAL_BOTTOM_RIGHT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
        {FG_BF16, 256, 8, 12, 12, 260, 260, FG_CAUSAL_TOP_LEFT, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0},
    };
    /* FG_PATH_WGMMA: the Hopper kernels with cp.async loads; FG_PATH_TMA:
     * with TMA loads (AUTO's choice for these strides) */
    bcase pw[sizeof pc / sizeof pc[0]], pm[sizeof pc / sizeof pc[0]], pt[sizeof pc / sizeof pc[0]];
    for (unsigned i = 0; i < sizeof pc / sizeof pc[0]; ++i) {
        pw[i] = pm[i] = pt[i] = pc[i];
        pw[i].path = FG_PATH_WGMMA;
        pm[i].path = FG_PATH_MMA;
        pt[i].path = FG_PATH_TMA;
    }
    fg_error he = {0};
    const int hopper = fg_ctx_device(ctx, &he) == FG_OK && fg_arch_has_wgmma(ctx->dev_info.arch);
    fg_error_clear(&he);
    if (!hopper && wanted(argc, argv, "wgmma")) printf("(no sm_90a: the FG_PATH_WGMMA cases are not run)\n");
    run_group(ctx, pw, sizeof pw / sizeof pw[0], seed + 400, hopper && wanted(argc, argv, "wgmma"), &passed, &failed);
    run_group(ctx, pt, sizeof pt / sizeof pt[0], seed + 450, hopper && wanted(argc, argv, "tma"), &passed, &failed);
    run_group(ctx, pm, sizeof pm / sizeof pm[0], seed + 500, wanted(argc, argv, "mma"), &passed, &failed);
    /* group "bm64": the Hopper kernel's 64-row query blocks at head dims
     * 64/64 (the heuristic takes 128 rows there; 64 stays reachable by a
     * caller's block_m, an older tuned result and the tuner), TMA and cp.async
     * loads, both causal alignments (the masked copy of MASK_BRANCH) */
    bcase b64[2 * (sizeof pc / sizeof pc[0])];
    unsigned nb64 = 0;
    for (unsigned i = 0; i < sizeof pc / sizeof pc[0]; ++i)
        if (pc[i].d == 64 && (pc[i].dv == 0 || pc[i].dv == 64))
            for (int t = 0; t < 2; ++t) {
                b64[nb64] = pc[i];
                b64[nb64].path = t ? FG_PATH_WGMMA : FG_PATH_TMA;
                b64[nb64++].bm = 64;
            }
    run_group(ctx, b64, nb64, seed + 550, hopper && wanted(argc, argv, "bm64"), &passed, &failed);
    /* score modifications on the mma.sync backward (AUTO: the Hopper kernel
     * is never taken for them): each alone, all together, both causal
     * alignments, GQA/MQA, odd lengths, windows that leave rows empty
     * (bottom-right with sq > sk, and a window ahead of the keys) */
#define MODS_S(dt_, d_, b_, hq_, hkv_, sq_, sk_, causal_, cap_, alibi_, win_, wl_, wr_, sink_, score_)                    \
    {{.dt = dt_, .d = d_, .b = b_, .hq = hq_, .hkv = hkv_, .sq = sq_, .sk = sk_, .causal = causal_},                   \
     {.softcap = cap_, .alibi = alibi_, .win = win_, .wl = wl_, .wr = wr_, .sink = sink_, .score = score_}}
#define MODS(dt_, d_, b_, hq_, hkv_, sq_, sk_, causal_, cap_, alibi_, win_, wl_, wr_, sink_)                              \
    MODS_S(dt_, d_, b_, hq_, hkv_, sq_, sk_, causal_, cap_, alibi_, win_, wl_, wr_, sink_, NULL)
#define MODS_SP(dt_, d_, b_, hq_, hkv_, sq_, sk_, causal_, density_, block_, cap_, alibi_, win_, wl_, wr_, sink_, score_)   \
    {{dt_, d_, b_, hq_, hkv_, sq_, sk_, causal_, 0, 0, 0, density_, block_, NULL, NULL, 0, 0, 0},                            \
     {cap_, alibi_, win_, wl_, wr_, sink_, score_}}
    static const mcase mc[] = {
        MODS(FG_BF16, 128, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 2.f, 0, 0, 0, 0, 0),               /* softcap */
        MODS(FG_FP16, 64, 1, 4, 1, 300, 300, FG_CAUSAL_BOTTOM_RIGHT, 2.f, 0, 0, 0, 0, 0),
        MODS(FG_FP16, 128, 2, 4, 2, 257, 389, FG_CAUSAL_BOTTOM_RIGHT, 0.f, 1, 0, 0, 0, 0),       /* ALiBi [h] */
        MODS(FG_BF16, 64, 3, 2, 2, 200, 150, FG_CAUSAL_TOP_LEFT, 0.f, 2, 0, 0, 0, 0),            /* ALiBi [b, h] */
        MODS(FG_BF16, 128, 1, 4, 2, 500, 500, FG_CAUSAL_NONE, 0.f, 0, 1, 100, 37, 0),           /* window */
        MODS(FG_FP16, 64, 2, 2, 1, 400, 333, FG_CAUSAL_BOTTOM_RIGHT, 0.f, 0, 1, 64, 0, 0),
        MODS(FG_BF16, 64, 1, 3, 1, 300, 100, FG_CAUSAL_NONE, 0.f, 0, 1, 10, 0, 0),              /* rows i < 190 empty */
        MODS(FG_FP16, 128, 1, 2, 2, 300, 100, FG_CAUSAL_TOP_LEFT, 0.f, 0, 1, 0, 5, 0),          /* rows i > 104 empty */
        MODS(FG_BF16, 128, 2, 4, 2, 333, 517, FG_CAUSAL_BOTTOM_RIGHT, 0.f, 0, 0, 0, 0, 1),      /* sinks */
        MODS(FG_FP16, 64, 1, 8, 1, 129, 257, FG_CAUSAL_NONE, 0.f, 0, 0, 0, 0, 1),
        MODS(FG_BF16, 128, 2, 4, 2, 333, 517, FG_CAUSAL_BOTTOM_RIGHT, 2.f, 2, 1, 128, 16, 1),   /* all four */
        MODS(FG_FP16, 128, 1, 4, 1, 700, 1000, FG_CAUSAL_NONE, 1.5f, 1, 1, 200, 200, 1),
        MODS(FG_BF16, 64, 2, 2, 2, 300, 100, FG_CAUSAL_BOTTOM_RIGHT, 3.f, 1, 1, 20, 0, 1),      /* empty rows + sink */
        MODS(FG_FP16, 64, 1, 4, 2, 257, 130, FG_CAUSAL_TOP_LEFT, 2.5f, 2, 1, 33, 3, 1),
        /* user score expressions (backward through their derivative,
         * gen/score_deriv.c): a kink, tables by head and by distance, tanh,
         * exp2, min/max, alone and under the built-ins */
        MODS_S(FG_BF16, 128, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 0.f, 0, 0, 0, 0, 0,
               "where(score > 1.0, 1.0 + (score - 1.0) * w, score) + tb[h]"),
        MODS_S(FG_FP16, 64, 1, 4, 1, 300, 300, FG_CAUSAL_BOTTOM_RIGHT, 0.f, 0, 0, 0, 0, 0,
               "score * w + tb[abs(q_idx - kv_idx) % 16] * tanh(score)"),
        MODS_S(FG_BF16, 96, 1, 2, 2, 200, 150, FG_CAUSAL_TOP_LEFT, 0.f, 0, 0, 0, 0, 0,
               "max(score, -2.0) * 0.5 + 0.25 * exp2(min(score, 2.0) * w)"),
        MODS_S(FG_FP16, 128, 2, 4, 2, 257, 389, FG_CAUSAL_BOTTOM_RIGHT, 2.f, 1, 1, 100, 20, 1,
               "score - tb[(q_idx * 7 + kv_idx) % 16] * 0.125"),
        MODS_S(FG_BF16, 256, 1, 2, 1, 130, 190, FG_CAUSAL_NONE, 0.f, 0, 0, 0, 0, 0, "log2(exp2(score) + 1.0)"),
        /* block-sparse layouts (random; rows with no block get no gradient) */
        MODS_SP(FG_BF16, 128, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 0.5, 128, 2.f, 1, 0, 0, 0, 0, NULL),
        MODS_SP(FG_FP16, 64, 1, 4, 4, 400, 400, FG_CAUSAL_BOTTOM_RIGHT, 0.6, 64, 0.f, 0, 1, 90, 10, 1, NULL),
        MODS_SP(FG_BF16, 128, 2, 4, 1, 300, 260, FG_CAUSAL_TOP_LEFT, 0.5, 128, 0.f, 0, 0, 0, 0, 0,
                "score * w + tb[abs(q_idx - kv_idx) % 16] * tanh(score)"),
    };
#undef MODS
#undef MODS_S
#undef MODS_SP
    for (unsigned i = 0; i < sizeof mc / sizeof mc[0] && !g_dead && wanted(argc, argv, "mods"); ++i) {
        bcase c = mc[i].c;
        c.seed = seed + 600 + i;
        run_case(ctx, &c, &mc[i].m, &passed, &failed);
    }
    fg_context_destroy(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return test_summary("test_gpu_backward");
}
