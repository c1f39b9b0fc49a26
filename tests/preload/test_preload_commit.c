/* SPDX-License-Identifier: MIT */
/*
 * test_preload_commit.c -- what a commit of an unmodified program guarantees, on every DIRTY
 * backend (the user's side of it is docs/commits.md):
 *   instant        a commit is one instant across threads, heap pages and globals, in a first
 *                  run and in restarted runs
 *   no_hang        periodic commits while the program keeps creating and ending threads never
 *                  deadlock (a thread's exit flushes its heap cache while a commit holds the heap)
 *   no_flush_exit  LRVM_FLUSH=0: explicit commits survive a clean exit, also without an exit
 *                  commit (LRVM_COMMIT=none)
 *   own_sigusr1    a program's own handler of the commit signal keeps the signal commit working
 *                  and is called too
 *   exit_failure   an exit commit that fails makes the process exit non-zero and say so
 * Programs: tests/preload/commit_probe.c and examples/todo.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

/* scale -- LRVM_TEST_SCALE (default 1): multiplies the trials of the tortures */
static int scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* the settings of one backend's persistent runs */
struct cfg {
    char seg[256], track[64];
    const char *extra[10];
};

/* cfg_init -- segment in dir, backend, small heap and log, up to three more settings */
static void cfg_init(struct cfg *c, const char *dir, const char *backend, const char *m1,
                     const char *m2, const char *m3)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->seg, sizeof(c->seg), "LRVM_SEGMENT=%s/seg", dir);
    snprintf(c->track, sizeof(c->track), "LRVM_TRACK=%s", backend);
    const char *e[] = {c->seg, c->track, "LRVM_HEAP_SIZE=256M", m1, m2, m3};
    size_t k = 0;
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
        if (e[i] != NULL)
            c->extra[k++] = e[i];
    c->extra[k] = NULL;
}

/* wipe -- remove the segment and its log of dir (a fresh start) */
static void wipe(const char *dir)
{
    char p[300];
    snprintf(p, sizeof(p), "%s/seg", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/seg.log", dir);
    unlink(p);
}

/* free_result -- release a result's buffers */
static void free_result(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* instant_runs -- `runs` runs of commit_probe MODE 40 on one fresh segment with commits
 * `commit`; each run judges the commit it starts from. Returns the number of torn starts. */
static int instant_runs(const char *dir, const char *backend, const char *mode, const char *commit,
                        int runs)
{
    const char *probe = child_need("LRVM_TEST_COMMITPROBE");
    struct cfg c;
    cfg_init(&c, dir, backend, commit, "LRVM_LOG_SIZE=16M", NULL);
    wipe(dir);
    int torn = 0;
    for (int k = 0; k < runs; k++) {
        char *argv[] = {(char *)probe, (char *)mode, "40", NULL};
        struct result r = child_run(argv, c.extra, CHILD_SHIM, NULL, 60000);
        cr_expect_eq(r.status, 0, "%s %s run %d: status %d\n%s\n%s", backend, mode, k, r.status,
                     r.out, r.err);
        if (strstr(r.out, " ok\n") == NULL) {
            torn++;
            cr_expect(0, "%s %s run %d started from a commit that is not one instant: %s%s",
                      backend, mode, k, r.out, r.err);
        }
        free_result(&r);
    }
    return torn;
}

/* A writer thread keeps a >= c >= b >= d >= a - 1 (a, b heap words on two pages; c, d
 * globals) at every instant while main commits every 2 ms (explicit rvm_commit), or while the
 * shim commits every 3 ms (interval); each run checks the commit it starts from. Runs restart
 * on one segment, so every run but the first is a restarted one. */
Test(preload_commit, instant, .timeout = 240)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "commit-instant");
    int torn = 0;
    for (size_t b = 0; b < 3; b++) {
        torn += instant_runs(dir, backends[b], "instant", "LRVM_COMMIT=none", 6 * scale());
        torn += instant_runs(dir, backends[b], "instant-quiet", "LRVM_COMMIT=interval:3ms",
                             3 * scale());
    }
    cr_expect_eq(torn, 0);
    child_dir_remove(dir);
}

/* Threads made and joined all the time (their exits flush heap caches) under 5 ms interval
 * commits: every run must end, and end well. Short runs: each run's first commits are the
 * likeliest to meet an exiting thread on a lock, and so is the first commit of each thread
 * that calls rvm_commit. */
Test(preload_commit, no_hang, .timeout = 300)
{
    const char *probe = child_need("LRVM_TEST_COMMITPROBE");
    char dir[128];
    child_tdir(dir, sizeof(dir), "commit-hang");
    int runs = 6 * scale();
    for (size_t b = 0; b < 3; b++) {
        struct cfg c;
        cfg_init(&c, dir, backends[b], "LRVM_COMMIT=exit,interval:5ms", "LRVM_LOG_SIZE=16M", NULL);
        int hung = 0;
        for (int k = 0; k < runs; k++) {
            char *argv[] = {(char *)probe, "threads", "150", NULL};
            struct result r = child_run(argv, c.extra, CHILD_SHIM, NULL, 5000);
            if (r.status == -1)
                hung++;
            else
                cr_expect_eq(r.status, 0, "%s run %d: status %d\n%s\n%s", backends[b], k, r.status,
                             r.out, r.err);
            free_result(&r);
        }
        cr_expect_eq(hung, 0, "%s: %d of %d runs hung (killed after 5 s)", backends[b], hung, runs);
    }
    child_dir_remove(dir);
}

/* todo_run -- examples/todo with args under the shim, LRVM_FLUSH=0, LRVM_COMMIT=none */
static struct result todo_run(const char *dir, const char *backend, char *const args[])
{
    struct cfg c;
    cfg_init(&c, dir, backend, "LRVM_COMMIT=none", "LRVM_FLUSH=0", "LRVM_LOG_SIZE=4M");
    char *argv[8] = {(char *)child_need("LRVM_TEST_TODO")};
    for (int i = 0; args[i] != NULL && i < 6; i++)
        argv[i + 1] = args[i];
    return child_run(argv, c.extra, CHILD_SHIM, NULL, 60000);
}

/* no_flush commits may be lost by a crash, never by a clean exit: the program's explicit
 * commits are durable once it has returned from main, also without an exit commit */
Test(preload_commit, no_flush_exit, .timeout = 120)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "commit-noflush");
    for (size_t b = 0; b < 3; b++) {
        wipe(dir);
        char *add[] = {"add", "milk", "bread", NULL};
        struct result r = todo_run(dir, backends[b], add);
        cr_expect_eq(r.status, 0, "%s: add: %d\n%s\n%s", backends[b], r.status, r.out, r.err);
        free_result(&r);
        char *list[] = {"list", NULL};
        r = todo_run(dir, backends[b], list);
        cr_expect_eq(r.status, 0, "%s: list: %d\n%s\n%s", backends[b], r.status, r.out, r.err);
        cr_expect(strstr(r.out, "milk") && strstr(r.out, "bread"),
                  "%s: the explicit commits of the first run were lost at its clean exit:\n%s\n%s",
                  backends[b], r.out, r.err);
        free_result(&r);
    }
    child_dir_remove(dir);
}

/* The program installs its own SIGUSR1 handler and raises SIGUSR1 with a heap counter at 41,
 * then sets it to 42 and leaves with _exit (no exit commit): the next run must start from 41
 * (the signal's commit was made) and the program's handler must have run. */
Test(preload_commit, own_sigusr1, .timeout = 120)
{
    const char *probe = child_need("LRVM_TEST_COMMITPROBE");
    char dir[128];
    child_tdir(dir, sizeof(dir), "commit-usr1");
    for (size_t b = 0; b < 3; b++) {
        struct cfg c;
        cfg_init(&c, dir, backends[b], "LRVM_COMMIT=signal", "LRVM_LOG_SIZE=4M", NULL);
        wipe(dir);
        char *argv[] = {(char *)probe, "sigusr1", NULL};
        struct result r = child_run(argv, c.extra, CHILD_SHIM, NULL, 60000);
        cr_expect_eq(r.status, 0, "%s: status %d\n%s\n%s", backends[b], r.status, r.out, r.err);
        cr_expect(strstr(r.out, "handler 1\n") != NULL,
                  "%s: the program's handler did not run "
                  "once:\n%s\n%s",
                  backends[b], r.out, r.err);
        free_result(&r);
        r = child_run(argv, c.extra, CHILD_SHIM, NULL, 60000);
        cr_expect(strstr(r.out, "start 41\n") != NULL,
                  "%s: the signal commit was not made (the "
                  "program's own SIGUSR1 handler replaced it?):\n%s\n%s",
                  backends[b], r.out, r.err);
        free_result(&r);
    }
    child_dir_remove(dir);
}

/* An exit commit that cannot be made (8 MiB of changes, a 1 MiB log that may not grow) must
 * not look like success: the status is non-zero and stderr says that the run's changes were
 * lost. */
Test(preload_commit, exit_failure, .timeout = 120)
{
    const char *probe = child_need("LRVM_TEST_COMMITPROBE");
    char dir[128];
    child_tdir(dir, sizeof(dir), "commit-exitfail");
    for (size_t b = 0; b < 3; b++) {
        struct cfg c;
        cfg_init(&c, dir, backends[b], "LRVM_COMMIT=exit", "LRVM_LOG_SIZE=1M", "LRVM_LOG_MAX=1M");
        wipe(dir);
        char *argv[] = {(char *)probe, "big", "8", NULL};
        struct result r = child_run(argv, c.extra, CHILD_SHIM, NULL, 60000);
        cr_expect(strstr(r.out, "wrote 8 MiB") != NULL, "%s: %s\n%s", backends[b], r.out, r.err);
        cr_expect_neq(r.status, 0, "%s: the exit commit failed but the process exited 0:\n%s",
                      backends[b], r.err);
        cr_expect(strstr(r.err, "not committed") != NULL,
                  "%s: stderr does not say what was "
                  "lost:\n%s",
                  backends[b], r.err);
        free_result(&r);
    }
    child_dir_remove(dir);
}
