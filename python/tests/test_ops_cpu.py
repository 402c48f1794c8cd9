#!/usr/bin/env python3
"""flashgen's PyTorch operators (flashgen._ops) without a GPU: the library's
forward and backward are replaced by the attention formula on the CPU, so
everything around them runs for real: the operators' schemas and fake
implementations (opcheck), the gradient formula, torch.compile with
fullgraph=True (no graph break) in training and in inference, out= under
torch.compile, block masks (a BlockLayout's tensors and a Pattern's
number) reaching the kernels in the forward and the backward, a freed
Pattern, and the eager error messages of calls that need gradients.
Skipped (exit 77) without torch, or with a torch older than 2.4.

  python3 python/tests/test_ops_cpu.py
"""
import gc
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_ops_cpu", cuda=False, custom_ops=True)
import flashgen  # noqa: E402
from flashgen import _ops  # noqa: E402

calls = []  # (which, block_mask, deterministic) per kernel call


def bhsd(t, layout):
    return t.transpose(1, 2) if layout == "bshd" else t


def mask_of(causal, sq, sk):
    i, j = torch.arange(sq)[:, None], torch.arange(sk)[None, :]
    return {"top_left": j <= i, "bottom_right": j <= i + sk - sq}.get(causal, torch.ones(sq, sk, dtype=torch.bool))


def probabilities(q, k, v, causal, scale, layout):
    """bhsd float32 q, k and v (k and v repeated per query head), P, and the scale."""
    q, k, v = (bhsd(t, layout).float() for t in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask_of(causal, s.shape[-2], s.shape[-1]), float("-inf"))
    return q, k, v, s, scale


def math_attention(q, k, v, causal, scale, layout):
    """(o in q's layout, lse) in float32 by the formula."""
    q, k, v, s, _ = probabilities(q, k, v, causal, scale, layout)
    return bhsd(torch.softmax(s, -1) @ v, layout), s.logsumexp(-1)


def cpu_forward(q, k, v, causal, scale, layout, block_mask, mods=None):
    assert mods is None or not mods.used, "score modifications are not emulated here"
    calls.append(("forward", block_mask, None))
    o, lse = math_attention(q, k, v, causal, scale, layout)
    return o.to(q.dtype).contiguous(), lse.contiguous()


def cpu_backward(q, k, v, o, lse, dout, causal, scale, layout, deterministic, block_mask, mods=None, dsinks=None):
    """The gradients by the formula (autograd does not run inside an operator)."""
    assert (mods is None or not mods.used) and dsinks is None, "score modifications are not emulated here"
    calls.append(("backward", block_mask, deterministic))
    hk = k.shape[2 if layout == "bshd" else 1]
    qf, kf, vf, s, scale = probabilities(q, k, v, causal, scale, layout)
    p = torch.softmax(s, -1)
    do = bhsd(dout, layout).float()
    dp = do @ vf.transpose(-1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    group = lambda t: t.unflatten(1, (hk, -1)).sum(2)  # sum over each group's query heads
    grads = ((ds @ kf) * scale, group(ds.transpose(-1, -2) @ qf) * scale, group(p.transpose(-1, -2) @ do))
    return tuple(bhsd(g, layout).to(t.dtype).contiguous() for g, t in zip(grads, (q, k, v)))


def inputs(layout="bshd", b=2, sq=24, sk=40, hq=4, hk=2, d=32, dv=16, grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def mk(h, s, w):
        shape = (b, s, h, w) if layout == "bshd" else (b, h, s, w)
        return torch.randn(shape, generator=g).to(torch.bfloat16).requires_grad_(grad)
    return mk(hq, sq, d), mk(hk, sk, d), mk(hk, sk, dv)


class Patched(unittest.TestCase):
    def setUp(self):
        self.saved = (_ops._forward, _ops._backward)
        _ops._forward, _ops._backward = cpu_forward, cpu_backward
        calls.clear()
        torch._dynamo.reset()

    def tearDown(self):
        _ops._forward, _ops._backward = self.saved


class Eager(Patched):
    def test_gradients_reach_inputs(self):
        # GQA, a value head dim of its own, both layouts, each causal mode
        for layout in ("bshd", "bhsd"):
            for causal in (False, "bottom_right", "top_left"):
                q, k, v = inputs(layout)
                dout = torch.randn(flashgen._attention._out_shape(q, v)).to(torch.bfloat16)
                o = flashgen.attention(q, k, v, causal=causal, layout=layout, scale=0.3)
                o.backward(dout)
                want = [t.detach().clone().requires_grad_() for t in (q, k, v)]
                wo, _ = math_attention(*want, {False: "none"}.get(causal, causal), 0.3, layout)
                wo.backward(dout.float())
                torch.testing.assert_close(o.float(), wo.detach(), atol=2e-2, rtol=2e-2)
                for got, w in zip((q, k, v), want):
                    self.assertEqual(got.grad.shape, got.shape)
                    torch.testing.assert_close(got.grad.float(), w.grad.float(), atol=2e-2, rtol=2e-2)

    def test_lse_not_differentiable(self):
        q, k, v = inputs()
        o, lse = flashgen.attention(q, k, v, return_lse=True)
        self.assertTrue(o.requires_grad)
        self.assertFalse(lse.requires_grad)
        self.assertEqual(tuple(lse.shape), (2, 4, 24))
        self.assertEqual(lse.dtype, torch.float32)

    def test_only_q_requires_grad(self):
        q, k, v = inputs()
        k, v = k.detach(), v.detach()
        flashgen.attention(q, k, v).sum().backward()
        self.assertEqual(q.grad.shape, q.shape)

    def test_deterministic_reaches_backward(self):
        q, k, v = inputs()
        flashgen.attention(q, k, v, deterministic=True).sum().backward()
        self.assertEqual([c[2] for c in calls if c[0] == "backward"], [True])

    def test_pattern_kept_alive_by_autograd(self):
        q, k, v = inputs(sq=128, sk=128)
        o = flashgen.attention(q, k, v, block_mask=flashgen.Pattern("sliding_window", window=16, block_q=64,
                                                                    block_k=64))
        gc.collect()
        o.sum().backward()
        fwd, bwd = calls
        self.assertIsInstance(fwd[1], flashgen.Pattern)
        self.assertIs(bwd[1], fwd[1])


class Errors(unittest.TestCase):
    """The messages of attention() without gradients, with them (the
    operator path), with the library's kernels (not patched)."""

    def test_same_messages(self):
        x = torch.zeros(1, 8, 2, 64, dtype=torch.bfloat16, requires_grad=True)
        y = torch.zeros(1, 9, 2, 64, dtype=torch.bfloat16, requires_grad=True)
        for args, kw, exc, text in (((x, x, x), {}, ValueError, "flashgen runs on CUDA tensors"),
                                    ((x, y, y), {"causal": True}, ValueError, "ambiguous"),
                                    ((x, x, x), {"causal": "lower"}, ValueError, "causal must be"),
                                    ((x, x, x), {"scale": -1.0}, ValueError, "scale must be positive"),
                                    ((x, x, torch.zeros(1, 8, 2, 264, dtype=torch.bfloat16, requires_grad=True)), {},
                                     ValueError, "value head dim (v's last dim) 264"),
                                    # a head dim not a multiple of 8 is padded: the same checks, the same messages
                                    ((x[..., :12], x[..., :12], x[..., :12]), {}, ValueError, "flashgen runs on CUDA tensors"),
                                    ((x[..., :12], x[..., :12], x[..., :12]), {"out": x[..., :12].detach()}, RuntimeError,
                                     "out= cannot be used"),
                                    ((x, x, x), {"out": x.detach()}, RuntimeError, "out= cannot be used"),
                                    ((x, x, x), {"deterministic": True, "block_mask": flashgen.Pattern("causal")},
                                     ValueError, "deterministic=True is dense only")):
            for grad in (False, True):
                if not grad and exc is RuntimeError or not grad and "deterministic" in kw:
                    continue  # out= and deterministic= are checked when gradients are needed
                with torch.set_grad_enabled(grad), self.assertRaises(exc) as cm:
                    flashgen.attention(*args, **kw)
                self.assertIn(text, str(cm.exception), f"{kw} grad={grad}")

    def test_freed_pattern(self):
        pat = flashgen.Pattern("causal")
        number = pat._number
        self.assertIs(flashgen._pattern.by_number(number), pat)
        del pat
        gc.collect()
        with self.assertRaisesRegex(RuntimeError, f"Pattern #{number} was freed"):
            flashgen._pattern.by_number(number)
        # as an operator's argument (a compiled backward holds only the number)
        q, k, v = inputs(grad=False)
        with self.assertRaisesRegex(RuntimeError, f"Pattern #{number} was freed before a flashgen operator"):
            torch.ops.flashgen.attention_backward(q, k, v, q, q, q, "none", None, "bshd", False, None, None, None,
                                                  None, 128, 128, number, 0.0, None, -1, -1, None, None)


class Block(torch.nn.Module):
    """qkv projection, flashgen.attention, output projection."""

    def __init__(self, d_model=64, heads=4, block_mask=None):
        super().__init__()
        self.heads, self.block_mask = heads, block_mask
        self.qkv = torch.nn.Linear(d_model, 3 * d_model, dtype=torch.bfloat16)
        self.proj = torch.nn.Linear(d_model, d_model, dtype=torch.bfloat16)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, -1).unbind(2)
        o = flashgen.attention(q, k, v, causal=True, block_mask=self.block_mask)
        return self.proj(o.reshape(b, s, -1))


def run(model, x, grad=True):
    for p in model.parameters():
        p.grad = None
    out = model(x)
    if grad:
        out.float().square().mean().backward()
    return out.detach(), [p.grad for p in model.parameters()]


class Compiled(Patched):
    def check_compiled(self, block_mask=None):
        torch.manual_seed(0)
        model = Block(block_mask=block_mask)
        x = torch.randn(2, 128, 64).to(torch.bfloat16)
        want, want_grads = run(model, x)
        n_eager = len(calls)
        got, got_grads = run(torch.compile(model, fullgraph=True, backend="aot_eager"), x)
        torch.testing.assert_close(got, want)
        for g, w in zip(got_grads, want_grads):
            torch.testing.assert_close(g, w)
        self.assertEqual([c[0] for c in calls[n_eager:]], ["forward", "backward"])
        return calls[n_eager:]

    def test_training_step(self):
        fwd, bwd = self.check_compiled()
        self.assertIsNone(fwd[1])
        self.assertIsNone(bwd[1])

    def test_pattern(self):
        pat = flashgen.Pattern("sliding_window", window=16, block_q=64, block_k=64)
        fwd, bwd = self.check_compiled(pat)
        self.assertIs(fwd[1], pat)
        self.assertIs(bwd[1], pat)

    def test_block_layout(self):
        lay = flashgen.Pattern("sliding_window", window=16, block_q=64, block_k=64).eval(128, 128)
        fwd, bwd = self.check_compiled(lay)
        for got in (fwd[1], bwd[1]):
            self.assertIsInstance(got, flashgen.BlockLayout)
            self.assertEqual(got.BLOCK_SIZE, (64, 64))
            for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
                self.assertTrue(torch.equal(getattr(got, name), getattr(lay, name)), name)

    def test_inference_and_out(self):
        q, k, v = inputs(grad=False)
        f = torch.compile(lambda q, k, v, out: flashgen.attention(q, k, v, causal="bottom_right", out=out),
                          fullgraph=True, backend="aot_eager")
        out = torch.empty(flashgen._attention._out_shape(q, v), dtype=q.dtype)
        with torch.no_grad():
            got = f(q, k, v, out)
        want, _ = math_attention(q, k, v, "bottom_right", None, "bshd")
        self.assertIs(got, out)
        torch.testing.assert_close(out.float(), want, atol=2e-2, rtol=2e-2)
        self.assertEqual([c[0] for c in calls], ["forward"])

    def test_fake_shapes(self):
        # o: q's shape with v's last dim; lse [b, heads_q, seqlen_q] fp32; gradients like q, k, v
        for layout in ("bshd", "bhsd"):
            q, k, v = inputs(layout, grad=False)
            from torch._subclasses.fake_tensor import FakeTensorMode
            with FakeTensorMode() as mode:
                fq, fk, fv = (mode.from_tensor(t) for t in (q, k, v))
                o, lse = _ops.call(fq, fk, fv, False, None, None, layout, False)
                dq, dk, dv = torch.ops.flashgen.attention_backward(fq, fk, fv, o, lse, o, "none", None, layout, False,
                                                                   None, None, None, None, 0, 0, 0, 0.0, None, -1, -1, None,
                                                                   None)
            self.assertEqual(tuple(o.shape), flashgen._attention._out_shape(q, v))
            self.assertTrue(o.is_contiguous())
            self.assertEqual((tuple(lse.shape), lse.dtype), ((2, 4, 24), torch.float32))
            self.assertEqual([t.shape for t in (dq, dk, dv)], [q.shape, k.shape, v.shape])

    def test_opcheck(self):
        if not hasattr(torch.library, "opcheck"):
            self.skipTest("no torch.library.opcheck")
        for layout in ("bshd", "bhsd"):
            q, k, v = inputs(layout)
            args = (q, k, v, "bottom_right", 0.25, layout, False, None, None, None, None, 0, 0, 0)
            torch.library.opcheck(torch.ops.flashgen.attention.default, args)
            o, lse = (t.detach() for t in torch.ops.flashgen.attention(*args))
            dout = torch.randn(o.shape).to(o.dtype)
            bargs = (q.detach(), k.detach(), v.detach(), o, lse, dout) + args[3:] + (0.0, None, -1, -1, None, None)
            torch.library.opcheck(torch.ops.flashgen.attention_backward.default, bargs)


if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    bad = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - bad - len(r.skipped)} passed, {bad} failed, {len(r.skipped)} skipped")
    sys.exit(1 if bad else 0)
