// fg_bwd_wgmma_cols.cuh: FlashAttention backward, Hopper path (sm_90a), for
// head dim 256: the main kernel with dK and dV split across the two
// warpgroups by columns.  fg_bwd_wgmma.cuh gives each warpgroup 64 keys and
// all columns of their dK and dV; at 256 columns that is 256 fp32 registers
// per thread for the two accumulators alone, so here the CTA owns BN = 64
// keys and warpgroup w owns columns 128w .. 128w + 127 of dK, dV and dQ.
// The preprocess and the dQ conversion are fg_bwd_kernel.cuh's (same
// workspace, dQ accumulator in chunk order).
//
// Per query block of BM = 64 rows that sees the key block, in lockstep:
//
//   phase 1   S^T  = K Q_w^T    wgmma m64n32k16 SS, both K-major: warpgroup w
//             dP^T = V dO_w^T   takes queries 32w .. 32w + 31, all 64 keys
//             P^T = exp2(S^T * scale*log2e - lse*log2e), masked;
//             dS^T = P^T * (dP^T - D); both to shared memory [key][query]
//             (each warpgroup its 32 query columns), barrier
//   phase 2   dV_w += P^T dO_w  wgmma m64n128k16 SS: A = P^T K-major,
//             dK_w += dS^T Q_w  B = the warpgroup's 128 columns MN-major
//             dQ_w  = dS K_w    wgmma m64n128k16 SS, both MN-major
//             barrier; dQ_w staged in the accumulator's chunk order and
//             added by one bulk reduction (cp.reduce.async.bulk .add.f32)
//
// Shared memory (227 KB at most): K, V (32 KB each), Q in two stages (the
// next block's loads while this one computes), dO in one (reloaded after
// phase 2 and the dQ staging, covered by the next block's S^T GEMM), and one 64 KB
// region that holds P^T and dS^T in phase 2 and the two warpgroups' dQ
// staging after it (the P^T writes of the next block wait until the last
// reduction has read the staging).  No empty barriers: every load is issued
// after a barrier that follows the last read of its buffer.  Two ways to
// load (Traits::TMA, as fg_bwd_wgmma.cuh): TMA (wgmma=2) by one thread,
// boxes of the tensor maps and 256-byte bulk copies of the padded lse2 and
// D rows; cp.async (wgmma=1) by every thread.
//
// The generated source provides wgmma_st (m64n32, SS), wgmma_kv (m64n128,
// SS, B transposed) and wgmma_dq (m64n128, SS, both transposed)
// (templates/bwd_wgmma.lua).
#pragma once
#include "fg_bwd_kernel.cuh"
#include "fg_bwd_wgmma.cuh" // bulk reductions, cp_async4, cp_async_arrive
#include "fg_wgmma.cuh"

namespace fg {

template <class K> struct BwcShape {
    static constexpr int D = K::D, DV = ValueDim<K>::value, HALF = D / 2;
    static constexpr int BM = K::BM, BN = K::BN, THREADS = 256;
    static constexpr int Q_BYTES = BM * D * 2, DO_BYTES = BM * DV * 2, K_BYTES = BN * D * 2, V_BYTES = BN * DV * 2;
    static constexpr int PS_BYTES = BN * BM * 2;     // P^T or dS^T, [key][query]
    static constexpr int ST_BYTES = BM * HALF * 4;   // a warpgroup's dQ columns, fp32, chunk order
    // [align 1024] K | V | Q x2 | dO | P^T, dS^T / dQ staging x2 | lse x2 | D | fullq x2, fulldo
    static constexpr int V_OFF = K_BYTES, Q_OFF = V_OFF + V_BYTES, DO_OFF = Q_OFF + 2 * Q_BYTES, A_OFF = DO_OFF + DO_BYTES,
                         L_OFF = A_OFF + 2 * ST_BYTES, D_OFF = L_OFF + 2 * BM * 4, BAR_OFF = D_OFF + BM * 4;
    static constexpr int SMEM = 1024 + BAR_OFF + 4 * 8; // fullq x2, fulldo, kv
    static_assert(D == 256 && DV == 256, "head dims 256 (fg_bwd_wgmma.cuh takes 64 and 128)");
    static_assert(BM == 64 && BN == 64 && K::WARPS == 8, "two warpgroups, 64 keys, 64-row query blocks");
    static_assert(2 * PS_BYTES <= 2 * ST_BYTES, "P^T and dS^T inside the staging region");
    static_assert(SMEM <= 232448, "227 KB of shared memory per block");
    static_assert(DqFrag<K>::value, "the accumulator in chunk order (K::DQ_FRAG)");
};

// cp.async of a ROWS x 256 tile into the swizzled layout (swz_offset) by 256
// threads, rows at or past rows_valid zeros: thread t copies 16-byte chunk
// t % 32 of rows t / 32 + 8i.  The loop stays rolled so that its addresses
// are two induction variables, not eight pointers that ptxas hoists out of
// the block loop and spills next to the 192 accumulator registers.
template <int ROWS>
__device__ __forceinline__ void cp_async_tile256(u32 base, const char *g, long long row_bytes, int rows_valid) {
    const int j = threadIdx.x & 31, r0 = threadIdx.x >> 5;
    u32 dst = base + swz_offset<ROWS>(r0, j);
    const char *src = g + r0 * row_bytes + j * 16;
#pragma unroll 1
    for (int r = r0; r < ROWS; r += 8, dst += 1024, src += 8 * row_bytes) {
        const bool ok = r < rows_valid;
        cp_async16(dst, ok ? src : g, ok ? 16 : 0);
    }
}

template <class K>
__device__ __forceinline__ void attention_backward_wgmma_cols(const fg_bwd_params &p, const fg_bwd_tma_params *tm,
                                                              char *smem_raw) {
    typedef BwcShape<K> S;
    constexpr int BM = S::BM, BN = S::BN, D = S::D, DV = S::DV, HALF = S::HALF;
    const u32 raw = smem_addr(smem_raw), base = (raw + 1023u) & ~1023u; // the swizzle uses absolute address bits
    const float *sL = (const float *)(smem_raw + (base - raw) + S::L_OFF), *sD = (const float *)(smem_raw + (base - raw) + S::D_OFF);
    const u32 l_s = base + S::L_OFF, d_s = base + S::D_OFF;
    const u32 fullq0 = base + S::BAR_OFF, fulldo = fullq0 + 16, kv_bar = fullq0 + 24; // Q stage s: fullq0 + 8s
    const int tid = threadIdx.x;
    const int w = __shfl_sync(0xffffffffu, tid >> 7, 0); // warp-uniform for ptxas (C7520)
    const int wq = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const bool elected = (tid & 127) == 0;
    int kb, hk, b;
    bwd_block_coords<K::LPT, D, DV>(p, kb, hk, b); // causal: longest first (bwd_wgmma.lua lpt)
    const int n0 = kb * BN;
    const u32 k_s = base, v_s = base + S::V_OFF, do_s = base + S::DO_OFF;
    const u32 pt_s = base + S::A_OFF, ds_s = pt_s + S::PS_BYTES, st = base + S::A_OFF + w * S::ST_BYTES;

    if (tid == 0) {
        // TMA: the issuing thread's arrival and the bytes; cp.async: every
        // thread's copies have landed
        for (int s = 0; s < 3; ++s) mbar_init(fullq0 + 8 * s, K::TMA ? 1 : S::THREADS);
        mbar_init(kv_bar, 1);
        mbar_init_fence();
    }
    __syncthreads();

    int m_first;
    const int m_end = bwd_query_blocks<K::CAUSAL, BM>(p, n0, m_first);
    const int per_head = m_end - m_first, total = per_head * p.group;
    auto head_of = [&](int it) { return hk * p.group + it / per_head; };
    auto row_of = [&](int it) { return (m_first + it % per_head) * BM; };
    // one 4-byte row value (lse2 or D, padded rows) per thread of the first 64
    auto load_rows = [&](u32 dst, const float *src, int it) {
        if (tid < BM) cp_async4(dst + tid * 4, src + ((long long)b * p.heads_q + head_of(it)) * p.rows_pad + row_of(it) + tid, 4);
    };
    // TMA: a tile of 64 rows by the tensor map (4 boxes of 64 columns) and
    // its 64 row values, on one barrier; thread 0 only
    auto tma_rows = [&](u32 dst, const fg_tmap *map, u32 rows_dst, const float *rows, int it, u32 bar) {
        const int h = head_of(it), m0 = row_of(it);
        mbar_arrive_expect_tx(bar, S::Q_BYTES + BM * 4);
#pragma unroll
        for (int cb = 0; cb < D / 64; ++cb) tma_load_4d(dst + cb * BM * 128, map, bar, cb * 64, m0, h, b);
        bulk_load(rows_dst, rows + ((long long)b * p.heads_q + h) * p.rows_pad + m0, BM * 4, bar);
    };
    auto load_q = [&](int it, int s) {
        if constexpr (K::TMA) {
            if (tid == 0) tma_rows(base + S::Q_OFF + s * S::Q_BYTES, &tm->q, l_s + s * BM * 4, p.lse2, it, fullq0 + 8 * s);
            return;
        }
        const int h = head_of(it), m0 = row_of(it);
        cp_async_tile256<BM>(base + S::Q_OFF + s * S::Q_BYTES,
                                             (const char *)p.q + 2 * (b * p.q_s[0] + h * p.q_s[1] + (long long)m0 * p.q_s[2]),
                                             2 * p.q_s[2], p.seqlen_q - m0);
        load_rows(l_s + s * BM * 4, p.lse2, it);
        cp_async_arrive(fullq0 + 8 * s);
    };
    auto load_do = [&](int it) {
        if constexpr (K::TMA) {
            if (tid == 0) tma_rows(do_s, &tm->dout, d_s, p.dsum, it, fulldo);
            return;
        }
        const int h = head_of(it), m0 = row_of(it);
        cp_async_tile256<BM>(do_s, (const char *)p.dout + 2 * (b * p.do_s[0] + h * p.do_s[1] + (long long)m0 * p.do_s[2]),
                                              2 * p.do_s[2], p.seqlen_q - m0);
        load_rows(d_s, p.dsum, it);
        cp_async_arrive(fulldo);
    };

    float acc_dv[HALF / 8][4], acc_dk[HALF / 8][4];
#pragma unroll
    for (int j = 0; j < HALF / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dv[j][e] = acc_dk[j][e] = 0.f;

    if constexpr (K::TMA) {
        // nothing is loaded for a key block no query block sees: no copy is
        // left in flight when the CTA exits
        if (total > 0 && tid == 0) bwd_tma_kv<BN, D, DV>(tm, k_s, v_s, kv_bar, n0, hk, b);
        if (total > 0) {
            load_q(0, 0);
            load_do(0);
            mbar_wait(kv_bar, 0);
        }
    } else {
        // K and V; the first arrivals on fullq[0] and fulldo cover them
        bwd_load_kv_swz<BN, D, DV, S::THREADS>(p, k_s, v_s, b, hk, n0);
        if (total > 0) {
            load_q(0, 0);
            load_do(0);
        } else { // K and V land before the CTA exits (cp.async.wait_group waits for committed groups only)
            cp_async_commit();
            cp_async_wait<0>();
        }
    }

    for (int it = 0; it < total; ++it) {
        const int s = it & 1;
        // stage s ^ 1 was last read by block it - 1, which every thread has
        // finished (the barrier after its phase 2)
        if (it + 1 < total) load_q(it + 1, s ^ 1);
        mbar_wait(fullq0 + 8 * s, (it >> 1) & 1);
        mbar_wait(fulldo, it & 1);
        if (!K::TMA) fence_proxy_async(); // the landed copies, to the tensor cores' (async) proxy
        const int h = head_of(it), m0 = row_of(it);
        const u32 q_s = base + S::Q_OFF + s * S::Q_BYTES;
        const float *L = sL + s * BM;

        // ---- phase 1: S^T and dP^T, 64 keys x this warpgroup's 32 queries
        float acc_s[4][4], acc_dp[4][4];
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks)
            wgmma_st(acc_s, desc_add(make_desc(k_s, 16, 1024), (ks >> 2) * BN * 128 + (ks & 3) * 32),
                     desc_add(make_desc(q_s + w * 32 * 128, 16, 1024), (ks >> 2) * BM * 128 + (ks & 3) * 32), ks > 0);
        wgmma_commit(); // S^T its own group (P_FIRST)
#pragma unroll
        for (int ks = 0; ks < DV / 16; ++ks)
            wgmma_st(acc_dp, desc_add(make_desc(v_s, 16, 1024), (ks >> 2) * BN * 128 + (ks & 3) * 32),
                     desc_add(make_desc(do_s + w * 32 * 128, 16, 1024), (ks >> 2) * BM * 128 + (ks & 3) * 32), ks > 0);
        wgmma_commit();

        // P^T (P_FIRST: while dP^T is in flight), then dS^T
        const bool need_mask = n0 + BN > p.seqlen_k || (K::CAUSAL && n0 + BN - 1 > m0 + p.causal_offset);
        if (K::P_FIRST) wgmma_wait<1>();
        else wgmma_wait<0>();
        reg_fence(acc_s);
        bwd_p_rows<K>(acc_s, L, p, need_mask, n0 + wq * 16, m0, 32 * w);
        if (K::P_FIRST) wgmma_wait<0>();
        reg_fence(acc_dp);
        bwd_ds_rows(acc_dp, acc_s, sD, 32 * w);
        // the staging region: the last block's reductions have read it
        if (elected) bulk_wait_read();
        named_bar_sync(1, 256);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int kr = wq * 16 + g + 8 * r;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const u32 off = kr * 128 + (((4 * w + j) ^ g) << 4) + 4 * c; // 128-byte swizzle, kr & 7 == g
                asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(pt_s + off), "r"(pack2<K::BF16>(acc_s[j][2 * r], acc_s[j][2 * r + 1]))
                             : "memory");
                asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(ds_s + off), "r"(pack2<K::BF16>(acc_dp[j][2 * r], acc_dp[j][2 * r + 1]))
                             : "memory");
            }
        }
        fence_proxy_async();
        named_bar_sync(1, 256); // all 64 query columns of P^T and dS^T are in place

        // ---- phase 2: this warpgroup's 128 columns of dV, dK and dQ
        float acc_dq[HALF / 8][4];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
            wgmma_kv(acc_dv, desc_add(make_desc(pt_s, 16, 1024), kk * 32), desc_add(make_desc(do_s + 2 * w * BM * 128, BM * 128, 1024), kk * 2048), 1);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
            wgmma_kv(acc_dk, desc_add(make_desc(ds_s, 16, 1024), kk * 32), desc_add(make_desc(q_s + 2 * w * BM * 128, BM * 128, 1024), kk * 2048), 1);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
            wgmma_dq(acc_dq, desc_add(make_desc(ds_s, BM * 128, 1024), kk * 2048),
                     desc_add(make_desc(k_s + 2 * w * BN * 128, BN * 128, 1024), kk * 2048), kk > 0);
        wgmma_commit();
        wgmma_wait<0>();
        reg_fence(acc_dv);
        reg_fence(acc_dk);
        reg_fence(acc_dq);
        // both warpgroups are past their reads of P^T, dS^T, dO and Q stage s
        named_bar_sync(1, 256);

        // dQ columns 128w.., staged in chunk order (dq_index: 64-column slices
        // of 4096 floats; this warpgroup's are slices 2w and 2w + 1 of the
        // block), then one bulk reduction (rows past seqlen_q add zeros)
        stage_dq_chunks(st, acc_dq);
        // the next dO after the staging: its address arithmetic needs the
        // registers that acc_dq held
        if (it + 1 < total) load_do(it + 1);
        fence_proxy_async();
        named_bar_sync(2 + w, 128);
        if (elected) {
            const long long bh = (long long)b * p.heads_q + h;
            bulk_reduce_add_f32(p.dq_accum + (bh * ((p.seqlen_q + BM - 1) / BM) + m0 / BM) * BM * D + 2 * w * 4096, st,
                                S::ST_BYTES);
        }
    }
    if (elected) bulk_wait_all(); // the staging is read before the CTA's shared memory goes

    // ---- dK (scaled) and dV: 64 keys, this warpgroup's 128 columns
    bwd_store_dkdv<K>(p, acc_dk, acc_dv, b, hk, n0, 0, HALF * w);
}

} // namespace fg
