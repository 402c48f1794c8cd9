/* score_lib.h: the built-in score modifications, written in the score
 * language (gen/score_expr.h) with their parameters and, where the backward
 * needs it, their derivative with respect to score (an expression over the
 * same names).  docs/SCORES.md shows each with an example. */
#ifndef FG_SCORE_LIB_H
#define FG_SCORE_LIB_H
#include "gen/score_expr.h"

typedef struct fg_score_builtin {
    const char *name;
    const char *expr;
    const char *dscore;  /* d expr / d score, as an expression */
    const fg_score_name *consts; int nconst;
    const fg_score_name *tables; int ntables;
    const char *doc;     /* the parameters, in words */
} fg_score_builtin;

/* All built-ins (*n of them), or the one named (NULL if none). */
const fg_score_builtin *fg_score_builtins(int *n);
const fg_score_builtin *fg_score_builtin_find(const char *name);

/* Parses a built-in's expression (which = 0) or its derivative (which = 1). */
fg_status fg_score_builtin_parse(const fg_score_builtin *bi, int which, fg_score_expr **out, fg_error *err);
#endif
