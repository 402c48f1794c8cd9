/* lua_sandbox.h: the sandboxed Lua state shared by templates (render.c)
 * and block-sparse patterns (runtime/pattern.c).
 *
 * The state has the base, string, table, math and utf8 libraries only: no
 * io, os, package/require, debug, dofile, loadfile, collectgarbage, print or
 * string.dump, and a load() that accepts text chunks only.  import(name)
 * loads another embedded template module once.  Every call goes through
 * fg_lua_pcall, whose message handler appends a traceback.
 *
 * Limits, which hold whatever the chunk does (gen/lua_sandbox.c,
 * gen/lua_guard.c):
 *   - memory: a lua_Alloc with a byte limit;
 *   - instructions: a count hook charges VM instructions to a budget, and
 *     the library functions whose C work is not proportional to the
 *     instructions that call them (pattern matching, string.rep,
 *     table.insert/remove/move/sort/concat/unpack, utf8.len/offset, load)
 *     charge a bound of their work before they run, or refuse;
 *   - time: a wall-clock limit, checked by the hook and by large allocations.
 * Once a limit is exceeded it stays exceeded until fg_lua_budget_reset:
 * the hook then raises on every instruction (so pcall cannot swallow it),
 * growing allocations fail, and fg_lua_pcall reports the limit even when
 * the chunk returned normally.  Finalizers never run: setmetatable refuses
 * a metatable with __gc (finalizers run with hooks off, so no budget could
 * stop one). */
#ifndef FG_LUA_SANDBOX_H
#define FG_LUA_SANDBOX_H
#include <lua.h>
#include "gen/sources.h"

typedef struct fg_lua_ud {
    const fg_sources *src;   /* for import() */
    const char *what;        /* "template" or "pattern", for messages */
    size_t used, mem_limit;  /* bytes */
    long insns, insn_limit;  /* VM instructions (and charged library work) */
    double time_limit;       /* seconds from fg_lua_budget_reset */
    double deadline;         /* CLOCK_MONOTONIC seconds */
    int exceeded;            /* a limit was hit: FG_LUA_OVER_* */
    int refuse_growth;       /* allocations that grow fail (while exceeded, inside a call) */
    lua_State *L;
    char oom_where[300];     /* "file:line" that was running when the memory limit was hit */
    char limit_msg[600];     /* the message of the exceeded limit */
} fg_lua_ud;

enum { FG_LUA_OVER_NONE, FG_LUA_OVER_INSNS, FG_LUA_OVER_TIME };

#define FG_LUA_HOOK_EVERY 1000      /* VM instructions between two hook calls */
#define FG_LUA_TIME_LIMIT 60.0      /* seconds per create / evaluation / render */

/* Fills the limits of ud and opens a sandboxed state (NULL when out of memory).
 * ud must outlive the state. */
lua_State *fg_lua_open(fg_lua_ud *ud, const fg_sources *src, const char *what, size_t mem_limit, long insn_limit);
/* A fresh instruction budget and time limit (before each evaluation). */
void fg_lua_budget_reset(fg_lua_ud *ud);
/* lua_pcall with the traceback handler.  On failure the message (with the
 * file:line of a memory or instruction limit) is left on the stack.  A call
 * that exceeded a limit fails even if the chunk caught the error. */
int fg_lua_pcall(lua_State *L, int nargs, int nresults);
/* Pushes t[f] without running metamethods (a sandboxed script's table may
 * carry __index); returns its Lua type. */
int fg_lua_raw_field(lua_State *L, int t, const char *f);
/* Loads a text chunk (never bytecode) named chunkname ("@file" or "=name"). */
int fg_lua_load_text(lua_State *L, const char *text, size_t len, const char *chunkname);
/* Loads embedded template NAME (".lua" appended) as chunk "@templates/NAME.lua"
 * and leaves the function on the stack; raises on error. */
int fg_lua_load_template(lua_State *L, const fg_sources *src, const char *name);

/* For the library guards: charges `steps` (about one VM instruction each)
 * of C work that fn is about to do; raises the budget error (and marks it
 * exceeded) when they do not fit in what is left. */
void fg_lua_charge(lua_State *L, double steps, const char *fn);
/* Replaces the library functions listed above by guarded ones (gen/lua_guard.c). */
void fg_lua_install_guards(lua_State *L);
#endif
