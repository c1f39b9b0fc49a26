/* SPDX-License-Identifier: MIT */
/*
 * lrvm/lrvm.h -- lrvm's extensions to the LRVM interface: auto-tracked regions.
 *
 * With the original LRVM every write to recoverable memory must be announced with
 * rvm_set_range inside a transaction; forget one and the write is silently not recoverable.
 * A *tracked* region needs no set_range: page protection (vmprim's DIRTY tracker) tells
 * lrvm which pages were written, and rvm_commit() logs the bytes that changed since the
 * previous commit, as one transaction in the same redo log as explicit transactions.
 *
 *   rvm_map(&region, NULL);           // as usual
 *   rvm_track(&region);               // from now on plain stores are enough
 *   region.vmaddr[10] = 'x';          // any thread, any way (memcpy, stores, read(2) --
 *   rvm_commit();                     //  see rvm_track_prepare_write)
 *
 * Semantics of rvm_commit: every write to every tracked region made before one instant, in
 * any thread, and none made after, becomes durable atomically (flush mode: on return;
 * no_flush: at the next rvm_flush or flush commit, or lost whole on a crash). The other
 * threads are stopped only to take that instant (a signal-based safepoint; the signal is
 * LRVM_TRACK_SIGNAL, a real-time signal). Threads that block LRVM_TRACK_SIGNAL at the
 * instant (e.g. a signal-handling thread in sigwait, a library's helper thread) are not
 * stopped: they must not write tracked memory. Recognising such a thread costs the first
 * commit that meets it a 50 ms wait (a thread inside a fault handler blocks the signal for
 * microseconds and must not be mistaken for one); later commits skip it at once. System calls interrupted by it are restarted (SA_RESTART), except those Linux
 * never restarts (see signal(7): e.g. nanosleep returns the time left, epoll_wait/poll/select
 * return EINTR) -- the same rule as for any signal.
 *
 * Explicit transactions may still be used on tracked regions; their ranges are not logged a
 * second time by the next rvm_commit.
 *
 * fork(): in a child, the tracked regions are plain memory; rvm_commit there fails with
 * RVM_EINTERNAL (the tracker and the log belong to the parent).
 *
 * All calls return RVM_SUCCESS or an LRVM code; rvm_errmsg says what failed and what to do.
 * Thread safety: every call may be made from any thread.
 */
#ifndef LRVM_LRVM_H
#define LRVM_LRVM_H

#include <signal.h>
#include <rvm/rvm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The signal used to stop threads for the instant of a commit. */
#define LRVM_TRACK_SIGNAL (SIGRTMAX - 3)

/** Options of tracking (rvm_track_configure). Zero-initialise, then set what you need. */
typedef struct rvm_track_options {
    const char *backend;      /**< "auto" (NULL), "wp-async", "uffd-sigbus", "mprotect" */
    rvm_length_t twin_budget; /**< bytes of committed images kept (0: 1 GiB). Pages
                                 *   beyond it are logged whole: correct, only bigger. */
    rvm_length_t merge_gap;   /**< changed runs closer than this are merged (0: 32) */
} rvm_track_options_t;

/** Statistics of tracking (rvm_track_statistics). Times in nanoseconds. */
typedef struct rvm_track_statistics {
    char backend[16];               /**< DIRTY backend in use ("" before the first rvm_track) */
    rvm_length_t n_commits;         /**< rvm_commit calls that logged something */
    rvm_length_t n_empty_commits;   /**< rvm_commit calls with no changed byte */
    rvm_length_t pages_dirtied;     /**< dirty pages collected, summed over commits */
    rvm_length_t bytes_diffed;      /**< bytes compared against twins */
    rvm_length_t whole_pages;       /**< pages logged whole (no twin: budget) */
    rvm_length_t ranges_logged;     /**< new-value ranges emitted */
    rvm_length_t bytes_logged;      /**< new-value bytes emitted */
    rvm_length_t record_bytes;      /**< log bytes of the records (headers included) */
    rvm_length_t twin_pages;        /**< pages holding a committed image now */
    rvm_length_t twin_budget_pages; /**< the budget, in pages */
    rvm_length_t trims;             /**< times unused snapshot/twin memory was given back */
    rvm_length_t last_threads;      /**< threads stopped by the last commit */
    rvm_length_t last_skipped;      /**< threads not stopped: they block LRVM_TRACK_SIGNAL */
    rvm_length_t last_pages;        /**< dirty pages of the last commit */
    rvm_length_t last_pause_ns;     /**< the application's pause in the last commit */
    rvm_length_t last_stop_ns;      /**<   of which: stopping the other threads */
    rvm_length_t last_capture_ns;   /**<   of which: collect + re-arm (+ copy, wp-async) */
    rvm_length_t max_pause_ns;
    rvm_length_t total_pause_ns;
    rvm_length_t last_commit_ns; /**< whole rvm_commit call, last */
    rvm_length_t total_commit_ns;
    rvm_length_t last_durable_ns; /**< wait for the log (write + sync) in the last commit */
    rvm_length_t total_durable_ns;
} rvm_track_statistics_t;

/**
 * rvm_track_configure -- choose the backend, twin budget and merge gap. Only before the
 * first rvm_track (or after every region was untracked).
 * @return RVM_SUCCESS; RVM_EOPTIONS (unknown backend name, or backend unusable here: see
 *         rvm_errmsg); RVM_EUNCOMMIT (regions are tracked).
 */
RVM_API rvm_return_t rvm_track_configure(const rvm_track_options_t *opts);

/**
 * rvm_track -- from now on, writes to this mapped region need no set_range. The region's
 * memory must be as rvm_map makes it (vmaddr page aligned); a RVM_MAP_PRIVATE mapping only
 * with the wp-async backend (the others refuse it: RVM_EREGION). Changes made before this
 * call without set_range are not committed; they are part of a later commit only if their
 * page is written again (with wp-async they are then logged; with the other backends, and
 * for no_copy regions, the region's content at this call is taken as committed). With
 * wp-async, a region whose memory rvm_map made from the segment (not no_copy) gets its
 * committed images lazily from the segment file: tracking a large region costs no copy and
 * no memory; rvm_track first writes the segment's pending log records to it. No other thread
 * may write the region during this call. Memory: the tracker reserves 2 x the region's size
 * of virtual memory (MAP_NORESERVE) for committed images and commit snapshots; only pages
 * that are used become resident: twins are bounded by the budget, snapshots by the pages
 * of a commit, and unused slots are given back to the kernel when their total exceeds the
 * budget by a quarter.
 * @return RVM_SUCCESS; RVM_EREGION (NULL or not a region); RVM_ENOT_MAPPED; RVM_ERANGE
 *         (vmaddr not page aligned, length 0); RVM_EOVERLAP (already tracked or overlaps a
 *         tracked region); RVM_ETOO_BIG (64 regions tracked already); RVM_ENO_MEMORY;
 *         RVM_EINTERNAL (the DIRTY tracker failed: rvm_errmsg says why).
 */
RVM_API rvm_return_t rvm_track(rvm_region_t *region);

/**
 * rvm_untrack -- stop tracking a region. Writes then need set_range again.
 * @return RVM_SUCCESS; RVM_EREGION (not tracked); RVM_EUNCOMMIT (the region has changes not
 *         yet committed: call rvm_commit first; the region stays tracked).
 */
RVM_API rvm_return_t rvm_untrack(rvm_region_t *region);

/**
 * rvm_commit -- atomically commit every change to every tracked region since the previous
 * commit, as one transaction; flush mode (default) returns when it is durable.
 *
 * Aware programs (the program's own consistency points): a program linked with -llrvm may
 * call rvm_commit() whether or not it runs under liblrvm-preload.so.
 *  - Under the shim with LRVM_SEGMENT, the shim's rvm_commit interposes liblrvm's and commits
 *    the persistent heap (and whatever else the shim tracks) exactly like the shim's own
 *    exit/signal/interval commits: same lock, same instant semantics. Counted as "explicit"
 *    in LRVM_STATS. The LRVM_COMMIT hooks stay as configured (LRVM_COMMIT=none leaves the
 *    program's calls as the only commit points).
 *  - Under the shim without LRVM_SEGMENT (volatile heap), and without the shim when the
 *    program tracks nothing itself: nothing to commit, RVM_SUCCESS. Such a program runs,
 *    without persistence, and need not test the result for this case.
 *  - In a child of fork() of a shim process: RVM_EINTERNAL (the child's heap is a private,
 *    volatile copy; it never writes the parent's log or segment).
 * @return RVM_SUCCESS; RVM_EIO (the log write failed; sticky); RVM_EINTERNAL (a thread did
 *         not stop for the instant, or the DIRTY tracker failed, or a fork child: rvm_errmsg).
 */
RVM_API rvm_return_t rvm_commit(void);

/** rvm_commit_mode -- flush (default) or no_flush for later rvm_commit calls.
 *  @return RVM_SUCCESS; RVM_EMODE for another mode. */
RVM_API rvm_return_t rvm_commit_mode(rvm_mode_t mode);

/**
 * rvm_track_prepare_write -- call before a system call writes into tracked memory (read,
 * recv, ...): with the uffd-sigbus and mprotect backends such a kernel write otherwise
 * fails with EFAULT. No-op with wp-async. If the system call still fails with EFAULT (a
 * commit in another thread re-armed the pages in between), prepare again and retry.
 * @return RVM_SUCCESS; RVM_EINTERNAL (rvm_errmsg).
 */
RVM_API rvm_return_t rvm_track_prepare_write(void *addr, rvm_length_t len);

/**
 * rvm_track_release -- give the whole pages inside [addr, addr+len) back to the kernel
 * (MADV_DONTNEED) and keep them tracked: use it instead of madvise on tracked memory you no
 * longer need (an allocator's free pages). Afterwards they read as zeros (anonymous memory)
 * or as the segment's bytes (a private mapping of it); nothing is logged for the release
 * itself, and the next commit after a page is written again logs that page whole. A page never
 * written again keeps its last committed bytes in the segment. A plain madvise on tracked
 * memory breaks tracking with uffd-sigbus and mprotect (later writes are lost or diffed
 * against the wrong image): do not do that. Nobody may write the range during the call.
 * @return RVM_SUCCESS (also when the backend has to keep the memory resident);
 *         RVM_EINTERNAL (rvm_errmsg).
 */
RVM_API rvm_return_t rvm_track_release(void *addr, rvm_length_t len);

/** Named roots: the longest name (bytes, without the NUL) and the number of names. */
#define RVM_ROOT_NAME_MAX 47
#define RVM_ROOTS_MAX 64

/**
 * rvm_root_set -- bind name to ptr, or delete name (ptr NULL; deleting an unknown name is
 * RVM_SUCCESS). A restarted program finds its data with rvm_root_get instead of a global.
 *
 * Under liblrvm-preload.so with LRVM_SEGMENT the table lives in the persistent heap and is
 * committed with everything else: after a crash or kill, rvm_root_get sees the bindings of
 * the last commit, never a later or half-made one (a binding set but not committed is gone).
 * ptr should point into the persistent heap (memory from malloc under the shim) or be a
 * value that means something to the next run; the pointer is stored, not what it points to.
 * Otherwise (no shim, or a volatile heap) the table is process-local: the calls work, nothing
 * persists. The table is created in the heap on the first rvm_root_set (one 4 KiB block; a
 * crash before the commit that first follows it leaks that block once).
 * Thread safety: any thread; calls are serialised. In a fork child the table is the child's
 * private copy.
 * @return RVM_SUCCESS; RVM_ENAME_TOO_LONG (name NULL, empty or longer than
 *         RVM_ROOT_NAME_MAX bytes); RVM_ETOO_BIG (RVM_ROOTS_MAX names are bound already:
 *         delete one); RVM_ENO_MEMORY (the heap cannot hold the table). rvm_errmsg says why.
 */
RVM_API rvm_return_t rvm_root_set(const char *name, void *ptr);

/**
 * rvm_root_get -- the pointer bound to name, or NULL (never set, deleted, not committed
 * before a crash, or name invalid). Thread safety: as rvm_root_set.
 */
RVM_API void *rvm_root_get(const char *name);

/** rvm_track_statistics -- copy the tracking statistics. @return RVM_SUCCESS;
 *  RVM_ESTATISTICS for NULL. */
RVM_API rvm_return_t rvm_track_statistics(rvm_track_statistics_t *st);

#ifdef __cplusplus
}
#endif
#endif /* LRVM_LRVM_H */
