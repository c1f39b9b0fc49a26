/* SPDX-License-Identifier: MIT */
/*
 * test_track_api.c -- tracked regions, per DIRTY backend: what a commit logs (diffs, merge,
 * page joins, whole pages beyond the budget), the untrack/unmap rules, explicit-transaction
 * ranges not logged twice, kernel writes via prepare, sticky failure, argument errors.
 * The commit sink is the tests' log (tlog) applying records to an in-memory segment image.
 */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "track_test.h"

static const vmp_backend_t all_backends[] = {VMP_BACKEND_WP_ASYNC, VMP_BACKEND_UFFD_SIGBUS,
                                             VMP_BACKEND_MPROTECT};

#define FOR_EACH_BACKEND(b)              \
    for (size_t bi_ = 0; bi_ < 3; bi_++) \
        for (vmp_backend_t b = all_backends[bi_]; tt_backend_ok(b) && b; b = 0)

/* a tracked region plus its log with an image of the segment (initially equal to memory) */
struct fx {
    struct tt_region t;
    struct tlog log;
    char *image;
};

static void fx_setup(struct fx *f, vmp_backend_t b, size_t len, size_t budget)
{
    tt_use(b, budget);
    tt_map(&f->t, len, 0);
    f->image = calloc(1, len);
    cr_assert_eq(tlog_open(&f->log, NULL, f->image, len), 0);
    track_set_sink(tlog_sink, &f->log);
    cr_assert_eq(rvm_track(&f->t.reg), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
}

static void fx_teardown(struct fx *f)
{
    track_reset();
    tlog_close(&f->log);
    munmap(f->t.mem, f->t.len);
    free(f->image);
}

static rvm_track_statistics_t stats(void)
{
    rvm_track_statistics_t st;
    cr_assert_eq(rvm_track_statistics(&st), RVM_SUCCESS);
    return st;
}

Test(track, commit_logs_only_changed_bytes)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 16 * ps, 0);
        f.t.mem[5] = 1;
        memcpy(f.t.mem + 3 * ps + 100, "hello", 5);
        cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s", track_errmsg());
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0, "%s", vmp_backend_name(b));
        rvm_track_statistics_t st = stats();
        cr_assert_eq(st.ranges_logged, 2, "%s: %lu ranges", vmp_backend_name(b), st.ranges_logged);
        cr_assert_eq(st.bytes_logged, 6, "%s: %lu bytes", vmp_backend_name(b), st.bytes_logged);
        cr_assert_str_eq(st.backend, vmp_backend_name(b));
        cr_assert_leq(st.last_pause_ns, st.last_commit_ns);
        cr_assert_eq(f.log.nrec, 1);
        /* the next epoch diffs against the new committed image */
        f.t.mem[5] = 2;
        f.t.mem[6] = 3;
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        st = stats();
        cr_assert_eq(st.bytes_logged, 8, "%s", vmp_backend_name(b));
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        /* no write: no record */
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(f.log.nrec, 2);
        fx_teardown(&f);
    }
}

Test(track, rewriting_same_bytes_logs_nothing)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 8 * ps, 0);
        memset(f.t.mem, 0, 8 * ps); /* dirties every page, changes nothing */
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(f.log.nrec, 0, "%s", vmp_backend_name(b));
        rvm_track_statistics_t st = stats();
        cr_assert_eq(st.n_empty_commits, 1);
        cr_assert_geq(st.pages_dirtied, 8);
        fx_teardown(&f);
    }
}

Test(track, sparse_8_bytes_in_1000_pages)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 1000 * ps, 0);
        for (size_t i = 0; i < 1000; i++)
            memcpy(f.t.mem + i * ps + (i * 40) % (ps - 8), "ABCDEFGH", 8);
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        rvm_track_statistics_t st = stats();
        cr_assert_eq(st.ranges_logged, 1000, "%s: %lu", vmp_backend_name(b), st.ranges_logged);
        cr_assert_eq(st.bytes_logged, 8000);
        cr_assert_eq(st.last_pages, 1000);
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        fx_teardown(&f);
    }
}

Test(track, runs_merge_across_small_gaps_and_page_ends)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 8 * ps, 0);
        f.t.mem[100] = 1;
        f.t.mem[110] = 1;                   /* gap 9 < 32: one range */
        f.t.mem[1000] = 1;                  /* far: its own range */
        memset(f.t.mem + 3 * ps - 4, 7, 8); /* across a page end: one range */
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        rvm_track_statistics_t st = stats();
        cr_assert_eq(st.ranges_logged, 3, "%s: %lu", vmp_backend_name(b), st.ranges_logged);
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        fx_teardown(&f);
    }
}

Test(track, partial_last_page_is_clipped)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        tt_use(b, 0);
        /* the region is 2 pages + 100 bytes of a 3-page mapping */
        tt_map(&f.t, 3 * ps, 0);
        f.t.reg.length = 2 * ps + 100;
        f.image = calloc(1, 2 * ps + 100);
        tlog_open(&f.log, NULL, f.image, 2 * ps + 100);
        track_set_sink(tlog_sink, &f.log);
        cr_assert_eq(rvm_track(&f.t.reg), RVM_SUCCESS);
        f.t.mem[2 * ps + 99] = 9;  /* last byte of the region */
        f.t.mem[2 * ps + 100] = 9; /* first byte after it: not part of the segment */
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(f.log.oob, 0, "%s logged bytes past the region", vmp_backend_name(b));
        cr_assert_eq(f.image[2 * ps + 99], 9);
        rvm_track_statistics_t st = stats();
        cr_assert_eq(st.bytes_logged, 1);
        fx_teardown(&f);
    }
}

Test(track, beyond_budget_pages_are_logged_whole)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 32 * ps, 4 * ps); /* twins for 4 pages only */
        for (int round = 0; round < 3; round++) {
            for (size_t i = 0; i < 32; i++)
                f.t.mem[i * ps + (size_t)round * 8] = (char)(round + 1);
            cr_assert_eq(rvm_commit(), RVM_SUCCESS);
            cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0, "%s round %d", vmp_backend_name(b),
                         round);
        }
        rvm_track_statistics_t st = stats();
        cr_assert_gt(st.whole_pages, 0, "%s", vmp_backend_name(b));
        cr_assert_leq(st.twin_pages, 4);
        fx_teardown(&f);
    }
}

Test(track, untrack_requires_commit)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 4 * ps, 0);
        f.t.mem[ps + 1] = 42;
        cr_assert_eq(rvm_untrack(&f.t.reg), RVM_EUNCOMMIT, "%s", vmp_backend_name(b));
        /* still tracked: the change is committed by the next commit */
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(f.image[ps + 1], 42);
        cr_assert_eq(rvm_untrack(&f.t.reg), RVM_SUCCESS, "%s", track_errmsg());
        cr_assert_eq(rvm_untrack(&f.t.reg), RVM_EREGION);
        /* plain memory now: writes work and are not logged */
        f.t.mem[0] = 1;
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(f.log.nrec, 1);
        /* a region written with the same bytes only is clean */
        cr_assert_eq(rvm_track(&f.t.reg), RVM_SUCCESS);
        f.t.mem[0] = 1;
        cr_assert_eq(rvm_untrack(&f.t.reg), RVM_SUCCESS, "%s: %s", vmp_backend_name(b),
                     track_errmsg());
        fx_teardown(&f);
    }
}

Test(track, unmap_rule)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 4 * ps, 0);
        f.t.mem[3 * ps] = 5;
        cr_assert_eq(track_on_unmap(f.t.mem, f.t.len), RVM_EUNCOMMIT);
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(track_on_unmap(f.t.mem, f.t.len), RVM_SUCCESS, "%s", track_errmsg());
        cr_assert_eq(rvm_untrack(&f.t.reg), RVM_EREGION, "unmap untracks implicitly");
        /* an untracked region: unmap has nothing to say */
        cr_assert_eq(track_on_unmap(f.t.mem, f.t.len), RVM_SUCCESS);
        fx_teardown(&f);
    }
}

Test(track, explicit_transaction_ranges_are_not_logged_twice)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 4 * ps, 0);
        /* an explicit transaction writes 64 bytes and commits them (as core would: one
         * record with that range, then track_note_commit) */
        memset(f.t.mem + ps + 10, 0x5a, 64);
        struct track_range xr = {&f.t.reg, f.t.mem + ps + 10, ps + 10, 64, f.t.mem + ps + 10};
        uint64_t logged;
        cr_assert_eq(tlog_sink(&f.log, &xr, 1, 1, &logged), RVM_SUCCESS);
        track_note_commit(f.t.mem + ps + 10, 64);
        /* plus one tracked write in the same page */
        f.t.mem[ps + 2000] = 1;
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        rvm_track_statistics_t st = stats();
        cr_assert_eq(st.bytes_logged, 1, "%s: %lu bytes logged", vmp_backend_name(b),
                     st.bytes_logged);
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        fx_teardown(&f);
    }
}

Test(track, read_syscall_into_tracked_memory)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 8 * ps, 0);
        int p[2];
        cr_assert_eq(pipe(p), 0);
        char src[3 * 4096];
        for (size_t i = 0; i < sizeof(src); i++)
            src[i] = (char)(i * 7 + 1);
        cr_assert_eq(write(p[1], src, sizeof(src)), (ssize_t)sizeof(src));
        char *dst = f.t.mem + ps + 123;
        cr_assert_eq(rvm_track_prepare_write(dst, sizeof(src)), RVM_SUCCESS);
        cr_assert_eq(read(p[0], dst, sizeof(src)), (ssize_t)sizeof(src), "%s: read: %s",
                     vmp_backend_name(b), strerror(errno));
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(memcmp(f.image + ps + 123, src, sizeof(src)), 0);
        close(p[0]);
        close(p[1]);
        fx_teardown(&f);
    }
}

Test(track, two_regions_one_record)
{
    FOR_EACH_BACKEND(b)
    {
        size_t ps = vmp_page_size();
        tt_use(b, 0);
        struct tt_region r1, r2;
        tt_map(&r1, 4 * ps, 0);
        tt_map(&r2, 4 * ps, 4 * ps); /* the next 4 pages of the segment */
        char *image = calloc(1, 8 * ps);
        struct tlog log;
        tlog_open(&log, NULL, image, 8 * ps);
        track_set_sink(tlog_sink, &log);
        cr_assert_eq(rvm_track(&r1.reg), RVM_SUCCESS);
        cr_assert_eq(rvm_track(&r2.reg), RVM_SUCCESS);
        r1.mem[1] = 1;
        r2.mem[2] = 2;
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(log.nrec, 1);
        cr_assert_eq(image[1], 1);
        cr_assert_eq(image[4 * ps + 2], 2);
        track_reset();
        tlog_close(&log);
        free(image);
    }
}

Test(track, failed_log_write_is_sticky)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        fx_setup(&f, b, 4 * vmp_page_size(), 0);
        f.t.mem[0] = 1;
        f.log.fail_next = RVM_EIO;
        cr_assert_eq(rvm_commit(), RVM_EIO);
        f.t.mem[1] = 1;
        cr_assert_eq(rvm_commit(), RVM_EIO, "later commits fail too");
        cr_assert(strstr(track_errmsg(), "restart") != NULL, "%s", track_errmsg());
        fx_teardown(&f);
    }
}

Test(track, argument_errors)
{
    size_t ps = vmp_page_size();
    track_reset();
    cr_assert_eq(rvm_track(NULL), RVM_EREGION);
    struct tt_region t;
    tt_map(&t, 4 * ps, 0);
    t.reg.vmaddr = t.mem + 1;
    cr_assert_eq(rvm_track(&t.reg), RVM_ERANGE);
    t.reg.vmaddr = t.mem;
    rvm_track_options_t bad = {.backend = "nosuch"};
    cr_assert_eq(rvm_track_configure(&bad), RVM_EOPTIONS);
    cr_assert(strstr(track_errmsg(), "nosuch") != NULL);
    cr_assert_eq(rvm_commit_mode(restore), RVM_EMODE);
    struct tlog log;
    tlog_open(&log, NULL, NULL, 0);
    track_set_sink(tlog_sink, &log);
    cr_assert_eq(rvm_track(&t.reg), RVM_SUCCESS, "%s", track_errmsg());
    cr_assert_eq(rvm_track(&t.reg), RVM_EOVERLAP);
    rvm_track_options_t ok = {.backend = "auto"};
    cr_assert_eq(rvm_track_configure(&ok), RVM_EUNCOMMIT);
    cr_assert_eq(rvm_track_statistics(NULL), RVM_ESTATISTICS);
    cr_assert_eq(rvm_untrack(&t.reg), RVM_SUCCESS);
    /* committing through core: the region must be mapped by rvm_map */
    track_set_sink(NULL, NULL);
    cr_assert_eq(rvm_track(&t.reg), RVM_EINIT);
    cr_assert(strstr(track_errmsg(), "rvm_initialize") != NULL, "%s", track_errmsg());
    track_reset();
}

Test(track, wp_async_twins_follow_the_written_pages)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async unavailable");
    struct fx f;
    size_t ps = vmp_page_size();
    fx_setup(&f, VMP_BACKEND_WP_ASYNC, 32 * ps, 4 * ps); /* twins for pages 0..3 at first */
    /* pages 20..23 are hot: first logged whole, then they take the twins of idle pages */
    for (int round = 0; round < 6; round++) {
        rvm_track_statistics_t s0 = stats();
        for (size_t i = 20; i < 24; i++)
            f.t.mem[i * ps + (size_t)round] = (char)(round + 1);
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0, "round %d", round);
        rvm_track_statistics_t s1 = stats();
        if (round >= 3)
            cr_assert_eq(s1.whole_pages - s0.whole_pages, 0,
                         "round %d: hot pages still "
                         "logged whole",
                         round);
        cr_assert_leq(s1.twin_pages, 4);
    }
    /* a page that lost its twin is still committed correctly (whole) */
    f.t.mem[1 * ps + 7] = 9;
    cr_assert_eq(rvm_commit(), RVM_SUCCESS);
    cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
    fx_teardown(&f);
}

/* resident -- pages of [p, p+len) in memory */
static size_t resident(const char *p, size_t len)
{
    size_t ps = vmp_page_size(), n = len / ps, c = 0;
    unsigned char *v = malloc(n);
    cr_assert_eq(mincore((void *)p, len, v), 0);
    for (size_t i = 0; i < n; i++)
        c += v[i] & 1;
    free(v);
    return c;
}

Test(track, slot_memory_is_bounded_by_the_budget)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 256 * ps, 8 * ps); /* budget: 8 pages of twins */
        for (int round = 0; round < 12; round++) {
            for (size_t i = 0; i < 256; i++)
                f.t.mem[i * ps + (size_t)round] = (char)(round + 1);
            cr_assert_eq(rvm_commit(), RVM_SUCCESS);
            cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        }
        /* one more commit with 16 dirty pages: its pause trims what the rounds left */
        for (size_t i = 0; i < 16; i++)
            f.t.mem[i * ps + 100] = 1;
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        struct track_region *r = NULL;
        for (size_t k = 0; k < TRACK_MAX_REGIONS && r == NULL; k++)
            r = atomic_load(&tracker.regions[k]);
        size_t res = resident(r->slots, 2 * 256 * ps);
        rvm_track_statistics_t st = stats();
        /* without trims, the hook backends keep a twin slot of every page that ever had one
         * (~96); wp-async (its snapshots in a pool) never uses more than the twins' slots */
        cr_assert_leq(res, 8 + 16 + 64, "%s: %zu slot pages resident", vmp_backend_name(b), res);
        /* wp-async snapshots go to a pool, so its slots hold twins only: nothing to trim */
        if (b != VMP_BACKEND_WP_ASYNC)
            cr_assert_gt(st.trims, 0, "%s: no trim", vmp_backend_name(b));
        fx_teardown(&f);
    }
}

/* With a budget far above the working set (the default 1 GiB against a 24 MiB region), unused
 * slots must still go back to the kernel: they are bounded by the twins in use, not by the
 * budget (the budget bound let slot memory reach twice a 256 MiB heap under the shim). */
Test(track, unused_slots_are_returned_below_the_budget)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size(), npages = 6144;
        fx_setup(&f, b, npages * ps, 0);
        for (int round = 0; round < 3; round++) {
            for (size_t i = 0; i < npages; i++)
                f.t.mem[i * ps + (size_t)round] = (char)(round + 1);
            cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        }
        for (size_t i = 0; i < 16; i++)
            f.t.mem[i * ps + 100] = 1;
        cr_assert_eq(rvm_commit(), RVM_SUCCESS);
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        struct track_region *r = NULL;
        for (size_t k = 0; k < TRACK_MAX_REGIONS && r == NULL; k++)
            r = atomic_load(&tracker.regions[k]);
        size_t res = resident(r->slots, 2 * npages * ps);
        rvm_track_statistics_t st = stats();
        /* wp-async keeps a twin of every page (npages); the hook backends only the twins of
         * the last epoch. Unused slots: at most the trim slack. */
        cr_assert_leq(res, st.twin_pages + 16 + TRACK_TRIM_SLACK,
                      "%s: %zu slot pages "
                      "resident, %lu twins",
                      vmp_backend_name(b), res, (unsigned long)st.twin_pages);
        if (b != VMP_BACKEND_WP_ASYNC)
            cr_assert_gt(st.trims, 0, "%s: no trim", vmp_backend_name(b));
        fx_teardown(&f);
    }
}

/* track_commit_then: the caller's locks go as soon as the instant is captured, before the
 * record reaches the sink (the shim drops its heap locks there), and exactly once also when
 * the commit never reaches an instant. */
static int released_calls, sink_saw_released;
static struct tlog *then_log;
static void count_release(void *arg)
{
    (void)arg;
    released_calls++;
}
static rvm_return_t then_sink(void *arg, const struct track_range *r, size_t n, int sync,
                              uint64_t *logged)
{
    (void)arg;
    sink_saw_released = released_calls;
    return tlog_sink(then_log, r, n, sync, logged);
}

Test(track, commit_then_releases_before_the_record_is_written)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 8 * ps, 0);
        then_log = &f.log;
        track_set_sink(then_sink, NULL);
        released_calls = sink_saw_released = 0;
        f.t.mem[3 * ps + 1] = 7;
        cr_assert_eq(track_commit_then(0, count_release, NULL), RVM_SUCCESS);
        cr_assert_eq(released_calls, 1, "%s", vmp_backend_name(b));
        cr_assert_eq(sink_saw_released, 1, "%s: the sink ran before the release",
                     vmp_backend_name(b));
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0);
        /* nothing changed: no record, still one call */
        cr_assert_eq(track_commit_then(0, count_release, NULL), RVM_SUCCESS);
        cr_assert_eq(released_calls, 2);
        fx_teardown(&f);
        /* nothing tracked: no instant, one call */
        cr_assert_eq(track_commit_then(0, count_release, NULL), RVM_SUCCESS);
        cr_assert_eq(released_calls, 3);
    }
}

/* track_release_try: while a commit holds the tracker (here: inside its sink, where the log
 * write and fdatasync run) it says EAGAIN and leaves memory alone; after, it releases, and a
 * later write into the released page is committed like any other. */
static struct tlog *try_log;
static char *try_page;
static int try_rc = -1;
static rvm_return_t try_sink(void *arg, const struct track_range *r, size_t n, int sync,
                             uint64_t *logged)
{
    (void)arg;
    try_rc = track_release_try(try_page, vmp_page_size());
    return tlog_sink(try_log, r, n, sync, logged);
}

Test(track, release_try_does_not_wait_for_a_commit)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        size_t ps = vmp_page_size();
        fx_setup(&f, b, 8 * ps, 0);
        try_log = &f.log;
        try_page = f.t.mem + 5 * ps;
        track_set_sink(try_sink, NULL);
        memset(try_page, 0x5a, ps);
        f.t.mem[1] = 1;
        try_rc = -1;
        cr_assert_eq(track_commit(), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
        cr_assert_eq(try_rc, EAGAIN, "%s: released during a commit (rc %d)", vmp_backend_name(b),
                     try_rc);
        cr_assert_eq(try_page[ps - 1], 0x5a, "%s", vmp_backend_name(b));
        cr_assert_eq(track_release_try(try_page, ps), 0, "%s", vmp_backend_name(b));
        try_page[7] = 0; /* a write of zeros into released memory must still be committed */
        memset(try_page + 8, 0x11, 8);
        track_set_sink(tlog_sink, &f.log);
        cr_assert_eq(track_commit(), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
        cr_assert_eq(memcmp(f.image, f.t.mem, f.t.len), 0, "%s: image differs from memory",
                     vmp_backend_name(b));
        fx_teardown(&f);
    }
}

Test(track, diff_runs_property)
{
    /* random pages and lengths: the runs cover every changed byte, start and end on changed
     * bytes, are ordered, and are separated by at least `gap` unchanged bytes */
    uint64_t s = 12345;
    static char a[4096], c[4096];
    struct track_run runs[4096 / 2 + 2];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 1 + tt_rnd(&s) % 4096;
        unsigned gap = 1 + (unsigned)(tt_rnd(&s) % 64);
        for (size_t i = 0; i < len; i++)
            a[i] = c[i] = (char)tt_rnd(&s);
        unsigned nchg = (unsigned)(tt_rnd(&s) % 40);
        for (unsigned k = 0; k < nchg; k++) {
            size_t at = tt_rnd(&s) % len, n = 1 + tt_rnd(&s) % 24;
            for (size_t i = at; i < at + n && i < len; i++)
                c[i] = (char)(c[i] + 1 + (char)(tt_rnd(&s) % 250));
        }
        size_t n = track_diff_page(c, a, len, gap, runs);
        static char b[4096];
        memcpy(b, a, len);
        size_t prev_end = 0;
        for (size_t k = 0; k < n; k++) {
            cr_assert_gt(runs[k].len, 0);
            cr_assert_leq(runs[k].off + runs[k].len, len);
            cr_assert_neq(a[runs[k].off], c[runs[k].off], "run starts on a changed byte");
            cr_assert_neq(a[runs[k].off + runs[k].len - 1], c[runs[k].off + runs[k].len - 1]);
            if (k > 0)
                cr_assert_geq(runs[k].off - prev_end, gap, "runs closer than gap are merged");
            prev_end = runs[k].off + runs[k].len;
            memcpy(b + runs[k].off, c + runs[k].off, runs[k].len);
        }
        cr_assert_eq(memcmp(b, c, len), 0, "iter %d: runs miss a changed byte", iter);
        if (memcmp(a, c, len) == 0)
            cr_assert_eq(n, 0);
    }
}

Test(track, child_of_fork_cannot_commit)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        fx_setup(&f, b, 4 * vmp_page_size(), 0);
        f.t.mem[0] = 1;
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            f.t.mem[1] = 2; /* plain memory in the child: the write works */
            _exit(rvm_commit() == RVM_EINTERNAL && strstr(track_errmsg(), "fork") ? 0 : 1);
        }
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child", vmp_backend_name(b));
        cr_assert_eq(rvm_commit(), RVM_SUCCESS, "the parent still commits");
        cr_assert_eq(f.image[0], 1);
        cr_assert_eq(f.image[1], 0, "the child's write is not the parent's");
        fx_teardown(&f);
    }
}

/* the instant check (track_safepoint_set_check, used by preload's LRVM_MUTEX_WAIT): a declined
 * instant captures nothing and fails the commit; the next accepted one logs everything */
struct ic_state {
    int calls, decline, moved;
    volatile unsigned *spin; /* the helper thread's progress counter: still at the instant */
};

static int ic_check(void *arg)
{
    struct ic_state *s = arg;
    unsigned a = *s->spin;
    for (volatile int i = 0; i < 200000; i++)
        ;
    s->moved |= *s->spin != a;
    s->calls++;
    return s->calls <= s->decline;
}

static volatile int ic_stop;

static void *ic_spinner(void *arg)
{
    volatile unsigned *n = arg;
    while (!ic_stop)
        (*n)++;
    return NULL;
}

Test(track, instant_check_declines_and_accepts)
{
    FOR_EACH_BACKEND(b)
    {
        struct fx f;
        fx_setup(&f, b, 4 * vmp_page_size(), 0);
        volatile unsigned spin = 0;
        ic_stop = 0;
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, ic_spinner, (void *)&spin), 0);
        struct ic_state s = {.decline = 2, .spin = &spin};
        track_safepoint_set_check(ic_check, &s);
        f.t.mem[7] = 3;
        cr_expect_eq(rvm_commit(), RVM_EINTERNAL, "%s", vmp_backend_name(b));
        cr_expect(strstr(track_errmsg(), "declined") != NULL, "%s", track_errmsg());
        cr_expect_eq(f.log.nrec, 0, "%s: a declined instant logged something", vmp_backend_name(b));
        cr_expect_eq(rvm_commit(), RVM_EINTERNAL);
        cr_expect_eq(rvm_commit(), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
        cr_expect_eq(s.calls, 3);
        cr_expect_eq(s.moved, 0, "%s: the other thread ran during the check", vmp_backend_name(b));
        cr_expect_eq(f.log.nrec, 1, "%s", vmp_backend_name(b));
        cr_expect_eq(f.image[7], 3, "%s: the write before the declined instants is lost",
                     vmp_backend_name(b));
        track_safepoint_set_check(NULL, NULL);
        ic_stop = 1;
        pthread_join(t, NULL);
        cr_expect_eq(rvm_commit(), RVM_SUCCESS);
        cr_expect_eq(s.calls, 3, "the check ran after it was removed");
        fx_teardown(&f);
    }
}
