/* store.c: the store's handle: open (creating, migrating; the fallbacks
 * store.h describes), close, and recovery from a file found corrupt.  See
 * store_internal.h for how the other concerns are split. */
#include "cache/store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void default_warn(const char *msg, void *ud) {
    (void)ud;
    fprintf(stderr, "flashgen: warning: %s\n", msg);
}

void fgs_warnf(fg_store *s, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (s->warn ? s->warn : default_warn)(buf, s->warn_ud);
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

/* Whether SQLite keeps a WAL for path: beside the file a symlink names. */
static int wal_exists(const char *path) {
    char *real = realpath(path, NULL);
    if (!real) return 0;
    char *wal = fg_strdupf("%s-wal", real);
    struct stat sb;
    const int yes = wal && !stat(wal, &sb);
    free(wal);
    free(real);
    return yes;
}

/* "file:<path>?immutable=1", the path percent-encoded (RFC 3986). */
static char *immutable_uri(const char *path) {
    const size_t n = strlen(path);
    char *u = malloc(n * 3 + 32), *o = u;
    if (!u) return NULL;
    o += sprintf(o, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; ++p) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("/-._~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    strcpy(o, "?immutable=1");
    return u;
}

static int open_db(sqlite3 **db, const char *name, int flags) {
    int rc = sqlite3_open_v2(name, db, flags | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_busy_timeout(*db, FGS_BUSY_MS);
    sqlite3_extended_result_codes(*db, 0);
    return SQLITE_OK;
}

/* Read-only (see store_internal.h).  A WAL file needs its -shm index, which SQLite cannot create
 * in a folder it may not write; when there is no WAL beside the file, the
 * file is all there is and is opened as immutable (no locks, no index). */
int fgs_open_read_only(const char *path, sqlite3 **db) {
    int rc = open_db(db, path, SQLITE_OPEN_READONLY), ver = 0;
    if (rc == SQLITE_OK) rc = fgs_int(*db, "PRAGMA user_version", &ver);
    if (rc == SQLITE_OK || ((rc & 0xff) != SQLITE_READONLY && (rc & 0xff) != SQLITE_CANTOPEN) || wal_exists(path))
        return rc;
    sqlite3_close_v2(*db);
    *db = NULL;
    char *uri = immutable_uri(path);
    rc = uri ? open_db(db, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI) : SQLITE_NOMEM;
    free(uri);
    return rc;
}

/* Opens path (NULL: memory) into s: identity, WAL, migrations, statements.
 * Nothing is written to a file before fgs_check_identity has read that it
 * is ours or empty; a file that is not a database, or is damaged, fails
 * here with SQLite's own code.  Returns an SQLite code; *why for a refusal. */
static int connect(fg_store *s, const char *path, int readonly, int upto, const char **why) {
    int rc = readonly ? fgs_open_read_only(path, &s->db)
                      : open_db(&s->db, path ? path : ":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int ver = 0;
    if (rc != SQLITE_OK || (rc = fgs_check_identity(s->db, why)) != SQLITE_OK ||
        (rc = fgs_int(s->db, "PRAGMA user_version", &ver)) != SQLITE_OK)
        return rc;
    if (readonly) {
        if (ver != FG_STORE_SCHEMA_VERSION) {
            *why = ver > FG_STORE_SCHEMA_VERSION ? "its schema is newer than this build's" : "its schema is older than this build's";
            return SQLITE_MISMATCH;
        }
    } else {
        if (path) {
            /* Switching a rollback-journal file to WAL needs it to itself:
             * a short busy wait a try (under the store's FGS_BUSY_MS each of
             * 100 tries could wait ~50 minutes without a word), about 15 s
             * in all, then SQLite's BUSY, which the caller reports. */
            sqlite3_busy_timeout(s->db, 100);
            for (int tries = 0; tries < 120; ++tries) {
                rc = fgs_exec(s->db, "PRAGMA journal_mode = WAL");
                if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
                usleep(20000);
            }
            sqlite3_busy_timeout(s->db, FGS_BUSY_MS);
            if (rc != SQLITE_OK) return rc;
            fgs_exec(s->db, "PRAGMA synchronous = NORMAL");
        }
        if (ver < upto && (rc = fgs_migrate(s->db, upto, why)) != SQLITE_OK) return rc;
    }
    if (upto != FG_STORE_SCHEMA_VERSION) return SQLITE_OK; /* a test's old-version file */
    return fgs_prepare_all(s);
}

/* Renames path (and its -wal, -shm) to path.corrupt-<time>-<pid>.  Nothing
 * is ever deleted: a file that cannot be moved stays as it is.  Returns 0,
 * else the errno of the rename that failed. */
static int move_aside(const char *path, char *aside, size_t n) {
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(aside, n, "%s.corrupt-%s-%d", path, stamp, (int)getpid());
    if (rename(path, aside)) return errno;
    const char *sfx[] = {"-wal", "-shm"};
    for (int i = 0; i < 2; ++i) {
        char a[4200], b[4300];
        snprintf(a, sizeof a, "%s%s", path, sfx[i]);
        snprintf(b, sizeof b, "%s%s", aside, sfx[i]);
        if (rename(a, b) && errno != ENOENT) return errno;
    }
    return 0;
}

/* Whether the file at path starts as every SQLite database does.  Only
 * such a file is moved aside when SQLite finds it corrupt: any other file
 * (a mistyped FLASHGEN_CACHE naming a user's file) is not flashgen's to
 * move, and is left as it is. */
static int looks_like_sqlite(const char *path) {
    static const char magic[16] = "SQLite format 3";
    char head[16];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    const size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return n == sizeof head && !memcmp(head, magic, sizeof head);
}

/* Opens s->path (corrupt_rc: it was just found corrupt), moving a corrupt
 * SQLite file aside once, else memory + one warning. */
static void open_or_fallback(fg_store *s, int corrupt_rc) {
    const char *why = NULL;
    char reason[4600];
    int rc = corrupt_rc;
    if (s->path) {
        if (mkdirs_for(s->path)) {
            fgs_warnf(s, "cannot create the directory of cache file %s (%s); using an in-memory cache: compiled kernels "
                         "and tuning results will not outlive this process (set FLASHGEN_CACHE to a writable file)",
                      s->path, strerror(errno));
            goto memory;
        }
        if (rc == SQLITE_OK) rc = connect(s, s->path, 0, FG_STORE_SCHEMA_VERSION, &why);
        if (fgs_is_corrupt(rc) && !looks_like_sqlite(s->path)) {
            fgs_finalize_all(s);
            snprintf(reason, sizeof reason, "it is not a SQLite database (%s), so not a flashgen cache; it is left as "
                     "it is", sqlite3_errstr(rc));
            why = reason;
        } else if (fgs_is_corrupt(rc)) {
            char aside[4200];
            fgs_finalize_all(s);
            const int errn = move_aside(s->path, aside, sizeof aside);
            if (errn) {
                snprintf(reason, sizeof reason, "it is corrupt or not a database (%s) and cannot be moved aside (%s); "
                         "it is left as it is", sqlite3_errstr(rc), strerror(errn));
                why = reason;
            } else {
                fgs_warnf(s, "cache file %s is corrupt (%s): moved to %s; starting an empty cache there", s->path,
                          sqlite3_errstr(rc), aside);
                why = NULL;
                rc = connect(s, s->path, 0, FG_STORE_SCHEMA_VERSION, &why);
            }
        }
        if (rc == SQLITE_OK) return;
        fgs_warnf(s, "cannot use cache file %s: %s; using an in-memory cache: compiled kernels and tuning results will "
                     "not outlive this process (set FLASHGEN_CACHE to a writable file)",
                  s->path, why ? why : sqlite3_errstr(rc));
        fgs_finalize_all(s);
    }
memory:
    free(s->path);
    s->path = NULL;
    if (connect(s, NULL, 0, FG_STORE_SCHEMA_VERSION, &why) != SQLITE_OK) fgs_finalize_all(s);
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
    open_or_fallback(s, SQLITE_OK);
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
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, why ? why : "creating an old-version file");
    fg_store_close(s);
    return st;
}

fg_status fg_store_open_strict(const char *path, int mode, fg_store **out, fg_error *err) {
    struct stat sb;
    if (!path || !*path || !strcmp(path, "off") || !strcmp(path, ":memory:"))
        return fg_fail(err, FG_ERR_CACHE, "no cache file (the cache is off)");
    if (mode != FG_STORE_CREATE && stat(path, &sb)) return fg_fail(err, FG_ERR_CACHE, "cache file %s does not exist", path);
    if (mode == FG_STORE_CREATE && mkdirs_for(path))
        return fg_fail(err, FG_ERR_CACHE, "cannot create the directory of cache file %s: %s", path, strerror(errno));
    fg_store *s = store_new(path);
    if (!s) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    s->strict = 1;
    const char *why = NULL;
    int rc = connect(s, s->path, mode == FG_STORE_READ_ONLY, FG_STORE_SCHEMA_VERSION, &why);
    if (rc != SQLITE_OK) {
        fg_status st = fg_fail(err, FG_ERR_CACHE, "cache file %s cannot be used: %s", path,
                               why ? why : fgs_is_corrupt(rc) ? "it is corrupt or not a flashgen cache" : sqlite3_errstr(rc));
        fg_store_close(s);
        return st;
    }
    *out = s;
    return FG_OK;
}

void fg_store_close(fg_store *s) {
    if (!s) return;
    fgs_finalize_all(s);
    free(s->path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *fg_store_path(const fg_store *s) { return s->path ? s->path : ":memory:"; }
int fg_store_in_memory(const fg_store *s) { return s->path == NULL; }
void fg_store_path_copy(fg_store *s, char *buf, size_t n) {
    pthread_mutex_lock(&s->mu);
    snprintf(buf, n, "%s", fg_store_path(s));
    pthread_mutex_unlock(&s->mu);
}

/* An SQLite error in the middle of use.  Corruption: the file is moved
 * aside and a fresh one opened (the caller's operation is then a miss, or
 * is retried once).  Returns 1 when the store was rebuilt. */
int fgs_recover(fg_store *s, int rc) {
    if (!fgs_is_corrupt(rc) || s->strict || !s->path) return 0;
    fgs_finalize_all(s);
    open_or_fallback(s, rc);
    return s->db != NULL;
}
