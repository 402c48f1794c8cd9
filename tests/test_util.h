/* test_util.h: a tiny assertion kit for the C tests.  CHECK records a
 * failure and goes on; the test's main returns test_summary(). */
#ifndef FG_TEST_UTIL_H
#define FG_TEST_UTIL_H
#include <stdio.h>
#include <string.h>

static int t_checks, t_failures;
#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        ++t_checks;                                                              \
        if (!(cond)) {                                                           \
            ++t_failures;                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)
#define CHECK_CONTAINS(hay, needle) CHECK((hay) && strstr((hay), (needle)), "'%s' not found in: %s", (needle), (hay) ? (hay) : "(null)")

/* Writes text to dir/name; returns the path (a static buffer). */
static inline const char *fg_test_write_file(const char *dir, const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static int test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
    return t_failures ? 1 : 0;
}
#endif
