/* SPDX-License-Identifier: MIT */
/*
 * mutexwait.c -- the program's pthread mutex/cond exports. LRVM_MUTEX_WAIT: signal and interval
 * commits at the program's consistency points, as NVthreads inferred them: an instant at which
 * no thread holds a pthread mutex.
 *
 * An unmodified multi-threaded program keeps its invariants under its mutexes: between
 * lock and unlock a data structure may be half-updated. A commit taken at an arbitrary
 * instant can capture that half-update, and a restart after a crash then sees a broken
 * invariant. With LRVM_MUTEX_WAIT=TIME, signal and interval commits (never the exit commit:
 * at exit the program has finished with its data) wait, at most TIME, for an instant with no
 * mutex held; past the bound they commit anyway, and LRVM_STATS counts those "forced" commits.
 *
 * The same exports also keep the held-lock table (lockset.c, always in persistent mode, with
 * or without LRVM_MUTEX_WAIT): an object in tracked memory is listed before it is acquired
 * and unlisted after it is released, so that locks held at a commit come back released.
 *
 * Counting. The program's pthread_mutex_lock / trylock / timedlock / clocklock / unlock and
 * pthread_cond_wait / timedwait / clockwait go through our exports. `held_total` counts
 * mutexes held OR BEING ACQUIRED: the count is raised before the real lock and lowered after
 * the real unlock, so at any instant a thread that holds a mutex is counted (a thread counted
 * but not yet holding only makes us wait longer). A condition wait releases its mutex inside
 * libc and re-takes it there, where we cannot count: the waiter registers its mutex in a slot
 * and uncounts itself; at the instant we look at each registered mutex's lock word, which is
 * nonzero while anyone holds it (glibc's pthread_mutex_t.__data.__lock, all mutex kinds):
 * a waiter that re-took its mutex inside libc but has not returned yet is seen there. With
 * no free slot a waiter simply stays counted (conservative).
 *
 * Only the PROGRAM's calls count. The shim's own locks (heap, liblrvm, vmprim, commit.c's
 * lock) would also reach these exports through the PLT (and the commit holds the heap locks
 * while it waits: counting them would make every instant "locked"). A return-address test
 * cannot tell them apart: the compiler turns `unlock; return` into a tail jump, and the
 * return address is then the program's call of free(). So the library is linked with
 * -Wl,--wrap=pthread_mutex_lock (and the others): every reference inside it is bound at
 * link time to __wrap_pthread_mutex_lock, which calls glibc directly. The real functions
 * are glibc's __pthread_mutex_* (bound by version: no dlsym on the malloc path) and, for
 * the others, dlsym(RTLD_NEXT).
 *
 * At the instant. The check must hold when the tracker has stopped the other threads, not
 * just before: core's safepoint calls our check there (track_safepoint_set_check) and, if
 * it declines, releases the threads and fails the commit; we then wait again (with the heap
 * locks released, so that threads blocked in malloc while holding a mutex can proceed) and
 * retry, until the deadline, after which the check accepts any instant.
 */
#include "shim.h"
#include "preload_api.h"
#include "lockset.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <lrvm/lrvm.h>

#define MW_EXPORT __attribute__((visibility("default")))
#define MW_SLOTS 256      /* concurrent condition waiters tracked individually */
#define MW_POLL_NS 100000 /* between looks at the count while waiting for an instant */

/* glibc's implementations under their internal names (exported, non-default version) */
int mw_real_lock(pthread_mutex_t *m);
int mw_real_trylock(pthread_mutex_t *m);
int mw_real_unlock(pthread_mutex_t *m);
/* The version is glibc's base version for the architecture (GLIBC_2.2.5 on x86_64, GLIBC_2.17
 * on aarch64, ...): meson finds it by linking a probe (preload/meson.build) and fails the
 * configure step, naming the symbol, when no candidate links. */
#ifndef LRVM_GLIBC_PTHREAD_VERSION
#error "LRVM_GLIBC_PTHREAD_VERSION is set by preload/meson.build"
#endif
#define MW_SYMVER(local, name) __asm__(".symver " #local ", " #name "@" LRVM_GLIBC_PTHREAD_VERSION)
MW_SYMVER(mw_real_lock, __pthread_mutex_lock);
MW_SYMVER(mw_real_trylock, __pthread_mutex_trylock);
MW_SYMVER(mw_real_unlock, __pthread_mutex_unlock);

MW_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t c, const struct timespec *t);

static int mutex_wait_on; /* LRVM_MUTEX_WAIT > 0: count */
/* `held_total` and `cond_waiter_mutexes` are plain objects accessed only through the __atomic
 * builtins (clang refuses _Atomic-qualified objects there; gcc accepts both) */
static long held_total; /* program mutexes held or being acquired */
static __thread long held_here __attribute__((tls_model("initial-exec"))); /* this thread's */
static pthread_mutex_t *cond_waiter_mutexes[MW_SLOTS]; /* of uncounted condition waiters */
__thread int shim_mutex_declined __attribute__((tls_model("initial-exec")));
static __thread int waiting __attribute__((tls_model("initial-exec"))); /* a waiting commit */
static uint64_t deadline_ns;
static int forced_now;
static uint64_t n_waited, n_forced, total_wait_ns, max_wait_ns;


/* count / uncount -- this thread holds (or is acquiring) one more / one less mutex. held_here
 * keeps the count from going negative for a mutex locked before counting began. */
static inline void count(void)
{
    held_here++;
    __atomic_fetch_add(&held_total, 1, __ATOMIC_SEQ_CST);
}
static inline void uncount(void)
{
    if (held_here > 0) {
        held_here--;
        __atomic_fetch_sub(&held_total, 1, __ATOMIC_SEQ_CST);
    }
}

/* real -- a libc function by name through dlsym(RTLD_NEXT), cached */
static void *real(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = dlsym(RTLD_NEXT, name);
        if (f == NULL) {
            shim_say(2, "cannot find the C library's ", name, " (dlsym RTLD_NEXT)", NULL);
            abort();
        }
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}
#define REAL(fn) ((__typeof__(&fn))real(&slot_##fn, #fn))
static void *slot_pthread_mutex_timedlock, *slot_pthread_mutex_clocklock, *slot_pthread_cond_wait,
    *slot_pthread_cond_timedwait, *slot_pthread_cond_clockwait;

/* ---- the exports -------------------------------------------------------------------------- */

/* pthread_mutex_lock -- libc's pthread_mutex_lock, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
    ls_add(m, 0); /* listed before acquiring (lockset.c) */
    if (!mutex_wait_on) {
        int rc = mw_real_lock(m);
        if (rc)
            ls_del(m, 0);
        return rc;
    }
    count();
    int rc = mw_real_lock(m);
    if (rc) {
        uncount();
        ls_del(m, 0);
    }
    return rc;
}

/* pthread_mutex_trylock -- libc's pthread_mutex_trylock, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
    ls_add(m, 0); /* listed before acquiring (lockset.c) */
    if (!mutex_wait_on) {
        int rc = mw_real_trylock(m);
        if (rc)
            ls_del(m, 0);
        return rc;
    }
    count();
    int rc = mw_real_trylock(m);
    if (rc) {
        uncount();
        ls_del(m, 0);
    }
    return rc;
}

/* pthread_mutex_timedlock -- libc's pthread_mutex_timedlock, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *t)
{
    ls_add(m, 0); /* listed before acquiring (lockset.c) */
    if (!mutex_wait_on) {
        int rc = REAL(pthread_mutex_timedlock)(m, t);
        if (rc)
            ls_del(m, 0);
        return rc;
    }
    count();
    int rc = REAL(pthread_mutex_timedlock)(m, t);
    if (rc) {
        uncount();
        ls_del(m, 0);
    }
    return rc;
}

/* pthread_mutex_clocklock -- libc's pthread_mutex_clocklock, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t c, const struct timespec *t)
{
    ls_add(m, 0); /* listed before acquiring (lockset.c) */
    if (!mutex_wait_on) {
        int rc = REAL(pthread_mutex_clocklock)(m, c, t);
        if (rc)
            ls_del(m, 0);
        return rc;
    }
    count();
    int rc = REAL(pthread_mutex_clocklock)(m, c, t);
    if (rc) {
        uncount();
        ls_del(m, 0);
    }
    return rc;
}

/* pthread_mutex_unlock -- libc's pthread_mutex_unlock, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
    int rc = mw_real_unlock(m); /* uncount and unlist only after: superset at every instant */
    if (rc == 0) {
        if (mutex_wait_on)
            uncount();
        ls_del(m, 0);
    }
    return rc;
}

/* slot_take -- register m as the mutex of an uncounted condition waiter; -1 if no slot */
static int slot_take(pthread_mutex_t *m)
{
    if (held_here <= 0)
        return -1; /* its lock was not counted (taken before counting began) */
    for (int i = 0; i < MW_SLOTS; i++) {
        pthread_mutex_t *expect = NULL;
        if (__atomic_compare_exchange_n(&cond_waiter_mutexes[i], &expect, m, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            return i;
    }
    return -1;
}

/* cond_enter / cond_leave -- around a condition wait: while waiting the thread holds its
 * mutex only when the lock word says so (see the file comment). Registration comes before
 * uncounting, re-counting before deregistration: at no instant is a holder invisible. */
static int cond_enter(pthread_mutex_t *m)
{
    int s = slot_take(m);
    if (s >= 0)
        uncount();
    return s;
}
static void cond_leave(int s)
{
    if (s < 0)
        return;
    count();
    __atomic_store_n(&cond_waiter_mutexes[s], NULL, __ATOMIC_SEQ_CST);
}

/* pthread_cond_wait -- libc's pthread_cond_wait, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    ls_add(c, LS_COND); /* the cond and its mutex stay listed throughout the wait */
    ls_add(m, 0);
    int s = mutex_wait_on ? cond_enter(m) : -1;
    int rc = REAL(pthread_cond_wait)(c, m);
    cond_leave(s);
    ls_del(m, 0);
    ls_del(c, LS_COND);
    return rc;
}

/* pthread_cond_timedwait -- libc's pthread_cond_timedwait, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                     const struct timespec *t)
{
    ls_add(c, LS_COND); /* the cond and its mutex stay listed throughout the wait */
    ls_add(m, 0);
    int s = mutex_wait_on ? cond_enter(m) : -1;
    int rc = REAL(pthread_cond_timedwait)(c, m, t);
    cond_leave(s);
    ls_del(m, 0);
    ls_del(c, LS_COND);
    return rc;
}

/* pthread_cond_clockwait -- libc's pthread_cond_clockwait, counting the program's held mutexes (LRVM_MUTEX_WAIT) */
MW_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t k,
                                     const struct timespec *t)
{
    ls_add(c, LS_COND); /* the cond and its mutex stay listed throughout the wait */
    ls_add(m, 0);
    int s = mutex_wait_on ? cond_enter(m) : -1;
    int rc = REAL(pthread_cond_clockwait)(c, m, k, t);
    cond_leave(s);
    ls_del(m, 0);
    ls_del(c, LS_COND);
    return rc;
}

/* ---- this library's own calls (-Wl,--wrap: see the file comment) ----------------------- */

int __wrap_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_trylock(pthread_mutex_t *m);
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m);
int __wrap_pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *t);
int __wrap_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int __wrap_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
    return mw_real_lock(m);
}
int __wrap_pthread_mutex_trylock(pthread_mutex_t *m)
{
    return mw_real_trylock(m);
}
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m)
{
    return mw_real_unlock(m);
}
int __wrap_pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *t)
{
    return REAL(pthread_mutex_timedlock)(m, t);
}
int __wrap_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    return REAL(pthread_cond_wait)(c, m);
}
int __wrap_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t)
{
    return REAL(pthread_cond_timedwait)(c, m, t);
}

/* ---- the commit side ---------------------------------------------------------------------- */

/* unlocked -- no program thread holds a mutex (exact only with the others stopped) */
static int unlocked(void)
{
    if (__atomic_load_n(&held_total, __ATOMIC_SEQ_CST) != 0)
        return 0;
    for (int i = 0; i < MW_SLOTS; i++) {
        pthread_mutex_t *m = __atomic_load_n(&cond_waiter_mutexes[i], __ATOMIC_SEQ_CST);
        if (m && __atomic_load_n(&m->__data.__lock, __ATOMIC_SEQ_CST) != 0)
            return 0;
    }
    return 1;
}

/* instant_check -- the safepoint's check: only this thread's waiting commits are judged (an
 * aware program's own rvm_commit, or the exit commit, take any instant) */
static int instant_check(void *arg)
{
    (void)arg;
    if (!waiting || unlocked())
        return 0;
    if (shim_mono_ns() >= deadline_ns) {
        forced_now = 1;
        return 0;
    }
    shim_mutex_declined = 1;
    return 1;
}

int shim_mutex_setup(void)
{
    /* resolve now (not on first use, which may be in a signal handler or with ld.so's lock) */
    void **slots_[] = {&slot_pthread_mutex_timedlock, &slot_pthread_mutex_clocklock,
                       &slot_pthread_cond_wait, &slot_pthread_cond_timedwait,
                       &slot_pthread_cond_clockwait};
    static const char *const names[] = {"pthread_mutex_timedlock", "pthread_mutex_clocklock",
                                        "pthread_cond_wait", "pthread_cond_timedwait",
                                        "pthread_cond_clockwait"};
    for (int i = 0; i < 5; i++)
        if (*slots_[i] == NULL)
            *slots_[i] = dlsym(RTLD_NEXT, names[i]);
    if (shim_opts.mutex_wait_ns == 0)
        return 0;
    if (!(shim_opts.commit & (SHIM_COMMIT_SIGNAL | SHIM_COMMIT_INTERVAL)))
        shim_say(2,
                 "LRVM_MUTEX_WAIT is set but LRVM_COMMIT has no signal or interval commit: "
                 "it has no effect",
                 NULL);
    track_safepoint_set_check(instant_check, NULL);
    __atomic_store_n(&mutex_wait_on, 1, __ATOMIC_RELEASE);
    return 0;
}

/* shim_mutex_commit -- called by shim_commit (commit.c), commits serialised */
int shim_mutex_commit(void)
{
    uint64_t t0 = shim_mono_ns();
    deadline_ns = t0 + shim_opts.mutex_wait_ns;
    forced_now = 0;
    waiting = 1;
    int rc;
    for (;;) {
        /* wait for a likely instant without stopping anybody (and without the heap locks) */
        while (!unlocked() && shim_mono_ns() < deadline_ns) {
            struct timespec ts = {0, MW_POLL_NS};
            nanosleep(&ts, NULL);
        }
        shim_mutex_declined = 0;
        rc = shim_persist_commit(0);
        if (!(rc != 0 && shim_mutex_declined))
            break;
    }
    waiting = 0;
    shim_mutex_declined = 0;
    uint64_t w = shim_mono_ns() - t0;
    n_waited++;
    total_wait_ns += w;
    if (w > max_wait_ns)
        max_wait_ns = w;
    if (forced_now)
        n_forced++;
    return rc;
}

void shim_mutex_stats(int fd)
{
    if (!mutex_wait_on)
        return;
    char a[24], b[24], c[24], d[24];
    shim_say(fd, "stats: mutex wait: ", shim_fmt_u64(a, n_waited),
             " commits waited for no "
             "mutex held, ",
             shim_fmt_u64(b, n_forced),
             " forced (LRVM_MUTEX_WAIT bound reached), "
             "wait max ",
             shim_fmt_u64(c, max_wait_ns / 1000), " us avg ",
             shim_fmt_u64(d, n_waited ? total_wait_ns / n_waited / 1000 : 0), " us", NULL);
}
