/* layout.c: block-sparse layouts: validated on the host, uploaded once.
 * The kernel reads them without bounds checks, so every count and index is
 * checked here (a bad layout is an error, never an out-of-bounds read). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"
#include "runtime/layout.h"
#include "runtime/layout_t.h"

fg_status fg_layout_validate(const fg_block_layout_desc *d_in, fg_error *err) {
    if (!d_in) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "layout descriptor is NULL");
    fg_block_layout_desc dd = *d_in, *d = &dd;
    if (!d->block_q) d->block_q = 128; /* the documented default */
    if (!d->block_k) d->block_k = 128;
    if (d->batch < 1 || d->heads < 1 || d->num_q_blocks < 1 || d->num_kv_blocks < 1)
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout sizes must be >= 1 (batch=%d heads=%d num_q_blocks=%d num_kv_blocks=%d)",
                       d->batch, d->heads, d->num_q_blocks, d->num_kv_blocks);
    /* the smallest kernel tiles are 64 query rows and 16 keys */
    if (d->block_q < 64 || d->block_k < 16 || d->block_q % 64 || d->block_k % 16)
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout blocks must be multiples of 64 query rows and 16 keys (block_q=%d block_k=%d)",
                       d->block_q, d->block_k);
    if (!d->kv_num_blocks || !d->kv_indices)
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout needs kv_num_blocks and kv_indices (full_* may be NULL)");
    if (!d->full_kv_num_blocks != !d->full_kv_indices)
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "full_kv_num_blocks and full_kv_indices must both be given or both be NULL");
    /* the kernel indexes rows with int; the upload holds 2 rows + 2 rows x
     * num_kv_blocks int32, and about as much again transposed (fg_layout_upload) */
    int64_t rows, entries;
    if (__builtin_mul_overflow((int64_t)d->batch * d->heads, (int64_t)d->num_q_blocks, &rows) || rows > INT32_MAX ||
        __builtin_mul_overflow(rows, (int64_t)d->num_kv_blocks, &entries) || entries > ((int64_t)1 << 40))
        return fg_fail(err, FG_ERR_BAD_LAYOUT,
                       "layout of batch=%d heads=%d num_q_blocks=%d num_kv_blocks=%d is too large (at most 2^31 - 1 rows "
                       "of query blocks and 2^40 entries)",
                       d->batch, d->heads, d->num_q_blocks, d->num_kv_blocks);
    const int nk = d->num_kv_blocks;
    unsigned char *seen = calloc((size_t)nk, 1);
    if (!seen) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    fg_status st = FG_OK;
    for (long r = 0; r < rows && st == FG_OK; ++r) {
        const int b = (int)(r / ((long)d->heads * d->num_q_blocks));
        const int h = (int)(r / d->num_q_blocks % d->heads), qb = (int)(r % d->num_q_blocks);
        memset(seen, 0, (size_t)nk);
        for (int pass = 0; pass < 2 && st == FG_OK; ++pass) {
            const int32_t *num = pass ? d->kv_num_blocks : d->full_kv_num_blocks;
            const int32_t *idx = pass ? d->kv_indices : d->full_kv_indices;
            const char *what = pass ? "kv" : "full_kv";
            if (!num) continue;
            const int n = num[r];
            if (n < 0 || n > nk) {
                st = fg_fail(err, FG_ERR_BAD_LAYOUT, "%s_num_blocks[%d][%d][%d] = %d is outside [0, %d]", what, b, h, qb, n, nk);
                break;
            }
            for (int i = 0; i < n; ++i) {
                const int j = idx[(size_t)r * (size_t)nk + (size_t)i];
                if (j < 0 || j >= nk) {
                    st = fg_fail(err, FG_ERR_BAD_LAYOUT, "%s_indices[%d][%d][%d][%d] = %d is outside [0, %d)", what, b, h, qb, i, j, nk);
                    break;
                }
                if (seen[j]) {
                    st = fg_fail(err, FG_ERR_BAD_LAYOUT, "key block %d is listed twice for query block (%d, %d, %d)", j, b, h, qb);
                    break;
                }
                seen[j] = 1;
            }
        }
    }
    free(seen);
    return st;
}

fg_status fg_layout_upload(fg_context *ctx, const fg_block_layout_desc *d, fg_block_layout **out, fg_error *e) {
    *out = NULL;
    if (fg_layout_validate(d, e) != FG_OK) return e->status;
    if (fg_ctx_device(ctx, e) != FG_OK) return e->status;
    const size_t rows = (size_t)d->batch * d->heads * d->num_q_blocks, nk = (size_t)d->num_kv_blocks;
    /* the backward's kernels index its columns with int (layout_t.h) */
    if ((int64_t)d->batch * d->heads * d->num_kv_blocks > INT32_MAX)
        return fg_fail(e, FG_ERR_BAD_LAYOUT, "layout of batch=%d heads=%d num_kv_blocks=%d has more than 2^31 - 1 key-block columns",
                       d->batch, d->heads, d->num_kv_blocks);
    /* the forward's lists, then the transposed ones of the backward */
    const size_t n_fwd = 2 * rows + 2 * rows * nk, n_int = n_fwd + fg_layout_t_entries(d);
    int32_t *host = calloc(n_int, sizeof *host);
    fg_block_layout *L = calloc(1, sizeof *L);
    int *row_cost = malloc(rows * sizeof *row_cost);
    if (!host || !L || !row_cost) {
        free(host); free(L); free(row_cost);
        return fg_fail(e, FG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    int32_t *full_num = host, *part_num = host + rows, *full_idx = host + 2 * rows, *part_idx = full_idx + rows * nk;
    for (size_t r = 0; r < rows; ++r) {
        full_num[r] = d->full_kv_num_blocks ? d->full_kv_num_blocks[r] : 0;
        part_num[r] = d->kv_num_blocks[r];
        for (int i = 0; i < full_num[r]; ++i) full_idx[r * nk + i] = d->full_kv_indices[r * nk + i];
        for (int i = 0; i < part_num[r]; ++i) part_idx[r * nk + i] = d->kv_indices[r * nk + i];
        row_cost[r] = full_num[r] + part_num[r];
    }
    fg_layout_transpose(d, host + n_fwd);
    const fg_cuda *cu = ctx->cu;
    char b[256];
    CUresult res = cu->MemAlloc(&L->buf, n_int * sizeof *host);
    if (res == CUDA_SUCCESS) res = cu->MemcpyHtoD(L->buf, host, n_int * sizeof *host);
    /* A copy from pageable memory may return before its DMA lands, and a
     * kernel on a non-blocking stream does not wait for the legacy
     * stream: the layout is complete on the device before this returns. */
    if (res == CUDA_SUCCESS) res = cu->StreamSynchronize(NULL);
    free(host);
    if (res != CUDA_SUCCESS) {
        if (L->buf) cu->MemFree(L->buf);
        free(L);
        free(row_cost);
        return fg_fail(e, res == CUDA_ERROR_OUT_OF_MEMORY ? FG_ERR_OUT_OF_MEMORY : FG_ERR_CUDA, "uploading the layout: %s",
                       fg_cuda_errstr(cu, res, b, sizeof b));
    }
    L->row_cost = row_cost;
    pthread_mutex_init(&L->sched_mu, NULL);
    L->batch = d->batch; L->heads = d->heads;
    L->num_q_blocks = d->num_q_blocks; L->num_kv_blocks = d->num_kv_blocks;
    L->block_q = d->block_q ? d->block_q : 128;
    L->block_k = d->block_k ? d->block_k : 128;
    const int32_t *base = (const int32_t *)(uintptr_t)L->buf;
    L->full_num = base;
    L->part_num = base + rows;
    L->full_idx = base + 2 * rows;
    L->part_idx = base + 2 * rows + rows * nk;
    const size_t cols = (size_t)d->batch * d->heads * nk;
    L->t_full_num = base + n_fwd;
    L->t_part_num = base + n_fwd + cols;
    L->t_full_idx = base + n_fwd + 2 * cols;
    L->t_part_idx = base + n_fwd + 2 * cols + cols * (size_t)d->num_q_blocks;
    *out = L;
    return FG_OK;
}

fg_status fg_block_layout_create(fg_context *ctx, const fg_block_layout_desc *d, fg_block_layout **out) {
    fg_error e = {0};
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    if (!out) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_block_layout_create: layout is NULL"); return fg_ctx_fail(ctx, &e); }
    if (fg_layout_upload(ctx, d, out, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    return FG_OK;
}

void fg_block_layout_destroy(fg_context *ctx, fg_block_layout *L) {
    if (!L) return;
    if (ctx && ctx->cu && L->buf) {
        CUcontext prev;
        const int entered = fg_ctx_enter(ctx, &prev); /* freed in its own context (fg_context_destroy) */
        ctx->cu->MemFree(L->buf);
        for (int i = 0; i < L->n_sched; ++i)
            if (L->sched[i].buf) ctx->cu->MemFree(L->sched[i].buf);
        fg_ctx_leave(ctx, entered, prev);
    }
    pthread_mutex_destroy(&L->sched_mu);
    free(L->row_cost);
    free(L->mask_cuda);
    free(L->mask_text);
    free(L);
}

/* Builds and uploads the list for key; 0 when it cannot (out of memory, a
 * driver error, a driver without the calls below).  The calling thread
 * switches to relaxed capture mode for the allocation (which a global-mode
 * capture on any stream would otherwise forbid, and be invalidated by), and
 * the copy goes through a private non-blocking stream, synchronised alone:
 * nothing here joins or waits for a stream that is being captured, the
 * call's own included. */
static CUdeviceptr build_list(const fg_cuda *cu, const fg_block_layout *L, const fg_sparse_sched_key *key) {
    if (!cu->ThreadExchangeStreamCaptureMode || !cu->StreamCreate || !cu->StreamDestroy || !cu->MemcpyHtoDAsync) return 0;
    const long long ints = fg_sparse_sched_ints(key);
    int *host = ints > 0 ? malloc((size_t)ints * sizeof *host) : NULL;
    const fg_sparse_sched_layout sl = {L->batch, L->heads, L->num_q_blocks, L->block_q, L->row_cost};
    CUdeviceptr buf = 0;
    if (!host || fg_sparse_sched_build(key, &sl, host) != 0) {
        free(host);
        return 0;
    }
    CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
    if (cu->ThreadExchangeStreamCaptureMode(&mode) != CUDA_SUCCESS) {
        free(host);
        return 0;
    }
    CUstream s = NULL;
    const size_t bytes = (size_t)ints * sizeof *host;
    int ok = cu->StreamCreate(&s, CU_STREAM_NON_BLOCKING) == CUDA_SUCCESS && cu->MemAlloc(&buf, bytes) == CUDA_SUCCESS &&
             cu->MemcpyHtoDAsync(buf, host, bytes, s) == CUDA_SUCCESS && cu->StreamSynchronize(s) == CUDA_SUCCESS;
    if (!ok && buf) {
        cu->MemFree(buf);
        buf = 0;
    }
    if (s) cu->StreamDestroy(s);
    cu->ThreadExchangeStreamCaptureMode(&mode); /* back to the caller's mode */
    free(host);
    return buf;
}

/* Entry i < n of L's lists whose key is key, or -1. */
static int sched_find(const fg_block_layout *L, int n, const fg_sparse_sched_key *key) {
    for (int i = 0; i < n; ++i)
        if (!memcmp(&L->sched[i].key, key, sizeof *key)) return i;
    return -1;
}

/* Entries are written once and published by a release store of n_sched,
 * so a lookup of a built list (every planned run's) takes no lock and
 * never waits for another thread's build; only a missing key takes the
 * mutex, looks again and builds. */
const int *fg_layout_sched(fg_context *ctx, const fg_block_layout *layout, const fg_sparse_sched_key *key) {
    fg_block_layout *L = (fg_block_layout *)layout; /* the list cache is the only state a call changes */
    int i = sched_find(L, __atomic_load_n(&L->n_sched, __ATOMIC_ACQUIRE), key);
    if (i >= 0) return (const int *)(uintptr_t)L->sched[i].buf; /* NULL: it failed before; not tried again */
    const int *found = NULL;
    int built = 0;
    pthread_mutex_lock(&L->sched_mu);
    const int n = L->n_sched;
    i = sched_find(L, n, key);
    if (i >= 0) {
        found = (const int *)(uintptr_t)L->sched[i].buf;
    } else if (n < FG_LAYOUT_SCHEDS) {
        const CUdeviceptr buf = build_list(ctx->cu, L, key);
        L->sched[n].key = *key;
        L->sched[n].buf = buf;
        __atomic_store_n(&L->n_sched, n + 1, __ATOMIC_RELEASE);
        found = (const int *)(uintptr_t)buf;
        built = buf != 0;
    }
    pthread_mutex_unlock(&L->sched_mu);
    if (built) fg_ctx_count(ctx, &ctx->stats.sparse_lists_built);
    return found;
}
