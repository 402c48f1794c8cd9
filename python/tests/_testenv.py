"""What the Python tests share: the package from this checkout on sys.path,
and skipping (exit status 77, which CTest reports as SKIPPED) where torch
or a CUDA GPU is missing."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def require_torch(test, cuda, custom_ops=False):
    """torch, or exit 77 with a line naming the test and what is missing
    (custom_ops: torch.library.custom_op, torch >= 2.4)."""
    try:
        import torch
    except ImportError:
        print(f"{test}: skipped: torch is not installed")
        sys.exit(77)
    if cuda and not torch.cuda.is_available():
        print(f"{test}: skipped: no CUDA GPU")
        sys.exit(77)
    if custom_ops and not hasattr(torch.library, "register_autograd"):
        print(f"{test}: skipped: torch {torch.__version__} has no torch.library.custom_op (2.4+)")
        sys.exit(77)
    return torch
