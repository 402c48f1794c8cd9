/* expr_interval.c: interval arithmetic over the integer operators of an
 * expression tree (see fg_xinterval in expr_parse.h).  The mask language
 * classifies blocks with it; both languages decide with it where 32-bit
 * arithmetic gives the 64-bit result. */
#include "gen/expr_parse.h"

static const fg_ival ANY = {INT64_MIN, INT64_MAX};
static const fg_ival BOOL01 = {0, 1};

/* Whether node i is a float (skipped by the caller's types, or an
 * operation that is float in any expression). */
static int floaty(const fg_xtree *t, int i, const unsigned char *skip) {
    const int op = t->n[i].op;
    return (skip && skip[i]) || op == XN_FLT || fg_xop_float_fn(op);
}

static fg_ival iv_const(int64_t v) { fg_ival r = {v, v}; return r; }
static int definitely_zero(fg_ival a) { return a.lo == 0 && a.hi == 0; }
static int definitely_nonzero(fg_ival a) { return a.lo > 0 || a.hi < 0; }

static fg_ival iv_from4(int64_t a, int64_t b, int64_t c, int64_t d) {
    fg_ival r = {a, a};
    const int64_t v[3] = {b, c, d};
    for (int i = 0; i < 3; ++i) {
        if (v[i] < r.lo) r.lo = v[i];
        if (v[i] > r.hi) r.hi = v[i];
    }
    return r;
}

fg_ival fg_xinterval(const fg_xtree *t, int i, const fg_ival *vars, const int64_t *consts, const unsigned char *skip) {
    const fg_xnode *x = &t->n[i];
    fg_ival a, b, r;
    int64_t t1, t2, t3, t4;
    if ((skip && skip[i]) || fg_xop_float_fn(x->op)) return ANY;
    switch (x->op) {
    case XN_NUM: return iv_const(x->v);
    case XN_CONST: return iv_const(consts ? consts[x->v] : 0);
    case XN_VAR: return vars[x->v];
    case XN_FLT: case XN_TBL: return ANY;
    default: break;
    }
    a = fg_xinterval(t, x->a, vars, consts, skip);
    switch (x->op) {
    case XN_NEG:
        if (a.lo == INT64_MIN) return ANY;
        r.lo = -a.hi; r.hi = -a.lo; return r;
    case XN_NOT:
        return definitely_zero(a) ? iv_const(1) : definitely_nonzero(a) ? iv_const(0) : BOOL01;
    case XN_ABS:
        if (a.lo == INT64_MIN) return ANY;
        if (a.lo >= 0) return a;
        if (a.hi <= 0) { r.lo = -a.hi; r.hi = -a.lo; return r; }
        r.lo = 0; r.hi = -a.lo > a.hi ? -a.lo : a.hi; return r;
    case XN_AND:
        if (definitely_zero(a)) return iv_const(0);
        b = fg_xinterval(t, x->b, vars, consts, skip);
        if (definitely_zero(b)) return iv_const(0);
        return definitely_nonzero(a) && definitely_nonzero(b) ? iv_const(1) : BOOL01;
    case XN_OR:
        if (definitely_nonzero(a)) return iv_const(1);
        b = fg_xinterval(t, x->b, vars, consts, skip);
        if (definitely_nonzero(b)) return iv_const(1);
        return definitely_zero(a) && definitely_zero(b) ? iv_const(0) : BOOL01;
    case XN_SEL: {
        if (definitely_nonzero(a)) return fg_xinterval(t, x->b, vars, consts, skip);
        if (definitely_zero(a)) return fg_xinterval(t, x->c, vars, consts, skip);
        fg_ival y = fg_xinterval(t, x->b, vars, consts, skip), z = fg_xinterval(t, x->c, vars, consts, skip);
        r.lo = y.lo < z.lo ? y.lo : z.lo; r.hi = y.hi > z.hi ? y.hi : z.hi; return r;
    }
    default: break;
    }
    b = fg_xinterval(t, x->b, vars, consts, skip);
    switch (x->op) {
    case XN_ADD:
        if (__builtin_add_overflow(a.lo, b.lo, &r.lo) || __builtin_add_overflow(a.hi, b.hi, &r.hi)) return ANY;
        return r;
    case XN_SUB:
        if (__builtin_sub_overflow(a.lo, b.hi, &r.lo) || __builtin_sub_overflow(a.hi, b.lo, &r.hi)) return ANY;
        return r;
    case XN_MUL:
        if (__builtin_mul_overflow(a.lo, b.lo, &t1) || __builtin_mul_overflow(a.lo, b.hi, &t2) ||
            __builtin_mul_overflow(a.hi, b.lo, &t3) || __builtin_mul_overflow(a.hi, b.hi, &t4))
            return ANY;
        return iv_from4(t1, t2, t3, t4);
    case XN_DIV:
        /* truncating division by a constant of one sign is monotonic */
        if (b.lo != b.hi || b.lo == 0 || b.lo == -1) return b.lo > 0 || b.hi < -1 ? iv_from4(fg_x_div(a.lo, b.lo), fg_x_div(a.lo, b.hi), fg_x_div(a.hi, b.lo), fg_x_div(a.hi, b.hi)) : ANY;
        return iv_from4(a.lo / b.lo, a.hi / b.lo, a.lo / b.lo, a.hi / b.lo);
    case XN_MOD: {
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
    case XN_LT: case XN_LE: case XN_GT: case XN_GE: case XN_EQ: case XN_NE:
        /* a float operand (a score, a float table, tanh/exp2/log2, a skipped
         * node) is not an int64 in [lo, hi]: it may be +-inf, NaN or past
         * 2^63, so no comparison with it is settled (a float > INT64_MAX
         * compare once came out 0 here and its region went to 32 bits) */
        if (floaty(t, x->a, skip) || floaty(t, x->b, skip)) return BOOL01;
        break;
    default: break;
    }
    switch (x->op) {
    case XN_LT: return a.hi < b.lo ? iv_const(1) : a.lo >= b.hi ? iv_const(0) : BOOL01;
    case XN_LE: return a.hi <= b.lo ? iv_const(1) : a.lo > b.hi ? iv_const(0) : BOOL01;
    case XN_GT: return a.lo > b.hi ? iv_const(1) : a.hi <= b.lo ? iv_const(0) : BOOL01;
    case XN_GE: return a.lo >= b.hi ? iv_const(1) : a.hi < b.lo ? iv_const(0) : BOOL01;
    case XN_EQ: return a.lo == a.hi && b.lo == b.hi && a.lo == b.lo ? iv_const(1) : (a.hi < b.lo || b.hi < a.lo) ? iv_const(0) : BOOL01;
    case XN_NE: return a.lo == a.hi && b.lo == b.hi && a.lo == b.lo ? iv_const(0) : (a.hi < b.lo || b.hi < a.lo) ? iv_const(1) : BOOL01;
    case XN_MIN: r.lo = a.lo < b.lo ? a.lo : b.lo; r.hi = a.hi < b.hi ? a.hi : b.hi; return r;
    case XN_MAX: r.lo = a.lo > b.lo ? a.lo : b.lo; r.hi = a.hi > b.hi ? a.hi : b.hi; return r;
    }
    return ANY;
}
