/* SPDX-License-Identifier: MIT */
/*
 * txn.c -- transactions: begin, set_range, modify_bytes, abort, end; and the commit
 * path shared with txn_commit_vector.
 *
 * The no_flush path does no syscalls and, in the steady state, no malloc: the
 * internal transaction objects are pooled with their range and old-value buffers,
 * and a commit copies new values into the log's queue (or coalescing set).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "rvm_int.h"
#include "txn.h"
#include "observer.h"

/* txn_get -- the internal state of a begun tid, or NULL */
static struct txn *txn_get(rvm_tid_t *tid)
{
    if (tid == NULL || tid->struct_id != rvm_tid_id || tid->tid == NULL)
        return NULL;
    struct txn *t = tid->tid;
    return t->pub == tid ? t : NULL;
}

/* rvm_begin_transaction -- start a transaction in restore or no_restore mode */
rvm_return_t rvm_begin_transaction(rvm_tid_t *tid, rvm_mode_t mode)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (tid == NULL || tid->struct_id != rvm_tid_id)
        return RVM_ETID;
    if (engine.log == NULL)
        return err_set(RVM_ELOG, "rvm_begin_transaction: no log; set options->log_dev");
    if (mode != restore && mode != no_restore)
        return RVM_EMODE;
    if (txn_get(tid) != NULL)
        return err_set(RVM_ETID, "rvm_begin_transaction: this tid is already begun; end or "
                                 "abort it first");
    pthread_mutex_lock(&engine.mu);
    struct txn *t = engine.free_txns;
    if (t != NULL)
        engine.free_txns = t->next;
    else if ((t = calloc(1, sizeof(*t))) == NULL) {
        pthread_mutex_unlock(&engine.mu);
        return RVM_ENO_MEMORY;
    }
    t->pub = tid;
    t->restore = mode == restore;
    t->n = 0;
    t->old.len = 0;
    t->last_rg = NULL;
    t->prev = NULL;
    t->next = engine.open_txns;
    if (engine.open_txns)
        engine.open_txns->prev = t;
    engine.open_txns = t;
    engine.n_open++;
    /* uname is the tid's unique name: a timestamp, bumped by a microsecond when it
     * would repeat (tids begun in the same microsecond must still differ) */
    static struct timeval last;
    struct timeval now;
    gettimeofday(&now, NULL);
    if (timercmp(&now, &last, <=)) {
        now = last;
        if (++now.tv_usec >= 1000000) {
            now.tv_usec = 0;
            now.tv_sec++;
        }
    }
    last = now;
    tid->uname = now;
    pthread_mutex_unlock(&engine.mu);
    tid->tid = t;
    return RVM_SUCCESS;
}

/* txn_release -- unlink t from the open list and return it to the pool */
static void txn_release(struct txn *t)
{
    pthread_mutex_lock(&engine.mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        engine.open_txns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    engine.n_open--;
    t->pub->tid = NULL;
    t->pub = NULL;
    t->next = engine.free_txns;
    engine.free_txns = t;
    pthread_mutex_unlock(&engine.mu);
}

/* txn_region -- the region holding [addr, addr+len), using t's cache when valid */
static struct region *txn_region(struct txn *t, const char *addr, uint64_t len)
{
    uint64_t gen = __atomic_load_n(&engine.map_gen, __ATOMIC_ACQUIRE);
    struct region *g = t ? t->last_rg : NULL;
    if (g != NULL && t->last_gen == gen && addr >= g->vmaddr &&
        (uint64_t)(addr - g->vmaddr) + len <= g->len)
        return g;
    pthread_mutex_lock(&engine.mu);
    g = region_find(addr, len);
    pthread_mutex_unlock(&engine.mu);
    if (t) {
        t->last_rg = g;
        t->last_gen = gen;
    }
    return g;
}

/* rvm_set_range -- declare that [dest, dest+length) will be modified */
rvm_return_t rvm_set_range(rvm_tid_t *tid, void *dest, rvm_length_t length)
{
    if (!rvm_ready())
        return RVM_EINIT;
    struct txn *t = txn_get(tid);
    if (t == NULL)
        return RVM_ETID;
    if (length == 0 && rvm_optimizations)
        return RVM_SUCCESS;
    struct region *g = txn_region(t, dest, length);
    if (g == NULL)
        return RVM_ENOT_MAPPED;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct range *r = realloc(t->r, cap * sizeof(*r));
        if (r == NULL)
            return RVM_ENO_MEMORY;
        t->r = r;
        t->cap = cap;
    }
    struct range *r = &t->r[t->n];
    r->rg = g;
    r->seg = g->seg;
    r->off = g->off + (uint64_t)((char *)dest - g->vmaddr);
    r->len = length;
    r->src = dest;
    r->oldpos = 0;
    if (t->restore) {
        if (buf_reserve(&t->old, length) != 0)
            return RVM_ENO_MEMORY;
        r->oldpos = t->old.len;
        memcpy(t->old.p + t->old.len, dest, length);
        t->old.len += length;
    }
    t->n++;
    return RVM_SUCCESS;
}

/* rvm_modify_bytes -- set_range then copy src into dest (memmove: overlap-safe) */
rvm_return_t rvm_modify_bytes(rvm_tid_t *tid, void *dest, const void *src, rvm_length_t length)
{
    if (src == NULL && length > 0)
        return RVM_ESRC;
    rvm_return_t rc = rvm_set_range(tid, dest, length);
    if (rc == RVM_SUCCESS && length > 0)
        memmove(dest, src, length);
    return rc;
}

/* rvm_abort_transaction -- end without commit; restore mode puts old values back */
rvm_return_t rvm_abort_transaction(rvm_tid_t *tid)
{
    if (!rvm_ready())
        return RVM_EINIT;
    struct txn *t = txn_get(tid);
    if (t == NULL)
        return RVM_ETID;
    if (t->restore)
        for (size_t i = t->n; i-- > 0;) /* reverse order: the oldest value wins */
            memcpy((char *)t->r[i].src, t->old.p + t->r[i].oldpos, t->r[i].len);
    txn_release(t);
    /* counters are guarded by the log's lock, which truncation holds when it ends an epoch */
    pthread_mutex_t *mu = engine.log != NULL ? &engine.log->mu : &engine.mu;
    pthread_mutex_lock(mu);
    engine.st.n_abort++;
    pthread_mutex_unlock(mu);
    return RVM_SUCCESS;
}

/* range_cmp -- order ranges by (segment, offset), stable by original index */
static int range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    if (x->seg->id != y->seg->id)
        return x->seg->id < y->seg->id ? -1 : 1;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->oldpos < y->oldpos ? -1 : x->oldpos > y->oldpos;
}

/*
 * txn_coalesce -- intra-transaction coalescing (RVM_COALESCE_RANGES): sort by
 * (segment, offset) -- skipped when already in order, the common bulk case -- and
 * merge overlapping or adjacent ranges of the same region into one. O(n log n).
 * The new values are read from memory at commit, so a merged range simply covers
 * the union. Works on a copy (out) so an error leaves the tid intact.
 */
static size_t txn_coalesce(struct txn *t, struct range **out, size_t *cap)
{
    if (*cap < t->n) {
        struct range *o = realloc(*out, t->n * sizeof(*o));
        if (o == NULL)
            return (size_t)-1;
        *out = o;
        *cap = t->n;
    }
    struct range *r = *out;
    memcpy(r, t->r, t->n * sizeof(*r));
    int sorted = 1;
    for (size_t i = 0; i < t->n; i++) {
        r[i].oldpos = i;
        if (i && (r[i].seg->id < r[i - 1].seg->id ||
                  (r[i].seg == r[i - 1].seg && r[i].off < r[i - 1].off)))
            sorted = 0;
    }
    if (!sorted && t->n <= 16) {
        /* small transactions: insertion sort (qsort would malloc a merge buffer) */
        for (size_t i = 1; i < t->n; i++) {
            struct range x = r[i];
            size_t j = i;
            while (j > 0 && range_cmp(&r[j - 1], &x) > 0) {
                r[j] = r[j - 1];
                j--;
            }
            r[j] = x;
        }
    } else if (!sorted) {
        qsort(r, t->n, sizeof(*r), range_cmp);
    }
    size_t m = 0;
    uint64_t saved = 0, elim = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (m > 0 && r[m - 1].rg == r[i].rg && r[i].off <= r[m - 1].off + r[m - 1].len) {
            uint64_t end = r[i].off + r[i].len, pend = r[m - 1].off + r[m - 1].len;
            saved += (end < pend ? end : pend) - r[i].off;
            if (end > pend)
                r[m - 1].len = end - r[m - 1].off;
            elim++;
            continue;
        }
        r[m++] = r[i];
    }
    for (size_t i = 0; i < m; i++)
        r[i].src = r[i].rg->vmaddr + (r[i].off - r[i].rg->off);
    t->elim = elim; /* counted under lg->mu at commit */
    t->saved = saved;
    return m;
}

/*
 * txn_commit_ranges -- commit ranges (new values at r[i].src) as one transaction:
 * flush -> queued records + this one are written and synced (group commit) before
 * return; no_flush -> queued (or folded into the coalescing set).
 */
rvm_return_t txn_commit_ranges(struct range *r, size_t n, rvm_mode_t mode, uint32_t ntxn,
                               uint64_t elim, uint64_t saved)
{
    struct log *lg = engine.log;
    rvm_return_t rc = RVM_SUCCESS;
    pthread_mutex_lock(&lg->mu);
    if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&lg->mu);
        return RVM_EIO;
    }
    uint64_t size = log_record_size(r, n);
    /* a record larger than the log's area: the log grows now, before anything is queued, so
     * that a refusal (the bound, a full disk) leaves the transaction open and the log as it
     * was. A record travels as one piece: the format caps it at 4 GiB. */
    if (size > UINT32_MAX) {
        pthread_mutex_unlock(&lg->mu);
        return err_set(RVM_ETOO_BIG,
                       "transaction of %zu ranges needs a %llu-byte log record, "
                       "and a record holds at most 4 GiB (log %s); commit in smaller pieces",
                       n, (unsigned long long)size, lg->path);
    }
    if (size > lg->area_len && !(mode == no_flush && (rvm_optimizations & RVM_COALESCE_TRANS))) {
        rvm_return_t grc = log_ensure_area(lg, size);
        if (grc != RVM_SUCCESS) {
            pthread_mutex_unlock(&lg->mu);
            return grc;
        }
    }
    engine.st.n_range_elim += elim;
    engine.st.range_overlap = rvm_add_length_to_offset(&engine.st.range_overlap, saved);
    static const rvm_length_t dist[] = {range_lengths_dist};
    for (size_t i = 0; i < n && i < 64; i++) {
        stats_hist(engine.st.range_lengths, range_lengths_len, dist, r[i].len);
    }
    uint64_t seq = 0;
    if (mode == no_flush && (rvm_optimizations & RVM_COALESCE_TRANS) && n > 0) {
        rc = cset_add(lg, r, n);
    } else if (n > 0 || mode == no_flush) {
        if (lg->cs.n)
            rc = cset_materialize(lg);
        if (rc == RVM_SUCCESS)
            rc = log_enqueue(lg, r, n, ntxn, &seq);
    }
    if (rc == RVM_SUCCESS && mode == no_flush) {
        engine.st.n_no_flush_commit++;
        engine.st.n_no_flush++;
        lg->n_queued_txn++;
        lg->queued_bytes += size;
        engine.st.no_flush_length = rvm_add_length_to_offset(&engine.st.no_flush_length, size);
    } else if (rc == RVM_SUCCESS) {
        rc = log_force(lg, lg->next_seq - 1);
        if (rc == RVM_SUCCESS) {
            engine.st.n_flush_commit++;
            engine.st.n_no_flush = 0;
            engine.st.no_flush_length = RVM_MK_OFFSET(0, 0);
        }
    }
    pthread_mutex_unlock(&lg->mu);
    return rc;
}

static __thread struct range *tls_cr;
static __thread size_t tls_crcap;

/* rvm_end_transaction -- commit in flush or no_flush mode */
rvm_return_t rvm_end_transaction(rvm_tid_t *tid, rvm_mode_t mode)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (mode != flush && mode != no_flush)
        return RVM_EMODE;
    struct txn *t = txn_get(tid);
    if (t == NULL)
        return RVM_ETID;
    struct range *r = t->r;
    size_t n = t->n;
    t->elim = t->saved = 0;
    /* a no_flush commit into the coalescing set is merged there anyway: sorting and
     * merging its ranges first would only cost time */
    int into_set = mode == no_flush && (rvm_optimizations & RVM_COALESCE_TRANS);
    if (rvm_optimizations && n > 1 && !into_set) {
        n = txn_coalesce(t, &tls_cr, &tls_crcap);
        if (n == (size_t)-1)
            return RVM_ENO_MEMORY;
        r = tls_cr;
    }
    if (n == 0 && rvm_optimizations && mode == no_flush) {
        txn_release(t); /* nothing to log: discarded */
        return RVM_SUCCESS;
    }
    rvm_return_t rc = txn_commit_ranges(r, n, mode, 1, t->elim, t->saved);
    if (rc != RVM_SUCCESS)
        return rc; /* the tid stays valid */
    const struct engine_observer *obs = engine_observer();
    if (obs != NULL) /* tracked regions: not logged twice */
        for (size_t i = 0; i < n; i++)
            obs->committed_range(r[i].rg->vmaddr + (r[i].off - r[i].rg->off), r[i].len);
    txn_release(t);
    return RVM_SUCCESS;
}

rvm_return_t txn_commit_vector(const struct txn_vec *v, size_t n, rvm_mode_t mode)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (engine.log == NULL)
        return RVM_ELOG;
    if (mode != flush && mode != no_flush)
        return RVM_EMODE;
    struct range *r = malloc((n ? n : 1) * sizeof(*r));
    if (r == NULL)
        return RVM_ENO_MEMORY;
    pthread_mutex_lock(&engine.mu);
    for (size_t i = 0; i < n; i++) {
        struct region *g = region_find(v[i].dest, v[i].len);
        if (g == NULL) {
            pthread_mutex_unlock(&engine.mu);
            free(r);
            return RVM_ENOT_MAPPED;
        }
        r[i] = (struct range){.rg = g,
                              .seg = g->seg,
                              .off = g->off + (uint64_t)((char *)v[i].dest - g->vmaddr),
                              .len = v[i].len,
                              .src = v[i].src,
                              .oldpos = 0};
    }
    pthread_mutex_unlock(&engine.mu);
    rvm_return_t rc = txn_commit_ranges(r, n, mode, 1, 0, 0);
    free(r);
    return rc;
}

/* txn_free_all -- free pooled transaction objects (rvm_terminate) */
void txn_free_all(void)
{
    while (engine.free_txns) {
        struct txn *t = engine.free_txns;
        engine.free_txns = t->next;
        free(t->r);
        buf_free(&t->old);
        free(t);
    }
}
