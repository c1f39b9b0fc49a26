/* SPDX-License-Identifier: MIT */
/*
 * counter.c -- an LRVM program written only against the LRVM interface: create a log
 * and a segment on first run, map the segment, run transactions, and after a crash
 * (kill it at any moment) recover the last committed state on the next start.
 *
 *   counter DIR [N]   -- add 1 to each of 16 counters N times (default 1000), one
 *                        transaction per step, alternating flush and no_flush commits;
 *                        prints the counters found at start and at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>

#define SEG_SIZE (64 * 1024)

static void check(rvm_return_t rc, const char *what)
{
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "%s: %s (%s)\n", what, rvm_return(rc), rvm_errmsg);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
        return 2;
    }
    long n = argc > 2 ? atol(argv[2]) : 1000;
    char logpath[4096], segpath[4096];
    snprintf(logpath, sizeof(logpath), "%s/counter.log", argv[1]);
    snprintf(segpath, sizeof(segpath), "%s/counter.seg", argv[1]);

    rvm_options_t *opts = rvm_malloc_options();
    opts->log_dev = logpath;
    opts->flags = RVM_ALL_OPTIMIZATIONS;
    if (access(logpath, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, 1024 * 1024);
        check(rvm_create_log(opts, &len, 0600), "rvm_create_log");
    }
    if (access(segpath, F_OK) != 0) {
        int fd = open(segpath, O_RDWR | O_CREAT, 0600);
        if (fd < 0 || ftruncate(fd, SEG_SIZE) != 0) {
            perror(segpath);
            return 1;
        }
        close(fd);
    }
    check(RVM_INIT(opts), "rvm_initialize"); /* recovery happens here */

    rvm_region_t *region = rvm_malloc_region();
    region->data_dev = segpath;
    region->length = 0; /* whole segment */
    check(rvm_map(region, NULL), "rvm_map");
    long *ctr = (long *)region->vmaddr;
    printf("start:");
    for (int i = 0; i < 16; i++)
        printf(" %ld", ctr[i]);
    printf("\n");

    rvm_tid_t tid;
    for (long k = 0; k < n; k++) {
        rvm_init_tid(&tid);
        check(rvm_begin_transaction(&tid, restore), "rvm_begin_transaction");
        for (int i = 0; i < 16; i++) {
            check(rvm_set_range(&tid, &ctr[i], sizeof(long)), "rvm_set_range");
            ctr[i]++;
        }
        check(rvm_end_transaction(&tid, k % 2 ? no_flush : flush), "rvm_end_transaction");
    }
    /* an aborted restore transaction leaves no trace */
    rvm_init_tid(&tid);
    check(rvm_begin_transaction(&tid, restore), "rvm_begin_transaction");
    check(rvm_set_range(&tid, &ctr[0], sizeof(long)), "rvm_set_range");
    ctr[0] = -1;
    check(rvm_abort_transaction(&tid), "rvm_abort_transaction");

    check(rvm_flush(), "rvm_flush");
    printf("end:");
    for (int i = 0; i < 16; i++)
        printf(" %ld", ctr[i]);
    printf("\n");
    rvm_statistics_t *st = rvm_malloc_statistics();
    check(RVM_STATISTICS(st), "rvm_statistics");
    printf("flush commits %lu, no_flush commits %lu, aborts %lu\n", st->n_flush_commit,
           st->n_no_flush_commit, st->n_abort);
    rvm_free_statistics(st);
    check(rvm_truncate(), "rvm_truncate");
    check(rvm_unmap(region), "rvm_unmap");
    check(rvm_terminate(), "rvm_terminate");
    rvm_free_region(region);
    rvm_free_options(opts);
    return 0;
}
