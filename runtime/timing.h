/* timing.h: the one way flashgen times a kernel (tuner, bench, harness). */
#ifndef FG_TIMING_H
#define FG_TIMING_H
#include "runtime/cuda_api.h"

/* Enqueues one launch on the default stream. */
typedef fg_status (*fg_launch_fn)(void *ud, fg_error *err);

/* Median milliseconds of `iters` launches (at most 1024) after `warmup`
 * untimed ones, each between two CUDA events on the default stream.  When
 * flush_bytes > 0, `flush` is overwritten before every launch, outside the
 * timed region, so that each starts with a cold L2. */
/* An fg_attention_forward call on the default stream, as an fg_launch_fn
 * (ud: fg_forward_call *; the error carries fg_errmsg). */
typedef struct fg_forward_call {
    fg_context *ctx;
    const fg_attention_desc *desc;
    const void *q, *k, *v;
    void *o;
    float *lse;
} fg_forward_call;
fg_status fg_forward_launch(void *call, fg_error *err);

fg_status fg_time_median(const fg_cuda *cu, fg_launch_fn launch, void *ud, int warmup, int iters, CUdeviceptr flush,
                         size_t flush_bytes, double *ms, fg_error *err);
#endif
