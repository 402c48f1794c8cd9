/* check.h: the one comparison of a kernel's output with the float64
 * reference, with its one tolerance.  `flashgen run` / the GPU tests (the
 * harness), `flashgen bench` and the tuner's verification of a winner all
 * decide pass or fail here; each chooses only which rows it compares. */
#ifndef FG_CHECK_H
#define FG_CHECK_H
#include <stdint.h>
#include "runtime/reference.h"

typedef struct fg_check {
    fg_dtype dtype;         /* of o (FP8 calls: their 16-bit output type) */
    int fp8;                /* e4m3 inputs: FP8's tolerance (fg_check_init_fp8) */
    fg_compare o, lse;      /* o: every element of the rows given; lse: the rows given with one */
    double ref_max;         /* largest |reference o| seen */
    long rows;
    /* set by fg_check_done */
    double tol_abs;         /* o max |error|: 4 units of the dtype's rounding on the largest output (at least 1) */
    double tol_rel;         /* o relative L2: 1e-2 bf16, 2e-3 fp16 */
    double tol_lse;         /* lse max |error| (natural log): 5e-3 */
    double sq_err_, sq_ref_, lse_sq_err_, lse_sq_ref_;
} fg_check;

void fg_check_init(fg_check *c, fg_dtype dtype);
/* For an FP8 (e4m3) call whose o is out (FG_FP16 or FG_BF16), against the
 * reference of the dequantised inputs: P and V meet in e4m3 on the tensor
 * cores, so o is held to relative L2 4e-2 and max |error| 0.1 of the
 * largest output (at least 1), as tests/test_gpu_fp8.c holds it. */
void fg_check_init_fp8(fg_check *c, fg_dtype out);
/* The check of a call: fg_check_init_fp8 with d's out_dtype for FG_E4M3
 * inputs, else fg_check_init with d's dtype. */
void fg_check_init_desc(fg_check *c, const fg_attention_desc *d);
/* One query row: got[0..d) as the kernel wrote it (dtype), ref its float64
 * reference; with has_lse, also the row's lse and its reference (-inf for a
 * row that sees no key). */
void fg_check_row(fg_check *c, const uint16_t *got, const double *ref, int d, int has_lse, double got_lse,
                  double ref_lse);
/* Finishes the metrics, sets the tolerances; 1 when every row passed (no
 * NaN, o within tol_abs and tol_rel, lse within tol_lse). */
int fg_check_done(fg_check *c);
/* "o max|err| 0.0039 (tol 0.0156), rel L2 ... ; lse max|err| ..." */
void fg_check_describe(const fg_check *c, char *buf, size_t n);
/* A gradient of the backward pass (n elements as the kernel wrote them)
 * against its float64 reference: 1 when nothing is NaN and the relative L2
 * error, with a floor of RMS 0.1 per element (where the exact gradient is
 * ~0 the error of D is all there is), is within the outputs' tol_rel;
 * *rel receives the error (infinity with a NaN). */
int fg_check_grad(const uint16_t *got, const double *ref, size_t n, fg_dtype dtype, double *rel);
#endif
