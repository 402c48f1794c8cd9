/* fp8.c: what a forward call with FP8 inputs (dtype FG_E4M3) must satisfy,
 * and its kernel parameters.  The fields are read only with FG_E4M3; set
 * with another dtype they are refused rather than ignored. */
#include "runtime/attention.h"

fg_status fg_fp8_check(const fg_attention_desc *d, fg_error *err) {
    const int fp8 = d->dtype == FG_E4M3;
    if (!fp8) {
        if (d->out_dtype != FG_FP16 && d->out_dtype != d->dtype)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "out_dtype %d: o has the input's type unless dtype is FG_E4M3",
                           (int)d->out_dtype);
        if (d->q_descale || d->k_descale || d->v_descale || d->descale_per_head)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "q/k/v_descale and descale_per_head are for FG_E4M3 inputs only");
        return FG_OK;
    }
    if (d->out_dtype != FG_FP16 && d->out_dtype != FG_BF16)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "out_dtype %d: FG_E4M3 writes o as FG_FP16 (0) or FG_BF16",
                       (int)d->out_dtype);
    if (d->descale_per_head != 0 && d->descale_per_head != 1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "descale_per_head %d: 0 (one float per tensor) or 1 ([batch, heads_kv])",
                       d->descale_per_head);
    if (d->path != FG_PATH_AUTO && d->path != FG_PATH_TMA)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_E4M3 (FP8) runs on the Hopper TMA path only (FG_PATH_TMA or FG_PATH_AUTO, sm_90a), not on %s",
                       d->path == FG_PATH_MMA ? "FG_PATH_MMA" : "FG_PATH_WGMMA");
    const int dv = fg_desc_head_dim_v(d);
    if (d->head_dim % 32 || dv % 16)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_E4M3 takes head_dim a multiple of 32 and head_dim_v a multiple of 16 (got %d and %d)", d->head_dim,
                       dv);
    if (d->layout)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FG_E4M3 is dense only: no block-sparse layout");
    const struct { const char *name; const float *p; } ds[3] = {{"q", d->q_descale}, {"k", d->k_descale}, {"v", d->v_descale}};
    for (int i = 0; i < 3; ++i)
        if ((uintptr_t)ds[i].p % 4)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s_descale must be a 4-byte aligned fp32 device pointer", ds[i].name);
    if (fg_desc_has_infer(d))
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_E4M3 takes no inference fields (cu_seqlens, seqlens_k, block_table, num_splits > 1)");
    const struct { const char *name; const int64_t *s; } t[3] = {{"q", d->q_strides}, {"k", d->k_strides}, {"v", d->v_strides}};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            if (t[i].s[j] % 16)
                return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                               "%s stride[%d] = %lld is not a multiple of 16 elements (e4m3 rows must stay 16-byte aligned)",
                               t[i].name, j, (long long)t[i].s[j]);
    return FG_OK;
}

void fg_fp8_params(const fg_attention_desc *d, fg_fwd_params *p) {
    if (d->dtype != FG_E4M3) return;
    p->q_descale = d->q_descale;
    p->k_descale = d->k_descale;
    p->v_descale = d->v_descale;
    p->descale_per_head = d->descale_per_head;
}
