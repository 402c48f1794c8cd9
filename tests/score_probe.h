/* score_probe.h: the device side of the score-expression tests: a
 * parameter struct with the names of gen/score_expr.h, and one __device__
 * function per rendered expression (test_score_nvrtc compiles them,
 * test_gpu_score runs them). */
#ifndef FG_SCORE_PROBE_H
#define FG_SCORE_PROBE_H
#include "gen/expr_parse.h"

/* Mirrors the struct below (the GPU test fills it on the host). */
typedef struct sp_params {
    long long score_ci[16];
    float score_cf[16];
    unsigned long long score_ti[8], score_tf[8]; /* device pointers */
    long long score_tn[8];
} sp_params;

static const char *const sp_head =
    "#include \"fg_mask.cuh\"\n"
    "struct fg_score_probe_params { long long score_ci[16]; float score_cf[16]; const int *score_ti[8]; const float *score_tf[8];"
    " long long score_tn[8]; };\n";

/* fg_score_<k>(p, s, b, h, q_idx, kv_idx) returning the rendered cuda */
static inline void sp_add_fn(fg_xbuf *b, int k, const char *cuda) {
    fg_xbuf_put(b, "__device__ __forceinline__ float fg_score_%d(const fg_score_probe_params &p, float s, int b, int h, int q_idx, int kv_idx) {\n"
                   "    (void)s; (void)b; (void)h; (void)q_idx; (void)kv_idx;\n    return %s;\n}\n", k, cuda);
}
#endif
