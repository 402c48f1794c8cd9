/* infer_case.h: one inference test case of tests/test_gpu_infer.c (issue
 * 12; docs/INFERENCE.md) with optional score modifications (issue 13;
 * docs/SCORE-WIRING.md), run through a plan and fg_attention_forward and
 * checked against the float64 reference sequence by sequence: a varlen,
 * paged or split call must equal dense calls of each sequence alone
 * (fg_reference_forward_mods, batch 1, its own lengths: the same alignment
 * of causal, ALiBi and the window).  Included once, by test_gpu_infer.c,
 * which defines cu, dalloc and up first. */
#ifndef FG_TEST_INFER_CASE_H
#define FG_TEST_INFER_CASE_H

/* Score modifications of a case (all zero: none). */
typedef struct imods {
    float softcap;
    int alibi;     /* 0 off, 1 [heads_q], 2 [batch, heads_q] with a row pitch past heads_q */
    int window;    /* 1: window_left = wl, window_right = wr (-1 unbounded) */
    int wl, wr;
    int sinks;
} imods;

typedef struct icase {
    const char *name;
    fg_dtype dt;
    int d, dv, b, hq, hkv;
    int sq;           /* fixed seqlen_q (0: varlen, from lens_q) */
    int cap;          /* contiguous cache capacity, or seqlen_k of a plain call */
    int page;         /* paged cache page size (0: contiguous) */
    int varlen_k;     /* k/v packed with cu_seqlens_k */
    int use_seqlens;  /* seqlens_k given */
    fg_causal causal;
    int splits;       /* desc.num_splits */
    int lens_q[8], lens_k[8];
    uint64_t seed;
    int block_n;      /* non-zero: explicit key tiles of block_n (FG_PATH_MMA, 64 x block_n, 4 warps, 2 stages);
                         larger than the page: tiles spanning pages */
    imods m;
    int warps;        /* non-zero: explicit decode tiles of 16 x warps rows on that many warps (FG_PATH_MMA,
                         block_n or 64 keys, 2 stages), which the choice takes only when no split is wanted */
} icase;

/* Host tensors of one case: per sequence contiguous [len, heads, dim]. */
typedef struct seqdata { uint16_t *q, *k, *v; } seqdata;

static int run_case(fg_context *ctx, const icase *c) {
    fg_rng rng;
    fg_rng_seed(&rng, c->seed);
    const int B = c->b, Hq = c->hq, Hk = c->hkv, D = c->d, DV = c->dv ? c->dv : c->d;
    int sq[8], sk[8], maxq = 0, maxk = 0, totq = 0, totk = 0;
    for (int i = 0; i < B; ++i) {
        sq[i] = c->sq ? c->sq : c->lens_q[i];
        sk[i] = c->lens_k[i];
        if (sq[i] > maxq) maxq = sq[i];
        if (sk[i] > maxk) maxk = sk[i];
        totq += sq[i];
        totk += sk[i];
    }
    if (maxq < 1) maxq = 1;
    const int cap = c->cap ? c->cap : (maxk > 0 ? maxk : 1);
    /* random data per sequence */
    seqdata s[8];
    for (int i = 0; i < B; ++i) {
        s[i].q = malloc(2 * (size_t)(sq[i] + 1) * Hq * D);
        s[i].k = malloc(2 * (size_t)(sk[i] + 1) * Hk * D);
        s[i].v = malloc(2 * (size_t)(sk[i] + 1) * Hk * DV);
        fg_fill_normal(s[i].q, (size_t)sq[i] * Hq * D, c->dt, &rng);
        fg_fill_normal(s[i].k, (size_t)sk[i] * Hk * D, c->dt, &rng);
        fg_fill_normal(s[i].v, (size_t)sk[i] * Hk * DV, c->dt, &rng);
    }

    fg_attention_desc d;
    fg_attention_desc_init(&d, c->dt, D, B, Hq, Hk, maxq, cap);
    fg_attention_desc_set_head_dim_v(&d, DV);
    d.causal = c->causal;
    d.num_splits = c->splits;
    /* score modifications: slopes [B, apitch] (apitch heads_q for [heads_q]
     * slopes, which use row 0 only), sinks [Hq], random */
    const imods *m = &c->m;
    const int apitch = m->alibi == 2 ? Hq + 3 : Hq;
    float *slopes = malloc(sizeof(float) * (size_t)B * apitch), *sinks = malloc(sizeof(float) * (size_t)Hq);
    for (int i = 0; i < B * apitch; ++i) slopes[i] = (float)(0.01 + 0.5 * fg_rng_uniform(&rng));
    for (int i = 0; i < Hq; ++i) sinks[i] = (float)(2 * fg_rng_normal(&rng));
    d.softcap = m->softcap;
    if (m->window) {
        d.window_left = m->wl;
        d.window_right = m->wr;
    }
    if (c->block_n || c->warps) {
        d.path = FG_PATH_MMA;
        d.block_m = c->warps ? 16 * c->warps : 64;
        d.warps = c->warps ? c->warps : 4;
        d.block_n = c->block_n ? c->block_n : 64;
        d.stages = 2;
    }

    /* q and o: packed [totq, H, *] (varlen) or [B, maxq, H, *] */
    const int varq = c->sq == 0;
    const size_t qrows = varq ? (size_t)(totq ? totq : 1) : (size_t)B * maxq;
    uint16_t *hq = calloc(qrows * Hq * D, 2);
    int32_t cuq[9] = {0}, cuk[9] = {0}, lens[8];
    for (int i = 0, r = 0; i < B; ++i) {
        for (int j = 0; j < sq[i]; ++j)
            memcpy(hq + ((size_t)(varq ? r + j : i * maxq + j)) * Hq * D, s[i].q + (size_t)j * Hq * D, 2 * (size_t)Hq * D);
        r += sq[i];
        cuq[i + 1] = r;
        lens[i] = sk[i];
    }
    /* k and v: packed [totk, Hk, *], paged [pages, page, Hk, *] or [B, cap, Hk, *] */
    size_t krows;
    int npages = 0, maxpages = 0;
    int32_t *table = NULL;
    if (c->page) {
        maxpages = (cap + c->page - 1) / c->page;
        npages = B * maxpages + 1;
        table = malloc(sizeof(int32_t) * (size_t)B * maxpages);
        /* a shuffled permutation of the pages; sequence 1 shares sequence 0's first page when both read it only */
        int *perm = malloc(sizeof(int) * (size_t)npages);
        for (int i = 0; i < npages; ++i) perm[i] = i;
        for (int i = npages - 1; i > 0; --i) {
            const int j = (int)(fg_rng_uniform(&rng) * (i + 1));
            const int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (int i = 0; i < B * maxpages; ++i) table[i] = perm[i];
        free(perm);
        krows = (size_t)npages * c->page;
    } else if (c->varlen_k) {
        krows = (size_t)(totk ? totk : 1);
    } else {
        krows = (size_t)B * cap;
    }
    /* shared page: when sequences 0 and 1 hold the same data in their first page */
    int share = c->page && B > 1 && sk[0] >= c->page && sk[1] >= c->page;
    if (share) {
        memcpy(s[1].k, s[0].k, 2 * (size_t)c->page * Hk * D);
        memcpy(s[1].v, s[0].v, 2 * (size_t)c->page * Hk * DV);
        table[maxpages] = table[0];
    }
    uint16_t *hk = malloc(krows * Hk * D * 2), *hv = malloc(krows * Hk * DV * 2);
    fg_fill_normal(hk, krows * Hk * D, c->dt, &rng); /* rows no sequence names: noise */
    fg_fill_normal(hv, krows * Hk * DV, c->dt, &rng);
    for (int i = 0, r = 0; i < B; ++i) {
        for (int j = 0; j < sk[i]; ++j) {
            size_t row;
            if (c->page) row = (size_t)table[i * maxpages + j / c->page] * c->page + j % c->page;
            else if (c->varlen_k) row = (size_t)r + j;
            else row = (size_t)i * cap + j;
            memcpy(hk + row * Hk * D, s[i].k + (size_t)j * Hk * D, 2 * (size_t)Hk * D);
            memcpy(hv + row * Hk * DV, s[i].v + (size_t)j * Hk * DV, 2 * (size_t)Hk * DV);
        }
        r += sk[i];
        cuk[i + 1] = r;
    }
    /* strides */
    const int64_t qs[3] = {(int64_t)maxq * Hq * D, D, (int64_t)Hq * D}, os[3] = {(int64_t)maxq * Hq * DV, DV, (int64_t)Hq * DV};
    memcpy(d.q_strides, qs, sizeof qs);
    memcpy(d.o_strides, os, sizeof os);
    const int kl = c->page ? c->page : cap;
    const int64_t ks[3] = {(int64_t)kl * Hk * D, D, (int64_t)Hk * D}, vs[3] = {(int64_t)kl * Hk * DV, DV, (int64_t)Hk * DV};
    memcpy(d.k_strides, ks, sizeof ks);
    memcpy(d.v_strides, vs, sizeof vs);

    CUdeviceptr q = dalloc(qrows * Hq * D * 2), k = dalloc(krows * Hk * D * 2), v = dalloc(krows * Hk * DV * 2);
    CUdeviceptr o = dalloc(qrows * Hq * DV * 2), lse = dalloc(qrows * Hq * 4), tabs = dalloc(4096);
    CUdeviceptr dsl = dalloc(sizeof(float) * (size_t)B * apitch), dsk = dalloc(sizeof(float) * (size_t)Hq);
    up(dsl, slopes, sizeof(float) * (size_t)B * apitch);
    up(dsk, sinks, sizeof(float) * (size_t)Hq);
    if (m->alibi) {
        d.alibi_slopes = (const float *)(uintptr_t)dsl;
        d.alibi_batch_stride = m->alibi == 2 ? apitch : 0;
    }
    if (m->sinks) d.sinks = (const float *)(uintptr_t)dsk;
    up(q, hq, qrows * Hq * D * 2);
    up(k, hk, krows * Hk * D * 2);
    up(v, hv, krows * Hk * DV * 2);
    up(tabs, cuq, sizeof cuq);
    up(tabs + 64, cuk, sizeof cuk);
    up(tabs + 128, lens, sizeof lens);
    if (table) up(tabs + 256, table, sizeof(int32_t) * (size_t)B * maxpages);
    if (varq) {
        d.cu_seqlens_q = (const int32_t *)(uintptr_t)tabs;
        d.total_q = totq;
    }
    if (c->varlen_k) {
        d.cu_seqlens_k = (const int32_t *)(uintptr_t)(tabs + 64);
        d.total_k = totk;
        d.seqlen_k = maxk > 0 ? maxk : 1;
    }
    if (c->use_seqlens || c->page) d.seqlens_k = (const int32_t *)(uintptr_t)(tabs + 128);
    if (c->page) {
        d.block_table = (const int32_t *)(uintptr_t)(tabs + 256);
        d.page_size = c->page;
        d.num_pages = npages;
        d.max_pages = maxpages;
    }

    int ok = 1;
    if (m->softcap > 0 || m->alibi || m->window || m->sinks) {
        /* the inference kernel with the case's modifications runs */
        char name[512] = "", want[64];
        snprintf(want, sizeof want, ",mods=%s%s%s%s", m->softcap > 0 ? "softcap+" : "", m->alibi ? "alibi+" : "",
                 m->window ? "window+" : "", m->sinks ? "sink+" : "");
        want[strlen(want) - 1] = 0;
        fg_attention_desc dn = d; /* the kernel is the same split or not; the name asks without a workspace */
        if (dn.num_splits > 1) dn.num_splits = 0;
        const fg_status sn = fg_attention_kernel_name(ctx, &dn, name, sizeof name);
        CHECK(sn == FG_OK && strstr(name, "infer=1") && strstr(name, want), "%s: kernel %s, want infer=1 and %s (%s)",
              c->name, name, want, sn == FG_OK ? "" : fg_errmsg(ctx));
    }
    fg_attention_plan *plan = NULL;
    fg_status st = fg_attention_plan_create(ctx, &d, &plan);
    CHECK(st == FG_OK, "%s: plan: %s", c->name, fg_errmsg(ctx));
    if (st != FG_OK) ok = 0;
    for (int pass = 0; ok && pass < 2; ++pass) {
        /* pass 0: the plan; pass 1: fg_attention_forward (unsplit calls only) */
        if (pass == 1 && c->splits > 1) break;
        const size_t wsb = fg_attention_plan_workspace(plan);
        CUdeviceptr ws = wsb ? dalloc(wsb) : 0;
        if (ws) cu->MemsetD32(ws, 0, wsb / 4); /* zero once; runs leave it zero */
        cu->MemsetD32(o, 0xFFFFFFFFu, qrows * Hq * DV / 2);
        cu->MemsetD32(lse, 0xFFFFFFFFu, qrows * Hq);
        if (pass == 0) /* twice on one workspace: the first run must leave its split counters zero */
            for (int rep = 0; rep < 2 && st == FG_OK; ++rep)
                st = fg_attention_run(plan, (void *)(uintptr_t)q, (void *)(uintptr_t)k, (void *)(uintptr_t)v, (void *)(uintptr_t)o,
                                      (float *)(uintptr_t)lse, (void *)(uintptr_t)ws, wsb, NULL);
        else {
            fg_attention_desc d1 = d;
            if (d1.num_splits == 0) d1.num_splits = 1;
            st = fg_attention_forward(ctx, &d1, (void *)(uintptr_t)q, (void *)(uintptr_t)k, (void *)(uintptr_t)v, (void *)(uintptr_t)o,
                                      (float *)(uintptr_t)lse, NULL);
        }
        CHECK(st == FG_OK, "%s pass %d: %s", c->name, pass, fg_errmsg(ctx));
        CUresult r = cu->CtxSynchronize();
        CHECK(r == CUDA_SUCCESS, "%s pass %d: kernel fault %d", c->name, pass, (int)r);
        if (st != FG_OK || r != CUDA_SUCCESS) { ok = 0; break; }
        char msg[256];
        st = fg_attention_table_error(ctx, msg, sizeof msg, NULL);
        CHECK(st == FG_OK, "%s: table error reported on good tables: %s", c->name, msg);
        uint16_t *ho = malloc(qrows * Hq * DV * 2);
        float *hl = malloc(qrows * Hq * 4);
        cu->MemcpyDtoH(ho, o, qrows * Hq * DV * 2);
        cu->MemcpyDtoH(hl, lse, qrows * Hq * 4);
        fg_check chk;
        fg_check_init(&chk, c->dt);
        for (int i = 0, r0 = 0; i < B; ++i) {
            /* the reference of sequence i alone: batch 1, its own lengths */
            if (sq[i] > 0 && sk[i] >= 0) {
                fg_attention_desc ds;
                fg_attention_desc_init(&ds, c->dt, D, 1, Hq, Hk, sq[i], sk[i] > 0 ? sk[i] : 1);
                fg_attention_desc_set_head_dim_v(&ds, DV);
                ds.causal = c->causal;
                ds.softcap = d.softcap;
                ds.window_left = d.window_left;
                ds.window_right = d.window_right;
                const fg_ref_mods rm = {.alibi_slopes = m->alibi ? slopes + (m->alibi == 2 ? (size_t)i * apitch : 0) : NULL,
                                        .sinks = m->sinks ? sinks : NULL};
                double *ro = malloc(sizeof(double) * (size_t)sq[i] * Hq * DV), *rl = malloc(sizeof(double) * (size_t)sq[i] * Hq);
                if (sk[i] > 0) fg_reference_forward_mods(&ds, NULL, &rm, s[i].q, s[i].k, s[i].v, ro, rl);
                else { /* no key: o = 0, lse = -inf, or the sink (its softmax holds the sink alone) */
                    for (size_t x = 0; x < (size_t)sq[i] * Hq * DV; ++x) ro[x] = 0;
                    for (int h = 0; h < Hq; ++h)
                        for (int j = 0; j < sq[i]; ++j) rl[(size_t)h * sq[i] + j] = m->sinks ? sinks[h] : -INFINITY;
                }
                for (int j = 0; j < sq[i]; ++j)
                    for (int h = 0; h < Hq; ++h) {
                        const size_t row = varq ? (size_t)r0 + j : (size_t)i * maxq + j;
                        const double gl = varq ? hl[(size_t)h * totq + r0 + j] : hl[((size_t)i * Hq + h) * maxq + j];
                        fg_check_row(&chk, ho + (row * Hq + h) * DV, ro + ((size_t)j * Hq + h) * DV, DV, 1, gl,
                                     rl[(size_t)h * sq[i] + j]);
                    }
                free(ro);
                free(rl);
            }
            r0 += sq[i];
        }
        const int good = fg_check_done(&chk);
        char desc[256];
        fg_check_describe(&chk, desc, sizeof desc);
        CHECK(good, "%s pass %d (%d splits): %s", c->name, pass, fg_attention_plan_splits(plan), desc);
        if (good) printf("ok   %-34s %s, %d splits: %s\n", c->name, pass ? "forward" : "plan   ", pass ? 1 : fg_attention_plan_splits(plan), desc);
        ok &= good;
        free(ho);
        free(hl);
        if (ws) cu->MemFree(ws);
    }
    fg_attention_plan_destroy(plan);
    cu->MemFree(q); cu->MemFree(k); cu->MemFree(v); cu->MemFree(o); cu->MemFree(lse); cu->MemFree(tabs);
    cu->MemFree(dsl); cu->MemFree(dsk);
    for (int i = 0; i < B; ++i) { free(s[i].q); free(s[i].k); free(s[i].v); }
    free(hq); free(hk); free(hv); free(table); free(slopes); free(sinks);
    return ok;
}

#endif
