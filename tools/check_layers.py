#!/usr/bin/env python3
"""The C sources form layers, one folder each, lowest first:

    gen < cache < select < runtime < autotune < tools

A file may include, and its object may call, only its own layer and the
layers below it; include/ (the public header) and templates/ (the kernel
sources and fg_params.h, shared by host and device) are below them all.
Two checks, so that a circle between folders fails CI:

  1. every `#include "..."` of every .c/.h file in a layer folder;
  2. with --build DIR: every undefined symbol of every object file of the
     library and the CLI (DIR/CMakeFiles/*.dir/<folder>/*.o) is defined in
     its own or a lower layer (this catches a call made through a
     hand-written declaration, which the include check cannot see).

A folder with C files that is not in the order fails too: a new folder
takes its place in LAYERS first.

  python3 tools/check_layers.py [--root DIR] [--build DIR] [--self-test]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

LAYERS = ["gen", "cache", "select", "runtime", "autotune", "tools"]
BELOW_ALL = ["include", "templates"]   # may be included from any layer
NOT_LAYERS = {"tests", "python", "bench", "docs", "cmake"}  # and build*, .*
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def level(folder):
    if folder in BELOW_ALL:
        return -1
    return LAYERS.index(folder) if folder in LAYERS else None


def resolve(root, src_dir, name):
    """The folder an include names: "dir/file" from the root, else the
    including file's folder, then the -I folders (templates/, include/)."""
    for base in (root, os.path.join(root, src_dir)) + tuple(os.path.join(root, b) for b in BELOW_ALL):
        path = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(path):
            return os.path.relpath(path, root).split(os.sep)[0]
    return None


def c_folders(root):
    out = []
    for d in sorted(os.listdir(root)):
        if d in NOT_LAYERS or d.startswith((".", "build")) or not os.path.isdir(os.path.join(root, d)):
            continue
        if any(f.endswith((".c", ".h")) for _, _, fs in os.walk(os.path.join(root, d)) for f in fs):
            out.append(d)
    return out


def check_includes(root):
    errors = []
    for folder in c_folders(root):
        lv = level(folder)
        if lv is None:
            errors.append(f"{folder}/: a folder of C files that is not a layer; add it to LAYERS in tools/check_layers.py")
            continue
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            for f in sorted(files):
                if not f.endswith((".c", ".h", ".cuh")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                for m in INCLUDE.finditer(text):
                    target = resolve(root, os.path.dirname(rel), m.group(1))
                    if target is None:
                        errors.append(f'{rel}: #include "{m.group(1)}" names no file of the tree')
                        continue
                    tl = level(target)
                    if tl is None or tl > lv:
                        line = text.count("\n", 0, m.start()) + 1
                        errors.append(f'{rel}:{line}: #include "{m.group(1)}": {folder} (layer {lv}) may not use '
                                      f"{target} (layer {tl if tl is not None else '?'})")
    return errors


def nm(path, defined):
    args = ["nm", "-P", "--defined-only" if defined else "--undefined-only", path]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def check_symbols(root, build):
    """Objects of the layer folders under build/CMakeFiles/<target>.dir/."""
    objs = {}
    cmf = os.path.join(build, "CMakeFiles")
    for target in sorted(os.listdir(cmf)) if os.path.isdir(cmf) else []:
        tdir = os.path.join(cmf, target)
        for folder in LAYERS:
            fdir = os.path.join(tdir, folder)
            if os.path.isdir(fdir):
                for f in sorted(os.listdir(fdir)):
                    if f.endswith(".o"):
                        objs.setdefault(f"{folder}/{f[:-2]}", os.path.join(fdir, f))
    if not objs:
        return [f"--build {build}: no object files of the layer folders found"]
    where = {}
    for name, path in objs.items():
        for sym in nm(path, True):
            where.setdefault(sym, name.split("/")[0])
    errors = []
    for name, path in objs.items():
        folder = name.split("/")[0]
        for sym in sorted(nm(path, False)):
            owner = where.get(sym)
            if owner is not None and level(owner) > level(folder):
                errors.append(f"{name}: calls {sym}, defined in {owner}/ (layer {level(owner)} > {folder}'s {level(folder)})")
    return errors


def self_test():
    """The check must fail on a circle: a lower folder including a higher one."""
    tmp = tempfile.mkdtemp()
    try:
        for d in ("gen", "runtime", "include"):
            os.makedirs(os.path.join(tmp, d))
        with open(os.path.join(tmp, "runtime", "r.h"), "w") as f:
            f.write('#include "gen/g.h"\n')
        with open(os.path.join(tmp, "gen", "g.h"), "w") as f:
            f.write('#include "include_ok.h"\n')
        with open(os.path.join(tmp, "include", "include_ok.h"), "w") as f:
            f.write("\n")
        ok = check_includes(tmp)
        with open(os.path.join(tmp, "gen", "g.h"), "a") as f:
            f.write('#include "runtime/r.h"\n')
        bad = check_includes(tmp)
        os.makedirs(os.path.join(tmp, "stray"))
        with open(os.path.join(tmp, "stray", "s.c"), "w") as f:
            f.write("\n")
        stray = check_includes(tmp)
        # objects: gen/low.o calls fg_up, which autotune/up.o defines
        calls = None
        cc = shutil.which("cc") and shutil.which("nm")
        if cc:
            srcs = {"gen/low": "void fg_up(void); void fg_low(void) { fg_up(); }\n",
                    "autotune/up": "void fg_up(void) {}\n"}
            for name, text in srcs.items():
                obj = os.path.join(tmp, "CMakeFiles", "lib.dir", name + ".c.o")
                os.makedirs(os.path.dirname(obj), exist_ok=True)
                os.makedirs(os.path.join(tmp, os.path.dirname(name)), exist_ok=True)
                with open(os.path.join(tmp, name + ".c"), "w") as f:
                    f.write(text)
                subprocess.run(["cc", "-c", os.path.join(tmp, name + ".c"), "-o", obj], check=True)
            calls = check_symbols(tmp, tmp)
    finally:
        shutil.rmtree(tmp)
    results = [("a downward include passes", ok == []),
               ("an upward include fails", any("gen/g.h:2" in e for e in bad)),
               ("an undeclared folder fails", any(e.startswith("stray/") for e in stray))]
    if calls is not None:
        results.append(("an upward call fails", any(e.startswith("gen/low.c: calls fg_up") for e in calls)))
    for what, good in results:
        print(f"self-test: {'ok  ' if good else 'FAIL'} {what}")
    return all(g for _, g in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--build", help="build folder: also check the object files' symbols")
    ap.add_argument("--self-test", action="store_true", help="first check that the check catches a circle")
    args = ap.parse_args()
    if args.self_test and not self_test():
        return 1
    errors = check_includes(args.root)
    if args.build:
        if not shutil.which("nm"):
            print("check_layers: nm not found: symbol check skipped")
        else:
            errors += check_symbols(args.root, args.build)
    print("layers: " + " < ".join(LAYERS) + f" (below all: {', '.join(BELOW_ALL)})")
    for e in errors:
        print("  " + e)
    print(f"{len(errors)} violation(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
