#!/usr/bin/env python3
"""A/B of flashgen builds or template directories in one device call.

Runs `flashgen bench ... --csv` once per variant per round, the variants
alternating (A B C A B C ...), so that clock drift and heat fall on all of
them alike; then prints, per shape, each variant's mean TFLOP/s and its
ratio to the first, and the geometric mean of the ratios.  A shape that
failed its check in any run is reported, not averaged.

  python3 bench/ab.py [--rounds N] [--out DIR] NAME=SPEC ... -- BENCH_ARGS

SPEC is a build directory holding `flashgen` and `libflashgen.so`
(e.g. .gpu/main), optionally followed by `:TEMPLATE_DIR` to run that build
with FLASHGEN_TEMPLATE_DIR set (templates from another branch: `git archive
BRANCH templates | tar x -C DIR`).  Each variant gets its own kernel cache
file, so no variant reads another's kernels.  BENCH_ARGS go to `flashgen
bench` (e.g. `--dtype e4m3 --hdims 128,256 --seqlens 16384 --heat 600`).

  python3 bench/ab.py main=.gpu/main tree=.gpu/main:.gpu/tree/templates \\
      -- --hdims 64,128,256 --seqlens 2048,16384 --heat 600 --iters 10

This is how docs/PERF.md's same-call A/B tables were measured by hand
before (v14-v17).
"""
import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile


def parse_variant(text):
    if "=" not in text:
        sys.exit(f"ab.py: variant '{text}' is not NAME=BUILD_DIR[:TEMPLATE_DIR]")
    name, spec = text.split("=", 1)
    build, _, tdir = spec.partition(":")
    fg = os.path.join(build, "flashgen")
    lib = os.path.join(build, "libflashgen.so")
    if not os.access(fg, os.X_OK):
        sys.exit(f"ab.py: {fg} is not an executable")
    if tdir and not os.path.isdir(tdir):
        sys.exit(f"ab.py: template directory {tdir} does not exist")
    return {"name": name, "fg": os.path.abspath(fg), "lib": os.path.abspath(lib), "build": os.path.abspath(build),
            "tdir": os.path.abspath(tdir) if tdir else None}


def run(v, args, csv_path, cache):
    env = dict(os.environ)
    env["FLASHGEN_LIBRARY"] = v["lib"]
    env["LD_LIBRARY_PATH"] = v["build"] + ":" + env.get("LD_LIBRARY_PATH", "")
    env["FLASHGEN_CACHE"] = cache
    env.pop("FLASHGEN_TEMPLATE_DIR", None)
    if v["tdir"]:
        env["FLASHGEN_TEMPLATE_DIR"] = v["tdir"]
    p = subprocess.run([v["fg"], "bench", *args, "--csv", csv_path], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"ab.py: {v['name']}: flashgen bench exited {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}",
              file=sys.stderr)
    rows = {}
    if os.path.exists(csv_path):
        with open(csv_path, newline="") as f:
            for r in csv.DictReader(f):
                key = (r["dtype"], int(r["hdim"]), int(r["causal"]), int(r["seqlen"]))
                rows[key] = float(r["tflops"]) if r["tflops"] not in ("", "nan") else float("nan")
    return rows


def main():
    argv = sys.argv[1:]
    bench_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, bench_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="runs of each variant, alternated (2)")
    ap.add_argument("--out", help="directory for the CSV files (default: a temporary one)")
    ap.add_argument("--no-warm", action="store_true",
                    help="skip the first pass that compiles every variant's kernels in parallel "
                         "(one `bench --iters 1 --heat 0` per variant, results discarded)")
    ap.add_argument("variants", nargs="+", help="NAME=BUILD_DIR[:TEMPLATE_DIR]")
    a = ap.parse_args(argv)
    vs = [parse_variant(t) for t in a.variants]
    if len({v["name"] for v in vs}) != len(vs):
        sys.exit("ab.py: variant names must differ")
    out = a.out or tempfile.mkdtemp(prefix="ab-")
    os.makedirs(out, exist_ok=True)
    results = {v["name"]: [] for v in vs}
    if not a.no_warm:
        # NVRTC is CPU-bound and each variant has its own cache: compile them
        # all at once, so the timed rounds start with warm caches.
        import concurrent.futures as cf
        warm = [x for x in bench_args]
        for flag, val in (("--iters", "1"), ("--heat", "0")):
            if flag in warm:
                warm[warm.index(flag) + 1] = val
            else:
                warm += [flag, val]
        with cf.ThreadPoolExecutor(len(vs)) as ex:
            list(ex.map(lambda v: run(v, warm, os.path.join(out, f"{v['name']}.warm.csv"),
                                      os.path.join(out, f"{v['name']}.db")), vs))
        print("warm-up: every variant's kernels compiled", flush=True)
    for r in range(a.rounds):
        for v in vs:
            path = os.path.join(out, f"{v['name']}.{r}.csv")
            results[v["name"]].append(run(v, bench_args, path, os.path.join(out, f"{v['name']}.db")))
            print(f"round {r + 1}/{a.rounds}: {v['name']} done", flush=True)
    keys = sorted({k for runs in results.values() for rows in runs for k in rows})
    base = vs[0]["name"]
    head = f"{'dtype':6s} {'hdim':>4s} {'causal':>6s} {'seqlen':>6s} " + " ".join(f"{v['name']:>12s}" for v in vs)
    head += " " + " ".join(f"{v['name'] + '/' + base:>14s}" for v in vs[1:])
    print(head)
    logs = {v["name"]: [] for v in vs[1:]}
    for k in keys:
        means = {}
        for v in vs:
            vals = [rows.get(k, float("nan")) for rows in results[v["name"]]]
            means[v["name"]] = sum(vals) / len(vals) if all(x == x for x in vals) else float("nan")
        line = f"{k[0]:6s} {k[1]:4d} {k[2]:6d} {k[3]:6d} " + " ".join(f"{means[v['name']]:12.1f}" for v in vs)
        for v in vs[1:]:
            ratio = means[v["name"]] / means[base] if means[base] > 0 else float("nan")
            if ratio == ratio:
                logs[v["name"]].append(math.log(ratio))
            line += f" {ratio:14.3f}"
        print(line)
    for v in vs[1:]:
        lg = logs[v["name"]]
        gm = math.exp(sum(lg) / len(lg)) if lg else float("nan")
        print(f"geomean {v['name']}/{base}: {gm:.3f} over {len(lg)} shapes")
    print(f"CSV files: {out}")


if __name__ == "__main__":
    main()
