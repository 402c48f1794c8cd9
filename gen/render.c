#include "gen/render.h"
#include "gen/lua_sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define FG_LUA_MEM_LIMIT (64u << 20)     /* bytes a template may allocate */
#define FG_LUA_INSN_LIMIT 200000000L     /* VM instructions per render    */

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

static void *limited_alloc(void *ud_, void *ptr, size_t osize, size_t nsize) {
    fg_lua_ud *ud = ud_;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        free(ptr);
        ud->used -= osize;
        return NULL;
    }
    if (nsize > osize && ud->used + (nsize - osize) > ud->mem_limit) {
        /* Lua raises "not enough memory" without a position and without
         * calling the message handler: remember where it happened. */
        if (ud->L && !ud->oom_where[0]) where_running(ud->L, ud->oom_where, sizeof ud->oom_where);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) ud->used = ud->used - osize + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    ud->insns += FG_LUA_HOOK_EVERY;
    if (ud->insns > ud->insn_limit) {
        char at[300];
        where_running(L, at, sizeof at);
        luaL_error(L, "%s%s%s exceeded its instruction budget (%I VM instructions; an endless loop?)", at,
                   at[0] ? ": " : "", ud->what, (lua_Integer)ud->insn_limit);
    }
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
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    ud->oom_where[0] = 0;
    int rc = lua_pcall(L, nargs, nresults, base);
    if (rc == LUA_ERRMEM) {
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

/* Loads embedded template NAME (".lua" appended) as a text chunk named
 * "@templates/NAME.lua" and leaves the chunk function on the stack. */
static int load_template(lua_State *L, const fg_sources *src, const char *name) {
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
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    lua_getfield(L, LUA_REGISTRYINDEX, "fg.modules");
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    load_template(L, ud->src, name);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_pushboolean(L, 1); }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

/* load(chunk [, name]): text only, in the sandboxed globals. */
static int l_load_text(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
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
    lua_State *L = lua_newstate(limited_alloc, ud);
    if (!L) return NULL;
    ud->L = L;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, FG_LUA_HOOK_EVERY);
    lua_pushcfunction(L, open_sandbox);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) { lua_close(L); return NULL; }
    return L;
}

static void push_params(lua_State *L, const fg_variant *v, const char *key) {
    char spec[256];
    fg_variant_format(v, spec, sizeof spec);
    lua_newtable(L);
    lua_pushinteger(L, v->spec.head_dim);   lua_setfield(L, -2, "head_dim");
    lua_pushstring(L, fg_dtype_name(v->spec.dtype)); lua_setfield(L, -2, "dtype");
    lua_pushboolean(L, v->spec.causal);     lua_setfield(L, -2, "causal");
    lua_pushboolean(L, v->spec.sparse);     lua_setfield(L, -2, "sparse");
    lua_pushinteger(L, v->cfg.block_m);     lua_setfield(L, -2, "block_m");
    lua_pushinteger(L, v->cfg.block_n);     lua_setfield(L, -2, "block_n");
    lua_pushinteger(L, v->cfg.warps);       lua_setfield(L, -2, "warps");
    lua_pushinteger(L, v->cfg.stages);      lua_setfield(L, -2, "stages");
    lua_pushboolean(L, v->cfg.q_in_regs > 0); lua_setfield(L, -2, "q_in_regs");
    lua_pushinteger(L, v->cfg.min_blocks);  lua_setfield(L, -2, "min_blocks");
    lua_pushstring(L, key ? key : "");      lua_setfield(L, -2, "key");
    lua_pushstring(L, spec);                lua_setfield(L, -2, "spec");
    if (v->spec.mask_hash) {
        lua_pushstring(L, v->spec.mask_cuda ? v->spec.mask_cuda : ""); lua_setfield(L, -2, "mask");
        lua_pushstring(L, v->spec.mask_text ? v->spec.mask_text : ""); lua_setfield(L, -2, "mask_text");
    }
}

typedef struct render_args {
    const char *name;
    const fg_variant *v;
    const char *key;
    fg_rendered *out;
} render_args;

/* Raw field of the table at the top of the stack (no metamethods run). */
static int raw_field(lua_State *L, const char *f) {
    lua_pushstring(L, f);
    return lua_rawget(L, -2);
}

/* Runs inside the protected call: template(params) -> result table, whose
 * fields are read here too, so that nothing a template returns can raise an
 * error outside the pcall. */
static int render_main(lua_State *L) {
    render_args *a = lua_touserdata(L, 1);
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    load_template(L, ud->src, a->name);
    lua_call(L, 0, 1);
    if (!lua_isfunction(L, -1)) return luaL_error(L, "template '%s' must return a function", a->name);
    push_params(L, a->v, a->key);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "template '%s' must return a table {source=..., ...}", a->name);
    fg_rendered *out = a->out;
    if (raw_field(L, "source") != LUA_TSTRING)
        return luaL_error(L, "template '%s' returned no 'source' string", a->name);
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    out->source = malloc(len + 1);
    if (!out->source) return luaL_error(L, "out of memory copying the source");
    memcpy(out->source, s, len + 1);
    lua_pop(L, 1);
    if (raw_field(L, "kernel") != LUA_TSTRING) return luaL_error(L, "template '%s' must return 'kernel'", a->name);
    snprintf(out->kernel, sizeof out->kernel, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (raw_field(L, "threads") != LUA_TNUMBER || !lua_isinteger(L, -1))
        return luaL_error(L, "template '%s' must return an integer 'threads'", a->name);
    out->threads = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (raw_field(L, "smem_bytes") != LUA_TNUMBER || !lua_isinteger(L, -1))
        return luaL_error(L, "template '%s' must return an integer 'smem_bytes'", a->name);
    out->smem_bytes = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return 0;
}

fg_status fg_render_template(const fg_sources *src, const char *template_name, const fg_variant *v,
                             const char *key, fg_rendered *out, fg_error *err) {
    memset(out, 0, sizeof *out);
    fg_lua_ud ud;
    lua_State *L = fg_lua_open(&ud, src, "template", FG_LUA_MEM_LIMIT, FG_LUA_INSN_LIMIT);
    if (!L) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "cannot create a Lua state");
    fg_status st = FG_OK;
    render_args a = {template_name, v, key, out};
    lua_pushcfunction(L, render_main);
    lua_pushlightuserdata(L, &a);
    int rc = fg_lua_pcall(L, 1, 0);
    if (rc != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        st = fg_fail(err, FG_ERR_TEMPLATE, "template %s.lua failed: %s", template_name, m ? m : "(no message)");
        fg_rendered_free(out);
    }
    lua_close(L);
    return st;
}

fg_status fg_render_forward(const fg_sources *src, const fg_variant *v, const char *key, fg_rendered *out,
                            fg_error *err) {
    return fg_render_template(src, fg_variant_template(v), v, key, out, err);
}

void fg_rendered_free(fg_rendered *r) {
    if (!r) return;
    free(r->source);
    memset(r, 0, sizeof *r);
}
