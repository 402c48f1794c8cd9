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
#include "fg_mma.cuh"
#include "fg_params.h"

namespace fg {

// This CTA's query tile, (batch, head), and the byte pointers and row
// strides of its Q rows and of its (GQA-shared) K and V head.
template <int BR, bool CAUSAL> struct CtaTile {
    int m0, b, h;
    const char *qg, *kg, *vg;
    long long qrs, krs, vrs;

    __device__ __forceinline__ void init(const fg_fwd_params &p) {
        // Causal: the heaviest query tiles first, so the tail of the grid is short.
        const int m_block = CAUSAL ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x;
        h = blockIdx.y;
        b = blockIdx.z;
        m0 = m_block * BR;
        const int hk = h / p.group;
        qg = (const char *)p.q + 2 * (b * p.q_batch_stride + h * p.q_head_stride + (long long)m0 * p.q_row_stride);
        kg = (const char *)p.k + 2 * (b * p.k_batch_stride + hk * p.k_head_stride);
        vg = (const char *)p.v + 2 * (b * p.v_batch_stride + hk * p.v_head_stride);
        qrs = 2 * p.q_row_stride;
        krs = 2 * p.k_row_stride;
        vrs = 2 * p.v_row_stride;
    }
};

template <int BR, int BC, bool CAUSAL, bool SPARSE> struct Schedule {
    int count;          // entries to visit
    int m0, row_last;   // first and last valid query row of the tile
    int offset, seqlen_k;
    const int *full_idx, *part_idx;
    int nf, sub;

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
            full_idx = part_idx = 0; nf = 0; sub = 1;
        } else {
            const int bi = p.sp_batch == 1 ? 0 : b;
            const int hi = p.sp_heads == 1 ? 0 : h;
            const int row = (bi * p.sp_heads + hi) * p.sp_num_q_blocks + m0 / p.sp_block_q;
            nf = p.sp_full_num[row];
            const int np = p.sp_part_num[row];
            full_idx = p.sp_full_idx + (long long)row * p.sp_num_kv_blocks;
            part_idx = p.sp_part_idx + (long long)row * p.sp_num_kv_blocks;
            sub = p.sp_sub;
            count = (nf + np) * sub;
        }
    }

    // Key tile of entry i, and whether its layout block is partial.
    __device__ __forceinline__ int tile(int i, bool &partial) const {
        if (!SPARSE) { partial = CAUSAL; return i; }
        const int e = i / sub, t = i - e * sub;
        partial = e >= nf;
        const int blk = partial ? __ldg(part_idx + (e - nf)) : __ldg(full_idx + e);
        return blk * sub + t;
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

    // One cp.async commit group for entry i: load(t) copies key tile t when
    // the entry exists and is visible; the group is committed either way,
    // so the wait counts of the main loops stay constant.
    template <class Load> __device__ __forceinline__ void issue(int i, Load load) const {
        if (i < count) {
            bool partial;
            const int t = tile(i, partial);
            if (visible(t, partial)) load(t);
        }
        cp_async_commit();
    }
};

} // namespace fg
