"""flashgen.attention as PyTorch operators (torch.library.custom_op), so that
autograd differentiates it and torch.compile traces a model that calls it
into one graph, without a graph break:

  flashgen::attention(q, k, v, ...) -> (o, lse)                  the forward
  flashgen::attention_backward(q, k, v, o, lse, do, ...) -> (dq, dk, dv)
                                 (and d loss / d sinks into its dsinks argument)

Each has a fake (meta) implementation that gives the outputs' shapes,
dtypes and strides without running anything (what torch.compile traces
with), and the forward's gradient formula (register_autograd) calls the
backward operator, so the backward is one opaque node of the compiled
backward graph too.  attention() calls the forward operator when gradients
are needed and under torch.compile; a call without gradients in eager mode
skips it (host time: the operator dispatch costs more than the launch).

A block mask is a Python object, and an operator's arguments can only be
tensors, numbers, strings and lists of them, so it crosses as:
- a FlexAttention BlockMask or a flashgen.BlockLayout: its four tensors
  (kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices) and its
  two block sizes; the operator rebuilds a BlockLayout of the same tensors
  (so the layout cache of flashgen._blockmask still hits);
- a flashgen.Pattern: its number.  Each Pattern is numbered when it is
  made (flashgen._pattern.by_number finds it; held weakly).  In eager mode
  autograd keeps the pattern alive until the backward has run; under
  torch.compile the compiled graphs hold only the number, so the pattern
  must outlive the backward (keep it on the module, as a model does): a
  backward whose pattern was freed raises RuntimeError.

The score modifications (softcap, alibi_slopes, window, sinks) are trailing
arguments of both operators.  The forward's have defaults that mean none (so
graphs traced before them still match).  The sinks' gradient is written into
the backward operator's `dsinks` argument (declared mutated, None when not
wanted), so that its outputs stay (dq, dk, dv); the backward's arguments have
no defaults: the dispatcher drops trailing arguments equal to their defaults,
and torch <= 2.11's in-place bookkeeping then indexes past the end for a
mutated argument left out (IndexError).  alibi_slopes get no gradient (attention()
refuses slopes that require grad).

Needs torch >= 2.4 (torch.library.custom_op); importing this module with
an older torch raises ImportError saying so (attention() without gradients
does not import it).
"""
from typing import Optional, Tuple

import torch

from . import _autograd, _blockmask, _lib, _scores
from . import _pattern as patterns
from ._blockmask import BlockLayout

if not hasattr(torch.library, "register_autograd"):
    raise ImportError(f"flashgen's gradients and torch.compile support need torch >= 2.4 (torch.library.custom_op); "
                      f"this is torch {torch.__version__}")

Tensor = torch.Tensor
_CAUSAL_NAMES = {_lib.FG_CAUSAL_NONE: "none", _lib.FG_CAUSAL_BOTTOM_RIGHT: "bottom_right",
                 _lib.FG_CAUSAL_TOP_LEFT: "top_left"}


def _mask(kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, block_q, block_k, pattern):
    """The block_mask of the library calls from the operators' arguments."""
    if pattern:
        return patterns.by_number(pattern)
    if kv_num_blocks is None:
        return None
    return BlockLayout(kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, block_size=(block_q, block_k))


def _mask_args(block_mask):
    """(kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices,
    block_q, block_k, pattern number) of a checked block_mask (or None)."""
    if block_mask is None:
        return None, None, None, None, 0, 0, 0
    if isinstance(block_mask, patterns.Pattern):
        return None, None, None, None, block_mask.block_q, block_mask.block_k, block_mask._number
    num, idx, fnum, fidx, bq, bk = _blockmask.check(block_mask)
    return num, idx, fnum, fidx, bq, bk, 0


def _mods(softcap, alibi_slopes, window_left, window_right, sinks):
    """The score modifications of the operators' arguments (_scores.NONE: none)."""
    if not softcap and alibi_slopes is None and (window_left, window_right) == (-1, -1) and sinks is None:
        return _scores.NONE
    return _scores.Scores(softcap, alibi_slopes, (window_left, window_right), sinks)


def _forward(q, k, v, causal, scale, layout, block_mask, mods=_scores.NONE):
    """(o, lse) from the library (the forward operator's body)."""
    from ._attention import attention
    kw = {} if not mods.used else dict(softcap=mods.softcap, alibi_slopes=mods.alibi_slopes, window_size=mods.window,
                                       sinks=mods.sinks)
    with torch.no_grad():  # attention() itself, not this operator again
        return attention(q, k, v, causal=causal, scale=scale, layout=layout, block_mask=block_mask, return_lse=True,
                         **kw)


def _backward(q, k, v, o, lse, dout, causal, scale, layout, deterministic, block_mask, mods=_scores.NONE, dsinks=None):
    """(dq, dk, dv) from the library (the backward operator's body); d loss /
    d sinks into dsinks when given."""
    return _autograd.attention_backward(q, k, v, o, lse, dout, causal=causal, scale=scale, layout=layout,
                                        deterministic=deterministic, block_mask=block_mask, mods=mods, dsinks=dsinks)


@torch.library.custom_op("flashgen::attention", mutates_args=())
def attention_op(q: Tensor, k: Tensor, v: Tensor, causal: str, scale: Optional[float], layout: str,
                 deterministic: bool, kv_num_blocks: Optional[Tensor], kv_indices: Optional[Tensor],
                 full_kv_num_blocks: Optional[Tensor], full_kv_indices: Optional[Tensor], block_q: int, block_k: int,
                 pattern: int, softcap: float = 0.0, alibi_slopes: Optional[Tensor] = None, window_left: int = -1,
                 window_right: int = -1, sinks: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """(o, lse) of flashgen.attention; `deterministic` is the backward's.
    causal: 'none', 'bottom_right' or 'top_left'; the block mask as the
    module docstring says (no tensors and pattern 0: dense); the score
    modifications as attention()'s arguments (window_size split in two)."""
    mask = _mask(kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, block_q, block_k, pattern)
    return _forward(q, k, v, causal, scale, layout, mask, _mods(softcap, alibi_slopes, window_left, window_right, sinks))


@attention_op.register_fake
def _attention_fake(q, k, v, causal, scale, layout, deterministic, kv_num_blocks, kv_indices, full_kv_num_blocks,
                    full_kv_indices, block_q, block_k, pattern, softcap=0.0, alibi_slopes=None, window_left=-1,
                    window_right=-1, sinks=None):
    from ._attention import _check_inputs, _out_shape
    b, sq, sk, hq, hk, d, dv = _check_inputs(q, k, v, layout)
    return q.new_empty(_out_shape(q, v)), q.new_empty((b, hq, sq), dtype=torch.float32)


@torch.library.custom_op("flashgen::attention_backward", mutates_args=("dsinks",))
def attention_backward_op(q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, dout: Tensor, causal: str,
                          scale: Optional[float], layout: str, deterministic: bool, kv_num_blocks: Optional[Tensor],
                          kv_indices: Optional[Tensor], full_kv_num_blocks: Optional[Tensor],
                          full_kv_indices: Optional[Tensor], block_q: int, block_k: int,
                          pattern: int, softcap: float, alibi_slopes: Optional[Tensor], window_left: int,
                          window_right: int, sinks: Optional[Tensor],
                          dsinks: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv) of flashgen::attention for dout = dL/do: new tensors
    shaped like q, k and v (contiguous); with sinks and dsinks (fp32 like
    sinks), d loss / d sinks is written into dsinks."""
    mask = _mask(kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, block_q, block_k, pattern)
    return _backward(q, k, v, o, lse, dout, causal, scale, layout, deterministic, mask,
                     _mods(softcap, alibi_slopes, window_left, window_right, sinks), dsinks)


@attention_backward_op.register_fake
def _attention_backward_fake(q, k, v, o, lse, dout, *args):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, causal, scale, layout, deterministic, num, idx, fnum, fidx, block_q, block_k, pattern = inputs[:14]
    softcap, slopes, window_left, window_right, sinks = inputs[14:] + (0.0, None, -1, -1, None)[len(inputs) - 14:]
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, num, idx, fnum, fidx, slopes, sinks)
    ctx.opts = (causal, scale, layout, deterministic, block_q, block_k, pattern)
    ctx.mod_opts = (softcap, window_left, window_right)
    # the pattern alive until the backward (eager mode; a traced number may be symbolic)
    ctx.pattern = patterns.by_number(pattern) if isinstance(pattern, int) and pattern else None
    ctx.mark_non_differentiable(lse)


def _attention_grad(ctx, dout, _dlse):
    q, k, v, o, lse, num, idx, fnum, fidx, slopes, sinks = ctx.saved_tensors
    causal, scale, layout, deterministic, block_q, block_k, pattern = ctx.opts
    softcap, window_left, window_right = ctx.mod_opts
    # One gradient per input the autograd node has: the dispatcher drops
    # trailing arguments equal to their defaults (a call without score
    # modifications has 14), while setup_context sees them filled in.
    n = len(ctx.needs_input_grad)
    # the sinks' gradient only where it is wanted (input 18 of flashgen::attention)
    dsinks = torch.empty_like(sinks) if sinks is not None and n > 18 and ctx.needs_input_grad[18] else None
    dq, dk, dv = attention_backward_op(q, k, v, o, lse, dout, causal, scale, layout, deterministic, num, idx, fnum,
                                       fidx, block_q, block_k, pattern, softcap, slopes, window_left, window_right,
                                       sinks, dsinks)
    return ((dq, dk, dv) + (None,) * 15 + (dsinks,))[:n]


attention_op.register_autograd(_attention_grad, setup_context=_setup_context)


def call(q, k, v, causal, scale, block_mask, layout, deterministic, mods=_scores.NONE):
    """(o, lse) through flashgen::attention, the arguments checked as
    attention() checks them (same exceptions, same messages) and turned
    into the operator's."""
    from ._attention import _causal_mode, _check_inputs, _scale_value
    b, sq, sk, hq, hk, d, dv = _check_inputs(q, k, v, layout)
    causal = _CAUSAL_NAMES[_causal_mode(causal, sq, sk)]
    scale = None if scale is None else _scale_value(scale)
    args = (q, k, v, causal, scale, layout, bool(deterministic)) + _mask_args(block_mask)
    if not mods.used:  # the operator's arguments as before the score modifications
        return attention_op(*args)
    if block_mask is not None:
        mods.refuse("with a block_mask are not supported yet")
    mods.check_tensors(b, hq, q.device)
    return attention_op(*args, mods.softcap, mods.alibi_slopes, mods.window[0], mods.window[1], mods.sinks)
