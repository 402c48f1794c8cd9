/* reference.h: the float64 CPU reference of the forward pass, and the host
 * helpers that the CLI and the tests share (16-bit conversions, random
 * fill, error metrics).  Same semantics as the kernel, written plainly. */
#ifndef FG_REFERENCE_H
#define FG_REFERENCE_H
#include <stddef.h>
#include <stdint.h>
#include "flashgen.h"

float fg_half_to_float(uint16_t h, fg_dtype dt);
uint16_t fg_float_to_half(float f, fg_dtype dt); /* round to nearest even */
/* FP8 e4m3 (runtime/e4m3.c): exact decode (0x7f, 0xff: NaN), and encode
 * rounding to nearest even with saturation to +-448 like the device's
 * cvt.rn.satfinite. */
float fg_e4m3_to_float(uint8_t x);
uint8_t fg_float_to_e4m3(float f);

/* xorshift64* random numbers, reproducible from a seed */
typedef struct fg_rng { uint64_t s; } fg_rng;
void fg_rng_seed(fg_rng *r, uint64_t seed);
double fg_rng_uniform(fg_rng *r); /* [0, 1) */
double fg_rng_normal(fg_rng *r);
/* n elements N(0, 1) rounded to dt: 16-bit, or (FG_E4M3) a byte each */
void fg_fill_normal(uint16_t *x, size_t n, fg_dtype dt, fg_rng *r);

/* Whether key j is visible from query i of (b, h) under d and the host
 * layout L (NULL: dense). */
int fg_ref_visible(const fg_attention_desc *d, const fg_block_layout_desc *L, int b, int h, int i, int j);

/* The element mask of partial blocks of a pattern's layout (gen/mask_expr.h):
 * a partial block's key is visible iff the causal mask allows it and the
 * expression is non-zero.  expr NULL: no element mask. */
struct fg_mask_expr;
typedef struct fg_ref_mask {
    const struct fg_mask_expr *expr;
    const int64_t *consts;
} fg_ref_mask;
int fg_ref_visible_mask(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m, int b, int h,
                        int i, int j);
void fg_reference_row_mask(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                           const uint16_t *q, const uint16_t *k, const uint16_t *v, int b, int h, int i, double *orow,
                           double *lse);

/* Score modifications (include/flashgen.h): softcap, the window and
 * alibi_batch_stride are read from d; the slopes and sinks from these HOST
 * copies of d's device arrays (NULL: off, whatever d says).  The window is
 * part of fg_ref_visible_mask. */
struct fg_score_expr;
struct fg_score_table;
typedef struct fg_ref_mods {
    const float *alibi_slopes; /* [batch * alibi_batch_stride + heads_q] as d indexes it */
    const float *sinks;        /* [heads_q] */
    /* a user score expression (d->score is not read: it holds device
     * tables), evaluated as the device does (fg_score_expr_eval, fp32) with
     * host copies of its tables; NULL: none */
    const struct fg_score_expr *score;
    const int64_t *score_ci;
    const float *score_cf;
    const struct fg_score_table *score_tables;
    /* its derivative with respect to score (fg_score_expr_derivative), the
     * backward's; NULL: the backward reference refuses a score expression.
     * Last, so that positional initialisers keep their meaning. */
    const struct fg_score_expr *score_d;
} fg_ref_mods;
/* The alignment of ALiBi and the window: 0 for FG_CAUSAL_TOP_LEFT, else
 * seqlen_k - seqlen_q (FlashAttention-2's). */
int fg_ref_mod_offset(const fg_attention_desc *d);
/* The logit of (b, h, i, j) from the scaled score x: softcap, then ALiBi,
 * then the score expression. */
double fg_ref_logit(const fg_attention_desc *d, const fg_ref_mods *mods, int b, int h, int i, int j, double x);
void fg_reference_row_mods(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                           const fg_ref_mods *mods, const uint16_t *q, const uint16_t *k, const uint16_t *v, int b,
                           int h, int i, double *orow, double *lse);
/* lse with a sink: log(exp(sink) + sum exp(logits)); a row with no visible
 * key then has o = 0 and lse = sink. */
void fg_reference_forward_mods(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mods *mods,
                               const uint16_t *q, const uint16_t *k, const uint16_t *v, double *o, double *lse);

/* o: [batch, seqlen_q, heads_q, head_dim_v] contiguous float64;
 * lse: [batch, heads_q, seqlen_q] (natural log; -inf for an empty row).
 * q, k, v are host arrays laid out with d's strides. */
void fg_reference_forward(const fg_attention_desc *d, const fg_block_layout_desc *L, const uint16_t *q,
                          const uint16_t *k, const uint16_t *v, double *o, double *lse);

/* fg_reference_forward for d->dtype FG_E4M3 (dense): q, k, v hold e4m3
 * bytes with d's strides; the descales are HOST arrays (NULL: 1.0), one
 * float each or [batch, heads_kv] as d->descale_per_head says; the result
 * is softmax(scale * qd * kd * Q K^T) V * vd of the decoded values, in float64. */
void fg_reference_forward_fp8(const fg_attention_desc *d, const uint8_t *q, const uint8_t *k, const uint8_t *v,
                              const float *q_descale, const float *k_descale, const float *v_descale, double *o,
                              double *lse);

/* One query row: orow[head_dim_v] and its logsumexp. */
void fg_reference_row(const fg_attention_desc *d, const fg_block_layout_desc *L, const uint16_t *q,
                      const uint16_t *k, const uint16_t *v, int b, int h, int i, double *orow, double *lse);

/* Error metrics of one comparison (tools/harness.c fills them). */
typedef struct fg_compare {
    double max_abs, rel_l2;
    size_t nan_count, n;
} fg_compare;

/* A host block layout with its own storage (tests, CLI). */
typedef struct fg_host_layout {
    fg_block_layout_desc desc;
    int32_t *buf;
} fg_host_layout;
/* Each (batch, head, q block, kv block) is kept with probability density;
 * a kept block is full or partial with equal odds.  Returns 0 on OOM. */
int fg_host_layout_random(fg_host_layout *L, int batch, int heads, int seqlen_q, int seqlen_k, int block_q,
                          int block_k, double density, fg_rng *rng);
void fg_host_layout_free(fg_host_layout *L);

/* The FLOP count of attention, the one formula every TFLOP/s figure uses
 * (the harness, `flashgen bench`, the tuner): 2 b h sq sk (head_dim +
 * head_dim_v) (Q K^T and P V), halved for a causal mask as
 * ../shared/BENCHMARK.md counts it.  head_dim_v is the value head dim
 * (fg_desc_head_dim_v). */
double fg_attention_flops(int batch, int heads, int seqlen_q, int seqlen_k, int head_dim, int head_dim_v, int causal);
/* The FLOPs of the blocks a layout computes for one call (fg_attention_flops
 * of each listed block, clipped to the sequence ends; batch and heads
 * broadcast as the kernel does), and the fraction of all blocks listed. */
double fg_layout_flops(const fg_block_layout_desc *L, int batch, int heads, int seqlen_q, int seqlen_k, int head_dim,
                       int head_dim_v, double *density);
#endif
