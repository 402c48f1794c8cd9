/* The backward kernels without a GPU: every backward variant (head dims
 * 8..256, fp16/bf16, causal on/off, every heuristic candidate; every pair
 * of head dim and value head dim) renders, its key differs from the
 * forward's, and representative ones (value head dims of their own too:
 * 192/128, 128/64, 64/128, 256/128, ...) compile with NVRTC for sm_80 and
 * sm_90a with the configuration the runtime would pick (the first candidate
 * without spills) and no spills or stack, block-sparse ones too, with a
 * pattern's element mask.  Compiles are skipped (the render checks still
 * run) when NVRTC is missing. */
#include <stdlib.h>

#include "autotune/candidates.h"
#include "gen/compile.h"
#include "gen/render.h"
#include "runtime/pattern.h"
#include "select/bwd_config.h"
#include "test_util.h"

static fg_sources g_src;

static fg_status compile(const fg_variant *v, const char *arch, fg_kernel_stats *st, fg_error *e) {
    char key[512];
    fg_variant_key(v, g_src.hash_hex, 0, 0, arch, key, sizeof key);
    fg_rendered r;
    fg_status rc = fg_render_forward(&g_src, v, key, &r, e);
    if (rc != FG_OK) return rc;
    fg_cubin cb;
    rc = fg_compile_cubin(&g_src, r.source, arch, key, &cb, e);
    fg_rendered_free(&r);
    if (rc == FG_OK) { *st = cb.stats; fg_cubin_free(&cb); }
    return rc;
}

static void spec_of(fg_variant *v, int d, int dv, fg_dtype dt, int causal) {
    memset(v, 0, sizeof *v);
    v->spec.head_dim = d;
    v->spec.head_dim_v = dv;
    v->spec.dtype = dt;
    v->spec.causal = causal;
    v->spec.kind = FG_KIND_BWD;
    fg_config_unset(&v->cfg);
}

int main(int argc, char **argv) {
    fg_error e = {0};
    CHECK(fg_sources_load(&g_src, &e) == FG_OK, "%s", e.msg ? e.msg : "");
    /* 1. every variant renders, with the smem the config formula says */
    int rendered = 0;
    for (int d = 8; d <= 256; d += 8)
        for (int dt = 0; dt < 2; ++dt)
            for (int causal = 0; causal < 4; ++causal) { /* 2, 3: block-sparse */
                fg_variant v;
                spec_of(&v, d, 0, (fg_dtype)dt, causal & 1);
                v.spec.sparse = causal >> 1;
                fg_config c[8];
                const int n = fg_bwd_candidates(&v.spec, 166912, 0, 0, c, 8);
                CHECK(n > 0, "hdim %d: no backward candidate fits sm_80", d);
                for (int i = 0; i < n; ++i) {
                    v.cfg = c[i];
                    fg_rendered r;
                    fg_status st = fg_render_forward(&g_src, &v, "k", &r, &e);
                    CHECK(st == FG_OK, "hdim %d: %s", d, e.msg ? e.msg : "");
                    if (st != FG_OK) { fg_error_clear(&e); continue; }
                    CHECK(r.smem_bytes == fg_bwd_smem_bytes(&v.spec, &v.cfg), "hdim %d smem %d vs %d", d, r.smem_bytes,
                          fg_bwd_smem_bytes(&v.spec, &v.cfg));
                    CHECK(r.threads == c[i].warps * 32, "threads");
                    CHECK_CONTAINS(r.source, "flashgen_bwd_pre");
                    CHECK_CONTAINS(r.source, "flashgen_bwd_dq");
                    fg_rendered_free(&r);
                    ++rendered;
                }
            }
    /* every pair with a value head dim of its own renders; DV is declared
     * only where the dims differ, and head_dim_v == head_dim renders the
     * same source as head_dim_v = 0 (cached kernels stay valid) */
    int pairs = 0;
    for (int d = 8; d <= 256; d += 8)
        for (int dv = 8; dv <= 256; dv += 8) {
            fg_variant v;
            spec_of(&v, d, dv, (d + dv) % 16 ? FG_FP16 : FG_BF16, (d / 8) & 1);
            v.spec.sparse = (dv / 8) % 3 == 0;
            fg_config c[8];
            const int n = fg_bwd_candidates(&v.spec, 166912, 0, 0, c, 8);
            CHECK(n > 0, "hdim %d hdim_v %d: no backward candidate fits sm_80", d, dv);
            char traits[64];
            snprintf(traits, sizeof traits, "static constexpr int DV = %d;", dv);
            for (int i = 0; i < n; ++i) {
                v.cfg = c[i];
                fg_rendered r;
                fg_status st = fg_render_forward(&g_src, &v, "k", &r, &e);
                CHECK(st == FG_OK, "hdim %d hdim_v %d: %s", d, dv, e.msg ? e.msg : "");
                if (st != FG_OK) { fg_error_clear(&e); continue; }
                CHECK(r.smem_bytes == fg_bwd_smem_bytes(&v.spec, &v.cfg), "hdim %d hdim_v %d smem %d vs %d", d, dv,
                      r.smem_bytes, fg_bwd_smem_bytes(&v.spec, &v.cfg));
                CHECK(!strstr(r.source, "int DV =") == (d == dv), "hdim %d hdim_v %d: DV declared %s", d, dv,
                      d == dv ? "for equal dims" : "missing");
                if (d != dv) CHECK_CONTAINS(r.source, traits);
                if (d == dv) {
                    fg_variant v0 = v;
                    v0.spec.head_dim_v = 0;
                    fg_rendered r0;
                    CHECK(fg_render_forward(&g_src, &v0, "k", &r0, &e) == FG_OK && !strcmp(r0.source, r.source),
                          "hdim %d: head_dim_v = head_dim renders other source than head_dim_v = 0", d);
                    fg_error_clear(&e);
                    fg_rendered_free(&r0);
                }
                fg_rendered_free(&r);
                ++pairs;
            }
        }
    printf("%d backward variants rendered, %d of them over every (head_dim, head_dim_v) pair\n", rendered + pairs, pairs);
    /* the Hopper backward: exactly dense fp16/bf16 with head dims 64/128
     * each; its one configuration renders with the smem the formula says,
     * and the check refuses it elsewhere with a reason */
    int hopper = 0;
    for (int d = 8; d <= 256; d += 8)
        for (int dv = 8; dv <= 256; dv += 8)
            for (int sparse = 0; sparse < 2; ++sparse) {
                fg_variant v;
                spec_of(&v, d, dv, (d + dv) % 16 ? FG_FP16 : FG_BF16, (d / 8) & 1);
                v.spec.sparse = sparse;
                const int want = (((d == 64 || d == 128) && (dv == 64 || dv == 128)) || (d == 256 && dv == 256)) && !sparse;
                const int got = fg_bwd_wgmma_config(&v.spec, &v.cfg);
                CHECK(got == want, "hdim %d hdim_v %d sparse %d: Hopper backward %s", d, dv, sparse, got ? "offered" : "missing");
                if (!got) {
                    fg_config c = {0};
                    fg_config_unset(&c);
                    c.block_m = 64; c.block_n = 128; c.warps = 8; c.wgmma = 1;
                    CHECK(fg_bwd_config_check(&v.spec, &c, 232448, &e) == FG_ERR_UNSUPPORTED && e.msg && strstr(e.msg, "wgmma=1"),
                          "hdim %d hdim_v %d sparse %d: wgmma=1 not refused with a reason", d, dv, sparse);
                    fg_error_clear(&e);
                    continue;
                }
                CHECK(fg_bwd_config_check(&v.spec, &v.cfg, 232448, &e) == FG_OK, "hdim %d hdim_v %d: %s", d, dv, e.msg ? e.msg : "");
                fg_error_clear(&e);
                fg_rendered r;
                fg_status st = fg_render_forward(&g_src, &v, "k", &r, &e);
                CHECK(st == FG_OK, "hdim %d hdim_v %d wgmma: %s", d, dv, e.msg ? e.msg : "");
                if (st != FG_OK) { fg_error_clear(&e); continue; }
                CHECK(r.smem_bytes == fg_bwd_smem_bytes(&v.spec, &v.cfg), "hdim %d hdim_v %d wgmma smem %d vs %d", d, dv,
                      r.smem_bytes, fg_bwd_smem_bytes(&v.spec, &v.cfg));
                CHECK(r.threads == 256, "wgmma threads %d", r.threads);
                CHECK_CONTAINS(r.source, "attention_backward_wgmma");
                fg_rendered_free(&r);
                ++hopper;
            }
    CHECK(hopper == 5, "%d Hopper backward variants, want 5 (the pairs of 64 and 128, and 256/256)", hopper);
    /* 1b. the query block height: the heuristic takes 128 rows at 64/64
     * (causal too since MASK_BRANCH); 64 and 128 are both accepted there (a
     * caller's block_m, an older tuned result) and render with the formula's
     * smem, with cp.async and with TMA loads (128/128 TMA: DQ_LAG's three
     * dS^T stages); 128 is refused elsewhere; the tuner offers both at 64/64 */
    for (int d = 64; d <= 128; d += 64)
        for (int causal = 0; causal < 2; ++causal) {
            fg_variant v;
            spec_of(&v, d, 0, FG_BF16, causal);
            CHECK(fg_bwd_wgmma_config(&v.spec, &v.cfg), "hdim %d: no Hopper backward", d);
            CHECK(v.cfg.block_m == (d == 64 ? 128 : 64), "hdim %d causal %d: heuristic block_m %d", d, causal, v.cfg.block_m);
            for (int bm = 64; bm <= 128; bm += 64)
            for (int wg = 1; wg <= 2; ++wg) {
                v.cfg.block_m = bm;
                v.cfg.wgmma = wg;
                const fg_status st = fg_bwd_config_check(&v.spec, &v.cfg, 232448, &e);
                CHECK((st == FG_OK) == (d == 64 || bm == 64), "hdim %d causal %d block_m %d: check %d (%s)", d, causal, bm,
                      (int)st, e.msg ? e.msg : "");
                fg_error_clear(&e);
                if (st != FG_OK) continue;
                fg_rendered r;
                const fg_status rs = fg_render_forward(&g_src, &v, "k", &r, &e);
                CHECK(rs == FG_OK, "hdim %d causal %d block_m %d: %s", d, causal, bm, e.msg ? e.msg : "");
                fg_error_clear(&e);
                if (rs != FG_OK) continue;
                CHECK(r.smem_bytes == fg_bwd_smem_bytes(&v.spec, &v.cfg), "hdim %d block_m %d wgmma %d smem %d vs %d", d, bm, wg,
                      r.smem_bytes, fg_bwd_smem_bytes(&v.spec, &v.cfg));
                /* DQ_LAG at 128/128 with TMA loads only (bwd_wgmma.lua dq_lag) */
                CHECK_CONTAINS(r.source, d == 128 && wg == 2 ? "DQ_LAG = true" : "DQ_LAG = false");
                /* MASK_BRANCH for every causal variant of this kernel */
                CHECK_CONTAINS(r.source, causal ? "MASK_BRANCH = true" : "MASK_BRANCH = false");
                /* causal key blocks longest first, except at 64/64 (bwd_wgmma.lua lpt) */
                CHECK_CONTAINS(r.source, causal && d == 128 ? "LPT = true" : "LPT = false");
                fg_rendered_free(&r);
            }
            v.cfg.wgmma = 1;
            fg_config cand[32];
            const int n = fg_tune_bwd_candidates(&v.spec, 232448, 1, FG_PATH_AUTO, cand, 32);
            int has64 = 0, has128 = 0;
            for (int i = 0; i < n; ++i) {
                has64 |= cand[i].wgmma >= 1 && cand[i].block_m == 64;
                has128 |= cand[i].wgmma >= 1 && cand[i].block_m == 128;
            }
            CHECK(has64 && has128 == (d == 64), "hdim %d causal %d: tuner offers Hopper block_m 64 %d, 128 %d", d, causal, has64,
                  has128);
        }
    /* 2. forward and backward keys differ; the forward key has no kind */
    {
        fg_variant f, b;
        spec_of(&b, 128, 0, FG_BF16, 1);
        f = b;
        f.spec.kind = FG_KIND_FWD;
        char kf[512], kb[512];
        fg_variant_key(&f, "h", 13, 0, "sm_90a", kf, sizeof kf);
        fg_variant_key(&b, "h", 13, 0, "sm_90a", kb, sizeof kb);
        CHECK(strcmp(kf, kb) && !strstr(kf, "kind") && strstr(kb, "bwd_mma:") && strstr(kb, ",kind=bwd"), "%s | %s", kf, kb);
        CHECK(!fg_spec_equal(&f.spec, &b.spec), "forward and backward specs compare equal");
        fg_variant p;
        fg_causal cz;
        CHECK(fg_spec_parse("hdim=64,kind=bwd", &p, &cz, &e) == FG_OK && p.spec.kind == FG_KIND_BWD, "parse kind=bwd");
        fg_error_clear(&e);
        CHECK(fg_spec_parse("hdim=64,kind=sideways", &p, &cz, &e) == FG_ERR_INVALID_ARGUMENT, "parse a bad kind");
        fg_error_clear(&e);
        /* a configuration the template rejects comes back as a template error, not a crash */
        b.cfg.block_m = 48; b.cfg.block_n = 64; b.cfg.warps = 4;
        fg_rendered r;
        CHECK(fg_render_forward(&g_src, &b, "k", &r, &e) == FG_ERR_TEMPLATE, "block_m=48 rendered");
        fg_error_clear(&e);
    }
    /* 3. representative variants compile without spills */
    fg_nvrtc_info nv;
    if (fg_nvrtc_load(&nv, &e) != FG_OK) {
        printf("NVRTC missing, compiles skipped: %s\n", e.msg);
        fg_error_clear(&e);
        fg_sources_free(&g_src);
        return test_summary("test_bwd_compile");
    }
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    /* {head_dim, head_dim_v}; causal also for the third column */
    static const int dims[][3] = {{32, 32, 0},   {40, 40, 1},   {64, 64, 0},   {96, 96, 0},  {128, 128, 1},
                                  {192, 192, 0}, {256, 256, 0}, {192, 128, 1}, {128, 64, 0}, {64, 128, 1},
                                  {256, 128, 0}, {40, 72, 0},   {256, 8, 0},   {8, 256, 0}};
    for (int a = 0; a < 2; ++a)
        for (unsigned di = 0; di < sizeof dims / sizeof dims[0]; ++di)
            for (int causal = 0; causal < 2; ++causal) {
                const char *arch = a ? "sm_80" : "sm_90a";
                if (quick && (a || causal)) continue;
                if (causal && !dims[di][2]) continue;
                fg_variant v;
                spec_of(&v, dims[di][0], dims[di][1], a ? FG_FP16 : FG_BF16, causal);
                fg_config c[8];
                const int n = fg_bwd_candidates(&v.spec, a ? 166912 : 232448, 0, 0, c, 8);
                fg_kernel_stats st = {0};
                int ok = 0, i;
                for (i = 0; i < n && !ok; ++i) {
                    v.cfg = c[i];
                    memset(&st, 0, sizeof st);
                    fg_status rc = compile(&v, arch, &st, &e);
                    CHECK(rc == FG_OK, "%s hdim %d hdim_v %d: %s", arch, dims[di][0], dims[di][1], e.msg ? e.msg : "");
                    fg_error_clear(&e);
                    ok = rc == FG_OK && !st.spill_stores && !st.spill_loads && !st.stack_frame;
                    printf("%-7s hdim=%3d hdim_v=%3d causal=%d block_m=%d block_n=%d warps=%d regs=%3d spill=%d/%d stack=%d %.2fs%s\n",
                           arch, dims[di][0], dims[di][1], causal, c[i].block_m, c[i].block_n, c[i].warps, st.registers,
                           st.spill_stores, st.spill_loads, st.stack_frame, st.compile_seconds, ok ? "" : "  (next candidate)");
                    fflush(stdout);
                }
                CHECK(ok, "%s hdim %d hdim_v %d causal %d: every backward candidate spills", arch, dims[di][0], dims[di][1],
                      causal);
            }
    /* block-sparse, and with a pattern's element mask (32-bit and 64-bit
     * arithmetic), and with a value head dim of its own (192/128), for both archs */
    fg_context *ctx;
    fg_context_create(&ctx);
    static const char *const pats[][2] = {
        {NULL, NULL}, {"sliding_window", "window=300"},
        {"{ mask = '(q_idx * 3000000007 + kv_idx) % 5 != 1 && kv_idx <= q_idx + seqlen_k - seqlen_q' }", NULL}, {NULL, NULL}};
    for (int a = 0; a < 2 && !quick; ++a)
        for (int i = 0; i < 4; ++i) {
            const char *arch = a ? "sm_80" : "sm_90a";
            fg_pattern *pp = NULL;
            fg_variant v;
            spec_of(&v, i == 1 ? 64 : i == 3 ? 192 : 128, i == 3 ? 128 : 0, FG_BF16, 1);
            v.spec.sparse = 1;
            if (pats[i][0]) {
                CHECK(fg_pattern_create(ctx, pats[i][0], pats[i][1], &pp) == FG_OK, "%s", fg_errmsg(ctx));
                if (!pp) continue;
                const char *cuda = fg_pattern_mask(pp, FG_MASK_CUDA);
                v.spec.mask_hash = fg_mask_hash_of(cuda);
                v.spec.mask_cuda = cuda;
                v.spec.mask_text = fg_pattern_mask(pp, FG_MASK_TEXT);
            }
            fg_config c[8];
            const int n = fg_bwd_candidates(&v.spec, a ? 166912 : 232448, 128, 128, c, 8);
            CHECK(n > 0, "no sparse candidate");
            int ok = 0;
            for (int k = 0; k < n && !ok; ++k) { /* the runtime's rule: the first without spills */
                v.cfg = c[k];
                fg_kernel_stats st = {0};
                fg_status rc = compile(&v, arch, &st, &e);
                CHECK(rc == FG_OK, "%s sparse %s: %s", arch, pats[i][0] ? pats[i][0] : "", e.msg ? e.msg : "");
                fg_error_clear(&e);
                ok = rc == FG_OK && !st.spill_stores && !st.spill_loads && !st.stack_frame;
                printf("%-7s sparse hdim=%d hdim_v=%d mask=%s block_m=%d block_n=%d warps=%d regs=%3d spill=%d/%d stack=%d%s\n",
                       arch, v.spec.head_dim, fg_spec_head_dim_v(&v.spec), pats[i][0] ? (i == 1 ? "sliding_window" : "64-bit expression") : "none", c[k].block_m,
                       c[k].block_n, c[k].warps, st.registers, st.spill_stores, st.spill_loads, st.stack_frame,
                       ok ? "" : "  (next candidate)");
            }
            CHECK(ok, "%s: every sparse candidate spills", arch);
            fg_pattern_destroy(pp);
        }
    /* the Hopper backward compiles for sm_90a without spills, with HGMMA */
    for (int i = 0; i < 10; ++i) {
        static const int hd[5][2] = {{64, 64}, {128, 128}, {128, 64}, {64, 128}, {256, 256}};
        if (quick && i >= 5) break;
        fg_variant v;
        spec_of(&v, hd[i % 5][0], hd[i % 5][1], i >= 5 ? FG_FP16 : FG_BF16, ((i >> 1) ^ (i / 5)) & 1);
        CHECK(fg_bwd_wgmma_config(&v.spec, &v.cfg), "no Hopper config");
        fg_kernel_stats st = {0};
        const fg_status rc = compile(&v, "sm_90a", &st, &e);
        CHECK(rc == FG_OK, "Hopper backward %d/%d: %s", hd[i % 5][0], hd[i % 5][1], e.msg ? e.msg : "");
        fg_error_clear(&e);
        const int ok = rc == FG_OK && !st.spill_stores && !st.spill_loads && !st.stack_frame;
        printf("sm_90a  wgmma  hdim=%d hdim_v=%d %s causal=%d regs=%3d spill=%d/%d stack=%d\n", hd[i % 5][0], hd[i % 5][1],
               i >= 5 ? "fp16" : "bf16", ((i >> 1) ^ (i / 5)) & 1, st.registers, st.spill_stores, st.spill_loads, st.stack_frame);
        CHECK(ok, "Hopper backward %d/%d spills", hd[i % 5][0], hd[i % 5][1]);
    }
    fg_context_destroy(ctx);
    fg_sources_free(&g_src);
    return test_summary("test_bwd_compile");
}
