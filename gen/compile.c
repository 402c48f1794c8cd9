#include "gen/compile.h"

#include <dlfcn.h>
#include <pthread.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#include <nvrtc.h> /* types only; never linked */

#include "gen/cuda_paths.h"

static struct {
    void *lib;
    nvrtcResult (*Version)(int *, int *);
    nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                                 const char *const *);
    nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
    nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
    nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
    nvrtcResult (*DestroyProgram)(nvrtcProgram *);
    const char *(*GetErrorString)(nvrtcResult);
    fg_nvrtc_info info;
} g_nv;
static fg_status g_status = FG_ERR_INTERNAL;
static char g_msg[2048];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* NVRTC dlopens libnvrtc-builtins.so.<major>.<minor> by name at its first
 * compile, which the dynamic linker finds only on LD_LIBRARY_PATH or in the
 * system directories, not beside libnvrtc when that came from a pip
 * package.  Loading it first from libnvrtc's own directory (RTLD_GLOBAL)
 * makes NVRTC's dlopen find it by its soname.  A failure here is left to
 * NVRTC to report. */
static void preload_builtins(void) {
    int major = 0, minor = 0;
    const char *slash = strrchr(g_nv.info.path, '/');
    if (!slash || g_nv.Version(&major, &minor) != NVRTC_SUCCESS) return;
    char p[sizeof g_nv.info.path + 64];
    snprintf(p, sizeof p, "%.*s/libnvrtc-builtins.so.%d.%d", (int)(slash - g_nv.info.path), g_nv.info.path, major, minor);
    if (!dlopen(p, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) (void)dlopen(p, RTLD_NOW | RTLD_GLOBAL);
}

/* The search list (gen/cuda_paths.h): environment, pip packages,
 * dynamic linker, toolkit; the header directory likewise. */
static void load_once(void) {
    char tried[1536] = "";
    fg_cuda_path c[FG_NVRTC_MAX_CANDIDATES];
    const int n = fg_nvrtc_candidates(c, FG_NVRTC_MAX_CANDIDATES);
    for (int i = 0; i < n && !g_nv.lib; ++i) {
        g_nv.lib = dlopen(c[i].path, RTLD_NOW | RTLD_LOCAL);
        const size_t l = strlen(tried);
        if (!g_nv.lib) {
            snprintf(tried + l, sizeof tried - l, "\n  %.300s (%s): %.300s", c[i].path, c[i].how, dlerror());
        } else {
            fg_loaded_path(g_nv.lib, c[i].path, g_nv.info.path, sizeof g_nv.info.path);
            g_nv.info.how = c[i].how;
        }
    }
    fg_cuda_path inc;
    if (fg_cuda_include_dir(&inc)) {
        snprintf(g_nv.info.include_dir, sizeof g_nv.info.include_dir, "%s", inc.path);
        g_nv.info.include_how = inc.how;
    }
    if (!g_nv.lib) {
        snprintf(g_msg, sizeof g_msg, "cannot load NVRTC; tried:%s\nset FLASHGEN_NVRTC to its path, pip install "
                 "nvidia-cuda-nvrtc, or install the CUDA toolkit", tried);
        g_status = FG_ERR_NVRTC;
        return;
    }
#define NV(field, name)                                                                        \
    *(void **)&g_nv.field = dlsym(g_nv.lib, name);                                             \
    if (!g_nv.field) {                                                                         \
        snprintf(g_msg, sizeof g_msg, "%s lacks %s", g_nv.info.path, name);                    \
        g_status = FG_ERR_NVRTC;                                                               \
        return;                                                                                \
    }
    NV(Version, "nvrtcVersion");
    preload_builtins();
    NV(CreateProgram, "nvrtcCreateProgram");
    NV(CompileProgram, "nvrtcCompileProgram");
    NV(GetProgramLogSize, "nvrtcGetProgramLogSize");
    NV(GetProgramLog, "nvrtcGetProgramLog");
    NV(GetCUBINSize, "nvrtcGetCUBINSize");
    NV(GetCUBIN, "nvrtcGetCUBIN");
    NV(DestroyProgram, "nvrtcDestroyProgram");
    NV(GetErrorString, "nvrtcGetErrorString");
#undef NV
    g_nv.Version(&g_nv.info.major, &g_nv.info.minor);
    g_status = FG_OK;
}

fg_status fg_nvrtc_load(fg_nvrtc_info *info, fg_error *err) {
    pthread_once(&g_once, load_once);
    if (g_status != FG_OK) return fg_fail(err, g_status, "%s", g_msg);
    if (info) *info = g_nv.info;
    return FG_OK;
}

static int field_after(const char *line, const char *what, int *out) {
    /* finds "<num> <what>" or "<what> <num>" patterns used by ptxas */
    const char *p = strstr(line, what);
    if (!p) return 0;
    const char *q = p;
    while (q > line && (q[-1] == ' ')) --q;
    while (q > line && q[-1] >= '0' && q[-1] <= '9') --q;
    *out = atoi(q);
    return 1;
}

void fg_parse_ptxas_log(const char *log, fg_kernel_stats *st) {
    if (!log) return;
    const char *line = log;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char buf[512];
        if (n >= sizeof buf) n = sizeof buf - 1;
        memcpy(buf, line, n);
        buf[n] = 0;
        int v;
        const char *u = strstr(buf, "Used ");
        if (u && strstr(buf, "registers")) st->registers = atoi(u + 5);
        if (field_after(buf, "bytes smem", &v)) st->static_smem = v;
        if (field_after(buf, "bytes stack frame", &v)) st->stack_frame = v;
        if (field_after(buf, "bytes spill stores", &v)) st->spill_stores = v;
        if (field_after(buf, "bytes spill loads", &v)) st->spill_loads = v;
        if (!end) break;
        line = end + 1;
    }
}

/* Registers and stack frame read from the cubin itself (the global .nv.info
 * section: EIATTR_REGCOUNT 0x2f and EIATTR_FRAME_SIZE 0x11, each {symbol,
 * value}).  NVRTC can answer a repeated compile from a cache without a
 * ptxas log (seen on the GPU machine), so the log alone is not enough to
 * detect spills: spilled registers always live in the stack frame. */
#ifndef EM_CUDA
#define EM_CUDA 190
#endif

/* [off, off + len) inside [0, n), without overflow */
static int inside(uint64_t off, uint64_t len, size_t n) { return off <= n && len <= n - off; }

int fg_cubin_sane(const void *p, size_t n) {
    const unsigned char *b = p;
    Elf64_Ehdr h;
    if (!p || n < sizeof h) return 0;
    memcpy(&h, b, sizeof h);
    if (memcmp(h.e_ident, ELFMAG, SELFMAG) || h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB ||
        h.e_machine != EM_CUDA || h.e_ehsize != sizeof h)
        return 0;
    if (h.e_shnum && (h.e_shentsize != sizeof(Elf64_Shdr) || !inside(h.e_shoff, (uint64_t)h.e_shnum * sizeof(Elf64_Shdr), n)))
        return 0;
    if (h.e_phnum && (h.e_phentsize != sizeof(Elf64_Phdr) || !inside(h.e_phoff, (uint64_t)h.e_phnum * sizeof(Elf64_Phdr), n)))
        return 0;
    for (unsigned i = 0; i < h.e_shnum; ++i) {
        Elf64_Shdr s;
        memcpy(&s, b + h.e_shoff + (uint64_t)i * sizeof s, sizeof s);
        if (s.sh_type != SHT_NOBITS && s.sh_type != SHT_NULL && !inside(s.sh_offset, s.sh_size, n)) return 0;
    }
    for (unsigned i = 0; i < h.e_phnum; ++i) {
        Elf64_Phdr ph;
        memcpy(&ph, b + h.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
        if (!inside(ph.p_offset, ph.p_filesz, n)) return 0;
    }
    return 1;
}

void fg_cubin_read_stats(const void *cubin, size_t size, fg_kernel_stats *st) {
    const unsigned char *d = cubin;
    if (!fg_cubin_sane(cubin, size)) return;
    uint64_t shoff;
    uint16_t shentsize, shnum, shstrndx;
    memcpy(&shoff, d + 0x28, 8);
    memcpy(&shentsize, d + 0x3a, 2);
    memcpy(&shnum, d + 0x3c, 2);
    memcpy(&shstrndx, d + 0x3e, 2);
    if (shoff + (uint64_t)shnum * shentsize > size || shstrndx >= shnum || shentsize < 64) return;
    uint64_t stroff, strsize;
    memcpy(&stroff, d + shoff + (uint64_t)shstrndx * shentsize + 0x18, 8);
    memcpy(&strsize, d + shoff + (uint64_t)shstrndx * shentsize + 0x20, 8);
    for (unsigned i = 0; i < shnum; ++i) {
        const unsigned char *sh = d + shoff + (uint64_t)i * shentsize;
        uint32_t name;
        uint64_t off, sz;
        memcpy(&name, sh, 4);
        memcpy(&off, sh + 0x18, 8);
        memcpy(&sz, sh + 0x20, 8);
        if (name >= strsize || off + sz > size || stroff + strsize > size) continue;
        if (strcmp((const char *)d + stroff + name, ".nv.info")) continue;
        for (uint64_t p = off; p + 2 <= off + sz;) {
            const unsigned fmt = d[p], attr = d[p + 1];
            if (fmt == 4) { /* EIFMT_SVAL: u16 size, payload */
                uint16_t n;
                memcpy(&n, d + p + 2, 2);
                if (p + 4 + n > off + sz) break;
                if (n == 8 && (attr == 0x2f || attr == 0x11)) {
                    uint32_t v;
                    memcpy(&v, d + p + 8, 4);
                    if (attr == 0x2f && (int)v > st->registers) st->registers = (int)v;
                    if (attr == 0x11 && (int)v > st->stack_frame) st->stack_frame = (int)v;
                }
                p += 4 + n;
            } else if (fmt == 2 || fmt == 3) {
                p += 4;
            } else {
                p += 2;
            }
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

fg_status fg_arch_check(const char *arch, fg_error *err) {
    size_t digits = 0;
    if (arch && !strncmp(arch, "sm_", 3))
        while (arch[3 + digits] >= '0' && arch[3 + digits] <= '9') ++digits;
    const char *rest = arch ? arch + 3 + digits : NULL;
    if (arch && !strncmp(arch, "sm_", 3) && digits >= 2 && digits <= 3 && (!*rest || !strcmp(rest, "a"))) return FG_OK;
    int printable = arch != NULL;
    for (const char *c = arch; c && *c; ++c) printable &= *c >= 0x20 && *c < 0x7f;
    return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "arch '%.40s' is not a GPU architecture of the form sm_XY or sm_XYa "
                   "(sm_80, sm_90a, sm_120, ...)", printable ? arch : arch ? "(control characters)" : "(null)");
}

fg_status fg_compile_cubin(const fg_sources *src, const char *source, const char *arch, const char *key,
                           fg_cubin *out, fg_error *err) {
    memset(out, 0, sizeof *out);
    fg_status st = fg_arch_check(arch, err);
    if (st != FG_OK) return st;
    st = fg_nvrtc_load(NULL, err);
    if (st != FG_OK) return st;
    const double t0 = now_s();

    /* device headers: every .cuh / .h among the template sources */
    const char **hdr = calloc((size_t)src->count, sizeof *hdr), **hname = calloc((size_t)src->count, sizeof *hname);
    nvrtcProgram prog = NULL;
    char *log = NULL;
    if (!hdr || !hname) { st = fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); goto done; }
    int nh = 0;
    for (int i = 0; i < src->count; ++i) {
        const char *n = src->files[i].name;
        size_t l = strlen(n);
        if ((l > 4 && !strcmp(n + l - 4, ".cuh")) || (l > 2 && !strcmp(n + l - 2, ".h"))) {
            hdr[nh] = src->files[i].data;
            hname[nh] = n;
            nh++;
        }
    }
    nvrtcResult r = g_nv.CreateProgram(&prog, source, "flashgen_kernel.cu", nh, hdr, hname);
    if (r != NVRTC_SUCCESS) { st = fg_fail(err, FG_ERR_NVRTC, "nvrtcCreateProgram: %s", g_nv.GetErrorString(r)); goto done; }
    char archopt[64];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
    char incopt[sizeof g_nv.info.include_dir + 16];
    const char *opts[5] = {archopt, FG_NVRTC_STD, "--ptxas-options=-v", FG_NVRTC_DEFINES};
    int nopt = 4;
    if (g_nv.info.include_dir[0]) { /* for templates that include CUDA headers (none does today) */
        snprintf(incopt, sizeof incopt, "--include-path=%s", g_nv.info.include_dir);
        opts[nopt++] = incopt;
    }
    r = g_nv.CompileProgram(prog, nopt, opts);
    size_t logn = 0;
    g_nv.GetProgramLogSize(prog, &logn);
    log = malloc(logn + 1);
    if (!log) { st = fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); goto done; }
    log[0] = 0;
    if (logn) g_nv.GetProgramLog(prog, log);
    log[logn] = 0;
    if (r != NVRTC_SUCCESS) {
        st = fg_fail(err, FG_ERR_COMPILE, "NVRTC failed to compile variant %s for %s: %s\n--- NVRTC log ---\n%s",
                     key ? key : "?", arch, g_nv.GetErrorString(r), log);
        goto done;
    }
    size_t n = 0;
    r = g_nv.GetCUBINSize(prog, &n);
    if (r != NVRTC_SUCCESS || n == 0) {
        st = fg_fail(err, FG_ERR_COMPILE, "NVRTC produced no cubin for %s (is '%s' a real GPU arch?)", key ? key : "?", arch);
        goto done;
    }
    out->data = malloc(n);
    if (!out->data) { st = fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); goto done; }
    g_nv.GetCUBIN(prog, out->data);
    out->size = n;
    fg_parse_ptxas_log(log, &out->stats);
    fg_cubin_read_stats(out->data, out->size, &out->stats);
    out->log = log;
    log = NULL;
    out->stats.compile_seconds = now_s() - t0;
done:
    if (prog) g_nv.DestroyProgram(&prog);
    free(log);
    free(hdr);
    free(hname);
    if (st != FG_OK) fg_cubin_free(out);
    return st;
}

void fg_cubin_free(fg_cubin *c) {
    if (!c) return;
    free(c->data);
    free(c->log);
    memset(c, 0, sizeof *c);
}
