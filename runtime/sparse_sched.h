/* sparse_sched.h: the persistent grid's tile lists for block-sparse layouts
 * on the TMA forward (templates/fg_tile_scheduler.cuh reads them).
 *
 * One CTA per tile leaves the hardware to balance tiles of different cost,
 * but each tile then pays its start and end (the Q load and first S GEMM
 * without overlap, the epilogue) in full: at 10% density that was 25-45%
 * over density x dense time (docs/PERF.md v15, v17).  A persistent grid
 * hides those costs but needs a balanced assignment, which a static rule
 * cannot give rows of different cost (bench/sparse_sched_sim.py).  So the
 * host computes it, as the hardware would: the tiles of each (batch, head)
 * in order of heads (their K and V stay in L2), inside a head longest
 * first, each to the CTA that is free first under the cost model
 * SCHED_TILE_COST + key tiles.  The lists are built once per (layout, call
 * shape, tile height, grid) and kept with the layout (runtime/layout.c). */
#ifndef FG_SPARSE_SCHED_H
#define FG_SPARSE_SCHED_H

#include <stddef.h>

#include "fg_tile_order.h"

/* What a list depends on. */
typedef struct fg_sparse_sched_key {
    int batch, heads, seqlen_q; /* the call (heads: query heads) */
    int block_m, sub;           /* the kernel's tile height; key tiles per layout key block */
    int ctas;                   /* the grid: min(SMs, tiles) */
} fg_sparse_sched_key;

/* A layout's shape, and its rows' costs: row_cost[r] = full + partial key
 * blocks of layout row r = (bi * heads + hi) * num_q_blocks + qb. */
typedef struct fg_sparse_sched_layout {
    int batch, heads, num_q_blocks, block_q;
    const int *row_cost;
} fg_sparse_sched_layout;

/* Number of ints of the lists for key: ctas starts, then every tile once
 * and an end mark a CTA; -1 when the shape is out of range (more than
 * 2^31 - 1 ints). */
long long fg_sparse_sched_ints(const fg_sparse_sched_key *key);

/* Writes the lists (fg_sparse_sched_ints(key) ints) into out: CTA b's
 * tiles are out[out[b]], out[out[b] + 1], ... up to FG_SPARSE_SCHED_END, in
 * the order it runs them (the kernel needs one index a step, which keeps
 * the producer in its 24 registers); a tile is b * heads * num_m + h *
 * num_m + m (num_m = ceil(seqlen_q / block_m)), the non-causal linear order
 * of templates/fg_tile_order.h.  Returns 0, or -1 when out of memory. */
int fg_sparse_sched_build(const fg_sparse_sched_key *key, const fg_sparse_sched_layout *L, int *out);

/* The cost model's per-tile term, in key tiles (what a tile costs beyond
 * its key tiles on the persistent grid; bench/sparse_sched_sim.py). */
#define FG_SPARSE_SCHED_TILE_COST 1
/* A list's end: past every tile index (templates/fg_tile_order.h, which
 * the kernel's tile scheduler reads too). */
#define FG_SPARSE_SCHED_END FG_TILE_END

#endif
