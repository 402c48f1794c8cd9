#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"
#include "runtime/structs.h"

static const char *status_names[] = {
    "FG_OK", "FG_ERR_INVALID_ARGUMENT", "FG_ERR_UNSUPPORTED", "FG_ERR_NO_DRIVER", "FG_ERR_NO_DEVICE",
    "FG_ERR_NVRTC", "FG_ERR_COMPILE", "FG_ERR_TEMPLATE", "FG_ERR_CUDA", "FG_ERR_OUT_OF_MEMORY",
    "FG_ERR_BAD_LAYOUT", "FG_ERR_CACHE", "FG_ERR_INTERNAL", "FG_ERR_CANCELLED", "FG_ERR_PATTERN"};

const char *fg_status_name(fg_status s) {
    if ((unsigned)s < sizeof status_names / sizeof status_names[0]) return status_names[s];
    return "FG_ERR_UNKNOWN";
}

fg_status fg_context_create(fg_context **out) {
    if (!out) return FG_ERR_INVALID_ARGUMENT;
    fg_context *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return FG_ERR_OUT_OF_MEMORY;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->compiled, NULL);
    const char *tuned = getenv("FLASHGEN_TUNED");
    c->ignore_tuned = tuned && !strcmp(tuned, "0");
    return FG_OK;
}

int fg_ctx_enter(const fg_context *c, CUcontext *prev) {
    *prev = NULL;
    return c && c->cu && c->cuctx && c->cu->CtxGetCurrent && c->cu->CtxSetCurrent &&
           c->cu->CtxGetCurrent(prev) == CUDA_SUCCESS && *prev != c->cuctx &&
           c->cu->CtxSetCurrent(c->cuctx) == CUDA_SUCCESS;
}

void fg_ctx_leave(const fg_context *c, int entered, CUcontext prev) {
    if (entered) c->cu->CtxSetCurrent(prev);
}

void fg_context_destroy(fg_context *c) {
    if (!c) return;
    /* modules and device buffers are freed in the context they belong to,
     * whatever is current on the destroying thread (a finalizer, a worker
     * with none current: the driver refused the frees, and they leaked);
     * the thread's own current context is restored after */
    CUcontext prev = NULL;
    const int switched = fg_ctx_enter(c, &prev);
    fg_kernels_free(c);
    fg_choices_free(c);
    fg_ctx_infer_free(c);
    fg_ctx_leave(c, switched, prev);
    fg_store_close(c->store);
    free(c->store_path);
    if (c->retained_primary && c->cu) {
        /* the primary context may be destroyed by this release: it must not
         * stay current on this thread as a dangling handle */
        CUcontext cur = NULL;
        if (c->cu->CtxGetCurrent(&cur) == CUDA_SUCCESS && cur == c->cuctx) c->cu->CtxSetCurrent(NULL);
        c->cu->DevicePrimaryCtxRelease(c->dev);
    }
    if (c->sources_ready) fg_sources_free(&c->sources);
    while (c->msgs) {
        fg_thread_msg *n = c->msgs->next;
        free(c->msgs->msg);
        free(c->msgs);
        c->msgs = n;
    }
    pthread_cond_destroy(&c->compiled);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* A number for the calling thread that no other thread of the process
 * ever gets (glibc reuses a dead thread's pthread_t, and a new thread then
 * read the dead one's message where the header promises ""). */
static unsigned long long fg_thread_serial(void) {
    static unsigned long long next = 0;
    static _Thread_local unsigned long long mine = 0;
    if (!mine) mine = __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED);
    return mine;
}

/* Messages are kept per calling thread, so that a failure in one thread
 * never frees the message another thread is reading. */
const char *fg_errmsg(const fg_context *cc) {
    if (!cc) return "fg_context is NULL (fg_context_create failed or was not called)";
    fg_context *c = (fg_context *)cc;
    const char *m = "";
    const unsigned long long self = fg_thread_serial();
    pthread_mutex_lock(&c->mu);
    for (fg_thread_msg *t = c->msgs; t; t = t->next)
        if (t->thread == self) { m = t->msg ? t->msg : ""; break; }
    pthread_mutex_unlock(&c->mu);
    return m;
}

fg_status fg_ctx_fail(fg_context *ctx, fg_error *e) {
    fg_status s = e->status;
    if (ctx) {
        const unsigned long long self = fg_thread_serial();
        pthread_mutex_lock(&ctx->mu);
        fg_thread_msg *t = ctx->msgs;
        while (t && t->thread != self) t = t->next;
        if (!t && (t = calloc(1, sizeof *t))) {
            t->thread = self;
            t->next = ctx->msgs;
            ctx->msgs = t;
        }
        if (t) {
            free(t->msg);
            t->msg = e->msg ? e->msg : fg_strdupf("%s", fg_status_name(s));
            e->msg = NULL;
        }
        pthread_mutex_unlock(&ctx->mu);
    }
    fg_error_clear(e);
    return s;
}

fg_status fg_ctx_sources(fg_context *ctx, const fg_sources **out, fg_error *err) {
    fg_status st = FG_OK;
    pthread_mutex_lock(&ctx->mu);
    if (!ctx->sources_ready) {
        st = fg_sources_load(&ctx->sources, err);
        ctx->sources_ready = st == FG_OK;
    }
    pthread_mutex_unlock(&ctx->mu);
    *out = st == FG_OK ? &ctx->sources : NULL;
    return st;
}

fg_status fg_ctx_device(fg_context *ctx, fg_error *err) {
    const fg_cuda *cu;
    fg_status st = fg_cuda_get(&cu, err);
    if (st != FG_OK) return st;
    char b[256];
    pthread_mutex_lock(&ctx->mu);
    if (!ctx->device_ready) {
        CUcontext cur = NULL;
        cu->CtxGetCurrent(&cur);
        CUresult r;
        if (cur) {
            r = cu->CtxGetDevice(&ctx->dev);
            ctx->cuctx = cur;
        } else {
            r = cu->DeviceGet(&ctx->dev, 0);
            if (r == CUDA_SUCCESS) r = cu->DevicePrimaryCtxRetain(&ctx->cuctx, ctx->dev);
            if (r == CUDA_SUCCESS) ctx->retained_primary = 1;
        }
        if (r != CUDA_SUCCESS) {
            st = fg_fail(err, FG_ERR_CUDA, "cannot bind a CUDA context: %s", fg_cuda_errstr(cu, r, b, sizeof b));
            goto out;
        }
        st = fg_device_query(cu, ctx->dev, &ctx->dev_info, err);
        if (st != FG_OK) goto out;
        if (ctx->dev_info.cc_major < 8) {
            st = fg_fail(err, FG_ERR_UNSUPPORTED, "%s (sm_%d%d) is older than sm_80; flashgen needs Ampere or newer",
                         ctx->dev_info.name, ctx->dev_info.cc_major, ctx->dev_info.cc_minor);
            goto out;
        }
        st = fg_nvrtc_load(&ctx->nvrtc, err);
        if (st != FG_OK) goto out;
        ctx->cu = cu;
        ctx->device_ready = 1;
    }
    {
        CUcontext cur = NULL;
        cu->CtxGetCurrent(&cur);
        if (!cur) {
            CUresult r = cu->CtxSetCurrent(ctx->cuctx);
            if (r != CUDA_SUCCESS) st = fg_fail(err, FG_ERR_CUDA, "cuCtxSetCurrent: %s", fg_cuda_errstr(cu, r, b, sizeof b));
        } else if (cur != ctx->cuctx) {
            st = fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                         "the CUDA context current on this thread is not the one this fg_context is bound to "
                         "(one fg_context per CUDA context/device)");
        }
    }
out:
    if (st != FG_OK && !ctx->device_ready && ctx->retained_primary) {
        /* a failed first use must not keep the primary context alive */
        cu->DevicePrimaryCtxRelease(ctx->dev);
        ctx->retained_primary = 0;
        ctx->cuctx = NULL;
    }
    pthread_mutex_unlock(&ctx->mu);
    return st;
}

fg_status fg_context_set_cache(fg_context *ctx, const char *path) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    pthread_mutex_lock(&ctx->mu);
    if (ctx->store_ready) {
        pthread_mutex_unlock(&ctx->mu);
        char path[4096];
        fg_store_path_copy(ctx->store, path, sizeof path);
        fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_context_set_cache: the cache (%s) is already open; call it before the "
                "first call that compiles", path);
        return fg_ctx_fail(ctx, &e);
    }
    free(ctx->store_path);
    ctx->store_path = NULL;
    ctx->store_off = path && !strcmp(path, "off");
    if (path && !ctx->store_off && !(ctx->store_path = fg_strdupf("%s", path))) {
        pthread_mutex_unlock(&ctx->mu);
        fg_fail(&e, FG_ERR_OUT_OF_MEMORY, "out of memory");
        return fg_ctx_fail(ctx, &e);
    }
    pthread_mutex_unlock(&ctx->mu);
    return FG_OK;
}

fg_status fg_context_get_stats(fg_context *ctx, fg_context_stats *out) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_context_stats s;
    pthread_mutex_lock(&ctx->mu);
    s = ctx->stats;
    if (ctx->store) fg_store_path_copy(ctx->store, s.cache_path, sizeof s.cache_path);
    snprintf(s.gpu_identity, sizeof s.gpu_identity, "%s", ctx->identity);
    pthread_mutex_unlock(&ctx->mu);
    fg_error e = {0};
    if (fg_struct_write(out, &s, sizeof s, FG_CONTEXT_STATS_MIN_SIZE, "fg_context_stats", &e) != FG_OK)
        return fg_ctx_fail(ctx, &e);
    return FG_OK;
}

/* Called after fg_ctx_device succeeded. */
fg_status fg_ctx_store(fg_context *ctx, fg_store **out, const char **identity, fg_error *err) {
    const fg_sources *src;
    fg_status st = fg_ctx_sources(ctx, &src, err);
    if (st != FG_OK) return st;
    pthread_mutex_lock(&ctx->mu);
    if (!ctx->store_ready) {
        const fg_device_info *d = &ctx->dev_info;
        fg_store_identity(d->name, d->cc_major, d->cc_minor, d->sm_count, d->driver_version, ctx->nvrtc.major,
                          ctx->nvrtc.minor, src->hash_hex, ctx->identity, sizeof ctx->identity);
        st = fg_store_open(ctx->store_off ? "off" : ctx->store_path, NULL, NULL, &ctx->store, err);
        ctx->store_ready = st == FG_OK;
    }
    pthread_mutex_unlock(&ctx->mu);
    if (st != FG_OK) return st;
    *out = ctx->store;
    *identity = ctx->identity;
    return FG_OK;
}
