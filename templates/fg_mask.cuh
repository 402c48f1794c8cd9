// fg_mask.cuh: element masks applied to one S tile.
//
// Key column j of query row i is visible iff j < seqlen_k and, for causal
// variants, j <= i + causal_offset.  Both reduce to one per-row limit:
// visible iff j < limit(i).  Only tiles that straddle a limit are masked;
// the schedule (fg_schedule.cuh) says which.
//
// Variants made from a pattern with a mask expression also evaluate the
// generated Traits::mask_mod(p, b, h, q_idx, kv_idx) on every element of a
// partial block (FlexAttention's mask_mod; full blocks stay unmasked).  The
// mx_* helpers give the expression language's semantics (gen/mask_expr.h):
// 64-bit integers (or 32-bit where that gives the same values), x/0 = x%0 = 0.
#pragma once
#include "fg_params.h"
#include "fg_mma.cuh"

namespace fg {

// s: [MT][NT_S][4] C fragments of a warp whose first row is row0 (absolute
// query index) and whose first key column is col0.
// row_div: rows per query index (GQA packing, fg_infer.cuh; 1 otherwise):
// row r of the tile is query r / row_div.
template <int MT, int NT_S, bool CAUSAL>
__device__ __forceinline__ void apply_mask(float (&s)[MT][NT_S][4], int row0, int col0, int seqlen_k,
                                           int causal_offset, bool causal_here, int row_div = 1) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = (row0 + i * 16 + g + r * 8) / row_div;
            int limit = seqlen_k;
            if (CAUSAL && causal_here) limit = min(limit, row + causal_offset + 1);
#pragma unroll
            for (int n = 0; n < NT_S; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int col = col0 + n * 8 + 2 * c + e;
                    if (col >= limit) s[i][n][2 * r + e] = neg_inf();
                }
        }
}

// 64-bit arithmetic wraps as on the host: + - * and negation go through
// unsigned long long, whose wrapping is defined (signed overflow is not, and
// the optimizer may assume it never happens).  constexpr and host-callable,
// so a compile-time probe can evaluate a rendered mask (tests/).
#define FG_MX __host__ __device__ __forceinline__ constexpr
FG_MX long long mx_add64(long long a, long long b) { return (long long)((unsigned long long)a + (unsigned long long)b); }
FG_MX long long mx_sub64(long long a, long long b) { return (long long)((unsigned long long)a - (unsigned long long)b); }
FG_MX long long mx_mul64(long long a, long long b) { return (long long)((unsigned long long)a * (unsigned long long)b); }
FG_MX long long mx_neg64(long long a) { return (long long)(0ull - (unsigned long long)a); }
FG_MX long long mx_div64(long long a, long long b) { return b == 0 ? 0 : b == -1 ? mx_neg64(a) : a / b; }
FG_MX long long mx_mod64(long long a, long long b) { return b == 0 || b == -1 ? 0 : a % b; }
FG_MX long long mx_min64(long long a, long long b) { return a < b ? a : b; }
FG_MX long long mx_max64(long long a, long long b) { return a > b ? a : b; }
FG_MX long long mx_abs64(long long a) { return a < 0 ? mx_neg64(a) : a; }
// 32-bit forms, used when the host proved that no subexpression leaves the
// int range (fg_mask_expr_fits_int32): about half the instructions.
FG_MX int mx_neg32(int a) { return (int)(0u - (unsigned)a); }
FG_MX int mx_div32(int a, int b) { return b == 0 ? 0 : b == -1 ? mx_neg32(a) : a / b; }
FG_MX int mx_mod32(int a, int b) { return b == 0 || b == -1 ? 0 : a % b; }
FG_MX int mx_min32(int a, int b) { return a < b ? a : b; }
FG_MX int mx_max32(int a, int b) { return a > b ? a : b; }
FG_MX int mx_abs32(int a) { return a < 0 ? -a : a; }
#undef FG_MX

// Float min / max of the score language (gen/score_expr.c computes the
// same on the host): NaN loses to a number, as with fminf; between equal
// zeros -0 is the smaller.  fminf/fmaxf leave the sign of an equal-zeros
// result to the implementation, and the GPU's and libm's choices differ, so
// the score language spells it out (1/a: +-inf carries a zero's sign).
__host__ __device__ __forceinline__ float sx_min(float a, float b) {
    return a != a ? b : b != b ? a : a < b ? a : b < a ? b : (1.0f / a < 0.0f ? a : b);
}
__host__ __device__ __forceinline__ float sx_max(float a, float b) {
    return a != a ? b : b != b ? a : a > b ? a : b > a ? b : (1.0f / a < 0.0f ? b : a);
}

// HasMaskMod<K>::value: whether the traits define MASK_MOD (only variants
// with a mask expression do, so the others' generated source is unchanged).
template <class K, class = int> struct HasMaskMod { static constexpr bool value = false; };
template <class K> struct HasMaskMod<K, decltype((void)K::MASK_MOD, 0)> { static constexpr bool value = K::MASK_MOD; };

// The element mask of a partial block, on the same fragment layout as
// apply_mask; row0/col0 are absolute query/key indices.
template <class K, int MT, int NT_S>
__device__ __forceinline__ void apply_mask_mod(float (&s)[MT][NT_S][4], const fg_fwd_params &p, int b, int h, int row0,
                                               int col0) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = row0 + i * 16 + g + r * 8;
#pragma unroll
            for (int n = 0; n < NT_S; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int col = col0 + n * 8 + 2 * c + e;
                    if (!K::mask_mod(p, b, h, row, col)) s[i][n][2 * r + e] = neg_inf();
                }
        }
}

} // namespace fg
