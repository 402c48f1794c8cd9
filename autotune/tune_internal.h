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

struct fg_tuner;
typedef struct fg_tune_pass {
    int backward;       /* the buffers include dout, lse, the gradients and the workspace */
    double flops_scale; /* of fg_attention_flops: 1 forward, 2.5 backward (BENCHMARK.md) */
    /* Median ms of reps launches of c on sh (one warm-up); < 0 with c->note
     * on failure. */
    double (*time)(struct fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, int reps,
                   fg_error *err);
    /* 1 when c's result agrees with the float64 reference, else 0 with c->note. */
    int (*verify)(struct fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b, fg_error *err);
} fg_tune_pass;

/* fg_tune's and fg_tune_backward's arguments, read and checked. */
typedef struct fg_tune_args {
    fg_tune_options opt;
    fg_attention_desc shape;
    const int *seqlens;
    int nb, top_k;
} fg_tune_args;

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

/* Reads opt_in (NULL: defaults) and shape and checks what both passes
 * require: dense, no score modification, 1..32 seqlens in distinct buckets. */
fg_status fg_tune_args_read(const fg_attention_desc *shape, const fg_tune_options *opt_in, fg_tune_args *a,
                            fg_error *err);
/* Steps 2-5 for spec s (its kind picks the tuning spec text) with
 * candidates cfgs[0..n) and the untuned choice heur (added when it is not
 * among them): compile, first pass, per bucket time, verify, store. */
fg_status fg_tune_run(fg_context *ctx, const fg_tune_pass *pass, const fg_tune_args *a, const fg_spec *s,
                      const fg_config *cfgs, int n, const fg_config *heur, fg_error *err);
/* The representative shape of a bucket: batch FG_TUNE_TOKENS / seqlen, heads
 * FG_TUNE_WIDTH / head_dim (q and kv alike), causal bottom-right. */
void fg_tune_shape_of(const fg_tuner *t, int seqlen, fg_tune_shape *sh);
/* Writes the failure of a CUDA call into c->note ("what: error"); returns 0. */
int fg_tune_note_cuda(const fg_tuner *t, fg_tune_cand *c, const char *what, CUresult rc);
#endif
