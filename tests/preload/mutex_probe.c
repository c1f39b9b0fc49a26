/* SPDX-License-Identifier: MIT */
/*
 * mutex_probe.c -- an unmodified multi-threaded program (no lrvm calls) whose invariant spans
 * two heap words updated under one mutex: x == y whenever the mutex is free. Between the two
 * stores a thread spins, and sometimes mallocs and frees or waits on a condition variable,
 * so that a commit taken at an arbitrary instant often sees x != y. Usage:
 *   mutex_probe init          allocates the pair (x = y = 0), prints its address, exits
 *   mutex_probe run ADDR      prints "state X Y ok" or "state X Y broken" for the pair at
 *                             ADDR, repairs it (y = x), then updates it from 4 threads (main and 3 more)
 *                             until killed (the
 *                             threads also wait on a condition variable now and then)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pair {
    volatile uint64_t x;
    char pad[8192]; /* x and y on different pages */
    volatile uint64_t y;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct pair *pr;
static int busy; /* "busy": no naps, short gaps: the mutex is almost always held */

/* worker -- bursts of 50 critical sections, then 2 ms asleep: instants with no mutex held
 * are common (all asleep), and so are instants inside a half-made update (in a burst) */
static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (;;) {
        for (int k = 0; k < 50; k++) {
            pthread_mutex_lock(&mu);
            pr->x++;
            for (volatile int i = 0; i < 2000; i++)
                ;
            if ((rand_r(&seed) & 255) == 0) /* rarely: a commit holds the heap locks throughout */
                free(malloc(64 + (rand_r(&seed) & 4095)));
            pr->y++;
            if ((rand_r(&seed) & 63) == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100000;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&cv, &mu, &ts);
            }
            pthread_cond_signal(&cv);
            pthread_mutex_unlock(&mu);
            if (busy)
                for (volatile int i = 0; i < 500; i++)
                    ;
        }
        if (busy)
            continue;
        struct timespec nap = {0, 2000000L};
        nanosleep(&nap, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "init") == 0) {
        pr = calloc(1, sizeof(*pr));
        printf("%p\n", (void *)pr);
        return 0;
    }
    busy = argc >= 3 && strcmp(argv[1], "busy") == 0;
    if (argc < 3 || (strcmp(argv[1], "run") != 0 && !busy)) {
        fprintf(stderr, "usage: mutex_probe init | run ADDR [MS] | busy ADDR [MS]\n");
        return 2;
    }
    pr = (struct pair *)(uintptr_t)strtoull(argv[2], NULL, 16);
    printf("state %llu %llu %s\n", (unsigned long long)pr->x, (unsigned long long)pr->y,
           pr->x == pr->y ? "ok" : "broken");
    pr->y = pr->x; /* repair: the next run judges only this run's commits */
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    if (argc >= 4) {
        struct timespec ts = {atoi(argv[3]) / 1000, (atoi(argv[3]) % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) /* commits interrupt it (EINTR): sleep the rest */
            ;
        pthread_mutex_lock(&mu); /* exit with the invariant intact (x == y) */
        printf("end %llu %llu\n", (unsigned long long)pr->x, (unsigned long long)pr->y);
        exit(0);
    }
    /* main works too rather than block in pthread_join: a thread in pthread_join was seen not
   * to take the safepoint signal promptly (see README, "Mutex-safe commits") */
    worker((void *)(uintptr_t)99);
    return 0;
}
