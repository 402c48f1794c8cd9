// fg_bwd_wgmma.cuh: FlashAttention backward, Hopper path (sm_90a): the
// main kernel on wgmma.  The preprocess (D = rowsum(dO * O), zeroed dQ
// accumulator) and the dQ conversion are fg_bwd_kernel.cuh's, with the same
// workspace, so only bwd_main differs between the two paths.
//
// One CTA per (key block of BN = 128 keys, kv head, batch), two warpgroups;
// warpgroup w owns keys 64w .. 64w + 63 of the block.  K and V stay in
// shared memory, dK and dV of the warpgroup's 64 keys in its registers (the
// m64 accumulator layout).  For each query head of the GQA group and each
// query block of BM rows (64; 128 at head dims 64/64 by default,
// DQ_ROWS) that sees the key block:
//
//   S^T  = K_w Q^T      wgmma m64n{BM}k16, SS, both K-major
//   dP^T = V_w dO^T     wgmma m64n{BM}k16, SS, both K-major
//   P^T  = exp2(S^T * scale*log2e - lse*log2e), masked (lse = -inf -> 0)
//   dS^T = P^T * (dP^T - D)
//   dV  += P^T dO       wgmma m64n{DV}k16, RS: P^T straight from the
//                       accumulator registers, dO MN-major
//   dK  += dS^T Q       wgmma m64n{D}k16, RS
//   dQ   = dS K         wgmma SS, both MN-major: dS^T stored to shared
//                       memory as [key][query] is dS MN-major.  Head dim
//                       128 (Traits::DQ_COLS): warpgroup w takes dQ columns
//                       64w .. 64w + 63 over all 128 keys (m64n64, after a
//                       barrier of both warpgroups, dS^T double buffered):
//                       half the accumulator registers and one reduction
//                       per block, not two.  BM = 128 (Traits DQ_ROWS):
//                       warpgroup w takes query rows 64w .. 64w + 63, all
//                       D columns, over all 128 keys (the same barrier and
//                       double buffer, DQ_SHARED).  Else warpgroup w takes
//                       its own 64 keys, all D columns (m64n{D}, no wait
//                       for the other warpgroup's dS^T rows)
//                       Head dims 128/128 with TMA loads (Traits::DQ_LAG):
//                       block it's dQ is issued in block it + 1 beside its
//                       dV and dK, behind an mbarrier per dS^T stage (three
//                       stages), not a barrier of both warpgroups
//   dq_accum += dQ      staged in shared memory in the accumulator
//                       registers' order, added by one bulk reduction
//                       (cp.reduce.async.bulk .add.f32) per warpgroup: the
//                       accumulator is chunked by 64 rows to match
//                       (dq_index, fg_bwd_kernel.cuh)
//
// Q, dO, lse2 and D of a query block go through two stages, the next
// block's loads in flight while this one computes: full[s] publishes a
// stage, empty[s] (one arrival per warpgroup, after its barrier 3 + w)
// frees it.  Two ways to load (Traits::TMA):
//   TMA (wgmma=2)  one thread issues every load: K and V once (tensor maps,
//                  fg_bwd_tma_params, rows past the end zero-filled), per
//                  block the Q and dO boxes and a BM * 4-byte bulk copy each
//                  of lse2 and D (padded rows, fg_bwd_params), all completing
//                  full[s] by their byte count.  The first two blocks load
//                  in the prologue; warpgroup 1's elected thread, the later
//                  of the two under ping-pong, refills stage s with block
//                  it + 2 once both have released it.  The consumer threads
//                  issue nothing: no address arithmetic, no LDGSTS holding
//                  registers, no per-thread barrier arrivals (ncu, hd128:
//                  these were 16% of the warps' stall samples).
//   cp.async (wgmma=1, strides TMA cannot describe)  every thread copies
//                  16-byte chunks into the swizzled layout and arrives on
//                  full[s] (cp.async.mbarrier.arrive.noinc) when they land.
// The warpgroups take ping-pong turns for their GEMMs (bwd_turn_begin).
// Dense variants, head dims 64 and 128 (each of D and DV); the runtime
// sends block-sparse, pattern, deterministic and other head dims to the
// mma.sync kernel (select/bwd_config.c).
//
// The generated source provides wgmma_st (m64n{BM}, SS), wgmma_dv (RS,
// N = DV), wgmma_dk (RS, N = D) and wgmma_dq (SS, transposed, N = D) with
// their exact register lists (templates/bwd_wgmma.lua).
#pragma once
#include "fg_bwd_kernel.cuh"
#include "fg_wgmma.cuh"
#include "fg_tma.cuh" // named barriers
#include "fg_pipeline.cuh" // PipeState (the dS^T ring of DQ_LAG)

namespace fg {

template <class K> struct BwgShape {
    static constexpr int D = K::D, DV = ValueDim<K>::value;
    static constexpr int BM = K::BM, BN = K::BN, THREADS = 256;
    static constexpr int Q_BYTES = BM * D * 2, DO_BYTES = BM * DV * 2;
    static constexpr int K_BYTES = BN * D * 2, V_BYTES = BN * DV * 2, DS_BYTES = BN * BM * 2;
    // Traits::DQ_COLS (head dim 128): warpgroup w computes dQ columns
    // 64w .. 64w + 63 over all BN keys (dS^T of both warpgroups, double
    // buffered); else its own 64 keys' share of every column
    // BM = 128 (head dim 64, DQ_ROWS): warpgroup w computes dQ rows
    // 64w .. 64w + 63 of the query block over all BN keys.  Both read the
    // other warpgroup's dS^T rows (DQ_SHARED): dS^T double buffered, a
    // barrier of both warpgroups before dQ
    static constexpr bool DQ_COLS = K::DQ_COLS, DQ_ROWS = BM == 128, DQ_SHARED = DQ_COLS || DQ_ROWS;
    // Traits::DQ_LAG (DQ_SHARED only): block it's dQ GEMM is issued in block
    // it + 1, beside its dV and dK, once the other warpgroup's dS^T rows of
    // block it are in (ds_ready, an mbarrier per dS^T stage), instead of
    // behind a barrier of both warpgroups in block it.  The barrier held the
    // warpgroups in lockstep once a block: the one ahead waited for the other's
    // elementwise step.  Three dS^T stages: stage it % 3 is read by block it + 1's
    // dQ GEMMs, which both warpgroups have waited for before either can
    // start block it + 3 (its Q and dO load only after both release block
    // it + 1's stage)
    static constexpr bool DQ_LAG = K::DQ_LAG;
    static_assert(!DQ_LAG || DQ_SHARED, "DQ_LAG: dQ over both warpgroups' dS^T rows");
    static constexpr int DQ_N = DQ_COLS ? D / 2 : D, DS_STAGES = DQ_LAG ? 3 : DQ_SHARED ? 2 : 1;
    static constexpr int ST_BYTES = 64 * DQ_N * 4; // a warpgroup's dQ share (64 rows), fp32, chunk order
    // two stages of Q, dO, lse2 and D: the next block loads while one computes
    // (3 and 4 measured no faster at head dim 64, docs/PERF.md v12)
    static constexpr int NS = 2;
    // [align 1024] K | V | Q x NS | dO x NS | dS^T x DS_STAGES | dQ staging x2 | lse2 x NS | D x NS | full x NS, empty x NS, kv
    // (| ds_ready x 3, DQ_LAG)
    static constexpr int V_OFF = K_BYTES, Q_OFF = V_OFF + V_BYTES, DO_OFF = Q_OFF + NS * Q_BYTES,
                         DS_OFF = DO_OFF + NS * DO_BYTES, ST_OFF = DS_OFF + DS_STAGES * DS_BYTES, L_OFF = ST_OFF + 2 * ST_BYTES,
                         BAR_OFF = L_OFF + 2 * NS * BM * 4;
    static constexpr int SMEM = 1024 + BAR_OFF + (2 * NS + 1 + (DQ_LAG ? 3 : 0)) * 8;
    static_assert(!DQ_COLS || (D == 128 && BM == 64), "dQ by columns: one 64-column box per warpgroup");
    // P^T computed while dP^T is still in flight (S^T committed as its own
    // group), else after both land: measured per head dim (bwd_wgmma.lua)
    static constexpr bool P_FIRST = K::P_FIRST;
    static_assert((BM == 64 || (BM == 128 && D == 64 && DV == 64)) && BN == 128 && K::WARPS == 8,
                  "two warpgroups of 64 keys, 64-row query blocks (128 at head dims 64/64)");
    static_assert(D % 64 == 0 && DV % 64 == 0 && D <= 128 && DV <= 128, "head dims 64 or 128");
    static_assert(DqFrag<K>::value, "the accumulator in chunk order (K::DQ_FRAG)");
};

// Bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned)
// from global to shared memory, completing `bar` by its byte count.
__device__ __forceinline__ void bulk_load(u32 dst, const void *src, u32 bytes, u32 bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}

// K and V of a key block (BN rows from n0) by TMA, 64-column boxes, on
// `bar` by byte count; one thread.
template <int BN, int D, int DV>
__device__ __forceinline__ void bwd_tma_kv(const fg_bwd_tma_params *tm, u32 k_s, u32 v_s, u32 bar, int n0, int hk, int b) {
    mbar_arrive_expect_tx(bar, BN * (D + DV) * 2);
#pragma unroll
    for (int cb = 0; cb < D / 64; ++cb) tma_load_4d(k_s + cb * BN * 128, &tm->k, bar, cb * 64, n0, hk, b);
#pragma unroll
    for (int cb = 0; cb < DV / 64; ++cb) tma_load_4d(v_s + cb * BN * 128, &tm->v, bar, cb * 64, n0, hk, b);
}

// Bulk reduction (the TMA unit adds bytes of fp32 from shared memory into
// global memory, asynchronously; one thread issues it) and its waits.
__device__ __forceinline__ void bulk_reduce_add_f32(float *dst, u32 src, u32 bytes) {
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
                 "cp.async.bulk.commit_group;\n" ::"l"(dst), "r"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_wait_read() { asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
// 4-byte copy (src_bytes 0: a zero) and the barrier arrival that fires when
// every earlier cp.async of this thread has landed
__device__ __forceinline__ void cp_async4(u32 dst, const void *src, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_arrive(u32 bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// Accumulator fragments (rows g, g + 8; columns 8j + 2c, +1) as the register
// A operand of NK k16 steps.
template <bool BF16, int NK>
__device__ __forceinline__ void pack_a(u32 (&pa)[NK][4], const float (&s)[2 * NK][4]) {
#pragma unroll
    for (int kk = 0; kk < NK; ++kk) {
        pa[kk][0] = pack2<BF16>(s[2 * kk][0], s[2 * kk][1]);
        pa[kk][1] = pack2<BF16>(s[2 * kk][2], s[2 * kk][3]);
        pa[kk][2] = pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        pa[kk][3] = pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
}

// K and V of the CTA's key block (BN rows from n0) into the swizzled
// layout, by all THREADS threads; rows past seqlen_k are zeros.
template <int BN, int D, int DV, int THREADS>
__device__ __forceinline__ void bwd_load_kv_swz(const fg_bwd_params &p, u32 k_s, u32 v_s, int b, int hk, int n0) {
    cp_async_tile_swz<BN, D, THREADS>(k_s, (const char *)p.k + 2 * (b * p.k_s[0] + hk * p.k_s[1] + (long long)n0 * p.k_s[2]),
                                      2 * p.k_s[2], p.seqlen_k - n0);
    cp_async_tile_swz<BN, DV, THREADS>(v_s, (const char *)p.v + 2 * (b * p.v_s[0] + hk * p.v_s[1] + (long long)n0 * p.v_s[2]),
                                       2 * p.v_s[2], p.seqlen_k - n0);
}

// P^T of the accumulator `acc` (S^T, this thread's fragments: key rows
// key0 + g + 8r, query columns qc0 + 8j + 2c + e of the block at m0) in
// place, then dS^T = P^T (dP^T - D) into `dp` (two steps, so that P^T can be
// computed while dP^T is still in flight).  P = exp2(S * scale*log2e - l2),
// 0 where masked.
// Traits::MASK_BRANCH, default false (the column kernel's Traits lack it)
template <class K, class = void> struct MaskBranch { static constexpr bool value = false; };
template <class K> struct MaskBranch<K, decltype(void(K::MASK_BRANCH))> { static constexpr bool value = K::MASK_BRANCH; };

// P^T of the accumulator; MASK: masked where need_mask (a runtime flag when
// the caller does not branch on it)
template <class K, bool MASK, int NJ>
__device__ __forceinline__ void bwd_p_rows_(float (&acc)[NJ][4], const float *L, const fg_bwd_params &p, int key0, int m0, int qc0,
                                            bool need_mask = true) {
    const int c = threadIdx.x & 3, g = (threadIdx.x >> 2) & 7;
#pragma unroll
    for (int j = 0; j < NJ; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int qc = qc0 + 8 * j + 2 * c + e;
            const float l2 = L[qc];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float x = fast_exp2(fmaf(acc[j][2 * r + e], p.scale_log2, -l2));
                if (MASK && need_mask) {
                    const int key = key0 + g + 8 * r;
                    bool vis = key < p.seqlen_k;
                    if (K::CAUSAL) vis = vis && key <= m0 + qc + p.causal_offset;
                    if (!vis) x = 0.f;
                }
                acc[j][2 * r + e] = x;
            }
        }
}
// Traits::MASK_BRANCH (head dims 64/64 causal): the mask's compares and
// selects only in the blocks that need them (the causal diagonal, the last
// key block), a uniform branch between two copies of the loop; else
// predicates, two instructions an element in every block.  Measured
// (test_gpu_backward bench, H200, 128-row query blocks, docs/PERF.md v21):
// causal 292 -> 391 TFLOP/s at 4k and 337 -> 465 at 16k, but non-causal
// 468 -> 436 and 504 -> 466, where only the last key block masks
template <class K, int NJ>
__device__ __forceinline__ void bwd_p_rows(float (&acc)[NJ][4], const float *L, const fg_bwd_params &p, bool need_mask, int key0,
                                           int m0, int qc0) {
    if constexpr (MaskBranch<K>::value) {
        if (need_mask) bwd_p_rows_<K, true>(acc, L, p, key0, m0, qc0);
        else bwd_p_rows_<K, false>(acc, L, p, key0, m0, qc0);
    } else {
        bwd_p_rows_<K, true>(acc, L, p, key0, m0, qc0, need_mask);
    }
}
template <int NJ>
__device__ __forceinline__ void bwd_ds_rows(float (&dp)[NJ][4], const float (&pt)[NJ][4], const float *Dd, int qc0) {
    const int c = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < NJ; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const float dd = Dd[qc0 + 8 * j + 2 * c + e];
#pragma unroll
            for (int r = 0; r < 2; ++r) dp[j][2 * r + e] = pt[j][2 * r + e] * (dp[j][2 * r + e] - dd);
        }
}

// Rows of an m64 accumulator fragment (this warp's 16 rows kr0 + g + 8r,
// columns 8 (j0 + j) + 2c + e) in 16 bits to shared memory laid out
// [64-column box][row][64 columns], 128-byte rows swizzled by row & 7 (the
// wgmma operand layout), by stmatrix.x4: tiles (r 0, j), (r 1, j), (r 0,
// j + 1), (r 1, j + 1) an instruction, lane l addressing row l & 7 of tile
// l >> 3.  The bytes of one st.shared.u32 per register pair in a quarter of
// the instructions (ncu, hd128: 34M STS against FlashAttention-4's 8.5M
// STS + 4.5M STSM, docs/PERF.md v22).  j0 a multiple of 4.
template <class K, int NJ>
__device__ __forceinline__ void stsm_rows(u32 dst, int kr0, int j0, int box_bytes, const float (&acc)[NJ][4]) {
    static_assert(NJ % 2 == 0, "pairs of 8-column tiles");
    const int lane = threadIdx.x & 31, i = lane & 7;
    const u32 row = dst + (kr0 + i + 8 * ((lane >> 3) & 1)) * 128;
#pragma unroll
    for (int j = 0; j < NJ; j += 2) {
        const int jj = j0 + j + (lane >> 4);
        asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(row + ((j0 + j) >> 3) * box_bytes +
                                                                                               (((jj & 7) ^ i) << 4)),
                     "r"(pack2<K::BF16>(acc[j][0], acc[j][1])), "r"(pack2<K::BF16>(acc[j][2], acc[j][3])),
                     "r"(pack2<K::BF16>(acc[j + 1][0], acc[j + 1][1])), "r"(pack2<K::BF16>(acc[j + 1][2], acc[j + 1][3]))
                     : "memory");
    }
}

// A warpgroup's dQ fragments (NJ groups of 8 columns, m64 accumulator
// layout) staged at st in the fp32 accumulator's chunk order (dq_index:
// 64-column slices of 4096 floats), for one bulk reduction
template <int NJ>
__device__ __forceinline__ void stage_dq_chunks(u32 st, const float (&acc_dq)[NJ][4]) {
    const int lane = threadIdx.x & 31, wq = (threadIdx.x >> 5) & 3;
#pragma unroll
    for (int j = 0; j < NJ; ++j) // one 16-byte store a column group (512 contiguous bytes a warp: conflict-free)
        asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(st + ((j >> 3) * 4096 + (wq * 8 + (j & 7)) * 128 + lane * 4) * 4),
                     "f"(acc_dq[j][0]), "f"(acc_dq[j][1]), "f"(acc_dq[j][2]), "f"(acc_dq[j][3])
                     : "memory");
}

// dK (scaled) and dV of this thread's two key rows (m64 accumulator
// layout, warp wq of the warpgroup, rows n0 + row0 + wq*16 + g + 8r),
// columns col0 + 8j + 2c: NK column groups of dK, NV of dV.
template <class K, int NK, int NV>
__device__ __forceinline__ void bwd_store_dkdv(const fg_bwd_params &p, const float (&acc_dk)[NK][4], const float (&acc_dv)[NV][4],
                                               int b, int hk, int n0, int row0, int col0) {
    const int lane = threadIdx.x & 31, wq = (threadIdx.x >> 5) & 3, g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = n0 + row0 + wq * 16 + g + 8 * r;
        if (row >= p.seqlen_k) continue;
        u16 *dk = (u16 *)p.dk + b * p.dk_s[0] + hk * p.dk_s[1] + (long long)row * p.dk_s[2] + col0 + 2 * c;
        u16 *dv = (u16 *)p.dv + b * p.dv_s[0] + hk * p.dv_s[1] + (long long)row * p.dv_s[2] + col0 + 2 * c;
#pragma unroll
        for (int j = 0; j < NK; ++j)
            *(u32 *)(dk + 8 * j) = pack2<K::BF16>(acc_dk[j][2 * r] * p.scale, acc_dk[j][2 * r + 1] * p.scale);
#pragma unroll
        for (int j = 0; j < NV; ++j) *(u32 *)(dv + 8 * j) = pack2<K::BF16>(acc_dv[j][2 * r], acc_dv[j][2 * r + 1]);
    }
}

// Ping-pong: the warpgroups take turns to issue their GEMMs (named barrier
// 5 + w: the other warpgroup's arrival opens this one's turn), so that one's
// elementwise step runs while the tensor cores work for the other.
// Traits::TURNS says which GEMM phases take turns: bit 1 S^T/dP^T (G = 1),
// bit 2 dV/dK/dQ (G = 2); 0 lets both warpgroups issue freely.  Which is
// fastest depends on the variant (bwd_wgmma.lua, docs/PERF.md v11).
template <class K, int G> __device__ __forceinline__ void bwd_turn_begin(int w) {
    if (K::TURNS & G) named_bar_sync(5 + w, 256);
}
template <class K, int G> __device__ __forceinline__ void bwd_turn_end(int w) {
    if (K::TURNS & G) named_bar_arrive(5 + (w ^ 1), 256);
}

template <class K>
__device__ __forceinline__ void attention_backward_wgmma(const fg_bwd_params &p, const fg_bwd_tma_params *tm, char *smem_raw) {
    typedef BwgShape<K> S;
    constexpr int BM = S::BM, BN = S::BN, D = S::D, DV = S::DV;
    const u32 raw = smem_addr(smem_raw), base = (raw + 1023u) & ~1023u; // the swizzle uses absolute address bits
    constexpr int NS = S::NS;
    const float *sL = (const float *)(smem_raw + (base - raw) + S::L_OFF), *sD = sL + NS * BM;
    const u32 l_s = base + S::L_OFF, d_s = l_s + NS * BM * 4;
    const u32 full0 = base + S::BAR_OFF, empty0 = full0 + 8 * NS, kv_bar = empty0 + 8 * NS; // stage s: full0 + 8s, empty0 + 8s
    const u32 ds_ready0 = kv_bar + 8; // DQ_LAG: dS^T stage i written by both warpgroups, ds_ready0 + 8i
    const int tid = threadIdx.x;
    const int w = __shfl_sync(0xffffffffu, tid >> 7, 0); // warp-uniform for ptxas (C7520)
    const int wq = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const bool elected = (tid & 127) == 0;
    int kb, hk, b;
    bwd_block_coords<K::LPT, D, DV>(p, kb, hk, b); // causal: longest first (bwd_wgmma.lua lpt)
    const int n0 = kb * BN;
    const u32 k_s = base, v_s = base + S::V_OFF, st = base + S::ST_OFF + w * S::ST_BYTES;

    if (tid == 0) {
        for (int s = 0; s < NS; ++s) {
            // TMA: the issuing thread's arrival and the bytes; cp.async:
            // every thread's copies of the stage have landed
            mbar_init(full0 + 8 * s, K::TMA ? 1 : S::THREADS);
            mbar_init(empty0 + 8 * s, 2); // both warpgroups are done reading it
        }
        mbar_init(kv_bar, 1);
        if (S::DQ_LAG)
            for (int i = 0; i < 3; ++i) mbar_init(ds_ready0 + 8 * i, 8); // one arrival per warp
        mbar_init_fence();
    }
    __syncthreads();

    // Query blocks that see this key block (causal: rows i >= n0 - offset),
    // for each head of the group: block `it` is head it / per_head.
    int m_first;
    const int m_end = bwd_query_blocks<K::CAUSAL, BM>(p, n0, m_first);
    const int per_head = m_end - m_first, total = per_head * p.group;
    auto head_of = [&](int it) { return hk * p.group + it / per_head; }; // query head of block it
    auto row_of = [&](int it) { return (m_first + it % per_head) * BM; }; // its first query row

    // Stage s of block it, TMA: Q and dO boxes (rows past the end zeros),
    // lse2 and D rows (padded), all on full[s]; one thread.
    auto load_tma = [&](int it, int s) {
        const int h = head_of(it), m0 = row_of(it);
        const u32 bar = full0 + 8 * s;
        mbar_arrive_expect_tx(bar, S::Q_BYTES + S::DO_BYTES + 2 * BM * 4);
#pragma unroll
        for (int cb = 0; cb < D / 64; ++cb)
            tma_load_4d(base + S::Q_OFF + s * S::Q_BYTES + cb * BM * 128, &tm->q, bar, cb * 64, m0, h, b);
#pragma unroll
        for (int cb = 0; cb < DV / 64; ++cb)
            tma_load_4d(base + S::DO_OFF + s * S::DO_BYTES + cb * BM * 128, &tm->dout, bar, cb * 64, m0, h, b);
        const long long r0 = ((long long)b * p.heads_q + h) * p.rows_pad + m0;
        bulk_load(l_s + s * BM * 4, p.lse2 + r0, BM * 4, bar);
        bulk_load(d_s + s * BM * 4, p.dsum + r0, BM * 4, bar);
    };
    // The same by cp.async: every thread its chunks, then its arrival on full[s].
    auto load = [&](int it, int s) {
        const int h = head_of(it), m0 = row_of(it);
        cp_async_tile_swz<BM, D, S::THREADS>(base + S::Q_OFF + s * S::Q_BYTES,
                                             (const char *)p.q + 2 * (b * p.q_s[0] + h * p.q_s[1] + (long long)m0 * p.q_s[2]),
                                             2 * p.q_s[2], p.seqlen_q - m0);
        cp_async_tile_swz<BM, DV, S::THREADS>(base + S::DO_OFF + s * S::DO_BYTES,
                                              (const char *)p.dout + 2 * (b * p.do_s[0] + h * p.do_s[1] + (long long)m0 * p.do_s[2]),
                                              2 * p.do_s[2], p.seqlen_q - m0);
        const long long row0 = ((long long)b * p.heads_q + h) * p.rows_pad + m0;
        if (tid < 2 * BM) {
            const int i = tid & (BM - 1);
            cp_async4((tid < BM ? l_s : d_s) + (s * BM + i) * 4, (tid < BM ? p.lse2 : p.dsum) + row0 + i, 4);
        }
        cp_async_arrive(full0 + 8 * s);
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

    if constexpr (K::TMA) {
        // nothing is loaded for a key block no query block sees (its dK and
        // dV are zeros): no copy is left in flight when the CTA exits
        if (total > 0 && tid == 0) {
            bwd_tma_kv<BN, D, DV>(tm, k_s, v_s, kv_bar, n0, hk, b);
            load_tma(0, 0);
            if (total > 1) load_tma(1, 1);
        }
        if (total > 0) mbar_wait(kv_bar, 0);
    } else {
        // K and V, then the first query block: the first arrival on full[0]
        // covers both
        bwd_load_kv_swz<BN, D, DV, S::THREADS>(p, k_s, v_s, b, hk, n0);
        if (total > 0) {
            load(0, 0);
        } else { // K and V land before the CTA exits: they were never committed to a
            cp_async_commit(); // group, and cp.async.wait_group waits for committed groups only
            cp_async_wait<0>();
        }
    }
    // dQ = dS K of the block whose dS^T is in stage ds_s: DQ_COLS, columns
    // 64w.. over all BN keys (K box w); DQ_ROWS, query rows 64w.. (query box
    // w of dS^T), all of K; else this warpgroup's 64 keys, all columns.  In
    // the open wgmma group (the caller commits)
    auto issue_dq = [&](float (&acc_dq)[S::DQ_N / 8][4], u32 ds_s) {
        if constexpr (S::DQ_SHARED) {
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk)
                wgmma_dq(acc_dq, desc_add(make_desc(ds_s + (S::DQ_ROWS ? w * BN * 128 : 0), BN * 128, 1024), kk * 16 * 128),
                         desc_add(make_desc(k_s + (S::DQ_COLS ? w * BN * 128 : 0), BN * 128, 1024), kk * 16 * 128), kk > 0);
        } else {
#pragma unroll
            for (int kk = 0; kk < 4; ++kk)
                wgmma_dq(acc_dq, desc_add(make_desc(ds_s + w * 64 * 128, BM * 128, 1024), kk * 16 * 128),
                         desc_add(make_desc(k_s + w * 64 * 128, BN * 128, 1024), kk * 16 * 128), kk > 0);
        }
    };
    // dQ share, staged in the accumulator's chunk order (dq_index: 64-column
    // slices of 4096 floats; DQ_COLS: this warpgroup's slice w; DQ_ROWS:
    // all D columns of its 64 query rows over all keys; else all D
    // columns of its keys); the staging is free (the caller's barrier after
    // the elected thread's bulk_wait_read)
    auto stage_dq = [&](const float (&acc_dq)[S::DQ_N / 8][4]) {
        stage_dq_chunks(st, acc_dq);
        fence_proxy_async();
    };
    // The staged dQ of the block at (head hq, row m0q) by one bulk reduction
    // into its 64-row chunk of the accumulator (rows past seqlen_q add
    // zeros); the elected thread, after the warpgroup's barrier over the
    // staging.  DQ_ROWS: rows 64w.. of the block (none when they are all past
    // seqlen_q: the chunk would be the next head's); DQ_COLS: its 64-column
    // slice w
    auto reduce_dq = [&](int hq, int m0q) {
        const int dq_row = m0q + (S::DQ_ROWS ? 64 * w : 0);
        if (elected && dq_row < p.seqlen_q) {
            const long long chunk = ((long long)b * p.heads_q + hq) * ((p.seqlen_q + 63) / 64) + dq_row / 64;
            bulk_reduce_add_f32(p.dq_accum + chunk * 64 * D + (S::DQ_COLS ? w * 4096 : 0), st, S::ST_BYTES);
        }
    };

    if (K::TURNS && w == 1) named_bar_arrive(5, 256); // warpgroup 0 takes the first turn
    PipeState<3> ds_cur, ds_prev; // DQ_LAG: the dS^T stages of blocks it and it - 1
    ds_cur.reset();
    ds_prev.stage = 2; // block 0's dropped dQ reads stage 2 (see below)
    ds_prev.phase = 0;

    for (int it = 0; it < total; ++it) {
        // not it % NS: 4% slower at head dim 64 (v12).  The stage through a
        // shuffle: ptxas then knows it is warp-uniform and builds the wgmma
        // descriptors of Q, dO and dS^T in uniform registers (without it, in
        // vector registers and an R2UR pair per descriptor: ncu counted twice
        // FlashAttention-4's instructions, docs/PERF.md v22)
        const int s = __shfl_sync(0xffffffffu, it & 1, 0), ph = (it >> 1) & 1;
        if constexpr (S::DQ_LAG) { // the dS^T stages' descriptors too
            ds_cur.stage = __shfl_sync(0xffffffffu, ds_cur.stage, 0);
            ds_prev.stage = __shfl_sync(0xffffffffu, ds_prev.stage, 0);
        }
        if (!K::TMA && it + 1 < total) { // stage s ^ 1 was read by block it - 1: both warpgroups are done with it
            if (it >= 1) mbar_wait(empty0 + 8 * (s ^ 1), ((it - 1) >> 1) & 1);
            load(it + 1, s ^ 1);
        }
        mbar_wait(full0 + 8 * s, ph);
        if (!K::TMA) fence_proxy_async(); // the landed copies, to the tensor cores' (async) proxy
        const int h = head_of(it), m0 = row_of(it);
        const u32 q_s = base + S::Q_OFF + s * S::Q_BYTES, do_s = base + S::DO_OFF + s * S::DO_BYTES;
        const float *L = sL + s * BM, *Dd = sD + s * BM;

        // ---- S^T = K_w Q^T and dP^T = V_w dO^T (64 keys x BM queries each)
        // (descriptors: one make_desc per operand and block, then desc_add
        // per k-step, in uniform registers; v16's desc_add in vector
        // registers had the head dim 128 causal variant at 337
        // TFLOP/s against 413, docs/PERF.md v16)
        float acc_s[BM / 8][4], acc_dp[BM / 8][4];
        bwd_turn_begin<K, 1>(w);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < D / 16; ++ks)
            wgmma_st(acc_s, desc_add(make_desc(k_s + w * 64 * 128, 16, 1024), (ks >> 2) * BN * 128 + (ks & 3) * 32),
                     desc_add(make_desc(q_s, 16, 1024), (ks >> 2) * BM * 128 + (ks & 3) * 32), ks > 0);
        wgmma_commit(); // S^T its own group: P^T is computed while dP^T is in flight
#pragma unroll
        for (int ks = 0; ks < DV / 16; ++ks)
            wgmma_st(acc_dp, desc_add(make_desc(v_s + w * 64 * 128, 16, 1024), (ks >> 2) * BN * 128 + (ks & 3) * 32),
                     desc_add(make_desc(do_s, 16, 1024), (ks >> 2) * BM * 128 + (ks & 3) * 32), ks > 0);
        wgmma_commit();
        bwd_turn_end<K, 1>(w);

        // ---- P^T (P_FIRST: while dP^T is in flight), then dS^T; dS^T also
        // to shared memory, [key][query] swizzled
        const u32 ds_s = base + S::DS_OFF + (S::DQ_LAG ? ds_cur.stage : S::DS_STAGES > 1 ? s : 0) * S::DS_BYTES;
        const bool need_mask = n0 + BN > p.seqlen_k || (K::CAUSAL && n0 + BN - 1 > m0 + p.causal_offset);
        if (S::P_FIRST) wgmma_wait<1>(); // S^T has landed; dP^T may still run
        else wgmma_wait<0>();
        reg_fence(acc_s);
        bwd_p_rows<K>(acc_s, L, p, need_mask, n0 + w * 64 + wq * 16, m0, 0);
        if (S::P_FIRST) wgmma_wait<0>();
        reg_fence(acc_dp);
        bwd_ds_rows(acc_dp, acc_s, Dd, 0);
        stsm_rows<K>(ds_s, w * 64 + wq * 16, 0, BN * 128, acc_dp); // [64-query box][key][query]
        u32 pa[BM / 16][4], dsa[BM / 16][4];
        pack_a<K::BF16>(pa, acc_s);
        pack_a<K::BF16>(dsa, acc_dp);
        fence_proxy_async();
        if (S::DQ_LAG) { // this warp's dS^T rows are in, for the other warpgroup's dQ GEMM of the next block
            __syncwarp();
            mbar_arrive_if(ds_ready0 + 8 * ds_cur.stage, lane == 0);
        }
        if (elected) bulk_wait_read(); // the staging buffer: the last block's reduction has read it
        // this warpgroup's dS^T rows are in place, the staging is free
        // (DQ_SHARED without DQ_LAG: the barrier of both warpgroups below does both)
        if (!S::DQ_SHARED || S::DQ_LAG) named_bar_sync(1 + w, 128);

        // ---- dV += P^T dO, dK += dS^T Q, then this warpgroup's dQ share
        // (DQ_LAG: the previous block's, between dV and dK)
        float acc_dq[S::DQ_N / 8][4];
        // DQ_LAG: block it - 1's dS^T rows of both warpgroups are in (the
        // other wrote them a block ago: this wait rarely blocks); before the
        // group's first GEMM, not between its GEMMs
        if (S::DQ_LAG && it > 0) mbar_wait(ds_ready0 + 8 * ds_prev.stage, ds_prev.phase);
        bwd_turn_begin<K, 2>(w);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) wgmma_dv(acc_dv, pa[kk], desc_add(make_desc(do_s, BM * 128, 1024), kk * 2048));
        if constexpr (S::DQ_LAG) {
            // block it - 1's dS^T (ds_ready waited above), before dK and in
            // a group of its own with dV, so that its staging below runs
            // under dK.  Block 0 has no previous block: it computes a dQ of
            // stage 2, which nobody writes before both warpgroups released
            // block 0, and drops it (a branch around the wgmma makes ptxas
            // serialise every wgmma of the kernel, C7520, at 255 registers)
            issue_dq(acc_dq, base + S::DS_OFF + ds_prev.stage * S::DS_BYTES);
            wgmma_commit();
#pragma unroll
            for (int kk = 0; kk < BM / 16; ++kk) wgmma_dk(acc_dk, dsa[kk], desc_add(make_desc(q_s, BM * 128, 1024), kk * 2048));
            wgmma_commit();
            bwd_turn_end<K, 2>(w);
        } else {
#pragma unroll
            for (int kk = 0; kk < BM / 16; ++kk) wgmma_dk(acc_dk, dsa[kk], desc_add(make_desc(q_s, BM * 128, 1024), kk * 2048));
            if constexpr (S::DQ_SHARED) {
                // dV and dK are in flight while this waits (the turn ends
                // before it: the other warpgroup's turn comes before its
                // arrival here); the other warpgroup rewrites this dS^T
                // stage two blocks later, after this barrier of the next
                // block, which this warpgroup reaches only after waiting for
                // this GEMM
                wgmma_commit();
                bwd_turn_end<K, 2>(w);
                named_bar_sync(1, 256);
                wgmma_fence();
                issue_dq(acc_dq, ds_s);
                wgmma_commit();
            } else {
                issue_dq(acc_dq, ds_s);
                wgmma_commit();
                bwd_turn_end<K, 2>(w);
            }
        }
        if constexpr (S::DQ_LAG) {
            wgmma_wait<1>(); // dV and dQ; dK may still run while dQ is staged
            reg_fence(acc_dv);
            reg_fence(acc_dq);
            stage_dq(acc_dq); // block 0's dropped dQ too (a branch here, with dK in flight: C7520)
            wgmma_wait<0>();
            reg_fence(acc_dk);
        } else {
            wgmma_wait<0>();
            reg_fence(acc_dv);
            reg_fence(acc_dk);
            reg_fence(acc_dq);
            stage_dq(acc_dq);
        }
        named_bar_sync(3 + w, 128);
        // every thread of this warpgroup is past its reads of stage s (lse
        // and D by ld.shared, Q and dO by its waited GEMMs): it may refill
        if (elected) mbar_arrive(empty0 + 8 * s);
        if constexpr (S::DQ_LAG) {
            if (it > 0) reduce_dq(head_of(it - 1), row_of(it - 1));
        } else {
            reduce_dq(h, m0);
        }
        // TMA: stage s takes block it + 2 once both warpgroups released it
        if (K::TMA && w == 1 && elected && it + 2 < total) {
            mbar_wait(empty0 + 8 * s, ph);
            load_tma(it + 2, s);
        }
        ds_prev = ds_cur;
        ds_cur.advance();
    }
    if constexpr (S::DQ_LAG) { // the last block's dQ
        if (total > 0) {
            float acc_dq[S::DQ_N / 8][4];
            ds_prev.stage = __shfl_sync(0xffffffffu, ds_prev.stage, 0); // as in the loop
            mbar_wait(ds_ready0 + 8 * ds_prev.stage, ds_prev.phase);
            wgmma_fence();
            issue_dq(acc_dq, base + S::DS_OFF + ds_prev.stage * S::DS_BYTES);
            wgmma_commit();
            wgmma_wait<0>();
            reg_fence(acc_dq);
            if (elected) bulk_wait_read();
            named_bar_sync(1 + w, 128);
            stage_dq(acc_dq);
            named_bar_sync(3 + w, 128);
            reduce_dq(head_of(total - 1), row_of(total - 1));
        }
    }
    if (elected) bulk_wait_all(); // the staging is read before the CTA's shared memory goes
    if (K::TURNS && w == 0) named_bar_sync(5, 256); // matches warpgroup 1's last arrival

    // ---- dK (scaled) and dV of this warpgroup's 64 keys
    bwd_store_dkdv<K>(p, acc_dk, acc_dv, b, hk, n0, w * 64, 0);
}

} // namespace fg
