/* test_cache_launch.c (cpu): what the runtime takes from a stored kernel
 * (load_stored in runtime/kernel_cache.c), with a fake driver table.
 *
 * A row's threads / smem columns are never used: the variant decides
 * (issue 16 item 8).  A row not verified (imported without --trust-kernels)
 * is never loaded: the variant is compiled here (NVRTC, when present) and
 * the local cubin is what the driver gets. */
#include <elf.h>
#include <stdint.h>
#include <unistd.h>

#include "select/heuristic.h"
#include "runtime/internal.h"
#include "test_cache_util.h"

/* ---- a driver that records what it is given ---- */
static unsigned char loaded_first[4], loaded_mark[4];
static int loads, smem_attr = -1;

static CUresult f_load(CUmodule *m, const void *image) {
    memcpy(loaded_first, image, sizeof loaded_first);
    memcpy(loaded_mark, (const unsigned char *)image + 64, sizeof loaded_mark); /* a stored row's "FAKE", below */
    ++loads;
    *m = (CUmodule)(uintptr_t)0x1000;
    return CUDA_SUCCESS;
}
static CUresult f_unload(CUmodule m) { (void)m; return CUDA_SUCCESS; }
static CUresult f_getfn(CUfunction *f, CUmodule m, const char *name) {
    (void)m;
    (void)name;
    *f = (CUfunction)(uintptr_t)0x2000;
    return CUDA_SUCCESS;
}
static CUresult f_setattr(CUfunction f, CUfunction_attribute a, int v) {
    (void)f;
    if (a == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) smem_attr = v;
    return CUDA_SUCCESS;
}
static CUresult f_errname(CUresult r, const char **s) { (void)r; *s = "FAKE"; return CUDA_SUCCESS; }

static fg_context *fake_context(const char *cache) {
    static fg_cuda fake;
    fake.ModuleLoadData = f_load;
    fake.ModuleUnload = f_unload;
    fake.ModuleGetFunction = f_getfn;
    fake.FuncSetAttribute = f_setattr;
    fake.GetErrorName = f_errname;
    fake.GetErrorString = f_errname;
    fg_context *ctx = NULL;
    fg_context_create(&ctx);
    fg_context_set_cache(ctx, cache);
    ctx->cu = &fake;
    fg_device_info *d = &ctx->dev_info;
    snprintf(d->name, sizeof d->name, "Fake H100");
    d->cc_major = 9;
    d->sm_count = 132;
    d->driver_version = 13000;
    d->smem_per_block_optin = 232448;
    snprintf(d->arch, sizeof d->arch, "sm_90a");
    ctx->nvrtc.major = 13;
    return ctx;
}

/* The context's counters, read directly (this test already reaches in). */
static fg_context_stats stats_of(fg_context *ctx) {
    pthread_mutex_lock(&ctx->mu);
    const fg_context_stats s = ctx->stats;
    pthread_mutex_unlock(&ctx->mu);
    return s;
}

static void variant(const char *text, fg_variant *v) {
    fg_causal cz;
    fg_error e = {0};
    CHECK(fg_spec_parse(text, v, &cz, &e) == FG_OK, "%s: %s", text, e.msg);
    fg_error_clear(&e);
}

/* Stores a fake cubin for v under the fake context's identity and key. */
static void store_row_as(fg_context *ctx, const char *path, const fg_variant *v, int verified, int elf);
static void store_row(fg_context *ctx, const char *path, const fg_variant *v, int verified) {
    store_row_as(ctx, path, v, verified, 1);
}
static void store_row_as(fg_context *ctx, const char *path, const fg_variant *v, int verified, int elf) {
    const fg_sources *src;
    fg_error e = {0};
    CHECK(fg_ctx_sources(ctx, &src, &e) == FG_OK, "%s", e.msg);
    char key[512], gpu[512];
    fg_variant_key(v, src->hash_hex, ctx->nvrtc.major, ctx->nvrtc.minor, ctx->dev_info.arch, key, sizeof key);
    const fg_device_info *d = &ctx->dev_info;
    fg_store_identity(d->name, d->cc_major, d->cc_minor, d->sm_count, d->driver_version, ctx->nvrtc.major,
                      ctx->nvrtc.minor, src->hash_hex, gpu, sizeof gpu);
    fg_store *s = open_ok(path);
    fg_stored_kernel k = fake_kernel(0xAB, 4096);
    /* a CUDA ELF header with no sections (the library hands the driver only
     * whole images, fg_cubin_sane), and "FAKE" after it to tell it apart */
    Elf64_Ehdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.e_ident, ELFMAG, SELFMAG);
    h.e_ident[EI_CLASS] = ELFCLASS64;
    h.e_ident[EI_DATA] = ELFDATA2LSB;
    h.e_machine = 190; /* EM_CUDA */
    h.e_ehsize = sizeof h;
    if (elf) memcpy(k.cubin, &h, sizeof h);
    memcpy((unsigned char *)k.cubin + 64, "FAKE", 4);
    k.threads = 32; /* what a forged row claims */
    k.smem_bytes = 7;
    snprintf(k.entry, sizeof k.entry, "flashgen_fwd");
    CHECK(fg_store_put_kernel(s, gpu, key, &k, &e) == FG_OK, "%s", e.msg);
    fg_store_close(s);
    free(k.cubin);
    if (!verified) /* as `flashgen cache import` without --trust-kernels leaves it */
        CHECK(raw_exec(path, "UPDATE kernels SET verified = 0") == SQLITE_OK, "unverify");
}

static void test_launch_params_from_variant(void) {
    fg_context *ctx = fake_context(file("launch.db"));
    fg_variant v;
    variant("hdim=128,dtype=bf16,block_m=128,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1,wgmma=0", &v);
    store_row(ctx, file("launch.db"), &v, 1);
    fg_kernel *k = NULL;
    fg_error e = {0};
    CHECK(fg_ctx_kernel(ctx, &v, &k, &e) == FG_OK, "%s", e.msg);
    fg_error_clear(&e);
    const fg_context_stats cs = stats_of(ctx);
    const int smem = fg_config_smem_bytes(&v.spec, &v.cfg);
    CHECK(cs.kernels_from_cache == 1 && cs.kernels_compiled == 0 && !memcmp(loaded_mark, "FAKE", 4),
          "the stored kernel was not loaded (from cache %ld, compiled %ld)", cs.kernels_from_cache, cs.kernels_compiled);
    if (k) {
        CHECK(k->threads == v.cfg.warps * 32, "launch threads %d come from the row (the variant has %d)", k->threads,
              v.cfg.warps * 32);
        CHECK(k->smem_bytes == smem, "launch shared memory %d comes from the row (the variant needs %d)", k->smem_bytes,
              smem);
    }
    CHECK(smem > 48 * 1024 && smem_attr == smem, "the driver was told %d bytes of dynamic shared memory, not %d",
          smem_attr, smem);
    fg_context_destroy(ctx);
}

static void test_unverified_row_not_loaded(void) {
    fg_context *ctx = fake_context(file("imported.db"));
    fg_variant v;
    variant("hdim=64,dtype=fp16,block_m=64,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1,wgmma=0", &v);
    store_row(ctx, file("imported.db"), &v, 0);
    fg_nvrtc_info nv;
    fg_error e = {0};
    const int with_nvrtc = fg_nvrtc_load(&nv, &e) == FG_OK;
    fg_error_clear(&e);
    loads = 0;
    memset(loaded_first, 0, sizeof loaded_first);
    memset(loaded_mark, 0, sizeof loaded_mark);
    fg_kernel *k = NULL;
    const fg_status st = fg_ctx_kernel(ctx, &v, &k, &e);
    const fg_context_stats cs = stats_of(ctx);
    CHECK(cs.kernels_from_cache == 0 && !(loads && !memcmp(loaded_mark, "FAKE", 4)),
          "an imported, unverified cubin was given to the driver");
    if (with_nvrtc) {
        CHECK(st == FG_OK && cs.kernels_compiled == 1, "not compiled here: %s", e.msg);
        CHECK(!memcmp(loaded_first, "\x7f" "ELF", 4), "the driver did not get the local cubin");
        CHECK(raw_int(file("imported.db"), "SELECT count(*) FROM kernels WHERE verified = 1") == 1,
              "the local build did not replace the unverified row");
    } else {
        printf("no NVRTC here: the compile side of the unverified row is not checked\n");
    }
    fg_error_clear(&e);
    fg_context_destroy(ctx);
}

/* A verified row whose bytes are not a whole CUDA ELF image (damaged, or
 * put there by hand): never given to the driver (it sizes the image from
 * its own headers and would read past the row), evicted, compiled here. */
static void test_damaged_row_not_loaded(void) {
    fg_context *ctx = fake_context(file("damaged.db"));
    fg_variant v;
    variant("hdim=64,dtype=bf16,block_m=64,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1,wgmma=0", &v);
    store_row_as(ctx, file("damaged.db"), &v, 1, 0);
    loads = 0;
    memset(loaded_mark, 0, sizeof loaded_mark);
    fg_kernel *k = NULL;
    fg_error e = {0};
    fg_ctx_kernel(ctx, &v, &k, &e);
    fg_error_clear(&e);
    const fg_context_stats cs = stats_of(ctx);
    CHECK(!(loads && !memcmp(loaded_mark, "FAKE", 4)) && cs.kernels_from_cache == 0 && cs.kernels_evicted == 1,
          "a damaged row reached the driver or stayed (from cache %ld, evicted %ld)", cs.kernels_from_cache,
          cs.kernels_evicted);
    fg_context_destroy(ctx);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/fg_test_cache_launch_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_launch_params_from_variant();
    test_unverified_row_not_loaded();
    test_damaged_row_not_loaded();
    return cache_test_finish("test_cache_launch");
}
