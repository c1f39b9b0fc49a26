/* SPDX-License-Identifier: MIT */
/*
 * forkgate.c -- fork() and commits: a fork waits for at most one commit, and a commit only for
 * the forks already under way.
 *
 * The bug this fixes (tests/preload/KNOWN-FAILURES.md #1, "fork during interval commits
 * deadlocks"): it was starvation, not a lock-order deadlock. fork()'s prepare handler
 * (shimheap.c) must take heap_lock_all, which a commit then held for its whole duration
 * (persist.c; now only until its instant is captured). On a loaded machine a commit of a busy
 * 9-thread process took longer than the 50 ms period (measured: 68 ms average, pauses up to
 * 260 ms, because stopping threads waits for each to be scheduled), so the commit thread ran
 * back to back: it released the heap locks and took them again within microseconds, while
 * the forking thread, woken from its futex wait, still had to be scheduled. glibc mutexes are not fair (the running thread
 * barges in), so every fork was a lottery against an ever-ready committer: seconds per fork
 * alone, unbounded under load (killed after 60 s and 200 s in two suite runs).
 *
 * The gate: the prepare handler first announces the fork, then takes the heap locks. A commit
 * checks the gate before it takes the heap locks and waits until every fork announced before
 * it arrived is done. A commit that passed the gate just before an announcement is the only
 * one that fork waits for; and forks announced after a commit arrived do not extend its wait,
 * so a program that forks all the time cannot starve commits either (FIFO by arrival: each
 * side waits for at most what was already there). Lock order stays acyclic: a commit waits
 * here holding only the shim's commit lock, which no fork handler takes. A failed fork()
 * runs the parent handler too, so every announcement is matched.
 */
#include "shim.h"

#include <pthread.h>
#include <stdint.h>

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static uint64_t gate_announced; /* forks that ran their prepare handler */
static uint64_t gate_done;      /* forks that ran their parent handler */
static int commit_tail;         /* a commit is past its instant: heap locks dropped, the
                                   * tracker and liblrvm still busy (shim_forkgate_tail_*) */

/* shim_forkgate_prepare -- fork's prepare handler, before the heap locks: announce */
void shim_forkgate_prepare(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_announced++;
    pthread_mutex_unlock(&gate_mu);
}

/* shim_forkgate_parent -- the fork is done (parent, or fork failed): let waiting commits go */
void shim_forkgate_parent(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_done++;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

/* shim_forkgate_child -- in the child only this thread exists: fresh gate, nobody waiting */
void shim_forkgate_child(void)
{
    pthread_mutex_init(&gate_mu, NULL);
    pthread_cond_init(&gate_cv, NULL);
    gate_announced = gate_done = 0;
    commit_tail = 0; /* that commit's thread does not exist here */
}

/* shim_forkgate_wait -- a commit, before heap_lock_all: wait for the forks announced so far */
void shim_forkgate_wait(void)
{
    pthread_mutex_lock(&gate_mu);
    uint64_t target = gate_announced;
    while (gate_done < target)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

/*
 * THE COMMIT'S TAIL. A commit holds the heap locks only until the tracker has captured its
 * instant (persist.c); the diff and the log write that follow hold the tracker's mutex and
 * liblrvm's locks. A fork in that tail would give the child those locks held by a thread it
 * does not have: its first free() that returns memory to the kernel (rvm_track_release) would
 * wait forever. So fork's prepare handler, once it holds the program heap's locks (no new
 * commit can reach an instant then), waits for the tail in flight to end before it takes the
 * internal heap's locks (which the tail may need: liblrvm allocates from that heap).
 */

/* shim_forkgate_tail_begin -- a commit, in place of dropping the heap locks: from now until
 * shim_forkgate_tail_end, forks wait */
void shim_forkgate_tail_begin(void)
{
    pthread_mutex_lock(&gate_mu);
    commit_tail = 1;
    pthread_mutex_unlock(&gate_mu);
}

/* shim_forkgate_tail_end -- the commit holds no tracker or liblrvm lock any more */
void shim_forkgate_tail_end(void)
{
    pthread_mutex_lock(&gate_mu);
    commit_tail = 0;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

/* shim_forkgate_tail_wait -- fork's prepare handler, holding the program heap's locks: wait
 * for a commit's tail to end */
void shim_forkgate_tail_wait(void)
{
    pthread_mutex_lock(&gate_mu);
    while (commit_tail)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}
