/* tables.c: the table error word that inference kernels write when a
 * caller's cu_seqlens, seqlens_k or block_table entry is out of range
 * (templates/fg_tables.cuh), and the call that reads it back. */
#include <stdio.h>
#include <string.h>

#include "runtime/internal.h"
#include "fg_table_errors.h"

fg_status fg_ctx_table_err(fg_context *ctx, CUdeviceptr *out, fg_error *err) {
    fg_status st = FG_OK;
    pthread_mutex_lock(&ctx->mu);
    if (!ctx->table_err) {
        CUdeviceptr p = 0;
        CUresult r = ctx->cu->MemAlloc(&p, 4 * sizeof(int));
        if (r == CUDA_SUCCESS) r = ctx->cu->MemsetD32(p, 0, 4);
        /* the memset runs on the legacy stream, which a kernel on a
         * non-blocking stream does not wait for: let it land first */
        if (r == CUDA_SUCCESS) r = ctx->cu->StreamSynchronize(NULL);
        if (r == CUDA_SUCCESS) ctx->table_err = p;
        else {
            char b[256];
            if (p) ctx->cu->MemFree(p);
            st = fg_fail(err, r == CUDA_ERROR_OUT_OF_MEMORY ? FG_ERR_OUT_OF_MEMORY : FG_ERR_CUDA,
                         "allocating the table error word: %s", fg_cuda_errstr(ctx->cu, r, b, sizeof b));
        }
    }
    *out = ctx->table_err;
    pthread_mutex_unlock(&ctx->mu);
    return st;
}

void fg_ctx_infer_free(fg_context *ctx) {
    if (!ctx->cu) return;
    if (ctx->table_err) ctx->cu->MemFree(ctx->table_err);
    if (ctx->ws) ctx->cu->MemFree(ctx->ws);
    ctx->table_err = ctx->ws = 0;
    ctx->ws_bytes = 0;
}

/* The message of one error record {kind, batch, index, value}. */
static void describe(const int w[4], char *buf, size_t n) {
    switch (w[0]) {
    case FG_TE_CU_SEQLENS_Q: snprintf(buf, n, "cu_seqlens_q[%d..%d] is out of range (value %d): decreasing, negative or past total_q", w[1], w[1] + 1, w[3]); break;
    case FG_TE_CU_SEQLENS_K: snprintf(buf, n, "cu_seqlens_k[%d..%d] is out of range (value %d): decreasing, negative or past total_k", w[1], w[1] + 1, w[3]); break;
    case FG_TE_SEQLENS_K: snprintf(buf, n, "seqlens_k[%d] = %d is negative or past the capacity seqlen_k", w[1], w[3]); break;
    case FG_TE_BLOCK_TABLE: snprintf(buf, n, "block_table[%d][%d] = %d is not a page in [0, num_pages)", w[1], w[2], w[3]); break;
    case FG_TE_APPEND: snprintf(buf, n, "fg_kv_append: sequence %d, new row %d would go to key position %d, past the capacity", w[1], w[2], w[3]); break;
    case FG_TE_WORKSPACE: snprintf(buf, n, "the split-KV workspace was not zero before the run (split counter %d of batch %d read %d): zero it once after allocating it", w[2], w[1], w[3]); break;
    default: snprintf(buf, n, "unknown table error kind %d (batch %d, index %d, value %d)", w[0], w[1], w[2], w[3]);
    }
}

fg_status fg_attention_table_error(fg_context *ctx, char *buf, size_t n, void *stream) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    if (buf && n) buf[0] = 0;
    fg_status st = fg_ctx_device(ctx, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    if (!ctx->table_err) return FG_OK; /* no inference kernel ran */
    int w[4] = {0, 0, 0, 0};
    char b[256];
    CUresult r = ctx->cu->StreamSynchronize((CUstream)stream);
    if (r == CUDA_SUCCESS) r = ctx->cu->MemcpyDtoH(w, ctx->table_err, sizeof w);
    if (r == CUDA_SUCCESS && w[0]) r = ctx->cu->MemsetD32(ctx->table_err, 0, 4);
    if (r == CUDA_SUCCESS && w[0]) r = ctx->cu->StreamSynchronize(NULL); /* cleared before the next kernel, whatever its stream */
    if (r != CUDA_SUCCESS) {
        fg_fail(&e, FG_ERR_CUDA, "reading the table error word: %s", fg_cuda_errstr(ctx->cu, r, b, sizeof b));
        return fg_ctx_fail(ctx, &e);
    }
    if (!w[0]) return FG_OK;
    describe(w, b, sizeof b);
    if (buf && n) snprintf(buf, n, "%s", b);
    fg_fail(&e, FG_ERR_BAD_LAYOUT, "%s", b);
    return fg_ctx_fail(ctx, &e);
}
