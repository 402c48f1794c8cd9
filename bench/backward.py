#!/usr/bin/env python3
"""Attention backward pass in TFLOP/s: flashgen against PyTorch SDPA (cuDNN
and FlashAttention-2 backends) and FlashAttention-4 (when importable), in
one process on one GPU (issue 11's benchmark).

Grid (../shared/BENCHMARK.md): head dim 64, 128, 256 x causal no/yes x
seqlen 1024, 4096, 16384; 16384 tokens (batch = 16384 / seqlen), model
width 2048 (heads = 2048 / head dim); bf16 (--dtypes bf16,fp16 adds fp16).
--quick: head dim 128, seqlen 4096 and 16384 (4 shapes).
FLOPs = 2.5 x the forward's 4 * b * h * s^2 * d, halved for causal.
Causal is top-left = bottom-right here (square shapes).

What is timed: the backward alone, after one forward whose results are kept.
- flashgen: flashgen._autograd.attention_backward(q, k, v, o, lse, dout),
  the call under flashgen's autograd operator (fg_attention_backward, with
  dq, dk, dv and the workspace from PyTorch's allocator); o and lse from
  one flashgen.attention(..., return_lse=True).
- SDPA cuDNN / SDPA FA2 (sdpa_kernel(CUDNN_ATTENTION / FLASH_ATTENTION)
  around the forward, which picks the backward kernel) and FlashAttention-4
  (flash_attn.cute.flash_attn_func, [b, s, h, d] like flashgen):
  torch.autograd.grad(out, (q, k, v), dout, retain_graph=True).
The peers get their own copies of the same q, k, v and dout ([b, h, s, d]
for SDPA; dout with the strides of each peer's output).  Each
implementation's first backward (it compiles: flashgen's NVRTC kernels,
FlashAttention-4's CuTe DSL) and one more call stay out of the timing; then
triton.testing.do_bench(fn, warmup=25, rep=max(100, 10 x one call's ms),
return_mode="median") (CUDA events, L2 cleared before each repeat; at
least about 10 repeats).

Checks before timing: each peer's dq, dk, dv against flashgen's (relative
L2 <= 2e-2 bf16, 5e-3 fp16, no NaN).  A peer that differs is still timed
(the row says what differs) but gets no flashgen / peer ratio; a shape
where flashgen differs from every peer that ran is counted as wrong (exit
status 1).  "best" is the faster of cuDNN and FlashAttention-4 (issue 11's
bar).  Which flashgen backward kernel family runs (bwd_mma, bwd_wgmma) is
not reported: the library names only the forward's kernel
(fg_attention_kernel_name).

Prints a table as it goes; rewrites OUT/backward.csv and OUT/backward.json
after each shape; at the end draws OUT/backward_tflops.png (bf16;
backward_tflops_fp16.png for fp16) when matplotlib is installed (else a
line says there are no charts).  No shape
starts after --time-limit seconds (480; --quick 300); the ones left are
listed.  --replot OUT redraws the charts from OUT/backward.json.

  python3 bench/backward.py --out DIR [--quick] [--dtypes bf16,fp16] [--peers cudnn,fa2,fa4]
"""
import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vs_torch  # noqa: E402
from vs_torch import (attn_flops, bench_main, check, fmt, import_fa4, int_list, plot_dtypes,  # noqa: E402 (shared
                      run_meta, within, write_results)  # with the forward benchmark)

IMPLS = [("flashgen", "flashgen"), ("cudnn", "SDPA cuDNN"), ("fa2", "SDPA FA2"), ("fa4", "FlashAttention-4")]
PEERS = ["cudnn", "fa2", "fa4"]
BEST_OF = ["cudnn", "fa4"]  # "best peer": the faster of these at each shape
TOL = {"bf16": 2e-2, "fp16": 5e-3}  # relative L2 of a peer's gradient against flashgen's
RATIOS = [f"fg/{p}" for p in PEERS] + ["fg/best"]
COLS = ["dtype", "hdim", "causal", "seqlen", "batch", "heads", "check"] + \
       [f"{p}_{c}" for p in PEERS for c in ("check", "rel_l2")] + [f"{i}_ms" for i, _ in IMPLS] + \
       [f"{i}_tflops" for i, _ in IMPLS] + RATIOS + ["notes"]
NO_KERNEL_NAME = "not reported (the library names only the forward's kernel, fg_attention_kernel_name)"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/backward", help="folder for backward.csv, .json, _tflops.png")
    ap.add_argument("--hdims", type=int_list, default=None, help="head dims (64,128,256; --quick: 128)")
    ap.add_argument("--seqlens", type=int_list, default=None, help="sequence lengths (1024,4096,16384; "
                                                                   "--quick: 4096,16384)")
    ap.add_argument("--dtypes", default="bf16", help="bf16, fp16 or bf16,fp16 (bf16)")
    ap.add_argument("--causal", default="both", choices=["both", "0", "1"], help="(both)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"peers to run ({','.join(PEERS)})")
    ap.add_argument("--quick", action="store_true", help="head dim 128, seqlen 4096 and 16384 unless given")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds after which no shape starts (480; "
                                                                   "--quick 300)")
    ap.add_argument("--replot", metavar="DIR", help="only redraw the charts from DIR/backward.json")
    a = ap.parse_args(argv)
    if a.replot:
        return a
    a.hdims = a.hdims or ([128] if a.quick else [64, 128, 256])
    a.seqlens = a.seqlens or ([4096, 16384] if a.quick else [1024, 4096, 16384])
    a.time_limit = a.time_limit if a.time_limit is not None else 300.0 if a.quick else 480.0
    a.dtypes = [d for d in a.dtypes.split(",") if d]
    a.peers = [p for p in a.peers.split(",") if p]
    for d in a.dtypes:
        if d not in TOL:
            ap.error(f"--dtypes: {d!r} is not bf16 or fp16")
    for p in a.peers:
        if p not in PEERS:
            ap.error(f"--peers: {p!r} is not one of {','.join(PEERS)}")
    for d in a.hdims:
        if d > 256 or d % 8 or 2048 % d:
            ap.error(f"--hdims: {d}: need a multiple of 8 up to 256 that divides the width 2048")
    for s in a.seqlens:
        if 16384 % s:
            ap.error(f"--seqlens: {s} does not divide 16384 tokens")
    return a


class Backwards:
    """Each implementation's backward on one shape: make(impl, ...) runs the
    forward once and the first backward, and returns (the timed call, its
    (dq, dk, dv) in [b, s, h, d])."""

    def __init__(self, torch, peers):
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
        sys.path.insert(0, os.path.join(HERE, "..", "python"))
        import flashgen
        from flashgen import _autograd
        self.torch, self.F, self.sdpa_kernel, self.flashgen, self.autograd = torch, F, sdpa_kernel, flashgen, _autograd
        self.backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "fa2": SDPBackend.FLASH_ATTENTION}
        self.fa4 = import_fa4("flash_attn_func") if "fa4" in peers else None

    def make(self, impl, q, k, v, dout, causal):
        if impl == "flashgen":
            c = "top_left" if causal else False
            o, lse = self.flashgen.attention(q, k, v, causal=c, return_lse=True)
            fn = lambda: self.autograd.attention_backward(q, k, v, o, lse, dout, causal=c, scale=None, layout="bshd",
                                                          deterministic=False)
            return fn, fn()
        t = self.torch
        if impl == "fa4":
            ins = [x.detach().clone().requires_grad_() for x in (q, k, v)]
            r = self.fa4(*ins, causal=causal)
            out = r[0] if isinstance(r, tuple) else r  # (out, lse) in some versions
            g = t.empty_like(out).copy_(dout)
            fn = lambda: t.autograd.grad(out, ins, g, retain_graph=True)
            return fn, fn()
        ins = [x.transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v)]  # [b, h, s, d]
        with self.sdpa_kernel(self.backends[impl]):
            out = self.F.scaled_dot_product_attention(*ins, is_causal=causal)
        g = t.empty_like(out).copy_(dout.transpose(1, 2))  # dout as the output is laid out
        fn = lambda: t.autograd.grad(out, ins, g, retain_graph=True)
        return fn, [x.transpose(1, 2) for x in fn()]


def compare(torch, grads, ref, dtn):
    """('ok' or what differs, the largest relative L2) of (dq, dk, dv) against ref."""
    bad, worst = [], 0.0
    for name, g, r in zip(("dq", "dk", "dv"), grads, ref):
        ok, rel, msg = check(torch, g, r, dtn, TOL[dtn])
        worst = max(worst, rel) if not math.isnan(rel) else math.nan
        if not ok:
            bad.append(f"{name} {msg}")
    return "; ".join(bad) or "ok", worst


def timed(torch, do_bench, fn):
    """Median ms of fn (warmed up): do_bench with rep >= 10 calls of one call's time."""
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    e.synchronize()
    return do_bench(fn, warmup=25, rep=max(100.0, 10 * s.elapsed_time(e)), return_mode="median")


def run_shape(torch, do_bench, bw, a, dtn, d, causal, s):
    dt = torch.bfloat16 if dtn == "bf16" else torch.float16
    b, h = 16384 // s, 2048 // d
    q, k, v, dout = (torch.randn(b, s, h, d, device="cuda", dtype=dt) for _ in range(4))
    flops = 2.5 * attn_flops(b, h, s, s, d, causal=causal)
    r = {"dtype": dtn, "hdim": d, "causal": int(causal), "seqlen": s, "batch": b, "heads": h, "notes": []}
    ref = None
    for impl, _ in IMPLS:
        if impl != "flashgen" and (impl not in a.peers or (impl == "fa4" and bw.fa4 is None)):
            continue  # FlashAttention-4 not importable: said once at the start
        try:
            fn, grads = bw.make(impl, q, k, v, dout, causal)  # forward once, first backward (compiles)
            if impl == "flashgen":
                ref, r["check"] = grads, "ok"
            elif ref is not None:
                r[f"{impl}_check"], rel = compare(torch, grads, ref, dtn)
                r[f"{impl}_rel_l2"] = f"{rel:.3e}"
            del grads
            ms = timed(torch, do_bench, fn)
        except Exception as e:  # a backend may refuse a shape
            msg = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            if impl == "flashgen":
                r["check"] = msg
            else:
                r["notes"].append(f"{impl}: {msg}")
            continue
        finally:
            fn = None  # the peer's graph and gradients go before the next one
        r[f"{impl}_ms"] = round(ms, 5)
        r[f"{impl}_tflops"] = round(flops / (ms * 1e-3) / 1e12, 2)
    fg = r.get("flashgen_tflops")
    ok = [p for p in PEERS if r.get(f"{p}_check") == "ok" and r.get(f"{p}_tflops")]
    for p in PEERS:
        r[f"fg/{p}"] = round(fg / r[f"{p}_tflops"], 3) if fg and p in ok else None
    best = max([r[f"{p}_tflops"] for p in BEST_OF if p in ok], default=None)
    r["fg/best"] = round(fg / best, 3) if fg and best else None
    checked = [p for p in PEERS if r.get(f"{p}_check")]
    if checked and not any(r[f"{p}_check"] == "ok" for p in checked):
        r["check"] = f"differs from every peer ({', '.join(checked)})"
    return r


def write(out, meta, rows):
    write_results(out, "backward", COLS, meta, [dict(r, notes="; ".join(r.get("notes", []))) for r in rows])


TABLE = [(n, f"{i}_tflops", ".1f") for i, n in [("flashgen", "flashgen"), ("cudnn", "cuDNN"), ("fa2", "FA2"),
                                                   ("fa4", "FA4")]] + \
        [(n, c, ".2f") for c, n in zip(RATIOS, ["fg/cuDNN", "fg/FA2", "fg/FA4", "fg/best"])]
HEADER = f"{'dtype':5s} {'hdim':>4s} {'causal':>6s} {'seqlen':>6s} " + " ".join(f"{n:>8s}" for n, _, _ in TABLE) + \
         "   backward TFLOP/s"


def print_row(r):
    line = f"{r['dtype']:5s} {r['hdim']:4d} {'yes' if r['causal'] else 'no':>6s} {r['seqlen']:6d} " + \
           " ".join(f"{fmt(r.get(c), f):>8s}" for _, c, f in TABLE)
    if r["check"] != "ok":
        line += f"   flashgen: {r['check']}"
    line += "".join(f"   {p} differs from flashgen: {r[f'{p}_check']}" for p in PEERS
                    if r.get(f"{p}_check") not in (None, "ok"))
    print(line + "".join("   " + n for n in r.get("notes", [])), flush=True)


def summary(rows):
    """Geomean and lowest of each flashgen / peer ratio over the shapes that have it."""
    return "\n".join(vs_torch.summary(rows, col, what) for col, what in zip(RATIOS, [n for _, n in IMPLS[1:]] + [
        "best peer (faster of cuDNN and FlashAttention-4)"]))


def run(a):
    import torch
    from triton.testing import do_bench
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    bw = Backwards(torch, a.peers)
    meta = run_meta(torch, bw.flashgen, peers=a.peers, fa4=bool(bw.fa4), flashgen_bwd_kernel=NO_KERNEL_NAME,
                    timing="backward alone after one forward: triton.testing.do_bench(warmup=25, rep=max(100, 10 x "
                           "one call), return_mode='median') after two untimed calls",
                    flops="2.5 * 4*b*h*s^2*d, halved for causal", tolerance=TOL)
    print(f"flashgen backward kernel: {NO_KERNEL_NAME}")
    print(HEADER, flush=True)
    rows = []
    grid = [(dtn, d, c, s) for dtn in a.dtypes for d in a.hdims for c in ([0, 1] if a.causal == "both" else
                                                                         [int(a.causal)]) for s in a.seqlens]
    for dtn, d, c, s in within(grid, a.time_limit, meta, "dtype, hdim, causal, seqlen"):
        rows.append(run_shape(torch, do_bench, bw, a, dtn, d, bool(c), s))
        print_row(rows[-1])
        write(a.out, meta, rows)
    write(a.out, meta, rows)
    wrong = [r for r in rows if r["check"] != "ok"]
    print(f"{len(rows)} shapes in {meta['seconds']} s; flashgen failing or differing from every peer on {len(wrong)}; "
          f"results in {a.out}")
    if bw.fa4 is None and "fa4" in a.peers:
        print("FlashAttention-4: not importable, not timed")
    print(summary(rows))
    plot(a.out)
    return 1 if wrong else 0


def plot(out):
    """OUT/backward_tflops.png (bf16; backward_tflops_<dtype>.png for another dtype) from OUT/backward.json."""
    plot_dtypes(out, "backward", IMPLS, "backward",
                lambda dtn: "backward_tflops.png" if dtn == "bf16" else f"backward_tflops_{dtn}.png")


def main(argv=None):
    return bench_main(argv, parse_args, run, plot)


if __name__ == "__main__":
    sys.exit(main())
