/* SPDX-License-Identifier: MIT */
/*
 * log.c -- the redo log: creation, the status block, appending records, group commit.
 *
 * The format is specified in log_format.h. This file keeps the in-memory picture of
 * the circular area: [head, tail) is live, `used` counts its bytes including wrap
 * gaps, and `pend` holds formatted records (sequence numbers assigned) that no write
 * has taken yet. Exactly one thread at a time (the "leader", writer_active) writes;
 * committers whose records it covers wait on sync_cv and share its fdatasync.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "filecheck.h"
#include "loglock.h"
#include "rvm_int.h"
#include "sysio.h"

/* rec_seed -- the 32-bit CRC seed of a log incarnation */
static inline uint32_t rec_seed(uint64_t salt)
{
    return (uint32_t)(salt ^ (salt >> 32));
}

/* log_new_salt -- a random salt different from `old` */
uint64_t log_new_salt(uint64_t old)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
        s = now_usec() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    if (rec_seed(s) == rec_seed(old))
        s ^= 1;
    return s;
}

/* log_sync_dir -- fsync the directory holding path, so a new file's name is durable */
static int log_sync_dir(const char *path)
{
    char *dup = strdup(path);
    if (dup == NULL)
        return ENOMEM;
    int fd = sysio.open(dirname(dup), O_RDONLY | O_DIRECTORY, 0);
    free(dup);
    if (fd < 0)
        return errno;
    int rc = sysio.fsync(fd) ? errno : 0;
    sysio.close(fd);
    return rc;
}

/* log_build_status -- format a status slot into buf; returns its used length or 0. Each
 * dictionary entry holds the segment's identity and its path as dict_path_store gives it
 * (relative to logdir when the segment is under it). */
static uint32_t log_build_status(char *buf, uint64_t generation, uint64_t area_len,
                                 uint64_t head_off, uint64_t head_seq, const struct log_epoch *ep,
                                 uint32_t nep, struct seg *const *segs, uint32_t nsegs,
                                 const char *logdir)
{
    struct log_status st;
    memset(buf, 0, LOG_SLOT_SIZE);
    memset(&st, 0, sizeof(st));
    st.magic = LOG_STATUS_MAGIC;
    st.version = LOG_FORMAT_VERSION;
    st.generation = generation;
    st.area_off = LOG_HDR_SIZE;
    st.area_len = area_len;
    st.head_off = head_off;
    st.head_seq = head_seq;
    st.salt = ep[nep - 1].salt;
    st.nsegs = nsegs;
    strncpy(st.rvm_version, RVM_VERSION, sizeof(st.rvm_version) - 1);
    st.nepochs = nep;
    memcpy(st.epochs, ep, nep * sizeof(*ep));
    size_t pos = sizeof(st);
    for (uint32_t i = 1; i <= nsegs; i++) {
        const struct seg *s = segs[i];
        const char *path = dict_path_store(logdir, s->path);
        uint32_t id = s->id, plen = (uint32_t)strlen(path) + 1;
        size_t need = 8 + LOG_SEG_ID_LEN + ((plen + 7u) & ~7u);
        if (pos + need > LOG_SLOT_SIZE)
            return 0;
        memcpy(buf + pos, &id, 4);
        memcpy(buf + pos + 4, &plen, 4);
        memcpy(buf + pos + 8, s->ident, LOG_SEG_ID_LEN);
        memcpy(buf + pos + 8 + LOG_SEG_ID_LEN, path, plen);
        pos += need;
    }
    st.used = (uint32_t)pos;
    memcpy(buf, &st, sizeof(st));
    st.crc = crc32c(0, buf, pos);
    memcpy(buf, &st, sizeof(st));
    return (uint32_t)pos;
}

/* log_create -- create a zero-filled log file with a fresh status (rvm_create_log) */
rvm_return_t log_create(const char *path, uint64_t log_len, long mode)
{
    uint64_t area = (log_len + 4095u) & ~(uint64_t)4095u;
    if (area < LOG_MIN_AREA)
        area = LOG_MIN_AREA;
    int fd = sysio.open(path, O_RDWR | O_CREAT | O_EXCL, (mode_t)(mode ? mode : 0600));
    if (fd < 0) {
        if (errno == EEXIST)
            return err_set(RVM_ELOG,
                           "rvm_create_log: log file %s already exists; remove it "
                           "first or use it as it is",
                           path);
        return err_set(RVM_EIO, "rvm_create_log: cannot create log file %s: %s", path,
                       strerror(errno));
    }
    uint64_t size = LOG_HDR_SIZE + area;
    int rc = 0;
    const size_t chunk = 1u << 20;
    char *z = calloc(1, chunk);
    if (z == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    /* preallocate, then really write zeros: in-place commits must not pay for
     * unwritten-extent conversion (a journal commit per fdatasync) */
    if (sysio.fallocate(fd, 0, 0, (off_t)size) != 0 && errno != EOPNOTSUPP) {
        rc = errno;
        goto fail;
    }
    for (uint64_t off = 0; off < size && rc == 0; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
        rc = full_pwrite(fd, z, n, off);
    }
    if (rc)
        goto fail;
    struct log_epoch ep = {1, log_new_salt(0)};
    /* the end of the (empty) chain, so the first recovery does not scan the whole area. It is
     * written before the status and made durable by the same fsync: a crash before that leaves
     * a file with no valid status, which every open refuses, marker or not; a marker that is
     * lost only costs the first recovery one scan of the free space. */
    log_end_marker(z, 1, ep.salt);
    rc = full_pwrite(fd, z, LOG_REC_HDR, LOG_HDR_SIZE);
    if (rc)
        goto fail;
    struct seg *none[1] = {NULL};
    char *slot = calloc(1, LOG_SLOT_SIZE);
    if (slot == NULL) {
        rc = ENOMEM;
        goto fail;
    }
    uint32_t used = log_build_status(slot, 1, area, 0, 1, &ep, 1, none, 0, NULL);
    rc = full_pwrite(fd, slot, used, 0);
    free(slot);
    if (rc == 0 && sysio.fsync(fd) != 0)
        rc = errno;
    if (rc == 0)
        rc = log_sync_dir(path);
fail:
    free(z);
    sysio.close(fd);
    if (rc) {
        unlink(path);
        return err_set(RVM_EIO, "rvm_create_log: cannot write log file %s (%llu bytes): %s", path,
                       (unsigned long long)size, strerror(rc));
    }
    return RVM_SUCCESS;
}

/* log_slot_check -- is this slot a valid status? 0 yes, else the RVM code it earns */
static rvm_return_t log_slot_check(const char *slot)
{
    struct log_status st;
    memcpy(&st, slot, sizeof(st));
    if (st.magic != LOG_STATUS_MAGIC)
        return RVM_ELOG;
    if (st.version != LOG_FORMAT_VERSION && st.version != LOG_FORMAT_VERSION_V2)
        return RVM_ELOG_VERSION_SKEW;
    if (st.used < sizeof(st) || st.used > LOG_SLOT_SIZE || st.nepochs == 0 ||
        st.nepochs > LOG_MAX_EPOCHS)
        return RVM_ELOG;
    uint32_t crc = st.crc;
    char tmp[sizeof(st)];
    memcpy(tmp, slot, sizeof(st));
    memset(tmp + offsetof(struct log_status, crc), 0, 4);
    uint32_t c = crc32c(0, tmp, sizeof(st));
    c = crc32c(c, slot + sizeof(st), st.used - sizeof(st));
    if (c != crc)
        return RVM_ELOG;
    if (strncmp(st.rvm_version, RVM_VERSION, sizeof(st.rvm_version)) != 0)
        return RVM_ELOG_VERSION_SKEW;
    return RVM_SUCCESS;
}

/* log_status_read -- read both slots, return the valid one with the higher generation */
rvm_return_t log_status_read(int fd, const char *path, struct log_status *st, struct buf *dict)
{
    char *hdr = malloc(LOG_HDR_SIZE);
    if (hdr == NULL)
        return err_set(RVM_ENO_MEMORY, "out of memory reading log %s", path);
    int rc = full_pread(fd, hdr, LOG_HDR_SIZE, 0);
    if (rc) {
        free(hdr);
        if (rc < 0)
            return err_set(RVM_ELOG,
                           "log %s is too short to be an lrvm log (%u-byte status "
                           "area expected); create it with rvm_create_log or "
                           "`rvmutl create-log`",
                           path, LOG_HDR_SIZE);
        return err_set(RVM_EIO, "cannot read status of log %s: %s", path, strerror(rc));
    }
    rvm_return_t c0 = log_slot_check(hdr), c1 = log_slot_check(hdr + LOG_SLOT_SIZE);
    int pick = -1;
    struct log_status s0, s1;
    memcpy(&s0, hdr, sizeof(s0));
    memcpy(&s1, hdr + LOG_SLOT_SIZE, sizeof(s1));
    if (c0 == RVM_SUCCESS && c1 == RVM_SUCCESS)
        pick = s1.generation > s0.generation ? 1 : 0;
    else if (c0 == RVM_SUCCESS)
        pick = 0;
    else if (c1 == RVM_SUCCESS)
        pick = 1;
    if (pick < 0) {
        free(hdr);
        if (c0 == RVM_ELOG_VERSION_SKEW || c1 == RVM_ELOG_VERSION_SKEW)
            return err_set(RVM_ELOG_VERSION_SKEW,
                           "log %s was written by another lrvm log "
                           "format or RVM version (this library: format %u, \"%s\"); recover "
                           "it with the matching version, then recreate it",
                           path, LOG_FORMAT_VERSION, RVM_VERSION);
        return err_set(RVM_ELOG,
                       "%s is not an lrvm log (no valid status block: bad magic "
                       "or checksum in both copies); check the path, or create a log with "
                       "rvm_create_log / `rvmutl create-log`",
                       path);
    }
    *st = pick ? s1 : s0;
    const char *slot = hdr + (size_t)pick * LOG_SLOT_SIZE;
    struct stat sb;
    if (sysio.fstat(fd, &sb) != 0 || st->area_off != LOG_HDR_SIZE ||
        (uint64_t)sb.st_size < st->area_off + st->area_len || st->area_len < LOG_REC_HDR ||
        st->head_off >= st->area_len || (st->head_off & 7)) {
        free(hdr);
        return err_set(RVM_ELOG,
                       "log %s: status block is inconsistent with the file "
                       "(area %llu+%llu, head %llu, file size %lld); the file was truncated or "
                       "is damaged",
                       path, (unsigned long long)st->area_off, (unsigned long long)st->area_len,
                       (unsigned long long)st->head_off, (long long)sb.st_size);
    }
    if (dict != NULL) {
        dict->len = 0;
        size_t n = st->used - sizeof(*st);
        if (buf_reserve(dict, n + 1) != 0) {
            free(hdr);
            return err_set(RVM_ENO_MEMORY, "out of memory reading log %s", path);
        }
        memcpy(dict->p, slot + sizeof(*st), n);
        dict->len = n;
    }
    /* the crc field of the returned copy is replaced by the index of the current slot
     * (0 or 1): log_open needs it, so the next status write goes to the other slot */
    st->crc = (uint32_t)pick;
    free(hdr);
    return RVM_SUCCESS;
}

/*
 * log_status_write -- make (head_off, head_seq) and the current segment dictionary the
 * durable status. Caller holds status_mu. Writes the slot NOT holding the current
 * status, then fdatasync: a torn write here leaves the old slot valid, and the old
 * head is still correct because the space it protects is reused only after this
 * returns.
 */
rvm_return_t log_status_write(struct log *lg, uint64_t head_off, uint64_t head_seq)
{
    /* mmap, not malloc: a log that grows during the shim's exit commit writes its status while
     * every other thread is parked, and a parked thread may hold the allocator's lock */
    static __thread char *slot;
    if (slot == NULL) {
        void *p =
            mmap(NULL, LOG_SLOT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return err_set(RVM_ENO_MEMORY, "out of memory writing status of log %s", lg->path);
        slot = p;
    }
    uint32_t nsegs = __atomic_load_n(&engine.nsegs, __ATOMIC_ACQUIRE);
    /* epochs wholly before the new head describe no live record any more */
    uint32_t keep = 0;
    while (keep + 1 < lg->nepochs && lg->epochs[keep + 1].seq <= head_seq)
        keep++;
    if (keep > 0) {
        memmove(lg->epochs, lg->epochs + keep, (lg->nepochs - keep) * sizeof(*lg->epochs));
        lg->nepochs -= keep;
    }
    /* a segment that had no identity when it joined may carry one now: a new image
     * segment's header reaches its file at the first truncation or recovery */
    for (uint32_t i = 1; i <= nsegs; i++) {
        struct seg *s = engine.segs[i];
        if (s != NULL && s->fd >= 0 && !seg_ident_known(s->ident))
            seg_ident_read(s->fd, s->ident);
    }
    uint32_t used = log_build_status(slot, lg->generation + 1, lg->area_len, head_off, head_seq,
                                     lg->epochs, lg->nepochs, engine.segs, nsegs, lg->dir);
    if (used == 0)
        return err_set(RVM_ETOO_BIG,
                       "log %s: the segment dictionary (%u segments) does not "
                       "fit in the %u-byte status block; use fewer or shorter segment paths",
                       lg->path, nsegs, LOG_SLOT_SIZE);
    int other = lg->cur_slot ^ 1;
    int rc = full_pwrite(lg->fd, slot, used, (uint64_t)other * LOG_SLOT_SIZE);
    if (rc)
        return err_io(rc, "log %s: writing the status block failed: %s", lg->path, strerror(rc));
    if (sysio.fdatasync(lg->fd) != 0)
        return err_io(errno, "log %s: fdatasync of the status block failed: %s", lg->path,
                      strerror(errno));
    lg->cur_slot = other;
    lg->generation++;
    lg->st_head_off = head_off;
    lg->st_head_seq = head_seq;
    lg->st_nsegs = nsegs;
    return RVM_SUCCESS;
}

/* log_add_segment -- make s part of the durable dictionary before any record names it */
rvm_return_t log_add_segment(struct log *lg, struct seg *s)
{
    rvm_return_t rc = RVM_SUCCESS;
    pthread_mutex_lock(&lg->status_mu);
    if (s->id > lg->st_nsegs) {
        rc = log_status_write(lg, lg->st_head_off, lg->st_head_seq);
        if (rc == RVM_SUCCESS) {
            pthread_mutex_lock(&lg->mu);
            engine.st.n_special++;
            pthread_mutex_unlock(&lg->mu);
        }
    }
    pthread_mutex_unlock(&lg->status_mu);
    return rc;
}

/* log_open -- open an existing log, run recovery, leave it ready for appending */
rvm_return_t log_open(const char *path, struct log **out)
{
    /* the ownership rules and the lock come before the first byte is read: a log of
     * another user, or one a running program is writing, never reaches recovery */
    char why[1024];
    int fd = filecheck_open(path, O_RDWR, 0, "log", why, sizeof(why));
    if (fd < 0) {
        rvm_ioerrno = errno;
        if (errno == ENOENT)
            return err_set(RVM_EIO,
                           "log %s does not exist; create it with rvm_create_log "
                           "(or options->create_log_file) or `rvmutl create-log`",
                           path);
        if (why[0])
            return err_set(RVM_ELOG, "%s", why);
        return err_set(RVM_EIO, "cannot open log %s: %s", path, strerror(errno));
    }
    if ((rvm_ioerrno = loglock_take(fd, path, 1, why, sizeof(why))) != 0) {
        sysio.close(fd);
        return err_set(RVM_ELOG, "%s", why);
    }
    struct log_status st;
    rvm_return_t rc = log_status_read(fd, path, &st, NULL);
    if (rc) {
        sysio.close(fd);
        return rc;
    }
    struct log *lg = calloc(1, sizeof(*lg));
    if (lg == NULL || (lg->path = strdup(path)) == NULL) {
        free(lg);
        sysio.close(fd);
        return err_set(RVM_ENO_MEMORY, "out of memory opening log %s", path);
    }
    lg->fd = fd;
    if ((lg->dir = log_dir_of(path)) == NULL) {
        int e = errno;
        sysio.close(fd);
        free(lg->path);
        free(lg);
        return err_set(RVM_EIO, "log %s: cannot resolve its directory: %s", path, strerror(e));
    }
    lg->area_off = st.area_off;
    lg->area_len = st.area_len;
    lg->nepochs = st.nepochs;
    memcpy(lg->epochs, st.epochs, sizeof(lg->epochs));
    lg->salt = st.epochs[st.nepochs - 1].salt;
    lg->generation = st.generation;
    lg->cur_slot = (int)st.crc;
    lg->st_head_off = st.head_off;
    lg->st_head_seq = st.head_seq;
    pthread_mutex_init(&lg->trunc_mu, NULL);
    pthread_mutex_init(&lg->status_mu, NULL);
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->sync_cv, NULL);
    pthread_cond_init(&lg->space_cv, NULL);
    pthread_cond_init(&lg->trunc_cv, NULL);
    rc = recover(lg);
    if (rc) {
        log_close(lg);
        return rc;
    }
    *out = lg;
    return RVM_SUCCESS;
}

/* log_close -- release a log (the daemon must be stopped and the queue flushed) */
void log_close(struct log *lg)
{
    if (lg == NULL)
        return;
    loglock_forget(lg->fd);
    sysio.close(lg->fd);
    buf_free(&lg->pend);
    buf_free(&lg->wbuf);
    cset_free(&lg->cs);
    pthread_mutex_destroy(&lg->trunc_mu);
    pthread_mutex_destroy(&lg->status_mu);
    pthread_mutex_destroy(&lg->mu);
    pthread_cond_destroy(&lg->sync_cv);
    pthread_cond_destroy(&lg->space_cv);
    pthread_cond_destroy(&lg->trunc_cv);
    free(lg->path);
    free(lg->dir);
    free(lg);
}

/* log_record_size -- bytes of the record that would carry these ranges */
uint64_t log_record_size(const struct range *r, size_t n)
{
    uint64_t sz = LOG_REC_HDR + (uint64_t)n * LOG_RANGE_HDR;
    for (size_t i = 0; i < n; i++)
        sz += r[i].len;
    return (sz + 7u) & ~(uint64_t)7u;
}

/*
 * log_enqueue -- format one record carrying ranges r[0..n) into pend, copying the new
 * values from r[i].src now (the caller's memory may change right after). Caller holds
 * lg->mu; the record gets the next sequence number, so records are written in the
 * order they were enqueued.
 */
rvm_return_t log_enqueue(struct log *lg, const struct range *r, size_t n, uint32_t ntxn,
                         uint64_t *seq)
{
    uint64_t size = log_record_size(r, n);
    /* a record larger than the area is fine: the writer grows the log (log_grow.c) */
    if (size > UINT32_MAX)
        return err_set(RVM_ETOO_BIG,
                       "transaction of %zu ranges needs a %llu-byte log record, "
                       "and a record holds at most 4 GiB (log %s); commit in smaller pieces",
                       n, (unsigned long long)size, lg->path);
    if (buf_reserve(&lg->pend, size) != 0)
        return err_set(RVM_ENO_MEMORY, "out of memory queueing a %llu-byte log record",
                       (unsigned long long)size);
    char *rec = lg->pend.p + lg->pend.len;
    /* the durable frontier (log_format.h): what is durable now stays durable */
    uint64_t front = lg->next_seq - lg->durable_seq;
    struct log_rec_hdr h = {
        .magic = LOG_REC_MAGIC,
        .type = LOG_REC_TXN,
        .flags = front <= 0xffff ? front : 0,
        .len = (uint32_t)size,
        .crc = 0,
        .seq = lg->next_seq,
        .nranges = (uint32_t)n,
        .ntxn = ntxn,
    };
    char *rh = rec + LOG_REC_HDR;
    char *data = rh + n * LOG_RANGE_HDR;
    for (size_t i = 0; i < n; i++) {
        struct log_range_hdr x = {r[i].off, (uint32_t)r[i].len, r[i].seg->id};
        memcpy(rh + i * LOG_RANGE_HDR, &x, LOG_RANGE_HDR);
        memcpy(data, r[i].src, r[i].len);
        data += r[i].len;
        if (r[i].seg->last_seq < h.seq)
            r[i].seg->last_seq = h.seq;
    }
    memset(data, 0, (size_t)(rec + size - data));
    memcpy(rec, &h, sizeof(h));
    h.crc = crc32c(rec_seed(lg->salt), rec, size);
    memcpy(rec, &h, sizeof(h));
    lg->pend.len += size;
    *seq = lg->next_seq++;
    return RVM_SUCCESS;
}

/* log_kick_truncation -- wake the daemon when the log is fuller than the threshold */
void log_kick_truncation(struct log *lg)
{
    if (lg->trunc_running && lg->truncate_pct > 0 &&
        lg->used * 100 >= (uint64_t)lg->truncate_pct * lg->area_len)
        pthread_cond_signal(&lg->trunc_cv);
}

/*
 * log_wait_space -- the leader cannot place its next record: make log space. Caller
 * holds lg->mu and has made everything it wrote durable (truncation applies durable
 * records only). With the daemon running we wait only until it frees some space;
 * otherwise this thread truncates the oldest records itself.
 */
rvm_return_t log_wait_space(struct log *lg)
{
    engine.st.n_truncation_wait++;
    if (lg->used == 0) /* cannot happen: records fit an empty log (grown first if not) */
        return err_set(RVM_EINTERNAL, "log %s: a record does not fit the empty log", lg->path);
    if (lg->trunc_running) {
        uint64_t before = lg->used;
        lg->space_waiters++;
        pthread_cond_signal(&lg->trunc_cv);
        while (lg->used == before && !engine.sticky && lg->trunc_running)
            pthread_cond_wait(&lg->space_cv, &lg->mu);
        lg->space_waiters--;
        return engine.sticky ? RVM_EIO : RVM_SUCCESS;
    }
    pthread_mutex_unlock(&lg->mu);
    int progress = 0;
    rvm_return_t rc = trunc_step(lg, lg->area_len / 4, &progress);
    pthread_mutex_lock(&lg->mu);
    engine.st.tot_sync_truncation++;
    if (rc == RVM_SUCCESS && !progress)
        rc = err_set(RVM_EINTERNAL,
                     "log %s: no space and nothing to truncate (used %llu of "
                     "%llu)",
                     lg->path, (unsigned long long)lg->used, (unsigned long long)lg->area_len);
    return rc;
}

/*
 * log_erase_marker -- the writer is about to place a record elsewhere than at the tail
 * (a wrap to offset 0): zero the end marker a previous write may have left at the tail.
 * Otherwise that marker would still say "the chain ends here" while its successor sits
 * at 0, and damage to the successor would read as a clean end. The zeros land in dead
 * space (the wrap gap) and become durable with the record's own fdatasync; a crash
 * before that sync loses only the unacknowledged record. Caller holds lg->mu.
 */
rvm_return_t log_erase_marker(struct log *lg, uint64_t tail)
{
    if (lg->area_len - tail < LOG_REC_HDR)
        return RVM_SUCCESS; /* no marker fits there */
    static const char zero[LOG_REC_HDR];
    int e = full_pwrite(lg->fd, zero, sizeof(zero), lg->area_off + tail);
    if (e)
        return err_io(e,
                      "log %s: writing at offset %llu failed: %s; no later commit is "
                      "accepted (restart the program: recovery keeps every acknowledged "
                      "commit)",
                      lg->path, (unsigned long long)(lg->area_off + tail), strerror(e));
    return RVM_SUCCESS;
}

/* log_sync -- fdatasync the log; caller holds lg->mu (released during the sync) */
rvm_return_t log_sync(struct log *lg)
{
    uint64_t upto = lg->written_seq;
    if (lg->durable_seq >= upto)
        return RVM_SUCCESS;
    pthread_mutex_unlock(&lg->mu);
    uint64_t t0 = now_usec();
    int rc = sysio.fdatasync(lg->fd) ? errno : 0;
    uint64_t dt = now_usec() - t0;
    pthread_mutex_lock(&lg->mu);
    if (rc)
        return err_io(rc,
                      "log %s: fdatasync failed: %s; no later commit is accepted "
                      "(restart the program: recovery keeps every acknowledged commit)",
                      lg->path, strerror(rc));
    lg->durable_seq = upto;
    engine.st.flush_time.tv_usec += (long)dt;
    engine.st.flush_time.tv_sec += engine.st.flush_time.tv_usec / 1000000;
    engine.st.flush_time.tv_usec %= 1000000;
    engine.st.last_flush_time = (rvm_length_t)(dt / 1000);
    static const rvm_length_t dist[] = {flush_times_dist};
    stats_hist(engine.st.flush_times, flush_times_len, dist, dt / 1000);
    pthread_cond_broadcast(&lg->sync_cv);
    return RVM_SUCCESS;
}

/*
 * log_fill_after -- the bytes appended to wbuf after the last record of a batch: zeros to
 * the next 4 KiB file boundary, inside free space only, so that the next append finds its
 * page cached; they start with the end marker for the next seq (log_format.h, END MARKER),
 * which tells recovery that the chain really ends here. With too little room before the
 * boundary the fill goes one page further, so the marker fits whenever free space allows.
 * Returns the fill's length. Caller holds lg->mu; wbuf has room (log_force reserves it).
 */
static uint64_t log_fill_after(struct log *lg, struct buf *w, uint64_t last_seq)
{
    if (lg->tail_off == 0 || lg->used >= lg->area_len)
        return 0;
    uint64_t fend = lg->area_off + lg->tail_off;
    uint64_t want = ((fend + 4095u) & ~(uint64_t)4095u) - fend;
    if (want < LOG_REC_HDR)
        want += 4096;
    uint64_t contig =
        lg->head_off > lg->tail_off ? lg->head_off - lg->tail_off : lg->area_len - lg->tail_off;
    uint64_t pad = want < contig ? want : contig;
    memset(w->p + w->len, 0, (size_t)pad);
    if (pad >= LOG_REC_HDR)
        log_end_marker(w->p + w->len, last_seq + 1, lg->salt);
    return pad;
}

/*
 * log_write_batch -- the leader writes wbuf (whole records, in seq order) into the
 * area and syncs. Caller holds lg->mu; it is released around the I/O. Each
 * contiguous run of records goes out in ONE pwrite; a record that would cross the
 * area end starts a new run at offset 0.
 */
static rvm_return_t log_write_batch(struct log *lg)
{
    struct buf *w = &lg->wbuf;
    size_t done = 0;
    rvm_return_t rc = RVM_SUCCESS;
    while (done < w->len) {
        uint64_t tail = lg->tail_off, gap = 0, run = 0, pos;
        uint32_t first_len;
        memcpy(&first_len, w->p + done + offsetof(struct log_rec_hdr, len), 4);
        pos = tail;
        if (tail + first_len > lg->area_len) {
            if ((rc = log_erase_marker(lg, tail)) != RVM_SUCCESS)
                return rc;
            if (lg->used == 0) {
                /* empty log: start over at 0 without a dead gap (readers coming from
                 * the durable head find the next record at 0 by the wrap rule) */
                lg->head_off = lg->tail_off = tail = 0;
            } else {
                gap = lg->area_len - tail;
            }
            pos = 0;
        }
        uint64_t last_seq = 0;
        while (done + run < w->len) {
            struct log_rec_hdr h;
            memcpy(&h, w->p + done + run, sizeof(h));
            if (pos + run + h.len > lg->area_len || lg->used + gap + run + h.len > lg->area_len)
                break;
            run += h.len;
            last_seq = h.seq;
        }
        if (run == 0) {
            if ((rc = log_sync(lg)) != RVM_SUCCESS)
                return rc;
            /* a record the whole area cannot hold (a coalesced no_flush set, say): grow.
             * Other committers' records are in this batch, so a refusal here is sticky
             * (log_force); single transactions grow before they are queued instead. */
            if (first_len > lg->area_len)
                rc = log_grow(lg, first_len, 0);
            else
                rc = log_wait_space(lg);
            if (rc != RVM_SUCCESS)
                return rc;
            continue;
        }
        if (gap)
            engine.st.tot_wrap++;
        lg->used += gap + run;
        lg->tail_off = pos + run;
        if (lg->area_len - lg->tail_off < LOG_REC_HDR) {
            engine.st.tot_wrap++;
            /* readers jump to 0 from here: the sliver is dead space until head passes */
            lg->used += lg->area_len - lg->tail_off;
            lg->tail_off = 0;
        }
        uint64_t pad = done + run == w->len ? log_fill_after(lg, w, last_seq) : 0;
        pthread_mutex_unlock(&lg->mu);
        int e = full_pwrite(lg->fd, w->p + done, (size_t)(run + pad), lg->area_off + pos);
        pthread_mutex_lock(&lg->mu);
        if (e)
            return err_io(e,
                          "log %s: writing %llu bytes of records at offset %llu failed: "
                          "%s; no later commit is accepted (restart the program: recovery "
                          "keeps every acknowledged commit)",
                          lg->path, (unsigned long long)run,
                          (unsigned long long)(lg->area_off + pos), strerror(e));
        lg->written_seq = last_seq;
        done += run;
        engine.st.n_flush++;
        engine.st.log_written = rvm_add_length_to_offset(&engine.st.log_written, run);
    }
    w->len = 0;
    rc = log_sync(lg);
    log_kick_truncation(lg);
    uint64_t fill = lg->used * 100 / lg->area_len;
    engine.st.log_dev_cur = fill;
    if (fill > engine.st.log_dev_max)
        engine.st.log_dev_max = fill;
    return rc;
}

/*
 * log_force -- return when every record up to seq is durable. Caller holds lg->mu.
 * Group commit: if a leader is writing, wait for it (its sync may cover us); else
 * become the leader and write everything queued so far, so concurrent committers
 * share one fdatasync.
 */
rvm_return_t log_force(struct log *lg, uint64_t seq)
{
    while (lg->durable_seq < seq) {
        if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
            return err_set(RVM_EIO, "%s",
                           rvm_errmsg[0]
                               ? rvm_errmsg
                               : "an earlier write or sync failed; no commit is accepted");
        if (lg->writer_active) {
            pthread_cond_wait(&lg->sync_cv, &lg->mu);
            continue;
        }
        if (lg->written_seq >= seq) { /* written by a leader that failed to sync */
            rvm_return_t rc = log_sync(lg);
            if (rc)
                return rc;
            continue;
        }
        if (lg->cs.n > 0) {
            rvm_return_t rc = cset_materialize(lg);
            if (rc)
                return rc;
        }
        lg->writer_active = 1;
        struct buf t = lg->wbuf;
        lg->wbuf = lg->pend;
        lg->pend = t;
        lg->pend.len = 0;
        rvm_return_t rc = RVM_SUCCESS;
        if (buf_reserve(&lg->wbuf, 8192) != 0) /* the zero fill and end marker */
            rc = err_set(RVM_ENO_MEMORY, "out of memory writing log %s", lg->path);
        else
            rc = log_write_batch(lg);
        if (rc != RVM_SUCCESS && !__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE)) {
            /* records of other committers were taken out of the queue and not written:
             * no later sync may claim them durable, so every later commit is refused */
            __atomic_store_n(&engine.sticky, 1, __ATOMIC_RELEASE);
        }
        if (lg->wbuf.cap > (64u << 20))
            buf_free(&lg->wbuf); /* a huge no_flush queue does not stay allocated */
        lg->n_queued_txn = 0;
        lg->queued_bytes = 0;
        lg->writer_active = 0;
        pthread_cond_broadcast(&lg->sync_cv);
        if (rc)
            return rc;
    }
    return RVM_SUCCESS;
}
