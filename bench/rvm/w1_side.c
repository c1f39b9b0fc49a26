/* SPDX-License-Identifier: MIT */
/*
 * w1_side.c -- W1 (durable small transactions) and the disk floor side by side in ONE
 * process, alternating in blocks of a few transactions, to tell lrvm's own cost from the
 * machine's noise.
 *
 * rvm-bench runs every system in its own process and rounds, one after the other: on a
 * shared machine a burst of another user's I/O or CPU lands in one system's round and
 * decides its txn/s. Here the floor (4 KiB in-place pwrite + fdatasync) and lrvm (4 random
 * 8-byte updates, rvm_end_transaction(flush)) take turns every --block transactions, so
 * both see the same background. Per system it reports txn/s, p50/p90/p99 latency, the share
 * of transactions slower than 1 ms and the time they took, the thread CPU time per
 * transaction (p50) and voluntary context switches per transaction.
 *
 *   w1-side [--dir DIR] [--blocks N] [--block K] [--truncate PCT]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <rvm/rvm.h>

#define SEG_BYTES (8ul << 20)
#define ARRAY_BYTES 4000000ul
#define LOG_BYTES (64ul << 20)

enum { FLOOR = 0, LRVM = 1, NSYS = 2 };

struct side {
    double *lat, *cpu; /* per transaction: wall and thread CPU seconds */
    long n;
    double total; /* wall seconds of all its transactions */
    long vcsw;    /* voluntary context switches during its blocks */
};

static double now(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* make_file -- path, len bytes, fallocated, written once and synced */
static int make_file(const char *path, size_t len)
{
    static char zero[1 << 20];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || posix_fallocate(fd, 0, (off_t)len) != 0)
        return -1;
    for (size_t off = 0; off < len; off += sizeof(zero))
        if (pwrite(fd, zero, len - off < sizeof(zero) ? len - off : sizeof(zero), (off_t)off) < 0)
            return -1;
    return fsync(fd) == 0 ? fd : -1;
}

/* lrvm_txn -- one W1 transaction */
static rvm_return_t lrvm_txn(char *base, uint64_t *st, long i)
{
    rvm_tid_t tid;
    rvm_return_t rc;

    rvm_init_tid(&tid);
    if ((rc = rvm_begin_transaction(&tid, no_restore)) != RVM_SUCCESS)
        return rc;
    for (uint32_t k = 0; k < 4; k++) {
        *st ^= *st << 13;
        *st ^= *st >> 7;
        *st ^= *st << 17;
        uint32_t *p = (uint32_t *)(base + (*st % (ARRAY_BYTES / 8)) * 8);

        if ((rc = rvm_set_range(&tid, p, 8)) != RVM_SUCCESS)
            return rc;
        p[0] = (uint32_t)i;
        p[1] = k;
    }
    return rvm_end_transaction(&tid, flush);
}

static void report(const char *name, struct side *s)
{
    long slow = 0;
    double slow_s = 0;

    for (long i = 0; i < s->n; i++)
        if (s->lat[i] > 1e-3) {
            slow++;
            slow_s += s->lat[i];
        }
    qsort(s->lat, (size_t)s->n, sizeof(double), cmp_double);
    qsort(s->cpu, (size_t)s->n, sizeof(double), cmp_double);
    printf("%-6s %6ld txns %7.0f txn/s  p50 %6.0f us  p90 %6.0f us  p99 %7.0f us | "
           ">1 ms: %5.1f %% of txns, %6.0f ms of %6.0f ms | cpu p50 %5.1f us | vcsw/txn %.2f\n",
           name, s->n, (double)s->n / s->total, s->lat[s->n / 2] * 1e6, s->lat[s->n * 9 / 10] * 1e6,
           s->lat[s->n * 99 / 100] * 1e6, 100.0 * (double)slow / (double)s->n, slow_s * 1e3,
           s->total * 1e3, s->cpu[s->n / 2] * 1e6, (double)s->vcsw / (double)s->n);
}

int main(int argc, char **argv)
{
    const char *dir = getenv("LRVM_BENCH_DIR") ? getenv("LRVM_BENCH_DIR") : "/var/tmp";
    long blocks = 40, block = 25, truncate = 50;
    char logp[4096], segp[4096], floorp[4096];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--blocks") == 0)
            blocks = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--block") == 0)
            block = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--truncate") == 0)
            truncate = atol(argv[i + 1]);
        else
            break;
    }
    if (argc % 2 == 0 || blocks < 2 || block < 1) {
        fprintf(stderr, "usage: w1-side [--dir DIR] [--blocks N>=2] [--block K>=1] "
                        "[--truncate PCT]\n");
        return 2;
    }
    snprintf(logp, sizeof(logp), "%s/w1-side.%d.log", dir, (int)getpid());
    snprintf(segp, sizeof(segp), "%s/w1-side.%d.seg", dir, (int)getpid());
    snprintf(floorp, sizeof(floorp), "%s/w1-side.%d.floor", dir, (int)getpid());
    long n = blocks * block;
    int ffd = make_file(floorp, (size_t)n * 4096);
    int sfd = make_file(segp, SEG_BYTES);

    if (ffd < 0 || sfd < 0) {
        fprintf(stderr, "w1-side: cannot create %s or %s: %s\n", floorp, segp, strerror(errno));
        return 1;
    }
    close(sfd);
    rvm_options_t *o = rvm_malloc_options();
    rvm_region_t *r = rvm_malloc_region();

    o->log_dev = logp;
    o->flags = RVM_ALL_OPTIMIZATIONS;
    o->truncate = truncate;
    o->create_log_file = rvm_true;
    o->create_log_size = RVM_MK_OFFSET(0, LOG_BYTES);
    o->create_log_mode = 0600;
    r->data_dev = segp;
    r->length = SEG_BYTES;
    rvm_return_t rc = rvm_initialize(RVM_VERSION, o);

    if (rc == RVM_SUCCESS)
        rc = rvm_map(r, NULL);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "w1-side: lrvm (%s, %s): %s\n", logp, segp, rvm_errmsg);
        return 1;
    }
    struct side s[NSYS] = {{0}};

    for (int k = 0; k < NSYS; k++) {
        s[k].lat = calloc((size_t)n, sizeof(double));
        s[k].cpu = calloc((size_t)n, sizeof(double));
        if (!s[k].lat || !s[k].cpu)
            return 1;
    }
    static char blk[4096] __attribute__((aligned(4096)));
    uint64_t st = 0x9E3779B97F4A7C15ull;
    long fi = 0;

    memset(blk, 1, sizeof(blk));
    for (long b = 0; b < blocks; b++)
        for (int turn = 0; turn < NSYS; turn++) {
            int who = (b & 1) ? NSYS - 1 - turn : turn; /* ABBA: neither goes first */
            struct rusage u0, u1;

            getrusage(RUSAGE_THREAD, &u0);
            for (long i = 0; i < block; i++) {
                double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);

                if (who == FLOOR) {
                    if (pwrite(ffd, blk, sizeof(blk), (off_t)(fi++ * 4096)) !=
                            (ssize_t)sizeof(blk) ||
                        fdatasync(ffd) != 0) {
                        perror("w1-side: floor");
                        return 1;
                    }
                } else if ((rc = lrvm_txn(r->vmaddr, &st, s[who].n)) != RVM_SUCCESS) {
                    fprintf(stderr, "w1-side: lrvm commit: %s\n", rvm_errmsg);
                    return 1;
                }
                double dt = now(CLOCK_MONOTONIC) - t0;

                s[who].lat[s[who].n] = dt;
                s[who].cpu[s[who].n] = now(CLOCK_THREAD_CPUTIME_ID) - c0;
                s[who].n++;
                s[who].total += dt;
            }
            getrusage(RUSAGE_THREAD, &u1);
            s[who].vcsw += u1.ru_nvcsw - u0.ru_nvcsw;
        }
    report("floor", &s[FLOOR]);
    report("lrvm", &s[LRVM]);
    printf("lrvm / floor: txn/s %.2f, p50 %.2f\n",
           ((double)s[LRVM].n / s[LRVM].total) / ((double)s[FLOOR].n / s[FLOOR].total),
           s[FLOOR].lat[s[FLOOR].n / 2] / s[LRVM].lat[s[LRVM].n / 2]);
    rvm_terminate();
    close(ffd);
    unlink(logp);
    unlink(segp);
    unlink(floorp);
    return 0;
}
