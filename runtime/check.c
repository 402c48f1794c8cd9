/* check.c: kernel output against the float64 reference (check.h). */
#include "runtime/check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void fg_check_init(fg_check *c, fg_dtype dtype) {
    memset(c, 0, sizeof *c);
    c->dtype = dtype;
}

void fg_check_init_fp8(fg_check *c, fg_dtype out) {
    fg_check_init(c, out);
    c->fp8 = 1;
}

void fg_check_init_desc(fg_check *c, const fg_attention_desc *d) {
    if (d->dtype == FG_E4M3) fg_check_init_fp8(c, d->out_dtype);
    else fg_check_init(c, d->dtype);
}

void fg_check_row(fg_check *c, const uint16_t *got, const double *ref, int d, int has_lse, double got_lse,
                  double ref_lse) {
    for (int x = 0; x < d; ++x) {
        const double a = fg_half_to_float(got[x], c->dtype), e = fabs(a - ref[x]);
        c->o.n++;
        if (isnan(a)) { c->o.nan_count++; continue; }
        if (e > c->o.max_abs) c->o.max_abs = e;
        if (fabs(ref[x]) > c->ref_max) c->ref_max = fabs(ref[x]);
        c->sq_err_ += e * e;
        c->sq_ref_ += ref[x] * ref[x];
    }
    c->rows++;
    if (!has_lse) return;
    c->lse.n++;
    if (isnan(got_lse)) c->lse.nan_count++;
    else if (isinf(ref_lse) || isinf(got_lse)) {
        if (!(isinf(ref_lse) && isinf(got_lse) && ref_lse < 0 && got_lse < 0)) c->lse.max_abs = INFINITY;
    } else {
        const double e = fabs(got_lse - ref_lse);
        if (e > c->lse.max_abs) c->lse.max_abs = e;
        c->lse_sq_err_ += e * e;
        c->lse_sq_ref_ += ref_lse * ref_lse;
    }
}

/* The relative L2 tolerance of a dtype, outputs and gradients alike. */
static double rel_tol(fg_dtype dt) { return dt == FG_BF16 ? 1e-2 : 2e-3; }

int fg_check_done(fg_check *c) {
    c->o.rel_l2 = c->sq_ref_ > 0 ? sqrt(c->sq_err_ / c->sq_ref_) : sqrt(c->sq_err_);
    c->lse.rel_l2 = c->lse_sq_ref_ > 0 ? sqrt(c->lse_sq_err_ / c->lse_sq_ref_) : sqrt(c->lse_sq_err_);
    const double eps = c->dtype == FG_BF16 ? 1.0 / 256 : 1.0 / 2048;
    c->tol_abs = (c->fp8 ? 0.1 : 4 * eps) * (c->ref_max > 1 ? c->ref_max : 1);
    c->tol_rel = c->fp8 ? 4e-2 : rel_tol(c->dtype);
    c->tol_lse = 5e-3;
    return c->o.nan_count == 0 && c->lse.nan_count == 0 && c->o.max_abs <= c->tol_abs && c->o.rel_l2 <= c->tol_rel &&
           c->lse.max_abs <= c->tol_lse;
}

void fg_check_describe(const fg_check *c, char *buf, size_t n) {
    int w = snprintf(buf, n, "%ld rows: o max|err| %.3g (tol %.3g), rel L2 %.3g (tol %.3g), NaN %zu", c->rows,
                     c->o.max_abs, c->tol_abs, c->o.rel_l2, c->tol_rel, c->o.nan_count);
    if (c->lse.n && w > 0 && (size_t)w < n)
        snprintf(buf + w, n - (size_t)w, "; lse max|err| %.3g (tol %.3g), NaN %zu", c->lse.max_abs, c->tol_lse,
                 c->lse.nan_count);
}

int fg_check_grad(const uint16_t *got, const double *ref, size_t n, fg_dtype dtype, double *rel) {
    double e = 0, r = 0;
    size_t nans = 0;
    for (size_t i = 0; i < n; ++i) {
        const double g = fg_half_to_float(got[i], dtype);
        if (isnan(g)) { ++nans; continue; }
        e += (g - ref[i]) * (g - ref[i]);
        r += ref[i] * ref[i];
    }
    const double floor = 1e-2 * (double)n;
    *rel = nans ? INFINITY : sqrt(e / (r > floor ? r : floor));
    return !nans && *rel <= rel_tol(dtype);
}
