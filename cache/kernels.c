/* kernels.c: compiled kernels (cubin + checksum + ptxas statistics) by
 * (GPU identity, variant key). */
#include "cache/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void fg_stored_kernel_free(fg_stored_kernel *k) {
    free(k->cubin);
    free(k->log);
    memset(k, 0, sizeof *k);
}

/* Column 13 of ST_GET_K: 1 when the cubin was compiled here (or vouched for
 * with import --trust-kernels).  An unverified row is never handed out:
 * the caller compiles the variant, and fg_store_put_kernel compares. */
enum { COL_VERIFIED = 13 };

static int get_kernel_locked(fg_store *s, const char *gpu, const char *key, fg_stored_kernel *k, int *found, int *bad) {
    sqlite3_stmt *q = s->st[ST_GET_K];
    fgs_bind_text(q, 1, gpu);
    fgs_bind_text(q, 2, key);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(q, 0);
        const size_t n = (size_t)sqlite3_column_bytes(q, 0);
        const uint64_t sum = (uint64_t)sqlite3_column_int64(q, 1);
        if (!blob || n == 0 || fg_store_hash(blob, n) != sum) {
            *bad = 1;
        } else if (sqlite3_column_int(q, COL_VERIFIED) != 1) {
            /* a miss until a local compile confirms it */
        } else if ((k->cubin = malloc(n))) {
            memcpy(k->cubin, blob, n);
            k->cubin_size = n;
            fgs_copy_col(k->entry, sizeof k->entry, q, 2);
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
                fgs_bind_text(u, 1, gpu);
                fgs_bind_text(u, 2, key);
                sqlite3_bind_int64(u, 3, now);
                /* best effort: a busy or read-only file only loses the date.  Never
                 * wait for another writer here: the store's lock is held. */
                sqlite3_busy_timeout(s->db, 0);
                fgs_step_done(u);
                sqlite3_busy_timeout(s->db, FGS_BUSY_MS);
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
    if (rc != SQLITE_OK && fgs_recover(s, rc)) rc = SQLITE_OK; /* the fresh file has no kernels: a miss */
    if (bad) {
        fgs_warnf(s, "cache file %s: the stored cubin of %s fails its checksum; dropped, it will be recompiled",
              fg_store_path(s), key);
        sqlite3_stmt *d = s->st[ST_DEL_K];
        fgs_bind_text(d, 1, gpu);
        fgs_bind_text(d, 2, key);
        fgs_step_done(d);
    }
    fg_status st = FG_OK;
    if (rc != SQLITE_OK) {
        /* a busy or failing file is a miss, never a failed call */
        fgs_warnf(s, "cache file %s: reading %s failed: %s; compiling instead", fg_store_path(s), key, sqlite3_errmsg(s->db));
    }
    pthread_mutex_unlock(&s->mu);
    (void)err;
    return st;
}

/* Whether an unverified (imported) row of key holds another cubin than k. */
static int imported_differs(fg_store *s, const char *gpu, const char *key, const fg_stored_kernel *k) {
    sqlite3_stmt *q = s->st[ST_GET_K];
    fgs_bind_text(q, 1, gpu);
    fgs_bind_text(q, 2, key);
    int differs = 0;
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, COL_VERIFIED) != 1) {
        const void *blob = sqlite3_column_blob(q, 0);
        differs = !blob || (size_t)sqlite3_column_bytes(q, 0) != k->cubin_size || memcmp(blob, k->cubin, k->cubin_size);
    }
    sqlite3_reset(q);
    return differs;
}

static int put_kernel_locked(fg_store *s, const char *gpu, const char *key, const fg_stored_kernel *k) {
    sqlite3_stmt *q = s->st[ST_PUT_K];
    fgs_bind_text(q, 1, gpu);
    fgs_bind_text(q, 2, key);
    sqlite3_bind_blob(q, 3, k->cubin, (int)k->cubin_size, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, (int64_t)fg_store_hash(k->cubin, k->cubin_size));
    fgs_bind_text(q, 5, k->entry);
    sqlite3_bind_int(q, 6, k->threads);
    sqlite3_bind_int(q, 7, k->smem_bytes);
    sqlite3_bind_int(q, 8, k->stats.registers);
    sqlite3_bind_int(q, 9, k->stats.spill_stores);
    sqlite3_bind_int(q, 10, k->stats.spill_loads);
    sqlite3_bind_int(q, 11, k->stats.stack_frame);
    sqlite3_bind_int(q, 12, k->stats.static_smem);
    sqlite3_bind_double(q, 13, k->stats.compile_seconds);
    fgs_bind_text(q, 14, k->log);
    sqlite3_bind_int64(q, 15, (int64_t)time(NULL));
    int rc = fgs_step_done(q);
    sqlite3_clear_bindings(q);
    return rc;
}

fg_status fg_store_put_kernel(fg_store *s, const char *gpu, const char *key, const fg_stored_kernel *k, fg_error *err) {
    if (!k->cubin || !k->cubin_size || k->cubin_size > 0x7fffffff)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "cache: kernel %s has no cubin to store", key);
    pthread_mutex_lock(&s->mu);
    const int differs = s->db && imported_differs(s, gpu, key, k);
    int rc = s->db ? put_kernel_locked(s, gpu, key, k) : SQLITE_MISUSE;
    if (rc != SQLITE_OK && fgs_recover(s, rc)) rc = put_kernel_locked(s, gpu, key, k);
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, "storing a kernel");
    if (st == FG_OK && differs)
        fgs_warnf(s, "cache file %s: the imported cubin of %s differs from the one compiled here; replaced by the "
                     "local build (the file it came from was not built by this flashgen, NVRTC and GPU identity)",
                  fg_store_path(s), key);
    pthread_mutex_unlock(&s->mu);
    return st;
}

fg_status fg_store_evict_kernel(fg_store *s, const char *gpu, const char *key, fg_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = SQLITE_MISUSE;
    if (s->db) {
        sqlite3_stmt *d = s->st[ST_DEL_K];
        fgs_bind_text(d, 1, gpu);
        fgs_bind_text(d, 2, key);
        rc = fgs_step_done(d);
        if (rc != SQLITE_OK && fgs_recover(s, rc)) rc = SQLITE_OK;
    }
    fg_status st = rc == SQLITE_OK ? FG_OK : fgs_fail(err, s->db, rc, "evicting a kernel");
    pthread_mutex_unlock(&s->mu);
    return st;
}

