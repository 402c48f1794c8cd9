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
#pragma once
#include "fg_params.h"
#include "fg_mma.cuh"
#include "fg_softmax.cuh"
#include "fg_mask.cuh"
#include "fg_schedule.cuh"

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
                const char *src = ok ? g + (r * (int)row_bytes + ch * 16) : g;
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

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    // Causal: the heaviest query tiles first, so the tail of the grid is short.
    const int m_block = K::CAUSAL ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z, hk = h / p.group;
    const int m0 = m_block * K::BR;
    const int wrow = warp * S::WROWS;

    u16 *sQ = (u16 *)smem;
    u16 *sK = sQ + S::SMEM_Q;
    u16 *sV = sK + S::SMEM_KV;

    const char *qg = (const char *)p.q + 2 * (b * p.q_batch_stride + h * p.q_head_stride + (long long)m0 * p.q_row_stride);
    const char *kg = (const char *)p.k + 2 * (b * p.k_batch_stride + hk * p.k_head_stride);
    const char *vg = (const char *)p.v + 2 * (b * p.v_batch_stride + hk * p.v_head_stride);
    const long long qrs = 2 * p.q_row_stride, krs = 2 * p.k_row_stride, vrs = 2 * p.v_row_stride;

    Schedule<K::BR, BC, K::CAUSAL, K::SPARSE> sch;
    sch.init(p, m0, b, h);
    const int n = sch.count;

    auto issue_k = [&](int i) {
        if (i < n) {
            bool part;
            const int t = sch.tile(i, part);
            if (sch.visible(t, part))
                load_tile<K, BC, K::D, K::DP>(sK + (i % K::STAGES) * BC * LDS, kg + (long long)t * BC * krs, krs,
                                              p.seqlen_k - t * BC);
        }
        cp_async_commit();
    };
    auto issue_v = [&](int i) {
        if (i < n) {
            bool part;
            const int t = sch.tile(i, part);
            if (sch.visible(t, part))
                load_tile<K, BC, S::DV, S::DVP>(sV + (i % K::STAGES) * BC * LDS_V, vg + (long long)t * BC * vrs, vrs,
                                                p.seqlen_k - t * BC);
        }
        cp_async_commit();
    };

    // Prologue: Q with K(0) as one group, then V(0) K(1) ... K(STAGES-1).
    load_tile<K, K::BR, K::D, K::DP>(sQ, qg, qrs, p.seqlen_q - m0);
    issue_k(0);
#pragma unroll
    for (int j = 1; j < K::STAGES; ++j) { issue_v(j - 1); issue_k(j); }

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
        issue_v(i + K::STAGES - 1);

        bool part;
        const int t = sch.tile(i, part);
        const bool vis = sch.visible(t, part);
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
            if (sch.needs_mask(t, part))
                apply_mask<MT, NT_S, K::CAUSAL>(acc_s, m0 + wrow, t * BC, p.seqlen_k, p.causal_offset, part);
            if constexpr (HasMaskMod<K>::value)
                if (part) apply_mask_mod<K, MT, NT_S>(acc_s, p, b, h, m0 + wrow, t * BC);
        }

        cp_async_wait<PENDING>();
        __syncthreads();
        issue_k(i + K::STAGES);

        if (vis) {
            sm.step(acc_s, acc_o, p.scale_log2);
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
    sm.finish(p.scale, inv, lse);
    const int g = lane >> 2, c = lane & 3;
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
                if (grow < p.seqlen_q) p.lse[((long long)b * p.heads_q + h) * p.seqlen_q + grow] = lse[mt][r];
            }
        }
    }
    __syncthreads();
    char *og = (char *)p.o + 2 * (b * p.o_batch_stride + h * p.o_head_stride + (long long)m0 * p.o_row_stride);
    const long long ors = 2 * p.o_row_stride;
    constexpr int DCH = S::DV / 8, TOTAL = K::BR * DCH;
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
