/* SPDX-License-Identifier: MIT */
/*
 * trap.c -- TRAP: the process-wide SIGSEGV/SIGBUS dispatcher.
 *
 * One handler for both signals, installed once with SA_SIGINFO|SA_ONSTACK. It looks the
 * faulting address up in a fixed table of registered ranges and calls the range's handler;
 * faults outside every range are chained to the disposition that was in place before ours
 * (or to the one given later through vmp_trap_set_chain).
 *
 * Why a fixed table and no locks: the handler runs in signal context, possibly in a thread
 * interrupted while it held any lock, so it may only use atomics. Each slot has a state
 * (FREE -> RESERVED -> LIVE -> DYING -> FREE) and a count of handlers inside it. A handler
 * increments `busy` and then re-reads `state`; unregister sets DYING and then waits for busy
 * to drop to zero. Both sides use sequentially consistent operations, so either the handler
 * sees DYING and leaves, or unregister sees its busy count and waits: after unregister
 * returns nobody uses the slot's arg, and the slot may be reused.
 *
 * Chaining reads a struct sigaction that another thread may be replacing; a sequence lock
 * (even = stable) lets the handler take a consistent copy without blocking.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "vmprim_int.h"

#ifdef VMP_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

enum { SLOT_FREE = 0, SLOT_RESERVED, SLOT_LIVE, SLOT_DYING };

struct trap_slot {
    _Atomic int state;
    _Atomic int busy;
    _Atomic uintptr_t start;
    _Atomic uintptr_t end;
    vmp_trap_fn fn;
    void *arg;
};

static struct trap_slot trap_slots[VMP_TRAP_MAX_RANGES];
static _Atomic int trap_hiwater; /* slots [0, hiwater) may be in use */
static pthread_mutex_t trap_lock = PTHREAD_MUTEX_INITIALIZER;
static int trap_installed; /* under trap_lock */
static _Atomic int trap_backtrace;

/* Chained dispositions, index 0 = SIGSEGV, 1 = SIGBUS, each under a sequence lock. */
static struct sigaction trap_chain[2];
static _Atomic unsigned trap_chain_seq[2];

/* trap_sig_index -- 0 for SIGSEGV, 1 for SIGBUS, -1 otherwise */
static int trap_sig_index(int sig)
{
    return sig == SIGSEGV ? 0 : sig == SIGBUS ? 1 : -1;
}

/* trap_write_msg -- write a NUL-terminated message to stderr with write(2) (signal-safe) */
void trap_write_msg(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* trap_fmt_hex -- format v as 0x... into buf (>= 19 bytes); async-signal-safe */
char *trap_fmt_hex(char *buf, uintptr_t v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    buf[0] = '0';
    buf[1] = 'x';
    for (int i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    buf[2 + n] = '\0';
    return buf;
}

/* trap_chain_read -- consistent copy of the chained disposition (signal-safe) */
static void trap_chain_read(int idx, struct sigaction *out)
{
    unsigned s1, s2;
    do {
        s1 = atomic_load_explicit(&trap_chain_seq[idx], memory_order_acquire);
        if (s1 & 1)
            continue; /* a writer is in the middle of an update */
        memcpy(out, &trap_chain[idx], sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&trap_chain_seq[idx], memory_order_relaxed);
        if (s1 == s2)
            return;
    } while (1);
}

/* trap_chain_write -- replace the chained disposition (caller holds trap_lock) */
static void trap_chain_write(int idx, const struct sigaction *act)
{
    atomic_fetch_add_explicit(&trap_chain_seq[idx], 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(&trap_chain[idx], act, sizeof(*act));
    atomic_fetch_add_explicit(&trap_chain_seq[idx], 1, memory_order_release);
}

#ifdef VMP_HAVE_LIBUNWIND
/* trap_append -- append s to the NUL-terminated dst of capacity cap, truncating (signal-safe) */
static void trap_append(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    while (*s != '\0' && n + 1 < cap)
        dst[n++] = *s++;
    dst[n] = '\0';
}

/* trap_backtrace_print -- walk the stack with libunwind and write it to stderr.
 * Only reached on the way to a crash; libunwind's local unwinder is signal-safe for
 * unw_getcontext/unw_init_local/unw_step, and name lookup reads only mapped ELF data. */
static void trap_backtrace_print(void)
{
    unw_context_t ctx;
    unw_cursor_t cur;
    char hex[24], name[256], line[400];
    if (unw_getcontext(&ctx) != 0 || unw_init_local(&cur, &ctx) != 0)
        return;
    trap_write_msg("vmprim: backtrace:\n");
    for (int depth = 0; depth < 64 && unw_step(&cur) > 0; depth++) {
        unw_word_t ip = 0, off = 0;
        unw_get_reg(&cur, UNW_REG_IP, &ip);
        line[0] = '\0';
        trap_append(line, sizeof(line), "  ");
        trap_append(line, sizeof(line), trap_fmt_hex(hex, (uintptr_t)ip));
        if (unw_get_proc_name(&cur, name, sizeof(name), &off) == 0) {
            trap_append(line, sizeof(line), " ");
            trap_append(line, sizeof(line), name);
            trap_append(line, sizeof(line), "+");
            trap_append(line, sizeof(line), trap_fmt_hex(hex, (uintptr_t)off));
        }
        trap_append(line, sizeof(line), "\n");
        trap_write_msg(line);
    }
}
#endif

/* trap_die -- a genuine crash: restore the default action and re-raise, so the process
 * terminates with the original signal (and core dump) just as it would without us. */
static void trap_die(int sig, siginfo_t *si)
{
    struct sigaction dfl;
    if (atomic_load(&trap_backtrace)) {
        char hex[24];
        trap_write_msg(sig == SIGSEGV ? "vmprim: fatal SIGSEGV at " : "vmprim: fatal SIGBUS at ");
        trap_write_msg(trap_fmt_hex(hex, (uintptr_t)si->si_addr));
        trap_write_msg(" (outside every vmprim range, no application handler)\n");
#ifdef VMP_HAVE_LIBUNWIND
        trap_backtrace_print();
#endif
    }
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* The signal is blocked while we run: raise() leaves it pending, and it is delivered
     * (with the default action) as soon as the handler returns and the mask is restored.
     * For a hardware fault the re-executed instruction would fault again anyway. */
    raise(sig);
}

/* Per thread: how many forwarded handlers are running in it, and the frame of trap_forward
 * for the outermost. Handlers run with the fault signals deliverable (see trap_forward), so
 * a handler that faults itself re-enters; the kernel would have killed the process at the
 * first such fault (signal blocked), we do at the TRAP_FWD_MAX-th instead of recursing until
 * the stack runs out (which may take long with an unlimited stack). A handler may leave by
 * siglongjmp and never decrement the count: a later fault whose frame is not below the
 * recorded one is not nested in it (nested ones run deeper on the same stack), so the count
 * starts again. initial-exec TLS: read in a signal handler, where lazy TLS could allocate. */
#define TRAP_FWD_MAX 16
static __thread int trap_fwd_depth __attribute__((tls_model("initial-exec")));
static __thread uintptr_t trap_fwd_frame __attribute__((tls_model("initial-exec")));

/* trap_fwd_enter -- count a forwarded handler in this thread; 0, or -1 if too deeply nested */
static int trap_fwd_enter(uintptr_t frame)
{
    if (trap_fwd_depth > 0 && frame >= trap_fwd_frame)
        trap_fwd_depth = 0; /* the handlers counted were left by siglongjmp */
    if (trap_fwd_depth >= TRAP_FWD_MAX)
        return -1;
    if (trap_fwd_depth++ == 0)
        trap_fwd_frame = frame;
    return 0;
}

/* trap_forward -- pass a fault that is not ours to the chained disposition */
static void trap_forward(int sig, siginfo_t *si, void *uctx)
{
    struct sigaction a;
    sigset_t old;
    int idx = trap_sig_index(sig);
    trap_chain_read(idx, &a);

    void *h = (a.sa_flags & SA_SIGINFO) ? (void *)a.sa_sigaction : (void *)a.sa_handler;
    if (h == (void *)SIG_DFL) {
        trap_die(sig, si);
        return;
    }
    if (h == (void *)SIG_IGN) {
        /* A signal sent with kill() is ignored as asked. A real fault cannot be ignored:
         * the kernel kills the process in that case, so we do the same. */
        if (si->si_code <= 0)
            return;
        trap_die(sig, si);
        return;
    }
    if (a.sa_flags & SA_RESETHAND) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        /* One-shot handler: later faults take the default action. A lock cannot be taken
         * here; a concurrent vmp_trap_set_chain may race, which sigaction itself allows. */
        trap_chain_write(idx, &dfl);
    }
    /* Run the application's handler under the mask it asked for, except that SIGSEGV and
     * SIGBUS stay deliverable: the handler may write a tracked page for the first time in
     * this epoch (zstd's allocates, in backtrace_symbols), and that fault must reach this
     * dispatcher, or the kernel kills the process for faulting with the signal blocked. The
     * kernel itself blocked `sig` on entry to this dispatcher, hence the explicit unblock.
     * The price: a handler that itself faults outside every range is entered again instead
     * of killing the process at once, up to TRAP_FWD_MAX times. */
    if (trap_fwd_enter((uintptr_t)__builtin_frame_address(0)) != 0) {
        trap_die(sig, si);
        return;
    }
    sigset_t mask = a.sa_mask, faults;
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    sigdelset(&mask, SIGSEGV);
    sigdelset(&mask, SIGBUS);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
    if (a.sa_flags & SA_SIGINFO)
        a.sa_sigaction(sig, si, uctx);
    else
        a.sa_handler(sig);
    trap_fwd_depth--;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* trap_dispatch -- the signal handler: find the range of the fault, else chain */
static void trap_dispatch(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    /* Only kernel-generated faults (si_code > 0) carry a meaningful si_addr. */
    if (si != NULL && si->si_code > 0) {
        uintptr_t a = (uintptr_t)si->si_addr;
        int hi = atomic_load_explicit(&trap_hiwater, memory_order_acquire);
        for (int i = 0; i < hi; i++) {
            struct trap_slot *s = &trap_slots[i];
            if (atomic_load_explicit(&s->state, memory_order_relaxed) != SLOT_LIVE)
                continue;
            if (a < atomic_load_explicit(&s->start, memory_order_relaxed) ||
                a >= atomic_load_explicit(&s->end, memory_order_relaxed))
                continue;
            atomic_fetch_add(&s->busy, 1);
            int handled = 0;
            if (atomic_load(&s->state) == SLOT_LIVE && a >= atomic_load(&s->start) &&
                a < atomic_load(&s->end))
                handled = s->fn(si->si_addr, sig, si, uctx, s->arg) == 0;
            atomic_fetch_sub(&s->busy, 1);
            if (handled) {
                errno = saved_errno;
                return;
            }
            break;
        }
    }
    trap_forward(sig, si, uctx);
    errno = saved_errno;
}

/* trap_install_locked -- install the dispatcher for both signals (caller holds trap_lock) */
static int trap_install_locked(void)
{
    struct sigaction sa, old[2];
    if (trap_installed)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = trap_dispatch;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &old[0]) != 0)
        return errno;
    if (sigaction(SIGBUS, &sa, &old[1]) != 0) {
        int rc = errno;
        sigaction(SIGSEGV, &old[0], NULL);
        return rc;
    }
    trap_chain_write(0, &old[0]);
    trap_chain_write(1, &old[1]);
    trap_installed = 1;
    return 0;
}

/* vmp_trap_install -- install the dispatcher now; idempotent */
VMP_API int vmp_trap_install(void)
{
    pthread_mutex_lock(&trap_lock);
    int rc = trap_install_locked();
    pthread_mutex_unlock(&trap_lock);
    return rc;
}

/* vmp_trap_register -- route faults in [addr, addr+len) to fn */
VMP_API int vmp_trap_register(void *addr, size_t len, vmp_trap_fn fn, void *arg, int *id)
{
    if (len == 0 || fn == NULL || id == NULL)
        return EINVAL;
    pthread_mutex_lock(&trap_lock);
    int rc = trap_install_locked();
    if (rc != 0) {
        pthread_mutex_unlock(&trap_lock);
        return rc;
    }
    for (int i = 0; i < VMP_TRAP_MAX_RANGES; i++) {
        struct trap_slot *s = &trap_slots[i];
        int expect = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&s->state, &expect, SLOT_RESERVED))
            continue;
        atomic_store(&s->start, (uintptr_t)addr);
        atomic_store(&s->end, (uintptr_t)addr + len);
        s->fn = fn;
        s->arg = arg;
        if (atomic_load(&trap_hiwater) <= i)
            atomic_store(&trap_hiwater, i + 1);
        atomic_store(&s->state, SLOT_LIVE); /* publish: fields above are visible */
        *id = i;
        pthread_mutex_unlock(&trap_lock);
        return 0;
    }
    pthread_mutex_unlock(&trap_lock);
    return ENOSPC;
}

/* vmp_trap_unregister -- remove a range; waits until no handler runs in it */
VMP_API int vmp_trap_unregister(int id)
{
    if (id < 0 || id >= VMP_TRAP_MAX_RANGES)
        return EINVAL;
    struct trap_slot *s = &trap_slots[id];
    int expect = SLOT_LIVE;
    if (!atomic_compare_exchange_strong(&s->state, &expect, SLOT_DYING))
        return EINVAL;
    while (atomic_load(&s->busy) != 0)
        sched_yield();
    s->fn = NULL;
    s->arg = NULL;
    atomic_store(&s->state, SLOT_FREE);
    return 0;
}

/* vmp_trap_set_chain -- replace the disposition foreign faults are chained to */
VMP_API int vmp_trap_set_chain(int sig, const struct sigaction *act, struct sigaction *oldact)
{
    int idx = trap_sig_index(sig);
    if (idx < 0)
        return EINVAL;
    pthread_mutex_lock(&trap_lock);
    int rc = trap_install_locked();
    if (rc == 0) {
        if (oldact != NULL)
            memcpy(oldact, &trap_chain[idx], sizeof(*oldact));
        if (act != NULL)
            trap_chain_write(idx, act);
    }
    pthread_mutex_unlock(&trap_lock);
    return rc;
}

/* vmp_trap_reclaim -- put the dispatcher back if something replaced it in the kernel without
 * going through vmp_trap_set_chain (a direct rt_sigaction system call): the handler found
 * there becomes the chained one, so the program's own faults still reach it. */
VMP_API int vmp_trap_reclaim(int sig)
{
    int idx = trap_sig_index(sig);
    if (idx < 0)
        return EINVAL;
    pthread_mutex_lock(&trap_lock);
    int rc = 0;
    struct sigaction cur, sa;
    if (trap_installed && sigaction(sig, NULL, &cur) == 0 &&
        !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == trap_dispatch)) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = trap_dispatch;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        /* Chain first: from the moment the dispatcher is back, a foreign fault must find the
         * program's handler behind it, not the one that was there before the replacement. */
        trap_chain_write(idx, &cur);
        rc = sigaction(sig, &sa, NULL) == 0 ? EAGAIN : errno;
    }
    pthread_mutex_unlock(&trap_lock);
    return rc;
}

/* vmp_trap_set_backtrace -- print a backtrace before dying of a genuine crash */
VMP_API int vmp_trap_set_backtrace(int on)
{
#ifndef VMP_HAVE_LIBUNWIND
    if (on)
        return ENOTSUP;
#endif
    atomic_store(&trap_backtrace, on ? 1 : 0);
    return 0;
}
