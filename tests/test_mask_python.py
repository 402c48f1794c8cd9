#!/usr/bin/env python3
"""The Python form of mask expressions (FG_MASK_PYTHON, evaluated with the
helpers of flashgen._mask, as Pattern.mask_mod does for FlexAttention) against the
C evaluator that the reference and the block classifier use: random
expressions' worth of operators (truncating / and % on negative values,
division by zero, ?:, min/max/abs, logic, comparisons as integers), random
inputs.  Python integers only, so no torch is needed; the helpers take the
same code path for the arithmetic.

  python3 tests/test_mask_python.py
The flashgen package comes from the repository's python/ folder, else from
the Python path (an installed wheel); the library is the one the package
loads (flashgen.library_path(): $FLASHGEN_LIBRARY, the wheel, build/, ...).
"""
import ctypes
import os
import random
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "python"))
import flashgen  # noqa: E402
from flashgen import _mask  # noqa: E402

lib = ctypes.CDLL(flashgen.library_path())


class Env(ctypes.Structure):  # fg_mask_env (gen/mask_expr.h)
    _fields_ = [(n, ctypes.c_int64) for n in ("b", "h", "q_idx", "kv_idx", "seqlen_q", "seqlen_k")] + \
               [("consts", ctypes.POINTER(ctypes.c_int64))]


class Err(ctypes.Structure):  # fg_error (gen/error.h)
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char_p)]


lib.fg_mask_expr_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Err)]
lib.fg_mask_expr_eval.restype = ctypes.c_int64
lib.fg_mask_expr_eval.argtypes = [ctypes.c_void_p, ctypes.POINTER(Env)]
lib.fg_mask_expr_render.restype = ctypes.c_void_p
lib.fg_mask_expr_render.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
lib.fg_mask_expr_free.argtypes = [ctypes.c_void_p]
libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
RENDER_PYTHON = 3  # fg_mask_render_mode


class NoTorch:  # the helpers only look at torch.Tensor for Python integers
    Tensor = type("Tensor", (), {})


EXPRS = [
    "(q_idx - kv_idx) / c0 + (q_idx - kv_idx) % c1",
    "-q_idx / 3 * 3 + -kv_idx % 5 - - c2",
    "q_idx / c2 + kv_idx % c2",
    "q_idx > kv_idx ? min(q_idx, c0) : max(-kv_idx, c1)",
    "!(q_idx == kv_idx) && abs(q_idx - 50) < c0 || !c2",
    "(q_idx >= c0) + (q_idx >= c1) == (kv_idx >= c0) + (kv_idx >= c1)",
    "b * 7 - h / 2 + seqlen_k % 7 - seqlen_q",
    "abs(q_idx - kv_idx) <= c0 && (q_idx - kv_idx) % c1 == 0",
    "c0 ? c1 ? q_idx : kv_idx : c2 != q_idx <= kv_idx",
]


def main():
    helpers = _mask.helpers(NoTorch)
    names = (ctypes.c_char_p * 3)(b"c0", b"c1", b"c2")
    rng = random.Random(5)
    bad = checked = 0
    for text in EXPRS:
        e, err = ctypes.c_void_p(), Err()
        if lib.fg_mask_expr_parse(text.encode(), names, 3, ctypes.byref(e), ctypes.byref(err)) != 0:
            print(f"FAIL: cannot parse {text}: {err.msg}")
            return 1
        p = lib.fg_mask_expr_render(e, RENDER_PYTHON, None)
        py = ctypes.string_at(p).decode()
        libc.free(p)
        code = compile(py, "<mask>", "eval")
        for _ in range(2000):
            c = [rng.randint(-9, 9) for _ in range(3)]
            q, kv = rng.randint(-100, 100), rng.randint(-100, 100)
            want = lib.fg_mask_expr_eval(e, ctypes.byref(Env(1, 3, q, kv, 77, 91, (ctypes.c_int64 * 3)(*c))))
            got = eval(code, dict(helpers, _c=c, b=1, h=3, q_idx=q, kv_idx=kv, seqlen_q=77, seqlen_k=91))
            checked += 1
            if got != want:
                bad += 1
                if bad <= 5:
                    print(f"FAIL: {text} with c={c} q={q} kv={kv}: Python {got}, C {want}\n  {py}")
        lib.fg_mask_expr_free(e)
    print(f"test_mask_python: {checked} evaluations, {bad} mismatches ({flashgen.library_path()})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
