/* tensor_map.h: TMA tensor maps of q, k and v for the warp-specialised
 * Hopper kernels (templates/fg_fwd_ws.cuh), encoded on the host per call. */
#ifndef FG_TENSOR_MAP_H
#define FG_TENSOR_MAP_H
#include "gen/spec.h"
#include "runtime/cuda_api.h"
#include "fg_params.h"
#include "flashgen.h"

/* Whether TMA can describe these strides (elements; the dims of size 1 are
 * never stepped over, so their strides do not matter): every other stride
 * non-zero, a multiple of 16 bytes and under 2^40 bytes. */
int fg_tma_strides_ok(const int64_t s[3], int batch, int heads, int seqlen);

/* fg_tma_strides_ok of q, k and v of a call (the forward's and the
 * backward's TMA kernels both load the three). */
int fg_tma_qkv_ok(const fg_attention_desc *d);

/* Whether the TMA kernels' tile index (int, fg_tile_scheduler.cuh) holds
 * every (query block, head, batch) tile of this call with room for one more
 * round of the grid: ceil(seqlen_q / 64) * heads_q * batch <= 2^30 (64 is
 * the smallest block_m). */
int fg_tma_tiles_ok(int batch, int heads_q, int seqlen_q);

/* Encodes p's q, k and v (pointers, strides and sizes already in p) as
 * rank-4 maps (head dim, seqlen, heads, batch): boxes of 64 columns by
 * block_m (q) or block_n (k, v) rows, 128-byte swizzle, zero fill. */
fg_status fg_tma_encode(const fg_cuda *cu, const fg_variant *v, const fg_fwd_params *p, fg_tma_params *out,
                        fg_error *err);
/* The same for the Hopper backward with TMA loads (wgmma=2): q and dout in
 * boxes of block_m rows, k and v of block_n (p's strides and sizes). */
#include "fg_bwd_params.h"
fg_status fg_tma_encode_bwd(const fg_cuda *cu, const fg_variant *v, const fg_bwd_params *p, fg_bwd_tma_params *out,
                            fg_error *err);
#endif
