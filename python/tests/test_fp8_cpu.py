#!/usr/bin/env python3
"""FP8 in Python without a GPU (issue 14): flashgen.attention's FP8
arguments checked with clear exceptions before anything runs
(python/flashgen/_fp8.py: TypeError/ValueError naming the argument,
NotImplementedError for what the FP8 forward does not take), the descriptor
fields they set, and flashgen.hadamard / flashgen.quantize_fp8
(python/flashgen/_quantize.py) on CPU tensors: orthogonality, inverse, q k^T
invariance, the block-diagonal case, determinism from the seed, the scales
and the e4m3 round trip.  Skipped (exit 77) when torch is not installed.

  python3 python/tests/test_fp8_cpu.py
"""
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_fp8_cpu", cuda=False)
if not hasattr(torch, "float8_e4m3fn"):
    print(f"test_fp8_cpu: skipped: torch {torch.__version__} has no float8_e4m3fn")
    sys.exit(77)
import flashgen  # noqa: E402
from flashgen import _fp8, _lib  # noqa: E402

CPU = torch.device("cpu")
E4M3, BF = torch.float8_e4m3fn, torch.bfloat16


def qkv(d=64, dv=None, b=2, s=40, hq=4, hk=2, dtype=E4M3):
    g = torch.Generator().manual_seed(7)
    mk = lambda h, dd: torch.randn(b, s, h, dd, generator=g).to(dtype)
    return mk(hq, d), mk(hk, d), mk(hk, dv or d)


class AttentionArgs(unittest.TestCase):
    def test_16bit_unchanged(self):
        self.assertIsNone(_fp8.options(torch.ones(1, dtype=BF), (None, None, None), None))
        self.assertIsNone(_fp8.options(torch.ones(1, dtype=BF), (None, None, None), BF))

    def test_fp8_args_on_16bit(self):
        q, k, v = qkv(dtype=BF)
        for kw in (dict(q_descale=torch.ones(1)), dict(v_descale=torch.ones(())), dict(out_dtype=torch.float16)):
            with self.assertRaisesRegex(TypeError, f"{list(kw)[0]}\\S* is for torch.float8_e4m3fn", msg=str(kw)):
                flashgen.attention(q, k, v, **kw)

    def test_out_dtype(self):
        self.assertEqual(_fp8.options(qkv()[0], (None,) * 3, None).out_dtype, BF)
        for bad in (torch.float32, E4M3, "bf16"):
            with self.assertRaisesRegex(TypeError, "out_dtype must be", msg=str(bad)):
                _fp8.options(qkv()[0], (None,) * 3, bad)

    def test_descales(self):
        opt = lambda *d: _fp8.options(qkv()[0], d, None)
        opt(torch.ones(()), torch.ones(1), None).check_tensors(2, 2, CPU)
        self.assertTrue(opt(torch.ones(2, 2), None, torch.ones(2, 2)).per_head)
        with self.assertRaisesRegex(ValueError, "all be per tensor"):
            opt(torch.ones(1), torch.ones(2, 2), None)
        with self.assertRaisesRegex(TypeError, "k_descale must be a torch.Tensor"):
            opt(None, 0.5, None)
        bad = [((torch.ones(1, dtype=torch.float64), None, None), TypeError, "q_descale must be float32"),
               ((None, torch.ones(2), None), ValueError, r"k_descale has shape \[2\]"),
               ((None, None, torch.ones(1, 1)), ValueError, r"v_descale has shape \[1, 1\]"),
               ((torch.ones(2, 3), None, None), ValueError, r"q_descale has shape \[2, 3\]; expected \[2, 2\]"),
               ((None, torch.ones(2, 4)[:, ::2], None), ValueError, "k_descale must be contiguous"),
               ((None, None, torch.ones(1, device="meta")), ValueError, "v_descale is on meta")]
        for d, exc, msg in bad:
            with self.assertRaisesRegex(exc, msg):
                opt(*d).check_tensors(2, 2, CPU)

    def test_descriptor(self):
        d = _lib.fg_attention_desc()
        qs, vs = torch.ones(2, 2), torch.ones(2, 2)
        _fp8.options(qkv()[0], (qs, None, vs), torch.float16).apply(d)
        self.assertEqual((d.out_dtype, d.descale_per_head), (_lib.FG_FP16, 1))
        self.assertEqual((d.q_descale, d.k_descale, d.v_descale), (qs.data_ptr(), None, vs.data_ptr()))
        d2 = _lib.fg_attention_desc()
        _fp8.options(qkv()[0], (None, torch.ones(()), None), None).apply(d2)
        self.assertEqual((d2.out_dtype, d2.descale_per_head, d2.q_descale), (_lib.FG_BF16, 0, None))

    def test_shapes(self):
        for dd, dv in ((48, 48), (64, 40), (16, 16)):
            q, k, v = qkv(d=dd, dv=dv)
            with self.assertRaisesRegex(ValueError, "multiple of 32 .* multiple of 16"):
                flashgen.attention(q, k, v)
        q, k, v = qkv(b=1, s=8, hq=1, hk=1, d=64)
        q_odd = torch.empty(1, 8, 1, 72, dtype=E4M3)[..., :64]  # rows 72 elements apart
        with self.assertRaisesRegex(ValueError, "q's batch/head/row strides .* multiples of 16"):
            flashgen.attention(q_odd, k, v)

    def test_dtype_mix(self):
        q, k, v = qkv()
        with self.assertRaisesRegex(TypeError, "k has dtype torch.bfloat16 but q has torch.float8_e4m3fn"):
            flashgen.attention(q, k.to(BF), v)
        with self.assertRaisesRegex(TypeError, "dense forward only"):
            flashgen.attention_with_kvcache(q, k, v)

    def test_refused(self):
        q, k, v = qkv()
        cases = [(dict(softcap=30.0), "score modifications \\(softcap\\)"),
                 (dict(window_size=(8, 0), sinks=torch.zeros(4)), "window_size, sinks"),
                 (dict(block_mask=flashgen.BlockLayout.__new__(flashgen.BlockLayout)), "no block_mask"),
                 (dict(cu_seqlens_q=torch.zeros(3, dtype=torch.int32)), "variable lengths")]
        for kw, msg in cases:
            with self.assertRaisesRegex(NotImplementedError, msg, msg=str(list(kw))):
                flashgen.attention(q, k, v, **kw)
        qg = q.float().requires_grad_()
        with self.assertRaisesRegex(NotImplementedError, "no backward"):
            flashgen.attention(qg.to(E4M3), k, v)  # a float8 tensor in a graph
        with torch.no_grad():  # past every refusal: the device check is next
            with self.assertRaisesRegex(ValueError, "q is on cpu"):
                flashgen.attention(qg.to(E4M3), k, v, q_descale=torch.ones(1))


class Hadamard(unittest.TestCase):
    def matrix(self, d, seed):
        """M with hadamard(x) = x @ M^T (rows of hadamard(I) are M's columns)."""
        return flashgen.hadamard(torch.eye(d), seed).double().T

    def test_orthogonal(self):
        for d in (8, 64, 128, 256, 96, 192):
            m = self.matrix(d, 5)
            self.assertLess(float((m @ m.T - torch.eye(d, dtype=torch.float64)).abs().max()), 1e-6, d)
            x = torch.randn(3, 7, d)
            y = flashgen.hadamard(x, 5)
            self.assertLess(float((y.double() @ m - x).abs().max()), 1e-5, d)  # x M^T M == x
            self.assertLess(float((flashgen.hadamard(y, 5, inverse=True) - x).abs().max()), 1e-5, d)

    def test_block_diagonal(self):
        m = self.matrix(192, 1)
        n = 64
        for i in range(3):
            for j in range(3):
                blk = m[i * n:(i + 1) * n, j * n:(j + 1) * n]
                if i == j:
                    self.assertTrue(torch.allclose(blk.abs(), torch.full_like(blk, 1 / 8)))
                else:
                    self.assertEqual(float(blk.abs().max()), 0.0)
        self.assertTrue(torch.allclose(self.matrix(128, 1).abs(), torch.full((128, 128), 128 ** -0.5, dtype=torch.float64)))

    def test_qk_invariant(self):
        q, k = torch.randn(2, 33, 4, 128), torch.randn(2, 50, 4, 128)
        q[0, 3, 1, 7] = 50.0  # an outlier: spread over the row after the transform
        s = torch.einsum("bshd,bthd->bhst", q, k)
        qh, kh = flashgen.hadamard(q, 11), flashgen.hadamard(k, 11)
        self.assertLess(float((torch.einsum("bshd,bthd->bhst", qh, kh) - s).abs().max()), 1e-3)
        self.assertLess(float(qh[0, 3, 1].abs().max()), 10.0)
        self.assertGreater(float((torch.einsum("bshd,bthd->bhst", qh, flashgen.hadamard(k, 12)) - s).abs().max()), 1.0)

    def test_seed(self):
        x = torch.randn(4, 64)
        self.assertTrue(torch.equal(flashgen.hadamard(x, 3), flashgen.hadamard(x.clone(), 3)))
        self.assertFalse(torch.equal(flashgen.hadamard(x, 3), flashgen.hadamard(x, 4)))
        self.assertEqual(flashgen.hadamard(x.to(BF), 3).dtype, BF)

    def test_errors(self):
        for x, exc in ((torch.ones(4, 12), ValueError), (torch.ones(4, 4), ValueError), (torch.ones(4, 64, dtype=torch.int32), TypeError),
                       (torch.ones(4, 64).to(E4M3), TypeError), ([1.0] * 64, TypeError)):
            with self.assertRaises(exc, msg=str(getattr(x, "shape", x))):
                flashgen.hadamard(x)
        with self.assertRaises(TypeError):
            flashgen.hadamard(torch.ones(2, 64), seed=1.5)


class Quantize(unittest.TestCase):
    def assert_round_trip(self, x, x8, xs):
        """|x8 xs - x| within half an e4m3 step: 2^-4 relative (3 mantissa bits), 2^-10 xs absolute (subnormals)."""
        err = (x8.double() * xs.double() - x.double()).abs()
        bound = torch.maximum(x.double().abs() * 2 ** -4, xs.double() * 2 ** -10 * torch.ones_like(err))
        self.assertTrue(bool((err <= bound * 1.0001).all()), float((err / bound).max()))

    def test_per_tensor(self):
        x = torch.randn(2, 30, 4, 64) * 3
        x8, s = flashgen.quantize_fp8(x)
        self.assertEqual((x8.dtype, x8.shape, s.dtype, s.shape), (E4M3, x.shape, torch.float32, torch.Size([])))
        self.assertAlmostEqual(float(s), float(x.abs().max()) / 448, delta=1e-9)
        self.assertEqual(float(x8.float().abs().max()), 448.0)
        self.assert_round_trip(x, x8, s)

    def test_per_head_gqa(self):
        x = torch.randn(2, 30, 8, 64) * torch.arange(1, 9).view(1, 1, 8, 1)  # each head its own range
        for heads_kv, layout in ((None, "bshd"), (2, "bshd"), (1, "bshd"), (4, "bhsd")):
            xx = x if layout == "bshd" else x.transpose(1, 2)
            x8, s = flashgen.quantize_fp8(xx, per_head=True, heads_kv=heads_kv, layout=layout)
            g = heads_kv or 8
            self.assertEqual(tuple(s.shape), (2, g))
            amax = x.reshape(2, 30, g, 8 // g, 64).abs().amax(dim=(1, 3, 4))
            self.assertTrue(torch.allclose(s, amax / 448, rtol=1e-6), (heads_kv, layout))
            s_heads = s.repeat_interleave(8 // g, dim=1)  # q head h -> kv head h // (heads / heads_kv)
            sb = s_heads.view(2, 1, 8, 1) if layout == "bshd" else s_heads.view(2, 8, 1, 1)
            self.assert_round_trip(xx, x8, sb.expand_as(xx))

    def test_hadamard(self):
        x = torch.randn(2, 16, 4, 128)
        x[1, 5, 2, 3] = 10.0
        x8, s = flashgen.quantize_fp8(x, hadamard=True, seed=9)
        y8, t = flashgen.quantize_fp8(flashgen.hadamard(x, 9))
        self.assertTrue(torch.equal(x8.view(torch.uint8), y8.view(torch.uint8)) and torch.equal(s, t))
        self.assertLess(float(s), 10.0 / 448)  # the outlier spread over its row

    def test_zero_and_empty(self):
        x8, s = flashgen.quantize_fp8(torch.zeros(2, 3, 2, 64), per_head=True)
        self.assertEqual(float(x8.float().abs().max()), 0.0)
        self.assertTrue(bool((s > 0).all()))
        x8, s = flashgen.quantize_fp8(torch.zeros(2, 0, 2, 64), per_head=True)
        self.assertEqual((tuple(x8.shape), tuple(s.shape)), ((2, 0, 2, 64), (2, 2)))

    def test_errors(self):
        bad = [(dict(x=torch.ones(2, 64), per_head=True), ValueError, "4-D"),
               (dict(x=torch.ones(1, 2, 6, 64), per_head=True, heads_kv=4), ValueError, "heads_kv"),
               (dict(x=torch.ones(1, 2, 6, 64), heads_kv=2), ValueError, "heads_kv is for per_head"),
               (dict(x=torch.ones(1, 2, 6, 64), per_head=True, layout="sbhd"), ValueError, "layout"),
               (dict(x=torch.ones(2, 64, dtype=torch.int8)), TypeError, "float16, bfloat16 or float32"),
               (dict(x=torch.ones(2, 64).to(E4M3)), TypeError, "float16, bfloat16 or float32")]
        for kw, exc, msg in bad:
            with self.assertRaisesRegex(exc, msg, msg=str(kw)):
                flashgen.quantize_fp8(**kw)


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    print(f"test_fp8_cpu: {r.testsRun - len(r.failures) - len(r.errors)} passed, {len(r.failures) + len(r.errors)} failed")
    sys.exit(0 if r.wasSuccessful() else 1)
