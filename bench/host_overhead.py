#!/usr/bin/env python3
"""Host time per call: where the microseconds of one flashgen.attention go.

Small shapes (seqlen <= 1024, causal) run for 0.15-0.3 ms on an H100, so a
host path of tens of microseconds shows up in do_bench's numbers.  This
times, on a tiny shape (kernel time negligible, the GPU never the limit),
N back-to-back calls of:
  sdpa         torch SDPA (flash backend), for scale
  attention    flashgen.attention (the whole Python path)
  c_call       lib.fg_attention_forward through ctypes with a prepared
               descriptor (the C library's host path + ctypes)
  empty        torch.empty of the output (part of both)
  ctx_switch   _device.current(index) enter + exit
and prints microseconds per call.  Usage: python3 bench/host_overhead.py [N]
"""
import ctypes as C
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import torch  # noqa: E402
import flashgen  # noqa: E402
from flashgen import _device, _lib  # noqa: E402


def per_call(fn, n):
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    b, s, h, d = 1, 128, 1, 128
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = torch.empty_like(q)
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    from torch.nn.attention import sdpa_kernel, SDPBackend
    rows = []
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        rows.append(("sdpa", per_call(lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True), n)))
    rows.append(("attention", per_call(lambda: flashgen.attention(q, k, v, causal=True), n)))
    rows.append(("attention(out=)", per_call(lambda: flashgen.attention(q, k, v, causal=True, out=o), n)))
    lib = _lib.load()
    desc = _lib.fg_attention_desc()
    lib.fg_attention_desc_init(C.byref(desc), 1, d, b, h, h, s, s)
    desc.causal = 2  # top_left: what causal=True means in flashgen.attention
    idx = q.device.index or 0
    stream = torch.cuda.current_stream().cuda_stream
    with _device.current(idx):
        ctx = _device.context(idx)
        args = (ctx, C.byref(desc), q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), None, stream)
        rows.append(("c_call", per_call(lambda: lib.fg_attention_forward(*args), n)))
    rows.append(("empty", per_call(lambda: torch.empty(q.shape, dtype=q.dtype, device=q.device), n)))

    def switch():
        with _device.current(idx):
            pass
    rows.append(("ctx_switch", per_call(switch, n)))
    rows.append(("current_stream", per_call(lambda: torch.cuda.current_stream(q.device).cuda_stream, n)))
    print(f"host microseconds per call, {n} calls, b{b} s{s} h{h} d{d} bf16 causal ({torch.cuda.get_device_name()})")
    for name, us in rows:
        print(f"  {name:16s} {us:8.1f} us")


if __name__ == "__main__":
    main()
