#!/usr/bin/env python3
"""flashgen.attention under torch.compile on the GPU.

- A small module (qkv projection, flashgen.attention with GQA and causal,
  output projection, twice) compiled with fullgraph=True (a graph break
  raises) and the default backend (Inductor): its output and every
  parameter's gradient against the same module run eagerly, relative L2
  error <= 1e-2 (bf16); a compiled step calls flashgen's forward and
  backward kernels once per layer (counted in flashgen._ops).
- The same with a flashgen.Pattern and with a FlexAttention BlockMask.
- Inference: compiled under torch.no_grad, and with out=.
- torch.library.opcheck of both operators on small shapes (its default
  tests: test_schema, test_autograd_registration, test_faketensor,
  test_aot_dispatch_dynamic), bshd and bhsd, a value head dim of its own.

Exit 77 (skipped) without torch, a CUDA GPU, or torch >= 2.4.

  python3 python/tests/test_compile_gpu.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _testenv import require_torch  # noqa: E402

torch = require_torch("test_compile_gpu", cuda=True, custom_ops=True)
import flashgen  # noqa: E402

DEV = "cuda"
failures = []


def report(ok, line):
    print(f"{'ok' if ok else 'FAIL'} {line}", flush=True)
    if not ok:
        failures.append(line)


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-6)).item()


class Attention(torch.nn.Module):
    def __init__(self, d_model, heads, kv_heads, block_mask):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d_model // heads
        self.block_mask = block_mask
        self.q = torch.nn.Linear(d_model, d_model)
        self.kv = torch.nn.Linear(d_model, 2 * kv_heads * self.hd)
        self.proj = torch.nn.Linear(d_model, d_model)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.heads, self.hd)
        k, v = self.kv(x).view(b, s, 2, self.kv_heads, self.hd).unbind(2)
        o = flashgen.attention(q, k, v, causal=True, block_mask=self.block_mask)
        return x + self.proj(o.reshape(b, s, -1))


class Model(torch.nn.Module):
    def __init__(self, block_mask=None, d_model=256, heads=4, kv_heads=2, layers=2):
        super().__init__()
        self.layers = torch.nn.ModuleList(Attention(d_model, heads, kv_heads, block_mask) for _ in range(layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def step(model, x):
    for p in model.parameters():
        p.grad = None
    out = model(x)
    out.float().square().mean().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


counts = {"forward": 0, "backward": 0}


def counting():
    """Counts the calls of the operators' bodies (flashgen._ops._forward and
    _backward, which run the library's kernels)."""
    from flashgen import _ops
    for name in ("forward", "backward"):
        def wrap(*args, _fn=getattr(_ops, "_" + name), _name=name):
            counts[_name] += 1
            return _fn(*args)
        setattr(_ops, "_" + name, wrap)


def compiled_vs_eager(name, block_mask=None, seqlen=512):
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = Model(block_mask).to(DEV, torch.bfloat16)
    x = torch.randn(2, seqlen, 256, device=DEV, dtype=torch.bfloat16)
    want, want_grads = step(model, x)
    try:
        compiled = torch.compile(model, fullgraph=True)
        step(compiled, x)
        before = dict(counts)
        got, got_grads = step(compiled, x)  # the second call runs the compiled graphs
    except Exception as e:  # a graph break under fullgraph=True, or a failure in the operators
        report(False, f"{name}: torch.compile(fullgraph=True) raised {type(e).__name__}: {str(e)[:2000]}")
        return
    err = max([rel(got, want)] + [rel(g, w) for g, w in zip(got_grads, want_grads)])
    calls = {k: counts[k] - before[k] for k in counts}
    layers = len(model.layers)
    ok = err <= 1e-2 and not any(torch.isnan(g).any().item() for g in got_grads) and \
        calls == {"forward": layers, "backward": layers}
    report(ok, f"{name}: compiled (fullgraph) vs eager, output and {len(got_grads)} gradients, max rel err "
               f"{err:.2e} (tol 1e-2); flashgen kernel calls in a compiled step {calls} (want {layers} each)")


def inference():
    torch.manual_seed(1)
    torch._dynamo.reset()
    q, k, v = (torch.randn(2, 300, 4, 64, device=DEV, dtype=torch.float16) for _ in range(3))
    want = flashgen.attention(q, k, v, causal="bottom_right")
    f = torch.compile(lambda q, k, v, out=None: flashgen.attention(q, k, v, causal="bottom_right", out=out),
                      fullgraph=True)
    with torch.no_grad():
        got = f(q, k, v)
        out = torch.full_like(q, float("nan"))
        got_out = f(q, k, v, out)
    err = rel(got, want)
    ok = err <= 1e-3 and got_out is out and torch.equal(out, got)
    report(ok, f"inference: compiled under no_grad vs eager, rel err {err:.1e} (tol 1e-3); out= written, equal")


def opcheck():
    if not hasattr(torch.library, "opcheck"):
        print("opcheck: skipped: no torch.library.opcheck in this torch", flush=True)
        return
    for layout, dv in (("bshd", 64), ("bhsd", 32)):
        g = torch.Generator(device=DEV).manual_seed(2)

        def mk(h, s, w):
            shape = (1, s, h, w) if layout == "bshd" else (1, h, s, w)
            return torch.randn(shape, device=DEV, dtype=torch.bfloat16, generator=g).requires_grad_()
        q, k, v = mk(4, 100, 64), mk(2, 130, 64), mk(2, 130, dv)
        args = (q, k, v, "bottom_right", None, layout, True, None, None, None, None, 0, 0, 0)
        try:
            torch.library.opcheck(torch.ops.flashgen.attention.default, args)
            o, lse = (t.detach() for t in torch.ops.flashgen.attention(*args))
            dout = torch.randn(o.shape, device=DEV, dtype=o.dtype, generator=g)
            # the backward's score-modification arguments have no defaults (flashgen/_ops.py)
            bargs = tuple(t.detach() for t in (q, k, v)) + (o, lse, dout) + args[3:] + (0.0, None, -1, -1, None, None)
            torch.library.opcheck(torch.ops.flashgen.attention_backward.default, bargs)
            report(True, f"opcheck flashgen::attention and flashgen::attention_backward, {layout}, dv={dv}")
            # with sinks and the mutated dsinks argument
            sinks = torch.randn(4, device=DEV, generator=g)
            margs = args[:6] + (False,) + args[7:] + (0.0, None, -1, -1, sinks)  # deterministic: no dsinks
            torch.library.opcheck(torch.ops.flashgen.attention.default, margs)
            o, lse = (t.detach() for t in torch.ops.flashgen.attention(*margs))
            bargs = tuple(t.detach() for t in (q, k, v)) + (o, lse, dout) + margs[3:] + (torch.empty_like(sinks),)
            torch.library.opcheck(torch.ops.flashgen.attention_backward.default, bargs)
            report(True, f"opcheck of both with sinks and dsinks, {layout}, dv={dv}")
        except Exception as e:
            report(False, f"opcheck {layout} dv={dv}: {type(e).__name__}: {str(e)[:2000]}")


def flex_block_mask(seqlen):
    try:
        from torch.nn.attention.flex_attention import create_block_mask
    except ImportError:
        return None
    band = lambda b, h, q, k: (q // 128 - k // 128).abs() <= 1  # block-aligned: every block full or empty
    return create_block_mask(band, None, None, seqlen, seqlen, device=DEV)


def main():
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    counting()
    compiled_vs_eager("dense")
    pattern = flashgen.Pattern("sliding_window", window=100)
    compiled_vs_eager("Pattern sliding_window", pattern)
    bm = flex_block_mask(512)
    if bm is None:
        print("FlexAttention BlockMask: skipped: no torch.nn.attention.flex_attention", flush=True)
    else:
        compiled_vs_eager("FlexAttention BlockMask", bm)
    inference()
    opcheck()
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
