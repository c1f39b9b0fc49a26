/* SPDX-License-Identifier: MIT */
/*
 * test_heap_defer.c -- DEFERRED RELEASE (heap_page.c): a backing whose try_release says
 * EAGAIN (the shim's tracker during a commit) must not make free() wait, must get the memory
 * back later, must never release chunks that were reused meanwhile, and must keep the number
 * of deferred ranges bounded.
 *
 * The backing wraps the file backing of heap_test.h and records every range it releases, so
 * "never released while live" is checked against the ranges themselves, whatever the memory
 * reads back as.
 */
#include <errno.h>

#include "heap_test.h"

#define D_MAX_LOG 256

static struct {
    const struct heap_backing *file;
    int busy;                /* try_release says EAGAIN */
    unsigned nwait, ntry_ok; /* release calls (waiting), try_release calls that released */
    size_t nlog;
    struct d_range {
        size_t off, len;
    } log[D_MAX_LOG];
} db;

static int d_grow(void *ctx, size_t n)
{
    return db.file->grow(ctx, n);
}

static size_t d_size(void *ctx)
{
    return db.file->size(ctx);
}

static int d_reserve(void *ctx, size_t off, size_t len)
{
    return db.file->reserve_space(ctx, off, len);
}

static int d_do_release(void *ctx, size_t off, size_t len)
{
    if (db.nlog < D_MAX_LOG)
        db.log[db.nlog++] = (struct d_range){off, len};
    return db.file->release(ctx, off, len);
}

static int d_release(void *ctx, size_t off, size_t len)
{
    db.nwait++;
    return d_do_release(ctx, off, len);
}

static int d_try_release(void *ctx, size_t off, size_t len)
{
    if (db.busy)
        return EAGAIN;
    db.ntry_ok++;
    return d_do_release(ctx, off, len);
}

/* released -- bytes of [p, p+n) that some release covered since the log was cleared */
static size_t released(struct heap *h, const void *p, size_t n)
{
    size_t a = (size_t)((const char *)p - h->base), b = a + n, sum = 0;
    for (size_t i = 0; i < db.nlog; i++) {
        size_t lo = db.log[i].off > a ? db.log[i].off : a;
        size_t hi = db.log[i].off + db.log[i].len < b ? db.log[i].off + db.log[i].len : b;
        if (lo < hi)
            sum += hi - lo;
    }
    return sum;
}

static struct theap t;
static struct heap_backing dback;

/* setup -- a heap over the wrapping backing */
static void setup(void)
{
    memset(&db, 0, sizeof(db));
    memset(&t, 0, sizeof(t));
    tmp_path(t.path, sizeof(t.path), "defer");
    cr_assert_eq(heap_file_create(&t.f, t.path, T_BASE, T_RESERVE), 0);
    db.file = heap_file_backing(t.f);
    dback = *db.file;
    dback.grow = d_grow;
    dback.size = d_size;
    dback.reserve_space = d_reserve;
    dback.release = d_release;
    dback.try_release = d_try_release;
    struct heap_opts o;
    heap_opts_init(&o);
    o.report = collect_report;
    o.report_arg = &t.rep;
    cr_assert_eq(heap_create(&t.h, T_BASE, T_RESERVE, &dback, &o), 0);
}

static void teardown(void)
{
    theap_destroy(&t);
}

#define BIG ((size_t)12 << 20) /* a huge block: whole chunks */

Test(defer, a_free_while_busy_is_released_later, .init = setup, .fini = teardown)
{
    char *keep = heap_malloc(t.h, BIG);
    char *p = heap_malloc(t.h, BIG);
    cr_assert(keep && p);
    db.busy = 1;
    db.nlog = 0;
    heap_free(t.h, p);
    cr_assert_eq(db.nwait, 0, "free() waited for the busy backing");
    cr_assert_eq(released(t.h, p, BIG), 0);
    cr_assert_eq(t.h->ndeferred, 1);
    db.busy = 0;
    heap_free(t.h, keep); /* the next free of chunks retries the deferred range first */
    cr_assert_eq(t.h->ndeferred, 0);
    cr_assert_eq(released(t.h, p, BIG), BIG, "the deferred range was never released");
    cr_assert_eq(db.nwait, 0);
    theap_check(&t);
}

Test(defer, chunks_reused_meanwhile_are_not_released, .init = setup, .fini = teardown)
{
    char *keep = heap_malloc(t.h, BIG);
    char *p = heap_malloc(t.h, BIG);
    cr_assert(keep && p);
    db.busy = 1;
    heap_free(t.h, p);
    char *q = heap_malloc(t.h, BIG); /* best fit: the chunks just freed */
    cr_assert_eq(q, p, "the test needs the freed chunks reused (got %p, freed %p)", q, p);
    pat_fill(q, BIG, 7);
    db.busy = 0;
    db.nlog = 0;
    heap_free(t.h, keep);
    cr_assert_eq(released(t.h, q, BIG), 0, "a live block's memory was released");
    heap_purge(t.h);
    cr_assert_eq(released(t.h, q, BIG), 0, "a live block's memory was released by the purge");
    cr_assert(pat_ok(q, BIG, 7));
    cr_assert_eq(t.h->ndeferred, 0);
    heap_free(t.h, q);
    theap_check(&t);
}

Test(defer, a_block_freed_twice_during_one_commit_is_noted_once, .init = setup, .fini = teardown)
{
    db.busy = 1;
    for (unsigned i = 0; i < 3 * HEAP_DEFER_MAX; i++) {
        char *p = heap_malloc(t.h, BIG);
        cr_assert(p);
        heap_free(t.h, p);
    }
    cr_assert_eq(t.h->ndeferred, 1);
    cr_assert_eq(db.nwait, 0, "free() waited although one range was noted again and again");
}

Test(defer, the_deferred_ranges_are_bounded, .init = setup, .fini = teardown)
{
    enum { N = HEAP_DEFER_MAX + 4 };
    char *p[N];
    for (int i = 0; i < N; i++)
        cr_assert_not_null(p[i] = heap_malloc(t.h, BIG));
    db.busy = 1;
    for (int i = 0; i < N; i += 2) /* every other one: no two freed ranges are adjacent */
        heap_free(t.h, p[i]);
    for (int i = 1; i < N; i += 2)
        heap_free(t.h, p[i]);
    cr_assert_leq(t.h->ndeferred, HEAP_DEFER_MAX);
    cr_assert_gt(db.nwait, 0, "past HEAP_DEFER_MAX ranges the heap must wait for the backing");
    heap_purge(t.h); /* waits: nothing stays deferred */
    cr_assert_eq(t.h->ndeferred, 0);
    size_t total = 0;
    for (int i = 0; i < N; i++)
        total += released(t.h, p[i], BIG);
    cr_assert_eq(total, (size_t)N * BIG, "freed memory still resident after heap_purge");
    theap_check(&t);
}
