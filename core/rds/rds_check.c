/* SPDX-License-Identifier: MIT */
/*
 * rds_check.c -- the RDS heap checker: validate a heap image against rds_format.h and
 * describe the first damage found, with its address.
 *
 * It reads only, works on any copy of the heap's bytes (the live heap, or the heap region
 * read from a segment file by rvmutl), and trusts nothing: every pointer is checked before
 * it is followed, and list walks are bounded by the number of blocks, so a damaged or
 * hostile heap yields a message, never a crash or a hang.
 * Checks: header (version, chunk size, list count, maxlist, length, list guards); the
 * physical walk (every block has a known type, a size that keeps it inside the heap, and
 * its end guard); the free lists (each entry is a free block, prev links match, the block
 * is on the list its size belongs on, lists above maxlist are empty, no block twice); and
 * that every free block is on a list. Byte counters that disagree are noted, not damage.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rds_int.h"

struct chk {
    const char *img;
    uintptr_t vm, first, end; /* VM addresses */
    unsigned long chunk, nchunks;
    unsigned char *isfree; /* one byte per chunk: a free block starts here */
    char *msg;
    size_t msglen;
};

/* bad -- record the first damage */
static int bad(struct chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct chk *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return -1;
}

/* at -- the image bytes of VM address p (caller checked the range) */
static const void *at(const struct chk *c, uintptr_t p)
{
    return c->img + (p - c->vm);
}

/* check_header -- header fields and list guards; fills the geometry */
static int check_header(struct chk *c, const rds_heap_hdr_t *h, unsigned long maplen)
{
    if (maplen < sizeof(*h))
        return bad(c, "RDS heap at %#lx: region of %lu bytes is too small for a heap header",
                   (unsigned long)c->vm, maplen);
    if (strncmp(h->version, RDS_HEAP_VERSION, RDS_VERSION_MAX) != 0)
        return bad(c, "RDS heap at %#lx: version \"%.79s\" is not \"%s\": not an RDS heap",
                   (unsigned long)c->vm, h->version, RDS_HEAP_VERSION);
    if (h->chunk_size < RDS_MIN_CHUNK_SIZE || h->chunk_size % sizeof(char *) != 0)
        return bad(c, "RDS heap at %#lx: header field chunk_size %lu is invalid",
                   (unsigned long)c->vm, h->chunk_size);
    if (h->nlists < 1 || h->maxlist < 1 || h->maxlist > h->nlists)
        return bad(c, "RDS heap at %#lx: header fields nlists %lu / maxlist %lu are invalid",
                   (unsigned long)c->vm, h->nlists, h->maxlist);
    if (h->heaplength > maplen ||
        rds_geometry(c->vm, h->heaplength, h->chunk_size, h->nlists, &c->first, &c->end))
        return bad(c,
                   "RDS heap at %#lx: header field heaplength %lu does not fit the region "
                   "(%lu bytes) and %lu lists",
                   (unsigned long)c->vm, h->heaplength, maplen, h->nlists);
    c->chunk = h->chunk_size;
    c->nchunks = (c->end - c->first) / c->chunk;
    for (unsigned long i = 1; i <= h->nlists; i++)
        if (h->lists[i].guard != FREE_LIST_GUARD)
            return bad(
                c, "RDS heap at %#lx: free list %lu (at %#lx) has a bad guard %#lx",
                (unsigned long)c->vm, i,
                (unsigned long)(c->vm + offsetof(rds_heap_hdr_t, lists) + i * sizeof(rds_list_t)),
                h->lists[i].guard);
    return 0;
}

/* walk_blocks -- the physical walk from the first block to blocks_end */
static int walk_blocks(struct chk *c, struct rds_check_stats *st)
{
    uintptr_t p = c->first;
    while (p < c->end) {
        const rds_block_t *b = at(c, p);
        unsigned long idx = (p - c->first) / c->chunk;
        if (b->type != FREE_GUARD && b->type != ALLOC_GUARD)
            return bad(c,
                       "RDS block at %#lx (chunk %lu): bad type guard %#lx; the heap is "
                       "damaged here (something wrote over this block's header)",
                       (unsigned long)p, idx, b->type);
        if (b->size == 0 || b->size > c->nchunks - idx)
            return bad(c,
                       "RDS block at %#lx (chunk %lu): size %lu chunks runs past the heap "
                       "(%lu chunks left)",
                       (unsigned long)p, idx, b->size, c->nchunks - idx);
        uintptr_t next = p + b->size * c->chunk;
        const rds_guard_t *g = at(c, next - sizeof(rds_guard_t));
        if (*g != END_GUARD)
            return bad(c,
                       "RDS block at %#lx (chunk %lu, %s, %lu chunks): end guard at %#lx "
                       "is %#lx, not %#lx (something wrote past the end of this block)",
                       (unsigned long)p, idx, b->type == FREE_GUARD ? "free" : "allocated", b->size,
                       (unsigned long)(next - sizeof(rds_guard_t)), *g, END_GUARD);
        st->nblocks++;
        if (b->type == FREE_GUARD) {
            c->isfree[idx] = 1;
            st->nfree++;
            st->free_bytes += b->size * c->chunk;
            if (b->size * c->chunk > st->largest_free)
                st->largest_free = b->size * c->chunk;
        } else {
            st->nalloc++;
            st->alloc_bytes += b->size * c->chunk;
        }
        p = next;
    }
    return 0;
}

/* walk_list -- list i: entries are unlisted free blocks, prev links match, sizes belong */
static int walk_list(struct chk *c, const rds_heap_hdr_t *h, unsigned long i, unsigned long *listed)
{
    uintptr_t prev = 0;
    for (uintptr_t p = (uintptr_t)h->lists[i].head; p != 0;) {
        unsigned long idx = (p - c->first) / c->chunk;
        if (p < c->first || p >= c->end || (p - c->first) % c->chunk != 0 || !c->isfree[idx])
            return bad(c,
                       "RDS free list %lu: entry %#lx (after %#lx) is not a free block, or "
                       "is listed twice",
                       i, (unsigned long)p, (unsigned long)prev);
        const rds_block_t *b = at(c, p);
        if ((uintptr_t)b->prev != prev)
            return bad(c, "RDS free block at %#lx on list %lu: prev link %#lx should be %#lx",
                       (unsigned long)p, i, (unsigned long)(uintptr_t)b->prev, (unsigned long)prev);
        if (i > h->maxlist || (i < h->maxlist && b->size != i) || (i == h->maxlist && b->size < i))
            return bad(c,
                       "RDS free block at %#lx (%lu chunks) is on list %lu, where it does "
                       "not belong (maxlist %lu)",
                       (unsigned long)p, b->size, i, h->maxlist);
        c->isfree[idx] = 0; /* a second visit (duplicate or cycle) fails above */
        (*listed)++;
        prev = p;
        p = (uintptr_t)b->next;
    }
    return 0;
}

/* unlisted -- the first free block found by the walk but on no list */
static int unlisted(struct chk *c)
{
    for (unsigned long i = 0; i < c->nchunks; i++)
        if (c->isfree[i])
            return bad(c,
                       "RDS free block at %#lx is on no free list (lost space, or a list "
                       "was cut)",
                       (unsigned long)(c->first + i * c->chunk));
    return 0;
}

int rds_check_image(const char *img, unsigned long maplen, uintptr_t vmaddr,
                    struct rds_check_stats *out, char *msg, size_t msglen)
{
    struct chk c = {.img = img, .vm = vmaddr, .msg = msg, .msglen = msglen};
    struct rds_check_stats st;
    memset(&st, 0, sizeof(st));
    snprintf(msg, msglen, "consistent");
    const rds_heap_hdr_t *h = (const rds_heap_hdr_t *)img;
    if (check_header(&c, h, maplen))
        return -1;
    c.isfree = calloc(c.nchunks, 1);
    if (c.isfree == NULL)
        return bad(&c, "RDS check: out of memory for %lu chunks", c.nchunks);
    unsigned long listed = 0;
    int rc = walk_blocks(&c, &st);
    for (unsigned long i = 1; rc == 0 && i <= h->nlists; i++)
        rc = walk_list(&c, h, i, &listed);
    if (rc == 0)
        rc = unlisted(&c);
    free(c.isfree);
    st.stats_mismatch = h->stats.freebytes != (unsigned)st.free_bytes ||
                        h->stats.mallocbytes != (unsigned)st.alloc_bytes;
    if (out != NULL)
        *out = st;
    return rc;
}
