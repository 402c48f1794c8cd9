#!/usr/bin/env python3
"""A model of how the TMA forward's work tiles land on the SMs for
block-sparse layouts (docs/PERF.md v17): each query tile costs
a + c * (key tiles it computes); c is the measured time of one key tile on
one SM (hd128 bf16, dense 16k: 3.040 ms x 132 SMs / (2048 x 128 tiles)),
a the per-tile cost that a persistent grid hides and one CTA per tile pays
(launch, the Q load and first S GEMM without overlap, the epilogue).

Schedules compared, for the benchmark's patterns (16k, 16 heads, 128 x 128
blocks), as time / (density x dense time), the issue-10 metric:
  hw nat     one CTA per tile in the launch order (query block fastest,
             then head): the hardware gives the next tile to the first free
             SM (today's sparse path)
  hw lpt     the same with each head's tiles in descending cost
  snake nat  a persistent grid, tile k G + b (odd rounds mirrored) on CTA b
  snake lpt  the same over each head's tiles in descending cost
  list lpt   a persistent grid following a host-built list: each head's
             tiles in descending cost, each to the CTA that frees first
             (the hardware's greedy, computed ahead, heads kept in order so
             that K and V stay in L2)

  python3 bench/sparse_sched_sim.py [--a-hw US] [--a-persistent US]
"""
import argparse
import heapq
import random

G = 132
C = 3.040e-3 * 132 / (2048 * 128)


def greedy(costs, a):
    h = [0.0] * G
    for x in costs:
        t = heapq.heappop(h)
        heapq.heappush(h, t + a + C * x)
    return max(h)


def snake(costs, a):
    load = [0.0] * G
    for t, x in enumerate(costs):
        k, b = divmod(t, G)
        load[G - 1 - b if k & 1 else b] += a + C * x
    return max(load)


def random_rows(d, seed, nm=128):
    r = random.Random(seed)
    return [sum(1 for _ in range(nm) if r.random() < d) for _ in range(nm)]


def window_rows(w, nm=128, blk=128):
    return [min(nm - 1, (m * blk + blk - 1 + w) // blk) - max(0, (m * blk - w) // blk) + 1 for m in range(nm)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a-hw", type=float, default=8.0, help="per-tile cost, one CTA per tile (us)")
    ap.add_argument("--a-persistent", type=float, default=2.0, help="per-tile cost, persistent grid (us)")
    args = ap.parse_args()
    a_hw, a_p = args.a_hw * 1e-6, args.a_persistent * 1e-6
    heads, nm = 16, 128
    dense = heads * nm * nm * C / G
    pats = [("random 10%", random_rows(0.1, 1)), ("random 25%", random_rows(0.25, 1)), ("random 50%", random_rows(0.5, 1)),
            ("window 767", window_rows(767)), ("window 4735", window_rows(4735)), ("causal", [m + 1 for m in range(nm)])]
    print(f"a = {args.a_hw} us one CTA per tile, {args.a_persistent} us persistent; time / (density x dense time)")
    print(f"{'pattern':12s} {'density':>7s} {'hw nat':>7s} {'hw lpt':>7s} {'snake nat':>9s} {'snake lpt':>9s} {'list lpt':>8s}")
    for name, rows in pats:
        nat = [x for _ in range(heads) for x in rows]
        lpt = [x for _ in range(heads) for x in sorted(rows, reverse=True)]
        dens = sum(nat) / (heads * nm * nm)
        r = [f(o, a) / (dens * dense) for f, o, a in
             [(greedy, nat, a_hw), (greedy, lpt, a_hw), (snake, nat, a_p), (snake, lpt, a_p), (greedy, lpt, a_p)]]
        print(f"{name:12s} {dens:7.3f} {r[0]:7.3f} {r[1]:7.3f} {r[2]:9.3f} {r[3]:9.3f} {r[4]:8.3f}")


if __name__ == "__main__":
    main()
