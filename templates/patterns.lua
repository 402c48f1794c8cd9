-- patterns.lua: the block-sparse pattern library (runtime/pattern.c runs it
-- in the same sandbox as the templates).
--
-- A pattern is a table:
--   name       string, for messages and pictures
--   mask       the element predicate, in the mask-expression language
--              (gen/mask_expr.h): C-like integer arithmetic over b, h, q_idx,
--              kv_idx, seqlen_q, seqlen_k and the names in consts.  The
--              kernel evaluates it on partial blocks only; nil for a
--              block-level pattern (every block is full or empty).
--   consts     { name = integer }: the constants the mask names.  They are
--              kernel arguments, so changing a value never recompiles.
--   block      function(b, h, q0, q1, k0, k1, S) -> "full" | "partial" |
--              "empty" (true = full, false/nil = empty), over query rows
--              q0..q1 and keys k0..k1 (inclusive); S = { seqlen_q, seqlen_k,
--              block_q, block_k, batch, heads }.  May be nil when mask is
--              given: flashgen then derives the classification from the mask.
--              When both are given they must agree (full: mask true on every
--              element, empty: false on every element); `flashgen explore
--              --verify` and the cpu tests check that.
--   mask_is_predicate  false when a block-level part (random blocks) decides
--              which blocks exist and the mask only the elements of partial
--              blocks (combinators set it); default true
--   per_batch, per_head   whether the pattern depends on b / h (default no:
--              one layout row per query block, broadcast over batch and heads)
--
-- Built-ins are constructors taking a parameter table: sliding_window{window
-- = 256}.  union(...) and intersection(...) combine patterns.

local M = {}

local FULL, PARTIAL, EMPTY = "full", "partial", "empty"

-- Classification of a block from the range of d = q - k it covers, when the
-- visible d are exactly [lo, hi].  Exact: every d in [dmin, dmax] occurs.
local function by_diagonal(dmin, dmax, lo, hi)
  if dmin >= lo and dmax <= hi then return FULL end
  if dmax < lo or dmin > hi then return EMPTY end
  return PARTIAL
end

-- Checks params against spec = { name = default, ... }; a default of
-- "required" means the caller must give it.  Returns the completed table.
local function args(pname, params, spec, kinds)
  params = params or {}
  if type(params) ~= "table" then
    error(string.format("%s: parameters must be a table (got %s)", pname, type(params)), 3)
  end
  local out = {}
  for k, v in pairs(params) do
    if spec[k] == nil then
      local known = {}
      for n in pairs(spec) do known[#known + 1] = n end
      table.sort(known)
      error(string.format("%s: unknown parameter '%s' (parameters: %s)", pname, tostring(k),
                          table.concat(known, ", ")), 3)
    end
    out[k] = v
  end
  for k, d in pairs(spec) do
    if out[k] == nil then
      if d == "required" then error(string.format("%s: parameter '%s' is required", pname, k), 3) end
      out[k] = d
    end
    local kind = kinds and kinds[k] or "int"
    local v = out[k]
    if kind == "int" then
      if math.type(v) ~= "integer" then
        local iv = type(v) == "number" and math.tointeger(v) or nil
        if not iv then error(string.format("%s: parameter '%s' must be an integer (got %s)", pname, k, tostring(v)), 3) end
        out[k] = iv
      end
    elseif kind == "number" then
      if type(v) ~= "number" then error(string.format("%s: parameter '%s' must be a number (got %s)", pname, k, tostring(v)), 3) end
    elseif kind == "list" then
      if type(v) == "number" then v = { v }; out[k] = v end
      if type(v) ~= "table" or #v == 0 then error(string.format("%s: parameter '%s' must be a list of integers", pname, k), 3) end
      for i, x in ipairs(v) do
        if not math.tointeger(x) then error(string.format("%s: %s[%d] = %s is not an integer", pname, k, i, tostring(x)), 3) end
        v[i] = math.tointeger(x)
      end
    end
  end
  return out
end

local function nonneg(pname, a, k)
  if a[k] < 0 then error(string.format("%s: parameter '%s' must be >= 0 (got %d)", pname, k, a[k]), 3) end
end

M.info = {}
local builtins = {}
M.builtins = builtins
local function builtin(name, summary, params, fn)
  builtins[name] = fn
  M.info[#M.info + 1] = { name = name, summary = summary, params = params }
end

builtin("causal", "key j visible from query i iff j <= i (+ seqlen_k - seqlen_q when bottom_right=1)",
        "bottom_right=1", function(p)
  local a = args("causal", p, { bottom_right = 1 })
  local br = a.bottom_right ~= 0
  return {
    name = "causal",
    mask = br and "kv_idx <= q_idx + seqlen_k - seqlen_q" or "kv_idx <= q_idx",
    consts = {},
    block = function(b, h, q0, q1, k0, k1, S)
      local off = br and S.seqlen_k - S.seqlen_q or 0
      return by_diagonal(q0 - k1, q1 - k0, -off, math.maxinteger)
    end,
  }
end)

builtin("sliding_window", "|i - j| <= window (causal=1: 0 <= i - j <= window)", "window=256 causal=0", function(p)
  local a = args("sliding_window", p, { window = 256, causal = 0 })
  nonneg("sliding_window", a, "window")
  local lo = a.causal ~= 0 and 0 or -a.window
  return {
    name = "sliding_window",
    mask = a.causal ~= 0 and "q_idx - kv_idx >= 0 && q_idx - kv_idx <= window" or "abs(q_idx - kv_idx) <= window",
    consts = { window = a.window },
    block = function(b, h, q0, q1, k0, k1)
      return by_diagonal(q0 - k1, q1 - k0, lo, a.window)
    end,
  }
end)

builtin("dilated", "|i - j| <= window and (i - j) a multiple of dilation (strided attention)",
        "window=1024 dilation=4", function(p)
  local a = args("dilated", p, { window = 1024, dilation = 4 })
  nonneg("dilated", a, "window")
  if a.dilation < 1 then error("dilated: parameter 'dilation' must be >= 1", 2) end
  local w, s = a.window, a.dilation
  return {
    name = "dilated",
    mask = "abs(q_idx - kv_idx) <= window && (q_idx - kv_idx) % dilation == 0",
    consts = { window = w, dilation = s },
    block = function(b, h, q0, q1, k0, k1)
      local dmin, dmax = q0 - k1, q1 - k0
      local lo, hi = math.max(dmin, -w), math.min(dmax, w)
      if lo > hi then return EMPTY end
      local first = -((-lo) // s) * s          -- the first multiple of s >= lo
      if first > hi then return EMPTY end
      if dmin >= -w and dmax <= w and (s == 1 or (dmin == dmax and dmin % s == 0)) then return FULL end
      return PARTIAL
    end,
  }
end)

builtin("global", "the first `tokens` queries see every key and every query sees the first `tokens` keys",
        "tokens=64", function(p)
  local a = args("global", p, { tokens = 64 })
  nonneg("global", a, "tokens")
  local g = a.tokens
  return {
    name = "global",
    mask = "q_idx < tokens || kv_idx < tokens",
    consts = { tokens = g },
    block = function(b, h, q0, q1, k0, k1)
      if q1 < g or k1 < g then return FULL end
      if q0 >= g and k0 >= g then return EMPTY end
      return PARTIAL
    end,
  }
end)

-- splitmix64 finaliser: a pure hash, so a random block depends only on
-- (seed, b, h, query block, key block), never on evaluation order.
local function mix(x)
  x = x ~ (x >> 30)
  x = x * 0xbf58476d1ce4e5b9
  x = x ~ (x >> 27)
  x = x * 0x94d049bb133111eb
  return x ~ (x >> 31)
end
local function uniform(seed, b, h, qb, kb)
  local x = mix(mix(mix(mix(mix(seed) ~ b) ~ h) ~ qb) ~ kb)
  return (x >> 11) / 9007199254740992.0
end
M.uniform = uniform

builtin("random", "each block kept (as a full block) with probability density; per_head=1 draws per (batch, head)",
        "density=0.25 seed=1 per_head=0", function(p)
  local a = args("random", p, { density = 0.25, seed = 1, per_head = 0 }, { density = "number" })
  -- written so that NaN (0/0 from an expression) is refused too
  if not (a.density >= 0 and a.density <= 1) then error("random: parameter 'density' must be in [0, 1]", 2) end
  local ph = a.per_head ~= 0
  return {
    name = "random",
    per_batch = ph, per_head = ph,
    block = function(b, h, q0, q1, k0, k1, S)
      return uniform(a.seed, b, h, q0 // S.block_q, k0 // S.block_k) < a.density
    end,
  }
end)

builtin("document", "block-diagonal: tokens see the tokens of their own document (lengths in order; tokens past their sum form one more document)",
        "lengths=L1,L2,...", function(p)
  local a = args("document", p, { lengths = "required" }, { lengths = "list" })
  if #a.lengths > 16 then
    error(string.format("document: at most 16 lengths (the mask takes 16 constants); got %d", #a.lengths), 2)
  end
  local ends, consts, qs, ks = {}, {}, {}, {}
  local total = 0
  for i, n in ipairs(a.lengths) do
    if n < 1 then error(string.format("document: lengths[%d] = %d must be >= 1", i, n), 2) end
    -- sequences are at most 2^30 long: a larger sum adds nothing, and an
    -- unbounded one wrapped around (ends no longer increasing: the blocks
    -- called one document while the mask kept them apart)
    if n > 2 ^ 31 or total + n > 2 ^ 31 then
      error(string.format("document: lengths[%d] = %s makes the total pass 2^31 (sequences are at most 2^30)", i, tostring(n)), 2)
    end
    total = total + n
    ends[i] = total
    consts["end" .. i] = total
    qs[i] = "(q_idx >= end" .. i .. ")"
    ks[i] = "(kv_idx >= end" .. i .. ")"
  end
  local function doc(x)
    local d = 0
    for i = 1, #ends do if x >= ends[i] then d = i end end
    return d
  end
  return {
    name = "document",
    mask = table.concat(qs, " + ") .. " == " .. table.concat(ks, " + "),
    consts = consts,
    block = function(b, h, q0, q1, k0, k1)
      local a0, a1, c0, c1 = doc(q0), doc(q1), doc(k0), doc(k1)
      if a1 < c0 or c1 < a0 then return EMPTY end
      if a0 == a1 and c0 == c1 and a0 == c0 then return FULL end
      return PARTIAL
    end,
  }
end)

-- ---- combinators -----------------------------------------------------------

local function norm(c)
  if c == true then return FULL end
  if c == false or c == nil then return EMPTY end
  return c
end

-- Renames the constants of q that clash with names already in `taken`,
-- inside q's mask too (identifiers are whole words of the language).
local function merge_consts(taken, q)
  local rename = {}
  for name, v in pairs(q.consts or {}) do
    local new, k = name, 1
    while taken[new] ~= nil do k = k + 1; new = name .. "_" .. k end
    taken[new] = v
    rename[name] = new
  end
  if not q.mask then return nil end
  return (q.mask:gsub("[%a_][%w_]*", function(id) return rename[id] end))
end

local function combine(kind, list)
  if #list == 0 then error(kind .. "() needs at least one pattern", 3) end
  for i, q in ipairs(list) do M.check(q, string.format("%s() argument %d", kind, i)) end
  local consts, masks, names = {}, {}, {}
  local all_blocks, per_batch, per_head, predicate = true, false, false, true
  for i, q in ipairs(list) do
    local m = merge_consts(consts, q)
    if m then masks[#masks + 1] = "(" .. m .. ")" end
    if not q.block then all_blocks = false end
    per_batch = per_batch or q.per_batch or false
    per_head = per_head or q.per_head or false
    predicate = predicate and q.mask ~= nil and q.mask_is_predicate ~= false
    names[i] = q.name or "?"
  end
  -- A block-level part is full or empty on every block, so partial blocks
  -- come from the masked parts only: their masks alone decide the elements.
  local mask = #masks > 0 and table.concat(masks, kind == "union" and " || " or " && ") or nil
  local block
  if all_blocks then
    block = function(b, h, q0, q1, k0, k1, S)
      local any_partial = false
      for _, q in ipairs(list) do
        local c = norm(q.block(b, h, q0, q1, k0, k1, S))
        if kind == "union" and c == FULL then return FULL end
        if kind == "intersection" and c == EMPTY then return EMPTY end
        if c == PARTIAL then any_partial = true end
      end
      if any_partial then return PARTIAL end
      return kind == "union" and EMPTY or FULL
    end
  else
    for i, q in ipairs(list) do
      if not q.mask then
        error(string.format("%s(): argument %d (%s) is block-level while another argument has no block function; " ..
                            "give the masked pattern a block function", kind, i, names[i]), 3)
      end
    end
  end
  return {
    name = kind .. "(" .. table.concat(names, ", ") .. ")",
    mask = mask, consts = consts, block = block,
    per_batch = per_batch, per_head = per_head, mask_is_predicate = predicate,
  }
end

function M.union(...) return combine("union", { ... }) end
function M.intersection(...) return combine("intersection", { ... }) end

builtin("longformer", "sliding window plus global tokens (Longformer)", "window=256 global=64", function(p)
  local a = args("longformer", p, { window = 256, global = 64 })
  local r = M.union(builtins.sliding_window { window = a.window }, builtins.global { tokens = a.global })
  r.name = "longformer"
  return r
end)

builtin("bigbird", "sliding window + global tokens + random blocks (BigBird)",
        "window=256 global=64 random=0.05 seed=1", function(p)
  local a = args("bigbird", p, { window = 256, global = 64, random = 0.05, seed = 1 }, { random = "number" })
  local r = M.union(builtins.random { density = a.random, seed = a.seed },
                    builtins.sliding_window { window = a.window }, builtins.global { tokens = a.global })
  r.name = "bigbird"
  return r
end)

-- ---- checks and entry points (called from runtime/pattern.c) ----------------

function M.check(p, what)
  what = what or "pattern"
  if type(p) ~= "table" then error(string.format("%s must be a table (got %s)", what, type(p)), 3) end
  if p.mask ~= nil and type(p.mask) ~= "string" then
    error(string.format("%s: 'mask' must be a string in the mask-expression language", what), 3)
  end
  if p.block ~= nil and type(p.block) ~= "function" then error(string.format("%s: 'block' must be a function", what), 3) end
  if not p.mask and not p.block then error(string.format("%s has neither 'mask' nor 'block'", what), 3) end
  if p.consts ~= nil and type(p.consts) ~= "table" then error(string.format("%s: 'consts' must be a table", what), 3) end
  for k, v in pairs(p.consts or {}) do
    if type(k) ~= "string" or math.type(v) ~= "integer" then
      error(string.format("%s: consts must map names to integers (%s = %s)", what, tostring(k), tostring(v)), 3)
    end
  end
  return p
end

-- "window=256; lengths=100,200 seed=3" -> { window = 256, lengths = {100, 200}, seed = 3 }
function M.parse_params(s)
  local t = {}
  for item in (s or ""):gmatch("[^;%s]+") do
    local k, v = item:match("^([%a_][%w_]*)=(.+)$")
    if not k then error(string.format("parameter '%s' is not name=value", item), 0) end
    if v:find(",") then
      local list = {}
      for x in v:gmatch("[^,]+") do
        local n = tonumber(x)
        if not n then error(string.format("parameter %s: '%s' is not a number", k, x), 0) end
        list[#list + 1] = n
      end
      t[k] = list
    else
      local n = tonumber(v)
      if not n then error(string.format("parameter %s: '%s' is not a number", k, v), 0) end
      t[k] = n
    end
  end
  return t
end

-- The environment of user pattern files and pattern expressions: the
-- sandbox's globals plus the constructors and combinators.
function M.install(env)
  for name, fn in pairs(builtins) do env[name] = fn end
  env.union, env.intersection = M.union, M.intersection
end

-- Turns what a user chunk returned into a checked pattern.
function M.finish(r, params, what)
  if r == nil and type(what) == "string" and what:match("^[%a_][%w_]*$") then
    local names = {}
    for _, i in ipairs(M.info) do names[#names + 1] = i.name end
    error(string.format("unknown pattern '%s' (built-ins: %s; else a file ending in .lua, or a Lua expression " ..
                        "such as union(sliding_window{window=256}, global{tokens=64}))", what, table.concat(names, ", ")), 0)
  end
  if type(r) == "function" then r = r(params) end
  return M.check(r, what)
end

return M
