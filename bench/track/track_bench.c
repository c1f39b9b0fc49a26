/* SPDX-License-Identifier: MIT */
/*
 * track_bench.c -- benchmarks of auto-tracked regions, one child process
 * per DIRTY backend, all in one run so the ratios compare like with like:
 *  (a) log bytes of one commit of sparse updates (one 8-byte write in each of 1 000 pages)
 *      against logging those pages whole (target: >= 50x fewer);
 *  (b) commit cost per dirty page, 16 / 256 / 4 096 / 65 536 random dirty pages of a
 *      256 MiB region (median of 3), with the application's first-write cost beside it;
 *  (c) the application's pause against the whole synchronous commit, 64 MiB of dirty pages
 *      (16 384 pages, 64 changed bytes each) (target: pause <= 20% of the commit on the
 *      backends with copy-on-write capture, uffd-sigbus and mprotect);
 *  (d) the same workload as explicit set_range transactions vs tracked writes + rvm_commit:
 *      transactions of three 128-byte blocks (one random in the region, two in a 1 MiB hot
 *      area), flush and no_flush, as a ratio.
 * Commits go through core's redo log (a preallocated file in --dir, default /tmp).
 * Usage: track-bench [--dir DIR] [--backend NAME] [--quick]
 * TRACK_BENCH_VERBOSE=1 prints every repetition of (b) with its pause split into stop and
 * capture.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lrvm/lrvm.h>
#include <lrvm/vmprim.h>
#include <rvm/rvm.h>

#include "log_format.h"

#define REGION_MB 256

static const char *opt_dir = "/tmp";
static int opt_quick;
static char logp[512], segp[512];

/* now_ns -- monotonic nanoseconds */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64* */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* check -- exit with a message on failure */
static void check(rvm_return_t rc, const char *what)
{
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "track-bench: %s: %s (%s)\n", what, rvm_return(rc),
                rvm_errmsg ? rvm_errmsg : "");
        exit(1);
    }
}

static rvm_track_statistics_t stats(void)
{
    rvm_track_statistics_t st;
    rvm_track_statistics(&st);
    return st;
}

/* cmp_u64 -- qsort */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* bench_a -- log bytes of a sparse commit vs whole-page logging */
static void bench_a(const char *bn, char *m, size_t ps)
{
    rvm_track_statistics_t s0 = stats();
    for (size_t i = 0; i < 1000; i++)
        memcpy(m + (i * 61) % (REGION_MB * 256) * ps + (i * 40) % (ps - 8), "abcdefgh", 8);
    check(rvm_commit(), "rvm_commit (a)");
    rvm_track_statistics_t s1 = stats();
    uint64_t ours = s1.record_bytes - s0.record_bytes;
    uint64_t whole = LOG_REC_HDR + 1000 * (LOG_RANGE_HDR + (uint64_t)ps);
    double ratio = (double)whole / (double)ours;
    printf("%-12s (a) sparse 1000x8B: record %lu B, whole pages %lu B, %.1fx fewer  %s "
           "(target >= 50x)\n",
           bn, (unsigned long)ours, (unsigned long)whole, ratio, ratio >= 50 ? "PASS" : "FAIL");
}

/* bench_b -- commit cost per dirty page */
static void bench_b(const char *bn, char *m, size_t ps, size_t npages)
{
    static const size_t ks[] = {16, 256, 4096, 65536};
    uint64_t seed = 42;
    size_t *perm = malloc(npages * sizeof(*perm));
    for (size_t i = 0; i < npages; i++)
        perm[i] = i;
    for (size_t q = 0; q < 4; q++) {
        size_t k = ks[q];
        if (opt_quick && k > 4096)
            continue;
        uint64_t wr[3], cm[3], pa[3], du[3], sp[3];
        for (int rep = 0; rep < 3; rep++) {
            for (size_t i = 0; i < k; i++) { /* k distinct random pages */
                size_t j = i + rnd(&seed) % (npages - i), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            uint64_t t0 = now_ns();
            for (size_t i = 0; i < k; i++)
                *(volatile uint64_t *)(m + perm[i] * ps + (rnd(&seed) % (ps / 8)) * 8) = rnd(&seed);
            uint64_t t1 = now_ns();
            check(rvm_commit(), "rvm_commit (b)");
            uint64_t t2 = now_ns();
            rvm_track_statistics_t st = stats();
            wr[rep] = t1 - t0;
            cm[rep] = t2 - t1;
            pa[rep] = st.last_pause_ns;
            du[rep] = st.last_durable_ns;
            sp[rep] = st.last_stop_ns;
            if (getenv("TRACK_BENCH_VERBOSE"))
                printf("   k=%zu rep %d: pause %.2f ms (stop %.2f, capture %.2f)\n", k, rep,
                       st.last_pause_ns / 1e6, st.last_stop_ns / 1e6, st.last_capture_ns / 1e6);
        }
        qsort(sp, 3, 8, cmp_u64);
        qsort(wr, 3, 8, cmp_u64);
        qsort(cm, 3, 8, cmp_u64);
        qsort(pa, 3, 8, cmp_u64);
        qsort(du, 3, 8, cmp_u64);
        printf("%-12s (b) %6zu dirty pages: commit %9.1f us = %6.2f us/page (pause %8.1f us "
               "[stop %6.1f], log %8.1f us); first writes %6.2f us/page\n",
               bn, k, cm[1] / 1e3, cm[1] / 1e3 / (double)k, pa[1] / 1e3, sp[1] / 1e3, du[1] / 1e3,
               wr[1] / 1e3 / (double)k);
    }
    free(perm);
}

/* bench_c -- pause vs whole synchronous commit, 64 MiB dirty (the fault backends diff after
 * the release; wp-async copies the dirty pages before the pause) */
static void bench_c(const char *bn, char *m, size_t ps)
{
    size_t k = (64u << 20) / ps;
    uint64_t seed = 7, ratios[5], pauses[5], commits[5];
    for (int rep = 0; rep < 5; rep++) {
        for (size_t i = 0; i < k; i++) {
            char *p = m + i * ps + (rnd(&seed) % (ps / 64)) * 64;
            for (int j = 0; j < 8; j++)
                ((volatile uint64_t *)p)[j] = rnd(&seed);
        }
        check(rvm_commit(), "rvm_commit (c)");
        rvm_track_statistics_t st = stats();
        pauses[rep] = st.last_pause_ns;
        commits[rep] = st.last_commit_ns;
        ratios[rep] = st.last_pause_ns * 10000 / st.last_commit_ns;
    }
    qsort(ratios, 5, 8, cmp_u64);
    qsort(pauses, 5, 8, cmp_u64);
    qsort(commits, 5, 8, cmp_u64);
    double pct = ratios[2] / 100.0;
    printf("%-12s (c) 64 MiB dirty (median of 5): pause %8.2f ms of commit %8.2f ms = "
           "%5.1f%% (range %.1f-%.1f%%)  %s\n",
           bn, pauses[2] / 1e6, commits[2] / 1e6, pct, ratios[0] / 100.0, ratios[4] / 100.0,
           pct <= 20 ? "PASS (target <= 20%)" : "FAIL (target <= 20%)");
}

/* workload_d -- n transactions of three 128-byte blocks; explicit or tracked */
static uint64_t workload_d(char *m, size_t len, unsigned n, rvm_mode_t mode, int tracked)
{
    uint64_t seed = 99;
    char blk[128];
    memset(blk, 0x3c, sizeof(blk));
    size_t hot = 1u << 20;
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < n; i++) {
        char *d[3];
        d[0] = m + (rnd(&seed) % (len / 128)) * 128;
        d[1] = m + (rnd(&seed) % (hot / 128)) * 128;
        d[2] = m + (rnd(&seed) % (hot / 128)) * 128;
        blk[0] = (char)i;
        if (tracked) {
            for (int j = 0; j < 3; j++)
                memcpy(d[j], blk, 128);
            check(rvm_commit(), "rvm_commit (d)");
        } else {
            rvm_tid_t t;
            rvm_init_tid(&t);
            check(rvm_begin_transaction(&t, no_restore), "begin (d)");
            for (int j = 0; j < 3; j++) {
                check(rvm_set_range(&t, d[j], 128), "set_range (d)");
                memcpy(d[j], blk, 128);
            }
            check(rvm_end_transaction(&t, mode), "end (d)");
        }
    }
    if (mode == no_flush)
        check(rvm_flush(), "rvm_flush (d)");
    return now_ns() - t0;
}

/* run_backend -- all benchmarks for one backend (in a child process) */
static int run_backend(vmp_backend_t b)
{
    const char *bn = vmp_backend_name(b);
    size_t ps = vmp_page_size(), len = (size_t)REGION_MB << 20;
    unlink(logp);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
        fprintf(stderr, "track-bench: cannot create segment %s: %s (use --dir)\n", segp,
                strerror(errno));
        return 1;
    }
    close(fd);
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    o.flags = RVM_ALL_OPTIMIZATIONS;
    rvm_offset_t loglen = RVM_MK_OFFSET(0, 256u << 20);
    check(rvm_create_log(&o, &loglen, 0600), "rvm_create_log");
    check(RVM_INIT(&o), "rvm_initialize");
    rvm_region_t rg;
    rvm_init_region(&rg);
    rg.data_dev = segp;
    check(rvm_map(&rg, NULL), "rvm_map");
    char *m = rg.vmaddr;

    /* (d) explicit first, on the untracked region (plain LRVM) */
    unsigned nd_flush = opt_quick ? 300 : 2000, nd_nf = opt_quick ? 3000 : 20000;
    uint64_t ex_f = workload_d(m, len, nd_flush, flush, 0);
    uint64_t ex_n = workload_d(m, len, nd_nf, no_flush, 0);

    rvm_track_options_t to = {.backend = bn};
    check(rvm_track_configure(&to), "rvm_track_configure");
    uint64_t t0 = now_ns();
    check(rvm_track(&rg), "rvm_track");
    printf("%-12s rvm_track of %d MiB: %.1f ms\n", bn, REGION_MB, (now_ns() - t0) / 1e6);
    uint64_t tr_f = workload_d(m, len, nd_flush, flush, 1);
    check(rvm_commit_mode(no_flush), "rvm_commit_mode");
    uint64_t tr_n = workload_d(m, len, nd_nf, no_flush, 1);
    check(rvm_commit_mode(flush), "rvm_commit_mode");
    printf("%-12s (d) flush:    explicit %7.1f us/txn, tracked %7.1f us/txn, ratio %.2f\n", bn,
           ex_f / 1e3 / nd_flush, tr_f / 1e3 / nd_flush, (double)tr_f / (double)ex_f);
    printf("%-12s (d) no_flush: explicit %7.2f us/txn, tracked %7.2f us/txn, ratio %.2f\n", bn,
           ex_n / 1e3 / nd_nf, tr_n / 1e3 / nd_nf, (double)tr_n / (double)ex_n);

    bench_a(bn, m, ps);
    bench_b(bn, m, ps, len / ps);
    bench_c(bn, m, ps);
    rvm_track_statistics_t st = stats();
    printf("%-12s totals: %lu commits, %lu pages dirtied, %lu B diffed, %lu B new values, "
           "%lu B records, max pause %.2f ms\n",
           bn, st.n_commits, st.pages_dirtied, st.bytes_diffed, st.bytes_logged, st.record_bytes,
           st.max_pause_ns / 1e6);
    fflush(stdout);
    unlink(logp);
    unlink(segp);
    _exit(0); /* no rvm_terminate: it would truncate 256 MiB of log into the segment */
}

int main(int argc, char **argv)
{
    vmp_backend_t only = VMP_BACKEND_AUTO;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            opt_dir = argv[++i];
        } else if (strcmp(argv[i], "--quick") == 0) {
            opt_quick = 1;
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            if (vmp_backend_parse(argv[++i], &only) != 0) {
                fprintf(stderr, "track-bench: unknown backend %s\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--dir DIR] [--backend NAME] [--quick]\n", argv[0]);
            return 2;
        }
    }
    snprintf(logp, sizeof(logp), "%s/track-bench.%d.log", opt_dir, (int)getpid());
    snprintf(segp, sizeof(segp), "%s/track-bench.%d.seg", opt_dir, (int)getpid());
    printf("track-bench: %d MiB region, log and segment in %s%s\n", REGION_MB, opt_dir,
           opt_quick ? " (quick)" : "");
    int fails = 0;
    for (int b = 1; b <= VMP_BACKEND_COUNT; b++) {
        if (only != VMP_BACKEND_AUTO && (int)only != b)
            continue;
        char why[256];
        if (vmp_backend_probe((vmp_backend_t)b, why, sizeof(why)) != 0) {
            printf("%-12s skipped: %s\n", vmp_backend_name((vmp_backend_t)b), why);
            continue;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            return run_backend((vmp_backend_t)b);
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("%-12s FAILED (status %d)\n", vmp_backend_name((vmp_backend_t)b), st);
            fails++;
        }
    }
    return fails ? 1 : 0;
}
