-- bwd_mma.lua: renders the CUDA C++ of one backward variant for the portable
-- tensor-core path (mma.sync, sm_80 and up): three entry points in one
-- module, flashgen_bwd_pre (D = rowsum(dO * O)), flashgen_bwd (dK, dV and the
-- fp32 dQ accumulator) and flashgen_bwd_dq (dQ conversion).  The algorithm
-- is templates/fg_bwd_kernel.cuh.
--
-- params: head_dim, head_dim_v (value head dim, default head_dim; any
--         multiple of 8 up to 256: V, dO and dV are head_dim_v wide, the
--         reduction of dP^T = V dO^T and the N of dV += P^T dO follow it),
--         dtype ('fp16'|'bf16'), causal (bool), sparse (bool),
--         mask (optional C++ element mask of partial blocks), block_m (query tile, 32 or 64), block_n (key block, 16..128,
--         a multiple of 16), warps (block_n/16 or twice that), key, spec,
--         softcap, alibi, window, sink (true or absent: the built-in score
--         modifications, dense only), score and score_d (a user score
--         expression and its derivative, CUDA forms, dense only)
-- returns: { source, kernel, threads, smem_bytes, head_dim_padded }
--
-- Shared memory: K and Q rows of padded head_dim + 8 elements, V and dO
-- rows of padded head_dim_v + 8, P^T and dS^T rows of block_m + 8, then lse
-- and D.  A variant with head_dim_v == head_dim renders exactly as before
-- the value dim existed (Traits declare DV only when it differs).

local util = import("util")

local function check(p)
  util.expect_head_dim(p, "head_dim", 8, 8, "the backward pass")
  if p.head_dim_v == nil or p.head_dim_v == 0 then p.head_dim_v = p.head_dim end
  util.expect_head_dim(p, "head_dim_v", 8, 8, "the backward pass")
  util.expect_variant(p, "bwd")
  util.expect_enum(p, "block_m", { 32, 64 })
  util.expect_enum(p, "block_n", { 32, 64, 128 })
  local wn = p.block_n // 16
  if p.warps ~= wn and p.warps ~= 2 * wn then
    util.fail("warps (%s) must be block_n/16 (%d) or twice that", tostring(p.warps), wn)
  end
  local ws = p.warps // wn
  if (p.block_m // ws) % 16 ~= 0 then
    util.fail("block_m (%d) / column splits (%d) must be a multiple of 16", p.block_m, ws)
  end
  if p.warps % (p.block_m // 16) ~= 0 then
    util.fail("warps (%d) must be a multiple of block_m/16 (%d)", p.warps, p.block_m // 16)
  end
  return ws
end

return function(p)
  local ws = check(p)
  local dp, dvp = util.round_up(p.head_dim, 16), util.round_up(p.head_dim_v, 16)
  local lds, lds_v, ldp = dp + 8, dvp + 8, p.block_m + 8
  local threads = p.warps * 32
  local smem = ((p.block_n + p.block_m) * (lds + lds_v) + 2 * p.block_n * ldp) * 2 + 2 * p.block_m * 4
  local same = p.head_dim_v == p.head_dim

  local out = util.buffer()
  out:line("// flashgen generated kernel: portable tensor-core backward (mma.sync).")
  out:line("// Do not edit; print it again with: flashgen gen '%s'", p.spec or "")
  out:line("// variant: %s", p.key or "(none)")
  local dims = same and "" or string.format(" head_dim_v=%d (padded %d)", p.head_dim_v, dvp)
  out:line("// head_dim=%d (padded %d)%s dtype=%s causal=%s sparse=%s", p.head_dim, dp, dims, p.dtype, tostring(p.causal),
           tostring(p.sparse))
  out:line("// block_m=%d (query tile) block_n=%d (key block) warps=%d (%d key-row groups x %d column splits)",
           p.block_m, p.block_n, p.warps, p.block_n // 16, ws)
  out:line("// threads=%d dynamic_smem=%d bytes", threads, smem)
  util.mask_banner(out, p)
  util.mod_banner(out, p)
  out:line('#include "fg_bwd_kernel.cuh"')
  out:line("")
  out:line("struct Traits {")
  out:line("    static constexpr int D = %d, DP = %d;", p.head_dim, dp)
  if not same then out:line("    static constexpr int DV = %d;", p.head_dim_v) end
  out:line("    static constexpr int BM = %d, BN = %d, WARPS = %d;", p.block_m, p.block_n, p.warps)
  out:line("    static constexpr bool BF16 = %s, CAUSAL = %s, SPARSE = %s;", tostring(p.dtype == "bf16"),
           tostring(p.causal), tostring(p.sparse))
  util.mask_traits(out, p, "fg_bwd_params")
  util.mod_traits(out, p)
  out:line("};")
  out:line("static_assert(fg::BwdShape<Traits>::SMEM_ELEMS * 2 + 2 * Traits::BM * 4 == %d, \"smem formula\");", smem)
  out:line("")
  util.bwd_entries(out, threads, 16, "fg::attention_backward<Traits>")

  return {
    source = out:text(),
    kernel = "flashgen_bwd",
    threads = threads,
    smem_bytes = smem,
    head_dim_padded = dp,
  }
end
