#include "runtime/timing.h"

#include <stdlib.h>

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

fg_status fg_time_median(const fg_cuda *cu, fg_launch_fn launch, void *ud, int warmup, int iters, CUdeviceptr flush,
                         size_t flush_bytes, double *ms, fg_error *err) {
    if (iters < 1 || iters > 1024 || warmup < 0)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "timing: iters must be 1..1024 (got %d), warmup >= 0", iters);
    float times[1024];
    CUevent ev[2] = {0, 0};
    fg_status st = FG_OK;
    CUresult r = cu->EventCreate(&ev[0], 0);
    if (!r) r = cu->EventCreate(&ev[1], 0);
    for (int it = 0; it < warmup + iters && !r && st == FG_OK; ++it) {
        if (flush_bytes) r = cu->MemsetD32(flush, (unsigned)it, flush_bytes / 4);
        const int timed = it >= warmup;
        if (!r && timed) r = cu->EventRecord(ev[0], NULL);
        if (!r) st = launch(ud, err);
        if (!r && st == FG_OK && timed) {
            r = cu->EventRecord(ev[1], NULL);
            if (!r) r = cu->EventSynchronize(ev[1]);
            if (!r) r = cu->EventElapsedTime(&times[it - warmup], ev[0], ev[1]);
        }
    }
    if (r && st == FG_OK) {
        char b[256];
        st = fg_fail(err, FG_ERR_CUDA, "timing: %s", fg_cuda_errstr(cu, r, b, sizeof b));
    }
    if (ev[0]) cu->EventDestroy(ev[0]);
    if (ev[1]) cu->EventDestroy(ev[1]);
    if (st != FG_OK) return st;
    qsort(times, (size_t)iters, sizeof times[0], cmp_float);
    *ms = times[iters / 2];
    return FG_OK;
}

fg_status fg_forward_launch(void *call, fg_error *err) {
    fg_forward_call *c = call;
    fg_status st = fg_attention_forward(c->ctx, c->desc, c->q, c->k, c->v, c->o, c->lse, NULL);
    return st == FG_OK ? FG_OK : fg_fail(err, st, "%s", fg_errmsg(c->ctx));
}
