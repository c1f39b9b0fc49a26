/* SPDX-License-Identifier: MIT */
/*
 * log_stream.c -- one big transaction written to the log straight from the caller's memory.
 *
 * WHY. txn_commit_vector copies every new byte into the log's pending buffer (log_enqueue)
 * and takes a `struct range` per entry, so a commit of N MB holds the caller's copy, the
 * caller's range list, core's range array and core's copy at once: ~3x the changed bytes
 * (the shim's exit commit of gawk: 73 MB logged, ~280 MB of buffers). txn_commit_stream
 * writes the SAME record (log_format.h, unchanged: one record = one transaction, recovery
 * unchanged) from the caller's memory through a bounded staging buffer: core holds
 * LOG_STREAM_CHUNK bytes, whatever the record's size.
 *
 * HOW. The record is laid out as usual: header, every range header, every range's data,
 * zero padding to 8. We (1) materialise the coalescing set and force everything queued, so
 * this record's sequence number follows every acknowledged commit and the log's queue is
 * empty; (2) become the log's writer (writer_active: other committers queue behind us and
 * their leader writes after our record); (3) reserve the record's place in the circular
 * area by the rules of log_write_batch (wrap to 0 with a dead gap, wait for truncation to
 * free space); (4) with lg->mu released, write the record in chunks, computing its CRC as
 * the chunks go, the header first with crc 0 and then rewritten with the real CRC; (5)
 * fdatasync. The caller's memory must not change until we return (the tracker holds its mutex,
 * its buffer is its own).
 *
 * CRASH SAFETY. Until the fdatasync the record is not acknowledged. A crash (or a failed
 * write) at any point leaves a record whose CRC does not match its bytes -- the CRC covers
 * the whole record and is stored last -- or leaves old bytes of the area, so recovery stops
 * at the previous record, exactly as for a torn pwrite of log_write_batch: the previous
 * commit is intact, this one is absent. A failed write or sync is sticky (err_io), because
 * the tail was advanced over the failed record and nothing may be appended after a hole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "apply_pass.h"
#include "log_format.h"
#include "rvm_int.h"
#include "sysio.h"
#include "txn.h"

#define LOG_STREAM_CHUNK ((size_t)1 << 20) /* staging buffer: bounded memory per record */
/* records at least this big are applied to the segments at once (stream_settle): replaying
 * them at the next start would cost more than the fsync now */
#define STREAM_SETTLE_MIN ((uint64_t)16 << 20)

/* txn_stream_fits said yes, with the other threads parked: this thread's next
 * txn_commit_stream must not wait for truncation (it may grow the log instead) */
static __thread int stream_nowait;

/* one run of entries lying in the same mapped region (resolved before writing) */
struct stream_run {
    size_t first; /* index of the run's first entry */
    struct region *rg;
};

/* the writer's state while a record goes out */
struct stream_out {
    struct log *lg;
    char *buf;
    size_t len;  /* staged bytes */
    uint64_t at; /* file offset of buf[0] */
    uint32_t crc;
    int err; /* errno of the first failed write */
};

/* stream_flush -- write the staged bytes (CRC first); 0 or an errno */
static int stream_flush(struct stream_out *o)
{
    if (o->len == 0 || o->err)
        return o->err;
    o->crc = crc32c(o->crc, o->buf, o->len);
    o->err = full_pwrite(o->lg->fd, o->buf, o->len, o->at);
    o->at += o->len;
    o->len = 0;
    return o->err;
}

/* stream_put -- append n bytes to the record */
static int stream_put(struct stream_out *o, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0 && !o->err) {
        size_t k = LOG_STREAM_CHUNK - o->len < n ? LOG_STREAM_CHUNK - o->len : n;
        memcpy(o->buf + o->len, c, k);
        o->len += k;
        c += k;
        n -= k;
        if (o->len == LOG_STREAM_CHUNK)
            stream_flush(o);
    }
    return o->err;
}

/* stream_free -- release an array of mmap_buf_grow */
static void stream_free(void *p, size_t cap)
{
    if (cap)
        munmap(p, cap);
}

/* stream_resolve -- find the mapped region of every entry (engine.mu taken here); runs of
 * consecutive entries in one region are recorded once. *size: the record's bytes. */
static rvm_return_t stream_resolve(txn_vec_fn get, void *arg, size_t n, struct stream_run **runs,
                                   size_t *runs_cap, size_t *nruns, uint64_t *size)
{
    size_t cap = 0, k = 0;
    struct stream_run *rv = NULL;
    uint64_t sz = LOG_REC_HDR + (uint64_t)n * LOG_RANGE_HDR;
    struct region *last = NULL;
    rvm_return_t rc = RVM_SUCCESS;
    pthread_mutex_lock(&engine.mu);
    for (size_t i = 0; i < n; i++) {
        struct txn_vec v;
        get(arg, i, &v);
        sz += v.len;
        const char *d = v.dest;
        if (last != NULL && d >= last->vmaddr && d + v.len <= last->vmaddr + last->len)
            continue;
        if ((last = region_find(d, v.len)) == NULL) {
            rc = RVM_ENOT_MAPPED;
            break;
        }
        if (mmap_buf_grow((void **)&rv, &cap, (k + 1) * sizeof(*rv), 4096) != 0) {
            rc = RVM_ENO_MEMORY;
            break;
        }
        rv[k++] = (struct stream_run){i, last};
    }
    pthread_mutex_unlock(&engine.mu);
    if (rc != RVM_SUCCESS) {
        stream_free(rv, cap);
        return rc;
    }
    *runs = rv;
    *runs_cap = cap;
    *nruns = k;
    *size = (sz + 7u) & ~(uint64_t)7u;
    return RVM_SUCCESS;
}

/* stream_place -- reserve `size` bytes for the next record in the area (lg->mu held,
 * writer_active set by us, everything earlier durable); *pos: its area offset. A record the
 * area cannot hold grows the log (log_grow.c); so does any record that does not fit now when
 * the caller must not wait for truncation (nowait: other threads are parked, and txn_stream_fits
 * said the grown log would take it at once). */
static rvm_return_t stream_place(struct log *lg, uint64_t size, uint64_t *pos, int nowait)
{
    for (int grown = 0;;) {
        uint64_t tail = lg->tail_off, gap = 0, p = tail;
        if (tail + size > lg->area_len) {
            rvm_return_t erc = log_erase_marker(lg, tail); /* as log_write_batch */
            if (erc != RVM_SUCCESS)
                return erc;
            if (lg->used == 0) {
                lg->head_off = lg->tail_off = tail = 0; /* as log_write_batch */
            } else {
                gap = lg->area_len - tail;
            }
            p = 0;
        }
        if (p + size <= lg->area_len && lg->used + gap + size <= lg->area_len) {
            if (gap)
                engine.st.tot_wrap++;
            lg->used += gap + size;
            lg->tail_off = p + size;
            if (lg->area_len - lg->tail_off < LOG_REC_HDR) {
                engine.st.tot_wrap++;
                lg->used += lg->area_len - lg->tail_off;
                lg->tail_off = 0;
            }
            *pos = p;
            return RVM_SUCCESS;
        }
        rvm_return_t rc;
        if (size > lg->area_len || (nowait && !grown)) {
            rc = log_grow(lg, size, nowait);
            grown = 1;
        } else if (nowait) {
            rc = err_set(RVM_EINTERNAL, "log %s: a %llu-byte record does not fit after growing",
                         lg->path, (unsigned long long)size);
        } else {
            rc = log_wait_space(lg);
        }
        if (rc != RVM_SUCCESS)
            return rc;
    }
}

/* the entries of a streamed record and their regions (for stream_settle) */
struct stream_src {
    txn_vec_fn get;
    void *arg;
    size_t n;
    const struct stream_run *runs;
    size_t nruns;
};

/* ranges per apply pass of a settled record: bounds the pass's sort arrays (~80 bytes a range;
 * 16384 kept gawk's exit 4 MB below 65536, at the same speed) */
#define SETTLE_PASS_RANGES 16384u

/* settle_write -- write every entry's new bytes into its segment file and fsync the files
 * written; 0 or an errno. The entries go through apply passes (apply_pass.c), as records
 * applied from the log do: sorted by offset, neighbours closer than a page written with one
 * pwrite. An auto-tracked exit commit is hundreds of thousands of small page diffs, and one
 * pwrite each cost more than the commit's log write (a pwrite into a file cached in large
 * folios walks the folio's buffers: 5 s for gawk's 71 MiB exit commit). Passes run in entry
 * order and a pass resolves overlaps newest-wins, so the file ends as sequential writes of the
 * entries would leave it. Crash safety is stream_settle's: nothing here is durable until the
 * fsync below, and the status still names this record until after it, so a crash anywhere
 * leaves the record for recovery to apply again. The bytes a pass reads back between two
 * neighbours are the file's own: only apply passes write segments, and we hold trunc_mu. */
static int settle_write(const struct stream_src *src)
{
    struct apply_pass *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ENOMEM;
    size_t k = 0;
    struct seg *bad = NULL;
    int e = 0;
    for (size_t i = 0; i < src->n && e == 0; i++) {
        struct txn_vec v;
        src->get(src->arg, i, &v);
        while (k + 1 < src->nruns && src->runs[k + 1].first <= i)
            k++;
        const struct region *g = src->runs[k].rg;
        uint64_t off = g->off + (uint64_t)((char *)v.dest - g->vmaddr);
        e = pass_add(p, g->seg, off, (uint32_t)v.len, v.src);
        if (e == 0 && p->n >= SETTLE_PASS_RANGES)
            e = pass_write(p, &bad);
    }
    if (e == 0)
        e = pass_write(p, &bad);
    for (uint32_t id = 1; e == 0 && id <= SEG_MAX; id++) {
        struct seg *s = p->segs[id];
        if (s != NULL && s->dirty) {
            if (sysio.fsync(s->fd) != 0)
                e = errno;
            else
                s->dirty = 0;
        }
    }
    pass_free(p);
    free(p);
    return e < 0 ? EIO : e;
}

/*
 * stream_settle -- the record seq (just made durable, we are still the log's writer, lg->mu
 * held) is applied to the segments right away, from the caller's memory, and the head moves
 * past it: the log is empty again, so the next start has nothing to replay (a 3 GiB exit
 * commit would otherwise be read and applied at restart, and applied again by the truncation
 * that the first rvm_map of the segment waits for). This is truncation by another road:
 *   - only when every earlier record is already applied (head_seq == seq): applying ours
 *     before an older one would let the older bytes win at the next truncation;
 *   - the bytes written are the record's new values (the caller's memory cannot change until
 *     we return) and the record is durable: segments receive committed data only (no-steal);
 *   - segments are fsynced before the status names the new head (barrier 2 of log_format.h);
 *     a crash anywhere before that status write leaves the record live, and recovery applies
 *     it again (idempotent redo) -- the same bytes.
 * The caller holds trunc_mu (settle_lock), taken before the record became durable, so the
 * daemon never applies it from the log meanwhile; lg->mu is held on entry and on return. A
 * failure to write a segment is sticky like any truncation failure; skipping (trunc_mu busy
 * while threads are parked, older records live) only leaves the record to be applied at the
 * next start.
 */
static rvm_return_t stream_settle(struct log *lg, const struct stream_src *src, uint64_t seq)
{
    rvm_return_t rc = RVM_SUCCESS;
    int alone = lg->head_seq == seq && lg->durable_seq >= seq;
    uint64_t new_head = lg->tail_off;
    pthread_mutex_unlock(&lg->mu);
    if (alone) {
        int e = settle_write(src);
        if (e != 0) {
            rc = err_io(e,
                        "log %s: applying the %zu ranges of record %llu to their segment "
                        "failed: %s; no later commit is accepted (the record is durable: "
                        "the next start applies it)",
                        lg->path, src->n, (unsigned long long)seq, strerror(e));
        } else {
            pthread_mutex_lock(&lg->status_mu);
            rc = log_status_write(lg, new_head, seq + 1);
            pthread_mutex_unlock(&lg->status_mu);
        }
    }
    pthread_mutex_lock(&lg->mu);
    if (alone && rc == RVM_SUCCESS) {
        /* we are still the writer: nothing was placed after our record */
        lg->head_off = new_head;
        lg->head_seq = seq + 1;
        lg->used = 0;
        lg->n_settled++;
        pthread_cond_broadcast(&lg->space_cv);
    }
    return rc;
}

/* settle_lock -- take trunc_mu for stream_settle; lg->mu held (and held again on return).
 * Trying is free of lock-order trouble; waiting needs lg->mu released first (trunc_mu comes
 * before it). With the other threads parked (nowait) we only try: the daemon may hold
 * trunc_mu while it waits for an allocator lock a parked thread holds. 1 if taken. */
static int settle_lock(struct log *lg, int nowait)
{
    if (pthread_mutex_trylock(&lg->trunc_mu) == 0)
        return 1;
    if (nowait)
        return 0;
    pthread_mutex_unlock(&lg->mu);
    pthread_mutex_lock(&lg->trunc_mu);
    pthread_mutex_lock(&lg->mu);
    return 1;
}

/*
 * stream_write -- write the record (header h with crc 0, range headers, data, padding to
 * `size`) at area offset pos through the staging buffer, computing its CRC as the chunks go;
 * then the header again with the real CRC (a crash before that leaves a record whose CRC
 * cannot match), then the end marker for the next seq at mark (UINT64_MAX: no room). lg->mu
 * is not held. Errors are left in o->err.
 */
static void stream_write(struct stream_out *o, const struct stream_src *src, struct log_rec_hdr h,
                         uint64_t size, uint64_t pos, uint64_t mark, uint64_t salt)
{
    struct log *lg = o->lg;
    o->at = lg->area_off + pos;
    o->crc = (uint32_t)(salt ^ (salt >> 32)); /* rec_seed (log.c) */
    stream_put(o, &h, sizeof(h));
    size_t k = 0;
    for (size_t i = 0; i < src->n && !o->err; i++) {
        struct txn_vec v;
        src->get(src->arg, i, &v);
        while (k + 1 < src->nruns && src->runs[k + 1].first <= i)
            k++;
        const struct region *g = src->runs[k].rg;
        struct log_range_hdr x = {g->off + (uint64_t)((char *)v.dest - g->vmaddr), (uint32_t)v.len,
                                  g->seg->id};
        stream_put(o, &x, sizeof(x));
    }
    uint64_t data = 0;
    for (size_t i = 0; i < src->n && !o->err; i++) {
        struct txn_vec v;
        src->get(src->arg, i, &v);
        stream_put(o, v.src, v.len);
        data += v.len;
    }
    static const char zeros[8];
    uint64_t body = LOG_REC_HDR + (uint64_t)src->n * LOG_RANGE_HDR + data;
    stream_put(o, zeros, (size_t)(size - body));
    stream_flush(o);
    if (!o->err) {
        h.crc = o->crc;
        o->err = full_pwrite(lg->fd, &h, sizeof(h), lg->area_off + pos);
    }
    if (!o->err && mark != UINT64_MAX) {
        char m[LOG_REC_HDR];
        log_end_marker(m, h.seq + 1, salt);
        o->err = full_pwrite(lg->fd, m, sizeof(m), lg->area_off + mark);
    }
}

/*
 * stream_take_turn -- step (1) of txn_commit_stream: return (lg->mu held) when no writer is
 * active and every earlier commit is durable -- coalesced no_flush ones too, or a later seq of
 * theirs would overwrite our newer bytes at recovery -- and, for a record that will be settled
 * (stream_settle needs every earlier record applied), when they are truncated too (tried
 * once; never with the other threads parked).
 */
static rvm_return_t stream_take_turn(struct log *lg, uint64_t size, int nowait)
{
    rvm_return_t rc;
    for (int emptied = 0;;) {
        if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
            return RVM_EIO;
        if (lg->writer_active) { /* a leader is writing: its records go first */
            pthread_cond_wait(&lg->sync_cv, &lg->mu);
            continue;
        }
        if (lg->cs.n > 0 && (rc = cset_materialize(lg)) != RVM_SUCCESS)
            return rc;
        if (lg->durable_seq + 1 < lg->next_seq) { /* queued records: write them first */
            if ((rc = log_force(lg, lg->next_seq - 1)) != RVM_SUCCESS)
                return rc;
            continue; /* log_force may return while a later leader writes: look again */
        }
        if (!nowait && !emptied && size >= STREAM_SETTLE_MIN && lg->head_seq < lg->next_seq) {
            emptied = 1;
            pthread_mutex_unlock(&lg->mu);
            rc = trunc_all(lg);
            pthread_mutex_lock(&lg->mu);
            if (rc != RVM_SUCCESS)
                return rc;
            continue;
        }
        return RVM_SUCCESS;
    }
}

/* where a streamed record goes: its area offset, its sequence number, the offset of the end
 * marker after it (UINT64_MAX: no room) and the log's salt, all read under lg->mu */
struct stream_slot {
    uint64_t pos, seq, mark, salt;
};

/*
 * stream_claim -- steps (1) to (3) of txn_commit_stream, lg->mu held: every earlier commit
 * goes first, this thread becomes the log's writer, the record's place is reserved and its
 * sequence number taken. On failure this thread is not the writer.
 */
static rvm_return_t stream_claim(struct log *lg, const struct stream_src *src, uint64_t size,
                                 int nowait, struct stream_slot *slot)
{
    /* a record larger than the area grows the log (stream_place); the format caps one
     * record, i.e. one commit, at 4 GiB */
    if (size > UINT32_MAX)
        return err_set(RVM_ETOO_BIG,
                       "a commit of %zu ranges needs a %llu-byte log record, and a "
                       "record holds at most 4 GiB (log %s); commit more often",
                       src->n, (unsigned long long)size, lg->path);
    /* (1) every earlier commit goes first */
    rvm_return_t rc = stream_take_turn(lg, size, nowait);
    if (rc != RVM_SUCCESS)
        return rc;
    /* (2) no writer, nothing queued, lg->mu held: we are the writer until the record is
     * durable (committers arriving meanwhile queue and wait for writer_active to clear) */
    lg->writer_active = 1;
    slot->pos = 0;
    if ((rc = stream_place(lg, size, &slot->pos, nowait)) != RVM_SUCCESS) {
        lg->writer_active = 0;
        pthread_cond_broadcast(&lg->sync_cv);
        return rc;
    }
    slot->seq = lg->next_seq++;
    /* the end marker for seq + 1 goes right after the record, if free space allows */
    slot->mark = UINT64_MAX;
    if (lg->tail_off != 0 && lg->used < lg->area_len &&
        (lg->head_off > lg->tail_off ? lg->head_off : lg->area_len) - lg->tail_off >= LOG_REC_HDR)
        slot->mark = lg->tail_off;
    for (size_t k = 0; k < src->nruns; k++)
        if (src->runs[k].rg->seg->last_seq < slot->seq)
            src->runs[k].rg->seg->last_seq = slot->seq;
    slot->salt = lg->salt;
    return RVM_SUCCESS;
}

/*
 * stream_finish -- steps (5) and (6) once the record is written (lg->mu held): durable, then
 * acknowledged, then a big record applied to the segments; this thread's turn as the writer
 * ends either way.
 */
static rvm_return_t stream_finish(struct log *lg, const struct stream_out *o,
                                  const struct stream_src *src, uint64_t size,
                                  const struct stream_slot *slot, int nowait)
{
    rvm_return_t rc;
    if (o->err) {
        rc = err_io(o->err,
                    "log %s: writing a %llu-byte record at offset %llu failed: %s; no "
                    "later commit is accepted (restart the program: recovery keeps every "
                    "acknowledged commit)",
                    lg->path, (unsigned long long)size,
                    (unsigned long long)(lg->area_off + slot->pos), strerror(o->err));
    } else {
        lg->written_seq = slot->seq;
        engine.st.n_flush++;
        engine.st.log_written = rvm_add_length_to_offset(&engine.st.log_written, size);
        /* a big record will be settled (6): hold trunc_mu from before it is durable, so the
         * daemon cannot start applying it from the log (reading it whole) meanwhile */
        int settle = size >= STREAM_SETTLE_MIN && settle_lock(lg, nowait);
        /* (5) durable, then acknowledged */
        rc = log_sync(lg);
        if (rc == RVM_SUCCESS) {
            engine.st.n_flush_commit++;
            engine.st.n_no_flush = 0;
            engine.st.no_flush_length = RVM_MK_OFFSET(0, 0);
            /* (6) a big record goes into the segments now, from the caller's memory */
            if (settle)
                rc = stream_settle(lg, src, slot->seq);
        }
        if (settle)
            pthread_mutex_unlock(&lg->trunc_mu);
        log_kick_truncation(lg);
    }
    lg->writer_active = 0;
    pthread_cond_broadcast(&lg->sync_cv);
    return rc;
}

/* txn_commit_stream -- see txn.h */
rvm_return_t txn_commit_stream(txn_vec_fn get, void *arg, size_t n)
{
    int nowait = stream_nowait; /* set by txn_stream_fits for this very call */
    stream_nowait = 0;
    if (!rvm_ready())
        return RVM_EINIT;
    struct log *lg = engine.log;
    if (lg == NULL)
        return RVM_ELOG;
    if (n == 0)
        return RVM_SUCCESS;
    struct stream_run *runs = NULL;
    size_t nruns = 0, runs_cap = 0;
    uint64_t size = 0;
    rvm_return_t rc = stream_resolve(get, arg, n, &runs, &runs_cap, &nruns, &size);
    if (rc != RVM_SUCCESS)
        return rc == RVM_ENOT_MAPPED
                   ? err_set(rc, "commit: a range of the record is not in a mapped region")
                   : rc;
    struct stream_out o = {.lg = lg};
    o.buf =
        mmap(NULL, LOG_STREAM_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (o.buf == MAP_FAILED) {
        stream_free(runs, runs_cap);
        return RVM_ENO_MEMORY;
    }
    struct stream_src src = {get, arg, n, runs, nruns};
    struct stream_slot slot = {.pos = 0}; /* set by stream_claim (zeroed for the compiler) */
    pthread_mutex_lock(&lg->mu);
    if ((rc = stream_claim(lg, &src, size, nowait, &slot)) != RVM_SUCCESS)
        goto unlock;
    /* durable frontier 1: every earlier record was forced durable in step (1) */
    struct log_rec_hdr h = {
        .magic = LOG_REC_MAGIC,
        .type = LOG_REC_TXN,
        .flags = 1,
        .len = (uint32_t)size,
        .crc = 0,
        .seq = slot.seq,
        .nranges = (uint32_t)n,
        .ntxn = 1,
    };
    pthread_mutex_unlock(&lg->mu);

    /* (4) the record, in chunks, then its header with the CRC, then the end marker */
    stream_write(&o, &src, h, size, slot.pos, slot.mark, slot.salt);

    pthread_mutex_lock(&lg->mu);
    rc = stream_finish(lg, &o, &src, size, &slot, nowait);
unlock:
    pthread_mutex_unlock(&lg->mu);
    munmap(o.buf, LOG_STREAM_CHUNK);
    stream_free(runs, runs_cap);
    return rc;
}

/*
 * txn_stream_ready -- may txn_commit_stream run now, while every other thread of the
 * process is parked (the tracker's zero-copy final commit)? It must then never wait for a
 * parked thread. It waits only for: engine.mu and lg->mu (held briefly by whoever holds them), a
 * log writer in progress (writer_active), queued records it would have to write first (no
 * wait, but cset_materialize allocates), and log space, which the truncation daemon frees
 * (it takes trunc_mu and status_mu). A thread parked while holding one of those locks, or
 * while being the writer, would hold it until the release: deadlock. So: every lock must
 * be free now (trylock; parked threads cannot take one later, and the only threads still
 * running -- the truncation daemon, threads skipped by the safepoint -- release what they
 * take), no writer, nothing queued, the daemon running, and no sticky error. The caller
 * also checks, once it knows the record's size, that it fits without waiting for log space
 * (txn_stream_fits): waiting would depend on the daemon, which might need a lock (malloc's)
 * that a parked thread holds. Any doubt: 0, and the caller takes
 * the copying path after releasing the threads. Allocation: txn_commit_stream uses mmap
 * only; err_set's lock is checked free too.
 */
int txn_stream_ready(void)
{
    struct log *lg = engine.log;
    if (!rvm_ready() || lg == NULL || __atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE) ||
        !err_lock_free())
        return 0;
    pthread_mutex_t *locks[4] = {&engine.mu, &lg->trunc_mu, &lg->status_mu, &lg->mu};
    int ok = 1, held = 0;
    for (; held < 4; held++)
        if (pthread_mutex_trylock(locks[held]) != 0) {
            ok = 0;
            break;
        }
    if (ok)
        ok = !lg->writer_active && lg->pend.len == 0 && lg->cs.n == 0 && lg->trunc_running &&
             lg->durable_seq + 1 == lg->next_seq;
    while (held > 0)
        pthread_mutex_unlock(locks[--held]);
    return ok;
}

/* txn_stream_fits -- would a record of `size` bytes be placed now without waiting for log
 * space? (the zero-copy final commit asks, with the other threads parked: only the
 * truncation daemon then changes the log's fill, and only by emptying it) */
int txn_stream_fits(uint64_t size)
{
    struct log *lg = engine.log;
    stream_nowait = 0;
    if (lg == NULL || pthread_mutex_trylock(&lg->mu) != 0)
        return 0;
    uint64_t tail = lg->tail_off, gap = 0, p = tail;
    if (tail + size > lg->area_len && lg->used != 0) {
        gap = lg->area_len - tail;
        p = 0;
    } else if (tail + size > lg->area_len) {
        p = 0;
    }
    int ok = p + size <= lg->area_len && lg->used + gap + size <= lg->area_len;
    /* or it fits once the log has grown, which needs no parked thread (log_grow.c) */
    if (!ok)
        ok = log_grow_target(lg, size, 1) != 0;
    pthread_mutex_unlock(&lg->mu);
    stream_nowait = ok;
    return ok;
}
