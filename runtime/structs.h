/* structs.h: reading and writing the public structs that grow (the rules
 * are in include/flashgen.h, "How the public structs grow"). */
#ifndef FG_STRUCTS_H
#define FG_STRUCTS_H
#include <stddef.h>
#include "flashgen.h"
#include "gen/error.h"

/* The fields of each struct's first version: the least struct_size a caller
 * may pass.  They stay as they are when fields are appended. */
#define FG_END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define FG_ATTENTION_DESC_MIN_SIZE FG_END_OF(fg_attention_desc, path)
#define FG_TUNE_OPTIONS_MIN_SIZE FG_END_OF(fg_tune_options, ud)
#define FG_CONTEXT_STATS_MIN_SIZE FG_END_OF(fg_context_stats, gpu_identity)

/* Copies the caller's struct `in` (its struct_size bytes) into the library's
 * `out` of lib_size bytes, zeroing the fields the caller's header did not
 * have.  FG_ERR_INVALID_ARGUMENT when struct_size < min_size (not
 * initialised); FG_ERR_UNSUPPORTED when the caller's struct is larger than
 * lib_size and a byte past lib_size is not zero (a field of a newer header
 * that this library does not know).  name: the type, for the message. */
fg_status fg_struct_read(const void *in, size_t lib_size, size_t min_size, void *out, const char *name, fg_error *err);
/* Copies the library's `in` into the caller's `out`: at most out's
 * struct_size bytes (which keeps the caller's value); FG_ERR_INVALID_ARGUMENT
 * when that is below min_size. */
fg_status fg_struct_write(void *out, const void *in, size_t lib_size, size_t min_size, const char *name, fg_error *err);
/* fg_struct_read of an fg_attention_desc. */
fg_status fg_desc_read(const fg_attention_desc *in, fg_attention_desc *out, fg_error *err);
#endif
