// fg_pipeline.cuh: a ring of shared-memory stages between a producer (one
// TMA thread; FP8's V^T ring: the three transposing warps) and its
// consumers, one full and one empty mbarrier per stage.
//
//   producer:  wait empty[s] (parity phase ^ 1)  -> expect_tx full[s] -> TMA
//   consumer:  wait full[s]  (parity phase)      -> use -> arrive empty[s]
//
// Ring::init sets how many arrivals each side's barrier counts (the
// consumer side: one per consumer warp, after the warp's wgmma that read the
// stage has completed).  Producer and consumers walk the same sequence of
// loads, so each keeps its own position (PipeState), or computes it from a
// count (PipeState::at).
#pragma once
#include "fg_tma.cuh"

namespace fg {

template <int STAGES> struct PipeState {
    int stage;
    u32 phase;
    __device__ __forceinline__ void reset() { stage = 0; phase = 0; }
    // the state after n advances (no register carried across a loop)
    __device__ __forceinline__ static PipeState at(int n) {
        PipeState st;
        st.stage = n % STAGES;
        st.phase = (u32)(n / STAGES) & 1u;
        return st;
    }
    __device__ __forceinline__ void advance() {
        if (++stage == STAGES) { stage = 0; phase ^= 1u; }
    }
};

// The barrier words of one ring: full[STAGES] then empty[STAGES], 8 bytes each.
template <int STAGES> struct Ring {
    u32 bars;
    __device__ __forceinline__ u32 full(int s) const { return bars + 8u * s; }
    __device__ __forceinline__ u32 empty(int s) const { return bars + 8u * (STAGES + s); }
    // full: producer_arrivals (1: the TMA thread's arrive.expect_tx), empty:
    // consumer_arrivals
    __device__ __forceinline__ void init(int consumer_arrivals, int producer_arrivals = 1) const {
#pragma unroll
        for (int s = 0; s < STAGES; ++s) { mbar_init(full(s), producer_arrivals); mbar_init(empty(s), consumer_arrivals); }
    }
    // Producer: claim stage st, announce `bytes` of TMA traffic on its full barrier.
    __device__ __forceinline__ void acquire(const PipeState<STAGES> &st, u32 bytes) const {
        mbar_wait_sleep(empty(st.stage), st.phase ^ 1u);
        mbar_arrive_expect_tx(full(st.stage), bytes);
    }
    __device__ __forceinline__ void wait_full(const PipeState<STAGES> &st) const { mbar_wait(full(st.stage), st.phase); }
    // Consumer warp: the stage's data is no longer needed (call after the
    // wgmma that read it has completed, from every lane of the warp).
    __device__ __forceinline__ void release(int stage) const {
        __syncwarp();
        mbar_arrive_if(empty(stage), (threadIdx.x & 31) == 0);
    }
    static constexpr int BYTES = 16 * STAGES;
};

} // namespace fg
