/* SPDX-License-Identifier: MIT */
/*
 * test_dirty.c -- DIRTY: every test runs once per backend (suites wp_async, uffd_sigbus,
 * mprotect). A backend this machine cannot use is *skipped* (reported as such, never a pass);
 * the report hook at the end prints which backends ran and which were skipped and why.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

#define PER_BACKEND(name, tmo)                \
    Test(wp_async, name, .timeout = tmo)      \
    {                                         \
        name##_body(VMP_BACKEND_WP_ASYNC);    \
    }                                         \
    Test(uffd_sigbus, name, .timeout = tmo)   \
    {                                         \
        name##_body(VMP_BACKEND_UFFD_SIGBUS); \
    }                                         \
    Test(mprotect, name, .timeout = tmo)      \
    {                                         \
        name##_body(VMP_BACKEND_MPROTECT);    \
    }

/* tracker_new -- a tracker with backend b (skipping the test if b is unusable) */
static vmp_dirty_t *tracker_new(vmp_backend_t b, vmp_first_write_fn hook, void *arg)
{
    vmp_dirty_t *t = NULL;
    vmp_dirty_opts_t o = {.backend = b, .hook = hook, .hook_arg = arg};
    test_require_backend(b);
    int rc = vmp_dirty_create(&o, &t);
    cr_assert_eq(rc, 0, "vmp_dirty_create(%s): %s", vmp_backend_name(b), strerror(rc));
    cr_assert_eq(vmp_dirty_backend(t), b);
    return t;
}

/* Collected pages as a per-page count over one range. */
struct seen {
    char *base;
    size_t npages;
    unsigned char *count;
    size_t total;
    int outside;
};

/* seen_add -- record npages pages starting at start */
static void seen_add(void *start, size_t npages, void *arg)
{
    struct seen *s = arg;
    size_t ps = vmp_page_size();
    for (size_t i = 0; i < npages; i++) {
        char *p = (char *)start + i * ps;
        if (p < s->base || p >= s->base + s->npages * ps || ((uintptr_t)p & (ps - 1))) {
            s->outside++;
            continue;
        }
        size_t idx = (size_t)(p - s->base) / ps;
        if (s->count[idx] < 255)
            s->count[idx]++;
        s->total++;
    }
}

/* collect_all -- one complete collect into s, through the array API with a small array
 * (exercising continuation) or through the runs API */
static void collect_all(vmp_dirty_t *t, struct seen *s, int use_array)
{
    memset(s->count, 0, s->npages);
    s->total = 0;
    s->outside = 0;
    if (!use_array) {
        int rc = vmp_dirty_collect_runs(t, seen_add, s);
        cr_assert_eq(rc, 0, "collect_runs: %s (%s)", strerror(rc), vmp_dirty_errmsg(t));
        return;
    }
    void *pages[1000];
    int more = 1, calls = 0;
    while (more) {
        size_t n = 0;
        int rc = vmp_dirty_collect(t, pages, 1000, &n, &more);
        cr_assert_eq(rc, 0, "collect: %s (%s)", strerror(rc), vmp_dirty_errmsg(t));
        cr_assert_leq(n, 1000);
        for (size_t i = 0; i < n; i++)
            seen_add(pages[i], 1, s);
        cr_assert_lt(++calls, 100000, "collect never completes");
    }
}

/* exact_run -- write a random permille of len bytes of m per cycle; the collected set must
 * be exactly the written set, every cycle */
static void exact_run(vmp_backend_t b, char *m, size_t len, int permille)
{
    size_t ps = vmp_page_size(), npages = len / ps;
    vmp_dirty_t *t = tracker_new(b, NULL, NULL);
    cr_assert_eq(vmp_dirty_arm(t, m, len), 0, "arm: %s", vmp_dirty_errmsg(t));
    unsigned char *expect = calloc(npages, 1);
    struct seen s = {m, npages, calloc(npages, 1), 0, 0};
    uint64_t seed = 0x9E3779B97F4A7C15ULL ^ (uint64_t)permille ^ ((uint64_t)b << 32);
    int cycles = 3 * test_scale();
    for (int c = 0; c < cycles; c++) {
        memset(expect, 0, npages);
        size_t k = permille >= 1000 ? npages : npages * (size_t)permille / 1000;
        if (k == 0)
            k = 1;
        for (size_t j = 0; j < k; j++) {
            size_t p = permille >= 1000 ? j : test_rand(&seed) % npages;
            expect[p] = 1;
            m[p * ps + test_rand(&seed) % ps] = (char)(c + 1);
        }
        /* reads of other pages are not writes */
        volatile char sink = 0;
        for (size_t j = 0; j < 64; j++)
            sink += m[(test_rand(&seed) % npages) * ps];
        (void)sink;
        collect_all(t, &s, c % 2 == 0);
        cr_assert_eq(s.outside, 0, "pages reported outside the range");
        size_t want = 0, missing = 0, extra = 0, dup = 0;
        for (size_t p = 0; p < npages; p++) {
            want += expect[p];
            if (expect[p] && !s.count[p])
                missing++;
            if (!expect[p] && s.count[p])
                extra++;
            if (s.count[p] > 1)
                dup++;
        }
        cr_assert(missing == 0 && extra == 0 && dup == 0,
                  "%s cycle %d (%d permille): wrote %zu pages, collected %zu: %zu missing, "
                  "%zu extra, %zu duplicated",
                  vmp_backend_name(b), c, permille, want, s.total, missing, extra, dup);
    }
    /* nothing written since: an empty collect */
    collect_all(t, &s, 1);
    cr_assert_eq(s.total, 0, "%zu pages reported with no writes", s.total);
    vmp_dirty_destroy(t);
    free(expect);
    free(s.count);
}

/* exact_body -- 64 MiB of anonymous memory, half of it populated before arming */
static void exact_body(vmp_backend_t b, int permille)
{
    size_t len = (size_t)64 << 20, ps = vmp_page_size();
    char *m = test_map(len);
    for (size_t off = 0; off < len; off += 2 * ps)
        m[off] = 1;
    exact_run(b, m, len, permille);
    munmap(m, len);
}

static void exact_0_1pct_body(vmp_backend_t b)
{
    exact_body(b, 1);
}
static void exact_10pct_body(vmp_backend_t b)
{
    exact_body(b, 100);
}
static void exact_100pct_body(vmp_backend_t b)
{
    exact_body(b, 1000);
}
PER_BACKEND(exact_0_1pct, 120)
PER_BACKEND(exact_10pct, 120)
PER_BACKEND(exact_100pct, 120)

/* exact_thp_body -- memory backed by transparent huge pages before arming: still exact to the
 * 4 KiB page (the kernel splits huge mappings as pages are re-armed one by one) */
static void exact_thp_body(vmp_backend_t b)
{
    size_t len = (size_t)16 << 20, huge = (size_t)2 << 20;
    char *raw = test_map(len + huge);
    char *m = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(m, len, MADV_HUGEPAGE); /* best effort: THP may be disabled on this host */
    memset(m, 1, len);
    exact_run(b, m, len, 100);
    munmap(raw, len + huge);
}
PER_BACKEND(exact_thp, 60)

/* exact_memfd_body -- shared memfd memory (shmem) tracks as exactly as anonymous memory */
static void exact_memfd_body(vmp_backend_t b)
{
    size_t len = (size_t)8 << 20;
    int fd = memfd_create("vmprim-test", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)len), 0);
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    memset(m, 0, len / 2); /* half populated */
    exact_run(b, m, len, 100);
    munmap(m, len);
    close(fd);
}
PER_BACKEND(exact_memfd, 60)

/* ---- 4 writer threads against a collector ---- */

#define MT_PAGES 4096
/*
 * The oracle. The collector numbers its collects: it increments `epoch` to N just before
 * collect N starts. A writer reads epoch (g) before its store and, after the store, raises
 * truth[p] to g+1. Collects before g had finished before the store began, and the store
 * finished before the collector's snapshot of truth ahead of collect N: so the header's
 * rules require some collect in [g, N] to report p, i.e. last[p] >= g where last[p] is the
 * number of the latest collect that reported p. A write lost by a wrong order of bit-clear
 * and re-protection leaves its page open and unrecorded; every later write to it fails
 * this check.
 */
struct mt {
    char *m;
    _Atomic uint32_t truth[MT_PAGES]; /* 1 + highest epoch seen by a completed write */
    _Atomic uint32_t epoch;
    atomic_int stop;
    uint64_t seed;
};

/* mt_writer -- write random pages until told to stop, recording each write after it */
static void *mt_writer(void *arg)
{
    struct mt *w = arg;
    size_t ps = vmp_page_size();
    uint64_t seed = w->seed ^ (uint64_t)pthread_self();
    while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        size_t p = test_rand(&seed) % MT_PAGES;
        uint32_t g = atomic_load(&w->epoch) + 1;
        ((volatile char *)w->m)[p * ps + test_rand(&seed) % ps] = (char)seed;
        uint32_t cur = atomic_load(&w->truth[p]);
        while (cur < g && !atomic_compare_exchange_weak(&w->truth[p], &cur, g))
            ;
    }
    return NULL;
}

/* mt_round -- snapshot truth, run collect number ++epoch, check; returns lost pages */
static size_t mt_round(struct mt *w, vmp_dirty_t *t, struct seen *s, uint32_t *last, int use_array,
                       size_t *first, size_t *reported)
{
    static uint32_t snap[MT_PAGES];
    for (size_t p = 0; p < MT_PAGES; p++)
        snap[p] = atomic_exchange(&w->truth[p], 0);
    uint32_t n = atomic_fetch_add(&w->epoch, 1) + 1;
    collect_all(t, s, use_array);
    *reported += s->total;
    size_t lost = 0;
    for (size_t p = 0; p < MT_PAGES; p++) {
        if (s->count[p])
            last[p] = n;
        if (snap[p] != 0 && last[p] < snap[p] - 1 && lost++ == 0)
            *first = p;
    }
    return lost;
}

static atomic_size_t mt_hook_calls;

/* mt_hook -- count first-write hook calls (fault backends) */
static void mt_hook(void *page, void *arg)
{
    (void)page, (void)arg;
    atomic_fetch_add(&mt_hook_calls, 1);
}

/* four_writers_body -- 4 threads write while the main thread collects: no page is lost.
 * With a fault backend the first-write hook also runs exactly once per page per epoch:
 * in total exactly as many hook calls as pages reported. */
static void four_writers_body(vmp_backend_t b)
{
    size_t ps = vmp_page_size(), len = MT_PAGES * ps;
    struct mt *w = calloc(1, sizeof(*w));
    uint32_t *last = calloc(MT_PAGES, sizeof(*last));
    w->m = test_map(len);
    w->seed = 12345;
    vmp_dirty_t *t = tracker_new(b, b == VMP_BACKEND_WP_ASYNC ? NULL : mt_hook, NULL);
    cr_assert_eq(vmp_dirty_arm(t, w->m, len), 0, "arm: %s", vmp_dirty_errmsg(t));
    struct seen s = {w->m, MT_PAGES, calloc(MT_PAGES, 1), 0, 0};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, mt_writer, w), 0);
    size_t lost = 0, first = 0, reported = 0;
    int rounds = 300 * test_scale();
    for (int r = 0; r < rounds && lost == 0; r++) {
        lost = mt_round(w, t, &s, last, r % 2, &first, &reported);
        usleep(200);
    }
    atomic_store(&w->stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(lost, 0, "%s: %zu written pages never reported (first: page %zu)",
                 vmp_backend_name(b), lost, first);
    /* Writers are done: this collect must report the rest ... */
    lost = mt_round(w, t, &s, last, 0, &first, &reported);
    cr_assert_eq(lost, 0, "%s: %zu pages lost at the end", vmp_backend_name(b), lost);
    /* ... and the next one nothing. */
    collect_all(t, &s, 1);
    cr_assert_eq(s.total, 0, "%s: %zu pages reported after writers stopped", vmp_backend_name(b),
                 s.total);
    cr_assert_gt(reported, (size_t)rounds, "writers made too little progress to mean anything");
    if (b != VMP_BACKEND_WP_ASYNC)
        cr_assert_eq(atomic_load(&mt_hook_calls), reported,
                     "%s: %zu hook calls for %zu reported pages", vmp_backend_name(b),
                     atomic_load(&mt_hook_calls), reported);
    fprintf(stderr, "vmprim: %s four_writers: %d collects, %zu pages reported, none lost%s\n",
            vmp_backend_name(b), rounds, reported,
            b == VMP_BACKEND_WP_ASYNC ? "" : ", one hook call per reported page");
    vmp_dirty_destroy(t);
    munmap(w->m, len);
    free(s.count);
    free(last);
    free(w);
}
PER_BACKEND(four_writers, 120)

/* ---- kernel writes (read(2)) into armed memory ---- */

static void read_into_body(vmp_backend_t b)
{
    size_t ps = vmp_page_size(), len = 16 * ps, n = 2 * ps + 100;
    char *m = test_map(len);
    int fd = memfd_create("vmprim-read", MFD_CLOEXEC);
    char *src = malloc(n);
    memset(src, 'x', n);
    cr_assert_eq(write(fd, src, n), (ssize_t)n);
    vmp_dirty_t *t = tracker_new(b, NULL, NULL);
    cr_assert_eq(vmp_dirty_arm(t, m, len), 0);
    char *dst = m + ps + 10; /* spans pages 1, 2, 3 */
    if (b != VMP_BACKEND_WP_ASYNC) {
        /* What the prepare call is for: without it the kernel cannot write. */
        errno = 0;
        cr_assert_eq(pread(fd, dst, n, 0), -1, "kernel write into a protected page succeeded");
        cr_assert_eq(errno, EFAULT);
        cr_assert_eq(vmp_dirty_prepare_write(t, dst, n), 0, "%s", vmp_dirty_errmsg(t));
    } else {
        cr_assert_eq(vmp_dirty_prepare_write(t, dst, n), 0); /* a no-op */
    }
    cr_assert_eq(pread(fd, dst, n, 0), (ssize_t)n, "pread: %s", strerror(errno));
    cr_assert_eq(memcmp(dst, src, n), 0);
    struct seen s = {m, 16, calloc(16, 1), 0, 0};
    collect_all(t, &s, 1);
    cr_assert_eq(s.total, 3, "%zu pages reported, want 3", s.total);
    cr_assert(s.count[1] && s.count[2] && s.count[3]);
    /* re-armed: a user write to page 2 is reported again, alone */
    m[2 * ps] = 1;
    collect_all(t, &s, 0);
    cr_assert(s.total == 1 && s.count[2]);
    vmp_dirty_destroy(t);
    close(fd);
    free(src);
    free(s.count);
    munmap(m, len);
}
PER_BACKEND(read_into, 30)

/* ---- first-write hook ---- */

struct hook_log {
    char *base;
    atomic_int calls;
    unsigned char pre[8]; /* first byte of the page as the hook saw it */
};

/* hook_fn -- record the page's pre-image (first byte); async-signal-safe */
static void hook_fn(void *page, void *arg)
{
    struct hook_log *h = arg;
    size_t idx = (size_t)((char *)page - h->base) / vmp_page_size();
    h->pre[idx] = *(unsigned char *)page;
    atomic_fetch_add(&h->calls, 1);
}

static void hook_body(vmp_backend_t b)
{
    size_t ps = vmp_page_size();
    struct hook_log h = {0};
    if (b == VMP_BACKEND_WP_ASYNC) {
        vmp_dirty_t *t = NULL;
        vmp_dirty_opts_t o = {.backend = b, .hook = hook_fn, .hook_arg = &h};
        test_require_backend(b);
        cr_assert_eq(vmp_dirty_create(&o, &t), ENOTSUP, "wp-async must refuse a hook");
        cr_assert_null(t);
        /* AUTO with a hook picks the best hook-capable backend and says why */
        o.backend = VMP_BACKEND_AUTO;
        cr_assert_eq(vmp_dirty_create(&o, &t), 0);
        cr_assert_neq(vmp_dirty_backend(t), VMP_BACKEND_WP_ASYNC);
        cr_assert_not_null(strstr(vmp_dirty_reason(t), "hook"), "reason: %s", vmp_dirty_reason(t));
        vmp_dirty_destroy(t);
        return;
    }
    char *m = test_map(8 * ps);
    h.base = m;
    vmp_dirty_t *t = tracker_new(b, hook_fn, &h);
    cr_assert_eq(vmp_dirty_arm(t, m, 8 * ps), 0);
    m[0] = 1;
    m[1] = 2; /* same page, same epoch: no second call */
    m[ps] = 5;
    cr_assert_eq(atomic_load(&h.calls), 2);
    cr_assert(h.pre[0] == 0 && h.pre[1] == 0);
    struct seen s = {m, 8, calloc(8, 1), 0, 0};
    collect_all(t, &s, 1);
    cr_assert_eq(s.total, 2);
    m[0] = 3; /* new epoch: the hook sees the value of the last epoch */
    cr_assert_eq(atomic_load(&h.calls), 3);
    cr_assert_eq(h.pre[0], 1);
    cr_assert_eq(vmp_dirty_prepare_write(t, m + 2 * ps + 7, 10), 0);
    cr_assert_eq(atomic_load(&h.calls), 4, "prepare_write calls the hook");
    collect_all(t, &s, 0);
    cr_assert(s.total == 2 && s.count[0] && s.count[2]);
    vmp_dirty_destroy(t);
    free(s.count);
    munmap(m, 8 * ps);
}
PER_BACKEND(hook, 30)

/* ---- released memory stays tracked ---- */

/* Pages given back with vmp_dirty_release (clean ones and one written this epoch) read as
 * zeros, and every later write is still reported -- with its hook call. uffd-sigbus lost
 * them before: the release dropped the write protection of anonymous pages. */
static void release_body(vmp_backend_t b)
{
    size_t ps = vmp_page_size();
    struct hook_log h = {0};
    char *m = test_map(8 * ps);
    h.base = m;
    vmp_dirty_t *t = tracker_new(b, b == VMP_BACKEND_WP_ASYNC ? NULL : hook_fn, &h);
    cr_assert_eq(vmp_dirty_arm(t, m, 8 * ps), 0);
    for (size_t i = 0; i < 8; i++)
        m[i * ps] = 7;
    struct seen s = {m, 8, calloc(8, 1), 0, 0};
    collect_all(t, &s, 0);
    cr_assert_eq(s.total, 8);
    m[5 * ps] = 8; /* open in this epoch when released */
    cr_assert_eq(vmp_dirty_release(t, m + ps, 5 * ps), 0, "%s", vmp_dirty_errmsg(t));
    cr_assert_eq(vmp_dirty_release(t, m + 1, ps), EINVAL, "misaligned accepted");
    for (size_t i = 1; i < 6; i++)
        cr_assert_eq(m[i * ps], 0, "page %zu not released", i);
    cr_assert_eq(m[0], 7);
    int calls = atomic_load(&h.calls);
    for (size_t i = 1; i < 6; i++)
        m[i * ps + 9] = 1;
    if (b != VMP_BACKEND_WP_ASYNC)
        cr_assert_eq(atomic_load(&h.calls), calls + 4, "a released page's write skipped the hook");
    collect_all(t, &s, 0);
    for (size_t i = 1; i < 6; i++)
        cr_assert_eq(s.count[i], 1, "%s: write to released page %zu not reported",
                     vmp_backend_name(b), i);
    cr_assert_eq(s.total, 5);
    /* and the epoch after: protected again like any page */
    m[2 * ps] = 3;
    collect_all(t, &s, 1);
    cr_assert(s.total == 1 && s.count[2] == 1);
    vmp_dirty_destroy(t);
    free(s.count);
    munmap(m, 8 * ps);
}
PER_BACKEND(release, 30)

/* ---- disarm, re-arm, several ranges ---- */

static void ranges_body(vmp_backend_t b)
{
    size_t ps = vmp_page_size();
    char *m = test_map(64 * ps);
    vmp_dirty_t *t = tracker_new(b, NULL, NULL);
    cr_assert_eq(vmp_dirty_arm(t, m, 16 * ps), 0);
    cr_assert_eq(vmp_dirty_arm(t, m + 32 * ps, 16 * ps), 0);
    cr_assert_eq(vmp_dirty_arm(t, m + 8 * ps, 16 * ps), EINVAL, "overlap accepted");
    cr_assert_not_null(strstr(vmp_dirty_errmsg(t), "overlaps"));
    cr_assert_eq(vmp_dirty_arm(t, m + 1, ps), EINVAL, "misaligned accepted");
    m[3 * ps] = 1;
    m[20 * ps] = 1; /* not armed */
    m[40 * ps] = 1;
    void *pages[4];
    size_t n;
    int more;
    /* continuation across ranges with a one-entry array */
    cr_assert_eq(vmp_dirty_collect(t, pages, 1, &n, &more), 0);
    cr_assert(n == 1 && pages[0] == m + 3 * ps && more == 1);
    cr_assert_eq(vmp_dirty_collect(t, pages, 1, &n, &more), 0);
    cr_assert(n == 1 && pages[0] == m + 40 * ps);
    while (more)
        cr_assert_eq(vmp_dirty_collect(t, pages, 1, &n, &more), 0);
    cr_assert_eq(vmp_dirty_disarm(t, m + 32 * ps), 0);
    cr_assert_eq(vmp_dirty_disarm(t, m + 32 * ps), EINVAL);
    m[40 * ps] = 2; /* plain memory again */
    m[41 * ps] = 2;
    cr_assert_eq(vmp_dirty_collect(t, pages, 4, &n, &more), 0);
    cr_assert(n == 0 && more == 0);
    cr_assert_eq(vmp_dirty_arm(t, m + 32 * ps, 16 * ps), 0, "re-arm");
    m[33 * ps] = 1;
    cr_assert_eq(vmp_dirty_collect(t, pages, 4, &n, &more), 0);
    cr_assert(n == 1 && pages[0] == m + 33 * ps && more == 0);
    vmp_dirty_destroy(t);
    m[0] = m[33 * ps] = 9; /* destroy left plain read-write memory */
    munmap(m, 64 * ps);
}
PER_BACKEND(ranges, 30)

/* ---- names, auto choice ---- */

Test(dirty, names_and_auto)
{
    vmp_backend_t b;
    cr_assert_eq(vmp_backend_parse("wp-async", &b), 0);
    cr_assert_eq(b, VMP_BACKEND_WP_ASYNC);
    cr_assert_eq(vmp_backend_parse("uffd-sigbus", &b), 0);
    cr_assert_eq(b, VMP_BACKEND_UFFD_SIGBUS);
    cr_assert_eq(vmp_backend_parse("mprotect", &b), 0);
    cr_assert_eq(b, VMP_BACKEND_MPROTECT);
    cr_assert_eq(vmp_backend_parse("auto", &b), 0);
    cr_assert_eq(b, VMP_BACKEND_AUTO);
    cr_assert_eq(vmp_backend_parse("wp_async", &b), EINVAL);
    vmp_dirty_t *t;
    cr_assert_eq(vmp_dirty_create(NULL, &t), 0);
    /* AUTO picks the first usable backend in order */
    for (vmp_backend_t x = VMP_BACKEND_WP_ASYNC; x <= VMP_BACKEND_MPROTECT; x++) {
        if (vmp_backend_probe(x, NULL, 0) == 0) {
            cr_assert_eq(vmp_dirty_backend(t), x);
            break;
        }
    }
    vmp_dirty_destroy(t);
}

/* ---- report: which backends ran, which were skipped and why ---- */

static int ran[VMP_BACKEND_COUNT + 1], skipped[VMP_BACKEND_COUNT + 1];

ReportHook(POST_TEST)(struct criterion_test_stats *st)
{
    vmp_backend_t b;
    char name[32];
    snprintf(name, sizeof(name), "%s", st->test->category);
    for (char *p = name; *p; p++)
        if (*p == '_')
            *p = '-';
    if (vmp_backend_parse(name, &b) != 0)
        return;
    if (st->test_status == CR_STATUS_SKIPPED)
        skipped[b]++;
    else
        ran[b]++;
}

ReportHook(POST_ALL)(struct criterion_global_stats *st)
{
    (void)st;
    for (vmp_backend_t b = VMP_BACKEND_WP_ASYNC; b <= VMP_BACKEND_MPROTECT; b++) {
        char why[256] = "";
        vmp_backend_probe(b, why, sizeof(why));
        if (skipped[b] > 0)
            fprintf(stderr, "vmprim: backend %-11s SKIPPED (%d tests): %s\n", vmp_backend_name(b),
                    skipped[b], why);
        else
            fprintf(stderr, "vmprim: backend %-11s ran %d tests\n", vmp_backend_name(b), ran[b]);
    }
}

/* ---- mprotect backend at the kernel's mapping limit ---- */

/* Every other page opened splits the mapping; vm.max_map_count (per process, default 65530)
 * runs out after ~32 K pages. prepare_write must say so (ENOMEM + a message naming the
 * limit), and a collect must still work afterwards (re-protecting merges mappings again). */
Test(mprotect, vma_limit_is_reported, .timeout = 120)
{
    size_t ps = vmp_page_size(), len = (size_t)1 << 30, npages = len / ps;
    char *m = test_map(len);
    vmp_dirty_t *t = tracker_new(VMP_BACKEND_MPROTECT, NULL, NULL);
    cr_assert_eq(vmp_dirty_arm(t, m, len), 0);
    int rc = 0;
    size_t opened = 0;
    for (size_t p = 0; p < npages && rc == 0; p += 2) {
        rc = vmp_dirty_prepare_write(t, m + p * ps, 1);
        if (rc == 0)
            opened++;
    }
    cr_assert_eq(rc, ENOMEM, "no ENOMEM after %zu split pages (rc %d)", opened, rc);
    cr_assert_not_null(strstr(vmp_dirty_errmsg(t), "max_map_count"), "message: %s",
                       vmp_dirty_errmsg(t));
    fprintf(stderr, "vmprim: mprotect hit the mapping limit after %zu scattered pages: %s\n",
            opened, vmp_dirty_errmsg(t));
    size_t got = 0;
    struct seen s = {m, npages, calloc(npages, 1), 0, 0};
    collect_all(t, &s, 0);
    got = s.total;
    /* the page whose opening failed was recorded first (it may have been partly opened):
     * it is reported once more, which the semantics allow */
    cr_assert(got == opened || got == opened + 1, "collect after ENOMEM: %zu pages, opened %zu",
              got, opened);
    vmp_dirty_destroy(t);
    free(s.count);
    munmap(m, len);
}
