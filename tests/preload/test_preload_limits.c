/* SPDX-License-Identifier: MIT */
/*
 * test_preload_limits.c -- every entry of docs/limits.md that the shim fixes works with every
 * DIRTY backend, and the limit it detects says so: limits_probe's cases (kernel writes into
 * freshly protected heap pages, handlers and threads that block every signal, glibc's
 * SIGEV_THREAD timers and POSIX aio) each run as their own process under the shim, with
 * wp-async, uffd-sigbus and mprotect. Before the fixes the fault backends failed them with
 * EFAULT or died with SIGBUS/SIGSEGV.
 * Env (from meson): LRVM_TEST_SHIM, LRVM_TEST_LIMITSPROBE.
 */
#include "child.h"

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

/* probe -- limits_probe ARG under the shim with backend b and a fresh segment dir/seg: the
 * cases are independent first runs (a case such as the coroutine stacks leaves globals that
 * rightly cannot be restored, and the next case would be refused before main) */
static struct result probe(const char *dir, const char *backend, const char *arg)
{
    char seg[256], track[64];
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    unlink(seg);
    snprintf(seg, sizeof(seg), "%s/seg.log", dir);
    unlink(seg);
    snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir);
    snprintf(track, sizeof(track), "LRVM_TRACK=%s", backend);
    const char *extra[] = {seg, track, "LRVM_HEAP_SIZE=256M", "LRVM_LOG_SIZE=8M", NULL};
    char *argv[] = {(char *)child_need("LRVM_TEST_LIMITSPROBE"), (char *)arg, NULL};
    return child_run(argv, extra, CHILD_SHIM, NULL, 30000);
}

Test(preload_limits, every_case_every_backend, .timeout = 600)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_LIMITSPROBE"), "list", NULL};
    struct result l = child_run(argv, NULL, 0, NULL, 10000);
    cr_assert_eq(l.status, 0);
    int cases = 0;
    for (size_t b = 0; b < sizeof(backends) / sizeof(*backends); b++) {
        char dir[64];
        child_tdir(dir, sizeof(dir), "limits");
        char *save = NULL, *list = strdup(l.out);
        for (char *c = strtok_r(list, "\n", &save); c; c = strtok_r(NULL, "\n", &save)) {
            struct result r = probe(dir, backends[b], c);
            char want[96];
            snprintf(want, sizeof(want), "%s ok", c);
            cr_expect(r.status == 0 && strstr(r.out, want) != NULL, "%s, %s: status %d\n%s%s",
                      backends[b], c, r.status, r.out, r.err);
            cases++;
            if (strcmp(c, "mq-notify-thread") == 0 && b > 0)
                cr_expect(strstr(r.err, "mq_notify(SIGEV_THREAD) is not supported"),
                          "%s: mq_notify refused without a message: %s", backends[b], r.err);
            if (strcmp(c, "syscall-uname") != 0)
                continue;
            /* the detected limit: wp-async lets the kernel write; the fault backends cannot, and
       * say so, naming the system call */
            if (b == 0)
                cr_expect(strstr(r.out, "worked") != NULL, "%s: %s%s", backends[b], r.out, r.err);
            else
                cr_expect(strstr(r.out, "Bad address") && strstr(r.err, "syscall(63, ...) failed "
                                                                        "with EFAULT"),
                          "%s: no message for the raw system call: %s%s", backends[b], r.out,
                          r.err);
        }
        free(list);
        child_dir_remove(dir);
    }
    cr_log_info("%d cases run", cases);
}
