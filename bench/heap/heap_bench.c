/* SPDX-License-Identifier: MIT */
/*
 * heap_bench.c -- one driver for the allocator comparison: the lrvm heap
 * (untracked, file-backed) or the process's malloc (glibc, or jemalloc via LD_PRELOAD), run in
 * separate processes by scripts/bench-heap.sh.
 *
 * Workload: each thread owns slots sized so that the live set is ~live_mb in total; the slots
 * are filled, then each operation frees a random slot's block and allocates a new one of a
 * random size ("small": uniform 16-512 B; "mix": log-uniform 16 B-64 KiB), writing its first
 * and last bytes and one byte of every page (so RSS counts every page a program would use).
 * Reported: operations/s (one op = one free + one malloc) per wall and per CPU second, live
 * bytes, RSS growth over the pre-run baseline at the end and at its peak, and overhead = RSS
 * growth / live bytes. Blocks carry their size in their first word and are checked when freed;
 * the lrvm heap is also checked (heap_check) at the end. Exit 1 if anything was corrupted.
 *
 * usage: heap_bench lrvm|sys small|mix THREADS OPS LIVE_MB
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "heap_file.h"

static struct heap *H;
static int use_lrvm, mix;
static long ops_per_thread;
static size_t slots_per_thread;

struct tstate {
    uint64_t seed;
    char **slot;
    size_t live;
    int bad;
    pthread_t t;
};

/* rnd -- xorshift64* */
static inline uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

/* rsize -- a request size of the workload */
static inline size_t rsize(uint64_t *s)
{
    if (!mix)
        return 16 + rnd(s) % 497;
    /* log-uniform over [16, 65536]: 2^(4 + 12u) */
    uint64_t r = rnd(s);
    unsigned e = 4 + (unsigned)(r % 12);
    size_t lo = (size_t)1 << e;
    return lo + (size_t)((r >> 8) % lo);
}

static inline void *xmalloc(size_t n)
{
    return use_lrvm ? heap_malloc(H, n) : malloc(n);
}

static inline void xfree(void *p)
{
    if (use_lrvm)
        heap_free(H, p);
    else
        free(p);
}

/* put -- allocate and stamp a block */
static inline char *put(struct tstate *t, size_t n)
{
    char *p = xmalloc(n);
    if (!p) {
        fprintf(stderr, "heap_bench: out of memory allocating %zu bytes\n", n);
        exit(2);
    }
    *(size_t *)p = n;
    for (size_t off = 4096; off < n; off += 4096) /* touch every page, as a program would */
        p[off] = 1;
    p[n - 1] = 1;
    t->live += n;
    return p;
}

/* drop -- check and free a block */
static inline void drop(struct tstate *t, char *p)
{
    size_t n = *(size_t *)p;
    if (n < 16 || n > 65536 || p[n - 1] != 1)
        t->bad = 1;
    t->live -= n;
    xfree(p);
}

static void *fill(void *arg)
{
    struct tstate *t = arg;
    for (size_t i = 0; i < slots_per_thread; i++)
        t->slot[i] = put(t, rsize(&t->seed));
    return NULL;
}

static void *run(void *arg)
{
    struct tstate *t = arg;
    for (long i = 0; i < ops_per_thread; i++) {
        size_t k = rnd(&t->seed) % slots_per_thread;
        drop(t, t->slot[k]);
        t->slot[k] = put(t, rsize(&t->seed));
    }
    return NULL;
}

/* rss_kb -- VmRSS or VmHWM from /proc/self/status */
static long rss_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0)
            v = atol(line + kl + 1);
    if (f)
        fclose(f);
    return v;
}

/* cpu_secs -- user + system CPU time of the process */
static double cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s lrvm|sys small|mix THREADS OPS LIVE_MB\n", argv[0]);
        return 2;
    }
    use_lrvm = strcmp(argv[1], "lrvm") == 0;
    mix = strcmp(argv[2], "mix") == 0;
    int nthreads = atoi(argv[3]);
    long ops = atol(argv[4]);
    double live_mb = atof(argv[5]);
    if (nthreads < 1 || nthreads > 16 || ops < 1 || live_mb <= 0) {
        fprintf(stderr, "heap_bench: bad arguments\n");
        return 2;
    }
    double mean = 264.0;
    if (mix) { /* mean of the log-uniform mix: sum over e = 4..15 of 1.5 * 2^e / 12 */
        mean = 0;
        for (int e = 4; e < 16; e++)
            mean += 1.5 * (double)(1 << e) / 12.0;
    }
    slots_per_thread = (size_t)(live_mb * 1048576.0 / mean / nthreads);
    ops_per_thread = ops / nthreads;

    struct tstate ts[16];
    for (int i = 0; i < nthreads; i++) {
        memset(&ts[i], 0, sizeof(ts[i]));
        ts[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        ts[i].slot = mmap(NULL, slots_per_thread * sizeof(char *), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (ts[i].slot == MAP_FAILED) {
            perror("heap_bench: mmap");
            return 2;
        }
    }
    struct heap_file *hf = NULL;
    char path[128];
    if (use_lrvm) {
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(path, sizeof(path), "%s/lrvm-heap-bench-%d", dir, (int)getpid());
        void *base = (void *)0x500000000000ull;
        size_t reserve = (size_t)64 << 30;
        int rc = heap_file_create(&hf, path, base, reserve);
        if (rc == 0)
            rc = heap_create(&H, base, reserve, heap_file_backing(hf), NULL);
        if (rc) {
            fprintf(stderr, "heap_bench: cannot create the heap: %s\n", heap_strerror(rc));
            return 2;
        }
        unlink(path); /* space stays allocated while open; nothing left behind */
    }
    long base_kb = rss_kb("VmRSS:");
    for (int i = 0; i < nthreads; i++)
        pthread_create(&ts[i].t, NULL, fill, &ts[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(ts[i].t, NULL);
    double t0 = now(), c0 = cpu_secs();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&ts[i].t, NULL, run, &ts[i]);
    for (int i = 0; i < nthreads; i++)
        pthread_join(ts[i].t, NULL);
    double secs = now() - t0, cpu = cpu_secs() - c0;
    size_t live = 0;
    int bad = 0;
    for (int i = 0; i < nthreads; i++) {
        live += ts[i].live;
        bad |= ts[i].bad;
    }
    long rss = rss_kb("VmRSS:") - base_kb, hwm = rss_kb("VmHWM:") - base_kb;
    double foot = 0, usable = 0, active = 0, purges = 0;
    if (use_lrvm) {
        struct heap_stats st;
        heap_stats_get(H, &st);
        foot = (double)(st.active + st.metadata + st.free_dirty);
        usable = (double)st.allocated;
        active = (double)st.active;
        purges = (double)st.purges;
        size_t nv = 0;
        if (heap_check(H, NULL, NULL, &nv) != 0)
            bad = 1;
    }
    printf("alloc=%s workload=%s threads=%d ops=%ld secs=%.3f mops=%.3f cpu_secs=%.3f "
           "mops_per_cpu=%.3f live_mb=%.1f rss_mb=%.1f hwm_mb=%.1f overhead=%.3f "
           "peak_overhead=%.3f footprint_overhead=%.3f usable_over_live=%.3f "
           "active_over_usable=%.3f purges=%.0f\n",
           getenv("HEAP_BENCH_ALLOC") ? getenv("HEAP_BENCH_ALLOC") /* e.g. under the shim */
           : use_lrvm
               ? "lrvm"
               : (getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "jemalloc") ? "jemalloc"
                                                                                   : "glibc"),
           mix ? "mix" : "small", nthreads, ops_per_thread * nthreads, secs,
           (double)(ops_per_thread * nthreads) / secs / 1e6, cpu,
           (double)(ops_per_thread * nthreads) / cpu / 1e6, (double)live / 1048576.0,
           (double)rss / 1024.0, (double)hwm / 1024.0, (double)rss * 1024.0 / (double)live,
           (double)hwm * 1024.0 / (double)live, foot / (double)live, usable / (double)live,
           usable > 0 ? active / usable : 0.0, purges);
    if (bad) {
        fprintf(stderr, "heap_bench: a block was corrupted or the heap check failed\n");
        return 1;
    }
    return 0;
}
