/* attention.c: fg_attention_forward and fg_attention_prepare, from the
 * caller's descriptor to the launch: device, plan (plan.c), configuration
 * (choose.c), tensor checks, kernel (kernel_cache.c), launch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/tensor_map.h"
#include "runtime/structs.h"
#include "runtime/layout.h"
#include "fg_tile_order.h"

/* The tensor must be device memory holding the `need` bytes the shape and
 * strides reach (fg_tensor_bytes; 0 means that count overflows). */
fg_status fg_check_tensor(const fg_cuda *cu, const char *name, const void *ptr, int align, int64_t need,
                              fg_error *err) {
    if (!ptr) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s is NULL", name);
    if ((uintptr_t)ptr % (uintptr_t)align)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s = %p is not %d-byte aligned", name, ptr, align);
    if (need <= 0)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s: its size in bytes overflows 64 bits for this shape", name);
    CUdeviceptr base = 0;
    size_t size = 0;
    CUresult r = cu->MemGetAddressRange(&base, &size, (CUdeviceptr)(uintptr_t)ptr);
    if (r != CUDA_SUCCESS)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s = %p is not device memory of the current CUDA context", name, ptr);
    const uint64_t have = (uint64_t)(base + size - (CUdeviceptr)(uintptr_t)ptr);
    if ((uint64_t)need > have)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "%s: shape and strides reach %llu bytes past %p, but its allocation ends after %llu", name,
                       (unsigned long long)need, ptr, (unsigned long long)have);
    return FG_OK;
}

fg_status fg_check_call_tensors(const fg_cuda *cu, const fg_attention_desc *d, const void *q, const void *k,
                                const void *v, const void *o, const float *lse, fg_error *e) {
    fg_tensor_shape sh[FG_T_COUNT];
    fg_desc_tensor_shapes(d, sh);
    const void *ptr[FG_T_COUNT] = {q, k, v, o, lse};
    for (int i = 0; i < FG_T_COUNT; ++i) {
        if (i == FG_T_LSE && !lse) break;
        const fg_tensor_shape *t = &sh[i];
        fg_status st = fg_check_tensor(cu, t->name, ptr[i], t->elem_bytes <= 2 ? 16 : 4,
                                       fg_tensor_bytes(t->strides, t->batch, t->heads, t->seqlen, t->dim, t->elem_bytes), e);
        if (st != FG_OK) return st;
    }
    /* The device tables the kernel reads besides the tensors: each must be
     * device memory of this context, as long as the descriptor says (a
     * host pointer or a short table would fault on the GPU and poison the
     * context).  Their entries are the kernel's to check. */
    const int64_t B = d->batch, per_kv = d->descale_per_head ? B * d->heads_kv * 4 : 4;
    const struct { const char *name; const void *p; int64_t bytes; } tab[] = {
        {"cu_seqlens_q", d->cu_seqlens_q, (B + 1) * 4},
        {"cu_seqlens_k", d->cu_seqlens_k, (B + 1) * 4},
        {"seqlens_k", d->seqlens_k, B * 4},
        {"block_table", d->block_table, B * d->max_pages * 4},
        {"sinks", d->sinks, (int64_t)d->heads_q * 4},
        {"alibi_slopes", d->alibi_slopes, ((B - 1) * d->alibi_batch_stride + d->heads_q) * 4},
        {"q_descale", d->dtype == FG_E4M3 ? d->q_descale : NULL, per_kv},
        {"k_descale", d->dtype == FG_E4M3 ? d->k_descale : NULL, per_kv},
        {"v_descale", d->dtype == FG_E4M3 ? d->v_descale : NULL, per_kv},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; ++i) {
        if (!tab[i].p) continue;
        fg_status st = fg_check_tensor(cu, tab[i].name, tab[i].p, 4, tab[i].bytes, e);
        if (st != FG_OK) return st;
    }
    return FG_OK;
}

/* Device, descriptor (read into *d at this library's size), configuration
 * and kernel of one fg_attention_forward call.  Without a workspace it does
 * not split the keys (plans do: fg_attention_plan_create). */
static fg_status prepare(fg_context *ctx, const fg_attention_desc *desc, fg_attention_desc *d, fg_variant *v,
                         fg_fwd_params *p, fg_kernel **k, fg_error *e) {
    fg_status st = fg_ctx_device(ctx, e);
    if (st == FG_OK) st = fg_desc_read(desc, d, e);
    if (st != FG_OK) return st;
    if (d->num_splits > 1)
        return fg_fail(e, FG_ERR_INVALID_ARGUMENT,
                       "num_splits = %d: split-KV needs a workspace; plan the call (fg_attention_plan_create, "
                       "fg_attention_run), or set num_splits to 0 or 1", d->num_splits);
    d->num_splits = 1;
    return fg_ctx_call(ctx, d, v, p, k, e);
}

/* The kernel fg_attention_forward would run for desc, compiled or found. */
static fg_status kernel_of(fg_context *ctx, const fg_attention_desc *desc, fg_kernel **k, fg_error *e) {
    fg_attention_desc d;
    fg_variant v;
    fg_fwd_params p;
    return prepare(ctx, desc, &d, &v, &p, k, e);
}

fg_status fg_attention_prepare(fg_context *ctx, const fg_attention_desc *desc) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_attention_desc d;
    fg_variant v;
    fg_fwd_params p;
    fg_kernel *k;
    if (prepare(ctx, desc, &d, &v, &p, &k, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    /* a sparse layout's tile list too (runtime/sparse_sched.h), built
     * here rather than by the first call */
    fg_sparse_sched_key key;
    if (d.layout && fg_ctx_sparse_key(ctx, &v, &p, &key)) (void)fg_layout_sched(ctx, d.layout, &key);
    return FG_OK;
}

fg_status fg_attention_kernel_name(fg_context *ctx, const fg_attention_desc *desc, char *buf, size_t n) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_kernel *k;
    if (!buf || n == 0) fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_attention_kernel_name: buf is NULL or n is 0");
    else if (kernel_of(ctx, desc, &k, &e) == FG_OK) {
        snprintf(buf, n, "%s", k->key);
        return FG_OK;
    } else buf[0] = 0;
    return fg_ctx_fail(ctx, &e);
}

fg_status fg_attention_forward(fg_context *ctx, const fg_attention_desc *desc, const void *q, const void *k,
                               const void *v, void *o, float *lse, void *stream) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_attention_desc d;
    fg_variant var;
    fg_fwd_params p;
    fg_kernel *kern = NULL;
    fg_status st = prepare(ctx, desc, &d, &var, &p, &kern, &e);
    if (st == FG_OK) st = fg_check_call_tensors(ctx->cu, &d, q, k, v, o, lse, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    p.q = q; p.k = k; p.v = v; p.o = o; p.lse = lse;
    st = fg_ctx_launch(ctx, kern, &var, &p, d.layout, stream, &e);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}

int fg_ctx_sparse_key(const fg_context *ctx, const fg_variant *var, const fg_fwd_params *p, fg_sparse_sched_key *key) {
    if (var->cfg.wgmma != 2 || !var->spec.sparse || var->spec.infer || (var->cfg.ws_off & FG_WS_NO_PERSISTENT)) return 0;
    const long long tiles = (long long)((p->seqlen_q + var->cfg.block_m - 1) / var->cfg.block_m) * p->heads_q * p->batch,
                    sms = ctx->dev_info.sm_count;
    const fg_sparse_sched_key k = {p->batch, p->heads_q, p->seqlen_q, var->cfg.block_m, p->sp_sub, (int)(tiles < sms ? tiles : sms)};
    *key = k;
    return fg_sparse_sched_ints(key) > 0;
}

fg_status fg_ctx_launch(fg_context *ctx, const fg_kernel *kern, const fg_variant *var, fg_fwd_params *p,
                        const fg_block_layout *layout, void *stream, fg_error *err) {
    unsigned grid_x = (unsigned)((p->seqlen_q + var->cfg.block_m - 1) / var->cfg.block_m);
    unsigned grid_y = (unsigned)p->heads_q, grid_z = (unsigned)p->batch;
    fg_tma_params tm;
    void *args[] = {p, &tm};
    if (var->spec.infer) {
        unsigned g[3];
        fg_infer_grid(var, p, g);
        grid_x = g[0]; grid_y = g[1]; grid_z = g[2];
    }
    if (var->cfg.wgmma == 2) {
        /* one linear tile index (fg_tile_scheduler.cuh).  A persistent grid
         * of one CTA per SM (with two Q buffers the next tile's loads overlap
         * this one's epilogue; causal tiles go in pairs of equal cost;
         * H200, docs/PERF.md v7: causal 64/128/256 at 512..4096 persistent
         * 0.99-1.30x one-per-tile).  Sparse layouts, whose rows differ in
         * cost, follow a list built on the host from the layout's row costs
         * (runtime/sparse_sched.h), or without one (a capture, no room) run
         * one CTA per tile, balanced by the hardware.  persistent=0 in the
         * configuration asks for one CTA per tile */
        fg_status st = fg_tma_encode(ctx->cu, var, p, &tm, err);
        if (st != FG_OK) return st;
        const long long tiles = (long long)grid_x * grid_y * grid_z, sms = ctx->dev_info.sm_count;
        const int persistent = !(var->cfg.ws_off & FG_WS_NO_PERSISTENT);
        p->sp_sched = NULL;
        if (var->spec.sparse) {
            fg_sparse_sched_key key;
            if (layout && fg_ctx_sparse_key(ctx, var, p, &key)) p->sp_sched = fg_layout_sched(ctx, layout, &key);
            if (p->sp_sched) fg_ctx_count(ctx, &ctx->stats.sparse_list_launches);
            p->tile_pairs = 0;
            grid_x = (unsigned)(p->sp_sched ? key.ctas : tiles);
        } else {
            /* causal, persistent: a CTA takes tiles in pairs of equal cost,
             * heads in order, so that a round shares K and V in L2
             * (fg_tile_scheduler.cuh) */
            grid_x = (unsigned)fg_tile_grid(var->spec.causal, persistent, tiles, sms, &p->tile_pairs);
        }
        grid_y = grid_z = 1;
    }
    CUresult r = ctx->cu->LaunchKernel(kern->fn, grid_x, grid_y, grid_z, (unsigned)kern->threads, 1, 1,
                                       (unsigned)kern->smem_bytes, (CUstream)stream, args, NULL);
    if (r != CUDA_SUCCESS) {
        char b[256];
        return fg_fail(err, FG_ERR_CUDA, "launching %s (grid %u x %u x %u, %d threads, %d bytes smem): %s", kern->key,
                       grid_x, grid_y, grid_z, kern->threads, kern->smem_bytes, fg_cuda_errstr(ctx->cu, r, b, sizeof b));
    }
    return FG_OK;
}
