/* SPDX-License-Identifier: MIT */
/*
 * drv_sqlite.c -- the workloads on SQLite in WAL mode (peer).
 *
 * Mapping: a table a(k INTEGER PRIMARY KEY, v INTEGER) of 1 000 000 rows, one per integer:
 * that is how a SQLite user keeps an array of independently updated integers, and it keeps
 * SQLite on its common, optimized path (rowid b-tree; an update dirties the one leaf page that
 * holds the row). The alternative, one 4 MB blob written with sqlite3_blob_write, puts the
 * array in an overflow-page chain that SQLite must walk to reach an offset; we judged it the
 * less natural and less representative choice. All statements are prepared once; an 8-byte
 * update is one UPDATE of 2 adjacent rows (k in [i, i+2)), a 128-byte W5 block one UPDATE of
 * 32 rows; the W5 append area is a table app(t INTEGER PRIMARY KEY, b BLOB) appended at the
 * tail. cache_size is 64 MiB, so the database stays cached as it does for the mmap-based
 * systems. Variants: synchronous=FULL (durable: WAL fsync per commit) and synchronous=OFF
 * (W2: no sync; one FULL commit at the end syncs the WAL and with it every earlier frame).
 * Checkpoints: left automatic (1000 pages) in W1/W2/W4/W5, SQLite's steady state, as lrvm's
 * truncation is; in W3 disabled during the commit and run afterwards as the "truncation".
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

struct sql_ctx {
    char path[4096];
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *upd, *app;
};

/* sql_err -- record a failed SQLite call with the database's message. */
static int sql_err(struct bench_res *res, struct sql_ctx *c, const char *what)
{
    return bench_fail(res, EIO, "sqlite: %s (%s): %s", what, c->path,
                      c->db ? sqlite3_errmsg(c->db) : "cannot allocate handle");
}

/* sql_exec -- run one SQL string. */
static int sql_exec(struct sql_ctx *c, const char *sql, struct bench_res *res)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_err(res, c, sql);
    return 0;
}

/* sql_step -- run a prepared statement to completion and reset it. */
static int sql_step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

/* sql_open -- open (create != 0: build the table of 1 000 000 rows) with the given
 * synchronous setting, WAL mode, statements prepared. */
static int sql_open(struct sql_ctx *c, const char *dir, const char *sync, int create,
                    struct bench_res *res)
{
    char pragma[128];
    int err;

    if (bench_mkpath(c->path, sizeof(c->path), dir, "sqlite.db") != 0)
        return bench_fail(res, ENAMETOOLONG, "sqlite: path too long under %s", dir);
    if (sqlite3_open(c->path, &c->db) != SQLITE_OK)
        return sql_err(res, c, "sqlite3_open");
    snprintf(pragma, sizeof(pragma),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-65536;", sync);
    if ((err = sql_exec(c, pragma, res)) != 0)
        return err;
    if (create) {
        sqlite3_stmt *ins;

        if ((err = sql_exec(c,
                            "CREATE TABLE a(k INTEGER PRIMARY KEY, v INTEGER);"
                            "CREATE TABLE app(t INTEGER PRIMARY KEY, b BLOB);"
                            "BEGIN;",
                            res)) != 0)
            return err;
        if (sqlite3_prepare_v2(c->db, "INSERT INTO a VALUES(?1, ?1)", -1, &ins, NULL))
            return sql_err(res, c, "prepare INSERT");
        for (unsigned i = 0; i < BENCH_NINTS; i++) {
            sqlite3_bind_int64(ins, 1, i);
            if (sql_step(ins) != 0)
                return sql_err(res, c, "INSERT");
        }
        sqlite3_finalize(ins);
        if ((err = sql_exec(c, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", res)) != 0)
            return err;
    }
    if (sqlite3_prepare_v2(c->db, "BEGIN", -1, &c->begin, NULL) ||
        sqlite3_prepare_v2(c->db, "COMMIT", -1, &c->commit, NULL) ||
        sqlite3_prepare_v2(c->db, "UPDATE a SET v=?3 WHERE k>=?1 AND k<?2", -1, &c->upd, NULL) ||
        sqlite3_prepare_v2(c->db, "INSERT INTO app VALUES(?1, ?2)", -1, &c->app, NULL))
        return sql_err(res, c, "prepare statements");
    return 0;
}

/* sql_close -- finalize statements and close. */
static void sql_close(struct sql_ctx *c)
{
    sqlite3_finalize(c->begin);
    sqlite3_finalize(c->commit);
    sqlite3_finalize(c->upd);
    sqlite3_finalize(c->app);
    sqlite3_close(c->db);
}

/* sql_update -- set rows [lo, hi) to v. */
static int sql_update(struct sql_ctx *c, unsigned lo, unsigned hi, uint32_t v)
{
    sqlite3_bind_int64(c->upd, 1, lo);
    sqlite3_bind_int64(c->upd, 2, hi);
    sqlite3_bind_int64(c->upd, 3, v);
    return sql_step(c->upd);
}

/* sql_small_txn -- one W1/W2 transaction: 4 random aligned 8-byte updates. */
static int sql_small_txn(struct sql_ctx *c, uint64_t *st, long i)
{
    int rc = sql_step(c->begin);

    for (uint32_t k = 0; rc == 0 && k < BENCH_W1_UPDATES; k++) {
        unsigned idx = bench_w1_index(st);

        rc = sql_update(c, idx, idx + 2, (uint32_t)i);
    }
    return rc ? rc : sql_step(c->commit);
}

/* sql_w1 -- small transactions, timed one by one (durable with FULL). */
static int sql_w1(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                  const char *sync)
{
    struct sql_ctx c = {0};
    uint64_t st = cfg->seed;
    double *lat, t0;
    long i;
    int err;

    if ((err = sql_open(&c, dir, sync, 1, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w1_txns)))
        return bench_fail(res, ENOMEM, "sqlite: out of memory");
    bench_io_mark(res);
    t0 = bench_now();
    for (i = 0; i < cfg->w1_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();

        if (sql_small_txn(&c, &st, i) != 0)
            return sql_err(res, &c, "W1 transaction");
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    bench_io_delta(res);
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    sql_close(&c);
    return 0;
}

/* sql_w2 -- synchronous=OFF commits; at the end one synchronous=FULL commit, whose WAL sync
 * makes every earlier frame durable too (included in the time). */
static int sql_w2(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                  const char *sync)
{
    struct sql_ctx c = {0};
    uint64_t st = cfg->seed;
    double t0;
    long i;
    int err;

    if ((err = sql_open(&c, dir, sync, 1, res)) != 0)
        return err;
    t0 = bench_now();
    for (i = 0; i < cfg->w2_txns; i++) {
        if (sql_small_txn(&c, &st, i) != 0)
            return sql_err(res, &c, "W2 transaction");
        if ((i & 255) == 255 && bench_now() - t0 > cfg->w2_cap_s) {
            i++;
            break;
        }
    }
    if ((err = sql_exec(&c, "PRAGMA synchronous=FULL", res)) != 0)
        return err;
    if (sql_small_txn(&c, &st, i) != 0)
        return sql_err(res, &c, "final FULL commit");
    res->secs = bench_now() - t0;
    res->n = i;
    sql_close(&c);
    return 0;
}

/* sql_w3 -- one transaction updating every 10th row; automatic checkpoint off during it;
 * then PRAGMA wal_checkpoint(TRUNCATE) measured as the "truncation". */
static int sql_w3(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                  const char *sync)
{
    struct sql_ctx c = {0};
    double t0, w0 = 0, w1 = 0;
    int err;

    if ((err = sql_open(&c, dir, sync, 1, res)) != 0)
        return err;
    if ((err = sql_exec(&c, "PRAGMA wal_autocheckpoint=0", res)) != 0)
        return err;
    bench_io_read(&w0, NULL, NULL);
    t0 = bench_now();
    if (sql_step(c.begin) != 0)
        return sql_err(res, &c, "BEGIN");
    for (unsigned i = 0; i < BENCH_NINTS; i += BENCH_W3_STRIDE)
        if (sql_update(&c, i, i + 1, i + 1) != 0)
            return sql_err(res, &c, "UPDATE");
    if (sql_step(c.commit) != 0)
        return sql_err(res, &c, "COMMIT");
    res->secs = bench_now() - t0;
    bench_io_read(&w1, NULL, NULL);
    res->wbytes = w1 - w0;
    res->n = 1;
    t0 = bench_now();
    if ((err = sql_exec(&c, "PRAGMA wal_checkpoint(TRUNCATE)", res)) != 0)
        return err;
    res->x_secs = bench_now() - t0;
    bench_io_read(&w0, NULL, NULL);
    res->x_wbytes = w0 - w1;
    sql_close(&c);
    return 0;
}

/* sql_pad -- grow the database to `bytes` with a table of 60 KiB zero blobs, checkpointed
 * into the database file (W4 reopens a store of that size). */
static int sql_pad(struct sql_ctx *c, size_t bytes, struct bench_res *res)
{
    sqlite3_stmt *q;
    int64_t have = 0;
    char sql[256];

    if (sqlite3_prepare_v2(c->db,
                           "SELECT page_count * page_size FROM pragma_page_count(), "
                           "pragma_page_size()",
                           -1, &q, NULL) ||
        sqlite3_step(q) != SQLITE_ROW)
        return sql_err(res, c, "database size");
    have = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (have >= (int64_t)bytes)
        return 0;
    snprintf(sql, sizeof(sql),
             "CREATE TABLE pad(b BLOB); WITH RECURSIVE n(x) AS (SELECT 1 "
             "UNION ALL SELECT x + 1 FROM n WHERE x < %lld) INSERT INTO pad SELECT "
             "zeroblob(61440) FROM n; PRAGMA wal_checkpoint(TRUNCATE);",
             (long long)(((int64_t)bytes - have) / 62000));
    return sql_exec(c, sql, res);
}

/* sql_w4_writer -- W4 durable (FULL) transactions, then kill -9. */
static int sql_w4_writer(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    struct sql_ctx c = {0};
    uint64_t st = cfg->seed;
    int err;

    if ((err = sql_open(&c, dir, "FULL", 1, res)) != 0 ||
        (err = sql_pad(&c, cfg->w4_bytes, res)) != 0)
        return err;
    for (long i = 0; i < cfg->w4_txns; i++)
        if (sql_small_txn(&c, &st, i) != 0)
            return sql_err(res, &c, "W4 transaction");
    raise(SIGKILL);
    return bench_fail(res, EPROTO, "raise(SIGKILL) returned");
}

/* sql_w4 -- open + first read in a fresh process: the first reader after a crash rebuilds
 * the WAL index from the WAL file (SQLite's recovery). */
static int sql_w4(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                  const char *sync)
{
    struct sql_ctx c = {0};
    sqlite3_stmt *sel;
    double t0, w0 = 0, r0 = 0, d0 = 0, w1 = 0, r1 = 0, d1 = 0;
    int err;

    if ((err = bench_kill_child(sql_w4_writer, cfg, dir, res)) != 0)
        return err;
    if (cfg->cold && (err = bench_evict(dir)) != 0)
        return bench_fail(res, err, "cannot evict the files under %s from the page cache", dir);
    if (bench_mkpath(c.path, sizeof(c.path), dir, "sqlite.db") != 0)
        return bench_fail(res, ENAMETOOLONG, "sqlite: path too long under %s", dir);
    bench_io_read(&w0, &r0, &d0);
    t0 = bench_now();
    if (sqlite3_open(c.path, &c.db) != SQLITE_OK)
        return sql_err(res, &c, "sqlite3_open");
    if (sqlite3_prepare_v2(c.db, "SELECT v FROM a WHERE k=0", -1, &sel, NULL) ||
        sqlite3_step(sel) != SQLITE_ROW)
        return sql_err(res, &c, "first SELECT after the crash");
    sqlite3_finalize(sel);
    res->secs = bench_now() - t0;
    bench_io_read(&w1, &r1, &d1);
    res->wbytes = w1 - w0;
    res->rbytes = r1 - r0;
    res->dev_rbytes = d1 - d0;
    res->n = cfg->w4_txns;
    sqlite3_close(c.db);
    return 0;
}

/* sql_w5 -- RVM benchmark shape: 3 UPDATEs of 32 rows + one 64-byte INSERT at the tail. */
static int sql_w5(const struct bench_cfg *cfg, const char *dir, struct bench_res *res,
                  const char *sync)
{
    struct sql_ctx c = {0};
    uint64_t st = cfg->seed ^ 0x5555;
    unsigned char rec[BENCH_W5_APPEND];
    double *lat, t0;
    long i;
    int err;

    if ((err = sql_open(&c, dir, sync, 1, res)) != 0)
        return err;
    if (!(lat = bench_lat_alloc(cfg->w5_txns)))
        return bench_fail(res, ENOMEM, "sqlite: out of memory");
    t0 = bench_now();
    for (i = 0; i < cfg->w5_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();
        uint32_t blk[3] = {bench_w5_random(&st), bench_w5_hot(&st), bench_w5_hot(&st)};
        int rc = sql_step(c.begin);

        for (int b = 0; rc == 0 && b < 3; b++)
            rc = sql_update(&c, blk[b], blk[b] + BENCH_W5_BLOCK / 4, (uint32_t)i);
        memset(rec, (int)(i & 0xff), sizeof(rec));
        sqlite3_bind_int64(c.app, 1, i);
        sqlite3_bind_blob(c.app, 2, rec, sizeof(rec), SQLITE_STATIC);
        if (rc != 0 || sql_step(c.app) != 0 || sql_step(c.commit) != 0)
            return sql_err(res, &c, "W5 transaction");
        lat[i] = (bench_now() - s) * 1e6;
    }
    res->secs = bench_now() - t0;
    res->n = i;
    bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    free(lat);
    sql_close(&c);
    return 0;
}

/* SQL_VARIANT -- the five workload entry points of one synchronous setting. */
#define SQL_VARIANT(tag, sync)                                                                \
    __attribute__((unused)) static int sql_w1_##tag(const struct bench_cfg *g, const char *d, \
                                                    struct bench_res *r)                      \
    {                                                                                         \
        return sql_w1(g, d, r, sync);                                                         \
    }                                                                                         \
    __attribute__((unused)) static int sql_w2_##tag(const struct bench_cfg *g, const char *d, \
                                                    struct bench_res *r)                      \
    {                                                                                         \
        return sql_w2(g, d, r, sync);                                                         \
    }                                                                                         \
    __attribute__((unused)) static int sql_w3_##tag(const struct bench_cfg *g, const char *d, \
                                                    struct bench_res *r)                      \
    {                                                                                         \
        return sql_w3(g, d, r, sync);                                                         \
    }                                                                                         \
    __attribute__((unused)) static int sql_w4_##tag(const struct bench_cfg *g, const char *d, \
                                                    struct bench_res *r)                      \
    {                                                                                         \
        return sql_w4(g, d, r, sync);                                                         \
    }                                                                                         \
    __attribute__((unused)) static int sql_w5_##tag(const struct bench_cfg *g, const char *d, \
                                                    struct bench_res *r)                      \
    {                                                                                         \
        return sql_w5(g, d, r, sync);                                                         \
    }

SQL_VARIANT(full, "FULL")
SQL_VARIANT(off, "OFF")

const struct bench_sys bench_sqlite_sys[2] = {
    {.name = "sqlite-wal-full",
     .is_peer = 1,
     .wl = {sql_w1_full, NULL, sql_w3_full, sql_w4_full, sql_w5_full},
     .note = {[WL_W2] = "see sqlite-wal-off"}},
    {.name = "sqlite-wal-off",
     .is_peer = 1,
     .wl = {NULL, sql_w2_off, NULL, NULL, NULL},
     .note = {[WL_W1] = "not durable",
              [WL_W3] = "not durable",
              [WL_W4] = "as full",
              [WL_W5] = "not durable"}},
};
