/* attention.h: checking a call and turning it into a variant + kernel
 * arguments.  Split from the launch so that the checks run without a GPU. */
#ifndef FG_ATTENTION_H
#define FG_ATTENTION_H
#include "flashgen.h"
#include "fg_params.h"
#include "gen/spec.h"

/* Validates desc (sizes, head dim, strides, layout agreement) and fills the
 * variant (block configuration completed for smem_limit) and every field of
 * params except the tensor pointers. */
fg_status fg_attention_plan(const fg_attention_desc *d, int smem_limit, fg_variant *v, fg_fwd_params *p,
                            fg_error *err);
#endif
