/* SPDX-License-Identifier: MIT */
/*
 * boot.c -- the bootstrap arena and the real libc allocator.
 *
 * Before the shim has decided anything (ld.so's early calls, dlsym's calloc while we look up
 * glibc's symbols, a library constructor that runs before ours), allocations come from a static
 * arena: a lock-free bump pointer, 16-byte aligned, each block preceded by its size so that
 * realloc and malloc_usable_size work on it. Its blocks are never reused: free() of one is a
 * no-op (the arena is small and only used for the first few allocations of the process).
 *
 * The real allocator (glibc's malloc, found with dlsym(RTLD_NEXT)) serves the process when the
 * shim is inactive (AT_SECURE).
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdalign.h>

struct boot_real boot_real;

static alignas(4096) unsigned char arena[SHIM_BOOT_ARENA];
static size_t arena_used; /* bytes handed out, updated with an atomic add */

/* boot_alloc -- n bytes aligned to align (power of two); NULL + ENOMEM when the arena is full */
void *boot_alloc(size_t align, size_t n)
{
    if (align < 16)
        align = 16;
    if (n > SHIM_BOOT_ARENA || align > 4096) {
        errno = ENOMEM;
        return NULL;
    }
    /* Reserve header + worst-case padding + data in one atomic step, then place the block. */
    size_t need = 16 + (align - 16) + ((n + 15) & ~(size_t)15);
    size_t off = __atomic_fetch_add(&arena_used, need, __ATOMIC_RELAXED);
    if (off + need > SHIM_BOOT_ARENA) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t p = ((uintptr_t)arena + off + 16 + align - 1) & ~(uintptr_t)(align - 1);
    ((size_t *)p)[-1] = n; /* header: the usable size, just before the block */
    return (void *)p;      /* static memory: already zero, so calloc needs no memset */
}

/* boot_owns -- p lies in the arena */
int boot_owns(const void *p)
{
    return (uintptr_t)p >= (uintptr_t)arena && (uintptr_t)p < (uintptr_t)arena + sizeof(arena);
}

/* boot_usable_size -- the size recorded before the block */
size_t boot_usable_size(const void *p)
{
    return ((const size_t *)p)[-1];
}

/* boot_resolve_real -- glibc's allocator through RTLD_NEXT (dlsym may call calloc: the caller
 * is the initialising thread, so that calloc is served by the arena) */
int boot_resolve_real(void)
{
    boot_real.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    boot_real.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    boot_real.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    boot_real.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    boot_real.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    boot_real.malloc_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    if (!boot_real.malloc || !boot_real.free || !boot_real.calloc || !boot_real.realloc ||
        !boot_real.posix_memalign || !boot_real.malloc_usable_size) {
        shim_say(2,
                 "cannot find the C library's malloc (dlsym RTLD_NEXT); is liblrvm-preload.so "
                 "loaded before libc (LD_PRELOAD)?",
                 NULL);
        return ENOENT;
    }
    return 0;
}
