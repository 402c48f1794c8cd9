/* test_nvrtc_util.h: what the NVRTC probe tests share: skipping (exit
 * status 77) where NVRTC cannot be loaded, and the template sources. */
#ifndef FG_TEST_NVRTC_UTIL_H
#define FG_TEST_NVRTC_UTIL_H
#include <stdio.h>
#include <stdlib.h>

#include "gen/compile.h"
#include "gen/sources.h"

/* Loads NVRTC (else prints SKIP and exits 77) and the sources into *src;
 * returns 0, or 1 with the reason printed when the sources fail. */
static inline int nvrtc_sources_or_skip(fg_sources *src) {
    fg_error e = {0};
    fg_nvrtc_info info;
    if (fg_nvrtc_load(&info, &e) != FG_OK) {
        printf("SKIP: %s\n", e.msg);
        fg_error_clear(&e);
        exit(77);
    }
    if (fg_sources_load(src, &e) != FG_OK) {
        fprintf(stderr, "loading the template sources: %s\n", e.msg);
        fg_error_clear(&e);
        return 1;
    }
    return 0;
}
#endif
