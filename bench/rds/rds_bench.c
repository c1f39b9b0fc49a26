/* SPDX-License-Identifier: MIT */
/*
 * rds_bench.c -- RDS throughput, side by side, in one run:
 *   pairs/own      rds_malloc(64) + rds_free, each in RDS's own transaction (tid NULL)
 *   pairs/nf       rds_malloc + rds_free inside one caller transaction, committed no_flush
 *   pairs/nf x100  100 pairs per caller no_flush transaction (cost per pair)
 *   pairs/flush    one pair per caller transaction, committed flush
 *   mixed          basher-like transactions (1-8 of: allocate 1..1500 bytes or 4..20 KiB,
 *                  rewrite a random range of a block, free) on RDS with set_range, and the
 *                  same operation stream on lrvm's persistent heap in a tracked region
 *                  committed with rvm_commit_mode; once with no_flush commits (flush every
 *                  100), once with every transaction flushed.
 * Each phase runs in its own process (RVM starts once per process) on fresh files.
 *
 *   rds_bench [DIR] [SCALE] [PHASE]   DIR defaults to $TMPDIR or /tmp; SCALE multiplies
 *                                     counts; PHASE runs one (own, nf, nf100, flush,
 *                                     mix-rds-nf, mix-heap-nf, mix-rds-f, mix-heap-f)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lrvm/lrvm.h>
#include <rvm/rds.h>
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

#include "heap.h"

#define RDS_ADDR ((char *)0x5a1000000000UL)
#define HEAP_ADDR ((void *)0x5a2000000000UL)
#define HEAPLEN (16UL << 20)
#define NSLOTS 256

static char dir[512];
static long scale = 1;
static uint64_t rs = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "rds_bench: %s failed: %s / %s\n", what, rvm_errmsg, rds_errmsg);
    exit(1);
}

/* start -- fresh log and (for RDS) a fresh RDS segment, RVM started, heap loaded */
static char *start(const char *tag, int rds)
{
    char log[600], seg[600];
    snprintf(log, sizeof(log), "%s/%s.log", dir, tag);
    snprintf(seg, sizeof(seg), "%s/%s.seg", dir, tag);
    unlink(log);
    unlink(seg);
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = log;
    o->truncate = 50;
    rvm_offset_t len = RVM_MK_OFFSET(0, 64UL << 20);
    if (rvm_create_log(o, &len, 0600) != RVM_SUCCESS || RVM_INIT(o) != RVM_SUCCESS)
        die("log");
    if (!rds)
        return NULL;
    unsigned long seglen = HEAPLEN + 65536 + 4096;
    int fd = open(seg, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || posix_fallocate(fd, 0, (off_t)seglen) != 0)
        die("segment file");
    close(fd);
    int err;
    rds_zap_heap(seg, RVM_MK_OFFSET(0, seglen), RDS_ADDR, 65536, HEAPLEN, 100, 64, &err);
    if (err != SUCCESS)
        die("rds_zap_heap");
    char *statics;
    if (rds_load_heap(seg, RVM_MK_OFFSET(0, seglen), &statics, &err) != 0)
        die("rds_load_heap");
    return statics;
}

static void report(const char *name, long n, double secs, const char *unit)
{
    printf("%-34s %10.0f %s/s %9.2f us/%s\n", name, (double)n / secs, unit, secs * 1e6 / (double)n,
           unit);
    fflush(stdout);
}

static void pairs_own(void)
{
    start("own", 1);
    long n = 20000 * scale;
    int err;
    double t0 = now();
    for (long i = 0; i < n; i++)
        if (rds_free(rds_malloc(64, NULL, &err), NULL, &err) != 0)
            die("pair");
    report("pairs/own (tid NULL, no_flush)", n, now() - t0, "pair");
}

static void pairs_caller(int per_txn, rvm_mode_t mode, const char *name, long n)
{
    start("caller", 1);
    int err;
    double t0 = now();
    for (long i = 0; i < n; i += per_txn) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        rvm_begin_transaction(&t, restore);
        for (int k = 0; k < per_txn; k++)
            if (rds_free(rds_malloc(64, &t, &err), &t, &err) != 0)
                die("pair");
        if (rvm_end_transaction(&t, mode) != RVM_SUCCESS)
            die("commit");
    }
    report(name, n, now() - t0, "pair");
}

/* the mixed workload's operation stream: same seed, same decisions for both allocators */
struct slot {
    char *p;
    uint64_t len;
};

struct ops {
    void *(*alloc)(uint64_t len, void *ctx);
    void (*release)(void *p, void *ctx);
    void (*declare)(void *p, uint64_t n, void *ctx);
    void (*commit)(int abort, rvm_mode_t mode, void *ctx);
    void (*begin)(void *ctx);
    void *ctx;
};

static long mixed(const struct ops *o, struct slot *s, long txns, int all_flush)
{
    long nops = 0;
    rs = 12345;
    for (long t = 0; t < txns; t++) {
        o->begin(o->ctx);
        int k = 1 + (int)(rnd() % 8);
        for (int i = 0; i < k; i++, nops++) {
            struct slot *sl = &s[rnd() % NSLOTS];
            if (sl->p == NULL) {
                uint64_t len = rnd() % 16 == 0 ? 4096 + rnd() % 16384 : 1 + rnd() % 1500;
                char *p = o->alloc(len, o->ctx);
                if (p == NULL)
                    continue;
                o->declare(p, len, o->ctx);
                memset(p, (int)t, len);
                o->declare(sl, sizeof(*sl), o->ctx);
                sl->p = p;
                sl->len = len;
            } else if (rnd() % 3) {
                uint64_t off = rnd() % sl->len, n = 1 + rnd() % (sl->len - off);
                o->declare(sl->p + off, n, o->ctx);
                memset(sl->p + off, (int)t, n);
            } else {
                o->release(sl->p, o->ctx);
                o->declare(sl, sizeof(*sl), o->ctx);
                sl->p = NULL;
                sl->len = 0;
            }
        }
        o->commit(0, all_flush || t % 100 == 99 ? flush : no_flush, o->ctx);
    }
    return nops;
}

/* RDS side: set_range in a caller transaction */
static rvm_tid_t rds_tid;
static void *r_alloc(uint64_t len, void *c)
{
    (void)c;
    int err;
    return rds_malloc(len, &rds_tid, &err);
}
static void r_release(void *p, void *c)
{
    (void)c;
    int err;
    if (rds_free(p, &rds_tid, &err) != 0)
        die("rds_free");
}
static void r_declare(void *p, uint64_t n, void *c)
{
    (void)c;
    if (rvm_set_range(&rds_tid, p, n) != RVM_SUCCESS)
        die("set_range");
}
static void r_begin(void *c)
{
    (void)c;
    rvm_init_tid(&rds_tid);
    rvm_begin_transaction(&rds_tid, restore);
}
static void r_commit(int abort, rvm_mode_t mode, void *c)
{
    (void)c;
    (void)abort;
    if (rvm_end_transaction(&rds_tid, mode) != RVM_SUCCESS)
        die("end_transaction");
}

static void mixed_rds(int all_flush, long txns)
{
    struct slot *s = (struct slot *)start("mixrds", 1);
    struct ops o = {r_alloc, r_release, r_declare, r_commit, r_begin, NULL};
    double t0 = now();
    long n = mixed(&o, s, txns, all_flush);
    report(all_flush ? "mixed/RDS set_range, flush" : "mixed/RDS set_range, no_flush", n,
           now() - t0, "op");
}

/* persistent-heap side: the heap lives in a tracked region; plain stores, rvm_commit_mode */
#define HRESERVE ((size_t)64 << 20)
struct segb {
    int fd;
    size_t size;
};
static int sb_grow(void *ctx, size_t n)
{
    struct segb *b = ctx;
    if (n > HRESERVE)
        return ENOMEM;
    int rc = posix_fallocate(b->fd, 0, (off_t)n);
    if (rc == 0)
        b->size = n;
    return rc;
}
static int sb_release(void *ctx, size_t off, size_t len)
{
    (void)ctx;
    (void)off;
    (void)len;
    return 0; /* keep freed memory: the last commit may still need its bytes */
}
static size_t sb_size(void *ctx)
{
    return ((struct segb *)ctx)->size;
}
static struct heap *H;
static void *h_alloc(uint64_t len, void *c)
{
    (void)c;
    return heap_malloc(H, len);
}
static void h_release(void *p, void *c)
{
    (void)c;
    heap_free(H, p);
}
static void h_declare(void *p, uint64_t n, void *c)
{
    (void)p;
    (void)n;
    (void)c; /* tracked: nothing to declare */
}
static void h_begin(void *c)
{
    (void)c;
}
static void h_commit(int abort, rvm_mode_t mode, void *c)
{
    (void)c;
    (void)abort;
    heap_lock_all(H); /* no half-made allocator metadata in the commit */
    rvm_return_t rc = rvm_commit_mode(mode);
    if (rc == RVM_SUCCESS)
        rc = rvm_commit();
    heap_unlock_all(H);
    if (rc != RVM_SUCCESS)
        die("rvm_commit_mode");
}

static void mixed_heap(int all_flush, long txns)
{
    start("mixheap", 0);
    char seg[600];
    snprintf(seg, sizeof(seg), "%s/mixheap.hseg", dir);
    static struct segb sb;
    sb.fd = open(seg, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (sb.fd < 0 || ftruncate(sb.fd, (off_t)HRESERVE) != 0)
        die("heap segment");
    void *m = mmap(HEAP_ADDR, HRESERVE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != HEAP_ADDR)
        die("heap reserve");
    rvm_region_t reg;
    rvm_init_region(&reg);
    reg.data_dev = seg;
    reg.length = HRESERVE;
    reg.vmaddr = HEAP_ADDR;
    reg.no_copy = rvm_true;
    if (rvm_map(&reg, NULL) != RVM_SUCCESS || rvm_track(&reg) != RVM_SUCCESS)
        die("map/track");
    static struct heap_backing bk;
    bk = (struct heap_backing){.grow = sb_grow, .release = sb_release, .size = sb_size, .ctx = &sb};
    struct heap_opts ho;
    heap_opts_init(&ho);
    if (heap_create(&H, HEAP_ADDR, HRESERVE, &bk, &ho) != 0)
        die("heap_create");
    struct slot *s = heap_calloc(H, NSLOTS, sizeof(struct slot));
    h_commit(0, flush, NULL);
    struct ops o = {h_alloc, h_release, h_declare, h_commit, h_begin, NULL};
    double t0 = now();
    long n = mixed(&o, s, txns, all_flush);
    char name[64];
    rvm_track_statistics_t ts;
    memset(&ts, 0, sizeof(ts));
    rvm_track_statistics(&ts);
    snprintf(name, sizeof(name), "mixed/heap tracked (%s), %s", ts.backend,
             all_flush ? "flush" : "no_flush");
    report(name, n, now() - t0, "op");
}

/* phase -- run fn in a child process */
static void phase(void (*fn)(void))
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        fn();
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "rds_bench: a phase failed (status %#x)\n", st);
}

static void p_own(void)
{
    pairs_own();
}
static void p_nf(void)
{
    pairs_caller(1, no_flush, "pairs/caller txn, no_flush", 20000 * scale);
}
static void p_nf100(void)
{
    pairs_caller(100, no_flush, "pairs/caller txn x100, no_flush", 200000 * scale);
}
static void p_flush(void)
{
    pairs_caller(1, flush, "pairs/caller txn, flush", 300 * scale);
}
static void p_mix_rds_nf(void)
{
    mixed_rds(0, 5000 * scale);
}
static void p_mix_heap_nf(void)
{
    mixed_heap(0, 5000 * scale);
}
static void p_mix_rds_f(void)
{
    mixed_rds(1, 300 * scale);
}
static void p_mix_heap_f(void)
{
    mixed_heap(1, 300 * scale);
}

int main(int argc, char **argv)
{
    const char *d = argc > 1 ? argv[1] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof(dir), "%s", d);
    if (argc > 2)
        scale = atol(argv[2]) > 0 ? atol(argv[2]) : 1;
    const char *only = argc > 3 ? argv[3] : NULL;
    printf("rds_bench: files in %s, scale %ld\n", dir, scale);
    static const struct {
        const char *name;
        void (*fn)(void);
    } phases[] = {{"own", p_own},
                  {"nf", p_nf},
                  {"nf100", p_nf100},
                  {"flush", p_flush},
                  {"mix-rds-nf", p_mix_rds_nf},
                  {"mix-heap-nf", p_mix_heap_nf},
                  {"mix-rds-f", p_mix_rds_f},
                  {"mix-heap-f", p_mix_heap_f}};
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
        if (only == NULL || !strcmp(only, phases[i].name))
            phase(phases[i].fn);
    return 0;
}
