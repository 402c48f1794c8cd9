#include "runtime/reference.h"
#include "gen/mask_expr.h"
#include "gen/score_expr.h"
#include "runtime/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float fg_half_to_float(uint16_t h, fg_dtype dt) {
    if (dt == FG_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    int exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff, u;
    if (exp == 0x1f) u = sign | 0x7f800000u | (man << 13);
    else if (exp == 0) {
        if (!man) u = sign;
        else {
            exp = 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            u = sign | ((uint32_t)(exp + 112) << 23) | (man << 13);
        }
    } else u = sign | ((uint32_t)(exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t fg_float_to_half(float f, fg_dtype dt) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (dt == FG_BF16) {
        if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
        u += 0x7fff + ((u >> 16) & 1);
        return (uint16_t)(u >> 16);
    }
    const uint32_t sign = (u >> 16) & 0x8000;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (a < 0x38800000u) {                                   /* subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;
        const int e = (int)(a >> 23);
        const uint32_t m = (a & 0x7fffff) | 0x800000;
        const int shift = 126 - e; /* value = m * 2^(e-150); one subnormal step is 2^-24 */
        uint32_t res = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (res & 1))) res++;
        return (uint16_t)(sign | res);
    }
    uint32_t res = ((a >> 13) - (112u << 10));
    const uint32_t rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (res & 1))) res++;
    return (uint16_t)(sign | res);
}

void fg_rng_seed(fg_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull; if (!r->s) r->s = 1; }

static uint64_t next(fg_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}
double fg_rng_uniform(fg_rng *r) { return (double)(next(r) >> 11) * (1.0 / 9007199254740992.0); }
double fg_rng_normal(fg_rng *r) {
    double u1 = fg_rng_uniform(r), u2 = fg_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
void fg_fill_normal(uint16_t *x, size_t n, fg_dtype dt, fg_rng *r) {
    if (dt == FG_E4M3) { /* one byte an element */
        uint8_t *b = (uint8_t *)x;
        for (size_t i = 0; i < n; ++i) b[i] = fg_float_to_e4m3((float)fg_rng_normal(r));
        return;
    }
    for (size_t i = 0; i < n; ++i) x[i] = fg_float_to_half((float)fg_rng_normal(r), dt);
}

static int in_list(const int32_t *num, const int32_t *idx, long row, int nk, int j) {
    if (!num) return 0;
    for (int i = 0; i < num[row]; ++i)
        if (idx[(size_t)row * nk + i] == j) return 1;
    return 0;
}

int fg_ref_visible(const fg_attention_desc *d, const fg_block_layout_desc *L, int b, int h, int i, int j) {
    return fg_ref_visible_mask(d, L, NULL, b, h, i, j);
}

int fg_ref_visible_mask(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m, int b, int h,
                        int i, int j) {
    if (j >= d->seqlen_k) return 0;
    /* the window (score modifications): FlashAttention-2's alignment */
    const int64_t w = (int64_t)i + fg_ref_mod_offset(d);
    if ((d->window_left >= 0 && j < w - d->window_left) || (d->window_right >= 0 && j > w + d->window_right)) return 0;
    const int off = d->causal == FG_CAUSAL_BOTTOM_RIGHT ? d->seqlen_k - d->seqlen_q : 0;
    const int causal_ok = d->causal == FG_CAUSAL_NONE || j <= i + off;
    if (!L) return causal_ok;
    const int bi = L->batch == 1 ? 0 : b, hi = L->heads == 1 ? 0 : h;
    const long row = ((long)bi * L->heads + hi) * L->num_q_blocks + i / L->block_q;
    const int kb = j / L->block_k;
    if (in_list(L->full_kv_num_blocks, L->full_kv_indices, row, L->num_kv_blocks, kb)) return 1;
    if (in_list(L->kv_num_blocks, L->kv_indices, row, L->num_kv_blocks, kb)) {
        if (!causal_ok || !m || !m->expr) return causal_ok;
        const fg_mask_env env = {b, h, i, j, d->seqlen_q, d->seqlen_k, m->consts};
        return fg_mask_expr_eval(m->expr, &env) != 0;
    }
    return 0;
}

void fg_reference_row(const fg_attention_desc *d, const fg_block_layout_desc *L, const uint16_t *q,
                      const uint16_t *k, const uint16_t *v, int b, int h, int i, double *orow, double *lse_out) {
    fg_reference_row_mask(d, L, NULL, q, k, v, b, h, i, orow, lse_out);
}

int fg_ref_mod_offset(const fg_attention_desc *d) {
    return d->causal == FG_CAUSAL_TOP_LEFT ? 0 : d->seqlen_k - d->seqlen_q;
}

double fg_ref_logit(const fg_attention_desc *d, const fg_ref_mods *mods, int b, int h, int i, int j, double x) {
    if (d->softcap > 0.f) x = d->softcap * tanh(x / d->softcap);
    if (mods && mods->alibi_slopes) {
        const double slope = mods->alibi_slopes[(int64_t)b * d->alibi_batch_stride + h];
        x -= slope * fabs((double)i + fg_ref_mod_offset(d) - j);
    }
    if (mods && mods->score) {
        const fg_score_env env = {(float)x, b, h, i, j, mods->score_ci, mods->score_cf, mods->score_tables};
        x = fg_score_expr_eval(mods->score, &env);
    }
    return x;
}

/* Element idx of an input array of d's dtype (16-bit or e4m3). */
static double ref_load(const void *p, int64_t idx, fg_dtype dt) {
    return dt == FG_E4M3 ? fg_e4m3_to_float(((const uint8_t *)p)[idx]) : fg_half_to_float(((const uint16_t *)p)[idx], dt);
}

/* One row; qk_descale multiplies the scores (with the softmax scale, before
 * the score modifications), v_descale the output (FP8's descales; 1
 * otherwise). */
static void ref_row(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                    const fg_ref_mods *mods, const void *q, const void *k, const void *v, double qk_descale,
                    double v_descale, int b, int h, int i, double *orow, double *lse_out) {
    const int D = d->head_dim, DV = fg_desc_head_dim_v(d), hk = h / (d->heads_q / d->heads_kv);
    const double scale = (d->softmax_scale == 0.f ? 1.0 / sqrt((double)D) : (double)d->softmax_scale) * qk_descale;
    const fg_dtype dt = d->dtype;
    double *s = malloc(sizeof(double) * ((size_t)d->seqlen_k + (size_t)D));
    double *qr = s + d->seqlen_k;
    const int64_t qo = b * d->q_strides[0] + h * d->q_strides[1] + (int64_t)i * d->q_strides[2];
    for (int x = 0; x < D; ++x) qr[x] = ref_load(q, qo + x, dt);
    double mx = -INFINITY;
    for (int j = 0; j < d->seqlen_k; ++j) {
        if (!fg_ref_visible_mask(d, L, m, b, h, i, j)) { s[j] = -INFINITY; continue; }
        const int64_t ko = b * d->k_strides[0] + hk * d->k_strides[1] + (int64_t)j * d->k_strides[2];
        double acc = 0;
        for (int x = 0; x < D; ++x) acc += qr[x] * ref_load(k, ko + x, dt);
        s[j] = fg_ref_logit(d, mods, b, h, i, j, acc * scale);
        if (s[j] > mx) mx = s[j];
    }
    for (int x = 0; x < DV; ++x) orow[x] = 0;
    /* an attention sink joins the denominator only (M: the larger of the
     * row's largest logit and the sink) */
    const double sink = mods && mods->sinks ? mods->sinks[h] : -INFINITY;
    const double M = mx > sink ? mx : sink;
    double sum = sink > -INFINITY ? exp(sink - M) : 0;
    mx = M;
    if (mx > -INFINITY) {
        for (int j = 0; j < d->seqlen_k; ++j) {
            if (s[j] == -INFINITY) continue;
            const double pj = exp(s[j] - mx);
            sum += pj;
            const int64_t vo = b * d->v_strides[0] + hk * d->v_strides[1] + (int64_t)j * d->v_strides[2];
            for (int x = 0; x < DV; ++x) orow[x] += pj * ref_load(v, vo + x, dt);
        }
        for (int x = 0; x < DV; ++x) orow[x] *= v_descale / sum;
    }
    *lse_out = sum > 0 ? mx + log(sum) : -INFINITY;
    free(s);
}

void fg_reference_row_mask(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                           const uint16_t *q, const uint16_t *k, const uint16_t *v, int b, int h, int i, double *orow,
                           double *lse_out) {
    ref_row(d, L, m, NULL, q, k, v, 1.0, 1.0, b, h, i, orow, lse_out);
}

void fg_reference_row_mods(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                           const fg_ref_mods *mods, const uint16_t *q, const uint16_t *k, const uint16_t *v, int b,
                           int h, int i, double *orow, double *lse_out) {
    ref_row(d, L, m, mods, q, k, v, 1.0, 1.0, b, h, i, orow, lse_out);
}

/* NULL: 1; else per tensor or [batch, heads_kv] as d->descale_per_head says. */
static double host_descale(const float *x, const fg_attention_desc *d, int b, int hk) {
    return x ? (double)x[d->descale_per_head ? b * d->heads_kv + hk : 0] : 1.0;
}

void fg_reference_forward_fp8(const fg_attention_desc *d, const uint8_t *q, const uint8_t *k, const uint8_t *v,
                              const float *q_descale, const float *k_descale, const float *v_descale, double *o,
                              double *lse) {
    const int DV = fg_desc_head_dim_v(d), group = d->heads_q / d->heads_kv;
    for (int b = 0; b < d->batch; ++b)
        for (int h = 0; h < d->heads_q; ++h) {
            const int hk = h / group;
            const double qk = host_descale(q_descale, d, b, hk) * host_descale(k_descale, d, b, hk);
            const double vs = host_descale(v_descale, d, b, hk);
            for (int i = 0; i < d->seqlen_q; ++i)
                ref_row(d, NULL, NULL, NULL, q, k, v, qk, vs, b, h, i,
                        o + (((size_t)b * d->seqlen_q + i) * d->heads_q + h) * DV,
                        lse + ((size_t)b * d->heads_q + h) * d->seqlen_q + i);
        }
}

void fg_reference_forward(const fg_attention_desc *d, const fg_block_layout_desc *L, const uint16_t *q,
                          const uint16_t *k, const uint16_t *v, double *o, double *lse) {
    fg_reference_forward_mods(d, L, NULL, q, k, v, o, lse);
}

void fg_reference_forward_mods(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mods *mods,
                               const uint16_t *q, const uint16_t *k, const uint16_t *v, double *o, double *lse) {
    for (int b = 0; b < d->batch; ++b)
        for (int h = 0; h < d->heads_q; ++h)
            for (int i = 0; i < d->seqlen_q; ++i)
                fg_reference_row_mods(d, L, NULL, mods, q, k, v, b, h, i,
                                      o + (((size_t)b * d->seqlen_q + i) * d->heads_q + h) * fg_desc_head_dim_v(d),
                                      lse + ((size_t)b * d->heads_q + h) * d->seqlen_q + i);
}

int fg_host_layout_random(fg_host_layout *L, int batch, int heads, int seqlen_q, int seqlen_k, int block_q,
                          int block_k, double density, fg_rng *rng) {
    memset(L, 0, sizeof *L);
    const int nq = (seqlen_q + block_q - 1) / block_q, nk = (seqlen_k + block_k - 1) / block_k;
    const size_t rows = (size_t)batch * heads * nq;
    L->buf = calloc(2 * rows + 2 * rows * nk, sizeof(int32_t));
    if (!L->buf) return 0;
    int32_t *pn = L->buf, *fn = pn + rows, *pi = fn + rows, *fi = pi + rows * nk;
    for (size_t r = 0; r < rows; ++r)
        for (int j = 0; j < nk; ++j) {
            if (fg_rng_uniform(rng) >= density) continue;
            if (fg_rng_uniform(rng) < 0.5) fi[r * nk + fn[r]++] = j;
            else pi[r * nk + pn[r]++] = j;
        }
    fg_block_layout_desc *d = &L->desc;
    d->batch = batch; d->heads = heads; d->num_q_blocks = nq; d->num_kv_blocks = nk;
    d->block_q = block_q; d->block_k = block_k;
    d->kv_num_blocks = pn; d->kv_indices = pi; d->full_kv_num_blocks = fn; d->full_kv_indices = fi;
    return 1;
}

void fg_host_layout_free(fg_host_layout *L) {
    free(L->buf);
    memset(L, 0, sizeof *L);
}

double fg_attention_flops(int batch, int heads, int seqlen_q, int seqlen_k, int head_dim, int head_dim_v, int causal) {
    return 2.0 * batch * heads * (double)seqlen_q * seqlen_k * (head_dim + head_dim_v) * (causal ? 0.5 : 1.0);
}

double fg_layout_flops(const fg_block_layout_desc *L, int batch, int heads, int seqlen_q, int seqlen_k, int head_dim,
                       int head_dim_v, double *density) {
    const int bq = L->block_q ? L->block_q : 128, bk = L->block_k ? L->block_k : 128;
    double flops = 0, listed = 0;
    for (int b = 0; b < batch; ++b)
        for (int h = 0; h < heads; ++h)
            for (int qb = 0; qb < L->num_q_blocks; ++qb) {
                const long r = ((long)(L->batch == 1 ? 0 : b) * L->heads + (L->heads == 1 ? 0 : h)) * L->num_q_blocks + qb;
                const int rows = (qb + 1) * bq <= seqlen_q ? bq : seqlen_q - qb * bq;
                for (int pass = 0; pass < 2; ++pass) {
                    const int32_t *num = pass ? L->kv_num_blocks : L->full_kv_num_blocks;
                    const int32_t *idx = pass ? L->kv_indices : L->full_kv_indices;
                    if (!num) continue;
                    for (int i = 0; i < num[r]; ++i) {
                        const int kb = idx[(size_t)r * L->num_kv_blocks + i];
                        const int cols = (kb + 1) * bk <= seqlen_k ? bk : seqlen_k - kb * bk;
                        flops += fg_attention_flops(1, 1, rows, cols, head_dim, head_dim_v, 0);
                        listed += 1;
                    }
                }
            }
    if (density) *density = listed / ((double)batch * heads * L->num_q_blocks * L->num_kv_blocks);
    return flops;
}
