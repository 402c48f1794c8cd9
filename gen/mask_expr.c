/* mask_expr.c: evaluator, renderers and block classifier of the
 * element-mask language (see mask_expr.h).  The parser, the wrapping
 * integer operations and the interval arithmetic are shared with the score
 * language (gen/expr_parse.h); every pass walks the parser's node array. */
#include "gen/mask_expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/expr_parse.h"

enum { V_B, V_H, V_Q, V_KV, V_SQ, V_SK };
static const char *const var_names[] = {"b", "h", "q_idx", "kv_idx", "seqlen_q", "seqlen_k"};
static const fg_xfunc funcs[] = {{"min", XN_MIN, 2}, {"max", XN_MAX, 2}, {"abs", XN_ABS, 1}};

typedef fg_xnode node;

struct fg_mask_expr {
    fg_xtree t;
    int nconst;
    char **const_names;
};

void fg_mask_expr_free(fg_mask_expr *e) {
    if (!e) return;
    for (int i = 0; i < e->nconst; ++i) free(e->const_names[i]);
    free(e->const_names);
    free(e->t.n);
    free(e);
}

fg_status fg_mask_expr_parse(const char *text, const char *const *cn, int nc, fg_mask_expr **out, fg_error *err) {
    *out = NULL;
    fg_xlang L = {"mask expression", var_names, 6, cn, nc, NULL, 0, funcs, 3,
                  nc ? "; constants of this pattern: see its consts table" : NULL, 0};
    if (nc < 0 || nc > FG_MASK_MAX_CONSTS)
        return fg_fail(err, FG_ERR_PATTERN, "a mask expression takes at most %d constants (got %d)", FG_MASK_MAX_CONSTS, nc);
    for (int i = 0; i < nc; ++i) {
        int ok = fg_xname_ok(&L, cn[i]);
        for (int j = 0; ok && j < i; ++j) ok = strcmp(cn[i], cn[j]) != 0;
        if (!ok)
            return fg_fail(err, FG_ERR_PATTERN, "mask constant name '%s' is not a fresh identifier (letters, digits, _; not a variable or function name; unique)",
                           cn[i] ? cn[i] : "(null)");
    }
    fg_mask_expr *e = calloc(1, sizeof *e);
    if (!e || (nc && !(e->const_names = calloc((size_t)nc, sizeof(char *))))) {
        fg_mask_expr_free(e);
        return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nc; ++i, e->nconst = i)
        if (!(e->const_names[i] = fg_strdupf("%s", cn[i]))) { fg_mask_expr_free(e); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); }
    e->nconst = nc;
    const fg_status st = fg_xparse(text, FG_MASK_MAX_TEXT, &L, &e->t, err);
    if (st != FG_OK) {
        fg_mask_expr_free(e);
        return st;
    }
    *out = e;
    return FG_OK;
}

/* ---- evaluation: 64-bit two's complement, wrapping ---------------------- */

static int64_t eval_node(const fg_mask_expr *e, int i, const fg_mask_env *env) {
    const node *x = &e->t.n[i];
    switch (x->op) {
    case XN_NUM: return x->v;
    case XN_VAR:
        switch ((int)x->v) {
        case V_B: return env->b;
        case V_H: return env->h;
        case V_Q: return env->q_idx;
        case V_KV: return env->kv_idx;
        case V_SQ: return env->seqlen_q;
        default: return env->seqlen_k;
        }
    case XN_CONST: return env->consts ? env->consts[x->v] : 0;
    case XN_NEG: return fg_x_sub(0, eval_node(e, x->a, env));
    case XN_NOT: return !eval_node(e, x->a, env);
    case XN_AND: return eval_node(e, x->a, env) && eval_node(e, x->b, env);
    case XN_OR: return eval_node(e, x->a, env) || eval_node(e, x->b, env);
    case XN_SEL: return eval_node(e, x->a, env) ? eval_node(e, x->b, env) : eval_node(e, x->c, env);
    case XN_ABS: { int64_t a = eval_node(e, x->a, env); return a < 0 ? fg_x_sub(0, a) : a; }
    default: break;
    }
    return fg_x_binop(x->op, eval_node(e, x->a, env), eval_node(e, x->b, env));
}

int64_t fg_mask_expr_eval(const fg_mask_expr *e, const fg_mask_env *env) { return eval_node(e, e->t.root, env); }

/* ---- rendering ---------------------------------------------------------- */

static const char *infix(int op) {
    static const char *t[] = {[XN_ADD] = "+", [XN_SUB] = "-", [XN_MUL] = "*", [XN_DIV] = "/", [XN_MOD] = "%",
                              [XN_LT] = "<", [XN_LE] = "<=", [XN_GT] = ">", [XN_GE] = ">=", [XN_EQ] = "==",
                              [XN_NE] = "!=", [XN_AND] = "&&", [XN_OR] = "||"};
    return t[op];
}

static void render(const fg_mask_expr *e, int i, fg_mask_render_mode m, const int64_t *consts, fg_xbuf *b) {
    const node *x = &e->t.n[i];
    const int cuda = m == FG_MASK_RENDER_CUDA || m == FG_MASK_RENDER_CUDA32;
    static const char *py_fn[] = {[XN_DIV] = "_div", [XN_MOD] = "_mod", [XN_LT] = "_lt", [XN_LE] = "_le", [XN_GT] = "_gt",
                                  [XN_GE] = "_ge", [XN_EQ] = "_eq", [XN_NE] = "_ne", [XN_AND] = "_and", [XN_OR] = "_or",
                                  [XN_MIN] = "_min", [XN_MAX] = "_max"};
    /* distinct names per width, so that an int argument (a comparison) next
     * to a long long one never makes an overload ambiguous */
    /* 64 bits: + - * through unsigned helpers, whose wrapping is defined
     * (signed overflow is undefined in C++, and NVRTC folded it: the kernel
     * then disagreed with the wrapping host evaluator); 32 bits is used only
     * where no subexpression can overflow (fg_mask_expr_fits_int32) */
    static const char *cu_fn[] = {[XN_ADD] = "fg::mx_add64", [XN_SUB] = "fg::mx_sub64", [XN_MUL] = "fg::mx_mul64",
                                  [XN_DIV] = "fg::mx_div64", [XN_MOD] = "fg::mx_mod64", [XN_MIN] = "fg::mx_min64", [XN_MAX] = "fg::mx_max64"};
    static const char *cu32_fn[] = {[XN_DIV] = "fg::mx_div32", [XN_MOD] = "fg::mx_mod32", [XN_MIN] = "fg::mx_min32", [XN_MAX] = "fg::mx_max32"};
    switch (x->op) {
    case XN_NUM: fg_xbuf_put(b, m == FG_MASK_RENDER_CUDA ? "%lldll" : "%lld", (long long)x->v); return;
    case XN_VAR:
        if (m == FG_MASK_RENDER_CUDA) fg_xbuf_put(b, x->v >= V_SQ ? "(long long)p.%s" : "(long long)%s", var_names[x->v]);
        else if (m == FG_MASK_RENDER_CUDA32 && x->v >= V_SQ) fg_xbuf_put(b, "p.%s", var_names[x->v]);
        else fg_xbuf_put(b, "%s", var_names[x->v]);
        return;
    case XN_CONST:
        if (m == FG_MASK_RENDER_CUDA) fg_xbuf_put(b, "p.mask_c[%d]", (int)x->v);
        else if (m == FG_MASK_RENDER_CUDA32) fg_xbuf_put(b, "(int)p.mask_c[%d]", (int)x->v);
        else if (m == FG_MASK_RENDER_PYTHON) fg_xbuf_put(b, "_c[%d]", (int)x->v);
        else fg_xbuf_put(b, "%s", e->const_names[x->v]);
        return;
    case XN_NEG:
        fg_xbuf_put(b, m == FG_MASK_RENDER_CUDA ? "fg::mx_neg64(" : cuda ? "fg::mx_neg32(" : "(-");
        render(e, x->a, m, consts, b);
        fg_xbuf_put(b, ")");
        return;
    case XN_NOT:
        fg_xbuf_put(b, m == FG_MASK_RENDER_PYTHON ? "_not(" : "(!");
        render(e, x->a, m, consts, b);
        fg_xbuf_put(b, ")");
        return;
    case XN_ABS:
        fg_xbuf_put(b, m == FG_MASK_RENDER_PYTHON ? "_abs(" : m == FG_MASK_RENDER_CUDA ? "fg::mx_abs64(" : cuda ? "fg::mx_abs32(" : "abs(");
        render(e, x->a, m, consts, b);
        fg_xbuf_put(b, ")");
        return;
    case XN_SEL:
        if (m == FG_MASK_RENDER_PYTHON) {
            fg_xbuf_put(b, "_sel(");
            render(e, x->a, m, consts, b); fg_xbuf_put(b, ", ");
            render(e, x->b, m, consts, b); fg_xbuf_put(b, ", ");
            render(e, x->c, m, consts, b); fg_xbuf_put(b, ")");
        } else {
            fg_xbuf_put(b, "(");
            render(e, x->a, m, consts, b); fg_xbuf_put(b, " ? ");
            render(e, x->b, m, consts, b); fg_xbuf_put(b, " : ");
            render(e, x->c, m, consts, b); fg_xbuf_put(b, ")");
        }
        return;
    default: break;
    }
    const int fn = (m == FG_MASK_RENDER_PYTHON && x->op != XN_ADD && x->op != XN_SUB && x->op != XN_MUL) ||
                   (m == FG_MASK_RENDER_CUDA && cu_fn[x->op]) || (m == FG_MASK_RENDER_CUDA32 && cu32_fn[x->op]) || (m == FG_MASK_RENDER_TEXT && (x->op == XN_MIN || x->op == XN_MAX));
    if (fn) {
        const char *name = m == FG_MASK_RENDER_PYTHON ? py_fn[x->op] : m == FG_MASK_RENDER_CUDA ? cu_fn[x->op] : cuda ? cu32_fn[x->op]
                                                                                               : x->op == XN_MIN ? "min" : "max";
        fg_xbuf_put(b, "%s(", name);
        render(e, x->a, m, consts, b); fg_xbuf_put(b, ", ");
        render(e, x->b, m, consts, b); fg_xbuf_put(b, ")");
    } else {
        fg_xbuf_put(b, "(");
        render(e, x->a, m, consts, b);
        fg_xbuf_put(b, " %s ", infix(x->op));
        render(e, x->b, m, consts, b);
        fg_xbuf_put(b, ")");
    }
}

char *fg_mask_expr_render(const fg_mask_expr *e, fg_mask_render_mode m, const int64_t *consts) {
    fg_xbuf b = {0};
    render(e, e->t.root, m, consts, &b);
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* ---- block classification ----------------------------------------------- */

typedef fg_ival ival;
static int definitely_zero(ival a) { return a.lo == 0 && a.hi == 0; }
static int definitely_nonzero(ival a) { return a.lo > 0 || a.hi < 0; }
static ival iv_const(int64_t v) { ival r = {v, v}; return r; }

int fg_mask_expr_classify(const fg_mask_expr *e, const fg_mask_env *env, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                          fg_mask_budget *budget) {
    if (q1 < q0 || k1 < k0) return 0;
    if (budget && (budget->interval_nodes -= e->t.count) < 0) return 1;
    const ival vars[6] = {iv_const(env->b), iv_const(env->h), {q0, q1}, {k0, k1}, iv_const(env->seqlen_q), iv_const(env->seqlen_k)};
    const ival r = fg_xinterval(&e->t, e->t.root, vars, env->consts, NULL);
    if (definitely_nonzero(r)) return 2;
    if (definitely_zero(r)) return 0;
    fg_mask_env x = *env;
    int seen_true = 0, seen_false = 0;
    for (int64_t q = q0; q <= q1; ++q) {
        x.q_idx = q;
        for (int64_t k = k0; k <= k1; ++k) {
            if (budget && budget->elements-- <= 0) return 1; /* undecided: partial is always correct */
            x.kv_idx = k;
            if (eval_node(e, e->t.root, &x)) seen_true = 1;
            else seen_false = 1;
            if (seen_true && seen_false) return 1;
        }
    }
    return seen_true ? 2 : 0;
}

int fg_mask_expr_fits_int32(const fg_mask_expr *e, const int64_t *consts) {
    const int64_t big = ((int64_t)1 << 30) + 1024;
    const ival vars[6] = {{0, 65535}, {0, 65535}, {0, big}, {0, big}, {1, (int64_t)1 << 30}, {1, (int64_t)1 << 30}};
    /* every node, whether or not C's short-circuit would evaluate it */
    for (int i = 0; i < e->t.count; ++i) {
        const ival r = fg_xinterval(&e->t, i, vars, consts, NULL);
        if (r.lo <= INT32_MIN || r.hi > INT32_MAX) return 0;
    }
    return 1;
}
