/* SPDX-License-Identifier: MIT */
/*
 * test_rds_crash.c -- recovery of an RDS heap after SIGKILL during allocation-heavy
 * transactions. The basher (rds_basher.c) runs random transactions of mallocs, frees,
 * deferred frees and range writes; it is killed at a random moment, restarted (RVM
 * recovery), and on every start it runs the full heap check and checks every block's data
 * against the model before it prints "verified". 200 kills at LRVM_TEST_SCALE=1.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "rds_test.h"

/* spawn -- start the basher with args, its stdout on a pipe; returns the pid */
static pid_t spawn(char *const argv[], int *out)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    *out = fds[0];
    return pid;
}

/* wait_verified -- read until "verified" (the restart recovered and checked the heap);
 * fails the test with the exit status if the basher ends first */
static void wait_verified(pid_t pid, int fd, long round)
{
    char buf[256];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        cr_assert_gt(poll(&p, 1, 60000), 0, "round %ld: basher hangs before verifying", round);
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) {
            int status;
            waitpid(pid, &status, 0);
            cr_assert_fail("round %ld: basher ended before verifying the restored heap "
                           "(status %#x; 3 = inconsistent, message on stderr)",
                           round, status);
        }
        len += (size_t)n;
        buf[len] = 0;
        if (strstr(buf, "verified"))
            return;
        if (len == sizeof(buf) - 1)
            len = 0;
    }
}

Test(rds_crash, kills_during_allocation_heavy_transactions, .timeout = 170)
{
    const char *basher = getenv("RDS_BASHER");
    cr_assert_not_null(basher, "RDS_BASHER is not set (run through meson test)");
    struct rds_env e;
    env_dir(&e);
    char *init[] = {(char *)basher, "init", e.log, e.seg, NULL};
    int fd, status;
    pid_t pid = spawn(init, &fd);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "basher init failed");
    close(fd);
    long rounds = 200 * test_scale();
    unsigned seed = 12345;
    for (long r = 0; r < rounds; r++) {
        char s[32];
        snprintf(s, sizeof(s), "%ld", r + 1);
        char *run[] = {(char *)basher, "run", e.log, e.seg, s, "0", NULL};
        pid = spawn(run, &fd);
        wait_verified(pid, fd, r);
        struct timespec ts = {0, (long)(rand_r(&seed) % 15000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        close(fd);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %ld: basher stopped by itself (status %#x)", r, status);
    }
    /* a last run to its end: verify, work, verify, unload (the log is applied) */
    char *last[] = {(char *)basher, "run", e.log, e.seg, "999", "200", NULL};
    pid = spawn(last, &fd);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(fd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "final run: status %#x", status);
    /* and the segment file alone passes the offline checker */
    const char *rvmutl = getenv("RVMUTL");
    cr_assert_not_null(rvmutl);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "'%s' rds-check '%s' >/dev/null", rvmutl, e.seg);
    cr_assert_eq(system(cmd), 0, "rvmutl rds-check finds the recovered heap damaged");
    env_done(&e);
}
