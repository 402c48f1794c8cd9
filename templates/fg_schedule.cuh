// fg_schedule.cuh: which key tiles one query tile visits, in which order,
// and which of them need an element mask.
//
// Dense:  tiles 0 .. n-1, where causal variants stop at the last tile that
//         the tile's last valid row can see (fully masked tiles are never
//         visited).
// Sparse: the layout row of this (batch, head, query block) lists full key
//         blocks, then partial ones; each layout block is sp_sub kernel
//         tiles.  Tiles past seqlen_k, and causal-masked tiles of partial
//         blocks, are marked invisible: the main loop keeps its pipeline
//         bookkeeping for them but neither loads nor computes.
// Full blocks get no element mask (as in FlexAttention's BlockMask);
// partial blocks get the causal mask when the variant is causal.
#pragma once
#include "fg_params.h"

namespace fg {

template <int BR, int BC, bool CAUSAL, bool SPARSE> struct Schedule {
    int count;          // entries to visit
    int m0, row_last;   // first and last valid query row of the tile
    int offset, seqlen_k;
    const int *full_idx, *part_idx;
    int nf, sub, row;

    __device__ __forceinline__ void init(const fg_fwd_params &p, int m0_, int b, int h) {
        m0 = m0_;
        row_last = min(m0 + BR, p.seqlen_q) - 1;
        offset = p.causal_offset;
        seqlen_k = p.seqlen_k;
        if (!SPARSE) {
            int n = (p.seqlen_k + BC - 1) / BC;
            if (CAUSAL) {
                const int last_col = row_last + offset;   // last key any row here sees
                n = last_col < 0 ? 0 : min(n, last_col / BC + 1);
            }
            count = n;
            full_idx = part_idx = 0; nf = 0; sub = 1; row = 0;
        } else {
            const int bi = p.sp_batch == 1 ? 0 : b;
            const int hi = p.sp_heads == 1 ? 0 : h;
            row = (bi * p.sp_heads + hi) * p.sp_num_q_blocks + m0 / p.sp_block_q;
            nf = p.sp_full_num[row];
            const int np = p.sp_part_num[row];
            full_idx = p.sp_full_idx + (long long)row * p.sp_num_kv_blocks;
            part_idx = p.sp_part_idx + (long long)row * p.sp_num_kv_blocks;
            sub = p.sp_sub;
            count = (nf + np) * sub;
        }
    }

    // Dense only (inference variants): the tile of query rows m0_..last
    // (query indices) against seqlen_k_ keys with this causal offset.
    __device__ __forceinline__ void init_rows(int m0_, int last, int seqlen_k_, int offset_) {
        static_assert(!SPARSE, "inference variants are dense");
        m0 = m0_;
        row_last = last;
        offset = offset_;
        seqlen_k = seqlen_k_;
        int n = (seqlen_k_ + BC - 1) / BC;
        if (CAUSAL) {
            const int last_col = row_last + offset;
            n = last_col < 0 ? 0 : min(n, last_col / BC + 1);
        }
        count = n;
        full_idx = part_idx = 0; nf = 0; sub = 1; row = 0;
    }

    // Key tile of entry i, and whether its layout block is partial.
    __device__ __forceinline__ int tile(int i, bool &partial) const {
        if (!SPARSE) { partial = CAUSAL; return i; }
        // sub is 1 when the layout's key block is the kernel's (the usual
        // 128 / 128): no division then; else an unsigned one (i >= 0, sub
        // >= 1), shorter than the signed sequence (ncu, hd128 random 50%:
        // the signed division was ~5% of the consumers' stall samples,
        // docs/PERF.md v17)
        const int e = sub == 1 ? i : (int)((unsigned)i / (unsigned)sub), t = i - e * sub;
        partial = e >= nf;
        const int blk = partial ? __ldg(part_idx + (e - nf)) : __ldg(full_idx + e);
        return blk * sub + t;
    }

    // The same, with the row's lists found from p at each use instead of
    // the two pointers kept since init (registers fewer in the TMA kernel's
    // producer, which walks this beside its tile list)
    __device__ __forceinline__ int tile(const fg_fwd_params &p, int i, bool &partial) const {
        if (!SPARSE) { partial = CAUSAL; return i; }
        const int e = sub == 1 ? i : (int)((unsigned)i / (unsigned)sub), t = i - e * sub;
        partial = e >= nf;
        const int *list = (partial ? p.sp_part_idx : p.sp_full_idx) + (long long)row * p.sp_num_kv_blocks;
        return __ldg(list + (partial ? e - nf : e)) * sub + t;
    }

    __device__ __forceinline__ bool visible(int t, bool partial) const {
        if (!SPARSE) return true;
        if (t * BC >= seqlen_k) return false;
        if (CAUSAL && partial && t * BC > row_last + offset) return false;
        return true;
    }

    __device__ __forceinline__ bool needs_mask(int t, bool partial) const {
        if ((t + 1) * BC > seqlen_k) return true;
        return CAUSAL && partial && (t + 1) * BC - 1 > m0 + offset;
    }
};

} // namespace fg
