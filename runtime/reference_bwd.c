#include "runtime/reference_bwd.h"
#include "runtime/attention.h"
#include "runtime/reference.h"
#include "gen/score_expr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double scale_of(const fg_attention_desc *d) {
    return d->softmax_scale == 0.f ? 1.0 / sqrt((double)d->head_dim) : (double)d->softmax_scale;
}

/* Element offsets of row (b, i or j, h): q and dq, k and dk (head_dim
 * wide); o and dout, v and dv (head_dim_v wide). */
static size_t qi(const fg_attention_desc *d, int b, int i, int h) {
    return (((size_t)b * d->seqlen_q + i) * d->heads_q + h) * d->head_dim;
}
static size_t ki(const fg_attention_desc *d, int b, int j, int h) {
    return (((size_t)b * d->seqlen_k + j) * d->heads_kv + h) * d->head_dim;
}
static size_t oi(const fg_attention_desc *d, int b, int i, int h) {
    return (((size_t)b * d->seqlen_q + i) * d->heads_q + h) * fg_desc_head_dim_v(d);
}
static size_t vi(const fg_attention_desc *d, int b, int j, int h) {
    return (((size_t)b * d->seqlen_k + j) * d->heads_kv + h) * fg_desc_head_dim_v(d);
}

/* p[j] = softmax row i of (b, h) (0 where masked), with the score
 * modifications of mods (NULL: none; d->softcap and the window are read
 * from d): dx[j] = d logit / d (scaled score) (softcap: 1 - tanh^2, else
 * 1; times the score expression's derivative at its argument, mods->score_d,
 * evaluated in fp32 as the device does), *psink = the sink's share of the
 * row (0 without one).  Returns 0 for a row that sees no key (p all zero). */
static int prob_row(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                    const fg_ref_mods *mods, const double *q, const double *k, int b, int h, int i, double *p, double *dx,
                    double *psink) {
    const int D = d->head_dim, hk = h / (d->heads_q / d->heads_kv);
    const double scale = scale_of(d), cap = d->softcap;
    double mx = -INFINITY;
    for (int j = 0; j < d->seqlen_k; ++j) {
        p[j] = -INFINITY;
        dx[j] = 1;
        if (!fg_ref_visible_mask(d, L, m, b, h, i, j)) continue;
        double s = 0;
        for (int x = 0; x < D; ++x) s += q[qi(d, b, i, h) + x] * k[ki(d, b, j, hk) + x];
        if (mods && mods->score_d) { /* the expression's argument: the logit of the built-ins */
            fg_ref_mods built_in = *mods;
            built_in.score = NULL;
            const double x = fg_ref_logit(d, &built_in, b, h, i, j, s * scale);
            const fg_score_env env = {(float)x, b, h, i, j, mods->score_ci, mods->score_cf, mods->score_tables};
            p[j] = fg_score_expr_eval(mods->score, &env);
            dx[j] = fg_score_expr_eval(mods->score_d, &env);
        } else {
            p[j] = fg_ref_logit(d, mods, b, h, i, j, s * scale);
        }
        if (cap > 0) dx[j] *= 1 - tanh(s * scale / cap) * tanh(s * scale / cap);
        if (p[j] > mx) mx = p[j];
    }
    *psink = 0;
    if (mx == -INFINITY) {
        for (int j = 0; j < d->seqlen_k; ++j) p[j] = 0;
        return 0;
    }
    const double sink = mods && mods->sinks ? mods->sinks[h] : -INFINITY, M = sink > mx ? sink : mx;
    double sum = sink > -INFINITY ? exp(sink - M) : 0;
    for (int j = 0; j < d->seqlen_k; ++j) sum += p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - M);
    for (int j = 0; j < d->seqlen_k; ++j) p[j] /= sum;
    if (sink > -INFINITY) *psink = exp(sink - M) / sum;
    return 1;
}

int fg_reference_forward_mods_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                                  const fg_ref_mods *mods, const double *q, const double *k, const double *v, double *o) {
    if (mods && mods->score && !mods->score_d) return 0; /* a score expression without its derivative */
    double *p = malloc(sizeof(double) * 2 * (size_t)d->seqlen_k), psink;
    if (!p) return 0;
    const int DV = fg_desc_head_dim_v(d), g = d->heads_q / d->heads_kv;
    for (int b = 0; b < d->batch; ++b)
        for (int h = 0; h < d->heads_q; ++h)
            for (int i = 0; i < d->seqlen_q; ++i) {
                prob_row(d, L, m, mods, q, k, b, h, i, p, p + d->seqlen_k, &psink);
                double *orow = o + oi(d, b, i, h);
                for (int x = 0; x < DV; ++x) orow[x] = 0;
                for (int j = 0; j < d->seqlen_k; ++j)
                    if (p[j] != 0)
                        for (int x = 0; x < DV; ++x) orow[x] += p[j] * v[vi(d, b, j, h / g) + x];
            }
    free(p);
    return 1;
}

int fg_reference_forward_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                             const double *q, const double *k, const double *v, double *o) {
    return fg_reference_forward_mods_f64(d, L, m, NULL, q, k, v, o);
}

int fg_reference_backward_mods_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                                   const fg_ref_mods *mods, const double *q, const double *k, const double *v,
                                   const double *dout, double *dq, double *dk, double *dv, double *dsinks) {
    if (mods && mods->score && !mods->score_d) return 0; /* a score expression without its derivative */
    const int D = d->head_dim, DV = fg_desc_head_dim_v(d), g = d->heads_q / d->heads_kv, sk = d->seqlen_k;
    const double scale = scale_of(d);
    double *p = malloc(sizeof(double) * 3 * (size_t)sk), psink;
    if (!p) return 0;
    double *dp = p + sk, *dx = dp + sk;
    memset(dq, 0, sizeof(double) * qi(d, d->batch, 0, 0));
    memset(dk, 0, sizeof(double) * ki(d, d->batch, 0, 0));
    memset(dv, 0, sizeof(double) * vi(d, d->batch, 0, 0));
    if (dsinks) memset(dsinks, 0, sizeof(double) * (size_t)d->heads_q);
    for (int b = 0; b < d->batch; ++b)
        for (int h = 0; h < d->heads_q; ++h)
            for (int i = 0; i < d->seqlen_q; ++i) {
                if (!prob_row(d, L, m, mods, q, k, b, h, i, p, dx, &psink)) continue;
                const double *qr = q + qi(d, b, i, h), *dor = dout + oi(d, b, i, h);
                double Di = 0; /* dout . o: o = sum_j p_j v_j, the sink's share multiplies no value */
                for (int j = 0; j < sk; ++j) {
                    dp[j] = 0;
                    if (p[j] == 0) continue;
                    const double *vr = v + vi(d, b, j, h / g);
                    for (int x = 0; x < DV; ++x) dp[j] += dor[x] * vr[x];
                    Di += p[j] * dp[j];
                }
                /* lse grows with the sink: d o / d sink = -psink * o */
                if (dsinks) dsinks[h] -= psink * Di;
                double *dqr = dq + qi(d, b, i, h);
                for (int j = 0; j < sk; ++j) {
                    if (p[j] == 0) continue;
                    const double ds = p[j] * (dp[j] - Di) * dx[j];
                    const double *kr = k + ki(d, b, j, h / g);
                    double *dkr = dk + ki(d, b, j, h / g), *dvr = dv + vi(d, b, j, h / g);
                    for (int x = 0; x < D; ++x) {
                        dqr[x] += scale * ds * kr[x];
                        dkr[x] += scale * ds * qr[x];
                    }
                    for (int x = 0; x < DV; ++x) dvr[x] += p[j] * dor[x];
                }
            }
    free(p);
    return 1;
}

int fg_reference_backward_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                              const double *q, const double *k, const double *v, const double *dout, double *dq,
                              double *dk, double *dv) {
    return fg_reference_backward_mods_f64(d, L, m, NULL, q, k, v, dout, dq, dk, dv, NULL);
}

/* A strided 16-bit tensor [batch, seqlen, heads, D] as contiguous float64. */
static double *widen(const fg_attention_desc *d, const uint16_t *t, const int64_t s[3], int heads, int seqlen, int D) {
    double *out = malloc(sizeof(double) * (size_t)d->batch * seqlen * heads * D);
    if (!out) return NULL;
    for (int b = 0; b < d->batch; ++b)
        for (int i = 0; i < seqlen; ++i)
            for (int h = 0; h < heads; ++h)
                for (int x = 0; x < D; ++x)
                    out[(((size_t)b * seqlen + i) * heads + h) * D + x] =
                        fg_half_to_float(t[b * s[0] + h * s[1] + (int64_t)i * s[2] + x], d->dtype);
    return out;
}

int fg_reference_backward_mods(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                               const fg_ref_mods *mods, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                               const uint16_t *dout, double *dq, double *dk, double *dv, double *dsinks) {
    const int64_t *dos = d->do_strides[0] || d->do_strides[1] || d->do_strides[2] ? d->do_strides : d->o_strides;
    const int D = d->head_dim, DV = fg_desc_head_dim_v(d);
    double *Q = widen(d, q, d->q_strides, d->heads_q, d->seqlen_q, D), *K = widen(d, k, d->k_strides, d->heads_kv, d->seqlen_k, D);
    double *V = widen(d, v, d->v_strides, d->heads_kv, d->seqlen_k, DV), *dO = widen(d, dout, dos, d->heads_q, d->seqlen_q, DV);
    const int ok = Q && K && V && dO && fg_reference_backward_mods_f64(d, L, m, mods, Q, K, V, dO, dq, dk, dv, dsinks);
    free(Q);
    free(K);
    free(V);
    free(dO);
    return ok;
}

int fg_reference_backward(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                          const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *dout, double *dq,
                          double *dk, double *dv) {
    return fg_reference_backward_mods(d, L, m, NULL, q, k, v, dout, dq, dk, dv, NULL);
}
