/* tunings.c: tuning winners by (GPU identity, spec, shape bucket) and every
 * candidate's time. */
#include "cache/store_internal.h"

#include <math.h>
#include <string.h>
#include <time.h>

int fgs_tuning_valid(double ms, const char *config) {
    fg_config c;
    fg_error e = {0};
    const int ok = isfinite(ms) && ms > 0 && config && fg_config_parse(config, &c, &e) == FG_OK;
    fg_error_clear(&e);
    return ok;
}

fg_status fg_store_get_tuning(fg_store *s, const char *gpu, const char *spec, const char *bucket, fg_tuning *t,
                              int *found, fg_error *err) {
    memset(t, 0, sizeof *t);
    *found = 0;
    pthread_mutex_lock(&s->mu);
    int rc = SQLITE_OK;
    if (s->db) {
        sqlite3_stmt *q = s->st[ST_GET_T];
        fgs_bind_gsb(q, gpu, spec, bucket);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            fgs_copy_col(t->config, sizeof t->config, q, 0);
            t->ms = sqlite3_column_double(q, 1);
            t->heuristic_ms = sqlite3_column_double(q, 2);
            fgs_copy_col(t->shape, sizeof t->shape, q, 3);
            t->created = sqlite3_column_int64(q, 4);
            *found = fgs_tuning_valid(t->ms, t->config);
            if (!*found)
                fgs_warnf(s, "cache file %s: ignoring the tuning row of %s %s (time %g ms, configuration '%s'): not a "
                             "time and configuration flashgen stores", fg_store_path(s), spec, bucket, t->ms, t->config);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
        sqlite3_reset(q);
        if (rc != SQLITE_OK && fgs_recover(s, rc)) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        fgs_warnf(s, "cache file %s: reading a tuning result failed: %s; using the built-in heuristic", fg_store_path(s),
                  sqlite3_errmsg(s->db));
    pthread_mutex_unlock(&s->mu);
    (void)err;
    return FG_OK;
}

static int put_tuning_locked(fg_store *s, const char *gpu, const char *spec, const char *bucket, const fg_tuning *w,
                             const fg_tune_row *rows, int nrows, int *kept) {
    int rc = fgs_exec(s->db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) return rc;
    sqlite3_stmt *q = s->st[ST_GET_T_MS];
    fgs_bind_gsb(q, gpu, spec, bucket);
    rc = sqlite3_step(q);
    const int have = rc == SQLITE_ROW;
    /* a row that is not valid (a forged or damaged file) never keeps a real result out */
    const int old_valid = have && fgs_tuning_valid(sqlite3_column_double(q, 0), (const char *)sqlite3_column_text(q, 1));
    const double old_ms = have ? sqlite3_column_double(q, 0) : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto fail;
    *kept = old_valid && old_ms <= w->ms;
    if (!*kept) {
        q = s->st[ST_PUT_T];
        fgs_bind_gsb(q, gpu, spec, bucket);
        fgs_bind_text(q, 4, w->config);
        sqlite3_bind_double(q, 5, w->ms);
        sqlite3_bind_double(q, 6, w->heuristic_ms);
        fgs_bind_text(q, 7, w->shape);
        sqlite3_bind_int64(q, 8, w->created ? w->created : (int64_t)time(NULL));
        if ((rc = fgs_step_done(q)) != SQLITE_OK) goto fail;
        q = s->st[ST_DEL_C];
        fgs_bind_gsb(q, gpu, spec, bucket);
        if ((rc = fgs_step_done(q)) != SQLITE_OK) goto fail;
        for (int i = 0; i < nrows; ++i) {
            q = s->st[ST_PUT_C];
            fgs_bind_gsb(q, gpu, spec, bucket);
            fgs_bind_text(q, 4, rows[i].config);
            sqlite3_bind_double(q, 5, rows[i].ms);
            fgs_bind_text(q, 6, rows[i].note);
            if ((rc = fgs_step_done(q)) != SQLITE_OK) goto fail;
        }
    }
    return fgs_exec(s->db, "COMMIT");
fail:
    fgs_exec(s->db, "ROLLBACK");
    return rc;
}

fg_status fg_store_put_tuning(fg_store *s, const char *gpu, const char *spec, const char *bucket, const fg_tuning *w,
                              const fg_tune_row *rows, int nrows, int *kept, fg_error *err) {
    int k = 0;
    if (!fgs_tuning_valid(w->ms, w->config))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "cache: tuning result of %s %s: time %g ms and configuration '%s' "
                       "(a time must be finite and > 0, the configuration fg_config_format text)", spec, bucket, w->ms,
                       w->config);
    pthread_mutex_lock(&s->mu);
    int rc = s->db ? put_tuning_locked(s, gpu, spec, bucket, w, rows, nrows, &k) : SQLITE_MISUSE;
    if (rc != SQLITE_OK && fgs_recover(s, rc)) rc = put_tuning_locked(s, gpu, spec, bucket, w, rows, nrows, &k);
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, "storing a tuning result");
    pthread_mutex_unlock(&s->mu);
    if (kept) *kept = k;
    return st;
}

typedef struct tun_ud { fg_store_tuning_fn fn; void *ud; } tun_ud;
static void tun_row(sqlite3_stmt *q, void *p) {
    tun_ud *u = p;
    fg_tuning t;
    memset(&t, 0, sizeof t);
    fgs_copy_col(t.config, sizeof t.config, q, 3);
    t.ms = sqlite3_column_double(q, 4);
    t.heuristic_ms = sqlite3_column_double(q, 5);
    fgs_copy_col(t.shape, sizeof t.shape, q, 6);
    t.created = sqlite3_column_int64(q, 7);
    u->fn(fgs_col_text(q, 0), fgs_col_text(q, 1), fgs_col_text(q, 2), &t, u->ud);
}

fg_status fg_store_each_tuning(fg_store *s, const char *gpu, fg_store_tuning_fn fn, void *ud, fg_error *err) {
    tun_ud u = {fn, ud};
    const char *b[1] = {gpu};
    return fgs_query_each(s,
                      gpu ? "SELECT gpu, spec, bucket, config, ms, heuristic_ms, shape, created FROM tunings WHERE gpu = ?1"
                            " ORDER BY gpu, spec, length(bucket), bucket"
                          : "SELECT gpu, spec, bucket, config, ms, heuristic_ms, shape, created FROM tunings"
                            " ORDER BY gpu, spec, length(bucket), bucket",
                      b, gpu ? 1 : 0, tun_row, &u, err);
}

typedef struct cand_ud { fg_store_row_fn fn; void *ud; } cand_ud;
static void cand_row(sqlite3_stmt *q, void *p) {
    cand_ud *u = p;
    fg_tune_row r;
    fgs_copy_col(r.config, sizeof r.config, q, 0);
    r.ms = sqlite3_column_double(q, 1);
    fgs_copy_col(r.note, sizeof r.note, q, 2);
    u->fn(&r, u->ud);
}

fg_status fg_store_each_candidate(fg_store *s, const char *gpu, const char *spec, const char *bucket,
                                  fg_store_row_fn fn, void *ud, fg_error *err) {
    cand_ud u = {fn, ud};
    const char *b[3] = {gpu, spec, bucket};
    return fgs_query_each(s,
                      "SELECT config, ms, note FROM tuning_candidates WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3"
                      " ORDER BY ms < 0, ms",
                      b, 3, cand_row, &u, err);
}

