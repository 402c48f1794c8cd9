/* score_deriv.c: the derivative of a score expression with respect to
 * score (see fg_score_expr_derivative), built as text in the language and
 * parsed back, so it is type-checked, rendered and evaluated like any other
 * expression.  Known zeros and ones are folded, so that "score + bias[...]"
 * has the derivative "1.0" and a constant factor is not multiplied by 0. */
#include "gen/score_expr_tree.h"

#include <stdlib.h>
#include <string.h>

enum { D_ZERO, D_ONE, D_TEXT };

/* ln 2 rounded to float (d/dx 2^x = 2^x ln 2; d/dx log2 x = 1 / (x ln 2)) */
#define LN2 "0.693147182"

typedef struct dctx { const fg_score_expr *e; size_t cap; int too_big, oom; } dctx;

/* The derivative of node i: D_ZERO, D_ONE, or D_TEXT with its text in *out
 * (a heap string, parenthesised). */
static int deriv(dctx *c, int i, char **out);

static char *sub(dctx *c, int i) {
    fg_xbuf b = {0};
    fg_score_render_text(c->e, i, &b);
    if (b.oom) { free(b.s); c->oom = c->too_big = 1; return NULL; }
    return b.s;
}

/* Assembles a text from pieces: "%s" fragments and the children's texts. */
static int make(dctx *c, char **out, const char *fmt, const char *x, const char *y, const char *z, const char *w) {
    fg_xbuf b = {0};
    fg_xbuf_put(&b, fmt, x ? x : "", y ? y : "", z ? z : "", w ? w : "");
    if (b.oom || b.n > c->cap || c->too_big) { c->oom |= b.oom; free(b.s); c->too_big = 1; *out = NULL; return D_ZERO; }
    *out = b.s;
    return D_TEXT;
}

static const char *as_text(int k, const char *t) { return k == D_ZERO ? "0.0" : k == D_ONE ? "1.0" : t; }

static int deriv(dctx *c, int i, char **out) {
    const fg_score_expr *e = c->e;
    const fg_xnode *x = &e->t.n[i];
    *out = NULL;
    if (c->too_big || !e->ty[i]) return D_ZERO;         /* integers are piecewise constant */
    if (x->op == XN_VAR) return D_ONE;                   /* score */
    if (x->op == XN_FLT || x->op == XN_CONST || x->op == XN_TBL) return D_ZERO;
    char *da = NULL, *db = NULL, *a = NULL, *b = NULL;
    const int ka = x->a >= 0 ? deriv(c, x->a, &da) : D_ZERO;
    const int kb = x->op == XN_SEL ? deriv(c, x->b, &db) : x->b >= 0 ? deriv(c, x->b, &db) : D_ZERO;
    char *dc = NULL;
    const int kc = x->op == XN_SEL ? deriv(c, x->c, &dc) : D_ZERO;
    int k = D_ZERO;
    if (c->too_big) goto done;
    const char *ta = as_text(ka, da), *tb = as_text(kb, db);
    switch (x->op) {
    case XN_NEG: k = ka == D_ZERO ? D_ZERO : make(c, out, "(-%s)", ta, 0, 0, 0); break;
    case XN_ADD:
    case XN_SUB:
        if (ka == D_ZERO && kb == D_ZERO) break;
        if (kb == D_ZERO) { k = ka; *out = da; da = NULL; break; }
        if (ka == D_ZERO && x->op == XN_ADD) { k = kb; *out = db; db = NULL; break; }
        k = make(c, out, x->op == XN_ADD ? "(%s + %s)" : "(%s - %s)", ta, tb, 0, 0);
        break;
    case XN_MUL: /* a' b + a b' */
        a = sub(c, x->a); b = sub(c, x->b);
        if (ka == D_ZERO && kb == D_ZERO) break;
        /* score * x: x alone where it is a float (an integer x needs the conversion) */
        if (kb == D_ZERO) k = ka == D_ONE && e->ty[x->b] ? make(c, out, "%s", b, 0, 0, 0) : make(c, out, "(%s * %s)", ta, b, 0, 0);
        else if (ka == D_ZERO) k = kb == D_ONE && e->ty[x->a] ? make(c, out, "%s", a, 0, 0, 0) : make(c, out, "(%s * %s)", a, tb, 0, 0);
        else k = make(c, out, "((%s * %s) + (%s * %s))", ta, b, a, tb);
        break;
    case XN_DIV: /* (a' - (a / b) b') / b */
        a = sub(c, x->a); b = sub(c, x->b);
        if (ka == D_ZERO && kb == D_ZERO) break;
        if (kb == D_ZERO) { k = make(c, out, "(%s / %s)", ta, b, 0, 0); break; }
        {
            char *q = NULL;
            if (make(c, &q, "(%s / %s)", a, b, 0, 0) == D_TEXT)
                k = ka == D_ZERO ? make(c, out, "((-(%s * %s)) / %s)", q, tb, b, 0) : make(c, out, "((%s - (%s * %s)) / %s)", ta, q, tb, b);
            free(q);
        }
        break;
    case XN_MIN:
    case XN_MAX:
        a = sub(c, x->a); b = sub(c, x->b);
        if (ka == D_ZERO && kb == D_ZERO) break;
        {
            char *cond = NULL;
            if (make(c, &cond, x->op == XN_MIN ? "(%s <= %s)" : "(%s >= %s)", a, b, 0, 0) == D_TEXT)
                k = make(c, out, "(%s ? %s : %s)", cond, ta, tb, 0);
            free(cond);
        }
        break;
    case XN_ABS:
        if (ka == D_ZERO) break;
        a = sub(c, x->a);
        k = make(c, out, "((%s < 0.0) ? (-%s) : %s)", a, ta, ta, 0);
        break;
    case XN_TANH:
        if (ka == D_ZERO) break;
        a = sub(c, x->a);
        k = ka == D_ONE ? make(c, out, "(1.0 - (tanh(%s) * tanh(%s)))", a, a, 0, 0)
                        : make(c, out, "((1.0 - (tanh(%s) * tanh(%s))) * %s)", a, a, ta, 0);
        break;
    case XN_EXP2:
        if (ka == D_ZERO) break;
        a = sub(c, x->a);
        k = ka == D_ONE ? make(c, out, "(exp2(%s) * " LN2 ")", a, 0, 0, 0) : make(c, out, "((exp2(%s) * " LN2 ") * %s)", a, ta, 0, 0);
        break;
    case XN_LOG2:
        if (ka == D_ZERO) break;
        a = sub(c, x->a);
        k = make(c, out, "(%s / (%s * " LN2 "))", ta, a, 0, 0);
        break;
    case XN_SIN:
    case XN_COS:
        if (ka == D_ZERO) break;
        a = sub(c, x->a);
        if (x->op == XN_SIN) k = ka == D_ONE ? make(c, out, "cos(%s)", a, 0, 0, 0) : make(c, out, "(cos(%s) * %s)", a, ta, 0, 0);
        else k = ka == D_ONE ? make(c, out, "(-sin(%s))", a, 0, 0, 0) : make(c, out, "((-sin(%s)) * %s)", a, ta, 0, 0);
        break;
    case XN_TAN: /* 1 + tan^2 */
        if (ka == D_ZERO) break;
        a = sub(c, x->a);
        k = ka == D_ONE ? make(c, out, "(1.0 + (tan(%s) * tan(%s)))", a, a, 0, 0)
                        : make(c, out, "((1.0 + (tan(%s) * tan(%s))) * %s)", a, a, ta, 0);
        break;
    case XN_SEL:
        if (kb == D_ZERO && kc == D_ZERO) break;
        if (kb == D_ONE && kc == D_ONE) { k = D_ONE; break; }
        a = sub(c, x->a);
        k = make(c, out, "(%s ? %s : %s)", a, tb, as_text(kc, dc), 0);
        break;
    default: break;
    }
    if ((x->op == XN_MUL || x->op == XN_DIV || x->op == XN_MIN || x->op == XN_MAX || x->op == XN_ABS ||
         fg_xop_float_fn(x->op) || x->op == XN_SEL) && k == D_TEXT && !*out)
        k = D_ZERO;
done:
    free(da); free(db); free(dc); free(a); free(b);
    if (c->too_big) { free(*out); *out = NULL; return D_ZERO; }
    return k;
}

fg_status fg_score_expr_derivative(const fg_score_expr *e, fg_score_expr **out, fg_error *err) {
    *out = NULL;
    dctx c = {e, FG_SCORE_MAX_TEXT, 0, 0};
    char *t = NULL;
    const int k = deriv(&c, e->t.root, &t);
    if (c.oom) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    if (c.too_big)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "the derivative of this score expression with respect to score is longer than %d characters",
                       FG_SCORE_MAX_TEXT);
    fg_score_name consts[FG_SCORE_MAX_CONSTS], tables[FG_SCORE_MAX_TABLES];
    for (int i = 0; i < e->nconst; ++i) { consts[i].name = e->const_names[i]; consts[i].type = e->const_types[i]; }
    for (int i = 0; i < e->ntables; ++i) { tables[i].name = e->table_names[i]; tables[i].type = e->table_types[i]; }
    const fg_status st = fg_score_expr_parse(as_text(k, t), consts, e->nconst, tables, e->ntables, out, err);
    free(t);
    return st;
}
