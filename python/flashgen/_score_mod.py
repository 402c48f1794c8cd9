"""FlexAttention-style score_mod functions translated into flashgen's score
language (docs/SCORES.md), where they can be.

    def rel_bias(score, b, h, q_idx, kv_idx):
        return score + bias[h, (kv_idx - q_idx).clamp(-63, 63) + 63]

    expr = translate(rel_bias)
    expr.text    # 'score + bias[h * 127 + min(max(kv_idx - q_idx, -63), 63) + 63]' (parenthesised)
    expr.tables  # {'bias': the captured tensor, flattened to float32}

The function is called once, on stand-ins for its five arguments: each
operation on them records its expression instead of computing.  Tensors
the function captures (closure cells and globals it names) become tables,
indexed row-major; Python numbers it captures become named constants (read
at run time, so one kernel serves every value).  What the language has no
form for is refused with a TranslationError that names it: Python control
flow on a traced value (`if score > 0:` -- write torch.where), `//` and `%`
(Python floors, the language truncates), tensor operations other than the
element-wise ones below, and float16/bfloat16/int64 tables whose values a
float32/int32 copy would change.

Element-wise operations understood: + - * / unary -, abs, comparisons,
& | ~ on conditions, torch.where, torch.minimum / maximum / clamp (and the
methods), tanh, exp2, exp, log2, log, sigmoid, sin, cos, tan; float
literals and captured floats may be +-inf (where(cond, score, -inf) masks).
"""
import collections
import ctypes as C
import math
import threading
import types

import torch

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
ARGS = ("score", "b", "h", "q_idx", "kv_idx")


class TranslationError(ValueError):
    """The score_mod function uses something the score language cannot express."""


def _lit(x):
    if isinstance(x, bool):
        return _E("1" if x else "0", "i")
    if isinstance(x, int):
        if abs(x) >= 1 << 62:
            raise TranslationError(f"the integer {x} is past the language's 2^62")
        return _E(str(x) if x >= 0 else f"(-{-x})", "i")
    if isinstance(x, float):
        if math.isnan(x):
            raise TranslationError("the float literal nan (the language has no NaN)")
        if math.isinf(x):  # the language's inf: where(cond, score, -inf) masks, as FlexAttention's score_mods do
            return _E("inf" if x > 0 else "(-inf)", "f")
        t = repr(x).replace("e+", "e")  # the language's exponent has no '+'
        if "e" not in t and "." not in t:
            t += ".0"
        return _E(t if x >= 0 else f"(-{t[1:]})", "f")
    if isinstance(x, _E):
        return x
    raise TranslationError(f"a value of type {type(x).__name__} in the score_mod (numbers and the five arguments only)")


def _kind(*es):
    return "f" if any(e.k == "f" for e in es) else "i"


class _E:
    """An expression of the score language under construction: text and
    type ('f' float, 'i' integer)."""

    __slots__ = ("t", "k")

    def __init__(self, t, k):
        self.t, self.k = t, k

    # arithmetic
    def _bin(self, op, other, rev=False):
        o = _lit(other)
        a, b = (o, self) if rev else (self, o)
        return _E(f"({a.t} {op} {b.t})", _kind(a, b))

    def __add__(self, o): return self._bin("+", o)
    def __radd__(self, o): return self._bin("+", o, True)
    def __sub__(self, o): return self._bin("-", o)
    def __rsub__(self, o): return self._bin("-", o, True)
    def __mul__(self, o): return self._bin("*", o)
    def __rmul__(self, o): return self._bin("*", o, True)

    def __truediv__(self, o):
        a, b = self, _lit(o)
        if a.k == "i" and b.k == "i":  # Python's true division of integers is a float
            return _E(f"({a.t} / ({b.t} + 0.0))", "f")
        return _E(f"({a.t} / {b.t})", "f")

    def __rtruediv__(self, o):
        return _lit(o).__truediv__(self)

    def __floordiv__(self, o):
        raise TranslationError("'//' floors in Python and truncates in the score language; write the index "
                               "arithmetic so both agree, or give flashgen.Score the expression text")

    __rfloordiv__ = __floordiv__

    def __mod__(self, o):
        raise TranslationError("'%' takes the divisor's sign in Python and the dividend's in the score language; "
                               "give flashgen.Score the expression text")

    __rmod__ = __mod__

    def __neg__(self):
        return _E(f"(-{self.t})", self.k)

    def __pos__(self):
        return self

    def __abs__(self):
        return _E(f"abs({self.t})", self.k)

    # comparisons: integer 0 / 1
    def _cmp(self, op, o):
        return _E(f"({self.t} {op} {_lit(o).t})", "i")

    def __lt__(self, o): return self._cmp("<", o)
    def __le__(self, o): return self._cmp("<=", o)
    def __gt__(self, o): return self._cmp(">", o)
    def __ge__(self, o): return self._cmp(">=", o)
    def __eq__(self, o): return self._cmp("==", o)
    def __ne__(self, o): return self._cmp("!=", o)
    __hash__ = None

    # conditions
    def __and__(self, o): return _E(f"({self.t} && {_lit(o).t})", "i")
    def __rand__(self, o): return _E(f"({_lit(o).t} && {self.t})", "i")
    def __or__(self, o): return _E(f"({self.t} || {_lit(o).t})", "i")
    def __ror__(self, o): return _E(f"({_lit(o).t} || {self.t})", "i")
    def __invert__(self): return _E(f"(!{self.t})", "i")

    def __bool__(self):
        raise TranslationError("Python control flow on a traced value (if / and / or / not / a chained comparison "
                               "on score, b, h, q_idx or kv_idx): use torch.where, & and |")

    def __index__(self):
        raise TranslationError("a traced value used as a Python index or size: index captured tensors with it "
                               "instead (bias[h, kv_idx])")

    # tensor-style methods
    def abs(self): return abs(self)
    def tanh(self): return _fn1("tanh", self)
    def exp2(self): return _fn1("exp2", self)
    def log2(self): return _fn1("log2", self)
    def exp(self): return _fn1("exp2", _float(self) * _LOG2E)
    def log(self): return _fn1("log2", self) * _LN2
    def sigmoid(self): return 1.0 / (1.0 + _fn1("exp2", -(_float(self) * _LOG2E)))
    def sin(self): return _fn1("sin", self)
    def cos(self): return _fn1("cos", self)
    def tan(self): return _fn1("tan", self)

    def clamp(self, min=None, max=None):
        r = self
        if min is not None:
            r = _fn2("max", r, min)
        if max is not None:
            r = _fn2("min", r, max)
        return r

    clip = clamp

    def float(self): return _float(self)
    def to(self, *a, **kw): return self  # dtype changes: the language converts where an operand is float

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        f = _TORCH.get(func)
        if f is None:
            name = getattr(func, "__name__", repr(func))
            raise TranslationError(f"torch.{name} on a traced value: the score language has no form for it")
        return f(*args, **kwargs)


def _float(e):
    e = _lit(e)
    return e if e.k == "f" else _E(f"({e.t} + 0.0)", "f")


def _fn1(name, x):
    return _E(f"{name}({_float(x).t})", "f")


def _fn2(name, x, y):
    a, b = _lit(x), _lit(y)
    return _E(f"{name}({a.t}, {b.t})", _kind(a, b))


def _where(c, x, y):
    c, a, b = _lit(c), _lit(x), _lit(y)
    return _E(f"where({c.t}, {a.t}, {b.t})", _kind(a, b))


def _clamp(x, min=None, max=None):
    return _lit(x).clamp(min, max)


_TORCH = {
    torch.where: _where, torch.minimum: lambda x, y: _fn2("min", x, y), torch.maximum: lambda x, y: _fn2("max", x, y),
    torch.min: lambda x, y: _fn2("min", x, y), torch.max: lambda x, y: _fn2("max", x, y),
    torch.clamp: _clamp, torch.clip: _clamp, torch.abs: abs, torch.tanh: lambda x: _fn1("tanh", x),
    torch.exp2: lambda x: _fn1("exp2", x), torch.log2: lambda x: _fn1("log2", x),
    torch.exp: lambda x: _lit(x).exp(), torch.log: lambda x: _lit(x).log(), torch.sigmoid: lambda x: _lit(x).sigmoid(),
    torch.sin: lambda x: _fn1("sin", x), torch.cos: lambda x: _fn1("cos", x), torch.tan: lambda x: _fn1("tan", x),
    torch.add: lambda x, y: _lit(x) + y, torch.sub: lambda x, y: _lit(x) - y, torch.mul: lambda x, y: _lit(x) * y,
    torch.div: lambda x, y: _lit(x) / y, torch.neg: lambda x: -_lit(x),
    torch.Tensor.__add__: lambda x, y: _lit(y).__radd__(x), torch.Tensor.__radd__: lambda x, y: _lit(y).__add__(x),
    torch.Tensor.__sub__: lambda x, y: _lit(y).__rsub__(x), torch.Tensor.__rsub__: lambda x, y: _lit(y).__sub__(x),
    torch.Tensor.__mul__: lambda x, y: _lit(y).__rmul__(x), torch.Tensor.__rmul__: lambda x, y: _lit(y).__mul__(x),
}


class _Table:
    """A captured tensor standing in during the trace: indexing records a
    row-major read of table `name`."""

    def __init__(self, name, tensor):
        if not isinstance(tensor, torch.Tensor):
            raise TranslationError(f"{name}: not a tensor")
        self.name, self.shape, self.source = name, tuple(tensor.shape), tensor
        # the element type the table will have (_table_data converts it when
        # a Score is made: as_score translates every call, and that copy, and
        # int64's range check with its host sync, happen only for a new Score)
        self.kind = "i" if _table_kind(name, tensor) == torch.int32 else "f"

    def __getitem__(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        shape = self.shape or (1,)
        if len(idx) != len(shape):
            raise TranslationError(f"{self.name} has {len(shape)} dimension(s), indexed with {len(idx)}")
        flat, stride = None, 1
        for i, n in reversed(list(zip(idx, shape))):
            if isinstance(i, slice) or i is None or i is Ellipsis:
                raise TranslationError(f"{self.name}: slices and new axes are not element reads")
            e = _lit(i)
            if e.k != "i":
                raise TranslationError(f"{self.name}: a float index ({e.t})")
            term = e if stride == 1 else e * stride
            flat = term if flat is None else term + flat
            stride *= n
        return _E(f"{self.name}[{flat.t}]", self.kind)

    @classmethod
    def __torch_function__(cls, func, types_, args=(), kwargs=None):
        name = getattr(func, "__name__", repr(func))
        raise TranslationError(f"torch.{name} on a captured tensor: it is read element by element (name[index]) only")

    def __getattr__(self, attr):
        raise TranslationError(f"{self.name}.{attr}: a captured tensor is read element by element (name[index]) only")


def _table_kind(name, t):
    """The dtype _table_data gives t (int32 or float32); TranslationError for
    a size or dtype no table takes."""
    if t.numel() < 1 or t.numel() >= 1 << 31:
        raise TranslationError(f"{name}: a table holds 1 .. 2^31 - 1 elements, not {t.numel()}")
    if t.dtype in (torch.int32, torch.int8, torch.int16, torch.uint8, torch.bool, torch.int64):
        return torch.int32
    if t.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    raise TranslationError(f"{name}: dtype {t.dtype} (int32 or float32 tables; int8/16, int64 in range, "
                           "float16 and bfloat16 are converted)")


def _table_data(name, t):
    """t as a flat contiguous int32 or float32 tensor on its device, when
    that copy keeps its values."""
    if t.numel() < 1 or t.numel() >= 1 << 31:
        raise TranslationError(f"{name}: a table holds 1 .. 2^31 - 1 elements, not {t.numel()}")
    flat = t.detach().reshape(-1)
    if t.dtype in (torch.int32, torch.float32):
        return flat.contiguous()
    if t.dtype in (torch.int8, torch.int16, torch.uint8, torch.bool):
        return flat.to(torch.int32)
    if t.dtype == torch.int64:
        if flat.numel() and (flat.min() < -2 ** 31 or flat.max() >= 2 ** 31):  # a host sync, at translation only
            raise TranslationError(f"{name}: int64 values past int32")
        return flat.to(torch.int32)
    if t.dtype in (torch.float16, torch.bfloat16):
        return flat.to(torch.float32)  # exact: both are subsets of float32
    raise TranslationError(f"{name}: dtype {t.dtype} (int32 or float32 tables; int8/16, int64 in range, "
                           "float16 and bfloat16 are converted)")


class Translated:
    """A translated score_mod: .text (the score language), .tables (name ->
    flat int32/float32 tensor, converted on first use), .consts (name -> int
    or float) and .sources (name -> the captured tensor a table is read
    from)."""

    def __init__(self, text, sources, consts):
        self.text, self.sources, self.consts = text, sources, consts
        self._tables = None

    @property
    def tables(self):
        if self._tables is None:
            self._tables = {n: _table_data(n, t) for n, t in self.sources.items()}
        return self._tables

    def __repr__(self):
        return f"Translated({self.text!r}, tables={sorted(self.tables)}, consts={self.consts})"


def translate(fn):
    """The score language form of fn(score, b, h, q_idx, kv_idx) (FlexAttention's
    score_mod signature); TranslationError where there is none."""
    tr = _trace(fn)
    tr.tables  # converted and checked now (int64 tables: their range)
    return tr


def _trace(fn):
    """translate() without converting the tables (as_score's key needs only
    the text, the constants and the captured tensors)."""
    if not callable(fn):
        raise TypeError(f"score_mod must be a function of (score, b, h, q_idx, kv_idx), not {type(fn).__name__}")
    code = getattr(fn, "__code__", None)
    if code is None:
        raise TranslationError("score_mod must be a Python function or lambda (its captured tensors are read from "
                               "its closure and globals)")
    tables, consts = {}, {}
    taken = set(code.co_freevars) | set(code.co_names)

    def stand_in(name, value):
        if name in _RESERVED:  # a Python name the language spells otherwise (sin, inf, ...): renamed in the text
            while name in _RESERVED or name in taken:
                name += "_"
            taken.add(name)
        if isinstance(value, torch.Tensor):
            tables[name] = _Table(name, value)
            return tables[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and math.isnan(value):
                raise TranslationError(f"{name} = nan: the language has no NaN")
            if isinstance(value, float) and math.isinf(value):
                return _lit(value)  # the language's inf, written into the text
            consts[name] = value
            return _E(name, "f" if isinstance(value, float) else "i")
        return value

    cells = None
    if fn.__closure__:
        cells = tuple(types.CellType(stand_in(n, c.cell_contents)) if _filled(c) else c
                      for n, c in zip(code.co_freevars, fn.__closure__))
    g = dict(fn.__globals__)
    for n in code.co_names:
        if n in g and isinstance(g[n], torch.Tensor):
            g[n] = stand_in(n, g[n])
    traced = types.FunctionType(code, g, fn.__name__, fn.__defaults__, cells)
    if code.co_argcount < 5 and not code.co_flags & 0x04:
        raise TranslationError(f"score_mod takes (score, b, h, q_idx, kv_idx); {fn.__name__} takes "
                               f"{code.co_argcount} argument(s)")
    out = _lit(traced(_E("score", "f"), _E("b", "i"), _E("h", "i"), _E("q_idx", "i"), _E("kv_idx", "i")))
    if out.k != "f":
        out = _float(out)
    used = {n: t.source for n, t in tables.items() if f"{n}[" in out.t}
    if len(used) > 8 or len(consts) > 16:
        raise TranslationError(f"{len(used)} tables and {len(consts)} constants (at most 8 and 16)")
    return Translated(out.t, used, {n: v for n, v in consts.items() if _names(out.t, n)})


# the language's variables, functions and inf: no table or constant takes these names (gen/score_expr.c)
_RESERVED = frozenset(ARGS + ("min", "max", "abs", "tanh", "exp2", "log2", "sin", "cos", "tan", "where", "inf"))


def _filled(cell):
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _names(text, name):
    import re
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_\[])", text) is not None


class Score:
    """A user score modification for flashgen.attention(score_mod=...): the
    score language's text (docs/SCORES.md) with its tables and constants, or
    a FlexAttention-style function translated by translate().

        Score("score + bias[h * 127 + min(max(kv_idx - q_idx, -63), 63) + 63]",
              tables={"bias": bias})            # int32 / float32, any shape (read flat)
        Score(lambda score, b, h, q_idx, kv_idx: score + bias[h, kv_idx % 1])  # TranslationError: '%'

    tables: name -> tensor (int32 or float32; others converted as translate()
    does), copied to the call's device once and kept alive here; consts:
    name -> int or float.  The expression is checked now (FlashgenError with
    the column of an error); .text is the library's canonical form."""

    def __init__(self, expr, tables=None, consts=None):
        expr_in = expr
        if callable(expr):
            tr = translate(expr)
            expr, tables, consts = tr.text, {**tr.tables, **(tables or {})}, {**tr.consts, **(consts or {})}
        if not isinstance(expr, str):
            raise TypeError(f"Score takes the expression text or a score_mod function, not {type(expr).__name__}")
        self._lock = threading.Lock()
        self.expr = expr
        self.tables = {str(n): _table_data(str(n), t) for n, t in (tables or {}).items()}
        # the caller's tensors (the tables above are detached copies or
        # views): whether one requires grad is read at each call (_scores.py)
        self.sources = {str(n): t for n, t in (tables or {}).items()}
        if callable(expr_in):
            self.sources.update(tr.sources)
        self.consts = {}
        for n, v in (consts or {}).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"constant {n} must be an int or a float, not {type(v).__name__}")
            self.consts[str(n)] = v
        self._handles = {}   # context -> (fg_score*, the tables it points to)
        from ._pattern import _host_ctx
        self.text = _lib().fg_score_text(self._handle(_host_ctx(), None)).decode()

    def _handle(self, ctx, device):
        """This score's fg_score in context ctx, its tables on device (None:
        where they are; host checks only)."""
        with self._lock:
            h = self._handles.get(ctx)
            if h is not None:
                return h[0]
            tabs = {n: t if device is None else t.to(device) for n, t in self.tables.items()}
            args = (_lib_mod().fg_score_arg * max(1, len(tabs) + len(self.consts)))()
            keep = []
            for i, (n, v) in enumerate(list(self.consts.items()) + list(tabs.items())):
                a = args[i]
                keep.append(n.encode())
                a.name = keep[-1]
                if isinstance(v, torch.Tensor):
                    a.kind = _lib_mod().FG_SCORE_TABLE_INT32 if v.dtype == torch.int32 else _lib_mod().FG_SCORE_TABLE_FLOAT
                    a.data, a.n = v.data_ptr(), v.numel()
                elif isinstance(v, int):
                    a.kind, a.i = _lib_mod().FG_SCORE_CONST_INT, v
                else:
                    a.kind, a.f = _lib_mod().FG_SCORE_CONST_FLOAT, v
            out = C.c_void_p()
            st = _lib().fg_score_create(ctx, self.expr.encode(), args, len(tabs) + len(self.consts), C.byref(out))
            _lib_mod().check(ctx, "fg_score_create", st)
            self._handles[ctx] = (out.value, tabs)
            return out.value

    def handle(self, index):
        """The fg_score* for a call on CUDA device `index` (made once)."""
        from . import _device
        return self._handle(_device.context(index), torch.device("cuda", index))

    def close(self):
        """Destroys this score's fg_score handles (made again on a later
        call); the inference caches' specs and plans made with it go first."""
        if self._handles:
            from . import _inference
            _inference.forget_score(self)
        with _memo_lock:
            for key in [k for k, (s, _) in _memo.items() if s is self]:
                del _memo[key]
        with self._lock:
            for h, _ in self._handles.values():
                _lib().fg_score_destroy(h)
            self._handles.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __repr__(self):
        return f"flashgen.Score({self.text!r}, tables={sorted(self.tables)}, consts={self.consts})"


# Translated functions -> their Score, so that a loop calling attention with
# the same score_mod (even a new lambda each time) reuses one Score, its
# device tables and the plans made with it.  Keyed by what the translation
# read: the text, the constants, and each table's tensor (by identity, so
# the entry also holds it) and version (an in-place change makes a new
# Score, as FlexAttention reads captured tensors at call time).
_memo = collections.OrderedDict()
_memo_lock = threading.Lock()
_MAX_MEMO = 64


def as_score(score_mod):
    """score_mod= of flashgen.attention as a Score (None stays None)."""
    if score_mod is None or isinstance(score_mod, Score):
        return score_mod
    if isinstance(score_mod, str):  # the language's text, without tables or constants
        tr = Translated(score_mod, {}, {})
    else:
        tr = _trace(score_mod)
    key = (tr.text, tuple(sorted((n, type(v).__name__, v) for n, v in tr.consts.items())),
           tuple(sorted((n, id(t), t._version) for n, t in tr.sources.items())))
    with _memo_lock:
        hit = _memo.get(key)
        if hit is not None and all(hit[1][n] is t for n, t in tr.sources.items()):
            _memo.move_to_end(key)
            return hit[0]
    s = Score(tr.text, tables=tr.tables, consts=tr.consts)
    s.sources = dict(tr.sources)
    with _memo_lock:
        _memo[key] = (s, dict(tr.sources))
        while len(_memo) > _MAX_MEMO:
            _memo.popitem(last=False)
    return s


def _lib_mod():
    from . import _lib as lib_mod
    return lib_mod


def _lib():
    return _lib_mod().load()
