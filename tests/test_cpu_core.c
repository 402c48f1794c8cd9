/* CPU tests of everything but the launch: SPEC parsing, rendering of the
 * whole spec matrix (deterministic, banner, shared-memory agreement), the
 * Lua sandbox and template errors, the float64 reference, layout and call
 * validation, the no-driver path, cubin statistics. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_tile_order.h"
#include "select/heuristic.h"
#include "gen/render.h"
#include "runtime/attention.h"
#include "gen/compile.h"
#include "runtime/cuda_api.h"
#include "runtime/internal.h"
#include "runtime/layout.h"
#include "runtime/reference.h"
#include "runtime/sparse_sched.h"
#include "test_util.h"

/* The TMA family's options: text round trip, key, rendering, checks. */
static void test_ws_options(void) {
    fg_variant v;
    fg_causal cm;
    fg_error e = {0};
    CHECK(fg_spec_parse("hdim=128,wgmma=2,block_m=128,block_n=128,warps=12,stages=2,q_in_regs=0,min_blocks=1,pingpong=0,"
                        "overlap=0,persistent=0", &v, &cm, &e) == FG_OK, "%s", e.msg);
    CHECK(v.cfg.ws_off == (FG_WS_NO_PINGPONG | FG_WS_NO_OVERLAP | FG_WS_NO_PERSISTENT), "ws_off %d", v.cfg.ws_off);
    char txt[256];
    fg_config_format(&v.cfg, txt, sizeof txt);
    CHECK(strstr(txt, ",pingpong=0,overlap=0,persistent=0") != NULL, "%s", txt);
    fg_config c;
    CHECK(fg_config_parse(txt, &c, &e) == FG_OK && !memcmp(&c, &v.cfg, sizeof c), "round trip of %s", txt);
    CHECK(fg_config_check(&v.spec, &v.cfg, 232448, &e) == FG_OK, "%s", e.msg);
    char k1[512], k2[512];
    fg_variant_key(&v, "t", 13, 0, "sm_90a", k1, sizeof k1);
    v.cfg.ws_off &= ~FG_WS_NO_PERSISTENT;
    fg_variant_key(&v, "t", 13, 0, "sm_90a", k2, sizeof k2);
    CHECK(!strcmp(k1, k2), "persistent=0 is a launch option, one kernel: %s vs %s", k1, k2);
    fg_sources src;
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg);
    fg_rendered r;
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_OK, "%s", e.msg);
    if (r.source) CHECK_CONTAINS(r.source, "PINGPONG = false, OVERLAP = false");
    fg_rendered_free(&r);
    /* the defaults name nothing, so keys of earlier variants are unchanged */
    v.cfg.ws_off = 0;
    fg_config_format(&v.cfg, txt, sizeof txt);
    CHECK(!strstr(txt, "pingpong") && !strstr(txt, "persistent"), "%s", txt);
    CHECK(fg_render_forward(&src, &v, "k", &r, &e) == FG_OK, "%s", e.msg);
    if (r.source) CHECK_CONTAINS(r.source, "PINGPONG = true, OVERLAP = true");
    fg_rendered_free(&r);
    v.cfg.ws_off = FG_WS_NO_PINGPONG;
    v.cfg.wgmma = 1;
    v.cfg.warps = 8;
    CHECK(fg_config_check(&v.spec, &v.cfg, 232448, &e) == FG_ERR_UNSUPPORTED, "pingpong=0 accepted on wgmma=1");
    CHECK_CONTAINS(e.msg, "TMA path");
    CHECK(fg_spec_parse("hdim=64,pingpong=2", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "pingpong=2 accepted");
    fg_sources_free(&src);
    fg_error_clear(&e);
}

static void test_spec(void) {
    fg_variant v;
    fg_causal cm;
    fg_error e = {0};
    CHECK(fg_spec_parse("hdim=96,dtype=fp16,causal=top_left,sparse=1,block_n=32", &v, &cm, &e) == FG_OK, "%s", e.msg);
    CHECK(v.spec.head_dim == 96 && v.spec.dtype == FG_FP16 && v.spec.causal && v.spec.sparse && cm == FG_CAUSAL_TOP_LEFT &&
              v.cfg.block_n == 32 && v.cfg.block_m == 0 && v.cfg.q_in_regs == -1, "parsed fields");
    CHECK(fg_spec_parse("dtype=bf16", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "missing hdim");
    CHECK_CONTAINS(e.msg, "hdim");
    CHECK(fg_spec_parse("hdim=64,colour=red", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "unknown key");
    CHECK_CONTAINS(e.msg, "unknown SPEC key 'colour'");
    CHECK(fg_spec_parse("hdim=64,dtype=fp8", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "bad dtype");
    CHECK_CONTAINS(e.msg, "bad value 'fp8'");
    CHECK(fg_spec_parse("hdim=sixty", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "bad int");
    CHECK(fg_spec_parse("hdim=64,causal", &v, &cm, &e) == FG_ERR_INVALID_ARGUMENT, "no '='");
    fg_error_clear(&e);
    test_ws_options();
}

/* Every head dim 8..256 (multiples of 8) x dtype x causal x sparse, with
 * every heuristic candidate: renders, deterministically, with the banner. */
static void test_render_matrix(void) {
    fg_sources src;
    fg_error e = {0};
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg);
    int rendered = 0;
    for (int d = 8; d <= 256; d += 8)
        for (int dt = 0; dt < 2; ++dt)
            for (int causal = 0; causal < 2; ++causal)
                for (int sparse = 0; sparse < 2; ++sparse) {
                    fg_spec s = {d, dt ? FG_FP16 : FG_BF16, causal, sparse, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
                    fg_config c[16];
                    const int n = fg_heuristic_candidates(&s, 232448, sparse ? 128 : 0, sparse ? 128 : 0, 1, c, 16);
                    CHECK(n > 0, "no candidate for hdim=%d", d);
                    for (int i = 0; i < n; ++i) {
                        fg_variant v = {s, c[i]};
                        char key[512];
                        fg_variant_key(&v, src.hash_hex, 13, 0, "sm_90a", key, sizeof key);
                        fg_rendered a, b;
                        fg_status s1 = fg_render_forward(&src, &v, key, &a, &e);
                        CHECK(s1 == FG_OK, "%s: %s", key, e.msg);
                        if (s1 != FG_OK) continue;
                        CHECK(fg_render_forward(&src, &v, key, &b, &e) == FG_OK, "%s", e.msg);
                        CHECK(!strcmp(a.source, b.source), "render of %s is not deterministic", key);
                        char banner[600];
                        snprintf(banner, sizeof banner, "// variant: %s\n", key);
                        CHECK(strstr(a.source, banner) == strchr(a.source, '\n') + 1 || strstr(a.source, banner), "banner of %s", key);
                        CHECK(!strncmp(a.source, "// flashgen generated kernel", 28), "banner first line");
                        CHECK(a.smem_bytes == fg_config_smem_bytes(&s, &c[i]), "%s: template smem %d != C %d", key,
                              a.smem_bytes, fg_config_smem_bytes(&s, &c[i]));
                        CHECK(a.threads == c[i].warps * 32, "threads");
                        fg_rendered_free(&a);
                        fg_rendered_free(&b);
                        ++rendered;
                    }
                }
    printf("rendered %d variants\n", rendered);
    /* the template checks its own parameters */
    fg_variant bad = {{64, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, {128, 64, 5, 2, 0, 1, 0, 0}};
    fg_rendered r;
    CHECK(fg_render_forward(&src, &bad, "k", &r, &e) == FG_ERR_TEMPLATE, "warps=5 accepted");
    CHECK_CONTAINS(e.msg, "'warps'");
    CHECK_CONTAINS(e.msg, "fwd_mma.lua:");
    fg_variant badm = {{64, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, {96, 64, 4, 2, 0, 1, 0, 0}};
    CHECK(fg_render_forward(&src, &badm, "k", &r, &e) == FG_ERR_TEMPLATE, "block_m=96 accepted");
    CHECK_CONTAINS(e.msg, "block_m");
    fg_variant badw = {{96, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, {128, 64, 8, 2, 0, 1, 1, 0}};
    CHECK(fg_render_forward(&src, &badw, "k", &r, &e) == FG_ERR_TEMPLATE, "wgmma with hdim 96 accepted");
    CHECK_CONTAINS(e.msg, "multiples of 64");
    CHECK(fg_render_forward(&src, &badm, "k", &r, &e) == FG_ERR_TEMPLATE, "block_m=96 accepted");
    CHECK_CONTAINS(e.msg, "block_m");
    fg_error_clear(&e);
    fg_sources_free(&src);
}

static char g_dir[256];

static void write_template(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Renders fwd_mma.lua replaced by `text`; returns status, message in e. */
static fg_status render_override(const char *text, fg_error *e, uint64_t *hash) {
    write_template("fwd_mma.lua", text);
    setenv("FLASHGEN_TEMPLATE_DIR", g_dir, 1);
    fg_sources src;
    fg_status st = fg_sources_load(&src, e);
    unsetenv("FLASHGEN_TEMPLATE_DIR");
    if (st != FG_OK) return st;
    if (hash) *hash = src.hash;
    fg_variant v = {{64, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, {128, 64, 4, 2, 0, 1, 0, 0}};
    fg_rendered r;
    st = fg_render_forward(&src, &v, "test-key", &r, e);
    if (st == FG_OK) fg_rendered_free(&r);
    fg_sources_free(&src);
    return st;
}

static void test_template_errors_and_sandbox(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/flashgen-test-%d", (int)getpid());
    mkdir(g_dir, 0700);
    fg_error e = {0};
    fg_sources plain;
    fg_sources_load(&plain, &e);
    uint64_t h = 0;

    CHECK(render_override("return function(p)\n  local x = \n end\n", &e, &h) == FG_ERR_TEMPLATE, "syntax error accepted");
    CHECK_CONTAINS(e.msg, "templates/fwd_mma.lua:3");
    CHECK(h != plain.hash, "an overridden template must change the template hash");

    CHECK(render_override("local function inner(p)\n  error('kaboom')\nend\nreturn function(p) return inner(p) end\n", &e, NULL) == FG_ERR_TEMPLATE, "error()");
    CHECK_CONTAINS(e.msg, "fwd_mma.lua:2: kaboom");
    CHECK_CONTAINS(e.msg, "stack traceback");

    /* sandbox escapes, runaway templates and malformed results: each is
     * FG_ERR_TEMPLATE, with the given text in the message */
    static const struct { const char *src, *what, *msg; } refused[] = {
        {"return function(p) os.execute('touch /tmp/pwned') end\n", "os reachable", "os"},
        {"return function(p) return io.open('/etc/passwd') end\n", "io reachable", "io"},
        {"return function(p) return require('os') end\n", "require reachable", NULL},
        {"return function(p) return dofile('/etc/passwd') end\n", "dofile reachable", NULL},
        {"return function(p) local f = load(string.dump(function() end)) end\n", "string.dump reachable", NULL},
        {"return function(p) local f, m = load('\\27Lua'); assert(f, m) end\n", "binary chunk loaded", "binary"},
        {"return function(p) while true do end end\n", "infinite loop", "instruction budget"},
        {"return function(p) local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end end\n", "memory bomb",
         "memory"},
        {"return function(p) return setmetatable({}, {__index = function() error('meta') end}) end\n", "metatable result",
         NULL},
        {"return function(p) return setmetatable({}, {__index = function() while true do end end}) end\n",
         "looping metatable result", NULL},
        {"return 42\n", "non-function template", "must return a function"},
        {"return function(p) return {source = 'x'} end\n", "missing fields", NULL},
        {"return function(p) return import('nonexistent') end\n", "bad import", "no template named 'nonexistent'"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; ++i) {
        CHECK(render_override(refused[i].src, &e, NULL) == FG_ERR_TEMPLATE, "%s", refused[i].what);
        if (refused[i].msg) CHECK_CONTAINS(e.msg, refused[i].msg);
    }
    /* the real template through the override dir renders fine */
    const fg_source *orig = fg_sources_find(&plain, "fwd_mma.lua");
    CHECK(render_override(orig->data, &e, &h) == FG_OK, "%s", e.msg);
    CHECK(h == plain.hash, "same bytes, same hash");
    fg_error_clear(&e);
    fg_sources_free(&plain);
    char path[512];
    snprintf(path, sizeof path, "%s/fwd_mma.lua", g_dir);
    unlink(path);
    /* a directory with no template in it (a mistyped path) is an error, not
     * the embedded copies in silence */
    fg_sources none;
    setenv("FLASHGEN_TEMPLATE_DIR", g_dir, 1);
    CHECK(fg_sources_load(&none, &e) == FG_ERR_TEMPLATE, "empty template dir accepted");
    CHECK_CONTAINS(e.msg, "no template file there");
    fg_error_clear(&e);
    setenv("FLASHGEN_TEMPLATE_DIR", "/nonexistent/flashgen-templates", 1);
    CHECK(fg_sources_load(&none, &e) == FG_ERR_TEMPLATE, "missing template dir accepted");
    fg_error_clear(&e);
    unsetenv("FLASHGEN_TEMPLATE_DIR");
    rmdir(g_dir);
}

static void test_conversions(void) {
    struct { float f; uint16_t bf, h; } t[] = {{1.0f, 0x3f80, 0x3c00}, {-2.5f, 0xc020, 0xc100}, {65504.f, 0x4780, 0x7bff},
                                               {0.0f, 0x0000, 0x0000}, {5.9604644775390625e-08f, 0x3380, 0x0001}};
    for (unsigned i = 0; i < sizeof t / sizeof t[0]; ++i) {
        CHECK(fg_float_to_half(t[i].f, FG_BF16) == t[i].bf, "bf16(%g) = %04x", t[i].f, fg_float_to_half(t[i].f, FG_BF16));
        CHECK(fg_float_to_half(t[i].f, FG_FP16) == t[i].h, "fp16(%g) = %04x", t[i].f, fg_float_to_half(t[i].f, FG_FP16));
        CHECK(fg_half_to_float(t[i].h, FG_FP16) == t[i].f, "fp16 back");
    }
    CHECK(fg_float_to_half(1.0f + 1.0f / 256, FG_BF16) == 0x3f80, "bf16 tie rounds to even");
    CHECK(fg_float_to_half(1.0f + 3.0f / 256, FG_BF16) == 0x3f82, "bf16 tie rounds to even (up)");
    CHECK(fg_float_to_half(1e6f, FG_FP16) == 0x7c00, "fp16 overflow -> inf");
    CHECK(isnan(fg_half_to_float(0xffff, FG_BF16)) && isnan(fg_half_to_float(0xffff, FG_FP16)), "0xffff is the NaN poison");
    fg_rng r;
    fg_rng_seed(&r, 7);
    for (int i = 0; i < 2000; ++i) { /* every fp16 value survives a round trip */
        uint16_t h = (uint16_t)(fg_rng_uniform(&r) * 65536);
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        CHECK(fg_float_to_half(fg_half_to_float(h, FG_FP16), FG_FP16) == h, "round trip %04x", h);
    }
}

static void test_reference(void) {
    /* one key: o = v, lse = q.k * scale */
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_FP16, 8, 1, 1, 1, 1, 1);
    uint16_t q[8], k[8], v[8];
    double o[8], lse;
    for (int i = 0; i < 8; ++i) {
        q[i] = fg_float_to_half(0.5f, FG_FP16);
        k[i] = fg_float_to_half(1.0f, FG_FP16);
        v[i] = fg_float_to_half((float)i, FG_FP16);
    }
    fg_reference_forward(&d, NULL, q, k, v, o, &lse);
    for (int i = 0; i < 8; ++i) CHECK(o[i] == i, "o[%d] = %g", i, o[i]);
    CHECK(fabs(lse - 4.0 / sqrt(8.0)) < 1e-12, "lse %g", lse);
    /* identical keys: o = mean of v rows, lse = s + log(n) */
    fg_attention_desc_init(&d, FG_BF16, 8, 1, 1, 1, 1, 4);
    uint16_t k4[32], v4[32];
    for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 8; ++i) {
            k4[j * 8 + i] = fg_float_to_half(1.0f, FG_BF16);
            v4[j * 8 + i] = fg_float_to_half((float)(j * 10 + i), FG_BF16);
            q[i] = fg_float_to_half(0.25f, FG_BF16);
        }
    fg_reference_forward(&d, NULL, q, k4, v4, o, &lse);
    for (int i = 0; i < 8; ++i) CHECK(fabs(o[i] - (15 + i)) < 1e-12, "mean o[%d] = %g", i, o[i]);
    CHECK(fabs(lse - (2.0 / sqrt(8.0) + log(4.0))) < 1e-12, "lse %g", lse);
    /* causal bottom-right with sq > sk: query 0 of 3 sees no key of 1 */
    fg_attention_desc_init(&d, FG_BF16, 8, 1, 1, 1, 3, 1);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    uint16_t q3[24];
    double o3[24], l3[3];
    for (int i = 0; i < 24; ++i) q3[i] = fg_float_to_half(1.0f, FG_BF16);
    fg_reference_forward(&d, NULL, q3, k4, v4, o3, l3);
    CHECK(isinf(l3[0]) && l3[0] < 0 && isinf(l3[1]) && l3[1] < 0 && isfinite(l3[2]), "empty rows: lse %g %g %g", l3[0], l3[1], l3[2]);
    CHECK(o3[0] == 0 && o3[8] == 0 && o3[16] == v4[0] * 0 + 0, "empty rows give o = 0");
    CHECK(fg_ref_visible(&d, NULL, 0, 0, 2, 0) && !fg_ref_visible(&d, NULL, 0, 0, 1, 0), "bottom-right visibility");
    d.causal = FG_CAUSAL_TOP_LEFT;
    CHECK(fg_ref_visible(&d, NULL, 0, 0, 0, 0) && !fg_ref_visible(&d, NULL, 0, 0, 0, 1), "top-left visibility");
}

static void test_layout_validation(void) {
    int32_t num[2] = {1, 1}, idx[4] = {0, 1, 1, 0}, fnum[2] = {1, 0}, fidx[4] = {1, 0, 0, 0};
    fg_block_layout_desc L = {1, 1, 2, 2, 128, 128, num, idx, fnum, fidx};
    fg_error e = {0};
    CHECK(fg_layout_validate(&L, &e) == FG_OK, "%s", e.msg);
    num[0] = 3;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "count 3 > 2 accepted");
    CHECK_CONTAINS(e.msg, "kv_num_blocks[0][0][0] = 3");
    num[0] = -1;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "negative count accepted");
    num[0] = 1;
    idx[2] = 2;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "index 2 accepted");
    CHECK_CONTAINS(e.msg, "kv_indices[0][0][1][0] = 2");
    idx[2] = 1;
    idx[0] = 1;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "block listed as full and partial accepted");
    CHECK_CONTAINS(e.msg, "listed twice");
    idx[0] = 0;
    L.full_kv_indices = NULL;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "half-given full lists accepted");
    L.full_kv_indices = fidx;
    L.block_q = 100;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "block 100 accepted");
    L.block_q = 32;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "block_q 32 accepted (no kernel tile divides it)");
    L.block_q = 0;
    CHECK(fg_layout_validate(&L, &e) == FG_OK, "block 0 (the default 128): %s", e.msg);
    L.block_q = 128;
    L.num_q_blocks = 0;
    CHECK(fg_layout_validate(&L, &e) == FG_ERR_BAD_LAYOUT, "0 blocks accepted");
    CHECK(fg_layout_validate(NULL, &e) == FG_ERR_INVALID_ARGUMENT, "NULL layout");
    fg_error_clear(&e);
}

static fg_status plan(const fg_attention_desc *d, fg_error *e) {
    fg_variant v;
    fg_fwd_params p;
    return fg_desc_plan(d, 232448, &v, &p, e);
}

static void test_plan_validation(void) {
    fg_attention_desc d;
    fg_error e = {0};
    fg_variant v;
    fg_fwd_params p;
    fg_attention_desc_init(&d, FG_BF16, 128, 2, 8, 2, 1000, 777);
    d.causal = FG_CAUSAL_BOTTOM_RIGHT;
    CHECK(fg_desc_plan(&d, 232448, &v, &p, &e) == FG_OK, "%s", e.msg);
    CHECK(p.group == 4 && p.causal_offset == 777 - 1000 && fabsf(p.scale - 1 / sqrtf(128.f)) < 1e-7f, "params");
    CHECK(v.spec.causal && !v.spec.sparse && v.cfg.block_m == 0, "automatic config left to the chooser");
    d.causal = FG_CAUSAL_TOP_LEFT;
    CHECK(plan(&d, &e) == FG_OK, "%s", e.msg);

    fg_attention_desc b = d;
    b.head_dim = 100;
    CHECK(plan(&b, &e) == FG_ERR_UNSUPPORTED, "hdim 100");
    CHECK_CONTAINS(e.msg, "head_dim 100");
    b.head_dim = 264;
    CHECK(plan(&b, &e) == FG_ERR_UNSUPPORTED, "hdim 264");
    b = d; b.heads_kv = 3;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "heads 8/3");
    CHECK_CONTAINS(e.msg, "not a multiple of heads_kv=3");
    b = d; b.seqlen_q = 0;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "seqlen 0");
    b = d; b.k_strides[2] = 12;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "stride 12");
    CHECK_CONTAINS(e.msg, "k stride[2] = 12 is not a multiple of 8");
    b = d; b.v_strides[0] = -8;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "negative stride");
    b = d; b.o_strides[2] = 64; /* rows of 128 elements 64 apart: overlap */
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "overlapping o");
    CHECK_CONTAINS(e.msg, "overlap");
    b = d; b.causal = (fg_causal)7;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "causal 7");
    b = d; b.softmax_scale = -1.f;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "negative scale");
    b = d; b.dtype = (fg_dtype)9;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "dtype 9");
    b = d; b.block_m = 128; b.block_n = 128; b.stages = 3;
    CHECK(plan(&b, &e) == FG_ERR_UNSUPPORTED, "config over the shared-memory limit");
    CHECK_CONTAINS(e.msg, "shared memory");
    CHECK(plan(NULL, &e) == FG_ERR_INVALID_ARGUMENT, "NULL desc");
    /* strides whose offsets overflow int64 must not slip past the bounds check */
    b = d; b.seqlen_q = 17; b.seqlen_k = 17;
    for (int i = 0; i < 3; ++i) b.q_strides[i] = b.k_strides[i] = b.v_strides[i] = b.o_strides[i] = 0;
    b.q_strides[2] = b.k_strides[2] = b.v_strides[2] = b.o_strides[2] = 1LL << 60;
    CHECK(plan(&b, &e) == FG_ERR_INVALID_ARGUMENT, "stride 2^60 accepted");
    CHECK_CONTAINS(e.msg, "overflow");
    b = d; b.seqlen_q = (1 << 30) + 1;
    CHECK(plan(&b, &e) == FG_ERR_UNSUPPORTED, "seqlen 2^30+1 accepted");
    /* BHSD strides are fine */
    b = d;
    int64_t s[3] = {8LL * 1000 * 128, 1000LL * 128, 128};
    memcpy(b.q_strides, s, sizeof s);
    memcpy(b.o_strides, s, sizeof s);
    CHECK(plan(&b, &e) == FG_OK, "BHSD: %s", e.msg);
    /* a layout that does not match the call (1000 x 777 needs 8 x 7 blocks of 128) */
    struct fg_block_layout L = {0};
    L.batch = 1; L.heads = 1; L.num_q_blocks = 8; L.num_kv_blocks = 6; L.block_q = 128; L.block_k = 128;
    b = d;
    b.layout = &L;
    CHECK(plan(&b, &e) == FG_ERR_BAD_LAYOUT, "layout 8x6 for 1000x777 accepted");
    CHECK_CONTAINS(e.msg, "need 8 x 7");
    L.num_kv_blocks = 7;
    CHECK(plan(&b, &e) == FG_OK, "%s", e.msg);
    L.batch = 3;
    CHECK(plan(&b, &e) == FG_ERR_BAD_LAYOUT, "layout batch 3 for batch 2 accepted");
    L.batch = 2; L.heads = 8;
    b.block_m = 128; b.warps = 8; b.block_n = 128; b.stages = 1;
    L.block_k = 64; L.num_kv_blocks = 13;
    CHECK(plan(&b, &e) == FG_ERR_UNSUPPORTED, "block_n 128 over a 64 layout block accepted");
    CHECK_CONTAINS(e.msg, "must divide the layout block");
    fg_error_clear(&e);
}

static void test_no_driver_path(void) {
    fg_context *ctx = NULL;
    CHECK(fg_context_create(&ctx) == FG_OK && ctx, "create");
    CHECK(!strcmp(fg_errmsg(ctx), ""), "fresh context has no message");
    CHECK(fg_errmsg(NULL) != NULL, "fg_errmsg(NULL)");
    fg_context_destroy(NULL);
    const fg_cuda *cu;
    fg_error e = {0};
    const int have_driver = fg_cuda_get(&cu, &e) == FG_OK;
    fg_error_clear(&e);
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 64, 1, 1, 1, 16, 16);
    if (!have_driver) {
        char x[64] __attribute__((aligned(16)));
        fg_status s = fg_attention_forward(ctx, &d, x, x, x, x, NULL, NULL);
        CHECK(s == FG_ERR_NO_DRIVER, "forward without a driver returned %s", fg_status_name(s));
        CHECK_CONTAINS(fg_errmsg(ctx), "no NVIDIA driver");
        CHECK(fg_attention_prepare(ctx, &d) == FG_ERR_NO_DRIVER, "prepare without a driver");
    } else {
        printf("driver present: no-driver checks skipped\n");
    }
    /* invalid layouts fail before any device is needed */
    int32_t num[1] = {5}, idx[1] = {0};
    fg_block_layout_desc L = {1, 1, 1, 1, 128, 128, num, idx, NULL, NULL};
    fg_block_layout *out = (fg_block_layout *)1;
    CHECK(fg_block_layout_create(ctx, &L, &out) == FG_ERR_BAD_LAYOUT && out == NULL, "bad layout");
    CHECK_CONTAINS(fg_errmsg(ctx), "kv_num_blocks[0][0][0] = 5");
    CHECK(fg_attention_forward(NULL, &d, NULL, NULL, NULL, NULL, NULL, NULL) == FG_ERR_INVALID_ARGUMENT, "NULL ctx");
    CHECK(!strcmp(fg_status_name(FG_ERR_BAD_LAYOUT), "FG_ERR_BAD_LAYOUT"), "status names");
    fg_context_destroy(ctx);
}

/* Four threads fail on one context with different head dims; each must
 * read its own message, every time, while the others keep failing. */
static fg_context *g_msg_ctx;
static int g_msg_bad[4];
static void *msg_worker(void *arg) {
    const int t = (int)(intptr_t)arg;
    fg_attention_desc d;
    fg_attention_desc_init(&d, FG_BF16, 100 + t, 1, 1, 1, 16, 16); /* not a multiple of 8 */
    char want[32];
    snprintf(want, sizeof want, "head_dim %d ", 100 + t);
    for (int i = 0; i < 300; ++i) {
        fg_status s = fg_attention_prepare(g_msg_ctx, &d);
        const char *m = fg_errmsg(g_msg_ctx);
        /* without a driver the first failure is FG_ERR_NO_DRIVER; with one, the head dim */
        if (s == FG_ERR_UNSUPPORTED ? !strstr(m, want) : strlen(m) == 0) g_msg_bad[t]++;
    }
    return NULL;
}

static void test_errmsg_per_thread(void) {
    fg_context_create(&g_msg_ctx);
    pthread_t th[4];
    for (int t = 0; t < 4; ++t) pthread_create(&th[t], NULL, msg_worker, (void *)(intptr_t)t);
    for (int t = 0; t < 4; ++t) pthread_join(th[t], NULL);
    for (int t = 0; t < 4; ++t) CHECK(g_msg_bad[t] == 0, "thread %d read another thread's (or no) message %d times", t, g_msg_bad[t]);
    fg_context_destroy(g_msg_ctx);
}

static void test_cubin_stats(void) {
    fg_error e = {0};
    if (fg_nvrtc_load(NULL, &e) != FG_OK) { printf("NVRTC missing: cubin stats skipped\n"); fg_error_clear(&e); return; }
    fg_kernel_stats st = {0};
    fg_parse_ptxas_log("ptxas info    : Used 168 registers, used 1 barriers, 40 bytes smem\n"
                       "ptxas         .     24 bytes stack frame, 16 bytes spill stores, 12 bytes spill loads\n", &st);
    CHECK(st.registers == 168 && st.stack_frame == 24 && st.spill_stores == 16 && st.spill_loads == 12 && st.static_smem == 40,
          "log parse %d %d %d %d", st.registers, st.stack_frame, st.spill_stores, st.spill_loads);
    /* a kernel forced to spill: the cubin's frame size says so without a log */
    fg_sources src;
    fg_sources_load(&src, &e);
    const char *code = "extern \"C\" __global__ void __launch_bounds__(1024, 1) f(float *x, int n) {\n"
                       "  float a[96];\n  for (int i = 0; i < 96; ++i) a[i] = x[i * n];\n"
                       "  float s = 0; for (int i = 0; i < 96; ++i) s += a[(i * 7 + n) % 96];\n  x[0] = s;\n}\n";
    fg_cubin cb;
    CHECK(fg_compile_cubin(&src, code, "sm_90a", "spill-test", &cb, &e) == FG_OK, "%s", e.msg);
    fg_kernel_stats fromcubin = {0};
    fg_cubin_read_stats(cb.data, cb.size, &fromcubin);
    CHECK(fromcubin.registers > 0 && fromcubin.stack_frame > 0, "cubin stats: %d registers, %d stack", fromcubin.registers, fromcubin.stack_frame);
    fg_cubin_free(&cb);
    CHECK(fg_compile_cubin(&src, "this is not C++", "sm_90a", "broken-key", &cb, &e) == FG_ERR_COMPILE, "garbage compiled");
    CHECK_CONTAINS(e.msg, "broken-key");
    CHECK_CONTAINS(e.msg, "NVRTC log");
    fg_error_clear(&e);
    fg_sources_free(&src);
}

/* The short-causal table: its configurations for causal dense 16-bit specs
 * of the measured head dims and buckets (valid, TMA), nothing elsewhere. */
static void test_short_causal(void) {
    static const struct { const char *spec; int bq, bk, want; } t[] = {
        {"hdim=64,causal=1", 512, 512, 1},           {"hdim=64,dtype=fp16,causal=1", 1024, 256, 1},
        {"hdim=64,causal=1", 2048, 2048, 0},         {"hdim=128,causal=1", 2048, 1024, 0}, /* pairs: 128 x 128 */
        {"hdim=256,causal=1", 512, 512, 1},          {"hdim=128,causal=1", 1024, 1024, 0},
        {"hdim=64,causal=1", 4096, 4096, 0},         {"hdim=64,causal=0", 512, 512, 0},
        {"hdim=64,causal=1,sparse=1", 512, 512, 0},  {"hdim=64,causal=1,mods=softcap", 512, 512, 0},
        {"hdim=128,hdim_v=64,causal=1", 2048, 2048, 0}, {"hdim=64,causal=1,infer=1", 512, 512, 0},
        {"hdim=64,dtype=e4m3,causal=1", 512, 512, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; ++i) {
        fg_variant v;
        fg_causal causal;
        fg_error e = {0};
        CHECK(fg_spec_parse(t[i].spec, &v, &causal, &e) == FG_OK, "%s: %s", t[i].spec, e.msg);
        fg_error_clear(&e);
        fg_config c;
        const int got = fg_heuristic_short_causal(&v.spec, t[i].bq, t[i].bk, &c);
        CHECK(got == t[i].want, "%s sq%d sk%d: %d, want %d", t[i].spec, t[i].bq, t[i].bk, got, t[i].want);
        if (got) {
            CHECK(c.wgmma == 2 && c.warps == 4 * (1 + c.block_m / 64), "%s: not a TMA configuration", t[i].spec);
            CHECK(fg_config_check(&v.spec, &c, 232448, &e) == FG_OK, "%s: %s", t[i].spec, e.msg ? e.msg : "");
            fg_error_clear(&e);
        }
    }
}

/* The persistent grid's tile order (templates/fg_tile_order.h, the
 * functions the kernel runs): every tile is run exactly once, by a CTA
 * whose indices only grow, for every grid the runtime launches (persistent:
 * min(work, SMs) CTAs, work = pairs of causal tiles; one CTA per tile); a
 * causal pair costs at most num_m + 1 key tiles (128 x 128 tiles), and the
 * CTAs' loads differ by at most one pair. */
static void test_tile_order(void) {
    static const int grids[] = {1, 2, 3, 7, 64, 132, 200};
    int *seen = malloc(sizeof(int) * 40 * 13);
    for (int causal = 0; causal <= 1; ++causal)
        for (int nm = 1; nm <= 40; ++nm)
            for (int nbh = 1; nbh <= 13; ++nbh)
                for (size_t gi = 0; gi <= sizeof grids / sizeof *grids; ++gi) {
                    const int total = nm * nbh, persistent = gi < sizeof grids / sizeof *grids;
                    int pairs;
                    const int g = (int)fg_tile_grid(causal, persistent, total, persistent ? grids[gi] : 1, &pairs);
                    const int work = pairs ? (total + 1) / 2 : total;
                    memset(seen, 0, sizeof(int) * (size_t)total);
                    int bad = 0, lo = 1 << 30, hi = 0;
                    for (int b = 0; b < g && !bad; ++b) {
                        int last = -1, load = 0, steps = 0;
                        for (int k = 0;; ++k) {
                            const int t = fg_tile_at(causal, pairs, g, b, k);
                            if (t >= total) break;
                            if (t <= last || t < 0) { bad = 1; break; }
                            last = t;
                            seen[t]++;
                            int bh;
                            const int m = fg_tile_decode(causal, nm, nbh, t, &bh);
                            if (m < 0 || m >= nm || bh < 0 || bh >= nbh) { bad = 2; break; }
                            load += m + 1;
                            ++steps;
                        }
                        if (steps) { lo = load < lo ? load : lo; hi = load > hi ? load : hi; }
                    }
                    for (int t = 0; t < total && !bad; ++t)
                        if (seen[t] != 1) bad = 3;
                    /* every (query block, head) once: decode is a bijection */
                    memset(seen, 0, sizeof(int) * (size_t)total);
                    for (int t = 0; t < total && !bad; ++t) {
                        int bh;
                        const int m = fg_tile_decode(causal, nm, nbh, t, &bh);
                        if (seen[bh * nm + m]++) bad = 4;
                    }
                    if (!bad && pairs) {
                        for (int u = 0; 2 * u < total && !bad; ++u) {
                            int bh, c = fg_tile_decode(1, nm, nbh, 2 * u, &bh) + 1;
                            if (2 * u + 1 < total) c += fg_tile_decode(1, nm, nbh, 2 * u + 1, &bh) + 1;
                            if (c > nm + 1) bad = 5;
                        }
                        /* full rounds: loads within one pair of each other */
                        if (!bad && work % g == 0 && hi - lo > nm + 1) bad = 6;
                    }
                    CHECK(!bad, "tile order causal=%d num_m=%d heads*batch=%d grid=%d (%s): failure %d", causal, nm, nbh, g,
                          persistent ? "persistent" : "one CTA a tile", bad);
                }
    free(seen);
}

/* The persistent grid's tile lists for sparse layouts (runtime/
 * sparse_sched.c) on random shapes and row costs: every tile once, offsets
 * in order, each CTA's tiles through the (batch, head) groups in order, a
 * group's tiles longest first on one CTA, and the greedy's balance (no CTA
 * ends later than the earliest plus the longest tile). */
static void test_sparse_sched(void) {
    unsigned rng = 12345;
#define RND(n) ((int)((rng = rng * 1103515245u + 12345u) >> 8) % (n))
    static const int bms[] = {64, 128, 192};
    for (int it = 0; it < 400; ++it) {
        const int bm = bms[RND(3)], bq = bm * (1 + RND(3));
        const int batch = 1 + RND(3), heads = 1 + RND(5), seqlen_q = 1 + RND(3000);
        const int lb = RND(2) ? 1 : batch, lh = RND(2) ? 1 : heads, nq = (seqlen_q + bq - 1) / bq;
        const int nm = (seqlen_q + bm - 1) / bm, tiles = nm * heads * batch;
        const int sms[] = {1, 3, 132, tiles};
        int ctas = sms[RND(4)];
        if (ctas > tiles) ctas = tiles;
        const fg_sparse_sched_key key = {batch, heads, seqlen_q, bm, 1 + RND(3), ctas};
        int *cost = malloc(sizeof(int) * (size_t)(lb * lh * nq));
        const int density = 1 + RND(100), nk = 1 + RND(64);
        for (int r = 0; r < lb * lh * nq; ++r) cost[r] = RND(100) < density ? RND(nk + 1) : 0;
        const fg_sparse_sched_layout L = {lb, lh, nq, bq, cost};
        const long long ints = fg_sparse_sched_ints(&key);
        int *out = ints > 0 ? malloc(sizeof(int) * (size_t)ints) : NULL, *seen = calloc((size_t)tiles, sizeof(int));
        int bad = !out || ints != 2LL * ctas + tiles || fg_sparse_sched_build(&key, &L, out) != 0;
        long long lo = -1, hi = 0, longest = 0, listed = 0;
        for (int c = 0; c < ctas && !bad; ++c) {
            if (out[c] < ctas || out[c] >= ints) { bad = 2; break; }
            long long load = 0, prev_cost = -1;
            int prev_g = -1;
            for (long long i = out[c];; ++i) {
                if (i >= ints) { bad = 2; break; }
                const int t = out[i];
                if (t == FG_SPARSE_SCHED_END) break;
                if (t < 0 || t >= tiles || seen[t]++) { bad = 3; break; }
                ++listed;
                int bh;
                const int m = fg_tile_decode(0, nm, heads * batch, t, &bh);
                const int b = bh / heads, h = bh % heads, bi = lb == 1 ? 0 : b, hi2 = lh == 1 ? 0 : h;
                const long long tc = (long long)cost[(bi * lh + hi2) * nq + m * bm / bq] * key.sub + FG_SPARSE_SCHED_TILE_COST;
                if (bh < prev_g) bad = 4;
                if (bh == prev_g && tc > prev_cost) bad = 5; /* one CTA: longest first inside a group */
                prev_g = bh;
                prev_cost = tc;
                load += tc;
                longest = tc > longest ? tc : longest;
            }
            lo = lo < 0 || load < lo ? load : lo;
            hi = load > hi ? load : hi;
        }
        if (!bad && listed != tiles) bad = 6;
        for (int t = 0; t < tiles && !bad; ++t)
            if (seen[t] != 1) bad = 6;
        if (!bad && hi > lo + longest) bad = 7;
        CHECK(!bad, "sparse schedule batch=%d heads=%d seqlen_q=%d block_m=%d block_q=%d layout %dx%d ctas=%d: failure %d", batch,
              heads, seqlen_q, bm, bq, lb, lh, ctas, bad);
        free(out); free(seen); free(cost);
    }
#undef RND
    /* out of range: refused, not wrapped */
    const fg_sparse_sched_key huge = {65536, 65536, 1 << 20, 64, 1, 132};
    CHECK(fg_sparse_sched_ints(&huge) == -1, "a list past 2^31 ints is refused");
}

int main(void) {
    test_spec();
    test_short_causal();
    test_tile_order();
    test_sparse_sched();
    test_render_matrix();
    test_template_errors_and_sandbox();
    test_conversions();
    test_reference();
    test_layout_validation();
    test_plan_validation();
    test_no_driver_path();
    test_errmsg_per_thread();
    test_cubin_stats();
    return test_summary("test_cpu_core");
}
