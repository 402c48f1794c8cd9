/* GPU test of block-sparse patterns: every built-in, combinations, a
 * mask-only user file and a per-head random layout, on both kernel families
 * (wgmma where the GPU has it, and mma.sync), with odd sizes (seqlens that
 * are not multiples of the blocks, seqlen_q != seqlen_k), GQA, several layout
 * blocks and the call's causal modes on top of the pattern's element mask.
 * Each case: fresh random inputs, NaN-poisoned outputs, the float64 CPU
 * reference with the same layout and mask (tools/harness.c).  Two masks
 * whose 64-bit products wrap check that kernel and host agree bit for bit.
 * Exit 77 (skipped) without a GPU. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cuda_api.h"
#include "runtime/internal.h"
#include "test_gpu_util.h"
#include "test_util.h"
#include "tools/harness.h"

typedef struct pcase { const char *pattern, *params; } pcase;
typedef struct shape { int b, hq, hkv, sq, sk; } shape;

int main(int argc, char **argv) {
    gpu_or_skip();
    (void)argc; (void)argv;
    char user[256];
    snprintf(user, sizeof user, "/tmp/flashgen-gpu-pattern-%d.lua", (int)getpid());
    FILE *f = fopen(user, "w");
    fputs("-- a mask-only user pattern: flashgen derives the blocks from the expression\n"
          "return { name = 'stripes', mask = '(q_idx / 48 + kv_idx / 80) % 3 != 1 && kv_idx <= q_idx + 200' }\n", f);
    fclose(f);
    const pcase pats[] = {
        {"sliding_window", "window=100"},
        {"sliding_window", "window=150; causal=1"},
        {"causal", NULL},
        {"dilated", "window=300; dilation=3"},
        {"global", "tokens=40"},
        {"document", "lengths=90,200,31,150"},
        {"longformer", "window=64; global=32"},
        {"bigbird", "window=64; global=32; random=0.2; seed=3"},
        {"random", "density=0.3; seed=9; per_head=1"},
        {"intersection(document{lengths={120, 250}}, causal{})", NULL},
        {user, NULL},
        /* a mask whose products leave the int range: the 64-bit kernel code */
        {"{ name = 'wide', mask = '(q_idx * 3000000007 + kv_idx * 7) % 5 != 1 && kv_idx <= q_idx + 100' }", NULL},
        /* products that wrap (issue 16 item 2): the host keeps keys with
         * kv % 4 in {0, 1}; with signed long long arithmetic NVRTC folded the
         * product away and the kernel kept every kv <= q */
        {"{ name = 'wrap64', mask = 'kv_idx <= q_idx && kv_idx * 4611686018427387904 >= 0' }", NULL},
        {"{ name = 'wrap64b', mask = '(q_idx - kv_idx) * 4611686018427387903 + kv_idx * 3 >= 0' }", NULL},
    };
    const shape shapes[] = {
        {2, 4, 2, 333, 517}, /* GQA, sq < sk */
        {1, 3, 1, 600, 300}, /* MQA, sq > sk */
        {2, 2, 2, 1000, 1000},
    };
    static const int blocks[][2] = {{128, 128}, {64, 64}, {128, 64}};
    fg_context *ctx;
    fg_context_create(&ctx);
    uint64_t seed = (uint64_t)time(NULL);
    printf("seed base %llu\n", (unsigned long long)seed);
    int passed = 0, failed = 0, k = 0;
    for (unsigned pi = 0; pi < sizeof pats / sizeof pats[0]; ++pi) {
        fg_pattern *p = NULL;
        if (fg_pattern_create(ctx, pats[pi].pattern, pats[pi].params, &p) != FG_OK) {
            CHECK(0, "%s: %s", pats[pi].pattern, fg_errmsg(ctx));
            ++failed;
            continue;
        }
        /* both kernel families per pattern, head dims 64 and 128 alternating:
         * FG_PATH_AUTO with 128 x 128 layout blocks (the wgmma kernels on
         * Hopper), FG_PATH_MMA with 128 x 128, 64 x 64 or 128 x 64 */
        for (int path = 0; path < 2; ++path, ++k) {
            const int hd = (int)(pi + (unsigned)path) % 2, bi = path ? (int)(pi % 3) : 0;
            const shape s = shapes[k % 3];
            fg_case c;
            memset(&c, 0, sizeof c);
            fg_attention_desc_init(&c.desc, k % 5 == 4 ? FG_FP16 : FG_BF16, hd ? 128 : 64, s.b, s.hq, s.hkv, s.sq, s.sk);
            c.desc.path = path ? FG_PATH_MMA : FG_PATH_AUTO;
            c.desc.causal = k % 4 == 3 ? FG_CAUSAL_BOTTOM_RIGHT : k % 4 == 1 ? FG_CAUSAL_TOP_LEFT : FG_CAUSAL_NONE;
            c.pattern = p;
            c.block = blocks[bi][0];
            c.block_k = blocks[bi][1];
            c.seed = seed + (uint64_t)k;
            c.bhsd = k % 3 == 1;
            fg_case_result r;
            char desc[512];
            fg_case_describe(&c, desc, sizeof desc);
            const int bad = fg_harness_run(ctx, &c, 0, &r);
            printf("%-4s %-150s o_err=%.2e rel=%.2e lse_err=%.2e density=%.2f%s%s\n", bad ? "FAIL" : "ok", desc, r.o.max_abs,
                   r.o.rel_l2, r.lse.max_abs, r.density, bad ? "  " : "", bad ? r.msg : "");
            if (ctx->kernels) printf("     newest kernel of the context: %s\n", ctx->kernels->key);
            fflush(stdout);
            CHECK(!bad, "%s: %s", desc, r.msg);
            if (bad) ++failed; else ++passed;
        }
        fg_pattern_destroy(p);
    }
    /* a pattern layout is tied to the sizes it was evaluated for */
    fg_pattern *p = NULL;
    fg_block_layout *L = NULL;
    if (fg_pattern_create(ctx, "sliding_window", NULL, &p) == FG_OK && fg_pattern_layout(ctx, p, 1, 1, 512, 512, 128, 128, &L) == FG_OK) {
        fg_attention_desc d;
        fg_attention_desc_init(&d, FG_BF16, 128, 1, 1, 1, 500, 512);
        d.layout = L;
        CHECK(fg_attention_prepare(ctx, &d) == FG_ERR_BAD_LAYOUT, "a pattern layout used with other sizes");
        CHECK_CONTAINS(fg_errmsg(ctx), "evaluated from its pattern");
    } else {
        CHECK(0, "%s", fg_errmsg(ctx));
    }
    fg_block_layout_destroy(ctx, L);
    fg_pattern_destroy(p);
    fg_context_destroy(ctx);
    unlink(user);
    printf("%d passed, %d failed\n", passed, failed);
    return test_summary("test_gpu_patterns");
}
