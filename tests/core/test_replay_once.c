/* SPDX-License-Identifier: MIT */
/*
 * test_replay_once.c -- records that recovery applied are applied once: the process that
 * recovered them makes them durable in the segment and moves the log's head past them, so the
 * next start does not apply them again (a start that applies a big backlog every time, because
 * each run is too short for a truncation to finish, would make every restart slow).
 *
 * A first process commits records and is killed with all of them in the log. A second one
 * recovers (initialize), then either:
 *  - calls rvm_terminate at once, with no truncation thread (truncate 0): terminate takes the
 *    step itself;
 *  - never terminates, with a truncation thread whose threshold the backlog is far below: the
 *    thread takes the step anyway; the process waits for the log's head to move (polling the
 *    log's status, up to 60 s) and leaves with _exit.
 * The log's head must then lie past the recovered records, and a third process must find the
 * committed bytes, with nothing left to apply.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <time.h>

#include "core_test.h"
#include "rvm_int.h"

#define SEG_PAGES 64
#define N_TXNS 20

static tpaths_t T;
static long PS;

static void setup(void)
{
    tpaths_make(&T, "replay");
    PS = sysconf(_SC_PAGESIZE);
    cr_assert_eq(file_make(T.seg, SEG_PAGES * (size_t)PS, 0), 0);
}

static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(replay_once, .init = setup, .fini = teardown, .timeout = 120);

/* committed_at -- the byte at segment offset i after child_commit_then_die */
static unsigned char committed_at(size_t i)
{
    size_t page = i / (size_t)PS;
    return page < N_TXNS ? (unsigned char)('a' + page % 26) : 0;
}

/* child_commit_then_die -- N_TXNS flush transactions, one page each (~80 KiB of records in a
 * 4 MiB log: far below any truncation threshold), then SIGKILL */
static int child_commit_then_die(void *arg)
{
    (void)arg;
    rvm_region_t r;
    if (rvmt_init_create(T.log, 4u << 20, 0, 0) != RVM_SUCCESS)
        return 1;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 2;
    for (size_t p = 0; p < N_TXNS; p++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        char *at = r.vmaddr + p * (size_t)PS;
        if (rvm_begin_transaction(&t, no_restore) != RVM_SUCCESS ||
            rvm_set_range(&t, at, (rvm_length_t)PS) != RVM_SUCCESS)
            return 3;
        memset(at, 'a' + (int)(p % 26), (size_t)PS);
        if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
            return 4;
    }
    raise(SIGKILL);
    return 5;
}

/* log_head -- the head sequence number the log's status names (read from the file) */
static uint64_t log_head(void)
{
    int fd = open(T.log, O_RDONLY);
    if (fd < 0)
        return 0;
    struct log_status st;
    rvm_return_t rc = log_status_read(fd, T.log, &st, NULL);
    close(fd);
    return rc == RVM_SUCCESS ? st.head_seq : 0;
}

/* child_recover_terminate -- recover with no truncation thread, then terminate at once */
static int child_recover_terminate(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 10;
    return rvm_terminate() == RVM_SUCCESS ? 0 : 11;
}

/* child_recover_wait -- recover with a truncation thread at a 90 % threshold, wait until the
 * status names a head past the records (the thread's step), leave without terminating */
static int child_recover_wait(void *arg)
{
    uint64_t before = *(uint64_t *)arg;
    if (rvmt_init(T.log, 0, 90) != RVM_SUCCESS)
        return 20;
    for (int i = 0; i < 6000 && log_head() == before; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return log_head() > before ? 0 : 21;
}

/* child_check -- a fresh start: nothing left to apply, the committed bytes mapped */
static int child_check(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 30;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 31;
    for (size_t i = 0; i < r.length; i++)
        if ((unsigned char)r.vmaddr[i] != committed_at(i))
            return 32;
    return 0;
}

/* crash_then -- commit and die, recover with recover_fn, then check the head and the data */
static void crash_then(int (*recover_fn)(void *))
{
    char d[64];
    int st = proc_run(child_commit_then_die, NULL);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "committing child: %s",
              proc_describe(st, d, sizeof d));
    uint64_t before = log_head();
    cr_assert_gt(before, 0, "log status of %s unreadable", T.log);
    st = proc_run(recover_fn, &before);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovering child: %s",
              proc_describe(st, d, sizeof d));
    uint64_t after = log_head();
    cr_expect_geq(after, before + N_TXNS,
                  "the log's head is at seq %llu after the recovering process, was %llu: the "
                  "%d recovered records are still live and the next start applies them again",
                  (unsigned long long)after, (unsigned long long)before, N_TXNS);
    /* the segment file itself holds them (fsynced before the head moved) */
    unsigned char b[1];
    for (size_t p = 0; p < SEG_PAGES; p++) {
        cr_assert_eq(file_read(T.seg, b, 1, (off_t)(p * (size_t)PS + 7)), 0);
        cr_expect_eq(b[0], committed_at(p * (size_t)PS + 7), "segment page %zu", p);
    }
    st = proc_run(child_check, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "checking child: %s",
              proc_describe(st, d, sizeof d));
    cr_expect_eq(log_head(), after, "the checking start moved the head: it found records");
}

Test(replay_once, terminate_settles_recovered_records)
{
    crash_then(child_recover_terminate);
}

Test(replay_once, truncation_thread_settles_recovered_records_below_its_threshold)
{
    crash_then(child_recover_wait);
}
