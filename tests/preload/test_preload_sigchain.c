/* SPDX-License-Identifier: MIT */
/*
 * test_preload_sigchain.c -- however a program installs its SIGSEGV/SIGBUS handler, the shim's
 * fault dispatcher stays first: heap first-writes are taken as such, genuine faults still reach
 * the program's handler.
 *
 * With LRVM_TRACK=uffd-sigbus (SIGBUS) and mprotect (SIGSEGV), the first write of an epoch to a
 * heap page is a fault only the shim's dispatcher may handle. zstd crashed in its first run
 * under both: compiled in strict ISO mode, its `signal(SIGSEGV, ...)` is the C library's
 * __sysv_signal, which reached the kernel past the shim's wrappers and replaced the dispatcher.
 * sigchain_probe installs its handler through each entry point in turn (see its comment);
 * wp-async takes no faults and is run as the control.
 * The handler of a genuine fault may write the heap too (zstd's allocates, in
 * backtrace_symbols): under mprotect it was killed, its signal being blocked while it ran, so
 * that its own first write could not reach the dispatcher.
 * Env (from meson): LRVM_TEST_SHIM, LRVM_TEST_SIGPROBE.
 */
#include "child.h"

static const char *const backends[] = {"uffd-sigbus", "mprotect", "wp-async"};

/* probe_with -- sigchain_probe HOW [THEN] under every backend: exit 3 after "writes done" */
static void probe_with(const char *how, const char *then)
{
    for (size_t b = 0; b < sizeof(backends) / sizeof(*backends); b++) {
        char dir[64], seg[256], track[64];
        child_tdir(dir, sizeof(dir), "sigchain");
        snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir);
        snprintf(track, sizeof(track), "LRVM_TRACK=%s", backends[b]);
        const char *extra[] = {seg, track, "LRVM_GLOBALS=0", "LRVM_LOG_SIZE=32M", NULL};
        char *argv[] = {(char *)child_need("LRVM_TEST_SIGPROBE"), (char *)how, (char *)then, NULL};
        struct result r = child_run(argv, extra, CHILD_SHIM | CHILD_STATS, NULL, 60000);
        cr_expect(strstr(r.out, "writes done") != NULL && r.status == 3,
                  "%s, handler installed with %s: status %d (want 3: heap writes handled by the "
                  "shim, then the deliberate fault reaches the program's handler)\n%s%s",
                  backends[b], how, r.status, r.out, r.err);
        if (then != NULL && strcmp(then, "longjmp") == 0)
            cr_expect(strstr(r.out, "escaped 100 faults") != NULL,
                      "%s: not every fault reached the handler\n%.300s", backends[b], r.err);
        if (strcmp(how, "raw") == 0 && strcmp(backends[b], "wp-async") != 0)
            cr_expect(strstr(r.err, "direct rt_sigaction system call") != NULL,
                      "%s: no message about the replaced handler\n%s", backends[b], r.err);
        if (then != NULL && strcmp(then, "alloc") == 0)
            cr_expect(strstr(r.out, "handler: heap written") != NULL,
                      "%s, %s: the handler's own heap writes did not complete\n%s%s", backends[b],
                      how, r.out, r.err);
        child_dir_remove(dir);
    }
}

static void probe(const char *how)
{
    probe_with(how, NULL);
}

Test(preload_sigchain, sigaction, .timeout = 120)
{
    probe("sigaction");
}
Test(preload_sigchain, signal, .timeout = 120)
{
    probe("signal");
}
Test(preload_sigchain, sysv_signal_as_zstd_does, .timeout = 120)
{
    probe("sysv_signal");
}
Test(preload_sigchain, bsd_signal, .timeout = 120)
{
    probe("bsd_signal");
}
Test(preload_sigchain, ssignal, .timeout = 120)
{
    probe("ssignal");
}
Test(preload_sigchain, sigset, .timeout = 120)
{
    probe("sigset");
}
Test(preload_sigchain, dunder_sigaction, .timeout = 120)
{
    probe("__sigaction");
}
Test(preload_sigchain, syscall_rt_sigaction, .timeout = 120)
{
    probe("syscall");
}
Test(preload_sigchain, handler_writes_heap_sigaction, .timeout = 120)
{
    probe_with("sigaction", "alloc");
}
Test(preload_sigchain, handler_writes_heap_sysv_signal, .timeout = 120)
{
    probe_with("sysv_signal", "alloc");
}

/* The signal mask: entry points of the C library that block signals with an internal call
 * (sighold, sigblock, sigsetmask) and sigsuspend's temporary mask, under which a handler runs */
Test(preload_sigchain, sighold_cannot_block_faults, .timeout = 120)
{
    probe("sighold");
}
Test(preload_sigchain, sigblock_cannot_block_faults, .timeout = 120)
{
    probe("sigblock");
}
Test(preload_sigchain, sigsetmask_cannot_block_faults, .timeout = 120)
{
    probe("sigsetmask");
}
Test(preload_sigchain, handler_inside_sigsuspend, .timeout = 120)
{
    probe("sigsuspend");
}

/* A direct rt_sigaction system call cannot be intercepted: the next commit takes the
 * dispatcher back (with the program's handler behind it) and says so. */
Test(preload_sigchain, raw_system_call_reclaimed_at_commit, .timeout = 120)
{
    probe("raw");
}

/* A handler that crashes itself: the process dies of SIGSEGV after a bounded number of entries
 * (the kernel would kill it at the first; lrvm allows a few, as its handler cannot keep the
 * fault signals blocked), not after recursing through the whole stack */
Test(preload_sigchain, handler_that_crashes_dies, .timeout = 120)
{
    for (size_t b = 0; b < sizeof(backends) / sizeof(*backends); b++) {
        char dir[64], seg[256], track[64];
        child_tdir(dir, sizeof(dir), "sigchain");
        snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir);
        snprintf(track, sizeof(track), "LRVM_TRACK=%s", backends[b]);
        const char *extra[] = {seg, track, "LRVM_GLOBALS=0", "LRVM_LOG_SIZE=32M", NULL};
        char *argv[] = {(char *)child_need("LRVM_TEST_SIGPROBE"), "sigaction", "refault", NULL};
        struct result r = child_run(argv, extra, CHILD_SHIM | CHILD_STATS, NULL, 60000);
        int entries = 0;
        for (const char *p = r.out; (p = strstr(p, "handler:")) != NULL; p++)
            entries++;
        cr_expect(r.status == 128 + SIGSEGV && entries >= 1 && entries <= 16,
                  "%s: status %d after %d entries of the handler (want death by SIGSEGV after "
                  "1 to 16)\n%.300s",
                  backends[b], r.status, entries, r.err);
        child_dir_remove(dir);
    }
}

/* A handler that leaves by siglongjmp, 100 times: each fault reaches it (none is taken for a
 * crash nested in the previous handler, which the bound above must not count) */
Test(preload_sigchain, handler_left_by_siglongjmp, .timeout = 120)
{
    probe_with("sigaction", "longjmp");
}

/* signal() after siginterrupt(sig, 1) installs without SA_RESTART in the C library; the shim's
 * own signal() must too, or a program that relies on an interrupted read (a timeout by alarm)
 * blocks forever. Checked without the shim first, so the expectation is glibc's own. */
Test(preload_sigchain, signal_honours_siginterrupt, .timeout = 60)
{
    for (int shim = 0; shim <= 1; shim++) {
        char dir[64], seg[256];
        child_tdir(dir, sizeof(dir), "sigintr");
        snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir);
        const char *extra[] = {seg, "LRVM_GLOBALS=0", "LRVM_LOG_SIZE=32M", NULL};
        char *argv[] = {(char *)child_need("LRVM_TEST_SIGPROBE"), "restartflags", NULL};
        struct result r = child_run(argv, extra, shim ? CHILD_SHIM : 0, NULL, 30000);
        cr_expect(r.status == 0, "%s: status %d\n%s%s",
                  shim ? "under the shim" : "without the shim", r.status, r.out, r.err);
        child_dir_remove(dir);
    }
}
