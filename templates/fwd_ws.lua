-- fwd_ws.lua: renders one forward variant of the Hopper warp-specialised
-- path (sm_90a): a TMA producer warpgroup and NC = block_m / 64 wgmma
-- consumer warpgroups (see fg_fwd_ws.cuh for the kernel itself).
--
-- Lua's part: the wgmma instructions with the exact register lists for the
-- key tile (S = Q K^T, N = block_n) and the value head dim (O += P V,
-- N = head_dim_v), the register split between producer and consumers, and
-- the shared-memory size.
--
-- FP8 (dtype "e4m3", out_dtype "fp16" or "bf16"): the same kernel with k32
-- e4m3 wgmma, 128-element (128-byte) tile rows, V transposed in shared
-- memory by the producer warpgroup (fg_fp8.cuh); head_dim a multiple of 32,
-- head_dim_v of 16, block_n 128, two or more stages, dense, no score
-- modifications (those are fp16/bf16 only: util.expect_variant_fp8).
--
-- params: head_dim, head_dim_v (default head_dim), dtype, out_dtype (e4m3), causal, sparse,
--   block_m (64 * consumer warpgroups), block_n, warps (= 4 * (1 + block_m/64)),
--   stages, min_blocks (1), pingpong, overlap (default true; pingpong needs
--   two or more consumer warpgroups)
-- returns: { source, kernel, threads, smem_bytes }

local util = import("util")
local wgmma = import("wgmma")

local function check(p)
  local fp8 = p.dtype == "e4m3"
  util.expect_head_dim(p, "head_dim", fp8 and 32 or 16, fp8 and 32 or 16, "the TMA path")
  if p.head_dim_v == nil or p.head_dim_v == 0 then p.head_dim_v = p.head_dim end
  util.expect_head_dim(p, "head_dim_v", fp8 and 16 or 8, fp8 and 16 or 8, "the TMA path")
  if fp8 then
    util.expect_variant_fp8(p)
    if p.block_m == 192 and (p.head_dim > 64 or (p.head_dim_v or p.head_dim) > 96) then
      util.fail("FP8 block_m = 192 takes head_dim <= 64 and head_dim_v <= 96 (three consumers in 160 registers)")
    end
    if p.block_n ~= 128 then util.fail("FP8 block_n = %s: must be 128 (the transposed V tile is one 128-byte row per value dim)", tostring(p.block_n)) end
    if (p.stages or 0) < 2 then util.fail("FP8 stages = %s: must be 2 or more (the next V tile lands while the last is transposed)", tostring(p.stages)) end
  else
    util.expect_variant(p, true)
  end
  util.expect_enum(p, "block_m", { 64, 128, 192 })
  local nc = p.block_m // 64
  if p.warps ~= 4 * (nc + 1) then
    util.fail("warps (%d) must be 4 * (1 + block_m / 64) = %d: a producer warpgroup and one consumer per 64 rows",
              p.warps, 4 * (nc + 1))
  end
  util.expect_int(p, "block_n", 16, 256)
  if p.block_n % 16 ~= 0 then util.fail("block_n = %d must be a multiple of 16", p.block_n) end
  util.expect_int(p, "stages", 1, 4)
  util.expect_enum(p, "min_blocks", { 1 })
  if p.pingpong == nil then p.pingpong = nc >= 2 end
  if p.overlap == nil then p.overlap = true end
  util.expect_bool(p, "pingpong")
  util.expect_bool(p, "overlap")
  if p.pingpong and nc < 2 then util.fail("pingpong needs two or more consumer warpgroups (block_m >= 128)") end
end

-- log2 of the largest P before the softmax's reference maximum moves
-- (OnlineSoftmax::step_p_lazy)
local LAZY_LOG2 = 8

-- Registers per thread after setmaxnreg: the producer keeps few, the
-- consumers take the rest of the 64K (multiples of 8).
local REGS = { [1] = { 24, 240 }, [2] = { 24, 240 }, [3] = { 32, 160 } }
-- FP8: producer warps 1-3 transpose V; with one consumer the producer
-- keeps 40; with two the consumers need 240 at head dim 256 (O 128, S 64,
-- P 16 registers), so the producer runs its loads and transposes in 24;
-- with three, 32 and 160: the 16-bit kernel's split from two consumers on.
local REGS_FP8_ONE = { 40, 240 }
-- Sparse layouts, two consumers: the producer walks the CTA's tile list
-- and each row's key-block lists, which spilled in 24 registers; the
-- consumers give 8 back (128 x 32 + 256 x 232 <= the 64512 of the launch)
local REGS_SPARSE_TWO = { 32, 232 }
-- one consumer: the same producer, the consumers keep 240 (128 x 32 + 128 x
-- 240 is half the register file); in 24 registers the producer spilled
-- 8-32 bytes at every head dim (a review of the tile list, session 11)
local REGS_SPARSE_ONE = { 32, 240 }

-- Shared memory: Q buffers (each also stages the O tile of the epilogue, so
-- as wide as the wider head dim), the K and V rings, 16 bytes of barriers
-- per stage of each ring.  Two Q buffers (the next tile's Q loads during
-- this one) where they fit in Hopper's 227 KiB, else one.
local HOPPER_SMEM = 232448
-- FP8: rows of 128 one-byte elements, the Q buffer as wide as Q alone (the
-- 16-bit O tile goes through it in column slices), the TMA'd V ring (as
-- many stages as K's), the ring of transposed V tiles (vt_stages:
-- fg_fwd_ws.cuh, WsShape), their barriers and the loads' end mark (16 bytes).
local function smem_bytes(p, q_stages, vt_stages)
  if p.dtype == "e4m3" then
    local dp, dvp = util.round_up(p.head_dim, 128), util.round_up(p.head_dim_v, 128)
    local qbuf = p.block_m * dp
    return 1024 + q_stages * qbuf + p.stages * p.block_n * (dp + dvp) + vt_stages * p.head_dim_v * p.block_n +
           16 * q_stages + 2 * 16 * p.stages + 16 * vt_stages + 16
  end
  local dp, dvp = util.round_up(p.head_dim, 64), util.round_up(p.head_dim_v, 64)
  local qbuf = p.block_m * math.max(dp, dvp) * 2
  return 1024 + q_stages * qbuf + p.stages * p.block_n * (dp + dvp) * 2 + 16 * q_stages + 2 * 16 * p.stages
end

-- Ring sizes: Q buffers (two where they fit: the next tile's Q loads during
-- this one, else one), the TMA'd V ring (as many stages as the K ring) and,
-- FP8, the V^T ring: one stage more than the K ring where that fits beside
-- a full V ring (the transposers run half an iteration further ahead), else
-- as many as the K ring (a V ring cut to one stage to make room lost 6% at
-- hd256 causal, docs/PERF.md v18).  select/heuristic.c's smem_bytes_fp8
-- makes the same choice.
local function ring_sizes(p)
  local fit = function(q, vt) return smem_bytes(p, q, vt) <= HOPPER_SMEM end
  if p.dtype == "e4m3" then
    local vt = p.stages + 1
    if fit(2, vt) then return 2, vt end
    if fit(1, vt) then return 1, vt end
  end
  return fit(2, p.stages) and 2 or 1, p.stages
end

return function(p)
  check(p)
  local nc = p.block_m // 64
  local threads = (nc + 1) * 128
  local q_stages, vt_stages = ring_sizes(p)
  local smem = smem_bytes(p, q_stages, vt_stages)
  local fp8 = p.dtype == "e4m3"
  local ty = fp8 and "e4m3" or p.dtype == "bf16" and "bf16" or "f16"
  local regs = (fp8 and nc == 1) and REGS_FP8_ONE or (p.sparse and nc == 2) and REGS_SPARSE_TWO
               or (p.sparse and nc == 1) and REGS_SPARSE_ONE or REGS[nc]
  -- the 16-bit type: of q, k, v and o, or of o alone (FP8)
  local bf16 = (fp8 and p.out_dtype or p.dtype) == "bf16"

  local out = util.buffer()
  out:line("// flashgen generated kernel: Hopper forward, warp-specialised (TMA + wgmma, sm_90a).")
  out:line("// Do not edit; print it again with: flashgen gen '%s'", p.spec or "")
  out:line("// variant: %s", p.key or "(none)")
  out:line("// head_dim=%d head_dim_v=%d dtype=%s%s causal=%s sparse=%s", p.head_dim, p.head_dim_v, p.dtype,
           fp8 and (" out_dtype=" .. p.out_dtype) or "", tostring(p.causal), tostring(p.sparse))
  out:line("// block_m=%d (%d consumer warpgroups + 1 producer) block_n=%d stages=%d q_buffers=%d pingpong=%s overlap=%s",
           p.block_m, nc, p.block_n, p.stages, q_stages, tostring(p.pingpong), tostring(p.overlap))
  if fp8 then
    out:line("// FP8: V ring %d stage(s) (TMA), V^T ring %d stages (transposed by producer warps 1-3)", p.stages,
             vt_stages)
  end
  out:line("// threads=%d dynamic_smem=%d bytes registers: producer %d, consumers %d", threads, smem,
           regs[1], regs[2])
  util.mask_banner(out, p)
  util.mod_banner(out, p)
  out:line('#include "fg_wgmma.cuh"')
  out:line("")
  out:line("namespace fg {")
  wgmma.functions(out, ty, p.block_n, p.head_dim_v)
  out:line("} // namespace fg")
  out:line("")
  out:line('#include "fg_fwd_ws.cuh"')
  out:line("")
  out:line("struct Traits {")
  out:line("    static constexpr int D = %d, DV = %d;", p.head_dim, p.head_dim_v)
  out:line("    static constexpr int BR = %d, BC = %d, NC = %d, STAGES = %d, Q_STAGES = %d;", p.block_m, p.block_n, nc,
           p.stages, q_stages)
  -- FP8: the TMA'd V ring and the V^T ring the consumers read (WsShape)
  out:line("    static constexpr int VT_STAGES = %d;", vt_stages)
  out:line("    static constexpr int PRODUCER_REGS = %d, CONSUMER_REGS = %d;", regs[1], regs[2])
  out:line("    static constexpr bool FP8 = %s, BF16 = %s, CAUSAL = %s, SPARSE = %s;", tostring(fp8), tostring(bf16),
           tostring(p.causal), tostring(p.sparse))
  out:line("    static constexpr bool PINGPONG = %s, OVERLAP = %s;", tostring(p.pingpong), tostring(p.overlap))
  -- the softmax's reference maximum moves only when P would pass 2^LAZY
  -- (OnlineSoftmax::step_p_lazy); 0 = every tile.  Measured (docs/PERF.md
  -- v14): +3-5% at head_dim_v 256, where skipping the rescale saves 128
  -- multiplies a thread a tile; -1% at 128 and -7..-11% at 64 (192-row
  -- tiles), where the vote and the branch cost more than the 32-64 saved.
  -- FP8 packs P to e4m3 (448 at most): kept every tile there.
  out:line("    static constexpr int LAZY = %d;", (not fp8 and p.head_dim_v >= 256) and LAZY_LOG2 or 0)
  util.mask_traits(out, p)
  util.mod_traits(out, p)
  out:line("};")
  out:line("static_assert(fg::WsShape<Traits>::SMEM == %d, \"shared memory size: fwd_ws.lua and fg_fwd_ws.cuh disagree\");", smem)
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(%d, 1)', threads)
  out:line("flashgen_fwd(const __grid_constant__ fg_fwd_params p, const __grid_constant__ fg_tma_params tm) {")
  out:line("    extern __shared__ __align__(1024) char smem[];")
  out:line("    fg::attention_forward_ws<Traits>(p, tm, smem);")
  out:line("}")

  return { source = out:text(), kernel = "flashgen_fwd", threads = threads, smem_bytes = smem }
end
