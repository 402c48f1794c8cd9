/* attention.h: checking a call and turning it into a variant + kernel
 * arguments (plan.c).  Split from the launch so that the checks run without
 * a GPU. */
#ifndef FG_ATTENTION_H
#define FG_ATTENTION_H
#include "flashgen.h"
#include "fg_params.h"
#include "gen/spec.h"

/* Validates desc (sizes, head dim, strides, layout agreement) and fills the
 * variant (block configuration completed for smem_limit) and every field of
 * params except the tensor pointers. */
fg_status fg_desc_plan(const fg_attention_desc *d, int smem_limit, fg_variant *v, fg_fwd_params *p,
                            fg_error *err);
/* The value head dim of d (v's and o's last dim): head_dim_v, or head_dim
 * when that is 0. */
int fg_desc_head_dim_v(const fg_attention_desc *d);
/* Bytes from a tensor's first element to the end of the last one that the
 * shape [batch, heads, seqlen, d] and element strides s reach:
 * ((batch-1) s[0] + (heads-1) s[1] + (seqlen-1) s[2] + d) * elem_bytes;
 * 0 when a size is below 1, a stride negative, or the count overflows
 * int64 (fg_desc_plan rejects such strides for q, k, v and o). */
int64_t fg_tensor_bytes(const int64_t s[3], int batch, int heads, int seqlen, int d, int elem_bytes);
/* Strides of one tensor: non-negative multiples of 8 whose offsets fit 63
 * bits; with must_not_overlap (an output) no two rows may overlap. */
fg_status fg_check_strides(const char *name, const int64_t s[3], int batch, int heads, int seqlen, int d,
                           int must_not_overlap, fg_error *err);
/* One tensor of a call as the kernels see it: q, k, v, o (2-byte
 * elements; q, k, v 1-byte for FG_E4M3) and lse (fp32), their shapes and element strides after the
 * inference fields are applied (packed varlen tensors are one "batch" of
 * total rows; a paged cache is num_pages "batches" of page_size rows). */
typedef struct fg_tensor_shape {
    const char *name;
    int64_t strides[3];
    int batch, heads, seqlen, dim, elem_bytes, is_output;
} fg_tensor_shape;
enum { FG_T_Q, FG_T_K, FG_T_V, FG_T_O, FG_T_LSE, FG_T_COUNT };
void fg_desc_tensor_shapes(const fg_attention_desc *d, fg_tensor_shape out[FG_T_COUNT]);
/* Whether d uses an inference field (a table, or num_splits > 1), which
 * needs the inference variant (gen/spec.h, spec.infer). */
int fg_desc_has_infer(const fg_attention_desc *d);
/* The FP8 fields (FG_E4M3 only; runtime/fp8.c): checks and kernel parameters. */
fg_status fg_fp8_check(const fg_attention_desc *d, fg_error *err);
void fg_fp8_params(const fg_attention_desc *d, fg_fwd_params *p);
/* The checks of the inference fields (runtime/infer.c). */
fg_status fg_infer_check(const fg_attention_desc *d, fg_error *err);
/* The inference fields of the kernel parameters: tables, totals, pages;
 * one split and no packing until fg_infer_apply. */
void fg_infer_params(const fg_attention_desc *d, fg_fwd_params *p);
/* Score modifications (runtime/score_plan.c): the FG_MOD_* bits d sets;
 * their checks (FG_ERR_INVALID_ARGUMENT for bad values, FG_ERR_UNSUPPORTED
 * where they are not built: a layout, the inference fields, the wgmma and
 * TMA paths); and the spec bits and kernel parameters (after p->scale). */
int fg_desc_score_mods(const fg_attention_desc *d);
fg_status fg_score_check(const fg_attention_desc *d, fg_error *err);
void fg_score_params(const fg_attention_desc *d, fg_spec *s, fg_fwd_params *p);

struct fg_cuda;
/* ptr: device memory of the current context, `align`-byte aligned, holding
 * `need` bytes (0: the count overflowed). */
fg_status fg_check_tensor(const struct fg_cuda *cu, const char *name, const void *ptr, int align, int64_t need,
                          fg_error *err);
#endif
