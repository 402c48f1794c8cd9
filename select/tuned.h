/* tuned.h: the keys of tuning results (spec text, shape bucket) and the
 * look-up of the one that applies to a call.  fg_tune (autotune/) writes
 * them under these keys; the runtime reads them through fg_tuned_config. */
#ifndef FG_TUNED_H
#define FG_TUNED_H
#include <stddef.h>
#include "cache/store.h"
#include "gen/spec.h"

/* "hdim=128,dtype=bf16,causal=1,sparse=0,path=auto[,layout=128x128][,mask=<hash>]". */
void fg_tuning_spec_text(const fg_spec *s, int path, int block_q, int block_k, char *buf, size_t n);
/* A call's shape bucket, "sq2048,sk4096": the next power of two of each
 * seqlen, clamped to 128..16384. */
void fg_shape_bucket(int seqlen_q, int seqlen_k, char *buf, size_t n);
/* The bucket of one seqlen: the next power of two, clamped to 128..16384. */
int fg_bucket_len(int seqlen);

/* The tuned configuration stored under gpu (the store's GPU identity) for
 * spec s, path (fg_kernel_path), layout block (0 x 0: dense) and the bucket
 * of the seqlens.  Returns 1 and fills *out only when a stored configuration
 * exists and still passes fg_config_check for smem_limit, divides the layout
 * block, and needs wgmma only where wgmma_ok; a stored one that fails is
 * ignored with a warning on stderr.  A failing store read is a miss. */
int fg_tuned_config(fg_store *store, const char *gpu, const fg_spec *s, int path, int block_q, int block_k,
                    int seqlen_q, int seqlen_k, int smem_limit, int wgmma_ok, fg_config *out);
#endif
