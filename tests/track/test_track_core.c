/* SPDX-License-Identifier: MIT */
/*
 * test_track_core.c -- tracking end to end with core: rvm_map'ed segments, core's redo log
 * (tracked commits go through txn_commit_vector), recovery by rvm_initialize in a fresh
 * process, explicit transactions mixed with tracked writes, and the rvm_unmap/terminate
 * rules. The crash test (70 SIGKILLs per backend at scale 1) interleaves explicit
 * transactions (every third commit, durable on their own) with tracked writes: the
 * recovered segment must be the model at the last durable commit or a later one, or the
 * state where only the next commit's explicit transaction is durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rvm/rvm_statistics.h>

#include "model.h"
#include "track_test.h"

#define SEG_PAGES 48

static char dir[64], logp[128], segp[128];

/* files -- a fresh directory with an empty segment of SEG_PAGES pages */
static void files(void)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-track-core-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, (off_t)(SEG_PAGES * vmp_page_size())) == 0);
    close(fd);
}

static void rmfiles(void)
{
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}

/* start -- rvm_initialize (recovery) with the log (created if absent); map the segment */
static rvm_return_t start(rvm_region_t *rg)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    o.flags = RVM_ALL_OPTIMIZATIONS;
    if (access(logp, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, 8 << 20);
        rvm_return_t rc = rvm_create_log(&o, &len, 0600);
        if (rc != RVM_SUCCESS)
            return rc;
    }
    rvm_return_t rc = RVM_INIT(&o);
    if (rc != RVM_SUCCESS || rg == NULL)
        return rc;
    rvm_init_region(rg);
    rg->data_dev = segp;
    return rvm_map(rg, NULL);
}

/* read_segment -- the segment file's bytes */
static void read_segment(char *buf, size_t len)
{
    int fd = open(segp, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, len, 0), (ssize_t)len);
    close(fd);
}

/* recover_in_child -- a fresh process runs recovery (rvm_initialize) and truncates */
static void recover_in_child(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (start(NULL) != RVM_SUCCESS || rvm_truncate() != RVM_SUCCESS ||
            rvm_terminate() != RVM_SUCCESS)
            _exit(1);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery failed");
}

static const vmp_backend_t all_backends[] = {VMP_BACKEND_WP_ASYNC, VMP_BACKEND_UFFD_SIGBUS,
                                             VMP_BACKEND_MPROTECT};

Test(track_core, commit_recover_mix_unmap)
{
    size_t ps = vmp_page_size(), len = SEG_PAGES * ps;
    for (size_t bi = 0; bi < 3; bi++) {
        vmp_backend_t b = all_backends[bi];
        if (!tt_backend_ok(b))
            continue;
        files();
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            /* the writer: explicit transactions and tracked writes to one region */
            track_set_sink(NULL, NULL);
            rvm_region_t rg;
            rvm_track_options_t o = {.backend = vmp_backend_name(b)};
            if (start(&rg) != RVM_SUCCESS || rvm_track_configure(&o) != RVM_SUCCESS)
                _exit(10);
            if (rvm_track(&rg) != RVM_SUCCESS)
                _exit(11);
            char *m = rg.vmaddr;
            memcpy(m + 100, "tracked", 7);
            rvm_tid_t t;
            rvm_init_tid(&t);
            if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS ||
                rvm_set_range(&t, m + ps + 8, 64) != RVM_SUCCESS)
                _exit(12);
            memset(m + ps + 8, 'x', 64);
            if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
                _exit(13);
            /* an aborted restore transaction leaves memory as it was */
            rvm_init_tid(&t);
            rvm_begin_transaction(&t, restore);
            rvm_set_range(&t, m + 2 * ps, 8);
            memset(m + 2 * ps, 'A', 8);
            rvm_abort_transaction(&t);
            if (rvm_commit() != RVM_SUCCESS)
                _exit(14);
            rvm_track_statistics_t st;
            rvm_track_statistics(&st);
            if (st.bytes_logged != 7) /* the explicit 64 bytes are not logged again */
                _exit(15);
            m[3 * ps] = 'u';
            if (rvm_unmap(&rg) != RVM_EUNCOMMIT)
                _exit(16);
            if (rvm_commit() != RVM_SUCCESS || rvm_unmap(&rg) != RVM_SUCCESS)
                _exit(17);
            if (rvm_untrack(&rg) != RVM_EREGION) /* unmap untracked it */
                _exit(18);
            _exit(0); /* no terminate: like a crash after the commits */
        }
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: writer failed at step %d",
                  vmp_backend_name(b), WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        recover_in_child();
        char *seg = malloc(len), *want = calloc(1, len);
        read_segment(seg, len);
        memcpy(want + 100, "tracked", 7);
        memset(want + ps + 8, 'x', 64);
        want[3 * ps] = 'u';
        cr_assert_eq(memcmp(seg, want, len), 0, "%s: segment after recovery", vmp_backend_name(b));
        free(seg);
        free(want);
        rmfiles();
    }
}

struct shared {
    _Atomic uint64_t durable;
    _Atomic int ready;
};

/* explicit_range -- the range and fill byte of commit c's explicit transaction (every third
 * commit has one, between its tracked writes and its rvm_commit) */
static int explicit_range(uint64_t seed, uint64_t c, size_t len, size_t *off, size_t *n, int *v)
{
    if (c % 3 != 0)
        return 0;
    uint64_t s = seed ^ (c * 0x51afd7ed558ccd1dull);
    *n = 1 + tt_rnd(&s) % 300;
    *off = tt_rnd(&s) % (len - *n);
    *v = (int)(tt_rnd(&s) & 0xff);
    return 1;
}

/* model_step -- commit c applied to model; if c has an explicit transaction, xstate gets
 * the state where only that transaction (not yet commit c) is durable; returns 1 then */
static int model_step(char *model, char *xstate, size_t len, uint64_t seed, uint64_t c)
{
    size_t off, n;
    int v;
    int has_x = explicit_range(seed, c, len, &off, &n, &v);
    if (has_x)
        memcpy(xstate, model, len);
    model_batch(model, len, seed, c, 0, NULL);
    if (has_x) {
        memset(model + off, v, n);
        memcpy(xstate + off, model + off, n);
    }
    return has_x;
}

/* core_child -- model batches + rvm_commit through core, until killed */
static void core_child(vmp_backend_t b, uint64_t seed, struct shared *sh)
{
    size_t ps = vmp_page_size(), len = SEG_PAGES * ps;
    track_set_sink(NULL, NULL);
    rvm_region_t rg;
    rvm_track_options_t o = {.backend = vmp_backend_name(b),
                             .twin_budget = (seed & 1) ? 8 * ps : 0};
    if (start(&rg) != RVM_SUCCESS || rvm_track_configure(&o) != RVM_SUCCESS ||
        rvm_track(&rg) != RVM_SUCCESS)
        _exit(10);
    if (seed & 2)
        rvm_commit_mode(no_flush); /* some runs: no_flush + rvm_flush every 3 commits */
    int pfd[2];
    if (pipe(pfd) != 0)
        _exit(13);
    atomic_store(&sh->ready, 1);
    for (uint64_t c = 1;; c++) {
        model_batch(rg.vmaddr, len, seed, c, 1, pfd);
        size_t off, n;
        int v;
        if (explicit_range(seed, c, len, &off, &n, &v)) {
            /* an explicit transaction on the tracked region, durable on its own */
            rvm_tid_t t;
            rvm_init_tid(&t);
            if (rvm_begin_transaction(&t, no_restore) != RVM_SUCCESS ||
                rvm_set_range(&t, rg.vmaddr + off, n) != RVM_SUCCESS)
                _exit(16);
            memset(rg.vmaddr + off, v, n);
            if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
                _exit(17);
        }
        if (rvm_commit() != RVM_SUCCESS)
            _exit(14);
        if (!(seed & 2))
            atomic_store(&sh->durable, c);
        else if (c % 3 == 0) {
            if (rvm_flush() != RVM_SUCCESS)
                _exit(15);
            atomic_store(&sh->durable, c);
        }
    }
}

static void run_core_crash(vmp_backend_t b, unsigned kills)
{
    if (!tt_backend_ok(b))
        cr_skip_test("backend %s unavailable", vmp_backend_name(b));
    size_t ps = vmp_page_size(), len = SEG_PAGES * ps;
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *seg = malloc(len), *model = malloc(len), *xstate = malloc(len);
    uint64_t rs = (uint64_t)time(NULL) * 2654435761u + (uint64_t)b * 7, checked = 0;
    for (unsigned k = 0; k < kills; k++) {
        files();
        uint64_t seed = tt_rnd(&rs);
        atomic_store(&sh->durable, 0);
        atomic_store(&sh->ready, 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            core_child(b, seed, sh);
        while (!atomic_load(&sh->ready)) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                cr_assert_fail("%s: child exited early (%d)", vmp_backend_name(b),
                               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            usleep(100);
        }
        usleep((useconds_t)(tt_rnd(&rs) % 40000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st), "%s: child failed (exit %d)", vmp_backend_name(b),
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        uint64_t published = atomic_load(&sh->durable);
        recover_in_child();
        read_segment(seg, len);
        /* the segment must equal the model after some commit c >= published (a later
         * commit may have become durable before the child published it) and no later
         * than the last commit started: search forward from `published` */
        memset(model, 0, len);
        for (uint64_t c = 1; c <= published; c++)
            model_step(model, xstate, len, seed, c);
        int ok = memcmp(seg, model, len) == 0;
        for (uint64_t c = published + 1; c <= published + 4 && !ok; c++) {
            if (model_step(model, xstate, len, seed, c) && memcmp(seg, xstate, len) == 0)
                ok = 1; /* commit c's explicit transaction durable, its rvm_commit not */
            else if (memcmp(seg, model, len) == 0)
                ok = 1;
        }
        cr_assert(ok,
                  "%s kill %u (seed %lu, %s): recovered segment is not the model at "
                  "any commit from the last durable one (%lu)",
                  vmp_backend_name(b), k, (unsigned long)seed, (seed & 2) ? "no_flush" : "flush",
                  (unsigned long)published);
        checked += published;
        rmfiles();
    }
    cr_log_info("%s: %u kills with core's log, %lu durable commits", vmp_backend_name(b), kills,
                (unsigned long)checked);
    free(seg);
    free(model);
    free(xstate);
    munmap(sh, sizeof(*sh));
}

Test(track_core, crash_wp_async, .timeout = 120)
{
    run_core_crash(VMP_BACKEND_WP_ASYNC, 70 * tt_scale());
}
Test(track_core, crash_uffd_sigbus, .timeout = 120)
{
    run_core_crash(VMP_BACKEND_UFFD_SIGBUS, 70 * tt_scale());
}
Test(track_core, crash_mprotect, .timeout = 120)
{
    run_core_crash(VMP_BACKEND_MPROTECT, 70 * tt_scale());
}

Test(track_core, terminate_rule)
{
    size_t ps = vmp_page_size();
    files();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* rvm_initialize once per process: the writer is a child */
        track_set_sink(NULL, NULL);
        rvm_region_t rg;
        if (start(&rg) != RVM_SUCCESS || rvm_track(&rg) != RVM_SUCCESS)
            _exit(10);
        rg.vmaddr[5 * ps] = 1;
        if (rvm_terminate() != RVM_EUNCOMMIT) /* uncommitted tracked changes */
            _exit(11);
        if (strstr(rvm_errmsg, "rvm_commit") == NULL)
            _exit(12);
        if (rvm_commit() != RVM_SUCCESS || rvm_terminate() != RVM_SUCCESS)
            _exit(13);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer failed at step %d",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    recover_in_child();
    char *seg = malloc(SEG_PAGES * ps);
    read_segment(seg, SEG_PAGES * ps);
    cr_assert_eq(seg[5 * ps], 1, "the committed change is in the segment after recovery");
    free(seg);
    rmfiles();
}

Test(track_core, map_private_region_is_refused)
{
    files();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        track_set_sink(NULL, NULL);
        rvm_region_t rg;
        if (start(NULL) != RVM_SUCCESS)
            _exit(9);
        /* a hook backend refuses a file-backed private mapping (wp-async tracks it:
         * test_track_lazy.c) */
        rvm_track_options_t to = {.backend = "mprotect"};
        if (rvm_track_configure(&to) != RVM_SUCCESS)
            _exit(13);
        rvm_map_private = rvm_true; /* file-backed private mapping */
        rvm_init_region(&rg);
        rg.data_dev = segp;
        if (rvm_map(&rg, NULL) != RVM_SUCCESS)
            _exit(10);
        if (rvm_track(&rg) != RVM_EREGION || strstr(rvm_errmsg, "RVM_MAP_PRIVATE") == NULL)
            _exit(11);
        rvm_region_t bogus;
        rvm_init_region(&bogus);
        bogus.vmaddr = (char *)rg.vmaddr + (1 << 30); /* page aligned, not mapped by rvm */
        bogus.length = 4096;
        if (rvm_track(&bogus) != RVM_ENOT_MAPPED)
            _exit(12);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "step %d",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    rmfiles();
}

/* the instant test under SIGKILL with core's log: a thread stores n to page A then to page
 * B while the main thread commits; after recovery B == A or B == A - 1 */
static _Atomic int ci_stop;
static char *ci_mem;

static void *ci_writer(void *arg)
{
    (void)arg;
    size_t ps = vmp_page_size();
    volatile uint64_t *a = (volatile uint64_t *)(ci_mem + 4 * ps + 16);
    volatile uint64_t *b = (volatile uint64_t *)(ci_mem + 30 * ps + 8);
    for (uint64_t n = 1; !atomic_load_explicit(&ci_stop, memory_order_relaxed); n++) {
        *a = n;
        *b = n;
    }
    return NULL;
}

static void run_core_instant(vmp_backend_t b, unsigned kills)
{
    if (!tt_backend_ok(b))
        cr_skip_test("backend %s unavailable", vmp_backend_name(b));
    size_t ps = vmp_page_size(), len = SEG_PAGES * ps;
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *seg = malloc(len);
    uint64_t rs = (uint64_t)time(NULL) ^ ((uint64_t)b << 32), nonzero = 0;
    for (unsigned k = 0; k < kills; k++) {
        files();
        atomic_store(&sh->ready, 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            track_set_sink(NULL, NULL);
            rvm_region_t rg;
            rvm_track_options_t o = {.backend = vmp_backend_name(b)};
            if (start(&rg) != RVM_SUCCESS || rvm_track_configure(&o) != RVM_SUCCESS ||
                rvm_track(&rg) != RVM_SUCCESS)
                _exit(10);
            ci_mem = rg.vmaddr;
            pthread_t th;
            pthread_create(&th, NULL, ci_writer, NULL);
            atomic_store(&sh->ready, 1);
            for (;;)
                if (rvm_commit() != RVM_SUCCESS)
                    _exit(11);
        }
        while (!atomic_load(&sh->ready)) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                cr_assert_fail("%s: child exited early (%d)", vmp_backend_name(b),
                               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            usleep(100);
        }
        usleep((useconds_t)(5000 + tt_rnd(&rs) % 30000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st), "%s: child failed (exit %d)", vmp_backend_name(b),
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        recover_in_child();
        read_segment(seg, len);
        uint64_t a, bb;
        memcpy(&a, seg + 4 * ps + 16, 8);
        memcpy(&bb, seg + 30 * ps + 8, 8);
        cr_assert(bb == a || bb + 1 == a, "%s kill %u: recovered A=%lu B=%lu: not one instant",
                  vmp_backend_name(b), k, (unsigned long)a, (unsigned long)bb);
        nonzero += a != 0;
        rmfiles();
    }
    cr_assert_gt(nonzero, 0, "%s: no run committed a counter", vmp_backend_name(b));
    free(seg);
    munmap(sh, sizeof(*sh));
}

Test(track_core, instant_crash_wp_async, .timeout = 60)
{
    run_core_instant(VMP_BACKEND_WP_ASYNC, 10 * tt_scale());
}
Test(track_core, instant_crash_uffd_sigbus, .timeout = 60)
{
    run_core_instant(VMP_BACKEND_UFFD_SIGBUS, 10 * tt_scale());
}
Test(track_core, instant_crash_mprotect, .timeout = 60)
{
    run_core_instant(VMP_BACKEND_MPROTECT, 10 * tt_scale());
}
