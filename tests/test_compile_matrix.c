/* Compiles every variant family with NVRTC (no GPU needed) for sm_90a and
 * sm_80 (head_dim_v != head_dim included), with the block configuration the heuristic picks for that arch's
 * shared memory, and checks the cubin: ptxas reports no spills and no stack
 * frame, and compile time per variant.  Two worker threads. */
#include <pthread.h>
#include <stdlib.h>

#include "select/heuristic.h"
#include "gen/render.h"
#include "gen/compile.h"
#include "runtime/pattern.h"
#include "test_util.h"

typedef struct job {
    fg_variant v;
    const char *arch;
    int smem;
    int mma_only; /* sm_90a: also the mma.sync family where wgmma would be picked */
    int tma;      /* sm_90a: the TMA family too (the runtime's AUTO on Hopper) */
    fg_status st;
    fg_kernel_stats stats;
    char msg[512];
} job;

static fg_sources g_src;
static job *g_jobs;
static int g_njobs, g_next;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* fg_try_compile for fg_pick_config: render + NVRTC for the arch in ud */
static fg_status compile_one(void *ud, const fg_spec *s, const fg_config *c, fg_kernel_stats *st, fg_error *e) {
    fg_variant v = {*s, *c};
    char key[512];
    fg_variant_key(&v, g_src.hash_hex, 0, 0, (const char *)ud, key, sizeof key);
    fg_rendered r;
    fg_status rc = fg_render_forward(&g_src, &v, key, &r, e);
    if (rc != FG_OK) return rc;
    fg_cubin cb;
    rc = fg_compile_cubin(&g_src, r.source, (const char *)ud, key, &cb, e);
    fg_rendered_free(&r);
    if (rc == FG_OK) { *st = cb.stats; fg_cubin_free(&cb); }
    return rc;
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_mu);
        int i = g_next++;
        pthread_mutex_unlock(&g_mu);
        if (i >= g_njobs) return NULL;
        job *j = &g_jobs[i];
        fg_error e = {0};
        char key[512];
        fg_variant_key(&j->v, g_src.hash_hex, 0, 0, j->arch, key, sizeof key);
        fg_rendered r;
        fg_cubin cb;
        (void)r; (void)cb;
        j->st = fg_pick_config(&j->v.spec, j->smem, j->v.spec.sparse ? 128 : 0, j->v.spec.sparse ? 128 : 0,
                               j->mma_only ? 0 : fg_arch_has_wgmma(j->arch) * (j->tma ? 2 : 1), compile_one,
                               (void *)j->arch, &j->v.cfg, &e);
        if (j->st == FG_OK) j->st = compile_one((void *)j->arch, &j->v.spec, &j->v.cfg, &j->stats, &e);
        if (e.msg) snprintf(j->msg, sizeof j->msg, "%.500s", e.msg);
        fg_error_clear(&e);
    }
}

int main(void) {
    fg_error e = {0};
    if (fg_nvrtc_load(NULL, &e) != FG_OK) {
        printf("SKIP: NVRTC not available: %s\n", e.msg);
        return 77;
    }
    CHECK(fg_sources_load(&g_src, &e) == FG_OK, "%s", e.msg);
    static const int dims[] = {32, 40, 64, 96, 128, 160, 192, 256};
    const int nd = sizeof dims / sizeof dims[0];
    g_jobs = calloc(256, sizeof *g_jobs);
    for (int a = 0; a < 2; ++a)
        for (int di = 0; di < nd; ++di)
            for (int causal = 0; causal < 2; ++causal)
                for (int sparse = 0; sparse < 2; ++sparse)
                    for (int dt = 0; dt < 2; ++dt) {
                        /* sm_80 and fp16: every family at two head dims */
                        if ((a == 1 || dt == 0) && dims[di] != 64 && dims[di] != 128) continue;
                        job *j = &g_jobs[g_njobs++];
                        j->v.spec.head_dim = dims[di];
                        j->v.spec.dtype = dt ? FG_FP16 : FG_BF16;
                        j->v.spec.causal = causal;
                        j->v.spec.sparse = sparse;
                        fg_config_unset(&j->v.cfg);
                        j->arch = a ? "sm_80" : "sm_90a";
                        j->smem = a ? 166912 : 232448;
                        if (a == 0 && dims[di] % 64 == 0 && dt == 0) { /* the mma.sync family too */
                            job *m = &g_jobs[g_njobs++];
                            *m = *j;
                            m->mma_only = 1;
                        }
                    }
    /* a value head dim of its own (head_dim_v != head_dim), both directions:
     * sm_90a as the heuristic picks (TMA where both are multiples of 16) and
     * the mma.sync family, sm_80 mma.sync; then the extremes on sm_80 */
    static const int dvs[][2] = {{192, 128}, {128, 64}, {64, 128}, {256, 128}, {40, 72}, {8, 256}, {256, 8}};
    for (int i = 0; i < 7; ++i)
        for (int a = 0; a < 2; ++a)
            for (int fam = 0; fam < (a ? 1 : 2); ++fam) {
                if (i >= 5 && !a) continue;
                job *j = &g_jobs[g_njobs++];
                j->v.spec.head_dim = dvs[i][0];
                j->v.spec.head_dim_v = dvs[i][1];
                j->v.spec.dtype = i % 2 ? FG_FP16 : FG_BF16;
                j->v.spec.causal = (i + a) % 2;
                j->v.spec.sparse = i == 1;
                fg_config_unset(&j->v.cfg);
                j->arch = a ? "sm_80" : "sm_90a";
                j->smem = a ? 166912 : 232448;
                j->mma_only = fam;
                j->tma = 1;
            }
    /* variants with a mask expression (block-sparse patterns): both kernel
     * families, sm_90a and sm_80, causal and not; the masks of three built-ins
     * (abs, %, 16 constants; 32-bit code) and one that needs 64-bit code */
    fg_context *ctx;
    fg_context_create(&ctx);
    static const char *const pats[][2] = {
        {"sliding_window", "window=1000"}, {"dilated", NULL},
        {"document", "lengths=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"},
        /* 64-bit arithmetic (a product leaves the int range), every function, a comparison as an argument */
        {"{ mask = '(q_idx * 3000000007 + kv_idx) % 5 != 1 && min(kv_idx < 3, q_idx) <= abs(-q_idx) + max(q_idx, 2) / 3' }", NULL}};
    fg_pattern *pp[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; ++i) {
        CHECK(fg_pattern_create(ctx, pats[i][0], pats[i][1], &pp[i]) == FG_OK, "%s", fg_errmsg(ctx));
        if (!pp[i]) continue;
        const char *cuda = fg_pattern_mask(pp[i], FG_MASK_CUDA);
        for (int a = 0; a < 2; ++a)
            for (int causal = 0; causal < 2; ++causal)
                for (int fam = 0; fam < (a ? 1 : 2); ++fam) {
                    if (i > 0 && (causal || a)) continue; /* the other masks: one variant per family */
                    job *j = &g_jobs[g_njobs++];
                    j->v.spec.head_dim = 128;
                    j->v.spec.dtype = FG_BF16;
                    j->v.spec.causal = causal;
                    j->v.spec.sparse = 1;
                    j->v.spec.mask_hash = fg_mask_hash_of(cuda);
                    j->v.spec.mask_cuda = cuda;
                    j->v.spec.mask_text = fg_pattern_mask(pp[i], FG_MASK_TEXT);
                    fg_config_unset(&j->v.cfg);
                    j->arch = a ? "sm_80" : "sm_90a";
                    j->smem = a ? 166912 : 232448;
                    j->mma_only = fam;
                }
    }
    pthread_t th[2];
    for (int i = 0; i < 2; ++i) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 2; ++i) pthread_join(th[i], NULL);
    double tmax = 0;
    for (int i = 0; i < g_njobs; ++i) {
        job *j = &g_jobs[i];
        char spec[300];
        fg_variant_format(&j->v, spec, sizeof spec);
        printf("%-7s %-120s regs=%3d spill=%d/%d stack=%d %.2fs %s\n", j->arch, spec, j->stats.registers, j->stats.spill_stores,
               j->stats.spill_loads, j->stats.stack_frame, j->stats.compile_seconds, j->st == FG_OK ? "" : j->msg);
        CHECK(j->st == FG_OK, "%s %s: %s", j->arch, spec, j->msg);
        CHECK(j->stats.spill_stores == 0 && j->stats.spill_loads == 0 && j->stats.stack_frame == 0,
              "%s %s spills (%d/%d bytes, stack %d)", j->arch, spec, j->stats.spill_stores, j->stats.spill_loads, j->stats.stack_frame);
        CHECK(j->stats.registers > 0 && j->stats.registers <= 255, "%s %s: registers %d", j->arch, spec, j->stats.registers);
        if (j->stats.compile_seconds > tmax) tmax = j->stats.compile_seconds;
    }
    printf("%d variants compiled; slowest %.2f s\n", g_njobs, tmax);
    for (int i = 0; i < 4; ++i) fg_pattern_destroy(pp[i]);
    fg_context_destroy(ctx);
    fg_sources_free(&g_src);
    free(g_jobs);
    return test_summary("test_compile_matrix");
}
