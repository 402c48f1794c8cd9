"""flashgen.attention's gradients: fg_attention_backward (P recomputed from
the saved lse, never stored; the workspace comes from PyTorch's allocator),
the body of the flashgen::attention_backward operator that is the gradient
formula of flashgen::attention (flashgen._ops)."""
import ctypes as C
import warnings

import torch

from . import _device, _lib, _scores


def _grad_strides_ok(t):
    return t.stride(3) == 1 and all(s % 8 == 0 for s in t.stride()[:3]) and t.data_ptr() % 16 == 0


def attention_backward(q, k, v, o, lse, dout, *, causal, scale, layout, deterministic, block_mask=None,
                       mods=_scores.NONE, dsinks=None):
    """(dq, dk, dv) for o = attention(q, k, v, ...) and dout = dL/do.  The
    gradients are new tensors shaped like q, k and v (contiguous in the
    layout's order; v, o, dout and dv may have a value head dim of their
    own); with GQA/MQA dk and dv are summed over each group.  mods: the
    forward's score modifications (_scores.Scores); dsinks: fp32 like
    mods.sinks, overwritten with d loss / d sinks (None: not computed)."""
    from ._attention import _check_inputs, _describe, _strides, _with_layout
    b, sq, sk, hq, hk, d, dv_dim = _check_inputs(q, k, v, layout)
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
    if dsinks is not None and (mods.sinks is None or dsinks.shape != mods.sinks.shape or dsinks.dtype != torch.float32
                               or not dsinks.is_contiguous() or dsinks.device != q.device):
        raise ValueError("dsinks must be a contiguous float32 tensor shaped like sinks, on q's device")
    if q.numel() == 0 or sk == 0:
        if dsinks is not None:
            dsinks.zero_()  # no row, or rows that see no key: o = 0 whatever the sink
        return dq.zero_(), dk.zero_(), dv.zero_()
    if dout.dtype != q.dtype:
        dout = dout.to(q.dtype)
    if not _grad_strides_ok(dout):
        dout = dout.contiguous()
    desc = _describe(q, k, v, o, causal, scale, layout)
    desc.do_strides[:] = _strides(dout, layout)
    desc.dq_strides[:] = _strides(dq, layout)
    desc.dk_strides[:] = _strides(dk, layout)
    desc.dv_strides[:] = _strides(dv, layout)
    desc.deterministic = 1 if deterministic else 0
    mods.apply(desc)
    if dsinks is not None:
        desc.dsinks = dsinks.data_ptr()
    lib = _lib.load()
    index = q.device.index if q.device.index is not None else torch.cuda.current_device()
    if mods.score is not None:  # differentiated through its derivative (gen/score_deriv.c)
        desc.score = mods.score.handle(index)
    stream = torch.cuda.current_stream(q.device).cuda_stream
    with _device.current(index):
        ctx = _device.context(index)
        nbytes = C.c_size_t(0)
        _lib.check(ctx, "fg_attention_backward_workspace", lib.fg_attention_backward_workspace(ctx, C.byref(desc), C.byref(nbytes)))
        ws = torch.empty(nbytes.value, dtype=torch.uint8, device=q.device)
        with _with_layout(desc, block_mask, index):
            st = lib.fg_attention_backward(ctx, C.byref(desc), q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(),
                                           dout.data_ptr(), lse.data_ptr(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                                           ws.data_ptr(), nbytes.value, stream)
        _lib.check(ctx, "fg_attention_backward", st)
    return dq, dk, dv


def _grad_options(q, k, v, block_mask, out, deterministic, mods):
    """The checks of a call with gradients (out=, alibi_slopes, what the
    deterministic mode cannot do) and its deterministic flag: the caller's,
    else torch.are_deterministic_algorithms_enabled() (warn-only mode warns
    and gives up where the backward sums with atomics)."""
    from ._attention import _needs_grad
    if out is not None and _needs_grad(q, k, v, mods.sinks):
        raise RuntimeError("out= cannot be used when q, k, v or sinks require grad (autograd needs its own output)")
    if _needs_grad(mods.alibi_slopes):
        raise NotImplementedError("flashgen.attention: alibi_slopes get no gradient: pass them detached")
    sink_grad = _needs_grad(mods.sinks)
    if not _needs_grad(q, k, v, mods.sinks):
        # no backward will run (torch.compile traces inference calls through
        # this operator too): as in eager, the flag changes nothing
        return bool(deterministic)
    if deterministic is None:
        deterministic = torch.are_deterministic_algorithms_enabled()
        if deterministic and block_mask is not None and torch.is_deterministic_algorithms_warn_only_enabled():
            warnings.warn("flashgen's block-sparse backward is not deterministic (dq is summed with atomics)")
            deterministic = False
        if deterministic and sink_grad and torch.is_deterministic_algorithms_warn_only_enabled():
            warnings.warn("flashgen's gradient of sinks is not deterministic (summed with atomics)")
            deterministic = False
    if deterministic and block_mask is not None:
        raise ValueError("deterministic=True is dense only: the block-sparse backward sums dq with atomics")
    if deterministic and sink_grad:
        raise ValueError("deterministic=True cannot give the gradient of sinks (summed with atomics): detach sinks")
    return bool(deterministic)


class _ScoreModAttention(torch.autograd.Function):
    """attention() with a user score expression (score_mod=), eager: the
    forward and fg_attention_backward with the expression's derivative;
    the sinks' gradient too when they require it."""

    @staticmethod
    def forward(ctx, q, k, v, sinks, opts):
        from ._attention import attention
        causal, scale, layout, deterministic, mods = opts
        with torch.no_grad():
            o, lse = attention(q, k, v, causal=causal, scale=scale, layout=layout, return_lse=True, softcap=mods.softcap,
                               alibi_slopes=mods.alibi_slopes, window_size=mods.window, sinks=sinks, score_mod=mods.score)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.opts = opts
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        causal, scale, layout, deterministic, mods = ctx.opts
        dsinks = torch.empty_like(mods.sinks) if mods.sinks is not None and ctx.needs_input_grad[3] else None
        dq, dk, dv = attention_backward(q, k, v, o, lse, dout, causal=causal, scale=scale, layout=layout,
                                        deterministic=deterministic, mods=mods, dsinks=dsinks)
        return dq, dk, dv, dsinks, None


def score_mod_with_grad(q, k, v, causal, scale, return_lse, layout, out, deterministic, mods):
    """attention() with score_mod= when q, k, v or the sinks require grad
    (eager; torch.compile is refused by the caller)."""
    deterministic = _grad_options(q, k, v, None, out, deterministic, mods)
    o, lse = _ScoreModAttention.apply(q, k, v, mods.sinks, (causal, scale, layout, deterministic, mods))
    return (o, lse) if return_lse else o


def attention_with_grad(q, k, v, causal, scale, block_mask, return_lse, layout, out, deterministic, mods=_scores.NONE):
    """attention() through the flashgen::attention operator (flashgen._ops),
    whose gradient formula calls attention_backward: when q, k, v (or the
    sinks) require grad, and under torch.compile (where out= is written by
    a copy)."""
    from . import _ops
    deterministic = _grad_options(q, k, v, block_mask, out, deterministic, mods)
    o, lse = _ops.call(q, k, v, causal, scale, block_mask, layout, deterministic, mods)
    if out is not None:
        from ._attention import _check_out
        o = _check_out(out, q, tuple(o.shape)).copy_(o)
    return (o, lse) if return_lse else o
