/* SPDX-License-Identifier: MIT */
/*
 * classic.c -- an LRVM program written only against the original interface (LRVM 1.3),
 * in the style of the original test programs: no lrvm-specific header, no internals.
 * The test (run_classic.sh) compiles it with a plain `cc -I<include dir>` and runs:
 *
 *   classic setup DIR    create log and 10000-byte segment, map with length 0, commit,
 *                        abort, no_flush + rvm_flush, then die without rvm_terminate
 *   classic recover DIR  recover, check every documented result, print "classic: OK"
 *
 * Every check prints what it expected, so a failure says exactly what differed.
 */
#define _POSIX_C_SOURCE 200809L /* kill() under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <fcntl.h>

#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>

static int failures = 0;

#define EXPECT(cond, ...)                          \
    do {                                           \
        if (!(cond)) {                             \
            printf("classic: FAILED %s: ", #cond); \
            printf(__VA_ARGS__);                   \
            printf("\n");                          \
            failures++;                            \
        }                                          \
    } while (0)

#define RVM_OK(call)                                                      \
    do {                                                                  \
        rvm_return_t ret_ = (call);                                       \
        if (ret_ != RVM_SUCCESS) {                                        \
            printf("classic: %s returned %s\n", #call, rvm_return(ret_)); \
            exit(2);                                                      \
        }                                                                 \
    } while (0)

static char log_name[1024], seg_name[1024];

/* make_segment_file -- a 10000-byte segment file of '.' (not a page multiple on purpose) */
static void make_segment_file(void)
{
    char buf[10000];
    int fd;
    memset(buf, '.', sizeof buf);
    fd = open(seg_name, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
        perror(seg_name);
        exit(2);
    }
    close(fd);
}

/* setup -- create the log, map, commit/abort/no_flush, then die with a transaction open */
static int setup(void)
{
    rvm_options_t *options;
    rvm_region_t *region;
    rvm_tid_t tid;
    rvm_offset_t log_len;
    rvm_statistics_t stats;
    char *base;

    make_segment_file();
    RVM_OK(RVM_INIT(NULL));
    options = rvm_malloc_options();
    options->log_dev = log_name;
    log_len = RVM_MK_OFFSET(0, 64 * 1024);
    RVM_OK(rvm_create_log(options, &log_len, 0600));
    RVM_OK(rvm_set_options(options));

    region = rvm_malloc_region();
    region->data_dev = seg_name;
    region->offset = RVM_MK_OFFSET(0, 0);
    region->length = 0;    /* whole segment */
    region->vmaddr = NULL; /* RVM chooses */
    RVM_OK(rvm_map(region, NULL));
    printf("classic: mapped length %lu\n", region->length);
    EXPECT(region->length == 9728, "length %lu, want 9728 (10000 chopped to 512)", region->length);
    base = region->vmaddr;

    /* 1: flush commit */
    rvm_init_tid(&tid);
    RVM_OK(rvm_begin_transaction(&tid, restore));
    RVM_OK(rvm_modify_bytes(&tid, base, "committed-flush", 15));
    RVM_OK(rvm_end_transaction(&tid, flush));

    /* 2: aborted, restore mode: memory comes back */
    rvm_init_tid(&tid);
    RVM_OK(rvm_begin_transaction(&tid, restore));
    RVM_OK(rvm_set_range(&tid, base + 4096, 7));
    memcpy(base + 4096, "aborted", 7);
    RVM_OK(rvm_abort_transaction(&tid));
    EXPECT(memcmp(base + 4096, ".......", 7) == 0, "restore abort left '%.7s'", base + 4096);

    /* 3: no_flush commit, then rvm_flush */
    rvm_init_tid(&tid);
    RVM_OK(rvm_begin_transaction(&tid, no_restore));
    RVM_OK(rvm_modify_bytes(&tid, base + 8000, "committed-noflush", 17));
    RVM_OK(rvm_end_transaction(&tid, no_flush));
    RVM_OK(rvm_flush());

    /* 4: uncommitted when we die */
    rvm_init_tid(&tid);
    RVM_OK(rvm_begin_transaction(&tid, restore));
    RVM_OK(rvm_modify_bytes(&tid, base + 9000, "uncommitted", 11));

    rvm_init_statistics(&stats);
    RVM_OK(RVM_STATISTICS(&stats));
    printf("classic: flush commits %lu, no_flush commits %lu, aborts %lu\n", stats.n_flush_commit,
           stats.n_no_flush_commit, stats.n_abort);
    EXPECT(stats.n_flush_commit == 1 && stats.n_no_flush_commit == 1 && stats.n_abort == 1,
           "statistics counters");
    printf("classic: setup done, dying without rvm_terminate\n");
    fflush(stdout);
    if (failures)
        exit(1);
    kill(getpid(), SIGKILL);
    return 3;
}

/* recover -- recover in a new process and check every documented result */
static int recover(void)
{
    rvm_options_t options;
    rvm_region_t region;
    char *base;

    rvm_init_options(&options);
    options.log_dev = log_name;
    RVM_OK(RVM_INIT(&options)); /* runs recovery */
    rvm_init_region(&region);
    region.data_dev = seg_name;
    RVM_OK(rvm_map(&region, NULL));
    base = region.vmaddr;
    EXPECT(memcmp(base, "committed-flush", 15) == 0, "got '%.15s'", base);
    EXPECT(memcmp(base + 4096, ".......", 7) == 0, "got '%.7s'", base + 4096);
    EXPECT(memcmp(base + 8000, "committed-noflush", 17) == 0, "got '%.17s'", base + 8000);
    EXPECT(memcmp(base + 9000, "...........", 11) == 0, "got '%.11s'", base + 9000);
    RVM_OK(rvm_unmap(&region));
    RVM_OK(rvm_terminate());
    EXPECT(RVM_INIT(NULL) == RVM_EINIT, "restart after terminate must be refused");
    if (failures)
        return 1;
    printf("classic: OK\n");
    return 0;
}

/* main -- classic setup|recover DIR */
int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s setup|recover DIR\n", argv[0]);
        return 2;
    }
    snprintf(log_name, sizeof log_name, "%s/classic.log", argv[2]);
    snprintf(seg_name, sizeof seg_name, "%s/classic.seg", argv[2]);
    if (strcmp(argv[1], "setup") == 0)
        return setup();
    if (strcmp(argv[1], "recover") == 0)
        return recover();
    fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[1]);
    return 2;
}
