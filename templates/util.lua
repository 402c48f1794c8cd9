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

-- The parameters every forward template shares: dtype, causal, sparse, mask.
function M.expect_variant(p)
  M.expect_enum(p, "dtype", { "fp16", "bf16" })
  M.expect_bool(p, "causal")
  M.expect_bool(p, "sparse")
  M.check_mask(p)
end

-- expect_variant for the FP8 forward (fwd_ws.lua): e4m3 inputs, a 16-bit
-- output type (out_dtype), dense only.
function M.expect_variant_fp8(p)
  M.expect_enum(p, "out_dtype", { "fp16", "bf16" })
  M.expect_bool(p, "causal")
  M.expect_bool(p, "sparse")
  if p.sparse or p.mask ~= nil then M.fail("the FP8 forward is dense only (no block-sparse layout, no mask)") end
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

return M
