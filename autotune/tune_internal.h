/* tune_internal.h: the autotuner's one driver (tune.c: parallel compiles,
 * progress, first pass, buckets, the 1% rule, Ctrl-C, storing) and the
 * small hooks in which the passes differ: how a candidate is launched and
 * timed, and how its result is checked against the float64 reference
 * (tune_fwd.c: fg_tune; tune_bwd.c: fg_tune_backward).  Each pass picks its
 * own candidates and baseline and hands them to fg_tune_run. */
#ifndef FG_TUNE_INTERNAL_H
#define FG_TUNE_INTERNAL_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/internal.h"

#define FG_TUNE_TOKENS 16384 /* batch * seqlen of a representative shape (BENCHMARK.md) */
#define FG_TUNE_WIDTH 2048   /* heads * head_dim */

typedef struct fg_tune_cand {
    fg_config cfg;
    char text[192];
    fg_kernel *k;
    int usable;
    int heuristic;
    int verified;    /* a pass whose check does not depend on the bucket (backward) remembers a pass here */
    char note[96];
    double first_ms; /* first pass */
} fg_tune_cand;

/* Device buffers for the largest representative shape; every bucket uses a
 * prefix.  q, k, v, o always; the rest for the backward. */
typedef struct fg_tune_bufs {
    CUdeviceptr q, k, v, o;
    CUdeviceptr dout, lse, dq, dk, dv, ws;
    uint16_t *hq, *hk, *hv, *hdo; /* host copies of q, k, v, dout */
    size_t elems, ws_bytes;
    int o_seqlen; /* backward: the bucket seqlen whose forward o and lse are in o, lse (0: none) */
} fg_tune_bufs;

typedef struct fg_tune_shape {
    fg_attention_desc d;
    double flops; /* of the pass */
} fg_tune_shape;

/* fg_tune's and fg_tune_backward's arguments, read and checked: dense, no
 * score modification, 1..32 seqlens in distinct buckets. */
typedef struct fg_tune_args {
    fg_tune_options opt;
    fg_attention_desc shape;
    fg_attention_desc probe; /* 1 x 1 x 128 of shape's dtype, head dims, causal and path: the pass's plan checks it */
    const int *seqlens;
    int nb, top_k;
} fg_tune_args;

#define FG_TUNE_MAX_CAND 512

struct fg_tuner;
typedef struct fg_tune_pass {
    int backward;       /* the buffers include dout, lse, the gradients and the workspace */
    double flops_scale; /* of fg_attention_flops: 1 forward, 2.5 backward (BENCHMARK.md) */
    /* The pass's own checks of a (the device is bound), its spec, its
     * candidates (at most max, in cfgs, count in *n) and the configuration
     * its calls take without a tuned result (*heur). */
    fg_status (*setup)(fg_context *ctx, const fg_tune_args *a, fg_spec *spec, fg_config *cfgs, int max, int *n,
                       fg_config *heur, fg_error *err);
    /* Median ms of reps launches of c on sh (one warm-up); < 0 with c->note
     * on failure. */
    double (*time)(struct fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, int reps,
                   fg_error *err);
    /* 1 when c's result agrees with the float64 reference, else 0 with c->note. */
    int (*verify)(struct fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, fg_error *err);
} fg_tune_pass;

typedef struct fg_tuner {
    fg_context *ctx;
    const fg_tune_options *opt;
    const fg_tune_pass *pass;
    fg_spec spec;
    char spec_text[192];
    fg_tune_cand *c;
    int n;
    pthread_mutex_t mu; /* progress, next */
    int next;
    int done, total;
    double t0;
    const char *bucket;
    int best; /* index into c, -1 */
    double best_tflops;
    fg_status fail; /* first compile-phase error that is not a candidate's own */
    fg_error fail_err;
} fg_tuner;

/* fg_tune and fg_tune_backward: reads opt (NULL: defaults) and shape,
 * binds the device, then the pass's setup and steps 2-5 (compile, first
 * pass, per bucket time, verify, store) under the tuning spec text of the
 * pass's spec; the untuned choice joins the candidates when it is not
 * among them.  Errors go to the context (fg_errmsg). */
fg_status fg_tune_pass_run(fg_context *ctx, const fg_attention_desc *shape, const fg_tune_options *opt,
                           const fg_tune_pass *pass);
/* The representative shape of a bucket: batch FG_TUNE_TOKENS / seqlen, heads
 * FG_TUNE_WIDTH / head_dim (q and kv alike), causal bottom-right. */
void fg_tune_shape_of(const fg_tuner *t, int seqlen, fg_tune_shape *sh);
/* Writes the failure of a CUDA call into c->note ("what: error"); returns 0. */
int fg_tune_note_cuda(const fg_tuner *t, fg_tune_cand *c, const char *what, CUresult rc);
#endif
