#ifndef FG_LAYOUT_H
#define FG_LAYOUT_H
#include "flashgen.h"
#include "gen/error.h"
/* Checks a host layout description: sizes, counts in [0, num_kv_blocks],
 * indices in range, no key block listed twice in a row.  No device needed. */
fg_status fg_layout_validate(const fg_block_layout_desc *d, fg_error *err);
#endif
