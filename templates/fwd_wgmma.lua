-- fwd_wgmma.lua: renders one forward variant for the Hopper path (sm_90a):
-- wgmma with shared-memory descriptors (see fg_fwd_wgmma.cuh).
--
-- Lua's part is what C++ templates do badly: the wgmma instructions take
-- their accumulators as one register list whose length is the tile width
-- (N/2 floats per thread for m64nNk16), so each variant gets the exact
-- instruction text and operand list for its key tile (S = Q K^T, N = block_n)
-- and head dim (O += P V, N = head_dim).
--
-- params: as fwd_mma.lua; block_m = 64 * warpgroups, warps = block_m / 16.
-- returns: { source, kernel, threads, smem_bytes }

local util = import("util")
local wgmma = import("wgmma")

local function check(p)
  util.expect_head_dim(p, "head_dim", 64, 64, "the wgmma path")
  if p.head_dim_v ~= nil and p.head_dim_v ~= 0 and p.head_dim_v ~= p.head_dim then
    util.fail("the wgmma path takes head_dim_v == head_dim (got %d and %d); the mma.sync and TMA paths take other pairs",
              p.head_dim, p.head_dim_v)
  end
  util.expect_variant(p)
  util.expect_enum(p, "block_m", { 64, 128, 192 })
  if p.warps ~= p.block_m // 16 then
    util.fail("warps (%d) must be block_m / 16 = %d: one warpgroup per 64 rows", p.warps, p.block_m // 16)
  end
  util.expect_enum(p, "block_n", { 64, 128, 192, 256 })
  util.expect_enum(p, "stages", { 1, 2 })
  util.expect_enum(p, "min_blocks", { 1, 2 })
end

return function(p)
  check(p)
  local wgs = p.block_m // 64
  local threads = wgs * 128
  local smem = 1024 + (p.block_m + 2 * p.stages * p.block_n) * p.head_dim * 2
  local ty = p.dtype == "bf16" and "bf16" or "f16"

  local out = util.buffer()
  out:line("// flashgen generated kernel: Hopper forward (wgmma, sm_90a).")
  out:line("// Do not edit; print it again with: flashgen gen '%s'", p.spec or "")
  out:line("// variant: %s", p.key or "(none)")
  out:line("// head_dim=%d dtype=%s causal=%s sparse=%s", p.head_dim, p.dtype, tostring(p.causal), tostring(p.sparse))
  out:line("// block_m=%d (%d warpgroups) block_n=%d stages=%d min_blocks=%d", p.block_m, wgs, p.block_n, p.stages,
           p.min_blocks)
  out:line("// threads=%d dynamic_smem=%d bytes", threads, smem)
  util.mask_banner(out, p)
  out:line('#include "fg_wgmma.cuh"')
  out:line("")
  out:line("namespace fg {")
  wgmma.functions(out, ty, p.block_n, p.head_dim)
  out:line("} // namespace fg")
  out:line("")
  out:line('#include "fg_fwd_wgmma.cuh"')
  out:line("")
  out:line("struct Traits {")
  out:line("    static constexpr int D = %d, DP = %d;", p.head_dim, p.head_dim)
  out:line("    static constexpr int BR = %d, BC = %d, WGS = %d, STAGES = %d;", p.block_m, p.block_n, wgs, p.stages)
  out:line("    static constexpr bool BF16 = %s, CAUSAL = %s, SPARSE = %s;", tostring(p.dtype == "bf16"),
           tostring(p.causal), tostring(p.sparse))
  util.mask_traits(out, p)
  out:line("};")
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(%d, %d)', threads, p.min_blocks)
  out:line("flashgen_fwd(const __grid_constant__ fg_fwd_params p) {")
  out:line("    extern __shared__ __align__(1024) char smem[];")
  out:line("    fg::attention_forward_wgmma<Traits>(p, smem);")
  out:line("}")

  return { source = out:text(), kernel = "flashgen_fwd", threads = threads, smem_bytes = smem }
end
