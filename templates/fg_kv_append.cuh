// fg_kv_append.cuh: fg_kv_append's kernels, appending new keys and values
// to a KV cache at each sequence's current length.
//
// Two kernels per variant, launched in order on one stream:
//   kv_append_copy     grid (row chunks, batch): CTA (x, b) copies new rows
//                      x * rows_per_cta .. of sequence b, every kv head, K
//                      then V, as 16-byte vectors; row i goes to key
//                      position seqlens_k[b] + i of the cache (contiguous:
//                      [batch, capacity, heads_kv, d]; paged: row pos %
//                      page_size of page block_table[b][pos / page_size])
//   kv_append_advance  one thread per sequence: seqlens_k[b] += seqlen_new
//                      (launched only with advance).  Stream order makes it
//                      race-free: every copy CTA has read seqlens_k[b]
//                      before any advance writes it.
// A sequence whose new rows do not all fit (seqlens_k[b] negative or past
// the capacity, a position past the capacity, a page of its new rows out of
// [0, num_pages)) is left as it was: no row written, its length not
// advanced; the copy kernel records the first bad entry in the table error
// word (fg_tables.cuh), the advance kernel takes the same decision without
// recording it again.
#pragma once
#include "fg_append_params.h"
#include "fg_tables.cuh"

namespace fg {

// seqlens_k[b] = s is in [0, capacity] and s + seqlen_new fits; err
// non-NULL: a failure is recorded.
__device__ __forceinline__ bool append_lengths_ok(const fg_append_params &p, int b, int s, int *err) {
    if (s < 0 || s > p.capacity) {
        table_error(err, FG_TE_SEQLENS_K, b, b, s);
        return false;
    }
    if ((long long)s + p.seqlen_new > p.capacity) { // the first new row that does not fit
        table_error(err, FG_TE_APPEND, b, p.capacity - s, p.capacity);
        return false;
    }
    return true;
}

// Every page slot of positions s .. s + seqlen_new - 1 (lengths checked),
// visited from the first slot + start in steps of step, names a page in
// [0, num_pages); err non-NULL: the first bad one seen is recorded.
__device__ __forceinline__ bool append_pages_ok(const fg_append_params &p, int b, int s, int start, int step,
                                                int *err) {
    if (!p.block_table) return true;
    const int first = s / p.page_size, last = (s + p.seqlen_new - 1) / p.page_size;
    bool ok = true;
    for (int slot = first + start; slot <= last; slot += step)
        ok &= page_in_slot(p.block_table, p.max_pages, p.num_pages, b, slot, err) >= 0;
    return ok;
}

// rows new rows (from row r0) of sequence b, every head, CH 16-byte chunks
// per (row, head): chunk c of head h of row r, c fastest, so consecutive
// threads touch consecutive bytes of a BSHD row.
template <int CH, int THREADS>
__device__ __forceinline__ void append_rows(const fg_append_params &p, const char *src, const long long *ns, char *dst,
                                            const long long *cs, int b, int s, int r0, int rows) {
    const int per_row = p.heads_kv * CH, total = rows * per_row;
    for (int i = threadIdx.x; i < total; i += THREADS) {
        const int c = i % CH, hr = i / CH;
        const int h = hr % p.heads_kv, r = r0 + hr / p.heads_kv;
        const int pos = s + r;
        long long outer = b, row = pos;
        if (p.block_table) {
            const int page = __ldg(p.block_table + (long long)b * p.max_pages + pos / p.page_size);
            if ((unsigned)page >= (unsigned)p.num_pages) continue; // checked before; the table changed under us
            outer = page;
            row = pos % p.page_size;
        }
        const uint4 x = *(const uint4 *)(src + 2 * ((long long)b * ns[0] + h * ns[1] + r * ns[2] + c * 8));
        *(uint4 *)(dst + 2 * (outer * cs[0] + h * cs[1] + row * cs[2] + c * 8)) = x;
    }
}

template <class T> __device__ void kv_append_copy(const fg_append_params &p) {
    const int b = blockIdx.y, r0 = blockIdx.x * p.rows_per_cta;
    const int rows = min(p.rows_per_cta, p.seqlen_new - r0);
    if (rows <= 0) return;
    const int s = p.seqlens_k[b]; // not written before the advance kernel (stream order)
    if (!append_lengths_ok(p, b, s, threadIdx.x == 0 ? p.err : nullptr)) return; // the same verdict in every thread
    if (__syncthreads_or(!append_pages_ok(p, b, s, threadIdx.x, T::THREADS, p.err))) return;
    append_rows<T::D / 8, T::THREADS>(p, (const char *)p.k_new, p.knew_s, (char *)p.k_cache, p.k_s, b, s, r0, rows);
    append_rows<T::DV / 8, T::THREADS>(p, (const char *)p.v_new, p.vnew_s, (char *)p.v_cache, p.v_s, b, s, r0, rows);
}

template <class T> __device__ void kv_append_advance(const fg_append_params &p) {
    const int b = blockIdx.x * T::THREADS + threadIdx.x;
    if (b >= p.batch) return;
    const int s = p.seqlens_k[b];
    if (append_lengths_ok(p, b, s, nullptr) && append_pages_ok(p, b, s, 0, 1, nullptr)) p.seqlens_k[b] = s + p.seqlen_new;
}

} // namespace fg
