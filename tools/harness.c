#include "tools/harness.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/check.h"
#include "runtime/internal.h"
#include "runtime/pattern.h"
#include "runtime/timing.h"

void fg_case_describe(const fg_case *c, char *buf, size_t n) {
    const fg_attention_desc *d = &c->desc;
    static const char *paths[] = {"auto", "mma", "wgmma", "tma"};
    char dv[24] = "";
    if (fg_desc_head_dim_v(d) != d->head_dim) snprintf(dv, sizeof dv, " hdim_v=%d", fg_desc_head_dim_v(d));
    int k = snprintf(buf, n, "hdim=%d%s %s causal=%s b=%d hq=%d hkv=%d sq=%d sk=%d %s%s path=%s", d->head_dim, dv,
                     fg_dtype_name(d->dtype), fg_causal_name(d->causal), d->batch, d->heads_q, d->heads_kv, d->seqlen_q,
                     d->seqlen_k, c->bhsd ? "bhsd" : "bshd", c->row_pad ? "+pad" : "", paths[d->path % 4]);
    if (c->pattern && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " pattern(%s, block=%dx%d)", fg_pattern_name(c->pattern), c->block ? c->block : 128,
                 c->block_k ? c->block_k : c->block ? c->block : 128);
    else if (c->density > 0 && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, " sparse(density=%.2f, block=%d)", c->density, c->block ? c->block : 128);
}

/* Unsigned, so that sizes fg_desc_plan then rejects cannot overflow here. */
static void set_strides(int64_t s[3], int bhsd, int heads, int seqlen, int d, int pad) {
    const uint64_t h = (uint64_t)heads, n = (uint64_t)seqlen, row = bhsd ? (uint64_t)d + (uint64_t)pad : h * (uint64_t)d + (uint64_t)pad;
    if (bhsd) { s[2] = (int64_t)row; s[1] = (int64_t)(n * row); s[0] = (int64_t)(h * n * row); }
    else { s[2] = (int64_t)row; s[1] = d; s[0] = (int64_t)(n * row); }
}


int fg_harness_run(fg_context *ctx, const fg_case *c, int iters, fg_case_result *r) {
    memset(r, 0, sizeof *r);
    fg_attention_desc d = c->desc;
    if (d.dtype == FG_E4M3) { /* its inputs, fill and reference are 16-bit */
        snprintf(r->msg, sizeof r->msg, "flashgen run/bench take 16-bit inputs only; FP8 (e4m3) is checked by tests/test_gpu_fp8.c");
        r->status = FG_ERR_UNSUPPORTED;
        return 1;
    }
    /* D: q and k; DV: v and o (checked by the plan below before any use) */
    const int D = d.head_dim, DV = fg_desc_head_dim_v(&d);
    set_strides(d.q_strides, c->bhsd, d.heads_q, d.seqlen_q, D, c->row_pad);
    set_strides(d.o_strides, c->bhsd, d.heads_q, d.seqlen_q, DV, c->row_pad);
    set_strides(d.k_strides, c->bhsd, d.heads_kv, d.seqlen_k, D, c->row_pad);
    set_strides(d.v_strides, c->bhsd, d.heads_kv, d.seqlen_k, DV, c->row_pad);
    /* the library's own checks first, so that every size below is one it
     * accepts (and cannot overflow); the shared-memory limit is the call's */
    fg_variant pv;
    fg_fwd_params pp;
    fg_error pe = {0};
    if ((r->status = fg_desc_plan(&d, INT_MAX, &pv, &pp, &pe)) != FG_OK) {
        snprintf(r->msg, sizeof r->msg, "%s", pe.msg);
        fg_error_clear(&pe);
        return 1;
    }
    const int64_t lse_strides[3] = {(int64_t)d.heads_q * d.seqlen_q, d.seqlen_q, 1};
    const size_t nq = (size_t)fg_tensor_bytes(d.q_strides, d.batch, d.heads_q, d.seqlen_q, D, 2) / 2;
    const size_t nk = (size_t)fg_tensor_bytes(d.k_strides, d.batch, d.heads_kv, d.seqlen_k, D, 2) / 2;
    const size_t nv = (size_t)fg_tensor_bytes(d.v_strides, d.batch, d.heads_kv, d.seqlen_k, DV, 2) / 2;
    const size_t no = (size_t)fg_tensor_bytes(d.o_strides, d.batch, d.heads_q, d.seqlen_q, DV, 2) / 2;
    const size_t nlse = (size_t)fg_tensor_bytes(lse_strides, d.batch, d.heads_q, d.seqlen_q, 1, 4) / 4;
    if (!nlse) {
        snprintf(r->msg, sizeof r->msg, "lse of batch=%d heads_q=%d seqlen_q=%d overflows 64-bit sizes", d.batch, d.heads_q, d.seqlen_q);
        r->status = FG_ERR_INVALID_ARGUMENT;
        return 1;
    }
    fg_rng rng;
    fg_rng_seed(&rng, c->seed);

    uint16_t *hq = malloc(nq * 2), *hk = malloc(nk * 2), *hv = malloc(nv * 2), *ho = malloc(no * 2);
    float *hlse = malloc(nlse * 4);
    double *orow = malloc(sizeof(double) * (size_t)DV);
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
    fg_fill_normal(hv, nv, d.dtype, &rng);

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
    if (!e) e = cu->MemAlloc(&dv, nv * 2);
    if (!e) e = cu->MemAlloc(&dout, no * 2);
    if (!e) e = cu->MemAlloc(&dlse, nlse * 4);
    if (!e) e = cu->MemcpyHtoD(dq, hq, nq * 2);
    if (!e) e = cu->MemcpyHtoD(dk, hk, nk * 2);
    if (!e) e = cu->MemcpyHtoD(dv, hv, nv * 2);
    /* poison: 0xFFFF is NaN in fp16 and bf16, 0x7fc00000 a float NaN */
    if (!e) e = cu->MemsetD32(dout, 0xFFFFFFFFu, no / 2);
    if (!e && no % 2) e = cu->MemcpyHtoD(dout + (no - 1) * 2, "\xff\xff", 2);
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
    if (!e) e = cu->MemcpyDtoH(ho, dout, no * 2);
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
                for (int x = 0; x < DV; ++x)
                    if (isnan(fg_half_to_float(g[x], d.dtype))) r->unwritten++;
            }
    /* compare rows against the reference (all, or an even sample) */
    const long total = (long)d.batch * d.heads_q * d.seqlen_q;
    const long step = c->check_rows_max > 0 && total > c->check_rows_max ? (total + c->check_rows_max - 1) / c->check_rows_max : 1;
    fg_check chk;
    fg_check_init(&chk, d.dtype);
    for (long t = 0; t < total; ++t) {
        if (t % step && t != total - 1) continue;
        const int b = (int)(t / ((long)d.heads_q * d.seqlen_q)), h = (int)(t / d.seqlen_q % d.heads_q), i = (int)(t % d.seqlen_q);
        double lref;
        fg_reference_row_mask(&d, host_layout, &mask, hq, hk, hv, b, h, i, orow, &lref);
        const uint16_t *g = ho + b * d.o_strides[0] + h * d.o_strides[1] + (int64_t)i * d.o_strides[2];
        fg_check_row(&chk, g, orow, DV, 1, hlse[((size_t)b * d.heads_q + h) * d.seqlen_q + i], lref);
    }
    r->pass = fg_check_done(&chk) && r->unwritten == 0;
    r->o = chk.o;
    r->lse = chk.lse;
    r->tol_abs = chk.tol_abs;
    r->tol_rel = chk.tol_rel;
    r->checked_rows = chk.rows;
    if (!r->pass) {
        char m[512];
        fg_check_describe(&chk, m, sizeof m);
        snprintf(r->msg, sizeof r->msg, "mismatch: %s; unwritten %zu", m, r->unwritten);
    }

    if (host_layout) r->flops = fg_layout_flops(host_layout, d.batch, d.heads_q, d.seqlen_q, d.seqlen_k, D, DV, &r->density);
    else r->flops = fg_attention_flops(d.batch, d.heads_q, d.seqlen_q, d.seqlen_k, D, DV, d.causal != FG_CAUSAL_NONE);
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
