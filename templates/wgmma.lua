-- wgmma.lua: the wgmma instructions of the Hopper templates.  The
-- accumulators are one register list whose length is the tile width (N/2
-- floats per thread for m64nNk16), which C++ templates cannot spell; Lua
-- writes the exact instruction text and operand list for each width.

local M = {}

-- asm operand list "{%0, %1, ..., %(n-1)}" and the matching "+f" outputs
local function acc_operands(nregs, name)
  local regs, outs = {}, {}
  for i = 0, nregs - 1 do
    regs[#regs + 1] = "%" .. i
    outs[#outs + 1] = string.format('"+f"(%s[%d][%d])', name, i // 4, i % 4)
  end
  return "{" .. table.concat(regs, ", ") .. "}", table.concat(outs, ", ")
end

-- Emits into `out`:
--   wgmma_s(d, da, db, scale_d): S = Q K^T, m64n{n_s}k16 (k32 for e4m3), both
--     operands from shared memory (K-major); scale_d = 0 starts a new sum.
--   wgmma_o(d, a, db): O += P V, m64n{n_o}k16 (k32), P in registers (four
--     32-bit registers: 8 16-bit or 16 e4m3 values), V from shared memory:
--     MN-major (trans-b = 1) for 16-bit types; K-major (V^T) for e4m3, whose
--     wgmma has no transposed operands (the kernel transposes V first).
-- ty: "bf16", "f16" or "e4m3" (fp32 accumulators in each case).
function M.functions(out, ty, n_s, n_o)
  local fp8 = ty == "e4m3"
  local k = fp8 and 32 or 16
  -- immediates after scale-d: scale-a, scale-b and, for 16-bit types only,
  -- the transpose flags (A: K-major; B: K-major for S, MN-major for V)
  local imm_s, imm_o = fp8 and "1, 1" or "1, 1, 0, 0", fp8 and "1, 1" or "1, 1, 1"
  local regs, outs = acc_operands(n_s // 2, "d")
  out:line("__device__ __forceinline__ void wgmma_s(float (&d)[%d][4], u64 da, u64 db, int scale_d) {", n_s // 8)
  out:line('    asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %%%d, 0;\\n"', n_s // 2 + 2)
  out:line('        "wgmma.mma_async.sync.aligned.m64n%dk%d.f32.%s.%s %s, %%%d, %%%d, p, %s;\\n}\\n"',
           n_s, k, ty, ty, regs, n_s // 2, n_s // 2 + 1, imm_s)
  out:line("        : %s", outs)
  out:line('        : "l"(da), "l"(db), "r"(scale_d));')
  out:line("}")
  regs, outs = acc_operands(n_o // 2, "d")
  local a = n_o // 2
  out:line("__device__ __forceinline__ void wgmma_o(float (&d)[%d][4], const u32 (&a)[4], u64 db) {", n_o // 8)
  out:line('    asm volatile("wgmma.mma_async.sync.aligned.m64n%dk%d.f32.%s.%s %s, {%%%d, %%%d, %%%d, %%%d}, %%%d, 1, %s;\\n"',
           n_o, k, ty, ty, regs, a, a + 1, a + 2, a + 3, a + 4, imm_o)
  out:line("        : %s", outs)
  out:line('        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));')
  out:line("}")
end

-- The backward's wgmma (templates/bwd_wgmma.lua), named by the caller:
--   M.ss: name(d, da, db, scale_d), m64n{n}k16, both operands from shared
--     memory; ta / tb = 1 read A / B MN-major (transposed by the instruction);
--     scale_d = 0 starts a new sum.
--   M.rs: name(d, a, db), D += A B, m64n{n}k16, A in registers (four 32-bit
--     registers of 16-bit pairs), B from shared memory MN-major.
function M.ss(out, name, ty, n, ta, tb)
  local regs, outs = acc_operands(n // 2, "d")
  out:line("__device__ __forceinline__ void %s(float (&d)[%d][4], u64 da, u64 db, int scale_d) {", name, n // 8)
  out:line('    asm volatile("{\\n.reg .pred p;\\nsetp.ne.b32 p, %%%d, 0;\\n"', n // 2 + 2)
  out:line('        "wgmma.mma_async.sync.aligned.m64n%dk16.f32.%s.%s %s, %%%d, %%%d, p, 1, 1, %d, %d;\\n}\\n"',
           n, ty, ty, regs, n // 2, n // 2 + 1, ta, tb)
  out:line("        : %s", outs)
  out:line('        : "l"(da), "l"(db), "r"(scale_d));')
  out:line("}")
end

function M.rs(out, name, ty, n)
  local regs, outs = acc_operands(n // 2, "d")
  local a = n // 2
  out:line("__device__ __forceinline__ void %s(float (&d)[%d][4], const u32 (&a)[4], u64 db) {", name, n // 8)
  out:line('    asm volatile("wgmma.mma_async.sync.aligned.m64n%dk16.f32.%s.%s %s, {%%%d, %%%d, %%%d, %%%d}, %%%d, 1, 1, 1, 1;\\n"',
           n, ty, ty, regs, a, a + 1, a + 2, a + 3, a + 4)
  out:line("        : %s", outs)
  out:line('        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));')
  out:line("}")
end

return M
