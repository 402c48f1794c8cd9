/* png.c: PNG without zlib (PNG specification; RFC 1950 zlib, RFC 1951
 * deflate).  Rows use the Up filter, so a row equal to the one above becomes
 * zeros, and the deflate stream is one block with the fixed Huffman codes
 * whose only matches are runs (distance 1): layout pictures are large areas
 * of one colour and shrink by two to three orders of magnitude. */
#include "tools/png.h"

#include <stdlib.h>
#include <string.h>

uint32_t fg_png_crc32(uint32_t crc, const uint8_t *p, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    crc = ~crc;
    for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

typedef struct bits { uint8_t *p; size_t n, cap; uint32_t acc; int nacc; int oom; } bits;

static void put_bits(bits *b, uint32_t v, int n) { /* LSB first */
    b->acc |= v << b->nacc;
    b->nacc += n;
    while (b->nacc >= 8) {
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 4096;
            uint8_t *q = realloc(b->p, cap);
            if (!q) { b->oom = 1; b->nacc = 0; b->acc = 0; return; }
            b->p = q;
            b->cap = cap;
        }
        b->p[b->n++] = (uint8_t)b->acc;
        b->acc >>= 8;
        b->nacc -= 8;
    }
}

static void put_code(bits *b, uint32_t code, int len) { /* Huffman codes go MSB first */
    uint32_t r = 0;
    for (int i = 0; i < len; ++i) r |= ((code >> i) & 1u) << (len - 1 - i);
    put_bits(b, r, len);
}

static void put_symbol(bits *b, int s) { /* the fixed literal/length code */
    if (s < 144) put_code(b, 0x30u + (uint32_t)s, 8);
    else if (s < 256) put_code(b, 0x190u + (uint32_t)(s - 144), 9);
    else if (s < 280) put_code(b, (uint32_t)(s - 256), 7);
    else put_code(b, 0xc0u + (uint32_t)(s - 280), 8);
}

static void put_run(bits *b, int len) { /* a match of len (3..258) at distance 1 */
    static const int base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const int extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    int c = 28;
    while (base[c] > len) --c;
    put_symbol(b, 257 + c);
    if (extra[c]) put_bits(b, (uint32_t)(len - base[c]), extra[c]);
    put_code(b, 0, 5); /* distance code 0: distance 1 */
}

static void be32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

static int chunk(FILE *f, const char *type, const uint8_t *data, size_t n) {
    uint8_t hdr[8], tail[4];
    be32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    uint32_t crc = fg_png_crc32(fg_png_crc32(0, hdr + 4, 4), data, n);
    be32(tail, crc);
    return fwrite(hdr, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) && fwrite(tail, 1, 4, f) == 4 ? 0 : -1;
}

int fg_png_write_indexed(FILE *f, int w, int h, const uint8_t *idx, const uint8_t *palette, int ncolours) {
    if (!f || w < 1 || h < 1 || w > FG_PNG_MAX_SIDE || h > FG_PNG_MAX_SIDE || ncolours < 1 || ncolours > 256) return -1;
    const size_t row = (size_t)w + 1, raw_n = row * (size_t)h;
    uint8_t *raw = malloc(raw_n);
    if (!raw) return -1;
    for (int y = 0; y < h; ++y) {
        uint8_t *r = raw + (size_t)y * row;
        const uint8_t *src = idx + (size_t)y * w, *up = y ? src - w : NULL;
        r[0] = y ? 2 : 0; /* filter: Up, None on the first row */
        for (int x = 0; x < w; ++x) r[1 + x] = (uint8_t)(src[x] - (up ? up[x] : 0));
    }
    bits b = {0};
    put_bits(&b, 0x78, 8); /* zlib: deflate, 32K window */
    put_bits(&b, 0x01, 8); /* (0x78 << 8 | 0x01) % 31 == 0 */
    put_bits(&b, 1, 1);    /* BFINAL */
    put_bits(&b, 1, 2);    /* BTYPE 01: fixed Huffman codes */
    uint32_t a = 1, s2 = 0;
    for (size_t i = 0; i < raw_n;) {
        size_t run = 0;
        if (i > 0)
            while (run < 258 && i + run < raw_n && raw[i + run] == raw[i - 1]) ++run;
        if (run >= 3) {
            put_run(&b, (int)run);
        } else {
            run = 1;
            put_symbol(&b, raw[i]);
        }
        for (size_t k = 0; k < run; ++k) { a = (a + raw[i + k]) % 65521; s2 = (s2 + a) % 65521; }
        i += run;
    }
    put_symbol(&b, 256);         /* end of block */
    if (b.nacc) put_bits(&b, 0, 8 - b.nacc);
    uint8_t ad[4];
    be32(ad, s2 << 16 | a);
    for (int k = 0; k < 4; ++k) put_bits(&b, ad[k], 8);
    free(raw);
    if (b.oom) { free(b.p); return -1; }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bits per index */
    ihdr[9] = 3;  /* colour type: palette */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    int rc = fwrite(sig, 1, 8, f) == 8 ? 0 : -1;
    if (!rc) rc = chunk(f, "IHDR", ihdr, 13);
    if (!rc) rc = chunk(f, "PLTE", palette, (size_t)ncolours * 3);
    if (!rc) rc = chunk(f, "IDAT", b.p, b.n);
    if (!rc) rc = chunk(f, "IEND", NULL, 0);
    free(b.p);
    return rc;
}
