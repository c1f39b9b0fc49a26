/* SPDX-License-Identifier: MIT */
/*
 * locks_bench.c -- cost of an uncontended pthread_mutex_lock + unlock pair in an unmodified
 * program (run it with and without the shim: locks_bench.sh). Each thread locks and unlocks
 * its own mutex (one cache line each), N times. Prints one line per case:
 *   CASE ns_per_pair    (elapsed / (N * threads): aggregate throughput)
 * Cases: a mutex in the globals (listed in the held-lock table: the full cost), in the heap
 * (listed), on the stack (not tracked: the range test only); 1 and 4 threads.
 * Usage: locks_bench [N]   (default 10000000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct padded {
    pthread_mutex_t m;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
} __attribute__((aligned(64)));

static struct padded gm[4];
static struct padded *hm;
static long n_iter;

struct job {
    pthread_mutex_t *m; /* NULL: a mutex on this thread's stack */
};

static void *loop(void *arg)
{
    struct job *j = arg;
    struct padded local;
    pthread_mutex_t *m = j->m;
    if (!m) {
        pthread_mutex_init(&local.m, NULL);
        m = &local.m;
    }
    for (long i = 0; i < n_iter; i++) {
        pthread_mutex_lock(m);
        pthread_mutex_unlock(m);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* run -- nthr threads, mutexes from base (NULL: stack) */
static void run(const char *name, struct padded *base, int nthr)
{
    pthread_t t[4];
    struct job j[4];
    double t0 = now();
    for (int i = 0; i < nthr; i++) {
        j[i].m = base ? &base[i].m : NULL;
        pthread_create(&t[i], NULL, loop, &j[i]);
    }
    for (int i = 0; i < nthr; i++)
        pthread_join(t[i], NULL);
    printf("%s %.2f\n", name, (now() - t0) / ((double)n_iter * nthr));
}

int main(int argc, char **argv)
{
    n_iter = argc > 1 ? atol(argv[1]) : 10000000L;
    hm = aligned_alloc(64, 4 * sizeof(*hm));
    for (int i = 0; i < 4; i++) {
        pthread_mutex_init(&gm[i].m, NULL);
        pthread_mutex_init(&hm[i].m, NULL);
    }
    run("global_1thr", gm, 1);
    run("global_4thr", gm, 4);
    run("heap_1thr", hm, 1);
    run("heap_4thr", hm, 4);
    run("stack_1thr", NULL, 1);
    return 0;
}
