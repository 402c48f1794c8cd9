/* GPU test of the inference path (issue 12; docs/INFERENCE.md) against the
 * float64 CPU reference, sequence by sequence: fresh random q, k, v per
 * case, o and lse poisoned with NaN first.
 *
 *   decode   seqlen_q 1..4 against a KV cache with per-sequence lengths
 *            (seqlens_k, 0 and capacity included), contiguous or paged
 *            (pages shuffled, one page shared by two sequences), GQA packed
 *            or not, split-KV off / automatic / forced to 7;
 *   varlen   packed q and k/v (cu_seqlens_q/k) with lengths 0, 1, odd,
 *            longer than a tile, causal both alignments, GQA, head_dim_v;
 *   tables   out-of-range entries: reported by fg_attention_table_error,
 *            never a fault (the context stays usable);
 *   split    split and unsplit plans agree within the tolerance;
 *   mods     score modifications (softcap, ALiBi [h] and [b, h], windows
 *            one- and two-sided, sinks, gpt-oss's sinks + window, all four)
 *            on decode (GQA packed), paged 16/64, split 7/auto/none and
 *            varlen prefill with lengths 0 and 1 (tests/infer_case.h).
 * Each case runs through a plan (fg_attention_plan_create/fg_attention_run)
 * and, when it does not split, also through fg_attention_forward.
 * Exit 77 (skipped) without a GPU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/check.h"
#include "runtime/cuda_api.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "test_gpu_util.h"
#include "test_util.h"

static const fg_cuda *cu;

static CUdeviceptr dalloc(size_t bytes) { return gpu_dalloc(cu, bytes); }

static void up(CUdeviceptr d, const void *h, size_t n) { cu->MemcpyHtoD(d, h, n); }

/* A paged cache in d: pages of `page` rows of `heads` x D, seqlens_k at
 * tabs, the block table at tabs + 64. */
static void set_pages(fg_attention_desc *d, CUdeviceptr tabs, int page, int num_pages, int max_pages, int heads, int D) {
    d->k_strides[0] = d->v_strides[0] = (int64_t)page * heads * D;
    d->seqlens_k = (const int32_t *)(uintptr_t)tabs;
    d->block_table = (const int32_t *)(uintptr_t)(tabs + 64);
    d->page_size = page;
    d->num_pages = num_pages;
    d->max_pages = max_pages;
}

#include "infer_case.h"

/* Out-of-range tables: a recorded error, no fault, and the context usable. */
static void bad_tables(fg_context *ctx) {
    const int B = 2, H = 4, D = 64, cap = 100, page = 16, maxpages = 7;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, D, B, H, H, 1, cap);
    CUdeviceptr q = dalloc(2 * 8 * H * D), o = dalloc(2 * 8 * H * D), kv = dalloc(2 * (size_t)B * maxpages * page * H * D);
    CUdeviceptr tabs = dalloc(4096);
    cu->MemsetD32(q, 0, 8 * H * D / 2);
    cu->MemsetD32(kv, 0, B * maxpages * page * H * D / 2);
    set_pages(&d, tabs, page, B * maxpages, maxpages, H, D);
    struct { const char *what; int32_t lens[2]; int32_t bad_page; const char *expect; } t[] = {
        {"seqlens_k past the capacity", {5, 101}, 0, "seqlens_k[1] = 101"},
        {"negative seqlens_k", {-3, 5}, 0, "seqlens_k[0] = -3"},
        {"page out of range", {40, 5}, 1000, "block_table[0][1] = 1000"},
        {"negative page", {40, 5}, -1, "block_table[0][1] = -1"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; ++i) {
        int32_t table[2 * 7];
        for (int j = 0; j < 2 * maxpages; ++j) table[j] = j;
        table[1] = t[i].bad_page ? t[i].bad_page : 1;
        up(tabs, t[i].lens, sizeof t[i].lens);
        up(tabs + 64, table, sizeof table);
        fg_status st = fg_attention_forward(ctx, &d, (void *)(uintptr_t)q, (void *)(uintptr_t)kv, (void *)(uintptr_t)kv,
                                            (void *)(uintptr_t)o, NULL, NULL);
        CHECK(st == FG_OK, "%s: launch refused: %s", t[i].what, fg_errmsg(ctx));
        CHECK(cu->CtxSynchronize() == CUDA_SUCCESS, "%s: kernel fault", t[i].what);
        char msg[256] = "";
        st = fg_attention_table_error(ctx, msg, sizeof msg, NULL);
        CHECK(st == FG_ERR_BAD_LAYOUT && strstr(msg, t[i].expect), "%s: got status %d '%s', want '%s'", t[i].what, (int)st,
              msg, t[i].expect);
        printf("ok   bad table: %-28s -> %s\n", t[i].what, msg);
        st = fg_attention_table_error(ctx, msg, sizeof msg, NULL);
        CHECK(st == FG_OK, "%s: the error word was not cleared", t[i].what);
    }
    /* a split plan on a workspace that was never zeroed: reported, no fault */
    {
        fg_attention_desc ds = d;
        int32_t lens[2] = {90, 90}, table[14];
        for (int j = 0; j < 14; ++j) table[j] = j;
        up(tabs, lens, sizeof lens);
        up(tabs + 64, table, sizeof table);
        ds.num_splits = 2;
        ds.block_m = 64; /* 32-key tiles: 90 keys make 3, so 2 splits */
        ds.block_n = 32;
        ds.warps = 4;
        ds.path = FG_PATH_MMA;
        fg_attention_plan *plan = NULL;
        fg_status st = fg_attention_plan_create(ctx, &ds, &plan);
        CHECK(st == FG_OK && fg_attention_plan_splits(plan) == 2, "split plan: %s", fg_errmsg(ctx));
        const size_t wsb = fg_attention_plan_workspace(plan);
        CUdeviceptr ws = dalloc(wsb);
        cu->MemsetD32(ws, 0x01010101u, wsb / 4);
        if (st == FG_OK)
            st = fg_attention_run(plan, (void *)(uintptr_t)q, (void *)(uintptr_t)kv, (void *)(uintptr_t)kv, (void *)(uintptr_t)o,
                                  NULL, (void *)(uintptr_t)ws, wsb, NULL);
        CHECK(st == FG_OK && cu->CtxSynchronize() == CUDA_SUCCESS, "dirty workspace run: %s", fg_errmsg(ctx));
        char msg[256] = "";
        st = fg_attention_table_error(ctx, msg, sizeof msg, NULL);
        CHECK(st == FG_ERR_BAD_LAYOUT && strstr(msg, "workspace was not zero"), "dirty workspace: got '%s'", msg);
        printf("ok   bad table: %-28s -> %s\n", "workspace never zeroed", msg);
        fg_attention_plan_destroy(plan);
        cu->MemFree(ws);
    }
    /* varlen: decreasing cu_seqlens_q */
    fg_attention_desc dv;
    fg_attention_desc_init(&dv, FG_BF16, D, B, H, H, 4, 4);
    int32_t cuq[3] = {0, 3, 1};
    up(tabs, cuq, sizeof cuq);
    dv.cu_seqlens_q = (const int32_t *)(uintptr_t)tabs;
    dv.total_q = 4;
    fg_status st = fg_attention_forward(ctx, &dv, (void *)(uintptr_t)q, (void *)(uintptr_t)kv, (void *)(uintptr_t)kv,
                                        (void *)(uintptr_t)o, NULL, NULL);
    CHECK(st == FG_OK && cu->CtxSynchronize() == CUDA_SUCCESS, "varlen bad cu_seqlens_q: %s", fg_errmsg(ctx));
    char msg[256] = "";
    st = fg_attention_table_error(ctx, msg, sizeof msg, NULL);
    CHECK(st == FG_ERR_BAD_LAYOUT && strstr(msg, "cu_seqlens_q[1..2]"), "decreasing cu_seqlens_q: got '%s'", msg);
    printf("ok   bad table: %-28s -> %s\n", "decreasing cu_seqlens_q", msg);
    cu->MemFree(q); cu->MemFree(o); cu->MemFree(kv); cu->MemFree(tabs);
}

/* Host time of one fg_attention_run with a ready plan (issue 12 asks for
 * < 5 us): a paged GQA decode step, split (two launches) and unsplit.
 * Rounds of 16 calls after a synchronisation (an empty queue: the host
 * never waits for the GPU) and of 200 (what sessions 3-12 reported, where
 * a full launch queue could make the GPU's time per kernel the host's),
 * best of 5 rounds each, with the GPU's time per call over the 200 (CUDA
 * events) beside them to tell the two apart. */
#include <time.h>
static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

typedef int (*call_fn)(void *arg); /* one call; 0 on success */

/* Best host microseconds per call over 5 rounds (after a warm-up round) of
 * n calls each, each round started on an idle GPU; *gpu_us: the GPU's time
 * per call over the last round (events around it). */
static double time_calls(call_fn f, void *arg, int n, double *gpu_us) {
    double best = 1e30;
    CUevent e0 = NULL, e1 = NULL;
    cu->EventCreate(&e0, CU_EVENT_DEFAULT);
    cu->EventCreate(&e1, CU_EVENT_DEFAULT);
    for (int rep = 0; rep < 6; ++rep) {
        cu->CtxSynchronize();
        if (rep == 5) cu->EventRecord(e0, NULL);
        const double t0 = now_us();
        int failed = 0;
        for (int i = 0; i < n && !failed; ++i) failed = f(arg);
        if (failed) { best = -1; break; }
        const double per = (now_us() - t0) / n;
        if (rep == 5) cu->EventRecord(e1, NULL);
        if (rep && per < best) best = per; /* the first round warms the caches */
    }
    cu->CtxSynchronize();
    float ms = 0;
    if (best >= 0) cu->EventElapsedTime(&ms, e0, e1);
    *gpu_us = 1e3 * ms / n;
    cu->EventDestroy(e0);
    cu->EventDestroy(e1);
    return best;
}

/* The floor under fg_attention_run: cuLaunchKernel of an empty kernel
 * whose parameters are 16 bytes, and of one whose parameter block is as
 * large as fg_fwd_params (what every flashgen forward launch copies), timed
 * like the calls above. */
typedef struct launch_arg { CUfunction f; void **args; } launch_arg;
static int launch_one(void *a) {
    const launch_arg *l = a;
    return cu->LaunchKernel(l->f, 1, 1, 1, 32, 1, 1, 0, NULL, l->args, NULL) != CUDA_SUCCESS;
}

static void launch_floor(void) {
    char ptx[512];
    snprintf(ptx, sizeof ptx,
             ".version 7.0\n.target sm_80\n.address_size 64\n"
             ".visible .entry fg_empty_small(.param .u64 a, .param .u64 b) { ret; }\n"
             ".visible .entry fg_empty_big(.param .align 8 .b8 p[%d]) { ret; }\n",
             (int)sizeof(fg_fwd_params));
    CUmodule m = NULL;
    CUfunction small = NULL, big = NULL;
    if (cu->ModuleLoadData(&m, ptx) != CUDA_SUCCESS || cu->ModuleGetFunction(&small, m, "fg_empty_small") != CUDA_SUCCESS ||
        cu->ModuleGetFunction(&big, m, "fg_empty_big") != CUDA_SUCCESS) {
        CHECK(0, "launch floor: the empty kernels' PTX did not load");
        return;
    }
    unsigned long long a = 0, b = 0;
    static fg_fwd_params p; /* zeros: the kernel reads nothing */
    void *sa[] = {&a, &b}, *ba[] = {&p};
    launch_arg ls = {small, sa}, lb = {big, ba};
    for (int n = 16; n <= 200; n += 184) {
        double gs, gb;
        const double ts = time_calls(launch_one, &ls, n, &gs), tb = time_calls(launch_one, &lb, n, &gb);
        printf("host   cuLaunchKernel of an empty kernel, rounds of %3d: %.2f us with 16 bytes of parameters, %.2f us with %d "
               "(sizeof fg_fwd_params); GPU %.2f / %.2f us a launch\n", n, ts, tb, (int)sizeof(fg_fwd_params), gs, gb);
    }
    cu->ModuleUnload(m);
}

typedef struct run_arg { fg_attention_plan *plan; CUdeviceptr q, kv, o, ws; size_t wsb; } run_arg;
static int run_one(void *a) {
    const run_arg *r = a;
    return fg_attention_run(r->plan, (void *)(uintptr_t)r->q, (void *)(uintptr_t)r->kv, (void *)(uintptr_t)r->kv,
                            (void *)(uintptr_t)r->o, NULL, (void *)(uintptr_t)r->ws, r->wsb, NULL) != FG_OK;
}

static void host_cost(fg_context *ctx) {
    const int B = 8, Hq = 32, Hk = 8, D = 128, page = 64, maxpages = 4, cap = page * maxpages;
    CUdeviceptr q = dalloc(2 * (size_t)B * Hq * D), o = dalloc(2 * (size_t)B * Hq * D);
    CUdeviceptr kv = dalloc(2 * (size_t)B * cap * Hk * D), tabs = dalloc(4096), ws = dalloc(1 << 22);
    cu->MemsetD32(ws, 0, (1 << 22) / 4);
    int32_t lens[8], table[32];
    for (int i = 0; i < B; ++i) lens[i] = cap - i;
    for (int i = 0; i < B * maxpages; ++i) table[i] = i;
    up(tabs, lens, sizeof lens);
    up(tabs + 64, table, sizeof table);
    cu->MemsetD32(q, 0, B * Hq * D / 2);
    cu->MemsetD32(kv, 0, B * cap * Hk * D / 2);
    for (int split = 0; split < 2; ++split) {
        fg_attention_desc d;
        fg_attention_desc_init(&d, FG_BF16, D, B, Hq, Hk, 1, cap);
        set_pages(&d, tabs, page, B * maxpages, maxpages, Hk, D);
        d.num_splits = split ? 4 : 1;
        fg_attention_plan *plan = NULL;
        if (fg_attention_plan_create(ctx, &d, &plan) != FG_OK) { CHECK(0, "host cost plan: %s", fg_errmsg(ctx)); continue; }
        run_arg ra = {plan, q, kv, o, ws, fg_attention_plan_workspace(plan)};
        for (int n = 16; n <= 200; n += 184) {
            double gpu = 0;
            const double best = time_calls(run_one, &ra, n, &gpu);
            CHECK(best >= 0, "host cost run: %s", fg_errmsg(ctx));
            printf("host   fg_attention_run, paged GQA decode, %d split(s), %s, rounds of %3d: %.2f us per call (best of 5); "
                   "GPU %.2f us a call\n",
                   fg_attention_plan_splits(plan), split ? "one kernel, the last split merges" : "one kernel", n, best, gpu);
        }
        /* where it goes: the tensor checks (one cuMemGetAddressRange each) */
        fg_error e = {0};
        double tc = now_us();
        for (int i = 0; i < 200; ++i)
            fg_check_call_tensors(cu, &d, (void *)(uintptr_t)q, (void *)(uintptr_t)kv, (void *)(uintptr_t)kv, (void *)(uintptr_t)o,
                                  NULL, &e);
        tc = (now_us() - tc) / 200;
        double td = now_us();
        for (int i = 0; i < 200; ++i) fg_ctx_device(ctx, &e);
        td = (now_us() - td) / 200;
        printf("host     of which: tensor checks %.2f us, binding the context %.2f us\n", tc, td);
        fg_attention_plan_destroy(plan);
    }
    launch_floor();
    cu->MemFree(q); cu->MemFree(o); cu->MemFree(kv); cu->MemFree(tabs); cu->MemFree(ws);
}

/* Decode bandwidth (not a test: "bench" prints it): GB/s of K+V read per
 * decode step, 32 query heads / 8 KV heads, head dim 128, bf16, contiguous
 * and paged (64), planned with automatic splits.  bench/decode.py runs the
 * full grid against the peers.  "bench-configs": explicit block_m, warps,
 * block_n, stages instead of the heuristic's; "bench-page16": pages of 16
 * at b=16, kv 32k, the heuristic's one-page tiles against tiles spanning
 * pages (FG_BENCH_PROFILE=1: one warm-up and one timed launch each, for
 * ncu). */
static void decode_bench(fg_context *ctx, int configs, int page) {
    static const int batches[] = {1, 16, 64}, lens[] = {4096, 32768};
    /* {block_m, warps, block_n, stages}: the choice (decode_config), the 64-row tiles of four warps it replaced
     * for groups up to 32 (session 11), the one- and two-warp tiles, a wide one */
    static const int cfgs[][4] = {{0, 0, 0, 0}, {64, 4, 64, 2}, {16, 1, 64, 2}, {16, 1, 32, 3}, {32, 2, 64, 2}, {128, 8, 64, 2}};
    static const int cfgs16[][4] = {{0, 0, 0, 0}, {64, 4, 64, 2}, {64, 4, 128, 2}, {64, 4, 32, 3}};
    const int Hq = 32, Hk = 8, D = 128, p16 = page == 16;
    const int ncfg = p16 ? 4 : configs ? 6 : 1, profile = getenv("FG_BENCH_PROFILE") != NULL;
    for (int ci = 0; ci < ncfg; ++ci)
    for (int bi = p16 ? 1 : 0; bi < (p16 ? 2 : 3); ++bi)
        for (int li = configs || p16 ? 1 : 0; li < 2; ++li)
            for (int paged = 0; paged < (configs ? 2 : 3); ++paged) { /* contiguous, scattered pages, pages in order */
                const int *cf = p16 ? cfgs16[ci] : cfgs[ci];
                if (p16 && paged == 0 && ci) continue; /* contiguous: the heuristic's only */
                const int B = batches[bi], L = lens[li], maxpages = L / page;
                const size_t kvb = 2 * (size_t)B * L * Hk * D;
                CUdeviceptr q = dalloc(2 * (size_t)B * Hq * D), o = dalloc(2 * (size_t)B * Hq * D), k = dalloc(kvb), v = dalloc(kvb);
                CUdeviceptr tabs = dalloc(4 * (size_t)B * (maxpages + 1) + 1024), ws = dalloc(1 << 26);
                cu->MemsetD32(ws, 0, (1 << 26) / 4);
                cu->MemsetD32(q, 0x3c003c00u, B * Hq * D / 2);
                cu->MemsetD32(k, 0x3c003c00u, kvb / 4);
                cu->MemsetD32(v, 0x3c003c00u, kvb / 4);
                int32_t *tab = malloc(4 * (size_t)B * (maxpages + 1));
                for (int i = 0; i < B; ++i) tab[i] = L;
                up(tabs, tab, 4 * (size_t)B);
                for (int i = 0; i < B * maxpages; ++i) tab[i] = paged == 2 ? i : (i * 7919) % (B * maxpages); /* scattered pages */
                up(tabs + 1024, tab, 4 * (size_t)B * maxpages);
                free(tab);
                fg_attention_desc d;
                fg_attention_desc_init(&d, FG_BF16, D, B, Hq, Hk, 1, L);
                d.seqlens_k = (const int32_t *)(uintptr_t)tabs;
                if (paged) {
                    d.k_strides[0] = d.v_strides[0] = (int64_t)page * Hk * D;
                    d.block_table = (const int32_t *)(uintptr_t)(tabs + 1024);
                    d.page_size = page;
                    d.num_pages = B * maxpages;
                    d.max_pages = maxpages;
                }
                if (cf[0]) {
                    d.block_m = cf[0];
                    d.warps = cf[1];
                    d.block_n = cf[2];
                    d.stages = cf[3];
                    d.path = FG_PATH_MMA;
                }
                fg_attention_plan *plan = NULL;
                fg_status st = fg_attention_plan_create(ctx, &d, &plan);
                if (st == FG_OK && fg_attention_plan_workspace(plan) > (1u << 26)) st = FG_ERR_OUT_OF_MEMORY;
                float ms = 0;
                if (st == FG_OK) {
                    CUevent e0, e1;
                    cu->EventCreate(&e0, 0);
                    cu->EventCreate(&e1, 0);
                    for (int rep = 0; rep < 2 && st == FG_OK; ++rep) {
                        cu->EventRecord(e0, NULL);
                        for (int i = 0; i < (profile ? 1 : rep ? 20 : 3) && st == FG_OK; ++i)
                            st = fg_attention_run(plan, (void *)(uintptr_t)q, (void *)(uintptr_t)k, (void *)(uintptr_t)v,
                                                  (void *)(uintptr_t)o, NULL, (void *)(uintptr_t)ws, 1u << 26, NULL);
                        cu->EventRecord(e1, NULL);
                        cu->EventSynchronize(e1);
                        cu->EventElapsedTime(&ms, e0, e1);
                    }
                    cu->EventDestroy(e0);
                    cu->EventDestroy(e1);
                    ms /= profile ? 1 : 20;
                }
                char label[32] = "heuristic";
                if (ci) snprintf(label, sizeof label, "%dx%d/%dw/%dst", cf[0], cf[2], cf[1], cf[3]);
                char kind[32] = "contiguous";
                if (paged) snprintf(kind, sizeof kind, "paged %d %s", page, paged == 2 ? "in order" : "scattered");
                printf("bench decode %-10s b=%-3d kv=%-6d %-18s splits=%-3d %8.1f us %7.0f GB/s%s%s\n", label, B, L, kind,
                       plan ? fg_attention_plan_splits(plan) : 0, ms * 1e3, st == FG_OK ? 2.0 * kvb / (ms * 1e-3) / 1e9 : 0.0,
                       st == FG_OK ? "" : " ", st == FG_OK ? "" : fg_errmsg(ctx));
                fg_attention_plan_destroy(plan);
                cu->MemFree(q); cu->MemFree(o); cu->MemFree(k); cu->MemFree(v); cu->MemFree(tabs); cu->MemFree(ws);
            }
}

int main(int argc, char **argv) {
    fg_context *ctx = gpu_context(&cu);
    /* argument: "tables", "host", "bench", a case-name substring, or "san" (every case
     * and the tables, not the host timing: tools/sanitize.sh) */
    const char *only = argc > 1 ? argv[1] : NULL;
    const int san = only && !strcmp(only, "san");
    if (san) only = NULL;
    static const icase cases[] = {
        /* name                          dt     d   dv  b  hq hkv sq cap page vk sl causal split lens_q lens_k seed block_n mods warps */
        {"decode gqa contiguous",       FG_BF16, 128, 0, 3, 8, 2, 1, 700, 0, 0, 1, FG_CAUSAL_NONE, 0, {0}, {700, 1, 333}, 1, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode gqa split 7",          FG_BF16, 128, 0, 3, 8, 2, 1, 700, 0, 0, 1, FG_CAUSAL_NONE, 7, {0}, {700, 0, 333}, 2, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode gqa no split",         FG_FP16, 128, 0, 3, 8, 2, 1, 700, 0, 0, 1, FG_CAUSAL_NONE, 1, {0}, {700, 65, 333}, 3, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode mha fp16 hd64",        FG_FP16, 64, 0, 2, 4, 4, 1, 2000, 0, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {1999, 17}, 4, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode mqa hd256",            FG_BF16, 256, 0, 2, 8, 1, 1, 530, 0, 0, 1, FG_CAUSAL_NONE, 0, {0}, {530, 129}, 5, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode paged 16",             FG_BF16, 128, 0, 3, 8, 2, 1, 500, 16, 0, 1, FG_CAUSAL_NONE, 0, {0}, {500, 37, 16}, 6, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode paged 64 shared page", FG_BF16, 128, 0, 2, 8, 2, 1, 640, 64, 0, 1, FG_CAUSAL_NONE, 0, {0}, {640, 200}, 7, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode paged 64 split 7",     FG_FP16, 128, 0, 2, 8, 2, 1, 640, 64, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 7, {0}, {600, 65}, 8, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"spec decode sq4 causal",      FG_BF16, 128, 0, 3, 8, 2, 4, 300, 0, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {300, 4, 77}, 9, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"spec decode sq4 paged",       FG_BF16, 128, 0, 2, 8, 2, 4, 256, 32, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {256, 9}, 10, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"decode dv 192/128",           FG_BF16, 192, 128, 2, 16, 2, 1, 400, 0, 0, 1, FG_CAUSAL_NONE, 0, {0}, {400, 3}, 11, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        /* 17-32 packed rows: the two-warp decode tiles (runtime/choose.c decode_config), rows split over both
         * warps, explicit (the choice takes them only when the call needs no split) */
        {"decode 2 warps gqa6 sq3 causal", FG_BF16, 128, 0, 2, 12, 2, 3, 600, 0, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {600, 5}, 37, 0, {0.f, 0, 0, 0, 0, 0}, 2},
        {"decode 2 warps mqa32 split 7", FG_FP16, 128, 0, 2, 32, 1, 1, 700, 0, 0, 1, FG_CAUSAL_NONE, 7, {0}, {700, 65}, 38, 0, {0.f, 0, 0, 0, 0, 0}, 2},
        {"decode 2 warps gqa8 sq4 paged 16 sinks", FG_BF16, 128, 0, 2, 16, 2, 4, 512, 16, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {512, 33}, 39, 0, {0.f, 0, 0, 0, 0, 1}, 2},
        {"decode 1 warp gqa4 paged 32", FG_BF16, 128, 0, 3, 8, 2, 1, 300, 32, 0, 1, FG_CAUSAL_NONE, 0, {0}, {300, 1, 97}, 60, 0, {0.f, 0, 0, 0, 0, 0}, 1},
        /* 8 x 56 (sequence, KV head) tiles fill four one-warp CTAs on each of up to 140 SMs (H100/H200: 132):
         * the choice takes one-warp 16-row tiles on a paged cache, unsplit */
        {"decode auto 1 warp b8 kv56 paged 64", FG_FP16, 128, 0, 8, 224, 56, 1, 200, 64, 0, 1, FG_CAUSAL_NONE, 0, {0}, {200, 1, 0, 64, 65, 130, 199, 7}, 61, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"varlen prefill",              FG_BF16, 128, 0, 4, 4, 4, 0, 0, 0, 1, 0, FG_CAUSAL_NONE, 0, {37, 0, 1, 200}, {50, 3, 1, 200}, 12, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"varlen causal bottom-right",  FG_BF16, 64, 0, 4, 8, 2, 0, 0, 0, 1, 0, FG_CAUSAL_BOTTOM_RIGHT, 0, {37, 129, 1, 64}, {50, 100, 1, 64}, 13, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"varlen causal top-left",      FG_FP16, 96, 0, 3, 6, 3, 0, 0, 0, 1, 0, FG_CAUSAL_TOP_LEFT, 0, {70, 5, 130}, {33, 5, 260}, 14, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"varlen dv 128/64 split",      FG_BF16, 128, 64, 3, 4, 2, 0, 0, 0, 1, 0, FG_CAUSAL_NONE, 3, {10, 1, 65}, {300, 700, 65}, 15, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"varlen q, cache k",           FG_BF16, 128, 0, 3, 8, 2, 0, 400, 0, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {3, 1, 20}, {400, 1, 100}, 16, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"plain dense auto split",      FG_BF16, 128, 0, 1, 2, 2, 3, 3000, 0, 0, 0, FG_CAUSAL_NONE, 0, {0}, {3000}, 17, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        /* key tiles spanning several pages (load_tile_spanning: load_tile_pages for these page sizes and warps) */
        {"span paged 16 x64",           FG_BF16, 128, 0, 3, 8, 2, 1, 500, 16, 0, 1, FG_CAUSAL_NONE, 0, {0}, {500, 37, 16}, 18, 64, {0.f, 0, 0, 0, 0, 0}, 0},
        {"span paged 16 x128 split 5",  FG_FP16, 128, 0, 3, 8, 2, 1, 512, 16, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 5, {0}, {499, 1, 130}, 19, 128, {0.f, 0, 0, 0, 0, 0}, 0},
        {"span paged 32 x64 sq4",       FG_BF16, 128, 0, 2, 8, 2, 4, 256, 32, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {256, 9}, 20, 64, {0.f, 0, 0, 0, 0, 0}, 0},
        {"span paged 16 x128 hd64",     FG_BF16, 64, 0, 2, 4, 4, 1, 300, 16, 0, 1, FG_CAUSAL_NONE, 0, {0}, {300, 45}, 21, 128, {0.f, 0, 0, 0, 0, 0}, 0},
        {"span paged 16 hd64 auto",     FG_FP16, 64, 0, 3, 8, 2, 1, 700, 16, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {700, 129, 1}, 23, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"span paged 64 hd64 split 4",  FG_BF16, 64, 0, 2, 8, 2, 1, 640, 64, 0, 1, FG_CAUSAL_NONE, 4, {0}, {640, 63}, 24, 0, {0.f, 0, 0, 0, 0, 0}, 0},
        {"span paged 16 x64 hd256",     FG_BF16, 256, 0, 2, 8, 1, 1, 200, 16, 0, 1, FG_CAUSAL_NONE, 0, {0}, {200, 17}, 22, 64, {0.f, 0, 0, 0, 0, 0}, 0},
        /* score modifications (issue 13): each against dense references of its sequences alone; m = {softcap,
           alibi (1 [h], 2 [b, h]), window on, left, right, sinks} */
        {"mods softcap decode gqa4",    FG_BF16, 128, 0, 4, 16, 4, 1, 900, 0, 0, 1, FG_CAUSAL_NONE, 0, {0}, {900, 1, 0, 333}, 30, 0, {30.f, 0, 0, 0, 0, 0}, 0},
        {"mods softcap paged 16 split 7", FG_FP16, 128, 0, 3, 16, 4, 1, 700, 16, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 7, {0}, {700, 17, 0}, 31, 0, {5.f, 0, 0, 0, 0, 0}, 0},
        {"mods alibi [h] decode gqa",   FG_BF16, 128, 0, 3, 8, 2, 1, 600, 0, 0, 1, FG_CAUSAL_NONE, 0, {0}, {600, 5, 333}, 32, 0, {0.f, 1, 0, 0, 0, 0}, 0},
        {"mods alibi [b,h] paged 64",   FG_BF16, 64, 0, 3, 8, 2, 1, 640, 64, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {640, 65, 1}, 33, 0, {0.f, 2, 0, 0, 0, 0}, 0},
        {"mods window 64/0 split 7",    FG_BF16, 128, 0, 3, 8, 2, 1, 3000, 0, 0, 1, FG_CAUSAL_NONE, 7, {0}, {3000, 1500, 70}, 34, 0, {0.f, 0, 1, 64, 0, 0}, 0},
        {"mods window 64/0 auto",       FG_BF16, 128, 0, 3, 8, 2, 1, 3000, 0, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {3000, 1500, 70}, 35, 0, {0.f, 0, 1, 64, 0, 0}, 0},
        {"mods window 64/0 paged 16 split 7", FG_FP16, 128, 0, 2, 8, 2, 1, 2048, 16, 0, 1, FG_CAUSAL_NONE, 7, {0}, {2048, 63}, 36, 0, {0.f, 0, 1, 64, 0, 0}, 0},
        {"mods window both sq4 paged 64 split 7", FG_BF16, 128, 0, 2, 8, 2, 4, 2000, 64, 0, 1, FG_CAUSAL_NONE, 7, {0}, {2000, 90}, 37, 0, {0.f, 0, 1, 100, 2, 0}, 0},
        {"mods window both top-left sq4 auto", FG_BF16, 128, 0, 2, 8, 2, 4, 2000, 0, 0, 1, FG_CAUSAL_TOP_LEFT, 0, {0}, {2000, 3}, 38, 0, {0.f, 0, 1, 50, 20, 0}, 0},
        {"mods sinks decode no split",  FG_BF16, 128, 0, 3, 8, 2, 1, 700, 0, 0, 1, FG_CAUSAL_NONE, 1, {0}, {700, 0, 333}, 39, 0, {0.f, 0, 0, 0, 0, 1}, 0},
        {"mods sinks paged 16 split 7", FG_BF16, 128, 0, 3, 8, 2, 1, 700, 16, 0, 1, FG_CAUSAL_NONE, 7, {0}, {700, 0, 40}, 40, 0, {0.f, 0, 0, 0, 0, 1}, 0},
        {"mods sinks+window paged 64 auto", FG_BF16, 64, 0, 3, 16, 2, 1, 2000, 64, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 0, {0}, {2000, 130, 0}, 41, 0, {0.f, 0, 1, 128, 0, 1}, 0},
        {"mods sinks+window split 7",   FG_BF16, 64, 0, 3, 16, 2, 1, 2000, 0, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 7, {0}, {2000, 130, 0}, 42, 0, {0.f, 0, 1, 128, 0, 1}, 0},
        {"mods sinks+window no split",  FG_FP16, 64, 0, 3, 16, 2, 1, 2000, 16, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 1, {0}, {2000, 130, 0}, 43, 0, {0.f, 0, 1, 128, 0, 1}, 0},
        {"mods varlen causal window alibi", FG_BF16, 128, 0, 5, 4, 2, 0, 0, 0, 1, 0, FG_CAUSAL_BOTTOM_RIGHT, 0, {37, 129, 1, 0, 1}, {50, 200, 1, 0, 0}, 44, 0, {0.f, 1, 1, 32, 0, 0}, 0},
        {"mods varlen top-left packed all", FG_FP16, 64, 0, 4, 4, 2, 0, 0, 0, 1, 0, FG_CAUSAL_TOP_LEFT, 0, {5, 1, 0, 20}, {40, 0, 3, 100}, 45, 0, {20.f, 2, 1, 8, 3, 1}, 0},
        {"mods varlen split 3 all",     FG_BF16, 128, 0, 3, 4, 2, 0, 0, 0, 1, 0, FG_CAUSAL_NONE, 3, {10, 1, 65}, {300, 700, 65}, 46, 0, {30.f, 1, 1, 40, 40, 1}, 0},
        {"mods all span 16 x64 sq4 split 5", FG_BF16, 128, 0, 2, 8, 2, 4, 512, 16, 0, 1, FG_CAUSAL_BOTTOM_RIGHT, 5, {0}, {499, 9}, 47, 64, {30.f, 2, 1, 100, 0, 1}, 0},
        {"mods all hd256 mqa split 7",  FG_BF16, 256, 0, 2, 8, 1, 1, 1000, 0, 0, 1, FG_CAUSAL_NONE, 7, {0}, {1000, 129}, 48, 0, {50.f, 1, 1, 300, 0, 1}, 0},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        if (only && (!strcmp(only, "tables") || !strcmp(only, "host") || !strncmp(only, "bench", 5))) break;
        if (only && !strstr(cases[i].name, only)) continue;
        run_case(ctx, &cases[i]);
        ++n;
    }
    if (!only || !strcmp(only, "tables")) bad_tables(ctx);
    if ((!only && !san) || (only && !strcmp(only, "host"))) host_cost(ctx);
    if (only && !strcmp(only, "bench")) decode_bench(ctx, 0, 64);
    if (only && !strcmp(only, "bench-configs")) decode_bench(ctx, 1, 64);
    if (only && !strcmp(only, "bench-page16")) decode_bench(ctx, 0, 16);
    printf("%d cases\n", n);
    fg_context_destroy(ctx);
    return test_summary("test_gpu_infer");
}
