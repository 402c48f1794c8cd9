/* fg_append_params.h: the argument block of fg_kv_append's kernels
 * (templates/fg_kv_append.cuh).
 *
 * Shared by the host (runtime/kv_append.c) and NVRTC, like fg_params.h:
 * only `int`, `long long` and pointers.  One block serves both kernels of
 * an append module (the copy and the advance of seqlens_k). */
#ifndef FG_APPEND_PARAMS_H
#define FG_APPEND_PARAMS_H

typedef struct fg_append_params {
    const void *k_new, *v_new;      /* [batch, seqlen_new, heads_kv, d], 16-byte aligned */
    void *k_cache, *v_cache;        /* contiguous [batch, capacity, heads_kv, d] or paged
                                       [num_pages, page_size, heads_kv, d]              */
    int *seqlens_k;                 /* [batch]: where each sequence's new rows go       */
    const int *block_table;         /* [batch, max_pages], or NULL: contiguous cache     */
    int *err;                       /* the table error word (fg_tables.cuh)             */

    /* element strides (batch or page, head, row); the last dim is contiguous */
    long long knew_s[3], vnew_s[3], k_s[3], v_s[3];

    int batch, heads_kv, seqlen_new;
    int capacity;                   /* the most keys a sequence may hold (seqlen_k)     */
    int page_size, num_pages, max_pages;
    int rows_per_cta;               /* new rows of one sequence per copy CTA            */
} fg_append_params;

#endif
