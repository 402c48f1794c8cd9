// fg_tma.cuh: Hopper (sm_90) asynchronous building blocks: mbarriers, TMA
// tensor loads, named barriers and register reallocation.
//
// mbarrier: a 64-bit word in shared memory with an arrival count and a
// transaction-byte count.  A phase completes when both reach zero; waiters
// spin on the parity of the phase they expect (try_wait.parity).  A TMA load
// names the barrier it completes and adds its byte count to it; the issuing
// thread announces the bytes first with arrive.expect_tx.
//
// Tensor maps (fg_tmap, fg_params.h) are encoded on the host
// (cuTensorMapEncodeTiled, runtime/tensor_map.c) and passed as
// __grid_constant__ kernel parameters; the TMA unit reads them through their
// generic address.  Rows past a tensor's extent arrive as zeros.
#pragma once
#include "fg_params.h"
#include "fg_mma.cuh"

namespace fg {

__device__ __forceinline__ void mbar_init(u32 bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes barrier initialisation visible to the async proxy (TMA) before use.
__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Waits until the phase of the given parity has completed.  A fresh barrier
// is in phase 0, so waiting on parity 1 returns at once: that is how a
// producer finds every stage of a new ring empty.  The spin loop is inside
// the asm: a C++ loop would be a divergent branch to ptxas, which then
// serialises wgmma pipelines around it (C7520).
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    asm volatile("{\n.reg .pred p;\nWAIT_%=:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT_%=;\n}\n"
                 ::"r"(bar), "r"(parity) : "memory");
}
// The same wait for a thread with nothing else to do (the producer, FP8's V
// transposers): try_wait with a suspend-time hint, which ptxas turns into
// NANOSLEEP.SYNCS, a sleep that ends when the barrier changes (or after
// the hint, 10 ms).  Without it the TMA thread spun ~200 times a key tile
// (ncu, hd128 non-causal 16k: ~106M of the kernel's 1.2G instructions),
// issue slots taken from the consumer warps of its SM sub-partition.
__device__ __forceinline__ void mbar_wait_sleep(u32 bar, u32 parity) {
    asm volatile("{\n.reg .pred p;\nWAIT_%=:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1, %2;\n@!p bra WAIT_%=;\n}\n"
                 ::"r"(bar), "r"(parity), "r"(10000000u) : "memory");
}
// mbar_arrive from the threads where `pred` holds, without a branch.
__device__ __forceinline__ void mbar_arrive_if(u32 bar, bool pred) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.u32 p, %1, 0;\n@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n"
                 ::"r"(bar), "r"((u32)pred) : "memory");
}

__device__ __forceinline__ void tma_prefetch_map(const fg_tmap *map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"((unsigned long long)map) : "memory");
}
// One box of a rank-4 tensor map into shared memory at dst (1024-byte
// aligned for the 128-byte swizzle); coordinates in elements, innermost first.
__device__ __forceinline__ void tma_load_4d(u32 dst, const fg_tmap *map, u32 bar, int c0, int c1, int c2, int c3) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
        ::"r"(dst), "l"((unsigned long long)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
        : "memory");
}

// Named barriers 1..15 (0 is __syncthreads); nthreads a multiple of 32.
__device__ __forceinline__ void named_bar_sync(int id, int nthreads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(nthreads) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int nthreads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(nthreads) : "memory");
}

// Register reallocation between warpgroups (sm_90a); every thread of the
// warpgroup executes it.  Takes effect only with a register cap at entry
// (__launch_bounds__(threads, 1)); ptxas warns C7508 otherwise.
template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

} // namespace fg
