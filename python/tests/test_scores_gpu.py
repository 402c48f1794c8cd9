#!/usr/bin/env python3
"""flashgen.attention's score modifications on the GPU (issue 13):
softcap=, alibi_slopes=, window_size=, sinks= against a float64 reference
written here from their definitions (include/flashgen.h,
docs/SCORE-WIRING.md), each alone and combined, causal both alignments,
GQA, seqlen_q != seqlen_k, odd lengths, windows that leave rows empty.
Outputs poisoned (out= NaN, a NaN block left for lse).  Criterion:
test_attention_gpu.compare (FlashAttention's).  Autograd (the backward):
dq, dk, dv and the sinks' gradient against PyTorch autograd of the same
reference in float64, each within max(2 x the error of that reference run
in the inputs' dtype + 1e-3, 1e-2 bf16 / 2e-3 fp16) (FlashAttention's
criterion, as test_backward_gpu.py).  Also: bad arguments raise
ValueError/TypeError, alibi_slopes requiring grad NotImplementedError,
deterministic=True with sinks requiring grad ValueError.  score_mod= (a
flashgen.Score, or a FlexAttention-style function translated) against a
float64 reference that runs the function itself on the logits; its
refusals (TranslationError, FlashgenError with the column, variable
lengths).

Exit 77 (skipped) without torch or without a CUDA GPU.

  python3 python/tests/test_scores_gpu.py [--seed S]
"""
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import gpu_main, refusals, require_torch  # noqa: E402

torch = require_torch("test_scores_gpu", cuda=True)
import flashgen  # noqa: E402
from test_attention_gpu import compare, poison_lse_pool  # noqa: E402  (the one criterion)

DEV = "cuda"


def logits(q, k, v, dt):
    """The scaled scores [b, hq, sq, sk] and v [b, hq, sk, dv] in dt (GQA heads repeated)."""
    g = q.shape[2] // k.shape[2]
    qf = q.to(dt).transpose(1, 2)
    kf = k.to(dt).transpose(1, 2).repeat_interleave(g, 1)
    vf = v.to(dt).transpose(1, 2).repeat_interleave(g, 1)
    return (qf @ kf.transpose(2, 3)) / math.sqrt(q.shape[3]), vf


def reference(q, k, v, causal, softcap, slopes, window, sinks, dt=torch.float64):
    """In dt (float64 unless said), bshd: o [b, sq, hq, dv], lse [b, hq, sq];
    differentiable (rows that see no key: their scores stay unmasked and
    their probabilities are multiplied by 0, so no NaN reaches a gradient)."""
    b, sq, hq, d = q.shape
    sk = k.shape[1]
    s, vf = logits(q, k, v, dt)
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    off = 0 if causal == "top_left" else sk - sq
    i = torch.arange(sq, device=DEV).view(-1, 1)
    j = torch.arange(sk, device=DEV).view(1, -1)
    if slopes is not None:
        sl = slopes.to(dt).view(-1, hq, 1, 1) if slopes.dim() == 2 else slopes.to(dt).view(1, hq, 1, 1)
        s = s - sl * (i + off - j).abs().to(dt)
    vis = torch.ones(sq, sk, dtype=torch.bool, device=DEV)
    if causal:
        vis &= j <= i + (0 if causal == "top_left" else sk - sq)
    if window[0] >= 0:
        vis &= j >= i + off - window[0]
    if window[1] >= 0:
        vis &= j <= i + off + window[1]
    if sinks is not None:
        s = s.masked_fill(~vis, -math.inf)
        sk_col = sinks.to(dt).view(1, hq, 1, 1).expand(b, hq, sq, 1)
        full = torch.cat([s, sk_col], dim=-1)
        lse = torch.logsumexp(full, dim=-1)
        p = torch.exp(s - lse.unsqueeze(-1))
    else:
        seen = vis.any(-1, keepdim=True)
        s = s.masked_fill(~(vis | ~seen), -math.inf)
        lse = torch.logsumexp(s, dim=-1).masked_fill(~seen.view(sq), -math.inf)
        p = torch.softmax(s, dim=-1) * seen
    o = (p @ vf).transpose(1, 2)
    return o, lse


def inputs(b, sq, sk, hq, hk, d, dtype, alibi, slopes2d, sinks, grad=False):
    """q, k, v (requiring grad if grad), ALiBi slopes and sinks (requiring grad if grad) or None."""
    q, k, v = (torch.randn(b, s, h, d, device=DEV, dtype=dtype, requires_grad=grad)
               for s, h in ((sq, hq), (sk, hk), (sk, hk)))
    slopes = None
    if alibi:
        slopes = (torch.rand(b, hq, device=DEV) if slopes2d else torch.rand(hq, device=DEV)) * 0.5 + 0.01
    snk = (torch.randn(hq, device=DEV) * 2).requires_grad_(grad) if sinks else None
    return q, k, v, slopes, snk


def run_case(name, b, sq, sk, hq, hk, d, dtype, causal, softcap=None, slopes2d=False, alibi=False, window=None,
             sinks=False):
    q, k, v, slopes, snk = inputs(b, sq, sk, hq, hk, d, dtype, alibi, slopes2d, sinks)
    out = torch.full((b, sq, hq, d), math.nan, device=DEV, dtype=dtype)
    poison_lse_pool((b, hq, sq))
    with torch.no_grad():
        o, lse = flashgen.attention(q, k, v, causal=causal, softcap=softcap, alibi_slopes=slopes,
                                    window_size=window, sinks=snk, return_lse=True, out=out)
    ro, rl = reference(q, k, v, causal, softcap, slopes, window or (-1, -1), snk)
    return compare(name, o, lse, ro, rl, dtype)


def cases():
    BF, FP = torch.bfloat16, torch.float16
    yield "softcap 30", dict(b=2, sq=300, sk=300, hq=4, hk=4, d=128, dtype=BF, causal=False, softcap=30.0)
    yield "softcap 2 (saturating)", dict(b=1, sq=257, sk=511, hq=4, hk=2, d=64, dtype=FP, causal="bottom_right",
                                          softcap=2.0)
    yield "alibi [h]", dict(b=2, sq=200, sk=333, hq=8, hk=2, d=128, dtype=BF, causal=False, alibi=True)
    yield "alibi [b,h] causal", dict(b=3, sq=129, sk=129, hq=4, hk=4, d=64, dtype=FP, causal=True, alibi=True,
                                     slopes2d=True)
    yield "alibi top_left sq>sk", dict(b=1, sq=300, sk=190, hq=4, hk=1, d=96, dtype=BF, causal="top_left", alibi=True)
    yield "window (64, 0)", dict(b=2, sq=1000, sk=1000, hq=4, hk=4, d=128, dtype=BF, causal=False, window=(64, 0))
    yield "window (17, 9) causal br", dict(b=1, sq=333, sk=777, hq=6, hk=3, d=64, dtype=FP, causal="bottom_right",
                                           window=(17, 9))
    yield "window (5, -1) sq>sk empty rows", dict(b=1, sq=400, sk=100, hq=2, hk=2, d=128, dtype=BF,
                                                   causal="bottom_right", window=(5, -1))
    yield "window (-1, 3) top_left", dict(b=2, sq=250, sk=500, hq=4, hk=2, d=256, dtype=BF, causal="top_left",
                                          window=(-1, 3))
    yield "window (0, 0) diagonal only", dict(b=1, sq=130, sk=130, hq=2, hk=2, d=64, dtype=FP, causal=False,
                                              window=(0, 0))
    yield "sinks", dict(b=2, sq=300, sk=300, hq=4, hk=4, d=128, dtype=BF, causal=False, sinks=True)
    yield "sinks causal sq>sk (rows with no key: lse = sink)", dict(b=1, sq=300, sk=100, hq=4, hk=1, d=64, dtype=FP,
                                                                    causal="bottom_right", sinks=True)
    yield "all four causal GQA odd", dict(b=2, sq=517, sk=1031, hq=8, hk=2, d=128, dtype=BF, causal="bottom_right",
                                          softcap=20.0, alibi=True, window=(100, 50), sinks=True)
    yield "all four non-causal top-heavy", dict(b=1, sq=1031, sk=517, hq=4, hk=4, d=64, dtype=FP, causal=False,
                                                softcap=50.0, alibi=True, slopes2d=True, window=(33, 77), sinks=True)


def reference_mod(q, k, v, causal, softcap, fn, dt=torch.float64):
    """In dt (float64 by default): the scaled logits, softcap, then the
    user's score_mod fn run on dt tensors with broadcast (b, h, q_idx,
    kv_idx) index grids; differentiable."""
    b, sq, hq, d = q.shape
    sk = k.shape[1]
    s, vf = logits(q, k, v, dt)
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    grid = (torch.arange(b, device=DEV).view(-1, 1, 1, 1), torch.arange(hq, device=DEV).view(1, -1, 1, 1),
            torch.arange(sq, device=DEV).view(1, 1, -1, 1), torch.arange(sk, device=DEV).view(1, 1, 1, -1))
    s = torch.as_tensor(fn(s, *grid)).to(dt).expand(b, hq, sq, sk)
    if causal:
        i, j = grid[2], grid[3]
        s = s.masked_fill(j > i + (0 if causal == "top_left" else sk - sq), -math.inf)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse.unsqueeze(-1)).nan_to_num(0.0)
    return (p @ vf).transpose(1, 2), lse


def score_mod_cases():
    """score_mod= (a flashgen.Score, or a function translated) against reference_mod."""
    BF, FP = torch.bfloat16, torch.float16
    bias = torch.randn(8, 127, device=DEV)
    tab = torch.randn(4, device=DEV)
    rel_bias = lambda score, b, h, q_idx, kv_idx: score + bias[h, (kv_idx - q_idx).clamp(-63, 63) + 63]  # noqa: E731
    soft_mask = lambda score, b, h, q_idx, kv_idx: torch.where(kv_idx <= q_idx + 5, score, score - 1e4)  # noqa: E731
    per_batch = lambda score, b, h, q_idx, kv_idx: score * 0.5 + tab[h] + b * 0.25  # noqa: E731
    yield "score_mod relative bias [8, 127] GQA", dict(b=2, sq=300, sk=517, hq=8, hk=2, d=128, dtype=BF,
                                                        causal=False, fn=rel_bias, mod=rel_bias)
    text = flashgen.Score("score * c + t[h] + (b + 0.0) * w", tables={"t": tab}, consts={"c": 0.5, "w": 0.25})
    yield "Score text, constants and a table, causal", dict(b=3, sq=129, sk=200, hq=4, hk=4, d=64, dtype=FP,
                                                            causal="bottom_right", fn=per_batch, mod=text)
    yield "score_mod after softcap", dict(b=1, sq=257, sk=257, hq=8, hk=8, d=128, dtype=BF, causal="top_left",
                                          softcap=20.0, fn=rel_bias, mod=rel_bias)
    yield "score_mod where (a soft band)", dict(b=2, sq=200, sk=200, hq=4, hk=1, d=256, dtype=BF, causal=False,
                                                fn=soft_mask, mod=soft_mask)
    # FlexAttention's masking score_mods (-inf: the language's inf), rows 0..4 see no key (o = 0, lse = -inf),
    # and its _trig (sin, cos, tan of an integer index)
    late = lambda score, b, h, q_idx, kv_idx: torch.where(kv_idx <= q_idx - 5, score + (q_idx - kv_idx) * 0.01,  # noqa: E731
                                                          -float("inf"))
    trig = lambda score, b, h, q_idx, kv_idx: torch.sin(torch.cos(score)) + torch.tan(b)  # noqa: E731
    yield "score_mod -inf mask with empty rows GQA", dict(b=2, sq=300, sk=300, hq=8, hk=2, d=128, dtype=BF,
                                                         causal=False, fn=late, mod=late)
    yield "score_mod sin/cos/tan", dict(b=2, sq=129, sk=200, hq=4, hk=4, d=64, dtype=FP, causal="bottom_right",
                                        fn=trig, mod=trig)


def run_score_mod_case(name, b, sq, sk, hq, hk, d, dtype, causal, fn, mod, softcap=None):
    q, k, v = (torch.randn(b, s_, h, d, device=DEV, dtype=dtype) for s_, h in ((sq, hq), (sk, hk), (sk, hk)))
    out = torch.full((b, sq, hq, d), math.nan, device=DEV, dtype=dtype)
    poison_lse_pool((b, hq, sq))
    with torch.no_grad():
        o, lse = flashgen.attention(q, k, v, causal=causal, softcap=softcap, score_mod=mod, return_lse=True, out=out)
    ro, rl = reference_mod(q, k, v, causal, softcap, fn)
    return compare(name, o, lse, ro, rl, dtype)


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-3 * b.numel() ** 0.5)).item()


def grad_errors(name, got, refs, dtype):
    """FlashAttention's criterion on each gradient (dq, dk, dv, then dsinks
    where given): rel L2 against float64 within 2x the same-dtype
    reference's own error + 1e-3, floored at the forward's tolerance."""
    floor = 1e-2 if dtype == torch.bfloat16 else 2e-3
    errs, line = [], []
    for what, x, r64, rlow in zip(("dq", "dk", "dv", "dsinks"), got, refs[torch.float64], refs[dtype]):
        if x is None or torch.isnan(x).any():
            errs.append(f"{what} is missing or has NaN")
            continue
        e, e_low = rel(x, r64), rel(rlow, r64)
        tol = max(2 * e_low + 1e-3, floor)
        line.append(f"{what} {e:.2e} (tol {tol:.1e})")
        if not e <= tol:
            errs.append(f"{what} rel L2 {e:.3g} > {tol:.3g}")
    print(f"{'FAIL' if errs else 'ok  '} grad {name:60s} {' '.join(line)}", flush=True)
    return [f"grad {name}: {e}" for e in errs]


def grad_case(name, b, sq, sk, hq, hk, d, dtype, causal, softcap=None, slopes2d=False, alibi=False, window=None,
              sinks=False):
    """Autograd through flashgen.attention with the modifications against
    autograd of reference() (FlashAttention's criterion)."""
    q, k, v, slopes, snk = inputs(b, sq, sk, hq, hk, d, dtype, alibi, slopes2d, sinks, grad=True)
    g = torch.randn(b, sq, hq, d, device=DEV, dtype=dtype)
    o = flashgen.attention(q, k, v, causal=causal, softcap=softcap, alibi_slopes=slopes, window_size=window, sinks=snk)
    o.backward(g)
    got = [q.grad, k.grad, v.grad] + ([snk.grad] if sinks else [])
    refs = {}
    for dt in (torch.float64, dtype):
        leaves = [t.detach().to(dt).requires_grad_() for t in (q, k, v)]
        ls = snk.detach().to(dt).requires_grad_() if sinks else None
        ro, _ = reference(*leaves, causal, softcap, slopes, window or (-1, -1), ls, dt=dt)
        (ro * g.to(dt)).sum().backward()
        refs[dt] = [t.grad for t in leaves] + ([ls.grad] if sinks else [])
    return grad_errors(name, got, refs, dtype)


def inference_score_mod_cases():
    """score_mod= on the inference kernel: a KV cache (contiguous and paged,
    decode with GQA packing and a 3-token step) and variable lengths, each
    sequence against reference_mod on its own rows and keys (an expression
    without b, which is the sequence there and 0 in a per-sequence call)."""
    fails = []
    BF = torch.bfloat16
    bias = torch.randn(4, 127, device=DEV)
    rel = lambda score, b, h, q_idx, kv_idx: score + bias[h, (kv_idx - q_idx).clamp(-63, 63) + 63]  # noqa: E731
    smooth = flashgen.Score("score * 0.75 + tanh(score) * 0.5")
    fsmooth = lambda score, b, h, q_idx, kv_idx: score * 0.75 + torch.tanh(score) * 0.5  # noqa: E731
    torch.manual_seed(7)
    for name, sq, paged, fn, mod, cap in (("kvcache decode rel-bias GQA", 1, False, rel, rel, None),
                                          ("kvcache paged 16 step of 3 + softcap", 3, True, fsmooth, smooth, 20.0)):
        b, hq, hk, d, capn = 3, 4, 1, 128, 640
        lens = torch.tensor([600, 37, 333], dtype=torch.int32, device=DEV)
        q = torch.randn(b, sq, hq, d, device=DEV, dtype=BF)
        kc, vc = (torch.randn(b, capn, hk, d, device=DEV, dtype=BF) for _ in range(2))
        kw = dict(cache_seqlens=lens, causal=True, softcap=cap, score_mod=mod, return_lse=True)
        with torch.no_grad():
            if paged:  # the same rows in pages of 16, the pages shuffled
                npg = capn // 16
                perm = torch.randperm(b * npg, device=DEV)
                kp, vp = (torch.empty(b * npg, 16, hk, d, device=DEV, dtype=BF) for _ in range(2))
                kp[perm] = kc.reshape(b * npg, 16, hk, d)
                vp[perm] = vc.reshape(b * npg, 16, hk, d)
                o, lse = flashgen.attention_with_kvcache(q, kp, vp, block_table=perm.view(b, npg).int(), **kw)
            else:
                o, lse = flashgen.attention_with_kvcache(q, kc, vc, **kw)
        ro, rl = zip(*(reference_mod(q[i:i + 1], kc[i:i + 1, :lens[i]], vc[i:i + 1, :lens[i]], "bottom_right", cap, fn)
                       for i in range(b)))
        fails += compare(name, o, lse, torch.cat(ro), torch.cat(rl), BF)
    # variable lengths: packed sequences
    seq = [(130, 200), (1, 77), (257, 257)]
    cq = torch.tensor([0, 130, 131, 388], dtype=torch.int32, device=DEV)
    ck = torch.tensor([0, 200, 277, 534], dtype=torch.int32, device=DEV)
    q = torch.randn(388, 4, 64, device=DEV, dtype=BF)
    k, v = (torch.randn(534, 2, 64, device=DEV, dtype=BF) for _ in range(2))
    with torch.no_grad():
        o, lse = flashgen.attention(q, k, v, cu_seqlens_q=cq, cu_seqlens_k=ck, max_seqlen_q=257, max_seqlen_k=257,
                                    causal="bottom_right", score_mod=rel, return_lse=True)
    ro, rl = [], []
    for i, (a, c) in enumerate(seq):
        x, y = reference_mod(q[cq[i]:cq[i + 1]][None], k[ck[i]:ck[i + 1]][None], v[ck[i]:ck[i + 1]][None],
                             "bottom_right", None, rel)
        ro.append(x[0])
        rl.append(y[0])
    fails += compare("varlen rel-bias causal", o, lse, torch.cat(ro), torch.cat(rl, 1), BF)
    return fails


def score_mod_grad_case(name, b, sq, sk, hq, hk, d, dtype, causal, fn, mod, softcap=None):
    """Autograd through flashgen.attention(score_mod=) (the backward of the
    expression's derivative) against autograd of reference_mod running fn
    itself (FlashAttention's criterion)."""
    q, k, v = (torch.randn(b, s_, h, d, device=DEV, dtype=dtype, requires_grad=True)
               for s_, h in ((sq, hq), (sk, hk), (sk, hk)))
    g = torch.randn(b, sq, hq, d, device=DEV, dtype=dtype)
    flashgen.attention(q, k, v, causal=causal, softcap=softcap, score_mod=mod).backward(g)
    refs = {}
    for dt in (torch.float64, dtype):
        leaves = [t.detach().to(dt).requires_grad_() for t in (q, k, v)]
        ro, _ = reference_mod(*leaves, causal, softcap, fn, dt=dt)
        (ro.nan_to_num(0.0) * g.to(dt)).sum().backward()
        refs[dt] = [t.grad for t in leaves]
    return grad_errors(name, (q.grad, k.grad, v.grad), refs, dtype)


def score_mod_grad_cases():
    BF, FP = torch.bfloat16, torch.float16
    bias = torch.randn(8, 127, device=DEV)
    rel_bias = lambda score, b, h, q_idx, kv_idx: score + bias[h, (kv_idx - q_idx).clamp(-63, 63) + 63]  # noqa: E731
    smooth = lambda score, b, h, q_idx, kv_idx: score * 0.75 + torch.tanh(score) * 0.5  # noqa: E731
    kink = lambda score, b, h, q_idx, kv_idx: torch.where(score > 1.0, 1.0 + (score - 1.0) * 0.25, score)  # noqa: E731
    yield "score_mod relative bias GQA", dict(b=2, sq=300, sk=517, hq=8, hk=2, d=128, dtype=BF, causal=False,
                                              fn=rel_bias, mod=rel_bias)
    yield "score_mod tanh causal", dict(b=1, sq=257, sk=300, hq=4, hk=4, d=64, dtype=FP, causal="bottom_right",
                                        fn=smooth, mod=smooth)
    yield "score_mod kink after softcap top_left", dict(b=2, sq=200, sk=150, hq=4, hk=1, d=128, dtype=BF,
                                                        causal="top_left", softcap=10.0, fn=kink, mod=kink)
    rel_causal = lambda score, b, h, q_idx, kv_idx: torch.where(kv_idx <= q_idx, score + (q_idx - kv_idx) * 0.01,  # noqa: E731
                                                                -float("inf"))
    trig = lambda score, b, h, q_idx, kv_idx: torch.sin(score * 0.5) * 2.0 + torch.cos(score * 0.25)  # noqa: E731
    yield "score_mod -inf mask (FlexAttention's _rel_causal)", dict(b=2, sq=200, sk=200, hq=4, hk=2, d=128, dtype=BF,
                                                                     causal=False, fn=rel_causal, mod=rel_causal)
    yield "score_mod sin/cos", dict(b=1, sq=150, sk=220, hq=2, hk=2, d=64, dtype=FP, causal=False, fn=trig, mod=trig)
    yield "Score text, hd256", dict(b=1, sq=129, sk=200, hq=2, hk=2, d=256, dtype=BF, causal=False, fn=smooth,
                                    mod=flashgen.Score("score * 0.75 + tanh(score) * 0.5"))


def grad_cases():
    BF, FP = torch.bfloat16, torch.float16
    yield "softcap 2", dict(b=2, sq=300, sk=300, hq=4, hk=2, d=128, dtype=BF, causal=False, softcap=2.0)
    yield "softcap 5 causal br", dict(b=1, sq=257, sk=511, hq=4, hk=2, d=64, dtype=FP, causal="bottom_right",
                                       softcap=5.0)
    yield "alibi [h]", dict(b=2, sq=200, sk=333, hq=4, hk=2, d=128, dtype=FP, causal=False, alibi=True)
    yield "alibi [b,h] top_left", dict(b=3, sq=129, sk=100, hq=4, hk=4, d=64, dtype=BF, causal="top_left",
                                       alibi=True, slopes2d=True)
    yield "window (64, 0)", dict(b=1, sq=500, sk=500, hq=4, hk=4, d=128, dtype=BF, causal=False, window=(64, 0))
    yield "window (5, -1) sq>sk empty rows", dict(b=1, sq=400, sk=100, hq=2, hk=1, d=64, dtype=FP,
                                                   causal="bottom_right", window=(5, -1))
    yield "sinks", dict(b=2, sq=300, sk=300, hq=4, hk=4, d=128, dtype=BF, causal=False, sinks=True)
    yield "sinks causal sq>sk", dict(b=1, sq=300, sk=100, hq=4, hk=1, d=64, dtype=FP, causal="bottom_right",
                                     sinks=True)
    yield "all four causal GQA odd", dict(b=2, sq=517, sk=1031, hq=8, hk=2, d=128, dtype=BF, causal="bottom_right",
                                          softcap=3.0, alibi=True, window=(100, 50), sinks=True)
    yield "all four top_left [b,h]", dict(b=1, sq=333, sk=257, hq=4, hk=2, d=64, dtype=FP, causal="top_left",
                                          softcap=4.0, alibi=True, slopes2d=True, window=(33, 7), sinks=True)


def test_errors():
    q = torch.randn(1, 64, 2, 64, device=DEV, dtype=torch.bfloat16)
    bad = [(dict(softcap=-1.0), ValueError), (dict(softcap=math.nan), ValueError),
           (dict(window_size=(-2, 0)), ValueError), (dict(window_size=5), ValueError),
           (dict(alibi_slopes=torch.ones(3, device=DEV)), ValueError),
           (dict(alibi_slopes=torch.ones(2, device=DEV, dtype=torch.float16)), TypeError),
           (dict(sinks=torch.ones(2)), ValueError)]
    with torch.no_grad():
        fails = refusals(lambda **kw: flashgen.attention(q, q, q, **kw), bad)
    # with gradients: alibi_slopes get none; the sinks' is summed with atomics
    qg = q.clone().requires_grad_()
    grad_bad = [(dict(alibi_slopes=torch.ones(2, device=DEV, requires_grad=True)), NotImplementedError),
                (dict(sinks=torch.ones(2, device=DEV, requires_grad=True), deterministic=True), ValueError)]
    fails += refusals(lambda **kw: flashgen.attention(qg, q, q, **kw), grad_bad)
    with torch.no_grad():
        return fails + refusals(lambda **kw: flashgen.attention(q, q, q, **kw), [
            (dict(score_mod=lambda s, b, h, qi, ki: s if qi > ki else s * 0), flashgen.TranslationError),
            (dict(score_mod="score + nope[h]"), flashgen.FlashgenError)])


def main():
    gpu_main(torch, flashgen, __doc__)
    fails, n = test_errors(), 0
    for name, kw in cases():
        fails += run_case(name, **kw)
        n += 1
    for name, kw in score_mod_cases():
        fails += run_score_mod_case(name, **kw)
        n += 1
    for name, kw in grad_cases():
        fails += grad_case(name, **kw)
        n += 1
    for name, kw in score_mod_grad_cases():
        fails += score_mod_grad_case(name, **kw)
        n += 1
    fails += inference_score_mod_cases()
    n += 3
    for f in fails:
        print("FAIL", f)
    print(f"test_scores_gpu: {n} cases, {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
