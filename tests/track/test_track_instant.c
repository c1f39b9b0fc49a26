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
    tt_map(&t, NPAGES * ps, 0);
    char *image = calloc(1, NPAGES * ps);
    struct tlog log;
    tlog_open(&log, NULL, image, NPAGES * ps);
    track_set_sink(tlog_sink, &log);
    cr_assert_eq(rvm_track(&t.reg), RVM_SUCCESS, "%s", track_errmsg());

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
    tt_map(&t, 4 * ps, 0);
    char *image = calloc(1, 4 * ps);
    struct tlog log;
    tlog_open(&log, NULL, image, 4 * ps);
    track_set_sink(tlog_sink, &log);
    cr_assert_eq(rvm_track(&t.reg), RVM_SUCCESS, "%s", track_errmsg());
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
