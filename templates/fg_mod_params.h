/* fg_mod_params.h: the kernel arguments of the built-in score modifications
 * (templates/fg_score.cuh; docs/SCORE-WIRING.md), one list for the
 * forward's block (fg_params.h) and the backward's (fg_bwd_params.h): the
 * same fields under the same names, so that fg_score.cuh's helpers read
 * either.  Host and NVRTC, like the blocks that include it. */
#ifndef FG_MOD_PARAMS_H
#define FG_MOD_PARAMS_H

#define FG_MOD_PARAMS                                                                  \
    const float *alibi_slopes;     /* slope of (b, h): [b * alibi_batch_stride + h] */ \
    long long alibi_batch_stride;                                                      \
    const float *sinks;            /* [heads_q], logits                           */   \
    float softcap;                 /* cap                                         */   \
    float softcap_scale;           /* scale / cap: tanh's argument is S * this    */   \
    int mod_offset;                /* key aligned with query i: i + mod_offset    */   \
    int window_left, window_right; /* -1: unbounded                               */   \
    int pad2_;

/* A user score expression (Traits::score_mod, rendered by
 * gen/score_render.c): its constants, tables and table lengths; one list
 * for the forward's block and the backward's. */
#define FG_SCORE_PARAMS          \
    long long score_ci[16];      \
    float score_cf[16];          \
    const int *score_ti[8];      \
    const float *score_tf[8];    \
    long long score_tn[8];

#endif
