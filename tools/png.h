/* png.h: a dependency-free PNG writer for pictures of block layouts:
 * 8-bit palette images, compressed with run-length deflate. */
#ifndef FG_PNG_H
#define FG_PNG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#define FG_PNG_MAX_SIDE 32768 /* pixels per side the writer accepts */
/* idx: height rows of width palette indices (1..FG_PNG_MAX_SIDE each);
 * palette: ncolours RGB triples (1..256).  Returns 0 on success, -1 on a
 * write error or bad arguments (check the sizes before creating the file). */
int fg_png_write_indexed(FILE *f, int width, int height, const uint8_t *idx, const uint8_t *palette, int ncolours);
uint32_t fg_png_crc32(uint32_t crc, const uint8_t *p, size_t n);
#endif
