// fg_wgmma.cuh: Hopper (sm_90a) warpgroup MMA building blocks.
//
// Shared-memory tiles for wgmma use the 128-byte swizzle: a tile of R rows
// and DP columns (16-bit elements) is stored as DP/64 column blocks of
// [R][64]; row r of a block is 128 bytes at r*128, and its 16-byte chunk j
// sits at chunk j ^ (r % 8).  Blocks start on 1024-byte boundaries (the
// swizzle repeats every 8 rows = 1024 bytes), which is what the hardware
// assumes when it applies the XOR to absolute address bits.
//
// The m64nNk16 accumulator layout matches mma.sync's C layout per warp:
// warp w of the warpgroup owns rows 16w..16w+15, thread lane holds rows
// lane/4 and lane/4+8, columns 8j + 2(lane%4) + {0,1} for each n8 block j.
// So the online softmax and the masks of the mma.sync path apply unchanged,
// and P converts to the register A operand of the next wgmma exactly as it
// converts to mma.sync's A fragment.
#pragma once
#include "fg_mma.cuh"

namespace fg {

typedef unsigned long long u64;

// Byte offset of 16-byte chunk j (0 .. DP/8-1) of row r in a swizzled tile.
template <int R>
__device__ __forceinline__ u32 swz_offset(int r, int j) {
    return (u32)((j >> 3) * R * 128 + r * 128 + (((j & 7) ^ (r & 7)) << 4));
}

// cp.async a ROWS x W tile (W a multiple of 64 16-bit elements) into the
// swizzled layout at smem address base, THREADS threads; rows at or past
// rows_valid become zeros.
template <int ROWS, int W, int THREADS>
__device__ __forceinline__ void cp_async_tile_swz(u32 base, const char *g, long long row_bytes, int rows_valid) {
    constexpr int CH = W / 8, TOTAL = ROWS * CH;
#pragma unroll
    for (int it = 0; it < (TOTAL + THREADS - 1) / THREADS; ++it) {
        const int c = threadIdx.x + it * THREADS;
        if (TOTAL % THREADS == 0 || c < TOTAL) {
            const int r = c / CH, j = c - r * CH;
            const bool ok = r < rows_valid;
            cp_async16(base + swz_offset<ROWS>(r, j), ok ? g + r * row_bytes + j * 16 : g, ok ? 16 : 0);
        }
    }
}

// Shared-memory matrix descriptor, 128-byte swizzle.
//   bits  0-13  start address >> 4
//   bits 16-29  leading-dimension byte offset >> 4
//   bits 32-45  stride-dimension byte offset >> 4
//   bits 62-63  swizzle mode (1 = 128B)
__device__ __forceinline__ u64 make_desc(u32 addr, u32 lbo, u32 sbo) {
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)((lbo & 0x3FFFF) >> 4) << 16) |
           ((u64)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

// The descriptor of the operand `byte_off` bytes further on (a multiple of
// 16): one 32-bit add on the address field, where make_desc(addr + off)
// costs a mask, a shift and an or per k-step (ncu: ~10% of the forward's
// instructions at hd128).  A shared-memory address is below 256 KiB, so the
// 14-bit field never carries into the leading-byte-offset field.
__device__ __forceinline__ u64 desc_add(u64 d, u32 byte_off) {
    return (d & 0xFFFFFFFF00000000ull) | (u32)((u32)d + (byte_off >> 4));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Data written to shared memory through the generic proxy (cp.async, st.shared)
// must be fenced before the async proxy (wgmma) reads it.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Keeps the compiler from moving accumulator reads/writes across a wgmma
// that is still in flight.
template <int N>
__device__ __forceinline__ void reg_fence(float (&a)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(a[i][e])::"memory");
}

} // namespace fg
