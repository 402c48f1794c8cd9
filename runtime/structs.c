/* structs.c: the struct_size protocol of the public structs (structs.h). */
#include "runtime/structs.h"

#include <stdint.h>
#include <string.h>

/* A newer header's struct may be larger than this library's, by the
 * fields appended since; a struct_size far beyond that is garbage (an
 * uninitialised struct), and reading that many bytes of the caller's memory
 * to check them for zeros could fault. */
#define FG_STRUCT_GROWTH 4096

/* The caller's struct_size of the struct at p, at least min_size and at
 * most lib_size + FG_STRUCT_GROWTH. */
static fg_status caller_size(const void *p, size_t min_size, size_t lib_size, const char *name, uint32_t *size,
                             fg_error *err) {
    if (!p) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "%s is NULL", name);
    memcpy(size, p, sizeof *size);
    if (*size < min_size)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "%s.struct_size = %u is below the %zu bytes of its first version: initialise it "
                       "(fg_attention_desc_init, or = {.struct_size = sizeof x} for the other structs)",
                       name, (unsigned)*size, min_size);
    if (*size > lib_size + FG_STRUCT_GROWTH)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT,
                       "%s.struct_size = %u is more than %d bytes beyond this library's %zu: not a struct of any "
                       "flashgen header; initialise it (fg_attention_desc_init, or = {.struct_size = sizeof x})",
                       name, (unsigned)*size, FG_STRUCT_GROWTH, lib_size);
    return FG_OK;
}

fg_status fg_struct_read(const void *in, size_t lib_size, size_t min_size, void *out, const char *name, fg_error *err) {
    uint32_t size = 0;
    fg_status st = caller_size(in, min_size, lib_size, name, &size, err);
    if (st != FG_OK) return st;
    const unsigned char *b = in;
    for (size_t i = lib_size; i < size; ++i)
        if (b[i])
            return fg_fail(err, FG_ERR_UNSUPPORTED,
                           "%s comes from a newer flashgen header (%u bytes; this library knows %zu) and sets a field "
                           "this library does not have (byte %zu is not zero)",
                           name, (unsigned)size, lib_size, i);
    const size_t n = size < lib_size ? size : lib_size;
    memcpy(out, in, n);
    memset((unsigned char *)out + n, 0, lib_size - n);
    return FG_OK;
}

fg_status fg_struct_write(void *out, const void *in, size_t lib_size, size_t min_size, const char *name, fg_error *err) {
    uint32_t size = 0;
    fg_status st = caller_size(out, min_size, lib_size, name, &size, err);
    if (st != FG_OK) return st;
    const size_t n = size < lib_size ? size : lib_size;
    memcpy((unsigned char *)out + sizeof size, (const unsigned char *)in + sizeof size, n - sizeof size);
    return FG_OK;
}

fg_status fg_desc_read(const fg_attention_desc *in, fg_attention_desc *out, fg_error *err) {
    fg_status st = fg_struct_read(in, sizeof *out, FG_ATTENTION_DESC_MIN_SIZE, out, "fg_attention_desc", err);
    if (st != FG_OK) return st;
    /* an older header's struct has no window: off is -1 there, not 0 */
    if (in->struct_size < FG_END_OF(fg_attention_desc, window_right)) out->window_left = out->window_right = -1;
    return FG_OK;
}
