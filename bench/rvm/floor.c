/* SPDX-License-Identifier: MIT */
/*
 * floor.c -- the raw-disk floor: what one durable commit cannot beat on this file system.
 * A commit is one 4 KiB in-place pwrite + fdatasync on a file that was fallocated and then
 * written once (so no block allocation or unwritten-extent conversion, hence no journal
 * commit, happens in the measured loop). Blocks are written in order, wrapping around, as a
 * preallocated circular log would be.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* floor_w1 -- N x (4 KiB pwrite + fdatasync): txn/s, p50, p99. */
static int floor_w1(const struct bench_cfg *cfg, const char *dir, struct bench_res *res)
{
    char path[4096];
    const size_t len = BENCH_ARRAY_BYTES & ~(size_t)4095;
    static char block[4096] __attribute__((aligned(4096)));
    double *lat, t0;
    long i;
    int fd, rc;

    if ((rc = bench_mkpath(path, sizeof(path), dir, "floor.dat")) != 0)
        return bench_fail(res, rc, "floor: path too long under %s", dir);
    if ((rc = bench_prealloc(path, len, 0, 1)) != 0)
        return bench_fail(res, rc, "floor: cannot preallocate %s: %s", path, strerror(rc));
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return bench_fail(res, errno, "floor: open %s: %s", path, strerror(errno));
    lat = bench_lat_alloc(cfg->w1_txns);
    if (!lat) {
        close(fd);
        return bench_fail(res, ENOMEM, "floor: out of memory");
    }
    bench_io_mark(res);
    t0 = bench_now();
    for (i = 0; i < cfg->w1_txns && bench_now() - t0 < cfg->dur_cap_s; i++) {
        double s = bench_now();
        off_t off = (off_t)(((size_t)i * 4096) % len);

        memset(block, (int)(i & 0xff), 64);
        if (pwrite(fd, block, sizeof(block), off) != (ssize_t)sizeof(block) || fdatasync(fd) != 0) {
            rc = errno ? errno : EIO;
            bench_fail(res, rc, "floor: pwrite/fdatasync %s: %s", path, strerror(rc));
            break;
        }
        lat[i] = (bench_now() - s) * 1e6;
    }
    if (rc == 0) {
        res->secs = bench_now() - t0;
        bench_io_delta(res);
        res->n = i;
        bench_pct(lat, res->n, &res->p50_us, &res->p99_us);
    }
    free(lat);
    close(fd);
    return rc;
}

const struct bench_sys bench_floor_sys = {
    .name = BENCH_FLOOR_NAME,
    .is_peer = 0,
    .wl = {[WL_W1] = floor_w1},
    .note = {[WL_W2] = "a floor for durable commits only",
             [WL_W3] = "a floor for durable commits only",
             [WL_W4] = "nothing to recover",
             [WL_W5] = "W5 is compared with the W1 floor (one sync per commit)"},
};
