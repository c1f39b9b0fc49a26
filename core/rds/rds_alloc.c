/* SPDX-License-Identifier: MIT */
/*
 * rds_alloc.c -- rds_malloc, rds_free, rds_prealloc, rds_maxblock, rds_fake_free and
 * rds_do_free, and the transaction each runs in.
 *
 * Transactions: with tid == NULL a call runs its own restore-mode transaction, committed
 * no_flush on success and aborted on failure (so a failed call leaves the heap untouched).
 * With a caller's tid every change is a declared range of that transaction: the caller's
 * commit makes it durable, its abort (restore mode) undoes it, and a crash before the
 * commit leaves the heap as it was. After a failed call with a caller's tid the heap may be
 * half changed in memory: the caller must abort, as with the original.
 * Our own transactions commit while rds_lock is held: a commit captures the heap bytes as
 * they are at that moment, so another thread's change of a shared word (a list head) must
 * not slip in between our change and our commit -- our record would then carry its
 * uncommitted effect, and a crash after our commit but before its commit would leave a list
 * pointing at a block that is not free on disk.
 */
#include <stdlib.h>
#include <string.h>

#include "rds_int.h"

#define HDR (rds_h.hdr)

/* rds_range -- rvm_set_range, failure reported through *err */
int rds_range(rvm_tid_t *tid, void *p, size_t n, int *err)
{
    rvm_return_t rc = rvm_set_range(tid, p, n);
    return rc == RVM_SUCCESS ? 0 : rds_rvm_fail(err, rc, "rvm_set_range on the heap");
}

/* rds_txn_begin -- use the caller's tid, or begin our own (restore mode) */
int rds_txn_begin(struct rds_txn *t, rvm_tid_t *caller, int *err)
{
    t->owned = caller == NULL;
    t->tid = caller;
    if (!t->owned)
        return 0;
    rvm_init_tid(&t->own);
    rvm_return_t rc = rvm_begin_transaction(&t->own, restore);
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(err, rc, "rvm_begin_transaction");
    t->tid = &t->own;
    return 0;
}

/* rds_txn_end -- commit (no_flush) or abort our own transaction */
int rds_txn_end(struct rds_txn *t, int ok, int *err)
{
    if (!t->owned)
        return ok ? 0 : -1;
    if (!ok) {
        rvm_abort_transaction(t->tid);
        return -1;
    }
    rvm_return_t rc = rvm_end_transaction(t->tid, no_flush);
    if (rc != RVM_SUCCESS) {
        rvm_abort_transaction(t->tid);
        return rds_rvm_fail(err, rc, "rvm_end_transaction");
    }
    return 0;
}

/* not_started -- EHEAP_INIT with a message */
static int not_started(int *err, const char *call)
{
    return rds_fail(err, EHEAP_INIT,
                    "%s: no RDS heap is started; call rds_load_heap (or "
                    "rds_start_heap) first",
                    call);
}

/* chunks_for -- chunks a request of size bytes takes (0: larger than the heap) */
static unsigned long chunks_for(unsigned long size)
{
    unsigned long heap = (unsigned long)(rds_h.end - rds_h.first);
    if (size > heap)
        return 0;
    return (size + RDS_BLOCK_OVERHEAD) / rds_h.chunk + 1;
}

/* malloc_locked -- the body of rds_malloc under rds_lock */
static rds_block_t *malloc_locked(unsigned long n, rvm_tid_t *tid, int *err)
{
    if (rds_range(tid, &HDR->stats, sizeof(HDR->stats), err))
        return NULL;
    rds_block_t *bp = rds_get_block(n, tid, err);
    if (bp == NULL)
        return NULL;
    if (bp->size != n || bp->type != FREE_GUARD || !rds_blk_valid(bp)) {
        rds_fail(err, ECORRUPT,
                 "RDS heap: block at %p taken for %lu chunks has size %lu "
                 "or bad guards; the heap is damaged (run rvmutl rds-check)",
                 (void *)bp, n, bp->size);
        return NULL;
    }
    if (rds_range(tid, bp, sizeof(*bp), err))
        return NULL;
    bp->type = ALLOC_GUARD;
    bp->prev = bp->next = NULL;
    HDR->stats.malloc++;
    HDR->stats.freebytes -= (unsigned)(n * rds_h.chunk);
    HDR->stats.mallocbytes += (unsigned)(n * rds_h.chunk);
    return bp;
}

char *rds_malloc(unsigned long size, rvm_tid_t *tid, int *err)
{
    if (HDR == NULL) {
        not_started(err, "rds_malloc");
        return NULL;
    }
    unsigned long n = chunks_for(size);
    if (n == 0) {
        rds_fail(err, ENO_ROOM, "rds_malloc(%lu): larger than the whole heap (%ld bytes)", size,
                 (long)(rds_h.end - rds_h.first));
        return NULL;
    }
    struct rds_txn t;
    if (rds_txn_begin(&t, tid, err))
        return NULL;
    *err = SUCCESS;
    pthread_mutex_lock(&rds_lock);
    rds_block_t *bp = malloc_locked(n, t.tid, err);
    int rc = rds_txn_end(&t, bp != NULL, err);
    pthread_mutex_unlock(&rds_lock);
    if (rc)
        return NULL;
    RDS_LOG("rdstrace: malloc addr %p size %lx req %lx\n", (void *)&bp->prev, n * rds_h.chunk,
            size);
    return (char *)&bp->prev;
}

/* block_of -- the block header of a user pointer, validated: NULL with *err set if addr is
 * not the start of an allocated block of this heap */
static rds_block_t *block_of(char *addr, int *err)
{
    if (addr == NULL || (uintptr_t)addr % sizeof(void *) != 0 ||
        addr < rds_h.first + RDS_USER_OFFSET || addr >= rds_h.end) {
        rds_fail(err, EBAD_ARGS, "RDS: %p is not a block of the heap [%p, %p)", (void *)addr,
                 (void *)rds_h.first, (void *)rds_h.end);
        return NULL;
    }
    rds_block_t *bp = (rds_block_t *)(addr - RDS_USER_OFFSET);
    if ((size_t)((char *)bp - rds_h.first) % rds_h.chunk != 0) {
        rds_fail(err, EBAD_ARGS, "RDS: %p is inside the heap but not the start of a block",
                 (void *)addr);
        return NULL;
    }
    if (bp->type == FREE_GUARD) {
        rds_fail(err, EFREED_TWICE, "RDS: block %p is already free (freed twice?)", (void *)addr);
        return NULL;
    }
    if (bp->type != ALLOC_GUARD || !rds_blk_valid(bp)) {
        rds_fail(err, ECORRUPT,
                 "RDS: block %p has a damaged header or end guard (type %#lx, "
                 "size %lu): something wrote past a neighbouring block",
                 (void *)addr, bp->type, bp->size);
        return NULL;
    }
    return bp;
}

/* free_locked -- mark bp free, merge it with its free successors, list it */
static int free_locked(rds_block_t *bp, rvm_tid_t *tid, int *err)
{
    if (rds_range(tid, &bp->type, sizeof(bp->type), err))
        return -1;
    bp->type = FREE_GUARD;
    HDR->stats.free++;
    HDR->stats.freebytes += (unsigned)(bp->size * rds_h.chunk);
    HDR->stats.mallocbytes -= (unsigned)(bp->size * rds_h.chunk);
    int merged;
    if (rds_merge_next(bp, tid, err, &merged))
        return -1;
    return rds_push(bp, tid, err);
}

int rds_free(char *addr, rvm_tid_t *tid, int *err)
{
    if (HDR == NULL)
        return not_started(err, "rds_free");
    struct rds_txn t;
    if (rds_txn_begin(&t, tid, err))
        return -1;
    *err = SUCCESS;
    pthread_mutex_lock(&rds_lock);
    rds_block_t *bp = block_of(addr, err);
    int rc = bp == NULL ? -1 : rds_range(t.tid, &HDR->stats, sizeof(HDR->stats), err);
    if (rc == 0)
        rc = free_locked(bp, t.tid, err);
    rc = rds_txn_end(&t, rc == 0, err);
    pthread_mutex_unlock(&rds_lock);
    if (rc)
        return -1;
    RDS_LOG("rdstrace: free addr %p\n", (void *)addr);
    return 0;
}

int rds_prealloc(unsigned long size, unsigned long nblocks, rvm_tid_t *tid, int *err)
{
    if (HDR == NULL)
        return not_started(err, "rds_prealloc");
    unsigned long n = chunks_for(size);
    if (n == 0)
        return rds_fail(err, ENO_ROOM, "rds_prealloc(%lu): larger than the whole heap", size);
    *err = SUCCESS;
    if (n == HDR->maxlist) /* blocks of the top list's size would be split again */
        return 0;
    struct rds_txn t;
    if (rds_txn_begin(&t, tid, err))
        return -1;
    int rc = 0;
    pthread_mutex_lock(&rds_lock);
    if (rds_range(t.tid, &HDR->stats, sizeof(HDR->stats), err) == 0) {
        HDR->stats.prealloc++;
        for (unsigned long i = 0; i < nblocks && rc == 0; i++) {
            rds_block_t *bp = rds_split(n, t.tid, err);
            rc = bp == NULL ? -1 : rds_push(bp, t.tid, err);
        }
    } else {
        rc = -1;
    }
    rc = rds_txn_end(&t, rc == 0, err);
    pthread_mutex_unlock(&rds_lock);
    return rc;
}

int rds_maxblock(unsigned long size)
{
    if (HDR == NULL)
        return 0;
    unsigned long n = size / rds_h.chunk;
    int found = 0;
    pthread_mutex_lock(&rds_lock);
    /* the top list holds blocks of every size from maxlist up: look at each */
    unsigned long steps = 0, limit = (unsigned long)(rds_h.end - rds_h.first) / rds_h.chunk;
    for (rds_block_t *bp = HDR->lists[HDR->maxlist].head; bp != NULL && !found; bp = bp->next) {
        if (!rds_blk_valid(bp) || ++steps > limit)
            break; /* damaged: say no rather than crash */
        found = bp->size >= n;
    }
    /* exact-size lists below it: any non-empty list of more than n chunks will do */
    for (unsigned long i = HDR->maxlist - 1; i > n && i >= 1 && !found; i--)
        found = HDR->lists[i].head != NULL;
    pthread_mutex_unlock(&rds_lock);
    return found;
}

int rds_fake_free(char *addr, intentionList_t *list)
{
    int err;
    if (HDR == NULL)
        return not_started(&err, "rds_fake_free"), EHEAP_INIT;
    if (addr == NULL)
        return SUCCESS;
    if (block_of(addr, &err) == NULL)
        return err;
    if (list->table == NULL) {
        list->size = STARTSIZE;
        list->count = 0;
        list->table = malloc(list->size);
    } else if ((list->count + 1) * sizeof(char *) > list->size) {
        char **grown = realloc(list->table, list->size * 2);
        if (grown == NULL)
            return rds_fail(&err, ERVM_FAILED, "rds_fake_free: out of memory"), ERVM_FAILED;
        list->table = grown;
        list->size *= 2;
    }
    if (list->table == NULL)
        return rds_fail(&err, ERVM_FAILED, "rds_fake_free: out of memory"), ERVM_FAILED;
    list->table[list->count++] = addr;
    return SUCCESS;
}

int rds_do_free(intentionList_t *list, rvm_mode_t mode)
{
    int err = SUCCESS;
    if (HDR == NULL)
        return not_started(&err, "rds_do_free"), EHEAP_INIT;
    if (mode != flush && mode != no_flush)
        return rds_fail(&err, RVM_EMODE, "rds_do_free: mode must be flush or no_flush"), err;
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    rvm_return_t rc = rvm_begin_transaction(&tid, restore);
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(&err, rc, "rds_do_free: rvm_begin_transaction"), err;
    RDS_LOG("rdstrace: start do_free\n");
    pthread_mutex_lock(&rds_lock);
    int bad = rds_range(&tid, &HDR->stats, sizeof(HDR->stats), &err);
    for (unsigned long i = 0; !bad && list->table != NULL && i < list->count; i++) {
        rds_block_t *bp = block_of(list->table[i], &err); /* twice on the list: caught */
        bad = bp == NULL || free_locked(bp, &tid, &err);
    }
    RDS_LOG("rdstrace: end do_free\n");
    if (bad) {
        rvm_abort_transaction(&tid);
    } else if ((rc = rvm_end_transaction(&tid, mode)) != RVM_SUCCESS) {
        rvm_abort_transaction(&tid);
        rds_rvm_fail(&err, rc, "rds_do_free: rvm_end_transaction");
    }
    pthread_mutex_unlock(&rds_lock);
    free(list->table);
    list->table = NULL;
    list->count = 0;
    return err;
}
