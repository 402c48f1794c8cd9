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

static void push_params(lua_State *L, const fg_variant *v, const char *key) {
    char spec[FG_VARIANT_TEXT_MAX];
    fg_variant_format(v, spec, sizeof spec);
    lua_newtable(L);
    lua_pushinteger(L, v->spec.head_dim);   lua_setfield(L, -2, "head_dim");
    lua_pushinteger(L, fg_spec_head_dim_v(&v->spec)); lua_setfield(L, -2, "head_dim_v");
    lua_pushstring(L, fg_dtype_name(v->spec.dtype)); lua_setfield(L, -2, "dtype");
    if (v->spec.dtype == FG_E4M3) {
        lua_pushstring(L, fg_dtype_name(fg_spec_out_dtype(&v->spec))); lua_setfield(L, -2, "out_dtype");
    }
    lua_pushboolean(L, v->spec.causal);     lua_setfield(L, -2, "causal");
    lua_pushboolean(L, v->spec.sparse);     lua_setfield(L, -2, "sparse");
    if (v->spec.infer) { lua_pushboolean(L, 1); lua_setfield(L, -2, "infer"); }
    for (int i = 0; i < 4; ++i) /* score modifications: only those used, so other variants render as before */
        if (v->spec.mods & (1 << i)) { lua_pushboolean(L, 1); lua_setfield(L, -2, fg_spec_mod_name(i)); }
    lua_pushinteger(L, v->cfg.block_m);     lua_setfield(L, -2, "block_m");
    lua_pushinteger(L, v->cfg.block_n);     lua_setfield(L, -2, "block_n");
    lua_pushinteger(L, v->cfg.warps);       lua_setfield(L, -2, "warps");
    lua_pushinteger(L, v->cfg.stages);      lua_setfield(L, -2, "stages");
    lua_pushboolean(L, v->cfg.q_in_regs > 0); lua_setfield(L, -2, "q_in_regs");
    lua_pushinteger(L, v->cfg.min_blocks);  lua_setfield(L, -2, "min_blocks");
    /* TMA family: only what is switched off; the template's defaults rule
     * otherwise (no ping-pong with one consumer warpgroup) */
    if (v->cfg.ws_off & FG_WS_NO_PINGPONG) { lua_pushboolean(L, 0); lua_setfield(L, -2, "pingpong"); }
    if (v->cfg.ws_off & FG_WS_NO_OVERLAP) { lua_pushboolean(L, 0); lua_setfield(L, -2, "overlap"); }
    /* the Hopper backward: wgmma=2 loads by TMA, wgmma=1 by cp.async */
    if (v->spec.kind == FG_KIND_BWD && v->cfg.wgmma == 2) { lua_pushboolean(L, 1); lua_setfield(L, -2, "tma"); }
    lua_pushstring(L, key ? key : "");      lua_setfield(L, -2, "key");
    lua_pushstring(L, spec);                lua_setfield(L, -2, "spec");
    if (fg_mask_hash_set(&v->spec.score_hash)) {
        lua_pushstring(L, v->spec.score_cuda ? v->spec.score_cuda : ""); lua_setfield(L, -2, "score");
        lua_pushstring(L, v->spec.score_text ? v->spec.score_text : ""); lua_setfield(L, -2, "score_text");
        if (v->spec.kind == FG_KIND_BWD && v->spec.score_cuda_d) { /* the forward renders as before */
            lua_pushstring(L, v->spec.score_cuda_d); lua_setfield(L, -2, "score_d");
        }
    }
    if (fg_mask_hash_set(&v->spec.mask_hash)) {
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
/* Runs inside the protected call: template(params) -> result table, whose
 * fields are read here too, so that nothing a template returns can raise an
 * error outside the pcall. */
static int render_main(lua_State *L) {
    render_args *a = lua_touserdata(L, 1);
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    fg_lua_load_template(L, ud->src, a->name);
    lua_call(L, 0, 1);
    if (!lua_isfunction(L, -1)) return luaL_error(L, "template '%s' must return a function", a->name);
    push_params(L, a->v, a->key);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) return luaL_error(L, "template '%s' must return a table {source=..., ...}", a->name);
    fg_rendered *out = a->out;
    if (fg_lua_raw_field(L, -1, "source") != LUA_TSTRING)
        return luaL_error(L, "template '%s' returned no 'source' string", a->name);
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    out->source = malloc(len + 1);
    if (!out->source) return luaL_error(L, "out of memory copying the source");
    memcpy(out->source, s, len + 1);
    lua_pop(L, 1);
    if (fg_lua_raw_field(L, -1, "kernel") != LUA_TSTRING) return luaL_error(L, "template '%s' must return 'kernel'", a->name);
    snprintf(out->kernel, sizeof out->kernel, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (fg_lua_raw_field(L, -1, "threads") != LUA_TNUMBER || !lua_isinteger(L, -1))
        return luaL_error(L, "template '%s' must return an integer 'threads'", a->name);
    out->threads = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (fg_lua_raw_field(L, -1, "smem_bytes") != LUA_TNUMBER || !lua_isinteger(L, -1))
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
