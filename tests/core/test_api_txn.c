/* SPDX-License-Identifier: MIT */
/*
 * test_api_txn.c -- transactions: begin/set_range/modify_bytes/abort/end,
 * restore vs no_restore abort, flush vs no_flush plus rvm_flush, truncation into the segment
 * file, and what survives a process that dies without rvm_terminate (recovery runs in a fresh
 * process, as it would after a crash).
 */
#include <criterion/criterion.h>

#include "core_test.h"

static tpaths_t T;
static long PS;
#define SEG_PAGES 8

/* setup -- fresh directory with a zeroed 8-page segment (no RVM yet: some tests fork first). */
static void setup(void)
{
    tpaths_make(&T, "txn");
    PS = sysconf(_SC_PAGESIZE);
    cr_assert_eq(file_make(T.seg, SEG_PAGES * (size_t)PS, 0), 0);
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(api_txn, .init = setup, .fini = teardown, .timeout = 30);

/* start -- initialise RVM with a fresh log and map the whole segment into *r. */
static void start(rvm_region_t *r, rvm_length_t flags, rvm_length_t log_len)
{
    cr_assert_eq(rvmt_init_create(T.log, log_len, flags, 0), RVM_SUCCESS);
    rvmt_region(r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(r, NULL), RVM_SUCCESS);
}

Test(api_txn, begin_errors)
{
    rvm_region_t r;
    start(&r, 0, 64 * 1024);
    rvm_tid_t t;
    cr_expect_eq(rvm_begin_transaction(NULL, restore), RVM_ETID);
    memset(&t, 0, sizeof t);
    cr_expect_eq(rvm_begin_transaction(&t, restore), RVM_ETID, "tid never initialised");
    rvm_init_tid(&t);
    cr_expect_eq(rvm_begin_transaction(&t, flush), RVM_EMODE);
    cr_expect_eq(rvm_begin_transaction(&t, no_flush), RVM_EMODE);
    cr_expect_eq(rvm_begin_transaction(&t, (rvm_mode_t)0), RVM_EMODE);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_expect(t.uname.tv_sec != 0 || t.uname.tv_usec != 0, "begin fills tid->uname");
    cr_expect_not_null(t.tid, "begin fills tid->tid");
    cr_expect_eq(rvm_end_transaction(&t, restore), RVM_EMODE);
    cr_expect_eq(rvm_end_transaction(&t, no_restore), RVM_EMODE);
    /* on an end error the tid stays valid */
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
}

Test(api_txn, set_range_errors)
{
    rvm_region_t r;
    start(&r, 0, 64 * 1024);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_expect_eq(rvm_set_range(&t, r.vmaddr, 8), RVM_ETID, "not begun");
    cr_expect_eq(rvm_set_range(NULL, r.vmaddr, 8), RVM_ETID);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    static char not_mapped[64];
    cr_expect_eq(rvm_set_range(&t, not_mapped, 8), RVM_ENOT_MAPPED);
    cr_expect_eq(rvm_set_range(&t, r.vmaddr + r.length - 4, 8), RVM_ENOT_MAPPED,
                 "range runs past the end of the region");
    cr_expect_eq(rvm_set_range(&t, r.vmaddr - 4, 8), RVM_ENOT_MAPPED);
    cr_expect_eq(rvm_set_range(&t, r.vmaddr, r.length), RVM_SUCCESS, "the whole region");
    cr_expect_eq(rvm_modify_bytes(&t, not_mapped, "x", 1), RVM_ENOT_MAPPED);
    cr_assert_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    cr_expect_eq(rvm_set_range(&t, r.vmaddr, 8), RVM_ETID, "already ended");
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_ETID, "ended twice");
    cr_expect_eq(rvm_abort_transaction(&t), RVM_ETID, "abort after end");
    rvm_tid_t u;
    rvm_init_tid(&u);
    cr_expect_eq(rvm_abort_transaction(&u), RVM_ETID, "abort of a tid never begun");
    cr_expect_eq(rvm_abort_transaction(NULL), RVM_ETID);
    cr_expect_eq(rvm_end_transaction(NULL, flush), RVM_ETID);
}

Test(api_txn, set_range_spanning_two_regions_refused)
{
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    char *area =
        mmap(NULL, 2 * (size_t)PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(area, MAP_FAILED);
    rvm_region_t a, b;
    rvmt_region(&a, T.seg, 0, (rvm_length_t)PS, area);
    rvmt_region(&b, T.seg, 4 * (rvm_length_t)PS, (rvm_length_t)PS, area + PS);
    cr_assert_eq(rvm_map(&a, NULL), RVM_SUCCESS);
    cr_assert_eq(rvm_map(&b, NULL), RVM_SUCCESS);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_expect_eq(rvm_set_range(&t, area + PS - 4, 8), RVM_ENOT_MAPPED,
                 "a range must lie inside one region, even if VM-contiguous");
    cr_expect_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
}

Test(api_txn, zero_length_set_range_with_optimizations)
{
    rvm_region_t r;
    start(&r, RVM_ALL_OPTIMIZATIONS, 64 * 1024);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_expect_eq(rvm_set_range(&t, r.vmaddr, 0), RVM_SUCCESS);
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
}

Test(api_txn, restore_abort_restores_in_reverse_order)
{
    rvm_region_t r;
    start(&r, 0, 64 * 1024);
    memcpy(r.vmaddr, "original", 8); /* not in a transaction: volatile until committed */
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr, "AAAAAAAA", 8), RVM_SUCCESS);
    /* overlapping second range: old values must be restored newest first */
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 2, "BBBB", 4), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&t, r.vmaddr + PS, 16), RVM_SUCCESS);
    memset(r.vmaddr + PS, 'C', 16);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_expect_eq(memcmp(r.vmaddr, "original", 8), 0, "got %.8s", r.vmaddr);
    for (int i = 0; i < 16; i++)
        cr_expect_eq(r.vmaddr[PS + i], 0);
    cr_expect_eq(rvm_abort_transaction(&t), RVM_ETID, "aborted twice");
}

Test(api_txn, restore_abort_with_coalescing)
{
    rvm_region_t r;
    start(&r, RVM_ALL_OPTIMIZATIONS, 64 * 1024);
    memcpy(r.vmaddr, "0123456789abcdef", 16);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 4, "XXXX", 4), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 2, "YYYYYYYY", 8), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 10, "ZZ", 2), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 0, "W", 1), RVM_SUCCESS);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_expect_eq(memcmp(r.vmaddr, "0123456789abcdef", 16), 0, "got %.16s", r.vmaddr);
}

Test(api_txn, no_restore_abort_leaves_memory_modified)
{
    rvm_region_t r;
    start(&r, 0, 64 * 1024);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, no_restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr, "modified", 8), RVM_SUCCESS);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_expect_eq(memcmp(r.vmaddr, "modified", 8), 0);
    /* but nothing reaches the segment */
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[8];
    cr_assert_eq(file_read(T.seg, b, 8, 0), 0);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(b[i], 0, "aborted data reached the segment file");
}

Test(api_txn, truncate_writes_committed_data_to_segment)
{
    rvm_region_t r;
    start(&r, 0, 64 * 1024);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 3 * PS + 7, "truncated", 9), RVM_SUCCESS);
    cr_assert_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, no_restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 10, "nf", 2), RVM_SUCCESS);
    cr_assert_eq(rvm_end_transaction(&t, no_flush), RVM_SUCCESS);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[9];
    cr_assert_eq(file_read(T.seg, b, 9, 3 * PS + 7), 0);
    cr_expect_eq(memcmp(b, "truncated", 9), 0);
    cr_assert_eq(file_read(T.seg, b, 2, 10), 0);
    cr_expect_eq(memcmp(b, "nf", 2), 0, "rvm_truncate flushes no_flush commits first");
    rvm_options_t q;
    rvm_init_options(&q);
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect_eq(q.log_empty, rvm_true, "log empty after truncation");
}

Test(api_txn, end_too_big_for_log)
{
    /* a transaction whose record cannot fit in a log that may not grow (its bound is its
     * size, the minimum 64 KiB): RVM_ETOO_BIG, tid stays valid */
    cr_assert_eq(file_make(T.seg2, 64 * (size_t)PS, 0), 0);
    cr_assert_eq(rvmt_init_create(T.log, 16 * 1024, 0, 0), RVM_SUCCESS);
    rvm_log_max_len = 64 * 1024;
    rvm_region_t r;
    rvmt_region(&r, T.seg2, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&t, r.vmaddr, 32 * (rvm_length_t)PS), RVM_SUCCESS);
    memset(r.vmaddr, 'Z', 32 * (size_t)PS);
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_ETOO_BIG);
    cr_expect(rvm_errmsg != NULL && strstr(rvm_errmsg, T.log) != NULL &&
                  strstr(rvm_errmsg, "rvm_log_max_len") != NULL,
              "the refusal names the log and the bound: %s", rvm_errmsg ? rvm_errmsg : "");
    cr_expect_eq(rvm_abort_transaction(&t), RVM_SUCCESS, "tid still valid after ETOO_BIG");
    cr_expect_eq(r.vmaddr[0], 0, "restore abort after ETOO_BIG");
    rvm_log_max_len = 0;
    /* and the library keeps working */
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr, "ok", 2), RVM_SUCCESS);
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
}

Test(api_txn, terminate_with_open_transaction)
{
    rvm_region_t r;
    start(&r, 0, 64 * 1024);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_expect_eq(rvm_terminate(), RVM_EUNCOMMIT);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(api_txn, many_ranges_and_concurrent_tids)
{
    rvm_region_t r;
    start(&r, 0, 256 * 1024);
    rvm_tid_t a, b;
    rvm_init_tid(&a);
    rvm_init_tid(&b);
    cr_assert_eq(rvm_begin_transaction(&a, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_begin_transaction(&b, restore), RVM_SUCCESS);
    for (int i = 0; i < 500; i++) {
        char v = (char)(i & 0x7f);
        cr_assert_eq(rvm_modify_bytes(&a, r.vmaddr + i * 8, &v, 1), RVM_SUCCESS);
        cr_assert_eq(rvm_modify_bytes(&b, r.vmaddr + 4 * PS + i * 8, &v, 1), RVM_SUCCESS);
    }
    cr_assert_eq(rvm_end_transaction(&b, flush), RVM_SUCCESS);
    cr_assert_eq(rvm_abort_transaction(&a), RVM_SUCCESS);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    unsigned char *seg = malloc(SEG_PAGES * (size_t)PS);
    cr_assert_eq(file_read(T.seg, seg, SEG_PAGES * (size_t)PS, 0), 0);
    for (int i = 0; i < 500; i++) {
        cr_expect_eq(seg[i * 8], 0, "aborted tid a reached the segment at %d", i);
        cr_expect_eq(seg[4 * PS + i * 8], (unsigned char)(i & 0x7f));
    }
    free(seg);
}

/* ---- durability across a process that dies without rvm_terminate ---- */

enum { DIE_FLUSH, DIE_NOFLUSH_THEN_RVM_FLUSH, DIE_NOFLUSH_TERMINATE, DIE_ABORTED, DIE_OPEN };

/* child_commit_and_die -- commit "payload" in the way *arg says, then _exit without cleanup. */
static int child_commit_and_die(void *arg)
{
    int how = *(int *)arg;
    if (rvmt_init_create(T.log, 64 * 1024, 0, 0) != RVM_SUCCESS)
        return 10;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 11;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, how == DIE_ABORTED ? no_restore : restore) != RVM_SUCCESS)
        return 12;
    if (rvm_modify_bytes(&t, r.vmaddr + 2 * PS + 1, "payload", 7) != RVM_SUCCESS)
        return 13;
    switch (how) {
    case DIE_FLUSH:
        if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
            return 14;
        break;
    case DIE_NOFLUSH_THEN_RVM_FLUSH:
        if (rvm_end_transaction(&t, no_flush) != RVM_SUCCESS || rvm_flush() != RVM_SUCCESS)
            return 15;
        break;
    case DIE_NOFLUSH_TERMINATE:
        if (rvm_end_transaction(&t, no_flush) != RVM_SUCCESS || rvm_terminate() != RVM_SUCCESS)
            return 16;
        break;
    case DIE_ABORTED:
        if (rvm_abort_transaction(&t) != RVM_SUCCESS || rvm_flush() != RVM_SUCCESS)
            return 17;
        break;
    case DIE_OPEN:
        if (rvm_flush() != RVM_SUCCESS)
            return 18;
        break;
    }
    return 0; /* _exit: no terminate, no truncation */
}

static unsigned char *recovered; /* shared with the recovery child */

/* child_recover -- fresh process: initialise (recovery), map, copy the image out. */
static int child_recover(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 20;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 21;
    memcpy(recovered, r.vmaddr, r.length);
    return rvm_terminate() == RVM_SUCCESS ? 0 : 22;
}

/* die_and_recover -- run child_commit_and_die(how), then recovery; 1 if "payload" is there. */
static int die_and_recover(int how)
{
    char d[64];
    recovered = shared_alloc(SEG_PAGES * (size_t)PS);
    cr_assert_not_null(recovered);
    int st = proc_run(child_commit_and_die, &how);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "committing child: %s",
              proc_describe(st, d, sizeof d));
    st = proc_run(child_recover, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovering child: %s",
              proc_describe(st, d, sizeof d));
    /* the segment file itself must hold the same image after recovery (recovery truncates) */
    unsigned char b[7];
    cr_assert_eq(file_read(T.seg, b, 7, 2 * PS + 1), 0);
    cr_expect_eq(memcmp(b, recovered + 2 * PS + 1, 7), 0, "segment file and mapped image differ");
    return memcmp(recovered + 2 * PS + 1, "payload", 7) == 0;
}

Test(api_txn, flush_commit_survives_crash)
{
    cr_expect(die_and_recover(DIE_FLUSH), "flush commit lost");
}

Test(api_txn, no_flush_then_rvm_flush_survives_crash)
{
    cr_expect(die_and_recover(DIE_NOFLUSH_THEN_RVM_FLUSH), "no_flush commit + rvm_flush lost");
}

Test(api_txn, no_flush_then_terminate_survives)
{
    cr_expect(die_and_recover(DIE_NOFLUSH_TERMINATE), "rvm_terminate must flush the queue");
}

Test(api_txn, aborted_never_appears_after_crash)
{
    cr_expect(!die_and_recover(DIE_ABORTED), "aborted transaction appeared after recovery");
    for (size_t i = 0; i < SEG_PAGES * (size_t)PS; i++)
        if (recovered[i] != 0)
            cr_assert_fail("byte %zu is 0x%02x after recovery; expected the zeroed segment", i,
                           recovered[i]);
}

Test(api_txn, uncommitted_never_appears_after_crash)
{
    cr_expect(!die_and_recover(DIE_OPEN), "an open transaction's data appeared after recovery");
}

/* child_commit_x -- fresh process (64 KiB log): commit 'X' over 64 bytes at page 2 of T.seg
 * and page 3 of T.seg2, then ~40 KiB of commits to pages 5-6, then 'Z' over the same 64 bytes
 * of page 2 / page 3; die without terminate or truncation. Recovery applies all of it. */
static int child_commit_x(void *arg)
{
    (void)arg;
    rvm_return_t rc =
        file_size(T.log) < 0 ? rvmt_init_create(T.log, 64 * 1024, 0, 0) : rvmt_init(T.log, 0, 0);
    if (rc != RVM_SUCCESS)
        return 1;
    rvm_region_t r, r2;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    rvmt_region(&r2, T.seg2, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS || rvm_map(&r2, NULL) != RVM_SUCCESS)
        return 2;
    for (int i = 0; i < 42; i++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        char v[1000];
        int edge = i == 0 || i == 41;
        memset(v, i == 0 ? 'X' : i == 41 ? 'Z' : 'a' + i % 26, sizeof v);
        char *a = edge ? r.vmaddr + 2 * PS : r.vmaddr + (5 + (size_t)(i & 1)) * PS;
        char *b = edge ? r2.vmaddr + 3 * PS : r2.vmaddr + 5 * PS;
        size_t n = edge ? 64 : 500;
        if (rvm_begin_transaction(&t, restore) || rvm_modify_bytes(&t, a, v, n) ||
            rvm_modify_bytes(&t, b, v, n) || rvm_end_transaction(&t, flush))
            return 3;
    }
    return 0;
}

/* child_private_after_crash -- fresh process: recovery, both segments mapped MAP_PRIVATE,
 * then commits to page 0 only, through log-full truncations (truncate = *arg). Memory the
 * program never wrote must not change: page 2 / page 3 must hold 'Z' throughout. */
static int child_private_after_crash(void *arg)
{
    long truncate = *(long *)arg;
    if (rvmt_init(T.log, RVM_MAP_PRIVATE, truncate) != RVM_SUCCESS)
        return 10;
    rvm_region_t r, r2;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    rvmt_region(&r2, T.seg2, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS || rvm_map(&r2, NULL) != RVM_SUCCESS)
        return 11;
    if (r.vmaddr[2 * PS] != 'Z' || r2.vmaddr[3 * PS] != 'Z') {
        fprintf(stderr,
                "MAP_PRIVATE after a crash: recovered bytes missing at map time "
                "(seg 0x%02x, seg2 0x%02x, want 'Z')\n",
                r.vmaddr[2 * PS], r2.vmaddr[3 * PS]);
        return 12;
    }
    for (int i = 0; i < 200; i++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        char v[1000];
        memset(v, 'y', sizeof v);
        if (rvm_begin_transaction(&t, restore) || rvm_modify_bytes(&t, r.vmaddr, v, sizeof v) ||
            rvm_end_transaction(&t, flush))
            return 13;
        if (r.vmaddr[2 * PS] != 'Z' || r2.vmaddr[3 * PS] != 'Z') {
            fprintf(stderr,
                    "MAP_PRIVATE after a crash (truncate=%ld): memory the program never "
                    "wrote changed after its commit %d: seg page 2 '%c', seg2 page 3 '%c', want "
                    "'Z' (an older committed value re-applied by truncation)\n",
                    truncate, i, r.vmaddr[2 * PS], r2.vmaddr[3 * PS]);
            return 14;
        }
    }
    if (rvm_truncate() != RVM_SUCCESS)
        return 15;
    if (r.vmaddr[2 * PS] != 'Z' || r2.vmaddr[3 * PS] != 'Z')
        return 16;
    return 0;
}

Test(api_txn, map_private_after_crash_sees_recovered_data)
{
    char d[64];
    cr_assert_eq(file_make(T.seg2, 8 * (size_t)PS, 0), 0);
    long truncs[] = {0, 50};
    for (size_t k = 0; k < 2; k++) {
        int st = proc_run(child_commit_x, NULL);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", proc_describe(st, d, sizeof d));
        st = proc_run(child_private_after_crash, &truncs[k]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "truncate=%ld: %s", truncs[k],
                  proc_describe(st, d, sizeof d));
    }
}
