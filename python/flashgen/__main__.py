"""python -m flashgen ARGS (and the `flashgen` console script of the wheel):
runs the flashgen CLI, `flashgen info`, `flashgen compile SPEC`, ...

The CLI is the C executable the wheel installs as flashgen/_bin/flashgen;
in a source checkout, the repository's build/flashgen.  It finds NVRTC and
the CUDA headers itself (`flashgen info` says which, and from where: the
environment, the nvidia-* pip packages of this Python's site-packages, which
it is told through $FLASHGEN_SITE_PACKAGES, the dynamic linker or the
toolkit).
"""
import os
import sys

from ._lib import export_site_packages

_HERE = os.path.dirname(os.path.abspath(__file__))


def cli_path():
    """The flashgen executable to run, or None."""
    for p in (os.path.join(_HERE, "_bin", "flashgen"),
              os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build", "flashgen")):
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def main(argv=None):
    exe = cli_path()
    if exe is None:
        sys.stderr.write("flashgen: no CLI executable: not in this package (flashgen/_bin/flashgen, installed by "
                         "`pip install .`) nor in the repository's build/ (cmake --build build)\n")
        return 127
    args = sys.argv[1:] if argv is None else list(argv)
    export_site_packages()  # this Python's site-packages, where the CLI looks for the nvidia-* packages
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, [exe] + args)  # replaces this process; its exit status is the CLI's


if __name__ == "__main__":
    sys.exit(main())
