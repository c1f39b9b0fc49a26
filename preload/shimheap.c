/* SPDX-License-Identifier: MIT */
/*
 * shimheap.c -- the heap behind malloc: its reservation at a fixed base and its backing.
 *
 * The heap is reserved at LRVM_HEAP_BASE with MAP_FIXED_NOREPLACE. Why fixed: a restarted
 * program finds its absolute pointers valid only if the heap is where it was. Why NOREPLACE:
 * MAP_FIXED would silently unmap whatever (a library, a thread stack) sits there; if the range
 * is taken we refuse with a message instead, before main.
 *
 * Backing: without LRVM_SEGMENT, private anonymous memory (MAP_NORESERVE: the reservation
 * costs nothing until touched), volatile. With LRVM_SEGMENT, persist.c maps the reservation
 * through an LRVM segment region and tracks it; liblrvm's own memory then comes from a second,
 * volatile heap (internal_heap_setup). The heap's volatile state is mmap'ed by the heap itself.
 */
#include "shim.h"
#include "preload_api.h"

#define HEAP_CHUNK_ALIGN ((size_t)4 << 20)

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct heap *shim_heap;
int shim_forked_child;

/* report -- the heap's diagnostics, one write(2) each (we may be inside malloc) */
static void report(void *arg, const char *msg)
{
    (void)arg;
    shim_say(2, "heap: ", msg, NULL);
}

/* struct anon -- an anonymous backing's state (static: it must not be in the heap) */
struct anon {
    char *base;
    size_t reserve;
    size_t size;
};
static struct anon program_anon;  /* the program's volatile heap (no LRVM_SEGMENT) */
static struct anon internal_anon; /* the internal heap (libc's own objects) */

/* anon_grow -- the reservation is already mapped read-write; only record the new size */
static int anon_grow(void *ctx, size_t new_size)
{
    struct anon *a = ctx;
    if (new_size > a->reserve)
        return ENOMEM;
    a->size = new_size;
    return 0;
}

/* anon_release -- drop the pages; they read back as zeros (hence ZERO_ON_RELEASE) */
static int anon_release(void *ctx, size_t off, size_t len)
{
    struct anon *a = ctx;
    return madvise(a->base + off, len, MADV_DONTNEED) ? errno : 0;
}

/* anon_size -- bytes backed so far */
static size_t anon_size(void *ctx)
{
    return ((struct anon *)ctx)->size;
}

static struct heap_backing program_anon_backing = {
    .grow = anon_grow,
    .release = anon_release,
    .reserve_space = NULL,
    .size = anon_size,
    .ctx = &program_anon,
    .flags = HEAP_BACKING_ZERO_ON_RELEASE,
};
static struct heap_backing internal_anon_backing = {
    .grow = anon_grow,
    .release = anon_release,
    .reserve_space = NULL,
    .size = anon_size,
    .ctx = &internal_anon,
    .flags = HEAP_BACKING_ZERO_ON_RELEASE,
};

/* liblrvm's memory: recovery of a 1 GiB commit holds the record (and its copy) in memory;
 * MAP_NORESERVE, so the reserve costs only address space */
#define SHIM_INTERNAL_HEAP_RESERVE ((size_t)64 << 30)

/* internal_heap_setup -- the volatile internal heap for liblrvm's memory, anywhere the kernel likes
 * (4 MiB aligned, as heap_create requires; MAP_NORESERVE: costs only what is used) */
static int internal_heap_setup(void)
{
    size_t len = SHIM_INTERNAL_HEAP_RESERVE + HEAP_CHUNK_ALIGN;
    char *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        int err = errno;
        shim_say(2, "cannot reserve the shim's internal heap: ", strerror(err), NULL);
        return err;
    }
    char *base =
        (char *)(((uintptr_t)m + HEAP_CHUNK_ALIGN - 1) & ~(uintptr_t)(HEAP_CHUNK_ALIGN - 1));
    if (base > m)
        munmap(m, (size_t)(base - m));
    char *end = base + SHIM_INTERNAL_HEAP_RESERVE;
    munmap(end, (size_t)(m + len - end));
    internal_anon.base = base;
    internal_anon.reserve = SHIM_INTERNAL_HEAP_RESERVE;
    struct heap_opts o;
    heap_opts_init(&o);
    o.report = report;
    struct heap *h;
    int rc = heap_create(&h, base, SHIM_INTERNAL_HEAP_RESERVE, &internal_anon_backing, &o);
    if (rc) {
        shim_say(2, "cannot create the shim's internal heap: ", heap_strerror(rc), NULL);
        return rc;
    }
    shim_internal_heap = h;
    return 0;
}


/* shim_heap_setup -- reserve and create; the messages name the variable to change */
int shim_heap_setup(void)
{
    char b[24], s[24];
    void *base = (void *)shim_opts.heap_base;
    size_t size = shim_opts.heap_size;
    void *m = mmap(base, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED || m != base) {
        int err = m == MAP_FAILED ? errno : EEXIST;
        if (m != MAP_FAILED)
            munmap(m, size); /* a kernel without NOREPLACE gave another address: not ours to use */
        shim_say(2, "cannot reserve the heap at LRVM_HEAP_BASE=", shim_fmt_hex(b, (uintptr_t)base),
                 " (LRVM_HEAP_SIZE=", shim_fmt_u64(s, size >> 20), "M): ", strerror(err),
                 err == EEXIST ? "; something is already mapped there: choose another"
                                 " LRVM_HEAP_BASE or a smaller LRVM_HEAP_SIZE"
                               : "; choose a smaller LRVM_HEAP_SIZE (or check ulimit -v)",
                 NULL);
        return err;
    }
    if (shim_opts.segment) {
        int rc = internal_heap_setup();
        if (rc == 0)
            rc = shim_persist_setup(base, size);
        return rc; /* on failure the caller exits: nothing to unwind */
    }
    program_anon.base = base;
    program_anon.reserve = size;
    program_anon.size = 0;
    struct heap_opts o;
    heap_opts_init(&o);
    o.report = report;
    int rc = heap_create(&shim_heap, base, size, &program_anon_backing, &o);
    if (rc) {
        shim_say(2, "cannot create the heap at LRVM_HEAP_BASE=", shim_fmt_hex(b, (uintptr_t)base),
                 ": ", heap_strerror(rc), NULL);
        munmap(base, size);
        return rc;
    }
    return 0;
}

/* fork handlers: no thread may be inside a multi-word heap update at the fork instant, or the
 * child would inherit a held lock and a half-made change. */
/* Order: the program's heap, then the internal one -- the order a commit takes them in
 * (heap_lock_all, then liblrvm allocating inside rvm_commit), so the two cannot deadlock. */
static void fork_prepare(void)
{
    shim_forkgate_prepare(); /* commits stop queueing for the heap locks (forkgate.c) */
    heap_lock_all(shim_heap);
    shim_forkgate_tail_wait(); /* a commit past its instant finishes first (forkgate.c) */
    if (shim_internal_heap)
        heap_lock_all(shim_internal_heap);
}
static void fork_parent(void)
{
    if (shim_internal_heap)
        heap_unlock_all(shim_internal_heap);
    heap_unlock_all(shim_heap);
    shim_forkgate_parent();
}
static void fork_child(void)
{
    shim_persist_fork_unlock();
    if (shim_internal_heap)
        heap_fork_child(shim_internal_heap);
    heap_fork_child(shim_heap);
    shim_forkgate_child();
    shim_persist_fork_child();
    shim_forked_child = 1; /* the child's heap is a private volatile copy: it never commits */
}

/* shim_heap_atfork -- install the fork handlers (after init: pthread_atfork may allocate) */
int shim_heap_atfork(void)
{
    return pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* shim_heap_stats -- LRVM_STATS output */
void shim_heap_stats(int fd)
{
    struct heap_stats st;
    heap_stats_get(shim_heap, &st);
    char a[24], b[24], c[24], d[24], e[24], f[24];
    shim_say(fd, "stats: heap reserve ", shim_fmt_u64(a, st.reserve >> 20), " MiB, backed ",
             shim_fmt_u64(b, st.size >> 20), " MiB, allocated ", shim_fmt_u64(c, st.allocated),
             " B in ", shim_fmt_u64(d, st.nallocated), " blocks, metadata ",
             shim_fmt_u64(e, st.metadata >> 10), " KiB, foreign frees ",
             shim_fmt_u64(f, shim_foreign_frees), NULL);
}
