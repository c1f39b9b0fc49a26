/* SPDX-License-Identifier: MIT */
/*
 * commit.c -- the commit hooks LRVM_COMMIT asks for, all funnelled into shim_commit().
 *
 *   exit      an atexit handler registered from the shim's constructor. atexit handlers run in
 *             reverse order of registration and ours is registered before main (and before the
 *             program's constructors), so it runs AFTER the program's own handlers and C++
 *             static destructors: their last writes are in the commit. _exit() and a crash skip
 *             it, which is the point: the restart then sees the previous commit.
 *   signal    the handler only sem_post()s (async-signal-safe); a commit thread does the work,
 *             since a commit takes locks the interrupted code may hold. A handler the program
 *             installs for the same signal does not replace ours: sigchain.c hands the call to
 *             shim_commit_sigaction, which records it, and ours calls it after asking for the
 *             commit (the program's signal keeps doing what the program wants, and commits).
 *   interval  the same thread, waking at the period.
 * The commit thread exists only if signal or interval is asked for; it blocks all signals so
 * that it never runs the program's handlers. In a fork child it does not exist (fork copies the
 * calling thread only) and shim_commit refuses: the child must never write the parent's segment.
 *
 * A CLEAN EXIT (exit() or a return from main) never loses a commit the program was told had
 * succeeded: with LRVM_FLUSH=0 the queued no_flush commits are flushed at exit even when no exit
 * commit is asked for (LRVM_COMMIT=none). _exit() and _Exit() skip the exit handlers on
 * purpose; they are treated like a crash (queued no_flush commits are lost), which keeps them
 * async-signal-safe. If the exit commit or that flush fails, the process must not look
 * successful: the last exit handler (registered first, with on_exit to learn the status)
 * says what was lost and ends the process with a non-zero status. A clean exit also leaves the
 * log empty (every record applied to the segment, which is fsynced first), so the next start
 * replays nothing however much this run logged; a crash leaves what the truncation thread has
 * not applied yet (at most LRVM's threshold, 1/8 of the log) for the next start.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lrvm/lrvm.h>

volatile uint64_t shim_commit_calls;
static uint64_t commit_by_exit, commit_by_signal, commit_by_interval, commit_by_explicit;
/* interval periods that passed with no commit because the previous one outlasted its period */
static uint64_t periods_skipped;
static pthread_mutex_t commit_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t commit_sem;
static volatile sig_atomic_t sig_pending; /* set by the handler; taken (exchanged) by a commit */
/* LRVM_STATS goes to a private duplicate of stderr taken before main: programs such as
 * coreutils close stderr in their own atexit handler, which runs before ours. */
static int stats_fd = 2;
static int exit_done;       /* the exit commit was made (or skipped): once only */
static int commits_closed;  /* after the exit commit: no more commits */
static int periodic_closed; /* the exit sequence has begun: no more signal or interval commits */
static int exit_failed;     /* the exit commit or the exit flush failed */
/* the program's own action for the commit signal (shim_commit_sigaction); SIG_DFL until it
 * installs one. Written under app_mu, read by on_sig: the handler pointer is read once,
 * atomically, so a handler never runs with a half-written pointer. */
static pthread_mutex_t app_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction app_act;
static void *volatile app_fn; /* app_act's handler as on_sig calls it */

/* shim_commit -- the single commit entry point: with LRVM_SEGMENT, a commit of the tracked heap
 * (persist.c); without, there is nothing to commit to (ENOSYS), calls are only counted. */
int shim_commit(const char *why)
{
    if (shim_forked_child)
        return EPERM;
    pthread_mutex_lock(&commit_lock);
    if (__atomic_load_n(&commits_closed, __ATOMIC_ACQUIRE) ||
        (__atomic_load_n(&periodic_closed, __ATOMIC_ACQUIRE) &&
         (strcmp(why, "signal") == 0 || strcmp(why, "interval") == 0))) {
        pthread_mutex_unlock(&commit_lock);
        return 0;
    }
    shim_forkgate_wait(); /* forks already under way go first (forkgate.c) */
    if (shim_kw_hi != 0)
        shim_sigchain_reclaim(); /* a fault backend needs its dispatcher (sigchain.c) */
    /* LRVM_MUTEX_WAIT applies to the commits the program did not ask for at a point of its own
   * choosing: signal and interval. Exit and explicit (aware.c) commits take their instant. */
    int waits =
        shim_opts.mutex_wait_ns && (strcmp(why, "signal") == 0 || strcmp(why, "interval") == 0);
    int rc = !shim_persistent ? ENOSYS
             : waits          ? shim_mutex_commit()
                              : shim_persist_commit(strcmp(why, "exit") == 0);
    shim_commit_calls++;
    if (strcmp(why, "exit") == 0)
        commit_by_exit++;
    else if (strcmp(why, "signal") == 0)
        commit_by_signal++;
    else if (strcmp(why, "explicit") == 0)
        commit_by_explicit++; /* an aware program's rvm_commit (aware.c) */
    else
        commit_by_interval++;
    pthread_mutex_unlock(&commit_lock);
    return rc;
}

/* exit_flush -- a clean exit without an exit commit: make the queued no_flush commits durable
 * (the commit lock keeps the commit thread out meanwhile); 0 or an rvm_return_t */
static int exit_flush(void)
{
    if (!shim_persistent || shim_opts.flush)
        return 0;
    pthread_mutex_lock(&commit_lock);
    int rc = __atomic_load_n(&commits_closed, __ATOMIC_ACQUIRE) ? 0 : shim_persist_flush();
    pthread_mutex_unlock(&commit_lock);
    return rc;
}

/* exit_commit -- the exit commit, once: from commit_before_dtors when the globals are kept
 * (globals.c says why it must precede the static destructors), else from commit_at_exit */
static void exit_commit(void)
{
    if (__atomic_exchange_n(&exit_done, 1, __ATOMIC_ACQ_REL))
        return;
    if (shim_forked_child) {
        /* never commits; and commit_lock may be held for good here: fork copied it from a
     * parent's thread that was committing */
        __atomic_store_n(&commits_closed, 1, __ATOMIC_RELEASE);
        return;
    }
    /* a commit in flight (the commit thread's) ends first: what it commits is not cut off */
    pthread_mutex_lock(&commit_lock);
    pthread_mutex_unlock(&commit_lock);
    /* A commit the signal asked for and the commit thread has not taken yet is made now: the
   * request is not lost because the program exits first. */
    if (__atomic_exchange_n(&sig_pending, 0, __ATOMIC_ACQ_REL))
        shim_commit("signal");
    /* From here the exit commit (or flush) covers everything a periodic commit would. And one
     * would stall the whole process: its safepoint cannot stop this thread while it sits in
     * the settle's fdatasync (measured: 70 ms pauses at the end of a 100 MiB run). */
    __atomic_store_n(&periodic_closed, 1, __ATOMIC_RELEASE);
    int rc = 0;
    if (shim_opts.commit & SHIM_COMMIT_EXIT) {
        if (shim_persistent)
            shim_persist_settle(); /* the exit commit alone in the log: see persist.c */
        rc = shim_commit("exit");  /* flushes the earlier no_flush commits too (persist.c) */
    } else {
        rc = exit_flush();
    }
    if (rc != 0 && rc != ENOSYS)
        exit_failed = 1;
    /* nothing after the exit commit is committed: the destructors that follow may free what the
   * committed globals point to */
    __atomic_store_n(&commits_closed, 1, __ATOMIC_RELEASE);
    /* a clean exit leaves the log empty, so the next start replays nothing */
    if (rc == 0 && shim_persistent)
        shim_persist_settle();
}

int shim_commit_before_dtors(void)
{
    return atexit(exit_commit) ? ENOMEM : 0;
}

/* exit_failed_end -- the exit commit failed: say what is lost and end with a non-zero status
 * (the program's own, if it gave one). This is the last exit handler, so only stdio's final
 * flush is left to do, which _exit would skip: it is done here. */
static void exit_failed_end(int status)
{
    char st[24], was[24];
    int code = (status & 0xff) != 0 ? status & 0xff : 1; /* what the parent would see */
    shim_say(2,
             "this run's changes since its last successful commit were not committed to "
             "LRVM_SEGMENT=",
             shim_opts.segment ? shim_opts.segment : "",
             " (the next run starts "
             "from that commit); exit status ",
             shim_fmt_u64(st, (uint64_t)(unsigned)code), " instead of ",
             shim_fmt_u64(was, (uint64_t)(unsigned)(status & 0xff)), NULL);
    fflush(NULL);
    _exit(code);
}

/* commit_at_exit -- the exit hook (on_exit: it learns the exit status); also prints
 * LRVM_STATS, and ends a run whose exit commit failed with a non-zero status */
static void commit_at_exit(int status, void *arg)
{
    (void)arg;
    exit_commit();
    if (shim_opts.stats && !shim_forked_child) {
        char a[24], b[24], c[24], d[24], x[24], k[24];
        shim_say(stats_fd, "stats: commits ", shim_fmt_u64(a, shim_commit_calls), " (exit ",
                 shim_fmt_u64(b, commit_by_exit), ", signal ", shim_fmt_u64(c, commit_by_signal),
                 ", interval ", shim_fmt_u64(d, commit_by_interval), ", explicit ",
                 shim_fmt_u64(x, commit_by_explicit), ", skipped periods ",
                 shim_fmt_u64(k, __atomic_load_n(&periods_skipped, __ATOMIC_RELAXED)),
                 shim_persistent ? "); segment " : "); volatile heap (no LRVM_SEGMENT)",
                 shim_persistent ? shim_opts.segment : "", NULL);
        shim_heap_stats(stats_fd);
        if (shim_persistent)
            shim_persist_stats(stats_fd);
        shim_mutex_stats(stats_fd);
        shim_locks_stats(stats_fd);
        shim_restore_stats(stats_fd);
    }
    if (exit_failed && !shim_forked_child)
        exit_failed_end(status);
}


/* on_sig -- the commit signal's handler: mark and wake the commit thread (async-signal-safe),
 * then run the program's own handler for the signal, if it installed one, as the kernel would
 * have: with its mask added, SA_SIGINFO or not, SA_RESETHAND honoured. Its default action
 * (SIG_DFL: terminate) is what LRVM_COMMIT=signal replaces; SIG_IGN just commits. */
static void on_sig(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    sig_pending = 1;
    sem_post(&commit_sem);
    errno = saved;
    void *fn = app_fn;
    if (fn == NULL)
        return;
    int flags = app_act.sa_flags;
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &app_act.sa_mask, &old);
    if (flags & SA_RESETHAND)
        app_fn = NULL;
    if (flags & SA_SIGINFO)
        ((void (*)(int, siginfo_t *, void *))fn)(sig, si, uc);
    else
        ((void (*)(int))fn)(sig);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
}

int shim_commit_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!(shim_opts.commit & SHIM_COMMIT_SIGNAL) || sig != shim_opts.commit_signal ||
        shim_forked_child)
        return 0;
    pthread_mutex_lock(&app_mu);
    if (old != NULL) {
        *old = app_act;
        void *had = (app_act.sa_flags & SA_SIGINFO) ? (void *)app_act.sa_sigaction
                                                    : (void *)app_act.sa_handler;
        if (app_fn == NULL && had != (void *)SIG_DFL && had != (void *)SIG_IGN) {
            old->sa_handler = SIG_DFL; /* SA_RESETHAND reset it at its first call */
            old->sa_flags &= ~(SA_SIGINFO | SA_RESETHAND);
        }
    }
    if (act != NULL) {
        app_fn = NULL; /* no half-updated action is ever called */
        app_act = *act;
        void *fn =
            (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction : (void *)act->sa_handler;
        app_fn = (fn == (void *)SIG_DFL || fn == (void *)SIG_IGN) ? NULL : fn;
    }
    pthread_mutex_unlock(&app_mu);
    return 1;
}

/* commit_thread -- waits for the signal or the period, then commits */
static void *commit_thread(void *arg)
{
    (void)arg;
    /* Take the tracker's safepoint signal: a thread blocking it costs a commit made elsewhere
   * (the exit commit) a 50 ms wait before it is recognised as not writing. */
    sigset_t ts;
    sigemptyset(&ts);
    sigaddset(&ts, LRVM_TRACK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &ts, NULL);
    uint64_t iv = shim_opts.commit_interval_ns;
    uint64_t due = shim_mono_ns() + iv; /* when the next interval commit is due */
    for (;;) {
        int rc;
        if (shim_opts.commit & SHIM_COMMIT_INTERVAL) {
            /* Interval commits keep to a fixed grid: the next one is due one period after the
       * last one was due, not after it ended, or every period would stretch by the commit's
       * own length (a 5 ms commit every 100 ms would give 95 commits where 100 were asked).
       * Behind schedule (the last commit outlasted the period: a loaded machine, a big dirty
       * set)? The missed periods are skipped: the next commit is due at the first grid point
       * after now. Catching up back to back would leave the program almost no time between
       * pauses and the commit thread holding the heap locks almost always (forkgate.c). A
       * signal commit does not move the grid. */
            uint64_t now = shim_mono_ns();
            if (due <= now) {
                uint64_t late = (now - due) / iv; /* grid points passed with no commit */
                __atomic_fetch_add(&periods_skipped, late, __ATOMIC_RELAXED);
                due += (late + 1) * iv;
            }
            struct timespec ts_due = {.tv_sec = (time_t)(due / 1000000000u),
                                      .tv_nsec = (long)(due % 1000000000u)};
            while ((rc = sem_clockwait(&commit_sem, CLOCK_MONOTONIC, &ts_due)) != 0 &&
                   errno == EINTR)
                ;
        } else {
            while ((rc = sem_wait(&commit_sem)) != 0 && errno == EINTR)
                ;
        }
        if (rc == 0 && __atomic_exchange_n(&sig_pending, 0, __ATOMIC_ACQ_REL)) {
            shim_commit("signal");
        } else if (rc != 0) {
            shim_commit("interval");
        }
    }
    return NULL;
}

/* shim_commit_setup -- install the hooks; called from the constructor, before main */
int shim_commit_setup(void)
{
    if (shim_opts.stats) {
        int fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
        if (fd >= 0)
            stats_fd = fd;
    }
    app_act.sa_handler = SIG_DFL;
    if (on_exit(commit_at_exit, NULL) != 0) {
        shim_say(2, "cannot register the exit commit (on_exit failed)", NULL);
        return ENOMEM;
    }
    if (!(shim_opts.commit & (SHIM_COMMIT_SIGNAL | SHIM_COMMIT_INTERVAL)))
        return 0;
    sem_init(&commit_sem, 0, 0);
    if (shim_opts.commit & SHIM_COMMIT_SIGNAL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sig;
        sa.sa_flags = SA_RESTART | SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(shim_opts.commit_signal, &sa, NULL) != 0) {
            int err = errno;
            shim_say(2, "LRVM_COMMIT: cannot install the commit signal handler: ", strerror(err),
                     NULL);
            return err;
        }
    }
    sigset_t all, old;
    sigfillset(&all);
    /* ... but the fault signals: with the uffd-sigbus and mprotect backends a first write to a
   * heap page from this thread (libc writes the thread's own DTV, which ld.so calloc'ed in
   * the heap) is a SIGBUS/SIGSEGV that must reach vmprim's handler; blocked, the kernel
   * would kill the process instead. */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits "everything blocked" */
    pthread_t t;
    int rc = pthread_create(&t, NULL, commit_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        shim_say(2, "LRVM_COMMIT: cannot start the commit thread: ", strerror(rc), NULL);
        return rc;
    }
    pthread_detach(t);
    return 0;
}
