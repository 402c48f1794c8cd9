"""flashgen.attention's FP8 (e4m3) arguments (include/flashgen.h, docs/FP8-WIRING.md):
torch.float8_e4m3fn q, k and v with device fp32 descales and a 16-bit output
dtype, checked here and set on the descriptor."""
import torch

from . import _lib

E4M3 = getattr(torch, "float8_e4m3fn", None)  # torch < 2.1 has no FP8 dtype
OUT_DTYPES = {torch.bfloat16: _lib.FG_BF16, torch.float16: _lib.FG_FP16}
NAMES = ("q_descale", "k_descale", "v_descale")


def options(q, descales, out_dtype):
    """The FP8 options of a call (q's dtype decides), or None for a 16-bit
    call that sets none of them.  descales: (q_descale, k_descale,
    v_descale)."""
    fp8 = E4M3 is not None and isinstance(q, torch.Tensor) and q.dtype == E4M3
    if not fp8:
        for name, t in zip(NAMES, descales):
            if t is not None:
                raise TypeError(f"{name} is for torch.float8_e4m3fn inputs only; q is "
                                f"{getattr(q, 'dtype', type(q).__name__)}")
        if out_dtype is not None and out_dtype != getattr(q, "dtype", None):
            raise TypeError(f"out_dtype={out_dtype} is for torch.float8_e4m3fn inputs only; 16-bit inputs give o "
                            "in their own dtype")
        return None
    return Fp8(descales, out_dtype)


class Fp8:
    """Checked FP8 options: the output dtype, the descales and whether they
    are per (batch, kv head)."""

    def __init__(self, descales, out_dtype):
        if out_dtype is None:
            out_dtype = torch.bfloat16
        if out_dtype not in OUT_DTYPES:
            raise TypeError(f"out_dtype must be torch.bfloat16 or torch.float16, not {out_dtype}")
        self.out_dtype, self.descales = out_dtype, descales
        for name, t in zip(NAMES, descales):
            if t is not None and not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor (float32), not {type(t).__name__}")
        per = {t.dim() == 2 for t in descales if t is not None}
        if len(per) > 1:
            raise ValueError("q_descale, k_descale and v_descale must all be per tensor (shape [] or [1]) or all "
                             "per (batch, kv head) ([batch, heads_kv]); got shapes " +
                             ", ".join(str(None if t is None else list(t.shape)) for t in descales))
        self.per_head = per == {True}
        self.key = (out_dtype, self.per_head, tuple(t is None for t in descales))

    def check_tensors(self, batch, heads_kv, device):
        """Each descale float32, contiguous, on device, of its shape."""
        shapes = [(batch, heads_kv)] if self.per_head else [(), (1,)]
        for name, t in zip(NAMES, self.descales):
            if t is None:
                continue
            if t.dtype != torch.float32:
                raise TypeError(f"{name} must be float32, not {t.dtype}")
            if t.device != device:
                raise ValueError(f"{name} is on {t.device}; q is on {device} (descales stay on the device: "
                                 "nothing synchronises)")
            if tuple(t.shape) not in shapes:
                raise ValueError(f"{name} has shape {list(t.shape)}; expected " +
                                 " or ".join(str(list(s)) for s in shapes) + " (per tensor: [] or [1]; per "
                                 "(batch, kv head): [batch, heads_kv])")
            if not t.is_contiguous():
                raise ValueError(f"{name} must be contiguous")

    def apply(self, desc):
        """Sets desc's FP8 fields (the descales must outlive the call)."""
        desc.out_dtype = OUT_DTYPES[self.out_dtype]
        desc.descale_per_head = 1 if self.per_head else 0
        desc.q_descale, desc.k_descale, desc.v_descale = (None if t is None else t.data_ptr() for t in self.descales)


def check_shapes(d, dv, strides):
    """What the FP8 kernel needs of head dims and strides (runtime/fp8.c);
    strides: {name: (batch, head, row) element strides}."""
    if d % 32 or dv % 16:
        raise ValueError(f"FP8 (float8_e4m3fn) inputs need a head dim that is a multiple of 32 and a value head dim "
                         f"(v's last dim) that is a multiple of 16; got {d} and {dv}")
    for name, st in strides.items():
        if any(s % 16 for s in st):
            raise ValueError(f"{name}'s batch/head/row strides {st} must be multiples of 16 elements for FP8 (16-byte "
                             "aligned rows)")


def refuse(what):
    raise NotImplementedError(f"flashgen.attention: FP8 (float8_e4m3fn) inputs {what}")
