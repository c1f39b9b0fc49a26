/* SPDX-License-Identifier: MIT */
/*
 * heap_int.h -- internals shared by the heap's files (the table of contents of the heap).
 */
#ifndef LRVM_HEAP_INT_H
#define LRVM_HEAP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

#include "heap.h"
#include "heap_format.h"

/* Size classes: 16..512 step 16 (32 classes), then 8 per doubling up to HEAP_SMALL_MAX. */
#define HEAP_SMALL_MAX ((size_t)64 << 10)
#define HEAP_NCLASS (32 + 7 * 8)
#define HEAP_NIL UINT32_MAX
#define HEAP_PUNCH_MIN_PAGES 16u               /* punch only free ranges >= 64 KiB */
#define HEAP_PURGE_EAGER_PAGES HEAP_DATA_PAGES /* release a chunk that became all free at once */
/* Purging (releasing free pages to the kernel) decays: free pages idle for HEAP_DECAY_MS are
 * released once more than max(MIN, active/SOFT) are resident; above max(MIN, active/HARD)
 * the largest free spans go at once whatever their age. */
#define HEAP_PURGE_MIN_PAGES 256u
#define HEAP_PURGE_SOFT 64u
#define HEAP_PURGE_HARD 12u
#define HEAP_DECAY_MS 1000u
#define HEAP_PURGE_SCAN_MS 50u
#define HEAP_NARENAS 4u /* run arenas: threads refill from different runs */
/* free chunk ranges whose release the backing deferred (try_release: EAGAIN), at most */
#define HEAP_DEFER_MAX 16u

struct heap_class {
    uint32_t size;
    uint32_t npages;
    uint32_t nblocks;
    uint32_t cap;   /* thread-cache capacity */
    uint64_t recip; /* ceil(2^40 / size): offset -> block index without a divide */
};

/* struct heap_vpage -- volatile per-page state (indexed by page number from base). */
struct heap_vpage {
    uint32_t next, prev; /* span bin list (free heads) or class run list (run heads) */
    uint32_t nfree;      /* run head: available blocks; free head: dirty (resident) pages */
    uint16_t inlist;     /* 1 if linked */
    uint16_t arena;      /* run head: the arena whose lists and available bits own it */
    uint32_t stamp;      /* free head: when it last got dirty pages (ms, coarse clock) */
    /* run head: the blocks from this index on were never taken from the run since it was
     * carved from pages known to be zero, so they still are (nblocks: none known zero). It
     * only grows (past every block taken); below it a block may hold a freed block's bytes. */
    uint32_t zero_from;
};

/* Thread cache entry: the block, its granule index in its chunk (its allocation bit), and
 * whether its bytes are known to be zero (taken fresh from a zero run: heap_vpage.zero_from) */
struct heap_tentry {
    void *p;
    uint32_t bit;
    uint32_t zero;
};

struct heap_tbin {
    uint32_t n, cap;
    struct heap_tentry *e;
};

struct heap_tcache {
    struct heap *h;
    struct heap_tcache *next, *prev; /* h->tcaches, under h->lock */
    pthread_t owner;
    unsigned arena;
    int64_t allocated; /* usable bytes malloc'ed minus freed through this cache */
    int64_t nallocated;
    size_t mapsize;
    struct heap_tbin bins[HEAP_NCLASS];
};

struct heap {
    uint64_t id;           /* unique per open in this process (tcache binding) */
    unsigned exit_flushes; /* exiting threads flushing their cache of this heap now
                                     * (heap_alloc.c: tls_destructor; under its registry lock) */
    char *base;
    size_t reserve;
    struct heap_backing b;
    struct heap_opts o;
    struct heap_header *hdr;
    struct heap_chunk_ent *ct;
    pthread_mutex_t lock; /* the page lock: chunks, spans, stats, cache list */
    /*
   * Arenas: each thread cache refills from the runs of one arena, so two threads do not
   * allocate from the same run (no shared allocation-bit words or cache lines). An
   * arena's lock guards its run lists and the available bits and free counts of its runs.
   * Lock order: arena (one at a time) -> page lock.
   */
    struct heap_arena {
        pthread_mutex_t lock;
        uint32_t runs[HEAP_NCLASS]; /* runs with available blocks */
        uint32_t nthreads;          /* caches attached (page lock) */
        char pad[64];
    } arenas[HEAP_NARENAS];
    unsigned next_arena;
    /* volatile state, rebuilt at open; all below under the page lock */
    struct heap_vpage *vp;
    uint64_t *avail; /* available (free, uncached) bits, same layout as bitmaps */
    size_t volsize;  /* bytes mapped for vp + avail */
    uint32_t bins[HEAP_CHUNK_PAGES + 1]; /* free spans by exact npages */
    uint64_t binmask[(HEAP_CHUNK_PAGES + 1 + 63) / 64];
    size_t dirty_pages, clean_pages, active_pages, nchunks_used;
    int64_t allocated, nallocated; /* large/huge and flushed caches */
    size_t purges;
    uint32_t last_scan; /* ms of the last decay scan */
    /* free chunks still resident because try_release said EAGAIN (heap_page.c, DEFERRED
     * RELEASE); a range may since have been reused in part or whole */
    struct heap_deferred {
        uint32_t ci, n;
    } deferred[HEAP_DEFER_MAX];
    unsigned ndeferred;
    struct heap_tcache *tcaches;
    int live; /* volatile state built: the checker may compare it */
};

extern struct heap_class heap_classes[HEAP_NCLASS];

/* ---- inline helpers ---------------------------------------------------------------------- */

static inline char *heap_chunk_addr(const struct heap *h, size_t ci)
{
    return h->base + (ci << HEAP_CHUNK_SHIFT);
}

static inline struct heap_pdesc *heap_pdesc_of(const struct heap *h, size_t ci)
{
    return (struct heap_pdesc *)(heap_chunk_addr(h, ci) + HEAP_PDESC_OFF);
}

/* heap_bit_word -- the allocation bit word of granule g (index from the chunk start) of the
 * chunk at cbase, with its mask */
static inline uint64_t *heap_bit_word(char *cbase, uint64_t g, uint64_t *mask)
{
    struct heap_pdesc *rec = (struct heap_pdesc *)cbase + (g / HEAP_BITS_PER_PAGE);
    *mask = 1ull << (g & 63);
    return &rec->bits[(g % HEAP_BITS_PER_PAGE) / 64];
}

static inline uint64_t *heap_avail_of(const struct heap *h, size_t ci)
{
    return h->avail + ci * (HEAP_CHUNK_PAGES * HEAP_BITS_PER_PAGE / 64);
}

/* global page number <-> address */
static inline uint32_t heap_gp(const struct heap *h, const void *p)
{
    return (uint32_t)(((const char *)p - h->base) >> HEAP_PAGE_SHIFT);
}

static inline char *heap_gp_addr(const struct heap *h, uint32_t gp)
{
    return h->base + ((size_t)gp << HEAP_PAGE_SHIFT);
}

static inline struct heap_pdesc *heap_gp_pdesc(const struct heap *h, uint32_t gp)
{
    return heap_pdesc_of(h, gp / HEAP_CHUNK_PAGES) + gp % HEAP_CHUNK_PAGES;
}

/* heap_size_class -- class index of a request of n (1..HEAP_SMALL_MAX) bytes */
static inline unsigned heap_size_class(size_t n)
{
    if (n <= 512)
        return n == 0 ? 0 : (unsigned)((n - 1) >> 4);
    size_t m = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzll(m);
    return 32u + (b - 9u) * 8u + (unsigned)((m >> (b - 3u)) - 8u);
}

/* ---- heap.c ------------------------------------------------------------------------------- */
uint64_t heap_header_checksum(const struct heap_header *hd);
void heap_reportf(const struct heap *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- heap_page.c: chunks, spans, runs (under the page lock; run lists: the arena lock) ---- */
int heap_page_init_volatile(struct heap *h);
void heap_page_fini_volatile(struct heap *h);
int heap_page_rebuild(struct heap *h);
void *heap_page_alloc_large(struct heap *h, size_t npages, size_t align_pages, int *zero);
void heap_page_free_large(struct heap *h, uint32_t gp);
int heap_page_resize_large(struct heap *h, uint32_t gp, size_t npages, int *zero);
void *heap_page_alloc_huge(struct heap *h, size_t nchunks, size_t align_chunks, int *zero);
void heap_page_free_huge(struct heap *h, size_t ci);
int heap_page_resize_huge(struct heap *h, size_t ci, size_t nchunks, int *zero);
uint32_t heap_page_new_run(struct heap *h, unsigned cls);
void heap_page_free_run(struct heap *h, uint32_t gp);
void heap_page_maybe_purge(struct heap *h);
uint32_t heap_now_ms(void);
void heap_page_purge_all(struct heap *h);
void heap_page_run_link(struct heap *h, uint32_t *list, uint32_t gp);
void heap_page_run_unlink(struct heap *h, uint32_t *list, uint32_t gp);

/* ---- heap_alloc.c ------------------------------------------------------------------------ */
void heap_classes_init(void);
void heap_tcache_flush_all(struct heap *h, int keep_current);
void heap_tcache_forget_all(struct heap *h);
int heap_registry_add(struct heap *h);
void heap_registry_remove(struct heap *h);
void heap_registry_fork_child(void);

#endif
