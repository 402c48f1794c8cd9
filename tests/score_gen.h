/* score_gen.h: random typed score expressions for the tests, generated as
 * trees with their own evaluator, independent of gen/score_expr.c:
 * integers wrap in uint64; a float operation is computed in double and
 * rounded to float, which gives the fp32 result exactly for + - * / (double
 * has more than 2 * 24 + 2 bits); tanh, exp2, log2 in double, rounded.
 * Names: float constant c, int constant n, float table tf (7 elements), int
 * table ti (5 elements), as the tests declare them. */
#ifndef FG_SCORE_GEN_H
#define FG_SCORE_GEN_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/score_expr.h"

static uint64_t sg_state;
static inline void sg_seed(uint64_t s) { sg_state = s * 0xd1b54a32d192ed03ull; }
static inline uint64_t sg_next(void) {
    uint64_t z = (sg_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline int sg_pick(int n) { return (int)(sg_next() % (uint64_t)n); }

enum { SG_LEAF_F, SG_LEAF_I, SG_SCORE, SG_VAR, SG_CF, SG_CI, SG_TF, SG_TI, SG_UN, SG_BIN, SG_CMP, SG_SEL, SG_LOGIC };

typedef struct sg_node {
    int kind, isf;  /* what, and whether its value is a float */
    char op[8];     /* the operator or function's text */
    int a, b, c, var;
    int64_t iv;
    float fv;
} sg_node;

typedef struct sg_tree {
    sg_node n[1024];
    int count, root, transcendental;
    char text[FG_SCORE_MAX_TEXT + 1];
    size_t len;
} sg_tree;

typedef struct sg_env {
    float score, cf[2];
    int64_t b, h, q, kv, ci[2];
    float tf[7];
    int32_t ti[5];
    fg_score_table tables[2];
} sg_env;

static inline int sg_add(sg_tree *t, int kind, int isf, const char *op, int a, int b, int c) {
    if (t->count >= 1024) return -1;
    sg_node *x = &t->n[t->count];
    memset(x, 0, sizeof *x);
    x->kind = kind; x->isf = isf; x->a = a; x->b = b; x->c = c;
    snprintf(x->op, sizeof x->op, "%s", op ? op : "");
    return t->count++;
}

static inline int sg_gen(sg_tree *t, int depth, int want_float);

static inline int sg_leaf(sg_tree *t, int want_float) {
    static const char *const flits[] = {"0.5", "1.0", "2.0", "3.0", "1e-3", "0.1", "30.0", "1.5e10", "7.25", "0.0", "1e-30"};
    static const int64_t ilits[] = {0, 1, 2, 3, 5, 7, 64, 1000, 2147483647, 2147483648LL, 4611686018427387904LL};
    const int r = sg_pick(10);
    int i;
    if (want_float) {
        if (r < 3) return sg_add(t, SG_SCORE, 1, NULL, -1, -1, -1);
        if (r < 6) { i = sg_add(t, SG_LEAF_F, 1, flits[sg_pick(11)], -1, -1, -1); if (i >= 0) t->n[i].fv = strtof(t->n[i].op, NULL); return i; }
        if (r < 8) return sg_add(t, SG_CF, 1, NULL, -1, -1, -1);
        return sg_add(t, SG_TF, 1, NULL, sg_gen(t, 1, 0), -1, -1);
    }
    if (r < 4) { i = sg_add(t, SG_VAR, 0, NULL, -1, -1, -1); if (i >= 0) t->n[i].var = sg_pick(4); return i; }
    if (r < 7) { i = sg_add(t, SG_LEAF_I, 0, NULL, -1, -1, -1); if (i >= 0) t->n[i].iv = ilits[sg_pick(11)]; return i; }
    if (r < 9) return sg_add(t, SG_CI, 0, NULL, -1, -1, -1);
    return sg_add(t, SG_TI, 0, NULL, sg_gen(t, 0, 0), -1, -1);
}

static inline int sg_gen(sg_tree *t, int depth, int want_float) {
    const int r = sg_pick(100);
    if (depth <= 0 || r < 20) return sg_leaf(t, want_float);
    if (r < 55) { /* arithmetic: with a float result, one operand at least is a float */
        static const char *const fops[] = {"+", "-", "*", "/", "min", "max"}, *const iops[] = {"+", "-", "*", "/", "%", "min", "max"};
        const int mix = want_float ? sg_pick(3) : 3; /* 0: float op float, 1: float op int, 2: int op float */
        const int a = sg_gen(t, depth - 1, mix == 0 || mix == 1), b = sg_gen(t, depth - 1, mix == 0 || mix == 2);
        return sg_add(t, SG_BIN, want_float, want_float ? fops[sg_pick(6)] : iops[sg_pick(7)], a, b, -1);
    }
    if (r < 70) {
        static const char *const fun[] = {"-", "abs", "tanh", "exp2", "log2"};
        const char *op = want_float ? fun[sg_pick(5)] : fun[sg_pick(2)];
        if (op[0] == 't' || op[0] == 'e' || op[0] == 'l') t->transcendental = 1;
        /* - and abs keep their operand's type; tanh, exp2, log2 convert an int */
        const int arg_float = op[0] == '-' || op[0] == 'a' ? want_float : sg_pick(4) > 0;
        return sg_add(t, SG_UN, want_float, op, sg_gen(t, depth - 1, arg_float), -1, -1);
    }
    if (r < 82) {
        if (want_float || sg_pick(2)) {
            const int c = sg_gen(t, depth - 1, 0), x = sg_gen(t, depth - 1, want_float), y = sg_gen(t, depth - 1, want_float && sg_pick(2));
            return sg_add(t, SG_SEL, want_float, sg_pick(2) ? "where" : "?", c, x, y);
        }
        return sg_add(t, SG_LOGIC, 0, sg_pick(3) == 0 ? "!" : sg_pick(2) ? "&&" : "||", sg_gen(t, depth - 1, 0), sg_gen(t, depth - 1, 0), -1);
    }
    if (want_float) return sg_leaf(t, 1);
    static const char *const cmp[] = {"<", "<=", ">", ">=", "==", "!="};
    const int f = sg_pick(2);
    return sg_add(t, SG_CMP, 0, cmp[sg_pick(6)], sg_gen(t, depth - 1, f), sg_gen(t, depth - 1, f && sg_pick(2)), -1);
}

static inline void sg_put(sg_tree *t, const char *s) {
    const size_t k = strlen(s);
    if (t->len + k < sizeof t->text) { memcpy(t->text + t->len, s, k + 1); t->len += k; }
    else t->len = sizeof t->text; /* too long: marked */
}

static inline void sg_print(sg_tree *t, int i) {
    static const char *const vars[] = {"b", "h", "q_idx", "kv_idx"};
    const sg_node *x = &t->n[i];
    char buf[64];
    switch (x->kind) {
    case SG_LEAF_F: sg_put(t, x->op); return;
    case SG_LEAF_I: snprintf(buf, sizeof buf, "%lld", (long long)x->iv); sg_put(t, buf); return;
    case SG_SCORE: sg_put(t, "score"); return;
    case SG_VAR: sg_put(t, vars[x->var]); return;
    case SG_CF: sg_put(t, "c"); return;
    case SG_CI: sg_put(t, "n"); return;
    case SG_TF: case SG_TI: sg_put(t, x->kind == SG_TF ? "tf[" : "ti["); sg_print(t, x->a); sg_put(t, "]"); return;
    case SG_UN: sg_put(t, x->op); sg_put(t, "("); sg_print(t, x->a); sg_put(t, ")"); return;
    case SG_SEL:
        if (x->op[0] == 'w') { sg_put(t, "where("); sg_print(t, x->a); sg_put(t, ", "); sg_print(t, x->b); sg_put(t, ", "); sg_print(t, x->c); sg_put(t, ")"); }
        else { sg_put(t, "("); sg_print(t, x->a); sg_put(t, " ? "); sg_print(t, x->b); sg_put(t, " : "); sg_print(t, x->c); sg_put(t, ")"); }
        return;
    default: break;
    }
    if (x->kind == SG_LOGIC && x->op[0] == '!') { sg_put(t, "!("); sg_print(t, x->a); sg_put(t, ")"); return; }
    if (x->op[0] == 'm') { sg_put(t, x->op); sg_put(t, "("); sg_print(t, x->a); sg_put(t, ", "); sg_print(t, x->b); sg_put(t, ")"); return; }
    sg_put(t, "("); sg_print(t, x->a); sg_put(t, " "); sg_put(t, x->op); sg_put(t, " "); sg_print(t, x->b); sg_put(t, ")");
}

/* A float-valued expression whose text fits the language's limit. */
static inline void sg_generate(sg_tree *t, int depth) {
    do {
        t->count = 0;
        t->transcendental = 0;
        t->len = 0;
        t->root = sg_gen(t, depth, 1);
        if (t->root < 0 || t->count >= 1024) continue;
        t->text[0] = 0;
        sg_print(t, t->root);
    } while (t->root < 0 || t->count >= 1024 || t->len >= sizeof t->text);
}

static inline void sg_random_env(sg_env *v) {
    static const float scores[] = {0.0f, -0.0f, 1.0f, -2.5f, 1e-40f, 1e30f, -1e30f, 3.0e38f, 0.333f};
    static const float cfs[] = {30.0f, 0.5f, -2.0f, 1e-3f, 0.0f};
    static const int64_t cis[] = {0, 1, -1, 7, 100, 2147483647, -2147483648LL, 4611686018427387904LL, INT64_MIN};
    v->score = sg_pick(3) ? (float)((double)(int64_t)(sg_next() % 20001) / 100.0 - 100.0) : scores[sg_pick(9)];
    if (sg_pick(50) == 0) v->score = sg_pick(2) ? INFINITY : NAN;
    v->b = sg_pick(4);
    v->h = sg_pick(8);
    /* positions up to 2^30 + 1024, the range the 32-bit proofs assume */
    const int64_t span = sg_pick(2) ? 300 : ((int64_t)1 << 30) + 1025;
    v->q = (int64_t)(sg_next() % (uint64_t)span);
    v->kv = (int64_t)(sg_next() % (uint64_t)span);
    v->ci[0] = 0;
    v->ci[1] = sg_pick(2) ? sg_pick(100) : cis[sg_pick(9)];
    v->cf[0] = cfs[sg_pick(5)];
    v->cf[1] = 0;
    for (int i = 0; i < 7; ++i) v->tf[i] = (float)(int)(sg_next() % 2001) / 8.0f - 125.0f;
    for (int i = 0; i < 5; ++i) v->ti[i] = (int32_t)(sg_next() >> 32);
    v->ti[sg_pick(5)] = sg_pick(2) ? INT32_MIN : INT32_MAX;
    v->tables[0].data = v->tf; v->tables[0].n = 7;
    v->tables[1].data = v->ti; v->tables[1].n = 5;
}

static inline fg_score_env sg_to_env(const sg_env *v) {
    fg_score_env e = {v->score, v->b, v->h, v->q, v->kv, v->ci, v->cf, v->tables};
    return e;
}

static inline int64_t sg_clamp(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }
static inline double sg_f(double x) { return (double)(float)x; }
static inline double sg_eval(const sg_tree *t, int i, const sg_env *v);

static inline int64_t sg_ieval(const sg_tree *t, int i, const sg_env *v) {
    const sg_node *x = &t->n[i];
    switch (x->kind) {
    case SG_LEAF_I: return x->iv;
    case SG_VAR: return x->var == 0 ? v->b : x->var == 1 ? v->h : x->var == 2 ? v->q : v->kv;
    case SG_CI: return v->ci[1];
    case SG_TI: return v->ti[sg_clamp(sg_ieval(t, x->a, v), 5)];
    case SG_UN: {
        const uint64_t a = (uint64_t)sg_ieval(t, x->a, v);
        return x->op[0] == '-' || (int64_t)a < 0 ? (int64_t)(0 - a) : (int64_t)a;
    }
    case SG_SEL: return sg_ieval(t, x->a, v) ? sg_ieval(t, x->b, v) : sg_ieval(t, x->c, v);
    case SG_LOGIC:
        if (x->op[0] == '!') return !sg_ieval(t, x->a, v);
        if (x->op[0] == '&') return sg_ieval(t, x->a, v) && sg_ieval(t, x->b, v);
        return sg_ieval(t, x->a, v) || sg_ieval(t, x->b, v);
    case SG_CMP: {
        const int f = t->n[x->a].isf || t->n[x->b].isf;
        const double fa = f ? sg_eval(t, x->a, v) : 0, fb = f ? sg_eval(t, x->b, v) : 0;
        const int64_t ia = f ? 0 : sg_ieval(t, x->a, v), ib = f ? 0 : sg_ieval(t, x->b, v);
        switch (x->op[0] + x->op[1]) {
        case '<': return f ? fa < fb : ia < ib;
        case '<' + '=': return f ? fa <= fb : ia <= ib;
        case '>': return f ? fa > fb : ia > ib;
        case '>' + '=': return f ? fa >= fb : ia >= ib;
        case '=' + '=': return f ? fa == fb : ia == ib;
        default: return f ? fa != fb : ia != ib;
        }
    }
    default: break;
    }
    const int64_t a = sg_ieval(t, x->a, v), b = sg_ieval(t, x->b, v);
    switch (x->op[0]) {
    case '+': return (int64_t)((uint64_t)a + (uint64_t)b);
    case '-': return (int64_t)((uint64_t)a - (uint64_t)b);
    case '*': return (int64_t)((uint64_t)a * (uint64_t)b);
    case '/': return b == 0 ? 0 : b == -1 ? (int64_t)(0 - (uint64_t)a) : a / b;
    case '%': return b == 0 || b == -1 ? 0 : a % b;
    default: return (x->op[1] == 'i') == (a < b) ? a : b; /* min, max */
    }
}

/* node i's value; a float node's is a float, an int's converted to float */
static inline double sg_eval(const sg_tree *t, int i, const sg_env *v) {
    const sg_node *x = &t->n[i];
    if (!x->isf) return (double)(float)sg_ieval(t, i, v);
    switch (x->kind) {
    case SG_LEAF_F: return x->fv;
    case SG_SCORE: return v->score;
    case SG_CF: return v->cf[0];
    case SG_TF: return v->tf[sg_clamp(sg_ieval(t, x->a, v), 7)];
    case SG_SEL: return sg_ieval(t, x->a, v) ? sg_eval(t, x->b, v) : sg_eval(t, x->c, v);
    case SG_UN: {
        const double a = sg_eval(t, x->a, v);
        switch (x->op[0]) {
        case '-': return -a;
        case 'a': return fabs(a);
        case 't': return sg_f(tanh(a));
        case 'e': return sg_f(exp2(a));
        default: return sg_f(log2(a));
        }
    }
    default: break;
    }
    const double a = sg_eval(t, x->a, v), b = sg_eval(t, x->b, v);
    switch (x->op[0]) {
    case '+': return sg_f(a + b);
    case '-': return sg_f(a - b);
    case '*': return sg_f(a * b);
    case '/': return sg_f(a / b);
    default: return x->op[1] == 'i' ? fmin(a, b) : fmax(a, b);
    }
}
#endif

/* The derivative of node i with respect to score (forward mode, in double,
 * on sg_eval's float values), and in *mag a bound on the magnitude of the
 * terms it sums, for the rounding error of an fp32 evaluation of it. */
static inline double sg_deriv(const sg_tree *t, int i, const sg_env *v, double *mag) {
    const sg_node *x = &t->n[i];
    *mag = 0;
    if (!x->isf) return 0;
    if (x->kind == SG_SCORE) { *mag = 1; return 1; }
    if (x->kind != SG_UN && x->kind != SG_BIN && x->kind != SG_SEL) return 0;
    if (x->kind == SG_SEL) return sg_ieval(t, x->a, v) ? sg_deriv(t, x->b, v, mag) : sg_deriv(t, x->c, v, mag);
    double ma, mb = 0;
    const double a = sg_eval(t, x->a, v), da = sg_deriv(t, x->a, v, &ma);
    if (x->kind == SG_UN) {
        const double ln2 = 0.69314718055994531;
        switch (x->op[0]) {
        case '-': *mag = ma; return -da;
        case 'a': *mag = ma; return a < 0 ? -da : da;
        /* 1 - tanh^2 cancels where tanh saturates: its terms are of size 1 */
        case 't': *mag = (1 + tanh(a) * tanh(a)) * ma; return (1 - tanh(a) * tanh(a)) * da;
        case 'e': *mag = exp2(a) * ln2 * ma; return exp2(a) * ln2 * da;
        default: *mag = ma / fabs(a * ln2); return da / (a * ln2);
        }
    }
    const double b = sg_eval(t, x->b, v), db = sg_deriv(t, x->b, v, &mb);
    switch (x->op[0]) {
    case '+': *mag = ma + mb; return da + db;
    case '-': *mag = ma + mb; return da - db;
    case '*': *mag = ma * fabs(b) + fabs(a) * mb; return da * b + a * db;
    case '/': *mag = (ma + fabs(a / b) * mb) / fabs(b); return (da - (a / b) * db) / b;
    default:
        if (x->op[1] == 'i') { *mag = a <= b ? ma : mb; return a <= b ? da : db; }
        *mag = a >= b ? ma : mb;
        return a >= b ? da : db;
    }
}
