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
// Run by NT threads (tid 0..NT-1) of the producer warpgroup.  A unit
// (fp8_unit) is 4 keys x 4 values: keys k, k+1, k+8, k+9 (k = 16G + 2q),
// which become the 4 consecutive A-columns 16G + 4q .. +3, so each unit is
// four 32-bit loads, a 4x4 byte transpose (eight byte permutes) and four
// 32-bit stores.  The loop is not unrolled: the producer runs in 24
// registers.
template <int BC, int DV, int NT>
__device__ __forceinline__ void transpose_v(u32 src, u32 dst, int tid) {
    static_assert(BC == 128, "one 128-byte V^T row per value dim");
    static_assert(DV % 16 == 0, "whole units");
    constexpr int UNITS = BC * DV / 16;
#pragma unroll 1
    for (int u = tid; u < UNITS; u += NT) {
        int k0, n0, a0;
        fp8_unit(u, &k0, &n0, &a0);
        u32 w[4], out[4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
            asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(w[i]) : "r"(src + fp8_swz(BC, fp8_unit_row(k0, i), n0)) : "memory");
        fp8_transpose4(w, out);
#pragma unroll
        for (int j = 0; j < 4; ++j)
            asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(dst + fp8_swz(DV, n0 + j, a0)), "r"(out[j]) : "memory");
    }
}

// The descale factor of a tensor for (batch b, kv head hk): NULL means 1.
__device__ __forceinline__ float descale_at(const float *d, int per_head, int b, int heads_kv, int hk) {
    return d ? d[per_head ? b * heads_kv + hk : 0] : 1.f;
}

} // namespace fg
