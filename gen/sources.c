#include "gen/sources.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated at build time by tools/embed_files.c. */
typedef struct fg_embedded_file { const char *name; const char *data; size_t len; } fg_embedded_file;
extern const fg_embedded_file fg_embedded_files[];
extern const int fg_embedded_count;

uint64_t fg_hash64(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; ++i) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}

static char *read_file(const char *path, size_t *len, fg_error *err, int *missing) {
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) { *missing = 1; return NULL; }
        fg_fail(err, FG_ERR_TEMPLATE, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory reading %s", path); return NULL; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); fg_fail(err, FG_ERR_TEMPLATE, "error reading %s", path); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

fg_status fg_sources_load(fg_sources *s, fg_error *err) {
    memset(s, 0, sizeof *s);
    s->files = calloc((size_t)fg_embedded_count, sizeof *s->files);
    if (!s->files) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    const char *dir = getenv("FLASHGEN_TEMPLATE_DIR");
    if (dir && *dir) s->override_dir = fg_strdupf("%s", dir);
    uint64_t h = FG_HASH_SEED;
    for (int i = 0; i < fg_embedded_count; ++i) {
        fg_source *f = &s->files[s->count];
        f->name = fg_embedded_files[i].name;
        f->data = fg_embedded_files[i].data;
        f->len = fg_embedded_files[i].len;
        if (s->override_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", s->override_dir, f->name);
            size_t len = 0;
            int missing = 0;
            char *data = read_file(path, &len, err, &missing);
            if (!data && !missing) { fg_sources_free(s); return FG_ERR_TEMPLATE; }
            if (data) { f->data = data; f->len = len; f->overridden = 1; }
        }
        s->count++;
        h = fg_hash64(h, f->name, strlen(f->name) + 1);
        h = fg_hash64(h, f->data, f->len);
    }
    if (s->override_dir) { /* a mistyped directory would otherwise run the embedded copies unnoticed */
        int any = 0;
        for (int i = 0; i < s->count; ++i) any |= s->files[i].overridden;
        if (!any) {
            fg_fail(err, FG_ERR_TEMPLATE, "FLASHGEN_TEMPLATE_DIR=%s: no template file there (fwd_mma.lua, fg_params.h, ...)",
                    s->override_dir);
            fg_sources_free(s);
            return FG_ERR_TEMPLATE;
        }
    }
    h = fg_hash64(h, FG_NVRTC_OPTIONS_ID, sizeof FG_NVRTC_OPTIONS_ID);
    s->hash = h;
    snprintf(s->hash_hex, sizeof s->hash_hex, "%016llx", (unsigned long long)h);
    return FG_OK;
}

void fg_sources_free(fg_sources *s) {
    if (!s) return;
    for (int i = 0; i < s->count; ++i)
        if (s->files[i].overridden) free((char *)s->files[i].data);
    free(s->files);
    free(s->override_dir);
    memset(s, 0, sizeof *s);
}

const fg_source *fg_sources_find(const fg_sources *s, const char *name) {
    for (int i = 0; i < s->count; ++i)
        if (strcmp(s->files[i].name, name) == 0) return &s->files[i];
    return NULL;
}
