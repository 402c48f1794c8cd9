"""Inference: packed variable-length batches (flashgen.attention with
cu_seqlens_q / cu_seqlens_k / seqused_k) and KV caches, contiguous or paged,
with appends (flashgen.attention_with_kvcache), through the library's
plan/run calls (include/flashgen.h).

Nothing here synchronises with the GPU or copies between host and device:
lengths and page tables stay device tensors that only the kernels read, and
the workspace of a split plan comes from PyTorch's caching allocator on the
current stream, zeroed once (split-KV counts its splits there, and every run
leaves the counts zero again): _workspaces keeps it per (plan, stream) for
the next call, so that a decode step is one launch, not a memset and a
launch.  Under stream capture a call takes a fresh zeroed workspace (the
memset is captured with the run), so that a graph never shares its
workspace with eager calls or with another graph.
So a decode step can be captured in a torch.cuda.CUDAGraph and replayed with
new contents in the same length and table tensors.  The first call of a
shape compiles its kernels and creates its plan (and the first inference call
on a device allocates the library's table error word): make it once before
capturing, as for any library under torch.cuda.graph.

Two caches.  _specs: the checked arguments (shapes, strides, dtypes,
devices, options; no pointers) -> the descriptor without its table pointers,
so that a repeated call skips the checks.  _plans: the full descriptor
(every field but the q/k/v/o pointers, which fg_attention_run takes; the
table pointers included, as a plan keeps them) -> fg_attention_plan, so that
a decode step with the same length and table tensors only runs.  An evicted
plan is destroyed at once: its kernels belong to the context and a launch
takes its arguments by value, so runs already queued or captured do not
need it.
"""
import collections
import ctypes as C
import math
import operator
import threading

import torch

from . import _attention as A
from . import _device, _lib, _scores

_MAX_SPECS, _MAX_PLANS = 64, 256
_specs = {}
_plans = collections.OrderedDict()  # (device index, bytes of the descriptor) -> _Plan
_lock = threading.RLock()  # held from the plan look-up to the launch: no eviction in between
_MAX_WORKSPACE_BYTES = 256 << 20
_workspaces = collections.OrderedDict()  # (plan handle, stream) -> zeroed uint8 tensor, at most _MAX_WORKSPACE_BYTES
_PLAN_CALLS = ("fg_attention_plan_create", "fg_attention_plan_workspace", "fg_attention_plan_splits",
               "fg_attention_run", "fg_attention_plan_destroy")
_last = threading.local()


class _Plan:
    """A library plan; `keep`: the call's flashgen.Score (or None), alive as
    long as the plan, so that the fg_score address in the plan's key names
    that expression only."""
    __slots__ = ("handle", "workspace", "splits", "keep")

    def __init__(self, handle, workspace, splits, keep=None):
        self.handle, self.workspace, self.splits, self.keep = handle, workspace, splits, keep


class _Spec:
    """A checked call: desc (table pointers unset), the append's descriptor
    and new-row strides, o's and lse's shapes, the device index, and what to
    do: 'run', 'zero' (no key: o = 0, lse = -inf) or 'none' (o is empty)."""
    __slots__ = ("desc", "append_desc", "knew", "vnew", "o_shape", "lse_shape", "index", "action", "score", "extents")


def _as_int(name, x):
    if isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a Python int, not a tensor (reading a device tensor on the host would "
                        "synchronise with the GPU)")
    if isinstance(x, bool):
        raise TypeError(f"{name} must be an int, not a bool")
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(x).__name__}") from None


def _check_table(name, t, shape):
    """t: an int32 contiguous tensor of this shape (None: any size there)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be an int32 torch.Tensor, not {type(t).__name__}")
    want = "(" + ", ".join("n" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
    if t.dim() != len(shape) or any(n is not None and m != n for m, n in zip(t.shape, shape)):
        raise ValueError(f"{name} must have shape {want}; got {tuple(t.shape)}")
    if t.dtype != torch.int32:
        raise ValueError(f"{name} must be int32, not {t.dtype} (convert it once, outside the decode loop)")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous; its strides are {t.stride()}")


def _contiguous(shape):
    st, n = [], 1
    for m in reversed(shape):
        st.append(n)
        n *= max(m, 1)
    return tuple(reversed(st))


def _index(t):
    return t.device.index if t.device.index is not None else torch.cuda.current_device()


def _meta(*xs):
    """What the checks of a call depend on: tensors by shape, strides, dtype
    and device (not by address), anything else by value."""
    return tuple((tuple(x.shape), x.stride(), x.dtype, x.device) if isinstance(x, torch.Tensor) else x for x in xs)


def _cached(key, build):
    """The _Spec of key, built (checking the call) on a miss."""
    try:
        spec = _specs.get(key)
    except TypeError:  # an unhashable argument: the checks will say what is wrong with it
        return build()
    if spec is None:
        spec = build()
        if len(_specs) >= _MAX_SPECS:
            _specs.clear()
        _specs[key] = spec
    return spec


def _no_grad_only(what, *ts):
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in ts):
        raise RuntimeError(f"{what} is forward only (no backward): call it under torch.no_grad() or "
                           "torch.inference_mode(), or with detached tensors")


def varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, seqused_k, *, causal, scale, return_lse,
           out, layout, block_mask, deterministic, mods=_scores.NONE):
    """flashgen.attention with cu_seqlens_q / cu_seqlens_k / seqused_k (its
    docstring); mods: its checked score modifications (_scores.scores)."""
    if block_mask is not None:
        raise ValueError("block_mask is not supported with cu_seqlens_q / cu_seqlens_k / seqused_k")
    if layout != "bshd":
        raise ValueError(f"variable lengths take layout='bshd' (packed [total, heads, head_dim]), not {layout!r}")
    _no_grad_only("variable-length attention", q, k, v, mods.alibi_slopes, mods.sinks)
    key = ("varlen", _meta(q, k, v, cu_seqlens_q, cu_seqlens_k, seqused_k, out), max_seqlen_q, max_seqlen_k,
           causal, scale, cu_seqlens_q is cu_seqlens_k, mods.key())
    spec = _cached(key, lambda: _varlen_spec(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                             seqused_k, causal, scale, out, mods))
    if out is not None:  # per call: the cached spec knows out's strides, not its address
        _apart(spec, out, q=q, k=k, v=v)
    o = out if out is not None else torch.empty(spec.o_shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(spec.lse_shape, dtype=torch.float32, device=q.device) if return_lse else None
    _forward(spec, q, k, v, o, lse, mods, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k, seqlens_k=seqused_k)
    return (o, lse) if return_lse else o


def _apart(spec, out, **inputs):
    """out apart from the inputs in memory (_attention._check_out_apart), with
    the byte extents computed once per cached spec (its key fixes shapes and
    strides): only the addresses are this call's."""
    ts = {n: t for n, t in inputs.items() if isinstance(t, torch.Tensor)}
    ext = getattr(spec, "extents", None)
    if ext is None:
        ext = spec.extents = {"out": A._byte_extent(out), **{n: A._byte_extent(t) for n, t in ts.items()}}
    A._apart_by_extent(out, ext, **ts)


def _max_len(name, value, table, packed_rows, batched_len):
    """The seqlen of one side: a batched tensor's own, or the caller's
    maximum for a packed one (at most its rows)."""
    if packed_rows is None:
        if value is not None and _as_int(name, value) != batched_len:
            raise ValueError(f"{name} = {value}, but the batched tensor's seqlen is {batched_len}: leave it out")
        return batched_len
    if value is None:
        raise ValueError(f"{name} is required with {table}: the longest sequence, a Python int (reading it from "
                         f"{table} would synchronise with the GPU)")
    n = _as_int(name, value)
    if not 0 <= n <= packed_rows:
        raise ValueError(f"{name} = {n} must lie in [0, {packed_rows}] (the rows of the packed tensor)")
    if n == 0 and packed_rows > 0:
        # 0 would skip the kernel (nothing to run), which then could not
        # see sequences that do have rows: o would be left unwritten or
        # zero, silently, with no bad table entry recorded
        raise ValueError(f"{name} = 0, but the packed tensor has {packed_rows} rows: give the longest sequence's "
                         f"length in {table} (at least 1)")
    return n


def _causal(causal, square, what):
    if causal is True:
        if not square:
            raise ValueError(f"causal=True is ambiguous {what}: pass causal='bottom_right' (FlashAttention's "
                             "convention) or 'top_left' (PyTorch's is_causal)")
        return _lib.FG_CAUSAL_TOP_LEFT
    return A._causal_mode(causal, 0, 0)


def _varlen_spec(q, k, v, cu_q, cu_k, max_q, max_k, used_k, causal, scale, out, mods=_scores.NONE):
    A._check_types(q=q, k=k, v=v)
    pq, pk = cu_q is not None, cu_k is not None
    for name, t, packed, table in (("q", q, pq, "cu_seqlens_q"), ("k", k, pk, "cu_seqlens_k"),
                                   ("v", v, pk, "cu_seqlens_k")):
        if packed and t.dim() != 3:
            raise ValueError(f"{name} must be packed 3-D [total, heads, head_dim] with {table}; got shape "
                             f"{tuple(t.shape)}")
        if not packed and t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [batch, seqlen, heads, head_dim] without {table}; got shape "
                             f"{tuple(t.shape)}")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k and v must agree in every dimension but the last (v's is the value head dim); got "
                         f"{tuple(k.shape)} and {tuple(v.shape)}")
    if pq:
        _check_table("cu_seqlens_q", cu_q, (None,))
        if cu_q.shape[0] < 1:
            raise ValueError("cu_seqlens_q must have batch + 1 entries (at least the leading 0)")
    b = cu_q.shape[0] - 1 if pq else q.shape[0]
    if pk:
        _check_table("cu_seqlens_k", cu_k, (b + 1,))
    elif k.shape[0] != b:
        raise ValueError(f"q has {b} sequences but k and v have batch {k.shape[0]}")
    if used_k is not None:
        _check_table("seqused_k", used_k, (b,))
    hq, d = q.shape[-2:]
    hk, dk = k.shape[-2:]
    dv = v.shape[-1]
    if dk != d:
        raise ValueError(f"q has head dim {d} but k has {dk}")
    A._check_heads_dims(hq, hk, d, dv)
    mods.check_tensors(b, hq, q.device)
    A._check_unit_stride(q=q, k=k, v=v)
    sq = _max_len("max_seqlen_q", max_q, "cu_seqlens_q", q.shape[0] if pq else None, None if pq else q.shape[1])
    sk = _max_len("max_seqlen_k", max_k, "cu_seqlens_k", k.shape[0] if pk else None, None if pk else k.shape[1])
    square = used_k is None and ((pq and cu_q is cu_k) or (not pq and not pk and sq == sk))
    mode = _causal(causal, square, "unless every sequence is square (cu_seqlens_q is cu_seqlens_k, no seqused_k)")
    scale_value = A._scale_value(scale)
    o_shape = tuple(q.shape[:-1]) + (dv,)
    if out is not None:
        A._check_out(out, q, o_shape)
    A._check_device(q=q, k=k, v=v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, seqused_k=used_k, out=out)
    lq, lk = "packed" if pq else "bshd", "packed" if pk else "bshd"
    o_stride = out.stride() if out is not None else _contiguous(o_shape)
    strides = [A._strides(q, lq), A._strides(k, lk), A._strides(v, lk), A._strides_of(o_shape, o_stride, lq)]
    spec = _Spec()
    spec.desc = A._new_desc(q.dtype, (b, hq, hk, sq, sk, d, dv), strides, mode, scale_value)
    spec.desc.total_q = A._c_int("total_q (q's packed rows)", q.shape[0] if pq else 0)
    spec.desc.total_k = A._c_int("total_k (k's packed rows)", k.shape[0] if pk else 0)
    mods.apply(spec.desc)  # the slopes' and sinks' addresses are set again per call (_forward)
    spec.append_desc = spec.knew = spec.vnew = None
    spec.o_shape, spec.lse_shape = o_shape, ((hq, q.shape[0]) if pq else (b, hq, sq))
    spec.index = _index(q)
    spec.action = "none" if math.prod(o_shape) == 0 or b == 0 or sq == 0 else "zero" if sk == 0 else "run"
    _set_score(spec, mods)
    return spec


def _set_score(spec, mods):
    """A user score expression (score_mod=) on the call's descriptor (not on
    the append's); the spec keeps the Score, and with it its fg_score, alive."""
    spec.score = mods.score
    if mods.score is not None:
        spec.desc.score = mods.score.handle(spec.index)


def attention_with_kvcache(q, k_cache, v_cache, k=None, v=None, cache_seqlens=None, block_table=None, causal=False,
                           softmax_scale=None, num_splits=0, return_lse=False, out=None, softcap=None,
                           alibi_slopes=None, window_size=None, sinks=None, score_mod=None, return_softmax_lse=None):
    """Attention of new queries over a KV cache, after appending new keys
    and values to it; in the spirit of FlashAttention's flash_attn_with_kvcache.

    q: [batch, seqlen_q, heads_q, head_dim] (decode: seqlen_q = 1).
    k_cache, v_cache: [batch, capacity, heads_kv, head_dim (v: head_dim_v)],
      or, with block_table, a paged cache [num_pages, page_size, heads_kv, d]
      (vLLM's and FlashInfer's layout; page_size a multiple of 16).
    block_table: int32 [batch, max_pages]: the pages of each sequence in
      order; key j of sequence b is row j % page_size of page
      block_table[b][j // page_size].  Pages may be shared and out of order.
    cache_seqlens: int32 [batch] (the keys each sequence has in the cache), a
      Python int (the same for all), or None (the whole capacity,
      max_pages * page_size when paged).
    k, v: new keys and values [batch, seqlen_new, heads_kv, d], written into
      the cache at positions cache_seqlens[b] .. + seqlen_new - 1 (this call
      modifies k_cache and v_cache); attention then runs over
      cache_seqlens[b] + seqlen_new keys.  cache_seqlens itself is not
      changed: advance it yourself (cache_seqlens += seqlen_new) for the next
      step.  Needs cache_seqlens.
    causal: True or 'bottom_right': query i of a sequence with n keys sees
      keys j <= i + n - seqlen_q (FlashAttention's convention, per sequence);
      'top_left': j <= i.
    softmax_scale: None means 1/sqrt(head_dim).
    num_splits: split-KV (flash-decoding): the key range of each query tile is
      split over up to this many CTAs, merged by their logsumexp; 0 chooses
      from the SM count and the sizes, 1 never splits.
    return_lse: also return lse, fp32 [batch, heads_q, seqlen_q]
      (return_softmax_lse=, FlashAttention's name, is the same argument).
    out: write o [batch, seqlen_q, heads_q, head_dim_v] into this tensor.
    softcap, alibi_slopes, window_size, sinks: score modifications, as
      flashgen.attention takes them (FlashAttention-2's conventions), each
      sequence aligned by its own lengths: query i of a sequence with n keys
      has the offset n - seqlen_q (0 with causal='top_left') in the window
      and the ALiBi distance; alibi_slopes float32 [heads_q] or [batch,
      heads_q], sinks float32 [heads_q] (lse includes the sink; a row that
      sees no key has o = 0 and lse = the sink).  Gemma 2's decode:
      softcap=30; gpt-oss: sinks=..., window_size=(127, 0).
    score_mod: a user score modification, as flashgen.attention takes it
      (a flashgen.Score or a FlexAttention-style function); b is the
      sequence, q_idx the query's row in q, kv_idx the key's position in
      the cache.

    Head dims that are not multiples of 8 are zero-padded around the call,
    as flashgen.attention pads them; here that copies the whole cache each
    way (the appended rows go back into k_cache and v_cache), so serving
    should keep head dims multiples of 8.

    float16/bfloat16 CUDA tensors on one device with unit last strides; the
    int tensors int32, contiguous, on that device.  Nothing synchronises or
    copies between host and device, so a decode step can be captured in a
    CUDA graph (after one uncaptured call of the same shape).  Table entries
    out of range (a length past the capacity, a page past num_pages) are
    never read out of bounds: the kernels skip them and record the first
    one, which flashgen.check_tables() reports.  Forward only.
    Returns o, or (o, lse).
    """
    if return_softmax_lse is not None:
        return_lse = bool(return_softmax_lse)
    if A._unaligned_head_dims(q, k_cache, v_cache) and all(t is None or isinstance(t, torch.Tensor) for t in (k, v)):
        return _kvcache_padded(q, k_cache, v_cache, k, v, cache_seqlens=cache_seqlens, block_table=block_table,
                               causal=causal, softmax_scale=softmax_scale, num_splits=num_splits, return_lse=return_lse,
                               out=out, softcap=softcap, alibi_slopes=alibi_slopes, window_size=window_size, sinks=sinks,
                               score_mod=score_mod)
    mods = _scores.scores(softcap, alibi_slopes, window_size, sinks, score_mod)
    _no_grad_only("attention_with_kvcache", q, k_cache, v_cache, k, v, mods.alibi_slopes, mods.sinks)
    key = ("kv", _meta(q, k_cache, v_cache, k, v, cache_seqlens, block_table, out), causal, softmax_scale,
           num_splits, mods.key())
    spec = _cached(key, lambda: _kvcache_spec(q, k_cache, v_cache, k, v, cache_seqlens, block_table, causal,
                                              softmax_scale, num_splits, out, mods))
    if out is not None:  # per call: the cached spec knows out's strides, not its address
        _apart(spec, out, q=q, k_cache=k_cache, v_cache=v_cache, k=k, v=v)
    o = out if out is not None else torch.empty(spec.o_shape, dtype=q.dtype, device=q.device)
    lse = torch.empty(spec.lse_shape, dtype=torch.float32, device=q.device) if return_lse else None
    lens = cache_seqlens if isinstance(cache_seqlens, torch.Tensor) else None  # an int is in the descriptor
    if spec.append_desc is not None:
        old = lens if lens is not None else torch.full((q.shape[0],), cache_seqlens, dtype=torch.int32,
                                                        device=q.device)
        _append(spec, old, block_table, k, v, k_cache, v_cache)
        if lens is not None:
            lens = lens + k.shape[1]  # a new tensor: the caller's cache_seqlens stays as it was
    _forward(spec, q, k_cache, v_cache, o, lse, mods, seqlens_k=lens, block_table=block_table)
    return (o, lse) if return_lse else o


def _kvcache_padded(q, k_cache, v_cache, k, v, *, softmax_scale, out, return_lse, **kw):
    """attention_with_kvcache for head dims that are not multiples of 8
    (FlashAttention's tests use 59): q, the caches and the new rows
    zero-padded to the next multiple, the call made on the padded copies,
    then the appended rows copied back into the caller's caches (the whole
    cache is copied each way: fine for a test, slow for serving, which
    should keep head dims multiples of 8) and o sliced.  The default scale
    stays 1/sqrt(head_dim)."""
    d, dv = q.shape[-1], v_cache.shape[-1]
    pd, pdv = -d % 8, -dv % 8
    if out is not None:
        A._check_out(out, q, tuple(q.shape[:-1]) + (dv,))
    kc, vc = A._pad_head(k_cache, pd), A._pad_head(v_cache, pdv)
    r = attention_with_kvcache(A._pad_head(q, pd), kc, vc, A._pad_head(k, pd), A._pad_head(v, pdv),
                               softmax_scale=d ** -0.5 if softmax_scale is None else softmax_scale,
                               return_lse=return_lse, **kw)
    if k is not None:  # the new rows went into the padded copies (the inner call refused k without v)
        k_cache.copy_(kc[..., :d])
        v_cache.copy_(vc[..., :dv])
    return A._unpadded(r, return_lse, dv, out)


def _kvcache_spec(q, k_cache, v_cache, k, v, cache_seqlens, block_table, causal, scale, num_splits, out,
                  mods=_scores.NONE):
    if (k is None) != (v is None):
        raise ValueError("k and v (the new keys and values to append) must both be given or both be None")
    named = dict(q=q, k_cache=k_cache, v_cache=v_cache, **({} if k is None else dict(k=k, v=v)))
    A._check_types(**named)
    cache = "[batch, capacity, heads_kv, d], or [num_pages, page_size, heads_kv, d] with block_table"
    shapes = {"q": "[batch, seqlen_q, heads_q, head_dim]", "k_cache": cache, "v_cache": cache,
              "k": "[batch, seqlen_new, heads_kv, head_dim]", "v": "[batch, seqlen_new, heads_kv, head_dim_v]"}
    for name, t in named.items():
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D {shapes[name]}; got shape {tuple(t.shape)}")
    b, sq, hq, d = q.shape
    if k_cache.shape[:3] != v_cache.shape[:3]:
        raise ValueError(f"k_cache and v_cache must agree in every dimension but the last; got "
                         f"{tuple(k_cache.shape)} and {tuple(v_cache.shape)}")
    n0, n1, hk, dk = k_cache.shape
    dv = v_cache.shape[3]
    if dk != d:
        raise ValueError(f"q has head dim {d} but k_cache has {dk}")
    A._check_heads_dims(hq, hk, d, dv)
    mods.check_tensors(b, hq, q.device)
    if block_table is not None:
        _check_table("block_table", block_table, (b, None))
        capacity = block_table.shape[1] * n1
    elif n0 != b:
        raise ValueError(f"k_cache has batch {n0} but q has {b} (a paged cache [num_pages, page_size, ...] needs "
                         "block_table)")
    else:
        capacity = n1
    seqlen_new = 0
    if k is not None:
        if k.shape[:3] != v.shape[:3] or (k.shape[0], k.shape[2], k.shape[3], v.shape[3]) != (b, hk, d, dv):
            raise ValueError(f"k and v must be [{b}, seqlen_new, {hk}, {d}] and [{b}, seqlen_new, {hk}, {dv}] (batch, "
                             f"the cache's heads and head dims); got {tuple(k.shape)} and {tuple(v.shape)}")
        seqlen_new = k.shape[1]
        if cache_seqlens is None:
            raise ValueError("cache_seqlens is required with k and v: the new rows of sequence b go to positions "
                             "cache_seqlens[b] onwards")
    if isinstance(cache_seqlens, torch.Tensor):
        _check_table("cache_seqlens", cache_seqlens, (b,))
        seqlen_k = capacity  # the lengths are read on the device
    elif cache_seqlens is None:
        seqlen_k = capacity
    else:
        n = _as_int("cache_seqlens", cache_seqlens)
        if not 0 <= n <= capacity - seqlen_new:
            raise ValueError(f"cache_seqlens = {n} with {seqlen_new} new rows does not fit the capacity {capacity}")
        seqlen_k = n + seqlen_new
    splits = _as_int("num_splits", num_splits)
    if splits < 0:
        raise ValueError(f"num_splits must be 0 (automatic) or positive, not {splits}")
    mode = _lib.FG_CAUSAL_BOTTOM_RIGHT if causal is True else A._causal_mode(causal, 0, 0)
    scale_value = A._scale_value(scale)
    A._check_unit_stride(**named)
    o_shape = (b, sq, hq, dv)
    if out is not None:
        A._check_out(out, q, o_shape)
    A._check_device(**named, cache_seqlens=cache_seqlens if isinstance(cache_seqlens, torch.Tensor) else None,
                    block_table=block_table, out=out)
    o_stride = out.stride() if out is not None else _contiguous(o_shape)
    strides = [A._strides(q, "bshd"), A._strides(k_cache, "bshd"), A._strides(v_cache, "bshd"),
               A._strides_of(o_shape, o_stride, "bshd")]
    spec = _Spec()
    spec.desc = A._new_desc(q.dtype, (b, hq, hk, sq, seqlen_k, d, dv), strides, mode, scale_value)
    if block_table is not None:
        spec.desc.page_size, spec.desc.num_pages, spec.desc.max_pages = (
            A._c_int("page_size", n1), A._c_int("num_pages", n0), A._c_int("max_pages", block_table.shape[1]))
    spec.desc.num_splits = A._c_int("num_splits", splits)
    mods.apply(spec.desc)  # the slopes' and sinks' addresses are set again per call (_forward)
    spec.append_desc = spec.knew = spec.vnew = None
    if seqlen_new:
        spec.append_desc = _lib.fg_attention_desc.from_buffer_copy(spec.desc)
        spec.append_desc.seqlen_k = capacity
        spec.knew = (C.c_int64 * 3)(*A._strides(k, "bshd"))
        spec.vnew = (C.c_int64 * 3)(*A._strides(v, "bshd"))
    spec.o_shape, spec.lse_shape = o_shape, (b, hq, sq)
    spec.index = _index(q)
    spec.action = "none" if math.prod(o_shape) == 0 else "zero" if seqlen_k == 0 else "run"
    _set_score(spec, mods)
    return spec


def _append(spec, lens, block_table, k, v, k_cache, v_cache):
    lib = _lib.inference("fg_kv_append")
    d = _lib.fg_attention_desc.from_buffer_copy(spec.append_desc)
    d.seqlens_k = lens.data_ptr()
    if block_table is not None:
        d.block_table = block_table.data_ptr()
    stream = torch.cuda.current_stream(k.device).cuda_stream
    with _device.current(spec.index):
        ctx = _device.context(spec.index)
        st = lib.fg_kv_append(ctx, C.byref(d), k.data_ptr(), v.data_ptr(), spec.knew, spec.vnew, k.shape[1],
                              k_cache.data_ptr(), v_cache.data_ptr(), 0, stream)
        _lib.check(ctx, "fg_kv_append", st)


def _forward(spec, q, k, v, o, lse, mods, **tables):
    """Runs spec's plan with these table tensors (field name -> tensor or
    None) and mods' (its score modifications' device arrays)."""
    if spec.action == "none":
        return
    if spec.action == "zero":  # no key anywhere: the library's convention for a row that sees none
        o.zero_()
        if lse is not None:
            mods.empty_lse(lse)
        return
    d = _lib.fg_attention_desc.from_buffer_copy(spec.desc)
    for field, t in dict(tables, **mods.tables()).items():
        if t is not None:
            setattr(d, field, t.data_ptr())
    key = (spec.index, bytes(d))
    lib = _lib.inference(*_PLAN_CALLS)
    stream = torch.cuda.current_stream(q.device).cuda_stream
    with _lock, _device.current(spec.index):
        ctx = _device.context(spec.index)
        plan = _plans.get(key)
        if plan is None:
            plan = _create_plan(lib, ctx, d, key, spec.score)
        else:
            _plans.move_to_end(key)
        ws = _workspace(plan, stream, q.device) if plan.workspace else None
        st = lib.fg_attention_run(plan.handle, q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
                                  lse.data_ptr() if lse is not None else None,
                                  ws.data_ptr() if ws is not None else None, plan.workspace, stream)
        if st != _lib.FG_OK:
            _forget_workspaces(plan.handle)  # its counts may not be zero any more
        _lib.check(ctx, "fg_attention_run", st)
        _last.plan = plan


def _workspace(plan, stream, device):
    """A zeroed workspace for a run of plan on stream (the library's runs
    leave its split counts zero, include/flashgen.h): kept per (plan,
    stream) outside stream capture, fresh under it."""
    if _capturing(device):
        return torch.zeros(plan.workspace, dtype=torch.uint8, device=device)
    key = (plan.handle, stream)
    ws = _workspaces.get(key)
    if ws is not None:
        _workspaces.move_to_end(key)
        return ws
    ws = torch.zeros(plan.workspace, dtype=torch.uint8, device=device)
    if plan.workspace <= _MAX_WORKSPACE_BYTES:
        _workspaces[key] = ws
        total = sum(t.numel() for t in _workspaces.values())
        while total > _MAX_WORKSPACE_BYTES:
            total -= _workspaces.popitem(last=False)[1].numel()
    return ws


def _capturing(device):
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def _forget_workspaces(handle):
    for key in [k for k in _workspaces if k[0] == handle]:
        del _workspaces[key]


def _create_plan(lib, ctx, d, key, keep=None):
    h = C.c_void_p()
    st = lib.fg_attention_plan_create(ctx, C.byref(d), C.byref(h))
    if st != _lib.FG_OK:
        if h.value:
            lib.fg_attention_plan_destroy(h.value)
        _lib.check(ctx, "fg_attention_plan_create", st)
    plan = _Plan(h.value, lib.fg_attention_plan_workspace(h.value), lib.fg_attention_plan_splits(h.value), keep)
    _plans[key] = plan
    while len(_plans) > _MAX_PLANS:
        old = _plans.popitem(last=False)[1].handle
        _forget_workspaces(old)  # a later plan may get the same handle
        lib.fg_attention_plan_destroy(old)
    return plan


def last_plan():
    """(splits, workspace bytes) of the plan this thread's last inference
    call ran, or None before any."""
    plan = getattr(_last, "plan", None)
    return None if plan is None else (plan.splits, plan.workspace)


def clear_plans():
    """Destroys every cached plan (flashgen.clear_cache calls it)."""
    with _lock:
        _specs.clear()
        _workspaces.clear()
        if _plans:
            lib = _lib.inference("fg_attention_plan_destroy")
            while _plans:
                lib.fg_attention_plan_destroy(_plans.popitem(last=False)[1].handle)
        _last.plan = None


def forget_score(score):
    """Drops the cached specs and plans made with `score` (a flashgen.Score
    about to destroy its fg_score handles), so that none is run again with
    a freed handle, or matched by a new handle at the same address."""
    with _lock:
        for key in [k for k, sp in _specs.items() if getattr(sp, "score", None) is score]:
            del _specs[key]
        stale = [k for k, pl in _plans.items() if pl.keep is score]
        if stale:
            lib = _lib.inference("fg_attention_plan_destroy")
            for key in stale:
                plan = _plans.pop(key)
                _forget_workspaces(plan.handle)
                lib.fg_attention_plan_destroy(plan.handle)
        if getattr(_last, "plan", None) is not None and _last.plan.keep is score:
            _last.plan = None


def check_tables(device=None):
    """Raises flashgen.FlashgenError (FG_ERR_BAD_LAYOUT) describing the first
    out-of-range cu_seqlens, seqlens, block_table entry or append position that
    the inference kernels on this device met since the last check, and clears
    the record.  Synchronises with the current stream: a debugging aid, not a
    call for a decode loop."""
    dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"check_tables takes a CUDA device, not {dev}")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    lib = _lib.inference("fg_attention_table_error")
    buf = C.create_string_buffer(512)
    with _device.current(index):
        ctx = _device.context(index)
        st = lib.fg_attention_table_error(ctx, buf, len(buf), torch.cuda.current_stream(dev).cuda_stream)
        _lib.check(ctx, "fg_attention_table_error", st)
