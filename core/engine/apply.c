/* SPDX-License-Identifier: MIT */
/*
 * apply.c -- read valid records from the log and write their new values into the
 * segment files. Shared by recovery (rvm_initialize, `rvmutl recover`) and by both
 * kinds of truncation, so there is one piece of code whose crash safety matters:
 *
 *   - it writes only records that are valid (magic, expected seq, salted CRC32C), and
 *     truncation passes max_seq = the last DURABLE seq: segments receive committed
 *     data only (no-steal);
 *   - a record applied twice leaves the same bytes (new values, not deltas), so a
 *     crash at any point of an apply pass is repaired by applying again from the head
 *     the status block still names;
 *   - callers fsync the segments (apply_sync_segments) BEFORE moving the head.
 * Records are not written one by one: apply_pass.c gathers consecutive records and writes
 * the final bytes of everything they touch once, in segment offset order (its essay says
 * why that order keeps the guarantees above).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "apply_pass.h"
#include "rvm_int.h"
#include "sysio.h"

/* logrd_get -- make area bytes [pos, pos+len) available; NULL on error (*err set) */
static const char *logrd_get(struct logrd *rd, uint64_t pos, uint64_t len, int *err)
{
    if (pos >= rd->win_off && pos + len <= rd->win_off + rd->b.len)
        return rd->b.p + (pos - rd->win_off);
    uint64_t want = len > rd->chunk ? len : rd->chunk;
    if (pos + want > rd->area_len)
        want = rd->area_len - pos;
    if (want < len) {
        *err = -1;
        return NULL;
    }
    rd->b.len = 0;
    if (buf_reserve(&rd->b, (size_t)want) != 0) {
        *err = ENOMEM;
        return NULL;
    }
    int e = full_pread(rd->fd, rd->b.p, (size_t)want, rd->area_off + pos);
    if (e) {
        *err = e;
        rd->b.len = 0;
        return NULL;
    }
    rd->b.len = (size_t)want;
    rd->win_off = pos;
    /* start small (a short log costs little), double up to chunk_max (4 MiB by default) for
     * long ones */
    if (rd->chunk < (rd->chunk_max ? rd->chunk_max : (4u << 20)))
        rd->chunk *= 2;
    return rd->b.p;
}

/* rec_check_payload -- do the ranges of a (checksummed) record lie inside it? 0 yes */
int rec_check_payload(const struct log_rec_hdr *h, const char *payload)
{
    uint64_t room = h->len - LOG_REC_HDR;
    if ((uint64_t)h->nranges * LOG_RANGE_HDR > room)
        return -1;
    uint64_t data = room - (uint64_t)h->nranges * LOG_RANGE_HDR, sum = 0;
    for (uint32_t i = 0; i < h->nranges; i++) {
        struct log_range_hdr r;
        memcpy(&r, payload + (size_t)i * LOG_RANGE_HDR, sizeof(r));
        sum += r.len;
        if (r.seg == 0 || r.seg > SEG_MAX || sum > data || r.off + r.len < r.off)
            return -1;
    }
    return 0;
}

/* rec_seed_for -- the CRC seed of record seq: the salt of the epoch holding seq */
uint32_t rec_seed_for(const struct log_epoch *e, uint32_t n, uint64_t seq)
{
    uint32_t i = n ? n - 1 : 0;
    while (i > 0 && e[i].seq > seq)
        i--;
    return (uint32_t)(e[i].salt ^ (e[i].salt >> 32));
}

/* logrd_try -- is there a valid record with this seq at pos? 1 yes, 0 no, <0 -errno */
int logrd_try(struct logrd *rd, uint64_t pos, uint64_t seq, const struct log_rec_hdr **hdr,
              const char **payload)
{
    int err = 0;
    if (rd->area_len - pos < LOG_REC_HDR)
        return 0;
    const char *p = logrd_get(rd, pos, LOG_REC_HDR, &err);
    if (p == NULL)
        return err > 0 ? -err : 0;
    struct log_rec_hdr h;
    memcpy(&h, p, sizeof(h));
    if (h.magic != LOG_REC_MAGIC || h.type != LOG_REC_TXN || h.seq != seq || h.len < LOG_REC_HDR ||
        (h.len & 7) || pos + h.len > rd->area_len)
        return 0;
    p = logrd_get(rd, pos, h.len, &err);
    if (p == NULL)
        return err > 0 ? -err : 0;
    struct log_rec_hdr z = h;
    z.crc = 0;
    uint32_t seed = rd->epochs ? rec_seed_for(rd->epochs, rd->nepochs, seq)
                               : (uint32_t)(rd->salt ^ (rd->salt >> 32));
    uint32_t c = crc32c(seed, &z, sizeof(z));
    c = crc32c(c, p + LOG_REC_HDR, h.len - LOG_REC_HDR);
    if (c != h.crc)
        return 0;
    if (rec_check_payload((const struct log_rec_hdr *)p, p + LOG_REC_HDR) != 0)
        return 0;
    *hdr = (const struct log_rec_hdr *)p;
    *payload = p + LOG_REC_HDR;
    return 1;
}

/*
 * logrd_next -- the record with sequence number seq, at *pos or (after a wrap) at 0.
 * Returns 1 and updates *pos, 0 at the end of the valid chain, or -errno. The
 * returned pointers stay valid until the next call.
 */
int logrd_next(struct logrd *rd, uint64_t *pos, uint64_t seq, const struct log_rec_hdr **hdr,
               const char **payload)
{
    int r = logrd_try(rd, *pos, seq, hdr, payload);
    if (r != 0 || *pos == 0)
        return r;
    r = logrd_try(rd, 0, seq, hdr, payload);
    if (r == 1)
        *pos = 0;
    return r;
}

/*
 * Applying records: consecutive records are gathered into a pass (apply_pass.c), which
 * writes the final bytes of everything they touch once, in segment offset order.
 */

/* apply_progress -- the callback that hears how far an apply got (rvmutl's progress line);
 * NULL: nobody listens. Set before recovery or truncation starts, read by the applying thread. */
static apply_progress_fn progress_fn;
static void *progress_arg;

void apply_set_progress(apply_progress_fn fn, void *arg)
{
    progress_fn = fn;
    progress_arg = arg;
}

/* rec_segment -- the open segment a range of record h names, or NULL with rvm_errmsg set */
static struct seg *rec_segment(struct seg *const *segs, uint32_t nsegs, uint32_t id,
                               const struct log_rec_hdr *h, const char *logpath, rvm_return_t *rc)
{
    struct seg *s = id <= nsegs ? segs[id] : NULL;
    if (s == NULL) {
        *rc = err_set(RVM_ELOG,
                      "log %s: record %llu names segment id %u, which is not in the "
                      "log's segment dictionary; the log is damaged",
                      logpath, (unsigned long long)h->seq, id);
        return NULL;
    }
    if (s->fd < 0 && s->ident_bad) {
        char want[2 * LOG_SEG_ID_LEN + 1];
        seg_ident_hex(s->ident, want);
        *rc = err_set(RVM_ELOG,
                      "log %s: record %llu updates segment %s (id %u), but the file "
                      "at that path is not that segment: the log expects identity %s and the "
                      "file carries another one, or none. The log is never applied to another "
                      "segment; put the segment this log belongs to back at that path (a copied "
                      "pair must be copied together, log and segment in one directory)",
                      logpath, (unsigned long long)h->seq, s->path, id, want);
        return NULL;
    }
    if (s->fd < 0) {
        *rc = err_set(RVM_EIO,
                      "log %s: segment %s (id %u) has committed updates in the log but "
                      "cannot be opened: %s; restore the file and start again",
                      logpath, s->path, id, s->open_why ? s->open_why : strerror(s->open_err));
        return NULL;
    }
    return s;
}

/* pass_flush -- write the pass out; an rvm error naming the file on failure */
static rvm_return_t pass_flush(struct apply_pass *p, const char *logpath)
{
    struct seg *bad;
    int e = pass_write(p, &bad);
    if (e == 0)
        return RVM_SUCCESS;
    if (bad == NULL)
        return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", logpath);
    return err_io(e < 0 ? EIO : e,
                  "segment %s: writing committed data from log %s failed: %s; "
                  "the log keeps the data (run recovery again once the problem is fixed)",
                  bad->path, logpath, strerror(e < 0 ? EIO : e));
}

/* apply_record -- add one record's ranges to the pass */
static rvm_return_t apply_record(struct seg *const *segs, uint32_t nsegs,
                                 const struct log_rec_hdr *h, const char *payload,
                                 struct apply_pass *p, const char *logpath, struct apply_res *res)
{
    const char *d = payload + (size_t)h->nranges * LOG_RANGE_HDR;
    rvm_return_t rc;
    pass_note(p, d, (const char *)h + h->len);
    for (uint32_t i = 0; i < h->nranges; i++) {
        struct log_range_hdr r;
        memcpy(&r, payload + (size_t)i * LOG_RANGE_HDR, sizeof(r));
        struct seg *s = rec_segment(segs, nsegs, r.seg, h, logpath, &rc);
        if (s == NULL)
            return rc;
        int e = pass_add(p, s, r.off, r.len, d);
        if (e == EINVAL)
            return err_set(RVM_ELOG,
                           "log %s: record %llu writes at offset %llu of segment %s, "
                           "beyond any file's size; the log is damaged",
                           logpath, (unsigned long long)h->seq, (unsigned long long)r.off, s->path);
        if (e)
            return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", logpath);
        d += r.len;
    }
    res->nranges += h->nranges;
    res->bytes += h->len;
    return RVM_SUCCESS;
}

/* rec_in_window -- does the read window already hold the whole record whose header is at
 * pos? Then reading it does not move the window, and the pass's pointers stay valid. */
static int rec_in_window(const struct logrd *rd, uint64_t pos)
{
    if (pos < rd->win_off || pos - rd->win_off + LOG_REC_HDR > rd->b.len)
        return 0;
    struct log_rec_hdr h;
    memcpy(&h, rd->b.p + (pos - rd->win_off), sizeof(h));
    return h.len >= LOG_REC_HDR && h.len <= rd->b.len - (pos - rd->win_off);
}

/* pass_leave_window -- the read window will move: carry what the pass needs, or write it out */
static rvm_return_t pass_leave_window(struct apply_pass *p, const char *logpath)
{
    return pass_carry(p) == 0 ? RVM_SUCCESS : pass_flush(p, logpath);
}

/* apply_next -- logrd_next for a pass: the pass points into the read window, so it is carried
 * or written out before anything could move the window. 1, 0 or -errno as logrd_next; *rc on
 * failure. */
static int apply_next(struct logrd *rd, struct apply_pass *p, uint64_t *pos, uint64_t seq,
                      const struct log_rec_hdr **h, const char **payload, rvm_return_t *rc)
{
    if (p->n > 0 && !rec_in_window(rd, *pos) &&
        (*rc = pass_leave_window(p, rd->path)) != RVM_SUCCESS)
        return -EIO;
    int r = logrd_try(rd, *pos, seq, h, payload);
    if (r != 0 || *pos == 0)
        return r;
    if (p->n > 0 && (*rc = pass_leave_window(p, rd->path)) != RVM_SUCCESS)
        return -EIO;
    r = logrd_try(rd, 0, seq, h, payload); /* after a wrap */
    if (r == 1)
        *pos = 0;
    return r;
}

/*
 * apply_log_rd -- apply valid records from (off, seq) while seq <= max_seq and fewer
 * than `limit` area bytes were consumed. Fills res with where the chain stopped.
 * total: the area bytes the caller expects (for progress only; 0 unknown).
 */
static rvm_return_t apply_log_rd(struct logrd *rd, struct seg *const *segs, uint32_t nsegs,
                                 uint64_t off, uint64_t seq, uint64_t max_seq, uint64_t limit,
                                 uint64_t total, struct apply_res *res)
{
    struct apply_pass *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", rd->path);
    rvm_return_t rc = RVM_SUCCESS;
    memset(res, 0, sizeof(*res));
    uint64_t cur = off;
    while (seq <= max_seq && res->consumed < limit) {
        const struct log_rec_hdr *h;
        const char *payload;
        uint64_t pos = cur;
        int r = apply_next(rd, p, &pos, seq, &h, &payload, &rc);
        if (rc != RVM_SUCCESS)
            break;
        if (r < 0) {
            rc = err_set(RVM_EIO, "log %s: read failed: %s", rd->path, strerror(-r));
            rvm_ioerrno = -r;
            break;
        }
        if (r == 0)
            break;
        if (pos != cur)
            res->consumed += rd->area_len - cur; /* the wrap gap */
        uint32_t len = h->len;
        rc = apply_record(segs, nsegs, h, payload, p, rd->path, res);
        if (rc)
            break;
        res->consumed += len;
        res->nrec++;
        cur = pos + len;
        if (rd->area_len - cur < LOG_REC_HDR) {
            res->consumed += rd->area_len - cur;
            cur = 0;
        }
        seq++;
        if (progress_fn != NULL)
            progress_fn(progress_arg, res->consumed, total);
    }
    if (rc == RVM_SUCCESS)
        rc = pass_flush(p, rd->path);
    res->end_off = cur;
    res->next_seq = seq;
    pass_free(p);
    free(p);
    return rc;
}

/* chain_hdr_ok -- does a header for seq, plausible by its fields alone, start at pos? */
static int chain_hdr_ok(struct logrd *rd, uint64_t pos, uint64_t seq, uint32_t *len)
{
    int err = 0;
    if (rd->area_len - pos < LOG_REC_HDR)
        return 0;
    const char *q = logrd_get(rd, pos, LOG_REC_HDR, &err);
    if (q == NULL)
        return 0;
    struct log_rec_hdr h;
    memcpy(&h, q, sizeof(h));
    *len = h.len;
    return h.magic == LOG_REC_MAGIC && h.type == LOG_REC_TXN && h.seq == seq &&
           h.len >= LOG_REC_HDR && !(h.len & 7) && pos + h.len <= rd->area_len;
}

/* apply_chain_bytes -- the area bytes of the chain of records from (off, seq), judged by
 * their headers only (no checksum): what a progress line calls the total */
static uint64_t apply_chain_bytes(struct logrd *rd, uint64_t off, uint64_t seq)
{
    uint64_t cur = off, sum = 0;
    uint32_t len;
    while (sum < rd->area_len) {
        if (!chain_hdr_ok(rd, cur, seq, &len)) {
            if (cur == 0 || !chain_hdr_ok(rd, 0, seq, &len))
                break;
            sum += rd->area_len - cur; /* the wrap, as logrd_next takes it */
            cur = 0;
        }
        sum += len;
        cur += len;
        seq++;
    }
    return sum;
}

/* apply_log -- apply records of the open log (truncation and recovery) */
rvm_return_t apply_log(struct log *lg, uint64_t off, uint64_t seq, uint64_t max_seq, uint64_t limit,
                       struct apply_res *res)
{
    struct log_epoch ep[LOG_MAX_EPOCHS];
    pthread_mutex_lock(&lg->status_mu); /* a status write may prune the table */
    uint32_t nep = lg->nepochs;
    memcpy(ep, lg->epochs, sizeof(ep));
    pthread_mutex_unlock(&lg->status_mu);
    struct logrd rd = {.fd = lg->fd,
                       .path = lg->path,
                       .area_off = lg->area_off,
                       .area_len = lg->area_len,
                       .epochs = ep,
                       .nepochs = nep,
                       .chunk = 64u << 10,
                       .chunk_max = APPLY_PASS_BYTES};
    uint32_t nsegs = __atomic_load_n(&engine.nsegs, __ATOMIC_ACQUIRE);
    uint64_t total = 0;
    if (progress_fn != NULL) {
        total = apply_chain_bytes(&rd, off, seq);
        if (total > limit)
            total = limit;
    }
    rvm_return_t rc = apply_log_rd(&rd, engine.segs, nsegs, off, seq, max_seq, limit, total, res);
    buf_free(&rd.b);
    return rc;
}

/* apply_sync_table -- fsync every segment an apply pass wrote */
static rvm_return_t apply_sync_table(struct seg *const *segs, uint32_t nsegs)
{
    for (uint32_t i = 1; i <= nsegs; i++) {
        struct seg *s = segs[i];
        if (s == NULL || !s->dirty)
            continue;
        if (sysio.fsync(s->fd) != 0)
            return err_io(errno,
                          "segment %s: fsync failed: %s; the log still holds the "
                          "data (run recovery again once the problem is fixed)",
                          s->path, strerror(errno));
        s->dirty = 0;
    }
    return RVM_SUCCESS;
}

/* apply_sync_segments -- fsync the segments truncation wrote (caller holds trunc_mu) */
rvm_return_t apply_sync_segments(void)
{
    return apply_sync_table(engine.segs, __atomic_load_n(&engine.nsegs, __ATOMIC_ACQUIRE));
}
