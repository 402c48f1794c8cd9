/* kv_append.c: fg_kv_append, new keys and values into a KV cache at each
 * sequence's current length: host checks (fg_kv_append_plan, no GPU), the
 * device-memory checks of the tensors and tables, the kernel (kind
 * FG_KIND_APPEND through the kernel cache, templates/kv_append.lua) and two
 * launches in stream order: the copy, then (advance) seqlens_k +=
 * seqlen_new.  No allocation but the context's table error word on first
 * need, no synchronisation. */
#include <stdint.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/kv_append.h"
#include "runtime/structs.h"

#define APPEND_WARPS 8 /* 256 threads per CTA (kv_append.lua takes 4 or 8) */

/* The cache as a [outer, heads_kv, rows, d] tensor: contiguous
 * [batch, capacity], paged [num_pages, page_size]. */
static void cache_shape(const fg_attention_desc *d, int *outer, int *rows) {
    *outer = d->block_table ? d->num_pages : d->batch;
    *rows = d->block_table ? d->page_size : d->seqlen_k;
}

static fg_status check_pointer(const char *name, const void *ptr, int align, fg_error *err) {
    if (!ptr) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "fg_kv_append: %s is NULL", name);
    if ((uintptr_t)ptr % (uintptr_t)align)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "fg_kv_append: %s = %p is not %d-byte aligned", name, ptr, align);
    return FG_OK;
}

/* Sizes, head dims and the KV-cache fields of d. */
static fg_status check_desc(const fg_attention_desc *d, int seqlen_new, fg_error *err) {
    if (d->dtype != FG_FP16 && d->dtype != FG_BF16)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "dtype %d is not FG_FP16 or FG_BF16", (int)d->dtype);
    if (d->head_dim_v < 0)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "head_dim_v %d is negative (0 means head_dim)", d->head_dim_v);
    fg_status st = fg_head_dims_check(d->head_dim, fg_desc_head_dim_v(d), err);
    if (st != FG_OK) return st;
    if (d->batch < 1 || d->heads_kv < 1 || d->seqlen_k < 1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "fg_kv_append: sizes must be >= 1 (batch=%d heads_kv=%d seqlen_k=%d)",
                       d->batch, d->heads_kv, d->seqlen_k);
    if (d->batch > 65535 || d->heads_kv > 65535)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "fg_kv_append: batch and heads_kv must be <= 65535 (grid limit)");
    if (d->seqlen_k > (1 << 30) || seqlen_new > (1 << 30))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "fg_kv_append: seqlen_k (the capacity) and seqlen_new must be <= 2^30");
    if (seqlen_new < 0) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "fg_kv_append: seqlen_new = %d is negative", seqlen_new);
    if (!d->seqlens_k)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "fg_kv_append needs desc->seqlens_k (int32 [batch], each sequence's current length, on the device)");
    if ((st = check_pointer("seqlens_k", d->seqlens_k, 4, err))) return st;
    if (d->cu_seqlens_k)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "fg_kv_append appends to a KV cache (seqlens_k), not to packed cu_seqlens_k sequences: "
                       "set cu_seqlens_k to NULL");
    if (!d->block_table) {
        if (d->page_size || d->num_pages || d->max_pages)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                           "page_size=%d num_pages=%d max_pages=%d are set, but block_table is NULL (a contiguous cache "
                           "leaves them 0)",
                           d->page_size, d->num_pages, d->max_pages);
        return FG_OK;
    }
    if ((st = check_pointer("block_table", d->block_table, 4, err))) return st;
    if (d->page_size < 16 || d->page_size % 16)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "page_size = %d is not a positive multiple of 16", d->page_size);
    if (d->num_pages < 1 || d->max_pages < 1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "a paged cache needs num_pages >= 1 and max_pages >= 1 (got %d, %d)",
                       d->num_pages, d->max_pages);
    if ((int64_t)d->seqlen_k > (int64_t)d->max_pages * d->page_size)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "seqlen_k = %d (the capacity) is past max_pages * page_size = %d * %d: the block table cannot "
                       "name that many keys",
                       d->seqlen_k, d->max_pages, d->page_size);
    return FG_OK;
}

/* BSHD contiguous [batch, seqlen, heads, dim]; unsigned, so that sizes the
 * stride check rejects cannot overflow here. */
static void bshd(int64_t s[3], int seqlen, int heads, int dim) {
    const uint64_t row = (uint64_t)heads * (uint64_t)dim;
    s[0] = (int64_t)((uint64_t)seqlen * row);
    s[1] = dim;
    s[2] = (int64_t)row;
}

void fg_kv_append_variant(fg_variant *v, fg_dtype dtype, int head_dim, int head_dim_v) {
    memset(v, 0, sizeof *v);
    v->spec.kind = FG_KIND_APPEND;
    v->spec.head_dim = head_dim;
    v->spec.head_dim_v = head_dim_v;
    v->spec.dtype = dtype;
    fg_config_unset(&v->cfg);
    v->cfg.warps = APPEND_WARPS;
}

fg_status fg_kv_append_plan(const fg_attention_desc *desc, const fg_append_args *a, fg_attention_desc *d,
                            fg_variant *v, fg_append_params *p, fg_error *err) {
    fg_status st = fg_desc_read(desc, d, err);
    if (st != FG_OK) return st;
    if ((st = check_desc(d, a->seqlen_new, err))) return st;
    const int dv = fg_desc_head_dim_v(d), n = a->seqlen_new;
    int outer, rows;
    cache_shape(d, &outer, &rows);
    if ((st = check_pointer("k_cache", a->k_cache, 16, err)) || (st = check_pointer("v_cache", a->v_cache, 16, err)) ||
        (st = fg_check_strides("k_cache", d->k_strides, outer, d->heads_kv, rows, d->head_dim, 1, err)) ||
        (st = fg_check_strides("v_cache", d->v_strides, outer, d->heads_kv, rows, dv, 1, err)))
        return st;
    int64_t ks[3], vs[3];
    if (a->knew_strides) memcpy(ks, a->knew_strides, sizeof ks);
    else bshd(ks, n, d->heads_kv, d->head_dim);
    if (a->vnew_strides) memcpy(vs, a->vnew_strides, sizeof vs);
    else bshd(vs, n, d->heads_kv, dv);
    if (n > 0 && ((st = check_pointer("k_new", a->k_new, 16, err)) || (st = check_pointer("v_new", a->v_new, 16, err)) ||
                  (st = fg_check_strides("k_new", ks, d->batch, d->heads_kv, n, d->head_dim, 0, err)) ||
                  (st = fg_check_strides("v_new", vs, d->batch, d->heads_kv, n, dv, 0, err))))
        return st;

    fg_kv_append_variant(v, d->dtype, d->head_dim, dv);
    memset(p, 0, sizeof *p);
    p->k_new = a->k_new;
    p->v_new = a->v_new;
    p->k_cache = a->k_cache;
    p->v_cache = a->v_cache;
    p->seqlens_k = (int *)d->seqlens_k; /* advanced on the device */
    p->block_table = d->block_table;
    for (int i = 0; i < 3; ++i) {
        p->knew_s[i] = ks[i];
        p->vnew_s[i] = vs[i];
        p->k_s[i] = d->k_strides[i];
        p->v_s[i] = d->v_strides[i];
    }
    p->batch = d->batch;
    p->heads_kv = d->heads_kv;
    p->seqlen_new = n;
    p->capacity = d->seqlen_k;
    p->page_size = d->page_size;
    p->num_pages = d->num_pages;
    p->max_pages = d->max_pages;
    /* 16-byte chunks per new row; a CTA takes at least 4 per thread, at
     * most 1024 CTAs per sequence, and fewer than 2^30 chunks (the kernel
     * counts them in int) */
    const int64_t chunks = (int64_t)d->heads_kv * (d->head_dim + dv) / 8;
    int64_t r = (4 * 32 * APPEND_WARPS + chunks - 1) / chunks;
    if (r < ((int64_t)n + 1023) / 1024) r = ((int64_t)n + 1023) / 1024;
    if (r > ((int64_t)1 << 30) / chunks) r = ((int64_t)1 << 30) / chunks;
    if (r > n) r = n;
    p->rows_per_cta = r > 1 ? (int)r : 1;
    return FG_OK;
}

/* Device memory covering what the shapes and strides reach. */
static fg_status check_tensors(const fg_cuda *cu, const fg_attention_desc *d, const fg_append_params *p, fg_error *e) {
    const int dv = fg_desc_head_dim_v(d), n = p->seqlen_new;
    int outer, rows;
    cache_shape(d, &outer, &rows);
    const int64_t one[3] = {1, 1, 1}, table[3] = {d->max_pages, 1, 1};
    const int64_t ks[3] = {p->knew_s[0], p->knew_s[1], p->knew_s[2]}, vs[3] = {p->vnew_s[0], p->vnew_s[1], p->vnew_s[2]};
    fg_status st;
    if ((st = fg_check_tensor(cu, "k_new", p->k_new, 16, fg_tensor_bytes(ks, d->batch, d->heads_kv, n, d->head_dim, 2), e)) ||
        (st = fg_check_tensor(cu, "v_new", p->v_new, 16, fg_tensor_bytes(vs, d->batch, d->heads_kv, n, dv, 2), e)) ||
        (st = fg_check_tensor(cu, "k_cache", p->k_cache, 16, fg_tensor_bytes(d->k_strides, outer, d->heads_kv, rows, d->head_dim, 2), e)) ||
        (st = fg_check_tensor(cu, "v_cache", p->v_cache, 16, fg_tensor_bytes(d->v_strides, outer, d->heads_kv, rows, dv, 2), e)) ||
        (st = fg_check_tensor(cu, "seqlens_k", p->seqlens_k, 4, fg_tensor_bytes(one, d->batch, 1, 1, 1, 4), e)))
        return st;
    return p->block_table ? fg_check_tensor(cu, "block_table", p->block_table, 4,
                                            fg_tensor_bytes(table, d->batch, 1, 1, d->max_pages, 4), e)
                          : FG_OK;
}

static fg_status launch(fg_context *ctx, const fg_kernel *k, CUfunction fn, const char *what, unsigned gx, unsigned gy,
                        fg_append_params *p, void *stream, fg_error *err) {
    void *args[] = {p};
    CUresult r = ctx->cu->LaunchKernel(fn, gx, gy, 1, (unsigned)k->threads, 1, 1, 0, (CUstream)stream, args, NULL);
    if (r == CUDA_SUCCESS) return FG_OK;
    char b[256];
    return fg_fail(err, FG_ERR_CUDA, "launching the %s kernel of %s (grid %u x %u, %d threads): %s", what, k->key, gx, gy,
                   k->threads, fg_cuda_errstr(ctx->cu, r, b, sizeof b));
}

fg_status fg_kv_append(fg_context *ctx, const fg_attention_desc *desc, const void *k_new, const void *v_new,
                       const int64_t knew_strides[3], const int64_t vnew_strides[3], int seqlen_new, void *k_cache,
                       void *v_cache, int advance, void *stream) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    const fg_append_args a = {k_new, v_new, knew_strides, vnew_strides, seqlen_new, k_cache, v_cache};
    fg_attention_desc d;
    fg_variant var;
    fg_append_params p;
    fg_kernel *kern = NULL;
    CUdeviceptr err_word = 0;
    fg_status st = fg_kv_append_plan(desc, &a, &d, &var, &p, &e);
    if (st == FG_OK) st = fg_ctx_device(ctx, &e);
    if (st == FG_OK && seqlen_new > 0) st = check_tensors(ctx->cu, &d, &p, &e);
    if (st == FG_OK) st = fg_ctx_table_err(ctx, &err_word, &e);
    if (st == FG_OK) st = fg_ctx_kernel(ctx, &var, &kern, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    /* Nothing to copy, nothing to advance; the kernel and the table-error
     * word are ready all the same, so that an empty first step is the
     * warm-up a captured decode step needs (no compile, allocation or sync
     * inside the capture). */
    if (seqlen_new == 0) return FG_OK;
    p.err = (int *)(uintptr_t)err_word;
    const unsigned chunks = (unsigned)((seqlen_new + p.rows_per_cta - 1) / p.rows_per_cta);
    st = launch(ctx, kern, kern->fn, "copy", chunks, (unsigned)p.batch, &p, stream, &e);
    if (st == FG_OK && advance)
        st = launch(ctx, kern, kern->fn_advance, "advance", (unsigned)((p.batch + kern->threads - 1) / kern->threads), 1,
                    &p, stream, &e);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}
