/* SPDX-License-Identifier: MIT */
/*
 * heap_walk.c -- visit every live block of a heap in address order (heap_walk, heap.h).
 *
 * Who asks: a tool that looks at a heap image as a whole, such as rvmutl's leak check, which
 * needs every block the program holds with its size. The walk reads only persistent metadata
 * (heap_format.h): the chunk table, the span heads of NORMAL chunks and the allocation bits of
 * runs. Blocks sitting in a thread cache are free there (their bit is clear), so the walk
 * sees exactly the blocks a restart would see as allocated.
 */
#include "heap_int.h"

/* walk_run -- the allocated blocks of the run whose head is page p of chunk ci */
static int walk_run(struct heap *h, size_t ci, const struct heap_pdesc *pd, uint32_t p,
                    heap_walk_fn fn, void *arg)
{
    const struct heap_class *c = &heap_classes[pd[p].cls];
    char *run = heap_chunk_addr(h, ci) + ((size_t)p << HEAP_PAGE_SHIFT);
    for (uint32_t b = 0; b < c->nblocks; b++) {
        size_t off = (size_t)b * c->size;
        size_t g = off / HEAP_GRANULE; /* granule from the run's first page */
        const struct heap_pdesc *d = &pd[p + g / HEAP_BITS_PER_PAGE];
        size_t gi = g % HEAP_BITS_PER_PAGE;
        if (!((__atomic_load_n(&d->bits[gi / 64], __ATOMIC_RELAXED) >> (gi % 64)) & 1))
            continue;
        int rc = fn(arg, run + off, c->size);
        if (rc)
            return rc;
    }
    return 0;
}

/* walk_normal -- the live blocks of NORMAL chunk ci: runs' allocated blocks, large blocks */
static int walk_normal(struct heap *h, size_t ci, heap_walk_fn fn, void *arg)
{
    const struct heap_pdesc *pd = heap_pdesc_of(h, ci);
    for (uint32_t p = HEAP_META_PAGES; p < HEAP_CHUNK_PAGES;) {
        const struct heap_pdesc *d = &pd[p];
        uint32_t n = d->npages;
        if (n == 0 || p + n > HEAP_CHUNK_PAGES)
            return HEAP_ECORRUPT; /* heap_check says where; the walk does not guess */
        int rc = 0;
        if (d->kind == PD_RUN && d->cls < HEAP_NCLASS)
            rc = walk_run(h, ci, pd, p, fn, arg);
        else if (d->kind == PD_LARGE)
            rc = fn(arg, heap_chunk_addr(h, ci) + ((size_t)p << HEAP_PAGE_SHIFT),
                    (size_t)n << HEAP_PAGE_SHIFT);
        if (rc)
            return rc;
        p += n;
    }
    return 0;
}

int heap_walk(struct heap *h, heap_walk_fn fn, void *arg)
{
    size_t nch = h->hdr->nchunks;
    for (size_t ci = 1; ci < nch; ci++) {
        uint32_t kind = CK_KIND(h->ct[ci].kind);
        int rc = 0;
        if (kind == CK_NORMAL) {
            rc = walk_normal(h, ci, fn, arg);
        } else if (kind == CK_HUGE) {
            size_t n = h->ct[ci].n;
            if (n == 0 || ci + n > nch)
                return HEAP_ECORRUPT;
            rc = fn(arg, heap_chunk_addr(h, ci), n << HEAP_CHUNK_SHIFT);
            ci += n - 1;
        }
        if (rc)
            return rc;
    }
    return 0;
}
