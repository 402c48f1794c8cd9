/* store.c: the SQLite store (see store.h for what it keeps and why). */
#include "cache/store.h"
#include "gen/sources.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define APP_ID 0x46474331 /* "FGC1": a file of ours, not some other SQLite database */

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
};

enum { ST_GET_K, ST_PUT_K, ST_TOUCH_K, ST_DEL_K, ST_GET_T, ST_GET_T_MS, ST_PUT_T, ST_DEL_C, ST_PUT_C, ST_COUNT };
static const char *SQL[ST_COUNT] = {
    "SELECT cubin, checksum, entry, threads, smem, registers, spill_stores, spill_loads, stack, static_smem,"
    " compile_s, log, last_used FROM kernels WHERE gpu = ?1 AND key = ?2",
    "INSERT OR REPLACE INTO kernels(gpu, key, cubin, checksum, entry, threads, smem, registers, spill_stores,"
    " spill_loads, stack, static_smem, compile_s, log, created, last_used)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)",
    "UPDATE kernels SET last_used = ?3 WHERE gpu = ?1 AND key = ?2",
    "DELETE FROM kernels WHERE gpu = ?1 AND key = ?2",
    "SELECT config, ms, heuristic_ms, shape, created FROM tunings WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3",
    "SELECT ms FROM tunings WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3",
    "INSERT OR REPLACE INTO tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "DELETE FROM tuning_candidates WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3",
    "INSERT OR REPLACE INTO tuning_candidates(gpu, spec, bucket, config, ms, note) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
};

struct fg_store {
    pthread_mutex_t mu;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *path;        /* the file, or NULL in memory */
    int strict;        /* opened by fg_store_open_strict: never moved aside */
    fg_store_warn_fn warn;
    void *warn_ud;
};

static void default_warn(const char *msg, void *ud) {
    (void)ud;
    fprintf(stderr, "flashgen: warning: %s\n", msg);
}

static void warnf(fg_store *s, const char *fmt, ...) FG_PRINTF(2, 3);
static void warnf(fg_store *s, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (s->warn ? s->warn : default_warn)(buf, s->warn_ud);
}

uint64_t fg_store_hash(const void *data, size_t n) { return fg_hash64(FG_HASH_SEED, data, n); }

void fg_store_build_suffix(int nvrtc_major, int nvrtc_minor, const char *tpl_hash, char *buf, size_t n) {
    snprintf(buf, n, "|nvrtc=%d.%d|tpl=%s", nvrtc_major, nvrtc_minor, tpl_hash);
}

void fg_store_identity(const char *gpu_name, int cc_major, int cc_minor, int sms, int driver, int nvrtc_major,
                       int nvrtc_minor, const char *tpl_hash, char *buf, size_t n) {
    char suffix[128];
    fg_store_build_suffix(nvrtc_major, nvrtc_minor, tpl_hash, suffix, sizeof suffix);
    snprintf(buf, n, "%s|cc=%d.%d|sms=%d|driver=%d%s", gpu_name, cc_major, cc_minor, sms, driver, suffix);
}

static int is_corrupt(int rc) {
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static fg_status sqlfail(fg_error *err, sqlite3 *db, int rc, const char *what) {
    return fg_fail(err, FG_ERR_CACHE, "cache: %s: %s (SQLite %d%s%s)", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                   rc, db ? ", " : "", db ? sqlite3_errstr(rc) : "");
}

void fg_store_default_path(char *buf, size_t n) {
    const char *env = getenv("FLASHGEN_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (env && *env) snprintf(buf, n, "%s", env);
    else if (xdg && *xdg == '/') snprintf(buf, n, "%s/flashgen/cache.db", xdg);
    else if (home && *home) snprintf(buf, n, "%s/.cache/flashgen/cache.db", home);
    else if (n) buf[0] = 0;
}

static int mkdirs_for(const char *file) {
    char *d = fg_strdupf("%s", file);
    if (!d) return -1;
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) { free(d); return 0; }
    *slash = 0;
    for (char *p = d + 1; *p; ++p)
        if (*p == '/') {
            *p = 0;
            if (mkdir(d, 0755) && errno != EEXIST) { free(d); return -1; }
            *p = '/';
        }
    int rc = mkdir(d, 0755) && errno != EEXIST ? -1 : 0;
    free(d);
    return rc;
}

static int exec(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, NULL, NULL, NULL); }

static int pragma_int(sqlite3 *db, const char *sql, int *out) {
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) { *out = sqlite3_column_int(q, 0); rc = SQLITE_OK; }
    else if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(q);
    return rc;
}

/* Brings the schema of db to FG_STORE_SCHEMA_VERSION in one write
 * transaction (so two processes opening a new file do not both migrate).
 * Returns an SQLite code; *why explains a refusal (foreign or newer file). */
static int migrate(sqlite3 *db, int upto, const char **why) {
    int rc = exec(db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) return rc;
    int ver = 0, app = 0;
    if ((rc = pragma_int(db, "PRAGMA user_version", &ver)) != SQLITE_OK ||
        (rc = pragma_int(db, "PRAGMA application_id", &app)) != SQLITE_OK)
        goto fail;
    if (app != 0 && app != APP_ID) { *why = "it is an SQLite database of another program"; rc = SQLITE_MISMATCH; goto fail; }
    if (app == 0 && ver != 0) { *why = "it is an SQLite database of another program"; rc = SQLITE_MISMATCH; goto fail; }
    if (ver > FG_STORE_SCHEMA_VERSION) { *why = "it was written by a newer flashgen (schema version higher than this build's)"; rc = SQLITE_MISMATCH; goto fail; }
    for (; ver < upto; ++ver) {
        if ((rc = exec(db, MIGRATIONS[ver])) != SQLITE_OK) goto fail;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", ver + 1);
        if ((rc = exec(db, sql)) != SQLITE_OK) goto fail;
    }
    if (app == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", APP_ID);
        if ((rc = exec(db, sql)) != SQLITE_OK) goto fail;
    }
    return exec(db, "COMMIT");
fail:
    exec(db, "ROLLBACK");
    return rc;
}

/* A file whose header counts more pages than it holds was truncated.  (Only
 * decidable without a WAL: pages may live there.) */
static int truncated(sqlite3 *db, const char *path) {
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat sb, sw;
    if (stat(path, &sb)) return 0;
    if (!stat(wal, &sw) && sw.st_size > 0) return 0;
    int pages = 0, psize = 0;
    if (pragma_int(db, "PRAGMA page_count", &pages) != SQLITE_OK || pragma_int(db, "PRAGMA page_size", &psize) != SQLITE_OK)
        return 0;
    return (long long)pages * psize > (long long)sb.st_size;
}

static void finalize_all(fg_store *s) {
    for (int i = 0; i < ST_COUNT; ++i) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
    if (s->db) sqlite3_close_v2(s->db);
    s->db = NULL;
}

/* Opens path (NULL: memory) into s: WAL, busy timeout, migrations,
 * statements.  Returns an SQLite code; *why for a refusal. */
static int connect(fg_store *s, const char *path, int readonly, int upto, const char **why) {
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path ? path : ":memory:", &s->db, flags | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_busy_timeout(s->db, 30000);
    sqlite3_extended_result_codes(s->db, 0);
    if (path && !readonly) {
        /* The header is read here: a file that is not a database fails now. */
        for (int tries = 0; tries < 100; ++tries) {
            rc = exec(s->db, "PRAGMA journal_mode = WAL");
            if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
            usleep(20000);
        }
        if (rc != SQLITE_OK) return rc;
        exec(s->db, "PRAGMA synchronous = NORMAL");
    }
    int ver = 0;
    if ((rc = pragma_int(s->db, "PRAGMA user_version", &ver)) != SQLITE_OK) return rc;
    if (path && truncated(s->db, path)) return SQLITE_CORRUPT;
    if (readonly) {
        if (ver != FG_STORE_SCHEMA_VERSION) {
            *why = ver > FG_STORE_SCHEMA_VERSION ? "its schema is newer than this build's" : "its schema is older than this build's";
            return SQLITE_MISMATCH;
        }
    } else if (ver < upto || ver > FG_STORE_SCHEMA_VERSION) {
        if ((rc = migrate(s->db, upto, why)) != SQLITE_OK) return rc;
    }
    if (upto != FG_STORE_SCHEMA_VERSION) return SQLITE_OK; /* a test's old-version file */
    for (int i = 0; i < ST_COUNT; ++i)
        if ((rc = sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL)) != SQLITE_OK) return rc;
    return SQLITE_OK;
}

static void move_aside(fg_store *s, const char *path, const char *reason) {
    char stamp[32], aside[4200];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(aside, sizeof aside, "%s.corrupt-%s-%d", path, stamp, (int)getpid());
    if (rename(path, aside)) {
        warnf(s, "cache file %s is corrupt (%s) and cannot be moved aside (%s); deleting it", path, reason, strerror(errno));
        unlink(path);
    } else {
        warnf(s, "cache file %s is corrupt (%s): moved to %s; starting an empty cache there", path, reason, aside);
    }
    const char *sfx[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; ++i) {
        char a[4200], b[4300];
        snprintf(a, sizeof a, "%s%s", path, sfx[i]);
        snprintf(b, sizeof b, "%s%s", aside, sfx[i]);
        if (rename(a, b)) unlink(a);
    }
}

/* Opens s->path, moving a corrupt file aside once, else memory + warning. */
static void open_or_fallback(fg_store *s) {
    const char *why = NULL;
    int rc = SQLITE_OK;
    if (s->path) {
        if (mkdirs_for(s->path)) {
            warnf(s, "cannot create the directory of cache file %s (%s); using an in-memory cache: compiled kernels "
                  "and tuning results will not outlive this process (set FLASHGEN_CACHE to a writable file)", s->path, strerror(errno));
            goto memory;
        }
        rc = connect(s, s->path, 0, FG_STORE_SCHEMA_VERSION, &why);
        if (is_corrupt(rc)) {
            char reason[256];
            snprintf(reason, sizeof reason, "%s", sqlite3_errstr(rc));
            finalize_all(s);
            move_aside(s, s->path, reason);
            why = NULL;
            rc = connect(s, s->path, 0, FG_STORE_SCHEMA_VERSION, &why);
        }
        if (rc == SQLITE_OK) return;
        warnf(s, "cannot use cache file %s: %s; using an in-memory cache: compiled kernels and tuning results will "
              "not outlive this process (set FLASHGEN_CACHE to a writable file)", s->path, why ? why : sqlite3_errstr(rc));
        finalize_all(s);
    }
memory:
    free(s->path);
    s->path = NULL;
    if (connect(s, NULL, 0, FG_STORE_SCHEMA_VERSION, &why) != SQLITE_OK) finalize_all(s);
}

static fg_store *store_new(const char *path) {
    fg_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    /* recursive: a listing callback may read candidates of the row it is given */
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (path && strcmp(path, "off") && strcmp(path, ":memory:") && *path) {
        s->path = fg_strdupf("%s", path);
        if (!s->path) { pthread_mutex_destroy(&s->mu); free(s); return NULL; }
    }
    return s;
}

fg_status fg_store_open(const char *path, fg_store_warn_fn warn, void *warn_ud, fg_store **out, fg_error *err) {
    char def[4096];
    if (!path) {
        fg_store_default_path(def, sizeof def);
        path = def;
    }
    fg_store *s = store_new(path);
    if (!s) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    s->warn = warn;
    s->warn_ud = warn_ud;
    open_or_fallback(s);
    if (!s->db) {
        fg_store_close(s);
        return fg_fail(err, FG_ERR_CACHE, "cache: SQLite cannot open even an in-memory database");
    }
    *out = s;
    return FG_OK;
}

/* For tests: a file at an older schema version (migrations 0..version-1). */
fg_status fg_store_create_at_version(const char *path, int version, fg_error *err);
fg_status fg_store_create_at_version(const char *path, int version, fg_error *err) {
    fg_store *s = store_new(path);
    if (!s) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    const char *why = NULL;
    int rc = connect(s, s->path, 0, version, &why);
    fg_status st = rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, why ? why : "creating an old-version file");
    fg_store_close(s);
    return st;
}

fg_status fg_store_open_strict(const char *path, int readonly, fg_store **out, fg_error *err) {
    struct stat sb;
    if (!path || stat(path, &sb))
        return fg_fail(err, FG_ERR_CACHE, "cache file %s does not exist", path ? path : "(null)");
    fg_store *s = store_new(path);
    if (!s) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    s->strict = 1;
    const char *why = NULL;
    int rc = connect(s, s->path, readonly, FG_STORE_SCHEMA_VERSION, &why);
    if (rc != SQLITE_OK) {
        fg_status st = fg_fail(err, FG_ERR_CACHE, "cache file %s cannot be used: %s", path,
                               why ? why : is_corrupt(rc) ? "it is corrupt or not a flashgen cache" : sqlite3_errstr(rc));
        fg_store_close(s);
        return st;
    }
    *out = s;
    return FG_OK;
}

void fg_store_close(fg_store *s) {
    if (!s) return;
    finalize_all(s);
    free(s->path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *fg_store_path(const fg_store *s) { return s->path ? s->path : ":memory:"; }
int fg_store_in_memory(const fg_store *s) { return s->path == NULL; }

/* An SQLite error in the middle of use.  Corruption: the file is moved
 * aside and a fresh one opened (the caller's operation is then a miss, or
 * is retried once).  Returns 1 when the store was rebuilt. */
static int recover(fg_store *s, int rc) {
    if (!is_corrupt(rc) || s->strict || !s->path) return 0;
    char reason[256];
    snprintf(reason, sizeof reason, "%s", sqlite3_errstr(rc));
    finalize_all(s);
    move_aside(s, s->path, reason);
    open_or_fallback(s);
    return s->db != NULL;
}

static void bind_text(sqlite3_stmt *q, int i, const char *t) { sqlite3_bind_text(q, i, t ? t : "", -1, SQLITE_TRANSIENT); }

static int step_done(sqlite3_stmt *q) {
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- kernels --------------------------------------------------------------- */

void fg_stored_kernel_free(fg_stored_kernel *k) {
    free(k->cubin);
    free(k->log);
    memset(k, 0, sizeof *k);
}

static int get_kernel_locked(fg_store *s, const char *gpu, const char *key, fg_stored_kernel *k, int *found, int *bad) {
    sqlite3_stmt *q = s->st[ST_GET_K];
    bind_text(q, 1, gpu);
    bind_text(q, 2, key);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(q, 0);
        const size_t n = (size_t)sqlite3_column_bytes(q, 0);
        const uint64_t sum = (uint64_t)sqlite3_column_int64(q, 1);
        if (!blob || n == 0 || fg_store_hash(blob, n) != sum) {
            *bad = 1;
        } else if ((k->cubin = malloc(n))) {
            memcpy(k->cubin, blob, n);
            k->cubin_size = n;
            snprintf(k->entry, sizeof k->entry, "%s", (const char *)sqlite3_column_text(q, 2));
            k->threads = sqlite3_column_int(q, 3);
            k->smem_bytes = sqlite3_column_int(q, 4);
            k->stats.registers = sqlite3_column_int(q, 5);
            k->stats.spill_stores = sqlite3_column_int(q, 6);
            k->stats.spill_loads = sqlite3_column_int(q, 7);
            k->stats.stack_frame = sqlite3_column_int(q, 8);
            k->stats.static_smem = sqlite3_column_int(q, 9);
            k->stats.compile_seconds = sqlite3_column_double(q, 10);
            const char *log = (const char *)sqlite3_column_text(q, 11);
            k->log = log && *log ? fg_strdupf("%s", log) : NULL;
            *found = 1;
            /* last_used: written at most once a day per kernel */
            const int64_t last = sqlite3_column_int64(q, 12), now = (int64_t)time(NULL);
            sqlite3_reset(q);
            if (now - last > 86400) {
                sqlite3_stmt *u = s->st[ST_TOUCH_K];
                bind_text(u, 1, gpu);
                bind_text(u, 2, key);
                sqlite3_bind_int64(u, 3, now);
                step_done(u); /* best effort: a busy or read-only file only loses the date */
            }
            return SQLITE_OK;
        }
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(q);
    return rc;
}

fg_status fg_store_get_kernel(fg_store *s, const char *gpu, const char *key, fg_stored_kernel *k, int *found,
                              fg_error *err) {
    memset(k, 0, sizeof *k);
    *found = 0;
    pthread_mutex_lock(&s->mu);
    int bad = 0;
    int rc = s->db ? get_kernel_locked(s, gpu, key, k, found, &bad) : SQLITE_OK;
    if (rc != SQLITE_OK && recover(s, rc)) rc = SQLITE_OK; /* the fresh file has no kernels: a miss */
    if (bad) {
        warnf(s, "cache file %s: the stored cubin of %s fails its checksum; dropped, it will be recompiled",
              fg_store_path(s), key);
        sqlite3_stmt *d = s->st[ST_DEL_K];
        bind_text(d, 1, gpu);
        bind_text(d, 2, key);
        step_done(d);
    }
    fg_status st = FG_OK;
    if (rc != SQLITE_OK) {
        /* a busy or failing file is a miss, never a failed call */
        warnf(s, "cache file %s: reading %s failed: %s; compiling instead", fg_store_path(s), key, sqlite3_errmsg(s->db));
    }
    pthread_mutex_unlock(&s->mu);
    (void)err;
    return st;
}

static int put_kernel_locked(fg_store *s, const char *gpu, const char *key, const fg_stored_kernel *k) {
    sqlite3_stmt *q = s->st[ST_PUT_K];
    bind_text(q, 1, gpu);
    bind_text(q, 2, key);
    sqlite3_bind_blob(q, 3, k->cubin, (int)k->cubin_size, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, (int64_t)fg_store_hash(k->cubin, k->cubin_size));
    bind_text(q, 5, k->entry);
    sqlite3_bind_int(q, 6, k->threads);
    sqlite3_bind_int(q, 7, k->smem_bytes);
    sqlite3_bind_int(q, 8, k->stats.registers);
    sqlite3_bind_int(q, 9, k->stats.spill_stores);
    sqlite3_bind_int(q, 10, k->stats.spill_loads);
    sqlite3_bind_int(q, 11, k->stats.stack_frame);
    sqlite3_bind_int(q, 12, k->stats.static_smem);
    sqlite3_bind_double(q, 13, k->stats.compile_seconds);
    bind_text(q, 14, k->log);
    sqlite3_bind_int64(q, 15, (int64_t)time(NULL));
    int rc = step_done(q);
    sqlite3_clear_bindings(q);
    return rc;
}

fg_status fg_store_put_kernel(fg_store *s, const char *gpu, const char *key, const fg_stored_kernel *k, fg_error *err) {
    if (!k->cubin || !k->cubin_size || k->cubin_size > 0x7fffffff)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "cache: kernel %s has no cubin to store", key);
    pthread_mutex_lock(&s->mu);
    int rc = s->db ? put_kernel_locked(s, gpu, key, k) : SQLITE_MISUSE;
    if (rc != SQLITE_OK && recover(s, rc)) rc = put_kernel_locked(s, gpu, key, k);
    fg_status st = rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, "storing a kernel");
    pthread_mutex_unlock(&s->mu);
    return st;
}

fg_status fg_store_evict_kernel(fg_store *s, const char *gpu, const char *key, fg_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = SQLITE_MISUSE;
    if (s->db) {
        sqlite3_stmt *d = s->st[ST_DEL_K];
        bind_text(d, 1, gpu);
        bind_text(d, 2, key);
        rc = step_done(d);
        if (rc != SQLITE_OK && recover(s, rc)) rc = SQLITE_OK;
    }
    fg_status st = rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, "evicting a kernel");
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- tunings --------------------------------------------------------------- */

static void copy_col(char *dst, size_t n, sqlite3_stmt *q, int col) {
    const char *t = (const char *)sqlite3_column_text(q, col);
    snprintf(dst, n, "%s", t ? t : "");
}

fg_status fg_store_get_tuning(fg_store *s, const char *gpu, const char *spec, const char *bucket, fg_tuning *t,
                              int *found, fg_error *err) {
    memset(t, 0, sizeof *t);
    *found = 0;
    pthread_mutex_lock(&s->mu);
    int rc = SQLITE_OK;
    if (s->db) {
        sqlite3_stmt *q = s->st[ST_GET_T];
        bind_text(q, 1, gpu);
        bind_text(q, 2, spec);
        bind_text(q, 3, bucket);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            copy_col(t->config, sizeof t->config, q, 0);
            t->ms = sqlite3_column_double(q, 1);
            t->heuristic_ms = sqlite3_column_double(q, 2);
            copy_col(t->shape, sizeof t->shape, q, 3);
            t->created = sqlite3_column_int64(q, 4);
            *found = 1;
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
        sqlite3_reset(q);
        if (rc != SQLITE_OK && recover(s, rc)) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        warnf(s, "cache file %s: reading a tuning result failed: %s; using the built-in heuristic", fg_store_path(s),
              sqlite3_errmsg(s->db));
    pthread_mutex_unlock(&s->mu);
    (void)err;
    return FG_OK;
}

static int put_tuning_locked(fg_store *s, const char *gpu, const char *spec, const char *bucket, const fg_tuning *w,
                             const fg_tune_row *rows, int nrows, int *kept) {
    int rc = exec(s->db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) return rc;
    sqlite3_stmt *q = s->st[ST_GET_T_MS];
    bind_text(q, 1, gpu);
    bind_text(q, 2, spec);
    bind_text(q, 3, bucket);
    rc = sqlite3_step(q);
    const int have = rc == SQLITE_ROW;
    const double old_ms = have ? sqlite3_column_double(q, 0) : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto fail;
    *kept = have && old_ms <= w->ms;
    if (!*kept) {
        q = s->st[ST_PUT_T];
        bind_text(q, 1, gpu);
        bind_text(q, 2, spec);
        bind_text(q, 3, bucket);
        bind_text(q, 4, w->config);
        sqlite3_bind_double(q, 5, w->ms);
        sqlite3_bind_double(q, 6, w->heuristic_ms);
        bind_text(q, 7, w->shape);
        sqlite3_bind_int64(q, 8, w->created ? w->created : (int64_t)time(NULL));
        if ((rc = step_done(q)) != SQLITE_OK) goto fail;
        q = s->st[ST_DEL_C];
        bind_text(q, 1, gpu);
        bind_text(q, 2, spec);
        bind_text(q, 3, bucket);
        if ((rc = step_done(q)) != SQLITE_OK) goto fail;
        for (int i = 0; i < nrows; ++i) {
            q = s->st[ST_PUT_C];
            bind_text(q, 1, gpu);
            bind_text(q, 2, spec);
            bind_text(q, 3, bucket);
            bind_text(q, 4, rows[i].config);
            sqlite3_bind_double(q, 5, rows[i].ms);
            bind_text(q, 6, rows[i].note);
            if ((rc = step_done(q)) != SQLITE_OK) goto fail;
        }
    }
    return exec(s->db, "COMMIT");
fail:
    exec(s->db, "ROLLBACK");
    return rc;
}

fg_status fg_store_put_tuning(fg_store *s, const char *gpu, const char *spec, const char *bucket, const fg_tuning *w,
                              const fg_tune_row *rows, int nrows, int *kept, fg_error *err) {
    int k = 0;
    pthread_mutex_lock(&s->mu);
    int rc = s->db ? put_tuning_locked(s, gpu, spec, bucket, w, rows, nrows, &k) : SQLITE_MISUSE;
    if (rc != SQLITE_OK && recover(s, rc)) rc = put_tuning_locked(s, gpu, spec, bucket, w, rows, nrows, &k);
    fg_status st = rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, "storing a tuning result");
    pthread_mutex_unlock(&s->mu);
    if (kept) *kept = k;
    return st;
}

/* ---- maintenance ----------------------------------------------------------- */

static fg_status query_each(fg_store *s, const char *sql, const char *const *binds, int nb,
                            void (*row)(sqlite3_stmt *, void *), void *ud, fg_error *err) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = NULL;
    int rc = s->db ? sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) : SQLITE_MISUSE;
    for (int i = 0; rc == SQLITE_OK && i < nb; ++i) bind_text(q, i + 1, binds[i]);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        row(q, ud);
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    fg_status st = rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, "reading the cache");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return st;
}

typedef struct sum_ud { fg_store_summary *out; int max, n; } sum_ud;
static void sum_row(sqlite3_stmt *q, void *p) {
    sum_ud *u = p;
    if (u->n >= u->max) return;
    fg_store_summary *o = &u->out[u->n++];
    copy_col(o->gpu, sizeof o->gpu, q, 0);
    o->kernels = sqlite3_column_int(q, 1);
    o->cubin_bytes = sqlite3_column_int64(q, 2);
    o->tunings = sqlite3_column_int(q, 3);
}

fg_status fg_store_summarise(fg_store *s, fg_store_summary *out, int max, int *n, fg_error *err) {
    sum_ud u = {out, max, 0};
    fg_status st = query_each(s,
        "SELECT g.gpu, (SELECT count(*) FROM kernels k WHERE k.gpu = g.gpu),"
        " (SELECT coalesce(sum(length(cubin)), 0) FROM kernels k WHERE k.gpu = g.gpu),"
        " (SELECT count(*) FROM tunings t WHERE t.gpu = g.gpu)"
        " FROM (SELECT gpu FROM kernels UNION SELECT gpu FROM tunings) g ORDER BY g.gpu",
        NULL, 0, sum_row, &u, err);
    *n = u.n;
    return st;
}

typedef struct tun_ud { fg_store_tuning_fn fn; void *ud; } tun_ud;
static void tun_row(sqlite3_stmt *q, void *p) {
    tun_ud *u = p;
    fg_tuning t;
    memset(&t, 0, sizeof t);
    copy_col(t.config, sizeof t.config, q, 3);
    t.ms = sqlite3_column_double(q, 4);
    t.heuristic_ms = sqlite3_column_double(q, 5);
    copy_col(t.shape, sizeof t.shape, q, 6);
    t.created = sqlite3_column_int64(q, 7);
    u->fn((const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
          (const char *)sqlite3_column_text(q, 2), &t, u->ud);
}

fg_status fg_store_each_tuning(fg_store *s, const char *gpu, fg_store_tuning_fn fn, void *ud, fg_error *err) {
    tun_ud u = {fn, ud};
    const char *b[1] = {gpu};
    return query_each(s,
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
    copy_col(r.config, sizeof r.config, q, 0);
    r.ms = sqlite3_column_double(q, 1);
    copy_col(r.note, sizeof r.note, q, 2);
    u->fn(&r, u->ud);
}

fg_status fg_store_each_candidate(fg_store *s, const char *gpu, const char *spec, const char *bucket,
                                  fg_store_row_fn fn, void *ud, fg_error *err) {
    cand_ud u = {fn, ud};
    const char *b[3] = {gpu, spec, bucket};
    return query_each(s,
                      "SELECT config, ms, note FROM tuning_candidates WHERE gpu = ?1 AND spec = ?2 AND bucket = ?3"
                      " ORDER BY ms < 0, ms",
                      b, 3, cand_row, &u, err);
}

static fg_status exec_locked(fg_store *s, const char *sql, const char *what, fg_error *err) {
    int rc = s->db ? exec(s->db, sql) : SQLITE_MISUSE;
    return rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, what);
}

fg_status fg_store_export(fg_store *s, const char *file, fg_error *err) {
    struct stat sb;
    if (!stat(file, &sb)) return fg_fail(err, FG_ERR_CACHE, "export: %s already exists (not overwritten)", file);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = NULL;
    int rc = s->db ? sqlite3_prepare_v2(s->db, "VACUUM INTO ?1", -1, &q, NULL) : SQLITE_MISUSE;
    if (rc == SQLITE_OK) {
        bind_text(q, 1, file);
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    fg_status st = rc == SQLITE_OK ? FG_OK : sqlfail(err, s->db, rc, "export");
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int count_of(sqlite3 *db, const char *sql, int *out) { return pragma_int(db, sql, out); }

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
        bind_text(q, 1, tmp);
        rc = sqlite3_step(q);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_OK) { st = sqlfail(err, db, rc, "import: attach"); goto out; }
    if ((rc = exec(db, "BEGIN IMMEDIATE")) != SQLITE_OK) { st = sqlfail(err, db, rc, "import: begin"); goto detach; }
    int total_k = 0, new_k = 0, new_t = 0, better_t = 0, worse_t = 0;
#define J " FROM src.tunings s LEFT JOIN main.tunings m ON m.gpu = s.gpu AND m.spec = s.spec AND m.bucket = s.bucket"
    if ((rc = count_of(db, "SELECT count(*) FROM src.kernels", &total_k)) ||
        (rc = count_of(db, "SELECT count(*) FROM src.kernels s WHERE NOT EXISTS (SELECT 1 FROM main.kernels m"
                           " WHERE m.gpu = s.gpu AND m.key = s.key)", &new_k)) ||
        (rc = count_of(db, "SELECT count(*)" J " WHERE m.gpu IS NULL", &new_t)) ||
        (rc = count_of(db, "SELECT count(*)" J " WHERE m.gpu IS NOT NULL AND s.ms < m.ms", &better_t)) ||
        (rc = count_of(db, "SELECT count(*)" J " WHERE m.gpu IS NOT NULL AND s.ms >= m.ms", &worse_t)))
        goto fail;
#undef J
    /* candidates follow their winner: replaced where the winner is */
    if ((rc = exec(db,
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
    if ((rc = exec(db, "COMMIT")) != SQLITE_OK) goto fail;
    stt->kernels_added = new_k;
    stt->kernels_present = total_k - new_k;
    stt->tunings_added = new_t;
    stt->tunings_improved = better_t;
    stt->tunings_kept = worse_t;
    goto detach;
fail:
    st = sqlfail(err, db, rc, "import");
    exec(db, "ROLLBACK");
    exec(db, "DROP TABLE IF EXISTS temp.imp");
detach:
    exec(db, "DETACH DATABASE src");
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
    fg_status st = exec_locked(s, "BEGIN IMMEDIATE", "prune", err);
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
            bind_text(q, 1, keep_suffix ? keep_suffix : "");
            sqlite3_bind_int64(q, 2, older_than_s);
            sqlite3_bind_int64(q, 3, (int64_t)time(NULL) - older_than_s);
            rc = sqlite3_step(q);
            if (rc == SQLITE_DONE) rc = SQLITE_OK;
            *deleted += sqlite3_changes(s->db);
        }
        sqlite3_finalize(q);
        if (rc != SQLITE_OK) st = sqlfail(err, s->db, rc, "prune");
    }
    if (st == FG_OK) st = exec_locked(s, "COMMIT", "prune", err);
    else exec(s->db, "ROLLBACK");
    if (st == FG_OK) st = exec_locked(s, "VACUUM", "prune: vacuum", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

fg_status fg_store_clear(fg_store *s, fg_error *err) {
    pthread_mutex_lock(&s->mu);
    fg_status st = exec_locked(s,
                               "BEGIN IMMEDIATE; DELETE FROM kernels; DELETE FROM tunings; DELETE FROM tuning_candidates;"
                               " COMMIT;", "clear", err);
    if (st != FG_OK) exec(s->db, "ROLLBACK");
    else st = exec_locked(s, "VACUUM", "clear: vacuum", err);
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
    fg_status st = query_each(s, "PRAGMA integrity_check", NULL, 0, check_row, &report, err);
    if (st == FG_OK && (!report || strcmp(report, "ok")))
        st = fg_fail(err, FG_ERR_CACHE, "cache file %s fails PRAGMA integrity_check:\n%s", fg_store_path(s),
                     report ? report : "(no report)");
    free(report);
    return st;
}
