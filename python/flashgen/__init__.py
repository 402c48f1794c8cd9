"""flashgen from PyTorch: JIT-specialised FlashAttention forward kernels.

    import torch, flashgen
    q, k, v = (torch.randn(2, 4096, 16, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = flashgen.attention(q, k, v, causal="bottom_right")

A ctypes binding over libflashgen.so (no compile step).  The library is
looked for at $FLASHGEN_LIBRARY (the file or its folder), then in the
repository's build/ folder, then under the install prefixes
($FLASHGEN_PREFIX, sys.prefix, /usr/local), then on the dynamic linker's
search path; flashgen.library_path() says which one loaded.
"""
from ._lib import FlashgenError, LibraryNotFound, library_path
from ._attention import attention
from ._blockmask import BlockLayout, clear_cache
from ._pattern import Pattern

__version__ = "0.1.0"
__all__ = ["attention", "BlockLayout", "Pattern", "FlashgenError", "LibraryNotFound", "library_path", "clear_cache"]
