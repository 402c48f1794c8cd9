/* fg_bwd_params.h: the backward kernels' argument block (templates/fg_bwd_kernel.cuh).
 *
 * Shared by the host (runtime/backward.c) and NVRTC, like fg_params.h: only
 * `int`, `long long`, float and pointers.  One block serves the three
 * kernels of a backward module (preprocess, main, dQ conversion). */
#ifndef FG_BWD_PARAMS_H
#define FG_BWD_PARAMS_H
#include "fg_mod_params.h"
#include "fg_params.h" /* fg_tmap */

typedef struct fg_bwd_params {
    const void *q, *k, *v, *o, *dout;   /* inputs, 16-byte aligned          */
    const float *lse;                    /* [batch, heads_q, seqlen_q]      */
    void *dq, *dk, *dv;                  /* outputs                          */
    /* workspace (fg_attention_backward_workspace) */
    float *dq_accum;  /* [batch, heads_q, seqlen_q, head_dim] fp32, zeroed by the preprocess */
    /* per query row, [batch * heads_q, rows_pad] (rows past seqlen_q up to
     * rows_pad: D 0, lse2 +inf, so that P = 0 there), written by the
     * preprocess: */
    float *dsum;      /* D = rowsum(dO * O)                                    */
    float *lse2;      /* lse * log2(e), +inf where lse = -inf (no key seen)    */
    int *dq_lock;     /* [batch, heads_q, lock_blocks]: deterministic turn   */

    /* element strides (batch, head, row); the last dimension is contiguous */
    long long q_s[3], k_s[3], v_s[3], o_s[3], do_s[3], dq_s[3], dk_s[3], dv_s[3];

    int batch, heads_q, heads_kv, group;
    int seqlen_q, seqlen_k;
    int causal_offset;     /* key j visible from query i iff j <= i + offset */
    float scale, scale_log2;
    int deterministic;     /* dQ added in key-block order (no race in the sum) */
    int lock_blocks;       /* ceil(seqlen_q / 16): lock entries per (batch, head) */
    int rows_pad;          /* seqlen_q rounded up to 128: the row pitch of dsum, lse2 */

    /* Block-sparse (variant sparse=1): the transposed layout
     * (runtime/layout_t.h).  Column c = (bi * sp_heads + hi) *
     * sp_num_kv_blocks + kb, bi = sp_batch == 1 ? 0 : b and likewise hi; its
     * query-block lists start at c * sp_num_q_blocks, full then partial. */
    const int *sp_full_num, *sp_full_idx, *sp_part_num, *sp_part_idx;
    int sp_batch, sp_heads, sp_num_q_blocks, sp_num_kv_blocks;
    int sp_block_q, sp_block_k;   /* layout block, in elements */
    /* constants of a pattern's element mask (the generated mask_mod reads p.mask_c[i]) */
    long long mask_c[16];

    /* Score modifications (variant mods=..., templates/fg_score.cuh): the
     * forward's fields (fg_mod_params.h) */
    FG_MOD_PARAMS
    /* d loss / d sinks, [heads_q] fp32 (NULL: not wanted): zeroed by the
     * preprocess, summed by the dQ conversion (fg_bwd_kernel.cuh). */
    float *dsinks;
    /* A user score expression and its derivative (Traits::score_mod and
     * score_mod_d): the forward's fields */
    FG_SCORE_PARAMS
} fg_bwd_params;

/* The second kernel parameter of the Hopper backward with TMA loads
 * (wgmma=2, templates/fg_bwd_wgmma.cuh): rank-4 maps (head dim, seqlen,
 * heads, batch), boxes of 64 columns by block_m (q, dout) or block_n (k, v)
 * rows, 128-byte swizzle (runtime/tensor_map.c). */
typedef struct fg_bwd_tma_params {
    fg_tmap q, k, v, dout;
} fg_bwd_tma_params;

#endif
