/* SPDX-License-Identifier: MIT */
/*
 * lockset.h -- the held-lock table's hot path (lockset.c has the concept and the restore):
 * inline so the program's pthread_mutex_lock / unlock (mutexwait.c) pay a few stores and, for
 * a thread's outermost lock only, one compare-and-swap on a cache line that stays its own.
 */
#ifndef LRVM_LOCKSET_H
#define LRVM_LOCKSET_H

#include <stdint.h>

#include "preload_api.h"

#define LS_COND 1u /* entry tag (low bit): a condition variable; clear: a mutex */

/* struct ls_row -- one thread's row: owner != 0 while the thread holds (or acquires, or waits
 * on) at least one listed object. 64 bytes: one cache line, written only by its owner. */
struct ls_row {
    uint64_t owner;
    uint64_t ent[IMG_LOCK_ROW_ENTRIES];
};
_Static_assert(sizeof(struct ls_row) == IMG_LOCK_ROW_SIZE, "row is one cache line");

extern struct ls_row *ls_rows;       /* NULL: not persistent, nothing recorded */
extern uintptr_t ls_lo[2], ls_hi[2]; /* tracked ranges: globals, heap reservation */
extern __thread int ls_row_of __attribute__((tls_model("initial-exec"))); /* row, 0: none */
extern __thread int ls_n __attribute__((tls_model("initial-exec")));      /* entries held */
extern __thread int ls_missed __attribute__((tls_model("initial-exec"))); /* unrecorded */
extern __thread int ls_hint __attribute__((tls_model("initial-exec")));   /* last row, 0: none */

/* ls_add_slow / ls_del_slow -- claim a row / unrecorded bookkeeping (lockset.c) */
int ls_add_slow(uint64_t e);
void ls_del_slow(uint64_t e);

/* ls_tracked -- p lies in memory a commit captures (objects elsewhere are never restored) */
static inline int ls_tracked(uintptr_t p)
{
    return (p - ls_lo[0] < ls_hi[0] - ls_lo[0]) | (p - ls_lo[1] < ls_hi[1] - ls_lo[1]);
}

/* ls_add -- list object p (tag LS_COND or 0) BEFORE it is acquired or waited on: at every
 * instant the table is a superset of what this thread holds */
static inline void ls_add(const void *p, unsigned tag)
{
    if (!ls_rows || !ls_tracked((uintptr_t)p))
        return;
    uint64_t e = (uintptr_t)p | tag;
    if (!ls_row_of && ls_hint) {
        /* the outermost lock: claim the row this thread had last (its cache line is likely still
     * ours, so the CAS is cheap) */
        uint64_t free_ = 0;
        struct ls_row *r = &ls_rows[ls_hint];
        if (__atomic_compare_exchange_n(&r->owner, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            __atomic_store_n(&r->ent[0], e, __ATOMIC_RELAXED);
            ls_row_of = ls_hint;
            ls_n = 1;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            return;
        }
    }
    if (ls_row_of) {
        struct ls_row *r = &ls_rows[ls_row_of];
        for (int i = 0; i < IMG_LOCK_ROW_ENTRIES; i++)
            if (r->ent[i] == 0) {
                __atomic_store_n(&r->ent[i], e, __ATOMIC_RELAXED);
                ls_n++;
                /* the entry is in memory before the lock is tried: a commit that stops this thread
         * afterwards (signal: same thread, program order) sees it */
                __atomic_signal_fence(__ATOMIC_SEQ_CST);
                return;
            }
    }
    ls_add_slow(e);
}

/* ls_del -- unlist p AFTER it was released (or the acquisition failed) */
static inline void ls_del(const void *p, unsigned tag)
{
    if (!ls_rows || !ls_tracked((uintptr_t)p))
        return;
    uint64_t e = (uintptr_t)p | tag;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (ls_row_of) {
        struct ls_row *r = &ls_rows[ls_row_of];
        for (int i = 0; i < IMG_LOCK_ROW_ENTRIES; i++)
            if (r->ent[i] == e) {
                __atomic_store_n(&r->ent[i], 0, __ATOMIC_RELAXED);
                if (--ls_n == 0) {
                    __atomic_store_n(&r->owner, 0, __ATOMIC_RELEASE); /* the row is free again */
                    ls_row_of = 0;
                }
                return;
            }
    }
    ls_del_slow(e);
}

#endif
