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

/* track_capture_page -- mark collected page i of r at the instant, its snapshot (if any) in
 * pool page q; 0 if it holds no change (hook backends: only a page whose hook ran can), 1 if
 * captured, 2 if captured with its snapshot in the pool */
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

/* track_capture_note -- plist entry np for page i of region slot k of r, taken by capture
 * number cap (pool page q if pooled); remembers the capture for the eviction clock and
 * REFILING */
static void track_capture_note(size_t np, size_t k, struct track_region *r, size_t i, int pooled,
                               size_t q, uint32_t cap)
{
    /* captured by the commit before too: a page written over and over keeps its twin
     * (REFILING in track_twin.c) */
    uint32_t age = r->seen[i] != 0 ? cap - r->seen[i] : 0; /* 0: never captured */
    uint64_t wanted = track_refile_captured(r, i);
    r->seen[i] = cap;
    tracker.plist[np] = ((uint64_t)k << PLIST_SHIFT) | i | (pooled ? PLIST_POOLED : 0) |
                        (age == 1 ? PLIST_HOT : 0) |
                        (age != 0 && age <= TRACK_WARM_CAPTURES ? PLIST_WARM : 0) | wanted;
    tracker.pool_of[np] = (uint32_t)q;
}

/* track_collect_instant_cb -- the capture's collect: a precopied page written since its copy
 * is copied again (the threads are parked); any other page is carried as usual */
static void track_collect_instant_cb(void *start, size_t npages, void *arg)
{
    int live = *(const int *)arg;
    size_t ps = track_ps();
    for (size_t j = 0; j < npages; j++) {
        uintptr_t p = (uintptr_t)start + j * ps;
        size_t i;
        struct track_region *r = track_locate(p, &i);
        if (r != NULL && r->preq[i] != 0) {
            if (!live)
                memcpy(snap_pool + (size_t)(r->preq[i] - 1) * ps, (void *)p, track_page_len(r, i));
            continue;
        }
        track_collect_cb((void *)p, 1, NULL);
    }
}

/* track_capture -- at the safepoint: collect the dirty set and mark it (no allocation);
 * live: a final wp-async commit that diffs the pages before releasing the threads, so
 * they are not copied */
int track_capture(size_t *npages, int live)
{
    /* with no precopy pending (always so on the hook backends) every page is carried */
    int e = vmp_dirty_collect_runs(
        tracker.dirty, tracker.npre != 0 ? track_collect_instant_cb : track_collect_cb, &live);
    if (e != 0)
        return e; /* collected pages stay in the carry bitmaps for the next try */
    tracker.ncaptures++;
    /* the precopied pages are plist[0, npre) already, marked SNAP (a final commit diffs them
     * from memory all the same): nothing to do for them here */
    size_t np = tracker.npre, pq = tracker.npre;
    tracker.npre_taken = tracker.npre;
    tracker.npre = 0;
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
                int how = track_capture_page(r, i, live, pq);
                if (how == 0)
                    continue;
                track_capture_note(np++, k, r, i, how == 2, pq, tracker.ncaptures);
                if (how == 2)
                    pq++;
            }
        }
        r->carry_lo = r->nwords; /* every carried page was taken */
        r->carry_hi = 0;
    }
    tracker.pool_used = pq;
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

/* track_pool_populate -- make pool pages [from, to) resident (outside the pause) */
static void track_pool_populate(size_t from, size_t to)
{
    size_t ps = track_ps();
    if (from < snap_pool_hi)
        from = snap_pool_hi;
    if (to <= from || track_pool_page(to - 1) == NULL)
        return;
    madvise(snap_pool + from * ps, (to - from) * ps, MADV_POPULATE_WRITE);
}

/*
 * PRECOPY (wp-async). The capture copies every dirty page while the threads are parked: a
 * commit that follows the building of a big heap found ~100 MB dirty and paused the program
 * 114 ms. Most of that copy can be done before the pause, as live migration of a virtual
 * machine does: collecting the dirty set write-protects it again at once (PAGEMAP_SCAN with
 * WP matching; the kernel flushes the TLB before the call returns), so after a page is
 * collected and copied here, either nobody writes it before the instant and the copy is what
 * the page holds at the instant, or somebody does and the capture's collect reports it and
 * copies it again, the threads parked. A write racing the copy itself comes after the
 * protection, so it is reported too. Rounds repeat while a round still finds many pages (a
 * heap being built), each copying what was written during the last. The capture then copies
 * only what was written after the last round.
 * Bookkeeping: a precopied page gets its plist entry q (its copy is pool page q), its SNAP
 * state and r->preq[i] = q + 1 at its first copy, so that the capture, in the pause, does
 * nothing for it unless it was written since (then it copies it again): the pause no longer
 * grows with the pages copied before it (~1 us each of bookkeeping in scattered arrays: 16 ms
 * for 12 000 pages). Only SNAP's readers run between precopy and capture, all under
 * tracker.mu, and all but the diff skip a page that is not CLEAN. The pages were collected,
 * so their being dirty now lives only here until a capture takes them: a commit that fails
 * before its instant leaves them for the next one, and whatever looks for uncommitted
 * changes (track_region_changed) counts them. Memory that changes
 * without a write the kernel reports, released pages (MADV_DONTNEED: they read as the file or
 * zeros again), must not be captured from a copy: track_precopy_forget drops them, as the
 * release itself dropped their write from the kernel's dirty set. The instant is unchanged:
 * the capture still happens with the threads parked.
 */
#ifndef PRECOPY_MIN_PAGES      /* a torture build may lower it, to take this path at every commit */
#define PRECOPY_MIN_PAGES 1024 /* 4 MiB: copied in the pause in ~1 ms, not worth a round */
#endif
#define PRECOPY_ROUNDS 4

/* track_precopy_cb -- vmprim run callback of a precopy round: copy each collected page into
 * its pool page; a page not yet precopied gets one, and its plist entry now, so that the
 * capture has nothing to do for it; *arg counts the pages */
static void track_precopy_cb(void *start, size_t npages, void *arg)
{
    size_t ps = track_ps();
    for (size_t j = 0; j < npages; j++) {
        uintptr_t p = (uintptr_t)start + j * ps;
        size_t i;
        struct track_region *r = track_locate(p, &i);
        if (r == NULL)
            continue;
        ++*(size_t *)arg;
        if (r->preq[i] == 0) {
            size_t k = 0, q = tracker.npre;
            while (atomic_load(&tracker.regions[k]) != r)
                k++;
            /* plist has room for every tracked page; a page precopied, released and written
             * again takes a second entry, so it could still run out */
            if (q >= tracker.plist_cap || track_pool_page(q) == NULL) {
                track_collect_cb((void *)p, 1, NULL); /* copied at the instant instead */
                continue;
            }
            /* the next capture takes it, whichever commit makes it: ncaptures + 1 */
            track_capture_note(q, k, r, i, 1, q, tracker.ncaptures + 1);
            r->preq[i] = (uint32_t)++tracker.npre;
            /* collected before too: taken from its copy, not again from the carry */
            atomic_fetch_and(&r->carry[i / 64], ~((uint64_t)1 << (i % 64)));
            track_st_store(r, i, (uint8_t)(TS_SNAP | (track_st_load(r, i) & ~TS_MASK)));
        }
        memcpy(snap_pool + (size_t)(r->preq[i] - 1) * ps, (void *)p, track_page_len(r, i));
        tracker.precopied++;
    }
}

/* track_precopy -- see track_int.h */
void track_precopy(void)
{
    size_t n = 0;
    if (vmp_dirty_peek_runs(tracker.dirty, track_prefault_count, &n) != 0 || n == 0)
        return;
    if (n < PRECOPY_MIN_PAGES) {
        /* the capture copies every dirty page into the pool inside the pause, and a pool page
         * never used before costs a page fault there (~4 us, 20x the copy): populate them */
        track_pool_populate(tracker.npre, tracker.npre + n);
        return;
    }
    /* the rounds fault their pool pages in as they copy (outside the pause); populating
     * ahead by the last round's count kept pages no round used (a 100 MiB heap being built
     * held a 120 MB pool) */
    size_t got = n;
    for (int round = 0; round < PRECOPY_ROUNDS && got >= PRECOPY_MIN_PAGES; round++) {
        got = 0;
        if (vmp_dirty_collect_runs(tracker.dirty, track_precopy_cb, &got) != 0)
            break; /* what was collected is precopied or carried: nothing is lost */
    }
    /* the pages written after the last round are copied at the instant: about as many as
     * the last round found (at most a threshold's worth populated: beyond it the rounds did
     * not converge and the instant copies much anyway) */
    track_pool_populate(tracker.npre,
                        tracker.npre + (got < PRECOPY_MIN_PAGES ? got : PRECOPY_MIN_PAGES));
}

/* track_precopy_forget -- see track_int.h */
void track_precopy_forget(struct track_region *r, size_t lo, size_t hi)
{
    if (tracker.npre == 0)
        return;
    for (size_t i = lo; i < hi && i < r->npages; i++)
        if (r->preq[i] != 0) {
            tracker.plist[r->preq[i] - 1] = PLIST_DEAD;
            r->preq[i] = 0;
            track_st_store(r, i, (uint8_t)(TS_CLEAN | (track_st_load(r, i) & ~TS_MASK)));
        }
}

/* track_precopy_taken -- see track_int.h */
void track_precopy_taken(void)
{
    for (size_t q = 0; q < tracker.npre_taken; q++)
        if (tracker.plist[q] != PLIST_DEAD)
            PLIST_REGION(tracker.plist[q])->preq[PLIST_PAGE(tracker.plist[q])] = 0;
    tracker.npre_taken = 0;
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

/* track_diff_snapshot -- a SNAP page, plist entry q: diff its snapshot (pooled: in the pool
 * page pool_of[q]) against
 * its committed image; the snapshot becomes the twin if the budget allows. 0 or -1. */
static int track_diff_snapshot(struct track_region *r, size_t i, uint8_t s, int pooled, size_t q)
{
    int b = (s & TF_SLOTB) != 0;
    const char *snap =
        pooled ? snap_pool + (size_t)tracker.pool_of[q] * track_ps() : track_slot(r, i, !b);
    track_refile_wanted(r, i, tracker.plist[q], &s);
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
        if (tracker.plist[q] == PLIST_DEAD)
            continue;
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
        track_pool_trim(tracker.pool_used);
    return 0;
}

/* track_diff_live -- a final commit (wp-async, threads still parked): diff every captured
 * page as it is in memory, without a snapshot, and leave it with no committed image (a later
 * write, if any, logs it whole). No allocation but mmap (the record). 0 or -1. */
int track_diff_live(size_t npages)
{
    for (size_t q = 0; q < npages; q++) {
        if (tracker.plist[q] == PLIST_DEAD)
            continue;
        struct track_region *r = PLIST_REGION(tracker.plist[q]);
        size_t i = PLIST_PAGE(tracker.plist[q]);
        uint8_t s = track_st_load(r, i);
        track_refile_wanted(r, i, tracker.plist[q], &s);
        const char *image = track_committed_image(r, i, s);
        if (track_emit_page(r, i, r->base + i * track_ps(), image) != 0)
            return -1;
        if (s & TF_TWIN)
            track_budget_give();
        track_st_store(r, i, (uint8_t)(TS_CLEAN | (s & TF_SLOTB)));
    }
    return 0;
}
