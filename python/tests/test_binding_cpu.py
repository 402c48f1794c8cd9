#!/usr/bin/env python3
"""The Python binding without a GPU: the library is found (and a missing one
is reported with every place tried), inputs are rejected with clear
exceptions before any device work, a library failure (FG_ERR_NO_DRIVER on
a machine without a driver) surfaces as FlashgenError with the library's
message, and BlockMask tensors are cut and padded to flashgen's layout.
Skipped (exit 77) when torch is not installed.

  python3 python/tests/test_binding_cpu.py
"""
import ctypes as C
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_binding_cpu", cuda=False)
import flashgen  # noqa: E402
from flashgen import _attention, _blockmask, _lib  # noqa: E402


class Library(unittest.TestCase):
    def test_found(self):
        self.assertTrue(os.path.exists(flashgen.library_path()) or "/" not in flashgen.library_path())

    def test_missing_is_explained(self):
        env = dict(os.environ, FLASHGEN_LIBRARY="/nonexistent/libflashgen.so")
        code = "import flashgen\ntry:\n    flashgen.library_path()\nexcept flashgen.LibraryNotFound as e:\n    print(e)\n"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             cwd=os.path.join(HERE, "..")).stdout
        self.assertIn("/nonexistent/libflashgen.so ($FLASHGEN_LIBRARY): no such file", out)
        self.assertIn("set FLASHGEN_LIBRARY", out)

    def test_library_error_carries_message(self):
        lib = _lib.load()
        ctx = C.c_void_p()
        self.assertEqual(lib.fg_context_create(C.byref(ctx)), _lib.FG_OK)
        try:
            d = _lib.fg_attention_desc()
            lib.fg_attention_desc_init(C.byref(d), _lib.FG_BF16, 128, 1, 1, 1, 16, 16)
            st = lib.fg_attention_prepare(ctx, C.byref(d))
            if st == _lib.FG_OK:
                self.skipTest("a GPU is present: the no-driver path is not reachable")
            with self.assertRaises(flashgen.FlashgenError) as cm:
                _lib.check(ctx, "fg_attention_prepare", st)
            self.assertIn(cm.exception.status_name, ("FG_ERR_NO_DRIVER", "FG_ERR_NO_DEVICE"))
            self.assertIn("fg_attention_prepare: FG_ERR_NO_D", str(cm.exception))
            if st == _lib.FG_ERR_NO_DRIVER:
                self.assertIn("libcuda", cm.exception.message)
        finally:
            lib.fg_context_destroy(ctx)


def t(*shape, dtype=torch.bfloat16):
    return torch.zeros(*shape, dtype=dtype)


class Validation(unittest.TestCase):
    def raises(self, exc, text, *args, **kw):
        with self.assertRaises(exc) as cm:
            flashgen.attention(*args, **kw)
        self.assertIn(text, str(cm.exception))

    def test_dtype(self):
        self.raises(TypeError, "torch.float32", t(1, 8, 2, 64, dtype=torch.float32), t(1, 8, 2, 64), t(1, 8, 2, 64))
        self.raises(TypeError, "k has dtype torch.float16", t(1, 8, 2, 64), t(1, 8, 2, 64, dtype=torch.float16),
                    t(1, 8, 2, 64))
        self.raises(TypeError, "torch.Tensor", [1], t(1, 8, 2, 64), t(1, 8, 2, 64))

    def test_shapes(self):
        self.raises(ValueError, "4-D", t(8, 2, 64), t(1, 8, 2, 64), t(1, 8, 2, 64))
        self.raises(ValueError, "every dimension but the last", t(1, 8, 2, 64), t(1, 8, 2, 64), t(1, 9, 2, 64))
        self.raises(ValueError, "every dimension but the last", t(1, 8, 2, 64), t(1, 8, 2, 64), t(1, 8, 1, 64))
        self.raises(ValueError, "batch", t(2, 8, 2, 64), t(1, 8, 2, 64), t(1, 8, 2, 64))
        self.raises(ValueError, "head dim 64 but k has 32", t(1, 8, 2, 64), t(1, 8, 2, 32), t(1, 8, 2, 64))
        self.raises(ValueError, "layout must be", t(1, 8, 2, 64), t(1, 8, 2, 64), t(1, 8, 2, 64), layout="sbhd")

    def test_heads_ratio(self):
        self.raises(ValueError, "multiple of the heads", t(1, 8, 6, 64), t(1, 8, 4, 64), t(1, 8, 4, 64))
        # bhsd reads heads from dim 1
        self.raises(ValueError, "multiple of the heads", t(1, 6, 8, 64), t(1, 4, 8, 64), t(1, 4, 8, 64), layout="bhsd")

    def test_head_dim(self):
        # not a multiple of 8: padded (HeadDimPadding below), so the call reaches the device check
        self.raises(ValueError, "CUDA tensors", t(1, 8, 2, 12), t(1, 8, 2, 12), t(1, 8, 2, 12))
        self.raises(ValueError, "head dim 264", t(1, 8, 2, 264), t(1, 8, 2, 264), t(1, 8, 2, 264))
        self.raises(ValueError, "head dim 261", t(1, 8, 2, 261), t(1, 8, 2, 261), t(1, 8, 2, 261))

    def test_head_dim_v(self):
        # v's last dim is the value head dim: checked on its own
        self.raises(ValueError, "CUDA tensors", t(1, 8, 2, 64), t(1, 8, 2, 64), t(1, 8, 2, 12))  # padded
        self.raises(ValueError, "value head dim (v's last dim) 264", t(1, 8, 2, 64), t(1, 8, 2, 64), t(1, 8, 2, 264))
        self.raises(ValueError, "MLA decode", t(1, 8, 1, 192), t(1, 8, 1, 192), t(1, 8, 1, 512))
        # a narrower and a wider v pass validation (and reach the device check)
        for dv in (32, 128):
            self.raises(ValueError, "CUDA tensors", t(1, 8, 2, 64), t(1, 8, 2, 64), t(1, 8, 2, dv))
        self.assertEqual(_attention._check_inputs(t(2, 8, 4, 192), t(2, 9, 2, 192), t(2, 9, 2, 128), "bshd"),
                         (2, 8, 9, 4, 2, 192, 128))
        self.assertEqual(_attention._check_inputs(t(2, 4, 8, 64), t(2, 2, 9, 64), t(2, 2, 9, 96), "bhsd"),
                         (2, 8, 9, 4, 2, 64, 96))

    def test_out_shape(self):
        q, v = t(2, 8, 4, 192), t(2, 9, 2, 128)
        self.assertEqual(_attention._out_shape(q, v), (2, 8, 4, 128))
        self.assertEqual(_attention._out_shape(t(2, 4, 8, 64), t(2, 2, 9, 96)), (2, 4, 8, 96))  # bhsd alike
        with self.assertRaises(ValueError) as cm:
            _attention._check_out(t(2, 8, 4, 192), q, (2, 8, 4, 128))
        self.assertIn("out must have shape (2, 8, 4, 128)", str(cm.exception))
        self.assertEqual(_attention._check_out(t(2, 8, 4, 128), q, (2, 8, 4, 128)).shape[3], 128)

    def test_last_stride(self):
        q = t(1, 8, 2, 128)[..., ::2]
        self.raises(ValueError, "unit stride", q, t(1, 8, 2, 64), t(1, 8, 2, 64))

    def test_causal_and_scale(self):
        x = t(1, 8, 2, 64)
        self.raises(ValueError, "causal must be", x, x, x, causal="lower")
        self.raises(ValueError, "ambiguous", x, t(1, 9, 2, 64), t(1, 9, 2, 64), causal=True)
        self.raises(ValueError, "scale must be positive", x, x, x, scale=-1.0)
        self.raises(ValueError, "scale must be positive", x, x, x, scale=float("inf"))

    def test_device(self):
        x = t(1, 8, 2, 64)
        self.raises(ValueError, "flashgen runs on CUDA tensors", x, x, x)
        self.raises(ValueError, "flashgen runs on CUDA tensors", x, x, x, causal=True)

    def test_causal_modes(self):
        m = _attention._causal_mode
        self.assertEqual(m(False, 5, 7), _lib.FG_CAUSAL_NONE)
        self.assertEqual(m("bottom_right", 5, 7), _lib.FG_CAUSAL_BOTTOM_RIGHT)
        self.assertEqual(m("top_left", 5, 7), _lib.FG_CAUSAL_TOP_LEFT)
        self.assertEqual(m(True, 7, 7), _lib.FG_CAUSAL_TOP_LEFT)

    def test_strides(self):
        x = torch.zeros(2, 16, 4, 64)  # bshd contiguous
        self.assertEqual(_attention._strides(x, "bshd"), (16 * 4 * 64, 64, 4 * 64))
        self.assertEqual(_attention._strides(x.transpose(1, 2), "bhsd"), (16 * 4 * 64, 64, 4 * 64))
        y = torch.zeros(1, 4, 16, 64)  # bhsd contiguous, batch 1: its stride is never used
        self.assertEqual(_attention._strides(y, "bhsd"), (0, 16 * 64, 64))


def dense_blocks(num, idx, nk):
    """[B, H, Q, nk] bool: the blocks a (num, idx) pair lists."""
    out = torch.zeros(*num.shape, nk, dtype=torch.bool)
    for r in range(num.numel()):
        b, h, q = torch.unravel_index(torch.tensor(r), num.shape)
        for i in range(int(num[b, h, q])):
            out[b, h, q, int(idx[b, h, q, i])] = True
    return out


class HeadDimPadding(unittest.TestCase):
    """Head dims that are not multiples of 8 go through _padded: q and k
    zero-padded (q k^T unchanged), v padded and o's extra columns dropped,
    the default scale 1/sqrt(the caller's head dim).  The inner call is
    replaced here by PyTorch's math attention on the CPU, so this checks the
    padding itself; test_attention_gpu.py and test_backward_gpu.py run the
    kernels on such head dims."""

    @staticmethod
    def math_attention(q, k, v, *, causal=False, scale=None, return_lse=False, layout="bshd", out=None, **kw):
        x = [a.float() if layout == "bhsd" else a.float().transpose(1, 2) for a in (q, k, v)]
        s = (x[0] @ x[1].transpose(-1, -2)) * scale
        if causal:
            s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
        o = (s.softmax(-1) @ x[2]).to(q.dtype)
        o = o if layout == "bhsd" else o.transpose(1, 2)
        return (o, torch.logsumexp(s, -1)) if return_lse else o

    def setUp(self):
        self.inner = _attention.attention
        calls = []

        def fake(q, k, v, **kw):
            if q.shape[-1] % 8 == 0 and v.shape[-1] % 8 == 0:  # the inner call: padded tensors, no out=
                assert kw.get("out") is None, "the inner call writes a new o"
                calls.append((q.shape[-1], v.shape[-1], kw.get("scale")))
                return self.math_attention(q, k, v, **kw)
            return self.inner(q, k, v, **kw)
        self.calls = calls
        _attention.attention = fake

    def tearDown(self):
        _attention.attention = self.inner

    def test_padded_equals_unpadded(self):
        torch.manual_seed(0)
        for d, dv, layout, causal in ((59, 59, "bshd", False), (12, 40, "bhsd", True), (64, 37, "bshd", True),
                                      (3, 5, "bhsd", False)):
            shp = (lambda s, x: (2, s, 3, x)) if layout == "bshd" else (lambda s, x: (2, 3, s, x))
            q, k, v = t(*shp(7, d)).normal_(), t(*shp(7, d)).normal_(), t(*shp(7, dv)).normal_()
            o, lse = _attention.attention(q, k, v, causal=causal, return_lse=True, layout=layout)
            ref, ref_lse = self.math_attention(q, k, v, causal=causal, scale=d ** -0.5, return_lse=True, layout=layout)
            self.assertEqual(tuple(o.shape), tuple(ref.shape))
            self.assertTrue(o.is_contiguous())
            self.assertLess(float((o.float() - ref.float()).abs().max()), 2e-2, (d, dv, layout))
            self.assertLess(float((lse - ref_lse).abs().max()), 1e-4, (d, dv, layout))
            self.assertEqual(self.calls[-1], (d + (-d % 8), dv + (-dv % 8), d ** -0.5))
            # an explicit scale (softmax_scale=, FlashAttention's name) is passed through; out= gets o
            out = torch.full_like(ref, float("nan"))
            r = _attention.attention(q, k, v, causal=causal, softmax_scale=0.3, layout=layout, out=out)
            self.assertIs(r, out)
            self.assertEqual(self.calls[-1][2], 0.3)
            ref3 = self.math_attention(q, k, v, causal=causal, scale=0.3, layout=layout)
            self.assertLess(float((out.float() - ref3.float()).abs().max()), 2e-2)

    def test_padded_out_checked(self):
        q = t(1, 8, 2, 12)
        with self.assertRaises(ValueError):
            _attention.attention(q, q, q, out=t(1, 8, 2, 16))  # o has the caller's head dim, 12
        q3 = t(8, 2, 12)  # packed (variable lengths): o is [total, heads, 12] too
        with self.assertRaisesRegex(ValueError, r"out must have shape \(8, 2, 12\)"):
            _attention.attention(q3, q3, q3, cu_seqlens_q=torch.tensor([0, 8], dtype=torch.int32), max_seqlen_q=8,
                                 out=t(8, 2, 16))


class BlockMasks(unittest.TestCase):
    def test_fit_cuts_and_pads(self):
        num = torch.tensor([[[2, 3, 1]]], dtype=torch.int32)
        idx = torch.tensor([[[[1, 0, 9], [4, 2, 0], [3, 9, 9]]]], dtype=torch.int32)
        # 2 query blocks, 4 key blocks: row 2 is dropped, block 4 is past the keys, width padded 3 -> 4
        n, i = _blockmask._fit(num, idx, 2, 4, "kv")
        self.assertEqual(n.tolist(), [[[2, 2]]])
        self.assertEqual(i.shape, (1, 1, 2, 4))
        self.assertEqual(i[0, 0, 0, :2].tolist(), [1, 0])
        self.assertEqual(i[0, 0, 1, :2].tolist(), [2, 0])
        with self.assertRaises(ValueError):
            _blockmask._fit(num, idx, 4, 4, "kv")  # more query blocks than the mask has
        with self.assertRaises(ValueError):
            _blockmask._fit(num + 5, idx, 2, 4, "kv")  # counts wider than the index rows

    def test_check(self):
        with self.assertRaises(TypeError):
            _blockmask.check(object())
        num, idx = t(1, 1, 2, dtype=torch.int32), t(1, 1, 2, 2, dtype=torch.int32)
        with self.assertRaisesRegex(ValueError, "multiple of 64"):
            _blockmask.check(flashgen.BlockLayout(num, idx, block_size=(32, 128)))
        with self.assertRaisesRegex(ValueError, "both"):
            _blockmask.check(flashgen.BlockLayout(num, idx, full_kv_num_blocks=num))
        with self.assertRaisesRegex(ValueError, "kv_indices"):
            _blockmask.check(flashgen.BlockLayout(num, idx[0]))
        with self.assertRaisesRegex(TypeError, "integer"):
            _blockmask.check(flashgen.BlockLayout(num.float(), idx))
        self.assertEqual(_blockmask.check(flashgen.BlockLayout(num, idx, block_size=64))[4:], (64, 64))

    def test_flex_block_mask(self):
        try:
            from torch.nn.attention.flex_attention import create_block_mask
        except ImportError:
            self.skipTest("no FlexAttention in this torch")
        win = lambda b, h, q, k: (q // 128 - k // 128).abs() <= 1  # block-aligned band, 3 blocks wide
        bm = create_block_mask(win, None, None, 1000, 700, device="cpu")
        num, idx, fnum, fidx, bq, bk = _blockmask.check(bm)
        nq, nk = 8, 6
        pn, pi = _blockmask._fit(num, idx, nq, nk, "kv")
        fn, fi = _blockmask._fit(fnum, fidx, nq, nk, "full_kv")
        got = dense_blocks(pn, pi, nk) | dense_blocks(fn, fi, nk)
        want = torch.tensor([[abs(i - j) <= 1 for j in range(nk)] for i in range(nq)])
        self.assertTrue(torch.equal(got[0, 0], want), f"\n{got[0, 0].int()}\n{want.int()}")
        self.assertFalse((dense_blocks(pn, pi, nk) & dense_blocks(fn, fi, nk)).any())

    def test_flex_block_mask_shorter_than_call(self):
        """A BlockMask made for shorter sequences is refused, as FlexAttention
        refuses it (its missing blocks would read as empty: keys never
        attended), before any device work."""
        try:
            from torch.nn.attention.flex_attention import create_block_mask
        except ImportError:
            self.skipTest("no FlexAttention in this torch")
        bm = create_block_mask(lambda b, h, q, k: q >= k, None, None, 256, 256, device="cpu")
        with self.assertRaisesRegex(ValueError, "created for seq_lengths"):
            _blockmask.layout(bm, 256, 512, 0)
        with self.assertRaisesRegex(ValueError, "created for seq_lengths"):
            _blockmask.layout(bm, 512, 256, 0)
        # also on the autograd operator's path, whose BlockLayout does not
        # carry the lengths (and the mask_mod it ignores is said, once)
        q = torch.randn(1, 256, 2, 64, dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(1, 512, 2, 64, dtype=torch.bfloat16)
        _blockmask._warned_mask_mod = False
        with self.assertWarnsRegex(UserWarning, "mask_mod is not applied"):
            with self.assertRaisesRegex(ValueError, "created for seq_lengths"):
                flashgen.attention(q, k, k, block_mask=bm)

    def test_flashattention_argument_names(self):
        q = torch.randn(1, 16, 2, 64, dtype=torch.bfloat16)
        with self.assertRaisesRegex(NotImplementedError, "no dropout"):
            flashgen.attention(q, q, q, dropout_p=0.1)
        with self.assertRaisesRegex(TypeError, "not both"):
            flashgen.attention(q, q, q, scale=0.1, softmax_scale=0.1)

    def test_pattern_eval(self):
        # block classes of a sliding window against brute force over elements
        pat = flashgen.Pattern("sliding_window", window=300, block_q=64, block_k=64)
        self.assertEqual(pat.name, "sliding_window")
        self.assertIn("window", pat.mask)
        sq, sk = 1000, 777
        lay = pat.eval(sq, sk)
        self.assertEqual(lay.BLOCK_SIZE, (64, 64))
        nq, nk = -(-sq // 64), -(-sk // 64)
        part = dense_blocks(lay.kv_num_blocks, lay.kv_indices, nk)[0, 0]
        full = dense_blocks(lay.full_kv_num_blocks, lay.full_kv_indices, nk)[0, 0]
        i = torch.arange(sq)[:, None]
        j = torch.arange(sk)[None, :]
        vis = (i - j).abs() <= 300
        for a in range(nq):
            for b in range(nk):
                blk = vis[a * 64:(a + 1) * 64, b * 64:(b + 1) * 64]
                want = "full" if blk.all() else "partial" if blk.any() else "empty"
                got = "full" if full[a, b] else "partial" if part[a, b] else "empty"
                self.assertEqual(got, want, f"block ({a}, {b})")
        pat.close()

    def test_pattern_mask_mod(self):
        # FlexAttention's mask_mod from the pattern's Python form, on CPU tensors
        sq, sk = 300, 257
        i = torch.arange(sq)[:, None]
        j = torch.arange(sk)[None, :]
        z = torch.zeros((), dtype=torch.int64)
        pat = flashgen.Pattern("sliding_window", window=40, causal=1)
        self.assertEqual(pat.mask_consts(), [("window", 40)])
        mm = pat.mask_mod(sq, sk, device="cpu")
        self.assertTrue(torch.equal(mm(z, z, i, j), (i - j >= 0) & (i - j <= 40)))
        # same expression, other constant: the same function, refilled
        mm2 = flashgen.Pattern("sliding_window", window=7, causal=1).mask_mod(sq, sk, device="cpu")
        self.assertIs(mm2, mm)
        self.assertTrue(torch.equal(mm(z, z, i, j), (i - j >= 0) & (i - j <= 7)))
        self.assertIsNone(flashgen.Pattern("random", density=0.3).mask_mod(sq, sk, device="cpu"))  # block-level
        pat.close()
        # a condition of the lengths alone (a Python-int condition once met
        # torch.where and raised), and lengths times a huge constant, which
        # wraps at 64 bits as in the kernel (as Python ints they did not)
        e = flashgen.Pattern("{ mask = 'seqlen_q > 100 ? q_idx >= kv_idx : kv_idx == 0' }")
        self.assertTrue(torch.equal(e.mask_mod(sq, sk, device="cpu")(z, z, i, j), i >= j))
        w = flashgen.Pattern("{ mask = '(seqlen_k * 4611686018427387904) + q_idx < kv_idx' }")
        # 257 * 2^62 wraps to 2^62 (mod 2^64): q_idx + 2^62 < kv_idx never holds
        self.assertFalse(bool(w.mask_mod(sq, sk, device="cpu")(z, z, i, j).any()))
        e.close()
        w.close()

    def test_pattern_errors(self):
        with self.assertRaisesRegex(flashgen.FlashgenError, "unknown pattern"):
            flashgen.Pattern("no_such_pattern")
        with self.assertRaisesRegex(flashgen.FlashgenError, "unknown parameter 'windoww'"):
            flashgen.Pattern("sliding_window", windoww=5)
        with self.assertRaisesRegex(ValueError, "multiple of 64"):
            flashgen.Pattern("causal", block_q=32)
        with self.assertRaisesRegex(TypeError, "number or a list"):
            flashgen.Pattern("sliding_window", window="x")


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    bad = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - bad - len(r.skipped)} passed, {bad} failed, {len(r.skipped)} skipped")
    sys.exit(1 if bad else 0)
