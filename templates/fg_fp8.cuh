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
// 32-key step, in the permuted key order above.
template <int KS, int NT>
__device__ __forceinline__ void pack_p_e4m3(u32 (&pa)[KS][4], const float (&s)[1][NT][4]) {
    static_assert(NT == 4 * KS, "four n8 blocks per k32 step");
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
        const float(*t)[4] = &s[0][4 * kk];
        pa[kk][0] = pack4_e4m3(t[0][0], t[0][1], t[1][0], t[1][1]);
        pa[kk][1] = pack4_e4m3(t[0][2], t[0][3], t[1][2], t[1][3]);
        pa[kk][2] = pack4_e4m3(t[2][0], t[2][1], t[3][0], t[3][1]);
        pa[kk][3] = pack4_e4m3(t[2][2], t[2][3], t[3][2], t[3][3]);
    }
}

// Transposes one V tile of BC = 128 keys x DV values from the layout TMA
// wrote (key rows of 128 bytes, 128-byte swizzle, DV in column blocks of
// 128 values BC * 128 bytes apart) into V^T: DV rows of 128 bytes (the
// keys, in the permuted order), 128-byte swizzle, which is the K-major B
// operand of O += P V (rows 8 apart = 1024 bytes, k32 step = 32 bytes).
//
// Run by the 128 threads of the producer warpgroup.  A unit is 4 keys x 4
// values: keys k, k+1, k+8, k+9 (k = 16G + 2q), which become the 4
// consecutive A-columns 16G + 4q .. +3, so each unit is four 32-bit loads,
// a 4x4 byte transpose with eight byte permutes and four 32-bit stores.
template <int BC, int DV>
__device__ __forceinline__ void transpose_v(u32 src, u32 dst, int tid) {
    static_assert(BC == 128, "one 128-byte V^T row per value dim");
    static_assert(DV % 16 == 0, "whole units per thread");
    constexpr int UNITS = BC * DV / 16;
#pragma unroll 1
    for (int u = tid; u < UNITS; u += 128) {
        const int q = u & 3, grp = (u >> 2) & 7, n0 = (u >> 5) * 4;
        const int k0 = 16 * grp + 2 * q;
        const u32 col = (u32)(n0 >> 7) * BC * 128, chunk = (u32)(n0 & 127) >> 4, inb = (u32)n0 & 15u;
        u32 w[4];
        const int rows[4] = {k0, k0 + 1, k0 + 8, k0 + 9};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const u32 r = (u32)rows[i];
            const u32 addr = src + col + r * 128 + ((chunk ^ (r & 7u)) << 4) + inb;
            asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(w[i]) : "r"(addr) : "memory");
        }
        // w[i] byte j = V(rows[i], n0 + j); out[j] byte i = the same
        const u32 t0 = __byte_perm(w[0], w[1], 0x5140), t1 = __byte_perm(w[0], w[1], 0x7362);
        const u32 t2 = __byte_perm(w[2], w[3], 0x5140), t3 = __byte_perm(w[2], w[3], 0x7362);
        const u32 out[4] = {__byte_perm(t0, t2, 0x5410), __byte_perm(t0, t2, 0x7632), __byte_perm(t1, t3, 0x5410),
                            __byte_perm(t1, t3, 0x7632)};
        const u32 a0 = (u32)(16 * grp + 4 * q);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const u32 n = (u32)(n0 + j);
            const u32 addr = dst + n * 128 + ((((a0 >> 4) ^ (n & 7u))) << 4) + (a0 & 15u);
            asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(out[j]) : "memory");
        }
    }
}

// The descale factor of a tensor for (batch b, kv head hk): NULL means 1.
__device__ __forceinline__ float descale_at(const float *d, int per_head, int b, int heads_kv, int hk) {
    return d ? d[per_head ? b * heads_kv + hk : 0] : 1.f;
}

} // namespace fg
