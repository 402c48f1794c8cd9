/* cubin.h: a structural check of a cubin before the driver loads it. */
#ifndef FG_CUBIN_H
#define FG_CUBIN_H
#include <stddef.h>

/* Whether the n bytes at p hold a whole CUDA ELF image: ELF64 little
 * endian, machine EM_CUDA (190), and its section and program header
 * tables and every section's bytes inside the n.  cuModuleLoadData takes no
 * length (it sizes the image from these headers), so a truncated or
 * damaged cubin from the cache file would be read past its buffer. */
int fg_cubin_sane(const void *p, size_t n);
#endif
