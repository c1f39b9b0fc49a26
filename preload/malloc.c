/* SPDX-License-Identifier: MIT */
/*
 * malloc.c -- the exported malloc family: every entry point glibc's manual ("Replacing malloc")
 * lists, plus its __libc_* aliases, so that code calling either name reaches one allocator.
 *
 * Routing of each call (state from init.c):
 *   ACTIVE    the persistent heap (heap_*); free/realloc of a bootstrap block is handled here,
 *             a pointer that belongs to no allocator of ours is counted and left alone (it may
 *             come from ld.so's private allocator or a library's own pool: freeing it anywhere
 *             would be a crash inside free).
 *   INACTIVE  glibc's allocator (AT_SECURE: the shim must not act).
 *   INITING   the bootstrap arena, for the initialising thread's own nested calls.
 * errno: unchanged on success, as the C library guarantees for its own allocator in practice and
 * as programs (wrongly, but commonly) rely on; ENOMEM or EINVAL on failure.
 */
#include "shim.h"
#include "preload_api.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)

/* Prototypes of the exports glibc's headers do not declare. */
SHIM_EXPORT void *pvalloc(size_t n);
SHIM_EXPORT void *__libc_malloc(size_t n);
SHIM_EXPORT void __libc_free(void *p);
SHIM_EXPORT void *__libc_calloc(size_t nmemb, size_t size);
SHIM_EXPORT void *__libc_realloc(void *p, size_t n);
SHIM_EXPORT void *__libc_memalign(size_t align, size_t n);
SHIM_EXPORT void *__libc_valloc(size_t n);
SHIM_EXPORT void *__libc_pvalloc(size_t n);

volatile uint64_t shim_foreign_frees;

/* owner -- the heap that serves a call made from return address ra: the volatile internal
 * heap for liblrvm's own allocations (its code lies in this library; or the thread is inside an
 * rvm_* call made by the shim) and for libc's volatile objects (libcobj.c), else the
 * program's heap. See persist.c. */
static inline struct heap *owner(void *ra)
{
    if (__builtin_expect(shim_internal_heap != NULL, 0)) {
        if (shim_in_core || ((uintptr_t)ra >= shim_self_lo && (uintptr_t)ra < shim_self_hi))
            return shim_internal_heap;
        /* libc's own FILE, stdio buffer and DIR allocations (libcobj.c): one range test for
     * the program's calls */
        if (__builtin_expect((uintptr_t)ra - shim_libc_lo < shim_libc_len, 0)) {
            if (__builtin_expect(shim_libc_probing, 0))
                shim_libc_note(ra);
            if (shim_libc_volatile(ra))
                return shim_internal_heap;
        }
    }
    return shim_heap;
}

/* heap_of -- the heap p belongs to, or NULL */
static inline struct heap *heap_of(int s, const void *p)
{
    if (s == SHIM_INACTIVE)
        return NULL;
    if (shim_heap && heap_owns(shim_heap, p))
        return shim_heap;
    if (shim_internal_heap && heap_owns(shim_internal_heap, p))
        return shim_internal_heap;
    return NULL;
}

/* state -- the settled state, initialising on first use */
static inline int state(void)
{
    int s = __atomic_load_n(&shim_state, __ATOMIC_ACQUIRE);
    return LIKELY(s >= SHIM_ACTIVE) ? s : shim_ensure_init();
}

/* alloc_aligned -- the common path of every allocating call; align 0 = default (16) */
static void *alloc_aligned(size_t align, size_t n, void *ra)
{
    int saved = errno;
    void *p;
    struct heap *h;
    switch (state()) {
    case SHIM_ACTIVE:
        h = owner(ra);
        p = align ? heap_memalign(h, align, n) : heap_malloc(h, n);
        break;
    case SHIM_INACTIVE:
        if (!align)
            p = boot_real.malloc(n);
        else {
            int rc = boot_real.posix_memalign(&p, align, n);
            if (rc) {
                errno = rc;
                p = NULL;
            }
        }
        break;
    default:
        /* the initialising thread: the internal heap once it exists (liblrvm's start-up needs
     * more than the bootstrap arena), else the arena */
        if (shim_internal_heap)
            p = align ? heap_memalign(shim_internal_heap, align, n)
                      : heap_malloc(shim_internal_heap, n);
        else
            p = boot_alloc(align, n);
        break;
    }
    if (p)
        errno = saved;
    return p;
}

#define RA __builtin_return_address(0)

/* malloc -- n bytes, 16-byte aligned */
SHIM_EXPORT void *malloc(size_t n)
{
    return alloc_aligned(0, n, RA);
}

/* free -- route p to the allocator that owns it; never crash on a pointer we do not own */
SHIM_EXPORT void free(void *p)
{
    if (!p)
        return;
    int saved = errno;
    int s = state();
    struct heap *h = heap_of(s, p);
    if (h)
        heap_free(h, p); /* a bad free is reported by the heap (address, why) */
    else if (boot_owns(p))
        ; /* bootstrap blocks are never reused */
    else if (s == SHIM_INACTIVE)
        boot_real.free(p);
    else
        __atomic_fetch_add(&shim_foreign_frees, 1, __ATOMIC_RELAXED);
    errno = saved;
}

/* do_calloc -- zeroed; nmemb * size overflow is ENOMEM */
static void *do_calloc(size_t nmemb, size_t size, void *ra)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    int saved = errno;
    void *p;
    switch (state()) {
    case SHIM_ACTIVE: p = heap_calloc(owner(ra), nmemb, size); break;
    case SHIM_INACTIVE: p = boot_real.calloc(nmemb, size); break;
    default:
        if (shim_internal_heap)
            p = heap_calloc(shim_internal_heap, nmemb, size);
        else
            p = boot_alloc(0, n); /* static arena memory is zero and never reused */
        break;
    }
    if (p)
        errno = saved;
    return p;
}

SHIM_EXPORT void *calloc(size_t nmemb, size_t size)
{
    return do_calloc(nmemb, size, RA);
}

/* usable -- the usable size of p, whoever owns it; 0 for a foreign pointer */
static size_t usable(int s, void *p)
{
    struct heap *h = heap_of(s, p);
    if (h)
        return heap_usable_size(h, p);
    if (boot_owns(p))
        return boot_usable_size(p);
    if (s == SHIM_INACTIVE)
        return boot_real.malloc_usable_size(p);
    return 0;
}

/* do_realloc -- resize within p's heap; a bootstrap block moves to the current allocator */
static void *do_realloc(void *p, size_t n, void *ra)
{
    if (!p)
        return alloc_aligned(0, n, ra);
    int saved = errno;
    int s = state();
    void *q;
    struct heap *h = heap_of(s, p);
    if (h) {
        q = heap_realloc(h, p, n);
    } else if (boot_owns(p)) {
        size_t old = boot_usable_size(p);
        q = alloc_aligned(0, n ? n : 1, ra);
        if (q)
            memcpy(q, p, old < n ? old : n);
    } else if (s == SHIM_INACTIVE) {
        q = boot_real.realloc(p, n);
    } else {
        /* Foreign: its size is unknown, so its contents cannot be moved. Refuse, loudly. */
        char a[24];
        shim_say(2, "realloc(", shim_fmt_hex(a, (uintptr_t)p),
                 "): not allocated by this process's "
                 "malloc (foreign pointer); returning NULL",
                 NULL);
        errno = EINVAL;
        return NULL;
    }
    if (q)
        errno = saved;
    return q;
}

SHIM_EXPORT void *realloc(void *p, size_t n)
{
    return do_realloc(p, n, RA);
}

/* reallocarray -- realloc(p, nmemb * size) with overflow check (ENOMEM) */
SHIM_EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return do_realloc(p, n, RA);
}

/* pow2 -- x is a power of two */
static int pow2(size_t x)
{
    return x && !(x & (x - 1));
}

/* do_memalign -- glibc's memalign: a non-power-of-two alignment is rounded up */
static void *do_memalign(size_t align, size_t n, void *ra)
{
    if (align <= 16)
        return alloc_aligned(0, n, ra);
    if (!pow2(align)) {
        if (align > ((size_t)1 << 62)) {
            errno = EINVAL;
            return NULL;
        }
        size_t a = 32;
        while (a < align)
            a <<= 1;
        align = a;
    }
    return alloc_aligned(align, n, ra);
}

/* do_pvalloc -- page aligned, size rounded up to whole pages (0 -> one page) */
static void *do_pvalloc(size_t n, void *ra)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t r;
    if (__builtin_add_overflow(n, pg - 1, &r)) {
        errno = ENOMEM;
        return NULL;
    }
    r &= ~(pg - 1);
    return alloc_aligned(pg, r ? r : pg, ra);
}

/* posix_memalign -- align: power of two, multiple of sizeof(void *); returns the error */
SHIM_EXPORT int posix_memalign(void **memptr, size_t align, size_t n)
{
    if (!pow2(align) || align % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = alloc_aligned(align, n, RA);
    int rc = p ? 0 : (errno ? errno : ENOMEM);
    errno = saved; /* posix_memalign reports through its return value only */
    if (p)
        *memptr = p;
    return rc;
}

/* aligned_alloc -- C11; like glibc, any power of two is accepted (EINVAL otherwise) */
SHIM_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (!pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return alloc_aligned(align < 16 ? 0 : align, n, RA);
}

/* memalign -- obsolete; see do_memalign */
SHIM_EXPORT void *memalign(size_t align, size_t n)
{
    return do_memalign(align, n, RA);
}

/* valloc -- page aligned */
SHIM_EXPORT void *valloc(size_t n)
{
    return alloc_aligned((size_t)sysconf(_SC_PAGESIZE), n, RA);
}

SHIM_EXPORT void *pvalloc(size_t n)
{
    return do_pvalloc(n, RA);
}

/* malloc_usable_size -- bytes usable at p (0 for NULL or a pointer that is not ours) */
SHIM_EXPORT size_t malloc_usable_size(void *p)
{
    return p ? usable(state(), p) : 0;
}

/* glibc's internal names, which some programs and libraries call directly. Each passes its
 * own caller's address, so liblrvm's calls through them are still recognised. */
SHIM_EXPORT void *__libc_malloc(size_t n)
{
    return alloc_aligned(0, n, RA);
}
SHIM_EXPORT void __libc_free(void *p)
{
    free(p);
}
SHIM_EXPORT void *__libc_calloc(size_t nmemb, size_t size)
{
    return do_calloc(nmemb, size, RA);
}
SHIM_EXPORT void *__libc_realloc(void *p, size_t n)
{
    return do_realloc(p, n, RA);
}
SHIM_EXPORT void *__libc_memalign(size_t align, size_t n)
{
    return do_memalign(align, n, RA);
}
SHIM_EXPORT void *__libc_valloc(size_t n)
{
    return alloc_aligned((size_t)sysconf(_SC_PAGESIZE), n, RA);
}
SHIM_EXPORT void *__libc_pvalloc(size_t n)
{
    return do_pvalloc(n, RA);
}
