/* SPDX-License-Identifier: MIT */
/*
 * cset.c -- inter-transaction coalescing of no_flush commits (RVM_COALESCE_TRANS).
 *
 * Queued no_flush commits are not kept as separate records: their new values are
 * copied into shadow pages (4 KiB of newest bytes + a bitmap of which bytes are set),
 * found by (segment, page) in a per-segment directory. A later commit to the same
 * bytes simply overwrites them, so N commits to the same bytes cost one range at
 * flush, and each commit costs O(bytes) with no sorting and no syscalls. When the set
 * is flushed it becomes ONE record carrying all its transactions: after a crash they
 * are all present or all absent, which keeps the rule "no_flush commits are lost only
 * whole and only from the end". Caller holds lg->mu for every function here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rvm_int.h"

/*
 * cset_page -- the shadow of (seg, page), created empty if absent. Pages are found
 * through a two-level directory per segment (512 pages per leaf): for the 8 MB
 * arrays of the benchmarks the directory is 16 KiB and stays cached, so a commit
 * costs the two cache lines it writes (bitmap and data), not a hash probe chain.
 */
static struct shadow *cset_page(struct cset *cs, struct seg *s, uint64_t page)
{
    size_t top = (size_t)(page >> 9), leaf = (size_t)(page & 511);
    if (top >= s->sdir_len) {
        size_t len = s->sdir_len ? s->sdir_len : 4;
        while (len <= top)
            len *= 2;
        struct shadow ***d = realloc(s->sdir, len * sizeof(*d));
        if (d == NULL)
            return NULL;
        memset(d + s->sdir_len, 0, (len - s->sdir_len) * sizeof(*d));
        s->sdir = d;
        s->sdir_len = len;
    }
    if (s->sdir[top] == NULL && (s->sdir[top] = calloc(512, sizeof(struct shadow *))) == NULL)
        return NULL;
    struct shadow *sh = s->sdir[top][leaf];
    if (sh != NULL)
        return sh;
    if (cs->n == cs->listcap) {
        size_t cap = cs->listcap ? cs->listcap * 2 : 256;
        struct shadow **l = realloc(cs->list, cap * sizeof(*l));
        if (l == NULL)
            return NULL;
        cs->list = l;
        cs->listcap = cap;
    }
    sh = cs->npool ? cs->pool[--cs->npool] : malloc(sizeof(*sh));
    if (sh == NULL)
        return NULL;
    sh->key = ((uint64_t)s->id << 40) | page;
    sh->seg = s;
    memset(sh->bits, 0, sizeof(sh->bits));
    s->sdir[top][leaf] = sh;
    cs->list[cs->n++] = sh;
    return sh;
}

/* cset_unlink -- remove a shadow from its segment's directory */
static void cset_unlink(struct shadow *sh)
{
    uint64_t page = sh->key & ((1ull << 40) - 1);
    sh->seg->sdir[page >> 9][page & 511] = NULL;
}

/* cset_setbits -- mark bytes [a, b) of a page. Stores only: reading the bitmap
 * would stall on a cache miss per range; overlap is counted at materialize time */
static void cset_setbits(uint64_t *bits, uint32_t a, uint32_t b)
{
    while (a < b) {
        uint32_t w = a / 64, lo = a % 64;
        uint32_t hi = (b - w * 64) < 64 ? (b - w * 64) : 64;
        uint64_t mask = (hi == 64 ? ~0ull : ((1ull << hi) - 1)) & ~((1ull << lo) - 1);
        bits[w] |= mask;
        a = w * 64 + hi;
    }
}

/* cset_popcount -- bits set in a word (portable; no -mpopcnt needed) */
static inline uint64_t cset_popcount(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (x * 0x0101010101010101ull) >> 56;
}

/* cset_measure -- exact distinct bytes and runs (ranges) of the set */
static void cset_measure(const struct cset *cs, uint64_t *bytes, uint64_t *runs)
{
    uint64_t nb = 0, nr = 0;
    for (size_t i = 0; i < cs->n; i++) {
        uint64_t carry = 0;
        for (int w = 0; w < (int)(SHADOW_PAGE / 64); w++) {
            uint64_t x = cs->list[i]->bits[w];
            nb += cset_popcount(x);
            nr += cset_popcount(x & ~((x << 1) | carry)); /* starts of runs */
            carry = x >> 63;
        }
    }
    *bytes = nb;
    *runs = nr;
}

/* cset_add -- fold one transaction's ranges into the set (copying new values now) */
rvm_return_t cset_add(struct log *lg, const struct range *r, size_t n)
{
    struct cset *cs = &lg->cs;
    uint64_t pieces = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        pieces += (r[i].off % SHADOW_PAGE + r[i].len + SHADOW_PAGE - 1) / SHADOW_PAGE;
        bytes += r[i].len;
    }
    /* keep the set's eventual record well inside the log: the running estimate only
     * grows (it ignores overlap); when it passes half the log, measure exactly and
     * turn the set into a record only if it is really that big */
    uint64_t est = LOG_REC_HDR + (cs->nruns_est + pieces) * LOG_RANGE_HDR + cs->nbytes + bytes;
    if (cs->n > 0 && est > lg->area_len / 2) {
        uint64_t nb, nr;
        cset_measure(cs, &nb, &nr);
        cs->nbytes = nb;
        cs->nruns_est = nr;
        est = LOG_REC_HDR + (nr + pieces) * LOG_RANGE_HDR + nb + bytes;
        if (est > lg->area_len / 2) {
            rvm_return_t rc = cset_materialize(lg);
            if (rc)
                return rc;
        }
    }
    /* the shadow pages are usually cold: touch all of this commit's lines first so
     * their cache misses overlap instead of stalling one after another */
    for (size_t i = 0; i < n && i < 16; i++) {
        uint64_t page = r[i].off / SHADOW_PAGE;
        struct seg *s = r[i].seg;
        if ((page >> 9) < s->sdir_len && s->sdir[page >> 9] != NULL) {
            struct shadow *sh = s->sdir[page >> 9][page & 511];
            if (sh != NULL) {
                uint32_t in = (uint32_t)(r[i].off % SHADOW_PAGE);
                __builtin_prefetch(&sh->bits[in / 64], 1);
                __builtin_prefetch(sh->data + in, 1);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t off = r[i].off, left = r[i].len;
        const char *src = r[i].src;
        while (left > 0) {
            uint64_t page = off / SHADOW_PAGE;
            uint32_t in = (uint32_t)(off % SHADOW_PAGE);
            uint32_t k = (uint32_t)(left < SHADOW_PAGE - in ? left : SHADOW_PAGE - in);
            struct shadow *sh = cset_page(cs, r[i].seg, page);
            if (sh == NULL) /* part of this commit is in the set: refuse all later ones */
                return err_io(ENOMEM, "out of memory queueing a no_flush commit; the set "
                                      "of queued commits holds part of it, so no later commit is "
                                      "accepted (restart: recovery keeps every flushed commit)");
            memcpy(sh->data + in, src, k);
            cset_setbits(sh->bits, in, in + k);
            off += k;
            src += k;
            left -= k;
            cs->nruns_est++;
        }
        cs->nbytes += r[i].len;
        if (r[i].seg->last_seq < lg->next_seq)
            r[i].seg->last_seq = lg->next_seq; /* the set's record will get >= this seq */
    }
    cs->nranges_in += n;
    cs->nbytes_in += bytes;
    if (cs->ntxn > 0) {
        engine.st.n_trans_coalesced++;
    }
    cs->ntxn++;
    return RVM_SUCCESS;
}

/* cset_cmp -- order shadows by (segment, page) */
static int cset_cmp(const void *a, const void *b)
{
    uint64_t x = (*(struct shadow *const *)a)->key, y = (*(struct shadow *const *)b)->key;
    return x < y ? -1 : x > y;
}

/* cset_ranges -- the set bits of every shadow page (sorted by cset_cmp) as ranges in cs->out,
 * *nr of them: one range per run of set bits */
static rvm_return_t cset_ranges(struct cset *cs, size_t *nr_out)
{
    size_t nr = 0;
    for (size_t i = 0; i < cs->n; i++) {
        struct shadow *sh = cs->list[i];
        uint32_t b = 0;
        while (b < SHADOW_PAGE) {
            uint64_t w = sh->bits[b / 64] >> (b % 64);
            if (w == 0) {
                b = (b / 64 + 1) * 64;
                continue;
            }
            b += (uint32_t)__builtin_ctzll(w);
            uint32_t e = b;
            while (e < SHADOW_PAGE) {
                /* inverted then shifted: zeros shifted in read as "set", so x == 0
                 * means the rest of this word is set */
                uint64_t x = ~sh->bits[e / 64] >> (e % 64);
                if (x == 0) {
                    e = (e / 64 + 1) * 64;
                    continue;
                }
                e += (uint32_t)__builtin_ctzll(x);
                break;
            }
            if (nr == cs->outcap) {
                size_t cap = cs->outcap ? cs->outcap * 2 : 256;
                struct range *o = realloc(cs->out, cap * sizeof(*o));
                if (o == NULL)
                    return err_set(RVM_ENO_MEMORY, "out of memory flushing no_flush commits");
                cs->out = o;
                cs->outcap = cap;
            }
            uint64_t page = sh->key & ((1ull << 40) - 1);
            cs->out[nr++] = (struct range){.rg = NULL,
                                           .seg = sh->seg,
                                           .off = page * SHADOW_PAGE + b,
                                           .len = e - b,
                                           .src = sh->data + b,
                                           .oldpos = 0};
            b = e;
        }
    }
    *nr_out = nr;
    return RVM_SUCCESS;
}

/* cset_recycle -- the set emptied once its ranges are queued: pages back to the pool,
 * directories emptied */
static void cset_recycle(struct cset *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        cset_unlink(cs->list[i]);
    if (cs->npool + cs->n > cs->poolcap) {
        size_t cap = cs->npool + cs->n;
        struct shadow **p = realloc(cs->pool, cap * sizeof(*p));
        if (p == NULL) {
            for (size_t i = 0; i < cs->n; i++)
                free(cs->list[i]);
            cs->n = 0;
            goto reset;
        }
        cs->pool = p;
        cs->poolcap = cap;
    }
    for (size_t i = 0; i < cs->n; i++)
        cs->pool[cs->npool++] = cs->list[i];
    cs->n = 0;
reset:
    cs->ntxn = 0;
    cs->nbytes = 0;
    cs->nruns_est = 0;
}

/* cset_materialize -- turn the set into one queued record and empty it */
rvm_return_t cset_materialize(struct log *lg)
{
    struct cset *cs = &lg->cs;
    if (cs->n == 0)
        return RVM_SUCCESS;
    qsort(cs->list, cs->n, sizeof(*cs->list), cset_cmp);
    size_t nr = 0;
    rvm_return_t rc = cset_ranges(cs, &nr);
    if (rc)
        return rc;
    uint64_t seq;
    rc = log_enqueue(lg, cs->out, nr, (uint32_t)cs->ntxn, &seq);
    if (rc)
        return rc;
    /* what coalescing across transactions saved: ranges and bytes that went in but
     * do not go out */
    uint64_t outbytes = 0;
    for (size_t i = 0; i < nr; i++)
        outbytes += cs->out[i].len;
    uint64_t relim = cs->nranges_in > nr ? cs->nranges_in - nr : 0;
    uint64_t belim = cs->nbytes_in > outbytes ? cs->nbytes_in - outbytes : 0;
    engine.st.n_trans_elim += relim;
    engine.st.trans_overlap = rvm_add_length_to_offset(&engine.st.trans_overlap, belim);
    cs->nranges_in = cs->nbytes_in = 0;
    cset_recycle(cs);
    return RVM_SUCCESS;
}

/* cset_free -- release every page and table */
void cset_free(struct cset *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        cset_unlink(cs->list[i]);
        free(cs->list[i]);
    }
    for (size_t i = 0; i < cs->npool; i++)
        free(cs->pool[i]);
    free(cs->list);
    free(cs->pool);
    free(cs->out);
    memset(cs, 0, sizeof(*cs));
}

/* cset_seg_free -- free a segment's page directory (the set must be empty) */
void cset_seg_free(struct seg *s)
{
    for (size_t i = 0; i < s->sdir_len; i++)
        free(s->sdir[i]);
    free(s->sdir);
    s->sdir = NULL;
    s->sdir_len = 0;
}
