/* sql.c: the SQL helpers the store's files share. */
#include "cache/store_internal.h"

#include <stdio.h>
#include <string.h>

int fgs_is_corrupt(int rc) {
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

fg_status fgs_fail(fg_error *err, sqlite3 *db, int rc, const char *what) {
    return fg_fail(err, FG_ERR_CACHE, "cache: %s: %s (SQLite %d%s%s)", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                   rc, db ? ", " : "", db ? sqlite3_errstr(rc) : "");
}

int fgs_exec(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL); }

int fgs_int(sqlite3 *db, const char *sql, int *out) {
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(q);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(q);
    return rc;
}

void fgs_bind_text(sqlite3_stmt *q, int i, const char *t) { sqlite3_bind_text(q, i, t ? t : "", -1, SQLITE_TRANSIENT); }

void fgs_bind_gsb(sqlite3_stmt *q, const char *gpu, const char *spec, const char *bucket) {
    fgs_bind_text(q, 1, gpu);
    fgs_bind_text(q, 2, spec);
    fgs_bind_text(q, 3, bucket);
}

int fgs_step_done(sqlite3_stmt *q) {
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

const char *fgs_col_text(sqlite3_stmt *q, int col) {
    const char *t = (const char *)sqlite3_column_text(q, col);
    return t ? t : "";
}

void fgs_copy_col(char *dst, size_t n, sqlite3_stmt *q, int col) { snprintf(dst, n, "%s", fgs_col_text(q, col)); }

fg_status fgs_query_each(fg_store *s, const char *sql, const char *const *binds, int nb,
                         void (*row)(sqlite3_stmt *, void *), void *ud, fg_error *err) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = NULL;
    int rc = s->db ? sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) : SQLITE_MISUSE;
    for (int i = 0; rc == SQLITE_OK && i < nb; ++i) fgs_bind_text(q, i + 1, binds[i]);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        row(q, ud);
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, "reading the cache");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return st;
}

fg_status fgs_exec_locked(fg_store *s, const char *sql, const char *what, fg_error *err) {
    int rc = s->db ? fgs_exec(s->db, sql) : SQLITE_MISUSE;
    return rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, what);
}
