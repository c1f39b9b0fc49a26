/* SPDX-License-Identifier: MIT */
/*
 * test_preload_grow.c -- a persistent heap that grows far past its size at start-up: data
 * written in memory the heap grew into after start (and after a restart) survives the exit
 * commit, and a SIGKILL before a commit loses exactly the uncommitted changes. Whatever the
 * tracker arms at start (the whole reservation, or only the heap in use and growth after it),
 * every page the heap grows into must be tracked: this test fails if growth escapes tracking
 * (the restarted heap then finds stale metadata: checked by heap_open and by the data).
 * Then half of the data is freed and the freed memory churned: live blocks stay intact although
 * the shim releases free memory (MADV_DONTNEED) and purges it before the exit commit.
 *
 * Env (from meson): LRVM_TEST_SHIM (liblrvm-preload.so), LRVM_TEST_GROW (preload_grow).
 * LRVM_TEST_SCALE multiplies the data size (default 1: 72 MiB, twice; at most 3).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int big; /* LRVM_TEST_SCALE > 1: larger heap and log */

struct res {
    int status; /* exit code, or 128 + signal */
    char out[512];
    char err[2048];
};

/* need -- an environment variable the meson test sets */
static const char *need(const char *var)
{
    const char *v = getenv(var);
    cr_assert(v && *v, "%s is not set: run this test with `meson test`", var);
    return v;
}

/* slurp_into -- read fd from the start into buf (NUL-terminated, truncated) */
static void slurp_into(int fd, char *buf, size_t n)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t r = read(fd, buf, n - 1);
    buf[r > 0 ? r : 0] = '\0';
    close(fd);
}

/* grow_run -- preload_grow ARGS under the shim with segment dir/seg; stdout, stderr, status */
static struct res grow_run(const char *dir, const char *a1, const char *a2, const char *a3,
                           const char *a4)
{
    struct res r;
    char seg[256], tmpl_o[] = "/tmp/lrvm-grow-out-XXXXXX", tmpl_e[] = "/tmp/lrvm-grow-err-XXXXXX";
    int fo = mkstemp(tmpl_o), fe = mkstemp(tmpl_e);
    cr_assert(fo >= 0 && fe >= 0);
    unlink(tmpl_o);
    unlink(tmpl_e);
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        setenv("LD_PRELOAD", need("LRVM_TEST_SHIM"), 1);
        setenv("LRVM_SEGMENT", seg, 1);
        setenv("LRVM_HEAP_SIZE", big ? "1G" : "256M", 1);
        setenv("LRVM_LOG_SIZE", big ? "768M" : "256M", 1);
        setenv("LRVM_STATS", "1", 1);
        const char *prog = need("LRVM_TEST_GROW");
        execl(prog, prog, a1, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp_into(fo, r.out, sizeof(r.out));
    slurp_into(fe, r.err, sizeof(r.err));
    return r;
}

/* backed_mib -- "backed N MiB" from the LRVM_STATS lines, or -1 */
static long backed_mib(const char *err)
{
    const char *p = strstr(err, "backed ");
    return p ? strtol(p + 7, NULL, 10) : -1;
}

Test(preload_grow, heap_grows_through_tracked_pieces, .timeout = 240)
{
    char dir[] = "/tmp/lrvm-preload-grow-XXXXXX";
    cr_assert(mkdtemp(dir));
    const char *sc = getenv("LRVM_TEST_SCALE");
    int scale = sc && atoi(sc) > 0 ? atoi(sc) : 1;
    char mib[16];
    big = scale > 1;
    snprintf(mib, sizeof(mib), "%d", 72 * (scale < 3 ? scale : 3));

    struct res r = grow_run(dir, "build", mib, NULL, NULL);
    cr_assert_eq(r.status, 0, "build: %s%s", r.out, r.err);
    cr_assert(strstr(r.err, "commit failed") == NULL, "%s", r.err);
    cr_assert_geq(backed_mib(r.err), 64, "the heap did not grow past the first pieces: %s", r.err);
    char addr[64];
    snprintf(addr, sizeof(addr), "%.63s", r.out);
    addr[strcspn(addr, "\n")] = '\0';

    /* committed at exit: everything is back, in every piece */
    r = grow_run(dir, "check", addr, "1", NULL);
    cr_assert_eq(r.status, 0, "check 1: %s%s", r.out, r.err);
    cr_assert(strncmp(r.out, "ok ", 3) == 0, "%s", r.out);

    /* rewrite half the blocks (all pieces) and die before any commit: nothing of it is kept */
    r = grow_run(dir, "bump", addr, "2", "kill");
    cr_assert_eq(r.status, 128 + SIGKILL, "%s%s", r.out, r.err);
    r = grow_run(dir, "check", addr, "1", NULL);
    cr_assert_eq(r.status, 0, "after kill: %s%s", r.out, r.err);

    /* the same with a normal exit: the restarted heap's pieces are tracked and committed */
    r = grow_run(dir, "bump", addr, "3", NULL);
    cr_assert_eq(r.status, 0, "bump 3: %s%s", r.out, r.err);
    cr_assert(strstr(r.err, "commit failed") == NULL, "%s", r.err);
    r = grow_run(dir, "check", addr, "3", NULL);
    cr_assert_eq(r.status, 0, "check 3: %s%s", r.out, r.err);

    /* a restarted heap that grows further: build a second table on top of the first */
    r = grow_run(dir, "build", mib, NULL, NULL);
    cr_assert_eq(r.status, 0, "second build: %s%s", r.out, r.err);
    char addr2[64];
    snprintf(addr2, sizeof(addr2), "%.63s", r.out);
    addr2[strcspn(addr2, "\n")] = '\0';
    cr_assert_geq(backed_mib(r.err), 128, "the restarted heap did not grow: %s", r.err);
    r = grow_run(dir, "check", addr2, "1", NULL);
    cr_assert_eq(r.status, 0, "check second table: %s%s", r.out, r.err);
    r = grow_run(dir, "check", addr, "3", NULL);
    cr_assert_eq(r.status, 0, "first table after the second build: %s%s", r.out, r.err);

    /* free half of the first table and churn through the freed memory: released free memory
   * (MADV_DONTNEED; the exit commit purges first) must not disturb the live blocks */
    r = grow_run(dir, "thin", addr, NULL, NULL);
    cr_assert_eq(r.status, 0, "thin: %s%s", r.out, r.err);
    cr_assert(strstr(r.err, "commit failed") == NULL, "%s", r.err);
    const char *lg = strstr(r.err, " commits, ");
    cr_log_info("thin run: %.40s", lg ? lg : "(no statistics)");
    r = grow_run(dir, "check", addr, "3", NULL);
    cr_assert_eq(r.status, 0, "first table after thin: %s%s", r.out, r.err);
    r = grow_run(dir, "check", addr2, "1", NULL);
    cr_assert_eq(r.status, 0, "second table after thin: %s%s", r.out, r.err);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
