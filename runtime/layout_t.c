#include "runtime/layout_t.h"

#include <string.h>

size_t fg_layout_t_entries(const fg_block_layout_desc *d) {
    const size_t cols = (size_t)d->batch * (size_t)d->heads * (size_t)d->num_kv_blocks;
    return 2 * cols + 2 * cols * (size_t)d->num_q_blocks;
}

void fg_layout_transpose(const fg_block_layout_desc *d, int32_t *out) {
    const size_t cols = (size_t)d->batch * (size_t)d->heads * (size_t)d->num_kv_blocks;
    const size_t nq = (size_t)d->num_q_blocks, nk = (size_t)d->num_kv_blocks;
    int32_t *num[2] = {out, out + cols};                               /* full, partial */
    int32_t *idx[2] = {out + 2 * cols, out + 2 * cols + cols * nq};
    memset(out, 0, 2 * cols * sizeof *out);
    for (size_t bh = 0; bh < (size_t)d->batch * (size_t)d->heads; ++bh)
        for (size_t qb = 0; qb < nq; ++qb) { /* ascending, so every column list is ascending */
            const size_t r = bh * nq + qb;
            for (int pass = 0; pass < 2; ++pass) {
                const int32_t *n = pass ? d->kv_num_blocks : d->full_kv_num_blocks;
                const int32_t *ix = pass ? d->kv_indices : d->full_kv_indices;
                if (!n) continue;
                for (int i = 0; i < n[r]; ++i) {
                    const size_t c = bh * nk + (size_t)ix[r * nk + (size_t)i];
                    idx[pass][c * nq + (size_t)num[pass][c]++] = (int32_t)qb;
                }
            }
        }
}
