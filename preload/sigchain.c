/* SPDX-License-Identifier: MIT */
/*
 * sigchain.c -- sigaction()/signal() wrappers that keep vmprim's fault dispatcher first.
 *
 * Programs install their own SIGSEGV/SIGBUS handlers (JVMs, Go, sanitizers, this test suite).
 * If such a call reached the kernel it would replace vmprim's dispatcher and page-protection
 * tracking would die with the first protected write. So, while the shim is active, a program's
 * sigaction(SIGSEGV or SIGBUS) becomes vmp_trap_set_chain: the program's handler is recorded as
 * the disposition for faults outside vmprim's ranges, and vmprim forwards those exactly as the
 * kernel would have (mask, SA_SIGINFO, SA_RESETHAND; SIG_DFL still dies with the signal).
 * A query (act == NULL) returns the program's own previous handler, not the dispatcher.
 * The C library has more entry points that install a handler without calling its exported
 * sigaction (signal's aliases, __sysv_signal, sigset, ...): sigentry.c routes them here too.
 * The same holds for the commit signal of LRVM_COMMIT=signal (commit.c): the program's handler
 * is recorded and called from ours, so installing it does not silently end the signal commits.
 *
 * Calls made by vmprim itself (it is linked into this library: installing the dispatcher,
 * restoring SIG_DFL before re-raising a genuine crash) must reach the kernel, or the wrapper
 * would recurse into vmprim under its own lock. They are recognised by their return address
 * lying in this library's text, computed once at init (arithmetic only: trap_die calls
 * sigaction from a signal handler).
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <string.h>

#include <lrvm/vmprim.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
uintptr_t shim_self_lo, shim_self_hi; /* this library's executable segment */

/* find_self -- dl_iterate_phdr callback: record the PT_LOAD|PF_X segment holding sigchain */
static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            shim_self_lo = lo;
            shim_self_hi = hi;
            return 1;
        }
    }
    return 0;
}

/* shim_self_range -- this library's text, once (dl_iterate_phdr does not allocate) */
int shim_self_range(void)
{
    if (!shim_self_lo)
        dl_iterate_phdr(find_self, (void *)(uintptr_t)shim_self_range);
    return shim_self_lo ? 0 : ENOENT;
}

/* shim_sigchain_setup -- resolve the real sigaction and our text range; LRVM_BACKTRACE */
int shim_sigchain_setup(void)
{
    real_sigaction =
        (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    if (!real_sigaction || shim_self_range()) {
        shim_say(2, "cannot find the C library's sigaction (dlsym RTLD_NEXT)", NULL);
        return ENOENT;
    }
    if (shim_opts.backtrace) {
        int rc = vmp_trap_set_backtrace(1);
        if (rc == 0)
            rc = vmp_trap_set_chain(SIGSEGV, NULL, NULL); /* installs the dispatcher now */
        if (rc == 0)
            rc = vmp_trap_set_chain(SIGBUS, NULL, NULL);
        if (rc) {
            shim_say(2, "LRVM_BACKTRACE=1: ",
                     rc == ENOTSUP ? "lrvm was built without libunwind" : strerror(rc),
                     "; set LRVM_BACKTRACE=0", NULL);
            return rc;
        }
    }
    return 0;
}

/* chained -- this call is the program's, about a signal vmprim must keep */
static int chained(int sig, void *ret)
{
    if (sig != SIGSEGV && sig != SIGBUS)
        return 0;
    if (__atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) != SHIM_ACTIVE || !real_sigaction)
        return 0;
    return !((uintptr_t)ret >= shim_self_lo && (uintptr_t)ret < shim_self_hi);
}

/* commit_signal -- this call is the program's, about LRVM_COMMIT's signal (commit.c keeps our
 * handler installed and calls the program's from it) */
static int commit_signal(int sig, void *ret)
{
    if (__atomic_load_n(&shim_state, __ATOMIC_ACQUIRE) != SHIM_ACTIVE || !real_sigaction)
        return 0;
    return !((uintptr_t)ret >= shim_self_lo && (uintptr_t)ret < shim_self_hi);
}

/* shim_sigaction_from -- the body shared by every entry point that installs a handler
 * (sigaction, signal, and sigentry.c's); ret is the address the program's call returns to */
int shim_sigaction_from(int sig, const struct sigaction *act, struct sigaction *old, void *ret)
{
    if (commit_signal(sig, ret) && shim_commit_sigaction(sig, act, old))
        return 0;
    if (chained(sig, ret)) {
        int rc = vmp_trap_set_chain(sig, act, old);
        if (rc) {
            errno = rc;
            return -1;
        }
        return 0;
    }
    if (!real_sigaction) {
        /* Before init (a constructor that runs before ours): resolve now. */
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(
            RTLD_NEXT, "sigaction");
        if (!real_sigaction) {
            errno = ENOSYS;
            return -1;
        }
    }
    struct sigaction tmp;
    return real_sigaction(sig, shim_faultmask_sa_mask(act, &tmp), old);
}

SHIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return shim_sigaction_from(sig, act, old, __builtin_return_address(0));
}

/* signal -- glibc's BSD semantics (SA_RESTART unless siginterrupt said otherwise, handler
 * stays installed) over sigaction */
SHIM_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = shim_signal_flags(sig);
    sigemptyset(&sa.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&sa.sa_mask, sig);
    else {
        errno = EINVAL;
        return SIG_ERR;
    }
    if (shim_sigaction_from(sig, &sa, &old, __builtin_return_address(0)) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

/* shim_sigchain_reclaim -- at each commit with a fault backend: if the program replaced
 * vmprim's dispatcher past every wrapper (a direct rt_sigaction system call, as Go's runtime
 * makes), take it back with the program's handler chained behind it, and say so once. Until
 * then the program's first heap writes went to its own handler; nothing was lost (a write
 * that never got through was never made), but the program may well have died of it. */
void shim_sigchain_reclaim(void)
{
    static int said;
    int sigs[2] = {SIGSEGV, SIGBUS};
    for (int i = 0; i < 2; i++) {
        if (vmp_trap_reclaim(sigs[i]) != EAGAIN || __atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
            continue;
        shim_say(2, "the program replaced lrvm's ", sigs[i] == SIGSEGV ? "SIGSEGV" : "SIGBUS",
                 " handler without sigaction, signal or syscall() (a direct rt_sigaction system "
                 "call): until now its first writes to heap pages went to its own handler; lrvm's "
                 "handler is back, with the program's behind it. If this program fails under "
                 "lrvm, run it with LRVM_TRACK=wp-async",
                 NULL);
    }
}
