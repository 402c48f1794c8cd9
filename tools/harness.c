#include "tools/harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"
#include "runtime/pattern.h"
#include "runtime/timing.h"

void fg_case_describe(const fg_case *c, char *buf, size_t n) {
    const fg_attention_desc *d = &c->desc;
    static const char *paths[] = {"auto", "mma", "wgmma", "tma"};
    int k = snprintf(buf, n, "hdim=%d %s causal=%s b=%d hq=%d hkv=%d sq=%d sk=%d %s%s path=%s", d->head_dim,
                     fg_dtype_name(d->dtype), fg_causal_name(d->causal), d->batch, d->heads_q, d->heads_kv, d->seqlen_q,
                     d->seqlen_k, c->bhsd ? "bhsd" : "bshd", c->row_pad ? "+pad" : "", paths[d->path % 4]);
    if (c->pattern && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " pattern(%s, block=%dx%d)", fg_pattern_name(c->pattern), c->block ? c->block : 128,
                 c->block_k ? c->block_k : c->block ? c->block : 128);
    else if (c->density > 0 && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, " sparse(density=%.2f, block=%d)", c->density, c->block ? c->block : 128);
}

static void set_strides(int64_t s[3], int bhsd, int heads, int seqlen, int d, int pad) {
    if (bhsd) { s[2] = d + pad; s[1] = (int64_t)seqlen * s[2]; s[0] = heads * s[1]; }
    else { s[2] = (int64_t)heads * d + pad; s[1] = d; s[0] = (int64_t)seqlen * s[2]; }
}

static size_t numel(const int64_t s[3], int batch, int heads, int seqlen, int d) {
    return (size_t)((batch - 1) * s[0] + (heads - 1) * s[1] + (seqlen - 1) * s[2] + d);
}


int fg_harness_run(fg_context *ctx, const fg_case *c, int iters, fg_case_result *r) {
    memset(r, 0, sizeof *r);
    fg_attention_desc d = c->desc;
    const int D = d.head_dim;
    set_strides(d.q_strides, c->bhsd, d.heads_q, d.seqlen_q, D, c->row_pad);
    set_strides(d.o_strides, c->bhsd, d.heads_q, d.seqlen_q, D, c->row_pad);
    set_strides(d.k_strides, c->bhsd, d.heads_kv, d.seqlen_k, D, c->row_pad);
    set_strides(d.v_strides, c->bhsd, d.heads_kv, d.seqlen_k, D, c->row_pad);
    const size_t nq = numel(d.q_strides, d.batch, d.heads_q, d.seqlen_q, D);
    const size_t nk = numel(d.k_strides, d.batch, d.heads_kv, d.seqlen_k, D);
    const size_t nlse = (size_t)d.batch * d.heads_q * d.seqlen_q;
    fg_rng rng;
    fg_rng_seed(&rng, c->seed);

    uint16_t *hq = malloc(nq * 2), *hk = malloc(nk * 2), *hv = malloc(nk * 2), *ho = malloc(nq * 2);
    float *hlse = malloc(nlse * 4);
    double *orow = malloc(sizeof(double) * (size_t)D);
    fg_host_layout hl = {0};
    const fg_block_layout_desc *host_layout = NULL;
    fg_ref_mask mask = {NULL, NULL};
    fg_block_layout *layout = NULL;
    CUdeviceptr dq = 0, dk = 0, dv = 0, dout = 0, dlse = 0;
    const fg_cuda *cu = NULL;
    int failed = 1;
    if (!hq || !hk || !hv || !ho || !hlse || !orow) { snprintf(r->msg, sizeof r->msg, "out of host memory"); r->status = FG_ERR_OUT_OF_MEMORY; goto done; }
    fg_fill_normal(hq, nq, d.dtype, &rng);
    fg_fill_normal(hk, nk, d.dtype, &rng);
    fg_fill_normal(hv, nk, d.dtype, &rng);

    if (c->pattern) {
        const int bq = c->block ? c->block : 128, bk = c->block_k ? c->block_k : bq;
        if ((r->status = fg_pattern_layout(ctx, c->pattern, d.batch, d.heads_q, d.seqlen_q, d.seqlen_k, bq, bk, &layout)) != FG_OK) {
            snprintf(r->msg, sizeof r->msg, "%s", fg_errmsg(ctx)); goto done;
        }
        host_layout = fg_pattern_last(c->pattern);
        mask.expr = fg_pattern_expr(c->pattern);
        mask.consts = fg_pattern_consts(c->pattern);
        d.layout = layout;
    } else if (c->density > 0) {
        const int blk = c->block ? c->block : 128;
        if (!fg_host_layout_random(&hl, d.batch, d.heads_q, d.seqlen_q, d.seqlen_k, blk, blk, c->density, &rng)) {
            snprintf(r->msg, sizeof r->msg, "out of host memory"); r->status = FG_ERR_OUT_OF_MEMORY; goto done;
        }
        if ((r->status = fg_block_layout_create(ctx, &hl.desc, &layout)) != FG_OK) {
            snprintf(r->msg, sizeof r->msg, "%s", fg_errmsg(ctx)); goto done;
        }
        host_layout = &hl.desc;
        d.layout = layout;
    }
    /* bind the device and compile before allocating */
    if ((r->status = fg_attention_prepare(ctx, &d)) != FG_OK) { snprintf(r->msg, sizeof r->msg, "%s", fg_errmsg(ctx)); goto done; }
    cu = ctx->cu;
    CUresult e = CUDA_SUCCESS;
    if (!e) e = cu->MemAlloc(&dq, nq * 2);
    if (!e) e = cu->MemAlloc(&dk, nk * 2);
    if (!e) e = cu->MemAlloc(&dv, nk * 2);
    if (!e) e = cu->MemAlloc(&dout, nq * 2);
    if (!e) e = cu->MemAlloc(&dlse, nlse * 4);
    if (!e) e = cu->MemcpyHtoD(dq, hq, nq * 2);
    if (!e) e = cu->MemcpyHtoD(dk, hk, nk * 2);
    if (!e) e = cu->MemcpyHtoD(dv, hv, nk * 2);
    /* poison: 0xFFFF is NaN in fp16 and bf16, 0x7fc00000 a float NaN */
    if (!e) e = cu->MemsetD32(dout, 0xFFFFFFFFu, nq / 2);
    if (!e && nq % 2) e = cu->MemcpyHtoD(dout + (nq - 1) * 2, "\xff\xff", 2);
    if (!e) e = cu->MemsetD32(dlse, 0x7fc00000u, nlse);
    if (e) {
        char b[256];
        snprintf(r->msg, sizeof r->msg, "device setup: %s", fg_cuda_errstr(cu, e, b, sizeof b));
        r->status = FG_ERR_CUDA;
        goto done;
    }
    r->status = fg_attention_forward(ctx, &d, (void *)(uintptr_t)dq, (void *)(uintptr_t)dk, (void *)(uintptr_t)dv,
                                     (void *)(uintptr_t)dout, (float *)(uintptr_t)dlse, NULL);
    if (r->status != FG_OK) { snprintf(r->msg, sizeof r->msg, "%s", fg_errmsg(ctx)); goto done; }
    e = cu->CtxSynchronize();
    if (!e) e = cu->MemcpyDtoH(ho, dout, nq * 2);
    if (!e) e = cu->MemcpyDtoH(hlse, dlse, nlse * 4);
    if (e) {
        char b[256];
        snprintf(r->msg, sizeof r->msg, "kernel or copy failed: %s", fg_cuda_errstr(cu, e, b, sizeof b));
        r->status = FG_ERR_CUDA;
        goto done;
    }

    /* every output element written, none NaN */
    for (int b = 0; b < d.batch; ++b)
        for (int h = 0; h < d.heads_q; ++h)
            for (int i = 0; i < d.seqlen_q; ++i) {
                const uint16_t *g = ho + b * d.o_strides[0] + h * d.o_strides[1] + (int64_t)i * d.o_strides[2];
                for (int x = 0; x < D; ++x)
                    if (isnan(fg_half_to_float(g[x], d.dtype))) r->unwritten++;
            }
    /* compare rows against the reference (all, or an even sample) */
    const long total = (long)d.batch * d.heads_q * d.seqlen_q;
    const long step = c->check_rows_max > 0 && total > c->check_rows_max ? (total + c->check_rows_max - 1) / c->check_rows_max : 1;
    double num = 0, den = 0, lnum = 0, lden = 0, ref_max = 0;
    for (long t = 0; t < total; ++t) {
        if (t % step && t != total - 1) continue;
        const int b = (int)(t / ((long)d.heads_q * d.seqlen_q)), h = (int)(t / d.seqlen_q % d.heads_q), i = (int)(t % d.seqlen_q);
        double lref;
        fg_reference_row_mask(&d, host_layout, &mask, hq, hk, hv, b, h, i, orow, &lref);
        const uint16_t *g = ho + b * d.o_strides[0] + h * d.o_strides[1] + (int64_t)i * d.o_strides[2];
        for (int x = 0; x < D; ++x) {
            const double a = fg_half_to_float(g[x], d.dtype), ee = fabs(a - orow[x]);
            r->o.n++;
            if (isnan(a)) { r->o.nan_count++; continue; }
            if (ee > r->o.max_abs) r->o.max_abs = ee;
            if (fabs(orow[x]) > ref_max) ref_max = fabs(orow[x]);
            num += ee * ee;
            den += orow[x] * orow[x];
        }
        const double lg = hlse[((size_t)b * d.heads_q + h) * d.seqlen_q + i];
        r->lse.n++;
        if (isnan(lg)) r->lse.nan_count++;
        else if (isinf(lref) || isinf(lg)) {
            if (!(isinf(lref) && isinf(lg) && lref < 0 && lg < 0)) r->lse.max_abs = INFINITY;
        } else {
            const double le = fabs(lg - lref);
            if (le > r->lse.max_abs) r->lse.max_abs = le;
            lnum += le * le;
            lden += lref * lref;
        }
        r->checked_rows++;
    }
    r->o.rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
    r->lse.rel_l2 = lden > 0 ? sqrt(lnum / lden) : sqrt(lnum);
    /* Tolerances: 4 units of the dtype's rounding on the largest output, and
     * the relative L2 bounds (1e-2 bf16, 2e-3 fp16). */
    const double eps = d.dtype == FG_BF16 ? 1.0 / 256 : 1.0 / 2048;
    r->tol_abs = 4 * eps * (ref_max > 1 ? ref_max : 1);
    r->tol_rel = d.dtype == FG_BF16 ? 1e-2 : 2e-3;
    r->pass = r->unwritten == 0 && r->o.nan_count == 0 && r->lse.nan_count == 0 && r->o.max_abs <= r->tol_abs &&
              r->o.rel_l2 <= r->tol_rel && r->lse.max_abs <= 5e-3;
    if (!r->pass)
        snprintf(r->msg, sizeof r->msg, "mismatch: o max_abs=%.3g (tol %.3g) rel_l2=%.3g (tol %.3g) nan=%zu unwritten=%zu; lse max_abs=%.3g nan=%zu",
                 r->o.max_abs, r->tol_abs, r->o.rel_l2, r->tol_rel, r->o.nan_count, r->unwritten, r->lse.max_abs, r->lse.nan_count);

    /* FLOPs as BENCHMARK.md counts them: 4 b h sq sk d, halved for causal */
    if (host_layout) r->flops = fg_layout_flops(host_layout, d.batch, d.heads_q, d.seqlen_q, d.seqlen_k, D, &r->density);
    else r->flops = 4.0 * d.batch * d.heads_q * (double)d.seqlen_q * d.seqlen_k * D * (d.causal ? 0.5 : 1.0);
    if (iters > 0 && r->pass) {
        fg_forward_call u = {ctx, &d, (void *)(uintptr_t)dq, (void *)(uintptr_t)dk, (void *)(uintptr_t)dv,
                             (void *)(uintptr_t)dout, (float *)(uintptr_t)dlse};
        fg_error te = {0};
        fg_status s = fg_time_median(cu, fg_forward_launch, &u, 3, iters, 0, 0, &r->ms_median, &te);
        if (s != FG_OK) {
            snprintf(r->msg, sizeof r->msg, "timing: %s", te.msg ? te.msg : fg_status_name(s));
            fg_error_clear(&te);
            r->status = s;
            r->pass = 0;
            goto done;
        }
        r->tflops = r->flops / (r->ms_median * 1e-3) / 1e12;
    }
    failed = !r->pass;
done:
    if (cu) {
        if (dq) cu->MemFree(dq);
        if (dk) cu->MemFree(dk);
        if (dv) cu->MemFree(dv);
        if (dout) cu->MemFree(dout);
        if (dlse) cu->MemFree(dlse);
    }
    fg_block_layout_destroy(ctx, layout);
    fg_host_layout_free(&hl);
    free(hq); free(hk); free(hv); free(ho); free(hlse); free(orow);
    return failed;
}
