/* store_internal.h: what the files of cache/ share, and nothing else sees.
 *
 * The store is split by concern, as SQLite's own sources are:
 *   store.c     the handle: open (with its fallbacks), close, recovery
 *   schema.c    migrations, the file's identity check, prepared statements
 *   sql.c       the SQL helpers every file uses (one integer reader, binds)
 *   identity.c  GPU identity strings and the cubin checksum
 *   kernels.c   compiled kernels
 *   tunings.c   tuning winners and candidates
 *   transfer.c  export, import, prune, clear, check, summary
 * Functions with the fgs_ prefix are private to cache/. */
#ifndef FG_STORE_INTERNAL_H
#define FG_STORE_INTERNAL_H
#include <pthread.h>
#include <sqlite3.h>

#include "cache/store.h"

#define FGS_APP_ID 0x46474331 /* "FGC1": a file of ours, not some other SQLite database */
#define FGS_BUSY_MS 30000     /* how long a statement waits for another writer */

/* The prepared statements kept open (schema.c holds their text). */
enum { ST_GET_K, ST_PUT_K, ST_TOUCH_K, ST_DEL_K, ST_GET_T, ST_GET_T_MS, ST_PUT_T, ST_DEL_C, ST_PUT_C, ST_COUNT };

struct fg_store {
    pthread_mutex_t mu; /* recursive: a listing callback may read candidates of the row it is given */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *path;         /* the file, or NULL in memory */
    int strict;         /* opened by fg_store_open_strict: never moved aside */
    fg_store_warn_fn warn;
    void *warn_ud;
};

/* ---- store.c ---- */
void fgs_warnf(fg_store *s, const char *fmt, ...) FG_PRINTF(2, 3);
/* Opens path read-only into *db (close it even on failure), also in a
 * folder that cannot be written: SQLite's error code otherwise. */
int fgs_open_read_only(const char *path, sqlite3 **db);
/* An SQLite error in the middle of use: corruption moves the file aside and
 * opens a fresh one.  Returns 1 when the store was rebuilt. */
int fgs_recover(fg_store *s, int rc);

/* ---- schema.c ---- */
/* Reads (never writes) whether db is a file of ours: SQLITE_OK for ours or
 * an empty file, SQLITE_MISMATCH with *why for another program's database or
 * a newer flashgen's file, SQLite's own error for a file that is not one. */
int fgs_check_identity(sqlite3 *db, const char **why);
/* Brings db to schema version upto in one write transaction.  Returns an
 * SQLite code; *why explains a refusal. */
int fgs_migrate(sqlite3 *db, int upto, const char **why);
int fgs_prepare_all(fg_store *s);
void fgs_finalize_all(fg_store *s);

/* ---- tunings.c ---- */
/* Whether a tuning row can win: a finite time > 0 and a configuration that
 * parses (the runtime checks it against the variant and device before use). */
int fgs_tuning_valid(double ms, const char *config);

/* ---- sql.c ---- */
int fgs_is_corrupt(int rc);
fg_status fgs_fail(fg_error *err, sqlite3 *db, int rc, const char *what);
int fgs_exec(sqlite3 *db, const char *sql);
/* The first column of the first row of sql as an int (0 when there is no
 * row): every PRAGMA reader and count goes through here. */
int fgs_int(sqlite3 *db, const char *sql, int *out);
void fgs_bind_text(sqlite3_stmt *q, int i, const char *t);
/* Binds (gpu, spec, bucket) to parameters 1..3. */
void fgs_bind_gsb(sqlite3_stmt *q, const char *gpu, const char *spec, const char *bucket);
/* Steps a statement that returns no row we need, then resets it. */
int fgs_step_done(sqlite3_stmt *q);
/* A text column, "" for NULL (a file may lack our NOT NULL constraints);
 * valid until the statement steps again. */
const char *fgs_col_text(sqlite3_stmt *q, int col);
/* Copies a text column ("" for NULL) into dst[n]. */
void fgs_copy_col(char *dst, size_t n, sqlite3_stmt *q, int col);
/* Runs sql with text binds under the store's lock, calling row() per row. */
fg_status fgs_query_each(fg_store *s, const char *sql, const char *const *binds, int nb,
                         void (*row)(sqlite3_stmt *, void *), void *ud, fg_error *err);
fg_status fgs_exec_locked(fg_store *s, const char *sql, const char *what, fg_error *err);
#endif
