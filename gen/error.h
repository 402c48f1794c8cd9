/* error.h: the internal error record.  Every fallible internal function
 * returns an fg_status and, on failure, leaves a heap message in *err that
 * carries its cause (Lua traceback, NVRTC log, driver error name, variant
 * key).  The public API copies it into the context. */
#ifndef FG_ERROR_H
#define FG_ERROR_H
#include "flashgen.h"

typedef struct fg_error {
    fg_status status;
    char *msg; /* malloc'd, NULL when status == FG_OK */
} fg_error;

#if defined(__GNUC__)
#define FG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FG_PRINTF(a, b)
#endif

/* Sets *e (replacing an older message) and returns s. */
fg_status fg_fail(fg_error *e, fg_status s, const char *fmt, ...) FG_PRINTF(3, 4);
/* Prepends "prefix: " to the message in e; returns e->status. */
fg_status fg_error_prefix(fg_error *e, const char *fmt, ...) FG_PRINTF(2, 3);
void fg_error_clear(fg_error *e);

/* printf into a new heap string (NULL on OOM). */
char *fg_strdupf(const char *fmt, ...) FG_PRINTF(1, 2);
#endif
