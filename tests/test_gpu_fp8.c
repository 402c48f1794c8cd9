/* GPU correctness of the FP8 (e4m3) forward (issue 14) against the float64
 * reference of the dequantised inputs (fg_reference_forward_fp8): head dims
 * 64/128/256 and 192/128, causal none / bottom-right / top-left, GQA, odd
 * lengths (neither multiple of the 128-row tiles, sq < sk and sq > sk),
 * batch 2, descales per tensor and per (batch, kv head) and NULL, fp16 and
 * bf16 outputs.  Inputs N(0,1) quantised with the scale max|x| / 448 of
 * their group (NULL descales: scale 1); outputs poisoned with NaN first.  A negative control (the
 * device v_descale doubled) must fail the same tolerance.
 * Tolerance: P is rounded to e4m3 in the kernel (3 mantissa bits) while the
 * reference keeps it exact, so o is compared by rel_l2 < 4e-2 and
 * max |err| < 0.1 max(1, max |o|); lse (from fp32 S of exact e4m3
 * products) to 1e-3.  Exit 77 (skipped) without a GPU, and on a GPU
 * that is not sm_90 (FG_ERR_UNSUPPORTED is checked there instead). */
#include <math.h>
#include <stdlib.h>

#include "runtime/internal.h"
#include "runtime/reference.h"
#include "test_gpu_util.h"
#include "test_util.h"

typedef struct fp8_case {
    int d, dv, b, hq, hk, sq, sk;
    fg_causal causal;
    int per_head; /* 0 per tensor, 1 per (batch, kv head), -1 NULL descales */
    fg_dtype out;
} fp8_case;

/* x ~ N(0,1) quantised per group of `group` consecutive (b, kv head)
 * slices: scale[g] = max |x| / 448, x8 = e4m3(x / scale).  per_head < 0
 * (the NULL-descale cases): scale 1, x8 = e4m3(x), inputs as a caller
 * without scales has them (scaled to 448 and read with descale 1, the
 * logits would be ~1e4: an argmax that the accumulator's rounding flips). */
static void quantise(uint8_t *x8, float *scale, int B, int S, int H, int D, int hk_of_h, int per_head, fg_rng *r) {
    const size_t n = (size_t)B * S * H * D;
    float *x = malloc(n * sizeof *x);
    const int unit = per_head < 0;
    if (unit) per_head = 0;
    const int groups = per_head ? B * (H / hk_of_h) : 1;
    for (int g = 0; g < groups; ++g) scale[g] = 0;
    for (size_t i = 0; i < n; ++i) {
        x[i] = (float)fg_rng_normal(r);
        const int h = (int)(i / D % H), b = (int)(i / ((size_t)D * H * S));
        const int g = per_head ? b * (H / hk_of_h) + h / hk_of_h : 0;
        scale[g] = fmaxf(scale[g], fabsf(x[i]) / 448.f);
    }
    if (unit) scale[0] = 1.f;
    for (size_t i = 0; i < n; ++i) {
        const int h = (int)(i / D % H), b = (int)(i / ((size_t)D * H * S));
        const int g = per_head ? b * (H / hk_of_h) + h / hk_of_h : 0;
        x8[i] = fg_float_to_e4m3(x[i] / scale[g]);
    }
    free(x);
}

/* Runs one case; v_scale_bias multiplies the device v_descale (1: honest,
 * 2: the negative control).  Returns 1 when within tolerance. */
static int run(fg_context *ctx, const fp8_case *c, float v_scale_bias, uint64_t seed) {
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_E4M3, c->d, c->b, c->hq, c->hk, c->sq, c->sk);
    fg_attention_desc_set_head_dim_v(&d, c->dv);
    d.causal = c->causal;
    d.out_dtype = c->out;
    d.descale_per_head = c->per_head > 0;
    char what[200];
    snprintf(what, sizeof what, "d=%d/%d b=%d h=%d/%d sq=%d sk=%d causal=%d descale=%s out=%s", c->d, c->dv, c->b, c->hq,
             c->hk, c->sq, c->sk, (int)c->causal, c->per_head < 0 ? "NULL" : c->per_head ? "head" : "tensor",
             fg_dtype_name(c->out));
    if (fg_attention_prepare(ctx, &d) != FG_OK) {
        CHECK(0, "%s: prepare: %s", what, fg_errmsg(ctx));
        return 0;
    }
    const fg_cuda *cu = ctx->cu;
    fg_rng r;
    fg_rng_seed(&r, seed);
    const size_t nq = (size_t)c->b * c->sq * c->hq * c->d, nk = (size_t)c->b * c->sk * c->hk * c->d;
    const size_t nv = (size_t)c->b * c->sk * c->hk * c->dv, no = (size_t)c->b * c->sq * c->hq * c->dv;
    const size_t nl = (size_t)c->b * c->hq * c->sq, ns = (size_t)c->b * c->hk;
    uint8_t *q8 = malloc(nq), *k8 = malloc(nk), *v8 = malloc(nv);
    float *qs = malloc(ns * 4), *ks = malloc(ns * 4), *vs = malloc(ns * 4), *vs_dev = malloc(ns * 4);
    const int ph = c->per_head > 0 ? 1 : c->per_head < 0 ? -1 : 0;
    quantise(q8, qs, c->b, c->sq, c->hq, c->d, c->hq / c->hk, ph, &r);
    quantise(k8, ks, c->b, c->sk, c->hk, c->d, 1, ph, &r);
    quantise(v8, vs, c->b, c->sk, c->hk, c->dv, 1, ph, &r);
    for (size_t i = 0; i < ns; ++i) vs_dev[i] = vs[i] * v_scale_bias;
    double *ref = malloc(no * 8), *lref = malloc(nl * 8);
    fg_reference_forward_fp8(&d, q8, k8, v8, qs, ks, vs, ref, lref);

    CUdeviceptr dq = 0, dk = 0, dv = 0, dout = 0, dlse = 0, dqs = 0, dks = 0, dvs = 0;
    CUresult e = cu->MemAlloc(&dq, nq);
    if (!e) e = cu->MemAlloc(&dk, nk);
    if (!e) e = cu->MemAlloc(&dv, nv);
    if (!e) e = cu->MemAlloc(&dout, no * 2);
    if (!e) e = cu->MemAlloc(&dlse, nl * 4);
    if (!e) e = cu->MemAlloc(&dqs, ns * 4);
    if (!e) e = cu->MemAlloc(&dks, ns * 4);
    if (!e) e = cu->MemAlloc(&dvs, ns * 4);
    if (!e) e = cu->MemcpyHtoD(dq, q8, nq);
    if (!e) e = cu->MemcpyHtoD(dk, k8, nk);
    if (!e) e = cu->MemcpyHtoD(dv, v8, nv);
    if (!e) e = cu->MemcpyHtoD(dqs, qs, ns * 4);
    if (!e) e = cu->MemcpyHtoD(dks, ks, ns * 4);
    if (!e) e = cu->MemcpyHtoD(dvs, vs_dev, ns * 4);
    if (!e) e = cu->MemsetD32(dout, 0xFFFFFFFFu, no / 2); /* NaN in fp16 and bf16 */
    if (!e) e = cu->MemsetD32(dlse, 0x7fc00000u, nl);
    int ok = 0;
    if (e) {
        CHECK(0, "%s: device setup failed (%d)", what, (int)e);
        goto done;
    }
    if (c->per_head >= 0) {
        d.q_descale = (const float *)(uintptr_t)dqs;
        d.k_descale = (const float *)(uintptr_t)dks;
        d.v_descale = (const float *)(uintptr_t)dvs;
    }
    fg_status st = fg_attention_forward(ctx, &d, (void *)(uintptr_t)dq, (void *)(uintptr_t)dk, (void *)(uintptr_t)dv,
                                        (void *)(uintptr_t)dout, (float *)(uintptr_t)dlse, NULL);
    if (st != FG_OK) {
        CHECK(0, "%s: forward: %s", what, fg_errmsg(ctx));
        goto done;
    }
    uint16_t *o = malloc(no * 2);
    float *lse = malloc(nl * 4);
    e = cu->CtxSynchronize();
    if (!e) e = cu->MemcpyDtoH(o, dout, no * 2);
    if (!e) e = cu->MemcpyDtoH(lse, dlse, nl * 4);
    if (e) {
        CHECK(0, "%s: run failed (%d)", what, (int)e);
    } else {
        double num = 0, den = 0, max_err = 0, max_ref = 0, lse_err = 0;
        size_t nan = 0;
        for (size_t i = 0; i < no; ++i) {
            const double got = fg_half_to_float(o[i], c->out), diff = fabs(got - ref[i]);
            if (isnan(got)) { ++nan; continue; }
            num += diff * diff;
            den += ref[i] * ref[i];
            max_err = fmax(max_err, diff);
            max_ref = fmax(max_ref, fabs(ref[i]));
        }
        for (size_t i = 0; i < nl; ++i) {
            if (isinf(lref[i]) && isinf(lse[i]) && lse[i] < 0) continue;
            lse_err = fmax(lse_err, isnan(lse[i]) ? INFINITY : fabs(lse[i] - lref[i]));
        }
        const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        /* lse: 4e-3.  The scores come from the e4m3 tensor cores, whose
         * accumulator keeps fewer bits than fp32 (about 14, as reported for
         * Hopper's FP8 GEMMs), so lse errors of 1e-4 to 1.6e-3 are seen at
         * every head dim on these inputs (H200, 2026-12-01), where a wrong
         * descale or a dropped key tile costs 1e-1 or more. */
        ok = !nan && rel < 4e-2 && max_err < 0.1 * fmax(1.0, max_ref) && lse_err < 4e-3;
        printf("%-4s %s%s rel_l2=%.2e max_err=%.2e lse_err=%.2e nan=%zu\n", ok ? "ok" : "bad", what,
               v_scale_bias != 1.f ? " [control]" : "", rel, max_err, lse_err, nan);
    }
    free(o);
    free(lse);
done:
    CUdeviceptr all[] = {dq, dk, dv, dout, dlse, dqs, dks, dvs};
    for (int i = 0; i < 8; ++i)
        if (all[i]) cu->MemFree(all[i]);
    free(q8); free(k8); free(v8); free(qs); free(ks); free(vs); free(vs_dev); free(ref); free(lref);
    return ok;
}

/* `test_gpu_fp8 san`: four cases only (for compute-sanitizer): head dim
 * 256 on the persistent grid with several work tiles a CTA, 128 causal,
 * 64 with one query, 64/256 (four O slices).  `test_gpu_fp8 quick`: one
 * case per head-dim pair (six kernels to compile instead of 36). */
int main(int argc, char **argv) {
    const int san = argc > 1 && !strcmp(argv[1], "san");
    const int quick = argc > 1 && !strcmp(argv[1], "quick");
    gpu_or_skip();
    fg_context *ctx;
    fg_context_create(&ctx);
    /* not Hopper: the call is refused, nothing else to test */
    {
        fg_attention_desc d;
        fg_attention_desc_init(&d, FG_E4M3, 128, 1, 1, 1, 128, 128);
        char name[512];
        const fg_status st = fg_attention_kernel_name(ctx, &d, name, sizeof name);
        if (st == FG_ERR_UNSUPPORTED && strstr(fg_errmsg(ctx), "sm_90a")) {
            printf("SKIP: not an sm_90a GPU (%s)\n", fg_errmsg(ctx));
            fg_context_destroy(ctx);
            return 77;
        }
        CHECK(st == FG_OK && !strncmp(name, "fwd_ws:", 7) && strstr(name, "dtype=e4m3"), "kernel %s: %s", name,
              fg_errmsg(ctx));
        printf("FP8 hdim 128 runs %s\n", name);
    }
    /* {64, 256}: O leaves in four column slices of the 128-byte Q buffer;
     * {128, 80}: two, the last a short one (fg_fwd_ws.cuh, O_PASSES) */
    static const int dims[][2] = {{64, 64}, {128, 128}, {256, 256}, {192, 128}, {64, 256}, {128, 80}};
    static const struct { int b, hq, hk, sq, sk; } shapes[] = {
        {2, 4, 2, 333, 517}, /* GQA 2:1, sq < sk, odd */
        {1, 3, 1, 300, 100}, /* MQA, sq > sk: bottom-right leaves early rows empty */
        {2, 2, 2, 128, 128}, /* exact tiles */
        {1, 2, 2, 1, 200},   /* one query */
        {8, 16, 4, 300, 130}, /* 384 work tiles: each CTA of the persistent grid runs several (Q ring, V^T end mark) */
    };
    int k = 0;
    for (size_t di = 0; di < sizeof dims / sizeof *dims; ++di)
        for (int causal = 0; causal < 3; ++causal)
            for (size_t si = 0; si < sizeof shapes / sizeof *shapes; ++si, ++k) {
                /* quick: one case per head-dim pair (each value dim's V
                 * transpose), causal mode and shape varied with it */
                if (quick && !(causal == (int)(di % 3) && si == (di * 2) % (sizeof shapes / sizeof *shapes))) continue;
                if (san && !((dims[di][0] == 256 && causal == 0 && si == 4) || (dims[di][0] == 128 && causal == 1 && si == 0) ||
                             (dims[di][0] == 64 && dims[di][1] == 64 && causal == 2 && si == 3) ||
                             (dims[di][1] == 256 && dims[di][0] == 64 && causal == 0 && si == 0)))
                    continue;
                const fp8_case c = {dims[di][0], dims[di][1], shapes[si].b, shapes[si].hq, shapes[si].hk, shapes[si].sq,
                                    shapes[si].sk, (fg_causal)causal, k % 3 == 2 ? -1 : k % 3, k % 2 ? FG_BF16 : FG_FP16};
                CHECK(run(ctx, &c, 1.f, 1000 + (uint64_t)k), "case %d", k);
            }
    /* negative control: a wrong v_descale must be caught by the tolerance */
    const fp8_case ctl = {128, 128, 2, 4, 2, 333, 517, FG_CAUSAL_NONE, 1, FG_BF16};
    CHECK(!run(ctx, &ctl, 2.f, 7), "v_descale doubled passed the tolerance");
    fg_context_destroy(ctx);
    return test_summary("test_gpu_fp8");
}
