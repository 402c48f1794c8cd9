"""fgpattern: the few flashgen C calls that bench/sparse_flex.py needs, over
ctypes (no compile step): patterns, their block layouts as host arrays, the
Python form of their element mask, and fg_attention_forward on torch tensors.

This is a bench helper, not the flashgen Python package: it mirrors only
fg_block_layout_desc and fg_attention_desc from include/flashgen.h.
"""
import ctypes
import os

c_int, c_float, c_int64, c_void_p, c_char_p = ctypes.c_int, ctypes.c_float, ctypes.c_int64, ctypes.c_void_p, ctypes.c_char_p
P32 = ctypes.POINTER(ctypes.c_int32)

FG_BF16, FG_FP16 = 1, 0
FG_MASK_TEXT, FG_MASK_CUDA, FG_MASK_PYTHON = 0, 1, 2
PATHS = {"auto": 0, "mma": 1, "wgmma": 2}


class BlockLayoutDesc(ctypes.Structure):
    _fields_ = [("batch", c_int), ("heads", c_int), ("num_q_blocks", c_int), ("num_kv_blocks", c_int),
                ("block_q", c_int), ("block_k", c_int),
                ("kv_num_blocks", P32), ("kv_indices", P32), ("full_kv_num_blocks", P32), ("full_kv_indices", P32)]


class AttentionDesc(ctypes.Structure):
    _fields_ = [("dtype", c_int), ("head_dim", c_int), ("batch", c_int), ("heads_q", c_int), ("heads_kv", c_int),
                ("seqlen_q", c_int), ("seqlen_k", c_int),
                ("q_strides", c_int64 * 3), ("k_strides", c_int64 * 3), ("v_strides", c_int64 * 3), ("o_strides", c_int64 * 3),
                ("softmax_scale", c_float), ("causal", c_int), ("layout", c_void_p),
                ("block_m", c_int), ("block_n", c_int), ("warps", c_int), ("stages", c_int), ("path", c_int)]


def _load(path=None):
    here = os.path.dirname(os.path.abspath(__file__))
    path = path or os.environ.get("FLASHGEN_LIB") or os.path.join(here, "..", "build", "libflashgen.so")
    lib = ctypes.CDLL(path)
    sig = {
        "fg_context_create": (c_int, [ctypes.POINTER(c_void_p)]),
        "fg_context_destroy": (None, [c_void_p]),
        "fg_errmsg": (c_char_p, [c_void_p]),
        "fg_status_name": (c_char_p, [c_int]),
        "fg_pattern_create": (c_int, [c_void_p, c_char_p, c_char_p, ctypes.POINTER(c_void_p)]),
        "fg_pattern_destroy": (None, [c_void_p]),
        "fg_pattern_name": (c_char_p, [c_void_p]),
        "fg_pattern_mask": (c_char_p, [c_void_p, c_int]),
        "fg_pattern_mask_consts": (c_int, [c_void_p, ctypes.POINTER(c_char_p), ctypes.POINTER(c_int64), c_int]),
        "fg_pattern_eval": (c_int, [c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_int, ctypes.POINTER(BlockLayoutDesc)]),
        "fg_pattern_layout": (c_int, [c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_int, c_int, ctypes.POINTER(c_void_p)]),
        "fg_block_layout_destroy": (None, [c_void_p, c_void_p]),
        "fg_attention_desc_init": (None, [ctypes.POINTER(AttentionDesc), c_int, c_int, c_int, c_int, c_int, c_int, c_int]),
        "fg_attention_forward": (c_int, [c_void_p, ctypes.POINTER(AttentionDesc), c_void_p, c_void_p, c_void_p, c_void_p,
                                         c_void_p, c_void_p]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


_MASK_CACHE = {}


class FlashgenError(RuntimeError):
    pass


class Flashgen:
    def __init__(self, lib_path=None):
        self.lib = _load(lib_path)
        self.ctx = c_void_p()
        st = self.lib.fg_context_create(ctypes.byref(self.ctx))
        if st:
            raise FlashgenError("fg_context_create failed")

    def check(self, st, what):
        if st:
            raise FlashgenError(f"{what}: {self.lib.fg_status_name(st).decode()}: {self.lib.fg_errmsg(self.ctx).decode()}")

    def pattern(self, name, params=""):
        return Pattern(self, name, params)

    def forward(self, q, k, v, o, layout=None, causal=0, path="auto"):
        """q, k, v, o: torch CUDA tensors [batch, seqlen, heads, head_dim], bf16 or fp16, contiguous."""
        import torch
        b, sq, hq, d = q.shape
        sk, hk = k.shape[1], k.shape[2]
        desc = AttentionDesc()
        self.lib.fg_attention_desc_init(ctypes.byref(desc), FG_BF16 if q.dtype == torch.bfloat16 else FG_FP16, d, b, hq, hk, sq, sk)
        desc.causal = causal
        desc.layout = layout
        desc.path = PATHS[path]
        stream = torch.cuda.current_stream().cuda_stream
        self.check(self.lib.fg_attention_forward(self.ctx, ctypes.byref(desc), q.data_ptr(), k.data_ptr(), v.data_ptr(),
                                                 o.data_ptr(), None, stream), "fg_attention_forward")

    def close(self):
        if self.ctx:
            self.lib.fg_context_destroy(self.ctx)
            self.ctx = None


class Pattern:
    def __init__(self, fg, name, params=""):
        self.fg, self.h = fg, c_void_p()
        fg.check(fg.lib.fg_pattern_create(fg.ctx, name.encode(), (params or "").encode(), ctypes.byref(self.h)),
                 f"pattern {name}")
        self.name = fg.lib.fg_pattern_name(self.h).decode()

    def mask(self, syntax=FG_MASK_TEXT):
        m = self.fg.lib.fg_pattern_mask(self.h, syntax)
        return m.decode() if m else None

    def consts(self):
        names, vals = (c_char_p * 16)(), (c_int64 * 16)()
        n = self.fg.lib.fg_pattern_mask_consts(self.h, names, vals, 16)
        return [(names[i].decode(), vals[i]) for i in range(n)]

    def eval(self, batch, heads, seqlen_q, seqlen_k, block_q=128, block_k=128):
        """Host block lists as torch int32 CPU tensors shaped like FlexAttention's BlockMask fields."""
        import torch
        d = BlockLayoutDesc()
        self.fg.check(self.fg.lib.fg_pattern_eval(self.fg.ctx, self.h, batch, heads, seqlen_q, seqlen_k, block_q, block_k,
                                                  ctypes.byref(d)), f"evaluating {self.name}")
        B, H, nq, nk = d.batch, d.heads, d.num_q_blocks, d.num_kv_blocks

        def grab(ptr, shape):
            n = 1
            for s in shape:
                n *= s
            arr = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_int32 * n)).contents
            return torch.frombuffer(bytearray(arr), dtype=torch.int32).reshape(shape).clone()

        return {"kv_num_blocks": grab(d.kv_num_blocks, (B, H, nq)), "kv_indices": grab(d.kv_indices, (B, H, nq, nk)),
                "full_kv_num_blocks": grab(d.full_kv_num_blocks, (B, H, nq)),
                "full_kv_indices": grab(d.full_kv_indices, (B, H, nq, nk)), "block": (d.block_q, d.block_k)}

    def layout(self, batch, heads, seqlen_q, seqlen_k, block_q=128, block_k=128):
        L = c_void_p()
        self.fg.check(self.fg.lib.fg_pattern_layout(self.fg.ctx, self.h, batch, heads, seqlen_q, seqlen_k, block_q, block_k,
                                                    ctypes.byref(L)), f"layout of {self.name}")
        return L

    def destroy_layout(self, L):
        self.fg.lib.fg_block_layout_destroy(self.fg.ctx, L)

    def mask_mod(self, seqlen_q, seqlen_k, device="cuda"):
        """FlexAttention mask_mod equal to the pattern's element predicate, or None
        for a block-level pattern.  The expression comes from flashgen's
        validated renderer (FG_MASK_PYTHON: helper calls only).  Its constants are
        0-d tensors, and one function is kept per expression text and sizes,
        with its constants refilled in place: patterns that differ only in
        constants (window sizes) reuse FlexAttention's compiled kernel.  So a
        mask_mod is valid until the next call for a pattern with the same text."""
        text = self.mask(FG_MASK_PYTHON)
        if text is None:
            return None
        import torch
        values = [v for _, v in self.consts()]
        key = (text, seqlen_q, seqlen_k, str(device))
        hit = _MASK_CACHE.get(key)
        if hit:
            fn, consts = hit
            for t, v in zip(consts, values):
                t.fill_(v)
            return fn
        consts = [torch.tensor(v, dtype=torch.int64, device=device) for v in values]
        env = dict(mask_helpers(torch))
        # the text is flashgen's rendering of a validated expression: helper
        # calls, the four index names, integers and operators only
        env.update({"_c": consts, "seqlen_q": seqlen_q, "seqlen_k": seqlen_k})
        src = f"def mask_mod(b, h, q_idx, kv_idx):\n    return {text} != 0\n"
        exec(compile(src, f"<flashgen mask of {self.name}>", "exec"), env)
        _MASK_CACHE[key] = (env["mask_mod"], consts)
        return env["mask_mod"]

    def __del__(self):
        if getattr(self, "h", None):
            self.fg.lib.fg_pattern_destroy(self.h)
            self.h = None


def mask_helpers(torch):
    """The expression language on torch tensors (and Python ints): 64-bit
    integers, C truncating / and %, x/0 = x%0 = 0, comparisons and logic give 0/1."""
    T = torch.Tensor

    def i64(x):
        return x.to(torch.int64) if isinstance(x, T) else int(x)

    def nz(x):
        return x != 0

    def div(x, y):
        if not isinstance(x, T) and not isinstance(y, T):
            if y == 0:
                return 0
            q = abs(x) // abs(y)
            return q if (x >= 0) == (y > 0) else -q
        if not isinstance(y, T):
            return torch.div(x, y, rounding_mode="trunc") if y != 0 else 0 * x
        q = torch.div(x if isinstance(x, T) else torch.full_like(y, x), torch.where(y == 0, 1, y), rounding_mode="trunc")
        return torch.where(y == 0, 0, q)

    def mod(x, y):
        if not isinstance(x, T) and not isinstance(y, T):
            return 0 if y == 0 else x - div(x, y) * y
        r = x - div(x, y) * y
        if isinstance(y, T):
            return torch.where(y == 0, 0, r)
        return r if y != 0 else 0 * r

    def sel(c, x, y):
        if isinstance(c, T) or isinstance(x, T) or isinstance(y, T):
            return torch.where(nz(c), x, y)
        return x if c else y

    def mn(x, y):
        return torch.where(x < y, x, y) if isinstance(x, T) or isinstance(y, T) else min(x, y)

    def mx(x, y):
        return torch.where(x > y, x, y) if isinstance(x, T) or isinstance(y, T) else max(x, y)

    return {
        "_lt": lambda x, y: i64(x < y), "_le": lambda x, y: i64(x <= y), "_gt": lambda x, y: i64(x > y),
        "_ge": lambda x, y: i64(x >= y), "_eq": lambda x, y: i64(x == y), "_ne": lambda x, y: i64(x != y),
        "_and": lambda x, y: i64(nz(x) & nz(y)), "_or": lambda x, y: i64(nz(x) | nz(y)), "_not": lambda x: i64(x == 0),
        "_div": div, "_mod": mod, "_min": mn, "_max": mx, "_abs": abs, "_sel": sel,
    }
