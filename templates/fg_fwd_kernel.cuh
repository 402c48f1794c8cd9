// fg_fwd_kernel.cuh: FlashAttention forward, portable tensor-core path.
//
// One CTA computes one BR-row query tile of one (batch, head).  Each warp
// owns MT*16 consecutive query rows (the FlashAttention-2 split: no
// cross-warp reduction, P never leaves registers).  Per key tile:
//
//   1. wait for K(i); barrier; start the copy of V(i+STAGES-1)
//   2. S = Q K(i)^T                  ldmatrix + mma.sync m16n8k16, fp32 acc
//   3. mask S where the tile straddles seqlen_k or the causal diagonal
//   4. wait for V(i); barrier; start the copy of K(i+STAGES)
//   5. online softmax: rescale O, P = exp2(S*scale*log2e - m)
//   6. O += P V(i)                   P re-packed from C to A fragments
//
// Copies are cp.async, one commit group per K or V tile, STAGES buffers
// each, so a copy has at least one GEMM to hide behind.  Shared-memory rows
// are padded by 16 bytes, which makes the 8 row addresses of every ldmatrix
// fall in distinct banks for any head dim.  The epilogue stages O through
// the Q buffer and writes 16-byte vectors.
//
// The value head dim DV (v's and o's last dim) may differ from D: the P V
// GEMM's N, the O accumulator, the V tile and the output follow DV; Q K^T
// follows D.  The Q buffer is as wide as the wider one (it stages O).
//
// Inference variants (Traits::INFER, fg_infer.cuh) add per-sequence
// lengths, GQA packing, paged K/V and split-KV; the code they need is in
// `if constexpr (INF)` branches, so the other variants compile as before.
#pragma once
#include "fg_params.h"
#include "fg_mma.cuh"
#include "fg_softmax.cuh"
#include "fg_mask.cuh"
#include "fg_schedule.cuh"
#include "fg_infer.cuh"
#include "fg_score.cuh"

namespace fg {

struct __align__(16) v4u { u32 x, y, z, w; };

// Shape constants derived from the traits the template emits.
template <class K> struct FwdShape {
    static constexpr int THREADS = K::WARPS * 32;
    static constexpr int DV = ValueDim<K>::value;   // value head dim
    static constexpr int DVP = (DV + 15) / 16 * 16; // padded
    static constexpr int LDS = K::DP + 8;           // padded row of Q and K, elements
    static constexpr int LDS_V = DVP + 8;           // padded row of V and of the staged O
    static constexpr int NT_S = K::BC / 8;          // n8 tiles of S
    static constexpr int NT_O = DVP / 8;            // n8 tiles of O
    static constexpr int KS_QK = K::DP / 16;        // k16 steps of Q K^T
    static constexpr int KS_PV = K::BC / 16;        // k16 steps of P V
    static constexpr int WROWS = K::MT * 16;        // query rows per warp
    static constexpr int SMEM_Q = K::BR * (LDS > LDS_V ? LDS : LDS_V); // elements: Q, then O
    static constexpr int SMEM_KV = K::STAGES * K::BC * LDS;            // K ring; the V ring follows
    static_assert(K::BR == K::WARPS * K::MT * 16, "BR must be warps * MT * 16");
    static_assert(K::BC % 16 == 0 && K::DP % 16 == 0, "tiles must be multiples of 16");
    static_assert(K::D % 8 == 0 && K::D <= K::DP, "head dim must be a multiple of 8");
    static_assert(DV % 8 == 0 && DV <= 256, "value head dim must be a multiple of 8 up to 256");
};

// cp.async a ROWS x D tile into shared memory (row stride DP + 8); rows at
// or past rows_valid, and columns D..DP, are written as zeros.
// When the threads divide the 16-byte chunks of a row, each thread keeps one
// column and steps down the rows by a constant: one pointer, one predicate
// per copy, and nothing per copy kept live across the main loop.
template <class K, int ROWS, int D, int DP>
__device__ __forceinline__ void load_tile(u16 *s, const char *g, long long row_bytes, int rows_valid) {
    typedef FwdShape<K> S;
    constexpr int CH = DP / 8, DCH = D / 8, T = S::THREADS, LDS = DP + 8;
    if constexpr (T % CH == 0) {
        constexpr int RSTEP = T / CH, ITERS = (ROWS + RSTEP - 1) / RSTEP;
        const int r0 = threadIdx.x / CH, ch = threadIdx.x % CH;
        const bool col_ok = DCH == CH || ch < DCH;
        const char *src = g + r0 * row_bytes + ch * 16;
        const long long step = RSTEP * row_bytes;
        const u32 dst = smem_addr(s + r0 * LDS + ch * 8);
#pragma unroll
        for (int it = 0; it < ITERS; ++it) {
            const int r = r0 + it * RSTEP;
            if (ROWS % RSTEP == 0 || r < ROWS) {
                const bool ok = col_ok && r < rows_valid;
                cp_async16(dst + it * RSTEP * LDS * 2, ok ? src + it * step : g, ok ? 16 : 0);
            }
        }
    } else {
        constexpr int TOTAL = ROWS * CH;
#pragma unroll
        for (int it = 0; it < (TOTAL + T - 1) / T; ++it) {
            const int c = threadIdx.x + it * T;
            if (TOTAL % T == 0 || c < TOTAL) {
                const int r = c / CH, ch = c - r * CH;
                const bool ok = r < rows_valid && ch < DCH;
                const char *src = ok ? g + ((long long)r * row_bytes + ch * 16) : g;
                cp_async16(smem_addr(s + r * LDS + ch * 8), src, ok ? 16 : 0);
            }
        }
    }
}

template <class K>
__device__ __forceinline__ void attention_forward(const fg_fwd_params &p, char *smem) {
    typedef FwdShape<K> S;
    constexpr int MT = K::MT, BC = K::BC, NT_S = S::NT_S, NT_O = S::NT_O, LDS = S::LDS, LDS_V = S::LDS_V;
    constexpr int PENDING = 2 * (K::STAGES - 1);   // groups allowed in flight at a wait

    constexpr bool INF = IsInfer<K>::value;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    // Inference: blockIdx.x = m_block * num_splits + split, and grid.y runs
    // over groups of p.pack query heads (fg_infer.cuh).
    const int splits = INF ? p.num_splits : 1;
    const int split = INF ? (int)(blockIdx.x % splits) : 0;
    const int m_blocks = INF ? (int)(gridDim.x / splits) : (int)gridDim.x;
    const int m_raw = INF ? (int)(blockIdx.x / splits) : (int)blockIdx.x;
    // Causal: the heaviest query tiles first, so the tail of the grid is short.
    const int m_block = K::CAUSAL ? m_blocks - 1 - m_raw : m_raw;
    const int G = INF ? p.pack : 1;
    const int h = blockIdx.y * G, b = blockIdx.z, hk = h / p.group;   // h: the tile's first head
    const int m0 = m_block * K::BR;   // first (packed) row of the tile
    const int wrow = warp * S::WROWS;

    // Lengths of this sequence: the call's, or its own (inference).
    SeqInfo seq;
    if constexpr (INF) seq = seq_info(p, b);
    else { seq.q_row0 = seq.k_row0 = 0; seq.sq = p.seqlen_q; seq.sk = p.seqlen_k; seq.offset = p.causal_offset; }
    const int rows = seq.sq * G;      // packed rows of this (sequence, head group)
    if (INF && m0 >= rows) return;    // past this sequence's end: uniform over the CTA
    // The alignment of ALiBi and the window (fg_score.cuh): the call's, or
    // (inference) this sequence's as a dense call of it alone would have:
    // 0 top-left causal (a causal variant without bottom_right), else sk - sq.
    int mod_off = p.mod_offset;
    if constexpr (INF) mod_off = K::CAUSAL && !p.bottom_right ? 0 : seq.sk - seq.sq;
    const ModAlign wa = mod_align(p, mod_off);

    u16 *sQ = (u16 *)smem;
    u16 *sK = sQ + S::SMEM_Q;
    u16 *sV = sK + S::SMEM_KV;

    const long long qrs = 2 * p.q_row_stride, krs = 2 * p.k_row_stride, vrs = 2 * p.v_row_stride;
    const char *qg, *kg, *vg;
    if constexpr (INF) {
        qg = (const char *)p.q + 2 * row_offset(p, p.q_batch_stride, p.q_head_stride, p.q_row_stride, seq, b, 0, 0);
        // paged: the page stride is the batch stride, applied per tile
        const long long kb = p.block_table ? 0 : p.cu_seqlens_k ? seq.k_row0 * p.k_row_stride : b * p.k_batch_stride;
        const long long vb = p.block_table ? 0 : p.cu_seqlens_k ? seq.k_row0 * p.v_row_stride : b * p.v_batch_stride;
        kg = (const char *)p.k + 2 * (kb + hk * p.k_head_stride);
        vg = (const char *)p.v + 2 * (vb + hk * p.v_head_stride);
    } else {
        qg = (const char *)p.q + 2 * (b * p.q_batch_stride + h * p.q_head_stride + (long long)m0 * p.q_row_stride);
        kg = (const char *)p.k + 2 * (b * p.k_batch_stride + hk * p.k_head_stride);
        vg = (const char *)p.v + 2 * (b * p.v_batch_stride + hk * p.v_head_stride);
    }

    Schedule<K::BR, BC, K::CAUSAL, K::SPARSE> sch;
    int first = 0;   // split-KV: this split's first schedule entry
    int n;
    if constexpr (INF) {
        // query index of the first and last valid packed row of the tile
        sch.init_rows(m0 / G, (min(m0 + K::BR, rows) - 1) / G, seq.sk, seq.offset);
        // the key tiles [lo, hi) to visit (a window narrows them), shared
        // out among the splits
        int lo = 0, hi = sch.count;
        if constexpr (HasWindow<K>::value) {
            window_tiles<BC>(wa, sch.m0, sch.row_last, sch.count, lo, hi);
            hi = max(lo, hi);
        }
        const int per = (hi - lo + splits - 1) / splits;
        first = lo + split * per;
        n = max(0, min(hi, first + per) - first);
    } else {
        sch.init(p, m0, b, h);
        n = sch.count;
        if constexpr (HasWindow<K>::value && !K::SPARSE) {   // only the key tiles some row's window meets (a
                                                               // sparse schedule's entries are not tiles: masked instead)
            int end;
            window_tiles<BC>(p, m0, sch.row_last, sch.count, first, end);
            n = max(0, end - first);
        }
    }

    // Paged K/V: pg[j] is the page of entry i + j (j = 0 .. STAGES+1) at
    // the top of iteration i, or -1 where the block table names no page
    // (the tile is then skipped).  Each is loaded two iterations before its
    // first use: a table look-up is a dependent global load, and in line it
    // would stall every tile's copies behind it.
    const bool paged = INF && p.block_table;
    constexpr int NPG = INF ? K::STAGES + 2 : 1;
    int pg[NPG];
    // Pages smaller than a key tile (vLLM's 16): the tile spans several, all
    // checked here (only those holding keys below seq.sk: the table row
    // ends there); -1 when any is bad, else the first.
    auto page_at = [&](int i) -> int {
        if (!paged || i >= n) return 0;
        bool part;
        const int t = sch.tile(first + i, part);
        const int slot = t * BC / p.page_size; // the one division: the tile's other pages follow in the row
        const int first_page = page_in_slot(p.block_table, p.max_pages, p.num_pages, b, slot, p.table_err);
        // the tile's other pages (page_size >= 16): unrolled, so the look-ups
        // are in flight together rather than one after another
        bool bad = first_page < 0;
#pragma unroll
        for (int k = 1; k < BC / 16; ++k) {
            const int j = k * p.page_size;
            if (j < BC && t * BC + j < seq.sk)
                bad |= page_in_slot(p.block_table, p.max_pages, p.num_pages, b, slot + k, p.table_err) < 0;
        }
        return bad ? -1 : first_page;
    };
#pragma unroll
    for (int j = 0; j < NPG; ++j) pg[j] = page_at(j);

    // The source of key tile t in k (or v) at kg (vg): contiguous, or in
    // page `page` (a valid one) when the tile lies within one page.
    auto kv_tile = [&](const char *g, long long rs, long long page_stride, int t, int page) -> const char * {
        if (paged) return g + 2LL * page * page_stride + (long long)(t * BC % p.page_size) * rs;
        return g + (long long)t * BC * rs;
    };
    auto issue_k = [&](int i, int page) {
        if (i < n) {
            bool part;
            const int t = sch.tile(first + i, part);
            u16 *dst = sK + (i % K::STAGES) * BC * LDS;
            if (!sch.visible(t, part) || (paged && page < 0)) {
            } else if (paged && p.page_size < BC) {
                load_tile_spanning<S::THREADS, BC, K::D, K::DP>(dst, kg, 2 * p.k_batch_stride, krs, p, b, t * BC, seq.sk - t * BC);
            } else {
                load_tile<K, BC, K::D, K::DP>(dst, kv_tile(kg, krs, p.k_batch_stride, t, page), krs, seq.sk - t * BC);
            }
        }
        cp_async_commit();
    };
    auto issue_v = [&](int i, int page) {
        if (i < n) {
            bool part;
            const int t = sch.tile(first + i, part);
            u16 *dst = sV + (i % K::STAGES) * BC * LDS_V;
            if (!sch.visible(t, part) || (paged && page < 0)) {
            } else if (paged && p.page_size < BC) {
                load_tile_spanning<S::THREADS, BC, S::DV, S::DVP>(dst, vg, 2 * p.v_batch_stride, vrs, p, b, t * BC, seq.sk - t * BC);
            } else {
                load_tile<K, BC, S::DV, S::DVP>(dst, kv_tile(vg, vrs, p.v_batch_stride, t, page), vrs, seq.sk - t * BC);
            }
        }
        cp_async_commit();
    };

    // Prologue: Q with K(0) as one group, then V(0) K(1) ... K(STAGES-1).
    if constexpr (INF)
        load_q_packed<S::THREADS, K::BR, K::D, K::DP>(sQ, qg, 2 * p.q_head_stride, qrs, m0, rows, G, h);
    else
        load_tile<K, K::BR, K::D, K::DP>(sQ, qg, qrs, p.seqlen_q - m0);
    issue_k(0, pg[0]);
#pragma unroll
    for (int j = 1; j < K::STAGES; ++j) { issue_v(j - 1, pg[INF ? j - 1 : 0]); issue_k(j, pg[INF ? j : 0]); }

    // Per-lane ldmatrix row/column offsets (see fg_mma.cuh for the layouts).
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 8;   // Q (A) and V (trans B)
    const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 8;    // K (B)
    const u32 q_base = smem_addr(sQ + (wrow + a_row) * LDS + a_col);
    const u32 k_base = smem_addr(sK + b_row * LDS + b_col);
    const u32 v_base = smem_addr(sV + a_row * LDS_V + a_col);

    float acc_o[MT][NT_O][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT_O; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_o[i][j][e] = 0.f;
    OnlineSoftmax<MT, NT_S, NT_O> sm;
    sm.init();
    // score modifications (fg_score.cuh): the softmax then sees logits
    constexpr bool LOGITS = LogitMods<K>::value;
    float slope = 0.f;
    if constexpr (HasAlibi<K>::value && !INF) slope = __ldg(p.alibi_slopes + b * p.alibi_batch_stride + h);
    // inference: each row's query index, head, slope (GQA packing)
    PackedRows<K, MT> pr;
    if constexpr (INF && (LOGITS || HasWindow<K>::value || HasSink<K>::value)) pr.init(p, m0 + wrow, G, h, b);
    u32 qreg[K::Q_IN_REGS ? MT : 1][K::Q_IN_REGS ? S::KS_QK : 1][4];

    for (int i = 0; i < n; ++i) {
        const int stage = i % K::STAGES;
        cp_async_wait<PENDING>();
        __syncthreads();
        if (K::Q_IN_REGS && i == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int ks = 0; ks < S::KS_QK; ++ks)
                    ldmatrix_x4(qreg[K::Q_IN_REGS ? mt : 0][K::Q_IN_REGS ? ks : 0],
                                q_base + (mt * 16 * LDS + ks * 16) * 2);
        }
        issue_v(i + K::STAGES - 1, pg[INF ? K::STAGES - 1 : 0]);

        bool part;
        const int t = sch.tile(first + i, part);
        // A warp whose rows all lie past the sequence (decode: a packed tile
        // holds group x seqlen_q rows, often fewer than 64) still helps load
        // K and V but skips the GEMMs and the softmax.
        const bool vis = sch.visible(t, part) && (!paged || pg[0] >= 0) && (!INF || m0 + wrow < rows);
        float acc_s[MT][NT_S][4];
        if (vis) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int j = 0; j < NT_S; ++j)
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc_s[mt][j][e] = 0.f;
            const u32 kst = k_base + stage * BC * LDS * 2;
#pragma unroll
            for (int ks = 0; ks < S::KS_QK; ++ks) {
                u32 qa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    if (K::Q_IN_REGS) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) qa[mt][e] = qreg[K::Q_IN_REGS ? mt : 0][K::Q_IN_REGS ? ks : 0][e];
                    } else {
                        ldmatrix_x4(qa[mt], q_base + (mt * 16 * LDS + ks * 16) * 2);
                    }
                }
#pragma unroll
                for (int np = 0; np < NT_S / 2; ++np) {
                    u32 kb[4];
                    ldmatrix_x4(kb, kst + (np * 16 * LDS + ks * 16) * 2);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<K::BF16>(acc_s[mt][2 * np], qa[mt], kb[0], kb[1]);
                        mma16816<K::BF16>(acc_s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
                    }
                }
            }
            if constexpr (LOGITS && INF) apply_logit_mods_packed<K>(acc_s, p, pr, mod_off, b, t * BC);
            else if constexpr (LOGITS) apply_logit_mods<K, MT, NT_S>(acc_s, p, slope, b, h, m0 + wrow, t * BC);
            if (sch.needs_mask(t, part))
                apply_mask<MT, NT_S, K::CAUSAL>(acc_s, m0 + wrow, t * BC, seq.sk, seq.offset, part, G);
            if constexpr (HasWindow<K>::value)
                if constexpr (INF) {
                    if (window_cuts<BC>(wa, t, sch.m0, sch.row_last)) apply_window_packed<K>(acc_s, wa, pr, t * BC);
                } else if (window_cuts<BC>(p, t, m0, sch.row_last)) {
                    apply_window<MT, NT_S>(acc_s, p, m0 + wrow, t * BC);
                }
            if constexpr (HasMaskMod<K>::value)
                if (part) apply_mask_mod<K, MT, NT_S>(acc_s, p, b, h, m0 + wrow, t * BC);
        }

        cp_async_wait<PENDING>();
        __syncthreads();
        issue_k(i + K::STAGES, pg[INF ? K::STAGES : 0]);

        if (vis) {
            sm.step(acc_s, acc_o, LOGITS ? softmax_scale_of<K>(p, 1.f) * 1.44269504088896340736f : p.scale_log2);
            const u32 vst = v_base + stage * BC * LDS_V * 2;
#pragma unroll
            for (int kk = 0; kk < S::KS_PV; ++kk) {
                // The C layout of two adjacent n8 tiles of S is the A layout
                // of one k16 step: P never leaves registers.
                u32 pa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    pa[mt][0] = pack2<K::BF16>(acc_s[mt][2 * kk][0], acc_s[mt][2 * kk][1]);
                    pa[mt][1] = pack2<K::BF16>(acc_s[mt][2 * kk][2], acc_s[mt][2 * kk][3]);
                    pa[mt][2] = pack2<K::BF16>(acc_s[mt][2 * kk + 1][0], acc_s[mt][2 * kk + 1][1]);
                    pa[mt][3] = pack2<K::BF16>(acc_s[mt][2 * kk + 1][2], acc_s[mt][2 * kk + 1][3]);
                }
#pragma unroll
                for (int np = 0; np < NT_O / 2; ++np) {
                    u32 vb[4];
                    ldmatrix_x4_trans(vb, vst + (kk * 16 * LDS_V + np * 16) * 2);
#pragma unroll
                    for (int mt = 0; mt < MT; ++mt) {
                        mma16816<K::BF16>(acc_o[mt][2 * np], pa[mt], vb[0], vb[1]);
                        mma16816<K::BF16>(acc_o[mt][2 * np + 1], pa[mt], vb[2], vb[3]);
                    }
                }
            }
        }
        if constexpr (INF) { // the page ring moves on: entry i + STAGES + 2 is loaded now
#pragma unroll
            for (int j = 0; j + 1 < NPG; ++j) pg[j] = pg[j + 1];
            pg[NPG - 1] = page_at(i + NPG);
        }
    }
    // The epilogue reuses sQ.  Every copy must have landed and every thread
    // must be past its last read first: when a tile sees no key (causal or
    // an empty sparse row) the loop above never waited for the Q copy
    // (compute-sanitizer racecheck found this on H100).
    cp_async_wait<0>();
    __syncthreads();

    // Epilogue: normalise, stage this warp's rows in its own part of sQ,
    // then write 16-byte vectors of the valid rows and columns.
    float inv[MT][2], lse[MT][2];
    if constexpr (HasSink<K>::value && INF) {
        // each row's head's sink; a split's share leaves it out (combine_row adds it once)
        float sinks[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) sinks[mt][r] = splits > 1 ? neg_inf() : __ldg(p.sinks + pr.h[mt][r]);
        sm.template finish<true>(softmax_scale_of<K>(p, p.scale), inv, lse, sinks);
    } else if constexpr (HasSink<K>::value) {
        sm.template finish<true>(softmax_scale_of<K>(p, p.scale), inv, lse, __ldg(p.sinks + h));
    } else {
        sm.finish(softmax_scale_of<K>(p, p.scale), inv, lse);
    }
    const int g = lane >> 2, c = lane & 3;
    if constexpr (INF) {
        if (splits > 1) {   // this split's share, normalised, fp32, straight from registers
#pragma unroll
            for (int mt = 0; mt < MT; ++mt)
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int R = m0 + wrow + mt * 16 + g + r * 8;
                    if (R >= rows) continue;
                    const long long idx = part_index(p, split, b, h + R % G, R / G);
                    float *dst = p.part_o + idx * S::DV;
#pragma unroll
                    for (int j = 0; j < NT_O; ++j) {
                        const int col = j * 8 + 2 * c;
                        if (col < S::DV)
                            *(float2 *)(dst + col) = make_float2(acc_o[mt][j][2 * r] * inv[mt][r], acc_o[mt][j][2 * r + 1] * inv[mt][r]);
                    }
                    if (c == 0) p.part_lse[idx] = lse[mt][r];
                }
            // The last split of this tile to finish merges them all (no
            // second kernel: one launch per call, no gap on the GPU).
            const int tile_id = (b * (int)gridDim.y + (int)blockIdx.y) * m_blocks + m_block;
            if (last_split(p, tile_id, splits, b)) {
                const int nrows = min(K::BR, rows - m0);
                for (int r = warp; r < nrows; r += K::WARPS) {
                    const int R = m0 + r;
                    combine_row<K, S::DV, HasSink<K>::value>(p, seq, b, h + R % G, R / G);
                }
                __syncthreads();
                if (tid == 0) p.split_count[tile_id] = 0;   // the workspace stays zero between runs
            }
            return;
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        const int row = wrow + mt * 16 + g;
#pragma unroll
        for (int j = 0; j < NT_O; ++j) {
            const int col = j * 8 + 2 * c;
            *(u32 *)(sQ + row * LDS_V + col) = pack2<K::BF16>(acc_o[mt][j][0] * inv[mt][0], acc_o[mt][j][1] * inv[mt][0]);
            *(u32 *)(sQ + (row + 8) * LDS_V + col) = pack2<K::BF16>(acc_o[mt][j][2] * inv[mt][1], acc_o[mt][j][3] * inv[mt][1]);
        }
        if (p.lse && c == 0) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int grow = m0 + row + r * 8;
                if constexpr (INF) {
                    if (grow < rows) p.lse[lse_index(p, seq, b, h + grow % G, grow / G)] = lse[mt][r];
                } else if (grow < p.seqlen_q) {
                    p.lse[((long long)b * p.heads_q + h) * p.seqlen_q + grow] = lse[mt][r];
                }
            }
        }
    }
    __syncthreads();
    const long long ors = 2 * p.o_row_stride;
    constexpr int DCH = S::DV / 8, TOTAL = K::BR * DCH;
    if constexpr (INF) {   // packed rows are not evenly spaced: one address per row
        char *og = (char *)p.o + 2 * row_offset(p, p.o_batch_stride, p.o_head_stride, p.o_row_stride, seq, b, h, 0);
        const long long ohs = 2 * p.o_head_stride;
#pragma unroll
        for (int it = 0; it < (TOTAL + S::THREADS - 1) / S::THREADS; ++it) {
            const int cc = tid + it * S::THREADS;
            if (TOTAL % S::THREADS == 0 || cc < TOTAL) {
                const int r = cc / DCH, ch = cc - r * DCH, R = m0 + r;
                if (R < rows)
                    *(v4u *)(og + (R % G) * ohs + (R / G) * ors + ch * 16) = *(const v4u *)(sQ + r * LDS_V + ch * 8);
            }
        }
        return;
    }
    char *og = (char *)p.o + 2 * (b * p.o_batch_stride + h * p.o_head_stride + (long long)m0 * p.o_row_stride);
#pragma unroll
    for (int it = 0; it < (TOTAL + S::THREADS - 1) / S::THREADS; ++it) {
        const int cc = tid + it * S::THREADS;
        if (TOTAL % S::THREADS == 0 || cc < TOTAL) {
            const int r = cc / DCH, ch = cc - r * DCH;
            if (m0 + r < p.seqlen_q)
                *(v4u *)(og + r * ors + ch * 16) = *(const v4u *)(sQ + r * LDS_V + ch * 8);
        }
    }
}

} // namespace fg
