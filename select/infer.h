/* infer.h: the inference choices (split-KV and GQA packing) as pure
 * functions of the sizes and the device, so that they can be tested without
 * a GPU.  runtime/infer.c applies them. */
#ifndef FG_SELECT_INFER_H
#define FG_SELECT_INFER_H

/* Most splits of one query tile's keys (the combine kernel loops over them;
 * the workspace grows with them). */
#define FG_MAX_SPLITS 128

/* Rows of a decode tile: a call whose heads have fewer queries than this is
 * decode-shaped (GQA packing, 64-row tiles: runtime/choose.c, infer.c). */
#define FG_DECODE_ROWS 64

/* Query heads packed into a tile's rows: the GQA group when the queries of
 * one head alone do not fill a block_m tile (decode, short prefill), else 1. */
int fg_infer_pack(int group, int seqlen_q, int block_m);

/* Whether `tiles` CTAs already fill the GPU's `slots` (4/5 of them or
 * more): then no split-KV is wanted (fg_infer_splits). */
int fg_infer_fills(long long tiles, int slots);

/* Splits of the key range: 1 when the tiles already fill the GPU; else the
 * fewest splits that bring the last wave of CTAs close to full (within 85%
 * of the best over 1..max), with at least one key tile per split.
 * tiles: CTAs without splitting; key_tiles: key tiles of the longest row of
 * tiles; slots: CTAs that run at once (SMs x CTAs per SM). */
int fg_infer_splits(long long tiles, int key_tiles, int slots, int max_splits);

/* Bytes of the split-KV workspace: fp32 partial outputs and logsumexps of
 * [splits, batch, heads_q, seqlen_q] rows of head_dim_v, then one int
 * counter per query tile (`tiles` of them), each part rounded up to 256
 * bytes; 0 when splits <= 1.  fg_infer_workspace_parts gives the offsets. */
unsigned long long fg_infer_workspace_bytes(int splits, int batch, int heads_q, int seqlen_q, int head_dim_v,
                                            long long tiles);
void fg_infer_workspace_parts(int splits, int batch, int heads_q, int seqlen_q, int head_dim_v,
                              unsigned long long *lse_offset, unsigned long long *count_offset);
#endif
