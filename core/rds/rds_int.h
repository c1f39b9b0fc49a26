/* SPDX-License-Identifier: MIT */
/*
 * rds_int.h -- RDS internals shared by the rds/ files: the started heap, its lock, the
 * bounds every pointer read from the heap is checked against, and the list primitives.
 *
 * Rule: a pointer read from the heap (list head, prev, next, a block's size) is data from a
 * file and may be damaged. It is checked with rds_blk_valid before it is followed, and a
 * damaged heap yields ECORRUPT with the address in rds_errmsg, never a crash or assertion.
 */
#ifndef LRVM_RDS_INT_H
#define LRVM_RDS_INT_H

#include <pthread.h>
#include <stdint.h>

#include <rvm/rds.h>
#include <rvm/rvm_segment.h>

#include "rds_format.h"

/* the original's exported globals (defined in rds_heap.c) */
RVM_API extern rds_heap_hdr_t *RecoverableHeapStartAddress;
RVM_API extern rds_block_t *RecoverableHeapHighAddress;
RVM_API extern rvm_region_def_t *RegionDefs;
RVM_API extern unsigned long NRegionDefs;
RVM_API extern rvm_bool_t rds_testsw;
/* exported by the original without a prototype in rds.h: trace the stats / the free lists */
RVM_API void rds_trace_dump_stats(void);
RVM_API void rds_trace_dump_free_lists(void);

#pragma GCC visibility push(hidden)

/* the started heap (NULL hdr: none) */
struct rds_heap {
    rds_heap_hdr_t *hdr;
    char *first; /* first block */
    char *end;   /* blocks_end (rds_format.h) */
    unsigned long chunk;
};
extern struct rds_heap rds_h;
extern pthread_mutex_t rds_lock;

/* rds_fail -- set rds_errmsg, store code in *err, return -1 */
int rds_fail(int *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* rds_rvm_fail -- an RVM call failed: *err = rc, message names what RDS was doing */
int rds_rvm_fail(int *err, rvm_return_t rc, const char *what);

/* rds_blk_valid -- bp is a chunk-aligned block start inside the heap whose size keeps it
 * inside the heap and whose end guard is intact; 1 or 0 */
static inline int rds_blk_valid(const rds_block_t *bp)
{
    const char *p = (const char *)bp;
    if (p < rds_h.first || p >= rds_h.end || (size_t)(p - rds_h.first) % rds_h.chunk)
        return 0;
    unsigned long room = (unsigned long)(rds_h.end - p) / rds_h.chunk;
    if (bp->size == 0 || bp->size > room)
        return 0;
    return *(const rds_guard_t *)(p + bp->size * rds_h.chunk - sizeof(rds_guard_t)) == END_GUARD;
}

/* rds_blk_end -- the end guard of a block */
static inline rds_guard_t *rds_blk_end(rds_block_t *bp)
{
    return (rds_guard_t *)((char *)bp + bp->size * rds_h.chunk) - 1;
}

/* rds_list_of -- the list a free block of n chunks belongs on */
static inline unsigned long rds_list_of(unsigned long n)
{
    return n >= rds_h.hdr->maxlist ? rds_h.hdr->maxlist : n;
}

/* rds_range -- rvm_set_range, failure reported through *err; 0 or -1 */
int rds_range(rvm_tid_t *tid, void *p, size_t n, int *err);

/* list primitives (rds_lists.c); each returns 0, or -1 with *err set. Caller holds
 * rds_lock, has declared the stats range, and aborts the transaction on failure. */
int rds_unlink(rds_list_t *list, rds_block_t *bp, rvm_tid_t *tid, int *err);
int rds_push(rds_block_t *bp, rvm_tid_t *tid, int *err);
rds_block_t *rds_get_block(unsigned long n, rvm_tid_t *tid, int *err);
rds_block_t *rds_split(unsigned long n, rvm_tid_t *tid, int *err);
int rds_merge_next(rds_block_t *bp, rvm_tid_t *tid, int *err, int *merged);
int rds_coalesce(rvm_tid_t *tid, int *err);
/* rds_list_ok -- check a list header's guard; 0, or -1 with ECORRUPT */
int rds_list_ok(unsigned long i, int *err);

/* own-or-caller transaction (rds_alloc.c) */
struct rds_txn {
    rvm_tid_t *tid;
    rvm_tid_t own;
    int owned;
};
int rds_txn_begin(struct rds_txn *t, rvm_tid_t *caller, int *err);
/* rds_txn_end -- owned: commit no_flush if ok (*err == SUCCESS) else abort; returns 0/-1 */
int rds_txn_end(struct rds_txn *t, int ok, int *err);

/* the checker (rds_check.c): check a heap image. `img` holds the heap's bytes, which were
 * (or are) mapped at vmaddr; pointers inside are translated. Returns 0 if consistent, else
 * -1 with a description of the first damage in msg. Fills *st (may be NULL). */
struct rds_check_stats {
    unsigned long nblocks, nfree, nalloc, free_bytes, alloc_bytes, largest_free;
    int stats_mismatch; /* header stats disagree with the blocks (not damage) */
};
int rds_check_image(const char *img, unsigned long maplen, uintptr_t vmaddr,
                    struct rds_check_stats *st, char *msg, size_t msglen);

#pragma GCC visibility pop

#endif /* LRVM_RDS_INT_H */
