/* pattern.c: block-sparse patterns: a sandboxed Lua state running
 * templates/patterns.lua (and a user's file or expression) turns a pattern
 * into block lists; the mask expression is parsed by gen/mask_expr.c. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "gen/lua_sandbox.h"
#include "runtime/internal.h"
#include "runtime/pattern.h"

struct fg_pattern {
    fg_lua_ud ud;
    lua_State *L;
    int ref;                 /* registry reference of the checked pattern table */
    char *name;
    int has_block, per_batch, per_head, mask_is_predicate;
    fg_mask_expr *expr;
    int nconst;
    char *cnames[FG_MASK_MAX_CONSTS];
    int64_t consts[FG_MASK_MAX_CONSTS];
    char *text, *cuda, *python;
    fg_mask_hash hash;       /* the kernel identity of cuda */
    int32_t *buf;            /* last evaluation: part_num | full_num | part_idx | full_idx */
    int evaluated;
    fg_block_layout_desc last;
};

enum { KIND_BUILTIN_OR_EXPR, KIND_FILE };

typedef struct create_args {
    const char *pattern, *params, *file_text;
    size_t file_len;
    int kind;
    fg_pattern *P;
} create_args;

/* Raw field f of the table at index t (no metamethod runs); returns its type. */
static int is_identifier(const char *s) {
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (; *s; ++s)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

/* Reads and validates, in C, what C uses of the pattern table on the top of
 * the stack: the Lua-side M.check can be replaced or fooled (__pairs,
 * __index), so nothing here trusts it.  Raw reads only. */
static int read_pattern(lua_State *L, fg_pattern *P, const char *what) {
    if (!lua_istable(L, -1)) return luaL_error(L, "pattern %s: the result is a %s, not a pattern table", what, luaL_typename(L, -1));
    lua_pushvalue(L, -1);
    P->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    const int t = lua_gettop(L);
    const int tname = fg_lua_raw_field(L, t, "name");
    P->name = fg_strdupf("%s", tname == LUA_TSTRING ? lua_tostring(L, -1) : what);
    if (!P->name) return luaL_error(L, "out of memory");
    /* the name reaches terminals (explore, errors): control bytes (escape
     * sequences that could clear a screen or fake a message) become '?' */
    for (char *c = P->name; *c; ++c)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    const int tblock = fg_lua_raw_field(L, t, "block"), tmask = fg_lua_raw_field(L, t, "mask"), tconsts = fg_lua_raw_field(L, t, "consts");
    if (tblock != LUA_TNIL && tblock != LUA_TFUNCTION) return luaL_error(L, "pattern %s: 'block' must be a function", P->name);
    if (tmask != LUA_TNIL && tmask != LUA_TSTRING)
        return luaL_error(L, "pattern %s: 'mask' must be a string in the mask-expression language", P->name);
    if (tblock == LUA_TNIL && tmask == LUA_TNIL) return luaL_error(L, "pattern %s has neither 'mask' nor 'block'", P->name);
    if (tconsts != LUA_TNIL && tconsts != LUA_TTABLE) return luaL_error(L, "pattern %s: 'consts' must be a table", P->name);
    P->has_block = tblock == LUA_TFUNCTION;
    if (tconsts == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) { /* raw traversal: __pairs never runs */
            if (lua_type(L, -2) != LUA_TSTRING || !is_identifier(lua_tostring(L, -2)) || strlen(lua_tostring(L, -2)) > 63) {
                const char *type = luaL_typename(L, -2);
                return luaL_error(L, "pattern %s: consts must map identifiers to integers (a key is %s %s)", P->name, type,
                                  luaL_tolstring(L, -2, NULL));
            }
            if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) {
                const char *key = lua_tostring(L, -2);
                return luaL_error(L, "pattern %s: consts must map names to integers (%s = %s)", P->name, key,
                                  luaL_tolstring(L, -1, NULL));
            }
            if (P->nconst >= FG_MASK_MAX_CONSTS)
                return luaL_error(L, "pattern %s binds more than %d mask constants", P->name, FG_MASK_MAX_CONSTS);
            P->cnames[P->nconst] = fg_strdupf("%s", lua_tostring(L, -2));
            P->consts[P->nconst] = (int64_t)lua_tointeger(L, -1);
            if (!P->cnames[P->nconst]) return luaL_error(L, "out of memory");
            P->nconst++;
            lua_pop(L, 1);
        }
    }
    fg_lua_raw_field(L, t, "per_batch");
    P->per_batch = lua_toboolean(L, -1);
    fg_lua_raw_field(L, t, "per_head");
    P->per_head = lua_toboolean(L, -1);
    fg_lua_raw_field(L, t, "mask_is_predicate");
    P->mask_is_predicate = lua_isnil(L, -1) || lua_toboolean(L, -1);
    /* a canonical order, so that the same pattern always renders the same kernel */
    for (int i = 0; i < P->nconst; ++i)
        for (int j = i + 1; j < P->nconst; ++j)
            if (strcmp(P->cnames[j], P->cnames[i]) < 0) {
                char *n = P->cnames[i]; P->cnames[i] = P->cnames[j]; P->cnames[j] = n;
                int64_t v = P->consts[i]; P->consts[i] = P->consts[j]; P->consts[j] = v;
            }
    if (tmask == LUA_TSTRING) {
        fg_lua_raw_field(L, t, "mask");
        fg_error e = {0};
        fg_status st = fg_mask_expr_parse(lua_tostring(L, -1), (const char *const *)P->cnames, P->nconst, &P->expr, &e);
        if (st != FG_OK) {
            lua_pushfstring(L, "pattern %s: %s", P->name, e.msg ? e.msg : "bad mask expression");
            fg_error_clear(&e);
            return lua_error(L);
        }
    }
    return 0;
}

/* In the protected call: builds and checks the pattern, keeps a reference,
 * reads its fields. */
static int create_main(lua_State *L) {
    create_args *a = lua_touserdata(L, 1);
    fg_pattern *P = a->P;
    lua_getglobal(L, "import");
    lua_pushstring(L, "patterns");
    lua_call(L, 1, 1);
    const int M = lua_gettop(L);
    lua_getfield(L, M, "parse_params");
    lua_pushstring(L, a->params ? a->params : "");
    lua_call(L, 1, 1);
    const int params = lua_gettop(L);
    lua_pushvalue(L, params);
    lua_setglobal(L, "params");
    lua_getfield(L, M, "install");
    lua_pushglobaltable(L);
    lua_call(L, 1, 0);

    lua_getfield(L, M, "finish");
    if (a->kind == KIND_FILE) {
        char chunk[1100];
        snprintf(chunk, sizeof chunk, "@%s", a->pattern);
        if (fg_lua_load_text(L, a->file_text, a->file_len, chunk) != LUA_OK) return lua_error(L);
        lua_pushvalue(L, params);
        lua_call(L, 1, 1);
    } else {
        lua_getfield(L, M, "builtins");
        lua_getfield(L, -1, a->pattern);
        lua_remove(L, -2);
        if (lua_isfunction(L, -1)) {
            lua_pushvalue(L, params);
            lua_call(L, 1, 1);
        } else {
            lua_pop(L, 1);
            lua_pushfstring(L, "return %s", a->pattern);
            size_t len;
            const char *src = lua_tolstring(L, -1, &len);
            if (fg_lua_load_text(L, src, len, "=(pattern)") != LUA_OK)
                return luaL_error(L, "'%s' is neither a built-in pattern, a .lua file nor a Lua expression: %s", a->pattern,
                                  lua_tostring(L, -1));
            lua_remove(L, -2);
            lua_call(L, 0, 1);
        }
    }
    lua_pushvalue(L, params);
    lua_pushstring(L, a->pattern);
    lua_call(L, 3, 1); /* finish(result, params, what) */
    return read_pattern(L, P, a->pattern);
}

static char *read_pattern_file(const char *path, size_t *len, fg_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { fg_fail(err, FG_ERR_PATTERN, "cannot open pattern file %s: %s", path, strerror(errno)); return NULL; }
    char *buf = malloc(FG_PATTERN_FILE_LIMIT + 1);
    if (!buf) { fclose(f); fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); return NULL; }
    size_t n = fread(buf, 1, FG_PATTERN_FILE_LIMIT + 1, f);
    const int bad = ferror(f);
    fclose(f);
    if (bad || n > FG_PATTERN_FILE_LIMIT) {
        free(buf);
        fg_fail(err, FG_ERR_PATTERN, bad ? "error reading pattern file %s" : "pattern file %s is larger than %u bytes", path,
                FG_PATTERN_FILE_LIMIT);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

void fg_pattern_destroy(fg_pattern *p) {
    if (!p) return;
    if (p->L) lua_close(p->L);
    for (int i = 0; i < p->nconst; ++i) free(p->cnames[i]);
    fg_mask_expr_free(p->expr);
    free(p->name);
    free(p->text);
    free(p->cuda);
    free(p->python);
    free(p->buf);
    free(p);
}

fg_status fg_pattern_create_internal(const fg_sources *src, const char *pattern, const char *params, fg_pattern **out,
                                     fg_error *err) {
    *out = NULL;
    if (!pattern || !*pattern) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "pattern is NULL or empty");
    if (strlen(pattern) > 1024) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "pattern text longer than 1024 characters");
    create_args a = {pattern, params, NULL, 0, ends_with(pattern, ".lua") ? KIND_FILE : KIND_BUILTIN_OR_EXPR, NULL};
    char *file = NULL;
    if (a.kind == KIND_FILE) {
        file = read_pattern_file(pattern, &a.file_len, err);
        if (!file) return err->status;
        a.file_text = file;
    }
    fg_pattern *P = calloc(1, sizeof *P);
    if (!P) { free(file); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); }
    a.P = P;
    P->ref = LUA_NOREF;
    P->L = fg_lua_open(&P->ud, src, "pattern", FG_PATTERN_MEM_LIMIT, FG_PATTERN_INSN_LIMIT);
    if (!P->L) { free(file); free(P); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "cannot create a Lua state"); }
    lua_pushcfunction(P->L, create_main);
    lua_pushlightuserdata(P->L, &a);
    int rc = fg_lua_pcall(P->L, 1, 0);
    free(file);
    if (rc != LUA_OK) {
        const char *m = lua_tostring(P->L, -1);
        fg_fail(err, FG_ERR_PATTERN, "pattern %s failed: %s", pattern, m ? m : "(no message)");
        fg_pattern_destroy(P);
        return FG_ERR_PATTERN;
    }
    if (P->expr) {
        P->text = fg_mask_expr_render(P->expr, FG_MASK_RENDER_TEXT, P->consts);
        /* 32-bit arithmetic when it provably gives the 64-bit values: the
         * mode is in the text, so it is part of the kernel's identity */
        P->cuda = fg_mask_expr_render(P->expr, fg_mask_expr_fits_int32(P->expr, P->consts) ? FG_MASK_RENDER_CUDA32 : FG_MASK_RENDER_CUDA,
                                      P->consts);
        P->python = fg_mask_expr_render(P->expr, FG_MASK_RENDER_PYTHON, P->consts);
        if (!P->text || !P->cuda || !P->python) {
            fg_pattern_destroy(P);
            return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
        }
        P->hash = fg_mask_hash_of(P->cuda);
    }
    if (!P->name) { fg_pattern_destroy(P); return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory"); }
    *out = P;
    return FG_OK;
}

fg_status fg_pattern_create(fg_context *ctx, const char *pattern, const char *params, fg_pattern **out) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    if (!out) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_pattern_create: out is NULL"); return fg_ctx_fail(ctx, &e); }
    *out = NULL;
    const fg_sources *src;
    if (fg_ctx_sources(ctx, &src, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    if (fg_pattern_create_internal(src, pattern, params, out, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    return FG_OK;
}

const char *fg_pattern_name(const fg_pattern *p) { return p ? p->name : NULL; }

const char *fg_pattern_mask(const fg_pattern *p, fg_mask_syntax s) {
    if (!p || !p->expr) return NULL;
    return s == FG_MASK_CUDA ? p->cuda : s == FG_MASK_PYTHON ? p->python : p->text;
}

int fg_pattern_mask_consts(const fg_pattern *p, const char **names, int64_t *values, int max) {
    if (!p || !p->expr) return 0;
    for (int i = 0; i < p->nconst && i < max; ++i) {
        if (names) names[i] = p->cnames[i];
        if (values) values[i] = p->consts[i];
    }
    return p->nconst;
}

const fg_mask_expr *fg_pattern_expr(const fg_pattern *p) { return p->expr; }
const int64_t *fg_pattern_consts(const fg_pattern *p) { return p->consts; }
const fg_block_layout_desc *fg_pattern_last(const fg_pattern *p) { return p->evaluated ? &p->last : NULL; }
int fg_pattern_has_block_fn(const fg_pattern *p) { return p->has_block; }
int fg_pattern_mask_is_predicate(const fg_pattern *p) { return p->expr && p->mask_is_predicate; }

typedef struct eval_args {
    fg_pattern *P;
    int lb, lh, nq, nk, sq, sk, bq, bk, batch, heads;
    int32_t *pn, *fn, *pi, *fi;
} eval_args;

static void put_block(eval_args *a, long r, int kb, int cls) {
    const size_t nk = (size_t)a->nk;
    if (cls == 2) a->fi[(size_t)r * nk + (size_t)a->fn[r]++] = kb;
    else if (cls == 1) a->pi[(size_t)r * nk + (size_t)a->pn[r]++] = kb;
}

/* In the protected call: every block through the Lua block function. */
static int eval_main(lua_State *L) {
    eval_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->P->ref);
    fg_lua_raw_field(L, lua_gettop(L), "block");
    const int fn = lua_gettop(L);
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, a->sq); lua_setfield(L, -2, "seqlen_q");
    lua_pushinteger(L, a->sk); lua_setfield(L, -2, "seqlen_k");
    lua_pushinteger(L, a->bq); lua_setfield(L, -2, "block_q");
    lua_pushinteger(L, a->bk); lua_setfield(L, -2, "block_k");
    lua_pushinteger(L, a->batch); lua_setfield(L, -2, "batch");
    lua_pushinteger(L, a->heads); lua_setfield(L, -2, "heads");
    const int S = lua_gettop(L);
    for (int b = 0; b < a->lb; ++b)
        for (int h = 0; h < a->lh; ++h)
            for (int qb = 0; qb < a->nq; ++qb) {
                const long r = ((long)b * a->lh + h) * a->nq + qb;
                const int q0 = qb * a->bq, q1 = (q0 + a->bq < a->sq ? q0 + a->bq : a->sq) - 1;
                for (int kb = 0; kb < a->nk; ++kb) {
                    const int k0 = kb * a->bk, k1 = (k0 + a->bk < a->sk ? k0 + a->bk : a->sk) - 1;
                    lua_pushvalue(L, fn);
                    lua_pushinteger(L, b); lua_pushinteger(L, h);
                    lua_pushinteger(L, q0); lua_pushinteger(L, q1);
                    lua_pushinteger(L, k0); lua_pushinteger(L, k1);
                    lua_pushvalue(L, S);
                    lua_call(L, 7, 1);
                    int cls;
                    const int ty = lua_type(L, -1);
                    if (ty == LUA_TNIL) cls = 0;
                    else if (ty == LUA_TBOOLEAN) cls = lua_toboolean(L, -1) ? 2 : 0;
                    else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "full")) cls = 2;
                    else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "partial")) cls = 1;
                    else if (ty == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "empty")) cls = 0;
                    else
                        return luaL_error(L, "pattern %s: block function returned %s for block (b=%d h=%d q %d..%d, kv %d..%d); "
                                             "expected \"full\", \"partial\", \"empty\" or a boolean",
                                          a->P->name, luaL_tolstring(L, -1, NULL), b, h, q0, q1, k0, k1);
                    if (cls == 1 && !a->P->expr)
                        return luaL_error(L, "pattern %s: block (b=%d h=%d q %d..%d, kv %d..%d) is \"partial\" but the pattern has "
                                             "no mask expression to decide its elements",
                                          a->P->name, b, h, q0, q1, k0, k1);
                    lua_pop(L, 1);
                    put_block(a, r, kb, cls);
                }
            }
    return 0;
}

fg_status fg_pattern_eval_internal(fg_pattern *P, int batch, int heads, int sq, int sk, int bq, int bk,
                                   fg_block_layout_desc *out, fg_error *err) {
    if (!P) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "pattern is NULL");
    if (!out) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "fg_pattern_eval: out is NULL");
    if (!bq) bq = 128;
    if (!bk) bk = 128;
    if (batch < 1 || heads < 1 || sq < 1 || sk < 1 || sq > (1 << 30) || sk > (1 << 30))
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "pattern sizes must be >= 1 and seqlens <= 2^30 (batch=%d heads=%d seqlen_q=%d seqlen_k=%d)",
                       batch, heads, sq, sk);
    if (bq < 64 || bq % 64 || bk < 16 || bk % 16 || bq > (1 << 30) || bk > (1 << 30))
        return fg_fail(err, FG_ERR_BAD_LAYOUT, "layout blocks must be multiples of 64 query rows and 16 keys, at most 2^30 (block_q=%d block_k=%d)",
                       bq, bk);
    /* block counts in 64 bits (sq + bq - 1 overflowed int for blocks near
     * 2^31), the layout's size checked before it is allocated */
    const int nq = (int)(((int64_t)sq + bq - 1) / bq), nk = (int)(((int64_t)sk + bk - 1) / bk);
    eval_args a = {P, P->per_batch ? batch : 1, P->per_head ? heads : 1, nq, nk, sq, sk, bq, bk, batch, heads, NULL, NULL, NULL, NULL};
    size_t rows, n;
    if (__builtin_mul_overflow((size_t)a.lb, (size_t)a.lh, &rows) || __builtin_mul_overflow(rows, (size_t)nq, &rows) ||
        __builtin_mul_overflow(rows, (size_t)nk + 1, &n) || __builtin_mul_overflow(n, (size_t)2, &n) || n > FG_PATTERN_MAX_ENTRIES)
        return fg_fail(err, FG_ERR_UNSUPPORTED,
                       "a layout of %d x %d x %d x %d blocks (batch, head, query, key) is larger than %d Mi entries: use larger blocks or a "
                       "pattern that does not depend on batch and head", a.lb, a.lh, nq, nk, (int)(FG_PATTERN_MAX_ENTRIES >> 20));
    int32_t *buf = calloc(n, sizeof *buf);
    if (!buf) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory for a layout of %zu entries", n);
    a.pn = buf; a.fn = buf + rows; a.pi = buf + 2 * rows; a.fi = a.pi + rows * (size_t)a.nk;
    if (P->has_block) {
        fg_lua_budget_reset(&P->ud);
        lua_pushcfunction(P->L, eval_main);
        lua_pushlightuserdata(P->L, &a);
        if (fg_lua_pcall(P->L, 1, 0) != LUA_OK) {
            const char *m = lua_tostring(P->L, -1);
            fg_fail(err, FG_ERR_PATTERN, "evaluating pattern %s: %s", P->name, m ? m : "(no message)");
            lua_pop(P->L, 1);
            free(buf);
            return FG_ERR_PATTERN;
        }
    } else {
        fg_mask_env env = {0, 0, 0, 0, sq, sk, P->consts};
        fg_mask_budget budget = FG_PATTERN_CLASSIFY_BUDGET;
        for (int b = 0; b < a.lb; ++b)
            for (int h = 0; h < a.lh; ++h)
                for (int qb = 0; qb < a.nq; ++qb) {
                    env.b = b;
                    env.h = h;
                    const long r = ((long)b * a.lh + h) * a.nq + qb;
                    const int64_t q0 = (int64_t)qb * bq, q1 = (q0 + bq < sq ? q0 + bq : sq) - 1;
                    for (int kb = 0; kb < a.nk; ++kb) {
                        const int64_t k0 = (int64_t)kb * bk, k1 = (k0 + bk < sk ? k0 + bk : sk) - 1;
                        put_block(&a, r, kb, fg_mask_expr_classify(P->expr, &env, q0, q1, k0, k1, &budget));
                    }
                }
    }
    free(P->buf);
    P->buf = buf;
    fg_block_layout_desc *d = &P->last;
    d->batch = a.lb; d->heads = a.lh;
    d->num_q_blocks = a.nq; d->num_kv_blocks = a.nk;
    d->block_q = bq; d->block_k = bk;
    d->kv_num_blocks = a.pn; d->kv_indices = a.pi;
    d->full_kv_num_blocks = a.fn; d->full_kv_indices = a.fi;
    P->evaluated = 1;
    *out = *d;
    return FG_OK;
}

fg_status fg_pattern_eval(fg_context *ctx, fg_pattern *p, int batch, int heads, int seqlen_q, int seqlen_k, int block_q,
                          int block_k, fg_block_layout_desc *out) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    if (fg_pattern_eval_internal(p, batch, heads, seqlen_q, seqlen_k, block_q, block_k, out, &e) != FG_OK)
        return fg_ctx_fail(ctx, &e);
    return FG_OK;
}

fg_status fg_pattern_layout(fg_context *ctx, fg_pattern *p, int batch, int heads, int seqlen_q, int seqlen_k, int block_q,
                            int block_k, fg_block_layout **out) {
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    fg_error e = {0};
    if (!out) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_pattern_layout: layout is NULL"); return fg_ctx_fail(ctx, &e); }
    *out = NULL;
    fg_block_layout_desc d;
    if (fg_pattern_eval_internal(p, batch, heads, seqlen_q, seqlen_k, block_q, block_k, &d, &e) != FG_OK)
        return fg_ctx_fail(ctx, &e);
    fg_block_layout *L;
    if (fg_layout_upload(ctx, &d, &L, &e) != FG_OK) return fg_ctx_fail(ctx, &e);
    L->seqlen_q = seqlen_q;
    L->seqlen_k = seqlen_k;
    if (p->expr) {
        L->mask_hash = p->hash;
        L->mask_cuda = fg_strdupf("%s", p->cuda);
        L->mask_text = fg_strdupf("%s", p->text);
        for (int i = 0; i < p->nconst; ++i) L->mask_c[i] = p->consts[i];
        if (!L->mask_cuda || !L->mask_text) {
            fg_block_layout_destroy(ctx, L);
            fg_fail(&e, FG_ERR_OUT_OF_MEMORY, "out of memory");
            return fg_ctx_fail(ctx, &e);
        }
    }
    *out = L;
    return FG_OK;
}

static int in_row(const int32_t *num, const int32_t *idx, long r, int nk, int kb) {
    for (int i = 0; i < num[r]; ++i)
        if (idx[(size_t)r * nk + i] == kb) return 1;
    return 0;
}

/* The first element of the block where the mask is not `want` (0 or 1): 1
 * and its position, or 0 when there is none. */
static int counterexample(const fg_pattern *p, fg_mask_env *env, int64_t q0, int64_t q1, int64_t k0, int64_t k1, int want,
                          int64_t *q, int64_t *k) {
    for (env->q_idx = q0; env->q_idx <= q1; ++env->q_idx)
        for (env->kv_idx = k0; env->kv_idx <= k1; ++env->kv_idx)
            if ((fg_mask_expr_eval(p->expr, env) != 0) != want) {
                *q = env->q_idx;
                *k = env->kv_idx;
                return 1;
            }
    return 0;
}

fg_status fg_pattern_verify(const fg_pattern *p, int sq, int sk, long *inexact, fg_error *err) {
    *inexact = 0;
    if (!p->evaluated) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "pattern %s has not been evaluated", p->name);
    if (!p->expr || !p->mask_is_predicate)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "pattern %s has no mask expression that is its whole element predicate", p->name);
    const fg_block_layout_desc *d = &p->last;
    if ((int64_t)sq * sk * d->batch * d->heads > FG_PATTERN_VERIFY_MAX)
        return fg_fail(err, FG_ERR_UNSUPPORTED, "verifying evaluates the mask on every element: at most 2^32 (seqlen_q x seqlen_k x layout rows)");
    fg_mask_env env = {0, 0, 0, 0, sq, sk, p->consts};
    fg_mask_budget budget = FG_PATTERN_CLASSIFY_BUDGET;
    for (int b = 0; b < d->batch; ++b)
        for (int h = 0; h < d->heads; ++h)
            for (int qb = 0; qb < d->num_q_blocks; ++qb) {
                const long r = ((long)b * d->heads + h) * d->num_q_blocks + qb;
                const int64_t q0 = (int64_t)qb * d->block_q, q1 = (q0 + d->block_q < sq ? q0 + d->block_q : sq) - 1;
                env.b = b;
                env.h = h;
                for (int kb = 0; kb < d->num_kv_blocks; ++kb) {
                    const int64_t k0 = (int64_t)kb * d->block_k, k1 = (k0 + d->block_k < sk ? k0 + d->block_k : sk) - 1;
                    const int listed = in_row(d->full_kv_num_blocks, d->full_kv_indices, r, d->num_kv_blocks, kb) ? 2
                                       : in_row(d->kv_num_blocks, d->kv_indices, r, d->num_kv_blocks, kb) ? 1 : 0;
                    if (listed == 1) { /* correct either way; uniform ones only cost time */
                        *inexact += fg_mask_expr_classify(p->expr, &env, q0, q1, k0, k1, &budget) != 1;
                        continue;
                    }
                    /* element by element, independent of the classifier's intervals */
                    int64_t q, k;
                    if (counterexample(p, &env, q0, q1, k0, k1, listed == 2, &q, &k))
                        return fg_fail(err, FG_ERR_PATTERN,
                                       "pattern %s: block (b=%d h=%d q %lld..%lld, kv %lld..%lld) is classified %s, but its mask "
                                       "expression is %s at q_idx=%lld, kv_idx=%lld (%s)",
                                       p->name, b, h, (long long)q0, (long long)q1, (long long)k0, (long long)k1,
                                       listed == 2 ? "full" : "empty", listed == 2 ? "false" : "true", (long long)q, (long long)k,
                                       p->text);
                }
            }
    return FG_OK;
}

static int builtins_main(lua_State *L) {
    fg_pattern_builtin *out = lua_touserdata(L, 1);
    const int max = (int)lua_tointeger(L, 2);
    lua_getglobal(L, "import");
    lua_pushstring(L, "patterns");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "info");
    const int n = (int)luaL_len(L, -1);
    for (int i = 0; i < n && i < max; ++i) {
        lua_geti(L, -1, i + 1);
        lua_getfield(L, -1, "name");
        snprintf(out[i].name, sizeof out[i].name, "%s", lua_tostring(L, -1));
        lua_getfield(L, -2, "summary");
        snprintf(out[i].summary, sizeof out[i].summary, "%s", lua_tostring(L, -1));
        lua_getfield(L, -3, "params");
        snprintf(out[i].params, sizeof out[i].params, "%s", lua_tostring(L, -1));
        lua_pop(L, 4);
    }
    lua_pushinteger(L, n < max ? n : max);
    return 1;
}

int fg_pattern_builtins(fg_context *ctx, fg_pattern_builtin *out, int max) {
    fg_error e = {0};
    const fg_sources *src;
    if (fg_ctx_sources(ctx, &src, &e) != FG_OK) { fg_error_clear(&e); return 0; }
    fg_lua_ud ud;
    lua_State *L = fg_lua_open(&ud, src, "pattern", FG_PATTERN_MEM_LIMIT, FG_PATTERN_INSN_LIMIT);
    if (!L) return 0;
    lua_pushcfunction(L, builtins_main);
    lua_pushlightuserdata(L, out);
    lua_pushinteger(L, max);
    int n = fg_lua_pcall(L, 2, 1) == LUA_OK ? (int)lua_tointeger(L, -1) : 0;
    lua_close(L);
    return n;
}
