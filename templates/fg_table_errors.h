/* fg_table_errors.h: the kinds of the table error word, int[4] =
 * {kind, batch, index, value}, one definition for the kernels
 * (fg_tables.cuh, fg_kv_append.cuh) and the host that describes them
 * (runtime/tables.c).  Plain C: NVRTC and the host compiler both read it. */
#ifndef FG_TABLE_ERRORS_H
#define FG_TABLE_ERRORS_H
enum fg_table_error_kind {
    FG_TE_NONE = 0,
    FG_TE_CU_SEQLENS_Q = 1, /* cu_seqlens_q[b..b+1] decreasing, negative or past total_q */
    FG_TE_CU_SEQLENS_K = 2, /* the same for cu_seqlens_k / total_k */
    FG_TE_SEQLENS_K = 3,    /* seqlens_k[b] negative or past the capacity */
    FG_TE_BLOCK_TABLE = 4,  /* block_table[b][index] = value not in [0, num_pages) */
    FG_TE_APPEND = 5,       /* fg_kv_append: seqlens_k[b] + row past the capacity */
    FG_TE_WORKSPACE = 6     /* a split counter of the workspace was not zero before the run */
};
#endif
