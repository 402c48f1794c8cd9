// fg_tables.cuh: the caller's inference tables (cu_seqlens, seqlens_k,
// block_table) read on the device without trusting them.
//
// The host never reads these tables (that would need a synchronisation), so
// a kernel that finds an entry out of range clamps it, skips what it names,
// and records the first bad entry in the context's table error word:
// int[4] = {kind, batch, index, value}.  fg_attention_table_error reads it
// back; the kinds are in fg_table_errors.h, shared with runtime/tables.c.
#pragma once
#include "fg_table_errors.h"

namespace fg {

// Records {kind, b, index, value} unless an earlier error is recorded.
__device__ __forceinline__ void table_error(int *err, int kind, int b, int index, int value) {
    if (err && atomicCAS(err, 0, kind) == 0) {
        err[1] = b;
        err[2] = index;
        err[3] = value;
    }
}

// Physical page in entry `slot` of sequence b's block table row, or -1
// (recorded) when the entry is out of range.  slot is below max_pages.
__device__ __forceinline__ int page_in_slot(const int *block_table, int max_pages, int num_pages, int b, int slot,
                                            int *err) {
    const int page = __ldg(block_table + (long long)b * max_pages + slot);
    if ((unsigned)page >= (unsigned)num_pages) {
        table_error(err, FG_TE_BLOCK_TABLE, b, slot, page);
        return -1;
    }
    return page;
}

} // namespace fg
