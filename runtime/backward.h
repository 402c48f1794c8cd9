/* backward.h: checking a backward call and turning it into a variant and
 * kernel arguments (backward_plan.c, no GPU needed), and the workspace
 * layout the three kernels share. */
#ifndef FG_BACKWARD_H
#define FG_BACKWARD_H
#include <stddef.h>
#include "flashgen.h"
#include "fg_bwd_params.h"
#include "gen/spec.h"

/* Byte offsets of the workspace parts, each 256-byte aligned. */
typedef struct fg_bwd_workspace {
    size_t dq_accum, dsum, lse2, lock, total;
} fg_bwd_workspace;
void fg_bwd_workspace_layout(const fg_attention_desc *d, fg_bwd_workspace *w);

/* Validates d for the backward pass (everything fg_desc_plan checks,
 * plus the gradient strides, path and layout) and fills the variant
 * (kind FG_KIND_BWD; the configuration from the descriptor, checked, or
 * unset for the heuristic) and every field of p except the pointers.
 * *dd receives the descriptor at this library's size, gradient strides
 * resolved. */
fg_status fg_backward_plan(const fg_attention_desc *desc, int smem_limit, fg_attention_desc *dd, fg_variant *v,
                           fg_bwd_params *p, fg_error *err);
#endif
