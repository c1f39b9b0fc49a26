/* SPDX-License-Identifier: MIT */
/*
 * libcobj.c -- objects the C library allocates for itself go to the volatile internal heap.
 *
 * glibc mallocs FILE structs (fopen, fdopen, and through them tmpfile, the nss "files"
 * backend ...), their stdio buffers (_IO_file_doallocate, at the first read or write of any
 * stream, stdin included) and DIR streams (opendir, fdopendir, and through them scandir,
 * glob, nftw ...). Then it has the kernel write into the buffers from inside libc (read(2)
 * into the stdio buffer, getdents64 into the DIR), where no wrapper of ours can see the call:
 * with a fault-based DIRTY backend those writes would fail with EFAULT. These objects are also
 * volatile by nature: a FILE* or DIR* is meaningless after a restart,
 * so committing them would only cost log space.
 *
 * How they are recognised: by the return address of the malloc call, which for each of them
 * is one fixed call site inside libc. We learn those call sites once, before main, by
 * probing: with a thread-local flag set, we fopen /dev/null, read a byte (the buffer
 * allocation), fdopen a descriptor, and opendir "/"; every malloc whose return address lies
 * in libc during the probe is recorded (shim_libc_note). This needs no symbol table (the
 * allocating functions, e.g. __alloc_dir, are not exported) and follows whatever glibc build
 * is installed. Afterwards malloc.c asks shim_libc_volatile(ra) for calls whose return
 * address lies in libc: one range test, and for libc's own calls a scan of at most
 * LIBC_SITES addresses.
 *
 * What is NOT routed: everything else libc allocates, in particular what escapes to the
 * program (strdup, getline's and getdelim's buffer, asprintf, open_memstream's buffer,
 * realpath, scandir's name list): those are the program's data and stay persistent. popen
 * streams' FILE struct is not probed (it would start a process) and stays in the heap (its
 * buffer, from _IO_file_doallocate, is routed): harmless, the kernel never writes a FILE.
 */
#include "shim.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "preload_api.h"

#define LIBC_SITES 8

uintptr_t shim_libc_lo, shim_libc_len; /* libc's text (r-x segment) */
static uintptr_t sites[LIBC_SITES];    /* learnt call sites, filled before main */
static unsigned nsites;
__thread int shim_libc_probing __attribute__((tls_model("initial-exec")));

/* find_libc -- dl_iterate_phdr callback: the executable segment of the object defining fopen */
static int find_libc(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t target = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (target >= lo && target < hi) {
            shim_libc_lo = lo;
            shim_libc_len = hi - lo;
            return 1;
        }
    }
    return 0;
}

/* shim_libc_note -- during the probe: remember a libc call site of malloc (from malloc.c) */
void shim_libc_note(void *ra)
{
    uintptr_t a = (uintptr_t)ra;
    if (a - shim_libc_lo >= shim_libc_len)
        return;
    for (unsigned i = 0; i < nsites; i++)
        if (sites[i] == a)
            return;
    if (nsites < LIBC_SITES)
        sites[nsites++] = a;
}

/* shim_libc_volatile -- ra is a learnt libc call site: the block is libc's own, volatile */
int shim_libc_volatile(void *ra)
{
    uintptr_t a = (uintptr_t)ra;
    if (a - shim_libc_lo >= shim_libc_len)
        return 0;
    for (unsigned i = 0; i < nsites; i++)
        if (sites[i] == a)
            return 1;
    return 0;
}

/* shim_libc_probe -- learn the call sites (see the file comment); before main, single
 * threaded, with the persistent heap active. Returns the number of sites learnt; a probe that
 * cannot run (no /dev/null) learns fewer and the corresponding objects stay in the heap. */
int shim_libc_probe(void)
{
    dl_iterate_phdr(find_libc, (void *)(uintptr_t)&fopen);
    if (!shim_libc_len)
        return 0;
    shim_libc_probing = 1;
    FILE *f = fopen("/dev/null", "r");
    if (f) {
        (void)fgetc(f); /* _IO_file_doallocate: the stream buffer */
        fclose(f);
    }
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        FILE *g = fdopen(fd, "r");
        if (g)
            fclose(g);
        else
            close(fd);
    }
    DIR *d = opendir("/");
    if (d)
        closedir(d);
    shim_libc_probing = 0;
    return (int)nsites;
}

/* ---- stdio buffers the program supplies (setvbuf, setbuf, setbuffer) ------------------------ */

/*
 * A program may give a stream its own buffer, e.g. setvbuf(f, malloc(n), _IOFBF, n). libc
 * then reads into it with read(2) from inside libc, unseen by kwrite.c: with a fault backend
 * that read fails with EFAULT and fread/fgets report an error or end of file. Such a buffer
 * in the heap is replaced by one of the same size from the internal heap (a FILE's buffer
 * means nothing after a restart, and no program may look inside it while it is in use). The
 * replacement is never freed: libc does not free a buffer it was given, and the program's
 * own free() of its block frees its block.
 */
typedef int (*setvbuf_fn)(FILE *, char *, int, size_t);
static setvbuf_fn real_setvbuf;

/* stdio_buf -- buf, or an internal-heap replacement of n bytes if buf is in the tracked heap */
static char *stdio_buf(char *buf, size_t n)
{
    uintptr_t a = (uintptr_t)buf;
    if (buf == NULL || n == 0 || !(a < shim_kw_hi && a + n > shim_kw_lo) ||
        shim_internal_heap == NULL)
        return buf;
    char *v = heap_malloc(shim_internal_heap, n);
    return v ? v : buf;
}

/* setvbuf -- libc's setvbuf, with a heap buffer replaced (see above) */
__attribute__((visibility("default"))) int setvbuf(FILE *f, char *buf, int mode, size_t n)
{
    setvbuf_fn real = __atomic_load_n(&real_setvbuf, __ATOMIC_ACQUIRE);
    if (real == NULL) {
        real = (setvbuf_fn)dlsym(RTLD_NEXT, "setvbuf");
        if (real == NULL) {
            errno = ENOSYS;
            return -1;
        }
        __atomic_store_n(&real_setvbuf, real, __ATOMIC_RELEASE);
    }
    return real(f, mode == _IONBF ? buf : stdio_buf(buf, n), mode, n);
}

/* setbuf -- libc's setbuf is setvbuf with BUFSIZ bytes */
__attribute__((visibility("default"))) void setbuf(FILE *f, char *buf)
{
    setvbuf(f, buf, buf ? _IOFBF : _IONBF, BUFSIZ);
}

/* setbuffer -- libc's setbuffer is setvbuf with n bytes */
__attribute__((visibility("default"))) void setbuffer(FILE *f, char *buf, size_t n)
{
    setvbuf(f, buf, buf ? _IOFBF : _IONBF, n);
}
