/* harness.h: one attention case on the GPU, end to end: fresh random
 * inputs, NaN-poisoned outputs, forward, download, check against the
 * float64 CPU reference, optional timing.  Shared by `flashgen run`,
 * `flashgen bench` and the gpu tests. */
#ifndef FG_HARNESS_H
#define FG_HARNESS_H
#include "flashgen.h"
#include "gen/spec.h"
#include "runtime/reference.h"

typedef struct fg_case {
    fg_attention_desc desc; /* sizes, dtype, causal, block config; strides are set by the harness */
    int bhsd;               /* tensors laid out [batch, heads, seqlen, d] instead of [batch, seqlen, heads, d] */
    int row_pad;            /* extra elements between rows (multiple of 8): non-contiguous strides */
    double density;         /* > 0: block-sparse with a random layout of this density */
    int block;              /* layout block (default 128); with a pattern, the query block */
    fg_pattern *pattern;    /* non-NULL: block-sparse layout and element mask from this pattern */
    int block_k;            /* with a pattern: the key block (default: block) */
    uint64_t seed;
    long check_rows_max;    /* 0: check every row; else about this many rows */
} fg_case;

typedef struct fg_case_result {
    fg_status status;
    char msg[8192];
    fg_compare o, lse;
    size_t unwritten;       /* output elements still NaN (poison) */
    double tol_abs, tol_rel;
    int pass;
    double ms_median, tflops;
    long checked_rows;
    double flops;           /* dense: as BENCHMARK.md counts (causal halves); sparse: the computed blocks */
    double density;         /* sparse: computed blocks / all blocks */
} fg_case_result;

/* Runs c; times iters launches (0: no timing).  Returns 0 when the case ran
 * and passed, 1 when it failed (r says why). */
int fg_harness_run(fg_context *ctx, const fg_case *c, int iters, fg_case_result *r);
/* A description like "hdim=128 bf16 causal=bottom_right b=2 hq=8 hkv=2 sq=1000 sk=777 bshd" */
void fg_case_describe(const fg_case *c, char *buf, size_t n);
#endif
