/* cli_explore.c: `flashgen explore PATTERN`: evaluate a block-sparse
 * pattern, print its statistics and an ASCII thumbnail, write a PNG, and
 * with a GPU time it against dense attention after checking it against the
 * float64 reference. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/cuda_api.h"
#include "runtime/internal.h"
#include "runtime/pattern.h"
#include "tools/cli.h"
#include "tools/harness.h"
#include "tools/png.h"

static const char *HELP_EXPLORE =
    "usage: flashgen explore PATTERN [options]\n"
    "\n"
    "Evaluates a block-sparse pattern into its block layout and shows it: density,\n"
    "blocks per query row, an ASCII thumbnail and (with --png) a picture with full,\n"
    "partial and empty blocks in three colours.  With a GPU it then runs dense and\n"
    "sparse attention on random inputs, checks the sparse output against the\n"
    "float64 CPU reference on sampled rows (same pattern, same element mask), and\n"
    "reports the time, the effective TFLOP/s (computed blocks only), the speedup\n"
    "over dense and time / (density x dense time), whose target is <= 1.15.\n"
    "\n"
    "PATTERN is a built-in (see --list), a Lua expression over the built-ins, e.g.\n"
    "  'union(sliding_window{window=512}, global{tokens=64})'\n"
    "or a pattern file ending in .lua (docs/PATTERNS.md; it runs in a sandbox).\n"
    "\n"
    "options:\n"
    "  --param NAME=VALUE   pattern parameter (repeatable; lists as 100,200,300)\n"
    "  --seqlen N (8192)    query length; --seqlen-k N (= seqlen) key length\n"
    "  --block N (128)      query block of the layout (multiple of 64)\n"
    "  --block-k N (=block) key block of the layout (multiple of 16)\n"
    "  --batch N (16384 / seqlen, at least 1)   --heads N (16)\n"
    "  --hdim N (128)       --dtype bf16|fp16 (bf16)\n"
    "  --causal none|bottom_right|top_left (none): the call's causal mask, applied\n"
    "                       to partial blocks on top of the pattern's mask\n"
    "  --path auto|mma|wgmma (auto)   kernel family\n"
    "  --iters N (30)       timed launches (median)\n"
    "  --png FILE           write the picture of (batch 0, head 0)\n"
    "  --verify             check every block against the mask expression element\n"
    "                       by element (slow for long sequences)\n"
    "  --sweep              time block sizes 64/128 (query) x 64/128 (key)\n"
    "  --no-gpu             stop after the statistics and the picture\n"
    "  --list               list the built-in patterns and their parameters\n"
    "exit status: 0 done (or no GPU), 1 error or a wrong result, 2 usage.\n";

/* Three colours (full, partial, empty), readable on white and dark pages. */
static const uint8_t COLOUR[3][3] = {{236, 236, 236}, {245, 158, 11}, {30, 64, 175}};

typedef struct stats {
    long full, partial, rows, total;
    int row_min, row_max;
    double row_mean, density;
} stats;

static stats layout_stats(const fg_block_layout_desc *d) {
    stats s = {0, 0, 0, 0, 1 << 30, 0, 0, 0};
    s.rows = (long)d->batch * d->heads * d->num_q_blocks;
    for (long r = 0; r < s.rows; ++r) {
        const int n = d->full_kv_num_blocks[r] + d->kv_num_blocks[r];
        s.full += d->full_kv_num_blocks[r];
        s.partial += d->kv_num_blocks[r];
        if (n < s.row_min) s.row_min = n;
        if (n > s.row_max) s.row_max = n;
    }
    s.total = s.rows * d->num_kv_blocks;
    s.row_mean = (double)(s.full + s.partial) / (double)s.rows;
    s.density = (double)(s.full + s.partial) / (double)s.total;
    return s;
}

/* class[qb * nk + kb] of (batch 0, head 0): 0 empty, 1 partial, 2 full */
static unsigned char *block_classes(const fg_block_layout_desc *d) {
    const int nq = d->num_q_blocks, nk = d->num_kv_blocks;
    unsigned char *c = calloc((size_t)nq * nk, 1);
    if (!c) return NULL;
    for (int qb = 0; qb < nq; ++qb) {
        for (int i = 0; i < d->kv_num_blocks[qb]; ++i) c[(size_t)qb * nk + d->kv_indices[(size_t)qb * nk + i]] = 1;
        for (int i = 0; i < d->full_kv_num_blocks[qb]; ++i) c[(size_t)qb * nk + d->full_kv_indices[(size_t)qb * nk + i]] = 2;
    }
    return c;
}

static void print_thumbnail(const unsigned char *cls, int nq, int nk) {
    const int f = (nk + 63) / 64 > (nq + 63) / 64 ? (nk + 63) / 64 : (nq + 63) / 64; /* blocks per cell, both ways */
    const int cols = (nk + f - 1) / f, rows = (nq + f - 1) / f;
    printf("thumbnail: %d x %d cells of %d x %d blocks (# full, + partial or mixed, . empty; rows: queries)\n", rows, cols, f, f);
    for (int y = 0; y < rows; ++y) {
        fputs("  ", stdout);
        for (int x = 0; x < cols; ++x) {
            int any[3] = {0, 0, 0};
            for (int qb = y * f; qb < (y + 1) * f && qb < nq; ++qb)
                for (int kb = x * f; kb < (x + 1) * f && kb < nk; ++kb) any[cls[(size_t)qb * nk + kb]] = 1;
            putchar(!any[1] && !any[2] ? '.' : !any[0] && !any[1] ? '#' : '+');
        }
        putchar('\n');
    }
}

/* Writes the picture; on failure prints why and leaves no file behind. */
static int write_png(const char *path, const unsigned char *cls, int nq, int nk) {
    int px = 1024 / (nk > nq ? nk : nq);
    if (px < 1) px = 1;
    if (px > 16) px = 16;
    /* sizes first: nothing is created for a picture the writer refuses */
    if ((int64_t)nk * px > FG_PNG_MAX_SIDE || (int64_t)nq * px > FG_PNG_MAX_SIDE) {
        fprintf(stderr, "flashgen explore: %s: a picture of %d x %d blocks is larger than %d x %d pixels; use larger --block / --block-k\n",
                path, nk, nq, FG_PNG_MAX_SIDE, FG_PNG_MAX_SIDE);
        return -1;
    }
    const int w = nk * px, h = nq * px;
    uint8_t *img = malloc((size_t)w * h);
    if (!img) {
        fprintf(stderr, "flashgen explore: %s: out of memory for a %d x %d picture\n", path, w, h);
        return -1;
    }
    /* palette entries 0..2 are the classes, 3..5 their grid-line shades */
    uint8_t pal[6 * 3];
    for (int c = 0; c < 3; ++c)
        for (int k = 0; k < 3; ++k) {
            pal[c * 3 + k] = COLOUR[c][k];
            pal[(c + 3) * 3 + k] = (uint8_t)(COLOUR[c][k] * 0.85);
        }
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const unsigned char c = cls[(size_t)(y / px) * nk + x / px];
            /* a one-pixel grid line between blocks when they are large enough to see it */
            const int edge = px >= 6 && (x % px == px - 1 || y % px == px - 1);
            img[(size_t)y * w + x] = (uint8_t)(c + (edge ? 3 : 0));
        }
    errno = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "flashgen explore: %s: %s\n", path, strerror(errno));
        free(img);
        return -1;
    }
    int rc = fg_png_write_indexed(f, w, h, img, pal, 6);
    const int saved = errno;
    if (fclose(f) != 0) rc = -1;
    free(img);
    if (rc) {
        fprintf(stderr, "flashgen explore: %s: writing the picture failed%s%s\n", path, saved ? ": " : "", saved ? strerror(saved) : "");
        remove(path); /* the partial file this call created */
        return -1;
    }
    printf("picture:   %s (%d x %d px, %d px per block; blue full, amber partial, grey empty)\n", path, w, h, px);
    return 0;
}

static int parse_causal(const char *s, fg_causal *c) {
    if (!s || !strcmp(s, "none") || !strcmp(s, "0")) { *c = FG_CAUSAL_NONE; return 1; }
    if (!strcmp(s, "bottom_right") || !strcmp(s, "1")) { *c = FG_CAUSAL_BOTTOM_RIGHT; return 1; }
    if (!strcmp(s, "top_left")) { *c = FG_CAUSAL_TOP_LEFT; return 1; }
    return 0;
}

typedef struct run_opts {
    int batch, heads, hdim, sq, sk, iters;
    fg_dtype dt;
    fg_causal causal;
    fg_kernel_path path;
} run_opts;

static int run_case(fg_context *ctx, const run_opts *o, fg_pattern *p, int bq, int bk, fg_case_result *r) {
    fg_case c;
    memset(&c, 0, sizeof c);
    fg_attention_desc_init(&c.desc, o->dt, o->hdim, o->batch, o->heads, o->heads, o->sq, o->sk);
    c.desc.causal = o->causal;
    c.desc.path = o->path;
    c.pattern = p;
    c.block = bq;
    c.block_k = bk;
    c.seed = 1;
    c.check_rows_max = 256;
    return fg_harness_run(ctx, &c, o->iters, r);
}

static void print_kernel(fg_context *ctx, const char *want_mask) {
    /* the most recently compiled matching kernel: the list is newest first */
    for (fg_kernel *k = ctx->kernels; k; k = k->next)
        if (k->state == 1 && (want_mask ? strstr(k->key, "mask=") != NULL : strstr(k->key, "mask=") == NULL)) {
            printf("           kernel %s\n           %d registers, %d spill bytes\n", k->key, k->stats.registers,
                   k->stats.spill_stores + k->stats.spill_loads);
            return;
        }
}

int fg_cmd_explore(int argc, char **argv) {
    if (fg_cli_flag(argc, argv, "--help") || fg_cli_flag(argc, argv, "-h")) { fputs(HELP_EXPLORE, stdout); return 0; }
    fg_context *ctx = NULL;
    if (fg_context_create(&ctx) != FG_OK) { fprintf(stderr, "flashgen explore: cannot create a context\n"); return 1; }
    int rc = 0;
    fg_pattern *pat = NULL;
    char *params = NULL;
    unsigned char *cls = NULL;
    if (fg_cli_flag(argc, argv, "--list")) {
        fg_pattern_builtin b[32];
        const int n = fg_pattern_builtins(ctx, b, 32);
        printf("built-in patterns (flashgen explore NAME --param k=v ...):\n");
        for (int i = 0; i < n; ++i) printf("  %-15s %s\n  %-15s parameters: %s\n", b[i].name, b[i].summary, "", b[i].params);
        printf("combinators: union(a, b, ...), intersection(a, b, ...), e.g. 'intersection(document{lengths={100,200}}, causal{})'\n");
        goto done;
    }
    const char *name = fg_cli_positional(argc, argv);
    if (!name) { fputs(HELP_EXPLORE, stderr); rc = 2; goto done; }
    run_opts o;
    o.sq = fg_cli_int(argc, argv, "--seqlen", 8192);
    o.sk = fg_cli_int(argc, argv, "--seqlen-k", o.sq);
    int bq = fg_cli_int(argc, argv, "--block", 128);
    int bk = fg_cli_int(argc, argv, "--block-k", bq);
    o.batch = fg_cli_int(argc, argv, "--batch", o.sq > 0 && o.sq < 16384 ? 16384 / o.sq : 1);
    o.heads = fg_cli_int(argc, argv, "--heads", 16);
    o.hdim = fg_cli_int(argc, argv, "--hdim", 128);
    o.iters = fg_cli_int(argc, argv, "--iters", 30);
    const char *dts = fg_cli_opt(argc, argv, "--dtype"), *paths = fg_cli_opt(argc, argv, "--path");
    if ((dts && strcmp(dts, "bf16") && strcmp(dts, "fp16")) || !parse_causal(fg_cli_opt(argc, argv, "--causal"), &o.causal) ||
        (paths && strcmp(paths, "auto") && strcmp(paths, "mma") && strcmp(paths, "wgmma")) || o.sq < 1 || o.sk < 1 ||
        o.batch < 1 || o.heads < 1 || o.iters < 1 || o.iters > 1024) {
        fprintf(stderr, "flashgen explore: bad option value (sizes >= 1, --dtype bf16|fp16, --causal none|bottom_right|top_left, "
                        "--path auto|mma|wgmma; see --help)\n");
        rc = 2;
        goto done;
    }
    if (bq < 1 || bk < 1) {
        /* 0 would silently mean the library's default block */
        fprintf(stderr, "flashgen explore: --block and --block-k must be positive (multiples of 64 and 16); got %d and %d\n", bq, bk);
        rc = 2;
        goto done;
    }
    o.dt = dts && !strcmp(dts, "fp16") ? FG_FP16 : FG_BF16;
    o.path = !paths || !strcmp(paths, "auto") ? FG_PATH_AUTO : !strcmp(paths, "mma") ? FG_PATH_MMA : FG_PATH_WGMMA;
    /* every --param, joined for fg_pattern_create */
    size_t plen = 1;
    for (int i = 1; i + 1 < argc; ++i)
        if (!strcmp(argv[i], "--param")) plen += strlen(argv[i + 1]) + 1;
    params = calloc(plen, 1);
    if (!params) { rc = 1; goto done; }
    for (int i = 1; i + 1 < argc; ++i)
        if (!strcmp(argv[i], "--param")) {
            if (!strchr(argv[i + 1], '=')) { fprintf(stderr, "flashgen explore: --param takes NAME=VALUE (got '%s')\n", argv[i + 1]); rc = 2; goto done; }
            strcat(params, argv[i + 1]);
            strcat(params, ";");
        }

    if (fg_pattern_create(ctx, name, params, &pat) != FG_OK) {
        fprintf(stderr, "flashgen explore: %s\n", fg_errmsg(ctx));
        rc = 1;
        goto done;
    }
    fg_block_layout_desc d;
    if (fg_pattern_eval(ctx, pat, o.batch, o.heads, o.sq, o.sk, bq, bk, &d) != FG_OK) {
        fprintf(stderr, "flashgen explore: %s\n", fg_errmsg(ctx));
        rc = 1;
        goto done;
    }
    const char *mask = fg_pattern_mask(pat, FG_MASK_TEXT);
    printf("pattern:   %s%s%s\n", fg_pattern_name(pat), params[0] ? "  params: " : "", params);
    printf("mask:      %s\n", mask ? mask : "none (block level: every block full or empty)");
    printf("layout:    %d x %d queries x keys in blocks of %d x %d: %d x %d blocks; %s\n", o.sq, o.sk, bq, bk,
           d.num_q_blocks, d.num_kv_blocks,
           d.batch == 1 && d.heads == 1 ? "one layout for every batch and head" : "one layout per batch and head");
    stats s = layout_stats(&d);
    printf("blocks:    %ld full, %ld partial, %ld empty; density %.2f%% (computed blocks / all)\n", s.full, s.partial,
           s.total - s.full - s.partial, 100 * s.density);
    printf("per row:   min %d, mean %.2f, max %d computed blocks per query block\n", s.row_min, s.row_mean, s.row_max);
    if (fg_cli_flag(argc, argv, "--verify")) {
        if (!fg_pattern_mask_is_predicate(pat)) {
            printf("verify:    skipped: %s\n", mask ? "random blocks decide which blocks exist; the mask covers partial blocks only"
                                                   : "no mask expression");
        } else {
            long inexact = 0;
            fg_error e = {0};
            if (fg_pattern_verify(pat, o.sq, o.sk, &inexact, &e) != FG_OK) {
                printf("verify:    FAIL: %s\n", e.msg);
                fg_error_clear(&e);
                rc = 1;
                goto done;
            }
            printf("verify:    every full block true and every empty block false on every element; %ld partial blocks are uniform\n",
                   inexact);
        }
    }
    cls = block_classes(&d);
    if (!cls) { rc = 1; goto done; }
    print_thumbnail(cls, d.num_q_blocks, d.num_kv_blocks);
    const char *png = fg_cli_opt(argc, argv, "--png");
    if (png && write_png(png, cls, d.num_q_blocks, d.num_kv_blocks) != 0) {
        rc = 1;
        goto done;
    }
    if (fg_cli_flag(argc, argv, "--no-gpu")) goto done;
    const fg_cuda *cu;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) {
        printf("GPU:       none (%s); stopping after the layout.\n", e.msg);
        fg_error_clear(&e);
        goto done;
    }
    if (fg_ctx_device(ctx, &e) != FG_OK) {
        printf("GPU:       cannot use it: %s\n", e.msg);
        fg_error_clear(&e);
        rc = 1;
        goto done;
    }
    printf("GPU:       %s (%s); batch %d, heads %d, head dim %d, %s, causal %s\n", ctx->dev_info.name, ctx->dev_info.arch,
           o.batch, o.heads, o.hdim, fg_dtype_name(o.dt), fg_causal_name(o.causal));
    fg_case_result dense, sp;
    if (run_case(ctx, &o, NULL, 0, 0, &dense)) {
        printf("dense:     FAIL: %s\n", dense.msg);
        rc = 1;
        goto done;
    }
    printf("dense:     %8.3f ms  %6.1f TFLOP/s  (checked %ld rows, max|err| %.3g)\n", dense.ms_median, dense.tflops,
           dense.checked_rows, dense.o.max_abs);
    print_kernel(ctx, NULL);
    const int sweep = fg_cli_flag(argc, argv, "--sweep");
    static const int sizes[4][2] = {{64, 64}, {64, 128}, {128, 64}, {128, 128}};
    if (sweep)
        printf("%7s %7s %8s %9s %10s %8s %12s %6s\n", "block_q", "block_k", "density", "ms", "eff TF/s", "speedup",
               "t/(d*dense)", "check");
    for (int i = 0; i < (sweep ? 4 : 1); ++i) {
        const int q = sweep ? sizes[i][0] : bq, k = sweep ? sizes[i][1] : bk;
        const int bad = run_case(ctx, &o, pat, q, k, &sp);
        if (bad) {
            printf("sparse %dx%d: FAIL: %s: %s\n", q, k, fg_status_name(sp.status), sp.msg);
            rc = 1;
            continue;
        }
        const double ratio = sp.ms_median / (sp.density * dense.ms_median);
        if (sweep) {
            printf("%7d %7d %7.2f%% %9.3f %10.1f %7.2fx %12.2f %6s\n", q, k, 100 * sp.density, sp.ms_median, sp.tflops,
                   dense.ms_median / sp.ms_median, ratio, "ok");
        } else {
            printf("sparse:    %8.3f ms  %6.1f TFLOP/s effective (computed blocks only)  (checked %ld rows vs the float64 "
                   "reference with the pattern's mask, max|err| %.3g, rel L2 %.3g)\n",
                   sp.ms_median, sp.tflops, sp.checked_rows, sp.o.max_abs, sp.o.rel_l2);
            print_kernel(ctx, mask);
            printf("speedup:   %.2fx over dense; time / (density x dense time) = %.3f (target <= 1.15: %s)\n",
                   dense.ms_median / sp.ms_median, ratio, ratio <= 1.15 ? "met" : "NOT met");
        }
        fflush(stdout);
    }
done:
    free(cls);
    free(params);
    fg_pattern_destroy(pat);
    fg_context_destroy(ctx);
    return rc;
}
