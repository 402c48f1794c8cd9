/* test_gpu_util.h: what the GPU tests share: skipping (exit status 77, which
 * CTest reports as SKIPPED) on a machine without a usable driver. */
#ifndef FG_TEST_GPU_UTIL_H
#define FG_TEST_GPU_UTIL_H
#include <stdio.h>
#include <stdlib.h>

#include "runtime/cuda_api.h"

static inline void gpu_or_skip(void) {
    const fg_cuda *cu;
    fg_error e = {0};
    if (fg_cuda_get(&cu, &e) != FG_OK) {
        printf("SKIP: %s\n", e.msg);
        exit(77);
    }
}
#endif
