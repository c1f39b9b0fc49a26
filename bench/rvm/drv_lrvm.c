/* SPDX-License-Identifier: MIT */
/*
 * drv_lrvm.c -- the five workloads on lrvm, written only against the public LRVM interface
 * (<rvm/rvm.h>), the way an LRVM program would be written.
 *
 * Setup per measurement: a segment file (array + W5 tail page + W5 append area, written and
 * synced first), a fresh log created by rvm_initialize (create_log_file), the whole segment
 * mapped at an address lrvm chooses. Transactions are begun no_restore (the workloads never
 * abort, so saving old values would be wasted work, and LRVM programs that never abort use it)
 * and declare their ranges with rvm_set_range before storing, as LRVM requires.
 * Options: flags = RVM_ALL_OPTIMIZATIONS (intra- and inter-transaction coalescing, as the
 * paper's users run it); truncate threshold left at the default (50 %), so truncation runs
 * when it would in production; the log (64 MiB) is large enough that W1/W3/W5 never wait for
 * it at the default sizes.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rvm/rvm.h>

#define LRVM_LOG_BYTES (64ul << 20)

struct lrvm_ctx {
    char log[4096], seg[4096];
    rvm_options_t *opts;
    rvm_region_t *reg;
    uint32_t *a;         /* the mapped array */
    uint64_t *tail;      /* W5 tail counter, in the segment */
    unsigned char *area; /* W5 append area, in the segment */
};

/* lrvm_err -- record a failed LRVM call, naming the call, the file and the code. */
static int lrvm_err(struct bench_res *res, const char *call, const char *file, rvm_return_t rc)
{
    return bench_fail(res, EIO, "lrvm: %s (%s) returned %d %s", call, file, (int)rc,
                      rvm_return(rc));
}

/* lrvm_paths -- log and segment file names under dir. */
static int lrvm_paths(struct lrvm_ctx *c, const char *dir, struct bench_res *res)
{
    if (bench_mkpath(c->log, sizeof(c->log), dir, "lrvm.log") != 0 ||
        bench_mkpath(c->seg, sizeof(c->seg), dir, "lrvm.seg") != 0)
        return bench_fail(res, ENAMETOOLONG, "lrvm: path too long under %s", dir);
    return 0;
}

/* lrvm_open -- create segment (seg_bytes long) + log (create != 0) or open an existing log
 * (recovery runs inside rvm_initialize), then map the whole segment. */
static int lrvm_open(struct lrvm_ctx *c, const char *dir, int create, size_t seg_bytes,
                     struct bench_res *res)
{
    rvm_return_t rc;
    int err;

    if ((err = lrvm_paths(c, dir, res)) != 0)
        return err;
    if (create) {
        unlink(c->log);
        if ((err = bench_prealloc(c->seg, seg_bytes, 1, 1)) != 0)
            return bench_fail(res, err, "lrvm: cannot create segment %s: %s", c->seg,
                              strerror(err));
    }
    c->opts = rvm_malloc_options();
    c->reg = rvm_malloc_region();
    if (!c->opts || !c->reg)
        return bench_fail(res, ENOMEM, "lrvm: rvm_malloc_options/region failed");
    c->opts->log_dev = c->log;
    c->opts->flags = RVM_ALL_OPTIMIZATIONS;
    if (create) {
        c->opts->create_log_file = rvm_true;
        c->opts->create_log_size = RVM_MK_OFFSET(0, LRVM_LOG_BYTES);
        c->opts->create_log_mode = 0600;
    }
    rc = rvm_initialize(RVM_VERSION, c->opts);
    if (rc != RVM_SUCCESS)
        return lrvm_err(res, "rvm_initialize", c->log, rc);
    c->reg->data_dev = c->seg;
    c->reg->offset = RVM_MK_OFFSET(0, 0);
    c->reg->length = seg_bytes;
    c->reg->vmaddr = NULL;
    rc = rvm_map(c->reg, NULL);
    if (rc != RVM_SUCCESS)
        return lrvm_err(res, "rvm_map", c->seg, rc);
    if (c->reg->length < seg_bytes)
        return bench_fail(res, EIO, "lrvm: rvm_map(%s) mapped %lu bytes, wanted %zu", c->seg,
                          (unsigned long)c->reg->length, seg_bytes);
    c->a = (uint32_t *)c->reg->vmaddr;
    c->tail = (uint64_t *)(c->reg->vmaddr + BENCH_TAIL_OFF);
    c->area = (unsigned char *)c->reg->vmaddr + BENCH_AREA_OFF;
    return 0;
}

/* lrvm_small_txn -- one W1/W2 transaction: 4 random aligned 8-byte updates; the values
 * (txn number, update number) let W4 check what recovery brought back. */
static rvm_return_t lrvm_small_txn(struct lrvm_ctx *c, uint64_t *st, long i, rvm_mode_t mode)
{
    rvm_tid_t tid;
    rvm_return_t rc;

    rvm_init_tid(&tid);
    if ((rc = rvm_begin_transaction(&tid, no_restore)) != RVM_SUCCESS)
        return rc;
    for (uint32_t k = 0; k < BENCH_W1_UPDATES; k++) {
        uint32_t *p = &c->a[bench_w1_index(st)];

        if ((rc = rvm_set_range(&tid, p, 8)) != RVM_SUCCESS) {
            rvm_abort_transaction(&tid);
            return rc;
        }
        p[0] = (uint32_t)i;
        p[1] = k;
    }
    return rvm_end_transaction(&tid, mode);
}

/* lrvm_w1 -- durable small transactions. */
static int lrvm_w1(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lrvm_ctx c = {0};
    uint64_t st = cfg->seed;
    double *lat, t0;
    long i;
    int err;

    if ((err = lrvm_open(&c, dir, 1, BENCH_SEG_BYTES, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w1_txns)))
        return bench_fail(res, ENOMEM, "lrvm: out of memory");
    bench_io_mark(res);
    t0 = bench_now();
    for (i = 0; i < cfg->w1_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();
        rvm_return_t rc = lrvm_small_txn(&c, &st, i, flush);

        if (rc != RVM_SUCCESS)
            return lrvm_err(res, "W1 transaction", c.log, rc);
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    bench_io_delta(res);
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    return 0;
}

/* lrvm_w2 -- no_flush small transactions, one rvm_flush at the end (included in the time). */
static int lrvm_w2(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lrvm_ctx c = {0};
    uint64_t st = cfg->seed;
    double t0;
    long i;
    rvm_return_t rc;
    int err;

    if ((err = lrvm_open(&c, dir, 1, BENCH_SEG_BYTES, res)) != 0)
        return err;
    t0 = bench_now();
    for (i = 0; i < cfg->w2_txns; i++) {
        if ((rc = lrvm_small_txn(&c, &st, i, no_flush)) != RVM_SUCCESS)
            return lrvm_err(res, "W2 transaction", c.log, rc);
        if ((i & 1023) == 1023 && bench_now() - t0 > cfg->w2_cap_s) {
            i++;
            break;
        }
    }
    if ((rc = rvm_flush()) != RVM_SUCCESS)
        return lrvm_err(res, "rvm_flush", c.log, rc);
    res->secs = bench_now() - t0;
    res->n = i;
    return 0;
}

/* lrvm_w3 -- one transaction setting every 10th int; then, separately, rvm_truncate. */
static int lrvm_w3(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lrvm_ctx c = {0};
    rvm_tid_t tid;
    double t0, w0 = 0, w1 = 0;
    rvm_return_t rc;
    int err;

    if ((err = lrvm_open(&c, dir, 1, BENCH_SEG_BYTES, res)) != 0)
        return err;
    rvm_init_tid(&tid);
    bench_io_read(&w0, NULL, NULL);
    t0 = bench_now();
    if ((rc = rvm_begin_transaction(&tid, no_restore)) != RVM_SUCCESS)
        return lrvm_err(res, "rvm_begin_transaction", c.log, rc);
    for (uint32_t i = 0; i < BENCH_NINTS; i += BENCH_W3_STRIDE) {
        if ((rc = rvm_set_range(&tid, &c.a[i], 4)) != RVM_SUCCESS)
            return lrvm_err(res, "rvm_set_range", c.seg, rc);
        c.a[i] += 1;
    }
    if ((rc = rvm_end_transaction(&tid, flush)) != RVM_SUCCESS)
        return lrvm_err(res, "rvm_end_transaction(flush)", c.log, rc);
    res->secs = bench_now() - t0;
    bench_io_read(&w1, NULL, NULL);
    res->wbytes = w1 - w0;
    res->n = 1;
    /* Truncation applies the record to the segment: measured apart, as for every system. */
    t0 = bench_now();
    if ((rc = rvm_truncate()) != RVM_SUCCESS)
        return lrvm_err(res, "rvm_truncate", c.log, rc);
    res->x_secs = bench_now() - t0;
    bench_io_read(&w0, NULL, NULL);
    res->x_wbytes = w0 - w1;
    return 0;
}

/* lrvm_w4_writer -- commit W4 durable transactions, then die by kill -9. */
static int lrvm_w4_writer(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lrvm_ctx c = {0};
    uint64_t st = cfg->seed;
    int err;

    if ((err = lrvm_open(&c, dir, 1, cfg->w4_bytes, res)) != 0)
        return err;
    for (long i = 0; i < cfg->w4_txns; i++) {
        rvm_return_t rc = lrvm_small_txn(&c, &st, i, flush);

        if (rc != RVM_SUCCESS)
            return lrvm_err(res, "W4 transaction", c.log, rc);
    }
    raise(SIGKILL);
    return bench_fail(res, EPROTO, "raise(SIGKILL) returned");
}

/* lrvm_w4_check -- after recovery the segment file must hold exactly the committed updates:
 * replay the same update sequence on a copy of the initial array and compare. */
static int lrvm_w4_check(const struct bench_cfg *cfg, const char *seg, struct bench_res *res)
{
    uint32_t *want = malloc(BENCH_ARRAY_BYTES), *got = malloc(BENCH_ARRAY_BYTES);
    uint64_t st = cfg->seed;
    int fd, rc = 0;

    if (!want || !got) {
        free(want);
        free(got);
        return bench_fail(res, ENOMEM, "lrvm: out of memory");
    }
    for (uint32_t i = 0; i < BENCH_NINTS; i++)
        want[i] = i;
    for (long i = 0; i < cfg->w4_txns; i++)
        for (uint32_t k = 0; k < BENCH_W1_UPDATES; k++) {
            uint32_t idx = bench_w1_index(&st);

            want[idx] = (uint32_t)i;
            want[idx + 1] = k;
        }
    fd = open(seg, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pread(fd, got, BENCH_ARRAY_BYTES, 0) != (ssize_t)BENCH_ARRAY_BYTES)
        rc = bench_fail(res, errno ? errno : EIO, "lrvm: cannot read back %s", seg);
    else if (memcmp(want, got, BENCH_ARRAY_BYTES) != 0)
        rc = bench_fail(res, EIO,
                        "lrvm: after recovery %s does not hold the %d committed transactions", seg,
                        cfg->w4_txns);
    if (fd >= 0)
        close(fd);
    free(want);
    free(got);
    return rc;
}

/* lrvm_w4 -- in a process that never ran lrvm before, time what a program does to get its
 * data back: rvm_initialize (which recovers) + rvm_map of the whole (64 MiB) segment + the
 * first read, as the peers' open + first read. */
static int lrvm_w4(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lrvm_ctx c = {0};
    double t0, w0 = 0, r0 = 0, d0 = 0, w1 = 0, r1 = 0, d1 = 0;
    volatile uint32_t first;
    rvm_return_t rc;
    int err;

    if ((err = bench_kill_child(lrvm_w4_writer, cfg, dir, res)) != 0)
        return err;
    if (cfg->cold && (err = bench_evict(dir)) != 0)
        return bench_fail(res, err, "cannot evict the files under %s from the page cache", dir);
    if ((err = lrvm_paths(&c, dir, res)) != 0)
        return err;
    c.opts = rvm_malloc_options();
    c.reg = rvm_malloc_region();
    if (!c.opts || !c.reg)
        return bench_fail(res, ENOMEM, "lrvm: rvm_malloc_options/region failed");
    c.opts->log_dev = c.log;
    c.opts->flags = RVM_ALL_OPTIMIZATIONS;
    c.reg->data_dev = c.seg;
    c.reg->length = cfg->w4_bytes;
    bench_io_read(&w0, &r0, &d0);
    t0 = bench_now();
    rc = rvm_initialize(RVM_VERSION, c.opts);
    if (rc == RVM_SUCCESS)
        res->x_secs = bench_now() - t0; /* of which rvm_initialize */
    if (rc == RVM_SUCCESS && (rc = rvm_map(c.reg, NULL)) == RVM_SUCCESS)
        first = *(uint32_t *)c.reg->vmaddr;
    res->secs = bench_now() - t0;
    bench_io_read(&w1, &r1, &d1);
    if (rc != RVM_SUCCESS)
        return lrvm_err(res, "rvm_initialize (recovery) + rvm_map", c.log, rc);
    (void)first;
    if (c.reg->length != cfg->w4_bytes)
        return bench_fail(res, EIO,
                          "lrvm: rvm_map(%s) mapped %lu bytes after the crash, "
                          "wanted %zu",
                          c.seg, (unsigned long)c.reg->length, cfg->w4_bytes);
    res->wbytes = w1 - w0;
    res->rbytes = r1 - r0;
    res->dev_rbytes = d1 - d0;
    res->n = cfg->w4_txns;
    return lrvm_w4_check(cfg, c.seg, res);
}

/* lrvm_w5 -- the RVM benchmark shape: 3 x 128-byte blocks (1 random, 2 hot) + one 64-byte
 * append at the tail of a circular append area, tail counter updated, flush commit. */
static int lrvm_w5(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lrvm_ctx c = {0};
    uint64_t st = cfg->seed ^ 0x5555;
    double *lat, t0;
    long i;
    int err;

    if ((err = lrvm_open(&c, dir, 1, BENCH_SEG_BYTES, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w5_txns)))
        return bench_fail(res, ENOMEM, "lrvm: out of memory");
    t0 = bench_now();
    for (i = 0; i < cfg->w5_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();
        uint32_t blk[3] = {bench_w5_random(&st), bench_w5_hot(&st), bench_w5_hot(&st)};
        unsigned char *app;
        rvm_tid_t tid;
        rvm_return_t rc;

        rvm_init_tid(&tid);
        if ((rc = rvm_begin_transaction(&tid, no_restore)) != RVM_SUCCESS)
            return lrvm_err(res, "rvm_begin_transaction", c.log, rc);
        for (int b = 0; b < 3; b++) {
            if ((rc = rvm_set_range(&tid, &c.a[blk[b]], BENCH_W5_BLOCK)) != RVM_SUCCESS)
                return lrvm_err(res, "rvm_set_range", c.seg, rc);
            memset(&c.a[blk[b]], (int)(i & 0xff), BENCH_W5_BLOCK);
        }
        app = c.area + (*c.tail % (BENCH_W5_AREA_BYTES / BENCH_W5_APPEND)) * BENCH_W5_APPEND;
        if ((rc = rvm_set_range(&tid, app, BENCH_W5_APPEND)) != RVM_SUCCESS ||
            (rc = rvm_set_range(&tid, c.tail, sizeof(*c.tail))) != RVM_SUCCESS)
            return lrvm_err(res, "rvm_set_range", c.seg, rc);
        memset(app, (int)(i & 0xff), BENCH_W5_APPEND);
        *c.tail += 1;
        if ((rc = rvm_end_transaction(&tid, flush)) != RVM_SUCCESS)
            return lrvm_err(res, "rvm_end_transaction(flush)", c.log, rc);
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    return 0;
}

const struct bench_sys bench_lrvm_sys = {
    .name = BENCH_LRVM_NAME,
    .is_peer = 0,
    .wl = {lrvm_w1, lrvm_w2, lrvm_w3, lrvm_w4, lrvm_w5},
};
