/* tune.c: the autotuner's driver, for the forward (fg_tune, tune_fwd.c)
 * and the backward (fg_tune_backward, tune_bwd.c) alike.
 *
 * For one spec on this GPU:
 *   1. candidates: the pass's own (fg_tune_candidates, fg_bwd_candidates),
 *      plus the configuration the runtime takes without a tuned result;
 *   2. compile them all in parallel threads (NVRTC is thread-safe; the
 *      kernels land in the cache file as they finish) and drop those ptxas
 *      makes spill;
 *   3. first pass: time every survivor on the middle bucket;
 *   4. per bucket: time the top_k of the first pass and the untuned choice,
 *      median of `reps` launches measured with CUDA events (the pass's
 *      `time` hook);
 *   5. check the fastest one against the float64 reference (the pass's
 *      `verify` hook; a wrong kernel is never stored), then store the
 *      winner with every candidate's time or the reason it has none.
 * The untuned choice wins unless another is more than 1% faster, so
 * noise never replaces it with an equal one. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "autotune/tune_internal.h"
#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/reference.h"
#include "runtime/structs.h"
#include "select/tuned.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int cancelled(const fg_tuner *t) { return t->opt->cancel && *t->opt->cancel; }

/* Launches candidate c on sh, untimed, for about opt->heat_ms (0: 500 ms,
 * < 0: none), so that the candidates timed next all meet the GPU at its
 * sustained clock rather than the first few at its boost clock
 * (docs/PERF.md v14).  A candidate that fails ends it. */
static void heat(fg_tuner *t, fg_tune_cand *c, const fg_tune_shape *sh, fg_tune_bufs *b) {
    const int ms = t->opt->heat_ms == 0 ? 500 : t->opt->heat_ms;
    if (ms < 0) return;
    const double end = now_s() + ms * 1e-3;
    while (now_s() < end && !cancelled(t)) {
        fg_error e = {0};
        const double one = t->pass->time(t, c, sh, b, 16, &e);
        fg_error_clear(&e);
        if (one <= 0) break;
    }
}

/* Reports one finished unit (t->mu held by the caller or single-threaded). */
static void report(fg_tuner *t, const char *phase, const char *config, double heur_tflops, int kept) {
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
    fg_tuner *t = arg;
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
        fg_tune_cand *c = &t->c[i];
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

void fg_tune_shape_of(const fg_tuner *t, int seqlen, fg_tune_shape *sh) {
    const fg_spec *s = &t->spec;
    const int heads = FG_TUNE_WIDTH / s->head_dim > 0 ? FG_TUNE_WIDTH / s->head_dim : 1;
    const int batch = FG_TUNE_TOKENS / seqlen > 0 ? FG_TUNE_TOKENS / seqlen : 1;
    fg_attention_desc_init(&sh->d, s->dtype, s->head_dim, batch, heads, heads, seqlen, seqlen);
    fg_attention_desc_set_head_dim_v(&sh->d, fg_spec_head_dim_v(s));
    sh->d.causal = s->causal ? FG_CAUSAL_BOTTOM_RIGHT : FG_CAUSAL_NONE;
    if (s->dtype == FG_E4M3) sh->d.out_dtype = fg_spec_out_dtype(s); /* no descales: 1 */
    sh->flops = t->pass->flops_scale *
                fg_attention_flops(batch, heads, seqlen, seqlen, s->head_dim, fg_spec_head_dim_v(s), s->causal);
}

int fg_tune_note_cuda(const fg_tuner *t, fg_tune_cand *c, const char *what, CUresult rc) {
    char m[256];
    snprintf(c->note, sizeof c->note, "%s: %s", what, fg_cuda_errstr(t->ctx->cu, rc, m, sizeof m));
    return 0;
}

static void bufs_free(const fg_cuda *cu, fg_tune_bufs *b) {
    CUdeviceptr *dev[] = {&b->q, &b->k, &b->v, &b->o, &b->dout, &b->lse, &b->dq, &b->dk, &b->dv, &b->ws};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; ++i)
        if (*dev[i]) cu->MemFree(*dev[i]);
    free(b->hq); free(b->hk); free(b->hv); free(b->hdo);
    memset(b, 0, sizeof *b);
}

/* Random inputs (q, k, v; the backward also dout) and room for the outputs
 * of the largest bucket's shape: every shape holds FG_TUNE_TOKENS *
 * FG_TUNE_WIDTH elements, or more for seqlens beyond FG_TUNE_TOKENS. */
static fg_status bufs_alloc(const fg_tuner *t, const int *seqlens, int nb, fg_tune_bufs *b, fg_error *err) {
    const fg_cuda *cu = t->ctx->cu;
    const fg_spec *s = &t->spec;
    const int bwd = t->pass->backward;
    memset(b, 0, sizeof *b);
    size_t rows = 0;
    for (int i = 0; i < nb; ++i) {
        fg_tune_shape sh;
        fg_tune_shape_of(t, seqlens[i], &sh);
        const int dv = fg_spec_head_dim_v(s), wide = dv > s->head_dim ? dv : s->head_dim; /* q, k: d; v, o: dv */
        const size_t r = (size_t)sh.d.batch * seqlens[i] * sh.d.heads_q, e = r * wide;
        if (e > b->elems) b->elems = e;
        if (r > rows) rows = r;
        fg_bwd_workspace w;
        fg_bwd_workspace_layout(&sh.d, &w);
        if (bwd && w.total > b->ws_bytes) b->ws_bytes = w.total;
    }
    const size_t bytes = b->elems * 2;
    b->hq = malloc(bytes); b->hk = malloc(bytes); b->hv = malloc(bytes);
    if (bwd) b->hdo = malloc(bytes);
    if (!b->hq || !b->hk || !b->hv || (bwd && !b->hdo)) { bufs_free(cu, b); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of host memory"); }
    fg_rng r;
    fg_rng_seed(&r, (uint64_t)time(NULL) ^ 0x7475u);
    uint16_t *host[] = {b->hq, b->hk, b->hv, b->hdo};
    CUdeviceptr *dev[] = {&b->q, &b->k, &b->v, &b->dout, &b->o, &b->dq, &b->dk, &b->dv, &b->lse, &b->ws};
    const size_t size[] = {bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, rows * 4, b->ws_bytes};
    const int ndev = bwd ? 10 : 5; /* forward: q, k, v, o (dout skipped); backward: all ten */
    CUresult rc = CUDA_SUCCESS;
    for (int i = 0; i < ndev && !rc; ++i) {
        if (!bwd && i == 3) continue;
        rc = cu->MemAlloc(dev[i], size[i]);
        if (!rc && i < 4) {
            fg_fill_normal(host[i], b->elems, s->dtype, &r); /* e4m3: a byte an element */
            rc = cu->MemcpyHtoD(*dev[i], host[i], bytes);
        }
    }
    if (rc) {
        char m[256];
        bufs_free(cu, b);
        return fg_fail(err, rc == CUDA_ERROR_OUT_OF_MEMORY ? FG_ERR_OUT_OF_MEMORY : FG_ERR_CUDA,
                       "tune: allocating %d buffers of up to %zu MiB: %s", ndev, bytes >> 20,
                       fg_cuda_errstr(cu, rc, m, sizeof m));
    }
    return FG_OK;
}

typedef struct rank { int i; double ms; } rank;
static int cmp_rank(const void *a, const void *b) {
    const double x = ((const rank *)a)->ms, y = ((const rank *)b)->ms;
    return x < y ? -1 : x > y;
}

/* Times the chosen candidates on one bucket, verifies, stores. */
static fg_status tune_bucket(fg_tuner *t, int seqlen, const int *sel, int nsel, int first_pass_bucket, int top_k,
                             fg_tune_bufs *b, fg_store *store, const char *gpu, fg_error *err) {
    fg_tune_shape sh;
    fg_tune_shape_of(t, seqlen, &sh);
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
    if (nsel > 0) heat(t, &t->c[sel[0]], &sh, b);
    for (int s = 0; s < nsel; ++s) {
        if (cancelled(t)) break;
        fg_tune_cand *c = &t->c[sel[s]];
        if (c->heuristic) heur = sel[s];
        fg_error e = {0};
        ms[sel[s]] = t->pass->time(t, c, &sh, b, reps, &e);
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
        if (t->pass->verify(t, &t->c[order[j].i], &sh, b, &e)) win = order[j].i;
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

static fg_status tune_begin(fg_context *ctx, const fg_attention_desc *shp, const fg_tune_options *opt_in, fg_tune_args *a,
                        fg_error *e) {
    memset(a, 0, sizeof *a);
    if (opt_in && fg_struct_read(opt_in, sizeof a->opt, FG_TUNE_OPTIONS_MIN_SIZE, &a->opt, "fg_tune_options", e) != FG_OK)
        return e->status;
    static const int default_seqlens[] = {512, 1024, 2048, 4096, 8192, 16384};
    a->seqlens = a->opt.seqlens ? a->opt.seqlens : default_seqlens;
    a->nb = a->opt.seqlens ? a->opt.num_seqlens : 6;
    a->top_k = a->opt.top_k > 0 ? a->opt.top_k : 6;
    if (!shp) return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "fg_tune: shape is NULL");
    fg_status st = fg_desc_read(shp, &a->shape, e);
    if (st != FG_OK) return st;
    if (a->shape.layout)
        return fg_fail(e, FG_ERR_UNSUPPORTED, "fg_tune tunes dense attention; block-sparse calls use the heuristic "
                       "restricted to the layout's block sizes");
    if (fg_desc_score_mods(&a->shape))
        return fg_fail(e, FG_ERR_UNSUPPORTED, "fg_tune does not tune score modifications yet (softcap, alibi_slopes, window, "
                       "sinks): their calls use the heuristic's mma.sync configuration");
    const int nb = a->nb, *seqlens = a->seqlens;
    if (nb < 1 || nb > 32) return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "fg_tune: num_seqlens = %d (1..32)", nb);
    for (int i = 0; i < nb; ++i) {
        if (seqlens[i] < 1 || seqlens[i] > (1 << 20))
            return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "fg_tune: seqlen %d is out of range (1..1048576)", seqlens[i]);
        for (int j = 0; j < i; ++j)
            if (fg_bucket_len(seqlens[j]) == fg_bucket_len(seqlens[i]))
                return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "fg_tune: seqlens %d and %d fall in the same bucket (%d)",
                               seqlens[j], seqlens[i], fg_bucket_len(seqlens[i]));
    }
    fg_attention_desc_init(&a->probe, a->shape.dtype, a->shape.head_dim, 1, 1, 1, 128, 128);
    fg_attention_desc_set_head_dim_v(&a->probe, a->shape.head_dim_v);
    a->probe.causal = a->shape.causal;
    a->probe.path = a->shape.path;
    return fg_ctx_device(ctx, e);
}

static fg_status tune_run(fg_context *ctx, const fg_tune_pass *pass, const fg_tune_args *a, const fg_spec *spec,
                      const fg_config *cfgs, int n, const fg_config *heur, fg_error *err) {
    const fg_tune_options *opt = &a->opt;
    const int *seqlens = a->seqlens, nb = a->nb, top_k = a->top_k;
    fg_store *store = NULL;
    const char *gpu = NULL;
    fg_status st = fg_ctx_store(ctx, &store, &gpu, err);
    if (st != FG_OK) return st;

    fg_tuner t;
    memset(&t, 0, sizeof t);
    t.ctx = ctx;
    t.opt = opt;
    t.pass = pass;
    t.spec = *spec;
    t.best = -1;
    t.t0 = now_s();
    pthread_mutex_init(&t.mu, NULL);
    fg_tuning_spec_text(&t.spec, (int)a->shape.path, 0, 0, t.spec_text, sizeof t.spec_text);
    fg_tune_bufs b;
    memset(&b, 0, sizeof b);
    int *sel = NULL;
    rank *order = NULL;
    t.c = calloc((size_t)n + 1, sizeof *t.c);
    sel = calloc((size_t)n + 1, sizeof *sel);
    order = calloc((size_t)n + 1, sizeof *order);
    if (!t.c || !sel || !order) { st = fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); goto done; }
    int have_heur = 0;
    for (int i = 0; i < n; ++i) {
        t.c[i].cfg = cfgs[i];
        t.c[i].heuristic = !memcmp(&cfgs[i], heur, sizeof *heur);
        have_heur |= t.c[i].heuristic;
    }
    if (!have_heur) { t.c[n].cfg = *heur; t.c[n].heuristic = 1; ++n; }
    t.n = n;
    for (int i = 0; i < n; ++i) fg_config_format(&t.c[i].cfg, t.c[i].text, sizeof t.c[i].text);
    const int keep = top_k + 1 < n ? top_k + 1 : n;
    t.total = n /* compile */ + n /* first pass */ + nb * keep /* buckets */ + nb /* stored */;

    /* 2. compile in parallel */
    const int nthreads = opt->threads > 0 ? (opt->threads < 64 ? opt->threads : 64) : default_threads();
    pthread_t th[64];
    int started = 0;
    t.bucket = "";
    for (int i = 0; i < nthreads; ++i)
        if (!pthread_create(&th[i], NULL, compile_worker, &t)) ++started;
    if (!started) compile_worker(&t);
    for (int i = 0; i < started; ++i) pthread_join(th[i], NULL);
    if (t.fail != FG_OK) { st = t.fail; *err = t.fail_err; t.fail_err.msg = NULL; goto done; }
    if (cancelled(&t)) { st = fg_fail(err, FG_ERR_CANCELLED, "tuning cancelled while compiling (compiled kernels are stored)"); goto done; }

    st = bufs_alloc(&t, seqlens, nb, &b, err);
    if (st != FG_OK) goto done;

    /* 3. first pass on the middle bucket (the median seqlen) */
    int sorted[32];
    memcpy(sorted, seqlens, (size_t)nb * sizeof *sorted);
    for (int i = 1; i < nb; ++i)
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; --j) { int x = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = x; }
    const int mid = sorted[nb / 2];
    fg_tune_shape sh;
    fg_tune_shape_of(&t, mid, &sh);
    char midb[32];
    fg_shape_bucket(mid, mid, midb, sizeof midb);
    t.bucket = midb;
    int m = 0;
    for (int i = 0; i < n; ++i)
        if (t.c[i].usable) { heat(&t, &t.c[i], &sh, &b); break; }
    for (int i = 0; i < n; ++i) {
        if (cancelled(&t)) break;
        fg_tune_cand *c = &t.c[i];
        c->first_ms = -1;
        if (c->usable) {
            fg_error te = {0};
            c->first_ms = pass->time(&t, c, &sh, &b, 3, &te);
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
    if (cancelled(&t)) { st = fg_fail(err, FG_ERR_CANCELLED, "tuning cancelled in the first pass (compiled kernels are stored)"); goto done; }
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
        st = tune_bucket(&t, sorted[i], sel, ns, mid, top_k, &b, store, gpu, err);
    fg_choices_reset(ctx); /* the next calls read the new winners */

done:
    bufs_free(ctx->cu, &b);
    free(t.c);
    free(sel);
    free(order);
    fg_error_clear(&t.fail_err);
    pthread_mutex_destroy(&t.mu);
    return st;
}

fg_status fg_tune_pass_run(fg_context *ctx, const fg_attention_desc *shape, const fg_tune_options *opt,
                           const fg_tune_pass *pass) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    fg_tune_args a;
    fg_spec spec;
    fg_config cfgs[FG_TUNE_MAX_CAND], heur;
    int n = 0;
    fg_status st = tune_begin(ctx, shape, opt, &a, &e);
    if (st == FG_OK) st = pass->setup(ctx, &a, &spec, cfgs, FG_TUNE_MAX_CAND, &n, &heur, &e);
    if (st == FG_OK) st = tune_run(ctx, pass, &a, &spec, cfgs, n, &heur, &e);
    return st == FG_OK ? FG_OK : fg_ctx_fail(ctx, &e);
}
