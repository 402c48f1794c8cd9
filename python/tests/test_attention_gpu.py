#!/usr/bin/env python3
"""flashgen.attention on the GPU against PyTorch's math backend in float32.

Random shapes, dtypes, head dims, causal modes, GQA, layouts and strides,
a value head dim of its own (v narrower or wider than q and k),
block-sparse layouts (raw tensors and FlexAttention BlockMasks), odd sizes
(seqlen not a multiple of 128, seqlen_q != seqlen_k, batch > 1).  Fresh
random inputs for every case; the output is poisoned with NaN first (and the
allocator's next lse block too).  The core issue's criterion: relative L2
error of o <= 1e-2 (bf16) / 2e-3 (fp16) and max |error| <= 4 units of the
dtype's rounding on the largest output; lse within 5e-3, -inf exactly on rows
that see no key; no NaN anywhere.

Exit 77 (skipped) without torch or without a CUDA GPU.

  python3 python/tests/test_attention_gpu.py [--cases N] [--seed S]
"""
import argparse
import math
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_attention_gpu", cuda=True)
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
import flashgen  # noqa: E402

DEV = "cuda"
NONE, BR, TL = False, "bottom_right", "top_left"


def visible(sq, sk, causal):
    """[sq, sk] bool: key j visible from query i under the causal mode."""
    i = torch.arange(sq, device=DEV)[:, None]
    j = torch.arange(sk, device=DEV)[None, :]
    if causal == BR:
        return j <= i + (sk - sq)
    if causal == TL:
        return j <= i
    return torch.ones(sq, sk, dtype=torch.bool, device=DEV)


def reference(q, k, v, scale, allowed):
    """o [b, hq, sq, d] and lse [b, hq, sq] in float32 from bhsd inputs;
    allowed: bool, broadcastable to [b, hq, sq, sk]."""
    qf, kf, vf = q.float(), k.float(), v.float()
    g = q.shape[1] // k.shape[1]
    kf, vf = kf.repeat_interleave(g, dim=1), vf.repeat_interleave(g, dim=1)
    mask = allowed.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    with sdpa_kernel(SDPBackend.MATH):
        o = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask, scale=scale)
    empty = ~mask.any(-1)
    o = o.masked_fill(empty[..., None], 0.0)  # flashgen's convention for a row that sees no key
    s = (qf @ kf.transpose(-1, -2)) * scale
    lse = torch.logsumexp(s.masked_fill(~mask, -math.inf), dim=-1)
    return o, lse


def poison_lse_pool(shape):
    """Leaves a NaN-filled block of this size in the caching allocator, so
    the lse that flashgen allocates next starts as NaN, not as zeros."""
    x = torch.full(shape, math.nan, dtype=torch.float32, device=DEV)
    del x


def compare(name, o, lse, ref_o, ref_lse, dtype):
    """A list of failure strings (empty when the case passes)."""
    errs = []
    o64, r64 = o.double(), ref_o.double()
    nan = int(torch.isnan(o64).sum())
    if nan:
        errs.append(f"{nan} NaN in o (unwritten or wrong)")
    diff = (o64 - r64).nan_to_num(nan=math.inf)
    rel = float(diff.norm() / r64.norm().clamp_min(1e-30))
    max_abs = float(diff.abs().max())
    eps = 1 / 256 if dtype == torch.bfloat16 else 1 / 2048
    tol_abs = 4 * eps * max(float(r64.abs().max()), 1.0)
    tol_rel = 1e-2 if dtype == torch.bfloat16 else 2e-3
    if not rel <= tol_rel:
        errs.append(f"o rel L2 {rel:.3g} > {tol_rel}")
    if not max_abs <= tol_abs:
        errs.append(f"o max|err| {max_abs:.3g} > {tol_abs:.3g}")
    lerr = "-"
    if lse is not None:
        if torch.isnan(lse).any():
            errs.append(f"{int(torch.isnan(lse).sum())} NaN in lse")
        ninf_ref, ninf = torch.isneginf(ref_lse), torch.isneginf(lse)
        if not torch.equal(ninf_ref, ninf):
            errs.append(f"lse is -inf on {int(ninf.sum())} rows, the reference on {int(ninf_ref.sum())}")
        fin = ~ninf_ref & ~ninf
        lerr = float((lse[fin].double() - ref_lse[fin].double()).abs().max()) if fin.any() else 0.0
        if not lerr <= 5e-3:
            errs.append(f"lse max|err| {lerr:.3g} > 5e-3")
        lerr = f"{lerr:.2e}"
    print(f"{'FAIL' if errs else 'ok  '} {name:80s} rel_l2 {rel:.2e} max|err| {max_abs:.2e} lse {lerr}", flush=True)
    return [f"{name}: {e}" for e in errs]


def make_inputs(b, sq, sk, hq, hk, d, dtype, layout, packed, dv=None):
    """q, k, v in the given layout (v's last dim dv, default d); `packed`
    takes them as strided views of one [b, s, 3, h, d] tensor, as a fused
    QKV projection leaves them."""
    dv = d if dv is None else dv
    if packed and sq == sk and hq == hk and dv == d:
        qkv = torch.randn(b, sq, 3, hq, d, device=DEV, dtype=dtype)
        q, k, v = qkv.unbind(2)  # bshd views with row stride 3*h*d
        if layout == "bhsd":
            q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        return q, k, v
    shp = lambda s, h, x=d: (b, s, h, x) if layout == "bshd" else (b, h, s, x)
    return (torch.randn(*shp(sq, hq), device=DEV, dtype=dtype), torch.randn(*shp(sk, hk), device=DEV, dtype=dtype),
            torch.randn(*shp(sk, hk, dv), device=DEV, dtype=dtype))


def run_case(b, sq, sk, hq, hk, d, dtype, causal, layout="bshd", packed=False, scale=None, block_mask=None,
             allowed=None, stream=None, use_out=True, dv=None):
    dims = f"d={d:3d}" + (f" dv={dv:3d}" if dv is not None and dv != d else "")
    name = (f"{str(dtype)[6:]:8s} {dims} b={b} hq={hq} hkv={hk} sq={sq} sk={sk} causal={causal or 'none'} "
            f"{layout}{' packed' if packed else ''}{' sparse' if block_mask is not None else ''}")
    q, k, v = make_inputs(b, sq, sk, hq, hk, d, dtype, layout, packed, dv)
    o_shape = tuple(q.shape[:3]) + (v.shape[3],)  # o has v's last dim
    if use_out:
        out = torch.full(o_shape, math.nan, dtype=dtype, device=DEV)
    else:  # flashgen allocates o: leave a NaN block of its size in the allocator
        out = None
        torch.full(o_shape, math.nan, dtype=dtype, device=DEV)
    poison_lse_pool((b, hq, sq))
    torch.cuda.synchronize()
    try:
        with torch.cuda.stream(stream) if stream is not None else torch.cuda.stream(torch.cuda.current_stream()):
            o, lse = flashgen.attention(q, k, v, causal=causal, scale=scale, block_mask=block_mask, return_lse=True,
                                        layout=layout, out=out)
            if not use_out:
                out = o
        torch.cuda.synchronize()
    except Exception as e:  # reported as a failure of this case, the others still run
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        return [f"{name}: {type(e).__name__}: {e}"]
    if o is not out:
        return [f"{name}: the result is not the out= tensor"]
    if tuple(o.shape) != o_shape:
        return [f"{name}: o has shape {tuple(o.shape)}, not {o_shape}"]
    bhsd = (lambda x: x.transpose(1, 2)) if layout == "bshd" else (lambda x: x)
    if allowed is None:
        allowed = visible(sq, sk, causal)
    eff_scale = scale if scale is not None else 1 / math.sqrt(d)
    ref_o, ref_lse = reference(bhsd(q), bhsd(k), bhsd(v), eff_scale, allowed)
    return compare(name, bhsd(o), lse, ref_o, ref_lse, dtype)


def random_layout(b, h, sq, sk, bq, bk, density, rng, with_full):
    """A random BlockLayout (broadcast over batch/heads when b/h is 1) and
    the element mask flashgen must apply for it under each causal mode:
    full blocks unmasked, partial blocks causal-masked."""
    nq, nk = -(-sq // bq), -(-sk // bk)
    pick = torch.rand(b, h, nq, nk, generator=rng) < density
    full = pick & (torch.rand(b, h, nq, nk, generator=rng) < 0.5) if with_full else torch.zeros_like(pick)
    part = pick & ~full

    def lists(sel):
        num = sel.sum(-1).to(torch.int32)
        # listed in a random order: flashgen must not assume sorted indices
        keys = torch.rand(sel.shape, generator=rng) + (~sel).float() * 2
        idx = keys.argsort(-1).to(torch.int32)
        return num.to(DEV), idx.to(DEV)

    pn, pi = lists(part)
    fn, fi = lists(full)
    lay = flashgen.BlockLayout(pn, pi, fn if with_full else None, fi if with_full else None, block_size=(bq, bk))
    up = lambda m: m.to(DEV).repeat_interleave(bq, 2)[:, :, :sq].repeat_interleave(bk, 3)[:, :, :, :sk]
    return lay, up(full), up(part)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=24, help="random dense cases (24)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # a float32 reference, not TF32
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}  library {flashgen.library_path()}")
    fails = []
    n = 0

    # random dense cases; head dims 64/128 keep the number of compiled variants small
    for _ in range(args.cases):
        dtype = rng.choice([torch.bfloat16, torch.float16])
        d = rng.choice([64, 128])
        causal = rng.choice([NONE, BR, TL])
        hk = rng.choice([1, 2, 4])
        hq = hk * rng.choice([1, 2, 4])
        b = rng.choice([1, 2, 3])
        sq = rng.choice([1, 17, 128, 200, 333, 512, 777, 1000])
        sk = sq if rng.random() < 0.4 else rng.choice([1, 64, 129, 300, 640, 1111])
        layout = rng.choice(["bshd", "bhsd"])
        scale = rng.choice([None, 0.5 / math.sqrt(d)])
        fails += run_case(b, sq, sk, hq, hk, d, dtype, causal, layout, packed=rng.random() < 0.3, scale=scale)
        n += 1

    # repeated calls without out=: the binding's descriptor cache serves the
    # second and third call of a shape (fresh inputs each time); a change of
    # strides only (packed) or of scale must not reuse the first descriptor
    for rep in range(3):
        fails += run_case(2, 333, 517, 4, 2, 64, torch.bfloat16, BR, "bshd", use_out=False)
        fails += run_case(2, 333, 333, 4, 4, 64, torch.bfloat16, BR, "bshd", use_out=False)
        fails += run_case(2, 333, 333, 4, 4, 64, torch.bfloat16, BR, "bshd", packed=True, use_out=False)
        fails += run_case(1, 200, 200, 2, 2, 128, torch.float16, TL, "bhsd", scale=0.3 / math.sqrt(128), use_out=False)
        fails += run_case(1, 200, 200, 2, 2, 128, torch.float16, TL, "bhsd", use_out=False)
        n += 5

    # other head dims (mma.sync path for 40 and 96), bigger shapes, empty rows
    fixed = [(2, 1000, 777, 8, 2, 96, torch.bfloat16, TL), (1, 777, 1024, 4, 1, 256, torch.float16, NONE),
             (2, 300, 300, 4, 4, 40, torch.bfloat16, BR), (2, 1024, 1024, 8, 8, 128, torch.bfloat16, TL),
             (1, 600, 200, 2, 1, 64, torch.float16, BR),  # the first 400 query rows see no key
             (3, 256, 256, 6, 3, 128, torch.float16, BR)]
    for c in fixed:
        fails += run_case(*c)
        n += 1
    fails += run_case(2, 333, 333, 4, 2, 64, torch.bfloat16, BR, packed=True, layout="bhsd")
    fails += run_case(2, 500, 700, 4, 2, 128, torch.bfloat16, TL, stream=torch.cuda.Stream())  # a side stream
    n += 2

    # a value head dim of its own: v narrower (DeepSeek's 192/128, 128/64) and
    # wider (64/128, 40/72) than q and k; o follows v's last dim
    value_dims = [(2, 333, 517, 4, 2, 192, torch.bfloat16, BR, "bshd", 128),
                  (1, 300, 300, 4, 1, 128, torch.float16, NONE, "bhsd", 64),
                  (2, 200, 129, 2, 2, 64, torch.bfloat16, TL, "bhsd", 128),
                  (1, 777, 640, 2, 1, 40, torch.bfloat16, BR, "bshd", 72)]
    for b, sq, sk, hq, hk, d, dtype, causal, layout, dv in value_dims:
        fails += run_case(b, sq, sk, hq, hk, d, dtype, causal, layout, dv=dv)
        n += 1
    # head dims that are not multiples of 8 (FlashAttention's tests use 59 and
    # 111): flashgen.attention zero-pads them around the kernels
    odd_dims = [(2, 113, 203, 4, 2, 59, torch.bfloat16, BR, "bshd", None),
                (1, 239, 1, 2, 2, 111, torch.float16, NONE, "bhsd", None),
                (2, 128, 217, 2, 1, 4, torch.bfloat16, TL, "bshd", None),
                (1, 300, 300, 4, 4, 64, torch.float16, BR, "bhsd", 37),
                (1, 200, 129, 2, 2, 33, torch.bfloat16, NONE, "bshd", 72),
                (1, 257, 257, 2, 2, 253, torch.bfloat16, TL, "bshd", None)]
    for i, (b, sq, sk, hq, hk, d, dtype, causal, layout, dv) in enumerate(odd_dims):
        fails += run_case(b, sq, sk, hq, hk, d, dtype, causal, layout, dv=dv, use_out=i % 2 == 0)
        n += 1
    for rep in range(2):  # the descriptor cache keeps v's dim apart from q's
        fails += run_case(1, 200, 200, 2, 2, 128, torch.bfloat16, TL, use_out=False, dv=64)
        fails += run_case(1, 200, 200, 2, 2, 128, torch.bfloat16, TL, use_out=False)
        n += 2

    # block-sparse, raw tensors: broadcast and per-(batch, head) layouts, with and without full blocks
    g = torch.Generator().manual_seed(args.seed)
    sparse = [(2, 4, 2, 1000, 900, 64, torch.bfloat16, NONE, 128, 128, 1, 1, True),
              (2, 4, 2, 1000, 900, 64, torch.bfloat16, BR, 128, 128, 2, 4, True),
              (1, 4, 4, 777, 777, 64, torch.bfloat16, TL, 128, 128, 1, 4, False),
              (2, 2, 1, 640, 512, 128, torch.float16, NONE, 128, 64, 2, 1, True),
              (1, 2, 2, 700, 1100, 128, torch.float16, BR, 256, 128, 1, 1, True),
              (2, 4, 2, 1000, 900, 192, torch.bfloat16, BR, 128, 128, 1, 1, True, 128)]  # dv != d
    for b, hq, hk, sq, sk, d, dtype, causal, bq, bk, lb, lh, with_full, *dv in sparse:
        lay, full, part = random_layout(lb, lh, sq, sk, bq, bk, 0.4, g, with_full)
        allowed = full | (part & visible(sq, sk, causal))
        fails += run_case(b, sq, sk, hq, hk, d, dtype, causal, block_mask=lay, allowed=allowed, dv=dv[0] if dv else None)
        n += 1

    # FlexAttention BlockMasks: causal and a block-aligned window give the dense result
    try:
        from torch.nn.attention.flex_attention import create_block_mask
    except ImportError:
        print("note: no FlexAttention in this torch; BlockMask cases not run")
    else:
        causal_mod = lambda b_, h_, qi, kj: qi >= kj
        bm = create_block_mask(causal_mod, None, None, 640, 640, device=DEV)
        fails += run_case(2, 640, 640, 4, 2, 64, torch.bfloat16, TL, block_mask=bm)
        win = lambda b_, h_, qi, kj: (qi // 128 - kj // 128).abs() <= 1
        bm = create_block_mask(win, None, None, 1000, 1000, device=DEV)
        i = torch.arange(1000, device=DEV)
        band = (i[:, None] // 128 - i[None, :] // 128).abs() <= 1
        fails += run_case(1, 1000, 1000, 2, 2, 128, torch.float16, NONE, block_mask=bm, allowed=band)
        # a mask built for longer sequences is cut to the call's
        bm = create_block_mask(causal_mod, None, None, 1024, 1024, device=DEV)
        fails += run_case(1, 700, 700, 2, 2, 64, torch.bfloat16, TL, block_mask=bm)
        n += 3

    # flashgen.Pattern: the pattern's element mask runs in the kernel on partial blocks
    i = torch.arange(1000, device=DEV)
    win = flashgen.Pattern("sliding_window", window=200)
    fails += run_case(1, 1000, 1000, 2, 2, 128, torch.bfloat16, NONE, block_mask=win,
                      allowed=(i[:, None] - i[None, :]).abs() <= 200)
    fails += run_case(1, 1000, 1000, 2, 2, 128, torch.bfloat16, NONE, block_mask=win,  # again: the cached layout
                      allowed=(i[:, None] - i[None, :]).abs() <= 200)
    # a combination: full blocks are never masked, so causality comes from the pattern itself
    wc = flashgen.Pattern("intersection(sliding_window{window=200}, causal{})")
    fails += run_case(2, 1000, 1000, 4, 2, 64, torch.float16, NONE, block_mask=wc,
                      allowed=((i[:, None] - i[None, :]).abs() <= 200) & visible(1000, 1000, TL))
    doc = flashgen.Pattern("document", lengths=[300, 450, 250], block_q=64, block_k=64)
    seg = (i >= 300).int() + (i >= 750).int()
    fails += run_case(1, 1000, 1000, 2, 2, 64, torch.bfloat16, NONE, block_mask=doc,
                      allowed=seg[:, None] == seg[None, :])
    n += 4

    # errors on the GPU: a library error carries its message; no key -> o = 0, lse = -inf
    x = torch.randn(1, 64, 2, 72, device=DEV, dtype=torch.bfloat16)[..., 1:65]  # 2-byte offset: misaligned
    try:
        flashgen.attention(x, x, x)
        fails.append("a misaligned q was accepted")
    except flashgen.FlashgenError as e:
        ok = e.status_name == "FG_ERR_INVALID_ARGUMENT" and "q" in e.message
        print(f"{'ok  ' if ok else 'FAIL'} misaligned q -> {e}")
        if not ok:
            fails.append(f"misaligned q: unexpected error {e}")
    q = torch.randn(1, 5, 2, 64, device=DEV, dtype=torch.float16)
    kv = torch.randn(1, 0, 2, 64, device=DEV, dtype=torch.float16)
    o, lse = flashgen.attention(q, kv, kv, return_lse=True)
    if not (bool((o == 0).all()) and bool(torch.isneginf(lse).all())):
        fails.append("seqlen_k = 0: o is not 0 or lse not -inf")
    n += 2

    print(f"\n{time.time() - t0:.1f} s")
    for f in fails:
        print("FAILED:", f)
    bad = len({f.split(":")[0] for f in fails})  # failed cases (one may fail several checks)
    print(f"{n - bad} passed, {bad} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
