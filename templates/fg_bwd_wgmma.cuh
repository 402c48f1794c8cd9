// fg_bwd_wgmma.cuh: FlashAttention backward, Hopper path (sm_90a): the
// main kernel on wgmma.  The preprocess (D = rowsum(dO * O), zeroed dQ
// accumulator) and the dQ conversion are fg_bwd_kernel.cuh's, with the same
// workspace, so only bwd_main differs between the two paths.
//
// One CTA per (key block of BN = 128 keys, kv head, batch), two warpgroups;
// warpgroup w owns keys 64w .. 64w + 63 of the block.  K and V stay in
// shared memory, dK and dV of the warpgroup's 64 keys in its registers (the
// m64 accumulator layout).  For each query head of the GQA group and each
// query block of BM = 64 rows that sees the key block:
//
//   S^T  = K_w Q^T      wgmma m64n64k16, SS, both K-major
//   dP^T = V_w dO^T     wgmma m64n64k16, SS, both K-major
//   P^T  = exp2(S^T * scale*log2e - lse*log2e), masked (lse = -inf -> 0)
//   dS^T = P^T * (dP^T - D)
//   dV  += P^T dO       wgmma m64n{DV}k16, RS: P^T straight from the
//                       accumulator registers, dO MN-major
//   dK  += dS^T Q       wgmma m64n{D}k16, RS
//   dQ   = dS K         wgmma m64n{N}k16, SS, both MN-major: dS^T stored to
//                       shared memory as [key][query] is dS MN-major;
//                       D = 64: warpgroup w takes its own 64 keys (N = 64,
//                       no wait for the other warpgroup); D = 128: columns
//                       64w .. 64w + 63 over all 128 keys (N = 64, half the
//                       atomics; both warpgroups' dS^T rows first)
//   dq_accum += dQ      staged in shared memory in the accumulator
//                       registers' order, added by one bulk reduction
//                       (cp.reduce.async.bulk .add.f32) per warpgroup: the
//                       accumulator is chunked to match (dq_index,
//                       fg_bwd_kernel.cuh)
//
// The next block's Q, dO, lse and D load (cp.async into the 128-byte
// swizzled layout; lse and D through registers) while this one computes;
// one __syncthreads per block publishes them and frees the buffer just read.
// Dense variants, head dims 64 and 128 (each of D and DV); the runtime
// sends block-sparse, pattern, deterministic and other head dims to the
// mma.sync kernel (select/bwd_config.c).
//
// The generated source provides wgmma_st (m64n64, SS), wgmma_dv (RS,
// N = DV), wgmma_dk (RS, N = D) and wgmma_dq (SS, transposed, N = D or D/2) with
// their exact register lists (templates/bwd_wgmma.lua).
#pragma once
#include "fg_bwd_kernel.cuh"
#include "fg_wgmma.cuh"
#include "fg_tma.cuh" // named barriers

namespace fg {

template <class K> struct BwgShape {
    static constexpr int D = K::D, DV = ValueDim<K>::value;
    static constexpr int BM = K::BM, BN = K::BN, THREADS = 256;
    static constexpr int Q_BYTES = BM * D * 2, DO_BYTES = BM * DV * 2;
    static constexpr int K_BYTES = BN * D * 2, V_BYTES = BN * DV * 2, DS_BYTES = BN * BM * 2;
    // [align 1024] K | V | Q x2 | dO x2 | dS^T | lse x2 | D x2 (every tile 1024-aligned)
    static constexpr int V_OFF = K_BYTES, Q_OFF = V_OFF + V_BYTES, DO_OFF = Q_OFF + 2 * Q_BYTES,
                         DS_OFF = DO_OFF + 2 * DO_BYTES, ST_OFF = DS_OFF + DS_BYTES, L_OFF = ST_OFF + 2 * 4096 * 4;
    // + the dQ staging chunk of each warpgroup (64 x 64 fp32) and lse, D
    static constexpr int SMEM = 1024 + L_OFF + 4 * BM * 4;
    // dQ = dS K: D = 64 splits the keys (each warpgroup adds the share of
    // its 64 keys, N = D); D = 128 splits the columns (warpgroup w adds
    // columns 64w.., N = 64, over all BN keys: half the atomics, but it
    // reads the other warpgroup's dS^T rows)
    static constexpr bool KSPLIT = D < 128;
    static constexpr int DQ_N = KSPLIT ? D : D / 2;
    static_assert(BM == 64 && BN == 128 && K::WARPS == 8, "two warpgroups of 64 keys, 64-row query blocks");
    static_assert(D % 64 == 0 && DV % 64 == 0 && D <= 128 && DV <= 128, "head dims 64 or 128");
    static_assert(DqFrag<K>::value, "the accumulator in chunk order (K::DQ_FRAG)");
};

// Bulk reduction (the TMA unit adds bytes of fp32 from shared memory into
// global memory, asynchronously; one thread issues it) and its waits.
__device__ __forceinline__ void bulk_reduce_add_f32(float *dst, u32 src, u32 bytes) {
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
                 "cp.async.bulk.commit_group;\n" ::"l"(dst), "r"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// Accumulator fragments (rows g, g + 8; columns 8j + 2c, +1) as the register
// A operand of four k16 steps.
template <bool BF16>
__device__ __forceinline__ void pack_a(u32 (&pa)[4][4], const float (&s)[8][4]) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
        pa[kk][0] = pack2<BF16>(s[2 * kk][0], s[2 * kk][1]);
        pa[kk][1] = pack2<BF16>(s[2 * kk][2], s[2 * kk][3]);
        pa[kk][2] = pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        pa[kk][3] = pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
}

template <class K>
__device__ __forceinline__ void attention_backward_wgmma(const fg_bwd_params &p, char *smem_raw) {
    typedef BwgShape<K> S;
    constexpr int BM = S::BM, BN = S::BN, D = S::D, DV = S::DV;
    const float LOG2E = 1.4426950408889634f;
    const u32 raw = smem_addr(smem_raw), base = (raw + 1023u) & ~1023u; // the swizzle uses absolute address bits
    float *sL = (float *)(smem_raw + (base - raw) + S::L_OFF), *sD = sL + 2 * BM;
    const int tid = threadIdx.x;
    const int w = __shfl_sync(0xffffffffu, tid >> 7, 0); // warp-uniform for ptxas (C7520)
    const int wq = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const int hk = blockIdx.y, b = blockIdx.z, n0 = blockIdx.x * BN;
    const u32 k_s = base, v_s = base + S::V_OFF, ds_s = base + S::DS_OFF;

    cp_async_tile_swz<BN, D, S::THREADS>(k_s, (const char *)p.k + 2 * (b * p.k_s[0] + hk * p.k_s[1] + (long long)n0 * p.k_s[2]),
                                         2 * p.k_s[2], p.seqlen_k - n0);
    cp_async_tile_swz<BN, DV, S::THREADS>(v_s, (const char *)p.v + 2 * (b * p.v_s[0] + hk * p.v_s[1] + (long long)n0 * p.v_s[2]),
                                          2 * p.v_s[2], p.seqlen_k - n0);
    cp_async_commit();

    // Query blocks that see this key block (causal: rows i >= n0 - offset),
    // for each head of the group: block `it` is head it / per_head.
    int m_first;
    const int m_end = bwd_query_blocks<K::CAUSAL, BM>(p, n0, m_first);
    const int per_head = m_end - m_first, total = per_head * p.group;

    auto load = [&](int it, int buf) {
        const int h = hk * p.group + it / per_head, m0 = (m_first + it % per_head) * BM;
        cp_async_tile_swz<BM, D, S::THREADS>(base + S::Q_OFF + buf * S::Q_BYTES,
                                             (const char *)p.q + 2 * (b * p.q_s[0] + h * p.q_s[1] + (long long)m0 * p.q_s[2]),
                                             2 * p.q_s[2], p.seqlen_q - m0);
        cp_async_tile_swz<BM, DV, S::THREADS>(base + S::DO_OFF + buf * S::DO_BYTES,
                                              (const char *)p.dout + 2 * (b * p.do_s[0] + h * p.do_s[1] + (long long)m0 * p.do_s[2]),
                                              2 * p.do_s[2], p.seqlen_q - m0);
        cp_async_commit();
        const long long bh = (long long)b * p.heads_q + h;
        for (int i = tid; i < BM; i += S::THREADS) {
            const int row = m0 + i;
            float l = __int_as_float(0x7f800000), dd = 0.f; // +inf: P = 0 for rows past the end
            if (row < p.seqlen_q) {
                const float x = p.lse[bh * p.seqlen_q + row];
                if (x != neg_inf()) l = x * LOG2E; // a row that sees no key: P = 0
                dd = p.dsum[bh * p.seqlen_q + row];
            }
            sL[buf * BM + i] = l;
            sD[buf * BM + i] = dd;
        }
    };

    float acc_dv[DV / 8][4], acc_dk[D / 8][4];
#pragma unroll
    for (int j = 0; j < DV / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dv[j][e] = 0.f;
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dk[j][e] = 0.f;

    if (total > 0) load(0, 0);
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();

    for (int it = 0; it < total; ++it) {
        const int buf = it & 1;
        if (it + 1 < total) load(it + 1, buf ^ 1); // buf ^ 1 was last read before the barrier that ended block it - 1
        const int h = hk * p.group + it / per_head, m0 = (m_first + it % per_head) * BM;
        const u32 q_s = base + S::Q_OFF + buf * S::Q_BYTES, do_s = base + S::DO_OFF + buf * S::DO_BYTES;
        const float *L = sL + buf * BM, *Dd = sD + buf * BM;

        // ---- S^T = K_w Q^T and dP^T = V_w dO^T (64 keys x 64 queries each)
        float acc_s[8][4], acc_dp[8][4];
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks)
            wgmma_st(acc_s, make_desc(k_s + w * 64 * 128 + (ks >> 2) * BN * 128 + (ks & 3) * 32, 16, 1024),
                     make_desc(q_s + (ks >> 2) * BM * 128 + (ks & 3) * 32, 16, 1024), ks > 0);
#pragma unroll
        for (int ks = 0; ks < DV / 16; ++ks)
            wgmma_st(acc_dp, make_desc(v_s + w * 64 * 128 + (ks >> 2) * BN * 128 + (ks & 3) * 32, 16, 1024),
                     make_desc(do_s + (ks >> 2) * BM * 128 + (ks & 3) * 32, 16, 1024), ks > 0);
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(acc_s);
        reg_fence(acc_dp);

        // ---- P^T and dS^T; dS^T also to shared memory, [key][query] swizzled
        const bool need_mask = n0 + BN > p.seqlen_k || (K::CAUSAL && n0 + BN - 1 > m0 + p.causal_offset);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int kr = w * 64 + wq * 16 + g + 8 * r; // key row in the block
#pragma unroll
            for (int j = 0; j < 8; ++j) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int qc = 8 * j + 2 * c + e; // query column in the block
                    float x = fast_exp2(fmaf(acc_s[j][2 * r + e], p.scale_log2, -L[qc]));
                    if (need_mask) {
                        bool vis = n0 + kr < p.seqlen_k;
                        if (K::CAUSAL) vis = vis && n0 + kr <= m0 + qc + p.causal_offset;
                        if (!vis) x = 0.f;
                    }
                    acc_s[j][2 * r + e] = x;
                    acc_dp[j][2 * r + e] = x * (acc_dp[j][2 * r + e] - Dd[qc]);
                }
                const u32 v = pack2<K::BF16>(acc_dp[j][2 * r], acc_dp[j][2 * r + 1]);
                asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(ds_s + kr * 128 + ((j ^ g) << 4) + 4 * c), "r"(v) : "memory");
            }
        }
        u32 pa[4][4], dsa[4][4];
        pack_a<K::BF16>(pa, acc_s);
        pack_a<K::BF16>(dsa, acc_dp);
        fence_proxy_async();
        // this warpgroup's dQ staging chunk: the last block's bulk reduction has read it
        if ((tid & 127) == 0) bulk_wait_read();
        // the dS^T rows dQ reads are in place: this warpgroup's (KSPLIT) or both
        if (S::KSPLIT) named_bar_sync(1 + w, 128);
        else named_bar_sync(1, 256);

        // ---- dV += P^T dO, dK += dS^T Q, dQ share of this warpgroup
        float acc_dq[S::DQ_N / 8][4];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_dv(acc_dv, pa[kk], make_desc(do_s + kk * 2048, BM * 128, 1024));
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_dk(acc_dk, dsa[kk], make_desc(q_s + kk * 2048, BM * 128, 1024));
        if (S::KSPLIT) { // dQ (every column) over this warpgroup's 64 keys
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)
                wgmma_dq(acc_dq, make_desc(ds_s + (w * 64 + kk * 16) * 128, BM * 128, 1024),
                         make_desc(k_s + (w * 64 + kk * 16) * 128, BN * 128, 1024), kk > 0);
        } else {         // dQ columns 64w .. 64w + 63 over all BN keys
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk)
                wgmma_dq(acc_dq, make_desc(ds_s + kk * 2048, BM * 128, 1024),
                         make_desc(k_s + w * BN * 128 + kk * 2048, BN * 128, 1024), kk > 0);
        }
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(acc_dv);
        reg_fence(acc_dk);
        reg_fence(acc_dq);

        // dQ share: staged in the accumulator's chunk order (dq_index), then
        // one bulk reduction into the chunk (rows past seqlen_q add zeros
        // into the whole last chunk)
        const u32 st = base + S::ST_OFF + w * 4096 * 4;
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int r = 0; r < 2; ++r)
                asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(st + (((wq * 8 + j) * 2 + r) * 64 + lane * 2) * 4),
                             "f"(acc_dq[j][2 * r]), "f"(acc_dq[j][2 * r + 1])
                             : "memory");
        fence_proxy_async();
        named_bar_sync(3 + w, 128);
        if ((tid & 127) == 0) {
            const long long bh = (long long)b * p.heads_q + h;
            float *chunk = p.dq_accum + (bh * ((p.seqlen_q + BM - 1) / BM) + m0 / BM) * BM * D + (S::KSPLIT ? 0 : w) * 4096;
            bulk_reduce_add_f32(chunk, st, 4096 * 4);
        }

        cp_async_wait<0>(); // block it + 1 landed
        fence_proxy_async();
        __syncthreads();    // ... for every thread, and nobody reads buf any more
    }

    if ((tid & 127) == 0) bulk_wait_all(); // the staging chunks are read before the CTA's shared memory goes

    // ---- dK (scaled) and dV of this warpgroup's 64 keys
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = n0 + w * 64 + wq * 16 + g + 8 * r;
        if (row >= p.seqlen_k) continue;
        u16 *dk = (u16 *)p.dk + b * p.dk_s[0] + hk * p.dk_s[1] + (long long)row * p.dk_s[2] + 2 * c;
        u16 *dv = (u16 *)p.dv + b * p.dv_s[0] + hk * p.dv_s[1] + (long long)row * p.dv_s[2] + 2 * c;
#pragma unroll
        for (int j = 0; j < D / 8; ++j)
            *(u32 *)(dk + 8 * j) = pack2<K::BF16>(acc_dk[j][2 * r] * p.scale, acc_dk[j][2 * r + 1] * p.scale);
#pragma unroll
        for (int j = 0; j < DV / 8; ++j) *(u32 *)(dv + 8 * j) = pack2<K::BF16>(acc_dv[j][2 * r], acc_dv[j][2 * r + 1]);
    }
}

} // namespace fg
