/* expr_parse.h: the parts that the expression languages share (the mask
 * language of gen/mask_expr.h and the score language of gen/score_expr.h):
 * a recursive-descent parser with C's precedence that builds a node array,
 * the wrapping 64-bit integer operations both evaluate with, the interval
 * arithmetic that bounds integer subexpressions, and a growing string.
 *
 * A language (fg_xlang) names its variables, constants, tables, functions
 * and whether float literals exist; the parser accepts exactly that and
 * fails with the column of anything else ("<what>, column N: ...").  It
 * does not type-check: the score language does that on the tree. */
#ifndef FG_EXPR_PARSE_H
#define FG_EXPR_PARSE_H
#include <stddef.h>
#include <stdint.h>
#include "gen/error.h"

#define FG_X_MAX_NODES 2048
#define FG_X_MAX_DEPTH 200
/* the tree's depth: its canonical text nests at most twice that, plus one */
#define FG_X_MAX_TREE_DEPTH 99
#define FG_X_STR_(x) #x
#define FG_X_STR(x) FG_X_STR_(x)
#define FG_X_MAX_NAME 64

/* Node operators.  XN_SEL is c ? x : y (and the score language's where). */
enum {
    XN_NUM, XN_VAR, XN_CONST, XN_NEG, XN_NOT,
    XN_ADD, XN_SUB, XN_MUL, XN_DIV, XN_MOD,
    XN_LT, XN_LE, XN_GT, XN_GE, XN_EQ, XN_NE, XN_AND, XN_OR,
    XN_SEL, XN_MIN, XN_MAX, XN_ABS,
    XN_FLT,  /* float literal (f) */
    XN_TBL,  /* table v at index a */
    XN_TANH, XN_EXP2, XN_LOG2,
    XN_SIN, XN_COS, XN_TAN,
    XN_COUNT
};

/* The float functions of one argument (XN_TANH .. XN_TAN, contiguous
 * above): float-valued, opaque to the interval analysis. */
static inline int fg_xop_float_fn(int op) { return op >= XN_TANH && op <= XN_TAN; }

typedef struct fg_xnode {
    int op;
    int a, b, c;  /* child node indices, -1 when absent */
    int64_t v;    /* XN_NUM value; XN_VAR / XN_CONST / XN_TBL index */
    float f;      /* XN_FLT value */
    int col;      /* 0-based column where the node's text starts */
} fg_xnode;

/* A function of a language: name, operator, number of arguments (1 to 3). */
typedef struct fg_xfunc { const char *name; int op, nargs; } fg_xfunc;

typedef struct fg_xlang {
    const char *what;                 /* "mask expression": the messages' prefix */
    const char *const *vars; int nvars;
    const char *const *consts; int nconst;
    const char *const *tables; int ntables; /* names usable as name[index] */
    const fg_xfunc *funcs; int nfuncs;
    const char *const_hint;           /* appended to "unknown name" after the variables, or NULL */
    int floats;                       /* whether 1.5, 2e-3 and 3.0 are literals */
} fg_xlang;

typedef struct fg_xtree { fg_xnode *n; int count, root; } fg_xtree;

/* Parses text (at most max_text characters) into t->n (allocated here;
 * free it with free()).  On error: FG_ERR_PATTERN with the column. */
fg_status fg_xparse(const char *text, size_t max_text, const fg_xlang *lang, fg_xtree *t, fg_error *err);

/* Whether s is a fresh name for lang: an identifier of fewer than
 * FG_X_MAX_NAME characters that is not a variable or function. */
int fg_xname_ok(const fg_xlang *lang, const char *s);

/* ---- 64-bit two's complement, wrapping; x/0 and x%0 are 0 ----------------- */
static inline int64_t fg_x_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t fg_x_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t fg_x_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t fg_x_div(int64_t a, int64_t b) { return b == 0 ? 0 : b == -1 ? fg_x_sub(0, a) : a / b; }
static inline int64_t fg_x_mod(int64_t a, int64_t b) { return b == 0 || b == -1 ? 0 : a % b; }
/* The integer binary operators (+ - * / % comparisons min max) on values. */
int64_t fg_x_binop(int op, int64_t a, int64_t b);

/* ---- intervals ----------------------------------------------------------- */
typedef struct fg_ival { int64_t lo, hi; } fg_ival;
/* The values node i of t can take when variable k lies in vars[k] and
 * constant k is consts[k] (NULL: 0).  Every operation is overflow-checked:
 * an overflow widens to [INT64_MIN, INT64_MAX].  Nodes with skip[i] set
 * (NULL: none), operators without integer meaning (floats, tables) and
 * their parents' other unknowns are "any value". */
fg_ival fg_xinterval(const fg_xtree *t, int i, const fg_ival *vars, const int64_t *consts, const unsigned char *skip);

/* ---- a growing string ---------------------------------------------------- */
typedef struct fg_xbuf { char *s; size_t n, cap; int oom; } fg_xbuf;
void fg_xbuf_put(fg_xbuf *b, const char *fmt, ...) FG_PRINTF(2, 3);
#endif
