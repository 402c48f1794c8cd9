/* test_gpu_cache.c (gpu): the cache and the tuner on a real GPU.
 *
 *  1. cold start, then warm start, each in a fresh process: the warm one
 *     compiles nothing and its result is right; both print the time from
 *     process start to the first finished launch;
 *  2. a stored cubin the driver refuses (valid checksum, garbage bytes) is
 *     evicted and recompiled, and the result is right;
 *  2b. launch parameters come from the variant: a row claiming 32 threads
 *     and no shared memory still runs right; an imported (unverified)
 *     kernel is compiled here once, then used (docs/CACHE.md);
 *  3. fg_tune on two buckets stores results that the next context uses, and
 *     the tuned kernel passes the reference check on an odd shape;
 *  4. fg_tune_backward on one bucket (top 2) stores a ",kind=bwd" row that
 *     fg_attention_backward of the next context takes (configs_tuned), and
 *     its dq, dk, dv pass the float64 reference on a GQA shape of that bucket.
 * Exit 77 (skipped) without a GPU. */
#include <sqlite3.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/store.h"
#include "runtime/cuda_api.h"
#include "runtime/check.h"
#include "runtime/reference.h"
#include "runtime/reference_bwd.h"
#include "test_util.h"
#include "tools/harness.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Child mode: one attention call from process start; prints one line. */
static int first_launch(const char *cache, double t_start) {
    const fg_cuda *cu;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) { fprintf(stderr, "%s\n", e.msg); return 3; }
    CUdevice dev;
    CUcontext cc;
    if (cu->DeviceGet(&dev, 0) || cu->DevicePrimaryCtxRetain(&cc, dev) || cu->CtxSetCurrent(cc)) return 3;
    const double t_cuda = now_ms();
    const int B = 1, H = 8, S = 512, D = 128;
    const size_t n = (size_t)B * S * H * D;
    uint16_t *hq = malloc(n * 2), *hk = malloc(n * 2), *hv = malloc(n * 2), *ho = malloc(n * 2);
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)time(NULL));
    fg_fill_normal(hq, n, FG_BF16, &r);
    fg_fill_normal(hk, n, FG_BF16, &r);
    fg_fill_normal(hv, n, FG_BF16, &r);
    CUdeviceptr q, k, v, o;
    if (cu->MemAlloc(&q, n * 2) || cu->MemAlloc(&k, n * 2) || cu->MemAlloc(&v, n * 2) || cu->MemAlloc(&o, n * 2)) return 3;
    cu->MemcpyHtoD(q, hq, n * 2);
    cu->MemcpyHtoD(k, hk, n * 2);
    cu->MemcpyHtoD(v, hv, n * 2);
    cu->MemsetD32(o, 0x7fc07fc0u, n / 2); /* NaN poison */
    cu->CtxSynchronize();
    const double t_ready = now_ms();
    fg_context *ctx;
    fg_context_create(&ctx);
    fg_context_set_cache(ctx, cache);
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, D, B, H, H, S, S);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    fg_status st = fg_attention_forward(ctx, &d, (void *)(uintptr_t)q, (void *)(uintptr_t)k, (void *)(uintptr_t)v,
                                        (void *)(uintptr_t)o, NULL, NULL);
    cu->CtxSynchronize();
    const double t_done = now_ms();
    if (st != FG_OK) { fprintf(stderr, "forward: %s\n", fg_errmsg(ctx)); return 4; }
    cu->MemcpyDtoH(ho, o, n * 2);
    double worst = 0, ref[128], lse;
    for (int i = 0; i < S; i += 37)
        for (int h = 0; h < H; h += 3) {
            fg_reference_row(&d, NULL, hq, hk, hv, 0, h, i, ref, &lse);
            for (int j = 0; j < D; ++j) {
                const double x = fg_half_to_float(ho[((size_t)i * H + h) * D + j], FG_BF16), err = fabs(x - ref[j]);
                if (!(err <= worst)) worst = err; /* NaN propagates */
            }
        }
    fg_context_stats cs = {.struct_size = sizeof cs};
    fg_context_get_stats(ctx, &cs);
    printf("first-launch total_ms=%.1f cuda_init_ms=%.1f inputs_ms=%.1f flashgen_ms=%.1f compiled=%ld from_cache=%ld "
           "evicted=%ld max_err=%.4g ok=%d\n",
           t_done - t_start, t_cuda - t_start, t_ready - t_cuda, t_done - t_ready, cs.kernels_compiled,
           cs.kernels_from_cache, cs.kernels_evicted, worst, worst < 3e-2);
    fg_context_destroy(ctx);
    return 0;
}

typedef struct launch_result { double total, cuda, fg; long compiled, from_cache, evicted; int ok; } launch_result;

static int run_child(const char *self, const char *cache, launch_result *r) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --first-launch '%s'", self, cache);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[1024] = "";
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        double inputs, err;
        if (sscanf(line, "first-launch total_ms=%lf cuda_init_ms=%lf inputs_ms=%lf flashgen_ms=%lf compiled=%ld from_cache=%ld "
                         "evicted=%ld max_err=%lf ok=%d",
                   &r->total, &r->cuda, &inputs, &r->fg, &r->compiled, &r->from_cache, &r->evicted, &err, &r->ok) == 9) {
            got = 1;
            printf("  %s", line);
        }
    }
    return pclose(p) == 0 && got;
}

/* Replaces every stored cubin with garbage of the same size and a matching
 * checksum: the store hands it out, the driver refuses it. */
static int poison_cubins(const char *path) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return -1;
    sqlite3_stmt *q, *u;
    int n = 0;
    sqlite3_prepare_v2(db, "SELECT rowid, length(cubin) FROM kernels", -1, &q, NULL);
    sqlite3_prepare_v2(db, "UPDATE kernels SET cubin = ?1, checksum = ?2 WHERE rowid = ?3", -1, &u, NULL);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const int len = sqlite3_column_int(q, 1);
        unsigned char *junk = malloc((size_t)len);
        for (int i = 0; i < len; ++i) junk[i] = (unsigned char)(i * 97 + 13);
        sqlite3_bind_blob(u, 1, junk, len, SQLITE_TRANSIENT);
        sqlite3_bind_int64(u, 2, (int64_t)fg_store_hash(junk, (size_t)len));
        sqlite3_bind_int64(u, 3, sqlite3_column_int64(q, 0));
        n += sqlite3_step(u) == SQLITE_DONE;
        sqlite3_reset(u);
        free(junk);
    }
    sqlite3_finalize(q);
    sqlite3_finalize(u);
    sqlite3_close(db);
    return n;
}

static void count_tuning(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud) {
    (void)gpu; (void)t;
    printf("  tuned %s %s: %s %.4f ms (heuristic %.4f ms)\n", spec, bucket, t->config, t->ms, t->heuristic_ms);
    ++*(int *)ud;
}

static void on_progress(const fg_tune_progress *p, void *ud) {
    (void)ud;
    if (!strcmp(p->phase, "bucket done"))
        printf("  tune %s %s: %s %.1f TFLOP/s (heuristic %.1f) after %.1f s\n", p->spec, p->bucket, p->config,
               p->best_tflops, p->heuristic_tflops, p->elapsed_s);
}

/* A short tuning run of hdim 64 bf16 into cache: n buckets, top_k
 * candidates in each, 5 launches; the forward's or the backward's. */
static void tune_into(const char *cache, int backward, fg_causal causal, const int *seqlens, int n, int top_k) {
    fg_context *ctx;
    fg_context_create(&ctx);
    fg_context_set_cache(ctx, cache);
    fg_attention_desc shape;
    fg_attention_desc_init(&shape, FG_BF16, 64, 1, 1, 1, 1, 1);
    shape.causal = causal;
    fg_tune_options opt = {.struct_size = sizeof opt};
    opt.seqlens = seqlens;
    opt.num_seqlens = n;
    opt.top_k = top_k;
    opt.reps = 5;
    opt.progress = on_progress;
    const double t0 = now_ms();
    fg_status st = backward ? fg_tune_backward(ctx, &shape, &opt) : fg_tune(ctx, &shape, &opt);
    CHECK(st == FG_OK, "%s: %s", backward ? "fg_tune_backward" : "fg_tune", fg_errmsg(ctx));
    printf("%s hdim=64 bf16%s, %d bucket(s): %.1f s\n", backward ? "fg_tune_backward" : "fg_tune", causal ? " causal" : "", n,
           (now_ms() - t0) / 1e3);
    fg_context_destroy(ctx);
}

static void count_bwd_tuning(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud) {
    (void)gpu;
    printf("  tuned %s %s: %s %.4f ms (heuristic %.4f ms)\n", spec, bucket, t->config, t->ms, t->heuristic_ms);
    if (strstr(spec, ",kind=bwd") && !strcmp(bucket, "sq512,sk512")) ++*(int *)ud;
}

/* 4. the backward's tuning: one bucket, then a call of that bucket uses it. */
static void tune_backward_then_use(const char *cache) {
    const int seqlens[] = {512};
    tune_into(cache, 1, FG_CAUSAL_BOTTOM_RIGHT, seqlens, 1, 2);
    fg_context *ctx;
    fg_status st;
    fg_store *s;
    fg_error e = {0};
    int nbwd = 0;
    if (fg_store_open_strict(cache, FG_STORE_READ_ONLY, &s, &e) == FG_OK) {
        fg_store_each_tuning(s, NULL, count_bwd_tuning, &nbwd, &e);
        fg_store_close(s);
    }
    fg_error_clear(&e);
    CHECK(nbwd == 1, "expected 1 backward tuning row in sq512,sk512, found %d", nbwd);

    /* a fresh context: GQA, odd lengths in the bucket sq512,sk512 */
    fg_context_create(&ctx);
    fg_context_set_cache(ctx, cache);
    const int B = 2, HQ = 4, HKV = 2, S = 450, D = 64;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, D, B, HQ, HKV, S, S);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    const size_t nq = (size_t)B * S * HQ * D, nk = (size_t)B * S * HKV * D, nl = (size_t)B * HQ * S;
    uint16_t *hq = malloc(nq * 2), *hk = malloc(nk * 2), *hv = malloc(nk * 2), *hdo = malloc(nq * 2);
    uint16_t *got[3] = {malloc(nq * 2), malloc(nk * 2), malloc(nk * 2)};
    double *ref[3] = {malloc(nq * 8), malloc(nk * 8), malloc(nk * 8)};
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)time(NULL));
    fg_fill_normal(hq, nq, FG_BF16, &r);
    fg_fill_normal(hk, nk, FG_BF16, &r);
    fg_fill_normal(hv, nk, FG_BF16, &r);
    fg_fill_normal(hdo, nq, FG_BF16, &r);
    const fg_cuda *cu;
    fg_cuda_get(&cu, &e);
    CUdeviceptr q = 0, k = 0, v = 0, o = 0, dout = 0, lse = 0, g[3] = {0, 0, 0}, ws = 0;
    size_t wsb = 0;
    CUresult rc = fg_attention_prepare(ctx, &d) == FG_OK ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
    if (!rc) rc = fg_attention_backward_workspace(ctx, &d, &wsb) == FG_OK ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    const size_t sz[] = {nq, nk, nk, nq, nq};
    CUdeviceptr *in[] = {&q, &k, &v, &dout, &o};
    uint16_t *host[] = {hq, hk, hv, hdo};
    for (int i = 0; i < 5 && !rc; ++i) {
        rc = cu->MemAlloc(in[i], sz[i] * 2);
        if (!rc && i < 4) rc = cu->MemcpyHtoD(*in[i], host[i], sz[i] * 2);
    }
    for (int i = 0; i < 3 && !rc; ++i) rc = cu->MemAlloc(&g[i], (i ? nk : nq) * 2);
    if (!rc) rc = cu->MemAlloc(&lse, nl * 4);
    if (!rc) rc = cu->MemAlloc(&ws, wsb);
    CHECK(!rc, "device setup (%d): %s", (int)rc, fg_errmsg(ctx));
    if (!rc) {
        st = fg_attention_forward(ctx, &d, (void *)q, (void *)k, (void *)v, (void *)o, (float *)lse, NULL);
        CHECK(st == FG_OK, "forward: %s", fg_errmsg(ctx));
        fg_context_stats before = {.struct_size = sizeof before}, after = {.struct_size = sizeof after};
        fg_context_get_stats(ctx, &before);
        for (int i = 0; i < 3; ++i) cu->MemsetD32(g[i], 0x7fc07fc0u, (i ? nk : nq) / 2); /* NaN poison */
        if (st == FG_OK)
            st = fg_attention_backward(ctx, &d, (void *)q, (void *)k, (void *)v, (void *)o, (void *)dout, (float *)lse,
                                       (void *)g[0], (void *)g[1], (void *)g[2], (void *)ws, wsb, NULL);
        CHECK(st == FG_OK, "backward: %s", fg_errmsg(ctx));
        CHECK(cu->CtxSynchronize() == CUDA_SUCCESS, "backward kernels failed");
        fg_context_get_stats(ctx, &after);
        CHECK(after.configs_tuned - before.configs_tuned == 1 && after.configs_heuristic == before.configs_heuristic,
              "the backward did not take its tuned configuration (tuned +%ld, heuristic +%ld)",
              after.configs_tuned - before.configs_tuned, after.configs_heuristic - before.configs_heuristic);
        printf("backward with the tuned configuration: kernels compiled %ld (the tuner stored them)\n",
               after.kernels_compiled - before.kernels_compiled);
        const int ok = fg_reference_backward(&d, NULL, NULL, hq, hk, hv, hdo, ref[0], ref[1], ref[2]);
        CHECK(ok, "reference out of memory");
        static const char *names[] = {"dq", "dk", "dv"};
        for (int i = 0; ok && i < 3; ++i) {
            double rel = 0;
            cu->MemcpyDtoH(got[i], g[i], (i ? nk : nq) * 2);
            CHECK(fg_check_grad(got[i], ref[i], i ? nk : nq, FG_BF16, &rel), "%s rel L2 %.3g", names[i], rel);
            printf("  tuned backward %s rel L2 %.2e\n", names[i], rel);
        }
    }
    CUdeviceptr all[] = {q, k, v, o, dout, lse, g[0], g[1], g[2], ws};
    for (int i = 0; i < 10; ++i)
        if (all[i]) cu->MemFree(all[i]);
    free(hq); free(hk); free(hv); free(hdo);
    for (int i = 0; i < 3; ++i) { free(got[i]); free(ref[i]); }
    fg_error_clear(&e);
    fg_context_destroy(ctx);
}

int main(int argc, char **argv) {
    const double t_start = now_ms();
    if (argc == 3 && !strcmp(argv[1], "--first-launch")) return first_launch(argv[2], t_start);
    const fg_cuda *cu;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) { printf("SKIPPED: %s\n", e.msg); return 77; }
    int ndev = 0;
    if (cu->DeviceGetCount(&ndev) || ndev == 0) { printf("SKIPPED: no GPU\n"); return 77; }
    char dir[] = "/tmp/fg_gpu_cache_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char cache[256], cache2[256];
    snprintf(cache, sizeof cache, "%s/cache.db", dir);
    snprintf(cache2, sizeof cache2, "%s/tuned.db", dir);

    /* 1. cold, warm */
    launch_result cold = {0}, warm = {0}, ev = {0};
    fg_store *s0 = NULL;
    printf("cold start (empty cache file):\n");
    CHECK(run_child(argv[0], cache, &cold), "cold child failed");
    CHECK(cold.ok && cold.compiled >= 1 && cold.from_cache == 0, "cold: ok=%d compiled=%ld from_cache=%ld", cold.ok,
          cold.compiled, cold.from_cache);
    printf("warm start (same file, new process):\n");
    CHECK(run_child(argv[0], cache, &warm), "warm child failed");
    CHECK(warm.ok && warm.compiled == 0 && warm.from_cache >= 1, "warm: ok=%d compiled=%ld from_cache=%ld", warm.ok,
          warm.compiled, warm.from_cache);
    printf("first launch after process start: cold %.1f ms, warm %.1f ms (of which CUDA init %.1f / %.1f ms, flashgen "
           "%.1f / %.1f ms)\n", cold.total, warm.total, cold.cuda, warm.cuda, cold.fg, warm.fg);

    /* 2. a stored cubin that does not load */
    const int poisoned = poison_cubins(cache);
    CHECK(poisoned >= 1, "no cubin to poison (%d)", poisoned);
    printf("after replacing %d stored cubin(s) with garbage:\n", poisoned);
    CHECK(run_child(argv[0], cache, &ev), "evict child failed");
    CHECK(ev.ok && ev.evicted >= 1 && ev.compiled >= 1, "evict: ok=%d evicted=%ld compiled=%ld", ev.ok, ev.evicted,
          ev.compiled);

    /* 2b. a row's launch parameters are never used; an import is verified first */
    sqlite3 *raw;
    CHECK(sqlite3_open(cache, &raw) == SQLITE_OK &&
              sqlite3_exec(raw, "UPDATE kernels SET threads = 32, smem = 0", NULL, NULL, NULL) == SQLITE_OK, "forge");
    sqlite3_close(raw);
    launch_result forged = {0}, imp1 = {0}, imp2 = {0};
    printf("after a row claims 32 threads and no shared memory:\n");
    CHECK(run_child(argv[0], cache, &forged), "forged child failed");
    CHECK(forged.ok && forged.compiled == 0 && forged.from_cache >= 1, "forged launch parameters: ok=%d compiled=%ld",
          forged.ok, forged.compiled);
    char exported[256], imported[256];
    snprintf(exported, sizeof exported, "%s/shipped.db", dir);
    snprintf(imported, sizeof imported, "%s/fleet.db", dir);
    if (fg_store_open_strict(cache, FG_STORE_READ_ONLY, &s0, &e) == FG_OK) {
        CHECK(fg_store_export(s0, exported, &e) == FG_OK, "export: %s", e.msg);
        fg_store_close(s0);
    }
    if (fg_store_open_strict(imported, FG_STORE_CREATE, &s0, &e) == FG_OK) {
        fg_import_stats ist;
        CHECK(fg_store_import(s0, exported, NULL, &ist, &e) == FG_OK && ist.kernels_added >= 1, "import: %s", e.msg);
        fg_store_close(s0);
    }
    fg_error_clear(&e);
    printf("an imported file, first and second start:\n");
    CHECK(run_child(argv[0], imported, &imp1) && run_child(argv[0], imported, &imp2), "import children failed");
    CHECK(imp1.ok && imp1.compiled >= 1 && imp1.from_cache == 0, "unverified import used: compiled=%ld from_cache=%ld",
          imp1.compiled, imp1.from_cache);
    CHECK(imp2.ok && imp2.compiled == 0 && imp2.from_cache >= 1, "verified import not used: compiled=%ld from_cache=%ld",
          imp2.compiled, imp2.from_cache);

    /* 3. tune two buckets, then use them */
    const int seqlens[] = {512, 2048};
    tune_into(cache2, 0, FG_CAUSAL_NONE, seqlens, 2, 3);
    fg_context *ctx;
    fg_store *s;
    int ntun = 0;
    if (fg_store_open_strict(cache2, FG_STORE_READ_ONLY, &s, &e) == FG_OK) {
        fg_store_each_tuning(s, NULL, count_tuning, &ntun, &e);
        CHECK(fg_store_check(s, &e) == FG_OK, "%s", e.msg);
        fg_store_close(s);
    }
    fg_error_clear(&e);
    CHECK(ntun == 2, "expected 2 tuning rows, found %d", ntun);
    fg_context_create(&ctx);
    fg_context_set_cache(ctx, cache2);
    fg_case c;
    memset(&c, 0, sizeof c);
    fg_attention_desc_init(&c.desc, FG_BF16, 64, 2, 8, 4, 1999, 2001); /* bucket sq2048,sk2048; GQA; odd sizes */
    c.seed = (uint64_t)time(NULL);
    c.check_rows_max = 400;
    fg_case_result r;
    fg_harness_run(ctx, &c, 0, &r);
    fg_context_stats cs = {.struct_size = sizeof cs};
    fg_context_get_stats(ctx, &cs);
    CHECK(r.pass, "tuned kernel: %s", r.msg);
    CHECK(cs.configs_tuned == 1 && cs.configs_heuristic == 0, "tuned config not used (tuned %ld, heuristic %ld)",
          cs.configs_tuned, cs.configs_heuristic);
    CHECK(cs.kernels_compiled == 0, "the tuned kernel was compiled again (%ld)", cs.kernels_compiled);
    CHECK(strstr(cs.gpu_identity, "|driver=") != NULL, "identity: %s", cs.gpu_identity);
    printf("identity: %s\n", cs.gpu_identity);
    fg_context_destroy(ctx);

    /* 4. the backward's tuning, in a file of its own (the forward there is untuned) */
    char cache3[256];
    snprintf(cache3, sizeof cache3, "%s/tuned_bwd.db", dir);
    tune_backward_then_use(cache3);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!t_failures && system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_gpu_cache");
}
