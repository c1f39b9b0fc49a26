/* SPDX-License-Identifier: MIT */
/*
 * heap_page.c -- the page level of the heap: chunks, free spans, runs, large and huge blocks,
 * purging and punchable ranges. Every function here runs under the page lock (h->lock);
 * run lists belong to arenas and are changed under the arena's lock by heap_alloc.c.
 *
 * Free spans are kept coalesced (no two adjacent free spans in a chunk) and indexed by exact
 * length in volatile bins (h->bins, linked through h->vp); allocation is best fit. Crash safety
 * comes from the lock: a commit is taken under heap_lock_all, so it never sees a half-written
 * span; the order of writes inside one operation therefore does not matter for recovery.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "heap_int.h"

/* ---- bins of free spans ---------------------------------------------------------------- */

/* bin_insert -- link free span head gp (npages) into its bin */
static void bin_insert(struct heap *h, uint32_t gp, uint32_t npages)
{
    struct heap_vpage *v = &h->vp[gp];
    v->prev = HEAP_NIL;
    v->next = h->bins[npages];
    if (v->next != HEAP_NIL)
        h->vp[v->next].prev = gp;
    h->bins[npages] = gp;
    v->inlist = 1;
    h->binmask[npages / 64] |= 1ull << (npages % 64);
}

/* bin_remove -- unlink free span head gp (npages) from its bin */
static void bin_remove(struct heap *h, uint32_t gp, uint32_t npages)
{
    struct heap_vpage *v = &h->vp[gp];
    if (v->prev != HEAP_NIL)
        h->vp[v->prev].next = v->next;
    else
        h->bins[npages] = v->next;
    if (v->next != HEAP_NIL)
        h->vp[v->next].prev = v->prev;
    v->inlist = 0;
    if (h->bins[npages] == HEAP_NIL)
        h->binmask[npages / 64] &= ~(1ull << (npages % 64));
}

/* bin_find -- head of a free span of at least npages pages (smallest such bin), or NIL */
static uint32_t bin_find(struct heap *h, size_t npages)
{
    size_t nw = sizeof(h->binmask) / sizeof(h->binmask[0]);
    size_t w = npages / 64;
    if (w >= nw)
        return HEAP_NIL;
    uint64_t m = h->binmask[w] & (~0ull << (npages % 64));
    for (;;) {
        if (m)
            return h->bins[w * 64 + (size_t)__builtin_ctzll(m)];
        if (++w >= nw)
            return HEAP_NIL;
        m = h->binmask[w];
    }
}

/* ---- spans ----------------------------------------------------------------------------- */

/* span_write_free -- write the descriptors of free span [gp, gp+npages) */
static void span_write_free(struct heap *h, uint32_t gp, uint32_t npages, unsigned flags)
{
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    *pd = (struct heap_pdesc){.kind = PD_FREE, .flags = (uint8_t)flags, .npages = npages};
    if (npages > 1)
        pd[npages - 1] =
            (struct heap_pdesc){.kind = PD_FREE_TAIL, .npages = npages, .back = npages - 1};
}

/* span_write_used -- write descriptors of a RUN (cls) or LARGE span [gp, gp+npages) */
static void span_write_used(struct heap *h, uint32_t gp, uint32_t npages, unsigned kind,
                            unsigned cls)
{
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    /* Whole records are written: allocation bits start clear (they were clear anyway: free
   * pages never have bits set). Run interiors carry the class so free() reads one record. */
    pd[0] = (struct heap_pdesc){.kind = (uint8_t)kind, .cls = (uint16_t)cls, .npages = npages};
    for (uint32_t i = 1; i < npages; i++)
        pd[i] =
            (struct heap_pdesc){.kind = PD_INTERIOR, .cls = (uint16_t)cls, .back = i, .aux = kind};
}

/*
 * DEFERRED RELEASE. The shim's backing releases memory through the tracker, which a commit
 * holds through its log write and fdatasync: a free() that waited for it stalled the program
 * for the rest of the commit (up to 47 ms at interval:100ms). Where the heap can wait, it asks
 * with try_release, and EAGAIN leaves the memory resident and free: a free span stays dirty (a
 * later purge takes it), a free chunk range goes on h->deferred, which every later purge and
 * free of chunks retries. Releasing later is safe because only FREE memory is released, and
 * freeness is checked at that moment under the page lock: a deferred chunk that was reused
 * meanwhile is skipped (dropping its memory then would lose live data), and one freed again is
 * simply released. Resident free memory is bounded: at most HEAP_DEFER_MAX deferred chunk
 * ranges and twice the hard purge limit of dirty free pages; beyond that the heap waits.
 */

/* backing_release -- release [off, off+len): 0, EAGAIN (deferred: only with may_defer) or
 * another errno (memory stays resident) */
static int backing_release(struct heap *h, size_t off, size_t len, int may_defer)
{
    if (may_defer && h->b.try_release)
        return h->b.try_release(h->b.ctx, off, len);
    return h->b.release(h->b.ctx, off, len);
}

/* span_purge -- release the memory of free span gp now (it stays free); 0 or the errno of
 * backing_release, and then the span keeps its memory (nothing else depends on it) */
static int span_purge(struct heap *h, uint32_t gp, int may_defer)
{
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    size_t off = (size_t)gp << HEAP_PAGE_SHIFT;
    int rc = backing_release(h, off, (size_t)pd->npages << HEAP_PAGE_SHIFT, may_defer);
    if (rc != 0)
        return rc;
    h->purges++;
    pd->flags |= PDF_CLEAN;
    if (h->b.flags & HEAP_BACKING_ZERO_ON_RELEASE)
        pd->flags |= PDF_ZERO;
    h->dirty_pages -= h->vp[gp].nfree;
    h->vp[gp].nfree = 0;
    return 0;
}

/*
 * span_make_free -- return [gp, gp+npages) (ndirty of them resident) to the free pool,
 * coalescing with free neighbours in the same chunk. Returns the merged head.
 */
static uint32_t span_make_free(struct heap *h, uint32_t gp, uint32_t npages, unsigned flags,
                               uint32_t ndirty)
{
    uint32_t cpg = gp % HEAP_CHUNK_PAGES;
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    h->dirty_pages += ndirty;
    /* predecessor */
    if (cpg > HEAP_META_PAGES) {
        struct heap_pdesc *q = pd - 1;
        uint32_t head = HEAP_NIL;
        if (q->kind == PD_FREE && q->npages == 1)
            head = gp - 1;
        else if (q->kind == PD_FREE_TAIL && q->back + 1 + HEAP_META_PAGES <= cpg)
            head = gp - 1 - q->back;
        if (head != HEAP_NIL) {
            struct heap_pdesc *hp = heap_gp_pdesc(h, head);
            if (hp->kind == PD_FREE && head + hp->npages == gp) {
                bin_remove(h, head, hp->npages);
                flags = (flags & hp->flags & (PDF_ZERO | PDF_CLEAN)) |
                        ((flags | hp->flags) & PDF_PUNCH);
                ndirty += h->vp[head].nfree;
                npages += hp->npages;
                gp = head;
            }
        }
    }
    /* successor */
    uint32_t nx = gp + npages;
    if (nx % HEAP_CHUNK_PAGES != 0) {
        struct heap_pdesc *np = heap_gp_pdesc(h, nx);
        if (np->kind == PD_FREE) {
            bin_remove(h, nx, np->npages);
            flags =
                (flags & np->flags & (PDF_ZERO | PDF_CLEAN)) | ((flags | np->flags) & PDF_PUNCH);
            ndirty += h->vp[nx].nfree;
            npages += np->npages;
        }
    }
    if (ndirty)
        flags &= ~(unsigned)PDF_CLEAN;
    span_write_free(h, gp, npages, flags);
    h->vp[gp].nfree = ndirty;
    h->vp[gp].stamp = heap_now_ms();
    bin_insert(h, gp, npages);
    if (ndirty && npages >= HEAP_PURGE_EAGER_PAGES)
        (void)span_purge(h, gp, 1); /* deferred: it decays like any dirty span */
    return gp;
}

/*
 * span_take -- carve [gp + off, gp + off + n) out of free span gp; the lead and trail stay
 * free. Returns 0 (with *flags = the span's flags) or the reserve_space errno (span unchanged).
 */
static int span_take(struct heap *h, uint32_t gp, uint32_t off, uint32_t n, unsigned *flags)
{
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    uint32_t total = pd->npages, fl = pd->flags, ndirty = h->vp[gp].nfree;
    if ((fl & PDF_PUNCH) && h->b.reserve_space) {
        int rc = h->b.reserve_space(h->b.ctx, (size_t)(gp + off) << HEAP_PAGE_SHIFT,
                                    (size_t)n << HEAP_PAGE_SHIFT);
        if (rc)
            return rc;
    }
    bin_remove(h, gp, total);
    uint32_t lead = off, trail = total - off - n;
    /* Dirty pages are counted per span, not per page: keep what the remainder can hold. */
    uint32_t dlead = ndirty < lead ? ndirty : lead;
    uint32_t dtrail = ndirty - dlead < trail ? ndirty - dlead : trail;
    h->dirty_pages -= ndirty - dlead - dtrail;
    if (lead) {
        span_write_free(h, gp, lead, fl & ~(unsigned)(dlead ? PDF_CLEAN : 0));
        h->vp[gp].nfree = dlead;
        bin_insert(h, gp, lead);
    }
    if (trail) {
        uint32_t t = gp + off + n;
        span_write_free(h, t, trail, fl & ~(unsigned)(dtrail ? PDF_CLEAN : 0));
        h->vp[t].nfree = dtrail;
        bin_insert(h, t, trail);
    }
    *flags = fl;
    return 0;
}

/* ---- chunks ------------------------------------------------------------------------------ */

/* chunk_grow -- back n more chunks at the end; they become FREE|ZERO. 0 or error code. */
static int chunk_grow(struct heap *h, size_t n)
{
    size_t old = h->hdr->size, nsize = old + n * HEAP_CHUNK;
    if (nsize > h->reserve) {
        heap_reportf(h,
                     "heap reserve of %zu MiB at %p is exhausted (need %zu MiB): create the heap "
                     "with a larger reserve",
                     h->reserve >> 20, (void *)h->base, nsize >> 20);
        return HEAP_ERESERVE;
    }
    int rc = h->b.grow(h->b.ctx, nsize);
    if (rc) {
        heap_reportf(h,
                     "cannot grow the heap segment to %zu MiB: %s (free disk space or lower "
                     "the program's memory use)",
                     nsize >> 20, heap_strerror(rc));
        return rc;
    }
    for (size_t ci = old >> HEAP_CHUNK_SHIFT; ci < nsize >> HEAP_CHUNK_SHIFT; ci++)
        h->ct[ci] = (struct heap_chunk_ent){.kind = CK_FREE | CKF_ZERO, .n = 0};
    h->hdr->size = nsize;
    h->hdr->nchunks = nsize >> HEAP_CHUNK_SHIFT;
    return 0;
}

/* chunk_find_free -- first index of n FREE chunks with (base/CHUNK + i) % align == 0,
 * growing the backing if needed. 0 = none (error code in *err). */
static size_t chunk_find_free(struct heap *h, size_t n, size_t align, int *err)
{
    size_t nch = h->hdr->nchunks, bc = (size_t)(uintptr_t)h->base >> HEAP_CHUNK_SHIFT;
    size_t i = 1;
    while (i < nch) {
        if ((bc + i) % align != 0 || CK_KIND(h->ct[i].kind) != CK_FREE) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < nch && j - i < n && CK_KIND(h->ct[j].kind) == CK_FREE)
            j++;
        if (j - i == n)
            return i;
        if (j == nch)
            break; /* trailing free chunks: extend them below */
        i = j + 1;
    }
    /* Extend at the end, reusing trailing free chunks when aligned. */
    size_t start = nch;
    while (start > 1 && CK_KIND(h->ct[start - 1].kind) == CK_FREE)
        start--;
    while ((bc + start) % align != 0)
        start++;
    if (start + n > nch) {
        int rc = chunk_grow(h, start + n - nch);
        if (rc) {
            *err = rc;
            return 0;
        }
    }
    return start;
}

/* chunks_prepare -- make FREE chunks [ci, ci+n) reusable: re-reserve punched file space. */
static int chunks_prepare(struct heap *h, size_t ci, size_t n, int *zero)
{
    *zero = 1;
    for (size_t i = ci; i < ci + n; i++) {
        if ((h->ct[i].kind & CKF_PUNCH) && h->b.reserve_space) {
            int rc = h->b.reserve_space(h->b.ctx, i << HEAP_CHUNK_SHIFT, HEAP_CHUNK);
            if (rc)
                return rc;
        }
        if (!(h->ct[i].kind & CKF_ZERO))
            *zero = 0;
    }
    return 0;
}

/* chunk_new_normal -- turn a free chunk into a NORMAL chunk with one free span. 0 or error. */
static int chunk_new_normal(struct heap *h)
{
    int err = ENOMEM, zero;
    size_t ci = chunk_find_free(h, 1, 1, &err);
    if (!ci)
        return err;
    int rc = chunks_prepare(h, ci, 1, &zero);
    if (rc)
        return rc;
    if (!zero)
        memset(heap_chunk_addr(h, ci), 0, HEAP_META_PAGES * HEAP_PAGE);
    struct heap_pdesc *pd = heap_pdesc_of(h, ci);
    for (uint32_t i = 0; i < HEAP_META_PAGES; i++)
        pd[i] = (struct heap_pdesc){.kind = PD_META, .npages = HEAP_META_PAGES, .back = i};
    pd[0].aux = HEAP_META_CANARY;
    uint32_t gp = (uint32_t)(ci * HEAP_CHUNK_PAGES + HEAP_META_PAGES);
    /* A free chunk's memory was released or is fresh: zero if the backing says so. Not marked
   * CLEAN: that would offer its file space for punching, and space just reserved by grow is
   * about to be used (punching it would only make the next carve reserve it again). */
    unsigned fl = zero ? PDF_ZERO : 0;
    h->ct[ci] = (struct heap_chunk_ent){.kind = CK_NORMAL, .n = 0};
    h->nchunks_used++;
    span_make_free(h, gp, HEAP_DATA_PAGES, fl, 0);
    return 0;
}

/* ---- large blocks and runs ---------------------------------------------------------------- */

/* span_alloc -- carve npages aligned to align_pages, as a RUN (cls) or LARGE span. */
static uint32_t span_alloc(struct heap *h, size_t npages, size_t align_pages, unsigned kind,
                           unsigned cls, int *zero)
{
    size_t need = npages + align_pages - 1;
    if (need > HEAP_DATA_PAGES)
        return HEAP_NIL;
    uint32_t gp = bin_find(h, need);
    if (gp == HEAP_NIL) {
        if (chunk_new_normal(h) != 0)
            return HEAP_NIL;
        gp = bin_find(h, need);
        if (gp == HEAP_NIL)
            return HEAP_NIL;
    }
    uint32_t off = (uint32_t)((align_pages - gp % align_pages) % align_pages);
    unsigned fl;
    if (span_take(h, gp, off, (uint32_t)npages, &fl) != 0)
        return HEAP_NIL;
    gp += off;
    span_write_used(h, gp, (uint32_t)npages, kind, cls);
    h->active_pages += npages;
    if (zero)
        *zero = (fl & PDF_ZERO) != 0;
    return gp;
}

/* heap_page_alloc_large -- a LARGE block of npages; *zero = its pages are known zero */
void *heap_page_alloc_large(struct heap *h, size_t npages, size_t align_pages, int *zero)
{
    uint32_t gp = span_alloc(h, npages, align_pages, PD_LARGE, 0, zero);
    return gp == HEAP_NIL ? NULL : heap_gp_addr(h, gp);
}

/* heap_page_free_large -- free the LARGE block whose head is gp */
void heap_page_free_large(struct heap *h, uint32_t gp)
{
    uint32_t n = heap_gp_pdesc(h, gp)->npages;
    h->active_pages -= n;
    span_make_free(h, gp, n, 0, n);
    heap_page_maybe_purge(h);
}

/* heap_page_resize_large -- grow or shrink LARGE block gp in place to npages; 0 or ENOMEM.
 * *zero: the pages it gained (if any) are known zero */
int heap_page_resize_large(struct heap *h, uint32_t gp, size_t npages, int *zero)
{
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    uint32_t old = pd->npages;
    *zero = 1;
    if (npages == old)
        return 0;
    if (npages < old) {
        pd->npages = (uint32_t)npages;
        h->active_pages -= old - npages;
        span_make_free(h, gp + (uint32_t)npages, old - (uint32_t)npages, 0, old - (uint32_t)npages);
        heap_page_maybe_purge(h);
        return 0;
    }
    uint32_t nx = gp + old, add = (uint32_t)npages - old;
    if ((gp % HEAP_CHUNK_PAGES) + npages > HEAP_CHUNK_PAGES)
        return ENOMEM;
    struct heap_pdesc *np = heap_gp_pdesc(h, nx);
    if (np->kind != PD_FREE || np->npages < add)
        return ENOMEM;
    unsigned fl;
    if (span_take(h, nx, 0, add, &fl) != 0)
        return ENOMEM;
    *zero = (fl & PDF_ZERO) != 0;
    for (uint32_t i = old; i < npages; i++)
        pd[i] = (struct heap_pdesc){.kind = PD_INTERIOR, .back = i, .aux = PD_LARGE};
    pd->npages = (uint32_t)npages;
    h->active_pages += add;
    return 0;
}

/* heap_page_new_run -- a fresh run of class cls, all blocks available (not linked); or NIL */
uint32_t heap_page_new_run(struct heap *h, unsigned cls)
{
    const struct heap_class *c = &heap_classes[cls];
    int zero;
    uint32_t gp = span_alloc(h, c->npages, 1, PD_RUN, cls, &zero);
    if (gp == HEAP_NIL)
        return HEAP_NIL;
    size_t ci = gp / HEAP_CHUNK_PAGES, w0 = (gp % HEAP_CHUNK_PAGES) * (HEAP_BITS_PER_PAGE / 64);
    size_t nw = (size_t)c->npages * (HEAP_BITS_PER_PAGE / 64);
    uint64_t *av = heap_avail_of(h, ci) + w0;
    for (size_t i = 0; i < nw; i++) {
        size_t lo = i * 64;
        av[i] = lo + 64 <= c->nblocks ? ~0ull
                : lo >= c->nblocks    ? 0
                                      : (1ull << (c->nblocks - lo)) - 1;
    }
    h->vp[gp].nfree = c->nblocks;
    h->vp[gp].inlist = 0;
    h->vp[gp].zero_from = zero ? 0 : c->nblocks;
    return gp;
}

/* heap_page_free_run -- an entirely available, unlinked run goes back to the free pool */
void heap_page_free_run(struct heap *h, uint32_t gp)
{
    struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
    uint32_t n = pd->npages;
    h->active_pages -= n;
    span_make_free(h, gp, n, 0, n);
    heap_page_maybe_purge(h);
}

/* heap_page_run_link -- add run gp to a list of runs with available blocks (arena lock) */
void heap_page_run_link(struct heap *h, uint32_t *list, uint32_t gp)
{
    struct heap_vpage *v = &h->vp[gp];
    v->prev = HEAP_NIL;
    v->next = *list;
    if (v->next != HEAP_NIL)
        h->vp[v->next].prev = gp;
    *list = gp;
    v->inlist = 1;
}

/* heap_page_run_unlink -- remove run gp from its list (arena lock) */
void heap_page_run_unlink(struct heap *h, uint32_t *list, uint32_t gp)
{
    struct heap_vpage *v = &h->vp[gp];
    if (v->prev != HEAP_NIL)
        h->vp[v->prev].next = v->next;
    else
        *list = v->next;
    if (v->next != HEAP_NIL)
        h->vp[v->next].prev = v->prev;
    v->inlist = 0;
}

/* ---- huge blocks --------------------------------------------------------------------------- */

/* heap_page_alloc_huge -- nchunks whole chunks, the first aligned to align_chunks */
void *heap_page_alloc_huge(struct heap *h, size_t nchunks, size_t align_chunks, int *zero)
{
    int err = ENOMEM;
    size_t ci = chunk_find_free(h, nchunks, align_chunks, &err);
    if (!ci)
        return NULL;
    if (chunks_prepare(h, ci, nchunks, zero) != 0)
        return NULL;
    for (size_t i = 1; i < nchunks; i++)
        h->ct[ci + i] = (struct heap_chunk_ent){.kind = CK_HUGE_TAIL, .n = (uint32_t)i};
    h->ct[ci] = (struct heap_chunk_ent){.kind = CK_HUGE, .n = (uint32_t)nchunks};
    h->nchunks_used += nchunks;
    return heap_chunk_addr(h, ci);
}

/* chunks_release -- release the memory of FREE chunks [ci, ci+n); 0, EAGAIN or an errno */
static int chunks_release(struct heap *h, size_t ci, size_t n, int may_defer)
{
    int rc = backing_release(h, ci << HEAP_CHUNK_SHIFT, n << HEAP_CHUNK_SHIFT, may_defer);
    if (rc != 0)
        return rc;
    h->purges++;
    if (h->b.flags & HEAP_BACKING_ZERO_ON_RELEASE)
        for (size_t i = ci; i < ci + n; i++)
            h->ct[i].kind |= CKF_ZERO;
    return 0;
}

/* deferred_retry -- release the deferred chunk ranges still FREE (DEFERRED RELEASE); with
 * wait, through release (nothing stays deferred), else only while try_release succeeds */
static void deferred_retry(struct heap *h, int wait)
{
    while (h->ndeferred > 0) {
        unsigned k = h->ndeferred - 1;
        size_t ci = h->deferred[k].ci, end = ci + h->deferred[k].n;
        while (ci < end) {
            if (CK_KIND(h->ct[ci].kind) != CK_FREE) {
                ci++; /* reused since: its memory is live */
                continue;
            }
            size_t j = ci;
            while (j < end && CK_KIND(h->ct[j].kind) == CK_FREE)
                j++;
            if (chunks_release(h, ci, j - ci, !wait) == EAGAIN) {
                h->deferred[k].n = (uint32_t)(end - ci);
                h->deferred[k].ci = (uint32_t)ci;
                return;
            }
            ci = j;
        }
        h->ndeferred = k;
    }
}

/* deferred_add -- note FREE chunks [ci, ci+n) for a later release; 0, or -1 when the list is
 * full. Entries whose chunks were all reused are dropped first, and a range already noted is
 * not noted twice (a block freed, reused and freed again during one commit). */
static int deferred_add(struct heap *h, size_t ci, size_t n)
{
    for (unsigned k = 0; k < h->ndeferred;) {
        struct heap_deferred *d = &h->deferred[k];
        if (d->ci <= ci && ci + n <= (size_t)d->ci + d->n)
            return 0;
        int any_free = 0;
        for (size_t i = d->ci; i < (size_t)d->ci + d->n && !any_free; i++)
            any_free = CK_KIND(h->ct[i].kind) == CK_FREE;
        if (any_free)
            k++;
        else
            *d = h->deferred[--h->ndeferred];
    }
    if (h->ndeferred == HEAP_DEFER_MAX)
        return -1;
    h->deferred[h->ndeferred++] = (struct heap_deferred){(uint32_t)ci, (uint32_t)n};
    return 0;
}

/* chunks_free -- [ci, ci+n) become FREE; their memory is released now, or later (DEFERRED
 * RELEASE) if the backing is busy (file: see punch) */
static void chunks_free(struct heap *h, size_t ci, size_t n)
{
    for (size_t i = ci; i < ci + n; i++)
        h->ct[i] = (struct heap_chunk_ent){.kind = CK_FREE, .n = 0};
    h->nchunks_used -= n;
    deferred_retry(h, 0);
    if (chunks_release(h, ci, n, 1) == EAGAIN && deferred_add(h, ci, n) != 0)
        (void)chunks_release(h, ci, n, 0); /* the list is full: wait rather than keep more */
}

/* heap_page_free_huge -- free the HUGE block at chunk ci */
void heap_page_free_huge(struct heap *h, size_t ci)
{
    chunks_free(h, ci, h->ct[ci].n);
}

/* heap_page_resize_huge -- resize HUGE block ci in place to nchunks; 0 or ENOMEM. *zero: the
 * chunks it gained (if any) are known zero */
int heap_page_resize_huge(struct heap *h, size_t ci, size_t nchunks, int *zero)
{
    size_t old = h->ct[ci].n;
    *zero = 1;
    if (nchunks <= old) {
        if (nchunks < old)
            chunks_free(h, ci + nchunks, old - nchunks);
        h->ct[ci].n = (uint32_t)nchunks;
        return 0;
    }
    size_t end = ci + nchunks;
    if ((end << HEAP_CHUNK_SHIFT) > h->reserve)
        return ENOMEM;
    for (size_t i = ci + old; i < end && i < h->hdr->nchunks; i++)
        if (CK_KIND(h->ct[i].kind) != CK_FREE)
            return ENOMEM;
    if (end > h->hdr->nchunks && chunk_grow(h, end - h->hdr->nchunks) != 0)
        return ENOMEM;
    if (chunks_prepare(h, ci + old, nchunks - old, zero) != 0)
        return ENOMEM;
    for (size_t i = old; i < nchunks; i++)
        h->ct[ci + i] = (struct heap_chunk_ent){.kind = CK_HUGE_TAIL, .n = (uint32_t)i};
    h->ct[ci].n = (uint32_t)nchunks;
    h->nchunks_used += nchunks - old;
    return 0;
}

/* ---- purging ------------------------------------------------------------------------------ */

/* heap_now_ms -- coarse monotonic milliseconds (vDSO, a few ns) */
uint32_t heap_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* purge_down_to -- release dirty free spans, largest first, until dirty_pages <= target;
 * with min_age, only spans dirty for at least that many ms; with may_defer, stop at the
 * first EAGAIN (the next purge tries again) */
static void purge_down_to(struct heap *h, size_t target, uint32_t now, uint32_t min_age,
                          int may_defer)
{
    for (size_t b = HEAP_CHUNK_PAGES; b >= 1 && h->dirty_pages > target; b--) {
        if (!(h->binmask[b / 64] & (1ull << (b % 64))))
            continue;
        for (uint32_t gp = h->bins[b]; gp != HEAP_NIL && h->dirty_pages > target;
             gp = h->vp[gp].next)
            if (h->vp[gp].nfree && (!min_age || now - h->vp[gp].stamp >= min_age) &&
                span_purge(h, gp, may_defer) == EAGAIN)
                return;
    }
}

/*
 * heap_page_maybe_purge -- release resident free pages, with decay. Releasing every freed page
 * at once costs a syscall plus a page fault per page on reuse (~µs each), and with mixed sizes
 * freed pages are mostly reused within moments; so pages are released once idle for
 * HEAP_DECAY_MS, while a hard limit keeps the resident free pages to a few % of the heap.
 */
void heap_page_maybe_purge(struct heap *h)
{
    size_t soft = h->active_pages / HEAP_PURGE_SOFT, hard = h->active_pages / HEAP_PURGE_HARD;
    if (soft < HEAP_PURGE_MIN_PAGES)
        soft = HEAP_PURGE_MIN_PAGES;
    if (hard < 4 * HEAP_PURGE_MIN_PAGES)
        hard = 4 * HEAP_PURGE_MIN_PAGES;
    if (h->ndeferred)
        deferred_retry(h, 0);
    if (h->dirty_pages <= soft)
        return;
    uint32_t now = heap_now_ms();
    if (h->dirty_pages > hard) {
        /* past twice the hard limit, wait for the backing rather than keep more resident */
        purge_down_to(h, hard / 2 > soft ? hard / 2 : soft, now, 0, h->dirty_pages <= 2 * hard);
        return;
    }
    if (now - h->last_scan < HEAP_PURGE_SCAN_MS)
        return;
    h->last_scan = now;
    purge_down_to(h, soft, now, HEAP_DECAY_MS, 1);
}

/* heap_page_purge_all -- release every resident free page (waiting for the backing) */
void heap_page_purge_all(struct heap *h)
{
    deferred_retry(h, 1);
    purge_down_to(h, 0, 0, 0, 0);
}

/* heap_punch_collect -- report released free ranges, mark them maybe-punched */
int heap_punch_collect(struct heap *h, void (*cb)(void *arg, size_t off, size_t len), void *arg)
{
    for (size_t b = HEAP_PUNCH_MIN_PAGES; b <= HEAP_CHUNK_PAGES; b++) {
        if (!(h->binmask[b / 64] & (1ull << (b % 64))))
            continue;
        for (uint32_t gp = h->bins[b]; gp != HEAP_NIL; gp = h->vp[gp].next) {
            struct heap_pdesc *pd = heap_gp_pdesc(h, gp);
            if ((pd->flags & PDF_CLEAN) && !(pd->flags & PDF_PUNCH)) {
                pd->flags |= PDF_PUNCH;
                cb(arg, (size_t)gp << HEAP_PAGE_SHIFT, (size_t)b << HEAP_PAGE_SHIFT);
            }
        }
    }
    for (size_t ci = 1; ci < h->hdr->nchunks; ci++) {
        uint32_t k = h->ct[ci].kind;
        if (CK_KIND(k) == CK_FREE && !(k & CKF_PUNCH)) {
            h->ct[ci].kind = k | CKF_PUNCH;
            cb(arg, ci << HEAP_CHUNK_SHIFT, HEAP_CHUNK);
        }
    }
    return 0;
}

/* ---- volatile state ------------------------------------------------------------------------ */

/* heap_page_init_volatile -- map the volatile side tables (lazily backed) and empty the bins */
int heap_page_init_volatile(struct heap *h)
{
    size_t npg = h->reserve >> HEAP_PAGE_SHIFT;
    size_t vsz = npg * sizeof(struct heap_vpage);
    size_t asz = (h->reserve / HEAP_GRANULE) / 8;
    h->volsize = vsz + asz;
    void *m = mmap(NULL, h->volsize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return errno;
    h->vp = m;
    h->avail = (uint64_t *)((char *)m + vsz);
    for (size_t i = 0; i <= HEAP_CHUNK_PAGES; i++)
        h->bins[i] = HEAP_NIL;
    memset(h->binmask, 0, sizeof(h->binmask));
    for (size_t a = 0; a < HEAP_NARENAS; a++)
        for (size_t i = 0; i < HEAP_NCLASS; i++)
            h->arenas[a].runs[i] = HEAP_NIL;
    return 0;
}

/* heap_page_fini_volatile -- unmap the volatile side tables */
void heap_page_fini_volatile(struct heap *h)
{
    if (h->vp)
        munmap(h->vp, h->volsize);
    h->vp = NULL;
}

/* rebuild_count_chunk -- pass 1 over a normal chunk: validate the tiling of its pages, turn
 * runs with no block allocated into free spans, and count what is allocated */
static int rebuild_count_chunk(struct heap *h, size_t ci)
{
    struct heap_pdesc *pd = heap_pdesc_of(h, ci);
    uint32_t base_gp = (uint32_t)(ci * HEAP_CHUNK_PAGES);
    for (uint32_t p = HEAP_META_PAGES; p < HEAP_CHUNK_PAGES;) {
        uint32_t n = pd[p].npages;
        if (n == 0 || p + n > HEAP_CHUNK_PAGES)
            return HEAP_ECORRUPT;
        if (pd[p].kind == PD_RUN) {
            if (pd[p].cls >= HEAP_NCLASS || heap_classes[pd[p].cls].npages != n)
                return HEAP_ECORRUPT;
            const struct heap_class *c = &heap_classes[pd[p].cls];
            uint64_t *av = heap_avail_of(h, ci) + p * (HEAP_BITS_PER_PAGE / 64);
            memset(av, 0, (size_t)n * HEAP_BITS_PER_PAGE / 8);
            uint32_t used = 0;
            char *cb = heap_chunk_addr(h, ci);
            for (uint32_t b = 0; b < c->nblocks; b++) {
                uint64_t mask, g = ((size_t)p * HEAP_PAGE + (size_t)b * c->size) / HEAP_GRANULE;
                if (*heap_bit_word(cb, g, &mask) & mask)
                    used++;
                else
                    av[b / 64] |= 1ull << (b % 64);
            }
            if (used == 0) {
                span_write_free(h, base_gp + p, n, 0);
            } else {
                /* which of its free blocks were never used is not recorded: none is zero */
                h->vp[base_gp + p].zero_from = c->nblocks;
                h->vp[base_gp + p].nfree = c->nblocks - used;
                h->active_pages += n;
                h->allocated += (int64_t)used * c->size;
                h->nallocated += used;
            }
        } else if (pd[p].kind == PD_LARGE) {
            h->active_pages += n;
            h->allocated += (int64_t)n << HEAP_PAGE_SHIFT;
            h->nallocated++;
        } else if (pd[p].kind != PD_FREE) {
            return HEAP_ECORRUPT;
        }
        p += n;
    }
    return 0;
}

/* rebuild_link_chunk -- pass 2 over a normal chunk: coalesce adjacent free spans, fill the bins
 * and the arenas' run lists */
static void rebuild_link_chunk(struct heap *h, size_t ci)
{
    struct heap_pdesc *pd = heap_pdesc_of(h, ci);
    uint32_t base_gp = (uint32_t)(ci * HEAP_CHUNK_PAGES);
    for (uint32_t p = HEAP_META_PAGES; p < HEAP_CHUNK_PAGES;) {
        uint32_t n = pd[p].npages;
        if (pd[p].kind == PD_FREE) {
            unsigned fl = pd[p].flags;
            uint32_t q = p + n;
            while (q < HEAP_CHUNK_PAGES && pd[q].kind == PD_FREE) {
                unsigned f2 = pd[q].flags;
                fl = (fl & f2 & (PDF_ZERO | PDF_CLEAN)) | ((fl | f2) & PDF_PUNCH);
                q += pd[q].npages;
            }
            n = q - p;
            uint32_t ndirty = (fl & PDF_CLEAN) ? 0 : n;
            span_write_free(h, base_gp + p, n, fl);
            h->vp[base_gp + p].nfree = ndirty;
            h->dirty_pages += ndirty;
            bin_insert(h, base_gp + p, n);
        } else if (pd[p].kind == PD_RUN) {
            /* spread the runs over the arenas */
            struct heap_vpage *v = &h->vp[base_gp + p];
            v->arena = (uint16_t)(h->next_arena++ % HEAP_NARENAS);
            v->inlist = 0;
            if (v->nfree)
                heap_page_run_link(h, &h->arenas[v->arena].runs[pd[p].cls], base_gp + p);
        }
        p += n;
    }
}

/*
 * heap_page_rebuild -- derive the volatile state from the persistent metadata at open:
 * run free counts and available bits from the allocation bitmaps, run lists, free span bins.
 * Runs with no allocated block (e.g. blocks that sat in thread caches at the crash) become
 * free spans, so nothing cached before a crash stays leaked. Defensive against bad metadata
 * even when the checker was skipped: returns HEAP_ECORRUPT rather than looping or crashing.
 */
int heap_page_rebuild(struct heap *h)
{
    for (size_t ci = 1; ci < h->hdr->nchunks; ci++) {
        uint32_t k = CK_KIND(h->ct[ci].kind);
        if (k == CK_HUGE) {
            h->nchunks_used += h->ct[ci].n;
            h->allocated += (int64_t)h->ct[ci].n << HEAP_CHUNK_SHIFT;
            h->nallocated++;
        }
        if (k != CK_NORMAL)
            continue;
        h->nchunks_used++;
        int rc = rebuild_count_chunk(h, ci);
        if (rc)
            return rc;
        rebuild_link_chunk(h, ci);
    }
    return 0;
}
