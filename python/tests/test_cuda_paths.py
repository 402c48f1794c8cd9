#!/usr/bin/env python3
"""Where NVRTC and the CUDA headers come from at run time (gen/cuda_paths.h),
as a wheel installs flashgen: a fake site-packages folder holds a copy of the
flashgen CLI (flashgen/_bin), of libflashgen.so (flashgen/_lib) and an
nvidia/cu13 tree (lib and include: links to the NVRTC and headers this
machine has, as the nvidia-cuda-nvrtc / nvidia-cuda-runtime wheels lay them
out).  Checked:
  - with no CUDA variable set, the CLI and the shared library both take
    NVRTC and the headers from that site-packages ("pip package");
  - the environment comes first: $CUDA_HOME, then $FLASHGEN_NVRTC;
  - without the nvidia folder, nothing is taken from site-packages;
  - the header directory reaches NVRTC: a template that includes
    <cuda_fp16.h> compiles.
Needs NVRTC and cuda_fp16.h somewhere on this machine (skipped, exit 77,
otherwise), no GPU and no torch.

  python3 python/tests/test_cuda_paths.py [--cli PATH]
The CLI is --cli, else the one `python -m flashgen` runs; the library is
the one the flashgen package loads (flashgen.library_path()).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import flashgen  # noqa: E402
from flashgen import __main__ as cli  # noqa: E402

CUDA_VARS = ("FLASHGEN_NVRTC", "CUDA_HOME", "CUDA_PATH", "FLASHGEN_SITE_PACKAGES")
CLI = None
TEMPLATES = os.path.join(HERE, "..", "..", "templates")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in CUDA_VARS}
    env["FLASHGEN_CACHE"] = "off"
    env.update(extra)
    return env


def info(exe, env):
    out = subprocess.run([exe, "info"], env=env, capture_output=True, text=True, timeout=60).stdout
    nv = re.search(r"^NVRTC: +[\d.]+ \((.*), from (.*)\)$", out, re.M)
    hd = re.search(r"^headers: (.*) \(from (.*)\)$", out, re.M)
    return (nv.groups() if nv else None), (hd.groups() if hd else None), out


class SitePackages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exe = CLI or cli.cli_path()
        if cls.exe is None:
            print("test_cuda_paths: skipped: no flashgen CLI (build it, or pass --cli)")
            sys.exit(77)
        nv, hd, out = info(cls.exe, dict(os.environ))
        if nv is None or hd is None:  # what info does not name, from a toolkit
            for root in filter(None, (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda")):
                if nv is None and os.path.exists(os.path.join(root, "lib64", "libnvrtc.so.13")):
                    nv = (os.path.join(root, "lib64", "libnvrtc.so.13"), "toolkit")
                if hd is None and os.path.exists(os.path.join(root, "include", "cuda_fp16.h")):
                    hd = (os.path.join(root, "include"), "toolkit")
        if nv is None or hd is None:
            print(f"test_cuda_paths: skipped: no NVRTC or CUDA headers on this machine\n{out}")
            sys.exit(77)
        real_nvrtc = os.path.realpath(nv[0])
        cls.tmp = tempfile.mkdtemp(prefix="fg_paths_")
        cls.site = os.path.join(cls.tmp, "lib", "python3", "site-packages")
        for d in ("flashgen/_bin", "flashgen/_lib", "nvidia/cu13"):
            os.makedirs(os.path.join(cls.site, d))
        # nvidia/cu13/lib: a folder of links, so libnvrtc finds its builtins beside it
        lib = os.path.join(cls.site, "nvidia", "cu13", "lib")
        os.makedirs(lib)
        src = os.path.dirname(real_nvrtc)
        for name in os.listdir(src):
            if name.startswith("libnvrtc"):
                os.symlink(os.path.join(src, name), os.path.join(lib, name))
        if not os.path.exists(os.path.join(lib, "libnvrtc.so.13")):
            os.symlink(real_nvrtc, os.path.join(lib, "libnvrtc.so.13"))
        os.symlink(os.path.realpath(hd[0]), os.path.join(cls.site, "nvidia", "cu13", "include"))
        cls.cli = os.path.join(cls.site, "flashgen", "_bin", "flashgen")
        shutil.copy2(cls.exe, cls.cli)
        libdir = os.path.dirname(os.path.realpath(flashgen.library_path()))
        cls.lib = os.path.join(cls.site, "flashgen", "_lib", "libflashgen.so")
        shutil.copy2(os.path.realpath(flashgen.library_path()), cls.lib)
        for dep in ("liblua5.4.so.0", "libsqlite3.so.0"):  # the copies the build puts beside it (RUNPATH $ORIGIN)
            if os.path.exists(os.path.join(libdir, dep)):
                shutil.copy2(os.path.join(libdir, dep), os.path.join(cls.site, "flashgen", "_lib", dep))
        # a toolkit-like folder for $CUDA_HOME
        cls.home = os.path.join(cls.tmp, "cuda")
        os.makedirs(cls.home)
        os.symlink(lib, os.path.join(cls.home, "lib64"))
        os.symlink(os.path.realpath(hd[0]), os.path.join(cls.home, "include"))
        cls.real_nvrtc = real_nvrtc

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_cli_takes_pip_packages(self):
        nv, hd, out = info(self.cli, clean_env())
        self.assertEqual(nv, (os.path.join(self.site, "nvidia/cu13/lib/libnvrtc.so.13"), "pip package"), out)
        self.assertEqual(hd, (os.path.join(self.site, "nvidia/cu13/include"), "pip package"), out)

    def test_library_takes_pip_packages(self):
        # fg_nvrtc_info of runtime/compile.h (internal; the library exports fg_nvrtc_load)
        fields = ", ".join(f"({n!r}, {t})" for n, t in (("major", "C.c_int"), ("minor", "C.c_int"),
                           ("path", "C.c_char * 512"), ("how", "C.c_char_p"), ("include_dir", "C.c_char * 512"),
                           ("include_how", "C.c_char_p")))
        code = ("import ctypes as C\n"
                f"class Info(C.Structure): _fields_ = [{fields}]\n"
                f"lib = C.CDLL({self.lib!r}); i = Info(); e = (C.c_char * 64)()\n"
                "st = lib.fg_nvrtc_load(C.byref(i), e)\n"
                "print('|'.join([str(st), i.path.decode(), i.how.decode(), i.include_dir.decode(), i.include_how.decode()]))\n")
        # a user's program: run from elsewhere, loading the library by path
        r = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, cwd=self.tmp,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        st, path, how, inc, inc_how = r.stdout.strip().split("|")
        self.assertEqual((st, how, inc_how), ("0", "pip package", "pip package"), r.stdout)
        self.assertEqual(path, os.path.join(self.site, "nvidia/cu13/lib/libnvrtc.so.13"))
        self.assertEqual(inc, os.path.join(self.site, "nvidia/cu13/include"))

    def test_environment_first(self):
        nv, hd, out = info(self.cli, clean_env(CUDA_HOME=self.home))
        self.assertEqual(nv, (os.path.join(self.home, "lib64/libnvrtc.so.13"), "$CUDA_HOME"), out)
        self.assertEqual(hd, (os.path.join(self.home, "include"), "$CUDA_HOME"), out)
        nv, _, out = info(self.cli, clean_env(CUDA_HOME=self.home, FLASHGEN_NVRTC=self.real_nvrtc))
        self.assertEqual(nv, (self.real_nvrtc, "$FLASHGEN_NVRTC"), out)
        # a variable naming a folder without NVRTC is passed over, and says so when nothing loads
        nv, _, out = info(self.cli, clean_env(CUDA_HOME=os.path.join(self.tmp, "nothing")))
        self.assertEqual(nv[1], "pip package", out)

    def test_without_the_package(self):
        moved = os.path.join(self.tmp, "nvidia.moved")
        os.rename(os.path.join(self.site, "nvidia"), moved)
        try:
            nv, hd, out = info(self.cli, clean_env())
        finally:
            os.rename(moved, os.path.join(self.site, "nvidia"))
        self.assertNotIn(self.site, out)
        self.assertNotIn("pip package", out)

    def test_site_packages_variable(self):
        # a CLI outside any site-packages sees the packages of $FLASHGEN_SITE_PACKAGES only
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir, exist_ok=True)
        exe = os.path.join(bindir, "flashgen")
        shutil.copy2(self.cli, exe)
        nv, _, out = info(exe, clean_env())
        self.assertNotIn(self.site, out)
        nv, hd, out = info(exe, clean_env(FLASHGEN_SITE_PACKAGES=f"/nonexistent:{self.site}"))
        self.assertEqual(nv, (os.path.join(self.site, "nvidia/cu13/lib/libnvrtc.so.13"), "pip package"), out)
        self.assertEqual(hd, (os.path.join(self.site, "nvidia/cu13/include"), "pip package"), out)

    def test_python_passes_its_site_packages(self):
        # python -m flashgen hands the running Python's site-packages to the CLI
        probe = os.path.join(self.tmp, "probe.sh")
        with open(probe, "w") as f:
            f.write('#!/bin/sh\necho "$FLASHGEN_SITE_PACKAGES"\n')
        os.chmod(probe, 0o755)
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
        code = (f"import sys; sys.path.insert(0, {pkg!r}); sys.path.append({self.site!r})\n"
                f"from flashgen import __main__ as m; m.cli_path = lambda: {probe!r}; m.main(['info'])\n")
        r = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60)
        self.assertIn(self.site, r.stdout.strip().split(":"), r.stdout + r.stderr)
        r = subprocess.run([sys.executable, "-c", code], env=clean_env(FLASHGEN_SITE_PACKAGES="/mine"),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout.strip(), "/mine", r.stderr)  # one the user set is kept

    def test_headers_reach_nvrtc(self):
        tpl = os.path.join(self.tmp, "templates")
        os.makedirs(tpl, exist_ok=True)
        with open(os.path.join(TEMPLATES, "fg_params.h")) as f:
            params = f.read()
        with open(os.path.join(tpl, "fg_params.h"), "w") as f:
            f.write('#include <cuda_fp16.h>\nstatic_assert(sizeof(__half) == 2, "cuda_fp16.h via the include path");\n'
                    + params)
        r = subprocess.run([self.cli, "compile", "hdim=64", "--arch", "sm_90a"], env=clean_env(FLASHGEN_TEMPLATE_DIR=tpl),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("cubin:", r.stdout)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--cli":
        CLI = os.path.abspath(sys.argv[2])
        del sys.argv[1:3]
    if not os.path.isdir(TEMPLATES):  # outside a source checkout: the header check needs templates/fg_params.h
        SitePackages.test_headers_reach_nvrtc = unittest.skip("no templates/ folder")(SitePackages.test_headers_reach_nvrtc)
    r = unittest.main(exit=False, verbosity=1).result
    bad = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - bad - len(r.skipped)} passed, {bad} failed, {len(r.skipped)} skipped")
    sys.exit(1 if bad else 0)
