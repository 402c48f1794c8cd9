#!/usr/bin/env python3
"""FlexAttention-style score_mod functions translated into the score
language (python/flashgen/_score_mod.py), without a GPU: each translation
is evaluated back in torch (the language's operators, clamped table reads)
on a grid of (score, b, h, q_idx, kv_idx) and compared with the function
itself run on tensors; captured tensors become tables (row-major, dtypes
converted where exact), captured numbers constants; what the language
cannot express raises TranslationError naming it.  Skipped (exit 77)
without torch.

  python3 python/tests/test_score_mod_cpu.py
"""
import math
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_score_mod_cpu", cuda=False)
from flashgen import _score_mod, _scores  # noqa: E402
from flashgen._score_mod import Score  # noqa: E402
from flashgen._score_mod import TranslationError, translate  # noqa: E402


class _Read:
    """name[index] of the language: the flat table, index clamped to its ends."""

    def __init__(self, t):
        self.t = t

    def __getitem__(self, i):
        return self.t[i.long().clamp(0, self.t.numel() - 1)]


def evaluate(tr, env):
    """The translated text evaluated with torch on the tensors of env."""
    py = tr.text.replace("&&", "&").replace("||", "|")
    py = re.sub(r"!(?!=)", "~", py)
    t = torch.as_tensor
    ns = dict(env, where=lambda c, x, y: torch.where(t(c).bool(), t(x), t(y)), min=lambda x, y: torch.minimum(t(x), t(y)),
              max=lambda x, y: torch.maximum(t(x), t(y)), abs=torch.abs, tanh=torch.tanh, exp2=torch.exp2,
              log2=torch.log2, sin=torch.sin, cos=torch.cos, tan=torch.tan)
    for n, table in tr.tables.items():
        ns[n] = _Read(table)
    ns.update(tr.consts)
    ns["inf"] = math.inf
    return eval(py, {"__builtins__": {}}, ns)  # noqa: S307 (our own translation)


def grid():
    g = torch.Generator().manual_seed(3)
    n = 4000
    return dict(score=torch.randn(n, generator=g) * 20, b=torch.randint(0, 2, (n,), generator=g),
                h=torch.randint(0, 4, (n,), generator=g), q_idx=torch.randint(0, 300, (n,), generator=g),
                kv_idx=torch.randint(0, 300, (n,), generator=g))


class Translate(unittest.TestCase):
    def check(self, fn, want_tables=(), want_consts=None):
        tr = translate(fn)
        env = grid()
        got = evaluate(tr, env).float()
        want = torch.as_tensor(fn(*(env[a] for a in _score_mod.ARGS))).float().expand_as(got)
        self.assertTrue(torch.allclose(got, want, rtol=1e-5, atol=1e-4), f"{tr}: max diff {(got - want).abs().max()}")
        self.assertEqual(sorted(tr.tables), sorted(want_tables))
        if want_consts is not None:
            self.assertEqual(tr.consts, want_consts)
        for t in tr.tables.values():
            self.assertIn(t.dtype, (torch.int32, torch.float32))
            self.assertTrue(t.is_contiguous() and t.dim() == 1)
        return tr

    def test_softcap_closure_constant(self):
        def make(cap):
            return lambda score, b, h, q_idx, kv_idx: cap * torch.tanh(score / cap)
        tr = self.check(make(30.0), want_consts={"cap": 30.0})
        self.assertIn("tanh(", tr.text)

    def test_relative_bias_2d_table(self):
        bias = torch.randn(4, 127)

        def rel(score, b, h, q_idx, kv_idx):
            return score + bias[h, (kv_idx - q_idx).clamp(-63, 63) + 63]
        tr = self.check(rel, want_tables=["bias"])
        self.assertIn("bias[((h * 127) +", tr.text)

    def test_alibi_and_bf16_table(self):
        slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625], dtype=torch.bfloat16)
        # .float(): the function's own product in bfloat16 would round (the kernel's is fp32)
        self.check(lambda s, b, h, q, k: s - slopes[h].float() * abs(q - k), want_tables=["slopes"])

    def test_per_batch_int_table(self):
        offs = torch.tensor([[3, 0, 1, 2], [5, 6, 7, 8]], dtype=torch.int64)
        self.check(lambda s, b, h, q, k: s + (offs[b, h] - q) * 0.01, want_tables=["offs"])

    def test_where_and_conditions(self):
        self.check(lambda s, b, h, q, k: torch.where((q >= k) & ((k > 3) | (h == 1)), s * 2, -s))
        self.check(lambda s, b, h, q, k: torch.where(~(q < k), s, s - 1e30))

    def test_masking_with_inf(self):
        # FlexAttention's test suite masks inside score_mods: where(cond, score, -inf)
        neg = -math.inf
        tr = self.check(lambda s, b, h, q, k: torch.where(q >= k, s, -float("inf")))
        self.assertEqual(tr.text, "where((q_idx >= kv_idx), score, (-inf))")
        self.check(lambda s, b, h, q, k: torch.where(q >= k, s + (q - k), neg), want_consts={})
        self.check(lambda s, b, h, q, k: s.clamp(max=math.inf) * 0.5)

    def test_trig(self):
        # FlexAttention's tests' _trig and _trig2 (tan of an integer index: converted to float)
        self.check(lambda score, b, h, m, n: torch.sin(torch.cos(score)) + torch.tan(b))
        self.check(lambda score, b, h, m, n: torch.cos(torch.sin(score)) + torch.tan(b) + score.sin() * score.cos())

    def test_min_max_exp_log_sigmoid(self):
        self.check(lambda s, b, h, q, k: torch.maximum(torch.minimum(s, s * 0.5), -s) + torch.sigmoid(s * 0.01))
        self.check(lambda s, b, h, q, k: torch.exp(s * 0.01) + torch.log(torch.abs(s) + 1.0) + torch.exp2(s * 0.01))
        self.check(lambda s, b, h, q, k: s.clamp(min=-3.0) + s.clamp(max=2.0) + torch.clamp(s, -1.0, 1.0))

    def test_int_result_becomes_float_and_int_division(self):
        self.check(lambda s, b, h, q, k: q - k)
        self.check(lambda s, b, h, q, k: s + k / (q + 1))  # true division of integers: a float

    def test_global_tensor(self):
        self.check(lambda s, b, h, q, k: s + GLOBAL_BIAS[h], want_tables=["GLOBAL_BIAS"])

    def test_unused_captures_left_out(self):
        bias, unused, n = torch.randn(4), torch.randn(3), 7
        tr = self.check(lambda s, b, h, q, k: s + bias[h] + 0 * (1 if unused is None else 0) + 0 * n,
                        want_tables=["bias"], want_consts={"n": 7})
        self.assertNotIn("unused", tr.text)

    def test_refusals(self):
        bias = torch.randn(4, 4)
        big = torch.tensor([1 << 40])
        cases = [
            (lambda s, b, h, q, k: s if q > k else 0.0, "control flow"),
            (lambda s, b, h, q, k: s + q // 2, "'//'"),
            (lambda s, b, h, q, k: s + q % 2, "'%'"),
            (lambda s, b, h, q, k: torch.softmax(s, 0), "softmax"),
            (lambda s, b, h, q, k: s + bias[h], "2 dimension"),
            (lambda s, b, h, q, k: s + bias[h, :], "slices"),
            (lambda s, b, h, q, k: s + bias[h, s], "float index"),
            (lambda s, b, h, q, k: s + big[0], "past int32"),
            (lambda s, b, h, q, k: s + math.nan, "no NaN"),
            (lambda s, b, h: s, "takes"),
            (lambda s, b, h, q, k: s + bias.sum(), "element by element"),
        ]
        for fn, msg in cases:
            with self.assertRaisesRegex(TranslationError, re.escape(msg)):
                translate(fn)
        with self.assertRaises(TypeError):
            translate("score + 1.0")


class WithLibrary(unittest.TestCase):
    """flashgen.Score through the library's parser (a host context: no GPU)."""

    def setUp(self):
        try:
            from flashgen import _lib
            _lib.load()
        except Exception as e:  # noqa: BLE001 (any load failure: skipped)
            self.skipTest(f"libflashgen not loadable: {e}")

    def test_translations_parse_and_round_trip(self):
        import flashgen
        bias, slopes = torch.randn(4, 127), torch.rand(4)
        for fn in (lambda s, b, h, q, k: s + bias[h, (k - q).clamp(-63, 63) + 63],
                   lambda s, b, h, q, k: s - slopes[h] * abs(q - k),
                   lambda s, b, h, q, k: torch.where((q >= k) & ~(h == 2), torch.tanh(s * 0.1) * 10.0, s - 1e30),
                   lambda s, b, h, q, k: torch.sigmoid(s) + torch.exp(s * 0.001) + torch.log(abs(s) + 1.0) + q / 7,
                   lambda s, b, h, q, k: torch.where(q >= k, s + (q - k), -float("inf")),  # FlexAttention's _rel_causal
                   lambda s, b, h, q, k: torch.sin(torch.cos(s)) + torch.tan(b)):  # its _trig
            sc = flashgen.Score(fn)
            self.assertTrue(sc.text)
            self.assertEqual(flashgen.Score(sc.text, tables=sc.tables, consts=sc.consts).text, sc.text)

    def test_reserved_capture_names(self):
        # captured names that the language reserves (functions, inf) are renamed in the text
        import flashgen
        sin, inf = torch.randn(16), 0.5
        sc = flashgen.Score(lambda s, b, h, q, k: s + sin[k] * inf)
        self.assertEqual(sorted(sc.tables), ["sin_"])
        self.assertEqual(sc.consts, {"inf_": 0.5})
        self.assertEqual(flashgen.Score(sc.text, tables=sc.tables, consts=sc.consts).text, sc.text)

    def test_errors(self):
        import flashgen
        with self.assertRaisesRegex(flashgen.FlashgenError, "column 7"):
            flashgen.Score("score % 2")
        with self.assertRaisesRegex(flashgen.FlashgenError, "unknown name 'nope'"):
            flashgen.Score("score + nope[h]")
        with self.assertRaises(TypeError):
            flashgen.Score(3)
        with self.assertRaises(TypeError):
            flashgen.Score("score * c", consts={"c": "2"})
        with self.assertRaisesRegex(TranslationError, "dtype torch.float64"):
            flashgen.Score("score + t[h]", tables={"t": torch.zeros(2, dtype=torch.float64)})

    def test_translations_are_reused(self):
        """as_score: one Score per translation (the same text, constants and
        captured tensors at the same version), new lambdas included; an
        in-place change of a captured tensor or another constant makes a new
        one; close() drops the memo's and the inference caches' entries."""
        from flashgen import _inference
        bias = torch.randn(4)

        def make(c):
            return lambda score, b, h, q_idx, kv_idx: score * c + bias[h]
        s1, s2 = _score_mod.as_score(make(0.5)), _score_mod.as_score(make(0.5))
        self.assertIs(s1, s2)
        self.assertIsNot(_score_mod.as_score(make(0.25)), s1)
        bias.add_(1.0)  # FlexAttention reads captured tensors at call time
        s3 = _score_mod.as_score(make(0.5))
        self.assertIsNot(s3, s1)
        self.assertIs(_score_mod.as_score(make(0.5)), s3)

        class _FakeSpec:
            score = s3
        _inference._specs["test-key"] = _FakeSpec()
        s3.close()
        self.assertNotIn("test-key", _inference._specs)
        self.assertIsNot(_score_mod.as_score(make(0.5)), s3)

    def test_attention_refuses_out_with_gradients_and_varlen_gradients(self):
        import flashgen
        q = torch.randn(1, 16, 2, 64, dtype=torch.bfloat16, requires_grad=True)
        with self.assertRaisesRegex(RuntimeError, "out= cannot be used"):
            flashgen.attention(q, q, q, score_mod=lambda s, b, h, qi, ki: s * 2.0, out=torch.empty_like(q))
        with self.assertRaisesRegex(NotImplementedError, "alibi_slopes get no gradient"):
            flashgen.attention(q, q, q, score_mod="score * 2.0", alibi_slopes=torch.ones(2, requires_grad=True))
        with self.assertRaisesRegex(RuntimeError, "is forward only"):
            flashgen.attention(q, q, q, score_mod="score * 2.0", cu_seqlens_q=torch.zeros(2, dtype=torch.int32))

    def test_tables_that_require_grad_are_refused(self):
        """A captured table that requires grad would get no gradient (the
        kernel reads a detached copy): refused while grad mode is on, for a
        translated function and for Score(..., tables=)."""
        bias = torch.randn(4, requires_grad=True)
        fn = lambda s, b, h, qi, ki: s + bias[h]  # noqa: E731
        with self.assertRaisesRegex(NotImplementedError, "bias require grad"):
            _scores.scores(score_mod=fn)
        with self.assertRaisesRegex(NotImplementedError, "t require grad"):
            _scores.scores(score_mod=Score("score + t[h]", tables={"t": bias}))
        with torch.no_grad():
            self.assertIsNotNone(_scores.scores(score_mod=fn).score)
        fixed = bias.detach()
        self.assertIsNotNone(_scores.scores(score_mod=lambda s, b, h, qi, ki: s + fixed[h]).score)


GLOBAL_BIAS = torch.randn(4)

if __name__ == "__main__":
    r = unittest.main(exit=False, verbosity=1).result
    print(f"test_score_mod_cpu: {r.testsRun - len(r.failures) - len(r.errors)} passed, "
          f"{len(r.failures) + len(r.errors)} failed")
    sys.exit(0 if r.wasSuccessful() else 1)
