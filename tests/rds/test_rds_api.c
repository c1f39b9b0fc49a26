/* SPDX-License-Identifier: MIT */
/*
 * test_rds_api.c -- RDS, call by call: the documented layout, malloc/free/prealloc/maxblock,
 * fake_free + do_free, caller transactions with abort and with commit (and across a
 * restart), coalescing, statistics and tracing, and clear errors on bad calls and damaged
 * heaps. The heap checker runs after every test that changes the heap.
 */
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>
#include <sys/wait.h>

#include "rds_test.h"

#define HDR (RecoverableHeapStartAddress)

static struct rds_env E;

static void setup(void)
{
    env_zap(&E, 100, 64);
}

static void teardown(void)
{
    env_done(&E);
}

TestSuite(rds, .init = setup, .fini = teardown, .timeout = 30);

static rds_block_t *blk(char *p)
{
    return (rds_block_t *)(p - RDS_USER_OFFSET);
}

Test(rds, layout_is_the_documented_one)
{
    rds_heap_hdr_t *h = HDR;
    cr_assert_eq((char *)h, T_HEAP);
    cr_assert_str_eq(h->version, "Dynamic Allocator Using Rvm Release 0.1 1 Dec 1990");
    cr_assert_eq(h->heaplength, T_HEAPLEN);
    cr_assert_eq(h->chunk_size, 64);
    cr_assert_eq(h->nlists, 100);
    cr_assert_eq(h->maxlist, 100);
    for (int i = 1; i <= 100; i++)
        cr_assert_eq(h->lists[i].guard, 0xad938945UL);
    /* first block: the header is 264 + 16 * 100 = 1864 bytes, rounded up to 64 */
    rds_block_t *b = (rds_block_t *)(T_HEAP + 1920);
    cr_assert_eq(h->lists[100].head, b);
    cr_assert_eq(b->type, 0x345298afUL);
    cr_assert_eq(b->size, (T_HEAPLEN - 1864) / 64);
    cr_assert_eq(*(unsigned long *)((char *)b + b->size * 64 - 8), 0xfd10a32eUL);
    cr_assert_eq(h->stats.freebytes, b->size * 64);
    cr_assert_eq((char *)RecoverableHeapHighAddress, T_HEAP + 1864 + b->size * 64);
    heap_ok();
}

Test(rds, malloc_and_free_in_own_transactions)
{
    int err;
    char *p[20];
    for (int i = 0; i < 20; i++) {
        unsigned long sz = 1 + i * 97;
        p[i] = rds_malloc(sz, NULL, &err);
        cr_assert_not_null(p[i], "malloc %lu: %d %s", sz, err, rds_errmsg);
        cr_assert_eq(err, SUCCESS);
        cr_assert_eq(blk(p[i])->type, 0x783bd92cUL);
        cr_assert_eq(blk(p[i])->size, (sz + 24) / 64 + 1);
        memset(p[i], 0xab, sz); /* the user bytes never reach the guards */
        heap_ok();
    }
    rds_stats_t s;
    cr_assert_eq(rds_get_stats(&s), 0);
    cr_assert_eq(s.malloc, 20);
    for (int i = 0; i < 20; i += 2) {
        cr_assert_eq(rds_free(p[i], NULL, &err), 0, "%d %s", err, rds_errmsg);
        heap_ok();
    }
    cr_assert_eq(rds_get_stats(&s), 0);
    cr_assert_eq(s.free, 10);
    for (int i = 1; i < 20; i += 2)
        cr_assert_eq(rds_free(p[i], NULL, &err), 0, "%d %s", err, rds_errmsg);
    struct rds_check_stats st = heap_ok();
    cr_assert_eq(st.nalloc, 0);
}

Test(rds, bad_calls_give_clear_errors)
{
    int err;
    char *p = rds_malloc(100, NULL, &err);
    cr_assert_not_null(p);
    cr_assert_eq(rds_free(p, NULL, &err), 0);
    cr_assert_eq(rds_free(p, NULL, &err), -1);
    cr_assert_eq(err, EFREED_TWICE);
    cr_assert_eq(rds_free(p + 8, NULL, &err), -1);
    cr_assert_eq(err, EBAD_ARGS);
    char local[64];
    cr_assert_eq(rds_free(local, NULL, &err), -1);
    cr_assert_eq(err, EBAD_ARGS);
    cr_assert_not_null(strstr(rds_errmsg, "not a block of the heap"), "%s", rds_errmsg);
    cr_assert_null(rds_malloc(T_HEAPLEN, NULL, &err));
    cr_assert_eq(err, ENO_ROOM);
    cr_assert_eq(rds_fake_free(p, &(intentionList_t){0, 0, NULL}), EFREED_TWICE);
    heap_ok();
    rds_stop_heap(&err);
    cr_assert_null(rds_malloc(10, NULL, &err));
    cr_assert_eq(err, EHEAP_INIT);
    cr_assert_eq(rds_start_heap(T_HEAP + 4096, &err), -1);
    cr_assert_eq(err, EHEAP_VERSION_SKEW);
    cr_assert_eq(rds_start_heap(T_HEAP, &err), 0);
    cr_assert_eq(err, SUCCESS);
}

Test(rds, overwritten_block_is_reported_with_its_address)
{
    int err;
    char *p = rds_malloc(100, NULL, &err);
    char *q = rds_malloc(100, NULL, &err);
    cr_assert(p && q);
    memset(p, 0, 200); /* runs over p's end guard into q's header */
    cr_assert_eq(rds_free(p, NULL, &err), -1);
    cr_assert_eq(err, ECORRUPT);
    FILE *rep = tmpfile();
    cr_assert_eq(rds_check_heap(rep, &err), -1);
    cr_assert_eq(err, ECORRUPT);
    char want[64];
    snprintf(want, sizeof(want), "%#lx", (unsigned long)blk(p));
    cr_assert_not_null(strstr(rds_errmsg, want), "%s does not name %s", rds_errmsg, want);
    fclose(rep);
}

Test(rds, damaged_free_list_is_an_error_not_a_crash)
{
    int err;
    HDR->lists[100].head = (rds_block_t *)(T_HEAP + 12345); /* wild pointer */
    cr_assert_null(rds_malloc(100, NULL, &err));
    cr_assert_eq(err, ECORRUPT, "%d %s", err, rds_errmsg);
    cr_assert_eq(rds_maxblock(100), 0);
    HDR->lists[100].head = (rds_block_t *)0x10; /* outside the heap */
    cr_assert_null(rds_malloc(100, NULL, &err));
    cr_assert_eq(err, ECORRUPT);
    HDR->lists[7].guard = 0;
    cr_assert_eq(rds_check_heap(NULL, &err), -1);
    cr_assert_not_null(strstr(rds_errmsg, "free list 7"), "%s", rds_errmsg);
}

Test(rds, caller_transaction_abort_undoes_malloc_and_free)
{
    int err;
    char *keep = rds_malloc(300, NULL, &err);
    cr_assert_not_null(keep);
    static char before[T_HEAPLEN];
    memcpy(before, T_HEAP, T_HEAPLEN);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    for (int i = 0; i < 10; i++)
        cr_assert_not_null(rds_malloc(50 + i * 300, &t, &err), "%s", rds_errmsg);
    cr_assert_eq(rds_free(keep, &t, &err), 0, "%s", rds_errmsg);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_assert_eq(memcmp(before, T_HEAP, T_HEAPLEN), 0, "abort left the heap changed");
    cr_assert_eq(blk(keep)->type, 0x783bd92cUL);
    heap_ok();
}

/* restart: a child makes the heap, commits an allocation in its own transaction and dies
 * without terminating; this process (RVM never started here) recovers and loads it */
Test(rds_restart, caller_transaction_commit_survives_a_kill)
{
    struct rds_env e;
    env_dir(&e);
    pid_t pid = fork();
    if (pid == 0) {
        env_start(&e);
        env_make_heap(&e, 100, 64);
        int err;
        char **root = (char **)e.statics;
        rvm_tid_t t;
        rvm_init_tid(&t);
        rvm_begin_transaction(&t, restore);
        char *p = rds_malloc(1000, &t, &err);
        if (p == NULL)
            _exit(1);
        rvm_set_range(&t, p, 1000);
        memset(p, 'x', 1000);
        rvm_set_range(&t, root, 2 * sizeof(*root));
        root[0] = p;
        root[1] = rds_malloc(77, &t, &err); /* allocated, then the abort below */
        rvm_end_transaction(&t, no_flush);
        rvm_flush();
        rvm_begin_transaction(&t, restore);
        rds_free(p, &t, &err); /* a free that never commits */
        raise(SIGKILL);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "child failed before the kill: %d", status);
    env_start(&e);
    int err;
    cr_assert_eq(rds_load_heap(e.seg, RVM_MK_OFFSET(0, T_SEGLEN), &e.statics, &err), 0, "%d %s",
                 err, rds_errmsg);
    char **root = (char **)e.statics;
    char *p = root[0];
    cr_assert_not_null(p);
    cr_assert_eq(blk(p)->type, 0x783bd92cUL, "the committed allocation was lost");
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(p[i], 'x');
    struct rds_check_stats st = heap_ok();
    cr_assert_eq(st.nalloc, 2);
    cr_assert_eq(rds_free(p, NULL, &err), 0);
    heap_ok();
    env_done(&e);
}

Test(rds, prealloc_fills_the_exact_list_and_malloc_hits_it)
{
    int err;
    unsigned long n = (200 + 24) / 64 + 1;
    cr_assert_eq(rds_prealloc(200, 10, NULL, &err), 0, "%s", rds_errmsg);
    int count = 0;
    for (rds_block_t *b = HDR->lists[n].head; b; b = b->next)
        count++;
    cr_assert_eq(count, 10);
    heap_ok();
    rds_stats_t s0, s1;
    rds_get_stats(&s0);
    char *p = rds_malloc(200, NULL, &err);
    cr_assert_not_null(p);
    rds_get_stats(&s1);
    cr_assert_eq(s1.hits, s0.hits + 1);
    cr_assert_eq(s1.prealloc, 1);
    heap_ok();
}

Test(rds, maxblock_says_what_fits)
{
    cr_assert_eq(rds_maxblock(1000), 1);
    cr_assert_eq(rds_maxblock(T_HEAPLEN / 2), 1);
    cr_assert_eq(rds_maxblock(2 * T_HEAPLEN), 0);
}

Test(rds, fake_free_waits_for_do_free)
{
    int err;
    char *p[5];
    for (int i = 0; i < 5; i++)
        cr_assert_not_null(p[i] = rds_malloc(64 * (i + 1), NULL, &err));
    intentionList_t l = {0, 0, NULL};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rds_fake_free(p[i], &l), SUCCESS);
    cr_assert_eq(rds_fake_free(NULL, &l), SUCCESS);
    cr_assert_eq(l.count, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(blk(p[i])->type, 0x783bd92cUL, "fake_free freed already");
    cr_assert_eq(rds_do_free(&l, flush), SUCCESS, "%s", rds_errmsg);
    cr_assert_null(l.table);
    struct rds_check_stats st = heap_ok();
    cr_assert_eq(st.nalloc, 0);
    /* the same block twice on a list: an error, and nothing freed */
    char *q = rds_malloc(10, NULL, &err), *r = rds_malloc(10, NULL, &err);
    rds_fake_free(r, &l);
    rds_fake_free(q, &l);
    rds_fake_free(q, &l);
    cr_assert_eq(rds_do_free(&l, no_flush), EFREED_TWICE);
    cr_assert_eq(blk(q)->type, 0x783bd92cUL);
    cr_assert_eq(blk(r)->type, 0x783bd92cUL);
    heap_ok();
}

Test(rds, many_table_entries_grow_the_intention_list)
{
    int err;
    intentionList_t l = {0, 0, NULL};
    for (int i = 0; i < 100; i++)
        cr_assert_eq(rds_fake_free(rds_malloc(8, NULL, &err), &l), SUCCESS);
    cr_assert_geq(l.size, 100 * sizeof(char *));
    cr_assert_eq(rds_do_free(&l, no_flush), SUCCESS);
    cr_assert_eq(heap_ok().nalloc, 0);
}

Test(rds, full_heap_coalesces_to_serve_a_large_block)
{
    int err, n = 0;
    static char *p[8192];
    while (n < 8192 && (p[n] = rds_malloc(40, NULL, &err)) != NULL)
        n++;
    cr_assert_eq(err, ENO_ROOM);
    cr_assert_gt(n, 1000);
    heap_ok();
    /* lowest address first: each block's successor is still allocated, so no free merges
     * and only coalescing can make a large block again */
    for (int i = n - 1; i >= 0; i--)
        cr_assert_eq(rds_free(p[i], NULL, &err), 0);
    heap_ok();
    char *big = rds_malloc(T_HEAPLEN / 2, NULL, &err);
    cr_assert_not_null(big, "%d %s", err, rds_errmsg);
    rds_stats_t s;
    rds_get_stats(&s);
    cr_assert_gt(s.coalesce, 0);
    heap_ok();
}

Test(rds, clear_stats_and_trace)
{
    int err;
    rds_malloc(10, NULL, &err);
    cr_assert_eq(rds_clear_stats(&err), 0);
    rds_stats_t s;
    rds_get_stats(&s);
    cr_assert_eq(s.malloc, 0);
    cr_assert_neq(s.mallocbytes, 0, "byte counters describe the heap: kept");
    FILE *f = tmpfile();
    rds_trace_on(f);
    rds_malloc(10, NULL, &err);
    rds_trace_dump_heap();
    rds_trace_off();
    rewind(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    cr_assert_not_null(strstr(buf, "rdstrace: malloc addr"));
    cr_assert_not_null(strstr(buf, "rdstrace: start heap_dump"));
    cr_assert_not_null(strstr(buf, "rdstrace: maxlist 100"));
    fclose(f);
    heap_ok();
}

Test(rds, load_refuses_a_segment_that_is_not_rds)
{
    int err;
    char *st;
    rds_unload_heap(&err);
    /* a one-region loader segment is not an RDS segment */
    char seg1[320];
    snprintf(seg1, sizeof(seg1), "%s/one", E.dir);
    FILE *f = fopen(seg1, "w");
    cr_assert_eq(ftruncate(fileno(f), 3 * 4096), 0);
    fclose(f);
    rvm_region_def_t d = {RVM_MK_OFFSET(0, 0), 8192, (char *)0x5c0000000000UL};
    cr_assert_eq(rvm_create_segment(seg1, RVM_MK_OFFSET(0, 3 * 4096), NULL, 1, &d), RVM_SUCCESS);
    cr_assert_eq(rds_load_heap(seg1, RVM_MK_OFFSET(0, 0), &st, &err), -1);
    cr_assert_eq(err, EBAD_SEGMENT_HDR);
    cr_assert_not_null(strstr(rds_errmsg, "rdsinit"), "%s", rds_errmsg);
    /* and it did not stay mapped: the real heap loads at its address again */
    cr_assert_eq(rds_load_heap(E.seg, RVM_MK_OFFSET(0, 0), &st, &err), 0, "%s", rds_errmsg);
}

/* pthreads: four threads allocate, write and free in their own and in caller transactions
 * at once; the heap stays consistent and every block keeps its owner's bytes */
static void *thread_work(void *arg)
{
    long id = (long)arg;
    char *mine[32] = {0};
    for (int i = 0; i < 400; i++) {
        int k = i % 32, err;
        if (mine[k] != NULL) {
            for (int j = 0; j < 48; j++)
                if (mine[k][j] != (char)id)
                    return (void *)1;
            if (rds_free(mine[k], NULL, &err) != 0)
                return (void *)2;
            mine[k] = NULL;
            continue;
        }
        rvm_tid_t t;
        rvm_init_tid(&t);
        rvm_begin_transaction(&t, restore);
        char *p = rds_malloc(48 + (i % 7) * 50, i % 2 ? &t : NULL, &err);
        if (p == NULL)
            return (void *)3;
        rvm_set_range(&t, p, 48);
        memset(p, (int)id, 48);
        rvm_end_transaction(&t, no_flush);
        mine[k] = p;
    }
    for (int k = 0; k < 32; k++) {
        int err;
        if (mine[k] != NULL && rds_free(mine[k], NULL, &err) != 0)
            return (void *)4;
    }
    return NULL;
}

Test(rds, threads_share_the_heap)
{
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, thread_work, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        cr_assert_null(rc, "thread %d failed at step %ld: %s", i, (long)rc, rds_errmsg);
    }
    cr_assert_eq(heap_ok().nalloc, 0);
}

/* user-level threads (the original's LWP flavour): two coroutines on their own stacks, one
 * kernel thread, switching (swapcontext) while each has a transaction open */
static ucontext_t uc_main, uc_co[2];
static int co_fail;

static void coroutine(int id)
{
    int other = 1 - id, err;
    for (int i = 0; i < 50 && !co_fail; i++) {
        rvm_tid_t t; /* on this coroutine's stack */
        rvm_init_tid(&t);
        rvm_begin_transaction(&t, restore);
        char *p = rds_malloc(32 + i, &t, &err);
        swapcontext(&uc_co[id], &uc_co[other]); /* the other runs with our tid open */
        if (p == NULL || rds_free(p, &t, &err) != 0)
            co_fail = 1;
        if (rvm_end_transaction(&t, no_flush) != RVM_SUCCESS)
            co_fail = 1;
        swapcontext(&uc_co[id], &uc_co[other]);
    }
    swapcontext(&uc_co[id], &uc_main);
}

Test(rds, user_level_threads_switch_stacks_inside_transactions)
{
    static char stacks[2][256 * 1024];
    /* volatile: getcontext returns twice as far as the compiler knows (-Wclobbered) */
    for (volatile int i = 0; i < 2; i++) {
        getcontext(&uc_co[i]);
        uc_co[i].uc_stack.ss_sp = stacks[i];
        uc_co[i].uc_stack.ss_size = sizeof(stacks[i]);
        uc_co[i].uc_link = &uc_main;
        makecontext(&uc_co[i], (void (*)(void))coroutine, 1, i);
    }
    swapcontext(&uc_main, &uc_co[0]);
    cr_assert_eq(co_fail, 0, "%s", rds_errmsg);
    cr_assert_eq(heap_ok().nalloc, 0);
}
