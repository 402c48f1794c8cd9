/* render.h: Lua templates -> CUDA C++ for one variant.
 *
 * Each render runs in a fresh sandboxed Lua state: the base, string, table,
 * math and utf8 libraries only, with no io, os, package/require, dofile,
 * loadfile, string.dump, and a load() that accepts text chunks only.
 * Templates reach each other through import(name), which loads another
 * template from the same fg_sources.  An instruction budget and a memory cap
 * stop a runaway template.  Every call into Lua goes through one pcall with
 * a traceback handler: a template error comes back as FG_ERR_TEMPLATE with
 * file:line and the traceback, never a crash. */
#ifndef FG_RENDER_H
#define FG_RENDER_H
#include "gen/sources.h"
#include "gen/spec.h"

typedef struct fg_rendered {
    char *source;      /* malloc'd CUDA C++ */
    char kernel[64];   /* entry point name */
    int threads;
    int smem_bytes;
} fg_rendered;

fg_status fg_render_forward(const fg_sources *src, const fg_variant *v, const char *key,
                            fg_rendered *out, fg_error *err);
/* Renders an arbitrary template with the variant's parameters (tests). */
fg_status fg_render_template(const fg_sources *src, const char *template_name, const fg_variant *v,
                             const char *key, fg_rendered *out, fg_error *err);
void fg_rendered_free(fg_rendered *r);
#endif
