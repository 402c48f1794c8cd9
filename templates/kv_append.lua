-- kv_append.lua: renders fg_kv_append's module for one (dtype, head_dim,
-- head_dim_v): two entry points, flashgen_kv_append (the copy) and
-- flashgen_kv_append_advance (seqlens_k += seqlen_new).  The algorithm is
-- templates/fg_kv_append.cuh; a copy, so the dtype only names the variant.
--
-- params: head_dim, head_dim_v (multiples of 8 in 8..256), dtype
--         ('fp16'|'bf16'), warps (4 or 8), key, spec
-- returns: { source, kernel, threads, smem_bytes }

local util = import("util")

return function(p)
  util.expect_head_dim(p, "head_dim", 8, 8, "kv_append")
  util.expect_head_dim(p, "head_dim_v", 8, 8, "kv_append")
  util.expect_enum(p, "dtype", { "fp16", "bf16" })
  util.expect_enum(p, "warps", { 4, 8 })
  local threads = p.warps * 32

  local out = util.buffer()
  out:line("// flashgen generated kernel: KV-cache append (fg_kv_append).")
  out:line("// variant: %s", p.key or "(none)")
  out:line("// head_dim=%d head_dim_v=%d dtype=%s threads=%d", p.head_dim, p.head_dim_v, p.dtype, threads)
  out:line('#include "fg_kv_append.cuh"')
  out:line("")
  out:line("struct Traits {")
  out:line("    static constexpr int D = %d, DV = %d, THREADS = %d;", p.head_dim, p.head_dim_v, threads)
  out:line("    static constexpr bool BF16 = %s;", tostring(p.dtype == "bf16"))
  out:line("};")
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(%d)', threads)
  out:line("flashgen_kv_append(const __grid_constant__ fg_append_params p) { fg::kv_append_copy<Traits>(p); }")
  out:line("")
  out:line('extern "C" __global__ void __launch_bounds__(%d)', threads)
  out:line("flashgen_kv_append_advance(const __grid_constant__ fg_append_params p) { fg::kv_append_advance<Traits>(p); }")

  return {
    source = out:text(),
    kernel = "flashgen_kv_append",
    threads = threads,
    smem_bytes = 0,
  }
end
