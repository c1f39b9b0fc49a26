/* SPDX-License-Identifier: MIT */
/*
 * observer.h -- how a layer above the engine hears of the engine events it must act on.
 *
 * The engine (LRVM: log, transactions, segments) knows nothing of the layers built on it, and
 * never calls one of them by name. Auto-tracking (track/) needs three events, so it registers a
 * struct of callbacks when it tracks its first region; until then there is nothing to tell it.
 *
 *  - committed_range(addr, len): after an explicit transaction's record is queued or durable,
 *    once per committed range (memory address, length), with no engine lock held. Tracking
 *    brings its committed images up to date so the next tracked commit does not log the same
 *    bytes again.
 *  - before_unmap(addr, len): first thing in rvm_unmap, before any engine lock. A non-success
 *    return (RVM_EUNCOMMIT: the region has uncommitted tracked changes) refuses the unmap.
 *  - before_terminate(): first thing in rvm_terminate; a non-success return refuses it.
 *
 * The engine's own threads (incremental truncation) never write application memory; a layer
 * that must stop every thread of the process for an instant (tracking's safepoint) asks
 * engine_own_thread() and leaves them running.
 */
#ifndef LRVM_ENGINE_OBSERVER_H
#define LRVM_ENGINE_OBSERVER_H

#include <stdint.h>
#include <sys/types.h>

#include <rvm/rvm.h>

struct engine_observer {
    void (*committed_range)(const void *addr, uint64_t len);
    rvm_return_t (*before_unmap)(const void *addr, uint64_t len);
    rvm_return_t (*before_terminate)(void);
};

/* engine_observe -- from now on the engine reports its events to obs (a static object that
 * outlives the process's use of the library). One observer; a second call replaces it. */
void engine_observe(const struct engine_observer *obs);
/* engine_observer -- the registered observer, or NULL */
const struct engine_observer *engine_observer(void);

/* engine_own_thread -- 1 if tid is one of the engine's own threads (they never write
 * application memory), else 0. Async-signal-safe (atomic loads only). */
int engine_own_thread(pid_t tid);
/* engine_thread_enter / engine_thread_exit -- an engine thread announces itself at start and
 * withdraws before it exits (its tid may be reused by an application thread). */
void engine_thread_enter(void);
void engine_thread_exit(void);

#endif /* LRVM_ENGINE_OBSERVER_H */
