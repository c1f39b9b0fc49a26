/* SPDX-License-Identifier: MIT */
/*
 * report.c -- the benchmark's output: the absolute table, the ratio table (to the floor and
 * to the best peer), the PASS/FAIL targets, and the CSV (one measurement per line).
 * Targets are printed, never asserted: a slow, shared machine must not fail a build.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { M_TPS, M_P50, M_P99, M_SECS, M_WB, M_XWB, M_RB, M_DRB, M_CALLS, M_WCHAR };

/* metric -- one measured value of a workload result, and whether larger is better. */
struct metric {
    enum bench_wl wl;
    int what;
    const char *name; /* CSV metric name */
    const char *unit;
    int higher_better;
};

static const struct metric metrics[] = {
    {WL_W1, M_TPS, "txn_per_s", "txn/s", 1},
    {WL_W1, M_P50, "p50", "us", 0},
    {WL_W1, M_P99, "p99", "us", 0},
    {WL_W1, M_CALLS, "write_calls_per_txn", "calls", 0},
    {WL_W1, M_WCHAR, "write_call_bytes_per_txn", "B", 0},
    {WL_W2, M_TPS, "txn_per_s", "txn/s", 1},
    {WL_W3, M_SECS, "commit_time", "s", 0},
    {WL_W3, M_WB, "commit_write_bytes", "B", 0},
    {WL_W3, M_XWB, "truncation_write_bytes", "B", 0},
    {WL_W4, M_SECS, "recovery_time", "s", 0},
    {WL_W4, M_RB, "recovery_rchar", "B", 0},
    {WL_W4, M_DRB, "recovery_device_read_bytes", "B", 0},
    {WL_W4C, M_SECS, "recovery_time_cold", "s", 0},
    {WL_W4C, M_RB, "recovery_rchar_cold", "B", 0},
    {WL_W4C, M_DRB, "recovery_device_read_bytes_cold", "B", 0},
    {WL_W5, M_TPS, "txn_per_s", "txn/s", 1},
    {WL_W5, M_P50, "p50", "us", 0},
};

static const char *const wl_name[WL_COUNT] = {"W1", "W2", "W3", "W4", "W5", "W4c"};

/* metric_get -- the value of metric m in result r. */
static double metric_get(const struct bench_res *r, int what)
{
    switch (what) {
    case M_TPS: return r->secs > 0 ? (double)r->n / r->secs : 0;
    case M_P50: return r->p50_us;
    case M_P99: return r->p99_us;
    case M_SECS: return r->secs;
    case M_WB: return r->wbytes;
    case M_XWB: return r->x_wbytes;
    case M_RB: return r->rbytes;
    case M_DRB: return r->dev_rbytes;
    case M_CALLS: return r->n ? r->syscw / (double)r->n : 0;
    case M_WCHAR: return r->n ? r->wchar / (double)r->n : 0;
    }
    return 0;
}

/* row_ok -- the row measured workload wl successfully. */
static int row_ok(const struct bench_row *row, enum bench_wl wl)
{
    return row->have[wl] && row->res[wl].rc == 0;
}

/* cell -- format one table cell: the value, "-" when not meaningful, "ERR" when it failed. */
static void cell(char *buf, size_t len, const struct bench_row *row, enum bench_wl wl, int what,
                 double scale, const char *fmt)
{
    if (!row->have[wl] || row->res[wl].rc == ENOTSUP)
        snprintf(buf, len, "-");
    else if (row->res[wl].rc != 0)
        snprintf(buf, len, "ERR");
    else
        snprintf(buf, len, fmt, metric_get(&row->res[wl], what) * scale);
}

/* find -- the row of the named system, or NULL. */
static const struct bench_row *find(const struct bench_row *rows, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].sys->name, name) == 0)
            return &rows[i];
    return NULL;
}

/* best_peer -- the peer row with the best value of metric m (NULL if none measured it). */
static const struct bench_row *best_peer(const struct bench_row *rows, int n,
                                         const struct metric *m)
{
    const struct bench_row *best = NULL;

    for (int i = 0; i < n; i++) {
        double v;

        if (!rows[i].sys->is_peer || !row_ok(&rows[i], m->wl))
            continue;
        v = metric_get(&rows[i].res[m->wl], m->what);
        if (!best || (m->higher_better ? v > metric_get(&best->res[m->wl], m->what)
                                       : v < metric_get(&best->res[m->wl], m->what)))
            best = &rows[i];
    }
    return best;
}

/* ratio -- "times better than the reference" for lrvm: lrvm/ref for rates, ref/lrvm for
 * times and bytes; negative when undefined. */
static double ratio(double lrvm, double ref, int higher_better)
{
    if (higher_better)
        return ref > 0 ? lrvm / ref : -1;
    return lrvm > 0 ? ref / lrvm : -1;
}

/* print_abs -- the absolute table, one row per system variant. */
static void print_abs(const struct bench_row *rows, int n)
{
    const struct bench_row *fl = find(rows, n, BENCH_FLOOR_NAME);
    double ftps = fl && row_ok(fl, WL_W1) ? metric_get(&fl->res[WL_W1], M_TPS) : 0;

    printf("\n%-28s %9s %7s %7s %6s | %9s | %7s %7s %8s | %7s %8s %7s %8s | %8s %7s %6s\n",
           "system", "W1 txn/s", "p50 us", "p99 us", "xfloor", "W2 txn/s", "W3 s", "W3 MB",
           "trunc MB", "W4 ms", "W4 rd KB", "W4c ms", "W4c dvKB", "W5 txn/s", "p50 us", "xfloor");
    for (int i = 0; i < n; i++) {
        const struct bench_row *r = &rows[i];
        char c[16][32];

        cell(c[0], 32, r, WL_W1, M_TPS, 1, "%.0f");
        cell(c[1], 32, r, WL_W1, M_P50, 1, "%.0f");
        cell(c[2], 32, r, WL_W1, M_P99, 1, "%.0f");
        cell(c[3], 32, r, WL_W1, M_TPS, ftps > 0 ? 1 / ftps : 0, "%.2f");
        cell(c[4], 32, r, WL_W2, M_TPS, 1, "%.0f");
        cell(c[5], 32, r, WL_W3, M_SECS, 1, "%.3f");
        cell(c[6], 32, r, WL_W3, M_WB, 1e-6, "%.2f");
        cell(c[7], 32, r, WL_W3, M_XWB, 1e-6, "%.2f");
        cell(c[8], 32, r, WL_W4, M_SECS, 1e3, "%.3f");
        cell(c[9], 32, r, WL_W4, M_RB, 1e-3, "%.0f");
        cell(c[10], 32, r, WL_W4C, M_SECS, 1e3, "%.3f");
        cell(c[11], 32, r, WL_W4C, M_DRB, 1e-3, "%.0f");
        cell(c[12], 32, r, WL_W5, M_TPS, 1, "%.0f");
        cell(c[13], 32, r, WL_W5, M_P50, 1, "%.0f");
        cell(c[14], 32, r, WL_W5, M_TPS, ftps > 0 ? 1 / ftps : 0, "%.2f");
        printf("%-28s %9s %7s %7s %6s | %9s | %7s %7s %8s | %7s %8s %7s %8s | %8s %7s %6s\n",
               r->sys->name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10],
               c[11], c[12], c[13], c[14]);
    }
}

/* print_calls -- W1 system-call cost per commit: how many write-family calls and bytes a
 * durable commit passes to the kernel (writes through mmap are not seen: LMDB writemap, PMDK). */
static void print_calls(const struct bench_row *rows, int n)
{
    printf("\nW1 per commit, from /proc/self/io (write-family calls only; stores through "
           "mmap not seen):\n");
    for (int i = 0; i < n; i++)
        if (row_ok(&rows[i], WL_W1))
            printf("  %-28s %6.2f write calls, %8.0f bytes\n", rows[i].sys->name,
                   metric_get(&rows[i].res[WL_W1], M_CALLS),
                   metric_get(&rows[i].res[WL_W1], M_WCHAR));
}

/* print_ratios -- per metric: lrvm, the floor, the best peer, and lrvm's ratio to both
 * (">1" = lrvm better: rate ratio lrvm/ref, time and byte ratio ref/lrvm). */
static void print_ratios(const struct bench_row *rows, int n)
{
    const struct bench_row *lr = find(rows, n, BENCH_LRVM_NAME);
    const struct bench_row *fl = find(rows, n, BENCH_FLOOR_NAME);

    printf("\nratios (>1 = lrvm better; rates lrvm/ref, times and bytes ref/lrvm; "
           "W5 vs the W1 floor)\n");
    printf("%-4s %-32s %10s %10s %7s %10s %-16s %8s\n", "wl", "metric", "lrvm", "floor", "xfloor",
           "best peer", "(which)", "xpeer");
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        const struct metric *m = &metrics[i];
        const struct bench_row *bp = best_peer(rows, n, m);
        int fwl = m->wl == WL_W5 ? WL_W1 : m->wl;
        double lv = lr && row_ok(lr, m->wl) ? metric_get(&lr->res[m->wl], m->what) : -1;
        double fv = fl && row_ok(fl, fwl) ? metric_get(&fl->res[fwl], m->what) : -1;
        double pv = bp ? metric_get(&bp->res[m->wl], m->what) : -1;
        char ls[32] = "-", fs[32] = "-", ps[32] = "-", fr[16] = "-", pr[16] = "-";

        /* context only (absolute table and CSV): bytes after the commit, per-call counts,
		 * and rchar, which misses reads through mmap (LMDB, PMDK) and so has no fair
		 * "best peer" */
        if (m->what == M_XWB || m->what == M_DRB || m->what == M_CALLS || m->what == M_WCHAR ||
            m->what == M_RB)
            continue;
        if (lv >= 0)
            snprintf(ls, sizeof(ls), "%.4g", lv);
        if (fv >= 0 && (m->what == M_TPS || m->what == M_P50 || m->what == M_P99))
            snprintf(fs, sizeof(fs), "%.4g", fv);
        else
            fv = -1;
        if (pv >= 0)
            snprintf(ps, sizeof(ps), "%.4g", pv);
        if (lv >= 0 && fv >= 0)
            snprintf(fr, sizeof(fr), "%.2f", ratio(lv, fv, m->higher_better));
        if (lv >= 0 && pv >= 0 && ratio(lv, pv, m->higher_better) >= 0)
            snprintf(pr, sizeof(pr), "%.2f", ratio(lv, pv, m->higher_better));
        printf("%-4s %-32s %10s %10s %7s %10s %-16s %8s\n", wl_name[m->wl], m->name, ls, fs, fr, ps,
               bp ? bp->sys->name : "-", pr);
    }
}

/* not_measured -- the target line for a workload lrvm did not measure: skipped (--wl) or
 * failed (its message is in the FAILED lines above). */
static void not_measured(const struct bench_row *lr, enum bench_wl wl)
{
    if (!lr->have[wl])
        printf("SKIP %s: not run (--wl)\n", wl_name[wl]);
    else
        printf("FAIL %s: not measured (%s)\n", wl_name[wl], lr->res[wl].msg);
}

/* print_targets -- the targets for lrvm as PASS/FAIL lines (output only). */
static void print_targets(const struct bench_row *rows, int n, const struct bench_cfg *cfg)
{
    const struct bench_row *lr = find(rows, n, BENCH_LRVM_NAME);
    const struct bench_row *fl = find(rows, n, BENCH_FLOOR_NAME);

    printf("\ntargets (printed, not asserted)\n");
    if (cfg->smoke) {
        printf("SKIP all targets: --smoke sizes are too small to judge them\n");
        return;
    }
    if (!lr) {
        printf("SKIP all targets: lrvm not built into this benchmark (core library "
               "missing)\n");
        return;
    }
    if (row_ok(lr, WL_W1) && fl && row_ok(fl, WL_W1)) {
        double r = metric_get(&lr->res[WL_W1], M_TPS) / metric_get(&fl->res[WL_W1], M_TPS);
        double p = fl->res[WL_W1].p50_us / lr->res[WL_W1].p50_us;

        printf("%s W1 durable small txns >= 0.85x floor: %.2fx in txn/s (p50: %.2fx)\n",
               r >= 0.85 ? "PASS" : "FAIL", r, p);
    } else {
        not_measured(lr, WL_W1);
    }
    if (row_ok(lr, WL_W2)) {
        double v = metric_get(&lr->res[WL_W2], M_TPS);

        printf("%s W2 no_flush >= 1000000 txn/s: %.0f txn/s\n", v >= 1e6 ? "PASS" : "FAIL", v);
    } else {
        not_measured(lr, WL_W2);
    }
    if (row_ok(lr, WL_W3)) {
        double s = lr->res[WL_W3].secs, b = lr->res[WL_W3].wbytes;

        printf("%s W3 one big txn <= 0.05 s: %.4f s\n", s <= 0.05 ? "PASS" : "FAIL", s);
        printf("%s W3 one big txn <= 3 MB written (commit, truncation excluded): %.2f MB\n",
               b <= 3e6 ? "PASS" : "FAIL", b / 1e6);
    } else {
        not_measured(lr, WL_W3);
    }
    if (row_ok(lr, WL_W4)) {
        double s = lr->res[WL_W4].secs;

        printf("%s W4 open of a 64 MiB segment after kill -9 with %ld txns in the log "
               "(rvm_initialize + rvm_map) <= 5 ms, page cache as the killed process left "
               "it: %.2f ms (rvm_initialize %.2f ms)\n",
               s <= 0.005 ? "PASS" : "FAIL", lr->res[WL_W4].n, s * 1e3,
               lr->res[WL_W4].x_secs * 1e3);
        if (row_ok(lr, WL_W4C))
            printf("info W4c the same with its files evicted from the page cache first: "
                   "%.2f ms (rvm_initialize %.2f ms), %.0f KB read from the device\n",
                   lr->res[WL_W4C].secs * 1e3, lr->res[WL_W4C].x_secs * 1e3,
                   lr->res[WL_W4C].dev_rbytes / 1e3);
    } else {
        not_measured(lr, WL_W4);
    }
}

/* write_csv -- every measured value as system,workload,metric,value,unit. */
static int write_csv(const struct bench_row *rows, int n, const char *path)
{
    FILE *f = fopen(path, "w");

    if (!f) {
        fprintf(stderr,
                "rvm-bench: cannot write %s: %s (use --csv to choose another "
                "file)\n",
                path, strerror(errno));
        return errno;
    }
    fprintf(f, "system,workload,metric,value,unit\n");
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < sizeof(metrics) / sizeof(metrics[0]); j++) {
            const struct metric *m = &metrics[j];

            if (!row_ok(&rows[i], m->wl))
                continue;
            fprintf(f, "\"%s\",%s,%s,%.6g,%s\n", rows[i].sys->name, wl_name[m->wl], m->name,
                    metric_get(&rows[i].res[m->wl], m->what), m->unit);
        }
    if (fclose(f) != 0)
        return errno;
    return 0;
}

/* report_print -- tables, targets and CSV (csv_path may be NULL). */
int report_print(struct bench_row *rows, int nrows, const struct bench_cfg *cfg,
                 const char *csv_path)
{
    print_abs(rows, nrows);
    print_calls(rows, nrows);
    print_ratios(rows, nrows);
    print_targets(rows, nrows, cfg);
    printf("legend: '-' = not meaningful for that variant (e.g. W2 is run only by the "
           "non-durable variants); ERR = failed (see FAILED lines); trunc MB = bytes written by "
           "the truncation/checkpoint after W3 (0 for in-place systems)\n");
    fflush(stdout);
    return csv_path ? write_csv(rows, nrows, csv_path) : 0;
}
