// fg_mask.cuh: element masks applied to one S tile.
//
// Key column j of query row i is visible iff j < seqlen_k and, for causal
// variants, j <= i + causal_offset.  Both reduce to one per-row limit:
// visible iff j < limit(i).  Only tiles that straddle a limit are masked;
// the schedule (fg_schedule.cuh) says which.
#pragma once
#include "fg_mma.cuh"

namespace fg {

// s: [MT][NT_S][4] C fragments of a warp whose first row is row0 (absolute
// query index) and whose first key column is col0.
template <int MT, int NT_S, bool CAUSAL>
__device__ __forceinline__ void apply_mask(float (&s)[MT][NT_S][4], int row0, int col0, int seqlen_k,
                                           int causal_offset, bool causal_here) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = row0 + i * 16 + g + r * 8;
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

} // namespace fg
