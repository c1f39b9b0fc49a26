/* SPDX-License-Identifier: MIT */
/*
 * heap_alloc.c -- the malloc family: size classes, per-thread caches, block lookup and
 * validation of frees, realloc in place, aligned allocation.
 *
 * Fast path (small blocks, <= 64 KiB): a volatile per-thread cache of blocks per class. A block
 * in a cache is FREE in the persistent allocation bitmap and NOT available in the volatile
 * "available" bitmap, so no other thread can take it and a crash simply frees it. malloc pops
 * from the cache and sets the block's allocation bit with one atomic OR; free validates the
 * pointer, clears the bit with one atomic AND (the old value detects double frees) and pushes
 * it on the cache. Neither touches the heap lock; refill/flush of a cache take it.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "heap_int.h"

struct heap_class heap_classes[HEAP_NCLASS];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

/* classes_compute -- fill the class table: sizes, run lengths, cache capacities */
static void classes_compute(void)
{
    for (unsigned c = 0; c < HEAP_NCLASS; c++) {
        uint32_t s;
        if (c < 32) {
            s = 16u * (c + 1);
        } else {
            unsigned k = (c - 32) / 8, j = (c - 32) % 8;
            s = (512u << k) + (j + 1) * (64u << k);
        }
        /* Run length: at least max(1 block, 16 KiB), at most 64 pages, waste <= 1/32 if we can.
     * Big classes get runs of one or two blocks: a run of many big blocks half full is the
     * main source of space overhead when sizes are mixed (one partial run per class). */
        size_t target = s > 16384 ? s : 16384;
        uint32_t lo = (uint32_t)((target + HEAP_PAGE - 1) / HEAP_PAGE), best = 0;
        if (lo > 64)
            lo = 64;
        size_t bw = 0, bb = 1; /* best waste / bytes so far */
        for (uint32_t n = lo; n <= 64; n++) {
            size_t bytes = (size_t)n * HEAP_PAGE, waste = bytes % s;
            if (best == 0 || waste * bb < bw * bytes) {
                best = n;
                bw = waste;
                bb = bytes;
            }
            if (waste * 32 <= bytes)
                break;
        }
        heap_classes[c].size = s;
        heap_classes[c].npages = best;
        heap_classes[c].nblocks = (uint32_t)((size_t)best * HEAP_PAGE / s);
        heap_classes[c].cap = s <= 256 ? 64 : s <= 1024 ? 32 : s <= 4096 ? 16 : s <= 16384 ? 8 : 4;
        heap_classes[c].recip = ((1ull << 40) + s - 1) / s;
    }
}

/* heap_classes_init -- compute the class table once per process */
void heap_classes_init(void)
{
    pthread_once(&classes_once, classes_compute);
}

/* ---- thread caches ----------------------------------------------------------------------- */

#define TLS_SLOTS 4
struct tls_slot {
    uint64_t id;
    struct heap_tcache *tc;
};
/* initial-exec: no __tls_get_addr call on the fast path when this lands in liblrvm.so (it is
 * loaded at startup or preloaded, so static TLS space is there for it) */
#define HEAP_TLS __thread __attribute__((tls_model("initial-exec")))
static HEAP_TLS struct tls_slot tls_slots[TLS_SLOTS];
static HEAP_TLS uint64_t tls_last_id;
static HEAP_TLS struct heap_tcache *tls_last;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

/* Open heaps, for the thread-exit destructor (a heap may have closed before its threads end). */
#define REG_MAX 64
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct heap *open_heaps[REG_MAX];
/* The end of a thread-exit flush (reg_idle, with reg_lock). A flush waits for arena and heap
 * locks; reg_lock must not be held meanwhile: a commit holds every lock of a persistent heap
 * (heap_lock_all) and may allocate from another heap, which can need reg_lock
 * (tcache_get_slow). Holding it across the flush deadlocked such a commit against any thread
 * exiting at that moment. Instead each heap counts the flushes in flight (exit_flushes, under
 * reg_lock), and a heap leaving the registry waits for its own. */
static pthread_cond_t reg_idle = PTHREAD_COND_INITIALIZER;

/* block_bitword -- the allocation bit word and mask of a cached block */
static inline uint64_t *block_bitword(const struct heap_tentry *e, uint64_t *mask)
{
    char *cb = (char *)((uintptr_t)e->p & ~(uintptr_t)(HEAP_CHUNK - 1));
    return heap_bit_word(cb, e->bit, mask);
}

/*
 * bin_flush -- return the oldest n entries of bin cls to their runs (no lock held). Entries may
 * belong to runs of other arenas (blocks freed by another thread than the allocating one):
 * each run is updated under its own arena's lock, taken one at a time.
 */
static void bin_flush(struct heap *h, struct heap_tcache *tc, unsigned cls, uint32_t n)
{
    struct heap_tbin *b = &tc->bins[cls];
    const struct heap_class *c = &heap_classes[cls];
    struct heap_arena *held = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const struct heap_tentry *e = &b->e[i];
        size_t ci = (size_t)((char *)e->p - h->base) >> HEAP_CHUNK_SHIFT;
        /* the block's granule gives its page; an interior page's record leads to the head */
        uint32_t head = (uint32_t)(ci * HEAP_CHUNK_PAGES + (e->bit / HEAP_BITS_PER_PAGE));
        struct heap_pdesc *pd = heap_gp_pdesc(h, head);
        if (pd->kind == PD_INTERIOR)
            head -= pd->back;
        struct heap_vpage *v = &h->vp[head];
        struct heap_arena *a;
        /* the run may move to another arena (run_steal) until we hold its current arena's lock */
        while ((a = &h->arenas[__atomic_load_n(&v->arena, __ATOMIC_RELAXED)]) != held) {
            if (held)
                pthread_mutex_unlock(&held->lock);
            pthread_mutex_lock(&a->lock);
            held = a;
        }
        size_t k = (size_t)((char *)e->p - heap_gp_addr(h, head)) / c->size;
        size_t aw = (head % HEAP_CHUNK_PAGES) * (HEAP_BITS_PER_PAGE / 64) + k / 64;
        heap_avail_of(h, ci)[aw] |= 1ull << (k % 64);
        v->nfree++;
        uint32_t *list = &a->runs[cls];
        int others = v->inlist ? (*list != head || v->next != HEAP_NIL) : *list != HEAP_NIL;
        if (v->nfree == c->nblocks && others) {
            /* entirely free and the arena has other runs with room: give the pages back */
            if (v->inlist)
                heap_page_run_unlink(h, list, head);
            pthread_mutex_lock(&h->lock);
            heap_page_free_run(h, head);
            pthread_mutex_unlock(&h->lock);
            continue;
        }
        if (!v->inlist)
            heap_page_run_link(h, list, head);
    }
    if (held)
        pthread_mutex_unlock(&held->lock);
    memmove(b->e, b->e + n, (b->n - n) * sizeof(*b->e));
    b->n -= n;
}

/* tcache_destroy -- flush all bins, unlink and unmap tc (no lock held) */
static void tcache_destroy(struct heap *h, struct heap_tcache *tc)
{
    for (unsigned c = 0; c < HEAP_NCLASS; c++)
        if (tc->bins[c].n)
            bin_flush(h, tc, c, tc->bins[c].n);
    pthread_mutex_lock(&h->lock);
    h->arenas[tc->arena].nthreads--;
    h->allocated += tc->allocated;
    h->nallocated += tc->nallocated;
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        h->tcaches = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    pthread_mutex_unlock(&h->lock);
    munmap(tc, tc->mapsize);
}

/* tls_destructor -- thread exit: return this thread's cached blocks to every open heap. The
 * open heaps are looked up under reg_lock, the caches are flushed without it (see reg_idle):
 * each heap stays open meanwhile because heap_registry_remove waits for its exit_flushes. */
static void tls_destructor(void *arg)
{
    (void)arg;
    struct heap *hs[TLS_SLOTS];
    struct heap_tcache *tcs[TLS_SLOTS];
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < TLS_SLOTS; i++) {
        if (!tls_slots[i].id)
            continue;
        for (int r = 0; r < REG_MAX; r++) {
            struct heap *h = open_heaps[r];
            if (h && h->id == tls_slots[i].id) {
                h->exit_flushes++;
                hs[n] = h;
                tcs[n++] = tls_slots[i].tc;
                break;
            }
        }
        tls_slots[i].id = 0;
    }
    tls_last_id = 0;
    pthread_mutex_unlock(&reg_lock);
    for (int i = 0; i < n; i++) {
        tcache_destroy(hs[i], tcs[i]);
        pthread_mutex_lock(&reg_lock);
        if (--hs[i]->exit_flushes == 0)
            pthread_cond_broadcast(&reg_idle);
        pthread_mutex_unlock(&reg_lock);
    }
}

/* tls_key_create -- the key whose destructor flushes caches at thread exit */
static void tls_key_create(void)
{
    pthread_key_create(&tls_key, tls_destructor);
}

/* tcache_create -- a new cache for this thread on h (NULL if out of memory) */
static struct heap_tcache *tcache_create(struct heap *h)
{
    size_t sz = sizeof(struct heap_tcache);
    for (unsigned c = 0; c < HEAP_NCLASS; c++)
        sz += heap_classes[c].cap * sizeof(struct heap_tentry);
    sz = (sz + HEAP_PAGE - 1) & ~(HEAP_PAGE - 1);
    struct heap_tcache *tc =
        mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tc == MAP_FAILED)
        return NULL;
    tc->h = h;
    tc->mapsize = sz;
    tc->owner = pthread_self();
    struct heap_tentry *e = (struct heap_tentry *)(tc + 1);
    for (unsigned c = 0; c < HEAP_NCLASS; c++) {
        tc->bins[c].cap = heap_classes[c].cap;
        tc->bins[c].e = e;
        e += heap_classes[c].cap;
    }
    pthread_mutex_lock(&h->lock);
    /* the least used arena: runs of arenas whose threads ended are reused, not stranded */
    unsigned best = h->next_arena++ % HEAP_NARENAS;
    for (unsigned a = 0; a < HEAP_NARENAS; a++)
        if (h->arenas[a].nthreads < h->arenas[best].nthreads)
            best = a;
    tc->arena = best;
    h->arenas[best].nthreads++;
    tc->next = h->tcaches;
    if (tc->next)
        tc->next->prev = tc;
    h->tcaches = tc;
    pthread_mutex_unlock(&h->lock);
    return tc;
}

/* tcache_get_slow -- find or create this thread's cache for h and make it the fast one */
static struct heap_tcache *tcache_get_slow(struct heap *h)
{
    struct tls_slot *free_slot = NULL;
    for (int i = 0; i < TLS_SLOTS; i++) {
        if (tls_slots[i].id == h->id) {
            tls_last_id = h->id;
            tls_last = tls_slots[i].tc;
            return tls_last;
        }
    }
    /* Drop slots of heaps that are no longer open. */
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < TLS_SLOTS; i++) {
        int open = 0;
        for (int r = 0; r < REG_MAX && tls_slots[i].id; r++)
            open |= open_heaps[r] && open_heaps[r]->id == tls_slots[i].id;
        if (!open)
            tls_slots[i].id = 0;
        if (!tls_slots[i].id && !free_slot)
            free_slot = &tls_slots[i];
    }
    pthread_mutex_unlock(&reg_lock);
    if (!free_slot)
        return NULL; /* more than TLS_SLOTS heaps used by one thread: uncached (locked) path */
    pthread_once(&tls_once, tls_key_create);
    struct heap_tcache *tc = tcache_create(h);
    if (!tc)
        return NULL;
    pthread_setspecific(tls_key, (void *)1);
    free_slot->id = h->id;
    free_slot->tc = tc;
    tls_last_id = h->id;
    tls_last = tc;
    return tc;
}

/* tcache_get -- this thread's cache for h, or NULL (use the locked path) */
static inline struct heap_tcache *tcache_get(struct heap *h)
{
    if (__builtin_expect(tls_last_id == h->id, 1))
        return tls_last;
    return tcache_get_slow(h);
}

/*
 * run_steal -- move a run with available blocks of cls from another arena into arena `mine`
 * (whose lock is held), so blocks freed into an arena nobody refills from are not stranded.
 * trylock only: taking a second arena lock in any order could deadlock.
 */
static uint32_t run_steal(struct heap *h, unsigned mine, unsigned cls)
{
    for (unsigned i = 1; i < HEAP_NARENAS; i++) {
        struct heap_arena *o = &h->arenas[(mine + i) % HEAP_NARENAS];
        if (o->runs[cls] == HEAP_NIL || pthread_mutex_trylock(&o->lock) != 0)
            continue;
        uint32_t gp = o->runs[cls];
        if (gp != HEAP_NIL) {
            heap_page_run_unlink(h, &o->runs[cls], gp);
            __atomic_store_n(&h->vp[gp].arena, (uint16_t)mine, __ATOMIC_RELAXED);
            heap_page_run_link(h, &h->arenas[mine].runs[cls], gp);
        }
        pthread_mutex_unlock(&o->lock);
        if (gp != HEAP_NIL)
            return gp;
    }
    return HEAP_NIL;
}

/* bin_refill -- take up to cap/2 available blocks of cls from the cache's arena; 0 or ENOMEM */
static int bin_refill(struct heap *h, struct heap_tcache *tc, unsigned cls)
{
    struct heap_tbin *b = &tc->bins[cls];
    const struct heap_class *c = &heap_classes[cls];
    struct heap_arena *a = &h->arenas[tc->arena];
    uint32_t want = b->cap / 2 ? b->cap / 2 : 1;
    pthread_mutex_lock(&a->lock);
    while (b->n < want) {
        uint32_t gp = a->runs[cls];
        if (gp == HEAP_NIL)
            gp = run_steal(h, tc->arena, cls);
        if (gp == HEAP_NIL) {
            pthread_mutex_lock(&h->lock);
            gp = heap_page_new_run(h, cls);
            pthread_mutex_unlock(&h->lock);
            if (gp == HEAP_NIL)
                break;
            h->vp[gp].arena = (uint16_t)tc->arena;
            heap_page_run_link(h, &a->runs[cls], gp);
        }
        size_t ci = gp / HEAP_CHUNK_PAGES, hp = gp % HEAP_CHUNK_PAGES;
        uint64_t *av = heap_avail_of(h, ci) + hp * (HEAP_BITS_PER_PAGE / 64);
        char *start = heap_gp_addr(h, gp);
        struct heap_vpage *v = &h->vp[gp];
        size_t nw = ((size_t)c->nblocks + 63) / 64;
        for (size_t w = 0; w < nw && b->n < want && v->nfree; w++) {
            while (av[w] && b->n < want) {
                unsigned k = (unsigned)__builtin_ctzll(av[w]);
                av[w] &= av[w] - 1;
                size_t idx = w * 64 + k;
                size_t off = hp * HEAP_PAGE + idx * c->size;
                int zero = idx >= v->zero_from;
                if (zero)
                    v->zero_from = (uint32_t)idx + 1;
                b->e[b->n++] = (struct heap_tentry){start + idx * c->size,
                                                    (uint32_t)(off / HEAP_GRANULE), (uint32_t)zero};
                v->nfree--;
            }
        }
        if (v->nfree == 0)
            heap_page_run_unlink(h, &a->runs[cls], gp);
    }
    pthread_mutex_unlock(&a->lock);
    return b->n ? 0 : ENOMEM;
}

/* ---- block lookup -------------------------------------------------------------------------- */

enum { BK_BAD = 0, BK_SMALL, BK_LARGE, BK_HUGE };

struct block_info {
    int kind;
    const char *why;    /* BK_BAD: reason */
    unsigned cls;       /* BK_SMALL */
    uint32_t head;      /* BK_SMALL, BK_LARGE: head page (global) */
    size_t ci;          /* chunk index */
    uint64_t bit;       /* BK_SMALL: granule index in the chunk (its allocation bit) */
    size_t size;        /* usable size */
    int bad;            /* BK_BAD: BAD_OUTSIDE, BAD_FREE or BAD_INTERIOR */
    int small_interior; /* BK_BAD inside a small block: cls and bit are that block's */
};

enum { BAD_OUTSIDE = 0, BAD_FREE, BAD_INTERIOR };

/* block_lookup -- classify p without changing anything (allocation bit not checked) */
static int block_lookup(const struct heap *h, const void *p, struct block_info *bi)
{
    size_t off = (size_t)((const char *)p - h->base);
    bi->kind = BK_BAD;
    bi->bad = BAD_OUTSIDE;
    bi->small_interior = 0;
    if ((const char *)p < h->base || off >= h->hdr->size) {
        bi->why = "pointer is outside the heap";
        return BK_BAD;
    }
    size_t ci = off >> HEAP_CHUNK_SHIFT;
    bi->ci = ci;
    uint32_t ck = CK_KIND(h->ct[ci].kind);
    if (ck == CK_HUGE && (off & (HEAP_CHUNK - 1)) == 0) {
        bi->size = (size_t)h->ct[ci].n << HEAP_CHUNK_SHIFT;
        return bi->kind = BK_HUGE;
    }
    if (ck != CK_NORMAL) {
        bi->bad = ck == CK_HUGE || ck == CK_HUGE_TAIL ? BAD_INTERIOR : BAD_FREE;
        bi->why = ck == CK_HUGE || ck == CK_HUGE_TAIL ? "pointer is inside a huge block"
                                                      : "pointer is in free or metadata space";
        return BK_BAD;
    }
    uint32_t pi = (uint32_t)((off >> HEAP_PAGE_SHIFT) & (HEAP_CHUNK_PAGES - 1));
    const struct heap_pdesc *pd = heap_pdesc_of(h, ci);
    uint32_t head = pi;
    if (pd[pi].kind == PD_INTERIOR) {
        if (pd[pi].back > pi - HEAP_META_PAGES || pi < HEAP_META_PAGES)
            goto notblock;
        head = pi - pd[pi].back;
    }
    const struct heap_pdesc *hd = &pd[head];
    if (head < HEAP_META_PAGES || (hd->kind != PD_RUN && hd->kind != PD_LARGE) ||
        head + hd->npages <= pi)
        goto notblock;
    bi->head = (uint32_t)(ci * HEAP_CHUNK_PAGES + head);
    size_t rel = off - ((size_t)head << HEAP_PAGE_SHIFT) - (ci << HEAP_CHUNK_SHIFT);
    if (hd->kind == PD_LARGE) {
        if (rel != 0) {
            bi->bad = BAD_INTERIOR;
            bi->why = "pointer is inside a large block, not at its start";
            return BK_BAD;
        }
        bi->size = (size_t)hd->npages << HEAP_PAGE_SHIFT;
        return bi->kind = BK_LARGE;
    }
    if (hd->cls >= HEAP_NCLASS)
        goto notblock;
    const struct heap_class *c = &heap_classes[hd->cls];
    uint64_t idx = (rel * c->recip) >> 40;
    bi->cls = hd->cls;
    bi->bit = (off & (HEAP_CHUNK - 1)) / HEAP_GRANULE;
    if (idx * c->size != rel || idx >= c->nblocks) {
        bi->bad = idx >= c->nblocks ? BAD_FREE : BAD_INTERIOR; /* past the last block: slack */
        bi->small_interior = idx < c->nblocks;
        bi->bit -= (rel - idx * c->size) / HEAP_GRANULE; /* the block holding p */
        bi->why = "pointer is not the start of a block";
        return BK_BAD;
    }
    bi->cls = hd->cls;
    bi->bit = (off & (HEAP_CHUNK - 1)) / HEAP_GRANULE;
    bi->size = c->size;
    return bi->kind = BK_SMALL;
notblock:
    bi->bad = BAD_FREE;
    bi->why = "pointer is not in an allocated block";
    return BK_BAD;
}

/* bad_free -- report a rejected free/realloc with the address; the heap is unchanged */
static int bad_free(struct heap *h, const char *op, const void *p, const char *why)
{
    heap_reportf(h,
                 "%s(%p): %s; ignored, the heap is unchanged (the program has a double free "
                 "or a stray pointer: run it under a debugger to find the caller)",
                 op, p, why);
    return HEAP_EBADFREE;
}

/* ---- the malloc family ---------------------------------------------------------------------- */

/* small_alloc -- a block of class cls (thread cache, or the locked path without one); *zero:
 * its bytes are known zero */
static void *small_alloc(struct heap *h, unsigned cls, int *zero)
{
    struct heap_tcache *tc = tcache_get(h);
    if (__builtin_expect(tc == NULL, 0)) {
        /* No cache (mmap failed or too many heaps on this thread): a one-block refill through a
     * temporary stack cache, freed blocks go back the same way. */
        struct heap_tentry e1;
        struct heap_tcache tmp;
        memset(&tmp, 0, sizeof(tmp));
        tmp.bins[cls] = (struct heap_tbin){.n = 0, .cap = 1, .e = &e1};
        if (bin_refill(h, &tmp, cls) != 0)
            return NULL;
        uint64_t mask, *w = block_bitword(&e1, &mask);
        __atomic_fetch_or(w, mask, __ATOMIC_RELAXED);
        pthread_mutex_lock(&h->lock);
        h->allocated += heap_classes[cls].size;
        h->nallocated++;
        pthread_mutex_unlock(&h->lock);
        *zero = (int)e1.zero;
        return e1.p;
    }
    struct heap_tbin *b = &tc->bins[cls];
    if (__builtin_expect(b->n == 0, 0) && bin_refill(h, tc, cls) != 0)
        return NULL;
    struct heap_tentry *e = &b->e[--b->n];
    uint64_t mask, *w = block_bitword(e, &mask);
    __atomic_fetch_or(w, mask, __ATOMIC_RELAXED);
    tc->allocated += heap_classes[cls].size;
    tc->nallocated++;
    *zero = (int)e->zero;
    return e->p;
}

/* big_alloc -- a LARGE (or HUGE) block of at least n bytes aligned to align; *zero if known 0;
 * *usable: its size */
static void *big_alloc(struct heap *h, size_t n, size_t align, int *zero, size_t *usable)
{
    size_t npages = (n + HEAP_PAGE - 1) >> HEAP_PAGE_SHIFT;
    size_t apages = align > HEAP_PAGE ? align >> HEAP_PAGE_SHIFT : 1;
    void *p = NULL;
    *zero = 0;
    *usable = npages << HEAP_PAGE_SHIFT;
    if (n > h->reserve)
        return NULL;
    pthread_mutex_lock(&h->lock);
    if (npages + apages - 1 <= HEAP_DATA_PAGES) {
        p = heap_page_alloc_large(h, npages, apages, zero);
        if (p)
            h->allocated += (int64_t)npages << HEAP_PAGE_SHIFT;
    } else {
        size_t nch = (n + HEAP_CHUNK - 1) >> HEAP_CHUNK_SHIFT;
        size_t ach = align > HEAP_CHUNK ? align >> HEAP_CHUNK_SHIFT : 1;
        *usable = nch << HEAP_CHUNK_SHIFT;
        p = heap_page_alloc_huge(h, nch, ach, zero);
        if (p)
            h->allocated += (int64_t)nch << HEAP_CHUNK_SHIFT;
    }
    if (p)
        h->nallocated++;
    pthread_mutex_unlock(&h->lock);
    return p;
}

/* HEAP_TAIL_MARK -- the top byte of a short last word (heap_opts.clean_bytes): non-zero, so
 * the word is >= 2^56, above every user-space address */
#define HEAP_TAIL_MARK 0x80u

/*
 * hand_out -- block p (usable bytes, zero: known to be zero) is going to a request of n bytes:
 * under clean_bytes, its first clean_bytes bytes become zeros and its short last word (if
 * among them) gets its mark. Returns how many bytes from p on are zeros now, the mark aside
 * (it lies past n): calloc writes only the rest.
 *
 * Why at hand-out, not at free: the program usually overwrites what it asked for before the
 * next commit, so the zeros cost no log space, while zeroing at free would dirty (and log)
 * memory nobody uses. To the usable size, not only n: the scan reads a block to its usable
 * size, and the slack may hold an earlier owner's pointers too. Memory known zero is not
 * written (that would fault in and dirty pages for nothing), nor are bytes past clean_bytes:
 * the scan never reads them, and a program that mallocs a large buffer and uses a little of
 * it (sort's 1.2 GB) must not get the rest made resident and dirty.
 *
 * The mark: when n is not a multiple of 8, the word holding byte n-1 is the program's last
 * bytes plus slack. With zero slack, six random bytes there read as a 48-bit value, which may
 * equal an address of a mapping that does not come back. A non-zero top byte (little-endian:
 * the word's last byte, which is slack) puts the word above every user-space address. A
 * program that writes its slack (malloc_usable_size allows it) replaces the mark with its own
 * data, which is then judged as its data.
 */
static inline size_t hand_out(struct heap *h, void *p, size_t n, size_t usable, int zero)
{
    size_t lim = h->o.clean_bytes;
    if (!lim || !p)
        return zero ? usable : 0;
    size_t clean = usable < lim ? usable : lim;
    if (!zero)
        memset(p, 0, clean);
    if ((n & 7) && ((n - 1) | 7) < clean)
        ((unsigned char *)p)[(n - 1) | 7] = HEAP_TAIL_MARK;
    return zero ? usable : clean;
}

/* heap_malloc -- n bytes, 16-byte aligned; NULL with errno = ENOMEM on failure */
void *heap_malloc(struct heap *h, size_t n)
{
    void *p;
    int zero;
    size_t usable;
    if (__builtin_expect(n <= HEAP_SMALL_MAX, 1)) {
        unsigned cls = heap_size_class(n);
        p = small_alloc(h, cls, &zero);
        usable = heap_classes[cls].size;
    } else {
        p = big_alloc(h, n, HEAP_PAGE, &zero, &usable);
    }
    if (!p)
        errno = ENOMEM;
    hand_out(h, p, n, usable, zero);
    return p;
}

/* heap_calloc -- zeroed; pages known to be zero (fresh or released) are not written again */
void *heap_calloc(struct heap *h, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    int zero;
    size_t usable;
    void *p;
    if (n <= HEAP_SMALL_MAX) {
        unsigned cls = heap_size_class(n);
        p = small_alloc(h, cls, &zero);
        usable = heap_classes[cls].size;
    } else {
        p = big_alloc(h, n, HEAP_PAGE, &zero, &usable);
    }
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    size_t done = hand_out(h, p, n, usable, zero); /* zeros already: not written twice */
    if (done < n)
        memset((char *)p + done, 0, n - done);
    return p;
}

/* heap_memalign -- n bytes aligned to align (a power of two); NULL + EINVAL/ENOMEM */
void *heap_memalign(struct heap *h, size_t align, size_t n)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    if (align <= HEAP_GRANULE)
        return heap_malloc(h, n);
    if (n <= HEAP_SMALL_MAX && align <= HEAP_PAGE) {
        /* Runs start on page boundaries, so a class whose size is a multiple of align has every
     * block aligned. */
        for (unsigned c = heap_size_class(n); c < HEAP_NCLASS; c++)
            if (heap_classes[c].size % align == 0) {
                int zero;
                void *p = small_alloc(h, c, &zero);
                if (!p)
                    errno = ENOMEM;
                hand_out(h, p, n, heap_classes[c].size, zero);
                return p;
            }
    }
    int zero;
    size_t usable;
    void *p = big_alloc(h, n ? n : 1, align, &zero, &usable);
    if (!p)
        errno = ENOMEM;
    hand_out(h, p, n, usable, zero);
    return p;
}

/*
 * free_classify -- heap_free's fast path: small blocks, one record read. The pointer's own page
 * record gives the class and the distance to the run head, and holds the block's allocation
 * bit. A stale record (a page that is free now) cannot do harm: free pages never have
 * allocation bits set, so the bit test rejects the pointer; a set bit means a live block starts
 * exactly at p, and then its page record is live and right.
 */
static inline void free_classify(const struct heap *h, const void *p, struct block_info *bi)
{
    size_t off = (size_t)((const char *)p - h->base);
    if ((const char *)p >= h->base && off < h->hdr->size && (off & (HEAP_GRANULE - 1)) == 0 &&
        CK_KIND(h->ct[off >> HEAP_CHUNK_SHIFT].kind) == CK_NORMAL) {
        uint32_t pi = (uint32_t)((off >> HEAP_PAGE_SHIFT) & (HEAP_CHUNK_PAGES - 1));
        char *cb = h->base + (off & ~(HEAP_CHUNK - 1));
        struct heap_pdesc *rec = (struct heap_pdesc *)cb + pi;
        unsigned kind = rec->kind, cls = rec->cls;
        uint32_t back = kind == PD_RUN ? 0 : rec->back;
        if ((kind == PD_RUN || (kind == PD_INTERIOR && rec->aux == PD_RUN)) && cls < HEAP_NCLASS &&
            back <= pi - HEAP_META_PAGES && pi >= HEAP_META_PAGES) {
            const struct heap_class *c = &heap_classes[cls];
            uint64_t rel = (off & (HEAP_CHUNK - 1)) - ((uint64_t)(pi - back) << HEAP_PAGE_SHIFT);
            uint64_t idx = (rel * c->recip) >> 40;
            if (idx * c->size == rel && idx < c->nblocks) {
                bi->kind = BK_SMALL;
                bi->cls = cls;
                bi->size = c->size;
                bi->bit = (off & (HEAP_CHUNK - 1)) / HEAP_GRANULE;
            } else {
                bi->kind = BK_BAD;
                bi->why = "pointer is not the start of a block";
            }
        } else {
            bi->kind = block_lookup(h, p, bi);
        }
    } else {
        bi->kind = BK_BAD;
    }
}

/* free_small_uncached -- a small block (allocation bit cleared already) freed by a thread that
 * has no cache: through a one-entry bin, flushed at once */
static int free_small_uncached(struct heap *h, struct heap_tentry *e, const struct block_info *bi)
{
    struct heap_tcache tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.bins[bi->cls] = (struct heap_tbin){.n = 1, .cap = 1, .e = e};
    bin_flush(h, &tmp, bi->cls, 1);
    pthread_mutex_lock(&h->lock);
    h->allocated -= bi->size;
    h->nallocated--;
    pthread_mutex_unlock(&h->lock);
    return 0;
}

/* free_big -- large, huge, or invalid: decided under the lock so two racing frees cannot both
 * succeed */
static int free_big(struct heap *h, void *p, struct block_info *bi)
{
    pthread_mutex_lock(&h->lock);
    int k = block_lookup(h, p, bi);
    int rc = 0;
    if (k == BK_LARGE) {
        heap_page_free_large(h, bi->head);
    } else if (k == BK_HUGE) {
        heap_page_free_huge(h, bi->ci);
    } else if (k == BK_SMALL) {
        pthread_mutex_unlock(&h->lock);
        return heap_free(h, p); /* became small concurrently: retry the fast path */
    } else {
        rc = -1;
    }
    if (rc == 0) {
        h->allocated -= (int64_t)bi->size;
        h->nallocated--;
    }
    pthread_mutex_unlock(&h->lock);
    return rc ? bad_free(h, "free", p, bi->why) : 0;
}

int heap_free(struct heap *h, void *p)
{
    if (!p)
        return 0;
    struct block_info bi;
    free_classify(h, p, &bi);
    if (bi.kind != BK_SMALL)
        return free_big(h, p, &bi);
    struct heap_tentry e = {p, (uint32_t)bi.bit, 0}; /* it holds the program's bytes */
    uint64_t mask, *w = block_bitword(&e, &mask);
    uint64_t old = __atomic_fetch_and(w, ~mask, __ATOMIC_RELAXED);
    if (!(old & mask))
        return bad_free(h, "free", p, "block is not allocated (double free?)");
    struct heap_tcache *tc = tcache_get(h);
    if (__builtin_expect(tc == NULL, 0))
        return free_small_uncached(h, &e, &bi);
    struct heap_tbin *b = &tc->bins[bi.cls];
    if (__builtin_expect(b->n == b->cap, 0))
        bin_flush(h, tc, bi.cls, b->cap / 2 ? b->cap / 2 : 1);
    b->e[b->n++] = e;
    tc->allocated -= bi.size;
    tc->nallocated--;
    return 0;
}

/* heap_usable_size -- usable bytes of live block p (0 for NULL or a pointer that is none) */
size_t heap_usable_size(struct heap *h, const void *p)
{
    struct block_info bi;
    if (!p || block_lookup(h, p, &bi) == BK_BAD)
        return 0;
    return bi.size;
}

/* heap_block_state -- small blocks: the allocation bit of the block holding p;
 * large and huge blocks: found only while allocated, so a pointer into free pages or free
 * chunks is free memory. Takes no lock: a reader that needs a stable answer holds
 * heap_lock_all. */
int heap_block_state(struct heap *h, const void *p)
{
    struct block_info bi;
    int k = block_lookup(h, p, &bi);
    if (k == BK_BAD && bi.bad == BAD_OUTSIDE)
        return HEAP_BS_OUTSIDE;
    if (k == BK_BAD && bi.bad == BAD_FREE)
        return HEAP_BS_FREE;
    int start = k != BK_BAD;
    if (k == BK_SMALL || bi.small_interior) {
        uint64_t mask;
        struct heap_tentry e = {(void *)p, (uint32_t)bi.bit, 0};
        if (!(*block_bitword(&e, &mask) & mask))
            return HEAP_BS_FREE;
    }
    return start ? HEAP_BS_START : HEAP_BS_INTERIOR;
}

/* heap_realloc -- resize in place when the class (small), the following free pages (large)
 * or the following free chunks (huge) allow; otherwise allocate, copy, free. */
void *heap_realloc(struct heap *h, void *p, size_t n)
{
    if (!p)
        return heap_malloc(h, n);
    if (n == 0) {
        heap_free(h, p);
        return NULL;
    }
    struct block_info bi;
    int k = block_lookup(h, p, &bi);
    if (k == BK_BAD) {
        bad_free(h, "realloc", p, bi.why);
        errno = EINVAL;
        return NULL;
    }
    if (k == BK_SMALL) {
        uint64_t mask;
        struct heap_tentry e = {p, (uint32_t)bi.bit, 0};
        if (!(*block_bitword(&e, &mask) & mask)) {
            bad_free(h, "realloc", p, "block is not allocated (use after free?)");
            errno = EINVAL;
            return NULL;
        }
        if (n <= bi.size && (n > bi.size / 2 || bi.size <= 32)) {
            hand_out(h, p, n, bi.size, 1); /* the block's own bytes: only the mark */
            return p;
        }
    } else if (n > HEAP_SMALL_MAX) {
        int rc = ENOMEM, zero = 1;
        size_t nu = 0;
        pthread_mutex_lock(&h->lock);
        if (block_lookup(h, p, &bi) == k) {
            if (k == BK_LARGE) {
                size_t np = (n + HEAP_PAGE - 1) >> HEAP_PAGE_SHIFT;
                nu = np << HEAP_PAGE_SHIFT;
                if (np <= HEAP_DATA_PAGES &&
                    (rc = heap_page_resize_large(h, bi.head, np, &zero)) == 0)
                    h->allocated += (int64_t)nu - (int64_t)bi.size;
            } else {
                size_t nc = (n + HEAP_CHUNK - 1) >> HEAP_CHUNK_SHIFT;
                nu = nc << HEAP_CHUNK_SHIFT;
                /* Stay huge only while the size still needs more than a chunk's data pages. */
                if (n > (size_t)HEAP_DATA_PAGES << HEAP_PAGE_SHIFT &&
                    (rc = heap_page_resize_huge(h, bi.ci, nc, &zero)) == 0)
                    h->allocated += (int64_t)nu - (int64_t)bi.size;
            }
        }
        if (rc == 0) {
            /* Grown in place over free memory that may hold a freed block's bytes, and the
             * block is already reachable: zeroed before the lock is dropped, so that no
             * commit (the shim takes every heap lock for its restorability scan) sees the
             * stale bytes. At most clean_bytes (256 KiB for the shim) are written here. */
            size_t lim = h->o.clean_bytes, end = nu < lim ? nu : lim;
            if (!zero && end > bi.size)
                memset((char *)p + bi.size, 0, end - bi.size);
        }
        pthread_mutex_unlock(&h->lock);
        if (rc == 0) {
            hand_out(h, p, n, nu, 1);
            return p;
        }
    }
    void *q = heap_malloc(h, n);
    if (!q)
        return NULL;
    memcpy(q, p, n < bi.size ? n : bi.size);
    heap_free(h, p);
    return q;
}

/* ---- cache maintenance ----------------------------------------------------------------------- */

/* heap_tcache_flush_all -- return every cache's blocks and destroy the caches; keep_current:
 * except the calling thread's (fork child: the other threads do not exist there). Called
 * while no other thread uses the heap (close, fork child). */
void heap_tcache_flush_all(struct heap *h, int keep_current)
{
    struct heap_tcache *tc = h->tcaches, *next;
    pthread_t self = pthread_self();
    for (; tc; tc = next) {
        next = tc->next;
        if (keep_current && pthread_equal(tc->owner, self))
            continue;
        tcache_destroy(h, tc);
    }
}

/* heap_tcache_forget_all -- heap closing: flush and destroy all caches */
void heap_tcache_forget_all(struct heap *h)
{
    heap_tcache_flush_all(h, 0);
    if (tls_last_id == h->id)
        tls_last_id = 0;
    for (int i = 0; i < TLS_SLOTS; i++)
        if (tls_slots[i].id == h->id)
            tls_slots[i].id = 0;
}

/* heap_registry_add -- record an open heap for thread-exit flushing; 0 or EMFILE */
int heap_registry_add(struct heap *h)
{
    pthread_mutex_lock(&reg_lock);
    for (int r = 0; r < REG_MAX; r++)
        if (!open_heaps[r]) {
            open_heaps[r] = h;
            pthread_mutex_unlock(&reg_lock);
            return 0;
        }
    pthread_mutex_unlock(&reg_lock);
    return EMFILE;
}

/* heap_registry_remove -- forget a closing heap */
void heap_registry_remove(struct heap *h)
{
    pthread_mutex_lock(&reg_lock);
    for (int r = 0; r < REG_MAX; r++)
        if (open_heaps[r] == h)
            open_heaps[r] = NULL;
    /* an exiting thread may be flushing its cache of h right now: h must outlive that */
    while (h->exit_flushes > 0)
        pthread_cond_wait(&reg_idle, &reg_lock);
    pthread_mutex_unlock(&reg_lock);
}

/* heap_registry_fork_child -- reset the registry lock in a fork child */
void heap_registry_fork_child(void)
{
    pthread_mutex_init(&reg_lock, NULL);
    pthread_cond_init(&reg_idle, NULL);
    for (int r = 0; r < REG_MAX; r++) /* the flushing threads do not exist in the child */
        if (open_heaps[r])
            open_heaps[r]->exit_flushes = 0;
}
