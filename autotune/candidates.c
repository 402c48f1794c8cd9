/* candidates.c: the autotuner's search space.
 *
 * Everything the kernel families take as a compile-time parameter:
 *   TMA (sm_90a, head dim a multiple of 16): block_m 128/192 (two or three
 *     consumer warpgroups; FP8 64/128 with block_n 128, fg_config_check's
 *     rules), block_n every multiple of 16 in 64..192, K/V
 *     stages 2..3, a persistent grid or one CTA per tile (ping-pong and
 *     overlap stay on: switched off they lost 3-22% at every measured
 *     shape, docs/PERF.md v7);
 *   wgmma (sm_90a, head dim a multiple of 64): block_m 64/128/192 (one
 *     warpgroup per 64 rows), block_n 64..256, K/V stages 1..2, min blocks
 *     per SM 1..2;
 *   mma.sync: 4 or 8 warps of 16 or 32 rows, block_n 16..128, stages 1..3,
 *     Q kept in registers or re-read from shared memory, min blocks 1..2.
 * fg_config_check removes what the device's shared memory cannot hold and
 * what would need more than 255 registers by the estimate; ptxas removes the
 * rest (spills) when the tuner compiles them. */
#include <string.h>

#include "autotune/candidates.h"
#include "select/bwd_config.h"
#include "select/heuristic.h"

static int add(const fg_spec *s, fg_config *c, int smem_limit, int block_q, int block_k, fg_config *out, int n,
               int max) {
    if (n >= max) return n;
    if ((block_q && block_q % c->block_m) || (block_k && block_k % c->block_n)) return n;
    if (fg_config_check(s, c, smem_limit, NULL) != FG_OK) return n;
    out[n] = *c;
    return n + 1;
}

int fg_tune_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, int path,
                       fg_config *out, int max) {
    int n = 0;
    fg_config c;
    if (wgmma_ok && (path == FG_PATH_AUTO || path == FG_PATH_TMA) && s->head_dim % 16 == 0) {
        for (int bm = s->dtype == FG_E4M3 ? 64 : 128; bm <= 192; bm += 64) /* FP8 from 64 rows */
            for (int bn = 64; bn <= 192; bn += 16)
                for (int st = 2; st <= 3; ++st)
                  for (int pers = 0; pers <= 1; ++pers) {
                    memset(&c, 0, sizeof c);
                    c.ws_off = pers ? 0 : FG_WS_NO_PERSISTENT;
                    c.wgmma = 2;
                    c.block_m = bm;
                    c.warps = 4 * (1 + bm / 64);
                    c.block_n = bn;
                    c.stages = st;
                    c.min_blocks = 1;
                    n = add(s, &c, smem_limit, block_q, block_k, out, n, max);
                }
    }
    if (wgmma_ok && (path == FG_PATH_AUTO || path == FG_PATH_WGMMA) && s->head_dim % 64 == 0) {
        static const int bm[] = {64, 128, 192}, bn[] = {64, 128, 192, 256};
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 4; ++j)
                for (int st = 1; st <= 2; ++st)
                    for (int mb = 1; mb <= 2; ++mb) {
                        memset(&c, 0, sizeof c);
                        c.wgmma = 1;
                        c.block_m = bm[i];
                        c.warps = bm[i] / 16;
                        c.block_n = bn[j];
                        c.stages = st;
                        c.min_blocks = mb;
                        n = add(s, &c, smem_limit, block_q, block_k, out, n, max);
                    }
    }
    if (path == FG_PATH_AUTO || path == FG_PATH_MMA) {
        static const int bn[] = {16, 32, 64, 128};
        for (int w = 4; w <= 8; w += 4)
            for (int mt = 1; mt <= 2; ++mt)
                for (int j = 0; j < 4; ++j)
                    for (int st = 1; st <= 3; ++st)
                        for (int qr = 0; qr <= 1; ++qr)
                            for (int mb = 1; mb <= 2; ++mb) {
                                memset(&c, 0, sizeof c);
                                c.wgmma = 0;
                                c.warps = w;
                                c.block_m = 16 * mt * w;
                                c.block_n = bn[j];
                                c.stages = st;
                                c.q_in_regs = qr;
                                c.min_blocks = mb;
                                n = add(s, &c, smem_limit, block_q, block_k, out, n, max);
                            }
    }
    return n;
}

int fg_tune_bwd_candidates(const fg_spec *s, int smem_limit, int hopper, int path, fg_config *out, int max) {
    int n = 0;
    fg_config c;
    if (hopper && path != FG_PATH_MMA && n < max && fg_bwd_wgmma_config(s, &c)) {
        /* timed with the loads the runtime gives contiguous tensors (TMA
         * where the kernel has it) unless the path names cp.async, and
         * checked with them: their shared memory can differ (DQ_LAG) */
        if (path != FG_PATH_WGMMA) fg_bwd_set_loads(s, &c, 1);
        if (fg_bwd_config_check(s, &c, smem_limit, NULL) == FG_OK) {
            out[n++] = c;
            /* head dims 64/64: the other query block height too (64 or 128 rows) */
            c.block_m = c.block_m == 128 ? 64 : 128;
            if (n < max && fg_bwd_config_check(s, &c, smem_limit, NULL) == FG_OK) out[n++] = c;
        }
    }
    if (path == FG_PATH_WGMMA || path == FG_PATH_TMA) return n;
    static const int bm[] = {32, 64}, bn[] = {32, 64, 128};
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int ws = 1; ws <= 2 && n < max; ++ws) {
                fg_config_unset(&c);
                c.block_m = bm[i];
                c.block_n = bn[j];
                c.warps = bn[j] / 16 * ws;
                c.stages = 1;
                c.q_in_regs = 0;
                c.min_blocks = 1;
                c.wgmma = 0;
                if (fg_bwd_config_check(s, &c, smem_limit, NULL) == FG_OK) out[n++] = c;
            }
    return n;
}
