/* SPDX-License-Identifier: MIT */
/*
 * exe.c -- what the shim needs to know about the main executable: its load base, its identity
 * (build-id), the range of its writable globals and the bytes in that range that belong to the
 * dynamic linker, libc or the kernel and must never be restored.
 *
 * Where the facts come from:
 *   - load base: getauxval(AT_PHDR) minus the PT_PHDR's p_vaddr. Not dl_iterate_phdr: this runs
 *     inside the first malloc, possibly while ld.so holds its loader lock, and the auxiliary
 *     vector needs no lock and no allocation. (ld.so started explicitly rewrites AT_PHDR to the
 *     program's, so the same holds there.)
 *   - everything else from the executable's FILE (/proc/self/exe, mapped read-only): its program
 *     headers, notes, dynamic section and relocation tables with their link-time addresses.
 *     The in-memory copy of .dynamic is not used: ld.so rewrites some of its entries in place
 *     (a relocated d_ptr for some tags, not for others), the file is unambiguous.
 *
 * The globals range: from the end of PT_GNU_RELRO (rounded up to a page: RELRO is read-only
 * after start-up and holds relocated pointers) or, without RELRO, from the writable PT_LOAD's
 * first page, to the end of .bss (p_vaddr + p_memsz, rounded up).
 *
 * Excluded bytes (never restored, see globals.c), each the target of a dynamic relocation other
 * than R_X86_64_RELATIVE, i.e. every word the dynamic linker fills with an address in ANOTHER
 * object (.got, .got.plt, a .data pointer initialised with a library symbol), plus:
 *   - R_X86_64_COPY targets, whole objects: libc's stdout, stderr, environ, optind, libstdc++'s
 *     std::cout ... are copied into the executable's .bss and libc uses that copy; restoring it
 *     would hand libc a FILE* or an environment of a dead process;
 *   - the three reserved .got.plt words (DT_PLTGOT: ld.so's link_map and resolver);
 *   - .dynamic when it lies in the range (no RELRO: DT_DEBUG points into ld.so).
 * RELATIVE targets are restored: they point into the executable itself, which is at the same
 * base (checked at open). A global initialised with a library symbol's address is therefore
 * re-bound on every run rather than restored: if the program later changes it, the change does
 * not persist (documented in the README).
 */
#include "shim.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE ((uintptr_t)4096)
#define PAGE_DOWN(x) ((uintptr_t)(x) & ~(PAGE - 1))
#define PAGE_UP(x) (((uintptr_t)(x) + PAGE - 1) & ~(PAGE - 1))

struct shim_exe shim_exe;

/* struct file -- the executable file, mapped */
struct file {
    const unsigned char *p;
    size_t len;
    const Elf64_Ehdr *eh;
    const Elf64_Phdr *ph;
};

/* file_at -- pointer to n bytes at link-time address vaddr (through the PT_LOAD that holds it
 * in the file), or NULL */
static const void *file_at(const struct file *f, uint64_t vaddr, uint64_t n)
{
    for (int i = 0; i < f->eh->e_phnum; i++) {
        const Elf64_Phdr *p = &f->ph[i];
        if (p->p_type == PT_LOAD && vaddr >= p->p_vaddr && vaddr + n <= p->p_vaddr + p->p_filesz &&
            p->p_offset + (vaddr - p->p_vaddr) + n <= f->len)
            return f->p + p->p_offset + (vaddr - p->p_vaddr);
    }
    return NULL;
}

/* build_id -- the NT_GNU_BUILD_ID note; 0 if found */
static int build_id(const struct file *f, struct shim_exe *e)
{
    for (int i = 0; i < f->eh->e_phnum; i++) {
        const Elf64_Phdr *p = &f->ph[i];
        if (p->p_type != PT_NOTE || p->p_offset + p->p_filesz > f->len)
            continue;
        const unsigned char *n = f->p + p->p_offset, *end = n + p->p_filesz;
        uint64_t al = p->p_align >= 8 ? 8 : 4;
        while (n + sizeof(Elf64_Nhdr) <= end) {
            const Elf64_Nhdr *nh = (const void *)n;
            const unsigned char *name = n + sizeof(*nh);
            const unsigned char *desc = name + ((nh->n_namesz + al - 1) & ~(al - 1));
            if (desc + nh->n_descsz > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh->n_descsz > 0 && nh->n_descsz <= sizeof(e->build_id)) {
                e->id_kind = IMG_ID_GNU;
                e->id_len = nh->n_descsz;
                memcpy(e->build_id, desc, nh->n_descsz);
                return 0;
            }
            n = desc + ((nh->n_descsz + al - 1) & ~(al - 1));
        }
    }
    return -1;
}

/* excl_add -- note [lo, hi) (absolute addresses) if it meets the globals range; with
 * e->excl == NULL only counts */
static void excl_add(struct shim_exe *e, uintptr_t lo, uintptr_t hi)
{
    if (hi <= e->g_lo || lo >= e->g_hi)
        return;
    if (lo < e->g_lo)
        lo = e->g_lo;
    if (hi > e->g_hi)
        hi = e->g_hi;
    if (e->excl && e->nexcl < e->cap)
        e->excl[e->nexcl] = (struct shim_range){lo, hi};
    e->nexcl++;
}

/* relocs -- excl_add every non-RELATIVE target of one Elf64_Rela table */
static void relocs(const struct file *f, struct shim_exe *e, const Elf64_Rela *r, size_t n,
                   const Elf64_Sym *sym, size_t syment)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t type = (uint32_t)ELF64_R_TYPE(r[i].r_info);
        if (type == R_X86_64_NONE || type == R_X86_64_RELATIVE)
            continue;
        uintptr_t at = e->load_base + r[i].r_offset, len = 8;
        if (type == R_X86_64_COPY) {
            /* the copied object's size is its symbol's st_size */
            const Elf64_Sym *sy = sym ? (const Elf64_Sym *)((const unsigned char *)sym +
                                                            syment * ELF64_R_SYM(r[i].r_info))
                                      : NULL;
            if (sy && (const unsigned char *)(sy + 1) <= f->p + f->len && sy->st_size)
                len = sy->st_size;
        }
        excl_add(e, at, at + len);
    }
}

/* excl_sort_merge -- sort by start (shell sort: no allocation, we may be inside malloc) and
 * merge overlapping or touching ranges */
static void excl_sort_merge(struct shim_exe *e)
{
    size_t n = e->nexcl;
    for (size_t gap = n / 2; gap > 0; gap /= 2)
        for (size_t i = gap; i < n; i++) {
            struct shim_range t = e->excl[i];
            size_t j = i;
            for (; j >= gap && e->excl[j - gap].lo > t.lo; j -= gap)
                e->excl[j] = e->excl[j - gap];
            e->excl[j] = t;
        }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && e->excl[i].lo <= e->excl[k - 1].hi) {
            if (e->excl[i].hi > e->excl[k - 1].hi)
                e->excl[k - 1].hi = e->excl[i].hi;
        } else {
            e->excl[k++] = e->excl[i];
        }
    }
    e->nexcl = k;
}

/* dynamic -- walk .dynamic (from the file) and collect the excluded ranges; 0 or EINVAL */
static int dynamic(const struct file *f, struct shim_exe *e)
{
    const Elf64_Phdr *dp = NULL;
    for (int i = 0; i < f->eh->e_phnum; i++)
        if (f->ph[i].p_type == PT_DYNAMIC)
            dp = &f->ph[i];
    if (!dp)
        return 0; /* no dynamic section: nothing relocated (but then no LD_PRELOAD either) */
    excl_add(e, e->load_base + dp->p_vaddr, e->load_base + dp->p_vaddr + dp->p_memsz);
    const Elf64_Dyn *d = file_at(f, dp->p_vaddr, dp->p_filesz);
    if (!d)
        return EINVAL;
    uint64_t rela = 0, relasz = 0, jmprel = 0, pltsz = 0, symtab = 0, syment = sizeof(Elf64_Sym),
             pltgot = 0;
    for (size_t i = 0; i < dp->p_filesz / sizeof(*d) && d[i].d_tag != DT_NULL; i++) {
        switch (d[i].d_tag) {
        case DT_RELA: rela = d[i].d_un.d_ptr; break;
        case DT_RELASZ: relasz = d[i].d_un.d_val; break;
        case DT_JMPREL: jmprel = d[i].d_un.d_ptr; break;
        case DT_PLTRELSZ: pltsz = d[i].d_un.d_val; break;
        case DT_SYMTAB: symtab = d[i].d_un.d_ptr; break;
        case DT_SYMENT: syment = d[i].d_un.d_val; break;
        case DT_PLTGOT: pltgot = d[i].d_un.d_ptr; break;
        default: break;
        }
    }
    if (pltgot)
        excl_add(e, e->load_base + pltgot, e->load_base + pltgot + 24);
    const Elf64_Sym *sym = symtab ? file_at(f, symtab, sizeof(Elf64_Sym)) : NULL;
    const Elf64_Rela *r;
    if (rela && relasz && (r = file_at(f, rela, relasz)) != NULL)
        relocs(f, e, r, relasz / sizeof(*r), sym, syment);
    if (jmprel && pltsz && (r = file_at(f, jmprel, pltsz)) != NULL)
        relocs(f, e, r, pltsz / sizeof(*r), sym, syment);
    return 0;
}

/* probe_file -- everything that comes from the file (two passes over the relocations: count,
 * then fill an array mapped for the purpose) */
static int probe_file(const struct file *f, struct shim_exe *e)
{
    const Elf64_Phdr *rw = NULL, *relro = NULL;
    for (int i = 0; i < f->eh->e_phnum; i++) {
        if (f->ph[i].p_type == PT_LOAD && (f->ph[i].p_flags & PF_W) && !rw)
            rw = &f->ph[i];
        if (f->ph[i].p_type == PT_GNU_RELRO)
            relro = &f->ph[i];
    }
    if (build_id(f, e) != 0) {
        e->id_kind = IMG_ID_CRC32C; /* see image_format.h: the whole file's crc32c */
        e->id_len = 4;
        uint32_t c = crc32c(0, f->p, f->len);
        memcpy(e->build_id, &c, 4);
    }
    if (!rw)
        return 0; /* no writable data: no globals */
    uintptr_t lo = e->load_base + rw->p_vaddr, hi = lo + rw->p_memsz;
    /* after RELRO: round up (the page holding RELRO's end is read-only after start-up, and a
   * page is the unit of mapping); without RELRO the writable segment's first page is ours */
    uintptr_t rend = relro ? e->load_base + relro->p_vaddr + relro->p_memsz : 0;
    e->g_lo = rend > lo && rend <= hi ? PAGE_UP(rend) : PAGE_DOWN(lo);
    e->g_hi = PAGE_UP(hi);
    if (e->g_hi <= e->g_lo) {
        e->g_lo = e->g_hi = 0;
        return 0;
    }
    e->excl = NULL;
    e->nexcl = 0;
    int rc = dynamic(f, e);
    if (rc || !e->nexcl)
        return rc;
    e->cap = e->nexcl;
    size_t bytes = PAGE_UP(e->cap * sizeof(struct shim_range));
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return errno;
    e->excl = m;
    e->nexcl = 0;
    dynamic(f, e);
    excl_sort_merge(e);
    return 0;
}

/* shim_exe_probe -- fill shim_exe; 0 or an errno after a message */
int shim_exe_probe(void)
{
    struct shim_exe *e = &shim_exe;
    memset(e, 0, sizeof(*e));
    ssize_t n = readlink("/proc/self/exe", e->path, sizeof(e->path) - 1);
    if (n <= 0) {
        int err = errno;
        shim_say(2, "LRVM_GLOBALS: cannot find the executable (/proc/self/exe): ", strerror(err),
                 "; is /proc mounted? (or run with LRVM_GLOBALS=0)", NULL);
        return err;
    }
    e->path[n] = 0;
    const Elf64_Phdr *mph = (const void *)getauxval(AT_PHDR);
    size_t mphnum = getauxval(AT_PHNUM);
    e->load_base = 0;
    for (size_t i = 0; mph && i < mphnum; i++)
        if (mph[i].p_type == PT_PHDR)
            e->load_base = (uintptr_t)mph - mph[i].p_vaddr;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        int err = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        shim_say(2, "LRVM_GLOBALS: cannot read the executable ", e->path, ": ", strerror(err),
                 " (or run with LRVM_GLOBALS=0)", NULL);
        return err;
    }
    struct file f = {.len = (size_t)st.st_size};
    f.p = mmap(NULL, f.len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f.p == MAP_FAILED) {
        int err = errno;
        shim_say(2, "LRVM_GLOBALS: cannot map the executable ", e->path, ": ", strerror(err), NULL);
        return err;
    }
    f.eh = (const void *)f.p;
    int rc = 0;
    if (memcmp(f.eh->e_ident, ELFMAG, SELFMAG) != 0 || f.eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        f.eh->e_machine != EM_X86_64 ||
        f.eh->e_phoff + (uint64_t)f.eh->e_phnum * sizeof(Elf64_Phdr) > f.len) {
        shim_say(2, "LRVM_GLOBALS: ", e->path,
                 " is not an x86-64 ELF executable this shim "
                 "understands; run with LRVM_GLOBALS=0",
                 NULL);
        rc = ENOEXEC;
    } else {
        f.ph = (const void *)(f.p + f.eh->e_phoff);
        rc = probe_file(&f, e);
        if (rc)
            shim_say(2, "LRVM_GLOBALS: cannot read the dynamic section of ", e->path,
                     " (a damaged executable?); run with LRVM_GLOBALS=0", NULL);
    }
    munmap((void *)f.p, f.len);
    return rc;
}
