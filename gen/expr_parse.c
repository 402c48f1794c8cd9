/* expr_parse.c: the shared parser of the expression languages (see
 * expr_parse.h).  Recursive descent with C's precedence; every node lands in
 * one array that the languages' passes walk. */
#include "gen/expr_parse.h"

#include <ctype.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t pos;
    fg_xtree *t;
    const fg_xlang *L;
    int depth;
    fg_error *err;
    int failed;
    unsigned char nd[FG_X_MAX_NODES]; /* each node's depth in the tree */
} parser;

static int fail_at(parser *p, size_t col, const char *what) {
    if (!p->failed)
        fg_fail(p->err, FG_ERR_PATTERN, "%s, column %zu: %s\n  %s\n  %*s^", p->L->what, col + 1, what, p->s, (int)col, "");
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

static int add_node(parser *p, int op, int a, int b, int c, int64_t v, size_t col) {
    if (p->failed) return -1;
    if (p->t->count >= FG_X_MAX_NODES) return fail_at(p, p->pos, "expression too large");
    /* The tree's depth is bounded, not only the text's nesting: a flat
     * "a + b + c + ..." nests one level a term in its canonical text, which
     * must parse back (fg_score_expr_derivative re-parses pieces of it; a
     * 100-term sum once parsed, and its derivative was refused as "nested
     * too deeply" at a column the user never wrote).  Each tree level costs
     * at most two levels of that text (a parenthesis and a unary sign). */
    int d = 1;
    const int ch[3] = {a, b, c};
    for (int i = 0; i < 3; ++i)
        if (ch[i] >= 0 && p->nd[ch[i]] + 1 > d) d = p->nd[ch[i]] + 1;
    if (d > FG_X_MAX_TREE_DEPTH)
        return fail_at(p, col, "expression nested too deeply (more than " FG_X_STR(FG_X_MAX_TREE_DEPTH)
                               " operations deep; its canonical form could not be read back)");
    p->nd[p->t->count] = (unsigned char)d;
    fg_xnode *x = &p->t->n[p->t->count];
    x->op = op; x->a = a; x->b = b; x->c = c; x->v = v; x->f = 0; x->col = (int)col;
    return p->t->count++;
}

static int parse_expr(parser *p);

/* A float literal: digits, then '.' digits and/or an exponent.  Converted
 * with strtof in any locale (the '.' becomes the locale's radix first). */
static int parse_float(parser *p, size_t start) {
    size_t end = p->pos;
    if (p->s[end] == '.') {
        end++;
        while (isdigit((unsigned char)p->s[end])) end++;
    }
    if (p->s[end] == 'e' || p->s[end] == 'E') {
        size_t k = end + 1;
        if (p->s[k] == '+' || p->s[k] == '-') k++;
        if (!isdigit((unsigned char)p->s[k])) return fail_at(p, k, "expected the digits of an exponent");
        while (isdigit((unsigned char)p->s[k])) k++;
        end = k;
    }
    char buf[80];
    if (end - start >= sizeof buf) return fail_at(p, start, "float literal too long");
    memcpy(buf, p->s + start, end - start);
    buf[end - start] = 0;
    const char radix = localeconv()->decimal_point[0];
    for (char *c = buf; *c; ++c)
        if (*c == '.') *c = radix;
    const float f = strtof(buf, NULL);
    if (!isfinite(f)) return fail_at(p, start, "float literal out of range (the largest float is about 3.4e38; infinity is spelled inf)");
    p->pos = end;
    if (isalpha((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_' || p->s[p->pos] == '.')
        return fail_at(p, p->pos, "malformed number");
    const int r = add_node(p, XN_FLT, -1, -1, -1, 0, start);
    if (r >= 0) p->t->n[r].f = f;
    return r;
}

static int parse_number(parser *p, size_t start) {
    const uint64_t limit = (uint64_t)1 << 62;
    uint64_t v = 0;
    int too_large = 0;
    while (isdigit((unsigned char)p->s[p->pos])) {
        const uint64_t d = (uint64_t)(p->s[p->pos] - '0');
        /* checked before the multiply, so no digit string wraps */
        if (v > (limit - d) / 10) too_large = 1;
        else v = v * 10 + d;
        p->pos++;
    }
    const char ch = p->s[p->pos];
    if (p->L->floats && (ch == '.' || ch == 'e' || ch == 'E')) return parse_float(p, start);
    if (too_large) return fail_at(p, start, "integer literal too large (limit 2^62)");
    if (isalpha((unsigned char)ch) || ch == '_' || ch == '.')
        return fail_at(p, p->pos, p->L->floats ? "malformed number" : "only decimal integer literals are allowed");
    return add_node(p, XN_NUM, -1, -1, -1, (int64_t)v, start);
}

static int parse_call(parser *p, const fg_xfunc *f, size_t start) {
    p->pos++; /* '(' */
    int arg[3] = {-1, -1, -1};
    char m[128];
    for (int i = 0; i < f->nargs; ++i) {
        if (i && !accept(p, ",")) {
            snprintf(m, sizeof m, "expected ',' (%s takes %d arguments)", f->name, f->nargs);
            return fail_at(p, p->pos, m);
        }
        if ((arg[i] = parse_expr(p)) < 0) return -1;
    }
    if (!accept(p, ")")) {
        snprintf(m, sizeof m, "expected ')' (%s takes %d argument%s)", f->name, f->nargs, f->nargs > 1 ? "s" : "");
        return fail_at(p, p->pos, m);
    }
    return add_node(p, f->op, arg[0], arg[1], arg[2], 0, start);
}

static int find(const char *id, const char *const *names, int n) {
    for (int i = 0; i < n; ++i)
        if (!strcmp(id, names[i])) return i;
    return -1;
}

static int parse_name(parser *p, size_t start) {
    const fg_xlang *L = p->L;
    char id[FG_X_MAX_NAME];
    size_t n = 0;
    while (isalnum((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_') {
        if (n + 1 >= sizeof id) return fail_at(p, start, "identifier too long");
        id[n++] = p->s[p->pos++];
    }
    id[n] = 0;
    skip_ws(p);
    char m[384];
    if (p->s[p->pos] == '(') {
        for (int i = 0; i < L->nfuncs; ++i)
            if (!strcmp(id, L->funcs[i].name)) return parse_call(p, &L->funcs[i], start);
        int k = snprintf(m, sizeof m, "unknown function '%s' (the functions are ", id);
        for (int i = 0; i < L->nfuncs && k > 0 && (size_t)k < sizeof m; ++i)
            k += snprintf(m + k, sizeof m - (size_t)k, "%s%s", i ? ", " : "", L->funcs[i].name);
        if (k > 0 && (size_t)k < sizeof m) snprintf(m + k, sizeof m - (size_t)k, ")");
        return fail_at(p, start, m);
    }
    const int tbl = find(id, L->tables, L->ntables);
    if (L->ntables && p->s[p->pos] == '[') {
        if (tbl < 0) {
            snprintf(m, sizeof m, "'%s' is not a table (only the tables passed with the expression take [index])", id);
            return fail_at(p, start, m);
        }
        p->pos++;
        const int a = parse_expr(p);
        if (a < 0) return -1;
        if (!accept(p, "]")) return fail_at(p, p->pos, "expected ']'");
        return add_node(p, XN_TBL, a, -1, -1, tbl, start);
    }
    if (tbl >= 0) {
        snprintf(m, sizeof m, "table '%s' needs an index: %s[...]", id, id);
        return fail_at(p, start, m);
    }
    int i = find(id, L->vars, L->nvars);
    if (i >= 0) return add_node(p, XN_VAR, -1, -1, -1, i, start);
    if (L->floats && !strcmp(id, "inf")) { /* the float infinity (-inf: a logit masked out) */
        const int r = add_node(p, XN_FLT, -1, -1, -1, 0, start);
        if (r >= 0) p->t->n[r].f = INFINITY;
        return r;
    }
    if ((i = find(id, L->consts, L->nconst)) >= 0) return add_node(p, XN_CONST, -1, -1, -1, i, start);
    int k = snprintf(m, sizeof m, "unknown name '%s' (variables:", id);
    for (int j = 0; j < L->nvars && k > 0 && (size_t)k < sizeof m; ++j) k += snprintf(m + k, sizeof m - (size_t)k, " %s", L->vars[j]);
    if (k > 0 && (size_t)k < sizeof m) snprintf(m + k, sizeof m - (size_t)k, "%s)", L->const_hint ? L->const_hint : "");
    return fail_at(p, start, m);
}

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
    if (isdigit((unsigned char)ch)) return parse_number(p, start);
    if (isalpha((unsigned char)ch) || ch == '_') return parse_name(p, start);
    if (!ch) return fail_at(p, start, "unexpected end of expression");
    char m[64];
    snprintf(m, sizeof m, "unexpected character '%c'", ch);
    return fail_at(p, start, m);
}

/* The text's nesting (the recursion's depth) counts once per parenthesis,
 * ?: and argument list (parse_expr) and once per unary sign. */
static int parse_unary(parser *p) {
    skip_ws(p);
    const size_t col = p->pos;
    int r;
    const char *const signs[3] = {"-", "!", "+"};
    int sign = -1;
    for (int i = 0; i < 3 && sign < 0; ++i)
        if (accept(p, signs[i])) sign = i;
    if (sign < 0) return parse_primary(p);
    if (++p->depth > FG_X_MAX_DEPTH) return fail_at(p, p->pos, "expression nested too deeply");
    r = parse_unary(p);
    if (r >= 0 && sign < 2) r = add_node(p, sign == 0 ? XN_NEG : XN_NOT, r, -1, -1, 0, col);
    p->depth--;
    return r;
}

typedef struct binop { const char *tok; int op; } binop;

static const binop levels[][5] = {
    {{"||", XN_OR}},
    {{"&&", XN_AND}},
    {{"==", XN_EQ}, {"!=", XN_NE}},
    {{"<=", XN_LE}, {">=", XN_GE}, {"<", XN_LT}, {">", XN_GT}},
    {{"+", XN_ADD}, {"-", XN_SUB}},
    {{"*", XN_MUL}, {"/", XN_DIV}, {"%", XN_MOD}},
};
#define NLEVELS 6

static int parse_level(parser *p, int level) {
    if (level == NLEVELS) return parse_unary(p);
    int a = parse_level(p, level + 1);
    while (a >= 0) {
        int op = -1;
        skip_ws(p);
        const size_t col = p->pos;
        for (int i = 0; i < 5 && levels[level][i].tok; ++i)
            if (accept(p, levels[level][i].tok)) { op = levels[level][i].op; break; }
        if (op < 0) break;
        int b = parse_level(p, level + 1);
        if (b < 0) return b;
        a = add_node(p, op, a, b, -1, 0, col);
    }
    return a;
}

static int parse_expr(parser *p) {
    if (++p->depth > FG_X_MAX_DEPTH) return fail_at(p, p->pos, "expression nested too deeply");
    int c = parse_level(p, 0);
    skip_ws(p);
    const size_t col = p->pos;
    if (c >= 0 && accept(p, "?")) {
        int x = parse_expr(p);
        if (x < 0) return x;
        if (!accept(p, ":")) return fail_at(p, p->pos, "expected ':' of '?:'");
        int y = parse_expr(p);
        if (y < 0) return y;
        c = add_node(p, XN_SEL, c, x, y, 0, col);
    }
    p->depth--;
    return c;
}

int fg_xname_ok(const fg_xlang *L, const char *s) {
    int ok = s && (isalpha((unsigned char)s[0]) || s[0] == '_') && strlen(s) < FG_X_MAX_NAME;
    for (const char *t = s; ok && *t; ++t) ok = isalnum((unsigned char)*t) || *t == '_';
    ok = ok && find(s, L->vars, L->nvars) < 0 && !(L->floats && !strcmp(s, "inf"));
    for (int j = 0; ok && j < L->nfuncs; ++j) ok = strcmp(s, L->funcs[j].name) != 0;
    return ok;
}

fg_status fg_xparse(const char *text, size_t max_text, const fg_xlang *L, fg_xtree *t, fg_error *err) {
    t->n = NULL;
    t->count = 0;
    t->root = -1;
    if (!text) return fg_fail(err, FG_ERR_PATTERN, "%s is NULL", L->what);
    if (strlen(text) > max_text) return fg_fail(err, FG_ERR_PATTERN, "%s is %zu characters; the limit is %zu", L->what, strlen(text), max_text);
    if (!(t->n = malloc(sizeof(fg_xnode) * FG_X_MAX_NODES))) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    parser p = {text, 0, t, L, 0, err, 0, {0}};
    t->root = parse_expr(&p);
    if (t->root >= 0) {
        skip_ws(&p);
        if (text[p.pos]) fail_at(&p, p.pos, "unexpected text after the expression");
    }
    if (p.failed || t->root < 0) {
        if (!p.failed) fg_fail(err, FG_ERR_PATTERN, "%s: cannot parse '%s'", L->what, text);
        free(t->n);
        t->n = NULL;
        return FG_ERR_PATTERN;
    }
    return FG_OK;
}

int64_t fg_x_binop(int op, int64_t a, int64_t b) {
    switch (op) {
    case XN_ADD: return fg_x_add(a, b);
    case XN_SUB: return fg_x_sub(a, b);
    case XN_MUL: return fg_x_mul(a, b);
    case XN_DIV: return fg_x_div(a, b);
    case XN_MOD: return fg_x_mod(a, b);
    case XN_LT: return a < b;
    case XN_LE: return a <= b;
    case XN_GT: return a > b;
    case XN_GE: return a >= b;
    case XN_EQ: return a == b;
    case XN_NE: return a != b;
    case XN_MIN: return a < b ? a : b;
    case XN_MAX: return a > b ? a : b;
    }
    return 0;
}

void fg_xbuf_put(fg_xbuf *b, const char *fmt, ...) {
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
