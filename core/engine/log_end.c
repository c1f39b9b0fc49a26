/* SPDX-License-Identifier: MIT */
/*
 * log_end.c -- where the chain of valid records ends, and whether that end is honest.
 *
 * The chain of records stops at the first one that does not validate. If that record is
 * the torn last write of a crash, stopping is right: it was never acknowledged. If it
 * was damaged after it was acknowledged, every later record is an acknowledged commit
 * too, and stopping would drop them all in silence. log_format.h (END MARKER AND DAMAGE)
 * specifies how the two are told apart; this file implements it for recovery and for
 * `rvmutl verify` / `salvage`:
 *
 *   - an end marker for the expected seq at the stopping point: the last write ended
 *     there (the common case, read with one 32-byte check);
 *   - else the free space is scanned for a valid record with a later seq (same epoch
 *     rules as any record) whose durable frontier covers the expected seq: found means
 *     damage in the middle of acknowledged commits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvm_int.h"

#define SCAN_CHUNK ((size_t)1 << 20)

/* end_seed -- the CRC seed a record (or marker) with this seq must use */
static uint32_t end_seed(const struct logrd *rd, uint64_t seq)
{
    if (rd->epochs)
        return rec_seed_for(rd->epochs, rd->nepochs, seq);
    return (uint32_t)(rd->salt ^ (rd->salt >> 32));
}

/* marker_crc -- the CRC of an end marker header (crc field taken as zero) */
static uint32_t marker_crc(struct log_rec_hdr h, uint32_t seed)
{
    h.crc = 0;
    return crc32c(seed, &h, sizeof(h));
}

/* log_end_marker -- format the end marker for `seq` (32 bytes at p) */
void log_end_marker(char *p, uint64_t seq, uint64_t salt)
{
    struct log_rec_hdr h = {.magic = LOG_REC_MAGIC,
                            .type = LOG_REC_END,
                            .flags = 0,
                            .len = LOG_REC_HDR,
                            .crc = 0,
                            .seq = seq,
                            .nranges = 0,
                            .ntxn = 0};
    h.crc = marker_crc(h, (uint32_t)(salt ^ (salt >> 32)));
    memcpy(p, &h, sizeof(h));
}

/* marker_at -- is there a valid end marker for seq at area offset pos? */
static int marker_at(struct logrd *rd, uint64_t pos, uint64_t seq)
{
    struct log_rec_hdr h;
    if (rd->area_len - pos < LOG_REC_HDR ||
        full_pread(rd->fd, &h, sizeof(h), rd->area_off + pos) != 0)
        return 0;
    return h.magic == LOG_REC_MAGIC && h.type == LOG_REC_END && h.len == LOG_REC_HDR &&
           h.seq == seq && h.nranges == 0 && h.ntxn == 0 &&
           h.crc == marker_crc(h, end_seed(rd, seq));
}

/* scan_range -- look for a valid record with seq > after in area bytes [lo, hi);
 * 1 and *off, *seq set when found, 0 if none, -errno on a read error */
static int scan_range(struct logrd *rd, char *buf, uint64_t lo, uint64_t hi, uint64_t after,
                      uint64_t *off, uint64_t *seq)
{
    for (uint64_t a = lo; a + LOG_REC_HDR <= hi; a += SCAN_CHUNK) {
        /* read a chunk plus one header's overlap, so a header across chunks is seen */
        uint64_t n = hi - a < SCAN_CHUNK + LOG_REC_HDR ? hi - a : SCAN_CHUNK + LOG_REC_HDR;
        int e = full_pread(rd->fd, buf, (size_t)n, rd->area_off + a);
        if (e)
            return e > 0 ? -e : -EIO;
        for (uint64_t i = 0; i + LOG_REC_HDR <= n && i < SCAN_CHUNK; i += 8) {
            struct log_rec_hdr h;
            memcpy(&h, buf + i, sizeof(h));
            if (h.magic != LOG_REC_MAGIC || h.type != LOG_REC_TXN || h.seq <= after ||
                h.seq - after > ((uint64_t)1 << 40) || h.len < LOG_REC_HDR || (h.len & 7) ||
                a + i + h.len > rd->area_len)
                continue;
            const struct log_rec_hdr *vh;
            const char *pl;
            int r = logrd_try(rd, a + i, h.seq, &vh, &pl);
            if (r < 0)
                return r;
            /* proof only if the record's durable frontier covers `after`: records of the
             * same unsynced write may survive a torn one (log_format.h) */
            if (r == 1 && vh->flags != 0 && vh->seq - vh->flags >= after) {
                *off = a + i;
                *seq = h.seq;
                return 1;
            }
        }
    }
    return 0;
}

/* run_end -- the last seq of the valid run of records starting with seq at off */
static uint64_t run_end(struct logrd *rd, uint64_t off, uint64_t seq)
{
    uint64_t cur = off, last = seq - 1;
    for (uint64_t n = 0; n <= rd->area_len / LOG_REC_HDR; n++) {
        const struct log_rec_hdr *h;
        const char *pl;
        uint64_t p = cur;
        if (logrd_next(rd, &p, seq, &h, &pl) != 1)
            break;
        last = seq++;
        cur = p + h->len;
        if (rd->area_len - cur < LOG_REC_HDR)
            cur = 0;
    }
    return last;
}

/*
 * log_end_find -- classify the end of the chain at area offset end_off, where a record
 * with sequence number seq was expected; head_off bounds the free space. 0, or -errno.
 */
int log_end_find(struct logrd *rd, uint64_t end_off, uint64_t seq, uint64_t head_off,
                 struct log_end *out)
{
    memset(out, 0, sizeof(*out));
    out->off = end_off;
    out->seq = seq;
    if (marker_at(rd, end_off, seq)) {
        out->kind = LOG_END_MARKER;
        return 0;
    }
    out->kind = LOG_END_UNMARKED;
    char *buf = malloc(SCAN_CHUNK + LOG_REC_HDR);
    if (buf == NULL)
        return -ENOMEM;
    /* free space: [end, head) if the head is ahead, else [end, area end) then [0, head) */
    uint64_t lo[2] = {end_off, 0}, hi[2] = {head_off, 0};
    int parts = 1;
    if (head_off <= end_off) {
        hi[0] = rd->area_len;
        hi[1] = head_off;
        parts = 2;
    }
    int r = 0;
    for (int i = 0; i < parts && r == 0; i++)
        r = scan_range(rd, buf, lo[i], hi[i], seq, &out->later_off, &out->later_seq);
    free(buf);
    if (r < 0)
        return r;
    if (r == 1) {
        out->kind = LOG_END_DAMAGED;
        out->last_seq = run_end(rd, out->later_off, out->later_seq);
    }
    return 0;
}

/* log_end_error -- the error recovery reports for a damaged record in the middle */
rvm_return_t log_end_error(const char *logpath, const struct log_end *e)
{
    return err_set(RVM_ELOG,
                   "log %s: record %llu (record-area offset %llu) is damaged, but "
                   "later committed records exist (records %llu..%llu, the first at offset "
                   "%llu): this is not a torn tail, and recovering would silently drop "
                   "acknowledged commits, so recovery stops and leaves the log as it is. Keep "
                   "a copy of the log; `rvmutl verify %s` shows the damage, and "
                   "`rvmutl salvage %s` recovers the records before it, dropping records "
                   "%llu..%llu",
                   logpath, (unsigned long long)e->seq, (unsigned long long)e->off,
                   (unsigned long long)e->later_seq, (unsigned long long)e->last_seq,
                   (unsigned long long)e->later_off, logpath, logpath, (unsigned long long)e->seq,
                   (unsigned long long)e->last_seq);
}
