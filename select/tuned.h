/* tuned.h: the keys of tuning results (spec text, shape bucket) and the
 * look-up of the one that applies to a call.  fg_tune (autotune/) writes
 * them under these keys; the runtime reads them through fg_tuned_config. */
#ifndef FG_TUNED_H
#define FG_TUNED_H
#include <stddef.h>
#include "cache/store.h"
#include "gen/spec.h"

/* "hdim=128,dtype=bf16,causal=1,sparse=0,path=auto[,kind=bwd][,layout=128x128][,mask=<hash>]":
 * ",kind=bwd" for a backward spec (s->kind FG_KIND_BWD) only, so forward
 * and backward results never share a row and forward texts are unchanged. */
void fg_tuning_spec_text(const fg_spec *s, int path, int block_q, int block_k, char *buf, size_t n);
/* A call's shape bucket, "sq2048,sk4096": the next power of two of each
 * seqlen, clamped to 128..16384. */
void fg_shape_bucket(int seqlen_q, int seqlen_k, char *buf, size_t n);
/* The bucket of one seqlen: the next power of two, clamped to 128..16384. */
int fg_bucket_len(int seqlen);

/* Whether a stored configuration c can run spec s here on path (an
 * fg_kernel_path: FG_PATH_MMA, _WGMMA and _TMA take only their own family,
 * wgmma=0, 1 and 2; FG_PATH_AUTO any): the forward's fg_config_check or,
 * for a backward spec, fg_bwd_config_check against smem_limit; dividing the
 * layout block (block_q/block_k non-zero); wgmma=1 only where wgmma_ok >= 1,
 * wgmma=2 only where it is 2.  err: why not. */
int fg_tuned_config_fits(const fg_spec *s, const fg_config *c, int path, int smem_limit, int block_q, int block_k,
                         int wgmma_ok, fg_error *err);
/* The tuned configuration stored under gpu (the store's GPU identity) for
 * spec s, path (fg_kernel_path), layout block (0 x 0: dense) and the bucket
 * of the seqlens.  Returns 1 and fills *out only when a stored configuration
 * exists and still fits (fg_tuned_config_fits): forward and backward
 * specs alike, each under its own spec text; a stored one that fails is
 * ignored with a warning on stderr.  A failing store read is a miss. */
int fg_tuned_config(fg_store *store, const char *gpu, const fg_spec *s, int path, int block_q, int block_k,
                    int seqlen_q, int seqlen_k, int smem_limit, int wgmma_ok, fg_config *out);
#endif
