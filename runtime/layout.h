#ifndef FG_LAYOUT_H
#define FG_LAYOUT_H
#include "flashgen.h"
#include "gen/error.h"
/* Checks a host layout description: sizes, counts in [0, num_kv_blocks],
 * indices in range, no key block listed twice in a row.  No device needed. */
fg_status fg_layout_validate(const fg_block_layout_desc *d, fg_error *err);
struct fg_sparse_sched_key;
/* The device tile list of the TMA forward's persistent grid for this
 * layout and key (runtime/sparse_sched.h), built and uploaded on first need
 * (under the layout's lock, with ctx's CUDA context current; safe while a
 * CUDA graph is being captured on any stream, the call's own included:
 * runtime/layout.c, build_list), or NULL: the call then runs one CTA per
 * tile.  NULL when the layout already keeps FG_LAYOUT_SCHEDS lists or when
 * building failed (out of memory, an old driver), which is remembered. */
const int *fg_layout_sched(fg_context *ctx, const fg_block_layout *L, const struct fg_sparse_sched_key *key);
#endif
