#!/usr/bin/env python3
"""Summaries of an Nsight Compute source page (SASS with per-instruction
counters), as bench/profile_fwd.sh exports it:

  ncu --import REP --page source --csv --print-source sass > K.sass.csv

  python3 bench/sass_profile.py mix K.sass.csv [OTHER.sass.csv]
      executed instructions by opcode (side by side for two kernels)
  python3 bench/sass_profile.py stalls K.sass.csv
      warp-stall samples by reason, and the instructions with the most
      samples for the top reasons
  python3 bench/sass_profile.py loop K.sass.csv LO HI
      the instructions executed LO..HI times (a loop body: a key-tile loop
      runs once per key tile and warp), with wgmma, barriers, mbarrier waits
      and branches on their own lines and the arithmetic between them
      counted by opcode: where the wgmma waits sit relative to the softmax

This is how docs/PERF.md v15 found the forward's softmax running after
P V instead of under it (the wait for P V hoisted above the exponentials).
"""
import collections
import csv
import re
import signal
import sys


def load(path):
    """[(address, source, executed, row dict)] of the kernel's instructions."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    # a first line names the kernel ("Kernel Name", ...), then the header
    start = 1 if rows and rows[0] and rows[0][0] == "Kernel Name" else 0
    hdr = rows[start]
    out = []
    for r in rows[start + 1:]:
        if len(r) < len(hdr):
            continue
        d = dict(zip(hdr, r))
        try:
            n = int(d.get("Instructions Executed", "").replace(",", "") or 0)
        except ValueError:
            continue
        out.append((d.get("Address", ""), d.get("Source", "").strip(), n, d))
    return out


def opcode(src):
    """LDS.U.128 -> LDS; a predicate guard (@P0, @!UP1) is dropped."""
    s = re.sub(r"^@!?U?P\w+\s+", "", src)
    return s.split()[0].split(".")[0] if s else "?"


def mix(paths):
    tables = []
    for p in paths:
        c = collections.Counter()
        for _, src, n, _ in load(p):
            c[opcode(src)] += n
        tables.append((p, c, sum(c.values())))
    ops = sorted({o for _, c, _ in tables for o in c}, key=lambda o: -max(c[o] for _, c, _ in tables))
    print("%-12s" % "opcode" + "".join("%22s" % p.split("/")[-1][:21] for p, _, _ in tables))
    print("%-12s" % "total" + "".join("%16.1fM      " % (tot / 1e6) for _, _, tot in tables))
    for o in ops[:40]:
        print("%-12s" % o + "".join("%12.1fM %5.1f%%  " % (c[o] / 1e6, 100 * c[o] / max(tot, 1)) for _, c, tot in tables))


def stalls(path, top=6):
    ins = load(path)
    if not ins:
        return
    reasons = [k for k in ins[0][3] if k.startswith("stall_") and "Not Issued" not in k]
    tot = {k: sum(int(d.get(k) or 0) for _, _, _, d in ins) for k in reasons}
    all_ = sum(tot.values()) or 1
    print("stall samples: %d" % all_)
    for k, v in sorted(tot.items(), key=lambda x: -x[1])[:10]:
        print("  %-22s %5.1f%%" % (k[6:], 100 * v / all_))
    for k, _ in sorted(tot.items(), key=lambda x: -x[1])[:3]:
        print("top instructions, %s:" % k[6:])
        for a, src, n, d in sorted(ins, key=lambda x: -int(x[3].get(k) or 0))[:top]:
            print("  %8s  %6s samples  %10d executed  %s" % (a[-5:], d.get(k), n, src[:80]))


def loop(path, lo, hi):
    marks = ("HGMMA", "WARPGROUP", "BAR", "SYNCS", "BRA", "NANOSLEEP")
    run = collections.Counter()

    def flush():
        if run:
            print("        " + " ".join("%sx%d" % (o, n) for o, n in run.items()))
            run.clear()

    for a, src, n, d in load(path):
        if not lo <= n <= hi:
            continue
        op = opcode(src)
        if op in marks:
            flush()
            print("  %8s  samples %6s  %s" % (a[-5:], d.get("Warp Stall Sampling (All Samples)", ""), src[:90]))
        else:
            run[op] += 1
    flush()


def main(argv):
    if len(argv) >= 3 and argv[1] == "mix":
        mix(argv[2:4])
    elif len(argv) == 3 and argv[1] == "stalls":
        stalls(argv[2])
    elif len(argv) == 5 and argv[1] == "loop":
        loop(argv[2], int(argv[3]), int(argv[4]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # | head
    sys.exit(main(sys.argv))
