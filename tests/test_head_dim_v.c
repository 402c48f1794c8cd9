/* CPU tests of the value head dim (head_dim_v != head_dim, issue 17): the
 * descriptor's field and its checks, SPEC text, variant keys and tuning
 * specs (unchanged where the dims are equal), the heuristic's families and
 * sizes, and the render of every kernel family (the mma.sync template for
 * every pair of multiples of 8 up to 256; the TMA template's shared memory
 * against fg_config_smem_bytes).  No GPU. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "gen/render.h"
#include "runtime/attention.h"
#include "runtime/structs.h"
#include "select/heuristic.h"
#include "select/tuned.h"
#include "test_util.h"
#include "tools/harness.h"

#define H100_SMEM 232448
#define A100_SMEM 166912

static fg_status plan(const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *e) {
    return fg_desc_plan(d, H100_SMEM, v, p, e);
}

static void test_descriptor(void) {
    fg_error e = {0};
    fg_variant v;
    fg_fwd_params p;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 192, 2, 8, 2, 100, 77);
    CHECK(d.head_dim_v == 0, "init leaves head_dim_v 0 (= head_dim)");
    CHECK(fg_attention_desc_set_head_dim_v(&d, 128) == FG_OK, "set");
    /* v: [2, 77, 2, 128], o: [2, 100, 8, 128] BSHD; q and k keep 192 */
    CHECK(d.v_strides[0] == 77 * 2 * 128 && d.v_strides[1] == 128 && d.v_strides[2] == 2 * 128, "v strides %lld %lld %lld",
          (long long)d.v_strides[0], (long long)d.v_strides[1], (long long)d.v_strides[2]);
    CHECK(d.o_strides[0] == 100 * 8 * 128 && d.o_strides[1] == 128 && d.o_strides[2] == 8 * 128, "o strides");
    CHECK(d.k_strides[2] == 2 * 192 && d.q_strides[2] == 8 * 192, "q and k strides unchanged");
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(v.spec.head_dim == 192 && fg_spec_head_dim_v(&v.spec) == 128, "spec dims %d/%d", v.spec.head_dim,
          fg_spec_head_dim_v(&v.spec));
    CHECK(p.v_row_stride == 2 * 128 && p.o_row_stride == 8 * 128, "params strides");
    CHECK(fg_desc_head_dim_v(&d) == 128, "fg_desc_head_dim_v");

    /* 0 means head_dim: same spec as head_dim_v == head_dim */
    fg_attention_desc a, b;
    fg_attention_desc_init(&a, FG_BF16, 64, 1, 2, 2, 64, 64);
    b = a;
    b.head_dim_v = 64;
    fg_variant va, vb;
    CHECK(plan(&a, &va, &p, &e) == FG_OK && plan(&b, &vb, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(fg_spec_equal(&va.spec, &vb.spec) && fg_spec_head_dim_v(&va.spec) == 64, "0 and 64 differ");

    /* bad values: named, with the range; above 256 says why (MLA decode) */
    static const int bad[] = {12, 4, 264, 512, 576};
    for (int i = 0; i < 5; ++i) {
        fg_attention_desc x = d;
        fg_attention_desc_set_head_dim_v(&x, bad[i]);
        CHECK(plan(&x, &v, &p, &e) == FG_ERR_UNSUPPORTED, "head_dim_v %d accepted", bad[i]);
        char want[32];
        snprintf(want, sizeof want, "head_dim_v %d", bad[i]);
        CHECK_CONTAINS(e.msg, want);
        CHECK_CONTAINS(e.msg, "multiple of 8 in 8..256");
        if (bad[i] > 256) CHECK_CONTAINS(e.msg, "576/512");
    }
    fg_attention_desc x = d;
    x.head_dim_v = -8;
    CHECK(plan(&x, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "negative head_dim_v");
    CHECK_CONTAINS(e.msg, "negative");

    /* o's strides must hold head_dim_v: a field set without its strides
     * (o rows of 64 elements, 128 written) is refused, not run */
    fg_attention_desc_init(&x, FG_BF16, 64, 1, 1, 1, 16, 16);
    x.head_dim_v = 128;
    CHECK(plan(&x, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "o rows of 64 for head_dim_v 128 accepted");
    CHECK_CONTAINS(e.msg, "o strides");
    CHECK_CONTAINS(e.msg, "overlap");
    /* v and o are checked against head_dim_v, not head_dim: o rows of 8
     * elements (one head) hold head_dim_v 8; for head_dim 256 they would
     * overlap */
    fg_attention_desc_init(&x, FG_BF16, 256, 1, 1, 1, 16, 16);
    fg_attention_desc_set_head_dim_v(&x, 8);
    CHECK(plan(&x, &v, &p, &e) == FG_OK, "256/8 with its own strides: %s", e.msg);

    /* an older header's struct (no head_dim_v): the bytes past struct_size
     * do not count, and the setter refuses it */
    fg_attention_desc_init(&x, FG_BF16, 64, 1, 1, 1, 16, 16);
    x.struct_size = FG_ATTENTION_DESC_MIN_SIZE;
    x.head_dim_v = 128;
    CHECK(plan(&x, &v, &p, &e) == FG_OK && fg_spec_head_dim_v(&v.spec) == 64, "old struct: %s", e.msg);
    CHECK(fg_attention_desc_set_head_dim_v(&x, 32) == FG_ERR_INVALID_ARGUMENT, "setter on an old struct");
    CHECK(fg_attention_desc_set_head_dim_v(NULL, 32) == FG_ERR_INVALID_ARGUMENT, "setter on NULL");

    /* an explicit wgmma=1 configuration with dv != d: a clear refusal */
    x = d;
    x.path = FG_PATH_WGMMA;
    x.block_m = 128;
    CHECK(plan(&x, &v, &p, &e) == FG_ERR_UNSUPPORTED, "wgmma with 192/128 accepted");
    CHECK_CONTAINS(e.msg, "head_dim_v == head_dim");
    x.path = FG_PATH_MMA;
    CHECK(plan(&x, &v, &p, &e) == FG_OK, "mma with 192/128: %s", e.msg);

    fg_case c;
    memset(&c, 0, sizeof c);
    c.desc = d;
    char buf[256];
    const char *s = buf;
    fg_case_describe(&c, buf, sizeof buf);
    CHECK_CONTAINS(s, "hdim=192 hdim_v=128 bf16");
    c.desc.head_dim_v = 0;
    fg_case_describe(&c, buf, sizeof buf);
    CHECK(!strstr(s, "hdim_v"), "equal dims named: %s", s);
    fg_error_clear(&e);
}

static void test_spec_and_keys(void) {
    fg_error e = {0};
    fg_variant v, w;
    fg_causal cm;
    char a[320], b[320];
    CHECK(fg_spec_parse("hdim=192,hdim_v=128,dtype=fp16,block_m=128", &v, &cm, &e) == FG_OK, "%s", e.msg);
    CHECK(v.spec.head_dim == 192 && fg_spec_head_dim_v(&v.spec) == 128, "parsed");
    CHECK(fg_config_complete(&v.spec, &v.cfg, H100_SMEM, &e) == FG_OK, "%s", e.msg);
    fg_variant_format(&v, a, sizeof a);
    CHECK(!strncmp(a, "hdim=192,hdim_v=128,dtype=fp16,", 31), "format: %s", a);
    CHECK(fg_spec_parse(a, &w, &cm, &e) == FG_OK && fg_spec_equal(&v.spec, &w.spec) &&
              !memcmp(&v.cfg, &w.cfg, sizeof v.cfg), "round trip of %s", a);
    fg_variant_format(&w, b, sizeof b);
    CHECK(!strcmp(a, b), "round trip text %s vs %s", a, b);
    CHECK(fg_spec_parse("hdim=192,head_dim_v=128", &w, &cm, &e) == FG_OK && fg_spec_head_dim_v(&w.spec) == 128,
          "head_dim_v alias");

    /* equal dims: the key and the SPEC text are what they were before */
    CHECK(fg_spec_parse("hdim=128,hdim_v=128", &v, &cm, &e) == FG_OK, "%s", e.msg);
    CHECK(fg_spec_parse("hdim=128", &w, &cm, &e) == FG_OK, "%s", e.msg);
    CHECK(fg_spec_equal(&v.spec, &w.spec), "128/128 vs 128");
    fg_config_unset(&v.cfg);
    fg_config_complete(&v.spec, &v.cfg, H100_SMEM, &e);
    fg_variant_key(&v, "abc", 13, 0, "sm_90a", a, sizeof a);
    CHECK(!strcmp(a, "fwd_mma:hdim=128,dtype=bf16,causal=0,sparse=0,wgmma=0,block_m=128,block_n=64,warps=4,stages=2,"
                     "q_in_regs=0,min_blocks=1:tpl=abc:nvrtc=13.0:arch=sm_90a"),
          "key of an equal-dims variant changed: %s", a);
    fg_tuning_spec_text(&v.spec, FG_PATH_AUTO, 0, 0, a, sizeof a);
    CHECK(!strcmp(a, "hdim=128,dtype=bf16,causal=0,sparse=0,path=auto"), "tuning spec of equal dims: %s", a);
    v.spec.head_dim_v = 64;
    CHECK(!fg_spec_equal(&v.spec, &w.spec), "128/64 equals 128");
    fg_tuning_spec_text(&v.spec, FG_PATH_MMA, 0, 0, a, sizeof a);
    CHECK(!strcmp(a, "hdim=128,hdim_v=64,dtype=bf16,causal=0,sparse=0,path=mma"), "tuning spec: %s", a);
    fg_variant_key(&v, "abc", 13, 0, "sm_90a", b, sizeof b);
    CHECK(!strncmp(b, "fwd_mma:hdim=128,hdim_v=64,dtype=bf16,", 38), "key: %s", b);

    CHECK(fg_spec_parse("hdim=64,hdim_v=abc", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "hdim_v=abc");
    CHECK_CONTAINS(e.msg, "hdim_v");
    CHECK(fg_spec_parse("hdim=64,hdim_v=0", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "hdim_v=0");
    CHECK(fg_head_dims_check(64, 72, &e) == FG_OK, "64/72");
    CHECK(fg_head_dims_check(64, 100, &e) == FG_ERR_UNSUPPORTED, "64/100");
    CHECK_CONTAINS(e.msg, "head_dim_v 100");
    fg_error_clear(&e);
}

static int has_family(const fg_config *c, int n, int wgmma) {
    for (int i = 0; i < n; ++i)
        if (c[i].wgmma == wgmma) return 1;
    return 0;
}

static void test_heuristic(void) {
    fg_error e = {0};
    fg_config c[16];
    fg_spec s = {192, FG_BF16, 0, 0, {{0}}, NULL, NULL, 128, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
    int n = fg_heuristic_candidates(&s, H100_SMEM, 0, 0, 2, c, 16);
    CHECK(n > 0 && c[0].wgmma == 2 && c[0].block_n == 112, "192/128: TMA first with the hd-192 tiles (got wgmma=%d bn=%d)",
          n ? c[0].wgmma : -1, n ? c[0].block_n : -1);
    CHECK(!has_family(c, n, 1), "wgmma=1 offered for 192/128");
    CHECK(has_family(c, n, 0), "no mma.sync fallback");
    s.head_dim = 64;
    s.head_dim_v = 256; /* the wider dim picks the TMA band */
    n = fg_heuristic_candidates(&s, H100_SMEM, 0, 0, 2, c, 16);
    CHECK(n > 0 && c[0].wgmma == 2 && c[0].block_n == 80, "64/256: the hd-256 tiles (bn=%d)", n ? c[0].block_n : -1);
    s.head_dim = 40;
    s.head_dim_v = 72; /* neither a multiple of 16: mma.sync only */
    n = fg_heuristic_candidates(&s, H100_SMEM, 0, 0, 2, c, 16);
    CHECK(n > 0 && !has_family(c, n, 2) && !has_family(c, n, 1), "40/72 offered a Hopper family");
    s.head_dim = 128;
    s.head_dim_v = 128;
    n = fg_heuristic_candidates(&s, H100_SMEM, 0, 0, 2, c, 16);
    CHECK(has_family(c, n, 1), "128/128 lost its wgmma candidates");

    /* asked for explicitly: clear refusals */
    s.head_dim_v = 64;
    fg_config out;
    CHECK(fg_heuristic_config(&s, H100_SMEM, 0, 0, 2, FG_PATH_WGMMA, NULL, NULL, &out, &e) == FG_ERR_UNSUPPORTED,
          "FG_PATH_WGMMA 128/64");
    CHECK_CONTAINS(e.msg, "head_dim_v == head_dim");
    s.head_dim_v = 72;
    CHECK(fg_heuristic_config(&s, H100_SMEM, 0, 0, 2, FG_PATH_TMA, NULL, NULL, &out, &e) == FG_ERR_UNSUPPORTED,
          "FG_PATH_TMA 128/72");
    CHECK_CONTAINS(e.msg, "multiples of 16");
    fg_config t = {128, 128, 12, 2, 0, 1, 2, 0};
    CHECK(fg_config_check(&s, &t, H100_SMEM, &e) == FG_ERR_UNSUPPORTED, "TMA config 128/72");

    /* sizes follow head_dim_v: O accumulators (registers) and the V tile */
    fg_spec narrow = {64, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, wide = narrow;
    wide.head_dim_v = 256;
    fg_config m = {128, 64, 8, 2, 0, 1, 0, 0};
    CHECK(fg_config_reg_estimate(&wide, &m) == fg_config_reg_estimate(&narrow, &m) + (256 - 64) / 8 * 4,
          "mma O accumulators: %d vs %d", fg_config_reg_estimate(&wide, &m), fg_config_reg_estimate(&narrow, &m));
    CHECK(fg_config_smem_bytes(&wide, &m) == (128 * 264 + 2 * 64 * (72 + 264)) * 2, "mma smem %d",
          fg_config_smem_bytes(&wide, &m));
    fg_config tm = {128, 128, 12, 2, 0, 1, 2, 0};
    CHECK(fg_config_reg_estimate(&wide, &tm) == fg_config_reg_estimate(&narrow, &tm) + (256 - 64) / 2, "TMA O registers");
    fg_error_clear(&e);
}

/* The mma.sync template: every pair of multiples of 8 up to 256 with
 * dv != d has a feasible configuration on an A100's shared memory, renders,
 * declares DV, and returns the shared memory C computes; dv == d renders
 * exactly as with no head_dim_v at all (no DV in Traits). */
static void test_render_mma(const fg_sources *src) {
    fg_error e = {0};
    int rendered = 0;
    for (int d = 8; d <= 256; d += 8)
        for (int dv = 8; dv <= 256; dv += 8) {
            fg_spec s = {d, FG_BF16, (d + dv) % 16 == 0, 0, {{0}}, NULL, NULL, dv, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
            fg_config c[16];
            const int n = fg_heuristic_candidates(&s, A100_SMEM, 0, 0, 0, c, 16);
            CHECK(n > 0, "no mma.sync configuration for %d/%d", d, dv);
            if (!n) continue;
            fg_variant v = {s, c[(d / 8) % n]}; /* a different candidate across the pairs */
            fg_rendered r;
            if (fg_render_forward(src, &v, "k", &r, &e) != FG_OK) {
                CHECK(0, "%d/%d: %s", d, dv, e.msg);
                continue;
            }
            ++rendered;
            CHECK(r.smem_bytes == fg_config_smem_bytes(&s, &v.cfg), "%d/%d: template smem %d, C %d", d, dv, r.smem_bytes,
                  fg_config_smem_bytes(&s, &v.cfg));
            char want[64];
            snprintf(want, sizeof want, "static constexpr int DV = %d;", dv);
            if (dv != d) {
                CHECK_CONTAINS(r.source, want);
                snprintf(want, sizeof want, " head_dim_v=%d (padded ", dv);
                CHECK_CONTAINS(r.source, want);
            } else {
                CHECK(!strstr(r.source, "DV =") && !strstr(r.source, "head_dim_v"), "%d/%d names DV", d, dv);
                fg_variant z = v;
                z.spec.head_dim_v = 0;
                fg_rendered r0;
                CHECK(fg_render_forward(src, &z, "k", &r0, &e) == FG_OK && !strcmp(r0.source, r.source),
                      "head_dim_v 0 and %d render differently", d);
                fg_rendered_free(&r0);
            }
            fg_rendered_free(&r);
        }
    printf("mma.sync: rendered %d head-dim pairs\n", rendered);
    /* the template checks the value itself */
    fg_variant bad = {{64, FG_BF16, 0, 0, {{0}}, NULL, NULL, 12, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, {128, 64, 4, 2, 0, 1, 0, 0}};
    fg_rendered r;
    CHECK(fg_render_forward(src, &bad, "k", &r, &e) == FG_ERR_TEMPLATE, "head_dim_v 12 rendered");
    CHECK_CONTAINS(e.msg, "head_dim_v");
    /* wgmma=1: equal dims only */
    fg_variant w = {{128, FG_BF16, 0, 0, {{0}}, NULL, NULL, 64, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, {128, 64, 8, 1, 0, 1, 1, 0}};
    CHECK(fg_render_forward(src, &w, "k", &r, &e) == FG_ERR_TEMPLATE, "wgmma 128/64 rendered");
    CHECK_CONTAINS(e.msg, "head_dim_v == head_dim");
    CHECK_CONTAINS(e.msg, "fwd_wgmma.lua");
    fg_error_clear(&e);
}

/* fwd_ws.lua's smem_bytes equals fg_config_smem_bytes for many (d, dv,
 * block) configurations, the one-Q-buffer fallback included, and the TMA
 * Traits name DV. */
static void test_render_tma(const fg_sources *src) {
    fg_error e = {0};
    static const int dims[] = {16, 64, 96, 128, 192, 256}, dvs[] = {16, 40, 64, 72, 128, 192, 256};
    static const int bms[] = {64, 128, 192}, bns[] = {64, 80, 112, 128, 176};
    int rendered = 0, one_q = 0;
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 7; ++j)
            for (int m = 0; m < 3; ++m)
                for (int k = 0; k < 5; ++k) {
                    const int stages = 1 + (i + j + k) % 3;
                    fg_spec s = {dims[i], FG_BF16, 1, 0, {{0}}, NULL, NULL, dvs[j], 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
                    fg_config c = {bms[m], bns[k], 4 * (1 + bms[m] / 64), stages, 0, 1, 2, 0};
                    fg_variant v = {s, c};
                    fg_rendered r;
                    if (fg_render_forward(src, &v, "k", &r, &e) != FG_OK) {
                        CHECK(0, "TMA %d/%d bm=%d bn=%d st=%d: %s", dims[i], dvs[j], bms[m], bns[k], stages, e.msg);
                        continue;
                    }
                    ++rendered;
                    one_q += strstr(r.source, "q_buffers=1") != NULL;
                    CHECK(r.smem_bytes == fg_config_smem_bytes(&s, &c), "TMA %d/%d bm=%d bn=%d st=%d: fwd_ws.lua %d, C %d",
                          dims[i], dvs[j], bms[m], bns[k], stages, r.smem_bytes, fg_config_smem_bytes(&s, &c));
                    char want[64];
                    snprintf(want, sizeof want, "static constexpr int D = %d, DV = %d;", dims[i], dvs[j]);
                    CHECK_CONTAINS(r.source, want);
                    fg_rendered_free(&r);
                }
    printf("TMA: rendered %d configurations (%d with one Q buffer)\n", rendered, one_q);
    CHECK(one_q > 0 && one_q < rendered, "both Q-buffer counts covered (%d of %d)", one_q, rendered);
    fg_error_clear(&e);
}

int main(void) {
    test_descriptor();
    test_spec_and_keys();
    test_heuristic();
    fg_sources src;
    fg_error e = {0};
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg);
    test_render_mma(&src);
    test_render_tma(&src);
    fg_sources_free(&src);
    fg_error_clear(&e);
    return test_summary("test_head_dim_v");
}
