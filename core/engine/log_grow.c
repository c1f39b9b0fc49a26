/* SPDX-License-Identifier: MIT */
/*
 * log_grow.c -- a log that is too small for a commit grows instead of refusing it.
 *
 * WHY. A commit whose record is larger than the record area used to fail (RVM_ETOO_BIG), so a
 * program that changed more than its log's size between two commits -- the shim's exit commit
 * of a big heap -- could never commit at all. Now the writer makes the area larger, up to a
 * bound (log_area_bound: rvm_log_max_len, or by default twice the total size of the segments
 * the log serves), and only the bound or a full disk refuse a commit.
 *
 * HOW (log_format.h, GROWTH, is the specification). The writer of the log (writer_active, so
 * no record is being placed meanwhile) (1) allocates the new part of the file, writes zeros
 * over it (but for the bytes the record that caused the growth writes next) and fdatasyncs
 * it, then (2) writes a status naming the larger area_len (the usual ping-pong
 * status write, head and dictionary unchanged) and fdatasyncs it; only then does a record
 * use the new space. A crash after (1) leaves a longer file under a status that names the old
 * area: readers never look past area_len, and the next growth writes the zeros again. A crash
 * during (2) leaves the other slot valid with the old area. The zeros are written, not just
 * fallocated, for the reason log_create gives: every later in-place commit into unwritten
 * extents would pay an extent conversion and a journal commit.
 *
 * WRAP. The area is a ring: live records run from head to tail, possibly past the area end
 * and on from offset 0 ("wrapped": head >= tail with records live). The new bytes go after
 * the old end, which is inside the free space when the log is not wrapped (free space runs
 * from the tail to the area end), so nothing else changes. When it is wrapped, the new bytes
 * lie between the last record before the old end and offset 0 -- inside the live part of the
 * ring -- so they are counted as dead space (like a wrap gap) until the head passes them;
 * readers coming from that record still find no valid record there (zeros, or stale bytes of
 * the old gap, which carry an older seq or salt) and continue at 0 by the wrap rule.
 * Truncation frees that gap with the area length of its pass, so the wrapped case holds
 * trunc_mu while the length changes.
 *
 * NO SHRINKING. A grown log keeps its size: the program that needed the space once (an exit
 * commit of a big heap) needs it again at its next exit, and growing costs a write of zeros
 * over all the new space. `rvmutl` can show the size; deleting the log after a clean
 * recovery and truncation gives the space back.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "rvm_int.h"
#include "sysio.h"

#define GROW_STEP ((uint64_t)1 << 20) /* growth is rounded up to whole MiB */
#define ZERO_CHUNK ((size_t)8 << 20)  /* one pwrite of zeros */

rvm_length_t rvm_log_max_len;

/* log_area_bound -- the largest record area this log may grow to: rvm_log_max_len when set,
 * else twice the total size of the segments it serves (a whole-segment change logs each byte
 * once plus 16 bytes per range), never less than the area it has now */
uint64_t log_area_bound(const struct log *lg)
{
    uint64_t b = rvm_log_max_len;
    if (b == 0) {
        uint32_t n = __atomic_load_n(&engine.nsegs, __ATOMIC_ACQUIRE);
        for (uint32_t i = 1; i <= n && b != UINT64_MAX; i++) {
            const struct seg *s = engine.segs[i];
            if (s == NULL)
                continue;
            b = s->size == UINT64_MAX || s->size > UINT64_MAX / 4 - b ? UINT64_MAX
                                                                      : b + 2 * s->size;
        }
    }
    b &= ~(uint64_t)4095;
    return b < lg->area_len ? lg->area_len : b;
}

/* log_wrapped -- do live records continue from offset 0? (lg->mu held) */
static int log_wrapped(const struct log *lg)
{
    return lg->used > 0 && lg->head_off >= lg->tail_off;
}

/*
 * log_grow_target -- the area length to grow to so that a record of `size` bytes can be
 * placed: right at the tail without waiting when the log is not wrapped, or (exact == 0)
 * at least once truncation has emptied the log. At least 1.5x the area (growing costs a
 * write of all new bytes, so not by a little each time), rounded to GROW_STEP, clamped to
 * the bound. 0 when the bound does not allow it. Caller holds lg->mu.
 */
uint64_t log_grow_target(const struct log *lg, uint64_t size, int exact)
{
    int wrapped = log_wrapped(lg);
    if (exact && wrapped)
        return 0; /* the new space is usable only after truncation */
    uint64_t must = lg->used == 0 || wrapped ? size : lg->tail_off + size;
    uint64_t want = lg->area_len + lg->area_len / 2;
    if (want < must)
        want = must;
    want = (want + GROW_STEP - 1) & ~(GROW_STEP - 1);
    uint64_t bound = log_area_bound(lg);
    if (want > bound)
        want = bound;
    /* not exact: a smaller area still takes the record once truncation has emptied it */
    if (want < (exact ? must : size))
        return 0;
    return want > lg->area_len ? want : 0;
}

/* grow_zeros -- pwrite zeros over file bytes [from, to); 0 or an errno */
static int grow_zeros(int fd, const void *z, uint64_t from, uint64_t to)
{
    int e = 0;
    for (uint64_t off = from; off < to && e == 0; off += ZERO_CHUNK) {
        size_t n = to - off < ZERO_CHUNK ? (size_t)(to - off) : ZERO_CHUNK;
        e = full_pwrite(fd, z, n, off);
    }
    return e;
}

/* grow_extend -- allocate file bytes [from, to), write zeros over them except [skip_from,
 * skip_to) (the record that caused the growth writes those next), and make it durable; on
 * failure the file is cut back to old_size (a full disk gets its space back). 0 or an errno.
 * Skipping is only done where fallocate worked: the skipped bytes are then reserved (no
 * ENOSPC when the record comes) and read as zeros until it does; the record's own write is
 * what converts their extents, once. Writing zeros there first would double the I/O of a big
 * commit (3 GiB of zeros cost 17 s on a loaded machine here). */
static int grow_extend(struct log *lg, uint64_t from, uint64_t to, uint64_t old_size,
                       uint64_t skip_from, uint64_t skip_to)
{
    /* a read-only anonymous mapping reads as the zero page: no memory for the zeros */
    void *z = mmap(NULL, ZERO_CHUNK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (z == MAP_FAILED)
        return ENOMEM;
    int e = 0;
    /* allocate first: a full disk fails here at once instead of after gigabytes of writes */
    if (sysio.fallocate(lg->fd, 0, (off_t)from, (off_t)(to - from)) != 0) {
        e = errno == EOPNOTSUPP ? 0 : errno;
        skip_from = skip_to = to; /* nothing reserved: every byte is written */
    }
    if (skip_from < from || skip_from > skip_to || skip_to > to)
        skip_from = skip_to = to;
    if (e == 0)
        e = grow_zeros(lg->fd, z, from, skip_from);
    if (e == 0)
        e = grow_zeros(lg->fd, z, skip_to, to);
    if (e == 0 && sysio.fdatasync(lg->fd) != 0)
        e = errno;
    munmap(z, ZERO_CHUNK);
    if (e != 0 && sysio.ftruncate(lg->fd, (off_t)old_size) != 0) {
        /* the longer file is harmless (the status names the old area), only wasteful */
    }
    return e;
}

/* grow_refused -- the error for a record the bound does not allow */
static rvm_return_t grow_refused(const struct log *lg, uint64_t size)
{
    return err_set(RVM_ETOO_BIG,
                   "log %s: a commit needs a %llu-byte log record, and the log may "
                   "grow to %llu bytes of record area only (%s); raise the bound (lrvm-run "
                   "--log-max / LRVM_LOG_MAX, or rvm_log_max_len), or commit in smaller pieces",
                   lg->path, (unsigned long long)size, (unsigned long long)log_area_bound(lg),
                   rvm_log_max_len ? "the bound set" : "twice the size of its segments");
}

/*
 * log_grow -- make the record area large enough for a record of `size` bytes (see
 * log_grow_target for `exact`). Caller holds lg->mu and is the log's writer (writer_active:
 * no record is placed meanwhile); lg->mu is released during the I/O. Nothing of any record
 * is written here, so a failure to extend (a full disk) is not sticky: the commit is refused,
 * every earlier commit is intact, and a later commit may try again. A failed status write
 * is sticky, as every status write failure is.
 */
rvm_return_t log_grow(struct log *lg, uint64_t size, int exact)
{
    uint64_t old = lg->area_len, to = log_grow_target(lg, size, exact);
    if (to == 0)
        return grow_refused(lg, size);
    int wrapped = log_wrapped(lg);
    /* where the record will go once the area is larger (the placement rules of
     * log_write_batch and stream_place): at the tail, or at 0 in an empty log it would
     * overrun. In a wrapped log it waits for truncation: nothing is skipped. */
    uint64_t at = lg->used == 0 && lg->tail_off + size > to ? 0 : lg->tail_off;
    uint64_t skip_from = lg->area_off + (at > old ? at : old);
    uint64_t skip_to = lg->area_off + (at + size < to ? at + size : to);
    if (wrapped || skip_to <= skip_from)
        skip_from = skip_to = lg->area_off + to;
    pthread_mutex_unlock(&lg->mu);
    /* wrapped: the dead space added below must be freed with the new length (see WRAP) */
    if (wrapped)
        pthread_mutex_lock(&lg->trunc_mu);
    struct stat sb;
    int e = sysio.fstat(lg->fd, &sb) != 0 ? errno : 0;
    if (e == 0)
        e = grow_extend(lg, lg->area_off + old, lg->area_off + to, (uint64_t)sb.st_size, skip_from,
                        skip_to);
    rvm_return_t rc = RVM_SUCCESS;
    if (e != 0) {
        rvm_ioerrno = e;
        rc = err_set(RVM_EIO,
                     "log %s cannot grow from %llu to %llu bytes of record area for a "
                     "%llu-byte commit: %s; the commit was refused and nothing of it was written "
                     "(every earlier commit is intact); free disk space and commit again",
                     lg->path, (unsigned long long)old, (unsigned long long)to,
                     (unsigned long long)size, strerror(e));
    } else {
        /* the new bytes are durable zeros: now the status may name them. The length changes
         * under status_mu (status writes read it) and lg->mu (writers read it). */
        pthread_mutex_lock(&lg->status_mu);
        pthread_mutex_lock(&lg->mu);
        lg->area_len = to;
        if (wrapped && lg->used > 0 && lg->head_off >= lg->tail_off) {
            lg->used += to - old;
            /* an applied span (trunc.c) that already runs past the old end holds the new
             * dead bytes too: the step that takes it must free them with it */
            if (lg->applied_seq != 0 && lg->applied_seq >= lg->head_seq &&
                lg->applied_end < lg->head_off)
                lg->applied_bytes += to - old;
        }
        pthread_mutex_unlock(&lg->mu);
        rc = log_status_write(lg, lg->st_head_off, lg->st_head_seq);
        pthread_mutex_unlock(&lg->status_mu);
    }
    if (wrapped)
        pthread_mutex_unlock(&lg->trunc_mu);
    pthread_mutex_lock(&lg->mu);
    if (rc == RVM_SUCCESS)
        lg->n_grow++;
    return rc;
}

/*
 * log_ensure_area -- before a record of `size` bytes is queued: if it can never fit the area,
 * become the writer and grow now, so that a refusal leaves the transaction open (nothing was
 * queued) instead of failing a batch. Caller holds lg->mu.
 */
rvm_return_t log_ensure_area(struct log *lg, uint64_t size)
{
    while (lg->area_len < size) {
        if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
            return RVM_EIO;
        if (lg->writer_active) {
            pthread_cond_wait(&lg->sync_cv, &lg->mu);
            continue;
        }
        lg->writer_active = 1;
        rvm_return_t rc = log_grow(lg, size, 0);
        lg->writer_active = 0;
        pthread_cond_broadcast(&lg->sync_cv);
        if (rc != RVM_SUCCESS)
            return rc;
    }
    return RVM_SUCCESS;
}
