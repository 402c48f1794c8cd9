/* CPU tests of block-sparse patterns: the mask-expression language (parse
 * errors with columns, evaluation, rendering, the block classifier against
 * brute force), the Lua sandbox of user pattern files (os, io, endless loop,
 * memory bomb, syntax and runtime errors, each refused with file:line), every
 * built-in's block classification against element-by-element evaluation of
 * its own mask, combinators, parameters, and the path of a mask into the
 * variant key, the rendered kernel and the reference. */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen/mask_expr.h"
#include "gen/render.h"
#include "gen/sha256.h"
#include "select/tuned.h"
#include "runtime/attention.h"
#include "runtime/internal.h"
#include "runtime/layout.h"
#include "runtime/pattern.h"
#include "runtime/reference.h"
#include "test_util.h"

static fg_context *g_ctx;
static char g_dir[256];

/* ---- the expression language ------------------------------------------- */

static int64_t ev(const char *text, int64_t q, int64_t k) {
    const char *names[] = {"w", "z"};
    const int64_t vals[] = {5, 0};
    fg_mask_expr *e;
    fg_error err = {0};
    if (fg_mask_expr_parse(text, names, 2, &e, &err) != FG_OK) {
        CHECK(0, "parse '%s': %s", text, err.msg);
        fg_error_clear(&err);
        return -999;
    }
    fg_mask_env env = {1, 2, q, k, 100, 200, vals};
    int64_t r = fg_mask_expr_eval(e, &env);
    fg_mask_expr_free(e);
    return r;
}

static void expect_parse_error(const char *text, const char *needle) {
    const char *names[] = {"w"};
    fg_mask_expr *e = NULL;
    fg_error err = {0};
    fg_status st = fg_mask_expr_parse(text, names, 1, &e, &err);
    CHECK(st == FG_ERR_PATTERN && !e, "'%s' was accepted", text);
    CHECK_CONTAINS(err.msg, needle);
    fg_error_clear(&err);
    fg_mask_expr_free(e);
}

static void test_expr(void) {
    CHECK(ev("q_idx - kv_idx", 10, 3) == 7, "sub");
    CHECK(ev("abs(q_idx - kv_idx) <= w", 10, 3) == 0 && ev("abs(q_idx - kv_idx) <= w", 10, 6) == 1, "window");
    CHECK(ev("2 + 3 * 4 - 6 / 4 % 5", 0, 0) == 13, "precedence");
    CHECK(ev("-7 / 2", 0, 0) == -3 && ev("-7 % 2", 0, 0) == -1, "C truncation");
    CHECK(ev("q_idx / z", 9, 0) == 0 && ev("q_idx % z", 9, 0) == 0, "x/0 = x%%0 = 0");
    CHECK(ev("q_idx > 3 ? w : 100", 4, 0) == 5 && ev("q_idx > 3 ? w : 100", 3, 0) == 100, "?:");
    CHECK(ev("1 ? 2 : 0 ? 3 : 4", 0, 0) == 2 && ev("0 ? 2 : 0 ? 3 : 4", 0, 0) == 4, "?: is right-associative");
    CHECK(ev("min(q_idx, kv_idx) + max(q_idx, kv_idx)", 3, 8) == 11, "min/max");
    CHECK(ev("!(q_idx == kv_idx) && q_idx != 0 || 0", 3, 4) == 1, "logic");
    CHECK(ev("b * 1000 + h * 100 + seqlen_q + seqlen_k", 0, 0) == 1 * 1000 + 2 * 100 + 300, "b h seqlens");
    CHECK(ev("(q_idx >= 2) + (q_idx >= 4) == (kv_idx >= 2) + (kv_idx >= 4)", 3, 2) == 1, "sum of comparisons");
    CHECK(ev("- - 3 + +2", 0, 0) == 5, "unary");

    expect_parse_error("q_idx <= window", "column 10: unknown name 'window'");
    expect_parse_error("system(1)", "unknown function 'system'");
    expect_parse_error("q_idx = 3", "column 7");
    expect_parse_error("q_idx; exit(0)", "column 6: unexpected text after the expression");
    expect_parse_error("\"x\" == 1", "column 1: unexpected character '\"'");
    expect_parse_error("q_idx < 1.5", "only decimal integer literals");
    expect_parse_error("(q_idx < 3", "expected ')'");
    expect_parse_error("min(q_idx)", "expected ','");
    expect_parse_error("q_idx & 1", "column 7");
    expect_parse_error("q_idx ? 1", "expected ':'");
    expect_parse_error("", "unexpected end");
    expect_parse_error("99999999999999999999", "too large");
    expect_parse_error("p.mask_c[0]", "unknown name 'p'");
    expect_parse_error("q_idx.x", "unexpected text after the expression");
    /* bad constant names are refused before parsing */
    const char *bad[] = {"q_idx"};
    fg_mask_expr *e = NULL;
    fg_error err = {0};
    CHECK(fg_mask_expr_parse("1", bad, 1, &e, &err) == FG_ERR_PATTERN, "constant named like a variable");
    fg_error_clear(&err);

    /* rendering */
    const char *names[] = {"w"};
    const int64_t vals[] = {7};
    CHECK(fg_mask_expr_parse("abs(q_idx - kv_idx) <= w && q_idx % 4 == 0 && seqlen_k > 1", names, 1, &e, &err) == FG_OK, "%s", err.msg);
    char *t = fg_mask_expr_render(e, FG_MASK_RENDER_TEXT, vals), *c = fg_mask_expr_render(e, FG_MASK_RENDER_CUDA, vals),
         *py = fg_mask_expr_render(e, FG_MASK_RENDER_PYTHON, vals);
    CHECK(t && !strcmp(t, "(((abs((q_idx - kv_idx)) <= w) && ((q_idx % 4) == 0)) && (seqlen_k > 1))"), "text: %s", t);
    CHECK_CONTAINS(c, "fg::mx_abs64(fg::mx_sub64((long long)q_idx, (long long)kv_idx)) <= p.mask_c[0]");
    CHECK_CONTAINS(c, "fg::mx_mod64((long long)q_idx, 4ll)");
    CHECK_CONTAINS(c, "(long long)p.seqlen_k");
    char *c32 = fg_mask_expr_render(e, FG_MASK_RENDER_CUDA32, vals);
    CHECK_CONTAINS(c32, "fg::mx_abs32((q_idx - kv_idx)) <= (int)p.mask_c[0]");
    CHECK_CONTAINS(c32, "fg::mx_mod32(q_idx, 4)");
    CHECK(fg_mask_expr_fits_int32(e, vals), "window expression fits int32");
    const int64_t huge[] = {(int64_t)1 << 40};
    CHECK(!fg_mask_expr_fits_int32(e, huge), "a constant of 2^40 does not fit int32");
    free(c32);
    CHECK_CONTAINS(py, "_le(_abs((q_idx - kv_idx)), _c[0])");
    CHECK_CONTAINS(py, "_and(");
    /* the canonical text parses back to the same text */
    fg_mask_expr *e2;
    CHECK(fg_mask_expr_parse(t, names, 1, &e2, &err) == FG_OK, "%s", err.msg);
    /* products of indices leave the int range: 64-bit kernel code */
    fg_mask_expr *wide;
    CHECK(fg_mask_expr_parse("(q_idx * kv_idx) % 7 != 0", NULL, 0, &wide, &err) == FG_OK, "%s", err.msg);
    CHECK(!fg_mask_expr_fits_int32(wide, NULL), "q_idx * kv_idx fits int32?");
    fg_mask_expr_free(wide);
    char *t2 = fg_mask_expr_render(e2, FG_MASK_RENDER_TEXT, vals);
    CHECK(t2 && !strcmp(t, t2), "round trip: %s vs %s", t, t2);
    free(t); free(c); free(py); free(t2);
    fg_mask_expr_free(e);
    fg_mask_expr_free(e2);
}

/* The classifier against brute force, over many boxes and expressions. */
static void test_classify(void) {
    static const char *exprs[] = {
        "abs(q_idx - kv_idx) <= w",
        "q_idx - kv_idx >= 0 && q_idx - kv_idx <= w",
        "(q_idx - kv_idx) % 3 == 0",
        "q_idx / 16 == kv_idx / 16",
        "(q_idx * kv_idx) % 7 < 3",
        "min(q_idx, kv_idx) < w || max(q_idx, kv_idx) > 90",
        "q_idx > kv_idx ? q_idx - kv_idx < w : kv_idx - q_idx < 2 * w",
        "!(q_idx < 40) && -kv_idx > -60",
        "(q_idx >= 17) + (q_idx >= 50) == (kv_idx >= 17) + (kv_idx >= 50)",
        "kv_idx <= q_idx + seqlen_k - seqlen_q",
        "(q_idx - kv_idx) / -4 != 2",
        "(kv_idx - 50) % 8 > -3",
        "1", "0", "w - 5",
    };
    const char *names[] = {"w"};
    const int64_t vals[] = {11};
    fg_rng rng;
    fg_rng_seed(&rng, 3);
    long boxes = 0;
    for (unsigned x = 0; x < sizeof exprs / sizeof exprs[0]; ++x) {
        fg_mask_expr *e;
        fg_error err = {0};
        if (fg_mask_expr_parse(exprs[x], names, 1, &e, &err) != FG_OK) { CHECK(0, "%s: %s", exprs[x], err.msg); fg_error_clear(&err); continue; }
        fg_mask_env env = {0, 0, 0, 0, 100, 120, vals};
        for (int t = 0; t < 300; ++t, ++boxes) {
            const int64_t q0 = (int64_t)(fg_rng_uniform(&rng) * 100), k0 = (int64_t)(fg_rng_uniform(&rng) * 100);
            const int64_t q1 = q0 + (int64_t)(fg_rng_uniform(&rng) * 20), k1 = k0 + (int64_t)(fg_rng_uniform(&rng) * 20);
            int seen[2] = {0, 0};
            for (int64_t q = q0; q <= q1; ++q)
                for (int64_t k = k0; k <= k1; ++k) {
                    env.q_idx = q; env.kv_idx = k;
                    seen[fg_mask_expr_eval(e, &env) != 0] = 1;
                }
            const int truth = seen[0] && seen[1] ? 1 : seen[1] ? 2 : 0;
            const int got = fg_mask_expr_classify(e, &env, q0, q1, k0, k1, NULL);
            CHECK(got == truth, "%s on q %lld..%lld kv %lld..%lld: classified %d, brute force %d", exprs[x], (long long)q0,
                  (long long)q1, (long long)k0, (long long)k1, got, truth);
        }
        fg_mask_expr_free(e);
    }
    printf("classifier agreed with brute force on %ld boxes\n", boxes);
}

static const char *write_file(const char *name, const char *text) { return fg_test_write_file(g_dir, name, text); }

/* ---- built-ins against their own masks ---------------------------------- */

typedef struct pcase { const char *pattern, *params; int exact; } pcase;

static void check_pattern(const pcase *c, int sq, int sk, int bq, int bk) {
    fg_pattern *p = NULL;
    if (fg_pattern_create(g_ctx, c->pattern, c->params, &p) != FG_OK) {
        CHECK(0, "%s: %s", c->pattern, fg_errmsg(g_ctx));
        return;
    }
    fg_block_layout_desc d;
    if (fg_pattern_eval(g_ctx, p, 2, 3, sq, sk, bq, bk, &d) != FG_OK) {
        CHECK(0, "%s eval: %s", c->pattern, fg_errmsg(g_ctx));
        fg_pattern_destroy(p);
        return;
    }
    fg_error e = {0};
    CHECK(fg_layout_validate(&d, &e) == FG_OK, "%s: layout invalid: %s", c->pattern, e.msg);
    fg_error_clear(&e);
    if (fg_pattern_mask_is_predicate(p)) {
        long inexact = 0;
        fg_status st = fg_pattern_verify(p, sq, sk, &inexact, &e);
        CHECK(st == FG_OK, "%s (%s) %dx%d blocks %dx%d: %s", c->pattern, c->params ? c->params : "", sq, sk, bq, bk, e.msg);
        if (c->exact) CHECK(inexact == 0, "%s: %ld partial blocks are uniform (classification not exact)", c->pattern, inexact);
        fg_error_clear(&e);
        /* the reference with this layout and mask equals the bare expression
         * wherever a block is listed, and hides unlisted blocks */
        fg_attention_desc ad;
        fg_attention_desc_init(&ad, FG_BF16, 8, 2, 3, 3, sq, sk);
        fg_ref_mask m = {fg_pattern_expr(p), fg_pattern_consts(p)};
        int bad = 0;
        for (int i = 0; i < sq && !bad; i += 7)
            for (int j = 0; j < sk && !bad; ++j) {
                fg_mask_env env = {1, 2, i, j, sq, sk, fg_pattern_consts(p)};
                bad = fg_ref_visible_mask(&ad, &d, &m, 1, 2, i, j) != (fg_mask_expr_eval(fg_pattern_expr(p), &env) != 0);
                if (bad) CHECK(0, "%s: reference visibility of (%d, %d) disagrees with the mask", c->pattern, i, j);
            }
    }
    fg_pattern_destroy(p);
}

static void test_builtins(void) {
    static const pcase cases[] = {
        {"causal", NULL, 1},
        {"causal", "bottom_right=0", 1},
        {"sliding_window", "window=40", 1},
        {"sliding_window", "window=70; causal=1", 1},
        {"sliding_window", "window=0", 1},
        {"dilated", "window=150; dilation=3", 1},
        {"dilated", "window=90; dilation=1", 1},
        {"global", "tokens=37", 1},
        {"document", "lengths=50,130,7,100", 1},
        {"longformer", "window=33; global=20", 0},
        {"bigbird", "window=33; global=20; random=0.3; seed=5", 0},
        {"union(sliding_window{window=20}, global{tokens=9})", NULL, 0},
        {"intersection(document{lengths={100, 200}}, causal{})", NULL, 0},
        {"intersection(random{density=0.5}, sliding_window{window=60})", NULL, 0},
    };
    static const int sizes[][4] = {{300, 517, 64, 64}, {517, 300, 128, 16}, {256, 256, 64, 32}, {65, 1, 64, 16}};
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; ++s)
            check_pattern(&cases[i], sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3]);

    /* a mask-only user pattern gets its classification from the expression */
    char msg[4096];
    const char *path = write_file("maskonly.lua", "return { name = 'stripes', mask = '(q_idx / 32 + kv_idx / 32) % 2 == 0' }\n");
    fg_pattern *p = NULL;
    CHECK(fg_pattern_create(g_ctx, path, NULL, &p) == FG_OK, "%s", fg_errmsg(g_ctx));
    if (p) {
        fg_block_layout_desc d;
        CHECK(fg_pattern_eval(g_ctx, p, 1, 1, 256, 256, 64, 32, &d) == FG_OK, "%s", fg_errmsg(g_ctx));
        CHECK(!fg_pattern_has_block_fn(p) && !strcmp(fg_pattern_name(p), "stripes"), "mask-only pattern");
        /* 64-row blocks span two 32-row stripes: every block is partial */
        CHECK(d.kv_num_blocks[0] == 8 && d.full_kv_num_blocks[0] == 0, "stripes: %d partial %d full", d.kv_num_blocks[0], d.full_kv_num_blocks[0]);
        CHECK(fg_pattern_eval(g_ctx, p, 1, 1, 256, 256, 64, 64, &d) == FG_OK, "%s", fg_errmsg(g_ctx));
        long inexact;
        fg_error e = {0};
        CHECK(fg_pattern_verify(p, 256, 256, &inexact, &e) == FG_OK && inexact == 0, "%s", e.msg);
        fg_error_clear(&e);
        fg_pattern_destroy(p);
    }
    /* a block function that disagrees with its mask is caught by verify */
    path = write_file("liar.lua", "return { mask = 'q_idx >= kv_idx', block = function() return 'full' end }\n");
    CHECK(fg_pattern_create(g_ctx, path, NULL, &p) == FG_OK, "%s", fg_errmsg(g_ctx));
    if (p) {
        fg_block_layout_desc d;
        fg_pattern_eval(g_ctx, p, 1, 1, 128, 128, 64, 64, &d);
        long inexact;
        fg_error e = {0};
        CHECK(fg_pattern_verify(p, 128, 128, &inexact, &e) == FG_ERR_PATTERN, "liar accepted");
        CHECK_CONTAINS(e.msg, "(b=0 h=0 q 0..63, kv 0..63) is classified full, but its mask expression is false at q_idx=0, kv_idx=1");
        fg_error_clear(&e);
        fg_pattern_destroy(p);
    }
    (void)msg;

    /* random: deterministic per seed, near its density, broadcast unless per_head */
    fg_pattern *r1, *r2, *r3;
    fg_block_layout_desc d1, d2, d3;
    CHECK(fg_pattern_create(g_ctx, "random", "density=0.3; seed=7", &r1) == FG_OK, "%s", fg_errmsg(g_ctx));
    CHECK(fg_pattern_create(g_ctx, "random", "density=0.3; seed=7", &r2) == FG_OK, "%s", fg_errmsg(g_ctx));
    CHECK(fg_pattern_create(g_ctx, "random", "density=0.3; seed=8; per_head=1", &r3) == FG_OK, "%s", fg_errmsg(g_ctx));
    fg_pattern_eval(g_ctx, r1, 2, 4, 4096, 4096, 64, 64, &d1);
    fg_pattern_eval(g_ctx, r2, 2, 4, 4096, 4096, 64, 64, &d2);
    fg_pattern_eval(g_ctx, r3, 2, 4, 4096, 4096, 64, 64, &d3);
    CHECK(d1.batch == 1 && d1.heads == 1 && d3.batch == 2 && d3.heads == 4, "broadcast");
    CHECK(!memcmp(d1.full_kv_indices, d2.full_kv_indices, sizeof(int32_t) * 64 * 64) &&
              !memcmp(d1.full_kv_num_blocks, d2.full_kv_num_blocks, sizeof(int32_t) * 64), "same seed, same layout");
    long kept = 0;
    for (int r = 0; r < 64; ++r) kept += d1.full_kv_num_blocks[r] + d1.kv_num_blocks[r];
    CHECK(fabs(kept / 4096.0 - 0.3) < 0.03, "density %.3f", kept / 4096.0);
    CHECK(fg_pattern_mask(r1, FG_MASK_TEXT) == NULL, "random is block level");
    fg_pattern_destroy(r1); fg_pattern_destroy(r2); fg_pattern_destroy(r3);

    /* parameters a review found accepted and then wrong: document lengths
     * whose sum wrapped (the blocks called one document, the mask kept them
     * apart), and a NaN density (the random part silently never fired) */
    p = NULL;
    CHECK(fg_pattern_create(g_ctx, "document", "lengths=100,9223372036854775757,100", &p) != FG_OK,
          "document lengths past 2^63 accepted");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "2^31");
    fg_pattern_destroy(p);
    p = NULL;
    CHECK(fg_pattern_create(g_ctx, "random{density=0/0}", NULL, &p) != FG_OK, "a NaN density accepted");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "density");
    fg_pattern_destroy(p);

    /* bad evaluation sizes */
    CHECK(fg_pattern_create(g_ctx, "causal", NULL, &p) == FG_OK, "%s", fg_errmsg(g_ctx));
    fg_block_layout_desc d;
    CHECK(fg_pattern_eval(g_ctx, p, 1, 1, 128, 128, 96, 64, &d) == FG_ERR_BAD_LAYOUT, "block_q 96");
    CHECK(fg_pattern_eval(g_ctx, p, 1, 1, 0, 128, 64, 64, &d) == FG_ERR_INVALID_ARGUMENT, "seqlen 0");
    fg_pattern_destroy(p);

    /* the kernel's arithmetic width follows from the constants and operations */
    CHECK(fg_pattern_create(g_ctx, "{ mask = 'q_idx * big % 3 == 0', consts = { big = 4000000000 } }", NULL, &p) == FG_OK, "%s", fg_errmsg(g_ctx));
    if (p) { CHECK_CONTAINS(fg_pattern_mask(p, FG_MASK_CUDA), "(long long)q_idx"); fg_pattern_destroy(p); }
    CHECK(fg_pattern_create(g_ctx, "sliding_window", "window=4000000", &p) == FG_OK, "%s", fg_errmsg(g_ctx));
    if (p) { CHECK(!strstr(fg_pattern_mask(p, FG_MASK_CUDA), "long long"), "32-bit window: %s", fg_pattern_mask(p, FG_MASK_CUDA)); fg_pattern_destroy(p); }

    /* combinators rename clashing constants */
    CHECK(fg_pattern_create(g_ctx, "union(sliding_window{window=5}, sliding_window{window=9})", NULL, &p) == FG_OK, "%s", fg_errmsg(g_ctx));
    if (p) {
        CHECK_CONTAINS(fg_pattern_mask(p, FG_MASK_TEXT), "window_2");
        CHECK_CONTAINS(fg_pattern_mask(p, FG_MASK_CUDA), "p.mask_c[1]");
        CHECK_CONTAINS(fg_pattern_mask(p, FG_MASK_PYTHON), "_c[1]");
        const char *names[4];
        int64_t vals[4];
        CHECK(fg_pattern_mask_consts(p, names, vals, 4) == 2 && !strcmp(names[1], "window_2") && vals[1] == 9, "consts");
        fg_pattern_destroy(p);
    }
}

/* ---- a mask's kernel identity -------------------------------------------- */

static void hex32(const uint8_t *d, char *out) {
    for (int i = 0; i < 32; ++i) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_mask_identity(void) {
    /* SHA-256 known answers (FIPS 180-4 examples; 56 bytes pad into two blocks) */
    static const struct { const char *msg, *hex; } kat[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    uint8_t d[32];
    char hex[65];
    for (unsigned i = 0; i < sizeof kat / sizeof kat[0]; ++i) {
        fg_sha256(kat[i].msg, strlen(kat[i].msg), d);
        hex32(d, hex);
        CHECK(!strcmp(hex, kat[i].hex), "sha256('%s') = %s", kat[i].msg, hex);
    }
    char *million = malloc(1000000);
    if (million) {
        memset(million, 'a', 1000000);
        fg_sha256(million, 1000000, d);
        hex32(d, hex);
        CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(a x 10^6) = %s", hex);
        free(million);
    }
    /* issue 16 item 6: the old key hashed the CUDA text with 64-bit FNV-1a,
     * and these two renderings (of the two masks below) collided */
    static const char *old_cuda[2] = {
        "(fg::mx_mod64(((((long long)q_idx - (long long)kv_idx) + 4718756564ll) + 5068239458ll), 7919ll) < 3960ll)",
        "(fg::mx_mod64(((((long long)q_idx - (long long)kv_idx) + 1947362472ll) + 2359085253ll), 7919ll) < 3960ll)"};
    CHECK(fg_hash64(FG_HASH_SEED, old_cuda[0], strlen(old_cuda[0])) == 0xa0b669b5ec2fb865ull &&
              fg_hash64(FG_HASH_SEED, old_cuda[1], strlen(old_cuda[1])) == 0xa0b669b5ec2fb865ull, "the FNV-1a collision of the issue");
    fg_mask_hash oh0 = fg_mask_hash_of(old_cuda[0]), oh1 = fg_mask_hash_of(old_cuda[1]);
    CHECK(memcmp(&oh0, &oh1, sizeof oh0) != 0, "SHA-256 separates the colliding texts");
    static const char *masks[2] = {"{mask='(q_idx - kv_idx + 4718756564 + 5068239458) % 7919 < 3960'}",
                                   "{mask='(q_idx - kv_idx + 1947362472 + 2359085253) % 7919 < 3960'}"};
    fg_variant v[2];
    char key[2][512];
    for (int i = 0; i < 2; ++i) {
        fg_pattern *p;
        memset(&v[i], 0, sizeof v[i]);
        if (fg_pattern_create(g_ctx, masks[i], NULL, &p) != FG_OK) { CHECK(0, "%s", fg_errmsg(g_ctx)); return; }
        v[i].spec.head_dim = 128;
        v[i].spec.sparse = 1;
        v[i].spec.mask_hash = fg_mask_hash_of(fg_pattern_mask(p, FG_MASK_CUDA));
        fg_config_unset(&v[i].cfg);
        fg_variant_key(&v[i], "tpl", 13, 0, "sm_90a", key[i], sizeof key[i]);
        fg_pattern_destroy(p);
    }
    CHECK(strcmp(key[0], key[1]) != 0, "two masks share the key %s", key[0]);
    CHECK(!fg_spec_equal(&v[0].spec, &v[1].spec), "two masks are the same spec");
    char tune[2][160];
    for (int i = 0; i < 2; ++i) fg_tuning_spec_text(&v[i].spec, FG_PATH_AUTO, 128, 128, tune[i], sizeof tune[i]);
    CHECK(strcmp(tune[0], tune[1]) != 0 && strlen(tune[0]) < sizeof tune[0] - 1, "tuning specs: %s", tune[0]);
    /* item 2: 64-bit arithmetic whose wrapping is defined */
    fg_pattern *w;
    if (fg_pattern_create(g_ctx, "{mask='kv_idx <= q_idx && kv_idx * 4611686018427387904 >= 0'}", NULL, &w) == FG_OK) {
        const char *c = fg_pattern_mask(w, FG_MASK_CUDA);
        CHECK_CONTAINS(c, "fg::mx_mul64((long long)kv_idx, 4611686018427387904ll) >= 0ll");
        CHECK(c && !strstr(c, " * "), "a plain signed product in %s", c);
        fg_pattern_destroy(w);
    }
}

/* ---- the mask in the variant, the kernel source and the plan -------------- */

static void test_mask_variant(void) {
    fg_pattern *p;
    if (fg_pattern_create(g_ctx, "sliding_window", "window=100", &p) != FG_OK) { CHECK(0, "%s", fg_errmsg(g_ctx)); return; }
    /* a layout as fg_pattern_layout builds it (no device needed for the plan) */
    fg_block_layout L;
    memset(&L, 0, sizeof L);
    L.batch = L.heads = 1;
    L.num_q_blocks = 8; L.num_kv_blocks = 8; L.block_q = 128; L.block_k = 128;
    L.seqlen_q = L.seqlen_k = 1000;
    L.mask_cuda = (char *)fg_pattern_mask(p, FG_MASK_CUDA);
    L.mask_hash = fg_mask_hash_of(L.mask_cuda);
    L.mask_text = (char *)fg_pattern_mask(p, FG_MASK_TEXT);
    L.mask_c[0] = 100;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 128, 1, 2, 2, 1000, 1000);
    d.layout = &L;
    d.block_m = 128; d.block_n = 64; d.warps = 8; d.stages = 2; d.path = FG_PATH_MMA;
    fg_variant v;
    fg_fwd_params prm;
    fg_error e = {0};
    CHECK(fg_desc_plan(&d, 232448, &v, &prm, &e) == FG_OK, "%s", e.msg);
    CHECK(!memcmp(&v.spec.mask_hash, &L.mask_hash, sizeof L.mask_hash) && prm.mask_c[0] == 100, "mask in the variant and params");
    char key[512], item[80];
    fg_variant_key(&v, "tpl", 13, 0, "sm_90a", key, sizeof key);
    fg_mask_hash_format(&L.mask_hash, item, sizeof item);
    const char *keyp = key;
    CHECK(!strncmp(item, ",mask=", 6) && strlen(item) == 6 + 64, "%s", item);
    CHECK_CONTAINS(keyp, item);
    fg_sources src;
    fg_sources_load(&src, &e);
    fg_rendered r;
    CHECK(fg_render_forward(&src, &v, key, &r, &e) == FG_OK, "%s", e.msg);
    if (r.source) {
        CHECK_CONTAINS(r.source, "static constexpr bool MASK_MOD = true;");
        CHECK_CONTAINS(r.source, "return ((fg::mx_abs32((q_idx - kv_idx)) <= (int)p.mask_c[0])) != 0;");
        CHECK_CONTAINS(r.source, "// mask of partial blocks: (abs((q_idx - kv_idx)) <= window)");
        fg_rendered_free(&r);
    }
    /* without the mask, the source has no trace of it */
    fg_variant plain = v;
    memset(&plain.spec.mask_hash, 0, sizeof plain.spec.mask_hash);
    plain.spec.mask_cuda = plain.spec.mask_text = NULL;
    char key2[512];
    fg_variant_key(&plain, "tpl", 13, 0, "sm_90a", key2, sizeof key2);
    CHECK(!strstr(key2, "mask="), "plain key %s", key2);
    CHECK(fg_render_forward(&src, &plain, key2, &r, &e) == FG_OK, "%s", e.msg);
    if (r.source) { CHECK(!strstr(r.source, "MASK_MOD") && !strstr(r.source, "mask"), "mask text in a plain variant"); fg_rendered_free(&r); }
    /* a mask needs a sparse variant */
    fg_variant dense = v;
    dense.spec.sparse = 0;
    CHECK(fg_render_forward(&src, &dense, key, &r, &e) == FG_ERR_TEMPLATE, "mask on a dense variant rendered");
    CHECK_CONTAINS(e.msg, "needs a block-sparse variant");
    /* the layout is tied to its sizes */
    d.seqlen_q = 999;
    CHECK(fg_desc_plan(&d, 232448, &v, &prm, &e) == FG_ERR_BAD_LAYOUT, "other seqlen accepted");
    CHECK_CONTAINS(e.msg, "evaluated from its pattern for seqlen_q=1000");
    fg_error_clear(&e);
    fg_sources_free(&src);
    fg_pattern_destroy(p);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/flashgen-patterns-%d", (int)getpid());
    mkdir(g_dir, 0700);
    fg_context_create(&g_ctx);
    test_expr();
    test_classify();
    test_builtins();
    test_mask_variant();
    test_mask_identity();
    fg_pattern_builtin b[32];
    const int n = fg_pattern_builtins(g_ctx, b, 32);
    CHECK(n == 8, "%d built-ins listed", n);
    fg_context_destroy(g_ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary("test_patterns");
}
