#!/usr/bin/env python3
"""flashgen.attention's score-modification arguments without a GPU
(python/flashgen/_scores.py): values and tensors checked with clear
exceptions, the descriptor fields they set (include/flashgen.h: the window's
off is -1), the sink as the lse of keyless rows, and the refusals
(NotImplementedError) where they are not built.  Skipped (exit 77) when
torch is not installed.

  python3 python/tests/test_scores_cpu.py
"""
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_scores_cpu", cuda=False)
from flashgen import _lib, _scores  # noqa: E402

CPU = torch.device("cpu")


class ScoresTest(unittest.TestCase):
    def test_off(self):
        self.assertFalse(_scores.NONE.used)
        self.assertFalse(_scores.Scores(softcap=0, window_size=(-1, -1)).used)

    def test_values(self):
        for kw in (dict(softcap=-1.0), dict(softcap=math.nan), dict(softcap=math.inf), dict(window_size=(-2, 0)),
                   dict(window_size=(0, -3)), dict(window_size=5), dict(window_size=(1, 2, 3)),
                   dict(window_size=(True, 0)), dict(window_size=(1.5, 0))):
            with self.assertRaises(ValueError, msg=str(kw)):
                _scores.Scores(**kw)

    def test_tensors(self):
        ok = _scores.Scores(alibi_slopes=torch.ones(2, 4), sinks=torch.zeros(4))
        ok.check_tensors(2, 4, CPU)
        for kw, exc in ((dict(alibi_slopes=torch.ones(3)), ValueError),
                        (dict(alibi_slopes=torch.ones(4, dtype=torch.float16)), TypeError),
                        (dict(alibi_slopes=[0.5] * 4), TypeError),
                        (dict(alibi_slopes=torch.ones(4, 2).t()), ValueError),
                        (dict(sinks=torch.ones(2, 4)), ValueError)):
            with self.assertRaises(exc, msg=str(kw)):
                _scores.Scores(**kw).check_tensors(2, 4, CPU)

    def test_key_has_strides(self):
        """A cached plan skips check_tensors: a strided view must not share a
        contiguous tensor's key (the kernel would read the wrong slopes)."""
        x = torch.arange(16.0)
        a = _scores.Scores(sinks=x[:8]).key()
        b = _scores.Scores(sinks=x[::2]).key()
        self.assertNotEqual(a, b)

    def test_out_apart_from_inputs(self):
        """out= may not share memory with q, k or v, nor be expanded."""
        from flashgen import _attention as A
        buf = torch.zeros(2, 64, 4, 64)
        q, k, v = torch.zeros(2, 64, 4, 64), torch.zeros(2, 64, 4, 64), torch.zeros(2, 64, 4, 64)
        A._check_out_apart(buf, q=q, k=k, v=v)
        with self.assertRaisesRegex(ValueError, "out overlaps v"):
            A._check_out_apart(v, q=q, k=k, v=v)
        with self.assertRaisesRegex(ValueError, "out overlaps k"):
            A._check_out_apart(k[:, 10:20], q=q, k=k, v=v)
        qkv = torch.zeros(2, 64, 3, 4, 64)  # interleaved views of one buffer, out apart from all
        A._check_out_apart(buf, q=qkv[:, :, 0], k=qkv[:, :, 1], v=qkv[:, :, 2])
        with self.assertRaisesRegex(ValueError, "stride of 0"):
            A._check_out(torch.zeros(2, 1, 4, 64).expand(2, 64, 4, 64), q, (2, 64, 4, 64))
        with self.assertRaisesRegex(ValueError, "32-bit"):
            A._c_int("seqlen_q", 2 ** 32 + 64)

    def test_descriptor(self):
        d = _lib.fg_attention_desc()
        d.heads_q = 4
        d.window_left = d.window_right = -1
        slopes, sinks = torch.ones(2, 4), torch.zeros(4)
        _scores.Scores(softcap=30, alibi_slopes=slopes, window_size=(128, 0), sinks=sinks).apply(d)
        self.assertEqual((d.softcap, d.window_left, d.window_right), (30.0, 128, 0))
        self.assertEqual((d.alibi_slopes, d.alibi_batch_stride, d.sinks), (slopes.data_ptr(), 4, sinks.data_ptr()))
        d2 = _lib.fg_attention_desc()
        d2.window_left = d2.window_right = -1
        _scores.Scores(alibi_slopes=torch.ones(4)).apply(d2)
        self.assertEqual((d2.alibi_batch_stride, d2.window_left, d2.softcap), (0, -1, 0.0))

    def test_empty_lse(self):
        lse = torch.full((2, 3, 5), math.nan)
        _scores.Scores(sinks=torch.tensor([1.0, 2.0, 3.0])).empty_lse(lse)
        self.assertTrue(torch.equal(lse[1, :, 4], torch.tensor([1.0, 2.0, 3.0])))
        _scores.NONE.empty_lse(lse)
        self.assertTrue(torch.isneginf(lse).all())

    def test_refuse(self):
        _scores.NONE.refuse("never")
        with self.assertRaisesRegex(NotImplementedError, "softcap, sinks have no backward"):
            _scores.Scores(softcap=1.0, sinks=torch.zeros(4)).refuse("have no backward")


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    print(f"test_scores_cpu: {r.testsRun - len(r.failures) - len(r.errors)} passed, {len(r.failures) + len(r.errors)} failed")
    sys.exit(0 if r.wasSuccessful() else 1)
