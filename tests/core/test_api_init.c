/* SPDX-License-Identifier: MIT */
/*
 * test_api_init.c -- rvm_initialize, rvm_terminate, rvm_create_log, rvm_set_options and
 * rvm_query: version skew, record validation by struct_id, the "no log yet"
 * state, one log per process, restart refused after terminate. Criterion runs each test in its
 * own process, which is what makes "init after terminate" testable at all.
 */
#include <criterion/criterion.h>
#include <sys/param.h>

#include "core_test.h"
#include "log_format.h" /* internal: to forge a log of another format version */

static tpaths_t T;

/* setup -- fresh directory per test. */
static void setup(void)
{
    tpaths_make(&T, "init");
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(api_init, .init = setup, .fini = teardown, .timeout = 30);

Test(api_init, version_skew)
{
    cr_expect_eq(rvm_initialize("RVM Interface Version 1.2", NULL), RVM_EVERSION_SKEW);
    cr_expect_eq(rvm_initialize("", NULL), RVM_EVERSION_SKEW);
    /* a skewed call leaves the library uninitialised: the right version still works */
    cr_expect_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    cr_expect_eq(RVM_INIT(NULL), RVM_SUCCESS);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(api_init, calls_before_initialize_return_einit)
{
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_options_t o;
    rvm_init_options(&o);
    cr_expect_eq(rvm_terminate(), RVM_EINIT);
    cr_expect_eq(rvm_map(&r, NULL), RVM_EINIT);
    cr_expect_eq(rvm_unmap(&r), RVM_EINIT);
    cr_expect_eq(rvm_set_options(&o), RVM_EINIT);
    cr_expect_eq(rvm_begin_transaction(&t, restore), RVM_EINIT);
    cr_expect_eq(rvm_abort_transaction(&t), RVM_EINIT);
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_EINIT);
    cr_expect_eq(rvm_flush(), RVM_EINIT);
    cr_expect_eq(rvm_truncate(), RVM_EINIT);
}

Test(api_init, second_initialize_succeeds_restart_after_terminate_refused)
{
    cr_assert_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    cr_expect_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    cr_assert_eq(rvm_terminate(), RVM_SUCCESS);
    cr_expect_eq(rvm_initialize(RVM_VERSION, NULL), RVM_EINIT);
    cr_expect_eq(rvm_terminate(), RVM_EINIT);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_expect_eq(rvm_begin_transaction(&t, restore), RVM_EINIT);
}

Test(api_init, bad_options_record)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.struct_id = rvm_region_id;
    cr_expect_eq(rvm_initialize(RVM_VERSION, &o), RVM_EOPTIONS);
    o.struct_id = (rvm_struct_id_t)0;
    cr_expect_eq(rvm_initialize(RVM_VERSION, &o), RVM_EOPTIONS);
    cr_assert_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    cr_expect_eq(rvm_set_options(NULL), RVM_EOPTIONS);
    cr_expect_eq(rvm_set_options(&o), RVM_EOPTIONS);
    cr_expect_eq(rvm_query(NULL, NULL), RVM_EOPTIONS);
    cr_expect_eq(rvm_query(&o, NULL), RVM_EOPTIONS);
    rvm_offset_t len = RVM_MK_OFFSET(0, 65536);
    cr_expect_eq(rvm_create_log(NULL, &len, 0600), RVM_EOPTIONS);
}

Test(api_init, log_name_too_long)
{
    static char name[MAXPATHLEN + 16];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = 0;
    rvm_options_t o;
    rvmt_options(&o, name);
    cr_expect_eq(rvm_initialize(RVM_VERSION, &o), RVM_ENAME_TOO_LONG);
    cr_assert_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    cr_expect_eq(rvm_set_options(&o), RVM_ENAME_TOO_LONG);
}

Test(api_init, no_log_until_set_options)
{
    cr_assert_eq(file_make(T.seg, 65536, 0), 0);
    cr_assert_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_expect_eq(rvm_map(&r, NULL), RVM_ELOG);
    cr_expect_eq(rvm_begin_transaction(&t, restore), RVM_ELOG);
    cr_expect_eq(rvm_flush(), RVM_ELOG);
    cr_expect_eq(rvm_truncate(), RVM_ELOG);

    /* the sequence the original test programs use: init(NULL), create_log, set_options */
    rvm_options_t o;
    rvmt_options(&o, T.log);
    rvm_offset_t len = RVM_MK_OFFSET(0, 256 * 1024);
    cr_assert_eq(rvm_create_log(&o, &len, 0600), RVM_SUCCESS);
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_expect_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_expect_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    cr_expect_eq(rvm_flush(), RVM_SUCCESS);
    cr_expect_eq(rvm_truncate(), RVM_SUCCESS);

    /* only one log per process */
    rvm_options_t o2;
    rvmt_options(&o2, T.seg2);
    cr_expect_eq(rvm_set_options(&o2), RVM_ELOG);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(api_init, create_log_errors_and_size)
{
    cr_assert_eq(rvm_initialize(RVM_VERSION, NULL), RVM_SUCCESS);
    rvm_options_t o;
    rvmt_options(&o, T.log);
    rvm_offset_t huge = RVM_MK_OFFSET(1, 0);
    cr_expect_eq(rvm_create_log(&o, &huge, 0600), RVM_ETOO_BIG);
    cr_expect_eq(file_size(T.log), -1, "a refused create_log must not leave a file behind");

    rvm_offset_t len = RVM_MK_OFFSET(0, 64 * 1024);
    cr_assert_eq(rvm_create_log(&o, &len, 0600), RVM_SUCCESS);
    long long sz = file_size(T.log);
    /* the format is ours; what a program can see is a file holding at least log_len bytes of
     * records, a whole number of 512-byte sectors */
    cr_expect_geq(sz, 64 * 1024, "log file of %lld bytes for log_len 65536", sz);
    cr_expect_eq(sz % 512, 0, "log file size %lld is not a multiple of 512", sz);
    struct stat st;
    cr_assert_eq(stat(T.log, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);

    /* an existing file is never overwritten */
    cr_expect_eq(rvm_create_log(&o, &len, 0600), RVM_ELOG);
    cr_assert_eq(file_make(T.seg2, 100, 'x'), 0);
    rvm_options_t o2;
    rvmt_options(&o2, T.seg2);
    cr_expect_eq(rvm_create_log(&o2, &len, 0600), RVM_ELOG);
    cr_expect_eq(file_size(T.seg2), 100);

    /* an open log cannot be re-created */
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    cr_expect_eq(rvm_create_log(&o, &len, 0600), RVM_ELOG);

    /* a log in a directory that does not exist is an I/O error */
    char path[400];
    snprintf(path, sizeof path, "%s/no/such/dir/log", T.dir);
    rvm_options_t o3;
    rvmt_options(&o3, path);
    cr_expect_eq(rvm_create_log(&o3, &len, 0600), RVM_EIO);
}

Test(api_init, create_log_file_option_and_reopen)
{
    cr_assert_eq(rvmt_init_create(T.log, 128 * 1024, 0, 0), RVM_SUCCESS);
    cr_expect_geq(file_size(T.log), 128 * 1024);
    rvm_options_t q;
    rvm_init_options(&q);
    char name[MAXPATHLEN];
    name[0] = 0;
    q.log_dev = name;
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect_str_eq(name, T.log, "rvm_query copies the log name into log_dev");
    cr_expect_eq(q.log_empty, rvm_true);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}

/* child_open_log -- in a fresh process, initialise with T.log as the log; exit code = RVM code
 * folded into 0..255 (0 = success). */
static int child_open_log(void *arg)
{
    (void)arg;
    rvm_return_t rc = rvmt_init(T.log, 0, 0);
    if (rc != RVM_SUCCESS)
        return rc - 199; /* 1.. for RVM codes 200.. */
    return rvm_terminate() == RVM_SUCCESS ? 0 : 100;
}

Test(api_init, foreign_or_missing_log_refused)
{
    char d[64];
    /* missing file */
    int st = proc_run(child_open_log, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "opening a missing log: %s",
              proc_describe(st, d, sizeof d));
    cr_expect(WEXITSTATUS(st) == RVM_EIO - 199 || WEXITSTATUS(st) == RVM_ELOG - 199,
              "missing log gives RVM_EIO or RVM_ELOG, got %s", rvm_return(WEXITSTATUS(st) + 199));
    /* a file that is not a log: zeros, then text */
    cr_assert_eq(file_make(T.log, 64 * 1024, 0), 0);
    st = proc_run(child_open_log, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RVM_ELOG - 199,
              "all-zero log must be RVM_ELOG: %s", proc_describe(st, d, sizeof d));
    cr_assert_eq(file_make(T.log, 64 * 1024, 'L'), 0);
    st = proc_run(child_open_log, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RVM_ELOG - 199,
              "garbage log must be RVM_ELOG: %s", proc_describe(st, d, sizeof d));
    /* an empty file */
    cr_assert_eq(file_make(T.log, 0, 0), 0);
    st = proc_run(child_open_log, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RVM_ELOG - 199, "empty log must be RVM_ELOG: %s",
              proc_describe(st, d, sizeof d));
}

/* child_make_log -- create T.log in a fresh process. */
static int child_make_log(void *arg)
{
    (void)arg;
    if (rvmt_init_create(T.log, 64 * 1024, 0, 0) != RVM_SUCCESS)
        return 1;
    return rvm_terminate() == RVM_SUCCESS ? 0 : 2;
}

Test(api_init, log_reopens_in_new_process)
{
    int st = proc_run(child_make_log, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = proc_run(child_open_log, NULL);
    char d[64];
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reopening a fresh log: %s (%s)",
              proc_describe(st, d, sizeof d), rvm_return(WEXITSTATUS(st) + 199));
}

Test(api_init, set_options_and_query_report_values)
{
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = NULL;
    o.flags = RVM_COALESCE_TRANS; /* implies RVM_COALESCE_RANGES */
    o.truncate = 0;
    o.max_read_len = 100; /* < 512: replaced by MAX_READ_LEN */
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    rvm_options_t q;
    rvm_init_options(&q);
    q.flags = 0xdead;
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect_eq(q.flags & RVM_ALL_OPTIMIZATIONS, RVM_ALL_OPTIMIZATIONS,
                 "RVM_COALESCE_TRANS implies RVM_COALESCE_RANGES: flags=%lu", q.flags);
    cr_expect_eq(q.flags & RVM_MAP_PRIVATE, 0);
    cr_expect_eq(q.max_read_len, MAX_READ_LEN);
    cr_expect_eq(q.n_uncommit, 0);

    o.flags = RVM_MAP_PRIVATE;
    o.max_read_len = 4096 + 100; /* chopped to 512 */
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect_eq(q.flags, RVM_MAP_PRIVATE, "flags=%lu", q.flags);
    cr_expect_eq(q.max_read_len, 4096);
    /* set_options with the same log name again is fine */
    o.log_dev = T.log;
    cr_expect_eq(rvm_set_options(&o), RVM_SUCCESS);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(api_init, query_lists_uncommitted_tids)
{
    cr_assert_eq(file_make(T.seg, 4 * 4096, 0), 0);
    cr_assert_eq(file_make(T.seg2, 4 * 4096, 0), 0);
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    rvm_region_t r1, r2;
    rvmt_region(&r1, T.seg, 0, 0, NULL);
    rvmt_region(&r2, T.seg2, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r1, NULL), RVM_SUCCESS);
    cr_assert_eq(rvm_map(&r2, NULL), RVM_SUCCESS);

    rvm_tid_t a, b, c;
    rvm_init_tid(&a);
    rvm_init_tid(&b);
    rvm_init_tid(&c);
    cr_assert_eq(rvm_begin_transaction(&a, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_begin_transaction(&b, no_restore), RVM_SUCCESS);
    cr_assert_eq(rvm_begin_transaction(&c, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&a, r1.vmaddr, 8), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&b, r2.vmaddr + 100, 8), RVM_SUCCESS);

    rvm_options_t q;
    rvm_init_options(&q);
    q.n_uncommit = 0;
    q.tid_array = NULL;
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect_eq(q.n_uncommit, 3, "all open transactions: %ld", q.n_uncommit);
    cr_assert_not_null(q.tid_array);
    int seen_a = 0;
    for (long i = 0; i < q.n_uncommit; i++) {
        cr_expect_eq(q.tid_array[i].struct_id, rvm_tid_id);
        if (q.tid_array[i].uname.tv_sec == a.uname.tv_sec &&
            q.tid_array[i].uname.tv_usec == a.uname.tv_usec)
            seen_a++;
    }
    cr_expect_eq(seen_a, 1,
                 "tid a appears once in tid_array by its uname (seen %d times: "
                 "unames of tids begun together are not unique)",
                 seen_a);
    free(q.tid_array);

    /* only those touching a region */
    rvm_init_options(&q);
    cr_assert_eq(rvm_query(&q, &r2), RVM_SUCCESS);
    cr_expect_eq(q.n_uncommit, 1, "transactions touching seg2: %ld", q.n_uncommit);
    free(q.tid_array);

    /* an unmapped region */
    rvm_region_t r3;
    rvmt_region(&r3, T.seg, 0, 4096, (char *)0x10000);
    rvm_init_options(&q);
    cr_expect_eq(rvm_query(&q, &r3), RVM_ENOT_MAPPED);

    cr_expect_eq(rvm_terminate(), RVM_EUNCOMMIT);
    cr_expect_eq(rvm_end_transaction(&a, flush), RVM_SUCCESS);
    cr_expect_eq(rvm_abort_transaction(&b), RVM_SUCCESS);
    cr_expect_eq(rvm_end_transaction(&c, no_flush), RVM_SUCCESS);
    rvm_init_options(&q);
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect_eq(q.n_uncommit, 0);
    cr_expect_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(api_init, tid_unames_are_unique)
{
    /* uname is the tid's "unique name (timestamp)": rvm_query results are matched by it, so
     * tids begun within the same microsecond must still get distinct names (the original
     * bumps the timestamp when it would repeat) */
    cr_assert_eq(file_make(T.seg, 4096, 0), 0);
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    enum { N = 64 };
    static rvm_tid_t t[N];
    for (int i = 0; i < N; i++) {
        rvm_init_tid(&t[i]);
        cr_assert_eq(rvm_begin_transaction(&t[i], restore), RVM_SUCCESS);
    }
    int dups = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (t[i].uname.tv_sec == t[j].uname.tv_sec && t[i].uname.tv_usec == t[j].uname.tv_usec)
                dups++;
    cr_expect_eq(dups, 0, "%d pairs of the %d tids begun back to back share a uname", dups, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(rvm_abort_transaction(&t[i]), RVM_SUCCESS);
}

/* child_make_log_only -- create T.log and exit. */
static int child_make_log_only(void *arg)
{
    (void)arg;
    return rvmt_init_create(T.log, 64 * 1024, 0, 0) == RVM_SUCCESS ? 0 : 1;
}

Test(api_init, log_format_version_skew)
{
    /* a log written by another format version is refused with RVM_ELOG_VERSION_SKEW, not
     * RVM_ELOG: the message must tell the user to use the matching version */
    char d[64];
    int st = proc_run(child_make_log_only, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    uint32_t v = LOG_FORMAT_VERSION + 1;
    cr_assert_eq(file_write(T.log, &v, sizeof v, offsetof(struct log_status, version)), 0);
    cr_assert_eq(
        file_write(T.log, &v, sizeof v, LOG_SLOT_SIZE + offsetof(struct log_status, version)), 0);
    st = proc_run(child_open_log, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RVM_ELOG_VERSION_SKEW - 199,
              "log of format version %u: %s (%s)", v, proc_describe(st, d, sizeof d),
              rvm_return(WEXITSTATUS(st) + 199));
}

/* child_commit_truncate_commit -- A (flush), rvm_truncate (a status write: the second copy),
 * B (flush), then die without terminate. */
static int child_commit_truncate_commit(void *arg)
{
    (void)arg;
    if (rvmt_init_create(T.log, 64 * 1024, 0, 0) != RVM_SUCCESS)
        return 1;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 2;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) || rvm_modify_bytes(&t, r.vmaddr, "AAAA", 4) ||
        rvm_end_transaction(&t, flush))
        return 3;
    if (rvm_truncate() != RVM_SUCCESS)
        return 4;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) || rvm_modify_bytes(&t, r.vmaddr + 8, "BBBB", 4) ||
        rvm_end_transaction(&t, flush))
        return 5;
    return 0;
}

static char *img; /* shared */

/* child_recover_copy -- recover, copy the first 16 bytes of the segment out. */
static int child_recover_copy(void *arg)
{
    (void)arg;
    rvm_return_t rc = rvmt_init(T.log, 0, 0);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "recovery: %s: %s\n", rvm_return(rc), rvm_errmsg ? rvm_errmsg : "");
        return 1;
    }
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 2;
    memcpy(img, r.vmaddr, 16);
    return 0;
}

Test(api_init, damaged_newer_status_copy_falls_back_to_the_older)
{
    /* the status is written in two alternating copies so a torn status write leaves the
     * other intact: with the newer copy damaged, recovery must use the older one (its head
     * is older; redo is idempotent) and lose nothing */
    char d[64];
    img = shared_alloc(4096);
    cr_assert_eq(file_make(T.seg, 4096, 0), 0);
    int st = proc_run(child_commit_truncate_commit, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", proc_describe(st, d, sizeof d));
    struct log_status s0, s1;
    cr_assert_eq(file_read(T.log, &s0, sizeof s0, 0), 0);
    cr_assert_eq(file_read(T.log, &s1, sizeof s1, LOG_SLOT_SIZE), 0);
    cr_assert(s0.magic == LOG_STATUS_MAGIC && s1.magic == LOG_STATUS_MAGIC,
              "after a truncation both status copies are written");
    off_t newer = s1.generation > s0.generation ? LOG_SLOT_SIZE : 0;
    unsigned char junk[16];
    memset(junk, 0xa5, sizeof junk);
    cr_assert_eq(
        file_write(T.log, junk, sizeof junk, newer + (off_t)offsetof(struct log_status, head_off)),
        0);
    st = proc_run(child_recover_copy, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "recovery with the newer status copy "
              "damaged: %s",
              proc_describe(st, d, sizeof d));
    cr_expect_eq(memcmp(img, "AAAA", 4), 0, "A lost");
    cr_expect_eq(memcmp(img + 8, "BBBB", 4), 0, "B lost");
}
