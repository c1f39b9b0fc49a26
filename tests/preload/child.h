/* SPDX-License-Identifier: MIT */
/*
 * child.h -- running a program under or without liblrvm-preload.so and collecting what it did
 * (exit status, stdout, stderr), for the tests of suite 'preload' that start real programs.
 *
 * The child's environment is the test's own minus LD_PRELOAD and every LRVM_* variable but
 * LRVM_TEST_* (the paths meson gives), so that a setting left in the developer's shell cannot
 * change what a test sees; then, in this order, LD_PRELOAD=$LRVM_TEST_SHIM (CHILD_SHIM),
 * LRVM_STATS=1 (CHILD_STATS: the shim prints its statistics at exit, which tells a test the shim
 * really served the program) and the caller's "NAME=value" settings. Order matters only for a
 * name given twice: getenv returns the first.
 * stdout and stderr go to unlinked temporary files, not pipes: a child filling a pipe while
 * the test waits for it would hang, and the test may read the output while the child runs.
 * stdin is a given file or /dev/null. Programs are started directly, not through `timeout` or
 * a shell, which would take the shim themselves and drop it from their child's environment.
 *
 * Every function is static inline: each test includes this once and uses a part of it, and
 * an unused plain static function would be a warning (an error here).
 */
#ifndef LRVM_TESTS_PRELOAD_CHILD_H
#define LRVM_TESTS_PRELOAD_CHILD_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* child_start's how: bits */
enum {
    CHILD_SHIM = 1,  /* LD_PRELOAD the shim ($LRVM_TEST_SHIM) */
    CHILD_STATS = 2, /* LRVM_STATS=1 */
};

/* struct child -- a started program: its pid and the files holding its stdout and stderr */
struct child {
    pid_t pid;
    int ofd, efd;
};

/* struct result -- what a program did */
struct result {
    int status; /* exit status, 128 + signal if killed, -1 if timed out (then killed) */
    char *out;  /* its stdout, NUL-terminated, malloc'ed */
    char *err;  /* its stderr, likewise */
};

/* child_need -- the value of a variable meson sets for the test (a program's path); fails the
 * test, saying so, when run outside meson */
static inline const char *child_need(const char *var)
{
    const char *v = getenv(var);
    cr_assert(v && *v, "%s not set: run through meson test", var);
    return v;
}

/* child_slurp -- the whole of fd from offset 0 as a NUL-terminated malloc'ed string; fd stays
 * open (a test may read a running child's output again later) */
static inline char *child_slurp(int fd)
{
    struct stat st;
    cr_assert(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
    char *b = malloc((size_t)st.st_size + 1);
    cr_assert(b);
    ssize_t n = pread(fd, b, (size_t)st.st_size, 0);
    b[n > 0 ? n : 0] = 0;
    return b;
}

/* child_tmpfd -- an unlinked temporary file open for reading and writing */
static inline int child_tmpfd(void)
{
    char p[] = "/tmp/lrvm-child-XXXXXX";
    int fd = mkstemp(p);
    cr_assert(fd >= 0, "mkstemp %s: %s", p, strerror(errno));
    unlink(p);
    return fd;
}

/* child_nap_ms -- sleep ms milliseconds */
static inline void child_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* child_start -- fork and execve argv[0] (a path) with the environment described above, extra
 * a NULL-terminated list of "NAME=value" (or NULL), how a set of CHILD_* bits; stdin from
 * in_path (NULL: /dev/null). An exec failure shows as status 127 and a line on its stderr. */
static inline struct child child_start(char *const argv[], const char *const extra[], int how,
                                       const char *in_path)
{
    size_t n = 0, x = 0;
    for (char **e = environ; *e; e++)
        n++;
    while (extra && extra[x])
        x++;
    const char **env = calloc(n + x + 3, sizeof(*env));
    cr_assert(env);
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) &&
            (strncmp(*e, "LRVM_", 5) || !strncmp(*e, "LRVM_TEST_", 10)))
            env[k++] = *e;
    char pre[4200];
    if (how & CHILD_SHIM) {
        const char *so = child_need("LRVM_TEST_SHIM");
        cr_assert((size_t)snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", so) < sizeof(pre),
                  "LRVM_TEST_SHIM is too long: %s", so);
        env[k++] = pre;
    }
    if (how & CHILD_STATS)
        env[k++] = "LRVM_STATS=1";
    for (size_t i = 0; i < x; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    struct child c = {.ofd = child_tmpfd(), .efd = child_tmpfd()};
    c.pid = fork();
    cr_assert(c.pid >= 0, "fork: %s", strerror(errno));
    if (c.pid == 0) {
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(c.ofd, 1);
        dup2(c.efd, 2);
        execve(argv[0], argv, (char *const *)env);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(env);
    return c;
}

/* child_finish -- wait for c, SIGKILLing it once timeout_ms have passed (status -1: how a hang
 * shows), then collect its output and close its files. Polls every millisecond against the
 * monotonic clock, so a slow run is measured in real time, not in loop turns. */
static inline struct result child_finish(struct child c, long timeout_ms)
{
    struct result r = {.status = -1};
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st;
    for (;;) {
        if (waitpid(c.pid, &st, WNOHANG) == c.pid) {
            r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L;
        if (ms >= timeout_ms) {
            kill(c.pid, SIGKILL);
            waitpid(c.pid, &st, 0);
            break;
        }
        child_nap_ms(1);
    }
    r.out = child_slurp(c.ofd);
    r.err = child_slurp(c.efd);
    close(c.ofd);
    close(c.efd);
    return r;
}

/* child_run -- child_start then child_finish */
static inline struct result child_run(char *const argv[], const char *const extra[], int how,
                                      const char *in_path, long timeout_ms)
{
    return child_finish(child_start(argv, extra, how, in_path), timeout_ms);
}

/* child_tdir -- a fresh temporary directory /tmp/lrvm-<tag>-dir-XXXXXX in dir (size bytes) */
static inline void child_tdir(char *dir, size_t size, const char *tag)
{
    cr_assert((size_t)snprintf(dir, size, "/tmp/lrvm-%s-dir-XXXXXX", tag) < size);
    cr_assert(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

/* child_dir_remove -- remove a test's temporary directory and everything in it */
static inline void child_dir_remove(const char *dir)
{
    char cmd[256];
    cr_assert((size_t)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir) < sizeof(cmd));
    cr_expect_eq(system(cmd), 0);
}

/* child_live_records -- the live records `rvmutl status` ($LRVM_TEST_RVMUTL) reports for
 * dir/seg.log, or -1 if it could not tell (rvmutl's output is then in the failed expectation) */
static inline long child_live_records(const char *dir)
{
    char log[300];
    cr_assert((size_t)snprintf(log, sizeof(log), "%s/seg.log", dir) < sizeof(log));
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "status", log, NULL};
    struct result r = child_run(argv, NULL, 0, NULL, 60000);
    const char *at = strstr(r.out, " live record(s)");
    long n = -1;
    if (r.status == 0 && at != NULL) {
        while (at > r.out && at[-1] >= '0' && at[-1] <= '9')
            at--;
        n = atol(at);
    }
    cr_expect_geq(n, 0, "rvmutl status %s (status %d):\n%s\n%s", log, r.status, r.out, r.err);
    free(r.out);
    free(r.err);
    return n;
}

#endif
