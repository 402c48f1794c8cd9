/* fg_tile_order.h: the tile order of the Hopper forward's persistent grid
 * (fg_tile_scheduler.cuh), plain C so that the host test
 * (tests/test_cpu_core.c) runs the very functions the kernel uses.
 *
 * Tiles (query block, head, batch) get a linear index t in [0, total).
 * fg_tile_at gives the index of the k-th tile of CTA b of g (indices only
 * grow with k, so the first >= total ends the CTA's loop);
 * fg_tile_decode turns an index into the query block and bh = b * heads +
 * h.  The reasons for each order are in fg_tile_scheduler.cuh. */
#ifndef FG_TILE_ORDER_H
#define FG_TILE_ORDER_H

/* The end of a sparse layout's tile list (runtime/sparse_sched.h), past
 * every tile index. */
#define FG_TILE_END 0x7fffffff

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FG_TO_FN __host__ __device__ __forceinline__
#else
#define FG_TO_FN static inline
#endif

/* The grid the runtime launches for `tiles` tiles on `sms` SMs: persistent
 * (at most one CTA per SM; causal: *pairs = 1, a CTA takes two tiles at a
 * time) or one CTA per tile (*pairs = 0). */
FG_TO_FN long long fg_tile_grid(int causal, int persistent, long long tiles, long long sms, int *pairs) {
    *pairs = persistent && causal;
    const long long work = *pairs ? (tiles + 1) / 2 : tiles;
    return persistent && work > sms ? sms : work;
}

/* causal: pairs (0 or 1) is the log2 of the tiles a CTA takes at a time;
 * non-causal: snake rounds */
FG_TO_FN int fg_tile_at(int causal, int pairs, int g, int b, int k) {
    if (causal) return (((k >> pairs) * g + b) << pairs) + (k & pairs);
    return k * g + ((k & 1) ? g - 1 - b : b);
}

/* The query block of tile t (nm query blocks a head, nbh = heads * batch);
 * *bh its batch * heads + head. */
FG_TO_FN int fg_tile_decode(int causal, int nm, int nbh, int t, int *bh) {
    if (!causal) {
        *bh = t / nm;
        return t % nm;
    }
    /* inside a head: last, first, second-last, second, ...  An odd count
     * leaves the middle tile without a partner: then heads go in groups of
     * two, their paired tiles first and the two middle tiles last, so that
     * no pair straddles two heads */
    int i;
    if (!(nm & 1)) {
        *bh = t / nm;
        i = t - *bh * nm;
    } else {
        const int pr = nm - 1, grp = t / (2 * nm), r = t - grp * 2 * nm;
        const int paired = (nbh - 2 * grp >= 2 ? 2 : 1) * pr;
        if (r < paired) {
            *bh = 2 * grp + r / pr;
            i = r - (r / pr) * pr;
        } else {
            *bh = 2 * grp + (r - paired);
            i = pr; /* the middle: nm - 1 - pr / 2 below */
        }
    }
    return (i & 1) ? i >> 1 : nm - 1 - (i >> 1);
}

#endif
