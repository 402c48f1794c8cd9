/* cli_tune.c: `flashgen tune` (the autotuner, with a progress bar) and
 * `flashgen cache` (inspect and move the SQLite cache file). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/store.h"
#include "runtime/internal.h"
#include "select/heuristic.h"
#include "select/tuned.h"
#include "tools/cli.h"

static const char *HELP_TUNE =
    "usage: flashgen tune SPEC [options]\n"
    "       flashgen tune --all [options]\n"
    "\n"
    "Times every block configuration the kernels expose on this GPU and stores\n"
    "the fastest per seqlen bucket in the cache file, where every later process\n"
    "on a GPU of the same model (same driver, NVRTC and templates) finds it.\n"
    "Candidates are pruned by the GPU's shared-memory limit and by ptxas\n"
    "(spills), compiled in parallel, timed with CUDA events on the BENCHMARK.md\n"
    "shapes (16384 tokens, heads = 2048 / hdim), and the winner is checked\n"
    "against the float64 reference before it is stored.  The built-in heuristic's\n"
    "choice stays unless another configuration is more than 1% faster.\n"
    "Ctrl-C stops after the current candidate; finished buckets stay stored.\n"
    "\n"
    "kind=bwd tunes the backward pass (fg_attention_backward) instead: on sm_90a\n"
    "the Hopper kernel's configuration and every mma.sync one, timed as the three\n"
    "backward kernels (TFLOP/s at 2.5x the forward's FLOPs), the winner's dq, dk,\n"
    "dv checked against the float64 backward reference on a small GQA shape, and\n"
    "stored under its own spec (\",kind=bwd\"); deterministic calls keep the heuristic.\n"
    "dtype=e4m3 tunes the FP8 forward (the TMA kernel's 64- and 128-row tiles),\n"
    "its winner checked at FP8's tolerance against the dequantised inputs.\n"
    "\n"
    "SPEC: hdim=N[,hdim_v=N][,dtype=bf16|fp16|e4m3[,out=fp16|bf16]][,causal=0|1][,kind=fwd|bwd]\n"
    "      [,wgmma=0|1|2 (restricts the path: mma, wgmma, tma; kind=bwd takes wgmma=0)]\n"
    "--all: hdim 64, 128, 256 x causal 0, 1 x --dtype (default both) x --kind.\n"
    "options:\n"
    "  --seqlens 512,1024,...    buckets to tune (512,1024,2048,4096,8192,16384)\n"
    "  --dtype bf16|fp16|both    with --all (both)\n"
    "  --kind fwd|bwd|both       with --all: forward, backward or both (fwd)\n"
    "  --threads N               compile threads (number of CPUs)\n"
    "  --reps N                  timed launches per candidate and bucket (10)\n"
    "  --top N                   candidates timed in every bucket (6)\n"
    "  --heat MS                 untimed launches before each bucket is timed, so every\n"
    "                            candidate meets the GPU at its sustained clock (500;\n"
    "                            0: none)\n"
    "  --cache FILE              cache file (default: $FLASHGEN_CACHE, else\n"
    "                            $XDG_CACHE_HOME/flashgen/cache.db or ~/.cache/...)\n"
    "exit status: 0 done, 1 error, 2 usage, 130 interrupted.\n";

static const char *HELP_CACHE =
    "usage: flashgen cache COMMAND [options]\n"
    "\n"
    "The SQLite cache file: compiled kernels and tuning results, keyed by GPU\n"
    "identity (name, compute capability, SM count, driver, NVRTC, templates).\n"
    "\n"
    "commands:\n"
    "  path              print the cache file's location\n"
    "  ls                per GPU identity: kernels, their size, tuning results\n"
    "  show [--gpu S] [--spec S] [--candidates]\n"
    "                    tuning results (pass fwd/bwd, config, time, speedup\n"
    "                    over the heuristic); --candidates adds every\n"
    "                    candidate's time; --spec kind=bwd: the backward's only\n"
    "  export FILE       write a consistent copy (to ship to machines of the same\n"
    "                    GPU model); FILE must not exist\n"
    "  import FILE [--trust-kernels]\n"
    "                    merge FILE in: a tuning result replaces ours only when\n"
    "                    it is faster and valid (time > 0, a configuration its\n"
    "                    variant accepts).  Imported kernels are not run until a\n"
    "                    compile here gives the same cubin (see docs/CACHE.md);\n"
    "                    --trust-kernels uses them as they are (files you built)\n"
    "  prune [--days N]  delete rows made by another NVRTC or template version\n"
    "                    (never usable by this build) and, with --days, kernels\n"
    "                    not used for N days; then compact the file\n"
    "  clear --yes       delete every row\n"
    "  check             PRAGMA integrity_check\n"
    "options:\n"
    "  --cache FILE      the cache file (default: $FLASHGEN_CACHE, else\n"
    "                    $XDG_CACHE_HOME/flashgen/cache.db or ~/.cache/flashgen/cache.db)\n";

/* ---- flashgen tune --------------------------------------------------------- */

static volatile int g_cancel;

static void on_sigint(int sig) {
    (void)sig;
    if (g_cancel) _exit(130);
    g_cancel = 1;
    static const char m[] = "\nflashgen tune: stopping after the current candidate (Ctrl-C again to quit now)\n";
    ssize_t w = write(2, m, sizeof m - 1);
    (void)w;
}

typedef struct bar {
    int spec_i, spec_n;
    double t_start;           /* whole run */
    double specs_done_s;      /* time of finished specs */
    int tty;
    int last_pct;
    char label[96];
} bar;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void fmt_time(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 359999) { snprintf(buf, n, "--:--"); return; }
    int x = (int)(s + 0.5);
    if (x >= 3600) snprintf(buf, n, "%d:%02d:%02d", x / 3600, x / 60 % 60, x % 60);
    else snprintf(buf, n, "%d:%02d", x / 60, x % 60);
}

/* "64x128 wgmma s1", "128x128 tma w12 s2", "64x64 mma w4 s2" for a config text */
static void short_cfg(const char *text, char *buf, size_t n) {
    fg_config c;
    if (!text || fg_config_parse(text, &c, NULL) != FG_OK) { snprintf(buf, n, "-"); return; }
    if (c.wgmma == 2)
        snprintf(buf, n, "%dx%d tma w%d s%d%s", c.block_m, c.block_n, c.warps, c.stages,
                 c.ws_off & FG_WS_NO_PERSISTENT ? " grid" : "");
    else if (c.wgmma == 1) snprintf(buf, n, "%dx%d wgmma s%d%s", c.block_m, c.block_n, c.stages, c.min_blocks > 1 ? " mb2" : "");
    else snprintf(buf, n, "%dx%d mma w%d s%d%s%s", c.block_m, c.block_n, c.warps, c.stages, c.q_in_regs ? " qreg" : "",
                  c.min_blocks > 1 ? " mb2" : "");
}

static void on_progress(const fg_tune_progress *p, void *ud) {
    bar *b = ud;
    char best[64], eta[16], all[16];
    short_cfg(p->best_config, best, sizeof best);
    fmt_time(p->eta_s, eta, sizeof eta);
    /* the whole run: finished specs' mean time times those left, plus this one's ETA */
    const double per_spec = b->spec_i > 0 ? b->specs_done_s / b->spec_i : p->elapsed_s + p->eta_s;
    fmt_time(p->eta_s + per_spec * (b->spec_n - b->spec_i - 1), all, sizeof all);
    if (!strcmp(p->phase, "bucket done")) {
        char cfg[64];
        short_cfg(p->config, cfg, sizeof cfg);
        if (b->tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "  %-10s %s  %-26s %7.1f TFLOP/s  heuristic %7.1f  (%.2fx)%s\n", p->bucket, b->label, cfg,
                p->best_tflops, p->heuristic_tflops, p->heuristic_tflops > 0 ? p->best_tflops / p->heuristic_tflops : 0,
                p->kept_existing ? "  [the cache already had a faster result: kept]" : "");
        return;
    }
    const int width = 24, fill = p->total ? p->done * width / p->total : 0;
    char bars[32];
    for (int i = 0; i < width; ++i) bars[i] = i < fill ? '#' : '-';
    bars[width] = 0;
    const int pct = p->total ? p->done * 100 / p->total : 0;
    if (b->tty) {
        fprintf(stderr, "\r\033[K[%d/%d] %s [%s] %d/%d %-7s %s  ETA %s (all %s)  best %s %.1f TFLOP/s", b->spec_i + 1,
                b->spec_n, b->label, bars, p->done, p->total, p->phase, p->bucket && *p->bucket ? p->bucket : "", eta,
                all, best, p->best_tflops);
        fflush(stderr);
    } else if (pct / 10 != b->last_pct / 10 || p->done == 1) {
        fprintf(stderr, "[%d/%d] %s %3d%% %d/%d %s ETA %s (all %s) best %s %.1f TFLOP/s\n", b->spec_i + 1, b->spec_n,
                b->label, pct, p->done, p->total, p->phase, eta, all, best, p->best_tflops);
    }
    b->last_pct = pct;
}

int fg_cmd_tune(int argc, char **argv) {
    if (fg_cli_flag(argc, argv, "--help") || fg_cli_flag(argc, argv, "-h")) { fputs(HELP_TUNE, stdout); return 0; }
    const int all = fg_cli_flag(argc, argv, "--all");
    const char *spec = fg_cli_positional(argc, argv);
    if (all == !!spec) {
        fprintf(stderr, "flashgen tune: give either SPEC or --all\n\n%s", HELP_TUNE);
        return 2;
    }
    int seqlens[32], nsl = 6;
    const int def[] = {512, 1024, 2048, 4096, 8192, 16384};
    memcpy(seqlens, def, sizeof def);
    const char *sl = fg_cli_opt(argc, argv, "--seqlens");
    if (sl && (nsl = fg_cli_parse_list(sl, seqlens, 32)) <= 0) {
        fprintf(stderr, "flashgen tune: --seqlens expects positive integers separated by commas, got '%s'\n", sl);
        return 2;
    }
    fg_tune_options opt = {.struct_size = sizeof opt};
    opt.seqlens = seqlens;
    opt.num_seqlens = nsl;
    opt.threads = fg_cli_int(argc, argv, "--threads", 0);
    opt.reps = fg_cli_int(argc, argv, "--reps", 0);
    opt.top_k = fg_cli_int(argc, argv, "--top", 0);
    const int heat = fg_cli_int(argc, argv, "--heat", 500);
    opt.heat_ms = heat > 0 ? heat : -1;
    if (opt.threads < 0 || opt.reps < 0 || opt.reps > 64 || opt.top_k < 0 || heat < 0 || heat > 60000) {
        fprintf(stderr, "flashgen tune: --threads, --reps (<= 64) and --top must be positive, --heat 0..60000\n");
        return 2;
    }
    opt.cancel = &g_cancel;
    opt.progress = on_progress;

    /* the specs */
    fg_attention_desc specs[32];
    char labels[32][96];
    int backward[32] = {0};
    int ns = 0;
    if (all) {
        const char *dt = fg_cli_opt(argc, argv, "--dtype");
        if (!dt) dt = "both";
        if (strcmp(dt, "both") && strcmp(dt, "bf16") && strcmp(dt, "fp16")) {
            fprintf(stderr, "flashgen tune: --dtype must be bf16, fp16 or both\n");
            return 2;
        }
        const char *kind = fg_cli_opt(argc, argv, "--kind");
        if (!kind) kind = "fwd";
        if (strcmp(kind, "both") && strcmp(kind, "fwd") && strcmp(kind, "bwd")) {
            fprintf(stderr, "flashgen tune: --kind must be fwd, bwd or both\n");
            return 2;
        }
        const int hd[] = {64, 128, 256};
        for (int k = 0; k < 2; ++k) {
            if (strcmp(kind, "both") && strcmp(kind, k ? "bwd" : "fwd")) continue;
            for (int t = 0; t < 2; ++t) {
                const fg_dtype d = t ? FG_FP16 : FG_BF16;
                if (strcmp(dt, "both") && strcmp(dt, fg_dtype_name(d))) continue;
                for (int h = 0; h < 3; ++h)
                    for (int c = 0; c < 2; ++c) {
                        fg_attention_desc_init(&specs[ns], d, hd[h], 1, 1, 1, 1, 1);
                        specs[ns].causal = c ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
                        backward[ns] = k;
                        snprintf(labels[ns], sizeof labels[ns], "hdim=%d %s%s%s", hd[h], fg_dtype_name(d),
                                 c ? " causal" : "", k ? " bwd" : "");
                        ++ns;
                    }
            }
        }
    } else {
        fg_variant v;
        fg_causal cz;
        fg_error e = {0};
        if (fg_spec_parse(spec, &v, &cz, &e) != FG_OK) {
            fprintf(stderr, "flashgen tune: %s\n", e.msg);
            fg_error_clear(&e);
            return 2;
        }
        fg_config blocks = v.cfg;
        blocks.wgmma = -1; /* wgmma=0|1|2 restricts the path; every other configuration field is the tuner's */
        if (v.spec.sparse || fg_config_is_explicit(&blocks) || v.spec.infer || v.spec.mods) {
            fprintf(stderr, "flashgen tune: SPEC takes hdim, hdim_v, dtype, causal, kind=fwd|bwd and wgmma only (the tuner "
                            "picks the blocks; block-sparse, inference and score-modification calls use the heuristic)\n");
            return 2;
        }
        if (fg_cli_opt(argc, argv, "--kind")) {
            fprintf(stderr, "flashgen tune: --kind goes with --all; a SPEC names its pass with kind=fwd|bwd\n");
            return 2;
        }
        backward[0] = v.spec.kind == FG_KIND_BWD;
        fg_attention_desc_init(&specs[0], v.spec.dtype, v.spec.head_dim, 1, 1, 1, 1, 1);
        fg_attention_desc_set_head_dim_v(&specs[0], fg_spec_head_dim_v(&v.spec));
        specs[0].causal = cz;
        specs[0].path = (fg_kernel_path)fg_config_path(&v.cfg);
        char dv[32];
        fg_spec_head_dim_v_item(&v.spec, dv, sizeof dv);
        snprintf(labels[0], sizeof labels[0], "hdim=%d%s %s%s%s", v.spec.head_dim, dv, fg_dtype_name(v.spec.dtype),
                 cz ? " causal" : "", backward[0] ? " bwd" : "");
        ns = 1;
    }

    fg_context *ctx;
    if (fg_context_create(&ctx) != FG_OK) { fprintf(stderr, "flashgen tune: out of memory\n"); return 1; }
    const char *cache = fg_cli_opt(argc, argv, "--cache");
    if (cache) fg_context_set_cache(ctx, cache);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    bar b;
    memset(&b, 0, sizeof b);
    b.spec_n = ns;
    b.tty = isatty(2);
    b.t_start = now_s();
    opt.ud = &b;
    int rc = 0;
    for (int i = 0; i < ns && !g_cancel; ++i) {
        b.spec_i = i;
        b.last_pct = -10;
        snprintf(b.label, sizeof b.label, "%.90s", labels[i]);
        const double t0 = now_s();
        fg_status st = backward[i] ? fg_tune_backward(ctx, &specs[i], &opt) : fg_tune(ctx, &specs[i], &opt);
        if (b.tty) fprintf(stderr, "\r\033[K");
        b.specs_done_s += now_s() - t0;
        if (st == FG_ERR_CANCELLED) { rc = 130; break; }
        if (st != FG_OK) {
            fprintf(stderr, "flashgen tune: %s: %s: %s\n", labels[i], fg_status_name(st), fg_errmsg(ctx));
            rc = 1;
            if (st == FG_ERR_NO_DRIVER || st == FG_ERR_NO_DEVICE || st == FG_ERR_NVRTC) break;
        }
    }
    fg_context_stats cs = {.struct_size = sizeof cs};
    fg_context_get_stats(ctx, &cs);
    char wall[16];
    fmt_time(now_s() - b.t_start, wall, sizeof wall);
    printf("tuned %d of %d spec(s) in %s (%.1f s); %ld kernels compiled, %ld loaded from the cache\n",
           rc == 130 ? b.spec_i : ns - (rc != 0), ns, wall, now_s() - b.t_start, cs.kernels_compiled, cs.kernels_from_cache);
    if (*cs.cache_path) printf("results in %s  (flashgen cache show%s%s)\n", cs.cache_path, cache ? " --cache " : "", cache ? cache : "");
    if (rc == 130) printf("interrupted: finished buckets are stored; run the same command again to finish\n");
    fg_context_destroy(ctx);
    return rc;
}

/* ---- flashgen cache -------------------------------------------------------- */

static void print_tuning(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud) {
    const char **filt = ud;
    if (filt[0] && !strstr(gpu, filt[0])) return;
    if (filt[1] && !strstr(spec, filt[1])) return;
    static char last_gpu[256];
    if (strcmp(last_gpu, gpu)) {
        printf("%s%s\n", *last_gpu ? "\n" : "", gpu);
        printf("  %-4s %-53s %-12s %-30s %9s %9s %7s\n", "pass", "spec", "bucket", "config", "ms", "heur ms", "speedup");
        snprintf(last_gpu, sizeof last_gpu, "%s", gpu);
    }
    char cfg[64];
    short_cfg(t->config, cfg, sizeof cfg);
    /* the backward's spec texts carry ",kind=bwd" (select/tuned.c) */
    printf("  %-4s %-53s %-12s %-30s %9.4f %9.4f %6.2fx\n", strstr(spec, ",kind=bwd") ? "bwd" : "fwd", spec, bucket, cfg,
           t->ms, t->heuristic_ms, t->heuristic_ms > 0 ? t->heuristic_ms / t->ms : NAN);
}

typedef struct show_ud { fg_store *s; const char *filt[2]; int candidates; } show_ud;
static void print_cand(const fg_tune_row *r, void *ud) {
    (void)ud;
    char cfg[64];
    short_cfg(r->config, cfg, sizeof cfg);
    if (r->ms > 0) printf("      %-30s %9.4f ms\n", cfg, r->ms);
    else printf("      %-30s %9s    %s\n", cfg, "-", r->note);
}
static void print_tuning_c(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud) {
    show_ud *u = ud;
    print_tuning(gpu, spec, bucket, t, u->filt);
    if (!u->candidates || (u->filt[0] && !strstr(gpu, u->filt[0])) || (u->filt[1] && !strstr(spec, u->filt[1]))) return;
    fg_error e = {0};
    fg_store_each_candidate(u->s, gpu, spec, bucket, print_cand, NULL, &e);
    fg_error_clear(&e);
}

/* import's check of a tuning row: config is one the variant of spec (the
 * fg_tuning_spec_text of tune.c) accepts on some device; the device's own
 * limits are checked again when the row is used. */
static int import_config_ok(const char *spec, const char *config, void *ud) {
    (void)ud;
    char base[256] = "", *save = NULL, copy[256];
    int path = 0, bq = 0, bk = 0;
    snprintf(copy, sizeof copy, "%s", spec);
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        if (!strncmp(kv, "path=", 5)) path = !strcmp(kv + 5, "mma") ? 1 : !strcmp(kv + 5, "wgmma") ? 2 : !strcmp(kv + 5, "tma") ? 3 : 0;
        else if (!strncmp(kv, "layout=", 7)) { if (sscanf(kv + 7, "%dx%d", &bq, &bk) != 2) return 0; }
        else if (strncmp(kv, "mask=", 5)) snprintf(base + strlen(base), sizeof base - strlen(base), "%s%s", *base ? "," : "", kv);
    }
    fg_variant v;
    fg_causal cz;
    fg_config c;
    fg_error e = {0};
    /* kind=bwd stays in base: the backward's configurations are checked by its own rules */
    int ok = fg_spec_parse(base, &v, &cz, &e) == FG_OK && fg_config_parse(config, &c, &e) == FG_OK &&
             fg_tuned_config_fits(&v.spec, &c, path, 1 << 30, bq, bk, 2, &e);
    fg_error_clear(&e);
    return ok;
}

/* "|nvrtc=13.0|tpl=<hash>": the part of an identity this build determines. */
static int build_suffix(char *buf, size_t n) {
    fg_error e = {0};
    fg_nvrtc_info nv;
    fg_sources src;
    if (fg_nvrtc_load(&nv, &e) != FG_OK || fg_sources_load(&src, &e) != FG_OK) {
        fprintf(stderr, "flashgen cache prune: cannot tell this build's NVRTC and template versions: %s\n", e.msg);
        fg_error_clear(&e);
        return 0;
    }
    fg_store_build_suffix(nv.major, nv.minor, src.hash_hex, buf, n);
    fg_sources_free(&src);
    return 1;
}

int fg_cmd_cache(int argc, char **argv) {
    /* argv[0] = "cache", argv[1] = subcommand */
    if (argc < 2 || fg_cli_flag(argc, argv, "--help") || fg_cli_flag(argc, argv, "-h")) {
        fputs(HELP_CACHE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const char *vals[] = {"--cache", "--gpu", "--spec", "--days", NULL};
    static const char *flags[] = {"--candidates", "--yes", "--trust-kernels", NULL};
    const char *pos = NULL;
    for (int i = 2; i < argc; ++i) {
        int known = 0;
        for (int k = 0; vals[k]; ++k)
            if (!strcmp(argv[i], vals[k])) {
                if (i + 1 >= argc) { fprintf(stderr, "flashgen cache %s: %s needs a value\n", sub, argv[i]); return 2; }
                ++i;
                known = 1;
            }
        for (int k = 0; flags[k]; ++k) known |= !strcmp(argv[i], flags[k]);
        if (known) continue;
        if (argv[i][0] == '-' || pos) {
            fprintf(stderr, "flashgen cache %s: unexpected '%s' (see flashgen cache --help)\n", sub, argv[i]);
            return 2;
        }
        pos = argv[i];
    }
    char path[4096];
    const char *opt = fg_cli_opt(argc, argv, "--cache");
    if (opt) snprintf(path, sizeof path, "%s", opt);
    else fg_store_default_path(path, sizeof path);
    if (!*path) { fprintf(stderr, "flashgen cache: no cache location (set HOME, XDG_CACHE_HOME or FLASHGEN_CACHE, or use --cache)\n"); return 2; }
    const int wants_file = !strcmp(sub, "export") || !strcmp(sub, "import");
    if (wants_file != !!pos) {
        fprintf(stderr, "flashgen cache %s: %s\n", sub, wants_file ? "needs FILE" : "takes no FILE");
        return 2;
    }
    if (!strcmp(sub, "path")) { printf("%s\n", path); return 0; }

    fg_error e = {0};
    fg_store *s = NULL;
    fg_status st;
    if (!strcmp(sub, "import")) st = fg_store_open_strict(path, FG_STORE_CREATE, &s, &e); /* no memory fallback */
    else if (!strcmp(sub, "ls") || !strcmp(sub, "show") || !strcmp(sub, "export") || !strcmp(sub, "check") ||
             !strcmp(sub, "prune") || !strcmp(sub, "clear"))
        st = fg_store_open_strict(path, !strcmp(sub, "prune") || !strcmp(sub, "clear") ? FG_STORE_WRITE : FG_STORE_READ_ONLY,
                                  &s, &e);
    else {
        fprintf(stderr, "flashgen cache: unknown command '%s'\n\n%s", sub, HELP_CACHE);
        return 2;
    }
    if (st != FG_OK) {
        fprintf(stderr, "flashgen cache %s: %s\n", sub, e.msg);
        fg_error_clear(&e);
        return 1;
    }
    int rc = 0;
    if (!strcmp(sub, "ls")) {
        fg_store_summary sum[64];
        int n = 0;
        st = fg_store_summarise(s, sum, 64, &n, &e);
        struct stat sb;
        printf("%s (%.1f MiB, schema %d)\n", path, stat(path, &sb) ? 0.0 : sb.st_size / 1048576.0, FG_STORE_SCHEMA_VERSION);
        if (st == FG_OK && n == 0) printf("  empty\n");
        for (int i = 0; st == FG_OK && i < n; ++i)
            printf("  %s\n    %d kernels (%.1f MiB of cubins), %d tuning results\n", sum[i].gpu, sum[i].kernels,
                   sum[i].cubin_bytes / 1048576.0, sum[i].tunings);
    } else if (!strcmp(sub, "show")) {
        show_ud u = {s, {fg_cli_opt(argc, argv, "--gpu"), fg_cli_opt(argc, argv, "--spec")}, fg_cli_flag(argc, argv, "--candidates")};
        st = fg_store_each_tuning(s, NULL, print_tuning_c, &u, &e);
    } else if (!strcmp(sub, "export")) {
        st = fg_store_export(s, pos, &e);
        if (st == FG_OK) printf("exported %s to %s\n", path, pos);
    } else if (!strcmp(sub, "import")) {
        fg_import_stats is;
        const fg_import_opts o = {fg_cli_flag(argc, argv, "--trust-kernels"), import_config_ok, NULL};
        st = fg_store_import(s, pos, &o, &is, &e);
        if (st == FG_OK)
            printf("imported %s into %s: kernels %d added (%s), %d already present; tuning results %d added, %d faster "
                   "(replaced ours), %d not faster (ours kept), %d rejected (time or configuration not valid)\n",
                   pos, fg_store_path(s), is.kernels_added,
                   o.trust_kernels ? "trusted: used as they are"
                                   : "each used once a compile here gives the same cubin",
                   is.kernels_present, is.tunings_added, is.tunings_improved, is.tunings_kept, is.tunings_rejected);
    } else if (!strcmp(sub, "prune")) {
        char suffix[128];
        const int days = fg_cli_int(argc, argv, "--days", -1);
        if (!build_suffix(suffix, sizeof suffix)) rc = 1;
        int deleted = 0;
        if (!rc) st = fg_store_prune(s, suffix, days < 0 ? -1 : (int64_t)days * 86400, &deleted, &e);
        if (!rc && st == FG_OK) printf("pruned %d rows (kept: identity ending in %s%s)\n", deleted, suffix,
                                       days >= 0 ? ", used within --days" : "");
    } else if (!strcmp(sub, "clear")) {
        if (!fg_cli_flag(argc, argv, "--yes")) {
            fprintf(stderr, "flashgen cache clear deletes every kernel and tuning result in %s; add --yes to do it\n", path);
            rc = 2;
        } else if ((st = fg_store_clear(s, &e)) == FG_OK) {
            printf("cleared %s\n", path);
        }
    } else if (!strcmp(sub, "check")) {
        st = fg_store_check(s, &e);
        if (st == FG_OK) printf("%s: ok\n", path);
    }
    if (st != FG_OK) {
        fprintf(stderr, "flashgen cache %s: %s\n", sub, e.msg);
        fg_error_clear(&e);
        rc = 1;
    }
    fg_store_close(s);
    return rc;
}

const char *fg_cli_help_tune(void) { return HELP_TUNE; }
const char *fg_cli_help_cache(void) { return HELP_CACHE; }
