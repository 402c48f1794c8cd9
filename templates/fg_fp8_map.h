/* fg_fp8_map.h: the index maps of the FP8 kernel (fg_fp8.cuh), plain C so
 * that the host test (tests/test_fp8_cpu.c) runs the very functions the
 * kernel uses: which key each A-operand column of P holds, where
 * pack_p_e4m3 takes each byte from, the swizzled byte offsets of the V and
 * V^T tiles and the lanes' rows and byte permutes of the V transpose.
 *
 * The key permutation (see fg_fp8.cuh): inside a 32-key step, A-column
 * 16h + 4q + i holds key 16h + 2q + (i & 1) + 8 (i >> 1). */
#ifndef FG_FP8_MAP_H
#define FG_FP8_MAP_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define FG_FP8_FN __host__ __device__ __forceinline__
#define FG_FP8_PERM(x, y, s) __byte_perm((x), (y), (s))
#else
#define FG_FP8_FN static inline
/* __byte_perm: byte k of the result is byte (s >> 4k) & 7 of y:x (x the low word) */
static inline unsigned fg_fp8_byte_perm(unsigned x, unsigned y, unsigned s) {
    const unsigned long long xy = ((unsigned long long)y << 32) | x;
    unsigned r = 0;
    for (int k = 0; k < 4; ++k) r |= (unsigned)((xy >> (8 * ((s >> (4 * k)) & 7))) & 0xff) << (8 * k);
    return r;
}
#define FG_FP8_PERM(x, y, s) fg_fp8_byte_perm((x), (y), (s))
#endif

/* The key (0..31 inside a 32-key step) at A-column a (0..31). */
FG_FP8_FN int fp8_key_of_col(int a) { return (a & 16) + 2 * ((a >> 2) & 3) + (a & 1) + 8 * ((a >> 1) & 1); }

/* pack_p_e4m3: byte `byte` of A register `reg` comes from accumulator n8
 * block fp8_pack_block (of the four in the step) and element fp8_pack_elem. */
FG_FP8_FN int fp8_pack_block(int reg, int byte) { return 2 * (reg >> 1) + (byte >> 1); }
FG_FP8_FN int fp8_pack_elem(int reg, int byte) { return 2 * (reg & 1) + (byte & 1); }

/* Byte offset of byte c of row r in a tile of `rows` rows stored as column
 * blocks of 128 bytes (rows * 128 bytes apart), 128-byte swizzle. */
FG_FP8_FN unsigned fp8_swz(int rows, int r, int c) {
    return (unsigned)((c >> 7) * rows * 128 + r * 128 + ((((c & 127) >> 4) ^ (r & 7)) << 4) + (c & 15));
}

/* The V transpose, by warps: an item is 32 keys (two 16-key groups) x 16
 * values of a 128-key tile, item = 4 m + jp for values 16m..16m+15 and keys
 * 32jp..32jp+31; DV / 4 items a tile.  A warp moves an item with
 *
 *   ldmatrix.m8n8.x4.trans.b16: matrix i = keys 32jp + 8i .. +7 (16-byte
 *     rows of values 16m..), lane l gives the address of key 32jp + l.
 *     Transposed, thread (g = lane / 4, q = lane % 4) gets of matrix i the
 *     bytes V(k, 2g), V(k, 2g+1), V(k+1, 2g), V(k+1, 2g+1) with
 *     k = 32jp + 8i + 2q (values relative to 16m);
 *   two byte permutes per 16-key group: keys 2q, 2q+1, 2q+8, 2q+9 of one
 *     value are A-columns 4q..4q+3 (the key order above), so value 2g's word
 *     is bytes 0, 2, 4, 6 of (matrix 2h, matrix 2h+1), value 2g+1's bytes
 *     1, 3, 5, 7;
 *   stmatrix.m8n8.x4.b16: matrix 2h + x holds, for 16-key group 2jp + h,
 *     the value rows fp8_tr_row(x, g); lane l gives the address of row l % 8
 *     of matrix l / 8.
 *
 * Rows 2g for g < 4 and 2g + 1 for g >= 4 in one matrix (and the rest in
 * the other) have eight different (row & 7): the eight 16-byte stores of a
 * matrix hit eight different swizzled chunks, as the eight loads do (keys
 * 32jp + 8i .. + 7).  Conflict-free both ways; the 4-byte unit transpose
 * before this one ran with 10-way conflicts on its loads (ncu, docs/PERF.md
 * v17). */
FG_FP8_FN int fp8_tr_row(int x, int g) { return 2 * g + ((g >= 4) ^ x); }
/* Byte offset in the V tile (fp8_swz layout, bc key rows) of lane's
 * ldmatrix row for item it. */
FG_FP8_FN unsigned fp8_tr_src(int bc, int it, int lane) {
    const int m = it >> 2, jp = it & 3;
    return fp8_swz(bc, 32 * jp + lane, 16 * m);
}
/* Byte offset in V^T (dv rows of 128 bytes) of lane's stmatrix row for item it. */
FG_FP8_FN unsigned fp8_tr_dst(int dv, int it, int lane) {
    const int m = it >> 2, jp = it & 3, mi = lane >> 3;
    return fp8_swz(dv, 16 * m + fp8_tr_row(mi & 1, lane & 7), 16 * (2 * jp + (mi >> 1)));
}
/* The byte-permute selector of thread `lane` for stmatrix register x of a
 * group (row fp8_tr_row(x, lane / 4) of the pair it holds: even 0x6420,
 * odd 0x7531). */
FG_FP8_FN unsigned fp8_tr_sel(int x, int lane) { return (fp8_tr_row(x, lane >> 2) & 1) ? 0x7531u : 0x6420u; }

#endif
