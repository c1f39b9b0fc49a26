/* SPDX-License-Identifier: MIT */
/*
 * sigentry.c -- the C library's other ways of installing a signal handler, routed through
 * sigchain.c so that a SIGSEGV/SIGBUS handler never replaces vmprim's fault dispatcher.
 *
 * Wrapping sigaction and signal is not enough: glibc implements its other entry points with an
 * internal call to its own sigaction, which no preloaded library can interpose. A program
 * that uses one of them replaces the dispatcher, and with LRVM_TRACK=uffd-sigbus or mprotect
 * its very next first write to a heap page lands in its own handler as if it were a crash.
 * zstd did exactly that: compiled in strict ISO/POSIX mode (-std=c99), <signal.h> turns its
 * `signal(SIGSEGV, h)` into a call to __sysv_signal. So every exported entry point that can
 * install a handler is defined here with glibc's exact semantics, over shim_sigaction_from:
 *   bsd_signal, ssignal       aliases of signal (BSD semantics: SA_RESTART unless
 *                             siginterrupt said otherwise, stays installed)
 *   __sysv_signal, sysv_signal System V semantics: one-shot (SA_RESETHAND), not deferred
 *   __sigaction               sigaction's other exported name
 *   sigset, sigignore         System V interface: handler and, for sigset, the signal mask
 *   siginterrupt              re-installs the current handler with SA_RESTART changed, and
 *                             remembers the choice for later signal() calls, as glibc does
 * syscall(SYS_rt_sigaction, ...) through the C library is taken in kwinfo.c (shim_sigchain_kernel
 * below). A program that issues the system call itself (inline, as Go's runtime does) cannot be
 * seen: that limit is written down for users.
 * The signal-mask side (sigset's SIG_HOLD) goes through faultmask.c's filter, so it cannot block
 * the fault signals either.
 */
#include "shim.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define SE_EXPORT __attribute__((visibility("default")))

/* Exported by the C library but not declared by <signal.h> in this build's mode. */
__sighandler_t bsd_signal(int sig, __sighandler_t handler);
int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);

#ifndef SIG_HOLD
#define SIG_HOLD ((__sighandler_t)2) /* glibc's value; <signal.h> hides it in some modes */
#endif

/* install_simple -- handler for sig with the given flags and an empty (or self) mask; returns
 * the old handler or SIG_ERR, as the signal() family does */
static __sighandler_t install_simple(int sig, __sighandler_t handler, int flags, int mask_self,
                                     void *ret)
{
    if (handler == SIG_ERR || sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (mask_self)
        sigaddset(&sa.sa_mask, sig);
    if (shim_sigaction_from(sig, &sa, &old, ret) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* Signals for which siginterrupt(sig, 1) was called last: the C library keeps this set too, and
 * its signal() installs their handlers without SA_RESTART. One bit per signal number. */
static _Atomic uint64_t interrupting[(NSIG + 63) / 64];

/* shim_signal_flags -- the sa_flags of a BSD-style signal() of sig: SA_RESTART unless the
 * program asked with siginterrupt for sig to interrupt system calls */
int shim_signal_flags(int sig)
{
    if (sig <= 0 || sig >= NSIG)
        return SA_RESTART;
    uint64_t bit = (uint64_t)1 << (sig % 64);
    return (atomic_load(&interrupting[sig / 64]) & bit) ? 0 : SA_RESTART;
}

/* bsd_signal -- glibc's signal under its POSIX name */
SE_EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t handler)
{
    return install_simple(sig, handler, shim_signal_flags(sig), 1, __builtin_return_address(0));
}

/* ssignal -- glibc's signal under its SVID name */
SE_EXPORT __sighandler_t ssignal(int sig, __sighandler_t handler)
{
    return install_simple(sig, handler, shim_signal_flags(sig), 1, __builtin_return_address(0));
}

/* __sysv_signal -- what signal() is in a strict ISO/POSIX build: a one-shot handler that does
 * not block its own signal (glibc: SA_RESETHAND | SA_NODEFER, no SA_RESTART) */
SE_EXPORT __sighandler_t __sysv_signal(int sig, __sighandler_t handler)
{
    return install_simple(sig, handler, SA_RESETHAND | SA_NODEFER, 0, __builtin_return_address(0));
}

/* sysv_signal -- the same under its other name */
SE_EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t handler)
{
    return install_simple(sig, handler, SA_RESETHAND | SA_NODEFER, 0, __builtin_return_address(0));
}

/* __sigaction -- sigaction's other exported name */
SE_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return shim_sigaction_from(sig, act, old, __builtin_return_address(0));
}

/* sigset_mask -- sigset's mask change through faultmask.c's filter; 0, or -1 and errno */
static int sigset_mask(int how, int sig, sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    int err = shim_fault_sigmask(how, &set, old);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* sigset -- System V: SIG_HOLD blocks sig; anything else installs it and unblocks sig. Returns
 * SIG_HOLD if sig was blocked before, else the previous handler (glibc's semantics). */
SE_EXPORT __sighandler_t sigset(int sig, __sighandler_t disp)
{
    void *ret = __builtin_return_address(0);
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return SIG_ERR;
    }
    sigset_t before;
    struct sigaction sa, old;
    if (disp == SIG_HOLD) {
        if (sigset_mask(SIG_BLOCK, sig, &before) != 0)
            return SIG_ERR;
        if (sigismember(&before, sig))
            return SIG_HOLD;
        if (shim_sigaction_from(sig, NULL, &old, ret) != 0)
            return SIG_ERR;
        return old.sa_handler;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = disp;
    sigemptyset(&sa.sa_mask);
    if (shim_sigaction_from(sig, &sa, &old, ret) != 0)
        return SIG_ERR;
    if (sigset_mask(SIG_UNBLOCK, sig, &before) != 0)
        return SIG_ERR;
    return sigismember(&before, sig) ? SIG_HOLD : old.sa_handler;
}

/* sigignore -- System V: ignore sig */
SE_EXPORT int sigignore(int sig)
{
    return install_simple(sig, SIG_IGN, 0, 0, __builtin_return_address(0)) == SIG_ERR ? -1 : 0;
}

/* siginterrupt -- re-install sig's current handler with SA_RESTART cleared (flag != 0) or set */
SE_EXPORT int siginterrupt(int sig, int flag)
{
    void *ret = __builtin_return_address(0);
    struct sigaction sa;
    if (sig <= 0 || sig >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (shim_sigaction_from(sig, NULL, &sa, ret) != 0)
        return -1;
    uint64_t bit = (uint64_t)1 << (sig % 64);
    if (flag) {
        sa.sa_flags &= ~SA_RESTART;
        atomic_fetch_or(&interrupting[sig / 64], bit);
    } else {
        sa.sa_flags |= SA_RESTART;
        atomic_fetch_and(&interrupting[sig / 64], ~bit);
    }
    return shim_sigaction_from(sig, &sa, NULL, ret);
}

/* The rt_sigaction system call's own struct on Linux (not the C library's struct sigaction). */
struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

/* shim_sigchain_kernel -- syscall(SYS_rt_sigaction, sig, kact, kold, size) made by the program
 * (kwinfo.c): translated to and from struct sigaction and chained like sigaction(). The
 * program's restorer is not kept: a chained handler is called by vmprim's dispatcher and
 * returns to it. Returns the system call's result (0, or -1 and errno). */
long shim_sigchain_kernel(int sig, const void *kact, void *kold, void *ret)
{
    struct kernel_sigaction k;
    struct sigaction sa, old;
    if (kact != NULL) {
        memcpy(&k, kact, sizeof(k));
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = (__sighandler_t)k.handler;
        sa.sa_flags = (int)k.flags;
        memcpy(&sa.sa_mask, &k.mask, sizeof(k.mask));
    }
    memset(&old, 0, sizeof(old));
    if (shim_sigaction_from(sig, kact ? &sa : NULL, &old, ret) != 0)
        return -1;
    if (kold != NULL) {
        memset(&k, 0, sizeof(k));
        k.handler = (void *)old.sa_handler;
        k.flags = (unsigned long)(unsigned)old.sa_flags;
        k.restorer = (void *)old.sa_restorer;
        memcpy(&k.mask, &old.sa_mask, sizeof(k.mask));
        memcpy(kold, &k, sizeof(k));
    }
    return 0;
}
