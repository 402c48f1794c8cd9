/* CPU tests of the FP8 (e4m3) forward, everything but the launch: the host
 * e4m3 decode and encode, the float64 reference with descales, the
 * descriptor checks, SPEC text and keys, configurations and rendering.
 * (tests/hopper_sass.sh compiles the FP8 variants and reads their SASS.) */
#include <math.h>
#include <stdlib.h>

#include "fg_fp8_map.h"
#include "autotune/candidates.h"
#include "gen/render.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/check.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "select/heuristic.h"
#include "test_util.h"

#define H100_SMEM 232448

/* The decode, against values written from the format's definition. */
static void test_decode(void) {
    const struct { uint8_t x; double v; } known[] = {
        {0x00, 0.0},       {0x01, 1.0 / 512},  {0x07, 7.0 / 512},  {0x08, 1.0 / 64}, {0x30, 0.5},
        {0x38, 1.0},       {0x39, 1.125},      {0x3f, 1.875},      {0x40, 2.0},      {0x7e, 448.0},
        {0x7d, 416.0},     {0x77, 240.0},      {0xb8, -1.0},       {0xfe, -448.0},   {0x81, -1.0 / 512},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; ++i)
        CHECK(fg_e4m3_to_float(known[i].x) == (float)known[i].v, "e4m3 0x%02x: %g, expected %g", known[i].x,
              (double)fg_e4m3_to_float(known[i].x), known[i].v);
    CHECK(isnan(fg_e4m3_to_float(0x7f)) && isnan(fg_e4m3_to_float(0xff)), "0x7f and 0xff are NaN");
    CHECK(signbit(fg_e4m3_to_float(0x80)) && fg_e4m3_to_float(0x80) == 0.f, "0x80 is -0");
    /* all 256: NaN only at 0x7f/0xff; positive codes strictly increasing;
     * the negative code the mirror image */
    int nans = 0;
    for (int x = 0; x < 256; ++x) nans += isnan(fg_e4m3_to_float((uint8_t)x)) != 0;
    CHECK(nans == 2, "%d NaN codes", nans);
    for (int x = 1; x < 0x7f; ++x)
        CHECK(fg_e4m3_to_float((uint8_t)x) > fg_e4m3_to_float((uint8_t)(x - 1)), "not increasing at 0x%02x", x);
    for (int x = 0; x < 0x7f; ++x)
        CHECK(fg_e4m3_to_float((uint8_t)(x | 0x80)) == -fg_e4m3_to_float((uint8_t)x), "sign of 0x%02x", x);
    /* normal codes: (1 + m/8) 2^(e-7), an independent spelling */
    for (int e = 1; e < 16; ++e)
        for (int m = 0; m < 8; ++m) {
            if (e == 15 && m == 7) continue;
            const double want = (1.0 + m / 8.0) * pow(2.0, e - 7);
            CHECK(fg_e4m3_to_float((uint8_t)(e << 3 | m)) == (float)want, "e=%d m=%d", e, m);
        }
}

static void test_encode(void) {
    for (int x = 0; x < 256; ++x) {
        if (x == 0x7f || x == 0xff) continue;
        const uint8_t y = fg_float_to_e4m3(fg_e4m3_to_float((uint8_t)x));
        CHECK(y == x, "round trip of 0x%02x gave 0x%02x", x, y);
    }
    const struct { float f; uint8_t x; } cases[] = {
        {1.0625f, 0x38},          /* halfway 1 .. 1.125: even mantissa (1.0) */
        {1.1875f, 0x3a},          /* halfway 1.125 .. 1.25: even (1.25) */
        {1.06f, 0x38},            {1.07f, 0x39},
        {1.0f / 1024, 0x00},      /* half the smallest subnormal: ties to even 0 */
        {3.0f / 1024, 0x02},      /* 1.5 subnormal steps: ties to even 2 */
        {0.01544f, 0x08},         /* just below 2^-6: rounds up into the normals */
        {460.f, 0x7e},            {1e6f, 0x7e},  {-1e6f, 0xfe}, {INFINITY, 0x7e}, /* saturating */
        {-0.0f, 0x80},            {0.0f, 0x00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i)
        CHECK(fg_float_to_e4m3(cases[i].f) == cases[i].x, "encode %g: 0x%02x, expected 0x%02x", (double)cases[i].f,
              fg_float_to_e4m3(cases[i].f), cases[i].x);
    CHECK((fg_float_to_e4m3(NAN) & 0x7f) == 0x7f, "NaN encodes to NaN");
}

/* The FP8 reference equals the 16-bit reference of the same values times
 * their descales (powers of two, so bf16 holds the products exactly):
 * per tensor and per (batch, kv head), GQA, causal, odd lengths. */
static void test_reference(void) {
    fg_rng r;
    fg_rng_seed(&r, 14);
    for (int per_head = 0; per_head < 2; ++per_head) {
        const int B = 2, HQ = 4, HK = 2, SQ = 37, SK = 53, D = 64, DV = 32;
        fg_attention_desc d8, d16;
        fg_attention_desc_init(&d8, FG_E4M3, D, B, HQ, HK, SQ, SK);
        fg_attention_desc_set_head_dim_v(&d8, DV);
        d8.causal = FG_CAUSAL_BOTTOM_RIGHT;
        d8.descale_per_head = per_head;
        d16 = d8;
        d16.dtype = FG_BF16;
        d16.descale_per_head = 0;
        const size_t nq = (size_t)B * SQ * HQ * D, nk = (size_t)B * SK * HK * D, nv = (size_t)B * SK * HK * DV;
        uint8_t *q8 = malloc(nq), *k8 = malloc(nk), *v8 = malloc(nv);
        uint16_t *q16 = malloc(2 * nq), *k16 = malloc(2 * nk), *v16 = malloc(2 * nv);
        float qd[4], kd[4], vd[4];
        for (int i = 0; i < B * HK; ++i) {
            qd[i] = ldexpf(1.f, -1 - i);
            kd[i] = ldexpf(1.f, 2 - i);
            vd[i] = ldexpf(1.f, i - 2);
        }
        for (size_t i = 0; i < nq; ++i) q8[i] = fg_float_to_e4m3((float)(4 * fg_rng_normal(&r)));
        for (size_t i = 0; i < nk; ++i) k8[i] = fg_float_to_e4m3((float)(4 * fg_rng_normal(&r)));
        for (size_t i = 0; i < nv; ++i) v8[i] = fg_float_to_e4m3((float)(4 * fg_rng_normal(&r)));
        /* the descale of element i's (b, kv head) in BSHD */
#define DS(x, b, hk) ((x)[per_head ? (b) * HK + (hk) : 0])
        for (size_t i = 0; i < nq; ++i) {
            const int h = (int)(i / D % HQ), b = (int)(i / ((size_t)D * HQ * SQ));
            q16[i] = fg_float_to_half(fg_e4m3_to_float(q8[i]) * DS(qd, b, h / 2), FG_BF16);
        }
        for (size_t i = 0; i < nk; ++i) {
            const int h = (int)(i / D % HK), b = (int)(i / ((size_t)D * HK * SK));
            k16[i] = fg_float_to_half(fg_e4m3_to_float(k8[i]) * DS(kd, b, h), FG_BF16);
        }
        for (size_t i = 0; i < nv; ++i) {
            const int h = (int)(i / DV % HK), b = (int)(i / ((size_t)DV * HK * SK));
            v16[i] = fg_float_to_half(fg_e4m3_to_float(v8[i]) * DS(vd, b, h), FG_BF16);
        }
#undef DS
        const size_t no = (size_t)B * SQ * HQ * DV, nl = (size_t)B * HQ * SQ;
        double *o8 = malloc(8 * no), *o16 = malloc(8 * no), *l8 = malloc(8 * nl), *l16 = malloc(8 * nl);
        fg_reference_forward_fp8(&d8, q8, k8, v8, qd, kd, vd, o8, l8);
        fg_reference_forward(&d16, NULL, q16, k16, v16, o16, l16);
        double err = 0, mag = 0;
        for (size_t i = 0; i < no; ++i) {
            err = fmax(err, fabs(o8[i] - o16[i]));
            mag = fmax(mag, fabs(o16[i]));
        }
        for (size_t i = 0; i < nl; ++i)
            if (isfinite(l16[i]) || isfinite(l8[i])) err = fmax(err, fabs(l8[i] - l16[i]));
        CHECK(err < 1e-9 && mag > 0.1, "per_head=%d: fp8 reference differs from the bf16 one by %g (|o| %g)", per_head, err,
              mag);
        /* per-head descales must matter: with per tensor the result changes */
        if (per_head) {
            d8.descale_per_head = 0;
            fg_reference_forward_fp8(&d8, q8, k8, v8, qd, kd, vd, o8, l8);
            double diff = 0;
            for (size_t i = 0; i < no; ++i) diff = fmax(diff, fabs(o8[i] - o16[i]));
            CHECK(diff > 1e-3, "descale_per_head ignored (diff %g)", diff);
        }
        free(q8); free(k8); free(v8); free(q16); free(k16); free(v16);
        free(o8); free(o16); free(l8); free(l16);
    }
}

/* An FP8 spec of head dims d / dv, every other field zero. */
static fg_spec fp8_spec(int d, int dv) {
    fg_spec s = {0};
    s.head_dim = d;
    s.head_dim_v = dv;
    s.dtype = FG_E4M3;
    return s;
}

/* The kernel's index maps (templates/fg_fp8_map.h) against the hardware
 * layouts, written from the PTX ISA:
 *   fp32 accumulator, n8 block j, element e: row g + 8 (e >> 1), column
 *     8j + 2q + (e & 1)  (g = lane / 4, q = lane % 4, per warp);
 *   e4m3 A operand of m64nNk32, register r, byte i: row g + 8 (r & 1),
 *     column 4q + i + 16 (r >> 1).
 * P V is right iff the key P's A-column holds (through pack_p_e4m3) is the
 * key V^T's column holds (through transpose_v), for every column. */
static void test_maps(void) {
    for (int lane = 0; lane < 32; ++lane)
        for (int r = 0; r < 4; ++r)
            for (int i = 0; i < 4; ++i) {
                const int g = lane / 4, q = lane % 4, j = fp8_pack_block(r, i), e = fp8_pack_elem(r, i);
                const int acc_row = g + 8 * (e >> 1), acc_key = 8 * j + 2 * q + (e & 1);
                const int a_row = g + 8 * (r & 1), a_col = 4 * q + i + 16 * (r >> 1);
                CHECK(acc_row == a_row && acc_key == fp8_key_of_col(a_col), "lane %d reg %d byte %d: P(%d, key %d) at A(%d, col %d -> key %d)",
                      lane, r, i, acc_row, acc_key, a_row, a_col, fp8_key_of_col(a_col));
            }
    /* the key permutation is one: each key once per step */
    int seen[32] = {0};
    for (int a = 0; a < 32; ++a) ++seen[fp8_key_of_col(a)];
    for (int k = 0; k < 32; ++k) CHECK(seen[k] == 1, "key %d at %d columns", k, seen[k]);
    /* transpose_v's work, run on a byte array: warps 0-2 of the
     * transposers (WsShape::TRANSPOSERS / 32), columns m = warp, warp + 3,
     * ... of four items each as the kernel loops, with ldmatrix .trans and stmatrix as the PTX
     * ISA defines them (b16 elements: without .trans thread t holds row
     * t / 4, elements 2 (t % 4) and 2 (t % 4) + 1, the first in the low
     * half; .trans gives the transposed matrix that layout); V(key, n) = a
     * hash of both.  Every value dim the FP8 kernel takes (multiples of 16). */
    for (int dv = 16; dv <= 256; dv += 16) {
        const int BC = 128, dvp = (dv + 127) / 128 * 128;
        unsigned char *src = calloc((size_t)BC * dvp, 1), *dst = calloc((size_t)dv * BC, 1);
        int *writes = calloc((size_t)dv * BC, sizeof *writes);
#define VAL(key, n) ((unsigned char)((key) * 7 + (n) * 13 + ((key) >> 3) * 5 + 1))
        for (int key = 0; key < BC; ++key)
            for (int n = 0; n < dv; ++n) src[fp8_swz(BC, key, n)] = VAL(key, n);
        /* transpose_v's addresses: column m's from column 0's, the items
         * of a column from its first (4096 bytes apart, ^ (jp << 5)) */
        for (int lane = 0; lane < 32; ++lane)
            for (int m = 0; m < dv / 16; ++m)
                for (int jp = 0; jp < 4; ++jp) {
                    const unsigned sa = (unsigned)lane * 128u + (unsigned)(m >> 3) * (BC * 128u) + ((((unsigned)m ^ (unsigned)lane) & 7u) << 4);
                    const unsigned da = fp8_tr_dst(dv, 0, lane) + (unsigned)m * 2048u;
                    CHECK(fp8_tr_src(BC, 4 * m + jp, lane) == sa + 4096u * (unsigned)jp, "dv %d lane %d m %d jp %d: source address", dv, lane, m, jp);
                    CHECK(fp8_tr_dst(dv, 4 * m + jp, lane) == (da ^ ((unsigned)jp << 5)), "dv %d lane %d m %d jp %d: store address", dv, lane, m, jp);
                }
        for (int warp = 0; warp < 3; ++warp)
            for (int it0 = 4 * warp; it0 < dv / 4; it0 += 12)
                for (int it = it0; it < it0 + 4; ++it) {
                /* conflict-free: the eight 16-byte rows of each matrix in
                 * eight different bank groups ((offset / 16) % 8), loads
                 * and stores */
                for (int i = 0; i < 4; ++i) {
                    int ls = 0, ss = 0;
                    for (int r = 0; r < 8; ++r) {
                        ls |= 1 << ((fp8_tr_src(BC, it, 8 * i + r) >> 4) & 7);
                        ss |= 1 << ((fp8_tr_dst(dv, it, 8 * i + r) >> 4) & 7);
                    }
                    CHECK(ls == 0xff && ss == 0xff, "dv %d item %d matrix %d: bank conflicts (load groups %#x, store %#x)", dv, it,
                          i, ls, ss);
                }
                unsigned char rows[4][8][16]; /* ldmatrix: matrix i, row r from lane 8i + r's address */
                for (int l = 0; l < 32; ++l) memcpy(rows[l / 8][l % 8], src + fp8_tr_src(BC, it, l), 16);
                unsigned reg[32][4];
                for (int t = 0; t < 32; ++t) {
                    const int g = t / 4, q = t % 4;
                    unsigned r[4];
                    for (int i = 0; i < 4; ++i) /* transposed: column g (bytes 2g, 2g+1) of rows 2q, 2q+1 */
                        r[i] = (unsigned)rows[i][2 * q][2 * g] | (unsigned)rows[i][2 * q][2 * g + 1] << 8 |
                               (unsigned)rows[i][2 * q + 1][2 * g] << 16 | (unsigned)rows[i][2 * q + 1][2 * g + 1] << 24;
                    reg[t][0] = FG_FP8_PERM(r[0], r[1], fp8_tr_sel(0, t));
                    reg[t][1] = FG_FP8_PERM(r[0], r[1], fp8_tr_sel(1, t));
                    reg[t][2] = FG_FP8_PERM(r[2], r[3], fp8_tr_sel(0, t));
                    reg[t][3] = FG_FP8_PERM(r[2], r[3], fp8_tr_sel(1, t));
                }
                for (int l = 0; l < 32; ++l) { /* stmatrix: row l % 8 of matrix l / 8 at lane l's address */
                    const int i = l / 8, r = l % 8;
                    const unsigned off = fp8_tr_dst(dv, it, l);
                    CHECK(off + 16 <= (unsigned)(dv * BC), "dv %d item %d lane %d: store at %u past V^T", dv, it, l, off);
                    if (off + 16 > (unsigned)(dv * BC)) continue;
                    for (int c = 0; c < 4; ++c) memcpy(dst + off + 4 * c, &reg[4 * r + c][i], 4);
                    for (int b = 0; b < 16; ++b) ++writes[off + b];
                }
            }
        int bad = 0, twice = 0;
        for (int n = 0; n < dv; ++n)
            for (int a = 0; a < BC; ++a) {
                const int key = 32 * (a / 32) + fp8_key_of_col(a % 32);
                bad += dst[fp8_swz(dv, n, a)] != VAL(key, n);
                twice += writes[fp8_swz(dv, n, a)] != 1;
            }
#undef VAL
        CHECK(!bad && !twice, "dv %d: %d bytes of V^T wrong, %d not written exactly once", dv, bad, twice);
        free(src); free(dst); free(writes);
    }
    /* the byte-permute emulation agrees with CUDA's definition on a case */
    CHECK(FG_FP8_PERM(0x33221100u, 0x77665544u, 0x5140) == 0x55114400u, "byte perm");
}

static fg_status plan(const fg_attention_desc *d, fg_variant *v, fg_fwd_params *p, fg_error *e) {
    fg_error_clear(e);
    return fg_desc_plan(d, H100_SMEM, v, p, e);
}

static void test_checks(void) {
    fg_attention_desc d, b;
    fg_variant v;
    fg_fwd_params p;
    fg_error e = {0};
    static const float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    fg_attention_desc_init(&d, FG_E4M3, 128, 2, 8, 2, 1000, 777);
    d.q_descale = d.k_descale = d.v_descale = ones;
    d.descale_per_head = 1;
    d.out_dtype = FG_BF16;
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(v.spec.dtype == FG_E4M3 && v.spec.out_dtype == FG_BF16 && v.cfg.wgmma == 2, "e4m3 -> TMA family, bf16 out");
    CHECK(p.q_descale == ones && p.k_descale == ones && p.v_descale == ones && p.descale_per_head == 1, "descales in params");
    b = d; b.path = FG_PATH_TMA;
    CHECK(plan(&b, &v, &p, &e) == FG_OK, "FG_PATH_TMA: %s", e.msg);
    b = d; b.path = FG_PATH_MMA;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_UNSUPPORTED, "e4m3 on mma.sync accepted");
    CHECK_CONTAINS(e.msg, "TMA path only");
    b = d; b.path = FG_PATH_WGMMA;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_UNSUPPORTED, "e4m3 on wgmma accepted");
    b = d; b.head_dim = 80; b.q_strides[2] = b.q_strides[1] = 80; /* strides stay multiples of 16 */
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_UNSUPPORTED, "hdim 80 accepted");
    CHECK_CONTAINS(e.msg, "multiple of 32");
    b = d; b.k_strides[2] = 136; b.k_strides[1] = 8;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "k stride 8 accepted");
    CHECK_CONTAINS(e.msg, "multiple of 16 elements");
    b = d; b.out_dtype = FG_E4M3;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "e4m3 output accepted");
    b = d; b.descale_per_head = 2;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "descale_per_head 2 accepted");
    int32_t seq[2] = {0};
    b = d; b.seqlens_k = seq;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_UNSUPPORTED, "e4m3 with a KV-cache length accepted");
    /* NULL descales: documented 1.0, accepted */
    b = d; b.q_descale = b.k_descale = b.v_descale = NULL;
    CHECK(plan(&b, &v, &p, &e) == FG_OK && !p.q_descale, "NULL descales: %s", e.msg);
    /* the FP8 fields are refused, not ignored, with 16-bit inputs */
    fg_attention_desc_init(&b, FG_BF16, 128, 2, 8, 2, 100, 100);
    b.v_descale = ones;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "descale with bf16 accepted");
    CHECK_CONTAINS(e.msg, "FG_E4M3 inputs only");
    b.v_descale = NULL; b.out_dtype = FG_BF16;
    CHECK(plan(&b, &v, &p, &e) == FG_OK, "out_dtype = dtype: %s", e.msg);
    b.dtype = FG_FP16;
    CHECK(plan(&b, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "bf16 out of fp16 inputs accepted");
    /* forward only */
    fg_attention_desc dd;
    fg_bwd_params bp;
    fg_error_clear(&e);
    CHECK(fg_backward_plan(&d, H100_SMEM, &dd, &v, &bp, &e) == FG_ERR_UNSUPPORTED, "e4m3 backward accepted");
    CHECK_CONTAINS(e.msg, "forward only");
    /* not Hopper: refused by the chooser with a message naming FP8 and sm_90a */
    fg_context *ctx = NULL;
    fg_context_create(&ctx);
    snprintf(ctx->dev_info.arch, sizeof ctx->dev_info.arch, "sm_80");
    snprintf(ctx->dev_info.name, sizeof ctx->dev_info.name, "Fake A100");
    ctx->dev_info.smem_per_block_optin = 166912;
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(fg_ctx_choose(ctx, &d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "e4m3 on sm_80 accepted");
    CHECK_CONTAINS(e.msg, "FG_E4M3");
    CHECK_CONTAINS(e.msg, "sm_90a");
    fg_context_destroy(ctx);
    fg_error_clear(&e);
}

/* SPEC text and keys, configurations (complete, check, candidates) and the
 * rendered shared-memory size against the C formula. */
static void test_variants(void) {
    fg_variant v;
    fg_causal cm;
    fg_error e = {0};
    CHECK(fg_spec_parse("hdim=128,dtype=e4m3,out=bf16,wgmma=2", &v, &cm, &e) == FG_OK, "%s", e.msg);
    char txt[FG_VARIANT_TEXT_MAX];
    fg_variant_format(&v, txt, sizeof txt);
    CHECK(strstr(txt, "dtype=e4m3") && strstr(txt, ",out=bf16"), "%s", txt);
    fg_variant w;
    CHECK(fg_spec_parse("hdim=128,dtype=e4m3,wgmma=2", &w, &cm, &e) == FG_OK && !fg_spec_equal(&v.spec, &w.spec),
          "the output type is part of the spec");
    CHECK(fg_spec_parse("hdim=128,dtype=bf16,out=bf16", &w, &cm, &e) == FG_OK, "%s", e.msg);
    fg_variant_format(&w, txt, sizeof txt);
    CHECK(!strstr(txt, "out="), "16-bit keys do not name out: %s", txt);
    CHECK(fg_spec_parse("hdim=128,dtype=e4m3,out=e4m3", &w, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "out=e4m3 accepted");

    fg_sources src;
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg);
    /* Lua's and C's shared-memory sizes agree on every configuration the
     * FP8 rules take (the ring sizes: two Q buffers or one, V stages from
     * the K ring's count down to one), not only the default ones */
    {
        static const int sweep[][2] = {{32, 32},  {64, 64},   {64, 96},   {64, 256}, {96, 96},   {128, 128}, {128, 64},
                                       {128, 80}, {160, 160}, {192, 128}, {192, 192}, {224, 224}, {256, 256}, {256, 128}};
        int tried = 0;
        for (size_t i = 0; i < sizeof sweep / sizeof *sweep; ++i)
            for (int bm = 64; bm <= 192; bm += 64)
                for (int st = 2; st <= 4; ++st) {
                    const fg_spec s = fp8_spec(sweep[i][0], sweep[i][1]);
                    fg_config c;
                    fg_config_unset(&c);
                    c.wgmma = 2; c.block_m = bm; c.block_n = 128; c.stages = st; c.warps = 4 * (1 + bm / 64);
                    c.q_in_regs = 0; c.min_blocks = 1;
                    if (fg_config_check(&s, &c, H100_SMEM, NULL) != FG_OK) continue;
                    fg_variant fv = {s, c};
                    fg_rendered r;
                    const fg_status rs = fg_render_forward(&src, &fv, "k", &r, &e);
                    CHECK(rs == FG_OK, "FP8 %d/%d block_m %d stages %d: %s", sweep[i][0], sweep[i][1], bm, st, e.msg);
                    if (rs != FG_OK) continue;
                    ++tried;
                    CHECK(r.smem_bytes == fg_config_smem_bytes(&s, &c), "FP8 %d/%d block_m %d stages %d: Lua %d bytes, C %d",
                          sweep[i][0], sweep[i][1], bm, st, r.smem_bytes, fg_config_smem_bytes(&s, &c));
                    fg_rendered_free(&r);
                }
        CHECK(tried >= 40, "only %d FP8 configurations swept", tried);
    }
    const int dims[][2] = {{64, 64}, {128, 128}, {256, 256}, {192, 128}, {128, 64}};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; ++i) {
        fg_spec s = fp8_spec(dims[i][0], dims[i][1]);
        fg_config c;
        fg_config_unset(&c);
        CHECK(fg_config_complete(&s, &c, H100_SMEM, &e) == FG_OK, "hdim %d/%d: %s", dims[i][0], dims[i][1], e.msg);
        CHECK(c.wgmma == 2 && c.block_n == 128 && c.stages >= 2, "hdim %d: wgmma=%d block_n=%d stages=%d", dims[i][0],
              c.wgmma, c.block_n, c.stages);
        fg_config cand[16];
        const int n = fg_heuristic_candidates(&s, H100_SMEM, 0, 0, 2, cand, 16);
        CHECK(n >= 1, "hdim %d: no FP8 candidate", dims[i][0]);
        for (int j = 0; j < n; ++j) CHECK(cand[j].wgmma == 2, "hdim %d: a non-TMA FP8 candidate", dims[i][0]);
        CHECK(fg_heuristic_candidates(&s, H100_SMEM, 0, 0, 0, cand, 16) == 0, "FP8 candidates without Hopper");
        fg_variant fv = {s, c};
        fg_rendered r;
        CHECK(fg_render_forward(&src, &fv, "k", &r, &e) == FG_OK, "%s", e.msg);
        CHECK(r.smem_bytes == fg_config_smem_bytes(&s, &c), "hdim %d: Lua %d bytes, C %d", dims[i][0], r.smem_bytes,
              fg_config_smem_bytes(&s, &c));
        if (r.source) {
            CHECK_CONTAINS(r.source, "k32.f32.e4m3.e4m3");
            CHECK_CONTAINS(r.source, "FP8 = true");
        }
        fg_rendered_free(&r);
        /* the FP8 rules */
        fg_config bad = c;
        bad.block_n = 64;
        CHECK(fg_config_check(&s, &bad, H100_SMEM, &e) == FG_ERR_UNSUPPORTED, "FP8 block_n 64 accepted");
        bad = c;
        bad.stages = 1;
        CHECK(fg_config_check(&s, &bad, H100_SMEM, &e) == FG_ERR_UNSUPPORTED, "FP8 one stage accepted");
        bad = c;
        bad.wgmma = 0;
        CHECK(fg_config_check(&s, &bad, H100_SMEM, &e) == FG_ERR_UNSUPPORTED, "FP8 on mma.sync accepted");
    }
    /* the template refuses what the C rules refuse */
    CHECK(fg_spec_parse("hdim=128,dtype=e4m3,wgmma=2,block_m=128,block_n=64,warps=12,stages=2,min_blocks=1", &v, &cm, &e) ==
              FG_OK, "%s", e.msg);
    fg_rendered r;
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "block_n 64 rendered");
    CHECK_CONTAINS(e.msg, "block_n");
    fg_rendered_free(&r);
    fg_sources_free(&src);
    fg_error_clear(&e);
}

/* Score modifications are built for 16-bit inputs only (their logits would
 * miss the descales): each is refused with FG_E4M3 by the runtime
 * (FG_ERR_UNSUPPORTED naming it and FP8) and by the template, and the same
 * descriptor with bf16 inputs is accepted. */
static void test_score_mods_refused(void) {
    fg_attention_desc d, b;
    fg_variant v;
    fg_fwd_params p;
    fg_error e = {0};
    static const float vals[8] = {0.5f, 0.25f, 0.125f, 1, 1, 1, 1, 1};
    fg_context *ctx = NULL;
    CHECK(fg_context_create(&ctx) == FG_OK, "context");
    fg_score *sc = NULL;
    CHECK(fg_score_create(ctx, "score * 0.5", NULL, 0, &sc) == FG_OK, "score: %s", fg_errmsg(ctx));
    fg_attention_desc_init(&d, FG_E4M3, 128, 2, 8, 2, 300, 300);
    for (int m = 0; m < 5; ++m) {
        b = d;
        if (m == 0) b.softcap = 30.f;
        if (m == 1) b.alibi_slopes = vals;
        if (m == 2) b.window_left = 64;
        if (m == 3) b.sinks = vals;
        if (m == 4) b.score = sc;
        const char *name = m == 0 ? "softcap" : m == 1 ? "alibi" : m == 2 ? "window" : m == 3 ? "sink" : "score";
        CHECK(plan(&b, &v, &p, &e) == FG_ERR_UNSUPPORTED, "e4m3 with %s accepted", name);
        CHECK_CONTAINS(e.msg, name);
        CHECK_CONTAINS(e.msg, "FG_E4M3");
        b.dtype = FG_BF16;
        CHECK(plan(&b, &v, &p, &e) == FG_OK, "bf16 with %s: %s", name, e.msg);
    }
    fg_score_destroy(sc);
    fg_context_destroy(ctx);
    /* the template: an e4m3 variant with mods or a score expression */
    fg_sources src;
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg);
    fg_causal cm;
    fg_rendered r;
    CHECK(fg_spec_parse("hdim=128,dtype=e4m3,mods=softcap+window,wgmma=2", &v, &cm, &e) == FG_OK, "%s", e.msg);
    fg_config_complete(&v.spec, &v.cfg, H100_SMEM, &e);
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "e4m3 with softcap rendered");
    CHECK_CONTAINS(e.msg, "'softcap' is not built for the FP8 forward");
    fg_rendered_free(&r);
    v.spec.mods = 0;
    memset(&v.spec.score_hash, 0x5a, sizeof v.spec.score_hash);
    v.spec.score_cuda = v.spec.score_text = "s * 0.5f";
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "e4m3 with a score expression rendered");
    CHECK_CONTAINS(e.msg, "score expression is not built for the FP8 forward");
    fg_rendered_free(&r);
    memset(&v.spec.score_hash, 0, sizeof v.spec.score_hash);
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_OK, "e4m3 without mods: %s", e.msg);
    fg_rendered_free(&r);
    fg_sources_free(&src);
    fg_error_clear(&e);
}

/* Tuning (fg_tune): an e4m3 spec's candidates are the TMA kernel's FP8
 * configurations (64, 128 or, where the 160-register cap of three
 * consumers allows, 192 rows; 128 keys, 2-3 stages, persistent or not),
 * each passing fg_config_check; the winner's check holds o to FP8's
 * tolerance (rel L2 4e-2), not the 16-bit one. */
static void test_tuning(void) {
    for (int hd = 64; hd <= 256; hd *= 2) {
        fg_spec s;
        memset(&s, 0, sizeof s);
        s.head_dim = hd;
        s.dtype = FG_E4M3;
        fg_config c[64];
        const int n = fg_tune_candidates(&s, 232448, 0, 0, 1, FG_PATH_AUTO, c, 64);
        int rows64 = 0, rows128 = 0, rows192 = 0;
        for (int i = 0; i < n; ++i) {
            CHECK(c[i].wgmma == 2 && c[i].block_n == 128 && fg_config_check(&s, &c[i], 232448, NULL) == FG_OK,
                  "hd %d candidate %d: wgmma %d block_n %d", hd, i, c[i].wgmma, c[i].block_n);
            rows64 += c[i].block_m == 64;
            rows128 += c[i].block_m == 128;
            rows192 += c[i].block_m == 192;
        }
        printf("e4m3 hd %d: %d tuning candidates (%d of 64 rows, %d of 128, %d of 192)\n", hd, n, rows64, rows128, rows192);
        CHECK(rows64 > 0 && rows128 > 0 && n == rows64 + rows128 + rows192 && (rows192 > 0) == (hd == 64), "hd %d: FP8 candidates",
              hd);
        CHECK(fg_tune_candidates(&s, 232448, 0, 0, 1, FG_PATH_MMA, c, 64) == 0, "hd %d: FP8 has no mma.sync candidate", hd);
    }
    { /* 192 rows: head_dim <= 64 and head_dim_v <= 96 (64/112 spilled) */
        fg_spec s;
        memset(&s, 0, sizeof s);
        s.dtype = FG_E4M3;
        fg_config c;
        memset(&c, 0, sizeof c);
        c.wgmma = 2; c.block_m = 192; c.block_n = 128; c.warps = 16; c.stages = 2; c.min_blocks = 1;
        const int pairs[][3] = {{64, 96, 1}, {64, 112, 0}, {96, 96, 0}, {32, 64, 1}};
        for (int i = 0; i < 4; ++i) {
            s.head_dim = pairs[i][0];
            s.head_dim_v = pairs[i][1];
            CHECK((fg_config_check(&s, &c, 232448, NULL) == FG_OK) == pairs[i][2], "FP8 block_m 192 at %d/%d", pairs[i][0],
                  pairs[i][1]);
        }
    }
    for (int k = 0; k < 3; ++k) { /* 3% off passes FP8's check, 6% does not; 3% fails bf16's */
        fg_check chk;
        if (k < 2) fg_check_init_fp8(&chk, FG_BF16);
        else fg_check_init(&chk, FG_BF16);
        uint16_t row[16];
        double ref[16];
        for (int x = 0; x < 16; ++x) {
            ref[x] = 1.0 + 0.25 * x;
            row[x] = fg_float_to_half((float)(ref[x] * (k == 1 ? 1.06 : 1.03)), FG_BF16);
        }
        fg_check_row(&chk, row, ref, 16, 0, 0, 0);
        CHECK(fg_check_done(&chk) == (k == 0), "check %d: rel %g (tol %g)", k, chk.o.rel_l2, chk.tol_rel);
    }
}

int main(void) {
    test_decode();
    test_encode();
    test_reference();
    test_maps();
    test_checks();
    test_variants();
    test_score_mods_refused();
    test_tuning();
    return test_summary("test_fp8_cpu");
}
