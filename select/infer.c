/* infer.c: split-KV and GQA-packing choices (infer.h). */
#include "select/infer.h"

int fg_infer_pack(int group, int seqlen_q, int block_m) {
    return group > 1 && seqlen_q < block_m ? group : 1;
}

int fg_infer_fills(long long tiles, int slots) { return tiles * 5 >= (long long)slots * 4; }

int fg_infer_splits(long long tiles, int key_tiles, int slots, int max_splits) {
    if (tiles <= 0 || key_tiles <= 1 || slots <= 0 || fg_infer_fills(tiles, slots)) return 1;
    int most = max_splits < key_tiles ? max_splits : key_tiles;
    if (most > FG_MAX_SPLITS) most = FG_MAX_SPLITS;
    if (most <= 1) return 1;
    /* efficiency of s splits: how full the waves are, on average */
    double best = 0, eff[FG_MAX_SPLITS + 1];
    for (int s = 1; s <= most; ++s) {
        const long long ctas = tiles * s, full = (ctas + slots - 1) / slots;
        eff[s] = (double)ctas / ((double)full * slots);
        if (eff[s] > best) best = eff[s];
    }
    for (int s = 1; s <= most; ++s)
        if (eff[s] >= 0.85 * best) return s;
    return 1;
}

static unsigned long long round256(unsigned long long x) { return (x + 255) / 256 * 256; }

void fg_infer_workspace_parts(int splits, int batch, int heads_q, int seqlen_q, int head_dim_v,
                              unsigned long long *lse_offset, unsigned long long *count_offset) {
    const unsigned long long rows = (unsigned long long)splits * batch * heads_q * seqlen_q;
    *lse_offset = round256(rows * head_dim_v * 4);
    *count_offset = *lse_offset + round256(rows * 4);
}

unsigned long long fg_infer_workspace_bytes(int splits, int batch, int heads_q, int seqlen_q, int head_dim_v,
                                            long long tiles) {
    if (splits <= 1) return 0;
    unsigned long long lse_at, count_at;
    fg_infer_workspace_parts(splits, batch, heads_q, seqlen_q, head_dim_v, &lse_at, &count_at);
    return count_at + round256((unsigned long long)tiles * 4);
}
