#include "select/bwd_config.h"

#include <string.h>

static int pad16(int x) { return (x + 15) / 16 * 16; }

/* head dims 256/256: the column-split kernel (templates/fg_bwd_wgmma_cols.cuh) */
static int wgmma_cols(const fg_spec *s) { return s->head_dim == 256 && fg_spec_head_dim_v(s) == 256; }

int fg_bwd_wgmma_config(const fg_spec *s, fg_config *c) {
    const int d = s->head_dim, dv = fg_spec_head_dim_v(s);
    const int dims = ((d == 64 || d == 128) && (dv == 64 || dv == 128)) || wgmma_cols(s);
    /* score modifications run on the mma.sync backward only */
    if (!dims || s->sparse || fg_mask_hash_set(&s->mask_hash) || s->mods || fg_mask_hash_set(&s->score_hash) ||
        (s->dtype != FG_FP16 && s->dtype != FG_BF16))
        return 0;
    fg_config_unset(c);
    /* 128-row query blocks at 64/64 (DQ_ROWS, fg_bwd_wgmma.cuh): H200, 4k non-causal 380 -> 469 TFLOP/s; causal,
     * once the mask is computed only in the blocks that need it (MASK_BRANCH), 343 -> 391 at 4k and 395 -> 465 at 16k
     * (with the per-element mask in every block they measured 292 and 337, docs/PERF.md v21) */
    c->block_m = d == 64 && dv == 64 ? 128 : 64;
    c->block_n = wgmma_cols(s) ? 64 : 128;
    c->warps = 8;
    c->stages = 1;
    c->q_in_regs = 0;
    c->min_blocks = 1;
    c->wgmma = 1;
    return 1;
}

void fg_bwd_set_loads(const fg_spec *s, fg_config *c, int tma_ok) {
    (void)s;
    if (c->wgmma >= 1) c->wgmma = tma_ok ? 2 : 1;
}

int fg_bwd_auto_config(const fg_spec *s, int hopper, int deterministic, int smem_limit, fg_config *c) {
    fg_config w;
    if (!hopper || deterministic || !fg_bwd_wgmma_config(s, &w)) return 0;
    /* either loads (fg_bwd_set_loads picks them later): the TMA kernel's may be the larger (DQ_LAG) */
    fg_config t = w;
    t.wgmma = 2;
    if (fg_bwd_smem_bytes(s, &w) > smem_limit || fg_bwd_smem_bytes(s, &t) > smem_limit) return 0;
    *c = w;
    return 1;
}

int fg_bwd_smem_bytes(const fg_spec *s, const fg_config *c) {
    if (c->wgmma >= 1 && wgmma_cols(s)) /* BwcShape::SMEM (templates/fg_bwd_wgmma_cols.cuh) */
        return 1024 + c->block_n * 2 * 256 * 2 + 3 * c->block_m * 256 * 2 + c->block_m * 256 * 4 + 3 * c->block_m * 4 + 32;
    if (c->wgmma >= 1) { /* BwgShape::SMEM (templates/fg_bwd_wgmma.cuh, bwd_wgmma.lua): head dim 128 splits dQ by
                            columns (DQ_COLS); 2 stages of Q and dO (NS) */
        /* dQ one block late (DQ_LAG, head dims 128/128 with TMA loads): three dS^T stages and their three ready
           barriers */
        const int cols = s->head_dim == 128, ns = 2, shared = cols || c->block_m == 128,
                  lag = cols && fg_spec_head_dim_v(s) == 128 && c->wgmma == 2;
        return 1024 + c->block_n * (s->head_dim + fg_spec_head_dim_v(s)) * 2 +
               ns * c->block_m * (s->head_dim + fg_spec_head_dim_v(s)) * 2 +
               (lag ? 3 : shared ? 2 : 1) * c->block_n * c->block_m * 2 + 2 * 64 * (cols ? s->head_dim / 2 : s->head_dim) * 4 +
               2 * ns * c->block_m * 4 + (2 * ns + 1 + (lag ? 3 : 0)) * 8;
    }
    const int lds = pad16(s->head_dim) + 8, lds_v = pad16(fg_spec_head_dim_v(s)) + 8, ldp = c->block_m + 8;
    return ((c->block_n + c->block_m) * (lds + lds_v) + 2 * c->block_n * ldp) * 2 + 2 * c->block_m * 4;
}

fg_status fg_bwd_config_check(const fg_spec *s, const fg_config *c, int smem_limit, fg_error *err) {
    if (c->wgmma >= 1) {
        fg_config w;
        if (!fg_bwd_wgmma_config(s, &w))
            return fg_fail(err, FG_ERR_UNSUPPORTED,
                           "the Hopper backward (wgmma=1) takes dense fp16/bf16 variants with head dims 64 or 128 (or "
                           "256/256) and no score modification (got %d and %d%s%s)",
                           s->head_dim, fg_spec_head_dim_v(s), s->sparse ? ", block-sparse" : "",
                           s->mods ? ", score modifications" : "");
        /* block_m: the heuristic's, or at head dims 64/64 either query block (64, or 128: DQ_ROWS) */
        const int rows128 = s->head_dim == 64 && fg_spec_head_dim_v(s) == 64;
        const int bm_ok = c->block_m == w.block_m || (rows128 && (c->block_m == 64 || c->block_m == 128));
        if (!bm_ok || c->block_n != w.block_n || c->warps != w.warps || c->stages > 1 || c->q_in_regs > 0 || c->min_blocks > 1)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "the Hopper backward (wgmma=%d) runs block_m=%s block_n=%d warps=8 only",
                           c->wgmma, rows128 ? "64 or 128" : w.block_m == 128 ? "128" : "64", w.block_n);
        const int smem = fg_bwd_smem_bytes(s, c);
        if (smem > smem_limit)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "the Hopper backward needs %d bytes of shared memory; the device has %d", smem,
                           smem_limit);
        return FG_OK;
    }
    if (c->block_m != 32 && c->block_m != 64)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "backward block_m (query tile) must be 32 or 64, not %d", c->block_m);
    if (c->block_n != 32 && c->block_n != 64 && c->block_n != 128)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "backward block_n (key block) must be 32, 64 or 128, not %d", c->block_n);
    const int wn = c->block_n / 16;
    if (c->warps != wn && c->warps != 2 * wn)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "backward warps must be block_n/16 (%d) or twice that, not %d", wn, c->warps);
    const int ws = c->warps / wn;
    if ((c->block_m / ws) % 16 || c->warps % (c->block_m / 16))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "backward block_m=%d does not split over %d warps", c->block_m, c->warps);
    if (c->wgmma > 1 || c->stages > 1 || c->q_in_regs > 0 || c->min_blocks > 1)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the backward pass takes wgmma=0 (mma.sync), 1 or 2 (Hopper), with stages=1 q_in_regs=0 min_blocks=1");
    const int smem = fg_bwd_smem_bytes(s, c);
    if (smem > smem_limit)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "backward block_m=%d block_n=%d needs %d bytes of shared memory; the device has %d",
                       c->block_m, c->block_n, smem, smem_limit);
    return FG_OK;
}

static int divides(const fg_config *c, int block_q, int block_k) {
    return (!block_q || block_q % c->block_m == 0) && (!block_k || block_k % c->block_n == 0);
}

int fg_bwd_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, fg_config *out, int max) {
    /* {block_m, block_n, warps}: dK and dV take (head_dim + head_dim_v)/WS
     * fp32 registers per thread (16 key rows per warp), so past 128 each
     * (their mean, w) the columns split over two warps; the query tile
     * bounds the S^T and dP^T registers. */
    static const int small[][3] = {{64, 64, 4}, {32, 64, 4}, {64, 64, 8}, {32, 32, 2}};
    static const int mid[][3] = {{64, 64, 8}, {32, 64, 4}, {64, 64, 4}, {32, 32, 2}, {32, 32, 4}};
    static const int big[][3] = {{64, 64, 8}, {32, 64, 8}, {32, 32, 4}};
    const int w = (s->head_dim + fg_spec_head_dim_v(s) + 1) / 2;
    const int(*list)[3] = w <= 64 ? small : w <= 128 ? mid : big;
    const int n = w <= 64 ? 4 : w <= 128 ? 5 : 3;
    int k = 0;
    for (int i = 0; i < n && k < max; ++i) {
        fg_config c;
        fg_config_unset(&c);
        c.block_m = list[i][0];
        c.block_n = list[i][1];
        c.warps = list[i][2];
        c.stages = 1;
        c.q_in_regs = 0;
        c.min_blocks = 1;
        c.wgmma = 0;
        fg_error e = {0};
        if (divides(&c, block_q, block_k) && fg_bwd_config_check(s, &c, smem_limit, &e) == FG_OK) out[k++] = c;
        fg_error_clear(&e);
    }
    return k;
}

fg_status fg_bwd_config_complete(const fg_spec *s, fg_config *c, int smem_limit, int block_q, int block_k, fg_error *err) {
    fg_config cand[8];
    const int n = fg_bwd_candidates(s, 1 << 30, 0, 0, cand, 8);
    if (!n)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "no backward configuration for head_dim %d head_dim_v %d", s->head_dim,
                       fg_spec_head_dim_v(s));
    fg_config b = cand[0];
    if (c->wgmma >= 1) fg_bwd_wgmma_config(s, &b); /* not offered: b stays cand[0], the check below says why */
    for (int i = n - 1; i >= 0 && c->wgmma < 1; --i)
        if ((!c->block_m || cand[i].block_m == c->block_m) && (!c->block_n || cand[i].block_n == c->block_n)) b = cand[i];
    if (c->block_m > 0) b.block_m = c->block_m;
    if (c->block_n > 0) b.block_n = c->block_n;
    if (c->warps > 0) b.warps = c->warps;
    if (c->stages > 0) b.stages = c->stages;
    if (c->q_in_regs >= 0) b.q_in_regs = c->q_in_regs;
    if (c->min_blocks > 0) b.min_blocks = c->min_blocks;
    if (c->wgmma >= 0) b.wgmma = c->wgmma;
    *c = b;
    fg_status st = fg_bwd_config_check(s, c, smem_limit, err);
    if (st == FG_OK && !divides(c, block_q, block_k))
        st = fg_fail(err, FG_ERR_UNSUPPORTED, "backward tiles block_m=%d x block_n=%d must divide the layout block %d x %d",
                     c->block_m, c->block_n, block_q, block_k);
    return st;
}

fg_status fg_bwd_pick_config(const fg_spec *s, int smem_limit, int block_q, int block_k, fg_try_compile fn, void *ud,
                             fg_config *out, fg_error *err) {
    fg_config c[8];
    const int n = fg_bwd_candidates(s, smem_limit, block_q, block_k, c, 8);
    if (!n)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "no backward configuration of head_dim %d head_dim_v %d fits %d bytes of shared memory%s (layout block %d x %d)",
                       s->head_dim, fg_spec_head_dim_v(s), smem_limit, block_k ? " and divides the layout block" : "", block_q, block_k);
    int best = -1, best_spill = 0;
    for (int i = 0; i < n; ++i) {
        fg_kernel_stats st;
        memset(&st, 0, sizeof st);
        fg_status rc = fn(ud, s, &c[i], &st, err);
        if (rc != FG_OK) return rc;
        const int spill = st.spill_stores + st.spill_loads + st.stack_frame;
        if (best < 0 || spill < best_spill) { best = i; best_spill = spill; }
        if (!spill) break;
    }
    *out = c[best];
    return FG_OK;
}
