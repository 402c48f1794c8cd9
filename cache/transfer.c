/* transfer.c: moving rows between files and keeping a file in shape:
 * summary, export, import, prune, clear, integrity check. */
#include "cache/store_internal.h"

#include <errno.h>
#include <fcntl.h>
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

fg_status fg_store_export(fg_store *s, const char *file, fg_error *err) {
    struct stat sb;
    if (!stat(file, &sb)) return fg_fail(err, FG_ERR_CACHE, "export: %s already exists (not overwritten)", file);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = NULL;
    int rc = s->db ? sqlite3_prepare_v2(s->db, "VACUUM INTO ?1", -1, &q, NULL) : SQLITE_MISUSE;
    if (rc == SQLITE_OK) {
        fgs_bind_text(q, 1, file);
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, "export");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = in < 0 ? -1 : open(to, O_WRONLY | O_TRUNC);
    int ok = in >= 0 && out >= 0;
    char buf[1 << 16];
    ssize_t n;
    while (ok && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) { if (errno == EINTR) continue; ok = 0; break; }
        for (ssize_t off = 0; off < n && ok;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR) ok = 0;
            else if (w > 0) off += w;
        }
    }
    if (in >= 0) close(in);
    if (out >= 0 && close(out)) ok = 0;
    return ok ? 0 : -1;
}

fg_status fg_store_import(fg_store *s, const char *file, fg_import_stats *stt, fg_error *err) {
    memset(stt, 0, sizeof *stt);
    /* Work on a private copy: the user's file is never modified, an older
     * schema is migrated in the copy, and a bad file never reaches ours. */
    struct stat sb;
    if (stat(file, &sb)) return fg_fail(err, FG_ERR_CACHE, "import: cannot read %s: %s", file, strerror(errno));
    const char *tmpdir = getenv("TMPDIR");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/flashgen-import-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0) return fg_fail(err, FG_ERR_CACHE, "import: cannot create a temporary file in %s: %s", tmp, strerror(errno));
    close(fd);
    fg_store *src = NULL;
    fg_status st = FG_OK;
    if (copy_file(file, tmp)) st = fg_fail(err, FG_ERR_CACHE, "import: cannot copy %s: %s", file, strerror(errno));
    if (st == FG_OK) st = fg_store_open_strict(tmp, 0, &src, err);
    if (st == FG_OK) st = fg_store_check(src, err);
    if (src) fg_store_close(src);
    if (st != FG_OK) {
        unlink(tmp);
        char w[4300];
        snprintf(w, sizeof w, "%s-wal", tmp); unlink(w);
        snprintf(w, sizeof w, "%s-shm", tmp); unlink(w);
        fg_error_prefix(err, "import %s", file);
        /* the message names the temporary copy; say which file it was */
        return st;
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
    if (rc != SQLITE_OK) { st = fgs_fail(err, db, rc, "import: attach"); goto out; }
    if ((rc = fgs_exec(db, "BEGIN IMMEDIATE")) != SQLITE_OK) { st = fgs_fail(err, db, rc, "import: begin"); goto detach; }
    int total_k = 0, new_k = 0, new_t = 0, better_t = 0, worse_t = 0;
#define J " FROM src.tunings s LEFT JOIN main.tunings m ON m.gpu = s.gpu AND m.spec = s.spec AND m.bucket = s.bucket"
    if ((rc = fgs_int(db, "SELECT count(*) FROM src.kernels", &total_k)) ||
        (rc = fgs_int(db, "SELECT count(*) FROM src.kernels s WHERE NOT EXISTS (SELECT 1 FROM main.kernels m"
                           " WHERE m.gpu = s.gpu AND m.key = s.key)", &new_k)) ||
        (rc = fgs_int(db, "SELECT count(*)" J " WHERE m.gpu IS NULL", &new_t)) ||
        (rc = fgs_int(db, "SELECT count(*)" J " WHERE m.gpu IS NOT NULL AND s.ms < m.ms", &better_t)) ||
        (rc = fgs_int(db, "SELECT count(*)" J " WHERE m.gpu IS NOT NULL AND s.ms >= m.ms", &worse_t)))
        goto fail;
#undef J
    /* candidates follow their winner: replaced where the winner is */
    if ((rc = fgs_exec(db,
                   "CREATE TEMP TABLE imp AS SELECT s.gpu, s.spec, s.bucket FROM src.tunings s LEFT JOIN main.tunings m"
                   " ON m.gpu = s.gpu AND m.spec = s.spec AND m.bucket = s.bucket WHERE m.gpu IS NULL OR s.ms < m.ms;"
                   "DELETE FROM main.tuning_candidates WHERE EXISTS (SELECT 1 FROM imp i WHERE i.gpu ="
                   " tuning_candidates.gpu AND i.spec = tuning_candidates.spec AND i.bucket = tuning_candidates.bucket);"
                   "INSERT INTO main.tuning_candidates SELECT c.* FROM src.tuning_candidates c JOIN imp i"
                   " ON i.gpu = c.gpu AND i.spec = c.spec AND i.bucket = c.bucket;"
                   "INSERT INTO main.tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created)"
                   " SELECT gpu, spec, bucket, config, ms, heuristic_ms, shape, created FROM src.tunings WHERE true"
                   " ON CONFLICT(gpu, spec, bucket) DO UPDATE SET config = excluded.config, ms = excluded.ms,"
                   " heuristic_ms = excluded.heuristic_ms, shape = excluded.shape, created = excluded.created"
                   " WHERE excluded.ms < tunings.ms;"
                   "INSERT OR IGNORE INTO main.kernels(gpu, key, cubin, checksum, entry, threads, smem, registers,"
                   " spill_stores, spill_loads, stack, static_smem, compile_s, log, created, last_used)"
                   " SELECT gpu, key, cubin, checksum, entry, threads, smem, registers, spill_stores, spill_loads,"
                   " stack, static_smem, compile_s, log, created, last_used FROM src.kernels;"
                   "DROP TABLE imp;")) != SQLITE_OK)
        goto fail;
    if ((rc = fgs_exec(db, "COMMIT")) != SQLITE_OK) goto fail;
    stt->kernels_added = new_k;
    stt->kernels_present = total_k - new_k;
    stt->tunings_added = new_t;
    stt->tunings_improved = better_t;
    stt->tunings_kept = worse_t;
    goto detach;
fail:
    st = fgs_fail(err, db, rc, "import");
    fgs_exec(db, "ROLLBACK");
    fgs_exec(db, "DROP TABLE IF EXISTS temp.imp");
detach:
    fgs_exec(db, "DETACH DATABASE src");
out:
    pthread_mutex_unlock(&s->mu);
    unlink(tmp);
    char w[4300];
    snprintf(w, sizeof w, "%s-wal", tmp); unlink(w);
    snprintf(w, sizeof w, "%s-shm", tmp); unlink(w);
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
