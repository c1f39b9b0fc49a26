/*
 * quickbench.c -- the core engineer's design-time driver for W1/W2/W3 (the real
 * side-by-side benchmark with peers is bench/rvm, issue 3 item 9).
 *
 *   quickbench DIR FLAGS        FLAGS: 0 none, 3 RVM_ALL_OPTIMIZATIONS
 *
 * W1: 1000 flush txns of 4 random 8-byte updates, interleaved one by one with the floor
 *     (4 KiB in-place pwrite + fdatasync on a preallocated file): both see the same disk.
 * W2: 1M no_flush txns of the same shape + one rvm_flush; wall and CPU time, and the CPU
 *     time of the same loop without RVM (the application's own share).
 * W3: one txn setting every 10th int of 1M ints: time and bytes written to the log.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>

#define CK(x)                                                                          \
    do {                                                                               \
        rvm_return_t r_ = (x);                                                         \
        if (r_) {                                                                      \
            fprintf(stderr, "%s: %s %s\n", #x, rvm_return(r_), rvm_errmsg);            \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* clk -- seconds on a clock */
static double clk(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* txn4 -- one transaction of 4 random 8-byte updates */
static void txn4(int *a, rvm_mode_t mode)
{
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    CK(rvm_begin_transaction(&tid, no_restore));
    for (int k = 0; k < 4; k++) {
        long j = (rand() % 999999) & ~1L;
        CK(rvm_set_range(&tid, &a[j], 8));
        a[j]++;
        a[j + 1]++;
    }
    CK(rvm_end_transaction(&tid, mode));
}

/* main -- run the workloads and print one line each */
int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: quickbench DIR FLAGS\n");
        return 2;
    }
    char lp[512], sp[512], fp[512];
    snprintf(lp, sizeof lp, "%s/log", argv[1]);
    snprintf(sp, sizeof sp, "%s/seg", argv[1]);
    snprintf(fp, sizeof fp, "%s/floor", argv[1]);
    unlink(lp);
    unlink(sp);
    unlink(fp);
    int fd = open(sp, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 8000000 + 4096) != 0)
        return 1;
    close(fd);
    fd = open(fp, O_RDWR | O_CREAT, 0600);
    char pg[4096];
    memset(pg, 1, sizeof pg);
    for (int i = 0; i < 1024; i++)
        if (pwrite(fd, pg, 4096, (off_t)i * 4096) != 4096)
            return 1;
    fsync(fd);

    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = lp;
    o->flags = (rvm_length_t)atol(argv[2]);
    o->truncate = 50;
    rvm_offset_t len = RVM_MK_OFFSET(0, 64 << 20);
    CK(rvm_create_log(o, &len, 0600));
    CK(RVM_INIT(o));
    rvm_region_t *rg = rvm_malloc_region();
    rg->data_dev = sp;
    CK(rvm_map(rg, NULL));
    int *a = (int *)rg->vmaddr;

    int n = 1000;
    double tf = 0, tr = 0;
    for (int i = 0; i < n; i++) {
        double t0 = clk(CLOCK_MONOTONIC);
        if (pwrite(fd, pg, 4096, (off_t)(rand() % 1024) * 4096) != 4096 || fdatasync(fd))
            return 1;
        tf += clk(CLOCK_MONOTONIC) - t0;
        t0 = clk(CLOCK_MONOTONIC);
        txn4(a, flush);
        tr += clk(CLOCK_MONOTONIC) - t0;
    }
    close(fd);
    printf("W1 flush: %.0f txn/s, floor %.0f/s, ratio %.2f\n", n / tr, n / tf, tf / tr);

    int m = 1000000;
    double c0 = clk(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < m; i++)
        for (int k = 0; k < 4; k++) {
            long j = (rand() % 999999) & ~1L;
            a[j]++;
            a[j + 1]++;
        }
    printf("W2 application-only loop: cpu %.3f s\n", clk(CLOCK_PROCESS_CPUTIME_ID) - c0);
    double t0 = clk(CLOCK_MONOTONIC);
    c0 = clk(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < m; i++)
        txn4(a, no_flush);
    CK(rvm_flush());
    double w = clk(CLOCK_MONOTONIC) - t0, c = clk(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("W2 no_flush + rvm_flush: wall %.3f s (%.0f txn/s), cpu %.3f s (%.0f txn/s)\n", w,
           m / w, c, m / c);
    CK(rvm_truncate());

    rvm_statistics_t *st = rvm_malloc_statistics();
    CK(RVM_STATISTICS(st));
    unsigned long before = st->tot_log_written.low;
    t0 = clk(CLOCK_MONOTONIC);
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    CK(rvm_begin_transaction(&tid, no_restore));
    for (long j = 0; j < 1000000; j += 10) {
        CK(rvm_set_range(&tid, &a[j], 4));
        a[j]++;
    }
    CK(rvm_end_transaction(&tid, flush));
    double w3 = clk(CLOCK_MONOTONIC) - t0;
    CK(RVM_STATISTICS(st));
    printf("W3: %.4f s, %lu bytes written to the log\n", w3,
           st->tot_log_written.low - before);
    CK(rvm_terminate());
    return 0;
}
