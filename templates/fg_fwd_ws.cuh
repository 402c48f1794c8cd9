// fg_fwd_ws.cuh: FlashAttention forward, Hopper warp-specialised path
// (sm_90a): TMA loads by a producer warp, wgmma by consumer warpgroups.
//
// A CTA has 1 + NC warpgroups.  Warpgroup 0 is the producer: it gives most
// of its registers away (setmaxnreg) and one thread issues every load, Q
// once per tile and K, V through a STAGES-deep ring of full/empty mbarriers
// (fg_pipeline.cuh).  Warpgroups 1..NC are consumers; each owns 64 query
// rows of the BR = 64 * NC row tile and runs, per key tile j:
//
//     wait K(j);                S = Q K(j)^T          (wgmma, SS, async)
//     if j > 0: wait V(j-1);    O += P(j-1) V(j-1)    (wgmma, RS, async)
//     wait S; release K(j); mask; P(j) = softmax step of S (exp2 on MUFU
//     while the tensor cores still run P(j-1) V(j-1)); wait O; release
//     V(j-1); O *= alpha; pack P(j)
//
// so the softmax of one tile overlaps the P V product of the one before
// (intra-warpgroup overlap, OVERLAP).  With PINGPONG the consumers also
// take turns to issue their GEMMs (named barriers 1..NC), so one
// warpgroup's softmax runs under the other's matrix products.
//
// Tiles (query block, head, batch) come from fg_tile_scheduler.cuh; the
// runtime launches either one CTA per tile or a persistent grid, the code is
// the same.  Key tiles come from fg_schedule.cuh (dense, causal-clipped or
// block-sparse), masks from fg_mask.cuh, the online softmax from
// fg_softmax.cuh.  Producer and consumers walk the same schedule and skip
// the same invisible tiles, so their ring positions agree.
//
// The generated source provides wgmma_s() (N = BC) and wgmma_o() (N = DV)
// with their exact register lists (templates/fwd_ws.lua).
//
// FP8 (K::FP8, e4m3 q, k, v): tiles have 128 one-byte elements per
// 128-byte row, the GEMMs step 32 keys (k32), and V is transposed: TMA
// loads V into its own ring (vin, vir), producer warps 1-3 transpose each
// tile as it lands into the V^T ring (v, vr, which the consumers read
// exactly as they read V otherwise) until the loads thread's end mark, and
// P is packed to e4m3 (fg_fp8.cuh).  The Q buffer is as wide as Q; the
// 16-bit O tile leaves through it in column slices (O_PASSES).  q_descale * k_descale scale S, v_descale O.
// Score modifications (fg_score.cuh) are built for 16-bit variants only:
// apply_logit_mods scales S by p.scale / p.softcap_scale, which carry no
// descale, so fwd_ws.lua and the runtime (fg_score_check) refuse FP8 with
// them.
#pragma once
#include "fg_params.h"
#include "fg_wgmma.cuh"
#include "fg_tma.cuh"
#include "fg_pipeline.cuh"
#include "fg_tile_scheduler.cuh"
#include "fg_softmax.cuh"
#include "fg_mask.cuh"
#include "fg_score.cuh"
#include "fg_schedule.cuh"
#include "fg_fp8.cuh"

namespace fg {

template <class K> struct WsShape {
    static constexpr int NC = K::NC;
    static constexpr int THREADS = (NC + 1) * 128;
    // EB: bytes per input element; COLS: elements per 128-byte row
    static constexpr int EB = K::FP8 ? 1 : 2, COLS = 128 / EB, KSTEP = K::FP8 ? 32 : 16;
    static constexpr int DP = (K::D + COLS - 1) / COLS * COLS, DVP = (K::DV + COLS - 1) / COLS * COLS;
    static constexpr int NT_S = K::BC / 8, NT_O = K::DV / 8;
    static constexpr int KS_QK = K::D / KSTEP, KS_PV = K::BC / KSTEP;
    // A Q buffer also stages the 16-bit O tile of the epilogue.  16-bit
    // inputs: it is as wide as the wider of the two.  FP8: only as wide as
    // Q (one byte an element against O's two), and O goes out in O_PASSES
    // column slices of Q_ROW bytes, so that head dim 256 fits two consumer
    // warpgroups in 227 KiB.  Q_TX is what the TMA load of Q brings.
    static constexpr int O_ROW = (K::DV + 63) / 64 * 128;
    static constexpr int Q_ROW = K::FP8 || DP * EB > O_ROW ? DP * EB : O_ROW, O_PASSES = (O_ROW + Q_ROW - 1) / Q_ROW;
    static constexpr int Q_BUF = K::BR * Q_ROW, Q_TX = K::BR * DP * EB;
    static constexpr int K_BYTES = K::BC * DP * EB, VIN_BYTES = K::BC * DVP * EB;
    // V as the consumers read it: the TMA'd tile, or (FP8) its transpose
    static constexpr int V_BYTES = K::FP8 ? K::DV * K::BC : VIN_BYTES;
    static constexpr int VT_RING = K::FP8 ? 1 : 0;
    // Stage counts: the K ring and the TMA'd V ring STAGES (VIN_STAGES); the
    // ring the consumers read V from V_STAGES.  16-bit: the same ring.  FP8: the V^T ring has one stage more than the K
    // ring, so that the transposers can run up to two tiles ahead: with as
    // many stages, tile j + 1 could be transposed only once both consumer
    // warpgroups had freed tile j - 1, half an iteration before the first
    // needed it (ncu, hd256: the consumers waited ~19% of their time on
    // V^T, the transposers on the consumers; docs/PERF.md v17).  Only where
    // that extra stage fits beside a TMA'd V ring of the K ring's count
    // (fwd_ws.lua ring_sizes; at head dim 256 it does not, and cutting the V
    // ring to one stage lost 6% causal, v18): else V^T has the K ring's count.
    static constexpr int VIN_STAGES = K::STAGES, V_STAGES = K::FP8 ? K::VT_STAGES : K::STAGES;
    // FP8: the threads that transpose V (warps 1-3 of the producer warpgroup)
    static constexpr int TRANSPOSERS = 96;
    // smem: [align 1024] Q ring | K ring | V ring | (FP8: V^T ring) | barriers
    // (Q ring, K ring, V^T or V ring, FP8: V ring) | (FP8: end mark, a word per V stage)
    static constexpr int SMEM = 1024 + K::Q_STAGES * Q_BUF + K::STAGES * K_BYTES + VIN_STAGES * VIN_BYTES +
                                VT_RING * V_STAGES * V_BYTES + Ring<K::Q_STAGES>::BYTES + Ring<K::STAGES>::BYTES +
                                Ring<V_STAGES>::BYTES + VT_RING * (Ring<VIN_STAGES>::BYTES + 16);
    static_assert(!K::FP8 || (K::BC == 128 && K::STAGES >= 2 && K::STAGES <= 4 && K::VT_STAGES >= K::STAGES &&
                              K::D % 32 == 0 && K::DV % 16 == 0),
                  "FP8: 128-key tiles, two to four stages (one end-mark word each), head dims multiples of 32 / 16");
    static_assert(K::BR == 64 * NC, "64 query rows per consumer warpgroup");
    static_assert(K::D % 16 == 0 && K::DV % 8 == 0 && K::DV <= 256, "head dims");
    static_assert(K::BC % 16 == 0 && K::BC <= 256, "key tile");
};

// Shared-memory addresses of one CTA's buffers and barriers: one register
// (the aligned base), every other address an immediate offset from it.
template <class K> struct WsSmem {
    typedef WsShape<K> S;
    static constexpr u32 K_OFF = K::Q_STAGES * S::Q_BUF, VIN_OFF = K_OFF + K::STAGES * S::K_BYTES,
                         V_OFF = K::FP8 ? VIN_OFF + S::VIN_STAGES * S::VIN_BYTES : VIN_OFF,
                         QR_OFF = V_OFF + S::V_STAGES * S::V_BYTES, KR_OFF = QR_OFF + Ring<K::Q_STAGES>::BYTES,
                         VR_OFF = KR_OFF + Ring<K::STAGES>::BYTES,
                         VIR_OFF = K::FP8 ? VR_OFF + Ring<S::V_STAGES>::BYTES : VR_OFF,
                         VDONE_OFF = VIR_OFF + Ring<S::VIN_STAGES>::BYTES;
    // transpose_v addresses V^T stages by XOR on bits 4-6
    static_assert(V_OFF % 1024 == 0 && S::V_BYTES % 1024 == 0, "V^T stages 1024-byte aligned");
    u32 q;
    __device__ __forceinline__ void init(char *raw) {
        q = (smem_addr(raw) + 1023u) & ~1023u;  // the swizzle uses absolute address bits
    }
    // v, vr: the V tiles the consumers read; vin, vir: where TMA loads V
    // (the same unless FP8, whose producer transposes vin into v)
    __device__ __forceinline__ u32 k() const { return q + K_OFF; }
    __device__ __forceinline__ u32 vin() const { return q + VIN_OFF; }
    __device__ __forceinline__ u32 v() const { return q + V_OFF; }
    __device__ __forceinline__ Ring<K::Q_STAGES> qr() const { return Ring<K::Q_STAGES>{q + QR_OFF}; }
    __device__ __forceinline__ Ring<K::STAGES> kr() const { return Ring<K::STAGES>{q + KR_OFF}; }
    __device__ __forceinline__ Ring<S::V_STAGES> vr() const { return Ring<S::V_STAGES>{q + VR_OFF}; }
    __device__ __forceinline__ Ring<S::VIN_STAGES> vir() const { return Ring<S::VIN_STAGES>{q + VIR_OFF}; }
    __device__ __forceinline__ u32 qbuf(int stage) const { return q + stage * S::Q_BUF; }
    // FP8: the loads' end mark for the transposing warps, one word per
    // stage of the TMA'd V ring (16 bytes kept: four stages at most)
    __device__ __forceinline__ u32 vdone(int stage) const { return q + VDONE_OFF + 4u * stage; }
};

// ---------------------------------------------------------------- producer
// The loads walk the CTA's schedule as the consumers do: tile_begin(qs,
// m0, h, b) once per work tile, key_tile(ps, t, b, hk) once per visible key
// tile, with the stage and phase of each ring; the ring's state at the end
// is returned.
template <class K, class TileBegin, class KeyTile>
__device__ __forceinline__ PipeState<K::STAGES> ws_walk(const fg_fwd_params &p, TileBegin tile_begin, KeyTile key_tile) {
    typedef TileScheduler<K::BR, K::CAUSAL, K::SPARSE> TS;
    PipeState<K::STAGES> ps;
    ps.reset();
    for (int k = 0, tile; !TS::done(p, tile = TS::tile_at(p, k)); ++k) {
        int mb, h, b;
        TS::decode(p, tile, mb, h, b);
        const int m0 = mb * K::BR, hk = h / p.group;
        Schedule<K::BR, K::BC, K::CAUSAL, K::SPARSE> sch;
        sch.init(p, m0, b, h);
        const int first = window_clip<K>(p, sch);
        // the Q stage from the tile count: no register carried across tiles
        tile_begin(PipeState<K::Q_STAGES>::at(k), m0, h, b);
        for (int i = first; i < sch.count; ++i) {
            bool part;
            const int t = sch.tile(p, i, part);
            if (!sch.visible(t, part)) continue;
            key_tile(ps, t, b, hk);
            ps.advance();
        }
    }
    return ps;
}

// One thread issues every load: Q once per work tile (with two Q buffers
// the next tile's Q loads while this one computes), K and V per key tile.
// FP8: then the V ring's next stage carries no tile but the end mark.
template <class K>
__device__ __forceinline__ void ws_loads(const fg_fwd_params &p, const fg_tma_params &tm, const WsSmem<K> &sm) {
    typedef WsShape<K> S;
    tma_prefetch_map(&tm.q);
    tma_prefetch_map(&tm.k);
    tma_prefetch_map(&tm.v);
    const PipeState<K::STAGES> end = ws_walk<K>(
        p,
        [&](const PipeState<K::Q_STAGES> &qs, int m0, int h, int b) {
            sm.qr().acquire(qs, S::Q_TX);
#pragma unroll
            for (int cb = 0; cb < S::DP / S::COLS; ++cb)
                tma_load_4d(sm.qbuf(qs.stage) + cb * K::BR * 128, &tm.q, sm.qr().full(qs.stage), cb * S::COLS, m0, h, b);
        },
        [&](const PipeState<K::STAGES> &ps, int t, int b, int hk) {
            sm.kr().acquire(ps, S::K_BYTES);
            const u32 kd = sm.k() + ps.stage * S::K_BYTES;
#pragma unroll
            for (int cb = 0; cb < S::DP / S::COLS; ++cb)
                tma_load_4d(kd + cb * K::BC * 128, &tm.k, sm.kr().full(ps.stage), cb * S::COLS, t * K::BC, hk, b);
            sm.vir().acquire(ps, S::VIN_BYTES);
            const u32 vd = sm.vin() + ps.stage * S::VIN_BYTES;
#pragma unroll
            for (int cb = 0; cb < S::DVP / S::COLS; ++cb)
                tma_load_4d(vd + cb * K::BC * 128, &tm.v, sm.vir().full(ps.stage), cb * S::COLS, t * K::BC, hk, b);
        });
    if constexpr (K::FP8) {
        // the mark is written before the arrival (release), read after the
        // wait (acquire).  A word of this stage only: the transposers may
        // still be waking for the last tile, in another stage, whose word
        // must still read 0.  Atomics on both sides: the order comes from
        // the mbarriers, which compute-sanitizer's racecheck does not see.
        mbar_wait_sleep(sm.vir().empty(end.stage), end.phase ^ 1u);
        asm volatile("{\n.reg .b32 old;\natom.shared.exch.b32 old, [%0], %1;\n}\n" ::"r"(sm.vdone(end.stage)), "r"(1u) : "memory");
        mbar_arrive(sm.vir().full(end.stage));
    }
}

// FP8: warps 1-3 of the producer warpgroup transpose each V tile once TMA
// has brought it and the consumers have freed its V^T stage, then hand the
// V^T stage to the consumers and the V stage back to TMA.  They follow the
// V ring alone, not the schedule, until the loads' end mark: with the
// schedule walk in both roles the producer spilled in its 24 registers.
template <class K>
__device__ __forceinline__ void ws_transposes(const WsSmem<K> &sm) {
    typedef WsShape<K> S;
    const int warp = (int)((threadIdx.x & 127) >> 5) - 1, lane = (int)(threadIdx.x & 31);
    // one count for both rings (their stage counts differ)
    for (int n = 0;; ++n) {
        const PipeState<S::VIN_STAGES> ps = PipeState<S::VIN_STAGES>::at(n);
        const PipeState<S::V_STAGES> ts = PipeState<S::V_STAGES>::at(n);
        mbar_wait_sleep(sm.vir().full(ps.stage), ps.phase);
        u32 done = 0; // lane 0 reads the end mark (an atomic: see ws_loads), the warp follows
        if ((threadIdx.x & 31) == 0)
            asm volatile("atom.shared.or.b32 %0, [%1], 0;\n" : "=r"(done) : "r"(sm.vdone(ps.stage)) : "memory");
        if (__shfl_sync(0xffffffffu, done, 0)) break;
        mbar_wait_sleep(sm.vr().empty(ts.stage), ts.phase ^ 1u);
        transpose_v<K::BC, K::DV, S::TRANSPOSERS / 32>(sm.vin() + ps.stage * S::VIN_BYTES, sm.v() + ts.stage * S::V_BYTES, warp, lane);
        fence_proxy_async(); // generic-proxy stores, read by wgmma (async proxy)
        __syncwarp();
        mbar_arrive_if(sm.vr().full(ts.stage), (threadIdx.x & 31) == 0);
        mbar_arrive_if(sm.vir().empty(ps.stage), (threadIdx.x & 31) == 0);
    }
}

// ---------------------------------------------------------------- consumer
template <class K> struct WsConsumer {
    typedef WsShape<K> S;
    static constexpr int NT_S = S::NT_S, NT_O = S::NT_O;
    static constexpr int SCHED_THREADS = 256;   // one warpgroup waits, another arrives

    const fg_fwd_params &p;
    const WsSmem<K> &sm;
    int c, wq, lane;   // consumer index, warp in the warpgroup, lane
    float slope = 0.f; // ALiBi slope of the current tile's head

    __device__ __forceinline__ WsConsumer(const fg_fwd_params &p_, const WsSmem<K> &sm_, int c_)
        : p(p_), sm(sm_), c(c_), wq((threadIdx.x >> 5) & 3), lane(threadIdx.x & 31) {}

    // Ping-pong: warpgroup c issues its GEMMs between sync(1 + c) and
    // arrive(1 + next); the last one opens the first round.
    __device__ __forceinline__ void turn_begin() const {
        if (K::PINGPONG) named_bar_sync(1 + c, SCHED_THREADS);
    }
    __device__ __forceinline__ void turn_end() const {
        if (K::PINGPONG) named_bar_arrive(1 + (c + 1) % S::NC, SCHED_THREADS);
    }

    __device__ __forceinline__ void issue_s(float (&acc_s)[1][NT_S][4], u32 qst, u32 kst) const {
        const u64 qd = make_desc(qst + c * 64 * 128, 16, 1024), kd = make_desc(kst, 16, 1024);
#pragma unroll
        for (int ks = 0; ks < S::KS_QK; ++ks)
            wgmma_s(acc_s[0], desc_add(qd, (ks >> 2) * K::BR * 128 + (ks & 3) * 32),
                    desc_add(kd, (ks >> 2) * K::BC * 128 + (ks & 3) * 32), ks > 0);
    }
    // V is MN-major here: a k16 step is 16 key rows (2048 bytes), the
    // 64-column blocks of the value dim are BC * 128 bytes apart.  FP8: V^T
    // is K-major like K, a k32 step is 32 bytes of its 128-byte rows.
    __device__ __forceinline__ void issue_o(float (&acc_o)[1][NT_O][4], const u32 (&pa)[S::KS_PV][4], u32 vst) const {
        const u64 vd = K::FP8 ? make_desc(vst, 16, 1024) : make_desc(vst, K::BC * 128, 1024);
#pragma unroll
        for (int kk = 0; kk < S::KS_PV; ++kk) wgmma_o(acc_o[0], pa[kk], desc_add(vd, K::FP8 ? kk * 32 : kk * 2048));
    }
    __device__ __forceinline__ static void pack_p(u32 (&pa)[S::KS_PV][4], const float (&s)[1][NT_S][4]) {
        if constexpr (K::FP8) {
            pack_p_e4m3<S::KS_PV, NT_S>(pa, s);
        } else {
#pragma unroll
            for (int kk = 0; kk < S::KS_PV; ++kk) {
                pa[kk][0] = pack2<K::BF16>(s[0][2 * kk][0], s[0][2 * kk][1]);
                pa[kk][1] = pack2<K::BF16>(s[0][2 * kk][2], s[0][2 * kk][3]);
                pa[kk][2] = pack2<K::BF16>(s[0][2 * kk + 1][0], s[0][2 * kk + 1][1]);
                pa[kk][3] = pack2<K::BF16>(s[0][2 * kk + 1][2], s[0][2 * kk + 1][3]);
            }
        }
    }

    // The V ring's position: FP8's V^T ring has its own stage count; the
    // 16-bit kernel's V ring is the K ring's twin, its position ps itself.
    typedef PipeState<S::V_STAGES> VState;
    __device__ __forceinline__ static VState &v_state(PipeState<K::STAGES> &ps, VState &own) {
        if constexpr (K::FP8) return own;
        else return ps;
    }

    __device__ __forceinline__ void run() {
        typedef TileScheduler<K::BR, K::CAUSAL, K::SPARSE> TS;
        PipeState<K::STAGES> ps;
        ps.reset();
        VState v_own;
        v_own.reset();
        VState &vs = v_state(ps, v_own);
        PipeState<K::Q_STAGES> qs;
        qs.reset();
        if (K::PINGPONG && c == S::NC - 1) named_bar_arrive(1, SCHED_THREADS);
        for (int k = 0, tile; !TS::done(p, tile = TS::tile_at(p, k)); ++k) {
            int mb, h, b;
            TS::decode(p, tile, mb, h, b);
            one_tile(mb * K::BR, h, b, ps, vs, qs);
            qs.advance();
        }
        // close the ring of turns: the last warpgroup's final arrive on
        // barrier 1 is matched here
        if (K::PINGPONG && c == 0) named_bar_sync(1, SCHED_THREADS);
    }

    typedef Schedule<K::BR, K::BC, K::CAUSAL, K::SPARSE> Sched;

    // First entry >= i of the schedule whose key tile is visible (count if none).
    __device__ __forceinline__ int next_visible(const Sched &sch, int i, int &t, bool &part) const {
        for (; i < sch.count; ++i) {
            t = sch.tile(p, i, part);
            if (sch.visible(t, part)) break;
        }
        return i;
    }



    // S = Q K(t)^T for the stage at ps, masked.  With WITH_PV, O is rescaled
    // by the previous softmax's alpha (where it moved) while that GEMM runs,
    // then O += P V of the previous stage is issued behind it and left in
    // flight (FlashAttention-3's order: the rescale off the path between
    // one P V and the next S).
    template <bool WITH_PV>
    __device__ __forceinline__ void s_tile(const Sched &sch, float (&acc_s)[1][NT_S][4], int t, bool part, int row0, int b,
                                           int h, u32 qst, const PipeState<K::STAGES> &ps, float (&acc_o)[1][NT_O][4],
                                           const u32 (&pa)[S::KS_PV][4], int prev_stage, const float (&alpha)[1][2],
                                           bool moved) {
        sm.kr().wait_full(ps);
        turn_begin();
        wgmma_fence();
        issue_s(acc_s, qst, sm.k() + ps.stage * S::K_BYTES);
        wgmma_commit();
        if (WITH_PV) { // V(prev_stage) waited for by the caller, after the softmax
            if (moved) OnlineSoftmax<1, NT_S, NT_O>::rescale(acc_o, alpha);
            wgmma_fence(); // the rescaled O, to the wgmma that accumulates into it
            issue_o(acc_o, pa, sm.v() + prev_stage * S::V_BYTES);
            wgmma_commit();
        }
        turn_end();
        if (WITH_PV) wgmma_wait<1>();
        else wgmma_wait<0>();
        reg_fence(acc_s[0]);
        sm.kr().release(ps.stage);
        if constexpr (LogitMods<K>::value) apply_logit_mods<K, 1, NT_S>(acc_s, p, slope, b, h, row0, t * K::BC);
        if (sch.needs_mask(t, part))
            apply_mask<1, NT_S, K::CAUSAL>(acc_s, row0, t * K::BC, p.seqlen_k, p.causal_offset, part);
        if constexpr (HasWindow<K>::value)
            if (window_cuts<K::BC>(p, t, sch.m0, sch.row_last)) apply_window<1, NT_S>(acc_s, p, row0, t * K::BC);
        if constexpr (HasMaskMod<K>::value)
            if (part) apply_mask_mod<K, 1, NT_S>(acc_s, p, b, h, row0, t * K::BC);
    }

    // O += P V of the stage at (stage, phase), waited for and released.
    __device__ __forceinline__ void pv_now(float (&acc_o)[1][NT_O][4], const u32 (&pa)[S::KS_PV][4], int stage, u32 phase) {
        mbar_wait(sm.vr().full(stage), phase);
        turn_begin();
        wgmma_fence();
        issue_o(acc_o, pa, sm.v() + stage * S::V_BYTES);
        wgmma_commit();
        turn_end();
        wgmma_wait<0>();
        reg_fence(acc_o[0]);
        sm.vr().release(stage);
    }

    // ps: the K ring's position, vs: the V ring's (the same object unless FP8)
    __device__ __forceinline__ void one_tile(int m0, int h, int b, PipeState<K::STAGES> &ps, VState &vs,
                                             const PipeState<K::Q_STAGES> &qs) {
        const u32 qst = sm.qbuf(qs.stage);
        Schedule<K::BR, K::BC, K::CAUSAL, K::SPARSE> sch;
        sch.init(p, m0, b, h);
        const int first = window_clip<K>(p, sch);   // the producer's schedule too
        const int row0 = m0 + c * 64 + wq * 16;
        if constexpr (HasAlibi<K>::value) slope = __ldg(p.alibi_slopes + b * p.alibi_batch_stride + h);

        float acc_o[1][NT_O][4];
#pragma unroll
        for (int j = 0; j < NT_O; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc_o[0][j][e] = 0.f;
        OnlineSoftmax<1, NT_S, NT_O> smx;
        smx.init();
        u32 pa[S::KS_PV][4];
        // FP8: the descales of q and k fold into the softmax scale, v's into
        // the epilogue's normalisation
        float scale = p.scale, scale_log2 = p.scale_log2, o_scale = 1.f;
        if constexpr (K::FP8) {
            const int hk = h / p.group;
            const float qk = descale_at(p.q_descale, p.descale_per_head, b, p.heads_kv, hk) *
                             descale_at(p.k_descale, p.descale_per_head, b, p.heads_kv, hk);
            scale *= qk;
            scale_log2 *= qk;
            o_scale = descale_at(p.v_descale, p.descale_per_head, b, p.heads_kv, hk);
        }

        sm.qr().wait_full(qs);

        // The first visible tile is peeled off, so that inside the loop a
        // P V product is always in flight: a wgmma issued on a condition
        // makes ptxas serialise the pipeline (C7514).
        // the log2-domain softmax scale (score modifications scale S
        // themselves; softcap alone leaves cap to it: softmax_scale_of)
        const float sl2 = LogitMods<K>::value ? softmax_scale_of<K>(p, 1.f) * 1.44269504088896340736f : scale_log2;
        bool part;
        int t;
        int i = next_visible(sch, first, t, part);
        if (i < sch.count) {
            float acc_s[1][NT_S][4];
            float alpha[1][2];
            bool moved = false; // O is zero: nothing to rescale before the first P V
            s_tile<false>(sch, acc_s, t, part, row0, b, h, qst, ps, acc_o, pa, 0, alpha, moved);
            smx.step_p(acc_s, sl2, alpha); // (not applied: see moved)
            pack_p(pa, acc_s);
            if (K::OVERLAP) mbar_wait(sm.vr().full(vs.stage), vs.phase); // for the loop's first P V
            else pv_now(acc_o, pa, vs.stage, vs.phase);
            int prev_stage = vs.stage;
            u32 prev_phase = vs.phase;
            ps.advance();
            if constexpr (K::FP8) vs.advance();
            for (i = next_visible(sch, i + 1, t, part); i < sch.count; i = next_visible(sch, i + 1, t, part)) {
                s_tile<K::OVERLAP>(sch, acc_s, t, part, row0, b, h, qst, ps, acc_o, pa, prev_stage, alpha, moved);
                moved = true;
                if constexpr (K::LAZY > 0) moved = smx.template step_p_lazy<K::LAZY>(acc_s, sl2, alpha);
                else smx.step_p(acc_s, sl2, alpha);
                if (K::OVERLAP) {
                    // V(j) for the next P V, then P V(j-1) waited for.  With
                    // the softmax and the wgmma wait in one basic block,
                    // ptxas hoisted the wait to its top, and the softmax ran
                    // after P V(j-1) instead of under it (ncu, hd128
                    // non-causal 16k: 12% of the stall samples on that
                    // wait).  The mbarrier wait's spin loop splits the
                    // block; that ptxas then keeps the softmax above it is
                    // its choice, not a rule (in the backward it moved work
                    // down across such a wait), so tests/hopper_sass.sh
                    // checks the order in every forward variant's SASS.
                    mbar_wait(sm.vr().full(vs.stage), vs.phase);
                    wgmma_wait<0>();
                    reg_fence(acc_o[0]);
                    sm.vr().release(prev_stage);
                }
                if (!K::OVERLAP && moved) OnlineSoftmax<1, NT_S, NT_O>::rescale(acc_o, alpha);
                pack_p(pa, acc_s);
                if (!K::OVERLAP) pv_now(acc_o, pa, vs.stage, vs.phase);
                prev_stage = vs.stage;
                prev_phase = vs.phase;
                ps.advance();
                if constexpr (K::FP8) vs.advance();
            }
            if (K::OVERLAP) {
                if (moved) OnlineSoftmax<1, NT_S, NT_O>::rescale(acc_o, alpha);
                pv_now(acc_o, pa, prev_stage, prev_phase);
            }
        }
        epilogue(acc_o, smx, m0, h, b, qst, scale, o_scale);
        // Q and the staged O are no longer read: the buffer may take the Q
        // of a later tile
        fence_proxy_async();
        sm.qr().release(qs.stage);
    }

    // Normalise O into this warpgroup's rows of the Q buffer (128-byte
    // swizzle, conflict-free: the 8 rows of a store land in 8 different
    // 16-byte columns), then copy it out in coalesced 16-byte stores; lse
    // once per row.  O_PASSES > 1 (FP8): one column slice of Q_ROW bytes a
    // pass, the buffer reused once every thread has copied the last slice.
    // scale: the softmax scale of S (lse); o_scale multiplies O (FP8: v's descale).
    __device__ __forceinline__ void epilogue(float (&acc_o)[1][NT_O][4], OnlineSoftmax<1, NT_S, NT_O> &smx, int m0, int h,
                                             int b, u32 qst, float scale, float o_scale) const {
        float inv[1][2], lse[1][2];
        if constexpr (HasSink<K>::value) smx.template finish<true>(softmax_scale_of<K>(p, scale), inv, lse, __ldg(p.sinks + h));
        else smx.finish(softmax_scale_of<K>(p, scale), inv, lse);
        inv[0][0] *= o_scale;
        inv[0][1] *= o_scale;
        const int g = lane >> 2, cq = lane & 3;
        const u32 slice = qst + c * 64 * 128;
        const int rows = p.seqlen_q - (m0 + c * 64);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = m0 + c * 64 + wq * 16 + g + r * 8;
            if (p.lse && cq == 0 && row < p.seqlen_q) p.lse[((long long)b * p.heads_q + h) * p.seqlen_q + row] = lse[0][r];
        }
        char *og = (char *)p.o + 2 * (b * p.o_batch_stride + h * p.o_head_stride + (long long)(m0 + c * 64) * p.o_row_stride);
        const long long ors = 2 * p.o_row_stride;
        const int t = threadIdx.x & 127;
        constexpr int JP = S::Q_ROW / 16; // 16-byte chunks (8 values) of a row a pass
#pragma unroll
        for (int pass = 0; pass < S::O_PASSES; ++pass) {
            // the last slice is copied out.  With one Q stage, also before
            // the first pass: this warpgroup's copy-out of the tile before
            // is ordered before these stores only through the Q ring (empty
            // -> producer -> TMA -> full), which compute-sanitizer's
            // racecheck does not follow (it reported the stores against the
            // loads, head dim 256 causal); one bar.sync a tile shows it
            if (pass > 0 || K::Q_STAGES == 1) named_bar_sync(1 + S::NC + c, 128);
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int rr = wq * 16 + g + r * 8;
#pragma unroll
                for (int j = pass * JP; j < NT_O && j < (pass + 1) * JP; ++j) {
                    // column 8j + 2cq: 16-byte chunk j, 4 bytes at 4cq inside it
                    const int jl = j - pass * JP;
                    const u32 addr = slice + (jl >> 3) * K::BR * 128 + rr * 128 + ((((u32)jl & 7u) ^ ((u32)rr & 7u)) << 4) + 4 * cq;
                    const u32 v = pack2<K::BF16>(acc_o[0][j][2 * r] * inv[0][r], acc_o[0][j][2 * r + 1] * inv[0][r]);
                    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
                }
            }
            named_bar_sync(1 + S::NC + c, 128);
            constexpr int CH_ALL = K::DV / 8;
            const int j0 = pass * JP, ch = CH_ALL - j0 < JP ? CH_ALL - j0 : JP, total = 64 * ch;
#pragma unroll 4
            for (int it = 0; it < (total + 127) / 128; ++it) {
                const int id = t + it * 128;
                const int rr = id / ch, jl = id - rr * ch;
                if ((total % 128 == 0 || id < total) && rr < rows) {
                    const u32 addr = slice + (jl >> 3) * K::BR * 128 + rr * 128 + ((((u32)jl & 7u) ^ ((u32)rr & 7u)) << 4);
                    u32 x0, x1, x2, x3;
                    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                                 : "=r"(x0), "=r"(x1), "=r"(x2), "=r"(x3) : "r"(addr) : "memory");
                    uint4 v4 = make_uint4(x0, x1, x2, x3);
                    *(uint4 *)(og + rr * ors + (j0 + jl) * 16) = v4;
                }
            }
        }
    }
};

template <class K>
__device__ __forceinline__ void attention_forward_ws(const fg_fwd_params &p, const fg_tma_params &tm, char *smem_raw) {
    typedef WsShape<K> S;
    WsSmem<K> sm;
    sm.init(smem_raw);
    if (threadIdx.x == 0) {
        sm.qr().init(4 * S::NC);
        sm.kr().init(4 * S::NC);
        // FP8: V^T stages are filled by the transposing warps, V stages
        // emptied by them
        sm.vr().init(4 * S::NC, K::FP8 ? S::TRANSPOSERS / 32 : 1);
        if (K::FP8) {
            sm.vir().init(S::TRANSPOSERS / 32);
#pragma unroll
            for (int s = 0; s < S::VIN_STAGES; ++s)
                asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(sm.vdone(s)), "r"(0u) : "memory");
        }
        mbar_init_fence();
    }
    __syncthreads();
    // warp-uniform for the compiler (a plain threadIdx test is "divergent" to
    // ptxas, which then serialises the wgmma pipeline, C7520)
    const int wg = __shfl_sync(0xffffffffu, (int)(threadIdx.x >> 7), 0);
    if (wg == 0) {
        setmaxnreg_dec<K::PRODUCER_REGS>();
        // the roles by warp, warp-uniform (split by thread, ptxas kept the
        // loads' registers apart badly and spilled in 24)
        const int pw = __shfl_sync(0xffffffffu, (int)(threadIdx.x >> 5), 0);
        if (pw == 0) {
            if (threadIdx.x == 0) ws_loads<K>(p, tm, sm);
        } else {
            if constexpr (K::FP8) ws_transposes<K>(sm);
        }
    } else {
        setmaxnreg_inc<K::CONSUMER_REGS>();
        WsConsumer<K> cons(p, sm, wg - 1);
        cons.run();
    }
}

} // namespace fg
