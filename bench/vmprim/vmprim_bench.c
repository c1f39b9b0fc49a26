/* SPDX-License-Identifier: MIT */
/*
 * vmprim_bench.c -- vmprim-bench: Appel & Li's primitive costs on this machine, and the full
 * dirty-tracking cycle per DIRTY backend, measured side by side in one run.
 *
 *   vmprim-bench [--csv FILE] [--full] [--backend NAME]
 *
 * Table 1 (Appel & Li, ASPLOS '91, table 2): per operation, in microseconds, through vmprim's
 * own dispatcher: PROT1+TRAP+UNPROT (protect one page, write it, the handler unprotects),
 * PROTN+TRAP+UNPROT (protect 100 pages with one PROTN, then write each; per page), and TRAP
 * alone (the handler skips the faulting store, nothing is unprotected). "Rating" is the
 * Sun 3/60 time (1238 / 1016 / 760 us) divided by ours.
 *
 * Table 2: the cycle "write one byte to each of k distinct random pages of a 256 MiB armed
 * range, collect, re-arm" per backend, median of several repetitions, with the same write
 * loop on untracked memory as the baseline. The collected count is checked against k.
 * Target: wp-async at k = 4096 costs at most 1/5 of mprotect; printed as PASS/FAIL.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#include "lrvm/vmprim.h"

#define REGION ((size_t)256 << 20)
#define NKS 5
static const size_t bench_ks[NKS] = {1, 16, 256, 4096, 65536};

static FILE *bench_csv;
static int bench_full;

/* bench_now -- monotonic time in microseconds */
static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* bench_cmp -- order doubles for qsort */
static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* bench_median -- median of n samples (sorts them) */
static double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), bench_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* bench_die -- report a failed call and exit */
static void bench_die(const char *what, int rc)
{
    fprintf(stderr, "vmprim-bench: %s: %s\n", what, strerror(rc));
    exit(1);
}

/* ---- Table 1: Appel & Li ---- */

static size_t bench_ps;

/* unprot_fn -- handler: unprotect the faulting page */
static int unprot_fn(void *addr, int sig, siginfo_t *si, void *uctx, void *arg)
{
    (void)sig, (void)si, (void)uctx, (void)arg;
    return vmp_unprot((void *)((uintptr_t)addr & ~(bench_ps - 1)), bench_ps);
}

#if defined(__x86_64__)
/* skip_fn -- handler: skip the 3-byte store instruction of bench_store (TRAP alone) */
static int skip_fn(void *addr, int sig, siginfo_t *si, void *uctx, void *arg)
{
    (void)addr, (void)sig, (void)si, (void)arg;
    ((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP] += 3;
    return 0;
}

/* bench_store -- a store whose encoding is known to be 3 bytes: movb $1, (%rdi) */
static inline void bench_store(char *p)
{
    __asm__ volatile(".byte 0xc6, 0x07, 0x01" : : "D"(p) : "memory");
}
#endif

/* bench_appel_li -- print and record Appel & Li's three measurements */
static void bench_appel_li(void)
{
    const int npages = 100;
    int rounds = bench_full ? 200 : 40;
    size_t len = (size_t)npages * bench_ps;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        bench_die("mmap", errno);
    memset(m, 0, len);
    int id, rc;
    if ((rc = vmp_trap_register(m, len, unprot_fn, NULL, &id)) != 0)
        bench_die("vmp_trap_register", rc);

    /* PROT1 + TRAP + UNPROT */
    double t0 = bench_now();
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < npages; i++) {
            char *p = m + (size_t)i * bench_ps;
            vmp_prot1(p, PROT_READ);
            *(volatile char *)p = 1;
        }
    double prot1 = (bench_now() - t0) / (rounds * npages);

    /* PROTN + TRAP + UNPROT (per page) */
    void *pages[100];
    t0 = bench_now();
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < npages; i++)
            pages[i] = m + (size_t)i * bench_ps;
        vmp_protn(pages, (size_t)npages, PROT_READ);
        for (int i = 0; i < npages; i++)
            *(volatile char *)(m + (size_t)i * bench_ps) = 2;
    }
    double protn = (bench_now() - t0) / (rounds * npages);
    vmp_trap_unregister(id);

    /* TRAP alone */
    double trap = -1;
#if defined(__x86_64__)
    if ((rc = vmp_trap_register(m, len, skip_fn, NULL, &id)) != 0)
        bench_die("vmp_trap_register", rc);
    mprotect(m, bench_ps, PROT_READ);
    int n = rounds * npages;
    t0 = bench_now();
    for (int i = 0; i < n; i++)
        bench_store(m);
    trap = (bench_now() - t0) / n;
    vmp_trap_unregister(id);
#endif
    munmap(m, len);

    static const char *names[3] = {"prot1+trap+unprot", "protN+trap+unprot", "trap"};
    static const double sun[3] = {1238, 1016, 760};
    double ours[3] = {prot1, protn, trap};
    printf("Appel & Li's primitives (us per operation; rating = Sun 3/60 time / ours)\n");
    printf("  %-20s %10s %12s %10s\n", "operation", "this host", "Sun 3/60", "rating");
    for (int i = 0; i < 3; i++) {
        if (ours[i] < 0) {
            printf("  %-20s %10s %12.0f %10s\n", names[i], "n/a", sun[i], "n/a");
            continue;
        }
        printf("  %-20s %10.2f %12.0f %10.0f\n", names[i], ours[i], sun[i], sun[i] / ours[i]);
        if (bench_csv)
            fprintf(bench_csv, "appel-li,%s,,%.3f,%.0f,%.1f\n", names[i], ours[i], sun[i],
                    sun[i] / ours[i]);
    }
    printf("\n");
}

/* ---- Table 2: dirty cycle per backend ---- */

/* count_fn -- collect callback: count pages */
static void count_fn(void *start, size_t npages, void *arg)
{
    (void)start;
    *(size_t *)arg += npages;
}

/* bench_pick -- the first k entries of perm become k distinct random pages */
static void bench_pick(uint32_t *perm, size_t n, size_t k, uint64_t *seed)
{
    for (size_t i = 0; i < k; i++) {
        *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = i + (size_t)((*seed >> 33) % (n - i));
        uint32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
}

/* bench_reps -- repetitions for k */
static int bench_reps(size_t k)
{
    int r = k >= 65536 ? 3 : k >= 4096 ? 7 : 21;
    return bench_full ? r * 3 : r;
}

/* bench_writes -- one byte to each chosen page */
static void bench_writes(char *m, const uint32_t *perm, size_t k, char v)
{
    for (size_t i = 0; i < k; i++)
        ((volatile char *)m)[(size_t)perm[i] * bench_ps] = v;
}

/* bench_dirty -- run table 2; returns 0 if the ratio target is met or not measurable */
static int bench_dirty(vmp_backend_t only)
{
    size_t n = REGION / bench_ps;
    uint32_t *perm = malloc(n * sizeof(*perm));
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    char *m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *base = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || base == MAP_FAILED)
        bench_die("mmap 256 MiB", errno);
    memset(m, 1, REGION); /* populated: we measure tracking, not page allocation */
    memset(base, 1, REGION);

    double baseline[NKS], cyc[VMP_BACKEND_COUNT + 1][NKS];
    int have[VMP_BACKEND_COUNT + 1] = {0};
    uint64_t seed = 42;
    for (int ki = 0; ki < NKS; ki++) {
        size_t k = bench_ks[ki];
        int reps = bench_reps(k);
        double s[64];
        for (int r = 0; r < reps; r++) {
            bench_pick(perm, n, k, &seed);
            double t0 = bench_now();
            bench_writes(base, perm, k, (char)r);
            s[r] = bench_now() - t0;
        }
        baseline[ki] = bench_median(s, reps);
    }

    printf("Dirty-tracking cycle: write k random pages of 256 MiB, collect, re-arm "
           "(median us per cycle)\n");
    for (vmp_backend_t b = VMP_BACKEND_WP_ASYNC; b <= VMP_BACKEND_MPROTECT; b++) {
        char why[256];
        if (only != VMP_BACKEND_AUTO && b != only)
            continue;
        if (vmp_backend_probe(b, why, sizeof(why)) != 0) {
            printf("  %-12s skipped: %s\n", vmp_backend_name(b), why);
            continue;
        }
        vmp_dirty_t *t;
        vmp_dirty_opts_t o = {.backend = b};
        int rc = vmp_dirty_create(&o, &t);
        if (rc != 0)
            bench_die("vmp_dirty_create", rc);
        double t0 = bench_now();
        if ((rc = vmp_dirty_arm(t, m, REGION)) != 0) {
            fprintf(stderr, "vmprim-bench: arm: %s\n", vmp_dirty_errmsg(t));
            exit(1);
        }
        double arm = bench_now() - t0;
        for (int ki = 0; ki < NKS; ki++) {
            size_t k = bench_ks[ki];
            int reps = bench_reps(k);
            double s[64];
            for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
                size_t got = 0;
                bench_pick(perm, n, k, &seed);
                t0 = bench_now();
                bench_writes(m, perm, k, (char)r);
                rc = vmp_dirty_collect_runs(t, count_fn, &got);
                double dt = bench_now() - t0;
                if (rc != 0) {
                    fprintf(stderr, "vmprim-bench: %s: collect: %s\n", vmp_backend_name(b),
                            vmp_dirty_errmsg(t));
                    exit(1);
                }
                if (got != k) {
                    fprintf(stderr, "vmprim-bench: %s: collected %zu pages, wrote %zu\n",
                            vmp_backend_name(b), got, k);
                    exit(1);
                }
                if (r >= 0)
                    s[r] = dt;
            }
            cyc[b][ki] = bench_median(s, reps);
        }
        have[b] = 1;
        printf("  %s: armed 256 MiB in %.0f us\n", vmp_backend_name(b), arm);
        vmp_dirty_destroy(t);
    }

    printf("  %8s %12s", "k", "untracked");
    for (vmp_backend_t b = VMP_BACKEND_WP_ASYNC; b <= VMP_BACKEND_MPROTECT; b++)
        if (have[b])
            printf(" %12s %9s", vmp_backend_name(b), "x base");
    printf("\n");
    for (int ki = 0; ki < NKS; ki++) {
        printf("  %8zu %12.1f", bench_ks[ki], baseline[ki]);
        for (vmp_backend_t b = VMP_BACKEND_WP_ASYNC; b <= VMP_BACKEND_MPROTECT; b++) {
            if (!have[b])
                continue;
            printf(" %12.1f %9.0f", cyc[b][ki], cyc[b][ki] / baseline[ki]);
            if (bench_csv)
                fprintf(bench_csv, "dirty-cycle,%s,%zu,%.1f,%.1f,%.1f\n", vmp_backend_name(b),
                        bench_ks[ki], cyc[b][ki], baseline[ki], cyc[b][ki] / baseline[ki]);
        }
        printf("\n");
    }
    printf("  per dirty page at k=65536 (us):");
    for (vmp_backend_t b = VMP_BACKEND_WP_ASYNC; b <= VMP_BACKEND_MPROTECT; b++)
        if (have[b])
            printf("  %s %.2f", vmp_backend_name(b), cyc[b][NKS - 1] / 65536.0);
    printf("\n\n");

    int ret = 0;
    if (have[VMP_BACKEND_WP_ASYNC] && have[VMP_BACKEND_MPROTECT]) {
        double ratio = cyc[VMP_BACKEND_WP_ASYNC][3] / cyc[VMP_BACKEND_MPROTECT][3];
        int pass = ratio <= 0.2;
        printf("Target: wp-async at k=4096 <= 1/5 of mprotect: %.1f / %.1f us = 1/%.1f  %s\n",
               cyc[VMP_BACKEND_WP_ASYNC][3], cyc[VMP_BACKEND_MPROTECT][3], 1 / ratio,
               pass ? "PASS" : "FAIL");
        if (bench_csv)
            fprintf(bench_csv, "target,wp-async/mprotect,4096,%.1f,%.1f,%.3f\n",
                    cyc[VMP_BACKEND_WP_ASYNC][3], cyc[VMP_BACKEND_MPROTECT][3], ratio);
        ret = pass ? 0 : 2;
    } else {
        printf("Target: wp-async at k=4096 <= 1/5 of mprotect: not measurable here "
               "(a backend is unavailable)\n");
    }
    munmap(m, REGION);
    munmap(base, REGION);
    free(perm);
    return ret;
}

/* bench_usage -- print usage and exit */
static void bench_usage(int code)
{
    fprintf(code ? stderr : stdout,
            "usage: vmprim-bench [--csv FILE] [--full] [--backend wp-async|uffd-sigbus|mprotect]\n"
            "  --csv FILE   also write the results as CSV (table,name,k,us,baseline_us,ratio)\n"
            "  --full       3x more repetitions (slower, steadier)\n"
            "  --backend B  run the dirty-cycle table for one backend only\n");
    exit(code);
}

int main(int argc, char **argv)
{
    const char *csv = NULL;
    vmp_backend_t only = VMP_BACKEND_AUTO;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
            csv = argv[++i];
        } else if (strcmp(argv[i], "--full") == 0) {
            bench_full = 1;
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            if (vmp_backend_parse(argv[++i], &only) != 0) {
                fprintf(stderr,
                        "vmprim-bench: unknown backend '%s' (wp-async, uffd-sigbus, "
                        "mprotect)\n",
                        argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_usage(0);
        } else {
            fprintf(stderr, "vmprim-bench: unknown argument '%s'\n", argv[i]);
            bench_usage(1);
        }
    }
    if (csv != NULL) {
        bench_csv = fopen(csv, "w");
        if (bench_csv == NULL) {
            fprintf(stderr, "vmprim-bench: cannot write --csv file %s: %s\n", csv, strerror(errno));
            return 1;
        }
        fprintf(bench_csv, "table,name,k,us,baseline_us,ratio\n");
    }
    bench_ps = vmp_page_size();
    printf("vmprim-bench: page size %zu, results from one run on this machine\n\n", bench_ps);
    bench_appel_li();
    int rc = bench_dirty(only);
    if (bench_csv != NULL) {
        fclose(bench_csv);
        printf("CSV written to %s\n", csv);
    }
    return rc;
}
