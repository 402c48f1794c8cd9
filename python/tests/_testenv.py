"""What the Python tests share: the package from this checkout on sys.path,
and skipping (exit status 77, which CTest reports as SKIPPED) where torch
or a CUDA GPU is missing."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def require_torch(test, cuda):
    """torch, or exit 77 with a line naming the test and what is missing."""
    try:
        import torch
    except ImportError:
        print(f"{test}: skipped: torch is not installed")
        sys.exit(77)
    if cuda and not torch.cuda.is_available():
        print(f"{test}: skipped: no CUDA GPU")
        sys.exit(77)
    return torch
