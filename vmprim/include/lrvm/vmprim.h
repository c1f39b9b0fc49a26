/* SPDX-License-Identifier: MIT */
/*
 * lrvm/vmprim.h -- Appel & Li's virtual-memory primitives for user programs, on Linux.
 *
 * Appel & Li (ASPLOS '91) name six primitives a runtime needs from the VM system:
 *
 *   TRAP   handle page faults in user mode              vmp_trap_register()
 *   PROT1  decrease the accessibility of one page       vmp_prot1()
 *   PROTN  decrease the accessibility of N pages        vmp_protn()
 *   UNPROT increase the accessibility of a page         vmp_unprot()
 *   DIRTY  which pages were written since last asked    vmp_dirty_*()
 *   MAP2   map one physical page at two addresses       vmp_map2()
 *
 * Conventions (stated once, for every call):
 *   - Every function returns an int: 0 on success, otherwise a positive errno value
 *     (EINVAL for bad arguments, ENOMEM, ENOTSUP, EPERM, ...). errno itself is not
 *     guaranteed to be preserved. Functions with more to say keep a message:
 *     vmp_dirty_errmsg().
 *   - Addresses and lengths passed in must be page aligned (vmp_page_size()) unless a
 *     call says otherwise; lengths must be > 0.
 *   - Thread safety: all calls may be made from any thread. A tracker (vmp_dirty) serialises
 *     its own control calls (arm, disarm, collect, prepare) with an internal mutex; writes to
 *     tracked memory from any number of threads are always allowed.
 *   - Nothing here is async-signal-safe unless it says so.
 *
 * The fault dispatcher. vmprim owns one process-wide handler for SIGSEGV and SIGBUS,
 * installed on first use with SA_SIGINFO|SA_ONSTACK|SA_RESTART (the signal stays blocked
 * while it runs; only kernel-generated faults, si_code > 0, are matched against ranges). A fault whose address lies in a registered range goes to that range's
 * handler; any other fault goes to the handler that was installed before ours ("chaining"):
 * an SA_SIGINFO handler is called with (sig, info, ucontext), a plain one with (sig), under the
 * sa_mask it was installed with. If that previous disposition is SIG_DFL or SIG_IGN (a fault
 * cannot be ignored: the kernel would kill the process anyway), vmprim restores SIG_DFL and
 * re-raises, so the process dies with the original signal and a core dump, exactly as without
 * vmprim -- after printing a backtrace to stderr if vmp_trap_set_backtrace(1) was called and
 * vmprim was built with libunwind.
 *
 * Limits: at most VMP_TRAP_MAX_RANGES registered ranges process-wide (a fixed, lock-free
 * table the signal handler can read). Backend "mprotect" splits VMAs: with per-page
 * protection the kernel's vm.max_map_count (default 65530 mappings per process) bounds how many
 * scattered dirty pages can exist at once; hitting it is reported as ENOMEM with a message.
 */
#ifndef LRVM_VMPRIM_H
#define LRVM_VMPRIM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VMP_BUILDING)
#define VMP_API __attribute__((visibility("default")))
#else
#define VMP_API
#endif

/** Capacity of the dispatcher's range table (process-wide). */
#define VMP_TRAP_MAX_RANGES 256

/** vmp_page_size -- the system page size (cached sysconf(_SC_PAGESIZE)). Async-signal-safe
 *  after the first call. */
VMP_API size_t vmp_page_size(void);

/* ---------------------------------------------------------------------------------------- */
/** @defgroup trap TRAP: the fault dispatcher                                                */

/**
 * A range's fault handler. Runs in signal context in the faulting thread: it must be
 * async-signal-safe and must not fault on memory it guards itself.
 * @param[in] addr  the faulting address (si_addr)
 * @param[in] sig   SIGSEGV or SIGBUS
 * @param[in] info  the siginfo of the fault
 * @param[in] uctx  the ucontext_t of the fault (may be modified, e.g. to skip an instruction)
 * @param[in] arg   the argument given at registration
 * @return 0 if the fault was handled (the instruction is restarted); non-zero if not ours,
 *         in which case the fault is passed on exactly like a fault outside every range.
 */
typedef int (*vmp_trap_fn)(void *addr, int sig, siginfo_t *info, void *uctx, void *arg);

/**
 * vmp_trap_register -- route faults in [addr, addr+len) to fn. Installs the dispatcher on
 * first use. Ranges may not overlap (the first matching entry wins; overlap is not checked).
 * @param[out] id  a handle for vmp_trap_unregister
 * @return 0; EINVAL (len 0, fn NULL); ENOSPC (table full: VMP_TRAP_MAX_RANGES);
 *         errno of sigaction if installing the dispatcher failed.
 */
VMP_API int vmp_trap_register(void *addr, size_t len, vmp_trap_fn fn, void *arg, int *id);

/**
 * vmp_trap_unregister -- remove a range. Returns only when no thread is still running its
 * handler, so the handler's arg may be freed afterwards.
 * @return 0; EINVAL for an unknown id.
 */
VMP_API int vmp_trap_unregister(int id);

/**
 * vmp_trap_install -- install the dispatcher now (otherwise done by the first register), so
 * the handler chained to is the one installed at this moment. Idempotent.
 */
VMP_API int vmp_trap_install(void);

/**
 * vmp_trap_set_chain -- replace the handler that foreign faults are chained to, as a
 * sigaction(2) would replace the process handler: act (may be NULL) becomes the disposition
 * for faults outside our ranges, the previous one is stored in oldact (may be NULL).
 *
 * For an LD_PRELOAD shim: wrap sigaction()/signal() and, for SIGSEGV and SIGBUS, call this
 * instead of the real sigaction. The application's handler then runs for its own faults while
 * vmprim's dispatcher stays first. Safe against concurrent faults (the dispatcher reads the
 * chained handler under a sequence lock); calls to it are serialised internally.
 * @param[in] sig  SIGSEGV or SIGBUS
 * @return 0; EINVAL for another signal.
 */
VMP_API int vmp_trap_set_chain(int sig, const struct sigaction *act, struct sigaction *oldact);

/**
 * vmp_trap_reclaim -- check that the dispatcher is still the kernel's handler for sig, and
 * put it back if something replaced it without vmp_trap_set_chain (a direct rt_sigaction
 * system call, or a library's private sigaction): the handler found installed becomes the
 * chained one. Until then, faults in registered ranges went to that handler.
 * @param[in] sig  SIGSEGV or SIGBUS
 * @return 0 if nothing was to be done (or the dispatcher is not installed); EAGAIN if the
 *         dispatcher had been replaced and is back; EINVAL for another signal; an errno of
 *         sigaction(2).
 */
VMP_API int vmp_trap_reclaim(int sig);

/**
 * vmp_trap_set_backtrace -- on a genuine crash (a fault that ends with the default action),
 * print a backtrace to stderr before dying. Uses libunwind and write(2) only.
 * @return 0; ENOTSUP if vmprim was built without libunwind (on == 0 always succeeds).
 */
VMP_API int vmp_trap_set_backtrace(int on);

/* ---------------------------------------------------------------------------------------- */
/** @defgroup prot PROT1, PROTN, UNPROT                                                      */

/** vmp_prot1 -- set the protection of one page (PROT_NONE or PROT_READ, usually).
 *  @return 0 or errno of mprotect(2) (ENOMEM: VMA limit or unmapped). */
VMP_API int vmp_prot1(void *page, int prot);

/**
 * vmp_protn -- set the protection of n pages given in any order: the list is sorted in place
 * and duplicates merged, then one mprotect(2) is issued per contiguous run.
 * @param[in,out] pages  page addresses (reordered)
 * @return 0 or the errno of the first failing mprotect (earlier runs stay changed).
 */
VMP_API int vmp_protn(void **pages, size_t n, int prot);

/** vmp_unprot -- make [addr, addr+len) readable and writable. @return 0 or mprotect's errno. */
VMP_API int vmp_unprot(void *addr, size_t len);

/* ---------------------------------------------------------------------------------------- */
/** @defgroup map2 MAP2: one memory, two views                                               */

/** Two views of the same memfd-backed memory. */
typedef struct vmp_map2 {
    void *view1; /**< first mapping */
    void *view2; /**< second mapping (same pages) */
    size_t len;  /**< length of each view */
    int fd;      /**< the memfd (owned; closed by vmp_map2_free) */
} vmp_map2_t;

/**
 * vmp_map2 -- create len bytes of shared memory (memfd) mapped twice, view1 with prot1 and
 * view2 with prot2 (independent protections; a write through one is seen through the other).
 * @return 0; EINVAL; errno of memfd_create/ftruncate/mmap.
 */
VMP_API int vmp_map2(size_t len, int prot1, int prot2, vmp_map2_t *out);

/** vmp_map2_free -- unmap both views and close the memfd. */
VMP_API void vmp_map2_free(vmp_map2_t *m);

/* ---------------------------------------------------------------------------------------- */
/** @defgroup dirty DIRTY: write tracking with collect-and-rearm
 *
 * A tracker watches one or more armed ranges of anonymous or memfd (MAP_SHARED) memory that
 * is readable and writable. vmp_dirty_collect() returns the pages written since the range
 * was armed or since the previous collect, and re-arms them in the same step.
 *
 * Semantics with concurrent writers (any number of threads writing while one collects):
 *   1. every write is reported, at the latest, by the first collect that *starts* after the
 *      write completed (it may be reported earlier, by a collect it ran concurrently with);
 *   2. a write concurrent with a collect is reported by that collect or by the next one;
 *   3. the contents of a page read after a collect returns include every write that this
 *      collect reported for the page (the page was re-armed before it was reported).
 * So a caller that stops or waits for its writers and then collects gets every write.
 * A page may occasionally be reported without a write since the previous collect (a write
 * or a first-write fault racing with that collect); a written page is never left out.
 * The 4-writer test checks rules 1-2 with an epoch oracle for every backend.
 * fork(): the child must neither use nor destroy the parent's trackers -- a userfaultfd
 * descriptor keeps acting on the *parent's* memory, so a disarm in the child would disarm the
 * parent. A child that wants tracking creates its own tracker and arms its own ranges.
 *
 * Backends, best first (VMP_BACKEND_AUTO picks the first that works here):
 *  - WP_ASYNC: userfaultfd async write-protect + PAGEMAP_SCAN (Linux 6.7+). No signal at all:
 *    the kernel resolves the first write and a scan reads and re-arms the written bits.
 *    Kernel writes (read(2) into tracked memory) work and are recorded. No first-write hook.
 *  - UFFD_SIGBUS: userfaultfd write-protect with UFFD_FEATURE_SIGBUS; the first write to a
 *    page raises SIGBUS in the writing thread, which records the page and removes its
 *    protection with UFFDIO_WRITEPROTECT. Kernel writes fail with EFAULT unless the range
 *    was passed to vmp_dirty_prepare_write() first.
 *  - MPROTECT: mprotect(PROT_READ) + SIGSEGV, Appel & Li's original. Same kernel-write rule;
 *    per-page protection splits VMAs (vm.max_map_count, default 65530, bounds the number of
 *    scattered dirty pages; beyond it a fault cannot be resolved and the process is killed
 *    with a message naming the limit; vmp_dirty_prepare_write returns ENOMEM).
 * userfaultfd is opened with UFFD_USER_MODE_ONLY first (allowed unprivileged even with
 * vm.unprivileged_userfaultfd=0), then without it, then through /dev/userfaultfd; when none
 * is permitted AUTO falls back to MPROTECT and vmp_dirty_reason() says why.
 */

/** Dirty-tracking backends. */
typedef enum vmp_backend {
    VMP_BACKEND_AUTO = 0,        /**< best available: WP_ASYNC, then UFFD_SIGBUS, then MPROTECT */
    VMP_BACKEND_WP_ASYNC = 1,    /**< "wp-async": uffd WP_ASYNC + PAGEMAP_SCAN */
    VMP_BACKEND_UFFD_SIGBUS = 2, /**< "uffd-sigbus": uffd WP + SIGBUS, in the faulting thread */
    VMP_BACKEND_MPROTECT = 3,    /**< "mprotect": mprotect + SIGSEGV */
} vmp_backend_t;

/** Number of concrete backends (excluding AUTO). */
#define VMP_BACKEND_COUNT 3

/**
 * First-write hook (backends UFFD_SIGBUS and MPROTECT). Called once per page per epoch
 * (between two collects that report the page), in the thread that first writes the page,
 * *before* the page becomes writable: the page still holds its contents as of the last
 * collect, so the hook may copy it (Appel & Li's concurrent checkpoint). Runs in signal
 * context: it must be async-signal-safe, must not write to tracked memory and must not call
 * vmprim. Also called from vmp_dirty_prepare_write() in the caller's thread.
 */
typedef void (*vmp_first_write_fn)(void *page, void *arg);

/** Options for vmp_dirty_create. Zero-initialise, then set what you need. */
typedef struct vmp_dirty_opts {
    vmp_backend_t backend;   /**< AUTO (0) or a specific backend */
    vmp_first_write_fn hook; /**< optional first-write hook; ENOTSUP with WP_ASYNC */
    void *hook_arg;          /**< passed to hook */
} vmp_dirty_opts_t;

typedef struct vmp_dirty vmp_dirty_t;

/** vmp_backend_name -- "wp-async", "uffd-sigbus", "mprotect" or "auto". */
VMP_API const char *vmp_backend_name(vmp_backend_t b);

/** vmp_backend_parse -- parse a backend name (as above, case-sensitive; also "auto").
 *  @return 0; EINVAL for an unknown name (out untouched). */
VMP_API int vmp_backend_parse(const char *name, vmp_backend_t *out);

/**
 * vmp_backend_probe -- can backend b be used in this process? Probes once (cached).
 * @param[out] why  if not NULL and the backend is unusable, a sentence saying why
 * @return 0 if usable; ENOTSUP (kernel lacks a feature); EPERM (userfaultfd not permitted).
 */
VMP_API int vmp_backend_probe(vmp_backend_t b, char *why, size_t whylen);

/**
 * vmp_dirty_create -- create a tracker (no range armed yet).
 * @param[in] opts  NULL for defaults (AUTO, no hook)
 * @return 0; EINVAL; ENOTSUP (requested backend unsupported, or a hook with WP_ASYNC);
 *         EPERM (userfaultfd not permitted for a requested uffd backend); ENOMEM.
 *         On failure *out is NULL; vmp_backend_probe() gives the reason.
 */
VMP_API int vmp_dirty_create(const vmp_dirty_opts_t *opts, vmp_dirty_t **out);

/** vmp_dirty_destroy -- disarm every range and free the tracker. NULL is allowed. */
VMP_API void vmp_dirty_destroy(vmp_dirty_t *t);

/** vmp_dirty_backend -- the backend this tracker uses (never AUTO). */
VMP_API vmp_backend_t vmp_dirty_backend(const vmp_dirty_t *t);

/** vmp_dirty_reason -- why AUTO did not choose a better backend ("" if it chose the best). */
VMP_API const char *vmp_dirty_reason(const vmp_dirty_t *t);

/** vmp_dirty_errmsg -- a message describing the last failure of a call on t ("" if none). */
VMP_API const char *vmp_dirty_errmsg(const vmp_dirty_t *t);

/**
 * vmp_dirty_arm -- start tracking [addr, addr+len): all its pages count as clean now.
 * The memory must be mapped readable and writable, private anonymous or shared memfd/shmem,
 * and not overlap another armed range. Do not munmap/MADV_DONTNEED an armed range: disarm
 * it first.
 * @return 0; EINVAL (alignment, overlap); ENOSPC (tracker or dispatcher table full);
 *         errno of the kernel call (with vmp_dirty_errmsg()).
 */
VMP_API int vmp_dirty_arm(vmp_dirty_t *t, void *addr, size_t len);

/**
 * vmp_dirty_arm_sparse -- vmp_dirty_arm for a large range of PRIVATE memory (anonymous or
 * a MAP_PRIVATE file mapping, not shared memory) of which only the first wp_len bytes may
 * hold populated pages (e.g. a heap reservation mapped moments ago, of which wp_len is in
 * use). With WP_ASYNC only [addr, addr+wp_len) is write-protected: writes
 * beyond are reported all the same, but a page beyond that is only READ before the next
 * collect may be reported as written once (an over-report: harmless to a caller that diffs
 * pages). It saves write-protecting the unpopulated rest, which costs page tables for all
 * of it (32 MiB and 67 ms for 16 GiB) and makes every collect walk them. The fault
 * backends protect the whole range (wp_len is ignored).
 * @return as vmp_dirty_arm.
 */
VMP_API int vmp_dirty_arm_sparse(vmp_dirty_t *t, void *addr, size_t len, size_t wp_len);

/** vmp_dirty_disarm -- stop tracking the range armed at exactly addr; it becomes plain
 *  read-write memory. @return 0; EINVAL if no range starts at addr. */
VMP_API int vmp_dirty_disarm(vmp_dirty_t *t, void *addr);

/**
 * vmp_dirty_collect -- report written pages and re-arm them (see the semantics above).
 * Pages are reported in address order within a range, ranges in arming order.
 * @param[out] pages  array of cap page addresses
 * @param[out] n      number of addresses stored
 * @param[out] more   set to 1 if the array filled before the scan ended: call again to
 *                    continue the *same* collect (it resumes where it stopped); 0 when the
 *                    collect is complete. A collect is complete only when *more == 0.
 * @return 0; EINVAL (cap 0); errno of a failing kernel call (message in vmp_dirty_errmsg;
 *         pages already reported stay reported).
 */
VMP_API int vmp_dirty_collect(vmp_dirty_t *t, void **pages, size_t cap, size_t *n, int *more);

/**
 * Run callback for vmp_dirty_collect_runs: npages written pages starting at start. It cannot
 * stop the collect: the pages it is given are already re-armed, so it must keep them.
 */
typedef void (*vmp_run_fn)(void *start, size_t npages, void *arg);

/** vmp_dirty_collect_runs -- a complete collect (like vmp_dirty_collect until *more == 0)
 *  that reports runs of contiguous written pages to fn, with no output limit. Runs are
 *  maximal for WP_ASYNC; other backends may split a run at 64-page boundaries.
 *  @return 0 or an errno (message in vmp_dirty_errmsg). */
VMP_API int vmp_dirty_collect_runs(vmp_dirty_t *t, vmp_run_fn fn, void *arg);

/** vmp_dirty_peek_runs -- report the pages written since the last collect WITHOUT re-arming
 *  them: a preview of the next collect (which may report more: writes go on). WP_ASYNC only
 *  (one PAGEMAP_SCAN without write-protecting); lets a caller prepare for a collect it must
 *  keep short. @return 0; ENOTSUP for the fault backends; errno of the kernel call. */
VMP_API int vmp_dirty_peek_runs(vmp_dirty_t *t, vmp_run_fn fn, void *arg);

/**
 * vmp_dirty_prepare_write -- before a kernel write (read(2), recv, ...) into tracked memory:
 * make the pages of [addr, addr+len) writable and record them as written (calling the
 * first-write hook for each page that was not yet written this epoch). addr/len need not be
 * aligned. No-op for WP_ASYNC (the kernel's own writes are tracked there). Pages outside
 * every armed range are ignored.
 * A collect that runs after this call and before the kernel write re-arms the pages, and the
 * kernel write then fails with EFAULT: callers that collect concurrently must retry the
 * prepare + kernel call on EFAULT.
 * @return 0; ENOMEM (mprotect: VMA limit); errno of UFFDIO_WRITEPROTECT.
 */
VMP_API int vmp_dirty_prepare_write(vmp_dirty_t *t, void *addr, size_t len);

/**
 * vmp_dirty_release -- give the memory of the whole pages inside [addr, addr+len) back to the
 * kernel (MADV_DONTNEED) and keep them tracked. Afterwards they read as zeros (anonymous
 * memory) or as the file's bytes (a private file mapping), and the next write to each is
 * reported as usual: with UFFD_SIGBUS the release drops the kernel's write protection of
 * anonymous pages, so this call protects them again (a plain madvise would let every later
 * write through unseen). The first-write hook of a released page sees the released content,
 * not the page as of the last collect: a caller that diffs against that pre-image must know
 * which pages it released. Pages written since the last collect stay reported by the next
 * one. Pages outside every armed range are released untracked. Nobody may write the range
 * while this runs (it is free memory).
 * With UFFD_SIGBUS on a kernel without UFFD_FEATURE_WP_UNPOPULATED (before Linux 6.4) the
 * released pages could not be protected again without populating them: nothing is released
 * and the call returns EOPNOTSUPP (the memory stays resident and tracked).
 * @return 0; EINVAL (unaligned range); EOPNOTSUPP (above); errno of madvise or of
 *         UFFDIO_WRITEPROTECT (the range may then be released but unprotected: the caller
 *         must treat its pages as written).
 */
VMP_API int vmp_dirty_release(vmp_dirty_t *t, void *addr, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* LRVM_VMPRIM_H */
