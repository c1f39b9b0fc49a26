/* SPDX-License-Identifier: MIT */
/*
 * trunc.c -- truncation (epoch and incremental) and recovery.
 *
 * Incremental truncation: a background thread wakes when the log is fuller than the
 * `truncate` threshold (or a committer waits for space) and applies the OLDEST
 * durable records, a slice at a time, advancing the head after each slice while new
 * commits keep appending at the tail. A committer that finds the log truly full waits
 * only until the next slice frees space. Epoch truncation (rvm_truncate) applies
 * everything. Both use trunc_step, and so does recovery's apply (apply.c).
 *
 * Crash safety of a step, in the order it happens:
 *   1. pwrite new values into segments  -- crash: status still names the old head;
 *      recovery re-applies these records (idempotent).
 *   2. fsync each written segment       -- same.
 *   3. write the status (other slot) with the new head, fdatasync -- crash during it:
 *      the torn slot fails its CRC, the other slot names the old head: as above.
 *   4. only now lower `used`, so writers may overwrite the freed records.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rvm_int.h"
#include "sysio.h"
#include "apply_pass.h"
#include "observer.h"

/* how often the daemon applies ahead when a tracker asked for it (trunc_set_apply_ahead):
 * a twin can be dropped this long after its page's last record became durable */
#define APPLY_AHEAD_MS 10
/* an applied span this large is made durable at once (fsync + head move): the most a restart
 * re-applies of it. At ~40 MB/s, the rate of scattered 500-byte records, 16 MiB is ~0.4 s */
#define SPAN_DURABLE ((uint64_t)16 << 20)
/* how long trunc_apply_through waits for trunc_mu before it gives up */
#define APPLY_THROUGH_WAIT_MS 10

/*
 * THE APPLIED SPAN (rvm_int.h): records whose new values are already in the segments' page
 * cache but not yet durable there. Recovery leaves one (it applies every live record at
 * start), and so does applying ahead (trunc_apply_ahead), which the tracker asks for: its lazy
 * twins take a page's committed image from the segment file, which is only true once every
 * record naming the page is in the file. Applying them again would only rewrite the same
 * bytes -- worse, pass by pass it would show older committed values again between two
 * passes, to anyone reading the file meanwhile (the tracker does). So the step that takes
 * the span writes nothing: it fsyncs the segments the span was applied to (they are still
 * marked dirty) and moves the head past the whole span at once, whatever the slice limit
 * (the cost is the fsync, not the bytes). Crash before the status write: the head still
 * names the span and the next recovery applies it again, as before. Crash-safety of applying
 * ahead itself is truncation's: only durable (committed) records reach the segments, so a
 * segment page the kernel writes back early holds committed bytes only (no-steal), and
 * recovery re-applies every live record over it (idempotent redo).
 */
static int span_live(const struct log *lg)
{
    return lg->applied_seq != 0 && lg->applied_seq >= lg->head_seq;
}

/* trunc_applied_span -- the step that takes the applied span (starting at head seq) */
static void trunc_applied_span(const struct log *lg, uint64_t seq, struct apply_res *res)
{
    memset(res, 0, sizeof(*res));
    res->end_off = lg->applied_end;
    res->next_seq = lg->applied_seq + 1;
    res->consumed = lg->applied_bytes;
    res->nrec = lg->applied_seq + 1 - seq;
}

/* unreadable -- an apply from seq that stopped before max and before its limit found no
 * valid record where a durable one must be */
static rvm_return_t unreadable(const struct log *lg, const struct apply_res *res)
{
    return err_io(EIO,
                  "log %s: record %llu at area offset %llu is unreadable although it "
                  "was made durable; the log file was damaged underneath lrvm",
                  lg->path, (unsigned long long)res->next_seq, (unsigned long long)res->end_off);
}

/* trunc_step -- apply up to `limit` bytes of the oldest durable records, move the head */
rvm_return_t trunc_step(struct log *lg, uint64_t limit, int *progress)
{
    *progress = 0;
    if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
        return RVM_EIO;
    pthread_mutex_lock(&lg->trunc_mu);
    pthread_mutex_lock(&lg->mu);
    uint64_t off = lg->head_off, seq = lg->head_seq, max = lg->durable_seq;
    pthread_mutex_unlock(&lg->mu);
    if (seq > max && !span_live(lg)) {
        pthread_mutex_unlock(&lg->trunc_mu);
        return RVM_SUCCESS;
    }
    uint64_t t0 = now_usec();
    struct apply_res res;
    rvm_return_t rc = RVM_SUCCESS;
    int applied = span_live(lg);
    if (applied)
        trunc_applied_span(lg, seq, &res); /* applied already: only the barrier is left */
    else
        rc = apply_log(lg, off, seq, max, limit, &res);
    if (rc == RVM_SUCCESS && !applied && res.next_seq <= max && res.consumed < limit)
        rc = unreadable(lg, &res);
    if (rc == RVM_SUCCESS)
        rc = apply_sync_segments(); /* barrier: segments before head */
    if (rc == RVM_SUCCESS && res.nrec > 0) {
        pthread_mutex_lock(&lg->status_mu);
        rc = log_status_write(lg, res.end_off, res.next_seq);
        pthread_mutex_unlock(&lg->status_mu);
    }
    if (rc == RVM_SUCCESS && res.nrec > 0) {
        pthread_mutex_lock(&lg->mu);
        lg->head_off = res.end_off;
        lg->head_seq = res.next_seq;
        lg->used -= res.consumed;
        lg->applied_seq = 0;
        lg->applied_urgent = 0;
        uint64_t dt = now_usec() - t0;
        engine.st.last_truncation_time = (rvm_length_t)(dt / 1000);
        engine.st.last_tree_apply_time = (rvm_length_t)(dt / 1000);
        engine.st.tot_truncation_time.tv_usec += (long)dt;
        engine.st.tot_truncation_time.tv_sec += engine.st.tot_truncation_time.tv_usec / 1000000;
        engine.st.tot_truncation_time.tv_usec %= 1000000;
        static const rvm_length_t dist[] = {truncation_times_dist};
        stats_hist(engine.st.tot_truncation_times, truncation_times_len, dist, dt / 1000000);
        engine.st.log_dev_cur = lg->used * 100 / lg->area_len;
        stats_end_epoch(&engine.st);
        pthread_cond_broadcast(&lg->space_cv);
        pthread_mutex_unlock(&lg->mu);
        *progress = 1;
    }
    pthread_mutex_unlock(&lg->trunc_mu);
    if (rc != RVM_SUCCESS) {
        pthread_mutex_lock(&lg->mu);
        pthread_cond_broadcast(&lg->space_cv);
        pthread_mutex_unlock(&lg->mu);
    }
    return rc;
}

/* trunc_recovered -- if an applied span is live (recovery's, or applied ahead), take its
 * step now: fsync the segments and move the head, applying nothing. For a process that ends
 * before its daemon took that step (or runs none): otherwise the next start would apply the
 * same records again. */
rvm_return_t trunc_recovered(struct log *lg)
{
    pthread_mutex_lock(&lg->trunc_mu);
    int pending = span_live(lg);
    pthread_mutex_unlock(&lg->trunc_mu);
    /* limit 0: if the daemon took the step meanwhile, this one applies no record */
    int progress;
    return pending ? trunc_step(lg, 0, &progress) : RVM_SUCCESS;
}

/* apply_ahead_locked -- trunc_apply_ahead with trunc_mu held (released on return) */
static rvm_return_t apply_ahead_locked(struct log *lg, uint64_t limit)
{
    pthread_mutex_lock(&lg->mu);
    lg->trunc_brief = 1;
    int live = span_live(lg);
    uint64_t off = live ? lg->applied_end : lg->head_off;
    uint64_t seq = live ? lg->applied_seq + 1 : lg->head_seq, max = lg->durable_seq;
    pthread_mutex_unlock(&lg->mu);
    rvm_return_t rc = RVM_SUCCESS;
    struct apply_res res;
    if (seq <= max)
        rc = apply_log(lg, off, seq, max, limit, &res);
    if (seq <= max && rc == RVM_SUCCESS && res.next_seq <= max && res.consumed < limit)
        rc = unreadable(lg, &res);
    if (seq <= max && rc == RVM_SUCCESS && res.nrec > 0) {
        pthread_mutex_lock(&lg->mu);
        if (!live) {
            lg->applied_bytes = 0;
            lg->applied_urgent = 0;
        }
        lg->applied_end = res.end_off;
        lg->applied_bytes += res.consumed;
        lg->applied_seq = res.next_seq - 1;
        pthread_mutex_unlock(&lg->mu);
    }
    pthread_mutex_lock(&lg->mu);
    lg->trunc_brief = 0;
    pthread_mutex_unlock(&lg->mu);
    pthread_mutex_unlock(&lg->trunc_mu);
    return rc;
}

/* trunc_apply_ahead -- see rvm_int.h and THE APPLIED SPAN above */
rvm_return_t trunc_apply_ahead(struct log *lg, uint64_t limit)
{
    if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
        return RVM_EIO;
    pthread_mutex_lock(&lg->trunc_mu);
    return apply_ahead_locked(lg, limit);
}

/* trunc_set_apply_ahead -- see rvm_int.h */
int trunc_set_apply_ahead(struct log *lg, int on)
{
    pthread_mutex_lock(&lg->mu);
    if (lg->apply_ahead != on) {
        lg->apply_ahead = on;
        pthread_cond_broadcast(&lg->trunc_cv);
    }
    int daemon = lg->trunc_running && lg->truncate_pct > 0;
    pthread_mutex_unlock(&lg->mu);
    return daemon;
}

/* trunc_applied_seq -- see rvm_int.h */
uint64_t trunc_applied_seq(struct log *lg)
{
    pthread_mutex_lock(&lg->mu);
    uint64_t v = span_live(lg) ? lg->applied_seq : lg->head_seq - 1;
    pthread_mutex_unlock(&lg->mu);
    return v;
}

/* ahead_pending -- durable records past the applied span (mu held) */
static int ahead_pending(const struct log *lg)
{
    return lg->durable_seq > (span_live(lg) ? lg->applied_seq : lg->head_seq - 1);
}

/* deadline -- CLOCK_REALTIME ms milliseconds from now (for the timed waits) */
static struct timespec deadline(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* timed_wait -- wait on the daemon's condition for at most ms milliseconds (mu held) */
static void timed_wait(struct log *lg, long ms)
{
    struct timespec ts = deadline(ms);
    pthread_cond_timedwait(&lg->trunc_cv, &lg->mu, &ts);
}

/* trunc_apply_through -- see rvm_int.h. The daemon's apply-ahead step, taken by the caller:
 * it writes only durable records' new values into the segments' page cache and moves neither
 * the head nor anything on disk but segment pages, so a crash anywhere in it leaves those
 * records live in the log, and recovery applies them again (THE APPLIED SPAN above). */
uint64_t trunc_apply_through(struct log *lg, uint64_t seq)
{
    uint64_t a = trunc_applied_seq(lg);
    while (a < seq) {
        if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
            break;
        /* trunc_mu may be held by an apply pass (the daemon's: a few milliseconds, and it
         * applies what we want), worth waiting for, or by a truncation step, a settle or
         * the log growing, whose fsyncs can take far longer: the caller would rather log a
         * few pages whole than wait for those */
        if (pthread_mutex_trylock(&lg->trunc_mu) != 0) {
            pthread_mutex_lock(&lg->mu);
            int brief = lg->trunc_brief;
            pthread_mutex_unlock(&lg->mu);
            struct timespec until = deadline(APPLY_THROUGH_WAIT_MS);
            if (brief)
                pthread_mutex_lock(&lg->trunc_mu);
            else if (pthread_mutex_timedlock(&lg->trunc_mu, &until) != 0)
                break;
        }
        /* one pass at a time, as the daemon does: trunc_mu is not held long */
        if (apply_ahead_locked(lg, APPLY_PASS_BYTES) != RVM_SUCCESS)
            break;
        uint64_t b = trunc_applied_seq(lg);
        if (b == a)
            break; /* seq is not durable yet (or the daemon truncated meanwhile) */
        a = b;
    }
    return a;
}

/* trunc_all -- epoch truncation: apply every durable record */
rvm_return_t trunc_all(struct log *lg)
{
    int progress = 1;
    rvm_return_t rc = RVM_SUCCESS;
    while (rc == RVM_SUCCESS && progress)
        rc = trunc_step(lg, UINT64_MAX, &progress);
    return rc;
}

/* trunc_main -- the incremental truncation thread */
static void *trunc_main(void *arg)
{
    struct log *lg = arg;
    engine_thread_enter(); /* never writes application memory: safepoints skip it */
    pthread_mutex_lock(&lg->mu);
    int active = 0;
    while (!lg->trunc_stop) {
        uint64_t thr = (uint64_t)lg->truncate_pct * lg->area_len;
        /* Records recovery applied at start-up are live until a step fsyncs the segments and
         * moves the head past them (THE APPLIED SPAN). Until then every later start
         * applies them again -- a program that runs for less than the daemon's threshold
         * would leave them for good -- so that step is taken at once, whatever the fill. */
        /* An applied span is made durable once it is big: after a crash (or a kill) the next
         * start applies every live record again, one write per range, so the span bounds
         * what a restart has to apply (the threshold alone allowed 1/8 of the log). */
        int over = lg->used * 100 >= thr ||
                   (span_live(lg) && (lg->applied_urgent || lg->applied_bytes >= SPAN_DURABLE));
        /* hysteresis: once started, go on until the fill is below half the threshold */
        if (over)
            active = 1;
        else if (lg->used * 200 < thr)
            active = 0;
        uint64_t slice = lg->area_len / 8;
        if (!active && lg->space_waiters == 0) {
            if (!lg->apply_ahead) {
                pthread_cond_wait(&lg->trunc_cv, &lg->mu);
                continue;
            }
            /* below the threshold, with a tracker that wants the segment files current:
             * apply what became durable, then look again in APPLY_AHEAD_MS */
            if (ahead_pending(lg)) {
                pthread_mutex_unlock(&lg->mu);
                /* in pieces of one apply pass: trunc_mu is not held long (a writer waiting
                 * for space, rvm_truncate and rvm_map's settle take it too) */
                rvm_return_t rc = trunc_apply_ahead(lg, APPLY_PASS_BYTES);
                pthread_mutex_lock(&lg->mu);
                if (rc != RVM_SUCCESS)
                    break;
                if (ahead_pending(lg))
                    continue; /* more of a backlog: the next piece at once */
            }
            timed_wait(lg, APPLY_AHEAD_MS);
            continue;
        }
        pthread_mutex_unlock(&lg->mu);
        int progress = 0;
        rvm_return_t rc = trunc_step(lg, slice < (1u << 16) ? (1u << 16) : slice, &progress);
        pthread_mutex_lock(&lg->mu);
        if (progress)
            engine.st.tot_async_truncation++;
        pthread_cond_broadcast(&lg->space_cv);
        if (rc != RVM_SUCCESS)
            break; /* sticky error: committers see it and stop */
        if (!progress) {
            /* nothing durable to apply yet (a leader is between write and sync) */
            timed_wait(lg, 2);
            active = 0;
        }
    }
    lg->trunc_running = 0;
    pthread_cond_broadcast(&lg->space_cv);
    pthread_mutex_unlock(&lg->mu);
    engine_thread_exit(); /* our tid may be reused after we exit */
    return NULL;
}

/* trunc_start -- start (or retune) the daemon for threshold pct (1..100) */
rvm_return_t trunc_start(struct log *lg, long pct)
{
    pthread_mutex_lock(&lg->mu);
    lg->truncate_pct = pct;
    if (lg->trunc_running) {
        pthread_cond_signal(&lg->trunc_cv);
        pthread_mutex_unlock(&lg->mu);
        return RVM_SUCCESS;
    }
    lg->trunc_stop = 0;
    lg->trunc_running = 1;
    int e = thread_spawn(&lg->trunc_thread, trunc_main, lg, "lrvm-truncate");
    if (e)
        lg->trunc_running = 0;
    pthread_mutex_unlock(&lg->mu);
    if (e)
        return err_set(RVM_ETHREADS, "cannot start the truncation thread: %s", strerror(e));
    return RVM_SUCCESS;
}

/* trunc_stop -- stop the daemon and wait for it */
void trunc_stop(struct log *lg)
{
    pthread_mutex_lock(&lg->mu);
    if (!lg->trunc_running && !lg->trunc_stop) {
        lg->truncate_pct = 0;
        pthread_mutex_unlock(&lg->mu);
        return;
    }
    int joinable = !lg->trunc_stop;
    lg->trunc_stop = 1;
    lg->truncate_pct = 0;
    pthread_cond_broadcast(&lg->trunc_cv);
    pthread_mutex_unlock(&lg->mu);
    if (joinable)
        pthread_join(lg->trunc_thread, NULL);
    pthread_mutex_lock(&lg->mu);
    lg->trunc_stop = 0;
    pthread_mutex_unlock(&lg->mu);
}

/*
 * recover -- recovery of a just-opened log (see RECOVERY in log_format.h).
 *
 * Apply every valid record from the durable head to the segments named by the status
 * dictionary (into their page cache), then make the status name a new epoch starting
 * at the first sequence number not found, with a fresh salt. The head does not move:
 * the records stay in the log until a truncation has re-applied them and fsynced the
 * segments, so losing the page cache loses nothing. A crash before the status write
 * leaves the old status: recovery runs again and re-applies the same records
 * (idempotent). Leftovers of a torn tail carry the old epoch's salt where the new one
 * is expected, so they can never validate. When the epoch table is full (recovered
 * over and over without a truncation), fall back to fsync + moving the head.
 */
/*
 * recover_check_end -- is the end of the chain an honest one (log_end.c)? A record
 * damaged in the middle of acknowledged commits fails recovery, unless the caller asked
 * to salvage (rvmutl salvage): then the prefix is recovered as usual -- the new epoch
 * starting at the damaged seq invalidates the records after it for good -- and what was
 * dropped is kept in engine.salvaged for the caller to print. The prefix already applied is
 * committed data, so applying it before refusing is harmless.
 */
static rvm_return_t recover_check_end(struct log *lg, const struct log_status *st,
                                      const struct apply_res *res)
{
    if (st->version < LOG_FORMAT_VERSION)
        return RVM_SUCCESS; /* format 2: no markers, no frontiers, nothing to prove */
    struct log_epoch ep[LOG_MAX_EPOCHS];
    memcpy(ep, lg->epochs, sizeof(ep));
    struct logrd rd = {.fd = lg->fd,
                       .path = lg->path,
                       .area_off = lg->area_off,
                       .area_len = lg->area_len,
                       .epochs = ep,
                       .nepochs = lg->nepochs,
                       .chunk = 64u << 10};
    struct log_end e;
    int r = log_end_find(&rd, res->end_off, res->next_seq, st->head_off, &e);
    buf_free(&rd.b);
    if (r < 0)
        return err_io(-r, "log %s: read failed while checking the end of the log: %s", lg->path,
                      strerror(-r));
    if (e.kind != LOG_END_DAMAGED)
        return RVM_SUCCESS;
    if (!engine.salvage)
        return log_end_error(lg->path, &e);
    engine.salvaged = e;
    return RVM_SUCCESS;
}

/*
 * recover_mark_end -- an end marker under the new epoch's salt where the next record will
 * go, so that the next recovery reads a clean end even if nothing is written meanwhile.
 * It lands in free space (between the chain's end and the head the status will name) and
 * becomes durable with the status write that follows; lost, it only costs the next
 * recovery one scan of the free space.
 */
static rvm_return_t recover_mark_end(struct log *lg, const struct apply_res *res, uint64_t head,
                                     uint64_t salt)
{
    uint64_t room = (head > res->end_off ? head : lg->area_len) - res->end_off;
    if (res->consumed >= lg->area_len || room < LOG_REC_HDR)
        return RVM_SUCCESS;
    char m[LOG_REC_HDR];
    log_end_marker(m, res->next_seq, salt);
    int e = full_pwrite(lg->fd, m, sizeof(m), lg->area_off + res->end_off);
    if (e)
        return err_io(e, "log %s: writing at offset %llu failed: %s", lg->path,
                      (unsigned long long)(lg->area_off + res->end_off), strerror(e));
    return RVM_SUCCESS;
}

rvm_return_t recover(struct log *lg)
{
    struct log_status st;
    struct buf dict = {0};
    rvm_return_t rc = log_status_read(lg->fd, lg->path, &st, &dict);
    if (rc == RVM_SUCCESS)
        rc = seg_load_dict(lg, &dict, st.nsegs, st.version);
    buf_free(&dict);
    if (rc)
        return rc;
    struct apply_res res;
    rc = apply_log(lg, st.head_off, st.head_seq, UINT64_MAX, UINT64_MAX, &res);
    if (rc)
        return rc;
    if ((rc = recover_check_end(lg, &st, &res)) != RVM_SUCCESS)
        return rc;
    /* an epoch that starts at next_seq holds no valid record (the chain ends there):
     * the new epoch replaces it instead of taking another slot */
    int reuse = lg->epochs[lg->nepochs - 1].seq == res.next_seq;
    int full = res.nrec > 0 && !reuse && lg->nepochs >= LOG_MAX_EPOCHS;
    if (full && (rc = apply_sync_segments()) != RVM_SUCCESS) /* barrier before head */
        return rc;
    uint64_t salt = log_new_salt(lg->salt);
    uint64_t head = res.nrec > 0 && !full ? st.head_off : res.end_off;
    if ((rc = recover_mark_end(lg, &res, head, salt)) != RVM_SUCCESS)
        return rc;
    pthread_mutex_lock(&lg->status_mu);
    if (res.nrec == 0 || full) {
        /* nothing live (or all of it synced): one fresh epoch, head at the chain end */
        lg->epochs[0] = (struct log_epoch){res.next_seq, salt};
        lg->nepochs = 1;
        lg->salt = salt;
        rc = log_status_write(lg, res.end_off, res.next_seq);
        lg->head_off = res.end_off;
        lg->head_seq = res.next_seq;
        lg->used = 0;
    } else {
        if (!reuse)
            lg->nepochs++;
        lg->epochs[lg->nepochs - 1] = (struct log_epoch){res.next_seq, salt};
        lg->salt = salt;
        rc = log_status_write(lg, st.head_off, st.head_seq);
        lg->head_off = st.head_off;
        lg->head_seq = st.head_seq;
        lg->used = res.consumed;
    }
    pthread_mutex_unlock(&lg->status_mu);
    /* The recovered records stay live in the log (the head did not move), and the segment
     * files' page cache already holds their final bytes: the next truncation only has to
     * fsync the segments and move the head (THE APPLIED SPAN), it never applies them
     * again. So a region mapped now (MAP_PRIVATE or copied in) reads the committed state,
     * and rvm_map has nothing to settle first. */
    if (rc == RVM_SUCCESS && res.nrec > 0 && !full) {
        lg->applied_seq = res.next_seq - 1;
        lg->applied_end = res.end_off;
        lg->applied_bytes = res.consumed;
        lg->applied_urgent = 1;
    }
    lg->tail_off = res.end_off;
    lg->next_seq = res.next_seq;
    lg->written_seq = lg->durable_seq = res.next_seq - 1;
    engine.st.tot_recovery++;
    return rc;
}
