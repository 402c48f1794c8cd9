/* lua_sandbox.c: the sandboxed Lua state and its limits (see lua_sandbox.h). */
#include "gen/lua_sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

/* allocations at least this large also check the time limit: they stand for
 * C work (copies, conversions) that no VM instruction count sees */
#define BIG_ALLOC (64u << 10)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static fg_lua_ud *ud_of(lua_State *L) {
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    return ud;
}

/* file:line of the innermost Lua function on the stack (C functions such
 * as string.rep have no line; their Lua caller is named). */
static void where_running(lua_State *L, char *buf, size_t n) {
    lua_Debug ar;
    buf[0] = 0;
    for (int level = 0; lua_getstack(L, level, &ar); ++level) {
        if (!lua_getinfo(L, "Sl", &ar)) break;
        if (ar.currentline > 0) {
            snprintf(buf, n, "%s:%d", ar.short_src, ar.currentline);
            return;
        }
    }
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* Raises the exceeded limit's message (growth is allowed for its copy). */
static int raise_exceeded(lua_State *L, fg_lua_ud *ud) {
    ud->refuse_growth = 0;
    lua_pushstring(L, ud->limit_msg);
    ud->refuse_growth = 1;
    return lua_error(L);
}

/* Marks the limit exceeded (once: the first message stays) and makes it
 * stick: the hook runs on every instruction and raises, growth fails. */
static void mark_exceeded(lua_State *L, fg_lua_ud *ud, int which, const char *detail) {
    if (ud->exceeded) return;
    ud->exceeded = which;
    ud->refuse_growth = 1;
    char at[300];
    where_running(L, at, sizeof at);
    if (which == FG_LUA_OVER_TIME)
        snprintf(ud->limit_msg, sizeof ud->limit_msg, "%s%s%s exceeded its time limit (%g s)", at, at[0] ? ": " : "", ud->what,
                 ud->time_limit);
    else
        snprintf(ud->limit_msg, sizeof ud->limit_msg, "%s%s%s exceeded its instruction budget (%ld VM instructions; %s)", at,
                 at[0] ? ": " : "", ud->what, ud->insn_limit, detail ? detail : "an endless loop?");
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
}

static void *limited_alloc(void *ud_, void *ptr, size_t osize, size_t nsize) {
    fg_lua_ud *ud = ud_;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        free(ptr);
        ud->used -= osize;
        return NULL;
    }
    if (nsize > osize) {
        if (ud->refuse_growth) return NULL;
        if (ud->used + (nsize - osize) > ud->mem_limit) {
            /* Lua raises "not enough memory" without a position and without
             * calling the message handler: remember where it happened. */
            if (ud->L && !ud->oom_where[0]) where_running(ud->L, ud->oom_where, sizeof ud->oom_where);
            return NULL;
        }
        if (nsize - osize >= BIG_ALLOC && ud->L && now_s() > ud->deadline) {
            mark_exceeded(ud->L, ud, FG_LUA_OVER_TIME, NULL);
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p) ud->used = ud->used - osize + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    fg_lua_ud *ud = ud_of(L);
    if (!ud->exceeded) {
        ud->insns += FG_LUA_HOOK_EVERY;
        if (ud->insns > ud->insn_limit) mark_exceeded(L, ud, FG_LUA_OVER_INSNS, NULL);
        else if (now_s() > ud->deadline) mark_exceeded(L, ud, FG_LUA_OVER_TIME, NULL);
        else return;
    }
    raise_exceeded(L, ud);
}

void fg_lua_charge(lua_State *L, double steps, const char *fn) {
    fg_lua_ud *ud = ud_of(L);
    if (!ud->exceeded && steps > (double)(ud->insn_limit - ud->insns)) {
        char d[200];
        snprintf(d, sizeof d, "%s could take up to %.3g steps", fn, steps);
        mark_exceeded(L, ud, FG_LUA_OVER_INSNS, d);
    }
    if (ud->exceeded) raise_exceeded(L, ud);
    ud->insns += (long)steps;
}

void fg_lua_budget_reset(fg_lua_ud *ud) {
    ud->insns = 0;
    ud->exceeded = FG_LUA_OVER_NONE;
    ud->refuse_growth = 0;
    ud->limit_msg[0] = 0;
    ud->deadline = now_s() + ud->time_limit;
    if (ud->L) lua_sethook(ud->L, count_hook, LUA_MASKCOUNT, FG_LUA_HOOK_EVERY);
}

/* lua.c's msghandler: turn any error value into "message + traceback". */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int fg_lua_pcall(lua_State *L, int nargs, int nresults) {
    const int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    fg_lua_ud *ud = ud_of(L);
    ud->oom_where[0] = 0;
    int rc = lua_pcall(L, nargs, nresults, base);
    ud->refuse_growth = 0; /* C may push again; the hook still refuses Lua code */
    if (ud->exceeded) {
        /* whatever the chunk did with the error (caught it, returned), the
         * call failed: the message is the limit's */
        lua_settop(L, base);
        lua_pushstring(L, ud->limit_msg);
        rc = LUA_ERRRUN;
    } else if (rc == LUA_ERRMEM) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s%s%s exceeded its memory limit (%d MiB)", ud->oom_where, ud->oom_where[0] ? ": " : "",
                        ud->what, (int)(ud->mem_limit >> 20));
    }
    lua_remove(L, base);
    return rc;
}

int fg_lua_load_text(lua_State *L, const char *text, size_t len, const char *chunkname) {
    return luaL_loadbufferx(L, text, len, chunkname, "t");
}

int fg_lua_load_template(lua_State *L, const fg_sources *src, const char *name) {
    char file[256], chunk[300];
    snprintf(file, sizeof file, "%s.lua", name);
    const fg_source *f = fg_sources_find(src, file);
    if (!f) return luaL_error(L, "no template named '%s' (looked for %s)", name, file);
    snprintf(chunk, sizeof chunk, "@templates/%s", file);
    if (luaL_loadbufferx(L, f->data, f->len, chunk, "t") != LUA_OK) return lua_error(L);
    return 1;
}

/* import(name): run a template module once and cache its result. */
static int l_import(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    fg_lua_ud *ud = ud_of(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "fg.modules");
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    fg_lua_load_template(L, ud->src, name);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

/* load(chunk [, name]): text only, in the sandboxed globals; compiling is
 * charged by the chunk's size. */
static int l_load_text(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    fg_lua_charge(L, (double)len / 4, "load");
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

static int open_sandbox(lua_State *L) {
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},      {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->func; ++l) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    static const char *const removed[] = {"dofile", "loadfile", "collectgarbage", "print", "require", NULL};
    for (const char *const *n = removed; *n; ++n) {
        lua_pushnil(L);
        lua_setglobal(L, *n);
    }
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    fg_lua_install_guards(L);
    lua_pushcfunction(L, l_load_text);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, l_import);
    lua_setglobal(L, "import");
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "fg.modules");
    return 0;
}

lua_State *fg_lua_open(fg_lua_ud *ud, const fg_sources *src, const char *what, size_t mem_limit, long insn_limit) {
    memset(ud, 0, sizeof *ud);
    ud->src = src;
    ud->what = what;
    ud->mem_limit = mem_limit;
    ud->insn_limit = insn_limit;
    ud->time_limit = FG_LUA_TIME_LIMIT;
    lua_State *L = lua_newstate(limited_alloc, ud);
    if (!L) return NULL;
    ud->L = L;
    fg_lua_budget_reset(ud);
    lua_pushcfunction(L, open_sandbox);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) { lua_close(L); return NULL; }
    return L;
}

int fg_lua_raw_field(lua_State *L, int t, const char *f) {
    t = lua_absindex(L, t);
    lua_pushstring(L, f);
    return lua_rawget(L, t);
}
