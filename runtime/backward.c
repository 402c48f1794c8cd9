/* backward.c: fg_attention_backward and its workspace query, from the
 * caller's descriptor to three launches on the caller's stream: preprocess
 * (D, zeroed accumulator), main (dK, dV, dQ accumulator), dQ conversion.
 * No allocation and no synchronisation: the caller owns the workspace. */
#include <stdint.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/internal.h"
#include "select/bwd_config.h"
#include "select/heuristic.h"
#include "select/tuned.h"
#include "runtime/tensor_map.h"

fg_status fg_attention_backward_workspace(fg_context *ctx, const fg_attention_desc *desc, size_t *bytes) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    if (!bytes) {
        fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "bytes is NULL");
        return fg_ctx_fail(ctx, &e);
    }
    fg_attention_desc d;
    fg_variant v;
    fg_bwd_params p;
    fg_status st = fg_backward_plan(desc, 1 << 30, &d, &v, &p, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    fg_bwd_workspace w;
    fg_bwd_workspace_layout(&d, &w);
    *bytes = w.total;
    return FG_OK;
}

/* The tuned configuration of the call's bucket (fg_tune_backward's result;
 * fg_ctx_tuned); deterministic calls and score modifications keep the
 * heuristic (the tuner times the atomic dQ sum, plain specs).  On Hopper
 * AUTO and FG_PATH_TMA take wgmma=2 (wgmma_ok 2): the tuner stores the TMA
 * kernel's wgmma=2, which FG_PATH_AUTO turns into cp.async loads where
 * TMA cannot take the strides (fg_bwd_set_loads), and which FG_PATH_TMA
 * reaches only with strides TMA takes (checked by choose before). */
static int tuned(fg_context *ctx, const fg_attention_desc *d, const fg_spec *s, int bq, int bk, int hopper, fg_config *c) {
    if (d->deterministic || fg_spec_has_mods(s)) return 0;
    const int level = !hopper || d->path == FG_PATH_MMA ? 0 : d->path == FG_PATH_WGMMA ? 1 : 2;
    return fg_ctx_tuned(ctx, d, s, bq, bk, level, c);
}

fg_status fg_ctx_bwd_heuristic(fg_context *ctx, const fg_spec *s, int block_q, int block_k, int path, int deterministic,
                               fg_config *out, fg_error *err) {
    if (path == FG_PATH_AUTO && fg_bwd_auto_config(s, fg_arch_has_wgmma(ctx->dev_info.arch), deterministic,
                                                   ctx->dev_info.smem_per_block_optin, out))
        return FG_OK;
    return fg_bwd_pick_config(s, ctx->dev_info.smem_per_block_optin, block_q, block_k, fg_ctx_try_compile, ctx, out, err);
}

/* The kernel of v: its explicit configuration, else the tuned one of the
 * call's bucket, else FG_PATH_AUTO's Hopper kernel, else the heuristic's
 * first candidate without spills (fg_bwd_pick_config); the choice is
 * remembered in the context's memo per (spec, layout block, path,
 * deterministic, bucket) so that later calls neither walk the candidates
 * nor look up their kernels, compiled through the kernel cache. */
static fg_status choose(fg_context *ctx, fg_variant *v, const fg_attention_desc *d, fg_kernel **out, fg_error *err) {
    const int block_q = d->layout ? d->layout->block_q : 0, block_k = d->layout ? d->layout->block_k : 0;
    const int hopper = fg_arch_has_wgmma(ctx->dev_info.arch);
    if (v->cfg.wgmma >= 1 && !hopper)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "%s: the Hopper backward needs sm_90a; this device is %s (%s)",
                       v->cfg.wgmma == 2 ? "FG_PATH_TMA" : "FG_PATH_WGMMA", ctx->dev_info.arch, ctx->dev_info.name);
    /* TMA loads (wgmma=2) need strides a tensor map can describe */
    const int tma_ok = fg_tma_qkv_ok(d) && fg_tma_strides_ok(d->do_strides, d->batch, d->heads_q, d->seqlen_q);
    if (v->cfg.wgmma == 2 && !tma_ok)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "FG_PATH_TMA: a stride of q, k, v or dout is not a multiple of 16 bytes (or is 0, or past 2^40 "
                       "bytes) in a dim longer than 1; TMA cannot load it (FG_PATH_WGMMA and FG_PATH_MMA can)");
    if (!v->cfg.block_m) {
        const fg_choice_key key = {.spec = v->spec, .block_q = block_q, .block_k = block_k, .path = (int)d->path,
                                   .tma_ok = tma_ok, .bucket_q = fg_bucket_len(d->seqlen_q),
                                   .bucket_k = fg_bucket_len(d->seqlen_k), .deterministic = d->deterministic != 0};
        if (!fg_ctx_memo_get(ctx, &key, &v->cfg)) {
            if (tuned(ctx, d, &v->spec, block_q, block_k, hopper, &v->cfg)) {
                fg_ctx_count(ctx, &ctx->stats.configs_tuned);
            } else {
                fg_status st = fg_ctx_bwd_heuristic(ctx, &v->spec, block_q, block_k, (int)d->path, d->deterministic, &v->cfg, err);
                if (st != FG_OK) return st;
                fg_ctx_count(ctx, &ctx->stats.configs_heuristic);
            }
            if (d->path == FG_PATH_AUTO) fg_bwd_set_loads(&v->spec, &v->cfg, tma_ok);
            fg_ctx_memo_put(ctx, &key, &v->cfg);
        }
    }
    return fg_ctx_kernel(ctx, v, out, err);
}

static fg_status check_tensors(const fg_cuda *cu, const fg_attention_desc *d, const void *const t[9], fg_error *e) {
    static const char *names[9] = {"q", "k", "v", "o", "dout", "dq", "dk", "dv", "lse"};
    const int64_t *strides[8] = {d->q_strides, d->k_strides, d->v_strides, d->o_strides,
                                 d->do_strides, d->dq_strides, d->dk_strides, d->dv_strides};
    const int kv[8] = {0, 1, 1, 0, 0, 0, 1, 1}, value[8] = {0, 0, 1, 1, 1, 0, 0, 1}; /* value: head_dim_v wide */
    fg_status st;
    for (int i = 0; i < 8; ++i) {
        const int heads = kv[i] ? d->heads_kv : d->heads_q, seqlen = kv[i] ? d->seqlen_k : d->seqlen_q;
        const int width = value[i] ? fg_desc_head_dim_v(d) : d->head_dim;
        if ((st = fg_check_tensor(cu, names[i], t[i], 16, fg_tensor_bytes(strides[i], d->batch, heads, seqlen, width, 2), e)))
            return st;
    }
    const int64_t lse_strides[3] = {(int64_t)d->heads_q * d->seqlen_q, d->seqlen_q, 1};
    if ((st = fg_check_tensor(cu, names[8], t[8], 4, fg_tensor_bytes(lse_strides, d->batch, d->heads_q, d->seqlen_q, 1, 4), e)))
        return st;
    return d->dsinks ? fg_check_tensor(cu, "dsinks", d->dsinks, 4, (int64_t)d->heads_q * 4, e) : FG_OK;
}

static fg_status launch(fg_context *ctx, const fg_kernel *k, CUfunction fn, const char *what, unsigned gx, unsigned gy,
                        unsigned gz, unsigned threads, unsigned smem, fg_bwd_params *p, fg_bwd_tma_params *tm, void *stream,
                        fg_error *err) {
    void *args[] = {p, tm}; /* tm: the TMA main kernel's second parameter, else not read */
    CUresult r = ctx->cu->LaunchKernel(fn, gx, gy, gz, threads, 1, 1, smem, (CUstream)stream, args, NULL);
    if (r == CUDA_SUCCESS) return FG_OK;
    char b[256];
    return fg_fail(err, FG_ERR_CUDA, "launching the %s kernel of %s (grid %u x %u x %u, %u threads, %u bytes smem): %s", what,
                   k->key, gx, gy, gz, threads, smem, fg_cuda_errstr(ctx->cu, r, b, sizeof b));
}

fg_status fg_attention_backward(fg_context *ctx, const fg_attention_desc *desc, const void *q, const void *k,
                                const void *v, const void *o, const void *dout, const float *lse, void *dq, void *dk,
                                void *dv, void *workspace, size_t workspace_bytes, void *stream) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_attention_desc d;
    fg_variant var;
    fg_bwd_params p;
    fg_kernel *kern = NULL;
    fg_status st = fg_ctx_device(ctx, &e);
    if (st == FG_OK) st = fg_backward_plan(desc, ctx->dev_info.smem_per_block_optin, &d, &var, &p, &e);
    fg_bwd_workspace w;
    if (st == FG_OK) {
        const void *t[9] = {q, k, v, o, dout, dq, dk, dv, lse};
        st = check_tensors(ctx->cu, &d, t, &e);
        fg_bwd_workspace_layout(&d, &w);
        if (st == FG_OK && workspace_bytes < w.total)
            st = fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "workspace_bytes = %zu, but this call needs %zu (fg_attention_backward_workspace)",
                         workspace_bytes, w.total);
        if (st == FG_OK) st = fg_check_tensor(ctx->cu, "workspace", workspace, 16, (int64_t)w.total, &e);
    }
    if (st == FG_OK)
        st = choose(ctx, &var, &d, &kern, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    p.q = q; p.k = k; p.v = v; p.o = o; p.dout = dout; p.lse = lse;
    p.dq = dq; p.dk = dk; p.dv = dv;
    st = fg_ctx_bwd_launch(ctx, kern, &var, &p, workspace, &w, stream, &e);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}

fg_status fg_ctx_bwd_launch(fg_context *ctx, const fg_kernel *kern, const fg_variant *var, fg_bwd_params *p,
                            void *workspace, const fg_bwd_workspace *w, void *stream, fg_error *e) {
    char *ws = workspace;
    p->dq_accum = (float *)(ws + w->dq_accum);
    p->dsum = (float *)(ws + w->dsum);
    p->lse2 = (float *)(ws + w->lse2);
    p->dq_lock = (int *)(ws + w->lock);
    const unsigned qb = (unsigned)p->lock_blocks, hq = (unsigned)p->heads_q, bt = (unsigned)p->batch;
    const unsigned kb = (unsigned)((p->seqlen_k + var->cfg.block_n - 1) / var->cfg.block_n);
    fg_bwd_tma_params tm;
    fg_status st = var->cfg.wgmma == 2 ? fg_tma_encode_bwd(ctx->cu, var, p, &tm, e) : FG_OK;
    if (st == FG_OK) st = launch(ctx, kern, kern->fn_pre, "preprocess", qb, hq, bt, 128, 0, p, NULL, stream, e);
    if (st == FG_OK)
        st = launch(ctx, kern, kern->fn, "main", kb, (unsigned)p->heads_kv, bt, (unsigned)kern->threads,
                    (unsigned)kern->smem_bytes, p, &tm, stream, e);
    if (st == FG_OK) st = launch(ctx, kern, kern->fn_dq, "dq conversion", qb, hq, bt, 128, 0, p, NULL, stream, e);
    return st;
}
