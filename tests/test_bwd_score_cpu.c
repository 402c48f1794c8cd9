/* The backward pass of a user score expression (fg_attention_desc.score,
 * fg_score_create) without a GPU:
 * - the float64 reference (runtime/reference_bwd.c, the expression and its
 *   derivative evaluated in fp32 as the device does): an expression equal
 *   to a built-in (softcap, ALiBi) gives the built-in's gradients; a smooth
 *   expression with constants and tables against finite differences of
 *   the reference forward; an expression that does not read score has no
 *   gradient through q and k;
 * - the plan: the expression, its derivative and its constants and tables
 *   reach the variant and fg_bwd_params; an expression whose derivative is
 *   too long to build runs forward but is refused by the backward with the
 *   reason; FG_PATH_WGMMA is refused;
 * - renders with score_mod_d and NVRTC compiles for sm_80 and sm_90a
 *   without spills. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gen/render.h"
#include "gen/score_expr.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "runtime/reference_bwd.h"
#include "select/bwd_config.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

#define H100_SMEM 232448
#define DEV(x) ((const void *)(uintptr_t)(x)) /* a device address the plan never reads */

/* ---- the reference ---- */

typedef struct expr_pair { fg_score_expr *e, *d; } expr_pair;

static expr_pair parse(const char *text, const fg_score_name *consts, int nc, const fg_score_name *tables, int nt) {
    expr_pair x = {NULL, NULL};
    fg_error e = {0};
    CHECK(fg_score_expr_parse(text, consts, nc, tables, nt, &x.e, &e) == FG_OK, "parse %s: %s", text, e.msg);
    fg_error_clear(&e);
    if (x.e) CHECK(fg_score_expr_derivative(x.e, &x.d, &e) == FG_OK, "derivative of %s: %s", text, e.msg);
    fg_error_clear(&e);
    return x;
}

static void pair_free(expr_pair *x) {
    fg_score_expr_free(x->e);
    fg_score_expr_free(x->d);
}

typedef struct inputs { double *q, *k, *v, *dout, *dq, *dk, *dv, *o; size_t nq, nk; } inputs;

static inputs make_inputs(const fg_attention_desc *d, fg_rng *rng) {
    inputs in;
    in.nq = (size_t)d->batch * d->seqlen_q * d->heads_q * d->head_dim;
    in.nk = (size_t)d->batch * d->seqlen_k * d->heads_kv * d->head_dim;
    double **qs[] = {&in.q, &in.dout, &in.dq, &in.o}, **ks[] = {&in.k, &in.v, &in.dk, &in.dv};
    for (int i = 0; i < 4; ++i) *qs[i] = malloc(8 * in.nq);
    for (int i = 0; i < 4; ++i) *ks[i] = malloc(8 * in.nk);
    for (size_t i = 0; i < in.nq; ++i) in.q[i] = 1.5 * fg_rng_normal(rng), in.dout[i] = fg_rng_normal(rng);
    for (size_t i = 0; i < in.nk; ++i) in.k[i] = 1.5 * fg_rng_normal(rng), in.v[i] = fg_rng_normal(rng);
    return in;
}

static void inputs_free(inputs *in) {
    double *all[] = {in->q, in->k, in->v, in->dout, in->dq, in->dk, in->dv, in->o};
    for (int i = 0; i < 8; ++i) free(all[i]);
}

static double max_diff(const double *a, const double *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static fg_attention_desc small_desc(int causal) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 8, 2, 4, 2, 6, 9);
    d.causal = (fg_causal)causal;
    d.softmax_scale = 0.9f;
    return d;
}

/* An expression equal to a built-in gives the built-in's gradients (the
 * expression in fp32, the built-in in double: within 1e-5). */
static void test_equals_builtin(fg_rng *rng) {
    for (int causal = 0; causal < 3; ++causal) {
        fg_attention_desc d = small_desc(causal);
        inputs in = make_inputs(&d, rng);
        double *dq = malloc(8 * in.nq), *dk = malloc(8 * in.nk), *dv = malloc(8 * in.nk);
        /* softcap 2 */
        expr_pair x = parse("2.0 * tanh(score / 2.0)", NULL, 0, NULL, 0);
        fg_ref_mods m = {0};
        m.score = x.e;
        m.score_d = x.d;
        CHECK(fg_reference_backward_mods_f64(&d, NULL, NULL, &m, in.q, in.k, in.v, in.dout, in.dq, in.dk, in.dv, NULL),
              "user backward");
        fg_attention_desc ds = d;
        ds.softcap = 2.f;
        CHECK(fg_reference_backward_mods_f64(&ds, NULL, NULL, NULL, in.q, in.k, in.v, in.dout, dq, dk, dv, NULL), "softcap");
        double e = fmax(max_diff(in.dq, dq, in.nq), fmax(max_diff(in.dk, dk, in.nk), max_diff(in.dv, dv, in.nk)));
        printf("causal=%d: '2.0 * tanh(score / 2.0)' against softcap=2: %.1e\n", causal, e);
        CHECK(e < 1e-5, "softcap as an expression: gradients differ by %g", e);
        pair_free(&x);
        /* ALiBi with slope 0.25 (its offset: bottom-right's seqlen_k - seqlen_q, top-left's 0) */
        char text[96];
        snprintf(text, sizeof text, "score - 0.25 * abs(q_idx + %d - kv_idx)", fg_ref_mod_offset(&d));
        x = parse(text, NULL, 0, NULL, 0);
        m.score = x.e;
        m.score_d = x.d;
        CHECK(fg_reference_backward_mods_f64(&d, NULL, NULL, &m, in.q, in.k, in.v, in.dout, in.dq, in.dk, in.dv, NULL),
              "user backward");
        float slopes[4] = {0.25f, 0.25f, 0.25f, 0.25f};
        fg_ref_mods ma = {0};
        ma.alibi_slopes = slopes;
        CHECK(fg_reference_backward_mods_f64(&d, NULL, NULL, &ma, in.q, in.k, in.v, in.dout, dq, dk, dv, NULL), "alibi");
        e = fmax(max_diff(in.dq, dq, in.nq), fmax(max_diff(in.dk, dk, in.nk), max_diff(in.dv, dv, in.nk)));
        printf("causal=%d: '%s' against ALiBi 0.25: %.1e\n", causal, text, e);
        CHECK(e < 1e-5, "ALiBi as an expression: gradients differ by %g", e);
        pair_free(&x);
        /* no score in it: q and k get no gradient, v still does */
        const fg_score_name tb = {"tb", FG_SCORE_FLOAT};
        const float tbv[4] = {0.5f, -1.f, 2.f, 0.25f};
        const fg_score_table tables[1] = {{tbv, 4}};
        x = parse("tb[(q_idx * 3 + kv_idx) % 4]", NULL, 0, &tb, 1);
        m.score = x.e;
        m.score_d = x.d;
        m.score_tables = tables;
        CHECK(fg_reference_backward_mods_f64(&d, NULL, NULL, &m, in.q, in.k, in.v, in.dout, in.dq, in.dk, in.dv, NULL),
              "user backward");
        double zq = 0, zk = 0, nv = 0;
        for (size_t i = 0; i < in.nq; ++i) zq = fmax(zq, fabs(in.dq[i]));
        for (size_t i = 0; i < in.nk; ++i) zk = fmax(zk, fabs(in.dk[i])), nv = fmax(nv, fabs(in.dv[i]));
        CHECK(zq == 0 && zk == 0 && nv > 0.1, "an expression without score: dq %g dk %g dv %g", zq, zk, nv);
        pair_free(&x);
        free(dq); free(dk); free(dv);
        inputs_free(&in);
    }
}

typedef struct fd_state { const fg_attention_desc *d; const fg_ref_mods *m; inputs *in; } fd_state;

static double loss(const fd_state *s) {
    fg_reference_forward_mods_f64(s->d, NULL, NULL, s->m, s->in->q, s->in->k, s->in->v, s->in->o);
    double l = 0;
    for (size_t i = 0; i < s->in->nq; ++i) l += s->in->dout[i] * s->in->o[i];
    return l;
}

/* max |analytic - numeric| / max(1, |numeric|); the step is large (1/128)
 * because the expression is evaluated in fp32 (its rounding over a step of
 * 1e-5 would be noise of 1e-2) and smooth, so the O(h^2) error stays near
 * 1e-4 */
static double fd_error(const fd_state *s, double *x, const double *grad, size_t n) {
    double worst = 0;
    const double h = 1.0 / 128;
    for (size_t i = 0; i < n; ++i) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss(s);
        x[i] = x0 - h;
        const double lm = loss(s);
        x[i] = x0;
        const double num = (lp - lm) / (2 * h), err = fabs(num - grad[i]) / fmax(1.0, fabs(num));
        if (err > worst) worst = err;
    }
    return worst;
}

/* A smooth expression with a float constant, a float table and an int
 * table, with softcap and a window around it, against finite differences. */
static void test_finite_differences(fg_rng *rng) {
    const fg_score_name consts[1] = {{"w", FG_SCORE_FLOAT}};
    const fg_score_name tabs[2] = {{"tb", FG_SCORE_FLOAT}, {"ti", FG_SCORE_INT}};
    const char *text = "score * w + tb[h] * tanh(score * 0.5) + 0.125 * exp2(score * 0.25) - 0.0625 * ti[abs(q_idx - kv_idx)]";
    expr_pair x = parse(text, consts, 1, tabs, 2);
    const int64_t ci[1] = {0};
    const float cf[1] = {0.75f}, tbv[4] = {0.5f, -1.f, 2.f, 0.25f};
    const int32_t tiv[5] = {0, 1, 3, 2, 5};
    const fg_score_table tables[2] = {{tbv, 4}, {tiv, 5}};
    for (int c = 0; c < 4; ++c) {
        fg_attention_desc d = small_desc(c % 3);
        if (c == 3) { d.softcap = 3.f; d.window_left = 2; d.window_right = 1; }
        fg_ref_mods m = {0};
        m.score = x.e;
        m.score_d = x.d;
        m.score_ci = ci;
        m.score_cf = cf;
        m.score_tables = tables;
        inputs in = make_inputs(&d, rng);
        CHECK(fg_reference_backward_mods_f64(&d, NULL, NULL, &m, in.q, in.k, in.v, in.dout, in.dq, in.dk, in.dv, NULL),
              "backward");
        const fd_state s = {&d, &m, &in};
        const double eq = fd_error(&s, in.q, in.dq, in.nq), ek = fd_error(&s, in.k, in.dk, in.nk),
                     ev = fd_error(&s, in.v, in.dv, in.nk);
        printf("causal=%d softcap=%g window=(%d,%d): dq %.1e dk %.1e dv %.1e against finite differences\n", d.causal,
               (double)d.softcap, d.window_left, d.window_right, eq, ek, ev);
        CHECK(eq < 2e-3 && ek < 2e-3 && ev < 2e-3, "score expression gradient differs from finite differences");
        inputs_free(&in);
    }
    pair_free(&x);
}

/* ---- the plan ---- */

static fg_attention_desc plan_desc(void) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 128, 2, 8, 2, 300, 517);
    return d;
}

static void test_plan(fg_context *ctx, const fg_sources *src) {
    const fg_score_arg args[2] = {{"bias", FG_SCORE_TABLE_FLOAT, 0, 0, DEV(0x1000), 16}, {"w", FG_SCORE_CONST_FLOAT, 0, 0.5, NULL, 0}};
    fg_score *s = NULL;
    CHECK(fg_score_create(ctx, "where(score > 0.0, score * w, tanh(score)) + bias[h]", args, 2, &s) == FG_OK, "create: %s",
          fg_errmsg(ctx));
    if (!s) return;
    fg_attention_desc d = plan_desc(), dd;
    d.score = s;
    fg_variant v;
    fg_bwd_params p;
    fg_error e = {0};
    CHECK(fg_backward_plan(&d, H100_SMEM, &dd, &v, &p, &e) == FG_OK, "plan: %s", e.msg);
    fg_error_clear(&e);
    CHECK(v.spec.score_cuda_d && fg_mask_hash_set(&v.spec.score_hash), "the variant carries the derivative");
    CHECK(p.score_cf[0] == 0.5f && p.score_tf[0] == DEV(0x1000) && p.score_tn[0] == 16, "constants and tables reach fg_bwd_params");
    /* renders with the derivative and compiles without spills */
    CHECK(bwd_compile_clean(src, &v, "sm_80", 166912, "score_mod_d(", "score"), "sm_80: every candidate spills");
    CHECK(bwd_compile_clean(src, &v, "sm_90a", H100_SMEM, "SCORE_MOD_D = true", "score"), "sm_90a: every candidate spills");
    /* the Hopper kernel has no score modifications */
    d.path = FG_PATH_WGMMA;
    CHECK(fg_backward_plan(&d, H100_SMEM, &dd, &v, &p, &e) == FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA with a score expression");
    fg_error_clear(&e);
    fg_score_destroy(s);
    /* a derivative too long to build (a chain of 45 tanh (90 operations deep, under the tree limit of 99): each level's
     * derivative repeats the levels below): forward yes, backward refused */
    char text[1200] = "";
    for (int i = 0; i < 45; ++i) strcat(text, "tanh(");
    strcat(text, "score");
    for (int i = 0; i < 45; ++i) strcat(text, " * 1.5)");
    s = NULL;
    CHECK(fg_score_create(ctx, text, NULL, 0, &s) == FG_OK, "create the chain: %s", fg_errmsg(ctx));
    if (!s) return;
    CHECK(!s->cuda_d && s->deriv_err[0], "the chain's derivative is refused");
    d = plan_desc();
    d.score = s;
    fg_fwd_params fp;
    fg_variant fv;
    CHECK(fg_desc_plan(&d, H100_SMEM, &fv, &fp, &e) == FG_OK, "the chain runs forward: %s", e.msg);
    fg_error_clear(&e);
    CHECK(fg_backward_plan(&d, H100_SMEM, &dd, &v, &p, &e) == FG_ERR_UNSUPPORTED, "the chain's backward refused");
    CHECK_CONTAINS(e.msg, "cannot differentiate this score expression");
    printf("refused: %s\n", e.msg ? e.msg : "");
    fg_error_clear(&e);
    fg_score_destroy(s);
}

int main(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 29);
    test_equals_builtin(&rng);
    test_finite_differences(&rng);
    fg_context *ctx = NULL;
    if (fg_context_create(&ctx) != FG_OK) { CHECK(0, "context"); return test_summary("test_bwd_score_cpu"); }
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) {
        CHECK(0, "sources");
    } else {
        test_plan(ctx, &src);
        fg_sources_free(&src);
    }
    fg_context_destroy(ctx);
    return test_summary("test_bwd_score_cpu");
}
