/* SPDX-License-Identifier: MIT */
/*
 * util.c -- growable buffers, full reads/writes through the sysio seam, error messages
 * and the sticky-error rule.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "rvm_int.h"
#include "sysio.h"

static char err_buf[2048];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

char *rvm_errmsg = err_buf;
int rvm_ioerrno;
rvm_bool_t rvm_no_yield;
rvm_bool_t rvm_map_private;
rvm_length_t rvm_optimizations;

/*
 * thread_spawn -- start one of lrvm's own threads with every asynchronous signal blocked.
 * Why: a process-directed signal (kill(getpid(), ...), a timer, a user-level thread
 * package's preemption tick) goes to any thread that does not block it. Delivered to our
 * thread it would run application code there -- on a thread the application does not know,
 * possibly while it holds a log lock (Coda's LWP threads package switched stacks in such a
 * handler: restarts then hung in the log or crashed). The thread inherits the mask set
 * here; the caller's own mask is restored before we return. Synchronous signals (faults)
 * stay deliverable: blocking them would only turn a fault into a silent kill.
 */
int thread_spawn(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
    sigset_t all, old;
    sigfillset(&all);
    static const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof(sync_sigs) / sizeof(sync_sigs[0]); i++)
        sigdelset(&all, sync_sigs[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e == 0 && name != NULL)
        pthread_setname_np(*t, name); /* shows in ps -L, gdb and /proc/.../comm */
    return e;
}

/* buf_reserve -- make room for `more` bytes after len (amortised doubling) */
int buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* buf_free -- release a buffer */
void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* err_vset -- format the message for rvm_errmsg */
static void err_vset(const char *fmt, va_list ap)
{
    pthread_mutex_lock(&err_mu);
    vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
    pthread_mutex_unlock(&err_mu);
}

/* err_lock_free -- is the message lock free now? (txn_stream_ready: a thread parked while
 * formatting a message would block our own err_set) */
int err_lock_free(void)
{
    if (pthread_mutex_trylock(&err_mu) != 0)
        return 0;
    pthread_mutex_unlock(&err_mu);
    return 1;
}

/* err_set -- set rvm_errmsg and return code (a user error: not sticky) */
rvm_return_t err_set(rvm_return_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(fmt, ap);
    va_end(ap);
    return code;
}

/*
 * err_io -- a write or sync of the log or a segment failed: set rvm_errmsg and
 * rvm_ioerrno and make the failure sticky. Why sticky: after a failed fdatasync the
 * kernel may have dropped the dirty pages, and after a short write the file holds a
 * torn record; carrying on could acknowledge commits that are not on disk. Stopping
 * keeps the invariant "acknowledged => recoverable"; recovery in the next process
 * completes what was durable.
 */
rvm_return_t err_io(int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(fmt, ap);
    va_end(ap);
    rvm_ioerrno = e;
    __atomic_store_n(&engine.sticky, 1, __ATOMIC_RELEASE);
    return RVM_EIO;
}

/* full_pwrite -- write all n bytes at off; 0 or an errno (EIO for a write of 0 bytes) */
int full_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = sysio.pwrite(fd, c, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (w == 0)
            return EIO;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* full_pread -- read n bytes at off; 0, an errno, or -1 at end of file */
int full_pread(int fd, void *p, size_t n, uint64_t off)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = sysio.pread(fd, c, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        if (r == 0)
            return -1;
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* now_usec -- monotonic clock in microseconds */
uint64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* mmap_buf_grow -- make *p (mmap'ed, *cap bytes; *cap == 0: none yet) hold at least need
 * bytes, starting at `first` bytes and doubling. mmap/mremap, not realloc: the record of a
 * tracked commit (track_record.c) and the streamed log record (log_stream.c) grow buffers
 * while the other threads are parked, and a parked thread may hold a libc lock malloc needs;
 * system calls take none.
 * 0 or -1 (the old buffer stays valid). */
int mmap_buf_grow(void **p, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    void *q = *cap ? mremap(*p, *cap, c, MREMAP_MAYMOVE)
                   : mmap(NULL, c, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}
