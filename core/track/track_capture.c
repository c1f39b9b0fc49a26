/* SPDX-License-Identifier: MIT */
/*
 * track_capture.c -- the instant of a tracked commit and what follows it (track.h, "ONE
 * INSTANT" and "Per-page states"): collecting and marking the dirty set while the other
 * threads are parked, populating snapshot slots before the stop, and diffing every captured
 * page into the record after the release.
 */
#include <string.h>
#include <sys/mman.h>

#include "rvm_int.h"
#include "track_int.h"

/* plist entries: region slot << PLIST_SHIFT | page index, and PLIST_POOLED if the page's
 * snapshot is in the pool (wp-async) rather than in its own free slot */

/*
 * SNAPSHOT POOL (wp-async). The capture must copy every dirty page while the threads are
 * parked. Copied into the page's free slot, the snapshot then became the twin and the old
 * twin slot stayed resident, unused: a heap whose pages are all written now and then kept
 * both slots of every page (twice the heap) until a sweep found them. Instead the q-th
 * captured page is copied into page q of one pool, reused by every commit, and after the
 * diff the snapshot is copied into the page's twin slot (0.2 us): a page only ever uses one
 * slot, and the pool holds one commit's dirty set. The pool grows with mmap/mremap only
 * (pause-safe); if it cannot grow in the pause, the page's free slot is used as before.
 * After the diff, pool pages beyond this commit's dirty set are returned to the kernel.
 * tracker.mu guards the pool.
 */
char *snap_pool;
static size_t snap_pool_bytes;
static size_t snap_pool_hi; /* pool pages possibly resident: [0, snap_pool_hi) */

/* track_pool_page -- page q of the pool, grown if needed (mmap only); NULL if it cannot */
static char *track_pool_page(size_t q)
{
    size_t ps = track_ps();
    if ((q + 1) * ps > snap_pool_bytes &&
        mmap_buf_grow((void **)&snap_pool, &snap_pool_bytes, (q + 1) * ps, 256 * ps) != 0)
        return NULL;
    if (q + 1 > snap_pool_hi)
        snap_pool_hi = q + 1;
    return snap_pool + q * ps;
}

/* track_pool_trim -- keep the pool pages this commit used (the next dirty set is likely of
 * the same size), give the rest back */
static void track_pool_trim(size_t used)
{
    size_t ps = track_ps();
    if (snap_pool_hi > used + 256) {
        madvise(snap_pool + used * ps, (snap_pool_hi - used) * ps, MADV_DONTNEED);
        snap_pool_hi = used;
    }
}

/* track_capture_page -- mark collected page i of r, the q-th captured, at the instant; 0 if
 * it holds no change (hook backends: only a page whose hook ran can), 1 if captured, 2 if
 * captured with its snapshot in the pool */
static int track_capture_page(struct track_region *r, size_t i, int live, size_t q)
{
    uint8_t s = track_st_load(r, i);
    if (tracker.hook_backend) {
        /* a collected page had its hook run (DIRTY); anything else cannot hold a change */
        if ((s & TS_MASK) != TS_DIRTY)
            return 0;
        track_st_store(r, i, (uint8_t)(TS_PENDING | (s & ~TS_MASK)));
        return 1;
    }
    if (live)
        return 1; /* diffed before the release (track_diff_live), state unchanged */
    /* no hook: copy the page now, while nobody can write it */
    char *snap = track_pool_page(q);
    int pooled = snap != NULL;
    if (!pooled) {
        snap = track_slot(r, i, !(s & TF_SLOTB));
        track_slot_touched(r, i);
    }
    memcpy(snap, r->base + i * track_ps(), track_page_len(r, i));
    track_st_store(r, i, (uint8_t)(TS_SNAP | (s & ~TS_MASK)));
    return pooled ? 2 : 1;
}

/* track_capture -- at the safepoint: collect the dirty set and mark it (no allocation);
 * live: a final wp-async commit that diffs the pages before releasing the threads, so
 * they are not copied */
int track_capture(size_t *npages, int live)
{
    int e = vmp_dirty_collect_runs(tracker.dirty, track_collect_cb, NULL);
    if (e != 0)
        return e; /* collected pages stay in the carry bitmaps for the next try */
    size_t np = 0;
    tracker.ncaptures++;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r == NULL)
            continue;
        size_t hi = r->carry_hi;
        for (size_t w = r->carry_lo; w < hi; w++) {
            uint64_t bits = atomic_exchange(&r->carry[w], 0);
            while (bits != 0) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                int how = track_capture_page(r, i, live, np);
                if (how == 0)
                    continue;
                /* captured by the commit before too: a page written over and over keeps its
                 * twin (REFILING in track_twin.c) */
                int hot = (uint32_t)(tracker.ncaptures - r->seen[i]) == 1;
                r->seen[i] = tracker.ncaptures;
                tracker.plist[np++] = ((uint64_t)k << PLIST_SHIFT) | i |
                                      (how == 2 ? PLIST_POOLED : 0) | (hot ? PLIST_HOT : 0);
            }
        }
        r->carry_lo = r->nwords; /* every carried page was taken */
        r->carry_hi = 0;
    }
    *npages = np;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* track_prefault_count -- vmprim peek callback: count the pages written so far */
static void track_prefault_count(void *start, size_t npages, void *arg)
{
    (void)start;
    *(size_t *)arg += npages;
}

/*
 * track_prefault -- wp-async, before the stop: the capture copies every dirty page into the
 * pool inside the pause, and a pool page never used before costs a page fault there (~4 us,
 * 20x the copy: 64 MiB dirty paused the program ~70 ms). So the pages written so far are
 * counted (vmp_dirty_peek_runs: no re-arming) and that many pool pages populated now, while
 * the threads run. Pages written between this and the stop fault in the pause as before.
 */
void track_prefault(void)
{
    size_t n = 0, ps = track_ps();
    if (vmp_dirty_peek_runs(tracker.dirty, track_prefault_count, &n) != 0 || n == 0)
        return;
    size_t from = snap_pool_hi;
    if (n <= from || track_pool_page(n - 1) == NULL)
        return;
    madvise(snap_pool + from * ps, (n - from) * ps, MADV_POPULATE_WRITE);
}

/* track_diff_pending -- a PENDING page (hook backends): diff the live page against its twin,
 * then claim it (PENDING -> CLEAN). Returns 1 if done, 0 if a hook snapshotted the page
 * meanwhile (*s is then its new state: SNAP), -1 on ENOMEM. */
static int track_diff_pending(struct track_region *r, size_t i, uint8_t *s)
{
    struct track_record_mark mark;
    track_record_mark(&mark);
    const char *twin = track_twin_of(r, i, *s);
    if (track_emit_page(r, i, r->base + i * track_ps(), twin) != 0)
        return -1;
    /* Release: our reads of the live page happen before the CAS. If a hook copied the page
     * and let a write through first, the CAS fails and what we read may be torn: undo it
     * and use the snapshot. */
    if (track_st_cas(r, i, s, (uint8_t)(TS_CLEAN | (*s & TF_SLOTB)))) {
        if (twin != NULL)
            track_budget_give();
        return 1;
    }
    track_record_undo(&mark);
    if (twin != NULL)
        tracker.st.bytes_diffed -= track_page_len(r, i);
    else
        tracker.st.whole_pages--;
    return 0;
}

/* track_keep_pooled -- wp-async, after diffing a pooled snapshot: it becomes the twin, in
 * the page's twin slot, if the page has one or the budget (or the eviction clock) gives one;
 * else the page keeps no committed image (logged whole when written again) */
void track_keep_pooled(struct track_region *r, size_t i, uint8_t s, const char *snap)
{
    uint8_t slotb = (uint8_t)(s & TF_SLOTB);
    if (!(s & TF_TWIN) && track_budget_take() != 0 && track_evict_one() != 0) {
        track_st_store(r, i, (uint8_t)(TS_CLEAN | slotb));
        return;
    }
    memcpy(track_slot(r, i, slotb != 0), snap, track_page_len(r, i));
    if (!(s & TF_TWIN))
        track_slot_touched(r, i);
    track_st_store(r, i, (uint8_t)(TS_CLEAN | TF_TWIN | slotb));
}

/* track_diff_snapshot -- a SNAP page: diff its snapshot (pooled: in the pool page q) against
 * its committed image; the snapshot becomes the twin if the budget allows. 0 or -1. */
static int track_diff_snapshot(struct track_region *r, size_t i, uint8_t s, int pooled, size_t q)
{
    int b = (s & TF_SLOTB) != 0;
    const char *snap = pooled ? snap_pool + q * track_ps() : track_slot(r, i, !b);
    const char *image = track_committed_image(r, i, s);
    if (track_emit_page(r, i, snap, image) != 0)
        return -1;
    if (pooled && track_refile_may_defer(r, tracker.plist[q])) {
        /* the file may hold this commit's record before the commit ends: decide then
         * (track_refile) whether the snapshot must become a twin at all. Meanwhile the page
         * has no committed image, which is what it keeps if the commit fails. */
        if (s & TF_TWIN)
            track_budget_give();
        track_st_store(r, i, (uint8_t)(TS_CLEAN | (s & TF_SLOTB)));
        tracker.plist[q] |= PLIST_DEFER;
        return 0;
    }
    if (pooled) {
        track_keep_pooled(r, i, s, snap);
        return 0;
    }
    uint8_t flags = track_keep_snapshot(s);
    uint8_t ns = (uint8_t)((tracker.hook_backend ? TS_DIRTY : TS_CLEAN) | flags);
    if (!tracker.hook_backend && !(flags & TF_TWIN))
        ns = TS_CLEAN;
    track_st_store(r, i, ns);
    return 0;
}

/* track_diff_all -- diff every captured page (threads running again); 0 or -1 (ENOMEM) */
int track_diff_all(size_t npages)
{
    for (size_t q = 0; q < npages; q++) {
        struct track_region *r = PLIST_REGION(tracker.plist[q]);
        size_t i = PLIST_PAGE(tracker.plist[q]);
        uint8_t s = track_st_load(r, i);
        if ((s & TS_MASK) == TS_PENDING) {
            int done = track_diff_pending(r, i, &s);
            if (done < 0)
                return -1;
            if (done)
                continue;
        }
        if ((s & TS_MASK) == TS_SNAP &&
            track_diff_snapshot(r, i, s, (tracker.plist[q] & PLIST_POOLED) != 0, q) != 0)
            return -1;
    }
    if (!tracker.hook_backend)
        track_pool_trim(npages);
    return 0;
}

/* track_diff_live -- a final commit (wp-async, threads still parked): diff every captured
 * page as it is in memory, without a snapshot, and leave it with no committed image (a later
 * write, if any, logs it whole). No allocation but mmap (the record). 0 or -1. */
int track_diff_live(size_t npages)
{
    for (size_t q = 0; q < npages; q++) {
        struct track_region *r = PLIST_REGION(tracker.plist[q]);
        size_t i = PLIST_PAGE(tracker.plist[q]);
        uint8_t s = track_st_load(r, i);
        const char *image = track_committed_image(r, i, s);
        if (track_emit_page(r, i, r->base + i * track_ps(), image) != 0)
            return -1;
        if (s & TF_TWIN)
            track_budget_give();
        track_st_store(r, i, (uint8_t)(TS_CLEAN | (s & TF_SLOTB)));
    }
    return 0;
}
