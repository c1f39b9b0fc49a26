/* SPDX-License-Identifier: MIT */
/*
 * shim.h -- internals of liblrvm-preload.so, the LD_PRELOAD shim. Nothing here is
 * exported: the library's version script (liblrvm-preload.map) exports the malloc family only.
 *
 * Files, one concept each:
 *   env.c      the options table: every LRVM_* variable, parsed once before main
 *   boot.c     the bootstrap arena and the real (next) libc symbols
 *   malloc.c   the exported malloc family, routing each call to the heap, the bootstrap arena
 *              or (shim inactive) glibc
 *   heap.c     the heap behind malloc: reservation at a fixed base, backing, fork handlers
 *   persist.c  the heap as a tracked LRVM segment region; liblrvm's memory kept out of it
 *   commit.c   commit hooks (exit, signal, interval) funnelling into shim_commit()
 *   sigchain.c sigaction/signal wrappers keeping vmprim's fault dispatcher first
 *   sigentry.c the C library's other handler-installing entry points, routed to sigchain.c
 *   forkgate.c fork() waits for at most one commit (no starvation by back-to-back commits)
 *   aware.c    rvm_commit / rvm_root_set / rvm_root_get for aware programs (exported)
 *   init.c     start-up order, activity decision (AT_SECURE), LD_PRELOAD inheritance
 *   exe.c      the main executable: load base, build-id, globals range and excluded bytes
 *   reexec.c   re-executing once with address-space randomisation off (LRVM_GLOBALS)
 *   image.c    the segment's header (core/image/image_format.h): checks, creation, commit stamp
 *   globals.c  the executable's globals as a tracked region; restored before main
 *   kwrite.c   wrappers of read, recv, stat ... so the kernel can write into a tracked heap
 *   libcobj.c  libc's own FILE / stdio buffer / DIR allocations routed to the internal heap
 *   mutexwait.c LRVM_MUTEX_WAIT: signal and interval commits at an instant with no mutex held
 *   faultmask.c sigprocmask/pthread_sigmask never block SIGSEGV/SIGBUS (fault backends)
 *   lockset.c  the held-lock table: mutexes/conds held at a commit come back released
 *   restorable.c the restorability verdict: committed globals pointing at memory that does not
 *              come back are recorded at commit and refused at start
 *   exesym.c   the executable's symbol holding an address (for messages)
 *   crashnote.c a restored run's fatal signal before its first commit, noted in the segment
 *              and refused at the next start
 */
#ifndef LRVM_SHIM_H
#define LRVM_SHIM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "preload_api.h"

/* ---- env.c ------------------------------------------------------------------------------- */

enum shim_commit_hook {
    SHIM_COMMIT_EXIT = 1u << 0,
    SHIM_COMMIT_SIGNAL = 1u << 1,
    SHIM_COMMIT_INTERVAL = 1u << 2,
};

/* struct shim_opts -- the parsed values of every LRVM_* variable (see the table in env.c). */
struct shim_opts {
    const char *segment;         /* LRVM_SEGMENT: data segment path, NULL = volatile heap */
    const char *log;             /* LRVM_LOG: log path, NULL = "<segment>.log" */
    size_t log_size;             /* LRVM_LOG_SIZE */
    size_t log_max;              /* LRVM_LOG_MAX (0: core's default bound) */
    size_t heap_size;            /* LRVM_HEAP_SIZE: reservation */
    uintptr_t heap_base;         /* LRVM_HEAP_BASE */
    unsigned commit;             /* LRVM_COMMIT: SHIM_COMMIT_* */
    int commit_signal;           /* signal number for SHIM_COMMIT_SIGNAL */
    uint64_t commit_interval_ns; /* period for SHIM_COMMIT_INTERVAL */
    int flush;                   /* LRVM_FLUSH: 1 = flush (fsync) at commit, 0 = no flush */
    const char *track;           /* LRVM_TRACK: DIRTY backend name ("auto" default) */
    int globals;                 /* LRVM_GLOBALS */
    int stats;                   /* LRVM_STATS */
    int backtrace;               /* LRVM_BACKTRACE */
    int inherit;                 /* LRVM_INHERIT */
    int shared_group;            /* LRVM_SHARED_GROUP: trust files of the process's groups */
    uint64_t mutex_wait_ns;      /* LRVM_MUTEX_WAIT: 0 = off */
};

extern struct shim_opts shim_opts;

/* shim_env_parse -- fill shim_opts from the environment (envp: NULL-terminated "NAME=value").
 * Returns 0, or -1 after writing "lrvm: NAME=value: what is wrong; accepted: ..." to errfd. */
int shim_env_parse(char *const *envp, int errfd);
/* shim_env_help -- write the options table (name, default, accepted values, meaning) to fd;
 * with as_options != 0 as lrvm-run's command-line options. */
void shim_env_help(int fd, int as_options);
/* shim_env_man -- the same table as roff paragraphs for the generated man pages; as lrvm-run's
 * options (as_options != 0, lrvm-run(1)) or as environment variables (lrvm(7)). */
void shim_env_man(int fd, int as_options);
/* shim_env_option -- the variable name for lrvm-run option `opt` ("segment" -> "LRVM_SEGMENT");
 * NULL if unknown. *takes_value: 1 if the option needs a value. */
const char *shim_env_option(const char *opt, int *takes_value);
/* Parsers shared with tests. Return 0 or -1 (invalid). */
int shim_parse_size(const char *s, size_t *out);
int shim_parse_time_ns(const char *s, uint64_t *out);
int shim_parse_commit(const char *s, unsigned *hooks, int *sig, uint64_t *interval_ns);

/* shim_say -- write "lrvm: " + the NULL-terminated strings + "\n" to fd with one write(2):
 * usable before libc's stdio is ready and from inside malloc (never allocates). */
void shim_say(int fd, const char *s, ...) __attribute__((sentinel));
/* shim_fmt_u64 / shim_fmt_hex -- format into buf (>= 24 bytes), return buf. */
char *shim_fmt_u64(char *buf, uint64_t v);
char *shim_fmt_hex(char *buf, uint64_t v);
/* shim_mono_ns -- CLOCK_MONOTONIC in nanoseconds */
uint64_t shim_mono_ns(void);

/* ---- boot.c ------------------------------------------------------------------------------ */

#define SHIM_BOOT_ARENA (256u * 1024u)
void *boot_alloc(size_t align, size_t n);
int boot_owns(const void *p);
size_t boot_usable_size(const void *p);

/* The real allocator (glibc's, found with dlsym(RTLD_NEXT)) used when the shim is inactive. */
struct boot_real {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    size_t (*malloc_usable_size)(void *);
};
extern struct boot_real boot_real;
/* boot_resolve_real -- look up glibc's allocator; 0 or ENOENT (message written). */
int boot_resolve_real(void);

/* ---- init.c ------------------------------------------------------------------------------ */

enum shim_state {
    SHIM_UNINIT = 0,   /* nothing decided: allocations come from the bootstrap arena */
    SHIM_INITING = 1,  /* one thread is initialising; others wait, the initialiser uses boot */
    SHIM_ACTIVE = 2,   /* the persistent heap serves allocations */
    SHIM_INACTIVE = 3, /* AT_SECURE: everything goes to glibc */
};
extern volatile int shim_state;
/* shim_ensure_init -- initialise once; returns the settled state, or SHIM_INITING when the
 * caller is the initialising thread itself (re-entered from dlsym, getenv, ...). */
int shim_ensure_init(void);
/* shim_is_secure -- AT_SECURE (or the test hook _LRVM_TEST_AT_SECURE=1, which can only turn the
 * shim off). */
int shim_is_secure(char *const *envp);

/* ---- heap.c ------------------------------------------------------------------------------ */

struct heap;
extern struct heap *shim_heap;
/* shim_heap_setup -- reserve [base, base + size) with MAP_FIXED_NOREPLACE and create the heap;
 * 0 or an errno / HEAP_E* code after a message naming the variable to change. */
int shim_heap_setup(void);
/* shim_heap_stats -- write the heap's statistics to fd (LRVM_STATS). */
void shim_heap_stats(int fd);
/* shim_heap_atfork -- install the fork handlers; 0 or errno. */
int shim_heap_atfork(void);
/* Pointers free()d that belong to no allocator of ours (foreign): counted, never freed. */
extern volatile uint64_t shim_foreign_frees;
extern int shim_forked_child; /* set in a fork child: commits are disabled there */

/* ---- commit.c ---------------------------------------------------------------------------- */

/* shim_commit -- make the heap's current state the one a restart sees. The tracking
 * integration (rvm_track/rvm_commit) fills it; until then it returns ENOSYS and only
 * counts calls, so the hooks are exercised but no persistence is claimed. */
int shim_commit(const char *why);
/* shim_commit_setup -- install the hooks LRVM_COMMIT asks for; 0 or errno (message written). */
int shim_commit_setup(void);
struct sigaction;
/* shim_commit_sigaction -- the program's sigaction() for the commit signal (sigchain.c): record
 * act as the program's action, which our handler calls after asking for the commit, and give
 * the previous one in old; returns 1 if taken so, 0 if sig is not the commit signal. */
int shim_commit_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
extern volatile uint64_t shim_commit_calls;

/* ---- persist.c --------------------------------------------------------------------------- */

extern struct heap *shim_internal_heap; /* volatile heap for liblrvm's memory (persistent mode) */
extern __thread int shim_in_core __attribute__((tls_model("initial-exec")));
extern int shim_persistent; /* the heap is an LRVM segment region, tracked */
/* shim_persist_setup -- map LRVM_SEGMENT at base through LRVM, track it, open or create the
 * heap in it; 0 or an error after a message. */
int shim_persist_setup(void *base, size_t reserve);
/* shim_persist_commit -- heap_lock_all + rvm_commit + unlock; final: the exit commit. Every
 * commit of the shim's segment must come through here (or shim_commit): it skips commits while
 * the globals are not yet restored and stamps the header (count, time, pid) into the commit. */
int shim_persist_commit(int final);
/* shim_persist_flush -- make the queued no_flush commits durable (a clean exit without an exit
 * commit); 0 or an rvm_return_t after a message */
int shim_persist_flush(void);
/* shim_persist_settle -- apply the log to the segment (a clean exit leaves it empty) */
int shim_persist_settle(void);
/* shim_persist_fork_unlock -- in a fork child, first: close the segment (its lock) */
void shim_persist_fork_unlock(void);
/* shim_persist_fork_child -- in a fork child: make the heap independent of the segment file */
void shim_persist_fork_child(void);
/* shim_persist_stats -- the tracker's statistics to fd. */
void shim_persist_stats(int fd);

/* ---- sigchain.c -------------------------------------------------------------------------- */

/* shim_sigchain_setup -- find the real sigaction and our text range; LRVM_BACKTRACE. */
int shim_sigchain_setup(void);
/* shim_signal_flags -- sa_flags for signal(sig, ...): SA_RESTART unless siginterrupt(sig, 1) */
int shim_signal_flags(int sig);

/* shim_sigaction_from -- sigaction() as the program called it from return address ret: a
 * SIGSEGV/SIGBUS handler is chained behind vmprim's dispatcher. 0, or -1 and errno. */
int shim_sigaction_from(int sig, const struct sigaction *act, struct sigaction *old, void *ret);
/* shim_sigchain_reclaim -- put vmprim's dispatcher back if a direct system call replaced it,
 * saying so once (sigchain.c; called at each commit with a fault backend) */
void shim_sigchain_reclaim(void);
/* shim_sigchain_kernel -- the program's syscall(SYS_rt_sigaction, sig, kact, kold, 8) for
 * SIGSEGV/SIGBUS, with the kernel's struct layout (sigentry.c); 0, or -1 and errno */
long shim_sigchain_kernel(int sig, const void *kact, void *kold, void *ret);
/* shim_self_range -- compute [shim_self_lo, shim_self_hi), this library's code; 0 or ENOENT. */
int shim_self_range(void);
extern uintptr_t shim_self_lo, shim_self_hi;

/* ---- forkgate.c -------------------------------------------------------------------------- */

/* fork handlers' first/last steps and the commit side of the gate (see forkgate.c) */
void shim_forkgate_prepare(void);
void shim_forkgate_parent(void);
void shim_forkgate_child(void);
void shim_forkgate_wait(void);
/* a commit past its instant (heap locks dropped, tracker busy): forks wait for its end */
void shim_forkgate_tail_begin(void);
void shim_forkgate_tail_end(void);
void shim_forkgate_tail_wait(void);

/* ---- aware.c ----------------------------------------------------------------------------- */

/* shim_aware_setup -- roots in the persistent heap, rvm_commit -> shim_commit("explicit");
 * 0 or an errno after a message. */
int shim_aware_setup(void);
/* ---- exe.c ------------------------------------------------------------------------------- */

struct shim_range {
    uintptr_t lo, hi;
};
/* struct shim_exe -- the main executable as the globals need it (exe.c's comment) */
struct shim_exe {
    char path[IMG_PATH_MAX];
    uintptr_t load_base;
    uint32_t id_kind, id_len; /* IMG_ID_* */
    uint8_t build_id[IMG_BUILD_ID_MAX];
    uintptr_t g_lo, g_hi;    /* globals, page aligned; g_lo == g_hi: none */
    struct shim_range *excl; /* excluded bytes in [g_lo, g_hi), sorted, merged */
    size_t nexcl, cap;
};
extern struct shim_exe shim_exe;
/* shim_exe_probe -- fill shim_exe; 0 or an errno after a message */
int shim_exe_probe(void);

/* ---- reexec.c ---------------------------------------------------------------------------- */

/* shim_reexec_norandom -- if randomisation is on, turn it off and execve /proc/self/exe with
 * the same arguments and environment (does not return); returns 0 when nothing was done. */
int shim_reexec_norandom(void);

/* ---- image.c ----------------------------------------------------------------------------- */

/* shim_image_check -- judge a header page read from LRVM_SEGMENT against this process and the
 * options: 0 = usable, 1 = no header yet (a new segment), or an errno after a refusal message
 * naming the file and what to do. */
int shim_image_check(const struct image_header *h, const char *seg);
/* shim_image_create -- fill a new (tracked, zeroed) header; heap_off/globals from layout */
void shim_image_create(struct image_header *h, uint64_t globals_len, uint64_t heap_off);
/* shim_image_stamp -- the header's commit fields, written just before a commit */
void shim_image_stamp(struct image_header *h, int globals_in_commit);

/* ---- globals.c --------------------------------------------------------------------------- */

/* shim_globals_map -- map the globals area of the segment (offset off) over the executable's
 * globals and track it; valid: the area holds committed globals to restore before main.
 * 0 or an error after a message. */
int shim_globals_map(const char *seg, uint64_t off, int valid);
/* shim_globals_pending -- 1 while the globals are tracked but not yet restored (before main):
 * no commit may happen then (it would commit half-constructed globals) */
int shim_globals_pending(void);
/* shim_globals_tracked -- 1 if the globals are part of the commits */
int shim_globals_tracked(void);
/* shim_globals_lock / unlock -- a commit holds this around its pending check and rvm_commit */
void shim_globals_lock(void);
void shim_globals_unlock(void);
/* shim_commit_before_dtors -- register the exit commit to run before the executable's static
 * destructors (commit.c); called from globals.c's main hook */
int shim_commit_before_dtors(void);
/* ---- kwrite.c ---------------------------------------------------------------------------- */

/* The tracked heap's range when the DIRTY backend faults on first writes (uffd-sigbus,
 * mprotect) and system calls must be prepared; both 0 otherwise (wp-async, volatile heap). */
extern uintptr_t shim_kw_lo, shim_kw_hi;
/* ... and the tracked globals' range under the same condition (both 0 without globals) */
extern uintptr_t shim_kw_glo, shim_kw_ghi;
/* shim_kwrite_setup -- resolve the real functions before main (see kwrite.c) */
void shim_kwrite_setup(void);

/* ---- faultmask.c ------------------------------------------------------------------------- */

struct sigaction;
/* shim_fault_sigmask -- rt_sigprocmask for the program's syscall(2), filtered as sigprocmask
 * (SIGSEGV/SIGBUS never blocked with a fault backend, old set through the stack); 0 or errno */
int shim_fault_sigmask(int how, const sigset_t *set, sigset_t *old);
/* shim_raw_syscall -- a system call made without libc (kwinfo.c); -1 and errno on failure */
long shim_raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
/* shim_faultmask_sa_mask -- act, or tmp = act without SIGSEGV/SIGBUS in sa_mask (fault backends) */
const struct sigaction *shim_faultmask_sa_mask(const struct sigaction *act, struct sigaction *tmp);

/* ---- libcobj.c --------------------------------------------------------------------------- */

extern uintptr_t shim_libc_lo, shim_libc_len; /* libc's text */
extern __thread int shim_libc_probing __attribute__((tls_model("initial-exec")));
/* shim_libc_note -- record a libc malloc call site while probing */
void shim_libc_note(void *ra);
/* shim_libc_volatile -- ra is a learnt call site of libc's volatile objects */
int shim_libc_volatile(void *ra);
/* shim_libc_probe -- learn the call sites (persistent heap active, before main); returns how
 * many were learnt */
int shim_libc_probe(void);

/* ---- mutexwait.c ------------------------------------------------------------------------- */

/* shim_mutex_setup -- LRVM_MUTEX_WAIT: count the program's held mutexes from now on and
 * install the instant check; 0 or errno (message written) */
int shim_mutex_setup(void);
/* shim_mutex_commit -- a signal or interval commit at an instant with no mutex held, waiting
 * at most LRVM_MUTEX_WAIT (then committing anyway: counted); 0 or an rvm_return_t */
int shim_mutex_commit(void);
/* set while a commit is declined by the instant check: its failure is a retry, not an error */
extern __thread int shim_mutex_declined __attribute__((tls_model("initial-exec")));
/* shim_mutex_stats -- the LRVM_STATS line of the mode */
void shim_mutex_stats(int fd);

/* ---- lockset.c --------------------------------------------------------------------------- */

/* shim_locks_setup -- (start-up, the header page mapped and tracked, the heap open) copy the
 * committed held-lock table, empty the live one, release the listed objects in the heap's
 * [heap_lo, heap_used); from now on the program's locks in the tracked ranges are listed. */
void shim_locks_setup(struct image_header *img, const char *seg, int existing, uintptr_t heap_lo,
                      uintptr_t heap_used);
/* shim_locks_ranges -- the tracked ranges whose objects are listed (globals may be empty) */
void shim_locks_ranges(uintptr_t g_lo, uintptr_t g_hi, uintptr_t h_lo, uintptr_t h_hi);
/* shim_locks_restore_globals -- release the listed objects in the just-restored globals */
void shim_locks_restore_globals(uintptr_t lo, uintptr_t hi);
/* shim_locks_stats -- the LRVM_STATS line */
void shim_locks_stats(int fd);

/* ---- restorable.c ------------------------------------------------------------------------ */

/* SHIM_SCAN_BUDGET -- heap bytes the restorability scan reads per commit, at most; so no block
 * is read further than that from its start, and the persistent heap cleans no more of a block
 * (heap_opts.clean_bytes, persist.c) */
#define SHIM_SCAN_BUDGET ((size_t)256 << 10)
/* shim_restore_setup -- before main, on the main thread; 0 or ENOMEM */
int shim_restore_setup(void);
/* shim_restore_judge -- scan the globals (and the heap they reach) and record the verdict in h
 * before a commit that carries the globals (final: the exit commit); the heap is locked by the
 * caller. Returns the enum img_restore_kind found. */
uint32_t shim_restore_judge(struct image_header *h, int final);
/* shim_restore_clear -- h's verdict := restorable */
void shim_restore_clear(struct image_header *h);
/* shim_restore_stats -- the LRVM_STATS line of the scans */
void shim_restore_stats(int fd);
/* shim_restore_refuse -- 0, or EPERM after a refusal naming the global and what to do */
int shim_restore_refuse(const struct image_header *h, const char *seg);

/* ---- exesym.c ---------------------------------------------------------------------------- */

/* shim_exe_symbol -- the executable's symbol holding addr into buf ("" if none); *off = addr
 * minus the symbol's start (addr itself if none) */
void shim_exe_symbol(uintptr_t addr, char *buf, size_t len, uint64_t *off);

/* ---- crashnote.c ------------------------------------------------------------------------- */

/* shim_crash_arm -- the globals of an existing commit were just restored (main_hook): from now
 * until this process's first commit, a fatal signal is noted in the segment (needs the header
 * as restored) */
void shim_crash_arm(const struct image_header *h);
/* shim_crash_disarm -- this process committed: its state is its own from now on */
void shim_crash_disarm(void);
/* shim_crash_refuse -- the header h just recovered: 0, or EPERM after printing a valid crash
 * note with the advice */
int shim_crash_refuse(const struct image_header *h, const char *seg);
/* shim_persist_write_note -- persist.c: write [p, p + len) at header offset off of the segment
 * file (pwrite, async-signal-safe); 0 or an errno */
int shim_persist_write_note(const void *p, size_t len, uint64_t off);
/* shim_persist_header -- persist.c: the mapped header page (NULL before setup) */
struct image_header *shim_persist_header(void);

#endif
