"""FP8 quantisation for flashgen.attention (issue 14): flashgen.quantize_fp8
(e4m3 values and their fp32 descales, per tensor or per (batch, head),
computed on the device without a host sync) and flashgen.hadamard (the
random-sign Hadamard transform of incoherent processing, FlashAttention-3's).

Both are torch code, not fused kernels: the transform is a fast
Walsh-Hadamard butterfly (log2(n) passes of adds and subtracts over views of
the last dim, O(d log d) per row), then one pass for the scale and one for
the cast (docs/FP8-WIRING.md)."""
import math

import torch

from . import _fp8

E4M3_MAX = 448.0  # the largest finite float8_e4m3fn
TINY = torch.finfo(torch.float32).tiny  # the descale of an all-zero group
_signs_cache = {}  # (seed, d, device) -> float32 [d] of +-1


def _block(d):
    """The Hadamard block size for a last dim d: d itself when a power of
    two, else the largest power of two dividing d (block diagonal)."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 8 or d % 8:
        raise ValueError(f"hadamard: the last dim must be a multiple of 8 (a head dim flashgen takes), not {d}")
    return d & -d


def _signs(seed, d, device):
    """+-1 per column, deterministic from seed (drawn on the CPU, cached per device)."""
    key = (seed, d, device)
    s = _signs_cache.get(key)
    if s is None:
        g = torch.Generator().manual_seed(seed)
        s = (torch.randint(0, 2, (d,), generator=g) * 2 - 1).to(torch.float32).to(device)
        if len(_signs_cache) >= 64:
            _signs_cache.clear()
        _signs_cache[key] = s
    return s


def _fwht(x, n):
    """x (float32, last dim a multiple of n) times the n x n Sylvester
    Hadamard matrix (entries +-1, symmetric) in each block of n columns."""
    shape = x.shape
    h = 1
    while h < n:
        y = x.reshape(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0], y[:, :, 1]
        x = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return x.reshape(shape)


def _transform(x, seed, inverse):
    """float32 result of hadamard() (x any floating dtype)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dtype == _fp8.E4M3:
        raise TypeError(f"hadamard: x must be a float16, bfloat16 or float32 tensor, not "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    d = x.shape[-1] if x.dim() else 0
    n = _block(d)
    s = _signs(seed, d, x.device)
    x = x.float()
    if inverse:
        return _fwht(x, n) * (s / math.sqrt(n))
    return _fwht(x * s, n) * (1 / math.sqrt(n))


def hadamard(x, seed=0, *, inverse=False):
    """x's last dim times a random-sign Hadamard matrix M = H diag(s) / sqrt(n):
    each row r becomes M r (x @ M^T), in x's dtype (computed in float32).

    H is the Sylvester Hadamard matrix (+-1 entries) of size n = d when the
    last dim d is a power of two, else block diagonal with blocks of the
    largest power of two n dividing d (192: three 64 x 64 blocks); d must be a
    multiple of 8.  s: +-1 per column, drawn from seed (the same seed gives
    the same M on every device).  M is orthogonal, so applying it to q and k
    with the same seed leaves q k^T, and so attention's output, unchanged
    while spreading outliers over the head dim before FP8 quantisation
    (incoherent processing).  Do not apply it to v (o would come out
    transformed: hadamard(o, seed, inverse=True) undoes it).
    inverse=True applies M^T = M^-1.  Torch code, O(d log d) per row, not
    fused with quantisation."""
    return _transform(x, seed, inverse).to(x.dtype)


def quantize_fp8(x, per_head=False, hadamard=False, seed=0, *, heads_kv=None, layout="bshd"):
    """(x8, descale): x8 torch.float8_e4m3fn with x ~= x8 * descale, for
    flashgen.attention's q/k/v and q_descale/k_descale/v_descale.

    descale = amax / 448 (float32, on x's device, computed there: no host
    sync): per tensor, shape []; with per_head=True per (batch, head) of a
    4-D x ([batch, seqlen, heads, d] for layout='bshd', [batch, heads,
    seqlen, d] for 'bhsd'), shape [batch, heads].  attention takes per-head
    descales as [batch, heads_kv]: for q with GQA pass heads_kv (the kv head
    count), and each group of heads_q / heads_kv consecutive q heads (those
    sharing a kv head) gets one scale, shape [batch, heads_kv].
    hadamard=True first applies flashgen.hadamard(x, seed) (for q and k only,
    with the same seed: see hadamard).  A group whose amax is 0 gets the
    smallest normal float32 as its descale (x8 = 0).  x8 has x's shape; NaN or
    inf in x make NaN in x8 and descale."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dtype == _fp8.E4M3:
        raise TypeError(f"quantize_fp8: x must be a float16, bfloat16 or float32 tensor, not "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if _fp8.E4M3 is None:
        raise TypeError(f"quantize_fp8: torch {torch.__version__} has no float8_e4m3fn (torch >= 2.1)")
    xf = _transform(x, seed, False) if hadamard else x.float()
    if per_head:
        if x.dim() != 4:
            raise ValueError(f"quantize_fp8(per_head=True): x must be 4-D, got shape {tuple(x.shape)}")
        if layout not in ("bshd", "bhsd"):
            raise ValueError(f"layout must be 'bshd' or 'bhsd', not {layout!r}")
        hd = 2 if layout == "bshd" else 1
        heads = x.shape[hd]
        groups = heads if heads_kv is None else heads_kv
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or heads % groups:
            raise ValueError(f"heads_kv must be an int that divides x's {heads} heads, not {heads_kv!r}")
        # [b, s, groups, heads/groups, d] or [b, groups, heads/groups, s, d]: amax over all but b and the group
        g = xf.reshape(x.shape[:hd] + (groups, heads // groups) + x.shape[hd + 1:])
        dims = tuple(i for i in range(5) if i not in (0, hd))
        amax = g.abs().amax(dim=dims) if g.numel() else g.abs().sum(dim=dims)  # (0 for an empty x)
        bshape = [1] * 5
        bshape[0], bshape[hd] = x.shape[0], groups
        scale = (amax / E4M3_MAX).clamp_min(TINY)
        x8 = (g / scale.view(bshape)).clamp(-E4M3_MAX, E4M3_MAX).to(_fp8.E4M3).reshape(x.shape)
    else:
        if heads_kv is not None:
            raise ValueError("heads_kv is for per_head=True")
        scale = ((xf.abs().amax() if xf.numel() else xf.abs().sum()) / E4M3_MAX).clamp_min(TINY)
        x8 = (xf / scale).clamp(-E4M3_MAX, E4M3_MAX).to(_fp8.E4M3)
    return x8, scale
