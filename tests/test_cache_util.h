/* test_cache_util.h: what the cache tests share: a scratch folder, a
 * warning collector, fake kernels and tunings, raw SQLite access. */
#ifndef FG_TEST_CACHE_UTIL_H
#define FG_TEST_CACHE_UTIL_H
#include <dirent.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "cache/store.h"
#include "test_util.h"

static char dir[256];
static char warnings[8192];
static int nwarn;

static inline void capture(const char *msg, void *ud) {
    (void)ud;
    ++nwarn;
    size_t l = strlen(warnings);
    snprintf(warnings + l, sizeof warnings - l, "%s\n", msg);
}
static inline void reset_warn(void) { warnings[0] = 0; nwarn = 0; }
static inline const char *warn_text(void) { return warnings; }

static inline const char *file(const char *name) {
    static char buf[8][512];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static inline fg_store *open_ok(const char *path) {
    fg_store *s = NULL;
    fg_error e = {0};
    CHECK(fg_store_open(path, capture, NULL, &s, &e) == FG_OK, "open %s: %s", path, e.msg);
    fg_error_clear(&e);
    return s;
}

static inline fg_stored_kernel fake_kernel(unsigned char fill, size_t n) {
    fg_stored_kernel k;
    memset(&k, 0, sizeof k);
    k.cubin = malloc(n);
    memset(k.cubin, fill, n);
    k.cubin_size = n;
    snprintf(k.entry, sizeof k.entry, "fg_fwd_%u", fill);
    k.threads = 128;
    k.smem_bytes = 65536;
    k.stats.registers = 168;
    k.stats.compile_seconds = 0.5;
    k.log = "ptxas info: fake";
    return k;
}

static inline int raw_exec(const char *path, const char *sql) {
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static inline int raw_int(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *q;
    int v = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return v;
}

static inline int count_aside(const char *base) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    char pre[256];
    snprintf(pre, sizeof pre, "%s.corrupt-", base);
    while (d && (de = readdir(d)))
        if (!strncmp(de->d_name, pre, strlen(pre)) && !strstr(de->d_name, "-wal") && !strstr(de->d_name, "-shm")) ++n;
    if (d) closedir(d);
    return n;
}

static inline fg_tuning tuning(const char *cfg, double ms) {
    fg_tuning t;
    memset(&t, 0, sizeof t);
    snprintf(t.config, sizeof t.config, "%s", cfg);
    t.ms = ms;
    t.heuristic_ms = ms * 1.1;
    snprintf(t.shape, sizeof t.shape, "b8 h16 sq2048 sk2048");
    return t;
}

static const char CFG_A[] = "wgmma=1,block_m=64,block_n=128,warps=4,stages=1,q_in_regs=0,min_blocks=1";
static const char CFG_B[] = "wgmma=1,block_m=128,block_n=64,warps=8,stages=2,q_in_regs=0,min_blocks=1";
static const char SPEC[] = "hdim=128,dtype=bf16,causal=0,sparse=0,path=auto";

/* Removes the scratch folder when every check passed; the exit status. */
static inline int cache_test_finish(const char *name) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!t_failures && system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary(name);
}
#endif
