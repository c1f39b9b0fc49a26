/* SPDX-License-Identifier: MIT */
/*
 * crash_model.h -- the deterministic transaction workload shared by a crash-test worker (which
 * runs it against RVM) and the parent (which replays it on a plain byte array to know what the
 * segment must hold). Both draw every decision from the same seeded RNG in the same order, so
 * the parent never needs the worker's data, only the indices it reported.
 */
#ifndef LRVM_TESTS_CRASH_MODEL_H
#define LRVM_TESTS_CRASH_MODEL_H

#include "core_test.h"

#define CM_MAX_RANGES 16
#define CM_MAX_DATA (6 * 1024) /* bytes of new values per transaction, at most */

enum cm_post { CM_POST_NONE, CM_POST_FLUSH, CM_POST_TRUNCATE };

/* One generated transaction: what the worker does, and what it changes if committed. */
typedef struct {
    rvm_mode_t begin_mode; /* restore / no_restore */
    rvm_mode_t end_mode;   /* flush / no_flush */
    int abort;             /* 1: abort instead of commit */
    int post;              /* cm_post: rvm_flush or rvm_truncate after the commit */
    int nranges;
    struct {
        size_t off, len;
        int use_set_range; /* 1: set_range + memcpy, 0: modify_bytes */
    } r[CM_MAX_RANGES];
    unsigned char data[CM_MAX_DATA]; /* new values of range k follow those of range k-1 */
} cm_txn_t;

/*
 * cm_gen -- the next transaction of the workload over seg_len bytes of memory made of two
 * regions split at `split` (a range never crosses it: set_range needs one region). Ranges may
 * overlap (later ones win), cross page boundaries, and a few are large, so records span many
 * log blocks and the log (sized by the caller) wraps often.
 */
static inline void cm_gen(trng_t *g, size_t seg_len, size_t split, cm_txn_t *t)
{
    t->begin_mode = trng_below(g, 2) ? restore : no_restore;
    t->end_mode = trng_below(g, 10) < 4 ? flush : no_flush;
    t->abort = trng_below(g, 100) < 15;
    uint64_t p = trng_below(g, 100);
    t->post = p < 6 ? CM_POST_FLUSH : p < 9 ? CM_POST_TRUNCATE : CM_POST_NONE;
    t->nranges = 1 + (int)trng_below(g, CM_MAX_RANGES);
    size_t used = 0;
    for (int k = 0; k < t->nranges; k++) {
        size_t len;
        uint64_t kind = trng_below(g, 100);
        if (kind < 60)
            len = 1 + trng_below(g, 16);
        else if (kind < 95)
            len = 1 + trng_below(g, 300);
        else
            len = 1 + trng_below(g, 2048);
        if (used + len > CM_MAX_DATA)
            len = CM_MAX_DATA - used;
        if (len == 0) {
            t->nranges = k;
            break;
        }
        /* cluster half the ranges in the first 2 pages: overlaps within and across txns */
        size_t span = trng_below(g, 2) ? (seg_len < 8192 ? seg_len : 8192) : seg_len;
        size_t off = trng_below(g, span - len + 1);
        if (off < split && off + len > split)
            len = split - off;
        t->r[k].off = off;
        t->r[k].len = len;
        t->r[k].use_set_range = (int)trng_below(g, 2);
        for (size_t i = 0; i < len; i++)
            t->data[used + i] = (unsigned char)trng_next(g);
        used += len;
    }
    if (t->nranges == 0) {
        t->nranges = 1;
        t->r[0].off = 0;
        t->r[0].len = 1;
        t->r[0].use_set_range = 0;
        t->data[0] = 0x42;
    }
}

/* cm_apply -- apply a transaction's new values to an image of the segment. */
static inline void cm_apply(const cm_txn_t *t, unsigned char *img)
{
    size_t used = 0;
    for (int k = 0; k < t->nranges; k++) {
        memcpy(img + t->r[k].off, t->data + used, t->r[k].len);
        used += t->r[k].len;
    }
}

/* cm_seed -- the workload seed of round `round` of a run with base seed `base`. */
static inline uint64_t cm_seed(uint64_t base, long round)
{
    trng_t g = {base ^ (0x5851f42d4c957f2dULL * (uint64_t)(round + 1))};
    return trng_next(&g);
}

/* cm_base_seed -- LRVM_TEST_SEED if set, else a fixed default (CI runs the same workloads). */
static inline uint64_t cm_base_seed(void)
{
    const char *s = getenv("LRVM_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : 20261126ULL;
}

#endif
