// fg_fwd_wgmma.cuh: FlashAttention forward, Hopper path (sm_90a).
//
// One CTA computes a BR-row query tile; each warpgroup (4 warps) owns 64
// rows.  S = Q K^T is one chain of wgmma m64n{BC}k16 per key tile with both
// operands read by the tensor cores straight from (swizzled) shared memory;
// O += P V is a chain of m64n{DP}k16 with P in registers (the accumulator
// layout of S is the register A layout) and V from shared memory (MN-major,
// transposed by the instruction).  Copies are cp.async into the 128-byte
// swizzled layout, one commit group per K or V tile as in the mma.sync path,
// fenced to the async proxy before the barrier that publishes them.
//
// The generated source provides wgmma_s() and wgmma_o() with the exact
// register lists for BC and DP (templates/fwd_wgmma.lua).
#pragma once
#include "fg_params.h"
#include "fg_wgmma.cuh"
#include "fg_softmax.cuh"
#include "fg_mask.cuh"
#include "fg_schedule.cuh"

namespace fg {

template <class K> struct WgShape {
    static constexpr int THREADS = K::WGS * 128;
    static constexpr int NT_S = K::BC / 8, NT_O = K::DP / 8;
    static constexpr int KS_QK = K::DP / 16, KS_PV = K::BC / 16;
    static constexpr int Q_BYTES = K::BR * K::DP * 2, KV_BYTES = K::BC * K::DP * 2;
    static_assert(K::BR == 64 * K::WGS, "64 query rows per warpgroup");
    static_assert(K::DP % 64 == 0 && K::D == K::DP, "the wgmma path takes head dims that are multiples of 64");
    static_assert(K::BC % 16 == 0 && K::BC <= 256, "key tile");
};

// cp.async a ROWS x DP tile into the swizzled layout at smem address base.
template <class K, int ROWS>
__device__ __forceinline__ void load_tile_swz(u32 base, const char *g, long long row_bytes, int rows_valid) {
    cp_async_tile_swz<ROWS, K::DP, WgShape<K>::THREADS>(base, g, row_bytes, rows_valid);
}

template <class K>
__device__ __forceinline__ void attention_forward_wgmma(const fg_fwd_params &p, char *smem_raw) {
    typedef WgShape<K> S;
    constexpr int BC = K::BC, NT_S = S::NT_S, NT_O = S::NT_O;
    constexpr int PENDING = 2 * (K::STAGES - 1);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wg = warp >> 2, wq = warp & 3;
    const int m_block = K::CAUSAL ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z, hk = h / p.group;
    const int m0 = m_block * K::BR;

    // the swizzle is applied to absolute address bits: 1024-byte alignment
    const u32 sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
    const u32 sK = sQ + S::Q_BYTES;
    const u32 sV = sK + K::STAGES * S::KV_BYTES;

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
                load_tile_swz<K, BC>(sK + (i % K::STAGES) * S::KV_BYTES, kg + (long long)t * BC * krs, krs, p.seqlen_k - t * BC);
        }
        cp_async_commit();
    };
    auto issue_v = [&](int i) {
        if (i < n) {
            bool part;
            const int t = sch.tile(i, part);
            if (sch.visible(t, part))
                load_tile_swz<K, BC>(sV + (i % K::STAGES) * S::KV_BYTES, vg + (long long)t * BC * vrs, vrs, p.seqlen_k - t * BC);
        }
        cp_async_commit();
    };

    load_tile_swz<K, K::BR>(sQ, qg, qrs, p.seqlen_q - m0);
    issue_k(0);
#pragma unroll
    for (int j = 1; j < K::STAGES; ++j) { issue_v(j - 1); issue_k(j); }

    float acc_o[1][NT_O][4];
#pragma unroll
    for (int j = 0; j < NT_O; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_o[0][j][e] = 0.f;
    OnlineSoftmax<1, NT_S, NT_O> sm;
    sm.init();

    // K-major operands (Q, K): 64-column blocks of R rows; a k16 step is 32
    // bytes inside a 128-byte row, 8-row groups are 1024 bytes apart.
    const u32 q_wg = sQ + wg * 64 * 128;

    for (int i = 0; i < n; ++i) {
        const int stage = i % K::STAGES;
        cp_async_wait<PENDING>();
        fence_proxy_async();
        __syncthreads();
        issue_v(i + K::STAGES - 1);

        bool part;
        const int t = sch.tile(i, part);
        const bool vis = sch.visible(t, part);
        float acc_s[1][NT_S][4];
        if (vis) {
            const u32 kst = sK + stage * S::KV_BYTES;
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < S::KS_QK; ++ks) {
                const u64 da = make_desc(q_wg + (ks >> 2) * K::BR * 128 + (ks & 3) * 32, 16, 1024);
                const u64 db = make_desc(kst + (ks >> 2) * BC * 128 + (ks & 3) * 32, 16, 1024);
                wgmma_s(acc_s[0], da, db, ks > 0);
            }
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(acc_s[0]);
            if (sch.needs_mask(t, part))
                apply_mask<1, NT_S, K::CAUSAL>(acc_s, m0 + wg * 64 + wq * 16, t * BC, p.seqlen_k, p.causal_offset, part);
            if constexpr (HasMaskMod<K>::value)
                if (part) apply_mask_mod<K, 1, NT_S>(acc_s, p, b, h, m0 + wg * 64 + wq * 16, t * BC);
        }

        cp_async_wait<PENDING>();
        fence_proxy_async();
        __syncthreads();
        issue_k(i + K::STAGES);

        if (vis) {
            sm.step(acc_s, acc_o, p.scale_log2);
            u32 pa[S::KS_PV][4];
#pragma unroll
            for (int kk = 0; kk < S::KS_PV; ++kk) {
                pa[kk][0] = pack2<K::BF16>(acc_s[0][2 * kk][0], acc_s[0][2 * kk][1]);
                pa[kk][1] = pack2<K::BF16>(acc_s[0][2 * kk][2], acc_s[0][2 * kk][3]);
                pa[kk][2] = pack2<K::BF16>(acc_s[0][2 * kk + 1][0], acc_s[0][2 * kk + 1][1]);
                pa[kk][3] = pack2<K::BF16>(acc_s[0][2 * kk + 1][2], acc_s[0][2 * kk + 1][3]);
            }
            // V is MN-major for this product: one k16 step is 16 key rows
            // (2048 bytes); the 64-column blocks of d are BC*128 bytes apart.
            const u32 vst = sV + stage * S::KV_BYTES;
            reg_fence(acc_o[0]);
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < S::KS_PV; ++kk)
                wgmma_o(acc_o[0], pa[kk], make_desc(vst + kk * 2048, BC * 128, 1024));
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(acc_o[0]);
        }
    }
    cp_async_wait<0>();

    // Epilogue: normalise and write rows straight from registers.
    float inv[1][2], lse[1][2];
    sm.finish(p.scale, inv, lse);
    const int g = lane >> 2, c = lane & 3;
    const int row = wg * 64 + wq * 16 + g;
    char *og = (char *)p.o + 2 * (b * p.o_batch_stride + h * p.o_head_stride + (long long)m0 * p.o_row_stride);
    const long long ors = 2 * p.o_row_stride;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int rr = row + r * 8;
        if (m0 + rr < p.seqlen_q) {
            char *orow = og + rr * ors;
#pragma unroll
            for (int j = 0; j < NT_O; ++j)
                *(u32 *)(orow + (j * 8 + 2 * c) * 2) =
                    pack2<K::BF16>(acc_o[0][j][2 * r] * inv[0][r], acc_o[0][j][2 * r + 1] * inv[0][r]);
            if (p.lse && c == 0) p.lse[((long long)b * p.heads_q + h) * p.seqlen_q + m0 + rr] = lse[0][r];
        }
    }
}

} // namespace fg
