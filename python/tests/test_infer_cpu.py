#!/usr/bin/env python3
"""The inference binding without a GPU (python/flashgen/_inference.py):
flashgen.attention with cu_seqlens_* and flashgen.attention_with_kvcache
reject bad arguments with clear exceptions before any device work; the
descriptors they build (strides of packed and paged tensors, lengths,
pages, splits) are what include/flashgen.h asks for; and, with a stand-in
for the library's plan/run calls and CPU tensors, the call path itself:
one plan per descriptor (table pointers included), a repeated decode step
only runs, an append writes at the caller's lengths and attends over new
ones without changing the caller's tensor, evicted plans are destroyed.
Where the library has the inference calls, they fail cleanly without a
driver.  Skipped (exit 77) when torch is not installed.

  python3 python/tests/test_infer_cpu.py
"""
import contextlib
import ctypes as C
import math
import os
import sys
import types
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_infer_cpu", cuda=False)
import flashgen  # noqa: E402
from flashgen import _attention, _device, _inference, _lib, _scores  # noqa: E402

BF = torch.bfloat16


def t(*shape, dtype=BF):
    return torch.zeros(*shape, dtype=dtype)


def i32(*vals):
    return torch.tensor(vals, dtype=torch.int32)


class Raises(unittest.TestCase):
    def raises(self, exc, text, fn, *args, **kw):
        with self.assertRaises(exc) as cm:
            fn(*args, **kw)
        self.assertIn(text, str(cm.exception))


class VarlenValidation(Raises):
    def setUp(self):
        _inference._specs.clear()
        self.q, self.k = t(10, 4, 64), t(12, 2, 64)
        self.cu_q, self.cu_k = i32(0, 3, 10), i32(0, 5, 12)

    def call(self, **kw):
        args = dict(cu_seqlens_q=self.cu_q, cu_seqlens_k=self.cu_k, max_seqlen_q=7, max_seqlen_k=7)
        args.update(kw)
        q, k, v = args.pop("q", self.q), args.pop("k", self.k), args.pop("v", self.k)
        return flashgen.attention(q, k, v, **args)

    def test_valid_reaches_device_check(self):
        self.raises(ValueError, "flashgen runs on CUDA tensors", self.call)
        self.raises(ValueError, "flashgen runs on CUDA tensors", self.call, causal="bottom_right")
        # q packed, k batched [batch, seqlen, heads, d]
        self.raises(ValueError, "flashgen runs on CUDA tensors", self.call, k=t(2, 9, 2, 64), v=t(2, 9, 2, 64),
                    cu_seqlens_k=None, max_seqlen_k=None)
        # both batched, only seqused_k: a KV cache through attention()
        self.raises(ValueError, "flashgen runs on CUDA tensors", self.call, q=t(2, 1, 4, 64), k=t(2, 9, 2, 64),
                    v=t(2, 9, 2, 64), cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=None, max_seqlen_k=None,
                    seqused_k=i32(3, 9))

    def test_tables(self):
        self.raises(ValueError, "cu_seqlens_q must be int32", self.call, cu_seqlens_q=self.cu_q.long())
        self.raises(ValueError, "cu_seqlens_k must have shape (3,)", self.call, cu_seqlens_k=i32(0, 12))
        self.raises(ValueError, "contiguous", self.call, cu_seqlens_k=i32(0, 0, 5, 0, 12, 0)[::2])
        self.raises(TypeError, "int32 torch.Tensor", self.call, cu_seqlens_q=[0, 3, 10])
        self.raises(ValueError, "seqused_k must have shape (2,)", self.call, seqused_k=i32(1, 2, 3))
        self.raises(ValueError, "batch + 1 entries", self.call, cu_seqlens_q=i32())

    def test_shapes(self):
        self.raises(ValueError, "q must be packed 3-D", self.call, q=t(2, 5, 4, 64))
        self.raises(ValueError, "k must be 4-D [batch, seqlen", self.call, k=t(12, 2, 64), v=t(12, 2, 64),
                    cu_seqlens_k=None, max_seqlen_k=None)
        self.raises(ValueError, "q has 2 sequences but k and v have batch 3", self.call, k=t(3, 9, 2, 64),
                    v=t(3, 9, 2, 64), cu_seqlens_k=None, max_seqlen_k=None)
        self.raises(ValueError, "every dimension but the last", self.call, v=t(11, 2, 64))
        self.raises(ValueError, "multiple of the heads", self.call, q=t(10, 3, 64))
        self.raises(ValueError, "q has head dim 64 but k has 32", self.call, k=t(12, 2, 32), v=t(12, 2, 32))
        self.raises(ValueError, "unit stride", self.call, q=t(10, 4, 128)[..., ::2])
        self.raises(TypeError, "k has dtype torch.float16", self.call, k=t(12, 2, 64, dtype=torch.float16))
        self.raises(ValueError, "out must have shape (10, 4, 64)", self.call, out=t(10, 4, 32))

    def test_max_seqlen(self):
        self.raises(ValueError, "max_seqlen_q is required with cu_seqlens_q", self.call, max_seqlen_q=None)
        self.raises(ValueError, "max_seqlen_k is required", self.call, max_seqlen_k=None)
        self.raises(TypeError, "synchronise", self.call, max_seqlen_q=torch.tensor(7))
        self.raises(ValueError, "must lie in [0, 10]", self.call, max_seqlen_q=11)
        self.raises(ValueError, "must lie in [0, 12]", self.call, max_seqlen_k=-1)
        self.raises(ValueError, "leave it out", self.call, k=t(2, 9, 2, 64), v=t(2, 9, 2, 64), cu_seqlens_k=None,
                    max_seqlen_k=8)

    def test_options(self):
        self.raises(ValueError, "ambiguous", self.call, causal=True)  # two different cu_seqlens tensors
        self.raises(ValueError, "flashgen runs on CUDA", self.call, causal=True, cu_seqlens_k=self.cu_q,
                    k=self.q[:, :2], v=self.q[:, :2])  # one tensor: every sequence is square
        self.raises(ValueError, "ambiguous", self.call, causal=True, cu_seqlens_k=self.cu_q, k=self.q[:, :2],
                    v=self.q[:, :2], seqused_k=i32(1, 1))
        self.raises(ValueError, "causal must be", self.call, causal="lower")
        self.raises(ValueError, "block_mask is not supported", self.call, block_mask=object())
        self.raises(ValueError, "layout='bshd'", self.call, layout="bhsd")
        self.raises(ValueError, "scale must be positive", self.call, scale=0.0)
        q = self.q.clone().requires_grad_()
        self.raises(RuntimeError, "forward only", self.call, q=q)
        with torch.no_grad():
            self.raises(ValueError, "flashgen runs on CUDA tensors", self.call, q=q)


class KVCacheValidation(Raises):
    def setUp(self):
        _inference._specs.clear()
        self.q, self.kc = t(3, 1, 8, 64), t(3, 32, 2, 64)
        self.pages = t(10, 16, 2, 64)

    def call(self, **kw):
        args = dict(cache_seqlens=i32(1, 2, 3))
        args.update(kw)
        q, kc, vc = args.pop("q", self.q), args.pop("k_cache", self.kc), args.pop("v_cache", self.kc)
        return flashgen.attention_with_kvcache(q, kc, vc, **args)

    def test_valid_reaches_device_check(self):
        for kw in ({}, dict(cache_seqlens=None), dict(cache_seqlens=5), dict(k=t(3, 2, 2, 64), v=t(3, 2, 2, 64)),
                   dict(k_cache=self.pages, v_cache=self.pages, block_table=torch.zeros(3, 4, dtype=torch.int32)),
                   dict(causal=True, num_splits=7, softmax_scale=0.1, return_lse=True, out=t(3, 1, 8, 64))):
            self.raises(ValueError, "flashgen runs on CUDA tensors", self.call, **kw)

    def test_tables(self):
        self.raises(ValueError, "cache_seqlens must be int32", self.call, cache_seqlens=torch.tensor([1, 2, 3]))
        self.raises(ValueError, "cache_seqlens must have shape (3,)", self.call, cache_seqlens=i32(1, 2))
        self.raises(ValueError, "block_table must have shape (3, n)", self.call, k_cache=self.pages,
                    v_cache=self.pages, block_table=torch.zeros(2, 4, dtype=torch.int32))
        self.raises(ValueError, "block_table must be int32", self.call, k_cache=self.pages, v_cache=self.pages,
                    block_table=torch.zeros(3, 4, dtype=torch.int64))
        self.raises(ValueError, "contiguous", self.call, k_cache=self.pages, v_cache=self.pages,
                    block_table=torch.zeros(4, 3, dtype=torch.int32).t())
        self.raises(ValueError, "needs block_table", self.call, k_cache=self.pages, v_cache=self.pages)
        self.raises(ValueError, "does not fit the capacity 32", self.call, cache_seqlens=31, k=t(3, 2, 2, 64),
                    v=t(3, 2, 2, 64))
        self.raises(ValueError, "does not fit the capacity 64", self.call, cache_seqlens=65, k_cache=self.pages,
                    v_cache=self.pages, block_table=torch.zeros(3, 4, dtype=torch.int32))
        self.raises(TypeError, "cache_seqlens must be an int", self.call, cache_seqlens=2.0)

    def test_append_args(self):
        self.raises(ValueError, "both be given", self.call, k=t(3, 1, 2, 64))
        self.raises(ValueError, "cache_seqlens is required with k and v", self.call, cache_seqlens=None,
                    k=t(3, 1, 2, 64), v=t(3, 1, 2, 64))
        self.raises(ValueError, "k and v must be [3, seqlen_new, 2, 64]", self.call, k=t(3, 1, 4, 64),
                    v=t(3, 1, 4, 64))
        self.raises(ValueError, "k and v must be [3, seqlen_new, 2, 64]", self.call, k=t(3, 1, 2, 64),
                    v=t(3, 2, 2, 64))
        self.raises(ValueError, "k must be 4-D [batch, seqlen_new", self.call, k=t(3, 2, 64), v=t(3, 2, 64))
        self.raises(TypeError, "v has dtype torch.float16", self.call, k=t(3, 1, 2, 64),
                    v=t(3, 1, 2, 64, dtype=torch.float16))

    def test_shapes_and_options(self):
        self.raises(ValueError, "q must be 4-D", self.call, q=t(3, 8, 64))
        self.raises(ValueError, "k_cache has batch 3 but q has 2", self.call, q=t(2, 1, 8, 64),
                    cache_seqlens=i32(1, 2))
        self.raises(ValueError, "k_cache and v_cache must agree", self.call, v_cache=t(3, 31, 2, 64))
        self.raises(ValueError, "multiple of the heads", self.call, q=t(3, 1, 3, 64))
        self.raises(ValueError, "head dim 264", self.call, q=t(3, 1, 8, 264), k_cache=t(3, 32, 2, 264),
                    v_cache=t(3, 32, 2, 264))
        self.raises(ValueError, "num_splits must be 0", self.call, num_splits=-1)
        self.raises(TypeError, "num_splits must be an int", self.call, num_splits="2")
        self.raises(ValueError, "causal must be", self.call, causal="lower")
        self.raises(ValueError, "out must have shape (3, 1, 8, 64)", self.call, out=t(3, 8, 1, 64))
        self.raises(RuntimeError, "forward only", self.call, q=self.q.clone().requires_grad_())

    def test_score_modifications(self):
        """The dense path's argument checks (flashgen._scores), forward only."""
        self.raises(ValueError, "softcap must be 0 (off) or positive", self.call, softcap=-1.0)
        self.raises(ValueError, "window_size must be a pair", self.call, window_size=5)
        self.raises(ValueError, "window_size left must be an int in -1 .. 2^31 - 1", self.call, window_size=(-2, 0))
        self.raises(ValueError, "window_size left must be an int in -1 .. 2^31 - 1", self.call, window_size=(2 ** 32, 0))
        self.raises(ValueError, "alibi_slopes has shape (3,)", self.call, alibi_slopes=torch.zeros(3))
        self.raises(TypeError, "sinks must be float32", self.call, sinks=torch.zeros(8, dtype=BF))
        self.raises(RuntimeError, "forward only", self.call, sinks=torch.zeros(8, requires_grad=True))
        self.raises(RuntimeError, "forward only", self.call, alibi_slopes=torch.zeros(8, requires_grad=True))
        for kw in (dict(softcap=30.0), dict(alibi_slopes=torch.zeros(3, 8)), dict(window_size=(127, 0)),
                   dict(sinks=torch.zeros(8))):
            self.raises(ValueError, "flashgen runs on CUDA tensors", self.call, **kw)


@contextlib.contextmanager
def on_cpu():
    """The binding's device steps as no-ops, so that the checked call path
    runs on CPU tensors (the library's calls are patched by the caller)."""
    class Current:
        def __init__(self, index):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    with mock.patch.object(_attention, "_check_device", lambda **kw: None), \
            mock.patch.object(_inference, "_index", lambda t: 0), \
            mock.patch.object(_device, "current", Current), mock.patch.object(_device, "context", lambda i: 1), \
            mock.patch("torch.cuda.current_stream", lambda *a, **kw: types.SimpleNamespace(cuda_stream=7)):
        yield


def desc_of(fn, *args, **kw):
    with on_cpu():
        _inference._specs.clear()
        return fn(*args, **kw)


class KVCachePadding(unittest.TestCase):
    """Head dims that are not multiples of 8 (FlashAttention's kvcache test
    uses 59): _kvcache_padded pads q, the caches and the new rows, calls
    again and copies the appended rows back.  The inner call is replaced by
    a CPU reference (append at cache_seqlens, then attention over each
    sequence's keys, bottom-right causal), so this checks the padding."""

    @staticmethod
    def reference(q, kc, vc, k=None, v=None, cache_seqlens=0, softmax_scale=None, causal=False, return_lse=False,
                  **kw):
        b, sq = q.shape[:2]
        n = cache_seqlens
        if k is not None:
            kc[:, n:n + k.shape[1]] = k
            vc[:, n:n + k.shape[1]] = v
            n += k.shape[1]
        qf, kf, vf = (x.float().transpose(1, 2) for x in (q, kc[:, :n], vc[:, :n]))
        g = qf.shape[1] // kf.shape[1]
        kf, vf = kf.repeat_interleave(g, 1), vf.repeat_interleave(g, 1)
        s = qf @ kf.transpose(-1, -2) * softmax_scale
        if causal:
            i, j = torch.arange(sq)[:, None], torch.arange(n)[None, :]
            s = s.masked_fill(j > i + n - sq, float("-inf"))
        o = (s.softmax(-1) @ vf).transpose(1, 2).to(q.dtype)
        return (o, torch.logsumexp(s, -1)) if return_lse else o

    def setUp(self):
        self.inner, self.calls = _inference.attention_with_kvcache, []

        def fake(q, kc, vc, k=None, v=None, **kw):
            if q.shape[-1] % 8 or vc.shape[-1] % 8:
                return self.inner(q, kc, vc, k, v, **kw)
            self.calls.append((q.shape[-1], vc.shape[-1], kw["softmax_scale"]))
            return self.reference(q, kc, vc, k, v, **kw)
        _inference.attention_with_kvcache = fake

    def tearDown(self):
        _inference.attention_with_kvcache = self.inner

    def test_padded_equals_unpadded(self):
        torch.manual_seed(1)
        for d, dv, causal, new in ((59, 59, True, 2), (12, 40, False, 0), (64, 37, True, 1)):
            q = torch.randn(2, 3, 4, d, dtype=BF)
            kc, vc = torch.randn(2, 16, 2, d, dtype=BF), torch.randn(2, 16, 2, dv, dtype=BF)
            k = torch.randn(2, new, 2, d, dtype=BF) if new else None
            v = torch.randn(2, new, 2, dv, dtype=BF) if new else None
            kc0, vc0 = kc.clone(), vc.clone()
            o, lse = _inference.attention_with_kvcache(q, kc, vc, k, v, cache_seqlens=5, causal=causal, return_lse=True)
            ro, rl = self.reference(q, kc0, vc0, k, v, cache_seqlens=5, softmax_scale=d ** -0.5, causal=causal,
                                    return_lse=True)
            self.assertEqual(tuple(o.shape), (2, 3, 4, dv))
            self.assertTrue(o.is_contiguous())
            self.assertLess(float((o.float() - ro.float()).abs().max()), 2e-2, (d, dv))
            self.assertLess(float((lse - rl).abs().max()), 1e-4, (d, dv))
            # the new rows are in the caller's caches (kc0/vc0: the reference appended into them)
            self.assertTrue(torch.equal(kc, kc0) and torch.equal(vc, vc0), (d, dv))
            self.assertEqual(self.calls[-1], (d + (-d % 8), dv + (-dv % 8), d ** -0.5))
            out = torch.full_like(ro, float("nan"))
            r = _inference.attention_with_kvcache(q, kc.clone(), vc.clone(), cache_seqlens=5, softmax_scale=0.2, out=out)
            self.assertIs(r, out)
            self.assertEqual(self.calls[-1][2], 0.2)
            self.assertFalse(torch.isnan(out).any())


class Descriptors(unittest.TestCase):
    def test_paged(self):
        q, pages = t(3, 2, 8, 64), t(10, 16, 2, 64)
        bt = torch.zeros(3, 5, dtype=torch.int32)
        s = desc_of(_inference._kvcache_spec, q, pages, t(10, 16, 2, 32), None, None, i32(1, 2, 3), bt, True, None,
                    4, None)
        d = s.desc
        self.assertEqual((d.batch, d.heads_q, d.heads_kv, d.seqlen_q, d.seqlen_k, d.head_dim, d.head_dim_v),
                         (3, 8, 2, 2, 80, 64, 32))  # seqlen_k: the capacity, max_pages * page_size
        self.assertEqual((d.page_size, d.num_pages, d.max_pages, d.num_splits), (16, 10, 5, 4))
        self.assertEqual(tuple(d.k_strides), (16 * 2 * 64, 64, 2 * 64))  # page, head, row
        self.assertEqual(tuple(d.v_strides), (16 * 2 * 32, 32, 2 * 32))
        self.assertEqual(tuple(d.o_strides), (2 * 8 * 32, 32, 8 * 32))  # o has v's head dim
        self.assertEqual(d.causal, _lib.FG_CAUSAL_BOTTOM_RIGHT)  # True: FlashAttention's convention
        self.assertEqual((d.seqlens_k, d.block_table), (None, None))  # pointers are set per call
        self.assertEqual((s.o_shape, s.lse_shape, s.action), ((3, 2, 8, 32), (3, 8, 2), "run"))
        self.assertIsNone(s.append_desc)

    def test_int_lengths_and_append(self):
        q, kc = t(2, 1, 4, 64), t(2, 40, 4, 64)
        kn = t(2, 3, 4, 64)
        s = desc_of(_inference._kvcache_spec, q, kc, kc, kn, kn, 10, None, "top_left", 0.5, 0, None)
        self.assertEqual(s.desc.seqlen_k, 13)  # the int and the new rows: no length table
        self.assertEqual(s.append_desc.seqlen_k, 40)  # the append sees the capacity
        self.assertEqual(list(s.knew), [3 * 4 * 64, 64, 4 * 64])  # batch, head, row of k
        self.assertEqual(s.desc.causal, _lib.FG_CAUSAL_TOP_LEFT)
        self.assertAlmostEqual(s.desc.softmax_scale, 0.5)
        s = desc_of(_inference._kvcache_spec, q, kc, kc, None, None, 0, None, False, None, 0, None)
        self.assertEqual(s.action, "zero")  # no key: o = 0, lse = -inf, nothing launched

    def test_varlen(self):
        q, k = t(10, 4, 64), t(12, 2, 64)
        s = desc_of(_inference._varlen_spec, q, k, k, i32(0, 3, 10), i32(0, 5, 12), 7, 7, None, "bottom_right",
                    None, None)
        d = s.desc
        self.assertEqual((d.batch, d.seqlen_q, d.seqlen_k, d.total_q, d.total_k), (2, 7, 7, 10, 12))
        self.assertEqual(tuple(d.q_strides), (0, 64, 4 * 64))  # packed: batch ignored, head, row
        self.assertEqual(tuple(d.k_strides), (0, 64, 2 * 64))
        self.assertEqual(tuple(d.o_strides), (0, 64, 4 * 64))
        self.assertEqual(s.lse_shape, (4, 10))  # FlashAttention-2's varlen lse: [heads, total_q]
        out = torch.zeros(10, 8, 64, dtype=BF)[:, ::2]  # a strided out
        s = desc_of(_inference._varlen_spec, q, k, k, i32(0, 3, 10), i32(0, 5, 12), 7, 7, None, False, None, out)
        self.assertEqual(tuple(s.desc.o_strides), (0, 128, 8 * 64))
        self.assertEqual(s.action, "run")
        # max_seqlen_k = 0 with packed keys: the kernel would be skipped and o
        # zeroed though cu_seqlens_k gives lengths 5 and 7 (a review found it)
        with self.assertRaisesRegex(ValueError, "max_seqlen_k = 0, but the packed tensor has 12 rows"):
            desc_of(_inference._varlen_spec, q, k, k, i32(0, 3, 10), i32(0, 5, 12), 7, 0, None, False, None, out)
        with self.assertRaisesRegex(ValueError, "max_seqlen_q = 0, but the packed tensor has 10 rows"):
            desc_of(_inference._varlen_spec, q, k, k, i32(0, 3, 10), i32(0, 5, 12), 0, 7, None, False, None, out)
        # no packed keys at all: nothing to attend to, o = 0
        k0 = t(0, 2, 64)
        s = desc_of(_inference._varlen_spec, q, k0, k0, i32(0, 3, 10), i32(0, 0, 0), 7, 0, None, False, None, out)
        self.assertEqual(s.action, "zero")


class ModDescriptors(unittest.TestCase):
    def test_kvcache_and_varlen(self):
        """The score modifications on the descriptor: values, the slopes'
        batch stride, the arrays' addresses."""
        q, pages, bt = t(3, 1, 8, 64), t(10, 16, 2, 64), torch.zeros(3, 5, dtype=torch.int32)
        slopes, sinks = torch.zeros(3, 8), torch.zeros(8)
        mods = _scores.scores(softcap=30.0, alibi_slopes=slopes, window_size=(127, 0), sinks=sinks)
        s = desc_of(_inference._kvcache_spec, q, pages, pages, None, None, i32(1, 2, 3), bt, True, None, 0, None,
                    mods)
        d = s.desc
        self.assertEqual((d.softcap, d.window_left, d.window_right, d.alibi_batch_stride), (30.0, 127, 0, 8))
        self.assertEqual((d.alibi_slopes, d.sinks), (slopes.data_ptr(), sinks.data_ptr()))
        s = desc_of(_inference._varlen_spec, t(10, 8, 64), t(12, 2, 64), t(12, 2, 64), i32(0, 3, 10),
                    i32(0, 5, 12), 7, 7, None, "top_left", None, None, _scores.scores(alibi_slopes=torch.zeros(8)))
        self.assertEqual((s.desc.softcap, s.desc.window_left, s.desc.alibi_batch_stride), (0.0, -1, 0))
        self.assertEqual(_scores.NONE.tables(), {"alibi_slopes": None, "sinks": None})


class LibraryChecks(unittest.TestCase):
    """The descriptors the binding builds pass the library's own descriptor
    check (fg_desc_plan: sizes, strides, the inference fields; no GPU), which
    libflashgen.so exports for the C tests."""

    def setUp(self):
        lib = _lib.load()
        if not hasattr(lib, "fg_desc_plan") or not hasattr(lib, "fg_infer_check"):
            self.skipTest("this libflashgen.so does not export fg_desc_plan with the inference checks")

        class Err(C.Structure):
            _fields_ = [("status", C.c_int), ("msg", C.c_char_p)]
        self.fn, self.Err = lib.fg_desc_plan, Err
        self.fn.restype = C.c_int
        self.fn.argtypes = [C.POINTER(_lib.fg_attention_desc), C.c_int, C.c_void_p, C.c_void_p, C.POINTER(Err)]
        self.variant, self.params = C.create_string_buffer(1 << 20), C.create_string_buffer(1 << 20)  # opaque

    def plan(self, spec, **tables):
        d = _lib.fg_attention_desc.from_buffer_copy(spec.desc)
        for field, x in tables.items():
            setattr(d, field, x.data_ptr())
        e = self.Err()
        st = self.fn(C.byref(d), 227 * 1024, self.variant, self.params, C.byref(e))
        return st, (e.msg or b"").decode()

    def test_kvcache(self):
        q, lens = t(3, 1, 32, 128), i32(1, 2, 3)
        for cache, bt, causal, splits in ((t(64, 16, 8, 128), torch.zeros(3, 20, dtype=torch.int32), True, 0),
                                          (t(16, 64, 8, 128), torch.zeros(3, 5, dtype=torch.int32), False, 7),
                                          (t(3, 1000, 8, 128), None, "top_left", 1)):
            spec = desc_of(_inference._kvcache_spec, q, cache, cache, None, None, lens, bt, causal, None, splits, None)
            tables = dict(seqlens_k=lens, **({} if bt is None else dict(block_table=bt)))
            self.assertEqual(self.plan(spec, **tables), (0, ""), f"cache {tuple(cache.shape)}")
        kc, kn = t(3, 1000, 8, 128), t(3, 2, 8, 128)
        spec = desc_of(_inference._kvcache_spec, q, kc, kc, kn, kn, 500, None, True, None, 0, None)
        self.assertEqual(self.plan(spec), (0, ""))  # an int length: no table
        # the score modifications on the inference fields: accepted by the library's plan
        mods = _scores.scores(softcap=30.0, alibi_slopes=torch.zeros(32), window_size=(127, 0),
                              sinks=torch.zeros(32))
        cache, bt = t(64, 16, 8, 128), torch.zeros(3, 20, dtype=torch.int32)
        spec = desc_of(_inference._kvcache_spec, q, cache, cache, None, None, lens, bt, True, None, 7, None, mods)
        self.assertEqual(self.plan(spec, seqlens_k=lens, block_table=bt), (0, ""))
        odd = t(8, 24, 8, 128)  # the page size is the library's to check
        spec = desc_of(_inference._kvcache_spec, q, odd, odd, None, None, lens, torch.zeros(3, 4, dtype=torch.int32),
                       True, None, 0, None)
        st, msg = self.plan(spec, seqlens_k=lens, block_table=torch.zeros(3, 4, dtype=torch.int32))
        self.assertEqual(st, _lib.FG_ERR_UNSUPPORTED)
        self.assertIn("page_size = 24", msg)

    def test_varlen(self):
        qp, kp = t(10, 8, 128), t(12, 2, 128)
        cq, ck, c1 = i32(0, 3, 10), i32(0, 5, 12), i32(0, 1)
        cases = [((qp, kp, kp, cq, ck, 7, 7, None, "bottom_right", None, None), dict(cu_seqlens_q=cq, cu_seqlens_k=ck)),
                 ((qp, t(2, 9, 2, 128), t(2, 9, 2, 128), cq, None, 7, None, i32(3, 9), "top_left", None, None),
                  dict(cu_seqlens_q=cq, seqlens_k=i32(3, 9))),
                 ((t(1, 8, 64), t(1, 8, 64), t(1, 8, 64), c1, c1, 1, 1, None, True, None, None),
                  dict(cu_seqlens_q=c1, cu_seqlens_k=c1)),
                 ((qp, kp, t(12, 2, 64), cq, ck, 7, 7, None, False, None, t(10, 16, 64)[:, ::2]),
                  dict(cu_seqlens_q=cq, cu_seqlens_k=ck))]
        for args, tables in cases:
            spec = desc_of(_inference._varlen_spec, *args)
            self.assertEqual(self.plan(spec, **tables), (0, ""), f"{[tuple(a.shape) for a in args[:3]]}")


class FakeLib:
    """The library's inference calls, as include/flashgen.h describes them,
    recording what they are given; run reads the length table it is handed."""

    def __init__(self, workspace=4096, splits=3):
        self.workspace, self.splits = workspace, splits
        self.plans, self.calls, self.next = {}, [], 100

    @staticmethod
    def lens(ptr, n):
        return None if not ptr else list(C.cast(ptr, C.POINTER(C.c_int32))[:n])

    def fg_attention_plan_create(self, ctx, dref, href):
        self.next += 1
        self.plans[self.next] = _lib.fg_attention_desc.from_buffer_copy(dref._obj)
        href._obj.value = self.next
        self.calls.append(("create", self.next))
        return 0

    def fg_attention_plan_workspace(self, h):
        return self.workspace

    def fg_attention_plan_splits(self, h):
        return self.splits

    def fg_attention_plan_destroy(self, h):
        del self.plans[h]
        self.calls.append(("destroy", h))

    def fg_attention_run(self, plan, q, k, v, o, lse, ws, nbytes, stream):
        d = self.plans[plan]  # a destroyed plan: KeyError
        self.calls.append(("run", plan, dict(q=q, k=k, v=v, o=o, lse=lse, ws=ws, nbytes=nbytes, stream=stream,
                                             lens=self.lens(d.seqlens_k, d.batch), table=d.block_table)))
        return 0

    def fg_kv_append(self, ctx, dref, kn, vn, kst, vst, seqlen_new, kc, vc, advance, stream):
        d = dref._obj
        self.calls.append(("append", dict(lens=self.lens(d.seqlens_k, d.batch), seqlens_k=d.seqlens_k, kst=list(kst),
                                          seqlen_new=seqlen_new, advance=advance, kc=kc, seqlen_k=d.seqlen_k,
                                          table=d.block_table)))
        return 0

    def of(self, kind):
        return [c for c in self.calls if c[0] == kind]


class CallPath(unittest.TestCase):
    def setUp(self):
        self.fake = FakeLib()
        self.patches = contextlib.ExitStack()
        self.patches.enter_context(on_cpu())
        self.patches.enter_context(mock.patch.object(_lib, "inference", lambda *need: self.fake))
        _inference._specs.clear()
        _inference._plans.clear()
        _inference._workspaces.clear()

    def tearDown(self):
        _inference._workspaces.clear()
        _inference._plans.clear()
        _inference._specs.clear()
        self.patches.close()

    def test_decode_steps_reuse_one_plan(self):
        q, kc = t(2, 1, 8, 64), t(2, 64, 2, 64)
        lens = i32(5, 9)
        out = t(2, 1, 8, 64)
        for step in range(5):
            lens += 1  # in place: same tensor, same plan
            o = flashgen.attention_with_kvcache(q, kc, kc, cache_seqlens=lens, out=out)
            self.assertIs(o, out)
        self.assertEqual(len(self.fake.of("create")), 1)
        runs = self.fake.of("run")
        self.assertEqual(len(runs), 5)
        self.assertEqual(runs[-1][2]["lens"], [10, 14])
        self.assertEqual(runs[-1][2]["nbytes"], 4096)
        self.assertTrue(runs[-1][2]["ws"])
        self.assertEqual(runs[-1][2]["stream"], 7)
        # one zeroed workspace for the plan and stream, reused by every step (no memset per call)
        self.assertEqual({r[2]["ws"] for r in runs}, {runs[0][2]["ws"]})
        self.assertEqual(len(_inference._workspaces), 1)
        self.assertEqual(runs[-1][2]["o"], out.data_ptr())
        self.assertEqual(_inference.last_plan(), (3, 4096))
        flashgen.attention_with_kvcache(q, kc, kc, cache_seqlens=i32(1, 2))  # another length tensor: a new plan
        self.assertEqual(len(self.fake.of("create")), 2)
        self.assertEqual(len(_inference._workspaces), 2)
        with mock.patch.object(_inference, "_capturing", lambda device: True):  # under capture: a fresh one
            flashgen.attention_with_kvcache(q, kc, kc, cache_seqlens=lens, out=out)
        self.assertNotEqual(self.fake.of("run")[-1][2]["ws"], runs[0][2]["ws"])
        self.assertEqual(len(_inference._workspaces), 2)
        flashgen.attention_with_kvcache(q, kc, kc, cache_seqlens=lens, num_splits=1)  # another descriptor
        self.assertEqual(len(self.fake.of("create")), 3)

    def test_append_leaves_caller_lengths(self):
        q, pages = t(2, 1, 8, 64), t(6, 16, 2, 64)
        bt = i32(3, 1, 0, 5, 2, 4).view(2, 3)
        lens = i32(4, 17)
        kn = t(2, 2, 2, 64)
        flashgen.attention_with_kvcache(q, pages, pages, k=kn, v=kn, cache_seqlens=lens, block_table=bt)
        (_, app), = self.fake.of("append")
        self.assertEqual(app["lens"], [4, 17])  # written at the caller's lengths
        self.assertEqual(app["seqlens_k"], lens.data_ptr())
        self.assertEqual((app["advance"], app["seqlen_new"], app["kst"]), (0, 2, [2 * 2 * 64, 64, 2 * 64]))
        self.assertEqual((app["kc"], app["table"], app["seqlen_k"]), (pages.data_ptr(), bt.data_ptr(), 48))
        (_, _, run), = self.fake.of("run")
        self.assertEqual(run["lens"], [6, 19])  # attention over the new lengths ...
        self.assertEqual(lens.tolist(), [4, 17])  # ... in a tensor of its own
        self.assertEqual(run["table"], bt.data_ptr())
        self.fake.calls.clear()
        flashgen.attention_with_kvcache(q, pages, pages, k=kn, v=kn, cache_seqlens=7, block_table=bt)
        (_, app), = self.fake.of("append")
        (_, _, run), = self.fake.of("run")
        self.assertEqual((app["lens"], run["lens"]), ([7, 7], None))  # an int: the descriptor holds 9

    def test_zero_keys_and_varlen(self):
        q = t(2, 1, 4, 64)
        o, lse = flashgen.attention_with_kvcache(q, t(2, 0, 4, 64), t(2, 0, 4, 64), return_lse=True,
                                                 out=torch.full((2, 1, 4, 64), math.nan, dtype=BF))
        self.assertTrue(bool((o == 0).all()) and bool(torch.isneginf(lse).all()))
        self.assertEqual(self.fake.calls, [])
        qp, kp = t(10, 4, 64), t(12, 2, 64)
        cu_q, cu_k = i32(0, 3, 10), i32(0, 5, 12)
        o, lse = flashgen.attention(qp, kp, kp, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, max_seqlen_q=7,
                                    max_seqlen_k=7, return_lse=True, causal="top_left")
        self.assertEqual((tuple(o.shape), tuple(lse.shape)), ((10, 4, 64), (4, 10)))
        (_, h), = self.fake.of("create")
        d = self.fake.plans[h]
        self.assertEqual((d.cu_seqlens_q, d.cu_seqlens_k, d.seqlens_k), (cu_q.data_ptr(), cu_k.data_ptr(), None))
        self.assertEqual(d.causal, _lib.FG_CAUSAL_TOP_LEFT)

    def test_eviction_destroys_oldest(self):
        q, kc = t(1, 1, 2, 64), t(1, 32, 2, 64)
        with mock.patch.object(_inference, "_MAX_PLANS", 2):
            tables = [i32(n) for n in range(4)]
            for lens in tables:
                flashgen.attention_with_kvcache(q, kc, kc, cache_seqlens=lens)
            self.assertEqual([c[1] for c in self.fake.of("destroy")], [101, 102])
            self.assertEqual({h for h, _ in _inference._workspaces}, {103, 104})  # evicted plans' workspaces go too
            flashgen.attention_with_kvcache(q, kc, kc, cache_seqlens=tables[3])  # still cached
            self.assertEqual(len(self.fake.of("create")), 4)
            _inference.clear_plans()
            self.assertEqual(self.fake.plans, {})
            self.assertEqual(len(_inference._workspaces), 0)


class Library(unittest.TestCase):
    def test_missing_calls_are_named(self):
        missing = _lib.missing_inference()
        for name in missing:
            with self.assertRaises(flashgen.FlashgenError) as cm:
                _lib.inference(name)
            self.assertEqual(cm.exception.status_name, "FG_ERR_UNSUPPORTED")
            self.assertIn(name, str(cm.exception))
        present = [n for n in _lib.INFERENCE_SIGNATURES if n not in missing]
        self.assertIs(_lib.inference(*present), _lib.load())  # the present ones declare
        if missing:
            self.skipTest(f"this libflashgen.so has no {', '.join(missing)} yet")

    def test_plan_without_driver(self):
        if any(n in _lib.missing_inference() for n in _inference._PLAN_CALLS):
            self.skipTest("this libflashgen.so has no plan/run calls yet (the C side of issue 12)")
        lib = _lib.inference(*_inference._PLAN_CALLS)
        ctx = C.c_void_p()
        self.assertEqual(lib.fg_context_create(C.byref(ctx)), _lib.FG_OK)
        try:
            d = _lib.fg_attention_desc()
            lib.fg_attention_desc_init(C.byref(d), _lib.FG_BF16, 128, 2, 8, 2, 1, 64)
            h = C.c_void_p()
            st = lib.fg_attention_plan_create(ctx, C.byref(d), C.byref(h))
            if st == _lib.FG_OK:
                lib.fg_attention_plan_destroy(h.value)
                self.skipTest("a GPU is present: the no-driver path is not reachable")
            self.assertIsNone(h.value)
            with self.assertRaises(flashgen.FlashgenError) as cm:
                _lib.check(ctx, "fg_attention_plan_create", st)
            self.assertIn(cm.exception.status_name, ("FG_ERR_NO_DRIVER", "FG_ERR_NO_DEVICE"))
            lib.fg_attention_plan_destroy(None)  # does nothing
            if not _lib.missing_inference():  # the append and the table error word, through their ctypes signatures
                lib = _lib.inference()
                d.seqlens_k = 4096
                st = lib.fg_kv_append(ctx, C.byref(d), 4096, 4096, (C.c_int64 * 3)(0, 128, 256), None, 1, 4096, 4096,
                                      0, None)
                self.assertIn(st, (_lib.FG_ERR_NO_DRIVER, _lib.FG_ERR_NO_DEVICE))
                buf = C.create_string_buffer(64)
                st = lib.fg_attention_table_error(ctx, buf, len(buf), None)
                self.assertIn(st, (_lib.FG_ERR_NO_DRIVER, _lib.FG_ERR_NO_DEVICE))
                self.assertIn(b"driver" if st == _lib.FG_ERR_NO_DRIVER else b"", lib.fg_errmsg(ctx))
        finally:
            lib.fg_context_destroy(ctx)


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    bad = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - bad - len(r.skipped)} passed, {bad} failed, {len(r.skipped)} skipped")
    sys.exit(1 if bad else 0)
