/* attention.c: fg_attention_forward, from descriptor to launch. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "autotune/heuristic.h"
#include "autotune/tune.h"
#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/tensor_map.h"

void fg_attention_desc_init(fg_attention_desc *d, fg_dtype dtype, int head_dim, int batch, int heads_q,
                            int heads_kv, int seqlen_q, int seqlen_k) {
    memset(d, 0, sizeof *d);
    d->dtype = dtype;
    d->head_dim = head_dim;
    d->batch = batch;
    d->heads_q = heads_q;
    d->heads_kv = heads_kv;
    d->seqlen_q = seqlen_q;
    d->seqlen_k = seqlen_k;
    /* BSHD contiguous: [batch, seqlen, heads, head_dim] */
    int64_t qs[3] = {(int64_t)seqlen_q * heads_q * head_dim, head_dim, (int64_t)heads_q * head_dim};
    int64_t ks[3] = {(int64_t)seqlen_k * heads_kv * head_dim, head_dim, (int64_t)heads_kv * head_dim};
    memcpy(d->q_strides, qs, sizeof qs);
    memcpy(d->o_strides, qs, sizeof qs);
    memcpy(d->k_strides, ks, sizeof ks);
    memcpy(d->v_strides, ks, sizeof ks);
}

static fg_status check_strides(const char *name, const int64_t s[3], int batch, int heads, int seqlen, int d,
                               int must_not_overlap, fg_error *err) {
    for (int i = 0; i < 3; ++i) {
        if (s[i] < 0)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s stride[%d] = %lld is negative", name, i, (long long)s[i]);
        if (s[i] % 8)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                           "%s stride[%d] = %lld is not a multiple of 8 elements (rows must stay 16-byte aligned)", name, i,
                           (long long)s[i]);
    }
    /* every element offset must fit in 63 bits (the kernel and the bounds
     * check below compute them in int64) */
    int64_t last = 0, t;
    const int64_t n[3] = {batch - 1, heads - 1, seqlen - 1};
    for (int i = 0; i < 3; ++i)
        if (__builtin_mul_overflow(s[i], n[i], &t) || __builtin_add_overflow(last, t, &last))
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s strides {%lld, %lld, %lld} overflow 64-bit offsets", name,
                           (long long)s[0], (long long)s[1], (long long)s[2]);
    if (!must_not_overlap) return FG_OK;
    /* The output must not alias itself: sort (size, stride) by stride and
     * require each dimension to start past the previous one's extent. */
    int64_t size[3] = {batch, heads, seqlen}, st[3] = {s[0], s[1], s[2]};
    for (int i = 0; i < 3; ++i)
        for (int j = i + 1; j < 3; ++j)
            if (st[j] < st[i]) {
                int64_t t = st[i]; st[i] = st[j]; st[j] = t;
                t = size[i]; size[i] = size[j]; size[j] = t;
            }
    int64_t extent = d;
    for (int i = 0; i < 3; ++i) {
        if (size[i] == 1) continue;
        if (st[i] < extent)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                           "%s strides {%lld, %lld, %lld} make rows overlap for shape [batch=%d, heads=%d, seqlen=%d, head_dim=%d]",
                           name, (long long)s[0], (long long)s[1], (long long)s[2], batch, heads, seqlen, d);
        if (__builtin_mul_overflow(st[i], size[i], &extent))
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s strides {%lld, %lld, %lld} overflow 64-bit offsets", name,
                           (long long)s[0], (long long)s[1], (long long)s[2]);
    }
    return FG_OK;
}

fg_status fg_attention_plan(const fg_attention_desc *d, int smem_limit, fg_variant *v, fg_fwd_params *p,
                            fg_error *err) {
    if (!d) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "attention descriptor is NULL");
    if (d->dtype != FG_FP16 && d->dtype != FG_BF16)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "dtype %d is not FG_FP16 or FG_BF16", (int)d->dtype);
    if (d->head_dim < 8 || d->head_dim > 256 || d->head_dim % 8)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "head_dim %d is not supported: it must be a multiple of 8 in 8..256", d->head_dim);
    if (d->batch < 1 || d->heads_q < 1 || d->heads_kv < 1 || d->seqlen_q < 1 || d->seqlen_k < 1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "sizes must be >= 1 (batch=%d heads_q=%d heads_kv=%d seqlen_q=%d seqlen_k=%d)",
                       d->batch, d->heads_q, d->heads_kv, d->seqlen_q, d->seqlen_k);
    if (d->heads_q % d->heads_kv)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "heads_q=%d is not a multiple of heads_kv=%d", d->heads_q, d->heads_kv);
    if (d->batch > 65535 || d->heads_q > 65535)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "batch and heads_q must be <= 65535 (grid limit)");
    if (d->seqlen_q > (1 << 30) || d->seqlen_k > (1 << 30))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "seqlen_q and seqlen_k must be <= 2^30");
    if ((int)d->causal < 0 || d->causal > FG_CAUSAL_TOP_LEFT)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "causal mode %d is not one of FG_CAUSAL_*", (int)d->causal);
    const float scale = d->softmax_scale == 0.f ? 1.f / sqrtf((float)d->head_dim) : d->softmax_scale;
    if (!(scale > 0.f) || isinf(scale))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "softmax_scale must be positive and finite (got %g)", (double)d->softmax_scale);
    fg_status st;
    if ((st = check_strides("q", d->q_strides, d->batch, d->heads_q, d->seqlen_q, d->head_dim, 0, err)) ||
        (st = check_strides("k", d->k_strides, d->batch, d->heads_kv, d->seqlen_k, d->head_dim, 0, err)) ||
        (st = check_strides("v", d->v_strides, d->batch, d->heads_kv, d->seqlen_k, d->head_dim, 0, err)) ||
        (st = check_strides("o", d->o_strides, d->batch, d->heads_q, d->seqlen_q, d->head_dim, 1, err)))
        return st;

    memset(v, 0, sizeof *v);
    v->spec.head_dim = d->head_dim;
    v->spec.dtype = d->dtype;
    v->spec.causal = d->causal != FG_CAUSAL_NONE;
    v->spec.sparse = d->layout != NULL;
    fg_config_unset(&v->cfg);
    v->cfg.block_m = d->block_m;
    v->cfg.block_n = d->block_n;
    v->cfg.warps = d->warps;
    v->cfg.stages = d->stages;
    if ((int)d->path < 0 || d->path > FG_PATH_TMA)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "path %d is not one of FG_PATH_*", (int)d->path);
    v->cfg.wgmma = d->path == FG_PATH_AUTO ? -1 : d->path == FG_PATH_TMA ? 2 : d->path == FG_PATH_WGMMA;

    const fg_block_layout *L = d->layout;
    if (L) {
        const int nq = (d->seqlen_q + L->block_q - 1) / L->block_q, nk = (d->seqlen_k + L->block_k - 1) / L->block_k;
        if (L->num_q_blocks != nq || L->num_kv_blocks != nk)
            return fg_fail(err, FG_ERR_BAD_LAYOUT,
                           "layout has %d x %d blocks of %d x %d, but seqlen_q=%d, seqlen_k=%d need %d x %d",
                           L->num_q_blocks, L->num_kv_blocks, L->block_q, L->block_k, d->seqlen_q, d->seqlen_k, nq, nk);
        if ((L->seqlen_q && L->seqlen_q != d->seqlen_q) || (L->seqlen_k && L->seqlen_k != d->seqlen_k))
            return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout was evaluated from its pattern for seqlen_q=%d, seqlen_k=%d; the call has %d, %d",
                           L->seqlen_q, L->seqlen_k, d->seqlen_q, d->seqlen_k);
        v->spec.mask_hash = L->mask_hash;
        v->spec.mask_cuda = L->mask_cuda;
        v->spec.mask_text = L->mask_text;
        if ((L->batch != 1 && L->batch != d->batch) || (L->heads != 1 && L->heads != d->heads_q))
            return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout is for batch=%d heads=%d; the call has batch=%d heads_q=%d (1 broadcasts)",
                           L->batch, L->heads, d->batch, d->heads_q);
    }
    if (v->cfg.block_m || v->cfg.block_n || v->cfg.warps || v->cfg.stages) {
        /* an explicit configuration: completed with defaults, never replaced */
        st = fg_config_complete(&v->spec, &v->cfg, smem_limit, err);
        if (st != FG_OK) return st;
        if (L && (L->block_q % v->cfg.block_m || L->block_k % v->cfg.block_n))
            return fg_fail(err, FG_ERR_UNSUPPORTED, "kernel tiles block_m=%d x block_n=%d must divide the layout block %d x %d",
                           v->cfg.block_m, v->cfg.block_n, L->block_q, L->block_k);
    }

    memset(p, 0, sizeof *p);
    p->q_batch_stride = d->q_strides[0]; p->q_head_stride = d->q_strides[1]; p->q_row_stride = d->q_strides[2];
    p->k_batch_stride = d->k_strides[0]; p->k_head_stride = d->k_strides[1]; p->k_row_stride = d->k_strides[2];
    p->v_batch_stride = d->v_strides[0]; p->v_head_stride = d->v_strides[1]; p->v_row_stride = d->v_strides[2];
    p->o_batch_stride = d->o_strides[0]; p->o_head_stride = d->o_strides[1]; p->o_row_stride = d->o_strides[2];
    p->batch = d->batch;
    p->heads_q = d->heads_q;
    p->heads_kv = d->heads_kv;
    p->group = d->heads_q / d->heads_kv;
    p->seqlen_q = d->seqlen_q;
    p->seqlen_k = d->seqlen_k;
    p->causal_offset = d->causal == FG_CAUSAL_BOTTOM_RIGHT ? d->seqlen_k - d->seqlen_q : 0;
    p->scale = scale;
    p->scale_log2 = scale * 1.44269504088896340736f;
    if (L) {
        p->sp_full_num = L->full_num; p->sp_full_idx = L->full_idx;
        p->sp_part_num = L->part_num; p->sp_part_idx = L->part_idx;
        p->sp_batch = L->batch; p->sp_heads = L->heads;
        p->sp_num_q_blocks = L->num_q_blocks; p->sp_num_kv_blocks = L->num_kv_blocks;
        p->sp_block_q = L->block_q; p->sp_block_k = L->block_k;
        p->sp_sub = v->cfg.block_n ? L->block_k / v->cfg.block_n : 0;
        memcpy(p->mask_c, L->mask_c, sizeof p->mask_c);
    }
    return FG_OK;
}

/* Memo of the configuration chosen per (spec, layout block, path, shape
 * bucket) in this context. */
typedef struct fg_choice {
    fg_spec spec;
    int block_q, block_k, path, tma_ok;
    int bucket_q, bucket_k; /* fg_bucket_len of the seqlens */
    fg_config cfg;
    struct fg_choice *next;
} fg_choice;

static fg_status try_compile(void *ud, const fg_spec *s, const fg_config *c, fg_kernel_stats *st, fg_error *err) {
    fg_variant v = {*s, *c};
    fg_kernel *k;
    fg_status rc = fg_ctx_kernel((fg_context *)ud, &v, &k, err);
    if (rc == FG_OK) *st = k->stats;
    return rc;
}

fg_status fg_ctx_heuristic(fg_context *ctx, const fg_spec *s, int block_q, int block_k, int path, int tma_ok,
                           fg_config *out, fg_error *err) {
    /* the Hopper families allowed: 2 TMA and wgmma, 1 wgmma, 0 none */
    int wgmma_ok = fg_arch_has_wgmma(ctx->dev_info.arch) && path != FG_PATH_MMA;
    if (wgmma_ok && tma_ok && path != FG_PATH_WGMMA && ctx->cu->TensorMapEncodeTiled) wgmma_ok = 2;
    if (path == FG_PATH_WGMMA || path == FG_PATH_TMA) wgmma_ok |= FG_FAMILY_ONLY; /* no fallback to another family */
    fg_status st = fg_pick_config(s, ctx->dev_info.smem_per_block_optin, block_q, block_k, wgmma_ok, try_compile, ctx,
                                  out, err);
    if (st == FG_OK && path == FG_PATH_WGMMA && out->wgmma != 1)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA: head_dim %d has no wgmma kernel (64, 128, 192, 256)",
                       s->head_dim);
    if (st == FG_OK && path == FG_PATH_TMA && out->wgmma != 2)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_PATH_TMA: no TMA kernel for head_dim %d with these strides (a multiple of 16, strides of dims "
                       "longer than 1 non-zero)", s->head_dim);
    return st;
}

/* The tuned configuration of the cache file, if there is one that is still
 * valid here. */
static int tuned_config(fg_context *ctx, const fg_spec *s, int bq, int bk, int path, int tma_ok, const char *bucket,
                        fg_config *c) {
    fg_store *store;
    const char *gpu;
    fg_error e = {0};
    if (ctx->ignore_tuned) return 0;
    if (fg_ctx_store(ctx, &store, &gpu, &e) != FG_OK) { fg_error_clear(&e); return 0; }
    char spec[160];
    fg_tuning_spec_text(s, path, bq, bk, spec, sizeof spec);
    fg_tuning t;
    int found = 0;
    fg_store_get_tuning(store, gpu, spec, bucket, &t, &found, &e);
    if (found && fg_config_parse(t.config, c, &e) == FG_OK &&
        fg_config_check(s, c, ctx->dev_info.smem_per_block_optin, &e) == FG_OK && !(bq && bq % c->block_m) &&
        !(bk && bk % c->block_n) && !(c->wgmma >= 1 && !fg_arch_has_wgmma(ctx->dev_info.arch)) &&
        !(c->wgmma == 2 && !tma_ok)) {
        fg_error_clear(&e);
        return 1;
    }
    if (found) fprintf(stderr, "flashgen: warning: ignoring the tuned configuration '%s' of %s %s: %s\n", t.config, spec,
                       bucket, e.msg ? e.msg : "it does not fit this call");
    fg_error_clear(&e);
    return 0;
}

fg_status fg_ctx_choose(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *err) {
    const int wgmma_ok = fg_arch_has_wgmma(ctx->dev_info.arch);
    if (v->cfg.wgmma >= 1 && !wgmma_ok)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "%s needs an sm_90a GPU (Hopper); this one is %s (%s)",
                       v->cfg.wgmma == 2 ? "FG_PATH_TMA" : "FG_PATH_WGMMA", ctx->dev_info.arch, ctx->dev_info.name);
    const int tma_ok = fg_tma_strides_ok(d->q_strides, d->batch, d->heads_q, d->seqlen_q) &&
                       fg_tma_strides_ok(d->k_strides, d->batch, d->heads_kv, d->seqlen_k) &&
                       fg_tma_strides_ok(d->v_strides, d->batch, d->heads_kv, d->seqlen_k);
    if (v->cfg.wgmma == 2 && !tma_ok)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_PATH_TMA: a stride of q, k or v is 0 (or past 2^40 bytes) in a dim longer than 1; TMA cannot "
                       "describe it (FG_PATH_WGMMA and FG_PATH_MMA can)");
    if (v->cfg.block_m) return FG_OK; /* explicit */
    const int bq = d->layout ? d->layout->block_q : 0, bk = d->layout ? d->layout->block_k : 0;
    const int path = (int)d->path;
    const int bucket_q = fg_bucket_len(d->seqlen_q), bucket_k = fg_bucket_len(d->seqlen_k);
    pthread_mutex_lock(&ctx->mu);
    for (fg_choice *c = ctx->choices; c; c = c->next)
        if (fg_spec_equal(&c->spec, &v->spec) && c->block_q == bq && c->block_k == bk && c->path == path &&
            c->tma_ok == tma_ok &&
            c->bucket_q == bucket_q && c->bucket_k == bucket_k) {
            v->cfg = c->cfg;
            break;
        }
    pthread_mutex_unlock(&ctx->mu);
    if (!v->cfg.block_m) {
        /* memory -> cache file (fg_tune's winner) -> built-in heuristic */
        char bucket[32];
        fg_shape_bucket(d->seqlen_q, d->seqlen_k, bucket, sizeof bucket);
        fg_config cfg;
        if (tuned_config(ctx, &v->spec, bq, bk, path, tma_ok, bucket, &cfg)) {
            pthread_mutex_lock(&ctx->mu);
            ctx->stats.configs_tuned++;
            pthread_mutex_unlock(&ctx->mu);
        } else {
            fg_status st = fg_ctx_heuristic(ctx, &v->spec, bq, bk, path, tma_ok, &cfg, err);
            if (st != FG_OK) return st;
            pthread_mutex_lock(&ctx->mu);
            ctx->stats.configs_heuristic++;
            pthread_mutex_unlock(&ctx->mu);
        }
        v->cfg = cfg;
        fg_choice *c = calloc(1, sizeof *c);
        if (c) {
            c->spec = v->spec; c->block_q = bq; c->block_k = bk; c->path = path; c->tma_ok = tma_ok; c->cfg = v->cfg;
            c->bucket_q = bucket_q; c->bucket_k = bucket_k;
            pthread_mutex_lock(&ctx->mu);
            c->next = ctx->choices;
            ctx->choices = c;
            pthread_mutex_unlock(&ctx->mu);
        }
    }
    if (d->layout) p->sp_sub = bk / v->cfg.block_n;
    return FG_OK;
}

fg_status fg_ctx_resolve(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *err) {
    fg_status st = fg_attention_plan(d, ctx->dev_info.smem_per_block_optin, v, p, err);
    return st == FG_OK ? fg_ctx_choose(ctx, d, v, p, err) : st;
}

void fg_choices_reset(fg_context *ctx) {
    pthread_mutex_lock(&ctx->mu);
    fg_choices_free(ctx);
    pthread_mutex_unlock(&ctx->mu);
}

void fg_choices_free(fg_context *ctx) {
    while (ctx->choices) {
        fg_choice *n = ctx->choices->next;
        free(ctx->choices);
        ctx->choices = n;
    }
}

/* The tensor must be device memory holding every element the strides reach. */
static fg_status check_tensor(const fg_cuda *cu, const char *name, const void *ptr, int align, int64_t last_elem,
                              int elem_bytes, fg_error *err) {
    if (!ptr) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s is NULL", name);
    if ((uintptr_t)ptr % (uintptr_t)align)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s = %p is not %d-byte aligned", name, ptr, align);
    CUdeviceptr base = 0;
    size_t size = 0;
    CUresult r = cu->MemGetAddressRange(&base, &size, (CUdeviceptr)(uintptr_t)ptr);
    if (r != CUDA_SUCCESS)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s = %p is not device memory of the current CUDA context", name, ptr);
    const uint64_t need = (uint64_t)(last_elem + 1) * (uint64_t)elem_bytes;
    const uint64_t have = (uint64_t)(base + size - (CUdeviceptr)(uintptr_t)ptr);
    if (need > have)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "%s: shape and strides reach %llu bytes past %p, but its allocation ends after %llu", name,
                       (unsigned long long)need, ptr, (unsigned long long)have);
    return FG_OK;
}

/* Offsets were checked for overflow in fg_attention_plan (check_strides). */
static int64_t last_elem(const int64_t s[3], int batch, int heads, int seqlen, int d) {
    return (int64_t)(batch - 1) * s[0] + (int64_t)(heads - 1) * s[1] + (int64_t)(seqlen - 1) * s[2] + d - 1;
}

static fg_status prepare(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p,
                         fg_kernel **k, fg_error *e) {
    fg_status st = fg_ctx_device(ctx, e);
    if (st != FG_OK) return st;
    st = fg_ctx_resolve(ctx, d, v, p, e);
    if (st != FG_OK) return st;
    return fg_ctx_kernel(ctx, v, k, e);
}

fg_status fg_attention_prepare(fg_context *ctx, const fg_attention_desc *d) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_variant v;
    fg_fwd_params p;
    fg_kernel *k;
    if (prepare(ctx, d, &v, &p, &k, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    return FG_OK;
}

fg_status fg_attention_forward(fg_context *ctx, const fg_attention_desc *d, const void *q, const void *k,
                               const void *v, void *o, float *lse, void *stream) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_variant var;
    fg_fwd_params p;
    fg_kernel *kern = NULL;
    fg_status st = fg_ctx_device(ctx, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    st = fg_ctx_resolve(ctx, d, &var, &p, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    const fg_cuda *cu = ctx->cu;
    if ((st = check_tensor(cu, "q", q, 16, last_elem(d->q_strides, d->batch, d->heads_q, d->seqlen_q, d->head_dim), 2, &e)) ||
        (st = check_tensor(cu, "k", k, 16, last_elem(d->k_strides, d->batch, d->heads_kv, d->seqlen_k, d->head_dim), 2, &e)) ||
        (st = check_tensor(cu, "v", v, 16, last_elem(d->v_strides, d->batch, d->heads_kv, d->seqlen_k, d->head_dim), 2, &e)) ||
        (st = check_tensor(cu, "o", o, 16, last_elem(d->o_strides, d->batch, d->heads_q, d->seqlen_q, d->head_dim), 2, &e)) ||
        (lse && (st = check_tensor(cu, "lse", lse, 4, (int64_t)d->batch * d->heads_q * d->seqlen_q - 1, 4, &e))))
        return fg_ctx_fail(ctx, &e);
    st = fg_ctx_kernel(ctx, &var, &kern, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    p.q = q; p.k = k; p.v = v; p.o = o; p.lse = lse;
    st = fg_ctx_launch(ctx, kern, &var, &p, stream, &e);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}

fg_status fg_ctx_launch(fg_context *ctx, const fg_kernel *kern, const fg_variant *var, fg_fwd_params *p, void *stream,
                        fg_error *err) {
    unsigned grid_x = (unsigned)((p->seqlen_q + var->cfg.block_m - 1) / var->cfg.block_m);
    unsigned grid_y = (unsigned)p->heads_q, grid_z = (unsigned)p->batch;
    fg_tma_params tm;
    void *args[] = {p, &tm};
    if (var->cfg.wgmma == 2) {
        /* one linear tile index (fg_tile_scheduler.cuh).  A persistent grid
         * of one CTA per SM (the next tile's loads overlap this one's
         * epilogue) except where a static round-robin balances badly: sparse
         * rows, and causal tiles above head dim 128, which are few and long
         * (H200, docs/PERF.md v7: causal hd 128 1k 349 vs 323 TFLOP/s,
         * hd 256 4k 568 vs 632) */
        fg_status st = fg_tma_encode(ctx->cu, var, p, &tm, err);
        if (st != FG_OK) return st;
        const long long tiles = (long long)grid_x * grid_y * grid_z;
        int persistent = !var->spec.sparse && (!var->spec.causal || var->spec.head_dim <= 128);
        const char *env = getenv("FLASHGEN_PERSISTENT"); /* measurement knob: 0 one CTA per tile, 1 persistent */
        if (env && (env[0] == '0' || env[0] == '1') && !env[1]) persistent = env[0] == '1';
        grid_x = (unsigned)(persistent && tiles > ctx->dev_info.sm_count ? ctx->dev_info.sm_count : tiles);
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
