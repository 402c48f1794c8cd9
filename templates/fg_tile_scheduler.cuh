// fg_tile_scheduler.cuh: which (query block, head, batch) tiles a CTA runs.
//
// A static persistent schedule: tile = blockIdx.x, blockIdx.x + gridDim.x,
// ...  The runtime launches min(tiles, CTAs that fit on the GPU) blocks, or
// one block per tile (then each CTA runs exactly one).  The tile order:
//   non-causal: query block fastest, then head, then batch: the query
//               blocks of one head, and the heads of one KV group, run side
//               by side, so their K and V stay in L2;
//   causal:     the query block decides the cost, so the longest tiles
//               (last query blocks) go first, over all heads and batches,
//               which balances a persistent grid.
#pragma once
#include "fg_params.h"

namespace fg {

template <int BR, bool CAUSAL> struct TileScheduler {
    int num_m, num_bh, total;
    __device__ __forceinline__ void init(const fg_fwd_params &p) {
        num_m = (p.seqlen_q + BR - 1) / BR;
        num_bh = p.heads_q * p.batch;
        total = num_m * num_bh;
    }
    __device__ __forceinline__ int first() const { return (int)blockIdx.x; }
    __device__ __forceinline__ int next(int t) const { return t + (int)gridDim.x; }
    __device__ __forceinline__ void decode(int t, int heads_q, int &m_block, int &h, int &b) const {
        int bh;
        if (CAUSAL) { m_block = num_m - 1 - t / num_bh; bh = t - (t / num_bh) * num_bh; }
        else        { m_block = t % num_m; bh = t / num_m; }
        h = bh % heads_q;
        b = bh / heads_q;
    }
};

} // namespace fg
