/* SPDX-License-Identifier: MIT */
/*
 * test_heap_model.c -- randomized operations checked against a model of live blocks (sizes
 * and contents), and a 2-thread stress with cross-thread frees while a third thread runs the
 * checker under heap_lock_all.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "heap_test.h"

static struct theap T;

static void setup(void)
{
    theap_create(&T, T_BASE, T_RESERVE);
}

static void teardown(void)
{
    theap_destroy(&T);
}

TestSuite(heap_model, .init = setup, .fini = teardown, .timeout = 120);

struct slot {
    char *p;
    size_t n;
    uint64_t seed;
};

/* rand_size -- mostly small, some large, rare huge */
static size_t rand_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 1000;
    if (r < 700)
        return rnd(s) % 600;
    if (r < 950)
        return rnd(s) % 70000;
    if (r < 998)
        return rnd(s) % (3 << 20);
    return (4 << 20) + rnd(s) % (6 << 20);
}

/* verify -- the block still holds what the model wrote (bounded check for big blocks) */
static void verify(struct slot *sl)
{
    size_t n = sl->n < 8192 ? sl->n : 8192;
    cr_assert(pat_ok(sl->p, n, sl->seed), "block %p (%zu bytes) lost its contents", sl->p, sl->n);
    if (sl->n >= 16384)
        cr_assert(pat_ok(sl->p + sl->n - 64, 64, sl->seed + 1));
}

/* fill -- write the model's pattern */
static void fill(struct slot *sl)
{
    size_t n = sl->n < 8192 ? sl->n : 8192;
    pat_fill(sl->p, n, sl->seed);
    if (sl->n >= 16384)
        pat_fill(sl->p + sl->n - 64, 64, sl->seed + 1);
}

/* random_ops -- nops operations over nslots slots; returns with all slots freed */
static void random_ops(struct heap *h, uint64_t seed, long nops, int nslots, int check_every)
{
    struct slot *sl = calloc((size_t)nslots, sizeof(*sl));
    uint64_t s = seed;
    for (long op = 0; op < nops; op++) {
        struct slot *x = &sl[rnd(&s) % (uint64_t)nslots];
        unsigned what = (unsigned)(rnd(&s) % 10);
        if (x->p) {
            verify(x);
            cr_assert(heap_usable_size(h, x->p) >= x->n);
            if (what < 6) {
                cr_assert_eq(heap_free(h, x->p), 0);
                x->p = NULL;
            } else {
                size_t nn = rand_size(&s), keep = nn < x->n ? nn : x->n;
                char *q = heap_realloc(h, x->p, nn);
                if (nn == 0) {
                    cr_assert_null(q);
                    x->p = NULL;
                    continue;
                }
                cr_assert_not_null(q);
                x->p = q;
                cr_assert(pat_ok(q, keep < 8192 ? keep : 8192, x->seed), "realloc lost contents");
                x->n = nn;
                x->seed = rnd(&s);
                fill(x);
            }
            continue;
        }
        x->n = rand_size(&s);
        x->seed = rnd(&s);
        if (what < 6) {
            x->p = heap_malloc(h, x->n);
        } else if (what < 8) {
            x->p = heap_calloc(h, 1, x->n);
            cr_assert_not_null(x->p);
            size_t n = x->n < 8192 ? x->n : 8192;
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(x->p[i], 0, "calloc'ed byte %zu of %zu not zero", i, x->n);
        } else {
            size_t a = (size_t)16 << (rnd(&s) % 10);
            x->p = heap_memalign(h, a, x->n);
            cr_assert_eq((uintptr_t)x->p % a, 0);
        }
        cr_assert_not_null(x->p);
        fill(x);
        if (check_every && op % check_every == 0) {
            size_t nv;
            heap_lock_all(h);
            int rc = heap_check(h, NULL, NULL, &nv);
            heap_unlock_all(h);
            cr_assert_eq(rc, 0, "%zu violations after op %ld", nv, op);
        }
    }
    for (int i = 0; i < nslots; i++)
        if (sl[i].p) {
            verify(&sl[i]);
            cr_assert_eq(heap_free(h, sl[i].p), 0);
        }
    free(sl);
}

Test(heap_model, random_ops_against_a_model)
{
    random_ops(T.h, 7, 150000 * test_scale(), 2000, 20000);
    theap_check(&T);
    struct heap_stats st;
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.nallocated, 0);
    cr_assert_eq(st.allocated, 0);
    cr_assert_eq(T.rep.n, 0, "%s", T.rep.all);
    /* after a purge, little stays resident */
    heap_purge(T.h);
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.free_dirty, 0);
}

/* ---- two threads ---------------------------------------------------------------------------- */

#define XCH 64
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static char *xch[XCH]; /* blocks handed from one thread to the other */
static volatile int stop_checker;

struct worker {
    uint64_t seed;
    long nops;
};

/* worker -- random malloc/free/realloc with contents checks; hands blocks to the other thread */
static void *worker(void *arg)
{
    struct worker *w = arg;
    struct slot sl[512];
    memset(sl, 0, sizeof(sl));
    uint64_t s = w->seed;
    for (long op = 0; op < w->nops; op++) {
        struct slot *x = &sl[rnd(&s) % 512];
        if (x->p) {
            verify(x);
            unsigned r = (unsigned)(rnd(&s) % 4);
            if (r == 0) {
                /* hand it over: the other thread frees it */
                pthread_mutex_lock(&xlock);
                int k = (int)(rnd(&s) % XCH);
                char *old = xch[k];
                xch[k] = x->p;
                pthread_mutex_unlock(&xlock);
                if (old)
                    cr_assert_eq(heap_free(T.h, old), 0);
                x->p = NULL;
            } else if (r == 1) {
                x->n = rnd(&s) % 2000 + 1;
                x->p = heap_realloc(T.h, x->p, x->n);
                cr_assert_not_null(x->p);
                fill(x);
            } else {
                cr_assert_eq(heap_free(T.h, x->p), 0);
                x->p = NULL;
            }
        } else {
            x->n = (rnd(&s) % 8 == 0) ? rnd(&s) % 100000 + 1 : rnd(&s) % 512 + 1;
            x->seed = rnd(&s);
            x->p = heap_malloc(T.h, x->n);
            cr_assert_not_null(x->p);
            fill(x);
        }
    }
    for (int i = 0; i < 512; i++)
        if (sl[i].p)
            cr_assert_eq(heap_free(T.h, sl[i].p), 0);
    return NULL;
}

/* checker -- the commit stand-in: lock_all, check, unlock, while workers run */
static void *checker(void *arg)
{
    (void)arg;
    int rounds = 0;
    while (!stop_checker || rounds < 3) {
        size_t nv;
        struct reports r = {0};
        heap_lock_all(T.h);
        int rc = heap_check(T.h, collect_report, &r, &nv);
        heap_unlock_all(T.h);
        cr_assert_eq(rc, 0, "checker under lock_all: %zu violations\n%s", nv, r.all);
        rounds++;
        usleep(2000);
    }
    return NULL;
}

Test(heap_model, two_thread_stress_with_cross_frees)
{
    pthread_t t[2], c;
    struct worker w[2] = {{11, 200000 * test_scale()}, {23, 200000 * test_scale()}};
    cr_assert_eq(pthread_create(&c, NULL, checker, NULL), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    stop_checker = 1;
    pthread_join(c, NULL);
    for (int k = 0; k < XCH; k++)
        if (xch[k])
            cr_assert_eq(heap_free(T.h, xch[k]), 0);
    theap_check(&T);
    struct heap_stats st;
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.nallocated, 0, "stats: %zu blocks still allocated", st.nallocated);
    /* the workers' caches were returned at thread exit: only this thread's cache is left */
    int ncaches = 0;
    for (struct heap_tcache *tc = T.h->tcaches; tc; tc = tc->next)
        ncaches++;
    cr_assert(ncaches <= 1, "%d caches left after the threads exited", ncaches);
    cr_assert_eq(T.rep.n, 0, "%s", T.rep.all);
}

Test(heap_model, fork_child_reinit)
{
    void *p = heap_malloc(T.h, 100);
    heap_free(T.h, p); /* leave something in this thread's cache */
    heap_lock_all(T.h);
    pid_t pid = fork();
    if (pid == 0) {
        heap_fork_child(T.h);
        void *q = heap_malloc(T.h, 100);
        void *r = heap_malloc(T.h, 1 << 20);
        int ok = q && r && heap_free(T.h, q) == 0 && heap_free(T.h, r) == 0 &&
                 heap_check(T.h, NULL, NULL, NULL) == 0;
        _exit(ok ? 0 : 1);
    }
    heap_unlock_all(T.h);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    theap_check(&T);
}
