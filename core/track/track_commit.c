/* SPDX-License-Identifier: MIT */
/*
 * track_commit.c -- rvm_commit of tracked regions: the steps around the instant (see track.h,
 * "ONE INSTANT" and "DURABILITY"). A commit checks it may run, prepares outside the pause,
 * stops the other threads and captures the dirty set (track_capture.c), releases them,
 * diffs the captured pages into the record, and hands the record to the sink.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rvm_int.h"
#include "track_int.h"

/* one commit in flight */
struct commit {
    int final;    /* the process's last commit (track_commit_final) */
    int live;     /* final on wp-async: diffed in memory while parked */
    int in_place; /* its record was written from the memory while parked */
    int diff_failed;
    track_sink_fn sink;
    size_t npages; /* pages captured */
    rvm_return_t in_place_rc;
    uint64_t in_place_logged, in_place_ns;
    uint64_t t_begin;
    void (*released)(void *arg); /* track_commit_then: called once, after the instant */
    void *released_arg;
};

/* track_commit_released -- the instant is behind us (or never comes): tell the caller once */
static void track_commit_released(struct commit *c)
{
    void (*fn)(void *) = c->released;
    c->released = NULL;
    if (fn != NULL)
        fn(c->released_arg);
}

/* track_commit -- rvm_commit (see track.h) */
rvm_return_t track_commit(void)
{
    return track_commit_mode(0);
}

/* track_commit_refused -- a reason this process cannot commit now (mu held), or success */
static rvm_return_t track_commit_refused(void)
{
    if (tracker.dirty != NULL && tracker.pid != getpid())
        /* a child of fork(): the tracker's userfaultfd and the log belong to the parent */
        return track_err(RVM_EINTERNAL,
                         "rvm_commit: tracking belongs to process %d; a child "
                         "of fork() cannot commit tracked regions (its copy of them is plain "
                         "memory)",
                         (int)tracker.pid);
    if (tracker.sticky != RVM_SUCCESS)
        return track_err(tracker.sticky,
                         "rvm_commit: an earlier tracked commit failed (%s); "
                         "restart the process to recover",
                         tracker.sticky_msg);
    return RVM_SUCCESS;
}

/* track_commit_prepare -- everything the pause must not do: allocate scratch, pick the
 * sink, populate snapshot slots (wp-async) */
static rvm_return_t track_commit_prepare(struct commit *c)
{
    if (track_record_ready() != 0)
        return track_err(RVM_ENO_MEMORY, "rvm_commit: out of memory");
    c->live = c->final && !tracker.hook_backend;
    /* a final commit streams its record from the record buffer to the log (no second copy
     * in core); the threads are released by then, and the buffer is ours */
    c->sink = tracker.sink != NULL ? tracker.sink
              : c->final           ? track_core_sink_stream
                                   : track_core_sink;
    if (c->live && track_file_page_ready() != 0)
        return track_err(RVM_ENO_MEMORY, "rvm_commit: out of memory");
    track_record_clear();
    /* before the precopy too: its pages take their file page from this (REFILING) */
    if (tracker.refile)
        tracker.applied_seen = track_core_applied_seq();
    if (!tracker.hook_backend && !c->live && !tracker.warmed)
        track_precopy();
    tracker.warmed = 0;
    return RVM_SUCCESS;
}

/* track_commit_warm -- see track.h */
void track_commit_warm(void)
{
    pthread_mutex_lock(&tracker.mu);
    if (tracker.dirty != NULL && !tracker.hook_backend && track_nregions() > 0) {
        if (tracker.refile)
            tracker.applied_seen = track_core_applied_seq();
        track_precopy();
        tracker.warmed = 1;
    }
    pthread_mutex_unlock(&tracker.mu);
}

/*
 * track_commit_in_place -- ZERO-COPY FINAL COMMIT (threads parked, wp-async). If core can
 * write a record now without waiting for any parked thread (track_core_stream_ready: its
 * locks are free, no log writer, nothing queued, the truncation daemon runs), the ranges
 * point at the tracked memory itself and the record is written from there before the
 * threads are released: nobody can change those bytes meanwhile (the parked threads execute
 * nothing; the truncation daemon writes segment files, never tracked memory; threads the
 * safepoint skipped are assumed not to write tracked memory, as for every commit). The exit
 * commit then holds no copy of the changed bytes at all; the price is a pause as long as the
 * write (it is the process's last commit). Otherwise the changed bytes are copied into the
 * record and written after the release.
 */
static void track_commit_in_place(struct commit *c)
{
    c->in_place = tracker.sink == NULL && track_core_stream_ready();
    track_rec.in_place = c->in_place;
    c->diff_failed = track_diff_live(c->npages) != 0;
    if (c->in_place && !c->diff_failed && track_rec.nranges > 0 &&
        !track_core_stream_fits(track_rec.ranges, track_rec.nranges)) {
        /* the log would have to be truncated first: copy (mmap only) and write after the
         * release, as without zero-copy */
        c->diff_failed = track_record_materialize() != 0;
        c->in_place = 0;
    }
    if (!c->in_place)
        track_rec.in_place = 0;
    if (c->in_place && !c->diff_failed && track_rec.nranges > 0) {
        uint64_t ts = track_now_ns();
        c->in_place_rc = track_core_sink_stream(NULL, track_rec.ranges, track_rec.nranges, 1,
                                                &c->in_place_logged);
        c->in_place_ns = track_now_ns() - ts;
    }
}

/* track_commit_pause_stats -- account one pause of t_pause ns */
static void track_commit_pause_stats(const struct track_safepoint_stats *ss, size_t np,
                                     uint64_t t_pause)
{
    tracker.st.last_threads = ss->nthreads;
    tracker.st.last_skipped = ss->nskipped;
    tracker.st.last_pages = np;
    tracker.st.pages_dirtied += np;
    tracker.st.last_pause_ns = t_pause;
    tracker.st.total_pause_ns += t_pause;
    if (t_pause > tracker.st.max_pause_ns)
        tracker.st.max_pause_ns = t_pause;
    static const uint64_t bound_ms[TRACK_PAUSE_BOUNDS] = TRACK_PAUSE_MS;
    for (int i = 0; i < TRACK_PAUSE_BOUNDS && t_pause > bound_ms[i] * 1000000u; i++)
        tracker.pauses_over[i]++;
}

/* track_commit_instant -- stop the other threads, capture the dirty set, release them */
static rvm_return_t track_commit_instant(struct commit *c)
{
    uint64_t t_halt = track_now_ns(); /* the pause starts here (the prefault is not in it) */
    struct track_safepoint_stats ss = {0, 0, 0};
    pthread_rwlock_wrlock(&tracker.kw);
    int e = track_safepoint_stop(&ss);
    if (e != 0) {
        pthread_rwlock_unlock(&tracker.kw);
        return track_err(RVM_EINTERNAL, "rvm_commit: %s", track_safepoint_message());
    }
    uint64_t t_stop = track_now_ns();
    e = track_capture(&c->npages, c->live);
    if (e == 0 && tracker.hook_backend)
        track_safepoint_each(track_robust_thread, NULL); /* ROBUST MUTEXES (track.h) */
    if (e == 0 && c->live)
        track_commit_in_place(c);
    /* Hook backends trim in the pause, before the release: a released thread's first write
     * to a captured page copies it into a slot the trim sees unused until the copy is
     * marked (track_hook), and a trim then would drop the copy and the commit would log
     * zeros for that page. (Threads the safepoint skipped are assumed not to write
     * tracked memory, here as for the instant itself.) */
    if (e == 0 && tracker.hook_backend)
        track_trim();
    uint64_t t_capt = track_now_ns();
    track_safepoint_release();
    if (e == 0)
        track_precopy_taken();
    tracker.st.last_stop_ns = t_stop - t_halt;
    tracker.st.last_capture_ns = t_capt - t_stop;
    pthread_rwlock_unlock(&tracker.kw);
    uint64_t t_pause = track_now_ns() - t_halt;
    track_commit_released(c);
    if (e != 0)
        return track_err(RVM_EINTERNAL, "rvm_commit: collecting dirty pages failed: %s (%s)",
                         strerror(e), vmp_dirty_errmsg(tracker.dirty));
    track_commit_pause_stats(&ss, c->npages, t_pause);
    return RVM_SUCCESS;
}

/* track_commit_diff -- build the record after the release (a live commit has built it) */
static rvm_return_t track_commit_diff(struct commit *c)
{
    if (!tracker.hook_backend && !c->live)
        track_trim();
    if (!c->live) {
        track_record_clear();
        /* wp-async: every captured page's snapshot (pool or slot) stays as it is until the
         * next capture (no hook writes it; explicit commits wait for tracker.mu), so the record's
         * ranges can point at the snapshots instead of copying the changed bytes again */
        track_rec.in_place = !tracker.hook_backend;
        /* pages with no committed image whose records the daemon has not applied yet
         * (REFILING in track_twin.c): apply them now rather than log those pages whole */
        if (tracker.file_wanted > tracker.applied_seen)
            tracker.applied_seen = track_core_apply_through(tracker.file_wanted);
        c->diff_failed = track_diff_all(c->npages) != 0;
    }
    if (!c->diff_failed)
        return RVM_SUCCESS;
    /* twins were already advanced for part of the pages: the tracked state no longer
     * matches the log, so this is sticky */
    tracker.sticky = RVM_ENO_MEMORY;
    snprintf(tracker.sticky_msg, sizeof(tracker.sticky_msg), "out of memory for a %zu-byte record",
             track_rec.data_len);
    return track_err(RVM_ENO_MEMORY, "rvm_commit: out of memory building the record");
}

/* track_commit_write -- hand the record to the sink (or account the one written in place);
 * a failure is sticky: twins were advanced before the record was durable */
static rvm_return_t track_commit_write(struct commit *c)
{
    uint64_t bytes = track_record_finish();
    tracker.st.bytes_logged += bytes;
    tracker.st.ranges_logged += track_rec.nranges;
    uint64_t t_sink = track_now_ns(), logged = c->in_place_logged;
    rvm_return_t rc;
    if (c->in_place) {
        rc = c->in_place_rc;
        tracker.st.last_durable_ns = c->in_place_ns;
        tracker.zero_copy_commits++;
    } else {
        /* a big durable record goes to the log straight from our memory (no copy in
         * core's queue: txn_commit_stream); a small one through the queue, where it can
         * share an fdatasync with concurrent explicit commits */
        track_sink_fn sink = c->sink;
        if (sink == track_core_sink && tracker.flush && bytes >= TRACK_STREAM_MIN)
            sink = track_core_sink_stream;
        rc = sink(tracker.sink_arg, track_rec.ranges, track_rec.nranges, tracker.flush, &logged);
        tracker.st.last_durable_ns = track_now_ns() - t_sink;
    }
    tracker.st.total_durable_ns += tracker.st.last_durable_ns;
    if (rc != RVM_SUCCESS) {
        tracker.sticky = rc;
        snprintf(tracker.sticky_msg, sizeof(tracker.sticky_msg),
                 "the log refused a %zu-range record: "
                 "%s: %.160s",
                 track_rec.nranges, rvm_return(rc), rvm_errmsg);
        return track_err(rc,
                         "rvm_commit: %s; every later rvm_commit fails: restart the "
                         "process to recover",
                         tracker.sticky_msg);
    }
    tracker.st.record_bytes += logged;
    tracker.st.n_commits++;
    return RVM_SUCCESS;
}

/* track_commit_locked -- the commit's steps (mu held) */
static rvm_return_t track_commit_locked(struct commit *c)
{
    rvm_return_t rc = track_commit_refused();
    if (rc != RVM_SUCCESS)
        return rc;
    if (tracker.dirty == NULL || track_nregions() == 0) {
        tracker.st.n_empty_commits++;
        return RVM_SUCCESS;
    }
    if ((rc = track_commit_prepare(c)) != RVM_SUCCESS ||
        (rc = track_commit_instant(c)) != RVM_SUCCESS || (rc = track_commit_diff(c)) != RVM_SUCCESS)
        return rc;
    if (track_rec.nranges == 0) {
        tracker.st.n_empty_commits++;
        tracker.st.last_durable_ns = 0;
    } else if ((rc = track_commit_write(c)) != RVM_SUCCESS) {
        return rc;
    }
    track_refile(c->npages);
    track_record_shrink();
    tracker.st.last_commit_ns = track_now_ns() - c->t_begin;
    tracker.st.total_commit_ns += tracker.st.last_commit_ns;
    return RVM_SUCCESS;
}

/* track_commit_then -- see track.h */
rvm_return_t track_commit_then(int final, void (*released)(void *arg), void *arg)
{
    pthread_mutex_lock(&tracker.mu);
    struct commit c = {
        .final = final, .t_begin = track_now_ns(), .released = released, .released_arg = arg};
    rvm_return_t rc = track_commit_locked(&c);
    track_commit_released(&c); /* no instant was taken: still exactly once */
    pthread_mutex_unlock(&tracker.mu);
    return rc;
}

/* track_commit_mode -- rvm_commit; final: see track.h (track_commit_final) */
rvm_return_t track_commit_mode(int final)
{
    return track_commit_then(final, NULL, NULL);
}
