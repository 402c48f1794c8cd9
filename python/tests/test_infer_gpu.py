#!/usr/bin/env python3
"""flashgen's inference calls on the GPU against a float64 reference, per
sequence: packed variable lengths (flashgen.attention with cu_seqlens_*,
seqused_k), KV caches contiguous and paged (flashgen.attention_with_kvcache)
with appends, split-KV, and a decode step captured in a CUDA graph.

Fresh random inputs for every case; outputs poisoned (out= filled with NaN,
a NaN block left in the allocator for lse); cache rows past each
sequence's length and pages no sequence uses are NaN too (a kernel must
never let them in), and page-table entries past a sequence's pages are -1
(never to be read: flashgen.check_tables() must stay clean).  Criterion as
in test_attention_gpu.py (FlashAttention's): relative L2 error of o <= 1e-2
(bf16) / 2e-3 (fp16), max |error| <= 4 units of the dtype's rounding of the
largest output, lse within 5e-3 and -inf exactly on rows that see no key.

Score modifications (softcap, ALiBi, windows, sinks) on caches: mods_cases.

Cases: varlen with lengths 0 and 1 in the batch, causal both alignments and
True where every sequence is square, GQA, q packed with k batched, seqused_k;
caches contiguous and paged (page 16 and 64, pages shuffled, one page shared
by two sequences), appends of 1 and 3 rows (cache rows checked, the caller's
cache_seqlens unchanged); num_splits 1, automatic and 7 agreeing with the
reference and each other; paged equal to contiguous bit for bit; bad tables
reported by check_tables without a crash; 100 replays of a captured decode
step with random lengths bit-identical to uncaptured calls; no synchronising
torch call on the path (torch.cuda.set_sync_debug_mode('error')).

Exit 77 (skipped) without torch, without a CUDA GPU, or with a library
built before the inference calls.

  python3 python/tests/test_infer_gpu.py [--seed S]
"""
import argparse
import itertools
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_infer_gpu", cuda=True)
import flashgen  # noqa: E402
from flashgen import _inference, _lib  # noqa: E402
from test_attention_gpu import compare, poison_lse_pool  # noqa: E402  (the one criterion)

DEV = "cuda"
BF, FP = torch.bfloat16, torch.float16
NONE, BR, TL = False, "bottom_right", "top_left"


def ref_seq(q, k, v, scale, causal, softcap=None, alibi_slopes=None, window_size=None, sinks=None):
    """One sequence in float64: q [sq, hq, d], k [sk, hk, d], v [sk, hk, dv]
    -> o [sq, hq, dv], lse [hq, sq] (o = 0, lse = -inf where no key is seen).
    Score modifications as flashgen.attention's dense ones (FlashAttention-2's
    order: softcap, ALiBi, then the masks; alibi_slopes [hq] of this
    sequence, sinks [hq] in the denominator: lse = the sink on an empty row)."""
    sq, hq, sk, hk = q.shape[0], q.shape[1], k.shape[0], k.shape[1]
    g = hq // hk
    qf = q.double().transpose(0, 1)
    kf = k.double().transpose(0, 1).repeat_interleave(g, 0)
    vf = v.double().transpose(0, 1).repeat_interleave(g, 0)
    s = (qf @ kf.transpose(1, 2)) * scale
    i = torch.arange(sq, device=DEV)[:, None]
    j = torch.arange(sk, device=DEV)[None, :]
    off = 0 if causal == TL else sk - sq  # the alignment of ALiBi and the window
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    if alibi_slopes is not None:
        s = s - alibi_slopes.double().view(-1, 1, 1) * (i + off - j).abs()
    allowed = j <= i + (sk - sq) if causal in (BR, True) else j <= i if causal == TL else torch.ones_like(i == j)
    if window_size is not None:
        left, right = window_size
        allowed = allowed & ((j >= i + off - left) if left >= 0 else True) & ((j <= i + off + right) if right >= 0 else True)
    s = s.masked_fill(~allowed, -math.inf)
    if sinks is not None:
        sink = sinks.double().view(-1, 1, 1).expand(hq, sq, 1)
        lse = torch.logsumexp(torch.cat([s, sink], -1), -1)
    else:
        lse = torch.logsumexp(s, -1)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    return (p @ vf).transpose(0, 1), lse


def cu(lens):
    return torch.tensor([0] + list(itertools.accumulate(lens)), dtype=torch.int32, device=DEV)


def nan_like_out(shape, dtype):
    poison_lse_pool(shape[:-1])  # whatever lse flashgen allocates next starts as NaN
    return torch.full(shape, math.nan, dtype=dtype, device=DEV)


class no_sync:
    """Around a flashgen call: any synchronising torch operation raises."""

    def __enter__(self):
        torch.cuda.set_sync_debug_mode("error")

    def __exit__(self, *exc):
        torch.cuda.set_sync_debug_mode(0)
        return False


def guarded(name, fn):
    """fn() -> list of failures; an exception is a failure of this case."""
    try:
        out = fn()
        torch.cuda.synchronize()
        return out
    except Exception as e:
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        return [f"{name}: {type(e).__name__}: {e}"]


def varlen_case(lq, lk, hq, hk, d, dtype, causal, same_cu=False, used=None, k_batched=False, scale=None):
    name = (f"varlen {str(dtype)[6:]} d={d} hq={hq} hkv={hk} lq={lq} lk={lk} causal={causal}"
            f"{' same_cu' if same_cu else ''}{' used=' + str(used) if used else ''}{' k_batched' if k_batched else ''}")
    b = len(lq)
    q = torch.randn(sum(lq), hq, d, device=DEV, dtype=dtype)
    if k_batched:
        k, v = (torch.randn(b, max(lk), hk, d, device=DEV, dtype=dtype) for _ in range(2))
    else:
        k, v = (torch.randn(sum(lk), hk, d, device=DEV, dtype=dtype) for _ in range(2))
    cq = cu(lq)
    ck = cq if same_cu else None if k_batched else cu(lk)
    su = torch.tensor(used, dtype=torch.int32, device=DEV) if used else None
    out = nan_like_out((sum(lq), hq, d), dtype)

    def run():
        with no_sync():
            o, lse = flashgen.attention(q, k, v, cu_seqlens_q=cq, cu_seqlens_k=ck, max_seqlen_q=max(lq),
                                        max_seqlen_k=None if k_batched else max(lk), seqused_k=su, causal=causal,
                                        scale=scale, return_lse=True, out=out)
        if o is not out or tuple(lse.shape) != (hq, sum(lq)):
            return [f"{name}: o is not out= or lse has shape {tuple(lse.shape)}"]
        eff = scale if scale is not None else 1 / math.sqrt(d)
        ro, rl, pq, pk = [], [], 0, 0
        for i in range(b):
            n_k = used[i] if used else lk[i]
            kb, vb = (x[i, :n_k] if k_batched else x[pk:pk + n_k] for x in (k, v))
            o_i, l_i = ref_seq(q[pq:pq + lq[i]], kb, vb, eff, causal)
            ro.append(o_i)
            rl.append(l_i)
            pq, pk = pq + lq[i], pk + lk[i]
        return compare(name, o, lse, torch.cat(ro), torch.cat(rl, 1), dtype)
    return guarded(name, run)


class Cache:
    """A KV cache with its logical content: seqs[b] = (k rows, v rows) of
    sequence b, contiguous [b, cap, hk, d] or paged with a shuffled table
    (page shared by sequences 0 and 1 when `share`); every row past a
    sequence's length, and every page no sequence uses, is NaN."""

    def __init__(self, lens, cap, hk, d, dtype, page=None, share=False, gen=None):
        self.lens, self.cap, self.page, self.dtype = list(lens), cap, page, dtype
        b = len(lens)
        self.seqs = [(torch.randn(n, hk, d, device=DEV, dtype=dtype), torch.randn(n, hk, d, device=DEV, dtype=dtype))
                     for n in lens]
        if page is None:
            self.k, self.v = (torch.full((b, cap, hk, d), math.nan, device=DEV, dtype=dtype) for _ in range(2))
            for i, (ks, vs) in enumerate(self.seqs):
                self.k[i, :lens[i]], self.v[i, :lens[i]] = ks, vs
            self.table = None
            return
        per = cap // page
        num_pages = b * per + 3  # spare pages, never named
        perm = torch.randperm(num_pages, generator=gen).tolist()
        self.table = torch.full((b, per), -1, dtype=torch.int32)
        for i in range(b):
            for j in range(per):  # every page a sequence may append into, so appends have room
                self.table[i, j] = perm[i * per + j]
        if share:  # sequences 0 and 1 share their first page (a common prefix)
            assert lens[0] >= page and lens[1] >= page
            self.table[1, 0] = self.table[0, 0]
            self.seqs[1][0][:page], self.seqs[1][1][:page] = self.seqs[0][0][:page], self.seqs[0][1][:page]
        self.k, self.v = (torch.full((num_pages, page, hk, d), math.nan, device=DEV, dtype=dtype) for _ in range(2))
        self.table = self.table.to(DEV)
        for i, (ks, vs) in enumerate(self.seqs):
            self.k.view(-1, hk, d)[self.rows(i, lens[i])] = ks
            self.v.view(-1, hk, d)[self.rows(i, lens[i])] = vs

    def rows(self, b, n, start=0):
        """Flat row indices of positions start..n-1 of sequence b."""
        j = torch.arange(start, n, device=DEV)
        if self.page is None:
            return b * self.cap + j
        return self.table[b].long()[j // self.page] * self.page + j % self.page

    def unused_to_minus_one(self, extra=0):
        """Table entries past each sequence's pages (after `extra` appended rows) become -1."""
        if self.table is not None:
            for i, n in enumerate(self.lens):
                self.table[i, -(-(n + extra) // self.page):] = -1

    def flat(self, which):
        x = self.k if which == "k" else self.v
        return x.view(-1, x.shape[-2], x.shape[-1])


def kv_case(name, lens, cap, sq, hq, hk, d, dtype, causal, page=None, share=False, new=0, splits=(0,), gen=None,
            mods=None):
    """One cache and one set of inputs, run with each num_splits in `splits`:
    each result against the reference, and (several splits) against each
    other, the first as reference.  mods: score modifications (keyword
    arguments of attention_with_kvcache; alibi_slopes [b, hq] or [hq])."""
    mods = mods or {}
    cache = Cache(lens, cap, hk, d, dtype, page, share, gen)
    cache.unused_to_minus_one(new)
    b = len(lens)
    q = torch.randn(b, sq, hq, d, device=DEV, dtype=dtype)
    kn, vn = (torch.randn(b, new, hk, d, device=DEV, dtype=dtype) if new else None for _ in range(2))
    lens_t = torch.tensor(lens, dtype=torch.int32, device=DEV)

    def run():
        fails, got = [], []
        for ns in splits:
            label = f"{name}{f' num_splits={ns}' if len(splits) > 1 else ''}"
            out = nan_like_out((b, sq, hq, d), dtype)
            with no_sync():
                o, lse = flashgen.attention_with_kvcache(q, cache.k, cache.v, k=kn, v=vn, cache_seqlens=lens_t,
                                                         block_table=cache.table, causal=causal, num_splits=ns,
                                                         return_lse=True, out=out, **mods)
            plan = _inference.last_plan()
            if o is not out:
                fails.append(f"{label}: o is not out=")
            if lens_t.tolist() != lens:
                fails.append(f"{label}: cache_seqlens changed to {lens_t.tolist()} (the caller's tensor must stay)")
            ro, rl = [], []
            for i in range(b):
                ks, vs = cache.seqs[i]
                if new:
                    ks, vs = torch.cat([ks, kn[i]]), torch.cat([vs, vn[i]])
                    r = cache.rows(i, lens[i] + new, lens[i])
                    if not (torch.equal(cache.flat("k")[r], kn[i]) and torch.equal(cache.flat("v")[r], vn[i])):
                        fails.append(f"{label}: the appended rows of sequence {i} are not in the cache")
                m = dict(mods)
                if m.get("alibi_slopes") is not None and m["alibi_slopes"].dim() == 2:
                    m["alibi_slopes"] = m["alibi_slopes"][i]
                o_i, l_i = ref_seq(q[i], ks, vs, 1 / math.sqrt(d), causal, **m)
                ro.append(o_i)
                rl.append(l_i)
            fails += compare(f"{label} plan(splits, ws)={plan}", o, lse, torch.stack(ro), torch.stack(rl), dtype)
            got.append((ns, o, lse, plan))
            if plan is not None and (ns == 1 and plan[0] != 1 or ns > 1 and not 1 <= plan[0] <= ns):
                fails.append(f"{label}: the plan runs {plan[0]} splits")
        for ns, o, lse, _ in got[1:]:
            fails += compare(f"{name}: num_splits {got[0][0]} vs {ns}", o, lse, got[0][1], got[0][2], dtype)
        return fails
    return guarded(name, run)


def mods_cases(gen):
    """Score modifications on caches (issue 13): Gemma 2's softcap on GQA
    decode, gpt-oss's sinks + window (127, 0), ALiBi [hq] and [b, hq], a
    two-sided window with 4 queries, each contiguous and paged (16, 64), with
    num_splits 1, automatic and 7 (agreeing with the reference and each
    other); lengths 0 and 1 in the batch; and the refusal of gradients."""
    fails = []
    lens, hq, hk = [2000, 1, 0, 700], 32, 8
    slopes = torch.rand(hq, device=DEV) * 0.5 + 0.01
    slopes_b = torch.rand(len(lens), hq, device=DEV) * 0.5 + 0.01
    sinks = torch.randn(hq, device=DEV) * 2
    for page in (None, 16, 64):
        for label, sq, causal, mods in (
                ("softcap 30", 1, NONE, dict(softcap=30.0)),
                ("sinks + window (127, 0)", 1, BR, dict(sinks=sinks, window_size=(127, 0))),
                ("sinks", 1, NONE, dict(sinks=sinks)),
                ("alibi [hq]", 1, BR, dict(alibi_slopes=slopes)),
                ("alibi [b, hq] + window (64, 0)", 1, NONE, dict(alibi_slopes=slopes_b, window_size=(64, 0))),
                ("window (100, 2) sq=4 + softcap", 4, NONE, dict(window_size=(100, 2), softcap=5.0)),
                ("all four top-left sq=4", 4, TL, dict(softcap=20.0, alibi_slopes=slopes, window_size=(50, 20),
                                                       sinks=sinks))):
            fails += kv_case(f"mods {label} page={page}", lens, 2048, sq, hq, hk, 128, BF, causal, page=page,
                             splits=(1, 0, 7), gen=gen, mods=mods)
    q = torch.randn(1, 1, hq, 128, device=DEV, dtype=BF)
    kc = torch.randn(1, 64, hk, 128, device=DEV, dtype=BF)
    try:
        flashgen.attention_with_kvcache(q, kc, kc, sinks=sinks.clone().requires_grad_())
        fails.append("mods: sinks that require grad were accepted (the inference path has no backward)")
    except RuntimeError as e:
        print(f"ok   mods: sinks requiring grad refused: {e}", flush=True)
    return fails


def splits_cases():
    """num_splits 1, automatic and 7 on the same inputs: long keys (decode)
    contiguous and paged, and a prefill of 64 causal queries."""
    fails = []
    for page, sq, causal in ((None, 1, NONE), (64, 1, NONE), (None, 64, BR)):
        fails += kv_case(f"splits page={page} sq={sq} causal={causal}", [8000, 3000], 8192, sq, 32, 8, 128, BF,
                         causal, page=page, splits=(1, 0, 7), gen=torch.Generator().manual_seed(7))
    return fails


def workspace_reuse():
    """One split plan run 12 times with new lengths (written on the device
    into the same tensor) on the current stream, then on a side stream: each
    result against the reference; the zeroed workspace is made once per
    (plan, stream) and reused (the runs leave its split counts zero)."""
    name = "split workspace reused across calls and streams"
    b, cap, hq, hk, d = 3, 4096, 32, 8, 128
    gen = torch.Generator().manual_seed(5)
    cache = Cache([cap] * b, cap, hk, d, BF, page=64, gen=gen)
    q = torch.randn(b, 1, hq, d, device=DEV, dtype=BF)
    lens = torch.zeros(b, dtype=torch.int32, device=DEV)

    def run():
        fails, seen = [], {}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        for i in range(16):
            stream = side if i >= 12 else torch.cuda.current_stream()
            with torch.cuda.stream(stream):
                want = [int(x) for x in torch.randint(0, cap + 1, (b,), generator=gen)]
                lens.copy_(torch.tensor(want, dtype=torch.int32), non_blocking=False)
                o = flashgen.attention_with_kvcache(q, cache.k, cache.v, cache_seqlens=lens, block_table=cache.table,
                                                    num_splits=7)
                plan = _inference.last_plan()
                ws = _inference._workspaces.get((_inference._last.plan.handle, stream.cuda_stream))
                ptr = ws.data_ptr() if ws is not None else None
            stream.synchronize()
            if plan is None or plan[0] < 2 or ptr is None:
                return [f"{name}: call {i}: plan {plan}, cached workspace {ptr} (want a split plan and one)"]
            if seen.setdefault(stream.cuda_stream, ptr) != ptr:
                fails.append(f"{name}: call {i}: a new workspace for the same plan and stream")
            ro = [ref_seq(q[s], cache.flat("k")[cache.rows(s, want[s])], cache.flat("v")[cache.rows(s, want[s])],
                          1 / math.sqrt(d), False)[0] for s in range(b)]  # a length 0: o = 0
            fails += compare(f"{name}, call {i} lens {want}", o, None, torch.stack(ro), None, BF)
        if len(seen) != 2:
            fails.append(f"{name}: {len(seen)} workspaces for 2 streams")
        if not fails:
            print(f"ok   {name}: 16 calls, {len(seen)} workspaces", flush=True)
        return fails
    return guarded(name, run)


def paged_equals_contiguous():
    """The same data in a contiguous and in a paged cache: identical o and lse."""
    lens, cap, hk, d = [700, 1, 0, 1500], 2048, 8, 128
    name = "paged == contiguous (bitwise)"
    paged = Cache(lens, cap, hk, d, BF, page=64, gen=torch.Generator().manual_seed(3))
    kc, vc = (torch.zeros(len(lens), cap, hk, d, device=DEV, dtype=BF) for _ in range(2))
    for i, (ks, vs) in enumerate(paged.seqs):
        kc[i, :lens[i]], vc[i, :lens[i]] = ks, vs
    q = torch.randn(len(lens), 1, 32, d, device=DEV, dtype=BF)
    lt = torch.tensor(lens, dtype=torch.int32, device=DEV)

    def run():
        with no_sync():
            a = flashgen.attention_with_kvcache(q, kc, vc, cache_seqlens=lt, return_lse=True, num_splits=4)
            b = flashgen.attention_with_kvcache(q, paged.k, paged.v, cache_seqlens=lt, block_table=paged.table,
                                            return_lse=True, num_splits=4)
        ok = torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        diff = float((a[0].double() - b[0].double()).abs().max())
        print(f"{'ok  ' if ok else 'FAIL'} {name}: max |o difference| {diff:.3g}", flush=True)
        return [] if ok else [f"{name}: o or lse differ (max |o difference| {diff:.3g})"]
    return guarded(name, run)


def bad_tables(appends):
    """Out-of-range entries are reported by check_tables, never a crash;
    a later valid call still works."""
    fails = []
    q = torch.randn(2, 1, 8, 64, device=DEV, dtype=BF)
    pages = torch.randn(4, 16, 2, 64, device=DEV, dtype=BF)
    good = torch.tensor([[0, 1], [2, 3]], dtype=torch.int32, device=DEV)
    cases = [("block_table entry past num_pages", "block_table", dict(block_table=torch.tensor(
                [[0, 9], [2, 3]], dtype=torch.int32, device=DEV), cache_seqlens=torch.tensor(
                [20, 5], dtype=torch.int32, device=DEV))),
             ("length past the capacity", "seqlens_k", dict(block_table=good, cache_seqlens=torch.tensor(
                 [40, 5], dtype=torch.int32, device=DEV))),
             ("append past the capacity", "fg_kv_append", dict(block_table=good, cache_seqlens=torch.tensor(
                 [31, 5], dtype=torch.int32, device=DEV), k=torch.randn(2, 2, 2, 64, device=DEV, dtype=BF),
                 v=torch.randn(2, 2, 2, 64, device=DEV, dtype=BF)))][:3 if appends else 2]
    for what, word, kw in cases:
        try:
            flashgen.attention_with_kvcache(q, pages, pages, **kw)
            flashgen.check_tables()
            fails.append(f"bad tables, {what}: check_tables reported nothing")
            print(f"FAIL bad tables, {what}: nothing reported", flush=True)
        except flashgen.FlashgenError as e:
            ok = e.status_name == "FG_ERR_BAD_LAYOUT" and word in e.message
            print(f"{'ok  ' if ok else 'FAIL'} bad tables, {what} -> {e}", flush=True)
            if not ok:
                fails.append(f"bad tables, {what}: unexpected {e}")
    qp = torch.randn(6, 8, 64, device=DEV, dtype=BF)
    try:
        flashgen.attention(qp, qp[:, :2], qp[:, :2], cu_seqlens_q=cu([4, 2]).flip(0).contiguous(),
                           cu_seqlens_k=cu([4, 2]), max_seqlen_q=4, max_seqlen_k=4)
        flashgen.check_tables()
        fails.append("bad tables, decreasing cu_seqlens_q: nothing reported")
    except flashgen.FlashgenError as e:
        ok = "cu_seqlens_q" in e.message
        print(f"{'ok  ' if ok else 'FAIL'} bad tables, decreasing cu_seqlens_q -> {e}", flush=True)
        if not ok:
            fails.append(f"bad tables, cu_seqlens_q: unexpected {e}")
    return fails + kv_case("after bad tables: a valid call", [20, 5], 32, 1, 8, 2, 64, BF, BR, page=16)


def same(x, y):
    """Bitwise equal, NaN where NaN (a paged cache's spare pages are NaN, and NaN != NaN)."""
    return torch.equal(x.isnan(), y.isnan()) and torch.equal(x.nan_to_num(), y.nan_to_num())


def graph_case(page, appends):
    """A decode step (append 1 row when the library has fg_kv_append, attend,
    causal) captured once and replayed 100 times with random lengths, against
    the same uncaptured step on a copy of the cache: o and the caches bit for
    bit, and o against the reference every 20 steps."""
    name = f"CUDA graph decode, page={page}{'' if appends else ', no append'}"
    new = 1 if appends else 0
    b, cap, hq, hk, d = 4, 1024, 32, 8, 128
    gen = torch.Generator().manual_seed(11)
    a = Cache([cap] * b, cap, hk, d, BF, page=page, gen=gen)  # full of random rows: any length is valid
    kb, vb = a.k.clone(), a.v.clone()
    q = torch.randn(b, 1, hq, d, device=DEV, dtype=BF)
    kn, vn = (torch.randn(b, 1, hk, d, device=DEV, dtype=BF) for _ in range(2))
    lens = torch.zeros(b, dtype=torch.int32, device=DEV)
    oa, ob = (torch.empty(b, 1, hq, d, device=DEV, dtype=BF) for _ in range(2))
    step = lambda kc, vc, o: flashgen.attention_with_kvcache(q, kc, vc, k=kn if new else None, v=vn if new else None,
                                                            cache_seqlens=lens, block_table=a.table, causal=True,
                                                            out=o)

    def run():
        fails = []
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # compiles, plans, allocates the table error word
            step(a.k, a.v, oa)
            step(kb, vb, ob)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step(a.k, a.v, oa)
        for i in range(100):
            q.normal_()
            kn.normal_()
            vn.normal_()
            lens.random_(0, cap)  # on the device: any length (a new row goes at it)
            g.replay()
            with no_sync():
                step(kb, vb, ob)
            if not (same(oa, ob) and same(a.k, kb) and same(a.v, vb)):
                return [f"{name}: replay {i} differs from the uncaptured call (o or cache)"]
            if i % 20 == 0:
                ro = []
                for s in range(b):
                    n = int(lens[s]) + new
                    r = a.rows(s, n)
                    ro.append(ref_seq(q[s], a.flat("k")[r], a.flat("v")[r], 1 / math.sqrt(d), True)[0])
                fails += compare(f"{name}, replay {i}", oa, None, torch.stack(ro), None, BF)
        print(f"ok   {name}: 100 replays equal to uncaptured calls", flush=True)
        return fails
    return guarded(name, run)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    missing = _lib.missing_inference()
    if any(n != "fg_kv_append" for n in missing):
        print(f"test_infer_gpu: skipped: {flashgen.library_path()} has no {', '.join(missing)} (built before the "
              "inference API)")
        return 77
    appends = "fg_kv_append" not in missing
    skipped = []
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}  library {flashgen.library_path()}")
    fails, n = [], 0

    def add(f):
        nonlocal n
        n += 1
        fails.extend(f)

    # variable lengths: 0 and 1 among them, GQA, both causal alignments, True where square
    lq, lk = [0, 1, 17, 300, 128], [5, 0, 17, 513, 1]
    for causal in (NONE, BR, TL):
        add(varlen_case(lq, lk, 8, 2, 128, BF, causal))
    add(varlen_case(lq, lq, 8, 2, 128, BF, True, same_cu=True))
    add(varlen_case([1, 0, 33, 200], [7, 3, 1, 513], 4, 4, 64, FP, BR, scale=0.3))
    add(varlen_case(lq, lk, 8, 2, 128, BF, BR, used=[5, 0, 9, 1, 1]))
    add(varlen_case(lq, lk, 8, 2, 128, BF, TL, k_batched=True, used=[5, 0, 17, 400, 1]))

    # KV caches: contiguous and paged (16, 64; shuffled; a shared page), decode and a few queries
    lens = [300, 1, 0, 777]
    for page in (None, 16, 64):
        for sq, causal in ((1, NONE), (1, BR), (4, BR), (4, TL)):
            add(kv_case(f"kvcache page={page} sq={sq} causal={causal}", lens, 1024, sq, 32, 8, 128, BF, causal,
                        page=page, gen=gen))
    add(kv_case("kvcache page=16 shared page", [100, 40, 7], 256, 1, 32, 8, 128, BF, BR, page=16, share=True, gen=gen))
    add(kv_case("kvcache MHA fp16 d=64", [50, 200], 256, 1, 16, 16, 64, FP, BR, gen=gen))
    # head dims not multiples of 8 (FlashAttention's kvcache test uses 59): padded around the call, appends copied back
    add(kv_case("kvcache d=59 (padded) appends", [50, 200, 0], 256, 1, 8, 2, 59, BF, BR, new=2, gen=gen))
    add(kv_case("kvcache d=59 (padded) paged 16 appends", [50, 200, 0], 256, 3, 8, 2, 59, FP, TL, page=16, new=3,
                gen=gen))
    # appends: 1 and 3 new rows, contiguous and paged (the shared page stays below the new rows)
    if appends:
        for page in (None, 16, 64):
            for new in (1, 3):
                add(kv_case(f"append {new} page={page}", [300, 0, 64, 700], 1024, new, 32, 8, 128, BF, BR,
                            page=page, new=new, gen=gen))
        add(kv_case("append 3 page=16 shared page", [100, 40, 7], 256, 3, 32, 8, 128, BF, BR, page=16, share=True,
                    new=3, gen=gen))
    else:
        skipped.append("the 7 append cases and the append in the graph cases and in 'append past the capacity' "
                       "(this library has no fg_kv_append)")

    add(splits_cases())
    add(mods_cases(gen))
    add(workspace_reuse())
    add(paged_equals_contiguous())
    try:
        flashgen.check_tables()
        print("ok   check_tables: nothing recorded by the valid cases above", flush=True)
    except flashgen.FlashgenError as e:
        fails.append(f"check_tables after valid cases (unused table entries are -1: never to be read): {e}")
        print(f"FAIL check_tables after valid cases: {e}", flush=True)
    n += 1
    add(bad_tables(appends))
    for page in (None, 16):
        add(graph_case(page, appends))

    print(f"\n{time.time() - t0:.1f} s")
    for s in skipped:
        print("SKIPPED:", s)
    for f in fails:
        print("FAILED:", f)
    bad = len({f.split(":")[0] for f in fails})
    print(f"{n - min(bad, n)} passed, {bad} failed, {len(skipped)} skipped")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
