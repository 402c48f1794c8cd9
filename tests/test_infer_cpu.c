/* CPU tests of the inference path (issue 12; no GPU): the descriptor's
 * inference fields and their checks, the variant they select (infer=1 in
 * the key, nothing new in other keys), the shapes the tensor checks use,
 * the split-KV and packing choices, the workspace size, and the inference
 * variants rendering and compiling for sm_80 and sm_90a without spills. */
#include <stdlib.h>
#include <string.h>

#include "gen/compile.h"
#include "gen/render.h"
#include "gen/sources.h"
#include "runtime/attention.h"
#include "select/heuristic.h"
#include "select/infer.h"
#include "test_nvrtc_util.h"
#include "test_util.h"

#define H100_SMEM 232448

static fg_status plan(const fg_attention_desc *d, fg_variant *v, fg_error *e) {
    fg_fwd_params p;
    fg_error_clear(e);
    return fg_desc_plan(d, H100_SMEM, v, &p, e);
}

/* A decode call on a paged cache, valid as it stands. */
static fg_attention_desc paged(void) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 128, 4, 32, 8, 1, 1000);
    d.k_strides[0] = d.v_strides[0] = 64 * 8 * 128; /* page stride */
    d.seqlens_k = (const int32_t *)(uintptr_t)0x1000;
    d.block_table = (const int32_t *)(uintptr_t)0x2000;
    d.page_size = 64;
    d.num_pages = 100;
    d.max_pages = 16;
    return d;
}

static void expect(fg_attention_desc d, fg_status want, const char *needle, const char *what) {
    fg_error e = {0};
    fg_variant v;
    const fg_status st = plan(&d, &v, &e);
    CHECK(st == want && (!needle || (e.msg && strstr(e.msg, needle))), "%s: status %d (want %d), message '%s' (want '%s')",
          what, (int)st, (int)want, e.msg ? e.msg : "", needle ? needle : "");
    fg_error_clear(&e);
}

static void test_checks(void) {
    fg_attention_desc d = paged();
    expect(d, FG_OK, NULL, "valid paged decode");
    fg_error e = {0};
    fg_variant v;
    fg_fwd_params p;
    CHECK(fg_desc_plan(&d, H100_SMEM, &v, &p, &e) == FG_OK && v.spec.infer == 1 && v.cfg.wgmma == 0, "paged -> infer, mma");
    CHECK(p.page_size == 64 && p.num_pages == 100 && p.max_pages == 16 && p.block_table == d.block_table &&
              p.seqlens_k == d.seqlens_k && p.num_splits == 1 && p.pack == 1 && p.bottom_right == 0,
          "params of the paged call");
    fg_error_clear(&e);

    d = paged(); d.num_splits = -1; expect(d, FG_ERR_INVALID_ARGUMENT, "num_splits", "negative num_splits");
    d = paged(); d.num_splits = FG_MAX_SPLITS + 1; expect(d, FG_ERR_INVALID_ARGUMENT, "num_splits", "too many splits");
    d = paged(); d.page_size = 24; expect(d, FG_ERR_UNSUPPORTED, "page_size = 24", "page not a multiple of 16");
    d = paged(); d.page_size = 8; expect(d, FG_ERR_UNSUPPORTED, "page_size", "page of 8");
    d = paged(); d.num_pages = 0; expect(d, FG_ERR_INVALID_ARGUMENT, "num_pages", "no pages");
    d = paged(); d.max_pages = 15; expect(d, FG_ERR_INVALID_ARGUMENT, "max_pages * page_size", "capacity past the table");
    d = paged(); d.block_table = NULL; expect(d, FG_ERR_INVALID_ARGUMENT, "block_table is NULL", "page fields without a table");
    d = paged(); d.cu_seqlens_k = (const int32_t *)(uintptr_t)0x3000; d.total_k = 10;
    expect(d, FG_ERR_UNSUPPORTED, "cu_seqlens_k", "paged with cu_seqlens_k");
    d = paged(); d.seqlens_k = (const int32_t *)(uintptr_t)0x1002; expect(d, FG_ERR_INVALID_ARGUMENT, "4-byte", "misaligned table");
    d = paged(); d.path = FG_PATH_TMA; expect(d, FG_ERR_UNSUPPORTED, "FG_PATH_MMA", "paged on the TMA path");
    d = paged(); d.block_m = 64; d.block_n = 128; d.warps = 4; d.path = FG_PATH_MMA;
    expect(d, FG_OK, NULL, "key tile of two whole pages");
    d = paged(); d.page_size = 48; d.max_pages = 21; d.block_m = 64; d.block_n = 32; d.warps = 4; d.path = FG_PATH_MMA;
    expect(d, FG_ERR_UNSUPPORTED, "one must divide the other", "key tile of 32 on pages of 48");
    d = paged(); d.block_m = 64; d.block_n = 32; d.warps = 4; d.path = FG_PATH_MMA;
    expect(d, FG_OK, NULL, "key tile within a page");

    /* varlen */
    fg_attention_desc_init(&d, FG_FP16, 64, 3, 4, 2, 100, 100);
    fg_attention_desc q = d;
    q.total_q = 5; expect(q, FG_ERR_INVALID_ARGUMENT, "cu_seqlens_q is NULL", "total_q alone");
    q = d; q.cu_seqlens_q = (const int32_t *)(uintptr_t)0x1000; expect(q, FG_ERR_INVALID_ARGUMENT, "total_q >= 1", "cu without total");
    q.total_q = 250; expect(q, FG_OK, NULL, "varlen q");
    q.total_k = 5; expect(q, FG_ERR_INVALID_ARGUMENT, "cu_seqlens_k is NULL", "total_k alone");
    q.total_k = -1; expect(q, FG_ERR_INVALID_ARGUMENT, "negative", "negative total");
    /* varlen strides: the batch stride is ignored (0 is fine), rows must not overlap in o */
    q.total_k = 0;
    q.q_strides[0] = q.o_strides[0] = 0;
    expect(q, FG_OK, NULL, "varlen ignores the batch stride");
    q.o_strides[2] = 8; /* rows of o overlap the heads */
    expect(q, FG_ERR_INVALID_ARGUMENT, "overlap", "overlapping packed o");

    /* keys: plain calls keep their key; inference variants name infer=1 */
    fg_attention_desc_init(&d, FG_BF16, 128, 2, 8, 8, 1000, 1000);
    fg_variant plain, inf;
    CHECK(plan(&d, &plain, &e) == FG_OK && plain.spec.infer == 0, "plain call: no infer");
    d.num_splits = 4;
    CHECK(plan(&d, &inf, &e) == FG_OK && inf.spec.infer == 1, "num_splits 4 -> infer");
    plain.cfg = inf.cfg;
    char a[FG_VARIANT_TEXT_MAX], b[FG_VARIANT_TEXT_MAX];
    fg_variant_format(&plain, a, sizeof a);
    fg_variant_format(&inf, b, sizeof b);
    CHECK(!strstr(a, "infer") && strstr(b, ",infer=1"), "keys '%s' / '%s'", a, b);
    fg_variant back;
    fg_causal cz;
    CHECK(fg_spec_parse("hdim=128,dtype=bf16,infer=1", &back, &cz, &e) == FG_OK && back.spec.infer == 1 &&
              fg_spec_equal(&back.spec, &inf.spec),
          "SPEC infer=1: %s", e.msg ? e.msg : "");
    CHECK(fg_spec_parse("hdim=128,infer=2", &back, &cz, &e) == FG_ERR_INVALID_ARGUMENT, "infer=2 accepted");
    fg_error_clear(&e);
}

static void test_shapes(void) {
    fg_attention_desc d = paged();
    fg_tensor_shape t[FG_T_COUNT];
    fg_desc_tensor_shapes(&d, t);
    CHECK(t[FG_T_K].batch == 100 && t[FG_T_K].seqlen == 64 && t[FG_T_V].batch == 100, "paged k/v: pages x page_size");
    CHECK(t[FG_T_Q].batch == 4 && t[FG_T_Q].seqlen == 1 && t[FG_T_O].is_output && t[FG_T_LSE].elem_bytes == 4, "q/o/lse");
    fg_attention_desc_init(&d, FG_BF16, 64, 3, 4, 2, 100, 90);
    d.cu_seqlens_q = d.cu_seqlens_k = (const int32_t *)(uintptr_t)0x1000;
    d.total_q = 250;
    d.total_k = 260;
    fg_desc_tensor_shapes(&d, t);
    CHECK(t[FG_T_Q].batch == 1 && t[FG_T_Q].seqlen == 250 && t[FG_T_O].seqlen == 250 && t[FG_T_K].seqlen == 260 &&
              t[FG_T_V].batch == 1,
          "varlen: packed rows");
    CHECK(t[FG_T_LSE].batch == 1 && t[FG_T_LSE].strides[1] == 250 && t[FG_T_LSE].seqlen == 250, "varlen lse [heads, total_q]");
}

static void test_choices(void) {
    CHECK(fg_infer_pack(4, 1, 64) == 4 && fg_infer_pack(1, 1, 64) == 1 && fg_infer_pack(8, 64, 64) == 1,
          "pack: GQA group when the queries of a head do not fill a tile");
    CHECK(fg_infer_splits(1000, 64, 264, 128) == 1, "a full GPU is not split");
    CHECK(fg_infer_splits(8, 1, 264, 128) == 1, "one key tile is not split");
    for (int tiles = 1; tiles <= 200; tiles += 13)
        for (int kt = 2; kt <= 512; kt *= 2) {
            const int s = fg_infer_splits(tiles, kt, 264, 128);
            CHECK(s >= 1 && s <= kt && s <= 128, "splits %d of %d tiles x %d key tiles", s, tiles, kt);
            /* modelled time of s splits: waves of CTAs, each 1/s of the work;
             * the choice is within 1/0.85 of the best split count */
            double best = 1e30;
            for (int x = 1; x <= (kt < 128 ? kt : 128); ++x) {
                const double t = (double)((tiles * x + 263) / 264) / x;
                if (t < best) best = t;
            }
            const double got = (double)((tiles * s + 263) / 264) / s;
            if (tiles * 5 < 264 * 4)
                CHECK(got * 0.85 <= best * 1.000001, "tiles %d key tiles %d: %d splits take %.3f, best %.3f", tiles, kt, s,
                      got, best);
        }
    CHECK(fg_infer_splits(8, 512, 264, 7) <= 7, "the maximum holds");
    CHECK(fg_infer_workspace_bytes(1, 4, 32, 1, 128, 32) == 0, "no split, no workspace");
    CHECK(fg_infer_workspace_bytes(8, 4, 32, 1, 128, 32) == 8 * 4 * 32 * 128 * 4 + 8 * 4 * 32 * 4 + 256, "workspace of 8 splits");
    CHECK(fg_infer_workspace_bytes(3, 1, 1, 1, 8, 1) == 256 + 256 + 256, "rounded to 256 per part");
}

/* The inference variant of (head dims, causal, score modifications)
 * compiles without spills on sm_80 and sm_90a, choosing as the runtime does
 * (fg_pick_config): the first decode candidate that compiles without spills. */
static void compile_infer(const fg_sources *src, int d, int dv, int causal, int mods) {
    static const char *archs[] = {"sm_80", "sm_90a"};
    fg_spec s;
    memset(&s, 0, sizeof s);
    s.head_dim = d;
    s.head_dim_v = dv;
    s.dtype = causal ? FG_FP16 : FG_BF16;
    s.causal = causal;
    s.infer = 1;
    s.mods = mods;
    fg_config cand[16];
    const int n = fg_heuristic_candidates(&s, H100_SMEM, 64, 0, 0, cand, 16);
    CHECK(n > 0, "no decode candidate for %d/%d", d, dv);
    for (int a = 0; a < 2 && n > 0; ++a) {
        int found = 0;
        for (int c = 0; c < n && !found; ++c) {
            fg_variant v = {s, cand[c]};
            fg_rendered r;
            fg_error e = {0};
            if (fg_render_forward(src, &v, "test", &r, &e) != FG_OK) {
                CHECK(0, "render %d/%d mods %d: %s", d, dv, mods, e.msg);
                fg_error_clear(&e);
                return;
            }
            CHECK(strstr(r.source, "INFER = true") != NULL, "render is the inference variant");
            for (int m = 0; m < 4; ++m) {
                static const char *const traits[4] = {"SOFTCAP = true", "ALIBI = true", "WINDOW = true", "SINK = true"};
                CHECK(!strstr(r.source, traits[m]) == !(mods & (1 << m)), "mods %d: trait %s present iff used", mods, traits[m]);
            }
            fg_cubin cb;
            const fg_status st = fg_compile_cubin(src, r.source, archs[a], "test", &cb, &e);
            fg_rendered_free(&r);
            CHECK(st == FG_OK, "compile %d/%d causal=%d mods=%d %s: %s", d, dv, causal, mods, archs[a], e.msg);
            if (st != FG_OK) { fg_error_clear(&e); return; }
            found = cb.stats.spill_stores == 0 && cb.stats.spill_loads == 0 && cb.stats.stack_frame == 0;
            printf("  infer %3d/%-3d causal=%d mods=%2d %-6s block %dx%d: %d registers, %d stack%s\n", d, dv, causal, mods,
                   archs[a], v.cfg.block_m, v.cfg.block_n, cb.stats.registers, cb.stats.stack_frame,
                   found ? "" : " (spills: next candidate)");
            fg_cubin_free(&cb);
        }
        CHECK(found, "%d/%d causal=%d mods=%d %s: every decode candidate spills", d, dv, causal, mods, archs[a]);
    }
}

/* The decode tiles of one and two warps (runtime/choose.c decode_config:
 * 16 or 32 packed rows up to head dim 128; half-width key tiles in three
 * stages, else the wider ones in two where that spills) render, pass the configuration check only
 * for inference variants, and one of the two compiles without spills on
 * sm_80 and sm_90a for the plain variants (with score modifications
 * neither has to: the runtime then falls back to 64-row tiles). */
static void test_decode_tiles(const fg_sources *src) {
    static const char *archs[] = {"sm_80", "sm_90a"};
    static const int dims[][3] = {{64, 64, 0}, {128, 128, 0}, {128, 128, FG_MOD_ALL}, {128, 64, 0}, {40, 72, 0}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i)
        for (int rows = 16; rows <= 32; rows += 16)
            for (int causal = 0; causal < 2; ++causal)
                for (int a = 0; a < 2; ++a) {
                    fg_variant v;
                    memset(&v, 0, sizeof v);
                    v.spec.head_dim = dims[i][0];
                    v.spec.head_dim_v = dims[i][1];
                    v.spec.dtype = causal ? FG_FP16 : FG_BF16;
                    v.spec.causal = causal;
                    v.spec.infer = 1;
                    v.spec.mods = dims[i][2];
                    const int hd = dims[i][0] > dims[i][1] ? dims[i][0] : dims[i][1];
                    const int tries[2][2] = {{hd > 64 ? 32 : 64, 3}, {hd > 64 ? 64 : 128, 2}};
                    int clean = 0;
                    for (int t = 0; t < 2 && !clean; ++t) {
                        v.cfg = (fg_config){rows, tries[t][0], rows / 16, tries[t][1], 0, 1, 0, 0};
                        fg_error e = {0};
                        CHECK(fg_config_check(&v.spec, &v.cfg, H100_SMEM, &e) == FG_OK, "decode tile %d rows %d/%d: %s", rows,
                              dims[i][0], dims[i][1], e.msg ? e.msg : "");
                        fg_error_clear(&e);
                        fg_rendered r;
                        if (fg_render_forward(src, &v, "test", &r, &e) != FG_OK) {
                            CHECK(0, "render decode tile %d rows %d/%d: %s", rows, dims[i][0], dims[i][1], e.msg);
                            fg_error_clear(&e);
                            break;
                        }
                        fg_cubin cb;
                        const fg_status st = fg_compile_cubin(src, r.source, archs[a], "test", &cb, &e);
                        fg_rendered_free(&r);
                        CHECK(st == FG_OK, "compile decode tile %d rows %d/%d %s: %s", rows, dims[i][0], dims[i][1], archs[a],
                              e.msg ? e.msg : "");
                        if (st != FG_OK) { fg_error_clear(&e); break; }
                        clean = !cb.stats.spill_stores && !cb.stats.spill_loads && !cb.stats.stack_frame;
                        printf("  decode tile %2dx%-3d %d warp(s) %d stages %3d/%-3d causal=%d mods=%2d %-6s: %d registers%s\n", rows,
                               v.cfg.block_n, rows / 16, v.cfg.stages, dims[i][0], dims[i][1], causal, dims[i][2], archs[a],
                               cb.stats.registers, clean ? "" : " (spills)");
                        fg_cubin_free(&cb);
                    }
                    CHECK(clean || dims[i][2], "decode tiles of %d rows %d/%d causal=%d %s: both spill", rows, dims[i][0],
                          dims[i][1], causal, archs[a]);
                }
    /* one and two warps are inference tiles only */
    fg_variant v;
    memset(&v, 0, sizeof v);
    v.spec.head_dim = 128;
    v.spec.dtype = FG_BF16;
    v.cfg = (fg_config){16, 64, 1, 2, 0, 1, 0, 0};
    fg_error e = {0};
    CHECK(fg_config_check(&v.spec, &v.cfg, H100_SMEM, &e) == FG_ERR_UNSUPPORTED && strstr(e.msg, "inference"),
          "one warp outside inference: '%s'", e.msg ? e.msg : "accepted");
    fg_error_clear(&e);
    fg_rendered r;
    CHECK(fg_render_forward(src, &v, "test", &r, &e) == FG_ERR_TEMPLATE && strstr(e.msg, "warps"),
          "one warp outside inference rendered: '%s'", e.msg ? e.msg : "");
    fg_error_clear(&e);
}

/* Every inference variant family compiles without spills; with the score
 * modifications (each alone, all four) too. */
static void test_compile(void) {
    fg_sources src;
    if (nvrtc_sources_or_skip(&src)) { CHECK(0, "sources"); return; }
    static const int dims[][2] = {{64, 64}, {128, 128}, {256, 256}, {192, 128}, {128, 64}, {40, 72}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i)
        for (int causal = 0; causal < 2; ++causal) compile_infer(&src, dims[i][0], dims[i][1], causal, 0);
    static const int mod_dims[] = {64, 128, 256};
    for (int i = 0; i < 3; ++i) compile_infer(&src, mod_dims[i], mod_dims[i], 0, FG_MOD_ALL);
    compile_infer(&src, 128, 128, 1, FG_MOD_ALL);
    for (int m = 0; m < 4; ++m) compile_infer(&src, 128, 128, 1, 1 << m);
    /* sparse inference variants do not exist: the template says so */
    fg_variant v;
    memset(&v, 0, sizeof v);
    v.spec.head_dim = 64;
    v.spec.dtype = FG_BF16;
    v.spec.infer = 1;
    v.spec.sparse = 1;
    v.cfg = (fg_config){64, 64, 4, 2, 0, 1, 0, 0};
    fg_rendered r;
    fg_error e = {0};
    CHECK(fg_render_forward(&src, &v, "test", &r, &e) == FG_ERR_TEMPLATE && strstr(e.msg, "dense"), "sparse infer refused");
    fg_error_clear(&e);
    test_decode_tiles(&src);
    fg_sources_free(&src);
}

int main(void) {
    test_checks();
    test_shapes();
    test_choices();
    test_compile();
    return test_summary("test_infer_cpu");
}
