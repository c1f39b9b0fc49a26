/* SPDX-License-Identifier: MIT */
/*
 * helpers.c -- glibc's helper threads, replaced while a fault backend is in use.
 *
 * With LRVM_TRACK=uffd-sigbus or mprotect the first write of an epoch to a heap page is a
 * fault that must reach the shim's handler (SIGBUS or SIGSEGV). A thread that blocks that
 * signal is killed by the kernel instead, at its first heap write. faultmask.c keeps the
 * program's own masks from blocking them, but glibc starts two kinds of helper threads with
 * every signal blocked, from inside libc where no wrapper sees it:
 *  - SIGEV_THREAD timers (timer_create): a helper thread waits for the timer signal and, at
 *    each expiry, mallocs a small record and starts a thread for the callback. Its malloc is
 *    a heap write with every signal blocked: the process died at the first expiry.
 *  - POSIX aio (aio_read, aio_write, aio_fsync, lio_listio): helper threads do the I/O
 *    (pread into the program's buffer: EFAULT) and write the result into the aiocb (a heap
 *    write with every signal blocked: death).
 * So, with a fault backend (shim_kw_hi != 0), and only then:
 *  - a SIGEV_THREAD timer is a timerfd watched by one dispatcher thread of ours, started with
 *    pthread_create (its mask keeps the fault signals deliverable); each expiry starts a
 *    detached thread that runs the callback, as glibc does. timer_t values of these timers
 *    carry TIMER_TAG in their upper bits (no user address or kernel timer id does), and
 *    timer_settime/gettime/getoverrun/delete serve them. A CPU-time clock cannot be a
 *    timerfd: such a timer is refused with EINVAL and a message.
 *  - aio requests are done at once, in the calling thread, through the shim's read/write
 *    wrappers (which prepare heap buffers): the aiocb holds the result when the call
 *    returns, and the notification (none, signal with SI_ASYNCIO, thread, thread id) follows.
 *    glibc's aio_error, aio_return, aio_suspend and aio_cancel read the aiocb's result fields
 *    and work unchanged (nothing is in progress). Completing a request before returning is
 *    allowed by POSIX; the cost is that the caller waits for its I/O.
 *  - getaddrinfo_a (glibc's helper threads likewise) resolves each request at once.
 *  - mq_notify with SIGEV_THREAD is refused with a message (its glibc helper likewise).
 * With wp-async (or no tracking) every call goes straight to glibc.
 */
#undef _FILE_OFFSET_BITS /* define libc's symbols by their own names (see kwrite.c) */
#include "kwrite.h"

#include <aio.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "preload_api.h"
#include <lrvm/lrvm.h>

/* ---- notifications (timers and aio) ---------------------------------------------------------- */

struct notify_start {
    void (*fn)(union sigval);
    union sigval val;
};

/* notify_thread -- a detached thread's body: run the callback */
static void *notify_thread(void *arg)
{
    struct notify_start s = *(struct notify_start *)arg;
    free(arg);
    s.fn(s.val);
    return NULL;
}

/* notify_spawn -- run fn(val) in a new detached thread (attributes: the program's, if any) */
static int notify_spawn(void (*fn)(union sigval), union sigval val, pthread_attr_t *user)
{
    struct notify_start *s = malloc(sizeof(*s));
    if (s == NULL)
        return ENOMEM;
    s->fn = fn;
    s->val = val;
    /* the program's attributes are not changed (they may be shared): its stack size is
   * taken over into attributes of our own, which are detached */
    pthread_attr_t own;
    size_t ss;
    pthread_attr_init(&own);
    if (user != NULL && pthread_attr_getstacksize(user, &ss) == 0)
        pthread_attr_setstacksize(&own, ss);
    pthread_attr_setdetachstate(&own, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &own, notify_thread, s);
    pthread_attr_destroy(&own);
    if (rc != 0)
        free(s);
    return rc;
}

/* notify -- deliver a sigevent (aio completion) */
static void notify(struct sigevent *ev)
{
    if (ev->sigev_notify == SIGEV_THREAD) {
        notify_spawn(ev->sigev_notify_function, ev->sigev_value,
                     (pthread_attr_t *)ev->sigev_notify_attributes);
        return;
    }
    if (ev->sigev_notify != SIGEV_SIGNAL && ev->sigev_notify != SIGEV_THREAD_ID)
        return;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    si.si_signo = ev->sigev_signo;
    si.si_code = SI_ASYNCIO;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value = ev->sigev_value;
    if (ev->sigev_notify == SIGEV_SIGNAL)
        syscall(SYS_rt_sigqueueinfo, getpid(), ev->sigev_signo, &si);
    else
        syscall(SYS_rt_tgsigqueueinfo, getpid(), ev->_sigev_un._tid, ev->sigev_signo, &si);
}

/* ---- SIGEV_THREAD timers --------------------------------------------------------------------- */

#define TIMER_TAG ((uintptr_t)0x4c52 << 48)
#define TIMER_MAX 256

static struct stimer {
    int used;
    int fd;
    int overrun;
    void (*fn)(union sigval);
    union sigval val;
    pthread_attr_t attr;
    int has_attr;
} timers[TIMER_MAX];
static pthread_mutex_t timers_mu = PTHREAD_MUTEX_INITIALIZER;
static int timers_epoll = -1;

/* timer_slot -- our timer's slot for t, or NULL for glibc's */
static struct stimer *timer_slot(timer_t t)
{
    uintptr_t v = (uintptr_t)t;
    if ((v & ~(uintptr_t)0xffff) != TIMER_TAG || (v & 0xffff) >= TIMER_MAX)
        return NULL;
    return timers[v & 0xffff].used ? &timers[v & 0xffff] : NULL;
}

/* timer_dispatch -- the dispatcher thread: each expiry of a timer starts its callback */
static void *timer_dispatch(void *arg)
{
    (void)arg;
    /* Like glibc's helper, take no signal meant for the program -- except the two fault
   * signals (its heap writes must be recorded) and the commit's safepoint signal (it writes
   * the heap, so a commit must be able to stop it). Callback threads inherit this mask, as
   * glibc's do. */
    sigset_t m;
    sigfillset(&m);
    sigdelset(&m, SIGSEGV);
    sigdelset(&m, SIGBUS);
    sigdelset(&m, LRVM_TRACK_SIGNAL);
    pthread_sigmask(SIG_SETMASK, &m, NULL);
    for (;;) {
        struct epoll_event ev[16];
        int n = epoll_wait(timers_epoll, ev, 16, -1);
        for (int i = 0; i < n; i++) {
            pthread_mutex_lock(&timers_mu);
            struct stimer *s = &timers[ev[i].data.u32];
            uint64_t count = 0;
            if (s->used && read(s->fd, &count, sizeof(count)) == (ssize_t)sizeof(count) && count) {
                s->overrun = count > 1 ? (int)(count - 1) : 0;
                notify_spawn(s->fn, s->val, s->has_attr ? &s->attr : NULL);
            }
            pthread_mutex_unlock(&timers_mu);
        }
    }
    return NULL;
}

/* timer_make -- a timerfd-based SIGEV_THREAD timer in a free slot; 0 or errno */
static int timer_make(clockid_t clk, const struct sigevent *ev, timer_t *out)
{
    int fd = timerfd_create(clk, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == EINVAL)
            shim_say(2,
                     "timer_create(SIGEV_THREAD) on this clock is not supported with "
                     "LRVM_TRACK=uffd-sigbus or mprotect (glibc's timer thread blocks every signal "
                     "and cannot write the heap); use LRVM_TRACK=wp-async or another clock",
                     NULL);
        return e;
    }
    pthread_mutex_lock(&timers_mu);
    int rc = 0;
    if (timers_epoll < 0) {
        pthread_t th;
        timers_epoll = epoll_create1(EPOLL_CLOEXEC);
        if (timers_epoll < 0 || pthread_create(&th, NULL, timer_dispatch, NULL) != 0) {
            rc = EAGAIN;
            goto out;
        }
        pthread_detach(th);
    }
    size_t k = 0;
    while (k < TIMER_MAX && timers[k].used)
        k++;
    if (k == TIMER_MAX) {
        rc = EAGAIN;
        goto out;
    }
    struct stimer *s = &timers[k];
    *s = (struct stimer){
        .used = 1, .fd = fd, .fn = ev->sigev_notify_function, .val = ev->sigev_value};
    pthread_attr_t *ua = (pthread_attr_t *)ev->sigev_notify_attributes;
    size_t ss;
    if (ua && pthread_attr_getstacksize(ua, &ss) == 0 && pthread_attr_init(&s->attr) == 0) {
        pthread_attr_setstacksize(&s->attr, ss);
        s->has_attr = 1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)k};
    if (epoll_ctl(timers_epoll, EPOLL_CTL_ADD, fd, &e) != 0) {
        rc = errno;
        s->used = 0;
        goto out;
    }
    *out = (timer_t)(TIMER_TAG | k);
    fd = -1;
out:
    pthread_mutex_unlock(&timers_mu);
    if (fd >= 0)
        close(fd);
    return rc;
}

SLOT(timer_create);
SLOT(timer_settime);
SLOT(timer_gettime);
SLOT(timer_getoverrun);
SLOT(timer_delete);

/* timer_create -- libc's; a SIGEV_THREAD timer is ours with a fault backend (file comment) */
KW_EXPORT int timer_create(clockid_t clk, struct sigevent *restrict ev, timer_t *restrict out)
{
    if (shim_kw_hi == 0 || ev == NULL || ev->sigev_notify != SIGEV_THREAD) {
        if (!kw_hit(out, sizeof(*out)))
            return REAL(timer_create)(clk, ev, out);
        timer_t t; /* glibc stores the id itself, but bounce anyway: it may be a kernel write */
        int r = REAL(timer_create)(clk, ev, &t);
        if (r == 0)
            *out = t;
        return r;
    }
    timer_t t = NULL;
    int rc = timer_make(clk, ev, &t);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    *out = t;
    return 0;
}

#define C_TIMER_SETTIME(o) REAL(timer_settime)(t, flags, nv, o)
/* timer_settime -- libc's, or ours (timerfd); the old value is bounced */
KW_EXPORT int timer_settime(timer_t t, int flags, const struct itimerspec *restrict nv,
                            struct itimerspec *restrict old)
{
    struct stimer *s = timer_slot(t);
    if (s == NULL)
        return old ? BOUNCE(struct itimerspec, old, C_TIMER_SETTIME)
                   : REAL(timer_settime)(t, flags, nv, old);
    return timerfd_settime(s->fd, (flags & TIMER_ABSTIME) ? TFD_TIMER_ABSTIME : 0, nv, old);
}

#define C_TIMER_GETTIME(o) REAL(timer_gettime)(t, o)
/* timer_gettime -- libc's, or ours; the value is bounced */
KW_EXPORT int timer_gettime(timer_t t, struct itimerspec *v)
{
    struct stimer *s = timer_slot(t);
    if (s == NULL)
        return BOUNCE(struct itimerspec, v, C_TIMER_GETTIME);
    return timerfd_gettime(s->fd, v);
}

/* timer_getoverrun -- libc's, or ours (expirations beyond one at the last callback) */
KW_EXPORT int timer_getoverrun(timer_t t)
{
    struct stimer *s = timer_slot(t);
    return s ? s->overrun : REAL(timer_getoverrun)(t);
}

/* timer_delete -- libc's, or ours */
KW_EXPORT int timer_delete(timer_t t)
{
    pthread_mutex_lock(&timers_mu);
    struct stimer *s = timer_slot(t);
    if (s != NULL) {
        epoll_ctl(timers_epoll, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        if (s->has_attr)
            pthread_attr_destroy(&s->attr);
        s->used = 0;
    }
    pthread_mutex_unlock(&timers_mu);
    return s ? 0 : REAL(timer_delete)(t);
}

/* ---- POSIX aio: done at once ----------------------------------------------------------------- */

/* aio_now -- perform one request (opcode LIO_READ, LIO_WRITE, or an fsync op) in this thread
 * and store its result in the aiocb; 0 or -1 (the result is in the aiocb) */
static int aio_now(struct aiocb *cb, int op)
{
    ssize_t r;
    if (op == LIO_READ)
        r = pread(cb->aio_fildes, (void *)cb->aio_buf, cb->aio_nbytes, cb->aio_offset);
    else if (op == LIO_WRITE)
        r = pwrite(cb->aio_fildes, (const void *)cb->aio_buf, cb->aio_nbytes, cb->aio_offset);
    else if (op == O_DSYNC)
        r = fdatasync(cb->aio_fildes);
    else
        r = fsync(cb->aio_fildes);
    cb->__error_code = r < 0 ? errno : 0;
    cb->__return_value = r;
    return r < 0 ? -1 : 0;
}

SLOT(aio_read);
SLOT(aio_write);
SLOT(aio_fsync);
SLOT(lio_listio);
SLOT(aio_read64);
SLOT(aio_write64);
SLOT(aio_fsync64);
SLOT(lio_listio64);

/* aio_one -- aio_read/aio_write: now, then notify; a bad descriptor fails the call itself */
static int aio_one(struct aiocb *cb, int op)
{
    if (fcntl(cb->aio_fildes, F_GETFL) < 0) {
        errno = EBADF;
        return -1;
    }
    aio_now(cb, op);
    notify(&cb->aio_sigevent);
    return 0;
}

/* aio_read -- libc's, done at once with a fault backend (file comment) */
KW_EXPORT int aio_read(struct aiocb *cb)
{
    return shim_kw_hi ? aio_one(cb, LIO_READ) : REAL(aio_read)(cb);
}
/* aio_read64 -- libc's, done at once with a fault backend */
KW_EXPORT int aio_read64(struct aiocb64 *cb)
{
    return shim_kw_hi ? aio_one((struct aiocb *)cb, LIO_READ) : REAL(aio_read64)(cb);
}
/* aio_write -- libc's, done at once with a fault backend */
KW_EXPORT int aio_write(struct aiocb *cb)
{
    return shim_kw_hi ? aio_one(cb, LIO_WRITE) : REAL(aio_write)(cb);
}
/* aio_write64 -- libc's, done at once with a fault backend */
KW_EXPORT int aio_write64(struct aiocb64 *cb)
{
    return shim_kw_hi ? aio_one((struct aiocb *)cb, LIO_WRITE) : REAL(aio_write64)(cb);
}
/* aio_fsync -- libc's, done at once with a fault backend */
KW_EXPORT int aio_fsync(int op, struct aiocb *cb)
{
    if (!shim_kw_hi)
        return REAL(aio_fsync)(op, cb);
    if (op != O_SYNC && op != O_DSYNC) {
        errno = EINVAL;
        return -1;
    }
    return aio_one(cb, op);
}
/* aio_fsync64 -- libc's, done at once with a fault backend */
KW_EXPORT int aio_fsync64(int op, struct aiocb64 *cb)
{
    return shim_kw_hi ? aio_fsync(op, (struct aiocb *)cb) : REAL(aio_fsync64)(op, cb);
}

/* lio_now -- lio_listio's requests, at once; then each request's and the list's notice */
static int lio_now(int mode, struct aiocb *const list[], int n, struct sigevent *ev)
{
    if ((mode != LIO_WAIT && mode != LIO_NOWAIT) || n < 0) {
        errno = EINVAL;
        return -1;
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        struct aiocb *cb = list[i];
        if (cb == NULL || cb->aio_lio_opcode == LIO_NOP)
            continue;
        failed |= aio_now(cb, cb->aio_lio_opcode) != 0;
        if (mode == LIO_NOWAIT)
            notify(&cb->aio_sigevent);
    }
    if (mode == LIO_NOWAIT && ev != NULL)
        notify(ev);
    if (failed && mode == LIO_WAIT) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* lio_listio -- libc's, done at once with a fault backend */
KW_EXPORT int lio_listio(int mode, struct aiocb *const list[restrict], int n,
                         struct sigevent *restrict ev)
{
    return shim_kw_hi ? lio_now(mode, list, n, ev) : REAL(lio_listio)(mode, list, n, ev);
}
/* lio_listio64 -- libc's, done at once with a fault backend */
KW_EXPORT int lio_listio64(int mode, struct aiocb64 *const list[restrict], int n,
                           struct sigevent *restrict ev)
{
    return shim_kw_hi ? lio_now(mode, (struct aiocb *const *)list, n, ev)
                      : REAL(lio_listio64)(mode, list, n, ev);
}

/* ---- getaddrinfo_a: done at once; mq_notify with a thread: refused ------------------------ */

SLOT(getaddrinfo_a);
SLOT(mq_notify);

/* getaddrinfo_a -- libc's (its helper threads block every signal); with a fault backend each
 * request is resolved at once with getaddrinfo, then notified like lio_listio's list.
 * gai_error, gai_suspend and gai_cancel read the requests' result field and work unchanged. */
KW_EXPORT int getaddrinfo_a(int mode, struct gaicb *list[restrict], int n,
                            struct sigevent *restrict ev)
{
    if (!shim_kw_hi)
        return REAL(getaddrinfo_a)(mode, list, n, ev);
    if ((mode != GAI_WAIT && mode != GAI_NOWAIT) || n < 0)
        return EAI_SYSTEM;
    for (int i = 0; i < n; i++)
        if (list[i] != NULL)
            list[i]->__return = getaddrinfo(list[i]->ar_name, list[i]->ar_service,
                                            list[i]->ar_request, &list[i]->ar_result);
    if (mode == GAI_NOWAIT && ev != NULL)
        notify(ev);
    return 0;
}

/* mq_notify -- libc's. A SIGEV_THREAD notification is served by a glibc helper thread that
 * blocks every signal and would die at its first heap write with a fault backend: refused
 * there, with a message naming the call (SIGEV_SIGNAL and SIGEV_NONE work). */
KW_EXPORT int mq_notify(mqd_t q, const struct sigevent *ev)
{
    if (shim_kw_hi && ev != NULL && ev->sigev_notify == SIGEV_THREAD) {
        shim_say(2,
                 "mq_notify(SIGEV_THREAD) is not supported with LRVM_TRACK=uffd-sigbus or "
                 "mprotect (glibc's notification thread blocks every signal and cannot write the "
                 "heap): it fails with ENOSYS. Use LRVM_TRACK=wp-async, or SIGEV_SIGNAL",
                 NULL);
        errno = ENOSYS;
        return -1;
    }
    return REAL(mq_notify)(q, ev);
}

/* shim_helpers_setup -- resolve the real functions before main (see shim_kwrite_setup) */
void shim_helpers_setup(void)
{
#define T(fn) kw_try(&kw_slot_##fn, #fn)
    T(timer_create);
    T(timer_settime);
    T(timer_gettime);
    T(timer_getoverrun);
    T(timer_delete);
    T(aio_read);
    T(aio_write);
    T(aio_fsync);
    T(lio_listio);
    T(aio_read64);
    T(aio_write64);
    T(aio_fsync64);
    T(lio_listio64);
    T(getaddrinfo_a);
    T(mq_notify);
#undef T
}
