/* layout_t.h: the transposed block-sparse layout the backward pass walks.
 * The forward reads, per (batch, head, query block), the key blocks it
 * sees; the backward's CTAs own key blocks, so they read, per (batch,
 * head, key block), the query blocks that see it: full and partial lists,
 * each in ascending query-block order.  Built once on the host when a
 * layout is uploaded (fg_layout_upload) and kept with it. */
#ifndef FG_LAYOUT_T_H
#define FG_LAYOUT_T_H
#include <stddef.h>
#include <stdint.h>
#include "flashgen.h"

/* int32 entries the transposed layout of d takes: two counts per column
 * (batch * heads * num_kv_blocks columns) and two lists of num_q_blocks
 * per column. */
size_t fg_layout_t_entries(const fg_block_layout_desc *d);
/* Fills out (fg_layout_t_entries(d) int32, any content) from a validated
 * layout: full_num | part_num | full_idx | part_idx, column c = (b * heads
 * + h) * num_kv_blocks + kb, its lists at c * num_q_blocks. */
void fg_layout_transpose(const fg_block_layout_desc *d, int32_t *out);
#endif
