/* SPDX-License-Identifier: MIT */
/*
 * test_track_instant.c -- a commit is one instant across threads. A writer thread stores
 * n to page A and then n to page B, for n = 1, 2, ...; meanwhile the main thread commits.
 * In every committed image (the log's segment image) B == A or B == A - 1: a commit that
 * captured A and B at different moments would show B < A - 1 or B > A. Extra writer
 * threads dirty other pages so that the safepoint has several threads to stop and the
 * hook backends' copy-before-write path (writes to captured pages) is exercised.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "track_test.h"

#define NPAGES 64
#define PAGE_A 3
#define PAGE_B 40

static _Atomic int stop_writers;

/* tracked -- t: len bytes of anonymous memory, tracked, committing through a test log into
 * the returned image (zeros, len bytes; the caller frees it) */
static char *tracked(struct tt_region *t, size_t len, struct tlog *log)
{
    tt_map(t, len, 0);
    char *image = calloc(1, len);
    cr_assert_not_null(image);
    tlog_open(log, NULL, image, len);
    track_set_sink(tlog_sink, log);
    cr_assert_eq(rvm_track(&t->reg), RVM_SUCCESS, "%s", track_errmsg());
    return image;
}

struct wctx {
    char *mem;
    size_t ps;
    unsigned id;
};

/* counter_writer -- A = n, then B = n, forever */
static void *counter_writer(void *arg)
{
    struct wctx *w = arg;
    volatile uint64_t *a = (volatile uint64_t *)(w->mem + PAGE_A * w->ps + 8);
    volatile uint64_t *b = (volatile uint64_t *)(w->mem + PAGE_B * w->ps + 16);
    for (uint64_t n = 1; !atomic_load_explicit(&stop_writers, memory_order_relaxed); n++) {
        *a = n;
        *b = n;
    }
    return NULL;
}

/* noise_writer -- dirty random other pages (never A or B) */
static void *noise_writer(void *arg)
{
    struct wctx *w = arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (w->id + 1);
    while (!atomic_load_explicit(&stop_writers, memory_order_relaxed)) {
        size_t p = tt_rnd(&s) % NPAGES;
        if (p == PAGE_A || p == PAGE_B)
            continue;
        w->mem[p * w->ps + tt_rnd(&s) % w->ps] = (char)tt_rnd(&s);
    }
    return NULL;
}

static void run_instant(vmp_backend_t b)
{
    if (!tt_backend_ok(b))
        cr_skip_test("backend %s unavailable", vmp_backend_name(b));
    size_t ps = vmp_page_size();
    tt_use(b, 0);
    struct tt_region t;
    struct tlog log;
    char *image = tracked(&t, NPAGES * ps, &log);

    atomic_store(&stop_writers, 0);
    pthread_t th[3];
    struct wctx w[3];
    for (unsigned k = 0; k < 3; k++) {
        w[k] = (struct wctx){t.mem, ps, k};
        pthread_create(&th[k], NULL, k == 0 ? counter_writer : noise_writer, &w[k]);
    }
    unsigned ncommits = 150 * tt_scale(), made = 0;
    uint64_t last_a = 0, advanced = 0;
    /* With a fault backend the copy-before-write path must be seen at least once; whether a
     * writer hits a captured page during a given commit is up to the scheduler, so a loaded
     * machine gets more commits (up to 20x) rather than a verdict on timing. */
    for (unsigned c = 0;
         c < ncommits ||
         (b != VMP_BACKEND_WP_ASYNC && atomic_load(&tracker.hook_snaps) == 0 && c < 20 * ncommits);
         c++, made++) {
        cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
        uint64_t a, bb;
        memcpy(&a, image + PAGE_A * ps + 8, 8);
        memcpy(&bb, image + PAGE_B * ps + 16, 8);
        cr_assert(bb == a || bb + 1 == a, "%s commit %u: A=%lu B=%lu: not one instant",
                  vmp_backend_name(b), c, (unsigned long)a, (unsigned long)bb);
        advanced += a != last_a;
        last_a = a;
        if (c % 16 == 0)
            usleep(100); /* let the writers run between commits */
    }
    atomic_store(&stop_writers, 1);
    for (unsigned k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    rvm_track_statistics_t st;
    rvm_track_statistics(&st);
    cr_log_info("%s: %u commits, A advanced in %lu, last commit stopped %lu threads, "
                "max pause %lu us, %lu pages copied by a hook before a write",
                vmp_backend_name(b), made, (unsigned long)advanced, st.last_threads,
                st.max_pause_ns / 1000, (unsigned long)atomic_load(&tracker.hook_snaps));
    cr_assert_gt(advanced, ncommits / 10, "the writer made progress across commits");
    cr_assert_geq(st.last_threads, 3, "the safepoint stopped the 3 writers");
    if (b != VMP_BACKEND_WP_ASYNC)
        cr_assert_gt(atomic_load(&tracker.hook_snaps), 0,
                     "%s: writes to captured pages went "
                     "through the copy-before-write path",
                     vmp_backend_name(b));
    /* the final commit with all writers stopped equals memory exactly */
    cr_assert_eq(rvm_commit(), RVM_SUCCESS);
    cr_assert_eq(memcmp(image, t.mem, NPAGES * ps), 0);
    track_reset();
    tlog_close(&log);
    free(image);
}

Test(track_instant, wp_async)
{
    run_instant(VMP_BACKEND_WP_ASYNC);
}
Test(track_instant, uffd_sigbus)
{
    run_instant(VMP_BACKEND_UFFD_SIGBUS);
}
Test(track_instant, mprotect)
{
    run_instant(VMP_BACKEND_MPROTECT);
}

/*
 * run_trimming -- the instant invariant while the slot trim sweeps at every commit (a
 * one-page twin budget: every captured page's snapshot is a slot copy beyond the twins).
 * The trim gives unused slots back to the kernel (MADV_DONTNEED); with a hook backend a
 * slot becomes used when a released thread's first write copies a captured page into it.
 * A trim that ran after the threads were released could drop such a copy between the hook
 * and the diff, and the commit then logged the page as zeros (seen: a counter page of an
 * unmodified program committed as all zeros under uffd-sigbus). Writer k stores n into
 * each of its TRIM_SET pages in turn, n = 1, 2, ...: in every committed image its pages
 * read n..n, n-1..n-1 (one instant), never zero once written, and never go back.
 */
#define TRIM_WRITERS 3
#define TRIM_SET 48

static void *set_writer(void *arg)
{
    struct wctx *w = arg;
    for (uint64_t n = 1; !atomic_load_explicit(&stop_writers, memory_order_relaxed); n++)
        for (size_t p = 0; p < TRIM_SET; p++)
            *(volatile uint64_t *)(w->mem + (w->id * TRIM_SET + p) * w->ps) = n;
    return NULL;
}

/* trim_check -- writer k's pages in image: a prefix at n, the rest at n - 1, n >= last */
static void trim_check(vmp_backend_t b, unsigned c, const char *image, size_t ps, unsigned k,
                       uint64_t *last)
{
    uint64_t first, v;
    memcpy(&first, image + k * TRIM_SET * ps, 8);
    int dropped = 0;
    for (size_t p = 1; p < TRIM_SET; p++) {
        memcpy(&v, image + (k * TRIM_SET + p) * ps, 8);
        if (v == first && !dropped)
            continue;
        cr_assert(v + 1 == first && (dropped = 1),
                  "%s commit %u: writer %u's page %zu is %lu, its first page %lu: not one "
                  "instant (a snapshot lost to the trim?)",
                  vmp_backend_name(b), c, k, p, (unsigned long)v, (unsigned long)first);
    }
    cr_assert_geq(first, *last, "%s commit %u: writer %u went back", vmp_backend_name(b), c, k);
    *last = first;
}

static void run_trimming(vmp_backend_t b)
{
    if (!tt_backend_ok(b))
        cr_skip_test("backend %s unavailable", vmp_backend_name(b));
    size_t ps = vmp_page_size(), npages = TRIM_WRITERS * TRIM_SET;
    tt_use(b, ps);
    struct tt_region t;
    struct tlog log;
    char *image = tracked(&t, npages * ps, &log);
    atomic_store(&stop_writers, 0);
    pthread_t th[TRIM_WRITERS];
    struct wctx w[TRIM_WRITERS];
    for (unsigned k = 0; k < TRIM_WRITERS; k++) {
        w[k] = (struct wctx){t.mem, ps, k};
        pthread_create(&th[k], NULL, set_writer, &w[k]);
    }
    unsigned ncommits = 400 * tt_scale();
    uint64_t last[TRIM_WRITERS] = {0};
    for (unsigned c = 0; c < ncommits; c++) {
        cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
        for (unsigned k = 0; k < TRIM_WRITERS; k++)
            trim_check(b, c, image, ps, k, &last[k]);
    }
    atomic_store(&stop_writers, 1);
    for (unsigned k = 0; k < TRIM_WRITERS; k++)
        pthread_join(th[k], NULL);
    rvm_track_statistics_t st;
    rvm_track_statistics(&st);
    cr_log_info("%s: %u commits, %lu trims, %lu hook copies", vmp_backend_name(b), ncommits,
                (unsigned long)st.trims, (unsigned long)atomic_load(&tracker.hook_snaps));
    if (b != VMP_BACKEND_WP_ASYNC) /* wp-async's snapshots go to a pool: nothing to trim */
        cr_assert_gt(st.trims, 0, "%s: the trim never swept", vmp_backend_name(b));
    cr_assert_eq(rvm_commit(), RVM_SUCCESS);
    cr_assert_eq(memcmp(image, t.mem, npages * ps), 0);
    track_reset();
    tlog_close(&log);
    free(image);
}

Test(track_instant, uffd_sigbus_while_trimming)
{
    run_trimming(VMP_BACKEND_UFFD_SIGBUS);
}
Test(track_instant, mprotect_while_trimming)
{
    run_trimming(VMP_BACKEND_MPROTECT);
}
Test(track_instant, wp_async_while_trimming)
{
    run_trimming(VMP_BACKEND_WP_ASYNC);
}

/* blocker -- blocks the safepoint signal and sleeps until told to stop */
static void *blocker(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, LRVM_TRACK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    while (!atomic_load(&stop_writers))
        usleep(1000);
    return NULL;
}

Test(track_instant, thread_blocking_the_signal_is_skipped)
{
    size_t ps = vmp_page_size();
    tt_use(VMP_BACKEND_AUTO, 0);
    struct tt_region t;
    struct tlog log;
    char *image = tracked(&t, 4 * ps, &log);
    /* the test harness may have blocking threads of its own: count them first */
    rvm_track_statistics_t st;
    cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s", track_errmsg());
    rvm_track_statistics(&st);
    rvm_length_t base = st.last_skipped;
    atomic_store(&stop_writers, 0);
    pthread_t th;
    pthread_create(&th, NULL, blocker, NULL);
    usleep(10000);
    for (int i = 0; i < 5; i++) {
        t.mem[i] = (char)(i + 1);
        cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s", track_errmsg());
        rvm_track_statistics(&st);
        cr_assert_eq(st.last_skipped, base + 1, "commit %d: the blocking thread is skipped", i);
    }
    cr_assert_eq(memcmp(image, t.mem, 4 * ps), 0);
    atomic_store(&stop_writers, 1);
    pthread_join(th, NULL);
    track_reset();
    tlog_close(&log);
    free(image);
}

/* ---- PRECOPY: a dirty set copied before the pause is still one instant ---- */

#define SWEEP_PAGES 8192 /* 32 MiB: every commit finds far more than a precopy's threshold */

/* sweeper -- writes n into every page in order, for n = 1, 2, ...: at any instant the pages
 * hold n up to some page and n - 1 after it */
static void *sweeper(void *arg)
{
    struct wctx *w = arg;
    for (uint64_t n = 1; !atomic_load_explicit(&stop_writers, memory_order_relaxed); n++)
        for (size_t p = 0; p < SWEEP_PAGES; p++)
            *(volatile uint64_t *)(w->mem + p * w->ps + 8) = n;
    return NULL;
}

/* sweep_check -- the committed image is one instant of the sweep */
static void sweep_check(const char *image, size_t ps, unsigned c)
{
    uint64_t first, prev;
    memcpy(&first, image + 8, 8);
    prev = first;
    for (size_t p = 1; p < SWEEP_PAGES; p++) {
        uint64_t v;
        memcpy(&v, image + p * ps + 8, 8);
        cr_assert(v <= prev && v + 1 >= first,
                  "commit %u: page %zu holds %lu after %lu (page 0: %lu): not one instant", c, p,
                  (unsigned long)v, (unsigned long)prev, (unsigned long)first);
        prev = v;
    }
}

/* run_sweep -- a writer sweeping SWEEP_PAGES pages without stopping, 40 commits (odd ones
 * warmed first, as the shim does): every committed image is one instant; returns the pages
 * copied before a pause */
static uint64_t run_sweep(vmp_backend_t b)
{
    size_t ps = vmp_page_size();
    tt_use(b, 0);
    uint64_t before = tracker.precopied;
    struct tt_region t;
    struct tlog log;
    char *image = tracked(&t, SWEEP_PAGES * ps, &log);
    atomic_store(&stop_writers, 0);
    struct wctx w = {t.mem, ps, 0};
    pthread_t th;
    pthread_create(&th, NULL, sweeper, &w);
    unsigned ncommits = 40 * tt_scale();
    uint64_t last = 0, advanced = 0;
    /* a fault backend's sweep traps at every page after each commit (~10 us a page): give
     * it time to sweep between commits, so that every commit finds a sweep in progress */
    useconds_t nap = b == VMP_BACKEND_WP_ASYNC ? 2000 : 40000;
    for (unsigned c = 0; c < ncommits; c++) {
        usleep(nap);
        if (c % 2)
            track_commit_warm();
        cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s: %s", vmp_backend_name(b), track_errmsg());
        sweep_check(image, ps, c);
        uint64_t v;
        memcpy(&v, image + 8, 8);
        advanced += v != last;
        last = v;
    }
    atomic_store(&stop_writers, 1);
    pthread_join(th, NULL);
    uint64_t precopied = tracker.precopied - before;
    cr_log_info("%s: %u commits, %lu pages copied before a pause, page 0 advanced in %lu",
                vmp_backend_name(b), ncommits, (unsigned long)precopied, (unsigned long)advanced);
    cr_assert_gt(advanced, ncommits / 4, "%s: the writer made progress across commits",
                 vmp_backend_name(b));
    cr_assert_eq(rvm_commit(), RVM_SUCCESS);
    cr_assert_eq(memcmp(image, t.mem, SWEEP_PAGES * ps), 0);
    track_reset();
    tlog_close(&log);
    free(image);
    return precopied;
}

Test(track_instant, a_big_dirty_set_copied_before_the_pause_is_one_instant, .timeout = 240)
{
    /* wp-async copies a big dirty set into its snapshots while the threads run, and at the
     * instant only what they wrote since (the shim warms before taking its heap locks; a
     * plain rvm_commit precopies in its own preparation). The fault backends capture the
     * same sweep their own way; every available backend runs it (mprotect always is) */
    static const vmp_backend_t all[] = {VMP_BACKEND_WP_ASYNC, VMP_BACKEND_UFFD_SIGBUS,
                                        VMP_BACKEND_MPROTECT};
    unsigned ran = 0;
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
        if (!tt_backend_ok(all[k]))
            continue;
        uint64_t precopied = run_sweep(all[k]);
        ran++;
        if (all[k] == VMP_BACKEND_WP_ASYNC)
            cr_assert_gt(precopied, 0, "no wp-async commit copied its dirty set before the pause");
        else
            cr_assert_eq(precopied, 0, "%s copied pages before a pause", vmp_backend_name(all[k]));
    }
    cr_assert_gt(ran, 0, "no DIRTY backend is available");
}

Test(track_instant, released_after_its_precopy_a_page_is_not_committed_from_it)
{
    /* pages of a private file mapping (the shim's heap is one) written, copied before a pause
     * (track_commit_warm), then released: they read as the file again and are not reported
     * written, so the commit must not log the copy either (the release dropped the write, as
     * it does without a precopy); memory and the committed image agree afterwards */
    size_t ps = vmp_page_size(), len = SWEEP_PAGES * ps;
    /* only wp-async precopies, and only it can track a private file mapping: without it
     * (Linux before 6.7) the path under test does not exist, and the test says so */
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async unavailable: no precopy to test");
    tt_use(VMP_BACKEND_WP_ASYNC, 0);
    char path[] = "/tmp/lrvm-precopy-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    char *fill = malloc(len);
    memset(fill, 0x11, len);
    cr_assert_eq(pwrite(fd, fill, len, 0), (ssize_t)len);
    struct tt_region t;
    tt_map(&t, len, 0);
    cr_assert_eq(mmap(t.mem, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0), t.mem);
    struct tlog log;
    tlog_open(&log, NULL, fill, len); /* the committed image starts as the file */
    track_set_sink(tlog_sink, &log);
    cr_assert_eq(rvm_track(&t.reg), RVM_SUCCESS, "%s", track_errmsg());
    memset(t.mem, 0xAA, len);
    uint64_t before = tracker.precopied;
    track_commit_warm();
    cr_assert_geq(tracker.precopied - before, SWEEP_PAGES, "the dirty set was not precopied");
    cr_assert_eq(rvm_track_release(t.mem + 1024 * ps, 2048 * ps), RVM_SUCCESS, "%s",
                 track_errmsg());
    cr_assert_eq((unsigned char)t.mem[1024 * ps], 0x11, "a released page reads as the file");
    memset(t.mem + 2048 * ps, 0xBB, 16 * ps); /* released, then written again */
    cr_assert_eq(rvm_commit(), RVM_SUCCESS, "%s", track_errmsg());
    for (size_t p = 0; p < SWEEP_PAGES; p++)
        cr_assert_eq(memcmp(fill + p * ps, t.mem + p * ps, ps), 0,
                     "page %zu: the committed image is not the memory", p);
    track_reset();
    tlog_close(&log);
    free(fill);
    close(fd);
}
