/* SPDX-License-Identifier: MIT */
/*
 * test_log_grow.c -- a commit larger than the log grows the log instead of being refused.
 *
 * What must hold:
 *  - a 40 MiB transaction into a 4 MiB log commits (flush, and no_flush + rvm_flush), the log
 *    file grows, and recovery in a fresh process gives exactly its bytes;
 *  - a log whose records wrapped past the area end grows correctly: recovery after the big
 *    commit gives every commit, old and new;
 *  - growth beyond rvm_log_max_len is refused with RVM_ETOO_BIG, the transaction stays open;
 *  - a full disk while growing (ENOSPC injected through the sysio seam) refuses the commit
 *    with RVM_EIO and a message naming the log, is not sticky, and loses nothing committed;
 *  - SIGKILL at a random point of a growing commit: recovery gives the previous commit
 *    exactly, or the new one exactly (and the new one whenever it was acknowledged).
 *
 * rvm_initialize works once per process, so every scenario runs in a fresh child.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <time.h>

#include "core_test.h"
#include "sysio.h"

#define SMALL_LOG ((size_t)4 << 20)
#define BIG ((size_t)40 << 20)

static tpaths_t T;

static void setup(void)
{
    tpaths_make(&T, "grow");
}

static void teardown(void)
{
    tdir_remove(T.dir);
}

/* map_seg -- map the whole test segment (BIG bytes); NULL on failure */
static char *map_seg(void)
{
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, BIG, NULL);
    return rvm_map(&r, NULL) == RVM_SUCCESS ? r.vmaddr : NULL;
}

/* fill_txn -- one transaction setting [off, off+len) of the mapped segment to v */
static rvm_return_t fill_txn(char *base, size_t off, size_t len, int v, rvm_mode_t mode)
{
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_return_t rc = rvm_begin_transaction(&t, no_restore);
    if (rc == RVM_SUCCESS)
        rc = rvm_set_range(&t, base + off, len);
    if (rc == RVM_SUCCESS) {
        memset(base + off, v, len);
        rc = rvm_end_transaction(&t, mode);
    }
    return rc;
}

/* seg_holds -- does the segment file hold v over [off, off+len)? (after recovery) */
static int seg_holds(size_t off, size_t len, int v)
{
    char *b = malloc(len);
    int ok = b != NULL && file_read(T.seg, b, len, (off_t)off) == 0;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)b[i] == (unsigned char)v;
    free(b);
    return ok;
}

/* recover_child -- recovery in a fresh process: rvm_initialize, then the files are checked */
static int recover_child(void *arg)
{
    (void)arg;
    return rvmt_init(T.log, 0, 0) == RVM_SUCCESS && rvm_terminate() == RVM_SUCCESS ? 0 : 1;
}

static void recover(void)
{
    char d[64];
    int st = proc_run(recover_child, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery: %s",
              proc_describe(st, d, sizeof d));
}

/* big_child -- a small commit, then a 40 MiB one in mode *arg into the 4 MiB log */
static int big_child(void *arg)
{
    rvm_mode_t mode = *(rvm_mode_t *)arg;
    if (rvmt_init_create(T.log, SMALL_LOG, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL)
        return 2;
    if (fill_txn(b, 0, 4096, 'a', flush) != RVM_SUCCESS)
        return 3;
    rvm_return_t rc = fill_txn(b, 0, BIG, 'B', mode);
    if (rc == RVM_SUCCESS && mode == no_flush)
        rc = rvm_flush();
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "big commit: %s: %s\n", rvm_return(rc), rvm_errmsg ? rvm_errmsg : "");
        return 4;
    }
    _exit(0); /* a crash right after the acknowledged commit: no terminate, no truncation */
}

static void big_commit(rvm_mode_t mode)
{
    cr_assert_eq(file_make(T.seg, BIG, 0), 0);
    char d[64];
    int st = proc_run(big_child, &mode);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a 40 MiB %s commit into a 4 MiB log: %s",
              rvm_mode(mode), proc_describe(st, d, sizeof d));
    cr_expect_geq(file_size(T.log), (long long)BIG, "the log grew to hold the record");
    recover();
    cr_expect(seg_holds(0, BIG, 'B'), "recovery gives the whole 40 MiB commit");
}

Test(log_grow, flush_commit_larger_than_log, .init = setup, .fini = teardown, .timeout = 120)
{
    big_commit(flush);
}

Test(log_grow, no_flush_commit_larger_than_log, .init = setup, .fini = teardown, .timeout = 120)
{
    big_commit(no_flush);
}

/* wrapped_child -- small commits until the records wrap past the area end (no truncation),
 * then a commit larger than the log; each small commit k writes page k with 'a' + k % 26 */
static int wrapped_child(void *arg)
{
    (void)arg;
    if (rvmt_init_create(T.log, 256 << 10, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL)
        return 2;
    /* 100 commits of ~20 KiB into a 256 KiB area: it wraps many times (the writer truncates
     * synchronously when full, so it is wrapped with live records at the end) */
    for (int k = 0; k < 100; k++)
        if (fill_txn(b, (size_t)k * 20480, 20000, 'a' + k % 26, flush) != RVM_SUCCESS)
            return 3;
    if (fill_txn(b, 4u << 20, 8u << 20, 'W', flush) != RVM_SUCCESS)
        return 4;
    if (fill_txn(b, 0, 20000, 'z', flush) != RVM_SUCCESS) /* after the growth */
        return 5;
    _exit(0);
}

Test(log_grow, wrapped_log_grows, .init = setup, .fini = teardown, .timeout = 120)
{
    cr_assert_eq(file_make(T.seg, BIG, 0), 0);
    char d[64];
    int st = proc_run(wrapped_child, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wrapped log: %s",
              proc_describe(st, d, sizeof d));
    recover();
    cr_expect(seg_holds(0, 20000, 'z'), "the commit after the growth");
    for (int k = 1; k < 100; k++)
        cr_expect(seg_holds((size_t)k * 20480, 20000, 'a' + k % 26), "small commit %d", k);
    cr_expect(seg_holds(4u << 20, 8u << 20, 'W'), "the 8 MiB commit");
}

/* bound_child -- with rvm_log_max_len = 8 MiB a 40 MiB transaction is refused, stays open,
 * and the library keeps working */
static int bound_child(void *arg)
{
    (void)arg;
    rvm_log_max_len = 8u << 20;
    if (rvmt_init_create(T.log, SMALL_LOG, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL)
        return 2;
    /* 3 MiB live at the start of the area: the 6 MiB commit below cannot go after them
     * within the bound, but fits the bound once truncation has emptied the log */
    if (fill_txn(b, 8u << 20, 3u << 20, 'p', flush) != RVM_SUCCESS)
        return 8;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) || rvm_set_range(&t, b, BIG))
        return 3;
    memset(b, 'X', BIG);
    if (rvm_end_transaction(&t, flush) != RVM_ETOO_BIG)
        return 4;
    if (rvm_errmsg == NULL || strstr(rvm_errmsg, T.log) == NULL)
        return 5;
    if (rvm_abort_transaction(&t) != RVM_SUCCESS || b[0] != 0 || b[8u << 20] != 'p')
        return 6;
    if (fill_txn(b, 0, 6u << 20, 'y', flush) != RVM_SUCCESS) /* grows within the bound */
        return 7;
    _exit(0);
}

Test(log_grow, bound_refuses, .init = setup, .fini = teardown, .timeout = 120)
{
    cr_assert_eq(file_make(T.seg, BIG, 0), 0);
    char d[64];
    int st = proc_run(bound_child, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bound: %s", proc_describe(st, d, sizeof d));
    cr_expect_leq(file_size(T.log), (long long)(9u << 20), "the log stayed within its bound");
    recover();
    cr_expect(seg_holds(0, 6u << 20, 'y'), "the commit within the bound");
    cr_expect(seg_holds(8u << 20, 3u << 20, 'p'), "the commit before the refused one");
}

/* ---- a full disk while the log grows ---------------------------------------------------- */

static ino_t full_ino; /* the log file: writes past its old end fail with ENOSPC */
static off_t full_from;
static int full_fired;

static ssize_t full_pwrite_fn(int fd, const void *buf, size_t n, off_t off)
{
    struct stat st;
    if (off + (off_t)n > full_from && sysio_default.fstat(fd, &st) == 0 && st.st_ino == full_ino) {
        full_fired++;
        errno = ENOSPC;
        return -1;
    }
    return sysio_default.pwrite(fd, buf, n, off);
}

static int full_fallocate_fn(int fd, int mode, off_t off, off_t len)
{
    struct stat st;
    if (off + len > full_from && sysio_default.fstat(fd, &st) == 0 && st.st_ino == full_ino) {
        full_fired++;
        errno = ENOSPC;
        return -1;
    }
    return sysio_default.fallocate(fd, mode, off, len);
}

static int full_child(void *arg)
{
    (void)arg;
    if (rvmt_init_create(T.log, SMALL_LOG, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL)
        return 2;
    if (fill_txn(b, 0, 1u << 20, 'a', flush) != RVM_SUCCESS)
        return 3;
    struct stat st;
    if (stat(T.log, &st) != 0)
        return 4;
    full_ino = st.st_ino;
    full_from = st.st_size;
    sysio.pwrite = full_pwrite_fn;
    sysio.fallocate = full_fallocate_fn;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, no_restore) || rvm_set_range(&t, b, BIG))
        return 5;
    memset(b, 'B', BIG);
    rvm_return_t rc = rvm_end_transaction(&t, flush);
    fprintf(stderr, "growth on a full disk: %s: %s\n", rvm_return(rc),
            rvm_errmsg ? rvm_errmsg : "");
    if (rc != RVM_EIO || full_fired == 0)
        return 6;
    if (strstr(rvm_errmsg, T.log) == NULL || strstr(rvm_errmsg, "No space") == NULL)
        return 7;
    if (stat(T.log, &st) != 0 || st.st_size != full_from)
        return 8; /* the file was cut back: a full disk gets its space back */
    /* not sticky: with space again the same transaction commits */
    sysio = sysio_default;
    if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
        return 9;
    _exit(0);
}

Test(log_grow, disk_full_while_growing, .init = setup, .fini = teardown, .timeout = 120)
{
    cr_assert_eq(file_make(T.seg, BIG, 0), 0);
    char d[64];
    int st = proc_run(full_child, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "full disk: %s",
              proc_describe(st, d, sizeof d));
    recover();
    cr_expect(seg_holds(0, BIG, 'B'), "the retried commit");
}

/* a full disk whose commit is then abandoned: the earlier commit is intact */
static int full_abandon_child(void *arg)
{
    (void)arg;
    if (rvmt_init_create(T.log, SMALL_LOG, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL || fill_txn(b, 0, 1u << 20, 'a', flush) != RVM_SUCCESS)
        return 2;
    struct stat st;
    if (stat(T.log, &st) != 0)
        return 3;
    full_ino = st.st_ino;
    full_from = st.st_size;
    sysio.pwrite = full_pwrite_fn;
    sysio.fallocate = full_fallocate_fn;
    if (fill_txn(b, 0, BIG, 'B', flush) != RVM_EIO)
        return 4;
    _exit(0); /* dies with the disk still full */
}

Test(log_grow, disk_full_loses_nothing, .init = setup, .fini = teardown, .timeout = 120)
{
    cr_assert_eq(file_make(T.seg, BIG, 0), 0);
    char d[64];
    int st = proc_run(full_abandon_child, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "full disk: %s",
              proc_describe(st, d, sizeof d));
    recover();
    cr_expect(seg_holds(0, 1u << 20, 'a'), "the commit before the full disk");
    cr_expect(seg_holds(1u << 20, BIG - (1u << 20), 0), "nothing of the refused commit");
}

/* ---- a crash at each step of a growing commit ------------------------------------------- */

#define STEP_BIG ((size_t)12 << 20) /* three times the log: it grows */

static int step_at; /* die at this call of fallocate/pwrite/fdatasync on the log */
static int step_calls;

/* step_hit -- count a call on the log file; the process dies (as if killed) at step_at */
static void step_hit(int fd)
{
    struct stat st;
    if (sysio_default.fstat(fd, &st) == 0 && st.st_ino == full_ino && ++step_calls == step_at)
        _exit(0);
}

static ssize_t step_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    step_hit(fd);
    return sysio_default.pwrite(fd, buf, n, off);
}

static int step_fdatasync(int fd)
{
    step_hit(fd);
    return sysio_default.fdatasync(fd);
}

static int step_fallocate(int fd, int mode, off_t off, off_t len)
{
    step_hit(fd);
    return sysio_default.fallocate(fd, mode, off, len);
}

/* step_child -- 'A' over the first MiB, then the 12 MiB 'B' commit dying at call *arg;
 * exit code 0 if it died, 10 if the commit completed first */
static int step_child(void *arg)
{
    step_at = *(int *)arg;
    if (rvmt_init_create(T.log, SMALL_LOG, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL || fill_txn(b, 0, 1u << 20, 'A', flush) != RVM_SUCCESS)
        return 2;
    struct stat st;
    if (stat(T.log, &st) != 0)
        return 3;
    full_ino = st.st_ino;
    sysio.pwrite = step_pwrite;
    sysio.fdatasync = step_fdatasync;
    sysio.fallocate = step_fallocate;
    if (fill_txn(b, 0, STEP_BIG, 'B', flush) != RVM_SUCCESS)
        return 4;
    _exit(10);
}

/* again_child -- after the crash: the log opens and takes another growing commit ('C') */
static int again_child(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 1;
    char *b = map_seg();
    if (b == NULL)
        return 2;
    if (fill_txn(b, 0, STEP_BIG, 'C', flush) != RVM_SUCCESS)
        return 3;
    _exit(0);
}

Test(log_grow, crash_at_each_step_of_growth, .init = setup, .fini = teardown, .timeout = 300)
{
    int done = 0, k;
    for (k = 1; k <= 40 && !done; k++) {
        tdir_remove(T.dir);
        tpaths_make(&T, "grow");
        cr_assert_eq(file_make(T.seg, BIG, 0), 0);
        char d[64];
        int st = proc_run(step_child, &k);
        cr_assert(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 10), "step %d: %s",
                  k, proc_describe(st, d, sizeof d));
        done = WEXITSTATUS(st) == 10;
        recover();
        int old = seg_holds(0, 1u << 20, 'A') && seg_holds(1u << 20, STEP_BIG - (1u << 20), 0);
        int fresh = seg_holds(0, STEP_BIG, 'B');
        cr_assert(old || fresh,
                  "died at log call %d of the growing commit: recovery gives "
                  "neither the previous commit nor the new one exactly",
                  k);
        cr_assert(!done || fresh, "the completed commit is missing");
        st = proc_run(again_child, NULL);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "step %d: the next commit after the "
                  "crash: %s",
                  k, proc_describe(st, d, sizeof d));
        recover();
        cr_assert(seg_holds(0, STEP_BIG, 'C'), "step %d: the commit after the crash", k);
    }
    cr_assert(done, "the growing commit never completed within 40 log calls");
    fprintf(stderr,
            "a crash at each of the %d log calls of the growing commit: recovery gave "
            "one of the two commits every time\n",
            k - 2);
}

/* ---- SIGKILL during a growing commit ------------------------------------------------------ */

/* crash_child -- commit 'A' over the first MiB, say so on fd, then the 40 MiB 'B' commit
 * that grows the log; then say "done" with its duration in microseconds, and wait */
static void crash_child(int fd)
{
    if (rvmt_init_create(T.log, SMALL_LOG, 0, 0) != RVM_SUCCESS)
        _exit(1);
    char *b = map_seg();
    if (b == NULL || fill_txn(b, 0, 1u << 20, 'A', flush) != RVM_SUCCESS)
        _exit(2);
    char c = 'r';
    if (write(fd, &c, 1) != 1)
        _exit(3);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (fill_txn(b, 0, BIG, 'B', flush) != RVM_SUCCESS)
        _exit(4);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    if (write(fd, &us, sizeof us) != (ssize_t)sizeof us)
        _exit(5);
    pause();
    _exit(0);
}

/* crash_round -- one child killed delay_us after it began the big commit (-1: not killed);
 * returns the commit's duration if it finished, else 0; checks recovery */
static long crash_round(long delay_us, int round)
{
    tdir_remove(T.dir);
    tpaths_make(&T, "grow");
    cr_assert_eq(file_make(T.seg, BIG, 0), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(p[1]);
    }
    close(p[1]);
    char c = 0;
    cr_assert_eq(read(p[0], &c, 1), 1, "round %d: the child did not make its first commit", round);
    if (delay_us >= 0) {
        struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    long us = 0; /* the child's "done": it arrives only if the commit returned */
    int acked = read(p[0], &us, sizeof us) == (ssize_t)sizeof us;
    if (delay_us < 0)
        kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(p[0]);
    recover();
    int old = seg_holds(0, 1u << 20, 'A') && seg_holds(1u << 20, BIG - (1u << 20), 0);
    int fresh = seg_holds(0, BIG, 'B');
    cr_assert(old || fresh,
              "round %d (kill after %ld us): recovery gives neither the previous "
              "commit nor the new one exactly",
              round, delay_us);
    cr_assert(!acked || fresh, "round %d: the acknowledged commit is missing", round);
    return acked ? us : 0;
}

Test(log_grow, sigkill_during_growing_commit, .init = setup, .fini = teardown, .timeout = 300)
{
    long full = crash_round(-1, 0); /* how long the commit takes here, now */
    cr_assert_gt(full, 0);
    trng_t r = {(uint64_t)time(NULL)};
    long rounds = 6 * test_scale();
    int olds = 0;
    for (long i = 1; i <= rounds; i++) {
        long delay = (long)trng_below(&r, (uint64_t)full + 1);
        if (crash_round(delay, (int)i) == 0)
            olds++;
    }
    fprintf(stderr,
            "growing commit of 40 MiB takes %ld us; %ld kills, %d before its "
            "acknowledgement\n",
            full, rounds, olds);
}
