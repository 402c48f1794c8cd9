/* Property and fuzz tests of the mask-expression language (gen/mask_expr.c),
 * plus the size limits of pattern evaluation:
 *   - property: random expressions (every operator, wrapping products, huge
 *     constants), fg_mask_expr_classify against element-wise
 *     fg_mask_expr_eval on random blocks, exact with an unbounded scan and
 *     sound (full: true everywhere, empty: false everywhere) with a small one;
 *   - fuzz: random and mutated texts through the parser, and whatever parses
 *     through the evaluator, the renderers and the classifier: a clean
 *     FG_ERR_PATTERN with a column or a usable expression, never a crash
 *     (run it under -fsanitize=address,undefined to catch undefined behaviour);
 *   - the reproductions of issue 16 items 3, 4 and 5.
 * Seeded (FG_TEST_SEED overrides the fixed default); well under a minute. */
#include <stdlib.h>
#include <time.h>

#include "gen/mask_expr.h"
#include "runtime/pattern.h"
#include "test_util.h"

static struct { uint64_t s; } g_rng;

/* splitmix64: 64 random bits */
static uint64_t next64(void) {
    uint64_t z = (g_rng.s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int pick(int n) { return (int)(next64() % (uint64_t)n); }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- random expressions -------------------------------------------------- */

typedef struct sb { char s[FG_MASK_MAX_TEXT + 1]; size_t n; } sb;

static void add(sb *b, const char *t) {
    const size_t k = strlen(t);
    if (b->n + k < sizeof b->s) { memcpy(b->s + b->n, t, k + 1); b->n += k; }
}

static void gen(sb *b, int depth) {
    static const char *const leaves[] = {"q_idx", "kv_idx", "q_idx", "kv_idx", "b", "h", "seqlen_q", "seqlen_k", "w", "z"};
    static const char *const lits[] = {"0", "1", "2", "3", "4", "7", "64", "1000", "3000000007", "4611686018427387904",
                                       "2147483647", "2147483648"};
    static const char *const bin[] = {"+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||"};
    const int r = pick(100);
    if (depth <= 0 || r < 25) {
        static const char *const diffs[] = {"(kv_idx - q_idx)", "(q_idx - kv_idx)", "(q_idx - w)", "(kv_idx - z)"};
        add(b, r % 4 == 0 ? lits[pick(12)] : r % 4 == 1 ? diffs[pick(4)] : leaves[pick(10)]);
        return;
    }
    if (r < 70) {
        add(b, "(");
        gen(b, depth - 1);
        add(b, " ");
        add(b, bin[pick(13)]);
        add(b, " ");
        gen(b, depth - 1);
        add(b, ")");
    } else if (r < 80) {
        /* often against 0 or a literal: one-sided intervals such as [INT64_MIN, 0] */
        add(b, pick(2) ? "min(" : "max(");
        gen(b, depth - 1);
        add(b, ", ");
        if (pick(2)) add(b, lits[pick(4)]);
        else gen(b, depth - 1);
        add(b, ")");
    } else if (r < 90) {
        static const char *const un[] = {"-(", "!(", "abs("};
        add(b, un[pick(3)]);
        gen(b, depth - 1);
        add(b, ")");
    } else {
        add(b, "(");
        gen(b, depth - 1);
        add(b, " ? ");
        gen(b, depth - 1);
        add(b, " : ");
        gen(b, depth - 1);
        add(b, ")");
    }
}

/* A predicate: comparisons of random terms, residues, their combinations
 * (so that many blocks are mixed). */
static void gen_predicate(sb *b, int depth) {
    static const char *const cmp[] = {"<", "<=", ">", ">=", "==", "!="};
    static const char *const mods[] = {"2", "3", "4", "7", "64", "w", "z", "3000000007"};
    const int r = pick(100);
    add(b, "(");
    if (r < 45 || depth <= 0) {
        gen(b, 1 + pick(4));
        add(b, " ");
        add(b, cmp[pick(6)]);
        add(b, " ");
        gen(b, 1 + pick(3));
    } else if (r < 75) {
        /* residues of terms, often clamped on one side (min(x / (kv_idx - q_idx), 0) % 4 was misclassified) */
        add(b, "(");
        const int clamp = pick(3);
        if (clamp) add(b, clamp == 1 ? "min(" : "max(");
        gen(b, 1 + pick(4));
        if (clamp) { add(b, ", "); add(b, pick(2) ? "0" : "-1"); add(b, ")"); }
        add(b, ") % ");
        add(b, mods[pick(8)]);
        add(b, " ");
        add(b, cmp[pick(6)]);
        add(b, " ");
        gen(b, 1);
    } else {
        gen_predicate(b, depth - 1);
        add(b, pick(2) ? " && " : " || ");
        gen_predicate(b, depth - 1);
    }
    add(b, ")");
}

static int64_t random_const(void) {
    static const int64_t special[] = {0, 1, -1, 2, 7, 64, -64, INT32_MAX, INT32_MIN, (int64_t)1 << 62, INT64_MAX, INT64_MIN};
    return pick(3) ? special[pick(12)] : (int64_t)next64();
}

/* The block's truth by brute force: 2 full, 0 empty, 1 mixed. */
static int truth(const fg_mask_expr *e, fg_mask_env env, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    int seen[2] = {0, 0};
    for (int64_t q = q0; q <= q1; ++q)
        for (int64_t k = k0; k <= k1; ++k) {
            env.q_idx = q;
            env.kv_idx = k;
            seen[fg_mask_expr_eval(e, &env) != 0] = 1;
        }
    return seen[0] && seen[1] ? 1 : seen[1] ? 2 : 0;
}

static void test_classify_property(void) {
    const char *names[] = {"w", "z"};
    long cases = 0, mixed = 0, decided_by_intervals = 0;
    for (int x = 0; x < 40000; ++x) {
        sb b = {{0}, 0};
        if (pick(4)) gen_predicate(&b, 2);
        else gen(&b, 1 + pick(5));
        fg_mask_expr *e;
        fg_error err = {0};
        if (fg_mask_expr_parse(b.s, names, 2, &e, &err) != FG_OK) {
            CHECK(0, "generated '%s' does not parse: %s", b.s, err.msg);
            fg_error_clear(&err);
            continue;
        }
        /* constants small (as in real patterns) or extreme */
        const int64_t consts[2] = {pick(2) ? 1 + pick(100) : random_const(), pick(2) ? pick(100) : random_const()};
        fg_mask_env env = {pick(4), pick(4), 0, 0, 1 + pick(5000), 1 + pick(5000), consts};
        for (int t = 0; t < 6; ++t, ++cases) {
            /* small and large positions: the products then leave 64 bits */
            const int64_t span = pick(2) ? 300 : (int64_t)1 << 31;
            const int64_t q0 = (int64_t)(next64() % (uint64_t)span), k0 = (int64_t)(next64() % (uint64_t)span);
            const int64_t q1 = q0 + pick(12), k1 = k0 + pick(12);
            const int want = truth(e, env, q0, q1, k0, k1);
            const int got = fg_mask_expr_classify(e, &env, q0, q1, k0, k1, NULL);
            mixed += want == 1;
            CHECK(got == want, "%s (w=%lld z=%lld) on q %lld..%lld kv %lld..%lld: classified %d, elements say %d", b.s,
                  (long long)consts[0], (long long)consts[1], (long long)q0, (long long)q1, (long long)k0, (long long)k1, got, want);
            fg_mask_budget none = {1 << 20, 0};
            const int quick = fg_mask_expr_classify(e, &env, q0, q1, k0, k1, &none);
            decided_by_intervals += quick != 1;
            CHECK(quick == 1 || quick == want, "%s on q %lld..%lld kv %lld..%lld: intervals alone say %d, elements %d", b.s,
                  (long long)q0, (long long)q1, (long long)k0, (long long)k1, quick, want);
        }
        fg_mask_expr_free(e);
    }
    printf("property: %ld blocks of random expressions, %ld mixed, %ld decided by intervals alone\n", cases, mixed,
           decided_by_intervals);
}

/* ---- fuzzing the parser ---------------------------------------------------- */

static void exercise(const char *text) {
    const char *names[] = {"w", "z"};
    fg_mask_expr *e = NULL;
    fg_error err = {0};
    const fg_status st = fg_mask_expr_parse(text, names, 2, &e, &err);
    if (st != FG_OK) {
        CHECK(st == FG_ERR_PATTERN && !e && err.msg && strstr(err.msg, "mask expression"), "'%s': status %d, message %s", text,
              (int)st, err.msg ? err.msg : "(none)");
        fg_error_clear(&err);
        return;
    }
    const int64_t consts[2] = {random_const(), random_const()};
    fg_mask_env env = {1, 2, pick(100), pick(100), 100, 100, consts};
    (void)fg_mask_expr_eval(e, &env);
    fg_mask_budget budget = {1 << 20, 64};
    (void)fg_mask_expr_classify(e, &env, 0, 7, 0, 7, &budget);
    (void)fg_mask_expr_fits_int32(e, consts);
    for (int m = FG_MASK_RENDER_TEXT; m <= FG_MASK_RENDER_PYTHON; ++m) {
        char *r = fg_mask_expr_render(e, (fg_mask_render_mode)m, consts);
        CHECK(r && *r, "'%s' renders empty in mode %d", text, m);
        free(r);
    }
    fg_mask_expr_free(e);
}

static void test_fuzz(void) {
    static const char *const tokens[] = {"q_idx", "kv_idx", "w", "z", "b", "h", "seqlen_q", "min", "max", "abs", "(", ")", ",",
                                         "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||", "!", "?", ":",
                                         "=", "&", "|", "0", "9", "99999999999999999999", "4611686018427387904", " ", "\t",
                                         "x", "_", ".", "1.5", "\"", ";", "\xff", "\x01", "p.mask_c[0]", "system("};
    const int ntok = (int)(sizeof tokens / sizeof tokens[0]);
    long runs = 0;
    for (int i = 0; i < 20000; ++i, ++runs) {
        sb b = {{0}, 0};
        if (pick(2)) {
            /* a valid expression, mutated: characters replaced, inserted, deleted */
            gen(&b, 1 + pick(4));
            for (int m = pick(4); m > 0 && b.n > 0; --m) {
                const size_t at = (size_t)pick((int)b.n);
                const int kind = pick(3);
                if (kind == 0) b.s[at] = (char)(1 + pick(255));
                else if (kind == 1) { memmove(b.s + at, b.s + at + 1, b.n - at); b.n--; }
                else if (b.n + 1 < sizeof b.s) { memmove(b.s + at + 1, b.s + at, b.n - at + 1); b.s[at] = (char)(1 + pick(255)); b.n++; }
            }
        } else {
            /* tokens of the language and others, in any order */
            for (int k = pick(30); k >= 0; --k) add(&b, tokens[pick(ntok)]);
        }
        exercise(b.s);
    }
    /* degenerate inputs */
    static char deep[FG_MASK_MAX_TEXT + 2];
    memset(deep, '(', FG_MASK_MAX_TEXT);
    deep[FG_MASK_MAX_TEXT] = 0;
    exercise(deep);
    memset(deep, '-', FG_MASK_MAX_TEXT - 1);
    deep[FG_MASK_MAX_TEXT - 1] = '1';
    exercise(deep);
    memset(deep, '!', FG_MASK_MAX_TEXT + 1);
    deep[FG_MASK_MAX_TEXT + 1] = 0;
    exercise(deep);
    sb wide = {{0}, 0};
    while (wide.n + 8 < FG_MASK_MAX_TEXT) add(&wide, "q_idx+");
    add(&wide, "1");
    exercise(wide.s);
    printf("fuzz: %ld inputs through the parser (and what parsed through eval, classify and the renderers)\n", runs);
}

/* ---- issue 16 reproductions ------------------------------------------------ */

static void test_reproductions(void) {
    fg_mask_expr *e;
    fg_error err = {0};
    /* item 3: [INT64_MIN, 0] % 4 overflowed the interval width */
    CHECK(fg_mask_expr_parse("min(q_idx / (kv_idx - q_idx), 0) % 4 == 0", NULL, 0, &e, &err) == FG_OK, "%s", err.msg);
    fg_mask_env env = {0, 0, 1, 0, 512, 512, NULL};
    CHECK(fg_mask_expr_eval(e, &env) == 0, "(q=1, kv=0) is masked");
    CHECK(fg_mask_expr_classify(e, &env, 0, 63, 0, 63, NULL) == 1, "block (0..63, 0..63) is mixed");
    fg_mask_budget none = {1 << 20, 0};
    CHECK(fg_mask_expr_classify(e, &env, 0, 63, 0, 63, &none) == 1, "intervals alone cannot call it full");
    /* item 4: the interval pass is bounded too: past its budget, partial */
    fg_mask_budget few = {60, 1 << 20};
    int calls = 0;
    while (calls < 100 && fg_mask_expr_classify(e, &env, 0, 0, 100, 100, &few) == 2) ++calls;
    CHECK(calls >= 1 && calls < 60 && few.interval_nodes < 0, "%d blocks classified within the interval budget", calls);
    fg_mask_expr_free(e);

    /* item 5: the literal check runs before the multiply (2^64 + 256 read as 256) */
    CHECK(fg_mask_expr_parse("q_idx < 18446744073709551872", NULL, 0, &e, &err) == FG_ERR_PATTERN && !e, "2^64 + 256 accepted");
    CHECK_CONTAINS(err.msg, "integer literal too large");
    fg_error_clear(&err);
    CHECK(fg_mask_expr_parse("q_idx < 4611686018427387904", NULL, 0, &e, &err) == FG_OK, "2^62 refused: %s", err.msg);
    fg_mask_expr_free(e);
    CHECK(fg_mask_expr_parse("q_idx < 4611686018427387905", NULL, 0, &e, &err) == FG_ERR_PATTERN, "2^62 + 1 accepted");
    fg_error_clear(&err);
}

/* A pattern from a Lua expression, without a context. */
static fg_pattern *make(const fg_sources *src, const char *text) {
    fg_pattern *p = NULL;
    fg_error e = {0};
    if (fg_pattern_create_internal(src, text, NULL, &p, &e) != FG_OK) CHECK(0, "%s: %s", text, e.msg);
    fg_error_clear(&e);
    return p;
}

static void test_sizes_and_time(void) {
    fg_sources src;
    fg_error e = {0};
    if (fg_sources_load(&src, &e) != FG_OK) { CHECK(0, "%s", e.msg); return; }
    fg_block_layout_desc d;
    /* item 5: a 2^31-entry layout was allocated (5 GB); now refused before */
    fg_pattern *p = make(&src, "{mask=\"kv_idx >= 0\"}");
    if (p) {
        double t0 = now_s();
        CHECK(fg_pattern_eval_internal(p, 1, 1, 1000000000, 1000000000, 58823552, 16, &d, &e) == FG_ERR_UNSUPPORTED, "huge layout");
        CHECK_CONTAINS(e.msg, "is larger than 128 Mi entries");
        CHECK(now_s() - t0 < 1, "refusing took %.1f s", now_s() - t0);
        fg_error_clear(&e);
        /* blocks near 2^31 made num_q_blocks -1 */
        CHECK(fg_pattern_eval_internal(p, 1, 1, 1000, 1000, 2147483584, 16, &d, &e) == FG_ERR_BAD_LAYOUT, "block 2^31 - 64");
        CHECK_CONTAINS(e.msg, "at most 2^30");
        fg_error_clear(&e);
        CHECK(fg_pattern_eval_internal(p, 1, 1, 1000, 1000, 1 << 30, 1 << 30, &d, &e) == FG_OK && d.num_q_blocks == 1 &&
                  d.num_kv_blocks == 1 && d.full_kv_num_blocks[0] == 1, "one block of 2^30: %s", e.msg);
        fg_error_clear(&e);
        /* batch x heads x blocks overflowing before the check */
        fg_pattern_destroy(p);
    }
    p = make(&src, "random{density=0.5, per_head=1}");
    if (p) {
        CHECK(fg_pattern_eval_internal(p, 1 << 30, 1 << 30, 1 << 20, 1 << 20, 64, 16, &d, &e) == FG_ERR_UNSUPPORTED, "2^60 rows");
        fg_error_clear(&e);
        fg_pattern_destroy(p);
    }
    /* item 4: intervals cannot decide this mask; the scan is bounded */
    p = make(&src, "{mask=\"(q_idx % 64 - kv_idx % 64) * (q_idx % 64 - kv_idx % 64) >= 0\"}");
    if (p) {
        const double t0 = now_s();
        CHECK(fg_pattern_eval_internal(p, 1, 1, 65536, 65536, 128, 128, &d, &e) == FG_OK, "%s", e.msg);
        const double dt = now_s() - t0;
        CHECK(dt < 15, "classifying 65536 x 65536 took %.1f s", dt);
        long full = 0, part = 0;
        for (int r = 0; r < d.num_q_blocks; ++r) { full += d.full_kv_num_blocks[r]; part += d.kv_num_blocks[r]; }
        /* every block is true everywhere: the first ones are found full, the
         * rest left partial once the scan budget is spent (correct) */
        const fg_mask_budget b = FG_PATTERN_CLASSIFY_BUDGET;
        CHECK(full + part == 512L * 512 && full >= b.elements / (128 * 128) - 1 && part > 0, "full %ld partial %ld", full, part);
        printf("bounded classification: 512 x 512 undecidable blocks in %.2f s (%ld full, %ld partial)\n", dt, full, part);
        fg_pattern_destroy(p);
    }
    fg_sources_free(&src);
}

int main(void) {
    const char *s = getenv("FG_TEST_SEED");
    const uint64_t seed = s ? strtoull(s, NULL, 10) : 16;
    printf("seed %llu (FG_TEST_SEED)\n", (unsigned long long)seed);
    g_rng.s = seed * 0xd1b54a32d192ed03ull; /* splitmix streams of nearby seeds must not overlap */
    test_reproductions();
    test_classify_property();
    test_fuzz();
    test_sizes_and_time();
    return test_summary("test_mask_props");
}
