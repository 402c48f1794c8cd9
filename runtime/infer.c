/* infer.c: the inference fields of a call (variable lengths, KV-cache
 * lengths, paged K/V, split-KV, GQA packing) and the plan/run API that
 * does a forward call's host work once (include/flashgen.h, "plan, then
 * run"; docs/INFERENCE.md).  The kernels are the infer=1 variants of the
 * portable forward (templates/fg_infer.cuh). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/layout.h"
#include "runtime/structs.h"
#include "select/infer.h"

int fg_desc_has_infer(const fg_attention_desc *d) {
    return d->cu_seqlens_q || d->cu_seqlens_k || d->seqlens_k || d->block_table || d->num_splits > 1;
}

void fg_desc_tensor_shapes(const fg_attention_desc *d, fg_tensor_shape t[FG_T_COUNT]) {
    const int dv = fg_desc_head_dim_v(d), eb = d->dtype == FG_E4M3 ? 1 : 2; /* o is 16-bit in any case */
    const fg_tensor_shape q = {"q", {d->q_strides[0], d->q_strides[1], d->q_strides[2]}, d->batch, d->heads_q, d->seqlen_q, d->head_dim, eb, 0};
    const fg_tensor_shape k = {"k", {d->k_strides[0], d->k_strides[1], d->k_strides[2]}, d->batch, d->heads_kv, d->seqlen_k, d->head_dim, eb, 0};
    const fg_tensor_shape v = {"v", {d->v_strides[0], d->v_strides[1], d->v_strides[2]}, d->batch, d->heads_kv, d->seqlen_k, dv, eb, 0};
    const fg_tensor_shape o = {"o", {d->o_strides[0], d->o_strides[1], d->o_strides[2]}, d->batch, d->heads_q, d->seqlen_q, dv, 2, 1};
    const fg_tensor_shape lse = {"lse", {(int64_t)d->heads_q * d->seqlen_q, d->seqlen_q, 1}, d->batch, d->heads_q, d->seqlen_q, 1, 4, 1};
    t[FG_T_Q] = q; t[FG_T_K] = k; t[FG_T_V] = v; t[FG_T_O] = o; t[FG_T_LSE] = lse;
    if (d->cu_seqlens_q) { /* packed [total_q, heads, d]; lse [heads_q, total_q] */
        const int qo[2] = {FG_T_Q, FG_T_O};
        for (int j = 0; j < 2; ++j) {
            t[qo[j]].batch = 1;
            t[qo[j]].strides[0] = 0;
            t[qo[j]].seqlen = d->total_q;
        }
        t[FG_T_LSE].batch = 1;
        t[FG_T_LSE].strides[0] = 0;
        t[FG_T_LSE].strides[1] = d->total_q;
        t[FG_T_LSE].seqlen = d->total_q;
    }
    for (int i = FG_T_K; i <= FG_T_V; ++i) {
        if (d->block_table) { /* [num_pages, page_size, heads_kv, d] */
            t[i].batch = d->num_pages;
            t[i].seqlen = d->page_size;
        } else if (d->cu_seqlens_k) { /* packed [total_k, heads_kv, d] */
            t[i].batch = 1;
            t[i].strides[0] = 0;
            t[i].seqlen = d->total_k;
        }
    }
}

static int aligned4(const void *p) { return ((uintptr_t)p & 3) == 0; }

fg_status fg_infer_check(const fg_attention_desc *d, fg_error *err) {
    if (d->num_splits < 0 || d->num_splits > FG_MAX_SPLITS)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "num_splits = %d is not in 0..%d (0: chosen by the plan)", d->num_splits,
                       FG_MAX_SPLITS);
    if (d->total_q < 0 || d->total_k < 0)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "total_q = %d and total_k = %d must not be negative", d->total_q, d->total_k);
    if (!d->cu_seqlens_q && d->total_q)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "total_q = %d is set but cu_seqlens_q is NULL (total_q is the row count of packed q/o)",
                       d->total_q);
    if (!d->cu_seqlens_k && d->total_k)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "total_k = %d is set but cu_seqlens_k is NULL (total_k is the row count of packed k/v)",
                       d->total_k);
    if (d->cu_seqlens_q && d->total_q < 1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "cu_seqlens_q needs total_q >= 1, the rows of the packed q and o");
    if (d->cu_seqlens_k && d->total_k < 1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "cu_seqlens_k needs total_k >= 1, the rows of the packed k and v");
    const void *tables[4] = {d->cu_seqlens_q, d->cu_seqlens_k, d->seqlens_k, d->block_table};
    static const char *const names[4] = {"cu_seqlens_q", "cu_seqlens_k", "seqlens_k", "block_table"};
    for (int i = 0; i < 4; ++i)
        if (!aligned4(tables[i]))
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s = %p is not 4-byte aligned (int32)", names[i], tables[i]);
    if (!d->block_table && (d->page_size || d->num_pages || d->max_pages))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "page_size, num_pages and max_pages are set but block_table is NULL (they describe a paged cache)");
    if (d->block_table) {
        if (d->cu_seqlens_k)
            return fg_fail(err, FG_ERR_UNSUPPORTED,
                           "a paged cache takes its lengths from seqlens_k, not cu_seqlens_k (set one of block_table and cu_seqlens_k)");
        if (d->page_size < 16 || d->page_size % 16 || d->page_size > (1 << 20))
            return fg_fail(err, FG_ERR_UNSUPPORTED, "page_size = %d must be a multiple of 16 in 16..2^20", d->page_size);
        if (d->num_pages < 1 || d->max_pages < 1)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "num_pages = %d and max_pages = %d must be >= 1", d->num_pages,
                           d->max_pages);
        if ((int64_t)d->max_pages * d->page_size < d->seqlen_k)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                           "seqlen_k = %d (the capacity) is more than max_pages * page_size = %lld keys the block table can name",
                           d->seqlen_k, (long long)d->max_pages * d->page_size);
    }
    if (d->layout && fg_desc_has_infer(d))
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "block-sparse layouts do not combine with the inference fields (cu_seqlens, seqlens_k, block_table, "
                       "num_splits) yet");
    return FG_OK;
}

void fg_infer_params(const fg_attention_desc *d, fg_fwd_params *p) {
    p->cu_seqlens_q = d->cu_seqlens_q;
    p->cu_seqlens_k = d->cu_seqlens_k;
    p->seqlens_k = d->seqlens_k;
    p->block_table = d->block_table;
    p->total_q = d->total_q;
    p->total_k = d->total_k;
    p->page_size = d->page_size;
    p->num_pages = d->num_pages;
    p->max_pages = d->max_pages;
    p->num_splits = 1;
    p->pack = 1;
    p->bottom_right = d->causal == FG_CAUSAL_BOTTOM_RIGHT;
}

/* CTAs of a kernel (smem_bytes, threads) that fit on one SM at once. */
int fg_infer_ctas_per_sm(const fg_device_info *di, int smem_bytes, int threads) {
    int n = smem_bytes > 0 ? di->smem_per_sm / (smem_bytes + 1024) : 8;
    if (threads > 0 && n > 2048 / threads) n = 2048 / threads;
    return n < 1 ? 1 : n;
}

/* Tiles (CTAs before splitting) and key tiles of the longest row. */
static long long tiles_of(const fg_attention_desc *d, int block_m, int pack) {
    return ((int64_t)d->seqlen_q * pack + block_m - 1) / block_m * (d->heads_q / pack) * d->batch;
}

/* Keys a query tile can see at most: all seqlen_k, or fewer under a window
 * with a left bound (the kernel visits only the key tiles a row's window
 * meets, fg_score.cuh window_tiles): left + seqlen_q + right, where an
 * unbounded right side adds nothing past the last key with the bottom-right
 * alignment and all the keys with the top-left one.  Only the split choice
 * reads it. */
static int keys_seen(const fg_attention_desc *d) {
    if (d->window_left < 0) return d->seqlen_k;
    const long long right = d->window_right >= 0 ? d->window_right : d->causal == FG_CAUSAL_TOP_LEFT ? d->seqlen_k : 0;
    const long long span = (long long)d->window_left + d->seqlen_q + right;
    return span < d->seqlen_k ? (int)span : d->seqlen_k;
}

/* Key tiles of block_n keys a query tile visits at most (a window's span may
 * start mid-tile: one more). */
static int key_tiles_seen(const fg_attention_desc *d, int block_n) {
    const int all = (int)(((int64_t)d->seqlen_k + block_n - 1) / block_n);
    const int seen = keys_seen(d) / block_n + 2;
    return seen < all ? seen : all;
}

int fg_infer_auto(const fg_context *ctx, const fg_attention_desc *d) {
    if (d->layout || (d->path != FG_PATH_AUTO && d->path != FG_PATH_MMA)) return 0;
    if (d->path == FG_PATH_AUTO && (d->block_m || d->block_n || d->warps || d->stages)) return 0;
    const int group = d->heads_q / d->heads_kv;
    const int pack = fg_infer_pack(group, d->seqlen_q, FG_DECODE_ROWS);
    if (pack > 1) return 1; /* decode or short prefill with GQA: one K/V read per group */
    if (d->num_splits == 1) return 0;
    /* estimated with 64-key decode tiles, two per SM */
    const int slots = ctx->dev_info.sm_count * 2;
    return fg_infer_splits(tiles_of(d, FG_DECODE_ROWS, 1), key_tiles_seen(d, 64), slots, FG_MAX_SPLITS) > 1;
}

void fg_infer_apply(const fg_context *ctx, const fg_attention_desc *d, const fg_kernel *k, const fg_variant *v,
                    fg_fwd_params *p) {
    const int group = d->heads_q / d->heads_kv, bm = v->cfg.block_m, bn = v->cfg.block_n;
    p->pack = fg_infer_pack(group, d->seqlen_q, bm);
    const int key_tiles = (int)(((int64_t)d->seqlen_k + bn - 1) / bn);
    int s = 1;
    if (d->num_splits > 1) s = d->num_splits < key_tiles ? d->num_splits : key_tiles;
    else if (d->num_splits == 0)
        s = fg_infer_splits(tiles_of(d, bm, p->pack), key_tiles_seen(d, bn),
                            ctx->dev_info.sm_count * fg_infer_ctas_per_sm(&ctx->dev_info, k->smem_bytes, k->threads), FG_MAX_SPLITS);
    p->num_splits = s < 1 ? 1 : s;
}

void fg_infer_grid(const fg_variant *v, const fg_fwd_params *p, unsigned grid[3]) {
    const long long m_blocks = ((long long)p->seqlen_q * p->pack + v->cfg.block_m - 1) / v->cfg.block_m;
    grid[0] = (unsigned)(m_blocks * p->num_splits);
    grid[1] = (unsigned)(p->heads_q / p->pack);
    grid[2] = (unsigned)p->batch;
}

/* ---- plan, then run ---------------------------------------------------- */

struct fg_attention_plan {
    fg_context *ctx;
    fg_attention_desc d; /* at this library's size */
    fg_variant var;
    fg_fwd_params p;     /* every field but the tensor pointers */
    fg_kernel *kern;
    size_t ws_bytes;
};

fg_status fg_attention_plan_create(fg_context *ctx, const fg_attention_desc *desc, fg_attention_plan **out) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    if (!out) {
        fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_attention_plan_create: plan is NULL");
        return fg_ctx_fail(ctx, &e);
    }
    *out = NULL;
    fg_attention_plan *pl = calloc(1, sizeof *pl);
    if (!pl) {
        fg_fail(&e, FG_ERR_OUT_OF_MEMORY, "out of memory");
        return fg_ctx_fail(ctx, &e);
    }
    pl->ctx = ctx;
    fg_status st = fg_ctx_device(ctx, &e);
    if (st == FG_OK) st = fg_desc_read(desc, &pl->d, &e);
    if (st == FG_OK) st = fg_ctx_call(ctx, &pl->d, &pl->var, &pl->p, &pl->kern, &e);
    if (st != FG_OK) {
        free(pl);
        return fg_ctx_fail(ctx, &e);
    }
    /* a sparse layout's tile list (runtime/sparse_sched.h): built with the
     * plan, so that its runs never build one */
    fg_sparse_sched_key key;
    if (pl->d.layout && fg_ctx_sparse_key(ctx, &pl->var, &pl->p, &key)) (void)fg_layout_sched(ctx, pl->d.layout, &key);
    if (pl->var.spec.infer) {
        unsigned g[3];
        fg_infer_grid(&pl->var, &pl->p, g);
        const long long tiles = (long long)g[0] / pl->p.num_splits * g[1] * g[2];
        pl->ws_bytes = (size_t)fg_infer_workspace_bytes(pl->p.num_splits, pl->d.batch, pl->d.heads_q, pl->d.seqlen_q,
                                                        fg_desc_head_dim_v(&pl->d), tiles);
    }
    *out = pl;
    return FG_OK;
}

size_t fg_attention_plan_workspace(const fg_attention_plan *plan) { return plan ? plan->ws_bytes : 0; }

int fg_attention_plan_splits(const fg_attention_plan *plan) {
    return plan && plan->var.spec.infer ? plan->p.num_splits : 1;
}

void fg_attention_plan_destroy(fg_attention_plan *plan) { free(plan); }

fg_status fg_attention_run(const fg_attention_plan *plan, const void *q, const void *k, const void *v, void *o,
                           float *lse, void *workspace, size_t workspace_bytes, void *stream) {
    if (!plan) return FG_ERR_INVALID_ARGUMENT;
    fg_context *ctx = plan->ctx;
    fg_error e = {0};
    fg_fwd_params p = plan->p;
    fg_status st = fg_ctx_device(ctx, &e);
    if (st == FG_OK) st = fg_check_call_tensors(ctx->cu, &plan->d, q, k, v, o, lse, &e);
    if (st == FG_OK && plan->ws_bytes) {
        if (!workspace || workspace_bytes < plan->ws_bytes || ((uintptr_t)workspace & 15))
            st = fg_fail(&e, FG_ERR_INVALID_ARGUMENT,
                         "this plan runs %d splits and needs a 16-byte aligned workspace of %zu bytes "
                         "(fg_attention_plan_workspace); got %p, %zu bytes",
                         p.num_splits, plan->ws_bytes, workspace, workspace_bytes);
        else
            st = fg_check_tensor(ctx->cu, "workspace", workspace, 16, (int64_t)plan->ws_bytes, &e);
    }
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    p.q = q; p.k = k; p.v = v; p.o = o; p.lse = lse;
    if (plan->ws_bytes) {
        unsigned long long lse_at, count_at;
        fg_infer_workspace_parts(p.num_splits, p.batch, p.heads_q, p.seqlen_q, fg_desc_head_dim_v(&plan->d), &lse_at,
                                 &count_at);
        p.part_o = (float *)workspace;
        p.part_lse = (float *)((char *)workspace + lse_at);
        p.split_count = (int *)((char *)workspace + count_at);
    }
    st = fg_ctx_launch(ctx, plan->kern, &plan->var, &p, plan->d.layout, stream, &e);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}
