/* flashgen.h: JIT-specialised FlashAttention for C and C++ hosts.
 *
 * The only public header.  Every call takes the context first and returns an
 * fg_status; on failure the message is read with fg_errmsg(ctx).
 *
 *   fg_context *ctx;
 *   fg_context_create(&ctx);
 *   fg_attention_desc d;
 *   fg_attention_desc_init(&d, FG_BF16, 128, batch, heads, heads, seqlen, seqlen);
 *   d.causal = FG_CAUSAL_BOTTOM_RIGHT;
 *   if (fg_attention_forward(ctx, &d, q, k, v, o, lse, stream) != FG_OK)
 *       fprintf(stderr, "%s\n", fg_errmsg(ctx));
 *   fg_context_destroy(ctx);
 *
 * Structs passed in and out grow by appending fields; see "How the public
 * structs grow" below.
 * Threads: one context may be used from several threads at once; kernels
 * are compiled once per variant per context and shared.
 * CUDA: the driver (libcuda.so.1) and NVRTC (libnvrtc.so.13) are loaded at
 * run time, on the first call that needs them.  A program linked with
 * flashgen starts on a machine without a driver; the calls that need one
 * return FG_ERR_NO_DRIVER / FG_ERR_NO_DEVICE.
 * Cache: compiled kernels and tuning results persist in one SQLite file
 * ($FLASHGEN_CACHE, else $XDG_CACHE_HOME/flashgen/cache.db, else
 * ~/.cache/flashgen/cache.db; "off" keeps them in memory), so that a second
 * process runs without compiling.  See fg_context_set_cache and fg_tune.
 * Device calls run in the CUDA context that is current on the calling
 * thread; when none is, the primary context of device 0 is retained and
 * made current. */
#ifndef FLASHGEN_H
#define FLASHGEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLASHGEN_VERSION_MAJOR 0
#define FLASHGEN_VERSION_MINOR 1
#define FLASHGEN_VERSION_PATCH 0

/* ---- How the public structs grow -----------------------------------------
 *
 * A program built against this header keeps working, unchanged, with a later
 * library whose structs have more fields.  The rules:
 *
 * 1. Every struct the caller allocates and the library reads or fills
 *    (fg_attention_desc, fg_tune_options, fg_context_stats) begins with
 *    `uint32_t struct_size`: sizeof the struct as the caller's header
 *    declares it.  fg_attention_desc_init sets it (a macro passing
 *    sizeof(fg_attention_desc)); for the others zero the struct and set it,
 *    in one line:  fg_tune_options o = {.struct_size = sizeof o};
 * 2. Fields are only ever appended, at or after the previous version's
 *    sizeof; none is removed, reordered or retyped.  A new field's zero value
 *    means the behaviour of the version before it.
 * 3. The library reads (and, for fg_context_stats, writes) only the first
 *    struct_size bytes; the fields past them count as zero.
 * 4. A program built against a newer header than the library: bytes past
 *    the fields the library knows must be zero (the newer features unused),
 *    else the call returns FG_ERR_UNSUPPORTED naming the struct.
 * 5. struct_size smaller than this first version's fields:
 *    FG_ERR_INVALID_ARGUMENT (the struct was not initialised).
 *
 * fg_tune_progress, which the library fills and hands to a callback, carries
 * the library's struct_size: read a field only when struct_size covers it.
 * fg_block_layout_desc is frozen: it is FlexAttention's BlockMask (four
 * arrays), and another layout format would be a new struct with new calls.
 *
 * Fields appended so far: fg_attention_desc.head_dim_v, then the backward
 * fields (deterministic, gradient strides), then the inference fields
 * (cu_seqlens_q/k, total_q/k, seqlens_k, block_table, page_size, num_pages,
 * max_pages, num_splits), then the score modifications (softcap,
 * alibi_slopes, alibi_batch_stride, window_left, window_right, sinks,
 * score), whose window pair is off at -1, not 0 (see there), then the FP8
 * fields (out_dtype, q/k/v_descale, descale_per_head), then dsinks;
 * fg_context_stats: sparse_lists_built and sparse_list_launches. */

typedef enum fg_status {
    FG_OK = 0,
    FG_ERR_INVALID_ARGUMENT = 1, /* a NULL, misaligned or inconsistent argument */
    FG_ERR_UNSUPPORTED = 2,      /* valid, but not a variant flashgen builds    */
    FG_ERR_NO_DRIVER = 3,        /* libcuda.so.1 could not be loaded           */
    FG_ERR_NO_DEVICE = 4,        /* driver present, no usable GPU              */
    FG_ERR_NVRTC = 5,            /* libnvrtc could not be loaded               */
    FG_ERR_COMPILE = 6,          /* NVRTC rejected the source (log in errmsg)  */
    FG_ERR_TEMPLATE = 7,         /* a Lua template failed (traceback in errmsg)*/
    FG_ERR_CUDA = 8,             /* a driver call failed (error name in errmsg)*/
    FG_ERR_OUT_OF_MEMORY = 9,
    FG_ERR_BAD_LAYOUT = 10,      /* block-sparse layout out of range           */
    FG_ERR_CACHE = 11,           /* the kernel cache store failed              */
    FG_ERR_INTERNAL = 12,
    FG_ERR_CANCELLED = 13,       /* fg_tune stopped by its cancel flag; finished work is stored */
    FG_ERR_PATTERN = 14          /* a block-sparse pattern failed: Lua error,
                                    sandbox limit or bad mask expression
                                    (file:line or column in errmsg)         */
} fg_status;

/* FG_E4M3: FP8 (OCP e4m3fn: 1 sign, 4 exponent bits of bias 7, 3 mantissa
 * bits; 448 the largest, no infinity, 0x7f/0xff NaN) q, k and v with fp32
 * accumulation and an fp16 or bf16 output (fg_attention_desc.out_dtype),
 * forward only, on the Hopper TMA path (sm_90a); see the descale fields. */
typedef enum fg_dtype { FG_FP16 = 0, FG_BF16 = 1, FG_E4M3 = 2 } fg_dtype;

typedef enum fg_causal {
    FG_CAUSAL_NONE = 0,
    /* key j visible from query i iff j <= i + seqlen_k - seqlen_q
     * (FlashAttention's convention for seqlen_q != seqlen_k) */
    FG_CAUSAL_BOTTOM_RIGHT = 1,
    /* key j visible from query i iff j <= i (PyTorch's is_causal) */
    FG_CAUSAL_TOP_LEFT = 2
} fg_causal;

/* Which kernel family runs a call. */
typedef enum fg_kernel_path {
    FG_PATH_AUTO = 0,  /* the fastest family that applies: TMA, then wgmma, then mma.sync */
    FG_PATH_MMA = 1,   /* portable tensor-core path (mma.sync), sm_80 and up; any head_dim_v */
    FG_PATH_WGMMA = 2, /* Hopper path (wgmma, cp.async loads), sm_90a, head_dim 64/128/192/256,
                          head_dim_v == head_dim */
    FG_PATH_TMA = 3    /* Hopper warp-specialised path: a TMA producer warp, wgmma consumer
                          warpgroups in ping-pong; sm_90a, head_dim and head_dim_v multiples
                          of 16; strides of dims longer than 1 non-zero */
} fg_kernel_path;

typedef struct fg_context fg_context;
/* A block-sparse layout, validated and resident on the device. */
typedef struct fg_block_layout fg_block_layout;

/* Returns a static, human-readable name of a status code. */
const char *fg_status_name(fg_status s);

/* Creates a context.  *ctx is set even on failure when memory allowed it,
 * so that fg_errmsg can say why; destroy it in any case. */
fg_status fg_context_create(fg_context **ctx);
/* Frees the context, its compiled modules and its device buffers.
 * fg_context_destroy(NULL) does nothing. */
void fg_context_destroy(fg_context *ctx);
/* The message of the most recent call on ctx from the calling thread that
 * failed (with its cause: NVRTC log, Lua traceback, driver error name,
 * failing variant key).  Owned by ctx; valid until the calling thread's next
 * failing call on ctx or fg_context_destroy; other threads' failures do not
 * touch it.  Never NULL: "" before any failure, a fixed text for ctx == NULL. */
const char *fg_errmsg(const fg_context *ctx);

/* Chooses the persistent cache file of ctx: NULL for the default location
 * (see the top of this file), "off" for memory only.  Call it before the
 * first call that compiles; afterwards it returns FG_ERR_INVALID_ARGUMENT.
 * A file that cannot be created or written, or is corrupt, never fails a
 * call: a corrupt SQLite file is moved aside and rebuilt; a file that is not
 * a SQLite database, or an unwritable location, falls back to memory; each
 * prints one warning on stderr. */
fg_status fg_context_set_cache(fg_context *ctx, const char *path);

/* What a context did so far (monotonic counters). */
typedef struct fg_context_stats {
    uint32_t struct_size;     /* set by the caller: fg_context_stats s = {.struct_size = sizeof s}; */
    long kernels_compiled;    /* rendered and compiled with NVRTC            */
    long kernels_from_cache;  /* loaded from the cache file, no compile      */
    long kernels_evicted;     /* stored cubins that failed to load (rebuilt) */
    long configs_tuned;       /* block configurations taken from fg_tune results */
    long configs_heuristic;   /* ... from the built-in heuristic             */
    char cache_path[1024];    /* the cache file in use, ":memory:", or "" before first use */
    char gpu_identity[512];   /* the identity cache rows are keyed by, "" before first use */
    /* block-sparse layouts on the Hopper TMA kernel: the persistent grid's
     * tile lists built (one per layout and call shape, kept with the
     * layout), and the launches that followed one (the others ran one CTA
     * per query tile) */
    long sparse_lists_built;
    long sparse_list_launches;
} fg_context_stats;
/* Fills the first out->struct_size bytes of *out. */
fg_status fg_context_get_stats(fg_context *ctx, fg_context_stats *out);

/* Host-side description of a block-sparse layout, in FlexAttention's
 * BlockMask terms.  All arrays are host memory, int32, row-major:
 *   kv_num_blocks       [batch, heads, num_q_blocks]      partial blocks
 *   kv_indices          [batch, heads, num_q_blocks, num_kv_blocks]
 *   full_kv_num_blocks  [batch, heads, num_q_blocks]      (may be NULL)
 *   full_kv_indices     [batch, heads, num_q_blocks, num_kv_blocks]
 * batch and heads may be 1 (broadcast).  Full blocks are computed without
 * an element mask; partial blocks get the causal mask of the attention
 * descriptor (none when it is FG_CAUSAL_NONE) and, for a layout made by
 * fg_pattern_layout, the pattern's element mask.  num_q_blocks must be
 * ceil(seqlen_q / block_q) and num_kv_blocks ceil(seqlen_k / block_k) of the
 * call it is used with. */
typedef struct fg_block_layout_desc {
    int batch, heads;
    int num_q_blocks, num_kv_blocks;
    int block_q, block_k;           /* block_q a multiple of 64, block_k of 16; 0 means 128 */
    const int32_t *kv_num_blocks;
    const int32_t *kv_indices;
    const int32_t *full_kv_num_blocks;
    const int32_t *full_kv_indices;
} fg_block_layout_desc;

/* Validates (counts within [0, num_kv_blocks], indices within
 * [0, num_kv_blocks), no block listed twice in one row) and uploads a
 * layout.  Returns FG_ERR_BAD_LAYOUT with the first bad entry named. */
fg_status fg_block_layout_create(fg_context *ctx, const fg_block_layout_desc *desc,
                                 fg_block_layout **layout);
/* Frees the layout's device memory (in ctx's CUDA context, whatever is
 * current on the calling thread).  The layout must outlive the work that
 * reads it: launched calls still running, plans made with it, and CUDA
 * graphs that captured a call with it. */
void fg_block_layout_destroy(fg_context *ctx, fg_block_layout *layout);

/* ---- Block-sparse patterns ------------------------------------------------
 *
 * A pattern is a Lua description of a block-sparse mask (docs/PATTERNS.md):
 * built-in (causal, sliding_window, dilated, global, longformer, bigbird,
 * random, document), a Lua expression combining them
 * ("union(sliding_window{window=128}, global{tokens=64})"), or a user file
 * ending in ".lua".  Lua runs in a sandbox (no io, os, require, debug,
 * bytecode; memory and instruction limits).  A pattern gives a block
 * classification and/or an element predicate written in a small expression
 * language (FlexAttention's mask_mod); the kernel evaluates the predicate on
 * partial blocks only.  Errors are FG_ERR_PATTERN with the file and line (Lua)
 * or the column (mask expression) in fg_errmsg.
 *
 * A pattern is used by one thread at a time and must be destroyed before
 * its context.  No GPU is needed except for fg_pattern_layout. */
typedef struct fg_pattern fg_pattern;

/* pattern: a built-in name, a Lua expression over the built-ins, or a path
 * ending in ".lua".  params: "name=value" items separated by ';' or spaces,
 * a value a number or a comma-separated list ("window=256; lengths=100,200");
 * NULL or "" for the defaults.  *out is NULL on failure. */
fg_status fg_pattern_create(fg_context *ctx, const char *pattern, const char *params, fg_pattern **out);
/* fg_pattern_destroy(NULL) does nothing. */
void fg_pattern_destroy(fg_pattern *p);
/* Display name ("sliding_window", "union(random, global)", the file path). */
const char *fg_pattern_name(const fg_pattern *p);

typedef enum fg_mask_syntax {
    FG_MASK_TEXT = 0,  /* canonical expression, constants by name */
    FG_MASK_CUDA = 1,  /* the C++ the kernel inlines (reads p.mask_c[i]) */
    FG_MASK_PYTHON = 2 /* calls of _lt, _and, _div, _sel, ... (python/flashgen/_mask.py); constant i is _c[i] */
} fg_mask_syntax;
/* The element predicate of partial blocks, or NULL for a block-level
 * pattern (every block full or empty).  Owned by p. */
const char *fg_pattern_mask(const fg_pattern *p, fg_mask_syntax syntax);
/* The mask's named constants, in the order the CUDA and Python forms index
 * them (sorted by name).  Fills at most max entries (names owned by p);
 * returns the count (0 for a block-level pattern). */
int fg_pattern_mask_consts(const fg_pattern *p, const char **names, int64_t *values, int max);

/* Evaluates the pattern into host block lists for one problem size.
 * out->batch / out->heads are 1 unless the pattern depends on them; the
 * arrays are owned by p and valid until the next evaluation of p or its
 * destruction. */
fg_status fg_pattern_eval(fg_context *ctx, fg_pattern *p, int batch, int heads, int seqlen_q, int seqlen_k,
                          int block_q, int block_k, fg_block_layout_desc *out);
/* fg_pattern_eval, then fg_block_layout_create; the layout carries the
 * pattern's element predicate (applied by fg_attention_forward to partial
 * blocks, together with the descriptor's causal mask) and may be used only
 * with this seqlen_q and seqlen_k. */
fg_status fg_pattern_layout(fg_context *ctx, fg_pattern *p, int batch, int heads, int seqlen_q, int seqlen_k,
                            int block_q, int block_k, fg_block_layout **layout);

/* ---- User score modifications -------------------------------------------
 *
 * A score expression (docs/SCORES.md: FlexAttention's score_mod as a small,
 * validated language) over `score` (the logit: scaled, after softcap and
 * ALiBi), b, h, q_idx, kv_idx, named constants and named read-only device
 * tables, e.g. "score + bias[h * 7 + min(max(kv_idx - q_idx, -3), 3) + 3]".
 * fg_attention_desc.score applies it in the forward (mma.sync and TMA paths, dense;
 * docs/SCORE-WIRING.md).  The expression is compiled into the kernel: its
 * CUDA form (which depends on the int constants' values, not the float
 * ones') names the variant by its SHA-256; the constants and table pointers
 * are kernel parameters.  The tables must stay valid while calls use the
 * score; the score must be destroyed after its last call and after the
 * plans (fg_attention_plan_create) made with it, and before its context.
 * fg_score_arg is frozen (no struct_size): a later kind of argument would be
 * a new kind value. */
typedef struct fg_score fg_score;
typedef enum fg_score_arg_kind {
    FG_SCORE_CONST_INT = 0,   /* value in i */
    FG_SCORE_CONST_FLOAT = 1, /* value in f (rounded to fp32) */
    FG_SCORE_TABLE_INT32 = 2, /* device int32 [n], read as name[index], index clamped to [0, n-1] */
    FG_SCORE_TABLE_FLOAT = 3  /* device fp32 [n], likewise */
} fg_score_arg_kind;
typedef struct fg_score_arg {
    const char *name;
    fg_score_arg_kind kind;
    int64_t i;
    double f;
    const void *data; /* tables: device pointer, 4-byte aligned */
    int64_t n;        /* tables: elements, 1 .. 2^31 - 1 */
} fg_score_arg;
/* At most 16 constants and 8 tables.  FG_ERR_PATTERN with the column for
 * an expression error, FG_ERR_INVALID_ARGUMENT for a bad argument.  No GPU
 * needed.  *out is NULL on failure. */
fg_status fg_score_create(fg_context *ctx, const char *expr, const fg_score_arg *args, int nargs, fg_score **out);
/* fg_score_destroy(NULL) does nothing. */
void fg_score_destroy(fg_score *s);
/* The canonical text of the expression (owned by s). */
const char *fg_score_text(const fg_score *s);

/* One attention call.  Tensors are device pointers, 16-byte aligned, with
 * element strides (the last dimension is contiguous); strides must be
 * multiples of 8.  q: [batch, seqlen_q, heads_q, head_dim] by default
 * (BSHD); any batch/head/row strides work, BHSD included.
 * k: [batch, seqlen_k, heads_kv, head_dim] likewise; v: [batch, seqlen_k,
 * heads_kv, head_dim_v] and o: [batch, seqlen_q, heads_q, head_dim_v], where
 * head_dim_v is the value head dim (head_dim unless set). */
typedef struct fg_attention_desc {
    uint32_t struct_size;         /* sizeof(fg_attention_desc) of the caller's header: set by fg_attention_desc_init */
    fg_dtype dtype;
    int head_dim;                 /* multiple of 8, 8..256 */
    int batch, heads_q, heads_kv; /* heads_q a multiple of heads_kv (GQA/MQA) */
    int seqlen_q, seqlen_k;
    int64_t q_strides[3];         /* batch, head, row (in elements) */
    int64_t k_strides[3];
    int64_t v_strides[3];
    int64_t o_strides[3];
    float softmax_scale;          /* 0 means 1/sqrt(head_dim) */
    fg_causal causal;
    const fg_block_layout *layout; /* NULL: dense */
    /* Block sizes; 0 picks them (tuned result, else the built-in heuristic). */
    int block_m, block_n, warps, stages;
    fg_kernel_path path;          /* FG_PATH_AUTO picks with the block sizes */
    /* ---- appended after the first version (struct_size rules above) ---- */
    /* Value head dim (v's and o's last dim): 0 means head_dim; else a
     * multiple of 8 in 8..256, e.g. DeepSeek-V2/V3 prefill's 192/128.
     * FG_PATH_MMA takes every pair; FG_PATH_TMA pairs of multiples of 16;
     * FG_PATH_WGMMA only head_dim_v == head_dim (AUTO skips it otherwise).
     * fg_attention_backward takes every pair (dout and dv like o and v).
     * Head dims above 256 (MLA decode's 576/512) are not supported: they
     * need a decode kernel flashgen does not have yet.  Set it with
     * fg_attention_desc_set_head_dim_v, which also sets v's and o's BSHD
     * strides, or set it and those strides yourself. */
    int head_dim_v;
    /* ---- read by fg_attention_backward only (appended; zero = default) ---- */
    int deterministic;            /* non-zero: dq bitwise identical from run to run (dQ
                                     summed over key blocks in a fixed order, not by
                                     racing atomics); dk and dv always are */
    /* Strides of the gradient tensors, like q_strides; all three zero: the
     * strides of the forward tensor of the same shape (dout: o, dq: q,
     * dk: k, dv: v). */
    int64_t do_strides[3];
    int64_t dq_strides[3];
    int64_t dk_strides[3];
    int64_t dv_strides[3];
    /* ---- inference (appended; all zero = off): variable lengths, KV
     * caches, paged KV, split-KV.  docs/INFERENCE.md has the whole story.
     * The tables are device memory read by the kernels at run time, never
     * by the host: their contents may change between calls (and between
     * replays of a CUDA graph) without a new plan.  Entries out of range
     * never cause an out-of-bounds access: the kernels clamp them, skip what
     * they name and record the first bad entry (fg_attention_table_error).
     * The tables themselves must be device memory of the current context,
     * 4-byte aligned and as long as the descriptor says (cu_seqlens
     * batch + 1 entries, seqlens_k batch, block_table batch * max_pages):
     * each call checks their allocations without a sync
     * (FG_ERR_INVALID_ARGUMENT).  The backward pass takes none of these
     * fields (FG_ERR_UNSUPPORTED).
     *
     * Variable lengths (FlashAttention's varlen): cu_seqlens_q, int32
     * [batch + 1], non-decreasing from 0: sequence b's queries are rows
     * cu_seqlens_q[b] .. cu_seqlens_q[b+1]-1 of q and o, which are packed
     * [total_q, heads, d] (q_strides[0] and o_strides[0] are ignored);
     * seqlen_q is then the longest sequence (max_seqlen_q) and lse is
     * [heads_q, total_q].  cu_seqlens_k and total_k likewise for k and v
     * (not with a block table). */
    const int32_t *cu_seqlens_q;
    const int32_t *cu_seqlens_k;
    int total_q, total_k;
    /* Keys used per sequence (a KV cache's fill), int32 [batch]: sequence b
     * attends to keys 0 .. seqlens_k[b]-1; seqlen_k is then the capacity
     * (the most any entry may say).  With cu_seqlens_k: the first
     * seqlens_k[b] keys of sequence b (FlashAttention's seqused_k).
     * Causal alignment follows each sequence's own lengths. */
    const int32_t *seqlens_k;
    /* Paged KV cache (vLLM / FlashInfer layout): k and v are
     * [num_pages, page_size, heads_kv, d] (k_strides[0] / v_strides[0]: the
     * page stride), block_table int32 [batch, max_pages] (row stride
     * max_pages) names the pages of each sequence in order; key j of
     * sequence b is row j % page_size of page block_table[b][j / page_size].
     * page_size a multiple of 16 (vLLM uses 16, FlashInfer up to 256);
     * seqlen_k (the capacity) at most max_pages * page_size. */
    const int32_t *block_table;
    int page_size, num_pages, max_pages;
    /* Split-KV (flash-decoding): the key range of each query tile split over
     * num_splits CTAs (at most one per key tile) whose partial results are
     * merged by their logsumexp.  0: a plan chooses from the SM count and
     * the sizes; 1: never.  Splits need a workspace, so only plans split
     * (fg_attention_plan_create): fg_attention_forward runs 0 as 1 and
     * refuses n > 1. */
    int num_splits;
    /* ---- score modifications (appended; docs/SCORE-WIRING.md).  Forward,
     * mma.sync and TMA paths, dense (no layout) and not with the inference
     * fields, 16-bit inputs: elsewhere (a layout, the inference fields,
     * FG_PATH_WGMMA, FG_E4M3 inputs) a call that sets one returns
     * FG_ERR_UNSUPPORTED naming it (FG_PATH_AUTO takes the TMA kernel on
     * Hopper, else mma.sync; the backward: see there).  The logit of query i
     * and key j is built in this order, as FlashAttention-2 does:
     *   x = softmax_scale * q_i . k_j
     *   x = softcap * tanh(x / softcap)                    (softcap > 0)
     *   x = x - slope * |i + off - j|                      (alibi_slopes)
     * then the causal mask and the window, then the softmax (with the sink
     * in its denominator).  off aligns the last query with the last key
     * (off = seqlen_k - seqlen_q, FlashAttention-2's convention), or is 0
     * with FG_CAUSAL_TOP_LEFT.
     *
     * softcap: 0 = off; else > 0, at most 2e38 (Gemma 2's 50.0, Grok's 30.0). */
    float softcap;
    /* ALiBi: NULL = off; else device fp32 slopes, slope of (b, h) at
     * alibi_slopes[b * alibi_batch_stride + h]: stride 0 for one [heads_q]
     * vector, heads_q for a [batch, heads_q] array. */
    const float *alibi_slopes;
    int64_t alibi_batch_stride;
    /* Local window (FlashAttention-2's window_size): key j is visible from
     * query i iff i + off - window_left <= j <= i + off + window_right; -1
     * leaves that side unbounded.  With causal, the causal limit also holds
     * (window_right above 0 then changes nothing).  Rows whose window holds
     * no key give o = 0 and lse = -inf (or the sink).
     * THE ONE FIELD PAIR WHOSE "OFF" IS NOT ZERO: fg_attention_desc_init
     * sets both to -1, and a caller whose struct_size does not cover them
     * (an older header) reads as -1, so rule 2's promise holds for old
     * programs; a descriptor set up without fg_attention_desc_init must set
     * them to -1 itself. */
    int window_left, window_right;
    /* Attention sinks (gpt-oss): NULL = off; else device fp32 [heads_q], a
     * logit per head added to each row's softmax denominator only:
     *   o_i = sum_j exp(x_ij - M) v_j / (exp(sink - M) + sum_j exp(x_ij - M))
     *   lse_i = log(exp(sink) + sum_j exp(x_ij)) */
    const float *sinks;
    /* A user score expression (fg_score_create), applied after softcap and
     * ALiBi; NULL = none. */
    const fg_score *score;
    /* ---- FP8 (appended; read only when dtype is FG_E4M3) ----
     * o's element type: FG_FP16 (the zero value) or FG_BF16.  With another
     * dtype o has the input's type and out_dtype must be 0 or that dtype.
     * Descale factors, device fp32 read by the kernel (so quantisation can
     * run on the device without a sync): the kernel computes
     * softmax(scale * q_descale * k_descale * Q8 K8^T) V8 * v_descale, Q8, K8,
     * V8 the stored e4m3 values.  NULL means 1.0.  descale_per_head 0: each
     * pointer names one float (per tensor); 1: [batch, heads_kv] floats,
     * row-major (q's of a query head are those of its kv head, as in
     * FlashAttention-3).  Score modifications (above) are not built for
     * FG_E4M3 yet: setting one returns FG_ERR_UNSUPPORTED. */
    fg_dtype out_dtype;
    const float *q_descale, *k_descale, *v_descale;
    int descale_per_head;
    /* appended, for fg_attention_backward: NULL, or device fp32 [heads_q]
     * overwritten with d loss / d sinks (fp32 atomics: not deterministic) */
    float *dsinks;
} fg_attention_desc;

/* Fills d with the given sizes, BSHD contiguous strides, default scale,
 * no causal mask, dense, automatic block sizes, every later field zero, and
 * struct_size.  A macro, so that struct_size is the caller's sizeof; it
 * calls fg_attention_desc_init_sized, which writes only struct_size bytes
 * (bindings that mirror the struct call that with their own size). */
#define fg_attention_desc_init(d, dtype, head_dim, batch, heads_q, heads_kv, seqlen_q, seqlen_k)                  \
    fg_attention_desc_init_sized((d), sizeof(fg_attention_desc), (dtype), (head_dim), (batch), (heads_q), (heads_kv), \
                                 (seqlen_q), (seqlen_k))
void fg_attention_desc_init_sized(fg_attention_desc *d, size_t struct_size, fg_dtype dtype, int head_dim, int batch,
                                  int heads_q, int heads_kv, int seqlen_q, int seqlen_k);
/* Sets d->head_dim_v and v's and o's strides to BSHD contiguous for it
 * (the other sizes as d has them).  FG_ERR_INVALID_ARGUMENT when d is NULL
 * or its struct_size does not cover head_dim_v (an older header); the value
 * itself is checked by the call that uses d. */
fg_status fg_attention_desc_set_head_dim_v(fg_attention_desc *d, int head_dim_v);

/* o = softmax(q k^T * scale + mask) v.  lse: fp32 [batch, heads_q, seqlen_q],
 * natural log, may be NULL.  A query row that sees no key gets o = 0 and
 * lse = -inf.  stream: a CUstream (NULL for the default stream). */
fg_status fg_attention_forward(fg_context *ctx, const fg_attention_desc *desc, const void *q,
                               const void *k, const void *v, void *o, float *lse, void *stream);

/* Compiles (or finds compiled) the kernel that fg_attention_forward would
 * launch for desc, without launching it.  With a block-sparse layout on the
 * Hopper TMA kernel it also builds the layout's tile list for this call
 * shape (the persistent grid's assignment of query tiles to CTAs, kept with
 * the layout until it is destroyed; fg_attention_plan_create builds it
 * too): otherwise the first call does, with a small allocation and a copy
 * on a private stream, which leaves a CUDA graph capture in progress
 * intact (the calling thread is in relaxed capture mode meanwhile).  A
 * layout keeps the lists of its first 8 call shapes (batch, heads,
 * seqlen_q, tile height, grid): calls of other shapes, and of a shape
 * whose list could not be built (out of memory), run one CTA per query
 * tile, correct but slower on uneven layouts.  fg_context_stats'
 * sparse_list_launches counts the launches that had a list; a layout per
 * shape keeps every one on it. */
fg_status fg_attention_prepare(fg_context *ctx, const fg_attention_desc *desc);
/* Which kernel fg_attention_forward runs for desc on this context's GPU:
 * its variant key, "<family>:<spec and block configuration>:tpl=...", where
 * family is fwd_ws (Hopper TMA, warp-specialised), fwd_wgmma (Hopper,
 * cp.async) or fwd_mma (portable), copied into buf (NUL-terminated,
 * truncated to n).  Compiles it like fg_attention_prepare. */
fg_status fg_attention_kernel_name(fg_context *ctx, const fg_attention_desc *desc, char *buf, size_t n);

/* ---- plan, then run ----------------------------------------------------------
 * For serving loops and CUDA graphs.  fg_attention_plan_create does all the
 * host work of a forward call once: it checks the descriptor, chooses the
 * configuration and the number of splits, and compiles (or loads) the
 * kernels.  fg_attention_run then only launches: no allocation, no
 * synchronisation, no compilation, so it can be captured in a CUDA graph and
 * replayed.  The plan keeps a copy of the descriptor (the table pointers
 * included; their contents are read on the device at each run).  A plan may
 * be run from several threads at once, each with its own workspace.
 *
 * workspace: device memory of at least fg_attention_plan_workspace() bytes,
 * 16-byte aligned, used by one run at a time (the split partial outputs in
 * fp32 and their logsumexps, O(splits * rows * head_dim_v), and one counter
 * per query tile); NULL is fine when that size is 0.  Zero it once after
 * allocating it (cudaMemset): every run leaves it zero again, so it can be
 * reused by any plan without clearing (a run on a workspace that was not
 * zero is reported by fg_attention_table_error).  The last split of each
 * query tile to finish merges the partials, so a run is one kernel launch. */
typedef struct fg_attention_plan fg_attention_plan;
fg_status fg_attention_plan_create(fg_context *ctx, const fg_attention_desc *desc, fg_attention_plan **plan);
size_t fg_attention_plan_workspace(const fg_attention_plan *plan);
/* The number of splits the plan runs with (1: no split). */
int fg_attention_plan_splits(const fg_attention_plan *plan);
fg_status fg_attention_run(const fg_attention_plan *plan, const void *q, const void *k, const void *v, void *o,
                           float *lse, void *workspace, size_t workspace_bytes, void *stream);
/* fg_attention_plan_destroy(NULL) does nothing. */
void fg_attention_plan_destroy(fg_attention_plan *plan);
/* Reads (synchronising with stream) and clears the context's table error
 * word: FG_OK when every cu_seqlens, seqlens_k and block_table entry that
 * the kernels of ctx read since the last check was in range; else
 * FG_ERR_BAD_LAYOUT with the first bad entry described in buf (and in
 * fg_errmsg).  A debugging aid: it synchronises. */
fg_status fg_attention_table_error(fg_context *ctx, char *buf, size_t n, void *stream);

/* Appends new keys and values to a KV cache: k_new and v_new are
 * [batch, seqlen_new, heads_kv, head_dim (v: head_dim_v)] with the given
 * element strides knew_strides / vnew_strides (batch, head, row, like
 * q_strides; NULL: BSHD contiguous); row i of
 * sequence b goes to key position seqlens_k[b] + i of the cache desc
 * describes (its k/v strides, seqlen_k capacity, block_table and pages as for
 * the forward; seqlens_k is required).  advance != 0: then seqlens_k[b] +=
 * seqlen_new on the device, in stream order, so the next forward call sees
 * the new keys.  A sequence whose new rows do not all fit (seqlens_k[b]
 * negative or past the capacity, seqlens_k[b] + seqlen_new past it, or a
 * page of its new rows out of range) is left as it was, nothing written and
 * not advanced, and the first bad entry is recorded like the forward's
 * table errors (fg_attention_table_error).  seqlen_new 0 writes nothing
 * on the device (it still compiles the kernel and makes the table error
 * word on a first call, so it serves as the warm-up below);
 * cu_seqlens_k is not taken (FG_ERR_UNSUPPORTED).  No allocation (but the
 * context's table error word, once), no synchronisation: a decode step that
 * calls it can be captured in a CUDA graph after a first call outside the
 * capture (which compiles the kernel of its dtype and head dims). */
fg_status fg_kv_append(fg_context *ctx, const fg_attention_desc *desc, const void *k_new, const void *v_new,
                       const int64_t knew_strides[3], const int64_t vnew_strides[3], int seqlen_new, void *k_cache,
                       void *v_cache, int advance, void *stream);

/* ---- backward pass ----------------------------------------------------------
 * Gradients of o = softmax(q k^T * scale + mask) v from the saved forward
 * output o and logsumexp lse (fg_attention_forward with a non-NULL lse, same
 * descriptor): P is recomputed from q, k and lse, never stored.
 * dout like o, dq like q, dk and dv like k and v (strides: the descriptor's
 * do/dq/dk/dv_strides, else those of o, q, k, v); with GQA/MQA, dk and dv of
 * a kv head are summed over the query heads of its group.  A query row that
 * saw no key (lse = -inf) contributes nothing: its dq row is 0.
 * Supported: the forward's dtypes, head dims (head_dim_v too: dout and dv
 * are then head_dim_v wide, dq and dk head_dim), causal modes and strides,
 * block-sparse layouts and patterns (desc->layout, the forward's, whose
 * transposed lists are built when it is created), on the portable mma.sync
 * kernel (sm_80 and later; FG_PATH_MMA) and, on sm_90a, the Hopper wgmma
 * kernel, which FG_PATH_AUTO takes for dense fp16/bf16 calls with head_dim
 * and head_dim_v each 64 or 128 (or both 256) unless deterministic, with TMA
 * loads where q, k, v and dout have strides a tensor map can describe
 * (every stride of a dim longer than 1 a multiple of 16 bytes) and
 * cp.async loads otherwise (FG_PATH_TMA and FG_PATH_WGMMA ask
 * for one of the two).  deterministic runs on mma.sync and
 * needs a dense call (FG_ERR_UNSUPPORTED with a layout).  Score
 * modifications: the built-ins on mma.sync only (dsinks), not desc->score.
 * Block sizes: desc->block_m (query tile, 32 or 64), block_n (key block,
 * 32/64/128, dividing a layout's block_k) and warps, else the heuristic.
 *
 * workspace: device memory of at least fg_attention_backward_workspace()
 * bytes, 16-byte aligned, used by this call only (one workspace per stream
 * at a time): the fp32 dQ accumulator [batch, heads_q, seqlen_q, head_dim],
 * D = rowsum(dout * o) and lse * log2(e), each [batch, heads_q, seqlen_q
 * rounded up to 64], and the deterministic
 * mode's counters [batch, heads_q, ceil(seqlen_q / 16)]: O(seqlen) extra
 * memory, none of it O(seqlen^2).  The call neither allocates nor
 * synchronises, so a training step that calls it can be captured in a CUDA
 * graph (after a first call outside the capture: the first call of a
 * variant compiles and loads its kernels); its contents need no
 * initialisation. */
fg_status fg_attention_backward_workspace(fg_context *ctx, const fg_attention_desc *desc, size_t *bytes);
fg_status fg_attention_backward(fg_context *ctx, const fg_attention_desc *desc, const void *q, const void *k,
                                const void *v, const void *o, const void *dout, const float *lse, void *dq, void *dk,
                                void *dv, void *workspace, size_t workspace_bytes, void *stream);

/* ---- autotuning ------------------------------------------------------------
 * fg_tune times every block configuration the kernels expose for one spec
 * (dtype, head dims, causal, path of `shape`) on this GPU, per seqlen bucket,
 * and stores the winners in the cache file; later calls of any process on a
 * GPU of the same identity (name, compute capability, SM count, driver,
 * NVRTC, templates) use them.  Candidates are pruned by the device's opt-in
 * shared-memory limit and by ptxas (registers, spills), compiled in
 * parallel, timed with CUDA events on representative shapes (16384 tokens,
 * heads * head_dim = 2048, as in the FlashAttention papers), and the winner's
 * output is checked against the float64 reference before it is stored. */
typedef struct fg_tune_progress {
    uint32_t struct_size;     /* the library's sizeof: fields past it are absent */
    const char *phase;        /* "compile", "time", "verify", "bucket done" */
    int done, total;          /* units of this fg_tune call */
    double elapsed_s, eta_s;
    const char *spec, *bucket, *config; /* what is being worked on */
    const char *best_config;  /* fastest so far in this bucket, NULL before any */
    double best_tflops;
    double heuristic_tflops;  /* "bucket done": the built-in heuristic's config */
    int kept_existing;        /* "bucket done": the cache already held a faster result */
} fg_tune_progress;

typedef struct fg_tune_options {
    uint32_t struct_size;     /* fg_tune_options o = {.struct_size = sizeof o}; */
    const int *seqlens;       /* buckets to tune (seqlen_q = seqlen_k); NULL: 512..16384 */
    int num_seqlens;
    int threads;              /* compile threads; 0: the number of CPUs (at most 32) */
    int reps;                 /* timed launches per candidate and bucket; 0: 10 */
    int top_k;                /* candidates timed in every bucket after the first pass; 0: 6 */
    volatile int *cancel;     /* when it becomes non-zero fg_tune stops at the next
                                 candidate and returns FG_ERR_CANCELLED (finished buckets stay stored) */
    void (*progress)(const fg_tune_progress *p, void *ud);
    void *ud;
    int heat_ms;              /* untimed launches before each bucket is timed, so that every
                                 candidate runs at the GPU's sustained clock (an H200 runs short
                                 bursts at 1980 MHz, a second of load at its 700 W cap and about
                                 1650 MHz); 0: 500 ms, < 0: none */
    int reserved_;            /* 0; named so that the struct's tail is no padding whose bytes
                                 an older library would read as a field it lacks */
} fg_tune_options;

/* shape: dtype, head_dim, head_dim_v, causal and path are used (sizes and strides are
 * not: each bucket has its own representative shape); dense only.  opt NULL:
 * every default. */
fg_status fg_tune(fg_context *ctx, const fg_attention_desc *shape, const fg_tune_options *opt);
/* The same for the backward pass (fg_attention_backward): its own
 * candidates (on sm_90a the Hopper kernel's configuration, and every
 * mma.sync one), timed as the three backward kernels on the same shapes
 * (TFLOP/s at 2.5x the forward's FLOPs), the winner's dq, dk and dv
 * checked against the float64 backward reference on a small GQA shape, and
 * stored per seqlen bucket under a spec of its own (",kind=bwd"), so
 * forward results are untouched.  fg_attention_backward then takes the
 * bucket's result.  shape: as fg_tune; FG_PATH_AUTO or FG_PATH_MMA (not
 * FG_PATH_WGMMA: one configuration); deterministic 0 (deterministic calls
 * keep the built-in heuristic). */
fg_status fg_tune_backward(fg_context *ctx, const fg_attention_desc *shape, const fg_tune_options *opt);

#ifdef __cplusplus
}
#endif
#endif
