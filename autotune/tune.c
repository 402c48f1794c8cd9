/* tune.c: fg_tune, the autotuner.
 *
 * For one spec on this GPU:
 *   1. candidates: fg_tune_candidates (shared memory from the driver,
 *      register estimate), plus the built-in heuristic's choice;
 *   2. compile them all in parallel threads (NVRTC is thread-safe; the
 *      kernels land in the cache file as they finish) and drop those ptxas
 *      makes spill;
 *   3. first pass: time every survivor on the middle bucket;
 *   4. per bucket: time the top_k of the first pass and the heuristic's
 *      choice, median of `reps` launches measured with CUDA events;
 *   5. check the fastest one's output against the float64 reference on
 *      sampled rows (a wrong kernel is never stored), then store the winner
 *      with every candidate's time or the reason it has none.
 * The heuristic's choice wins unless another is more than 1% faster, so
 * noise never replaces it with an equal one. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "autotune/candidates.h"
#include "fg_params.h"
#include "runtime/attention.h"
#include "runtime/check.h"
#include "runtime/internal.h"
#include "runtime/reference.h"
#include "runtime/structs.h"
#include "runtime/timing.h"
#include "select/heuristic.h"
#include "select/tuned.h"

#define MAX_CAND 512
#define TOKENS 16384 /* batch * seqlen of a representative shape (BENCHMARK.md) */
#define WIDTH 2048   /* heads * head_dim */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct cand {
    fg_config cfg;
    char text[192];
    fg_kernel *k;
    int usable;
    int heuristic;
    char note[96];
    double first_ms; /* first pass */
} cand;

typedef struct tuner {
    fg_context *ctx;
    const fg_tune_options *opt;
    fg_spec spec;
    char spec_text[192];
    cand *c;
    int n;
    pthread_mutex_t mu; /* progress, next */
    int next;
    int done, total;
    double t0;
    const char *bucket;
    int best;           /* index into c, -1 */
    double best_tflops;
    fg_status fail;     /* first compile-phase error that is not a candidate's own */
    fg_error fail_err;
} tuner;

static int cancelled(const tuner *t) { return t->opt->cancel && *t->opt->cancel; }

/* Reports one finished unit (t->mu held by the caller or single-threaded). */
static void report(tuner *t, const char *phase, const char *config, double heur_tflops, int kept) {
    t->done++;
    if (!t->opt->progress) return;
    const double el = now_s() - t->t0;
    fg_tune_progress p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.phase = phase;
    p.done = t->done;
    p.total = t->total;
    p.elapsed_s = el;
    p.eta_s = t->done ? el / t->done * (t->total - t->done) : 0;
    p.spec = t->spec_text;
    p.bucket = t->bucket;
    p.config = config;
    p.best_config = t->best >= 0 ? t->c[t->best].text : NULL;
    p.best_tflops = t->best_tflops;
    p.heuristic_tflops = heur_tflops;
    p.kept_existing = kept;
    t->opt->progress(&p, t->opt->ud);
}

static void *compile_worker(void *arg) {
    tuner *t = arg;
    fg_error e = {0};
    if (fg_ctx_device(t->ctx, &e) != FG_OK) { /* binds this thread to the context's CUDA context */
        pthread_mutex_lock(&t->mu);
        if (t->fail == FG_OK) { t->fail = e.status; t->fail_err = e; e.msg = NULL; }
        pthread_mutex_unlock(&t->mu);
        fg_error_clear(&e);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&t->mu);
        const int i = t->next < t->n && !cancelled(t) && t->fail == FG_OK ? t->next++ : -1;
        pthread_mutex_unlock(&t->mu);
        if (i < 0) break;
        cand *c = &t->c[i];
        fg_variant v = {t->spec, c->cfg};
        fg_status st = fg_ctx_kernel(t->ctx, &v, &c->k, &e);
        if (st == FG_OK) {
            const fg_kernel_stats *ks = &c->k->stats;
            const int spill = ks->spill_stores + ks->spill_loads + ks->stack_frame;
            c->usable = spill == 0;
            if (spill) snprintf(c->note, sizeof c->note, "spills (%d B stack, %d regs)", ks->stack_frame, ks->registers);
        } else if (st == FG_ERR_COMPILE || st == FG_ERR_TEMPLATE || st == FG_ERR_UNSUPPORTED || st == FG_ERR_CUDA) {
            /* this candidate's own failure: recorded, the others go on */
            snprintf(c->note, sizeof c->note, "%s", fg_status_name(st));
        } else {
            pthread_mutex_lock(&t->mu);
            if (t->fail == FG_OK) { t->fail = st; t->fail_err = e; e.msg = NULL; }
            pthread_mutex_unlock(&t->mu);
        }
        fg_error_clear(&e);
        pthread_mutex_lock(&t->mu);
        report(t, "compile", c->text, 0, 0);
        pthread_mutex_unlock(&t->mu);
    }
    return NULL;
}

/* Device buffers for the largest representative shape; every bucket uses a
 * prefix (the shapes all hold TOKENS * WIDTH elements, or more for seqlens
 * beyond TOKENS). */
typedef struct bufs {
    CUdeviceptr q, k, v, o;
    uint16_t *hq, *hk, *hv;
    size_t elems;
} bufs;

static void shape_of(const fg_spec *s, int seqlen, int *batch, int *heads) {
    *heads = WIDTH / s->head_dim > 0 ? WIDTH / s->head_dim : 1;
    *batch = TOKENS / seqlen > 0 ? TOKENS / seqlen : 1;
}

static void bufs_free(const fg_cuda *cu, bufs *b) {
    if (b->q) cu->MemFree(b->q);
    if (b->k) cu->MemFree(b->k);
    if (b->v) cu->MemFree(b->v);
    if (b->o) cu->MemFree(b->o);
    free(b->hq); free(b->hk); free(b->hv);
    memset(b, 0, sizeof *b);
}

static fg_status bufs_alloc(const fg_cuda *cu, const fg_spec *s, const int *seqlens, int nb, bufs *b, fg_error *err) {
    memset(b, 0, sizeof *b);
    for (int i = 0; i < nb; ++i) {
        int batch, heads;
        shape_of(s, seqlens[i], &batch, &heads);
        const int dv = fg_spec_head_dim_v(s), wide = dv > s->head_dim ? dv : s->head_dim; /* q, k: d; v, o: dv */
        const size_t e = (size_t)batch * seqlens[i] * heads * wide;
        if (e > b->elems) b->elems = e;
    }
    const size_t bytes = b->elems * 2;
    b->hq = malloc(bytes); b->hk = malloc(bytes); b->hv = malloc(bytes);
    if (!b->hq || !b->hk || !b->hv) { bufs_free(cu, b); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of host memory"); }
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)time(NULL) ^ 0x7475u);
    fg_fill_normal(b->hq, b->elems, s->dtype, &r);
    fg_fill_normal(b->hk, b->elems, s->dtype, &r);
    fg_fill_normal(b->hv, b->elems, s->dtype, &r);
    CUresult rc = cu->MemAlloc(&b->q, bytes);
    if (!rc) rc = cu->MemAlloc(&b->k, bytes);
    if (!rc) rc = cu->MemAlloc(&b->v, bytes);
    if (!rc) rc = cu->MemAlloc(&b->o, bytes);
    if (!rc) rc = cu->MemcpyHtoD(b->q, b->hq, bytes);
    if (!rc) rc = cu->MemcpyHtoD(b->k, b->hk, bytes);
    if (!rc) rc = cu->MemcpyHtoD(b->v, b->hv, bytes);
    if (rc) {
        char m[256];
        bufs_free(cu, b);
        return fg_fail(err, rc == CUDA_ERROR_OUT_OF_MEMORY ? FG_ERR_OUT_OF_MEMORY : FG_ERR_CUDA,
                       "tune: allocating 4 x %zu MiB of inputs: %s", bytes >> 20, fg_cuda_errstr(cu, rc, m, sizeof m));
    }
    return FG_OK;
}

typedef struct shape {
    fg_attention_desc d;
    double flops;
} shape;

static void make_shape(const tuner *t, int seqlen, shape *sh) {
    int batch, heads;
    shape_of(&t->spec, seqlen, &batch, &heads);
    fg_attention_desc_init(&sh->d, t->spec.dtype, t->spec.head_dim, batch, heads, heads, seqlen, seqlen);
    fg_attention_desc_set_head_dim_v(&sh->d, fg_spec_head_dim_v(&t->spec));
    sh->d.causal = t->spec.causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
    sh->flops = fg_attention_flops(batch, heads, seqlen, seqlen, t->spec.head_dim, fg_spec_head_dim_v(&t->spec),
                                   t->spec.causal);
}

typedef struct launch_ud {
    fg_context *ctx;
    const fg_kernel *k;
    const fg_variant *v;
    fg_fwd_params *p;
} launch_ud;

static fg_status launch_cand(void *ud, fg_error *err) {
    launch_ud *u = ud;
    return fg_ctx_launch(u->ctx, u->k, u->v, u->p, NULL, err);
}

/* Median time in ms of reps launches of candidate c on sh (one warm-up);
 * < 0 on failure (note set). */
static double time_one(tuner *t, cand *c, const shape *sh, const bufs *b, int reps, fg_error *err) {
    fg_context *ctx = t->ctx;
    fg_variant v;
    fg_fwd_params p;
    if (fg_desc_plan(&sh->d, ctx->dev_info.smem_per_block_optin, &v, &p, err) != FG_OK) return -1;
    v.cfg = c->cfg;
    p.q = (const void *)(uintptr_t)b->q; p.k = (const void *)(uintptr_t)b->k;
    p.v = (const void *)(uintptr_t)b->v; p.o = (void *)(uintptr_t)b->o; p.lse = NULL;
    launch_ud u = {ctx, c->k, &v, &p};
    double ms = -1;
    if (fg_time_median(ctx->cu, launch_cand, &u, 1, reps, 0, 0, &ms, err) != FG_OK) {
        snprintf(c->note, sizeof c->note, "launch failed: %s", err->msg ? err->msg : "?");
        return -1;
    }
    return ms;
}

/* Runs c once on sh and compares sampled rows of o with the float64
 * reference.  Returns 1 when they agree. */
static int verify(tuner *t, cand *c, const shape *sh, const bufs *b, fg_error *err) {
    const fg_cuda *cu = t->ctx->cu;
    if (time_one(t, c, sh, b, 1, err) < 0) return 0;
    const fg_attention_desc *d = &sh->d;
    const int D = fg_desc_head_dim_v(d); /* o rows */
    fg_check chk;
    fg_check_init(&chk, d->dtype);
    uint16_t row[256];
    double ref[256], lse;
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)time(NULL));
    for (int s = 0; s < 16; ++s) {
        const int bi = s == 0 ? 0 : (int)(fg_rng_uniform(&r) * d->batch);
        const int hi = s == 0 ? 0 : (int)(fg_rng_uniform(&r) * d->heads_q);
        const int qi = s == 0 ? 0 : s == 1 ? d->seqlen_q - 1 : (int)(fg_rng_uniform(&r) * d->seqlen_q);
        const int64_t off = bi * d->o_strides[0] + hi * d->o_strides[1] + (int64_t)qi * d->o_strides[2];
        CUresult rc = cu->MemcpyDtoH(row, b->o + (CUdeviceptr)(off * 2), (size_t)D * 2);
        if (rc) {
            char m[256];
            snprintf(c->note, sizeof c->note, "reading the output: %s", fg_cuda_errstr(cu, rc, m, sizeof m));
            return 0;
        }
        fg_reference_row(d, NULL, b->hq, b->hk, b->hv, bi, hi, qi, ref, &lse);
        fg_check_row(&chk, row, ref, D, 0, 0, 0);
    }
    if (fg_check_done(&chk)) return 1;
    char m[256];
    fg_check_describe(&chk, m, sizeof m);
    snprintf(c->note, sizeof c->note, "wrong result: %.80s", m);
    return 0;
}

typedef struct rank { int i; double ms; } rank;
static int cmp_rank(const void *a, const void *b) {
    const double x = ((const rank *)a)->ms, y = ((const rank *)b)->ms;
    return x < y ? -1 : x > y;
}

/* Times the chosen candidates on one bucket, verifies, stores. */
static fg_status tune_bucket(tuner *t, int seqlen, const int *sel, int nsel, int first_pass_bucket, int top_k,
                             const bufs *b, fg_store *store, const char *gpu, fg_error *err) {
    shape sh;
    make_shape(t, seqlen, &sh);
    char bucket[32];
    fg_shape_bucket(seqlen, seqlen, bucket, sizeof bucket);
    t->bucket = bucket;
    t->best = -1;
    t->best_tflops = 0;
    const int reps = t->opt->reps > 0 ? t->opt->reps : 10;
    double *ms = calloc((size_t)t->n, sizeof *ms);
    fg_tune_row *rows = calloc((size_t)t->n, sizeof *rows);
    rank *order = calloc((size_t)t->n, sizeof *order);
    if (!ms || !rows || !order) { free(ms); free(rows); free(order); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); }
    for (int i = 0; i < t->n; ++i) ms[i] = -1;
    int heur = -1;
    for (int s = 0; s < nsel; ++s) {
        if (cancelled(t)) break;
        cand *c = &t->c[sel[s]];
        if (c->heuristic) heur = sel[s];
        fg_error e = {0};
        ms[sel[s]] = time_one(t, c, &sh, b, reps, &e);
        fg_error_clear(&e);
        if (ms[sel[s]] > 0 && sh.flops / (ms[sel[s]] * 1e-3) / 1e12 > t->best_tflops) {
            t->best = sel[s];
            t->best_tflops = sh.flops / (ms[sel[s]] * 1e-3) / 1e12;
        }
        report(t, "time", c->text, 0, 0);
    }
    fg_status st = FG_OK;
    if (cancelled(t)) { st = fg_fail(err, FG_ERR_CANCELLED, "tuning cancelled"); goto out; }
    int n = 0;
    for (int i = 0; i < t->n; ++i)
        if (ms[i] > 0) order[n++] = (rank){i, ms[i]};
    qsort(order, (size_t)n, sizeof *order, cmp_rank);
    /* the heuristic's choice stands unless another is more than 1% faster */
    if (heur >= 0 && ms[heur] > 0 && n && ms[heur] <= order[0].ms * 1.01) {
        for (int j = 0; j < n; ++j)
            if (order[j].i == heur) { rank h = order[j]; memmove(order + 1, order, (size_t)j * sizeof *order); order[0] = h; break; }
    }
    int win = -1;
    for (int j = 0; j < n && win < 0; ++j) {
        fg_error e = {0};
        if (verify(t, &t->c[order[j].i], &sh, b, &e)) win = order[j].i;
        else ms[order[j].i] = -1;
        fg_error_clear(&e);
    }
    t->best = win;
    t->best_tflops = win >= 0 ? sh.flops / (ms[win] * 1e-3) / 1e12 : 0;
    for (int i = 0; i < t->n; ++i) {
        fg_tune_row *r = &rows[i];
        snprintf(r->config, sizeof r->config, "%s", t->c[i].text);
        r->ms = ms[i];
        if (ms[i] > 0) r->note[0] = 0;
        else if (t->c[i].note[0]) snprintf(r->note, sizeof r->note, "%s", t->c[i].note);
        else if (t->c[i].usable)
            snprintf(r->note, sizeof r->note, "not in the top %d of the first pass at seqlen %d (%.3f ms)", top_k,
                     first_pass_bucket, t->c[i].first_ms);
        else snprintf(r->note, sizeof r->note, "not usable");
    }
    if (win < 0) {
        st = fg_fail(err, FG_ERR_INTERNAL, "tune %s %s: no candidate ran and passed the reference check", t->spec_text, bucket);
        goto out;
    }
    fg_tuning w;
    memset(&w, 0, sizeof w);
    snprintf(w.config, sizeof w.config, "%s", t->c[win].text);
    w.ms = ms[win];
    w.heuristic_ms = heur >= 0 ? ms[heur] : -1;
    snprintf(w.shape, sizeof w.shape, "b%d h%d sq%d sk%d", sh.d.batch, sh.d.heads_q, seqlen, seqlen);
    int kept = 0;
    st = fg_store_put_tuning(store, gpu, t->spec_text, bucket, &w, rows, t->n, &kept, err);
    if (st == FG_OK) {
        const double ht = heur >= 0 && ms[heur] > 0 ? sh.flops / (ms[heur] * 1e-3) / 1e12 : 0;
        report(t, "bucket done", t->c[win].text, ht, kept);
    }
out:
    free(ms);
    free(rows);
    free(order);
    return st;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 32 ? 32 : (int)n;
}

fg_status fg_tune(fg_context *ctx, const fg_attention_desc *shp, const fg_tune_options *opt_in) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_tune_options opt;
    memset(&opt, 0, sizeof opt);
    if (opt_in && fg_struct_read(opt_in, sizeof opt, FG_TUNE_OPTIONS_MIN_SIZE, &opt, "fg_tune_options", &e) != FG_OK)
        return fg_ctx_fail(ctx, &e);
    static const int default_seqlens[] = {512, 1024, 2048, 4096, 8192, 16384};
    const int *seqlens = opt.seqlens ? opt.seqlens : default_seqlens;
    const int nb = opt.seqlens ? opt.num_seqlens : 6;
    const int top_k = opt.top_k > 0 ? opt.top_k : 6;
    fg_attention_desc shape_in;
    if (!shp) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_tune: shape is NULL"); return fg_ctx_fail(ctx, &e); }
    if (fg_desc_read(shp, &shape_in, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    shp = &shape_in;
    if (shp->layout) {
        fg_fail(&e, FG_ERR_UNSUPPORTED, "fg_tune tunes dense attention; block-sparse calls use the heuristic "
                "restricted to the layout's block sizes");
        return fg_ctx_fail(ctx, &e);
    }
    if (fg_desc_score_mods(shp)) {
        fg_fail(&e, FG_ERR_UNSUPPORTED, "fg_tune does not tune score modifications yet (softcap, alibi_slopes, window, "
                "sinks): their calls use the heuristic's mma.sync configuration");
        return fg_ctx_fail(ctx, &e);
    }
    if (nb < 1 || nb > 32) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_tune: num_seqlens = %d (1..32)", nb); return fg_ctx_fail(ctx, &e); }
    for (int i = 0; i < nb; ++i) {
        if (seqlens[i] < 1 || seqlens[i] > (1 << 20)) {
            fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_tune: seqlen %d is out of range (1..1048576)", seqlens[i]);
            return fg_ctx_fail(ctx, &e);
        }
        for (int j = 0; j < i; ++j)
            if (fg_bucket_len(seqlens[j]) == fg_bucket_len(seqlens[i])) {
                fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_tune: seqlens %d and %d fall in the same bucket (%d)", seqlens[j],
                        seqlens[i], fg_bucket_len(seqlens[i]));
                return fg_ctx_fail(ctx, &e);
            }
    }
    /* validates dtype, head dim, causal and path the way a call would */
    fg_attention_desc probe;
    fg_attention_desc_init(&probe, shp->dtype, shp->head_dim, 1, 1, 1, 128, 128);
    fg_attention_desc_set_head_dim_v(&probe, shp->head_dim_v);
    probe.causal = shp->causal;
    probe.path = shp->path;
    fg_variant pv;
    fg_fwd_params pp;
    fg_status st = fg_ctx_device(ctx, &e);
    if (st == FG_OK) st = fg_desc_plan(&probe, ctx->dev_info.smem_per_block_optin, &pv, &pp, &e);
    if (st == FG_OK && shp->dtype == FG_E4M3) /* its inputs, timing and check are 16-bit only so far */
        st = fg_fail(&e, FG_ERR_UNSUPPORTED, "fg_tune: FG_E4M3 (FP8) is not tuned yet; calls use the built-in heuristic");
    fg_store *store = NULL;
    const char *gpu = NULL;
    if (st == FG_OK) st = fg_ctx_store(ctx, &store, &gpu, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);

    tuner t;
    memset(&t, 0, sizeof t);
    t.ctx = ctx;
    t.opt = &opt;
    t.spec = pv.spec;
    t.best = -1;
    t.t0 = now_s();
    pthread_mutex_init(&t.mu, NULL);
    fg_tuning_spec_text(&t.spec, (int)shp->path, 0, 0, t.spec_text, sizeof t.spec_text);
    const int wgmma_ok = fg_arch_has_wgmma(ctx->dev_info.arch);
    fg_config cfgs[MAX_CAND], heur;
    int n = fg_tune_candidates(&t.spec, ctx->dev_info.smem_per_block_optin, 0, 0, wgmma_ok, (int)shp->path, cfgs, MAX_CAND - 1);
    bufs b;
    memset(&b, 0, sizeof b);
    int *sel = NULL;
    rank *order = NULL;
    st = fg_ctx_heuristic(ctx, &t.spec, 0, 0, (int)shp->path, 1, &heur, &e);
    if (st != FG_OK) goto done;
    t.c = calloc((size_t)n + 1, sizeof *t.c);
    sel = calloc((size_t)n + 1, sizeof *sel);
    order = calloc((size_t)n + 1, sizeof *order);
    if (!t.c || !sel || !order) { st = fg_fail(&e, FG_ERR_OUT_OF_MEMORY, "out of memory"); goto done; }
    int have_heur = 0;
    for (int i = 0; i < n; ++i) {
        t.c[i].cfg = cfgs[i];
        t.c[i].heuristic = !memcmp(&cfgs[i], &heur, sizeof heur);
        have_heur |= t.c[i].heuristic;
    }
    if (!have_heur) { t.c[n].cfg = heur; t.c[n].heuristic = 1; ++n; }
    t.n = n;
    for (int i = 0; i < n; ++i) fg_config_format(&t.c[i].cfg, t.c[i].text, sizeof t.c[i].text);
    const int keep = top_k + 1 < n ? top_k + 1 : n;
    t.total = n /* compile */ + n /* first pass */ + nb * keep /* buckets */ + nb /* stored */;

    /* 2. compile in parallel */
    const int nthreads = opt.threads > 0 ? (opt.threads < 64 ? opt.threads : 64) : default_threads();
    pthread_t th[64];
    int started = 0;
    t.bucket = "";
    for (int i = 0; i < nthreads; ++i)
        if (!pthread_create(&th[i], NULL, compile_worker, &t)) ++started;
    if (!started) compile_worker(&t);
    for (int i = 0; i < started; ++i) pthread_join(th[i], NULL);
    if (t.fail != FG_OK) { st = t.fail; e = t.fail_err; t.fail_err.msg = NULL; goto done; }
    if (cancelled(&t)) { st = fg_fail(&e, FG_ERR_CANCELLED, "tuning cancelled while compiling (compiled kernels are stored)"); goto done; }

    st = bufs_alloc(ctx->cu, &t.spec, seqlens, nb, &b, &e);
    if (st != FG_OK) goto done;

    /* 3. first pass on the middle bucket (the median seqlen) */
    int sorted[32];
    memcpy(sorted, seqlens, (size_t)nb * sizeof *sorted);
    for (int i = 1; i < nb; ++i)
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; --j) { int x = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = x; }
    const int mid = sorted[nb / 2];
    shape sh;
    make_shape(&t, mid, &sh);
    char midb[32];
    fg_shape_bucket(mid, mid, midb, sizeof midb);
    t.bucket = midb;
    int m = 0;
    for (int i = 0; i < n; ++i) {
        if (cancelled(&t)) break;
        cand *c = &t.c[i];
        c->first_ms = -1;
        if (c->usable) {
            fg_error te = {0};
            c->first_ms = time_one(&t, c, &sh, &b, 3, &te);
            fg_error_clear(&te);
            if (c->first_ms > 0) {
                order[m++] = (rank){i, c->first_ms};
                const double tf = sh.flops / (c->first_ms * 1e-3) / 1e12;
                if (tf > t.best_tflops) { t.best_tflops = tf; t.best = i; }
            } else {
                c->usable = 0;
            }
        }
        report(&t, "time", c->text, 0, 0);
    }
    if (cancelled(&t)) { st = fg_fail(&e, FG_ERR_CANCELLED, "tuning cancelled in the first pass (compiled kernels are stored)"); goto done; }
    qsort(order, (size_t)m, sizeof *order, cmp_rank);
    int ns = 0;
    for (int j = 0; j < m && ns < top_k; ++j) sel[ns++] = order[j].i;
    for (int i = 0; i < n; ++i)
        if (t.c[i].heuristic && t.c[i].usable) {
            int in = 0;
            for (int j = 0; j < ns; ++j) in |= sel[j] == i;
            if (!in) sel[ns++] = i;
        }
    t.total += nb * (ns - keep); /* exact now */

    /* 4-5. every bucket, smallest first */
    for (int i = 0; i < nb && st == FG_OK; ++i)
        st = tune_bucket(&t, sorted[i], sel, ns, mid, top_k, &b, store, gpu, &e);
    fg_choices_reset(ctx); /* the next calls read the new winners */

done:
    bufs_free(ctx->cu, &b);
    free(t.c);
    free(sel);
    free(order);
    fg_error_clear(&t.fail_err);
    pthread_mutex_destroy(&t.mu);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}
