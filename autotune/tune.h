/* tune.h: the autotuner's candidate space and the keys of tuning results.
 * fg_tune itself is public (flashgen.h); it lives in autotune/tune.c. */
#ifndef FG_TUNE_H
#define FG_TUNE_H
#include <stddef.h>
#include "gen/spec.h"

/* Every configuration the kernels expose for spec s that can run on a device
 * with smem_limit bytes of opt-in shared memory per block (read from the
 * driver) and whose estimated registers fit the 255 cap, and (block_q,
 * block_k non-zero) that divide a layout block.  wgmma_ok: the Hopper path
 * is available; path (fg_kernel_path) restricts the families.  ptxas prunes
 * the rest (spills) when fg_tune compiles them.  Returns the count (<= max). */
int fg_tune_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, int path,
                       fg_config *out, int max);

/* "hdim=128,dtype=bf16,causal=1,sparse=0,path=auto[,layout=128x128]". */
void fg_tuning_spec_text(const fg_spec *s, int path, int block_q, int block_k, char *buf, size_t n);
/* A call's shape bucket, "sq2048,sk4096": the next power of two of each
 * seqlen, clamped to 128..16384. */
void fg_shape_bucket(int seqlen_q, int seqlen_k, char *buf, size_t n);
/* The bucket of one seqlen: the next power of two, clamped to 128..16384. */
int fg_bucket_len(int seqlen);
#endif
