/* cuda_paths.c: the search list for NVRTC and the CUDA headers (cuda_paths.h). */
#define _GNU_SOURCE
#include "gen/cuda_paths.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SITES 8

/* pip package files, relative to a site-packages folder */
static const char *const PIP_NVRTC[] = {"nvidia/cu13/lib/libnvrtc.so.13", "nvidia/cuda_nvrtc/lib/libnvrtc.so.13"};
static const char *const PIP_INCLUDE[] = {"nvidia/cu13/include", "nvidia/cuda_runtime/include"};
#define COUNT(a) (int)(sizeof a / sizeof *a)

typedef struct sites {
    char (*dirs)[FG_CUDA_PATH_MAX];
    int n, max;
} sites;

/* Adds the folder path[0..n), if absolute and not yet listed. */
static void add_dir(sites *s, const char *path, size_t n) {
    if (n == 0 || path[0] != '/' || n >= FG_CUDA_PATH_MAX || s->n >= s->max) return;
    for (int i = 0; i < s->n; ++i)
        if (strlen(s->dirs[i]) == n && !strncmp(s->dirs[i], path, n)) return;
    memcpy(s->dirs[s->n], path, n);
    s->dirs[s->n++][n] = 0;
}

/* Adds the site-packages folder that `path` lies in, if any. */
static void add_site(sites *s, const char *path) {
    static const char *const marks[] = {"/site-packages/", "/dist-packages/"};
    if (!path) return;
    for (int m = 0; m < COUNT(marks); ++m) {
        const char *p = strstr(path, marks[m]);
        if (p) {
            add_dir(s, path, (size_t)(p - path) + strlen(marks[m]) - 1); /* without the trailing '/' */
            return;
        }
    }
}

static int add_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    add_site(data, info->dlpi_name);
    return 0;
}

int fg_site_packages_dirs(char (*out)[FG_CUDA_PATH_MAX], int max) {
    sites s = {out, 0, max};
    Dl_info self; /* this library first (an installed wheel), then the executable, then the rest */
    if (dladdr((void *)fg_site_packages_dirs, &self) && self.dli_fname) add_site(&s, self.dli_fname);
    char exe[FG_CUDA_PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        add_site(&s, exe);
    }
    dl_iterate_phdr(add_object, &s);
    const char *list = getenv("FLASHGEN_SITE_PACKAGES"); /* the running Python's, from the flashgen package */
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ':');
        const size_t n = end ? (size_t)(end - p) : strlen(p);
        add_dir(&s, p, n);
        p = end ? end + 1 : NULL;
    }
    return s.n;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* out[*n] = dir + "/" + rel (rel may be NULL), when it fits */
static void add(fg_cuda_path *out, int *n, int max, const char *how, const char *dir, const char *rel) {
    if (*n >= max) return;
    const int w = rel ? snprintf(out[*n].path, sizeof out[*n].path, "%s/%s", dir, rel)
                      : snprintf(out[*n].path, sizeof out[*n].path, "%s", dir);
    if (w < 0 || w >= (int)sizeof out[*n].path) return;
    out[*n].how = how;
    ++*n;
}

/* The candidates of both lists: env, pip (existing files only), then `tail`. */
static int search_list(fg_cuda_path *out, int max, const char *env_rel, const char *const *pip, int npip,
                       const char *pip_probe, const char *const *tail, const char *const *tail_how, int ntail) {
    int n = 0;
    const char *v;
    if (env_rel && (v = env("CUDA_PATH"))) add(out, &n, max, "$CUDA_PATH", v, env_rel);
    if (env_rel && (v = env("CUDA_HOME"))) add(out, &n, max, "$CUDA_HOME", v, env_rel);
    char dirs[MAX_SITES][FG_CUDA_PATH_MAX];
    const int ns = fg_site_packages_dirs(dirs, MAX_SITES);
    for (int i = 0; i < ns; ++i)
        for (int j = 0; j < npip; ++j) {
            char probe[FG_CUDA_PATH_MAX + 64];
            const int w = snprintf(probe, sizeof probe, "%s/%s%s", dirs[i], pip[j], pip_probe);
            if (w > 0 && w < (int)sizeof probe && access(probe, R_OK) == 0) add(out, &n, max, "pip package", dirs[i], pip[j]);
        }
    for (int i = 0; i < ntail; ++i) add(out, &n, max, tail_how[i], tail[i], NULL);
    return n;
}

int fg_nvrtc_candidates(fg_cuda_path *out, int max) {
    static const char *const tail[] = {"libnvrtc.so.13", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so.13"};
    static const char *const how[] = {"dynamic linker", "dynamic linker", "toolkit"};
    int n = 0;
    const char *v = env("FLASHGEN_NVRTC");
    if (v) add(out, &n, max, "$FLASHGEN_NVRTC", v, NULL);
    return n + search_list(out + n, max - n, "lib64/libnvrtc.so.13", PIP_NVRTC, COUNT(PIP_NVRTC), "", tail, how,
                           COUNT(tail));
}

int fg_cuda_include_dir(fg_cuda_path *out) {
    static const char *const tail[] = {"/usr/local/cuda/include"};
    static const char *const how[] = {"toolkit"};
    fg_cuda_path c[2 + MAX_SITES * COUNT(PIP_INCLUDE) + 1];
    const int n = search_list(c, COUNT(c), "include", PIP_INCLUDE, COUNT(PIP_INCLUDE), "/cuda_fp16.h", tail, how,
                              COUNT(tail));
    for (int i = 0; i < n; ++i) {
        char probe[FG_CUDA_PATH_MAX + 16];
        const int w = snprintf(probe, sizeof probe, "%s/cuda_fp16.h", c[i].path);
        if (w > 0 && w < (int)sizeof probe && access(probe, R_OK) == 0) {
            *out = c[i];
            return 1;
        }
    }
    out->path[0] = 0;
    out->how = NULL;
    return 0;
}

void fg_loaded_path(void *handle, const char *fallback, char *out, size_t n) {
    struct link_map *lm = NULL;
    const char *p = dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && lm->l_name[0] ? lm->l_name : fallback;
    snprintf(out, n, "%s", p);
}
