/* The backward pass without a GPU: the float64 reference against finite
 * differences of the float64 forward (tiny shapes: GQA, every causal mode,
 * rows that see no key, a value head dim wider and narrower than q's), the
 * plan's checks and workspace size (head_dim_v: every pair of head dims,
 * dv's strides checked at the value width), and the struct_size
 * rules for the appended descriptor fields. */
#include <math.h>
#include <stdlib.h>

#include "runtime/backward.h"
#include "runtime/internal.h"
#include "runtime/layout_t.h"
#include "runtime/reference.h"
#include "runtime/reference_bwd.h"
#include "runtime/structs.h"
#include "select/bwd_config.h"
#include "test_util.h"

/* L = sum(dout * o) over the no elements of o: its gradient is the backward of dout. */
static double loss(const fg_attention_desc *d, const fg_block_layout_desc *L, const double *q, const double *k, const double *v, const double *dout,
                   double *o, size_t no) {
    fg_reference_forward_f64(d, L, NULL, q, k, v, o);
    double l = 0;
    for (size_t i = 0; i < no; ++i) l += dout[i] * o[i];
    return l;
}

/* max |analytic - numeric| / max(1, |numeric|) over every element of x */
static double fd_error(const fg_attention_desc *d, const fg_block_layout_desc *L, double *q, double *k, double *v, const double *dout, double *x,
                       const double *grad, size_t n, double *o, size_t no) {
    double worst = 0;
    const double h = 1e-5;
    for (size_t i = 0; i < n; ++i) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss(d, L, q, k, v, dout, o, no);
        x[i] = x0 - h;
        const double lm = loss(d, L, q, k, v, dout, o, no);
        x[i] = x0;
        const double num = (lp - lm) / (2 * h), err = fabs(num - grad[i]) / fmax(1.0, fabs(num));
        if (err > worst) worst = err;
    }
    return worst;
}

static void test_finite_differences(void) {
    static const int shapes[][8] = {/* batch, hq, hkv, sq, sk, causal, head_dim, head_dim_v */
                                    {1, 2, 1, 5, 7, 0, 8, 8},   {2, 2, 1, 6, 4, 1, 8, 8},  {1, 4, 2, 7, 5, 2, 8, 8},
                                    {1, 2, 2, 1, 3, 1, 8, 8},   {1, 3, 1, 9, 3, 1, 8, 8},  {2, 2, 1, 9, 7, 2, 8, 8},
                                    {1, 2, 1, 8, 8, 0, 8, 8},   {1, 4, 2, 6, 5, 1, 8, 16}, {2, 2, 1, 5, 6, 2, 16, 8},
                                    {1, 2, 1, 9, 7, 2, 16, 8}};
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    for (unsigned s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        fg_attention_desc d;
        fg_attention_desc_init(&d, FG_BF16, shapes[s][6], shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4]);
        CHECK(fg_attention_desc_set_head_dim_v(&d, shapes[s][7]) == FG_OK, "set head_dim_v");
        d.causal = (fg_causal)shapes[s][5];
        d.softmax_scale = 0.7f;
        /* 5, 6 and the last: a random block-sparse layout of 2 x 2 blocks
         * (the reference reads any block size; kernels need 64 x 16 and up) */
        fg_host_layout hl = {0};
        const fg_block_layout_desc *L = NULL;
        if (s == 5 || s == 6 || s == sizeof shapes / sizeof shapes[0] - 1) {
            CHECK(fg_host_layout_random(&hl, d.batch, d.heads_q, d.seqlen_q, d.seqlen_k, 2, 2, 0.6, &rng), "out of memory");
            L = &hl.desc;
        }
        const size_t rq = (size_t)d.batch * d.seqlen_q * d.heads_q, rk = (size_t)d.batch * d.seqlen_k * d.heads_kv;
        const size_t nq = rq * d.head_dim, no = rq * d.head_dim_v, nk = rk * d.head_dim, nv = rk * d.head_dim_v;
        double *q = malloc(8 * nq), *k = malloc(8 * nk), *v = malloc(8 * nv), *dout = malloc(8 * no), *o = malloc(8 * no);
        double *dq = malloc(8 * nq), *dk = malloc(8 * nk), *dv = malloc(8 * nv);
        for (size_t i = 0; i < nq; ++i) q[i] = fg_rng_normal(&rng);
        for (size_t i = 0; i < no; ++i) dout[i] = fg_rng_normal(&rng);
        for (size_t i = 0; i < nk; ++i) k[i] = fg_rng_normal(&rng);
        for (size_t i = 0; i < nv; ++i) v[i] = fg_rng_normal(&rng);
        CHECK(fg_reference_backward_f64(&d, L, NULL, q, k, v, dout, dq, dk, dv), "out of memory");
        const double eq = fd_error(&d, L, q, k, v, dout, q, dq, nq, o, no);
        const double ek = fd_error(&d, L, q, k, v, dout, k, dk, nk, o, no);
        const double ev = fd_error(&d, L, q, k, v, dout, v, dv, nv, o, no);
        printf("finite differences b=%d hq=%d hkv=%d sq=%d sk=%d causal=%d d=%d dv=%d%s: dq %.1e dk %.1e dv %.1e\n", d.batch,
               d.heads_q, d.heads_kv, d.seqlen_q, d.seqlen_k, (int)d.causal, d.head_dim, d.head_dim_v, L ? " sparse" : "", eq, ek, ev);
        CHECK(eq < 1e-7 && ek < 1e-7 && ev < 1e-7, "reference gradient differs from finite differences");
        /* bottom-right with sq > sk: the first rows see no key; their dq is exactly 0 */
        if (d.causal == FG_CAUSAL_BOTTOM_RIGHT && d.seqlen_q > d.seqlen_k)
            for (int x = 0; x < d.head_dim; ++x) CHECK(dq[x] == 0, "an empty row has dq %g", dq[x]);
        free(q); free(k); free(v); free(dout); free(o); free(dq); free(dk); free(dv);
        fg_host_layout_free(&hl);
    }
}

static fg_status plan(const fg_attention_desc *d, fg_variant *v, fg_bwd_params *p, fg_error *e) {
    fg_attention_desc dd;
    fg_error_clear(e);
    return fg_backward_plan(d, 232448, &dd, v, p, e);
}

static void test_plan(void) {
    fg_error e = {0};
    fg_variant v;
    fg_bwd_params p;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_FP16, 96, 2, 6, 2, 300, 500);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(v.spec.kind == FG_KIND_BWD && v.spec.head_dim == 96 && v.spec.causal && v.cfg.block_m == 0, "variant");
    CHECK(p.group == 3 && p.causal_offset == 200 && p.lock_blocks == 19 && !p.deterministic, "params");
    CHECK(p.dq_s[2] == d.q_strides[2] && p.dk_s[0] == d.k_strides[0] && p.do_s[1] == d.o_strides[1], "default gradient strides");
    d.deterministic = 1;
    d.dq_strides[0] = 300 * 6 * 96 + 64; d.dq_strides[1] = 96; d.dq_strides[2] = 6 * 96;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && p.deterministic && p.dq_s[0] == 300 * 6 * 96 + 64, "own dq strides: %s", e.msg);
    d.dq_strides[2] = 8; /* rows overlap */
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "overlapping dq accepted");
    CHECK_CONTAINS(e.msg, "dq");
    memset(d.dq_strides, 0, sizeof d.dq_strides);
    d.dk_strides[0] = 500 * 2 * 96; d.dk_strides[1] = 0; d.dk_strides[2] = 2 * 96; /* two kv heads on one row */
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "dk heads aliasing accepted");
    CHECK_CONTAINS(e.msg, "dk");
    memset(d.dk_strides, 0, sizeof d.dk_strides);
    d.do_strides[2] = 12; /* not a multiple of 8 */
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "dout stride 12 accepted");
    memset(d.do_strides, 0, sizeof d.do_strides);
    d.path = FG_PATH_TMA;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "TMA backward accepted");
    /* FG_PATH_WGMMA: the Hopper kernel's configuration, or a reason */
    d.path = FG_PATH_WGMMA;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "deterministic FG_PATH_WGMMA accepted");
    d.deterministic = 0;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA at head dim 96 accepted");
    CHECK_CONTAINS(e.msg, "wgmma=1");
    fg_attention_desc h = d;
    fg_attention_desc_init(&h, FG_BF16, 128, 2, 6, 2, 300, 500);
    h.path = FG_PATH_WGMMA;
    CHECK(plan(&h, &v, &p, &e) == FG_OK && v.cfg.wgmma == 1 && v.cfg.block_m == 64 && v.cfg.block_n == 128 && v.cfg.warps == 8,
          "FG_PATH_WGMMA at head dim 128: %s", e.msg ? e.msg : "");
    h.block_m = 32;
    CHECK(plan(&h, &v, &p, &e) == FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA with block_m 32 accepted");
    d.deterministic = 1;
    d.path = FG_PATH_MMA;
    /* block-sparse: the transposed lists reach the kernel arguments; no deterministic mode */
    struct fg_block_layout L;
    memset(&L, 0, sizeof L);
    L.batch = 1; L.heads = 6; L.num_q_blocks = 3; L.num_kv_blocks = 4; L.block_q = 128; L.block_k = 128;
    int32_t lists[4];
    L.t_full_num = lists; L.t_part_num = lists + 1; L.t_full_idx = lists + 2; L.t_part_idx = lists + 3;
    L.mask_c[2] = 77;
    d.layout = &L;
    d.path = FG_PATH_AUTO;
    d.deterministic = 0;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && v.spec.sparse && p.sp_full_idx == lists + 2 && p.sp_part_num == lists + 1 &&
              p.sp_heads == 6 && p.sp_num_kv_blocks == 4 && p.sp_block_k == 128 && p.mask_c[2] == 77,
          "sparse plan: %s", e.msg);
    d.deterministic = 1;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "sparse deterministic accepted");
    d.deterministic = 0;
    L.block_k = 96; L.num_kv_blocks = 6; /* 500 keys */
    d.block_n = 64;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "block_n=64 accepted for layout blocks of 96 keys");
    CHECK_CONTAINS(e.msg, "divide");
    d.block_n = 32;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && v.cfg.block_n == 32, "block_n=32 for layout blocks of 96: %s", e.msg);
    d.block_n = 0;
    fg_config cands[8];
    const int nc = fg_bwd_candidates(&v.spec, 232448, 128, 96, cands, 8);
    int divide = nc > 0;
    for (int i = 0; i < nc; ++i) divide &= 96 % cands[i].block_n == 0 && 128 % cands[i].block_m == 0;
    CHECK(divide, "heuristic candidates for a 128 x 96 layout block must divide it (%d)", nc);
    d.layout = NULL;
    d.path = FG_PATH_MMA;
    d.block_m = 48;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "block_m=48 accepted");
    d.block_m = 32;
    CHECK(plan(&d, &v, &p, &e) == FG_OK && v.cfg.block_m == 32 && v.cfg.block_n && v.cfg.warps, "explicit block_m: %s", e.msg);
    CHECK(v.cfg.block_n == 64 && v.cfg.warps == 4 && v.cfg.stages == 1, "block_m=32 completed from its candidate");
    d.stages = 2; /* the backward has one stage: refused, not silently renamed */
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "stages=2 accepted");
    d.stages = 0;
    d.block_m = 0;
    d.head_dim = 12;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_UNSUPPORTED, "head_dim 12 accepted");
    fg_error_clear(&e);

    /* workspace: fp32 dQ rows (padded to whole 64-row blocks per head: the
     * Hopper kernel's chunks), D and lse2 in the same padded rows (128 per
     * head here), counters, each 256-aligned */
    fg_attention_desc_init(&d, FG_BF16, 64, 2, 3, 3, 100, 50);
    fg_bwd_workspace w;
    fg_bwd_workspace_layout(&d, &w);
    CHECK(w.dsum == 2 * 3 * 128 * 64 * 4 && w.lse2 == w.dsum + 3072 && w.lock == w.lse2 + 3072 && w.total == w.lock + 256 &&
              w.total % 256 == 0,
          "workspace %zu %zu %zu %zu", w.dsum, w.lse2, w.lock, w.total);
    CHECK(plan(&d, &v, &p, &e) == FG_OK && p.rows_pad == 128, "rows_pad %d", p.rows_pad);
    fg_error_clear(&e);

    /* AUTO's loads for a Hopper configuration: TMA where the strides allow
     * it, else cp.async; the mma.sync configurations are left alone */
    for (int hd = 64; hd <= 256; hd *= 2)
        for (int ok = 0; ok < 2; ++ok) {
            fg_spec sp = v.spec;
            sp.head_dim = hd;
            sp.head_dim_v = hd;
            fg_config c;
            CHECK(fg_bwd_wgmma_config(&sp, &c) && c.wgmma == 1, "hd %d: no Hopper configuration", hd);
            fg_bwd_set_loads(&sp, &c, ok);
            CHECK(c.wgmma == (ok ? 2 : 1), "hd %d tma_ok %d: wgmma=%d", hd, ok, c.wgmma);
            fg_bwd_set_loads(&sp, &c, !ok); /* and back */
            CHECK(c.wgmma == (!ok ? 2 : 1), "hd %d tma_ok %d: wgmma=%d", hd, !ok, c.wgmma);
            c.wgmma = 0;
            fg_bwd_set_loads(&sp, &c, ok);
            CHECK(c.wgmma == 0, "mma.sync configuration changed");
        }
}

/* A value head dim of its own: every pair of head dims the mma.sync forward
 * takes plans (the variant carries head_dim_v, a configuration fits sm_80),
 * dout and dv strides are checked at head_dim_v, the workspace follows
 * head_dim only. */
static void test_value_dim(void) {
    fg_error e = {0};
    fg_variant v;
    fg_bwd_params p;
    fg_attention_desc d;
    int planned = 0, pairs = 0;
    for (int hd = 8; hd <= 256; hd += 8)
        for (int dv = 8; dv <= 256; dv += 8, ++pairs) {
            fg_attention_desc_init(&d, FG_BF16, hd, 2, 4, 2, 100, 130);
            fg_attention_desc_set_head_dim_v(&d, dv);
            d.causal = FG_CAUSAL_BOTTOM_RIGHT;
            fg_config c[8];
            const int ok = plan(&d, &v, &p, &e) == FG_OK && v.spec.head_dim == hd && fg_spec_head_dim_v(&v.spec) == dv &&
                           p.do_s[2] == 4 * dv && p.dv_s[2] == 2 * dv && p.dk_s[2] == 2 * hd &&
                           fg_bwd_candidates(&v.spec, 166912, 0, 0, c, 8) > 0;
            CHECK(ok, "hd %d dv %d: %s", hd, dv, e.msg ? e.msg : "wrong variant, strides or no sm_80 candidate");
            planned += ok;
        }
    printf("backward plans of %d / %d head dim pairs\n", planned, pairs);
    /* the value key item only where the dims differ: equal-dims variants keep their cache rows */
    fg_attention_desc_init(&d, FG_BF16, 192, 1, 2, 2, 64, 64);
    fg_attention_desc_set_head_dim_v(&d, 128);
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "%s", e.msg);
    char key[512];
    fg_variant_key(&v, "h", 13, 0, "sm_90a", key, sizeof key);
    CHECK(strstr(key, "hdim=192,hdim_v=128,") && strstr(key, "kind=bwd"), "key %s", key);
    fg_attention_desc_set_head_dim_v(&d, 192);
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "%s", e.msg);
    fg_variant_key(&v, "h", 13, 0, "sm_90a", key, sizeof key);
    CHECK(!strstr(key, "hdim_v"), "equal dims name hdim_v: %s", key);
    /* a score expression's backward key covers the derivative the generator
     * made (it is not in the templates' hash); the forward's key does not
     * change with it */
    {
        fg_variant a = v, b2 = v, f = v;
        memset(a.spec.score_hash.sha256, 7, 32);
        a.spec.score_cuda = a.spec.score_text = "s";
        a.spec.score_cuda_d = "1.0f";
        b2.spec = a.spec;
        b2.spec.score_cuda_d = "2.0f * s";
        f.spec = a.spec;
        f.spec.kind = FG_KIND_FWD;
        char ka[512], kb[512], kf1[512], kf2[512];
        fg_variant_key(&a, "h", 13, 0, "sm_90a", ka, sizeof ka);
        fg_variant_key(&b2, "h", 13, 0, "sm_90a", kb, sizeof kb);
        CHECK(strstr(ka, ",score=") && strcmp(ka, kb), "backward keys ignore the derivative: %s", ka);
        fg_variant_key(&f, "h", 13, 0, "sm_90a", kf1, sizeof kf1);
        f.spec.score_cuda_d = "2.0f * s";
        fg_variant_key(&f, "h", 13, 0, "sm_90a", kf2, sizeof kf2);
        CHECK(!strcmp(kf1, kf2) && strstr(kf1, ",score=0707070707"), "forward key changed with the derivative: %s", kf1);
    }
    /* dv rows narrower than the head dim: contiguous at 64 wide is fine, at 128 it would overlap */
    fg_attention_desc_init(&d, FG_FP16, 128, 1, 2, 2, 64, 64);
    fg_attention_desc_set_head_dim_v(&d, 64);
    CHECK(plan(&d, &v, &p, &e) == FG_OK, "d 128 dv 64 contiguous: %s", e.msg);
    /* ... and wider: a dv head stride of 64 overlaps rows 128 wide */
    fg_attention_desc_init(&d, FG_FP16, 64, 1, 2, 2, 64, 64);
    fg_attention_desc_set_head_dim_v(&d, 128);
    d.dv_strides[0] = 64 * 2 * 128; d.dv_strides[1] = 64; d.dv_strides[2] = 2 * 128;
    CHECK(plan(&d, &v, &p, &e) == FG_ERR_INVALID_ARGUMENT, "dv rows of 128 with head stride 64 accepted");
    CHECK_CONTAINS(e.msg, "dv");
    memset(d.dv_strides, 0, sizeof d.dv_strides);
    CHECK(plan(&d, &v, &p, &e) == FG_OK && p.do_s[1] == 128 && p.dv_s[1] == 128 && p.dq_s[1] == 64, "default strides: %s", e.msg);
    /* the workspace holds the fp32 dQ (head_dim wide), not dV */
    fg_bwd_workspace w, w0;
    fg_bwd_workspace_layout(&d, &w);
    d.head_dim_v = 0;
    fg_bwd_workspace_layout(&d, &w0);
    CHECK(w.total == w0.total && w.dsum == 2 * 64 * 64 * 4, "workspace with head_dim_v %zu vs %zu", w.total, w0.total);
    /* the value dim is checked like the head dim */
    fg_attention_desc_init(&d, FG_FP16, 64, 1, 2, 2, 64, 64);
    d.head_dim_v = 68;
    CHECK(plan(&d, &v, &p, &e) != FG_OK, "head_dim_v 68 accepted");
    CHECK_CONTAINS(e.msg, "head_dim_v");
    fg_error_clear(&e);
}

static void test_struct_size(void) {
    fg_error e = {0};
    fg_variant v;
    fg_bwd_params p;
    unsigned char buf[sizeof(fg_attention_desc) + 32];
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 1, 2, 1, 40, 40);
    /* an older caller (before the backward fields): their bytes are not read */
    memcpy(buf, &d, sizeof d);
    memset(buf + FG_ATTENTION_DESC_MIN_SIZE, 0xFF, sizeof buf - FG_ATTENTION_DESC_MIN_SIZE);
    ((fg_attention_desc *)buf)->struct_size = FG_ATTENTION_DESC_MIN_SIZE;
    CHECK(plan((fg_attention_desc *)buf, &v, &p, &e) == FG_OK, "older caller: %s", e.msg);
    CHECK(!p.deterministic && p.dq_s[2] == d.q_strides[2], "older caller's missing fields count as zero");
    /* a newer caller: zero unknown fields are fine, a set one is refused */
    memcpy(buf, &d, sizeof d);
    memset(buf + sizeof d, 0, sizeof buf - sizeof d);
    ((fg_attention_desc *)buf)->struct_size = sizeof buf;
    CHECK(plan((fg_attention_desc *)buf, &v, &p, &e) == FG_OK, "newer caller: %s", e.msg);
    buf[sizeof d + 3] = 1;
    CHECK(plan((fg_attention_desc *)buf, &v, &p, &e) == FG_ERR_UNSUPPORTED, "newer caller's set field accepted");
    fg_error_clear(&e);
}

static void test_api_without_gpu(void) {
    size_t bytes = 0;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 1, 2, 1, 40, 40);
    CHECK(fg_attention_backward_workspace(NULL, &d, &bytes) == FG_ERR_INVALID_ARGUMENT, "NULL context");
    CHECK(fg_attention_backward(NULL, &d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) == FG_ERR_INVALID_ARGUMENT, "NULL context");
    fg_context *ctx;
    fg_context_create(&ctx);
    CHECK(fg_attention_backward_workspace(ctx, &d, NULL) == FG_ERR_INVALID_ARGUMENT, "NULL bytes");
    CHECK(fg_attention_backward_workspace(ctx, &d, &bytes) == FG_OK && bytes > 0, "%s", fg_errmsg(ctx));
    d.heads_kv = 3;
    CHECK(fg_attention_backward_workspace(ctx, &d, &bytes) == FG_ERR_INVALID_ARGUMENT, "heads_q 2, heads_kv 3 accepted");
    CHECK_CONTAINS(fg_errmsg(ctx), "multiple");
    /* a call needs a device: without one it says so (no crash on NULL tensors) */
    d.heads_kv = 1;
    fg_status st = fg_attention_backward(ctx, &d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    CHECK(st != FG_OK, "NULL tensors accepted");
    fg_context_destroy(ctx);
}

static int listed(const int32_t *num, const int32_t *idx, size_t row, size_t stride, int x) {
    if (!num) return 0;
    for (int i = 0; i < num[row]; ++i)
        if (idx[row * stride + (size_t)i] == x) return 1;
    return 0;
}

/* The transposed layout lists exactly the (query block, key block) pairs of
 * the forward's, full as full and partial as partial, each column ascending. */
static void test_transpose(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    static const int shapes[][5] = {{2, 3, 300, 517, 64}, {1, 1, 128, 128, 128}, {1, 2, 1000, 70, 64}};
    for (int t = 0; t < 3; ++t) {
        const double density = t == 1 ? 1.0 : 0.4;
        fg_host_layout hl;
        CHECK(fg_host_layout_random(&hl, shapes[t][0], shapes[t][1], shapes[t][2], shapes[t][3], shapes[t][4], shapes[t][4],
                                    density, &rng), "out of memory");
        const fg_block_layout_desc *d = &hl.desc;
        const size_t n = fg_layout_t_entries(d), cols = (size_t)d->batch * d->heads * d->num_kv_blocks;
        const size_t nq = (size_t)d->num_q_blocks, nk = (size_t)d->num_kv_blocks;
        CHECK(n == 2 * cols + 2 * cols * nq, "entries");
        int32_t *out = malloc(n * sizeof *out);
        for (size_t i = 0; i < n; ++i) out[i] = 0x5a5a5a5a; /* any content before */
        fg_layout_transpose(d, out);
        const int32_t *tnum[2] = {out, out + cols}, *tidx[2] = {out + 2 * cols, out + 2 * cols + cols * nq};
        long pairs = 0, bad = 0, unordered = 0;
        for (size_t bh = 0; bh < (size_t)d->batch * d->heads; ++bh)
            for (size_t qb = 0; qb < nq; ++qb)
                for (size_t kb = 0; kb < nk; ++kb)
                    for (int pass = 0; pass < 2; ++pass) {
                        const int fwd = listed(pass ? d->kv_num_blocks : d->full_kv_num_blocks,
                                               pass ? d->kv_indices : d->full_kv_indices, bh * nq + qb, nk, (int)kb);
                        const int bwd = listed(tnum[pass], tidx[pass], bh * nk + kb, nq, (int)qb);
                        pairs += fwd;
                        bad += fwd != bwd;
                    }
        for (int pass = 0; pass < 2; ++pass)
            for (size_t c = 0; c < cols; ++c)
                for (int i = 1; i < tnum[pass][c]; ++i) unordered += tidx[pass][c * nq + i] <= tidx[pass][c * nq + i - 1];
        printf("transposed layout %dx%dx%d blocks: %ld pairs, %ld differ, %ld out of order\n", d->batch * d->heads,
               d->num_q_blocks, d->num_kv_blocks, pairs, bad, unordered);
        CHECK(pairs > 0 && !bad && !unordered, "transposed layout");
        free(out);
        fg_host_layout_free(&hl);
    }
}

int main(void) {
    test_transpose();
    test_finite_differences();
    test_plan();
    test_value_dim();
    test_struct_size();
    test_api_without_gpu();
    return test_summary("test_bwd_cpu");
}
