/* pattern.h: internals of block-sparse patterns shared with the reference,
 * the harness, the CLI and the tests. */
#ifndef FG_PATTERN_H
#define FG_PATTERN_H
#include "flashgen.h"
#include "gen/error.h"
#include "gen/mask_expr.h"
#include "gen/sources.h"

#define FG_PATTERN_MEM_LIMIT (64u << 20)   /* bytes of Lua memory per pattern            */
#define FG_PATTERN_INSN_LIMIT 500000000L   /* VM instructions per create and per eval     */
#define FG_PATTERN_FILE_LIMIT (1u << 20)   /* bytes of a user pattern file                */
#define FG_PATTERN_MAX_ENTRIES ((size_t)1 << 27) /* int32 entries of one layout (512 MiB)  */
/* Classification work per layout of a mask-only pattern (a few seconds at
 * most): node evaluations of interval arithmetic, and mask evaluations on
 * blocks that intervals leave undecided.  Blocks left undecided are partial
 * (correct: the kernel applies the mask to them). */
#define FG_PATTERN_CLASSIFY_BUDGET {(int64_t)1 << 31, (int64_t)1 << 24}
#define FG_PATTERN_VERIFY_MAX ((int64_t)1 << 32)  /* elements fg_pattern_verify evaluates */

/* The element predicate (NULL for a block-level pattern) and its constants. */
const fg_mask_expr *fg_pattern_expr(const fg_pattern *p);
const int64_t *fg_pattern_consts(const fg_pattern *p);
/* The host layout of the last evaluation (NULL before the first). */
const fg_block_layout_desc *fg_pattern_last(const fg_pattern *p);
/* Whether the last evaluation came from the pattern's Lua block function
 * (else from its mask expression). */
int fg_pattern_has_block_fn(const fg_pattern *p);
/* Whether the mask expression is the whole element predicate (false when a
 * block-level part such as random blocks decides which blocks exist; the
 * mask then decides only the elements of partial blocks). */
int fg_pattern_mask_is_predicate(const fg_pattern *p);

/* Checks the last evaluation (for seqlen_q, seqlen_k) against the mask
 * expression element by element (patterns whose mask is the predicate),
 * without the classifier's interval arithmetic: a full block must be true
 * everywhere, an empty one false everywhere (FG_ERR_PATTERN names the first
 * bad block and element).  *inexact counts partial blocks that the
 * classifier finds uniform (correct, only slower).  Needs a mask. */
fg_status fg_pattern_verify(const fg_pattern *p, int seqlen_q, int seqlen_k, long *inexact, fg_error *err);

/* Creation and evaluation without a context (tests): as fg_pattern_create
 * and fg_pattern_eval. */
fg_status fg_pattern_create_internal(const fg_sources *src, const char *pattern, const char *params, fg_pattern **out,
                                     fg_error *err);
fg_status fg_pattern_eval_internal(fg_pattern *p, int batch, int heads, int seqlen_q, int seqlen_k, int block_q,
                                   int block_k, fg_block_layout_desc *out, fg_error *err);
/* The built-ins: name, one-line summary, parameters with defaults.  Returns
 * the count, fills at most max (strings owned by a static table filled on
 * the first call from templates/patterns.lua). */
typedef struct fg_pattern_builtin { char name[32]; char summary[160]; char params[96]; } fg_pattern_builtin;
int fg_pattern_builtins(fg_context *ctx, fg_pattern_builtin *out, int max);
#endif
