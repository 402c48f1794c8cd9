"""Block-sparse layouts from a FlexAttention BlockMask or its raw tensors.

flashgen's layout (fg_block_layout_desc) has FlexAttention's four arrays but
a fixed width: num_kv_blocks = ceil(seqlen_k / block_k) columns, and
num_q_blocks = ceil(seqlen_q / block_q) rows.  A BlockMask built for other
lengths is cut or padded here: query-block rows past the call's are
dropped, key blocks at or past the call's last key block are dropped (they
hold no keys of this call), and the index rows are padded to the width.

Difference from FlexAttention: a BlockMask's mask_mod (a Python function)
is not used; element masks come from flashgen.Pattern.  Full blocks are
computed unmasked, as in Flex; partial blocks get only the causal mask of
the call (the `causal` argument), not the mask_mod the BlockMask was
built from.  A BlockMask from a block-aligned mask_mod (every block is full
or empty) gives Flex's result exactly; so does one built from a causal
mask_mod when the call passes the matching causal mode.

Layouts are uploaded once and cached per device, keyed by the tensors'
addresses, versions (in-place writes bump them) and shapes; the cache keeps
the tensors alive so an address cannot be reused by another tensor while
its entry exists.  Building a layout copies the mask to the host, which
synchronises with the GPU: build the BlockMask once and reuse it.
"""
import collections
import ctypes as C
import threading

import torch

from . import _device, _lib

_CACHE_SIZE = 16
_cache = collections.OrderedDict()  # key -> (fg_block_layout*, tensors kept alive, device index)
lock = threading.RLock()  # held from the cache look-up to the launch


class BlockLayout:
    """The raw tensors of a block-sparse layout, in FlexAttention's terms:
    kv_num_blocks [B, H, Q_blocks] and kv_indices [B, H, Q_blocks, n] list
    the partial key blocks of each query block; full_kv_num_blocks and
    full_kv_indices (optional) the full ones.  int32 (or any integer type),
    any device.  B and H may be 1 (broadcast).  block_size: (block_q,
    block_k), block_q a multiple of 64, block_k a multiple of 16.

    Full blocks are computed without an element mask; partial blocks get
    only the causal mask of the attention call (for an element mask use
    flashgen.Pattern).
    So a FlexAttention BlockMask built from a mask_mod that is not
    block-aligned gives Flex's result only where its partial blocks are
    exactly the call's causal mask."""

    def __init__(self, kv_num_blocks, kv_indices, full_kv_num_blocks=None, full_kv_indices=None,
                 block_size=(128, 128)):
        self.kv_num_blocks, self.kv_indices = kv_num_blocks, kv_indices
        self.full_kv_num_blocks, self.full_kv_indices = full_kv_num_blocks, full_kv_indices
        self.BLOCK_SIZE = (block_size, block_size) if isinstance(block_size, int) else tuple(block_size)


def check(mask):
    """Raises TypeError/ValueError when `mask` is not a usable BlockMask or
    BlockLayout; returns (kv_num, kv_idx, full_num, full_idx, block_q,
    block_k).  Duck-typed: anything with those attributes will do."""
    try:
        num, idx = mask.kv_num_blocks, mask.kv_indices
        fnum, fidx = getattr(mask, "full_kv_num_blocks", None), getattr(mask, "full_kv_indices", None)
        bs = mask.BLOCK_SIZE
    except AttributeError:
        raise TypeError("block_mask must be a FlexAttention BlockMask or a flashgen.BlockLayout "
                        f"(kv_num_blocks, kv_indices, full_kv_*, BLOCK_SIZE), not {type(mask).__name__}") from None
    bq, bk = (bs, bs) if isinstance(bs, int) else (int(bs[0]), int(bs[1]))
    for name, t in (("kv_num_blocks", num), ("kv_indices", idx), ("full_kv_num_blocks", fnum),
                    ("full_kv_indices", fidx)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.is_floating_point() or t.is_complex()):
            raise TypeError(f"block_mask.{name} must be an integer tensor")
    if (fnum is None) != (fidx is None):
        raise ValueError("block_mask: full_kv_num_blocks and full_kv_indices must both be given or both be None")
    if num.dim() != 3 or idx.dim() != 4 or idx.shape[:3] != num.shape:
        raise ValueError(f"block_mask: kv_num_blocks must be [B, H, Q_blocks] and kv_indices [B, H, Q_blocks, n]; "
                         f"got {tuple(num.shape)} and {tuple(idx.shape)}")
    if fnum is not None and (fnum.shape != num.shape or fidx.dim() != 4 or fidx.shape[:3] != num.shape):
        raise ValueError(f"block_mask: full_kv_num_blocks {tuple(fnum.shape)} and full_kv_indices "
                         f"{tuple(fidx.shape)} must match kv_num_blocks {tuple(num.shape)}")
    if bq <= 0 or bk <= 0 or bq % 64 or bk % 16:
        raise ValueError(f"block_mask: BLOCK_SIZE {(bq, bk)} is not supported: flashgen needs block_q a multiple "
                         "of 64 and block_k a multiple of 16")
    return num, idx, fnum, fidx, bq, bk


def check_lengths(mask, seqlen_q, seqlen_k):
    """A FlexAttention BlockMask knows the lengths it was made for; Flex
    refuses a longer call (its blocks past them would be read as empty, and
    those keys silently never attended), and so does flashgen, on every path
    (attention() checks it before the autograd operator, whose BlockLayout
    no longer carries the lengths)."""
    lens = getattr(mask, "seq_lengths", None)
    if lens is not None and len(lens) == 2 and (int(lens[0]) < seqlen_q or int(lens[1]) < seqlen_k):
        raise ValueError(f"block_mask was created for seq_lengths {(int(lens[0]), int(lens[1]))}, shorter than this "
                         f"call's ({seqlen_q}, {seqlen_k}): create it for these lengths")


_warned_mask_mod = False


def warn_mask_mod(mask):
    """Once a process: a FlexAttention BlockMask's mask_mod is not applied
    (its partial blocks get only causal=), where Flex applies it."""
    global _warned_mask_mod
    mm = getattr(mask, "mask_mod", None)
    if _warned_mask_mod or mm is None or getattr(mm, "__name__", "") == "noop_mask":
        return
    _warned_mask_mod = True
    import warnings
    warnings.warn("flashgen.attention uses a FlexAttention BlockMask's blocks only: its mask_mod is not applied to "
                  "partial blocks (they get only the causal= mask), where FlexAttention applies it; use "
                  "flashgen.Pattern for an element mask", stacklevel=3)


def _fit(num, idx, nq, nk, what):
    """num [B,H,Q], idx [B,H,Q,n] -> int32 host tensors [B,H,nq], [B,H,nq,nk]
    holding, per row, the listed blocks below nk in their listed order."""
    if num.shape[2] < nq:
        raise ValueError(f"block_mask has {num.shape[2]} query blocks; this call needs {nq}")
    num = num[:, :, :nq].to("cpu", torch.int64)
    idx = idx[:, :, :nq].to("cpu", torch.int64)
    n = idx.shape[3]
    if int(num.min()) < 0 or int(num.max()) > n:
        raise ValueError(f"block_mask: {what}_num_blocks must lie in [0, {n}] (the width of {what}_indices)")
    pos = torch.arange(n)
    used = (pos < num[..., None]) & (idx < nk)  # negative indices stay: the library names them
    order = torch.argsort((~used).to(torch.int64) * n + pos, dim=-1, stable=True)
    packed = torch.gather(idx, -1, order)
    out = torch.zeros(*idx.shape[:3], nk, dtype=torch.int32)
    w = min(n, nk)
    out[..., :w] = packed[..., :w].to(torch.int32)
    return used.sum(-1).to(torch.int32).contiguous(), out.contiguous()


def _key(tensors, bq, bk, nq, nk, index):
    parts = [(t.data_ptr(), t._version, tuple(t.shape), tuple(t.stride()), str(t.device)) if t is not None else None
             for t in tensors]
    return (tuple(parts), bq, bk, nq, nk, index)


def layout(mask, seqlen_q, seqlen_k, index):
    """The fg_block_layout* for `mask` in a call with these lengths on CUDA
    device `index`.  Call it with `lock` held, and launch before releasing
    it, so that no other thread evicts (frees) the layout in between; the
    device's primary context must be current."""
    num, idx, fnum, fidx, bq, bk = check(mask)
    check_lengths(mask, seqlen_q, seqlen_k)
    nq, nk = -(-seqlen_q // bq), -(-seqlen_k // bk)
    tensors = (num, idx, fnum, fidx)
    key = _key(tensors, bq, bk, nq, nk, index)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit[0]
    host_num, host_idx = _fit(num, idx, nq, nk, "kv")
    host_fnum, host_fidx = _fit(fnum, fidx, nq, nk, "full_kv") if fnum is not None else (None, None)
    i32 = C.POINTER(C.c_int32)
    ptr = lambda t: C.cast(t.data_ptr(), i32) if t is not None else None
    d = _lib.fg_block_layout_desc(batch=num.shape[0], heads=num.shape[1], num_q_blocks=nq, num_kv_blocks=nk,
                                  block_q=bq, block_k=bk, kv_num_blocks=ptr(host_num), kv_indices=ptr(host_idx),
                                  full_kv_num_blocks=ptr(host_fnum), full_kv_indices=ptr(host_fidx))
    ctx = _device.context(index)
    h = C.c_void_p()
    _lib.check(ctx, "fg_block_layout_create", _lib.load().fg_block_layout_create(ctx, C.byref(d), C.byref(h)))
    _cache[key] = (h.value, tensors, index)
    while len(_cache) > _CACHE_SIZE:
        _destroy(*_cache.popitem(last=False)[1])
    return h.value


def _destroy(handle, tensors, index):
    torch.cuda.synchronize(index)  # a kernel queued on some stream may still read it
    with _device.current(index):
        _lib.load().fg_block_layout_destroy(_device.context(index), handle)


def clear_cache():
    """Frees every cached block layout (after waiting for their devices) and
    every cached inference plan."""
    from . import _inference
    with lock:
        while _cache:
            _destroy(*_cache.popitem(last=False)[1])
    _inference.clear_plans()
