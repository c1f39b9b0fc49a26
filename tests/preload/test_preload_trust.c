/* SPDX-License-Identifier: MIT */
/*
 * test_preload_trust.c -- the shim and lrvm-run facing files they must not trust or lose:
 * a segment or log of another user, a segment deleted while its log still holds commits for
 * it, and a set-user-ID program (persistence is off for it, and lrvm-run says so).
 *
 * The pending log record is made with liblrvm directly (a child that commits and leaves
 * without truncating). Cases that need files of another user, or a set-user-ID file owned
 * by another user, need root (CI runs as root) and are skipped, never passed, without it.
 */
#include <criterion/criterion.h>
#include <rvm/rvm.h>

#include "child.h"

static char dir[64];

static void setup(void)
{
    child_tdir(dir, sizeof(dir), "trust");
}

static void teardown(void)
{
    child_dir_remove(dir);
}

TestSuite(preload_trust, .init = setup, .fini = teardown, .timeout = 60);

/* probe -- the probe program's "main" under the shim with LRVM_SEGMENT=seg */
static struct result probe(const char *seg)
{
    char env[256];
    snprintf(env, sizeof(env), "LRVM_SEGMENT=%s", seg);
    const char *extra[] = {env, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), "main", NULL};
    return child_run(argv, extra, CHILD_SHIM, NULL, 60000);
}

/* commit_and_leave -- in a child: create log, commit a page of seg, _exit without truncation */
static void commit_and_leave(const char *seg, const char *log)
{
    int fd = open(seg, O_RDWR | O_CREAT, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, 8192), 0);
    close(fd);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        rvm_options_t o;
        rvm_init_options(&o);
        o.log_dev = (char *)log;
        o.create_log_file = rvm_true;
        o.create_log_size = RVM_MK_OFFSET(0, 1u << 20);
        o.create_log_mode = 0600;
        o.truncate = 0;
        rvm_region_t r;
        rvm_init_region(&r);
        r.data_dev = (char *)seg;
        r.length = 4096;
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        if (rvm_initialize(RVM_VERSION, &o) != RVM_SUCCESS || rvm_map(&r, NULL) != RVM_SUCCESS ||
            rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS ||
            rvm_set_range(&tid, r.vmaddr, 4096) != RVM_SUCCESS)
            _exit(10);
        memset(r.vmaddr, 'X', 4096);
        _exit(rvm_end_transaction(&tid, flush) == RVM_SUCCESS ? 0 : 11);
    }
    int st;
    cr_assert_eq(waitpid(p, &st, 0), p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

/* A segment deleted while its log holds a commit for it: an error naming both files, and no
 * new (junk) segment file; the log keeps its record for when the segment is restored. */
Test(preload_trust, missing_segment_with_pending_log)
{
    char seg[128], log[160];
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    snprintf(log, sizeof(log), "%s/seg.log", dir);
    commit_and_leave(seg, log);
    cr_assert_eq(unlink(seg), 0);
    struct result r = probe(seg);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect_str_eq(r.out, "", "main must not run");
    cr_expect(strstr(r.err, "does not exist, and its log") && strstr(r.err, seg) &&
                  strstr(r.err, log) && strstr(r.err, "has committed updates in the log") &&
                  strstr(r.err, "restore the segment"),
              "%s", r.err);
    cr_expect(access(seg, F_OK) != 0 && errno == ENOENT, "a segment file was created");
    /* a restored segment takes its record back (recovery applies it, then the shim judges the
   * file: not an image, since this one was made by a plain LRVM program) */
    int fd = open(seg, O_RDWR | O_CREAT, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, 8192), 0);
    close(fd);
    r = probe(seg);
    char b = 0;
    fd = open(seg, O_RDONLY);
    cr_assert_eq(pread(fd, &b, 1, 0), 1);
    close(fd);
    cr_expect_eq(b, 'X', "the pending record was not kept for the restored segment: %s", r.err);
}

/* need_root -- files of another user */
static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to create files owned by other users (CI runs as root)");
}

/* The shim refuses a segment, or a log, that belongs to another user, naming it and the rule. */
Test(preload_trust, files_of_another_user_are_refused)
{
    need_root();
    char seg[128], log[160];
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    snprintf(log, sizeof(log), "%s/seg.log", dir);
    struct result r = probe(seg);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(chown(log, 65534, 65534), 0);
    r = probe(seg);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, log) && strstr(r.err, "belongs to uid 65534, not to uid 0"), "%s",
              r.err);
    cr_assert_eq(chown(log, 0, 0), 0);
    cr_assert_eq(chown(seg, 65534, 65534), 0);
    r = probe(seg);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "LRVM_SEGMENT: segment ") && strstr(r.err, seg) &&
                  strstr(r.err, "belongs to uid 65534"),
              "%s", r.err);
    cr_assert_eq(chown(seg, 0, 0), 0);
    cr_assert_eq(chmod(seg, 0620), 0);
    r = probe(seg);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "writable by its group"), "%s", r.err);
    const char *shared[] = {NULL, NULL, NULL, NULL, NULL};
    char env[256];
    snprintf(env, sizeof(env), "LRVM_SEGMENT=%s", seg);
    shared[0] = env;
    shared[1] = "LRVM_SHARED_GROUP=1";
    shared[2] = "LRVM_HEAP_SIZE=64M";
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), "main", NULL};
    r = child_run(argv, shared, CHILD_SHIM, NULL, 60000);
    cr_expect_eq(r.status, 0, "LRVM_SHARED_GROUP=1: %s", r.err);
}

/* lrvm-run on a set-user-ID program says that persistence is off for it. */
Test(preload_trust, setuid_program_gets_a_notice)
{
    need_root();
    char prog[128];
    snprintf(prog, sizeof(prog), "%s/suid-true", dir);
    struct result c =
        child_run((char *[]){"/bin/cp", "/bin/true", prog, NULL}, NULL, 0, NULL, 30000);
    cr_assert_eq(c.status, 0, "%s", c.err);
    cr_assert_eq(chown(prog, 65534, 65534), 0);
    cr_assert_eq(chmod(prog, 04755), 0);
    char seg[160];
    snprintf(seg, sizeof(seg), "--segment=%s/seg", dir);
    char *argv[] = {(char *)child_need("LRVM_TEST_RUN"), seg, prog, NULL};
    struct result r = child_run(argv, NULL, 0, NULL, 30000);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "lrvm-run: persistence is OFF for ") && strstr(r.err, prog) &&
                  strstr(r.err, "set-user-ID"),
              "%s", r.err);
    /* an ordinary copy gets no such notice */
    cr_assert_eq(chmod(prog, 0755), 0);
    r = child_run(argv, NULL, 0, NULL, 30000);
    cr_expect(strstr(r.err, "persistence is OFF") == NULL, "%s", r.err);
}
