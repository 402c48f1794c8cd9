#!/usr/bin/env python3
"""Accuracy against PyTorch SDPA on the same inputs: max |o - ref| where ref
is attention in float64 (SDPA's math backend on upcast tensors), for
flashgen and for SDPA's FlashAttention-2 backend in the same dtype.  The
core issue's criterion: flashgen's error at most 2x SDPA's.

SDPA's flash backend refuses is_causal with seqlen_q != seqlen_k, so the
causal cases here are square (bottom-right alignment with seqlen_q !=
seqlen_k is covered against the float64 reference by tests/test_gpu_forward).

Calls the shared library through a minimal ctypes declaration of
fg_attention_desc (python/ will hold the real binding).

  python3 bench/accuracy.py [--lib build/libflashgen.so]
"""
import argparse
import ctypes as C
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


class Desc(C.Structure):
    _fields_ = [("dtype", C.c_int), ("head_dim", C.c_int), ("batch", C.c_int), ("heads_q", C.c_int),
                ("heads_kv", C.c_int), ("seqlen_q", C.c_int), ("seqlen_k", C.c_int),
                ("q_strides", C.c_int64 * 3), ("k_strides", C.c_int64 * 3), ("v_strides", C.c_int64 * 3),
                ("o_strides", C.c_int64 * 3), ("softmax_scale", C.c_float), ("causal", C.c_int),
                ("layout", C.c_void_p), ("block_m", C.c_int), ("block_n", C.c_int), ("warps", C.c_int),
                ("stages", C.c_int), ("path", C.c_int)]


def strides_bshd(t):  # t: [b, s, h, d] -> (batch, head, row) element strides
    s = t.stride()
    return (s[0], s[2], s[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/libflashgen.so")
    args = ap.parse_args()
    lib = C.CDLL(args.lib)
    lib.fg_errmsg.restype = C.c_char_p
    ctx = C.c_void_p()
    assert lib.fg_context_create(C.byref(ctx)) == 0
    torch.manual_seed(0)
    worst = 0.0
    print(f"{'case':58s} {'fg max|err|':>12s} {'sdpa max|err|':>14s} {'ratio':>6s}")
    for dt, dtn in ((torch.bfloat16, 1), (torch.float16, 0)):
        for d in (64, 128, 256):
            for (b, hq, hkv, sq, sk, causal) in ((2, 8, 8, 1024, 1024, 0), (2, 8, 8, 1024, 1024, 2),
                                                  (2, 8, 2, 1000, 777, 0), (1, 4, 1, 777, 777, 2)):
                q = torch.randn(b, sq, hq, d, device="cuda", dtype=dt)
                k = torch.randn(b, sk, hkv, d, device="cuda", dtype=dt)
                v = torch.randn(b, sk, hkv, d, device="cuda", dtype=dt)
                o = torch.full_like(q, float("nan"))
                desc = Desc()
                lib.fg_attention_desc_init(C.byref(desc), dtn, d, b, hq, hkv, sq, sk)
                desc.q_strides[:] = strides_bshd(q)
                desc.k_strides[:] = strides_bshd(k)
                desc.v_strides[:] = strides_bshd(v)
                desc.o_strides[:] = strides_bshd(o)
                desc.causal = causal  # 2 = top-left, PyTorch's is_causal
                st = lib.fg_attention_forward(ctx, C.byref(desc), C.c_void_p(q.data_ptr()), C.c_void_p(k.data_ptr()),
                                              C.c_void_p(v.data_ptr()), C.c_void_p(o.data_ptr()), None,
                                              C.c_void_p(torch.cuda.current_stream().cuda_stream))
                if st != 0:
                    print("flashgen error:", lib.fg_errmsg(ctx).decode())
                    return 1
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
    lib.fg_context_destroy(ctx)
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
