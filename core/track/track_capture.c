/* SPDX-License-Identifier: MIT */
/*
 * track_capture.c -- the instant of a tracked commit and what follows it (track.h, "ONE
 * INSTANT" and "Per-page states"): collecting and marking the dirty set while the other
 * threads are parked, populating snapshot slots before the stop, and diffing every captured
 * page into the record after the release.
 */
#include <string.h>
#include <sys/mman.h>

#include "track_int.h"

/* plist entries: region slot << PLIST_SHIFT | page index */
#define PLIST_SHIFT 40
#define PLIST_PAGE(e) ((size_t)((e) & (((uint64_t)1 << PLIST_SHIFT) - 1)))
#define PLIST_REGION(e) (atomic_load(&T.regions[(e) >> PLIST_SHIFT]))

/* track_capture_page -- mark collected page i of r at the instant; 0 if it holds no change
 * (hook backends: only a page whose hook ran can), else 1 */
static int track_capture_page(struct track_region *r, size_t i, int live)
{
    uint8_t s = track_st_load(r, i);
    if (T.hook_backend) {
        /* a collected page had its hook run (DIRTY); anything else cannot hold a change */
        if ((s & TS_MASK) != TS_DIRTY)
            return 0;
        track_st_store(r, i, (uint8_t)(TS_PENDING | (s & ~TS_MASK)));
    } else if (!live) {
        /* no hook: copy the page now, while nobody can write it */
        int b = (s & TF_SLOTB) != 0;
        memcpy(track_slot(r, i, !b), r->base + i * track_ps(), track_page_len(r, i));
        track_slot_touched(r, i);
        track_st_store(r, i, (uint8_t)(TS_SNAP | (s & ~TS_MASK)));
    }
    /* live: diffed before the release (track_diff_live), state unchanged */
    return 1;
}

/* track_capture -- at the safepoint: collect the dirty set and mark it (no allocation);
 * live: a final wp-async commit that diffs the pages before releasing the threads, so
 * they are not copied */
int track_capture(size_t *npages, int live)
{
    int e = vmp_dirty_collect_runs(T.dirty, track_collect_cb, NULL);
    if (e != 0)
        return e;   /* collected pages stay in the carry bitmaps for the next try */
    size_t np = 0;
    T.ncaptures++;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r == NULL)
            continue;
        size_t hi = r->carry_hi;
        for (size_t w = r->carry_lo; w < hi; w++) {
            uint64_t bits = atomic_exchange(&r->carry[w], 0);
            while (bits != 0) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                if (!track_capture_page(r, i, live))
                    continue;
                r->seen[i] = T.ncaptures;
                T.plist[np++] = ((uint64_t)k << PLIST_SHIFT) | i;
            }
        }
        r->carry_lo = r->nwords;    /* every carried page was taken */
        r->carry_hi = 0;
    }
    *npages = np;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif

/* the slot run being pre-faulted (track_prefault_cb) */
struct prefault {
    char *lo, *hi;
};

/* track_prefault_flush -- populate the pending slot run */
static void track_prefault_flush(struct prefault *pf)
{
    if (pf->hi > pf->lo)
        madvise(pf->lo, (size_t)(pf->hi - pf->lo), MADV_POPULATE_WRITE);
    pf->lo = pf->hi = NULL;
}

/* track_prefault_cb -- vmprim peek callback: the snapshot slots of these written pages */
static void track_prefault_cb(void *start, size_t npages, void *arg)
{
    struct prefault *pf = arg;
    size_t ps = track_ps();
    for (size_t j = 0; j < npages; j++) {
        uintptr_t p = (uintptr_t)start + j * ps;
        struct track_region *r = track_find(p);
        if (r == NULL)
            continue;
        size_t i = (p - (uintptr_t)r->base) / ps;
        char *slot = track_slot(r, i, !(track_st_load(r, i) & TF_SLOTB));
        if (slot != pf->hi) {
            track_prefault_flush(pf);
            pf->lo = slot;
        }
        pf->hi = slot + ps;
    }
}

/*
 * track_prefault -- wp-async, before the stop: the capture copies every dirty page into its
 * snapshot slot inside the pause, and a slot page never used before costs a page fault there
 * (~4 us, 20x the copy: 64 MiB dirty paused the program ~70 ms). So the pages written so far
 * are previewed (vmp_dirty_peek_runs: no re-arming) and their snapshot slots populated now,
 * while the threads run. Pages written between this and the stop fault in the pause as
 * before; pages previewed but not captured (impossible: a written page stays written until
 * the collect) would only cost memory the trim gives back.
 */
void track_prefault(void)
{
    struct prefault pf = {NULL, NULL};
    if (vmp_dirty_peek_runs(T.dirty, track_prefault_cb, &pf) == 0)
        track_prefault_flush(&pf);
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
        T.st.bytes_diffed -= track_page_len(r, i);
    else
        T.st.whole_pages--;
    return 0;
}

/* track_diff_snapshot -- a SNAP page: diff its snapshot against its committed image; the
 * snapshot becomes the twin if the budget allows. 0 or -1 (ENOMEM). */
static int track_diff_snapshot(struct track_region *r, size_t i, uint8_t s)
{
    int b = (s & TF_SLOTB) != 0;
    const char *image = track_committed_image(r, i, s);
    if (track_emit_page(r, i, track_slot(r, i, !b), image) != 0)
        return -1;
    uint8_t flags = track_keep_snapshot(s);
    uint8_t ns = (uint8_t)((T.hook_backend ? TS_DIRTY : TS_CLEAN) | flags);
    if (!T.hook_backend && !(flags & TF_TWIN))
        ns = TS_CLEAN;
    track_st_store(r, i, ns);
    return 0;
}

/* track_diff_all -- diff every captured page (threads running again); 0 or -1 (ENOMEM) */
int track_diff_all(size_t npages)
{
    for (size_t q = 0; q < npages; q++) {
        struct track_region *r = PLIST_REGION(T.plist[q]);
        size_t i = PLIST_PAGE(T.plist[q]);
        uint8_t s = track_st_load(r, i);
        if ((s & TS_MASK) == TS_PENDING) {
            int done = track_diff_pending(r, i, &s);
            if (done < 0)
                return -1;
            if (done)
                continue;
        }
        if ((s & TS_MASK) == TS_SNAP && track_diff_snapshot(r, i, s) != 0)
            return -1;
    }
    return 0;
}

/* track_diff_live -- a final commit (wp-async, threads still parked): diff every captured
 * page as it is in memory, without a snapshot, and leave it with no committed image (a later
 * write, if any, logs it whole). No allocation but mmap (the record). 0 or -1. */
int track_diff_live(size_t npages)
{
    for (size_t q = 0; q < npages; q++) {
        struct track_region *r = PLIST_REGION(T.plist[q]);
        size_t i = PLIST_PAGE(T.plist[q]);
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
