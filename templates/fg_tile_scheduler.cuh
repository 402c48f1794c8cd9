// fg_tile_scheduler.cuh: which (query block, head, batch) tiles a CTA runs.
//
// A static persistent schedule: the runtime launches min(work, CTAs that
// fit on the GPU) blocks, or one block per tile (then each CTA runs exactly
// one).  Tiles get a linear index; tile_at(k) is the index of the k-th
// tile of this CTA (rounds only grow, so `>= total()` ends the loop) and
// decode() turns an index into (query block, head, batch); both are
// fg_tile_order.h's, which the host test runs too.
//
//   non-causal: query block fastest, then head, then batch: the query
//               blocks of one head, and the heads of one KV group, run side
//               by side, so their K and V stay in L2.  Round k gives CTA b
//               tile k * G + b, or k * G + G - 1 - b in odd rounds (a snake).
//   causal:     heads in order, and inside a head the query blocks as
//               last, first, second-last, second, ...  With a persistent
//               grid (p.tile_pairs = 1) CTA b takes the pair of tiles
//               2u, 2u + 1 with u = (k / 2) * G + b: a pair's causal costs
//               add up to the same for every pair of a head (m + 1 and
//               num_m - m key tiles), so rounds balance without sorting, and
//               a round touches the K and V of only 2G / num_m heads
//               (odd counts: see decode).  (The
//               order before, longest tiles first over all heads, touched G
//               heads a round: at short sequences more than L2 holds, so K
//               and V came from DRAM again for every query block; ncu, hd128
//               causal 1k: 710 MB read for 256 MB of inputs, docs/PERF.md.)
//               One CTA per tile (p.tile_pairs = 0): tile b.
//   sparse:     with p.sp_sched, CTA b runs the tiles of its list (ended by
//               FG_TILE_END; built on the host, runtime/sparse_sched.c: each
//               head's tiles longest first, each given to the CTA that frees
//               first); without, one CTA per tile, tile b.  Indices in the
//               non-causal order, causal or not.
#pragma once
#include "fg_params.h"
#include "fg_tile_order.h"

namespace fg {

// No state: the counts are recomputed from p (constant bank) where they are
// needed, so the producer's walk keeps no register for them (24 registers
// after setmaxnreg).
template <int BR, bool CAUSAL, bool SPARSE = false> struct TileScheduler {
    __device__ __forceinline__ static int num_m(const fg_fwd_params &p) { return (p.seqlen_q + BR - 1) / BR; }
    __device__ __forceinline__ static int total(const fg_fwd_params &p) { return num_m(p) * p.heads_q * p.batch; }
    // The tile of this CTA's k-th step (done(): this CTA has no more).
    __device__ __forceinline__ static int tile_at(const fg_fwd_params &p, int k) {
        if constexpr (SPARSE) {
            if (p.sp_sched) return __ldg(p.sp_sched + __ldg(p.sp_sched + blockIdx.x) + k); // ends with FG_TILE_END
            return k == 0 ? (int)blockIdx.x : FG_TILE_END;                                 // one CTA a tile
        }
        return fg_tile_at(CAUSAL, CAUSAL ? p.tile_pairs : 0, (int)gridDim.x, (int)blockIdx.x, k);
    }
    // Sparse: the end mark (a constant: the producer keeps no register for
    // the tile count); dense: past the last tile.
    __device__ __forceinline__ static bool done(const fg_fwd_params &p, int t) {
        if constexpr (SPARSE) return t == FG_TILE_END;
        return t >= total(p);
    }
    // Sparse variants number tiles in the non-causal order either way.
    __device__ __forceinline__ static void decode(const fg_fwd_params &p, int t, int &m_block, int &h, int &b) {
        int bh;
        m_block = fg_tile_decode(CAUSAL && !SPARSE, num_m(p), p.heads_q * p.batch, t, &bh);
        h = bh % p.heads_q;
        b = bh / p.heads_q;
    }
};

} // namespace fg
