/* SPDX-License-Identifier: MIT */
/*
 * rds_lists.c -- the quick-fit free lists of an RDS heap: unlink, push, get a block of n
 * chunks (exact list or split of a larger block), merge with following free blocks,
 * coalesce the whole heap.
 *
 * Crash safety: every byte written here is first declared with rvm_set_range in the
 * caller's transaction (restore mode), so a crash anywhere leaves the segment as of the last
 * commit and an abort restores memory. The order of writes within a transaction therefore
 * does not matter for recovery; what matters is that no write escapes a declared range.
 */
#include <string.h>

#include "rds_int.h"

#define HDR (rds_h.hdr)

/* rds_list_ok -- check a list header's guard */
int rds_list_ok(unsigned long i, int *err)
{
    if (HDR->lists[i].guard != FREE_LIST_GUARD)
        return rds_fail(err, ECORRUPT,
                        "RDS heap at %p: free list %lu (header at %p) has a "
                        "bad guard %#lx; the heap header is damaged (run rvmutl rds-check)",
                        (void *)HDR, i, (void *)&HDR->lists[i], HDR->lists[i].guard);
    return 0;
}

/* bad_link -- a list pointer that does not lead to a free block */
static int bad_link(int *err, const char *what, const void *at, const void *to)
{
    return rds_fail(err, ECORRUPT,
                    "RDS heap: %s at %p points to %p, which is not a free "
                    "block of this heap; the heap is damaged (run rvmutl rds-check)",
                    what, at, to);
}

/* free_ok -- bp may be followed as a free block */
static int free_ok(const rds_block_t *bp)
{
    return rds_blk_valid(bp) && bp->type == FREE_GUARD;
}

/* rds_unlink -- take bp off list */
int rds_unlink(rds_list_t *list, rds_block_t *bp, rvm_tid_t *tid, int *err)
{
    rds_block_t *prev = bp->prev, *next = bp->next;
    if (next != NULL && !free_ok(next))
        return bad_link(err, "next link of free block", bp, next);
    if (bp == list->head) {
        if (rds_range(tid, &list->head, sizeof(list->head), err))
            return -1;
        list->head = next;
    } else {
        if (prev == NULL || !free_ok(prev) || prev->next != bp)
            return bad_link(err, "prev link of free block", bp, prev);
        if (rds_range(tid, &prev->next, sizeof(prev->next), err))
            return -1;
        prev->next = next;
    }
    if (next != NULL) {
        if (rds_range(tid, &next->prev, sizeof(next->prev), err))
            return -1;
        next->prev = prev;
    }
    return 0;
}

/* rds_push -- put free block bp at the head of the list its size belongs on */
int rds_push(rds_block_t *bp, rvm_tid_t *tid, int *err)
{
    unsigned long i = rds_list_of(bp->size);
    if (rds_list_ok(i, err))
        return -1;
    rds_list_t *list = &HDR->lists[i];
    rds_block_t *old = list->head;
    if (old != NULL && !free_ok(old))
        return bad_link(err, "head of free list", list, old);
    if (rds_range(tid, &bp->prev, 2 * sizeof(bp->prev), err))
        return -1;
    bp->prev = NULL;
    bp->next = old;
    if (old != NULL) {
        if (rds_range(tid, &old->prev, sizeof(old->prev), err))
            return -1;
        old->prev = bp;
    }
    if (rds_range(tid, &list->head, sizeof(list->head), err))
        return -1;
    list->head = bp;
    return 0;
}

/* rds_get_block -- a free block of exactly n chunks, off every list (stats range declared) */
rds_block_t *rds_get_block(unsigned long n, rvm_tid_t *tid, int *err)
{
    unsigned long i = rds_list_of(n);
    if (rds_list_ok(i, err))
        return NULL;
    rds_block_t *head = HDR->lists[i].head;
    if (head != NULL && !free_ok(head)) {
        bad_link(err, "head of free list", &HDR->lists[i], head);
        return NULL;
    }
    if (head == NULL || head->size != n) {
        if (i < HDR->maxlist)
            HDR->stats.misses++;
        else
            HDR->stats.large_misses++;
        return rds_split(n, tid, err);
    }
    if (i < HDR->maxlist)
        HDR->stats.hits++;
    else
        HDR->stats.large_hits++;
    return rds_unlink(&HDR->lists[i], head, tid, err) ? NULL : head;
}

/* best_fit -- the smallest block of >= n chunks on list (stops at an exact fit); NULL if
 * none, *bad set if a link is damaged */
static rds_block_t *best_fit(rds_list_t *list, unsigned long n, int *bad)
{
    rds_block_t *best = NULL;
    unsigned long steps = 0, limit = (unsigned long)(rds_h.end - rds_h.first) / rds_h.chunk;
    for (rds_block_t *bp = list->head; bp != NULL; bp = bp->next) {
        if (!free_ok(bp) || ++steps > limit) { /* a cycle is damage too */
            *bad = 1;
            return bp;
        }
        if (bp->size >= n && (best == NULL || bp->size < best->size)) {
            best = bp;
            if (bp->size == n)
                break;
        }
    }
    return best;
}

/* pick_list -- the list to split from: a list of a multiple of n below maxlist if one is
 * non-empty (keeps the big blocks whole), else maxlist */
static rds_list_t *pick_list(unsigned long n)
{
    for (unsigned long i = 2 * n; i < HDR->maxlist; i += n)
        if (HDR->lists[i].head != NULL)
            return &HDR->lists[i];
    return &HDR->lists[HDR->maxlist];
}

/* shrink_maxlist -- the maxlist list ran empty: lower maxlist to the highest non-empty
 * list above n; coalesce if none is left */
static int shrink_maxlist(unsigned long n, rvm_tid_t *tid, int *err)
{
    if (rds_range(tid, &HDR->maxlist, sizeof(HDR->maxlist), err))
        return -1;
    HDR->stats.large_list++;
    while (HDR->maxlist > n && HDR->maxlist > 1 && HDR->lists[HDR->maxlist].head == NULL)
        HDR->maxlist--;
    if (HDR->lists[HDR->maxlist].head == NULL)
        return rds_coalesce(tid, err);
    return 0;
}

/* carve -- cut n chunks off the tail of free block bp (on list) and return them as a
 * free-typed block on no list; the rest stays free, moved to its new list if needed */
static rds_block_t *carve(rds_list_t *list, rds_block_t *bp, unsigned long n, rvm_tid_t *tid,
                          int *err)
{
    if (bp->size == n)
        return rds_unlink(list, bp, tid, err) ? NULL : bp;
    unsigned long rest = bp->size - n;
    rds_block_t *tail = (rds_block_t *)((char *)bp + rest * rds_h.chunk);
    if (rds_range(tid, &bp->size, sizeof(bp->size), err))
        return NULL;
    bp->size = rest;
    if (rds_range(tid, rds_blk_end(bp), sizeof(rds_guard_t), err))
        return NULL;
    *rds_blk_end(bp) = END_GUARD;
    if (rds_range(tid, tail, 2 * sizeof(unsigned long), err))
        return NULL;
    tail->type = FREE_GUARD;
    tail->size = n;
    if (rest < HDR->maxlist && (rds_unlink(list, bp, tid, err) || rds_push(bp, tid, err)))
        return NULL;
    return tail;
}

/* rds_split -- a block of n chunks carved from a larger free block; coalesces once when
 * nothing fits; ENO_ROOM if still nothing does */
rds_block_t *rds_split(unsigned long n, rvm_tid_t *tid, int *err)
{
    if (rds_list_ok(HDR->maxlist, err))
        return NULL;
    if (HDR->lists[HDR->maxlist].head == NULL && shrink_maxlist(n, tid, err))
        return NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        rds_list_t *list = pick_list(n);
        int bad = 0;
        rds_block_t *bp = best_fit(list, n, &bad);
        if (bad) {
            bad_link(err, "free list", list, bp);
            return NULL;
        }
        if (bp != NULL)
            return carve(list, bp, n, tid, err);
        if (attempt == 0 && rds_coalesce(tid, err))
            return NULL;
    }
    rds_fail(err, ENO_ROOM,
             "RDS heap at %p: no free block of %lu chunks (%lu bytes) even "
             "after coalescing; the heap is full",
             (void *)HDR, n, n * rds_h.chunk);
    return NULL;
}

/* rds_merge_next -- absorb every free block that physically follows free block bp (each is
 * taken off its list); bp itself stays where it is. *merged = 1 if any was absorbed. */
int rds_merge_next(rds_block_t *bp, rvm_tid_t *tid, int *err, int *merged)
{
    *merged = 0;
    for (;;) {
        rds_block_t *nb = (rds_block_t *)((char *)bp + bp->size * rds_h.chunk);
        if ((char *)nb >= rds_h.end || nb->type != FREE_GUARD)
            return 0;
        if (!rds_blk_valid(nb))
            return rds_fail(err, ECORRUPT,
                            "RDS heap: free block at %p (after the block at "
                            "%p) has a bad size %lu or end guard; the heap is damaged (run "
                            "rvmutl rds-check)",
                            (void *)nb, (void *)bp, nb->size);
        unsigned long li = rds_list_of(nb->size);
        if (rds_list_ok(li, err) || rds_unlink(&HDR->lists[li], nb, tid, err))
            return -1;
        rds_guard_t *end = rds_blk_end(bp);
        /* the old end guard and the absorbed header become interior bytes: zero them so
         * that a walk never mistakes them for a block */
        if (rds_range(tid, end, sizeof(*end) + sizeof(*nb), err) ||
            rds_range(tid, &bp->size, sizeof(bp->size), err))
            return -1;
        bp->size += nb->size;
        *end = 0;
        memset(nb, 0, sizeof(*nb));
        HDR->stats.merged++;
        *merged = 1;
    }
}

/* coalesce_list -- merge every block of list i with its free successors; move grown blocks
 * to their new list (blocks on the top list stay) */
static int coalesce_list(unsigned long i, rvm_tid_t *tid, int *err)
{
    if (rds_list_ok(i, err))
        return -1;
    unsigned long steps = 0, limit = (unsigned long)(rds_h.end - rds_h.first) / rds_h.chunk;
    rds_block_t *bp = HDR->lists[i].head;
    while (bp != NULL) {
        if (!free_ok(bp) || ++steps > limit)
            return bad_link(err, "free list", &HDR->lists[i], bp);
        int merged;
        if (rds_merge_next(bp, tid, err, &merged))
            return -1;
        if (!merged)
            HDR->stats.unmerged++;
        rds_block_t *next = bp->next; /* after the merge: it may have unlinked next */
        if (merged && i < HDR->nlists && rds_list_of(bp->size) != i &&
            (rds_unlink(&HDR->lists[i], bp, tid, err) || rds_push(bp, tid, err)))
            return -1;
        bp = next;
    }
    return 0;
}

/* redistribute -- maxlist back to nlists: move blocks larger than the old maxlist from its
 * list to theirs, then lower maxlist to the highest non-empty list */
static int redistribute(rvm_tid_t *tid, int *err)
{
    unsigned long old = HDR->maxlist;
    if (rds_range(tid, &HDR->maxlist, sizeof(HDR->maxlist), err))
        return -1;
    HDR->maxlist = HDR->nlists;
    rds_block_t *bp = HDR->lists[old].head;
    while (bp != NULL) {
        if (!free_ok(bp))
            return bad_link(err, "free list", &HDR->lists[old], bp);
        rds_block_t *next = bp->next;
        if (bp->size > old &&
            (rds_unlink(&HDR->lists[old], bp, tid, err) || rds_push(bp, tid, err)))
            return -1;
        bp = next;
    }
    while (HDR->lists[HDR->maxlist].head == NULL && HDR->maxlist > 1)
        HDR->maxlist--;
    return 0;
}

/* rds_coalesce -- merge all adjacent free blocks and restore maxlist */
int rds_coalesce(rvm_tid_t *tid, int *err)
{
    HDR->stats.coalesce++;
    for (unsigned long i = HDR->nlists; i > 0; i--)
        if (coalesce_list(i, tid, err))
            return -1;
    if (HDR->maxlist < HDR->nlists && redistribute(tid, err))
        return -1;
    return 0;
}
