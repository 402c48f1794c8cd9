/* tune_fwd.c: fg_tune, the forward's hooks of the autotuner's driver
 * (tune.c): its candidates (fg_tune_candidates) and baseline (the
 * heuristic), a candidate's launch, and its check on sampled rows of o
 * against the float64 reference (fg_reference_row). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "autotune/candidates.h"
#include "autotune/tune_internal.h"
#include "fg_params.h"
#include "runtime/attention.h"
#include "runtime/check.h"
#include "runtime/reference.h"
#include "runtime/timing.h"
#include "select/heuristic.h"

typedef struct launch_ud {
    fg_context *ctx;
    const fg_kernel *k;
    const fg_variant *v;
    fg_fwd_params *p;
    const fg_block_layout *layout; /* the shape's, or NULL */
} launch_ud;

static fg_status launch_cand(void *ud, fg_error *err) {
    launch_ud *u = ud;
    return fg_ctx_launch(u->ctx, u->k, u->v, u->p, u->layout, NULL, err);
}

/* Median time in ms of reps launches of candidate c on sh (one warm-up);
 * < 0 on failure (note set). */
static double time_fwd(fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, int reps, fg_error *err) {
    fg_context *ctx = t->ctx;
    fg_variant v;
    fg_fwd_params p;
    if (fg_desc_plan(&sh->d, ctx->dev_info.smem_per_block_optin, &v, &p, err) != FG_OK) return -1;
    v.cfg = c->cfg;
    p.q = (const void *)(uintptr_t)b->q; p.k = (const void *)(uintptr_t)b->k;
    p.v = (const void *)(uintptr_t)b->v; p.o = (void *)(uintptr_t)b->o; p.lse = NULL;
    launch_ud u = {ctx, c->k, &v, &p, sh->d.layout};
    double ms = -1;
    if (fg_time_median(ctx->cu, launch_cand, &u, 1, reps, 0, 0, &ms, err) != FG_OK) {
        snprintf(c->note, sizeof c->note, "launch failed: %s", err->msg ? err->msg : "?");
        return -1;
    }
    return ms;
}

/* Runs c once on sh and compares sampled rows of o with the float64
 * reference.  Returns 1 when they agree. */
static int verify_fwd(fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, fg_error *err) {
    const fg_cuda *cu = t->ctx->cu;
    if (time_fwd(t, c, sh, b, 1, err) < 0) return 0;
    const fg_attention_desc *d = &sh->d;
    const int D = fg_desc_head_dim_v(d); /* o rows */
    fg_check chk;
    fg_check_init_desc(&chk, d); /* FP8: o in its 16-bit type, FP8's tolerance */
    uint16_t row[256];
    double ref[256], lse;
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)time(NULL));
    for (int s = 0; s < 16; ++s) {
        const int bi = s == 0 ? 0 : (int)(fg_rng_uniform(&r) * d->batch);
        const int hi = s == 0 ? 0 : (int)(fg_rng_uniform(&r) * d->heads_q);
        const int qi = s == 0 ? 0 : s == 1 ? d->seqlen_q - 1 : (int)(fg_rng_uniform(&r) * d->seqlen_q);
        const int64_t off = bi * d->o_strides[0] + hi * d->o_strides[1] + (int64_t)qi * d->o_strides[2];
        CUresult rc = cu->MemcpyDtoH(row, b->o + (CUdeviceptr)(off * 2), (size_t)D * 2);
        if (rc) return fg_tune_note_cuda(t, c, "reading the output", rc);
        fg_reference_row(d, NULL, b->hq, b->hk, b->hv, bi, hi, qi, ref, &lse);
        fg_check_row(&chk, row, ref, D, 0, 0, 0);
    }
    if (fg_check_done(&chk)) return 1;
    char m[256];
    fg_check_describe(&chk, m, sizeof m);
    snprintf(c->note, sizeof c->note, "wrong result: %.80s", m);
    return 0;
}

static fg_status setup_fwd(fg_context *ctx, const fg_tune_args *a, fg_spec *spec, fg_config *cfgs, int max, int *n,
                           fg_config *heur, fg_error *err) {
    /* validates dtype, head dim, causal and path the way a call would */
    fg_variant pv;
    fg_fwd_params pp;
    fg_status st = fg_desc_plan(&a->probe, ctx->dev_info.smem_per_block_optin, &pv, &pp, err);
    if (st != FG_OK) return st;
    *spec = pv.spec;
    const int path = (int)a->shape.path;
    *n = fg_tune_candidates(spec, ctx->dev_info.smem_per_block_optin, 0, 0, fg_arch_has_wgmma(ctx->dev_info.arch), path,
                            cfgs, max);
    return fg_ctx_heuristic(ctx, spec, 0, 0, path, 1, heur, err);
}

static const fg_tune_pass FWD = {0, 1.0, setup_fwd, time_fwd, verify_fwd};

fg_status fg_tune(fg_context *ctx, const fg_attention_desc *shape, const fg_tune_options *opt) {
    return fg_tune_pass_run(ctx, shape, opt, &FWD);
}
