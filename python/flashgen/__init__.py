"""flashgen from PyTorch: JIT-specialised FlashAttention forward kernels.

    import torch, flashgen
    q, k, v = (torch.randn(2, 4096, 16, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = flashgen.attention(q, k, v, causal="bottom_right")
    o = flashgen.attention_with_kvcache(q1, k_cache, v_cache, k=k1, v=v1, cache_seqlens=lens)  # a decode step

A ctypes binding over libflashgen.so (no compile step).  The library is
looked for at $FLASHGEN_LIBRARY (the file or its folder), then in this
package (an installed wheel), then in the repository's build/ folder, then
under the install prefixes ($FLASHGEN_PREFIX, sys.prefix, /usr/local),
then on the dynamic linker's search path; flashgen.library_path() says
which one loaded.  `python -m flashgen` runs the flashgen CLI.

Importing the package needs no torch; the names that work on tensors
(attention, attention_with_kvcache, check_tables, Pattern, BlockLayout,
clear_cache, quantize_fp8, hadamard, Score, TranslationError) import it on
first use.
"""
from ._lib import FlashgenError, LibraryNotFound, library_path

__version__ = "0.1.0"
__all__ = ["attention", "attention_with_kvcache", "check_tables", "BlockLayout", "Pattern", "FlashgenError",
           "LibraryNotFound", "library_path", "clear_cache", "quantize_fp8", "hadamard", "Score", "TranslationError"]

_LAZY = {"attention": "_attention", "attention_with_kvcache": "_inference", "check_tables": "_inference",
         "BlockLayout": "_blockmask", "clear_cache": "_blockmask", "Pattern": "_pattern",
         "quantize_fp8": "_quantize", "hadamard": "_quantize", "Score": "_score_mod",
         "TranslationError": "_score_mod"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flashgen' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
