/* kernel_cache.c: the in-memory kernel cache of a context.
 *
 * Keyed by the full variant key (spec + block configuration + template hash
 * + NVRTC version + arch).  The first thread to ask for a key inserts a
 * "compiling" entry and compiles outside the lock; others asking for the
 * same key wait on a condition variable, so each variant is compiled once
 * per context, and different variants compile in parallel.  A failure that
 * will not change (template error, NVRTC error) is remembered with its
 * message: asking again gives the same error at once.
 * Lookup order: this list, then the cache file (cache/store.c), then
 * render + NVRTC, whose cubin is written to the cache file.  Others (out of
 * memory, a driver error while loading) are returned to the callers that
 * waited for that build, and the next request builds again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/render.h"
#include "runtime/internal.h"
#include "select/bwd_config.h"
#include "select/heuristic.h"

static fg_kernel *find(fg_context *ctx, const char *key) {
    for (fg_kernel *k = ctx->kernels; k; k = k->next)
        if (!strcmp(k->key, key)) return k;
    return NULL;
}

static CUresult load(const fg_cuda *cu, fg_kernel *k, const void *cubin, const char *entry, int smem_bytes) {
    CUresult res = cu->ModuleLoadData(&k->module, cubin);
    if (res == CUDA_SUCCESS) res = cu->ModuleGetFunction(&k->fn, k->module, entry);
    if (res == CUDA_SUCCESS && k->var.spec.kind == FG_KIND_BWD) { /* the module's two other kernels */
        char name[96];
        snprintf(name, sizeof name, "%s_pre", entry);
        res = cu->ModuleGetFunction(&k->fn_pre, k->module, name);
        snprintf(name, sizeof name, "%s_dq", entry);
        if (res == CUDA_SUCCESS) res = cu->ModuleGetFunction(&k->fn_dq, k->module, name);
    }
    if (res == CUDA_SUCCESS && k->var.spec.kind == FG_KIND_APPEND) { /* seqlens_k += seqlen_new */
        char name[96];
        snprintf(name, sizeof name, "%s_advance", entry);
        res = cu->ModuleGetFunction(&k->fn_advance, k->module, name);
    }
    if (res == CUDA_SUCCESS && smem_bytes > 48 * 1024)
        res = cu->FuncSetAttribute(k->fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem_bytes);
    if (res != CUDA_SUCCESS && k->module) {
        cu->ModuleUnload(k->module);
        k->module = NULL;
    }
    return res;
}

/* A stored cubin that can never load: removed from the cache file, with a
 * warning saying why (the caller compiles it again). */
static void evict_stored(fg_context *ctx, fg_store *store, const char *gpu, const char *key, const char *why) {
    fprintf(stderr, "flashgen: warning: the cached cubin of %s %s; evicted, compiling it again\n", key, why);
    fg_error e = {0};
    fg_store_evict_kernel(store, gpu, key, &e);
    fg_error_clear(&e);
    fg_ctx_count(ctx, &ctx->stats.kernels_evicted);
}

/* The cache file's copy of key, loaded; 0 on a miss.  The store hands out
 * only cubins compiled here or vouched for (docs/CACHE.md); the launch
 * parameters (threads, dynamic shared memory) come from the variant, never
 * from the row: the templates' own formulas, checked equal by test_cpu_core.
 * A stored cubin that is not a whole CUDA ELF image (fg_cubin_sane), or
 * whose image the driver refuses, is evicted (the caller then compiles it
 * again); one that fails to load for another reason (out of memory) is
 * kept. */
static int load_stored(fg_context *ctx, fg_store *store, const char *gpu, const fg_variant *v, const char *key,
                       fg_kernel *k) {
    fg_stored_kernel sk;
    int found = 0;
    fg_error e = {0};
    fg_store_get_kernel(store, gpu, key, &sk, &found, &e);
    fg_error_clear(&e);
    if (!found) return 0;
    char b[256], why[320];
    if (!fg_cubin_sane(sk.cubin, sk.cubin_size)) { /* the driver would read past it: never handed over */
        snprintf(why, sizeof why, "is not a whole CUDA ELF image (%zu bytes)", sk.cubin_size);
        evict_stored(ctx, store, gpu, key, why);
        fg_stored_kernel_free(&sk);
        return 0;
    }
    const int smem_bytes = v->spec.kind == FG_KIND_BWD      ? fg_bwd_smem_bytes(&v->spec, &v->cfg)
                           : v->spec.kind == FG_KIND_APPEND ? 0 /* kv_append.lua: no shared memory */
                                                            : fg_config_smem_bytes(&v->spec, &v->cfg);
    CUresult res = load(ctx->cu, k, sk.cubin, sk.entry, smem_bytes);
    if (res == CUDA_SUCCESS) {
        k->threads = v->cfg.warps * 32;
        k->smem_bytes = smem_bytes;
        k->stats = sk.stats;
        fg_ctx_count(ctx, &ctx->stats.kernels_from_cache);
    } else if (res == CUDA_ERROR_INVALID_IMAGE || res == CUDA_ERROR_NO_BINARY_FOR_GPU || res == CUDA_ERROR_NOT_FOUND ||
               res == CUDA_ERROR_INVALID_PTX || res == CUDA_ERROR_UNSUPPORTED_PTX_VERSION ||
               res == CUDA_ERROR_SHARED_OBJECT_INIT_FAILED) { /* the image itself: it will never load */
        snprintf(why, sizeof why, "does not load (%s)", fg_cuda_errstr(ctx->cu, res, b, sizeof b));
        evict_stored(ctx, store, gpu, key, why);
    } else { /* out of memory, a busy device: the row stays for later */
        fprintf(stderr, "flashgen: warning: the cached cubin of %s does not load now (%s); kept, compiling it instead\n",
                key, fg_cuda_errstr(ctx->cu, res, b, sizeof b));
    }
    fg_stored_kernel_free(&sk);
    return res == CUDA_SUCCESS;
}

/* Cache file, else render, compile, load and store one variant (no lock held). */
static fg_status build(fg_context *ctx, const fg_variant *v, const char *key, fg_kernel *k, fg_error *err) {
    const fg_sources *src;
    fg_status st = fg_ctx_sources(ctx, &src, err);
    if (st != FG_OK) return st;
    fg_store *store;
    const char *gpu;
    st = fg_ctx_store(ctx, &store, &gpu, err);
    if (st != FG_OK) return st;
    if (load_stored(ctx, store, gpu, v, key, k)) return FG_OK;

    fg_rendered r;
    st = fg_render_forward(src, v, key, &r, err);
    if (st != FG_OK) return fg_error_prefix(err, "variant %s", key);
    fg_cubin cb;
    st = fg_compile_cubin(src, r.source, ctx->dev_info.arch, key, &cb, err);
    if (st != FG_OK) { fg_rendered_free(&r); return st; }
    fg_ctx_count(ctx, &ctx->stats.kernels_compiled);
    char b[256];
    CUresult res = load(ctx->cu, k, cb.data, r.kernel, r.smem_bytes);
    if (res != CUDA_SUCCESS) {
        st = fg_fail(err, FG_ERR_CUDA, "loading variant %s: %s", key, fg_cuda_errstr(ctx->cu, res, b, sizeof b));
    } else {
        k->threads = r.threads;
        k->smem_bytes = r.smem_bytes;
        k->stats = cb.stats;
        fg_stored_kernel sk = {cb.data, cb.size, "", r.threads, r.smem_bytes, cb.stats, cb.log};
        snprintf(sk.entry, sizeof sk.entry, "%s", r.kernel);
        fg_error e = {0};
        if (fg_store_put_kernel(store, gpu, key, &sk, &e) != FG_OK) /* the kernel works; only the next start pays */
            fprintf(stderr, "flashgen: warning: %s\n", e.msg);
        fg_error_clear(&e);
    }
    fg_cubin_free(&cb);
    fg_rendered_free(&r);
    return st;
}

static fg_status build_or_wait(fg_context *ctx, const fg_variant *v, fg_kernel **out, fg_error *err);

fg_status fg_ctx_kernel(fg_context *ctx, const fg_variant *v, fg_kernel **out, fg_error *err) {
    /* The per-call path: a ready kernel of this variant, found without
     * formatting the key (template hash, NVRTC and arch are fixed per context). */
    pthread_mutex_lock(&ctx->mu);
    for (fg_kernel *k = ctx->kernels; k; k = k->next)
        if (k->state == 1 && fg_config_same_kernel(&k->var.cfg, &v->cfg) && fg_spec_equal(&k->var.spec, &v->spec)) {
            pthread_mutex_unlock(&ctx->mu);
            *out = k;
            return FG_OK;
        }
    pthread_mutex_unlock(&ctx->mu);
    /* From here a thread may build, or wait for another's build: it is not
     * cancelled in between (a cancelled waiter would exit holding ctx->mu,
     * a cancelled builder would leave the entry "compiling" forever, and
     * every later call on the context would hang). */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    fg_status st = build_or_wait(ctx, v, out, err);
    pthread_setcancelstate(cancel_state, NULL);
    return st;
}

static fg_status build_or_wait(fg_context *ctx, const fg_variant *v, fg_kernel **out, fg_error *err) {
    const fg_sources *src;
    fg_status st = fg_ctx_sources(ctx, &src, err);
    if (st != FG_OK) return st;
    char key[512];
    fg_variant_key(v, src->hash_hex, ctx->nvrtc.major, ctx->nvrtc.minor, ctx->dev_info.arch, key, sizeof key);

    pthread_mutex_lock(&ctx->mu);
    fg_kernel *k = find(ctx, key);
    const int retry = k && k->state == 3;
    if (!k || retry) {
        if (retry) {
            k->state = 0;
        } else {
            k = calloc(1, sizeof *k);
            if (k) k->key = fg_strdupf("%s", key);
            if (k) k->var = *v;
            if (!k || !k->key) {
                if (k) free(k);
                pthread_mutex_unlock(&ctx->mu);
                return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
            }
            k->next = ctx->kernels;
            ctx->kernels = k;
        }
        pthread_mutex_unlock(&ctx->mu);

        fg_error e = {0};
        fg_status bs = build(ctx, v, key, k, &e);

        pthread_mutex_lock(&ctx->mu);
        const int permanent = bs == FG_ERR_TEMPLATE || bs == FG_ERR_COMPILE || bs == FG_ERR_UNSUPPORTED;
        k->state = bs == FG_OK ? 1 : permanent ? 2 : 3;
        k->fail_status = bs;
        free(k->fail_msg);
        k->fail_msg = e.msg;
        e.msg = NULL;
        pthread_cond_broadcast(&ctx->compiled);
    } else {
        while (k->state == 0) pthread_cond_wait(&ctx->compiled, &ctx->mu);
    }
    if (k->state >= 2) st = fg_fail(err, k->fail_status, "%s", k->fail_msg ? k->fail_msg : "compile failed");
    pthread_mutex_unlock(&ctx->mu);
    *out = st == FG_OK ? k : NULL;
    return st;
}

void fg_kernels_free(fg_context *ctx) {
    fg_kernel *k = ctx->kernels;
    while (k) {
        fg_kernel *n = k->next;
        if (k->module && ctx->cu) ctx->cu->ModuleUnload(k->module);
        free(k->key);
        free(k->fail_msg);
        free(k);
        k = n;
    }
    ctx->kernels = NULL;
}
