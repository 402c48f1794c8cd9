"""The Python form of a pattern's element mask (FG_MASK_PYTHON), evaluated
as FlexAttention evaluates a mask_mod.

flashgen renders a validated mask expression (docs/PATTERNS.md) as helper
calls only: `_lt(q_idx, kv_idx)`, `_div(x, _c[0])`, `_sel(c, x, y)`, ...
over the four index names, seqlen_q, seqlen_k, integer literals and the
constants `_c`.  helpers(torch) gives those helpers with the C semantics
of the library's evaluator (64-bit integers, truncating / and %, x/0 = x%0
= 0, comparisons and logic give 0/1), on torch tensors and on Python ints.

Nothing here imports torch: helpers() takes the module (or a stand-in with
a `Tensor` type when only Python ints are evaluated, as the CPU test does).
"""


def helpers(torch):
    """name -> function for every helper the Python form calls."""
    T = torch.Tensor

    def i64(x):
        return x.to(torch.int64) if isinstance(x, T) else int(x)

    def nz(x):
        return x != 0

    def div(x, y):
        if not isinstance(x, T) and not isinstance(y, T):
            if y == 0:
                return 0
            q = abs(x) // abs(y)
            return q if (x >= 0) == (y > 0) else -q
        if not isinstance(y, T):
            return torch.div(x, y, rounding_mode="trunc") if y != 0 else 0 * x
        q = torch.div(x if isinstance(x, T) else torch.full_like(y, x), torch.where(y == 0, 1, y), rounding_mode="trunc")
        return torch.where(y == 0, 0, q)

    def mod(x, y):
        if not isinstance(x, T) and not isinstance(y, T):
            return 0 if y == 0 else x - div(x, y) * y
        r = x - div(x, y) * y
        if isinstance(y, T):
            return torch.where(y == 0, 0, r)
        return r if y != 0 else 0 * r

    def sel(c, x, y):
        if not isinstance(c, T):  # a condition of seqlens and literals only: plain Python truth
            return x if c else y
        return torch.where(nz(c), x, y)

    def mn(x, y):
        return torch.where(x < y, x, y) if isinstance(x, T) or isinstance(y, T) else min(x, y)

    def mx(x, y):
        return torch.where(x > y, x, y) if isinstance(x, T) or isinstance(y, T) else max(x, y)

    return {
        "_lt": lambda x, y: i64(x < y), "_le": lambda x, y: i64(x <= y), "_gt": lambda x, y: i64(x > y),
        "_ge": lambda x, y: i64(x >= y), "_eq": lambda x, y: i64(x == y), "_ne": lambda x, y: i64(x != y),
        "_and": lambda x, y: i64(nz(x) & nz(y)), "_or": lambda x, y: i64(nz(x) | nz(y)), "_not": lambda x: i64(x == 0),
        "_div": div, "_mod": mod, "_min": mn, "_max": mx, "_abs": abs, "_sel": sel,
    }


_cache = {}  # (text, seqlen_q, seqlen_k, device) -> (mask_mod, constant tensors)


def mask_mod(torch, text, consts, seqlen_q, seqlen_k, device, what):
    """A FlexAttention mask_mod(b, h, q_idx, kv_idx) for the Python form
    `text` with these constant values.  The constants are 0-d int64 tensors
    on `device`, and one function is kept per (text, sizes, device) with its
    constants refilled in place: masks that differ only in constants (window
    sizes) reuse FlexAttention's compiled kernel.  So a returned mask_mod is
    valid until the next call with the same text and sizes."""
    key = (text, seqlen_q, seqlen_k, str(device))
    hit = _cache.get(key)
    if hit:
        fn, tensors = hit
        for t, v in zip(tensors, consts):
            t.fill_(v)
        return fn
    tensors = [torch.tensor(v, dtype=torch.int64, device=device) for v in consts]
    env = helpers(torch)
    # the text is the library's rendering of a validated expression: helper
    # calls, the index names, integers and operators only
    # the sequence lengths as 0-d int64 tensors too: arithmetic on them then
    # wraps at 64 bits as the kernel's does (as Python ints, seqlen_k *
    # 2^62 grew without bound, compared differently and overflowed when it
    # met a tensor)
    lens = [torch.tensor(v, dtype=torch.int64, device=device) for v in (seqlen_q, seqlen_k)]
    env.update({"_c": tensors, "seqlen_q": lens[0], "seqlen_k": lens[1]})
    src = f"def mask_mod(b, h, q_idx, kv_idx):\n    return {text} != 0\n"
    exec(compile(src, f"<flashgen mask of {what}>", "exec"), env)
    _cache[key] = (env["mask_mod"], tensors)
    return env["mask_mod"]
