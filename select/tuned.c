/* tuned.c: the keys of tuning results and their look-up (see tuned.h). */
#include "select/tuned.h"

#include <stdio.h>

#include "select/bwd_config.h"
#include "select/heuristic.h"

void fg_tuning_spec_text(const fg_spec *s, int path, int block_q, int block_k, char *buf, size_t n) {
    static const char *paths[] = {"auto", "mma", "wgmma", "tma"};
    char dv[32];
    fg_spec_head_dim_v_item(s, dv, sizeof dv); /* "" when equal: existing entries keep their text */
    int w = snprintf(buf, n, "hdim=%d%s,dtype=%s,causal=%d,sparse=%d,path=%s", s->head_dim, dv, fg_dtype_name(s->dtype),
                     s->causal, s->sparse, paths[path >= 0 && path <= 3 ? path : 0]);
    /* the backward's own entries; forward entries keep their text */
    if (s->kind == FG_KIND_BWD && w > 0 && (size_t)w < n) w += snprintf(buf + w, n - (size_t)w, ",kind=bwd");
    if (s->sparse && w > 0 && (size_t)w < n) w += snprintf(buf + w, n - (size_t)w, ",layout=%dx%d", block_q, block_k);
    /* a pattern's element mask changes the kernel (registers): its own tuning entry */
    if (w > 0 && (size_t)w < n) fg_mask_hash_format(&s->mask_hash, buf + w, n - (size_t)w);
}

int fg_bucket_len(int s) {
    int b = 128;
    while (b < s && b < 16384) b *= 2;
    return b;
}

void fg_shape_bucket(int seqlen_q, int seqlen_k, char *buf, size_t n) {
    snprintf(buf, n, "sq%d,sk%d", fg_bucket_len(seqlen_q), fg_bucket_len(seqlen_k));
}

int fg_tuned_config_fits(const fg_spec *s, const fg_config *c, int path, int smem_limit, int bq, int bk, int wgmma_ok,
                         fg_error *err) {
    /* an entry of a path names a kernel of that family (the tuner writes
     * them so; a hand-edited or foreign row may not, and would run another
     * family than the caller asked for) */
    static const char *const fam[] = {"mma.sync (wgmma=0)", "wgmma (wgmma=1)", "TMA (wgmma=2)"};
    const int want = path == FG_PATH_MMA ? 0 : path == FG_PATH_WGMMA ? 1 : path == FG_PATH_TMA ? 2 : -1;
    if (want >= 0 && c->wgmma != want) {
        fg_fail(err, FG_ERR_UNSUPPORTED, "an entry for the %s path names a configuration of another kernel family (wgmma=%d)",
                fam[want], c->wgmma);
        return 0;
    }
    const fg_status st = s->kind == FG_KIND_BWD ? fg_bwd_config_check(s, c, smem_limit, err) : fg_config_check(s, c, smem_limit, err);
    if (st != FG_OK) return 0;
    if ((bq && bq % c->block_m) || (bk && bk % c->block_n)) {
        fg_fail(err, FG_ERR_UNSUPPORTED, "block_m=%d x block_n=%d do not divide the layout block %d x %d", c->block_m,
                c->block_n, bq, bk);
        return 0;
    }
    if ((c->wgmma == 1 && !wgmma_ok) || (c->wgmma == 2 && wgmma_ok < 2)) {
        fg_fail(err, FG_ERR_UNSUPPORTED, "wgmma=%d: this device or call cannot take that Hopper path", c->wgmma);
        return 0;
    }
    return 1;
}

int fg_tuned_config(fg_store *store, const char *gpu, const fg_spec *s, int path, int bq, int bk, int seqlen_q,
                    int seqlen_k, int smem_limit, int wgmma_ok, fg_config *c) {
    char spec[192], bucket[32];
    fg_tuning_spec_text(s, path, bq, bk, spec, sizeof spec);
    fg_shape_bucket(seqlen_q, seqlen_k, bucket, sizeof bucket);
    fg_tuning t;
    int found = 0;
    fg_error e = {0};
    fg_store_get_tuning(store, gpu, spec, bucket, &t, &found, &e);
    fg_error_clear(&e);
    if (!found) return 0;
    if (fg_config_parse(t.config, c, &e) == FG_OK && fg_tuned_config_fits(s, c, path, smem_limit, bq, bk, wgmma_ok, &e)) return 1;
    fprintf(stderr, "flashgen: warning: ignoring the tuned configuration '%s' of %s %s: %s\n", t.config, spec, bucket,
            e.msg ? e.msg : "it does not fit this call");
    fg_error_clear(&e);
    return 0;
}
