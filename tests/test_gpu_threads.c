/* One context used from 8 threads at once: every thread runs checked cases
 * (harness: fresh inputs, poisoned outputs, float64 reference) on two
 * variants all threads share and one of its own.  All must pass, and the
 * context must hold each variant key exactly once (one compile per variant
 * per process).  Exit 77 (skipped) without a GPU. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"
#include "test_gpu_util.h"
#include "test_util.h"
#include "tools/harness.h"

#define NTHREADS 8
static fg_context *g_ctx;
static int g_fail[NTHREADS];

static void *worker(void *arg) {
    const int t = (int)(intptr_t)arg;
    static const int own_dims[NTHREADS] = {32, 40, 48, 56, 72, 80, 88, 104};
    for (int rep = 0; rep < 3; ++rep) {
        fg_case c;
        memset(&c, 0, sizeof c);
        const int which = (t + rep) % 3;
        const int d = which == 0 ? 64 : which == 1 ? 128 : own_dims[t];
        fg_attention_desc_init(&c.desc, FG_BF16, d, 1 + t % 2, 2, 1, 129 + 37 * t, 200 + 11 * rep);
        c.desc.causal = which == 1 ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
        c.seed = 1000 + 10 * (uint64_t)t + (uint64_t)rep;
        fg_case_result r;
        if (fg_harness_run(g_ctx, &c, 0, &r)) {
            char desc[256];
            fg_case_describe(&c, desc, sizeof desc);
            fprintf(stderr, "thread %d: %s: %s\n", t, desc, r.msg);
            g_fail[t]++;
        }
    }
    return NULL;
}

int main(void) {
    gpu_or_skip();
    fg_context_create(&g_ctx);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; ++t) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < NTHREADS; ++t) pthread_join(th[t], NULL);
    for (int t = 0; t < NTHREADS; ++t) CHECK(g_fail[t] == 0, "thread %d had %d failing cases", t, g_fail[t]);
    int n = 0, dup = 0;
    for (fg_kernel *a = g_ctx->kernels; a; a = a->next, ++n)
        for (fg_kernel *b = a->next; b; b = b->next) dup += !strcmp(a->key, b->key);
    printf("%d kernels compiled by %d threads, %d duplicates\n", n, NTHREADS, dup);
    CHECK(dup == 0, "a variant was compiled twice");
    CHECK(n >= 2 + NTHREADS, "expected at least %d kernels, got %d", 2 + NTHREADS, n);
    fg_context_destroy(g_ctx);
    return test_summary("test_gpu_threads");
}
