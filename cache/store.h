/* store.h: the persistent store, one SQLite file.
 *
 * Two kinds of rows, both tagged with the GPU identity they came from
 * (fg_store_identity below: device name, compute capability, SM count,
 * driver, NVRTC version, template hash).  A row of another identity is never used.
 *   kernels:  variant key -> cubin (with an FNV-1a checksum against damage,
 *             not forgery), entry name, threads, shared memory, ptxas stats,
 *             NVRTC log, compile time, and whether it is verified: compiled
 *             here, or imported with --trust-kernels.  An unverified row is
 *             never handed out (docs/CACHE.md has the trust model).
 *   tunings:  (spec, shape bucket) -> the chosen configuration, its time, the
 *             heuristic's time, and every candidate's time (tuning_candidates)
 *
 * The file: $FLASHGEN_CACHE, else $XDG_CACHE_HOME/flashgen/cache.db, else
 * ~/.cache/flashgen/cache.db; "off" or ":memory:" keeps it in memory.
 * WAL journal, a busy timeout, every write in one transaction, prepared
 * statements kept open.  Nothing is written to a file before its identity
 * is read: an empty file or one of ours (application_id "FGC1"); another
 * program's database or a newer flashgen's file is left untouched.  A
 * location that cannot be used falls back to an in-memory store with one
 * warning.  A file that SQLite reports corrupt (at open or on any later
 * statement) is renamed aside with a warning and rebuilt empty; nothing is
 * ever deleted (a file that cannot be renamed stays, and memory is used); a
 * cubin whose checksum does not match is dropped.  Schema changes are
 * migrations numbered by PRAGMA user_version.
 *
 * All functions are thread-safe (one mutex per store). */
#ifndef FG_STORE_H
#define FG_STORE_H
#include <stddef.h>
#include <stdint.h>

#include "gen/error.h"
#include "gen/spec.h"
#include "gen/compile.h"

#define FG_STORE_SCHEMA_VERSION 3

/* A GPU identity: "<name>|cc=M.m|sms=N|driver=V" + fg_store_build_suffix.
 * The suffix is the part this build determines ("|nvrtc=13.0|tpl=<hash>");
 * `flashgen cache prune` keeps the rows that end with it. */
void fg_store_build_suffix(int nvrtc_major, int nvrtc_minor, const char *tpl_hash, char *buf, size_t n);
void fg_store_identity(const char *gpu_name, int cc_major, int cc_minor, int sms, int driver, int nvrtc_major,
                       int nvrtc_minor, const char *tpl_hash, char *buf, size_t n);

typedef struct fg_store fg_store;

/* Warnings (corrupt file moved aside, fallback to memory) go here; the
 * default prints "flashgen: warning: ..." to stderr. */
typedef void (*fg_store_warn_fn)(const char *msg, void *ud);

/* Opens (creating, migrating) the store at path; NULL means the default
 * location above.  Fails only for out of memory: any other problem ends in
 * a working in-memory store and a warning. */
fg_status fg_store_open(const char *path, fg_store_warn_fn warn, void *warn_ud, fg_store **out, fg_error *err);
/* Opens a file only as it is (no fallback, no move-aside); for the CLI's
 * commands and for import.  FG_ERR_CACHE on any problem.  mode: */
enum {
    FG_STORE_WRITE = 0,     /* an existing file, read and written */
    FG_STORE_READ_ONLY = 1, /* an existing file, never written */
    FG_STORE_CREATE = 2     /* read and written, created (with its folder) when missing */
};
fg_status fg_store_open_strict(const char *path, int mode, fg_store **out, fg_error *err);
void fg_store_close(fg_store *s);
/* The file in use, or ":memory:". */
const char *fg_store_path(const fg_store *s);
/* The same, copied into buf under the store's lock: for callers outside a
 * store operation (a store found corrupt mid-use may free its path as it
 * falls back to memory, under that lock). */
void fg_store_path_copy(fg_store *s, char *buf, size_t n);
int fg_store_in_memory(const fg_store *s);
/* The default file location (for --help texts); buf gets "" if unknown. */
void fg_store_default_path(char *buf, size_t n);

/* ---- kernels ------------------------------------------------------------ */
typedef struct fg_stored_kernel {
    void *cubin;
    size_t cubin_size;
    char entry[64];
    int threads, smem_bytes;
    fg_kernel_stats stats;
    char *log; /* may be NULL */
} fg_stored_kernel;

/* *found = 0 on a miss (or a checksum mismatch, which also deletes the row). */
fg_status fg_store_get_kernel(fg_store *s, const char *gpu, const char *key, fg_stored_kernel *out, int *found,
                              fg_error *err);
fg_status fg_store_put_kernel(fg_store *s, const char *gpu, const char *key, const fg_stored_kernel *k, fg_error *err);
fg_status fg_store_evict_kernel(fg_store *s, const char *gpu, const char *key, fg_error *err);
void fg_stored_kernel_free(fg_stored_kernel *k);

/* ---- tunings ------------------------------------------------------------ */
typedef struct fg_tune_row {
    char config[192];  /* fg_config_format text */
    double ms;         /* median time; < 0 when it failed */
    char note[96];     /* why it failed / was pruned ("" when timed) */
} fg_tune_row;

typedef struct fg_tuning {
    char config[192];
    double ms, heuristic_ms;
    char shape[64];    /* the shape it was timed on: "b8 h16 sq2048 sk2048" */
    int64_t created;
} fg_tuning;

fg_status fg_store_get_tuning(fg_store *s, const char *gpu, const char *spec, const char *bucket, fg_tuning *out,
                              int *found, fg_error *err);
/* Stores a winner and every candidate's row in one transaction.  An existing
 * winner that is faster than w->ms is kept (never replaced by a slower one);
 * *kept tells which happened (may be NULL). */
fg_status fg_store_put_tuning(fg_store *s, const char *gpu, const char *spec, const char *bucket, const fg_tuning *w,
                              const fg_tune_row *rows, int nrows, int *kept, fg_error *err);

/* ---- maintenance (flashgen cache ...) ------------------------------------ */
typedef struct fg_store_summary {
    char gpu[256];
    int kernels, tunings;
    int64_t cubin_bytes;
} fg_store_summary;
/* One summary per identity, into out[max]; returns the count via *n. */
fg_status fg_store_summarise(fg_store *s, fg_store_summary *out, int max, int *n, fg_error *err);
/* Calls fn for every tuning row (gpu filter may be NULL). */
typedef void (*fg_store_tuning_fn)(const char *gpu, const char *spec, const char *bucket, const fg_tuning *t, void *ud);
fg_status fg_store_each_tuning(fg_store *s, const char *gpu, fg_store_tuning_fn fn, void *ud, fg_error *err);
/* Candidate rows of one (gpu, spec, bucket), fastest first. */
typedef void (*fg_store_row_fn)(const fg_tune_row *r, void *ud);
fg_status fg_store_each_candidate(fg_store *s, const char *gpu, const char *spec, const char *bucket,
                                  fg_store_row_fn fn, void *ud, fg_error *err);
/* Writes a consistent copy of the whole store to file (must not exist). */
fg_status fg_store_export(fg_store *s, const char *file, fg_error *err);
typedef struct fg_import_stats {
    int kernels_added, kernels_present;
    int tunings_added, tunings_improved, tunings_kept;
    int tunings_rejected; /* time not > 0 and finite, or a configuration refused */
} fg_import_stats;
/* Says whether config (fg_config_format text) is one the variant of spec
 * (fg_tuning_spec_text) accepts; 0 rejects the row. */
typedef int (*fg_store_config_check_fn)(const char *spec, const char *config, void *ud);
typedef struct fg_import_opts {
    int trust_kernels;              /* 1: imported kernels are used as they are */
    fg_store_config_check_fn check; /* may be NULL: the config only has to parse */
    void *check_ud;
} fg_import_opts;
/* Merges file into s: new kernels are added; a tuning replaces ours only
 * when it is faster.  file is opened read-only and checked first
 * (PRAGMA integrity_check, schema version). opts may be NULL (defaults). */
fg_status fg_store_import(fg_store *s, const char *file, const fg_import_opts *opts, fg_import_stats *st,
                          fg_error *err);
/* Deletes rows whose identity does not end with keep_suffix ("|nvrtc=..|tpl=..":
 * made by another build, never usable by this one; NULL keeps all) and
 * kernels not used for older_than_s seconds (< 0: no age limit); then
 * VACUUM.  *deleted counts rows. */
fg_status fg_store_prune(fg_store *s, const char *keep_suffix, int64_t older_than_s, int *deleted, fg_error *err);
fg_status fg_store_clear(fg_store *s, fg_error *err);
/* PRAGMA integrity_check: FG_OK or FG_ERR_CACHE with SQLite's report. */
fg_status fg_store_check(fg_store *s, fg_error *err);
/* 64-bit FNV-1a (the cubin checksum). */
uint64_t fg_store_hash(const void *data, size_t n);
#endif
