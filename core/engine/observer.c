/* SPDX-License-Identifier: MIT */
/*
 * observer.c -- the registered observer of engine events, and the engine's own threads
 * (see observer.h).
 */
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "observer.h"

static const struct engine_observer *_Atomic observer;

/* A few slots: one truncation thread per log, and a log being replaced while the old
 * thread exits. A thread that finds no slot free is simply stopped by safepoints (slower,
 * never wrong). */
#define ENGINE_THREADS_MAX 8
static _Atomic pid_t own_threads[ENGINE_THREADS_MAX];

void engine_observe(const struct engine_observer *obs)
{
    atomic_store_explicit(&observer, obs, memory_order_release);
}

const struct engine_observer *engine_observer(void)
{
    return atomic_load_explicit(&observer, memory_order_acquire);
}

int engine_own_thread(pid_t tid)
{
    for (int i = 0; i < ENGINE_THREADS_MAX; i++)
        if (atomic_load(&own_threads[i]) == tid)
            return 1;
    return 0;
}

/* slot_swap -- replace the first slot holding `from` by `to` */
static void slot_swap(pid_t from, pid_t to)
{
    for (int i = 0; i < ENGINE_THREADS_MAX; i++) {
        pid_t expect = from;
        if (atomic_compare_exchange_strong(&own_threads[i], &expect, to))
            return;
    }
}

void engine_thread_enter(void)
{
    slot_swap(0, (pid_t)syscall(SYS_gettid));
}

void engine_thread_exit(void)
{
    slot_swap((pid_t)syscall(SYS_gettid), 0);
}
