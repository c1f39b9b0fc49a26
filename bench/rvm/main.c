/* SPDX-License-Identifier: MIT */
/*
 * main.c -- rvm-bench: run the core benchmark (see bench.h for the workloads) and print the
 * tables, the ratios and the targets; write every value to a CSV.
 *
 *   rvm-bench [--smoke] [--dir DIR] [--csv FILE] [--only NAME[,NAME...]] [--rounds N]
 *
 * DIR (default $LRVM_BENCH_DIR, else /var/tmp) must be on a disk file system: on tmpfs an
 * fdatasync costs nothing and every durable number would be meaningless, so we refuse it.
 * LRVM_BENCH_SCALE multiplies the transaction counts (default 1; a few minutes in all).
 * W1 and the floor run in interleaved rounds (floor, lrvm, peers, floor, ...) so that the
 * noise of this shared machine falls on every system alike; each measurement runs in a fresh
 * child process on fresh files, which are deleted afterwards.
 */
#include "bench.h"

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define TMPFS_MAGIC_ 0x01021994
#define RAMFS_MAGIC_ 0x858458f6

static const char *const wl_label[WL_COUNT] = {"W1", "W2", "W3", "W4", "W5", "W4c"};

/* usage -- print the command line and the knobs. */
static void usage(FILE *f)
{
    fprintf(f, "usage: rvm-bench [--smoke] [--dir DIR] [--csv FILE] [--only NAME[,NAME]] "
               "[--wl W1,..] [--rounds N]\n"
               "  --smoke   few iterations: checks that everything runs (no timing value)\n"
               "  --dir     where data files go (default $LRVM_BENCH_DIR or /var/tmp); "
               "not tmpfs\n"
               "  --csv     write every measured value there (system,workload,metric,value,"
               "unit)\n"
               "  --only    run only these systems (floor,lrvm,lmdb,sqlite,pmdk; prefix match)\n"
               "  --wl      run only these workloads (W1,W2,W3,W4,W5,W4c)\n"
               "  env LRVM_BENCH_SCALE=N multiplies transaction counts (default 1)\n");
}

/* wanted -- is system name selected by the --only list (NULL = all)? */
static int wanted(const char *only, const char *name)
{
    char buf[256], *save = NULL;

    if (!only)
        return 1;
    snprintf(buf, sizeof(buf), "%s", only);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strncmp(name, t, strlen(t)) == 0)
            return 1;
    return 0;
}

/* wl_wanted -- is workload wl in the --wl list (NULL = all)? Exact, case-insensitive names. */
static int wl_wanted(const char *list, enum bench_wl wl)
{
    char buf[256], *save = NULL;

    if (!list)
        return 1;
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcasecmp(t, wl_label[wl]) == 0)
            return 1;
    return 0;
}

/* check_dir -- refuse a directory on tmpfs/ramfs, with a message saying what to do. */
static int check_dir(const char *dir)
{
    struct statfs sf;

    if (statfs(dir, &sf) != 0) {
        fprintf(stderr,
                "rvm-bench: cannot use data directory %s: %s (set LRVM_BENCH_DIR "
                "or --dir to an existing directory on a disk file system)\n",
                dir, strerror(errno));
        return errno;
    }
    if ((unsigned long)sf.f_type == TMPFS_MAGIC_ || (unsigned long)sf.f_type == RAMFS_MAGIC_) {
        fprintf(stderr,
                "rvm-bench: data directory %s is on tmpfs/ramfs, where fdatasync is "
                "free; durable numbers would be meaningless. Set LRVM_BENCH_DIR or "
                "--dir to a directory on a disk file system (e.g. /var/tmp)\n",
                dir);
        return EINVAL;
    }
    return 0;
}

/* run_one -- run workload wl of sys in a fresh subdirectory; print a progress line on a
 * terminal, a failure always. */
static void run_one(const struct bench_sys *sys, enum bench_wl wl, const struct bench_cfg *cfg,
                    int round, struct bench_res *res)
{
    char sub[PATH_MAX];
    enum bench_wl fwl = wl == WL_W4C ? WL_W4 : wl;
    struct bench_cfg c = *cfg;

    memset(res, 0, sizeof(*res));
    c.cold = wl == WL_W4C;
    if (!sys->wl[fwl]) {
        res->rc = ENOTSUP;
        snprintf(res->msg, sizeof(res->msg), "%s",
                 sys->note[fwl] ? sys->note[fwl] : "not meaningful");
        return;
    }
    snprintf(sub, sizeof(sub), "%s/run-%s-%d", cfg->dir, wl_label[wl], round);
    bench_rmtree(sub);
    if (mkdir(sub, 0700) != 0) {
        bench_fail(res, errno, "cannot create %s: %s", sub, strerror(errno));
    } else {
        bench_run_child(sys->wl[fwl], &c, sub, res);
        bench_rmtree(sub);
    }
    if (res->rc != 0)
        fprintf(stderr, "  %s %-28s FAILED: %s\n", wl_label[wl], sys->name, res->msg);
    else if (isatty(STDERR_FILENO)) /* progress for a person watching; logs stay clean */
        fprintf(stderr, "  %s %-28s n=%-7ld %.3f s\n", wl_label[wl], sys->name, res->n, res->secs);
}

/* median -- median of k values (k <= 64), order destroyed. */
static double median(double *v, int k)
{
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];

            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return k ? v[k / 2] : 0;
}

/* med_field -- median over rounds k of one double field of the results. */
static double med_field(struct bench_res *rr, int k, size_t off)
{
    double v[64];

    for (int r = 0; r < k; r++)
        v[r] = *(double *)((char *)&rr[r] + off);
    return median(v, k);
}

/*
 * aggregate -- fold the rounds of one (system, workload) into one result. Rates (W1, W2, W5):
 * the median of the rounds' txn/s (a burst of the other users of this machine lands in one
 * system's round; a total over all rounds would charge it to that system alone), call counts
 * summed, p50/p99 the median of the rounds'. W3/W4: the median round of every time and byte
 * count. A failure in any round wins.
 */
static void aggregate(struct bench_res *rr, int k, enum bench_wl wl, struct bench_res *out)
{
    *out = rr[0];
    for (int r = 0; r < k; r++)
        if (rr[r].rc != 0) {
            *out = rr[r];
            return;
        }
    if (wl == WL_W1 || wl == WL_W2 || wl == WL_W5) {
        double rate[64];

        for (int r = 0; r < k; r++)
            rate[r] = rr[r].secs > 0 ? (double)rr[r].n / rr[r].secs : 0;
        for (int r = 1; r < k; r++) {
            out->n += rr[r].n;
            out->wchar += rr[r].wchar;
            out->syscw += rr[r].syscw;
        }
        /* the median round's rate, kept as n / secs so every reader computes it alike */
        out->secs = (double)out->n / median(rate, k);
        out->p50_us = med_field(rr, k, offsetof(struct bench_res, p50_us));
        out->p99_us = med_field(rr, k, offsetof(struct bench_res, p99_us));
        return;
    }
    out->secs = med_field(rr, k, offsetof(struct bench_res, secs));
    out->wbytes = med_field(rr, k, offsetof(struct bench_res, wbytes));
    out->rbytes = med_field(rr, k, offsetof(struct bench_res, rbytes));
    out->dev_rbytes = med_field(rr, k, offsetof(struct bench_res, dev_rbytes));
    out->x_secs = med_field(rr, k, offsetof(struct bench_res, x_secs));
    out->x_wbytes = med_field(rr, k, offsetof(struct bench_res, x_wbytes));
}

/*
 * run_rounds -- every selected workload of every system, in cfg->rounds interleaved rounds
 * (round r: W1 of the floor and all systems, W5 of all, W2, W3, W4, W4c), so that the noise
 * of this shared machine falls on every system alike, and each round's floor is measured
 * next to the commits it is compared with.
 */
static int run_rounds(struct bench_row *rows, int n, const struct bench_cfg *cfg, const char *wls)
{
    static const enum bench_wl order[WL_COUNT] = {WL_W1, WL_W5, WL_W2, WL_W3, WL_W4, WL_W4C};
    struct bench_res(*rr)[WL_COUNT][64] = calloc((size_t)n, sizeof(*rr));

    if (!rr)
        return ENOMEM;
    for (int r = 0; r < cfg->rounds; r++) {
        fprintf(stderr, "round %d/%d\n", r + 1, cfg->rounds);
        for (int o = 0; o < WL_COUNT; o++) {
            enum bench_wl wl = order[o];

            if (!wl_wanted(wls, wl))
                continue;
            for (int i = 0; i < n; i++) {
                run_one(rows[i].sys, wl, cfg, r, &rr[i][wl][r]);
                rows[i].have[wl] = 1;
            }
        }
    }
    for (int i = 0; i < n; i++)
        for (int wl = 0; wl < WL_COUNT; wl++)
            if (rows[i].have[wl])
                aggregate(rr[i][wl], cfg->rounds, (enum bench_wl)wl, &rows[i].res[wl]);
    free(rr);
    return 0;
}

/* print_context -- the machine and the sizes, so a table is never read without them. */
static void print_context(const struct bench_cfg *cfg)
{
    struct utsname u;
    char when[64];
    time_t now = time(NULL);

    uname(&u);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("rvm-bench: %s, %s %s, %ld CPUs, data in %s\n", when, u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), cfg->dir);
    printf("sizes: %u ints (%u B); %d rounds of: W1 %ld txns, W5 %ld txns (each capped at "
           "%.1f s), W2 up to %ld txns (cap %.1f s), W3 1 txn of %u updates, W4 %d txns then "
           "kill -9, reopening a %lu MiB store\n",
           BENCH_NINTS, BENCH_ARRAY_BYTES, cfg->rounds, cfg->w1_txns, cfg->w5_txns, cfg->dur_cap_s,
           cfg->w2_txns, cfg->w2_cap_s, BENCH_NINTS / BENCH_W3_STRIDE, cfg->w4_txns,
           cfg->w4_bytes >> 20);
}

int main(int argc, char **argv)
{
    const struct bench_sys *all[16];
    struct bench_row rows[16];
    struct bench_cfg cfg = {
        .w1_txns = 600,
        .rounds = 5,
        .w2_txns = 1000000,
        .w2_cap_s = 2.0,
        .w5_txns = 600,
        .w4_txns = BENCH_W4_TXNS,
        .w4_bytes = BENCH_W4_DB_BYTES,
        .seed = 0x9E3779B97F4A7C15ULL,
        .dur_cap_s = 4.0,
    };
    const char *base = getenv("LRVM_BENCH_DIR"), *csv = NULL, *only = NULL, *wls = NULL, *s;
    char dir[PATH_MAX];
    int n = 0, nall = 0, failed = 0, smoke = 0;
    long scale = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--smoke") == 0) {
            smoke = 1;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
            csv = argv[++i];
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--wl") == 0 && i + 1 < argc) {
            wls = argv[++i];
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            cfg.rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "rvm-bench: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if ((s = getenv("LRVM_BENCH_SCALE")) != NULL) {
        char *end;

        scale = strtol(s, &end, 10);
        if (*end || scale < 1 || scale > 1000) {
            fprintf(stderr,
                    "rvm-bench: LRVM_BENCH_SCALE='%s' is not a whole number in "
                    "1..1000; unset it or set e.g. LRVM_BENCH_SCALE=4\n",
                    s);
            return 2;
        }
    }
    if (cfg.rounds < 1 || cfg.rounds > 64) {
        fprintf(stderr, "rvm-bench: --rounds must be 1..64\n");
        return 2;
    }
    if (smoke) {
        cfg.smoke = 1;
        cfg.w1_txns = 20;
        cfg.rounds = 1;
        cfg.w2_txns = 2000;
        cfg.w2_cap_s = 0.5;
        cfg.w5_txns = 20;
        cfg.w4_txns = 50;
        cfg.w4_bytes = 8ul << 20;
    }
    cfg.w1_txns *= scale;
    cfg.w2_txns *= scale;
    cfg.w5_txns *= scale;
    /* PMDK must see a regular file for what it is (msync), never "forced pmem". */
    unsetenv("PMEM_IS_PMEM_FORCE");

    if (!base)
        base = "/var/tmp";
    if (check_dir(base) != 0)
        return 2;
    snprintf(dir, sizeof(dir), "%s/lrvm-bench.XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "rvm-bench: cannot create a directory under %s: %s\n", base,
                strerror(errno));
        return 2;
    }
    cfg.dir = dir;

    all[nall++] = &bench_floor_sys;
#ifdef HAVE_LRVM
    all[nall++] = &bench_lrvm_sys;
#else
    printf("note: lrvm not built (core library not in this tree yet)\n");
#endif
#ifdef HAVE_LMDB
    for (int i = 0; i < 3; i++)
        all[nall++] = &bench_lmdb_sys[i];
#else
    printf("note: LMDB peer not built (install liblmdb-dev; scripts/bench-rvm.sh does)\n");
#endif
#ifdef HAVE_SQLITE
    for (int i = 0; i < 2; i++)
        all[nall++] = &bench_sqlite_sys[i];
#else
    printf("note: SQLite peer not built (install libsqlite3-dev; scripts/bench-rvm.sh does)\n");
#endif
#ifdef HAVE_PMDK
    all[nall++] = &bench_pmdk_sys[0];
#else
    printf("note: PMDK peer not built (install libpmemobj-dev; scripts/bench-rvm.sh does)\n");
#endif
    memset(rows, 0, sizeof(rows));
    for (int i = 0; i < nall; i++)
        if (wanted(only, all[i]->name))
            rows[n++].sys = all[i];
    if (n == 0) {
        fprintf(stderr, "rvm-bench: --only '%s' selects no system\n", only);
        rmdir(dir);
        return 2;
    }
    print_context(&cfg);
    fflush(stdout);

    if (run_rounds(rows, n, &cfg, wls) != 0) {
        fprintf(stderr, "rvm-bench: out of memory\n");
        return 1;
    }
    rmdir(dir);

    for (int i = 0; i < n; i++)
        for (int wl = 0; wl < WL_COUNT; wl++)
            if (rows[i].res[wl].rc != 0 && rows[i].res[wl].rc != ENOTSUP) {
                printf("FAILED %s %s: %s\n", rows[i].sys->name, wl_label[wl], rows[i].res[wl].msg);
                failed++;
            }
    if (report_print(rows, n, &cfg, csv) != 0)
        failed++;
    if (failed)
        fprintf(stderr, "rvm-bench: %d measurement(s) failed (see FAILED lines)\n", failed);
    return failed ? 1 : 0;
}
