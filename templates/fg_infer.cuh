// fg_infer.cuh: the inference side of the portable forward (variants
// infer=1): per-sequence lengths, GQA packing, paged K/V and split-KV.
//
// Everything here is switched on at run time by fg_fwd_params, so one
// variant serves fixed and variable lengths, contiguous and paged caches,
// split and unsplit launches:
//
//   sequence   b = blockIdx.z.  Its queries are rows q_row0.. of q (varlen:
//              cu_seqlens_q[b]; else batch b's own rows), its keys rows
//              k_row0.. of k and v, its lengths sq and sk (seqlens_k caps sk).
//   packing    p.pack = G query heads share a tile: grid.y runs over
//              heads_q / G head groups, and packed row R of a tile is query
//              qi = R / G of head blockIdx.y * G + R % G.  Decode (sq = 1)
//              with a GQA group of G fills G rows of a tile instead of one,
//              and reads each K/V tile once per group instead of G times.
//   paging     key j of sequence b is row j % page_size of page
//              block_table[b][j / page_size]; a key tile lies within one page
//              (block_n divides page_size: one look-up per tile) or spans
//              whole pages (page_size divides block_n: load_tile_paged).
//   splitting  blockIdx.x = m_block * num_splits + split; split s visits
//              its share of the tile's key tiles and writes O (normalised,
//              fp32) and lse to the workspace; the last split of a tile to
//              finish merges the shares by their logsumexp (combine_row).
#pragma once
#include "fg_params.h"
#include "fg_mma.cuh"
#include "fg_tables.cuh"

namespace fg {

// IsInfer<K>::value: whether the traits define INFER (only inference
// variants do, so the others' generated source is unchanged).
template <class K, class = int> struct IsInfer { static constexpr bool value = false; };
template <class K> struct IsInfer<K, decltype((void)K::INFER, 0)> { static constexpr bool value = K::INFER; };

struct SeqInfo {
    long long q_row0, k_row0; // first row of the sequence in q/o and in k/v (packed tensors), else 0
    int sq, sk;               // lengths
    int offset;               // causal: key j visible from query i iff j <= i + offset
};

// Sequence b's rows in a packed tensor: cu[b] .. cu[b+1]-1, at most `most`
// of them, within `total`; a bad pair is recorded and the sequence is empty.
__device__ __forceinline__ void packed_range(const int *cu, int b, int total, int most, int kind, int *err,
                                             long long &row0, int &len) {
    const int a = __ldg(cu + b), e = __ldg(cu + b + 1);
    if (a < 0 || e < a || e > total || e - a > most) {
        table_error(err, kind, b, b, a < 0 || e < a ? a : e);
        len = 0;
    } else {
        row0 = a;
        len = e - a;
    }
}

// The lengths of sequence b, every table entry checked: a bad entry is
// recorded and its sequence taken as empty (queries) or clamped (keys).
__device__ __forceinline__ SeqInfo seq_info(const fg_fwd_params &p, int b) {
    SeqInfo s;
    s.q_row0 = 0;
    s.k_row0 = 0;
    s.sq = p.seqlen_q;
    s.sk = p.seqlen_k;
    if (p.cu_seqlens_q) packed_range(p.cu_seqlens_q, b, p.total_q, p.seqlen_q, FG_TE_CU_SEQLENS_Q, p.table_err, s.q_row0, s.sq);
    if (p.cu_seqlens_k) packed_range(p.cu_seqlens_k, b, p.total_k, p.seqlen_k, FG_TE_CU_SEQLENS_K, p.table_err, s.k_row0, s.sk);
    if (p.seqlens_k) {
        const int u = __ldg(p.seqlens_k + b);
        if (u < 0 || u > s.sk) {
            table_error(p.table_err, FG_TE_SEQLENS_K, b, b, u);
            s.sk = u < 0 ? 0 : s.sk;
        } else {
            s.sk = u;
        }
    }
    s.offset = p.bottom_right ? s.sk - s.sq : 0;
    return s;
}

// Element offset of query row qi of head h of this sequence in a tensor with
// the given strides (packed tensors: the sequence's rows start at row0).
__device__ __forceinline__ long long row_offset(const fg_fwd_params &p, long long bs, long long hs, long long rs,
                                                const SeqInfo &s, int b, int h, int qi) {
    return (p.cu_seqlens_q ? s.q_row0 * rs : b * bs) + h * hs + qi * rs;
}

// Index of (b, h, qi) in the lse output: [heads_q, total_q] for varlen,
// else [batch, heads_q, seqlen_q].
__device__ __forceinline__ long long lse_index(const fg_fwd_params &p, const SeqInfo &s, int b, int h, int qi) {
    return p.cu_seqlens_q ? (long long)h * p.total_q + s.q_row0 + qi
                          : ((long long)b * p.heads_q + h) * p.seqlen_q + qi;
}

// Index of (split, b, h, qi) in the split partials.
__device__ __forceinline__ long long part_index(const fg_fwd_params &p, int split, int b, int h, int qi) {
    return (((long long)split * p.batch + b) * p.heads_q + h) * p.seqlen_q + qi;
}

// cp.async the ROWS x D query tile of packed rows m0.. (row stride DP + 8
// in shared memory); rows at or past `rows` and columns D..DP are zeros.
// qg: q at the sequence's first row of head 0.  Packed rows are not evenly
// spaced in memory, so each 16-byte chunk computes its own address.
template <int THREADS, int ROWS, int D, int DP>
__device__ __forceinline__ void load_q_packed(u16 *s, const char *qg, long long hs_bytes, long long rs_bytes, int m0,
                                              int rows, int G, int h0) {
    constexpr int CH = DP / 8, DCH = D / 8, TOTAL = ROWS * CH, LDS = DP + 8;
#pragma unroll
    for (int it = 0; it < (TOTAL + THREADS - 1) / THREADS; ++it) {
        const int c = threadIdx.x + it * THREADS;
        if (TOTAL % THREADS == 0 || c < TOTAL) {
            const int r = c / CH, ch = c - r * CH, R = m0 + r;
            const bool ok = R < rows && ch < DCH;
            const char *src = ok ? qg + (h0 + R % G) * hs_bytes + (R / G) * rs_bytes + ch * 16 : qg;
            cp_async16(smem_addr(s + r * LDS + ch * 8), src, ok ? 16 : 0);
        }
    }
}

// cp.async a ROWS x D key (or value) tile whose rows lie in several pages
// (page_size < ROWS): row r is key j0 + r, in page block_table[b][(j0 + r) /
// page_size] (checked in the kernel's page ring before this tile is
// issued; checked again here, so that a table changed under a running call
// can never send a copy out of bounds).  Rows at or past rows_valid and
// columns D..DP are zeros.  g: k (or v) at the tile's KV head.
template <int THREADS, int ROWS, int D, int DP>
__device__ __forceinline__ void load_tile_paged(u16 *s, const char *g, long long page_bytes, long long rs_bytes,
                                                const fg_fwd_params &p, int b, int j0, int rows_valid) {
    constexpr int CH = DP / 8, DCH = D / 8, LDS = DP + 8;
    // the page of row r, or -1 (not copied: zeros)
    auto page_of_row = [&](int r) -> int {
        return r < rows_valid ? page_in_slot(p.block_table, p.max_pages, p.num_pages, b, (j0 + r) / p.page_size, NULL) : -1;
    };
    if constexpr (THREADS % CH == 0) {
        // Each thread keeps one column chunk and steps down the rows; all
        // its look-ups are issued before any copy (a copy is an asm
        // statement the compiler keeps in order: interleaved, every
        // look-up's latency would stall the next copy).  The rows' table
        // slots and offsets in their pages are stepped, not divided: the
        // page size is a run-time value, and a division per row (its
        // dependent chain of ~20 instructions) made these tiles slower than
        // one-page tiles (ncu, H200: issue-latency bound, 20% of DRAM).
        constexpr int RSTEP = THREADS / CH, ITERS = (ROWS + RSTEP - 1) / RSTEP;
        const int r0 = threadIdx.x / CH, ch = threadIdx.x % CH;
        int pg[ITERS], off[ITERS];
        int slot = j0 / p.page_size, in = j0 - slot * p.page_size + r0; // row r0's slot and offset
        while (in >= p.page_size) { in -= p.page_size; ++slot; }
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int r = r0 + it * RSTEP;
            off[it] = in;
            pg[it] = r < ROWS && r < rows_valid ? page_in_slot(p.block_table, p.max_pages, p.num_pages, b, slot, NULL) : -1;
            in += RSTEP;
            while (in >= p.page_size) { in -= p.page_size; ++slot; } // at most RSTEP / 16 steps (page_size >= 16)
        }
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int r = r0 + it * RSTEP;
            if (ROWS % RSTEP == 0 || r < ROWS) {
                const bool ok = pg[it] >= 0 && (DCH == CH || ch < DCH);
                const char *src = ok ? g + pg[it] * page_bytes + (long long)off[it] * rs_bytes + ch * 16 : g;
                cp_async16(smem_addr(s + r * LDS + ch * 8), src, ok ? 16 : 0);
            }
        }
    } else {
        constexpr int TOTAL = ROWS * CH;
#pragma unroll
        for (int it = 0; it < (TOTAL + THREADS - 1) / THREADS; ++it) {
            const int c = threadIdx.x + it * THREADS;
            if (TOTAL % THREADS == 0 || c < TOTAL) {
                const int r = c / CH, ch = c - r * CH;
                const int page = ch < DCH ? page_of_row(r) : -1;
                const bool ok = page >= 0;
                const char *src = ok ? g + page * page_bytes + (long long)((j0 + r) % p.page_size) * rs_bytes + ch * 16 : g;
                cp_async16(smem_addr(s + r * LDS + ch * 8), src, ok ? 16 : 0);
            }
        }
    }
}

// The same copy for a page size PS known at compile time (a power of two
// under ROWS, at least the row step): row r0 + it * RSTEP of the tile lies
// in page slot j0 / PS + it * RSTEP / PS whatever the thread's r0 (r0 <
// RSTEP <= PS, and j0 a multiple of PS), so the tile's ROWS / PS table
// entries are loaded once (the same address in every thread: one
// broadcast each) and each row's source is that page plus a constant row
// offset.  The stepped version above spends ~30 instructions a row on its
// page walk and look-ups (ncu, H200, b=16 kv 32k pages of 16: 3x the
// instructions of one-page tiles, issue-bound at 41% of DRAM).
template <int THREADS, int ROWS, int D, int DP, int PS>
__device__ __forceinline__ void load_tile_pages(u16 *s, const char *g, long long page_bytes, long long rs_bytes,
                                                const fg_fwd_params &p, int b, int j0, int rows_valid) {
    constexpr int CH = DP / 8, DCH = D / 8, LDS = DP + 8, RSTEP = THREADS / CH, ITERS = (ROWS + RSTEP - 1) / RSTEP,
                  NP = ROWS / PS;
    static_assert(THREADS % CH == 0 && PS % RSTEP == 0 && ROWS % PS == 0, "rows of a page per thread");
    const int *slots = p.block_table + (long long)b * p.max_pages + j0 / PS;
    const char *pg[NP]; // each page's first row at this thread's row and column chunk, or null
    const long long mine = (long long)(threadIdx.x / CH) * rs_bytes + (threadIdx.x % CH) * 16;
#pragma unroll
    for (int k = 0; k < NP; ++k) {
        const int page = k * PS < rows_valid ? __ldg(slots + k) : -1; // the row ends at the sequence's last page
        pg[k] = (unsigned)page < (unsigned)p.num_pages ? g + page * page_bytes + mine : nullptr;
    }
    const int r0 = threadIdx.x / CH, ch = threadIdx.x % CH;
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
        const int r = r0 + it * RSTEP;
        if (ROWS % RSTEP == 0 || r < ROWS) {
            const char *base = pg[it * RSTEP / PS];
            const bool ok = base && r < rows_valid && (DCH == CH || ch < DCH);
            cp_async16(smem_addr(s + r * LDS + ch * 8), ok ? base + (long long)(it * RSTEP % PS) * rs_bytes : g, ok ? 16 : 0);
        }
    }
}

// A key (or value) tile spanning pages: the compiled page sizes 16, 32 and
// 64 (vLLM's and FlashInfer's usual ones) take load_tile_pages, others the
// stepped walk.
template <int THREADS, int ROWS, int D, int DP>
__device__ __forceinline__ void load_tile_spanning(u16 *s, const char *g, long long page_bytes, long long rs_bytes,
                                                   const fg_fwd_params &p, int b, int j0, int rows_valid) {
    constexpr int RSTEP = THREADS % (DP / 8) == 0 ? THREADS / (DP / 8) : 0;
    if constexpr (RSTEP > 0 && RSTEP <= 16 && ROWS > 16 && ROWS % 16 == 0)
        if (p.page_size == 16) return load_tile_pages<THREADS, ROWS, D, DP, 16>(s, g, page_bytes, rs_bytes, p, b, j0, rows_valid);
    if constexpr (RSTEP > 0 && RSTEP <= 32 && ROWS > 32 && ROWS % 32 == 0)
        if (p.page_size == 32) return load_tile_pages<THREADS, ROWS, D, DP, 32>(s, g, page_bytes, rs_bytes, p, b, j0, rows_valid);
    if constexpr (RSTEP > 0 && RSTEP <= 64 && ROWS > 64 && ROWS % 64 == 0)
        if (p.page_size == 64) return load_tile_pages<THREADS, ROWS, D, DP, 64>(s, g, page_bytes, rs_bytes, p, b, j0, rows_valid);
    load_tile_paged<THREADS, ROWS, D, DP>(s, g, page_bytes, rs_bytes, p, b, j0, rows_valid);
}

// Whether this CTA is the last split of its tile to finish (then it merges
// them).  Every thread's partial stores are fenced before thread 0 counts
// the CTA in; the last one fences again before it reads the others'.  The
// counters live in the workspace, which must start zero (the merging CTA
// sets its counter back to 0); a count past the splits means it did not,
// and is recorded in the table error word.
__device__ __forceinline__ bool last_split(const fg_fwd_params &p, int tile_id, int splits, int b) {
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const int old = atomicAdd(p.split_count + tile_id, 1);
        if (old >= splits) table_error(p.table_err, FG_TE_WORKSPACE, b, tile_id, old);
        s_last = old == splits - 1;
    }
    __syncthreads();
    if (!s_last) return false;
    __threadfence();
    return true;
}

// Split-KV merge of one output row (b, h, qi) by one warp: o = sum_s w_s o_s
// with w_s = exp(lse_s - lse), lse = log sum_s exp(lse_s); splits that saw
// no key have lse_s = -inf and weigh 0; a row no split saw gets o = 0 and
// lse = -inf, like the unsplit kernel.  The partials are read past L1
// (__ldcg): other SMs wrote them.
// SINK (attention sinks): the splits' shares leave the sink out, and it
// joins the denominator here, once: lse = log(exp(sink) + sum_s exp(lse_s)),
// so a row no split saw gets o = 0 and lse = sink, as the unsplit kernel.
template <class K, int DV, bool SINK>
__device__ __forceinline__ void combine_row(const fg_fwd_params &p, const SeqInfo &s, int b, int h, int qi) {
    const int lane = threadIdx.x & 31, ns = p.num_splits;
    const float sink = SINK ? __ldg(p.sinks + h) : neg_inf();
    float mx = sink;
    for (int i = lane; i < ns; i += 32) mx = fmaxf(mx, __ldcg(p.part_lse + part_index(p, i, b, h, qi)));
#pragma unroll
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    const float LOG2E = 1.4426950408889634f;
    const float m = mx == neg_inf() ? 0.f : mx;
    float sum = 0.f;
    for (int i = lane; i < ns; i += 32) sum += exp2f((__ldcg(p.part_lse + part_index(p, i, b, h, qi)) - m) * LOG2E);
#pragma unroll
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (SINK) sum += exp2f((sink - m) * LOG2E);
    const bool empty = !(sum > 0.f);
    const float lse = empty ? neg_inf() : m + logf(sum);
    char *og = (char *)p.o + 2 * row_offset(p, p.o_batch_stride, p.o_head_stride, p.o_row_stride, s, b, h, qi);
    for (int c = 2 * lane; c < DV; c += 64) {
        float a0 = 0.f, a1 = 0.f;
        if (!empty)
            for (int i = 0; i < ns; ++i) {
                const long long idx = part_index(p, i, b, h, qi);
                const float w = exp2f((__ldcg(p.part_lse + idx) - lse) * LOG2E);
                const float2 v = __ldcg((const float2 *)(p.part_o + idx * DV + c));
                a0 += w * v.x;
                a1 += w * v.y;
            }
        *(u32 *)(og + 2 * c) = pack2<K::BF16>(a0, a1);
    }
    if (p.lse && lane == 0) p.lse[lse_index(p, s, b, h, qi)] = lse;
}

} // namespace fg
