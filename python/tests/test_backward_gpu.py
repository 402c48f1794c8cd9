#!/usr/bin/env python3
"""flashgen.attention's gradients on the GPU against PyTorch (autograd of the
math formula) in float64.

Fresh random q, k, v and upstream gradient per case; fp16 and bf16; head
dims 32..256 (and 40; 4, 59 and 111, which flashgen.attention pads to a
multiple of 8); no / bottom-right / top-left causal; GQA and MQA;
lengths off the tiles, seqlen_q != seqlen_k, seqlen 1; bshd and bhsd; a
value head dim of its own (v and o 128 wide against q and k 192, 64 against
128, 128 against 64), through autograd as well.
A case passes when the relative L2 error of each of dq, dk, dv against
PyTorch autograd of the attention formula in float64 is within max(2 x the
error of the same computation in the inputs' dtype + 1e-3, 1e-2 bf16 /
2e-3 fp16) and nothing is NaN.  Also: rows
that see no key get zero dq; deterministic=True run twice is bitwise equal;
only q requiring grad works; block-sparse layouts (FlexAttention's BlockMask
terms: full blocks unmasked, partial ones causal) against the same formula
with the layout's element mask; deterministic=True with a block_mask raises.

Exit 77 (skipped) without torch or without a CUDA GPU.
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_backward_gpu", cuda=True)
import flashgen  # noqa: E402

DEV = "cuda"
failures = []


def visible(sq, sk, causal):
    i = torch.arange(sq, device=DEV)[:, None]
    j = torch.arange(sk, device=DEV)[None, :]
    if causal == "bottom_right":
        return j <= i + (sk - sq)
    if causal == "top_left":
        return j <= i
    return torch.ones(sq, sk, dtype=torch.bool, device=DEV)


def torch_grads(q, k, v, g, allowed, dtype):
    """Gradients of sum(attention * g) by PyTorch autograd of the attention
    formula (the math backend's composition: matmul, masked softmax,
    matmul), inputs bhsd, computed in dtype; allowed: bool [sq, sk] or
    broadcastable to [b, h, sq, sk].  Rows that see no key are
    multiplied by 0 after an unmasked softmax, so they give o = 0 and zero
    gradients rather than NaN."""
    q, k, v = (t.detach().to(dtype).requires_grad_() for t in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    seen = allowed.any(-1, keepdim=True)
    s = (q @ kk.transpose(-1, -2)) * q.shape[-1] ** -0.5
    s = s.masked_fill(~(allowed | ~seen), float("-inf"))
    o = (torch.softmax(s, dim=-1) * seen) @ vv
    (o * g.to(dtype)).sum().backward()
    return [t.grad for t in (q, k, v)]


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-3 * b.numel() ** 0.5)).item()


def case(dtype, d, b, hq, hk, sq, sk, causal, layout, block_mask=None, allowed=None, dv=None):
    dv = dv or d

    def mk(h, s, w=d):
        shape = (b, s, h, w) if layout == "bshd" else (b, h, s, w)
        return torch.randn(shape, device=DEV, dtype=dtype)
    q, k, v = mk(hq, sq), mk(hk, sk), mk(hk, sk, dv)
    g = mk(hq, sq, dv)
    for t in (q, k, v):
        t.requires_grad_()
    o = flashgen.attention(q, k, v, causal=causal, layout=layout, block_mask=block_mask)
    o.backward(g)
    to_bhsd = (lambda t: t.transpose(1, 2)) if layout == "bshd" else (lambda t: t)
    if allowed is None:
        allowed = visible(sq, sk, causal)
    ref = torch_grads(*(to_bhsd(t) for t in (q, k, v, g)), allowed, torch.float64)
    same = torch_grads(*(to_bhsd(t) for t in (q, k, v, g)), allowed, dtype)
    got = [to_bhsd(t.grad) for t in (q, k, v)]
    floor = 1e-2 if dtype == torch.bfloat16 else 2e-3
    errs, ok = [], True
    for name, x, r, s in zip(("dq", "dk", "dv"), got, ref, same):
        e, et = rel(x, r), rel(s, r)
        tol = max(2 * et + 1e-3, floor)
        nan = torch.isnan(x).any().item()
        ok &= e <= tol and not nan
        errs.append(f"{name} {e:.2e} (torch {et:.2e}, tol {tol:.1e}{', NaN' if nan else ''})")
    empty = ~allowed.expand(b, hq, sq, sk).any(-1)
    if empty.any():
        z = got[0][empty]
        ok &= bool((z == 0).all())
        errs.append(f"empty rows {int(empty.sum())}: dq {'0' if bool((z == 0).all()) else 'NOT 0'}")
    ok &= tuple(got[2].shape) == (b, hk, sk, dv) and tuple(got[0].shape) == (b, hq, sq, d)
    line = (f"{'ok' if ok else 'FAIL'} {str(dtype)[6:]} d={d} dv={dv} b={b} hq={hq} hk={hk} sq={sq} sk={sk} {causal} {layout}"
            f"{' sparse' if block_mask is not None else ''}: "
            + ", ".join(errs))
    print(line, flush=True)
    if not ok:
        failures.append(line)


def main():
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    shapes = [(2, 4, 2, 333, 517), (1, 3, 1, 300, 100), (2, 2, 2, 257, 129), (1, 2, 2, 1, 200), (1, 4, 1, 130, 190)]
    n = 0
    for d in (32, 40, 64, 96, 128, 256):
        for dtype in (torch.bfloat16, torch.float16):
            causal = ("none", "bottom_right", "top_left")[n % 3]
            b, hq, hk, sq, sk = shapes[n % len(shapes)]
            case(dtype, d, b, hq, hk, sq, sk, False if causal == "none" else causal, rng.choice(("bshd", "bhsd")))
            n += 1

    # a value head dim of its own (issue 17): both directions, causal both ways, GQA/MQA, odd lengths
    for d, dv, dtype, causal, shape in ((192, 128, torch.bfloat16, "bottom_right", (2, 4, 2, 333, 517)),
                                        (128, 64, torch.float16, "top_left", (1, 3, 1, 300, 100)),
                                        (64, 128, torch.bfloat16, False, (2, 2, 2, 257, 129)),
                                        (256, 128, torch.float16, "bottom_right", (1, 4, 1, 130, 190))):
        case(dtype, d, *shape, causal, rng.choice(("bshd", "bhsd")), dv=dv)

    # head dims that are not multiples of 8: zero-padded around the kernels, the pads and slice differentiated by torch
    for d, dv, dtype, causal, shape in ((59, 59, torch.bfloat16, "bottom_right", (2, 4, 2, 113, 203)),
                                        (111, 111, torch.float16, False, (1, 2, 2, 239, 300)),
                                        (4, 12, torch.bfloat16, "top_left", (1, 2, 1, 128, 217)),
                                        (64, 37, torch.float16, "bottom_right", (1, 3, 3, 130, 190))):
        case(dtype, d, *shape, causal, rng.choice(("bshd", "bhsd")), dv=dv)

    # deterministic: bitwise equal gradients from two runs
    q, k, v = (torch.randn(1, 900, 4, 128, device=DEV, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn_like(q)
    runs = []
    for _ in range(2):
        for t in (q, k, v):
            t.grad = None
        flashgen.attention(q, k, v, causal=True, deterministic=True).backward(g)
        runs.append([t.grad.clone() for t in (q, k, v)])
    same = all(torch.equal(a, b) for a, b in zip(*runs))
    print(f"{'ok' if same else 'FAIL'} deterministic=True: gradients of two runs bitwise equal", flush=True)
    if not same:
        failures.append("deterministic")

    # only q requires grad; lse is returned without a gradient
    q = torch.randn(1, 64, 2, 64, device=DEV, dtype=torch.float16, requires_grad=True)
    k, v = (torch.randn(1, 64, 2, 64, device=DEV, dtype=torch.float16) for _ in range(2))
    o, lse = flashgen.attention(q, k, v, return_lse=True)
    o.sum().backward()
    good = q.grad is not None and k.grad is None and lse.grad_fn is None and not torch.isnan(q.grad).any()
    print(f"{'ok' if good else 'FAIL'} only q requires grad; lse has no grad_fn", flush=True)
    if not good:
        failures.append("q only")

    # block-sparse: a random layout (full blocks unmasked, partial ones get the causal mask)
    for causal, dtype in ((False, torch.bfloat16), ("bottom_right", torch.float16)):
        b, hq, hk, sq, sk, d, blk = 2, 4, 2, 300, 400, 64, 128
        nq, nk = (sq + blk - 1) // blk, (sk + blk - 1) // blk
        kind = torch.randint(0, 3, (b, hq, nq, nk), generator=torch.Generator().manual_seed(rng.randrange(1 << 30)))
        full, part = kind == 1, kind == 2  # 0: not listed
        def lists(sel):
            num = sel.sum(-1).to(torch.int32)
            idx = torch.zeros(b, hq, nq, nk, dtype=torch.int32)
            for x in range(b):
                for y in range(hq):
                    for r in range(nq):
                        js = sel[x, y, r].nonzero().flatten()
                        idx[x, y, r, :len(js)] = js.to(torch.int32)
            return num, idx
        pn, pi = lists(part)
        fn, fi = lists(full)
        bm = flashgen.BlockLayout(pn, pi, fn, fi, block_size=(blk, blk))
        rows = torch.arange(sq) // blk
        cols = torch.arange(sk) // blk
        grid = lambda sel: sel[:, :, rows][:, :, :, cols].to(DEV)
        allowed = grid(full) | (grid(part) & visible(sq, sk, causal))
        case(dtype, d, b, hq, hk, sq, sk, causal, "bshd", block_mask=bm, allowed=allowed)
    try:
        flashgen.attention(q, k, v, block_mask=bm, deterministic=True)
        raised = False
    except ValueError as e:
        raised = "deterministic" in str(e)
    print(f"{'ok' if raised else 'FAIL'} block_mask with deterministic=True raises ValueError", flush=True)
    if not raised:
        failures.append("block_mask deterministic")

    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
