-- util.lua: small helpers shared by the templates: parameter checks that
-- fail with a message naming the parameter, and a line buffer.

local M = {}

function M.fail(fmt, ...)
  error(string.format(fmt, ...), 2)
end

function M.expect_int(p, name, lo, hi)
  local v = p[name]
  if math.type(v) ~= "integer" then
    error(string.format("parameter '%s' must be an integer (got %s)", name, tostring(v)), 3)
  end
  if v < lo or v > hi then
    error(string.format("parameter '%s' = %d is out of range [%d, %d]", name, v, lo, hi), 3)
  end
end

function M.expect_bool(p, name)
  if type(p[name]) ~= "boolean" then
    error(string.format("parameter '%s' must be a boolean (got %s)", name, tostring(p[name])), 3)
  end
end

function M.expect_enum(p, name, allowed)
  for _, a in ipairs(allowed) do
    if p[name] == a then return end
  end
  local names = {}
  for i, a in ipairs(allowed) do names[i] = tostring(a) end
  error(string.format("parameter '%s' = %s is not one of {%s}", name, tostring(p[name]),
                      table.concat(names, ", ")), 3)
end

-- A head dim parameter: an integer in [lo, 256] and a multiple of `mult`;
-- `what` names the kernel family in the message.
function M.expect_head_dim(p, name, lo, mult, what)
  M.expect_int(p, name, lo, 256)
  if p[name] % mult ~= 0 then
    error(string.format("%s takes %s values that are multiples of %d (got %d)", what, name, mult, p[name]), 2)
  end
end

-- The parameters every template shares: dtype, causal, sparse, mask, and
-- the score modifications, which only templates passing takes_mods build
-- (true: the built-ins and a user score expression; "bwd": the built-ins
-- and a user score expression with its derivative score_d, as the mma.sync
-- backward).
function M.expect_variant(p, takes_mods)
  M.expect_enum(p, "dtype", { "fp16", "bf16" })
  M.expect_bool(p, "causal")
  M.expect_bool(p, "sparse")
  M.check_mask(p)
  M.check_mods(p, takes_mods)
end

-- Score modifications (gen/spec.h FG_MOD_*): each a boolean true when used.
M.mods = { softcap = "SOFTCAP", alibi = "ALIBI", window = "WINDOW", sink = "SINK" }
local mod_order = { "softcap", "alibi", "window", "sink" }

function M.check_mods(p, takes_mods)
  if p.score ~= nil then
    if type(p.score) ~= "string" or p.score == "" then M.fail("parameter 'score' must be a non-empty string") end
    if takes_mods ~= true and takes_mods ~= "bwd" then M.fail("a score expression is not implemented by this kernel family (the mma.sync and TMA forwards and the mma.sync backward have it)") end
    if takes_mods == "bwd" and (type(p.score_d) ~= "string" or p.score_d == "") then
      M.fail("the backward of a score expression needs its derivative (parameter 'score_d', gen/score_deriv.c)")
    end
  end
  for _, name in ipairs(mod_order) do
    if p[name] ~= nil then
      if p[name] ~= true then M.fail("parameter '%s' must be true or absent", name) end
      if not takes_mods then M.fail("score modification '%s' is not implemented by this kernel family (the mma.sync and TMA forwards and the mma.sync backward have it)", name) end
    end
  end
end

-- The traits of the score modifications used (templates/fg_score.cuh) and a
-- banner line; nothing for a variant without any, so its source is unchanged.
function M.mod_traits(out, p)
  for _, name in ipairs(mod_order) do
    if p[name] then out:line("    static constexpr bool %s = true;", M.mods[name]) end
  end
  if p.score then  -- a user score expression (gen/score_render.c's CUDA form); P: the forward's or backward's params
    out:line("    static constexpr bool SCORE_MOD = true;")
    out:line("    template <class P>")
    out:line("    static __device__ __forceinline__ float score_mod(const P &p, float s, int b, int h, int q_idx, int kv_idx) {")
    out:line("        return %s;", p.score)
    out:line("    }")
    if p.score_d then  -- the backward: d score_mod / d s (gen/score_deriv.c)
      out:line("    static constexpr bool SCORE_MOD_D = true;")
      out:line("    template <class P>")
      out:line("    static __device__ __forceinline__ float score_mod_d(const P &p, float s, int b, int h, int q_idx, int kv_idx) {")
      out:line("        return %s;", p.score_d)
      out:line("    }")
    end
  end
end

function M.mod_banner(out, p)
  local used = {}
  for _, name in ipairs(mod_order) do
    if p[name] then used[#used + 1] = name end
  end
  if #used > 0 then out:line("// score modifications: %s (fg_score.cuh)", table.concat(used, " ")) end
  if p.score then out:line("// score expression: %s", (p.score_text or p.score):gsub("\n", " ")) end
  if p.score_d then out:line("// its derivative: %s", (p.score_d:gsub("\n", " "))) end
end

-- expect_variant for the FP8 forward (fwd_ws.lua): e4m3 inputs, a 16-bit
-- output type (out_dtype), dense only, no score modifications.
function M.expect_variant_fp8(p)
  M.expect_enum(p, "out_dtype", { "fp16", "bf16" })
  M.expect_bool(p, "causal")
  M.expect_bool(p, "sparse")
  if p.sparse or p.mask ~= nil then M.fail("the FP8 forward is dense only (no block-sparse layout, no mask)") end
  -- the score modifications' logits would miss the descales (fg_fwd_ws.cuh)
  for _, name in ipairs(mod_order) do
    if p[name] ~= nil then M.fail("score modification '%s' is not built for the FP8 forward (dtype e4m3): fp16 and bf16 only", name) end
  end
  if p.score ~= nil then M.fail("a score expression is not built for the FP8 forward (dtype e4m3): fp16 and bf16 only") end
end

-- The element mask of partial blocks (a pattern's mask expression, already
-- validated and rendered to C++ by gen/mask_expr.c): emitted into Traits
-- only when the variant has one, so other variants' source is unchanged.
function M.check_mask(p)
  if p.mask == nil then return end
  if type(p.mask) ~= "string" or p.mask == "" then M.fail("parameter 'mask' must be a non-empty string") end
  if not p.sparse then M.fail("a mask expression needs a block-sparse variant (sparse = true)") end
end

function M.mask_banner(out, p)
  if p.mask then out:line("// mask of partial blocks: %s", p.mask_text or p.mask) end
end

-- params_type: the kernel's argument block (default fg_fwd_params; the
-- backward passes fg_bwd_params, which has the same seqlen and mask_c fields).
function M.mask_traits(out, p, params_type)
  if not p.mask then return end
  out:line("    static constexpr bool MASK_MOD = true;")
  out:line("    static __device__ __forceinline__ bool mask_mod(const %s &p, int b, int h, int q_idx, int kv_idx) {",
           params_type or "fg_fwd_params")
  out:line("        return (%s) != 0;", p.mask)
  out:line("    }")
end

function M.round_up(x, m)
  return (x + m - 1) // m * m
end

function M.buffer()
  local b = { parts = {} }
  function b:line(fmt, ...)
    if select("#", ...) > 0 then fmt = string.format(fmt, ...) end
    self.parts[#self.parts + 1] = fmt
  end
  function b:text()
    return table.concat(self.parts, "\n") .. "\n"
  end
  return b
end

-- The three entry points of a backward module (bwd_mma.lua, bwd_wgmma.lua):
-- flashgen_bwd_pre (D = rowsum(dO * O)), flashgen_bwd (the main kernel,
-- `threads` threads, one CTA per SM, dynamic shared memory aligned to
-- `align` bytes, body `call(args)`, args "p, smem" unless given; with
-- `tma` the kernel takes the tensor maps as a second parameter, `tm`) and
-- flashgen_bwd_dq (the conversion).
function M.bwd_entries(out, threads, align, call, args, tma)
  out:line('extern "C" __global__ void __launch_bounds__(128)')
  out:line("flashgen_bwd_pre(const __grid_constant__ fg_bwd_params p) { fg::attention_backward_preprocess<Traits>(p); }")
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(%d, 1)', threads)
  if tma then
    out:line("flashgen_bwd(const __grid_constant__ fg_bwd_params p, const __grid_constant__ fg_bwd_tma_params tm) {")
  else
    out:line("flashgen_bwd(const __grid_constant__ fg_bwd_params p) {")
  end
  out:line("    extern __shared__ __align__(%d) char smem[];", align)
  out:line("    %s(%s);", call, args or "p, smem")
  out:line("}")
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(128)')
  out:line("flashgen_bwd_dq(const __grid_constant__ fg_bwd_params p) { fg::attention_backward_convert<Traits>(p); }")
end

return M
