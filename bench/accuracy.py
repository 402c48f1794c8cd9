#!/usr/bin/env python3
"""Accuracy against PyTorch SDPA on the same inputs: max |o - ref| where ref
is attention in float64 (SDPA's math backend on upcast tensors), for
flashgen and for SDPA's FlashAttention-2 backend in the same dtype.  The
core issue's criterion: flashgen's error at most 2x SDPA's.

SDPA's flash backend refuses is_causal with seqlen_q != seqlen_k, so the
causal cases here are square (bottom-right alignment with seqlen_q !=
seqlen_k is covered against the float64 reference by tests/test_gpu_forward).

Runs flashgen through the flashgen package (python/flashgen; the library
it finds: $FLASHGEN_LIBRARY, else build/, ...).

  python3 bench/accuracy.py
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashgen  # noqa: E402


def main():
    torch.manual_seed(0)
    print(f"flashgen: {flashgen.library_path()}")
    worst = 0.0
    print(f"{'case':58s} {'fg max|err|':>12s} {'sdpa max|err|':>14s} {'ratio':>6s}")
    for dt in (torch.bfloat16, torch.float16):
        for d in (64, 128, 256):
            for (b, hq, hkv, sq, sk, causal) in ((2, 8, 8, 1024, 1024, 0), (2, 8, 8, 1024, 1024, 1),
                                                  (2, 8, 2, 1000, 777, 0), (1, 4, 1, 777, 777, 1)):
                q = torch.randn(b, sq, hq, d, device="cuda", dtype=dt)
                k = torch.randn(b, sk, hkv, d, device="cuda", dtype=dt)
                v = torch.randn(b, sk, hkv, d, device="cuda", dtype=dt)
                o = torch.full_like(q, float("nan"))  # every element must be written
                flashgen.attention(q, k, v, causal="top_left" if causal else False, out=o)  # PyTorch's is_causal
                torch.cuda.synchronize()
                qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
                gqa = hq != hkv
                ref = F.scaled_dot_product_attention(qt.double(), kt.double(), vt.double(), is_causal=bool(causal),
                                                     enable_gqa=gqa).transpose(1, 2)
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    sd = F.scaled_dot_product_attention(qt, kt, vt, is_causal=bool(causal), enable_gqa=gqa).transpose(1, 2)
                e_fg = (o.double() - ref).abs().max().item()
                e_sd = (sd.double() - ref).abs().max().item()
                ratio = e_fg / e_sd if e_sd > 0 else float("inf")
                worst = max(worst, ratio)
                name = f"{str(dt)[6:]} d={d} b={b} hq={hq} hkv={hkv} sq={sq} sk={sk} causal={'top_left' if causal else 'none'}"
                print(f"{name:58s} {e_fg:12.3e} {e_sd:14.3e} {ratio:6.2f}")
    print(f"worst ratio flashgen/SDPA: {worst:.2f} (criterion: <= 2)")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
