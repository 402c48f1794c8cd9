/* test_cache_trust.c (cpu): what a cache file can make flashgen do (issue 16,
 * items 8-12; docs/CACHE.md).
 *
 * Imported kernels are not handed out before a local compile confirms them
 * (or --trust-kernels); tuning rows with a bad time or configuration never
 * win; a symlinked cache with a live WAL is not declared corrupt; a file
 * that cannot be moved aside is never deleted; another program's database
 * and a newer flashgen's file are never written; import reads the source's
 * WAL; a busy writer does not stall a cache hit; import into an unusable
 * location fails; NULL columns do not crash a listing; a WAL cache in a
 * read-only folder can be read.  With FLASHGEN_BIN set (ctest sets it) the
 * same through the `flashgen cache` commands. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_cache_util.h"

/* ---- helpers ------------------------------------------------------------- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Byte 18 of an SQLite header: 1 rollback journal, 2 WAL. */
static int header_byte18(const char *path) {
    unsigned char h[20] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    return n == sizeof h ? h[18] : -1;
}

static int kernel_found(fg_store *s, const char *key, size_t size, unsigned char fill) {
    fg_stored_kernel got;
    int found = 0;
    fg_error e = {0};
    fg_store_get_kernel(s, "G", key, &got, &found, &e);
    fg_error_clear(&e);
    const int ok = found && got.cubin_size == size && ((unsigned char *)got.cubin)[0] == fill;
    fg_stored_kernel_free(&got);
    return found ? (ok ? 1 : -1) : 0;
}

static int tuning_ms(fg_store *s, const char *bucket, double *ms, char *cfg, size_t n) {
    fg_tuning t;
    int found = 0;
    fg_error e = {0};
    fg_store_get_tuning(s, "G", SPEC, bucket, &t, &found, &e);
    fg_error_clear(&e);
    if (ms) *ms = t.ms;
    if (cfg) snprintf(cfg, n, "%s", t.config);
    return found;
}

/* Runs the flashgen CLI (FLASHGEN_BIN) with a shell command tail; the exit
 * status, 128 + signal when it crashed, -1 when there is no binary. */
static int cli(const char *fmt, ...) FG_PRINTF(1, 2);
static int cli(const char *fmt, ...) {
    const char *bin = getenv("FLASHGEN_BIN");
    if (!bin || !*bin) return -1;
    char tail[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s", bin, tail);
    const int st = system(cmd);
    if (st == -1) return -1;
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    const int rc = WEXITSTATUS(st);
    return rc == 127 ? -1 : rc;
}

/* ---- item 8: imported kernels and tuning rows ------------------------------ */

static void test_imported_kernels_verified(void) {
    fg_error e = {0};
    fg_store *a = open_ok(file("ka.db"));
    fg_stored_kernel k1 = fake_kernel(1, 3000), k2 = fake_kernel(2, 4000), mine = fake_kernel(9, 4000);
    CHECK(fg_store_put_kernel(a, "G", "k1", &k1, &e) == FG_OK && fg_store_put_kernel(a, "G", "k2", &k2, &e) == FG_OK,
          "put: %s", e.msg);
    CHECK(fg_store_export(a, file("kx.db"), &e) == FG_OK, "export: %s", e.msg);
    fg_store_close(a);

    fg_store *b = open_ok(file("kb.db"));
    fg_import_stats st;
    CHECK(fg_store_import(b, file("kx.db"), NULL, &st, &e) == FG_OK && st.kernels_added == 2, "import: %s (%d added)",
          e.msg, st.kernels_added);
    fg_error_clear(&e);
    CHECK(kernel_found(b, "k1", 3000, 1) == 0 && kernel_found(b, "k2", 4000, 2) == 0,
          "an imported kernel was handed out before a local compile confirmed it");
    /* the local compile of k1 gives the same bytes: confirmed, no warning */
    reset_warn();
    CHECK(fg_store_put_kernel(b, "G", "k1", &k1, &e) == FG_OK, "%s", e.msg);
    CHECK(nwarn == 0, "a confirmed kernel warned: %s", warnings);
    CHECK(kernel_found(b, "k1", 3000, 1) == 1, "a confirmed kernel is not used");
    /* k2 compiles to other bytes here: the file's cubin is replaced, with a warning */
    reset_warn();
    CHECK(fg_store_put_kernel(b, "G", "k2", &mine, &e) == FG_OK, "%s", e.msg);
    CHECK(nwarn == 1, "a forged cubin was replaced silently (%d warnings)", nwarn);
    CHECK_CONTAINS(warn_text(), "differs");
    CHECK(kernel_found(b, "k2", 4000, 9) == 1, "the local build did not replace the imported cubin");
    fg_store_close(b);

    /* --trust-kernels: the operator vouches for the file; used as they are */
    fg_store *c = open_ok(file("kc.db"));
    const fg_import_opts trust = {1, NULL, NULL};
    CHECK(fg_store_import(c, file("kx.db"), &trust, &st, &e) == FG_OK, "import --trust-kernels: %s", e.msg);
    fg_error_clear(&e);
    CHECK(kernel_found(c, "k1", 3000, 1) == 1 && kernel_found(c, "k2", 4000, 2) == 1, "trusted kernels not used");
    fg_store_close(c);
    free(k1.cubin);
    free(k2.cubin);
    free(mine.cubin);
}

/* A check as the CLI's: rejects CFG_B for SPEC (say it needs too much memory). */
static int refuse_cfg_b(const char *spec, const char *config, void *ud) {
    (void)spec;
    ++*(int *)ud;
    return strcmp(config, CFG_B) != 0;
}

static void test_tuning_rows_validated(void) {
    fg_error e = {0};
    fg_store *s = open_ok(file("tv.db"));
    const double bad[] = {-1.0, 0.0, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 5; ++i) {
        fg_tuning t = tuning(CFG_A, bad[i]);
        CHECK(fg_store_put_tuning(s, "G", SPEC, "bad", &t, NULL, 0, NULL, &e) == FG_ERR_INVALID_ARGUMENT,
              "a tuning of %g ms was stored", bad[i]);
        fg_error_clear(&e);
    }
    CHECK(!tuning_ms(s, "bad", NULL, NULL, 0), "a tuning with a bad time is there");
    /* rows in the file with a bad time or an unparsable configuration never win */
    fg_tuning ok = tuning(CFG_A, 1.0);
    fg_store_put_tuning(s, "G", SPEC, "neg", &ok, NULL, 0, NULL, &e);
    fg_store_put_tuning(s, "G", SPEC, "junk", &ok, NULL, 0, NULL, &e);
    CHECK(raw_exec(file("tv.db"), "UPDATE tunings SET ms = -5 WHERE bucket = 'neg';"
                                  "UPDATE tunings SET config = 'rm -rf' WHERE bucket = 'junk'") == SQLITE_OK, "forge");
    CHECK(!tuning_ms(s, "neg", NULL, NULL, 0), "a stored row with -5 ms was used");
    CHECK(!tuning_ms(s, "junk", NULL, NULL, 0), "a stored row with an unparsable configuration was used");
    int kept = -1;
    fg_tuning slow = tuning(CFG_B, 3.0);
    CHECK(fg_store_put_tuning(s, "G", SPEC, "neg", &slow, NULL, 0, &kept, &e) == FG_OK && kept == 0,
          "a row with -5 ms kept a real result out (kept %d)", kept);
    double ms = 0;
    CHECK(tuning_ms(s, "neg", &ms, NULL, 0) && ms == 3.0, "real result not stored over a forged one");
    fg_store_close(s);

    /* import: a file whose rows claim impossible times or refused configurations */
    fg_store *src = open_ok(file("tsrc.db"));
    const char *buckets[] = {"b1", "b2", "b3", "b4", "b5", "b6"};
    for (int i = 0; i < 6; ++i) {
        fg_tuning t = tuning(i == 3 ? CFG_B : CFG_A, 1.0);
        fg_tune_row r = {"", 1.0, ""};
        snprintf(r.config, sizeof r.config, "%s", t.config);
        fg_store_put_tuning(src, "G", SPEC, buckets[i], &t, &r, 1, NULL, &e);
    }
    fg_store_close(src);
    CHECK(raw_exec(file("tsrc.db"), "UPDATE tunings SET ms = -1 WHERE bucket = 'b1';"
                                    "UPDATE tunings SET ms = 0 WHERE bucket = 'b2';"
                                    "UPDATE tunings SET ms = 1e-9, config = 'garbage' WHERE bucket = 'b3';"
                                    "UPDATE tunings SET ms = 1e-9 WHERE bucket = 'b4';"
                                    "UPDATE tunings SET ms = 9e999 WHERE bucket = 'b5';") == SQLITE_OK, "forge src");
    fg_store *dst = open_ok(file("tdst.db"));
    fg_store_put_tuning(dst, "G", SPEC, "b3", &ok, NULL, 0, NULL, &e);
    fg_store_put_tuning(dst, "G", SPEC, "b4", &ok, NULL, 0, NULL, &e);
    int calls = 0;
    const fg_import_opts opts = {0, refuse_cfg_b, &calls};
    fg_import_stats st;
    CHECK(fg_store_import(dst, file("tsrc.db"), &opts, &st, &e) == FG_OK, "import: %s", e.msg);
    fg_error_clear(&e);
    CHECK(calls > 0, "the configuration check was never asked");
    CHECK(st.tunings_rejected == 5 && st.tunings_added == 1 && st.tunings_improved == 0,
          "rejected %d added %d improved %d (want 5, 1, 0)", st.tunings_rejected, st.tunings_added, st.tunings_improved);
    char cfg[192];
    CHECK(tuning_ms(dst, "b3", &ms, cfg, sizeof cfg) && ms == 1.0 && !strcmp(cfg, CFG_A), "a garbage row won (%g %s)", ms, cfg);
    CHECK(tuning_ms(dst, "b4", &ms, cfg, sizeof cfg) && ms == 1.0 && !strcmp(cfg, CFG_A), "a refused row won (%g %s)", ms, cfg);
    CHECK(!tuning_ms(dst, "b1", NULL, NULL, 0) && !tuning_ms(dst, "b2", NULL, NULL, 0) && !tuning_ms(dst, "b5", NULL, NULL, 0),
          "a row with a bad time was imported");
    CHECK(tuning_ms(dst, "b6", &ms, NULL, 0) && ms == 1.0, "the valid row was not imported");
    CHECK(raw_int(file("tdst.db"), "SELECT count(*) FROM tuning_candidates") == 1, "candidates of rejected rows imported (%d)",
          raw_int(file("tdst.db"), "SELECT count(*) FROM tuning_candidates"));
    fg_store_close(dst);
}

/* flashgen cache import asks whether the variant accepts each configuration */
static void test_cli_import_checks_configs(void) {
    fg_error e = {0};
    fg_store *src = open_ok(file("csrc.db"));
    fg_tuning t = tuning(CFG_A, 1.0);
    fg_store_put_tuning(src, "G", SPEC, "ok", &t, NULL, 0, NULL, &e);
    fg_store_put_tuning(src, "G", SPEC, "b48", &t, NULL, 0, NULL, &e);
    fg_store_put_tuning(src, "G", "hdim=128,dtype=bf16,causal=0,sparse=0,path=mma", "mma", &t, NULL, 0, NULL, &e);
    fg_store_close(src);
    CHECK(raw_exec(file("csrc.db"), "UPDATE tunings SET config = replace(replace(config, 'block_m=64', 'block_m=48'),"
                                    " 'warps=4', 'warps=3') WHERE bucket = 'b48'") == SQLITE_OK, "forge");
    const int rc = cli("cache import '%s' --cache '%s' >/dev/null", file("csrc.db"), file("cdst.db"));
    if (rc < 0) return;
    CHECK(rc == 0, "import exited %d", rc);
    fg_store *dst = open_ok(file("cdst.db"));
    CHECK(tuning_ms(dst, "ok", NULL, NULL, 0), "a valid row was not imported");
    CHECK(!tuning_ms(dst, "b48", NULL, NULL, 0), "a wgmma block_m=48 row was imported");
    fg_tuning got;
    int found = 1;
    fg_store_get_tuning(dst, "G", "hdim=128,dtype=bf16,causal=0,sparse=0,path=mma", "mma", &got, &found, &e);
    CHECK(!found, "a wgmma configuration was imported for path=mma");
    fg_store_close(dst);
}

/* ---- item 9: a symlinked cache whose writer died -------------------------- */

static void test_symlinked_wal(void) {
    CHECK(mkdir(file("real"), 0755) == 0 && symlink(file("real/c.db"), file("link.db")) == 0, "symlink: %s",
          strerror(errno));
    const pid_t pid = fork();
    if (pid == 0) {
        fg_store *s;
        fg_error e = {0};
        if (fg_store_open(file("link.db"), NULL, NULL, &s, &e) != FG_OK || fg_store_in_memory(s)) _exit(10);
        for (int i = 0; i < 20; ++i) {
            char key[16];
            snprintf(key, sizeof key, "k%d", i);
            fg_stored_kernel k = fake_kernel((unsigned char)i, 20000);
            if (fg_store_put_kernel(s, "G", key, &k, &e) != FG_OK) _exit(11);
            free(k.cubin);
        }
        raise(SIGKILL); /* the writer dies: its WAL stays beside real/c.db */
        _exit(12);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "writer: status %d", status);
    reset_warn();
    fg_store *s = open_ok(file("link.db"));
    CHECK(nwarn == 0, "a healthy cache behind a symlink was declared bad: %s", warnings);
    int found = 0;
    for (int i = 0; i < 20; ++i) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        found += kernel_found(s, key, 20000, (unsigned char)i) == 1;
    }
    CHECK(found == 20, "%d of 20 kernels written through the symlink survive", found);
    CHECK(count_aside("link.db") == 0, "the symlink was moved aside");
    fg_store_close(s);
}

/* ---- item 10: never delete a file we did not create ------------------------ */

static void test_never_delete(void) {
    char name[241];
    memset(name, 'n', 237);
    memcpy(name + 237, ".db", 4); /* + ".corrupt-<stamp>-<pid>" is over NAME_MAX: rename fails */
    const char *p = file(name);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 200; ++i) fprintf(f, "my notes, line %d: not a database\n", i);
    fclose(f);
    struct stat before, after;
    stat(p, &before);
    reset_warn();
    fg_store *s = open_ok(p);
    CHECK(s && fg_store_in_memory(s), "a file that cannot be moved aside was used");
    CHECK(stat(p, &after) == 0 && after.st_size == before.st_size && after.st_ino == before.st_ino,
          "the user's file was deleted or replaced");
    CHECK(nwarn == 1, "%d warnings: %s", nwarn, warnings);
    CHECK_CONTAINS(warn_text(), "in-memory");
    fg_store_close(s);
}

/* ---- item 11: another program's database, a newer flashgen's file --------- */

static void test_identity_before_writing(void) {
    const char *p = file("foreign0.db");
    CHECK(raw_exec(p, "CREATE TABLE notes(x); INSERT INTO notes VALUES(42);") == SQLITE_OK, "foreign");
    reset_warn();
    fg_store *s = open_ok(p);
    CHECK(fg_store_in_memory(s), "a database with application_id 0 and tables of its own was adopted");
    CHECK_CONTAINS(warn_text(), "another program");
    CHECK(raw_int(p, "SELECT count(*) FROM sqlite_master WHERE name = 'kernels'") == 0, "tables added to a foreign file");
    CHECK(raw_int(p, "PRAGMA application_id") == 0, "application_id written into a foreign file");
    CHECK(header_byte18(p) == 1, "a foreign file was switched to WAL");
    fg_store_close(s);

    p = file("newer2.db");
    s = open_ok(p);
    fg_store_close(s);
    CHECK(raw_exec(p, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 99;") == SQLITE_OK, "bump");
    CHECK(header_byte18(p) == 1, "not in rollback mode to start with");
    reset_warn();
    s = open_ok(p);
    CHECK(fg_store_in_memory(s), "a newer file was used");
    CHECK(header_byte18(p) == 1, "a refused newer file was switched to WAL");
    fg_store_close(s);

    /* an empty file is ours to fill */
    p = file("empty.db");
    fclose(fopen(p, "w"));
    reset_warn();
    s = open_ok(p);
    CHECK(!fg_store_in_memory(s) && nwarn == 0, "an empty file was refused: %s", warnings);
    fg_store_close(s);
}

/* ---- item 12 ---------------------------------------------------------------- */

static void test_import_reads_wal(void) {
    fg_error e = {0};
    fg_store *a = open_ok(file("wa.db")); /* stays open: its rows live in wa.db-wal */
    fg_stored_kernel k = fake_kernel(5, 3000);
    fg_tuning t = tuning(CFG_A, 1.0);
    fg_store_put_kernel(a, "G", "wk", &k, &e);
    fg_store_put_tuning(a, "G", SPEC, "wal", &t, NULL, 0, NULL, &e);
    struct stat sb;
    CHECK(stat(file("wa.db-wal"), &sb) == 0 && sb.st_size > 0, "the rows are not in the WAL: the test tests nothing");
    fg_store *b = open_ok(file("wb.db"));
    const fg_import_opts trust = {1, NULL, NULL};
    fg_import_stats st;
    CHECK(fg_store_import(b, file("wa.db"), &trust, &st, &e) == FG_OK, "import: %s", e.msg);
    fg_error_clear(&e);
    CHECK(tuning_ms(b, "wal", NULL, NULL, 0), "import missed a tuning that lives in the source's WAL");
    CHECK(kernel_found(b, "wk", 3000, 5) == 1, "import missed a kernel that lives in the source's WAL");
    fg_store_close(b);
    fg_store_close(a);
    free(k.cubin);
}

static void test_hit_not_stalled_by_writer(void) {
    fg_error e = {0};
    const char *p = file("busy.db");
    fg_store *s = open_ok(p);
    fg_stored_kernel k = fake_kernel(4, 2000);
    fg_store_put_kernel(s, "G", "bk", &k, &e);
    CHECK(raw_exec(p, "UPDATE kernels SET last_used = 0") == SQLITE_OK, "age the row");
    sqlite3 *w;
    sqlite3_open(p, &w);
    CHECK(sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK, "writer lock");
    const double t0 = now_s();
    CHECK(kernel_found(s, "bk", 2000, 4) == 1, "a hit was lost to a busy writer");
    const double dt = now_s() - t0;
    CHECK(dt < 2.0, "a cache hit waited %.1f s for another writer (the last_used update)", dt);
    sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(w);
    fg_store_close(s);
    free(k.cubin);
}

static void test_import_unusable_location(void) {
    fg_error e = {0};
    fclose(fopen(file("plain"), "w"));
    fg_store *s = NULL;
    CHECK(fg_store_open_strict(file("plain/sub/c.db"), FG_STORE_CREATE, &s, &e) == FG_ERR_CACHE,
          "a store was opened under a regular file");
    fg_error_clear(&e);
    CHECK(fg_store_open_strict(file("new/sub/c.db"), FG_STORE_CREATE, &s, &e) == FG_OK, "create: %s", e.msg);
    fg_error_clear(&e);
    if (s) CHECK(!fg_store_in_memory(s), "FG_STORE_CREATE fell back to memory");
    fg_store_close(s);
    const int rc = cli("cache import '%s' --cache '%s' 2>/dev/null", file("kx.db"), file("plain/sub/c.db"));
    if (rc >= 0) CHECK(rc == 1, "flashgen cache import into an unusable location exited %d", rc);
}

typedef struct null_ud { int rows, nulls; } null_ud;
static void null_row(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud) {
    null_ud *u = ud;
    u->rows++;
    u->nulls += !gpu || !spec || !bucket || !t;
}

static void test_null_columns(void) {
    /* a file that passes integrity_check but has no NOT NULL constraints */
    const char *p = file("nulls.db");
    char sql[2048];
    snprintf(sql, sizeof sql,
             "PRAGMA application_id = 1179075377; PRAGMA user_version = %d;" /* 0x46474331, "FGC1" */
             "CREATE TABLE kernels(gpu, key, cubin, checksum, entry, threads, smem, registers, spill_stores, spill_loads,"
             " stack, static_smem, compile_s, log, created, last_used, verified, UNIQUE(gpu, key));"
             "CREATE TABLE tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created, UNIQUE(gpu, spec, bucket));"
             "CREATE TABLE tuning_candidates(gpu, spec, bucket, config, ms, note, UNIQUE(gpu, spec, bucket, config));"
             "INSERT INTO tunings VALUES(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
             "INSERT INTO tuning_candidates VALUES(NULL, NULL, NULL, NULL, NULL, NULL);"
             "INSERT INTO kernels(gpu, key, cubin, checksum) VALUES(NULL, NULL, NULL, NULL);",
             FG_STORE_SCHEMA_VERSION);
    CHECK(raw_exec(p, sql) == SQLITE_OK, "forge: %s", sql);
    fg_store *s = NULL;
    fg_error e = {0};
    /* the same tables without their UNIQUE keys: rows could repeat a key,
     * reads would return the first and writes append behind it (stale
     * forever), so the file is not taken as flashgen's */
    const char *pu = file("nounique.db");
    char sqlu[1024];
    snprintf(sqlu, sizeof sqlu,
             "PRAGMA application_id = 1179075377; PRAGMA user_version = %d;"
             "CREATE TABLE kernels(gpu, key, cubin, checksum, entry, threads, smem, registers, spill_stores, spill_loads,"
             " stack, static_smem, compile_s, log, created, last_used, verified);"
             "CREATE TABLE tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created);"
             "CREATE TABLE tuning_candidates(gpu, spec, bucket, config, ms, note);",
             FG_STORE_SCHEMA_VERSION);
    CHECK(raw_exec(pu, sqlu) == SQLITE_OK, "forge: %s", sqlu);
    CHECK(fg_store_open_strict(pu, FG_STORE_READ_ONLY, &s, &e) != FG_OK, "a file without unique keys was opened");
    CHECK_CONTAINS(e.msg ? e.msg : "", "unique keys");
    fg_error_clear(&e);
    s = NULL;
    CHECK(fg_store_open_strict(p, FG_STORE_READ_ONLY, &s, &e) == FG_OK, "open: %s", e.msg);
    fg_error_clear(&e);
    if (!s) return;
    CHECK(fg_store_check(s, &e) == FG_OK, "the forged file should pass integrity_check: %s", e.msg);
    fg_error_clear(&e);
    null_ud u = {0, 0};
    fg_store_each_tuning(s, NULL, null_row, &u, &e);
    fg_error_clear(&e);
    CHECK(u.rows == 1 && u.nulls == 0, "a listing passed NULL strings (%d rows, %d with NULL)", u.rows, u.nulls);
    fg_store_summary sum[4];
    int n = 0;
    CHECK(fg_store_summarise(s, sum, 4, &n, &e) == FG_OK, "summarise: %s", e.msg);
    fg_error_clear(&e);
    fg_store_close(s);
    int rc = cli("cache show --candidates --cache '%s' >/dev/null 2>&1", p);
    if (rc >= 0) CHECK(rc < 128, "flashgen cache show crashed (signal %d) on NULL columns", rc - 128);
    rc = cli("cache ls --cache '%s' >/dev/null 2>&1", p);
    if (rc >= 0) CHECK(rc < 128, "flashgen cache ls crashed (signal %d) on NULL columns", rc - 128);
}

/* In a child: drop root (which ignores permissions) and read the store at p
 * read-only; also `flashgen cache show`.  Exit 0 when every row is seen. */
static int read_only_child(const char *p, int want_rows) {
    if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
        fprintf(stderr, "note: cannot drop root here; the read-only folder is not read-only for this check\n");
    fg_store *s = NULL;
    fg_error e = {0};
    if (fg_store_open_strict(p, FG_STORE_READ_ONLY, &s, &e) != FG_OK) {
        fprintf(stderr, "read-only open of %s: %s\n", p, e.msg);
        return 21;
    }
    null_ud u = {0, 0};
    const int st = fg_store_each_tuning(s, NULL, null_row, &u, &e);
    if (st != FG_OK) fprintf(stderr, "read-only listing of %s: %s\n", p, e.msg);
    fg_store_close(s);
    if (st != FG_OK || u.rows != want_rows) return 22;
    const int rc = cli("cache show --cache '%s' >/dev/null", p);
    return rc > 0 ? 23 : 0;
}

static int in_child(const char *p, int want_rows) {
    const pid_t pid = fork();
    if (pid == 0) _exit(read_only_child(p, want_rows));
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static void test_read_only_folder(void) {
    fg_error e = {0};
    fg_tuning t = tuning(CFG_A, 1.0);
    /* closed cleanly: no -wal / -shm, the header still says WAL */
    CHECK(mkdir(file("ro1"), 0755) == 0, "mkdir");
    fg_store *s = open_ok(file("ro1/c.db"));
    fg_store_put_tuning(s, "G", SPEC, "ro", &t, NULL, 0, NULL, &e);
    fg_store_close(s);
    CHECK(header_byte18(file("ro1/c.db")) == 2, "not a WAL file");
    chmod(file("ro1"), 0555);
    int rc = in_child(file("ro1/c.db"), 1);
    CHECK(rc == 0, "a WAL cache in a read-only folder cannot be read (child %d)", rc);
    chmod(file("ro1"), 0755);
    /* a live writer: rows in the WAL, then the folder becomes read-only */
    CHECK(mkdir(file("ro2"), 0755) == 0, "mkdir");
    s = open_ok(file("ro2/c.db"));
    fg_store_put_tuning(s, "G", SPEC, "ro", &t, NULL, 0, NULL, &e);
    fg_store_put_tuning(s, "G", SPEC, "ro2", &t, NULL, 0, NULL, &e);
    chmod(file("ro2"), 0555);
    rc = in_child(file("ro2/c.db"), 2);
    CHECK(rc == 0, "a live WAL cache in a read-only folder cannot be read (child %d)", rc);
    chmod(file("ro2"), 0755);
    fg_store_close(s);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/fg_test_cache_trust_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    chmod(dir, 0755); /* the read-only test reads it as another user */
    if (!getenv("FLASHGEN_BIN")) printf("FLASHGEN_BIN not set: the flashgen CLI checks are skipped\n");
    test_imported_kernels_verified();
    test_tuning_rows_validated();
    test_cli_import_checks_configs();
    test_symlinked_wal();
    test_never_delete();
    test_identity_before_writing();
    test_import_reads_wal();
    test_hit_not_stalled_by_writer();
    test_import_unusable_location();
    test_null_columns();
    test_read_only_folder();
    return cache_test_finish("test_cache_trust");
}
