/* The backward pass with the score modifications (softcap, ALiBi, window,
 * sinks) without a GPU:
 * - the float64 reference (runtime/reference_bwd.c) against finite
 *   differences of its forward, dq, dk, dv and dsinks, each modification
 *   alone and all together, every causal mode, GQA, windows with empty
 *   rows; its forward against the forward's reference (runtime/reference.c,
 *   itself checked against the formula in test_score_fwd_cpu);
 * - the plan: the modifications reach fg_bwd_params, FG_PATH_WGMMA and
 *   bad dsinks are refused, the Hopper kernel is never
 *   offered for a variant with modifications;
 * - the backward's window tile range (window_query_tiles) checked against
 *   the definition at compile time by an NVRTC probe;
 * - renders (the traits present iff used; bwd_wgmma, and a score without
 *   its derivative, refused)
 *   and NVRTC compiles for sm_80 and sm_90a without spills. */
#include <math.h>
#include <stdlib.h>

#include "gen/render.h"
#include "runtime/backward.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "runtime/reference_bwd.h"
#include "select/bwd_config.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

#define H100_SMEM 232448
#define DEV(x) ((const float *)(uintptr_t)(x)) /* a device address the plan never reads */

/* ---- the reference against finite differences ---- */

typedef struct fd_case {
    int batch, hq, hkv, sq, sk, causal;
    float softcap;
    int alibi;            /* 0 off, 1 [heads_q], 2 [batch, heads_q] */
    int left, right;      /* window, -1 unbounded */
    int sink;
} fd_case;

typedef struct fd_state {
    const fg_attention_desc *d;
    const fg_ref_mods *mods;
    double *q, *k, *v;
    const double *dout;
    double *o;
    size_t no;
} fd_state;

static double loss(const fd_state *s) {
    fg_reference_forward_mods_f64(s->d, NULL, NULL, s->mods, s->q, s->k, s->v, s->o);
    double l = 0;
    for (size_t i = 0; i < s->no; ++i) l += s->dout[i] * s->o[i];
    return l;
}

/* max |analytic - numeric| / max(1, |numeric|) over the n elements of x
 * (float64 inputs) or xf (the float sinks, with a step exact in fp32) */
static double fd_error(const fd_state *s, double *x, float *xf, const double *grad, size_t n) {
    double worst = 0;
    const double h = xf ? 1.0 / 4096 : 1e-5;
    for (size_t i = 0; i < n; ++i) {
        const double x0 = xf ? xf[i] : x[i];
        double l[2];
        for (int t = 0; t < 2; ++t) {
            if (xf) xf[i] = (float)(x0 + (t ? -h : h));
            else x[i] = x0 + (t ? -h : h);
            l[t] = loss(s);
        }
        if (xf) xf[i] = (float)x0;
        else x[i] = x0;
        const double num = (l[0] - l[1]) / (2 * h), err = fabs(num - grad[i]) / fmax(1.0, fabs(num));
        if (err > worst) worst = err;
    }
    return worst;
}

static void fd_one(const fd_case *c, fg_rng *rng) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 8, c->batch, c->hq, c->hkv, c->sq, c->sk);
    d.causal = (fg_causal)c->causal;
    d.softmax_scale = 0.9f;
    d.softcap = c->softcap;
    d.window_left = c->left;
    d.window_right = c->right;
    float slopes[2 * 4], sinks[4];
    for (int i = 0; i < 8; ++i) slopes[i] = 0.125f * (float)(1 + i % 5);
    for (int i = 0; i < 4; ++i) sinks[i] = 0.75f - 0.5f * (float)i;
    fg_ref_mods mods = {0};
    if (c->alibi) mods.alibi_slopes = slopes;
    d.alibi_batch_stride = c->alibi == 2 ? c->hq : 0;
    if (c->sink) mods.sinks = sinks;

    const size_t rq = (size_t)d.batch * d.seqlen_q * d.heads_q, rk = (size_t)d.batch * d.seqlen_k * d.heads_kv;
    const size_t nq = rq * 8, nk = rk * 8;
    /* q, k, v are bf16 values, so that the forward can be compared with runtime/reference.c's */
    uint16_t *hq = malloc(2 * nq), *hk = malloc(2 * nk), *hv = malloc(2 * nk);
    double *q = malloc(8 * nq), *k = malloc(8 * nk), *v = malloc(8 * nk), *dout = malloc(8 * nq), *o = malloc(8 * nq);
    double *o16 = malloc(8 * nq), *lse = malloc(8 * (rq + 1));
    double *dq = malloc(8 * nq), *dk = malloc(8 * nk), *dv = malloc(8 * nk), dsinks[4];
    for (size_t i = 0; i < nq; ++i) q[i] = fg_half_to_float(hq[i] = fg_float_to_half(1.5f * (float)fg_rng_normal(rng), FG_BF16), FG_BF16);
    for (size_t i = 0; i < nk; ++i) k[i] = fg_half_to_float(hk[i] = fg_float_to_half(1.5f * (float)fg_rng_normal(rng), FG_BF16), FG_BF16);
    for (size_t i = 0; i < nk; ++i) v[i] = fg_half_to_float(hv[i] = fg_float_to_half((float)fg_rng_normal(rng), FG_BF16), FG_BF16);
    for (size_t i = 0; i < nq; ++i) dout[i] = fg_rng_normal(rng);

    /* 1. the forward here is runtime/reference.c's (the one the GPU forward is checked against) */
    fg_reference_forward_mods(&d, NULL, &mods, hq, hk, hv, o16, lse);
    CHECK(fg_reference_forward_mods_f64(&d, NULL, NULL, &mods, q, k, v, o), "out of memory");
    double fwd = 0;
    for (size_t i = 0; i < nq; ++i) fwd = fmax(fwd, fabs(o[i] - o16[i]));
    /* 2. the backward against finite differences of that forward */
    CHECK(fg_reference_backward_mods_f64(&d, NULL, NULL, &mods, q, k, v, dout, dq, dk, dv, c->sink ? dsinks : NULL),
          "out of memory");
    const fd_state s = {&d, &mods, q, k, v, dout, o, nq};
    const double eq = fd_error(&s, q, NULL, dq, nq), ek = fd_error(&s, k, NULL, dk, nk), ev = fd_error(&s, v, NULL, dv, nk);
    const double es = c->sink ? fd_error(&s, NULL, sinks, dsinks, (size_t)c->hq) : 0;
    printf("b=%d hq=%d hkv=%d sq=%d sk=%d causal=%d softcap=%g alibi=%d window=(%d,%d) sink=%d: forward %.1e, dq %.1e dk "
           "%.1e dv %.1e dsinks %.1e\n",
           c->batch, c->hq, c->hkv, c->sq, c->sk, c->causal, (double)c->softcap, c->alibi, c->left, c->right, c->sink, fwd,
           eq, ek, ev, es);
    CHECK(fwd < 1e-12, "the float64 forward differs from runtime/reference.c's by %g", fwd);
    CHECK(eq < 1e-7 && ek < 1e-7 && ev < 1e-7 && es < 1e-6, "reference gradient differs from finite differences");
    /* 3. the modifications matter: without them the gradient differs */
    double *dq0 = malloc(8 * nq), diff = 0;
    fg_attention_desc d0 = d;
    d0.softcap = 0;
    d0.window_left = d0.window_right = -1;
    fg_reference_backward_mods_f64(&d0, NULL, NULL, NULL, q, k, v, dout, dq0, dk, dv, NULL);
    for (size_t i = 0; i < nq; ++i) diff = fmax(diff, fabs(dq0[i] - dq[i]));
    CHECK(diff > 1e-3, "the modifications change nothing (%g)", diff);
    free(dq0);
    free(hq); free(hk); free(hv); free(q); free(k); free(v); free(dout); free(o); free(o16); free(lse);
    free(dq); free(dk); free(dv);
}

static void test_finite_differences(void) {
    static const fd_case cases[] = {
        /* batch hq hkv sq sk causal softcap alibi left right sink */
        {1, 2, 1, 5, 7, 0, 2.f, 0, -1, -1, 0}, /* each alone */
        {1, 2, 1, 6, 6, 1, 0.f, 1, -1, -1, 0},
        {2, 2, 1, 6, 5, 2, 0.f, 2, -1, -1, 0},
        {1, 2, 2, 7, 7, 0, 0.f, 0, 2, 1, 0},
        {1, 4, 2, 5, 6, 1, 0.f, 0, -1, -1, 1},
        /* windows leaving rows empty: bottom-right with sq > sk, top-left past sk */
        {1, 2, 1, 8, 4, 1, 0.f, 0, 0, 0, 0},
        {1, 2, 1, 8, 4, 2, 0.f, 0, 1, 0, 1},
        {1, 2, 1, 7, 5, 0, 0.f, 0, 0, -1, 0},
        /* all together, every causal mode, GQA and MQA, seqlen_q <, =, > seqlen_k */
        {2, 4, 2, 6, 9, 0, 1.5f, 1, 3, 2, 1},
        {1, 4, 1, 9, 6, 1, 2.5f, 2, 2, 0, 1},
        {2, 2, 1, 7, 7, 2, 1.f, 1, 1, 1, 1},
        {1, 3, 1, 6, 6, 0, 3.f, 2, -1, 2, 1},
    };
    fg_rng rng;
    fg_rng_seed(&rng, 13);
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i) fd_one(&cases[i], &rng);
    /* a user expression without its derivative: the reference refuses it
     * (test_bwd_score_cpu differentiates expressions) */
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 8, 1, 1, 1, 2, 2);
    fg_ref_mods m = {0};
    m.score = (const struct fg_score_expr *)(uintptr_t)1;
    double x[16] = {0};
    CHECK(!fg_reference_backward_mods_f64(&d, NULL, NULL, &m, x, x, x, x, x, x, x, NULL), "a score expression differentiated");
}

/* ---- the plan ---- */

static fg_status bplan(const fg_attention_desc *d, fg_variant *v, fg_bwd_params *p, fg_error *e) {
    fg_attention_desc dd;
    fg_error_clear(e);
    return fg_backward_plan(d, H100_SMEM, &dd, v, p, e);
}

static void expect_refused(const fg_attention_desc *d, fg_status want, const char *needle, const char *what) {
    fg_error e = {0};
    fg_variant v;
    fg_bwd_params p;
    CHECK(bplan(d, &v, &p, &e) == want, "%s: not refused (%s)", what, e.msg ? e.msg : "");
    CHECK_CONTAINS(e.msg, needle);
    fg_error_clear(&e);
}

static void test_plan(void) {
    fg_error e = {0};
    fg_variant v;
    fg_bwd_params p;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 128, 2, 8, 2, 300, 500);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    d.softcap = 30.f;
    d.softmax_scale = 0.125f;
    d.alibi_slopes = DEV(0x1000);
    d.alibi_batch_stride = 8;
    d.window_left = 100000; /* clamped to max(seqlen_q, seqlen_k) */
    d.window_right = 0;
    d.sinks = DEV(0x2000);
    float *dsinks = (float *)(uintptr_t)0x3000;
    d.dsinks = dsinks;
    CHECK(bplan(&d, &v, &p, &e) == FG_OK, "all four: %s", e.msg);
    CHECK(v.spec.kind == FG_KIND_BWD && v.spec.mods == (FG_MOD_SOFTCAP | FG_MOD_ALIBI | FG_MOD_WINDOW | FG_MOD_SINK),
          "variant mods %d", v.spec.mods);
    CHECK(p.softcap == 30.f && fabsf(p.softcap_scale - 0.125f / 30.f) < 1e-9f && p.mod_offset == 200 &&
              p.alibi_slopes == DEV(0x1000) && p.alibi_batch_stride == 8 && p.window_left == 500 && p.window_right == 0 &&
              p.sinks == DEV(0x2000) && p.dsinks == dsinks && p.scale == 0.125f,
          "params: cap %g/%g off %d window %d/%d", (double)p.softcap, (double)p.softcap_scale, p.mod_offset, p.window_left,
          p.window_right);
    char key[512];
    fg_variant_key(&v, "h", 13, 0, "sm_90a", key, sizeof key);
    CHECK(strstr(key, "bwd_mma:") && strstr(key, ",kind=bwd,mods=softcap+alibi+window+sink"), "key %s", key);
    /* the Hopper kernel is never offered for a variant with modifications,
     * is for the same variant without them */
    fg_config c;
    CHECK(!fg_bwd_wgmma_config(&v.spec, &c), "Hopper backward offered with mods");
    for (int m = 1; m < 16; ++m) {
        fg_spec s = v.spec;
        s.mods = m;
        CHECK(!fg_bwd_wgmma_config(&s, &c), "Hopper backward offered with mods %d", m);
        fg_config w = {0};
        fg_config_unset(&w);
        w.block_m = 64; w.block_n = 128; w.warps = 8; w.wgmma = 1;
        CHECK(fg_bwd_config_check(&s, &w, H100_SMEM, &e) == FG_ERR_UNSUPPORTED, "wgmma=1 accepted with mods %d", m);
        CHECK_CONTAINS(e.msg, "score modification");
        fg_error_clear(&e);
    }
    fg_spec s0 = v.spec;
    s0.mods = 0;
    CHECK(fg_bwd_wgmma_config(&s0, &c), "Hopper backward not offered without mods");
    /* top-left: offset 0; no mods: no mod parameters needed */
    d.causal = FG_CAUSAL_TOP_LEFT;
    CHECK(bplan(&d, &v, &p, &e) == FG_OK && p.mod_offset == 0, "top-left offset %d", p.mod_offset);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    /* refusals, each with its reason */
    fg_attention_desc x = d;
    x.path = FG_PATH_WGMMA;
    expect_refused(&x, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA", "wgmma path");
    x = d;
    x.path = FG_PATH_MMA;
    CHECK(bplan(&x, &v, &p, &e) == FG_OK, "FG_PATH_MMA: %s", e.msg);
    x.path = FG_PATH_TMA;
    expect_refused(&x, FG_ERR_UNSUPPORTED, "FG_PATH_TMA", "tma path"); /* the Hopper kernel has no mods */
    x = d;
    x.sinks = NULL;
    expect_refused(&x, FG_ERR_INVALID_ARGUMENT, "sinks is NULL", "dsinks without sinks");
    x = d;
    x.dsinks = (float *)(uintptr_t)0x3002;
    expect_refused(&x, FG_ERR_INVALID_ARGUMENT, "4-byte aligned", "misaligned dsinks");
    x = d;
    x.deterministic = 1;
    expect_refused(&x, FG_ERR_UNSUPPORTED, "deterministic", "dsinks deterministic");
    x.dsinks = NULL;
    /* a left window bound: the first key block of a query block's dQ turns
     * would not be 0 (a hang); a side as long as the sequences is unbounded */
    x.window_left = 64;
    expect_refused(&x, FG_ERR_UNSUPPORTED, "window with a left bound", "deterministic window_left");
    x.window_left = x.seqlen_q > x.seqlen_k ? x.seqlen_q : x.seqlen_k;
    CHECK(bplan(&x, &v, &p, &e) == FG_OK && p.deterministic, "deterministic, unbounded window_left: %s", e.msg);
    x.window_left = -1;
    CHECK(bplan(&x, &v, &p, &e) == FG_OK && p.deterministic, "deterministic with sinks, no dsinks: %s", e.msg);
    /* the forward's checks hold: a layout, a bad softcap */
    x = d;
    x.softcap = -1.f;
    expect_refused(&x, FG_ERR_INVALID_ARGUMENT, "softcap", "negative softcap");
    fg_error_clear(&e);
}

/* ---- window_query_tiles against the definition (NVRTC, compile time) ---- */

static const char *const BWD_WINDOW_PROBE =
    "#include \"fg_score.cuh\"\n"
    "#include \"fg_bwd_params.h\"\n"
    "__host__ __device__ constexpr bool vis(int i, int j, int off, int l, int r) {\n"
    "  return (l < 0 || j >= i + off - l) && (r < 0 || j <= i + off + r); }\n"
    "template <int BM, int BN> __host__ __device__ constexpr bool check(int sq, int sk, int off, int l, int r) {\n"
    "  fg_bwd_params p{};\n"
    "  p.mod_offset = off; p.window_left = l; p.window_right = r;\n"
    "  const int m = (sq + BM - 1) / BM;\n"
    "  for (int n0 = 0; n0 < sk; n0 += BN) {\n"
    "    int first = 0, end = 0;\n"
    "    fg::window_query_tiles<BM>(p, n0, n0 + BN - 1, m, first, end);\n"
    "    if (end > m) return false;\n"
    "    for (int mb = 0; mb < m; ++mb) {\n"
    "      const bool kept = mb >= first && mb < end;\n"
    "      const bool cut = fg::window_cuts<BN>(p, n0 / BN, mb * BM, mb * BM + BM - 1);\n"
    "      for (int i = mb * BM; i < mb * BM + BM && i < sq; ++i)\n"
    "        for (int j = n0; j < n0 + BN && j < sk; ++j) {\n"
    "          if (vis(i, j, off, l, r) && !kept) return false;\n"
    "          if (!cut && !vis(i, j, off, l, r)) return false;\n"
    "          if (vis(i, j, off, l, r) != fg::window_visible(p, i, j)) return false;\n"
    "        }\n"
    "    }\n"
    "  }\n"
    "  return true;\n"
    "}\n"
    "template <int BM, int BN> __host__ __device__ constexpr bool all(int sq, int sk, int a) {\n"
    "  const int ws[5] = {-1, 0, 1, 5, 40}, off = a ? sk - sq : 0;\n"
    "  for (int x = 0; x < 5; ++x)\n"
    "    for (int y = 0; y < 5; ++y)\n"
    "      if (!check<BM, BN>(sq, sk, off, ws[x], ws[y])) return false;\n"
    "  return true;\n"
    "}\n"
    "#define FG_PROBE(BM, BN, SQ, SK) \\\n"
    "  static_assert(all<BM, BN>(SQ, SK, 0) && all<BM, BN>(SQ, SK, 1), \"backward window tiles \" #BM \"x\" #BN);\n"
    "FG_PROBE(16, 16, 37, 23) FG_PROBE(16, 16, 23, 37) FG_PROBE(16, 16, 30, 30)\n"
    "FG_PROBE(32, 16, 37, 23) FG_PROBE(32, 16, 23, 37) FG_PROBE(32, 16, 30, 30)\n"
    "FG_PROBE(16, 32, 37, 23) FG_PROBE(16, 32, 23, 37) FG_PROBE(16, 32, 30, 30)\n"
    /* near 2^31 (seqlen_q 2^30, seqlen_k 1000, bottom-right, a left side
     * just under seqlen_q): key_last - offset + left is 2^31, which
     * overflowed an int and dropped the last key block's query tiles */
    "__host__ __device__ constexpr bool big() {\n"
    "  fg_bwd_params p{};\n"
    "  p.mod_offset = 1000 - (1 << 30); p.window_left = (1 << 30) - 23; p.window_right = -1;\n"
    "  int first = -1, end = -1;\n"
    "  fg::window_query_tiles<64>(p, 960, 1023, (1 << 30) / 64, first, end);\n"
    "  return first == 0 && end == (1 << 30) / 64;\n"
    "}\n"
    "static_assert(big(), \"backward window tiles near 2^31\");\n";

static void test_window_probe(const fg_sources *src) {
    nvrtc_probe(src, "bwd_window_probe", BWD_WINDOW_PROBE, "&& !kept) return false;", "&&  kept) return false;",
                "backward window tiles");
}

/* ---- renders and compiles ---- */

static void spec_of(fg_spec *s, int hd, int causal, int mods) {
    memset(s, 0, sizeof *s);
    s->head_dim = hd;
    s->dtype = causal ? FG_FP16 : FG_BF16;
    s->causal = causal;
    s->kind = FG_KIND_BWD;
    s->mods = mods;
}

static void test_render(const fg_sources *src) {
    static const char *traits[4] = {"SOFTCAP = true", "ALIBI = true", "WINDOW = true", "SINK = true"};
    fg_error e = {0};
    for (int m = 0; m < 16; ++m) {
        fg_variant v;
        spec_of(&v.spec, 128, m & 1, m);
        fg_config c[8];
        CHECK(fg_bwd_candidates(&v.spec, H100_SMEM, 0, 0, c, 8) > 0, "no candidate");
        v.cfg = c[0];
        fg_rendered r;
        CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "render mods %d: %s", m, e.msg);
        fg_error_clear(&e);
        if (!r.source) continue;
        for (int i = 0; i < 4; ++i)
            CHECK(!strstr(r.source, traits[i]) == !(m & (1 << i)), "mods %d: trait %s %s", m, traits[i],
                  m & (1 << i) ? "missing" : "present");
        CHECK(!strstr(r.source, "// score modifications:") == !m, "mods %d: banner", m);
        fg_rendered_free(&r);
        /* the Hopper template refuses them */
        if (m) {
            fg_variant w = v;
            w.spec.mods = 0;
            CHECK(fg_bwd_wgmma_config(&w.spec, &w.cfg), "no Hopper config");
            w.spec.mods = m;
            CHECK(fg_render_forward(src, &w, "k", &r, &e) == FG_ERR_TEMPLATE, "bwd_wgmma rendered mods %d", m);
            CHECK_CONTAINS(e.msg, "not implemented by this kernel family");
            fg_error_clear(&e);
        }
    }
    /* a user expression without its derivative: refused by the backward
     * template (the plan gives it one: test_bwd_score_cpu) */
    fg_variant v;
    spec_of(&v.spec, 64, 0, 0);
    v.spec.score_hash = fg_mask_hash_of("s * 2.0f");
    v.spec.score_cuda = "s * 2.0f";
    fg_config c[8];
    fg_bwd_candidates(&v.spec, H100_SMEM, 0, 0, c, 8);
    v.cfg = c[0];
    fg_rendered r;
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "a score expression without score_d rendered");
    CHECK_CONTAINS(e.msg, "needs its derivative");
    fg_error_clear(&e);
}

/* The runtime's rule (fg_bwd_pick_config): the first candidate without spills. */
static void compile_one(const fg_sources *src, int hd, int causal, int mods) {
    static const char *archs[] = {"sm_80", "sm_90a"};
    static const int smem[] = {166912, H100_SMEM};
    for (int a = 0; a < 2; ++a) {
        fg_variant v;
        spec_of(&v.spec, hd, causal, mods);
        char what[64];
        snprintf(what, sizeof what, "hd %3d causal=%d mods=%2d", hd, causal, mods);
        CHECK(bwd_compile_clean(src, &v, archs[a], smem[a], NULL, what), "%s %s: every backward candidate spills", what,
              archs[a]);
    }
}

static void test_compile(const fg_sources *src) {
    const int all = FG_MOD_SOFTCAP | FG_MOD_ALIBI | FG_MOD_WINDOW | FG_MOD_SINK;
    static const int hds[] = {64, 128, 256};
    for (unsigned i = 0; i < 3; ++i)
        for (int causal = 0; causal < 2; ++causal) compile_one(src, hds[i], causal, all);
    for (int m = 1; m < all; m <<= 1) compile_one(src, 128, 0, m);
}

int main(void) {
    test_finite_differences();
    test_plan();
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) { CHECK(0, "sources"); return test_summary("test_bwd_mods_cpu"); }
    test_window_probe(&src);
    test_render(&src);
    test_compile(&src);
    fg_sources_free(&src);
    return test_summary("test_bwd_mods_cpu");
}
