/* SPDX-License-Identifier: MIT */
/*
 * track_api.c -- the public calls of lrvm/lrvm.h: argument checks and error reporting
 * around the tracking files (track_int.h lists them).
 */
#include <string.h>

#include "commit_override.h"
#include "track.h"

static commit_override_fn commit_override; /* commit_override.h */

/* commit_set_override -- see commit_override.h */
void commit_set_override(commit_override_fn fn)
{
    __atomic_store_n(&commit_override, fn, __ATOMIC_RELEASE);
}

/* api_ret -- the result of a call (the track_* call has put its message in rvm_errmsg already) */
static rvm_return_t api_ret(rvm_return_t rc)
{
    return rc;
}

/* rvm_track_configure -- see lrvm.h */
RVM_API rvm_return_t rvm_track_configure(const rvm_track_options_t *opts)
{
    return api_ret(track_configure(opts));
}

/* rvm_track -- see lrvm.h */
RVM_API rvm_return_t rvm_track(rvm_region_t *region)
{
    return api_ret(track_region_add(region));
}

/* rvm_untrack -- see lrvm.h */
RVM_API rvm_return_t rvm_untrack(rvm_region_t *region)
{
    return api_ret(track_region_remove(region, 0));
}

/* rvm_commit -- see lrvm.h */
RVM_API rvm_return_t rvm_commit(void)
{
    commit_override_fn fn = __atomic_load_n(&commit_override, __ATOMIC_ACQUIRE);
    if (fn != NULL)
        return fn();
    return api_ret(track_commit());
}

/* rvm_commit_mode -- see lrvm.h */
RVM_API rvm_return_t rvm_commit_mode(rvm_mode_t mode)
{
    if (mode != flush && mode != no_flush)
        return RVM_EMODE;
    pthread_mutex_lock(&tracker.mu);
    tracker.flush = mode == flush;
    pthread_mutex_unlock(&tracker.mu);
    return RVM_SUCCESS;
}

/* rvm_track_prepare_write -- see lrvm.h */
RVM_API rvm_return_t rvm_track_prepare_write(void *addr, rvm_length_t len)
{
    return api_ret(track_prepare_write(addr, len));
}

/* rvm_track_release -- see lrvm.h */
RVM_API rvm_return_t rvm_track_release(void *addr, rvm_length_t len)
{
    return api_ret(track_release(addr, len));
}

/* track_pause_counts -- see track.h */
void track_pause_counts(uint64_t over[TRACK_PAUSE_BOUNDS])
{
    pthread_mutex_lock(&tracker.mu);
    memcpy(over, tracker.pauses_over, sizeof(tracker.pauses_over));
    pthread_mutex_unlock(&tracker.mu);
}

/* track_precopied_pages -- see track.h */
uint64_t track_precopied_pages(void)
{
    pthread_mutex_lock(&tracker.mu);
    uint64_t n = tracker.precopied;
    pthread_mutex_unlock(&tracker.mu);
    return n;
}

/* rvm_track_statistics -- see lrvm.h */
RVM_API rvm_return_t rvm_track_statistics(rvm_track_statistics_t *st)
{
    if (st == NULL)
        return RVM_ESTATISTICS;
    pthread_mutex_lock(&tracker.mu);
    *st = tracker.st;
    st->twin_pages = atomic_load(&tracker.twin_pages);
    st->twin_budget_pages = tracker.budget_pages;
    pthread_mutex_unlock(&tracker.mu);
    return RVM_SUCCESS;
}
