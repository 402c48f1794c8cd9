/* CPU tests of the forward's built-in score modifications (issue 13;
 * docs/SCORE-WIRING.md; no GPU): the descriptor fields and their checks,
 * the variant they select (mods in the key, nothing new in other keys), the
 * kernel parameters, the rendered traits, compiles for sm_80 and sm_90a
 * without spills, and the float64 reference against a formula written
 * independently here. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen/compile.h"
#include "gen/render.h"
#include "gen/score_expr.h"
#include "gen/sources.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "select/heuristic.h"
#include "score_window_probe.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

#define H100_SMEM 232448
#define DEV(x) ((const float *)(uintptr_t)(x)) /* a device address the plan never reads */

static fg_attention_desc base(void) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 128, 2, 8, 2, 300, 500);
    return d;
}

static fg_status plan(const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *e) {
    fg_error_clear(e);
    return fg_desc_plan(d, H100_SMEM, v, p, e);
}

static void expect(fg_attention_desc d, fg_status want, const char *needle, const char *what) {
    fg_error e = {0};
    fg_variant v;
    fg_fwd_params p;
    const fg_status st = plan(&d, &v, &p, &e);
    CHECK(st == want, "%s: status %d, want %d (%s)", what, (int)st, (int)want, e.msg);
    if (needle) CHECK_CONTAINS(e.msg, needle);
    fg_error_clear(&e);
}

static void test_desc_defaults(void) {
    fg_attention_desc d = base();
    CHECK(d.window_left == -1 && d.window_right == -1, "init sets the window off (-1, -1)");
    CHECK(d.softcap == 0.f && !d.alibi_slopes && !d.sinks && !d.alibi_batch_stride, "init leaves the rest off");
    fg_variant v;
    fg_fwd_params p;
    fg_error e = {0};
    CHECK(plan(&d, &v, &p, &e) == FG_OK && v.spec.mods == 0, "a plain call has no mods: %s", e.msg);
    /* an older header's struct ends before the window: its bytes past
     * struct_size are not read, and the window counts as off (-1), not 0 */
    d.struct_size = (uint32_t)offsetof(fg_attention_desc, softcap);
    d.window_left = d.window_right = 0;
    d.softcap = 5.f;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && v.spec.mods == 0, "an older struct_size reads no mods: %s (mods %d)", e.msg,
          v.spec.mods);
    fg_error_clear(&e);
}

static void test_checks(void) {
    fg_attention_desc d = base();
    d.softcap = -1.f;
    expect(d, FG_ERR_INVALID_ARGUMENT, "softcap must be 0 (off) or positive", "negative softcap");
    d.softcap = NAN;
    expect(d, FG_ERR_INVALID_ARGUMENT, "softcap", "NaN softcap");
    d.softcap = INFINITY;
    expect(d, FG_ERR_INVALID_ARGUMENT, "softcap", "infinite softcap");
    d.softcap = 3e38f; /* cap * log2 e, the softmax's scale of tanh, would overflow */
    expect(d, FG_ERR_INVALID_ARGUMENT, "at most 2e38", "softcap past 2e38");
    d = base();
    d.window_left = -2;
    expect(d, FG_ERR_INVALID_ARGUMENT, "window_left = -2", "window below -1");
    d = base();
    d.window_right = -7;
    expect(d, FG_ERR_INVALID_ARGUMENT, "window_right = -7", "window below -1");
    d = base();
    d.alibi_batch_stride = 8;
    expect(d, FG_ERR_INVALID_ARGUMENT, "alibi_batch_stride", "a slope stride without slopes");
    d.alibi_slopes = DEV(0x1000);
    d.alibi_batch_stride = 4;
    expect(d, FG_ERR_INVALID_ARGUMENT, "below heads_q", "a slope stride below heads_q");
    d.alibi_batch_stride = -8;
    expect(d, FG_ERR_INVALID_ARGUMENT, "alibi_batch_stride", "a negative slope stride");
    d.alibi_batch_stride = 0;
    d.alibi_slopes = DEV(0x1002);
    expect(d, FG_ERR_INVALID_ARGUMENT, "4-byte aligned", "misaligned slopes");
    d = base();
    d.sinks = DEV(0x1001);
    expect(d, FG_ERR_INVALID_ARGUMENT, "4-byte aligned", "misaligned sinks");
    /* valid, but not built: named */
    d = base();
    d.softcap = 30.f;
    d.path = FG_PATH_WGMMA;
    expect(d, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA does not implement score modification 'softcap'", "wgmma path");
    d.softcap = 0.f;
    d.window_left = 64;
    expect(d, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA does not implement score modification 'window'", "wgmma path");
    d.path = FG_PATH_TMA;
    expect(d, FG_OK, NULL, "the TMA path takes a window");
    /* the built-ins on the inference path: planned as infer=1 variants with
     * their bits; each combination with each inference field */
    static const int mods[] = {FG_MOD_SOFTCAP, FG_MOD_ALIBI, FG_MOD_WINDOW, FG_MOD_SINK, FG_MOD_ALL};
    for (int m = 0; m < 5; ++m)
        for (int f = 0; f < 4; ++f) {
            d = base();
            if (mods[m] & FG_MOD_SOFTCAP) d.softcap = 30.f;
            if (mods[m] & FG_MOD_ALIBI) { d.alibi_slopes = DEV(0x1000); d.alibi_batch_stride = 8; }
            if (mods[m] & FG_MOD_WINDOW) { d.window_left = 128; d.window_right = 0; }
            if (mods[m] & FG_MOD_SINK) d.sinks = DEV(0x1100);
            if (f == 0) d.seqlens_k = (const int32_t *)(uintptr_t)0x2000;
            if (f == 1) { d.cu_seqlens_q = d.cu_seqlens_k = (const int32_t *)(uintptr_t)0x2000; d.total_q = d.total_k = 900; }
            if (f == 2) {
                d.seqlens_k = (const int32_t *)(uintptr_t)0x2000;
                d.block_table = (const int32_t *)(uintptr_t)0x3000;
                d.k_strides[0] = d.v_strides[0] = 16 * 2 * 128;
                d.page_size = 16;
                d.num_pages = 100;
                d.max_pages = 32;
            }
            if (f == 3) d.num_splits = 7;
            fg_variant v;
            fg_fwd_params p;
            fg_error e = {0};
            CHECK(plan(&d, &v, &p, &e) == FG_OK && v.spec.infer == 1 && v.spec.mods == mods[m] && v.cfg.wgmma == 0,
                  "mods %d with inference field %d: %s", mods[m], f, e.msg);
            fg_error_clear(&e);
        }
    d = base();
    d.window_left = 3;
    d.seqlens_k = (const int32_t *)(uintptr_t)0x2000;
    d.path = FG_PATH_TMA;
    expect(d, FG_ERR_UNSUPPORTED, "run on FG_PATH_MMA", "inference with a window on the TMA path");
    /* with a block-sparse layout they are planned too (a real layout needs
     * a device: test_gpu_backward's sparse cases with modifications) */
    /* the backward takes them on the mma.sync path only (tests/test_bwd_mods_cpu.c) */
    d = base();
    d.window_right = 0;
    d.path = FG_PATH_WGMMA;
    fg_attention_desc dd;
    fg_variant v;
    fg_bwd_params bp;
    fg_error e = {0};
    CHECK(fg_backward_plan(&d, H100_SMEM, &dd, &v, &bp, &e) == FG_ERR_UNSUPPORTED, "Hopper backward refuses a window");
    CHECK_CONTAINS(e.msg, "does not implement score modifications");
    fg_error_clear(&e);
}

static void test_params_and_keys(void) {
    fg_attention_desc d = base();
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    d.softcap = 50.f;
    d.alibi_slopes = DEV(0x1000);
    d.alibi_batch_stride = 8;
    d.window_left = 100;
    d.window_right = 1 << 30; /* clamped to max(seqlen_q, seqlen_k) */
    d.sinks = DEV(0x2000);
    fg_variant v;
    fg_fwd_params p;
    fg_error e = {0};
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "all four: %s", e.msg);
    CHECK(v.spec.mods == FG_MOD_ALL, "mods %d", v.spec.mods);
    CHECK(v.cfg.wgmma == -1, "FG_PATH_AUTO leaves the family to the heuristic (wgmma=%d)", v.cfg.wgmma);
    fg_config cand[16];
    const int nc = fg_heuristic_candidates(&v.spec, H100_SMEM, 0, 0, 2, cand, 16);
    CHECK(nc > 0 && cand[0].wgmma == 2, "on Hopper the TMA kernel first");
    for (int i = 0; i < nc; ++i) CHECK(cand[i].wgmma != 1, "never the wgmma family (candidate %d)", i);
    CHECK(p.mod_offset == 200, "bottom-right alignment: offset %d", p.mod_offset);
    CHECK(p.window_left == 100 && p.window_right == 500, "window clamped: %d %d", p.window_left, p.window_right);
    CHECK(fabsf(p.softcap_scale - p.scale / 50.f) < 1e-9f && p.softcap == 50.f, "softcap params");
    CHECK(p.alibi_slopes == d.alibi_slopes && p.alibi_batch_stride == 8 && p.sinks == d.sinks, "pointers passed");
    /* a positive cap so small that scale / cap overflows: tanh's argument
     * factor stays finite (inf would make a score of exactly 0 NaN), and
     * every logit then tends to 0 as the cap does */
    d.softcap = 1e-45f;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && isfinite(p.softcap_scale) && p.softcap_scale > 1e30f,
          "tiny softcap: scale factor %g finite", (double)p.softcap_scale);
    d.softcap = 50.f;
    d.causal = FG_CAUSAL_TOP_LEFT;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && p.mod_offset == 0, "top-left alignment: offset %d", p.mod_offset);
    d.causal = FG_CAUSAL_NONE;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && p.mod_offset == 200, "no causal: FlashAttention-2's alignment");
    char text[FG_VARIANT_TEXT_MAX];
    fg_variant_format(&v, text, sizeof text);
    CHECK(strstr(text, ",mods=softcap+alibi+window+sink") != NULL, "key names all four: %s", text);
    /* the SPEC text parses back to the same spec */
    fg_variant w;
    fg_causal c;
    CHECK(fg_spec_parse("hdim=128,mods=window+softcap", &w, &c, &e) == FG_OK && w.spec.mods == (FG_MOD_WINDOW | FG_MOD_SOFTCAP),
          "SPEC mods parse: %s", e.msg);
    CHECK(fg_spec_parse("hdim=128,mods=softcap+bias", &w, &c, &e) == FG_ERR_INVALID_ARGUMENT, "an unknown mod refused");
    CHECK_CONTAINS(e.msg, "'softcap+bias' for SPEC key 'mods'");
    fg_error_clear(&e);
    /* a plain variant's key does not mention mods, and equal specs compare equal */
    d = base();
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "plain");
    fg_variant_format(&v, text, sizeof text);
    CHECK(!strstr(text, "mods"), "plain key unchanged: %s", text);
    fg_spec a = v.spec, b = v.spec;
    b.mods = FG_MOD_SINK;
    CHECK(!fg_spec_equal(&a, &b), "mods are part of the spec identity");
    /* only one mod: only its name */
    d.softcap = 1.f;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && v.spec.mods == FG_MOD_SOFTCAP, "softcap alone");
    fg_variant_format(&v, text, sizeof text);
    CHECK(strstr(text, ",mods=softcap") && !strstr(text, "alibi"), "key: %s", text);
}

static void test_render(const fg_sources *src) {
    fg_variant v;
    memset(&v, 0, sizeof v);
    v.spec.head_dim = 128;
    v.spec.dtype = FG_BF16;
    v.spec.causal = 1;
    v.cfg = (fg_config){128, 64, 8, 2, 0, 1, 0, 0};
    fg_rendered r;
    fg_error e = {0};
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "plain render: %s", e.msg);
    CHECK(!strstr(r.source, "SOFTCAP") && !strstr(r.source, "score modifications"), "plain source has no mod traits");
    fg_rendered_free(&r);
    for (int i = 0; i < 4; ++i) {
        v.spec.mods = 1 << i;
        CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "render %s: %s", fg_spec_mod_name(i), e.msg);
        static const char *const traits[4] = {"SOFTCAP = true", "ALIBI = true", "WINDOW = true", "SINK = true"};
        for (int j = 0; j < 4; ++j)
            CHECK(!strstr(r.source, traits[j]) == (i != j), "mod %d: trait %s present iff used", i, traits[j]);
        fg_rendered_free(&r);
    }
    /* the TMA template has them too; the wgmma one refuses them (the runtime never asks) */
    v.spec.mods = FG_MOD_SINK | FG_MOD_WINDOW;
    v.cfg = (fg_config){128, 128, 12, 2, 0, 1, 2, 0};
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "TMA render: %s", e.msg);
    if (r.source) {
        CHECK(strstr(r.source, "SINK = true") && strstr(r.source, "WINDOW = true") && !strstr(r.source, "SOFTCAP"),
              "TMA traits");
        fg_rendered_free(&r);
    }
    v.cfg = (fg_config){128, 128, 8, 2, 0, 1, 1, 0};
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "the wgmma template refuses a sink");
    CHECK_CONTAINS(e.msg, "score modification 'window' is not implemented by this kernel family");
    fg_error_clear(&e);
    v.cfg = (fg_config){128, 64, 8, 2, 0, 1, 0, 0};
    v.spec.sparse = 1; /* block-sparse variants take them too */
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "sparse with a sink: %s", e.msg);
    if (r.source) {
        CHECK(strstr(r.source, "SINK = true") && strstr(r.source, "SPARSE = true"), "sparse traits");
        fg_rendered_free(&r);
    }
    fg_error_clear(&e);
}

/* As the runtime chooses: the first heuristic candidate that compiles
 * without spills, on each arch. */
static void compile_one(const fg_sources *src, int hd, int causal, int mods, const fg_score *sc) {
    static const char *archs[] = {"sm_80", "sm_90a"};
    fg_spec s;
    memset(&s, 0, sizeof s);
    s.head_dim = hd;
    s.dtype = causal ? FG_FP16 : FG_BF16;
    s.causal = causal;
    s.mods = mods;
    if (sc) {
        s.score_hash = sc->hash;
        s.score_cuda = sc->cuda;
        s.score_text = sc->text;
    }
    for (int a = 0; a < 2; ++a) {
        fg_config cand[16];
        const int n = fg_heuristic_candidates(&s, H100_SMEM, 0, 0, a ? 2 : 0, cand, 16); /* sm_90a: TMA first */
        CHECK(n > 0, "no candidate for hd %d", hd);
        int found = 0;
        for (int c = 0; c < n && !found; ++c) {
            CHECK(cand[c].wgmma != 1, "never the wgmma family");
            fg_variant v = {s, cand[c]};
            fg_rendered r;
            fg_error e = {0};
            if (fg_render_forward(src, &v, "test", &r, &e) != FG_OK) {
                CHECK(0, "render hd %d mods %d: %s", hd, mods, e.msg);
                fg_error_clear(&e);
                return;
            }
            fg_cubin cb;
            const fg_status st = fg_compile_cubin(src, r.source, archs[a], "test", &cb, &e);
            fg_rendered_free(&r);
            CHECK(st == FG_OK, "compile hd %d causal %d mods %d %s: %s", hd, causal, mods, archs[a], e.msg);
            if (st != FG_OK) { fg_error_clear(&e); return; }
            found = !cb.stats.spill_stores && !cb.stats.spill_loads && !cb.stats.stack_frame;
            printf("  hd %3d causal=%d mods=%2d%s %-6s %s block %dx%d: %d registers%s\n", hd, causal, mods, sc ? "+score" : "",
                   archs[a], v.cfg.wgmma == 2 ? "TMA" : "mma", v.cfg.block_m, v.cfg.block_n, cb.stats.registers,
                   found ? "" : " (spills: next candidate)");
            fg_cubin_free(&cb);
        }
        CHECK(found, "hd %d causal %d mods %d %s: every candidate spills", hd, causal, mods, archs[a]);
    }
}

static void test_compile(const fg_sources *src) {
    static const int dims[] = {64, 128, 256};
    for (int i = 0; i < 3; ++i)
        for (int causal = 0; causal < 2; ++causal) compile_one(src, dims[i], causal, FG_MOD_ALL, NULL);
    for (int m = 0; m < 4; ++m) compile_one(src, 128, 1, 1 << m, NULL);
}

/* The formula, written out: every visible logit, then lse and o directly
 * (no running maximum; the values here are small). */
static void brute(const fg_attention_desc *d, const float *slopes, const float *sinks, const uint16_t *q,
                  const uint16_t *k, const uint16_t *v, int b, int h, int i, double *o, double *lse) {
    const int D = d->head_dim, hk = h / (d->heads_q / d->heads_kv);
    const int sq = d->seqlen_q, sk = d->seqlen_k;
    const int off = d->causal == FG_CAUSAL_TOP_LEFT ? 0 : sk - sq;
    const double scale = 1.0 / sqrt((double)D);
    double den = sinks ? exp(sinks[h]) : 0.0;
    for (int x = 0; x < D; ++x) o[x] = 0;
    for (int j = 0; j < sk; ++j) {
        if (d->causal != FG_CAUSAL_NONE && j > i + off) continue;
        if (d->window_left >= 0 && j < i + off - d->window_left) continue;
        if (d->window_right >= 0 && j > i + off + d->window_right) continue;
        double s = 0;
        for (int x = 0; x < D; ++x)
            s += (double)fg_half_to_float(q[((size_t)(b * sq + i) * d->heads_q + h) * D + x], d->dtype) *
                 fg_half_to_float(k[((size_t)(b * sk + j) * d->heads_kv + hk) * D + x], d->dtype);
        s *= scale;
        if (d->softcap > 0) s = d->softcap * tanh(s / d->softcap);
        if (slopes) s += slopes[b * d->alibi_batch_stride + h] * -fabs((double)(i + off - j));
        den += exp(s);
        for (int x = 0; x < D; ++x) o[x] += exp(s) * fg_half_to_float(v[((size_t)(b * sk + j) * d->heads_kv + hk) * D + x], d->dtype);
    }
    for (int x = 0; x < D; ++x) o[x] = den > 0 ? o[x] / den : 0;
    *lse = den > 0 ? log(den) : -INFINITY;
}

static void test_reference(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 13);
    static const int shapes[][4] = {{2, 4, 2, 16}, {1, 2, 1, 16}}; /* batch, heads_q, heads_kv, head_dim */
    static const int lens[][2] = {{37, 37}, {21, 53}, {53, 21}};
    static const int windows[][2] = {{-1, -1}, {5, -1}, {-1, 3}, {4, 0}, {0, 0}, {2, 2}};
    int cases = 0, empty_rows = 0;
    for (int sh = 0; sh < 2; ++sh)
        for (int l = 0; l < 3; ++l)
            for (int causal = 0; causal < 3; ++causal)
                for (int w = 0; w < 6; ++w)
                    for (int mods = 0; mods < 4; ++mods) { /* bit 0: softcap, bit 1: alibi and sinks */
                        const int B = shapes[sh][0], H = shapes[sh][1], HK = shapes[sh][2], D = shapes[sh][3];
                        const int sq = lens[l][0], sk = lens[l][1];
                        fg_attention_desc d;
                        fg_attention_desc_init(&d, (mods & 1) ? FG_FP16 : FG_BF16, D, B, H, HK, sq, sk);
                        d.causal = (fg_causal)causal;
                        d.window_left = windows[w][0];
                        d.window_right = windows[w][1];
                        if (mods & 1) d.softcap = 2.5f;
                        const size_t nq = (size_t)B * sq * H * D, nk = (size_t)B * sk * HK * D;
                        uint16_t *q = malloc(nq * 2), *k = malloc(nk * 2), *v = malloc(nk * 2);
                        fg_fill_normal(q, nq, d.dtype, &rng);
                        fg_fill_normal(k, nk, d.dtype, &rng);
                        fg_fill_normal(v, nk, d.dtype, &rng);
                        float slopes[2 * 4], sinks[4];
                        for (int x = 0; x < 2 * 4; ++x) slopes[x] = (float)(0.05 + 0.3 * fg_rng_uniform(&rng));
                        for (int x = 0; x < 4; ++x) sinks[x] = (float)(fg_rng_normal(&rng));
                        if (mods & 2) d.alibi_batch_stride = (B > 1 && causal == 1) ? H : 0;
                        const fg_ref_mods rm = {.alibi_slopes = (mods & 2) ? slopes : NULL, .sinks = (mods & 2) ? sinks : NULL};
                        double *o = malloc(sizeof(double) * (size_t)B * sq * H * D), *lse = malloc(sizeof(double) * (size_t)B * H * sq);
                        fg_reference_forward_mods(&d, NULL, &rm, q, k, v, o, lse);
                        double bo[16], blse;
                        double worst = 0;
                        for (int b = 0; b < B; ++b)
                            for (int h = 0; h < H; ++h)
                                for (int i = 0; i < sq; ++i) {
                                    brute(&d, rm.alibi_slopes, rm.sinks, q, k, v, b, h, i, bo, &blse);
                                    const double rl = lse[((size_t)b * H + h) * sq + i];
                                    if (isinf(blse) || (rm.sinks && blse == sinks[h])) {
                                        CHECK(rl == blse || fabs(rl - blse) < 1e-12, "empty row lse %g vs %g", rl, blse);
                                        ++empty_rows;
                                    } else {
                                        worst = fmax(worst, fabs(rl - blse));
                                    }
                                    for (int x = 0; x < D; ++x)
                                        worst = fmax(worst, fabs(o[(((size_t)b * sq + i) * H + h) * D + x] - bo[x]));
                                }
                        CHECK(worst < 1e-10, "reference vs formula: %g (shape %d lens %d causal %d window %d mods %d)", worst,
                              sh, l, causal, w, mods);
                        ++cases;
                        free(q); free(k); free(v); free(o); free(lse);
                    }
    printf("  reference: %d cases against the formula, %d empty rows\n", cases, empty_rows);
    CHECK(empty_rows > 0, "some window leaves rows empty");
}

static void test_window_probe(const fg_sources *src) {
    /* the probe can fail: a wrong tile bound is a compile error */
    nvrtc_probe(src, "window_probe", WINDOW_PROBE, "if (v && !kept) return false;", "if (v &&  kept) return false;",
                "window tiles");
}

/* ---- user score expressions (fg_score_create) ---- */

#define USER_EXPR "score * w + bias[h * 5 + min(max(kv_idx - q_idx, -2), 2) + 2]"

static fg_score *user_score(fg_context *ctx, const void *bias, float w) {
    const fg_score_arg args[] = {{"w", FG_SCORE_CONST_FLOAT, 0, w, NULL, 0},
                                 {"bias", FG_SCORE_TABLE_FLOAT, 0, 0, bias, 4 * 5}};
    fg_score *s = NULL;
    CHECK(fg_score_create(ctx, USER_EXPR, args, 2, &s) == FG_OK, "create: %s", fg_errmsg(ctx));
    return s;
}

static void expect_create(fg_context *ctx, const char *expr, fg_score_arg a, fg_status want, const char *needle) {
    fg_score *s = (fg_score *)(uintptr_t)1;
    const fg_status st = fg_score_create(ctx, expr, &a, 1, &s);
    CHECK(st == want && s == NULL, "'%s': status %d, want %d (%s)", expr, (int)st, (int)want, fg_errmsg(ctx));
    CHECK_CONTAINS(fg_errmsg(ctx), needle);
}

static void test_user_create(fg_context *ctx) {
    fg_score *s = user_score(ctx, DEV(0x1000), 0.5f);
    if (!s) return;
    CHECK_CONTAINS(fg_score_text(s), "bias[");
    CHECK(strstr(s->cuda, "p.score_tf[0]") && strstr(s->cuda, "p.score_cf[0]"), "CUDA form: %s", s->cuda);
    fg_score_destroy(s);
    fg_score_destroy(NULL);
    const fg_score_arg t = {"t", FG_SCORE_TABLE_FLOAT, 0, 0, DEV(0x1000), 8};
    expect_create(ctx, "score + t[", t, FG_ERR_PATTERN, "column");
    expect_create(ctx, "q_idx - kv_idx", t, FG_ERR_PATTERN, "score expression");
    expect_create(ctx, "score + t[0]", (fg_score_arg){"t", FG_SCORE_TABLE_FLOAT, 0, 0, NULL, 8}, FG_ERR_INVALID_ARGUMENT,
                  "4-byte aligned device pointer");
    expect_create(ctx, "score + t[0]", (fg_score_arg){"t", FG_SCORE_TABLE_FLOAT, 0, 0, DEV(0x1002), 8},
                  FG_ERR_INVALID_ARGUMENT, "4-byte aligned");
    expect_create(ctx, "score + t[0]", (fg_score_arg){"t", FG_SCORE_TABLE_INT32, 0, 0, DEV(0x1000), 0},
                  FG_ERR_INVALID_ARGUMENT, "has 0 elements");
    expect_create(ctx, "score * c", (fg_score_arg){"c", FG_SCORE_CONST_FLOAT, 0, INFINITY, NULL, 0},
                  FG_ERR_INVALID_ARGUMENT, "not a finite fp32");
    expect_create(ctx, "score", (fg_score_arg){"c", (fg_score_arg_kind)9, 0, 0, NULL, 0}, FG_ERR_INVALID_ARGUMENT,
                  "kind 9");
    expect_create(ctx, "score", (fg_score_arg){NULL, FG_SCORE_CONST_INT, 0, 0, NULL, 0}, FG_ERR_INVALID_ARGUMENT,
                  "has no name");
    fg_score_arg many[17];
    char names[17][8];
    for (int i = 0; i < 17; ++i) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        many[i] = (fg_score_arg){names[i], FG_SCORE_CONST_INT, i, 0, NULL, 0};
    }
    fg_score *m = NULL;
    CHECK(fg_score_create(ctx, "score", many, 17, &m) == FG_ERR_PATTERN && !m, "17 constants refused");
    CHECK_CONTAINS(fg_errmsg(ctx), "at most 16 constants");
}

static void test_user_plan(fg_context *ctx, const fg_sources *src) {
    fg_score *s = user_score(ctx, DEV(0x1000), 0.5f), *s2 = user_score(ctx, DEV(0x2000), 0.25f);
    if (!s || !s2) return;
    fg_attention_desc d = base();
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    d.score = s;
    fg_variant v, v2;
    fg_fwd_params p, p2;
    fg_error e = {0};
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "plan with a score: %s", e.msg);
    CHECK(v.spec.mods == 0 && fg_spec_has_mods(&v.spec), "score: no built-in bits");
    CHECK(p.score_cf[0] == 0.5f && p.score_tf[0] == DEV(0x1000) && p.score_tn[0] == 20 && !p.score_ti[0], "params");
    char text[FG_VARIANT_TEXT_MAX], text2[FG_VARIANT_TEXT_MAX];
    fg_variant_format(&v, text, sizeof text);
    const char *at = strstr(text, ",score=");
    CHECK(at && strlen(at) == 7 + 64, "key names the expression by its SHA-256: %s", text);
    /* other constant values and tables: the same kernel */
    d.score = s2;
    CHECK(plan(&d, &v2, &p2, &e) == FG_OK && p2.score_cf[0] == 0.25f, "second score");
    fg_variant_format(&v2, text2, sizeof text2);
    CHECK(!strcmp(text, text2) && fg_spec_equal(&v.spec, &v2.spec), "float constants and tables are parameters");
    d.softcap = 10.f;
    CHECK(plan(&d, &v2, &p2, &e) == FG_OK && v2.spec.mods == FG_MOD_SOFTCAP, "score with softcap");
    fg_variant_format(&v2, text2, sizeof text2);
    CHECK(strstr(text2, ",mods=softcap,score=") != NULL, "key: %s", text2);
    d.path = FG_PATH_WGMMA;
    expect(d, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA does not implement score modification 'softcap'", "wgmma");
    d.softcap = 0.f;
    expect(d, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA does not implement score modification 'score'", "wgmma, score alone");
    d.path = FG_PATH_AUTO;
    d.seqlens_k = (const int32_t *)(uintptr_t)0x2000; /* the inference kernel takes a score expression too */
    for (int cap = 0; cap < 2; ++cap) {
        d.softcap = cap ? 10.f : 0.f;
        CHECK(plan(&d, &v2, &p2, &e) == FG_OK && v2.spec.infer && fg_mask_hash_set(&v2.spec.score_hash) &&
                  p2.score_cf[0] == 0.25f, "score%s with the inference fields: %s", cap ? " + softcap" : "", e.msg ? e.msg : "");
        fg_error_clear(&e);
    }
    d.softcap = 0.f;
    d.seqlens_k = NULL;
    fg_attention_desc dd;
    fg_bwd_params bp;
    /* the backward differentiates it (test_bwd_score_cpu) */
    CHECK(fg_backward_plan(&d, H100_SMEM, &dd, &v2, &bp, &e) == FG_OK && v2.spec.score_cuda_d, "backward plan of a score: %s",
          e.msg ? e.msg : "");
    fg_error_clear(&e);
    /* render: the expression in Traits::score_mod; sparse refused */
    v.cfg = (fg_config){128, 64, 8, 2, 0, 1, 0, 0};
    fg_rendered r;
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "render: %s", e.msg);
    if (r.source) {
        CHECK(strstr(r.source, "SCORE_MOD = true") && strstr(r.source, s->cuda) && strstr(r.source, "// score expression: "),
              "score_mod in the source");
        fg_rendered_free(&r);
    }
    v.spec.sparse = 1; /* block-sparse and inference variants take a score expression */
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "sparse score: %s", e.msg);
    if (r.source) fg_rendered_free(&r);
    fg_error_clear(&e);
    v.spec.sparse = 0;
    v.spec.infer = 1;
    CHECK(fg_render_forward(src, &v, "k", &r, &e) == FG_OK, "inference score: %s", e.msg);
    if (r.source) fg_rendered_free(&r);
    fg_error_clear(&e);
    v.spec.infer = 0;
    compile_one(src, 128, 1, 0, s);
    compile_one(src, 64, 0, FG_MOD_ALL, s);
    /* int tables, where, tanh, integer % (the GPU test's second expression) */
    const fg_score_arg args[] = {{"w", FG_SCORE_CONST_FLOAT, 0, 0.3, NULL, 0},
                                 {"bias", FG_SCORE_TABLE_FLOAT, 0, 0, DEV(0x1000), 36},
                                 {"bucket", FG_SCORE_TABLE_INT32, 0, 0, DEV(0x2000), 64}};
    fg_score *s3 = NULL;
    CHECK(fg_score_create(ctx, "where(bucket[kv_idx % 64] > 0, score * w, tanh(score) - 0.5) + bias[h % 4]", args, 3,
                          &s3) == FG_OK,
          "where/int table: %s", fg_errmsg(ctx));
    if (s3) compile_one(src, 128, 1, FG_MOD_SINK, s3);
    fg_score_destroy(s3);
    fg_score_destroy(s);
    fg_score_destroy(s2);
}

/* The reference with USER_EXPR against the formula in double (the
 * reference evaluates it in fp32 as the device does: 1e-5). */
static void test_user_reference(fg_context *ctx) {
    static float bias[4 * 5];
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    for (int i = 0; i < 20; ++i) bias[i] = (float)fg_rng_normal(&rng);
    fg_score *s = user_score(ctx, bias, 0.75f); /* host table: only the reference reads it */
    if (!s) return;
    const int B = 2, H = 4, HK = 2, D = 16, sq = 29, sk = 41;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, D, B, H, HK, sq, sk);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    d.window_left = 9;
    const size_t nq = (size_t)B * sq * H * D, nk = (size_t)B * sk * HK * D;
    uint16_t *q = malloc(nq * 2), *k = malloc(nk * 2), *v = malloc(nk * 2);
    fg_fill_normal(q, nq, d.dtype, &rng);
    fg_fill_normal(k, nk, d.dtype, &rng);
    fg_fill_normal(v, nk, d.dtype, &rng);
    const fg_score_table tab = {bias, 20};
    int64_t ci[16] = {0};
    const fg_ref_mods rm = {NULL, NULL, s->expr, ci, s->cf, &tab, NULL};
    double *o = malloc(sizeof(double) * nq), *lse = malloc(sizeof(double) * B * H * sq), worst = 0;
    fg_reference_forward_mods(&d, NULL, &rm, q, k, v, o, lse);
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h)
            for (int i = 0; i < sq; ++i) {
                double den = 0, acc[16] = {0};
                for (int j = 0; j < sk; ++j) {
                    if (j > i + sk - sq || j < i + sk - sq - 9) continue;
                    double x = 0;
                    for (int c = 0; c < D; ++c)
                        x += (double)fg_half_to_float(q[((size_t)(b * sq + i) * H + h) * D + c], d.dtype) *
                             fg_half_to_float(k[((size_t)(b * sk + j) * HK + h / 2) * D + c], d.dtype);
                    const int rel = j - i < -2 ? -2 : j - i > 2 ? 2 : j - i;
                    x = x / 4.0 * 0.75 + bias[h * 5 + rel + 2];
                    den += exp(x);
                    for (int c = 0; c < D; ++c) acc[c] += exp(x) * fg_half_to_float(v[((size_t)(b * sk + j) * HK + h / 2) * D + c], d.dtype);
                }
                worst = fmax(worst, fabs(log(den) - lse[((size_t)b * H + h) * sq + i]));
                for (int c = 0; c < D; ++c) worst = fmax(worst, fabs(acc[c] / den - o[(((size_t)b * sq + i) * H + h) * D + c]));
            }
    CHECK(worst < 1e-5, "user expression: reference vs formula %g", worst);
    printf("  user expression reference: max error %.2e\n", worst);
    free(q); free(k); free(v); free(o); free(lse);
    fg_score_destroy(s);
}

int main(void) {
    test_desc_defaults();
    test_checks();
    test_params_and_keys();
    test_reference();
    fg_context *ctx = NULL;
    if (fg_context_create(&ctx) != FG_OK) { CHECK(0, "context"); return test_summary("test_score_fwd_cpu"); }
    test_user_create(ctx);
    test_user_reference(ctx);
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) { CHECK(0, "sources"); return test_summary("test_score_fwd_cpu"); }
    test_window_probe(&src);
    test_render(&src);
    test_compile(&src);
    test_user_plan(ctx, &src);
    fg_sources_free(&src);
    fg_context_destroy(ctx);
    return test_summary("test_score_fwd_cpu");
}
