/* test_gpu_util.h: what the GPU tests share: skipping (exit status 77, which
 * CTest reports as SKIPPED) on a machine without a usable driver. */
#ifndef FG_TEST_GPU_UTIL_H
#define FG_TEST_GPU_UTIL_H
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/cuda_api.h"
#include "runtime/internal.h"

static inline void gpu_or_skip(void) {
    const fg_cuda *cu;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) {
        printf("SKIP: %s\n", e.msg);
        exit(77);
    }
}
/* The driver and a context on the device, or exit (77 without a GPU, 1
 * when the device cannot be used). */
static inline fg_context *gpu_context(const fg_cuda **cu) {
    gpu_or_skip();
    fg_error e = {0};
    if (fg_cuda_get(cu, &e) != FG_OK) exit(77);
    fg_context *ctx = NULL;
    if (fg_context_create(&ctx) != FG_OK || fg_ctx_device(ctx, &e) != FG_OK) {
        fprintf(stderr, "no device: %s\n", e.msg ? e.msg : fg_errmsg(ctx));
        exit(1);
    }
    return ctx;
}

/* cuMemAlloc or exit (bytes 0: 16, so that every buffer has an address). */
static inline CUdeviceptr gpu_dalloc(const fg_cuda *cu, size_t bytes) {
    CUdeviceptr p = 0;
    if (cu->MemAlloc(&p, bytes ? bytes : 16) != CUDA_SUCCESS) {
        fprintf(stderr, "cuMemAlloc(%zu) failed\n", bytes);
        exit(1);
    }
    return p;
}

/* The driver's graph calls (not in fg_cuda: only the tests capture). */
typedef struct gpu_graph_api {
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*BeginCapture)(CUstream, CUstreamCaptureMode);
    CUresult (*EndCapture)(CUstream, CUgraph *);
    CUresult (*Instantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*Launch)(CUgraphExec, CUstream);
    CUresult (*ExecDestroy)(CUgraphExec);
    CUresult (*Destroy)(CUgraph);
} gpu_graph_api;

/* Fills g from the driver; NULL, else the name of the first call missing. */
static inline const char *gpu_graph_api_load(const fg_cuda *cu, gpu_graph_api *g) {
    static const char *const names[] = {"cuStreamCreate", "cuStreamDestroy_v2", "cuStreamBeginCapture_v2",
                                        "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch",
                                        "cuGraphExecDestroy", "cuGraphDestroy"};
    void **f = (void **)g;
    for (int i = 0; i < 8; ++i)
        if (!(f[i] = dlsym(cu->lib, names[i]))) return names[i];
    return NULL;
}
#endif
