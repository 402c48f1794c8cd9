/* test_cache.c (cpu): the SQLite store and the tuner's candidate space.
 *
 * Identity mismatch, checksum mismatch, tuning merge rules, export/import,
 * migration from schema version 1, corrupt / truncated / foreign / newer /
 * unwritable files, two processes writing one file at once (with real NVRTC
 * compiles when NVRTC is present), candidate sets under the A100, H100 and
 * 99 KiB shared-memory limits, and every candidate rendering. */
#include <sqlite3.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autotune/candidates.h"
#include "cache/store.h"
#include "gen/compile.h"
#include "gen/render.h"
#include "select/heuristic.h"
#include "select/tuned.h"
#include "test_cache_util.h"

fg_status fg_store_create_at_version(const char *path, int version, fg_error *err);

static void test_kernels_and_identity(void) {
    const char *p = file("k.db");
    fg_store *s = open_ok(p);
    fg_error e = {0};
    fg_stored_kernel k = fake_kernel(7, 5000), got;
    CHECK(fg_store_put_kernel(s, "GPU-A|nvrtc=13.0|tpl=1", "key1", &k, &e) == FG_OK, "%s", e.msg);
    int found = 0;
    fg_store_get_kernel(s, "GPU-A|nvrtc=13.0|tpl=1", "key1", &got, &found, &e);
    CHECK(found && got.cubin_size == 5000 && !memcmp(got.cubin, k.cubin, 5000), "kernel round trip");
    CHECK(found && !strcmp(got.entry, "fg_fwd_7") && got.threads == 128 && got.smem_bytes == 65536 &&
          got.stats.registers == 168 && got.log && !strcmp(got.log, "ptxas info: fake"), "kernel fields");
    fg_stored_kernel_free(&got);
    /* another identity never sees it */
    fg_store_get_kernel(s, "GPU-B|nvrtc=13.0|tpl=1", "key1", &got, &found, &e);
    CHECK(!found, "a kernel of another GPU identity was returned");
    fg_store_get_kernel(s, "GPU-A|nvrtc=13.0|tpl=2", "key1", &got, &found, &e);
    CHECK(!found, "a kernel of another template hash was returned");
    /* a cubin altered on disk fails its checksum: dropped, never returned */
    CHECK(raw_exec(p, "UPDATE kernels SET cubin = zeroblob(5000) WHERE key = 'key1'") == SQLITE_OK, "raw update");
    reset_warn();
    fg_store_get_kernel(s, "GPU-A|nvrtc=13.0|tpl=1", "key1", &got, &found, &e);
    CHECK(!found, "a cubin failing its checksum was returned");
    CHECK_CONTAINS(warn_text(), "checksum");
    CHECK(raw_int(p, "SELECT count(*) FROM kernels") == 0, "the bad row was not deleted");
    /* evict */
    fg_store_put_kernel(s, "A", "k2", &k, &e);
    CHECK(fg_store_evict_kernel(s, "A", "k2", &e) == FG_OK, "evict");
    fg_store_get_kernel(s, "A", "k2", &got, &found, &e);
    CHECK(!found, "evicted kernel still there");
    free(k.cubin);
    fg_store_close(s);
}

typedef struct nest_ud { fg_store *s; int rows, cands; } nest_ud;
static void nest_cand(const fg_tune_row *r, void *ud) { (void)r; ((nest_ud *)ud)->cands++; }
static void nest_tuning(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud) {
    (void)t;
    nest_ud *u = ud;
    u->rows++;
    fg_store_each_candidate(u->s, gpu, spec, bucket, nest_cand, u, NULL); /* flashgen cache show --candidates */
}

static void test_tunings(void) {
    fg_store *s = open_ok(file("t.db"));
    fg_error e = {0};
    fg_tuning w = tuning(CFG_A, 1.0), got;
    fg_tune_row rows[2] = {{"", 1.0, ""}, {"", -1, "spills (64 B stack, 255 regs)"}};
    snprintf(rows[0].config, sizeof rows[0].config, "%s", CFG_A);
    snprintf(rows[1].config, sizeof rows[1].config, "%s", CFG_B);
    int kept = -1, found = 0;
    CHECK(fg_store_put_tuning(s, "G", SPEC, "sq2048,sk2048", &w, rows, 2, &kept, &e) == FG_OK && kept == 0, "put");
    fg_store_get_tuning(s, "G", SPEC, "sq2048,sk2048", &got, &found, &e);
    CHECK(found && !strcmp(got.config, CFG_A) && got.ms == 1.0, "tuning round trip");
    fg_store_get_tuning(s, "H", SPEC, "sq2048,sk2048", &got, &found, &e);
    CHECK(!found, "a tuning of another identity was returned");
    fg_store_get_tuning(s, "G", SPEC, "sq4096,sk4096", &got, &found, &e);
    CHECK(!found, "a tuning of another bucket was returned");
    /* a slower result never replaces a faster one */
    fg_tuning slow = tuning(CFG_B, 1.5);
    fg_store_put_tuning(s, "G", SPEC, "sq2048,sk2048", &slow, rows, 1, &kept, &e);
    fg_store_get_tuning(s, "G", SPEC, "sq2048,sk2048", &got, &found, &e);
    CHECK(kept == 1 && !strcmp(got.config, CFG_A), "slower result replaced a faster one");
    fg_tuning fast = tuning(CFG_B, 0.8);
    fg_store_put_tuning(s, "G", SPEC, "sq2048,sk2048", &fast, rows, 2, &kept, &e);
    fg_store_get_tuning(s, "G", SPEC, "sq2048,sk2048", &got, &found, &e);
    CHECK(kept == 0 && !strcmp(got.config, CFG_B) && got.ms == 0.8, "faster result not stored");
    CHECK(raw_int(file("t.db"), "SELECT count(*) FROM tuning_candidates") == 2, "candidates not stored");
    nest_ud u = {s, 0, 0};
    CHECK(fg_store_each_tuning(s, NULL, nest_tuning, &u, &e) == FG_OK && u.rows == 1 && u.cands == 2,
          "listing candidates inside a tuning listing: rows %d cands %d", u.rows, u.cands);
    fg_store_close(s);
}

static void test_export_import(void) {
    fg_error e = {0};
    fg_store *a = open_ok(file("a.db")), *b = open_ok(file("b.db"));
    fg_stored_kernel k1 = fake_kernel(1, 3000), k2 = fake_kernel(2, 4000);
    fg_store_put_kernel(a, "G", "k1", &k1, &e);
    fg_store_put_kernel(a, "G", "k2", &k2, &e);
    fg_store_put_kernel(b, "G", "k1", &k1, &e);
    fg_tune_row r = {"", 1.0, ""};
    fg_tuning t1 = tuning(CFG_A, 1.0), t2 = tuning(CFG_A, 2.0), t3 = tuning(CFG_B, 3.0);
    fg_store_put_tuning(a, "G", SPEC, "sq512,sk512", &t1, &r, 1, NULL, &e);  /* a faster: b takes it */
    fg_store_put_tuning(a, "G", SPEC, "sq1024,sk1024", &t3, &r, 1, NULL, &e); /* a slower: b keeps its own */
    fg_store_put_tuning(a, "G", SPEC, "sq2048,sk2048", &t2, &r, 1, NULL, &e); /* b has none: added */
    fg_tuning bt1 = tuning(CFG_B, 1.2), bt2 = tuning(CFG_A, 1.0);
    fg_store_put_tuning(b, "G", SPEC, "sq512,sk512", &bt1, &r, 1, NULL, &e);
    fg_store_put_tuning(b, "G", SPEC, "sq1024,sk1024", &bt2, &r, 1, NULL, &e);
    const char *x = file("export.db");
    CHECK(fg_store_export(a, x, &e) == FG_OK, "export: %s", e.msg);
    fg_error_clear(&e);
    CHECK(fg_store_export(a, x, &e) == FG_ERR_CACHE, "export overwrote an existing file");
    fg_error_clear(&e);
    /* the copy appears whole under its name, no temporary beside it, and
     * its kernels unverified (put in place as a cache, each is compiled
     * once more there before it runs) */
    char tmpname[4200];
    snprintf(tmpname, sizeof tmpname, "%s.tmp-%ld", x, (long)getpid());
    struct stat tsb;
    CHECK(stat(tmpname, &tsb) != 0, "export left %s", tmpname);
    CHECK(raw_int(x, "SELECT count(*) FROM kernels") == 2 && raw_int(x, "SELECT count(*) FROM kernels WHERE verified") == 0,
          "exported kernels: %d, verified %d", raw_int(x, "SELECT count(*) FROM kernels"),
          raw_int(x, "SELECT count(*) FROM kernels WHERE verified"));
    CHECK(raw_exec(x, "UPDATE kernels SET last_used = 1000") == SQLITE_OK, "age the export");
    fg_import_stats st;
    const fg_import_opts trust = {1, NULL, NULL}; /* kernels used as they are (test_cache_trust: without) */
    CHECK(fg_store_import(b, x, &trust, &st, &e) == FG_OK, "import: %s", e.msg);
    fg_error_clear(&e);
    CHECK(st.kernels_added == 1 && st.kernels_present == 1, "kernels added %d present %d", st.kernels_added,
          st.kernels_present);
    CHECK(st.tunings_added == 1 && st.tunings_improved == 1 && st.tunings_kept == 1, "tunings %d/%d/%d",
          st.tunings_added, st.tunings_improved, st.tunings_kept);
    fg_tuning got;
    int found;
    fg_store_get_tuning(b, "G", SPEC, "sq512,sk512", &got, &found, &e);
    CHECK(found && got.ms == 1.0 && !strcmp(got.config, CFG_A), "faster imported result not taken");
    fg_store_get_tuning(b, "G", SPEC, "sq1024,sk1024", &got, &found, &e);
    CHECK(found && got.ms == 1.0 && !strcmp(got.config, CFG_A), "slower imported result replaced ours");
    fg_store_get_tuning(b, "G", SPEC, "sq2048,sk2048", &got, &found, &e);
    CHECK(found && got.ms == 2.0, "new imported result missing");
    fg_stored_kernel gk;
    fg_store_get_kernel(b, "G", "k2", &gk, &found, &e);
    CHECK(found && gk.cubin_size == 4000, "imported kernel missing");
    fg_stored_kernel_free(&gk);
    /* imported rows count as used now, not when the exporter last used
     * them: a prune right after an import keeps them */
    const int age = raw_int(file("b.db"), "SELECT strftime('%s', 'now') - last_used FROM kernels WHERE key = 'k2'");
    CHECK(age >= 0 && age < 600, "imported kernel's last use %d s ago", age);
    /* importing garbage: an error, and ours is untouched */
    FILE *f = fopen(file("garbage.db"), "wb");
    for (int i = 0; i < 9000; ++i) fputc(i * 7 % 251, f);
    fclose(f);
    CHECK(fg_store_import(b, file("garbage.db"), NULL, &st, &e) == FG_ERR_CACHE, "garbage imported");
    CHECK_CONTAINS(e.msg, "garbage.db");
    fg_error_clear(&e);
    CHECK(fg_store_check(b, &e) == FG_OK, "store damaged by a failed import: %s", e.msg);
    fg_error_clear(&e);
    fg_store_get_tuning(b, "G", SPEC, "sq2048,sk2048", &got, &found, &e);
    CHECK(found, "rows lost after a failed import");
    free(k1.cubin);
    free(k2.cubin);
    fg_store_close(a);
    fg_store_close(b);
}

static void test_migration(void) {
    const char *p = file("v1.db");
    fg_error e = {0};
    CHECK(fg_store_create_at_version(p, 1, &e) == FG_OK, "create v1: %s", e.msg);
    fg_error_clear(&e);
    CHECK(raw_int(p, "PRAGMA user_version") == 1, "not at version 1");
    CHECK(raw_exec(p, "INSERT INTO kernels(gpu, key, cubin, checksum, entry, threads, smem, created)"
                      " VALUES('G', 'old', x'0102030405', 0, 'e', 128, 1024, 1700000000);"
                      "INSERT INTO tunings(gpu, spec, bucket, config, ms, heuristic_ms, shape, created)"
                      " VALUES('G', 'hdim=128,dtype=bf16,causal=0,sparse=0,path=auto', 'sq512,sk512',"
                      " 'wgmma=1,block_m=64,block_n=128,warps=4,stages=1,q_in_regs=0,min_blocks=1', 0.5, 0.6, '', 1700000000);") ==
              SQLITE_OK, "fill v1");
    fg_store *s = open_ok(p);
    CHECK(raw_int(p, "PRAGMA user_version") == FG_STORE_SCHEMA_VERSION, "not migrated");
    CHECK(raw_int(p, "SELECT last_used FROM kernels WHERE key = 'old'") == 1700000000, "last_used not migrated");
    CHECK(raw_int(p, "SELECT count(*) FROM tuning_candidates") == 0, "new table missing");
    fg_tuning got;
    int found = 0;
    fg_store_get_tuning(s, "G", "hdim=128,dtype=bf16,causal=0,sparse=0,path=auto", "sq512,sk512", &got, &found, &e);
    CHECK(found && got.ms == 0.5, "v1 tuning lost in migration");
    fg_store_close(s);
    CHECK(count_aside("v1.db") == 0, "a migrated file was moved aside");
}

static void test_bad_files(void) {
    fg_error e = {0};
    /* random bytes: not a SQLite file at all (a mistyped FLASHGEN_CACHE
     * naming someone's file), so not flashgen's to move: left as it is */
    const char *p = file("notdb.db");
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 20000; ++i) fputc((i * 131 + 17) % 256, f);
    fclose(f);
    reset_warn();
    fg_store *s = open_ok(p);
    CHECK(nwarn == 1, "expected one warning, got %d: %s", nwarn, warnings);
    CHECK_CONTAINS(warn_text(), "not a SQLite database");
    CHECK(count_aside("notdb.db") == 0, "a file that is not a database was moved aside");
    CHECK(fg_store_in_memory(s), "a file that is not a database was used");
    struct stat nb;
    CHECK(stat(p, &nb) == 0 && nb.st_size == 20000, "the file was changed");
    fg_store_close(s);

    /* a SQLite header followed by random bytes: a corrupt database, moved aside */
    p = file("corrupt.db");
    f = fopen(p, "wb");
    fwrite("SQLite format 3", 1, 16, f);
    for (int i = 16; i < 20000; ++i) fputc((i * 131 + 17) % 256, f);
    fclose(f);
    reset_warn();
    s = open_ok(p);
    CHECK(nwarn == 1, "expected one warning, got %d: %s", nwarn, warnings);
    CHECK_CONTAINS(warn_text(), "corrupt");
    CHECK(count_aside("corrupt.db") == 1, "corrupt file not moved aside");
    CHECK(!fg_store_in_memory(s), "rebuilt store should be the file");
    fg_stored_kernel k = fake_kernel(3, 100000), got;
    CHECK(fg_store_put_kernel(s, "G", "k", &k, &e) == FG_OK, "rebuilt store unusable: %s", e.msg);
    fg_store_close(s);

    /* truncated: a file with 40 kernels cut in half */
    p = file("trunc.db");
    s = open_ok(p);
    for (int i = 0; i < 40; ++i) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        ((unsigned char *)k.cubin)[0] = (unsigned char)i;
        fg_store_put_kernel(s, "G", key, &k, &e);
    }
    fg_store_close(s); /* checkpoints the WAL into the file */
    struct stat sb;
    stat(p, &sb);
    CHECK(sb.st_size > 2000000, "file too small to truncate (%lld)", (long long)sb.st_size);
    CHECK(truncate(p, sb.st_size / 2) == 0, "truncate");
    reset_warn();
    s = open_ok(p);
    int found = 0, wrong = 0;
    for (int i = 0; i < 40; ++i) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        fg_store_get_kernel(s, "G", key, &got, &found, &e);
        if (found && (got.cubin_size != 100000 || ((unsigned char *)got.cubin)[0] != (unsigned char)i)) ++wrong;
        fg_stored_kernel_free(&got);
    }
    CHECK(wrong == 0, "a truncated file returned %d wrong kernels", wrong);
    CHECK(nwarn >= 1 && count_aside("trunc.db") == 1, "truncation not detected (%d warnings: %s)", nwarn, warnings);
    CHECK(fg_store_put_kernel(s, "G", "after", &k, &e) == FG_OK, "store unusable after truncation: %s", e.msg);
    fg_store_close(s);

    /* another program's SQLite file: never touched */
    p = file("foreign.db");
    CHECK(raw_exec(p, "CREATE TABLE notes(x); INSERT INTO notes VALUES(42); PRAGMA user_version = 3;") == SQLITE_OK, "foreign");
    reset_warn();
    s = open_ok(p);
    CHECK(fg_store_in_memory(s) && nwarn == 1, "a foreign database was used (%d warnings)", nwarn);
    CHECK_CONTAINS(warn_text(), "another program");
    CHECK(raw_int(p, "SELECT x FROM notes") == 42 && count_aside("foreign.db") == 0, "a foreign database was modified");
    fg_store_close(s);

    /* a newer flashgen's file: not downgraded, not moved */
    p = file("newer.db");
    s = open_ok(p);
    fg_store_close(s);
    CHECK(raw_exec(p, "PRAGMA user_version = 99") == SQLITE_OK, "bump");
    reset_warn();
    s = open_ok(p);
    CHECK(fg_store_in_memory(s) && nwarn == 1, "a newer file was used");
    CHECK_CONTAINS(warn_text(), "newer flashgen");
    CHECK(raw_int(p, "PRAGMA user_version") == 99, "a newer file was changed");
    fg_store_close(s);

    /* unwritable location (the parent is a regular file) */
    f = fopen(file("plainfile"), "w");
    fclose(f);
    reset_warn();
    s = open_ok(file("plainfile/sub/cache.db"));
    CHECK(s && fg_store_in_memory(s) && nwarn == 1, "unwritable location: memory=%d warnings=%d", s ? fg_store_in_memory(s) : -1, nwarn);
    CHECK_CONTAINS(warn_text(), "in-memory");
    CHECK(fg_store_put_kernel(s, "G", "k", &k, &e) == FG_OK, "memory store unusable");
    fg_store_get_kernel(s, "G", "k", &got, &found, &e);
    CHECK(found, "memory store lost a kernel");
    fg_stored_kernel_free(&got);
    fg_store_close(s);

    /* "off" */
    reset_warn();
    s = open_ok("off");
    CHECK(fg_store_in_memory(s) && nwarn == 0, "off");
    fg_store_close(s);
    free(k.cubin);
}

/* Two processes compile and write into one file at once. */
static int child(const char *p, int id, int with_nvrtc) {
    fg_store *s;
    fg_error e = {0};
    if (fg_store_open(p, NULL, NULL, &s, &e) != FG_OK || fg_store_in_memory(s)) return 10;
    int bad = 0;
    fg_sources src;
    if (with_nvrtc && fg_sources_load(&src, &e) == FG_OK) {
        /* a real compile, different per process, written while the other writes */
        fg_variant v;
        fg_causal cz;
        fg_spec_parse(id ? "hdim=64,dtype=bf16,block_m=64,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1,wgmma=0"
                         : "hdim=64,dtype=fp16,block_m=64,block_n=64,warps=4,stages=2,q_in_regs=0,min_blocks=1,wgmma=0",
                      &v, &cz, &e);
        fg_rendered r;
        fg_cubin cb;
        if (fg_render_forward(&src, &v, "k", &r, &e) != FG_OK || fg_compile_cubin(&src, r.source, "sm_80", "k", &cb, &e) != FG_OK)
            return 11;
        fg_stored_kernel k = {cb.data, cb.size, "", r.threads, r.smem_bytes, cb.stats, cb.log};
        snprintf(k.entry, sizeof k.entry, "%s", r.kernel);
        bad |= fg_store_put_kernel(s, "G", id ? "real1" : "real0", &k, &e) != FG_OK;
        fg_cubin_free(&cb);
        fg_rendered_free(&r);
        fg_sources_free(&src);
    }
    fg_stored_kernel k = fake_kernel((unsigned char)(id + 1), 20000);
    fg_tune_row row = {"", 1.0, ""};
    snprintf(row.config, sizeof row.config, "%s", CFG_A);
    for (int i = 0; i < 60; ++i) {
        char key[32], bucket[32];
        snprintf(key, sizeof key, i < 10 ? "shared%d" : "p%d-%d", i < 10 ? i : id, i);
        bad |= fg_store_put_kernel(s, "G", key, &k, &e) != FG_OK;
        snprintf(bucket, sizeof bucket, "b%d", i % 20);
        fg_tuning t = tuning(CFG_A, 1.0 + id + i * 0.01);
        bad |= fg_store_put_tuning(s, "G", SPEC, bucket, &t, &row, 1, NULL, &e) != FG_OK;
    }
    if (bad) fprintf(stderr, "child %d: %s\n", id, e.msg ? e.msg : "?");
    free(k.cubin);
    fg_store_close(s);
    return bad ? 12 : 0;
}

static void test_two_processes(void) {
    const char *p = file("shared.db");
    fg_nvrtc_info nv;
    fg_error e = {0};
    const int with_nvrtc = fg_nvrtc_load(&nv, &e) == FG_OK;
    fg_error_clear(&e);
    pid_t pid[2];
    for (int i = 0; i < 2; ++i)
        if ((pid[i] = fork()) == 0) _exit(child(p, i, with_nvrtc));
    for (int i = 0; i < 2; ++i) {
        int status = 0;
        waitpid(pid[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed (status %d)", i, status);
    }
    fg_store *s;
    CHECK(fg_store_open_strict(p, 1, &s, &e) == FG_OK, "%s", e.msg);
    CHECK(fg_store_check(s, &e) == FG_OK, "integrity_check after two writers: %s", e.msg);
    fg_error_clear(&e);
    fg_store_close(s);
    CHECK(raw_int(p, "SELECT count(*) FROM kernels") == 10 + 2 * 50 + 2 * with_nvrtc, "kernels: %d",
          raw_int(p, "SELECT count(*) FROM kernels"));
    CHECK(raw_int(p, "SELECT count(*) FROM tunings") == 20, "tunings: %d", raw_int(p, "SELECT count(*) FROM tunings"));
    /* each bucket keeps the fastest of both writers: process 0's times are lower */
    CHECK(raw_int(p, "SELECT count(*) FROM tunings WHERE ms >= 2.0") == 0, "a slower writer replaced a faster result");
    printf("two writers: %s NVRTC compiles, integrity ok\n", with_nvrtc ? "with" : "without");
}

static int in_set(const fg_config *set, int n, const fg_config *c) {
    for (int i = 0; i < n; ++i)
        if (!memcmp(&set[i], c, sizeof *c)) return 1;
    return 0;
}

static void test_candidates_by_sram(void) {
    const int A100 = 163 * 1024, H100 = 227 * 1024, SMALL = 99 * 1024;
    const int hds[] = {64, 128, 256};
    for (int h = 0; h < 3; ++h) {
        fg_spec s = {hds[h], FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
        static fg_config a[512], b[512], c[512], hw[512];
        const int na = fg_tune_candidates(&s, A100, 0, 0, 0, 0, a, 512);
        const int nb = fg_tune_candidates(&s, H100, 0, 0, 0, 0, b, 512);
        const int nc = fg_tune_candidates(&s, SMALL, 0, 0, 0, 0, c, 512);
        const int nw = fg_tune_candidates(&s, H100, 0, 0, 1, 0, hw, 512);
        int over = 0, sub = 1;
        for (int i = 0; i < nb; ++i) over |= fg_config_smem_bytes(&s, &b[i]) > H100;
        for (int i = 0; i < na; ++i) over |= fg_config_smem_bytes(&s, &a[i]) > A100;
        for (int i = 0; i < nc; ++i) over |= fg_config_smem_bytes(&s, &c[i]) > SMALL;
        for (int i = 0; i < nc; ++i) sub &= in_set(a, na, &c[i]);
        for (int i = 0; i < na; ++i) sub &= in_set(b, nb, &a[i]);
        CHECK(!over, "hdim %d: a candidate exceeds its shared-memory limit", hds[h]);
        CHECK(sub, "hdim %d: the smaller limit's set is not inside the larger one's", hds[h]);
        CHECK(nc <= na && na <= nb, "hdim %d: sets do not grow with SRAM (99K %d, A100 %d, H100 %d)", hds[h], nc, na, nb);
        if (hds[h] >= 128) CHECK(nc < na && na < nb, "hdim %d: sets should differ (99K %d, A100 %d, H100 %d)", hds[h], nc, na, nb);
        CHECK(nw > nb, "hdim %d: wgmma adds no candidates on H100", hds[h]);
        printf("hdim %3d candidates: 99 KiB %d, A100 %d, H100 %d (+wgmma %d)\n", hds[h], nc, na, nb, nw);
        /* each set holds every candidate of its limit: nothing dropped that fits */
        for (int i = 0; i < nb; ++i) {
            const int smem = fg_config_smem_bytes(&s, &b[i]);
            CHECK((smem <= A100) == in_set(a, na, &b[i]), "hdim %d: A100 set wrong for smem %d", hds[h], smem);
            CHECK((smem <= SMALL) == in_set(c, nc, &b[i]), "hdim %d: 99K set wrong for smem %d", hds[h], smem);
        }
    }
    /* a known case each way */
    fg_spec s256 = {256, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL}, s128 = {128, FG_BF16, 0, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
    fg_config k1 = {128, 64, 8, 2, 0, 1, 0, 0}; /* 202752 B at hdim 256 */
    static fg_config x[512];
    int n = fg_tune_candidates(&s256, H100, 0, 0, 0, 0, x, 512);
    CHECK(in_set(x, n, &k1), "hdim 256 128x64x2 missing on H100");
    n = fg_tune_candidates(&s256, A100, 0, 0, 0, 0, x, 512);
    CHECK(!in_set(x, n, &k1), "hdim 256 128x64x2 (202752 B) offered on A100");
    fg_config k2 = {128, 64, 4, 2, 0, 1, 0, 0}; /* 104448 B at hdim 128 */
    n = fg_tune_candidates(&s128, A100, 0, 0, 0, 0, x, 512);
    CHECK(in_set(x, n, &k2), "hdim 128 128x64x2 missing on A100");
    n = fg_tune_candidates(&s128, SMALL, 0, 0, 0, 0, x, 512);
    CHECK(!in_set(x, n, &k2), "hdim 128 128x64x2 (104448 B) offered at 99 KiB");
}

/* Every candidate the tuner may compile renders, and the template's shared
 * memory agrees with the C formula the SRAM pruning uses: fp16, bf16 and
 * e4m3 (FP8's own formula, smem_bytes_fp8), value head dims equal and
 * narrower. */
static void test_candidates_render(void) {
    fg_sources src;
    fg_error e = {0};
    CHECK(fg_sources_load(&src, &e) == FG_OK, "%s", e.msg);
    int rendered = 0;
    const int hds[] = {64, 128, 256, 96};
    const fg_dtype dts[] = {FG_FP16, FG_BF16, FG_E4M3};
    for (int h = 0; h < 4; ++h)
        for (int dt = 0; dt < 3; ++dt)
            for (int causal = 0; causal < 2; ++causal)
                for (int narrow = 0; narrow < 2; ++narrow) {
                    if (narrow && dts[dt] != FG_E4M3) continue; /* 16-bit head_dim_v pairs: test_head_dim_v */
                    fg_spec s = {hds[h], dts[dt], causal, 0, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
                    if (dts[dt] == FG_E4M3) {
                        s.out_dtype = FG_BF16;
                        if (narrow) s.head_dim_v = hds[h] / 2; /* a multiple of 16 */
                    }
                    static fg_config c[512];
                    /* wgmma_ok 2 (sm_90a): the TMA family too, FP8's only one */
                    const int n = fg_tune_candidates(&s, 227 * 1024, 0, 0, 2, 0, c, 512);
                    CHECK(dts[dt] != FG_E4M3 || n > 0, "hdim %d e4m3: no candidates", hds[h]);
                    for (int i = 0; i < n; ++i) {
                        fg_variant v = {s, c[i]};
                        fg_rendered r;
                        char txt[256];
                        fg_variant_format(&v, txt, sizeof txt);
                        fg_status st = fg_render_forward(&src, &v, "k", &r, &e);
                        CHECK(st == FG_OK, "%s: %s", txt, e.msg);
                        fg_error_clear(&e);
                        if (st != FG_OK) continue;
                        CHECK(r.smem_bytes == fg_config_smem_bytes(&s, &c[i]), "%s: template %d B, C %d B", txt,
                              r.smem_bytes, fg_config_smem_bytes(&s, &c[i]));
                        fg_rendered_free(&r);
                        ++rendered;
                    }
                }
    printf("rendered %d tuning candidates\n", rendered);
    fg_sources_free(&src);
}

static void test_keys(void) {
    char b[64];
    fg_shape_bucket(1000, 5000, b, sizeof b);
    CHECK(!strcmp(b, "sq1024,sk8192"), "%s", b);
    fg_shape_bucket(1, 100000, b, sizeof b);
    CHECK(!strcmp(b, "sq128,sk16384"), "%s", b);
    fg_shape_bucket(512, 512, b, sizeof b);
    CHECK(!strcmp(b, "sq512,sk512"), "%s", b);
    fg_spec s = {128, FG_BF16, 1, 1, {{0}}, NULL, NULL, 0, 0, 0, 0, {{0}}, NULL, NULL, 0, NULL};
    char t[160];
    fg_tuning_spec_text(&s, FG_PATH_MMA, 128, 64, t, sizeof t);
    CHECK(!strcmp(t, "hdim=128,dtype=bf16,causal=1,sparse=1,path=mma,layout=128x64"), "%s", t);
    fg_config c = {64, 128, 4, 1, 0, 1, 1, 0}, d;
    char txt[192];
    fg_config_format(&c, txt, sizeof txt);
    CHECK(fg_config_parse(txt, &d, NULL) == FG_OK && !memcmp(&c, &d, sizeof c), "config round trip: %s", txt);
    fg_error e = {0};
    CHECK(fg_config_parse("block_m=64", &d, &e) != FG_OK, "incomplete config accepted");
    fg_error_clear(&e);
    CHECK(fg_config_parse("wgmma=1,block_m=64,block_n=128,warps=4,stages=1,q_in_regs=0,min_blocks=1,evil=1", &d, &e) != FG_OK,
          "unknown key accepted");
    fg_error_clear(&e);
}

/* A rollback-journal file that another connection keeps reading: the
 * switch to WAL waits about 15 s in all, then the store falls back to
 * memory with a warning (it once retried 100 times under a 30 s busy
 * timeout each: ~50 minutes without a word). */
static void test_busy_wal_switch(void) {
    const char *p = file("rollback.db");
    fg_store *s = open_ok(p);
    fg_store_close(s);
    CHECK(raw_exec(p, "PRAGMA journal_mode = DELETE") == SQLITE_OK, "to rollback mode");
    sqlite3 *reader = NULL;
    CHECK(sqlite3_open(p, &reader) == SQLITE_OK, "reader");
    CHECK(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM kernels;", NULL, NULL, NULL) == SQLITE_OK, "read lock");
    reset_warn();
    const time_t t0 = time(NULL);
    s = open_ok(p);
    const long took = (long)(time(NULL) - t0);
    CHECK(took < 40, "opening waited %ld s", took);
    CHECK(s && fg_store_in_memory(s) && nwarn == 1, "in memory with one warning (%d: %s)", nwarn, warnings);
    fg_store_close(s);
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(reader);
    printf("busy WAL switch: gave up after %ld s\n", took);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/fg_test_cache_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_keys();
    test_kernels_and_identity();
    test_tunings();
    test_export_import();
    test_migration();
    test_bad_files();
    test_two_processes();
    test_candidates_by_sram();
    test_candidates_render();
    test_busy_wal_switch();
    return cache_test_finish("test_cache");
}
