// fg_tile_scheduler.cuh: which (query block, head, batch) tiles a CTA runs.
//
// A static persistent schedule in rounds of gridDim.x tiles: in round k CTA
// b runs tile k * G + b, or k * G + G - 1 - b in odd rounds (a snake, so
// that with tiles sorted by falling cost every CTA gets a long and a short
// one in turn).  The runtime launches min(tiles, CTAs that fit on the GPU)
// blocks, or one block per tile (then each CTA runs exactly one).  The tile
// order:
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
    int num_m, num_bh;
    __device__ __forceinline__ void init(const fg_fwd_params &p) {
        num_m = (p.seqlen_q + BR - 1) / BR;
        num_bh = p.heads_q * p.batch;
    }
    // a product, not a member: one register fewer in the FP8 producer
    __device__ __forceinline__ int total() const { return num_m * num_bh; }
    // The tile of round k (>= total: this CTA is done; rounds only grow).
    __device__ __forceinline__ int tile_at(int k) const {
        const int g = (int)gridDim.x, b = (int)blockIdx.x;
        return k * g + ((k & 1) ? g - 1 - b : b);
    }
    __device__ __forceinline__ void decode(int t, int heads_q, int &m_block, int &h, int &b) const {
        int bh;
        if (CAUSAL) { m_block = num_m - 1 - t / num_bh; bh = t - (t / num_bh) * num_bh; }
        else        { m_block = t % num_m; bh = t / num_m; }
        h = bh % heads_q;
        b = bh / heads_q;
    }
};

} // namespace fg
