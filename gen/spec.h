/* spec.h: a kernel variant's identity.
 *
 * fg_spec is what the kernel is specialised on at generation time (head dim,
 * dtype, causal on/off, block-sparse on/off); fg_config is the block
 * configuration the tuner or the heuristic chose.  Their text forms are the
 * SPEC syntax of the CLI, e.g.
 *   hdim=128,dtype=bf16,causal=bottom_right,sparse=0,block_m=128,block_n=64
 * and fg_variant_key() is the one function that names a compiled kernel. */
#ifndef FG_SPEC_H
#define FG_SPEC_H
#include <stddef.h>
#include <stdint.h>
#include "flashgen.h"
#include "gen/error.h"

/* A mask expression's kernel identity: the SHA-256 of its rendered C++
 * (which holds the arithmetic width and the constants' slots, not their
 * values).  All zero: no mask.  A 64-bit FNV-1a hash was used before, and
 * two different masks with the same hash ran each other's kernel. */
typedef struct fg_mask_hash { uint8_t sha256[32]; } fg_mask_hash;

typedef struct fg_spec {
    int head_dim;
    fg_dtype dtype;
    int causal; /* kernel has a causal mask; the alignment is a run-time offset */
    int sparse;
    /* Element mask of partial blocks (a pattern's mask expression), or none:
     * mask_hash all zero.  mask_cuda is the rendered C++ the kernel inlines and
     * mask_text its canonical form (both owned by the layout); the SHA-256
     * of mask_cuda names the kernel (fg_mask_hash_of). */
    fg_mask_hash mask_hash;
    const char *mask_cuda, *mask_text;
    /* Value head dim (v's and o's last dim); 0 means head_dim.  Read it with
     * fg_spec_head_dim_v.  After the mask, so that {head_dim, dtype, ...}
     * initialisers keep meaning dv == d; keys and SPEC text name it only when it differs,
     * so every key of an equal-dims variant is what it was before. */
    int head_dim_v;
    /* Which pass: FG_KIND_FWD (0), FG_KIND_BWD (1, templates/bwd_mma.lua:
     * preprocess, main and dQ-conversion kernels in one module) or
     * FG_KIND_APPEND (2, templates/kv_append.lua: fg_kv_append's copy and
     * advance kernels, keyed by dtype and head dims).  Keys of forward
     * variants do not name it, so they are unchanged. */
    int kind;
    /* Inference variant (forward, mma.sync path): per-sequence lengths
     * (cu_seqlens, seqlens_k), paged K/V, split-KV partial outputs and GQA
     * packing, each switched on at run time by the kernel parameters
     * (templates/fg_infer.cuh).  Keys name it only when set. */
    int infer;
    /* Score modifications compiled in (forward, mma.sync path, dense):
     * FG_MOD_* bits, docs/SCORE-WIRING.md.  Their values (cap, slopes,
     * window, sinks) are kernel parameters.  Keys and SPEC text name them
     * only when set (",mods=softcap+alibi+window+sink"), and the template
     * emits their traits only then, so other variants render as before. */
    int mods;
    /* A user score expression (fg_score_create), or none: score_hash all
     * zero.  score_cuda is the C++ the kernel inlines, score_text its
     * canonical form (both owned by the fg_score); the key names it by the
     * SHA-256 of score_cuda (",score=<hex>"). */
    fg_mask_hash score_hash;
    const char *score_cuda, *score_text;
    /* FP8 (dtype FG_E4M3) only: o's 16-bit type, FG_FP16 (0) or FG_BF16;
     * keys and SPEC text name it (",out=bf16") only for e4m3 variants. */
    fg_dtype out_dtype;
    /* The CUDA form of the score expression's derivative with respect to
     * score (the backward's; owned by the fg_score), NULL where
     * fg_score_expr_derivative refused it.  Made by flashgen's generator,
     * not by the templates, so a backward variant's key folds it into the
     * score hash (fg_variant_format); last, so positional initialisers
     * stay whole. */
    const char *score_cuda_d;
} fg_spec;
#define FG_MOD_SOFTCAP 1
#define FG_MOD_ALIBI 2
#define FG_MOD_WINDOW 4
#define FG_MOD_SINK 8
#define FG_MOD_ALL 15
#define FG_MOD_SCORE 16 /* a user score expression: never in spec.mods (spec.score_hash names it) */
#define FG_KIND_FWD 0
#define FG_KIND_BWD 1
#define FG_KIND_APPEND 2

typedef struct fg_config {
    int block_m, block_n, warps, stages; /* 0 = unset */
    int q_in_regs;                       /* -1 = unset (mma path only) */
    int min_blocks;                      /* 0 = unset */
    int wgmma;                           /* kernel family: 2 Hopper warp-specialised (TMA producer,
                                            wgmma consumers), 1 Hopper wgmma, 0 mma.sync; -1 = unset */
    int ws_off;                          /* TMA family only: FG_WS_NO_* bits of what is switched off
                                            (0: ping-pong, intra-warpgroup overlap and a persistent
                                            grid, the defaults) */
} fg_config;

#define FG_WS_NO_PINGPONG 1   /* consumer warpgroups do not take turns on the tensor cores */
#define FG_WS_NO_OVERLAP 2    /* no S GEMM in flight during the previous tile's softmax */
#define FG_WS_NO_PERSISTENT 4 /* one CTA per tile instead of one per SM */

typedef struct fg_variant {
    fg_spec spec;
    fg_config cfg;
} fg_variant;

#define FG_SPEC_HELP                                                                          \
    "SPEC is a comma-separated list of key=value:\n"                                          \
    "  hdim=N            head dim, a multiple of 8 in 8..256 (required)\n"                   \
    "  hdim_v=N          value head dim (v and o), a multiple of 8 in 8..256 (default hdim)\n"\
    "  dtype=bf16|fp16|e4m3  element type (default bf16); e4m3: FP8 q, k, v (TMA path)\n"   \
    "  out=fp16|bf16     e4m3 only: the output type (default fp16)\n"                       \
    "  causal=none|bottom_right|top_left   (also 0/1; default none)\n"                       \
    "  sparse=0|1        block-sparse layout (default 0)\n"                                  \
    "  kind=fwd|bwd      forward (default) or backward kernels\n"                          \
    "  infer=0|1         inference variant: varlen, KV-cache lengths, paged KV, split-KV\n"\
    "  mods=softcap+alibi+window+sink   score modifications compiled in (any of them)\n"\
    "  block_m=N block_n=N warps=N stages=1..3 q_in_regs=0|1 min_blocks=N\n"               \
    "                    block configuration (default: tuned or built-in heuristic)\n"       \
    "  wgmma=0|1|2       kernel path: 2 Hopper TMA + warp-specialised, 1 Hopper wgmma\n"        \
    "  pingpong=0|1 overlap=0|1 persistent=0|1   TMA path only (default 1 each)\n"           \
    "                    (sm_90a, hdim 64/128/192/256, hdim_v = hdim),\n"                   \
    "                    0 portable mma.sync (default: chosen with the configuration)\n"   \
    "example: hdim=128,dtype=bf16,causal=bottom_right\n"

void fg_config_unset(fg_config *c);
/* Parses SPEC text.  *causal receives the alignment named (NONE when absent). */
fg_status fg_spec_parse(const char *text, fg_variant *v, fg_causal *causal, fg_error *err);
/* Room for fg_variant_format's text (config, TMA options, a mask's SHA-256). */
#define FG_VARIANT_TEXT_MAX 512
/* Canonical text of the spec and config ("hdim=128,dtype=bf16,..."). */
void fg_variant_format(const fg_variant *v, char *buf, size_t n);
/* Whether two configurations compile to the same kernel (they differ at
 * most in launch options: persistent=0); fg_variant_key agrees. */
int fg_config_same_kernel(const fg_config *a, const fg_config *b);
/* The template that renders v: fwd_mma, fwd_wgmma, fwd_ws, bwd_mma or kv_append. */
const char *fg_variant_template(const fg_variant *v);
/* The full variant key: template, spec, config, template hash, NVRTC
 * version and target arch. */
void fg_variant_key(const fg_variant *v, const char *tpl_hash, int nvrtc_major, int nvrtc_minor,
                    const char *arch, char *buf, size_t n);
/* A configuration alone, "wgmma=1,block_m=64,block_n=128,warps=4,stages=1,q_in_regs=0,min_blocks=1",
 * and back (FG_ERR_INVALID_ARGUMENT when the text is not one). */
void fg_config_format(const fg_config *c, char *buf, size_t n);
fg_status fg_config_parse(const char *text, fg_config *c, fg_error *err);
/* The identity of a rendered mask (never all zero), whether h names a mask,
 * and its key item: ",mask=" and 64 hex digits, or "" without a mask (the
 * one formatter of the variant key and the tuning spec). */
fg_mask_hash fg_mask_hash_of(const char *mask_cuda);
int fg_mask_hash_set(const fg_mask_hash *h);
void fg_mask_hash_format(const fg_mask_hash *h, char *buf, size_t n);
/* The same for a score expression: ",score=" and 64 hex digits, or "". */
void fg_score_hash_format(const fg_mask_hash *h, char *buf, size_t n);
/* Same compile-time identity (the mask by its SHA-256; head_dim_v 0 and
 * head_dim_v == head_dim alike). */
int fg_spec_equal(const fg_spec *a, const fg_spec *b);
/* The value head dim: s->head_dim_v, or head_dim when that is 0. */
int fg_spec_head_dim_v(const fg_spec *s);
/* The one check of a pair of head dims (descriptor, SPEC, configuration):
 * each a multiple of 8 in 8..256; FG_ERR_UNSUPPORTED naming the bad one. */
fg_status fg_head_dims_check(int head_dim, int head_dim_v, fg_error *err);
/* The variant key / tuning spec item of the value head dim: ",hdim_v=N", or
 * "" when it equals head_dim. */
void fg_spec_head_dim_v_item(const fg_spec *s, char *buf, size_t n);
/* Whether s has a built-in score modification or a score expression (the
 * mma.sync forward only). */
int fg_spec_has_mods(const fg_spec *s);
/* The key / SPEC item of spec mods: ",mods=softcap+alibi+window+sink" (the
 * bits set, in that order), or "" without any. */
void fg_spec_mods_item(int mods, char *buf, size_t n);
/* "softcap+window" -> bits; 0 when a name is not one of the four. */
int fg_spec_mods_parse(const char *text, int *mods);
/* The template parameter name of bit i (0..3): softcap, alibi, window, sink. */
const char *fg_spec_mod_name(int i);
const char *fg_dtype_name(fg_dtype d);
/* o's element type: out_dtype for e4m3 variants, else the input type. */
fg_dtype fg_spec_out_dtype(const fg_spec *s);
const char *fg_causal_name(fg_causal c);
#endif
