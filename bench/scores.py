#!/usr/bin/env python3
"""Score modifications (issue 13, performance): flashgen with softcap, ALiBi,
a local window, attention sinks and all four together, against plain
flashgen, FlexAttention (same score_mod / mask_mod) and FlashAttention-4
(where it has the modification), forward, in one process on one GPU.

Shapes: bf16, head dim 128, 16384 tokens (batch = 16384 / seqlen), 16 heads
(2048 / 128), seqlen 4096 and 16384, causal (top-left = bottom-right:
square) and not.  Modifications (flashgen.attention's arguments):
  plain       none
  softcap     softcap=30.0: logit = 30 tanh(scale q.k / 30)
  alibi       alibi_slopes[h] = 2^(-8 (h + 1) / 16): logit -= slope |i - j|
  win256      window_size=(256, 256): key j visible iff i - 256 <= j <= i + 256
  win1024_0   window_size=(1024, 0)
  sinks       sinks[h] = ln(seqlen) + N(0, 1) (weighs like a row's keys)
  all         softcap + alibi + window (256, 256) + sinks
flashgen runs FG_PATH_AUTO (the Hopper TMA kernel on H100/H200).

Columns: fg/plain = flashgen's time / plain flashgen's (same seqlen and
causal); issue 13's target is <= 1.05 for softcap, ALiBi and windows.  A
window is held against the dense time of the tiles it keeps: tile_frac =
128x128 tiles (query tile, key tile) holding a visible element under the
window (and causal) / those under plain attention (all of them, or the
causal triangle), counted exactly; fg/kept = fg_ms / (plain_ms * tile_frac).
fg/flex = flex_ms / fg_ms (target >= 1.3), fg/fa4 = fa4_ms / fg_ms (target
>= 1, where FA4 has the modification: softcap, window, learnable_sink).

FlexAttention: flex_attention under torch.compile(dynamic=False) (dynamo's
cache limits raised), score_mod = the logit's formula, mask_mod = causal
and window through create_block_mask (128x128 blocks); sinks as
o * sigmoid(lse - sink), inside the compiled function.  FlashAttention-4:
flash_attn.cute.flash_attn_func(q, k, v, causal=, softcap=, window_size=,
learnable_sink=) (FA4 4.0.0b36's names), when it imports.

Checks before timing: flashgen against a float32 reference on 192 query
rows (first, middle, last 64) of sequence 0, all heads (relative L2 <= 1e-2,
no NaN); each peer against flashgen's whole output (<= 2e-2).  A wrong or
failing implementation is not timed and its row says why.  Timing: one
warm-up call (compiles), then triton.testing.do_bench(warmup=25, rep=--rep,
return_mode="median") (CUDA events, L2 cleared before each call).  Plain is
timed again at the end of each (seqlen, causal) group: plain_end_ms and the
drift show how far the clock moved.  fg_host_us: host time per flashgen
call (20 enqueued back to back); near fg_ms, a row times the host.  No row
starts after --time-limit seconds.  Prints a table as it goes; rewrites OUT/scores.csv
and OUT/scores.json after each row.  Exit status 1 if flashgen is wrong.

  python3 bench/scores.py --out out/scores [--quick] [--peers flex,fa4] [--mods ...]
"""
import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from vs_torch import (attn_flops, check, fmt, import_fa4, int_list, raise_dynamo_limits, run_meta,  # noqa: E402
                      write_results)

CAP, TILE, HDIM, TOKENS, WIDTH, PEER_TOL = 30.0, 128, 128, 16384, 2048, 2e-2
MODS = {"plain": {}, "softcap": {"softcap": CAP}, "alibi": {"alibi": True}, "win256": {"window": (256, 256)},
        "win1024_0": {"window": (1024, 0)}, "sinks": {"sinks": True},
        "all": {"softcap": CAP, "alibi": True, "window": (256, 256), "sinks": True}}
FA4_LACKS = "FA4 has no ALiBi built-in"
PEERS = ["flex", "fa4"]
COLS = ["seqlen", "batch", "heads", "causal", "mod", "check", "rel_l2", "fg_ms", "fg_host_us", "fg_tflops",
        "plain_end_ms", "fg/plain", "tile_frac", "fg/kept"] + [f"{p}_{c}" for p in PEERS for c in ("check", "ms")] + \
       [f"fg/{p}" for p in PEERS]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/scores", help="folder for scores.csv and scores.json (out/scores)")
    ap.add_argument("--seqlens", type=int_list, default=None, help="sequence lengths (4096,16384; --quick: 16384)")
    ap.add_argument("--quick", action="store_true", help="seqlen 16384 only")
    ap.add_argument("--causal", default="both", choices=["both", "0", "1"], help="(both)")
    ap.add_argument("--mods", default=",".join(MODS), help=f"modifications ({','.join(MODS)}); plain is always run")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"peers to run ({','.join(PEERS)}; '' for none)")
    ap.add_argument("--rep", type=int, default=200, help="do_bench's rep: milliseconds of timed calls (200)")
    ap.add_argument("--time-limit", type=float, default=540.0, help="seconds after which no row starts (540)")
    a = ap.parse_args(argv)
    a.seqlens = a.seqlens or ([16384] if a.quick else [4096, 16384])
    a.mods = ["plain"] + [m for m in a.mods.split(",") if m and m != "plain"]
    a.peers = [p for p in a.peers.split(",") if p]
    for opt, got, known in (("--mods", a.mods, list(MODS)), ("--peers", a.peers, PEERS)):
        for x in got:
            if x not in known:
                ap.error(f"{opt}: {x!r} is not one of {','.join(known)}")
    for s in a.seqlens:
        if TOKENS % s or s % TILE:
            ap.error(f"--seqlens: {s} must divide {TOKENS} tokens and be a multiple of {TILE}")
    return a


def key_span(lo_row, hi_row, window, causal):
    """[first, last] key reachable from rows lo_row..hi_row (square, offset 0),
    unclamped; None stands for unbounded."""
    left, right = window if window else (-1, -1)
    first = None if left < 0 else lo_row - left
    last = None if right < 0 else hi_row + right
    if causal:
        last = hi_row if last is None else min(last, hi_row)
    return first, last


def tiles_kept(s, window, causal, tile=TILE):
    """Number of (query tile, key tile) pairs of tile x tile that hold a visible
    element.  Row i sees the keys [i - left, i + right] (causal: up to i);
    those intervals move with i and each holds i, so the keys a tile of rows
    sees are one interval: from its first row's lower end to its last row's
    upper end."""
    n, kept = s // tile, 0
    for a in range(n):
        first, last = key_span(a * tile, a * tile + tile - 1, window, causal)
        first = 0 if first is None else max(first, 0)
        last = s - 1 if last is None else min(last, s - 1)
        if first <= last:
            kept += last // tile - first // tile + 1
    return kept


def mod_fns(torch, spec, causal, slopes):
    """(score_mod, mask_mod) in FlexAttention's signatures, None where not
    needed; the float32 reference calls them too, with broadcast indices."""
    cap, alibi, window = spec.get("softcap"), spec.get("alibi"), spec.get("window")
    score_mod = mask_mod = None
    if cap or alibi:
        def score_mod(score, b, h, q_idx, kv_idx):
            if cap:
                score = cap * torch.tanh(score / cap)
            if alibi:
                score = score - slopes[h] * (q_idx - kv_idx).abs()
            return score
    if causal or window:
        left, right = window if window else (-1, -1)

        def mask_mod(b, h, q_idx, kv_idx):
            terms = ([q_idx >= kv_idx] if causal else []) + ([q_idx - kv_idx <= left] if left >= 0 else []) + \
                    ([kv_idx - q_idx <= right] if right >= 0 else [])
            m = terms[0]
            for t in terms[1:]:
                m = m & t
            return m
    return score_mod, mask_mod


def reference_rows(torch, q, k, v, rows, score_mod, mask_mod, sinks):
    """float32 o [len(rows), heads, d] of sequence 0 at these query rows."""
    s, h, d = k.shape[1], q.shape[2], q.shape[3]
    kj, hh = torch.arange(s, device=q.device).view(1, 1, -1), torch.arange(h, device=q.device).view(-1, 1, 1)
    qi = rows.view(1, -1, 1)
    x = torch.einsum("rhd,shd->hrs", q[0, rows].float(), k[0].float()) / math.sqrt(d)
    if score_mod is not None:
        x = score_mod(x, 0, hh, qi, kj)
    if mask_mod is not None:
        x = x.masked_fill(~mask_mod(0, hh, qi, kj), -math.inf)
    if sinks is not None:  # the sink is one more logit in the denominator, with no value
        x = torch.cat([x, sinks.view(-1, 1, 1).expand(h, len(rows), 1)], dim=-1)
    p = x.softmax(-1)[..., :s]
    return torch.einsum("hrs,shd->rhd", p, v[0].float())


class Peers:
    """FlexAttention (compiled) and FlashAttention-4, when they are there."""

    def __init__(self, torch, peers):
        self.flex, self.fa4, self.why = None, None, {}
        if "flex" in peers:
            try:
                from torch.nn.attention import flex_attention as fx
            except ImportError as e:
                self.why["flex"] = f"FlexAttention not in this torch: {e}"
            else:
                raise_dynamo_limits(torch)
                self.create_block_mask = fx.create_block_mask
                aux = getattr(fx, "AuxRequest", None)  # return_lse is deprecated where AuxRequest exists
                lse_kw = {"return_aux": aux(lse=True)} if aux else {"return_lse": True}

                def flex_fn(q, k, v, score_mod, block_mask, sinks):
                    if sinks is None:
                        return fx.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask)
                    o, lse = fx.flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, **lse_kw)
                    lse = lse.lse if aux else lse
                    # softmax with the sink: o * sum / (sum + e^sink) = o * sigmoid(lse - sink)
                    return (o.float() * torch.sigmoid(lse - sinks.view(1, -1, 1)).unsqueeze(-1)).to(o.dtype)
                self.flex = torch.compile(flex_fn, dynamic=False)
        if "fa4" in peers:
            self.fa4 = import_fa4("flash_attn_func")
            if self.fa4 is None:
                self.why["fa4"] = "flash_attn.cute not importable"
        for p in PEERS:
            if p not in peers:
                self.why[p] = "not asked for (--peers)"

    def flex_call(self, qh, kh, vh, spec, fns, sinks):
        score_mod, mask_mod = fns
        s = qh.shape[2]
        bm = None if mask_mod is None else self.create_block_mask(mask_mod, None, None, s, s, device=qh.device)
        sk = sinks if spec.get("sinks") else None
        return lambda: self.flex(qh, kh, vh, score_mod, bm, sk).transpose(1, 2)

    def fa4_call(self, q, k, v, spec, causal, sinks):
        kw = {"causal": causal}
        if spec.get("softcap"):
            kw["softcap"] = spec["softcap"]
        if spec.get("window"):
            kw["window_size"] = tuple(None if x < 0 else x for x in spec["window"])
        if spec.get("sinks"):
            kw["learnable_sink"] = sinks

        def fa4():
            if spec.get("alibi"):
                raise NotImplementedError(FA4_LACKS)
            r = self.fa4(q, k, v, **kw)
            return r[0] if isinstance(r, tuple) else r  # (out, lse)
        return fa4


def one_line(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def measure(torch, do_bench, rep, r, key, fn, ref=None):
    """Runs fn once (compiles), checks it against ref (flashgen's o) when
    given, times it into r[key_ms]; the checked output, or None (r says why)."""
    ck = "check" if key == "fg" else f"{key}_check"
    try:
        o = fn()
        if ref is not None:
            ok, rel, msg = check(torch, o, ref, "bf16", tol=PEER_TOL)
            if not ok:
                r[ck] = f"differs from flashgen ({msg}), not timed"
                return None
        ms = do_bench(fn, warmup=25, rep=rep, return_mode="median")
    except Exception as e:  # a peer may refuse a modification, or fail to compile
        r[ck] = f"unsupported: {e}" if isinstance(e, NotImplementedError) else one_line(e)
        return None
    r[f"{key}_ms"] = round(ms, 5)
    r.setdefault(ck, "ok")
    return o


def run_row(torch, do_bench, flashgen, peers, a, t, name, causal, plain_ms):
    spec, (b, s, h) = MODS[name], t["shape"]
    fns = mod_fns(torch, spec, causal, t["slopes"])
    r = {"seqlen": s, "batch": b, "heads": h, "causal": int(causal), "mod": name}
    kw = {"softcap": spec.get("softcap"), "alibi_slopes": t["slopes"] if spec.get("alibi") else None,
          "window_size": spec.get("window"), "sinks": t["sinks"] if spec.get("sinks") else None}
    fg, out = flashgen_fn(torch, flashgen, t, causal, **kw)
    try:
        fg()  # compiles the variant
        ref = reference_rows(torch, t["q"], t["k"], t["v"], t["rows"], *fns, kw["sinks"])
        ok, rel, msg = check(torch, out[0, t["rows"]], ref, "bf16")
        r["check"], r["rel_l2"] = ("ok" if ok else msg), f"{rel:.3e}"
    except Exception as e:
        r["check"] = one_line(e)
    if r["check"] != "ok":
        return r
    measure(torch, do_bench, a.rep, r, "fg", fg)
    o_fg = out.clone()
    if r.get("fg_ms"):  # host time per call: 20 calls enqueued without waiting (the mods skip the descriptor cache)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        for _ in range(20):
            fg()
        r["fg_host_us"] = round((time.perf_counter() - t1) / 20 * 1e6, 1)
        torch.cuda.synchronize()
    if r.get("fg_ms") and name == "plain":
        r["fg_tflops"] = round(attn_flops(b, h, s, s, HDIM, causal=causal) / (r["fg_ms"] * 1e-3) / 1e12, 1)
    if r.get("fg_ms") and plain_ms:
        r["fg/plain"] = round(r["fg_ms"] / plain_ms, 3)
        if spec.get("window"):
            r["tile_frac"] = round(tiles_kept(s, spec["window"], causal) / tiles_kept(s, None, causal), 5)
            r["fg/kept"] = round(r["fg_ms"] / (plain_ms * r["tile_frac"]), 3)
    peer = lambda p, fn: measure(torch, do_bench, a.rep, r, p, fn, o_fg)  # checked against flashgen, then timed
    for p in PEERS:
        if p == "flex" and peers.flex is not None:
            peer(p, peers.flex_call(t["qh"], t["kh"], t["vh"], spec, fns, t["sinks"]))
        elif p == "fa4" and peers.fa4 is not None:
            peer(p, peers.fa4_call(t["q"], t["k"], t["v"], spec, causal, t["sinks"]))
        else:
            r[f"{p}_check"] = f"n/a: {peers.why.get(p)}"
        if r.get("fg_ms") and r.get(f"{p}_ms"):
            r[f"fg/{p}"] = round(r[f"{p}_ms"] / r["fg_ms"], 3)
    return r


def flashgen_fn(torch, flashgen, t, causal, **kw):
    """(a call of flashgen.attention on t's tensors writing into out, out)."""
    out = torch.empty_like(t["q"])
    return lambda: flashgen.attention(t["q"], t["k"], t["v"], causal=causal and "top_left", out=out, **kw), out


def inputs(torch, s):
    b, h, d = TOKENS // s, WIDTH // HDIM, HDIM
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)], device="cuda", dtype=torch.float32)
    sinks = (math.log(s) + torch.randn(h, device="cuda")).float()
    rows = torch.cat([torch.arange(lo, lo + 64, device="cuda") for lo in (0, s // 2 - 32, s - 64)])
    return {"shape": (b, s, h), "q": q, "k": k, "v": v, "slopes": slopes, "sinks": sinks, "rows": rows,
            "qh": q.transpose(1, 2).contiguous(), "kh": k.transpose(1, 2).contiguous(),
            "vh": v.transpose(1, 2).contiguous()}


SHOW = [("seqlen", "seqlen", "d", 6), ("causal", "causal", None, 6), ("mod", "mod", None, 9),
        ("fg ms", "fg_ms", ".3f", 7), ("host us", "fg_host_us", ".0f", 7), ("flex ms", "flex_ms", ".3f", 7), ("fa4 ms", "fa4_ms", ".3f", 7),
        ("fg/plain", "fg/plain", ".3f", 8), ("tiles", "tile_frac", ".3f", 6), ("fg/kept", "fg/kept", ".3f", 7),
        ("fg/flex", "fg/flex", ".3f", 7), ("fg/fa4", "fg/fa4", ".3f", 6)]  # (title, column, format, width)
HEADER = " ".join(f"{title:>{w}s}" for title, _, _, w in SHOW)


def print_row(r):
    cell = lambda c, spec: ("yes" if r[c] else "no") if c == "causal" else r[c] if spec is None else fmt(r.get(c), spec)
    line = " ".join(f"{cell(c, spec):>{w}s}" for _, c, spec, w in SHOW)
    if r["check"] != "ok":
        line += f"   flashgen WRONG or failing: {r['check']}"
    for p in PEERS:
        c = r.get(f"{p}_check")
        if c not in (None, "ok") and not str(c).startswith("n/a"):  # n/a: said once, at the start
            line += f"   {p}: {c}"
    print(line, flush=True)


def summary(rows):
    """One line per issue 13 target: the worst row and whether it is met."""
    lines = []

    def worst(what, col, pick, ok, which):
        xs = [(r[col], r) for r in rows if r.get(col) and which(r)]
        if not xs:
            lines.append(f"{what}: no row measured")
            return
        x, r = pick(xs, key=lambda t: t[0])
        where = f"{r['mod']}, seqlen {r['seqlen']}, {'causal' if r['causal'] else 'non-causal'}"
        lines.append(f"{what}: worst {x:.3f} ({where}) over {len(xs)} rows: {'met' if ok(x) else 'MISSED'}")
    worst("softcap/ALiBi cost, fg/plain (target <= 1.05)", "fg/plain", max, lambda x: x <= 1.05,
          lambda r: r["mod"] in ("softcap", "alibi"))
    worst("window cost against its kept tiles, fg/kept (target <= 1.05)", "fg/kept", max, lambda x: x <= 1.05,
          lambda r: r["mod"].startswith("win"))
    worst("flashgen / FlexAttention (target >= 1.3)", "fg/flex", min, lambda x: x >= 1.3,
          lambda r: r["mod"] != "plain")
    worst("flashgen / FlashAttention-4 (target >= 1)", "fg/fa4", min, lambda x: x >= 1.0,
          lambda r: r["mod"] != "plain")
    return "\n".join(lines)


def run(a):
    import torch
    from triton.testing import do_bench
    sys.path.insert(0, os.path.join(HERE, "..", "python"))
    import flashgen
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    peers = Peers(torch, a.peers)
    meta = run_meta(torch, flashgen, peers=a.peers, fa4=bool(peers.fa4), flex=bool(peers.flex),
                    timing=f"triton.testing.do_bench(warmup=25, rep={a.rep}, return_mode='median') after one "
                           "warm-up call", flashgen_path="FG_PATH_AUTO", softcap=CAP,
                    alibi_slopes="2^(-8(h+1)/H)", sinks="ln(seqlen) + N(0,1) per head", tile=TILE)
    print(HEADER, flush=True)
    rows, left, t0 = [], [], time.time()
    with torch.no_grad():
        for s in a.seqlens:
            for causal in ([False, True] if a.causal == "both" else [a.causal == "1"]):
                t, plain = inputs(torch, s), None
                for name in a.mods:
                    if time.time() - t0 > a.time_limit:
                        left.append(f"{s}/{int(causal)}/{name}")
                        continue
                    r = run_row(torch, do_bench, flashgen, peers, a, t, name, causal,
                                plain.get("fg_ms") if plain else None)
                    plain = r if name == "plain" else plain
                    rows.append(r)
                    print_row(r)
                    write_results(a.out, "scores", COLS, meta, rows)
                if plain and plain.get("fg_ms") and len(a.mods) > 1 and time.time() - t0 <= a.time_limit:
                    ms = do_bench(flashgen_fn(torch, flashgen, t, causal)[0], warmup=25, rep=a.rep,
                                  return_mode="median")
                    plain["plain_end_ms"] = round(ms, 5)
                    print(f"{'':6s} {'':6s} {'plain':>9s}   re-timed after the group: {ms:.3f} ms "
                          f"({100 * (ms / plain['fg_ms'] - 1):+.1f}%)", flush=True)
                del t
                torch.cuda.empty_cache()
    meta["seconds"] = round(time.time() - t0, 1)
    if left:
        meta["not_run"] = left
        print(f"time limit ({a.time_limit:.0f} s) reached: {len(left)} rows not run (seqlen/causal/mod): {left}")
    write_results(a.out, "scores", COLS, meta, rows)
    wrong = [r for r in rows if r["check"] != "ok"]
    print(f"{len(rows)} rows in {meta['seconds']} s; flashgen wrong or failing on {len(wrong)}; results in {a.out}")
    print(summary(rows))
    return 1 if wrong else 0


def main(argv=None):
    return run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
