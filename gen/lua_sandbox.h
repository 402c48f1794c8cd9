/* lua_sandbox.h: the sandboxed Lua state shared by templates (render.c)
 * and block-sparse patterns (runtime/pattern.c).
 *
 * The state has the base, string, table, math and utf8 libraries only: no
 * io, os, package/require, debug, dofile, loadfile, collectgarbage, print or
 * string.dump, and a load() that accepts text chunks only.  import(name)
 * loads another embedded template module once.  A lua_Alloc with a byte
 * limit and a count hook with an instruction budget stop a runaway chunk;
 * both errors name the file and line that was running.  Every call goes
 * through fg_lua_pcall, whose message handler appends a traceback. */
#ifndef FG_LUA_SANDBOX_H
#define FG_LUA_SANDBOX_H
#include <lua.h>
#include "gen/sources.h"

typedef struct fg_lua_ud {
    const fg_sources *src;   /* for import() */
    const char *what;        /* "template" or "pattern", for messages */
    size_t used, mem_limit;  /* bytes */
    long insns, insn_limit;  /* VM instructions, counted in steps of FG_LUA_HOOK_EVERY */
    lua_State *L;
    char oom_where[300];     /* "file:line" that was running when the limit was hit */
} fg_lua_ud;

#define FG_LUA_HOOK_EVERY 100000

/* Fills the limits of ud and opens a sandboxed state (NULL when out of memory).
 * ud must outlive the state. */
lua_State *fg_lua_open(fg_lua_ud *ud, const fg_sources *src, const char *what, size_t mem_limit, long insn_limit);
/* lua_pcall with the traceback handler.  On failure the message (with the
 * file:line of a memory or instruction limit) is left on the stack. */
int fg_lua_pcall(lua_State *L, int nargs, int nresults);
/* Loads a text chunk (never bytecode) named chunkname ("@file" or "=name"). */
int fg_lua_load_text(lua_State *L, const char *text, size_t len, const char *chunkname);
#endif
