// fg_bwd_kernel.cuh: FlashAttention backward, portable tensor-core path.
//
// Three kernels per variant, launched in order on one stream:
//   bwd_preprocess  D = rowsum(dO * O) and lse2 = lse * log2(e) (+inf for
//                   a row that saw no key) per query row, rows padded to
//                   a multiple of 64 (D 0, lse2 +inf); zeroes the fp32 dQ
//                   accumulator and the deterministic-mode turn counters
//   bwd_main        one CTA per (key block, kv head, batch): K and V stay in
//                   shared memory, dK and dV in registers; for each query
//                   head of the GQA group and each query block that sees
//                   the key block it recomputes P from the saved lse:
//     A  S^T  = K Q^T,  dP^T = V dO^T      warp (wn, ws): 16 key rows x BM/WS queries
//        P^T  = exp2(S^T * scale*log2e - lse*log2e)   (lse = -inf -> P = 0)
//        dS^T = P^T * (dP^T - D)            both stored to shared memory
//     B  dV  += P^T dO,  dK += dS^T Q       warp: 16 key rows x every WS-th 16 columns
//     C  dQ  += dS K                        warp: 16 query rows x every CW-th 16 columns,
//                                           atomicAdd into the fp32 accumulator; in the
//                                           deterministic mode under a per-query-block turn
//                                           taken in key-block order
//   bwd_convert     dQ = accumulator * scale, to fp16/bf16; with SINK and p.dsinks,
//                   d loss / d sink += -sum of exp(sink - lse) * D over its rows
// dK is scaled once at the end.  Score modifications (traits SOFTCAP, ALIBI,
// WINDOW, SINK, SCORE_MOD; fg_score.cuh, dense only): S^T becomes the
// forward's logits (logit_mod) before the exp, dS^T is multiplied by
// softcap's 1 - tanh^2 and a user expression's derivative (SCORE_MOD_D),
// the window masks like causal and narrows the query blocks visited; the
// sink is in the saved lse already, so P, D and dS need nothing more.
// Fully masked query blocks are never visited (causal); a key block that
// no query sees writes zeros.
// Block-sparse variants walk the transposed layout instead: the full, then
// the partial query blocks of this key block's layout column.  Full blocks
// get no element mask (bounds only); partial ones the causal mask and, with
// a pattern, its mask_mod, as in the forward.
//
// The value head dim DV (v, o, dO and dV; ValueDim<K>, declared by the
// traits only where it differs from D) may differ from D: dP^T = V dO^T
// reduces over DV, dV += P^T dO has N = DV and D = rowsum(dO * O) runs over
// DV; S^T = K Q^T, dK and dQ follow D.  V and dO rows in shared memory are
// LDS_V = DVP + 8 elements, K and Q rows LDS = DP + 8.
#pragma once
#include "fg_bwd_params.h"
#include "fg_mma.cuh"
#include "fg_mask.cuh"   // HasMaskMod and the mx_* helpers a pattern's mask_mod calls
#include "fg_score.cuh"  // the score modifications (traits SOFTCAP, ALIBI, WINDOW, SINK)

namespace fg {

template <class K> struct BwdShape {
    static constexpr int THREADS = K::WARPS * 32;
    static constexpr int DV = ValueDim<K>::value;  // value head dim
    static constexpr int DVP = (DV + 15) / 16 * 16;
    static constexpr int LDS = K::DP + 8;          // padded K/Q row, elements
    static constexpr int LDS_V = DVP + 8;          // padded V/dO row
    static constexpr int LDP = K::BM + 8;          // padded P^T / dS^T row
    static constexpr int WN = K::BN / 16;          // key-row groups
    static constexpr int WS = K::WARPS / WN;       // splits of the queries (A) and columns (B)
    static constexpr int QC = K::BM / WS;          // query columns per warp in phase A
    static constexpr int NT_Q = QC / 8;
    static constexpr int CT = K::DP / 16;          // 16-column tiles of the head dim (dK, dQ)
    static constexpr int CT_V = DVP / 16;          // of the value head dim (dV)
    static constexpr int CT_W = (CT + WS - 1) / WS; // tiles of dK per warp (at most)
    static constexpr int CTV_W = (CT_V + WS - 1) / WS; // tiles of dV per warp (at most)
    static constexpr int TW = CT_W > CTV_W ? CT_W : CTV_W;
    static constexpr int KS = CT > CT_V ? CT : CT_V; // k16 steps of phase A (S^T over DP, dP^T over DVP)
    static constexpr int RT = K::BM / 16;          // 16-row tiles of dQ
    static constexpr int CW = K::WARPS / RT;       // column groups of dQ
    static constexpr int SMEM_ELEMS = (K::BN + K::BM) * (LDS + LDS_V) + 2 * K::BN * LDP;
    static_assert(K::BN % 16 == 0 && K::WARPS % WN == 0, "warps must be a multiple of BN/16");
    static_assert(QC % 16 == 0, "BM / WS must be a multiple of 16");
    static_assert(K::WARPS % RT == 0, "warps must be a multiple of BM/16");
    static_assert(K::D % 8 == 0 && K::D <= K::DP && K::DP % 16 == 0, "head dim");
    static_assert(DV % 8 == 0 && DV <= 256, "value head dim must be a multiple of 8 up to 256");
};

// cp.async a ROWS x W tile into shared memory (row stride WP + 8); rows at
// or past rows_valid and columns W..WP become zeros.
template <class K, int ROWS, int W, int WP>
__device__ __forceinline__ void bwd_load(u16 *s, const char *g, long long row_bytes, int rows_valid) {
    typedef BwdShape<K> S;
    constexpr int CH = WP / 8, DCH = W / 8, TOTAL = ROWS * CH, LD = WP + 8;
#pragma unroll
    for (int it = 0; it < (TOTAL + S::THREADS - 1) / S::THREADS; ++it) {
        const int c = threadIdx.x + it * S::THREADS;
        if (TOTAL % S::THREADS == 0 || c < TOTAL) {
            const int r = c / CH, ch = c - r * CH;
            const bool ok = r < rows_valid && ch < DCH;
            cp_async16(smem_addr(s + r * LD + ch * 8), ok ? g + r * row_bytes + ch * 16 : g, ok ? 16 : 0);
        }
    }
}

// Where element (row, col) of one (batch, head)'s dQ sits in the fp32
// accumulator, from the head's start.  Row-major [seqlen_q][D], or, for
// kernels whose traits set DQ_FRAG (the Hopper backward), per 64-row query
// block and 64-column slice a 4096-float chunk in the order of the m64n64
// wgmma accumulator registers, so that a warpgroup stages its share in
// shared memory without bank conflicts and adds it with one bulk reduction
// (fg_bwd_wgmma.cuh): row 16wq + g + 8r, column 8j + 2c + e of a chunk is
// float (wq * 8 + j) * 128 + (4g + c) * 4 + 2r + e, a thread's four
// registers of a column group one 16-byte store.  The chunks of the
// last query block are whole: the accumulator holds ceil(seqlen_q / 64) * 64
// rows (fg_bwd_workspace_layout).
template <class K, class = int> struct DqFrag { static constexpr bool value = false; };
template <class K> struct DqFrag<K, decltype((void)K::DQ_FRAG, 0)> { static constexpr bool value = K::DQ_FRAG; };
template <class K> __device__ __forceinline__ long long dq_index(int row, int col) {
    if constexpr (DqFrag<K>::value) {
        const int lr = row & 63, lc = col & 63;
        const int wq = lr >> 4, g = lr & 7, r = (lr >> 3) & 1, j = lc >> 3, c = (lc >> 1) & 3, e = lc & 1;
        return ((long long)(row >> 6) * (K::D / 64) + (col >> 6)) * 4096 + (wq * 8 + j) * 128 + (4 * g + c) * 4 + 2 * r + e;
    } else {
        return (long long)row * K::D + col;
    }
}

__device__ __forceinline__ float bf_or_h_to_float(u16 x, bool bf16) {
    if (bf16) return __uint_as_float((u32)x << 16);
    float f;
    asm("{ .reg .f16 h; mov.b16 h, %1; cvt.f32.f16 %0, h; }" : "=f"(f) : "h"(x));
    return f;
}

// D = rowsum(dO * O) over DV for 16 rows per CTA (one row per warp at a
// time); the same rows of the dQ accumulator (D wide) and this CTA's turn
// counter are zeroed.
template <class K>
__device__ __forceinline__ void attention_backward_preprocess(const fg_bwd_params &p) {
    constexpr int DV = BwdShape<K>::DV, WIDE = DV > K::D ? DV : K::D;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.y, b = blockIdx.z, bh = b * p.heads_q + h;
    if (threadIdx.x == 0) p.dq_lock[(long long)bh * p.lock_blocks + blockIdx.x] = 0;
    if constexpr (HasSink<K>::value)   // summed by the conversion, which runs after this kernel
        if (p.dsinks && threadIdx.x == 0 && blockIdx.x == 0 && b == 0) p.dsinks[h] = 0.f;
    for (int r = warp; r < 16; r += blockDim.x >> 5) {
        const int row = blockIdx.x * 16 + r;
        if (row >= p.seqlen_q) break;
        const u16 *o = (const u16 *)p.o + b * p.o_s[0] + h * p.o_s[1] + row * p.o_s[2];
        const u16 *d = (const u16 *)p.dout + b * p.do_s[0] + h * p.do_s[1] + row * p.do_s[2];
        float *acc = p.dq_accum + ((long long)bh * p.seqlen_q + row) * K::D; // row-major accumulator only
        float sum = 0.f;
        for (int c = lane * 8; c < WIDE; c += 32 * 8) {
            if (c < DV) {
                const uint4 ov = *(const uint4 *)(o + c), dv = *(const uint4 *)(d + c);
                const u32 ow[4] = {ov.x, ov.y, ov.z, ov.w}, dw[4] = {dv.x, dv.y, dv.z, dv.w};
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    sum += bf_or_h_to_float((u16)(ow[e] & 0xffff), K::BF16) * bf_or_h_to_float((u16)(dw[e] & 0xffff), K::BF16);
                    sum += bf_or_h_to_float((u16)(ow[e] >> 16), K::BF16) * bf_or_h_to_float((u16)(dw[e] >> 16), K::BF16);
                }
            }
            if (!DqFrag<K>::value && c < K::D) {
                *(float4 *)(acc + c) = make_float4(0.f, 0.f, 0.f, 0.f);
                *(float4 *)(acc + c + 4) = make_float4(0.f, 0.f, 0.f, 0.f);
            }
        }
#pragma unroll
        for (int m = 16; m; m >>= 1) sum += warp_xor(sum, m);
        if (lane == 0) {
            const float lse = p.lse[(long long)bh * p.seqlen_q + row];
            p.dsum[(long long)bh * p.rows_pad + row] = sum;
            // +inf for a row that saw no key: exp2(s - inf) = 0, P = 0
            p.lse2[(long long)bh * p.rows_pad + row] = lse != neg_inf() ? lse * 1.4426950408889634f : __int_as_float(0x7f800000);
        }
    }
    if (blockIdx.x == gridDim.x - 1) // the padding rows up to rows_pad: P = 0, D = 0
        for (int row = p.seqlen_q + threadIdx.x; row < p.rows_pad; row += blockDim.x) {
            p.dsum[(long long)bh * p.rows_pad + row] = 0.f;
            p.lse2[(long long)bh * p.rows_pad + row] = __int_as_float(0x7f800000);
        }
    if constexpr (DqFrag<K>::value) { // whole 64-row chunks: this CTA's 16 rows' worth, the last CTA the rest
        const long long per_bh = (long long)((p.seqlen_q + 63) / 64) * 64 * K::D;
        const long long lo = (long long)blockIdx.x * 16 * K::D;
        const long long hi = blockIdx.x == gridDim.x - 1 ? per_bh : lo + 16 * K::D;
        float4 *acc = (float4 *)(p.dq_accum + bh * per_bh);
        for (long long i = lo / 4 + threadIdx.x; i < hi / 4; i += blockDim.x) acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

// d loss / d sink of head h, this CTA's 16 rows: the sink's probability in
// row i is exp(sink - lse_i), and o_i = sum_j P_ij v_j scales with
// 1 - that mass, so d o_i / d sink = -exp(sink - lse_i) o_i and the rows add
// -exp(sink - lse_i) * D_i (D_i = dO_i . o_i, the preprocess's sum).  One
// atomic per CTA into dsinks[h], which the preprocess zeroed.
template <class K>
__device__ __forceinline__ void bwd_dsink(const fg_bwd_params &p, int b, int h) {
    if (!p.dsinks || threadIdx.x >= 32) return;
    const long long bh = (long long)b * p.heads_q + h;
    const int row = blockIdx.x * 16 + threadIdx.x;
    float g = 0.f;
    if (threadIdx.x < 16 && row < p.seqlen_q) {
        const float lse = p.lse[bh * p.seqlen_q + row];
        if (lse != neg_inf()) g = -expf(__ldg(p.sinks + h) - lse) * p.dsum[bh * p.rows_pad + row];
    }
#pragma unroll
    for (int m = 16; m; m >>= 1) g += warp_xor(g, m);
    if (threadIdx.x == 0) atomicAdd(p.dsinks + h, g);
}

// dQ = accumulator * scale, 16 rows per CTA, 16-byte stores.  In chunk
// order a thread takes rows i and i + 8 of the CTA's 16 (the two rows of
// one accumulator register group) and 8 columns: four 16-byte loads of 64
// contiguous bytes (head dim 64: 4 columns, two loads, so that all 128
// threads have rows).
template <class K>
__device__ __forceinline__ void attention_backward_convert(const fg_bwd_params &p) {
    const int h = blockIdx.y, b = blockIdx.z, bh = b * p.heads_q + h;
    constexpr int CH = K::D / 8;
    if constexpr (DqFrag<K>::value) {
        // head dim 64: two threads per 8 columns (4 each), else 64 of the
        // 128 threads would idle
        constexpr int SPLIT = 8 * CH >= 128 ? 1 : 2, NI = 4 / SPLIT;
        const float *a = p.dq_accum + (long long)bh * ((p.seqlen_q + 63) / 64) * 64 * K::D;
        for (int c = threadIdx.x; c < 8 * CH * SPLIT; c += blockDim.x) {
            const int item = c / SPLIT, part = c % SPLIT;
            const int row = blockIdx.x * 16 + item / CH, col = (item % CH) * 8 + part * 2 * NI; // rows row, row + 8 (row & 15 < 8)
            if (row >= p.seqlen_q) break;
            float4 v[NI]; // columns col + 2i, col + 2i + 1 of row (x, y) and of row + 8 (z, w)
#pragma unroll
            for (int i = 0; i < NI; ++i) v[i] = *(const float4 *)(a + dq_index<K>(row, col + 2 * i));
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                if (row + 8 * r >= p.seqlen_q) break;
                u32 out[NI];
#pragma unroll
                for (int i = 0; i < NI; ++i)
                    out[i] = pack2<K::BF16>((r ? v[i].z : v[i].x) * p.scale, (r ? v[i].w : v[i].y) * p.scale);
                u16 *dst = (u16 *)p.dq + b * p.dq_s[0] + h * p.dq_s[1] + (row + 8 * r) * p.dq_s[2] + col;
                if constexpr (NI == 4) *(uint4 *)dst = make_uint4(out[0], out[1], out[2], out[3]);
                else *(uint2 *)dst = make_uint2(out[0], out[1]);
            }
        }
        if constexpr (HasSink<K>::value) bwd_dsink<K>(p, b, h);
        return;
    }
    for (int c = threadIdx.x; c < 16 * CH; c += blockDim.x) {
        const int row = blockIdx.x * 16 + c / CH, col = (c % CH) * 8;
        if (row >= p.seqlen_q) break;
        const float *a = p.dq_accum + ((long long)bh * p.seqlen_q + row) * K::D + col;
        const float4 x = *(const float4 *)a, y = *(const float4 *)(a + 4);
        uint4 out;
        out.x = pack2<K::BF16>(x.x * p.scale, x.y * p.scale);
        out.y = pack2<K::BF16>(x.z * p.scale, x.w * p.scale);
        out.z = pack2<K::BF16>(y.x * p.scale, y.y * p.scale);
        out.w = pack2<K::BF16>(y.z * p.scale, y.w * p.scale);
        *(uint4 *)((u16 *)p.dq + b * p.dq_s[0] + h * p.dq_s[1] + row * p.dq_s[2] + col) = out;
    }
    if constexpr (HasSink<K>::value) bwd_dsink<K>(p, b, h);
}

// Row r (of the two each thread holds) of a warp's dK or dV accumulator:
// W columns in CT 16-column tiles, every WS-th from ws, times scale, to dst.
template <class K, int CT, int W, int TW>
__device__ __forceinline__ void bwd_store_row(u16 *dst, const float (&acc)[TW][2][4], int r, float scale, int ws, int c) {
    typedef BwdShape<K> S;
#pragma unroll
    for (int t = 0; t < (CT + S::WS - 1) / S::WS; ++t) {
        const int ct = ws + t * S::WS;
        if (CT % S::WS != 0 && ct >= CT) continue;
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int col = ct * 16 + j * 8 + 2 * c;
            if (col < W) *(u32 *)(dst + col) = pack2<K::BF16>(acc[t][j][2 * r] * scale, acc[t][j][2 * r + 1] * scale);
        }
    }
}

// Deterministic mode: wait until the key blocks before this one have added
// their part of this query block's dQ (the counter holds their number).
__device__ __forceinline__ void bwd_turn_wait(const int *lock, int turn) {
    if (threadIdx.x == 0) {
        while (*(volatile const int *)lock != turn) __nanosleep(32);
        __threadfence();
    }
    __syncthreads();
}
__device__ __forceinline__ void bwd_turn_pass(int *lock, int turn) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) *(volatile int *)lock = turn + 1;
}

// The query blocks of BM rows that see key block n0: m_first .. the
// returned end (causal: rows i >= n0 - offset; m_first = end when none
// does), for both backward main kernels.
template <bool CAUSAL, int BM>
__device__ __forceinline__ int bwd_query_blocks(const fg_bwd_params &p, int n0, int &m_first) {
    const int m_end = (p.seqlen_q + BM - 1) / BM;
    m_first = 0;
    if (CAUSAL) {
        const int first_row = n0 - p.causal_offset;
        m_first = first_row > p.seqlen_q - 1 ? m_end : (first_row < 0 ? 0 : first_row / BM);
    }
    return m_end;
}

// The CTA's key block, kv head and batch (grid: key blocks x kv heads x
// batch).  Causal: key block 0 sees every query block and the last the
// fewest, and in launch order (x fastest) every head's longest CTA came
// just after the previous head's shortest, so the last wave held long
// CTAs started late.  Here the CTAs are taken in sections of `sw` (kv head,
// batch) pairs, key-block-major inside a section: longest first within
// it, as FlashAttention-3's backward LPT scheduler orders them.  A section
// is as many pairs as keep their K, V, Q and dO (the group's query heads)
// within about 32 MiB of L2, at least one: then the CTAs that run together
// still share their Q and dO.  The Hopper kernels only: the mma.sync
// kernel's deterministic mode orders dQ by key block.  LPT is their
// Traits::LPT (bwd_wgmma.lua's lpt, with the measurements); false: launch
// order.
template <bool LPT, int D, int DV>
__device__ __forceinline__ void bwd_block_coords(const fg_bwd_params &p, int &kb, int &hk, int &b) {
    if constexpr (LPT) {
        const long long per_pair = ((long long)p.seqlen_k + (long long)p.group * p.seqlen_q) * (D + DV) * 2;
        const long long pairs = (long long)gridDim.y * gridDim.z, nkb = gridDim.x;
        const long long sw = max(1LL, min(pairs, (32LL << 20) / per_pair));
        const long long lin = blockIdx.x + nkb * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
        const long long sec = lin / (nkb * sw), in = lin - sec * nkb * sw;
        const long long pair0 = sec * sw, cnt = min(sw, pairs - pair0);
        kb = (int)(in / cnt);
        const long long pair = pair0 + (in - kb * cnt); // heads_kv * batch may pass 2^31
        hk = (int)(pair % gridDim.y);
        b = (int)(pair / gridDim.y);
    } else {
        kb = blockIdx.x;
        hk = blockIdx.y;
        b = blockIdx.z;
    }
}

template <class K>
__device__ __forceinline__ void attention_backward(const fg_bwd_params &p, char *smem) {
    typedef BwdShape<K> S;
    constexpr int BM = K::BM, BN = K::BN, LDS = S::LDS, LDS_V = S::LDS_V, LDP = S::LDP, NT_Q = S::NT_Q;
    const float LOG2E = 1.4426950408889634f;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int n_block = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int n0 = n_block * BN;
    const int wn = warp % S::WN, ws = warp / S::WN;
    const int g = lane >> 2, c = lane & 3;

    u16 *sK = (u16 *)smem;
    u16 *sV = sK + BN * LDS;
    u16 *sQ = sV + BN * LDS_V;
    u16 *sdO = sQ + BM * LDS;
    u16 *sP = sdO + BM * LDS_V;
    u16 *sdS = sP + BN * LDP;
    float *sL = (float *)(sdS + BN * LDP);
    float *sD = sL + BM;

    bwd_load<K, BN, K::D, K::DP>(sK, (const char *)p.k + 2 * (b * p.k_s[0] + hk * p.k_s[1] + (long long)n0 * p.k_s[2]), 2 * p.k_s[2],
                    p.seqlen_k - n0);
    bwd_load<K, BN, S::DV, S::DVP>(sV, (const char *)p.v + 2 * (b * p.v_s[0] + hk * p.v_s[1] + (long long)n0 * p.v_s[2]), 2 * p.v_s[2],
                    p.seqlen_k - n0);
    cp_async_commit();

    // Query blocks that see this key block (causal), and whose rows' windows meet it.
    int m_first;
    int m_end = bwd_query_blocks<K::CAUSAL, BM>(p, n0, m_first);
    if constexpr (HasWindow<K>::value) {
        int first, end;
        window_query_tiles<BM>(p, n0, n0 + BN - 1, m_end, first, end);
        m_first = max(m_first, first);
        m_end = end;
    }

    // ldmatrix lane offsets (fg_mma.cuh layouts): a_* for A operands and
    // transposed B operands, b_* for B operands and transposed A operands.
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 8;
    const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 8;

    // TW tiles each; dV uses the first CTV_W, dK the first CT_W (the rest is never touched)
    float acc_dv[S::TW][2][4], acc_dk[S::TW][2][4];
#pragma unroll
    for (int t = 0; t < S::TW; ++t)
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_dv[t][j][e] = acc_dk[t][j][e] = 0.f;

    const int rt = warp % S::RT, cg = warp / S::RT;   // phase C split
    // One query tile mb of head h; `partial`: the causal mask and mask_mod apply.
    auto block = [&](const int h, const int mb, const bool partial) {
        const int bh = b * p.heads_q + h;
        const int m0 = mb * BM;
        __syncthreads();   // the previous block's readers of sQ, sdO, sP, sdS, sL are done
        bwd_load<K, BM, K::D, K::DP>(sQ, (const char *)p.q + 2 * (b * p.q_s[0] + h * p.q_s[1] + (long long)m0 * p.q_s[2]),
                        2 * p.q_s[2], p.seqlen_q - m0);
        bwd_load<K, BM, S::DV, S::DVP>(sdO, (const char *)p.dout + 2 * (b * p.do_s[0] + h * p.do_s[1] + (long long)m0 * p.do_s[2]),
                        2 * p.do_s[2], p.seqlen_q - m0);
        cp_async_commit();
        for (int i = tid; i < BM; i += S::THREADS) {
            const int row = m0 + i;
            // padded rows (m0 + BM <= rows_pad): +inf and 0 past the end
            sL[i] = p.lse2[(long long)bh * p.rows_pad + row];
            sD[i] = p.dsum[(long long)bh * p.rows_pad + row];
        }
        cp_async_wait<0>();
        __syncthreads();

        // ---- A: S^T (over DP) and dP^T (over DVP) of 16 key rows x QC query columns
        float acc_s[NT_Q][4], acc_dp[NT_Q][4];
#pragma unroll
        for (int j = 0; j < NT_Q; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_s[j][e] = acc_dp[j][e] = 0.f;
        const int q_off = ws * S::QC;
#pragma unroll
        for (int ks = 0; ks < S::KS; ++ks) {
            const bool qk = ks < S::CT, vo = ks < S::CT_V;   // compile-time once unrolled
            u32 ka[4], va[4];
            if (qk) ldmatrix_x4(ka, smem_addr(sK + (wn * 16 + a_row) * LDS + ks * 16 + a_col));
            if (vo) ldmatrix_x4(va, smem_addr(sV + (wn * 16 + a_row) * LDS_V + ks * 16 + a_col));
#pragma unroll
            for (int np = 0; np < NT_Q / 2; ++np) {
                u32 qb[4], ob[4];
                if (qk) ldmatrix_x4(qb, smem_addr(sQ + (q_off + np * 16 + b_row) * LDS + ks * 16 + b_col));
                if (vo) ldmatrix_x4(ob, smem_addr(sdO + (q_off + np * 16 + b_row) * LDS_V + ks * 16 + b_col));
                if (qk) {
                    mma16816<K::BF16>(acc_s[2 * np], ka, qb[0], qb[1]);
                    mma16816<K::BF16>(acc_s[2 * np + 1], ka, qb[2], qb[3]);
                }
                if (vo) {
                    mma16816<K::BF16>(acc_dp[2 * np], va, ob[0], ob[1]);
                    mma16816<K::BF16>(acc_dp[2 * np + 1], va, ob[2], ob[3]);
                }
            }
        }
        bool need_mask = n0 + BN > p.seqlen_k || (K::CAUSAL && partial && n0 + BN - 1 > m0 + p.causal_offset) ||
                         (HasMaskMod<K>::value && partial);
        if constexpr (HasWindow<K>::value) need_mask = need_mask || window_cuts<BN>(p, n_block, m0, m0 + BM - 1);
        float slope = 0.f;
        if constexpr (HasAlibi<K>::value) slope = __ldg(p.alibi_slopes + b * p.alibi_batch_stride + h);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int kr = wn * 16 + g + 8 * r;   // local key row
#pragma unroll
            for (int j = 0; j < NT_Q; ++j) {
                float pv[2], ds[2];
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int qc = q_off + j * 8 + 2 * c + e;   // local query column
                    float x, dx = 1.f;   // dx: d logit / d (scaled score) (softcap, score_mod_d)
                    if constexpr (LogitMods<K>::value) {
                        const float lg = logit_mod<K>(acc_s[j][2 * r + e], p, slope, b, h, m0 + qc, n0 + kr, dx);
                        x = fast_exp2(fmaf(lg, LOG2E, -sL[qc]));
                    } else {
                        x = fast_exp2(fmaf(acc_s[j][2 * r + e], p.scale_log2, -sL[qc]));
                    }
                    if (need_mask) {
                        bool vis = n0 + kr < p.seqlen_k;
                        if (K::CAUSAL && partial) vis = vis && n0 + kr <= m0 + qc + p.causal_offset;
                        if constexpr (HasMaskMod<K>::value)
                            if (partial) vis = vis && K::mask_mod(p, b, h, m0 + qc, n0 + kr);
                        if constexpr (HasWindow<K>::value) vis = vis && window_visible(p, m0 + qc, n0 + kr);
                        if (!vis) x = 0.f;
                    }
                    pv[e] = x;
                    ds[e] = x * (acc_dp[j][2 * r + e] - sD[qc]);
                    // x == 0 (masked, or underflowed): no gradient, whatever
                    // an expression's derivative is there (0 * inf is NaN)
                    if constexpr (HasScoreModD<K>::value) ds[e] = x == 0.f ? 0.f : ds[e] * dx;
                    else if constexpr (HasSoftcap<K>::value) ds[e] *= dx;
                }
                const int col = q_off + j * 8 + 2 * c;
                *(u32 *)(sP + kr * LDP + col) = pack2<K::BF16>(pv[0], pv[1]);
                *(u32 *)(sdS + kr * LDP + col) = pack2<K::BF16>(ds[0], ds[1]);
            }
        }
        __syncthreads();

        // ---- B: dV += P^T dO (N = DV), dK += dS^T Q (N = D): 16 key rows, column tiles ws, ws+WS, ...
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
            u32 pa[4], da[4];
            ldmatrix_x4(pa, smem_addr(sP + (wn * 16 + a_row) * LDP + kk * 16 + a_col));
            ldmatrix_x4(da, smem_addr(sdS + (wn * 16 + a_row) * LDP + kk * 16 + a_col));
#pragma unroll
            for (int t = 0; t < S::TW; ++t) {
                const int ct = ws + t * S::WS;
                const bool v_ok = t < S::CTV_W && (S::CT_V % S::WS == 0 || ct < S::CT_V);
                const bool k_ok = t < S::CT_W && (S::CT % S::WS == 0 || ct < S::CT);
                u32 ob[4], qb[4];
                if (v_ok) ldmatrix_x4_trans(ob, smem_addr(sdO + (kk * 16 + a_row) * LDS_V + ct * 16 + a_col));
                if (k_ok) ldmatrix_x4_trans(qb, smem_addr(sQ + (kk * 16 + a_row) * LDS + ct * 16 + a_col));
                if (v_ok) {
                    mma16816<K::BF16>(acc_dv[t][0], pa, ob[0], ob[1]);
                    mma16816<K::BF16>(acc_dv[t][1], pa, ob[2], ob[3]);
                }
                if (k_ok) {
                    mma16816<K::BF16>(acc_dk[t][0], da, qb[0], qb[1]);
                    mma16816<K::BF16>(acc_dk[t][1], da, qb[2], qb[3]);
                }
            }
        }

        // ---- C: dQ += dS K (16 query rows rt, column tiles cg, cg+CW, ...)
        u32 dsa[BN / 16][4];
#pragma unroll
        for (int kt = 0; kt < BN / 16; ++kt)
            ldmatrix_x4_trans(dsa[kt], smem_addr(sdS + (kt * 16 + b_row) * LDP + rt * 16 + b_col));
        int *lock = p.dq_lock + (long long)bh * p.lock_blocks + mb;
        if (p.deterministic) bwd_turn_wait(lock, n_block);
        float *acc_row = p.dq_accum + ((long long)bh * p.seqlen_q + m0 + rt * 16 + g) * K::D;
        const int rows_left = p.seqlen_q - (m0 + rt * 16 + g);
        for (int ct = cg; ct < S::CT; ct += S::CW) {
            float acc[2][4];
#pragma unroll
            for (int j = 0; j < 2; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[j][e] = 0.f;
#pragma unroll
            for (int kt = 0; kt < BN / 16; ++kt) {
                u32 kb[4];
                ldmatrix_x4_trans(kb, smem_addr(sK + (kt * 16 + a_row) * LDS + ct * 16 + a_col));
                mma16816<K::BF16>(acc[0], dsa[kt], kb[0], kb[1]);
                mma16816<K::BF16>(acc[1], dsa[kt], kb[2], kb[3]);
            }
#pragma unroll
            for (int j = 0; j < 2; ++j) {
                const int col = ct * 16 + j * 8 + 2 * c;
                if (col >= K::D) continue;
#pragma unroll
                for (int r = 0; r < 2; ++r)
                    if (8 * r < rows_left) {
                        atomicAdd(acc_row + 8 * r * K::D + col, acc[j][2 * r]);
                        atomicAdd(acc_row + 8 * r * K::D + col + 1, acc[j][2 * r + 1]);
                    }
            }
        }
        if (p.deterministic) bwd_turn_pass(lock, n_block);
    };

    for (int hh = 0; hh < p.group; ++hh) {
        const int h = hk * p.group + hh;
        if constexpr (!K::SPARSE) {
            for (int mb = m_first; mb < m_end; ++mb) block(h, mb, K::CAUSAL);
        } else {
            const int bi = p.sp_batch == 1 ? 0 : b, hi = p.sp_heads == 1 ? 0 : h;
            const long long col = ((long long)bi * p.sp_heads + hi) * p.sp_num_kv_blocks + n0 / p.sp_block_k;
            const int nf = p.sp_full_num[col], np = p.sp_part_num[col], sub = p.sp_block_q / BM;
            const int *fidx = p.sp_full_idx + col * p.sp_num_q_blocks, *pidx = p.sp_part_idx + col * p.sp_num_q_blocks;
            for (int e = 0; e < nf + np; ++e) {
                const bool partial = e >= nf;
                const int qb = partial ? __ldg(pidx + (e - nf)) : __ldg(fidx + e);
                for (int t = 0; t < sub; ++t) {
                    const int mb = qb * sub + t, m0 = mb * BM;
                    if (m0 >= p.seqlen_q) break;
                    // a causal partial tile whose last row cannot see this key block
                    if (K::CAUSAL && partial && n0 > min(m0 + BM, p.seqlen_q) - 1 + p.causal_offset) continue;
                    block(h, mb, partial);
                }
            }
        }
    }
    cp_async_wait<0>();   // K and V landed even when no query block was visited

    // ---- epilogue: dK (scaled, D wide) and dV (DV wide) of this warp's 16 key rows
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = n0 + wn * 16 + g + 8 * r;
        if (row >= p.seqlen_k) continue;
        u16 *dk = (u16 *)p.dk + b * p.dk_s[0] + hk * p.dk_s[1] + (long long)row * p.dk_s[2];
        u16 *dv = (u16 *)p.dv + b * p.dv_s[0] + hk * p.dv_s[1] + (long long)row * p.dv_s[2];
        bwd_store_row<K, S::CT, K::D>(dk, acc_dk, r, p.scale, ws, c);
        bwd_store_row<K, S::CT_V, S::DV>(dv, acc_dv, r, 1.f, ws, c);
    }
}

} // namespace fg
