#!/usr/bin/env python3
"""The ctypes mirror of include/flashgen.h must match the C compiler's view:
sizeof and every field's offset and size of fg_attention_desc and
fg_block_layout_desc, and the enum values the binding uses.  A C program
generated from the ctypes field lists is compiled against the header and
prints what the compiler sees; a renamed field fails to compile, an added
or reordered one changes a size or an offset.  Because a field appended
into the tail padding changes neither, the field names are also read from
the header's struct declarations and compared in order.  Where the library loads
(FLASHGEN_LIBRARY, as ctest sets it), the binding's fg_attention_desc_init
must also set struct_size to the C sizeof, as the C macro does (how the
structs grow: include/flashgen.h).  Every function the binding declares
(_lib.SIGNATURES and _lib.INFERENCE_SIGNATURES) must take as many arguments as its prototype in the
header.  Needs a C compiler, not torch or a GPU.

  python3 python/tests/test_abi.py [--cc CC] [--include DIR]
"""
import argparse
import ctypes as C
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# _lib.py alone: the package's __init__ imports torch, which this test does not need
_spec = importlib.util.spec_from_file_location("flashgen_lib", os.path.join(HERE, "..", "flashgen", "_lib.py"))
_lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lib)

STRUCTS = (_lib.fg_attention_desc, _lib.fg_block_layout_desc)
ENUMS = ("FG_OK", "FG_ERR_UNSUPPORTED", "FG_ERR_NO_DRIVER", "FG_ERR_NO_DEVICE", "FG_ERR_BAD_LAYOUT", "FG_FP16", "FG_BF16", "FG_E4M3", "FG_CAUSAL_NONE",
         "FG_CAUSAL_BOTTOM_RIGHT", "FG_CAUSAL_TOP_LEFT", "FG_PATH_AUTO", "FG_PATH_MMA", "FG_PATH_WGMMA")


def c_program():
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <flashgen.h>", "int main(void) {"]
    for s in STRUCTS:
        n = s.__name__
        lines.append(f'    printf("{n} sizeof %zu\\n", sizeof({n}));')
        for f, _ in s._fields_:
            lines.append(f'    printf("{n}.{f} offset %zu\\n", offsetof({n}, {f}));')
            lines.append(f'    printf("{n}.{f} size %zu\\n", sizeof((({n} *)0)->{f}));')
    for e in ENUMS:
        lines.append(f'    printf("{e} value %d\\n", (int){e});')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


def header_fields(header_text, name):
    """The field names of `typedef struct name { ... } name;` in order
    (comments removed; `int a, b;`, arrays and pointers understood)."""
    text = re.sub(r"/\*.*?\*/", "", header_text, flags=re.S)
    m = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), text, flags=re.S)
    if not m:
        return None
    names = []
    for decl in m.group(1).split(";"):
        decl = decl.strip()
        if not decl:
            continue
        first, *rest = decl.split(",")
        for d in [first.split()[-1]] + rest:
            names.append(re.sub(r"\[.*\]", "", d).strip().lstrip("*"))
    return names


def field_order(include_dir):
    """{'<struct> fields': [...]} from the header and from the mirror."""
    with open(os.path.join(include_dir, "flashgen.h")) as f:
        text = f.read()
    c, py = {}, {}
    for s in STRUCTS:
        key = f"{s.__name__} fields"
        c[key] = header_fields(text, s.__name__)
        py[key] = [f for f, _ in s._fields_]
    return c, py


def python_view():
    v = {}
    for s in STRUCTS:
        n = s.__name__
        v[f"{n} sizeof"] = C.sizeof(s)
        for f, _ in s._fields_:
            v[f"{n}.{f} offset"] = getattr(s, f).offset
            v[f"{n}.{f} size"] = getattr(s, f).size
    for e in ENUMS:
        v[f"{e} value"] = getattr(_lib, e)
    return v


def prototype_arg_counts(header):
    """name -> number of parameters of each function prototype in the header."""
    text = re.sub(r"/\*.*?\*/", " ", open(header).read(), flags=re.S).replace("\\\n", " ")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))  # no macros
    counts = {}
    for m in re.finditer(r"\b(fg_\w+)\s*\(([^;{}]*?)\)\s*;", text):
        params = m.group(2).strip()
        counts[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--include", default=os.path.join(HERE, "..", "..", "include"))
    args = ap.parse_args()
    if not shutil.which(args.cc):
        print(f"test_abi: skipped: no C compiler ({args.cc})")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
        with open(src, "w") as f:
            f.write(c_program())
        r = subprocess.run([args.cc, "-std=c11", "-I", args.include, src, "-o", exe], capture_output=True, text=True)
        if r.returncode:
            print("test_abi: the ctypes mirror names a field or constant the header does not have:\n" + r.stderr)
            print("0 passed, 1 failed")
            return 1
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    c_view = {}
    for line in out.splitlines():
        key, _, val = line.rpartition(" ")
        c_view[key] = int(val)
    py = python_view()
    c_fields, py_fields = field_order(args.include)
    c_view.update(c_fields)
    py.update(py_fields)
    if os.environ.get("FLASHGEN_LIBRARY"):
        d = _lib.fg_attention_desc()
        _lib.load().fg_attention_desc_init(C.byref(d), _lib.FG_BF16, 64, 1, 1, 1, 16, 16)
        c_view["init struct_size"] = c_view["fg_attention_desc sizeof"]
        py["init struct_size"] = d.struct_size
    protos = prototype_arg_counts(os.path.join(args.include, "flashgen.h"))
    for name, (_res, argtypes) in {**_lib.SIGNATURES, **_lib.INFERENCE_SIGNATURES}.items():
        c_view[f"{name} arguments"] = protos.get(name)
        py[f"{name} arguments"] = len(argtypes)
    bad = [f"  {k}: C {c_view.get(k)}, ctypes {py[k]}" for k in py if c_view.get(k) != py[k]]
    if bad:
        print("test_abi: python/flashgen/_lib.py does not match include/flashgen.h:\n" + "\n".join(bad))
    print(f"{len(py) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
