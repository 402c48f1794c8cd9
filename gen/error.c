#include "gen/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *vdupf(const char *fmt, va_list ap) {
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *fg_strdupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vdupf(fmt, ap);
    va_end(ap);
    return s;
}

fg_status fg_fail(fg_error *e, fg_status s, const char *fmt, ...) {
    if (!e) return s;
    va_list ap;
    va_start(ap, fmt);
    char *m = vdupf(fmt, ap);
    va_end(ap);
    free(e->msg);
    e->msg = m;
    e->status = s;
    return s;
}

fg_status fg_error_prefix(fg_error *e, const char *fmt, ...) {
    if (!e || e->status == FG_OK) return e ? e->status : FG_OK;
    va_list ap;
    va_start(ap, fmt);
    char *p = vdupf(fmt, ap);
    va_end(ap);
    if (p) {
        char *m = fg_strdupf("%s: %s", p, e->msg ? e->msg : "");
        if (m) { free(e->msg); e->msg = m; }
        free(p);
    }
    return e->status;
}

void fg_error_clear(fg_error *e) {
    if (!e) return;
    free(e->msg);
    e->msg = NULL;
    e->status = FG_OK;
}
