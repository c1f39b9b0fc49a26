/* SPDX-License-Identifier: MIT */
/*
 * kwrite.c -- system calls that write into the heap, made to work with every DIRTY backend.
 *
 * With LRVM_TRACK=uffd-sigbus or mprotect, a heap page is write-protected until its first
 * write of the epoch, and the first write is noticed by a fault in the writing thread. A
 * KERNEL write (read(2) into a heap buffer) takes no such fault: it fails with EFAULT.
 * With wp-async the kernel records it itself and none of this runs.
 *
 * So the shim wraps the libc entry points through which a program has the kernel write into
 * its memory. Each wrapper first tests whether an output range meets the tracked heap (two
 * compares against [shim_kw_lo, shim_kw_hi), which are 0 unless a fault backend is in use),
 * then uses one of two remedies:
 *   prepare  rvm_track_prepare_write(range) opens the pages and records them as written;
 *            then the call. If the call still fails with EFAULT (a commit in another thread
 *            re-armed the pages in between), prepare again and retry once, as lrvm.h says.
 *            Used where a failed call consumes nothing: read, pread, readv, recv, getdents,
 *            poll and epoll_wait (events stay queued), fread (byte-level, see do_fread).
 *   bounce   the kernel writes into a buffer on our stack, we copy it into the heap (a user
 *            space store: the fault handler records it). Used where a failed copy-out would
 *            LOSE something: accept (the connection), wait4 (the reaped child), pipe and
 *            socketpair (the descriptors), recvfrom/recvmsg's source address and msghdr
 *            (the datagram), and for small fixed structs (stat, statx, uname...) because it
 *            is simplest and has no race at all.
 * The list of wrapped calls and what is knowingly left out is in README.md ("Kernel writes").
 *
 * Every real function is found with dlsym(RTLD_NEXT) on first use (boot.c does the same for
 * malloc). Calls made by liblrvm's own code come through here as well (they resolve through
 * the PLT to our exports): they write into stacks or the internal heap, never the tracked
 * heap, so they take the fast path.
 */
/* This file defines libc's symbols by their own names: with _FILE_OFFSET_BITS=64 (meson's
 * default) the headers would rename stat to stat64, pread to pread64 ... under us. */
#undef _FILE_OFFSET_BITS
#include "shim.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_api.h"
#include "kwrite.h"
#include <lrvm/lrvm.h>

#undef fread_unlocked /* a macro in bits/stdio.h when optimising */

uintptr_t shim_kw_lo, shim_kw_hi;
uintptr_t shim_kw_glo, shim_kw_ghi;

/* Prototypes glibc declares only under _FORTIFY_SOURCE, or only for old binaries. */
KW_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
KW_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen);
KW_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen);
KW_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
KW_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                 struct sockaddr *addr, socklen_t *alen);
KW_EXPORT size_t __fread_chk(void *p, size_t plen, size_t size, size_t n, FILE *f);
KW_EXPORT size_t __fread_unlocked_chk(void *p, size_t plen, size_t size, size_t n, FILE *f);
KW_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
KW_EXPORT char *__getcwd_chk(char *buf, size_t size, size_t buflen);
KW_EXPORT ssize_t __readlink_chk(const char *path, char *buf, size_t n, size_t buflen);
KW_EXPORT int __xstat(int ver, const char *path, struct stat *st);
KW_EXPORT int __lxstat(int ver, const char *path, struct stat *st);
KW_EXPORT int __fxstat(int ver, int fd, struct stat *st);
KW_EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags);

/* ---- the machinery (declared in kwrite.h) ------------------------------------------------ */

/* kw_real -- the next definition of name (glibc's), cached in *slot. A libc without it is a
 * broken installation: say which symbol and stop, rather than call through NULL. */
void *kw_real(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (__builtin_expect(f == NULL, 0)) {
        f = dlsym(RTLD_NEXT, name);
        if (f == NULL) {
            shim_say(2, "cannot find the C library's ", name,
                     " (dlsym RTLD_NEXT); is "
                     "liblrvm-preload.so loaded before libc (LD_PRELOAD)?",
                     NULL);
            abort();
        }
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

/* kw_prep_range -- prepare [a, b) clipped to [lo, hi); RVM_SUCCESS if nothing to do */
static rvm_return_t kw_prep_range(uintptr_t a, uintptr_t b, uintptr_t lo, uintptr_t hi)
{
    if (a < lo)
        a = lo;
    if (b > hi)
        b = hi;
    return a < b ? rvm_track_prepare_write((void *)a, b - a) : RVM_SUCCESS;
}

/* kw_prep_a -- open and record the tracked part of [p, p+len) before the kernel writes there;
 * returns 1 if some of it is tracked (then an EFAULT is worth a retry), else 0 */
int kw_prep_a(uintptr_t a, size_t len)
{
    if (!kw_hit_a(a, len))
        return 0;
    uintptr_t b = a + len;
    int saved = errno, in = shim_in_core;
    shim_in_core = 1; /* liblrvm's allocations (if any) go to the internal heap */
    rvm_return_t rc = kw_prep_range(a, b, shim_kw_lo, shim_kw_hi);
    if (rc == RVM_SUCCESS)
        rc = kw_prep_range(a, b, shim_kw_glo, shim_kw_ghi);
    shim_in_core = in;
    if (rc != RVM_SUCCESS) {
        static int said;
        if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
            shim_say(2, "cannot prepare a heap buffer for a system call (", rvm_errmsg,
                     "); the call will fail with EFAULT. Use LRVM_TRACK=wp-async if the kernel "
                     "has it",
                     NULL);
    }
    errno = saved;
    return 1;
}

/* kw_prep_iov -- kw_prep on each buffer of an iovec array (the array itself is only read) */
static int kw_prep_iov(const struct iovec *iov, int n)
{
    int hit = 0;
    for (int i = 0; iov && i < n; i++)
        hit |= kw_prep(iov[i].iov_base, iov[i].iov_len);
    return hit;
}

/* ---- prepare: read, pread, readv, recv, getdents, poll, epoll ---------------------------- */

SLOT(read);
SLOT(pread);
SLOT(pread64);
SLOT(readv);
SLOT(preadv);
SLOT(preadv64);
SLOT(preadv2);
SLOT(preadv64v2);
SLOT(recv);
SLOT(getdents64);
SLOT(__read_chk);
SLOT(__pread_chk);
SLOT(__pread64_chk);
SLOT(__recv_chk);
SLOT(poll);
SLOT(ppoll);
SLOT(__poll_chk);
SLOT(epoll_wait);
SLOT(epoll_pwait);
SLOT(getrandom);
SLOT(readlink);
SLOT(readlinkat);
SLOT(__readlink_chk);
SLOT(getcwd);
SLOT(__getcwd_chk);

KW_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    return KW_RETRY(kw_prep(buf, n), REAL(read)(fd, buf, n));
}
/* __read_chk -- libc's __read_chk; a heap output range is handled as this section says */
KW_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    return KW_RETRY(kw_prep(buf, n), REAL(__read_chk)(fd, buf, n, buflen));
}
/* pread -- libc's pread; a heap output range is handled as this section says */
KW_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    return KW_RETRY(kw_prep(buf, n), REAL(pread)(fd, buf, n, off));
}
/* pread64 -- libc's pread64; a heap output range is handled as this section says */
KW_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    return KW_RETRY(kw_prep(buf, n), REAL(pread64)(fd, buf, n, off));
}
/* __pread_chk -- libc's __pread_chk; a heap output range is handled as this section says */
KW_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    return KW_RETRY(kw_prep(buf, n), REAL(__pread_chk)(fd, buf, n, off, buflen));
}
/* __pread64_chk -- libc's __pread64_chk; a heap output range is handled as this section says */
KW_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
    return KW_RETRY(kw_prep(buf, n), REAL(__pread64_chk)(fd, buf, n, off, buflen));
}
/* readv -- libc's readv; a heap output range is handled as this section says */
KW_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
    return KW_RETRY(kw_prep_iov(iov, n), REAL(readv)(fd, iov, n));
}
/* preadv -- libc's preadv; a heap output range is handled as this section says */
KW_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    return KW_RETRY(kw_prep_iov(iov, n), REAL(preadv)(fd, iov, n, off));
}
/* preadv64 -- libc's preadv64; a heap output range is handled as this section says */
KW_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
    return KW_RETRY(kw_prep_iov(iov, n), REAL(preadv64)(fd, iov, n, off));
}
/* preadv2 -- libc's preadv2; a heap output range is handled as this section says */
KW_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    return KW_RETRY(kw_prep_iov(iov, n), REAL(preadv2)(fd, iov, n, off, flags));
}
/* preadv64v2 -- libc's preadv64v2; a heap output range is handled as this section says */
KW_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t off, int flags)
{
    return KW_RETRY(kw_prep_iov(iov, n), REAL(preadv64v2)(fd, iov, n, off, flags));
}
/* recv -- libc's recv; a heap output range is handled as this section says */
KW_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    return KW_RETRY(kw_prep(buf, n), REAL(recv)(fd, buf, n, flags));
}
/* __recv_chk -- libc's __recv_chk; a heap output range is handled as this section says */
KW_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    return KW_RETRY(kw_prep(buf, n), REAL(__recv_chk)(fd, buf, n, buflen, flags));
}
/* getdents64 -- libc's getdents64; a heap output range is handled as this section says */
KW_EXPORT ssize_t getdents64(int fd, void *buf, size_t n)
{
    return KW_RETRY(kw_prep(buf, n), REAL(getdents64)(fd, buf, n));
}
/* poll -- libc's poll; a heap output range is handled as this section says */
KW_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    return KW_RETRY(kw_prep(fds, n * sizeof(*fds)), REAL(poll)(fds, n, timeout));
}
/* __poll_chk -- libc's __poll_chk; a heap output range is handled as this section says */
KW_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    return KW_RETRY(kw_prep(fds, n * sizeof(*fds)), REAL(__poll_chk)(fds, n, timeout, fdslen));
}
/* ppoll -- libc's ppoll; a heap output range is handled as this section says */
KW_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *m)
{
    return KW_RETRY(kw_prep(fds, n * sizeof(*fds)), REAL(ppoll)(fds, n, ts, m));
}
/* epoll_wait -- libc's epoll_wait; a heap output range is handled as this section says */
KW_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    return KW_RETRY(kw_prep(ev, max > 0 ? (size_t)max * sizeof(*ev) : 0),
                    REAL(epoll_wait)(epfd, ev, max, timeout));
}
/* epoll_pwait -- libc's epoll_pwait; a heap output range is handled as this section says */
KW_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *m)
{
    return KW_RETRY(kw_prep(ev, max > 0 ? (size_t)max * sizeof(*ev) : 0),
                    REAL(epoll_pwait)(epfd, ev, max, timeout, m));
}
/* getrandom -- libc's getrandom; a heap output range is handled as this section says */
KW_EXPORT ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
    return KW_RETRY(kw_prep(buf, n), REAL(getrandom)(buf, n, flags));
}
/* readlink -- libc's readlink; a heap output range is handled as this section says */
KW_EXPORT ssize_t readlink(const char *path, char *buf, size_t n)
{
    return KW_RETRY(kw_prep(buf, n), REAL(readlink)(path, buf, n));
}
/* __readlink_chk -- libc's __readlink_chk; a heap output range is handled as this section says */
KW_EXPORT ssize_t __readlink_chk(const char *path, char *buf, size_t n, size_t buflen)
{
    return KW_RETRY(kw_prep(buf, n), REAL(__readlink_chk)(path, buf, n, buflen));
}
/* readlinkat -- libc's readlinkat; a heap output range is handled as this section says */
KW_EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t n)
{
    return KW_RETRY(kw_prep(buf, n), REAL(readlinkat)(dirfd, path, buf, n));
}

/* do_getcwd -- getcwd(NULL, size) mallocs inside libc and has the kernel write there, where
 * we cannot see it: ask the kernel for a stack copy and hand back a heap block ourselves */
static char *do_getcwd(char *buf, size_t size, char *(*real)(char *, size_t))
{
    if (buf != NULL) {
        int hit = kw_prep(buf, size);
        char *r = real(buf, size);
        if (r == NULL && errno == EFAULT && hit) {
            kw_prep(buf, size);
            r = real(buf, size);
        }
        return r;
    }
    if (shim_kw_hi == 0)
        return real(buf, size);
    char tmp[PATH_MAX];
    if (real(tmp, sizeof(tmp)) == NULL)
        return NULL;
    size_t len = strlen(tmp) + 1;
    if (size != 0 && size < len) {
        errno = ERANGE;
        return NULL;
    }
    /* The program owns (and frees) the result: it must come from the program's heap, not the
   * internal one malloc would choose for a call from this library. */
    char *r = heap_malloc(shim_heap, size ? size : len);
    if (r == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(r, tmp, len);
    return r;
}
/* getcwd -- libc's getcwd; a heap output range is handled as this section says */
KW_EXPORT char *getcwd(char *buf, size_t size)
{
    return do_getcwd(buf, size, REAL(getcwd));
}
/* __getcwd_chk -- libc's __getcwd_chk; a heap output range is handled as this section says */
KW_EXPORT char *__getcwd_chk(char *buf, size_t size, size_t buflen)
{
    if (buflen < size)
        return REAL(__getcwd_chk)(buf, size, buflen); /* libc reports the overflow */
    return do_getcwd(buf, size, REAL(getcwd));
}

/* do_fread -- fread with the prepare remedy. glibc satisfies a large fread by read(2) straight
 * into the caller's buffer from inside libc; an EFAULT there sets the stream's error flag
 * and consumes nothing. The retry reads the remaining BYTES: glibc's fread returns
 * bytes_read / size for a short read, so counting bytes gives the same result. */
static size_t do_fread(void *p, size_t size, size_t n, FILE *f,
                       size_t (*real)(void *, size_t, size_t, FILE *))
{
    size_t bytes;
    if (__builtin_mul_overflow(size, n, &bytes) || !kw_prep(p, bytes))
        return real(p, size, n, f);
    size_t got = real(p, 1, bytes, f);
    if (got < bytes && ferror(f) && errno == EFAULT) {
        clearerr(f);
        kw_prep((char *)p + got, bytes - got);
        got += real((char *)p + got, 1, bytes - got, f);
    }
    return size ? got / size : 0;
}
SLOT(fread);
SLOT(fread_unlocked);
SLOT(__fread_chk);
SLOT(__fread_unlocked_chk);
/* fread -- libc's fread; a heap output range is handled as this section says */
KW_EXPORT size_t fread(void *p, size_t size, size_t n, FILE *f)
{
    return do_fread(p, size, n, f, REAL(fread));
}
/* fread_unlocked -- libc's fread_unlocked; a heap output range is handled as this section says */
KW_EXPORT size_t fread_unlocked(void *p, size_t size, size_t n, FILE *f)
{
    return do_fread(p, size, n, f, REAL(fread_unlocked));
}
/* __fread_chk -- libc's __fread_chk; a heap output range is handled as this section says */
KW_EXPORT size_t __fread_chk(void *p, size_t plen, size_t size, size_t n, FILE *f)
{
    size_t bytes;
    if (__builtin_mul_overflow(size, n, &bytes) || bytes > plen)
        return REAL(__fread_chk)(p, plen, size, n, f); /* libc reports the overflow */
    return do_fread(p, size, n, f, REAL(fread));
}
/* __fread_unlocked_chk -- libc's __fread_unlocked_chk; a heap output range is handled as this section says */
KW_EXPORT size_t __fread_unlocked_chk(void *p, size_t plen, size_t size, size_t n, FILE *f)
{
    size_t bytes;
    if (__builtin_mul_overflow(size, n, &bytes) || bytes > plen)
        return REAL(__fread_unlocked_chk)(p, plen, size, n, f);
    return do_fread(p, size, n, f, REAL(fread_unlocked));
}

/* ---- bounce: small outputs and outputs whose loss would lose data ------------------------ */

SLOT(stat);
SLOT(lstat);
SLOT(fstat);
SLOT(fstatat);
SLOT(stat64);
SLOT(lstat64);
SLOT(fstat64);
SLOT(fstatat64);
SLOT(statx);
SLOT(__xstat);
SLOT(__lxstat);
SLOT(__fxstat);
SLOT(__fxstatat);
SLOT(statfs);
SLOT(fstatfs);
SLOT(uname);
SLOT(getrlimit);
SLOT(getrusage);
SLOT(pipe);
SLOT(pipe2);
SLOT(socketpair);

#define C_STAT(o) REAL(stat)(path, o)
/* stat -- libc's stat; a heap output range is handled as this section says */
KW_EXPORT int stat(const char *path, struct stat *st)
{
    return BOUNCE(struct stat, st, C_STAT);
}
#define C_LSTAT(o) REAL(lstat)(path, o)
/* lstat -- libc's lstat; a heap output range is handled as this section says */
KW_EXPORT int lstat(const char *path, struct stat *st)
{
    return BOUNCE(struct stat, st, C_LSTAT);
}
#define C_FSTAT(o) REAL(fstat)(fd, o)
/* fstat -- libc's fstat; a heap output range is handled as this section says */
KW_EXPORT int fstat(int fd, struct stat *st)
{
    return BOUNCE(struct stat, st, C_FSTAT);
}
#define C_FSTATAT(o) REAL(fstatat)(dirfd, path, o, flags)
/* fstatat -- libc's fstatat; a heap output range is handled as this section says */
KW_EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    return BOUNCE(struct stat, st, C_FSTATAT);
}
#define C_STAT64(o) REAL(stat64)(path, o)
/* stat64 -- libc's stat64; a heap output range is handled as this section says */
KW_EXPORT int stat64(const char *path, struct stat64 *st)
{
    return BOUNCE(struct stat64, st, C_STAT64);
}
#define C_LSTAT64(o) REAL(lstat64)(path, o)
/* lstat64 -- libc's lstat64; a heap output range is handled as this section says */
KW_EXPORT int lstat64(const char *path, struct stat64 *st)
{
    return BOUNCE(struct stat64, st, C_LSTAT64);
}
#define C_FSTAT64(o) REAL(fstat64)(fd, o)
/* fstat64 -- libc's fstat64; a heap output range is handled as this section says */
KW_EXPORT int fstat64(int fd, struct stat64 *st)
{
    return BOUNCE(struct stat64, st, C_FSTAT64);
}
#define C_FSTATAT64(o) REAL(fstatat64)(dirfd, path, o, flags)
/* fstatat64 -- libc's fstatat64; a heap output range is handled as this section says */
KW_EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    return BOUNCE(struct stat64, st, C_FSTATAT64);
}
#define C_STATX(o) REAL(statx)(dirfd, path, flags, mask, o)
/* statx -- libc's statx; a heap output range is handled as this section says */
KW_EXPORT int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *st)
{
    return BOUNCE(struct statx, st, C_STATX);
}
#define C_XSTAT(o) REAL(__xstat)(ver, path, o)
/* __xstat -- libc's __xstat; a heap output range is handled as this section says */
KW_EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
    return BOUNCE(struct stat, st, C_XSTAT);
}
#define C_LXSTAT(o) REAL(__lxstat)(ver, path, o)
/* __lxstat -- libc's __lxstat; a heap output range is handled as this section says */
KW_EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
    return BOUNCE(struct stat, st, C_LXSTAT);
}
#define C_FXSTAT(o) REAL(__fxstat)(ver, fd, o)
/* __fxstat -- libc's __fxstat; a heap output range is handled as this section says */
KW_EXPORT int __fxstat(int ver, int fd, struct stat *st)
{
    return BOUNCE(struct stat, st, C_FXSTAT);
}
#define C_FXSTATAT(o) REAL(__fxstatat)(ver, dirfd, path, o, flags)
/* __fxstatat -- libc's __fxstatat; a heap output range is handled as this section says */
KW_EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
    return BOUNCE(struct stat, st, C_FXSTATAT);
}
#define C_STATFS(o) REAL(statfs)(path, o)
/* statfs -- libc's statfs; a heap output range is handled as this section says */
KW_EXPORT int statfs(const char *path, struct statfs *st)
{
    return BOUNCE(struct statfs, st, C_STATFS);
}
#define C_FSTATFS(o) REAL(fstatfs)(fd, o)
/* fstatfs -- libc's fstatfs; a heap output range is handled as this section says */
KW_EXPORT int fstatfs(int fd, struct statfs *st)
{
    return BOUNCE(struct statfs, st, C_FSTATFS);
}
#define C_UNAME(o) REAL(uname)(o)
/* uname -- libc's uname; a heap output range is handled as this section says */
KW_EXPORT int uname(struct utsname *u)
{
    return BOUNCE(struct utsname, u, C_UNAME);
}
#define C_GETRLIMIT(o) REAL(getrlimit)(res, o)
/* getrlimit -- libc's getrlimit; a heap output range is handled as this section says */
KW_EXPORT int getrlimit(__rlimit_resource_t res, struct rlimit *rl)
{
    return BOUNCE(struct rlimit, rl, C_GETRLIMIT);
}
#define C_GETRUSAGE(o) REAL(getrusage)(who, o)
/* getrusage -- libc's getrusage; a heap output range is handled as this section says */
KW_EXPORT int getrusage(__rusage_who_t who, struct rusage *ru)
{
    return BOUNCE(struct rusage, ru, C_GETRUSAGE);
}
typedef int kw_fd2[2];
#define C_PIPE(o) REAL(pipe)(*(o))
/* pipe -- libc's pipe; a heap output range is handled as this section says */
KW_EXPORT int pipe(int fds[2])
{
    return BOUNCE(kw_fd2, (kw_fd2 *)fds, C_PIPE);
}
#define C_PIPE2(o) REAL(pipe2)(*(o), flags)
/* pipe2 -- libc's pipe2; a heap output range is handled as this section says */
KW_EXPORT int pipe2(int fds[2], int flags)
{
    return BOUNCE(kw_fd2, (kw_fd2 *)fds, C_PIPE2);
}
#define C_SOCKETPAIR(o) REAL(socketpair)(dom, type, proto, *(o))
/* socketpair -- libc's socketpair; a heap output range is handled as this section says */
KW_EXPORT int socketpair(int dom, int type, int proto, int fds[2])
{
    return BOUNCE(kw_fd2, (kw_fd2 *)fds, C_SOCKETPAIR);
}

/* wait family: the status (and rusage / siginfo) is written after the child is reaped, so a
 * failed copy would lose the child for good: always bounce */
SLOT(wait);
SLOT(waitpid);
SLOT(wait4);
SLOT(waitid);
/* bounce_int -- a stack int for *p when p is in the heap */
static int *bounce_int(int *p, int *tmp)
{
    return p && kw_hit(p, sizeof(*p)) ? tmp : p;
}
/* land_int -- copy the bounced value home */
static void land_int(int *p, const int *used, pid_t r)
{
    if (r > 0 && used != p) {
        int e = errno;
        *p = *used;
        errno = e;
    }
}
/* wait -- libc's wait; a heap output range is handled as this section says */
KW_EXPORT pid_t wait(int *status)
{
    int t = 0, *s = bounce_int(status, &t);
    pid_t r = REAL(wait)(s);
    land_int(status, s, r);
    return r;
}
/* waitpid -- libc's waitpid; a heap output range is handled as this section says */
KW_EXPORT pid_t waitpid(pid_t pid, int *status, int opt)
{
    int t = 0, *s = bounce_int(status, &t);
    pid_t r = REAL(waitpid)(pid, s, opt);
    land_int(status, s, r);
    return r;
}
/* wait4 -- libc's wait4; a heap output range is handled as this section says */
KW_EXPORT pid_t wait4(pid_t pid, int *status, int opt, struct rusage *ru)
{
    int t = 0, *s = bounce_int(status, &t);
    struct rusage rt, *rp = ru && kw_hit(ru, sizeof(*ru)) ? &rt : ru;
    pid_t r = REAL(wait4)(pid, s, opt, rp);
    land_int(status, s, r);
    if (r > 0 && rp != ru) {
        int e = errno;
        memcpy(ru, rp, sizeof(*ru));
        errno = e;
    }
    return r;
}
/* wait3 -- libc's wait3; a heap output range is handled as this section says */
KW_EXPORT pid_t wait3(int *status, int opt, struct rusage *ru)
{
    return wait4(-1, status, opt, ru);
}
/* waitid -- libc's waitid; a heap output range is handled as this section says */
KW_EXPORT int waitid(idtype_t type, id_t id, siginfo_t *info, int opt)
{
    if (!kw_hit(info, sizeof(*info)))
        return REAL(waitid)(type, id, info, opt);
    siginfo_t t;
    memset(&t, 0, sizeof(t));
    int r = REAL(waitid)(type, id, &t, opt);
    if (r == 0) {
        int e = errno;
        memcpy(info, &t, sizeof(t));
        errno = e;
    }
    return r;
}

/* select/pselect: the kernel rewrites the three fd_sets and (select) the timeout */
SLOT(select);
SLOT(pselect);
/* bounce_set -- a stack copy of *s if s is in the heap */
static fd_set *bounce_set(fd_set *s, fd_set *tmp)
{
    if (!s || !kw_hit(s, sizeof(*s)))
        return s;
    memcpy(tmp, s, sizeof(*s));
    return tmp;
}
/* land_set -- copy a bounced set home */
static void land_set(fd_set *s, const fd_set *used)
{
    if (used != s)
        memcpy(s, used, sizeof(*s));
}
/* sets_prep -- select's sets when n > FD_SETSIZE (programs may allocate bigger sets): the
 * kernel writes (n + 63) / 64 longs of each; too big to bounce, so prepared */
static int sets_prep(int n, fd_set *r, fd_set *w, fd_set *x)
{
    size_t len = ((size_t)n + 63) / 64 * 8;
    return kw_prep(r, r ? len : 0) | kw_prep(w, w ? len : 0) | kw_prep(x, x ? len : 0);
}
/* select -- libc's select; a heap output range is handled as this section says */
KW_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
    if (shim_kw_hi == 0)
        return REAL(select)(n, r, w, x, tv);
    if (n > FD_SETSIZE)
        return KW_RETRY(sets_prep(n, r, w, x) | kw_prep(tv, tv ? sizeof(*tv) : 0),
                        REAL(select)(n, r, w, x, tv));
    fd_set rt, wt, xt;
    struct timeval tt;
    fd_set *rp = bounce_set(r, &rt), *wp = bounce_set(w, &wt), *xp = bounce_set(x, &xt);
    struct timeval *tp = tv && kw_hit(tv, sizeof(*tv)) ? (tt = *tv, &tt) : tv;
    int rc = REAL(select)(n, rp, wp, xp, tp);
    int e = errno;
    if (rc >= 0) {
        land_set(r, rp);
        land_set(w, wp);
        land_set(x, xp);
    }
    if (tp != tv)
        *tv = *tp; /* Linux updates the timeout even on EINTR */
    errno = e;
    return rc;
}
/* pselect -- libc's pselect; a heap output range is handled as this section says */
KW_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts,
                      const sigset_t *m)
{
    if (shim_kw_hi == 0)
        return REAL(pselect)(n, r, w, x, ts, m);
    if (n > FD_SETSIZE)
        return KW_RETRY(sets_prep(n, r, w, x), REAL(pselect)(n, r, w, x, ts, m));
    fd_set rt, wt, xt;
    fd_set *rp = bounce_set(r, &rt), *wp = bounce_set(w, &wt), *xp = bounce_set(x, &xt);
    int rc = REAL(pselect)(n, rp, wp, xp, ts, m);
    int e = errno;
    if (rc >= 0) {
        land_set(r, rp);
        land_set(w, wp);
        land_set(x, xp);
    }
    errno = e;
    return rc;
}

/* ---- sockets: addresses and lengths ------------------------------------------------------ */

SLOT(accept);
SLOT(accept4);
SLOT(getsockname);
SLOT(getpeername);
SLOT(recvfrom);
SLOT(__recvfrom_chk);
SLOT(recvmsg);
SLOT(recvmmsg);
SLOT(getsockopt);

/* struct kw_addr -- a socket address bounced through the stack. The kernel writes *len (the
 * real size) and at most *len bytes of the address; we give it our full buffer and copy home
 * at most the caller's *len bytes, which is the same truncation rule. */
struct kw_addr {
    struct sockaddr_storage a;
    socklen_t len, ulen;
    struct sockaddr *ua;
    socklen_t *ulenp;
    int bounced;
};
/* kw_addr_in -- set up the bounce if the address or its length is in the heap */
static void kw_addr_in(struct kw_addr *k, struct sockaddr *ua, socklen_t *ulenp)
{
    k->ua = ua;
    k->ulenp = ulenp;
    k->bounced = ulenp && (kw_hit(ulenp, sizeof(*ulenp)) || (ua && kw_hit(ua, *ulenp)));
    if (k->bounced) {
        k->ulen = *ulenp;
        k->len = sizeof(k->a);
    }
}
/* kw_addr_out -- copy the bounced address and length home after a successful call */
static void kw_addr_out(struct kw_addr *k, int ok)
{
    if (!k->bounced || !ok)
        return;
    int e = errno;
    if (k->ua)
        memcpy(k->ua, &k->a, k->len < k->ulen ? k->len : k->ulen);
    *k->ulenp = k->len;
    errno = e;
}
#define KA(k) ((k).bounced ? (struct sockaddr *)&(k).a : (k).ua)
#define KL(k) ((k).bounced ? &(k).len : (k).ulenp)

/* accept -- libc's accept; a heap output range is handled as this section says */
KW_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct kw_addr k;
    kw_addr_in(&k, addr, len);
    int r = REAL(accept)(fd, KA(k), KL(k));
    kw_addr_out(&k, r >= 0);
    return r;
}
/* accept4 -- libc's accept4; a heap output range is handled as this section says */
KW_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct kw_addr k;
    kw_addr_in(&k, addr, len);
    int r = REAL(accept4)(fd, KA(k), KL(k), flags);
    kw_addr_out(&k, r >= 0);
    return r;
}
/* getsockname -- libc's getsockname; a heap output range is handled as this section says */
KW_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct kw_addr k;
    kw_addr_in(&k, addr, len);
    int r = REAL(getsockname)(fd, KA(k), KL(k));
    kw_addr_out(&k, r == 0);
    return r;
}
/* getpeername -- libc's getpeername; a heap output range is handled as this section says */
KW_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct kw_addr k;
    kw_addr_in(&k, addr, len);
    int r = REAL(getpeername)(fd, KA(k), KL(k));
    kw_addr_out(&k, r == 0);
    return r;
}
/* recvfrom: the data buffer is prepared; the source address is bounced, since the kernel
 * copies it out after it consumed the datagram */
KW_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                           socklen_t *len)
{
    struct kw_addr k;
    kw_addr_in(&k, addr, len);
    ssize_t r = KW_RETRY(kw_prep(buf, n), REAL(recvfrom)(fd, buf, n, flags, KA(k), KL(k)));
    kw_addr_out(&k, r >= 0);
    return r;
}
/* __recvfrom_chk -- libc's __recvfrom_chk; a heap output range is handled as this section says */
KW_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                 struct sockaddr *addr, socklen_t *len)
{
    struct kw_addr k;
    kw_addr_in(&k, addr, len);
    ssize_t r =
        KW_RETRY(kw_prep(buf, n), REAL(__recvfrom_chk)(fd, buf, n, buflen, flags, KA(k), KL(k)));
    kw_addr_out(&k, r >= 0);
    return r;
}

/* recvmsg: the msghdr's msg_namelen, msg_controllen and msg_flags are written by the kernel,
 * and msg_name after the data is consumed: the header and the name are bounced; the data
 * buffers and the control buffer are prepared. */
KW_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (shim_kw_hi == 0 || msg == NULL)
        return REAL(recvmsg)(fd, msg, flags);
    struct msghdr m = *msg;
    struct sockaddr_storage name;
    int bounced = m.msg_name && kw_hit(m.msg_name, m.msg_namelen);
    if (bounced) {
        m.msg_name = &name;
        m.msg_namelen = sizeof(name);
    }
    ssize_t r = KW_RETRY(kw_prep_iov(m.msg_iov, (int)m.msg_iovlen) |
                             kw_prep(m.msg_control, m.msg_controllen),
                         REAL(recvmsg)(fd, &m, flags));
    if (r >= 0) {
        int e = errno;
        if (bounced) /* truncated to the caller's length, as the kernel does */
            memcpy(msg->msg_name, &name,
                   m.msg_namelen < msg->msg_namelen ? m.msg_namelen : msg->msg_namelen);
        msg->msg_namelen = m.msg_namelen;
        msg->msg_controllen = m.msg_controllen;
        msg->msg_flags = m.msg_flags;
        errno = e;
    }
    return r;
}
/* recvmmsg: prepared, not bounced (the headers are an array of any length): an EFAULT in the
 * race with a concurrent commit is retried once, but a datagram already consumed by then is
 * lost. Rare (it needs a commit between prepare and copy-out); documented. */
KW_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *ts)
{
    int hit = 0;
    if (kw_hit(v, (size_t)n * sizeof(*v)))
        hit |= kw_prep(v, (size_t)n * sizeof(*v));
    for (unsigned i = 0; shim_kw_hi && v && i < n; i++) {
        struct msghdr *m = &v[i].msg_hdr;
        hit |= kw_prep_iov(m->msg_iov, (int)m->msg_iovlen) | kw_prep(m->msg_name, m->msg_namelen) |
               kw_prep(m->msg_control, m->msg_controllen);
    }
    int r = REAL(recvmmsg)(fd, v, n, flags, ts);
    if (r < 0 && errno == EFAULT && hit) {
        kw_prep(v, (size_t)n * sizeof(*v));
        for (unsigned i = 0; i < n; i++) {
            struct msghdr *m = &v[i].msg_hdr;
            kw_prep_iov(m->msg_iov, (int)m->msg_iovlen);
            kw_prep(m->msg_name, m->msg_namelen);
            kw_prep(m->msg_control, m->msg_controllen);
        }
        r = REAL(recvmmsg)(fd, v, n, flags, ts);
    }
    return r;
}

/* getsockopt: optval up to 1 KiB and optlen are bounced; a larger optval is prepared */
KW_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (len == NULL || !(kw_hit(len, sizeof(*len)) || (val && kw_hit(val, *len))))
        return REAL(getsockopt)(fd, level, name, val, len);
    socklen_t l = *len;
    if (l > 1024 || val == NULL)
        return KW_RETRY(kw_prep(val, l) | kw_prep(len, sizeof(*len)),
                        REAL(getsockopt)(fd, level, name, val, len));
    unsigned char tmp[1024];
    int r = REAL(getsockopt)(fd, level, name, tmp, &l);
    if (r == 0) {
        int e = errno;
        memcpy(val, tmp, l < *len ? l : *len);
        *len = l;
        errno = e;
    }
    return r;
}

/* ---- sigaltstack: the kernel writes signal frames there ----------------------------------- */

/* A program may malloc its alternate signal stack (gawk does, for libsigsegv). The kernel
 * pushes every signal frame there -- including the frame of the first-write fault that
 * would record the page -- so a write-protected page makes the delivery itself fail and the
 * kernel kills the process (SIGSEGV, SI_KERNEL). Preparing is not enough (the next commit
 * re-arms the page). The thread gets a private stack of the same size instead, mapped
 * outside the heap; queries report the program's own stack, so the substitution is
 * invisible except to code that inspects the frame addresses. A signal stack's content is
 * transient by nature: nothing to persist. The substitute of a thread that exits is not
 * unmapped (one per thread that set a heap stack; documented). */
SLOT(sigaltstack);
static __thread void *alt_sub __attribute__((tls_model("initial-exec")));
static __thread size_t alt_sub_size __attribute__((tls_model("initial-exec")));
static __thread stack_t alt_user __attribute__((tls_model("initial-exec")));

/* sigaltstack -- libc's sigaltstack; a heap output range is handled as this section says */
KW_EXPORT int sigaltstack(const stack_t *ss, stack_t *old)
{
    stack_t o, *op = old ? &o : NULL; /* bounced: old may be in the heap too */
    void *prev_sub = alt_sub;
    stack_t prev_user = alt_user;
    int r;
    if (ss == NULL || (ss->ss_flags & SS_DISABLE) || !kw_hit(ss->ss_sp, ss->ss_size)) {
        r = REAL(sigaltstack)(ss, op);
    } else {
        if (alt_sub == NULL || alt_sub_size < ss->ss_size) {
            /* a new one: the old substitute may be in use right now (we may run in a handler) */
            void *m = mmap(NULL, ss->ss_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
            if (m == MAP_FAILED) {
                errno = ENOMEM;
                return -1;
            }
            alt_sub = m;
            alt_sub_size = ss->ss_size;
        }
        stack_t sub = *ss;
        sub.ss_sp = alt_sub;
        r = REAL(sigaltstack)(&sub, op);
        if (r == 0)
            alt_user = *ss;
    }
    if (op && r == 0) {
        if (prev_sub && o.ss_sp == prev_sub) { /* show the program its own stack */
            o.ss_sp = prev_user.ss_sp;
            o.ss_size = prev_user.ss_size;
        }
        int e = errno;
        *old = o;
        errno = e;
    }
    return r;
}

/* ---- start-up ------------------------------------------------------------------------------ */

/* kw_try -- resolve one real function now if libc has it (a missing one aborts only if it is
 * ever called: kw_real) */
void kw_try(void **slot, const char *name)
{
    if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) == NULL)
        __atomic_store_n(slot, dlsym(RTLD_NEXT, name), __ATOMIC_RELEASE);
}

/* shim_kwrite_setup -- resolve every real function before main: the first call of a wrapper
 * may come from a signal handler (read, write ... are async-signal-safe), where dlsym, which
 * allocates and takes ld.so's lock, must not run */
void shim_kwrite_setup(void)
{
#define R(fn) kw_try(&kw_slot_##fn, #fn)
    R(read);
    R(pread);
    R(pread64);
    R(readv);
    R(preadv);
    R(preadv64);
    R(preadv2);
    R(preadv64v2);
    R(recv);
    R(getdents64);
    R(__read_chk);
    R(__pread_chk);
    R(__pread64_chk);
    R(__recv_chk);
    R(poll);
    R(ppoll);
    R(__poll_chk);
    R(epoll_wait);
    R(epoll_pwait);
    R(getrandom);
    R(readlink);
    R(readlinkat);
    R(__readlink_chk);
    R(getcwd);
    R(__getcwd_chk);
    R(fread);
    R(fread_unlocked);
    R(__fread_chk);
    R(__fread_unlocked_chk);
    R(stat);
    R(lstat);
    R(fstat);
    R(fstatat);
    R(stat64);
    R(lstat64);
    R(fstat64);
    R(fstatat64);
    R(statx);
    R(__xstat);
    R(__lxstat);
    R(__fxstat);
    R(__fxstatat);
    R(statfs);
    R(fstatfs);
    R(uname);
    R(getrlimit);
    R(getrusage);
    R(pipe);
    R(pipe2);
    R(socketpair);
    R(wait);
    R(waitpid);
    R(wait4);
    R(waitid);
    R(select);
    R(pselect);
    R(accept);
    R(accept4);
    R(getsockname);
    R(getpeername);
    R(recvfrom);
    R(__recvfrom_chk);
    R(recvmsg);
    R(recvmmsg);
    R(getsockopt);
    R(sigaltstack);
#undef R
    shim_kwinfo_setup();
    shim_helpers_setup();
    shim_stacks_setup();
}
