/* SPDX-License-Identifier: MIT */
/*
 * test_trap.c -- TRAP: dispatch to registered ranges, chaining to the handler installed
 * before ours (SA_SIGINFO, plain, SIG_IGN, SIG_DFL), the shim hook vmp_trap_set_chain, and
 * genuine crashes that must still crash (with a backtrace when asked).
 * Criterion runs each test in its own process, so each sees a fresh signal disposition.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static char *app_page;
static atomic_int app_calls, our_calls;
static sigjmp_buf app_jmp;

/* no_core -- genuine-crash tests must not leave core files behind */
static void no_core(void)
{
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
}

/* app_siginfo -- an application's SA_SIGINFO handler: fixes its own page */
static void app_siginfo(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig == SIGSEGV && (char *)si->si_addr == app_page) {
        atomic_fetch_add(&app_calls, 1);
        mprotect(app_page, vmp_page_size(), PROT_READ | PROT_WRITE);
    }
}

/* app_plain -- an application's plain handler: escapes with siglongjmp */
static void app_plain(int sig)
{
    atomic_fetch_add(&app_calls, 1);
    siglongjmp(app_jmp, sig);
}

/* our_fn -- a vmprim range handler that unprotects the faulting page */
static int our_fn(void *addr, int sig, siginfo_t *si, void *uctx, void *arg)
{
    (void)sig, (void)si, (void)uctx, (void)arg;
    atomic_fetch_add(&our_calls, 1);
    size_t ps = vmp_page_size();
    return vmp_unprot((void *)((uintptr_t)addr & ~(ps - 1)), ps);
}

/* two_pages -- a PROT_NONE page for the application and one registered with vmprim */
static char *two_pages(int *id)
{
    size_t ps = vmp_page_size();
    char *m = test_map(2 * ps);
    app_page = m;
    cr_assert_eq(mprotect(m, 2 * ps, PROT_NONE), 0);
    cr_assert_eq(vmp_trap_register(m + ps, ps, our_fn, NULL, id), 0);
    return m;
}

Test(trap, chain_to_prior_siginfo_handler)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = app_siginfo;
    sa.sa_flags = SA_SIGINFO;
    cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    int id;
    char *m = two_pages(&id); /* installs the dispatcher after the app's handler */
    m[0] = 1;                 /* outside our ranges: the app's handler */
    cr_assert_eq(atomic_load(&app_calls), 1);
    cr_assert_eq(atomic_load(&our_calls), 0);
    m[vmp_page_size()] = 2; /* ours */
    cr_assert_eq(atomic_load(&our_calls), 1);
    cr_assert_eq(atomic_load(&app_calls), 1);
    cr_assert(m[0] == 1 && m[vmp_page_size()] == 2);
    /* the dispatcher is installed with SA_SIGINFO|SA_ONSTACK */
    struct sigaction cur;
    sigaction(SIGSEGV, NULL, &cur);
    cr_assert((cur.sa_flags & (SA_SIGINFO | SA_ONSTACK)) == (SA_SIGINFO | SA_ONSTACK));
    cr_assert_eq(vmp_trap_unregister(id), 0);
    cr_assert_eq(vmp_trap_unregister(id), EINVAL);
}

Test(trap, chain_to_prior_plain_handler)
{
    signal(SIGSEGV, app_plain);
    int id;
    char *m = two_pages(&id);
    if (sigsetjmp(app_jmp, 1) == 0) {
        m[0] = 1;
        cr_assert_fail("the write should have faulted");
    }
    cr_assert_eq(atomic_load(&app_calls), 1);
    m[vmp_page_size()] = 2;
    cr_assert_eq(atomic_load(&our_calls), 1);
}

Test(trap, set_chain_routes_new_app_handler)
{
    int id;
    char *m = two_pages(&id);
    struct sigaction sa = {0}, old;
    sa.sa_sigaction = app_siginfo;
    sa.sa_flags = SA_SIGINFO;
    /* what an LD_PRELOAD shim's sigaction wrapper does: */
    cr_assert_eq(vmp_trap_set_chain(SIGSEGV, &sa, &old), 0);
    cr_assert_eq(old.sa_handler, SIG_DFL, "the previous disposition is reported");
    cr_assert_eq(vmp_trap_set_chain(SIGINT, &sa, NULL), EINVAL);
    m[0] = 1;
    cr_assert_eq(atomic_load(&app_calls), 1);
    m[vmp_page_size()] = 1;
    cr_assert_eq(atomic_load(&our_calls), 1);
}

/* SIGBUS outside our ranges (access past the end of a file) reaches the app's handler */
Test(trap, chain_sigbus)
{
    size_t ps = vmp_page_size();
    signal(SIGBUS, app_plain);
    cr_assert_eq(vmp_trap_install(), 0);
    int fd = memfd_create("trap-bus", MFD_CLOEXEC);
    cr_assert_eq(ftruncate(fd, (off_t)ps), 0);
    char *m = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(ftruncate(fd, 0), 0);
    volatile int got = sigsetjmp(app_jmp, 1);
    if (got == 0) {
        m[0] = 1;
        cr_assert_fail("no SIGBUS");
    }
    cr_assert_eq(got, SIGBUS);
    cr_assert_eq(atomic_load(&app_calls), 1);
}

/* null_store -- a real NULL dereference (UBSan would stop it before the fault: opt out) */
__attribute__((noinline, no_sanitize("undefined"))) static void null_store(void)
{
    volatile uintptr_t zero = 0;
    *(volatile int *)zero = 1;
}

Test(trap, null_dereference_still_dies, .signal = SIGSEGV)
{
    int id;
    no_core();
    two_pages(&id);
    null_store();
}

Test(trap, fault_with_prior_sig_ign_still_dies, .signal = SIGSEGV)
{
    int id;
    no_core();
    signal(SIGSEGV, SIG_IGN);
    two_pages(&id);
    volatile uintptr_t bad = 16;
    *(volatile int *)bad = 1;
}

Test(trap, backtrace_on_genuine_crash)
{
    int pfd[2];
    if (vmp_trap_set_backtrace(1) == ENOTSUP)
        cr_skip_test("vmprim built without libunwind");
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        no_core();
        dup2(pfd[1], 2);
        /* no Criterion asserts in this child: it is not a test process */
        int id;
        size_t ps = vmp_page_size();
        char *m = mmap(NULL, ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED || vmp_trap_register(m, ps, our_fn, NULL, &id) != 0)
            _exit(3);
        null_store(); /* a named frame the backtrace must show */
        _exit(4);
    }
    close(pfd[1]);
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(buf) - 1 && (r = read(pfd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status %#x, stderr: %s", st, buf);
    cr_assert_not_null(strstr(buf, "vmprim: fatal SIGSEGV at 0x0"), "stderr: %s", buf);
    cr_assert_not_null(strstr(buf, "vmprim: backtrace"), "stderr: %s", buf);
    cr_assert_not_null(strstr(buf, "null_store"), "stderr: %s", buf);
}

Test(trap, table_capacity)
{
    size_t ps = vmp_page_size();
    char *m = test_map((VMP_TRAP_MAX_RANGES + 1) * ps);
    int ids[VMP_TRAP_MAX_RANGES + 1], n = 0;
    while (n <= VMP_TRAP_MAX_RANGES &&
           vmp_trap_register(m + (size_t)n * ps, ps, our_fn, NULL, &ids[n]) == 0)
        n++;
    cr_assert_eq(n, VMP_TRAP_MAX_RANGES, "capacity %d, want VMP_TRAP_MAX_RANGES", n);
    cr_assert_eq(vmp_trap_register(m, ps, our_fn, NULL, &ids[n]), ENOSPC);
    cr_assert_eq(vmp_trap_unregister(ids[7]), 0);
    cr_assert_eq(vmp_trap_register(m + 7 * ps, ps, our_fn, NULL, &ids[7]), 0, "slot reused");
    /* the registered ranges all work */
    cr_assert_eq(mprotect(m, 8 * ps, PROT_NONE), 0);
    for (int i = 0; i < 8; i++)
        m[(size_t)i * ps] = 1;
    cr_assert_eq(atomic_load(&our_calls), 8);
}
