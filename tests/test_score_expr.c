/* Tests of the score-expression language (gen/score_expr.h, issue 13):
 *   - canonical text round trips, types, the built-ins and their values;
 *   - error messages (with the column) for bad input;
 *   - property: random typed expressions, generated as trees by score_gen.h,
 *     printed, parsed and evaluated by fg_score_expr_eval, against
 *     score_gen.h's own evaluation of the tree (integers wrapping in uint64, each float
 *     operation in double rounded to float, which is exact fp32 for + - * /):
 *     bit-identical without tanh/exp2/log2, within 1e-5 relative with them;
 *   - fg_score_expr_derivative against forward-mode differentiation;
 *   - fuzz: random and mutated texts through parse, eval, the renderers and
 *     the derivative:
 *     a clean FG_ERR_PATTERN with a column, or a usable expression.
 * Seeded (FG_TEST_SEED overrides the default). */
#include <math.h>
#include <stdlib.h>

#include "gen/score_expr.h"
#include "gen/score_lib.h"
#include "score_gen.h"
#include "test_util.h"

static const fg_score_name g_consts[] = {{"c", FG_SCORE_FLOAT}, {"n", FG_SCORE_INT}};
static const fg_score_name g_tables[] = {{"tf", FG_SCORE_FLOAT}, {"ti", FG_SCORE_INT}};

static fg_score_expr *parse_ok(const char *text) {
    fg_score_expr *e = NULL;
    fg_error err = {0};
    if (fg_score_expr_parse(text, g_consts, 2, g_tables, 2, &e, &err) != FG_OK) CHECK(0, "'%s' refused: %s", text, err.msg);
    fg_error_clear(&err);
    return e;
}

static void expect_error(const char *text, const char *needle) {
    fg_score_expr *e = NULL;
    fg_error err = {0};
    const fg_status st = fg_score_expr_parse(text, g_consts, 2, g_tables, 2, &e, &err);
    CHECK(st == FG_ERR_PATTERN && !e, "'%s' accepted", text);
    CHECK_CONTAINS(err.msg, needle);
    fg_error_clear(&err);
    fg_score_expr_free(e);
}

static void test_text_and_errors(void) {
    static const char *const pairs[][2] = {
        {"score", "score"},
        {"cap_free + score*2", NULL},
        {"score * 2 - 1.5e-3 / c", "((score * 2) - (0.00150000001 / c))"},
        {"where(q_idx >= kv_idx, score, -1e30)", "((q_idx >= kv_idx) ? score : (-1.00000002e+30))"},
        {"tanh(score) + exp2(log2(abs(score)))", "(tanh(score) + exp2(log2(abs(score))))"},
        {"score + tf[h * 3 + n] * ti[kv_idx - q_idx]", "(score + (tf[((h * 3) + n)] * ti[(kv_idx - q_idx)]))"},
        {"min(score, 3.0) + max(1, 2) * 1.0", "(min(score, 3.0) + (max(1, 2) * 1.0))"},
        {"score + (q_idx % 7 == 0 && !(b > 2))", "(score + (((q_idx % 7) == 0) && (!(b > 2))))"},
        {"where(q_idx >= kv_idx, score + (q_idx - kv_idx), -inf)", "((q_idx >= kv_idx) ? (score + (q_idx - kv_idx)) : (-inf))"},
        {"sin(cos(score)) + tan(b) * c", "(sin(cos(score)) + (tan(b) * c))"},
    };
    for (unsigned i = 0; i < sizeof pairs / sizeof pairs[0]; ++i) {
        if (!pairs[i][1]) { expect_error(pairs[i][0], "unknown name 'cap_free'"); continue; }
        fg_score_expr *e = parse_ok(pairs[i][0]);
        if (!e) continue;
        char *t = fg_score_expr_render(e, FG_SCORE_RENDER_TEXT, NULL);
        CHECK(t && !strcmp(t, pairs[i][1]), "'%s' prints as '%s', want '%s'", pairs[i][0], t ? t : "(null)", pairs[i][1]);
        fg_score_expr *f = t ? parse_ok(t) : NULL;
        char *u = f ? fg_score_expr_render(f, FG_SCORE_RENDER_TEXT, NULL) : NULL;
        CHECK(u && t && !strcmp(t, u), "'%s' does not print back to itself: '%s'", t, u);
        free(t);
        free(u);
        fg_score_expr_free(f);
        fg_score_expr_free(e);
    }
    expect_error("q_idx - kv_idx", "has an integer value; a score must be a float");
    expect_error("score % 2", "column 7: '%' needs integer operands");
    expect_error("where(score, 1.0, 2.0)", "column 7: a condition must be an integer");
    expect_error("score && 1", "column 1: a condition must be an integer");
    expect_error("tf[score]", "column 4: a table index must be an integer");
    expect_error("score + tf", "column 9: table 'tf' needs an index");
    expect_error("score + c[0]", "column 9: 'c' is not a table");
    expect_error("score + sinh(score)", "unknown function 'sinh' (the functions are min, max, abs, tanh, exp2, log2, sin, cos, tan, where)");
    expect_error("where(q_idx > 0, score)", "expected ',' (where takes 3 arguments)");
    expect_error("tanh(score, 1.0)", "expected ')' (tanh takes 1 argument)");
    expect_error("score + 1e39", "column 9: float literal out of range");
    expect_error("score + 1.5x", "malformed number");
    expect_error("score + 2e", "expected the digits of an exponent");
    expect_error("score + tf[1", "expected ']'");
    expect_error("score + seqlen_q", "unknown name 'seqlen_q' (variables: score b h q_idx kv_idx; and the constants");
    expect_error("score + 99999999999999999999", "integer literal too large");
    expect_error("", "unexpected end of expression");
    /* names */
    fg_score_expr *e = NULL;
    fg_error err = {0};
    const fg_score_name bad[] = {{"tanh", FG_SCORE_FLOAT}}, dup[] = {{"c", FG_SCORE_INT}};
    CHECK(fg_score_expr_parse("score", bad, 1, NULL, 0, &e, &err) == FG_ERR_PATTERN, "a constant named tanh");
    CHECK_CONTAINS(err.msg, "score constant name 'tanh' is not a fresh identifier");
    CHECK(fg_score_expr_parse("score", g_consts, 2, dup, 1, &e, &err) == FG_ERR_PATTERN, "a table named like a constant");
    CHECK(fg_score_expr_parse(NULL, NULL, 0, NULL, 0, &e, &err) == FG_ERR_PATTERN && !e, "NULL text");
    fg_error_clear(&err);
}

/* A float compared with an int of exactly 2^63 - 1 (or -2^63) is not
 * settled by the intervals: a float may be past it (or inf, NaN).  The
 * comparison once came out a constant 0 there, the region went to 32 bits
 * and the product below wrapped in the kernel (a review's fuzzer). */
static void test_float_compare_width(void) {
    fg_score_expr *e = parse_ok("where((score * 1e30 > 4611686018427387903 * 2 + 1) * 2147483647 + 1 > 0, 1.0, 2.0)");
    if (!e) return;
    char *c = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, NULL);
    CHECK(c && !strstr(c, "* 2147483647) + 1)"), "the product of a float comparison is 32-bit: %s", c ? c : "(null)");
    fg_score_env env;
    memset(&env, 0, sizeof env);
    env.score = 1.0f;
    CHECK(fg_score_expr_eval(e, &env) == 1.0f, "host value %g", (double)fg_score_expr_eval(e, &env));
    free(c);
    fg_score_expr_free(e);
}

/* Every expression that parses has a canonical text that parses back (the
 * derivative is built from pieces of it): a flat sum nests one level a
 * term there, so the tree's depth is bounded at parse time.  A 111-term
 * sum once parsed, and its backward was refused "nested too deeply" at a
 * column of text the user never wrote. */
static void test_canonical_reparse(void) {
    char text[4096] = "score * (score";
    for (int i = 0; i < 95; ++i) strcat(text, " + score");
    strcat(text, ")");
    fg_score_expr *e = parse_ok(text), *d = NULL, *again = NULL;
    if (!e) return;
    char *t = fg_score_expr_render(e, FG_SCORE_RENDER_TEXT, NULL);
    fg_error err = {0};
    CHECK(t && fg_score_expr_parse(t, g_consts, 2, g_tables, 2, &again, &err) == FG_OK, "canonical text refused: %s",
          err.msg);
    fg_error_clear(&err);
    CHECK(fg_score_expr_derivative(e, &d, &err) == FG_OK, "derivative of a 97-term expression: %s", err.msg);
    fg_error_clear(&err);
    free(t);
    fg_score_expr_free(e);
    fg_score_expr_free(d);
    fg_score_expr_free(again);
    strcpy(text, "score * (score");
    for (int i = 0; i < 110; ++i) strcat(text, " + score");
    strcat(text, ")");
    expect_error(text, "more than 99 operations deep");
}

/* Widths: 32-bit only where the intervals allow, per region. */
static void test_cuda_widths(void) {
    fg_score_expr *e = parse_ok("score + tf[kv_idx - q_idx + n] * (q_idx * 4611686018427387904 > 0)");
    if (!e) return;
    const int64_t small[2] = {0, 100}, huge[2] = {0, (int64_t)1 << 40};
    char *a = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, small), *b = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, huge);
    char *u = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, NULL);
    CHECK(a && strstr(a, "fg::mx_min32(fg::mx_max32(((kv_idx - q_idx) + (int)p.score_ci[1]), 0), (int)p.score_tn[0] - 1)"),
          "index in 32 bits with n = 100: %s", a ? a : "(null)");
    CHECK(a && strstr(a, "fg::mx_mul64((long long)q_idx, 4611686018427387904ll)"), "the product stays 64-bit: %s", a);
    CHECK(b && strstr(b, "fg::mx_max64(fg::mx_add64(fg::mx_sub64((long long)kv_idx, (long long)q_idx), p.score_ci[1]), 0ll)"),
          "index in 64 bits with n = 2^40: %s", b);
    CHECK(u && strstr(u, "p.score_ci[1]), 0ll)"), "an unknown constant is 64-bit: %s", u);
    CHECK(a && strstr(a, "__fadd_rn(s, __fmul_rn("), "float operations rounded, uncontracted: %s", a);
    char h1[65], h2[65], h3[65];
    fg_error err = {0};
    CHECK(fg_score_expr_identity(e, small, h1, &err) == FG_OK && fg_score_expr_identity(e, huge, h2, &err) == FG_OK, "identity");
    const int64_t small2[2] = {0, 200};
    CHECK(fg_score_expr_identity(e, small2, h3, &err) == FG_OK, "identity");
    CHECK(strlen(h1) == 64 && strcmp(h1, h2) && !strcmp(h1, h3), "identity follows the rendering: %s %s %s", h1, h2, h3);
    free(a); free(b); free(u);
    fg_score_expr_free(e);
}

static void test_builtins(void) {
    int n;
    const fg_score_builtin *bi = fg_score_builtins(&n);
    CHECK(n == 5 && fg_score_builtin_find("softcap") == &bi[0] && !fg_score_builtin_find("nope"), "the library");
    for (int i = 0; i < n; ++i)
        for (int w = 0; w < 2; ++w) {
            fg_score_expr *e = NULL;
            fg_error err = {0};
            CHECK(fg_score_builtin_parse(&bi[i], w, &e, &err) == FG_OK, "%s (%d): %s", bi[i].name, w, err.msg);
            fg_error_clear(&err);
            fg_score_expr_free(e);
        }
    /* softcap and its derivative against double precision */
    fg_score_expr *f = NULL, *d = NULL;
    fg_error err = {0};
    const fg_score_builtin *sc = fg_score_builtin_find("softcap");
    if (fg_score_builtin_parse(sc, 0, &f, &err) != FG_OK || fg_score_builtin_parse(sc, 1, &d, &err) != FG_OK) { CHECK(0, "%s", err.msg); return; }
    const float cap = 30.0f;
    for (float s = -200.0f; s <= 200.0f; s += 0.37f) {
        fg_score_env env = {s, 0, 0, 0, 0, NULL, &cap, NULL};
        const double y = 30.0 * tanh((double)s / 30.0), dy = 1.0 - tanh((double)s / 30.0) * tanh((double)s / 30.0);
        const float got = fg_score_expr_eval(f, &env), dgot = fg_score_expr_eval(d, &env);
        CHECK(fabs(got - y) <= 1e-5 * 30, "softcap(%g) = %g, want %g", s, got, y);
        CHECK(fabs(dgot - dy) <= 1e-5, "softcap'(%g) = %g, want %g", s, dgot, dy);
        /* the derivative is the slope: a central difference in double agrees */
        const double num = (30.0 * tanh(((double)s + 1e-3) / 30.0) - 30.0 * tanh(((double)s - 1e-3) / 30.0)) / 2e-3;
        CHECK(fabs(dgot - num) <= 1e-4, "softcap'(%g) = %g, difference quotient %g", s, dgot, num);
    }
    fg_score_expr_free(f);
    fg_score_expr_free(d);
    /* t5_bias: bucket table then bias table, distances clamped to +-(L-1) */
    const fg_score_builtin *t5 = fg_score_builtin_find("t5_bias");
    if (fg_score_builtin_parse(t5, 0, &f, &err) != FG_OK) { CHECK(0, "%s", err.msg); return; }
    const int32_t bucket[5] = {0, 1, 2, 3, 3};          /* L = 3: distances -2..2 */
    const float bias[8] = {0, 10, 20, 30, 100, 110, 120, 130}; /* 2 heads x nb = 4 */
    const fg_score_table tabs[2] = {{bucket, 5}, {bias, 8}};
    const int64_t ci[2] = {3, 4};
    CHECK(fg_score_check_tables(f, tabs, &err) == FG_OK, "tables: %s", err.msg);
    for (int h = 0; h < 2; ++h)
        for (int q = 0; q < 8; ++q)
            for (int k = 0; k < 8; ++k) {
                fg_score_env env = {0.5f, 0, h, q, k, ci, NULL, tabs};
                const int dist = k - q < -2 ? -2 : k - q > 2 ? 2 : k - q;
                const float want = 0.5f + bias[h * 4 + bucket[dist + 2]];
                CHECK(fg_score_expr_eval(f, &env) == want, "t5 h=%d q=%d k=%d", h, q, k);
            }
    const fg_score_table empty[2] = {{bucket, 0}, {bias, 8}};
    CHECK(fg_score_check_tables(f, empty, &err) == FG_ERR_INVALID_ARGUMENT, "an empty table passed");
    CHECK_CONTAINS(err.msg, "score table 'bucket': bad length");
    fg_error_clear(&err);
    fg_score_expr_free(f);
    /* out-of-range indices clamp */
    fg_score_expr *g = parse_ok("tf[q_idx - 5] + 0.0");
    const float tf[3] = {1, 2, 3};
    const int32_t ti[1] = {7};
    const fg_score_table t2[2] = {{tf, 3}, {ti, 1}};
    const int64_t qs[] = {-100, 4, 5, 6, 7, 8, 1000, INT64_MIN, INT64_MAX};
    const float want[] = {1, 1, 1, 2, 3, 3, 3, 3, 3}; /* INT64_MIN - 5 wraps to a large positive; both clamp to the end */
    for (unsigned i = 0; g && i < sizeof qs / sizeof qs[0]; ++i) {
        fg_score_env env = {0, 0, 0, qs[i], 0, ci, NULL, t2};
        CHECK(fg_score_expr_eval(g, &env) == want[i], "tf[%lld - 5] = %g", (long long)qs[i], fg_score_expr_eval(g, &env));
    }
    fg_score_expr_free(g);
    /* missing arrays read as 0, not through NULL */
    fg_score_expr *m = parse_ok("score + c + tf[q_idx] + n + ti[1]");
    fg_score_env bare = {2.5f, 0, 0, 3, 0, NULL, NULL, NULL};
    CHECK(m && fg_score_expr_eval(m, &bare) == 2.5f, "NULL constants and tables");
    const fg_score_table nodata[2] = {{NULL, 0}, {NULL, 5}};
    bare.tables = nodata;
    CHECK(m && fg_score_expr_eval(m, &bare) == 2.5f, "tables without data");
    fg_score_expr_free(m);
}

/* The worked examples of docs/SCORES.md. */
static float eval_builtin(const char *name, int which, fg_score_env env) {
    fg_score_expr *e = NULL;
    fg_error err = {0};
    if (fg_score_builtin_parse(fg_score_builtin_find(name), which, &e, &err) != FG_OK) { CHECK(0, "%s: %s", name, err.msg); return NAN; }
    const float y = fg_score_expr_eval(e, &env);
    fg_score_expr_free(e);
    return y;
}

static void test_doc_examples(void) {
    const float cap = 30.0f, slope[2] = {0.5f, 0.25f};
    fg_score_env env = {.score = 60.0f, .cf = &cap};
    CHECK(fabsf(eval_builtin("softcap", 0, env) - 28.921f) < 1e-3f, "softcap(60), cap 30");
    CHECK(fabsf(eval_builtin("softcap", 1, env) - 0.07065f) < 1e-4f, "softcap'(60), cap 30");
    const fg_score_table ts[1] = {{slope, 2}};
    fg_score_env a = {.score = 2.0f, .h = 1, .q_idx = 10, .kv_idx = 4, .tables = ts};
    CHECK(eval_builtin("alibi", 0, a) == 0.5f, "alibi: 2 - 0.25 * 6");
    CHECK(eval_builtin("alibi_causal", 0, a) == 0.5f && eval_builtin("alibi", 1, a) == 1.0f, "alibi_causal, d alibi");
    float bias[10];
    for (int i = 0; i < 10; ++i) bias[i] = (float)(100 + i);
    const fg_score_table tb[1] = {{bias, 10}};
    const int64_t L = 3;
    fg_score_env r = {.score = 0.0f, .h = 1, .q_idx = 9, .kv_idx = 2, .ci = &L, .tables = tb};
    CHECK(eval_builtin("rel_bias", 0, r) == 105.0f, "rel_bias: distance -7 reads bias[1 * 5 + 0]");
}

/* fg_score_expr_derivative: the built-ins' derivatives agree with the
 * hand-written ones, and random expressions' with forward-mode
 * differentiation of the generator's tree (score_gen.h). */
static void test_derivative(void) {
    int nb;
    const fg_score_builtin *bi = fg_score_builtins(&nb);
    fg_error err = {0};
    for (int i = 0; i < nb; ++i) {
        fg_score_expr *e = NULL, *d = NULL, *hand = NULL;
        if (fg_score_builtin_parse(&bi[i], 0, &e, &err) != FG_OK || fg_score_expr_derivative(e, &d, &err) != FG_OK ||
            fg_score_builtin_parse(&bi[i], 1, &hand, &err) != FG_OK) {
            CHECK(0, "%s: %s", bi[i].name, err.msg);
        } else {
            const float cap = 7.5f;
            for (float s = -40.0f; s <= 40.0f; s += 0.25f) {
                fg_score_env env = {.score = s, .cf = &cap};
                const float got = fg_score_expr_eval(d, &env), want = fg_score_expr_eval(hand, &env);
                CHECK(fabsf(got - want) <= 1e-6f, "%s'(%g): derived %g, hand-written %g", bi[i].name, s, got, want);
                if (fabsf(got - want) > 1e-6f) break;
            }
            if (strcmp(bi[i].name, "softcap")) {
                char *t = fg_score_expr_render(d, FG_SCORE_RENDER_TEXT, NULL);
                CHECK(t && !strcmp(t, "1.0"), "%s: the derivative is %s, not 1.0", bi[i].name, t ? t : "(null)");
                free(t);
            }
        }
        fg_error_clear(&err);
        fg_score_expr_free(e); fg_score_expr_free(d); fg_score_expr_free(hand);
    }
    fg_score_expr *e = parse_ok("score * n + c * score * score"), *d = NULL;
    CHECK(e && fg_score_expr_derivative(e, &d, &err) == FG_OK, "%s", err.msg);
    char *t = d ? fg_score_expr_render(d, FG_SCORE_RENDER_TEXT, NULL) : NULL;
    CHECK(t && !strcmp(t, "((1.0 * n) + ((c * score) + ((c * score) * 1.0)))"),
          "d(score * n + c * score^2) = %s", t ? t : "(null)");
    free(t); fg_score_expr_free(d); fg_score_expr_free(e);
    long cases = 0, skipped = 0;
    for (int x = 0; x < 4000; ++x) {
        sg_tree g;
        sg_generate(&g, 1 + sg_pick(4));
        fg_score_expr *f = parse_ok(g.text), *df = NULL;
        if (!f) continue;
        const fg_status st = fg_score_expr_derivative(f, &df, &err);
        CHECK(st == FG_OK || st == FG_ERR_UNSUPPORTED, "'%s': %s", g.text, err.msg);
        fg_error_clear(&err);
        for (int k = 0; df && k < 6; ++k) {
            sg_env v;
            sg_random_env(&v);
            const fg_score_env env = sg_to_env(&v);
            double mag;
            const double want = sg_deriv(&g, g.root, &v, &mag);
            const float got = fg_score_expr_eval(df, &env);
            if (!isfinite(want) || !isfinite(mag) || mag > 1e30 || !isfinite(sg_eval(&g, g.root, &v))) { ++skipped; continue; }
            ++cases;
            CHECK(fabs(got - want) <= 1e-4 * mag + 1e-30, "d/dscore '%s' (score=%a): %.9g, forward mode %.9g (terms up to %g)", g.text,
                  (double)v.score, (double)got, want, mag);
        }
        fg_score_expr_free(df);
        fg_score_expr_free(f);
    }
    printf("derivative: %ld random evaluations against forward mode (%ld at non-finite points skipped)\n", cases, skipped);
}

/* ---- property ---------------------------------------------------------------- */

static void test_property(void) {
    long cases = 0, exact = 0, approx = 0;
    for (int x = 0; x < 6000; ++x) {
        sg_tree t;
        sg_generate(&t, 1 + sg_pick(5));
        fg_score_expr *e = parse_ok(t.text);
        if (!e) continue;
        char *txt = fg_score_expr_render(e, FG_SCORE_RENDER_TEXT, NULL);
        fg_score_expr *f = txt ? parse_ok(txt) : NULL;
        char *txt2 = f ? fg_score_expr_render(f, FG_SCORE_RENDER_TEXT, NULL) : NULL;
        CHECK(txt2 && !strcmp(txt, txt2), "'%s' round trip: '%s' then '%s'", t.text, txt, txt2);
        for (int k = 0; k < 8; ++k, ++cases) {
            sg_env v;
            sg_random_env(&v);
            const fg_score_env env = sg_to_env(&v);
            const float got = fg_score_expr_eval(e, &env), again = f ? fg_score_expr_eval(f, &env) : got;
            const double want = sg_eval(&t, t.root, &v);
            CHECK(memcmp(&got, &again, sizeof got) == 0 || (isnan(got) && isnan(again)), "'%s' and its text differ", t.text);
            if (!t.transcendental) {
                ++exact;
                CHECK((float)want == got || (isnan(want) && isnan(got)), "'%s' (score=%a q=%lld kv=%lld): %a, reference %a", t.text,
                      (double)v.score, (long long)v.q, (long long)v.kv, (double)got, (double)(float)want);
            } else {
                ++approx;
                const int ok = (isnan(want) && isnan(got)) || (isinf(want) && want == got) ||
                               fabs(got - want) <= 1e-5 * fmax(1.0, fabs(want));
                CHECK(ok, "'%s' (score=%a q=%lld kv=%lld): %.9g, reference %.9g", t.text, (double)v.score, (long long)v.q,
                      (long long)v.kv, (double)got, want);
            }
        }
        free(txt);
        free(txt2);
        fg_score_expr_free(f);
        fg_score_expr_free(e);
    }
    printf("property: %ld evaluations (%ld bit-exact, %ld with tanh/exp2/log2 within 1e-5)\n", cases, exact, approx);
}

/* ---- fuzz ------------------------------------------------------------------------ */

static void exercise(const char *text) {
    fg_score_expr *e = NULL;
    fg_error err = {0};
    const fg_status st = fg_score_expr_parse(text, g_consts, 2, g_tables, 2, &e, &err);
    if (st != FG_OK) {
        CHECK(st == FG_ERR_PATTERN && !e && err.msg && strstr(err.msg, "score expression"), "'%s': status %d, message %s", text,
              (int)st, err.msg ? err.msg : "(none)");
        fg_error_clear(&err);
        return;
    }
    sg_env v;
    sg_random_env(&v);
    const fg_score_env env = sg_to_env(&v);
    (void)fg_score_expr_eval(e, &env);
    char *a = fg_score_expr_render(e, FG_SCORE_RENDER_TEXT, NULL), *b = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, v.ci);
    CHECK(a && *a && b && *b, "'%s' renders empty", text);
    free(a);
    free(b);
    fg_score_expr *d = NULL;
    const fg_status ds = fg_score_expr_derivative(e, &d, &err);
    CHECK(ds == FG_OK || (ds == FG_ERR_UNSUPPORTED && err.msg && strstr(err.msg, "longer than")), "'%s': derivative %d %s", text, (int)ds,
          err.msg ? err.msg : "");
    fg_error_clear(&err);
    if (d) (void)fg_score_expr_eval(d, &env);
    fg_score_expr_free(d);
    fg_score_expr_free(e);
}

static void test_fuzz(void) {
    static const char *const tokens[] = {"score", "q_idx", "kv_idx", "c", "n", "tf", "ti", "[", "]", "tanh", "exp2", "log2", "where",
                                         "min", "abs", "(", ")", ",", "+", "-", "*", "/", "%", "<", "<=", "==", "&&", "||", "!", "?",
                                         ":", "0", "1.5", "2e-3", "1e", ".", "e", "3.4e38", "1e39", "99999999999999999999", " ",
                                         "\xff", "\x01", "p.score_c[0]", "\"", ";"};
    const int ntok = (int)(sizeof tokens / sizeof tokens[0]);
    long runs = 0;
    for (int i = 0; i < 150000; ++i, ++runs) {
        char s[FG_SCORE_MAX_TEXT + 8] = {0};
        size_t len = 0;
        if (sg_pick(2)) {
            sg_tree t;
            sg_generate(&t, 1 + sg_pick(4));
            len = strlen(t.text);
            memcpy(s, t.text, len + 1);
            for (int m = 1 + sg_pick(4); m > 0 && len > 0; --m) {
                const size_t at = (size_t)sg_pick((int)len);
                const int kind = sg_pick(3);
                if (kind == 0) s[at] = (char)(1 + sg_pick(255));
                else if (kind == 1) { memmove(s + at, s + at + 1, len - at); len--; }
                else if (len + 1 < FG_SCORE_MAX_TEXT) { memmove(s + at + 1, s + at, len - at + 1); s[at] = (char)(1 + sg_pick(255)); len++; }
            }
        } else {
            for (int k = sg_pick(30); k >= 0; --k) {
                const char *tok = tokens[sg_pick(ntok)];
                if (len + strlen(tok) < FG_SCORE_MAX_TEXT) { memcpy(s + len, tok, strlen(tok) + 1); len += strlen(tok); }
            }
        }
        exercise(s);
    }
    static char deep[FG_SCORE_MAX_TEXT + 2];
    memset(deep, '(', FG_SCORE_MAX_TEXT);
    exercise(deep);
    memset(deep, '-', FG_SCORE_MAX_TEXT - 1);
    deep[FG_SCORE_MAX_TEXT - 1] = '1';
    exercise(deep);
    memset(deep, '!', FG_SCORE_MAX_TEXT + 1);
    exercise(deep);
    char wide[FG_SCORE_MAX_TEXT + 1] = "score";
    while (strlen(wide) + 8 < FG_SCORE_MAX_TEXT) strcat(wide, "+score");
    exercise(wide);
    printf("fuzz: %ld inputs through the parser (and what parsed through eval and the renderers)\n", runs);
}

/* min and max order -0 below +0 and let a number beat NaN, on the host as
 * on the device (fg::sx_min / sx_max): fminf/fmaxf leave the sign of an
 * equal-zeros result open, and glibc's differs from the GPU's. */
/* inf: FlexAttention's score_mods mask by where(cond, score, -inf).  It
 * parses, prints back, evaluates to -inf where masked, renders to CUDA as
 * the bits of +inf, differentiates to 0 there; it is not a constant name;
 * a literal past the float range still fails, and says how to spell it. */
static void test_inf(void) {
    /* (its text and round trip: test_text_and_errors' table) */
    fg_score_expr *e = parse_ok("where(q_idx >= kv_idx, score + (q_idx - kv_idx), -inf)");
    if (!e) return;
    fg_score_env env = {.score = 1.5f, .q_idx = 3, .kv_idx = 1};
    CHECK(fg_score_expr_eval(e, &env) == 3.5f, "visible: %g", (double)fg_score_expr_eval(e, &env));
    env.kv_idx = 4;
    const float masked = fg_score_expr_eval(e, &env);
    CHECK(isinf(masked) && masked < 0, "masked: %g, want -inf", (double)masked);
    char *c = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, NULL);
    CHECK(c && strstr(c, "__int_as_float(0x7f800000)") && !strstr(c, "inf"), "CUDA form %s", c ? c : "(null)");
    fg_score_expr *d = NULL;
    fg_error err = {0};
    CHECK(fg_score_expr_derivative(e, &d, &err) == FG_OK, "%s", err.msg);
    if (d) {
        CHECK(fg_score_expr_eval(d, &env) == 0.0f, "d/dscore where masked: %g", (double)fg_score_expr_eval(d, &env));
        env.kv_idx = 1;
        CHECK(fg_score_expr_eval(d, &env) == 1.0f, "d/dscore where visible: %g", (double)fg_score_expr_eval(d, &env));
    }
    free(c);
    fg_score_expr_free(d); fg_score_expr_free(e);
    e = parse_ok("min(score, inf) * 2.0");
    env.score = -7.0f;
    CHECK(e && fg_score_expr_eval(e, &env) == -14.0f, "min(score, inf)");
    fg_score_expr_free(e);
    expect_error("score + 1e39", "infinity is spelled inf");
    const fg_score_name named_inf[] = {{"inf", FG_SCORE_FLOAT}};
    CHECK(fg_score_expr_parse("score", named_inf, 1, NULL, 0, &e, &err) == FG_ERR_PATTERN, "a constant named inf");
    CHECK_CONTAINS(err.msg, "score constant name 'inf' is not a fresh identifier");
    fg_error_clear(&err);
}

/* sin, cos, tan (FlexAttention's tests use them): values, text, derivatives */
static void test_trig(void) {
    fg_score_expr *e = parse_ok("sin(cos(score)) + tan(b) * c"); /* (text: test_text_and_errors' table) */
    if (!e) return;
    char *cu = fg_score_expr_render(e, FG_SCORE_RENDER_CUDA, NULL);
    CHECK(cu && strstr(cu, "sinf(cosf(s))") && strstr(cu, "tanf(((float)"), "CUDA form %s", cu ? cu : "(null)");
    const float cf[1] = {0.5f};
    fg_score_env env = {.score = 0.75f, .b = 2, .cf = cf};
    const float want = sinf(cosf(0.75f)) + tanf(2.0f) * 0.5f;
    CHECK(fg_score_expr_eval(e, &env) == want, "value %g, want %g", (double)fg_score_expr_eval(e, &env), (double)want);
    fg_score_expr *d = NULL;
    fg_error err = {0};
    CHECK(fg_score_expr_derivative(e, &d, &err) == FG_OK, "%s", err.msg);
    for (float s = -3.0f; d && s <= 3.0f; s += 0.5f) {
        env.score = s;
        const float got = fg_score_expr_eval(d, &env), hand = cosf(cosf(s)) * -sinf(s);
        CHECK(fabsf(got - hand) <= 1e-6f, "d/dscore at %g: %g, want %g", (double)s, (double)got, (double)hand);
    }
    fg_score_expr *g = parse_ok("tan(score * 0.5)"), *dg = NULL;
    CHECK(g && fg_score_expr_derivative(g, &dg, &err) == FG_OK, "%s", err.msg);
    env.score = 1.0f;
    if (dg) {
        const float tt = tanf(0.5f), hand = (1.0f + tt * tt) * 0.5f;
        CHECK(fabsf(fg_score_expr_eval(dg, &env) - hand) <= 1e-6f, "d tan: %g, want %g", (double)fg_score_expr_eval(dg, &env), (double)hand);
    }
    free(cu);
    fg_score_expr_free(dg); fg_score_expr_free(g); fg_score_expr_free(d); fg_score_expr_free(e);
    fg_error_clear(&err);
}

static void test_min_max_zeros(void) {
    fg_score_expr *mn = parse_ok("min(score, c)"), *mx = parse_ok("max(score, c)");
    static const struct { float s, c, min, max; } t[] = {
        {-0.0f, 0.0f, -0.0f, 0.0f}, {0.0f, -0.0f, -0.0f, 0.0f}, {-0.0f, -0.0f, -0.0f, -0.0f}, {0.0f, 0.0f, 0.0f, 0.0f},
        {NAN, 1.5f, 1.5f, 1.5f},     {2.0f, NAN, 2.0f, 2.0f},    {-1.0f, 3.0f, -1.0f, 3.0f}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; ++i) {
        const float c = t[i].c;
        fg_score_env env = {t[i].s, 0, 0, 0, 0, NULL, &c, NULL};
        const float a = fg_score_expr_eval(mn, &env), b = fg_score_expr_eval(mx, &env);
        CHECK(!memcmp(&a, &t[i].min, sizeof a) && !memcmp(&b, &t[i].max, sizeof b), "min/max(%g, %g) = %g, %g (signs %d %d)",
              (double)t[i].s, (double)c, (double)a, (double)b, signbit(a) != 0, signbit(b) != 0);
    }
    char *cu = fg_score_expr_render(mn, FG_SCORE_RENDER_CUDA, NULL);
    CHECK(cu && strstr(cu, "fg::sx_min"), "min renders as fg::sx_min: %s", cu ? cu : "");
    free(cu);
    fg_score_expr_free(mn);
    fg_score_expr_free(mx);
}

int main(void) {
    const char *s = getenv("FG_TEST_SEED");
    sg_seed(s ? strtoull(s, NULL, 10) : 13);
    test_text_and_errors();
    test_cuda_widths();
    test_float_compare_width();
    test_canonical_reparse();
    test_builtins();
    test_min_max_zeros();
    test_inf();
    test_trig();
    test_doc_examples();
    test_derivative();
    test_property();
    test_fuzz();
    return test_summary("test_score_expr");
}
