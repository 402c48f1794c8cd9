// fg_softmax.cuh: online softmax over the S tiles of one warp.
//
// Each thread holds two rows per 16-row m-tile (row g and g+8 of the mma C
// layout, g = lane/4); the four threads of a quad share a row, so row
// reductions are two xor-shuffles.  Per key tile:
//   m_new = max(m_old, rowmax(S))            (raw scores, scale applied below)
//   alpha = exp2((m_old - m_new) * scale_log2)
//   P     = exp2(S * scale_log2 - m_new * scale_log2)   one FFMA + one EX2
//   l     = l * alpha + rowsum(P)           (per-thread partial; reduced once
//                                            at the end, as FlashAttention-2 does)
//   O     = O * alpha                       (the caller then adds P * V)
// A row that has seen no visible key keeps m = -inf and l = 0; the base is
// then taken as 0 so that no -inf - -inf appears, and finish() gives o = 0,
// lse = -inf.
#pragma once
#include "fg_mma.cuh"

namespace fg {

template <int MT, int NT_S, int NT_O> struct OnlineSoftmax {
    float m[MT][2];
    float l[MT][2];

    __device__ __forceinline__ void init() {
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 2; ++r) { m[i][r] = neg_inf(); l[i][r] = 0.f; }
    }

    // Pairwise (tree) reductions of t[0..NT_S): depth log2(NT_S) instead
    // of a chain of NT_S dependent instructions (ncu, FP8 hd128: the
    // consumers' top stall reason was a fixed-latency wait, much of it in
    // the row maximum's and row sum's chains, docs/PERF.md v17).
    template <class Op> __device__ __forceinline__ static float tree(float (&t)[NT_S], Op op) {
#pragma unroll
        for (int step = 1; step < NT_S; step *= 2)
#pragma unroll
            for (int n = 0; n + step < NT_S; n += 2 * step) t[n] = op(t[n], t[n + step]);
        return t[0];
    }

    // The quad's maximum of row (i, r) of s and of m (exact in any order).
    __device__ __forceinline__ float row_max(const float (&s)[MT][NT_S][4], int i, int r) const {
        float t[NT_S];
#pragma unroll
        for (int n = 0; n < NT_S; ++n) t[n] = fmaxf(s[i][n][2 * r], s[i][n][2 * r + 1]);
        float mx = fmaxf(m[i][r], tree(t, [](float a, float b) { return fmaxf(a, b); }));
        mx = fmaxf(mx, warp_xor(mx, 1));
        return fmaxf(mx, warp_xor(mx, 2));
    }
    // Row (i, r) of s becomes exp2(s * scale_log2 - base); returns its sum
    // (summed pairwise: a fixed order, so the result is the same from run
    // to run).
    __device__ __forceinline__ static float exp_row(float (&s)[MT][NT_S][4], int i, int r, float scale_log2, float base) {
        float t[NT_S];
#pragma unroll
        for (int n = 0; n < NT_S; ++n) {
            s[i][n][2 * r]     = fast_exp2(fmaf(s[i][n][2 * r], scale_log2, -base));
            s[i][n][2 * r + 1] = fast_exp2(fmaf(s[i][n][2 * r + 1], scale_log2, -base));
            t[n] = s[i][n][2 * r] + s[i][n][2 * r + 1];
        }
        return tree(t, [](float a, float b) { return a + b; });
    }

    // s: scores of this tile (masked entries = -inf), overwritten with P;
    // m and l updated.  alpha: the factor the output accumulators must be
    // rescaled by before P * V is added (rescale()), returned rather than
    // applied so that a kernel can run this while the previous P * V is
    // still in flight on the tensor cores.
    __device__ __forceinline__ void step_p(float (&s)[MT][NT_S][4], float scale_log2, float (&alpha)[MT][2]) {
#pragma unroll
        for (int i = 0; i < MT; ++i) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const float mx = row_max(s, i, r);
                const float base = (mx == neg_inf()) ? 0.f : mx * scale_log2;
                alpha[i][r] = fast_exp2(m[i][r] * scale_log2 - base);
                m[i][r] = mx;
                l[i][r] = l[i][r] * alpha[i][r] + exp_row(s, i, r, scale_log2, base);
            }
        }
    }

    // step_p with a lazy maximum: the reference m of a row moves only when
    // some row of the warp would otherwise see exp2 arguments above LAZY
    // (P up to 2^LAZY; m, l and O stay consistent, so the result is the
    // same up to rounding, and 2^8 is far inside the range of fp32 and of
    // bf16/fp16 P).  Returns whether m moved (warp-uniform): only then must
    // the output accumulators be rescaled by alpha.  After the first key
    // tiles the maximum rarely grows by that much, so most tiles skip the
    // rescale and alpha's exp2.
    template <int LAZY>
    __device__ __forceinline__ bool step_p_lazy(float (&s)[MT][NT_S][4], float scale_log2, float (&alpha)[MT][2]) {
        float mx[MT][2];
        bool need = false;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const float x = row_max(s, i, r);
                mx[i][r] = x;
                need |= x > m[i][r] && (m[i][r] == neg_inf() || (x - m[i][r]) * scale_log2 > (float)LAZY);
            }
        const bool moved = __any_sync(0xffffffffu, need);
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                if (moved) {
                    const float base = (mx[i][r] == neg_inf()) ? 0.f : mx[i][r] * scale_log2;
                    alpha[i][r] = fast_exp2(m[i][r] * scale_log2 - base);
                    m[i][r] = mx[i][r];
                }
                const float base = (m[i][r] == neg_inf()) ? 0.f : m[i][r] * scale_log2;
                const float sum = exp_row(s, i, r, scale_log2, base);
                l[i][r] = moved ? l[i][r] * alpha[i][r] + sum : l[i][r] + sum;
            }
        return moved;
    }

    __device__ __forceinline__ static void rescale(float (&o)[MT][NT_O][4], const float (&alpha)[MT][2]) {
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 2; ++r)
#pragma unroll
                for (int n = 0; n < NT_O; ++n) { o[i][n][2 * r] *= alpha[i][r]; o[i][n][2 * r + 1] *= alpha[i][r]; }
    }

    // step_p, then rescale o at once (kernels that do not overlap).
    __device__ __forceinline__ void step(float (&s)[MT][NT_S][4], float (&o)[MT][NT_O][4], float scale_log2) {
        float alpha[MT][2];
        step_p(s, scale_log2, alpha);
        rescale(o, alpha);
    }

    // l of row (i, r) summed across the quad.
    __device__ __forceinline__ float row_sum(int i, int r) const {
        float t = l[i][r];
        t += warp_xor(t, 1);
        t += warp_xor(t, 2);
        return t;
    }

    // Reduce l across the quad; inv[i][r] = 1/l (0 for an empty row) and the
    // natural-log logsumexp (-inf for an empty row).
    //
    // SINK (gpt-oss's attention sinks): the logit `sink` joins the
    // denominator only.  With mx = m * scale the row's largest logit and
    // M = max(mx, sink): den = l exp(mx - M) + exp(sink - M), o = acc *
    // exp(mx - M) / den, lse = M + log(den).  A row that saw no key has
    // o = 0 and lse = sink (its softmax holds the sink alone; -inf when the
    // sink is -inf).  sink: one for every row, or one per row (float[MT][2]:
    // the inference kernel's packed rows belong to several heads; a split-KV
    // share passes -inf, and the merge adds the sink).
    __device__ __forceinline__ static float sink_at(float s, int, int) { return s; }
    __device__ __forceinline__ static float sink_at(const float (&s)[MT][2], int i, int r) { return s[i][r]; }

    template <bool SINK = false, class Sink = float>
    __device__ __forceinline__ void finish(float scale, float (&inv)[MT][2], float (&lse)[MT][2],
                                           const Sink &sink = Sink()) {
        const float LN2 = 0.69314718055994530942f, LOG2E = 1.44269504088896340736f;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float t = l[i][r];
                t += warp_xor(t, 1);
                t += warp_xor(t, 2);
                const bool empty = !(t > 0.f);
                if constexpr (!SINK) {
                    inv[i][r] = empty ? 0.f : 1.f / t;
                    lse[i][r] = empty ? neg_inf() : m[i][r] * scale + fast_log2(t) * LN2;
                } else {
                    const float sk = sink_at(sink, i, r);
                    const float mx = empty ? sk : m[i][r] * scale;
                    const float M = fmaxf(mx, sk);
                    if (M == neg_inf()) { inv[i][r] = 0.f; lse[i][r] = neg_inf(); continue; }
                    const float a = empty ? 0.f : fast_exp2((mx - M) * LOG2E);
                    const float den = t * a + fast_exp2((sk - M) * LOG2E);
                    inv[i][r] = a / den;
                    lse[i][r] = M + fast_log2(den) * LN2;
                }
            }
    }
};

} // namespace fg
