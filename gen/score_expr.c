/* score_expr.c: parser front end, type checker and host evaluator of the
 * score language (see score_expr.h); score_render.c renders it.  The host
 * evaluator performs the device's operations in the device's order: float
 * operations in fp32 (this file is compiled with -ffp-contract=off, and the
 * device uses __fadd_rn and friends, which are never contracted). */
#include "gen/score_expr_tree.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const var_names[] = {"score", "b", "h", "q_idx", "kv_idx"};
static const fg_xfunc funcs[] = {{"min", XN_MIN, 2}, {"max", XN_MAX, 2}, {"abs", XN_ABS, 1}, {"tanh", XN_TANH, 1},
                                 {"exp2", XN_EXP2, 1}, {"log2", XN_LOG2, 1}, {"sin", XN_SIN, 1}, {"cos", XN_COS, 1},
                                 {"tan", XN_TAN, 1}, {"where", XN_SEL, 3}};

void fg_score_expr_free(fg_score_expr *e) {
    if (!e) return;
    for (int i = 0; i < e->nconst; ++i) free(e->const_names[i]);
    for (int i = 0; i < e->ntables; ++i) free(e->table_names[i]);
    free(e->t.n);
    free(e->ty);
    free(e->cty);
    free(e);
}

static int type_error(fg_error *err, const char *text, int col, const char *what) {
    fg_fail(err, FG_ERR_PATTERN, "score expression, column %d: %s\n  %s\n  %*s^", col + 1, what, text, col, "");
    return -1;
}

/* Sets e->ty (the value's type) and e->cty (the type the operation computes
 * in) of node i and its subtree; -1 on a type error. */
static int check(fg_score_expr *e, int i, const char *text, fg_error *err) {
    const fg_xnode *x = &e->t.n[i];
    unsigned char ta = 0, tb = 0, tc = 0;
    if (x->a >= 0) { if (check(e, x->a, text, err) < 0) return -1; ta = e->ty[x->a]; }
    if (x->b >= 0) { if (check(e, x->b, text, err) < 0) return -1; tb = e->ty[x->b]; }
    if (x->c >= 0) { if (check(e, x->c, text, err) < 0) return -1; tc = e->ty[x->c]; }
    unsigned char ty = FG_SCORE_INT, cty;
    switch (x->op) {
    case XN_NUM: break;
    case XN_FLT: ty = FG_SCORE_FLOAT; break;
    case XN_VAR: ty = x->v == 0 ? FG_SCORE_FLOAT : FG_SCORE_INT; break;
    case XN_CONST: ty = (unsigned char)e->const_types[x->v]; break;
    case XN_TBL:
        if (ta) return type_error(err, text, e->t.n[x->a].col, "a table index must be an integer (it is a float here)");
        ty = (unsigned char)e->table_types[x->v];
        break;
    case XN_NOT: case XN_AND: case XN_OR:
        if (ta || tb)
            return type_error(err, text, e->t.n[ta ? x->a : x->b].col,
                              "a condition must be an integer (a comparison): compare the float explicitly, e.g. score > 0.0");
        break;
    case XN_SEL:
        if (ta) return type_error(err, text, e->t.n[x->a].col, "a condition must be an integer (a comparison): compare the float explicitly, e.g. score > 0.0");
        ty = tb | tc;
        break;
    case XN_MOD:
        if (ta || tb) return type_error(err, text, x->col, "'%' needs integer operands");
        break;
    case XN_TANH: case XN_EXP2: case XN_LOG2: case XN_SIN: case XN_COS: case XN_TAN: ty = FG_SCORE_FLOAT; break;
    case XN_NEG: case XN_ABS: ty = ta; break;
    case XN_LT: case XN_LE: case XN_GT: case XN_GE: case XN_EQ: case XN_NE: break;
    default: ty = ta | tb; break; /* + - * / min max */
    }
    cty = ty;
    if (x->op >= XN_LT && x->op <= XN_NE) cty = ta | tb;
    if (x->op == XN_SEL) cty = tb | tc;
    e->ty[i] = ty;
    e->cty[i] = cty;
    return 0;
}

static int reads_score(const fg_score_expr *e) {
    for (int i = 0; i < e->t.count; ++i)
        if (e->t.n[i].op == XN_VAR && e->t.n[i].v == 0) return 1;
    return 0;
}

static fg_status check_names(const fg_xlang *L, const fg_score_name *names, int n, int max, const char *kind,
                             const fg_score_name *other, int nother, fg_error *err) {
    if (n < 0 || n > max || (n && !names)) return fg_fail(err, FG_ERR_PATTERN, "a score expression takes at most %d %ss (got %d)", max, kind, n);
    for (int i = 0; i < n; ++i) {
        const char *s = names[i].name;
        int ok = fg_xname_ok(L, s) && (names[i].type == FG_SCORE_INT || names[i].type == FG_SCORE_FLOAT);
        for (int j = 0; ok && j < i; ++j) ok = strcmp(s, names[j].name) != 0;
        for (int j = 0; ok && j < nother; ++j) ok = strcmp(s, other[j].name) != 0;
        if (!ok)
            return fg_fail(err, FG_ERR_PATTERN, "score %s name '%s' is not a fresh identifier of type int or float (letters, digits, _; not a variable, function name or inf; unique)",
                           kind, s ? s : "(null)");
    }
    return FG_OK;
}

fg_status fg_score_expr_parse(const char *text, const fg_score_name *consts, int nconst, const fg_score_name *tables,
                              int ntables, fg_score_expr **out, fg_error *err) {
    *out = NULL;
    const char *cn[FG_SCORE_MAX_CONSTS], *tn[FG_SCORE_MAX_TABLES];
    fg_xlang L = {"score expression", var_names, 5, cn, 0, tn, 0, funcs, (int)(sizeof funcs / sizeof funcs[0]),
                  "; and the constants given with the expression", 1};
    fg_status st = check_names(&L, consts, nconst, FG_SCORE_MAX_CONSTS, "constant", NULL, 0, err);
    if (st == FG_OK) st = check_names(&L, tables, ntables, FG_SCORE_MAX_TABLES, "table", consts, nconst, err);
    if (st != FG_OK) return st;
    for (int i = 0; i < nconst; ++i) cn[i] = consts[i].name;
    for (int i = 0; i < ntables; ++i) tn[i] = tables[i].name;
    L.nconst = nconst;
    L.ntables = ntables;
    fg_score_expr *e = calloc(1, sizeof *e);
    if (!e) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < nconst; ++i, e->nconst = i) {
        e->const_types[i] = consts[i].type;
        if (!(e->const_names[i] = fg_strdupf("%s", consts[i].name))) goto oom;
    }
    for (int i = 0; i < ntables; ++i, e->ntables = i) {
        e->table_types[i] = tables[i].type;
        if (!(e->table_names[i] = fg_strdupf("%s", tables[i].name))) goto oom;
    }
    if ((st = fg_xparse(text, FG_SCORE_MAX_TEXT, &L, &e->t, err)) != FG_OK) {
        fg_score_expr_free(e);
        return st;
    }
    if (!(e->ty = calloc((size_t)e->t.count, 1)) || !(e->cty = calloc((size_t)e->t.count, 1))) goto oom;
    if (check(e, e->t.root, text, err) < 0) {
        fg_score_expr_free(e);
        return FG_ERR_PATTERN;
    }
    if (e->ty[e->t.root] != FG_SCORE_FLOAT) {
        fg_score_expr_free(e);
        return fg_fail(err, FG_ERR_PATTERN, "score expression '%s' has an integer value; a score must be a float (e.g. score + 1.0, or where(c, score, -1e30))", text);
    }
    e->reads_score = reads_score(e);
    *out = e;
    return FG_OK;
oom:
    fg_score_expr_free(e);
    return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
}

fg_status fg_score_check_tables(const fg_score_expr *e, const fg_score_table *tables, fg_error *err) {
    for (int k = 0; k < e->ntables; ++k) {
        const fg_score_table *t = tables ? &tables[k] : NULL;
        if (!t || !t->data || t->n < 1 || t->n > FG_SCORE_MAX_TABLE_LEN)
            return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "score table '%s': %s (a table has 1 to 2^31 - 1 elements)", e->table_names[k],
                           !t || !t->data ? "no data" : "bad length");
    }
    return FG_OK;
}

int fg_score_expr_size(const fg_score_expr *e) { return e->t.count; }
int fg_score_expr_reads_score(const fg_score_expr *e) { return e->reads_score; }

/* ---- evaluation ------------------------------------------------------------ */

static int64_t ieval(const fg_score_expr *e, int i, const fg_score_env *env);
/* min and max as the device computes them (fg::sx_min / sx_max in
 * templates/fg_mask.cuh): NaN loses to a number; -0 is below +0. */
static float sx_min(float a, float b) {
    return a != a ? b : b != b ? a : a < b ? a : b < a ? b : (1.0f / a < 0.0f ? a : b);
}
static float sx_max(float a, float b) {
    return a != a ? b : b != b ? a : a > b ? a : b > a ? b : (1.0f / a < 0.0f ? b : a);
}

static float feval(const fg_score_expr *e, int i, const fg_score_env *env);

/* node i's value as a float: converted (round to nearest) when an integer */
static float fval(const fg_score_expr *e, int i, const fg_score_env *env) {
    return e->ty[i] ? feval(e, i, env) : (float)ieval(e, i, env);
}

int64_t fg_score_table_index(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

static int64_t ieval(const fg_score_expr *e, int i, const fg_score_env *env) {
    const fg_xnode *x = &e->t.n[i];
    switch (x->op) {
    case XN_NUM: return x->v;
    case XN_VAR: return x->v == 1 ? env->b : x->v == 2 ? env->h : x->v == 3 ? env->q_idx : env->kv_idx;
    case XN_CONST: return env->ci ? env->ci[x->v] : 0;
    case XN_TBL: {
        const fg_score_table *t = env->tables ? &env->tables[x->v] : NULL;
        return t && t->data && t->n > 0 ? ((const int32_t *)t->data)[fg_score_table_index(ieval(e, x->a, env), t->n)] : 0;
    }
    case XN_NEG: return fg_x_sub(0, ieval(e, x->a, env));
    case XN_ABS: { const int64_t a = ieval(e, x->a, env); return a < 0 ? fg_x_sub(0, a) : a; }
    case XN_NOT: return !ieval(e, x->a, env);
    case XN_AND: return ieval(e, x->a, env) && ieval(e, x->b, env);
    case XN_OR: return ieval(e, x->a, env) || ieval(e, x->b, env);
    case XN_SEL: return ieval(e, x->a, env) ? ieval(e, x->b, env) : ieval(e, x->c, env);
    default: break;
    }
    if (e->cty[i]) { /* a comparison of floats */
        const float a = fval(e, x->a, env), b = fval(e, x->b, env);
        switch (x->op) {
        case XN_LT: return a < b;
        case XN_LE: return a <= b;
        case XN_GT: return a > b;
        case XN_GE: return a >= b;
        case XN_EQ: return a == b;
        default: return a != b;
        }
    }
    return fg_x_binop(x->op, ieval(e, x->a, env), ieval(e, x->b, env));
}

static float feval(const fg_score_expr *e, int i, const fg_score_env *env) {
    const fg_xnode *x = &e->t.n[i];
    switch (x->op) {
    case XN_FLT: return x->f;
    case XN_VAR: return env->score;
    case XN_CONST: return env->cf ? env->cf[x->v] : 0.0f;
    case XN_TBL: {
        const fg_score_table *t = env->tables ? &env->tables[x->v] : NULL;
        return t && t->data && t->n > 0 ? ((const float *)t->data)[fg_score_table_index(ieval(e, x->a, env), t->n)] : 0.0f;
    }
    case XN_NEG: return -fval(e, x->a, env);
    case XN_ABS: return fabsf(fval(e, x->a, env));
    case XN_TANH: return tanhf(fval(e, x->a, env));
    case XN_EXP2: return exp2f(fval(e, x->a, env));
    case XN_LOG2: return log2f(fval(e, x->a, env));
    case XN_SIN: return sinf(fval(e, x->a, env));
    case XN_COS: return cosf(fval(e, x->a, env));
    case XN_TAN: return tanf(fval(e, x->a, env));
    case XN_SEL: return ieval(e, x->a, env) ? fval(e, x->b, env) : fval(e, x->c, env);
    default: break;
    }
    const float a = fval(e, x->a, env), b = fval(e, x->b, env);
    switch (x->op) {
    case XN_ADD: return a + b;
    case XN_SUB: return a - b;
    case XN_MUL: return a * b;
    case XN_DIV: return a / b;
    case XN_MIN: return sx_min(a, b);
    default: return sx_max(a, b);
    }
}

float fg_score_expr_eval(const fg_score_expr *e, const fg_score_env *env) { return feval(e, e->t.root, env); }
