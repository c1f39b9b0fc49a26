/* SPDX-License-Identifier: MIT */
/*
 * drv_lmdb.c -- the workloads on LMDB (peer).
 *
 * Mapping: the array is a database of 1 000 000 records, key = index (MDB_INTEGERKEY,
 * unsigned int), value = the 32-bit integer; that is how an LMDB user keeps an array of
 * independently updated integers. An 8-byte update is two puts (adjacent keys, usually the
 * same leaf page); a 128-byte W5 block is 32 puts; the W5 append area is a second database
 * keyed by the tail counter (MDB_APPEND), so the tail pointer is the last key.
 * Variants: "lmdb" (default flags: durable, two fdatasyncs per commit -- data then meta),
 * "lmdb-nosync" (MDB_NOSYNC, W2 only: commits are not synced; mdb_env_sync at the end) and
 * "lmdb-writemap" (MDB_WRITEMAP: dirty pages written through the shared map; durable).
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

struct lmdb_ctx {
    char path[4096];
    MDB_env *env;
    MDB_dbi a, app;
};

#define LCHK(res, c, call)                                                       \
    do {                                                                         \
        int lrc_ = (call);                                                       \
        if (lrc_ != 0)                                                           \
            return bench_fail((res), EIO, "lmdb: %s (%s): %s", #call, (c)->path, \
                              mdb_strerror(lrc_));                               \
    } while (0)

/* lmdb_env -- create and open the environment (one file, MDB_NOSUBDIR) with flags. */
static int lmdb_env(struct lmdb_ctx *c, unsigned flags, struct bench_res *res)
{
    LCHK(res, c, mdb_env_create(&c->env));
    LCHK(res, c, mdb_env_set_mapsize(c->env, 512ul << 20));
    LCHK(res, c, mdb_env_set_maxdbs(c->env, 4));
    LCHK(res, c, mdb_env_open(c->env, c->path, flags | MDB_NOSUBDIR, 0600));
    return 0;
}

/* lmdb_open -- fresh file (create != 0: load the array in one txn) or reopen, with flags. */
static int lmdb_open(struct lmdb_ctx *c, const char *dir, unsigned flags, int create,
                     struct bench_res *res)
{
    MDB_txn *txn;
    int err;

    if (bench_mkpath(c->path, sizeof(c->path), dir, "lmdb.mdb") != 0)
        return bench_fail(res, ENAMETOOLONG, "lmdb: path too long under %s", dir);
    if ((err = lmdb_env(c, flags, res)) != 0)
        return err;
    LCHK(res, c, mdb_txn_begin(c->env, NULL, 0, &txn));
    LCHK(res, c, mdb_dbi_open(txn, "a", MDB_CREATE | MDB_INTEGERKEY, &c->a));
    LCHK(res, c, mdb_dbi_open(txn, "app", MDB_CREATE | MDB_INTEGERKEY, &c->app));
    for (unsigned i = 0; create && i < BENCH_NINTS; i++) {
        uint32_t v = i;
        MDB_val k = {sizeof(i), &i}, d = {sizeof(v), &v};

        LCHK(res, c, mdb_put(txn, c->a, &k, &d, MDB_APPEND));
    }
    LCHK(res, c, mdb_txn_commit(txn));
    if (create)
        LCHK(res, c, mdb_env_sync(c->env, 1));
    return 0;
}

/* lmdb_put -- one record of the array. */
static int lmdb_put(MDB_txn *txn, MDB_dbi dbi, unsigned key, uint32_t val)
{
    MDB_val k = {sizeof(key), &key}, d = {sizeof(val), &val};

    return mdb_put(txn, dbi, &k, &d, 0);
}

/* lmdb_small_txn -- one W1/W2 transaction: 4 random aligned 8-byte updates = 8 puts. */
static int lmdb_small_txn(struct lmdb_ctx *c, uint64_t *st, long i)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(c->env, NULL, 0, &txn);

    for (uint32_t k = 0; rc == 0 && k < BENCH_W1_UPDATES; k++) {
        unsigned idx = bench_w1_index(st);

        rc = lmdb_put(txn, c->a, idx, (uint32_t)i);
        if (rc == 0)
            rc = lmdb_put(txn, c->a, idx + 1, k);
    }
    if (rc != 0) {
        if (txn)
            mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/* lmdb_w1 -- durable small transactions. */
static int lmdb_w1(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                   unsigned flags)
{
    struct lmdb_ctx c = {0};
    uint64_t st = cfg->seed;
    double *lat, t0;
    long i;
    int err;

    if ((err = lmdb_open(&c, dir, flags, 1, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w1_txns)))
        return bench_fail(res, ENOMEM, "lmdb: out of memory");
    bench_io_mark(res);
    t0 = bench_now();
    for (i = 0; i < cfg->w1_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();

        LCHK(res, &c, lmdb_small_txn(&c, &st, i));
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    bench_io_delta(res);
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    mdb_env_close(c.env);
    return 0;
}

/* lmdb_w2 -- non-durable commits (MDB_NOSYNC), one mdb_env_sync(force) at the end. */
static int lmdb_w2(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                   unsigned flags)
{
    struct lmdb_ctx c = {0};
    uint64_t st = cfg->seed;
    double t0;
    long i;
    int err;

    if ((err = lmdb_open(&c, dir, flags, 1, res)) != 0)
        return err;
    t0 = bench_now();
    for (i = 0; i < cfg->w2_txns; i++) {
        LCHK(res, &c, lmdb_small_txn(&c, &st, i));
        if ((i & 255) == 255 && bench_now() - t0 > cfg->w2_cap_s) {
            i++;
            break;
        }
    }
    LCHK(res, &c, mdb_env_sync(c.env, 1));
    res->secs = bench_now() - t0;
    res->n = i;
    mdb_env_close(c.env);
    return 0;
}

/* lmdb_w3 -- one transaction putting every 10th record (LMDB updates in place: nothing to
 * truncate afterwards). */
static int lmdb_w3(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                   unsigned flags)
{
    struct lmdb_ctx c = {0};
    MDB_txn *txn;
    double t0, w0 = 0, w1 = 0;
    int err;

    if ((err = lmdb_open(&c, dir, flags, 1, res)) != 0)
        return err;
    bench_io_read(&w0, NULL, NULL);
    t0 = bench_now();
    LCHK(res, &c, mdb_txn_begin(c.env, NULL, 0, &txn));
    for (unsigned i = 0; i < BENCH_NINTS; i += BENCH_W3_STRIDE)
        LCHK(res, &c, lmdb_put(txn, c.a, i, i + 1));
    LCHK(res, &c, mdb_txn_commit(txn));
    res->secs = bench_now() - t0;
    bench_io_read(&w1, NULL, NULL);
    res->wbytes = w1 - w0;
    res->n = 1;
    mdb_env_close(c.env);
    return 0;
}

/* lmdb_pad -- grow the environment to about `bytes` with a DB of 60 KiB zero values
 * (overflow pages), synced (W4 reopens a store of that size). */
static int lmdb_pad(struct lmdb_ctx *c, size_t bytes, struct bench_res *res)
{
    static char zero[61440];
    MDB_txn *txn;
    MDB_dbi pad;
    MDB_envinfo info;
    MDB_stat st;

    LCHK(res, c, mdb_env_info(c->env, &info));
    LCHK(res, c, mdb_env_stat(c->env, &st));
    size_t have = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    LCHK(res, c, mdb_txn_begin(c->env, NULL, 0, &txn));
    LCHK(res, c, mdb_dbi_open(txn, "pad", MDB_CREATE | MDB_INTEGERKEY, &pad));
    for (unsigned i = 0; have + (size_t)i * sizeof(zero) < bytes; i++) {
        MDB_val k = {sizeof(i), &i}, d = {sizeof(zero), zero};

        LCHK(res, c, mdb_put(txn, pad, &k, &d, MDB_APPEND));
    }
    LCHK(res, c, mdb_txn_commit(txn));
    LCHK(res, c, mdb_env_sync(c->env, 1));
    return 0;
}

/* lmdb_w4_writer -- W4 durable transactions, then kill -9. */
static int lmdb_w4_writer(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct lmdb_ctx c = {0};
    uint64_t st = cfg->seed;
    int err;

    if ((err = lmdb_open(&c, dir, 0, 1, res)) != 0 || (err = lmdb_pad(&c, cfg->w4_bytes, res)) != 0)
        return err;
    for (long i = 0; i < cfg->w4_txns; i++)
        LCHK(res, &c, lmdb_small_txn(&c, &st, i));
    raise(SIGKILL);
    return bench_fail(res, EPROTO, "raise(SIGKILL) returned");
}

/* lmdb_w4 -- LMDB needs no recovery: time open + first read in a fresh process. */
static int lmdb_w4(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                   unsigned flags)
{
    struct lmdb_ctx c = {0};
    double t0, w0 = 0, r0 = 0, d0 = 0, w1 = 0, r1 = 0, d1 = 0;
    MDB_txn *txn;
    unsigned key = 0;
    MDB_val k = {sizeof(key), &key}, d;
    int err;

    if ((err = bench_kill_child(lmdb_w4_writer, cfg, dir, res)) != 0)
        return err;
    if (cfg->cold && (err = bench_evict(dir)) != 0)
        return bench_fail(res, err, "cannot evict the files under %s from the page cache", dir);
    if (bench_mkpath(c.path, sizeof(c.path), dir, "lmdb.mdb") != 0)
        return bench_fail(res, ENAMETOOLONG, "lmdb: path too long under %s", dir);
    bench_io_read(&w0, &r0, &d0);
    t0 = bench_now();
    if ((err = lmdb_env(&c, flags, res)) != 0)
        return err;
    LCHK(res, &c, mdb_txn_begin(c.env, NULL, MDB_RDONLY, &txn));
    LCHK(res, &c, mdb_dbi_open(txn, "a", MDB_INTEGERKEY, &c.a));
    LCHK(res, &c, mdb_get(txn, c.a, &k, &d));
    mdb_txn_abort(txn);
    res->secs = bench_now() - t0;
    bench_io_read(&w1, &r1, &d1);
    res->wbytes = w1 - w0;
    res->rbytes = r1 - r0;
    res->dev_rbytes = d1 - d0;
    res->n = cfg->w4_txns;
    mdb_env_close(c.env);
    return 0;
}

/* lmdb_w5 -- RVM benchmark shape: 3 x 32 puts + one 64-byte MDB_APPEND at the tail. */
static int lmdb_w5(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                   unsigned flags)
{
    struct lmdb_ctx c = {0};
    uint64_t st = cfg->seed ^ 0x5555;
    unsigned char rec[BENCH_W5_APPEND];
    double *lat, t0;
    long i;
    int err;

    if ((err = lmdb_open(&c, dir, flags, 1, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w5_txns)))
        return bench_fail(res, ENOMEM, "lmdb: out of memory");
    t0 = bench_now();
    for (i = 0; i < cfg->w5_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();
        uint32_t blk[3] = {bench_w5_random(&st), bench_w5_hot(&st), bench_w5_hot(&st)};
        size_t tail = (size_t)i;
        MDB_val k = {sizeof(tail), &tail}, d = {sizeof(rec), rec};
        MDB_txn *txn;

        LCHK(res, &c, mdb_txn_begin(c.env, NULL, 0, &txn));
        for (int b = 0; b < 3; b++)
            for (unsigned j = 0; j < BENCH_W5_BLOCK / 4; j++)
                LCHK(res, &c, lmdb_put(txn, c.a, blk[b] + j, (uint32_t)i));
        memset(rec, (int)(i & 0xff), sizeof(rec));
        LCHK(res, &c, mdb_put(txn, c.app, &k, &d, MDB_APPEND));
        LCHK(res, &c, mdb_txn_commit(txn));
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    mdb_env_close(c.env);
    return 0;
}

/* LMDB_VARIANT -- the five workload entry points of one flag set (unused ones are fine). */
#define LMDB_VARIANT(tag, flags)                                                               \
    __attribute__((unused)) static int lmdb_w1_##tag(const struct bench_cfg *g, const char *d, \
                                                     struct bench_res *r)                      \
    {                                                                                          \
        return lmdb_w1(g, d, r, flags);                                                        \
    }                                                                                          \
    __attribute__((unused)) static int lmdb_w2_##tag(const struct bench_cfg *g, const char *d, \
                                                     struct bench_res *r)                      \
    {                                                                                          \
        return lmdb_w2(g, d, r, flags);                                                        \
    }                                                                                          \
    __attribute__((unused)) static int lmdb_w3_##tag(const struct bench_cfg *g, const char *d, \
                                                     struct bench_res *r)                      \
    {                                                                                          \
        return lmdb_w3(g, d, r, flags);                                                        \
    }                                                                                          \
    __attribute__((unused)) static int lmdb_w4_##tag(const struct bench_cfg *g, const char *d, \
                                                     struct bench_res *r)                      \
    {                                                                                          \
        return lmdb_w4(g, d, r, flags);                                                        \
    }                                                                                          \
    __attribute__((unused)) static int lmdb_w5_##tag(const struct bench_cfg *g, const char *d, \
                                                     struct bench_res *r)                      \
    {                                                                                          \
        return lmdb_w5(g, d, r, flags);                                                        \
    }

LMDB_VARIANT(durable, 0)
LMDB_VARIANT(nosync, MDB_NOSYNC)
LMDB_VARIANT(writemap, MDB_WRITEMAP)

const struct bench_sys bench_lmdb_sys[3] = {
    {.name = "lmdb",
     .is_peer = 1,
     .wl = {lmdb_w1_durable, NULL, lmdb_w3_durable, lmdb_w4_durable, lmdb_w5_durable},
     .note = {[WL_W2] = "see lmdb-nosync"}},
    {.name = "lmdb-nosync",
     .is_peer = 1,
     .wl = {NULL, lmdb_w2_nosync, NULL, NULL, NULL},
     .note = {[WL_W1] = "not durable",
              [WL_W3] = "not durable",
              [WL_W4] = "as lmdb",
              [WL_W5] = "not durable"}},
    {.name = "lmdb-writemap",
     .is_peer = 1,
     .wl = {lmdb_w1_writemap, NULL, lmdb_w3_writemap, NULL, lmdb_w5_writemap},
     .note = {[WL_W2] = "see lmdb-nosync", [WL_W4] = "as lmdb"}},
};
