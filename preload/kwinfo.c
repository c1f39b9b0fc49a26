/* SPDX-License-Identifier: MIT */
/*
 * kwinfo.c -- more calls through which the kernel writes into the program's memory: process,
 * time, signal, scheduling and descriptor queries, message queues, offsets updated in place,
 * and raw syscall(2). With LRVM_TRACK=uffd-sigbus or mprotect such a write into the heap
 * fails with EFAULT (kwrite.c's file comment says why); each wrapper here uses kwrite.c's
 * remedies (kwrite.h):
 *   bounce   small outputs, and outputs whose loss would lose something (a signal taken by
 *            sigtimedwait, a message taken by msgrcv/mq_receive): the kernel writes a stack
 *            (or internal-heap) copy, which is copied into the heap by a user-space store;
 *            outputs that are also inputs (sendfile's offset, adjtimex's struct) are copied
 *            in first.
 *   prepare  outputs of a size known only at run time where a retry loses nothing:
 *            sched_getaffinity, getgroups, getxattr/listxattr, mincore, ioctl, semctl's
 *            GETALL, process_vm_readv, vmsplice.
 * syscall(2) cannot know every system call's layout: read, pread64, getrandom and getdents64
 * are prepared; for any other number a failure with EFAULT while an argument points into
 * the heap is reported once on stderr, naming the system call number (a program would
 * otherwise see an unexplained EFAULT).
 * The test is two compares against the heap's range (0 unless a fault backend is in use).
 */
#undef _FILE_OFFSET_BITS /* define libc's symbols by their own names (see kwrite.c) */
#include "kwrite.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <mqueue.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <sys/timex.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "preload_api.h"

/* ---- bounce: fixed-size outputs ------------------------------------------------------------ */

SLOT(sysinfo);
SLOT(times);
SLOT(getresuid);
SLOT(getresgid);
SLOT(getcpu);
SLOT(prctl);
SLOT(clock_gettime);
SLOT(clock_getres);
SLOT(gettimeofday);
SLOT(time);
SLOT(nanosleep);
SLOT(clock_nanosleep);
SLOT(getitimer);
SLOT(setitimer);
SLOT(timerfd_gettime);
SLOT(timerfd_settime);
SLOT(sigpending);
SLOT(sigtimedwait);
SLOT(sigwaitinfo);
SLOT(sched_getparam);
SLOT(sched_rr_get_interval);
SLOT(prlimit);
SLOT(eventfd_read);
SLOT(getentropy);
SLOT(pthread_getname_np);
SLOT(ttyname_r);
SLOT(adjtimex);
SLOT(clock_adjtime);
SLOT(ntp_adjtime);

#define C_SYSINFO(o) REAL(sysinfo)(o)
/* sysinfo -- libc's sysinfo; a heap output is bounced */
KW_EXPORT int sysinfo(struct sysinfo *i)
{
    return BOUNCE(struct sysinfo, i, C_SYSINFO);
}

/* times -- libc's times; a heap output is bounced (the result is a clock, not a status) */
KW_EXPORT clock_t times(struct tms *t)
{
    if (!kw_hit(t, sizeof(*t)))
        return REAL(times)(t);
    struct tms tmp;
    clock_t r = REAL(times)(&tmp);
    int e = errno;
    *t = tmp;
    errno = e;
    return r;
}

/* bounce3 -- store three ids (getresuid/getresgid's outputs) after a stack call */
#define BOUNCE3(type, fn, a, b, c)        \
    ({                                    \
        type x_, y_, z_;                  \
        int r_ = REAL(fn)(&x_, &y_, &z_); \
        if (r_ == 0) {                    \
            *(a) = x_;                    \
            *(b) = y_;                    \
            *(c) = z_;                    \
        }                                 \
        r_;                               \
    })
/* getresuid -- libc's getresuid; the outputs are bounced (they may be in the heap) */
KW_EXPORT int getresuid(uid_t *r, uid_t *e, uid_t *s)
{
    return BOUNCE3(uid_t, getresuid, r, e, s);
}
/* getresgid -- libc's getresgid; the outputs are bounced */
KW_EXPORT int getresgid(gid_t *r, gid_t *e, gid_t *s)
{
    return BOUNCE3(gid_t, getresgid, r, e, s);
}

/* getcpu -- libc's getcpu; the outputs are bounced */
KW_EXPORT int getcpu(unsigned *cpu, unsigned *node)
{
    unsigned c, n;
    int r = REAL(getcpu)(cpu ? &c : NULL, node ? &n : NULL);
    if (r == 0) {
        if (cpu)
            *cpu = c;
        if (node)
            *node = n;
    }
    return r;
}

/* prctl_out_size -- bytes prctl(option, arg2) writes at arg2, 0 if it writes nothing there */
static size_t prctl_out_size(int option)
{
    switch (option) {
    case PR_GET_NAME: return 16;
    case PR_GET_TID_ADDRESS: return sizeof(void *);
    case PR_GET_PDEATHSIG:
    case PR_GET_CHILD_SUBREAPER:
    case PR_GET_ENDIAN:
    case PR_GET_FPEMU:
    case PR_GET_FPEXC:
    case PR_GET_TSC:
    case PR_GET_UNALIGN: return sizeof(int);
    default: return 0;
    }
}

/* prctl -- libc's prctl; the options that write through arg2 are bounced */
KW_EXPORT int prctl(int option, ...)
{
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    size_t n = prctl_out_size(option);
    if (n == 0 || !kw_hit(a2, n))
        return REAL(prctl)(option, a2, a3, a4, a5);
    unsigned char tmp[16] = {0};
    int r = REAL(prctl)(option, (unsigned long)tmp, a3, a4, a5);
    if (r >= 0) {
        int e = errno;
        memcpy((void *)a2, tmp, n);
        errno = e;
    }
    return r;
}

#define C_CLOCK_GETTIME(o) REAL(clock_gettime)(clk, o)
/* clock_gettime -- libc's; a heap output is bounced (CPU-time clocks are system calls) */
KW_EXPORT int clock_gettime(clockid_t clk, struct timespec *ts)
{
    return BOUNCE(struct timespec, ts, C_CLOCK_GETTIME);
}
#define C_CLOCK_GETRES(o) REAL(clock_getres)(clk, o)
/* clock_getres -- libc's clock_getres; a heap output is bounced */
KW_EXPORT int clock_getres(clockid_t clk, struct timespec *ts)
{
    return ts ? BOUNCE(struct timespec, ts, C_CLOCK_GETRES) : REAL(clock_getres)(clk, ts);
}
/* gettimeofday -- libc's; heap outputs are bounced (a system call without the vDSO). Through
 * a plain pointer type: glibc declares tv nonnull, but the kernel accepts NULL. */
KW_EXPORT int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    int (*real)(void *, void *) =
        (int (*)(void *, void *))kw_real(&kw_slot_gettimeofday, "gettimeofday");
    uintptr_t tva = (uintptr_t)tv;
    if (!kw_hit(tva, sizeof(*tv)) && !kw_hit(tz, sizeof(struct timezone)))
        return real(tv, tz);
    struct timeval t;
    struct timezone z;
    int r = real(tva ? &t : NULL, tz ? &z : NULL);
    if (r == 0) {
        if (tva)
            *tv = t;
        if (tz)
            memcpy(tz, &z, sizeof(z));
    }
    return r;
}
/* time -- libc's time; a heap output is bounced (a system call without the vDSO) */
KW_EXPORT time_t time(time_t *t)
{
    if (!kw_hit(t, sizeof(*t)))
        return REAL(time)(t);
    time_t v = REAL(time)(NULL);
    if (v != (time_t)-1)
        *t = v;
    return v;
}

/* nanosleep -- libc's nanosleep; the remaining time is bounced */
KW_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!kw_hit(rem, sizeof(*rem)))
        return REAL(nanosleep)(req, rem);
    struct timespec t;
    int r = REAL(nanosleep)(req, &t);
    if (r != 0 && errno == EINTR)
        *rem = t;
    return r;
}
/* clock_nanosleep -- libc's; the remaining time is bounced (it returns an errno) */
KW_EXPORT int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                              struct timespec *rem)
{
    if (!kw_hit(rem, sizeof(*rem)))
        return REAL(clock_nanosleep)(clk, flags, req, rem);
    struct timespec t;
    int r = REAL(clock_nanosleep)(clk, flags, req, &t);
    if (r == EINTR)
        *rem = t;
    return r;
}

#define C_GETITIMER(o) REAL(getitimer)(which, o)
/* getitimer -- libc's getitimer; a heap output is bounced */
KW_EXPORT int getitimer(__itimer_which_t which, struct itimerval *v)
{
    return BOUNCE(struct itimerval, v, C_GETITIMER);
}
#define C_SETITIMER(o) REAL(setitimer)(which, nv, o)
/* setitimer -- libc's setitimer; the old value is bounced */
KW_EXPORT int setitimer(__itimer_which_t which, const struct itimerval *restrict nv,
                        struct itimerval *restrict old)
{
    return old ? BOUNCE(struct itimerval, old, C_SETITIMER) : REAL(setitimer)(which, nv, old);
}
#define C_TFD_GETTIME(o) REAL(timerfd_gettime)(fd, o)
/* timerfd_gettime -- libc's timerfd_gettime; a heap output is bounced */
KW_EXPORT int timerfd_gettime(int fd, struct itimerspec *v)
{
    return BOUNCE(struct itimerspec, v, C_TFD_GETTIME);
}
#define C_TFD_SETTIME(o) REAL(timerfd_settime)(fd, flags, nv, o)
/* timerfd_settime -- libc's timerfd_settime; the old value is bounced */
KW_EXPORT int timerfd_settime(int fd, int flags, const struct itimerspec *nv,
                              struct itimerspec *old)
{
    return old ? BOUNCE(struct itimerspec, old, C_TFD_SETTIME)
               : REAL(timerfd_settime)(fd, flags, nv, old);
}

#define C_SIGPENDING(o) REAL(sigpending)(o)
/* sigpending -- libc's sigpending; a heap output is bounced */
KW_EXPORT int sigpending(sigset_t *s)
{
    return BOUNCE(sigset_t, s, C_SIGPENDING);
}
#define C_SIGTIMEDWAIT(o) REAL(sigtimedwait)(set, o, ts)
/* sigtimedwait -- libc's; the siginfo is bounced (the signal is taken: it must not be lost) */
KW_EXPORT int sigtimedwait(const sigset_t *restrict set, siginfo_t *restrict info,
                           const struct timespec *restrict ts)
{
    return info ? BOUNCE(siginfo_t, info, C_SIGTIMEDWAIT) : REAL(sigtimedwait)(set, info, ts);
}
#define C_SIGWAITINFO(o) REAL(sigwaitinfo)(set, o)
/* sigwaitinfo -- libc's sigwaitinfo; the siginfo is bounced */
KW_EXPORT int sigwaitinfo(const sigset_t *restrict set, siginfo_t *restrict info)
{
    return info ? BOUNCE(siginfo_t, info, C_SIGWAITINFO) : REAL(sigwaitinfo)(set, info);
}

#define C_SCHED_GETPARAM(o) REAL(sched_getparam)(pid, o)
/* sched_getparam -- libc's sched_getparam; a heap output is bounced */
KW_EXPORT int sched_getparam(pid_t pid, struct sched_param *p)
{
    return BOUNCE(struct sched_param, p, C_SCHED_GETPARAM);
}
#define C_SCHED_RR(o) REAL(sched_rr_get_interval)(pid, o)
/* sched_rr_get_interval -- libc's; a heap output is bounced */
KW_EXPORT int sched_rr_get_interval(pid_t pid, struct timespec *t)
{
    return BOUNCE(struct timespec, t, C_SCHED_RR);
}
#define C_PRLIMIT(o) REAL(prlimit)(pid, res, nv, o)
/* prlimit -- libc's prlimit; the old limit is bounced */
KW_EXPORT int prlimit(pid_t pid, __rlimit_resource_t res, const struct rlimit *nv,
                      struct rlimit *old)
{
    return old ? BOUNCE(struct rlimit, old, C_PRLIMIT) : REAL(prlimit)(pid, res, nv, old);
}
SLOT(prlimit64);
SLOT(getrlimit64);
SLOT(statfs64);
SLOT(fstatfs64);
#define C_PRLIMIT64(o) REAL(prlimit64)(pid, res, nv, o)
/* prlimit64 -- libc's prlimit64 (what prlimit is with 64-bit file offsets); bounced */
KW_EXPORT int prlimit64(pid_t pid, __rlimit_resource_t res, const struct rlimit64 *nv,
                        struct rlimit64 *old)
{
    return old ? BOUNCE(struct rlimit64, old, C_PRLIMIT64) : REAL(prlimit64)(pid, res, nv, old);
}
#define C_GETRLIMIT64(o) REAL(getrlimit64)(res, o)
/* getrlimit64 -- libc's getrlimit64 (getrlimit with 64-bit file offsets); bounced */
KW_EXPORT int getrlimit64(__rlimit_resource_t res, struct rlimit64 *rl)
{
    return BOUNCE(struct rlimit64, rl, C_GETRLIMIT64);
}
#define C_STATFS64(o) REAL(statfs64)(path, o)
/* statfs64 -- libc's statfs64 (statfs with 64-bit file offsets); bounced */
KW_EXPORT int statfs64(const char *path, struct statfs64 *st)
{
    return BOUNCE(struct statfs64, st, C_STATFS64);
}
#define C_FSTATFS64(o) REAL(fstatfs64)(fd, o)
/* fstatfs64 -- libc's fstatfs64; bounced */
KW_EXPORT int fstatfs64(int fd, struct statfs64 *st)
{
    return BOUNCE(struct statfs64, st, C_FSTATFS64);
}

#define C_EVENTFD_READ(o) REAL(eventfd_read)(fd, o)
/* eventfd_read -- libc's; the value is bounced (it is taken from the counter) */
KW_EXPORT int eventfd_read(int fd, eventfd_t *v)
{
    return BOUNCE(eventfd_t, v, C_EVENTFD_READ);
}

/* getentropy -- libc's getentropy (at most 256 bytes); bounced */
KW_EXPORT int getentropy(void *buf, size_t n)
{
    if (!kw_hit(buf, n) || n > 256)
        return REAL(getentropy)(buf, n);
    unsigned char tmp[256];
    int r = REAL(getentropy)(tmp, n);
    if (r == 0)
        memcpy(buf, tmp, n);
    return r;
}

/* bounce_str -- call fn into a stack buffer of n bytes (n <= 4096) and copy it into buf */
#define BOUNCE_BUF(buf, n, call_with)            \
    ({                                           \
        int r_;                                  \
        if (kw_hit((buf), (n)) && (n) <= 4096) { \
            char tmp_[4096];                     \
            r_ = call_with(tmp_);                \
            if (r_ == 0)                         \
                memcpy((buf), tmp_, (n));        \
        } else {                                 \
            r_ = call_with(buf);                 \
        }                                        \
        r_;                                      \
    })
#define C_GETNAME(o) REAL(pthread_getname_np)(th, o, n)
/* pthread_getname_np -- libc's; the name is bounced (prctl or a read of /proc inside libc) */
KW_EXPORT int pthread_getname_np(pthread_t th, char *buf, size_t n)
{
    return BOUNCE_BUF(buf, n, C_GETNAME);
}
#define C_TTYNAME_R(o) REAL(ttyname_r)(fd, o, n)
/* ttyname_r -- libc's ttyname_r; the name is bounced (a readlink inside libc) */
KW_EXPORT int ttyname_r(int fd, char *buf, size_t n)
{
    return BOUNCE_BUF(buf, n, C_TTYNAME_R);
}
/* ttyname -- libc's ttyname keeps its result in a buffer it mallocs (in the heap, where its
 * own readlink then fails): answer from a buffer of ours instead */
KW_EXPORT char *ttyname(int fd)
{
    static char name[4096];
    int e = REAL(ttyname_r)(fd, name, sizeof(name));
    if (e != 0) {
        errno = e;
        return NULL;
    }
    return name;
}

/* INOUT -- call with *p (input and output) copied to the stack and back when p is in the heap */
#define INOUT(type, p, call_with)        \
    ({                                   \
        __typeof__(call_with(p)) r_;     \
        if (kw_hit((p), sizeof(type))) { \
            type tmp_ = *(p);            \
            r_ = call_with(&tmp_);       \
            int e_ = errno;              \
            *(p) = tmp_;                 \
            errno = e_;                  \
        } else {                         \
            r_ = call_with(p);           \
        }                                \
        r_;                              \
    })
#define C_ADJTIMEX(o) REAL(adjtimex)(o)
/* adjtimex -- libc's adjtimex; the struct (in and out) is bounced */
KW_EXPORT int adjtimex(struct timex *t)
{
    return INOUT(struct timex, t, C_ADJTIMEX);
}
#define C_NTP_ADJTIME(o) REAL(ntp_adjtime)(o)
/* ntp_adjtime -- libc's ntp_adjtime; the struct (in and out) is bounced */
KW_EXPORT int ntp_adjtime(struct timex *t)
{
    return INOUT(struct timex, t, C_NTP_ADJTIME);
}
#define C_CLOCK_ADJTIME(o) REAL(clock_adjtime)(clk, o)
/* clock_adjtime -- libc's clock_adjtime; the struct (in and out) is bounced */
KW_EXPORT int clock_adjtime(clockid_t clk, struct timex *t)
{
    return INOUT(struct timex, t, C_CLOCK_ADJTIME);
}

/* ---- offsets updated in place: sendfile, copy_file_range, splice ---------------------------- */

SLOT(sendfile);
SLOT(sendfile64);
SLOT(copy_file_range);
SLOT(splice);

#define C_SENDFILE(o) REAL(sendfile)(out, in, o, n)
/* sendfile -- libc's sendfile; the offset (in and out) is bounced */
KW_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
    return off ? INOUT(off_t, off, C_SENDFILE) : REAL(sendfile)(out, in, off, n);
}
#define C_SENDFILE64(o) REAL(sendfile64)(out, in, o, n)
/* sendfile64 -- libc's sendfile64; the offset (in and out) is bounced */
KW_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
    return off ? INOUT(off64_t, off, C_SENDFILE64) : REAL(sendfile64)(out, in, off, n);
}

/* two_offsets -- copy_file_range/splice with both offsets bounced when in the heap */
#define TWO_OFFSETS(fn, a, oa, b, ob, n, fl)                                      \
    ({                                                                            \
        loff_t ta_, tb_;                                                          \
        loff_t *pa_ = (oa), *pb_ = (ob);                                          \
        int ha_ = kw_hit(pa_, sizeof(loff_t)), hb_ = kw_hit(pb_, sizeof(loff_t)); \
        if (ha_)                                                                  \
            ta_ = *pa_, pa_ = &ta_;                                               \
        if (hb_)                                                                  \
            tb_ = *pb_, pb_ = &tb_;                                               \
        ssize_t r_ = REAL(fn)(a, pa_, b, pb_, n, fl);                             \
        int e_ = errno;                                                           \
        if (ha_)                                                                  \
            *(oa) = ta_;                                                          \
        if (hb_)                                                                  \
            *(ob) = tb_;                                                          \
        errno = e_;                                                               \
        r_;                                                                       \
    })
/* copy_file_range -- libc's; the offsets (in and out) are bounced */
KW_EXPORT ssize_t copy_file_range(int in, loff_t *oin, int out, loff_t *oout, size_t n,
                                  unsigned flags)
{
    return TWO_OFFSETS(copy_file_range, in, oin, out, oout, n, flags);
}
/* splice -- libc's splice; the offsets (in and out) are bounced */
KW_EXPORT ssize_t splice(int in, loff_t *oin, int out, loff_t *oout, size_t n, unsigned flags)
{
    return TWO_OFFSETS(splice, in, oin, out, oout, n, flags);
}

/* ---- messages: the kernel takes the message before it copies it out ------------------------- */

SLOT(msgrcv);
SLOT(mq_receive);
SLOT(mq_timedreceive);

/* kw_scratch -- n bytes of the internal (volatile) heap for a bounce too large for the stack */
static void *kw_scratch(size_t n)
{
    return shim_internal_heap ? heap_malloc(shim_internal_heap, n ? n : 1) : NULL;
}

/* msgrcv -- libc's msgrcv; the message is received into a scratch copy (a failed copy-out
 * after the kernel took the message would lose it) */
KW_EXPORT ssize_t msgrcv(int id, void *msgp, size_t sz, long type, int flags)
{
    size_t n = sizeof(long) + sz;
    if (!kw_hit(msgp, n))
        return REAL(msgrcv)(id, msgp, sz, type, flags);
    void *tmp = kw_scratch(n);
    if (tmp == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t r = REAL(msgrcv)(id, tmp, sz, type, flags);
    int e = errno;
    if (r >= 0)
        memcpy(msgp, tmp, sizeof(long) + (size_t)r);
    heap_free(shim_internal_heap, tmp);
    errno = e;
    return r;
}

/* mq_bounce -- mq_receive / mq_timedreceive through a scratch buffer and a stack priority */
static ssize_t mq_bounce(mqd_t q, char *buf, size_t n, unsigned *prio, const struct timespec *ts,
                         int timed)
{
    if (!kw_hit(buf, n) && !kw_hit(prio, sizeof(*prio)))
        return timed ? REAL(mq_timedreceive)(q, buf, n, prio, ts)
                     : REAL(mq_receive)(q, buf, n, prio);
    char *tmp = kw_scratch(n);
    unsigned p;
    if (tmp == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t r = timed ? REAL(mq_timedreceive)(q, tmp, n, &p, ts) : REAL(mq_receive)(q, tmp, n, &p);
    int e = errno;
    if (r >= 0) {
        memcpy(buf, tmp, (size_t)r);
        if (prio)
            *prio = p;
    }
    heap_free(shim_internal_heap, tmp);
    errno = e;
    return r;
}
/* mq_receive -- libc's mq_receive; the message is bounced */
KW_EXPORT ssize_t mq_receive(mqd_t q, char *buf, size_t n, unsigned *prio)
{
    return mq_bounce(q, buf, n, prio, NULL, 0);
}
/* mq_timedreceive -- libc's mq_timedreceive; the message is bounced */
KW_EXPORT ssize_t mq_timedreceive(mqd_t q, char *restrict buf, size_t n, unsigned *restrict prio,
                                  const struct timespec *restrict ts)
{
    return mq_bounce(q, buf, n, prio, ts, 1);
}

/* ---- System V IPC status and message-queue attributes ---------------------------------------- */

SLOT(msgctl);
SLOT(shmctl);
SLOT(semctl);
SLOT(mq_getattr);
SLOT(mq_setattr);

/* ipc_out_size -- bytes msgctl/shmctl write through buf for cmd (0: they only read it);
 * stat/stat_any/info: that family's MSG_/SHM_ command numbers (they overlap across families) */
static size_t ipc_out_size(int cmd, size_t ds, int stat, int stat_any, int info)
{
    if (cmd == IPC_STAT || cmd == stat || cmd == stat_any)
        return ds;
    if (cmd == IPC_INFO || cmd == info)
        return sizeof(struct shminfo) > sizeof(struct msginfo) ? sizeof(struct shminfo)
                                                               : sizeof(struct msginfo);
    return 0;
}

/* msgctl -- libc's msgctl; the status queries' output is bounced */
KW_EXPORT int msgctl(int id, int cmd, struct msqid_ds *buf)
{
    size_t n = ipc_out_size(cmd, sizeof(struct msqid_ds), MSG_STAT, MSG_STAT_ANY, MSG_INFO);
    if (n == 0 || !kw_hit(buf, n))
        return REAL(msgctl)(id, cmd, buf);
    union {
        struct msqid_ds d;
        struct msginfo i;
    } tmp;
    int r = REAL(msgctl)(id, cmd, &tmp.d);
    if (r >= 0)
        memcpy(buf, &tmp, cmd == IPC_INFO || cmd == MSG_INFO ? sizeof(tmp.i) : sizeof(tmp.d));
    return r;
}

/* shmctl -- libc's shmctl; the status queries' output is bounced */
KW_EXPORT int shmctl(int id, int cmd, struct shmid_ds *buf)
{
    size_t n = ipc_out_size(cmd, sizeof(struct shmid_ds), SHM_STAT, SHM_STAT_ANY, SHM_INFO);
    if (n == 0 || !kw_hit(buf, n))
        return REAL(shmctl)(id, cmd, buf);
    union {
        struct shmid_ds d;
        struct shminfo i;
        struct shm_info s;
    } tmp;
    int r = REAL(shmctl)(id, cmd, &tmp.d);
    if (r >= 0)
        memcpy(buf, &tmp,
               cmd == IPC_INFO   ? sizeof(tmp.i)
               : cmd == SHM_INFO ? sizeof(tmp.s)
                                 : sizeof(tmp.d));
    return r;
}

/* semctl -- libc's semctl (variadic: union semun). IPC_STAT/SEM_STAT(_ANY) and the info
 * queries are bounced; GETALL's array is prepared for the set's size (asked first). */
KW_EXPORT int semctl(int id, int num, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *); /* union semun is passed as one word */
    va_end(ap);
    if (shim_kw_hi == 0)
        return REAL(semctl)(id, num, cmd, arg);
    if (cmd == GETALL) {
        struct semid_ds ds;
        if (REAL(semctl)(id, 0, IPC_STAT, &ds) == 0)
            return KW_RETRY(kw_prep(arg, ds.sem_nsems * sizeof(unsigned short)),
                            REAL(semctl)(id, num, cmd, arg));
        return REAL(semctl)(id, num, cmd, arg);
    }
    size_t n = cmd == IPC_STAT || cmd == SEM_STAT || cmd == SEM_STAT_ANY ? sizeof(struct semid_ds)
               : cmd == IPC_INFO || cmd == SEM_INFO                      ? sizeof(struct seminfo)
                                                                         : 0;
    if (n == 0 || !kw_hit(arg, n))
        return REAL(semctl)(id, num, cmd, arg);
    union {
        struct semid_ds d;
        struct seminfo i;
    } tmp;
    int r = REAL(semctl)(id, num, cmd, &tmp);
    if (r >= 0)
        memcpy(arg, &tmp, n);
    return r;
}

#define C_MQ_GETATTR(o) REAL(mq_getattr)(q, o)
/* mq_getattr -- libc's mq_getattr; the attributes are bounced */
KW_EXPORT int mq_getattr(mqd_t q, struct mq_attr *a)
{
    return BOUNCE(struct mq_attr, a, C_MQ_GETATTR);
}
#define C_MQ_SETATTR(o) REAL(mq_setattr)(q, nv, o)
/* mq_setattr -- libc's mq_setattr; the old attributes are bounced */
KW_EXPORT int mq_setattr(mqd_t q, const struct mq_attr *restrict nv, struct mq_attr *restrict old)
{
    return old ? BOUNCE(struct mq_attr, old, C_MQ_SETATTR) : REAL(mq_setattr)(q, nv, old);
}

/* ---- prepare: outputs sized at run time ------------------------------------------------------ */

SLOT(sched_getaffinity);
SLOT(pthread_getaffinity_np);
SLOT(getgroups);
SLOT(getxattr);
SLOT(lgetxattr);
SLOT(fgetxattr);
SLOT(listxattr);
SLOT(llistxattr);
SLOT(flistxattr);
SLOT(mincore);
SLOT(ioctl);
SLOT(fcntl);
SLOT(fcntl64);

/* sched_getaffinity -- libc's; the mask is prepared */
KW_EXPORT int sched_getaffinity(pid_t pid, size_t n, cpu_set_t *set)
{
    return KW_RETRY(kw_prep(set, n), REAL(sched_getaffinity)(pid, n, set));
}
/* pthread_getaffinity_np -- libc's; the mask is prepared (it returns an errno) */
KW_EXPORT int pthread_getaffinity_np(pthread_t th, size_t n, cpu_set_t *set)
{
    int hit = kw_prep(set, n);
    int r = REAL(pthread_getaffinity_np)(th, n, set);
    if (r == EFAULT && hit) {
        kw_prep(set, n);
        r = REAL(pthread_getaffinity_np)(th, n, set);
    }
    return r;
}
/* getgroups -- libc's getgroups; the list is prepared */
KW_EXPORT int getgroups(int n, gid_t *list)
{
    return KW_RETRY(kw_prep(list, n > 0 ? (size_t)n * sizeof(gid_t) : 0), REAL(getgroups)(n, list));
}
/* getxattr -- libc's getxattr; the value is prepared */
KW_EXPORT ssize_t getxattr(const char *path, const char *name, void *v, size_t n)
{
    return KW_RETRY(kw_prep(v, n), REAL(getxattr)(path, name, v, n));
}
/* lgetxattr -- libc's lgetxattr; the value is prepared */
KW_EXPORT ssize_t lgetxattr(const char *path, const char *name, void *v, size_t n)
{
    return KW_RETRY(kw_prep(v, n), REAL(lgetxattr)(path, name, v, n));
}
/* fgetxattr -- libc's fgetxattr; the value is prepared */
KW_EXPORT ssize_t fgetxattr(int fd, const char *name, void *v, size_t n)
{
    return KW_RETRY(kw_prep(v, n), REAL(fgetxattr)(fd, name, v, n));
}
/* listxattr -- libc's listxattr; the list is prepared */
KW_EXPORT ssize_t listxattr(const char *path, char *list, size_t n)
{
    return KW_RETRY(kw_prep(list, n), REAL(listxattr)(path, list, n));
}
/* llistxattr -- libc's llistxattr; the list is prepared */
KW_EXPORT ssize_t llistxattr(const char *path, char *list, size_t n)
{
    return KW_RETRY(kw_prep(list, n), REAL(llistxattr)(path, list, n));
}
/* flistxattr -- libc's flistxattr; the list is prepared */
KW_EXPORT ssize_t flistxattr(int fd, char *list, size_t n)
{
    return KW_RETRY(kw_prep(list, n), REAL(flistxattr)(fd, list, n));
}
/* mincore -- libc's mincore; the vector (a byte per page) is prepared */
KW_EXPORT int mincore(void *addr, size_t len, unsigned char *vec)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (len + ((uintptr_t)addr & (ps - 1)) + ps - 1) / ps;
    return KW_RETRY(kw_prep(vec, n), REAL(mincore)(addr, len, vec));
}

SLOT(process_vm_readv);
SLOT(vmsplice);
SLOT(capget);

/* process_vm_readv -- libc's; the local buffers are prepared (a retry reads them again) */
KW_EXPORT ssize_t process_vm_readv(pid_t pid, const struct iovec *local, unsigned long nl,
                                   const struct iovec *remote, unsigned long nr,
                                   unsigned long flags)
{
    int hit = 0;
    for (unsigned long i = 0; local && i < nl; i++)
        hit |= kw_prep(local[i].iov_base, local[i].iov_len);
    ssize_t r = REAL(process_vm_readv)(pid, local, nl, remote, nr, flags);
    if (r < 0 && errno == EFAULT && hit) {
        for (unsigned long i = 0; i < nl; i++)
            kw_prep(local[i].iov_base, local[i].iov_len);
        r = REAL(process_vm_readv)(pid, local, nl, remote, nr, flags);
    }
    return r;
}

/* vmsplice -- libc's; the buffers are prepared (from a pipe into memory they are written) */
KW_EXPORT ssize_t vmsplice(int fd, const struct iovec *iov, size_t n, unsigned flags)
{
    for (size_t i = 0; iov && i < n; i++)
        kw_prep(iov[i].iov_base, iov[i].iov_len);
    return REAL(vmsplice)(fd, iov, n, flags);
}

/* capget -- libc's capget; the header (in and out) and the data (two structs at most) are
 * bounced. Declared here: glibc has no header for it. */
struct kw_cap_header {
    uint32_t version;
    int pid;
};
struct kw_cap_data {
    uint32_t effective, permitted, inheritable;
};
KW_EXPORT int capget(struct kw_cap_header *h, struct kw_cap_data *d);
KW_EXPORT int capget(struct kw_cap_header *h, struct kw_cap_data *d)
{
    if (!kw_hit(h, sizeof(*h)) && !kw_hit(d, 2 * sizeof(*d)))
        return REAL(capget)(h, d);
    struct kw_cap_header th = *h;
    struct kw_cap_data td[2];
    int r = REAL(capget)(&th, d ? td : NULL);
    int e = errno;
    *h = th;
    if (r == 0 && d)
        memcpy(d, td, th.version == 0x19980330 ? sizeof(td[0]) : sizeof(td));
    errno = e;
    return r;
}

/* shim_raw_syscall -- the system call nr with six arguments, as libc's syscall() makes it, without
 * libc: the library's own ioctl and syscall calls come through the two wrappers below (they
 * are exported, and the library's references bind to them), some from fault and safepoint
 * handlers, possibly before shim_kwrite_setup has resolved libc's functions -- dlsym must
 * not run there. Other architectures use libc's syscall(), resolved at start-up. */
long shim_raw_syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
#else
    return REAL(syscall)(nr, a1, a2, a3, a4, a5, a6);
#endif
}

/* ioctl -- libc's ioctl. Its argument's layout depends on the request: a heap argument is
 * prepared for the size the request encodes, or for 256 bytes (old requests such as
 * TIOCGWINSZ or FIONREAD encode none; their structs are smaller). */
KW_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    size_t n = _IOC_SIZE(req) ? _IOC_SIZE(req) : 256;
    return (int)KW_RETRY(kw_prep(arg, n),
                         shim_raw_syscall(SYS_ioctl, fd, (long)req, (long)arg, 0, 0, 0));
}

/* fcntl_common -- fcntl/fcntl64: the lock queries' struct flock and F_GETOWN_EX's output
 * are bounced; every other command passes its argument through */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    size_t n = 0;
    if (cmd == F_GETLK || cmd == F_OFD_GETLK)
        n = sizeof(struct flock);
    else if (cmd == F_GETOWN_EX)
        n = sizeof(struct f_owner_ex);
    if (n == 0 || !kw_hit(arg, n))
        return real(fd, cmd, arg);
    union {
        struct flock l;
        struct f_owner_ex o;
    } tmp;
    memcpy(&tmp, arg, n); /* F_GETLK reads the lock it asks about */
    int r = real(fd, cmd, &tmp);
    int e = errno;
    if (r >= 0)
        memcpy(arg, &tmp, n);
    errno = e;
    return r;
}
/* fcntl -- libc's fcntl; see fcntl_common */
KW_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(REAL(fcntl), fd, cmd, arg);
}
/* fcntl64 -- libc's fcntl64; see fcntl_common */
KW_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(REAL(fcntl64), fd, cmd, arg);
}

/* ---- syscall(2) ------------------------------------------------------------------------------ */

SLOT(syscall);

/* syscall -- libc's syscall. rt_sigprocmask is filtered as sigprocmask is (faultmask.c); the
 * four common reads into a buffer are prepared; any other
 * system call that fails with EFAULT while an argument points into the heap is reported once
 * (the kernel cannot write write-protected heap pages with this backend), naming it. */
KW_EXPORT long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_rt_sigaction && (a[0] == SIGSEGV || a[0] == SIGBUS) && a[3] == 8)
        /* a fault handler installed this way is chained behind vmprim's dispatcher (sigentry.c) */
        return shim_sigchain_kernel((int)a[0], (const void *)a[1], (void *)a[2],
                                    __builtin_return_address(0));
    if (shim_kw_hi == 0)
        return shim_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (nr == SYS_rt_sigprocmask && a[3] == _NSIG / 8) {
        /* a mask set this way must not block the fault signals either (faultmask.c) */
        int err = shim_fault_sigmask((int)a[0], (const sigset_t *)a[1], (sigset_t *)a[2]);
        if (err) {
            errno = err;
            return -1;
        }
        return 0;
    }
    int hit = 0;
    if (nr == SYS_read || nr == SYS_pread64 || nr == SYS_getdents64)
        hit = kw_prep(a[1], (size_t)a[2]);
    else if (nr == SYS_getrandom)
        hit = kw_prep(a[0], (size_t)a[1]);
    long r = shim_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (r == -1 && errno == EFAULT && hit) {
        kw_prep(nr == SYS_getrandom ? a[0] : a[1], (size_t)(nr == SYS_getrandom ? a[1] : a[2]));
        r = shim_raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    if (r == -1 && errno == EFAULT && !hit) {
        int into_heap = 0;
        for (int i = 0; i < 6; i++)
            into_heap |= (uintptr_t)a[i] >= shim_kw_lo && (uintptr_t)a[i] < shim_kw_hi;
        static int said;
        if (into_heap && !__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED)) {
            char num[24];
            int e = errno;
            shim_say(2, "syscall(", shim_fmt_u64(num, (uint64_t)nr),
                     ", ...) failed with EFAULT: "
                     "with LRVM_TRACK=uffd-sigbus or mprotect the kernel cannot write into heap "
                     "memory this way (see docs/limits.md). Run with LRVM_TRACK=wp-async, or pass "
                     "a buffer on the stack",
                     NULL);
            errno = e;
        }
    }
    return r;
}

/* shim_kwinfo_setup -- resolve the real functions before main (see shim_kwrite_setup) */
void shim_kwinfo_setup(void)
{
#define T(fn) kw_try(&kw_slot_##fn, #fn)
    T(sysinfo);
    T(times);
    T(getresuid);
    T(getresgid);
    T(getcpu);
    T(prctl);
    T(clock_gettime);
    T(clock_getres);
    T(gettimeofday);
    T(time);
    T(nanosleep);
    T(clock_nanosleep);
    T(getitimer);
    T(setitimer);
    T(timerfd_gettime);
    T(timerfd_settime);
    T(sigpending);
    T(sigtimedwait);
    T(sigwaitinfo);
    T(sched_getparam);
    T(sched_rr_get_interval);
    T(prlimit);
    T(eventfd_read);
    T(getentropy);
    T(pthread_getname_np);
    T(ttyname_r);
    T(adjtimex);
    T(clock_adjtime);
    T(ntp_adjtime);
    T(sendfile);
    T(sendfile64);
    T(copy_file_range);
    T(splice);
    T(msgrcv);
    T(mq_receive);
    T(mq_timedreceive);
    T(sched_getaffinity);
    T(pthread_getaffinity_np);
    T(getgroups);
    T(getxattr);
    T(lgetxattr);
    T(fgetxattr);
    T(listxattr);
    T(llistxattr);
    T(flistxattr);
    T(mincore);
    T(ioctl);
    T(fcntl);
    T(fcntl64);
    T(syscall);
    T(prlimit64);
    T(getrlimit64);
    T(statfs64);
    T(fstatfs64);
    T(msgctl);
    T(shmctl);
    T(semctl);
    T(mq_getattr);
    T(mq_setattr);
    T(process_vm_readv);
    T(vmsplice);
    T(capget);
#undef T
}
