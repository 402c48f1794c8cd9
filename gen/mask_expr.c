/* mask_expr.c: parser, evaluator, renderers and block classifier of the
 * element-mask language (see mask_expr.h).  A recursive-descent parser with
 * C's precedence builds a node array; every later pass walks that array. */
#include "gen/mask_expr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    N_NUM, N_VAR, N_CONST, N_NEG, N_NOT,
    N_ADD, N_SUB, N_MUL, N_DIV, N_MOD,
    N_LT, N_LE, N_GT, N_GE, N_EQ, N_NE, N_AND, N_OR,
    N_SEL, N_MIN, N_MAX, N_ABS
};
enum { V_B, V_H, V_Q, V_KV, V_SQ, V_SK };
static const char *const var_names[] = {"b", "h", "q_idx", "kv_idx", "seqlen_q", "seqlen_k"};

typedef struct node {
    int op;
    int a, b, c;   /* child node indices */
    int64_t v;     /* N_NUM value, N_VAR / N_CONST index */
} node;

struct fg_mask_expr {
    node *n;
    int count, root;
    int nconst;
    char **const_names;
};

typedef struct parser {
    const char *s;
    size_t pos;
    fg_mask_expr *e;
    const char *const *cn;
    int nc, depth;
    fg_error *err;
    int failed;
} parser;

static int fail_at(parser *p, size_t col, const char *what) {
    if (!p->failed)
        fg_fail(p->err, FG_ERR_PATTERN, "mask expression, column %zu: %s\n  %s\n  %*s^", col + 1, what, p->s, (int)col, "");
    p->failed = 1;
    return -1;
}

static void skip_ws(parser *p) {
    while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r') p->pos++;
}

static int accept(parser *p, const char *tok) {
    skip_ws(p);
    size_t n = strlen(tok);
    if (strncmp(p->s + p->pos, tok, n)) return 0;
    /* "<" must not match "<=", "=" alone is not an operator */
    if (n == 1 && (tok[0] == '<' || tok[0] == '>' || tok[0] == '!') && p->s[p->pos + 1] == '=') return 0;
    if (n == 1 && (tok[0] == '&' || tok[0] == '|')) return 0;
    p->pos += n;
    return 1;
}

static int add_node(parser *p, int op, int a, int b, int c, int64_t v) {
    if (p->failed) return -1;
    if (p->e->count >= FG_MASK_MAX_NODES) return fail_at(p, p->pos, "expression too large");
    node *x = &p->e->n[p->e->count];
    x->op = op; x->a = a; x->b = b; x->c = c; x->v = v;
    return p->e->count++;
}

static int parse_expr(parser *p);

static int parse_primary(parser *p) {
    skip_ws(p);
    const size_t start = p->pos;
    const char ch = p->s[p->pos];
    if (ch == '(') {
        p->pos++;
        int r = parse_expr(p);
        if (r < 0) return r;
        if (!accept(p, ")")) return fail_at(p, p->pos, "expected ')'");
        return r;
    }
    if (isdigit((unsigned char)ch)) {
        const uint64_t limit = (uint64_t)1 << 62;
        uint64_t v = 0;
        while (isdigit((unsigned char)p->s[p->pos])) {
            const uint64_t d = (uint64_t)(p->s[p->pos] - '0');
            /* checked before the multiply, so no digit string wraps */
            if (v > (limit - d) / 10) return fail_at(p, start, "integer literal too large (limit 2^62)");
            v = v * 10 + d;
            p->pos++;
        }
        if (isalpha((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_' || p->s[p->pos] == '.')
            return fail_at(p, p->pos, "only decimal integer literals are allowed");
        return add_node(p, N_NUM, -1, -1, -1, (int64_t)v);
    }
    if (isalpha((unsigned char)ch) || ch == '_') {
        char id[64];
        size_t n = 0;
        while (isalnum((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_') {
            if (n + 1 >= sizeof id) return fail_at(p, start, "identifier too long");
            id[n++] = p->s[p->pos++];
        }
        id[n] = 0;
        skip_ws(p);
        if (p->s[p->pos] == '(') {
            int op = !strcmp(id, "min") ? N_MIN : !strcmp(id, "max") ? N_MAX : !strcmp(id, "abs") ? N_ABS : -1;
            if (op < 0) {
                char m[128];
                snprintf(m, sizeof m, "unknown function '%s' (the functions are min, max, abs)", id);
                return fail_at(p, start, m);
            }
            p->pos++;
            int a = parse_expr(p), b = -1;
            if (a < 0) return a;
            if (op != N_ABS) {
                if (!accept(p, ",")) return fail_at(p, p->pos, "expected ',' (min and max take two arguments)");
                b = parse_expr(p);
                if (b < 0) return b;
            }
            if (!accept(p, ")")) return fail_at(p, p->pos, op == N_ABS ? "expected ')' (abs takes one argument)" : "expected ')'");
            return add_node(p, op, a, b, -1, 0);
        }
        for (int i = 0; i < 6; ++i)
            if (!strcmp(id, var_names[i])) return add_node(p, N_VAR, -1, -1, -1, i);
        for (int i = 0; i < p->nc; ++i)
            if (!strcmp(id, p->cn[i])) return add_node(p, N_CONST, -1, -1, -1, i);
        char m[256];
        snprintf(m, sizeof m, "unknown name '%s' (variables: b h q_idx kv_idx seqlen_q seqlen_k%s%s)", id,
                 p->nc ? "; constants of this pattern: " : "", p->nc ? "see its consts table" : "");
        return fail_at(p, start, m);
    }
    if (!ch) return fail_at(p, start, "unexpected end of expression");
    char m[64];
    snprintf(m, sizeof m, "unexpected character '%c'", ch);
    return fail_at(p, start, m);
}

static int parse_unary(parser *p) {
    if (++p->depth > 200) return fail_at(p, p->pos, "expression nested too deeply");
    int r;
    if (accept(p, "-")) { r = parse_unary(p); r = r < 0 ? r : add_node(p, N_NEG, r, -1, -1, 0); }
    else if (accept(p, "!")) { r = parse_unary(p); r = r < 0 ? r : add_node(p, N_NOT, r, -1, -1, 0); }
    else if (accept(p, "+")) r = parse_unary(p);
    else r = parse_primary(p);
    p->depth--;
    return r;
}

typedef struct binop { const char *tok; int op; } binop;

static int parse_level(parser *p, int level);

static const binop levels[][5] = {
    {{"||", N_OR}},
    {{"&&", N_AND}},
    {{"==", N_EQ}, {"!=", N_NE}},
    {{"<=", N_LE}, {">=", N_GE}, {"<", N_LT}, {">", N_GT}},
    {{"+", N_ADD}, {"-", N_SUB}},
    {{"*", N_MUL}, {"/", N_DIV}, {"%", N_MOD}},
};
#define NLEVELS 6

static int parse_level(parser *p, int level) {
    if (level == NLEVELS) return parse_unary(p);
    int a = parse_level(p, level + 1);
    while (a >= 0) {
        int op = -1;
        for (int i = 0; i < 5 && levels[level][i].tok; ++i)
            if (accept(p, levels[level][i].tok)) { op = levels[level][i].op; break; }
        if (op < 0) break;
        int b = parse_level(p, level + 1);
        if (b < 0) return b;
        a = add_node(p, op, a, b, -1, 0);
    }
    return a;
}

static int parse_expr(parser *p) {
    if (++p->depth > 200) return fail_at(p, p->pos, "expression nested too deeply");
    int c = parse_level(p, 0);
    if (c >= 0 && accept(p, "?")) {
        int x = parse_expr(p);
        if (x < 0) return x;
        if (!accept(p, ":")) return fail_at(p, p->pos, "expected ':' of '?:'");
        int y = parse_expr(p);
        if (y < 0) return y;
        c = add_node(p, N_SEL, c, x, y, 0);
    }
    p->depth--;
    return c;
}

void fg_mask_expr_free(fg_mask_expr *e) {
    if (!e) return;
    for (int i = 0; i < e->nconst; ++i) free(e->const_names[i]);
    free(e->const_names);
    free(e->n);
    free(e);
}

fg_status fg_mask_expr_parse(const char *text, const char *const *cn, int nc, fg_mask_expr **out, fg_error *err) {
    *out = NULL;
    if (!text) return fg_fail(err, FG_ERR_PATTERN, "mask expression is NULL");
    if (strlen(text) > FG_MASK_MAX_TEXT)
        return fg_fail(err, FG_ERR_PATTERN, "mask expression is %zu characters; the limit is %d", strlen(text), FG_MASK_MAX_TEXT);
    if (nc < 0 || nc > FG_MASK_MAX_CONSTS)
        return fg_fail(err, FG_ERR_PATTERN, "a mask expression takes at most %d constants (got %d)", FG_MASK_MAX_CONSTS, nc);
    for (int i = 0; i < nc; ++i) {
        const char *s = cn[i];
        int ok = s && (isalpha((unsigned char)s[0]) || s[0] == '_') && strlen(s) < 64;
        for (const char *t = s; ok && *t; ++t) ok = isalnum((unsigned char)*t) || *t == '_';
        for (int j = 0; ok && j < 6; ++j) ok = strcmp(s, var_names[j]) != 0;
        ok = ok && strcmp(s, "min") && strcmp(s, "max") && strcmp(s, "abs");
        for (int j = 0; ok && j < i; ++j) ok = strcmp(s, cn[j]) != 0;
        if (!ok)
            return fg_fail(err, FG_ERR_PATTERN, "mask constant name '%s' is not a fresh identifier (letters, digits, _; not a variable or function name; unique)",
                           s ? s : "(null)");
    }
    fg_mask_expr *e = calloc(1, sizeof *e);
    if (!e || !(e->n = malloc(sizeof(node) * FG_MASK_MAX_NODES)) || (nc && !(e->const_names = calloc((size_t)nc, sizeof(char *))))) {
        fg_mask_expr_free(e);
        return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 0; i < nc; ++i, e->nconst = i)
        if (!(e->const_names[i] = fg_strdupf("%s", cn[i]))) { fg_mask_expr_free(e); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); }
    e->nconst = nc;
    parser p = {text, 0, e, cn, nc, 0, err, 0};
    e->root = parse_expr(&p);
    if (e->root >= 0) {
        skip_ws(&p);
        if (text[p.pos]) fail_at(&p, p.pos, "unexpected text after the expression");
    }
    if (p.failed || e->root < 0) {
        if (!p.failed) fg_fail(err, FG_ERR_PATTERN, "mask expression: cannot parse '%s'", text);
        fg_mask_expr_free(e);
        return FG_ERR_PATTERN;
    }
    *out = e;
    return FG_OK;
}

/* ---- evaluation: 64-bit two's complement, wrapping ---------------------- */

static int64_t wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static int64_t wrap_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static int64_t wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static int64_t safe_div(int64_t a, int64_t b) { return b == 0 ? 0 : b == -1 ? wrap_sub(0, a) : a / b; }
static int64_t safe_mod(int64_t a, int64_t b) { return b == 0 || b == -1 ? 0 : a % b; }

static int64_t eval_node(const fg_mask_expr *e, int i, const fg_mask_env *env) {
    const node *x = &e->n[i];
    switch (x->op) {
    case N_NUM: return x->v;
    case N_VAR:
        switch ((int)x->v) {
        case V_B: return env->b;
        case V_H: return env->h;
        case V_Q: return env->q_idx;
        case V_KV: return env->kv_idx;
        case V_SQ: return env->seqlen_q;
        default: return env->seqlen_k;
        }
    case N_CONST: return env->consts ? env->consts[x->v] : 0;
    case N_NEG: return wrap_sub(0, eval_node(e, x->a, env));
    case N_NOT: return !eval_node(e, x->a, env);
    case N_AND: return eval_node(e, x->a, env) && eval_node(e, x->b, env);
    case N_OR: return eval_node(e, x->a, env) || eval_node(e, x->b, env);
    case N_SEL: return eval_node(e, x->a, env) ? eval_node(e, x->b, env) : eval_node(e, x->c, env);
    case N_ABS: { int64_t a = eval_node(e, x->a, env); return a < 0 ? wrap_sub(0, a) : a; }
    default: break;
    }
    const int64_t a = eval_node(e, x->a, env), b = eval_node(e, x->b, env);
    switch (x->op) {
    case N_ADD: return wrap_add(a, b);
    case N_SUB: return wrap_sub(a, b);
    case N_MUL: return wrap_mul(a, b);
    case N_DIV: return safe_div(a, b);
    case N_MOD: return safe_mod(a, b);
    case N_LT: return a < b;
    case N_LE: return a <= b;
    case N_GT: return a > b;
    case N_GE: return a >= b;
    case N_EQ: return a == b;
    case N_NE: return a != b;
    case N_MIN: return a < b ? a : b;
    case N_MAX: return a > b ? a : b;
    }
    return 0;
}

int64_t fg_mask_expr_eval(const fg_mask_expr *e, const fg_mask_env *env) { return eval_node(e, e->root, env); }

/* ---- rendering ---------------------------------------------------------- */

typedef struct sbuf { char *s; size_t n, cap; int oom; } sbuf;

static void put(sbuf *b, const char *fmt, ...) FG_PRINTF(2, 3);
#include <stdarg.h>
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)k;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = 1; return; }
        b->s = s;
        b->cap = cap;
    }
}

static const char *infix(int op) {
    static const char *t[] = {[N_ADD] = "+", [N_SUB] = "-", [N_MUL] = "*", [N_DIV] = "/", [N_MOD] = "%",
                              [N_LT] = "<", [N_LE] = "<=", [N_GT] = ">", [N_GE] = ">=", [N_EQ] = "==",
                              [N_NE] = "!=", [N_AND] = "&&", [N_OR] = "||"};
    return t[op];
}

static void render(const fg_mask_expr *e, int i, fg_mask_render_mode m, const int64_t *consts, sbuf *b) {
    const node *x = &e->n[i];
    const int cuda = m == FG_MASK_RENDER_CUDA || m == FG_MASK_RENDER_CUDA32;
    static const char *py_fn[] = {[N_DIV] = "_div", [N_MOD] = "_mod", [N_LT] = "_lt", [N_LE] = "_le", [N_GT] = "_gt",
                                  [N_GE] = "_ge", [N_EQ] = "_eq", [N_NE] = "_ne", [N_AND] = "_and", [N_OR] = "_or",
                                  [N_MIN] = "_min", [N_MAX] = "_max"};
    /* distinct names per width, so that an int argument (a comparison) next
     * to a long long one never makes an overload ambiguous */
    /* 64 bits: + - * through unsigned helpers, whose wrapping is defined
     * (signed overflow is undefined in C++, and NVRTC folded it: the kernel
     * then disagreed with the wrapping host evaluator); 32 bits is used only
     * where no subexpression can overflow (fg_mask_expr_fits_int32) */
    static const char *cu_fn[] = {[N_ADD] = "fg::mx_add64", [N_SUB] = "fg::mx_sub64", [N_MUL] = "fg::mx_mul64",
                                  [N_DIV] = "fg::mx_div64", [N_MOD] = "fg::mx_mod64", [N_MIN] = "fg::mx_min64", [N_MAX] = "fg::mx_max64"};
    static const char *cu32_fn[] = {[N_DIV] = "fg::mx_div32", [N_MOD] = "fg::mx_mod32", [N_MIN] = "fg::mx_min32", [N_MAX] = "fg::mx_max32"};
    switch (x->op) {
    case N_NUM: put(b, m == FG_MASK_RENDER_CUDA ? "%lldll" : "%lld", (long long)x->v); return;
    case N_VAR:
        if (m == FG_MASK_RENDER_CUDA) put(b, x->v >= V_SQ ? "(long long)p.%s" : "(long long)%s", var_names[x->v]);
        else if (m == FG_MASK_RENDER_CUDA32 && x->v >= V_SQ) put(b, "p.%s", var_names[x->v]);
        else put(b, "%s", var_names[x->v]);
        return;
    case N_CONST:
        if (m == FG_MASK_RENDER_CUDA) put(b, "p.mask_c[%d]", (int)x->v);
        else if (m == FG_MASK_RENDER_CUDA32) put(b, "(int)p.mask_c[%d]", (int)x->v);
        else if (m == FG_MASK_RENDER_PYTHON) put(b, "_c[%d]", (int)x->v);
        else put(b, "%s", e->const_names[x->v]);
        return;
    case N_NEG:
        put(b, m == FG_MASK_RENDER_CUDA ? "fg::mx_neg64(" : cuda ? "fg::mx_neg32(" : "(-");
        render(e, x->a, m, consts, b);
        put(b, ")");
        return;
    case N_NOT:
        put(b, m == FG_MASK_RENDER_PYTHON ? "_not(" : "(!");
        render(e, x->a, m, consts, b);
        put(b, ")");
        return;
    case N_ABS:
        put(b, m == FG_MASK_RENDER_PYTHON ? "_abs(" : m == FG_MASK_RENDER_CUDA ? "fg::mx_abs64(" : cuda ? "fg::mx_abs32(" : "abs(");
        render(e, x->a, m, consts, b);
        put(b, ")");
        return;
    case N_SEL:
        if (m == FG_MASK_RENDER_PYTHON) {
            put(b, "_sel(");
            render(e, x->a, m, consts, b); put(b, ", ");
            render(e, x->b, m, consts, b); put(b, ", ");
            render(e, x->c, m, consts, b); put(b, ")");
        } else {
            put(b, "(");
            render(e, x->a, m, consts, b); put(b, " ? ");
            render(e, x->b, m, consts, b); put(b, " : ");
            render(e, x->c, m, consts, b); put(b, ")");
        }
        return;
    default: break;
    }
    const int fn = (m == FG_MASK_RENDER_PYTHON && x->op != N_ADD && x->op != N_SUB && x->op != N_MUL) ||
                   (m == FG_MASK_RENDER_CUDA && cu_fn[x->op]) || (m == FG_MASK_RENDER_CUDA32 && cu32_fn[x->op]) || (m == FG_MASK_RENDER_TEXT && (x->op == N_MIN || x->op == N_MAX));
    if (fn) {
        const char *name = m == FG_MASK_RENDER_PYTHON ? py_fn[x->op] : m == FG_MASK_RENDER_CUDA ? cu_fn[x->op] : cuda ? cu32_fn[x->op]
                                                                                               : x->op == N_MIN ? "min" : "max";
        put(b, "%s(", name);
        render(e, x->a, m, consts, b); put(b, ", ");
        render(e, x->b, m, consts, b); put(b, ")");
    } else {
        put(b, "(");
        render(e, x->a, m, consts, b);
        put(b, " %s ", infix(x->op));
        render(e, x->b, m, consts, b);
        put(b, ")");
    }
}

char *fg_mask_expr_render(const fg_mask_expr *e, fg_mask_render_mode m, const int64_t *consts) {
    sbuf b = {0};
    render(e, e->root, m, consts, &b);
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* ---- block classification ----------------------------------------------- */

typedef struct ival { int64_t lo, hi; } ival;
static const ival ANY = {INT64_MIN, INT64_MAX};
static const ival BOOL01 = {0, 1};

static ival iv_const(int64_t v) { ival r = {v, v}; return r; }
static int definitely_zero(ival a) { return a.lo == 0 && a.hi == 0; }
static int definitely_nonzero(ival a) { return a.lo > 0 || a.hi < 0; }

static ival iv_from4(int64_t a, int64_t b, int64_t c, int64_t d) {
    ival r = {a, a};
    const int64_t v[3] = {b, c, d};
    for (int i = 0; i < 3; ++i) {
        if (v[i] < r.lo) r.lo = v[i];
        if (v[i] > r.hi) r.hi = v[i];
    }
    return r;
}

/* vars: the intervals of b, h, q_idx, kv_idx, seqlen_q, seqlen_k */
static ival iv_node(const fg_mask_expr *e, int i, const ival *vars, const int64_t *consts) {
    const node *x = &e->n[i];
    ival a, b, r;
    int64_t t1, t2, t3, t4;
    switch (x->op) {
    case N_NUM: return iv_const(x->v);
    case N_CONST: return iv_const(consts ? consts[x->v] : 0);
    case N_VAR: return vars[x->v];
    default: break;
    }
    a = iv_node(e, x->a, vars, consts);
    switch (x->op) {
    case N_NEG:
        if (a.lo == INT64_MIN) return ANY;
        r.lo = -a.hi; r.hi = -a.lo; return r;
    case N_NOT:
        return definitely_zero(a) ? iv_const(1) : definitely_nonzero(a) ? iv_const(0) : BOOL01;
    case N_ABS:
        if (a.lo == INT64_MIN) return ANY;
        if (a.lo >= 0) return a;
        if (a.hi <= 0) { r.lo = -a.hi; r.hi = -a.lo; return r; }
        r.lo = 0; r.hi = -a.lo > a.hi ? -a.lo : a.hi; return r;
    case N_AND:
        if (definitely_zero(a)) return iv_const(0);
        b = iv_node(e, x->b, vars, consts);
        if (definitely_zero(b)) return iv_const(0);
        return definitely_nonzero(a) && definitely_nonzero(b) ? iv_const(1) : BOOL01;
    case N_OR:
        if (definitely_nonzero(a)) return iv_const(1);
        b = iv_node(e, x->b, vars, consts);
        if (definitely_nonzero(b)) return iv_const(1);
        return definitely_zero(a) && definitely_zero(b) ? iv_const(0) : BOOL01;
    case N_SEL: {
        if (definitely_nonzero(a)) return iv_node(e, x->b, vars, consts);
        if (definitely_zero(a)) return iv_node(e, x->c, vars, consts);
        ival y = iv_node(e, x->b, vars, consts), z = iv_node(e, x->c, vars, consts);
        r.lo = y.lo < z.lo ? y.lo : z.lo; r.hi = y.hi > z.hi ? y.hi : z.hi; return r;
    }
    default: break;
    }
    b = iv_node(e, x->b, vars, consts);
    switch (x->op) {
    case N_ADD:
        if (__builtin_add_overflow(a.lo, b.lo, &r.lo) || __builtin_add_overflow(a.hi, b.hi, &r.hi)) return ANY;
        return r;
    case N_SUB:
        if (__builtin_sub_overflow(a.lo, b.hi, &r.lo) || __builtin_sub_overflow(a.hi, b.lo, &r.hi)) return ANY;
        return r;
    case N_MUL:
        if (__builtin_mul_overflow(a.lo, b.lo, &t1) || __builtin_mul_overflow(a.lo, b.hi, &t2) ||
            __builtin_mul_overflow(a.hi, b.lo, &t3) || __builtin_mul_overflow(a.hi, b.hi, &t4))
            return ANY;
        return iv_from4(t1, t2, t3, t4);
    case N_DIV:
        /* truncating division by a constant of one sign is monotonic */
        if (b.lo != b.hi || b.lo == 0 || b.lo == -1) return b.lo > 0 || b.hi < -1 ? iv_from4(safe_div(a.lo, b.lo), safe_div(a.lo, b.hi), safe_div(a.hi, b.lo), safe_div(a.hi, b.hi)) : ANY;
        return iv_from4(a.lo / b.lo, a.hi / b.lo, a.lo / b.lo, a.hi / b.lo);
    case N_MOD: {
        if (b.lo != b.hi || b.lo == 0 || b.lo == -1 || b.lo == INT64_MIN) return ANY;
        const int64_t c = b.lo < 0 ? -b.lo : b.lo;
        /* the width in unsigned arithmetic: exact for any lo <= hi (a signed
         * hi - lo overflows for [INT64_MIN, 0] and made mixed blocks full) */
        const int narrow = (uint64_t)a.hi - (uint64_t)a.lo < (uint64_t)c && a.lo % c <= a.hi % c;
        if (a.lo >= 0) {
            if (narrow) { r.lo = a.lo % c; r.hi = a.hi % c; return r; }
            r.lo = 0; r.hi = c - 1; return r;
        }
        if (a.hi <= 0) {
            if (narrow) { r.lo = a.lo % c; r.hi = a.hi % c; return r; }
            r.lo = -(c - 1); r.hi = 0; return r;
        }
        r.lo = -(c - 1); r.hi = c - 1; return r;
    }
    case N_LT: return a.hi < b.lo ? iv_const(1) : a.lo >= b.hi ? iv_const(0) : BOOL01;
    case N_LE: return a.hi <= b.lo ? iv_const(1) : a.lo > b.hi ? iv_const(0) : BOOL01;
    case N_GT: return a.lo > b.hi ? iv_const(1) : a.hi <= b.lo ? iv_const(0) : BOOL01;
    case N_GE: return a.lo >= b.hi ? iv_const(1) : a.hi < b.lo ? iv_const(0) : BOOL01;
    case N_EQ: return a.lo == a.hi && b.lo == b.hi && a.lo == b.lo ? iv_const(1) : (a.hi < b.lo || b.hi < a.lo) ? iv_const(0) : BOOL01;
    case N_NE: return a.lo == a.hi && b.lo == b.hi && a.lo == b.lo ? iv_const(0) : (a.hi < b.lo || b.hi < a.lo) ? iv_const(1) : BOOL01;
    case N_MIN: r.lo = a.lo < b.lo ? a.lo : b.lo; r.hi = a.hi < b.hi ? a.hi : b.hi; return r;
    case N_MAX: r.lo = a.lo > b.lo ? a.lo : b.lo; r.hi = a.hi > b.hi ? a.hi : b.hi; return r;
    }
    return ANY;
}

int fg_mask_expr_classify(const fg_mask_expr *e, const fg_mask_env *env, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                          fg_mask_budget *budget) {
    if (q1 < q0 || k1 < k0) return 0;
    if (budget && (budget->interval_nodes -= e->count) < 0) return 1;
    const ival vars[6] = {iv_const(env->b), iv_const(env->h), {q0, q1}, {k0, k1}, iv_const(env->seqlen_q), iv_const(env->seqlen_k)};
    const ival r = iv_node(e, e->root, vars, env->consts);
    if (definitely_nonzero(r)) return 2;
    if (definitely_zero(r)) return 0;
    fg_mask_env x = *env;
    int seen_true = 0, seen_false = 0;
    for (int64_t q = q0; q <= q1; ++q) {
        x.q_idx = q;
        for (int64_t k = k0; k <= k1; ++k) {
            if (budget && budget->elements-- <= 0) return 1; /* undecided: partial is always correct */
            x.kv_idx = k;
            if (eval_node(e, e->root, &x)) seen_true = 1;
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
    for (int i = 0; i < e->count; ++i) {
        const ival r = iv_node(e, i, vars, consts);
        if (r.lo <= INT32_MIN || r.hi > INT32_MAX) return 0;
    }
    return 1;
}
