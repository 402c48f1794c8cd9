/* CPU tests of the guard rails around the public API: the struct_size
 * protocol of the growing structs, overflow-checked sizes of caller input,
 * the one reference check and the one FLOP formula, arch names, and which
 * SPEC fields make a configuration explicit.  No GPU: everything here runs
 * before a launch would. */
#include <limits.h>
#include <pthread.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "gen/compile.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/check.h"
#include "runtime/internal.h"
#include "runtime/layout.h"
#include "runtime/structs.h"
#include "runtime/tensor_map.h"
#include "select/heuristic.h"
#include "test_util.h"
#include "tools/harness.h"

static fg_status plan(const fg_attention_desc *d, fg_error *e) {
    fg_variant v;
    fg_fwd_params p;
    return fg_desc_plan(d, 232448, &v, &p, e);
}

/* Issue 16 item 13: q_strides[0] = INT64_MAX - 7 with batch 2 passed the
 * stride check (the "+ head_dim - 1" and the byte count overflowed later),
 * and the forward pass read before q. */
static void test_stride_overflow(void) {
    fg_error e = {0};
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 2, 1, 1, 1, 1);
    CHECK(plan(&d, &e) == FG_OK, "%s", e.msg);
    d.q_strides[0] = INT64_MAX - 7;
    CHECK(plan(&d, &e) == FG_ERR_INVALID_ARGUMENT, "q_strides[0] = INT64_MAX - 7 with batch 2 accepted");
    CHECK_CONTAINS(e.msg, "q strides");
    CHECK_CONTAINS(e.msg, "overflow");
    /* through the public call: refused before any tensor is touched (with a
     * GPU; without one the call stops at FG_ERR_NO_DRIVER first) */
    fg_context *ctx = NULL;
    fg_context_create(&ctx);
    char x[64] __attribute__((aligned(16)));
    const fg_status fs = fg_attention_forward(ctx, &d, x, x, x, x, NULL, NULL);
    CHECK(fs == FG_ERR_INVALID_ARGUMENT || fs == FG_ERR_NO_DRIVER || fs == FG_ERR_NO_DEVICE, "forward: %s",
          fg_status_name(fs));
    if (fs == FG_ERR_INVALID_ARGUMENT) CHECK_CONTAINS(fg_errmsg(ctx), "q strides");
    fg_context_destroy(ctx);
    /* the last element's end and the byte count: each overflow alone */
    const int64_t near[3] = {(INT64_MAX / 2) & ~(int64_t)7, 64, 64}; /* 2^62 - 8 */
    CHECK(fg_tensor_bytes(near, 2, 1, 1, 64, 1) == near[0] + 64, "exact extent %lld",
          (long long)fg_tensor_bytes(near, 2, 1, 1, 64, 1));
    CHECK(fg_tensor_bytes(near, 2, 1, 1, 64, 2) == 0, "2 bytes per element must overflow");
    const int64_t top[3] = {INT64_MAX - 7, 64, 64};
    CHECK(fg_tensor_bytes(top, 2, 1, 1, 8, 1) == 0, "INT64_MAX - 7 + 8 must overflow");
    CHECK(fg_tensor_bytes(top, 1, 1, 1, 8, 2) == 16, "batch 1 never uses stride[0]");
    /* lse [batch, heads, seqlen] of the largest shape plan accepts: 2^64 bytes */
    const int64_t lse[3] = {(int64_t)65535 << 30, (int64_t)1 << 30, 1};
    CHECK(fg_tensor_bytes(lse, 65535, 65535, 1 << 30, 1, 4) == 0, "lse size overflow not seen");
    const int64_t neg[3] = {-8, 0, 0};
    CHECK(fg_tensor_bytes(neg, 2, 1, 1, 8, 2) == 0, "negative stride");
    /* o's overlap check multiplies too */
    fg_attention_desc_init(&d, FG_BF16, 64, 3, 1, 1, 1, 1);
    d.o_strides[0] = INT64_MAX / 2 + 1 - ((INT64_MAX / 2 + 1) % 8);
    CHECK(plan(&d, &e) == FG_ERR_INVALID_ARGUMENT, "o stride overflow accepted");
    /* the layout's block counts are computed in 64 bits */
    struct fg_block_layout L = {0};
    L.batch = 1; L.heads = 1; L.num_q_blocks = 1; L.num_kv_blocks = 1;
    L.block_q = INT_MAX - 63; L.block_k = INT_MAX - 15;
    fg_attention_desc_init(&d, FG_BF16, 64, 1, 1, 1, 1000, 1000);
    d.layout = &L;
    CHECK(plan(&d, &e) == FG_OK, "one block of 2^31 - 64 rows: %s", e.msg);
    fg_error_clear(&e);
}

/* The harness (flashgen run, the GPU tests) sizes its host buffers from the
 * caller's shape: it checks it as the library does before allocating. */
static void test_harness_sizes(void) {
    fg_context *ctx = NULL;
    fg_context_create(&ctx);
    fg_case c;
    memset(&c, 0, sizeof c);
    fg_attention_desc_init(&c.desc, FG_BF16, 64, 65535, 65535, 65535, 1 << 30, 1 << 30);
    fg_case_result *r = malloc(sizeof *r);
    CHECK(fg_harness_run(ctx, &c, 0, r) == 1 && r->status == FG_ERR_INVALID_ARGUMENT, "huge case: %s %s",
          fg_status_name(r->status), r->msg);
    CHECK_CONTAINS(r->msg, "overflow");
    c.bhsd = 1;
    CHECK(fg_harness_run(ctx, &c, 0, r) == 1 && r->status == FG_ERR_INVALID_ARGUMENT, "huge BHSD case: %s", r->msg);
    free(r);
    fg_context_destroy(ctx);
}

/* Layouts whose entry counts overflow are refused before anything is
 * allocated or read. */
static void test_layout_sizes(void) {
    fg_error e = {0};
    int32_t num[1] = {0}, idx[1] = {0};
    fg_block_layout_desc L = {65536, 65536, 65536, 1, 128, 128, num, idx, NULL, NULL};
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "2^48 rows accepted");
    CHECK_CONTAINS(e.msg, "too large");
    fg_block_layout_desc M = {1, 1, 1 << 20, 1 << 30, 128, 128, num, idx, NULL, NULL};
    CHECK(fg_layout_validate(&M, &e) == FG_ERR_BAD_LAYOUT, "2^50 entries accepted");
    fg_error_clear(&e);
}

/* How the public structs grow (include/flashgen.h). */
static void test_struct_size(void) {
    fg_error e = {0};
    /* init writes only the caller's bytes */
    unsigned char buf[sizeof(fg_attention_desc) + 32];
    memset(buf, 0xA5, sizeof buf);
    fg_attention_desc_init_sized((fg_attention_desc *)buf, FG_ATTENTION_DESC_MIN_SIZE, FG_BF16, 64, 1, 1, 1, 16, 16);
    int untouched = 1;
    for (size_t i = FG_ATTENTION_DESC_MIN_SIZE; i < sizeof buf; ++i) untouched &= buf[i] == 0xA5;
    CHECK(untouched, "fg_attention_desc_init_sized wrote past the caller's struct_size");
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 1, 1, 1, 16, 16);
    CHECK(d.struct_size == sizeof d, "the macro passes the caller's sizeof (%u)", (unsigned)d.struct_size);

    /* not initialised */
    fg_attention_desc z = d;
    z.struct_size = 0;
    CHECK(plan(&z, &e) == FG_ERR_INVALID_ARGUMENT, "struct_size 0 accepted");
    CHECK_CONTAINS(e.msg, "fg_attention_desc_init");
    z.struct_size = FG_ATTENTION_DESC_MIN_SIZE - 1;
    CHECK(plan(&z, &e) == FG_ERR_INVALID_ARGUMENT, "struct_size below the first version accepted");

    /* an older caller: the bytes past its struct_size are not read */
    memcpy(buf, &d, sizeof d);
    memset(buf + FG_ATTENTION_DESC_MIN_SIZE, 0xFF, sizeof buf - FG_ATTENTION_DESC_MIN_SIZE);
    ((fg_attention_desc *)buf)->struct_size = FG_ATTENTION_DESC_MIN_SIZE;
    CHECK(plan((fg_attention_desc *)buf, &e) == FG_OK, "older caller: %s", e.msg);

    /* a newer caller: unknown fields must be zero */
    memcpy(buf, &d, sizeof d);
    memset(buf + sizeof d, 0, sizeof buf - sizeof d);
    ((fg_attention_desc *)buf)->struct_size = sizeof buf;
    CHECK(plan((fg_attention_desc *)buf, &e) == FG_OK, "newer caller, new fields zero: %s", e.msg);
    buf[sizeof d + 5] = 1;
    CHECK(plan((fg_attention_desc *)buf, &e) == FG_ERR_UNSUPPORTED, "newer caller using an unknown field accepted");
    CHECK_CONTAINS(e.msg, "newer flashgen header");
    /* garbage far past any header's struct: refused before it is scanned
     * (a scan of 4 GiB of the caller's memory for zeros would fault) */
    ((fg_attention_desc *)buf)->struct_size = 0xFFFFFFF0u;
    CHECK(plan((fg_attention_desc *)buf, &e) == FG_ERR_INVALID_ARGUMENT, "struct_size 0xFFFFFFF0 accepted");
    CHECK_CONTAINS(e.msg, "beyond this library");

    /* the same protocol on the context's stats (written) and fg_tune's options (read) */
    fg_context *ctx = NULL;
    fg_context_create(&ctx);
    fg_context_stats s = {.struct_size = sizeof s};
    CHECK(fg_context_get_stats(ctx, &s) == FG_OK, "get_stats: %s", fg_errmsg(ctx));
    fg_context_stats t;
    memset(&t, 0x5A, sizeof t);
    t.struct_size = 0;
    CHECK(fg_context_get_stats(ctx, &t) == FG_ERR_INVALID_ARGUMENT, "stats without struct_size accepted");
    memset(&t, 0x5A, sizeof t);
    t.struct_size = offsetof(fg_context_stats, gpu_identity) + 8; /* a caller whose struct ends early */
    CHECK(fg_context_get_stats(ctx, &t) == FG_ERR_INVALID_ARGUMENT, "stats shorter than the first version accepted");
    t.struct_size = FG_CONTEXT_STATS_MIN_SIZE;
    CHECK(fg_context_get_stats(ctx, &t) == FG_OK && t.struct_size == FG_CONTEXT_STATS_MIN_SIZE && t.kernels_compiled == 0,
          "stats of the first version");
    fg_tune_options o = {.struct_size = 3};
    fg_attention_desc shape;
    fg_attention_desc_init(&shape, FG_BF16, 64, 1, 1, 1, 1, 1);
    CHECK(fg_tune(ctx, &shape, &o) == FG_ERR_INVALID_ARGUMENT, "fg_tune_options without struct_size accepted");
    CHECK_CONTAINS(fg_errmsg(ctx), "fg_tune_options.struct_size = 3");
    shape.struct_size = 0;
    o.struct_size = sizeof o;
    CHECK(fg_tune(ctx, &shape, &o) == FG_ERR_INVALID_ARGUMENT, "fg_tune with an uninitialised shape");
    CHECK_CONTAINS(fg_errmsg(ctx), "fg_attention_desc.struct_size = 0");
    fg_context_destroy(ctx);
    fg_error_clear(&e);
}

/* The one reference check and its tolerance. */
/* A program built against a newer header passes a larger struct: the
 * fields this library does not know come back zero from
 * fg_attention_desc_init, whatever the memory held, so the call is valid. */
static void test_newer_header_init(void) {
    const size_t big = sizeof(fg_attention_desc) + 64;
    char *mem = malloc(big);
    memset(mem, 0xAA, big);
    fg_attention_desc_init_sized((fg_attention_desc *)mem, big, FG_BF16, 64, 1, 2, 2, 100, 100);
    int tail_zero = 1;
    for (size_t i = sizeof(fg_attention_desc); i < big; ++i) tail_zero &= mem[i] == 0;
    CHECK(tail_zero, "bytes past this library's struct were left as they were");
    fg_attention_desc d;
    fg_error e = {0};
    CHECK(fg_desc_read((const fg_attention_desc *)mem, &d, &e) == FG_OK, "%s", e.msg ? e.msg : "");
    fg_error_clear(&e);
    free(mem);
}

/* The TMA kernels index tiles with int: calls with more than 2^30 query
 * tiles go to the other families (batch and heads are each <= 65535, so a
 * call can have ~2^46 tiles over overlapping q/k/v views). */
static void test_tma_tiles(void) {
    CHECK(fg_tma_tiles_ok(16, 32, 16384), "an ordinary call");
    CHECK(fg_tma_tiles_ok(65535, 16384, 64), "2^30 - 2^14 tiles");
    CHECK(!fg_tma_tiles_ok(65535, 32769, 1), "2^31 tiles (the review's repro) refused");
    CHECK(!fg_tma_tiles_ok(65535, 65535, 1 << 30), "2^58 tiles refused without overflow");
    CHECK(!fg_tma_tiles_ok(0, 1, 1), "empty batch");
}

static void test_check(void) {
    double ref[4] = {0.5, -0.25, 1.5, 0.0};
    uint16_t got[4];
    for (int x = 0; x < 4; ++x) got[x] = fg_float_to_half((float)ref[x], FG_BF16);
    fg_check c;
    fg_check_init(&c, FG_BF16);
    fg_check_row(&c, got, ref, 4, 1, 1.0, 1.0);
    fg_check_row(&c, got, ref, 4, 1, -INFINITY, -INFINITY); /* a row that sees no key */
    CHECK(fg_check_done(&c) && c.rows == 2 && c.o.n == 8 && c.lse.n == 2, "exact rows fail");
    CHECK(fabs(c.tol_abs - 4.0 / 256 * 1.5) < 1e-12 && c.tol_rel == 1e-2, "bf16 tolerances %g %g", c.tol_abs, c.tol_rel);

    fg_check_init(&c, FG_BF16);
    got[2] = fg_float_to_half(1.5f + 0.0625f, FG_BF16); /* > 4 units of bf16 rounding on 1.5 */
    fg_check_row(&c, got, ref, 4, 0, 0, 0);
    CHECK(!fg_check_done(&c), "an error of %g passed (tol %g)", c.o.max_abs, c.tol_abs);
    char buf[256];
    const char *m = buf;
    fg_check_describe(&c, buf, sizeof buf);
    CHECK_CONTAINS(m, "o max|err| 0.0625");

    fg_check_init(&c, FG_FP16);
    for (int x = 0; x < 4; ++x) got[x] = fg_float_to_half((float)ref[x], FG_FP16);
    got[1] = 0x7e00; /* NaN */
    fg_check_row(&c, got, ref, 4, 0, 0, 0);
    CHECK(!fg_check_done(&c) && c.o.nan_count == 1, "NaN passed");
    fg_check_init(&c, FG_FP16);
    got[1] = fg_float_to_half(-0.25f, FG_FP16);
    fg_check_row(&c, got, ref, 4, 1, 2.0, -INFINITY);
    CHECK(!fg_check_done(&c), "a finite lse for an empty row passed");
    fg_check_init(&c, FG_FP16);
    fg_check_row(&c, got, ref, 4, 1, 2.01, 2.0);
    CHECK(!fg_check_done(&c), "an lse error of 0.01 passed");
}

/* The one FLOP formula, with the value head dim as its own parameter. */
static void test_flops(void) {
    CHECK(fg_attention_flops(2, 8, 1024, 1024, 128, 128, 0) == 4.0 * 2 * 8 * 1024 * 1024 * 128, "dense");
    CHECK(fg_attention_flops(2, 8, 1024, 1024, 128, 128, 1) == 2.0 * 2 * 8 * 1024 * 1024 * 128, "causal halves");
    CHECK(fg_attention_flops(1, 1, 100, 300, 128, 64, 0) == 2.0 * 100 * 300 * 192, "head_dim_v counts in P V");
    /* a layout listing every block computes the dense count, clipped at the ends */
    int32_t num[2] = {2, 2}, idx[4] = {0, 1, 0, 1};
    fg_block_layout_desc L = {1, 1, 2, 2, 128, 128, num, idx, NULL, NULL};
    double density = 0;
    const double f = fg_layout_flops(&L, 3, 4, 200, 250, 64, 64, &density);
    CHECK(f == fg_attention_flops(3, 4, 200, 250, 64, 64, 0) && density == 1.0, "full layout %g vs %g, density %g", f,
          fg_attention_flops(3, 4, 200, 250, 64, 64, 0), density);
}

static void test_arch_names(void) {
    fg_error e = {0};
    const char *good[] = {"sm_80", "sm_86", "sm_90a", "sm_100", "sm_120", "sm_100a"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; ++i)
        CHECK(fg_arch_check(good[i], &e) == FG_OK, "%s refused: %s", good[i], e.msg);
    const char *bad[] = {"sm_90a\n#include \"/etc/passwd\"", "sm_9", "sm_1000", "compute_90", "sm_90b", "sm_90aa", "",
                         "SM_90", " sm_90"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        CHECK(fg_arch_check(bad[i], &e) == FG_ERR_INVALID_ARGUMENT, "'%s' accepted", bad[i]);
    CHECK(fg_arch_check(NULL, &e) == FG_ERR_INVALID_ARGUMENT, "NULL accepted");
    fg_cubin cb;
    fg_sources src = {0};
    CHECK(fg_compile_cubin(&src, "", "sm_90a --device-debug", "k", &cb, &e) == FG_ERR_INVALID_ARGUMENT,
          "an option smuggled in the arch reached NVRTC");
    fg_error_clear(&e);
}

/* Issue 16 item 14: q_in_regs and min_blocks alone are configuration
 * fields (`flashgen gen`/`compile` used to drop them unless a block size was
 * given). */
static void test_explicit_config(void) {
    fg_config c;
    fg_config_unset(&c);
    CHECK(!fg_config_is_explicit(&c), "an unset config is explicit");
    c.q_in_regs = 1;
    CHECK(fg_config_is_explicit(&c), "q_in_regs=1 alone is not explicit");
    fg_config_unset(&c);
    c.min_blocks = 2;
    CHECK(fg_config_is_explicit(&c), "min_blocks=2 alone is not explicit");
    fg_config_unset(&c);
    c.wgmma = 0;
    CHECK(!fg_config_is_explicit(&c), "wgmma=0 (a path restriction) made explicit");
    fg_spec s = {64, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
    fg_error e = {0};
    fg_config_unset(&c);
    c.q_in_regs = 1;
    CHECK(fg_config_complete(&s, &c, 232448, &e) == FG_OK && c.q_in_regs == 1 && c.wgmma == 0, "q_in_regs kept: %s", e.msg);
    fg_config_unset(&c);
    c.wgmma = 1;
    c.q_in_regs = 1;
    CHECK(fg_config_complete(&s, &c, 232448, &e) == FG_ERR_UNSUPPORTED, "wgmma=1,q_in_regs=1 silently dropped q_in_regs");
    CHECK_CONTAINS(e.msg, "q_in_regs");
    fg_error_clear(&e);
}

/* A review's findings (session 9): inputs the planners accepted and the
 * kernels would have used wrongly. */
static void test_review_inputs(void) {
    fg_error e = {0};
    fg_attention_desc d, dd;
    fg_variant v;
    fg_bwd_params bp;
    fg_fwd_params fp;
    /* the backward with inference fields: it would walk seqlen_k keys of
     * contiguous k and v and give wrong gradients */
    static const int32_t table[4] __attribute__((aligned(16))) = {0};
    for (int f = 0; f < 4; ++f) {
        fg_attention_desc_init(&d, FG_BF16, 128, 1, 8, 8, 256, 1024);
        if (f == 0) d.seqlens_k = table;
        if (f == 1) { d.cu_seqlens_q = d.cu_seqlens_k = table; d.total_q = 256; d.total_k = 1024; }
        if (f == 2) { d.block_table = table; d.page_size = 256; d.num_pages = 4; d.max_pages = 4; }
        if (f == 3) d.num_splits = 4;
        CHECK(plan(&d, &e) == FG_OK || f == 2, "forward plan %d: %s", f, e.msg); /* paged needs page strides */
        const fg_status st = fg_backward_plan(&d, 232448, &dd, &v, &bp, &e);
        CHECK(st == FG_ERR_UNSUPPORTED, "backward with inference field %d: %s", f, fg_status_name(st));
        CHECK_CONTAINS(e.msg, "inference fields");
        fg_error_clear(&e);
    }
    /* FP8 descales are fp32: a misaligned pointer faults in the kernel */
    fg_attention_desc_init(&d, FG_E4M3, 128, 1, 2, 2, 128, 128);
    CHECK(fg_desc_plan(&d, 232448, &v, &fp, &e) == FG_OK, "e4m3: %s", e.msg);
    d.k_descale = (const float *)(uintptr_t)0x10001;
    CHECK(fg_desc_plan(&d, 232448, &v, &fp, &e) == FG_ERR_INVALID_ARGUMENT, "misaligned k_descale accepted");
    CHECK_CONTAINS(e.msg, "k_descale");
    fg_error_clear(&e);
}

/* A cubin from the cache file reaches the driver only whole: the driver
 * sizes the image from its own headers, so a truncated or damaged one would
 * be read past its buffer (fg_cubin_sane, runtime/kernel_cache.c). */
static void test_cubin_sane(void) {
    fg_error e = {0};
    fg_sources src;
    if (fg_sources_load(&src, &e) != FG_OK) { CHECK(0, "sources: %s", e.msg); return; }
    fg_cubin cb;
    const fg_status st = fg_compile_cubin(&src, "extern \"C\" __global__ void k(float *x) { x[threadIdx.x] = 1.f; }\n",
                                          "sm_90a", "k", &cb, &e);
    if (st == FG_ERR_NVRTC) { printf("no NVRTC: cubin checks skipped\n"); fg_sources_free(&src); return; }
    CHECK(st == FG_OK, "compile: %s", e.msg);
    fg_error_clear(&e);
    if (st != FG_OK) { fg_sources_free(&src); return; }
    CHECK(fg_cubin_sane(cb.data, cb.size), "a fresh cubin of %zu bytes is not sane", cb.size);
    int cut_ok = 0;
    for (size_t n = 0; n < cb.size; n += 1 + cb.size / 97) cut_ok += fg_cubin_sane(cb.data, n);
    CHECK(cut_ok == 0, "%d truncations passed", cut_ok);
    unsigned char *copy = malloc(cb.size);
    memcpy(copy, cb.data, cb.size);
    copy[18] = 62; /* e_machine: x86-64 */
    CHECK(!fg_cubin_sane(copy, cb.size), "another machine's ELF passed");
    memcpy(copy, cb.data, cb.size);
    memset(copy + 40, 0xff, 8); /* e_shoff far past the end */
    CHECK(!fg_cubin_sane(copy, cb.size), "section headers past the end passed");
    memcpy(copy, cb.data, cb.size);
    copy[0] = 0;
    CHECK(!fg_cubin_sane(copy, cb.size) && !fg_cubin_sane(NULL, 100), "a non-ELF passed");
    free(copy);
    fg_cubin_free(&cb);
    fg_sources_free(&src);
}

/* fg_errmsg is per thread: a new thread sees "" before its own first
 * failure, even when it reuses an exited thread's pthread_t (glibc does),
 * whose message it used to be handed. */
static fg_context *g_msg_ctx;
static void *fail_once(void *arg) {
    (void)arg;
    fg_attention_forward(g_msg_ctx, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    return (void *)(uintptr_t)(fg_errmsg(g_msg_ctx)[0] != 0);
}
static void *read_msg(void *arg) {
    *(pthread_t *)arg = pthread_self();
    return (void *)(uintptr_t)(fg_errmsg(g_msg_ctx)[0] != 0);
}
static void test_errmsg_per_thread(void) {
    fg_context_create(&g_msg_ctx);
    pthread_t a, b, b_self;
    void *ra = NULL, *rb = NULL;
    pthread_create(&a, NULL, fail_once, NULL);
    pthread_join(a, &ra);
    CHECK(ra != NULL, "the failing thread has no message");
    pthread_create(&b, NULL, read_msg, &b_self);
    pthread_join(b, &rb);
    CHECK(rb == NULL, "a new thread%s read an exited thread's message: '%s'",
          pthread_equal(a, b_self) ? " (same pthread_t)" : "", "(see fail_once)");
    fg_context_destroy(g_msg_ctx);
}

int main(void) {
    test_newer_header_init();
    test_tma_tiles();
    test_stride_overflow();
    test_layout_sizes();
    test_harness_sizes();
    test_struct_size();
    test_check();
    test_flops();
    test_arch_names();
    test_explicit_config();
    test_review_inputs();
    test_cubin_sane();
    test_errmsg_per_thread();
    return test_summary("test_api_checks");
}
