/* mask_expr.h: the element-mask expression language of block-sparse
 * patterns (FlexAttention's mask_mod, as a small language instead of code).
 *
 * An expression is parsed and validated here, then rendered three ways: a
 * canonical text (the variant key hashes it), CUDA C++ (the kernel inlines
 * it for partial blocks) and Python (bench/ builds FlexAttention's mask_mod
 * from it).  The host evaluates it too: the CPU reference and the block
 * classification use this evaluator, so kernel, reference and layout share
 * one definition.
 *
 * Language: 64-bit signed integers (two's complement, wrapping).
 *   variables   b h q_idx kv_idx seqlen_q seqlen_k, plus the pattern's
 *               named constants (at most FG_MASK_MAX_CONSTS)
 *   literals    decimal integers
 *   operators   + - * / % (C truncation; x/0 and x%0 are 0)
 *               < <= > >= == != (1 or 0)   && || ! (1 or 0)   ?:   ( )
 *   functions   min(x, y) max(x, y) abs(x)
 * A key is visible iff the expression is non-zero.  Anything else (other
 * identifiers, calls, operators, strings) is rejected with its column, so
 * nothing but this language ever reaches the kernel source. */
#ifndef FG_MASK_EXPR_H
#define FG_MASK_EXPR_H
#include <stddef.h>
#include <stdint.h>
#include "gen/error.h"

#define FG_MASK_MAX_CONSTS 16
#define FG_MASK_MAX_TEXT 4096
#define FG_MASK_MAX_NODES 2048

typedef struct fg_mask_expr fg_mask_expr;

/* Variables of one evaluation. */
typedef struct fg_mask_env {
    int64_t b, h, q_idx, kv_idx, seqlen_q, seqlen_k;
    const int64_t *consts; /* values, in the order of the names given to parse */
} fg_mask_env;

/* Parses text; identifiers other than the variables and functions must be
 * among const_names[0..nconst).  On error: FG_ERR_PATTERN with the column. */
fg_status fg_mask_expr_parse(const char *text, const char *const *const_names, int nconst, fg_mask_expr **out,
                             fg_error *err);
void fg_mask_expr_free(fg_mask_expr *e);

int64_t fg_mask_expr_eval(const fg_mask_expr *e, const fg_mask_env *env);

typedef enum fg_mask_render_mode {
    FG_MASK_RENDER_TEXT,   /* canonical, fully parenthesised, constants by name */
    FG_MASK_RENDER_CUDA,   /* C++ over int b, h, q_idx, kv_idx and fg_fwd_params p, computed in long long */
    FG_MASK_RENDER_CUDA32, /* the same computed in int: only where fg_mask_expr_fits_int32 says so */
    FG_MASK_RENDER_PYTHON  /* helper calls _lt(x, y), _and(x, y), _div(x, y), ...; constant i is _c[i] */
} fg_mask_render_mode;
/* Renders into a new heap string (NULL on OOM).  consts is unused (kept for
 * renderers that inline values). */
char *fg_mask_expr_render(const fg_mask_expr *e, fg_mask_render_mode mode, const int64_t *consts);

/* Whether every subexpression stays inside the int32 range for all
 * b, h in [0, 65535], q_idx, kv_idx in [0, 2^30 + 1024] (kernel tiles run
 * past the sequence end), seqlen_q, seqlen_k in [1, 2^30] and the given
 * constant values: then 32-bit arithmetic gives the 64-bit result, about
 * half the instructions per element in the kernel. */
int fg_mask_expr_fits_int32(const fg_mask_expr *e, const int64_t *consts);

/* Work allowed to fg_mask_expr_classify over many blocks: node
 * evaluations of the interval pass, and element evaluations of the scan. */
typedef struct fg_mask_budget { int64_t interval_nodes, elements; } fg_mask_budget;

/* Block classification: over q_idx in [q0, q1] and kv_idx in [k0, k1]
 * (inclusive) with the other variables of env fixed.  Returns 2 when the
 * expression is non-zero everywhere (full), 0 when zero everywhere (empty),
 * 1 otherwise (partial).  Interval arithmetic (every operation overflow-
 * checked: an overflow widens to "any value") decides most blocks; the rest
 * are evaluated element by element until both outcomes are seen.  Each pass
 * spends its part of *budget (NULL: unbounded): a block that the budget
 * leaves undecided is partial, which is always correct (only slower); with
 * enough budget the result is exact. */
int fg_mask_expr_classify(const fg_mask_expr *e, const fg_mask_env *env, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                          fg_mask_budget *budget);
#endif
