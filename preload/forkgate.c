/*
 * forkgate.c -- fork() and commits: a fork waits for at most one commit, never forever.
 *
 * The bug this fixes (tests/preload/KNOWN-FAILURES.md #1, "fork during interval commits
 * deadlocks"): it was starvation, not a lock-order deadlock. fork()'s prepare handler
 * (shimheap.c) must take heap_lock_all, which a commit holds for its whole duration
 * (persist.c). On a loaded machine a commit of a busy 9-thread process took longer than the
 * 50 ms period (measured: 68 ms average, pauses up to 260 ms, because stopping threads waits
 * for each to be scheduled), so the commit thread ran back to back: it released the heap
 * locks and took them again within microseconds, while the forking thread, woken from its
 * futex wait, still had to be scheduled. glibc mutexes are not fair (the running thread
 * barges in), so every fork was a lottery against an ever-ready committer: seconds per fork
 * alone, unbounded under load (killed after 60 s and 200 s in two suite runs).
 *
 * The gate: the prepare handler first announces the fork (gate_forks), then takes the heap
 * locks. A commit checks the gate before it takes the heap locks and waits while a fork is
 * announced. A commit that passed the gate just before the announcement is the only one the
 * fork waits for. Lock order stays acyclic: a commit waits here holding only the shim's
 * commit lock, which no fork handler takes.
 */
#include "shim.h"

#include <pthread.h>

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_forks;   /* forks between their prepare and parent handlers */

/* shim_forkgate_prepare -- fork's prepare handler, before the heap locks: announce */
void shim_forkgate_prepare(void)
{
  pthread_mutex_lock(&gate_mu);
  gate_forks++;
  pthread_mutex_unlock(&gate_mu);
}

/* shim_forkgate_parent -- the fork is done (parent): let waiting commits go */
void shim_forkgate_parent(void)
{
  pthread_mutex_lock(&gate_mu);
  if (--gate_forks == 0)
    pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

/* shim_forkgate_child -- in the child only this thread exists: fresh gate, nobody waiting */
void shim_forkgate_child(void)
{
  pthread_mutex_init(&gate_mu, NULL);
  pthread_cond_init(&gate_cv, NULL);
  gate_forks = 0;
}

/* shim_forkgate_wait -- a commit, before heap_lock_all: wait while a fork is announced */
void shim_forkgate_wait(void)
{
  pthread_mutex_lock(&gate_mu);
  while (gate_forks > 0)
    pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}
