/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c -- transactions from several threads at once:
 * concurrent transactions on disjoint ranges, flush commits that may share one fdatasync
 * (group commit), no_flush commits mixed in, and a SIGKILL in the middle: after recovery every
 * commit a thread had seen acknowledged durable is present, and each thread's slot holds one
 * of its own committed values (never a torn mix of two).
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "core_test.h"

#define NTHREADS 4
#define SLOT 256 /* bytes per thread slot; each commit rewrites the whole slot */

static tpaths_t T;
static long PS;
static size_t SEG_LEN;
static char *base;
static volatile uint32_t *acked; /* shared with the parent: last durable value per thread */
static volatile int *arg_ready;  /* shared: set once the worker has created its log */

/* setup -- fresh directory, zeroed segment of one page per thread. */
static void setup(void)
{
    tpaths_make(&T, "threads");
    PS = sysconf(_SC_PAGESIZE);
    SEG_LEN = NTHREADS * (size_t)PS;
    cr_assert_eq(file_make(T.seg, SEG_LEN, 0), 0);
    acked = shared_alloc(NTHREADS * sizeof *acked);
    cr_assert_not_null((void *)acked);
    arg_ready = shared_alloc(sizeof *arg_ready);
    cr_assert_not_null((void *)arg_ready);
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

/* no Criterion timeout: sizes scale with LRVM_TEST_SCALE; meson test enforces the limit
 * (with --timeout-multiplier for large scales) */
TestSuite(threads, .init = setup, .fini = teardown);

typedef struct {
    int id;
    int iters;
    rvm_return_t rc;
} thr_t;

/* slot_fill -- the slot image of value v of thread id: every 4-byte word holds (id<<24)|v. */
static void slot_fill(uint32_t *w, int id, uint32_t v)
{
    for (size_t i = 0; i < SLOT / 4; i++)
        w[i] = ((uint32_t)id << 24) | v;
}

/* thr_main -- commit values 1..iters into this thread's slot; every 3rd no_flush. */
static void *thr_main(void *p)
{
    thr_t *t = p;
    char *slot = base + (size_t)t->id * (size_t)PS + 64;
    uint32_t img[SLOT / 4];
    for (int v = 1; v <= t->iters; v++) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        rvm_return_t rc = rvm_begin_transaction(&tid, v % 2 ? restore : no_restore);
        slot_fill(img, t->id, (uint32_t)v);
        /* two ranges: the halves of the slot, so a torn commit would show as a mix */
        if (!rc)
            rc = rvm_modify_bytes(&tid, slot, img, SLOT / 2);
        if (!rc)
            rc = rvm_modify_bytes(&tid, slot + SLOT / 2, (char *)img + SLOT / 2, SLOT / 2);
        int nf = v % 3 == 0;
        if (!rc)
            rc = rvm_end_transaction(&tid, nf ? no_flush : flush);
        if (rc) {
            t->rc = rc;
            return NULL;
        }
        if (!nf)
            acked[t->id] = (uint32_t)v; /* this and every earlier commit of ours is durable */
    }
    return NULL;
}

/* child_run -- initialise, map, run the threads; exit code 0 if all succeeded. */
static int child_run(void *arg)
{
    int iters = *(int *)arg;
    if (rvmt_init_create(T.log, 256 * 1024, RVM_COALESCE_RANGES, 50) != RVM_SUCCESS)
        return 10;
    if (arg_ready)
        *arg_ready = 1; /* the log exists: kills from now on test commits, not creation */
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 11;
    base = r.vmaddr;
    pthread_t th[NTHREADS];
    thr_t a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i] = (thr_t){i, iters, 0};
        if (pthread_create(&th[i], NULL, thr_main, &a[i]) != 0)
            return 12;
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        if (a[i].rc) {
            fprintf(stderr, "thread %d: %s\n", i, rvm_return(a[i].rc));
            return 13;
        }
    return rvm_terminate() == RVM_SUCCESS ? 0 : 14;
}

static unsigned char *image;

/* child_recover -- fresh process: recovery, copy the segment image out. */
static int child_recover(void *arg)
{
    (void)arg;
    rvm_return_t rc = rvmt_init(T.log, 0, 0);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "threads: recovery: %s: %s\n", rvm_return(rc),
                rvm_errmsg ? rvm_errmsg : "(no rvm_errmsg)");
        return 20;
    }
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 21;
    memcpy(image, r.vmaddr, SEG_LEN);
    return rvm_terminate() == RVM_SUCCESS ? 0 : 22;
}

/* check_slots -- each slot holds one whole value v of its thread with v >= acked (and v <=
 * max, when given); returns the number of bad slots. */
static int check_slots(const unsigned char *img, int max)
{
    int bad = 0;
    for (int id = 0; id < NTHREADS; id++) {
        const uint32_t *w = (const uint32_t *)(img + (size_t)id * (size_t)PS + 64);
        uint32_t v = w[0] & 0xffffff;
        uint32_t want[SLOT / 4];
        slot_fill(want, id, v);
        if (v == 0 && acked[id] == 0 && w[0] == 0)
            continue;
        if (memcmp(w, want, SLOT) != 0 || (w[0] >> 24) != (uint32_t)id) {
            cr_expect_fail("thread %d: slot is a torn mix (first word 0x%08x)", id, w[0]);
            bad++;
        } else if (v < acked[id]) {
            cr_expect_fail("thread %d: value %u recovered but %u was acknowledged durable", id, v,
                           acked[id]);
            bad++;
        } else if (max && (int)v > max) {
            cr_expect_fail("thread %d: value %u beyond the last one committed (%d)", id, v, max);
            bad++;
        }
    }
    return bad;
}

Test(threads, concurrent_commits_all_durable)
{
    char d[64];
    int iters = 150 * (int)test_scale();
    int st = proc_run(child_run, &iters);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "threads: %s", proc_describe(st, d, sizeof d));
    image = shared_alloc(SEG_LEN);
    st = proc_run(child_recover, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery: %s",
              proc_describe(st, d, sizeof d));
    /* terminate flushed everything: every slot holds the last value */
    for (int id = 0; id < NTHREADS; id++)
        acked[id] = (uint32_t)iters;
    cr_expect_eq(check_slots(image, iters), 0);
}

Test(threads, killed_while_threads_commit)
{
    char d[64];
    image = shared_alloc(SEG_LEN);
    trng_t g = {(uint64_t)getpid() * 7919u};
    int rounds = 30 * (int)test_scale();
    long acked_total = 0;
    for (int round = 0; round < rounds; round++) {
        tdir_remove(T.dir);
        tpaths_make(&T, "threads");
        cr_assert_eq(file_make(T.seg, SEG_LEN, 0), 0);
        memset((void *)acked, 0, NTHREADS * sizeof *acked);
        *arg_ready = 0;
        int iters = 1000000; /* until killed */
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            _exit(child_run(&iters));
        /* start the clock once the log exists (a kill during log creation is another test) */
        for (int w = 0; w < 10000 && !*arg_ready; w++) {
            struct timespec tick = {0, 1000000L};
            nanosleep(&tick, NULL);
        }
        struct timespec ts = {0, (long)(1 + trng_below(&g, 60)) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int wst;
        cr_assert_eq(waitpid(pid, &wst, 0), pid);
        cr_assert(WIFSIGNALED(wst) || (WIFEXITED(wst) && WEXITSTATUS(wst) == 0),
                  "round %d: worker failed before the kill: %s", round,
                  proc_describe(wst, d, sizeof d));
        int st = proc_run(child_recover, NULL);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: recovery: %s", round,
                  proc_describe(st, d, sizeof d));
        for (int id = 0; id < NTHREADS; id++)
            acked_total += acked[id];
        if (check_slots(image, 0))
            break;
    }
    fprintf(stderr,
            "threads: %d kills while %d threads committed; %ld commits acknowledged "
            "durable before the kills, checked after recovery\n",
            rounds, NTHREADS, acked_total);
    cr_expect_gt(acked_total, 0, "no commit was acknowledged before any kill: test is vacuous");
}
