/* plan.c: from a caller's descriptor to a variant and kernel arguments,
 * every size checked (no GPU needed: the CPU tests run all of it). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/structs.h"
#include "select/heuristic.h"
#include "select/infer.h"

int fg_desc_head_dim_v(const fg_attention_desc *d) { return d->head_dim_v ? d->head_dim_v : d->head_dim; }

/* BSHD contiguous strides of a [batch, seqlen, heads, d] tensor.  Unsigned,
 * so that sizes fg_desc_plan will reject cannot overflow here; valid
 * sizes give exact strides (at most 2^30 * 65535 * 256). */
static void bshd_strides(int64_t s[3], int seqlen, int heads, int d) {
    const uint64_t row = (uint64_t)heads * (uint64_t)d;
    s[0] = (int64_t)((uint64_t)seqlen * row);
    s[1] = d;
    s[2] = (int64_t)row;
}

fg_status fg_attention_desc_set_head_dim_v(fg_attention_desc *d, int head_dim_v) {
    if (!d || d->struct_size < FG_END_OF(fg_attention_desc, head_dim_v)) return FG_ERR_INVALID_ARGUMENT;
    d->head_dim_v = head_dim_v;
    const int dv = fg_desc_head_dim_v(d);
    bshd_strides(d->v_strides, d->seqlen_k, d->heads_kv, dv);
    bshd_strides(d->o_strides, d->seqlen_q, d->heads_q, dv);
    return FG_OK;
}

void fg_attention_desc_init_sized(fg_attention_desc *d, size_t struct_size, fg_dtype dtype, int head_dim, int batch,
                                  int heads_q, int heads_kv, int seqlen_q, int seqlen_k) {
    if (!d) return;
    fg_attention_desc x;
    memset(&x, 0, sizeof x);
    x.struct_size = (uint32_t)(struct_size < UINT32_MAX ? struct_size : UINT32_MAX);
    x.dtype = dtype;
    x.head_dim = head_dim;
    x.batch = batch;
    x.heads_q = heads_q;
    x.heads_kv = heads_kv;
    x.seqlen_q = seqlen_q;
    x.seqlen_k = seqlen_k;
    /* BSHD contiguous: [batch, seqlen, heads, head_dim] */
    bshd_strides(x.q_strides, seqlen_q, heads_q, head_dim);
    bshd_strides(x.o_strides, seqlen_q, heads_q, head_dim);
    bshd_strides(x.k_strides, seqlen_k, heads_kv, head_dim);
    bshd_strides(x.v_strides, seqlen_k, heads_kv, head_dim);
    x.window_left = x.window_right = -1; /* no window: the one "off" that is not zero */
    /* only the caller's bytes: an older header's struct is smaller; a newer
     * header's is larger, and the fields this library does not know must
     * be zero (the struct_size rules), so they are cleared here */
    memcpy(d, &x, struct_size < sizeof x ? struct_size : sizeof x);
    if (struct_size > sizeof x) memset((char *)d + sizeof x, 0, struct_size - sizeof x);
}

int64_t fg_tensor_bytes(const int64_t s[3], int batch, int heads, int seqlen, int d, int elem_bytes) {
    if (batch < 1 || heads < 1 || seqlen < 1 || d < 1 || elem_bytes < 1) return 0;
    const int64_t n[3] = {batch - 1, heads - 1, seqlen - 1};
    int64_t last = d, t;
    for (int i = 0; i < 3; ++i)
        if (s[i] < 0 || __builtin_mul_overflow(s[i], n[i], &t) || __builtin_add_overflow(last, t, &last)) return 0;
    return __builtin_mul_overflow(last, (int64_t)elem_bytes, &t) ? 0 : t;
}

fg_status fg_check_strides(const char *name, const int64_t s[3], int batch, int heads, int seqlen, int d,
                               int must_not_overlap, fg_error *err) {
    for (int i = 0; i < 3; ++i) {
        if (s[i] < 0)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s stride[%d] = %lld is negative", name, i, (long long)s[i]);
        if (s[i] % 8)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                           "%s stride[%d] = %lld is not a multiple of 8 elements (rows must stay 16-byte aligned)", name, i,
                           (long long)s[i]);
    }
    /* every byte offset the kernel and the bounds check compute must fit in
     * 63 bits, the last element's end included */
    if (!fg_tensor_bytes(s, batch, heads, seqlen, d, 2))
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
                           "%s strides {%lld, %lld, %lld} make rows overlap for shape [batch=%d, heads=%d, seqlen=%d, head dim %d]",
                           name, (long long)s[0], (long long)s[1], (long long)s[2], batch, heads, seqlen, d);
        if (__builtin_mul_overflow(st[i], size[i], &extent))
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s strides {%lld, %lld, %lld} overflow 64-bit offsets", name,
                           (long long)s[0], (long long)s[1], (long long)s[2]);
    }
    return FG_OK;
}

/* The layout must have been made for this call's sizes. */
static fg_status check_layout(const fg_block_layout *L, const fg_attention_desc *d, fg_error *err) {
    const int64_t nq = ((int64_t)d->seqlen_q + L->block_q - 1) / L->block_q;
    const int64_t nk = ((int64_t)d->seqlen_k + L->block_k - 1) / L->block_k;
    if (L->num_q_blocks != nq || L->num_kv_blocks != nk)
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout has %d x %d blocks of %d x %d, but seqlen_q=%d, seqlen_k=%d need %lld x %lld",
                       L->num_q_blocks, L->num_kv_blocks, L->block_q, L->block_k, d->seqlen_q, d->seqlen_k, (long long)nq,
                       (long long)nk);
    if ((L->seqlen_q && L->seqlen_q != d->seqlen_q) || (L->seqlen_k && L->seqlen_k != d->seqlen_k))
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout was evaluated from its pattern for seqlen_q=%d, seqlen_k=%d; the call has %d, %d",
                       L->seqlen_q, L->seqlen_k, d->seqlen_q, d->seqlen_k);
    if ((L->batch != 1 && L->batch != d->batch) || (L->heads != 1 && L->heads != d->heads_q))
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout is for batch=%d heads=%d; the call has batch=%d heads_q=%d (1 broadcasts)",
                       L->batch, L->heads, d->batch, d->heads_q);
    return FG_OK;
}

fg_status fg_desc_plan(const fg_attention_desc *desc, int smem_limit, fg_variant *v, fg_fwd_params *p,
                            fg_error *err) {
    fg_attention_desc dd;
    fg_status st = fg_desc_read(desc, &dd, err);
    if (st != FG_OK) return st;
    const fg_attention_desc *d = &dd;
    if (d->dtype != FG_FP16 && d->dtype != FG_BF16 && d->dtype != FG_E4M3)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "dtype %d is not FG_FP16, FG_BF16 or FG_E4M3", (int)d->dtype);
    if (d->head_dim_v < 0)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "head_dim_v %d is negative (0 means head_dim)", d->head_dim_v);
    const int dv = fg_desc_head_dim_v(d);
    if ((st = fg_head_dims_check(d->head_dim, dv, err))) return st;
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
    if ((int)d->path < 0 || d->path > FG_PATH_TMA)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "path %d is not one of FG_PATH_*", (int)d->path);
    const float scale = d->softmax_scale == 0.f ? 1.f / sqrtf((float)d->head_dim) : d->softmax_scale;
    if (!(scale > 0.f) || isinf(scale))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "softmax_scale must be positive and finite (got %g)", (double)d->softmax_scale);
    if ((st = fg_infer_check(d, err))) return st;
    if ((st = fg_score_check(d, err))) return st;
    if ((st = fg_fp8_check(d, err))) return st;
    fg_tensor_shape sh[FG_T_COUNT];
    fg_desc_tensor_shapes(d, sh);
    for (int i = FG_T_Q; i <= FG_T_O; ++i)
        if ((st = fg_check_strides(sh[i].name, sh[i].strides, sh[i].batch, sh[i].heads, sh[i].seqlen, sh[i].dim,
                                   sh[i].is_output, err)))
            return st;
    const fg_block_layout *L = d->layout;
    if (L && (st = check_layout(L, d, err))) return st;
    /* the inference kernel: the call has an inference field, or it asks for
     * the decode tiles of one or two warps (FG_PATH_MMA) on a GQA decode
     * shape, which fg_infer_auto would give the inference kernel anyway */
    const int decode_warps = d->path == FG_PATH_MMA && (d->warps == 1 || d->warps == 2) && d->heads_kv > 0 &&
                             d->heads_q % d->heads_kv == 0 &&
                             fg_infer_pack(d->heads_q / d->heads_kv, d->seqlen_q, FG_DECODE_ROWS) > 1;
    const int infer = fg_desc_has_infer(d) || decode_warps;
    if (infer && d->path != FG_PATH_AUTO && d->path != FG_PATH_MMA)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "the inference fields (cu_seqlens, seqlens_k, block_table, num_splits) run on FG_PATH_MMA "
                       "(or FG_PATH_AUTO), not on the %s path", d->path == FG_PATH_TMA ? "TMA" : "wgmma");

    memset(v, 0, sizeof *v);
    v->spec.head_dim = d->head_dim;
    v->spec.head_dim_v = dv;
    v->spec.dtype = d->dtype;
    v->spec.out_dtype = d->dtype == FG_E4M3 ? d->out_dtype : FG_FP16;
    v->spec.causal = d->causal != FG_CAUSAL_NONE;
    v->spec.sparse = L != NULL;
    v->spec.infer = infer;
    if (L) {
        v->spec.mask_hash = L->mask_hash;
        v->spec.mask_cuda = L->mask_cuda;
        v->spec.mask_text = L->mask_text;
    }
    fg_config_unset(&v->cfg);
    v->cfg.block_m = d->block_m;
    v->cfg.block_n = d->block_n;
    v->cfg.warps = d->warps;
    v->cfg.stages = d->stages;
    v->cfg.wgmma = infer ? 0 : d->path == FG_PATH_AUTO ? -1 : d->path == FG_PATH_TMA ? 2 : d->path == FG_PATH_WGMMA;
    if (d->dtype == FG_E4M3) v->cfg.wgmma = 2; /* the only family with an FP8 kernel (fg_fp8_check) */
    if (fg_config_is_explicit(&v->cfg)) {
        /* an explicit configuration: completed with defaults, never replaced */
        st = fg_config_complete(&v->spec, &v->cfg, smem_limit, err);
        if (st != FG_OK) return st;
        if (L && (L->block_q % v->cfg.block_m || L->block_k % v->cfg.block_n))
            return fg_fail(err, FG_ERR_UNSUPPORTED, "kernel tiles block_m=%d x block_n=%d must divide the layout block %d x %d",
                           v->cfg.block_m, v->cfg.block_n, L->block_q, L->block_k);
        if (infer && d->block_table && d->page_size % v->cfg.block_n && v->cfg.block_n % d->page_size)
            return fg_fail(err, FG_ERR_UNSUPPORTED,
                           "block_n=%d and page_size=%d: one must divide the other (a key tile lies in one page or spans whole pages)",
                           v->cfg.block_n, d->page_size);
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
    fg_infer_params(d, p);
    fg_score_params(d, &v->spec, p);
    fg_fp8_params(d, p);
    return FG_OK;
}
