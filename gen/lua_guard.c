/* lua_guard.c: the sandbox's library functions whose C work is not bounded
 * by the VM instructions that call them (see lua_sandbox.h).  Each guard
 * checks its arguments, charges a bound of the work to the instruction
 * budget (fg_lua_charge refuses what does not fit) and calls the original,
 * kept as the guard's upvalue and reachable from nowhere else.
 *
 * Bounds:
 *   - string.find/match/gmatch/gsub: Lua's matcher backtracks.  One match
 *     attempt costs at most A + B where, item by item from the left, a
 *     single character class adds (1, x1), an optional one (1, x2), a
 *     repeated one (`*`, `+`, `-`: up to n + 1 lengths, each trying the
 *     rest) (n + 1, x(n + 1)), %b and back references (n + 1, x1), other
 *     items (1, x1): cost(item, rest) = a + b * cost(rest).  Unanchored
 *     searches try n + 1 starts.  So ("a"):rep(30000):find(".-.-.-.-.-b"),
 *     about 30000^6 steps, is refused at once, while an identifier gsub on
 *     a mask of a few hundred characters costs ~10^5.
 *   - string.rep: the pieces and the result's size (an empty result returns
 *     "" at once; a result over the memory limit is refused).
 *   - table.insert/remove/sort/concat/move: tables with __index, __newindex
 *     or __len are refused (a metamethod could change the length between
 *     the charge and the work), then the element count is charged.
 *   - utf8.len/offset: the string's length.
 *   - setmetatable: refuses a metatable with __gc (finalizers run with
 *     hooks off, at any allocation and when the state closes). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "gen/lua_sandbox.h"

/* The original function (upvalue 1) with the guard's arguments. */
static int call_original(lua_State *L) {
    const int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Steps of one search for pattern p (length pl) in n characters, after the
 * model above; anchor: whether a leading '^' anchors (not in gmatch). */
static double pattern_steps(const char *p, size_t pl, double n, int anchor) {
    double A = 0, B = 1, starts = n + 1;
    size_t i = 0;
    if (anchor && pl && p[0] == '^') { starts = 1; i = 1; }
    while (i < pl) {
        double a = 1, b = 1;
        int single = 0;
        const size_t start = i;
        const char c = p[i];
        if (c == '(' || c == ')' || (c == '$' && i + 1 == pl)) {
            ++i;
        } else if (c == '%' && i + 1 < pl && p[i + 1] == 'b') {
            a = n + 1;
            i += 4;
        } else if (c == '%' && i + 1 < pl && p[i + 1] == 'f') {
            i += 2;
            if (i < pl && p[i] == '[') goto set;
        } else if (c == '%' && i + 1 < pl && p[i + 1] >= '0' && p[i + 1] <= '9') {
            a = n + 1;
            i += 2;
        } else if (c == '%') {
            i += 2;
            single = 1;
        } else if (c == '[') {
        set:
            /* the set ends at the first ']' after at least one character
             * (escapes skipped), as Lua reads it */
            ++i;
            if (i < pl && p[i] == '^') ++i;
            do {
                if (i >= pl) break; /* malformed: the original raises */
                if (p[i++] == '%' && i < pl) ++i;
            } while (i < pl && p[i] != ']');
            ++i;
            single = c == '[';
        } else {
            ++i;
            single = 1;
        }
        if (single && i < pl) {
            if (p[i] == '?') { b = 2; ++i; }
            else if (p[i] == '*' || p[i] == '+' || p[i] == '-') { a = b = n + 1; ++i; }
        }
        /* each visit of the item reads its text (Lua's classEnd), and each
         * character test scans a set from '[' to ']': steps times the
         * item's length (a 1 MB set was charged as one step a character
         * and ran for minutes inside the time limit) */
        A += B * a * (double)(i > start ? i - start : 1);
        B *= b;
    }
    return starts * (A + B);
}

static void charge_match(lua_State *L, const char *fn, int anchor, int plain_arg) {
    size_t n, m;
    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    const int plain = plain_arg && lua_toboolean(L, plain_arg);
    const double steps = plain ? ((double)n + 1) * ((double)m + 1) / 16 : pattern_steps(p, m, (double)n, anchor);
    char what[160];
    snprintf(what, sizeof what, "%s(s, \"%.40s%s\") on %zu characters", fn, p, m > 40 ? "..." : "", n);
    fg_lua_charge(L, steps, what);
}

static int g_find(lua_State *L) { charge_match(L, "string.find", 1, 4); return call_original(L); }
static int g_match(lua_State *L) { charge_match(L, "string.match", 1, 0); return call_original(L); }
static int g_gmatch(lua_State *L) { charge_match(L, "string.gmatch", 0, 0); return call_original(L); }
static int g_gsub(lua_State *L) {
    charge_match(L, "string.gsub", 1, 0);
    /* a replacement string is walked once a match, even when it expands to
     * nothing ("%0" of empty matches): (n + 1) matches at most */
    if (lua_type(L, 3) == LUA_TSTRING) {
        size_t n, r;
        luaL_checklstring(L, 1, &n);
        lua_tolstring(L, 3, &r);
        fg_lua_charge(L, ((double)n + 1) * ((double)r + 1) / 16, "string.gsub (its replacement)");
    }
    return call_original(L);
}

static int g_rep(lua_State *L) {
    size_t l, ls = 0;
    luaL_checklstring(L, 1, &l);
    const lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &ls);
    if (n <= 0 || l + ls == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    const double total = (double)n * (double)l + (double)(n - 1) * (double)ls;
    fg_lua_ud *ud;
    lua_getallocf(L, (void **)&ud);
    if (total > (double)ud->mem_limit)
        return luaL_error(L, "string.rep: the result would be %f bytes, more than the memory limit (%d MiB)", (lua_Number)total,
                          (int)(ud->mem_limit >> 20));
    fg_lua_charge(L, (double)n + total / 32, "string.rep"); /* one copy per piece, then the bytes */
    return call_original(L);
}

/* A table without the metamethods the table library consults; returns its
 * raw length. */
static double plain_table(lua_State *L, int arg, const char *fn) {
    luaL_checktype(L, arg, LUA_TTABLE);
    if (lua_getmetatable(L, arg)) {
        static const char *const mm[] = {"__index", "__newindex", "__len"};
        for (int i = 0; i < 3; ++i) {
            lua_pushstring(L, mm[i]);
            if (lua_rawget(L, -2) != LUA_TNIL)
                luaL_error(L, "%s: a table with a %s metamethod is not supported in the sandbox", fn, mm[i]);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return (double)lua_rawlen(L, arg);
}

static int g_insert(lua_State *L) { fg_lua_charge(L, plain_table(L, 1, "table.insert"), "table.insert"); return call_original(L); }
static int g_remove(lua_State *L) { fg_lua_charge(L, plain_table(L, 1, "table.remove"), "table.remove"); return call_original(L); }
static int g_concat(lua_State *L) { fg_lua_charge(L, plain_table(L, 1, "table.concat"), "table.concat"); return call_original(L); }

static int g_sort(lua_State *L) {
    const double n = plain_table(L, 1, "table.sort");
    /* the default comparison of strings reads them (strcoll): the longest
     * element scales every comparison (a million copies of a 16 MiB string
     * were charged as cheap comparisons and sorted for hours) */
    double per = 1;
    if (lua_isnoneornil(L, 2)) {
        size_t longest = 0;
        const lua_Integer len = (lua_Integer)n;
        fg_lua_charge(L, n, "table.sort (its strings' lengths)");
        for (lua_Integer k = 1; k <= len; ++k) {
            if (lua_rawgeti(L, 1, k) == LUA_TSTRING) {
                size_t l;
                lua_tolstring(L, -1, &l);
                if (l > longest) longest = l;
            }
            lua_pop(L, 1);
        }
        per = 1 + (double)longest / 16;
    }
    fg_lua_charge(L, n * (log2(n + 1) + 1) * per, "table.sort");
    return call_original(L);
}

static int g_unpack(lua_State *L) {
    const double n = plain_table(L, 1, "table.unpack");
    const lua_Integer f = luaL_optinteger(L, 2, 1);
    const lua_Integer e = lua_isnoneornil(L, 3) ? (lua_Integer)n : luaL_checkinteger(L, 3);
    fg_lua_charge(L, e >= f ? (double)e - (double)f + 1 : 0, "table.unpack");
    return call_original(L);
}

static int g_move(lua_State *L) {
    plain_table(L, 1, "table.move");
    const lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    luaL_checkinteger(L, 4);
    if (!lua_isnoneornil(L, 5)) plain_table(L, 5, "table.move");
    fg_lua_charge(L, e >= f ? (double)e - (double)f + 1 : 0, "table.move");
    return call_original(L);
}

static int g_utf8_scan(lua_State *L) {
    size_t n;
    luaL_checklstring(L, 1, &n);
    fg_lua_charge(L, (double)n / 8, "utf8.len/offset");
    return call_original(L);
}

static int g_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods (finalizers) are not allowed in the sandbox");
        lua_pop(L, 1);
    }
    return call_original(L);
}

typedef struct guard { const char *lib, *name; lua_CFunction fn; } guard;

void fg_lua_install_guards(lua_State *L) {
    static const guard guards[] = {
        {"string", "find", g_find},     {"string", "match", g_match},   {"string", "gmatch", g_gmatch},
        {"string", "gsub", g_gsub},     {"string", "rep", g_rep},       {"table", "insert", g_insert},
        {"table", "remove", g_remove},  {"table", "concat", g_concat},  {"table", "sort", g_sort},
        {"table", "move", g_move},      {"table", "unpack", g_unpack},  {"utf8", "len", g_utf8_scan},
        {"utf8", "offset", g_utf8_scan},
        {NULL, "setmetatable", g_setmetatable},
    };
    for (size_t i = 0; i < sizeof guards / sizeof guards[0]; ++i) {
        const guard *g = &guards[i];
        if (g->lib) lua_getglobal(L, g->lib);
        else lua_pushglobaltable(L);
        lua_getfield(L, -1, g->name);
        lua_pushcclosure(L, g->fn, 1);
        lua_setfield(L, -2, g->name);
        lua_pop(L, 1);
    }
}
