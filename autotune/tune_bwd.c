/* tune_bwd.c: fg_tune_backward, the backward's hooks of the autotuner's
 * driver (tune.c):
 *   candidates: fg_tune_bwd_candidates (the Hopper kernel's configuration
 *     on sm_90a, every mma.sync one the template takes);
 *   baseline: what fg_attention_backward takes without a tuned result
 *     (fg_ctx_bwd_heuristic);
 *   launch: the three kernels (fg_ctx_bwd_launch) on the o and lse of the
 *     bucket's shape, made once per bucket by fg_attention_forward;
 *   check: dq, dk and dv of a small GQA shape with ragged tiles against the
 *     float64 backward reference (fg_reference_backward).  The reference
 *     of a whole bucket shape would cost O(seqlen^2) per key row, and the
 *     check does not depend on the bucket, so a candidate is checked once.
 * Deterministic calls are not tuned (they keep the heuristic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autotune/candidates.h"
#include "autotune/tune_internal.h"
#include "fg_bwd_params.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/check.h"
#include "runtime/reference_bwd.h"
#include "runtime/timing.h"
#include "select/bwd_config.h"
#include "select/heuristic.h"

/* The check's shape: batch 2, 4 query heads over 2 kv heads, 257 rows
 * (no tile divides it). */
#define CHECK_BATCH 2
#define CHECK_HEADS_Q 4
#define CHECK_HEADS_KV 2
#define CHECK_SEQLEN 257

typedef struct bwd_call {
    fg_context *ctx;
    const fg_kernel *k;
    const fg_variant *v;
    fg_bwd_params *p;
    void *ws;
    const fg_bwd_workspace *w;
} bwd_call;

static fg_status launch_bwd(void *ud, fg_error *err) {
    bwd_call *u = ud;
    return fg_ctx_bwd_launch(u->ctx, u->k, u->v, u->p, u->ws, u->w, NULL, err);
}

static void *ptr(CUdeviceptr p) { return (void *)(uintptr_t)p; }

/* o and lse of d (q, k, v in b) by the forward this context chooses. */
static int forward(fg_tuner *t, fg_tune_cand *c, const fg_attention_desc *d, fg_tune_bufs *b) {
    if (fg_attention_forward(t->ctx, d, ptr(b->q), ptr(b->k), ptr(b->v), ptr(b->o), (float *)ptr(b->lse), NULL) == FG_OK)
        return 1;
    snprintf(c->note, sizeof c->note, "the forward for o and lse: %.60s", fg_errmsg(t->ctx));
    return 0;
}

/* c's backward on d (o and lse in b): one warm-up, then the median ms of
 * reps runs in *ms; 0 with c->note on failure. */
static int run(fg_tuner *t, fg_tune_cand *c, const fg_attention_desc *d, fg_tune_bufs *b, int reps, double *ms,
               fg_error *err) {
    fg_attention_desc dd;
    fg_variant v;
    fg_bwd_params p;
    if (fg_backward_plan(d, t->ctx->dev_info.smem_per_block_optin, &dd, &v, &p, err) != FG_OK) {
        snprintf(c->note, sizeof c->note, "plan: %.80s", err->msg ? err->msg : "?");
        return 0;
    }
    v.cfg = c->cfg;
    p.q = ptr(b->q); p.k = ptr(b->k); p.v = ptr(b->v); p.o = ptr(b->o); p.dout = ptr(b->dout);
    p.lse = (const float *)ptr(b->lse);
    p.dq = ptr(b->dq); p.dk = ptr(b->dk); p.dv = ptr(b->dv);
    fg_bwd_workspace w;
    fg_bwd_workspace_layout(&dd, &w);
    bwd_call u = {t->ctx, c->k, &v, &p, ptr(b->ws), &w};
    if (fg_time_median(t->ctx->cu, launch_bwd, &u, 1, reps, 0, 0, ms, err) != FG_OK) {
        snprintf(c->note, sizeof c->note, "launch failed: %.80s", err->msg ? err->msg : "?");
        return 0;
    }
    return 1;
}

static double time_bwd(fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, int reps, fg_error *err) {
    if (b->o_seqlen != sh->d.seqlen_q) {
        if (!forward(t, c, &sh->d, b)) return -1;
        b->o_seqlen = sh->d.seqlen_q;
    }
    double ms = -1;
    return run(t, c, &sh->d, b, reps, &ms, err) ? ms : -1;
}

/* dq, dk, dv of the check's shape against the float64 reference. */
static int verify_bwd(fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, fg_error *err) {
    (void)sh;
    if (c->verified) return 1;
    const fg_spec *s = &t->spec;
    fg_attention_desc d;
    fg_attention_desc_init(&d, s->dtype, s->head_dim, CHECK_BATCH, CHECK_HEADS_Q, CHECK_HEADS_KV, CHECK_SEQLEN,
                           CHECK_SEQLEN);
    fg_attention_desc_set_head_dim_v(&d, fg_spec_head_dim_v(s));
    d.causal = s->causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
    b->o_seqlen = 0; /* o and lse are this shape's now */
    double ms;
    if (!forward(t, c, &d, b) || !run(t, c, &d, b, 1, &ms, err)) return 0;
    const size_t rows_q = (size_t)CHECK_BATCH * CHECK_SEQLEN * CHECK_HEADS_Q;
    const size_t rows_k = (size_t)CHECK_BATCH * CHECK_SEQLEN * CHECK_HEADS_KV;
    const size_t n[3] = {rows_q * s->head_dim, rows_k * s->head_dim, rows_k * fg_spec_head_dim_v(s)};
    const CUdeviceptr dev[3] = {b->dq, b->dk, b->dv};
    static const char *names[3] = {"dq", "dk", "dv"};
    uint16_t *got[3] = {malloc(n[0] * 2), malloc(n[1] * 2), malloc(n[2] * 2)};
    double *ref[3] = {malloc(n[0] * 8), malloc(n[1] * 8), malloc(n[2] * 8)};
    int ok = got[0] && got[1] && got[2] && ref[0] && ref[1] && ref[2];
    if (!ok) snprintf(c->note, sizeof c->note, "out of host memory for the reference check");
    for (int i = 0; i < 3 && ok; ++i) {
        const CUresult rc = t->ctx->cu->MemcpyDtoH(got[i], dev[i], n[i] * 2);
        if (rc) ok = fg_tune_note_cuda(t, c, "reading the gradients", rc);
    }
    if (ok && !fg_reference_backward(&d, NULL, NULL, b->hq, b->hk, b->hv, b->hdo, ref[0], ref[1], ref[2])) {
        snprintf(c->note, sizeof c->note, "out of host memory for the reference");
        ok = 0;
    }
    double rel[3] = {0, 0, 0};
    for (int i = 0; i < 3 && ok; ++i)
        if (!fg_check_grad(got[i], ref[i], n[i], s->dtype, &rel[i])) {
            snprintf(c->note, sizeof c->note, "wrong result: %s rel L2 %.3g (dq %.3g, dk %.3g, dv %.3g so far)", names[i],
                     rel[i], rel[0], rel[1], rel[2]);
            ok = 0;
        }
    for (int i = 0; i < 3; ++i) { free(got[i]); free(ref[i]); }
    c->verified = ok;
    return ok;
}

static fg_status setup_bwd(fg_context *ctx, const fg_tune_args *a, fg_spec *spec, fg_config *cfgs, int max, int *n,
                           fg_config *heur, fg_error *err) {
    if (a->shape.deterministic)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "fg_tune_backward tunes the default (atomic dQ) backward; deterministic "
                       "calls use the built-in heuristic: leave deterministic 0");
    if (a->shape.path == FG_PATH_WGMMA || a->shape.path == FG_PATH_TMA)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "fg_tune_backward: %s names the Hopper backward's one "
                       "configuration, which such calls take without tuning; tune FG_PATH_AUTO (it times that one "
                       "against the mma.sync configurations) or FG_PATH_MMA",
                       a->shape.path == FG_PATH_TMA ? "FG_PATH_TMA" : "FG_PATH_WGMMA");
    /* validates dtype, head dims, causal and path the way a call would */
    fg_attention_desc pd;
    fg_variant pv;
    fg_bwd_params pp;
    fg_status st = fg_backward_plan(&a->probe, ctx->dev_info.smem_per_block_optin, &pd, &pv, &pp, err);
    if (st != FG_OK) return st;
    *spec = pv.spec;
    const int path = (int)a->shape.path;
    *n = fg_tune_bwd_candidates(spec, ctx->dev_info.smem_per_block_optin, fg_arch_has_wgmma(ctx->dev_info.arch), path,
                                cfgs, max);
    return fg_ctx_bwd_heuristic(ctx, spec, 0, 0, path, 0, heur, err);
}

static const fg_tune_pass BWD = {1, 2.5, setup_bwd, time_bwd, verify_bwd};

fg_status fg_tune_backward(fg_context *ctx, const fg_attention_desc *shape, const fg_tune_options *opt) {
    return fg_tune_pass_run(ctx, shape, opt, &BWD);
}
