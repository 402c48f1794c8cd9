/* score_plan.c: the descriptor's score modifications (softcap, ALiBi,
 * window, sinks; include/flashgen.h) checked and turned into the variant's
 * FG_MOD_* bits and the kernel parameters (templates/fg_score.cuh). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/internal.h"

/* The first modification in bits, by name (messages). */
static const char *first_mod(int mods) {
    for (int i = 0; i < 5; ++i)
        if (mods & (1 << i)) return fg_spec_mod_name(i);
    return "";
}

int fg_desc_score_mods(const fg_attention_desc *d) {
    int m = 0;
    if (d->softcap != 0.f) m |= FG_MOD_SOFTCAP;
    if (d->alibi_slopes) m |= FG_MOD_ALIBI;
    if (d->window_left != -1 || d->window_right != -1) m |= FG_MOD_WINDOW;
    if (d->sinks) m |= FG_MOD_SINK;
    if (d->score) m |= FG_MOD_SCORE;
    return m;
}

fg_status fg_score_check(const fg_attention_desc *d, fg_error *err) {
    /* at most 2e38: the kernels scale tanh by cap in the softmax's log2
     * domain (cap * log2 e must stay finite, fg_score.cuh softmax_scale_of) */
    if (isnan(d->softcap) || d->softcap < 0.f || d->softcap > 2e38f)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "softcap must be 0 (off) or positive, at most 2e38 (got %g)",
                       (double)d->softcap);
    if (d->alibi_batch_stride < 0 || (!d->alibi_slopes && d->alibi_batch_stride))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "alibi_batch_stride = %lld: it must be 0 (one slope per head) or, with alibi_slopes, positive "
                       "(heads_q for [batch, heads_q] slopes)",
                       (long long)d->alibi_batch_stride);
    if (d->alibi_slopes && d->alibi_batch_stride && d->alibi_batch_stride < d->heads_q)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "alibi_batch_stride = %lld is below heads_q = %d: the batches' slopes would overlap",
                       (long long)d->alibi_batch_stride, d->heads_q);
    if (d->alibi_batch_stride > (INT64_C(1) << 40))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "alibi_batch_stride = %lld is past 2^40",
                       (long long)d->alibi_batch_stride);
    if (((uintptr_t)d->alibi_slopes | (uintptr_t)d->sinks) % 4)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "alibi_slopes and sinks must be 4-byte aligned fp32 device arrays");
    if (d->window_left < -1 || d->window_right < -1)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "window_left = %d, window_right = %d: each must be -1 (unbounded) or >= 0 (fg_attention_desc_init "
                       "sets -1)",
                       d->window_left, d->window_right);
    const int mods = fg_desc_score_mods(d);
    if (!mods) return FG_OK;
    /* block-sparse layouts and the inference kernel (fg_fwd_kernel.cuh with
     * fg_infer.cuh: each sequence's own b, q_idx and kv_idx) take them all */
    if (d->dtype == FG_E4M3)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "score modification '%s' with FG_E4M3 (FP8) inputs is not built yet (FG_FP16 and FG_BF16 only)",
                       first_mod(mods));
    if (d->path == FG_PATH_WGMMA)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_PATH_WGMMA does not implement score modification '%s': use FG_PATH_AUTO, FG_PATH_TMA or "
                       "FG_PATH_MMA",
                       first_mod(mods));
    return FG_OK;
}

/* A window side clamped to max(seqlen_q, seqlen_k): as unbounded as -1 for
 * every row, and the kernel's row + offset +- side then fits in an int. */
static int clamp_side(int w, int bound) { return w < 0 ? -1 : w < bound ? w : bound; }

/* The user expression's spec identity and kernel parameters. */
static void score_expr_params(const fg_score *sc, fg_spec *s, fg_fwd_params *p) {
    s->score_hash = sc->hash;
    s->score_cuda = sc->cuda;
    s->score_text = sc->text;
    s->score_cuda_d = sc->cuda_d;
    memcpy(p->score_ci, sc->ci, sizeof p->score_ci);
    memcpy(p->score_cf, sc->cf, sizeof p->score_cf);
    for (int k = 0; k < sc->ntables; ++k) {
        if (sc->tfloat[k]) p->score_tf[k] = sc->tdata[k];
        else p->score_ti[k] = sc->tdata[k];
        p->score_tn[k] = sc->tn[k];
    }
}

void fg_score_params(const fg_attention_desc *d, fg_spec *s, fg_fwd_params *p) {
    const int mods = fg_desc_score_mods(d);
    s->mods = mods & FG_MOD_ALL;
    if (!mods) return;
    if (d->score) score_expr_params(d->score, s, p);
    p->mod_offset = d->causal == FG_CAUSAL_TOP_LEFT ? 0 : d->seqlen_k - d->seqlen_q;
    p->softcap = d->softcap;
    /* tanh's argument is S * softcap_scale: kept finite (FLT_MAX) where a
     * tiny cap overflows scale / cap, so that a score of exactly 0 gives
     * tanh(0) and not 0 * inf */
    p->softcap_scale = d->softcap > 0.f ? fminf(p->scale / d->softcap, FLT_MAX) : 0.f;
    p->alibi_slopes = d->alibi_slopes;
    p->alibi_batch_stride = d->alibi_batch_stride;
    p->sinks = d->sinks;
    const int bound = d->seqlen_q > d->seqlen_k ? d->seqlen_q : d->seqlen_k;
    p->window_left = clamp_side(d->window_left, bound);
    p->window_right = clamp_side(d->window_right, bound);
}
