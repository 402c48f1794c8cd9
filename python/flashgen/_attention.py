"""flashgen.attention: validation, descriptor, launch."""
import contextlib
import ctypes as C
import math

import torch
import torch.nn.functional as F

from . import _autograd, _blockmask, _device, _fp8, _lib, _pattern, _scores

# torch.compile traces attention() through the flashgen::attention operator (flashgen._ops; torch < 2.3: never)
_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (lambda: False)
_DTYPES = {torch.float16: _lib.FG_FP16, torch.bfloat16: _lib.FG_BF16}
_FWD_DTYPES = _DTYPES if _fp8.E4M3 is None else {**_DTYPES, _fp8.E4M3: _lib.FG_E4M3}  # the dense forward's
_CAUSAL = {False: _lib.FG_CAUSAL_NONE, None: _lib.FG_CAUSAL_NONE, "none": _lib.FG_CAUSAL_NONE,
           "bottom_right": _lib.FG_CAUSAL_BOTTOM_RIGHT, "top_left": _lib.FG_CAUSAL_TOP_LEFT}


def _causal_mode(causal, seqlen_q, seqlen_k):
    if causal is True:
        if seqlen_q != seqlen_k:
            raise ValueError(f"causal=True is ambiguous when seqlen_q ({seqlen_q}) != seqlen_k ({seqlen_k}): pass "
                             "causal='bottom_right' (FlashAttention's convention) or 'top_left' (PyTorch's is_causal)")
        return _lib.FG_CAUSAL_TOP_LEFT  # the two conventions agree on square shapes
    if isinstance(causal, (str, bool)) or causal is None:
        if causal in _CAUSAL:
            return _CAUSAL[causal]
    raise ValueError(f"causal must be False, True, 'bottom_right' or 'top_left', not {causal!r}")


def _check_types(**named):
    """Every tensor a torch.Tensor of q's dtype, float16 or bfloat16; the
    first one named is q."""
    _check_dtypes(named, _DTYPES)


def _check_dtypes(named, dtypes):
    """_check_types with the dtypes allowed ({dtype: fg_dtype})."""
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    (qname, q), *rest = named.items()
    if q.dtype not in dtypes:
        raise TypeError(f"{qname} has dtype {q.dtype}; flashgen supports torch.float16 and torch.bfloat16" +
                        (" here (torch.float8_e4m3fn: flashgen.attention's dense forward only)"
                         if q.dtype == _fp8.E4M3 else ""))
    for name, t in rest:
        if t.dtype != q.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {qname} has {q.dtype}; all must match")


def _check_heads_dims(hq, hk, d, dv):
    if hk == 0 or hq % hk:
        raise ValueError(f"heads of q ({hq}) must be a multiple of the heads of k and v ({hk}) (GQA/MQA)")
    for name, x in (("head dim", d), ("value head dim (v's last dim)", dv)):
        if x < 8 or x > 256 or x % 8:
            raise ValueError(f"{name} {x} is not supported: it must be a multiple of 8 in 8..256 (head dims above 256, "
                             "such as MLA decode's 576/512, need a decode kernel flashgen does not have yet)")


def _check_unit_stride(**named):
    for name, t in named.items():
        if t.stride(-1) != 1 and t.shape[-1] > 1:
            raise ValueError(f"{name} must have a unit stride in its last (head_dim) dimension; its strides are "
                             f"{t.stride()} (call .contiguous())")


def _check_inputs(q, k, v, layout, dtypes=_DTYPES):
    """Shapes as (batch, seqlen_q, seqlen_k, heads_q, heads_kv, head_dim, head_dim_v)."""
    _check_dtypes(dict(q=q, k=k, v=v), dtypes)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [batch, seqlen, heads, head_dim] (layout='bshd') or "
                             f"[batch, heads, seqlen, head_dim] (layout='bhsd'); got shape {tuple(t.shape)}")
    if layout not in ("bshd", "bhsd"):
        raise ValueError(f"layout must be 'bshd' or 'bhsd', not {layout!r}")
    bshd = lambda t: (t.shape[0], t.shape[1], t.shape[2], t.shape[3]) if layout == "bshd" else \
        (t.shape[0], t.shape[2], t.shape[1], t.shape[3])
    b, sq, hq, d = bshd(q)
    bk, sk, hk, dk = bshd(k)
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k and v must agree in every dimension but the last (v's is the value head dim); got "
                         f"{tuple(k.shape)} and {tuple(v.shape)}")
    dv = v.shape[3]
    if bk != b:
        raise ValueError(f"q has batch {b} but k and v have {bk}")
    if dk != d:
        raise ValueError(f"q has head dim {d} but k has {dk}")
    _check_heads_dims(hq, hk, d, dv)
    _check_unit_stride(q=q, k=k, v=v)
    return b, sq, sk, hq, hk, d, dv


def _out_shape(q, v):
    """o has q's shape with v's last dim (the value head dim), in either layout."""
    return tuple(q.shape[:3]) + (v.shape[3],)


def _check_device(**named):
    """Every tensor named (None: absent) on the first one's CUDA device."""
    named = {n: t for n, t in named.items() if t is not None}
    for name, t in named.items():
        if t.device.type != "cuda":
            raise ValueError(f"{name} is on {t.device}; flashgen runs on CUDA tensors")
    devices = {t.device for t in named.values()}
    if len(devices) > 1:
        raise ValueError(f"{', '.join(named)} must be on one device; got "
                         f"{', '.join(str(t.device) for t in named.values())}")


def _check_out(out, q, shape, dtype=None):
    """out (o's dtype: q's unless given) checked."""
    dtype = dtype or q.dtype
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, not {type(out).__name__}")
    if tuple(out.shape) != shape or out.dtype != dtype or out.device != q.device:
        raise ValueError(f"out must have shape {shape} (q's, with v's last dim), {dtype}, {q.device}; got shape "
                         f"{tuple(out.shape)}, {out.dtype}, {out.device}")
    if out.stride(-1) != 1 and out.shape[-1] > 1:
        raise ValueError(f"out must have a unit stride in its last dimension; its strides are {out.stride()}")
    if any(st == 0 and n > 1 for st, n in zip(out.stride(), out.shape)):
        raise ValueError(f"out has a stride of 0 (an expanded tensor: its rows share memory); strides {out.stride()}")
    return out


def _byte_extent(t):
    """The bytes from a tensor's first element to past its last (non-negative
    strides; 0 when empty): fixed by its shape, strides and dtype."""
    if t.numel() == 0:
        return 0
    return (sum((n - 1) * st for n, st in zip(t.shape, t.stride())) + 1) * t.element_size()


def _apart_by_extent(out, extents, **inputs):
    a0 = out.data_ptr()
    a1 = a0 + extents["out"]
    for name, t in inputs.items():
        n = extents.get(name, 0)
        b0 = t.data_ptr()
        if n and extents["out"] and a0 < b0 + n and b0 < a1:
            raise ValueError(f"out overlaps {name} in memory; flashgen writes o while it still reads {name}: pass a "
                             "separate out tensor")


def _check_out_apart(out, **inputs):
    """out may not share memory with an input (its byte range meets theirs):
    the kernels read every row of k and v, and q's rows tile by tile, while
    other blocks write o."""
    ts = {n: t for n, t in inputs.items() if isinstance(t, torch.Tensor)}
    _apart_by_extent(out, {"out": _byte_extent(out), **{n: _byte_extent(t) for n, t in ts.items()}}, **ts)


def _strides_of(shape, stride, layout):
    """(batch, head, row) element strides of a tensor of this shape and
    stride in `layout` ('bshd', 'bhsd', or 'packed': [total, heads, d], whose
    batch stride is 0 as cu_seqlens places its rows); a dimension of size 1
    gets 0, as its stride is never used."""
    if layout == "packed":
        sizes, st = (1, shape[1], shape[0]), (0, stride[1], stride[0])
    else:
        h, r = (2, 1) if layout == "bshd" else (1, 2)
        sizes, st = (shape[0], shape[h], shape[r]), (stride[0], stride[h], stride[r])
    return tuple(s if n > 1 else 0 for s, n in zip(st, sizes))


def _strides(t, layout):
    return _strides_of(t.shape, t.stride(), layout)


def attention(q, k, v, *, causal=False, scale=None, block_mask=None, return_lse=False, layout="bshd", out=None,
              deterministic=None, cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=None, max_seqlen_k=None,
              seqused_k=None, softcap=None, alibi_slopes=None, window_size=None, sinks=None, q_descale=None,
              k_descale=None, v_descale=None, out_dtype=None, score_mod=None, softmax_scale=None, dropout_p=0.0):
    """Attention forward: softmax(q k^T * scale + mask) v.

    q: [batch, seqlen_q, heads_q, head_dim]; k: [batch, seqlen_k,
    heads_kv, head_dim]; v: [batch, seqlen_k, heads_kv, head_dim_v]
    (layout='bshd', FlashAttention's), or [batch, heads, seqlen, ...] with
    layout='bhsd' (SDPA's).  The value head dim head_dim_v is v's last dim
    and may differ from head_dim (DeepSeek's 192/128), in the backward pass
    too; o has it.  Any strides with a unit
    last stride; batch/head/row strides multiples of 8 elements and 16-byte
    aligned data (a plain tensor or a view like x.transpose(1, 2) is).
    float16 or bfloat16 CUDA tensors on one device; fp32 accumulation.
    heads_q must be a multiple of heads_kv (GQA/MQA); head_dim and
    head_dim_v in 1..256: the kernels take multiples of 8, and other head
    dims are zero-padded to the next multiple (a copy of q, k, v and o
    around the call, FlashAttention's wrapper does the same; the default
    scale stays 1/sqrt(head_dim)).  Runs on the tensors' device, on its current stream.

    causal: False; 'bottom_right' (key j visible from query i iff
      j <= i + seqlen_k - seqlen_q, FlashAttention's convention);
      'top_left' (j <= i, PyTorch's is_causal); True when seqlen_q ==
      seqlen_k (where the two agree).
    scale: softmax scale; None means 1/sqrt(head_dim).  softmax_scale=
      (FlashAttention's name) is the same argument.  dropout_p: 0.0 only
      (flashgen has no dropout; other values raise NotImplementedError).
    block_mask: a FlexAttention BlockMask or a flashgen.BlockLayout (full
      blocks unmasked, partial blocks get only the causal mask given by
      `causal`), or a flashgen.Pattern, whose element mask (mask_mod) also
      applies to its partial blocks.  A BlockMask made for shorter lengths
      than the call's is refused (as FlexAttention refuses it).  Its device
      layout is cached (16 masks, and 16 sizes a Pattern): a CUDA graph that
      captured a call reads that layout when it replays, so keep the graph's
      masks and sizes among the cached ones while it is replayed.
    return_lse: also return the log-sum-exp, fp32 [batch, heads_q, seqlen_q],
      natural log.
    layout: 'bshd' (default) or 'bhsd': how to read the four dimensions.
    out: write o into this tensor (q's shape with v's last dim, q's dtype and
      device; unit last stride; its rows must not overlap, nor its memory
      q's, k's or v's) instead of a new one.

    deterministic: for the backward pass, dq bitwise identical from run to
      run (ordered accumulation); None follows
      torch.are_deterministic_algorithms_enabled().

    Variable lengths (FlashAttention-2's flash_attn_varlen_func): with
      cu_seqlens_q (int32 [batch + 1], 0, then the running total of the
      sequences' lengths) q is packed [total_q, heads_q, head_dim], o too, and
      max_seqlen_q (a Python int, the longest sequence) is required; lse is
      then [heads_q, total_q].  cu_seqlens_k and max_seqlen_k likewise pack
      k and v ([total_k, heads_kv, d]); either side may stay batched 4-D.
      seqused_k (int32 [batch]): sequence b uses only its first seqused_k[b]
      keys.  causal='bottom_right' / 'top_left' align each sequence by its own
      lengths; True only where every sequence is square (cu_seqlens_q is
      cu_seqlens_k, no seqused_k).  layout='bshd', no block_mask, forward
      only.  The tables stay on the device: nothing synchronises, and entries
      out of range are skipped and recorded (flashgen.check_tables).

    Score modifications (FlashAttention-2's conventions; dense and variable
      lengths, no block_mask yet: docs/SCORE-WIRING.md; with variable lengths
      each sequence is aligned by its own lengths, forward only):
      softcap: logits cap * tanh(scale * q.k / cap) (Gemma 2); None or 0: off.
      alibi_slopes: float32 [heads_q] or [batch, heads_q] on q's device; the
        logit gets - slope * |i + seqlen_k - seqlen_q - j| (offset 0 with
        causal='top_left').
      window_size: (left, right), key j visible from query i iff
        i + off - left <= j <= i + off + right, -1 unbounded on that side.
      score_mod: a user score modification (docs/SCORES.md): a
        flashgen.Score (the score language's text with tables and
        constants) or a FlexAttention-style function of (score, b, h, q_idx,
        kv_idx), translated once (flashgen.TranslationError where the
        language cannot express it); applied after softcap and ALiBi.
        Differentiated in eager mode through the expression's derivative
        (the mma.sync backward); with variable lengths forward only;
        torch.compile, block_mask and FP8 raise NotImplementedError.
      sinks: float32 [heads_q], a logit per head in the softmax denominator
        only (gpt-oss); lse includes it, and a row that sees no key has o = 0
        and lse = the sink.
      Differentiable like the plain call (the mma.sync backward): q, k, v
      and, when sinks requires grad, sinks (not with deterministic=True);
      alibi_slopes requiring grad raises NotImplementedError.

    FP8 (docs/FP8-WIRING.md; the Hopper TMA kernel, sm_90a): q, k and v
      torch.float8_e4m3fn (same layouts; head_dim a multiple of 32, head_dim_v
      of 16, batch/head/row strides multiples of 16 elements), fp32
      accumulation; softmax(scale * qd * kd * q k^T) v * vd.
      q_descale, k_descale, v_descale: float32 tensors on q's device, shape
        [] or [1] (per tensor) or all [batch, heads_kv] (per (batch, kv
        head)); None means 1.  They stay on the device (no sync):
        flashgen.quantize_fp8 makes them.
      out_dtype: o's dtype, torch.bfloat16 (default) or torch.float16.
      Dense forward only: score modifications, block_mask, variable lengths,
      requires_grad and torch.compile raise NotImplementedError.

    Returns o in q's logical layout with v's last dim (a new contiguous
    tensor, or `out`), or
    (o, lse).
    A query row that sees no key gets o = 0 and lse = -inf (and zero
    gradients).  Differentiable: when q, k or v requires grad (and grad mode
    is on) the call goes through the flashgen::attention operator
    (torch.library.custom_op, flashgen._ops; torch >= 2.4) whose backward is
    fg_attention_backward (block_mask works there too, without
    deterministic=True; out= raises; lse is not differentiable).
    torch.compile traces it as that operator, without a graph break.
    Raises TypeError/ValueError for bad inputs and flashgen.FlashgenError,
    with the library's message, when the library fails.
    """
    scale = _scale_alias(scale, softmax_scale)
    if dropout_p:
        raise NotImplementedError(f"flashgen.attention has no dropout (dropout_p = {dropout_p}): pass 0.0")
    if _unaligned_head_dims(q, k, v):
        return _padded(q, k, v, causal=causal, scale=scale, block_mask=block_mask, return_lse=return_lse, layout=layout,
                       out=out, deterministic=deterministic, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                       max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, seqused_k=seqused_k, softcap=softcap,
                       alibi_slopes=alibi_slopes, window_size=window_size, sinks=sinks, score_mod=score_mod,
                       q_descale=q_descale, k_descale=k_descale, v_descale=v_descale, out_dtype=out_dtype)
    mods = _scores.scores(softcap, alibi_slopes, window_size, sinks, score_mod)
    if block_mask is not None and not isinstance(block_mask, _pattern.Pattern):
        _blockmask.warn_mask_mod(block_mask)
        if isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and q.dim() == 4 and k.dim() == 4:
            ax = 2 if layout == "bhsd" else 1
            _blockmask.check_lengths(block_mask, q.shape[ax], k.shape[ax])
    fp8 = None if q_descale is None and k_descale is None and v_descale is None and out_dtype is None and \
        getattr(q, "dtype", None) in _DTYPES else _fp8.options(q, (q_descale, k_descale, v_descale), out_dtype)
    if fp8 is not None:
        _refuse_fp8(q, k, v, mods, block_mask, (cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, seqused_k))
    if any(x is not None for x in (cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, seqused_k)):
        from . import _inference
        return _inference.varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, seqused_k,
                                 causal=causal, scale=scale, return_lse=return_lse, out=out, layout=layout,
                                 block_mask=block_mask, deterministic=deterministic, mods=mods)
    if mods.score is not None and _compiling():
        raise NotImplementedError("flashgen.attention: score_mod is not traced by torch.compile yet: call it outside "
                                  "torch.compile (eager calls differentiate it)")
    if mods.score is not None and _needs_grad(q, k, v, mods.alibi_slopes, mods.sinks):
        if block_mask is not None:
            mods.refuse("with a block_mask are not supported yet")
        return _autograd.score_mod_with_grad(q, k, v, causal, scale, return_lse, layout, out, deterministic, mods)
    if _compiling() or _needs_grad(q, k, v, mods.alibi_slopes, mods.sinks):
        return _autograd.attention_with_grad(q, k, v, causal, scale, block_mask, return_lse, layout, out, deterministic,
                                             mods)
    # Fast path: a call whose tensor metadata and options were seen before
    # reuses the validated descriptor (host time per call: bench/host_overhead.py).
    key = None
    if block_mask is None and not mods.used and type(q) is torch.Tensor and type(k) is torch.Tensor and type(v) is torch.Tensor \
            and (out is None or type(out) is torch.Tensor):
        key = (q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(), q.dtype, k.dtype, v.dtype, q.device, k.device,
               v.device, causal if isinstance(causal, (bool, str)) or causal is None else id(causal), scale, layout,
               return_lse, None if out is None else (out.shape, out.stride(), out.dtype, out.device),
               None if fp8 is None else fp8.key)
        hit = _desc_cache.get(key)
        if hit is not None:
            desc, index, lse_shape, o_shape, o_dtype, b_hk, extents = hit
            if out is not None:  # the extents are the key's; the addresses are this call's
                _apart_by_extent(out, extents, q=q, k=k, v=v)
            if fp8 is not None:  # this call's descales, on a copy (another thread may use the cached one)
                fp8.check_tensors(*b_hk, q.device)
                desc = type(desc).from_buffer_copy(desc)
                fp8.apply(desc)
            o = out if out is not None else torch.empty(o_shape, dtype=o_dtype, device=q.device)
            lse = torch.empty(lse_shape, dtype=torch.float32, device=q.device) if return_lse else None
            return _launch(desc, index, q, k, v, o, lse, None, return_lse)

    dtypes = _DTYPES if fp8 is None else _FWD_DTYPES
    b, sq, sk, hq, hk, d, dv = _check_inputs(q, k, v, layout, dtypes)
    if fp8 is not None:
        _fp8.check_shapes(d, dv, {n: _strides(t, layout) for n, t in (("q", q), ("k", k), ("v", v))})
    o_shape, o_dtype = _out_shape(q, v), q.dtype if fp8 is None else fp8.out_dtype
    _causal_mode(causal, sq, sk)
    _scale_value(scale)
    if block_mask is not None and not isinstance(block_mask, _pattern.Pattern):
        _blockmask.check(block_mask)
    if block_mask is not None:
        mods.refuse("with a block_mask are not supported yet")
    _check_device(q=q, k=k, v=v)
    mods.check_tensors(b, hq, q.device)
    if fp8 is not None:
        fp8.check_tensors(b, hk, q.device)
    o = _check_out(out, q, o_shape, o_dtype) if out is not None else torch.empty(o_shape, dtype=o_dtype, device=q.device)
    if out is not None:
        _check_out_apart(out, q=q, k=k, v=v)
    lse = torch.empty((b, hq, sq), dtype=torch.float32, device=q.device) if return_lse else None
    if o.numel() == 0 or sk == 0:  # nothing to launch; an empty key set gives o = 0, lse = -inf
        o.zero_()
        if lse is not None:
            mods.empty_lse(lse)
        return (o, lse) if return_lse else o

    index = q.device.index if q.device.index is not None else torch.cuda.current_device()
    desc = _describe(q, k, v, o, causal, scale, layout, dtypes)
    mods.apply(desc)
    if mods.score is not None:
        desc.score = mods.score.handle(index)  # made once per device; the Score keeps its tables alive
    if fp8 is not None:
        fp8.apply(desc)
    if key is not None and (out is not None or o.is_contiguous()):
        # out's strides are in the key; a new o of a later call is contiguous too
        if len(_desc_cache) >= 64:
            _desc_cache.clear()
        extents = {n: _byte_extent(t) for n, t in (("out", out), ("q", q), ("k", k), ("v", v)) if t is not None}
        _desc_cache[key] = (desc, index, (b, hq, sq), o_shape, o_dtype, (b, hk), extents)
    return _launch(desc, index, q, k, v, o, lse, block_mask, return_lse)


_desc_cache = {}


def _unaligned_head_dims(q, k, v):
    """Whether a 16-bit call's head dims (1..256) are not multiples of 8,
    which the kernels need (16-byte rows): _padded takes those."""
    try:  # the common case first, in two attribute reads: this runs on every call's host path
        d, dv = q.shape[-1], v.shape[-1]
        if not (d % 8 or dv % 8):
            return False
    except (AttributeError, IndexError, TypeError):  # not tensors, or 0-D: attention's checks say what is wrong
        return False
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)) or q.dtype not in _DTYPES or q.dim() < 3 or \
            k.dim() < 3 or v.dim() < 3:
        return False
    return k.shape[-1] == d and 0 < d <= 256 and 0 < dv <= 256


def _padded(q, k, v, *, scale, out, return_lse, **kw):
    """attention() for head dims that are not multiples of 8 (FlashAttention's
    tests use 59 and 111): q and k zero-padded to the next multiple of 8
    (q k^T is unchanged), v too (o's extra columns are dropped), the scale
    kept at 1/sqrt(the caller's head dim).  Costs a copy of q, k, v and o;
    differentiable (the pads and the slice are torch ops)."""
    d, dv = q.shape[-1], v.shape[-1]
    pd, pdv = -d % 8, -dv % 8
    if out is not None:
        if _needs_grad(q, k, v, kw.get("sinks")):  # as the unpadded call says (_autograd._grad_options)
            raise RuntimeError("out= cannot be used when q, k, v or sinks require grad (autograd needs its own output)")
        _check_out(out, q, tuple(q.shape[:-1]) + (dv,))  # q's shape with v's last dim (4-D, or packed 3-D)
    r = attention(_pad_head(q, pd), _pad_head(k, pd), _pad_head(v, pdv), scale=d ** -0.5 if scale is None else scale,
                  return_lse=return_lse, **kw)
    return _unpadded(r, return_lse, dv, out)


def _pad_head(t, n):
    """t zero-padded by n columns in its last dim (t itself for n = 0 or None)."""
    return F.pad(t, (0, n)) if n and t is not None else t


def _unpadded(r, return_lse, dv, out):
    """A padded call's result, o cut back to dv columns: into out, else a new contiguous tensor."""
    o, lse = r if return_lse else (r, None)
    o = o[..., :dv]
    if out is not None:
        out.copy_(o)
        o = out
    else:
        o = o.contiguous()
    return (o, lse) if return_lse else o


def _scale_alias(scale, softmax_scale):
    """scale=, or FlashAttention's name for it, softmax_scale= (not both)."""
    if softmax_scale is None:
        return scale
    if scale is not None:
        raise TypeError("give scale= or softmax_scale= (FlashAttention's name for it), not both")
    return softmax_scale


def _needs_grad(*tensors):
    """Whether grad mode is on and a tensor among them (None allowed) requires grad."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _refuse_fp8(q, k, v, mods, block_mask, varlen):
    """NotImplementedError for what the FP8 forward does not take (runtime/fp8.c refuses them too)."""
    if mods.used:
        _fp8.refuse(f"take no score modifications ({', '.join(mods.names())}) yet")
    if any(x is not None for x in varlen):
        _fp8.refuse("take no variable lengths (cu_seqlens_q/k, max_seqlen_q/k, seqused_k) yet")
    if block_mask is not None:
        _fp8.refuse("are dense only: no block_mask yet")
    if _compiling() or _needs_grad(q, k, v):
        _fp8.refuse("have no backward (and no torch.compile operator): call under torch.no_grad() or detach q, k "
                    "and v")


def _scale_value(scale):
    if scale is None:
        return 0.0  # the library's default, 1/sqrt(head_dim)
    v = float(scale)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"scale must be positive and finite, not {scale}")
    return v


def _describe(q, k, v, o, causal, scale, layout, dtypes=_DTYPES):
    """The fg_attention_desc of checked tensors (the forward's and the backward's)."""
    b, sq, sk, hq, hk, d, dv = _check_inputs(q, k, v, layout, dtypes)
    return _new_desc(q.dtype, (b, hq, hk, sq, sk, d, dv), [_strides(t, layout) for t in (q, k, v, o)],
                     _causal_mode(causal, sq, sk), _scale_value(scale))


def _c_int(name, x):
    """x for a C int field of the descriptor: ctypes would wrap 2^32 + 64 to
    64 without a word, and the library would then see a smaller tensor."""
    if not -2 ** 31 <= x < 2 ** 31:
        raise ValueError(f"{name} = {x} does not fit the library's 32-bit int")
    return x


def _new_desc(dtype, sizes, strides, causal_mode, scale_value):
    """An fg_attention_desc: sizes (batch, heads_q, heads_kv, seqlen_q,
    seqlen_k, head_dim, head_dim_v), strides of q, k, v and o."""
    b, hq, hk, sq, sk, d, dv = [_c_int(n, x) for n, x in zip(
        ("batch", "heads_q", "heads_kv", "seqlen_q", "seqlen_k", "head_dim", "head_dim_v"), sizes)]
    desc = _lib.fg_attention_desc()
    _lib.load().fg_attention_desc_init(C.byref(desc), _FWD_DTYPES[dtype], d, b, hq, hk, sq, sk)
    desc.head_dim_v = dv  # the strides below are v's and o's own
    desc.q_strides[:], desc.k_strides[:], desc.v_strides[:], desc.o_strides[:] = strides
    desc.softmax_scale = scale_value
    desc.causal = causal_mode
    return desc


@contextlib.contextmanager
def _with_layout(desc, block_mask, index):
    """desc.layout is block_mask's device layout inside the block (the
    forward's and the backward's call; None: dense)."""
    if block_mask is None:
        yield
    elif isinstance(block_mask, _pattern.Pattern):
        # the layout of this size carries the pattern's element mask; kept by
        # the pattern, whose lock (re-entrant) is held through the launch so
        # that another thread's new size cannot evict and free it in between
        with block_mask._lock:
            desc.layout = block_mask._device_layout(index, desc.batch, desc.heads_q, desc.seqlen_q, desc.seqlen_k)
            try:
                yield
            finally:
                desc.layout = None
    else:
        with _blockmask.lock:
            desc.layout = _blockmask.layout(block_mask, desc.seqlen_q, desc.seqlen_k, index)
            try:
                yield
            finally:
                desc.layout = None


def _launch(desc, index, q, k, v, o, lse, block_mask, return_lse):
    lib = _lib.load()
    stream = torch.cuda.current_stream(q.device).cuda_stream
    with _device.current(index):
        ctx = _device.context(index)
        with _with_layout(desc, block_mask, index):
            st = lib.fg_attention_forward(ctx, C.byref(desc), q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
                                          lse.data_ptr() if lse is not None else None, stream)
        _lib.check(ctx, "fg_attention_forward", st)
    return (o, lse) if return_lse else o
