/* SPDX-License-Identifier: MIT */
/*
 * test_track_crash.c -- model-based crash test, per DIRTY backend. A child process tracks a
 * region and loops: a batch of random writes (sparse stores, dense memset/memcpy, writes
 * across page ends, read(2) from a pipe into the region, rewrites of unchanged bytes), then
 * rvm_commit in flush mode, then publishes the commit number in shared memory. The parent
 * SIGKILLs it at a random moment, recovers the log in this (fresh) process and checks that
 * the segment equals the model -- the same writes replayed on a plain buffer -- at the last
 * durable commit: the recovered record count k must be the published count or one more
 * (a commit durable but not yet published), and the image must equal model(k) exactly.
 * A second test kills a multi-threaded child running the instant workload.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "track_test.h"

#define NPAGES 48

struct shared {
    _Atomic uint64_t durable; /* commits known durable */
    _Atomic int ready;
};

/* child_loop -- never returns: commit batches until killed */
static void child_loop(vmp_backend_t b, const char *path, uint64_t seed, struct shared *sh)
{
    size_t ps = vmp_page_size(), len = NPAGES * ps;
    rvm_track_options_t o = {.backend = vmp_backend_name(b),
                             .twin_budget = (seed & 1) ? 8 * ps : 0}; /* some runs: tiny budget */
    if (rvm_track_configure(&o) != RVM_SUCCESS)
        _exit(10);
    struct tt_region t;
    rvm_init_region(&t.reg);
    t.mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    t.reg.vmaddr = t.mem;
    t.reg.length = len;
    struct tlog log;
    if (tlog_open(&log, path, NULL, 0) != 0)
        _exit(11);
    track_set_sink(tlog_sink, &log);
    if (rvm_track(&t.reg) != RVM_SUCCESS)
        _exit(12);
    int pfd[2];
    if (pipe(pfd) != 0)
        _exit(13);
    atomic_store(&sh->ready, 1);
    for (uint64_t c = 1;; c++) {
        model_batch(t.mem, len, seed, c, 1, pfd);
        if (rvm_commit() != RVM_SUCCESS)
            _exit(14);
        atomic_store(&sh->durable, c);
    }
}

static void run_crash(vmp_backend_t b, unsigned kills)
{
    if (!tt_backend_ok(b))
        cr_skip_test("backend %s unavailable", vmp_backend_name(b));
    size_t ps = vmp_page_size(), len = NPAGES * ps;
    char path[] = "/tmp/lrvm-track-crash-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *image = malloc(len), *model = malloc(len);
    uint64_t rs = (uint64_t)time(NULL) * 2654435761u + (uint64_t)b;
    uint64_t total_commits = 0;
    for (unsigned k = 0; k < kills; k++) {
        uint64_t seed = tt_rnd(&rs);
        atomic_store(&sh->durable, 0);
        atomic_store(&sh->ready, 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            child_loop(b, path, seed, sh);
        while (!atomic_load(&sh->ready)) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                cr_assert_fail("%s: child exited early (status %d)", vmp_backend_name(b), st);
            usleep(100);
        }
        usleep((useconds_t)(tt_rnd(&rs) % 40000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "%s: child failed before the kill (exit %d)", vmp_backend_name(b),
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        uint64_t published = atomic_load(&sh->durable), nrec = 0;
        memset(image, 0, len);
        cr_assert_eq(tlog_recover(path, image, len, &nrec), 0);
        /* nrec counts records; empty commits write none, so replay the model commit by
         * commit and count the ones that changed something */
        memset(model, 0, len);
        uint64_t c = 0, nonempty = 0;
        char *prev = malloc(len);
        while (nonempty < nrec) {
            c++;
            memcpy(prev, model, len);
            model_batch(model, len, seed, c, 0, NULL);
            if (memcmp(prev, model, len) != 0)
                nonempty++;
            cr_assert_leq(c, published + 1,
                          "%s kill %u: %lu records but only %lu commits "
                          "published",
                          vmp_backend_name(b), k, (unsigned long)nrec, (unsigned long)published);
        }
        free(prev);
        cr_assert_eq(memcmp(image, model, len), 0,
                     "%s kill %u (seed %lu): recovered segment "
                     "differs from the model at commit %lu (published %lu)",
                     vmp_backend_name(b), k, (unsigned long)seed, (unsigned long)c,
                     (unsigned long)published);
        /* every published commit must be in the log: replay the rest, all must be empty */
        while (c < published) {
            c++;
            memcpy(image, model, len);
            model_batch(model, len, seed, c, 0, NULL);
            cr_assert_eq(memcmp(image, model, len), 0,
                         "%s kill %u: durable commit %lu is "
                         "missing from the log",
                         vmp_backend_name(b), k, (unsigned long)c);
        }
        total_commits += published;
    }
    cr_log_info("%s: %u kills, %lu durable commits checked", vmp_backend_name(b), kills,
                (unsigned long)total_commits);
    unlink(path);
    free(image);
    free(model);
    munmap(sh, sizeof(*sh));
}

/* instant_child -- a writer thread stores n to page A then to page B; the main thread
 * commits (flush) until killed */
static _Atomic int ic_stop;
static char *ic_mem;

static void *ic_writer(void *arg)
{
    (void)arg;
    size_t ps = vmp_page_size();
    volatile uint64_t *a = (volatile uint64_t *)(ic_mem + 2 * ps);
    volatile uint64_t *b = (volatile uint64_t *)(ic_mem + 9 * ps + 24);
    for (uint64_t n = 1; !atomic_load_explicit(&ic_stop, memory_order_relaxed); n++) {
        *a = n;
        *b = n;
    }
    return NULL;
}

static void instant_child(vmp_backend_t b, const char *path, struct shared *sh)
{
    size_t ps = vmp_page_size();
    rvm_track_options_t o = {.backend = vmp_backend_name(b)};
    if (rvm_track_configure(&o) != RVM_SUCCESS)
        _exit(10);
    struct tt_region t;
    rvm_init_region(&t.reg);
    ic_mem = t.mem =
        mmap(NULL, 16 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    t.reg.vmaddr = t.mem;
    t.reg.length = 16 * ps;
    struct tlog log;
    if (tlog_open(&log, path, NULL, 0) != 0)
        _exit(11);
    track_set_sink(tlog_sink, &log);
    if (rvm_track(&t.reg) != RVM_SUCCESS)
        _exit(12);
    pthread_t th;
    pthread_create(&th, NULL, ic_writer, NULL);
    atomic_store(&sh->ready, 1);
    for (uint64_t c = 1;; c++) {
        if (rvm_commit() != RVM_SUCCESS)
            _exit(14);
        atomic_store(&sh->durable, c);
    }
}

static void run_instant_crash(vmp_backend_t b, unsigned kills)
{
    if (!tt_backend_ok(b))
        cr_skip_test("backend %s unavailable", vmp_backend_name(b));
    size_t ps = vmp_page_size();
    char path[] = "/tmp/lrvm-track-instant-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *image = malloc(16 * ps);
    uint64_t rs = (uint64_t)time(NULL) ^ 0x5bd1e995u, seen = 0;
    for (unsigned k = 0; k < kills; k++) {
        atomic_store(&sh->ready, 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            instant_child(b, path, sh);
        while (!atomic_load(&sh->ready))
            usleep(100);
        usleep((useconds_t)(5000 + tt_rnd(&rs) % 30000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st), "%s: child exited with %d before the kill", vmp_backend_name(b),
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        uint64_t nrec;
        memset(image, 0, 16 * ps);
        cr_assert_eq(tlog_recover(path, image, 16 * ps, &nrec), 0);
        uint64_t a, bb;
        memcpy(&a, image + 2 * ps, 8);
        memcpy(&bb, image + 9 * ps + 24, 8);
        cr_assert(bb == a || bb + 1 == a, "%s kill %u: recovered A=%lu B=%lu (%lu records)",
                  vmp_backend_name(b), k, (unsigned long)a, (unsigned long)bb, (unsigned long)nrec);
        seen += a > 0;
    }
    cr_assert_gt(seen, 0, "some runs committed counter values");
    unlink(path);
    free(image);
    munmap(sh, sizeof(*sh));
}

Test(track_crash, instant_wp_async, .timeout = 60)
{
    run_instant_crash(VMP_BACKEND_WP_ASYNC, 10 * tt_scale());
}
Test(track_crash, instant_uffd_sigbus, .timeout = 60)
{
    run_instant_crash(VMP_BACKEND_UFFD_SIGBUS, 10 * tt_scale());
}
Test(track_crash, instant_mprotect, .timeout = 60)
{
    run_instant_crash(VMP_BACKEND_MPROTECT, 10 * tt_scale());
}

/* 30 kills per backend at scale 1 here (test log), 70 more per backend with core's log in
 * test_track_core.c: 300 across the three backends */
Test(track_crash, wp_async, .timeout = 120)
{
    run_crash(VMP_BACKEND_WP_ASYNC, 30 * tt_scale());
}
Test(track_crash, uffd_sigbus, .timeout = 120)
{
    run_crash(VMP_BACKEND_UFFD_SIGBUS, 30 * tt_scale());
}
Test(track_crash, mprotect, .timeout = 120)
{
    run_crash(VMP_BACKEND_MPROTECT, 30 * tt_scale());
}
