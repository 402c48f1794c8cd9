/* bwd_config.h: block configurations of the backward kernels
 * (templates/bwd_mma.lua; wgmma=1: bwd_wgmma.lua): block_m is the query
 * tile, block_n the key block one CTA owns, warps block_n/16 key-row groups
 * times 1 or 2 column splits (Hopper: 64 x 128, two warpgroups).
 * These are the heuristic's rules and the checks every configuration
 * passes.  fg_attention_backward first takes `flashgen tune kind=bwd`'s
 * result for the call's bucket (fg_tune_backward, autotune/tune_bwd.c,
 * over fg_tune_bwd_candidates; looked up by fg_tuned_config under the
 * ",kind=bwd" spec text), except for deterministic calls; without one,
 * fg_bwd_auto_config, then fg_bwd_pick_config. */
#ifndef FG_BWD_CONFIG_H
#define FG_BWD_CONFIG_H
#include "gen/spec.h"

/* The Hopper backward (templates/bwd_wgmma.lua, wgmma=1: cp.async loads;
 * fg_bwd_set_loads makes it 2, TMA loads) for s: 1 and its
 * one configuration in *c when s is dense fp16/bf16 with head dims 64 or
 * 128 each, else 0.  The runtime takes it on sm_90a unless the call is
 * deterministic or names another path. */
int fg_bwd_wgmma_config(const fg_spec *s, fg_config *c);
/* FG_PATH_AUTO's rule, for the runtime and the CLI alike: the Hopper
 * kernel (its configuration in *c, returns 1) on a device with wgmma
 * (`hopper`) where fg_bwd_wgmma_config offers it and its shared memory
 * fits smem_limit (head dim 256 takes 231200 bytes), unless the call is
 * deterministic (the ordered dQ sum is the mma.sync kernel's); else 0 and
 * the mma.sync candidates decide. */
int fg_bwd_auto_config(const fg_spec *s, int hopper, int deterministic, int smem_limit, fg_config *c);
/* How a Hopper configuration (wgmma >= 1) loads: by TMA (wgmma = 2) where
 * the call's strides allow it (tma_ok: fg_tma_strides_ok of q, k, v and
 * dout), else by cp.async (wgmma = 1).  FG_PATH_AUTO's rule, after the configuration is
 * chosen (tuned or heuristic); other configurations are left alone. */
void fg_bwd_set_loads(const fg_spec *s, fg_config *c, int tma_ok);
/* Dynamic shared memory of a backward configuration (the formula
 * bwd_mma.lua returns and its generated source static_asserts). */
int fg_bwd_smem_bytes(const fg_spec *s, const fg_config *c);
/* FG_ERR_UNSUPPORTED with the reason when c cannot run (shape rules of the
 * template, smem_limit bytes of opt-in shared memory). */
fg_status fg_bwd_config_check(const fg_spec *s, const fg_config *c, int smem_limit, fg_error *err);
/* Ranked candidates for s that fit smem_limit and, when block_q/block_k
 * are non-zero (block-sparse), divide the layout block; returns the count
 * (<= max).  The caller takes the first that compiles without spills. */
int fg_bwd_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, fg_config *out, int max);
/* An explicit configuration (any field set): the unset fields from the first
 * candidate with the same block sizes (else the first), then checked, also
 * against the layout block (block_q/block_k non-zero). */
fg_status fg_bwd_config_complete(const fg_spec *s, fg_config *c, int smem_limit, int block_q, int block_k, fg_error *err);

#include "select/heuristic.h"
/* The first candidate that compiles (through fn) without spills or stack,
 * else the one with the fewest spill bytes. */
fg_status fg_bwd_pick_config(const fg_spec *s, int smem_limit, int block_q, int block_k, fg_try_compile fn, void *ud,
                             fg_config *out, fg_error *err);
#endif
