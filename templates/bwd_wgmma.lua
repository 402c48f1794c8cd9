-- bwd_wgmma.lua: renders one backward variant for the Hopper path (sm_90a):
-- the same three entry points as bwd_mma.lua (flashgen_bwd_pre,
-- flashgen_bwd, flashgen_bwd_dq), with the main kernel on wgmma
-- (templates/fg_bwd_wgmma.cuh).  Lua writes the wgmma instructions with
-- their exact register lists: S^T and dP^T (m64n{block_m}, both operands from
-- shared memory), dV += P^T dO (N = head_dim_v) and dK += dS^T Q
-- (N = head_dim) with the A operand in registers, dQ = dS K (N = head_dim,
-- both operands transposed).
--
-- params: head_dim and head_dim_v (64 or 128 each, or 256/256: fg_bwd_wgmma_cols.cuh), dtype ('fp16'|'bf16'),
--         tma (loads by TMA, the kernel's second parameter
--         fg_bwd_tma_params; else cp.async by every thread),
--         causal (bool), sparse (false: block-sparse variants take the
--         mma.sync path), block_m = 64 or 128 (query block; 128 at head dims 64/64 only), block_n = 128 (key
--         block: two warpgroups of 64 keys; 64 at head dim 256), warps = 8, key, spec
-- returns: { source, kernel, threads, smem_bytes, head_dim_padded }

local util = import("util")
local wgmma = import("wgmma")

-- head dims 256/256 take the column-split kernel (fg_bwd_wgmma_cols.cuh)
local function cols_variant(p)
  return p.head_dim == 256 and (p.head_dim_v == nil or p.head_dim_v == 0 or p.head_dim_v == 256)
end

local function check(p)
  if p.head_dim_v == nil or p.head_dim_v == 0 then p.head_dim_v = p.head_dim end
  util.expect_variant(p)
  if p.sparse or p.mask then util.fail("the Hopper backward is dense only; block-sparse variants take the mma.sync path") end
  util.expect_enum(p, "warps", { 8 })
  if cols_variant(p) then
    util.expect_enum(p, "block_m", { 64 })
    util.expect_enum(p, "block_n", { 64 })
    return
  end
  util.expect_enum(p, "block_m", { 64, 128 })
  if p.block_m == 128 and (p.head_dim ~= 64 or p.head_dim_v ~= 64) then
    util.fail("the Hopper backward takes 128-row query blocks at head dims 64/64 only (got %d and %d)", p.head_dim,
              p.head_dim_v)
  end
  util.expect_head_dim(p, "head_dim", 64, 64, "the Hopper backward")
  util.expect_head_dim(p, "head_dim_v", 64, 64, "the Hopper backward")
  if p.head_dim > 128 or p.head_dim_v > 128 then
    util.fail("the Hopper backward takes head dims 64, 128 (each of head_dim and head_dim_v) or 256/256 (got %d and %d)",
              p.head_dim, p.head_dim_v)
  end
  util.expect_enum(p, "block_n", { 128 })
end

-- dQ split by columns over the two warpgroups (Traits::DQ_COLS,
-- fg_bwd_wgmma.cuh) at head dim 128; other head dims keep each
-- warpgroup's keys' share of every column.
local function dq_cols(p)
  return p.head_dim == 128
end

-- Block it's dQ GEMM issued in block it + 1 (Traits::DQ_LAG,
-- fg_bwd_wgmma.cuh): no barrier of both warpgroups once a block; three dS^T
-- stages.  Head dims 128/128 with TMA loads, where it was measured
-- (test_gpu_backward bench, H200, seqlen 4096, two runs each, docs/PERF.md
-- v21): 490.4 / 491.4 TFLOP/s non-causal and 416.3 / 417.0 causal with the
-- second GEMM phase taking turns, against 480.3 / 480.9 and 411.8 / 412.2.
-- The cp.async loads gained more (444.5 against 391.6, 375.7 against 357.5)
-- but racecheck reported their LDGSTS refill against the dV/dK GEMMs' reads
-- once; they keep the barrier.  At 64/64 with 128-row query blocks a third
-- 32 KB dS^T stage does not fit in 227 KiB.
local function dq_lag(p)
  return dq_cols(p) and p.head_dim_v == 128 and p.tma == true
end

-- the smem formulas of BwgShape (fg_bwd_wgmma.cuh) and BwcShape
-- (fg_bwd_wgmma_cols.cuh), which the source asserts
local function smem_bytes(p)
  local bm, bn, d, dv = p.block_m, p.block_n, p.head_dim, p.head_dim_v
  if cols_variant(p) then
    return 1024 + bn * (d + dv) * 2 + 2 * bm * d * 2 + bm * dv * 2 + bm * d * 4 + 3 * bm * 4 + 32
  end
  local cols, ns, lag = dq_cols(p), 2, dq_lag(p) -- stages of Q and dO (BwgShape::NS)
  local shared = cols or bm == 128  -- dS^T double buffered (DQ_SHARED), three stages with DQ_LAG
  return 1024 + bn * (d + dv) * 2 + ns * bm * (d + dv) * 2 + (lag and 3 or shared and 2 or 1) * bn * bm * 2 +
         2 * 64 * (cols and d // 2 or d) * 4 + 2 * ns * bm * 4 + (2 * ns + 1 + (lag and 3 or 0)) * 8
end

-- The Traits fields both kernels read; then `extra` lines, the static
-- assert of the shape's smem formula, and the entry points calling `fn`.
local function traits(out, p, smem, shape, fn, extra, args)
  out:line("struct Traits {")
  out:line("    static constexpr int D = %d, DP = %d;", p.head_dim, p.head_dim)
  if p.head_dim_v ~= p.head_dim then out:line("    static constexpr int DV = %d;", p.head_dim_v) end
  out:line("    static constexpr int BM = %d, BN = %d, WARPS = %d;", p.block_m, p.block_n, p.warps)
  out:line("    static constexpr bool BF16 = %s, CAUSAL = %s, SPARSE = false;", tostring(p.dtype == "bf16"),
           tostring(p.causal))
  out:line("    static constexpr bool DQ_FRAG = true;   // dQ accumulator in chunk order (fg::dq_index)")
  for _, l in ipairs(extra) do out:line("    %s", l) end
  out:line("};")
  out:line("static_assert(fg::%s<Traits>::SMEM == %d, \"smem formula\");", shape, smem)
  out:line("")
  util.bwd_entries(out, 256, 1024, fn, args, p.tma)
end

-- The ping-pong turns of the head dim 64/128 kernel (Traits::TURNS, bit 1:
-- the S^T/dP^T GEMMs, bit 2: the dV/dK/dQ GEMMs), from test_gpu_backward
-- bench (H200, seqlen 4096, TMA loads, two runs each, docs/PERF.md v11):
-- head dims 64: no turns (376 / 280 TFLOP/s non-causal / causal, against 356
-- / 270 with both phases); 128 non-causal: the second phase only (439
-- against 402), 128 causal: both (350; the second only 314).  Other pairs
-- keep both phases, as do the cp.async loads (v9: both phases 1.02-1.08x
-- none; with ping-pong off they measured 301 against 329 at head dim 64).
-- With dQ by columns (head dim 128, v12: a barrier of both warpgroups
-- before dQ), TMA loads, two runs each, non-causal / causal:
-- both phases 473 / 408, none 478 / 414, first phase only 481 / 413,
-- second only 478 / 412; kept: the first phase non-causal, none causal.
-- With dQ one block late (DQ_LAG): none 407 / 410, first phase 406 / 352,
-- second phase 490 / 416, both 463 / 392 (v21): the second phase.
-- Re-measured after the instruction cuts of v23 (uniform descriptors,
-- stmatrix, P_FIRST at 128 too), two rounds: head dims 64 none 461 / 420,
-- first phase 477 / 423, second 470 / 418, both 482 / 420 (v23): both
-- phases non-causal, the first phase causal (combined with the rest of v23
-- 490-493 / 425-429); 128: none 427 / 435, both 474 / 428 against the
-- second's 519 / 445 (kept).
-- pingpong = false: none.
local function turns(p)
  if p.pingpong == false then return 0 end
  if not p.tma then return 3 end
  if p.head_dim == 64 and p.head_dim_v == 64 then return p.causal and 1 or 3 end
  if dq_lag(p) then return 2 end
  if dq_cols(p) and p.head_dim_v == 128 then return p.causal and 0 or 1 end
  return 3
end

-- The mask only in the blocks that need it, by a uniform branch
-- (Traits::MASK_BRANCH, fg_bwd_wgmma.cuh), for every causal variant of this
-- kernel: at 64/64 (128-row query blocks) it took 292 -> 391 TFLOP/s at 4k,
-- 337 -> 465 at 16k (v21); at 128/128, with the descriptors in uniform
-- registers, the predicated mask lost 10% (429 -> 387 at 4k) and the branch
-- gained 1.5-2% (429 -> 436 at 4k, 528 -> 538 at 16k; v22).  Non-causal
-- (only the last key block is masked) it lost 7% at 64/64 (468 -> 436);
-- re-measured in v23: 461 -> 442 at 64/64, 519 -> 508 at 128/128.
local function mask_branch(p)
  return p.causal == true
end

-- Causal key blocks longest first (Traits::LPT, bwd_block_coords in
-- fg_bwd_kernel.cuh), measured (test_gpu_backward bench, H200, causal,
-- 1k / 2k / 4k, two rounds, docs/PERF.md v23): head dims 128 288 -> 290,
-- 375 -> 387, 441 -> 461 TFLOP/s; 256 229 -> 233, 280 -> 289, 316 -> 328;
-- 64/64 269 -> 260, 355 -> 355, 422 -> 426, so not there.  Non-causal
-- every key block has the same work: launch order.
local function lpt(p)
  return p.causal == true and not (p.head_dim == 64 and p.head_dim_v == 64)
end

-- P^T computed while dP^T is in flight (Traits::P_FIRST, fg_bwd_wgmma.cuh),
-- from test_gpu_backward bench (H200, seqlen 4096, TMA loads, two runs
-- each, docs/PERF.md v12): head dim 64 380 / 350 TFLOP/s non-causal /
-- causal (378 / 279 after both land); 128 481 / 334 (480 / 414); 256 (the
-- column kernel) 330 / 306 (329 / 303).  With TMA loads at 128 too since
-- v23 (uniform descriptors, stmatrix): 525.5 / 447.5 against 519.5 / 445.5;
-- the cp.async kernels at 128 are not re-measured and keep it off.
local function p_first(p)
  return p.head_dim == 64 or p.head_dim == 256 or p.tma == true
end

-- The two kernels: the wgmma instructions each needs (Lua writes their
-- register lists), its device header, shape and entry point.
local KERNELS = {
  -- head dim 256: dK, dV and dQ split by columns over the two warpgroups
  cols = {
    what = "key block; the warpgroups split the columns", header = "fg_bwd_wgmma_cols.cuh", shape = "BwcShape",
    fn = "fg::attention_backward_wgmma_cols<Traits>",
    wgmma = function(out, p, ty)
      wgmma.ss(out, "wgmma_st", ty, 32, 0, 0)
      wgmma.ss(out, "wgmma_kv", ty, p.head_dim // 2, 0, 1)
      wgmma.ss(out, "wgmma_dq", ty, p.head_dim // 2, 1, 1)
    end,
    extra = function(p)
      return { string.format("static constexpr bool TMA = %s;", tostring(p.tma == true)),
               string.format("static constexpr bool P_FIRST = %s;", tostring(p_first(p))),
               string.format("static constexpr bool LPT = %s;", tostring(lpt(p))) }
    end,
    args = function(p) return p.tma and "p, &tm, smem" or "p, nullptr, smem" end,
  },
  -- head dims 64/128: each warpgroup 64 keys and every column
  rows = {
    what = "key block, 2 warpgroups", header = "fg_bwd_wgmma.cuh", shape = "BwgShape",
    fn = "fg::attention_backward_wgmma<Traits>",
    wgmma = function(out, p, ty)
      wgmma.ss(out, "wgmma_st", ty, p.block_m, 0, 0)
      wgmma.rs(out, "wgmma_dv", ty, p.head_dim_v)
      if p.head_dim_v == p.head_dim then
        out:line("#define wgmma_dk wgmma_dv")
      else
        wgmma.rs(out, "wgmma_dk", ty, p.head_dim)
      end
      -- dQ: N = head_dim / 2 by columns (DQ_COLS), else head_dim (fg_bwd_wgmma.cuh)
      wgmma.ss(out, "wgmma_dq", ty, dq_cols(p) and p.head_dim // 2 or p.head_dim, 1, 1)
    end,
    extra = function(p)
      return { string.format("static constexpr int TURNS = %d;", turns(p)),
               string.format("static constexpr bool DQ_COLS = %s;", tostring(dq_cols(p))),
               string.format("static constexpr bool DQ_LAG = %s;", tostring(dq_lag(p))),
               string.format("static constexpr bool MASK_BRANCH = %s;", tostring(mask_branch(p))),
               string.format("static constexpr bool P_FIRST = %s;", tostring(p_first(p))),
               string.format("static constexpr bool TMA = %s;", tostring(p.tma == true)),
               string.format("static constexpr bool LPT = %s;", tostring(lpt(p))) }
    end,
    args = function(p) return p.tma and "p, &tm, smem" or "p, nullptr, smem" end,
  },
}

return function(p)
  check(p)
  local ty = p.dtype == "bf16" and "bf16" or "f16"
  local smem = smem_bytes(p)

  local out = util.buffer()
  out:line("// flashgen generated kernel: Hopper backward (wgmma, sm_90a).")
  out:line("// Do not edit; print it again with: flashgen gen '%s'", p.spec or "")
  out:line("// variant: %s", p.key or "(none)")
  out:line("// head_dim=%d head_dim_v=%d dtype=%s causal=%s loads=%s", p.head_dim, p.head_dim_v, p.dtype, tostring(p.causal),
           p.tma and "TMA" or "cp.async")
  local k = cols_variant(p) and KERNELS.cols or KERNELS.rows
  out:line("// block_m=%d (query block) block_n=%d (%s) threads=256 dynamic_smem=%d bytes", p.block_m, p.block_n, k.what, smem)
  out:line('#include "fg_wgmma.cuh"')
  out:line("")
  out:line("namespace fg {")
  k.wgmma(out, p, ty)
  out:line("} // namespace fg")
  out:line("")
  out:line('#include "%s"', k.header)
  out:line("")
  traits(out, p, smem, k.shape, k.fn, k.extra(p), k.args(p))
  return {
    source = out:text(),
    kernel = "flashgen_bwd",
    threads = 256,
    smem_bytes = smem,
    head_dim_padded = p.head_dim,
  }
end
