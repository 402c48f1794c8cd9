/* fg_kv_append without a GPU: every host check of fg_kv_append_plan gives
 * its status and a message naming the culprit (table below), valid calls
 * fill the kernel arguments (default BSHD strides of k_new / v_new, rows
 * per CTA within the kernel's int counts); the append variant's key names
 * its template and kind; every (dtype, head_dim, head_dim_v) renders with
 * the launch parameters the runtime assumes (256 threads, no shared
 * memory); representative variants compile for sm_80 and sm_90a without
 * spills or stack, with both entry points in the cubin (skipped without
 * NVRTC). */
#include <stdint.h>
#include <stdlib.h>

#include "gen/compile.h"
#include "gen/render.h"
#include "runtime/kv_append.h"
#include "runtime/structs.h"
#include "test_util.h"

static char g_mem[4][64] __attribute__((aligned(16))); /* stand-ins for device pointers, never dereferenced */
static int64_t g_knew[3], g_vnew[3];

/* A valid contiguous call: batch 3, 2 kv heads, head dims 64 / 32,
 * capacity 100, 5 new rows. */
static void base(fg_attention_desc *d, fg_append_args *a) {
    fg_attention_desc_init(d, FG_FP16, 64, 3, 4, 2, 1, 100);
    fg_attention_desc_set_head_dim_v(d, 32);
    d->seqlens_k = (const int32_t *)g_mem[0];
    a->k_new = g_mem[1];
    a->v_new = g_mem[2];
    a->knew_strides = a->vnew_strides = NULL;
    a->seqlen_new = 5;
    a->k_cache = g_mem[3];
    a->v_cache = g_mem[3] + 32;
}

/* The same cache paged: 10 pages of 16 rows, 7 per sequence. */
static void paged(fg_attention_desc *d) {
    d->block_table = (const int32_t *)g_mem[0] + 4;
    d->page_size = 16;
    d->num_pages = 10;
    d->max_pages = 7;
    const int64_t ks[3] = {16 * 2 * 64, 64, 128}, vs[3] = {16 * 2 * 32, 32, 64};
    memcpy(d->k_strides, ks, sizeof ks);
    memcpy(d->v_strides, vs, sizeof vs);
}

typedef struct bad_case {
    const char *what;
    fg_status want;
    const char *msg; /* in the message */
} bad_case;

static const bad_case bad[] = {
    {"desc NULL", FG_ERR_INVALID_ARGUMENT, "fg_attention_desc is NULL"},
    {"struct_size 0", FG_ERR_INVALID_ARGUMENT, "struct_size = 0"},
    {"older header without seqlens_k", FG_ERR_INVALID_ARGUMENT, "needs desc->seqlens_k"},
    {"dtype 7", FG_ERR_INVALID_ARGUMENT, "dtype 7"},
    {"head_dim_v -8", FG_ERR_INVALID_ARGUMENT, "head_dim_v -8 is negative"},
    {"head_dim 12", FG_ERR_UNSUPPORTED, "head_dim 12"},
    {"head_dim_v 264", FG_ERR_UNSUPPORTED, "head_dim_v 264"},
    {"batch 0", FG_ERR_INVALID_ARGUMENT, "batch=0"},
    {"heads_kv 0", FG_ERR_INVALID_ARGUMENT, "heads_kv=0"},
    {"seqlen_k 0", FG_ERR_INVALID_ARGUMENT, "seqlen_k=0"},
    {"batch 65536", FG_ERR_UNSUPPORTED, "65535"},
    {"seqlen_new -1", FG_ERR_INVALID_ARGUMENT, "seqlen_new = -1 is negative"},
    {"seqlen_new 2^30 + 1", FG_ERR_UNSUPPORTED, "2^30"},
    {"seqlens_k NULL", FG_ERR_INVALID_ARGUMENT, "needs desc->seqlens_k"},
    {"seqlens_k misaligned", FG_ERR_INVALID_ARGUMENT, "seqlens_k"},
    {"cu_seqlens_k set", FG_ERR_UNSUPPORTED, "cu_seqlens_k"},
    {"page_size without block_table", FG_ERR_INVALID_ARGUMENT, "block_table is NULL"},
    {"block_table misaligned", FG_ERR_INVALID_ARGUMENT, "block_table"},
    {"page_size 24", FG_ERR_INVALID_ARGUMENT, "page_size = 24"},
    {"page_size 0", FG_ERR_INVALID_ARGUMENT, "page_size = 0"},
    {"num_pages 0", FG_ERR_INVALID_ARGUMENT, "num_pages >= 1"},
    {"max_pages 0", FG_ERR_INVALID_ARGUMENT, "max_pages >= 1"},
    {"capacity past the table", FG_ERR_INVALID_ARGUMENT, "seqlen_k = 113"},
    {"k_cache NULL", FG_ERR_INVALID_ARGUMENT, "k_cache is NULL"},
    {"v_cache misaligned", FG_ERR_INVALID_ARGUMENT, "v_cache"},
    {"k_cache stride negative", FG_ERR_INVALID_ARGUMENT, "k_cache stride[1] = -64"},
    {"v_cache stride not a multiple of 8", FG_ERR_INVALID_ARGUMENT, "v_cache stride[2] = 68"},
    {"k_cache rows overlap", FG_ERR_INVALID_ARGUMENT, "overlap"},
    {"paged k_cache pages overlap", FG_ERR_INVALID_ARGUMENT, "overlap"},
    {"v_cache strides overflow", FG_ERR_INVALID_ARGUMENT, "overflow"},
    {"k_new NULL", FG_ERR_INVALID_ARGUMENT, "k_new is NULL"},
    {"v_new misaligned", FG_ERR_INVALID_ARGUMENT, "v_new"},
    {"knew_strides not a multiple of 8", FG_ERR_INVALID_ARGUMENT, "k_new stride[0] = 4"},
    {"vnew_strides negative", FG_ERR_INVALID_ARGUMENT, "v_new stride[2] = -32"},
    {"knew_strides overflow", FG_ERR_INVALID_ARGUMENT, "overflow"},
};

/* Applies bad case i to a valid call; returns the desc to pass. */
static const fg_attention_desc *make_bad(int i, fg_attention_desc *d, fg_append_args *a) {
    base(d, a);
    switch (i) {
    case 0: return NULL;
    case 1: d->struct_size = 0; break;
    case 2: d->struct_size = offsetof(fg_attention_desc, seqlens_k); break; /* the field reads as 0 */
    case 3: d->dtype = (fg_dtype)7; break;
    case 4: d->head_dim_v = -8; break;
    case 5: d->head_dim = 12; break;
    case 6: d->head_dim_v = 264; break;
    case 7: d->batch = 0; break;
    case 8: d->heads_kv = 0; break;
    case 9: d->seqlen_k = 0; break;
    case 10: d->batch = 65536; break;
    case 11: a->seqlen_new = -1; break;
    case 12: a->seqlen_new = (1 << 30) + 1; break;
    case 13: d->seqlens_k = NULL; break;
    case 14: d->seqlens_k = (const int32_t *)(g_mem[0] + 2); break;
    case 15: d->cu_seqlens_k = (const int32_t *)g_mem[0]; break;
    case 16: d->page_size = 16; break;
    case 17: paged(d); d->block_table = (const int32_t *)(g_mem[0] + 6); break;
    case 18: paged(d); d->page_size = 24; break;
    case 19: paged(d); d->page_size = 0; break;
    case 20: paged(d); d->num_pages = 0; break;
    case 21: paged(d); d->max_pages = 0; break;
    case 22: paged(d); d->seqlen_k = 7 * 16 + 1; break;
    case 23: a->k_cache = NULL; break;
    case 24: a->v_cache = g_mem[3] + 8; break;
    case 25: d->k_strides[1] = -64; break;
    case 26: d->v_strides[2] = 68; break;
    case 27: d->k_strides[2] = 64; break; /* two heads of 64 in a row of 64 */
    case 28: paged(d); d->k_strides[0] = 2 * 64 * 8; break; /* a page of 16 rows in the room of 8 */
    case 29: d->v_strides[0] = INT64_MAX / 2 & ~(int64_t)7; break;
    case 30: a->k_new = NULL; break;
    case 31: a->v_new = g_mem[2] + 4; break;
    case 32: g_knew[0] = 4; g_knew[1] = 64; g_knew[2] = 128; a->knew_strides = g_knew; break;
    case 33: g_vnew[0] = 5 * 64; g_vnew[1] = 32; g_vnew[2] = -32; a->vnew_strides = g_vnew; break;
    case 34: g_knew[0] = INT64_MAX / 2 & ~(int64_t)7; g_knew[1] = 64; g_knew[2] = 128; a->knew_strides = g_knew; break;
    }
    return d;
}

static void test_bad_calls(void) {
    fg_attention_desc d, out;
    fg_append_args a;
    fg_variant v;
    fg_append_params p;
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); ++i) {
        fg_error e = {0};
        const fg_attention_desc *dp = make_bad(i, &d, &a);
        const fg_status st = fg_kv_append_plan(dp, &a, &out, &v, &p, &e);
        CHECK(st == bad[i].want, "%s: got %s (%s), want %s", bad[i].what, fg_status_name(st), e.msg ? e.msg : "",
              fg_status_name(bad[i].want));
        CHECK(e.msg && strstr(e.msg, bad[i].msg), "%s: message '%s' lacks '%s'", bad[i].what, e.msg ? e.msg : "(none)",
              bad[i].msg);
        fg_error_clear(&e);
    }
    /* the base calls themselves are valid, contiguous and paged */
    fg_error e = {0};
    base(&d, &a);
    CHECK(fg_kv_append_plan(&d, &a, &out, &v, &p, &e) == FG_OK, "contiguous: %s", e.msg);
    paged(&d);
    CHECK(fg_kv_append_plan(&d, &a, &out, &v, &p, &e) == FG_OK, "paged: %s", e.msg);
    /* seqlen_new 0: nothing is read from k_new / v_new */
    base(&d, &a);
    a.seqlen_new = 0;
    a.k_new = a.v_new = NULL;
    CHECK(fg_kv_append_plan(&d, &a, &out, &v, &p, &e) == FG_OK, "seqlen_new 0: %s", e.msg);
    fg_error_clear(&e);
}

/* What a valid call hands the kernels. */
static void test_params(void) {
    fg_attention_desc d, out;
    fg_append_args a;
    fg_variant v;
    fg_append_params p;
    fg_error e = {0};
    base(&d, &a);
    CHECK(fg_kv_append_plan(&d, &a, &out, &v, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(v.spec.kind == FG_KIND_APPEND && v.spec.head_dim == 64 && v.spec.head_dim_v == 32 && v.spec.dtype == FG_FP16 &&
              v.cfg.warps == 8,
          "variant kind %d dims %d/%d warps %d", v.spec.kind, v.spec.head_dim, v.spec.head_dim_v, v.cfg.warps);
    /* k_new / v_new default to BSHD [3, 5, 2, d] */
    CHECK(p.knew_s[0] == 5 * 2 * 64 && p.knew_s[1] == 64 && p.knew_s[2] == 128, "k_new strides %lld %lld %lld",
          p.knew_s[0], p.knew_s[1], p.knew_s[2]);
    CHECK(p.vnew_s[0] == 5 * 2 * 32 && p.vnew_s[1] == 32 && p.vnew_s[2] == 64, "v_new strides");
    CHECK(p.k_s[0] == d.k_strides[0] && p.v_s[2] == d.v_strides[2], "cache strides");
    CHECK(p.capacity == 100 && p.batch == 3 && p.heads_kv == 2 && p.seqlen_new == 5 && !p.block_table && !p.err,
          "sizes");
    CHECK(p.rows_per_cta == 5, "5 short rows fit one CTA (got %d)", p.rows_per_cta);
    /* caller strides are taken as given; BHSD k_new */
    const int64_t ks[3] = {2 * 5 * 64, 5 * 64, 64};
    a.knew_strides = ks;
    CHECK(fg_kv_append_plan(&d, &a, &out, &v, &p, &e) == FG_OK && p.knew_s[1] == 5 * 64 && p.knew_s[2] == 64,
          "BHSD k_new: %s", e.msg);
    /* rows per CTA: decode, a long append (at most 1024 CTAs per sequence),
     * and many wide heads (the kernel's int count of chunks) */
    static const int cases[][5] = {
        /* heads_kv, d, dv, seqlen_new, capacity */
        {8, 128, 128, 1, 4096}, {1, 8, 8, 100000, 1 << 20}, {65535, 256, 256, 3000, 1 << 20}, {4, 64, 64, 1 << 30, 1 << 30},
    };
    for (int i = 0; i < 4; ++i) {
        const int *c = cases[i];
        fg_attention_desc_init(&d, FG_BF16, c[1], 2, c[0], c[0], 1, c[4]);
        fg_attention_desc_set_head_dim_v(&d, c[2]);
        d.seqlens_k = (const int32_t *)g_mem[0];
        fg_attention_desc unused;
        base(&unused, &a);
        a.seqlen_new = c[3];
        CHECK(fg_kv_append_plan(&d, &a, &out, &v, &p, &e) == FG_OK, "rows case %d: %s", i, e.msg);
        const int64_t chunks = (int64_t)c[0] * (c[1] + c[2]) / 8, ctas = ((int64_t)c[3] + p.rows_per_cta - 1) / p.rows_per_cta;
        CHECK(p.rows_per_cta >= 1 && p.rows_per_cta <= c[3] && ctas <= 1024 &&
                  (int64_t)p.rows_per_cta * chunks <= ((int64_t)1 << 30),
              "case %d: %d rows per CTA, %lld CTAs, %lld chunks per CTA", i, p.rows_per_cta, (long long)ctas,
              (long long)(p.rows_per_cta * chunks));
    }
    fg_error_clear(&e);
}

/* The public call: no context, and a bad call refused before the device is
 * touched (with a GPU, a host pointer is refused as not device memory). */
static void test_public_call(void) {
    fg_attention_desc d;
    fg_append_args a;
    base(&d, &a);
    CHECK(fg_kv_append(NULL, &d, a.k_new, a.v_new, NULL, NULL, 5, a.k_cache, a.v_cache, 1, NULL) == FG_ERR_INVALID_ARGUMENT,
          "NULL context");
    fg_context *ctx = NULL;
    fg_context_create(&ctx);
    d.seqlens_k = NULL;
    CHECK(fg_kv_append(ctx, &d, a.k_new, a.v_new, NULL, NULL, 5, a.k_cache, a.v_cache, 1, NULL) == FG_ERR_INVALID_ARGUMENT,
          "no seqlens_k");
    CHECK_CONTAINS(fg_errmsg(ctx), "seqlens_k");
    base(&d, &a);
    const fg_status st = fg_kv_append(ctx, &d, a.k_new, a.v_new, NULL, NULL, 5, a.k_cache, a.v_cache, 1, NULL);
    CHECK(st == FG_ERR_NO_DRIVER || st == FG_ERR_NO_DEVICE || st == FG_ERR_INVALID_ARGUMENT, "valid host call: %s",
          fg_status_name(st));
    if (st == FG_ERR_INVALID_ARGUMENT) CHECK_CONTAINS(fg_errmsg(ctx), "not device memory");
    fg_context_destroy(ctx);
}


static int contains(const void *data, size_t n, const char *s) {
    const size_t l = strlen(s);
    for (size_t i = 0; i + l <= n; ++i)
        if (!memcmp((const char *)data + i, s, l)) return 1;
    return 0;
}

static void test_variants(int quick) {
    fg_sources src;
    fg_error e = {0};
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg ? e.msg : "");
    /* keys: the template and kind named; forward and append never equal */
    fg_variant v, f;
    fg_kv_append_variant(&v, FG_BF16, 128, 128);
    f = v;
    f.spec.kind = FG_KIND_FWD;
    char kv[512], kf[512];
    fg_variant_key(&v, "h", 13, 0, "sm_90a", kv, sizeof kv);
    fg_variant_key(&f, "h", 13, 0, "sm_90a", kf, sizeof kf);
    CHECK(!strncmp(kv, "kv_append:", 10) && strstr(kv, ",kind=append") && !strstr(kf, "kind"), "%s | %s", kv, kf);
    CHECK(!fg_spec_equal(&v.spec, &f.spec), "append and forward specs compare equal");
    /* every (dtype, head_dim, head_dim_v) renders, with the runtime's launch parameters */
    int rendered = 0;
    for (int dt = 0; dt < 2; ++dt)
        for (int d = 8; d <= 256; d += 8)
            for (int dv = 8; dv <= 256; dv += quick ? 56 : 8) {
                fg_kv_append_variant(&v, (fg_dtype)dt, d, dv);
                fg_rendered r;
                if (fg_render_forward(&src, &v, "k", &r, &e) != FG_OK) {
                    CHECK(0, "render %d/%d: %s", d, dv, e.msg);
                    fg_error_clear(&e);
                    continue;
                }
                CHECK(r.threads == v.cfg.warps * 32 && r.smem_bytes == 0 && !strcmp(r.kernel, "flashgen_kv_append"),
                      "%d/%d: threads %d smem %d kernel %s", d, dv, r.threads, r.smem_bytes, r.kernel);
                CHECK_CONTAINS(r.source, "flashgen_kv_append_advance");
                fg_rendered_free(&r);
                ++rendered;
            }
    printf("%d append variants rendered\n", rendered);
    /* the template refuses what it cannot build */
    fg_rendered r;
    fg_kv_append_variant(&v, FG_BF16, 12, 64);
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "head_dim 12 rendered");
    fg_error_clear(&e);
    fg_kv_append_variant(&v, FG_BF16, 64, 64);
    v.cfg.warps = 5;
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_ERR_TEMPLATE, "warps 5 rendered");
    CHECK_CONTAINS(e.msg, "warps");
    fg_error_clear(&e);

    fg_nvrtc_info nv;
    if (fg_nvrtc_load(&nv, &e) != FG_OK) {
        printf("NVRTC missing, compiles skipped: %s\n", e.msg);
        fg_error_clear(&e);
        fg_sources_free(&src);
        return;
    }
    static const int dims[][2] = {{128, 128}, {64, 64}, {192, 128}, {256, 256}, {8, 8}, {40, 72}};
    for (int a = 0; a < 2; ++a)
        for (int i = 0; i < (quick ? 2 : 6); ++i) {
            const char *arch = a ? "sm_80" : "sm_90a";
            fg_kv_append_variant(&v, i & 1 ? FG_FP16 : FG_BF16, dims[i][0], dims[i][1]);
            char key[512];
            fg_variant_key(&v, src.hash_hex, nv.major, nv.minor, arch, key, sizeof key);
            fg_cubin cb;
            if (fg_render_forward(&src, &v, key, &r, &e) != FG_OK ||
                fg_compile_cubin(&src, r.source, arch, key, &cb, &e) != FG_OK) {
                CHECK(0, "%s %d/%d: %s", arch, dims[i][0], dims[i][1], e.msg);
                fg_error_clear(&e);
                fg_rendered_free(&r);
                continue;
            }
            const fg_kernel_stats *st = &cb.stats;
            printf("%-7s hdim=%3d hdim_v=%3d regs=%3d spill=%d/%d stack=%d %.2fs\n", arch, dims[i][0], dims[i][1],
                   st->registers, st->spill_stores, st->spill_loads, st->stack_frame, st->compile_seconds);
            CHECK(!st->spill_stores && !st->spill_loads && !st->stack_frame, "%s %d/%d spills", arch, dims[i][0],
                  dims[i][1]);
            CHECK(contains(cb.data, cb.size, "flashgen_kv_append_advance") && contains(cb.data, cb.size, "flashgen_kv_append"),
                  "%s: an entry point is missing from the cubin", arch);
            fg_cubin_free(&cb);
            fg_rendered_free(&r);
        }
    fg_sources_free(&src);
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    test_bad_calls();
    test_params();
    test_public_call();
    test_variants(quick);
    return test_summary("test_kv_append_cpu");
}
