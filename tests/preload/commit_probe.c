/* SPDX-License-Identifier: MIT */
/*
 * commit_probe.c -- an unmodified program (no lrvm headers, no -llrvm) for the tests of what a
 * commit guarantees (test_preload_commit.c). It finds the shim's exported rvm_commit with
 * dlsym, as any program may; without the shim there is none and the explicit commits are
 * skipped. Modes:
 *
 *   instant N    checks the state it starts from, then one writer thread loops
 *                `a++; c++; b++; d++` (a and b in two heap pages, c and d globals) while main
 *                calls rvm_commit every 2 ms, N times, then _exit(0) with the writer still
 *                running. Every instant has a >= c >= b >= d >= a - 1, so a commit that is one
 *                instant restores such a state. Prints "start A B C D ok|torn".
 *   instant-quiet N   the same without rvm_commit calls: the shim's interval commits are
 *                the ones the next run checks.
 *   threads MS   for MS milliseconds: create 8 threads that malloc, write and free, join them,
 *                again; one thread of each 8 also calls rvm_commit. Prints "threads N" (threads made) and exits 0.
 *   sigusr1      installs its own SIGUSR1 handler, sets a heap counter to 41, raises SIGUSR1,
 *                waits for the commit (the log's mtime, at most 5 s), sets the counter to 42,
 *                then _exit(0). Prints "start V" (the
 *                counter it started from, 0 if none) and "handler N" (its handler's calls).
 *   big MB       writes MB MiB of heap with a new byte pattern and returns from main.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* the pair of globals (on the same page as the heap pointers: pages are fine, it is the
 * instant that matters) */
static volatile uint64_t c, d;
static volatile uint64_t *pa, *pb; /* a and b: heap words two pages apart */
static volatile uint64_t *counter; /* sigusr1 mode */
static volatile int handled;

/* nap_us -- sleep us microseconds */
static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

/* explicit_commit -- the shim's rvm_commit, if preloaded; 0 or its rvm_return_t */
static int explicit_commit(void)
{
    static int (*fn)(void);
    static int looked;
    if (!looked) {
        fn = (int (*)(void))dlsym(RTLD_DEFAULT, "rvm_commit");
        looked = 1;
    }
    return fn ? fn() : 0;
}

/* writer -- the instant's writer: the order a, c, b, d interleaves heap and globals */
static void *writer(void *arg)
{
    (void)arg;
    for (;;) {
        (*pa)++;
        c++;
        (*pb)++;
        d++;
    }
    return NULL;
}

/* run_instant -- mode "instant" (see the file comment); explicit 0: no rvm_commit calls, the
 * shim's own commits (LRVM_COMMIT=interval) are the ones checked */
static int run_instant(int n, int explicit)
{
    if (pa == NULL) { /* first run: nothing restored */
        char *blk = calloc(1, 3 * 4096);
        if (blk == NULL)
            return 1;
        pa = (volatile uint64_t *)blk;
        pb = (volatile uint64_t *)(blk + 2 * 4096);
    }
    uint64_t a = *pa, b = *pb, cc = c, dd = d;
    int ok = a >= cc && cc >= b && b >= dd && dd + 1 >= a;
    printf("start %llu %llu %llu %llu %s\n", (unsigned long long)a, (unsigned long long)b,
           (unsigned long long)cc, (unsigned long long)dd, ok ? "ok" : "torn");
    fflush(stdout);
    /* The committed instant may be in the middle of an iteration (a and c one ahead); a
   * restarted program's writer begins at the top of its loop, so the four are made equal
   * first, or the new writer's instants would no longer keep the invariant. */
    *pb = c = d = *pa;
    pthread_t t;
    if (pthread_create(&t, NULL, writer, NULL) != 0)
        return 1;
    for (int k = 0; k < n; k++) {
        nap_us(2000);
        if (explicit && explicit_commit() != 0) {
            printf("rvm_commit failed\n");
            fflush(stdout);
            _exit(1);
        }
    }
    _exit(0);
}

/* worker -- mode "threads": fills its heap cache (blocks of many sizes allocated, written,
 * freed), then exits: its exit flushes the cache back to the heap under the heap's locks */
static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char *p[64];
    for (int k = 0; k < 64; k++) {
        size_t n = 16 + (rand_r(&seed) % 2000);
        if ((p[k] = malloc(n)) == NULL)
            return NULL;
        memset(p[k], k, n);
    }
    for (int k = 0; k < 64; k++)
        free(p[k]);
    if (seed % 8 == 0)
        explicit_commit(); /* a thread's first commit, while its siblings exit */
    return NULL;
}

/* run_threads -- mode "threads" */
static int run_threads(long ms)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long made = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L >= ms)
            break;
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(made + (unsigned long)i)) !=
                0)
                return 1;
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
        made += 8;
    }
    printf("threads %lu\n", made);
    return 0;
}

/* on_usr1 -- the program's own SIGUSR1 handler */
static void on_usr1(int sig)
{
    (void)sig;
    handled++;
}

/* run_sigusr1 -- mode "sigusr1" */
static int run_sigusr1(void)
{
    printf("start %llu\n", counter ? (unsigned long long)*counter : 0ull);
    fflush(stdout);
    if (counter == NULL && (counter = calloc(1, sizeof(*counter))) == NULL)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 1;
    *counter = 41;
    const char *seg = getenv("LRVM_SEGMENT");
    char logp[4096];
    snprintf(logp, sizeof(logp), "%s.log", seg ? seg : "");
    struct stat before, now;
    int have = stat(logp, &before) == 0;
    raise(SIGUSR1);
    /* The commit the signal asked for is made by the shim's commit thread: wait until the log
   * was written (at most 5 s, on a loaded machine), and a little longer for its sync. */
    for (int k = 0; have && k < 500; k++) {
        nap_us(10000);
        if (stat(logp, &now) == 0 && (now.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                                      now.st_mtim.tv_nsec != before.st_mtim.tv_nsec))
            break;
    }
    nap_us(200000);
    *counter = 42;
    printf("handler %d\n", handled);
    fflush(stdout);
    _exit(0);
}

/* run_big -- mode "big" */
static int run_big(long mb)
{
    size_t n = (size_t)mb << 20;
    unsigned char *p = malloc(n);
    if (p == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 1);
    printf("wrote %ld MiB\n", mb);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "instant") == 0)
        return run_instant(atoi(argv[2]), 1);
    if (argc == 3 && strcmp(argv[1], "instant-quiet") == 0)
        return run_instant(atoi(argv[2]), 0);
    if (argc == 3 && strcmp(argv[1], "threads") == 0)
        return run_threads(atol(argv[2]));
    if (argc == 2 && strcmp(argv[1], "sigusr1") == 0)
        return run_sigusr1();
    if (argc == 3 && strcmp(argv[1], "big") == 0)
        return run_big(atol(argv[2]));
    fprintf(stderr,
            "usage: commit_probe instant|instant-quiet N | threads MS | sigusr1 | big MB\n");
    return 2;
}
