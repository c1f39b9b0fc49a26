/* SPDX-License-Identifier: MIT */
/*
 * test_preload_aware.c -- aware programs: rvm_commit and the named roots
 * (lrvm/lrvm.h) called by programs linked with liblrvm.so, run without and under
 * liblrvm-preload.so (suite 'preload').
 *
 * Programs: examples/todo (a to-do list: rvm_root_get at start, rvm_commit after each change)
 * and aware_probe.c. Under the shim the tests use LRVM_COMMIT=none or the default exit hook
 * with SIGKILL, so that what survives can only have been made durable by the program's own
 * rvm_commit. LRVM_STATS=1 tells the tests the shim served the calls ("explicit N").
 * Paths come from meson (LRVM_TEST_SHIM, LRVM_TEST_TODO, LRVM_TEST_AWARE, LRVM_TEST_PROBE).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heap_format.h"
#include "image_format.h"

#include "child.h"

static int scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* struct env -- where a test runs: its directory; shim: 0 without the shim, 1 under it with
 * LRVM_SEGMENT=<dir>/seg (persistent), 2 under it without (volatile heap) */
struct env {
    char dir[64];
    int shim;
    const char *commit; /* LRVM_COMMIT value, NULL = default (exit) */
};

/* run -- argv under env e (the environment of child.h plus the shim's settings); killed after
 * timeout_s (status -1) */
static struct result run(const struct env *e, char *const argv[], int timeout_s)
{
    char seg[160], com[80];
    const char *extra[8];
    size_t k = 0;
    if (e->shim) {
        snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", e->dir);
        if (e->shim == 1)
            extra[k++] = seg;
        extra[k++] = "LRVM_STATS=1";
        extra[k++] = "LRVM_HEAP_SIZE=256M";
        extra[k++] = "LRVM_LOG_SIZE=8M";
        if (e->commit) {
            snprintf(com, sizeof(com), "LRVM_COMMIT=%s", e->commit);
            extra[k++] = com;
        }
    }
    extra[k] = NULL;
    return child_run(argv, extra, e->shim ? CHILD_SHIM : 0, NULL, timeout_s * 1000L);
}

/* todo / probe -- run examples/todo or aware_probe with up to 3 arguments */
static struct result todo(const struct env *e, const char *a, const char *b, const char *c)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_TODO"), (char *)a, (char *)b, (char *)c, NULL};
    return run(e, argv, 60);
}

static struct result probe(const struct env *e, const char *a, const char *b, const char *c,
                           const char *d)
{
    char *argv[] = {
        (char *)child_need("LRVM_TEST_AWARE"), (char *)a, (char *)b, (char *)c, (char *)d, NULL};
    return run(e, argv, 120);
}

/* env_new / env_done -- a fresh directory for a test's segment */
static void env_new(struct env *e, int shim, const char *commit)
{
    child_tdir(e->dir, sizeof(e->dir), "aware");
    e->shim = shim;
    e->commit = commit;
}

static void env_done(const struct env *e)
{
    child_dir_remove(e->dir);
}

/* heap_root_of -- the heap header's root pointer in <dir>/seg (the roots' table, or 0).
 * The segment file holds committed data once the log was applied to it: `rvmutl recover`
 * does that first. The heap starts at the image header's heap_off (core/image/image_format.h). */
static uint64_t heap_root_of(const struct env *e)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s recover %s/seg.log >/dev/null", child_need("LRVM_TEST_RVMUTL"),
             e->dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    char path[128];
    snprintf(path, sizeof(path), "%s/seg", e->dir);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "%s: cannot open", path);
    struct image_header ih;
    cr_assert_eq(pread(fd, &ih, sizeof(ih), 0), (ssize_t)sizeof(ih));
    cr_assert(memcmp(ih.magic, IMG_MAGIC, 8) == 0, "%s has no image header", path);
    struct heap_header h;
    cr_assert_eq(pread(fd, &h, sizeof(h), (off_t)ih.heap_off), (ssize_t)sizeof(h));
    close(fd);
    cr_assert(memcmp(h.magic, HEAP_MAGIC, 8) == 0, "%s is not a heap", path);
    return h.root;
}

Test(aware, api_without_shim)
{
    struct env e;
    env_new(&e, 0, NULL);
    struct result r = probe(&e, "api", NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "api ok\n");
    env_done(&e);
}

Test(aware, api_under_shim)
{
    struct env e;
    env_new(&e, 1, NULL);
    struct result r = probe(&e, "api", NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "api ok\n");
    /* the program's rvm_commit reached the shim (interposition), and the table is in the heap */
    cr_assert(strstr(r.err, ", explicit 1, skipped periods 0); segment ") != NULL, "%s", r.err);
    cr_assert_neq(heap_root_of(&e), 0);
    /* volatile heap (no LRVM_SEGMENT): same contract, rvm_commit succeeds (nothing to commit) */
    struct env v = e;
    v.shim = 2;
    r = probe(&v, "api", NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.err, ", explicit 1, skipped periods 0); volatile heap") != NULL, "%s",
              r.err);
    cr_assert_str_eq(r.out, "api ok\n", "%s", r.err);
    env_done(&e);
}

Test(aware, todo_without_shim_runs_volatile)
{
    struct env e;
    env_new(&e, 0, NULL);
    struct result r = todo(&e, "add", "milk", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1. [ ] milk\n(1 open of 1; 1 added ever)\n");
    r = todo(&e, "list", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "(0 open of 0; 0 added ever)\n", "nothing persists without the shim");
    env_done(&e);
}

Test(aware, todo_persists_by_its_own_commits)
{
    /* LRVM_COMMIT=none: the shim never commits by itself; only the program's rvm_commit does */
    struct env e;
    env_new(&e, 1, "none");
    struct result r = todo(&e, "add", "milk", "bread");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1. [ ] milk\n2. [ ] bread\n(2 open of 2; 2 added ever)\n");
    cr_assert(strstr(r.err, "(exit 0, signal 0, interval 0, explicit 3, skipped periods 0)") !=
                  NULL,
              "%s", r.err);
    r = todo(&e, "done", "1", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r = todo(&e, "add", "eggs", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r = todo(&e, "rm", "2", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r = todo(&e, "list", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1. [x] milk\n2. [ ] eggs\n(1 open of 2; 3 added ever)\n");
    cr_assert(strstr(r.err, "explicit 0, skipped periods 0)") != NULL, "list must not commit: %s",
              r.err);
    env_done(&e);
}

Test(aware, root_survives_kill_after_commit_uncommitted_is_gone)
{
    /* the default hooks (exit only): SIGKILL skips the exit commit, so what survives a kill
   * was made durable by rvm_commit, and what was not committed is gone */
    struct env e;
    env_new(&e, 1, NULL);
    struct result r = probe(&e, "set", "k", "value one", "commit-kill");
    cr_assert_eq(r.status, 128 + SIGKILL, "%s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "committed\n", "%s", r.err);
    r = probe(&e, "get", "k", NULL, NULL);
    cr_assert_str_eq(r.out, "value one\n", "%s", r.err);
    /* rebinding k and binding k2 without a commit, then SIGKILL: both are gone */
    r = probe(&e, "set", "k", "value two", "nocommit-kill");
    cr_assert_eq(r.status, 128 + SIGKILL, "%s%s", r.out, r.err);
    r = probe(&e, "set", "k2", "never committed", "nocommit-kill");
    cr_assert_eq(r.status, 128 + SIGKILL, "%s%s", r.out, r.err);
    r = probe(&e, "get", "k", NULL, NULL);
    cr_assert_str_eq(r.out, "value one\n", "%s", r.err);
    r = probe(&e, "get", "k2", NULL, NULL);
    cr_assert_str_eq(r.out, "(none)\n", "%s", r.err);
    /* a normal exit commits too (the default exit hook), on top of the program's commit */
    r = probe(&e, "set", "k2", "at exit", "commit-exit");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    r = probe(&e, "get", "k2", NULL, NULL);
    cr_assert_str_eq(r.out, "at exit\n", "%s", r.err);
    env_done(&e);
}

Test(aware, program_without_the_api_is_unaffected)
{
    /* preload_probe never calls lrvm: its data persists as before and no table is made */
    struct env e;
    env_new(&e, 1, NULL);
    char *w[] = {(char *)child_need("LRVM_TEST_PROBE"), "pwrite", "plain program", NULL};
    struct result r = run(&e, w, 60);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "(exit 1, signal 0, interval 0, explicit 0, skipped periods 0)") !=
                  NULL,
              "%s", r.err);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", r.out);
    addr[strcspn(addr, "\n")] = 0;
    char *g[] = {(char *)child_need("LRVM_TEST_PROBE"), "pread", addr, NULL};
    r = run(&e, g, 60);
    cr_assert_str_eq(r.out, "plain program 64\n", "%s", r.err);
    cr_assert_eq(heap_root_of(&e), 0, "a program that never calls rvm_root_set gets no table");
    env_done(&e);
}

Test(aware, fork_children_never_commit, .timeout = 240)
{
    /* fork while 4 threads allocate and a thread commits in a loop: each child's rvm_commit is
   * refused, its roots are its own copy, and its normal exit commits nothing of it */
    struct env e;
    env_new(&e, 1, NULL);
    char n[16];
    snprintf(n, sizeof(n), "%d", 20 * scale());
    struct result r = probe(&e, "set", "child", "parent's", "commit-exit");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    r = probe(&e, "forks", n, NULL, NULL);
    cr_assert_eq(r.status, 128 + SIGKILL, "status %d (-1: hung, killed): %s%s", r.status, r.out,
                 r.err);
    char want[64];
    snprintf(want, sizeof(want), "forks ok %s of %s\n", n, n);
    cr_assert_str_eq(r.out, want, "%s", r.err);
    r = probe(&e, "get", "child", NULL, NULL);
    cr_assert_eq(r.status, 0, "the heap must reopen: %s", r.err);
    cr_assert_str_eq(r.out, "parent's\n", "a fork child's binding reached the segment: %s", r.err);
    env_done(&e);
}

Test(aware, fork_child_outliving_its_parent_does_not_hold_the_segment)
{
    /* one writer per segment is a lock on the segment file; a fork child (which never
   * commits) must not keep it after its parent exited, or the next run is refused */
    struct env e;
    env_new(&e, 1, NULL);
    struct result r = probe(&e, "orphan", "3000", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    r = probe(&e, "get", "x", NULL, NULL); /* the child still sleeps */
    cr_assert_eq(r.status, 0, "the segment is still locked by the parent's fork child: %s", r.err);
    cr_assert_str_eq(r.out, "(none)\n", "%s", r.err);
    sleep(3); /* let the child go before the directory is removed */
    env_done(&e);
}

Test(aware, a_lock_only_inherited_is_waited_for_then_named, .timeout = 120)
{
    /* between fork() and its fork handlers a child shares its parent's locks; a child made by
   * a raw clone never runs them and holds the segment and the log until it exits. A parent
   * that has exited is no writer: the next run waits such a holder out (up to 5 s), and past
   * that refuses with a message that says who may hold the lock */
    struct env e;
    env_new(&e, 1, NULL);
    struct result r = probe(&e, "orphan-raw", "1000", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    r = probe(&e, "get", "x", NULL, NULL);
    cr_assert_eq(r.status, 0,
                 "a lock held only by an exited program's child was not waited for: %s", r.err);
    cr_assert_str_eq(r.out, "(none)\n", "%s", r.err);
    r = probe(&e, "orphan-raw", "30000", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    pid_t holder = (pid_t)atol(r.out);
    cr_assert_gt(holder, 0, "%s", r.out);
    r = probe(&e, "get", "x", NULL, NULL);
    kill(holder, SIGKILL);
    cr_assert_neq(r.status, 0, "a second writer ran while a clone child held the segment");
    cr_assert(strstr(r.err, "is in use by another process, perhaps a child a program "
                            "forked without exec (one writer per segment)") != NULL,
              "%s", r.err);
    sleep(1); /* let the killed child go before the directory is removed */
    env_done(&e);
}
