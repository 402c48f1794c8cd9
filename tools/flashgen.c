/* flashgen: the command-line tool.  info | gen | compile | run | bench */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "select/bwd_config.h"
#include "select/heuristic.h"
#include "gen/render.h"
#include "gen/compile.h"
#include "runtime/cuda_api.h"
#include "tools/cli.h"

static const char *USAGE =
    "usage: flashgen COMMAND [options]\n"
    "\n"
    "JIT-specialised FlashAttention: Lua templates -> CUDA C++ -> NVRTC -> launch.\n"
    "\n"
    "commands:\n"
    "  info                 driver, NVRTC, GPU name, SM count, shared-memory limits\n"
    "  gen SPEC             print the generated CUDA source of one variant\n"
    "  compile SPEC         compile one variant with NVRTC (no GPU needed) and print\n"
    "                       registers, shared memory and spills read from ptxas\n"
    "  run [SPEC]           random inputs -> kernel -> check against the float64 CPU\n"
    "                       reference -> error and TFLOP/s (the main job)\n"
    "  bench                the BENCHMARK.md grid: TFLOP/s per head dim x causal x seqlen\n"
    "  tune SPEC | --all    autotune block sizes on this GPU; winners go to the cache file\n"
    "  cache ls|show|export|import|prune|clear|check|path\n"
    "                       the SQLite cache of compiled kernels and tuning results\n"
    "  explore PATTERN      a block-sparse pattern (built-in, expression or .lua file):\n"
    "                       density, thumbnail, PNG; with a GPU checked and timed\n"
    "                       against dense (docs/PATTERNS.md)\n"
    "  help COMMAND         options of one command (also: COMMAND --help)\n"
    "\n" FG_SPEC_HELP
    "\n"
    "environment:\n"
    "  FLASHGEN_TEMPLATE_DIR  read templates/*.lua, *.cuh from this directory instead of\n"
    "                         the copies embedded in the binary (development; files it\n"
    "                         lacks stay embedded, a directory with none is an error)\n"
    "  FLASHGEN_NVRTC         path of libnvrtc.so to load\n"
    "  FLASHGEN_SITE_PACKAGES site-packages folders (':'-separated) to search for the\n"
    "                         nvidia-cuda-nvrtc / nvidia-cuda-runtime pip packages\n"
    "  FLASHGEN_LIBCUDA       path of libcuda.so.1 to load\n"
    "  FLASHGEN_CACHE         the cache file (default $XDG_CACHE_HOME/flashgen/cache.db,\n"
    "                         else ~/.cache/flashgen/cache.db); \"off\": memory only\n"
    "  FLASHGEN_TUNED=0       ignore tuning results (use the built-in heuristic)\n";

static const char *HELP_INFO = "usage: flashgen info\n\nPrints the NVRTC library and CUDA header directory in use (and where they\nwere found: environment, pip package, dynamic linker, toolkit), the driver\nand NVRTC versions and, per GPU, its name, compute\ncapability, SM count and shared-memory limits.  Says so plainly when there\nis no driver or no GPU (exit status 0: that is information, not an error).\n";
static const char *HELP_GEN = "usage: flashgen gen SPEC [--arch sm_90a]\n\nRenders the Lua template for SPEC and prints the CUDA C++ source.  A SPEC\nwithout configuration fields gets the configuration the runtime would\nchoose: the first candidate of the built-in heuristic for --arch's\nshared-memory limit that NVRTC compiles without spills.  Any configuration\nfield (block_m, block_n, warps, stages, q_in_regs, min_blocks, wgmma=1)\nmakes it explicit: the others take their defaults.  --arch: sm_XY or\nsm_XYa (default sm_90a).\n\n" FG_SPEC_HELP;
static const char *HELP_COMPILE = "usage: flashgen compile SPEC [--arch sm_90a] [--cubin FILE] [--log]\n\nRenders and compiles SPEC with NVRTC for --arch (default sm_90a; no GPU\nneeded) and prints registers, spills, stack and shared memory from ptxas,\nand the compile time.  --cubin writes the cubin; --log prints the NVRTC log.\nExit status 1 if the kernel spills to local memory.\n\n" FG_SPEC_HELP;

int fg_cli_arch_smem(const char *arch) {
    if (!strncmp(arch, "sm_90", 5) || !strncmp(arch, "sm_100", 6) || !strncmp(arch, "sm_103", 6)) return 232448;
    if (!strcmp(arch, "sm_80") || !strcmp(arch, "sm_87")) return 166912;
    return 101376; /* sm_86, sm_89, sm_120: 99 KiB */
}

static int is_value_opt(const char *a) {
    static const char *vals[] = {"--arch", "--cubin", "--batch", "--heads", "--heads-q", "--heads-kv", "--seqlen",
                                 "--seqlen-q", "--seqlen-k", "--layout", "--seed", "--iters", "--hdims", "--seqlens",
                                 "--dtype", "--csv", "--causal", "--block", "--density", "--path", "--threads", "--reps",
                                 "--top", "--cache", "--param", "--png", "--block-k", "--hdim", "--head-dim-v", "--kind", "--heat", "--config", NULL};
    for (int i = 0; vals[i]; ++i)
        if (!strcmp(a, vals[i])) return 1;
    return 0;
}

/* Every option must be known, and a value option must have its value; a
 * mistyped option is an error, never silently ignored. */
static int check_options(const char *cmd, int argc, char **argv) {
    static const char *flags[] = {"--help", "-h", "--log", "--require-gpu", "--all", "--compare-heuristic",
                                  "--sweep", "--no-gpu", "--verify", "--list", NULL};
    int positional = 0;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (++positional > 1) {
                fprintf(stderr, "flashgen %s: unexpected argument '%s'\n", cmd, a);
                return 0;
            }
            continue;
        }
        if (is_value_opt(a)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "flashgen %s: %s needs a value\n", cmd, a);
                return 0;
            }
            ++i;
            continue;
        }
        int known = 0;
        for (int k = 0; flags[k]; ++k) known |= !strcmp(a, flags[k]);
        if (!known) {
            fprintf(stderr, "flashgen %s: unknown option '%s'%s (see flashgen %s --help)\n", cmd, a,
                    strchr(a, '=') ? "; write the value after a space" : "", cmd);
            return 0;
        }
    }
    return 1;
}

const char *fg_cli_opt(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; ++i)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return NULL;
}
int fg_cli_flag(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; ++i)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}
int fg_cli_int(int argc, char **argv, const char *name, int dflt) {
    const char *v = fg_cli_opt(argc, argv, name);
    if (!v) return dflt;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < -1000000000L || x > 1000000000L) {
        fprintf(stderr, "flashgen: %s expects an integer, got '%s'\n", name, v);
        exit(2);
    }
    return (int)x;
}
const char *fg_cli_positional(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        if (argv[i][0] == '-') { if (is_value_opt(argv[i])) ++i; continue; }
        return argv[i];
    }
    return NULL;
}

static int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fg_error e = {0};
    fg_nvrtc_info nv;
    if (fg_nvrtc_load(&nv, &e) == FG_OK) {
        printf("NVRTC:   %d.%d (%s, from %s)\n", nv.major, nv.minor, nv.path, nv.how);
        if (nv.include_dir[0]) printf("headers: %s (from %s)\n", nv.include_dir, nv.include_how);
        else printf("headers: no CUDA header directory found (the templates include none)\n");
    } else {
        printf("NVRTC:   not available: %s\n", e.msg);
        fg_error_clear(&e);
    }
    const fg_cuda *cu;
    if (fg_cuda_get(&cu, &e) != FG_OK) {
        printf("GPU:     none: %s\n", e.msg);
        fg_error_clear(&e);
        return 0;
    }
    int ver = 0, n = 0;
    cu->DriverGetVersion(&ver);
    cu->DeviceGetCount(&n);
    printf("driver:  CUDA %d.%d\n", ver / 1000, ver % 1000 / 10);
    for (int i = 0; i < n; ++i) {
        CUdevice dev;
        fg_device_info d;
        if (cu->DeviceGet(&dev, i) != CUDA_SUCCESS || fg_device_query(cu, dev, &d, &e) != FG_OK) {
            printf("GPU %d:   cannot query: %s\n", i, e.msg ? e.msg : "cuDeviceGet failed");
            fg_error_clear(&e);
            continue;
        }
        printf("GPU %d:   %s, compute capability %d.%d (%s), %d SMs, %.1f GiB\n", i, d.name, d.cc_major, d.cc_minor,
               d.arch, d.sm_count, d.total_mem / 1073741824.0);
        printf("         shared memory: %d KiB per block (opt-in), %d KiB per SM; %d registers per SM\n",
               d.smem_per_block_optin / 1024, d.smem_per_sm / 1024, d.regs_per_sm);
    }
    return 0;
}

/* fg_try_compile over NVRTC for the arch in ud (used to pick a configuration) */
typedef struct pick_ud { fg_sources *src; const char *arch; } pick_ud;
static fg_status pick_compile(void *ud_, const fg_spec *s, const fg_config *c, fg_kernel_stats *st, fg_error *e) {
    pick_ud *ud = ud_;
    fg_variant v = {*s, *c};
    char key[512];
    fg_variant_key(&v, ud->src->hash_hex, 0, 0, ud->arch, key, sizeof key);
    fg_rendered r;
    fg_status rc = fg_render_forward(ud->src, &v, key, &r, e);
    if (rc != FG_OK) return rc;
    fg_cubin cb;
    rc = fg_compile_cubin(ud->src, r.source, ud->arch, key, &cb, e);
    fg_rendered_free(&r);
    if (rc == FG_OK) { *st = cb.stats; fg_cubin_free(&cb); }
    return rc;
}

/* Parse SPEC and complete its block configuration for arch the way the
 * runtime does (an explicit configuration is completed with defaults; an
 * automatic one is the first heuristic candidate that compiles without
 * spills, or the first candidate when NVRTC is missing), then render. */
static int render_spec(const char *specstr, const char *arch, fg_sources *src, fg_variant *v, fg_rendered *r,
                       char *key, size_t keyn) {
    fg_error e = {0};
    fg_causal cm;
    if (fg_arch_check(arch, &e) != FG_OK || fg_spec_parse(specstr, v, &cm, &e) != FG_OK ||
        fg_sources_load(src, &e) != FG_OK) {
        fprintf(stderr, "flashgen: %s\n", e.msg);
        fg_error_clear(&e);
        return 2;
    }
    fg_nvrtc_info nv = {0};
    const int have_nvrtc = fg_nvrtc_load(&nv, &e) == FG_OK;
    fg_error_clear(&e);
    const int smem = fg_cli_arch_smem(arch), blk = v->spec.sparse ? 128 : 0;
    /* the runtime's rule (runtime/plan.c): any configuration field makes
     * the configuration explicit, completed with defaults; otherwise the
     * heuristic picks among every family the arch has, or only the one
     * wgmma=0|1|2 names */
    fg_status st;
    if ((st = fg_head_dims_check(v->spec.head_dim, fg_spec_head_dim_v(&v->spec), &e)) != FG_OK) {
    } else if (v->spec.kind == FG_KIND_BWD) { /* the backward's own configurations (select/bwd_config.c) */
        pick_ud ud = {src, arch};
        fg_config c[8];
        const int hopper = fg_arch_has_wgmma(arch);
        st = v->cfg.wgmma >= 1 && !hopper ? fg_fail(&e, FG_ERR_UNSUPPORTED, "wgmma=%d needs --arch sm_90a (got %s)", v->cfg.wgmma, arch)
             : fg_config_is_explicit(&v->cfg) || v->cfg.wgmma >= 1 ? fg_bwd_config_complete(&v->spec, &v->cfg, smem, blk, blk, &e)
             /* the runtime's AUTO on contiguous tensors */
             : v->cfg.wgmma < 0 && fg_bwd_auto_config(&v->spec, hopper, 0, smem, &v->cfg) ? (fg_bwd_set_loads(&v->spec, &v->cfg, 1), FG_OK)
             : have_nvrtc                    ? fg_bwd_pick_config(&v->spec, smem, blk, blk, pick_compile, &ud, &v->cfg, &e)
             : fg_bwd_candidates(&v->spec, smem, blk, blk, c, 8) > 0 ? (v->cfg = c[0], FG_OK)
                                                           : fg_fail(&e, FG_ERR_UNSUPPORTED, "no backward configuration fits %s", arch);
    } else if (v->cfg.wgmma >= 1 && !fg_arch_has_wgmma(arch)) {
        st = fg_fail(&e, FG_ERR_UNSUPPORTED, "wgmma=%d needs --arch sm_90a (got %s)", v->cfg.wgmma, arch);
    } else if (fg_config_is_explicit(&v->cfg)) {
        st = fg_config_complete(&v->spec, &v->cfg, smem, &e);
    } else if (have_nvrtc) {
        pick_ud ud = {src, arch};
        st = fg_heuristic_config(&v->spec, smem, blk, blk, fg_arch_has_wgmma(arch) ? 2 : 0, fg_config_path(&v->cfg),
                                 pick_compile, &ud, &v->cfg, &e);
    } else {
        fg_config c[16];
        st = fg_heuristic_candidates(&v->spec, smem, blk, blk, fg_heuristic_families(fg_arch_has_wgmma(arch) ? 2 : 0, fg_config_path(&v->cfg)), c, 16) > 0
                 ? FG_OK
                 : fg_fail(&e, FG_ERR_UNSUPPORTED, "no block configuration fits %s", arch);
        if (st == FG_OK) v->cfg = c[0];
    }
    if (st != FG_OK) {
        fprintf(stderr, "flashgen: %s\n", e.msg);
        fg_error_clear(&e);
        fg_sources_free(src);
        return st == FG_ERR_UNSUPPORTED || st == FG_ERR_INVALID_ARGUMENT ? 2 : 1;
    }
    fg_variant_key(v, src->hash_hex, nv.major, nv.minor, arch, key, keyn);
    if (fg_render_forward(src, v, key, r, &e) != FG_OK) {
        fprintf(stderr, "flashgen: %s\n", e.msg);
        fg_error_clear(&e);
        fg_sources_free(src);
        return 1;
    }
    return 0;
}

static int cmd_gen(int argc, char **argv) {
    const char *spec = fg_cli_positional(argc, argv);
    if (!spec) { fputs(HELP_GEN, stderr); return 2; }
    const char *arch = fg_cli_opt(argc, argv, "--arch");
    fg_sources src;
    fg_variant v;
    fg_rendered r;
    char key[512];
    int rc = render_spec(spec, arch ? arch : "sm_90a", &src, &v, &r, key, sizeof key);
    if (rc) return rc;
    fputs(r.source, stdout);
    fg_rendered_free(&r);
    fg_sources_free(&src);
    return 0;
}

int fg_cli_compile_main(int argc, char **argv) {
    const char *spec = fg_cli_positional(argc, argv);
    if (!spec) { fputs(HELP_COMPILE, stderr); return 2; }
    const char *arch = fg_cli_opt(argc, argv, "--arch");
    if (!arch) arch = "sm_90a";
    fg_sources src;
    fg_variant v;
    fg_rendered r;
    char key[512];
    int rc = render_spec(spec, arch, &src, &v, &r, key, sizeof key);
    if (rc) return rc;
    fg_error e = {0};
    fg_cubin cb;
    if (fg_compile_cubin(&src, r.source, arch, key, &cb, &e) != FG_OK) {
        fprintf(stderr, "flashgen: %s\n", e.msg);
        fg_error_clear(&e);
        fg_rendered_free(&r);
        fg_sources_free(&src);
        return 1;
    }
    printf("variant:        %s\n", key);
    printf("arch:           %s\n", arch);
    printf("threads:        %d\n", r.threads);
    printf("registers:      %d\n", cb.stats.registers);
    printf("spill stores:   %d bytes\n", cb.stats.spill_stores);
    printf("spill loads:    %d bytes\n", cb.stats.spill_loads);
    printf("stack frame:    %d bytes\n", cb.stats.stack_frame);
    printf("shared memory:  %d bytes dynamic + %d static\n", r.smem_bytes, cb.stats.static_smem);
    printf("cubin:          %zu bytes\n", cb.size);
    printf("compile time:   %.2f s\n", cb.stats.compile_seconds);
    if (fg_cli_flag(argc, argv, "--log")) printf("--- NVRTC log ---\n%s\n", cb.log);
    const char *out = fg_cli_opt(argc, argv, "--cubin");
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(cb.data, 1, cb.size, f) != cb.size) { perror(out); rc = 1; }
        if (f && fclose(f) != 0) { perror(out); rc = 1; }
    }
    if (cb.stats.spill_stores || cb.stats.spill_loads || cb.stats.stack_frame) {
        fprintf(stderr, "flashgen: variant spills to local memory (%d bytes stores, %d loads, %d stack)\n",
                cb.stats.spill_stores, cb.stats.spill_loads, cb.stats.stack_frame);
        rc = 1;
    }
    fg_cubin_free(&cb);
    fg_rendered_free(&r);
    fg_sources_free(&src);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int help = fg_cli_flag(argc - 1, argv + 1, "--help") || fg_cli_flag(argc - 1, argv + 1, "-h");
    if (!strcmp(cmd, "help")) {
        if (argc < 3) { fputs(USAGE, stdout); return 0; }
        cmd = argv[2];
        help = 1;
    }
    struct { const char *name; int (*fn)(int, char **); const char *help; } cmds[] = {
        {"info", cmd_info, HELP_INFO},       {"gen", cmd_gen, HELP_GEN}, {"compile", fg_cli_compile_main, HELP_COMPILE},
        {"run", fg_cmd_run, NULL},           {"bench", fg_cmd_bench, NULL},
        {"tune", fg_cmd_tune, NULL},         {"cache", fg_cmd_cache, NULL},
        {"explore", fg_cmd_explore, NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; ++i) {
        if (strcmp(cmd, cmds[i].name)) continue;
        if (help && cmds[i].help) { fputs(cmds[i].help, stdout); return 0; }
        if (help) { /* run and bench print their own help */
            char *hargv[] = {(char *)cmd, "--help", NULL}; /* run, bench, tune, cache */
            return cmds[i].fn(2, hargv);
        }
        /* cache parses its own subcommands and options */
        if (strcmp(cmd, "cache") && !check_options(cmd, argc - 1, argv + 1)) return 2;
        return cmds[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "flashgen: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}
