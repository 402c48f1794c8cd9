/* GPU correctness matrix: every head dim x dtype x causal mode x sparse
 * on/off against the float64 CPU reference, with fresh random inputs and
 * NaN-poisoned outputs (harness.c), on odd sizes: seqlens that are not
 * multiples of the tiles, seqlen_q != seqlen_k (both ways), seqlen 1, GQA
 * and MQA, batch > 1, BSHD, BHSD and padded strides; lse checked too.
 * Block-sparse: random layouts, empty rows (no block) and all-full ones.
 * A value head dim of its own (head_dim_v != head_dim, both directions) on
 * the automatic path (TMA on Hopper where both are multiples of 16) and
 * mma.sync.
 * Exit 77 (skipped) without a GPU. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cuda_api.h"
#include "test_gpu_util.h"
#include "test_util.h"
#include "tools/harness.h"

typedef struct shape { int b, hq, hkv, sq, sk; } shape;

static int run_case(fg_context *ctx, fg_case *c, int *passed, int *failed) {
    fg_case_result r;
    char desc[256];
    fg_case_describe(c, desc, sizeof desc);
    int bad = fg_harness_run(ctx, c, 0, &r);
    printf("%-4s %-95s o_err=%.2e rel=%.2e lse_err=%.2e%s%s\n", bad ? "FAIL" : "ok", desc, r.o.max_abs, r.o.rel_l2,
           r.lse.max_abs, bad ? "  " : "", bad ? r.msg : "");
    fflush(stdout);
    if (bad) ++*failed; else ++*passed;
    CHECK(!bad, "%s: %s", desc, r.msg);
    return bad;
}

/* A sparse call captured in a CUDA graph (global mode, a non-blocking
 * stream) as the layout's first: the tile list (runtime/sparse_sched.c) is
 * built inside the capture without breaking it (relaxed mode, a private
 * stream), and the captured launch follows it.  The graph's replay and an
 * uncaptured call (the list reused, not rebuilt) must agree bit for bit,
 * with no NaN left of the poison; on Hopper the context's counters must
 * show one list built and two launches on it. */
static void sparse_capture_case(fg_context *ctx, uint64_t seed) {
    const fg_cuda *cu = NULL;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) { CHECK(0, "no driver: %s", e.msg); return; }
    gpu_graph_api g;
    const char *missing = gpu_graph_api_load(cu, &g);
    if (missing) { CHECK(0, "the driver lacks %s", missing); return; }
    /* 3 x 8 heads x 9 query tiles of 128 = 216 tiles: several a CTA */
    const int B = 3, HQ = 8, HK = 2, SQ = 1100, SK = 900, D = 128, BQ = 128, NQ = (SQ + BQ - 1) / BQ, NK = (SK + BQ - 1) / BQ;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, D, B, HQ, HK, SQ, SK);
    /* a random layout per (batch, head): rows of different cost, some empty */
    const int rows = B * HQ * NQ;
    int32_t *num = calloc((size_t)rows, 4), *idx = calloc((size_t)rows * NK, 4);
    uint64_t r = seed;
    for (int i = 0; i < rows; ++i) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        const int keep = (int)((r >> 33) % (NK + 1));
        for (int j = 0; j < NK; ++j)
            if (num[i] < keep && ((r >> (j % 30)) & 1 || NK - j <= keep - num[i])) idx[(size_t)i * NK + num[i]++] = j;
    }
    fg_block_layout_desc ld = {B, HQ, NQ, NK, BQ, BQ, num, idx, NULL, NULL};
    fg_block_layout *L = NULL;
    CHECK(fg_block_layout_create(ctx, &ld, &L) == FG_OK, "layout: %s", fg_errmsg(ctx));
    d.layout = L;
    const size_t nq = (size_t)B * SQ * HQ * D, nk = (size_t)B * SK * HK * D;
    uint16_t *h = malloc(2 * (nq + 2 * nk));
    for (size_t i = 0; i < nq + 2 * nk; ++i) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        h[i] = (uint16_t)(0x3c00 | ((r >> 40) & 0x3ff) | ((r >> 20) & 0x8000)); /* bf16 in +-[1, 2) scaled below */
        h[i] = (uint16_t)((h[i] & 0x807f) | 0x3e00); /* +-[0.125, 0.25) */
    }
    CUdeviceptr q = 0, k = 0, v = 0, o1 = 0, o2 = 0;
    CUstream s = NULL;
    CUgraph graph = NULL;
    CUgraphExec exec = NULL;
    uint16_t *a = malloc(2 * nq), *b = malloc(2 * nq);
    int ok = L && h && a && b && !cu->MemAlloc(&q, 2 * nq) && !cu->MemAlloc(&k, 2 * nk) && !cu->MemAlloc(&v, 2 * nk) &&
             !cu->MemAlloc(&o1, 2 * nq) && !cu->MemAlloc(&o2, 2 * nq) && !cu->MemcpyHtoD(q, h, 2 * nq) &&
             !cu->MemcpyHtoD(k, h + nq, 2 * nk) && !cu->MemcpyHtoD(v, h + nq + nk, 2 * nk) && !cu->MemsetD32(o1, 0x7fc07fc0u, nq / 2) &&
             !cu->MemsetD32(o2, 0x7fc07fc0u, nq / 2) && !g.StreamCreate(&s, 1 /* non-blocking */);
    CHECK(ok, "sparse capture: setup");
    fg_context_stats st0 = {.struct_size = sizeof st0}, st1 = {.struct_size = sizeof st1};
    fg_context_get_stats(ctx, &st0);
    if (ok) {
        const void *qp = (const void *)(uintptr_t)q, *kp = (const void *)(uintptr_t)k, *vp = (const void *)(uintptr_t)v;
        /* compile outside the capture (fg_attention_prepare would also build the list: not called) */
        char name[512];
        ok = fg_attention_kernel_name(ctx, &d, name, sizeof name) == FG_OK;
        CHECK(ok, "kernel: %s", fg_errmsg(ctx));
        ok = ok && !g.BeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
        const fg_status st = ok ? fg_attention_forward(ctx, &d, qp, kp, vp, (void *)(uintptr_t)o1, NULL, s) : FG_ERR_CUDA;
        ok = ok && !g.EndCapture(s, &graph) && st == FG_OK && !g.Instantiate(&exec, graph, 0) && !g.Launch(exec, s) &&
             !cu->StreamSynchronize(s);
        CHECK(ok, "sparse capture: capture and replay (%s): %s", name, fg_errmsg(ctx));
        ok = ok && fg_attention_forward(ctx, &d, qp, kp, vp, (void *)(uintptr_t)o2, NULL, s) == FG_OK && !cu->StreamSynchronize(s) &&
             !cu->MemcpyDtoH(a, o1, 2 * nq) && !cu->MemcpyDtoH(b, o2, 2 * nq);
        CHECK(ok, "sparse capture: uncaptured call: %s", fg_errmsg(ctx));
        size_t diff = 0, nan = 0;
        for (size_t i = 0; ok && i < nq; ++i) {
            diff += a[i] != b[i];
            nan += (b[i] & 0x7f80) == 0x7f80 && (b[i] & 0x7f);
        }
        CHECK(ok && !diff && !nan, "sparse capture (%s): %zu of %zu outputs differ between the graph and the uncaptured call, %zu NaN",
              name, diff, nq, nan);
        fg_context_get_stats(ctx, &st1);
        if (!strncmp(name, "fwd_ws:", 7))
            CHECK(st1.sparse_lists_built - st0.sparse_lists_built == 1 && st1.sparse_list_launches - st0.sparse_list_launches == 2,
                  "sparse capture: %ld lists built, %ld launches on one (want 1 and 2)", st1.sparse_lists_built - st0.sparse_lists_built,
                  st1.sparse_list_launches - st0.sparse_list_launches);
        /* the graph again, the list now built: unchanged */
        ok = ok && !cu->MemsetD32(o1, 0x7fc07fc0u, nq / 2) && !g.Launch(exec, s) && !cu->StreamSynchronize(s) && !cu->MemcpyDtoH(a, o1, 2 * nq);
        CHECK(ok && !memcmp(a, b, 2 * nq), "sparse capture: the graph replayed a second time differs");
        printf("%-4s sparse call captured in a graph as the layout's first, and uncaptured: equal\n", ok ? "ok" : "FAIL");
    }
    if (exec) g.ExecDestroy(exec);
    if (graph) g.Destroy(graph);
    if (s) g.StreamDestroy(s);
    CUdeviceptr all[] = {q, k, v, o1, o2};
    for (int i = 0; i < 5; ++i)
        if (all[i]) cu->MemFree(all[i]);
    fg_block_layout_destroy(ctx, L);
    free(num); free(idx); free(h); free(a); free(b);
}

/* The tile list against its absence, bit for bit: a layout broadcast over
 * batch and heads serves calls of batch 1..9; once its 8 lists are taken
 * (fg_attention_prepare of batch 1..8), a batch-9 call runs one CTA per
 * query tile (no list: fg_context_stats shows no list launch) and must
 * give exactly the output of the same call on a fresh layout (a list),
 * with no NaN left of the poison; each causal mode. */
static void sparse_no_list_case(fg_context *ctx, uint64_t seed) {
    const fg_cuda *cu = NULL;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) { CHECK(0, "no driver: %s", e.msg); return; }
    enum { BMAX = 9, HQ = 8, HK = 2, SQ = 1100, SK = 900, D = 128, BQ = 128, NQ = (SQ + BQ - 1) / BQ, NK = (SK + BQ - 1) / BQ };
    int32_t num[NQ] = {0}, idx[NQ * NK];
    uint64_t r = seed;
    for (int i = 0; i < NQ; ++i) /* rows of different cost; row 3 empty */
        for (int j = 0; j < NK; ++j) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            if (i != 3 && (int)((r >> 33) % 3) < 1 + i % 3) idx[i * NK + num[i]++] = j;
        }
    fg_block_layout_desc ld = {1, 1, NQ, NK, BQ, BQ, num, idx, NULL, NULL};
    fg_block_layout *full = NULL, *fresh = NULL;
    const size_t nq = (size_t)BMAX * SQ * HQ * D, nk = (size_t)BMAX * SK * HK * D;
    uint16_t *h = malloc(2 * (nq + 2 * nk)), *a = malloc(2 * nq), *b = malloc(2 * nq);
    CUdeviceptr q = 0, k = 0, v = 0, o = 0;
    int ok = h && a && b && fg_block_layout_create(ctx, &ld, &full) == FG_OK && fg_block_layout_create(ctx, &ld, &fresh) == FG_OK;
    for (size_t i = 0; ok && i < nq + 2 * nk; ++i) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        h[i] = (uint16_t)(0x3e00 | ((r >> 40) & 0x7f) | ((r >> 20) & 0x8000)); /* bf16 +-[0.125, 0.25) */
    }
    ok = ok && !cu->MemAlloc(&q, 2 * nq) && !cu->MemAlloc(&k, 2 * nk) && !cu->MemAlloc(&v, 2 * nk) && !cu->MemAlloc(&o, 2 * nq) &&
         !cu->MemcpyHtoD(q, h, 2 * nq) && !cu->MemcpyHtoD(k, h + nq, 2 * nk) && !cu->MemcpyHtoD(v, h + nq + nk, 2 * nk);
    CHECK(ok, "sparse without a list: setup: %s", fg_errmsg(ctx));
    fg_attention_desc d;
    for (int bt = 1; ok && bt < BMAX; ++bt) { /* the first layout's 8 lists */
        fg_attention_desc_init(&d, FG_BF16, D, bt, HQ, HK, SQ, SK);
        d.layout = full;
        ok = fg_attention_prepare(ctx, &d) == FG_OK;
        CHECK(ok, "sparse without a list: prepare batch %d: %s", bt, fg_errmsg(ctx));
    }
    for (int causal = 0; ok && causal < 3; ++causal) {
        fg_attention_desc_init(&d, FG_BF16, D, BMAX, HQ, HK, SQ, SK);
        d.causal = causal == 0 ? FG_CAUSAL_NONE : causal == 1 ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_TOP_LEFT;
        char name[512] = "";
        d.layout = fresh;
        ok = fg_attention_kernel_name(ctx, &d, name, sizeof name) == FG_OK;
        long launches[3];
        uint16_t *out[2] = {a, b};
        for (int pass = 0; ok && pass < 2; ++pass) { /* 0: the full layout (no list), 1: the fresh one */
            fg_context_stats st = {.struct_size = sizeof st};
            fg_context_get_stats(ctx, &st);
            launches[pass] = st.sparse_list_launches;
            d.layout = pass ? fresh : full;
            ok = !cu->MemsetD32(o, 0x7fc07fc0u, nq / 2) &&
                 fg_attention_forward(ctx, &d, (const void *)(uintptr_t)q, (const void *)(uintptr_t)k, (const void *)(uintptr_t)v,
                                      (void *)(uintptr_t)o, NULL, NULL) == FG_OK &&
                 !cu->CtxSynchronize() && !cu->MemcpyDtoH(out[pass], o, 2 * nq);
            CHECK(ok, "sparse without a list: causal %d pass %d: %s", causal, pass, fg_errmsg(ctx));
        }
        if (!ok) break;
        fg_context_stats st = {.struct_size = sizeof st};
        fg_context_get_stats(ctx, &st);
        launches[2] = st.sparse_list_launches;
        size_t diff = 0, nan = 0;
        for (size_t i = 0; i < nq; ++i) {
            diff += a[i] != b[i];
            nan += (a[i] & 0x7f80) == 0x7f80 && (a[i] & 0x7f);
        }
        CHECK(!diff && !nan, "sparse without a list (%s), causal %d: %zu of %zu outputs differ from the list's, %zu NaN", name,
              causal, diff, nq, nan);
        if (!strncmp(name, "fwd_ws:", 7))
            CHECK(launches[1] == launches[0] && launches[2] == launches[1] + 1,
                  "sparse without a list, causal %d: %ld list launches without, %ld with (want 0 and 1)", causal,
                  launches[1] - launches[0], launches[2] - launches[1]);
        printf("%-4s sparse call past a layout's 8 lists (one CTA per tile) against a list, causal %d: equal\n",
               !diff && !nan ? "ok" : "FAIL", causal);
    }
    CUdeviceptr all[] = {q, k, v, o};
    for (int i = 0; i < 4; ++i)
        if (all[i]) cu->MemFree(all[i]);
    fg_block_layout_destroy(ctx, full);
    fg_block_layout_destroy(ctx, fresh);
    free(h); free(a); free(b);
}

int main(int argc, char **argv) {
    gpu_or_skip();
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    fg_context *ctx;
    fg_context_create(&ctx);
    static const int dims[] = {32, 40, 64, 72, 96, 128, 160, 192, 256};
    static const shape shapes[] = {
        {2, 4, 2, 333, 517},  /* GQA 2:1, sq < sk, odd */
        {1, 3, 1, 300, 100},  /* MQA, sq > sk: bottom-right leaves early rows empty */
        {3, 2, 2, 257, 129},  /* batch 3, one past a tile */
        {1, 2, 2, 1, 200},    /* decode-like: one query */
        {2, 4, 4, 200, 1},    /* one key */
    };
    const int nshapes = sizeof shapes / sizeof shapes[0];
    int passed = 0, failed = 0, k = 0;
    uint64_t seed = (uint64_t)time(NULL);
    /* AUTO takes the TMA family on Hopper for head dims that are multiples
     * of 16, the wgmma one is there on request, and the API names which ran */
    {
        fg_attention_desc d;
        fg_attention_desc_init(&d, FG_BF16, 128, 1, 2, 2, 300, 300);
        char name[512] = "";
        fg_context_stats cs = {.struct_size = sizeof cs};
        fg_context_get_stats(ctx, &cs);
        const fg_status st = fg_attention_kernel_name(ctx, &d, name, sizeof name);
        CHECK(st == FG_OK, "fg_attention_kernel_name: %s", fg_errmsg(ctx));
        printf("hdim 128 AUTO runs %s\n", name);
        if (strstr(cs.gpu_identity, "sm_90") || strstr(name, "arch=sm_90a"))
            CHECK(!strncmp(name, "fwd_ws:", 7), "AUTO on sm_90a should run the TMA kernel, ran %s", name);
        d.path = FG_PATH_WGMMA;
        if (strstr(name, "arch=sm_90a")) {
            CHECK(fg_attention_kernel_name(ctx, &d, name, sizeof name) == FG_OK && !strncmp(name, "fwd_wgmma:", 10),
                  "FG_PATH_WGMMA ran %s", name);
        }
        CHECK(fg_attention_kernel_name(ctx, &d, NULL, 0) == FG_ERR_INVALID_ARGUMENT, "NULL buffer accepted");
    }
    printf("seed base %llu\n", (unsigned long long)seed);
    for (unsigned di = 0; di < sizeof dims / sizeof dims[0]; ++di)
      /* auto (on Hopper: TMA for multiples of 16, else mma.sync); for
       * multiples of 64 also mma.sync and the cp.async wgmma kernel */
      for (int path = 0; path < (dims[di] % 64 ? 1 : 3); ++path)
        for (int dt = 0; dt < 2; ++dt)
            for (int causal = 0; causal < 3; ++causal)
                for (int sparse = 0; sparse < 2; ++sparse, ++k) {
                    if (quick && dims[di] != 64 && dims[di] != 128) continue;
                    const shape s = shapes[k % nshapes];
                    fg_case c;
                    memset(&c, 0, sizeof c);
                    fg_attention_desc_init(&c.desc, dt ? FG_FP16 : FG_BF16, dims[di], s.b, s.hq, s.hkv, s.sq, s.sk);
                    c.desc.causal = (fg_causal)causal;
                    c.desc.path = path == 2 ? FG_PATH_WGMMA : path ? FG_PATH_MMA : FG_PATH_AUTO;
                    c.bhsd = k % 3 == 1;
                    c.row_pad = k % 3 == 2 ? 8 : 0;
                    c.seed = seed + (uint64_t)k;
                    if (sparse) {
                        c.density = (k / 2) % 4 == 0 ? 1.0 : 0.4; /* all blocks, or a random 40% */
                        c.block = (k / 2) % 3 == 0 ? 64 : 128;
                    }
                    run_case(ctx, &c, &passed, &failed);
                }
    /* head_dim_v != head_dim: DeepSeek's 192/128 and the other directions,
     * a pair of non-multiples of 16 (mma.sync only); odd lengths, GQA/MQA,
     * both causal alignments, sparse, BSHD/BHSD/padded strides */
    static const int dvs[][2] = {{192, 128}, {128, 64}, {64, 128}, {256, 128}, {40, 72}, {96, 32}};
    for (int i = 0; i < 6; ++i)
        for (int path = 0; path < 2; ++path)
            for (int causal = 0; causal < 3; ++causal)
                for (int sparse = 0; sparse < 2; ++sparse, ++k) {
                    if (quick && i) continue;
                    if (path && sparse) continue; /* mma.sync: dense, every causal mode */
                    const shape sh = shapes[k % nshapes];
                    fg_case c;
                    memset(&c, 0, sizeof c);
                    fg_attention_desc_init(&c.desc, i == 1 ? FG_FP16 : FG_BF16, dvs[i][0], sh.b, sh.hq, sh.hkv, sh.sq, sh.sk);
                    c.desc.head_dim_v = dvs[i][1]; /* the harness sets every stride */
                    c.desc.causal = (fg_causal)causal;
                    c.desc.path = path ? FG_PATH_MMA : FG_PATH_AUTO;
                    c.bhsd = k % 3 == 1;
                    c.row_pad = k % 3 == 2 ? 8 : 0;
                    c.seed = seed + (uint64_t)k;
                    if (sparse) {
                        c.density = causal == 1 ? 1.0 : 0.4;
                        c.block = 128;
                    }
                    run_case(ctx, &c, &passed, &failed);
                }
    /* layouts with empty rows: density 0 (every row empty) */
    {
        fg_case c;
        memset(&c, 0, sizeof c);
        fg_attention_desc_init(&c.desc, FG_BF16, 128, 2, 2, 1, 300, 260);
        c.density = 1e-9;
        c.block = 128;
        c.seed = seed + 1000;
        run_case(ctx, &c, &passed, &failed);
        c.desc.causal = FG_CAUSAL_TOP_LEFT;
        c.density = 0.15; /* some rows empty, some not */
        run_case(ctx, &c, &passed, &failed);
    }
    /* larger shapes: several tiles per row, checked on sampled rows */
    for (int d = 64; d <= 256; d *= 2)
      for (int path = 0; path < 3; ++path)
        for (int causal = 0; causal < 2; ++causal) {
            fg_case c;
            memset(&c, 0, sizeof c);
            fg_attention_desc_init(&c.desc, FG_BF16, d, 2, 4, 2, 2000, 3001);
            c.desc.causal = causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
            c.desc.path = path == 2 ? FG_PATH_WGMMA : path ? FG_PATH_MMA : FG_PATH_AUTO;
            c.seed = seed + 2000 + (uint64_t)d + causal;
            c.check_rows_max = 600;
            run_case(ctx, &c, &passed, &failed);
        }
    /* causal with more tiles than two per SM: the persistent grid takes
     * them in pairs, heads in order (fg_tile_scheduler.cuh); an odd number
     * of query tiles per head (1300 rows: 11 of 128, 7 of 192, which hd64
     * takes in the 2048 bucket), GQA 4:1, both alignments, seqlen_q above
     * and below seqlen_k.  A CTA of that grid runs from one work tile into
     * the next without draining (fg_fwd_ws.cuh, XTILE), so also: non-causal
     * with several tiles per CTA (case 0), and bottom-right with seqlen_q
     * far above seqlen_k (case 3), whose empty tiles (rows that see no
     * key) fall between tiles that have work */
    for (int d = 64; d <= 256; d *= 2)
        for (int cs = 0; cs <= 3; ++cs) {
            if (quick && d != 128) continue;
            static const int sk_of[4] = {900, 1500, 1100, 500};
            const int causal = cs == 3 ? 1 : cs;
            fg_case c;
            memset(&c, 0, sizeof c);
            fg_attention_desc_init(&c.desc, cs & 1 ? FG_FP16 : FG_BF16, d, 3, cs ? 16 : 40, cs ? 4 : 8, 1300, sk_of[cs]);
            c.desc.causal = (fg_causal)causal;
            c.seed = seed + 4000 + (uint64_t)(4 * d + cs);
            c.check_rows_max = 400;
            run_case(ctx, &c, &passed, &failed);
        }
    /* block-sparse with more tiles than SMs: the persistent grid follows
     * the layout's tile list (runtime/sparse_sched.c), several tiles a
     * CTA, rows of different cost; every causal mode, GQA 4:1 */
    fg_context_stats sp0 = {.struct_size = sizeof sp0}, sp1 = {.struct_size = sizeof sp1};
    fg_context_get_stats(ctx, &sp0);
    for (int causal = 0; causal < 3; ++causal) {
        fg_case c;
        memset(&c, 0, sizeof c);
        fg_attention_desc_init(&c.desc, causal == 1 ? FG_FP16 : FG_BF16, 128, 4, 8, 2, 1100, 900);
        c.desc.causal = (fg_causal)causal;
        c.density = 0.3;
        c.block = 128;
        c.seed = seed + 5000 + (uint64_t)causal;
        c.check_rows_max = 400;
        run_case(ctx, &c, &passed, &failed);
    }
    fg_context_get_stats(ctx, &sp1);
    if (strstr(sp1.gpu_identity, "sm_90")) /* the TMA kernel: each case's layout got its list */
        CHECK(sp1.sparse_list_launches - sp0.sparse_list_launches >= 3, "many-tile sparse cases: %ld launches on a tile list",
              sp1.sparse_list_launches - sp0.sparse_list_launches);
    sparse_capture_case(ctx, seed + 6000);
    sparse_no_list_case(ctx, seed + 7000);
    /* head_dim_v != head_dim on several tiles per row (the TMA pipeline's
     * steady state on Hopper) */
    for (int i = 0; i < 2; ++i)
        for (int path = 0; path < 2; ++path) {
            if (quick) continue;
            fg_case c;
            memset(&c, 0, sizeof c);
            fg_attention_desc_init(&c.desc, FG_BF16, i ? 128 : 192, 2, 4, 2, 1500, 2100);
            c.desc.head_dim_v = i ? 64 : 128;
            c.desc.causal = i ? FG_CAUSAL_TOP_LEFT : FG_CAUSAL_BOTTOM_RIGHT;
            c.desc.path = path ? FG_PATH_MMA : FG_PATH_AUTO;
            c.seed = seed + 3000 + (uint64_t)(2 * i + path);
            c.check_rows_max = 600;
            run_case(ctx, &c, &passed, &failed);
        }
    fg_context_destroy(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return test_summary("test_gpu_forward");
}
