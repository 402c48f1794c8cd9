"""The forward's built-in score modifications (include/flashgen.h,
docs/SCORE-WIRING.md): softcap, ALiBi slopes, a local window and attention
sinks, checked here and set on the descriptor."""
import math

import torch


class Scores:
    """Checked score modifications of one call; .used is False when none is."""

    def __init__(self, softcap=None, alibi_slopes=None, window_size=None, sinks=None, score=None):
        self.softcap = _softcap(softcap)
        self.window = _window(window_size)
        self.alibi_slopes, self.sinks = alibi_slopes, sinks
        self.score = score  # a flashgen.Score (user expression) or None
        if score is not None and torch.is_grad_enabled():
            grads = sorted(n for n, t in score.sources.items() if isinstance(t, torch.Tensor) and t.requires_grad)
            if grads:  # its tables are read as constants: a learned bias would silently never train
                raise NotImplementedError(
                    f"flashgen.attention: score_mod table(s) {', '.join(grads)} require grad, and flashgen does not "
                    "differentiate score tables; detach them, or call under torch.no_grad()")
        self.used = self.softcap > 0 or self.window != (-1, -1) or alibi_slopes is not None or sinks is not None or \
            score is not None

    def names(self):
        """The modifications used, by their argument names."""
        return [n for n, on in (("softcap", self.softcap > 0), ("alibi_slopes", self.alibi_slopes is not None),
                                ("window_size", self.window != (-1, -1)), ("sinks", self.sinks is not None),
                                ("score_mod", self.score is not None)) if on]

    def check_tensors(self, batch, heads_q, device):
        if self.alibi_slopes is not None:
            _fp32_table("alibi_slopes", self.alibi_slopes, device, [(heads_q,), (batch, heads_q)])
        if self.sinks is not None:
            _fp32_table("sinks", self.sinks, device, [(heads_q,)])

    def apply(self, desc):
        """Sets desc's fields (the tensors must outlive the call)."""
        desc.softcap = self.softcap
        desc.window_left, desc.window_right = self.window
        if self.alibi_slopes is not None:
            desc.alibi_slopes = self.alibi_slopes.data_ptr()
            desc.alibi_batch_stride = desc.heads_q if self.alibi_slopes.dim() == 2 else 0
        if self.sinks is not None:
            desc.sinks = self.sinks.data_ptr()

    def key(self):
        """What a cached call plan depends on: the values, and the tensors'
        shapes, strides and devices (not their addresses: a cached plan
        skips check_tensors, so a strided view must not hit a contiguous
        tensor's entry)."""
        return (self.softcap, self.window, id(self.score)) + tuple(
            (tuple(t.shape), t.stride(), t.dtype, t.device) if isinstance(t, torch.Tensor) else t  # a non-tensor: refused later
            for t in (self.alibi_slopes, self.sinks))

    def tables(self):
        """The device arrays of a call, by descriptor field."""
        return {"alibi_slopes": self.alibi_slopes, "sinks": self.sinks}

    def empty_lse(self, lse):
        """lse of rows that see no key: the sink, or -inf.  lse is [batch,
        heads_q, seqlen_q] or (variable lengths) [heads_q, total_q]."""
        if self.sinks is None:
            lse.fill_(-math.inf)
        else:
            lse.copy_(self.sinks.view(-1, 1).expand_as(lse))

    def refuse(self, what):
        if self.used:
            raise NotImplementedError(f"flashgen.attention: {', '.join(self.names())} {what}")


def scores(softcap=None, alibi_slopes=None, window_size=None, sinks=None, score_mod=None):
    """The checked modifications of a call's arguments (NONE when all are
    None, so that a plain call's host time stays as it was); score_mod: a
    flashgen.Score or a function translate() takes."""
    if softcap is None and alibi_slopes is None and window_size is None and sinks is None and score_mod is None:
        return NONE
    from ._score_mod import as_score
    return Scores(softcap, alibi_slopes, window_size, sinks, as_score(score_mod))


def _softcap(x):
    if x is None:
        return 0.0
    v = float(x)
    if not (v >= 0 and v <= 2e38):  # the C library's bound (cap * log2 e is the softmax's float scale)
        raise ValueError(f"softcap must be 0 (off) or positive, at most 2e38, not {x}")
    return v


def _window(w):
    if w is None:
        return (-1, -1)
    try:
        left, right = w
    except (TypeError, ValueError):
        raise ValueError(f"window_size must be a pair (left, right), not {w!r}") from None
    for name, x in (("left", left), ("right", right)):
        if isinstance(x, bool) or not isinstance(x, int) or x < -1 or x >= 2 ** 31:
            raise ValueError(f"window_size {name} must be an int in -1 .. 2^31 - 1 (-1: unbounded), not {x!r}")
    return (left, right)


def _fp32_table(name, t, device, shapes):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
    if t.dtype != torch.float32:
        raise TypeError(f"{name} must be float32, not {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}; q is on {device}")
    if tuple(t.shape) not in shapes:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected " + " or ".join(str(list(s)) for s in shapes))
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


NONE = Scores()  # no modification (shared, never changed)
