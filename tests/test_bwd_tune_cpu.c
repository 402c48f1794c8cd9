/* test_bwd_tune_cpu.c (cpu): the backward's tuning without a GPU.
 *  - the tuning spec text of a backward variant differs from its
 *    forward's, and the forward's text is what it always was;
 *  - a stored backward entry is found by the backward's look-up (the spec
 *    fg_backward_plan makes, as fg_attention_backward reads it) per bucket
 *    and ignored by the forward's, and the other way round;
 *  - an entry that no longer fits (shared memory, the layout block, a
 *    forward-only shape, wgmma=1 without wgmma) is ignored;
 *  - the tuner's backward candidates are non-empty and valid for head dims
 *    64/128/256, fp16/bf16, causal 0/1, with and without the Hopper kernel;
 *  - the gradient check the tuner applies (fg_check_grad) passes a rounded
 *    reference and fails a wrong one or a NaN;
 *  - `flashgen cache show` marks the backward's rows "bwd", and `cache
 *    import` checks them by the backward's rules. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "autotune/candidates.h"
#include "cache/store.h"
#include "fg_bwd_params.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/check.h"
#include "select/bwd_config.h"
#include "select/tuned.h"
#include "test_util.h"

#define SMEM_H100 232448
#define GPU "G"

static char g_dir[64];

/* The forward's and the backward's specs of one dense call, as the runtime makes them. */
static void specs_of(fg_dtype dt, int hd, int causal, fg_spec *fwd, fg_spec *bwd) {
    fg_attention_desc d, dd;
    fg_attention_desc_init(&d, dt, hd, 1, 2, 2, 300, 300);
    d.causal = causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
    fg_variant fv, bv;
    fg_fwd_params fp;
    fg_bwd_params bp;
    fg_error e = {0};
    CHECK(fg_desc_plan(&d, SMEM_H100, &fv, &fp, &e) == FG_OK, "forward plan: %s", e.msg);
    CHECK(fg_backward_plan(&d, SMEM_H100, &dd, &bv, &bp, &e) == FG_OK, "backward plan: %s", e.msg);
    fg_error_clear(&e);
    *fwd = fv.spec;
    *bwd = bv.spec;
}

static void test_spec_text(void) {
    fg_spec f, b;
    specs_of(FG_BF16, 128, 1, &f, &b);
    CHECK(b.kind == FG_KIND_BWD && f.kind == FG_KIND_FWD, "kinds %d %d", f.kind, b.kind);
    char tf[192], tb[192];
    fg_tuning_spec_text(&f, FG_PATH_AUTO, 0, 0, tf, sizeof tf);
    fg_tuning_spec_text(&b, FG_PATH_AUTO, 0, 0, tb, sizeof tb);
    CHECK(!strcmp(tf, "hdim=128,dtype=bf16,causal=1,sparse=0,path=auto"), "forward text changed: %s", tf);
    CHECK(!strcmp(tb, "hdim=128,dtype=bf16,causal=1,sparse=0,path=auto,kind=bwd"), "backward text: %s", tb);
    fg_tuning_spec_text(&b, FG_PATH_MMA, 0, 0, tb, sizeof tb);
    CHECK(!strcmp(tb, "hdim=128,dtype=bf16,causal=1,sparse=0,path=mma,kind=bwd"), "backward mma text: %s", tb);
    /* the same for the other dtype, head dims and causal: never equal */
    for (int hd = 64; hd <= 256; hd *= 2)
        for (int c = 0; c <= 1; ++c) {
            specs_of(FG_FP16, hd, c, &f, &b);
            fg_tuning_spec_text(&f, FG_PATH_AUTO, 0, 0, tf, sizeof tf);
            fg_tuning_spec_text(&b, FG_PATH_AUTO, 0, 0, tb, sizeof tb);
            CHECK(strcmp(tf, tb) && !strstr(tf, "kind") && strstr(tb, ",kind=bwd"), "hd %d causal %d: %s / %s", hd, c, tf, tb);
        }
}

static void put(fg_store *s, const fg_spec *sp, int path, int bq, int bk, const char *bucket, const char *config) {
    char text[192];
    fg_tuning_spec_text(sp, path, bq, bk, text, sizeof text);
    fg_tuning w;
    memset(&w, 0, sizeof w);
    snprintf(w.config, sizeof w.config, "%s", config);
    w.ms = 1.0;
    w.heuristic_ms = 1.5;
    fg_tune_row row;
    memset(&row, 0, sizeof row);
    snprintf(row.config, sizeof row.config, "%s", config);
    row.ms = 1.0;
    fg_error e = {0};
    CHECK(fg_store_put_tuning(s, GPU, text, bucket, &w, &row, 1, NULL, &e) == FG_OK, "put %s: %s", text, e.msg);
    fg_error_clear(&e);
}

static int same(const fg_config *a, int bm, int bn, int warps, int wgmma) {
    return a->block_m == bm && a->block_n == bn && a->warps == warps && a->wgmma == wgmma;
}

static void test_lookup(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/tune.db", g_dir);
    fg_store *s;
    fg_error e = {0};
    CHECK(fg_store_open_strict(path, FG_STORE_CREATE, &s, &e) == FG_OK, "open: %s", e.msg);
    if (!s) return;
    fg_spec f, b;
    specs_of(FG_BF16, 128, 0, &f, &b);
    const char *bwd_cfg = "wgmma=0,block_m=32,block_n=64,warps=8,stages=1,q_in_regs=0,min_blocks=1";
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq2048,sk2048", bwd_cfg);
    fg_config c;
    /* the backward finds it in its bucket (1999 and 2001 round up to 2048), not in another */
    CHECK(fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 1999, 2001, SMEM_H100, 1, &c) == 1 && same(&c, 32, 64, 8, 0),
          "backward entry not found (%d x %d, %d warps)", c.block_m, c.block_n, c.warps);
    CHECK(!fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 512, 512, SMEM_H100, 1, &c), "found in another bucket");
    CHECK(!fg_tuned_config(s, GPU, &b, FG_PATH_MMA, 0, 0, 2048, 2048, SMEM_H100, 1, &c), "found for another path");
    /* the forward does not see it */
    CHECK(!fg_tuned_config(s, GPU, &f, FG_PATH_AUTO, 0, 0, 2048, 2048, SMEM_H100, 1, &c), "forward took a backward entry");
    /* a forward entry is the forward's only */
    const char *fwd_cfg = "wgmma=0,block_m=128,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1";
    put(s, &f, FG_PATH_AUTO, 0, 0, "sq4096,sk4096", fwd_cfg);
    CHECK(fg_tuned_config(s, GPU, &f, FG_PATH_AUTO, 0, 0, 4096, 4096, SMEM_H100, 1, &c) == 1 && same(&c, 128, 64, 4, 0),
          "forward entry not found");
    CHECK(!fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 4096, 4096, SMEM_H100, 1, &c), "backward took a forward entry");

    /* entries that no longer fit are ignored (with a warning on stderr) */
    fprintf(stderr, "(the warnings below are expected)\n");
    /* a forward shape the backward template does not take: block_m 128 */
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq8192,sk8192", fwd_cfg);
    CHECK(!fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 8192, 8192, SMEM_H100, 1, &c), "a forward shape was taken");
    /* more shared memory than this device has */
    const char *big = "wgmma=0,block_m=64,block_n=128,warps=16,stages=1,q_in_regs=0,min_blocks=1";
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq16384,sk16384", big);
    CHECK(fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 16384, 16384, SMEM_H100, 1, &c) == 1, "the big one fits an H100");
    CHECK(!fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 16384, 16384, 101376, 1, &c), "taken past the smem limit");
    /* the Hopper kernel's configuration where there is no wgmma */
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq1024,sk1024", "wgmma=1,block_m=64,block_n=128,warps=8,stages=1,q_in_regs=0,min_blocks=1");
    CHECK(fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 1024, 1024, SMEM_H100, 1, &c) == 1 && same(&c, 64, 128, 8, 1),
          "the wgmma entry on sm_90a");
    CHECK(!fg_tuned_config(s, GPU, &b, FG_PATH_AUTO, 0, 0, 1024, 1024, SMEM_H100, 0, &c), "wgmma taken without wgmma");
    /* an entry of an explicit path that names another family (a hand-edited
     * or foreign row): FG_PATH_MMA would have run the wgmma kernel */
    put(s, &f, FG_PATH_MMA, 0, 0, "sq1024,sk1024", "wgmma=1,block_m=64,block_n=128,warps=4,stages=1,q_in_regs=0,min_blocks=1");
    CHECK(!fg_tuned_config(s, GPU, &f, FG_PATH_MMA, 0, 0, 1024, 1024, SMEM_H100, 2, &c), "FG_PATH_MMA took a wgmma=1 entry");
    put(s, &f, FG_PATH_TMA, 0, 0, "sq1024,sk1024", fwd_cfg);
    CHECK(!fg_tuned_config(s, GPU, &f, FG_PATH_TMA, 0, 0, 1024, 1024, SMEM_H100, 2, &c), "FG_PATH_TMA took a wgmma=0 entry");
    put(s, &f, FG_PATH_MMA, 0, 0, "sq2048,sk2048", fwd_cfg);
    CHECK(fg_tuned_config(s, GPU, &f, FG_PATH_MMA, 0, 0, 2048, 2048, SMEM_H100, 2, &c) == 1 && same(&c, 128, 64, 4, 0),
          "FG_PATH_MMA's own family not found");
    /* a layout block the tiles do not divide (a sparse spec's own entry) */
    fg_spec bs = b;
    bs.sparse = 1;
    put(s, &bs, FG_PATH_AUTO, 32, 32, "sq2048,sk2048", bwd_cfg);
    CHECK(!fg_tuned_config(s, GPU, &bs, FG_PATH_AUTO, 32, 32, 2048, 2048, SMEM_H100, 1, &c), "block_n 64 taken for 32x32 blocks");
    /* the check itself, directly */
    CHECK(fg_config_parse(bwd_cfg, &c, &e) == FG_OK, "parse");
    CHECK(fg_tuned_config_fits(&b, &c, FG_PATH_AUTO, SMEM_H100, 0, 0, 0, &e), "fits: %s", e.msg);
    fg_error_clear(&e);
    CHECK(!fg_tuned_config_fits(&b, &c, FG_PATH_AUTO, SMEM_H100, 64, 32, 0, NULL), "layout 64 x 32 taken by block_n 64");
    fg_store_close(s);

    /* flashgen cache show: the backward's rows read "bwd" */
    const char *bin = getenv("FLASHGEN_BIN");
    if (!bin) { printf("  (FLASHGEN_BIN unset: cache show not run)\n"); return; }
    char cmd[512], line[512];
    snprintf(cmd, sizeof cmd, "'%s' cache show --cache '%s' --spec kind=bwd", bin, path);
    FILE *p = popen(cmd, "r");
    int bwd_rows = 0, fwd_rows = 0;
    while (p && fgets(line, sizeof line, p)) {
        bwd_rows += !strncmp(line, "  bwd  hdim=", 12) && strstr(line, ",kind=bwd") != NULL;
        fwd_rows += !strncmp(line, "  fwd  ", 7);
    }
    CHECK(p && pclose(p) == 0, "%s failed", cmd);
    CHECK(bwd_rows == 5 && fwd_rows == 0, "cache show --spec kind=bwd: %d bwd rows (want 5), %d fwd rows", bwd_rows, fwd_rows);
}

/* `flashgen cache import` checks a backward row by the backward's rules:
 * the Hopper kernel's configuration and an mma.sync one come in, a
 * forward-only shape does not. */
static void test_import(void) {
    const char *bin = getenv("FLASHGEN_BIN");
    if (!bin) { printf("  (FLASHGEN_BIN unset: cache import not run)\n"); return; }
    char src[128], dst[128];
    snprintf(src, sizeof src, "%s/ship.db", g_dir);
    snprintf(dst, sizeof dst, "%s/fleet.db", g_dir);
    fg_store *s;
    fg_error e = {0};
    CHECK(fg_store_open_strict(src, FG_STORE_CREATE, &s, &e) == FG_OK, "open: %s", e.msg);
    fg_error_clear(&e);
    if (!s) return;
    fg_spec f, b;
    specs_of(FG_BF16, 128, 1, &f, &b);
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq1024,sk1024", "wgmma=1,block_m=64,block_n=128,warps=8,stages=1,q_in_regs=0,min_blocks=1");
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq2048,sk2048", "wgmma=0,block_m=64,block_n=64,warps=8,stages=1,q_in_regs=0,min_blocks=1");
    put(s, &b, FG_PATH_AUTO, 0, 0, "sq4096,sk4096", "wgmma=0,block_m=128,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1");
    /* path=mma takes mma.sync configurations only */
    put(s, &b, FG_PATH_MMA, 0, 0, "sq1024,sk1024", "wgmma=1,block_m=64,block_n=128,warps=8,stages=1,q_in_regs=0,min_blocks=1");
    fg_store_close(s);
    char cmd[512], line[1024], out[4096] = "";
    snprintf(cmd, sizeof cmd, "'%s' cache import '%s' --cache '%s' 2>&1", bin, src, dst);
    FILE *p = popen(cmd, "r");
    while (p && fgets(line, sizeof line, p)) strncat(out, line, sizeof out - strlen(out) - 1);
    CHECK(p && pclose(p) == 0, "%s failed: %s", cmd, out);
    CHECK(strstr(out, "tuning results 2 added") && strstr(out, "2 rejected"), "import: %s", out);
}

static void test_candidates(void) {
    static const int smems[] = {SMEM_H100, 166912, 101376};
    for (int t = 0; t < 2; ++t)
        for (int hd = 64; hd <= 256; hd *= 2)
            for (int causal = 0; causal <= 1; ++causal)
                for (int hopper = 0; hopper <= 1; ++hopper)
                    for (int m = 0; m < 3; ++m)
                        for (int path = FG_PATH_AUTO; path <= FG_PATH_MMA; ++path) {
                            fg_spec f, b;
                            specs_of(t ? FG_FP16 : FG_BF16, hd, causal, &f, &b);
                            fg_config c[16], h[8];
                            const int n = fg_tune_bwd_candidates(&b, smems[m], hopper, path, c, 16);
                            CHECK(n > 0, "no candidate: hd %d causal %d hopper %d smem %d", hd, causal, hopper, smems[m]);
                            int wg = 0;
                            for (int i = 0; i < n; ++i) {
                                fg_error e = {0};
                                CHECK(fg_bwd_config_check(&b, &c[i], smems[m], &e) == FG_OK, "hd %d: %s", hd, e.msg);
                                fg_error_clear(&e);
                                wg += c[i].wgmma >= 1;
                            }
                            /* the Hopper kernel first, where it runs and the path allows it, with
                             * the loads AUTO gives contiguous tensors: TMA */
                            fg_config w;
                            int want_wg = hopper && path == FG_PATH_AUTO && fg_bwd_wgmma_config(&b, &w) &&
                                          fg_bwd_smem_bytes(&b, &w) <= smems[m];
                            if (want_wg && hd == 64) { /* 64/64: the other query block height too, where it fits */
                                fg_config o = w;
                                o.block_m = w.block_m == 128 ? 64 : 128;
                                want_wg += fg_bwd_config_check(&b, &o, smems[m], NULL) == FG_OK;
                            }
                            const int want_loads = 2;
                            CHECK(wg == want_wg && (!want_wg || c[0].wgmma == want_loads), "hd %d hopper %d path %d: %d wgmma",
                                  hd, hopper, path, wg);
                            /* every heuristic candidate is among them */
                            const int nh = fg_bwd_candidates(&b, smems[m], 0, 0, h, 8);
                            for (int j = 0; j < nh; ++j) {
                                int in = 0;
                                for (int i = 0; i < n; ++i) in |= !memcmp(&c[i], &h[j], sizeof h[j]);
                                CHECK(in, "hd %d: heuristic candidate %d x %d w%d missing", hd, h[j].block_m, h[j].block_n,
                                      h[j].warps);
                            }
                        }
}

static void test_grad_check(void) {
    enum { N = 1000 };
    static uint16_t got[N];
    static double ref[N];
    for (int i = 0; i < N; ++i) {
        ref[i] = sin(i * 0.37) * 2.0;
        got[i] = fg_float_to_half((float)ref[i], FG_BF16);
    }
    double rel;
    CHECK(fg_check_grad(got, ref, N, FG_BF16, &rel) && rel < 5e-3, "rounded reference fails: %g", rel);
    for (int i = 0; i < N; i += 2) got[i] = fg_float_to_half((float)(ref[i] * 1.1), FG_BF16);
    CHECK(!fg_check_grad(got, ref, N, FG_BF16, &rel), "10%% error passes: %g", rel);
    for (int i = 0; i < N; ++i) got[i] = fg_float_to_half((float)ref[i], FG_FP16);
    CHECK(fg_check_grad(got, ref, N, FG_FP16, &rel), "fp16 rounded reference fails: %g", rel);
    got[7] = 0x7e00; /* NaN */
    CHECK(!fg_check_grad(got, ref, N, FG_FP16, &rel) && isinf(rel), "NaN passes: %g", rel);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/fg_bwd_tune_XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    test_spec_text();
    test_lookup();
    test_import();
    test_candidates();
    test_grad_check();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary("test_bwd_tune_cpu");
}
