/* SPDX-License-Identifier: MIT */
/*
 * exesym.c -- the executable's symbol for an address in its globals, for messages: "the global
 * `_PyRuntime`+0x2a0 points into ...".
 *
 * From the executable's FILE (/proc/self/exe, mapped read-only for the lookup and unmapped
 * after): its .symtab if it was not stripped, else .dynsym (a stripped program still exports
 * some globals there). Not dladdr: it takes the dynamic linker's lock, and the caller holds the
 * heap locks in the middle of a commit. Only called when a value is found bad (rare per commit,
 * and then one lookup), so the file is not kept mapped.
 */
#include "shim.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* struct best -- the symbol chosen so far */
struct best {
    const char *name;
    uint64_t value;
    int exact; /* addr lies inside [value, value + size) */
};

/* search_table -- the symbol holding rel (link-time address) in one symbol table section */
static void search_table(const unsigned char *p, size_t len, const Elf64_Shdr *sh,
                         const Elf64_Shdr *strsh, uint64_t rel, struct best *b)
{
    if (sh->sh_offset + sh->sh_size > len || strsh->sh_offset + strsh->sh_size > len ||
        sh->sh_entsize != sizeof(Elf64_Sym))
        return;
    const Elf64_Sym *sym = (const void *)(p + sh->sh_offset);
    const char *str = (const char *)(p + strsh->sh_offset);
    size_t n = sh->sh_size / sizeof(*sym);
    for (size_t i = 0; i < n; i++) {
        const Elf64_Sym *s = &sym[i];
        int type = ELF64_ST_TYPE(s->st_info);
        if ((type != STT_OBJECT && type != STT_NOTYPE && type != STT_TLS) ||
            s->st_shndx == SHN_UNDEF || s->st_name >= strsh->sh_size || s->st_value > rel ||
            !str[s->st_name])
            continue;
        int exact = rel < s->st_value + s->st_size;
        if ((exact && !b->exact) || (exact == b->exact && s->st_value > b->value) || !b->name) {
            b->name = str + s->st_name;
            b->value = s->st_value;
            b->exact = exact;
        }
    }
}

/* shim_exe_symbol -- name of the global holding addr into buf ("" if none), *off = addr minus
 * its start */
void shim_exe_symbol(uintptr_t addr, char *buf, size_t len, uint64_t *off)
{
    buf[0] = 0;
    *off = addr;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        close(fd);
        return;
    }
    size_t flen = (size_t)st.st_size;
    const unsigned char *p = mmap(NULL, flen, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return;
    const Elf64_Ehdr *eh = (const void *)p;
    uint64_t rel = addr - shim_exe.load_base;
    struct best b = {NULL, 0, 0};
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
        eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) <= flen) {
        const Elf64_Shdr *sh = (const void *)(p + eh->e_shoff);
        for (uint32_t pass = 0; pass < 2 && !b.exact; pass++) {
            uint32_t want = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
            for (int i = 0; i < eh->e_shnum; i++)
                if (sh[i].sh_type == want && sh[i].sh_link < eh->e_shnum)
                    search_table(p, flen, &sh[i], &sh[sh[i].sh_link], rel, &b);
        }
    }
    /* only a symbol that holds the address: the nearest one below it is often another
   * object (a copy-relocated stdout) and would name the wrong global */
    if (b.name && b.exact) {
        snprintf(buf, len, "%s", b.name);
        *off = rel - b.value;
    }
    munmap((void *)p, flen);
}
