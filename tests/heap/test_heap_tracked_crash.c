/* SPDX-License-Identifier: MIT */
/*
 * test_heap_tracked_crash.c -- crash consistency of the heap over REAL commits: the heap lives
 * in an LRVM segment region that is auto-tracked (rvm_track), and a commit is heap_lock_all +
 * rvm_commit (flush) + heap_unlock_all, as the LD_PRELOAD shim does it (preload/persist.c).
 *
 * Per DIRTY backend: a child process recovers the log (rvm_initialize), maps the segment at the
 * heap base, opens the heap (the checker runs), verifies the model (crash_model.h), then runs
 * random malloc/free/realloc/writes and commits at random points, reporting each commit's
 * number and model digest. The parent SIGKILLs it at a random moment; the next child is the
 * fresh process that recovers. The recovered heap must be the last acknowledged commit, or the
 * next one if the kill came between the commit and its report, with exactly that commit's model.
 * The two-thread variant kills a child whose two threads allocate while a third commits (the
 * program's own locks, then heap_lock_all, then rvm_commit, which stops the workers).
 *
 * Cost note: with wp-async, rvm_track copies a twin of every page of the region up front (no
 * write hook to take it lazily), so each restart here copies the whole 256 MiB reserve; that,
 * not the heap, is most of this backend's time.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <lrvm/lrvm.h>
#include <rvm/rvm.h>
#include <lrvm/vmprim.h>

#include "crash_model.h"

#define TC_RESERVE ((size_t)256 << 20) /* 4 MiB multiple: the model plus leaked huge blocks */
#define TC_LOG_SIZE ((unsigned long)32 << 20)

static char tc_dir[64], tc_seg[96], tc_log[96];

/* struct segb -- the smallest heap backing over a mapped segment region: memory is the region
 * (already mapped by rvm_map); grow only reserves file space, so a full disk is ENOSPC at grow,
 * never a failed commit later */
struct segb {
    int fd;
    size_t size;
};

/* seg_grow -- reserve file blocks for [0, new_size) */
static int seg_grow(void *ctx, size_t new_size)
{
    struct segb *b = ctx;
    if (new_size > TC_RESERVE)
        return ENOMEM;
    int rc = posix_fallocate(b->fd, 0, (off_t)new_size);
    if (rc)
        return rc;
    b->size = new_size;
    return 0;
}

/* seg_release -- give freed memory back through the tracker, as the shim does: the pages
 * stay tracked and are diffed against the committed image when reused (a plain madvise
 * would break that with the fault backends) */
static int seg_release(void *ctx, size_t off, size_t len)
{
    (void)ctx;
    return rvm_track_release((char *)T_BASE + off, len) == RVM_SUCCESS ? 0 : EIO;
}

/* seg_size -- bytes backed */
static size_t seg_size(void *ctx)
{
    return ((struct segb *)ctx)->size;
}

/* tc_commit -- the real commit: the heap lock first (no half-made metadata), then LRVM */
static void tc_commit(struct heap *h)
{
    heap_lock_all(h);
    rvm_return_t rc = rvm_commit();
    heap_unlock_all(h);
    CHILD_CHECK(rc == RVM_SUCCESS, "rvm_commit: %s (%s)", rvm_return(rc), rvm_errmsg);
}

/*
 * tc_open -- recover, map, track and open (or create) the heap; verify it. The fresh process
 * after a kill: rvm_initialize runs recovery, so the segment file holds the last durable commit.
 */
static struct cmodel *tc_open(struct heap **h, const char *backend, int nthreads)
{
    static struct segb sb;
    static struct heap_backing bk;
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = tc_log;
    rvm_return_t rc = rvm_initialize(RVM_VERSION, &o);
    CHILD_CHECK(rc == RVM_SUCCESS, "rvm_initialize (recovery) of %s: %s (%s)", tc_log,
                rvm_return(rc), rvm_errmsg);
    rvm_track_options_t to = {.backend = backend};
    rc = rvm_track_configure(&to);
    CHILD_CHECK(rc == RVM_SUCCESS, "rvm_track_configure(%s): %s", backend, rvm_errmsg);
    sb.fd = open(tc_seg, O_RDWR | O_CLOEXEC);
    CHILD_CHECK(sb.fd >= 0, "open %s: %s", tc_seg, strerror(errno));
    /* rvm_map needs the memory allocated: reserve the heap's range at its fixed base */
    void *m = mmap(T_BASE, TC_RESERVE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    CHILD_CHECK(m == T_BASE, "cannot reserve the heap at %p", T_BASE);
    rvm_region_t reg;
    rvm_init_region(&reg);
    reg.data_dev = tc_seg;
    reg.offset = RVM_MK_OFFSET(0, 0);
    reg.length = TC_RESERVE;
    reg.vmaddr = T_BASE;
    reg.no_copy = rvm_true; /* read only the heap in use, below */
    rc = rvm_map(&reg, NULL);
    CHILD_CHECK(rc == RVM_SUCCESS, "rvm_map %s: %s (%s)", tc_seg, rvm_return(rc), rvm_errmsg);
    struct heap_header hdr;
    int existing = pread(sb.fd, &hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
                   memcmp(hdr.magic, HEAP_MAGIC, 8) == 0;
    if (existing) {
        CHILD_CHECK(hdr.size <= TC_RESERVE, "heap size %llu beyond the reserve",
                    (unsigned long long)hdr.size);
        sb.size = (size_t)hdr.size;
        for (size_t done = 0; done < sb.size;) {
            ssize_t r = pread(sb.fd, (char *)T_BASE + done, sb.size - done, (off_t)done);
            CHILD_CHECK(r > 0, "read %s: %s", tc_seg, r < 0 ? strerror(errno) : "short file");
            done += (size_t)r;
        }
    }
    rc = rvm_track(&reg);
    CHILD_CHECK(rc == RVM_SUCCESS, "rvm_track: %s (%s)", rvm_return(rc), rvm_errmsg);
    bk = (struct heap_backing){
        .grow = seg_grow, .release = seg_release, .size = seg_size, .ctx = &sb};
    struct heap_opts ho;
    heap_opts_init(&ho);
    ho.report = child_report;
    if (!existing) {
        int hrc = heap_create(h, T_BASE, TC_RESERVE, &bk, &ho);
        CHILD_CHECK(hrc == 0, "heap_create: %s", heap_strerror(hrc));
        struct cmodel *cm = cm_new(*h);
        tc_commit(*h); /* commit 0: an empty heap is a valid restart point */
        say("V 0 0 %llu\n", (unsigned long long)cm_digest(cm));
        return cm;
    }
    int hrc = heap_open(h, T_BASE, &bk, &ho);
    CHILD_CHECK(hrc == 0, "heap_open of the recovered segment failed: %s", heap_strerror(hrc));
    return cm_verify(*h, nthreads);
}

/* tc_child -- verify, then operate and commit until killed */
static void tc_child(const char *backend, uint64_t seed)
{
    struct heap *h;
    struct cmodel *m = tc_open(&h, backend, 1);
    uint64_t s = seed;
    for (;;) {
        long k = (long)(rnd(&s) % 200) + 1;
        for (long i = 0; i < k; i++)
            c_op(h, &m->s[rnd(&s) % C_SLOTS], &s, NULL);
        /* one thread, nothing mid-operation: the commit instant is between operations */
        m->commit++;
        tc_commit(h);
        say("C %llu %llu\n", (unsigned long long)m->commit, (unsigned long long)cm_digest(m));
    }
}

/* ---- multi-threaded child: two allocating threads, commits from a third ------------------ */

/* tc_child_mt -- the commit as a threaded program takes it: its own locks (its model must be
 * consistent), then heap_lock_all (the allocator's metadata), then rvm_commit, which stops the
 * workers for the instant; they may be anywhere else, e.g. filling a block not yet published */
static void tc_child_mt(const char *backend, uint64_t seed)
{
    MT.m = tc_open(&MT.h, backend, 2);
    MT.seed = seed;
    pthread_mutex_init(&MT.app[0], NULL);
    pthread_mutex_init(&MT.app[1], NULL);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHILD_CHECK(pthread_create(&t[i], NULL, cm_mt_worker, (void *)(intptr_t)i) == 0, "thread");
    uint64_t s = seed;
    for (;;) {
        usleep((useconds_t)(rnd(&s) % 2000));
        MT.commit_pending = 1;
        pthread_mutex_lock(&MT.app[0]);
        pthread_mutex_lock(&MT.app[1]);
        MT.m->commit++;
        uint64_t c = MT.m->commit, d = cm_digest(MT.m);
        tc_commit(MT.h);
        MT.commit_pending = 0;
        pthread_mutex_unlock(&MT.app[1]);
        pthread_mutex_unlock(&MT.app[0]);
        say("C %llu %llu\n", (unsigned long long)c, (unsigned long long)d);
    }
}

/* tc_run -- kills rounds of fork/recover/verify/run/SIGKILL with one backend, then a final
 * verify-only round */
static void tc_run(vmp_backend_t b, int kills, int mt, unsigned max_delay_us)
{
    char why[256];
    if (vmp_backend_probe(b, why, sizeof(why)) != 0)
        cr_skip_test("backend %s unavailable here: %s", vmp_backend_name(b), why);
    const char *bn = vmp_backend_name(b);
    snprintf(tc_dir, sizeof(tc_dir), "/tmp/lrvm-heap-tracked-XXXXXX");
    cr_assert(mkdtemp(tc_dir), "mkdtemp: %s", strerror(errno));
    snprintf(tc_seg, sizeof(tc_seg), "%s/heap.seg", tc_dir);
    snprintf(tc_log, sizeof(tc_log), "%s/heap.log", tc_dir);
    int fd = open(tc_seg, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, (off_t)TC_RESERVE) == 0, "create %s", tc_seg);
    close(fd);
    /* the log is created by a child: this process stays free of LRVM state for the forks */
    pid_t cp = fork();
    cr_assert(cp >= 0);
    if (cp == 0) {
        rvm_options_t o;
        rvm_init_options(&o);
        o.log_dev = tc_log;
        o.create_log_file = rvm_true;
        o.create_log_size = RVM_MK_OFFSET(0, TC_LOG_SIZE);
        o.create_log_mode = 0600;
        _exit(rvm_initialize(RVM_VERSION, &o) == RVM_SUCCESS ? 0 : 1);
    }
    int st;
    waitpid(cp, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "cannot create the log %s", tc_log);

    unsigned long long last = 0;
    uint64_t s = 0x7eacedull + (uint64_t)b;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t maxlive = 0, prev_leaked = 0;
    int inflight = 0; /* rounds that recovered a commit made but not yet acknowledged */
    struct cm_digests dg = {0};
    char what[48];
    snprintf(what, sizeof(what), "%s%s", bn, mt ? " (2 threads)" : "");
    static struct round r;
    for (int round = 0; round <= kills; round++) {
        int pfd[2];
        cr_assert_eq(pipe(pfd), 0);
        uint64_t seed = rnd(&s);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            out_fd = pfd[1];
            if (round == kills) { /* final: recover and verify only */
                struct heap *h;
                tc_open(&h, bn, mt ? 2 : 1);
                _exit(0);
            }
            if (mt)
                tc_child_mt(bn, seed);
            else
                tc_child(bn, seed);
            _exit(0);
        }
        close(pfd[1]);
        memset(&r, 0, sizeof(r));
        while (!r.have_v && !r.fail[0] && read_some(pfd[0], &r, &dg, 30000) > 0)
            ;
        if (round < kills) {
            usleep((useconds_t)(rnd(&s) % max_delay_us));
            kill(pid, SIGKILL);
        }
        while (read_some(pfd[0], &r, &dg, 30000) > 0)
            ;
        close(pfd[0]);
        waitpid(pid, &st, 0);
        inflight += r.have_v && r.v_commit == last + 1;
        cm_round_check(what, round, &r, &dg, &last);
        /* Leaks: blocks the program had malloc'ed but not yet published (or unpublished but not
     * yet freed) at the commit instant; they stay in later images. The commit stops the
     * threads at one instant, so at most one per allocating thread per crash. */
        cr_assert(r.leaked <= prev_leaked + (mt ? 2 : 0), "%s round %d: %zu blocks leaked, was %zu",
                  what, round, r.leaked, prev_leaked);
        prev_leaked = r.leaked;
        if (round < kills)
            cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                      "%s round %d: the child ended before the kill (status %#x): %s", what, round,
                      st, r.fail);
        else
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: final verification failed", what);
        if (r.v_live > maxlive)
            maxlive = r.v_live;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_log_info("%s: %d kills, %llu commits, %d recovered an unacknowledged commit, up to %zu "
                "live blocks verified, %zu leaked in the end, %.1f s",
                what, kills, last, inflight, maxlive, prev_leaked, secs);
    cr_assert(last >= (unsigned long long)kills / 4, "%s: too few commits (%llu) to mean much",
              what, last);
    cm_digests_free(&dg);
    unlink(tc_seg);
    unlink(tc_log);
    rmdir(tc_dir);
}

/* Per backend at scale 1: 50 kills of the single-threaded child, 20 of the threaded one;
 * 210 over the three backends this machine has */
#define TC_TESTS(name, b)                                        \
    Test(heap_tracked_crash, name, .timeout = 120)               \
    {                                                            \
        tc_run(b, (int)(50 * test_scale()), 0, 40000);           \
    }                                                            \
    Test(heap_tracked_crash, name##_two_threads, .timeout = 120) \
    {                                                            \
        tc_run(b, (int)(20 * test_scale()), 1, 40000);           \
    }
TC_TESTS(wp_async, VMP_BACKEND_WP_ASYNC)
TC_TESTS(uffd_sigbus, VMP_BACKEND_UFFD_SIGBUS)
TC_TESTS(mprotect, VMP_BACKEND_MPROTECT)
