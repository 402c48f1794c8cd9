"""One fg_context per CUDA device, and the device's primary context made
current around each call.

flashgen runs in the CUDA context current on the calling thread and binds
each fg_context to the first one it sees (include/flashgen.h).  PyTorch
allocates in each device's primary context, but a thread that has made no
CUDA runtime call may have no context current, or another device's.  So the
binding asks the driver for the device's primary context (the one PyTorch
uses) and makes it current for the duration of the call, then restores the
previous one.
"""
import ctypes as C
import threading

from . import _lib

_driver = None
_primary = {}   # device index -> CUcontext (retained for the process)
_contexts = {}  # device index -> fg_context*
_lock = threading.Lock()


def _cuda():
    global _driver
    if _driver is None:
        d = C.CDLL("libcuda.so.1")  # already loaded by PyTorch, so this only finds it
        for name, args in (("cuCtxGetCurrent", [C.POINTER(C.c_void_p)]),
                           ("cuCtxSetCurrent", [C.c_void_p]),
                           ("cuDevicePrimaryCtxRetain", [C.POINTER(C.c_void_p), C.c_int]),
                           ("cuGetErrorName", [C.c_int, C.POINTER(C.c_char_p)])):
            fn = getattr(d, name)
            fn.restype, fn.argtypes = C.c_int, args
        _driver = d
    return _driver


def _cu_check(call, r):
    if r != 0:
        name = C.c_char_p()
        _cuda().cuGetErrorName(r, C.byref(name))
        raise _lib.FlashgenError(call, r, (name.value or b"CUresult %d" % r).decode(), "CUDA driver call failed")


def _primary_ctx(index):
    ctx = _primary.get(index)
    if ctx is None:
        h = C.c_void_p()
        _cu_check("cuDevicePrimaryCtxRetain", _cuda().cuDevicePrimaryCtxRetain(C.byref(h), index))
        ctx = _primary[index] = h.value
    return ctx


def context(index):
    """The fg_context of CUDA device `index`, created on first use while the
    device's primary context is current (so it binds to that one)."""
    with _lock:
        ctx = _contexts.get(index)
        if ctx is None:
            lib = _lib.load()
            h = C.c_void_p()
            st = lib.fg_context_create(C.byref(h))
            if st != _lib.FG_OK:
                msg = lib.fg_errmsg(h).decode(errors="replace") if h.value else ""
                lib.fg_context_destroy(h)
                raise _lib.FlashgenError("fg_context_create", st, _lib.status_name(st), msg)
            ctx = _contexts[index] = h.value
        return ctx


class current:
    """with current(index): the primary context of device `index` is current
    on this thread; the previous one is restored on exit."""

    def __init__(self, index):
        self.index = index

    def __enter__(self):
        cu = _cuda()
        with _lock:
            want = _primary_ctx(self.index)
        prev = C.c_void_p()
        _cu_check("cuCtxGetCurrent", cu.cuCtxGetCurrent(C.byref(prev)))
        self.prev = prev.value
        if self.prev != want:
            _cu_check("cuCtxSetCurrent", cu.cuCtxSetCurrent(want))
        return self

    def __exit__(self, *exc):
        if self.prev != _primary[self.index]:
            _cuda().cuCtxSetCurrent(self.prev)
        return False
