/* GPU test of fg_kv_append against a host model of the append, bit for
 * bit: the whole K and V cache buffers (random old contents, padding
 * between rows and heads, and a poisoned guard region after the cache) and
 * seqlens_k are read back after each case and compared with the model.
 * Contiguous caches (BSHD, and BHSD with padded rows) and paged ones (pages
 * of 16 and 64 in random order, prefix pages shared by every sequence,
 * table entries past what a sequence needs set out of range: never read),
 * fp16 / bf16, head_dim_v != head_dim, GQA caches with several kv heads,
 * strided (BHSD, padded) k_new / v_new, advance on and off, decode loops of
 * several appends in a row with no host step between them, lengths 0 and
 * capacity - seqlen_new (the last row lands on capacity - 1), appends of
 * many CTAs per sequence, batches past one advance CTA, seqlen_new 0, and
 * a decode step captured in a CUDA graph (global capture mode, after one
 * call outside it) replayed with fresh rows each time.  Bad
 * entries (a length one row short of room, negative, past the capacity; a
 * page out of range either way) leave their sequence untouched and are
 * reported by fg_attention_table_error with the entry named, then cleared.
 * Device ranges too small for the strides are refused before launch.
 * Exit 77 (skipped) without a GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/cuda_api.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "test_gpu_util.h"
#include "test_util.h"

enum { BAD_NONE, BAD_PAST, BAD_NEG, BAD_BEYOND, BAD_PAGE_HIGH, BAD_PAGE_NEG };

typedef struct acase {
    const char *name;
    fg_dtype dt;
    int d, dv, batch, hkv;
    int capacity;      /* seqlen_k */
    int page;          /* page size; 0: contiguous cache */
    int extra_pages;   /* paged: max_pages past ceil(capacity / page) */
    int seqlen_new, steps, advance;
    int bhsd;          /* contiguous cache [batch, heads, rows, d + 8] */
    int strided_new;   /* k_new / v_new [batch, heads, seqlen_new, d + 16] */
    int shared_prefix; /* paged: full pages before the first new row shared by all sequences */
    int bad;           /* BAD_*: one bad entry in sequence batch / 2 */
    int graph;         /* steps after the first: one captured call, replayed */
} acase;

static const fg_cuda *cu;
static int g_dead; /* a CUDA error: the context may be unusable, stop */

#define GUARD 4096 /* elements after each cache that must stay poisoned */
#define POISON 0x7E7Eu

typedef struct tensor {
    int64_t s[3];     /* element strides (outer, head, row) */
    size_t elems;     /* allocated, the guard included */
    uint16_t *host;   /* the model */
    CUdeviceptr dev;
} tensor;

static uint16_t rand16(fg_rng *r) { return (uint16_t)(fg_rng_uniform(r) * 65536.0); }

static int rand_int(fg_rng *r, int lo, int hi) { /* [lo, hi] */
    return lo + (int)(fg_rng_uniform(r) * (double)(hi - lo + 1));
}

static void cache_strides(int64_t s[3], int rows, int hkv, int dim, int bhsd) {
    const int64_t w = dim + (bhsd ? 8 : 0);
    if (bhsd) { s[2] = w; s[1] = rows * w; s[0] = hkv * s[1]; }
    else { s[1] = w; s[2] = hkv * w; s[0] = rows * s[2]; }
}

static CUresult upload(const tensor *t) { return cu->MemcpyHtoD(t->dev, t->host, t->elems * 2); }

static CUresult alloc(tensor *t, size_t elems, fg_rng *r, int guard) {
    t->elems = elems + (guard ? GUARD : 0);
    t->host = malloc(t->elems * 2);
    if (!t->host) return CUDA_ERROR_OUT_OF_MEMORY;
    for (size_t i = 0; i < t->elems; ++i) t->host[i] = i < elems ? rand16(r) : (uint16_t)POISON;
    CUresult e = cu->MemAlloc(&t->dev, t->elems * 2);
    return e ? e : upload(t);
}

static void release(tensor *t) {
    if (t->dev) cu->MemFree(t->dev);
    free(t->host);
    memset(t, 0, sizeof *t);
}

/* The first difference between the model and the device copy of t. */
static int compare(const char *name, const acase *c, const tensor *t, uint16_t *got) {
    if (cu->MemcpyDtoH(got, t->dev, t->elems * 2)) return 0;
    for (size_t i = 0; i < t->elems; ++i)
        if (got[i] != t->host[i]) {
            CHECK(0, "%s: %s element %zu%s is 0x%04x, want 0x%04x", c->name, name, i,
                  i >= t->elems - GUARD ? " (guard)" : "", got[i], t->host[i]);
            return 0;
        }
    return 1;
}

typedef gpu_graph_api graph_api;

static int graph_api_load(graph_api *g) {
    const char *missing = gpu_graph_api_load(cu, g);
    if (missing) CHECK(0, "the driver lacks %s", missing);
    return !missing;
}

/* One fg_kv_append of case c on stream s; from step 1 of a graph case, a
 * launch of the graph captured from the call at step 1. */
typedef struct call_t {
    const fg_attention_desc *d;
    const void *kn, *vn;
    const int64_t *ks, *vs;
    void *kc, *vc;
} call_t;

static fg_status append_step(fg_context *ctx, const acase *c, const call_t *a, int step, graph_api *g, CUstream s,
                             CUgraph *graph, CUgraphExec *exec) {
    if (!c->graph || step == 0)
        return fg_kv_append(ctx, a->d, a->kn, a->vn, a->ks, a->vs, c->seqlen_new, a->kc, a->vc, c->advance, s);
    char b[256];
    if (!*exec) {
        CUresult r = g->BeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
        CHECK(!r, "%s: begin capture: %s", c->name, fg_cuda_errstr(cu, r, b, sizeof b));
        const fg_status st = fg_kv_append(ctx, a->d, a->kn, a->vn, a->ks, a->vs, c->seqlen_new, a->kc, a->vc, c->advance, s);
        r = g->EndCapture(s, graph);
        CHECK(!r, "%s: end capture: %s", c->name, fg_cuda_errstr(cu, r, b, sizeof b));
        if (st != FG_OK || r) return st != FG_OK ? st : FG_ERR_CUDA;
        if ((r = g->Instantiate(exec, *graph, 0))) {
            CHECK(0, "%s: instantiate: %s", c->name, fg_cuda_errstr(cu, r, b, sizeof b));
            *exec = NULL;
            return FG_ERR_CUDA;
        }
    }
    CUresult r = g->Launch(*exec, s);
    CHECK(!r, "%s: graph launch: %s", c->name, fg_cuda_errstr(cu, r, b, sizeof b));
    return r ? FG_ERR_CUDA : FG_OK;
}

typedef struct model {
    const acase *c;
    int num_pages, max_pages;
    int32_t *len, *table;
} model;

/* Whether sequence b's seqlen_new rows fit at len; *err: its error record. */
static int fits(const model *m, int b, int n, int w[4]) {
    const acase *c = m->c;
    const int s = m->len[b];
    if (s < 0 || s > c->capacity) { w[0] = 3; w[1] = b; w[2] = b; w[3] = s; return 0; }
    if ((int64_t)s + n > c->capacity) { w[0] = 5; w[1] = b; w[2] = c->capacity - s; w[3] = c->capacity; return 0; }
    for (int slot = s / (c->page ? c->page : 1); c->page && n && slot <= (s + n - 1) / c->page; ++slot) {
        const int pg = m->table[b * m->max_pages + slot];
        if (pg < 0 || pg >= m->num_pages) { w[0] = 4; w[1] = b; w[2] = slot; w[3] = pg; return 0; }
    }
    return 1;
}

/* The append on the host model: rows of sequences that fit, then the lengths. */
static void apply(model *m, tensor *cache, const tensor *nw, int dim, int n, int w[4]) {
    const acase *c = m->c;
    for (int b = 0; b < c->batch; ++b) {
        int e[4];
        if (!fits(m, b, n, e)) { if (!w[0]) memcpy(w, e, sizeof e); continue; }
        for (int i = 0; i < n; ++i) {
            const int pos = m->len[b] + i;
            const int64_t outer = c->page ? m->table[b * m->max_pages + pos / c->page] : b;
            const int64_t row = c->page ? pos % c->page : pos;
            for (int h = 0; h < c->hkv; ++h)
                memcpy(cache->host + outer * cache->s[0] + h * cache->s[1] + row * cache->s[2],
                       nw->host + b * nw->s[0] + h * nw->s[1] + i * nw->s[2], (size_t)dim * 2);
        }
    }
}

static void advance(model *m, int n) {
    for (int b = 0; b < m->c->batch; ++b) {
        int e[4];
        if (fits(m, b, n, e)) m->len[b] += n;
    }
}

/* The block table: unique pages in random order for every slot a sequence
 * writes, the shared prefix pages before them, out-of-range garbage after. */
static void make_table(model *m, fg_rng *r, int last_len) {
    const acase *c = m->c;
    const int shared = c->shared_prefix ? m->max_pages : 0;
    m->num_pages = c->batch * m->max_pages + shared + 3; /* 3 pages nobody names */
    int *perm = malloc((size_t)m->num_pages * sizeof *perm);
    for (int i = 0; i < m->num_pages; ++i) perm[i] = i;
    for (int i = m->num_pages - 1; i > 0; --i) {
        const int j = rand_int(r, 0, i), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int next = shared;
    for (int b = 0; b < c->batch; ++b) {
        const int first = m->len[b] / c->page, last = last_len > 0 ? (m->len[b] + last_len - 1) / c->page : first - 1;
        for (int slot = 0; slot < m->max_pages; ++slot) {
            int32_t *e = &m->table[b * m->max_pages + slot];
            if (slot < first && c->shared_prefix) *e = perm[slot];
            else if (slot <= last || !(b & 1)) *e = perm[next++];
            else *e = slot & 1 ? -7 : m->num_pages + 100; /* never needed, never read */
        }
    }
    free(perm);
}

static void run_case(fg_context *ctx, const acase *c, uint64_t seed, int *passed, int *failed) {
    const int before = t_failures;
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    const int n = c->seqlen_new, steps = c->steps ? c->steps : 1, span = c->advance ? n * steps : n;
    model m = {c, 0, 0, calloc((size_t)c->batch, 4), NULL};
    for (int b = 0; b < c->batch; ++b) /* 0, the last that fits, then random */
        m.len[b] = b == 0 ? 0 : b == 1 ? c->capacity - span : rand_int(&rng, 0, c->capacity - span);
    fg_attention_desc d;
    fg_attention_desc_init(&d, c->dt, c->d, c->batch, c->hkv, c->hkv, 1, c->capacity);
    fg_attention_desc_set_head_dim_v(&d, c->dv);
    const int outer = c->page ? 0 : c->batch, rows = c->page ? c->page : c->capacity;
    if (c->page) {
        m.max_pages = (c->capacity + c->page - 1) / c->page + c->extra_pages;
        m.table = malloc((size_t)c->batch * m.max_pages * 4);
        make_table(&m, &rng, span);
    }
    const int bb = c->batch / 2; /* the sequence with the bad entry */
    if (c->bad == BAD_PAST) m.len[bb] = c->capacity - n + 1;
    if (c->bad == BAD_NEG) m.len[bb] = -3;
    if (c->bad == BAD_BEYOND) m.len[bb] = c->capacity + 5;
    if (c->bad == BAD_PAGE_HIGH || c->bad == BAD_PAGE_NEG)
        m.table[bb * m.max_pages + (m.len[bb] + n - 1) / c->page] = c->bad == BAD_PAGE_HIGH ? m.num_pages : -1;
    d.page_size = c->page;
    d.num_pages = m.num_pages;
    d.max_pages = m.max_pages;
    tensor kc, vc, kn, vn;
    memset(&kc, 0, sizeof kc); memset(&vc, 0, sizeof vc); memset(&kn, 0, sizeof kn); memset(&vn, 0, sizeof vn);
    cache_strides(kc.s, rows, c->hkv, c->d, c->bhsd);
    cache_strides(vc.s, rows, c->hkv, c->dv, c->bhsd);
    memcpy(d.k_strides, kc.s, sizeof kc.s);
    memcpy(d.v_strides, vc.s, sizeof vc.s);
    const int wk = c->d + (c->strided_new ? 16 : 0), wv = c->dv + (c->strided_new ? 16 : 0), nn = n ? n : 1;
    if (c->strided_new) {
        kn.s[2] = wk; kn.s[1] = (int64_t)nn * wk; kn.s[0] = c->hkv * kn.s[1];
        vn.s[2] = wv; vn.s[1] = (int64_t)nn * wv; vn.s[0] = c->hkv * vn.s[1];
    } else {
        kn.s[1] = c->d; kn.s[2] = (int64_t)c->hkv * c->d; kn.s[0] = nn * kn.s[2];
        vn.s[1] = c->dv; vn.s[2] = (int64_t)c->hkv * c->dv; vn.s[0] = nn * vn.s[2];
    }
    const int64_t cache_outer = c->page ? m.num_pages : outer;
    CUdeviceptr dlen = 0, dtab = 0;
    uint16_t *got = NULL;
    graph_api g;
    CUstream stream = NULL;
    CUgraph graph = NULL;
    CUgraphExec exec = NULL;
    CUresult e = alloc(&kc, (size_t)(cache_outer * kc.s[0]), &rng, 1);
    if (!e) e = alloc(&vc, (size_t)(cache_outer * vc.s[0]), &rng, 1);
    if (!e) e = alloc(&kn, (size_t)(c->batch * kn.s[0]), &rng, 0);
    if (!e) e = alloc(&vn, (size_t)(c->batch * vn.s[0]), &rng, 0);
    if (!e) e = cu->MemAlloc(&dlen, (size_t)c->batch * 4);
    if (!e) e = cu->MemcpyHtoD(dlen, m.len, (size_t)c->batch * 4);
    if (!e && c->page) e = cu->MemAlloc(&dtab, (size_t)c->batch * m.max_pages * 4);
    if (!e && c->page) e = cu->MemcpyHtoD(dtab, m.table, (size_t)c->batch * m.max_pages * 4);
    got = malloc((kc.elems > vc.elems ? kc.elems : vc.elems) * 2);
    char b[256];
    CHECK(!e && got, "%s: setting up: %s", c->name, fg_cuda_errstr(cu, e, b, sizeof b));
    if (e || !got) { g_dead = 1; goto out; }
    d.seqlens_k = (const int32_t *)(uintptr_t)dlen;
    d.block_table = (const int32_t *)(uintptr_t)dtab;
    int want[4] = {0, 0, 0, 0};
    if (c->graph && (!graph_api_load(&g) || g.StreamCreate(&stream, CU_STREAM_NON_BLOCKING))) { g_dead = 1; goto out; }
    /* A copy from pageable host memory may return before its DMA lands, and
     * a non-blocking stream does not wait for the legacy stream's work: wait
     * for the uploads before the first call (a graph case once read
     * seqlens_k before its upload had landed: uninitialised lengths). */
    if (cu->CtxSynchronize()) { CHECK(0, "%s: setting up", c->name); g_dead = 1; goto out; }
    const call_t call = {&d, (void *)(uintptr_t)kn.dev, (void *)(uintptr_t)vn.dev, c->strided_new ? kn.s : NULL,
                         c->strided_new ? vn.s : NULL, (void *)(uintptr_t)kc.dev, (void *)(uintptr_t)vc.dev};
    for (int step = 0; step < steps && !g_dead; ++step) {
        if (step) { /* fresh rows for the next token, as a decode loop would have */
            for (size_t i = 0; i < kn.elems; ++i) kn.host[i] = rand16(&rng);
            for (size_t i = 0; i < vn.elems; ++i) vn.host[i] = rand16(&rng);
            if (upload(&kn) || upload(&vn) || cu->CtxSynchronize()) { CHECK(0, "%s: upload", c->name); g_dead = 1; break; }
        }
        const fg_status st = append_step(ctx, c, &call, step, &g, stream, &graph, &exec);
        CHECK(st == FG_OK, "%s step %d: %s", c->name, step, fg_errmsg(ctx));
        if (c->graph && cu->CtxSynchronize()) { CHECK(0, "%s: step %d failed on the device", c->name, step); g_dead = 1; }
        if (n) {
            apply(&m, &kc, &kn, c->d, n, want);
            apply(&m, &vc, &vn, c->dv, n, want);
            if (c->advance) advance(&m, n);
        }
    }
    char msg[256];
    const fg_status te = fg_attention_table_error(ctx, msg, sizeof msg, NULL);
    if (te == FG_ERR_CUDA) g_dead = 1;
    if (!want[0]) CHECK(te == FG_OK, "%s: table error %s: %s", c->name, fg_status_name(te), msg);
    else {
        char exp[128];
        if (want[0] == 3) snprintf(exp, sizeof exp, "seqlens_k[%d] = %d", want[1], want[3]);
        else if (want[0] == 4) snprintf(exp, sizeof exp, "block_table[%d][%d] = %d", want[1], want[2], want[3]);
        else snprintf(exp, sizeof exp, "sequence %d, new row %d would go to key position %d", want[1], want[2], want[3]);
        CHECK(te == FG_ERR_BAD_LAYOUT && strstr(msg, exp), "%s: table error %s '%s', want '%s'", c->name,
              fg_status_name(te), msg, exp);
        CHECK(fg_attention_table_error(ctx, msg, sizeof msg, NULL) == FG_OK, "%s: the error word was not cleared", c->name);
    }
    int32_t *glen = malloc((size_t)c->batch * 4);
    if (glen && !cu->MemcpyDtoH(glen, dlen, (size_t)c->batch * 4))
        for (int i = 0; i < c->batch; ++i)
            if (glen[i] != m.len[i]) {
                CHECK(0, "%s: seqlens_k[%d] = %d, want %d", c->name, i, glen[i], m.len[i]);
                break;
            }
    free(glen);
    compare("k_cache", c, &kc, got);
    compare("v_cache", c, &vc, got);
out:
    printf("%-44s %s\n", c->name, t_failures == before ? "ok" : "FAILED");
    ++*(t_failures == before ? passed : failed);
    if (exec) g.ExecDestroy(exec);
    if (graph) g.Destroy(graph);
    if (stream) g.StreamDestroy(stream);
    release(&kc); release(&vc); release(&kn); release(&vn);
    if (dlen) cu->MemFree(dlen);
    if (dtab) cu->MemFree(dtab);
    free(got);
    free(m.len);
    free(m.table);
}

/* Allocations smaller than the strides reach are refused before launch. */
static void test_ranges(fg_context *ctx) {
    CUdeviceptr small = 0, lens = 0;
    if (cu->MemAlloc(&small, 4096) || cu->MemAlloc(&lens, 16)) { CHECK(0, "alloc"); g_dead = 1; return; }
    cu->MemsetD32(lens, 0, 4);
    void *p = (void *)(uintptr_t)small;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 2, 2, 2, 1, 8); /* a cache of 2 * 8 * 2 * 64 * 2 = 4096 bytes */
    d.seqlens_k = (const int32_t *)(uintptr_t)lens;
    CHECK(fg_kv_append(ctx, &d, p, p, NULL, NULL, 1, p, p, 0, NULL) == FG_OK, "fits: %s", fg_errmsg(ctx));
    fg_attention_desc_init(&d, FG_BF16, 64, 2, 2, 2, 1, 9); /* 4608 bytes */
    d.seqlens_k = (const int32_t *)(uintptr_t)lens;
    CHECK(fg_kv_append(ctx, &d, p, p, NULL, NULL, 1, p, p, 0, NULL) == FG_ERR_INVALID_ARGUMENT, "a cache past its allocation");
    CHECK_CONTAINS(fg_errmsg(ctx), "k_cache");
    CHECK_CONTAINS(fg_errmsg(ctx), "allocation ends");
    fg_attention_desc_init(&d, FG_BF16, 8, 5, 1, 1, 1, 8); /* seqlens_k holds 4 of 5 */
    d.seqlens_k = (const int32_t *)(uintptr_t)lens;
    CHECK(fg_kv_append(ctx, &d, p, p, NULL, NULL, 1, p, p, 0, NULL) == FG_ERR_INVALID_ARGUMENT, "seqlens_k too short");
    CHECK_CONTAINS(fg_errmsg(ctx), "seqlens_k");
    /* the forward checks its tables the same way (q 80 bytes, k and v 640,
     * o 80, apart in `small`; seqlens_k needs 20 bytes of lens's 16) */
    char *sb = (char *)p;
    CHECK(fg_attention_forward(ctx, &d, sb, sb + 1024, sb + 1024, sb + 2048, NULL, NULL) == FG_ERR_INVALID_ARGUMENT,
          "forward: seqlens_k too short");
    CHECK_CONTAINS(fg_errmsg(ctx), "seqlens_k");
    CHECK_CONTAINS(fg_errmsg(ctx), "allocation ends");
    fg_attention_desc_init(&d, FG_BF16, 8, 2, 1, 1, 1, 64);
    d.seqlens_k = (const int32_t *)(uintptr_t)lens;
    d.block_table = (const int32_t *)(uintptr_t)lens; /* 2 x 4 entries in 16 bytes: 2 too many */
    d.page_size = 16; d.num_pages = 4; d.max_pages = 4;
    d.k_strides[0] = d.v_strides[0] = 16 * 8; d.k_strides[2] = d.v_strides[2] = 8;
    CHECK(fg_kv_append(ctx, &d, p, p, NULL, NULL, 1, p, p, 0, NULL) == FG_ERR_INVALID_ARGUMENT, "block_table too short");
    CHECK_CONTAINS(fg_errmsg(ctx), "block_table");
    CHECK(fg_attention_table_error(ctx, NULL, 0, NULL) == FG_OK, "the valid call recorded an error: %s", fg_errmsg(ctx));
    cu->MemFree(small);
    cu->MemFree(lens);
}

int main(int argc, char **argv) {
    gpu_or_skip();
    fg_error e = {0};
    fg_cuda_get(&cu, &e);
    fg_context *ctx;
    fg_context_create(&ctx);
    if (fg_ctx_device(ctx, &e) != FG_OK) {
        printf("SKIP: %s\n", e.msg);
        fg_context_destroy(ctx);
        return 77;
    }
    static const acase cases[] = {
        /* name, dt, d, dv, batch, hkv, capacity, page, extra, n, steps, advance, bhsd, strided, shared, bad, graph */
        {"decode loop, contiguous", FG_BF16, 128, 128, 4, 2, 300, 0, 0, 1, 3, 1, 0, 0, 0, BAD_NONE, 0},
        {"chunk, dv != d, BHSD padded, strided new", FG_FP16, 64, 32, 5, 4, 257, 0, 0, 37, 2, 1, 1, 1, 0, BAD_NONE, 0},
        {"whole capacity, no advance", FG_BF16, 192, 128, 3, 1, 100, 0, 0, 100, 1, 0, 0, 0, 0, BAD_NONE, 0},
        {"no advance twice: same rows", FG_FP16, 96, 96, 3, 2, 50, 0, 0, 4, 2, 0, 1, 0, 0, BAD_NONE, 0},
        {"paged 16 decode loop, GQA 8, shared prefix", FG_FP16, 128, 128, 6, 8, 200, 16, 0, 1, 4, 1, 0, 0, 1, BAD_NONE, 0},
        {"paged 64, dv 64 of 256, strided new", FG_BF16, 256, 64, 3, 2, 1000, 64, 0, 130, 2, 1, 0, 1, 1, BAD_NONE, 0},
        {"paged 16, spare table slots", FG_BF16, 64, 64, 4, 2, 100, 16, 2, 5, 3, 1, 0, 0, 0, BAD_NONE, 0},
        {"tiny: d 8, whole capacity", FG_FP16, 8, 8, 1, 1, 16, 0, 0, 16, 1, 1, 0, 0, 0, BAD_NONE, 0},
        {"many CTAs per sequence, contiguous", FG_BF16, 8, 8, 2, 1, 70000, 0, 0, 65000, 1, 1, 0, 0, 0, BAD_NONE, 0},
        {"many CTAs per sequence, paged 16", FG_FP16, 64, 64, 2, 2, 5000, 16, 0, 4000, 1, 1, 0, 1, 1, BAD_NONE, 0},
        {"batch 300: two advance CTAs", FG_BF16, 64, 64, 300, 1, 32, 16, 0, 1, 2, 1, 0, 0, 0, BAD_NONE, 0},
        {"seqlen_new 0 with advance", FG_BF16, 64, 64, 3, 2, 64, 16, 0, 0, 1, 1, 0, 0, 0, BAD_NONE, 0},
        {"CUDA graph: decode step replayed, paged 16", FG_BF16, 128, 64, 3, 2, 100, 16, 0, 1, 12, 1, 0, 0, 1, BAD_NONE, 1},
        {"CUDA graph: chunk of 7 replayed, contiguous", FG_FP16, 64, 64, 2, 4, 100, 0, 0, 7, 5, 1, 1, 1, 0, BAD_NONE, 1},
        {"bad: one row past the capacity (paged)", FG_BF16, 64, 64, 4, 2, 100, 16, 1, 5, 1, 1, 0, 0, 0, BAD_PAST, 0},
        {"bad: negative length", FG_FP16, 64, 32, 4, 2, 80, 0, 0, 3, 1, 1, 0, 0, 0, BAD_NEG, 0},
        {"bad: length past the capacity", FG_BF16, 128, 128, 3, 1, 80, 0, 0, 2, 1, 1, 1, 0, 0, BAD_BEYOND, 0},
        {"bad: page = num_pages", FG_FP16, 64, 64, 4, 2, 200, 16, 0, 20, 1, 1, 0, 0, 0, BAD_PAGE_HIGH, 0},
        {"bad: page -1, no advance", FG_BF16, 128, 64, 5, 1, 300, 64, 0, 3, 1, 0, 0, 1, 0, BAD_PAGE_NEG, 0},
    };
    const uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : (uint64_t)time(NULL);
    printf("seed %llu (pass it as the argument to repeat)\n", (unsigned long long)seed);
    int passed = 0, failed = 0;
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0] && !g_dead; ++i)
        run_case(ctx, &cases[i], seed + i, &passed, &failed);
    if (!g_dead) test_ranges(ctx);
    fg_context_destroy(ctx);
    printf("%d passed, %d failed\n", passed, failed);
    return test_summary("test_gpu_kv_append");
}
