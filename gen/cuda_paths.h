/* cuda_paths.h: where NVRTC and the CUDA headers are looked for at run time.
 *
 * In this order:
 *   1. the environment: $FLASHGEN_NVRTC (the library file), then
 *      $CUDA_PATH and $CUDA_HOME (lib64/libnvrtc.so.13, include/);
 *   2. the nvidia-* pip packages (nvidia-cuda-nvrtc, nvidia-cuda-runtime) in
 *      the site-packages folders of this process: the one that holds
 *      libflashgen.so (an installed wheel) or the flashgen executable, any
 *      other that an object already loaded lives in (PyTorch's libraries),
 *      then those of $FLASHGEN_SITE_PACKAGES (':'-separated; the flashgen
 *      Python package sets it to the running Python's site-packages folders
 *      when it is unset, for its library and for the CLI that `python -m
 *      flashgen` runs).  Layouts: nvidia/cu13/lib and
 *      nvidia/cu13/include (the CUDA 13 wheels), nvidia/cuda_nvrtc/lib and
 *      nvidia/cuda_runtime/include (the older per-component folders);
 *   3. the dynamic linker's search (LD_LIBRARY_PATH, ldconfig, a library
 *      already loaded): libnvrtc.so.13, libnvrtc.so;
 *   4. the toolkit: /usr/local/cuda.
 * The header directory is the first of those that holds cuda_fp16.h. */
#ifndef FG_CUDA_PATHS_H
#define FG_CUDA_PATHS_H
#include <stddef.h>

#define FG_CUDA_PATH_MAX 512
#define FG_NVRTC_MAX_CANDIDATES 24

typedef struct fg_cuda_path {
    char path[FG_CUDA_PATH_MAX]; /* a file path, or a bare soname for the dynamic linker */
    const char *how;             /* "$FLASHGEN_NVRTC", "pip package", "dynamic linker", "toolkit", ... */
} fg_cuda_path;

/* The NVRTC libraries to try with dlopen, in order; returns the count.
 * Environment and toolkit entries are listed whether or not they exist (so
 * a failure names them); pip-package entries only when the file exists. */
int fg_nvrtc_candidates(fg_cuda_path *out, int max);

/* The first header directory (in the order above) with cuda_fp16.h; 0 and
 * an empty path when there is none. */
int fg_cuda_include_dir(fg_cuda_path *out);

/* The file that dlopen `handle` came from (a soname resolved to its path);
 * `fallback` when the loader does not say. */
void fg_loaded_path(void *handle, const char *fallback, char *out, size_t n);

/* The site-packages folders of the objects loaded in this process (at most
 * max, each at most FG_CUDA_PATH_MAX bytes); returns the count.  Exposed
 * for tests. */
int fg_site_packages_dirs(char (*out)[FG_CUDA_PATH_MAX], int max);
#endif
