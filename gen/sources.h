/* sources.h: the template and device-header sources a process renders and
 * compiles with.  They are embedded into the binary at build time
 * (tools/embed_files.c); when FLASHGEN_TEMPLATE_DIR names a directory, a
 * file of the same name there replaces the embedded one (for development).
 * The hash covers every name and byte, and is part of each variant key, so
 * an edited template never reuses a stale kernel. */
#ifndef FG_SOURCES_H
#define FG_SOURCES_H
/* NVRTC's options besides the architecture (gen/compile.c).  They shape
 * every cubin but live outside templates/, so the sources' hash, which
 * keys compiled kernels and names the cache's build identity, covers them
 * too: a flashgen that changes them does not reuse cubins built with the
 * old ones. */
#define FG_NVRTC_STD "-std=c++17"
#define FG_NVRTC_DEFINES "-DNDEBUG"
#define FG_NVRTC_OPTIONS_ID FG_NVRTC_STD " " FG_NVRTC_DEFINES
#include <stddef.h>
#include <stdint.h>
#include "gen/error.h"

typedef struct fg_source {
    const char *name; /* "fwd_mma.lua", "fg_softmax.cuh", ... */
    const char *data; /* NUL-terminated */
    size_t len;
    int overridden;   /* read from FLASHGEN_TEMPLATE_DIR */
} fg_source;

typedef struct fg_sources {
    fg_source *files;
    int count;
    uint64_t hash;
    char hash_hex[17];
    char *override_dir; /* NULL when embedded only */
} fg_sources;

fg_status fg_sources_load(fg_sources *s, fg_error *err);
void fg_sources_free(fg_sources *s);
const fg_source *fg_sources_find(const fg_sources *s, const char *name);

uint64_t fg_hash64(uint64_t h, const void *data, size_t len); /* FNV-1a, seed with FG_HASH_SEED */
#define FG_HASH_SEED 0xcbf29ce484222325ull
#endif
