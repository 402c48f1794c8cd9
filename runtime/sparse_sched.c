/* sparse_sched.c: the persistent grid's tile lists for block-sparse layouts
 * (see sparse_sched.h). */
#include "runtime/sparse_sched.h"

#include <stdint.h>
#include <stdlib.h>

static long long num_m(const fg_sparse_sched_key *k) { return ((long long)k->seqlen_q + k->block_m - 1) / k->block_m; }

long long fg_sparse_sched_ints(const fg_sparse_sched_key *k) {
    if (k->batch < 1 || k->heads < 1 || k->seqlen_q < 1 || k->block_m < 1 || k->ctas < 1 || k->sub < 1) return -1;
    const long long n = 2LL * k->ctas + num_m(k) * k->heads * k->batch;
    return n > INT32_MAX ? -1 : n;
}

typedef struct {
    long long cost;
    int m;
} tile_cost;

static int by_cost_desc(const void *a, const void *b) {
    const tile_cost *x = a, *y = b;
    if (x->cost != y->cost) return x->cost > y->cost ? -1 : 1;
    return (x->m > y->m) - (x->m < y->m);
}

/* A binary min-heap of CTAs by (time free, index). */
typedef struct {
    long long *t;
    int *cta, n;
} cta_heap;

static int heap_less(const cta_heap *h, int i, int j) {
    return h->t[i] < h->t[j] || (h->t[i] == h->t[j] && h->cta[i] < h->cta[j]);
}
static void heap_swap(cta_heap *h, int i, int j) {
    const long long t = h->t[i];
    h->t[i] = h->t[j];
    h->t[j] = t;
    const int c = h->cta[i];
    h->cta[i] = h->cta[j];
    h->cta[j] = c;
}
/* The root got later: move it down. */
static void heap_down(cta_heap *h) {
    for (int i = 0;;) {
        const int l = 2 * i + 1, r = l + 1;
        int s = i;
        if (l < h->n && heap_less(h, l, s)) s = l;
        if (r < h->n && heap_less(h, r, s)) s = r;
        if (s == i) return;
        heap_swap(h, i, s);
        i = s;
    }
}

int fg_sparse_sched_build(const fg_sparse_sched_key *k, const fg_sparse_sched_layout *L, int *out) {
    const long long ints = fg_sparse_sched_ints(k);
    if (ints < 0) return -1;
    const int nm = (int)num_m(k), G = k->ctas, groups = k->batch * k->heads;
    const size_t tiles = (size_t)(ints - 2 * G);
    int *cta_of = malloc(tiles * sizeof *cta_of), *tile_id = malloc(tiles * sizeof *tile_id);
    int *next = calloc((size_t)G, sizeof *next);
    tile_cost *row = malloc((size_t)nm * sizeof *row);
    cta_heap h = {malloc((size_t)G * sizeof *h.t), malloc((size_t)G * sizeof *h.cta), G};
    int rc = -1;
    if (!cta_of || !tile_id || !next || !row || !h.t || !h.cta) goto done;
    for (int c = 0; c < G; ++c) { h.t[c] = 0; h.cta[c] = c; } /* a heap: equal times, indices in order */
    /* each group's tiles longest first, each to the CTA free first */
    size_t pos = 0;
    for (int g = 0; g < groups; ++g) {
        const int b = g / k->heads, hq = g % k->heads;
        const int bi = L->batch == 1 ? 0 : b, hi = L->heads == 1 ? 0 : hq;
        const long long row0 = ((long long)bi * L->heads + hi) * L->num_q_blocks;
        for (int m = 0; m < nm; ++m) {
            const long long qb = (long long)m * k->block_m / L->block_q;
            row[m].cost = (long long)L->row_cost[row0 + qb] * k->sub + FG_SPARSE_SCHED_TILE_COST;
            row[m].m = m;
        }
        qsort(row, (size_t)nm, sizeof *row, by_cost_desc);
        for (int i = 0; i < nm; ++i, ++pos) {
            cta_of[pos] = h.cta[0];
            tile_id[pos] = g * nm + row[i].m;
            ++next[h.cta[0]];
            h.t[0] += row[i].cost;
            heap_down(&h);
        }
    }
    /* the starts, then each CTA's tiles in the order assigned and its end mark */
    long long at = G;
    for (int c = 0; c < G; ++c) {
        const int n = next[c];
        out[c] = (int)at;
        next[c] = (int)at;
        at += n;
        out[at++] = FG_SPARSE_SCHED_END;
    }
    for (size_t i = 0; i < tiles; ++i) out[next[cta_of[i]]++] = tile_id[i];
    rc = 0;
done:
    free(cta_of); free(tile_id); free(next); free(row); free(h.t); free(h.cta);
    return rc;
}
