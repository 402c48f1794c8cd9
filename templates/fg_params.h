/* fg_params.h: the forward kernel's argument block.
 *
 * One definition for both sides: the host (runtime/) includes this file
 * directly, NVRTC receives it as an embedded header.  Only `int`,
 * `long long` and pointers, so the layout is identical under NVRTC and the
 * host compiler on LP64.  Passed by value as a __grid_constant__ parameter. */
#ifndef FG_PARAMS_H
#define FG_PARAMS_H
#include "fg_mod_params.h"

typedef struct fg_fwd_params {
    const void *q, *k, *v;   /* device pointers, 16-byte aligned          */
    void *o;
    float *lse;              /* [batch, heads_q, seqlen_q] or NULL        */

    /* element strides; the last dimension is contiguous */
    long long q_batch_stride, q_head_stride, q_row_stride;
    long long k_batch_stride, k_head_stride, k_row_stride;
    long long v_batch_stride, v_head_stride, v_row_stride;
    long long o_batch_stride, o_head_stride, o_row_stride;

    int batch, heads_q, heads_kv, group;   /* group = heads_q / heads_kv   */
    int seqlen_q, seqlen_k;
    /* key j is visible from query row i iff j <= i + causal_offset
     * (bottom-right: seqlen_k - seqlen_q; top-left: 0).  Unused when the
     * variant is not causal. */
    int causal_offset;
    float scale;        /* softmax scale                                   */
    float scale_log2;   /* scale * log2(e), folded into exp2               */

    /* Block-sparse layout (variant sparse=1).  Row r = (bi*sp_heads + hi) *
     * sp_num_q_blocks + qb, where bi = sp_batch == 1 ? 0 : b and likewise hi;
     * the index lists of row r start at r * sp_num_kv_blocks. */
    const int *sp_full_num, *sp_full_idx, *sp_part_num, *sp_part_idx;
    int sp_batch, sp_heads, sp_num_q_blocks, sp_num_kv_blocks;
    int sp_block_q, sp_block_k;   /* layout block, in elements              */
    int sp_sub;                   /* kernel key tiles per layout block      */
    /* TMA family, causal: 1 = a CTA of the persistent grid takes tiles in
     * pairs of equal cost (fg_tile_order.h); 0 = one tile (one CTA per
     * tile).  Set at launch (runtime/attention.c); was padding, so kernels
     * compiled before read the fields around it at the same offsets. */
    int tile_pairs;

    /* Constants of the element mask of partial blocks (variants with a
     * mask expression; the generated mask_mod reads p.mask_c[i]). */
    long long mask_c[16];

    /* Inference (variants infer=1, templates/fg_infer.cuh); NULL / 0: off.
     * The tables are the caller's device arrays (include/flashgen.h), read
     * without trusting them (fg_tables.cuh). */
    const int *cu_seqlens_q, *cu_seqlens_k; /* [batch + 1]                    */
    const int *seqlens_k;                   /* [batch]                        */
    const int *block_table;                 /* [batch, max_pages]             */
    int total_q, total_k;                   /* rows of packed q/o and k/v     */
    int page_size, num_pages, max_pages;
    int num_splits;          /* CTAs per query tile along the keys, >= 1    */
    int pack;                /* query heads packed into one tile's rows: the
                                GQA group (grid.y = heads_kv), or 1          */
    int bottom_right;        /* causal alignment from each sequence's lengths */
    float *part_o;           /* num_splits > 1: [splits, batch, heads_q, seqlen_q, head_dim_v] */
    float *part_lse;         /* [splits, batch, heads_q, seqlen_q]            */
    int *split_count;        /* per query tile: splits finished (zero between runs) */
    int *table_err;          /* int[4] (fg_tables.cuh)                        */

    /* Score modifications (variants with Traits::SOFTCAP / ALIBI / WINDOW /
     * SINK, templates/fg_score.cuh; docs/SCORE-WIRING.md).  Appended, so
     * kernels compiled before read the fields above at the same offsets. */
    FG_MOD_PARAMS  /* fg_mod_params.h */
    FG_SCORE_PARAMS /* a user score expression (fg_mod_params.h) */
    /* FP8 (e4m3 variants): device fp32 descales, NULL = 1; one float each,
     * or [batch, heads_kv] with descale_per_head (include/flashgen.h).
     * After the score fields, in the order fg_attention_desc has them. */
    const float *q_descale, *k_descale, *v_descale;
    int descale_per_head;
    int pad3_;
    /* Block-sparse on the TMA family's persistent grid (runtime/
     * sparse_sched.c): CTA b runs the tiles sp_sched[sp_sched[b]],
     * sp_sched[sp_sched[b] + 1], ... up to FG_TILE_END (linear indices in the
     * non-causal order of fg_tile_order.h), a list built on the host from
     * the layout's row costs.  NULL: one CTA per tile. */
    const int *sp_sched;
} fg_fwd_params;

/* A TMA tensor map (the driver's CUtensorMap: 128 opaque bytes, 64-byte
 * aligned), encoded on the host by runtime/tensor_map.c. */
typedef struct fg_tmap {
    __attribute__((aligned(64))) unsigned long long v[16];
} fg_tmap;

/* The second kernel parameter of the TMA kernels (templates/fg_fwd_ws.cuh):
 * rank-4 maps (head dim, seqlen, heads, batch) of q, k and v, boxes of 128
 * bytes (64 16-bit or 128 e4m3 columns, 128-byte swizzle) by block_m (q) or
 * block_n (k, v) rows. */
typedef struct fg_tma_params {
    fg_tmap q, k, v;
} fg_tma_params;

#endif
