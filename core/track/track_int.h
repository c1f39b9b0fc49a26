/* SPDX-License-Identifier: MIT */
/*
 * track_int.h -- what the files of core/track share with each other and with nobody else.
 *
 * track.h is the interface of tracking to the rest of core (and to the shim); this header
 * holds the small helpers and the state the concept files pass between them:
 *   track_region.c   process-wide state, configuration, rvm_track/untrack, arming
 *   track_twin.c     committed images: slots, budget, lazy (file) images, eviction, trim,
 *                    explicit commits laid over the twins
 *   track_hooks.c    the first-write hook, kernel writes (prepare_write, robust mutexes),
 *                    released memory
 *   track_capture.c  the instant: collecting and marking the dirty set, prefaulting slots,
 *                    diffing the captured pages into the record
 *   track_record.c   the record being built (ranges and their bytes)
 *   track_commit.c   rvm_commit: the steps around the instant, the sink, statistics
 */
#ifndef LRVM_CORE_TRACK_INT_H
#define LRVM_CORE_TRACK_INT_H

#include "track.h"

#pragma GCC visibility push(hidden)

/* ---- track_region.c ---- */

/* track_err -- record a message for track_errmsg and rvm_errmsg; returns code */
rvm_return_t track_err(rvm_return_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* track_now_ns -- monotonic nanoseconds */
uint64_t track_now_ns(void);
/* track_find -- the tracked region holding address a (async-signal-safe, lock-free) */
struct track_region *track_find(uintptr_t a);
/* track_nregions -- number of tracked regions (tracker.mu held) */
size_t track_nregions(void);
/* track_collect_cb -- vmprim run callback: remember collected pages in the carry bitmaps */
void track_collect_cb(void *start, size_t npages, void *arg);
/* regions published in tracker.regions (track_note_commit's fast path: none tracked) */
extern atomic_int track_published;

/* track_ps -- the page size */
static inline size_t track_ps(void)
{
    return vmp_page_size();
}

/* track_locate -- the tracked region holding address p, and p's page index in it in *i;
 * NULL if none (the collect callbacks' first step for every page) */
static inline struct track_region *track_locate(uintptr_t p, size_t *i)
{
    struct track_region *r = track_find(p);
    if (r != NULL)
        *i = (p - (uintptr_t)r->base) / track_ps();
    return r;
}

/* track_slot -- slot A (b == 0) or B of page i of r */
static inline char *track_slot(const struct track_region *r, size_t i, int b)
{
    return r->slots + ((b ? r->npages : 0) + i) * track_ps();
}

/* track_page_len -- bytes of page i that belong to the region (the last may be partial) */
static inline size_t track_page_len(const struct track_region *r, size_t i)
{
    uint64_t start = (uint64_t)i * track_ps();
    uint64_t left = r->len - start;
    return left < track_ps() ? (size_t)left : track_ps();
}

/*
 * Per-page state accessors. In a lazy-twin region (file_fd >= 0 with wp-async) the TF_FILE
 * bit is stored inverted (st_xor == TF_FILE), so that "TF_FILE, clean, no twin" -- the state
 * of every page at rvm_track -- is the all-zero byte: the state array comes zeroed from
 * calloc (mmap'ed pages for large regions) and pages of it that are never touched are never
 * resident. Every access goes through these three functions; the logic everywhere else
 * sees the logical state only.
 */

/* track_st_load -- logical state of page i */
static inline uint8_t track_st_load(const struct track_region *r, size_t i)
{
    return (uint8_t)(atomic_load(&r->st[i]) ^ r->st_xor);
}

/* track_st_store -- set the logical state of page i */
static inline void track_st_store(struct track_region *r, size_t i, uint8_t v)
{
    atomic_store(&r->st[i], (uint8_t)(v ^ r->st_xor));
}

/* track_st_cas -- compare-and-swap of the logical state (acq_rel; *expect updated on
 * failure, as atomic_compare_exchange_strong does) */
static inline int track_st_cas(struct track_region *r, size_t i, uint8_t *expect, uint8_t v)
{
    uint8_t e = (uint8_t)(*expect ^ r->st_xor);
    if (atomic_compare_exchange_strong_explicit(&r->st[i], &e, (uint8_t)(v ^ r->st_xor),
                                                memory_order_acq_rel, memory_order_acquire))
        return 1;
    *expect = (uint8_t)(e ^ r->st_xor);
    return 0;
}

/* the slot holding page i's committed image, or NULL (no twin) */
static inline const char *track_twin_of(const struct track_region *r, size_t i, uint8_t s)
{
    return (s & TF_TWIN) ? track_slot(r, i, (s & TF_SLOTB) != 0) : NULL;
}

/* track_slot_touched -- a slot of page i of r was just copied into: count it for the trim,
 * and raise the region's slot high-water mark (async-signal-safe: the hook calls it) */
static inline void track_slot_touched(struct track_region *r, size_t i)
{
    atomic_fetch_add(&tracker.slot_touches, 1);
    size_t hi = atomic_load_explicit(&r->slots_hi, memory_order_relaxed);
    while (hi <= i && !atomic_compare_exchange_weak(&r->slots_hi, &hi, i + 1))
        ;
}

/* ---- track_twin.c ---- */

/* track_budget_take -- reserve one twin page under the budget; 0 or -1 (async-signal-safe) */
int track_budget_take(void);
/* track_budget_give -- release one twin page */
void track_budget_give(void);
/* track_give_region_twins -- return the budget of every twin of r (r is being dropped) */
void track_give_region_twins(const struct track_region *r);
/* track_twins_from_memory -- wp-async on no_copy memory: copy pages into twins up to the
 * budget (there is no hook to take them at the first write) */
void track_twins_from_memory(struct track_region *r);
/* track_file_image -- the committed image of TF_FILE page i of r, read from the segment into
 * a scratch page (valid until the next call); NULL if it cannot be read (log it whole) */
const char *track_file_image(struct track_region *r, size_t i);
/* track_file_page_ready -- allocate the scratch page of track_file_image now (so a pause
 * need not); 0 or -1 */
int track_file_page_ready(void);
/* track_committed_image -- page i's committed image: its twin, its file page, or NULL */
const char *track_committed_image(struct track_region *r, size_t i, uint8_t s);
/* tracker.plist entries: region slot << PLIST_SHIFT | page index | flags */
#define PLIST_SHIFT 40
#define PLIST_POOLED ((uint64_t)1 << 62) /* its snapshot is in the pool */
#define PLIST_HOT ((uint64_t)1 << 61)    /* the commit before captured it too */
#define PLIST_DEFER ((uint64_t)1 << 60)  /* diffed; its twin is decided by track_refile */
/* no committed image at its capture: its file page is, once the file holds file_wanted */
#define PLIST_FILE_WANTED ((uint64_t)1 << 59)
/* captured by one of the TRACK_WARM_CAPTURES commits before (HOT: by the one before) */
#define PLIST_WARM ((uint64_t)1 << 58)
#define PLIST_FLAGS (PLIST_POOLED | PLIST_HOT | PLIST_DEFER | PLIST_FILE_WANTED | PLIST_WARM)
#define PLIST_PAGE(e) ((size_t)((e) & (((uint64_t)1 << PLIST_SHIFT) - 1)))
#define PLIST_REGION(e) (atomic_load(&tracker.regions[((e) & ~PLIST_FLAGS) >> PLIST_SHIFT]))

/* track_precopy -- wp-async, before the pause (mu held): copy the pages written so far
 * into the pool while the threads run, so that the capture copies only what they write
 * after (PRECOPY in track_capture.c); with a small dirty set, only populate the pool */
void track_precopy(void);
/* track_precopy_forget -- pages [lo, hi) of r no longer hold what was precopied and must not
 * be captured from it (released to the kernel, or the region is dropped); mu held */
void track_precopy_forget(struct track_region *r, size_t lo, size_t hi);
/* a precopied page released before the capture: skipped by every plist loop */
#define PLIST_DEAD UINT64_MAX
/* track_precopy_taken -- after a capture's release: the precopies it took are done with */
void track_precopy_taken(void);

/* snap_pool -- the snapshot pool (SNAPSHOT POOL in track_capture.c): page q holds the
 * snapshot of the q-th page captured by the last capture, until the next one */
extern char *snap_pool;
/* track_keep_pooled -- wp-async, after diffing the pooled snapshot snap of page i (state s):
 * it becomes the twin if the page has one or the budget (or the eviction clock) gives one */
void track_keep_pooled(struct track_region *r, size_t i, uint8_t s, const char *snap);
/* track_refile_may_defer -- can the twin of captured page (plist entry e) of r wait for
 * track_refile, which may find the file holding its committed image? */
int track_refile_may_defer(const struct track_region *r, uint64_t e);

/* track_refile_captured -- page i of r is being captured (mu held, before r->seen[i] moves):
 * with no committed image of its own, it takes its file page if the file holds every record
 * naming it, or returns PLIST_FILE_WANTED if it will once it holds tracker.file_wanted
 * (REFILING in track_twin.c); else 0 */
uint64_t track_refile_captured(struct track_region *r, size_t i);
/* track_refile_wanted -- before diffing plist entry e, page i of r in state *s: a
 * PLIST_FILE_WANTED page takes its file page if the file holds tracker.file_wanted now */
void track_refile_wanted(struct track_region *r, size_t i, uint64_t e, uint8_t *s);
/* track_refile -- after a commit that captured npages (mu held): give back twins the
 * segment file makes useless (REFILING in track_twin.c) */
void track_refile(size_t npages);
/* track_evict_one -- wp-async beyond the budget: free the twin of a page idle for two
 * commits and hand its budget unit to the caller; 0, or -1 if none was found */
int track_evict_one(void);
/* track_keep_snapshot -- after diffing a SNAP page: its snapshot becomes the twin if it had
 * one or the budget allows; returns the new flag bits */
uint8_t track_keep_snapshot(uint8_t s);
/* track_trim -- give unused slot memory back to the kernel (incremental) */
void track_trim(void);

/* ---- track_hooks.c ---- */

/* track_hook -- vmprim's first-write hook (hook backends) */
void track_hook(void *page, void *arg);
/* track_robust_thread -- open the pages of a parked thread's robust mutexes' lock words */
void track_robust_thread(pid_t tid, void *arg);

/* ---- track_record.c ---- */

/* The record of the commit in flight: ranges, and the bytes they point at. A range's src is
 * an offset into `data` until track_record_finish (data may move while it grows), except
 * when `in_place`: then src points at bytes that stay unchanged until the record is written
 * (the tracked memory itself in a final commit written while the threads are parked;
 * wp-async's snapshots otherwise) and `data` is not used. */
struct track_record {
    char *data;
    size_t data_len, data_cap;
    struct track_range *ranges;
    size_t nranges, ranges_cap;
    int in_place;
};
extern struct track_record track_rec;

/* track_record_clear -- start an empty record */
void track_record_clear(void);
/* track_emit_page -- append the changes of page i (content cur, committed image old, or NULL
 * for "log it whole"); 0 or -1 (ENOMEM) */
int track_emit_page(struct track_region *r, size_t i, const char *cur, const char *old);
/* track_record_mark / track_record_undo -- forget what was emitted since the mark */
struct track_record_mark {
    size_t data_len, nranges;
    struct track_range last;
};
void track_record_mark(struct track_record_mark *m);
void track_record_undo(const struct track_record_mark *m);
/* track_record_materialize -- copy in-place ranges into `data` (mmap only: pause-safe) */
int track_record_materialize(void);
/* track_record_finish -- turn the ranges' src offsets into pointers; returns the bytes */
uint64_t track_record_finish(void);
/* track_record_ready -- the scratch the diff needs (outside the pause); 0 or -1 */
int track_record_ready(void);
/* track_record_shrink -- do not keep a huge record buffer between commits */
void track_record_shrink(void);

/* ---- track_capture.c ---- */

/* track_capture -- at the safepoint: collect the dirty set and mark it; live: a final
 * wp-async commit that diffs the pages before the release. *npages: pages captured. */
int track_capture(size_t *npages, int live);
/* track_diff_all -- diff every captured page after the release; 0 or -1 (ENOMEM) */
int track_diff_all(size_t npages);
/* track_diff_live -- final wp-async commit: diff the captured pages in memory; 0 or -1 */
int track_diff_live(size_t npages);

#pragma GCC visibility pop

#endif /* LRVM_CORE_TRACK_INT_H */
