#!/bin/sh
# Runs one Python test with the python3 found on PATH when the test runs
# (not the interpreter CMake saw at configure time: a build folder carried to
# another machine must use that machine's Python).  $PYTHON overrides.
# Exit 77 (skipped) when there is no Python at all.
py=${PYTHON:-$(command -v python3 || true)}
if [ -z "$py" ]; then echo "SKIPPED: no python3 on PATH"; exit 77; fi
script=$(dirname "$0")/$1
shift
exec "$py" "$script" "$@"
