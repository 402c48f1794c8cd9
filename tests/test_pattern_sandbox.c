/* CPU tests of the Lua sandbox that runs pattern files and expressions
 * (gen/lua_sandbox.c, gen/lua_guard.c) and of the C-side checks of what a
 * pattern returns (runtime/pattern.c): os, io, require, bytecode, endless
 * loops, memory bombs, each refused with file:line; the limits hold
 * whatever the chunk does (pcall/xpcall cannot swallow the budget, long C
 * library calls are charged or refused, finalizers are refused, a time
 * limit backs the instruction budget); consts are validated in C even when
 * the Lua checks are bypassed. */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>

#include "gen/lua_sandbox.h"
#include "runtime/pattern.h"
#include "test_util.h"

static fg_context *g_ctx;
static char g_dir[256];

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *write_file(const char *name, const char *text) { return fg_test_write_file(g_dir, name, text); }

/* Creates the pattern from a file with text; returns the status, message in msg. */
static fg_status try_file(const char *name, const char *text, const char *params, char *msg, size_t n) {
    const char *path = write_file(name, text);
    fg_pattern *p = NULL;
    fg_status st = fg_pattern_create(g_ctx, path, params, &p);
    if (st == FG_OK) {
        fg_block_layout_desc d;
        st = fg_pattern_eval(g_ctx, p, 1, 1, 256, 256, 64, 64, &d);
    }
    snprintf(msg, n, "%s", st == FG_OK ? "" : fg_errmsg(g_ctx));
    fg_pattern_destroy(p);
    return st;
}

static void expect_refused(const char *name, const char *text, const char *needle1, const char *needle2) {
    char msgbuf[8192];
    const char *msg = msgbuf;
    fg_status st = try_file(name, text, NULL, msgbuf, sizeof msgbuf);
    CHECK(st == FG_ERR_PATTERN, "%s was not refused (%s)", name, fg_status_name(st));
    CHECK_CONTAINS(msg, needle1);
    if (needle2) CHECK_CONTAINS(msg, needle2);
}

static void test_sandbox(void) {
    expect_refused("exec.lua", "-- tries to run a command\nos.execute('touch /tmp/flashgen-pwned')\nreturn sliding_window{}\n",
                   "exec.lua:2:", "global 'os'");
    CHECK(access("/tmp/flashgen-pwned", F_OK) != 0, "os.execute ran");
    expect_refused("readfile.lua", "local f = io.open('/etc/passwd')\nreturn f:read('a')\n", "readfile.lua:1:", "global 'io'");
    expect_refused("require.lua", "local os = require('os')\n", "require.lua:1:", "require");
    expect_refused("dofile.lua", "\n\ndofile('/etc/passwd')\n", "dofile.lua:3:", "dofile");
    expect_refused("debug.lua", "return debug.getregistry()\n", "debug.lua:1:", "global 'debug'");
    expect_refused("bytecode.lua", "local f, m = load('\\27Lua...')\nassert(f, m)\n", "bytecode.lua:2:", "binary");
    expect_refused("dump.lua", "return load(string.dump(function() end))\n", "dump.lua:1:", "dump");
    expect_refused("loop.lua", "local n = 0\nwhile true do\n  n = n + 1\nend\n", "loop.lua:", "instruction budget");
    expect_refused("alloc.lua", "local t = {}\nfor i = 1, 1e12 do\n  t[i] = string.rep('x', 4096) .. i\nend\n",
                   "alloc.lua:3: pattern exceeded its memory limit", NULL);
    expect_refused("syntax.lua", "return {\n  mask = 'q_idx < 3',\n  block = function( end,\n}\n", "syntax.lua:3:", NULL);
    expect_refused("runtime.lua", "local function f(x)\n  return x.y.z\nend\nreturn f({})\n", "runtime.lua:2:", "stack traceback");
    /* a loop inside the block function is caught during evaluation */
    expect_refused("blockloop.lua", "return { mask = 'q_idx >= kv_idx',\n  block = function(b, h, q0, q1, k0, k1)\n    while true do end\n  end }\n",
                   "blockloop.lua:3:", "instruction budget");
    expect_refused("badblock.lua", "return { block = function() return 'maybe' end }\n", "block function returned maybe", NULL);
    expect_refused("partial_nomask.lua", "return { block = function() return 'partial' end }\n", "no mask expression", NULL);
    expect_refused("badmask.lua", "return { mask = 'q_idx < limit' }\n", "column 9: unknown name 'limit'", NULL);
    expect_refused("badconst.lua", "return { mask = 'q_idx < n', consts = { n = 1.5 } }\n", "consts must map names to integers", NULL);
    expect_refused("nothing.lua", "return { name = 'x' }\n", "neither 'mask' nor 'block'", NULL);

    char msg[8192];
    /* a pattern file may be a function of its parameters, and use the library */
    CHECK(try_file("ok.lua", "local p = ...\nreturn intersection(sliding_window{window = p.w}, causal{})\n", "w=50", msg, sizeof msg) == FG_OK, "%s", msg);
    CHECK(try_file("okfn.lua", "return function(p) return { mask = 'abs(q_idx - kv_idx) < n', consts = { n = p.n } } end\n", "n=9", msg, sizeof msg) == FG_OK, "%s", msg);
    fg_pattern *p = NULL;
    CHECK(fg_pattern_create(g_ctx, "/nonexistent/x.lua", NULL, &p) == FG_ERR_PATTERN && !p, "missing file");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "cannot open pattern file /nonexistent/x.lua");
    CHECK(fg_pattern_create(g_ctx, "sliding_window", "windw=3", &p) == FG_ERR_PATTERN, "misspelt parameter");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "unknown parameter 'windw'");
    CHECK(fg_pattern_create(g_ctx, "sliding_window", "window=abc", &p) == FG_ERR_PATTERN, "bad value");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "'abc' is not a number");
    CHECK(fg_pattern_create(g_ctx, "no_such_pattern", NULL, &p) == FG_ERR_PATTERN, "unknown name");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "unknown pattern 'no_such_pattern' (built-ins: causal, sliding_window");
    CHECK(fg_pattern_create(g_ctx, "union(sliding_window{window=3}, os.exit())", NULL, &p) == FG_ERR_PATTERN, "os in an expression");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "global 'os'");
    CHECK(fg_pattern_create(g_ctx, "document", NULL, &p) == FG_ERR_PATTERN, "document without lengths");
    CHECK_CONTAINS(fg_errmsg(g_ctx), "'lengths' is required");
}


/* The budget holds whatever the pattern does (each case hung before). */
static void test_budget_holds(void) {
    const double t0 = now_s();
    expect_refused("pcall.lua", "while true do\n  pcall(function() while true do end end)\nend\n", "pcall.lua:", "instruction budget");
    expect_refused("pcall_return.lua", "local ok = pcall(function() while true do end end)\nreturn sliding_window{window = 128}\n",
                   "pcall_return.lua:", "instruction budget");
    expect_refused("xpcall.lua", "xpcall(function() while true do end end, function() while true do end end)\nreturn causal{}\n",
                   "xpcall.lua:", "instruction budget");
    expect_refused("blockpcall.lua",
                   "return { mask = 'q_idx >= kv_idx', block = function()\n  pcall(function() while true do end end)\n  return 'full'\nend }\n",
                   "evaluating pattern", "instruction budget");
    /* long C library calls */
    expect_refused("find.lua", "return (('a'):rep(30000):find('.-.-.-.-.-b')) and causal{}\n", "string.find(s, \".-.-.-.-.-b\")",
                   "instruction budget");
    expect_refused("gsub.lua", "local s = ('a'):rep(20000):gsub('a-a-a-a-b', '')\n", "string.gsub", "instruction budget");
    expect_refused("match.lua", "local x = ('a'):rep(20000):match('(.-)(.-)(.-)b')\n", "string.match", "instruction budget");
    expect_refused("gmatch.lua", "for x in ('a'):rep(20000):gmatch('.-.-.-b') do end\n", "string.gmatch", "instruction budget");
    expect_refused("plainfind.lua", "local s = ('a'):rep(1 << 24)\nlocal p = ('a'):rep(1 << 23) .. 'b'\nfor i = 1, 100 do s:find(p, 1, true) end\n",
                   "plainfind.lua:3:", "instruction budget");
    /* a one-byte piece copied 10^7 times per call: the copies are charged */
    expect_refused("rep_loop.lua", "for i = 1, 1000 do\n  local s = ('x'):rep(10000000)\nend\n", "rep_loop.lua:2:", "string.rep could take");
    expect_refused("rep_big.lua", "local s = string.rep('ab', 1 << 40)\n", "rep_big.lua:1:", "more than the memory limit");
    expect_refused("move.lua", "table.move({}, 1, math.maxinteger - 1, 1)\n", "table.move", "instruction budget");
    /* work inside C calls that their charge once missed (a review ran each
     * for minutes to hours inside the time limit): a long set scanned per
     * character, a replacement walked per empty match, the default sort
     * comparing long strings, unpack of a large range */
    expect_refused("set.lua", "local set = '[' .. ('a'):rep(1000000) .. ']'\nlocal s = ('b'):rep(100000)\ns:find(set)\n",
                   "set.lua:3:", "instruction budget");
    expect_refused("gsub_repl.lua", "local s = ('b'):rep(100000)\nlocal r = ('%0'):rep(5000000)\ns:gsub('', r)\n",
                   "gsub_repl.lua:3:", "instruction budget");
    expect_refused("sort_strings.lua",
                   "local s = ('a'):rep(16 * 2^20)\nlocal t = {}\nfor i = 1, 1000000 do t[i] = s end\ntable.sort(t)\n",
                   "sort_strings.lua:4:", "instruction budget");
    expect_refused("unpack.lua", "local t = {}\nwhile true do table.unpack(t, 1, 900000) end\n", "unpack.lua:2:",
                   "instruction budget");
    expect_refused("insert_len.lua",
                   "local t = setmetatable({}, { __len = function() return math.maxinteger - 1 end })\ntable.insert(t, 1, 0)\n",
                   "insert_len.lua:2:", "__len metamethod");
    /* a finalizer would run with hooks off (at a collection, or when the
     * state closes in fg_pattern_destroy): refused */
    expect_refused("gc.lua", "setmetatable({}, { __gc = function() while true do end end })\nreturn sliding_window{window = 128}\n",
                   "gc.lua:1:", "__gc");
    char msg[8192];
    /* a pattern's name reaches terminals: its control bytes (escape
     * sequences) are replaced */
    {
        fg_pattern *np = NULL;
        CHECK(fg_pattern_create(g_ctx, "{ name = '\\27[2J\\27[31mFAKE OK\\7', mask = 'q_idx >= kv_idx' }", NULL, &np) == FG_OK,
              "%s", fg_errmsg(g_ctx));
        if (np) {
            const char *nm = fg_pattern_name(np);
            CHECK(nm && !strchr(nm, 27) && !strchr(nm, 7) && strstr(nm, "?[2J?[31mFAKE OK?"), "name '%s'", nm ? nm : "(null)");
            fg_pattern_destroy(np);
        }
    }
    /* string.rep of nothing returns at once */
    CHECK(try_file("rep_empty.lua", "return { name = string.rep('', math.maxinteger) .. 'x', mask = 'q_idx >= kv_idx' }\n", NULL, msg,
                   sizeof msg) == FG_OK, "%s", msg);
    /* ordinary uses of the guarded functions still work */
    CHECK(try_file("library.lua",
                   "local t = {}\n"
                   "for w in ('c,a,b'):gmatch('[^,]+') do table.insert(t, w) end\n"
                   "table.sort(t)\n"
                   "assert(table.concat(t, '+') == 'a+b+c')\n"
                   "assert(table.remove(t) == 'c' and #t == 2)\n"
                   "assert(table.move({1, 2, 3}, 1, 3, 2)[3] == 2)\n"
                   "assert(('x'):rep(3, '-') == 'x-x-x')\n"
                   "assert(('hello world'):find('o w') == 5 and ('a.b'):find('.', 1, true) == 2)\n"
                   "assert(('k=12'):match('^(%a+)=(%d+)$') == 'k')\n"
                   "assert(select(2, ('aaa'):gsub('a', 'b')) == 3)\n"
                   "assert(('[x] (y)'):gsub('%b()', 'z') == '[x] z' and ('THE (quick) fox'):find('%f[%a]%a+', 5) == 6)\n"
                   "assert(utf8.len('h\\u{e9}llo') == 5 and utf8.offset('abc', 2) == 2)\n"
                   "local obj = setmetatable({}, { __index = { f = 1 } })\n"
                   "assert(obj.f == 1 and load('return 2')() == 2)\n"
                   "return sliding_window{window = 8}\n",
                   NULL, msg, sizeof msg) == FG_OK, "%s", msg);
    CHECK(now_s() - t0 < 60, "the refusals took %.1f s", now_s() - t0);
}

/* The sandbox directly: a limit that was hit fails the call even when the
 * chunk returned normally, and the time limit backs the instruction count. */
static int run_chunk(long insn_limit, double time_limit, const char *chunk, char *msg, size_t n) {
    fg_lua_ud ud;
    lua_State *L = fg_lua_open(&ud, NULL, "chunk", 64u << 20, insn_limit);
    if (!L) return -1;
    ud.time_limit = time_limit;
    fg_lua_budget_reset(&ud);
    int rc = fg_lua_load_text(L, chunk, strlen(chunk), "=chunk");
    if (rc == LUA_OK) rc = fg_lua_pcall(L, 0, 1);
    snprintf(msg, n, "%s", rc == LUA_OK ? "" : lua_tostring(L, -1));
    lua_close(L);
    return rc;
}

static void test_sandbox_limits(void) {
    char msgbuf[4096], *msg = msgbuf;
    /* a tail call to pcall returns its caught error straight to C */
    CHECK(run_chunk(1000000, 60, "return pcall(function() while true do end end)", msg, sizeof msgbuf) != LUA_OK,
          "the caught budget error returned normally");
    CHECK_CONTAINS(msg, "chunk exceeded its instruction budget");
    CHECK(run_chunk(1000000, 60, "local n = 0 for i = 1, 1000 do n = n + i end return n", msg, sizeof msgbuf) == LUA_OK, "%s", msg);
    /* few instructions, each comparing two 16 MiB strings: the clock stops it */
    const double t0 = now_s();
    CHECK(run_chunk(4000000000000L, 0.5,
                    "local s = string.rep('a', 1 << 24)\nlocal t = s:sub(1, -2) .. 'b'\nlocal n = 0\n"
                    "while true do if s == t then n = n + 1 end end\n",
                    msg, sizeof msgbuf) != LUA_OK, "the comparison loop returned");
    CHECK_CONTAINS(msg, "chunk exceeded its time limit (0.5 s)");
    CHECK(now_s() - t0 < 20, "the time limit took %.1f s", now_s() - t0);
}

/* What C consumes is validated in C: the Lua checks can be bypassed. */
static void test_consts_checked_in_c(void) {
    expect_refused("pairs.lua",
                   "local c = setmetatable({ n = 2.5 }, { __pairs = function() return next, {}, nil end })\n"
                   "return { mask = 'q_idx < n', consts = c }\n",
                   "consts must map names to integers (n = 2.5)", NULL);
    const char *bypass = "local M = import('patterns')\nM.check = function(p) return p end\n";
    static const struct { const char *ret, *needle; } cases[] = {
        {"return { mask = 'q_idx < n', consts = { n = 1e300 } }\n", "(n = 1e+300)"},
        {"return { mask = 'q_idx < n', consts = { n = '7' } }\n", "(n = 7)"},
        {"return { mask = 'q_idx < 3', consts = { ['not a name'] = 1 } }\n", "consts must map identifiers to integers (a key is string not a name)"},
        {"return { mask = 'q_idx < 3', consts = { [1] = 5 } }\n", "(a key is number 1)"},
        {"return { mask = 'q_idx < 3', consts = { [{}] = 5 } }\n", "(a key is table"},
        {"return { mask = 123 }\n", "'mask' must be a string"},
        {"return { name = 'x' }\n", "has neither 'mask' nor 'block'"},
        {"return { mask = 'q_idx < 3', consts = 'abc' }\n", "'consts' must be a table"},
        {"return { block = 'full' }\n", "'block' must be a function"},
        {"return 42\n", "the result is a number, not a pattern table"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        char text[512], name[32];
        snprintf(text, sizeof text, "%s%s", bypass, cases[i].ret);
        snprintf(name, sizeof name, "bypass%u.lua", i);
        expect_refused(name, text, cases[i].needle, NULL);
    }
    /* integers of any size are kept exactly */
    char msg[8192];
    CHECK(try_file("bigconst.lua", "return { mask = 'q_idx < n', consts = { n = math.mininteger } }\n", NULL, msg, sizeof msg) == FG_OK,
          "%s", msg);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/flashgen-sandbox-%d", (int)getpid());
    mkdir(g_dir, 0700);
    fg_context_create(&g_ctx);
    test_sandbox();
    test_budget_holds();
    test_sandbox_limits();
    test_consts_checked_in_c();
    fg_context_destroy(g_ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary("test_pattern_sandbox");
}
