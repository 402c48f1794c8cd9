/* kv_append.h: fg_kv_append's host checks and kernel arguments, split from
 * the launch (kv_append.c) so that the checks run without a GPU. */
#ifndef FG_KV_APPEND_H
#define FG_KV_APPEND_H
#include <stdint.h>
#include "flashgen.h"
#include "fg_append_params.h"
#include "gen/spec.h"

/* The rows of one call: the caller's tensors, strides and sizes. */
typedef struct fg_append_args {
    const void *k_new, *v_new;
    const int64_t *knew_strides, *vnew_strides; /* NULL: BSHD contiguous */
    int seqlen_new;
    void *k_cache, *v_cache;
} fg_append_args;

/* The variant of fg_kv_append's kernels for a dtype and head dims (kind
 * FG_KIND_APPEND, its launch configuration complete). */
void fg_kv_append_variant(fg_variant *v, fg_dtype dtype, int head_dim, int head_dim_v);
/* Checks everything the host can see without a GPU (the descriptor read at
 * this library's size into *d, sizes, head dims, strides, pointers NULL or
 * misaligned, the paging fields) and fills the variant (kind
 * FG_KIND_APPEND) and every field of *p but the error word.  seqlen_new 0
 * checks the descriptor and the caches only: there is nothing to launch. */
fg_status fg_kv_append_plan(const fg_attention_desc *desc, const fg_append_args *a, fg_attention_desc *d,
                            fg_variant *v, fg_append_params *p, fg_error *err);
#endif
