#!/usr/bin/env python3
"""Block-sparse flashgen against dense flashgen and FlexAttention, with the
identical block mask.

For each sequence length (batch = 16384 / seqlen, 16 heads, head dim 128,
bf16) and each pattern (a sliding window whose width is chosen for the
target block density, and random blocks at that density): flashgen evaluates
the pattern into block lists; FlexAttention gets exactly those lists
(BlockMask.from_kv_blocks: full blocks as full_kv_*, partial blocks with a
mask_mod made from the pattern's element predicate).  Both outputs are
checked against a float32 reference on sampled rows and against each other
before anything is timed.  Timing: triton.testing.do_bench, median.

Prints per case: block density, dense and sparse flashgen time, the ratio
sparse / (density x dense) (target <= 1.15), FlexAttention's time and
flashgen's speedup over it.

The flashgen package (python/flashgen) does the flashgen side:
flashgen.Pattern evaluates the layout (Pattern.eval) and gives Flex its
element mask (Pattern.mask_mod); flashgen.attention(..., block_mask=pat)
runs the sparse kernel.  The library is the one the package finds
($FLASHGEN_LIBRARY, else build/, ...).

  python3 bench/sparse_flex.py [--seqlens 8192,16384] [--densities 0.1,0.25,0.5] [--csv out.csv]
"""
import argparse
import csv
import math
import os
import sys

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashgen  # noqa: E402

TOKENS, HEADS, HDIM = 16384, 16, 128


def block_density(lay):
    """Listed blocks / all blocks of a flashgen.BlockLayout."""
    n = int(lay.kv_num_blocks.sum()) + (int(lay.full_kv_num_blocks.sum()) if lay.full_kv_num_blocks is not None else 0)
    B, H, nq, nk = lay.kv_indices.shape
    return n / (B * H * nq * nk)


def window_for(seqlen, target, block):
    """The sliding-window half-width whose block density is closest to target."""
    lo, hi, best = 0, seqlen, None
    while lo <= hi:
        w = (lo + hi) // 2
        d = block_density(flashgen.Pattern("sliding_window", window=w, block_q=block, block_k=block).eval(seqlen, seqlen))
        if best is None or abs(d - target) < abs(best[1] - target):
            best = (w, d)
        if d < target:
            lo = w + 1
        else:
            hi = w - 1
    return best[0]


def reference_rows(q, k, v, lay, mask_mod, rows, block):
    """float32 attention of (batch 0, head 0) for the given query rows under the block layout and mask."""
    S, D = k.shape[1], k.shape[3]
    kf, vf = k[0, :, 0].float(), v[0, :, 0].float()
    j = torch.arange(S, device=q.device)
    out = []
    for i in rows:
        qb = i // block[0]
        r = (0, 0, qb)  # batch 0, head 0 (a broadcast layout has only these)
        full = lay.full_kv_indices[r][: int(lay.full_kv_num_blocks[r])].to(q.device, torch.int64) \
            if lay.full_kv_indices is not None else torch.empty(0, dtype=torch.int64, device=q.device)
        part = lay.kv_indices[r][: int(lay.kv_num_blocks[r])].to(q.device, torch.int64)
        kb = j // block[1]
        vis = torch.isin(kb, full)
        in_part = torch.isin(kb, part)
        if mask_mod is not None:
            z = torch.zeros((), dtype=torch.int64, device=q.device)
            elem = mask_mod(z, z, torch.full_like(j, i), j)
            vis = vis | (in_part & elem)
        else:
            vis = vis | in_part
        s = (kf @ q[0, i, 0].float()) / math.sqrt(D)
        s = torch.where(vis, s, float("-inf"))
        p = torch.softmax(s, 0)
        out.append(torch.nan_to_num(p) @ vf)
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seqlens", default="8192,16384")
    ap.add_argument("--densities", default="0.1,0.25,0.5")
    ap.add_argument("--patterns", default="sliding_window,random")
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--csv")
    args = ap.parse_args()
    torch._dynamo.config.cache_size_limit = 64
    torch._dynamo.config.accumulated_cache_size_limit = 512
    flex = torch.compile(flex_attention)
    blk = (args.block, args.block)
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}  head dim {HDIM}, bf16, {HEADS} heads, "
          f"batch = {TOKENS} / seqlen, blocks {blk[0]}x{blk[1]}\nflashgen: {flashgen.library_path()}", flush=True)
    hdr = ["seqlen", "pattern", "params", "target", "density", "fg_dense_ms", "fg_sparse_ms", "ratio", "ratio_ok",
           "flex_ms", "fg_vs_flex", "max_diff_fg_flex", "max_err_fg", "max_err_flex"]
    print(f"{'seqlen':>6} {'pattern':>15} {'target':>6} {'density':>7} {'dense ms':>9} {'sparse ms':>9} "
          f"{'t/(d*dense)':>11} {'flex ms':>8} {'fg/flex':>7} {'diff':>8}", flush=True)
    rows_out, failures, met, faster = [], 0, 0, 0
    torch.manual_seed(0)
    for S in map(int, args.seqlens.split(",")):
        B = max(1, TOKENS // S)
        q, k, v = (torch.randn(B, S, HEADS, HDIM, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o_dense, o_sparse = torch.empty_like(q), torch.empty_like(q)
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))  # Flex's [B, H, S, D] views of the same memory
        dense = lambda: flashgen.attention(q, k, v, out=o_dense)
        dense()
        dense_ms = do_bench(dense, warmup=25, rep=100, return_mode="median")
        for name in args.patterns.split(","):
            for target in map(float, args.densities.split(",")):
                if name == "sliding_window":
                    params = f"window={window_for(S, target, args.block)}"
                elif name == "random":
                    params = f"density={target};seed=1"
                else:
                    params = ""
                pat = flashgen.Pattern(name, params, block_q=blk[0], block_k=blk[1])
                lay = pat.eval(S, S, batch=B, heads=HEADS)
                dens = block_density(lay)
                mm = pat.mask_mod(S, S)
                cuda_or_none = lambda t: t.cuda() if t is not None else None
                bm = BlockMask.from_kv_blocks(
                    lay.kv_num_blocks.cuda(), lay.kv_indices.cuda(),
                    cuda_or_none(lay.full_kv_num_blocks), cuda_or_none(lay.full_kv_indices),
                    BLOCK_SIZE=blk, mask_mod=mm, seq_lengths=(S, S))
                sparse = lambda: flashgen.attention(q, k, v, block_mask=pat, out=o_sparse)
                sparse()
                o_flex = flex(qt, kt, vt, block_mask=bm).transpose(1, 2)
                torch.cuda.synchronize()
                rows = sorted({0, S // 3, S // 2, S - 1, args.block - 1, args.block})
                ref = reference_rows(q, k, v, lay, mm, rows, blk)
                err_fg = (o_sparse[0, rows, 0].float() - ref).abs().max().item()
                err_flex = (o_flex[0, rows, 0].float() - ref).abs().max().item()
                diff = (o_sparse.float() - o_flex.float()).abs().max().item()
                ok = err_fg < 2e-2 and err_flex < 2e-2 and diff < 3e-2 and not torch.isnan(o_sparse).any().item()
                if not ok:
                    failures += 1
                    print(f"{S:>6} {name:>15} {target:>6.2f}: WRONG RESULT (fg err {err_fg:.3g}, flex err {err_flex:.3g}, "
                          f"fg-flex {diff:.3g}): not timed", flush=True)
                    pat.close()
                    continue
                sp_ms = do_bench(sparse, warmup=25, rep=100, return_mode="median")
                fl_ms = do_bench(lambda: flex(qt, kt, vt, block_mask=bm), warmup=25, rep=100, return_mode="median")
                ratio = sp_ms / (dens * dense_ms)
                met += ratio <= 1.15
                faster += sp_ms < fl_ms
                print(f"{S:>6} {name:>15} {target:>6.2f} {100 * dens:>6.2f}% {dense_ms:>9.3f} {sp_ms:>9.3f} "
                      f"{ratio:>10.3f}{'*' if ratio > 1.15 else ' '} {fl_ms:>8.3f} {fl_ms / sp_ms:>6.2f}x {diff:>8.2g}",
                      flush=True)
                rows_out.append([S, name, params, target, f"{dens:.4f}", f"{dense_ms:.4f}", f"{sp_ms:.4f}", f"{ratio:.3f}",
                                 int(ratio <= 1.15), f"{fl_ms:.4f}", f"{fl_ms / sp_ms:.3f}", f"{diff:.3g}", f"{err_fg:.3g}",
                                 f"{err_flex:.3g}"])
                pat.close()
    n = len(rows_out)
    print(f"\n{n} cases timed, {failures} wrong; time <= 1.15 x density x dense in {met}/{n}; faster than FlexAttention in "
          f"{faster}/{n}  (* marks a missed ratio)")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(hdr)
            w.writerows(rows_out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
