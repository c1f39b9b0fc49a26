/* SPDX-License-Identifier: MIT */
/*
 * faultmask.c -- SIGSEGV and SIGBUS stay deliverable in every thread (fault backends).
 *
 * With LRVM_TRACK=mprotect (SIGSEGV) or uffd-sigbus (SIGBUS), the first write of an epoch to
 * a heap page is a synchronous fault that vmprim's handler turns into "page recorded, write
 * allowed". If the writing thread blocks that signal, the kernel cannot run the handler and
 * kills the process instead. Blocking every signal is common practice for helper threads
 * (GLib blocks all signals around the creation of its worker threads; so did this shim's own
 * commit thread), and POSIX leaves blocked synchronous faults undefined anyway. So while a
 * fault backend is in use (shim_kw_hi != 0), the program's sigprocmask and pthread_sigmask
 * never block SIGSEGV or SIGBUS: they are removed from SIG_BLOCK and SIG_SETMASK sets. A
 * program that blocks them on purpose and relies on it (rare: a fault while blocked is fatal
 * anyway) sees them unblocked. The same holds for the two other places a mask comes from:
 * pthread_attr_setsigmask_np (the new thread installs it inside libc) and a handler's
 * sa_mask (sigaction, in sigchain.c, filters it with shim_faultmask_sa_mask). So are the C
 * library's other mask entry points (sighold, sigblock, sigsetmask: glibc implements them
 * with an internal call no wrapper sees) and sigsuspend's temporary mask, under which the
 * handler that ends the wait runs. The old set
 * is returned through the stack (a kernel write into the heap fails with these backends).
 *
 * The library's own calls (vmprim, liblrvm, commit.c) keep their exact meaning: they are
 * bound at link time with -Wl,--wrap (as in mutexwait.c) to the unfiltered version. Both are
 * the rt_sigprocmask system call with glibc's rule for its internal signals, so that no
 * dlsym is needed (the library's own calls run in fault handlers, before main).
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FM_EXPORT __attribute__((visibility("default")))

/* fm_mask -- pthread_sigmask's semantics by the system call (no dlsym: the library's own
 * calls run inside fault handlers, before main): glibc's two internal signals (32, 33:
 * cancellation and setxid) are never blocked, as glibc guarantees; with fault != 0, neither
 * are SIGSEGV and SIGBUS while a fault backend is in use. Returns 0 or an errno. */
static int fm_mask(int how, const sigset_t *set, sigset_t *old, int fault)
{
    sigset_t tmp;
    if (set != NULL && how != SIG_UNBLOCK) {
        tmp = *set;
        tmp.__val[0] &= ~((1ul << 31) | (1ul << 32)); /* bit n-1 is signal n */
        if (fault && shim_kw_hi != 0)
            tmp.__val[0] &= ~((1ul << (SIGSEGV - 1)) | (1ul << (SIGBUS - 1)));
        set = &tmp;
    }
    /* The old set goes through the stack: the kernel's copy into a heap page that the fault
   * backend protects would fail with EFAULT (a user-space store is recorded instead). */
    sigset_t prev;
    int saved = errno;
    long r = shim_raw_syscall(SYS_rt_sigprocmask, how, (long)set, (long)(old ? &prev : NULL),
                              _NSIG / 8, 0, 0);
    int err = r == 0 ? 0 : errno;
    if (r == 0 && old != NULL)
        memcpy(old, &prev, _NSIG / 8); /* what the kernel wrote; the rest stays as it was */
    errno = saved;
    return err;
}

/* shim_fault_sigmask -- the program's own rt_sigprocmask through syscall(2) (kwinfo.c):
 * filtered like sigprocmask; 0 or an errno */
int shim_fault_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return fm_mask(how, set, old, 1);
}

/* fm_filter -- set without SIGSEGV and SIGBUS while a fault backend is in use */
static const sigset_t *fm_filter(const sigset_t *set, sigset_t *tmp)
{
    if (set == NULL || shim_kw_hi == 0)
        return set;
    *tmp = *set;
    sigdelset(tmp, SIGSEGV);
    sigdelset(tmp, SIGBUS);
    return tmp;
}

typedef int (*attr_setsigmask_fn)(pthread_attr_t *, const sigset_t *);
static attr_setsigmask_fn real_attr_setsigmask;

/* pthread_attr_setsigmask_np -- libc's; the mask a new thread starts with never blocks
 * SIGSEGV or SIGBUS with a fault backend (the thread sets it inside libc, unseen here) */
FM_EXPORT int pthread_attr_setsigmask_np(pthread_attr_t *attr, const sigset_t *set)
{
    attr_setsigmask_fn f = __atomic_load_n(&real_attr_setsigmask, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = (attr_setsigmask_fn)dlsym(RTLD_NEXT, "pthread_attr_setsigmask_np");
        if (f == NULL)
            return ENOSYS;
        __atomic_store_n(&real_attr_setsigmask, f, __ATOMIC_RELEASE);
    }
    sigset_t tmp;
    return f(attr, fm_filter(set, &tmp));
}

/* shim_faultmask_sa_mask -- a handler's sa_mask without SIGSEGV and SIGBUS while a fault
 * backend is in use (sigchain.c): a handler that writes the heap while they are blocked
 * would be killed by its first write of the epoch. Returns act or tmp. */
const struct sigaction *shim_faultmask_sa_mask(const struct sigaction *act, struct sigaction *tmp)
{
    if (act == NULL || shim_kw_hi == 0 ||
        (!sigismember(&act->sa_mask, SIGSEGV) && !sigismember(&act->sa_mask, SIGBUS)))
        return act;
    *tmp = *act;
    sigdelset(&tmp->sa_mask, SIGSEGV);
    sigdelset(&tmp->sa_mask, SIGBUS);
    return tmp;
}

/* pthread_sigmask -- libc's pthread_sigmask, never blocking SIGSEGV/SIGBUS with a fault backend */
FM_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return fm_mask(how, set, old, 1);
}

/* sigprocmask -- libc's sigprocmask, never blocking SIGSEGV/SIGBUS with a fault backend */
FM_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    int err = fm_mask(how, set, old, 1);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* The C library's other ways to change the mask call its internal sigprocmask, which the
 * wrappers above cannot see: each is defined here with glibc's semantics over fm_mask. */

/* fm_errno -- 0 or -1 with errno = err */
static int fm_errno(int err)
{
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* sighold -- System V: block sig */
FM_EXPORT int sighold(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    if (sigaddset(&set, sig) != 0)
        return -1;
    return fm_errno(fm_mask(SIG_BLOCK, &set, NULL, 1));
}

/* fm_bsd_mask -- 4.2BSD's int masks (bit n-1 is signal n, signals 1..32): apply how, return
 * the previous mask in the same form, or -1 */
static int fm_bsd_mask(int how, int mask)
{
    sigset_t set, old;
    sigemptyset(&set);
    for (int sig = 1; sig <= 32; sig++)
        if (mask & (int)(1u << (sig - 1)))
            sigaddset(&set, sig);
    if (fm_errno(fm_mask(how, &set, &old, 1)) != 0)
        return -1;
    unsigned prev = 0;
    for (int sig = 1; sig <= 32; sig++)
        if (sigismember(&old, sig) == 1)
            prev |= 1u << (sig - 1);
    return (int)prev;
}

/* sigblock -- 4.2BSD: add mask to the blocked signals */
FM_EXPORT int sigblock(int mask)
{
    return fm_bsd_mask(SIG_BLOCK, mask);
}

/* sigsetmask -- 4.2BSD: set the blocked signals to mask */
FM_EXPORT int sigsetmask(int mask)
{
    return fm_bsd_mask(SIG_SETMASK, mask);
}

typedef int (*sigsuspend_fn)(const sigset_t *);
static sigsuspend_fn real_sigsuspend;

/* sigsuspend -- libc's (a cancellation point, hence not the raw system call), with a mask
 * that never blocks SIGSEGV/SIGBUS: the handler that ends the wait runs under it, and
 * "everything but the awaited signal" is the common idiom */
FM_EXPORT int sigsuspend(const sigset_t *set)
{
    sigsuspend_fn f = __atomic_load_n(&real_sigsuspend, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        f = (sigsuspend_fn)dlsym(RTLD_NEXT, "sigsuspend");
        if (f == NULL) {
            errno = ENOSYS;
            return -1;
        }
        __atomic_store_n(&real_sigsuspend, f, __ATOMIC_RELEASE);
    }
    sigset_t tmp;
    return f(fm_filter(set, &tmp));
}

/* this library's own calls (-Wl,--wrap): unchanged meaning */
int __wrap_sigprocmask(int how, const sigset_t *set, sigset_t *old);
int __wrap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old);
int __wrap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    return fm_mask(how, set, old, 0);
}
int __wrap_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    int err = fm_mask(how, set, old, 0);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
