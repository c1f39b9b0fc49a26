/* SPDX-License-Identifier: MIT */
/*
 * test_preload_lockset.c -- preload/lockset.c without a program under the shim (suite
 * 'preload'; runs in the sanitizer build too): the held-lock table's bookkeeping (superset,
 * rows, the full-table count) and the restore of mutexes and condition variables captured held.
 * A "committed" object is made by copying the bytes of a live, held one (what a commit does):
 * the copy is held by a thread that, for the copy, no longer exists.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "lockset.h"

static struct image_header *img; /* a fake header page */
static unsigned char *area;      /* a fake tracked range */
#define AREA 65536

static struct ls_row *rows(void)
{
    return (struct ls_row *)((char *)img + IMG_LOCK_OFF);
}

static void setup(void)
{
    img = aligned_alloc(4096, 4096);
    area = aligned_alloc(4096, AREA);
    memset(img, 0, 4096);
    memset(area, 0, AREA);
}

static void teardown(void)
{
    free(img);
    free(area);
}

/* start -- a run starting from the (fake) committed header: area is the heap */
static void start(int existing)
{
    shim_locks_setup(img, "test-seg", existing, (uintptr_t)area, (uintptr_t)area + AREA);
    shim_locks_ranges(0, 0, (uintptr_t)area, (uintptr_t)area + AREA);
}

/* listed -- entries equal to e in the whole table */
static int listed(uint64_t e)
{
    int n = 0;
    for (unsigned r = 1; r < IMG_LOCK_ROWS; r++)
        for (int i = 0; i < IMG_LOCK_ROW_ENTRIES; i++)
            n += rows()[r].ent[i] == e;
    return n;
}

TestSuite(preload_lockset, .init = setup, .fini = teardown);

Test(preload_lockset, add_before_del_after_and_rows)
{
    start(0);
    pthread_mutex_t *m = (pthread_mutex_t *)area;
    pthread_mutex_t local;
    ls_add(m, 0);
    cr_assert_eq(listed((uintptr_t)m), 1);
    cr_assert_neq(rows()[ls_row_of].owner, 0, "the row is claimed");
    ls_add(&local, 0); /* not tracked: not listed */
    cr_assert_eq(listed((uintptr_t)&local), 0);
    ls_del(&local, 0);
    ls_add(area + 64, LS_COND);
    cr_assert_eq(listed((uintptr_t)(area + 64) | LS_COND), 1);
    ls_del(area + 64, LS_COND);
    int r = ls_row_of;
    ls_del(m, 0);
    cr_assert_eq(listed((uintptr_t)m), 0);
    cr_assert_eq(rows()[r].owner, 0, "the last release frees the row");
    cr_assert_eq(ls_row_of, 0);
    ls_add(m, 0); /* the same row again */
    cr_assert_eq(ls_row_of, r);
    ls_del(m, 0);
}

Test(preload_lockset, full_row_is_counted_not_listed)
{
    start(0);
    for (int i = 0; i < IMG_LOCK_ROW_ENTRIES + 2; i++)
        ls_add(area + 64 * i, 0);
    cr_assert_eq(rows()[0].owner, 2, "two holds beyond the row's 7 are counted");
    for (int i = IMG_LOCK_ROW_ENTRIES + 1; i >= 0; i--)
        ls_del(area + 64 * i, 0);
    cr_assert_eq(rows()[0].owner, 0);
    for (unsigned r = 1; r < IMG_LOCK_ROWS; r++)
        cr_assert_eq(rows()[r].owner, 0);
}

#define NTHR 40
static pthread_barrier_t bar;

static void *holder(void *arg)
{
    ls_add(arg, 0);
    pthread_barrier_wait(&bar); /* all hold */
    pthread_barrier_wait(&bar); /* the main thread has looked */
    ls_del(arg, 0);
    return NULL;
}

Test(preload_lockset, more_threads_than_rows)
{
    start(0);
    pthread_t t[NTHR];
    pthread_barrier_init(&bar, NULL, NTHR + 1);
    for (int i = 0; i < NTHR; i++)
        pthread_create(&t[i], NULL, holder, area + 64 * i);
    pthread_barrier_wait(&bar);
    int n = 0;
    for (int i = 0; i < NTHR; i++)
        n += listed((uintptr_t)(area + 64 * i));
    cr_expect_eq(n, (int)IMG_LOCK_ROWS - 1, "one row per holding thread");
    cr_expect_eq(rows()[0].owner, NTHR - (IMG_LOCK_ROWS - 1), "the rest counted");
    pthread_barrier_wait(&bar);
    for (int i = 0; i < NTHR; i++)
        pthread_join(t[i], NULL);
    cr_expect_eq(rows()[0].owner, 0);
    for (unsigned r = 1; r < IMG_LOCK_ROWS; r++)
        cr_expect_eq(rows()[r].owner, 0);
}

/* commit -- list the objects as a commit would have captured them: row 1 */
static void commit_listed(const void *const *objs, const unsigned *tags, int n)
{
    rows()[1].owner = 1;
    for (int i = 0; i < n; i++)
        rows()[1].ent[i] = (uintptr_t)objs[i] | tags[i];
}

/* held_copy -- dst := the bytes of a mutex of kind type locked (lock_twice: twice) by us */
static void held_copy(pthread_mutex_t *dst, int type, int robust, int lock_twice)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type);
    if (robust)
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &a);
    cr_assert_eq(pthread_mutex_lock(&m), 0);
    if (lock_twice)
        cr_assert_eq(pthread_mutex_lock(&m), 0);
    memcpy(dst, &m, sizeof(m));
    if (lock_twice)
        pthread_mutex_unlock(&m);
    pthread_mutex_unlock(&m);
    pthread_mutex_destroy(&m);
}

Test(preload_lockset, held_mutexes_come_back_released)
{
    pthread_mutex_t *plain = (pthread_mutex_t *)area, *check = plain + 1, *rec = plain + 2,
                    *rob = plain + 3, *freem = plain + 4;
    held_copy(plain, PTHREAD_MUTEX_NORMAL, 0, 0);
    held_copy(check, PTHREAD_MUTEX_ERRORCHECK, 0, 0);
    held_copy(rec, PTHREAD_MUTEX_RECURSIVE, 0, 1);
    held_copy(rob, PTHREAD_MUTEX_NORMAL, 1, 0);
    pthread_mutex_init(freem, NULL);
    unsigned char free_before[sizeof(pthread_mutex_t)];
    memcpy(free_before, freem, sizeof(free_before));
    cr_assert_eq(pthread_mutex_trylock(plain), EBUSY, "the copy is held");
    const void *objs[] = {plain, check, rec, rob, freem};
    const unsigned tags[] = {0, 0, 0, 0, 0};
    commit_listed(objs, tags, 5);
    start(1);
    cr_expect_eq(listed((uintptr_t)plain), 0, "the live table starts empty");
    cr_expect_eq(memcmp(free_before, freem, sizeof(free_before)), 0, "a free mutex is untouched");
    cr_expect_eq(pthread_mutex_trylock(plain), 0);
    cr_expect_eq(pthread_mutex_unlock(plain), 0);
    cr_expect_eq(pthread_mutex_trylock(check), 0);
    cr_expect_eq(pthread_mutex_unlock(check), 0);
    cr_expect_eq(pthread_mutex_unlock(check), EPERM, "still an error-checking mutex");
    cr_expect_eq(pthread_mutex_trylock(rec), 0);
    cr_expect_eq(pthread_mutex_trylock(rec), 0, "still recursive");
    cr_expect_eq(pthread_mutex_unlock(rec), 0);
    cr_expect_eq(pthread_mutex_unlock(rec), 0);
    cr_expect_eq(pthread_mutex_lock(rob), EOWNERDEAD, "robust: its owner died");
    cr_expect_eq(pthread_mutex_consistent(rob), 0);
    cr_expect_eq(pthread_mutex_unlock(rob), 0);
    cr_expect_eq(pthread_mutex_lock(rob), 0);
    cr_expect_eq(pthread_mutex_unlock(rob), 0);
}

Test(preload_lockset, not_a_held_mutex_is_untouched)
{
    unsigned char *junk = area, *junk2 = area + 128, *outside = area + AREA - 8;
    memset(junk, 0x7f, 48); /* kind word not a valid kind */
    memset(junk2, 0, 48);
    junk2[0] = 7; /* plain kind, lock word 7: not a held plain mutex */
    unsigned char a[48], b[48];
    memcpy(a, junk, 48);
    memcpy(b, junk2, 48);
    const void *objs[] = {junk, junk2, outside};
    const unsigned tags[] = {0, 0, 0};
    commit_listed(objs, tags, 3);
    outside[0] = 1;
    start(1);
    cr_expect_eq(memcmp(a, junk, 48), 0);
    cr_expect_eq(memcmp(b, junk2, 48), 0);
    cr_expect_eq(outside[0], 1, "an object past the range's end is skipped");
}

static pthread_mutex_t wmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcv = PTHREAD_COND_INITIALIZER;
static int wdone, wwaiting;

static void *cond_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wmu);
    wwaiting = 1;
    while (!wdone)
        pthread_cond_wait(&wcv, &wmu);
    pthread_mutex_unlock(&wmu);
    return NULL;
}

Test(preload_lockset, cond_with_waiters_comes_back_fresh)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&wcv);
    pthread_cond_init(&wcv, &ca);
    pthread_t t;
    pthread_create(&t, NULL, cond_waiter, NULL);
    for (;;) {
        pthread_mutex_lock(&wmu);
        if (wwaiting)
            break;
        pthread_mutex_unlock(&wmu);
        sched_yield();
    }
    pthread_cond_t *c = (pthread_cond_t *)area;
    pthread_mutex_t *m = (pthread_mutex_t *)(area + 256);
    memcpy(c, &wcv, sizeof(*c)); /* captured with a waiter in it */
    pthread_mutex_init(m, NULL);
    wdone = 1;
    pthread_cond_signal(&wcv);
    pthread_mutex_unlock(&wmu);
    pthread_join(t, NULL);
    cr_assert_neq(c->__data.__wrefs >> 3, 0, "the copy has a waiter reference");
    const void *objs[] = {c, m};
    const unsigned tags[] = {LS_COND, 0};
    commit_listed(objs, tags, 2);
    start(1);
    cr_expect_eq(c->__data.__wrefs, 2u, "no waiters; the clock (monotonic) bit kept");
    cr_expect_eq(pthread_cond_signal(c), 0);
    cr_expect_eq(pthread_cond_broadcast(c), 0);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 5000000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(m);
    cr_expect_eq(pthread_cond_timedwait(c, m, &ts), ETIMEDOUT);
    pthread_mutex_unlock(m);
}

static void *exits_holding(void *arg)
{
    for (int i = 0; i < IMG_LOCK_ROW_ENTRIES + 1; i++)
        ls_add((char *)arg + 64 * i, 0); /* 7 listed, 1 counted */
    return NULL;                         /* exits (or is cancelled) without unlisting */
}

Test(preload_lockset, exiting_thread_frees_its_row)
{
    start(0);
    pthread_t t;
    pthread_create(&t, NULL, exits_holding, area);
    pthread_join(t, NULL);
    for (unsigned r = 1; r < IMG_LOCK_ROWS; r++)
        cr_expect_eq(rows()[r].owner, 0, "row %u still owned", r);
    cr_expect_eq(listed((uintptr_t)area), 0);
    cr_expect_eq(rows()[0].owner, 0, "its unlisted hold is no longer counted");
}
