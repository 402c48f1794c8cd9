/* score_render.c: the canonical text, the CUDA C++ and the identity of a
 * score expression (see score_expr.h).
 *
 * Integer subexpressions form regions: an integer node whose operation
 * computes in integers shares its region with its integer operands; a
 * table index, the condition of ?: and an integer under a float operation
 * start their own.  A region is rendered in 32-bit arithmetic when interval
 * analysis proves that none of its nodes leaves (INT32_MIN, INT32_MAX] (the
 * mask language's rule), else in the wrapping 64-bit helpers. */
#include "gen/score_expr_tree.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/sha256.h"

static const char *const var_names[] = {"score", "b", "h", "q_idx", "kv_idx"};

typedef struct rctx {
    const fg_score_expr *e;
    const unsigned char *w32; /* per integer node: its region is 32-bit */
    int cuda;
    fg_xbuf *b;
} rctx;

/* %.9g (which reads back as the same float), with a '.' whatever the
 * locale, and a ".0" where it would read as an integer. */
static void put_float(fg_xbuf *b, float f, int cuda) {
    if (isinf(f)) { /* the language's `inf` (a literal cannot spell it); CUDA: the bits of +inf */
        fg_xbuf_put(b, "%s", cuda ? "__int_as_float(0x7f800000)" : "inf");
        return;
    }
    char s[48];
    snprintf(s, sizeof s, "%.9g", (double)f);
    const char radix = localeconv()->decimal_point[0];
    for (char *c = s; *c; ++c)
        if (*c == radix) *c = '.';
    fg_xbuf_put(b, "%s%s%s", s, strpbrk(s, ".e") ? "" : ".0", cuda ? "f" : "");
}

static void node(rctx *c, int i);

/* node i in a float context: integers converted explicitly on the device */
static void as_float(rctx *c, int i) {
    if (c->e->ty[i] || !c->cuda) { node(c, i); return; }
    fg_xbuf_put(c->b, "((float)");
    node(c, i);
    fg_xbuf_put(c->b, ")");
}

static void call(rctx *c, const char *fn, int a, int b, int as_f) {
    fg_xbuf_put(c->b, "%s(", fn);
    if (as_f) as_float(c, a); else node(c, a);
    if (b >= 0) {
        fg_xbuf_put(c->b, ", ");
        if (as_f) as_float(c, b); else node(c, b);
    }
    fg_xbuf_put(c->b, ")");
}

static void infix(rctx *c, const char *op, int a, int b, int as_f) {
    fg_xbuf_put(c->b, "(");
    if (as_f) as_float(c, a); else node(c, a);
    fg_xbuf_put(c->b, " %s ", op);
    if (as_f) as_float(c, b); else node(c, b);
    fg_xbuf_put(c->b, ")");
}

static void table(rctx *c, const fg_xnode *x, int is_float, int w) {
    const int k = (int)x->v;
    if (!c->cuda) {
        fg_xbuf_put(c->b, "%s[", c->e->table_names[k]);
        node(c, x->a);
        fg_xbuf_put(c->b, "]");
        return;
    }
    const int wi = c->w32[x->a];
    fg_xbuf_put(c->b, "%sp.score_t%c[%d][fg::mx_min%s(fg::mx_max%s(", !is_float && !w ? "(long long)" : "", is_float ? 'f' : 'i', k,
                wi ? "32" : "64", wi ? "32" : "64");
    node(c, x->a);
    fg_xbuf_put(c->b, wi ? ", 0), (int)p.score_tn[%d] - 1)]" : ", 0ll), p.score_tn[%d] - 1ll)]", k);
}

static const char *const op_text[XN_COUNT] = {
    [XN_ADD] = "+", [XN_SUB] = "-", [XN_MUL] = "*", [XN_DIV] = "/", [XN_MOD] = "%", [XN_LT] = "<", [XN_LE] = "<=",
    [XN_GT] = ">", [XN_GE] = ">=", [XN_EQ] = "==", [XN_NE] = "!=", [XN_AND] = "&&", [XN_OR] = "||",
    [XN_MIN] = "min", [XN_MAX] = "max", [XN_ABS] = "abs", [XN_TANH] = "tanh", [XN_EXP2] = "exp2", [XN_LOG2] = "log2",
    [XN_SIN] = "sin", [XN_COS] = "cos", [XN_TAN] = "tan"};
static const char *const cu_float[XN_COUNT] = {
    [XN_ADD] = "__fadd_rn", [XN_SUB] = "__fsub_rn", [XN_MUL] = "__fmul_rn", [XN_DIV] = "__fdiv_rn", [XN_MIN] = "fg::sx_min",
    [XN_MAX] = "fg::sx_max", [XN_ABS] = "fabsf", [XN_TANH] = "tanhf", [XN_EXP2] = "exp2f", [XN_LOG2] = "log2f",
    [XN_SIN] = "sinf", [XN_COS] = "cosf", [XN_TAN] = "tanf"};
/* the mask language's helpers (fg_mask.cuh); 32-bit + - * are plain (no overflow, proven) */
static const char *const cu_int64[XN_COUNT] = {
    [XN_ADD] = "fg::mx_add64", [XN_SUB] = "fg::mx_sub64", [XN_MUL] = "fg::mx_mul64", [XN_DIV] = "fg::mx_div64",
    [XN_MOD] = "fg::mx_mod64", [XN_MIN] = "fg::mx_min64", [XN_MAX] = "fg::mx_max64", [XN_ABS] = "fg::mx_abs64", [XN_NEG] = "fg::mx_neg64"};
static const char *const cu_int32[XN_COUNT] = {
    [XN_DIV] = "fg::mx_div32", [XN_MOD] = "fg::mx_mod32", [XN_MIN] = "fg::mx_min32", [XN_MAX] = "fg::mx_max32",
    [XN_ABS] = "fg::mx_abs32", [XN_NEG] = "fg::mx_neg32"};

static void node(rctx *c, int i) {
    const fg_score_expr *e = c->e;
    const fg_xnode *x = &e->t.n[i];
    const int fl = e->ty[i], w = !fl && c->w32 && c->w32[i], cuda = c->cuda;
    fg_xbuf *b = c->b;
    switch (x->op) {
    case XN_NUM: fg_xbuf_put(b, cuda && !w ? "%lldll" : "%lld", (long long)x->v); return;
    case XN_FLT: put_float(b, x->f, cuda); return;
    case XN_VAR:
        if (!cuda) fg_xbuf_put(b, "%s", var_names[x->v]);
        else if (fl) fg_xbuf_put(b, "s");
        else fg_xbuf_put(b, w ? "%s" : "(long long)%s", var_names[x->v]);
        return;
    case XN_CONST:
        if (!cuda) fg_xbuf_put(b, "%s", e->const_names[x->v]);
        else if (fl) fg_xbuf_put(b, "p.score_cf[%d]", (int)x->v);
        else fg_xbuf_put(b, w ? "(int)p.score_ci[%d]" : "p.score_ci[%d]", (int)x->v);
        return;
    case XN_TBL: table(c, x, fl, w); return;
    case XN_NOT: fg_xbuf_put(b, "(!"); node(c, x->a); fg_xbuf_put(b, ")"); return;
    case XN_SEL:
        fg_xbuf_put(b, "(");
        node(c, x->a);
        fg_xbuf_put(b, " ? ");
        if (fl) as_float(c, x->b); else node(c, x->b);
        fg_xbuf_put(b, " : ");
        if (fl) as_float(c, x->c); else node(c, x->c);
        fg_xbuf_put(b, ")");
        return;
    case XN_NEG:
        if (!cuda || fl) { fg_xbuf_put(b, "(-"); node(c, x->a); fg_xbuf_put(b, ")"); }
        else call(c, w ? cu_int32[XN_NEG] : cu_int64[XN_NEG], x->a, -1, 0);
        return;
    case XN_ABS: case XN_TANH: case XN_EXP2: case XN_LOG2: case XN_SIN: case XN_COS: case XN_TAN:
        call(c, !cuda ? op_text[x->op] : fl ? cu_float[x->op] : w ? cu_int32[x->op] : cu_int64[x->op], x->a, -1, fl);
        return;
    case XN_MIN: case XN_MAX:
        call(c, !cuda ? op_text[x->op] : fl ? cu_float[x->op] : w ? cu_int32[x->op] : cu_int64[x->op], x->a, x->b, fl);
        return;
    default: break;
    }
    if (x->op >= XN_LT && x->op <= XN_OR) { infix(c, op_text[x->op], x->a, x->b, e->cty[i]); return; }
    /* + - * / % */
    const char *fn = !cuda ? NULL : fl ? cu_float[x->op] : w ? cu_int32[x->op] : cu_int64[x->op];
    if (fn) call(c, fn, x->a, x->b, fl);
    else infix(c, op_text[x->op], x->a, x->b, 0);
}

/* region[i]: the region (its first node) of integer node i; -1 for floats */
static void regions(const fg_score_expr *e, int i, int reg, int *region) {
    const fg_xnode *x = &e->t.n[i];
    const int is_int = !e->ty[i];
    if (is_int) region[i] = reg >= 0 ? reg : i;
    const int cont = is_int && !e->cty[i] && x->op != XN_TBL;
    const int kids[3] = {x->a, x->b, x->c};
    for (int k = 0; k < 3; ++k)
        if (kids[k] >= 0) regions(e, kids[k], cont && !(x->op == XN_SEL && k == 0) ? region[i] : -1, region);
}

/* w32[i] for every integer node: whether its region is 32-bit */
static int widths(const fg_score_expr *e, const int64_t *ci, unsigned char *w32) {
    const int n = e->t.count;
    int *region = malloc(sizeof(int) * (size_t)n);
    unsigned char *wide = calloc((size_t)n, 1);
    if (!region || !wide) { free(region); free(wide); return -1; }
    for (int i = 0; i < n; ++i) region[i] = -1;
    regions(e, e->t.root, -1, region);
    const int64_t big = ((int64_t)1 << 30) + 1024;
    const fg_ival vars[5] = {{INT64_MIN, INT64_MAX}, {0, 65535}, {0, 65535}, {0, big}, {0, big}};
    for (int i = 0; i < n; ++i) {
        if (region[i] < 0 || wide[region[i]]) continue;
        const fg_ival r = fg_xinterval(&e->t, i, vars, ci, e->ty);
        /* an int constant of unknown value may be anything */
        if (r.lo <= INT32_MIN || r.hi > INT32_MAX || (!ci && e->t.n[i].op == XN_CONST)) wide[region[i]] = 1;
    }
    for (int i = 0; i < n; ++i) w32[i] = region[i] >= 0 && !wide[region[i]];
    free(region);
    free(wide);
    return 0;
}

char *fg_score_expr_render(const fg_score_expr *e, fg_score_render_mode mode, const int64_t *ci) {
    unsigned char *w32 = calloc((size_t)e->t.count, 1);
    if (!w32) return NULL;
    if (mode == FG_SCORE_RENDER_CUDA && widths(e, ci, w32) < 0) { free(w32); return NULL; }
    fg_xbuf b = {0};
    rctx c = {e, w32, mode == FG_SCORE_RENDER_CUDA, &b};
    node(&c, e->t.root);
    free(w32);
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

void fg_score_render_text(const fg_score_expr *e, int i, fg_xbuf *b) {
    rctx c = {e, NULL, 0, b};
    node(&c, i);
}

fg_status fg_score_expr_identity(const fg_score_expr *e, const int64_t *ci, char hex[65], fg_error *err) {
    char *s = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, ci);
    if (!s) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    uint8_t d[32];
    fg_sha256(s, strlen(s), d);
    free(s);
    for (int i = 0; i < 32; ++i) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return FG_OK;
}
