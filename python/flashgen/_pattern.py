"""flashgen.Pattern: the library's block-sparse patterns (templates/patterns.lua,
docs/PATTERNS.md) from Python.

    pat = flashgen.Pattern("sliding_window", window=512)
    pat.eval(8192, 8192)                     # BlockLayout of host tensors (no GPU needed)
    pat.mask_mod(8192, 8192)                 # its element mask as a FlexAttention mask_mod
    o = flashgen.attention(q, k, v, block_mask=pat)   # the pattern's element mask applies too

A pattern is evaluated for each call's sizes and kept as a device layout per
(device, batch, heads, seqlen_q, seqlen_k); the pattern's element mask (its
mask_mod) runs in the kernel on partial blocks.
"""
import collections
import ctypes as C
import itertools
import threading
import weakref

import torch

from . import _device, _lib, _mask
from ._blockmask import BlockLayout

_host = {"ctx": None}
_host_lock = threading.Lock()


def _host_ctx():
    """A context for host-only work (pattern evaluation); never destroyed."""
    with _host_lock:
        if _host["ctx"] is None:
            h = C.c_void_p()
            st = _lib.load().fg_context_create(C.byref(h))
            if st != _lib.FG_OK:
                raise _lib.FlashgenError("fg_context_create", st, _lib.status_name(st), "")
            _host["ctx"] = h.value
        return _host["ctx"]


def _params_text(params, kw):
    items = []
    if params:
        if not isinstance(params, str):
            raise TypeError(f"params must be a string like 'window=256; lengths=100,200', not {type(params).__name__}")
        items.append(params)
    for k, v in kw.items():
        if isinstance(v, (list, tuple)):
            v = ",".join(str(int(x)) for x in v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"pattern parameter {k} must be a number or a list of integers, not {v!r}")
        items.append(f"{k}={v}")
    return "; ".join(items)


_MAX_LAYOUTS = 16
_by_number = weakref.WeakValueDictionary()  # Pattern._number -> Pattern (flashgen._ops names patterns by number)
_numbers = itertools.count(1)


def by_number(number):
    """The live Pattern numbered `number`; RuntimeError when it was freed."""
    p = _by_number.get(number)
    if p is None:
        raise RuntimeError(f"flashgen.Pattern #{number} was freed before a flashgen operator that uses it ran (under "
                           "torch.compile the compiled backward holds only the pattern's number): keep the Pattern "
                           "alive, e.g. as an attribute of the module, until the backward pass has run")
    return p


def _free_layout(index, handle):
    torch.cuda.synchronize(index)  # a queued kernel may still read it
    with _device.current(index):
        _lib.load().fg_block_layout_destroy(_device.context(index), handle)


class Pattern:
    """A block-sparse pattern: a built-in name ("sliding_window", "bigbird",
    "document", ...), a Lua expression over them ("union(causal{},
    global{tokens=64})") or a path to a .lua file; parameters as keywords or
    a "name=value; ..." string.  block_q (multiple of 64) and block_k
    (multiple of 16) are the layout's block sizes."""

    def __init__(self, pattern, params=None, *, block_q=128, block_k=128, **kw):
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("pattern must be a non-empty string (a built-in name, a Lua expression or a .lua path)")
        if block_q < 64 or block_q % 64 or block_k < 16 or block_k % 16:
            raise ValueError(f"block_q must be a multiple of 64 and block_k of 16 (got {block_q}, {block_k})")
        self.block_q, self.block_k = int(block_q), int(block_k)
        self._text = (pattern, _params_text(params, kw))
        self._lock = threading.RLock()
        self._pats = {}     # context handle -> fg_pattern*
        self._layouts = collections.OrderedDict()  # (device, b, h, sq, sk) -> fg_block_layout*, LRU
        with _host_lock:
            self._number = next(_numbers)  # its name in flashgen's PyTorch operators' arguments
            _by_number[self._number] = self
        self._handle(_host_ctx())  # errors (unknown name, bad parameter, Lua error) surface here

    def _handle(self, ctx):
        with self._lock:
            h = self._pats.get(ctx)
            if h is None:
                out = C.c_void_p()
                st = _lib.load().fg_pattern_create(ctx, self._text[0].encode(), self._text[1].encode(), C.byref(out))
                _lib.check(ctx, "fg_pattern_create", st)
                h = self._pats[ctx] = out.value
            return h

    @property
    def name(self):
        return _lib.load().fg_pattern_name(self._handle(_host_ctx())).decode()

    @property
    def mask(self):
        """The element predicate of partial blocks (canonical text), or None."""
        m = _lib.load().fg_pattern_mask(self._handle(_host_ctx()), _lib.FG_MASK_TEXT)
        return m.decode() if m else None

    def mask_consts(self):
        """The mask's named constants as [(name, value)], in the order its
        CUDA and Python forms index them; [] for a block-level pattern."""
        names, values = (C.c_char_p * 64)(), (C.c_int64 * 64)()
        n = _lib.load().fg_pattern_mask_consts(self._handle(_host_ctx()), names, values, 64)
        return [(names[i].decode(), values[i]) for i in range(min(n, 64))]

    def mask_mod(self, seqlen_q, seqlen_k, device="cuda"):
        """The pattern's element mask as a FlexAttention mask_mod(b, h, q_idx,
        kv_idx), or None for a block-level pattern (every block full or
        empty).  Made from the library's Python rendering of the validated
        expression (flashgen._mask); use it with the block lists of
        eval(seqlen_q, seqlen_k) to give FlexAttention this pattern.  One
        function is kept per expression and sizes, its constants refilled in
        place, so FlexAttention compiles once for patterns that differ only
        in constants: a mask_mod is valid until the next mask_mod() of a
        pattern with the same expression and sizes."""
        m = _lib.load().fg_pattern_mask(self._handle(_host_ctx()), _lib.FG_MASK_PYTHON)
        if not m:
            return None
        values = [v for _, v in self.mask_consts()]
        return _mask.mask_mod(torch, m.decode(), values, seqlen_q, seqlen_k, device, self.name)

    def eval(self, seqlen_q, seqlen_k, batch=1, heads=1):
        """The layout for these sizes as a flashgen.BlockLayout of CPU int32
        tensors (FlexAttention's BlockMask terms); no GPU needed."""
        ctx = _host_ctx()
        d = _lib.fg_block_layout_desc()
        with self._lock:
            st = _lib.load().fg_pattern_eval(ctx, self._handle(ctx), batch, heads, seqlen_q, seqlen_k, self.block_q,
                                             self.block_k, C.byref(d))
            _lib.check(ctx, "fg_pattern_eval", st)
            rows = d.batch * d.heads * d.num_q_blocks
            grab = lambda p, n: torch.tensor(p[:n], dtype=torch.int32) if p else None
            shape3 = (d.batch, d.heads, d.num_q_blocks)
            num = grab(d.kv_num_blocks, rows).reshape(shape3)
            idx = grab(d.kv_indices, rows * d.num_kv_blocks).reshape(*shape3, d.num_kv_blocks)
            fnum = grab(d.full_kv_num_blocks, rows)
            fidx = grab(d.full_kv_indices, rows * d.num_kv_blocks)
        return BlockLayout(num, idx, fnum.reshape(shape3) if fnum is not None else None,
                           fidx.reshape(*shape3, d.num_kv_blocks) if fidx is not None else None,
                           block_size=(self.block_q, self.block_k))

    def _device_layout(self, index, batch, heads, seqlen_q, seqlen_k):
        """fg_block_layout* for a call on device `index` (its primary context
        current); the last _MAX_LAYOUTS sizes are kept (variable lengths
        must not grow device memory without bound)."""
        key = (index, batch, heads, seqlen_q, seqlen_k)
        with self._lock:
            h = self._layouts.get(key)
            if h is not None:
                self._layouts.move_to_end(key)
            else:
                while len(self._layouts) >= _MAX_LAYOUTS:
                    (old_index, *_), old = self._layouts.popitem(last=False)
                    _free_layout(old_index, old)
                ctx = _device.context(index)
                out = C.c_void_p()
                st = _lib.load().fg_pattern_layout(ctx, self._handle(ctx), batch, heads, seqlen_q, seqlen_k,
                                                   self.block_q, self.block_k, C.byref(out))
                _lib.check(ctx, "fg_pattern_layout", st)
                h = self._layouts[key] = out.value
            return h

    def close(self):
        """Frees the device layouts and the library's pattern objects."""
        with self._lock:
            lib = _lib.load()
            while self._layouts:
                (index, *_), h = self._layouts.popitem(last=False)
                _free_layout(index, h)
            for h in self._pats.values():
                lib.fg_pattern_destroy(h)
            self._pats.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library or torch may be gone
            pass

    def __repr__(self):
        return f"flashgen.Pattern({self._text[0]!r}, {self._text[1]!r}, block_q={self.block_q}, block_k={self.block_k})"
