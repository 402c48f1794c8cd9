/* test_desc_fuzz.c: random and adversarial forward descriptors through the
 * checks every call makes before it touches the GPU (fg_desc_read,
 * fg_desc_plan, fg_desc_tensor_shapes).  Properties, on each descriptor:
 *   - no crash, no undefined behaviour (CI runs this under ASan and UBSan);
 *   - either FG_OK or an error status with a message;
 *   - when accepted: the shape invariants the kernels rely on hold (head dims
 *     multiples of 8 up to 256, heads_q a multiple of heads_kv, lengths and
 *     batch positive or the call empty, a finite positive scale, strides of
 *     q, k, v and o whose byte extent does not overflow), and the kernel
 *     parameters agree with the descriptor.
 * Values are drawn from a mix of ordinary sizes and edges (0, 1, -1, odd
 * values, INT_MAX, INT64 extremes, misaligned and overlapping strides), with
 * the inference, score and layout-free fields set at random too.  The device
 * tables are never dereferenced on the host: dummy pointers stand in.
 * The same descriptors, with random gradient strides and the deterministic
 * flag, go through fg_backward_plan: a status with a message, or accepted
 * with the same invariants.  Block-sparse layout descriptors (small, with
 * counts and indices at random around their bounds, full lists or not):
 * fg_layout_validate's verdict must equal an independent check's.  And
 * fg_kv_append_plan of the descriptors with random new rows (pointers NULL,
 * aligned or not, strides NULL or at random, seqlen_new around its edges):
 * a status with a message, or accepted. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/attention.h"
#include "runtime/backward.h"
#include "runtime/internal.h"
#include "runtime/kv_append.h"
#include "runtime/layout.h"
#include "runtime/structs.h"
#include "test_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int pick(int n) { return (int)(next() % (uint64_t)n); }

static int any_int(const int *common, int n) {
    static const int edge[] = {0, 1, -1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 264, 4096,
                               65535, 1 << 20, 1 << 30, INT_MAX, INT_MIN, INT_MAX - 7};
    if (pick(8)) return common[pick(n)];
    return edge[pick((int)(sizeof edge / sizeof edge[0]))];
}

/* a * b without overflow: saturated at INT64_MAX (the test's own arithmetic
 * must not be what UBSan reports) */
static int64_t mul_sat(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

static int64_t any_stride(int64_t natural) {
    static const int64_t edge[] = {0, 1, 7, 8, 9, 16, -8, INT64_MAX, INT64_MIN, INT64_MAX - 7, (int64_t)1 << 40,
                                   ((int64_t)1 << 62) - 8, 4096, 128};
    switch (pick(12)) {
    case 0: return edge[pick((int)(sizeof edge / sizeof edge[0]))];
    case 1: {
        const int64_t m = mul_sat(natural, 1 + pick(3));
        return m > INT64_MAX - 16 ? m : m + 8 * pick(3);
    }
    default: return natural;
    }
}

static void fill(fg_attention_desc *d) {
    static const int dims[] = {8, 16, 32, 40, 64, 72, 96, 128, 160, 192, 256};
    static const int small[] = {1, 2, 3, 4, 8};
    static const int lens[] = {1, 2, 63, 64, 65, 128, 257, 1000, 4096};
    static const int dtypes[] = {FG_BF16, FG_FP16, FG_E4M3, 3, -1};
    const int hd = any_int(dims, 11), b = any_int(small, 5), hk = any_int(small, 5);
    const int64_t hq64 = pick(3) ? mul_sat(hk, any_int(small, 5)) : any_int(small, 5);
    const int hq = hq64 > INT_MAX ? INT_MAX : hq64 < INT_MIN ? INT_MIN : (int)hq64;
    const int sq = any_int(lens, 9), sk = any_int(lens, 9);
    fg_attention_desc_init(d, FG_BF16, hd > 0 && hd <= 256 ? hd : 64, 1, 1, 1, 1, 1);
    d->dtype = (fg_dtype)dtypes[pick(4) ? pick(2) : pick(5)];
    d->head_dim = hd;
    d->batch = b;
    d->heads_q = hq;
    d->heads_kv = hk;
    d->seqlen_q = sq;
    d->seqlen_k = sk;
    if (pick(3) == 0) d->head_dim_v = any_int(dims, 11);
    const int dv = d->head_dim_v ? d->head_dim_v : hd;
    /* bshd strides (or whatever any_stride makes of them) */
    const int64_t nat_q[3] = {mul_sat(mul_sat(sq, hq), hd), hd, mul_sat(hq, hd)},
                  nat_k[3] = {mul_sat(mul_sat(sk, hk), hd), hd, mul_sat(hk, hd)},
                  nat_v[3] = {mul_sat(mul_sat(sk, hk), dv), dv, mul_sat(hk, dv)},
                  nat_o[3] = {mul_sat(mul_sat(sq, hq), dv), dv, mul_sat(hq, dv)};
    for (int i = 0; i < 3; ++i) {
        d->q_strides[i] = any_stride(nat_q[i]);
        d->k_strides[i] = any_stride(nat_k[i]);
        d->v_strides[i] = any_stride(nat_v[i]);
        d->o_strides[i] = any_stride(nat_o[i]);
    }
    static const float scales[] = {0.f, 0.125f, 1.f, -1.f, NAN, INFINITY, 1e-30f, 1e30f};
    d->softmax_scale = pick(2) ? 0.f : scales[pick(8)];
    d->causal = (fg_causal)(pick(5) ? pick(3) : pick(7) - 2);
    if (pick(6) == 0) { /* an explicit configuration */
        static const int bms[] = {16, 32, 64, 128, 192, 0, 100}, bns[] = {16, 32, 64, 80, 112, 128, 256, 0, 24};
        d->block_m = bms[pick(7)];
        d->block_n = bns[pick(9)];
        d->warps = pick(10);
        d->stages = pick(5);
        d->path = (fg_kernel_path)pick(5);
    }
    /* inference fields: dummy device pointers, never read on the host */
    static int32_t dummy[64];
    if (pick(5) == 0) d->seqlens_k = dummy;
    if (pick(6) == 0) {
        d->block_table = dummy;
        d->page_size = any_int((const int[]){16, 32, 64, 128, 256, 48}, 6);
        d->num_pages = any_int(lens, 9);
        d->max_pages = any_int(small, 5);
    }
    if (pick(8) == 0) {
        d->cu_seqlens_q = dummy;
        d->total_q = any_int(lens, 9);
    }
    if (pick(8) == 0) {
        d->cu_seqlens_k = dummy;
        d->total_k = any_int(lens, 9);
    }
    if (pick(6) == 0) {
        const int ns = any_int(small, 5);
        d->num_splits = ns > INT_MIN ? ns - 1 : ns;
    }
    /* score modifications */
    static const float caps[] = {0.f, 30.f, -1.f, NAN, INFINITY, 1e-20f};
    if (pick(6) == 0) d->softcap = caps[pick(6)];
    static float slopes[64];
    if (pick(8) == 0) {
        d->alibi_slopes = slopes;
        d->alibi_batch_stride = pick(2) ? 0 : any_stride(hq);
    }
    if (pick(6) == 0) {
        const int wl = any_int(lens, 9), wr = any_int(lens, 9);
        d->window_left = wl > INT_MIN + 2 ? wl - 2 : wl;
        d->window_right = wr > INT_MIN + 2 ? wr - 2 : wr;
    }
    if (pick(8) == 0) d->sinks = slopes;
    static float desc_scale[64];
    if (d->dtype == FG_E4M3 && pick(2)) {
        d->q_descale = desc_scale;
        d->k_descale = pick(4) ? desc_scale : (const float *)((const char *)desc_scale + 2);
        d->v_descale = desc_scale;
        d->descale_per_head = pick(2);
    }
}

/* The layout rules, independently: counts in [0, nk], indices in [0, nk),
 * no block twice in a row over the full and partial lists. */
static int layout_ok(const fg_block_layout_desc *d) {
    const int rows = d->batch * d->heads * d->num_q_blocks, nk = d->num_kv_blocks;
    for (int r = 0; r < rows; ++r) {
        int seen[16] = {0};
        for (int pass = 0; pass < 2; ++pass) {
            const int32_t *num = pass ? d->kv_num_blocks : d->full_kv_num_blocks;
            const int32_t *idx = pass ? d->kv_indices : d->full_kv_indices;
            if (!num) continue;
            if (num[r] < 0 || num[r] > nk) return 0;
            for (int i = 0; i < num[r]; ++i) {
                const int j = idx[r * nk + i];
                if (j < 0 || j >= nk || seen[j]++) return 0;
            }
        }
    }
    return 1;
}

static void layout_fuzz(long *ok, long *bad) {
    for (int it = 0; it < 20000; ++it) {
        int32_t num[3 * 3 * 6], idx[3 * 3 * 6 * 6], fnum[3 * 3 * 6], fidx[3 * 3 * 6 * 6];
        fg_block_layout_desc d = {1 + pick(3), 1 + pick(3), 1 + pick(6), 1 + pick(6), 64 * (1 + pick(3)), 16 * (1 + pick(8)),
                                  num, idx, pick(2) ? fnum : NULL, NULL};
        d.full_kv_indices = d.full_kv_num_blocks ? fidx : NULL;
        const int rows = d.batch * d.heads * d.num_q_blocks, nk = d.num_kv_blocks, noisy = pick(3) == 0;
        for (int r = 0; r < rows; ++r) {
            /* a permutation of the blocks, split between full and partial */
            int perm[6];
            for (int j = 0; j < nk; ++j) perm[j] = j;
            for (int j = nk - 1; j > 0; --j) {
                const int k = pick(j + 1), t = perm[j];
                perm[j] = perm[k];
                perm[k] = t;
            }
            const int nf = d.full_kv_num_blocks ? pick(nk + 1) : 0, np = pick(nk - nf + 1);
            fnum[r] = nf;
            num[r] = np;
            for (int i = 0; i < nk; ++i) {
                fidx[r * nk + i] = i < nf ? perm[i] : -7;
                idx[r * nk + i] = i < np ? perm[nf + i] : -7;
            }
            if (noisy && pick(4) == 0) { /* one entry off its bounds, or a block twice */
                switch (pick(4)) {
                case 0: num[r] = pick(2) ? -1 : nk + 1; break;
                case 1: if (np) idx[r * nk + pick(np)] = pick(2) ? -1 : nk; break;
                case 2: if (np && nf) idx[r * nk + pick(np)] = fidx[r * nk + pick(nf)]; break;
                default: if (np > 1) idx[r * nk + 1] = idx[r * nk]; break;
                }
            }
        }
        fg_error e = {0};
        const fg_status st = fg_layout_validate(&d, &e);
        const int want = layout_ok(&d);
        CHECK((st == FG_OK) == want, "layout %dx%dx%dx%d: validate says %s (%s), the rules say %s", d.batch, d.heads,
              d.num_q_blocks, nk, fg_status_name(st), e.msg ? e.msg : "", want ? "valid" : "invalid");
        if (st != FG_OK) CHECK(st == FG_ERR_BAD_LAYOUT && e.msg && e.msg[0], "layout refused with %s", fg_status_name(st));
        *ok += want;
        *bad += !want;
        fg_error_clear(&e);
    }
}

int main(void) {
    long accepted = 0, refused = 0, bwd_accepted = 0, append_accepted = 0;
    const clock_t t0 = clock();
    const uint64_t seed = (uint64_t)time(NULL);
    rng ^= seed * 0x2545F4914F6CDD1DULL;
    printf("seed %llu\n", (unsigned long long)seed);
    for (long it = 0; it < 300000 && (clock() - t0) < 4 * CLOCKS_PER_SEC; ++it) {
        fg_attention_desc d;
        memset(&d, 0, sizeof d);
        fill(&d);
        fg_attention_desc r;
        fg_error e = {0};
        fg_status st = fg_desc_read(&d, &r, &e);
        fg_variant v;
        fg_fwd_params p;
        memset(&p, 0, sizeof p);
        if (st == FG_OK) st = fg_desc_plan(&r, 232448, &v, &p, &e);
        { /* the backward's plan of the same call, gradient strides at random */
            fg_attention_desc bd = d, dd;
            int64_t *g[4] = {bd.do_strides, bd.dq_strides, bd.dk_strides, bd.dv_strides};
            const int64_t *nat[4] = {d.o_strides, d.q_strides, d.k_strides, d.v_strides};
            for (int t = 0; t < 4; ++t) {
                const int like = pick(3) != 0; /* all zero: the forward tensor's strides */
                for (int i = 0; i < 3; ++i) g[t][i] = like ? 0 : any_stride(nat[t][i]);
            }
            bd.deterministic = pick(2);
            if (pick(2)) { /* the training call: no inference fields, 16-bit */
                bd.seqlens_k = bd.block_table = bd.cu_seqlens_q = bd.cu_seqlens_k = NULL;
                bd.num_splits = 0;
                bd.page_size = bd.num_pages = bd.max_pages = bd.total_q = bd.total_k = 0;
                if (bd.dtype == FG_E4M3) bd.dtype = FG_BF16;
                bd.q_descale = bd.k_descale = bd.v_descale = NULL;
            }
            fg_variant bv;
            fg_bwd_params bp;
            fg_error be = {0};
            const fg_status bs = fg_backward_plan(&bd, 232448, &dd, &bv, &bp, &be);
            if (bs != FG_OK)
                CHECK(be.msg && be.msg[0], "backward: status %s without a message", fg_status_name(bs));
            else
                CHECK(dd.heads_kv > 0 && dd.heads_q % dd.heads_kv == 0 && dd.head_dim % 8 == 0 && dd.head_dim <= 256 &&
                          dd.batch > 0, "backward accepted heads %d/%d head_dim %d batch %d", dd.heads_q, dd.heads_kv,
                      dd.head_dim, dd.batch);
            bwd_accepted += bs == FG_OK;
            fg_error_clear(&be);
        }
        { /* fg_kv_append's plan of the same descriptor (dummy device pointers, never read) */
            static char buf[256] __attribute__((aligned(64)));
            void *ptrs[4] = {NULL, buf, buf + 16, buf + 3};
            int64_t ks[3], vs[3];
            const int64_t *nat = d.k_strides;
            for (int i = 0; i < 3; ++i) {
                ks[i] = any_stride(nat[i]);
                vs[i] = any_stride(d.v_strides[i]);
            }
            const int sn[] = {0, 1, 2, 17, 64, INT_MAX, -1, INT_MIN};
            fg_append_args a = {ptrs[pick(4) ? 1 : pick(4)], ptrs[pick(4) ? 2 : pick(4)], pick(2) ? NULL : ks,
                                pick(2) ? NULL : vs, sn[pick(8)], ptrs[pick(4) ? 1 : pick(4)], ptrs[pick(4) ? 2 : pick(4)]};
            fg_attention_desc ad;
            fg_variant av;
            fg_append_params ap;
            fg_error ae = {0};
            const fg_status as = fg_kv_append_plan(&d, &a, &ad, &av, &ap, &ae);
            if (as != FG_OK) CHECK(ae.msg && ae.msg[0], "kv_append: status %s without a message", fg_status_name(as));
            append_accepted += as == FG_OK;
            fg_error_clear(&ae);
        }
        if (st != FG_OK) {
            ++refused;
            CHECK(e.msg && e.msg[0], "status %s without a message (head_dim %d, batch %d, heads %d/%d, seqlens %d/%d)",
                  fg_status_name(st), d.head_dim, d.batch, d.heads_q, d.heads_kv, d.seqlen_q, d.seqlen_k);
            CHECK(st == FG_ERR_INVALID_ARGUMENT || st == FG_ERR_UNSUPPORTED || st == FG_ERR_BAD_LAYOUT,
                  "unexpected status %s: %s", fg_status_name(st), e.msg ? e.msg : "");
            fg_error_clear(&e);
            continue;
        }
        ++accepted;
        const int dv = fg_desc_head_dim_v(&r);
        CHECK(r.head_dim >= 8 && r.head_dim <= 256 && r.head_dim % 8 == 0 && dv >= 8 && dv <= 256 && dv % 8 == 0,
              "accepted head dims %d/%d", r.head_dim, dv);
        CHECK(r.heads_kv > 0 && r.heads_q > 0 && r.heads_q % r.heads_kv == 0, "accepted heads %d/%d", r.heads_q, r.heads_kv);
        CHECK(r.batch > 0 && r.seqlen_q >= 0 && r.seqlen_k >= 0, "accepted batch %d seqlens %d/%d", r.batch, r.seqlen_q,
              r.seqlen_k);
        CHECK((int64_t)p.group * p.heads_kv == p.heads_q && p.heads_q == r.heads_q && p.batch == r.batch, "params heads %d/%d group %d",
              p.heads_q, p.heads_kv, p.group);
        CHECK(isfinite(p.scale) && p.scale > 0 && isfinite(p.scale_log2), "accepted scale %g", p.scale);
        fg_tensor_shape sh[FG_T_COUNT];
        fg_desc_tensor_shapes(&r, sh);
        for (int t = FG_T_Q; t <= FG_T_O; ++t) {
            const fg_tensor_shape *s = &sh[t];
            if (s->batch < 1 || s->heads < 1 || s->seqlen < 1) continue; /* an empty tensor: nothing is read */
            CHECK(fg_tensor_bytes(s->strides, s->batch, s->heads, s->seqlen, s->dim, s->elem_bytes) > 0,
                  "accepted %s: strides %lld %lld %lld over [%d, %d, %d, %d] overflow", s->name, (long long)s->strides[0],
                  (long long)s->strides[1], (long long)s->strides[2], s->batch, s->heads, s->seqlen, s->dim);
        }
        fg_error_clear(&e);
    }
    long lay_ok = 0, lay_bad = 0;
    layout_fuzz(&lay_ok, &lay_bad);
    printf("layouts: %ld valid, %ld invalid, each verdict as the independent check's\n", lay_ok, lay_bad);
    CHECK(lay_ok > 1000 && lay_bad > 1000, "the layout mix should hold both (%ld / %ld)", lay_ok, lay_bad);
    printf("test_desc_fuzz: %ld descriptors accepted, %ld refused with a message; the backward accepted %ld, "
           "kv_append %ld\n", accepted, refused, bwd_accepted, append_accepted);
    CHECK(accepted > 1000 && refused > 1000, "the mix should both accept and refuse (%ld / %ld)", accepted, refused);
    return test_summary("test_desc_fuzz");
}
