/* SPDX-License-Identifier: MIT */
/*
 * shim_restart_bench.c -- restart time of an unmodified program under liblrvm-preload.so vs
 * its heap size, and the pause of a signal commit, measured side by side in one run
 * (scripts/bench-shim-restart.sh builds and runs it; results in bench/README.md).
 *
 *   shim-restart-bench [--csv FILE] [--pause MIB,...] SHIM.so SHIM-PROG DIR [MIB ...]
 *                      (default heap sizes 64 256 1024, pause sizes 64)
 *
 * --csv writes every value of the printed tables as section,mib,metric,value,unit (the file
 * scripts/bench-shim-restart.sh plots).
 *
 * For each heap size: `shim-prog fill MIB` under the shim (commits MIB MiB at exit), then one
 * restart that applies that commit's log records to the segment (recovery: "first restart"),
 * then REPS restarts of `shim-prog start` (the steady state: "restart") timed two ways: to
 * main (exec to the first line of main, CLOCK_MONOTONIC in both processes) and whole (exec to
 * exit, including the exit commit). The same restarts run with the image READ into anonymous
 * memory instead of mapped (LRVM_TEST_READ_IMAGE=1: the path the fault backends use, and the
 * shim's only path before), and the program runs without the shim (glibc malloc): ratios are
 * against both. `touch` reads every page of the heap after a mapped restart (what mapping
 * defers is paid on use). The pause: `shim-prog pause MIB` dirties MIB MiB and sends itself
 * SIGUSR1 (LRVM_COMMIT=signal:USR1); the program's longest gap between two clock readings is
 * the pause it saw; LRVM_STATS gives the tracker's own pause and commit times.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPS 5

static const char *shim, *prog, *dir;
static FILE *csv; /* --csv: every value printed, one per line; NULL: none */

/* csv_put -- one value, as section,mib,metric,value,unit */
static void csv_put(const char *section, size_t mib, const char *metric, double value,
                    const char *unit)
{
    if (csv)
        fprintf(csv, "%s,%zu,%s,%.3f,%s\n", section, mib, metric, value, unit);
}

/* now_ns -- CLOCK_MONOTONIC */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct run {
    uint64_t to_main, total;   /* ns */
    long maxrss_kib;           /* peak RSS of the program */
    char out[4096], err[4096]; /* the program's stdout, stderr (truncated) */
};

/* slurp -- file into buf (NUL-terminated, truncated) */
static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
}

/* run_prog -- run shim-prog with args under env (NULL-terminated "K=V" list, added to a
 * minimal environment); 0 or -1 (it failed: stderr shown) */
static int run_prog(struct run *r, char *const env[], const char *a1, const char *a2)
{
    char outp[512], errp[512];
    snprintf(outp, sizeof(outp), "%s/out", dir);
    snprintf(errp, sizeof(errp), "%s/err", dir);
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        char *argv[] = {(char *)prog, (char *)a1, (char *)a2, NULL};
        execve(prog, argv, env);
        _exit(127);
    }
    int st;
    struct rusage ru;
    wait4(pid, &st, 0, &ru);
    r->total = now_ns() - t0;
    r->maxrss_kib = ru.ru_maxrss;
    slurp(outp, r->out, sizeof(r->out));
    slurp(errp, r->err, sizeof(r->err));
    const char *m = strstr(r->out, "main_ns=");
    r->to_main = m ? strtoull(m + 8, NULL, 10) - t0 : 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || m == NULL) {
        fprintf(stderr, "shim-restart-bench: %s %s %s failed (status %d):\n%s\n", prog, a1,
                a2 ? a2 : "", st, r->err);
        return -1;
    }
    return 0;
}

/* cmp_u64 -- qsort */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* median -- of n values (sorts them) */
static uint64_t median(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

/* env_for -- the environment of one configuration: "shim" (mapped image), "read" (read
 * image), "none" (no shim); extra: one more K=V or NULL */
static void env_for(char **env, char bufs[][600], const char *mode, size_t log_mib,
                    const char *extra)
{
    int n = 0;
    snprintf(bufs[0], 600, "PATH=/usr/bin:/bin");
    env[n++] = bufs[0];
    if (strcmp(mode, "none") != 0) {
        snprintf(bufs[1], 600, "LD_PRELOAD=%s", shim);
        snprintf(bufs[2], 600, "LRVM_SEGMENT=%s/seg", dir);
        snprintf(bufs[3], 600, "LRVM_LOG_SIZE=%zuM", log_mib);
        snprintf(bufs[4], 600, "LRVM_GLOBALS=0");
        snprintf(bufs[5], 600, "LRVM_STATS=1");
        for (int k = 1; k <= 5; k++)
            env[n++] = bufs[k];
        if (strcmp(mode, "read") == 0) {
            snprintf(bufs[6], 600, "LRVM_TEST_READ_IMAGE=1");
            env[n++] = bufs[6];
        }
    }
    if (extra) {
        snprintf(bufs[7], 600, "%s", extra);
        env[n++] = bufs[7];
    }
    env[n] = NULL;
}

/* stat_us -- the number after key in s (e.g. "pause max "), or -1 */
static long stat_us(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* clean -- remove the segment and log of the last configuration */
static void clean(void)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/seg", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/seg.log", dir);
    unlink(p);
}

/* restart_size -- the restart rows of one heap size; 0 or -1 */
static int restart_size(size_t mib)
{
    char bufs[8][600], *env[10], arg[32];
    struct run r;
    size_t log_mib = mib + mib / 4 + 64;
    snprintf(arg, sizeof(arg), "%zu", mib);
    uint64_t first[2] = {0, 0}, tm[3][REPS], tt[3][REPS], touch = 0;
    long rss[3] = {0, 0, 0}; /* peak RSS of the fill run (its exit commit included) */
    const char *modes[3] = {"shim", "read", "none"};
    for (int m = 0; m < 2; m++) { /* a fresh heap per configuration */
        clean();
        env_for(env, bufs, modes[m], log_mib, NULL);
        if (run_prog(&r, env, "fill", arg) != 0)
            return -1;
        rss[m] = r.maxrss_kib;
        if (run_prog(&r, env, "start", NULL) != 0)
            return -1;
        first[m] = r.to_main;
        for (int k = 0; k < REPS; k++) {
            if (run_prog(&r, env, "start", NULL) != 0)
                return -1;
            tm[m][k] = r.to_main;
            tt[m][k] = r.total;
        }
        if (m == 0) {
            if (run_prog(&r, env, "touch", arg) != 0)
                return -1;
            const char *p = strstr(r.out, "touch_ns=");
            touch = p ? strtoull(p + 9, NULL, 10) : 0;
        }
    }
    env_for(env, bufs, "none", 0, NULL);
    if (run_prog(&r, env, "fill", arg) != 0)
        return -1;
    rss[2] = r.maxrss_kib;
    for (int k = 0; k < REPS; k++) {
        if (run_prog(&r, env, "start", NULL) != 0)
            return -1;
        tm[2][k] = r.to_main;
        tt[2][k] = r.total;
    }
    uint64_t m0 = median(tm[0], REPS), m1 = median(tm[1], REPS), m2 = median(tm[2], REPS);
    uint64_t t0 = median(tt[0], REPS), t1 = median(tt[1], REPS), t2 = median(tt[2], REPS);
    printf("| %5zu MiB | %7.1f | %7.1f | %7.1f | %7.1f | %7.1f | %5.2fx | %7.1f | %7.1f | %7.1f |"
           " %7.1f | %ld / %ld / %ld (%.2fx) |\n",
           mib, m0 / 1e6, t0 / 1e6, m1 / 1e6, t1 / 1e6, m2 / 1e6, (double)m1 / (double)m0,
           first[0] / 1e6, first[1] / 1e6, touch / 1e6, t2 / 1e6, rss[0] >> 10, rss[1] >> 10,
           rss[2] >> 10, (double)rss[0] / (double)(rss[2] ? rss[2] : 1));
    fflush(stdout);
    csv_put("restart", mib, "mapped_to_main", m0 / 1e6, "ms");
    csv_put("restart", mib, "mapped_whole_run", t0 / 1e6, "ms");
    csv_put("restart", mib, "read_to_main", m1 / 1e6, "ms");
    csv_put("restart", mib, "read_whole_run", t1 / 1e6, "ms");
    csv_put("restart", mib, "glibc_to_main", m2 / 1e6, "ms");
    csv_put("restart", mib, "glibc_whole_run", t2 / 1e6, "ms");
    csv_put("restart", mib, "first_restart_mapped", first[0] / 1e6, "ms");
    csv_put("restart", mib, "first_restart_read", first[1] / 1e6, "ms");
    csv_put("restart", mib, "touch_all_mapped", touch / 1e6, "ms");
    csv_put("restart", mib, "fill_peak_rss_mapped", (double)(rss[0] >> 10), "MiB");
    csv_put("restart", mib, "fill_peak_rss_read", (double)(rss[1] >> 10), "MiB");
    csv_put("restart", mib, "fill_peak_rss_glibc", (double)(rss[2] >> 10), "MiB");
    clean();
    return 0;
}

/* pause_row -- two signal commits with mib MiB dirty (fresh pages, then the same pages
 * written again); 0 or -1 */
static int pause_row(size_t mib)
{
    char bufs[8][600], *env[10], arg[32];
    struct run r;
    snprintf(arg, sizeof(arg), "%zu", mib);
    long gap0[REPS], gap1[REPS], pmax[REPS], cavg[REPS];
    for (int k = 0; k < REPS; k++) {
        clean();
        env_for(env, bufs, "shim", mib * 3 + 64, "LRVM_COMMIT=signal:USR1");
        if (run_prog(&r, env, "pause", arg) != 0)
            return -1;
        const char *g = strstr(r.out, "max_gap_ns_0=");
        gap0[k] = g ? strtol(g + 13, NULL, 10) / 1000 : -1;
        g = strstr(r.out, "max_gap_ns_1=");
        gap1[k] = g ? strtol(g + 13, NULL, 10) / 1000 : -1;
        pmax[k] = stat_us(r.err, "pause max ");
        cavg[k] = stat_us(r.err, "commit avg ");
    }
    int (*cmp)(const void *, const void *) = (int (*)(const void *, const void *))cmp_u64;
    qsort(gap0, REPS, sizeof(long), cmp);
    qsort(gap1, REPS, sizeof(long), cmp);
    qsort(pmax, REPS, sizeof(long), cmp);
    qsort(cavg, REPS, sizeof(long), cmp);
    printf("| %zu MiB dirty | %.2f (%.2f .. %.2f) | %.2f (%.2f .. %.2f) | %.2f | %.2f |\n", mib,
           gap0[REPS / 2] / 1e3, gap0[0] / 1e3, gap0[REPS - 1] / 1e3, gap1[REPS / 2] / 1e3,
           gap1[0] / 1e3, gap1[REPS - 1] / 1e3, pmax[REPS / 2] / 1e3, cavg[REPS / 2] / 1e3);
    fflush(stdout);
    csv_put("pause", mib, "first_commit_pause_median", gap0[REPS / 2] / 1e3, "ms");
    csv_put("pause", mib, "first_commit_pause_min", gap0[0] / 1e3, "ms");
    csv_put("pause", mib, "first_commit_pause_max", gap0[REPS - 1] / 1e3, "ms");
    csv_put("pause", mib, "second_commit_pause_median", gap1[REPS / 2] / 1e3, "ms");
    csv_put("pause", mib, "tracker_pause_max", pmax[REPS / 2] / 1e3, "ms");
    csv_put("pause", mib, "tracker_commit_avg", cavg[REPS / 2] / 1e3, "ms");
    clean();
    return 0;
}

int main(int argc, char **argv)
{
    size_t pauses[16] = {64}, np = 1;
    int a = 1;
    for (; a + 1 < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        if (strcmp(argv[a], "--csv") == 0) {
            if (!(csv = fopen(argv[a + 1], "w"))) {
                fprintf(stderr, "shim-restart-bench: cannot write %s: %s\n", argv[a + 1],
                        strerror(errno));
                return 1;
            }
            fprintf(csv, "section,mib,metric,value,unit\n");
        } else if (strcmp(argv[a], "--pause") == 0) {
            np = 0;
            for (char *p = argv[a + 1], *end; *p && np < 16; p = end + (*end == ',')) {
                pauses[np++] = strtoul(p, &end, 10);
                if (end == p || pauses[np - 1] == 0 || (*end && *end != ',')) {
                    fprintf(stderr,
                            "shim-restart-bench: --pause %s: expected sizes in MiB "
                            "separated by commas (e.g. 16,64,256)\n",
                            argv[a + 1]);
                    return 2;
                }
            }
        } else {
            break;
        }
    }
    if (argc - a < 3) {
        fprintf(stderr, "usage: shim-restart-bench [--csv FILE] [--pause MIB,...] SHIM.so "
                        "SHIM-PROG DIR [MIB ...]\n");
        return 2;
    }
    shim = argv[a];
    prog = argv[a + 1];
    dir = argv[a + 2];
    size_t sizes[16], ns = 0;
    for (int i = a + 3; i < argc && ns < 16; i++)
        sizes[ns++] = strtoul(argv[i], NULL, 10);
    if (ns == 0) {
        sizes[0] = 64;
        sizes[1] = 256;
        sizes[2] = 1024;
        ns = 3;
    }
    printf("Restart of an unmodified program under the shim (wp-async), median of %d runs, ms.\n"
           "mapped: the segment mapped MAP_PRIVATE (default); read: the image read into "
           "anonymous memory\n(LRVM_TEST_READ_IMAGE=1); ratio = read / mapped, to main. first: "
           "the restart that applies the\nprevious run's log. touch: reading every heap page "
           "after a mapped restart. glibc: no shim.\n\n",
           REPS);
    printf("| heap | mapped: to main | mapped: whole run | read: to main | read: whole run |"
           " glibc: to main | read/mapped | first restart, mapped | first restart, read |"
           " touch all, mapped | glibc: whole run | fill's peak RSS MiB: mapped / read / glibc"
           " (mapped/glibc) |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < ns; i++)
        if (restart_size(sizes[i]) != 0)
            return 1;
    printf("\nSignal commit (LRVM_COMMIT=signal:USR1) of a fresh heap, median of %d runs, ms.\n"
           "seen by the program: its longest gap between two clock readings; tracker: "
           "LRVM_STATS (max and average over the run's two commits).\n\n",
           REPS);
    printf("| dirty | 1st commit (fresh pages): pause seen, median (min .. max) | 2nd commit "
           "(same pages again): pause seen | tracker: max pause | tracker: avg commit |\n");
    printf("|---|---|---|---|---|\n");
    for (size_t i = 0; i < np; i++)
        if (pause_row(pauses[i]) != 0)
            return 1;
    return csv && fclose(csv) != 0 ? 1 : 0;
}
