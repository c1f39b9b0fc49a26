/* SPDX-License-Identifier: MIT */
/*
 * track.h -- auto-tracked regions: page protection replaces set_range.
 *
 * WHAT. A tracked region is a mapped LRVM region whose writes need no set_range. vmprim's
 * DIRTY tracker tells us which pages were written; rvm_commit() turns the changed bytes of
 * those pages into new-value ranges of ONE transaction in the same redo log as explicit
 * transactions. Recovery, truncation and rvmutl therefore see nothing special.
 *
 * COMMITTED IMAGE ("twin"). To find the changed bytes of a dirty page we need the page as
 * of the last commit. Every tracked region owns a slot area of 2 x its size, reserved with
 * MAP_NORESERVE (only touched slots cost memory): page i has two slots, A and B. Per page,
 * one atomic byte says which slot holds the twin, whether a twin exists, and the page's
 * commit state (see "Per-page states"). Slots are fixed per page, so no allocator runs in
 * signal context; "swapping" twin and snapshot is flipping one bit.
 *
 *  - Hook backends (uffd-sigbus, mprotect): vmprim calls our first-write hook in the
 *    faulting thread *before* the page becomes writable; the page then still holds its
 *    content as of the last commit, which we copy into the twin slot (0.2 us against a
 *    5 us fault). After the commit that logs the page, its twin is dropped (memory == the
 *    committed image again), so twins cover one epoch's working set only.
 *  - wp-async has no hook: the twin must exist before the write. rvm_track copies a
 *    no_copy region into twin slots (up to the budget; other regions use LAZY TWINS below),
 *    and a commit copies the page's snapshot (SNAPSHOT POOL in track_capture.c) into its
 *    twin slot, so a page only ever uses one slot -- with the truncation daemon applying
 *    records ahead, only for a page written in two commits in a row, the others reading
 *    their image from the segment file at their next commit (REFILING in track_twin.c);
 *    once the segment file holds the page's committed image again, a page not written for
 *    two commits goes back to TF_FILE and gives its twin back. Beyond the budget, a page
 *    logged whole takes the twin of a page not written in the last two commits (a CLOCK,
 *    i.e. approximate LRU), so the twins follow the pages being written.
 *  - LAZY TWINS (wp-async, region memory made from the segment by rvm_map: copied or
 *    RVM_MAP_PRIVATE, not no_copy). Copying the whole region up front cost 0.32 s per
 *    restart of a 1 GiB heap and doubled its memory, so instead every page starts TF_FILE:
 *    "no twin; the committed image is the segment file's page". The claim holds from
 *    rvm_track (and from each REFILING, track_twin.c, which gives a page whose records the
 *    file holds back to TF_FILE) until the page's next collect or explicit commit, because:
 *      (1) rvm_track settles the segment first (seg_file_image: forces and truncates every
 *          record naming it), so the file then holds every committed byte: recovery and
 *          the first rvm_map of a recovered segment truncate too, and rvm_map copied (or
 *          maps) exactly that file, so memory == file at rvm_map;
 *      (2) no-steal: only truncation (and applying ahead, its first half: trunc.c) writes
 *          the segment, only committed records, and each record only once;
 *      (3) a record naming a TF_FILE page is made only (a) by a tracked commit that
 *          collected the page, which clears TF_FILE in the same commit (the snapshot becomes
 *          the twin, or the page is logged whole from then on), or (b) by an explicit
 *          transaction, whose commit reaches track_note_commit, which turns the page's image
 *          into a twin (the file's page + the committed bytes) before it can be collected
 *          (both hold tracker.mu). So no record ever applies to the file page of a TF_FILE page.
 *    At its first commit a TF_FILE page is diffed against its file page (pread into one
 *    scratch page, ~1 us from the page cache; a hole reads as zeros without I/O), and only
 *    then does it take a twin from the budget. A write made between rvm_map and rvm_track
 *    without a transaction is not committed: with lazy twins it is logged by the first
 *    commit that finds the page written again (with eager twins it was never logged).
 *    Untouched pages cost nothing: restart maps, it does not read.
 *  - Budget: at most `budget` bytes of twins per process (default TRACK_DEFAULT_BUDGET,
 *    rvm_track_configure). A page that has no twin because the budget is spent is logged
 *    WHOLE: new-value logging of a whole page is always correct, twins only make records
 *    smaller. Beyond the twins, snapshot slots are touched only for the pages of a commit
 *    in flight (transient, at most the dirty set). When more slot pages were copied into
 *    than the twins + 1/4 (+ TRACK_TRIM_SLACK) since the last sweep, the following commits
 *    return the unused ones to the kernel (MADV_DONTNEED; an incremental sweep, at most
 *    TRACK_TRIM_RUNS madvise calls per commit), so resident slot memory stays near the twins
 *    + the dirty set.
 *
 * ONE INSTANT. A commit contains every write that happened before one instant in any
 * thread and none after. We take the instant at a safepoint
 * (track_safepoint.c): every other thread of the process is stopped in a signal handler,
 * the dirty set is collected (vmprim re-arms = write-protects those pages in the same
 * step), and then:
 *  - hook backends: the threads are released at once. A collected page is PENDING: its
 *    content at the instant is the live page, until some thread writes it; that write
 *    faults (the page was re-armed), and the first-write hook copies the page into the
 *    free slot *before* the write proceeds (Appel & Li's concurrent checkpoint) and
 *    marks it SNAP. The committing thread meanwhile diffs each PENDING page live against
 *    its twin and then tries PENDING -> CLEAN with a CAS; if the CAS fails, a hook got
 *    there first and the live diff may be torn: it is thrown away and the page is diffed
 *    from its snapshot instead. The pause is the time to stop, collect and mark.
 *  - wp-async: there is no hook, so a write after release could not be caught: the dirty
 *    pages are copied DURING the pause (0.2 us per page) into a pool of snapshot pages
 *    reused by every commit (populated before the stop), and diffed after release. The
 *    pause grows with the dirty set; it is measured and reported separately. A big dirty
 *    set is copied before the stop while the threads run, and only the pages written
 *    after their copy are copied again in the pause (PRECOPY in track_capture.c).
 * A caller that holds locks only so that the instant is consistent (the shim's heap locks)
 * gets them back right after the release (track_commit_then), not after the log write.
 * The pause must not call malloc or anything that takes a libc lock: a parked thread may
 * hold it. All memory the pause needs (page list, carry bitmaps) is allocated at
 * rvm_track time; the snapshot pool and the record grow with mmap/mremap only.
 *
 * Per-page states (one _Atomic uint8_t; low two bits):
 *   CLEAN    memory == committed image (hook backends: no twin needed)
 *   DIRTY    written this epoch; the twin (if TF_TWIN) holds the committed image
 *   PENDING  collected by the commit in flight; the live page is its content at the instant
 *   SNAP     collected, then written (hook) or copied (wp-async): the non-twin slot (wp-async:
 *            the pool page, or the non-twin slot if the pool could not grow) holds its
 *            content at the instant
 * Flags: TF_TWIN (a twin exists), TF_SLOTB (twin is slot B, else A; snapshot is the other).
 * Transitions: hook CLEAN->DIRTY (copy to twin) and PENDING->SNAP (copy to other slot);
 * commit (threads stopped) DIRTY->PENDING (hook) or any->SNAP after copying (wp-async);
 * differ PENDING->CLEAN, SNAP->DIRTY (hook: snapshot becomes the twin) or SNAP->CLEAN
 * (wp-async: the snapshot is copied into the twin slot). Only the hook and the differ race, and only on
 * PENDING; every other transition has a single owner.
 *
 * DIFF. Changed bytes are found word by word (memcmp first: identical pages cost ~0.09 us);
 * runs of changed bytes separated by fewer than `merge_gap` bytes (default 32) are merged,
 * because every range costs a header in the log; runs that end at a page end and restart
 * at the next page's start are joined.
 *
 * DURABILITY. The ranges go to the sink (core's commit-vector entry) as one transaction,
 * flush or no_flush (rvm_commit_mode). Twins are advanced while diffing, i.e. before the
 * record is durable: if the sink fails, the tracked state no longer matches the log, so the
 * failure is sticky: every later commit returns the same error (as core's own I/O errors
 * are); the process must restart and recover.
 *
 * EXPLICIT TRANSACTIONS on tracked memory: core calls track_note_commit() for each range an
 * explicit transaction committed; we copy the committed bytes into the page's twin, so the
 * next rvm_commit does not log them again. (A no_restore abort leaves uncommitted bytes in
 * memory; a later rvm_commit logs them -- that is what no_restore means.)
 *
 * KERNEL WRITES (read(2) into tracked memory): with the hook backends the kernel's write
 * fails with EFAULT unless track_prepare_write() (rvm_track_prepare_write) ran first; it
 * calls the hook and opens the pages. It holds `kw` as a reader while inside vmprim (which
 * then holds its tracker lock), so a capture (the writer) never stops a thread there. A
 * commit between the prepare and the kernel write re-arms the pages; the kernel write then
 * fails with EFAULT and the caller prepares again and retries (lrvm.h says so).
 *
 * RELEASED MEMORY (rvm_track_release; the shim's heap gives freed pages back this way). A
 * released page reads as zeros (anonymous memory) or as the segment file's bytes (a private
 * file mapping, which may be older than the last commit until truncation): memory no longer
 * equals the committed image, and the hook backends relied on exactly that equality for a
 * CLEAN page -- its first write copied memory into the twin. A later write of zeros (calloc)
 * then diffed as "no change", and a restart brought back the old bytes. And with
 * uffd-sigbus the release also dropped the write protection, so later writes went unseen
 * (vmp_dirty_release protects the pages again). So a CLEAN page without a twin that is
 * released is marked TF_LOST: its next first write takes no twin, and the commit logs it
 * whole (always correct). A page that is never written again is not logged at all: it is
 * free memory, whose content the heap never relies on (calloc writes its zeros). A page with
 * a twin keeps it (the twin is the committed image, whatever memory holds). wp-async keeps
 * a twin or the TF_FILE claim for every page (file mapping: a released TF_FILE page reads
 * the file, which is its committed image), so it needs no mark.
 *
 * ROBUST MUTEXES (hook backends). The kernel writes the lock word of a robust mutex when its
 * owner exits (FUTEX_OWNER_DIED, then it wakes a waiter). That is a kernel write: into a page
 * a commit protected again, it fails, and the waiters sleep forever (seen: the next
 * pthread_mutex_lock hung instead of returning EOWNERDEAD). So each commit, while the
 * threads are parked and after the collect, opens again the pages of the lock words on every
 * parked thread's robust list (get_robust_list: the list the kernel walks at exit), as a
 * prepare_write would: those pages stay writable, and the hook has kept their content at the
 * instant. A mutex locked after the commit has its page opened by the locking store itself.
 *
 * THE HOOK AND THE SAFEPOINT: in a fault, vmprim marks the page written before it opens it,
 * and a collect waits for the opening; a thread parked in between would deadlock the
 * capture. The hook therefore blocks LRVM_TRACK_SIGNAL for the rest of the fault handler
 * (the kernel restores the mask on return). See track_hook.
 *
 * FORK: a child's copy of tracked memory is plain memory (userfaultfd registrations are not
 * inherited) and rvm_commit in the child fails: the tracker and the log are the parent's.
 *
 * Concurrency: `mu` serialises rvm_track/untrack/commit/note_commit; the hook takes no lock.
 */
#ifndef LRVM_CORE_TRACK_H
#define LRVM_CORE_TRACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lrvm/lrvm.h>
#include <lrvm/vmprim.h>
#include <rvm/rvm.h>

#pragma GCC visibility push(hidden)

#define TRACK_MAX_REGIONS 64                     /* vmprim: DIRTY_MAX_RANGES per tracker */
#define TRACK_DEFAULT_BUDGET ((uint64_t)1 << 30) /* bytes of twins per process */
#define TRACK_DEFAULT_GAP 32                     /* merge runs closer than this */
#define TRACK_TRIM_RUNS 256                      /* madvise calls per commit, at most */
#define TRACK_STREAM_MIN \
    ((uint64_t)1 << 20) /* durable records at least this big are
                                                    * streamed to the log, not queued */
#define TRACK_TRIM_SLACK \
    4096 /* slot pages beyond the twins before a
                                                    * sweep (16 MiB of 4 KiB pages) */

/* per-page state byte */
enum { TS_CLEAN = 0, TS_DIRTY = 1, TS_PENDING = 2, TS_SNAP = 3, TS_MASK = 3 };
#define TF_TWIN 4
#define TF_SLOTB 8
#define TF_FILE 16 /* wp-async, no twin yet: the committed image is the segment file's */
#define TF_LOST \
    32 /* hook backends, CLEAN: memory was released (track_release) and no
                       * longer holds the committed image: log the page whole when written */

/* one range of a tracked commit: `len` new bytes at segment offset `off` of the region
 * `cookie` (the rvm_region_t given to rvm_track) */
struct track_range {
    const rvm_region_t *cookie;
    char *dest; /* the memory these bytes are the new value of */
    uint64_t off;
    uint64_t len;
    const char *src;
};

/* The sink commits n ranges as ONE transaction of the redo log; with flush it returns only
 * when the record is durable. *logged: bytes the record takes in the log. Returns an
 * rvm_return_t. Core's adapter is track_core.c; tests plug their own. */
typedef rvm_return_t (*track_sink_fn)(void *arg, const struct track_range *r, size_t n, int sync,
                                      uint64_t *logged);

/* a tracked region */
struct track_region {
    rvm_region_t *pub; /* the caller's descriptor (its fields are copied below) */
    char *base;        /* page aligned */
    uint64_t len;      /* bytes of the region (may end inside the last page) */
    size_t npages;
    uint64_t seg_off;          /* segment offset of base */
    int file_fd;               /* the segment (lazy twins, TF_FILE pages), or -1 */
    char *slots;               /* 2 * npages pages: A = [0, npages), B = [npages, 2 npages) */
    _Atomic uint8_t *st;       /* per-page state byte (access: track_st_load/store/cas) */
    uint8_t st_xor;            /* TF_FILE in a lazy-twin region: that bit is stored inverted */
    _Atomic uint64_t *carry;   /* pages collected and not yet committed (bitmap) */
    size_t carry_lo, carry_hi; /* the words of carry that may hold a bit: [lo, hi), so a
                                * capture looks at the pages collected, not at the whole
                                * region (the shim's heap reservation has 4 M pages) */
    _Atomic size_t slots_hi;   /* no slot at or beyond this page index was ever copied into:
                              * the trim sweeps [0, slots_hi) only */
    uint32_t *seen;            /* tracker.ncaptures when the page was last captured (eviction) */
    uint32_t *preq;            /* wp-async: 1 + the pool page holding the page's precopy, or 0
                                * (PRECOPY in track_capture.c) */
    size_t nwords;
};

#define TRACK_COVER_RING 4096u  /* captures whose covering log seq is kept one by one */
#define TRACK_REFILE_SCAN 4096u /* pages the refiling sweep looks at per commit, at least */
/* a daemon that has not applied the records of a commit that ended this long ago lags: the
 * commits meanwhile keep twins (REFILING in track_twin.c). It applies within ~10 ms. */
#define TRACK_LAG_MS 50u
/* meanwhile only the pages captured by one of this many commits before keep twins: a page
 * written once (a heap being built) is seldom written again soon */
#define TRACK_WARM_CAPTURES 8u

/* the pause lengths counted by track_pause_counts, in ms */
#define TRACK_PAUSE_BOUNDS 6
#define TRACK_PAUSE_MS      \
    {                       \
        1, 2, 5, 10, 20, 50 \
    }

/* process-wide tracking state (tracker) */
struct track_state {
    pthread_mutex_t mu;
    pthread_rwlock_t kw; /* prepare_write (readers) vs a commit's capture (writer) */
    int configured;
    vmp_backend_t want_backend;
    uint64_t budget_pages;
    unsigned merge_gap;
    vmp_dirty_t *dirty; /* created with the first rvm_track */
    pid_t pid;          /* the process that created it (fork: children refused) */
    vmp_backend_t backend;
    int hook_backend; /* the backend calls our first-write hook */
    struct track_region *_Atomic regions[TRACK_MAX_REGIONS]; /* read by the hook */
    size_t nregions_hw;                                      /* high-water index + 1 */
    _Atomic uint64_t twin_pages;                             /* twins in existence (budget) */
    _Atomic uint64_t hook_snaps; /* captured pages copied by a hook before a write (the
                                  * concurrent-checkpoint path; tests look at it) */
    uint64_t file_reads;         /* TF_FILE pre-images read from the segment (tests) */
    uint64_t file_read_errors;   /* ... that failed: those pages were logged whole */
    uint64_t zero_copy_commits;  /* final commits written from the memory while parked */
    int flush;                   /* rvm_commit_mode: 1 flush, 0 no_flush */
    rvm_return_t sticky;         /* a sink failure: every later commit fails */
    char sticky_msg[256];
    track_sink_fn sink; /* NULL: core (track_core_sink) */
    void *sink_arg;
    /* commit scratch, allocated outside the pause */
    uint64_t *plist;   /* captured pages: region slot << 40 | page index */
    uint32_t *pool_of; /* wp-async: the pool page of plist entry q's snapshot */
    size_t npre;       /* plist[0, npre): precopied pages, entry q's copy in pool page q
                        * (PRECOPY in track_capture.c) */
    size_t npre_taken; /* of those, taken by the last capture (their preq still to clear) */
    size_t plist_bytes, pool_of_bytes; /* the mappings of the two lists */
    size_t pool_used;                  /* pool pages the last capture used */
    uint64_t precopied;                /* pages copied before a pause (statistics, tests) */
    _Atomic uint64_t slot_touches;     /* slot pages copied into since the last trim (estimate
                                    * of resident slot memory) */
    int trim_active;                   /* a sweep of unused slots is in progress (track_trim) */
    size_t trim_k, trim_i;             /* its cursor: region slot, slot area (trim_b), page */
    int trim_b;
    uint64_t trim_kept;      /* slots found in use so far in this sweep */
    uint32_t ncaptures;      /* commits that captured pages (the eviction clock's time) */
    size_t clock_k, clock_i; /* the eviction clock's hand (wp-async beyond the budget) */
    /* REFILING (track_twin.c): cover[k % TRACK_COVER_RING] is a log seq at or after every
     * record capture k made (UINT64_MAX: not known yet); captures older than the ring are
     * covered by cover_old */
    int refile; /* wp-async, core's sink, a lazy-twin region: refiling is on */
    int warmed; /* track_commit_warm populated the pool for the coming commit */
    uint64_t cover[TRACK_COVER_RING];
    uint64_t cover_ns[TRACK_COVER_RING]; /* when each entry of cover was noted */
    uint64_t cover_old;
    uint32_t cover_hi;         /* the newest capture with an entry */
    uint32_t cover_pending;    /* the oldest capture whose entry is UINT64_MAX, 0 = none */
    uint64_t applied_seen;     /* the log seq applied to the segments, read before the
                                * coming capture (a lower bound: it only grows) */
    uint64_t file_wanted;      /* the segments must hold this seq for the PLIST_FILE_WANTED
                                * pages of the coming diff to be diffed against them */
    size_t refile_k, refile_i; /* the refiling sweep's hand */
    uint64_t refiled;          /* twins given back because the file holds the image (tests) */
    size_t plist_cap;
    rvm_track_statistics_t st;
    uint64_t pauses_over[TRACK_PAUSE_BOUNDS]; /* pauses longer than each bound (ms) */
};

extern struct track_state tracker;

/* track_pause_counts -- how many commit pauses were longer than each of TRACK_PAUSE_MS (the
 * maximum alone says little: one pause in thousands sets it) */
void track_pause_counts(uint64_t over[TRACK_PAUSE_BOUNDS]);
/* track_precopied_pages -- pages wp-async copied before a pause (PRECOPY), in all */
uint64_t track_precopied_pages(void);

/* track_region.c, track_commit.c, track_twin.c, track_hooks.c (track_int.h: which holds what) */
rvm_return_t track_configure(const rvm_track_options_t *o);
rvm_return_t track_region_add(rvm_region_t *region);
/* track_region_add_sparse -- rvm_track for a region of private memory of which only the
 * first wp_len bytes can hold populated pages (the shim's heap reservation, just mapped:
 * wp_len = the heap in use). wp-async then write-protects only that part (see
 * vmp_dirty_arm_sparse: 67 ms and 32 MiB of page tables saved at a 16 GiB reservation, and
 * ~20 ms off every commit's pause). */
rvm_return_t track_region_add_sparse(rvm_region_t *region, uint64_t wp_len);
rvm_return_t track_region_remove(const rvm_region_t *region, int implicit);
rvm_return_t track_commit(void);
/* track_commit_final -- rvm_commit for the last commit of a process (the shim's exit
 * commit): with wp-async the dirty pages are diffed in place while the other threads are
 * still parked, instead of being copied into snapshot slots that would become twins nobody
 * uses. The record is streamed to the log (txn_commit_stream: no copy in core), and when
 * core can write it without waiting for any parked thread (txn_stream_ready/_fits) it is
 * written from the tracked memory itself before the release (ZERO-COPY FINAL COMMIT in
 * track_commit.c): an exit commit of a whole dirty heap then holds no copy of it. The pause is the
 * whole diff (and then the write). Pages are left without a committed image, so a later
 * commit is still correct (it logs them whole). Always durable (flush). */
rvm_return_t track_commit_mode(int final);
#define track_commit_final() track_commit_mode(1)
/* track_commit_warm -- before a commit whose caller first takes locks the program's threads
 * wait on (the shim's heap locks): do now what the commit would do before its pause with those
 * locks held: wp-async's precopy of a big dirty set, or populating its snapshot pool for a
 * small one (a 256 MiB dirty set took 0.3 s to populate, and the program's malloc waited for
 * it). The next commit then skips its own; pages written in between are copied in the pause,
 * as they always could be. */
void track_commit_warm(void);

/* track_commit_then -- track_commit_mode(final), calling released(arg) exactly once: as soon
 * as the instant is captured and the other threads run again, or, if the commit ends before
 * its instant (refused, nothing tracked, the stop failed), before it returns. Locks a caller
 * holds only so that the instant is consistent (the shim's heap locks: no allocator update
 * half made) are released there: from then on nothing the program writes enters this commit
 * (wp-async: the dirty pages were copied before or in the pause; fault backends: a write
 * copies the page first), so the program need not wait for the diff and the log write. released runs
 * with tracker.mu held: it must not call back into tracking. */
rvm_return_t track_commit_then(int final, void (*released)(void *arg), void *arg);
/* track_note_commit -- an explicit transaction committed [addr, addr+len): bring the twins
 * of tracked pages in that range up to date. Core calls it after the record is queued. */
void track_note_commit(const void *addr, uint64_t len);
/* track_on_unmap -- core calls it before unmapping [addr, addr+len): RVM_EUNCOMMIT if a
 * tracked region there has uncommitted changes, else untracks it and returns 0 */
rvm_return_t track_on_unmap(const void *addr, uint64_t len);
rvm_return_t track_prepare_write(void *addr, size_t len);
/* track_release -- give tracked memory back to the kernel, keeping it tracked (RELEASED
 * MEMORY above) */
rvm_return_t track_release(void *addr, size_t len);
/* track_release_try -- track_release unless it would wait: 0 released, EAGAIN when a commit
 * holds the tracker (its log write and fdatasync can take milliseconds, and a free() that
 * waited for them stalled the program: up to 47 ms at interval:100ms), EIO on an error
 * (track_err set). The shim's heap keeps the memory resident and releases it later. */
int track_release_try(void *addr, size_t len);
/* track_owns -- 1 if p lies in the tracker's own memory (the twin and snapshot slots of a
 * tracked region: twice the region's size, 32 GiB for the shim's default heap reservation).
 * No pointer the program holds leads there, so a word with such a value is an integer (the
 * shim's restorability scan). Reads the region table without the tracker's lock: regions are
 * assumed not to be untracked meanwhile (the shim's stay until exit). */
int track_owns(const void *p);
/* track_on_terminate -- rvm_terminate: RVM_EUNCOMMIT if any tracked region has uncommitted
 * changes, else untrack every region */
rvm_return_t track_on_terminate(void);
void track_set_sink(track_sink_fn fn, void *arg);
/* track_reset -- untrack everything, destroy the tracker, forget configuration (tests) */
void track_reset(void);
/* track_errmsg -- message of the last failure of a track_* call */
const char *track_errmsg(void);

/* track_core.c */
/* track_core_sink -- the default sink: core's txn_commit_vector */
rvm_return_t track_core_sink(void *arg, const struct track_range *r, size_t n, int sync,
                             uint64_t *logged);
/* track_core_sink_stream -- the sink of a final commit, and of any durable record of at
 * least TRACK_STREAM_MIN bytes: same record, written to the log from r[i].src in bounded
 * pieces instead of copied into core's queue (txn_commit_stream) */
rvm_return_t track_core_sink_stream(void *arg, const struct track_range *r, size_t n, int sync,
                                    uint64_t *logged);
/* track_core_cover_seq -- the newest log seq given to a record so far, UINT64_MAX while the
 * no_flush coalescing set holds records without one */
uint64_t track_core_cover_seq(void);
/* track_core_applied_seq -- every record up to this seq is in the segments' page cache */
uint64_t track_core_applied_seq(void);
/* track_core_apply_ahead -- ask core's truncation daemon to apply durable records to the
 * segments soon after they become durable (REFILING in track_twin.c); 1 if a daemon runs */
int track_core_apply_ahead(void);
/* track_core_apply_through -- make the segments' page cache hold every durable record up
 * to seq now (the daemon's work, done by the caller); returns track_core_applied_seq */
uint64_t track_core_apply_through(uint64_t seq);
/* track_core_stream_ready -- 1 if track_core_sink_stream can run with the other threads
 * parked (no core lock or log writer a parked thread could be holding: txn_stream_ready) */
int track_core_stream_ready(void);
/* track_core_stream_fits -- 1 if the record of these ranges fits in the log without waiting
 * for truncation (txn_stream_fits) */
int track_core_stream_fits(const struct track_range *r, size_t n);
/* track_core_check_mapped -- is [addr, addr+len) inside one region mapped by rvm_map?
 * *priv: 1 if it is a RVM_MAP_PRIVATE (file) mapping */
rvm_return_t track_core_check_mapped(const char *addr, uint64_t len, int *priv);
/* track_core_unfile -- a region rvm_map mapped from the file by default becomes anonymous
 * memory with the same bytes; *still_file: it remains a file mapping (RVM_MAP_PRIVATE) */
rvm_return_t track_core_unfile(const char *addr, uint64_t len, int *still_file);
/* track_core_file_image -- the segment descriptor whose file holds the committed image of
 * the region's pages (lazy twins), or -1 (see seg_file_image); an rvm_return_t */
rvm_return_t track_core_file_image(const char *addr, uint64_t len, int *fd);

/* track_diff.c */
/* one run of changed bytes within a page: [off, off+len) */
struct track_run {
    uint32_t off;
    uint32_t len;
};
/* track_diff_page -- runs where cur differs from old over len bytes, merged across gaps
 * smaller than gap; returns the number of runs (at most len/ (gap+1) + 1) */
size_t track_diff_page(const char *cur, const char *old, size_t len, unsigned gap,
                       struct track_run *runs);

/* track_safepoint.c */
struct track_safepoint_stats {
    unsigned nthreads; /* threads parked */
    unsigned nrounds;  /* enumeration rounds */
    unsigned nskipped; /* threads skipped: they block LRVM_TRACK_SIGNAL */
};
/* track_safepoint_stop -- park every other thread of the process in a signal handler;
 * returns 0 or an errno (ETIMEDOUT: a thread did not park, message via track_errmsg) */
int track_safepoint_stop(struct track_safepoint_stats *ss);
/* track_safepoint_each -- fn(tid, arg) for each parked thread and the stopping thread */
void track_safepoint_each(void (*fn)(pid_t tid, void *arg), void *arg);
/* track_safepoint_release -- let the parked threads go */
void track_safepoint_release(void);
/* track_safepoint_set_check -- a check run at each instant; nonzero declines it (the stop
 * then fails with EAGAIN after releasing the threads) */
void track_safepoint_set_check(int (*fn)(void *arg), void *arg);
/* track_safepoint_message -- why the last stop failed */
const char *track_safepoint_message(void);

#pragma GCC visibility pop

#endif /* LRVM_CORE_TRACK_H */
