#!/usr/bin/env python3
"""flashgen against PyTorch SDPA (FlashAttention-2 and cuDNN backends),
FlexAttention (torch.compile) and FlashAttention-4 (when importable),
forward, on the ../shared/BENCHMARK.md grid, in one process on one GPU.

Shapes: 16384 tokens (batch = 16384 / seqlen), model width 2048 (heads =
2048 / hdim, rounded down where hdim does not divide it, e.g. 10 at 192).  FLOPs = 2 * batch * heads * seqlen_q * seqlen_k * (hdim +
hdim_v), halved for causal (attn_flops; --hdims 192:128 gives v its own head
dim; with hdim_v = hdim this is 4 * b * h *
s^2 * d).  Every implementation is timed the same way: one warm-up call (it
also compiles: flashgen's NVRTC kernel, Flex's torch.compile graph), then
triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") (CUDA
events, L2 cleared before each repeat).  Inputs: random normal; flashgen gets
[b, s, h, d] tensors (its native layout), the peers [b, h, s, d] tensors
(theirs) holding the same values; FlashAttention-4 takes flashgen's
[b, s, h, d] tensors.  Causal is top-left = bottom-right here (square
shapes): SDPA is_causal, Flex a causal mask_mod through create_block_mask,
FlashAttention-4 causal=True.

FlashAttention-4 (pip package flash-attn-4, `from flash_attn.cute import
flash_attn_func`; ../shared/tools/fa4-peer.sh brings it to a machine without
network) is a peer when it imports; otherwise a line says why and its column
stays n/a.  Its first call per shape compiles (CuTe DSL JIT); that call is
also checked against the reference like flashgen's, and a wrong result is
reported and not timed.

Before a shape is timed, flashgen's output is compared with SDPA's (FA2
backend, else cuDNN, else the default) on the same inputs: relative L2
error <= 1e-2 (bf16) / 2e-3 (fp16) and no NaN.  A wrong result is reported
and not timed.  A peer that fails on a shape is recorded as n/a.  "best"
is the faster of cuDNN and FlashAttention-4 at each shape (issue 10's bar);
the summary gives the geomean and the lowest flashgen / best.  While each
implementation is timed, NVML (through the driver's libnvidia-ml) samples
the SM clock and the power: <impl>_mhz and <impl>_watts in the results, and
their means in the summary (an H200 under load settles at its 700 W cap
and 1600-1700 MHz, so TFLOP/s follow energy per FLOP there).

Prints a table (TFLOP/s and flashgen / peer) as it goes, and rewrites
OUT/results.csv and OUT/results.json after each shape (so a run cut short
keeps what it measured); at the end draws OUT/tflops_<dtype>.png: one panel
per head dim x causal, grouped bars per seqlen, as in the FlashAttention
README.  --replot OUT redraws the charts from OUT/results.json.

  python3 bench/vs_torch.py --out out/bench [--dtypes bf16,fp16] [--quick]
"""
import argparse
import csv
import datetime
import json
import math
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMPLS = [("flashgen", "flashgen"), ("fa2", "SDPA FA2"), ("cudnn", "SDPA cuDNN"), ("flex", "FlexAttention"),
         ("fa4", "FlashAttention-4")]
PEERS = ["fa2", "cudnn", "flex", "fa4"]
BEST_OF = ["cudnn", "fa4"]  # "best peer": the faster of these at each shape
FULL_SEQLENS = "512,1024,2048,4096,8192,16384"
QUICK_SEQLENS = "1024,4096,16384"  # the seqlens BENCHMARK.md gives Flex figures for


def attn_flops(batch, heads, seqlen_q, seqlen_k, hdim, hdim_v=None, causal=False):
    """Forward FLOPs: two GEMMs, 2*b*h*sq*sk*d (Q K^T) + 2*b*h*sq*sk*dv (P V),
    dv = d unless given; halved for causal (BENCHMARK.md's convention)."""
    dv = hdim if hdim_v is None else hdim_v
    return 2 * batch * heads * seqlen_q * seqlen_k * (hdim + dv) * (0.5 if causal else 1.0)


def int_list(s):
    try:
        v = [int(x) for x in s.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {s!r}")
    if not v or min(v) <= 0:
        raise argparse.ArgumentTypeError(f"need positive integers: {s!r}")
    return v


def dims_list(s):
    """--hdims: head dims, each d or d:dv (a value head dim of its own)."""
    out = []
    for item in (x for x in s.split(",") if x):
        parts = item.split(":")
        try:
            d = int(parts[0])
            dv = int(parts[1]) if len(parts) == 2 else d
        except (ValueError, IndexError):
            raise argparse.ArgumentTypeError(f"not d or d:dv: {item!r}")
        if len(parts) > 2 or d <= 0 or dv <= 0:
            raise argparse.ArgumentTypeError(f"not d or d:dv with positive integers: {item!r}")
        out.append((d, dv))
    if not out:
        raise argparse.ArgumentTypeError(f"no head dims in {s!r}")
    return out


def dims_label(d, dv):
    return str(d) if dv == d else f"{d}/{dv}"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/bench", help="folder for results.csv, results.json, tflops_*.png")
    ap.add_argument("--hdims", type=dims_list, default=[(64, 64), (128, 128), (256, 256)],
                    help="head dims, each d or d:dv for a value head dim of its own, e.g. 192:128 (64,128,256)")
    ap.add_argument("--seqlens", type=int_list, default=None, help=f"sequence lengths ({FULL_SEQLENS})")
    ap.add_argument("--dtypes", default="bf16", help="bf16, fp16 or bf16,fp16 (bf16)")
    ap.add_argument("--causal", default="both", choices=["both", "0", "1"], help="(both)")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"peers to run ({','.join(PEERS)})")
    ap.add_argument("--flex-seqlens", type=int_list, default=None,
                    help="time Flex only at these seqlens (default: all); each new shape costs Flex a compile")
    ap.add_argument("--quick", action="store_true", help=f"seqlens {QUICK_SEQLENS} unless --seqlens is given")
    ap.add_argument("--replot", metavar="DIR", help="only redraw the charts from DIR/results.json")
    a = ap.parse_args(argv)
    if a.replot:
        return a
    a.seqlens = a.seqlens or int_list(QUICK_SEQLENS if a.quick else FULL_SEQLENS)
    a.dtypes = a.dtypes.split(",")
    a.peers = [p for p in a.peers.split(",") if p]
    for d in a.dtypes:
        if d not in ("bf16", "fp16"):
            ap.error(f"--dtypes: {d!r} is not bf16 or fp16")
    for p in a.peers:
        if p not in PEERS:
            ap.error(f"--peers: {p!r} is not one of {','.join(PEERS)}")
    for d, dv in a.hdims:
        if d > 256 or dv > 256:
            ap.error(f"--hdims: {dims_label(d, dv)}: head dims go up to 256")
    for s in a.seqlens:
        if 16384 % s:
            ap.error(f"--seqlens: {s} does not divide 16384 tokens")
    return a


def import_fa4(name):
    """flash_attn.cute.<name> (FlashAttention-4), or None after a line saying why."""
    try:
        import flash_attn.cute as fa4
        return getattr(fa4, name)
    except Exception as e:  # ImportError, or a broken install failing inside its import
        print(f"FlashAttention-4: not importable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
              "its column stays n/a (../shared/tools/fa4-peer.sh installs it)", flush=True)
        return None


def run_meta(torch, flashgen, **more):
    """What results.json says about the run: GPU, versions, date, command, host, library."""
    meta = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv), "host": platform.node(),
            "flashgen_library": flashgen.library_path()}
    meta.update(more)
    print(f"GPU: {meta['gpu']}  torch {meta['torch']}  CUDA {meta['cuda']}  cuDNN {meta['cudnn']}\n"
          f"flashgen: {meta['flashgen_library']}", flush=True)
    return meta


def write_results(out, stem, cols, meta, rows):
    """OUT/<stem>.csv (the columns cols) and OUT/<stem>.json (meta and rows)."""
    with open(os.path.join(out, f"{stem}.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)


def chart_input(out, stem):
    """(matplotlib.pyplot on the Agg backend, meta, rows) of OUT/<stem>.json;
    None (said on stderr) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no charts", file=sys.stderr)
        return None
    with open(os.path.join(out, f"{stem}.json")) as f:
        data = json.load(f)
    return plt, data["meta"], data["rows"]


def raise_dynamo_limits(torch):
    """One graph per shape: the default limit (8) would fall back to eager after 8 shapes."""
    cfg = torch._dynamo.config
    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, 4096)


class GpuSampler:
    """SM clock (MHz) and power (W) of the GPU torch runs on, through NVML
    (libnvidia-ml.so.1 by ctypes: it ships with the driver, so no package is
    needed).  An H200 runs short bursts at its boost clock and a second of
    load at its power cap, 10-12% slower (docs/PERF.md v14): recorded per
    implementation and shape, so that a ratio can be read against the clock
    and the energy each ran at.  The clock is sampled every 5 ms on a
    thread; the power comes from the energy counter's steps inside the window
    (power_from_energy; NVML's power reading averages over a second, longer
    than a timing).
    mean(t0, t1) -> (MHz, W) for a window of time.time(), (None, None)
    without NVML."""

    def __init__(self, torch):
        import ctypes
        import threading
        self.samples, self.ok, self.energy = [], False, []
        try:
            nv = ctypes.CDLL("libnvidia-ml.so.1")
            handle = ctypes.c_void_p()
            if nv.nvmlInit_v2():
                return
            # the device torch uses (NVML counts GPUs in its own order and
            # ignores CUDA_VISIBLE_DEVICES): by UUID
            uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
            uuid = uuid if uuid.startswith("GPU-") else "GPU-" + uuid
            if nv.nvmlDeviceGetHandleByUUID(uuid.encode(), ctypes.byref(handle)):
                return
        except (OSError, AttributeError, RuntimeError):
            return
        self.ok = True
        mhz, mj = ctypes.c_uint(), ctypes.c_ulonglong()

        def loop():
            while self.ok:
                now = time.time()
                if not nv.nvmlDeviceGetClockInfo(handle, 1, ctypes.byref(mhz)):  # 1: NVML_CLOCK_SM
                    self.samples.append((now, mhz.value))
                if not nv.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(mj)):  # mJ since load
                    self.energy.append((now, mj.value))
                if len(self.samples) > 200000:
                    del self.samples[:100000]
                if len(self.energy) > 200000:
                    del self.energy[:100000]
                time.sleep(0.005)

        threading.Thread(target=loop, daemon=True).start()

    def mean(self, t0, t1):
        c = [x[1] for x in self.samples[-5000:] if t0 <= x[0] <= t1]
        e = [x for x in self.energy[-5000:] if t0 <= x[0] <= t1]
        mhz = round(sum(c) / len(c)) if c else None
        return mhz, power_from_energy(e)


def power_from_energy(e, min_span=0.05):
    """Mean watts from (time s, energy mJ) samples of NVML's energy counter,
    or None.  The counter moves in steps tens of milliseconds apart, so the
    difference between the first and last sample of a 100 ms window mixes
    whole steps with fractions of the window (session 8's grid read 0 W and
    1400 W for single shapes that way).  This takes the energy between the
    first and the last step seen in the window over the time between them,
    and gives None unless those steps are at least min_span apart."""
    steps = [e[i] for i in range(1, len(e)) if e[i][1] != e[i - 1][1]]
    if len(steps) < 2 or steps[-1][0] - steps[0][0] < min_span:
        return None
    return round((steps[-1][1] - steps[0][1]) / 1000.0 / (steps[-1][0] - steps[0][0]), 1)


class Runner:
    """The implementations on one shape; each returns o in [b, s, h, d]."""

    def __init__(self, torch, peers):
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
        sys.path.insert(0, os.path.join(HERE, "..", "python"))
        import flashgen
        self.torch, self.F, self.SDPBackend, self.sdpa_kernel, self.flashgen = torch, F, SDPBackend, sdpa_kernel, flashgen
        self.flex = self.block_masks = self.fa4 = None
        if "fa4" in peers:
            self.fa4 = import_fa4("flash_attn_func")
        if "flex" in peers:
            try:
                from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            except ImportError as e:
                print(f"FlexAttention unavailable: {e}", file=sys.stderr)
            else:
                raise_dynamo_limits(torch)
                self.flex = torch.compile(flex_attention, dynamic=False)
                self.create_block_mask = create_block_mask

    def set_shape(self, q, k, v, causal):
        """q, k, v: [b, s, h, d] contiguous; the peers get [b, h, s, d] copies."""
        t = self.torch
        self.q, self.k, self.v, self.causal = q, k, v, causal
        self.qh, self.kh, self.vh = (x.transpose(1, 2).contiguous() for x in (q, k, v))
        self.out = t.empty(q.shape[:3] + v.shape[3:], dtype=q.dtype, device=q.device)
        self.bm = None
        if self.flex is not None and causal:
            s = q.shape[1]
            self.bm = self.create_block_mask(lambda b, h, i, j: i >= j, None, None, s, s, device=q.device)

    def fn(self, impl):
        F = self.F
        if impl == "flashgen":
            return lambda: self.flashgen.attention(self.q, self.k, self.v, causal=self.causal and "top_left",
                                                   out=self.out)
        if impl in ("fa2", "cudnn"):
            be = self.SDPBackend.FLASH_ATTENTION if impl == "fa2" else self.SDPBackend.CUDNN_ATTENTION

            def sdpa():
                with self.sdpa_kernel(be):
                    return F.scaled_dot_product_attention(self.qh, self.kh, self.vh, is_causal=self.causal)
            return sdpa
        if impl == "flex":
            if self.flex is None:
                raise RuntimeError("FlexAttention is not available in this torch")
            return lambda: self.flex(self.qh, self.kh, self.vh, block_mask=self.bm)
        if impl == "fa4":
            if self.fa4 is None:
                raise RuntimeError("FlashAttention-4 is not importable")

            def fa4():
                r = self.fa4(self.q, self.k, self.v, causal=self.causal)  # [b, s, h, d], like flashgen
                return r[0] if isinstance(r, tuple) else r  # (out, lse) in some versions
            return fa4
        raise ValueError(impl)

    def available(self, impl):
        return not ((impl == "flex" and self.flex is None) or (impl == "fa4" and self.fa4 is None))

    def reference(self):
        """SDPA's output in [b, s, h, d] and the backend that gave it."""
        for name, be in (("fa2", self.SDPBackend.FLASH_ATTENTION), ("cudnn", self.SDPBackend.CUDNN_ATTENTION),
                         ("sdpa", None)):
            try:
                if be is None:
                    o = self.F.scaled_dot_product_attention(self.qh, self.kh, self.vh, is_causal=self.causal)
                else:
                    with self.sdpa_kernel(be):
                        o = self.F.scaled_dot_product_attention(self.qh, self.kh, self.vh, is_causal=self.causal)
                return o.transpose(1, 2), name
            except RuntimeError:
                continue
        raise RuntimeError("no SDPA backend ran this shape")


def check(torch, o, ref, dtype, tol=None):
    """(ok, rel L2 error, message); tol None: 1e-2 (bf16) / 2e-3 (fp16)."""
    o64, r64 = o.double(), ref.double()
    nan = int(torch.isnan(o64).sum())
    rel = float((o64 - r64).norm() / r64.norm().clamp_min(1e-30))
    tol = tol if tol is not None else 1e-2 if dtype == "bf16" else 2e-3
    if nan:
        return False, rel, f"{nan} NaN in the output"
    if not rel <= tol:
        return False, rel, f"rel L2 {rel:.3g} > {tol}"
    return True, rel, ""


def fmt(x, spec):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


CHECKED = ["fa4"]  # peers whose output is checked against the reference before they are timed
COLS = ["dtype", "hdim", "hdim_v", "causal", "seqlen", "batch", "heads", "check", "rel_l2"] + [f"{p}_check" for p in CHECKED] + \
       [f"{i}_ms" for i, _ in IMPLS] + [f"{i}_tflops" for i, _ in IMPLS] + [f"fg/{p}" for p in PEERS] + ["fg/best"] + \
       [f"{i}_mhz" for i, _ in IMPLS] + [f"{i}_watts" for i, _ in IMPLS]


def write(out, meta, rows):
    write_results(out, "results", COLS, meta, rows)


def print_header():
    print(f"{'dtype':5s} {'hdim':>7s} {'causal':>6s} {'seqlen':>6s} | {'flashgen':>8s} {'FA2':>7s} {'cuDNN':>7s} "
          f"{'Flex':>7s} {'FA4':>7s} | {'fg/FA2':>6s} {'fg/cuDNN':>8s} {'fg/Flex':>7s} {'fg/FA4':>6s} {'fg/best':>7s}"
          "   TFLOP/s", flush=True)


def print_row(r):
    t = [fmt(r.get(f"{i}_tflops"), ".1f") for i, _ in IMPLS]
    q = [fmt(r.get(f"fg/{p}"), ".2f") for p in PEERS + ["best"]]
    dims = dims_label(r["hdim"], r.get("hdim_v", r["hdim"]))
    line = (f"{r['dtype']:5s} {dims:>7s} {'yes' if r['causal'] else 'no':>6s} {r['seqlen']:6d} | "
            f"{t[0]:>8s} {t[1]:>7s} {t[2]:>7s} {t[3]:>7s} {t[4]:>7s} | {q[0]:>6s} {q[1]:>8s} {q[2]:>7s} {q[3]:>6s} "
            f"{q[4]:>7s}")
    if r["check"] != "ok":
        line += f"   flashgen WRONG: {r['check']}"
    for p in CHECKED:
        if r.get(f"{p}_check") not in (None, "ok"):
            line += f"   {p} not timed: {r[f'{p}_check']}"
    print(line, flush=True)


def summary(rows, col="fg/best", what="best peer (faster of cuDNN and FlashAttention-4)"):
    """Geomean and lowest flashgen / a peer (the rows' col, flashgen / what)
    over the shapes that have both."""
    ratios = [(r[col], r) for r in rows if r.get(col)]
    if not ratios:
        return f"flashgen / {what}: no shape has both"
    geo = math.exp(sum(math.log(x) for x, _ in ratios) / len(ratios))
    low, r = min(ratios, key=lambda t: t[0])
    return (f"flashgen / {what} over {len(ratios)} shapes: geomean "
            f"{geo:.3f}, lowest {low:.3f} ({r['dtype']} hdim {dims_label(r['hdim'], r.get('hdim_v', r['hdim']))} "
            f"{'causal' if r['causal'] else 'non-causal'} "
            f"seqlen {r['seqlen']})")


def run(a):
    import torch
    from triton.testing import do_bench
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    runner = Runner(torch, a.peers)
    gpu = GpuSampler(torch)
    meta = run_meta(torch, runner.flashgen,
                    timing="triton.testing.do_bench(warmup=25, rep=100, return_mode='median') after one warm-up call",
                    flops="2*b*h*sq*sk*(d+dv), dv = d, halved for causal", peers=a.peers, fa4=bool(runner.fa4))
    try:
        import triton
        meta["triton"] = triton.__version__
    except Exception:
        pass
    print_header()
    rows = []
    t0 = time.time()
    for dtn in a.dtypes:
        dt = torch.bfloat16 if dtn == "bf16" else torch.float16
        for d, dv in a.hdims:
            for causal in ([False, True] if a.causal == "both" else [a.causal == "1"]):
                for s in a.seqlens:
                    b, h = 16384 // s, 2048 // d
                    q, k = (torch.randn(b, s, h, d, device="cuda", dtype=dt) for _ in range(2))
                    v = torch.randn(b, s, h, dv, device="cuda", dtype=dt)
                    runner.set_shape(q, k, v, causal)
                    flops = attn_flops(b, h, s, s, d, hdim_v=dv, causal=causal)
                    r = {"dtype": dtn, "hdim": d, "hdim_v": dv, "causal": int(causal), "seqlen": s, "batch": b,
                         "heads": h}
                    o = ref = None
                    try:
                        ref, _ = runner.reference()
                    except Exception as e:
                        r["check"] = f"no reference: {type(e).__name__}: {e}".replace("\n", " ")
                    for impl in ["flashgen"] + [p for p in CHECKED if p in a.peers and runner.available(p)]:
                        key = "check" if impl == "flashgen" else f"{impl}_check"
                        if ref is None:
                            r[key] = r["check"]
                            continue
                        try:
                            o = runner.fn(impl)()  # also compiles the kernel
                            ok, rel, msg = check(torch, o, ref, dtn)
                            if impl == "flashgen":
                                r["rel_l2"] = f"{rel:.3e}"
                            r[key] = "ok" if ok else msg
                        except Exception as e:
                            r[key] = f"{type(e).__name__}: {e}".replace("\n", " ")
                    for impl, _ in IMPLS:
                        if impl != "flashgen" and (impl not in a.peers or not runner.available(impl)):
                            continue
                        if impl == "flex" and a.flex_seqlens and s not in a.flex_seqlens:
                            continue
                        if r.get("check" if impl == "flashgen" else f"{impl}_check", "ok") != "ok":
                            continue  # a wrong result is reported, not timed
                        try:
                            fn = runner.fn(impl)
                            fn()  # warm-up; compiles Flex's graph for this shape
                            t_begin = time.time()
                            ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
                            r[f"{impl}_mhz"], r[f"{impl}_watts"] = gpu.mean(t_begin, time.time())
                        except Exception as e:  # a backend may refuse a shape
                            print(f"  {impl} d={dims_label(d, dv)} causal={int(causal)} s={s}: {type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr, flush=True)
                            continue
                        r[f"{impl}_ms"] = round(ms, 5)
                        r[f"{impl}_tflops"] = round(flops / (ms * 1e-3) / 1e12, 2)
                    fg = r.get("flashgen_tflops")
                    for p in PEERS:
                        pv = r.get(f"{p}_tflops")
                        r[f"fg/{p}"] = round(fg / pv, 3) if fg and pv else None
                    best = max([r[f"{p}_tflops"] for p in BEST_OF if r.get(f"{p}_tflops")], default=None)
                    r["fg/best"] = round(fg / best, 3) if fg and best else None
                    rows.append(r)
                    print_row(r)
                    write(a.out, meta, rows)
                    del q, k, v, o, ref
    meta["seconds"] = round(time.time() - t0, 1)
    write(a.out, meta, rows)
    wrong = [r for r in rows if r["check"] != "ok"]
    print(f"{len(rows)} shapes in {meta['seconds']} s; flashgen wrong on {len(wrong)}; results in {a.out}")
    if runner.fa4 is not None:
        fa4_wrong = sum(1 for r in rows if r.get("fa4_check") not in (None, "ok"))
        print(f"FlashAttention-4 wrong or failing on {fa4_wrong} shapes (not timed there)")
    else:
        print("FlashAttention-4: not importable, not timed")
    print(summary(rows))
    if gpu.ok:
        for impl, label in IMPLS:
            mhz = [r[f"{impl}_mhz"] for r in rows if r.get(f"{impl}_mhz")]
            watts = [r[f"{impl}_watts"] for r in rows if r.get(f"{impl}_watts")]
            if mhz or watts:
                print(f"{label} while timed (NVML, means over shapes): SM clock "
                      f"{f'{sum(mhz) / len(mhz):.0f} MHz' if mhz else 'n/a'}, "
                      f"power {f'{sum(watts) / len(watts):.0f} W' if watts else 'n/a'}")
        gpu.ok = False
    else:
        print("NVML not available: no clock or power recorded")
    plot(a.out)
    return 1 if wrong else 0


COLORS = {"flashgen": "#d62728", "fa2": "#1f77b4", "cudnn": "#2ca02c", "flex": "#ff7f0e", "fa4": "#9467bd"}


def plot(out):
    """OUT/tflops_<dtype>.png from OUT/results.json."""
    plot_dtypes(out, "results", IMPLS, "forward", lambda dtn: f"tflops_{dtn}.png")


def plot_dtypes(out, stem, impls, what, png):
    """A draw_bars chart per dtype of OUT/<stem>.json, at OUT/png(dtype)."""
    got = chart_input(out, stem)
    if got is None:
        return
    plt, meta, rows = got
    for dtn in sorted({r["dtype"] for r in rows}):
        draw_bars(plt, [r for r in rows if r["dtype"] == dtn], impls,
                  f"Attention {what}, {dtn}, {meta.get('gpu', '?')}, {meta.get('date', '?')[:10]} "
                  f"(torch {meta.get('torch', '?')})", os.path.join(out, png(dtn)))


def draw_bars(plt, rs, impls, title, path):
    """A chart at path: one panel per head dim x causal of rows rs (one
    dtype), grouped bars per seqlen, the TFLOP/s (<impl>_tflops) of impls
    [(key, label)] that have any, colours from COLORS."""
    hdims = sorted({(r["hdim"], r.get("hdim_v", r["hdim"])) for r in rs})
    causals = sorted({r["causal"] for r in rs})
    impls = [(i, n) for i, n in impls if any(r.get(f"{i}_tflops") for r in rs)]
    fig, axes = plt.subplots(len(hdims), len(causals), figsize=(6.5 * len(causals), 3.6 * len(hdims)),
                             squeeze=False)
    for yi, d in enumerate(hdims):
        for xi, c in enumerate(causals):
            ax = axes[yi][xi]
            cell = sorted((r for r in rs if (r["hdim"], r.get("hdim_v", r["hdim"])) == d and r["causal"] == c),
                          key=lambda r: r["seqlen"])
            w = 0.8 / max(len(impls), 1)
            for j, (impl, label) in enumerate(impls):
                xs = [i + (j - (len(impls) - 1) / 2) * w for i in range(len(cell))]
                ys = [r.get(f"{impl}_tflops") or 0 for r in cell]
                bars = ax.bar(xs, ys, w, label=label, color=COLORS[impl])
                for bar, y in zip(bars, ys):
                    if y:
                        ax.text(bar.get_x() + bar.get_width() / 2, y, f"{y:.0f}", ha="center", va="bottom",
                                fontsize=6)
            ax.set_xticks(range(len(cell)))
            ax.set_xticklabels([str(r["seqlen"]) for r in cell])
            ax.set_title(f"head dim {dims_label(*d)}, {'causal' if c else 'non-causal'}", fontsize=10)
            ax.set_xlabel("sequence length", fontsize=8)
            ax.set_ylabel("TFLOP/s", fontsize=8)
            ax.tick_params(labelsize=8)
            ymax = max([r.get(f"{i}_tflops") or 0 for r in cell for i, _ in impls] + [1])
            ax.set_ylim(0, ymax * 1.15)
            if yi == 0 and xi == 0:
                ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save_chart(plt, fig, path)


def save_chart(plt, fig, path):
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"chart: {path}")


def within(items, time_limit, meta, fields):
    """The items of a run while time_limit seconds since the first have not
    passed; then meta gets "seconds" and "not_run" (the items left, with a
    line naming them: fields says what their tuples hold)."""
    t0, left = time.time(), []
    for x in items:
        if time.time() - t0 > time_limit:
            left.append(x)
        else:
            yield x
    meta["seconds"] = round(time.time() - t0, 1)
    if left:
        meta["not_run"] = [list(x) for x in left]
        print(f"time limit ({time_limit:.0f} s) reached: {len(left)} shapes not run ({fields}): {left}")


def bench_main(argv, parse_args, run, plot):
    """A benchmark script's entry: --replot DIR redraws the charts, else a run."""
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if a.replot:
        plot(a.replot)
        return 0
    return run(a)


def main(argv=None):
    return bench_main(argv, parse_args, run, plot)


if __name__ == "__main__":
    sys.exit(main())
