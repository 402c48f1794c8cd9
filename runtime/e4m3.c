/* e4m3.c: the FP8 e4m3 format of FG_E4M3 on the host (OCP FP8 "e4m3fn",
 * the format of Hopper's e4m3 tensor cores and of PyTorch's
 * float8_e4m3fn): 1 sign bit, 4 exponent bits of bias 7, 3 mantissa bits;
 * exponent 0 is subnormal (m/8 * 2^-6), no infinities, S.1111.111 (0x7f,
 * 0xff) is NaN, so 448 = 1.75 * 2^8 is the largest finite value. */
#include "runtime/reference.h"

#include <math.h>

float fg_e4m3_to_float(uint8_t x) {
    const int e = (x >> 3) & 0xf, m = x & 7;
    const float sign = (x & 0x80) ? -1.f : 1.f;
    if (e == 0xf && m == 7) return NAN;
    if (e == 0) return sign * ldexpf((float)m, -9); /* m/8 * 2^-6 */
    return sign * ldexpf((float)(8 + m), e - 10);   /* (1 + m/8) * 2^(e-7) */
}

/* Round to nearest even, saturating: what cvt.rn.satfinite.e4m3x2.f32 does
 * on the device (|x| past 448 becomes 448, NaN stays NaN). */
uint8_t fg_float_to_e4m3(float f) {
    if (isnan(f)) return 0x7f;
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.f) return sign | 0x7e;
    /* the spacing of e4m3 values around a: 2^-9 below 2^-6 (subnormals),
     * else 2^(floor(log2 a) - 3) */
    int ex;
    frexpf(a, &ex); /* a = fr * 2^ex, fr in [0.5, 1) */
    const int step_exp = ex - 1 < -6 ? -9 : ex - 4;
    const float q = rintf(ldexpf(a, -step_exp)); /* nearest multiple of the spacing, ties to even */
    const float r = ldexpf(q, step_exp);
    if (r >= 448.f) return sign | 0x7e;
    if (r < ldexpf(1.f, -6)) return sign | (uint8_t)ldexpf(r, 9);  /* subnormal (or zero) */
    int re;
    const float fr = frexpf(r, &re); /* r = fr * 2^re, fr in [0.5, 1): exponent field re - 1 + 7 */
    const int man = (int)ldexpf(fr, 4) - 8;
    return sign | (uint8_t)(((re + 6) << 3) | man);
}
