/* choose.c: the block configuration of a call whose descriptor leaves it
 * automatic.  The order is: this context's memo -> the tuned result in the
 * cache file -> the built-in heuristic.  The rules themselves are pure
 * functions in select/; this file adds the context: the memo, the store,
 * the statistics and compiling through the kernel cache. */
#include <stdint.h>
#include <stdlib.h>

#include "runtime/attention.h"
#include "runtime/internal.h"
#include "select/heuristic.h"
#include "select/infer.h"
#include "select/tuned.h"
#include "runtime/tensor_map.h"

/* Memo of the configuration chosen per (spec, layout block, path, shape
 * bucket) in this context. */
typedef struct fg_choice {
    fg_choice_key key;
    fg_config cfg;
    struct fg_choice *next;
} fg_choice;

static int key_equal(const fg_choice_key *a, const fg_choice_key *b) {
    return fg_spec_equal(&a->spec, &b->spec) && a->block_q == b->block_q && a->block_k == b->block_k &&
           a->path == b->path && a->tma_ok == b->tma_ok && a->bucket_q == b->bucket_q && a->bucket_k == b->bucket_k &&
           a->deterministic == b->deterministic && a->decode_rows == b->decode_rows;
}

int fg_ctx_memo_get(fg_context *ctx, const fg_choice_key *k, fg_config *cfg) {
    int found = 0;
    pthread_mutex_lock(&ctx->mu);
    for (fg_choice *c = ctx->choices; c && !found; c = c->next)
        if (key_equal(&c->key, k)) {
            *cfg = c->cfg;
            found = 1;
        }
    pthread_mutex_unlock(&ctx->mu);
    return found;
}

void fg_ctx_memo_put(fg_context *ctx, const fg_choice_key *k, const fg_config *cfg) {
    fg_choice *c = calloc(1, sizeof *c);
    if (!c) return; /* only a memo: the next call chooses again */
    c->key = *k;
    c->cfg = *cfg;
    pthread_mutex_lock(&ctx->mu);
    c->next = ctx->choices;
    ctx->choices = c;
    pthread_mutex_unlock(&ctx->mu);
}

fg_status fg_ctx_try_compile(void *ud, const fg_spec *s, const fg_config *c, fg_kernel_stats *st, fg_error *err) {
    fg_variant v = {*s, *c};
    fg_kernel *k;
    fg_status rc = fg_ctx_kernel((fg_context *)ud, &v, &k, err);
    if (rc == FG_OK) *st = k->stats;
    return rc;
}

/* The Hopper families this call can use: 2 TMA and wgmma, 1 wgmma, 0 none. */
static int hopper_level(const fg_context *ctx, int tma_ok) {
    if (!fg_arch_has_wgmma(ctx->dev_info.arch)) return 0;
    return tma_ok && ctx->cu && ctx->cu->TensorMapEncodeTiled ? 2 : 1;
}

fg_status fg_ctx_heuristic(fg_context *ctx, const fg_spec *s, int block_q, int block_k, int path, int tma_ok,
                           fg_config *out, fg_error *err) {
    return fg_heuristic_config(s, ctx->dev_info.smem_per_block_optin, block_q, block_k, hopper_level(ctx, tma_ok), path,
                               fg_ctx_try_compile, ctx, out, err);
}

int fg_ctx_tuned(fg_context *ctx, const fg_attention_desc *d, const fg_spec *s, int block_q, int block_k, int wgmma_ok,
                 fg_config *c) {
    fg_store *store;
    const char *gpu;
    fg_error e = {0};
    if (ctx->ignore_tuned) return 0;
    if (fg_ctx_store(ctx, &store, &gpu, &e) != FG_OK) { fg_error_clear(&e); return 0; }
    return fg_tuned_config(store, gpu, s, (int)d->path, block_q, block_k, d->seqlen_q, d->seqlen_k,
                           ctx->dev_info.smem_per_block_optin, wgmma_ok, c);
}

/* Whether c fits this device and compiles without spills or stack (then
 * copied to *out): the check of a configuration chosen outside the
 * heuristic's candidate walk. */
static int fits_clean(fg_context *ctx, const fg_spec *s, const fg_config *c, fg_config *out) {
    fg_error e = {0};
    fg_kernel_stats st;
    const int ok = fg_config_check(s, c, ctx->dev_info.smem_per_block_optin, NULL) == FG_OK &&
                   fg_ctx_try_compile(ctx, s, c, &st, &e) == FG_OK && !st.spill_stores && !st.spill_loads &&
                   !st.stack_frame;
    fg_error_clear(&e);
    if (ok) *out = *c;
    return ok;
}

/* Whether d's key tiles may span several pages (load_tile_paged): pages
 * of a power-of-two size; other sizes take tiles within one page. */
static int pages_spannable(const fg_attention_desc *d) {
    return !(d->page_size & (d->page_size - 1));
}

/* Decode (a head's queries fill less than a 64-row tile).
 *
 * When the packed rows of a (sequence, KV head) fit in 16 or 32 (decode
 * with a GQA group up to 16 or 32), above head dim 64 up to 128, and the
 * call reads a paged cache and needs no split-KV (decode_rows): tiles of
 * that many rows on one warp per 16 rows.  A 64-row tile of four warps held 4 valid rows at group 4,
 * and its three other warps only helped load: the one warp with rows ran
 * every GEMM while they waited at the tile's barriers.  A one-warp CTA of
 * 16 x 32 tiles in three stages needs 56 KB at head dim 128 (four per SM),
 * each warp computing its own sequence and head, its loads overlapping the
 * other CTAs' math: 4057 against 3678 GB/s paged 64 at b=64 kv 32k (H200,
 * docs/PERF.md v19).
 *
 * Otherwise up to head dim 64: 64 x 128 tiles in two stages (16 KB of keys
 * per tile, against 8 KB in the heuristic's 64 x 64: 3881 against 3012 GB/s
 * at b=64, kv 16k, H200, docs/PERF.md v8).
 *
 * Either when it compiles without spills here and the pages hold whole
 * tiles or are a power of two; else 0 (the heuristic decides). */
/* the one-warp tile (16 x 32 keys, three stages) at head dim 128, for the
 * slot count of decode_rows */
#define DECODE_WARP1_SMEM (56 * 1024)

static int spec_head_dim_max(const fg_spec *s) {
    return s->head_dim > fg_spec_head_dim_v(s) ? s->head_dim : fg_spec_head_dim_v(s);
}

static int decode_rows(const fg_context *ctx, const fg_attention_desc *d, const fg_spec *s) {
    const int hd = spec_head_dim_max(s);
    const long long rows = (long long)d->seqlen_q * (d->heads_q / d->heads_kv);
    /* paged caches only, and the (sequence, KV head) tiles alone must fill
     * the GPU's slots for one-warp CTAs (about 56 KB each: four an SM on
     * Hopper), as fg_infer_splits counts them in fg_infer_apply with the
     * compiled kernel, so that no split-KV follows.  Split, the one-warp
     * tiles measured 0.34-0.90x the 64-row ones (b=1-16: more partials, each CTA a short stretch of keys);
     * unsplit at head dim 128, 1.07-1.25x paged (page 16 and 64) but
     * 0.96-1.10x contiguous; gated as here, paged 1.05-1.23x.  At head
     * dim 64: 0.68-0.70x (b=64 kv 16k), none there (H200, decode.py,
     * docs/PERF.md v19) */
    const long long tiles = (long long)d->batch * d->heads_kv;
    const int slots = ctx->dev_info.sm_count * fg_infer_ctas_per_sm(&ctx->dev_info, DECODE_WARP1_SMEM, 32);
    const int unsplit = d->num_splits == 1 || (d->num_splits == 0 && fg_infer_fills(tiles, slots));
    if (hd <= 64 || hd > 128 || !unsplit || !d->block_table) return FG_DECODE_ROWS;
    return rows <= 16 ? 16 : rows <= 32 ? 32 : FG_DECODE_ROWS;
}

/* rows: decode_rows (the choice key's class) */
static int decode_config(fg_context *ctx, const fg_attention_desc *d, const fg_spec *s, int rows, fg_config *out) {
    const int hd = spec_head_dim_max(s), small = rows <= 32;
    /* above head dim 64 the heuristic's tiles measured as fast or faster
     * (head dim 256: one stage, two CTAs per SM, 4180 GB/s against 3433
     * with two stages; docs/PERF.md v8) */
    if (!small && hd > 64) return 0;
    /* block_n, stages of the small tiles: half-width key tiles in three
     * stages first (56 KB at hd128: four one-warp CTAs an SM, one warp on
     * each scheduler; 64 keys in two stages need 72 KB, three CTAs, one
     * scheduler idle), then the wider ones (review, session 11) */
    const int tries[2][2] = {{small ? 32 : 128, small ? 3 : 2}, {64, 2}};
    for (int i = 0; i < (small ? 2 : 1); ++i) {
        fg_config c;
        fg_config_unset(&c);
        c.wgmma = 0;
        c.block_m = small ? rows : FG_DECODE_ROWS;
        c.warps = small ? c.block_m / 16 : 4;
        c.block_n = tries[i][0];
        c.stages = tries[i][1];
        c.q_in_regs = 0;
        c.min_blocks = 1;
        /* pages smaller than the tile: spanning tiles for power-of-two pages
         * (load_tile_paged steps their rows' pages); other sizes keep the
         * heuristic's one-page tiles */
        if (d->block_table && d->page_size % c.block_n && !pages_spannable(d)) continue;
        if (fits_clean(ctx, s, &c, out)) return 1;
    }
    return 0;
}

/* Short causal calls on the TMA family (FG_PATH_AUTO or FG_PATH_TMA, dense):
 * the measured tile of fg_heuristic_short_causal, when it fits. */
static int short_causal_config(fg_context *ctx, const fg_attention_desc *d, const fg_spec *s, int path, int tma_ok,
                               fg_config *out) {
    fg_config c;
    if ((path != FG_PATH_AUTO && path != FG_PATH_TMA) || hopper_level(ctx, tma_ok) < 2 ||
        !fg_heuristic_short_causal(s, fg_bucket_len(d->seqlen_q), fg_bucket_len(d->seqlen_k), &c))
        return 0;
    return fits_clean(ctx, s, &c, out);
}

fg_status fg_ctx_choose(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *err) {
    if (v->cfg.wgmma >= 1 && !fg_arch_has_wgmma(ctx->dev_info.arch))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "%s needs an sm_90a GPU (Hopper); this one is %s (%s)",
                       v->spec.dtype == FG_E4M3 ? "FG_E4M3 (FP8, the TMA path)"
                       : v->cfg.wgmma == 2      ? "FG_PATH_TMA"
                                                : "FG_PATH_WGMMA",
                       ctx->dev_info.arch, ctx->dev_info.name);
    const int tma_ok = fg_tma_tiles_ok(d->batch, d->heads_q, d->seqlen_q) && fg_tma_qkv_ok(d);
    if (v->cfg.wgmma == 2 && !tma_ok)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_PATH_TMA: a stride of q, k or v is 0 (or past 2^40 bytes) in a dim longer than 1, or the call "
                       "has more than 2^30 query tiles; the TMA kernels cannot take it (FG_PATH_WGMMA and FG_PATH_MMA can)");
    if (v->cfg.block_m) return FG_OK; /* explicit */
    int bq = d->layout ? d->layout->block_q : 0, bk = d->layout ? d->layout->block_k : 0;
    int path = (int)d->path;
    if (v->spec.infer) {
        /* the portable kernel; 64-row tiles when a head's queries (decode)
         * fill less than that; key tiles within one page for pages of other
         * than power-of-two sizes.  Power-of-two pages under the tile (16,
         * 32) take tiles spanning several pages: with the page arithmetic
         * stepped instead of divided per row they measured 1.44x the 16-key
         * one-page tiles at page 16 (H200, b=16 kv 32k, docs/PERF.md v8) */
        path = FG_PATH_MMA;
        if (d->seqlen_q < FG_DECODE_ROWS) bq = FG_DECODE_ROWS;
        if (d->block_table && !pages_spannable(d)) bk = d->page_size;
    }
    const fg_choice_key key = {v->spec, bq, bk, path, tma_ok, fg_bucket_len(d->seqlen_q), fg_bucket_len(d->seqlen_k), 0,
                               v->spec.infer && d->seqlen_q < FG_DECODE_ROWS ? decode_rows(ctx, d, &v->spec) : 0};
    if (!fg_ctx_memo_get(ctx, &key, &v->cfg)) {
        fg_config cfg;
        if (!v->spec.infer && !fg_spec_has_mods(&v->spec) && fg_ctx_tuned(ctx, d, &v->spec, bq, bk, hopper_level(ctx, tma_ok), &cfg)) {
            fg_ctx_count(ctx, &ctx->stats.configs_tuned);
        } else if (v->spec.infer && d->seqlen_q < FG_DECODE_ROWS && decode_config(ctx, d, &v->spec, key.decode_rows, &cfg)) {
            fg_ctx_count(ctx, &ctx->stats.configs_heuristic);
        } else if (!v->spec.infer && !bq && !bk && short_causal_config(ctx, d, &v->spec, path, tma_ok, &cfg)) {
            fg_ctx_count(ctx, &ctx->stats.configs_heuristic);
        } else {
            fg_status st = fg_ctx_heuristic(ctx, &v->spec, bq, bk, path, tma_ok, &cfg, err);
            if (st != FG_OK) return st;
            fg_ctx_count(ctx, &ctx->stats.configs_heuristic);
        }
        v->cfg = cfg;
        fg_ctx_memo_put(ctx, &key, &v->cfg);
    }
    if (d->layout) p->sp_sub = bk / v->cfg.block_n;
    return FG_OK;
}

fg_status fg_ctx_resolve(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *err) {
    fg_status st = fg_desc_plan(d, ctx->dev_info.smem_per_block_optin, v, p, err);
    if (st != FG_OK) return st;
    /* decode-shaped: GQA packing or split-KV; the score modifications come
     * along (the inference kernel gives each packed row its own head and
     * query index) */
    if (!v->spec.infer && v->spec.dtype != FG_E4M3 && fg_infer_auto(ctx, d)) {
        v->spec.infer = 1;
        v->cfg.wgmma = 0;
    }
    return fg_ctx_choose(ctx, d, v, p, err);
}

fg_status fg_ctx_call(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_kernel **kern,
                      fg_error *err) {
    fg_status st = fg_ctx_resolve(ctx, d, v, p, err);
    if (st == FG_OK) st = fg_ctx_kernel(ctx, v, kern, err);
    if (st != FG_OK || !v->spec.infer) return st;
    fg_infer_apply(ctx, d, *kern, v, p);
    CUdeviceptr w = 0;
    st = fg_ctx_table_err(ctx, &w, err);
    p->table_err = (int *)(uintptr_t)w;
    return st;
}

void fg_choices_reset(fg_context *ctx) {
    pthread_mutex_lock(&ctx->mu);
    fg_choices_free(ctx);
    pthread_mutex_unlock(&ctx->mu);
}

void fg_choices_free(fg_context *ctx) {
    while (ctx->choices) {
        fg_choice *n = ctx->choices->next;
        free(ctx->choices);
        ctx->choices = n;
    }
}
