/* SPDX-License-Identifier: MIT */
/*
 * drv_pmdk.c -- the workloads on PMDK libpmemobj (peer).
 *
 * The pool is a regular file on this ext4 disk, NOT persistent memory: libpmemobj sees that
 * the mapping is not pmem and makes every persist an msync(MS_SYNC) of the touched pages,
 * which is its "durability" here (with real pmem it would be cache-line flushes + fence).
 * The pool's root object has the same layout as the lrvm segment (array, W5 tail page, W5
 * append area). Transactions use the function API (pmemobj_tx_begin with no jmp_buf,
 * pmemobj_tx_add_range_direct, pmemobj_tx_commit/end): undo logging -- each added range is
 * snapshotted (and persisted) before it is modified, the modified ranges persisted at commit.
 * W3 snapshots the whole array with one add_range, as a PMDK programmer would, instead of
 * 100 000 4-byte add_ranges (each one its own persisted undo entry). There is no non-durable
 * commit mode to compare in W2.
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpmemobj.h>

#define PMDK_POOL_BYTES (64ul << 20)
#define PMDK_LAYOUT "lrvm-bench"

struct pmdk_ctx {
    char path[4096];
    PMEMobjpool *pop;
    unsigned char *root;
    uint32_t *a;
    uint64_t *tail;
    unsigned char *area;
};

/* pmdk_err -- record a failed PMDK call with libpmemobj's own message. */
static int pmdk_err(struct bench_res *res, struct pmdk_ctx *c, const char *what, int err)
{
    const char *m = pmemobj_errormsg();

    return bench_fail(res, err ? err : EIO, "pmdk: %s (%s): %s", what, c->path,
                      m && *m ? m : strerror(err ? err : EIO));
}

/* pmdk_bind -- point the context at the root object's parts. */
static int pmdk_bind(struct pmdk_ctx *c, struct bench_res *res)
{
    PMEMoid root = pmemobj_root(c->pop, BENCH_SEG_BYTES);

    if (OID_IS_NULL(root))
        return pmdk_err(res, c, "pmemobj_root", errno);
    c->root = pmemobj_direct(root);
    c->a = (uint32_t *)c->root;
    c->tail = (uint64_t *)(c->root + BENCH_TAIL_OFF);
    c->area = c->root + BENCH_AREA_OFF;
    return 0;
}

/* pmdk_open -- create the pool and fill the array (create != 0), or open it. */
static int pmdk_open(struct pmdk_ctx *c, const char *dir, int create, struct bench_res *res)
{
    int err;

    if (bench_mkpath(c->path, sizeof(c->path), dir, "pmdk.pool") != 0)
        return bench_fail(res, ENAMETOOLONG, "pmdk: path too long under %s", dir);
    if (create) {
        unlink(c->path);
        c->pop = pmemobj_create(c->path, PMDK_LAYOUT, PMDK_POOL_BYTES, 0600);
        if (!c->pop)
            return pmdk_err(res, c, "pmemobj_create", errno);
    } else {
        c->pop = pmemobj_open(c->path, PMDK_LAYOUT);
        if (!c->pop)
            return pmdk_err(res, c, "pmemobj_open", errno);
    }
    if ((err = pmdk_bind(c, res)) != 0)
        return err;
    if (create) {
        for (uint32_t i = 0; i < BENCH_NINTS; i++)
            c->a[i] = i;
        pmemobj_persist(c->pop, c->a, BENCH_ARRAY_BYTES);
    }
    return 0;
}

/* pmdk_tx_begin -- begin a transaction (no jmp_buf: errors come back as return codes). */
static int pmdk_tx_begin(struct pmdk_ctx *c)
{
    return pmemobj_tx_begin(c->pop, NULL, TX_PARAM_NONE);
}

/* pmdk_tx_add -- snapshot a range; on failure the transaction is already aborted, so end it. */
static int pmdk_tx_add(void *p, size_t len)
{
    int rc = pmemobj_tx_add_range_direct(p, len);

    if (rc != 0)
        pmemobj_tx_end();
    return rc;
}

/* pmdk_tx_commit -- commit and end; returns the transaction's error (0 = committed). */
static int pmdk_tx_commit(void)
{
    pmemobj_tx_commit();
    return pmemobj_tx_end();
}

/* pmdk_small_txn -- one W1 transaction: 4 random aligned 8-byte updates. */
static int pmdk_small_txn(struct pmdk_ctx *c, uint64_t *st, long i)
{
    int rc = pmdk_tx_begin(c);

    for (uint32_t k = 0; rc == 0 && k < BENCH_W1_UPDATES; k++) {
        uint32_t *p = &c->a[bench_w1_index(st)];

        if ((rc = pmdk_tx_add(p, 8)) != 0)
            return rc;
        p[0] = (uint32_t)i;
        p[1] = k;
    }
    return rc ? rc : pmdk_tx_commit();
}

/* pmdk_w1 -- durable (msync) small transactions. */
static int pmdk_w1(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct pmdk_ctx c = {0};
    uint64_t st = cfg->seed;
    double *lat, t0;
    long i;
    int err;

    if ((err = pmdk_open(&c, dir, 1, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w1_txns)))
        return bench_fail(res, ENOMEM, "pmdk: out of memory");
    bench_io_mark(res);
    t0 = bench_now();
    for (i = 0; i < cfg->w1_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();

        if ((err = pmdk_small_txn(&c, &st, i)) != 0)
            return pmdk_err(res, &c, "W1 transaction", err);
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    bench_io_delta(res);
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    pmemobj_close(c.pop);
    return 0;
}

/* pmdk_w3 -- one transaction: snapshot the array once, update every 10th int. */
static int pmdk_w3(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct pmdk_ctx c = {0};
    double t0, w0 = 0, w1 = 0;
    int err;

    if ((err = pmdk_open(&c, dir, 1, res)) != 0)
        return err;
    bench_io_read(&w0, NULL, NULL);
    t0 = bench_now();
    if ((err = pmdk_tx_begin(&c)) != 0 || (err = pmdk_tx_add(c.a, BENCH_ARRAY_BYTES)) != 0)
        return pmdk_err(res, &c, "W3 begin/add_range", err);
    for (uint32_t i = 0; i < BENCH_NINTS; i += BENCH_W3_STRIDE)
        c.a[i] += 1;
    if ((err = pmdk_tx_commit()) != 0)
        return pmdk_err(res, &c, "W3 commit", err);
    res->secs = bench_now() - t0;
    bench_io_read(&w1, NULL, NULL);
    res->wbytes = w1 - w0;
    res->n = 1;
    pmemobj_close(c.pop);
    return 0;
}

/* pmdk_w4_writer -- W4 durable transactions, then kill -9. */
static int pmdk_w4_writer(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct pmdk_ctx c = {0};
    uint64_t st = cfg->seed;
    int err;

    if ((err = pmdk_open(&c, dir, 1, res)) != 0)
        return err;
    for (long i = 0; i < cfg->w4_txns; i++)
        if ((err = pmdk_small_txn(&c, &st, i)) != 0)
            return pmdk_err(res, &c, "W4 transaction", err);
    raise(SIGKILL);
    return bench_fail(res, EPROTO, "raise(SIGKILL) returned");
}

/* pmdk_w4 -- pmemobj_open (which runs lane/undo-log recovery) + first read. */
static int pmdk_w4(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct pmdk_ctx c = {0};
    double t0, w0 = 0, r0 = 0, d0 = 0, w1 = 0, r1 = 0, d1 = 0;
    volatile uint32_t first;
    int err;

    if ((err = bench_kill_child(pmdk_w4_writer, cfg, dir, res)) != 0)
        return err;
    if (cfg->cold && (err = bench_evict(dir)) != 0)
        return bench_fail(res, err, "cannot evict the files under %s from the page cache", dir);
    bench_io_read(&w0, &r0, &d0);
    t0 = bench_now();
    if ((err = pmdk_open(&c, dir, 0, res)) != 0)
        return err;
    first = c.a[0];
    (void)first;
    res->secs = bench_now() - t0;
    bench_io_read(&w1, &r1, &d1);
    res->wbytes = w1 - w0;
    res->rbytes = r1 - r0;
    res->dev_rbytes = d1 - d0;
    res->n = cfg->w4_txns;
    pmemobj_close(c.pop);
    return 0;
}

/* pmdk_w5 -- RVM benchmark shape: 3 x 128-byte blocks + 64-byte append + tail. */
static int pmdk_w5(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct pmdk_ctx c = {0};
    uint64_t st = cfg->seed ^ 0x5555;
    double *lat, t0;
    long i;
    int err;

    if ((err = pmdk_open(&c, dir, 1, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w5_txns)))
        return bench_fail(res, ENOMEM, "pmdk: out of memory");
    t0 = bench_now();
    for (i = 0; i < cfg->w5_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();
        uint32_t blk[3] = {bench_w5_random(&st), bench_w5_hot(&st), bench_w5_hot(&st)};
        unsigned char *app;

        if ((err = pmdk_tx_begin(&c)) != 0)
            return pmdk_err(res, &c, "pmemobj_tx_begin", err);
        for (int b = 0; b < 3; b++) {
            if ((err = pmdk_tx_add(&c.a[blk[b]], BENCH_W5_BLOCK)) != 0)
                return pmdk_err(res, &c, "pmemobj_tx_add_range_direct", err);
            memset(&c.a[blk[b]], (int)(i & 0xff), BENCH_W5_BLOCK);
        }
        app = c.area + (*c.tail % (BENCH_W5_AREA_BYTES / BENCH_W5_APPEND)) * BENCH_W5_APPEND;
        if ((err = pmdk_tx_add(app, BENCH_W5_APPEND)) != 0 ||
            (err = pmdk_tx_add(c.tail, sizeof(*c.tail))) != 0)
            return pmdk_err(res, &c, "pmemobj_tx_add_range_direct", err);
        memset(app, (int)(i & 0xff), BENCH_W5_APPEND);
        *c.tail += 1;
        if ((err = pmdk_tx_commit()) != 0)
            return pmdk_err(res, &c, "W5 commit", err);
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    pmemobj_close(c.pop);
    return 0;
}

const struct bench_sys bench_pmdk_sys[1] = {
    {.name = "pmdk (msync)",
     .is_peer = 1,
     .wl = {pmdk_w1, NULL, pmdk_w3, pmdk_w4, pmdk_w5},
     .note = {[WL_W2] = "no non-durable commit mode"}},
};
