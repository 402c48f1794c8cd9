/* cuda_api.h: the CUDA driver API, loaded with dlopen at run time.
 * Never linked: a flashgen program starts on a machine without a driver and
 * reports FG_ERR_NO_DRIVER from the first call that needs one.
 * cuda.h is included for its types only. */
#ifndef FG_CUDA_API_H
#define FG_CUDA_API_H
#include <cuda.h>
#include "gen/error.h"

typedef struct fg_cuda {
    void *lib;
    CUresult (*Init)(unsigned);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
    CUresult (*DeviceTotalMem)(size_t *, CUdevice);
    CUresult (*CtxGetCurrent)(CUcontext *);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxGetDevice)(CUdevice *);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSynchronize)(void);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*FuncSetAttribute)(CUfunction, CUfunction_attribute, int);
    CUresult (*FuncGetAttribute)(int *, CUfunction_attribute, CUfunction);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void **, void **);
    CUresult (*GetErrorName)(CUresult, const char **);
    CUresult (*GetErrorString)(CUresult, const char **);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemsetD32)(CUdeviceptr, unsigned, size_t);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*EventCreate)(CUevent *, unsigned);
    CUresult (*EventRecord)(CUevent, CUstream);
    CUresult (*EventSynchronize)(CUevent);
    CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
    CUresult (*EventDestroy)(CUevent);
    CUresult (*MemGetAddressRange)(CUdeviceptr *, size_t *, CUdeviceptr);
    /* optional (NULL when the driver lacks them): what runtime/layout.c
     * needs to build a sparse tile list without disturbing a CUDA graph
     * capture in progress on any stream (relaxed capture mode for this
     * thread, an upload on a private non-blocking stream) */
    CUresult (*ThreadExchangeStreamCaptureMode)(CUstreamCaptureMode *);
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    /* optional (NULL when the driver lacks it): TMA tensor maps */
    CUresult (*TensorMapEncodeTiled)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                     const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                     CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
} fg_cuda;

/* Loads libcuda.so.1 (FLASHGEN_LIBCUDA overrides the path) and calls cuInit.
 * Idempotent and thread-safe; returns the same table every time. */
fg_status fg_cuda_get(const fg_cuda **out, fg_error *err);
/* "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for r; static storage. */
const char *fg_cuda_errstr(const fg_cuda *cu, CUresult r, char *buf, size_t n);

/* Facts about one device. */
typedef struct fg_device_info {
    int ordinal;
    char name[128];
    int cc_major, cc_minor;
    int sm_count;
    int smem_per_block_optin;   /* bytes */
    int smem_per_sm;
    int regs_per_sm;
    int driver_version;         /* e.g. 13000 */
    size_t total_mem;
    char arch[16];              /* "sm_90a" for Hopper, "sm_80" ... */
} fg_device_info;

fg_status fg_device_query(const fg_cuda *cu, CUdevice dev, fg_device_info *info, fg_error *err);
#endif
