// fg_score.cuh: the built-in score modifications of the forward kernels
// (fg_fwd_kernel.cuh, mma.sync, dense and inference variants, and
// fg_fwd_ws.cuh, TMA, dense) and of the
// mma.sync backward (fg_bwd_kernel.cuh): softcap, ALiBi, a local window
// and attention sinks (include/flashgen.h, docs/SCORE-WIRING.md).
//
// Each is a trait the template emits only when the variant uses it
// (Traits::SOFTCAP, ALIBI, WINDOW, SINK), detected here like HasMaskMod, so
// variants without them compile exactly as before.  Their values are kernel
// parameters (fg_params.h; the backward's fg_bwd_params.h has the same
// fields under the same names, so the helpers below take either as P).
//
// Logit domain.  The softmax of the plain kernel works on raw scores and
// folds the scale into exp2.  With softcap or ALiBi the scores are turned
// into logits first (x = cap * tanh(S * scale / cap), or S * scale, then
// x -= slope * |i + off - j|), and the softmax runs with scale 1 (LogitMods).
// The window and the sinks do not change the scores, so they keep the raw
// domain.
#pragma once
#include "fg_params.h"
#include "fg_mma.cuh"

namespace fg {

#define FG_SCORE_TRAIT(Name, FIELD)                                                                 \
    template <class K, class = int> struct Name { static constexpr bool value = false; };          \
    template <class K> struct Name<K, decltype((void)K::FIELD, 0)> { static constexpr bool value = K::FIELD; };
FG_SCORE_TRAIT(HasSoftcap, SOFTCAP)
FG_SCORE_TRAIT(HasAlibi, ALIBI)
FG_SCORE_TRAIT(HasWindow, WINDOW)
FG_SCORE_TRAIT(HasSink, SINK)
FG_SCORE_TRAIT(HasScoreMod, SCORE_MOD)   // a user score expression: K::score_mod(p, s, b, h, q_idx, kv_idx)
FG_SCORE_TRAIT(HasScoreModD, SCORE_MOD_D) // its derivative in the backward: K::score_mod_d(p, s, b, h, q_idx, kv_idx)
#undef FG_SCORE_TRAIT

// Whether the scores are turned into logits before the softmax.
template <class K> struct LogitMods {
    static constexpr bool value = HasSoftcap<K>::value || HasAlibi<K>::value || HasScoreMod<K>::value;
};

// Softcap alone (no ALiBi, no score expression): the forward kernels keep
// t = tanh(S * scale / cap) as the score and let the softmax scale it by
// cap, folded into its exp2 FFMA as the plain kernel folds its scale,
// instead of forming cap * t (ncu, hd128 16k TMA: three FMULs a score
// against the plain kernel's one, docs/PERF.md v20).  The row maximum of t
// times cap is that of the logits (cap > 0), so lse and the sinks (logits)
// are unchanged.  The backward forms the logits itself (logit_mod_at).
template <class K> struct SoftcapOnly {
    static constexpr bool value = HasSoftcap<K>::value && !HasAlibi<K>::value && !HasScoreMod<K>::value;
};

// The scale the softmax applies to the scores it is given (OnlineSoftmax
// step's scale_log2 is this times log2 e; finish takes it as it is): raw,
// the call's softmax scale of S; cap for softcap alone; 1 for other logits.
template <class K, class P> __device__ __forceinline__ float softmax_scale_of(const P &p, float raw) {
    if constexpr (SoftcapOnly<K>::value) return p.softcap;
    else if constexpr (LogitMods<K>::value) return 1.f;
    else return raw;
}

// f on every element x of a warp's S fragment (the mma C layout of
// fg_mask.cuh's apply_mask), x in row g + r * 8 of m-tile i (g = lane / 4)
// and key column col (col0: the tile's first): f(x, row, col) with row the
// absolute query index (row0: the warp's first row's), or, AT, f(x, i, r,
// col).  One loop for both, so that the dense kernels' code stays as it was.
template <bool AT, int MT, int NT_S, class F>
__device__ __forceinline__ void for_each_score_as(float (&s)[MT][NT_S][4], int row0, int col0, F f) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int n = 0; n < NT_S; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    if constexpr (AT) f(s[i][n][2 * r + e], i, r, col0 + n * 8 + 2 * c + e);
                    else f(s[i][n][2 * r + e], row0 + i * 16 + g + r * 8, col0 + n * 8 + 2 * c + e);
                }
}
template <int MT, int NT_S, class F>
__device__ __forceinline__ void for_each_score(float (&s)[MT][NT_S][4], int row0, int col0, F f) {
    for_each_score_as<false>(s, row0, col0, f);
}
template <int MT, int NT_S, class F>
__device__ __forceinline__ void for_each_score_at(float (&s)[MT][NT_S][4], int col0, F f) {
    for_each_score_as<true>(s, 0, col0, f);
}

// The logit of one element from its raw score x (row: the query, col: the
// key): softcap or the scale, then the ALiBi bias, then the user's score
// expression (b, h: the call's batch and query head).  The backward
// recomputes its logits with it, element by element.
// dx: d logit / d (scaled score), what the backward multiplies dS by:
// 1 - tanh^2 with softcap, else 1 (ALiBi adds a constant), times the user
// expression's derivative at its argument where the backward has it
// (SCORE_MOD_D).
// off: the alignment of ALiBi (logit_mod: the call's p.mod_offset; the
// inference kernel passes each sequence's own).
template <class K, class P>
__device__ __forceinline__ float logit_mod_at(float x, const P &p, float slope, int off, int b, int h, int row, int col,
                                              float &dx) {
    dx = 1.f;
    if constexpr (HasSoftcap<K>::value) {
        const float y = x * p.softcap_scale, t = fast_tanh(y);
        x = p.softcap * t;
        // the derivative from the exact tanh: 1 - t^2 of tanh.approx (2^-10.9
        // absolute) is off by up to 1e-3 where t nears +-1; the forward never
        // reads dx, so only the backward pays for tanhf
        const float te = tanhf(y);
        dx = fmaf(-te, te, 1.f);
    } else {
        x *= p.scale;
    }
    if constexpr (HasAlibi<K>::value) x -= slope * (float)abs(row + off - col);
    if constexpr (HasScoreMod<K>::value) {
        if constexpr (HasScoreModD<K>::value) dx *= K::score_mod_d(p, x, b, h, row, col);
        x = K::score_mod(p, x, b, h, row, col);
    }
    return x;
}

template <class K, class P>
__device__ __forceinline__ float logit_mod(float x, const P &p, float slope, int b, int h, int row, int col, float &dx) {
    return logit_mod_at<K>(x, p, slope, p.mod_offset, b, h, row, col, dx);
}

// The forward's score for the softmax: the logit, or with softcap alone
// tanh(S * scale / cap), whose cap the softmax applies (SoftcapOnly).
template <class K, class P>
__device__ __forceinline__ float forward_logit(float x, const P &p, float slope, int off, int b, int h, int row, int col) {
    if constexpr (SoftcapOnly<K>::value) {
        return fast_tanh(x * p.softcap_scale);
    } else {
        float dx_unused;
        return logit_mod_at<K>(x, p, slope, off, b, h, row, col, dx_unused);
    }
}

// S (raw Q K^T) to logits, on a warp's S fragment.
template <class K, int MT, int NT_S>
__device__ __forceinline__ void apply_logit_mods(float (&s)[MT][NT_S][4], const fg_fwd_params &p, float slope, int b,
                                                 int h, int row0, int col0) {
    for_each_score(s, row0, col0, [&](float &x, int row, int col) {
        x = forward_logit<K>(x, p, slope, p.mod_offset, b, h, row, col);
    });
}

// The window's visible keys of query row i: lo(i) <= j <= hi(i), with
// lo(i) = i + off - left and hi(i) = i + off + right (left/right -1:
// unbounded; the host clamps them to max(seqlen_q, seqlen_k), so the sums fit in int).
// These and the two below are constexpr and host-callable, so that a
// compile-time probe checks them against the definition (tests/).
#define FG_WIN __host__ __device__ __forceinline__ constexpr
template <class P> FG_WIN int window_lo(const P &p, int row) {
    return p.window_left < 0 ? 0 : row + p.mod_offset - p.window_left;
}
template <class P> FG_WIN int window_hi(const P &p, int row) {
    return p.window_right < 0 ? 0x7fffffff : row + p.mod_offset + p.window_right;
}
template <class P> FG_WIN bool window_visible(const P &p, int row, int col) {
    return col >= window_lo(p, row) && col <= window_hi(p, row);
}

// Whether key tile t (columns t*BC .. t*BC+BC-1) cuts the window of a row in
// m0 .. row_last (the schedule visits only tiles that meet some row's window).
template <int BC, class P>
FG_WIN bool window_cuts(const P &p, int t, int m0, int row_last) {
    return t * BC < window_lo(p, row_last) || t * BC + BC - 1 > window_hi(p, m0);
}

template <int MT, int NT_S, class P>
__device__ __forceinline__ void apply_window(float (&s)[MT][NT_S][4], const P &p, int row0, int col0) {
    for_each_score(s, row0, col0, [&](float &x, int row, int col) {
        if (col < window_lo(p, row) || col > window_hi(p, row)) x = neg_inf();
    });
}

// The key tiles [first, end) that the window lets rows m0 .. row_last see
// (end <= n, the tiles the schedule had); first >= end: none.
template <int BC, class P>
FG_WIN void window_tiles(const P &p, int m0, int row_last, int n, int &first, int &end) {
    const int lo = window_lo(p, m0), hi = window_hi(p, row_last);
    first = lo <= 0 ? 0 : lo / BC;
    end = hi < 0 ? 0 : (n < hi / BC + 1 ? n : hi / BC + 1);
}

// The backward's transpose of window_tiles: the query tiles [first, end)
// (end <= m, the tiles the schedule had) holding a row whose window meets
// keys n0 .. key_last.  Row i sees some of them iff lo(i) <= key_last and
// hi(i) >= n0, i.e. n0 - off - right <= i <= key_last - off + left.
template <int BM, class P>
FG_WIN void window_query_tiles(const P &p, int n0, int key_last, int m, int &first, int &end) {
    // hi in 64 bits: key_last (up to a block past seqlen_k) - offset (up to
    // seqlen_q) + left (up to max(seqlen_q, seqlen_k)) passes 2^31 when
    // seqlen_q nears 2^30, and the last key block's dK and dV came out zero
    const int lo = p.window_right < 0 ? 0 : n0 - p.mod_offset - p.window_right;
    const long long hi = p.window_left < 0 ? 0x7fffffffLL : (long long)key_last - p.mod_offset + p.window_left;
    first = lo <= 0 ? 0 : lo / BM;
    end = hi < 0 ? 0 : ((long long)m < hi / BM + 1 ? m : (int)(hi / BM) + 1);
}
#undef FG_WIN

// The alignment of ALiBi and the window for one sequence: the window's
// helpers above read these three fields (of fg_fwd_params, fg_bwd_params or
// this).  The inference kernel makes one per CTA with its sequence's own
// offset (a varlen or paged call equals a dense call per sequence).
struct ModAlign {
    int mod_offset, window_left, window_right;
};
__device__ __forceinline__ ModAlign mod_align(const fg_fwd_params &p, int off) {
    return ModAlign{off, p.window_left, p.window_right};
}

// The rows of one thread in an inference tile (GQA packing: packed row R is
// query R / G of head h0 + R % G, fg_infer.cuh): per row its query index,
// head (whose sink the epilogue reads) and ALiBi slope, fixed for the CTA,
// so worked out once.
template <class K, int MT> struct PackedRows {
    int q[MT][2], h[MT][2];
    float slope[MT][2];

    // row0: the warp's first packed row; G: heads per tile; h0: the first head.
    __device__ __forceinline__ void init(const fg_fwd_params &p, int row0, int G, int h0, int b) {
        const int g = (threadIdx.x & 31) >> 2;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int R = row0 + i * 16 + g + r * 8;
                q[i][r] = R / G;
                h[i][r] = h0 + R % G;
                slope[i][r] = 0.f;
                if constexpr (HasAlibi<K>::value) slope[i][r] = __ldg(p.alibi_slopes + b * p.alibi_batch_stride + h[i][r]);
            }
    }
};

// apply_logit_mods of an inference tile: each row with its own query index,
// head and slope, aligned by off (the sequence's).
template <class K, int MT, int NT_S>
__device__ __forceinline__ void apply_logit_mods_packed(float (&s)[MT][NT_S][4], const fg_fwd_params &p,
                                                        const PackedRows<K, MT> &pr, int off, int b, int col0) {
    for_each_score_at(s, col0, [&](float &x, int i, int r, int col) {
        x = forward_logit<K>(x, p, pr.slope[i][r], off, b, pr.h[i][r], pr.q[i][r], col);
    });
}

// apply_window of an inference tile: rows by their query index.
template <class K, int MT, int NT_S>
__device__ __forceinline__ void apply_window_packed(float (&s)[MT][NT_S][4], const ModAlign &a,
                                                    const PackedRows<K, MT> &pr, int col0) {
    for_each_score_at(s, col0, [&](float &x, int i, int r, int col) {
        if (!window_visible(a, pr.q[i][r], col)) x = neg_inf();
    });
}

// A dense schedule narrowed to the window's key tiles (the TMA kernel's
// producer and consumers each call it, so they walk the same entries):
// sch.count becomes the end, the first entry is returned.  Without a
// window, and for a block-sparse schedule (its entries index the layout's
// lists, not tiles: the window masks them instead): 0, and sch unchanged.
template <class K, class Sched>
__device__ __forceinline__ int window_clip(const fg_fwd_params &p, Sched &sch) {
    if constexpr (!HasWindow<K>::value || K::SPARSE) return 0;
    else {
        int first, end;
        window_tiles<K::BC>(p, sch.m0, sch.row_last, sch.count, first, end);
        sch.count = end;
        return first;
    }
}

} // namespace fg
