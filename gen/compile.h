/* compile.h: NVRTC, loaded with dlopen at run time, and the compile of one
 * rendered variant to a cubin.  NVRTC needs no GPU, so this runs in CI. */
#ifndef FG_COMPILE_H
#define FG_COMPILE_H
#include <stddef.h>
#include "gen/sources.h"

typedef struct fg_nvrtc_info {
    int major, minor;
    char path[512];          /* the library that was loaded */
    const char *how;         /* where it was found: "$FLASHGEN_NVRTC", "pip package", ... */
    char include_dir[512];   /* CUDA headers given to NVRTC (--include-path), or "" */
    const char *include_how; /* where they were found, or NULL */
} fg_nvrtc_info;

/* Loads NVRTC and finds the CUDA header directory, each from the search
 * list of gen/cuda_paths.h: $FLASHGEN_NVRTC, $CUDA_PATH, $CUDA_HOME,
 * the nvidia-* pip packages, the dynamic linker, /usr/local/cuda.
 * Idempotent, thread-safe. */
fg_status fg_nvrtc_load(fg_nvrtc_info *info, fg_error *err);

/* What ptxas reported for the kernel (parsed from the NVRTC log). */
typedef struct fg_kernel_stats {
    int registers;
    int spill_stores, spill_loads; /* bytes, from the ptxas log (0 when NVRTC
                                      answered from its cache: see stack_frame) */
    int stack_frame;               /* bytes, from the cubin; > 0 whenever registers spill */
    int static_smem;               /* bytes */
    double compile_seconds;
} fg_kernel_stats;

typedef struct fg_cubin {
    void *data;
    size_t size;
    char *log;  /* NVRTC + ptxas log, malloc'd (may be empty) */
    fg_kernel_stats stats;
} fg_cubin;

/* FG_ERR_INVALID_ARGUMENT unless arch is "sm_" + 2 or 3 digits + an
 * optional "a" (it becomes an NVRTC option and part of variant keys, which
 * generated sources print in their banner). */
fg_status fg_arch_check(const char *arch, fg_error *err);
/* Compiles `source` for `arch` ("sm_90a", "sm_80", ...).  The template
 * sources' .cuh/.h files are given to NVRTC as in-memory headers.  On a
 * compile error returns FG_ERR_COMPILE with the NVRTC log in err. */
fg_status fg_compile_cubin(const fg_sources *src, const char *source, const char *arch,
                           const char *variant_key, fg_cubin *out, fg_error *err);
void fg_cubin_free(fg_cubin *c);
/* Whether the n bytes at p hold a whole CUDA ELF image: ELF64 little
 * endian, machine EM_CUDA (190), and its section and program header
 * tables and every section's bytes inside the n.  cuModuleLoadData takes no
 * length (it sizes the image from these headers), so a truncated or
 * damaged cubin from the cache file would be read past its buffer. */
int fg_cubin_sane(const void *p, size_t n);
/* Registers and stack frame from the cubin's .nv.info (always present). */
void fg_cubin_read_stats(const void *cubin, size_t size, fg_kernel_stats *st);
/* Parses ptxas -v lines of a log into stats (exposed for tests). */
void fg_parse_ptxas_log(const char *log, fg_kernel_stats *st);
#endif
