/* SPDX-License-Identifier: MIT */
/*
 * track_twin.c -- committed images of tracked pages (track.h, "COMMITTED IMAGE" and "LAZY
 * TWINS"): the two slots per page, the twin budget and its eviction clock, pre-images read
 * from the segment file, explicit commits laid over the twins, and the trim that gives
 * unused slot memory back to the kernel.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sysio.h"
#include "track_int.h"

/* track_budget_take -- reserve one twin page under the budget; 0 or -1 (async-signal-safe) */
int track_budget_take(void)
{
    uint64_t n = atomic_fetch_add(&tracker.twin_pages, 1);
    if (n < tracker.budget_pages)
        return 0;
    atomic_fetch_sub(&tracker.twin_pages, 1);
    return -1;
}

/* track_budget_give -- release one twin page */
void track_budget_give(void)
{
    atomic_fetch_sub(&tracker.twin_pages, 1);
}

/* track_give_region_twins -- r is leaving: its twins no longer count against the budget */
void track_give_region_twins(const struct track_region *r)
{
    for (size_t i = 0; i < r->npages; i++)
        if (track_st_load(r, i) & TF_TWIN)
            track_budget_give();
}

/* track_twins_from_memory -- wp-async on no_copy memory: no hook, so the twins must exist
 * before the first write; pages beyond the budget have none (logged whole when written) */
void track_twins_from_memory(struct track_region *r)
{
    for (size_t i = 0; i < r->npages; i++) {
        if (track_budget_take() != 0)
            break;
        memcpy(track_slot(r, i, 0), r->base + i * track_ps(), track_page_len(r, i));
        track_slot_touched(r, i);
        track_st_store(r, i, TF_TWIN);
    }
}

/*
 * track_evict_one -- wp-async beyond the budget: take the twin of a page that was not
 * dirty in the last two commits (CLOCK over all regions, at most 512 pages looked at), so
 * that pages written now get twins and pages no longer written lose theirs (an
 * approximate LRU). The page keeps being tracked: without a twin it is logged whole if it
 * is ever written again. Only for wp-async, where no hook touches states concurrently
 * (mu held). Returns 0 if a twin was freed and its budget handed to the caller.
 */
int track_evict_one(void)
{
    for (unsigned n = 0; n < 512; n++) {
        struct track_region *r = atomic_load(&tracker.regions[tracker.clock_k]);
        if (r == NULL || tracker.clock_i >= r->npages) {
            tracker.clock_k = (tracker.clock_k + 1) % TRACK_MAX_REGIONS;
            tracker.clock_i = 0;
            continue;
        }
        size_t i = tracker.clock_i++;
        uint8_t s = track_st_load(r, i);
        if ((s & TF_TWIN) && (s & TS_MASK) == TS_CLEAN && r->seen[i] + 2 <= tracker.ncaptures) {
            track_st_store(r, i, (uint8_t)(s & ~TF_TWIN));
            return 0; /* its budget unit passes to the caller */
        }
    }
    return -1;
}

/*
 * REFILING (wp-async, lazy-twin regions, core's sink). A twin costs a page of memory for as
 * long as it lives, and wp-async keeps one for every page it has logged: a program that
 * writes a little everywhere ended with twice its heap resident. Once every record naming a
 * page is in the segment file's page cache, though, the file page IS its committed image
 * again, and the page can go back to TF_FILE: its twin is given back (the trim returns the
 * slot to the kernel) and its next commit reads the pre-image from the file. Why the claim
 * holds again:
 *   - the truncation daemon applies durable records to the segments ahead of truncation
 *     (trunc_apply_ahead) and never applies them a second time: the step that makes them
 *     durable only fsyncs (the applied span), so a file page never shows an older committed
 *     value again. trunc_applied_seq says how far the file is current;
 *   - cover(k) is a log seq at or after every record capture k made, read when that commit
 *     has queued its record. A page's last record comes from capture seen[i] or earlier, or
 *     from an explicit transaction, which moves seen[i] to the next capture
 *     (track_note_region): its record is queued before that capture's commit ends;
 *   - so cover(seen[i]) <= applied means every record naming the page is in the file, and
 *     no later record can name it without first clearing TF_FILE (LAZY TWINS, (3)).
 * The daemon applies a record within APPLY_AHEAD_MS of its durability. A commit does not
 * apply records itself as a rule (reading them back cost a commit at interval:1ms 0.7 ms, a
 * third of its time), only for the pages that need it (below).
 * With the daemon applying ahead, only a page the commit before captured too (PLIST_HOT:
 * written over and over) gets a twin from its pooled snapshot: a memcpy is cheaper than the
 * pread, but only for a page diffed again soon. Any other page of a commit keeps no
 * committed image at all until the file holds its record: making it a twin cost a fresh
 * slot page (zeroed by the kernel, then copied into: 12 % of a program's CPU when it writes
 * a few thousand scattered pages every 100 ms) for a page seldom written again before the
 * sweep gave the twin back. Such a page goes back to TF_FILE through the sweep below, or at
 * its next capture (track_refile_captured): at once if the file holds its records by then
 * (the claim above, with the capture's seen[i] before it moves), else it is marked
 * PLIST_FILE_WANTED, and after the release the commit applies the records up to the
 * newest such cover itself (trunc_apply_through: it waits for the daemon's apply pass, not
 * for a truncation step's fsync) and diffs those pages against the file. Only if that
 * falls short (a truncation step held the segments, or the record is a no_flush one not yet
 * durable) or an explicit transaction named the page meanwhile is the page logged whole,
 * which is always correct. Without a daemon, every page of a commit keeps its snapshot as its
 * twin; while the daemon lags (it has not applied the records of a commit that ended
 * TRACK_LAG_MS ago: busy with a truncation step, or starved of CPU), a page captured by one
 * of the TRACK_WARM_CAPTURES commits before (PLIST_WARM) does, as the file may well not hold
 * its record by its next commit. Lagging is judged by time, not by commits: at interval:1ms
 * the commit before has never been applied yet. A page written once, as a heap being built
 * writes most, gets no twin even then: twins for them doubled the resident memory of a
 * 100 MiB heap built under interval:1ms. The incremental sweep, at least 16 pages per page captured, gives back the twins
 * of pages whose records the file holds and that were not captured in the last two commits.
 * Records folded into the no_flush coalescing set have no seq yet: their commits' cover is
 * unknown (UINT64_MAX) until the set is written, and no page of theirs is refiled meanwhile.
 */

/* track_cover -- cover(k), UINT64_MAX while unknown */
static uint64_t track_cover(uint32_t k)
{
    if (k == 0)
        return 0; /* never captured: no tracked record names the page */
    uint32_t age = tracker.cover_hi - k;
    if ((int32_t)age < 0)
        return UINT64_MAX; /* that capture's commit has not ended */
    return age >= TRACK_COVER_RING ? tracker.cover_old : tracker.cover[k % TRACK_COVER_RING];
}

/* track_cover_note -- the commits up to capture ncaptures have queued their records */
static void track_cover_note(void)
{
    uint64_t c = track_core_cover_seq(), now = track_now_ns();
    for (uint32_t j = tracker.cover_hi + 1; (int32_t)(tracker.ncaptures - j) >= 0; j++) {
        uint64_t *e = &tracker.cover[j % TRACK_COVER_RING];
        if (j > TRACK_COVER_RING)
            tracker.cover_old = *e; /* capture j - RING leaves the ring; covers only grow */
        *e = c;
        tracker.cover_ns[j % TRACK_COVER_RING] = now;
        tracker.cover_hi = j;
    }
    if (c == UINT64_MAX) {
        tracker.cover_pending = 1;
    } else if (tracker.cover_pending) {
        /* the coalescing set was written: its records' seqs are now below c */
        for (uint32_t q = 0; q < TRACK_COVER_RING; q++)
            if (tracker.cover[q] == UINT64_MAX)
                tracker.cover[q] = c;
        if (tracker.cover_old == UINT64_MAX)
            tracker.cover_old = c;
        tracker.cover_pending = 0;
    }
}

/* track_daemon_lags -- has the daemon not applied yet the records of the newest commit that
 * ended TRACK_LAG_MS ago or more? (busy with a truncation step, or starved of CPU) */
static int track_daemon_lags(uint64_t applied)
{
    uint64_t now = track_now_ns();
    for (uint32_t k = 0; k < TRACK_COVER_RING && k < tracker.cover_hi; k++) {
        uint32_t j = tracker.cover_hi - k;
        if (now - tracker.cover_ns[j % TRACK_COVER_RING] >= (uint64_t)TRACK_LAG_MS * 1000000u)
            return track_cover(j) > applied;
    }
    return 0; /* every commit is more recent than that */
}

/* track_refile_may_defer -- see track_int.h */
int track_refile_may_defer(const struct track_region *r, uint64_t e)
{
    return tracker.refile && tracker.sink == NULL && r->file_fd >= 0 && !(e & PLIST_HOT);
}

/* track_refile -- after a commit (mu held): note its cover, then give back the twins of up to
 * TRACK_REFILE_SCAN pages whose committed image the segment file holds again (REFILING) */
void track_refile(size_t npages)
{
    if (tracker.sink != NULL)
        return;
    /* per commit: a log opened anew has the daemon's flag off. Every backend asks: the records
     * applied ahead are the ones a restart after a kill no longer has to apply (the daemon
     * makes 16 MiB of them durable at once) */
    int daemon = track_core_apply_ahead();
    if (!tracker.refile)
        return;
    track_cover_note();
    uint64_t applied = track_core_applied_seq();
    if (track_cover(tracker.ncaptures) <= applied) {
        /* the daemon applied this commit's record already: its pages need no twin, but for
         * those the commit before captured too (likely written again at once) */
        for (size_t q = 0; q < npages; q++) {
            uint64_t e = tracker.plist[q];
            if (e == PLIST_DEAD)
                continue;
            struct track_region *r = PLIST_REGION(e);
            size_t i = PLIST_PAGE(e);
            uint8_t s = track_st_load(r, i);
            int deferred = (e & PLIST_DEFER) != 0;
            if ((e & PLIST_HOT) || r->file_fd < 0 || (s & TS_MASK) != TS_CLEAN ||
                (!deferred && !(s & TF_TWIN)))
                continue;
            if (s & TF_TWIN)
                track_budget_give();
            track_st_store(r, i, (uint8_t)(TS_CLEAN | TF_FILE | (s & TF_SLOTB)));
            tracker.plist[q] = e & ~PLIST_DEFER;
            tracker.refiled++;
        }
    }
    /* deferred pages the file does not hold yet: with a daemon keeping up they stay without a
     * committed image until the sweep or their next capture gives them their file page.
     * Without one (records reach the file only at a truncation) their snapshot becomes the
     * twin after all; while it lags, only a page written in the last few commits keeps one */
    int keeping_up = daemon && !track_daemon_lags(applied);
    for (size_t q = 0; q < npages; q++) {
        uint64_t e = tracker.plist[q];
        if (e == PLIST_DEAD || !(e & PLIST_DEFER))
            continue;
        tracker.plist[q] = e & ~PLIST_DEFER;
        if (keeping_up || (daemon && !(e & PLIST_WARM)))
            continue;
        struct track_region *r = PLIST_REGION(e);
        size_t i = PLIST_PAGE(e);
        track_keep_pooled(r, i, track_st_load(r, i),
                          snap_pool + (size_t)tracker.pool_of[q] * track_ps());
    }
    /* a sweep proportional to the commit's work: the twins it made are found again soon */
    size_t scan = npages * 16 > TRACK_REFILE_SCAN ? npages * 16 : TRACK_REFILE_SCAN;
    for (size_t looked = 0; looked < scan; looked++) {
        struct track_region *r = atomic_load(&tracker.regions[tracker.refile_k]);
        if (r == NULL || r->file_fd < 0 || tracker.refile_i >= atomic_load(&r->slots_hi)) {
            tracker.refile_k = (tracker.refile_k + 1) % TRACK_MAX_REGIONS;
            tracker.refile_i = 0;
            continue;
        }
        size_t i = tracker.refile_i++;
        uint8_t s = track_st_load(r, i);
        if ((s & TS_MASK) != TS_CLEAN || (s & TF_FILE))
            continue;
        if ((uint32_t)(tracker.ncaptures - r->seen[i]) < 2 || track_cover(r->seen[i]) > applied)
            continue;
        if (s & TF_TWIN)
            track_budget_give();
        track_st_store(r, i, (uint8_t)(TS_CLEAN | TF_FILE | (s & TF_SLOTB)));
        tracker.refiled++;
    }
}

/* track_refile_captured -- see track_int.h */
uint64_t track_refile_captured(struct track_region *r, size_t i)
{
    if (!tracker.refile || tracker.sink != NULL || r->file_fd < 0)
        return 0;
    uint8_t s = track_st_load(r, i);
    if (s & (TF_TWIN | TF_FILE))
        return 0;
    uint64_t c = track_cover(r->seen[i]);
    if (c <= tracker.applied_seen) {
        track_st_store(r, i, (uint8_t)(s | TF_FILE));
        return 0;
    }
    if (c == UINT64_MAX)
        return 0; /* its last record has no seq yet: logged whole */
    if (c > tracker.file_wanted)
        tracker.file_wanted = c;
    return PLIST_FILE_WANTED;
}

/* track_refile_wanted -- see track_int.h */
void track_refile_wanted(struct track_region *r, size_t i, uint64_t e, uint8_t *s)
{
    if (!(e & PLIST_FILE_WANTED) || (*s & (TF_TWIN | TF_FILE)) ||
        tracker.applied_seen < tracker.file_wanted)
        return;
    *s = (uint8_t)(*s | TF_FILE);
    track_st_store(r, i, *s);
}

/* track_keep_snapshot -- after diffing a SNAP page: its snapshot becomes the twin if it had
 * one or the budget allows; returns the new flag bits */
uint8_t track_keep_snapshot(uint8_t s)
{
    uint8_t flipped = (uint8_t)((s & TF_SLOTB) ^ TF_SLOTB);
    if (s & TF_TWIN)
        return (uint8_t)(TF_TWIN | flipped);
    if (track_budget_take() == 0 || (!tracker.hook_backend && track_evict_one() == 0))
        return (uint8_t)(TF_TWIN | flipped);
    return (uint8_t)(s & TF_SLOTB);
}

/* scratch page for pre-images read from the segment (tracker.mu held by every user) */
static char *file_page;

/* track_file_page_ready -- allocate the scratch page now; 0 or -1 */
int track_file_page_ready(void)
{
    if (file_page == NULL)
        file_page = malloc(track_ps());
    return file_page != NULL ? 0 : -1;
}

/* track_file_image -- the committed image of TF_FILE page i of r, read from the segment into
 * a scratch page (valid until the next call); NULL if it cannot be read: the caller then
 * logs the page whole, which is always correct. Beyond the file's end the image is zeros
 * (the file grows only by preallocation, never by a commit). */
const char *track_file_image(struct track_region *r, size_t i)
{
    size_t ps = track_ps(), plen = track_page_len(r, i), got = 0;
    if (track_file_page_ready() != 0)
        goto fail;
    off_t at = (off_t)(r->seg_off + (uint64_t)i * ps);
    while (got < plen) {
        ssize_t n = sysio.pread(r->file_fd, file_page + got, plen - got, at + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    memset(file_page + got, 0, ps - got);
    tracker.file_reads++;
    return file_page;
fail:
    tracker.file_read_errors++;
    return NULL;
}

/* track_committed_image -- page i's committed image: its twin, else (TF_FILE) its segment
 * file page, else NULL: unknown, the page is logged whole */
const char *track_committed_image(struct track_region *r, size_t i, uint8_t s)
{
    if (s & TF_TWIN)
        return track_slot(r, i, (s & TF_SLOTB) != 0);
    return (s & TF_FILE) ? track_file_image(r, i) : NULL;
}

/* track_slot_in_use -- does slot b of page i hold a twin or a snapshot in flight? */
static int track_slot_in_use(const struct track_region *r, size_t i, int b)
{
    uint8_t s = track_st_load(r, i);
    int tb = (s & TF_SLOTB) != 0;
    if ((s & TF_TWIN) && b == tb)
        return 1;
    return (s & TS_MASK) == TS_SNAP && b != tb;
}

/* track_trim_area -- continue the sweep in slot area tracker.trim_b of r from page tracker.trim_i, with
 * at most `budget` madvise calls; returns the calls made */
static unsigned track_trim_area(struct track_region *r, unsigned budget)
{
    /* beyond slots_hi no slot was ever copied into: nothing there is resident. A hook may
     * raise it meanwhile (fault backends run the trim in the pause, where none can) */
    size_t end = atomic_load(&r->slots_hi);
    size_t i = tracker.trim_i, run0 = 0, runn = 0;
    unsigned calls = 0;
    for (; i <= end && calls < budget; i++) {
        int used = i < end && track_slot_in_use(r, i, tracker.trim_b);
        if (i < end && !used) {
            if (runn++ == 0)
                run0 = i;
            continue;
        }
        tracker.trim_kept += used;
        if (runn > 0) {
            madvise(track_slot(r, run0, tracker.trim_b), runn * track_ps(), MADV_DONTNEED);
            calls++;
        }
        runn = 0;
    }
    /* the loop ends right after a flush, so no run is left open here */
    if (i > end) {
        tracker.trim_b++;
        tracker.trim_i = 0;
    } else {
        tracker.trim_i = i;
    }
    return calls;
}

/*
 * track_trim -- give the memory of unused slots back to the kernel (MADV_DONTNEED) once the
 * slots copied into since the last sweep exceed the twins by a quarter. A sweep walks
 * every region's two slot areas (up to their high-water mark) and madvises each run of
 * unused slots; it is incremental
 * (at most TRACK_TRIM_RUNS madvise calls per commit, continuing at the next commit), so no
 * commit pays more than ~0.5 ms for it. With the hook backends it must run in the pause:
 * no first-write hook copies into a slot then (the hook blocks the safepoint signal before
 * it copies; prepare_write is excluded by `kw`), so a slot seen unused stays unused until
 * the threads are released. wp-async has no hook: there it runs after the release (mu
 * held: nothing else writes slots).
 */
void track_trim(void)
{
    /* Resident slots that hold nothing are waste: a wp-async page's old twin after its
     * snapshot took over, a hook backend's twin after its commit. Sweep once the slots
     * copied into exceed the twins by a quarter (plus a slack, so that a small working set
     * is not swept at every commit), and at the latest when they exceed the budget by a
     * quarter. Against the budget alone, slot memory of a 256 MiB heap (budget 1 GiB) grew to
     * twice the heap and was never returned. */
    uint64_t twins = atomic_load(&tracker.twin_pages);
    uint64_t limit = twins + twins / 4 + TRACK_TRIM_SLACK;
    if (limit > tracker.budget_pages + tracker.budget_pages / 4 + 64)
        limit = tracker.budget_pages + tracker.budget_pages / 4 + 64;
    if (!tracker.trim_active) {
        if (atomic_load(&tracker.slot_touches) <= limit)
            return;
        tracker.trim_active = 1;
        tracker.trim_k = 0;
        tracker.trim_b = 0;
        tracker.trim_i = 0;
        tracker.trim_kept = 0;
    }
    unsigned calls = 0;
    while (tracker.trim_k < TRACK_MAX_REGIONS && calls < TRACK_TRIM_RUNS) {
        struct track_region *r = atomic_load(&tracker.regions[tracker.trim_k]);
        if (r == NULL || tracker.trim_b > 1) {
            tracker.trim_k++;
            tracker.trim_b = 0;
            tracker.trim_i = 0;
            continue;
        }
        calls += track_trim_area(r, TRACK_TRIM_RUNS - calls);
    }
    if (tracker.trim_k >= TRACK_MAX_REGIONS) {
        atomic_store(&tracker.slot_touches, tracker.trim_kept);
        tracker.trim_active = 0;
        tracker.st.trims++;
    }
}

/* track_unlazy -- lazy page i (TF_FILE, no twin) is named by an explicit transaction's
 * record: the file stops being its committed image now (the record reaches the file only
 * at truncation). Its image becomes the file's page with the committed bytes laid over it
 * (by the caller): make the file's page the twin, or forget the image (the page is then
 * logged whole when written) if no twin can be had. Returns the new state. */
static uint8_t track_unlazy(struct track_region *r, size_t i, uint8_t s)
{
    uint8_t ns = (uint8_t)(s & ~TF_FILE);
    if (track_budget_take() == 0) {
        const char *img = track_file_image(r, i);
        if (img != NULL) {
            memcpy(track_slot(r, i, (s & TF_SLOTB) != 0), img, track_page_len(r, i));
            track_slot_touched(r, i);
            ns |= TF_TWIN;
        } else {
            track_budget_give();
        }
    }
    track_st_store(r, i, ns);
    return ns;
}

/* track_note_region -- the part [lo, hi) of a committed range that lies in r (mu held):
 * the committed bytes are the current memory; copy them into the twins */
static void track_note_region(struct track_region *r, uintptr_t lo, uintptr_t hi)
{
    size_t ps = track_ps();
    while (lo < hi) {
        size_t i = (lo - (uintptr_t)r->base) / ps;
        uintptr_t page_end = (uintptr_t)r->base + (i + 1) * ps;
        uintptr_t end = hi < page_end ? hi : page_end;
        uint8_t s = track_st_load(r, i);
        r->seen[i] = tracker.ncaptures + 1; /* REFILING: this record is covered from then on */
        if ((s & TF_FILE) && !(s & TF_TWIN))
            s = track_unlazy(r, i, s);
        if (s & TF_TWIN)
            memcpy(track_slot(r, i, (s & TF_SLOTB) != 0) + (lo - (uintptr_t)r->base - i * ps),
                   (const void *)lo, end - lo);
        lo = end;
    }
}

/* track_note_commit -- an explicit transaction committed [addr, addr+len) (see track.h) */
void track_note_commit(const void *addr, uint64_t len)
{
    uintptr_t a = (uintptr_t)addr, b = a + len;
    /* Fast path: most explicit ranges (RDS's heap, set_range programs) touch no tracked
     * region; do not take tracker.mu for each of them. A region tracked after this check was
     * tracked after the commit, and track() takes its image from memory then. */
    int touches = 0;
    if (atomic_load(&track_published) == 0)
        return;
    for (size_t k = 0; k < TRACK_MAX_REGIONS && !touches; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        touches = r != NULL && a < (uintptr_t)r->base + r->len && (uintptr_t)r->base < b;
    }
    if (!touches)
        return;
    pthread_mutex_lock(&tracker.mu);
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r == NULL)
            continue;
        uintptr_t lo = a > (uintptr_t)r->base ? a : (uintptr_t)r->base;
        uintptr_t hi = b < (uintptr_t)r->base + r->len ? b : (uintptr_t)r->base + r->len;
        track_note_region(r, lo, hi);
    }
    pthread_mutex_unlock(&tracker.mu);
}
