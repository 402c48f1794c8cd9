// fg_fp8.cuh: the two layout changes of the FP8 (e4m3) TMA forward.
//
// FP8 wgmma (m64nNk32) reads both shared-memory operands K-major only, and
// its register A operand has another layout than the fp32 accumulator of
// the S = Q K^T product:
//
//   accumulator (n8 block j): thread (g = lane/4, q = lane%4) holds row g and
//     g+8, keys 8j + 2q, 8j + 2q + 1
//   e4m3 A fragment (k32 step): four registers of four bytes, row g / g+8,
//     A-columns 4q..4q+3 (registers 0, 1) and 16+4q..16+4q+3 (2, 3)
//
// Rather than moving P between lanes, the key order inside each 32-key
// step is permuted on both sides of P V (the sum over keys does not care):
// A-column 16h + 4q + i holds key 16h + 2q + (i & 1) + 8 (i >> 1), which is
// exactly what the thread owns (pack_p_e4m3), and the transposed V tile
// puts key k's value at that same A-column (transpose_v).
#pragma once
#include "fg_wgmma.cuh"
#include "fg_fp8_map.h"

namespace fg {

// Four floats -> four e4m3 bytes (a first, in the low byte); saturating to
// +-448, NaN stays NaN.
__device__ __forceinline__ u32 pack4_e4m3(float a, float b, float c, float d) {
    u32 r;
    asm("{\n.reg .b16 lo, hi;\n"
        "cvt.rn.satfinite.e4m3x2.f32 lo, %2, %1;\n"
        "cvt.rn.satfinite.e4m3x2.f32 hi, %4, %3;\n"
        "mov.b32 %0, {lo, hi};\n}\n"
        : "=r"(r) : "f"(a), "f"(b), "f"(c), "f"(d));
    return r;
}

// P (fp32 accumulator layout, NT n8 blocks) -> e4m3 A fragments, one per
// 32-key step, in the permuted key order above (fp8_pack_block/elem).
template <int KS, int NT>
__device__ __forceinline__ void pack_p_e4m3(u32 (&pa)[KS][4], const float (&s)[1][NT][4]) {
    static_assert(NT == 4 * KS, "four n8 blocks per k32 step");
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            float x[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) x[i] = s[0][4 * kk + fp8_pack_block(r, i)][fp8_pack_elem(r, i)];
            pa[kk][r] = pack4_e4m3(x[0], x[1], x[2], x[3]);
        }
}

// Transposes one V tile of BC = 128 keys x DV values from the layout TMA
// wrote (key rows of 128 bytes, 128-byte swizzle, DV in column blocks of
// 128 values BC * 128 bytes apart) into V^T: DV rows of 128 bytes (the
// keys, in the permuted order), 128-byte swizzle, which is the K-major B
// operand of O += P V (rows 8 apart = 1024 bytes, k32 step = 32 bytes).
//
// Run by NW warps (warp 0..NW-1 of the transposers).  An item (32 keys x
// 16 values, fg_fp8_map.h) is one ldmatrix.x4.trans, four byte permutes and
// one stmatrix.x4, conflict-free.  A warp takes the 16-value columns m =
// warp, warp + NW, ... and in each the four 32-key items, unrolled: they
// load 4096 bytes apart (the same swizzle) and store at (the first's
// address) ^ (jp << 5) (fp8_tr_dst's chunk is (2 jp + h) ^ (row & 7), and
// the row part of a lane's address has no bits 5-6 but its own), so an
// item costs the load, four permutes, the store and one XOR; computed per
// item, the addresses were two thirds of the transposers' instructions, and
// the transposers were busy 90% of the time, the consumers waiting on them
// (ncu, docs/PERF.md v17).
__device__ __forceinline__ void ldsm_x4_trans(u32 (&r)[4], u32 addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
// The two 16-key groups of an item, permuted (fp8_tr_sel) and stored.
__device__ __forceinline__ void stsm_item(u32 addr, const u32 (&r)[4], u32 s0) {
    const u32 s1 = s0 ^ 0x1111u; // 0x6420 <-> 0x7531
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr),
                 "r"(__byte_perm(r[0], r[1], s0)), "r"(__byte_perm(r[0], r[1], s1)), "r"(__byte_perm(r[2], r[3], s0)),
                 "r"(__byte_perm(r[2], r[3], s1)) : "memory");
}
template <int BC, int DV, int NW>
__device__ __forceinline__ void transpose_v(u32 src, u32 dst, int warp, int lane) {
    static_assert(BC == 128, "one 128-byte V^T row per value dim");
    static_assert(DV % 16 == 0, "whole items");
    const u32 s0 = fp8_tr_sel(0, lane);
    const u32 dl = dst + fp8_tr_dst(DV, 0, lane); // column 0, item 0
    const u32 sl = src + (u32)lane * 128u;
#pragma unroll 1
    for (int m = warp; m < DV / 16; m += NW) {
        // fp8_tr_src(BC, 4 m, lane) and fp8_tr_dst(DV, 4 m, lane)
        const u32 sa = sl + (u32)(m >> 3) * (BC * 128u) + ((((u32)m ^ (u32)lane) & 7u) << 4);
        const u32 da = dl + (u32)m * 2048u;
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
            u32 a[4];
            ldsm_x4_trans(a, sa + 4096u * jp);
            stsm_item(da ^ (32u * jp), a, s0);
        }
    }
}

// The descale factor of a tensor for (batch b, kv head hk): NULL means 1.
__device__ __forceinline__ float descale_at(const float *d, int per_head, int b, int heads_kv, int hk) {
    return d ? d[per_head ? b * heads_kv + hk : 0] : 1.f;
}

} // namespace fg
