/* SPDX-License-Identifier: MIT */
/*
 * locks_probe.c -- an unmodified program (no lrvm calls) whose mutexes and condition variable
 * lie in its globals and its heap and are HELD / WAITED ON when a commit captures them.
 * Usage:
 *   locks_probe exit   check; then thread H locks gmu, grob (robust) and the heap mutex and
 *                      sets the data they protect, thread W waits on gcv; main prints
 *                      "ready" and calls exit(0): the exit commit captures them held
 *   locks_probe hold   the same, but main never exits: it dirties a global every ms so each
 *                      interval commit writes a record (the test SIGKILLs it)
 * "ready MARKER": MARKER is a global string the holder sets last, under its locks: a commit
 * record (in the log) that contains it contains the held state.
 * The check, first thing in every run, uses the objects as the last commit left them:
 *   prints "run N data G H" (N: this run's number, G and H: the data the last run set under
 *   the locks), locks and unlocks gmu and the heap mutex, locks grob ("robust eownerdead"
 *   when its holder vanished: then pthread_mutex_consistent), times out a 10 ms wait on gcv,
 *   wakes a waiter of gcv with pthread_cond_signal and another with pthread_cond_broadcast,
 *   and prints "checked". A lock or signal that hangs never prints it (the test's timeout).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hobj {
    pthread_mutex_t mu;
    long data;
};

static pthread_mutex_t gmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t gmu2 = PTHREAD_MUTEX_INITIALIZER; /* gcv's mutex */
static pthread_cond_t gcv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t grob; /* robust, initialised in the first run */
static struct hobj *hp;
static long runs, gdata;
static volatile long ticks;
static volatile int held, woken, waiting;
static char marker[64]; /* set last under the locks: a commit that has it has the rest */

static void die(const char *what, int rc)
{
    printf("FAIL %s: %s\n", what, strerror(rc));
    exit(1);
}

/* waiter -- wait on gcv until woken (check) */
static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gmu2);
    waiting = 1;
    while (!woken)
        pthread_cond_wait(&gcv, &gmu2);
    waiting = 0;
    pthread_mutex_unlock(&gmu2);
    return NULL;
}

/* wake_one -- start a waiter on gcv and wake it with signal (bcast 0) or broadcast */
static void wake_one(int bcast)
{
    pthread_t t;
    woken = 0;
    pthread_create(&t, NULL, waiter, NULL);
    for (;;) {
        pthread_mutex_lock(&gmu2);
        if (waiting)
            break; /* it holds gmu2 until it waits: it is waiting now */
        pthread_mutex_unlock(&gmu2);
        usleep(1000);
    }
    woken = 1;
    if (bcast)
        pthread_cond_broadcast(&gcv);
    else
        pthread_cond_signal(&gcv);
    pthread_mutex_unlock(&gmu2);
    pthread_join(t, NULL);
}

static void check(void)
{
    int rc;
    runs++;
    if (!hp) {
        hp = calloc(1, sizeof(*hp));
        pthread_mutex_init(&hp->mu, NULL);
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&grob, &a);
    }
    printf("run %ld data %ld %ld\n", runs, gdata, hp->data);
    if ((rc = pthread_mutex_lock(&gmu)) || (rc = pthread_mutex_unlock(&gmu)))
        die("gmu", rc);
    if ((rc = pthread_mutex_lock(&hp->mu)) || (rc = pthread_mutex_unlock(&hp->mu)))
        die("heap mutex", rc);
    rc = pthread_mutex_lock(&grob);
    if (rc == EOWNERDEAD) {
        printf("robust eownerdead\n");
        rc = pthread_mutex_consistent(&grob);
    }
    if (rc || (rc = pthread_mutex_unlock(&grob)))
        die("grob", rc);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&gmu2);
    rc = pthread_cond_timedwait(&gcv, &gmu2, &ts);
    pthread_mutex_unlock(&gmu2);
    if (rc != ETIMEDOUT)
        die("timed wait on gcv (expected a timeout)", rc);
    wake_one(0);
    wake_one(1);
    printf("checked\n");
}

/* holder -- takes the three mutexes, sets the data they protect, and keeps them */
static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gmu);
    pthread_mutex_lock(&hp->mu);
    pthread_mutex_lock(&grob);
    gdata = runs * 10 + 1;
    hp->data = runs * 10 + 2;
    /* every byte differs from the last run's marker: the log records changed bytes only, and
   * the test looks for the whole string there */
    for (int i = 0; i < 48; i++)
        marker[i] = (char)('a' + (runs + i) % 26);
    held = 1;
    for (;;)
        pause();
    return NULL;
}

/* forever_waiter -- waits on gcv for ever (its mutex is free while it waits) */
static void *forever_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gmu2);
    waiting = 1;
    for (;;)
        pthread_cond_wait(&gcv, &gmu2);
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2 || (strcmp(argv[1], "exit") != 0 && strcmp(argv[1], "hold") != 0)) {
        fprintf(stderr, "usage: locks_probe exit | hold\n");
        return 2;
    }
    check();
    pthread_t h, w;
    waiting = 0;
    held = 0; /* globals come back too: these flags hold the last run's values */
    pthread_create(&h, NULL, holder, NULL);
    pthread_create(&w, NULL, forever_waiter, NULL);
    while (!held || !waiting)
        usleep(1000);
    pthread_mutex_lock(&gmu2); /* W released it inside its wait: it is waiting */
    pthread_mutex_unlock(&gmu2);
    printf("ready %s\n", marker);
    if (strcmp(argv[1], "exit") == 0)
        exit(0);
    for (;;) {
        ticks++;
        usleep(1000);
    }
}
