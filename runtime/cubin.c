/* cubin.c: see cubin.h. */
#include "runtime/cubin.h"

#include <elf.h>
#include <stdint.h>
#include <string.h>

#ifndef EM_CUDA
#define EM_CUDA 190
#endif

/* [off, off + len) inside [0, n), without overflow */
static int inside(uint64_t off, uint64_t len, size_t n) { return off <= n && len <= n - off; }

int fg_cubin_sane(const void *p, size_t n) {
    const unsigned char *b = p;
    Elf64_Ehdr h;
    if (!p || n < sizeof h) return 0;
    memcpy(&h, b, sizeof h);
    if (memcmp(h.e_ident, ELFMAG, SELFMAG) || h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB ||
        h.e_machine != EM_CUDA || h.e_ehsize != sizeof h)
        return 0;
    if (h.e_shnum && (h.e_shentsize != sizeof(Elf64_Shdr) || !inside(h.e_shoff, (uint64_t)h.e_shnum * sizeof(Elf64_Shdr), n)))
        return 0;
    if (h.e_phnum && (h.e_phentsize != sizeof(Elf64_Phdr) || !inside(h.e_phoff, (uint64_t)h.e_phnum * sizeof(Elf64_Phdr), n)))
        return 0;
    for (unsigned i = 0; i < h.e_shnum; ++i) {
        Elf64_Shdr s;
        memcpy(&s, b + h.e_shoff + (uint64_t)i * sizeof s, sizeof s);
        if (s.sh_type != SHT_NOBITS && s.sh_type != SHT_NULL && !inside(s.sh_offset, s.sh_size, n)) return 0;
    }
    for (unsigned i = 0; i < h.e_phnum; ++i) {
        Elf64_Phdr ph;
        memcpy(&ph, b + h.e_phoff + (uint64_t)i * sizeof ph, sizeof ph);
        if (!inside(ph.p_offset, ph.p_filesz, n)) return 0;
    }
    return 1;
}
