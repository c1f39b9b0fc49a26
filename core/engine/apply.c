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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

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
    /* start small (a short log costs little), double up to 4 MiB for long ones */
    if (rd->chunk < (4u << 20))
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
    if (h.magic != LOG_REC_MAGIC || h.type != LOG_REC_TXN || h.seq != seq ||
        h.len < LOG_REC_HDR || (h.len & 7) || pos + h.len > rd->area_len)
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
 * Batched apply. Records are not written one range at a time: a batch of records
 * (up to APPLY_BATCH bytes of new values) is gathered, every range is cut at 1 MiB
 * boundaries of its segment into "pieces", and the pieces are grouped by window
 * (segment, offset >> 20) keeping log order inside each window. Windows are
 * disjoint, so each can be written independently: a dense window with one pread +
 * patch (pieces in log order: the later value wins) + one pwrite, a sparse one
 * piece by piece. The segment passes through intermediate states that no
 * sequential replay would produce, which is harmless: nothing reads the segment
 * until the pass is complete and synced, and after a crash recovery replays the
 * whole pass again from the head the status block still names.
 */
#define APPLY_BATCH (32u << 20)
#define APPLY_WIN_SHIFT 20

struct piece {
    uint32_t win;         /* its window: an index into batch.wlist */
    uint32_t len;
    uint64_t off;
    uint64_t data;        /* offset in batch.data */
};

struct win {
    uint64_t key;         /* seg id << 44 | window number; 0 = empty slot */
    struct seg *s;
    uint64_t lo, hi;
    uint32_t n, pos;
    uint32_t idx;         /* its index in wlist: pieces name windows by it, because a
                           * rehash moves windows to other slots */
};

struct batch {
    struct buf data;
    struct piece *p;
    size_t np, pcap;
    struct win *w;        /* open addressing */
    size_t wcap, nw;
    uint32_t *wlist;      /* slot index of each used window, in first-use order */
    uint32_t *order;
    size_t ocap;
    struct buf scratch;
};

/* batch_win -- the window of (seg, off), created if absent; index into b->w or -1 */
static long batch_win(struct batch *b, struct seg *s, uint64_t off)
{
    uint64_t key = ((uint64_t)s->id << 44) | (off >> APPLY_WIN_SHIFT);
    if ((b->nw + 1) * 2 > b->wcap) {
        size_t cap = b->wcap ? b->wcap * 2 : 256;
        struct win *w = calloc(cap, sizeof(*w));
        uint32_t *l = realloc(b->wlist, cap * sizeof(*l));
        if (w == NULL || l == NULL) {
            free(w);
            if (l)
                b->wlist = l;
            return -1;
        }
        b->wlist = l;
        for (size_t i = 0; i < b->nw; i++) {
            struct win *o = &b->w[b->wlist[i]];
            size_t h = (size_t)(o->key * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
            while (w[h].key)
                h = (h + 1) & (cap - 1);
            w[h] = *o;
            b->wlist[i] = (uint32_t)h;
        }
        free(b->w);
        b->w = w;
        b->wcap = cap;
    }
    size_t h = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & (b->wcap - 1);
    while (b->w[h].key && b->w[h].key != key)
        h = (h + 1) & (b->wcap - 1);
    if (!b->w[h].key) {
        b->w[h] = (struct win){ .key = key, .s = s, .lo = UINT64_MAX, .hi = 0,
                                .idx = (uint32_t)b->nw };
        b->wlist[b->nw++] = (uint32_t)h;
    }
    return (long)h;
}

/* batch_add -- add one range (new values at data offset d) as pieces */
static int batch_add(struct batch *b, struct seg *s, uint64_t off, uint64_t len, uint64_t d)
{
    while (len > 0) {
        uint64_t wend = ((off >> APPLY_WIN_SHIFT) + 1) << APPLY_WIN_SHIFT;
        uint64_t k = len < wend - off ? len : wend - off;
        long wi = batch_win(b, s, off);
        if (wi < 0)
            return ENOMEM;
        if (b->np == b->pcap) {
            size_t cap = b->pcap ? b->pcap * 2 : 1024;
            struct piece *p = realloc(b->p, cap * sizeof(*p));
            if (p == NULL)
                return ENOMEM;
            b->p = p;
            b->pcap = cap;
        }
        struct win *w = &b->w[wi];
        b->p[b->np++] = (struct piece){ .win = w->idx, .len = (uint32_t)k, .off = off,
                                        .data = d };
        w->n++;
        if (off < w->lo)
            w->lo = off;
        if (off + k > w->hi)
            w->hi = off + k;
        off += k;
        d += k;
        len -= k;
    }
    return 0;
}

/* batch_flush -- write every window of the batch, then empty it */
static rvm_return_t batch_flush(struct batch *b, const char *logpath)
{
    rvm_return_t rc = RVM_SUCCESS;
    if (b->np == 0)
        goto reset;
    if (b->ocap < b->np) {
        uint32_t *o = realloc(b->order, b->np * sizeof(*o));
        if (o == NULL)
            return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", logpath);
        b->order = o;
        b->ocap = b->np;
    }
    /* counting sort of pieces by window, stable: log order kept inside a window */
    uint32_t pos = 0;
    for (size_t i = 0; i < b->nw; i++) {
        struct win *w = &b->w[b->wlist[i]];
        w->pos = pos;
        pos += w->n;
    }
    for (size_t i = 0; i < b->np; i++)
        b->order[b->w[b->wlist[b->p[i].win]].pos++] = (uint32_t)i;
    pos = 0;
    for (size_t i = 0; i < b->nw && rc == RVM_SUCCESS; i++) {
        struct win *w = &b->w[b->wlist[i]];
        uint32_t *ord = b->order + pos;
        pos += w->n;
        struct seg *s = w->s;
        uint64_t span = w->hi - w->lo;
        int e = 0;
        /* one pread + one pwrite of the span beats n small pwrites once the pieces
         * average one per 4 KiB (a syscall costs about as much as copying 4 KiB twice) */
        int dense = w->n > 1 && span <= (uint64_t)w->n * 4096;
        if (dense) {
            b->scratch.len = 0;
            if (buf_reserve(&b->scratch, (size_t)span) != 0)
                return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", logpath);
            e = full_pread(s->fd, b->scratch.p, (size_t)span, w->lo);
            if (e < 0) {
                dense = 0;          /* the span reaches past the end of the file */
                e = 0;
            }
        }
        if (dense && e == 0) {
            for (uint32_t k = 0; k < w->n; k++) {
                const struct piece *p = &b->p[ord[k]];
                memcpy(b->scratch.p + (p->off - w->lo), b->data.p + p->data, p->len);
            }
            /* bytes between pieces are rewritten with the values just read: only
             * apply passes (serialised by trunc_mu) write segment files */
            e = full_pwrite(s->fd, b->scratch.p, (size_t)span, w->lo);
        } else if (e == 0) {
            for (uint32_t k = 0; k < w->n && e == 0; k++) {
                const struct piece *p = &b->p[ord[k]];
                e = full_pwrite(s->fd, b->data.p + p->data, p->len, p->off);
            }
        }
        if (e)
            rc = err_io(e < 0 ? EIO : e, "segment %s: writing committed data from log %s "
                        "failed: %s; the log keeps the data (run recovery again once the "
                        "problem is fixed)", s->path, logpath, strerror(e < 0 ? EIO : e));
        s->dirty = 1;
    }
reset:
    for (size_t i = 0; i < b->nw; i++)
        b->w[b->wlist[i]].key = 0;
    b->nw = 0;
    b->np = 0;
    b->data.len = 0;
    return rc;
}

/* batch_free -- release a batch */
static void batch_free(struct batch *b)
{
    buf_free(&b->data);
    buf_free(&b->scratch);
    free(b->p);
    free(b->w);
    free(b->wlist);
    free(b->order);
}

/* apply_record -- add one record's ranges to the batch */
static rvm_return_t apply_record(struct seg *const *segs, uint32_t nsegs,
                                 const struct log_rec_hdr *h, const char *payload,
                                 struct batch *b, const char *logpath, struct apply_res *res)
{
    const char *rh = payload;
    size_t hdrs = (size_t)h->nranges * LOG_RANGE_HDR;
    size_t dlen = h->len - LOG_REC_HDR - hdrs;
    if (b->data.len + dlen > APPLY_BATCH && b->np > 0) {
        rvm_return_t rc = batch_flush(b, logpath);
        if (rc)
            return rc;
    }
    if (buf_reserve(&b->data, dlen) != 0)
        return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", logpath);
    uint64_t d = b->data.len;
    memcpy(b->data.p + d, payload + hdrs, dlen);
    b->data.len += dlen;
    for (uint32_t i = 0; i < h->nranges; i++) {
        struct log_range_hdr r;
        memcpy(&r, rh + (size_t)i * LOG_RANGE_HDR, sizeof(r));
        if (r.seg > nsegs || segs[r.seg] == NULL)
            return err_set(RVM_ELOG, "log %s: record %llu names segment id %u, which is not "
                           "in the log's segment dictionary; the log is damaged",
                           logpath, (unsigned long long)h->seq, r.seg);
        if (segs[r.seg]->fd < 0 && segs[r.seg]->ident_bad) {
            char want[2 * LOG_SEG_ID_LEN + 1];
            seg_ident_hex(segs[r.seg]->ident, want);
            return err_set(RVM_ELOG, "log %s: record %llu updates segment %s (id %u), but the "
                           "file at that path is not that segment: the log expects identity "
                           "%s and the file carries another one, or none. The log is never "
                           "applied to another segment; put the segment this log belongs to "
                           "back at that path (a copied pair must be copied together, log "
                           "and segment in one directory)", logpath,
                           (unsigned long long)h->seq, segs[r.seg]->path, r.seg, want);
        }
        if (segs[r.seg]->fd < 0)
            return err_set(RVM_EIO, "log %s: segment %s (id %u) has committed updates in the "
                           "log but cannot be opened: %s; restore the file and start again",
                           logpath, segs[r.seg]->path, r.seg,
                           segs[r.seg]->open_why ? segs[r.seg]->open_why
                                                 : strerror(segs[r.seg]->open_err));
        if (batch_add(b, segs[r.seg], r.off, r.len, d) != 0)
            return err_set(RVM_ENO_MEMORY, "out of memory applying log %s", logpath);
        d += r.len;
    }
    res->nranges += h->nranges;
    res->bytes += h->len;
    return RVM_SUCCESS;
}

/*
 * apply_log_rd -- apply valid records from (off, seq) while seq <= max_seq and fewer
 * than `limit` area bytes were consumed. Fills res with where the chain stopped.
 */
static rvm_return_t apply_log_rd(struct logrd *rd, struct seg *const *segs, uint32_t nsegs,
                                 uint64_t off, uint64_t seq, uint64_t max_seq,
                                 uint64_t limit, struct apply_res *res)
{
    struct batch b;
    memset(&b, 0, sizeof(b));
    rvm_return_t rc = RVM_SUCCESS;
    memset(res, 0, sizeof(*res));
    uint64_t cur = off;
    while (seq <= max_seq && res->consumed < limit) {
        const struct log_rec_hdr *h;
        const char *payload;
        uint64_t p = cur;
        int r = logrd_next(rd, &p, seq, &h, &payload);
        if (r < 0) {
            rc = err_set(RVM_EIO, "log %s: read failed: %s", rd->path, strerror(-r));
            rvm_ioerrno = -r;
            break;
        }
        if (r == 0)
            break;
        if (p != cur)
            res->consumed += rd->area_len - cur; /* the wrap gap */
        uint32_t len = h->len;
        rc = apply_record(segs, nsegs, h, payload, &b, rd->path, res);
        if (rc)
            break;
        res->consumed += len;
        res->nrec++;
        cur = p + len;
        if (rd->area_len - cur < LOG_REC_HDR) {
            res->consumed += rd->area_len - cur;
            cur = 0;
        }
        seq++;
    }
    if (rc == RVM_SUCCESS)
        rc = batch_flush(&b, rd->path);
    res->end_off = cur;
    res->next_seq = seq;
    batch_free(&b);
    return rc;
}

/* apply_log -- apply records of the open log (truncation and recovery) */
rvm_return_t apply_log(struct log *lg, uint64_t off, uint64_t seq, uint64_t max_seq,
                       uint64_t limit, struct apply_res *res)
{
    struct log_epoch ep[LOG_MAX_EPOCHS];
    pthread_mutex_lock(&lg->status_mu);   /* a status write may prune the table */
    uint32_t nep = lg->nepochs;
    memcpy(ep, lg->epochs, sizeof(ep));
    pthread_mutex_unlock(&lg->status_mu);
    struct logrd rd = { .fd = lg->fd, .path = lg->path, .area_off = lg->area_off,
                        .area_len = lg->area_len, .epochs = ep, .nepochs = nep,
                        .chunk = 64u << 10 };
    uint32_t nsegs = __atomic_load_n(&R.nsegs, __ATOMIC_ACQUIRE);
    rvm_return_t rc = apply_log_rd(&rd, R.segs, nsegs, off, seq, max_seq, limit, res);
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
            return err_io(errno, "segment %s: fsync failed: %s; the log still holds the "
                          "data (run recovery again once the problem is fixed)", s->path,
                          strerror(errno));
        s->dirty = 0;
    }
    return RVM_SUCCESS;
}

/* apply_sync_segments -- fsync the segments truncation wrote (caller holds trunc_mu) */
rvm_return_t apply_sync_segments(void)
{
    return apply_sync_table(R.segs, __atomic_load_n(&R.nsegs, __ATOMIC_ACQUIRE));
}
