/* SPDX-License-Identifier: MIT */
/*
 * lockset.c -- locks do not come back held: the pthread mutexes and condition variables that
 * lie in the persistent globals or heap and that some thread held (or waited on) at the commit
 * instant are put back in their released state when the image is restored.
 *
 * WHY. A commit captures memory, not threads. A global `pthread_mutex_t mu` that another thread
 * held when main called exit() (exit does not stop threads), or that any thread held when a
 * signal or interval commit stopped it, comes back with its lock word, owner and user count
 * set -- owned by a thread that does not exist: the next run deadlocks at its first lock. A
 * condition variable with waiters comes back with waiter references and group state of dead
 * threads: glibc's signal/broadcast may wait for them forever.
 *
 * THE TABLE (core/image/image_format.h, "held-lock table"): in the segment's header page, so every
 * commit captures it at the same instant as the objects. The program's lock, trylock,
 * timedlock, clocklock, unlock and cond_*wait go through our exports (mutexwait.c); for an
 * object in tracked memory (globals range or heap reservation -- objects on stacks or in
 * libraries are never restored anyway) they list it BEFORE acquiring and unlist it AFTER
 * releasing (or after a failed attempt). So at every instant the table is a SUPERSET of the
 * held objects, and whatever instant a commit stops the threads at, its list covers them. A
 * condition wait lists the condition variable and its mutex (libc releases and re-takes the
 * mutex inside the wait, where we cannot see it) until it returns.
 *
 * ROWS. A thread claims a row (one cache line, compare-and-swap on its owner word) at its
 * outermost listed lock and frees it when its last listed object is released; it tries its
 * previous row first, so the line stays in its cache: uncontended, a lock/unlock pair costs a
 * range test, two stores and that one CAS more (bench/README.md, "Held-lock table"). Only the
 * owner writes a row's entries; the commit reads them with the threads stopped (a signal, so
 * program order of the thread's own stores is what it sees: compiler fences suffice).
 * FULL: with all 31 rows in use, or a thread holding more than 7 listed objects at once, the
 * hold is not listed; the table's row 0 counts such holds at each instant (added before the
 * acquisition, removed after the release) and LRVM_STATS counts them per run. A restart from a
 * commit whose count is nonzero says so on stderr: some object may come back held.
 *
 * RESTORE (single-threaded, before main): shim_locks_setup copies the committed table and
 * empties the live one (this run's threads fill it anew), and releases the listed heap objects
 * at once; the listed globals are released by globals.c right after it has put the committed
 * globals back (main_hook), before any commit may run. Released state:
 *   mutex: lock word, count, owner, nusers, spins/elision and robust-list links zeroed; the
 *          kind (type, robust, PI/PP, pshared bits) kept; a PRIO_PROTECT mutex keeps its
 *          ceiling (upper bits of the lock word); a ROBUST mutex comes back as "owner died"
 *          (lock word FUTEX_OWNER_DIED): its next locker gets EOWNERDEAD, which is exactly what
 *          a robust program expects when a holder vanished mid-update;
 *   cond:  zeroed except the clock and process-shared bits of __wrefs (pthread_cond_init's
 *          state), when it had waiter references (__wrefs >> 3); without waiters its state is
 *          already one a fresh run can use.
 * glibc 2.36's layouts (<bits/struct_mutex.h>, <bits/thread-shared-types.h>) via the public
 * unions' __data fields. An entry is a superset member, so the object may be free already:
 * a mutex whose lock word is 0 is left untouched, as is anything whose kind word is not a
 * valid mutex kind or whose lock word is not a held one (1 or 2 for a plain mutex: guards the
 * narrow race below).
 *
 * LIMITS. (1) Between a thread's real unlock and its unlisting, another thread may legally lock,
 * unlock, destroy and free the mutex, and a commit in that window lists memory that is no
 * longer a mutex; the restore touches it only if its kind word is a valid kind and its lock
 * word a held one -- unlikely for other data, not impossible (a heap block freed in that
 * window could have its first 40 bytes zeroed at the restart). (2) A plain mutex unlocked by
 * a thread other than its locker (undefined in POSIX, tolerated by glibc) stays listed in the
 * locker's row until the locker exits (a thread-exit key destructor frees the row of an exiting
 * or cancelled thread). (3) Semaphores, rwlocks, barriers, spinlocks and C11 mtx_* (reached
 * inside libc, not through our exports) are not covered.
 */
#include "shim.h"
#include "lockset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ls_row *ls_rows;
uintptr_t ls_lo[2], ls_hi[2];
__thread int ls_row_of __attribute__((tls_model("initial-exec")));
__thread int ls_n __attribute__((tls_model("initial-exec")));
__thread int ls_missed __attribute__((tls_model("initial-exec")));
__thread int ls_hint __attribute__((tls_model("initial-exec")));

#define NROWS (IMG_LOCK_ROWS - 1)
#define FUTEX_OWNER_DIED_ 0x40000000
#define MUTEX_KINDS 0x3f3 /* type 0-3, robust 16, PI 32, PP 64, pshared 128, elision */
#define MUTEX_PP 64
#define MUTEX_PI 32
#define MUTEX_ROBUST 16
#define PP_CEILING_MASK 0xfff80000u

/* The table as the last commit left it, read at start: the locks held then (released now) */
static uint64_t committed_locks[NROWS * IMG_LOCK_ROW_ENTRIES];
static size_t ncommitted_locks;
static uint64_t committed_unrecorded;    /* holds that were not listed at that commit */
static uint64_t n_mutex, n_cond, n_free; /* released at start / listed but free */
static uint64_t n_overflow;              /* holds not listed in this run */

static pthread_key_t exit_key; /* its destructor frees an exiting thread's row */
static int exit_key_ok;
static __thread int exit_key_set __attribute__((tls_model("initial-exec")));

/* unrecorded -- row 0's word: holds not listed at this instant */
static inline uint64_t *unrecorded(void)
{
    return &ls_rows[0].owner;
}

/* ls_add_slow -- claim a row for the first listed object of this thread; a full table (or a
 * full row) counts the hold as unrecorded instead. Returns 0 if listed. */
int ls_add_slow(uint64_t e)
{
    if (!ls_row_of) {
        /* rows 1..NROWS, starting after the last one this thread had (the fast path in ls_add
     * tried that one) */
        for (int i = 0, idx = ls_hint; i < (int)NROWS; i++) {
            idx = idx >= (int)NROWS ? 1 : idx + 1;
            uint64_t free_ = 0;
            if (__atomic_compare_exchange_n(&ls_rows[idx].owner, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                __atomic_store_n(&ls_rows[idx].ent[0], e, __ATOMIC_RELAXED);
                ls_row_of = idx;
                ls_hint = idx;
                ls_n = 1;
                __atomic_signal_fence(__ATOMIC_SEQ_CST);
                if (!exit_key_set && exit_key_ok) {
                    exit_key_set = 1; /* once per thread: the fast path never comes here again */
                    pthread_setspecific(exit_key, &exit_key_set);
                }
                return 0;
            }
        }
    }
    ls_missed++;
    __atomic_fetch_add(unrecorded(), 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&n_overflow, 1, __ATOMIC_RELAXED);
    return -1;
}

/* ls_del_slow -- e was not in this thread's row: an unlisted hold ends (or the object was
 * locked before the table existed, or by another thread: nothing to do) */
void ls_del_slow(uint64_t e)
{
    (void)e;
    if (ls_missed > 0) {
        ls_missed--;
        __atomic_fetch_sub(unrecorded(), 1, __ATOMIC_SEQ_CST);
    }
}

/* thread_gone -- a thread exits (or is cancelled, e.g. inside a cond wait, so that its
 * unlisting never ran) while it still owns a row: free it, or the row is lost to the table for
 * the rest of the run. What it still holds stays held in this run too (a plain mutex held by
 * an exited thread is held for ever; a robust one is marked owner-died by the kernel). */
static void thread_gone(void *v)
{
    (void)v;
    if (ls_row_of) {
        struct ls_row *r = &ls_rows[ls_row_of];
        for (int i = 0; i < IMG_LOCK_ROW_ENTRIES; i++)
            __atomic_store_n(&r->ent[i], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&r->owner, 0, __ATOMIC_RELEASE);
        ls_row_of = 0;
        ls_n = 0;
    }
    if (ls_missed) {
        __atomic_fetch_sub(unrecorded(), (uint64_t)ls_missed, __ATOMIC_SEQ_CST);
        ls_missed = 0;
    }
}

/* release_mutex -- put a mutex that a vanished thread held back in its released state;
 * 1 if changed */
static int release_mutex(pthread_mutex_t *m)
{
    int kind = m->__data.__kind;
    unsigned lock = (unsigned)m->__data.__lock;
    if ((kind & ~MUTEX_KINDS) != 0)
        return 0; /* not a mutex any more (LIMITS (1)) */
    unsigned keep = (kind & MUTEX_PP) ? lock & PP_CEILING_MASK : 0;
    unsigned word = lock & ~keep;
    if (word == 0)
        return 0; /* free already (a superset member) */
    /* a plain lock word is 1 (locked) or 2 (locked, waiters); robust and PI words hold the
   * owner's thread id: anything else is not a held mutex (LIMITS (1)) */
    if (!(kind & (MUTEX_ROBUST | MUTEX_PI)) && word != 1 && word != 2)
        return 0;
    memset(m, 0, sizeof(*m));
    m->__data.__kind = kind;
    m->__data.__lock = (int)((kind & MUTEX_ROBUST) ? keep | FUTEX_OWNER_DIED_ : keep);
    return 1;
}

/* release_cond -- pthread_cond_init's state (keeping clock and pshared) for a condition
 * variable that had waiters; 1 if changed */
static int release_cond(pthread_cond_t *c)
{
    unsigned w = c->__data.__wrefs;
    if ((w >> 3) == 0)
        return 0;
    memset(c, 0, sizeof(*c));
    c->__data.__wrefs = w & 3;
    return 1;
}

/* release_in -- release the captured objects lying wholly in [lo, hi) */
static void release_in(uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0; i < ncommitted_locks; i++) {
        uintptr_t p = (uintptr_t)(committed_locks[i] & ~(uint64_t)LS_COND);
        int is_cond = (committed_locks[i] & LS_COND) != 0;
        size_t sz = is_cond ? sizeof(pthread_cond_t) : sizeof(pthread_mutex_t);
        if (p < lo || p + sz > hi || p % 4 != 0)
            continue;
        int changed =
            is_cond ? release_cond((pthread_cond_t *)p) : release_mutex((pthread_mutex_t *)p);
        if (!changed)
            n_free++;
        else if (is_cond)
            n_cond++;
        else
            n_mutex++;
    }
}

void shim_locks_setup(struct image_header *img, const char *seg, int existing, uintptr_t heap_lo,
                      uintptr_t heap_used)
{
    struct ls_row *rows = (struct ls_row *)((char *)img + IMG_LOCK_OFF);
    ncommitted_locks = 0;
    if (existing) {
        committed_unrecorded = rows[0].owner;
        for (unsigned r = 1; r < IMG_LOCK_ROWS; r++)
            for (int i = 0; i < IMG_LOCK_ROW_ENTRIES; i++)
                if (rows[r].ent[i]) {
                    size_t k = 0; /* once each: a cond wait lists its mutex a second time */
                    while (k < ncommitted_locks && committed_locks[k] != rows[r].ent[i])
                        k++;
                    if (k == ncommitted_locks)
                        committed_locks[ncommitted_locks++] = rows[r].ent[i];
                }
        if (committed_unrecorded) {
            char a[24];
            shim_say(
                2, "LRVM_SEGMENT=", seg, ": at its last commit ",
                shim_fmt_u64(a, committed_unrecorded),
                " mutex/condition holds were not recorded (more than 31 threads holding locks, "
                "or one thread holding more than 7): such an object may come back locked by a "
                "thread that no longer exists",
                NULL);
        }
    }
    /* this run's threads fill the table anew; only write a page that needs it */
    for (unsigned r = 0; r < IMG_LOCK_ROWS; r++)
        if (memcmp(&rows[r], &(struct ls_row){0}, sizeof(rows[r])) != 0)
            memset(&rows[r], 0, sizeof(rows[r]));
    release_in(heap_lo, heap_used);
    /* _LRVM_TEST_NO_LOCKSET=1: restore as above but list nothing in this run -- for the cost
   * benchmark only (bench/preload/locks_bench.sh); a commit then may capture held locks */
    if (!exit_key_ok)
        exit_key_ok = pthread_key_create(&exit_key, thread_gone) == 0;
    const char *off = getenv("_LRVM_TEST_NO_LOCKSET");
    if (!(off && strcmp(off, "1") == 0))
        ls_rows = rows;
}

void shim_locks_ranges(uintptr_t g_lo, uintptr_t g_hi, uintptr_t h_lo, uintptr_t h_hi)
{
    ls_lo[0] = g_lo;
    ls_hi[0] = g_hi;
    ls_lo[1] = h_lo;
    ls_hi[1] = h_hi;
}

void shim_locks_restore_globals(uintptr_t lo, uintptr_t hi)
{
    release_in(lo, hi);
}

void shim_locks_stats(int fd)
{
    if (!ls_rows)
        return;
    char a[24], b[24], c[24], d[24], e[24];
    shim_say(fd, "stats: locks: released at start ", shim_fmt_u64(a, n_mutex), " mutexes and ",
             shim_fmt_u64(b, n_cond), " condition variables held/waited on at the last commit (",
             shim_fmt_u64(c, n_free),
             " listed were free); holds not recorded: ", shim_fmt_u64(d, committed_unrecorded),
             " at that commit, ", shim_fmt_u64(e, __atomic_load_n(&n_overflow, __ATOMIC_RELAXED)),
             " in this run (table full)", NULL);
}
