/* score_expr_tree.h: the parsed form of a score expression, shared by its
 * evaluator (score_expr.c) and renderers (score_render.c).  Internal. */
#ifndef FG_SCORE_EXPR_TREE_H
#define FG_SCORE_EXPR_TREE_H
#include "gen/expr_parse.h"
#include "gen/score_expr.h"

struct fg_score_expr {
    fg_xtree t;
    unsigned char *ty;  /* per node: the value's fg_score_type */
    unsigned char *cty; /* per node: the type its operation computes in (comparisons, ?:) */
    int nconst, ntables, reads_score;
    char *const_names[FG_SCORE_MAX_CONSTS], *table_names[FG_SCORE_MAX_TABLES];
    fg_score_type const_types[FG_SCORE_MAX_CONSTS], table_types[FG_SCORE_MAX_TABLES];
};

/* A table index clamped to [0, n - 1], as the device clamps it. */
int64_t fg_score_table_index(int64_t i, int64_t n);
/* Appends the canonical text of node i's subtree to b. */
void fg_score_render_text(const fg_score_expr *e, int i, fg_xbuf *b);
#endif
