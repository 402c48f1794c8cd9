#include "runtime/tensor_map.h"

#include <string.h>

#define TMA_STRIDE_LIMIT (1ll << 40)

int fg_tma_strides_ok(const int64_t s[3], int batch, int heads, int seqlen) {
    const int n[3] = {batch, heads, seqlen};
    for (int i = 0; i < 3; ++i) {
        if (n[i] == 1) continue;
        if (s[i] <= 0 || (s[i] * 2) % 16 || s[i] >= TMA_STRIDE_LIMIT / 2) return 0;
    }
    return 1;
}

int fg_tma_qkv_ok(const fg_attention_desc *d) {
    return fg_tma_strides_ok(d->q_strides, d->batch, d->heads_q, d->seqlen_q) &&
           fg_tma_strides_ok(d->k_strides, d->batch, d->heads_kv, d->seqlen_k) &&
           fg_tma_strides_ok(d->v_strides, d->batch, d->heads_kv, d->seqlen_k);
}

int fg_tma_tiles_ok(int batch, int heads_q, int seqlen_q) {
    const long long tiles = (long long)((seqlen_q + 63) / 64) * heads_q * batch;
    return batch >= 1 && heads_q >= 1 && seqlen_q >= 1 && tiles <= (1ll << 30);
}

/* dims (d, seqlen, heads, batch); byte strides of dims 1..3.  A dim of size
 * 1 gets a harmless stride: its coordinate is always 0. */
/* eb: bytes per element (2, or 1 for e4m3); the box is 128 bytes wide. */
static fg_status encode(const fg_cuda *cu, CUtensorMap *map, CUtensorMapDataType ty, int eb, const void *ptr, int d, int seqlen,
                        int heads, int batch, long long row, long long head, long long bat, int box_rows,
                        const char *name, fg_error *err) {
    cuuint64_t dims[4] = {(cuuint64_t)d, (cuuint64_t)seqlen, (cuuint64_t)heads, (cuuint64_t)batch};
    const long long el[3] = {row, head, bat};
    cuuint64_t strides[3];
    for (int i = 0; i < 3; ++i) strides[i] = dims[i + 1] == 1 ? 16 : (cuuint64_t)el[i] * eb;
    cuuint32_t box[4] = {(cuuint32_t)(128 / eb), (cuuint32_t)box_rows, 1, 1};
    cuuint32_t estr[4] = {1, 1, 1, 1};
    CUresult r = cu->TensorMapEncodeTiled(map, ty, 4, (void *)ptr, dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        char b[256];
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "cuTensorMapEncodeTiled refused %s (dims %d x %d x %d x %d, element strides %lld/%lld/%lld): %s; "
                       "FG_PATH_WGMMA or FG_PATH_MMA take such strides",
                       name, d, seqlen, heads, batch, row, head, bat, fg_cuda_errstr(cu, r, b, sizeof b));
    }
    return FG_OK;
}

fg_status fg_tma_encode(const fg_cuda *cu, const fg_variant *v, const fg_fwd_params *p, fg_tma_params *out,
                        fg_error *err) {
    _Static_assert(sizeof(fg_tmap) == sizeof(CUtensorMap), "fg_tmap mirrors CUtensorMap");
    if (!cu->TensorMapEncodeTiled)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "the CUDA driver has no cuTensorMapEncodeTiled (TMA needs CUDA 12+)");
    memset(out, 0, sizeof *out);
    const CUtensorMapDataType ty = v->spec.dtype == FG_E4M3  ? CU_TENSOR_MAP_DATA_TYPE_UINT8
                                   : v->spec.dtype == FG_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                              : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    const int eb = v->spec.dtype == FG_E4M3 ? 1 : 2;
    const int d = v->spec.head_dim, dv = fg_spec_head_dim_v(&v->spec);
    fg_status st;
    if ((st = encode(cu, (CUtensorMap *)&out->q, ty, eb, p->q, d, p->seqlen_q, p->heads_q, p->batch, p->q_row_stride,
                     p->q_head_stride, p->q_batch_stride, v->cfg.block_m, "q", err)) ||
        (st = encode(cu, (CUtensorMap *)&out->k, ty, eb, p->k, d, p->seqlen_k, p->heads_kv, p->batch, p->k_row_stride,
                     p->k_head_stride, p->k_batch_stride, v->cfg.block_n, "k", err)) ||
        (st = encode(cu, (CUtensorMap *)&out->v, ty, eb, p->v, dv, p->seqlen_k, p->heads_kv, p->batch, p->v_row_stride,
                     p->v_head_stride, p->v_batch_stride, v->cfg.block_n, "v", err)))
        return st;
    return FG_OK;
}

fg_status fg_tma_encode_bwd(const fg_cuda *cu, const fg_variant *v, const fg_bwd_params *p, fg_bwd_tma_params *out,
                            fg_error *err) {
    _Static_assert(sizeof(fg_tmap) == sizeof(CUtensorMap), "fg_tmap mirrors CUtensorMap");
    if (!cu->TensorMapEncodeTiled)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "the CUDA driver has no cuTensorMapEncodeTiled (TMA needs CUDA 12+)");
    memset(out, 0, sizeof *out);
    const CUtensorMapDataType ty = v->spec.dtype == FG_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
    const int d = v->spec.head_dim, dv = fg_spec_head_dim_v(&v->spec), bm = v->cfg.block_m, bn = v->cfg.block_n;
    fg_status st;
    if ((st = encode(cu, (CUtensorMap *)&out->q, ty, 2, p->q, d, p->seqlen_q, p->heads_q, p->batch, p->q_s[2], p->q_s[1],
                     p->q_s[0], bm, "q", err)) ||
        (st = encode(cu, (CUtensorMap *)&out->dout, ty, 2, p->dout, dv, p->seqlen_q, p->heads_q, p->batch, p->do_s[2],
                     p->do_s[1], p->do_s[0], bm, "dout", err)) ||
        (st = encode(cu, (CUtensorMap *)&out->k, ty, 2, p->k, d, p->seqlen_k, p->heads_kv, p->batch, p->k_s[2], p->k_s[1],
                     p->k_s[0], bn, "k", err)) ||
        (st = encode(cu, (CUtensorMap *)&out->v, ty, 2, p->v, dv, p->seqlen_k, p->heads_kv, p->batch, p->v_s[2], p->v_s[1],
                     p->v_s[0], bn, "v", err)))
        return st;
    return FG_OK;
}
