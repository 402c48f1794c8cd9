/* candidates.h: the autotuner's search space.  fg_tune itself is public
 * (flashgen.h); it lives in autotune/tune.c. */
#ifndef FG_CANDIDATES_H
#define FG_CANDIDATES_H
#include "gen/spec.h"

/* Every configuration the kernels expose for spec s that can run on a device
 * with smem_limit bytes of opt-in shared memory per block (read from the
 * driver) and whose estimated registers fit the 255 cap, and (block_q,
 * block_k non-zero) that divide a layout block.  wgmma_ok: the Hopper path
 * is available; path (fg_kernel_path) restricts the families.  ptxas prunes
 * the rest (spills) when fg_tune compiles them.  Returns the count (<= max). */
int fg_tune_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, int path,
                       fg_config *out, int max);
#endif
