/* internal.h: the context and the pieces of the runtime that share it. */
#ifndef FG_INTERNAL_H
#define FG_INTERNAL_H
#include <pthread.h>
#include "flashgen.h"
#include "cache/store.h"
#include "gen/error.h"
#include "gen/sources.h"
#include "gen/spec.h"
#include "gen/compile.h"
#include "runtime/cuda_api.h"
#include "runtime/sparse_sched.h"

/* tile lists kept per layout (call shapes, tile heights); a further shape
 * runs one CTA per tile */
#define FG_LAYOUT_SCHEDS 8

/* One compiled, loaded kernel. */
typedef struct fg_kernel {
    char *key;
    fg_variant var; /* what key names, for the per-call look-up without the key */
    int state; /* 0 compiling, 1 ready, 2 failed for good, 3 failed, build again when asked */
    fg_status fail_status;
    char *fail_msg;
    CUmodule module;
    CUfunction fn;
    CUfunction fn_pre, fn_dq; /* backward modules (spec.kind FG_KIND_BWD): entry "_pre" and "_dq" */
    CUfunction fn_advance;    /* append modules (FG_KIND_APPEND): entry "_advance" */
    int threads, smem_bytes;
    fg_kernel_stats stats;
    struct fg_kernel *next;
} fg_kernel;

/* The last error message of one thread on one context. */
typedef struct fg_thread_msg {
    unsigned long long thread; /* fg_thread_serial(): never reused, as a dead thread's pthread_t is */
    char *msg;
    struct fg_thread_msg *next;
} fg_thread_msg;

struct fg_context {
    pthread_mutex_t mu;
    pthread_cond_t compiled; /* signalled when a kernel leaves state 0 */
    fg_thread_msg *msgs;     /* per calling thread: no thread frees another's message */

    int sources_ready;
    fg_sources sources;

    int device_ready;
    const fg_cuda *cu;
    CUcontext cuctx;
    CUdevice dev;
    int retained_primary;
    fg_device_info dev_info;
    fg_nvrtc_info nvrtc;

    fg_kernel *kernels; /* in-memory cache, keyed by the full variant key */
    struct fg_choice *choices; /* configuration per (spec, shape bucket) (choose.c) */

    /* the persistent store (cache/), opened on first need */
    int store_ready;
    char *store_path;   /* fg_context_set_cache; NULL: default location */
    int store_off;      /* fg_context_set_cache(ctx, "off") */
    fg_store *store;
    char identity[512]; /* GPU identity that store rows are keyed by */
    int ignore_tuned;   /* FLASHGEN_TUNED=0: configs from the heuristic only */

    fg_context_stats stats; /* under mu */

    /* inference (runtime/tables.c, runtime/infer_plan.c) */
    CUdeviceptr table_err;  /* int[4], the table error word (templates/fg_tables.cuh); 0 before first need */
    CUdeviceptr ws;         /* fg_attention_forward's split-KV workspace, grown on demand */
    size_t ws_bytes;
};

struct fg_block_layout {
    int batch, heads, num_q_blocks, num_kv_blocks, block_q, block_k;
    CUdeviceptr buf; /* full_num | part_num | full_idx | part_idx */
    const int *full_num, *part_num, *full_idx, *part_idx;
    /* the transposed lists the backward walks (runtime/layout_t.h), in the same buffer */
    const int *t_full_num, *t_part_num, *t_full_idx, *t_part_idx;
    /* Set by fg_pattern_layout: the sizes the pattern was evaluated for
     * (0: any), and the element mask of partial blocks (mask_hash all zero: none). */
    int seqlen_q, seqlen_k;
    fg_mask_hash mask_hash;
    char *mask_cuda, *mask_text;
    long long mask_c[16];
    /* The TMA forward's persistent tile lists (runtime/sparse_sched.h),
     * built on first need (fg_layout_sched) and kept until the layout is
     * destroyed: a launched call or a captured graph may still read one. */
    int *row_cost; /* host: full + partial blocks of each row */
    pthread_mutex_t sched_mu; /* taken to build and add an entry */
    int n_sched;              /* entries published (atomic: read without the mutex) */
    struct {
        fg_sparse_sched_key key;
        CUdeviceptr buf;
    } sched[FG_LAYOUT_SCHEDS];
};
/* A user score expression (runtime/score.c): parsed, rendered and named
 * once; fg_score_params copies its constants and tables into the kernel
 * parameters. */
struct fg_score_expr;
struct fg_score {
    struct fg_score_expr *expr;
    char *cuda, *text;
    /* the derivative with respect to score (the backward's): its
     * expression and CUDA form, or NULL and deriv_err (the reason) */
    struct fg_score_expr *deriv;
    char *cuda_d;
    char deriv_err[160];
    fg_mask_hash hash;
    long long ci[16];
    float cf[16];
    const void *tdata[8];
    long long tn[8];
    int tfloat[8];
    int ntables;
};
/* Validates and uploads a host layout (fg_block_layout_create without the
 * context error bookkeeping). */
fg_status fg_layout_upload(fg_context *ctx, const fg_block_layout_desc *d, fg_block_layout **out, fg_error *e);

/* Adds one to a counter of ctx->stats, under the context's lock. */
static inline void fg_ctx_count(fg_context *ctx, long *counter) {
    pthread_mutex_lock(&ctx->mu);
    ++*counter;
    pthread_mutex_unlock(&ctx->mu);
}

/* Records e's message as the context's error and returns its status. */
fg_status fg_ctx_fail(fg_context *ctx, fg_error *e);
/* Loads the template sources once per context. */
fg_status fg_ctx_sources(fg_context *ctx, const fg_sources **out, fg_error *err);
/* Binds the context to a CUDA context (the current one, else device 0's
 * primary) and makes it current on this thread. */
fg_status fg_ctx_device(fg_context *ctx, fg_error *err);
/* Makes ctx's CUDA context current on this thread for a free of its
 * resources when another (or none) is: returns whether it did, *prev the
 * one to give back with fg_ctx_leave. */
int fg_ctx_enter(const fg_context *ctx, CUcontext *prev);
void fg_ctx_leave(const fg_context *ctx, int entered, CUcontext prev);
/* Finds or compiles (once per process per key) the kernel of variant v. */
fg_status fg_ctx_kernel(fg_context *ctx, const fg_variant *v, fg_kernel **out, fg_error *err);
void fg_kernels_free(fg_context *ctx);
/* Completes v's block configuration when the call left it automatic: the
 * first heuristic candidate that compiles without spills, memoised. */
struct fg_fwd_params;
fg_status fg_ctx_choose(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, struct fg_fwd_params *p, fg_error *err);
/* fg_desc_plan for this context's device, then fg_ctx_choose. */
fg_status fg_ctx_resolve(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, struct fg_fwd_params *p, fg_error *err);
void fg_choices_free(fg_context *ctx);
/* The context's memo of chosen configurations (choose.c): per spec (the
 * pass included), layout block, path, whether TMA can take the call, and
 * shape bucket (0 where a caller does not bucket). */
typedef struct fg_choice_key {
    fg_spec spec;
    int block_q, block_k, path, tma_ok;
    int bucket_q, bucket_k;
    int deterministic; /* the backward's mode (the forward leaves it 0) */
    int decode_rows;   /* inference: the packed rows class of a decode tile (16, 32, 64), else 0 */
} fg_choice_key;
int fg_ctx_memo_get(fg_context *ctx, const fg_choice_key *k, fg_config *cfg);
void fg_ctx_memo_put(fg_context *ctx, const fg_choice_key *k, const fg_config *cfg);
/* fg_try_compile (select/heuristic.h) through the kernel cache of the
 * context ud: the stats of variant {s, c}, compiled once per context. */
fg_status fg_ctx_try_compile(void *ud, const fg_spec *s, const fg_config *c, fg_kernel_stats *st, fg_error *err);
/* Forgets memoised configuration choices (after fg_tune stored new ones). */
void fg_choices_reset(fg_context *ctx);

/* The store, opened on first use (after fg_ctx_device); never NULL after
 * FG_OK.  *identity: this device's identity string (store.h). */
fg_status fg_ctx_store(fg_context *ctx, fg_store **out, const char **identity, fg_error *err);
/* The tuned configuration of the cache file for spec s and d's path and
 * seqlen bucket (fg_tuned_config; wgmma_ok as fg_heuristic_candidates takes
 * it), when one is stored and still fits; 0 under FLASHGEN_TUNED=0 or
 * without a store.  The forward's and the backward's look-up. */
int fg_ctx_tuned(fg_context *ctx, const fg_attention_desc *d, const fg_spec *s, int block_q, int block_k, int wgmma_ok,
                 fg_config *c);
/* fg_heuristic_config for this context's device, compiling candidates
 * through fg_ctx_kernel; path is an fg_kernel_path; tma_ok: TMA can describe
 * this call's tensors (fg_tma_strides_ok). */
fg_status fg_ctx_heuristic(fg_context *ctx, const fg_spec *s, int block_q, int block_k, int path, int tma_ok,
                           fg_config *out, fg_error *err);
/* The backward's configuration without a tuned result: FG_PATH_AUTO's
 * Hopper kernel (fg_bwd_auto_config), else fg_bwd_pick_config compiling
 * through this context (runtime/backward.c; the tuner's baseline). */
fg_status fg_ctx_bwd_heuristic(fg_context *ctx, const fg_spec *s, int block_q, int block_k, int path, int deterministic,
                               fg_config *out, fg_error *err);
struct fg_bwd_params;
struct fg_bwd_workspace;
/* The backward's three launches (preprocess, main, dQ conversion) of
 * kernel k, variant v, on stream: p has its tensor pointers set; the
 * workspace parts are set here from workspace and its layout w. */
fg_status fg_ctx_bwd_launch(fg_context *ctx, const fg_kernel *k, const fg_variant *v, struct fg_bwd_params *p,
                            void *workspace, const struct fg_bwd_workspace *w, void *stream, fg_error *err);
/* The tile-list key (runtime/sparse_sched.h) of a call of variant v with
 * params p: 1 when the call runs a sparse layout on the TMA family's
 * persistent grid, else 0. */
int fg_ctx_sparse_key(const fg_context *ctx, const fg_variant *v, const struct fg_fwd_params *p, fg_sparse_sched_key *key);
/* Launches kernel k of variant v with params p (tensor pointers set);
 * layout: the call's block-sparse layout or NULL (its persistent tile list
 * is found or built here, runtime/layout.h). */
fg_status fg_ctx_launch(fg_context *ctx, const fg_kernel *k, const fg_variant *v, struct fg_fwd_params *p,
                        const fg_block_layout *layout, void *stream, fg_error *err);
/* A forward call's host work: fg_ctx_resolve, the kernel (compiled or
 * found), and for inference variants the packing, the splits and the table
 * error word.  Everything but the tensor pointers of *p is set. */
fg_status fg_ctx_call(fg_context *ctx, const fg_attention_desc *d, fg_variant *v, struct fg_fwd_params *p,
                      fg_kernel **kern, fg_error *err);
/* q, k, v, o and lse (NULL: not checked) against d's shapes: device memory,
 * aligned, large enough. */
fg_status fg_check_call_tensors(const fg_cuda *cu, const fg_attention_desc *d, const void *q, const void *k,
                                const void *v, const void *o, const float *lse, fg_error *err);
/* Inference choices in context (runtime/infer.c): whether a call that sets
 * no inference field still runs better as one (GQA packing for decode,
 * split-KV when d->num_splits != 1); the packing and splits of a resolved
 * inference call; its launch grid. */
int fg_infer_auto(const fg_context *ctx, const fg_attention_desc *d);
/* CTAs of a kernel (smem_bytes, threads) that fit on one SM at once (the split choice's slots). */
int fg_infer_ctas_per_sm(const fg_device_info *di, int smem_bytes, int threads);
void fg_infer_apply(const fg_context *ctx, const fg_attention_desc *d, const fg_kernel *k, const fg_variant *v,
                    struct fg_fwd_params *p);
void fg_infer_grid(const fg_variant *v, const struct fg_fwd_params *p, unsigned grid[3]);

/* The context's table error word (int[4], zeroed), allocated on first
 * need; called from the host work of a call, never from fg_attention_run. */
fg_status fg_ctx_table_err(fg_context *ctx, CUdeviceptr *out, fg_error *err);
/* Frees the inference buffers of ctx (fg_context_destroy). */
void fg_ctx_infer_free(fg_context *ctx);
#endif
