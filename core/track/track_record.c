/* SPDX-License-Identifier: MIT */
/*
 * track_record.c -- the record of the tracked commit in flight: the ranges of changed bytes
 * found by the diff, and a copy of those bytes (or, for a final commit written while the
 * threads are parked, pointers into the tracked memory itself). Reused across commits and
 * grown with mmap only (mmap_buf_grow), so it may grow inside the pause: no libc lock.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rvm_int.h"
#include "track_int.h"

struct track_record track_rec;

/* changed runs of one page (track_diff_page's output), allocated outside the pause */
static struct track_run *diff_runs;

/* track_record_ready -- the scratch the diff needs; 0 or -1 */
int track_record_ready(void)
{
    if (diff_runs == NULL)
        diff_runs = malloc((track_ps() / 2 + 2) * sizeof(*diff_runs));
    return diff_runs != NULL ? 0 : -1;
}

/* track_record_clear -- start an empty record (copied bytes, not in place) */
void track_record_clear(void)
{
    track_rec.in_place = 0;
    track_rec.data_len = 0;
    track_rec.nranges = 0;
}

/* track_record_reserve -- room for `bytes` more data and one more range */
static int track_record_reserve(size_t bytes)
{
    struct track_record *rec = &track_rec;
    if (rec->data_len + bytes > rec->data_cap &&
        mmap_buf_grow((void **)&rec->data, &rec->data_cap, rec->data_len + bytes, 1 << 16) != 0)
        return -1;
    if (rec->nranges + 1 > rec->ranges_cap) {
        size_t bytes_now = rec->ranges_cap * sizeof(*rec->ranges);
        if (mmap_buf_grow((void **)&rec->ranges, &bytes_now,
                          (rec->nranges + 1) * sizeof(*rec->ranges),
                          1024 * sizeof(*rec->ranges)) != 0)
            return -1;
        rec->ranges_cap = bytes_now / sizeof(*rec->ranges);
    }
    return 0;
}

/* track_emit_in_place -- append a range whose bytes stay in the tracked memory at src;
 * joins the previous range if this one continues it in the segment and in memory */
static int track_emit_in_place(struct track_region *r, uint64_t off, const char *src, size_t n)
{
    struct track_record *rec = &track_rec;
    if (track_record_reserve(0) != 0)
        return -1;
    struct track_range *last = rec->nranges > 0 ? &rec->ranges[rec->nranges - 1] : NULL;
    if (last != NULL && last->cookie == r->pub && last->off + last->len == off &&
        last->src + last->len == src) {
        last->len += n;
        return 0;
    }
    rec->ranges[rec->nranges++] = (struct track_range){
        .cookie = r->pub, .dest = r->base + (off - r->seg_off), .off = off, .len = n, .src = src};
    return 0;
}

/* track_emit -- append n bytes at segment offset off of r (data from src); joins a range
 * that ends exactly where this one starts. src is kept as an offset into data until the
 * record is complete (data may move). */
static int track_emit(struct track_region *r, uint64_t off, const char *src, size_t n)
{
    struct track_record *rec = &track_rec;
    if (rec->in_place)
        return track_emit_in_place(r, off, src, n);
    if (track_record_reserve(n) != 0)
        return -1;
    if (rec->nranges > 0) {
        struct track_range *last = &rec->ranges[rec->nranges - 1];
        if (last->cookie == r->pub && last->off + last->len == off &&
            (uintptr_t)last->src + last->len == rec->data_len) {
            memcpy(rec->data + rec->data_len, src, n);
            rec->data_len += n;
            last->len += n;
            return 0;
        }
    }
    rec->ranges[rec->nranges++] =
        (struct track_range){.cookie = r->pub,
                             .dest = r->base + (off - r->seg_off),
                             .off = off,
                             .len = n,
                             .src = (const char *)(uintptr_t)rec->data_len};
    memcpy(rec->data + rec->data_len, src, n);
    rec->data_len += n;
    return 0;
}

/* track_record_materialize -- turn in-place ranges (src: the memory) into ordinary ones
 * (src: an offset into data, the bytes copied there); mmap only, so it may run in the
 * pause */
int track_record_materialize(void)
{
    struct track_record *rec = &track_rec;
    size_t total = 0;
    for (size_t k = 0; k < rec->nranges; k++)
        total += rec->ranges[k].len;
    rec->data_len = 0;
    if (total > rec->data_cap &&
        mmap_buf_grow((void **)&rec->data, &rec->data_cap, total, 1 << 16) != 0)
        return -1;
    for (size_t k = 0; k < rec->nranges; k++) {
        memcpy(rec->data + rec->data_len, rec->ranges[k].src, rec->ranges[k].len);
        rec->ranges[k].src = (const char *)(uintptr_t)rec->data_len;
        rec->data_len += rec->ranges[k].len;
    }
    rec->in_place = 0;
    return 0;
}

/* track_emit_page -- emit the changes of page i (content cur, committed image old or NULL
 * for "log it whole") */
int track_emit_page(struct track_region *r, size_t i, const char *cur, const char *old)
{
    size_t plen = track_page_len(r, i);
    uint64_t off = r->seg_off + (uint64_t)i * track_ps();
    tracker.st.bytes_diffed += old ? plen : 0;
    if (old == NULL) {
        tracker.st.whole_pages++;
        return track_emit(r, off, cur, plen);
    }
    size_t n = track_diff_page(cur, old, plen, tracker.merge_gap, diff_runs);
    for (size_t k = 0; k < n; k++)
        if (track_emit(r, off + diff_runs[k].off, cur + diff_runs[k].off, diff_runs[k].len) != 0)
            return -1;
    return 0;
}

/* track_record_mark -- remember the record's end (and its last range, which an emit may
 * extend) */
void track_record_mark(struct track_record_mark *m)
{
    m->data_len = track_rec.data_len;
    m->nranges = track_rec.nranges;
    if (m->nranges > 0)
        m->last = track_rec.ranges[m->nranges - 1];
}

/* track_record_undo -- forget everything emitted since the mark */
void track_record_undo(const struct track_record_mark *m)
{
    track_rec.data_len = m->data_len;
    track_rec.nranges = m->nranges;
    if (m->nranges > 0)
        track_rec.ranges[m->nranges - 1] = m->last;
}

/* track_record_finish -- the record is complete: turn src offsets into pointers (in-place
 * ranges point at the memory already); returns the bytes of all ranges */
uint64_t track_record_finish(void)
{
    struct track_record *rec = &track_rec;
    uint64_t bytes = 0;
    for (size_t k = 0; k < rec->nranges; k++) {
        if (!rec->in_place)
            rec->ranges[k].src = rec->data + (uintptr_t)rec->ranges[k].src;
        bytes += rec->ranges[k].len;
    }
    return bytes;
}

/* track_record_shrink -- do not keep a huge record buffer, nor a huge range list, around */
void track_record_shrink(void)
{
    struct track_record *rec = &track_rec;
    if (rec->data_cap > ((size_t)64 << 20)) {
        munmap(rec->data, rec->data_cap);
        rec->data = NULL;
        rec->data_cap = 0;
    }
    if (rec->ranges_cap * sizeof(*rec->ranges) > ((size_t)64 << 20)) {
        munmap(rec->ranges, rec->ranges_cap * sizeof(*rec->ranges));
        rec->ranges = NULL;
        rec->ranges_cap = 0;
    }
}
