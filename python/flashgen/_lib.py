"""The shared library: where it is found, the C structs mirrored with ctypes,
and the signatures of the calls the binding makes.

Nothing here imports torch, so the struct mirror can be checked against
include/flashgen.h (python/tests/test_abi.py) on a machine without it.
"""
import ctypes as C
import os
import sys
import threading

# fg_status, fg_dtype, fg_causal, fg_kernel_path (include/flashgen.h)
FG_OK = 0
FG_ERR_UNSUPPORTED = 2
FG_ERR_NO_DRIVER = 3
FG_ERR_NO_DEVICE = 4
FG_ERR_BAD_LAYOUT = 10
FG_FP16, FG_BF16, FG_E4M3 = 0, 1, 2
FG_CAUSAL_NONE, FG_CAUSAL_BOTTOM_RIGHT, FG_CAUSAL_TOP_LEFT = 0, 1, 2
FG_PATH_AUTO, FG_PATH_MMA, FG_PATH_WGMMA = 0, 1, 2
FG_MASK_TEXT, FG_MASK_CUDA, FG_MASK_PYTHON = 0, 1, 2


class fg_block_layout_desc(C.Structure):
    _fields_ = [
        ("batch", C.c_int), ("heads", C.c_int),
        ("num_q_blocks", C.c_int), ("num_kv_blocks", C.c_int),
        ("block_q", C.c_int), ("block_k", C.c_int),
        ("kv_num_blocks", C.POINTER(C.c_int32)),
        ("kv_indices", C.POINTER(C.c_int32)),
        ("full_kv_num_blocks", C.POINTER(C.c_int32)),
        ("full_kv_indices", C.POINTER(C.c_int32)),
    ]


class fg_attention_desc(C.Structure):
    # struct_size first: how the struct grows (include/flashgen.h); set by
    # fg_attention_desc_init below
    _fields_ = [
        ("struct_size", C.c_uint32),
        ("dtype", C.c_int), ("head_dim", C.c_int),
        ("batch", C.c_int), ("heads_q", C.c_int), ("heads_kv", C.c_int),
        ("seqlen_q", C.c_int), ("seqlen_k", C.c_int),
        ("q_strides", C.c_int64 * 3), ("k_strides", C.c_int64 * 3),
        ("v_strides", C.c_int64 * 3), ("o_strides", C.c_int64 * 3),
        ("softmax_scale", C.c_float),
        ("causal", C.c_int),
        ("layout", C.c_void_p),
        ("block_m", C.c_int), ("block_n", C.c_int), ("warps", C.c_int), ("stages", C.c_int),
        ("path", C.c_int),
        # appended after the first version (include/flashgen.h): 0 = head_dim
        ("head_dim_v", C.c_int),
        # read by fg_attention_backward only
        ("deterministic", C.c_int),
        ("do_strides", C.c_int64 * 3), ("dq_strides", C.c_int64 * 3),
        ("dk_strides", C.c_int64 * 3), ("dv_strides", C.c_int64 * 3),
        # inference (docs/INFERENCE.md)
        ("cu_seqlens_q", C.c_void_p), ("cu_seqlens_k", C.c_void_p),
        ("total_q", C.c_int), ("total_k", C.c_int),
        ("seqlens_k", C.c_void_p), ("block_table", C.c_void_p),
        ("page_size", C.c_int), ("num_pages", C.c_int), ("max_pages", C.c_int),
        ("num_splits", C.c_int),
        # score modifications (docs/SCORE-WIRING.md); the window's off is -1
        ("softcap", C.c_float),
        ("alibi_slopes", C.c_void_p), ("alibi_batch_stride", C.c_int64),
        ("window_left", C.c_int), ("window_right", C.c_int),
        ("sinks", C.c_void_p),
        ("score", C.c_void_p),
        # FP8 (FG_E4M3 only): output dtype, device fp32 descales
        ("out_dtype", C.c_int),
        ("q_descale", C.c_void_p), ("k_descale", C.c_void_p), ("v_descale", C.c_void_p),
        ("descale_per_head", C.c_int),
        # read by fg_attention_backward only: device fp32 [heads_q], d loss / d sinks
        ("dsinks", C.c_void_p),
    ]


class fg_score_arg(C.Structure):
    """include/flashgen.h's fg_score_arg (frozen: no struct_size)."""
    _fields_ = [("name", C.c_char_p), ("kind", C.c_int), ("i", C.c_int64), ("f", C.c_double), ("data", C.c_void_p),
                ("n", C.c_int64)]


FG_SCORE_CONST_INT, FG_SCORE_CONST_FLOAT, FG_SCORE_TABLE_INT32, FG_SCORE_TABLE_FLOAT = 0, 1, 2, 3


class FlashgenError(RuntimeError):
    """A call into the library failed.  .status is the fg_status code,
    .status_name its name (FG_ERR_...), and the message is fg_errmsg's."""

    def __init__(self, call, status, status_name, message):
        self.call, self.status, self.status_name, self.message = call, status, status_name, message
        super().__init__(f"{call}: {status_name}: {message}" if message else f"{call}: {status_name}")


class LibraryNotFound(OSError):
    """libflashgen.so was not found or did not load; the message lists every
    place that was tried and why each failed."""


_SONAMES = ("libflashgen.so", "libflashgen.so.0")


def _candidates():
    """(path, how it was chosen) in the order they are tried."""
    env = os.environ.get("FLASHGEN_LIBRARY")
    if env:
        if os.path.isdir(env):
            yield from ((os.path.join(env, n), "$FLASHGEN_LIBRARY") for n in _SONAMES)
        else:
            yield env, "$FLASHGEN_LIBRARY"
        return  # an explicit choice is never silently replaced
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "_lib", "libflashgen.so"), "this package (the wheel)"
    repo = os.path.dirname(os.path.dirname(here))  # python/flashgen -> repository root
    yield os.path.join(repo, "build", "libflashgen.so"), "build tree"
    prefixes = [os.environ.get("FLASHGEN_PREFIX"), sys.prefix, "/usr/local"]
    if os.path.basename(os.path.dirname(here)) in ("site-packages", "dist-packages"):
        # a package installed under PREFIX/lib/pythonX.Y/site-packages/flashgen
        prefixes.append(os.path.normpath(os.path.join(here, "..", "..", "..", "..")))
    seen = set()
    for p in filter(None, prefixes):
        for libdir in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
            path = os.path.join(p, libdir, "libflashgen.so.0")
            if path not in seen:
                seen.add(path)
                yield path, "install prefix"
    yield "libflashgen.so.0", "dynamic linker search path (LD_LIBRARY_PATH, ldconfig)"


def export_site_packages():
    """Sets $FLASHGEN_SITE_PACKAGES, unless it is set, to this Python's
    site-packages folders (sys.path order), where the library and the CLI
    look for the nvidia-* packages' NVRTC and CUDA headers (gen/cuda_paths.h):
    a virtual environment may see them only through its base's folders."""
    if os.environ.get("FLASHGEN_SITE_PACKAGES"):
        return
    dirs = []
    for p in sys.path:
        p = os.path.abspath(p) if p else ""
        if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p) and p not in dirs \
                and ":" not in p:
            dirs.append(p)
    if dirs:
        os.environ["FLASHGEN_SITE_PACKAGES"] = ":".join(dirs)


_P = C.c_void_p
# name -> (restype, argtypes) of every C function the binding calls; test_abi.py
# checks each argument count against the prototype in include/flashgen.h
SIGNATURES = {
    "fg_status_name": (C.c_char_p, [C.c_int]),
    "fg_context_create": (C.c_int, [C.POINTER(_P)]),
    "fg_context_destroy": (None, [_P]),
    "fg_errmsg": (C.c_char_p, [_P]),
    "fg_block_layout_create": (C.c_int, [_P, C.POINTER(fg_block_layout_desc), C.POINTER(_P)]),
    "fg_block_layout_destroy": (None, [_P, _P]),
    "fg_attention_desc_init_sized": (None, [C.POINTER(fg_attention_desc), C.c_size_t, C.c_int, C.c_int, C.c_int,
                                            C.c_int, C.c_int, C.c_int, C.c_int]),
    "fg_attention_forward": (C.c_int, [_P, C.POINTER(fg_attention_desc), _P, _P, _P, _P, _P, _P]),
    "fg_attention_prepare": (C.c_int, [_P, C.POINTER(fg_attention_desc)]),
    "fg_attention_kernel_name": (C.c_int, [_P, C.POINTER(fg_attention_desc), C.c_char_p, C.c_size_t]),
    "fg_attention_backward_workspace": (C.c_int, [_P, C.POINTER(fg_attention_desc), C.POINTER(C.c_size_t)]),
    "fg_attention_backward": (C.c_int, [_P, C.POINTER(fg_attention_desc)] + [_P] * 10 + [C.c_size_t, _P]),
    "fg_pattern_create": (C.c_int, [_P, C.c_char_p, C.c_char_p, C.POINTER(_P)]),
    "fg_pattern_destroy": (None, [_P]),
    "fg_pattern_name": (C.c_char_p, [_P]),
    "fg_pattern_mask": (C.c_char_p, [_P, C.c_int]),
    "fg_pattern_mask_consts": (C.c_int, [_P, C.POINTER(C.c_char_p), C.POINTER(C.c_int64), C.c_int]),
    "fg_pattern_eval": (C.c_int, [_P, _P, C.c_int, C.c_int, C.c_int, C.c_int, C.c_int, C.c_int,
                                  C.POINTER(fg_block_layout_desc)]),
    "fg_pattern_layout": (C.c_int, [_P, _P, C.c_int, C.c_int, C.c_int, C.c_int, C.c_int, C.c_int, C.POINTER(_P)]),
    "fg_score_create": (C.c_int, [_P, C.c_char_p, C.POINTER(fg_score_arg), C.c_int, C.POINTER(_P)]),
    "fg_score_destroy": (None, [_P]),
    "fg_score_text": (C.c_char_p, [_P]),
}

# The inference calls (plan/run, fg_kv_append, the table error word): declared
# on first use by inference(), so that a library built before them still
# loads for everything else; test_abi.py checks them like SIGNATURES.
INFERENCE_SIGNATURES = {
    "fg_attention_plan_create": (C.c_int, [_P, C.POINTER(fg_attention_desc), C.POINTER(_P)]),
    "fg_attention_plan_workspace": (C.c_size_t, [_P]),
    "fg_attention_plan_splits": (C.c_int, [_P]),
    "fg_attention_run": (C.c_int, [_P, _P, _P, _P, _P, _P, _P, C.c_size_t, _P]),
    "fg_attention_plan_destroy": (None, [_P]),
    "fg_attention_table_error": (C.c_int, [_P, C.c_char_p, C.c_size_t, _P]),
    "fg_kv_append": (C.c_int, [_P, C.POINTER(fg_attention_desc), _P, _P, C.POINTER(C.c_int64), C.POINTER(C.c_int64),
                               C.c_int, _P, _P, C.c_int, _P]),
}


def _declare(lib):
    for name, (res, args) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    sized = lib.fg_attention_desc_init_sized

    def fg_attention_desc_init(desc, *args):
        """The C macro of the same name: fg_attention_desc_init_sized with
        this mirror's size, which sets desc.struct_size."""
        sized(desc, C.sizeof(fg_attention_desc), *args)

    lib.fg_attention_desc_init = fg_attention_desc_init
    return lib


_lib = None
_lib_path = None
_lock = threading.Lock()


def load():
    """The loaded library (loaded on first use).  Raises LibraryNotFound."""
    global _lib, _lib_path
    if _lib is not None:  # the per-call path: no lock once loaded
        return _lib
    with _lock:
        if _lib is None:
            export_site_packages()  # read when the library first loads NVRTC
            tried = []
            for path, how in _candidates():
                if os.sep in path and not os.path.exists(path):
                    tried.append(f"  {path} ({how}): no such file")
                    continue
                try:
                    lib = C.CDLL(path)
                except OSError as e:
                    tried.append(f"  {path} ({how}): {e}")
                    continue
                try:
                    _lib = _declare(lib)
                except AttributeError as e:
                    tried.append(f"  {path} ({how}): not a flashgen library: {e}")
                    continue
                _lib_path = path
                break
            if _lib is None:
                raise LibraryNotFound(
                    "libflashgen.so not found; tried:\n" + "\n".join(tried) +
                    "\nBuild it (cmake -S . -B build && cmake --build build) or set FLASHGEN_LIBRARY "
                    "to the library file or its folder.")
        return _lib


def missing_inference():
    """The inference calls (INFERENCE_SIGNATURES) the loaded library lacks:
    [] for a library built with all of include/flashgen.h's inference API."""
    lib = load()
    return [n for n in INFERENCE_SIGNATURES if not hasattr(lib, n)]


_declared = set()


def inference(*need):
    """The library, with the inference calls `need` (default: all) declared.
    Raises FlashgenError (FG_ERR_UNSUPPORTED) naming those it lacks (a
    library built before them)."""
    lib = load()
    need = need or tuple(INFERENCE_SIGNATURES)
    if _declared.issuperset(need):
        return lib
    missing = [n for n in need if not hasattr(lib, n)]
    if missing:
        raise FlashgenError(missing[0], FG_ERR_UNSUPPORTED, "FG_ERR_UNSUPPORTED",
                            f"{_lib_path} has no {', '.join(missing)}: it was built before that part of the inference "
                            "API of include/flashgen.h; rebuild it")
    for name in need:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = INFERENCE_SIGNATURES[name]
        _declared.add(name)
    return lib


def library_path():
    """The path the library was loaded from (loads it if needed)."""
    load()
    return _lib_path


def status_name(status):
    return load().fg_status_name(status).decode()


def check(ctx, call, status):
    """Raises FlashgenError with fg_errmsg(ctx) when status is not FG_OK."""
    if status != FG_OK:
        lib = load()
        msg = lib.fg_errmsg(ctx).decode(errors="replace")
        raise FlashgenError(call, status, status_name(status), msg)
