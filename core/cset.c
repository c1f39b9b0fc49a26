/*
 * cset.c -- inter-transaction coalescing of no_flush commits (RVM_COALESCE_TRANS).
 *
 * Queued no_flush commits are not kept as separate records: their new values are
 * copied into shadow pages (4 KiB of newest bytes + a bitmap of which bytes are set),
 * found by (segment, page) in an open-addressing table. A later commit to the same
 * bytes simply overwrites them, so N commits to the same bytes cost one range at
 * flush, and each commit costs O(bytes) with no sorting and no syscalls. When the set
 * is flushed it becomes ONE record carrying all its transactions: after a crash they
 * are all present or all absent, which keeps the rule "no_flush commits are lost only
 * whole and only from the end". Caller holds lg->mu for every function here.
 */
#include <stdlib.h>
#include <string.h>

#include "rvm_int.h"

/* cset_hash -- table slot of a key */
static inline size_t cset_hash(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* cset_grow -- double the table */
static int cset_grow(struct cset *cs)
{
    size_t cap = cs->tabcap ? cs->tabcap * 2 : 1024;
    struct shadow **t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < cs->n; i++) {
        size_t h = cset_hash(cs->list[i]->key, cap);
        while (t[h] != NULL)
            h = (h + 1) & (cap - 1);
        t[h] = cs->list[i];
    }
    free(cs->tab);
    cs->tab = t;
    cs->tabcap = cap;
    return 0;
}

/* cset_page -- the shadow of (seg, page), created empty if absent */
static struct shadow *cset_page(struct cset *cs, struct seg *s, uint64_t page)
{
    uint64_t key = ((uint64_t)s->id << 40) | page;
    if ((cs->n + 1) * 2 > cs->tabcap && cset_grow(cs) != 0)
        return NULL;
    size_t h = cset_hash(key, cs->tabcap);
    while (cs->tab[h] != NULL) {
        if (cs->tab[h]->key == key)
            return cs->tab[h];
        h = (h + 1) & (cs->tabcap - 1);
    }
    if (cs->n == cs->listcap) {
        size_t cap = cs->listcap ? cs->listcap * 2 : 256;
        struct shadow **l = realloc(cs->list, cap * sizeof(*l));
        if (l == NULL)
            return NULL;
        cs->list = l;
        cs->listcap = cap;
    }
    struct shadow *sh = cs->npool ? cs->pool[--cs->npool] : malloc(sizeof(*sh));
    if (sh == NULL)
        return NULL;
    sh->key = key;
    sh->seg = s;
    memset(sh->bits, 0, sizeof(sh->bits));
    cs->tab[h] = sh;
    cs->list[cs->n++] = sh;
    return sh;
}

/* cset_setbits -- mark bytes [a, b) of a page; returns how many were newly set */
static uint64_t cset_setbits(uint64_t *bits, uint32_t a, uint32_t b)
{
    uint64_t fresh = 0;
    while (a < b) {
        uint32_t w = a / 64, lo = a % 64;
        uint32_t hi = (b - w * 64) < 64 ? (b - w * 64) : 64;
        uint64_t mask = (hi == 64 ? ~0ull : ((1ull << hi) - 1)) & ~((1ull << lo) - 1);
        fresh += (uint64_t)__builtin_popcountll(mask & ~bits[w]);
        bits[w] |= mask;
        a = w * 64 + hi;
    }
    return fresh;
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
    /* keep the set's eventual record well inside the log (and below 4 GiB) */
    uint64_t bound = LOG_REC_HDR + (cs->nruns_est + pieces) * (LOG_RANGE_HDR + 8) +
                     cs->nbytes + bytes;
    if (cs->n > 0 && bound > lg->area_len / 2) {
        rvm_return_t rc = cset_materialize(lg);
        if (rc)
            return rc;
    }
    uint64_t overlap = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t off = r[i].off, left = r[i].len;
        const char *src = r[i].src;
        uint64_t fresh = 0;
        while (left > 0) {
            uint64_t page = off / SHADOW_PAGE;
            uint32_t in = (uint32_t)(off % SHADOW_PAGE);
            uint32_t k = (uint32_t)(left < SHADOW_PAGE - in ? left : SHADOW_PAGE - in);
            struct shadow *sh = cset_page(cs, r[i].seg, page);
            if (sh == NULL)
                return err_set(RVM_ENO_MEMORY, "out of memory queueing a no_flush commit");
            memcpy(sh->data + in, src, k);
            fresh += cset_setbits(sh->bits, in, in + k);
            off += k;
            src += k;
            left -= k;
            cs->nruns_est++;
        }
        cs->nbytes += fresh;
        overlap += r[i].len - fresh;
        if (fresh == 0) {
            R.st.n_trans_elim++;
            R.st.tot_trans_elim++;
        }
        if (r[i].seg->last_seq < lg->next_seq)
            r[i].seg->last_seq = lg->next_seq; /* the set's record will get >= this seq */
    }
    R.st.trans_overlap = rvm_add_length_to_offset(&R.st.trans_overlap, overlap);
    R.st.tot_trans_overlap = rvm_add_length_to_offset(&R.st.tot_trans_overlap, overlap);
    if (cs->ntxn > 0) {
        R.st.n_trans_coalesced++;
        R.st.tot_trans_coalesced++;
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

/* cset_materialize -- turn the set into one queued record and empty it */
rvm_return_t cset_materialize(struct log *lg)
{
    struct cset *cs = &lg->cs;
    if (cs->n == 0)
        return RVM_SUCCESS;
    qsort(cs->list, cs->n, sizeof(*cs->list), cset_cmp);
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
            cs->out[nr++] = (struct range){ .rg = NULL, .seg = sh->seg,
                                            .off = page * SHADOW_PAGE + b, .len = e - b,
                                            .src = sh->data + b, .oldpos = 0 };
            b = e;
        }
    }
    uint64_t seq;
    rvm_return_t rc = log_enqueue(lg, cs->out, nr, (uint32_t)cs->ntxn, &seq);
    if (rc)
        return rc;
    /* recycle: pages back to the pool, table emptied */
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
    memset(cs->tab, 0, cs->tabcap * sizeof(*cs->tab));
    cs->ntxn = 0;
    cs->nbytes = 0;
    cs->nruns_est = 0;
    return RVM_SUCCESS;
}

/* cset_free -- release every page and table */
void cset_free(struct cset *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        free(cs->list[i]);
    for (size_t i = 0; i < cs->npool; i++)
        free(cs->pool[i]);
    free(cs->list);
    free(cs->pool);
    free(cs->tab);
    free(cs->out);
    memset(cs, 0, sizeof(*cs));
}
