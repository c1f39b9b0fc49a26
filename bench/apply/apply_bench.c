/* SPDX-License-Identifier: MIT */
/*
 * apply_bench.c -- how fast recovery and truncation apply a log's records to a segment.
 *
 *   apply-bench gen DIR [--seg-mib N] [--mb M] [--shape small|page] [--seed S]
 *       Creates DIR/seg (N MiB, default 256) and DIR/log, maps the whole segment and commits
 *       transactions until M MB (default 300) of new values are in the log, then exits
 *       without truncating: the log keeps every record, as after a killed run. Shapes: "small"
 *       (the shim's: 100 ranges of 100-4000 bytes at random offsets per transaction),
 *       "page" (16 whole pages per transaction). Prints the bytes of new values logged.
 *   apply-bench open DIR|LOG
 *       Times rvm_initialize (recovery: applies every record to the segment's page cache),
 *       then rvm_truncate (makes the segment durable and empties the log). Prints both in ms.
 *
 * Written against the public interface only, so one binary times any build of liblrvm
 * (LD_LIBRARY_PATH picks the library): scripts/bench-apply.sh compares two builds on copies
 * of the same files, in one run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rvm/rvm.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* cpu_ms -- CPU time (user + system) of this process so far */
static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int die(const char *what, const char *file, rvm_return_t rc)
{
    fprintf(stderr, "apply-bench: %s (%s) failed: %s\n", what, file, rvm_return(rc));
    return 1;
}

/* gen_one_txn -- one transaction of the chosen shape; returns the new-value bytes it logs */
static uint64_t gen_one_txn(char *base, uint64_t seg, int page, uint64_t *st, rvm_return_t *rc)
{
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    uint64_t bytes = 0;
    if ((*rc = rvm_begin_transaction(&tid, no_restore)) != RVM_SUCCESS)
        return 0;
    int n = page ? 16 : 100;
    for (int i = 0; i < n; i++) {
        uint64_t len = page ? 4096 : 100 + rnd(st) % 3901;
        uint64_t off = page ? (rnd(st) % (seg / 4096)) * 4096 : (rnd(st) % (seg - len)) & ~7ull;
        if ((*rc = rvm_set_range(&tid, base + off, len)) != RVM_SUCCESS)
            return 0;
        memset(base + off, (int)(rnd(st) & 0xff), len);
        bytes += len;
    }
    *rc = rvm_end_transaction(&tid, no_flush);
    return bytes;
}

static int gen(const char *dir, uint64_t seg_mib, uint64_t mb, int page, uint64_t seed)
{
    char seg[4096], log[4096];
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    snprintf(log, sizeof(log), "%s/log", dir);
    uint64_t segsz = seg_mib << 20, want = mb * 1000000;
    int fd = open(seg, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)segsz) != 0 || posix_fallocate(fd, 0, (off_t)segsz)) {
        fprintf(stderr, "apply-bench: cannot create %s: %s\n", seg, strerror(errno));
        return 1;
    }
    close(fd);
    unlink(log);
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = log;
    o->truncate = 0; /* nothing is applied: every record stays in the log */
    o->flags = 0;
    o->create_log_file = rvm_true;
    /* room for the records and their headers, with a margin */
    o->create_log_size = RVM_MK_OFFSET(0, (rvm_length_t)(want + want / 4 + (64u << 20)));
    o->create_log_mode = 0600;
    rvm_return_t rc = rvm_initialize(RVM_VERSION, o);
    if (rc != RVM_SUCCESS)
        return die("rvm_initialize", log, rc);
    rvm_region_t *r = rvm_malloc_region();
    r->data_dev = seg;
    r->length = segsz;
    if ((rc = rvm_map(r, NULL)) != RVM_SUCCESS)
        return die("rvm_map", seg, rc);
    uint64_t st = seed ? seed : 88172645463325252ull, bytes = 0, ntxn = 0;
    while (bytes < want) {
        bytes += gen_one_txn(r->vmaddr, segsz, page, &st, &rc);
        if (rc != RVM_SUCCESS)
            return die("transaction", log, rc);
        ntxn++;
    }
    if ((rc = rvm_flush()) != RVM_SUCCESS)
        return die("rvm_flush", log, rc);
    printf("generated: %llu transactions, %llu bytes of new values (%s ranges)\n",
           (unsigned long long)ntxn, (unsigned long long)bytes, page ? "page" : "small");
    fflush(stdout);
    _exit(0); /* no rvm_terminate: the records stay in the log */
}

static int open_timed(const char *dir)
{
    char log[4096];
    struct stat sb;
    /* DIR (made by gen) or the log file itself */
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode))
        snprintf(log, sizeof(log), "%s", dir);
    else
        snprintf(log, sizeof(log), "%s/log", dir);
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = log;
    o->truncate = 0;
    double t0 = now_ms(), c0 = cpu_ms();
    rvm_return_t rc = rvm_initialize(RVM_VERSION, o);
    double t1 = now_ms(), c1 = cpu_ms();
    rvm_free_options(o);
    if (rc != RVM_SUCCESS)
        return die("rvm_initialize", log, rc);
    rc = rvm_truncate();
    double t2 = now_ms(), c2 = cpu_ms();
    if (rc != RVM_SUCCESS)
        return die("rvm_truncate", log, rc);
    printf("recovery_ms=%.1f recovery_cpu_ms=%.1f truncate_ms=%.1f truncate_cpu_ms=%.1f\n", t1 - t0,
           c1 - c0, t2 - t1, c2 - c1);
    return rvm_terminate() == RVM_SUCCESS ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: apply-bench gen DIR [--seg-mib N] [--mb M] [--shape small|page] "
                        "[--seed S]\n       apply-bench open DIR|LOG\n");
        return 2;
    }
    if (!strcmp(argv[1], "open"))
        return open_timed(argv[2]);
    uint64_t seg_mib = 256, mb = 300, seed = 0;
    int page = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seg-mib"))
            seg_mib = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--mb"))
            mb = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--shape"))
            page = !strcmp(argv[i + 1], "page");
        else {
            fprintf(stderr, "apply-bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!strcmp(argv[1], "gen"))
        return gen(argv[2], seg_mib, mb, page, seed);
    fprintf(stderr, "apply-bench: unknown command %s\n", argv[1]);
    return 2;
}
