-- fwd_mma.lua: renders the CUDA C++ of one forward variant for the portable
-- tensor-core path (mma.sync, sm_80 and up).
--
-- A pure function from a parameter table to source text.  It checks its
-- parameters first, derives the shape constants (padded head dim, rows per
-- warp, shared memory), and emits a traits struct plus the extern "C" entry
-- point; the algorithm itself lives in the fg_*.cuh headers, which are
-- ordinary C++ that can be read on their own.
--
-- params: head_dim, head_dim_v (value head dim, default head_dim; any
--         multiple of 8 up to 256: the P V GEMM's N, the O accumulator, the
--         V tile and the output follow it), dtype ('fp16'|'bf16'), causal (bool), sparse (bool),
--         block_m, block_n, warps, stages, q_in_regs (bool), min_blocks,
--         infer (bool, optional: the inference variant of templates/fg_infer.cuh,
--         dense only: per-sequence lengths, GQA packing, paged K/V, split-KV),
--         softcap, alibi, window, sink (true or absent: score modifications,
--         dense variants, inference ones included, templates/fg_score.cuh),
--         key (string, for the banner)
-- returns: { source, kernel, threads, smem_bytes, head_dim_padded, rows_per_warp }
--
-- Shared memory: rows padded by 16 bytes (Q and K: padded head_dim + 8
-- elements, V: padded head_dim_v + 8); the Q buffer also stages the O tile
-- of the epilogue, so it is as wide as the wider of the two.  A variant with
-- head_dim_v == head_dim renders exactly as before the value dim existed.

local util = import("util")

local function check(p)
  util.expect_head_dim(p, "head_dim", 8, 8, "the mma.sync path")
  if p.head_dim_v == nil or p.head_dim_v == 0 then p.head_dim_v = p.head_dim end
  util.expect_head_dim(p, "head_dim_v", 8, 8, "the mma.sync path")
  util.expect_variant(p, true)
  -- one and two warps: decode tiles of 16 or 32 packed rows (inference)
  util.expect_enum(p, "warps", p.infer and { 1, 2, 4, 8 } or { 4, 8 })
  util.expect_enum(p, "block_n", { 16, 32, 64, 128 })
  util.expect_enum(p, "stages", { 1, 2, 3 })
  util.expect_bool(p, "q_in_regs")
  util.expect_enum(p, "min_blocks", { 1, 2, 3, 4 })
  util.expect_int(p, "block_m", 16, 512)
  if p.infer and p.sparse then util.fail("infer: inference variants are dense (sparse must be false)") end
  local mt = p.block_m // (16 * p.warps)
  if mt * 16 * p.warps ~= p.block_m or (mt ~= 1 and mt ~= 2) then
    util.fail("block_m (%d) must be 16 or 32 rows per warp times warps (%d)", p.block_m, p.warps)
  end
  return mt
end

return function(p)
  local mt = check(p)
  local dp, dvp = util.round_up(p.head_dim, 16), util.round_up(p.head_dim_v, 16)
  local lds, lds_v = dp + 8, dvp + 8
  local threads = p.warps * 32
  local smem = (p.block_m * math.max(lds, lds_v) + p.stages * p.block_n * (lds + lds_v)) * 2
  local same = p.head_dim_v == p.head_dim

  local out = util.buffer()
  out:line("// flashgen generated kernel: portable tensor-core forward (mma.sync).")
  out:line("// Do not edit; print it again with: flashgen gen '%s'", p.spec or "")
  out:line("// variant: %s", p.key or "(none)")
  local dims = same and "" or string.format(" head_dim_v=%d (padded %d)", p.head_dim_v, dvp)
  out:line("// head_dim=%d (padded %d)%s dtype=%s causal=%s sparse=%s", p.head_dim, dp, dims, p.dtype,
           tostring(p.causal), tostring(p.sparse))
  if p.infer then out:line("// inference: varlen, KV-cache lengths, paged K/V, split-KV, GQA packing (fg_infer.cuh)") end
  out:line("// block_m=%d block_n=%d warps=%d rows_per_warp=%d stages=%d q_in_regs=%s min_blocks=%d",
           p.block_m, p.block_n, p.warps, 16 * mt, p.stages, tostring(p.q_in_regs), p.min_blocks)
  out:line("// threads=%d dynamic_smem=%d bytes", threads, smem)
  util.mask_banner(out, p)
  util.mod_banner(out, p)
  out:line('#include "fg_fwd_kernel.cuh"')
  out:line("")
  out:line("struct Traits {")
  out:line("    static constexpr int D = %d, DP = %d;", p.head_dim, dp)
  if not same then out:line("    static constexpr int DV = %d;", p.head_dim_v) end
  out:line("    static constexpr int BR = %d, BC = %d, WARPS = %d, MT = %d, STAGES = %d;",
           p.block_m, p.block_n, p.warps, mt, p.stages)
  out:line("    static constexpr bool BF16 = %s, CAUSAL = %s, SPARSE = %s, Q_IN_REGS = %s;",
           tostring(p.dtype == "bf16"), tostring(p.causal), tostring(p.sparse), tostring(p.q_in_regs))
  util.mask_traits(out, p)
  util.mod_traits(out, p)
  if p.infer then out:line("    static constexpr bool INFER = true;") end
  out:line("};")
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(%d, %d)', threads, p.min_blocks)
  out:line("flashgen_fwd(const __grid_constant__ fg_fwd_params p) {")
  out:line("    extern __shared__ __align__(16) char smem[];")
  out:line("    fg::attention_forward<Traits>(p, smem);")
  out:line("}")

  return {
    source = out:text(),
    kernel = "flashgen_fwd",
    threads = threads,
    smem_bytes = smem,
    head_dim_padded = dp,
    rows_per_warp = 16 * mt,
  }
end
