/* SPDX-License-Identifier: MIT */
/*
 * test_api_stats.c -- <rvm/rvm_statistics.h>: rvm_statistics validation and
 * version skew, the transaction counters, rvm_print_statistics, and the coalescing
 * optimisations seen through the statistics (RVM_COALESCE_RANGES: overlapping set_range calls
 * in one transaction cost one range; RVM_COALESCE_TRANS: N no_flush commits of the same bytes
 * cost about one record).
 */
#include <criterion/criterion.h>

#include "core_test.h"
#include <rvm/rvm_statistics.h>

static tpaths_t T;
static long PS;

/* setup -- fresh directory with a zeroed 4-page segment. */
static void setup(void)
{
    tpaths_make(&T, "stats");
    PS = sysconf(_SC_PAGESIZE);
    cr_assert_eq(file_make(T.seg, 4 * (size_t)PS, 0), 0);
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(api_stats, .init = setup, .fini = teardown, .timeout = 30);

/* start -- RVM with a fresh log and optimisation flags; the whole segment mapped into *r. */
static void start(rvm_region_t *r, rvm_length_t flags)
{
    cr_assert_eq(rvmt_init_create(T.log, 1024 * 1024, flags, 0), RVM_SUCCESS);
    rvmt_region(r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(r, NULL), RVM_SUCCESS);
}

Test(api_stats, errors)
{
    rvm_statistics_t s;
    rvm_init_statistics(&s);
    cr_expect_eq(RVM_STATISTICS(&s), RVM_EINIT);
    cr_assert_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    cr_expect_eq(RVM_STATISTICS(&s), RVM_ELOG, "no log yet");
    rvm_options_t o;
    rvmt_options(&o, T.log);
    rvm_offset_t len = RVM_MK_OFFSET(0, 64 * 1024);
    cr_assert_eq(rvm_create_log(&o, &len, 0600), RVM_SUCCESS);
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    cr_expect_eq(rvm_statistics("RVM Statistics Version 1.0", &s), RVM_ESTAT_VERSION_SKEW);
    cr_expect_eq(RVM_STATISTICS(NULL), RVM_ESTATISTICS);
    s.struct_id = rvm_tid_id;
    cr_expect_eq(RVM_STATISTICS(&s), RVM_ESTATISTICS);
    rvm_init_statistics(&s);
    cr_expect_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
}

Test(api_stats, transaction_counters)
{
    rvm_region_t r;
    start(&r, 0);
    rvm_statistics_t s0, s;
    rvm_init_statistics(&s0);
    cr_assert_eq(RVM_STATISTICS(&s0), RVM_SUCCESS);
    rvm_tid_t t;
    for (int i = 0; i < 3; i++) {
        rvm_init_tid(&t);
        cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
        cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + i, "f", 1), RVM_SUCCESS);
        cr_assert_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    }
    for (int i = 0; i < 5; i++) {
        rvm_init_tid(&t);
        cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
        cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 100 + i, "n", 1), RVM_SUCCESS);
        cr_assert_eq(rvm_end_transaction(&t, no_flush), RVM_SUCCESS);
    }
    for (int i = 0; i < 2; i++) {
        rvm_init_tid(&t);
        cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
        cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 200 + i, "a", 1), RVM_SUCCESS);
        cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    }
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    rvm_init_statistics(&s);
    cr_assert_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
    cr_expect_eq(s.n_flush_commit - s0.n_flush_commit, 3, "n_flush_commit %lu", s.n_flush_commit);
    cr_expect_eq(s.n_no_flush_commit - s0.n_no_flush_commit, 5, "n_no_flush_commit %lu",
                 s.n_no_flush_commit);
    cr_expect_eq(s.n_abort - s0.n_abort, 2, "n_abort %lu", s.n_abort);
    cr_expect_eq(s.n_uncommit, 1, "one open transaction: n_uncommit %lu", s.n_uncommit);
    cr_expect_eq(s.n_no_flush, 5, "queued no_flush transactions: %lu", s.n_no_flush);
    /* the original's semantics: tot_* move only at truncation (none ran here) */
    cr_expect_eq(s.tot_flush_commit, s0.tot_flush_commit);
    cr_expect_eq(s.tot_no_flush_commit, s0.tot_no_flush_commit);
    cr_expect_eq(s.tot_abort, s0.tot_abort);
    cr_expect(RVM_OFFSET_GTR(s.log_written, s0.log_written) ||
                  RVM_OFFSET_GTR(s.tot_log_written, s0.tot_log_written),
              "log_written grows with flush commits");
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_assert_eq(rvm_flush(), RVM_SUCCESS);
    rvm_init_statistics(&s);
    cr_assert_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
    cr_expect_eq(s.n_no_flush, 0, "rvm_flush empties the queue");
    cr_expect_eq(s.n_uncommit, 0);
    cr_expect_geq(s.n_rvm_flush + s.tot_rvm_flush, 1, "rvm_flush counted");

    /* rvm_print_statistics writes a human-readable report */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_expect_eq(rvm_print_statistics(&s, f), RVM_SUCCESS);
    fclose(f);
    cr_expect_gt(len, 50, "print_statistics wrote %zu bytes", len);
    free(buf);
    rvm_statistics_t bad;
    rvm_init_statistics(&bad);
    bad.struct_id = rvm_region_id;
    f = fopen("/dev/null", "w");
    cr_expect_eq(rvm_print_statistics(&bad, f), RVM_ESTATISTICS);
    fclose(f);
}

/* The n_* counters are those of the current epoch; a truncation adds them to the tot_*
 * totals and starts a new epoch, as in the original (a program printing n_ + tot_ must not
 * see every commit twice). */
Test(api_stats, truncation_moves_the_epoch_into_the_totals)
{
    rvm_region_t r;
    start(&r, 0);
    rvm_statistics_t s0, s1, s2;
    rvm_init_statistics(&s0);
    cr_assert_eq(RVM_STATISTICS(&s0), RVM_SUCCESS);
    rvm_tid_t t;
    for (int i = 0; i < 6; i++) {
        rvm_init_tid(&t);
        cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
        cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + i, "e", 1), RVM_SUCCESS);
        if (i == 5)
            cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
        else
            cr_assert_eq(rvm_end_transaction(&t, i < 3 ? flush : no_flush), RVM_SUCCESS);
    }
    rvm_init_statistics(&s1);
    cr_assert_eq(RVM_STATISTICS(&s1), RVM_SUCCESS);
    cr_expect_eq(s1.n_flush_commit - s0.n_flush_commit, 3);
    cr_expect_eq(s1.tot_flush_commit, s0.tot_flush_commit, "counted twice before truncation");
    cr_expect_eq(s1.tot_no_flush_commit, s0.tot_no_flush_commit);
    cr_expect_eq(s1.tot_abort, s0.tot_abort);
    cr_expect_eq(s1.tot_log_written.low, s0.tot_log_written.low);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    rvm_init_statistics(&s2);
    cr_assert_eq(RVM_STATISTICS(&s2), RVM_SUCCESS);
    cr_expect_eq(s2.n_flush_commit, 0, "a truncation starts a new epoch");
    cr_expect_eq(s2.n_no_flush_commit, 0);
    cr_expect_eq(s2.n_abort, 0);
    cr_expect_eq(s2.log_written.low, 0);
    cr_expect_eq(s2.tot_flush_commit, s1.tot_flush_commit + s1.n_flush_commit);
    cr_expect_eq(s2.tot_no_flush_commit, s1.tot_no_flush_commit + s1.n_no_flush_commit);
    cr_expect_eq(s2.tot_abort, s1.tot_abort + s1.n_abort);
    cr_expect_geq(s2.tot_log_written.low, s1.tot_log_written.low + s1.log_written.low);
    cr_expect_eq(s2.tot_rvm_flush, s1.tot_rvm_flush + s1.n_rvm_flush + 1,
                 "rvm_truncate's own flush belongs to the epoch it ends");
}

/* log_bytes -- bytes written to the log so far (this epoch + the totals of earlier ones). */
static unsigned long log_bytes(void)
{
    rvm_statistics_t s;
    rvm_init_statistics(&s);
    cr_assert_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
    return s.log_written.low + s.tot_log_written.low;
}

/* run_range_workload -- one transaction with 64 overlapping 64-byte set_ranges; bytes logged. */
static unsigned long run_range_workload(rvm_region_t *r)
{
    unsigned long before = log_bytes();
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(rvm_set_range(&t, r->vmaddr + 1000 + (i % 8), 64), RVM_SUCCESS);
        r->vmaddr[1000 + i % 8] = (char)i;
    }
    cr_assert_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    return log_bytes() - before;
}

Test(api_stats, coalesce_ranges_shrinks_record)
{
    rvm_region_t r;
    start(&r, 0);
    unsigned long plain = run_range_workload(&r);
    rvm_options_t o;
    rvm_init_options(&o);
    o.flags = RVM_COALESCE_RANGES;
    o.truncate = 0;
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    rvm_statistics_t s0, s;
    rvm_init_statistics(&s0);
    cr_assert_eq(RVM_STATISTICS(&s0), RVM_SUCCESS);
    unsigned long coalesced = run_range_workload(&r);
    rvm_init_statistics(&s);
    cr_assert_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
    cr_expect_gt(plain, 64 * 64, "without coalescing all 64 ranges are logged: %lu", plain);
    cr_expect_lt(coalesced, 64 * 16, "coalesced: ~71 bytes of data, got %lu", coalesced);
    cr_expect_gt(s.n_range_elim + s.tot_range_elim, s0.n_range_elim + s0.tot_range_elim,
                 "range eliminations counted");
    cr_expect_eq(memcmp(r.vmaddr + 1000, (char[]){56, 57, 58, 59, 60, 61, 62, 63}, 8), 0);
    /* the coalesced commit is durable and correct after truncation */
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[8];
    cr_assert_eq(file_read(T.seg, b, 8, 1000), 0);
    cr_expect_eq(memcmp(b, (char[]){56, 57, 58, 59, 60, 61, 62, 63}, 8), 0);
}

/* run_trans_workload -- 100 no_flush commits of the same 64 bytes, then rvm_flush; bytes logged. */
static unsigned long run_trans_workload(rvm_region_t *r, char base)
{
    unsigned long before = log_bytes();
    for (int i = 0; i < 100; i++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        cr_assert_eq(rvm_begin_transaction(&t, no_restore), RVM_SUCCESS);
        char v[64];
        memset(v, base + (char)(i % 20), sizeof v);
        cr_assert_eq(rvm_modify_bytes(&t, r->vmaddr + 2048, v, sizeof v), RVM_SUCCESS);
        cr_assert_eq(rvm_end_transaction(&t, no_flush), RVM_SUCCESS);
    }
    cr_assert_eq(rvm_flush(), RVM_SUCCESS);
    return log_bytes() - before;
}

Test(api_stats, coalesce_trans_shrinks_log_traffic)
{
    rvm_region_t r;
    start(&r, 0);
    unsigned long plain = run_trans_workload(&r, 'a');
    rvm_options_t o;
    rvm_init_options(&o);
    o.flags = RVM_COALESCE_TRANS;
    o.truncate = 0;
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    rvm_statistics_t s0, s;
    rvm_init_statistics(&s0);
    cr_assert_eq(RVM_STATISTICS(&s0), RVM_SUCCESS);
    unsigned long coalesced = run_trans_workload(&r, 'A');
    rvm_init_statistics(&s);
    cr_assert_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
    cr_expect_geq(plain, 100 * 64, "100 separate no_flush records: %lu bytes", plain);
    cr_expect_lt(coalesced, plain / 10, "coalesced no_flush commits: %lu vs %lu bytes", coalesced,
                 plain);
    cr_expect_gt(s.n_trans_elim + s.tot_trans_elim + s.n_trans_coalesced + s.tot_trans_coalesced,
                 s0.n_trans_elim + s0.tot_trans_elim + s0.n_trans_coalesced +
                     s0.tot_trans_coalesced,
                 "inter-transaction coalescing counted");
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[64], want[64];
    memset(want, 'A' + 99 % 20, sizeof want);
    cr_assert_eq(file_read(T.seg, b, 64, 2048), 0);
    cr_expect_eq(memcmp(b, want, 64), 0, "last of the coalesced commits wins");
}

Test(api_stats, coalesce_trans_keeps_abort_correct)
{
    /* coalescing queued no_flush commits must not let a later abort leak or lose data */
    rvm_region_t r;
    start(&r, RVM_ALL_OPTIMIZATIONS);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr, "first", 5), RVM_SUCCESS);
    cr_assert_eq(rvm_end_transaction(&t, no_flush), RVM_SUCCESS);
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 2, "XXXXXX", 6), RVM_SUCCESS);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_expect_eq(memcmp(r.vmaddr, "first\0\0\0", 8), 0);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[8];
    cr_assert_eq(file_read(T.seg, b, 8, 0), 0);
    cr_expect_eq(memcmp(b, "first\0\0\0", 8), 0);
}

/* many_commits -- n flush commits of 1 KiB each, cycling over the segment; 0 or the code. */
static rvm_return_t many_commits(rvm_region_t *r, int n, int seed)
{
    char v[1024];
    for (int i = 0; i < n; i++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        rvm_return_t rc = rvm_begin_transaction(&t, no_restore);
        memset(v, (char)(seed + i), sizeof v);
        size_t off = (size_t)(i % 15) * 1024;
        if (!rc)
            rc = rvm_modify_bytes(&t, r->vmaddr + off, v, sizeof v);
        if (!rc)
            rc = rvm_end_transaction(&t, i % 4 ? no_flush : flush);
        if (rc)
            return rc;
    }
    return rvm_flush();
}

/* check_many -- the segment file after truncation holds the last value of each 1 KiB slot */
static void check_many(int n, int seed)
{
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[1024];
    for (int slot = 0; slot < 15 && slot < n; slot++) {
        int last = slot + ((n - 1 - slot) / 15) * 15;
        cr_assert_eq(file_read(T.seg, b, sizeof b, (off_t)slot * 1024), 0);
        for (size_t i = 0; i < sizeof b; i++)
            if (b[i] != (char)(seed + last))
                cr_assert_fail("slot %d byte %zu: 0x%02x, want 0x%02x (commit %d)", slot, i,
                               (unsigned char)b[i], (unsigned char)(seed + last), last);
    }
}

Test(api_stats, log_wraps_with_threshold_truncation)
{
    /* 1000 commits of 1 KiB through a 64 KiB log: the log wraps ~15 times; the truncation
     * thread (threshold 20%) must keep space free without any commit failing */
    rvm_region_t r;
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 20), RVM_SUCCESS);
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    rvm_return_t rc = many_commits(&r, 1000, 7);
    cr_assert_eq(rc, RVM_SUCCESS, "commit through a wrapping log: %s (%s)", rvm_return(rc),
                 rvm_errmsg ? rvm_errmsg : "");
    rvm_statistics_t s;
    rvm_init_statistics(&s);
    cr_assert_eq(RVM_STATISTICS(&s), RVM_SUCCESS);
    cr_expect_gt(s.tot_async_truncation + s.tot_sync_truncation, 0,
                 "no truncation counted although the log was filled ~15 times");
    check_many(1000, 7);
}

Test(api_stats, log_wraps_without_truncation_thread)
{
    /* truncate = 0 stops the thread: a full log must then be truncated synchronously by the
     * committer (the original's behaviour), never refused */
    rvm_region_t r;
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    rvm_return_t rc = many_commits(&r, 1000, 11);
    cr_assert_eq(rc, RVM_SUCCESS,
                 "commit into a full log without the truncation thread: %s "
                 "(%s)",
                 rvm_return(rc), rvm_errmsg ? rvm_errmsg : "");
    check_many(1000, 11);
}

Test(api_stats, coalesced_no_flush_queue_larger_than_log)
{
    /* RVM_COALESCE_TRANS: many no_flush commits to distinct bytes whose coalesced set is
     * larger than the log: rvm_flush must still succeed (or report RVM_ETOO_BIG cleanly) and
     * never lose acknowledged data */
    rvm_region_t r;
    cr_assert_eq(file_make(T.seg2, 64 * (size_t)PS, 0), 0);
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, RVM_ALL_OPTIMIZATIONS, 0), RVM_SUCCESS);
    rvmt_region(&r, T.seg2, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    rvm_return_t rc = RVM_SUCCESS;
    int i;
    for (i = 0; i < 48 && rc == RVM_SUCCESS; i++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        rc = rvm_begin_transaction(&t, no_restore);
        char v[2048];
        memset(v, 'a' + i % 26, sizeof v);
        if (!rc)
            rc = rvm_modify_bytes(&t, r.vmaddr + (size_t)i * 4096, v, sizeof v);
        if (!rc)
            rc = rvm_end_transaction(&t, no_flush);
    }
    if (rc == RVM_SUCCESS)
        rc = rvm_flush();
    cr_expect(rc == RVM_SUCCESS || rc == RVM_ETOO_BIG,
              "96 KiB of coalesced no_flush commits into a 64 KiB log: %s (%s)", rvm_return(rc),
              rvm_errmsg ? rvm_errmsg : "");
    fprintf(stderr, "coalesced no_flush queue of 96 KiB, 64 KiB log: rvm_flush -> %s\n",
            rvm_return(rc));
    if (rc == RVM_SUCCESS) {
        cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
        char b[2048];
        cr_assert_eq(file_read(T.seg2, b, sizeof b, 47 * 4096), 0);
        cr_expect_eq(b[0], 'a' + 47 % 26);
        cr_expect_eq(b[2047], 'a' + 47 % 26);
    }
}

Test(api_stats, truncation_thread_started_and_stopped_while_committing)
{
    /* rvm_set_options' truncate starts (1..100) and stops (0) the truncation thread; toggling
     * it between commits through a wrapping log must neither fail a commit nor lose data */
    rvm_region_t r;
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    for (int round = 0; round < 20; round++) {
        rvm_options_t o;
        rvm_init_options(&o);
        o.truncate = round % 2 ? 0 : 5 + round * 4;
        cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
        rvm_return_t rc = many_commits(&r, 60, round * 3);
        cr_assert_eq(rc, RVM_SUCCESS, "round %d (truncate %ld): %s (%s)", round, o.truncate,
                     rvm_return(rc), rvm_errmsg ? rvm_errmsg : "");
    }
    check_many(60, 19 * 3);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}
