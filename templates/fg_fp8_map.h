/* fg_fp8_map.h: the index maps of the FP8 kernel (fg_fp8.cuh), plain C so
 * that the host test (tests/test_fp8_cpu.c) runs the very functions the
 * kernel uses: which key each A-operand column of P holds, where
 * pack_p_e4m3 takes each byte from, the swizzled byte offsets of the V and
 * V^T tiles, the transpose units and the 4x4 byte transpose.
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

/* Transpose unit u of a 128-key tile: keys k0, k0+1, k0+8, k0+9 (which
 * become A-columns a0 .. a0+3) by values n0 .. n0+3. */
FG_FP8_FN void fp8_unit(int u, int *k0, int *n0, int *a0) {
    const int q = u & 3, grp = (u >> 2) & 7;
    *k0 = 16 * grp + 2 * q;
    *n0 = (u >> 5) * 4;
    *a0 = 16 * grp + 4 * q;
}
/* The source row of word i of a unit. */
FG_FP8_FN int fp8_unit_row(int k0, int i) { return k0 + (i & 1) + 8 * (i >> 1); }

/* 4x4 byte transpose: w[i] byte j -> out[j] byte i. */
FG_FP8_FN void fp8_transpose4(const unsigned w[4], unsigned out[4]) {
    const unsigned t0 = FG_FP8_PERM(w[0], w[1], 0x5140), t1 = FG_FP8_PERM(w[0], w[1], 0x7362);
    const unsigned t2 = FG_FP8_PERM(w[2], w[3], 0x5140), t3 = FG_FP8_PERM(w[2], w[3], 0x7362);
    out[0] = FG_FP8_PERM(t0, t2, 0x5410);
    out[1] = FG_FP8_PERM(t0, t2, 0x7632);
    out[2] = FG_FP8_PERM(t1, t3, 0x5410);
    out[3] = FG_FP8_PERM(t1, t3, 0x7632);
}

#endif
