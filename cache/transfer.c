/* transfer.c: moving rows between files and keeping a file in shape:
 * summary, export, import, prune, clear, integrity check. */
#include "cache/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct sum_ud { fg_store_summary *out; int max, n; } sum_ud;
static void sum_row(sqlite3_stmt *q, void *p) {
    sum_ud *u = p;
    if (u->n >= u->max) return;
    fg_store_summary *o = &u->out[u->n++];
    fgs_copy_col(o->gpu, sizeof o->gpu, q, 0);
    o->kernels = sqlite3_column_int(q, 1);
    o->cubin_bytes = sqlite3_column_int64(q, 2);
    o->tunings = sqlite3_column_int(q, 3);
}

fg_status fg_store_summarise(fg_store *s, fg_store_summary *out, int max, int *n, fg_error *err) {
    sum_ud u = {out, max, 0};
    fg_status st = fgs_query_each(s,
        "SELECT g.gpu, (SELECT count(*) FROM kernels k WHERE k.gpu = g.gpu),"
        " (SELECT coalesce(sum(length(cubin)), 0) FROM kernels k WHERE k.gpu = g.gpu),"
        " (SELECT count(*) FROM tunings t WHERE t.gpu = g.gpu)"
        " FROM (SELECT gpu FROM kernels UNION SELECT gpu FROM tunings) g ORDER BY g.gpu",
        NULL, 0, sum_row, &u, err);
    *n = u.n;
    return st;
}

/* The copy is written beside FILE and appears under its name only when
 * whole (a failure, a full disk, leaves no partial FILE that a retry would
 * find "already exists" and an import would read as an empty cache).  Its
 * kernels are marked unverified: a file shipped to other machines and put
 * in place as their cache, rather than imported, then has each cubin
 * compiled once more there and compared before it runs, as an import does
 * (import --trust-kernels vouches for them instead). */
fg_status fg_store_export(fg_store *s, const char *file, fg_error *err) {
    struct stat sb;
    if (!stat(file, &sb)) return fg_fail(err, FG_ERR_CACHE, "export: %s already exists (not overwritten)", file);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", file, (long)getpid());
    unlink(tmp);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = NULL;
    int rc = s->db ? sqlite3_prepare_v2(s->db, "VACUUM INTO ?1", -1, &q, NULL) : SQLITE_MISUSE;
    if (rc == SQLITE_OK) {
        fgs_bind_text(q, 1, tmp);
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, "export");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    if (st == FG_OK) {
        sqlite3 *db = NULL;
        rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(db, "UPDATE kernels SET verified = 0", NULL, NULL, NULL);
        if (rc != SQLITE_OK) st = fg_fail(err, FG_ERR_CACHE, "export: marking the copy's kernels: %s", sqlite3_errstr(rc));
        if (sqlite3_close(db) != SQLITE_OK && st == FG_OK) st = fg_fail(err, FG_ERR_CACHE, "export: closing the copy");
    }
    /* link, not rename: a FILE made meanwhile is not replaced (rename where
     * the file system has no hard links) */
    if (st == FG_OK && link(tmp, file) != 0) {
        const int e1 = errno;
        if (e1 == EEXIST || !stat(file, &sb) || rename(tmp, file) != 0)
            st = fg_fail(err, FG_ERR_CACHE, "export: cannot create %s: %s", file, strerror(e1 == EEXIST ? e1 : errno));
    }
    unlink(tmp);
    return st;
}

/* Copies file into tmp through SQLite's backup API (so rows still in the
 * source's WAL come along), then checks the copy: ours, integrity_check,
 * migrated to this schema. */
static fg_status copy_checked(const char *file, const char *tmp, fg_error *err) {
    sqlite3 *from = NULL, *to = NULL;
    int rc = fgs_open_read_only(file, &from);
    if (rc == SQLITE_OK) rc = sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
        if (!b) {
            rc = sqlite3_errcode(to);
        } else {
            rc = sqlite3_backup_step(b, -1);
            const int fin = sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? fin : rc;
        }
    }
    fg_status st = FG_OK;
    if (rc != SQLITE_OK) {
        /* the side that failed: reading the file, or writing the private
         * copy (a full disk, a file-size limit) */
        const char *msg = fgs_is_corrupt(rc)                                   ? "it is corrupt or not a flashgen cache"
                          : from && sqlite3_errcode(from) != SQLITE_OK         ? sqlite3_errmsg(from)
                          : to && sqlite3_errcode(to) != SQLITE_OK             ? sqlite3_errmsg(to)
                                                                               : sqlite3_errstr(rc);
        st = fg_fail(err, FG_ERR_CACHE, "cannot read it into a private copy: %s (SQLite %d)", msg, rc);
    }
    sqlite3_close_v2(from);
    sqlite3_close_v2(to);
    fg_store *src = NULL;
    if (st == FG_OK) st = fg_store_open_strict(tmp, FG_STORE_WRITE, &src, err);
    if (st == FG_OK) st = fg_store_check(src, err);
    fg_store_close(src);
    return st;
}

/* fg_tuning_ok(gpu, spec, bucket, config, ms): whether an imported tuning
 * row may compete at all (SQL function, for the statements below). */
static void tuning_ok_sql(sqlite3_context *c, int argc, sqlite3_value **v) {
    const fg_import_opts *o = sqlite3_user_data(c);
    (void)argc;
    int ok = 1;
    for (int i = 0; i < 4; ++i) ok &= sqlite3_value_type(v[i]) == SQLITE_TEXT;
    const char *spec = (const char *)sqlite3_value_text(v[1]), *config = (const char *)sqlite3_value_text(v[3]);
    ok = ok && sqlite3_value_type(v[4]) != SQLITE_NULL && fgs_tuning_valid(sqlite3_value_double(v[4]), config);
    ok = ok && (!o->check || o->check(spec, config, o->check_ud));
    sqlite3_result_int(c, ok);
}

/* Merges the attached copy "src" into main in one transaction.  On failure
 * *why holds SQLite's message, saved before the rollback clears it. */
static int merge_locked(sqlite3 *db, const fg_import_opts *o, fg_import_stats *stt, char *why, size_t nwhy) {
    int rc = sqlite3_create_function(db, "fg_tuning_ok", 5, SQLITE_UTF8, (void *)o, tuning_ok_sql, NULL, NULL);
    if (rc != SQLITE_OK || (rc = fgs_exec(db, "BEGIN IMMEDIATE")) != SQLITE_OK) return rc;
    /* per imported winner: may it compete (ok), do we have one (have), does it win */
    rc = fgs_exec(db, "CREATE TEMP TABLE imp AS SELECT s.gpu, s.spec, s.bucket,"
                      " fg_tuning_ok(s.gpu, s.spec, s.bucket, s.config, s.ms) AS ok, m.gpu IS NOT NULL AS have,"
                      " (m.gpu IS NULL OR NOT fg_tuning_ok(m.gpu, m.spec, m.bucket, m.config, m.ms) OR s.ms < m.ms) AS wins"
                      " FROM src.tunings s LEFT JOIN main.tunings m"
                      " ON m.gpu = s.gpu AND m.spec = s.spec AND m.bucket = s.bucket");
    int total_k = 0, new_k = 0;
    if (rc || (rc = fgs_int(db, "SELECT count(*) FROM src.kernels", &total_k)) ||
        (rc = fgs_int(db, "SELECT count(*) FROM src.kernels s WHERE NOT EXISTS (SELECT 1 FROM main.kernels m"
                          " WHERE m.gpu = s.gpu AND m.key = s.key)", &new_k)) ||
        (rc = fgs_int(db, "SELECT count(*) FROM imp WHERE NOT ok", &stt->tunings_rejected)) ||
        (rc = fgs_int(db, "SELECT count(*) FROM imp WHERE ok AND NOT have", &stt->tunings_added)) ||
        (rc = fgs_int(db, "SELECT count(*) FROM imp WHERE ok AND have AND wins", &stt->tunings_improved)) ||
        (rc = fgs_int(db, "SELECT count(*) FROM imp WHERE ok AND have AND NOT wins", &stt->tunings_kept)))
        goto fail;
    char kernels[1024];
    /* imported cubins are verified (used) only when the operator vouches for the file */
    snprintf(kernels, sizeof kernels,
             "INSERT OR IGNORE INTO main.kernels(gpu, key, cubin, checksum, entry, threads, smem, registers,"
             " spill_stores, spill_loads, stack, static_smem, compile_s, log, created, last_used, verified)"
             " SELECT gpu, key, cubin, checksum, entry, threads, smem, registers, spill_stores, spill_loads,"
             " stack, static_smem, compile_s, log, created, CAST(strftime('%%s', 'now') AS INTEGER), %d FROM src.kernels;",
             o->trust_kernels ? 1 : 0);
    /* candidates follow their winner: replaced where the winner is */
    if ((rc = fgs_exec(db,
                       "DELETE FROM imp WHERE NOT (ok AND wins);"
                       "DELETE FROM main.tuning_candidates WHERE EXISTS (SELECT 1 FROM imp i WHERE i.gpu ="
                       " tuning_candidates.gpu AND i.spec = tuning_candidates.spec AND i.bucket = tuning_candidates.bucket);"
                       "INSERT OR IGNORE INTO main.tuning_candidates(gpu, spec, bucket, config, ms, note)"
                       " SELECT c.gpu, c.spec, c.bucket, c.config, c.ms, coalesce(c.note, '') FROM src.tuning_candidates c"
                       " JOIN imp i ON i.gpu = c.gpu AND i.spec = c.spec AND i.bucket = c.bucket;"
                       "INSERT OR REPLACE INTO main.tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created)"
                       " SELECT s.gpu, s.spec, s.bucket, s.config, s.ms, s.heuristic_ms, s.shape, coalesce(s.created, 0)"
                       " FROM src.tunings s JOIN imp i ON i.gpu = s.gpu AND i.spec = s.spec AND i.bucket = s.bucket;")) ||
        (rc = fgs_exec(db, kernels)) || (rc = fgs_exec(db, "DROP TABLE imp; COMMIT")))
        goto fail;
    stt->kernels_added = new_k;
    stt->kernels_present = total_k - new_k;
    sqlite3_create_function(db, "fg_tuning_ok", 5, SQLITE_UTF8, NULL, NULL, NULL, NULL);
    return SQLITE_OK;
fail:
    snprintf(why, nwhy, "%s", sqlite3_errmsg(db));
    fgs_exec(db, "ROLLBACK");
    fgs_exec(db, "DROP TABLE IF EXISTS temp.imp");
    sqlite3_create_function(db, "fg_tuning_ok", 5, SQLITE_UTF8, NULL, NULL, NULL, NULL);
    return rc;
}

static void unlink_db(const char *path) {
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; ++i) {
        char p[4300];
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
}

fg_status fg_store_import(fg_store *s, const char *file, const fg_import_opts *opts, fg_import_stats *stt,
                          fg_error *err) {
    static const fg_import_opts defaults = {0, NULL, NULL};
    const fg_import_opts *o = opts ? opts : &defaults;
    memset(stt, 0, sizeof *stt);
    /* Work on a private copy: the user's file is never modified, an older
     * schema is migrated in the copy, and a bad file never reaches ours. */
    struct stat sb;
    if (stat(file, &sb)) return fg_fail(err, FG_ERR_CACHE, "import: cannot read %s: %s", file, strerror(errno));
    const char *tmpdir = getenv("TMPDIR");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/flashgen-import-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(tmp); /* a file of ours: removed below with its -wal and -shm */
    if (fd < 0) return fg_fail(err, FG_ERR_CACHE, "import: cannot create a temporary file in %s: %s", tmp, strerror(errno));
    close(fd);
    fg_status st = copy_checked(file, tmp, err);
    if (st != FG_OK) {
        unlink_db(tmp);
        return fg_error_prefix(err, "import %s", file); /* the message may name the copy: say which file it was */
    }
    pthread_mutex_lock(&s->mu);
    sqlite3 *db = s->db;
    sqlite3_stmt *q = NULL;
    int rc = db ? sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS src", -1, &q, NULL) : SQLITE_MISUSE;
    if (rc == SQLITE_OK) {
        fgs_bind_text(q, 1, tmp);
        rc = sqlite3_step(q);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK) {
        st = fgs_fail(err, db, rc, "import: attach");
    } else {
        char why[512] = "";
        if ((rc = merge_locked(db, o, stt, why, sizeof why)) != SQLITE_OK)
            st = fg_fail(err, FG_ERR_CACHE, "cache: import: %s (SQLite %d, %s)", why, rc, sqlite3_errstr(rc));
        fgs_exec(db, "DETACH DATABASE src");
    }
    pthread_mutex_unlock(&s->mu);
    unlink_db(tmp);
    return st;
}

fg_status fg_store_prune(fg_store *s, const char *keep_suffix, int64_t older_than_s, int *deleted, fg_error *err) {
    *deleted = 0;
    pthread_mutex_lock(&s->mu);
    fg_status st = fgs_exec_locked(s, "BEGIN IMMEDIATE", "prune", err);
    const char *sqls[] = {
        "DELETE FROM kernels WHERE ?1 != '' AND substr(gpu, -length(?1)) != ?1",
        "DELETE FROM tunings WHERE ?1 != '' AND substr(gpu, -length(?1)) != ?1",
        "DELETE FROM tuning_candidates WHERE ?1 != '' AND substr(gpu, -length(?1)) != ?1",
        "DELETE FROM kernels WHERE ?2 >= 0 AND last_used < ?3",
    };
    for (int i = 0; st == FG_OK && i < 4; ++i) {
        sqlite3_stmt *q;
        int rc = sqlite3_prepare_v2(s->db, sqls[i], -1, &q, NULL);
        if (rc == SQLITE_OK) {
            fgs_bind_text(q, 1, keep_suffix ? keep_suffix : "");
            sqlite3_bind_int64(q, 2, older_than_s);
            sqlite3_bind_int64(q, 3, (int64_t)time(NULL) - older_than_s);
            rc = sqlite3_step(q);
            if (rc == SQLITE_DONE) rc = SQLITE_OK;
            *deleted += sqlite3_changes(s->db);
        }
        sqlite3_finalize(q);
        if (rc != SQLITE_OK) st = fgs_fail(err, s->db, rc, "prune");
    }
    if (st == FG_OK) st = fgs_exec_locked(s, "COMMIT", "prune", err);
    else fgs_exec(s->db, "ROLLBACK");
    if (st == FG_OK) st = fgs_exec_locked(s, "VACUUM", "prune: vacuum", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

fg_status fg_store_clear(fg_store *s, fg_error *err) {
    pthread_mutex_lock(&s->mu);
    fg_status st = fgs_exec_locked(s,
                               "BEGIN IMMEDIATE; DELETE FROM kernels; DELETE FROM tunings; DELETE FROM tuning_candidates;"
                               " COMMIT;", "clear", err);
    if (st != FG_OK) fgs_exec(s->db, "ROLLBACK");
    else st = fgs_exec_locked(s, "VACUUM", "clear: vacuum", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void check_row(sqlite3_stmt *q, void *p) {
    char **acc = p;
    const char *t = (const char *)sqlite3_column_text(q, 0);
    char *n = fg_strdupf("%s%s%s", *acc ? *acc : "", *acc ? "\n" : "", t ? t : "");
    free(*acc);
    *acc = n;
}

fg_status fg_store_check(fg_store *s, fg_error *err) {
    char *report = NULL;
    fg_status st = fgs_query_each(s, "PRAGMA integrity_check", NULL, 0, check_row, &report, err);
    if (st == FG_OK && (!report || strcmp(report, "ok")))
        st = fg_fail(err, FG_ERR_CACHE, "cache file %s fails PRAGMA integrity_check:\n%s", fg_store_path(s),
                     report ? report : "(no report)");
    free(report);
    return st;
}
