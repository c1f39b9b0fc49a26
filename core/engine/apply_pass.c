/* SPDX-License-Identifier: MIT */
/*
 * apply_pass.c -- one apply pass: the final bytes of every segment range that a run of
 * consecutive records touches, written once, in offset order.
 *
 * WHY. Records are many small ranges spread over the segment (an auto-tracked commit is
 * thousands of 100-4000 byte page diffs), and the same bytes are often rewritten by later
 * records. Writing record by record costs a syscall per range and writes overwritten bytes
 * again and again. A pass instead
 *   1. collects one "piece" per range of consecutive records, in log order: where it goes
 *      and where its new bytes are in the log read window (no copy while the window holds
 *      them; when it moves, the bytes still needed are carried over, up to APPLY_PASS_BYTES;
 *      a larger record is a pass of its own);
 *   2. sorts the pieces by (segment, offset) with a stable radix sort, so that pieces at the
 *      same offset stay in log order;
 *   3. sweeps them in offset order, keeping the pieces that cover the current offset in a
 *      max-heap by log position: the newest covering piece owns each byte (a later record
 *      overrides an earlier one, exactly as sequential replay would leave it), which gives
 *      a list of disjoint "extents" (offset, length, where the final bytes are);
 *   4. writes the extents in offset order, neighbours closer than APPLY_GAP merged into one
 *      span (the few bytes between them are read first and written back unchanged).
 * Passes run in log order, so bytes touched by two passes end with the later pass's value.
 *
 * PAGE-SIZED WRITES. A span is written one page at a time (seg_pwrite), never in one large
 * pwrite. The page cache keeps a file in folios of the size they were created with, and a
 * large pwrite into uncached pages creates large folios (up to 2 MiB). Every later write into
 * such a folio walks all of its block buffers, however few bytes it writes: measured on ext4
 * (Linux 6.18), a 200-byte pwrite costs 0.9 us in a file written page by page and 6.3 us in
 * one written in 4 MiB pieces. The next records for those pages are small ones, forever, so
 * the one pass that writes a large span pays a syscall per page instead (~1 us each), and
 * every later small write stays cheap. Segment descriptors read without readahead (seg.c),
 * and the shim's heap mapping has no read-around where the heap grows (persist.c), for the
 * same reason.
 *
 * CRASH SAFETY. The order of writes inside a pass differs from the log order, and the
 * segment passes through states no sequential replay would produce (an offset may show a
 * newer value while its neighbour still shows an older one). That is harmless for the same
 * reasons as before: the pass writes only the values of valid committed records (no-steal),
 * every value it writes is the final value of that byte for the records of the pass, and the
 * status block still names the pass's first record as the head until the segments are
 * fsynced (barrier 2 of WRITE BARRIERS in log_format.h). A crash anywhere in a pass, or
 * between passes, leaves the head where it was: recovery applies the same records again
 * and, because a pass's result depends only on the records (new values, not deltas), ends
 * with the same bytes. The bytes re-written between two extents of a span are the values the
 * file held a moment before: only apply passes write segment files, and they run one at a
 * time (trunc_mu, or recovery before the log is open to anyone else).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "apply_pass.h"
#include "sysio.h"

#define APPLY_GAP 4096u           /* merge extents closer than a page into one write */
#define APPLY_SPAN_MAX (4u << 20) /* largest merged span (scratch buffer size) */
#define APPLY_PAGE 4096u          /* largest single pwrite (PAGE-SIZED WRITES) */

/* pass_reset -- empty the pass, keeping its buffers for the next one */
void pass_reset(struct apply_pass *p)
{
    p->n = 0;
    p->nx = 0;
    p->carry_len = 0;
    p->wlo = p->whi = NULL;
    p->wfirst = 0;
}

/* pass_note -- the pass now points into [lo, hi) of the current read window */
void pass_note(struct apply_pass *p, const char *lo, const char *hi)
{
    /* records follow each other in the window, but after a wrap the next one is at its
     * start: keep the span covering all of them */
    if (p->wlo == NULL || lo < p->wlo)
        p->wlo = lo;
    if (p->whi == NULL || hi > p->whi)
        p->whi = hi;
}

/*
 * pass_carry -- the read window is about to move: copy the bytes the pass uses out of it into
 * the carry buffer and repoint the pieces. The window grows from 64 KiB (a short log costs
 * little), so without this the first windows would make small passes, and a small pass of
 * records spread over the whole segment writes range by range. 0, or -1 when the carry is
 * full (or cannot be allocated): then the caller writes the pass out instead.
 */
int pass_carry(struct apply_pass *p)
{
    if (p->wlo == NULL)
        return 0;
    size_t need = (size_t)(p->whi - p->wlo);
    if (p->carry == NULL && (p->carry = malloc(APPLY_PASS_BYTES)) == NULL)
        return -1;
    if (need > APPLY_PASS_BYTES - p->carry_len)
        return -1;
    char *to = p->carry + p->carry_len;
    memcpy(to, p->wlo, need);
    for (size_t i = p->wfirst; i < p->n; i++)
        p->pc[i].src = to + (p->pc[i].src - p->wlo);
    p->carry_len += need;
    p->wlo = p->whi = NULL;
    p->wfirst = p->n;
    return 0;
}

/* pass_free -- release a pass's buffers */
void pass_free(struct apply_pass *p)
{
    buf_free(&p->scratch);
    free(p->carry);
    free(p->pc);
    free(p->ord);
    free(p->tmp);
    free(p->heap);
    free(p->x);
    memset(p, 0, sizeof(*p));
}

/* pass_add -- one range: len new bytes at src go to (seg, off). 0 or ENOMEM;
 * EINVAL for an offset beyond what a key can hold (no file system has such files) */
int pass_add(struct apply_pass *p, struct seg *s, uint64_t off, uint32_t len, const char *src)
{
    if (len == 0)
        return 0;
    if (off >= PASS_OFF_LIMIT || PASS_OFF_LIMIT - off < len)
        return EINVAL;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4096;
        struct pass_piece *pc = realloc(p->pc, cap * sizeof(*pc));
        if (pc == NULL)
            return ENOMEM;
        p->pc = pc;
        p->cap = cap;
    }
    p->pc[p->n++] = (struct pass_piece){.key = PASS_KEY(s->id, off), .src = src, .len = len};
    p->segs[s->id] = s;
    return 0;
}

/* grow -- make *a hold n elements of size sz; 0 or ENOMEM */
static int grow(void **a, size_t *cap, size_t n, size_t sz)
{
    if (*cap >= n)
        return 0;
    if (n < 2 * *cap)
        n = 2 * *cap; /* doubling: a few reallocations per apply, not one per pass */
    void *q = realloc(*a, n * sz);
    if (q == NULL)
        return ENOMEM;
    *a = q;
    *cap = n;
    return 0;
}

/* pass_sort -- p->ord: the pieces by key, log order kept among equal keys (LSD radix sort,
 * one 8-bit digit at a time, skipping digits on which all keys agree) */
static int pass_sort(struct apply_pass *p)
{
    size_t n = p->n;
    if (grow((void **)&p->ord, &p->ordcap, n, sizeof(*p->ord)) ||
        grow((void **)&p->tmp, &p->tmpcap, n, sizeof(*p->tmp)))
        return ENOMEM;
    uint64_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        p->ord[i] = (struct pass_ord){p->pc[i].key, (uint32_t)i};
        differ |= p->pc[i].key ^ p->pc[0].key;
    }
    struct pass_ord *src = p->ord, *dst = p->tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        if (((differ >> shift) & 0xff) == 0)
            continue;
        size_t cnt[256] = {0};
        for (size_t i = 0; i < n; i++)
            cnt[(src[i].key >> shift) & 0xff]++;
        size_t sum = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i].key >> shift) & 0xff]++] = src[i];
        struct pass_ord *t = src;
        src = dst;
        dst = t;
    }
    if (src != p->ord)
        memcpy(p->ord, src, n * sizeof(*src));
    return 0;
}

/* heap of covering pieces, the newest (highest log position) on top */
static void heap_push(uint32_t *h, size_t *hn, uint32_t v)
{
    size_t i = (*hn)++;
    while (i > 0 && h[(i - 1) / 2] < v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static void heap_pop(uint32_t *h, size_t *hn)
{
    uint32_t v = h[--(*hn)];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] > h[c])
            c++;
        if (h[c] <= v)
            break;
        h[i] = h[c];
        i = c;
    }
    if (n > 0)
        h[i] = v;
}

/* emit -- append the extent [key, key+len) taking its bytes at src; merged with the last one
 * when both continue each other (a piece cut by the start of an older, hidden piece) */
static int emit(struct apply_pass *p, uint64_t key, uint64_t len, const char *src)
{
    if (p->nx > 0) {
        struct pass_extent *l = &p->x[p->nx - 1];
        if (l->key + l->len == key && l->src + l->len == src) {
            l->len += len;
            return 0;
        }
    }
    if (grow((void **)&p->x, &p->xcap, p->nx + 1 < 1024 ? 1024 : (p->nx + 1) * 2, sizeof(*p->x)))
        return ENOMEM;
    p->x[p->nx++] = (struct pass_extent){.key = key, .len = len, .src = src};
    return 0;
}

/* pass_resolve -- sweep the sorted pieces into disjoint extents, newest piece winning */
static int pass_resolve(struct apply_pass *p)
{
    if (grow((void **)&p->heap, &p->heapcap, p->n, sizeof(*p->heap)))
        return ENOMEM;
    const struct pass_piece *pc = p->pc;
    uint32_t *h = p->heap;
    size_t k = 0, hn = 0, n = p->n;
    p->nx = 0;
    while (k < n) {
        uint64_t pos = p->ord[k].key;
        for (;;) {
            while (k < n && p->ord[k].key <= pos)
                heap_push(h, &hn, p->ord[k++].idx);
            while (hn > 0 && pc[h[0]].key + pc[h[0]].len <= pos)
                heap_pop(h, &hn); /* ended: no longer covers anything */
            if (hn == 0)
                break; /* a hole: the next piece starts a new run */
            const struct pass_piece *top = &pc[h[0]];
            uint64_t end = top->key + top->len;
            if (k < n && p->ord[k].key < end)
                end = p->ord[k].key; /* a piece starts here: it may be newer */
            if (emit(p, pos, end - pos, top->src + (pos - top->key)))
                return ENOMEM;
            pos = end;
        }
    }
    return 0;
}

/* span_end -- the extents [i, j) merged into one write starting at extent i */
static size_t span_end(const struct apply_pass *p, size_t i)
{
    const struct pass_extent *x = p->x;
    uint64_t start = x[i].key, seg = x[i].key >> PASS_OFF_BITS;
    size_t j = i + 1;
    while (j < p->nx && x[j].key >> PASS_OFF_BITS == seg &&
           x[j].key - (x[j - 1].key + x[j - 1].len) < APPLY_GAP &&
           x[j].key + x[j].len - start <= APPLY_SPAN_MAX)
        j++;
    return j;
}

/* span_read_gaps -- fill scratch[0, len) with the file's bytes at off (zeros past its end):
 * the bytes between the span's extents are written back as they are */
static int span_read_gaps(int fd, char *scratch, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t r = sysio.pread(fd, scratch + done, (size_t)(len - done), (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno ? errno : EIO;
        if (r == 0) {
            /* past the end: a hole there would read as zeros once the write extends the
             * file, so zeros are what the file "held" */
            memset(scratch + done, 0, (size_t)(len - done));
            break;
        }
        done += (uint64_t)r;
    }
    return 0;
}

/* seg_pwrite -- n bytes at off, in pieces that do not cross a page boundary, so that no
 * write creates a folio larger than a page (PAGE-SIZED WRITES); 0 or errno */
static int seg_pwrite(int fd, const char *src, size_t n, uint64_t off)
{
    while (n > 0) {
        size_t piece = APPLY_PAGE - (size_t)(off & (APPLY_PAGE - 1));
        if (piece > n)
            piece = n;
        int e = full_pwrite(fd, src, piece, off);
        if (e)
            return e;
        src += piece;
        off += piece;
        n -= piece;
    }
    return 0;
}

/* extent_write -- one extent, straight from the log read window */
static int extent_write(struct apply_pass *p, size_t k)
{
    const struct pass_extent *x = &p->x[k];
    struct seg *s = p->segs[x->key >> PASS_OFF_BITS];
    s->dirty = 1;
    return seg_pwrite(s->fd, x->src, (size_t)x->len, x->key & (PASS_OFF_LIMIT - 1));
}

/*
 * span_write -- write extents [i, j) of one segment. Extents that touch each other are copied
 * into one buffer and written with one pwrite. Extents with gaps between them are worth one
 * pread (of the gaps' current bytes) + one pwrite only when that replaces at least three
 * writes; otherwise each is written on its own. 0 or errno.
 */
static int span_write(struct apply_pass *p, size_t i, size_t j)
{
    const struct pass_extent *x = p->x;
    if (j == i + 1)
        return extent_write(p, i);
    int gaps = 0;
    for (size_t k = i + 1; k < j && !gaps; k++)
        gaps = x[k].key != x[k - 1].key + x[k - 1].len;
    if (gaps && j - i < 3) {
        int e = 0;
        for (size_t k = i; k < j && e == 0; k++)
            e = extent_write(p, k);
        return e;
    }
    struct seg *s = p->segs[x[i].key >> PASS_OFF_BITS];
    uint64_t off = x[i].key & (PASS_OFF_LIMIT - 1);
    uint64_t len = x[j - 1].key + x[j - 1].len - x[i].key;
    s->dirty = 1;
    p->scratch.len = 0;
    if (buf_reserve(&p->scratch, (size_t)len) != 0)
        return ENOMEM;
    if (gaps) {
        /* read without readahead (the descriptor's, seg.c): the gaps are read once and in
         * small pieces, readahead would only fill the page cache ahead of them */
        int e = span_read_gaps(s->fd, p->scratch.p, len, off);
        if (e)
            return e;
    }
    for (size_t k = i; k < j; k++)
        memcpy(p->scratch.p + (x[k].key - x[i].key), x[k].src, (size_t)x[k].len);
    return seg_pwrite(s->fd, p->scratch.p, (size_t)len, off);
}

/* pass_write -- resolve the pass and write it; then empty it. 0 or errno; on error *bad is the
 * segment whose write failed (NULL: out of memory) */
int pass_write(struct apply_pass *p, struct seg **bad)
{
    *bad = NULL;
    if (p->n == 0)
        return 0;
    int e = pass_sort(p);
    if (e == 0)
        e = pass_resolve(p);
    for (size_t i = 0; e == 0 && i < p->nx;) {
        size_t j = span_end(p, i);
        e = span_write(p, i, j);
        if (e && e != ENOMEM)
            *bad = p->segs[p->x[i].key >> PASS_OFF_BITS];
        i = j;
    }
    pass_reset(p);
    return e;
}
