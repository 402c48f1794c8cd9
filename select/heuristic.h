/* heuristic.h: the built-in block-configuration choice, used until a tuned
 * result exists, and the feasibility rules the tuner shares.  Pure
 * functions of the spec and the device (its opt-in shared memory and
 * whether it has the Hopper path); compiling is the caller's, through
 * fg_try_compile. */
#ifndef FG_HEURISTIC_H
#define FG_HEURISTIC_H
#include "gen/spec.h"

/* Dynamic shared memory of a configuration, in bytes (the same formula the
 * template fwd_mma.lua returns; a cpu test checks they agree). */
int fg_config_smem_bytes(const fg_spec *s, const fg_config *c);
/* Estimated live registers per thread of the main loop. */
int fg_config_reg_estimate(const fg_spec *s, const fg_config *c);
/* Checks a complete configuration: FG_ERR_UNSUPPORTED with the reason when
 * it cannot run on a device with smem_limit bytes of opt-in shared memory. */
fg_status fg_config_check(const fg_spec *s, const fg_config *c, int smem_limit, fg_error *err);
/* Fills the unset fields of *c with defaults, then checks it. */
fg_status fg_config_complete(const fg_spec *s, fg_config *c, int smem_limit, fg_error *err);
/* Whether c names any part of a configuration (a block size, warps, stages,
 * q_in_regs, min_blocks or wgmma=1): then it is completed with defaults
 * (fg_config_complete) and never replaced by a tuned or heuristic choice. */
int fg_config_is_explicit(const fg_config *c);
/* The fg_kernel_path a configuration's wgmma field names (-1: FG_PATH_AUTO). */
int fg_config_path(const fg_config *c);
/* The wgmma_ok argument of fg_heuristic_candidates for a device whose Hopper
 * families are `hopper` (0 none, 1 wgmma, 2 TMA and wgmma) and a call on
 * `path`: every family for FG_PATH_AUTO, only the named one otherwise. */
int fg_heuristic_families(int hopper, int path);

/* The heuristic's ranked candidates for a spec: feasible for smem_limit and,
 * when block_q/block_k are non-zero (block-sparse), dividing the layout
 * block; Hopper configurations first: warp-specialised TMA ones when wgmma_ok is 2, then wgmma ones when it is 1 or 2.  The caller compiles them in order and takes the first that ptxas
 * compiles without spills (register allocation at the 255 cap is not
 * predictable enough to decide that here).  Returns the count (<= max). */
/* wgmma_ok | FG_FAMILY_ONLY: only the candidates of that one family (1 wgmma, 2 TMA) */
#define FG_FAMILY_ONLY 0x10
int fg_heuristic_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, fg_config *out,
                            int max);
/* Causal calls of up to 2048 query and key rows on the TMA family: the
 * tile that `flashgen tune` measured >= 1.07x the candidate order's first
 * there and bench/vs_torch.py confirmed (H200, docs/PERF.md v7), in *c, for a dense 16-bit spec without
 * score modifications and equal head dims of 64, 128 or 256 whose seqlen
 * buckets (fg_bucket_len) have one; else 0.  The caller compiles it and
 * falls back to the candidates when it spills. */
int fg_heuristic_short_causal(const fg_spec *s, int bucket_q, int bucket_k, fg_config *c);
/* Whether the Hopper wgmma path can run on arch ("sm_90a" only). */
int fg_arch_has_wgmma(const char *arch);

#include "gen/compile.h"
/* Compiles configuration c of spec s (however the caller compiles) and
 * reports ptxas's statistics. */
typedef fg_status (*fg_try_compile)(void *ud, const fg_spec *s, const fg_config *c, fg_kernel_stats *st, fg_error *err);
/* Walks fg_heuristic_candidates in order and returns in *out the first that
 * compiles without spills or stack; if every candidate spills, the one with
 * the fewest spill bytes.  Compile errors are returned as they come. */
fg_status fg_pick_config(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, fg_try_compile fn,
                         void *ud, fg_config *out, fg_error *err);
/* The heuristic's configuration for a call on kernel path `path`
 * (fg_kernel_path) of a device whose Hopper families are wgmma_ok (0 none,
 * 1 wgmma, 2 TMA and wgmma): fg_pick_config over the families path allows;
 * FG_ERR_UNSUPPORTED when FG_PATH_WGMMA or FG_PATH_TMA was asked and cannot run. */
fg_status fg_heuristic_config(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, int path,
                              fg_try_compile fn, void *ud, fg_config *out, fg_error *err);
#endif
