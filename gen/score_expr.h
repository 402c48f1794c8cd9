/* score_expr.h: the score-modification language (FlexAttention's score_mod
 * as a small language; issue 13).  An expression computes the new logit of
 * one (query, key) element from the old one.  It is parsed and type-checked
 * here (the parser is the mask language's, gen/expr_parse.h), evaluated on
 * the host exactly as the device computes it, and rendered as canonical text
 * and as CUDA C++.  The forward kernel applies it (fg_score_create,
 * runtime/score.c; docs/SCORE-WIRING.md).
 *
 * Language:
 *   score           the logit (float)
 *   b h q_idx kv_idx  integers
 *   constants       named by the caller, each int or float
 *   tables          named by the caller, each of int32 or float elements,
 *                   read as name[index]; the index is an integer, clamped
 *                   to [0, length - 1] (the same on host and device)
 *   literals        decimal integers (at most 2^62); floats 1.5, 2e-3, 3.0
 *                   (rounded to the nearest float; out of range refused)
 *   operators       + - * / % < <= > >= == != && || ! ?: ( )
 *   functions       min max abs (int or float), tanh exp2 log2 (float),
 *                   where(c, x, y) (the same as c ? x : y)
 * Types: an operation on two integers is an integer operation of the mask
 * language (64-bit wrapping, x/0 and x%0 are 0; 32-bit on the device where
 * interval analysis proves the result equal).  With a float operand the
 * integer is converted (round to nearest) and the operation is fp32, IEEE
 * round to nearest, no contraction into FMA.  % needs integers; conditions
 * (&& || ! and the first operand of ?: and where) need integers, so compare
 * a float explicitly (score > 0.0); comparisons give the integer 0 or 1.
 * The expression's value must be a float.
 *
 * Host and device agree bit for bit except in tanh, exp2 and log2: the host
 * calls the C library's tanhf, exp2f, log2f and the device CUDA's (within
 * 2 ulp of the exact result: tanhf 2 ulp, exp2f 2 ulp, log2f 1 ulp), so
 * those may differ by an ulp or two; min/max of +0 and -0 may return either
 * zero on either side.
 *
 * The CUDA rendering is an expression over these names (the kernel defines
 * them; fg_mask.cuh provides the fg::mx_* integer helpers):
 *   float s;  int b, h, q_idx, kv_idx;
 *   p.score_ci[i]  long long  value of constant i when it is an int
 *   p.score_cf[i]  float      value of constant i when it is a float
 *   p.score_ti[k]  const int *    elements of table k when of int32
 *   p.score_tf[k]  const float *  elements of table k when of float
 *   p.score_tn[k]  long long  length of table k, in [1, 2^31 - 1]
 * (i and k are the positions of the names given to fg_score_expr_parse). */
#ifndef FG_SCORE_EXPR_H
#define FG_SCORE_EXPR_H
#include <stddef.h>
#include <stdint.h>
#include "gen/error.h"

#define FG_SCORE_MAX_TEXT 4096
#define FG_SCORE_MAX_CONSTS 16
#define FG_SCORE_MAX_TABLES 8
#define FG_SCORE_MAX_TABLE_LEN 2147483647LL

typedef struct fg_score_expr fg_score_expr;

typedef enum fg_score_type { FG_SCORE_INT, FG_SCORE_FLOAT } fg_score_type;
/* A constant or table name and its (element) type. */
typedef struct fg_score_name { const char *name; fg_score_type type; } fg_score_name;

/* A table's elements: int32_t or float, by its declared type. */
typedef struct fg_score_table { const void *data; int64_t n; } fg_score_table;

/* Variables of one evaluation.  ci[i] is read for int constants, cf[i] for
 * float ones (i: the constant's position); tables[k] for table k.  A NULL
 * array, and a table without data or elements, reads as 0 (the device has
 * no such case: launch only with tables that fg_score_check_tables passes). */
typedef struct fg_score_env {
    float score;
    int64_t b, h, q_idx, kv_idx;
    const int64_t *ci;
    const float *cf;
    const fg_score_table *tables;
} fg_score_env;

/* Parses and type-checks text.  Names of constants and tables must be fresh
 * identifiers (not a variable or function, unique).  On error:
 * FG_ERR_PATTERN with "score expression, column N: ..." where it has one. */
fg_status fg_score_expr_parse(const char *text, const fg_score_name *consts, int nconst, const fg_score_name *tables,
                              int ntables, fg_score_expr **out, fg_error *err);
void fg_score_expr_free(fg_score_expr *e);

/* Tables fit for evaluation: data non-NULL and 1 <= n <= 2^31 - 1 each.
 * Evaluate (host or device) only with tables that pass. */
fg_status fg_score_check_tables(const fg_score_expr *e, const fg_score_table *tables, fg_error *err);

/* The value, as the device computes it (see above for tanh, exp2, log2). */
float fg_score_expr_eval(const fg_score_expr *e, const fg_score_env *env);

typedef enum fg_score_render_mode {
    FG_SCORE_RENDER_TEXT, /* canonical: fully parenthesised, names, where() as ?: ; parses back to itself */
    FG_SCORE_RENDER_CUDA  /* the device expression (names above) */
} fg_score_render_mode;
/* A new heap string (NULL on OOM).  ci: the int constants' values (NULL:
 * unknown), from which the CUDA form decides where 32-bit integer
 * arithmetic is exact (b, h in [0, 65535], q_idx, kv_idx in
 * [0, 2^30 + 1024]); the text form does not depend on it. */
char *fg_score_expr_render(const fg_score_expr *e, fg_score_render_mode mode, const int64_t *ci);

/* The kernel identity: SHA-256 (hex) of the CUDA rendering with ci. */
fg_status fg_score_expr_identity(const fg_score_expr *e, const int64_t *ci, char hex[65], fg_error *err);

/* The derivative with respect to score, as a new expression over the same
 * names (for the backward: dS before the modification = dS after times
 * it).  Derived by the rules of calculus where the expression is
 * differentiable: integer subexpressions (comparisons included) are
 * piecewise constant, so 0; min, max, abs and ?: take the derivative of
 * the branch they pick (at a tie, min and max the first operand's, abs
 * that of +x at 0).  FG_ERR_UNSUPPORTED when the derivative's text would
 * exceed FG_SCORE_MAX_TEXT. */
fg_status fg_score_expr_derivative(const fg_score_expr *e, fg_score_expr **out, fg_error *err);

/* Number of nodes, and whether the expression reads score (one that does
 * not has derivative 0 with respect to it). */
int fg_score_expr_size(const fg_score_expr *e);
int fg_score_expr_reads_score(const fg_score_expr *e);
#endif
