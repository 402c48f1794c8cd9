#!/usr/bin/env python3
"""Time the peers on the BENCHMARK.md forward grid: PyTorch SDPA with the
FlashAttention-2 backend and with the cuDNN backend forced, in one process,
with triton's do_bench (median, L2 flushed between repeats).  Writes CSV rows
impl,dtype,hdim,causal,seqlen,batch,heads,ms,tflops.

  python3 bench/peers.py --csv peers.csv [--hdims 64,128,256] [--seqlens ...]
"""
import argparse
import csv
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--hdims", default="64,128,256")
    ap.add_argument("--seqlens", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--causal", default="both", choices=["both", "0", "1"])
    args = ap.parse_args()
    dt = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    causals = [False, True] if args.causal == "both" else [args.causal == "1"]
    backends = [("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)]
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    with open(args.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["impl", "dtype", "hdim", "causal", "seqlen", "batch", "heads", "ms", "tflops"])
        for d in map(int, args.hdims.split(",")):
            for causal in causals:
                for s in map(int, args.seqlens.split(",")):
                    b, h = 16384 // s, 2048 // d
                    q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=dt) for _ in range(3))
                    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0)
                    for name, be in backends:
                        try:
                            with sdpa_kernel(be):
                                fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                                fn()
                                ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
                        except Exception as e:  # a backend may refuse a shape
                            print(f"{name} d={d} causal={causal} s={s}: {type(e).__name__}: {e}", file=sys.stderr)
                            continue
                        tf = flops / (ms * 1e-3) / 1e12
                        w.writerow([name, args.dtype, d, int(causal), s, b, h, f"{ms:.5f}", f"{tf:.2f}"])
                        print(f"{name:11s} d={d:3d} causal={int(causal)} s={s:5d}  {ms:8.3f} ms  {tf:6.1f} TFLOP/s", flush=True)
                    del q, k, v


if __name__ == "__main__":
    main()
