/* sha256.h: SHA-256 (FIPS 180-4), for identities that must not collide
 * (a mask expression names its compiled kernel by it). */
#ifndef FG_SHA256_H
#define FG_SHA256_H
#include <stddef.h>
#include <stdint.h>

void fg_sha256(const void *data, size_t n, uint8_t out[32]);
#endif
