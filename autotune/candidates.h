/* candidates.h: the autotuner's search spaces, forward and backward.
 * fg_tune and fg_tune_backward are public (flashgen.h); they live in
 * autotune/tune_fwd.c and tune_bwd.c (driver: tune.c). */
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
/* The backward's search space (fg_tune_backward): the Hopper kernel's one
 * configuration (fg_bwd_wgmma_config) first where `hopper` (sm_90a) and
 * path (FG_PATH_AUTO or FG_PATH_WGMMA) allow it, then, unless path is
 * FG_PATH_WGMMA, every mma.sync configuration the template takes (block_m
 * 32/64 x block_n 32/64/128 x warps block_n/16 or twice that), each passing
 * fg_bwd_config_check for smem_limit; it holds every fg_bwd_candidates
 * entry.  Dense only.  Returns the count (<= max). */
int fg_tune_bwd_candidates(const fg_spec *s, int smem_limit, int hopper, int path, fg_config *out, int max);
#endif
