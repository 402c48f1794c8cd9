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


def refusals(call, bad):
    """The GPU tests' argument-error check: for each (kwargs, exception) in
    bad, call(**kwargs) must raise that exception (printed as refused);
    returns a failure string for each that does not."""
    fails = []
    for kw, exc in bad:
        try:
            call(**kw)
            fails.append(f"{list(kw)}: no {exc.__name__}")
        except exc as e:
            print(f"ok   refused {list(kw)}: {e}")
    return fails


def gpu_main(torch, flashgen, doc):
    """A GPU test's start: --seed parsed (default 1), TF32 off (float64
    references), torch seeded, the GPU / torch / library line printed."""
    import argparse
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(args.seed)
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}  library {flashgen.library_path()}")
    return args
