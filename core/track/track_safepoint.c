/* SPDX-License-Identifier: MIT */
/*
 * track_safepoint.c -- stop every other thread of the process for an instant.
 *
 * A commit of tracked memory must capture one instant (track.h). We stop the world with a
 * signal: list /proc/self/task, send LRVM_TRACK_SIGNAL to each other thread with tgkill,
 * and wait until each has registered in our handler, where it parks on a futex until
 * released.
 *
 * Generations. Stop number g registers threads as (g, tid) in one 64-bit word and releases
 * by setting sp_release_seq = g. A handler parks until sp_release_seq >= g, where g is the
 * stop in progress when it entered; a handler that finds no stop in progress (a signal
 * delivered late, see below) returns at once. The committer counts only registrations of
 * its own g, so a late handler can never be mistaken for a parked thread.
 *
 * Why it is sound:
 *  - A parked thread executes no user code, so it writes no tracked memory. Its earlier
 *    stores are visible to us: it registers with an atomic store after they happened.
 *  - Threads created meanwhile: only running threads create threads. We list the tasks
 *    again after every round of signals and stop when a round finds no new thread. A
 *    clone() in progress when its parent was signalled completes before the parent handles
 *    the signal, so the child is listed in the next round.
 *  - The engine's own threads (truncation; engine_own_thread) never write tracked memory
 *    and are not stopped.
 *  - Threads that exit meanwhile never park: we probe missing threads with tgkill(.., 0);
 *    ESRCH means gone (an exiting thread writes nothing).
 *  - Threads that block LRVM_TRACK_SIGNAL (signal-handling threads in sigwait, library
 *    worker threads that block everything) cannot be stopped. (A thread inside a tracked
 *    page's fault handler blocks it too, for microseconds: track_hook.) If a thread has
 *    not parked after TRACK_SP_GRACE_US and its SigBlk (/proc/self/task/TID/status) has our signal,
 *    it is skipped: such threads are assumed not to write tracked memory (documented in
 *    lrvm.h). It is remembered, and while our signal is still pending for it (SigPnd) we
 *    send no other, or queued real-time signals would pile up to RLIMIT_SIGPENDING.
 *    When it unblocks, the pending signal runs the handler, which returns at once.
 *  - Before a new stop we wait until every thread of the previous stop has left the
 *    handler: a thread still inside it blocks the signal, and must not look "blocking".
 *  - A thread that neither parks nor exits nor blocks (stopped by SIGSTOP or a debugger):
 *    after TRACK_SP_TIMEOUT_MS we release everybody and fail with ETIMEDOUT.
 *  - Threads blocked in a system call run the handler (the call is interrupted) and the
 *    call is restarted afterwards (SA_RESTART), except calls Linux never restarts
 *    (signal(7)): those return EINTR, as for any signal.
 *  - Nothing here allocates: the task list is read with getdents64 into a stack buffer,
 *    because a parked thread may hold malloc's lock.
 * The handler uses only async-signal-safe calls (futex, gettid) and keeps errno.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "observer.h"
#include "track.h"

#define TRACK_SP_MAX_THREADS 4096
#define TRACK_SP_MAX_BLOCKING 64
#define TRACK_SP_GRACE_US 50000 /* longer than any fault handler, even preempted */
#define TRACK_SP_TIMEOUT_MS 5000

static pthread_once_t sp_once = PTHREAD_ONCE_INIT;
static int sp_install_rc;
static _Atomic unsigned sp_stop_seq;    /* number of the stop in progress or last */
static _Atomic unsigned sp_release_seq; /* == sp_stop_seq when no stop is in progress */
static _Atomic unsigned sp_nparked;     /* registrations (this stop) */
static _Atomic unsigned sp_inside;      /* threads inside the handler */
static _Atomic unsigned sp_arrivals;    /* futex word: bumped by each registration */
static _Atomic uint64_t sp_parked[TRACK_SP_MAX_THREADS]; /* g << 32 | tid */
static pid_t sp_sent[TRACK_SP_MAX_THREADS];              /* tid signalled; 0 gone; -tid skipped */
static unsigned sp_nsent;
static pid_t sp_blocking[TRACK_SP_MAX_BLOCKING]; /* threads seen blocking our signal */
static char sp_msg[256];
static int (*sp_check)(void *); /* the instant check (track_safepoint_set_check) */
static void *sp_check_arg;

/* sp_futex -- futex(2) on a 32-bit atomic word */
static long sp_futex(_Atomic unsigned *w, int op, unsigned val)
{
    return syscall(SYS_futex, (unsigned *)w, op, val, NULL, NULL, 0);
}

/* sp_handler -- register for the stop in progress and park until it is released */
static void sp_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    int saved = errno;
    atomic_fetch_add(&sp_inside, 1);
    unsigned g = atomic_load(&sp_stop_seq);
    if (atomic_load(&sp_release_seq) != g) {
        unsigned i = atomic_fetch_add(&sp_nparked, 1);
        if (i < TRACK_SP_MAX_THREADS)
            atomic_store(&sp_parked[i], (uint64_t)g << 32 | (uint32_t)syscall(SYS_gettid));
        atomic_fetch_add(&sp_arrivals, 1);
        sp_futex(&sp_arrivals, FUTEX_WAKE_PRIVATE, 1);
        for (;;) {
            unsigned r = atomic_load(&sp_release_seq);
            if ((int)(r - g) >= 0)
                break;
            sp_futex(&sp_release_seq, FUTEX_WAIT_PRIVATE, r);
        }
    }
    atomic_fetch_sub(&sp_inside, 1);
    errno = saved;
}

/* sp_install -- install the handler once (SA_RESTART: interrupted calls resume) */
static void sp_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sp_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    sigdelset(&sa.sa_mask, SIGSEGV); /* never mask synchronous faults */
    sigdelset(&sa.sa_mask, SIGBUS);
    if (sigaction(LRVM_TRACK_SIGNAL, &sa, NULL) != 0)
        sp_install_rc = errno;
}

/* sp_now_us -- monotonic microseconds */
static uint64_t sp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* sp_sigstate -- read SigBlk/SigPnd of thread tid: bit 1 blocked, bit 2 pending (for our
 * signal); 0 if the file cannot be read */
static int sp_sigstate(pid_t tid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int res = 0;
    static const char *const keys[2] = {"SigBlk:", "SigPnd:"};
    for (int k = 0; k < 2; k++) {
        const char *p = strstr(buf, keys[k]);
        if (p == NULL)
            continue;
        p += 7;
        while (*p == ' ' || *p == '\t')
            p++;
        uint64_t mask = 0;
        for (; *p != '\0' && *p != '\n'; p++) {
            int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
            if (d < 0)
                break;
            mask = mask << 4 | (uint64_t)d;
        }
        if ((mask >> (LRVM_TRACK_SIGNAL - 1)) & 1)
            res |= 1 << k;
    }
    return res;
}

/* sp_blocking_has / sp_blocking_set -- the remembered blocking threads */
static int sp_blocking_has(pid_t tid)
{
    for (int i = 0; i < TRACK_SP_MAX_BLOCKING; i++)
        if (sp_blocking[i] == tid)
            return 1;
    return 0;
}

static void sp_blocking_set(pid_t tid, int on)
{
    for (int i = 0; i < TRACK_SP_MAX_BLOCKING; i++) {
        if (on ? sp_blocking[i] == 0 : sp_blocking[i] == tid) {
            sp_blocking[i] = on ? tid : 0;
            return;
        }
    }
}

/* sp_known -- was tid already handled in this stop? */
static int sp_known(pid_t tid)
{
    for (unsigned i = 0; i < sp_nsent; i++)
        if (sp_sent[i] == tid || sp_sent[i] == -tid)
            return 1;
    return 0;
}

/* sp_is_parked -- has tid registered for stop g? */
static int sp_is_parked(pid_t tid, unsigned g)
{
    unsigned n = atomic_load(&sp_nparked);
    if (n > TRACK_SP_MAX_THREADS)
        n = TRACK_SP_MAX_THREADS;
    uint64_t want = (uint64_t)g << 32 | (uint32_t)tid;
    for (unsigned i = 0; i < n; i++)
        if (atomic_load(&sp_parked[i]) == want)
            return 1;
    return 0;
}

/* sp_signal_new -- list /proc/self/task and signal every thread not yet handled; returns
 * the number newly signalled, or -errno */
static int sp_signal_new(pid_t pid, pid_t self)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[8192] __attribute__((aligned(8)));
    int added = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n < 0) {
            added = -errno;
            break;
        }
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9')
                continue;
            pid_t tid = (pid_t)strtol(d->d_name, NULL, 10);
            if (tid == self || sp_known(tid) || engine_own_thread(tid))
                continue;
            if (sp_nsent == TRACK_SP_MAX_THREADS) {
                close(fd);
                return -EMFILE;
            }
            if (sp_blocking_has(tid)) {
                int ss = sp_sigstate(tid);
                if ((ss & 3) == 3) { /* still blocking, our signal still queued */
                    sp_sent[sp_nsent++] = -tid;
                    continue;
                }
                sp_blocking_set(tid, 0);
            }
            if (syscall(SYS_tgkill, pid, tid, LRVM_TRACK_SIGNAL) != 0) {
                if (errno == ESRCH)
                    continue; /* exited between listing and signalling */
                int e = errno;
                close(fd);
                return -e;
            }
            sp_sent[sp_nsent++] = tid;
            added++;
        }
    }
    close(fd);
    return added;
}

/* sp_wait_parked -- wait until every signalled thread of stop g parked, is gone, or blocks
 * our signal; 0, or ETIMEDOUT (message in sp_msg) */
static int sp_wait_parked(pid_t pid, unsigned g, uint64_t t0)
{
    for (;;) {
        unsigned arrivals = atomic_load(&sp_arrivals);
        unsigned missing = 0;
        pid_t late = 0;
        uint64_t waited = sp_now_us() - t0;
        for (unsigned i = 0; i < sp_nsent; i++) {
            pid_t tid = sp_sent[i];
            if (tid <= 0 || sp_is_parked(tid, g))
                continue;
            if (syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH) {
                sp_sent[i] = 0; /* exited: it will write nothing */
                continue;
            }
            if (waited > TRACK_SP_GRACE_US && (sp_sigstate(tid) & 1)) {
                sp_sent[i] = -tid; /* blocks our signal: skipped (see above) */
                sp_blocking_set(tid, 1);
                continue;
            }
            missing++;
            late = tid;
        }
        if (missing == 0)
            return 0;
        if (waited > (uint64_t)TRACK_SP_TIMEOUT_MS * 1000) {
            snprintf(sp_msg, sizeof(sp_msg),
                     "thread %d did not stop for the commit within "
                     "%d ms (is it stopped by SIGSTOP or a debugger?)",
                     (int)late, TRACK_SP_TIMEOUT_MS);
            return ETIMEDOUT;
        }
        /* sleep until a thread registers (or 1 ms, to notice exits and blockers) */
        struct timespec ts = {0, 1000000};
        syscall(SYS_futex, (unsigned *)&sp_arrivals, FUTEX_WAIT_PRIVATE, arrivals, &ts, NULL, 0);
    }
}

/* track_safepoint_stop -- park every other thread (see the essay above) */
int track_safepoint_stop(struct track_safepoint_stats *ss)
{
    pthread_once(&sp_once, sp_install);
    if (sp_install_rc != 0) {
        snprintf(sp_msg, sizeof(sp_msg),
                 "cannot install the handler of signal %d "
                 "(LRVM_TRACK_SIGNAL): %s",
                 LRVM_TRACK_SIGNAL, strerror(sp_install_rc));
        return sp_install_rc;
    }
    /* threads of the previous stop still leaving the handler block our signal for a
     * moment; let them leave so that they are not taken for blocking threads */
    while (atomic_load(&sp_inside) != 0)
        sched_yield();
    pid_t pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    sp_nsent = 0;
    atomic_store(&sp_nparked, 0);
    unsigned g = atomic_load(&sp_stop_seq) + 1;
    atomic_store(&sp_stop_seq, g); /* a stop is in progress: release_seq == g - 1 */
    ss->nrounds = 0;
    uint64_t t0 = sp_now_us();
    for (;;) {
        int added = sp_signal_new(pid, self);
        ss->nrounds++;
        if (added < 0) {
            snprintf(sp_msg, sizeof(sp_msg),
                     "cannot signal the threads of the process "
                     "(/proc/self/task): %s",
                     strerror(-added));
            track_safepoint_release();
            return -added;
        }
        int e = sp_wait_parked(pid, g, t0);
        if (e != 0) {
            track_safepoint_release();
            return e;
        }
        if (added == 0)
            break; /* a round found no new thread: everybody is accounted for */
    }
    unsigned skipped = 0, parked = 0;
    for (unsigned i = 0; i < sp_nsent; i++) {
        skipped += sp_sent[i] < 0;
        parked += sp_sent[i] > 0;
    }
    ss->nthreads = parked;
    ss->nskipped = skipped;
    /* Everybody is parked: this is the instant. A client may need a property of the whole
     * program to hold at it (no pthread mutex held: preload's LRVM_MUTEX_WAIT), which can only
     * be judged now, not before the stop. If it declines, let the threads go: nothing has
     * been captured, and the caller may retry later. */
    int (*check)(void *) = sp_check;
    if (check != NULL && check(sp_check_arg) != 0) {
        snprintf(sp_msg, sizeof(sp_msg), "the instant check declined this instant");
        track_safepoint_release();
        return EAGAIN;
    }
    return 0;
}

/* track_safepoint_set_check -- fn (NULL: none) runs in the stopping thread at every instant,
 * with all other threads parked; a nonzero result declines the instant: the threads are
 * released and track_safepoint_stop fails with EAGAIN. fn must not allocate or take locks
 * the parked threads may hold. */
void track_safepoint_set_check(int (*fn)(void *arg), void *arg)
{
    sp_check_arg = arg;
    sp_check = fn;
}

/* track_safepoint_each -- fn(tid, arg) for every thread parked by the current stop and for
 * the stopping thread itself (between a successful stop and its release) */
void track_safepoint_each(void (*fn)(pid_t tid, void *arg), void *arg)
{
    for (unsigned i = 0; i < sp_nsent; i++)
        if (sp_sent[i] > 0)
            fn(sp_sent[i], arg);
    fn((pid_t)syscall(SYS_gettid), arg);
}

/* track_safepoint_release -- wake every parked thread of the current stop */
void track_safepoint_release(void)
{
    atomic_store(&sp_release_seq, atomic_load(&sp_stop_seq));
    sp_futex(&sp_release_seq, FUTEX_WAKE_PRIVATE, 0x7fffffff);
}

/* track_safepoint_message -- why the last stop failed */
const char *track_safepoint_message(void)
{
    return sp_msg;
}
