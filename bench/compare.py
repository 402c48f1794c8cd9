#!/usr/bin/env python3
"""Merge flashgen's and the peers' CSV rows of one device run and print
TFLOP/s side by side with the ratio flashgen / peer.

  python3 bench/compare.py flashgen.csv peers.csv [--markdown] [--impl=flashgen_mma]
"""
import csv
import sys


def load(path):
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            rows[(r["impl"], int(r["hdim"]), int(r["causal"]), int(r["seqlen"]))] = float(r["tflops"])
    return rows


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    rows = load(sys.argv[1])
    rows.update(load(sys.argv[2]))
    md = "--markdown" in sys.argv
    impl = next((a[len("--impl="):] for a in sys.argv if a.startswith("--impl=")), "flashgen")
    keys = sorted({k[1:] for k in rows if k[0] == impl})
    peers = ["sdpa_flash", "sdpa_cudnn"]
    head = ["hdim", "causal", "seqlen", "flashgen"] + peers + [f"fg/{p}" for p in peers]
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print("".join(f"{h:>14s}" for h in head))
    for d, c, s in keys:
        fg = rows[(impl, d, c, s)]
        vals = [rows.get((p, d, c, s)) for p in peers]
        cells = [str(d), "yes" if c else "no", str(s), f"{fg:.1f}"]
        cells += [f"{v:.1f}" if v else "-" for v in vals]
        cells += [f"{fg / v:.2f}" if v else "-" for v in vals]
        print(("| " + " | ".join(cells) + " |") if md else "".join(f"{x:>14s}" for x in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
