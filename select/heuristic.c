/* heuristic.c: the built-in configuration choice and the feasibility rules
 * (see heuristic.h). */
#include "select/heuristic.h"

#include <string.h>

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* FP8 (e4m3) TMA kernel: must agree with WsShape::SMEM in fg_fwd_ws.cuh and
 * fwd_ws.lua: 128-byte rows of one-byte elements, the Q buffer as wide as
 * Q (the 16-bit O tile goes out through it in column slices), the TMA'd V
 * ring, the ring of transposed V tiles, 16 bytes of barriers a stage of
 * each ring and the loads' end mark (16 bytes). */
static int smem_bytes_fp8_rings(const fg_spec *s, const fg_config *c, int q_stages, int vt_stages) {
    const int dv = fg_spec_head_dim_v(s), dp = round_up(s->head_dim, 128), dvp = round_up(dv, 128);
    return 1024 + q_stages * c->block_m * dp + c->stages * c->block_n * (dp + dvp) + vt_stages * dv * c->block_n +
           16 * (q_stages + 2 * c->stages + vt_stages) + 16;
}
/* fwd_ws.lua's ring_sizes: a V^T ring one stage longer than the K ring
 * where it fits (two Q buffers, else one), else as long as it. */
static int smem_bytes_fp8(const fg_spec *s, const fg_config *c) {
    const int fits[4][2] = {{2, c->stages + 1}, {1, c->stages + 1}, {2, c->stages}, {1, c->stages}};
    int bytes = 0;
    for (int i = 0; i < 4; ++i)
        if ((bytes = smem_bytes_fp8_rings(s, c, fits[i][0], fits[i][1])) <= 232448) return bytes;
    return bytes;
}

int fg_config_smem_bytes(const fg_spec *s, const fg_config *c) {
    if (c->wgmma == 2 && s->dtype == FG_E4M3) return smem_bytes_fp8(s, c);
    if (c->wgmma == 2) { /* must agree with WsShape::SMEM in fg_fwd_ws.cuh (the template asserts it) and
                            fwd_ws.lua: two Q buffers where they fit in Hopper's 227 KiB, else one */
        const int dp = round_up(s->head_dim, 64), dvp = round_up(fg_spec_head_dim_v(s), 64);
        const int qbuf = c->block_m * (dp > dvp ? dp : dvp) * 2;
        const int rest = 1024 + c->stages * c->block_n * (dp + dvp) * 2 + 32 * c->stages;
        return rest + 2 * qbuf + 32 <= 232448 ? rest + 2 * qbuf + 32 : rest + qbuf + 16;
    }
    if (c->wgmma == 1) /* swizzled tiles, no padding, + 1024 for the alignment of fg_fwd_wgmma.cuh */
        return 1024 + (c->block_m + 2 * c->stages * c->block_n) * s->head_dim * 2;
    /* padded rows, see fwd_mma.lua: Q and K of head_dim, V of head_dim_v, the Q
     * buffer as wide as the wider (it stages O) */
    const int lds = round_up(s->head_dim, 16) + 8, lds_v = round_up(fg_spec_head_dim_v(s), 16) + 8;
    return (c->block_m * (lds > lds_v ? lds : lds_v) + c->stages * c->block_n * (lds + lds_v)) * 2;
}

int fg_config_reg_estimate(const fg_spec *s, const fg_config *c) {
    const int dp = round_up(s->head_dim, 16), dvp = round_up(fg_spec_head_dim_v(s), 16);
    if (c->wgmma == 2) /* per consumer thread: O (value head dim), S of this tile, P of the last one (overlap:
                          two 16-bit or four e4m3 values a register), state */
        return fg_spec_head_dim_v(s) / 2 + c->block_n / 2 + c->block_n / (s->dtype == FG_E4M3 ? 8 : 4) + 24;
    if (c->wgmma == 1) /* O and S accumulators of 64 rows per warpgroup, P packed */
        return dp / 2 + c->block_n / 2 + c->block_n / 4 + 40;
    const int mt = c->block_m / (16 * c->warps);
    const int acc_o = mt * (dvp / 8) * 4, acc_s = mt * (c->block_n / 8) * 4;
    const int q = c->q_in_regs ? mt * (dp / 16) * 4 : mt * 4;
    /* + 4 for a K fragment, + ~32 for addresses, loop state and softmax rows */
    return acc_o + acc_s + q + 4 + 32;
}

/* What the FP8 TMA kernel takes beyond the TMA path's rules (fwd_ws.lua). */
static fg_status check_fp8(const fg_spec *s, const fg_config *c, fg_error *err) {
    const int dv = fg_spec_head_dim_v(s);
    if (c->wgmma != 2)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FP8 (e4m3) runs on the TMA path only (wgmma=2, FG_PATH_TMA, sm_90a)");
    if (s->head_dim % 32 || dv % 16)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FP8 (e4m3) takes head_dim a multiple of 32 and head_dim_v of 16 (got %d, %d)",
                       s->head_dim, dv);
    if (s->sparse || s->infer)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FP8 (e4m3) is dense only: no block-sparse layout, no inference fields");
    if (c->block_n != 128)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FP8 block_n=%d: must be 128 (one 128-byte V^T row per value dim)", c->block_n);
    if (c->stages < 2)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FP8 stages=%d: must be 2 or more (the next V tile lands while the last is transposed)",
                       c->stages);
    /* three consumer warpgroups in 160 registers: 64/112 spilled, so head
     * dims to 64 as the 16-bit table, value head dims to 96 */
    if (c->block_m == 192 && (s->head_dim > 64 || dv > 96))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FP8 block_m=192 takes head_dim <= 64 and head_dim_v <= 96 (got %d, %d)",
                       s->head_dim, dv);
    return FG_OK;
}

fg_status fg_config_check(const fg_spec *s, const fg_config *c, int smem_limit, fg_error *err) {
    const int dv = fg_spec_head_dim_v(s);
    fg_status st = fg_head_dims_check(s->head_dim, dv, err);
    if (st != FG_OK) return st;
    if (s->dtype == FG_E4M3 && (st = check_fp8(s, c, err))) return st;
    if (c->wgmma == 2) {
        if (s->head_dim % 16 || dv % 16)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "the TMA path takes head dims that are multiples of 16 (got %d, head_dim_v %d)",
                           s->head_dim, dv);
        if (c->block_m != 64 && c->block_m != 128 && c->block_m != 192)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA block_m=%d: must be 64, 128 or 192 (64 rows per consumer warpgroup)", c->block_m);
        if (c->warps != 4 * (1 + c->block_m / 64))
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA warps=%d: must be 4 * (1 + block_m / 64) = %d", c->warps,
                           4 * (1 + c->block_m / 64));
        if (c->block_n < 16 || c->block_n > 256 || c->block_n % 16)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA block_n=%d: must be a multiple of 16 in 16..256", c->block_n);
        if (c->stages < 1 || c->stages > 4)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA stages=%d: must be 1..4", c->stages);
        if (c->min_blocks != 1)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA min_blocks=%d: must be 1 (one CTA per SM, registers moved by setmaxnreg)", c->min_blocks);
        if (c->ws_off & ~(FG_WS_NO_PINGPONG | FG_WS_NO_OVERLAP | FG_WS_NO_PERSISTENT))
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA options %#x: unknown bits", (unsigned)c->ws_off);
        const int smem = fg_config_smem_bytes(s, c);
        if (smem > smem_limit)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA block_m=%d block_n=%d stages=%d needs %d bytes of shared memory; the device allows %d",
                           c->block_m, c->block_n, c->stages, smem, smem_limit);
        /* the consumers' registers after setmaxnreg (fwd_ws.lua's REGS):
         * 160 with three consumers, 232 for sparse layouts with two (their
         * producer walks a tile list in 32), else 240 */
        const int regs = fg_config_reg_estimate(s, c),
                  cap = c->block_m == 192 ? 160 : s->sparse && c->block_m == 128 ? 232 : 240;
        if (regs > cap)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "TMA block_m=%d block_n=%d needs ~%d registers per consumer thread; the cap is %d",
                           c->block_m, c->block_n, regs, cap);
        return FG_OK;
    }
    if (c->ws_off)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "pingpong=, overlap= and persistent= are options of the TMA path (wgmma=2) only");
    if (c->wgmma == 1) {
        if (s->head_dim % 64)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "the wgmma path takes head_dim 64, 128, 192 or 256 (got %d)", s->head_dim);
        if (dv != s->head_dim)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "the wgmma path takes head_dim_v == head_dim (got %d and %d); "
                           "FG_PATH_MMA and FG_PATH_TMA take other pairs", s->head_dim, dv);
        if (c->block_m != 64 && c->block_m != 128 && c->block_m != 192)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "wgmma block_m=%d: must be 64, 128 or 192 (64 rows per warpgroup)", c->block_m);
        if (c->warps != c->block_m / 16)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "wgmma warps=%d: must be block_m / 16 = %d", c->warps, c->block_m / 16);
        if (c->block_n != 64 && c->block_n != 128 && c->block_n != 192 && c->block_n != 256)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "wgmma block_n=%d: must be 64, 128, 192 or 256", c->block_n);
        if (c->stages < 1 || c->stages > 2)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "wgmma stages=%d: must be 1 or 2", c->stages);
        if (c->min_blocks < 1 || c->min_blocks > 2)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "wgmma min_blocks=%d: must be 1 or 2", c->min_blocks);
    } else {
        /* one and two warps: the inference kernel's decode tiles of 16 and
         * 32 packed rows (runtime/choose.c, decode_config) */
        if (c->warps != 4 && c->warps != 8 && !(s->infer && (c->warps == 1 || c->warps == 2)))
            return fg_fail(err, FG_ERR_UNSUPPORTED, "warps=%d: must be 4 or 8 (1 or 2 for inference variants)", c->warps);
        const int mt = c->block_m / (16 * c->warps);
        if ((mt != 1 && mt != 2) || mt * 16 * c->warps != c->block_m)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "block_m=%d: must be 16 or 32 rows per warp times warps=%d",
                           c->block_m, c->warps);
        if (c->block_n != 16 && c->block_n != 32 && c->block_n != 64 && c->block_n != 128)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "block_n=%d: must be 16, 32, 64 or 128", c->block_n);
        if (c->stages < 1 || c->stages > 3)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "stages=%d: must be 1..3", c->stages);
        if (c->q_in_regs != 0 && c->q_in_regs != 1)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "q_in_regs=%d: must be 0 or 1", c->q_in_regs);
        if (c->min_blocks < 1 || c->min_blocks > 4)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "min_blocks=%d: must be 1..4", c->min_blocks);
    }
    const int smem = fg_config_smem_bytes(s, c);
    if (smem > smem_limit)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "block_m=%d block_n=%d stages=%d needs %d bytes of shared memory; the device allows %d",
                       c->block_m, c->block_n, c->stages, smem, smem_limit);
    const int regs = fg_config_reg_estimate(s, c);
    const int cap = 65536 / (c->warps * 32 * c->min_blocks);
    if (regs > (cap < 255 ? cap : 255))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "block_m=%d block_n=%d q_in_regs=%d needs ~%d registers per thread; the cap is %d (it would spill)",
                       c->block_m, c->block_n, c->q_in_regs, regs, cap < 255 ? cap : 255);
    return FG_OK;
}

/* The wider of the two head dims: the tile tables and defaults are chosen
 * by it (Q in registers and K follow head_dim, O and V head_dim_v). */
static int max_head_dim(const fg_spec *s) {
    const int dv = fg_spec_head_dim_v(s);
    return dv > s->head_dim ? dv : s->head_dim;
}

fg_status fg_config_complete(const fg_spec *s, fg_config *c, int smem_limit, fg_error *err) {
    const int hd = max_head_dim(s), big = round_up(hd, 16) > 128;
    if (c->wgmma < 0) c->wgmma = s->dtype == FG_E4M3 ? 2 : 0;
    if (c->wgmma == 2 && s->dtype == FG_E4M3) {
        /* 128 x 128 tiles, two stages; one consumer warpgroup where two
         * would not fit in shared memory */
        if (!c->block_n) c->block_n = 128;
        if (!c->stages) c->stages = 2;
        if (!c->block_m) {
            c->block_m = 128;
            if (fg_config_smem_bytes(s, c) > smem_limit) c->block_m = 64;
        }
        if (!c->warps) c->warps = 4 * (1 + c->block_m / 64);
        c->q_in_regs = 0;
    } else if (c->wgmma == 2) {
        if (!c->block_m) c->block_m = 128;
        if (!c->warps) c->warps = 4 * (1 + c->block_m / 64);
        if (!c->block_n) c->block_n = hd > 192 ? 80 : hd > 128 ? 112 : 128;
        if (!c->stages) c->stages = 2;
        while (c->stages > 1 && fg_config_smem_bytes(s, c) > smem_limit) c->stages--;
        c->q_in_regs = 0;
    } else if (c->wgmma == 1) {
        if (!c->block_m) c->block_m = 128;
        if (!c->warps) c->warps = c->block_m / 16;
        if (!c->block_n) c->block_n = s->head_dim > 128 ? 64 : 128;
        if (!c->stages) c->stages = 2;
        while (c->stages > 1 && fg_config_smem_bytes(s, c) > smem_limit) c->stages--;
        if (c->q_in_regs > 0)
            return fg_fail(err, FG_ERR_UNSUPPORTED, "q_in_regs=1 is a knob of the mma.sync path (wgmma=0); "
                           "the wgmma path reads Q from shared memory");
        c->q_in_regs = 0;
    } else {
        if (!c->warps) c->warps = big ? 8 : 4;
        if (!c->block_m) c->block_m = 128;
        if (!c->block_n) c->block_n = 64;
        if (!c->stages) c->stages = big ? 1 : 2;
        if (c->q_in_regs < 0) c->q_in_regs = 0;
    }
    if (!c->min_blocks) c->min_blocks = 1;
    return fg_config_check(s, c, smem_limit, err);
}

/* Hopper first: wgmma reads both operands of Q K^T and the B operand of P V
 * straight from shared memory, which takes away the ldmatrix traffic that
 * bounds the mma.sync path (measured on H100: mma.sync at 0.91x FA2 for
 * head dim 128, docs/PERF.md).  Order from bench/explore.sh on H100,
 * seqlen 4096, bf16 (docs/PERF.md, v2): head dim 64: 2 warpgroups x 64-key
 * tiles (346 TFLOP/s vs 321 for mma.sync); 128: one warpgroup, 128-key
 * tiles, one stage, so two CTAs share an SM and overlap each other's
 * softmax with GEMMs (417 vs 370 for 2 warpgroups); 256: 2 warpgroups,
 * 64-key tiles, one stage (466 vs 418 with two stages).
 *
 * mma.sync: FlashAttention-2's Ampere/Hopper choices are the starting
 * point: 4 warps x 32 rows for head dims up to 128 (each K/V fragment feeds
 * two m-tiles, halving shared-memory reads per MMA), 8 warps x 16 rows
 * beyond (the O accumulators of 32 rows would not fit in 255 registers),
 * 64-key tiles, two K/V stages where shared memory allows.  Fallbacks follow
 * in order of expected speed.  Replaced by measurement once a tuned result
 * exists. */
int fg_heuristic_candidates(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, fg_config *out,
                            int max) {
    const int hd = max_head_dim(s), dp = round_up(hd, 16), dv = fg_spec_head_dim_v(s);
    /* wgmma, block_m, warps, block_n, stages, q_in_regs */
    static const int hopper_64[][6] = {{1, 128, 8, 64, 2, 0}, {1, 64, 4, 128, 2, 0}, {1, 128, 8, 128, 2, 0}};
    /* non-causal hdim 64: one warpgroup, 64-key tiles, one stage (two CTAs
     * per SM) measured 1.08-1.27x the table above at seqlen 1024-16384
     * (flashgen tune + bench --compare-heuristic, docs/PERF.md v5) */
    static const int hopper_64_nc[][6] = {{1, 64, 4, 64, 1, 0}, {1, 128, 8, 64, 2, 0}, {1, 64, 4, 128, 2, 0}};
    /* the last entry divides 64-wide layout blocks (FG_PATH_WGMMA on them) */
    static const int hopper_128[][6] = {{1, 64, 4, 128, 1, 0}, {1, 192, 12, 64, 2, 0}, {1, 128, 8, 128, 2, 0}, {1, 64, 4, 64, 2, 0}};
    static const int hopper_large[][6] = {{1, 128, 8, 64, 1, 0}, {1, 64, 4, 64, 1, 0}, {1, 128, 8, 64, 2, 0}};
    static const int small[][6] = {{0, 128, 4, 64, 2, 1}, {0, 128, 4, 64, 2, 0}, {0, 128, 4, 32, 2, 0}, {0, 128, 8, 64, 2, 0},
                                   {0, 64, 4, 64, 2, 0},  {0, 64, 4, 32, 2, 0},  {0, 64, 4, 16, 1, 0}};
    static const int mid[][6] = {{0, 128, 4, 64, 2, 0}, {0, 128, 4, 32, 2, 0}, {0, 128, 8, 64, 2, 0}, {0, 128, 8, 32, 2, 0},
                                 {0, 64, 4, 64, 2, 0},  {0, 64, 4, 32, 2, 0},  {0, 64, 4, 16, 1, 0}};
    static const int large[][6] = {{0, 128, 8, 64, 2, 0}, {0, 128, 8, 64, 1, 0}, {0, 128, 8, 32, 2, 0}, {0, 128, 8, 32, 1, 0},
                                   {0, 64, 4, 64, 1, 0},  {0, 64, 4, 32, 1, 0},  {0, 64, 4, 16, 1, 0}};
    /* Warp-specialised TMA kernels (wgmma_ok == 2): the starting points are
     * FlashAttention-3/4's published sm90 tiles (HOPPER-KERNELS.md): 192 x 128
     * up to head dim 64, 128 x 128 to 128, 128 x 112 to 192, 128 x 80 to 256,
     * two stages; then smaller key tiles (sparse layouts, shared memory). */
    static const int tma_64[][6] = {{2, 192, 16, 128, 2, 0}, {2, 128, 12, 128, 2, 0}, {2, 128, 12, 64, 2, 0}};
    static const int tma_128[][6] = {{2, 128, 12, 128, 2, 0}, {2, 128, 12, 64, 2, 0}, {2, 192, 16, 64, 2, 0}};
    static const int tma_192[][6] = {{2, 128, 12, 112, 2, 0}, {2, 128, 12, 64, 2, 0}, {2, 128, 12, 96, 2, 0}};
    static const int tma_256[][6] = {{2, 128, 12, 80, 2, 0}, {2, 128, 12, 64, 2, 0}, {2, 128, 12, 64, 1, 0}};
    const int(*tabs[3])[6] = {NULL, NULL, dp <= 64 ? small : dp <= 128 ? mid : large};
    int lens[3] = {0, 0, 7};
    const int only = wgmma_ok & FG_FAMILY_ONLY;
    wgmma_ok &= ~FG_FAMILY_ONLY;
    if (only) lens[2] = 0;
    if (wgmma_ok >= 2 && s->head_dim % 16 == 0 && dv % 16 == 0) {
        tabs[0] = hd > 192 ? tma_256 : hd > 128 ? tma_192 : hd > 64 ? tma_128 : tma_64;
        lens[0] = 3;
    }
    /* the wgmma family: equal head dims only; no score modifications
     * (templates/fg_score.cuh is in the mma.sync and TMA kernels) */
    if (wgmma_ok && !fg_spec_has_mods(s) && s->head_dim % 64 == 0 && dv == s->head_dim && !(only && wgmma_ok == 2)) {
        tabs[1] = s->head_dim > 128 ? hopper_large : s->head_dim > 64 ? hopper_128 : s->causal ? hopper_64 : hopper_64_nc;
        lens[1] = tabs[1] == hopper_128 ? 4 : 3;
    }
    /* FP8: the TMA family alone (fwd_ws.lua's FP8 rules) */
    /* 192 rows (three consumer warpgroups) first where check_fp8 lets them
     * (head_dim <= 64, head_dim_v <= 96): not yet measured (branch
     * wip/fp8-bm192) */
    static const int tma_fp8[][6] = {{2, 192, 16, 128, 2, 0}, {2, 128, 12, 128, 2, 0}, {2, 64, 8, 128, 2, 0},
                                     {2, 128, 12, 128, 3, 0}};
    if (s->dtype == FG_E4M3) {
        tabs[0] = wgmma_ok >= 2 ? tma_fp8 : NULL;
        lens[0] = tabs[0] ? 4 : 0;
        tabs[1] = tabs[2] = NULL;
        lens[1] = lens[2] = 0;
    }
    int n = 0;
    for (int t = 0; t < 3; ++t)
        for (int i = 0; i < lens[t] && n < max; ++i) {
            fg_config c;
            memset(&c, 0, sizeof c);
            c.wgmma = tabs[t][i][0];
            c.block_m = tabs[t][i][1];
            c.warps = tabs[t][i][2];
            c.block_n = tabs[t][i][3];
            c.stages = tabs[t][i][4];
            c.q_in_regs = tabs[t][i][5];
            c.min_blocks = 1;
            if (block_q && block_q % c.block_m) continue;
            if (block_k && block_k % c.block_n) continue;
            while (c.stages > 1 && fg_config_smem_bytes(s, &c) > smem_limit) c.stages--;
            if (fg_config_check(s, &c, smem_limit, NULL) != FG_OK) continue;
            int dup = 0;
            for (int j = 0; j < n; ++j) dup |= !memcmp(&out[j], &c, sizeof c);
            if (!dup) out[n++] = c;
        }
    return n;
}

int fg_heuristic_short_causal(const fg_spec *s, int bucket_q, int bucket_k, fg_config *c) {
    /* hdim, bucket (max of q and k), block_m, block_n, stages, persistent;
     * flashgen tune, bf16, H200, 2026-11-30: time against the candidate
     * order's first in the same process (only the >= 1.07x winners), kept
     * where bench/vs_torch.py agreed afterwards (/ cuDNN: hd64 512 0.86 ->
     * 0.91, 1024 0.82 -> 0.90, hd128 2048 0.89 -> 0.93, hd256 512 0.73 ->
     * 0.79; hd64 2048's 192 x 128 in three stages, 1.08x in the tuner,
     * measured 0.93 -> 0.89 there and is not taken).  hd128 2048's 192 x 80
     * in three stages (1.10x then) is gone: with causal tiles in pairs
     * (fg_tile_scheduler.cuh) the tuner found 128 x 128 first again,
     * 578 against 492 TFLOP/s (flashgen bench, H200, 2026-12-01) */
    static const int table[][6] = {
        {64, 512, 128, 128, 2, 1},  /* 1.09x (192 x 128 first) */
        {64, 1024, 128, 128, 3, 1}, /* 1.10x */
        {256, 512, 128, 64, 2, 0},  /* 1.07x (128 x 80, persistent, first) */
    };
    if (!s->causal || s->sparse || s->infer || fg_spec_has_mods(s) || s->dtype == FG_E4M3 ||
        fg_spec_head_dim_v(s) != s->head_dim)
        return 0;
    const int bucket = bucket_q > bucket_k ? bucket_q : bucket_k;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
        if (table[i][0] == s->head_dim && table[i][1] == bucket) {
            memset(c, 0, sizeof *c);
            c->wgmma = 2;
            c->block_m = table[i][2];
            c->warps = 4 * (1 + c->block_m / 64);
            c->block_n = table[i][3];
            c->stages = table[i][4];
            c->ws_off = table[i][5] ? 0 : FG_WS_NO_PERSISTENT;
            c->min_blocks = 1;
            return 1;
        }
    return 0;
}

fg_status fg_pick_config(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, fg_try_compile fn,
                         void *ud, fg_config *out, fg_error *err) {
    fg_config cand[16];
    const int n = fg_heuristic_candidates(s, smem_limit, block_q, block_k, wgmma_ok, cand, 16);
    if (n == 0)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "no block configuration of head_dim=%d head_dim_v=%d fits %d bytes of shared memory%s", s->head_dim,
                       fg_spec_head_dim_v(s), smem_limit,
                       block_q ? " and divides the layout block" : "");
    int best = -1, best_spill = 0;
    for (int i = 0; i < n; ++i) {
        fg_kernel_stats st = {0};
        fg_status rc = fn(ud, s, &cand[i], &st, err);
        if (rc != FG_OK) return rc;
        const int spill = st.spill_stores + st.spill_loads + st.stack_frame;
        if (spill == 0) { *out = cand[i]; return FG_OK; }
        if (best < 0 || spill < best_spill) { best = i; best_spill = spill; }
    }
    *out = cand[best];
    return FG_OK;
}

int fg_config_is_explicit(const fg_config *c) {
    return c->block_m || c->block_n || c->warps || c->stages || c->q_in_regs >= 0 || c->min_blocks;
}

int fg_config_path(const fg_config *c) {
    return c->wgmma == 2 ? FG_PATH_TMA : c->wgmma == 1 ? FG_PATH_WGMMA : c->wgmma == 0 ? FG_PATH_MMA : FG_PATH_AUTO;
}

int fg_heuristic_families(int hopper, int path) {
    switch (path) {
    case FG_PATH_MMA: return 0;
    case FG_PATH_WGMMA: return (hopper >= 1 ? 1 : 0) | FG_FAMILY_ONLY;
    case FG_PATH_TMA: return (hopper >= 2 ? 2 : 0) | FG_FAMILY_ONLY;
    default: return hopper;
    }
}

fg_status fg_heuristic_config(const fg_spec *s, int smem_limit, int block_q, int block_k, int wgmma_ok, int path,
                              fg_try_compile fn, void *ud, fg_config *out, fg_error *err) {
    const int dv = fg_spec_head_dim_v(s);
    if (path == FG_PATH_WGMMA && (wgmma_ok < 1 || s->head_dim % 64 || dv != s->head_dim))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FG_PATH_WGMMA: %s", wgmma_ok < 1 ? "needs an sm_90a GPU (Hopper)"
                       : s->head_dim % 64 ? "the wgmma kernels take head_dim 64, 128, 192 or 256"
                                          : "the wgmma kernels take head_dim_v == head_dim (FG_PATH_MMA and FG_PATH_TMA take other pairs)");
    if (path == FG_PATH_TMA && (wgmma_ok < 2 || s->head_dim % 16 || dv % 16))
        return fg_fail(err, FG_ERR_UNSUPPORTED, "FG_PATH_TMA: %s",
                       wgmma_ok < 1   ? "needs an sm_90a GPU (Hopper)"
                       : wgmma_ok < 2 ? "TMA cannot describe this call's strides (a stride of 0 in a dim longer than 1)"
                                      : "the TMA kernels take head_dim and head_dim_v that are multiples of 16");
    return fg_pick_config(s, smem_limit, block_q, block_k, fg_heuristic_families(wgmma_ok, path), fn, ud, out, err);
}

int fg_arch_has_wgmma(const char *arch) { return arch && !strcmp(arch, "sm_90a"); }
