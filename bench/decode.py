#!/usr/bin/env python3
"""Decode attention (one query token per sequence) in GB/s of K+V read:
flashgen against PyTorch SDPA (cuDNN and FlashAttention-2 backends),
FlashAttention-4 (when importable) and a device-to-device copy of the same
bytes, in one process on one GPU (issue 12's benchmark).

Grid: batch {1, 4, 16, 64, 128} x kv length {1k, 4k, 16k, 64k} x heads
(32 query / 8 KV, 32 / 32) at head dim 128, plus head dims 64 and 256 at a
few points (batch 16 and 64, 32/8 heads); bf16; each shape with a contiguous
cache [batch, kv_len, heads_kv, d] and paged caches (page 16 and 64:
the same buffer as [pages, page_size, heads_kv, d] with a shuffled block
table).  Every sequence holds kv_len keys (cache_seqlens = kv_len, a device
tensor, as a serving loop has it); no causal mask (one query sees every key).
flashgen runs flashgen.attention_with_kvcache with num_splits=0 (its split
heuristic; the plan's split count is printed).  Shapes whose buffers do not
fit in 90% of free memory (K+V and a copy target half that size) are
listed as skipped.

Bytes: K+V = 2 * batch * kv_len * heads_kv * d * 2; GB/s = those bytes / time
(q and o are negligible).  The copy row is torch copy_ of K and then V into
one buffer the size of K: its GB/s counts read + write (2 * K+V bytes / time),
the memory traffic the GPU sustains, so attention / copy is the fraction of
the memory system an attention kernel that reads K+V once reaches.  cuDNN
and FA2 have no paged mode: fg/cuDNN of a paged row divides by the
contiguous cuDNN of the same shape (same bytes).

Timing: one warm-up call (compiles; plans), then 10-100 calls (about 30 ms
of GPU time), each after a 512 MiB memset that evicts L2, each between CUDA
events; the median.  Checks before timing: flashgen against a float32
reference on the first and last sequence (relative L2 <= 1e-2 and no NaN);
each peer against flashgen's output on the whole batch (contiguous peers
against flashgen contiguous, FlashAttention-4 paged against flashgen paged
with the same table).  A wrong or failing implementation is not timed; the
row says why.  FlashAttention-4: flash_attn_varlen_func with seqused_k (and
page_table for paged), its own split heuristic (num_splits=0), else
num_splits=1; its compiles stop after --fa4-compile-budget seconds.  The
run stops starting shapes after --time-limit seconds (default 230).

Prints a table as it goes; writes OUT/decode.csv, OUT/decode.json after each
shape and OUT/decode_gbps.png at the end (GB/s vs kv length, one panel per
batch, a row per head configuration, head dim 128).  --replot OUT redraws it.

  python3 bench/decode.py [--out docs/bench] [--quick] [--peers cudnn,fa2,fa4]
"""
import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from vs_torch import (bench_main, chart_input, check, fmt, import_fa4, int_list, run_meta,  # noqa: E402  (shared
                      save_chart, within, write_results)  # with the dense benchmark)

BATCHES, LENS, HEADS = [1, 4, 16, 64, 128], [1024, 4096, 16384, 65536], [(32, 8), (32, 32)]
EXTRA = [(64, 16, 4096), (64, 64, 16384), (256, 16, 4096), (256, 64, 16384)]  # (d, batch, kv_len) at 32/8 heads
QUICK = dict(batches=[1, 16, 64], lens=[4096, 16384], heads=[(32, 8)], pages=[64], extra=[])
PEERS = ["cudnn", "fa2", "fa4"]
NAMES = {"fg": "flashgen", "cudnn": "SDPA cuDNN", "fa2": "SDPA FA2", "fa4": "FlashAttention-4", "copy": "copy"}
COLS = ["hdim", "heads_q", "heads_kv", "batch", "kv_len", "layout", "kv_bytes", "splits", "check"] + \
       [f"{i}_{u}" for i in ("fg", "cudnn", "fa2", "fa4", "copy") for u in ("ms", "gbps")] + \
       ["fg/copy", "fg/cudnn", "fg/fa4", "paged/contig", "notes"]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "docs", "bench"), help="folder for decode.* (docs/bench)")
    ap.add_argument("--quick", action="store_true", help="a 30-second subset: batch 1,16,64, kv 4k,16k, 32/8 heads, "
                                                          "contiguous and page 64, cuDNN only unless --peers")
    ap.add_argument("--batches", type=int_list, default=None)
    ap.add_argument("--lens", type=int_list, default=None, help="kv lengths (1024,4096,16384,65536)")
    ap.add_argument("--pages", type=int_list, default=None, help="page sizes of the paged runs (16,64)")
    ap.add_argument("--peers", default=None, help=f"peers ({','.join(PEERS)}; --quick: cudnn)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds after which no shape starts (230; quick 30)")
    ap.add_argument("--fa4-compile-budget", type=float, default=60.0, help="seconds of FA4 first calls (compiles)")
    ap.add_argument("--replot", metavar="DIR", help="only redraw DIR/decode_gbps.png from DIR/decode.json")
    a = ap.parse_args(argv)
    if a.replot:
        return a
    q = QUICK if a.quick else dict(batches=BATCHES, lens=LENS, heads=HEADS, pages=[16, 64], extra=EXTRA)
    a.batches, a.lens, a.pages = a.batches or q["batches"], a.lens or q["lens"], a.pages or q["pages"]
    a.heads, a.extra = q["heads"], q["extra"]
    a.peers = [p for p in (a.peers or ("cudnn" if a.quick else ",".join(PEERS))).split(",") if p]
    for p in a.peers:
        if p not in PEERS:
            ap.error(f"--peers: {p!r} is not one of {','.join(PEERS)}")
    for n in a.lens:
        if any(n % p for p in a.pages):
            ap.error(f"--lens: {n} is not a multiple of every page size {a.pages}")
    a.time_limit = a.time_limit if a.time_limit is not None else 30.0 if a.quick else 230.0
    return a


def shapes(a):
    """(d, heads_q, heads_kv, batch, kv_len) in run order: the head dim 128 grid, then the extra points."""
    out = [(128, hq, hk, b, n) for hq, hk in a.heads for b in a.batches for n in a.lens]
    return out + [(d, 32, 8, b, n) for d, b, n in a.extra]


class Timer:
    def __init__(self, torch):
        self.torch = torch
        self.flush = torch.empty(512 << 20, dtype=torch.uint8, device="cuda")

    def __call__(self, fn):
        """Median milliseconds of fn (warmed up by the caller), L2 evicted before each call."""
        t = self.torch
        ev = lambda: t.cuda.Event(enable_timing=True)
        s, e = ev(), ev()
        s.record()
        fn()
        e.record()
        e.synchronize()
        reps = max(10, min(100, int(30.0 / max(s.elapsed_time(e), 1e-3))))
        marks = [(ev(), ev()) for _ in range(reps)]
        for s, e in marks:
            self.flush.zero_()
            s.record()
            fn()
            e.record()
        t.cuda.synchronize()
        ms = sorted(s.elapsed_time(e) for s, e in marks)
        return ms[len(ms) // 2]


def ref_rows(torch, q, k, v, rows, table=None):
    """float32 reference o [len(rows), heads_q, d] for these sequences (one query each)."""
    out = []
    for i in rows:
        if table is None:
            ki, vi = k[i], v[i]
        else:  # the sequence's pages in table order
            ki, vi = (x[table[i].long()].flatten(0, 1) for x in (k, v))
        hq, hk, d = q.shape[2], ki.shape[1], q.shape[3]
        qf = q[i, 0].float().view(hk, hq // hk, d)
        s = torch.einsum("hgd,lhd->hgl", qf, ki.float()) / math.sqrt(d)
        out.append(torch.einsum("hgl,lhd->hgd", s.softmax(-1), vi.float()).reshape(hq, d))
    return torch.stack(out)


class Peers:
    def __init__(self, torch, peers, fa4_budget):
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
        sys.path.insert(0, os.path.join(HERE, "..", "python"))
        import flashgen
        from flashgen import _inference
        self.torch, self.F, self.sdpa_kernel, self.flashgen, self.inference = torch, F, sdpa_kernel, flashgen, _inference
        self.backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "fa2": SDPBackend.FLASH_ATTENTION}
        self.peers, self.fa4_left = peers, fa4_budget
        self.fa4 = import_fa4("flash_attn_varlen_func") if "fa4" in peers else None

    def flashgen_fn(self, q, k, v, lens, table, o):
        return lambda: self.flashgen.attention_with_kvcache(q, k, v, cache_seqlens=lens, block_table=table, out=o)

    def sdpa_fn(self, name, q, k, v):
        qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))  # views: [b, h, s, d] with flashgen's strides
        gqa = q.shape[2] != k.shape[2]
        be = self.backends[name]

        def f():
            with self.sdpa_kernel(be):
                return self.F.scaled_dot_product_attention(qh, kh, vh, enable_gqa=gqa).transpose(1, 2)
        return f

    def fa4_fns(self, q, k, v, lens, table):
        kw = dict(seqused_k=lens, max_seqlen_k=int(table.shape[1] * k.shape[1]) if table is not None else k.shape[1])
        if table is not None:
            kw["page_table"] = table
        first = lambda r: r[0] if isinstance(r, tuple) else r
        return [(f"num_splits={n}", lambda n=n: first(self.fa4(q, k, v, num_splits=n, **kw))) for n in (0, 1)]


def measure(row, key, fn, timer, ref=None, dtype="bf16", note=None):
    """Checks fn's output against ref (when given), then times it into
    row[key_ms], row[key_gbps]; a failure goes to the notes.  The output."""
    try:
        o = fn()  # warm-up: compiles, plans
        if ref is not None:
            ok, rel, msg = check(timer.torch, o, ref, dtype)
            if not ok:
                row["notes"].append(f"{key}: differs from flashgen ({msg}), not timed")
                return None
        ms = timer(fn)
    except Exception as e:  # a backend may refuse a shape, or run out of memory
        row["notes"].append(f"{key}: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
        return None
    row[f"{key}_ms"] = round(ms, 5)
    row[f"{key}_gbps"] = round(row["kv_bytes"] / (ms * 1e-3) / 1e9, 1)
    if note:
        row["notes"].append(note)
    return o


def measure_copy(torch, timer, k, v, row):
    """row with copy_ms and copy_gbps: K and then V copied into one buffer the
    size of K; GB/s of read + write."""
    scratch = torch.empty_like(k)
    measure(row, "copy", lambda: (scratch.copy_(k), scratch.copy_(v)), timer)
    if row.get("copy_ms"):
        row["copy_gbps"] = round(2 * row["kv_bytes"] / (row["copy_ms"] * 1e-3) / 1e9, 1)
    return row


def run_shape(torch, peers, timer, a, d, hq, hk, b, n, contig_of):
    dt = torch.bfloat16
    kv_bytes = 2 * b * n * hk * d * 2
    base = dict(hdim=d, heads_q=hq, heads_kv=hk, batch=b, kv_len=n, kv_bytes=kv_bytes)
    layouts = ["contig"] + [f"page{p}" for p in a.pages]
    torch.cuda.empty_cache()
    free = torch.cuda.mem_get_info()[0]
    if kv_bytes * 1.5 + (1 << 30) > 0.9 * free:
        why = f"skipped: needs {kv_bytes * 1.5 / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free"
        return [dict(base, layout=lay, check=why, notes=[]) for lay in layouts]
    k, v = (torch.randn(b, n, hk, d, device="cuda", dtype=dt) for _ in range(2))
    q = torch.randn(b, 1, hq, d, device="cuda", dtype=dt)
    lens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    out = []
    copy_row = measure_copy(torch, timer, k, v, dict(base, notes=[]))
    check_rows = sorted({0, b - 1})
    for lay in layouts:
        r = dict(base, layout=lay, notes=list(copy_row["notes"]), copy_ms=copy_row.get("copy_ms"),
                 copy_gbps=copy_row.get("copy_gbps"))
        table = None
        kk, vv = k, v
        if lay != "contig":
            p = int(lay[4:])
            table = torch.randperm(b * n // p, device="cuda").to(torch.int32).view(b, n // p)
            kk, vv = (x.view(-1, p, hk, d) for x in (k, v))
        o = torch.full((b, 1, hq, d), math.nan, device="cuda", dtype=dt)
        fg = peers.flashgen_fn(q, kk, vv, lens, table, o)
        try:
            fg()
            r["splits"] = peers.inference.last_plan()[0]
            ok, rel, msg = check(torch, o[check_rows, 0], ref_rows(torch, q, kk, vv, check_rows, table), "bf16")
            r["check"] = "ok" if ok else msg
        except Exception as e:
            r["check"] = f"{type(e).__name__}: {e}".replace("\n", " ")[:200]
        if r["check"] == "ok":
            measure(r, "fg", fg, timer)
            ref = o.clone()
            if lay == "contig":
                for name in ("cudnn", "fa2"):
                    if name in peers.peers:
                        measure(r, name, peers.sdpa_fn(name, q, kk, vv), timer, ref)
            if peers.fa4 is not None and peers.fa4_left > 0:
                for label, fn in peers.fa4_fns(q, kk, vv, lens, table):
                    t0 = time.time()
                    got = measure(r, "fa4", fn, timer, ref, note=f"fa4: {label}")
                    peers.fa4_left -= time.time() - t0
                    if got is not None:
                        break
            elif peers.fa4 is not None:
                r["notes"].append("fa4: compile budget spent (--fa4-compile-budget), not run")
        fg_g = r.get("fg_gbps")
        key = (d, hq, hk, b, n)
        if lay == "contig":
            contig_of[key] = r
        c = contig_of.get(key, {})
        for col, peer in (("fg/copy", r.get("copy_gbps")), ("fg/cudnn", c.get("cudnn_gbps")),
                          ("fg/fa4", r.get("fa4_gbps"))):
            r[col] = round(fg_g / peer, 3) if fg_g and peer else None
        if lay != "contig" and fg_g and c.get("fg_gbps"):
            r["paged/contig"] = round(fg_g / c["fg_gbps"], 3)
        out.append(r)
    return out


def write(out, meta, rows):
    write_results(out, "decode", COLS, meta, [dict(r, notes="; ".join(r.get("notes", []))) for r in rows])


HEADER = (f"{'d':>3s} {'hq/hk':>5s} {'batch':>5s} {'kv':>5s} {'layout':>6s} {'spl':>3s} | {'flashgen':>8s} "
          f"{'cuDNN':>7s} {'FA2':>7s} {'FA4':>7s} {'copy':>7s} | {'fg/copy':>7s} {'fg/cuDNN':>8s} {'fg/FA4':>6s} "
          f"{'pg/ct':>5s}   GB/s of K+V")


def klen(n):
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def print_row(r):
    g = [fmt(r.get(f"{i}_gbps"), ".0f") for i in ("fg", "cudnn", "fa2", "fa4", "copy")]
    x = [fmt(r.get(c), ".2f") for c in ("fg/copy", "fg/cudnn", "fg/fa4", "paged/contig")]
    line = (f"{r['hdim']:3d} {r['heads_q']:2d}/{r['heads_kv']:<2d} {r['batch']:5d} {klen(r['kv_len']):>5s} "
            f"{r['layout']:>6s} {fmt(r.get('splits'), 'd'):>3s} | {g[0]:>8s} {g[1]:>7s} {g[2]:>7s} {g[3]:>7s} {g[4]:>7s} "
            f"| {x[0]:>7s} {x[1]:>8s} {x[2]:>6s} {x[3]:>5s}")
    if r.get("check") != "ok":
        line += f"   flashgen: {r.get('check')}"
    notes = [n for n in r.get("notes", []) if not n.startswith("fa4: num_splits")]
    if notes:
        line += "   " + "; ".join(notes)
    print(line, flush=True)


def summary(rows):
    lines = []
    for col, what in (("fg/copy", "flashgen / copy"), ("fg/cudnn", "flashgen / cuDNN"),
                      ("paged/contig", "paged / contiguous")):
        xs = [(r[col], r) for r in rows if r.get(col)]
        if xs:
            geo = math.exp(sum(math.log(x) for x, _ in xs) / len(xs))
            lo, r = min(xs, key=lambda t: t[0])
            lines.append(f"{what}: {len(xs)} rows, geomean {geo:.3f}, lowest {lo:.3f} (d {r['hdim']} "
                         f"{r['heads_q']}/{r['heads_kv']} batch {r['batch']} kv {r['kv_len']} {r['layout']})")
    big = [r for r in rows if r.get("fg/copy") and r["kv_bytes"] > 64 << 20]
    if big:
        lines.append(f"flashgen / copy where K+V > 64 MiB: lowest {min(r['fg/copy'] for r in big):.3f} over "
                     f"{len(big)} rows (issue 12's target: >= 0.85)")
    return "\n".join(lines)


def run(a):
    import torch
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    peers = Peers(torch, a.peers, a.fa4_compile_budget)
    timer = Timer(torch)
    meta = run_meta(torch, peers.flashgen, peers=a.peers, fa4=bool(peers.fa4),
                    timing="median of 10-100 calls between CUDA events, each after a 512 MiB memset (L2 evicted)",
                    gbps="K+V bytes (2*b*kv_len*heads_kv*d*2) / time; copy: read + write bytes / time")
    print(HEADER, flush=True)
    rows, contig_of = [], {}
    for s in within(shapes(a), a.time_limit, meta, "d, hq, hk, batch, kv"):
        for r in run_shape(torch, peers, timer, a, *s, contig_of):
            rows.append(r)
            print_row(r)
        write(a.out, meta, rows)
    write(a.out, meta, rows)
    wrong = [r for r in rows if r.get("check") not in ("ok", None) and not str(r.get("check")).startswith("skipped")]
    print(f"{len(rows)} rows in {meta['seconds']} s; flashgen wrong or failing on {len(wrong)}; results in {a.out}")
    print(summary(rows))
    plot(a.out)
    return 1 if wrong else 0


def plot(out):
    """OUT/decode_gbps.png from OUT/decode.json: GB/s vs kv length, a panel per batch, a row per heads (d 128)."""
    got = chart_input(out, "decode")
    if got is None:
        return
    plt, meta, rows = got
    rows = [r for r in rows if r["hdim"] == 128]
    heads = sorted({(r["heads_q"], r["heads_kv"]) for r in rows}, key=lambda h: -h[0] / h[1])
    batches = sorted({r["batch"] for r in rows})
    if not rows:
        return
    series = [("fg", "contig", "flashgen", "#d62728", "-"), ("fg", "page16", "flashgen paged 16", "#d62728", "--"),
              ("fg", "page64", "flashgen paged 64", "#d62728", ":"), ("cudnn", "contig", "SDPA cuDNN", "#2ca02c", "-"),
              ("fa2", "contig", "SDPA FA2", "#1f77b4", "-"), ("fa4", "contig", "FlashAttention-4", "#9467bd", "-"),
              ("fa4", "page64", "FlashAttention-4 paged 64", "#9467bd", ":"),
              ("copy", "contig", "copy (read + write)", "#7f7f7f", "--")]
    fig, axes = plt.subplots(len(heads), len(batches), figsize=(3.4 * len(batches), 3.0 * len(heads)), squeeze=False)
    for yi, (hq, hk) in enumerate(heads):
        for xi, b in enumerate(batches):
            ax = axes[yi][xi]
            for impl, lay, label, color, style in series:
                pts = sorted((r["kv_len"], r.get(f"{impl}_gbps")) for r in rows
                             if (r["heads_q"], r["heads_kv"], r["batch"], r["layout"]) == (hq, hk, b, lay)
                             and r.get(f"{impl}_gbps"))
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o", markersize=3,
                            label=label)
            ax.set_xscale("log", base=2)
            lens = sorted({r["kv_len"] for r in rows})
            ax.set_xticks(lens)
            ax.set_xticklabels([klen(n) for n in lens])
            ax.set_ylim(bottom=0)
            ax.set_title(f"batch {b}, {hq}/{hk} heads", fontsize=9)
            ax.tick_params(labelsize=8)
            if xi == 0:
                ax.set_ylabel("GB/s of K+V", fontsize=8)
            if yi == len(heads) - 1:
                ax.set_xlabel("kv length", fontsize=8)
            ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 4), fontsize=8)
    fig.suptitle(f"Decode attention (1 query token), bf16, head dim 128, {meta.get('gpu', '?')}, "
                 f"{meta.get('date', '?')[:10]} (torch {meta.get('torch', '?')})", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    save_chart(plt, fig, os.path.join(out, "decode_gbps.png"))


def main(argv=None):
    return bench_main(argv, parse_args, run, plot)


if __name__ == "__main__":
    sys.exit(main())
