/* SPDX-License-Identifier: MIT */
/*
 * sigchain_probe.c -- a program that installs its own SIGSEGV and SIGBUS handler through one
 * of the C library's many entry points, then writes heap memory, then faults on purpose.
 *
 *   sigchain_probe HOW [alloc]
 *
 * HOW names the entry point: sigaction, signal, sysv_signal (what `signal` becomes when a
 * program is compiled in strict ISO/POSIX mode, e.g. -std=c99: zstd does this), bsd_signal,
 * ssignal, sigset, __sigaction, syscall (syscall(SYS_rt_sigaction, ...) through the C library)
 * or raw (the rt_sigaction system call issued directly, as Go's runtime does: no wrapper can
 * see it, so the probe makes it after its first round of writes and before the rvm_commit,
 * where the shim must notice it and take its dispatcher back).
 * The signal mask is the other way to keep a fault from the dispatcher: with HOW sighold,
 * sigblock or sigsetmask the probe installs its handler with sigaction and then tries to block
 * SIGSEGV and SIGBUS that way before the second round of writes; with sigsuspend the second
 * round is made by a SIGALRM handler that runs inside sigsuspend(every signal but SIGALRM).
 *
 * Under the shim with a fault backend the heap writes are first writes to protected pages. They
 * must be taken by the shim as such and never reach the program's handler: if they do, the
 * handler says so and exits 4. Then a store into a PROT_NONE page of the probe's own is a
 * genuine fault that must reach the handler, which exits 3. So: exit 3 and "writes done" on
 * stdout is right; exit 4, or death by the signal, is the bug. With "alloc", the handler of the
 * deliberate fault also allocates and writes 1 MiB of heap (as zstd's does) before exiting;
 * with "refault" it faults itself (the process must die of SIGSEGV after a bounded number of
 * entries); with "longjmp" it leaves by siglongjmp, 100 times, and the probe exits 3.
 * HOW restartflags checks something else: that signal() honours siginterrupt (see
 * restart_flags).
 * The probe calls rvm_commit (found with dlsym, as any program may) between two rounds of
 * writes, so that the second round is made of first writes of a new commit epoch too.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef void (*handler_fn)(int);

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000 /* the kernel's flag; <signal.h> does not define it */
#endif

/* The library's names, declared here by assembler name: some are deprecated or hidden by the
 * feature-test macros in <signal.h>, and this probe must call exactly these symbols. */
extern handler_fn probe_sysv_signal(int, handler_fn) __asm__("__sysv_signal");
extern handler_fn probe_bsd_signal(int, handler_fn) __asm__("bsd_signal");
extern handler_fn probe_ssignal(int, handler_fn) __asm__("ssignal");
extern handler_fn probe_sigset(int, handler_fn) __asm__("sigset");
extern int probe___sigaction(int, const struct sigaction *,
                             struct sigaction *) __asm__("__sigaction");
extern int probe_sighold(int) __asm__("sighold");
extern int probe_sigblock(int) __asm__("sigblock");
extern int probe_sigsetmask(int) __asm__("sigsetmask");
extern int probe_siginterrupt(int, int) __asm__("siginterrupt");

static char *alarm_buf; /* written by on_alarm */
static size_t alarm_len;

/* on_alarm -- a handler that writes the heap, run inside sigsuspend */
static void on_alarm(int sig)
{
    (void)sig;
    for (size_t i = 0; i < alarm_len; i += 4096)
        alarm_buf[i] = 9;
}

/* block_faults -- the masks side: HOW blocks SIGSEGV and SIGBUS through an entry point that
 * must not be able to, with a fault backend (the heap writes that follow would kill the
 * process); 0 for the ways that install a handler, -1 on error */
static int block_faults(const char *how)
{
    int bits = (1 << (SIGSEGV - 1)) | (1 << (SIGBUS - 1));
    if (strcmp(how, "sighold") == 0)
        return probe_sighold(SIGSEGV) | probe_sighold(SIGBUS);
    if (strcmp(how, "sigblock") == 0)
        return probe_sigblock(bits) == -1 ? -1 : 0;
    if (strcmp(how, "sigsetmask") == 0)
        return probe_sigsetmask(bits) == -1 ? -1 : 0;
    return 0;
}

/* suspend_and_write -- HOW "sigsuspend": a SIGALRM handler writes `len` bytes of heap while
 * sigsuspend waits with every other signal blocked (a common idiom) */
static int suspend_and_write(char *buf, size_t len)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigset_t alrm, wait;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    if (sigaction(SIGALRM, &sa, NULL) != 0 || sigprocmask(SIG_BLOCK, &alrm, NULL) != 0)
        return -1;
    alarm_buf = buf;
    alarm_len = len;
    raise(SIGALRM); /* pending until sigsuspend lets it in */
    sigfillset(&wait);
    sigdelset(&wait, SIGALRM);
    sigsuspend(&wait);
    return 0;
}

static volatile sig_atomic_t armed; /* set just before the deliberate fault */
static const char *then = "";       /* second argument: what the handler does then */
static sigjmp_buf escape;           /* for "longjmp" */
static char *volatile trap_page;    /* PROT_NONE: the deliberate fault */

/* touch -- one store into every page of buf */
static void touch(volatile char *buf, size_t len, char v)
{
    for (size_t i = 0; i < len; i += 4096)
        buf[i] = v;
}

/* on_fault -- the program's handler: a fault it did not ask for is the bug */
static void on_fault(int sig)
{
    const char *m = armed ? "handler: the deliberate fault\n"
                          : "handler: called for a heap write (the shim lost the fault)\n";
    if (write(1, m, strlen(m)) < 0)
        _exit(5);
    if (armed && strcmp(then, "refault") == 0)
        *(volatile char *)trap_page = 1; /* a crash inside the handler: must end the process */
    if (armed && strcmp(then, "longjmp") == 0)
        siglongjmp(escape, 1);
    if (armed && strcmp(then, "alloc") == 0) {
        /* What zstd's handler does (backtrace_symbols allocates): heap first writes from inside
     * the handler of a genuine fault must be taken by the shim as well. Not async-signal-safe
     * in general; fine here, the fault is not inside malloc. */
        size_t n = 1u << 20;
        char *p = malloc(n);
        if (p == NULL)
            _exit(5);
        touch(p, n, 7);
        if (write(1, "handler: heap written\n", 22) < 0)
            _exit(5);
    }
    _exit(armed ? 3 : (sig == SIGSEGV || sig == SIGBUS) ? 4 : 5);
}

/* kernel_sigaction -- the rt_sigaction system call's own struct (not libc's) */
struct kernel_sigaction {
    handler_fn handler;
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

/* raw_rt_sigaction -- rt_sigaction without the C library */
static long raw_rt_sigaction(int sig, const struct kernel_sigaction *act)
{
    long ret;
    register long r10 __asm__("r10") = 8;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"((long)SYS_rt_sigaction), "D"((long)sig), "S"(act), "d"(0L), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

/* install -- on_fault for sig, the way HOW says; 0 or -1 */
static int install(const char *how, int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    if (strcmp(how, "sigaction") == 0 || strcmp(how, "sighold") == 0 ||
        strcmp(how, "sigblock") == 0 || strcmp(how, "sigsetmask") == 0 ||
        strcmp(how, "sigsuspend") == 0)
        return sigaction(sig, &sa, NULL);
    if (strcmp(how, "__sigaction") == 0)
        return probe___sigaction(sig, &sa, NULL);
    if (strcmp(how, "signal") == 0)
        return signal(sig, on_fault) == SIG_ERR ? -1 : 0;
    if (strcmp(how, "sysv_signal") == 0)
        return probe_sysv_signal(sig, on_fault) == SIG_ERR ? -1 : 0;
    if (strcmp(how, "bsd_signal") == 0)
        return probe_bsd_signal(sig, on_fault) == SIG_ERR ? -1 : 0;
    if (strcmp(how, "ssignal") == 0)
        return probe_ssignal(sig, on_fault) == SIG_ERR ? -1 : 0;
    if (strcmp(how, "sigset") == 0)
        return probe_sigset(sig, on_fault) == SIG_ERR ? -1 : 0;
    /* The kernel's struct. x86-64 cannot deliver a signal without a restorer (the code the
   * handler returns to): take the C library's, which a query of a handler it installed shows. */
    struct sigaction cur;
    memset(&cur, 0, sizeof(cur));
    cur.sa_handler = on_fault;
    if (sigaction(SIGUSR2, &cur, NULL) != 0 || sigaction(SIGUSR2, NULL, &cur) != 0)
        return -1;
    struct kernel_sigaction k = {on_fault, SA_RESTORER, cur.sa_restorer, 0};
    if (strcmp(how, "syscall") == 0)
        return (int)syscall(SYS_rt_sigaction, sig, &k, NULL, 8);
    if (strcmp(how, "raw") == 0)
        return raw_rt_sigaction(sig, &k) == 0 ? 0 : -1;
    fprintf(stderr, "sigchain_probe: unknown way '%s'\n", how);
    exit(2);
}

/* restart_flags -- HOW "restartflags": does signal() (and its aliases) honour siginterrupt as
 * the C library's does? glibc remembers siginterrupt(sig, 1) and installs later signal()
 * handlers of sig without SA_RESTART, so that a blocking read is interrupted. Exit 0 when
 * every case matches, 1 (with the case on stderr) otherwise. */
static int has_restart(int sig)
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0)
        return -1;
    return (cur.sa_flags & SA_RESTART) != 0;
}

static void on_usr(int sig)
{
    (void)sig;
}

static int restart_flags(void)
{
    struct {
        const char *what;
        int got, want;
    } c[6];
    int n = 0;
    signal(SIGUSR1, on_usr);
    c[n++] = (typeof(c[0])){"signal() by default", has_restart(SIGUSR1), 1};
    probe_siginterrupt(SIGUSR1, 1);
    c[n++] = (typeof(c[0])){"siginterrupt(1) on the installed handler", has_restart(SIGUSR1), 0};
    signal(SIGUSR1, on_usr);
    c[n++] = (typeof(c[0])){"signal() after siginterrupt(1)", has_restart(SIGUSR1), 0};
    probe_bsd_signal(SIGUSR1, on_usr);
    c[n++] = (typeof(c[0])){"bsd_signal() after siginterrupt(1)", has_restart(SIGUSR1), 0};
    probe_siginterrupt(SIGUSR1, 0);
    signal(SIGUSR1, on_usr);
    c[n++] = (typeof(c[0])){"signal() after siginterrupt(0)", has_restart(SIGUSR1), 1};
    signal(SIGUSR2, on_usr);
    c[n++] = (typeof(c[0])){"signal() of another signal", has_restart(SIGUSR2), 1};
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (c[i].got != c[i].want) {
            fprintf(stderr, "sigchain_probe: %s: SA_RESTART %s\n", c[i].what,
                    c[i].got ? "set" : "clear");
            bad = 1;
        }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: sigchain_probe HOW [alloc|refault|longjmp]\n");
        return 2;
    }
    if (strcmp(argv[1], "restartflags") == 0)
        return restart_flags();
    if (argc == 3)
        then = argv[2];
    int raw = strcmp(argv[1], "raw") == 0;
    if (!raw && (install(argv[1], SIGSEGV) != 0 || install(argv[1], SIGBUS) != 0)) {
        perror("sigchain_probe: install");
        return 2;
    }
    size_t len = 4u << 20;
    char *buf = malloc(len);
    if (!buf)
        return 2;
    touch(buf, len, 1);
    /* "raw": the handler is installed past every wrapper now, between writes of one epoch and
   * the commit that must take the dispatcher back before the next epoch's first writes */
    if (raw && (install(argv[1], SIGSEGV) != 0 || install(argv[1], SIGBUS) != 0)) {
        perror("sigchain_probe: install");
        return 2;
    }
    int (*commit)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "rvm_commit");
    if (commit && commit() != 0) {
        fprintf(stderr, "sigchain_probe: rvm_commit failed\n");
        return 2;
    }
    if (block_faults(argv[1]) != 0) {
        perror("sigchain_probe: block");
        return 2;
    }
    if (strcmp(argv[1], "sigsuspend") == 0) {
        if (suspend_and_write(buf, len) != 0) {
            perror("sigchain_probe: sigsuspend");
            return 2;
        }
    } else
        touch(buf, len, 2);
    printf("writes done\n");
    fflush(stdout);
    /* A genuine fault while blocked is fatal: let the deliberate one reach the handler. */
    sigset_t faults;
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    sigprocmask(SIG_UNBLOCK, &faults, NULL);

    char *trap = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (trap == MAP_FAILED)
        return 2;
    trap_page = trap;
    armed = 1;
    if (strcmp(then, "longjmp") == 0) {
        /* 100 genuine faults, each left by siglongjmp: none is nested in another */
        static volatile int escapes;
        sigsetjmp(escape, 1);
        if (escapes++ < 100)
            *(volatile char *)trap = 1;
        printf("escaped %d faults\n", escapes - 1);
        return 3;
    }
    *(volatile char *)trap = 1;
    printf("the deliberate fault did not reach the handler\n");
    return 6;
}
