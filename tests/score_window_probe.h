/* score_window_probe.h: a CUDA source for NVRTC (tests/test_score_fwd_cpu.c). */
#ifndef FG_SCORE_WINDOW_PROBE_H
#define FG_SCORE_WINDOW_PROBE_H
/* The kernels' window helpers (fg_score.cuh: window_tiles, window_cuts,
 * window_lo/hi), evaluated by NVRTC at compile time against the definition
 * (key j visible from row i iff j < seqlen_k and i + off - left <= j <=
 * i + off + right; the causal limit is Schedule's, as before), over both
 * alignments, seqlen_q <, =, > seqlen_k, sides -1 / 0 / 1 / 5 / 40 and
 * three tile shapes: every tile the schedule skips
 * holds no visible key of any row of the query tile, and every tile left
 * unmasked holds only visible keys of every row in the window.  A failure is
 * a static_assert, i.e. a compile error naming the probe. */
static const char *const WINDOW_PROBE =
    "#include \"fg_score.cuh\"\n"
    "__host__ __device__ constexpr bool vis(int i, int j, int sk, int off, int l, int r) {\n"
    "  return j < sk && (l < 0 || j >= i + off - l) && (r < 0 || j <= i + off + r); }\n"
    "template <int BR, int BC> __host__ __device__ constexpr bool check(int sq, int sk, int off, int l, int r) {\n"
    "  fg_fwd_params p{};\n"
    "  p.mod_offset = off; p.window_left = l; p.window_right = r;\n"
    "  const int nt = (sk + BC - 1) / BC;\n"
    "  for (int m0 = 0; m0 < sq; m0 += BR) {\n"
    "    const int last = (m0 + BR < sq ? m0 + BR : sq) - 1;\n"
    "    int first = 0, end = 0;\n"
    "    fg::window_tiles<BC>(p, m0, last, nt, first, end);\n"
    "    for (int t = 0; t < nt; ++t) {\n"
    "      const bool kept = t >= first && t < end, cut = fg::window_cuts<BC>(p, t, m0, last);\n"
    "      for (int i = m0; i <= last; ++i)\n"
    "        for (int j = t * BC; j < t * BC + BC && j < sk; ++j) {\n"
    "          const bool v = vis(i, j, sk, off, l, r);\n"
    "          if (v && !kept) return false;\n"
    "          if (kept && !cut && !v) return false;\n"
    "          if (v != (j >= fg::window_lo(p, i) && j <= fg::window_hi(p, i))) return false;\n"
    "        }\n"
    "    }\n"
    "  }\n"
    "  return true;\n"
    "}\n"
    "template <int BR, int BC> __host__ __device__ constexpr bool all() {\n"
    "  const int lens[3][2] = {{37, 23}, {23, 37}, {30, 30}}, ws[5] = {-1, 0, 1, 5, 40};\n"
    "  for (int k = 0; k < 3; ++k)\n"
    "    for (int a = 0; a < 2; ++a)\n"
    "      for (int x = 0; x < 5; ++x)\n"
    "        for (int y = 0; y < 5; ++y) {\n"
    "          const int sq = lens[k][0], sk = lens[k][1], off = a ? sk - sq : 0;\n"
    "          if (!check<BR, BC>(sq, sk, off, ws[x], ws[y])) return false;\n"
    "        }\n"
    "  return true;\n"
    "}\n"
    "static_assert(all<16, 16>(), \"window tiles 16x16\");\n"
    "static_assert(all<32, 16>(), \"window tiles 32x16\");\n"
    "static_assert(all<16, 32>(), \"window tiles 16x32\");\n"
    "extern \"C\" __global__ void probe() {}\n";

#endif
