/* cli_run.c: `flashgen run` and `flashgen bench`, the commands that need a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/attention.h"
#include "runtime/check.h"
#include "runtime/internal.h"
#include "runtime/timing.h"
#include "select/heuristic.h"
#include "tools/cli.h"
#include "tools/harness.h"

static const char *HELP_RUN =
    "usage: flashgen run [SPEC] [options]\n"
    "\n"
    "The main job: generate, compile, run and check one variant.  Fresh random\n"
    "inputs (seeded), outputs poisoned with NaN, the kernel, then a comparison\n"
    "with the float64 CPU reference (max |error|, relative L2, lse) and the\n"
    "median time and TFLOP/s of --iters launches.  Without a GPU it still\n"
    "generates and compiles the variant for sm_90a and says why it cannot launch.\n"
    "\n"
    "SPEC defaults to hdim=128,dtype=bf16,causal=bottom_right.\n"
    "options:\n"
    "  --batch N (2)  --heads-q N (16)  --heads-kv N (= heads-q)\n"
    "  --head-dim-v N value head dim of v and o (= SPEC's hdim_v, else hdim)\n"
    "  --seqlen-q N (2048)  --seqlen-k N (= seqlen-q)\n"
    "  --layout bshd|bhsd (bshd)   --seed N (1)   --iters N (20)\n"
    "  --density F    with sparse=1: random block layout of this density (0.5)\n"
    "  --block N      layout block (128)\n"
    "  --cache FILE   cache file of kernels and tuning results (default: see flashgen cache)\n"
    "  --require-gpu  exit with status 3 instead of 0 when there is no GPU\n"
    "exit status: 0 checked and passed (or no GPU), 1 mismatch or error, 2 usage.\n"
    "\n" FG_SPEC_HELP;

static const char *HELP_BENCH =
    "usage: flashgen bench [options]\n"
    "\n"
    "Forward TFLOP/s on the ../shared/BENCHMARK.md grid: 16384 tokens (batch =\n"
    "16384 / seqlen), model width 2048 (heads = 2048 / hdim), bf16 by default.\n"
    "Each shape is checked against the CPU reference on sampled rows before it\n"
    "is timed; a wrong result is reported, not timed.  Timing: CUDA events, L2\n"
    "flushed (256 MiB memset) before each launch, median of --iters, after\n"
    "--heat milliseconds of untimed launches of the same shape: an H200 runs\n"
    "short bursts at its boost clock (1980 MHz) and settles at about 1600-1700\n"
    "MHz under its 700 W cap after about a second of load, which takes 10-12%\n"
    "off the TFLOP/s (docs/PERF.md v14).  Peers timed in a Python process\n"
    "(bench/vs_torch.py) run at the sustained clock; --heat 0 gives burst\n"
    "figures.  FLOPs = 2 b h s s (d + d), halved for causal.\n"
    "\n"
    "options:\n"
    "  --dtype bf16|fp16|e4m3      (bf16); e4m3: FP8 q, k, v (N(0,1) rounded,\n"
    "                              descales 1), bf16 o, FP8's tolerance\n"
    "  --hdims 64,128,256          head dims\n"
    "  --seqlens 512,...,16384     sequence lengths\n"
    "  --causal both|0|1           (both)\n"
    "  --iters N                   timed launches per shape (30)\n"
    "  --heat MS                   untimed launches before them, in ms (1000)\n"
    "  --path auto|mma|wgmma|tma   kernel family (auto)\n"
    "  --config KEYS               one configuration for every shape, SPEC syntax,\n"
    "                              e.g. wgmma=2,block_m=128,block_n=176 (keys block_m,\n"
    "                              block_n, warps, stages, wgmma; default: tuned or heuristic)\n"
    "  --csv FILE                  also write the rows as CSV\n"
    "  --cache FILE                cache file (tuning results, kernels)\n"
    "  --compare-heuristic         also time the built-in heuristic's configuration\n"
    "                              (tuning results ignored) and print tuned/heuristic\n";

int fg_cli_parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 1 << 20 || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return s && *s ? -1 : n; /* more items than max */
}

int fg_cmd_run(int argc, char **argv) {
    if (fg_cli_flag(argc, argv, "--help") || fg_cli_flag(argc, argv, "-h")) { fputs(HELP_RUN, stdout); return 0; }
    const char *specstr = fg_cli_positional(argc, argv);
    if (!specstr) specstr = "hdim=128,dtype=bf16,causal=bottom_right";
    fg_error e = {0};
    fg_variant v;
    fg_causal cm;
    if (fg_spec_parse(specstr, &v, &cm, &e) != FG_OK) { fprintf(stderr, "flashgen run: %s\n", e.msg); fg_error_clear(&e); return 2; }
    fg_case c;
    memset(&c, 0, sizeof c);
    const int heads_q = fg_cli_int(argc, argv, "--heads-q", fg_cli_int(argc, argv, "--heads", 16));
    const int seqlen_q = fg_cli_int(argc, argv, "--seqlen-q", fg_cli_int(argc, argv, "--seqlen", 2048));
    fg_attention_desc_init(&c.desc, v.spec.dtype, v.spec.head_dim, fg_cli_int(argc, argv, "--batch", 2), heads_q,
                           fg_cli_int(argc, argv, "--heads-kv", heads_q), seqlen_q, fg_cli_int(argc, argv, "--seqlen-k", seqlen_q));
    /* the harness sets the strides; the plan checks the value */
    c.desc.head_dim_v = fg_cli_int(argc, argv, "--head-dim-v", fg_spec_head_dim_v(&v.spec));
    char spec_dv[300];
    if (c.desc.head_dim_v != fg_spec_head_dim_v(&v.spec)) { /* the compile-only fallback below takes a SPEC */
        snprintf(spec_dv, sizeof spec_dv, "%s,hdim_v=%d", specstr, c.desc.head_dim_v);
        specstr = spec_dv;
    }
    c.desc.causal = cm;
    c.desc.block_m = v.cfg.block_m; c.desc.block_n = v.cfg.block_n;
    c.desc.warps = v.cfg.warps; c.desc.stages = v.cfg.stages;
    if (v.cfg.wgmma >= 0) c.desc.path = (fg_kernel_path)fg_config_path(&v.cfg);
    if (v.cfg.q_in_regs >= 0 || v.cfg.min_blocks)
        fprintf(stderr, "flashgen run: note: q_in_regs and min_blocks are compile-time knobs of `flashgen compile`; "
                        "the library chooses them for a call\n");
    if (v.cfg.ws_off)
        fprintf(stderr, "flashgen run: note: pingpong=0, overlap=0 and persistent=0 are not a call's to set: the "
                        "library takes them from `flashgen tune`'s results or its heuristic, not from SPEC\n");
    const char *layout = fg_cli_opt(argc, argv, "--layout");
    if (layout && strcmp(layout, "bshd") && strcmp(layout, "bhsd")) {
        fprintf(stderr, "flashgen run: --layout must be bshd or bhsd\n");
        return 2;
    }
    c.bhsd = layout && !strcmp(layout, "bhsd");
    c.seed = (uint64_t)fg_cli_int(argc, argv, "--seed", 1);
    c.check_rows_max = 4096;
    if (v.spec.sparse) {
        const char *dens = fg_cli_opt(argc, argv, "--density");
        c.density = dens ? atof(dens) : 0.5;
        c.block = fg_cli_int(argc, argv, "--block", 128);
    }
    const int iters = fg_cli_int(argc, argv, "--iters", 20);
    if (iters < 0 || iters > 1024 || c.desc.batch < 1 || c.desc.heads_q < 1 || c.desc.heads_kv < 1 || c.desc.seqlen_q < 1 || c.desc.seqlen_k < 1) {
        fprintf(stderr, "flashgen run: sizes must be >= 1 and --iters 0..1024\n");
        return 2;
    }
    char desc[256];
    fg_case_describe(&c, desc, sizeof desc);

    const fg_cuda *cu;
    if (fg_cuda_get(&cu, &e) != FG_OK) {
        printf("flashgen run: %s\n", e.msg);
        fg_error_clear(&e);
        printf("flashgen run: no GPU to launch on; generating and compiling %s for sm_90a instead.\n", specstr);
        char *cargv[] = {"compile", (char *)specstr, "--arch", "sm_90a", NULL};
        extern int fg_cli_compile_main(int, char **);
        int rc = fg_cli_compile_main(4, cargv);
        if (rc) return rc;
        printf("flashgen run: compiled; cannot launch without a GPU.\n");
        return fg_cli_flag(argc, argv, "--require-gpu") ? 3 : 0;
    }
    fg_context *ctx = NULL;
    if (fg_context_create(&ctx) != FG_OK) { fprintf(stderr, "flashgen run: cannot create a context\n"); return 1; }
    const char *cache = fg_cli_opt(argc, argv, "--cache");
    if (cache) fg_context_set_cache(ctx, cache);
    fg_case_result r;
    printf("case:     %s\n", desc);
    int failed = fg_harness_run(ctx, &c, iters, &r);
    if (r.status != FG_OK) {
        printf("error:    %s: %s\n", fg_status_name(r.status), r.msg);
        fg_context_destroy(ctx);
        return 1;
    }
    for (fg_kernel *k = ctx->kernels; k; k = k->next)
        printf("kernel:   %s\n          %d registers, %d spill bytes, %d bytes smem, compiled in %.2f s\n", k->key,
               k->stats.registers, k->stats.spill_stores + k->stats.spill_loads, k->smem_bytes, k->stats.compile_seconds);
    printf("check:    %ld rows vs float64 reference: o max|err| %.3g (tol %.3g), rel L2 %.3g (tol %.3g); lse max|err| %.3g; unwritten %zu\n",
           r.checked_rows, r.o.max_abs, r.tol_abs, r.o.rel_l2, r.tol_rel, r.lse.max_abs, r.unwritten);
    fg_context_stats cs = {.struct_size = sizeof cs};
    fg_context_get_stats(ctx, &cs);
    printf("cache:    %s: %ld kernel(s) compiled, %ld loaded from the cache; block sizes from %s\n", cs.cache_path,
           cs.kernels_compiled, cs.kernels_from_cache,
           c.desc.block_m ? "SPEC" : cs.configs_tuned ? "flashgen tune's result" : "the built-in heuristic");
    if (failed) printf("result:   FAIL: %s\n", r.msg);
    else printf("result:   PASS\ntime:     %.3f ms median of %d, %.1f TFLOP/s\n", r.ms_median, iters, r.tflops);
    fg_context_destroy(ctx);
    return failed;
}


/* Median ms of iters launches, L2 flushed before each, after about
 * heat_ms of untimed ones (at least 3; the count from one timed launch);
 * -1 on error (printed). */
static double time_forward(const fg_cuda *cu, fg_context *ctx, const fg_attention_desc *desc, void *q, void *k, void *v, void *o, float *lse,
                           CUdeviceptr flush, size_t flush_bytes, int iters, int heat_ms) {
    fg_forward_call u = {ctx, desc, q, k, v, o, lse};
    fg_error e = {0};
    double ms = -1, once = 0;
    int warmup = 3;
    if (heat_ms > 0 && fg_time_median(cu, fg_forward_launch, &u, 1, 1, flush, flush_bytes, &once, &e) == FG_OK && once > 0) {
        const double n = heat_ms / (once + 0.05); /* + the flush, about 50 us */
        warmup = n > 20000 ? 20000 : n < 3 ? 3 : (int)n;
    }
    if (e.msg || fg_time_median(cu, fg_forward_launch, &u, warmup, iters, flush, flush_bytes, &ms, &e) != FG_OK) {
        printf("error while timing: %s\n", e.msg);
        fg_error_clear(&e);
        return -1;
    }
    return ms;
}

/* --config: the configuration keys of a SPEC (block_m, block_n, warps,
 * stages, wgmma), parsed by fg_spec_parse as `flashgen run` parses them;
 * keys that make another variant (dtype, causal, ...) or that a call cannot
 * set (q_in_regs, min_blocks, pingpong, overlap, persistent) are refused.
 * 0 on success (*out unset where no --config); prints the problem and
 * returns -1 otherwise. */
static int parse_config(const char *str, fg_config *out) {
    fg_config_unset(out);
    if (!str) return 0;
    char *text = fg_strdupf("hdim=64,%s", str);
    fg_variant v, base;
    fg_causal cm, base_cm;
    fg_error e = {0};
    const fg_status st = text ? fg_spec_parse(text, &v, &cm, &e) : FG_ERR_OUT_OF_MEMORY;
    free(text);
    if (st != FG_OK) {
        fprintf(stderr, "flashgen bench: --config '%s': %s\n", str, e.msg ? e.msg : "out of memory");
        fg_error_clear(&e);
        return -1;
    }
    fg_spec_parse("hdim=64", &base, &base_cm, NULL);
    if (memcmp(&v.spec, &base.spec, sizeof v.spec) || cm != base_cm || v.cfg.q_in_regs >= 0 || v.cfg.min_blocks ||
        v.cfg.ws_off) {
        fprintf(stderr, "flashgen bench: --config '%s': takes block_m, block_n, warps, stages and wgmma only "
                        "(the other SPEC keys make another variant, or are not a call's to set)\n", str);
        return -1;
    }
    *out = v.cfg;
    return 0;
}

int fg_cmd_bench(int argc, char **argv) {
    if (fg_cli_flag(argc, argv, "--help") || fg_cli_flag(argc, argv, "-h")) { fputs(HELP_BENCH, stdout); return 0; }
    int hdims[8], seqlens[16];
    int nh = fg_cli_parse_list(fg_cli_opt(argc, argv, "--hdims") ? fg_cli_opt(argc, argv, "--hdims") : "64,128,256", hdims, 8);
    int ns = fg_cli_parse_list(fg_cli_opt(argc, argv, "--seqlens") ? fg_cli_opt(argc, argv, "--seqlens") : "512,1024,2048,4096,8192,16384", seqlens, 16);
    const char *cs = fg_cli_opt(argc, argv, "--causal");
    const char *dts = fg_cli_opt(argc, argv, "--dtype");
    const int iters = fg_cli_int(argc, argv, "--iters", 30), heat = fg_cli_int(argc, argv, "--heat", 1000);
    const char *csvpath = fg_cli_opt(argc, argv, "--csv");
    const char *paths = fg_cli_opt(argc, argv, "--path");
    fg_config cfg; /* --config: block sizes and the family for every shape */
    if (parse_config(fg_cli_opt(argc, argv, "--config"), &cfg) != 0) return 2;
    if (cfg.wgmma >= 0 && paths) {
        fprintf(stderr, "flashgen bench: give the kernel family once: --path or wgmma= in --config\n");
        return 2;
    }
    if (nh <= 0 || ns <= 0 || iters < 1 || iters > 1024 || heat < 0 || heat > 60000 || (cs && strcmp(cs, "both") && strcmp(cs, "0") && strcmp(cs, "1")) ||
        (dts && strcmp(dts, "bf16") && strcmp(dts, "fp16") && strcmp(dts, "e4m3")) ||
        (paths && strcmp(paths, "auto") && strcmp(paths, "mma") && strcmp(paths, "wgmma") && strcmp(paths, "tma"))) {
        fprintf(stderr, "flashgen bench: bad option value (--hdims/--seqlens take positive integers, --iters 1..1024, --heat 0..60000, "
                        "--causal both|0|1, --dtype bf16|fp16|e4m3, --path auto|mma|wgmma|tma)\n");
        return 2;
    }
    for (int i = 0; i < nh; ++i)
        if (hdims[i] > 2048 || 2048 % hdims[i]) { fprintf(stderr, "flashgen bench: head dim %d does not divide the model width 2048\n", hdims[i]); return 2; }
    for (int i = 0; i < ns; ++i)
        if (seqlens[i] > 16384 || 16384 % seqlens[i]) { fprintf(stderr, "flashgen bench: seqlen %d does not divide 16384 tokens\n", seqlens[i]); return 2; }
    const int c0 = cs && !strcmp(cs, "1") ? 1 : 0, c1 = cs && !strcmp(cs, "0") ? 0 : 1;
    const fg_dtype dt = dts && !strcmp(dts, "fp16") ? FG_FP16 : dts && !strcmp(dts, "e4m3") ? FG_E4M3 : FG_BF16;
    const size_t eb = dt == FG_E4M3 ? 1 : 2; /* bytes per input element; o is 16-bit (bf16 for e4m3) */
    const fg_kernel_path path = !paths || !strcmp(paths, "auto") ? FG_PATH_AUTO : !strcmp(paths, "mma") ? FG_PATH_MMA
                                : !strcmp(paths, "tma") ? FG_PATH_TMA : FG_PATH_WGMMA;
    const char *impl = path == FG_PATH_AUTO ? "flashgen" : path == FG_PATH_MMA ? "flashgen_mma"
                       : path == FG_PATH_TMA ? "flashgen_tma" : "flashgen_wgmma";

    fg_context *ctx = NULL, *hctx = NULL;
    fg_context_create(&ctx);
    const char *cache = fg_cli_opt(argc, argv, "--cache");
    if (cache) fg_context_set_cache(ctx, cache);
    if (fg_cli_flag(argc, argv, "--compare-heuristic")) {
        /* same cache file (kernels), tuning results ignored */
        if (fg_context_create(&hctx) != FG_OK) {
            fprintf(stderr, "flashgen bench: out of memory\n");
            fg_context_destroy(hctx);
            fg_context_destroy(ctx);
            return 1;
        }
        if (cache) fg_context_set_cache(hctx, cache);
        hctx->ignore_tuned = 1;
    }
    fg_error e = {0};
    if (fg_ctx_device(ctx, &e) != FG_OK) {
        fprintf(stderr, "flashgen bench: %s\n", e.msg);
        fg_error_clear(&e);
        fg_context_destroy(ctx);
        fg_context_destroy(hctx);
        return 1;
    }
    const fg_cuda *cu = ctx->cu;
    const size_t tokens = 16384, width = 2048, n = tokens * width;
    CUdeviceptr dq = 0, dk = 0, dv = 0, dout = 0, dlse = 0, flush = 0;
    const size_t flush_bytes = 256u << 20;
    uint16_t *hq = malloc(n * 2), *hk = malloc(n * 2), *hv = malloc(n * 2), *ho = malloc(n * 2);
    float *hlse = malloc(tokens * 128 * 4);
    double *orow = malloc(sizeof(double) * 256);
    FILE *csv = NULL;
    int rc = 0;
    CUresult r = CUDA_SUCCESS;
    if (!hq || !hk || !hv || !ho || !hlse || !orow) { fprintf(stderr, "flashgen bench: out of memory\n"); rc = 1; goto done; }
    fg_rng rng;
    fg_rng_seed(&rng, 1234);
    fg_fill_normal(hq, n, dt, &rng); /* e4m3: N(0, 1) rounded, a byte an element, descales 1 */
    fg_fill_normal(hk, n, dt, &rng);
    fg_fill_normal(hv, n, dt, &rng);
    if (!r) r = cu->MemAlloc(&dq, n * eb);
    if (!r) r = cu->MemAlloc(&dk, n * eb);
    if (!r) r = cu->MemAlloc(&dv, n * eb);
    if (!r) r = cu->MemAlloc(&dout, n * 2);
    if (!r) r = cu->MemAlloc(&dlse, tokens * 128 * 4);
    if (!r) r = cu->MemAlloc(&flush, flush_bytes);
    if (!r) r = cu->MemcpyHtoD(dq, hq, n * eb);
    if (!r) r = cu->MemcpyHtoD(dk, hk, n * eb);
    if (!r) r = cu->MemcpyHtoD(dv, hv, n * eb);
    if (r) { char b[256]; fprintf(stderr, "flashgen bench: %s\n", fg_cuda_errstr(cu, r, b, sizeof b)); rc = 1; goto done; }
    if (csvpath) {
        csv = fopen(csvpath, "w");
        if (!csv) { perror(csvpath); rc = 1; goto done; }
        fprintf(csv, "impl,dtype,hdim,causal,seqlen,batch,heads,ms,tflops,max_abs_err,config,heuristic_tflops\n");
    }
    printf("GPU: %s (%s), %d SMs; each shape: %d ms of untimed launches (--heat), then the median of %d\n",
           ctx->dev_info.name, ctx->dev_info.arch, ctx->dev_info.sm_count, heat, iters);
    printf("%5s %6s %6s %5s %5s %9s %9s %10s  %s\n", "hdim", "causal", "seqlen", "batch", "heads", "ms", "TFLOP/s", "max|err|", "config");
    for (int hi = 0; hi < nh; ++hi)
        for (int causal = c0; causal <= c1; ++causal)
            for (int si = 0; si < ns; ++si) {
                const int d = hdims[hi], s = seqlens[si], batch = (int)(tokens / (size_t)s), heads = (int)(width / (size_t)d);
                fg_attention_desc desc;
                fg_attention_desc_init(&desc, dt, d, batch, heads, heads, s, s);
                desc.causal = causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
                desc.path = cfg.wgmma >= 0 ? (fg_kernel_path)fg_config_path(&cfg) : path;
                desc.block_m = cfg.block_m; desc.block_n = cfg.block_n;
                desc.warps = cfg.warps; desc.stages = cfg.stages;
                if (dt == FG_E4M3) desc.out_dtype = FG_BF16;
                void *q = (void *)(uintptr_t)dq, *k = (void *)(uintptr_t)dk, *v = (void *)(uintptr_t)dv, *o = (void *)(uintptr_t)dout;
                float *lse = (float *)(uintptr_t)dlse;
                if (fg_attention_forward(ctx, &desc, q, k, v, o, lse, NULL) != FG_OK) {
                    printf("%5d %6d %6d: error: %s\n", d, causal, s, fg_errmsg(ctx));
                    rc = 1;
                    continue;
                }
                r = cu->CtxSynchronize();
                if (!r) r = cu->MemcpyDtoH(ho, dout, (size_t)batch * s * heads * d * 2);
                if (r) { char b[256]; printf("%5d %6d %6d: kernel failed: %s\n", d, causal, s, fg_cuda_errstr(cu, r, b, sizeof b)); rc = 1; goto done; }
                /* check 64 sampled rows across the first and last (b, h) */
                fg_check chk;
                fg_check_init_desc(&chk, &desc);
                for (int t = 0; t < 64; ++t) {
                    const int b = t < 32 ? 0 : batch - 1, h = t < 32 ? 0 : heads - 1;
                    const int i = (int)((long)(t % 32) * (s - 1) / 31);
                    double lref;
                    fg_reference_row(&desc, NULL, hq, hk, hv, b, h, i, orow, &lref);
                    const uint16_t *g = ho + b * desc.o_strides[0] + h * desc.o_strides[1] + (int64_t)i * desc.o_strides[2];
                    fg_check_row(&chk, g, orow, d, 0, 0, 0);
                }
                const double max_err = chk.o.max_abs;
                if (!fg_check_done(&chk)) {
                    char m[512];
                    fg_check_describe(&chk, m, sizeof m);
                    printf("%5d %6d %6d %5d %5d   WRONG RESULT (%s): not timed\n", d, causal, s, batch, heads, m);
                    rc = 1;
                    continue;
                }
                double ms = time_forward(cu, ctx, &desc, q, k, v, o, lse, flush, flush_bytes, iters, heat);
                if (ms < 0) { rc = 1; goto done; }
                const double flops = fg_attention_flops(batch, heads, s, s, d, d, causal);
                const double tf = flops / (ms * 1e-3) / 1e12;
                double htf = 0;
                if (hctx) {
                    const double hms = time_forward(cu, hctx, &desc, q, k, v, o, lse, flush, flush_bytes, iters, heat);
                    if (hms < 0) { rc = 1; goto done; }
                    htf = flops / (hms * 1e-3) / 1e12;
                }
                /* the configuration actually launched */
                fg_variant var;
                fg_fwd_params p;
                char cfg[256] = "";
                if (fg_ctx_resolve(ctx, &desc, &var, &p, &e) == FG_OK)
                    snprintf(cfg, sizeof cfg, "%s bm=%d bn=%d w=%d st=%d qr=%d mb=%d", var.cfg.wgmma == 2 ? "tma" : var.cfg.wgmma == 1 ? "wgmma" : "mma",
                             var.cfg.block_m, var.cfg.block_n, var.cfg.warps, var.cfg.stages, var.cfg.q_in_regs,
                             var.cfg.min_blocks);
                fg_error_clear(&e);
                if (hctx) printf("%5d %6d %6d %5d %5d %9.3f %9.1f %10.3g  %-36s heuristic %7.1f  tuned/heuristic %.3f\n", d, causal,
                                 s, batch, heads, ms, tf, max_err, cfg, htf, tf / htf);
                else printf("%5d %6d %6d %5d %5d %9.3f %9.1f %10.3g  %s\n", d, causal, s, batch, heads, ms, tf, max_err, cfg);
                fflush(stdout);
                if (csv) fprintf(csv, "%s,%s,%d,%d,%d,%d,%d,%.5f,%.2f,%.4g,%s,%.2f\n", impl, fg_dtype_name(dt), d, causal, s, batch,
                                 heads, ms, tf, max_err, cfg, htf);
            }
done:
    if (csv) fclose(csv);
    if (dq) cu->MemFree(dq);
    if (dk) cu->MemFree(dk);
    if (dv) cu->MemFree(dv);
    if (dout) cu->MemFree(dout);
    if (dlse) cu->MemFree(dlse);
    if (flush) cu->MemFree(flush);
    free(hq); free(hk); free(hv); free(ho); free(hlse); free(orow);
    fg_context_destroy(ctx);
    fg_context_destroy(hctx);
    return rc;
}
