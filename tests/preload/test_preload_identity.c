/* SPDX-License-Identifier: MIT */
/*
 * test_preload_identity.c -- a segment and its log belong to each other, not to a place:
 *   - a copy of the pair made with cp -a, cp --sparse, tar or rsync is an independent pair:
 *     the original and the copy, run alternately (some runs killed, some exiting), each
 *     keep their own history and never touch the other's files;
 *   - a moved pair keeps working;
 *   - a log is not applied to a segment of another identity put at its segment's path;
 *   - a missing log next to a segment whose log holds commits is refused, not recreated.
 * Before segments had identities and logs stored paths relative to themselves, the first run
 * of a copy applied its log to the ORIGINAL segment, a moved pair did not start, and a deleted
 * log silently lost the last commits.
 */
#include "child.h"

static int scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* pers_start -- start the probe under lrvm-run with LRVM_SEGMENT=dir/seg (small heap and
 * log) and one more setting (NULL: none) */
static struct child pers_start(const char *dir, const char *more, char *a1, char *a2, char *a3,
                               char *a4, char *a5)
{
    static char seg[300];
    cr_assert((size_t)snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir) < sizeof(seg));
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=1M", more, NULL};
    char *argv[] = {(char *)child_need("LRVM_TEST_RUN"),
                    (char *)child_need("LRVM_TEST_PROBE"),
                    a1,
                    a2,
                    a3,
                    a4,
                    a5,
                    NULL};
    return child_start(argv, extra, 0, NULL);
}

/* pers -- run the probe under lrvm-run on dir's pair to its end */
static struct result pers(const char *dir, char *a1, char *a2, char *a3, char *a4, char *a5)
{
    return child_finish(pers_start(dir, NULL, a1, a2, a3, a4, a5), 60 * 1000L);
}

/* shell -- run a shell command line (copy tools); fails the test if it fails */
static void shell(const char *fmt, const char *a, const char *b)
{
    char line[1024];
    snprintf(line, sizeof(line), fmt, a, b, a, b);
    int st = system(line);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "command failed: %s", line);
}

/* make_pair -- a fresh pair in a new directory: block written, then one more exit commit
 * (so the log's dictionary knows the segment's identity); fills addr */
static void make_pair(char *dir, size_t n, const char *tag, const char *first, const char *second,
                      char *addr, size_t alen)
{
    child_tdir(dir, n, tag);
    struct result r = pers(dir, "pwrite", (char *)first, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(addr, alen, "%s", r.out);
    addr[strcspn(addr, "\n")] = 0;
    cr_assert(strncmp(addr, "0x2000", 6) == 0, "block not in the heap: %s", addr);
    r = pers(dir, "torture", addr, (char *)first, (char *)second, "exit");
    cr_assert_str_eq(r.out, "ok\n", "%s", r.err);
}

/* step -- one run of pair dir: it must see *expect; it stores next and exits or is killed */
static void step(const char *dir, const char *addr, char *expect, size_t n, const char *next,
                 int kill, const char *what)
{
    struct result r =
        pers(dir, "torture", (char *)addr, expect, (char *)next, kill ? "kill" : "exit");
    cr_assert_str_eq(r.out, "ok\n", "%s: expected %s: %s %s", what, expect, r.out, r.err);
    cr_assert_eq(r.status, kill ? 128 + SIGKILL : 0, "%s: %s", what, r.err);
    if (!kill)
        snprintf(expect, n, "%s", next);
}

/* copy_then_alternate -- copy pair A with `cmd` (printf format: %s = A, %s = B, twice), then
 * run A and B alternately, each with its own history */
static void copy_then_alternate(const char *cmd, const char *tag)
{
    char a[256], addr[64], ea[32], eb[32];
    make_pair(a, sizeof(a), tag, "a0", "a1", addr, sizeof(addr));
    char b[300];
    snprintf(b, sizeof(b), "%s-copy", a);
    shell(cmd, a, b);
    snprintf(ea, sizeof(ea), "a1");
    snprintf(eb, sizeof(eb), "a1"); /* the copy starts where A was */
    unsigned seed = 20261207u;
    int rounds = 6 * scale();
    for (int i = 1; i <= rounds; i++) {
        char na[32], nb[32], wa[64], wb[64];
        snprintf(na, sizeof(na), "a%d", i + 1);
        snprintf(nb, sizeof(nb), "b%d", i + 1);
        snprintf(wa, sizeof(wa), "%s: original, run %d", tag, i);
        snprintf(wb, sizeof(wb), "%s: copy, run %d", tag, i);
        /* the copy first: its first run is the one that used to write into the original */
        step(b, addr, eb, sizeof(eb), nb, i > 1 && rand_r(&seed) % 2, wb);
        step(a, addr, ea, sizeof(ea), na, i > 1 && rand_r(&seed) % 2, wa);
    }
    child_dir_remove(b);
    child_dir_remove(a);
}

Test(identity, copy_cp_a, .timeout = 120)
{
    copy_then_alternate("cp -a %s %s", "id-cpa");
}

Test(identity, copy_cp_sparse, .timeout = 120)
{
    copy_then_alternate("mkdir %2$s && cp --sparse=always %1$s/seg %1$s/seg.log %2$s/", "id-cps");
}

Test(identity, copy_tar, .timeout = 120)
{
    copy_then_alternate("mkdir %2$s && tar -C %1$s -cSf - . | tar -C %2$s -xf -", "id-tar");
}

Test(identity, copy_rsync, .timeout = 120)
{
    if (access("/usr/bin/rsync", X_OK) != 0)
        cr_assert_fail("rsync is not installed (scripts/setup.sh installs it)");
    copy_then_alternate("rsync -aS %s/ %s/", "id-rsync");
}

Test(identity, moved_pair_works, .timeout = 60)
{
    char a[256], addr[64], e[32] = "a1";
    make_pair(a, sizeof(a), "id-mv", "a0", "a1", addr, sizeof(addr));
    char b[300];
    snprintf(b, sizeof(b), "%s-moved", a);
    cr_assert_eq(rename(a, b), 0);
    step(b, addr, e, sizeof(e), "a2", 0, "moved pair");
    step(b, addr, e, sizeof(e), "a3", 1, "moved pair, killed");
    step(b, addr, e, sizeof(e), "a4", 0, "moved pair, after a kill");
    child_dir_remove(b);
}

/* slurp -- a whole file (malloc'd) */
static char *slurp(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    char *p = malloc((size_t)st.st_size + 1);
    cr_assert_eq(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *n = (size_t)st.st_size;
    return p;
}

/* leave_records -- run the probe's climb on dir's pair with interval commits and SIGKILL it,
 * until its log holds live records (the truncation thread may have applied them all) */
static void leave_records(const char *dir, const char *addr)
{
    for (int tries = 0; tries < 10; tries++) {
        struct child c =
            pers_start(dir, "LRVM_COMMIT=interval:2ms", "climb", (char *)addr, NULL, NULL, NULL);
        for (int i = 0; i < 10000; i++) { /* until it runs, then 50 ms of commits */
            char *o = child_slurp(c.ofd);
            int up = o[0] != 0;
            free(o);
            if (up)
                break;
            child_nap_ms(1);
        }
        child_nap_ms(50);
        kill(c.pid, SIGKILL);
        struct result r = child_finish(c, 60000);
        free(r.out);
        free(r.err);
        if (child_live_records(dir) > 0)
            return;
    }
    cr_assert_fail("%s: no run left records in the log", dir);
}

Test(identity, log_refuses_a_segment_of_another_identity, .timeout = 60)
{
    char a[256], o[256], addr[64], oaddr[64], e[32] = "a1";
    make_pair(a, sizeof(a), "id-other-a", "a0", "a1", addr, sizeof(addr));
    make_pair(o, sizeof(o), "id-other-o", "o0", "o1", oaddr, sizeof(oaddr));
    /* A's log holds pending records (a clean exit leaves none: A's last run is killed after
     * interval commits); another segment is put at A's segment path */
    leave_records(a, addr);
    char aseg[300], oseg[300], keep[300];
    snprintf(aseg, sizeof(aseg), "%s/seg", a);
    snprintf(oseg, sizeof(oseg), "%s/seg", o);
    snprintf(keep, sizeof(keep), "%s/seg.keep", a);
    cr_assert_eq(rename(aseg, keep), 0);
    shell("cp --sparse=always %s %s", oseg, aseg);
    size_t n0, n1;
    char *before = slurp(aseg, &n0);
    struct result r = pers(a, "torture", addr, "a1", "a2", "exit");
    cr_expect_neq(r.status, 0, "the run must be refused: %s", r.out);
    cr_expect_str_eq(r.out, "", "the program must not run");
    cr_expect(strstr(r.err, "identity") != NULL && strstr(r.err, aseg) != NULL,
              "the message must name the segment and the identity: %s", r.err);
    char *after = slurp(aseg, &n1);
    cr_expect(n0 == n1 && memcmp(before, after, n0) == 0,
              "the other segment must not be written by A's log");
    free(before);
    free(after);
    /* the right segment back: A continues from its last commit (a value its climb stored) */
    cr_assert_eq(rename(keep, aseg), 0);
    r = pers(a, "pread", addr, NULL, NULL, NULL);
    cr_assert(r.status == 0 && r.out[0] == 'n', "A with its own segment back: %s %s", r.out, r.err);
    snprintf(e, sizeof(e), "%.*s", (int)strcspn(r.out, " "), r.out);
    step(a, addr, e, sizeof(e), "a2", 0, "A with its own segment back");
    child_dir_remove(a);
    child_dir_remove(o);
}

Test(identity, missing_log_is_refused, .timeout = 60)
{
    char a[256], addr[64], e[32] = "a1";
    make_pair(a, sizeof(a), "id-nolog", "a0", "a1", addr, sizeof(addr));
    char log[300], keep[300];
    snprintf(log, sizeof(log), "%s/seg.log", a);
    snprintf(keep, sizeof(keep), "%s/seg.log.keep", a);
    cr_assert_eq(rename(log, keep), 0);
    struct result r = pers(a, "torture", addr, "a1", "a2", "exit");
    cr_expect_neq(r.status, 0, "a missing log must be refused: %s", r.out);
    cr_expect_str_eq(r.out, "", "the program must not run");
    cr_expect(strstr(r.err, "is missing") != NULL && strstr(r.err, log) != NULL,
              "the message must name the missing log: %s", r.err);
    cr_expect_neq(access(log, F_OK), 0, "no new log may be created in its place");
    /* the log back: nothing was lost */
    cr_assert_eq(rename(keep, log), 0);
    step(a, addr, e, sizeof(e), "a2", 0, "log restored");
    /* the user accepts losing the log: forget-log, then a fresh log */
    cr_assert_eq(unlink(log), 0);
    char seg[300];
    snprintf(seg, sizeof(seg), "%s/seg", a);
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "forget-log", seg, NULL};
    r = child_run(argv, NULL, 0, NULL, 30 * 1000L);
    cr_expect_eq(r.status, 0, "forget-log: %s %s", r.out, r.err);
    r = pers(a, "pwrite", "after forget-log", NULL, NULL, NULL);
    cr_expect_eq(r.status, 0, "after forget-log the segment opens: %s", r.err);
    cr_expect_eq(access(log, F_OK), 0, "and gets a new log");
    child_dir_remove(a);
}
