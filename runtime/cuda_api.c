#include "runtime/cuda_api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fg_cuda g_cuda;
static fg_status g_status = FG_ERR_INTERNAL;
static char g_msg[1024];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#define SYM(field, name)                                                                     \
    do {                                                                                     \
        *(void **)&g_cuda.field = dlsym(g_cuda.lib, name);                                   \
        if (!g_cuda.field) {                                                                 \
            snprintf(g_msg, sizeof g_msg, "the CUDA driver library lacks %s", name);         \
            g_status = FG_ERR_NO_DRIVER;                                                     \
            return;                                                                          \
        }                                                                                    \
    } while (0)

static void load_once(void) {
    const char *path = getenv("FLASHGEN_LIBCUDA");
    if (!path || !*path) path = "libcuda.so.1";
    g_cuda.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!g_cuda.lib) {
        const char *e = dlerror();
        snprintf(g_msg, sizeof g_msg,
                 "no NVIDIA driver: cannot load %s (%s). flashgen can still generate and compile "
                 "kernels (flashgen gen / compile), but cannot launch them on this machine",
                 path, e ? e : "unknown error");
        g_status = FG_ERR_NO_DRIVER;
        return;
    }
    SYM(Init, "cuInit");
    SYM(DriverGetVersion, "cuDriverGetVersion");
    SYM(DeviceGetCount, "cuDeviceGetCount");
    SYM(DeviceGet, "cuDeviceGet");
    SYM(DeviceGetName, "cuDeviceGetName");
    SYM(DeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(DeviceTotalMem, "cuDeviceTotalMem_v2");
    SYM(CtxGetCurrent, "cuCtxGetCurrent");
    SYM(CtxSetCurrent, "cuCtxSetCurrent");
    SYM(CtxGetDevice, "cuCtxGetDevice");
    SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    SYM(CtxSynchronize, "cuCtxSynchronize");
    SYM(ModuleLoadData, "cuModuleLoadData");
    SYM(ModuleUnload, "cuModuleUnload");
    SYM(ModuleGetFunction, "cuModuleGetFunction");
    SYM(FuncSetAttribute, "cuFuncSetAttribute");
    SYM(FuncGetAttribute, "cuFuncGetAttribute");
    SYM(LaunchKernel, "cuLaunchKernel");
    SYM(GetErrorName, "cuGetErrorName");
    SYM(GetErrorString, "cuGetErrorString");
    SYM(MemAlloc, "cuMemAlloc_v2");
    SYM(MemFree, "cuMemFree_v2");
    SYM(MemcpyHtoD, "cuMemcpyHtoD_v2");
    SYM(MemcpyDtoH, "cuMemcpyDtoH_v2");
    SYM(MemsetD32, "cuMemsetD32_v2");
    SYM(StreamSynchronize, "cuStreamSynchronize");
    SYM(EventCreate, "cuEventCreate");
    SYM(EventRecord, "cuEventRecord");
    SYM(EventSynchronize, "cuEventSynchronize");
    SYM(EventElapsedTime, "cuEventElapsedTime");
    SYM(EventDestroy, "cuEventDestroy_v2");
    SYM(MemGetAddressRange, "cuMemGetAddressRange_v2");
    *(void **)&g_cuda.TensorMapEncodeTiled = dlsym(g_cuda.lib, "cuTensorMapEncodeTiled");
    *(void **)&g_cuda.ThreadExchangeStreamCaptureMode = dlsym(g_cuda.lib, "cuThreadExchangeStreamCaptureMode");
    *(void **)&g_cuda.StreamCreate = dlsym(g_cuda.lib, "cuStreamCreate");
    *(void **)&g_cuda.StreamDestroy = dlsym(g_cuda.lib, "cuStreamDestroy_v2");
    *(void **)&g_cuda.MemcpyHtoDAsync = dlsym(g_cuda.lib, "cuMemcpyHtoDAsync_v2");
    CUresult r = g_cuda.Init(0);
    if (r != CUDA_SUCCESS) {
        char b[256];
        snprintf(g_msg, sizeof g_msg, "the NVIDIA driver is present but cuInit failed: %s (no usable GPU?)",
                 fg_cuda_errstr(&g_cuda, r, b, sizeof b));
        g_status = FG_ERR_NO_DEVICE;
        return;
    }
    int n = 0;
    r = g_cuda.DeviceGetCount(&n);
    if (r != CUDA_SUCCESS || n == 0) {
        snprintf(g_msg, sizeof g_msg, "the NVIDIA driver is present but reports no GPU");
        g_status = FG_ERR_NO_DEVICE;
        return;
    }
    g_status = FG_OK;
}

fg_status fg_cuda_get(const fg_cuda **out, fg_error *err) {
    pthread_once(&g_once, load_once);
    if (g_status != FG_OK) {
        *out = NULL;
        return fg_fail(err, g_status, "%s", g_msg);
    }
    *out = &g_cuda;
    return FG_OK;
}

const char *fg_cuda_errstr(const fg_cuda *cu, CUresult r, char *buf, size_t n) {
    const char *name = NULL, *desc = NULL;
    if (cu && cu->GetErrorName) cu->GetErrorName(r, &name);
    if (cu && cu->GetErrorString) cu->GetErrorString(r, &desc);
    snprintf(buf, n, "%s (%s)", name ? name : "CUDA_ERROR_?", desc ? desc : "no description");
    return buf;
}

fg_status fg_device_query(const fg_cuda *cu, CUdevice dev, fg_device_info *d, fg_error *err) {
    memset(d, 0, sizeof *d);
    d->ordinal = (int)dev;
    char b[256];
    CUresult r = cu->DeviceGetName(d->name, sizeof d->name, dev);
    if (r != CUDA_SUCCESS) return fg_fail(err, FG_ERR_CUDA, "cuDeviceGetName: %s", fg_cuda_errstr(cu, r, b, sizeof b));
    struct { int *out; CUdevice_attribute a; } attrs[] = {
        {&d->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR},
        {&d->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR},
        {&d->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT},
        {&d->smem_per_block_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN},
        {&d->smem_per_sm, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR},
        {&d->regs_per_sm, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; ++i) {
        r = cu->DeviceGetAttribute(attrs[i].out, attrs[i].a, dev);
        if (r != CUDA_SUCCESS)
            return fg_fail(err, FG_ERR_CUDA, "cuDeviceGetAttribute(%d): %s", (int)attrs[i].a, fg_cuda_errstr(cu, r, b, sizeof b));
    }
    cu->DriverGetVersion(&d->driver_version);
    cu->DeviceTotalMem(&d->total_mem, dev);
    /* sm_90a unlocks wgmma/setmaxnreg for the Hopper path; the mma.sync path
     * runs on it unchanged. */
    snprintf(d->arch, sizeof d->arch, "sm_%d%d%s", d->cc_major, d->cc_minor, d->cc_major == 9 ? "a" : "");
    return FG_OK;
}
