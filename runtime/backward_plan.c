/* backward_plan.c: a backward call's checks, variant and kernel arguments
 * (backward.h).  The forward's plan does the common checks; this adds what
 * only the backward reads. */
#include <stdint.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/backward.h"
#include "runtime/structs.h"
#include "select/bwd_config.h"

static size_t align256(size_t x) { return (x + 255) / 256 * 256; }

/* n rounded up to a multiple of m */
static size_t pad_to(size_t n, size_t m) { return (n + m - 1) / m * m; }

void fg_bwd_workspace_layout(const fg_attention_desc *d, fg_bwd_workspace *w) {
    const size_t locks = (size_t)d->batch * (size_t)d->heads_q * (((size_t)d->seqlen_q + 15) / 16);
    w->dq_accum = 0;
    /* the dQ accumulator: rows padded to whole 64-row blocks per (batch,
     * head), the Hopper kernel's chunk layout (fg_bwd_wgmma.cuh) */
    const size_t acc_rows = (size_t)d->batch * (size_t)d->heads_q * pad_to((size_t)d->seqlen_q, 64);
    w->dsum = align256(acc_rows * (size_t)d->head_dim * sizeof(float));
    /* D and lse * log2(e) per row, in rows padded to 128 (fg_bwd_params
     * rows_pad: the Hopper kernel loads a query block's rows of each, up to
     * 128, as one bulk copy) */
    const size_t pad_rows = (size_t)d->batch * (size_t)d->heads_q * pad_to((size_t)d->seqlen_q, 128);
    w->lse2 = w->dsum + align256(pad_rows * sizeof(float));
    w->lock = w->lse2 + align256(pad_rows * sizeof(float));
    w->total = w->lock + align256(locks * sizeof(int));
}

static int all_zero(const int64_t s[3]) { return !s[0] && !s[1] && !s[2]; }

static void resolve(int64_t dst[3], const int64_t from[3]) {
    if (all_zero(dst)) memcpy(dst, from, 3 * sizeof *dst);
}

/* What the backward adds to the forward's checks of the score
 * modifications (fg_score_check): a user expression with a derivative,
 * the mma.sync path, and dsinks. */
static fg_status bwd_mods_check(const fg_attention_desc *d, fg_error *err) {
    const int mods = fg_desc_score_mods(d);
    if ((mods & FG_MOD_SCORE) && !d->score->cuda_d)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the backward pass cannot differentiate this score expression (fg_attention_desc.score): %s",
                       d->score->deriv_err);
    if (mods && (d->path == FG_PATH_WGMMA || d->path == FG_PATH_TMA))
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the Hopper backward (%s) does not implement score modifications: use FG_PATH_AUTO or "
                       "FG_PATH_MMA", d->path == FG_PATH_TMA ? "FG_PATH_TMA" : "FG_PATH_WGMMA");
    if (d->dsinks && !d->sinks)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "dsinks is set but sinks is NULL: there is no sink to differentiate");
    if ((uintptr_t)d->dsinks % 4)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "dsinks must be a 4-byte aligned fp32 device array [heads_q]");
    if (d->dsinks && d->deterministic)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "dsinks is summed with fp32 atomics, which the deterministic mode does not allow: leave dsinks "
                       "NULL or deterministic 0");
    /* The deterministic turns (fg_bwd_kernel.cuh, bwd_turn_wait) let key
     * block n add to a query block's dQ once n earlier key blocks have: with
     * a left bound the first key block that sees a query block may be past
     * 0, and it would wait forever.  A side of max(seqlen_q, seqlen_k) or
     * more is as unbounded as -1. */
    const int longest = d->seqlen_q > d->seqlen_k ? d->seqlen_q : d->seqlen_k;
    if (d->deterministic && d->window_left >= 0 && d->window_left < longest)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the deterministic backward does not take a window with a left bound (window_left = %d): its "
                       "dQ turns start at key block 0; use window_left -1 or deterministic 0",
                       d->window_left);
    return FG_OK;
}

fg_status fg_backward_plan(const fg_attention_desc *desc, int smem_limit, fg_attention_desc *dd, fg_variant *v,
                           fg_bwd_params *p, fg_error *err) {
    fg_status st = fg_desc_read(desc, dd, err);
    if (st != FG_OK) return st;
    /* the backward kernels take dense batches: with these fields they would
     * walk seqlen_k keys of contiguous k and v for every sequence, and give
     * wrong gradients without a word */
    if (fg_desc_has_infer(dd))
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the backward pass takes no inference fields: variable lengths (cu_seqlens_q/k), KV-cache "
                       "lengths (seqlens_k), paged K/V (block_table) and split-KV (num_splits > 1) are forward only");
    if (dd->layout && dd->deterministic)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the deterministic backward is dense only: with a block-sparse layout dq is summed with atomics");
    if ((st = bwd_mods_check(dd, err)) != FG_OK) return st;
    if (dd->dtype == FG_E4M3)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "the backward pass takes FG_FP16 or FG_BF16 (FG_E4M3 is forward only)");
    if ((dd->path == FG_PATH_WGMMA || dd->path == FG_PATH_TMA) && dd->deterministic)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the deterministic backward runs on the mma.sync path (FG_PATH_MMA or FG_PATH_AUTO), not %s",
                       dd->path == FG_PATH_TMA ? "FG_PATH_TMA" : "FG_PATH_WGMMA");
    /* the forward's checks of sizes, dtype, scale and the q/k/v/o strides;
     * its block fields mean forward tiles, so they are checked here instead */
    fg_attention_desc fwd = *dd;
    fwd.struct_size = sizeof fwd; /* *dd holds this library's fields; the caller's size may differ */
    fwd.block_m = fwd.block_n = fwd.warps = fwd.stages = 0;
    fwd.path = FG_PATH_AUTO;
    fg_variant fv;
    fg_fwd_params fp;
    if ((st = fg_desc_plan(&fwd, smem_limit, &fv, &fp, err)) != FG_OK) return st;
    resolve(dd->do_strides, dd->o_strides);
    resolve(dd->dq_strides, dd->q_strides);
    resolve(dd->dk_strides, dd->k_strides);
    resolve(dd->dv_strides, dd->v_strides);
    const fg_attention_desc *d = dd;
    const int dv = fg_desc_head_dim_v(d); /* dout and dv, like o and v */
    if ((st = fg_check_strides("dout", d->do_strides, d->batch, d->heads_q, d->seqlen_q, dv, 0, err)) ||
        (st = fg_check_strides("dq", d->dq_strides, d->batch, d->heads_q, d->seqlen_q, d->head_dim, 1, err)) ||
        (st = fg_check_strides("dk", d->dk_strides, d->batch, d->heads_kv, d->seqlen_k, d->head_dim, 1, err)) ||
        (st = fg_check_strides("dv", d->dv_strides, d->batch, d->heads_kv, d->seqlen_k, dv, 1, err)))
        return st;

    memset(v, 0, sizeof *v);
    v->spec = fv.spec;
    v->spec.kind = FG_KIND_BWD;
    fg_config_unset(&v->cfg);
    const fg_block_layout *L = d->layout;
    if (d->path == FG_PATH_WGMMA || d->path == FG_PATH_TMA || d->block_m || d->block_n || d->warps || d->stages) {
        /* explicit (FG_PATH_WGMMA names the Hopper kernel's configuration
         * with cp.async loads, FG_PATH_TMA with TMA loads):
         * completed and checked, never replaced by the heuristic; the
         * device's arch is checked where the kernel is chosen (backward.c) */
        v->cfg.block_m = d->block_m;
        v->cfg.block_n = d->block_n;
        v->cfg.warps = d->warps;
        v->cfg.stages = d->stages;
        if (d->path == FG_PATH_MMA) v->cfg.wgmma = 0;
        if (d->path == FG_PATH_WGMMA) v->cfg.wgmma = 1;
        if (d->path == FG_PATH_TMA) v->cfg.wgmma = 2;
        if ((st = fg_bwd_config_complete(&v->spec, &v->cfg, smem_limit, L ? L->block_q : 0, L ? L->block_k : 0, err)) != FG_OK)
            return st;
    }

    memset(p, 0, sizeof *p);
    const int64_t *src[8] = {d->q_strides, d->k_strides, d->v_strides, d->o_strides,
                             d->do_strides, d->dq_strides, d->dk_strides, d->dv_strides};
    long long *dst[8] = {p->q_s, p->k_s, p->v_s, p->o_s, p->do_s, p->dq_s, p->dk_s, p->dv_s};
    for (int t = 0; t < 8; ++t)
        for (int i = 0; i < 3; ++i) dst[t][i] = src[t][i];
    /* sizes, scale and the score modifications as the forward's plan
     * turned them into its parameters (fg_score_params): the same fields
     * by the same names */
#define FROM_FWD(f) p->f = fp.f;
    FROM_FWD(batch) FROM_FWD(heads_q) FROM_FWD(heads_kv) FROM_FWD(group) FROM_FWD(seqlen_q) FROM_FWD(seqlen_k)
    FROM_FWD(causal_offset) FROM_FWD(scale) FROM_FWD(scale_log2)
    FROM_FWD(alibi_slopes) FROM_FWD(alibi_batch_stride) FROM_FWD(sinks) FROM_FWD(softcap) FROM_FWD(softcap_scale)
    FROM_FWD(mod_offset) FROM_FWD(window_left) FROM_FWD(window_right)
#undef FROM_FWD
    memcpy(p->score_ci, fp.score_ci, sizeof p->score_ci);
    memcpy(p->score_cf, fp.score_cf, sizeof p->score_cf);
    memcpy(p->score_ti, fp.score_ti, sizeof p->score_ti);
    memcpy(p->score_tf, fp.score_tf, sizeof p->score_tf);
    memcpy(p->score_tn, fp.score_tn, sizeof p->score_tn);
    p->deterministic = d->deterministic != 0;
    p->dsinks = d->dsinks;
    p->lock_blocks = (d->seqlen_q + 15) / 16;
    p->rows_pad = (int)pad_to((size_t)d->seqlen_q, 128); /* as the workspace's lse2 and D rows */
    if (L) {
        p->sp_full_num = L->t_full_num; p->sp_full_idx = L->t_full_idx;
        p->sp_part_num = L->t_part_num; p->sp_part_idx = L->t_part_idx;
        p->sp_batch = L->batch; p->sp_heads = L->heads;
        p->sp_num_q_blocks = L->num_q_blocks; p->sp_num_kv_blocks = L->num_kv_blocks;
        p->sp_block_q = L->block_q; p->sp_block_k = L->block_k;
        memcpy(p->mask_c, L->mask_c, sizeof p->mask_c);
    }
    return FG_OK;
}
