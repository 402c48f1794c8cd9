/* schema.c: the file's tables (migrations numbered by PRAGMA user_version),
 * the check that a file is ours, and the statements kept prepared. */
#include "cache/store_internal.h"

#include <stdio.h>
#include <string.h>

/* Schema migrations: entry i takes user_version i to i + 1.  Never edit a
 * released entry; append a new one and bump FG_STORE_SCHEMA_VERSION. */
static const char *MIGRATIONS[FG_STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: compiled kernels and tuning winners */
    "CREATE TABLE kernels("
    " gpu TEXT NOT NULL, key TEXT NOT NULL,"
    " cubin BLOB NOT NULL, checksum INTEGER NOT NULL,"
    " entry TEXT NOT NULL, threads INTEGER NOT NULL, smem INTEGER NOT NULL,"
    " registers INTEGER, spill_stores INTEGER, spill_loads INTEGER, stack INTEGER, static_smem INTEGER,"
    " compile_s REAL, log TEXT, created INTEGER NOT NULL,"
    " UNIQUE(gpu, key));"
    "CREATE TABLE tunings("
    " gpu TEXT NOT NULL, spec TEXT NOT NULL, bucket TEXT NOT NULL,"
    " config TEXT NOT NULL, ms REAL NOT NULL, heuristic_ms REAL, shape TEXT, created INTEGER NOT NULL,"
    " UNIQUE(gpu, spec, bucket));",
    /* 1 -> 2: every candidate's time (not only the winner's), and when a
     * kernel was last used (for prune) */
    "ALTER TABLE kernels ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;"
    "UPDATE kernels SET last_used = created;"
    "CREATE TABLE tuning_candidates("
    " gpu TEXT NOT NULL, spec TEXT NOT NULL, bucket TEXT NOT NULL, config TEXT NOT NULL,"
    " ms REAL NOT NULL, note TEXT NOT NULL DEFAULT '',"
    " UNIQUE(gpu, spec, bucket, config));",
    /* 2 -> 3: whether a kernel's cubin was compiled here (or vouched for
     * with import --trust-kernels).  Rows of older files may have come from
     * an import that did not ask, so they start unverified: each is compiled
     * once more and compared before it is used (docs/CACHE.md). */
    "ALTER TABLE kernels ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;",
};

static const char *SQL[ST_COUNT] = {
    "SELECT cubin, checksum, entry, threads, smem, registers, spill_stores, spill_loads, stack, static_smem,"
    " compile_s, log, last_used, verified FROM kernels WHERE gpu = ?1 AND key = ?2",
    "INSERT OR REPLACE INTO kernels(gpu, key, cubin, checksum, entry, threads, smem, registers, spill_stores,"
    " spill_loads, stack, static_smem, compile_s, log, created, last_used, verified)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, 1)",
    "UPDATE kernels SET last_used = ?3 WHERE gpu = ?1 AND key = ?2",
    "DELETE FROM kernels WHERE gpu = ?1 AND key = ?2",
    "SELECT config, ms, heuristic_ms, shape, created FROM tunings WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3",
    "SELECT ms, config FROM tunings WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3",
    "INSERT OR REPLACE INTO tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "DELETE FROM tuning_candidates WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3",
    "INSERT OR REPLACE INTO tuning_candidates(gpu, spec, bucket, config, ms, note) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
};

/* The lookups read one row per key and the writes replace by key: that
 * holds only with the tables' UNIQUE constraints.  A file without them
 * (edited by hand, or rebuilt by another tool) passes integrity_check, but
 * its new rows would be appended behind old ones that reads keep
 * returning, and an import could not tell its rows apart: not ours. */
static int check_unique_keys(sqlite3 *db, int ver, const char **why) {
    static const char *const want[3][2] = {{"kernels", "gpu,key"},
                                           {"tunings", "gpu,spec,bucket"},
                                           {"tuning_candidates", "gpu,spec,bucket,config"}};
    for (int i = 0; i < (ver >= 2 ? 3 : 2); ++i) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT group_concat(name) FROM (SELECT name FROM pragma_index_info('sqlite_autoindex_%s_1')"
                                  " ORDER BY seqno)", want[i][0]);
        sqlite3_stmt *q;
        int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_step(q);
        const unsigned char *cols = rc == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
        const int same = cols && !strcmp((const char *)cols, want[i][1]);
        sqlite3_finalize(q);
        if (rc != SQLITE_ROW) return rc;
        if (!same) {
            *why = "its tables lack flashgen's unique keys (a file edited by hand or rebuilt by another tool)";
            return SQLITE_MISMATCH;
        }
    }
    return SQLITE_OK;
}

int fgs_check_identity(sqlite3 *db, const char **why) {
    /* one statement, so one snapshot: read apart, another process's first
     * migration could show up between the reads as "no id, but tables" */
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                    " (SELECT application_id FROM pragma_application_id),"
                                    " (SELECT count(*) FROM sqlite_master)", -1, &q, NULL);
    if (rc != SQLITE_OK) return rc;
    int ver = 0, app = 0, objects = 0;
    if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        ver = sqlite3_column_int(q, 0);
        app = sqlite3_column_int(q, 1);
        objects = sqlite3_column_int(q, 2);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) return rc;
    /* application_id 0 is every SQLite file's default: only an empty one is ours to fill */
    if ((app != 0 && app != FGS_APP_ID) || (app == 0 && (ver != 0 || objects != 0))) {
        *why = "it is an SQLite database of another program";
        return SQLITE_MISMATCH;
    }
    if (ver > FG_STORE_SCHEMA_VERSION) {
        *why = "it was written by a newer flashgen (schema version higher than this build's)";
        return SQLITE_MISMATCH;
    }
    return ver >= 1 ? check_unique_keys(db, ver, why) : SQLITE_OK;
}

int fgs_migrate(sqlite3 *db, int upto, const char **why) {
    /* one write transaction, so two processes opening a new file do not both
     * migrate; the identity is checked again inside it */
    int rc = fgs_exec(db, "BEGIN IMMEDIATE"), ver = 0, app = 0;
    if (rc != SQLITE_OK) return rc;
    if ((rc = fgs_check_identity(db, why)) != SQLITE_OK || (rc = fgs_int(db, "PRAGMA user_version", &ver)) != SQLITE_OK ||
        (rc = fgs_int(db, "PRAGMA application_id", &app)) != SQLITE_OK)
        goto fail;
    for (; ver < upto; ++ver) {
        if ((rc = fgs_exec(db, MIGRATIONS[ver])) != SQLITE_OK) goto fail;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", ver + 1);
        if ((rc = fgs_exec(db, sql)) != SQLITE_OK) goto fail;
    }
    if (app == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", FGS_APP_ID);
        if ((rc = fgs_exec(db, sql)) != SQLITE_OK) goto fail;
    }
    return fgs_exec(db, "COMMIT");
fail:
    fgs_exec(db, "ROLLBACK");
    return rc;
}

int fgs_prepare_all(fg_store *s) {
    for (int i = 0; i < ST_COUNT; ++i) {
        int rc = sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

void fgs_finalize_all(fg_store *s) {
    for (int i = 0; i < ST_COUNT; ++i) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
    if (s->db) sqlite3_close_v2(s->db);
    s->db = NULL;
}
