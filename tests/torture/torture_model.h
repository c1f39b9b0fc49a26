/* SPDX-License-Identifier: MIT */
/*
 * torture_model.h -- the differential torture's model: a random script of heap operations that
 * is a pure function of (seed, operation number, model state), and the contents it predicts.
 *
 * Why a pure function: the program under test is killed and restarted at random; a restarted
 * run finds the state of some commit, "after operation D", and continues with operation D+1.
 * Because operation n is planned from the seed, n and the model after n-1 only, the model after
 * D is the same whatever crashes happened on the way, so any run can rebuild it by replaying
 * operations 1..D in memory and compare it with what the segment gave back, byte for byte.
 *
 * The model knows slots (a table of heap blocks): each slot's size and its contents as a short
 * list of extents, each extent either zeros or the pseudo-random bytes of one fill seed. Thread
 * and commit operations do not change the model (their effects are checked by invariants in
 * torture_prog.c instead).
 *
 * Everything here is static inline: the header is included by the program only, but keeping it
 * free of state makes the replay obviously deterministic.
 */
#ifndef LRVM_TESTS_TORTURE_MODEL_H
#define LRVM_TESTS_TORTURE_MODEL_H

#include <stdint.h>
#include <string.h>

#define TM_SLOTS 48 /* heap blocks the script juggles */
#define TM_EXTS 8   /* extents a slot's contents may have before it is rewritten whole */
#define TM_GROUPS 4 /* counter groups, one writer thread each at a time */
#define TM_LIVE_CAP (12u << 20) /* bytes live in all slots together, at most */

/* tm_mix -- splitmix64's finaliser: a good 64-bit hash of x */
static inline uint64_t tm_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* tm_rand -- the k-th random number of operation n of the script of seed */
static inline uint64_t tm_rand(uint64_t seed, uint64_t n, uint64_t k)
{
    return tm_mix(tm_mix(seed) ^ tm_mix(n * 0x100000001b3ull + k));
}

/* tm_word -- the 8 bytes at offset 8*idx of a block filled with fill seed `fill` (never 0) */
static inline uint64_t tm_word(uint64_t fill, uint64_t idx)
{
    return tm_mix(fill ^ (idx * 0xd6e8feb86659fd93ull));
}

/* tm_byte -- byte i of a block filled with `fill`; fill 0 means zeros */
static inline uint8_t tm_byte(uint64_t fill, uint64_t i)
{
    return fill ? (uint8_t)(tm_word(fill, i >> 3) >> ((i & 7) * 8)) : 0;
}

/* tm_fill -- write the bytes [a, b) of a block at p as `fill` predicts them (memset for zeros) */
static inline void tm_fill(uint8_t *p, uint64_t a, uint64_t b, uint64_t fill)
{
    if (!fill) {
        memset(p + a, 0, b - a);
        return;
    }
    uint64_t i = a;
    for (; i < b && (i & 7); i++)
        p[i] = tm_byte(fill, i);
    for (; i + 8 <= b; i += 8) {
        uint64_t w = tm_word(fill, i >> 3);
        memcpy(p + i, &w, 8);
    }
    for (; i < b; i++)
        p[i] = tm_byte(fill, i);
}

struct tm_ext {
    uint64_t end;  /* the extent covers [previous end, end) */
    uint64_t fill; /* fill seed; 0: zeros */
};

struct tm_slot {
    uint64_t size; /* 0: empty */
    unsigned n;    /* extents in use */
    struct tm_ext e[TM_EXTS];
};

struct tm_model {
    uint64_t seed;
    uint64_t live; /* sum of the slots' sizes */
    struct tm_slot s[TM_SLOTS];
};

enum tm_kind {
    TM_MALLOC,  /* slot := malloc(size) filled with fill (or memset to 0 when fill is 0) */
    TM_CALLOC,  /* slot := calloc(1, size), nothing written */
    TM_FREE,    /* free(slot) */
    TM_REALLOC, /* slot := realloc(slot, size); a grown tail is filled with fill */
    TM_WRITE,   /* bytes [a, b) of the slot := fill */
    TM_SPAWN,   /* start the writer thread of counter group `group` (if none runs) */
    TM_JOIN,    /* join it (if one runs) */
    TM_COMMIT,  /* aware mode: rvm_commit() */
    TM_NAP,     /* main sleeps `iters` ms: commits then find it idle and the writers busy */
};

struct tm_op {
    enum tm_kind kind;
    int slot, group;
    uint64_t size, a, b, fill;
    uint64_t iters; /* TM_SPAWN: the thread's loop count; 0: until joined */
};

/* tm_size -- a block size: mostly small, some medium, a few huge (so that freeing them makes
 * the heap give pages back to the kernel and later reuse them); bounded by the live cap */
static inline uint64_t tm_size(const struct tm_model *m, uint64_t n, uint64_t k, uint64_t old)
{
    uint64_t r = tm_rand(m->seed, n, k), pct = r % 100, v = r >> 8, sz;
    if (pct < 60)
        sz = 1 + v % 2048;
    else if (pct < 85)
        sz = 2048 + v % (30u << 10);
    else
        sz = (64u << 10) + v % (1u << 20);
    if (m->live - old + sz > TM_LIVE_CAP)
        sz = 1 + v % 512;
    return sz;
}

/* tm_fillseed -- a fill seed for operation n: zeros one time in three, else nonzero bytes */
static inline uint64_t tm_fillseed(const struct tm_model *m, uint64_t n, uint64_t k)
{
    uint64_t r = tm_rand(m->seed, n, k);
    return r % 3 == 0 ? 0 : (r | 1);
}

/* tm_plan -- operation n, planned from the seed and the model after n-1 (which it does not
 * change) */
static inline struct tm_op tm_plan(const struct tm_model *m, uint64_t n)
{
    uint64_t r = tm_rand(m->seed, n, 0) % 100;
    struct tm_op op = {.slot = (int)(tm_rand(m->seed, n, 1) % TM_SLOTS),
                       .group = (int)(tm_rand(m->seed, n, 2) % TM_GROUPS)};
    const struct tm_slot *s = &m->s[op.slot];
    if (r >= 75 && r < 85) {
        uint64_t q = tm_rand(m->seed, n, 3);
        op.kind = TM_SPAWN;
        /* many short lives (thread exits racing with commits), some long, some until joined (a
     * writer busy while commits take their instants) */
        op.iters = q % 4 == 0 ? 0 : q % 4 == 1 ? 20000 + q % 50000 : 50 + q % 2000;
        return op;
    }
    if (r >= 85 && r < 94) {
        op.kind = TM_JOIN;
        return op;
    }
    if (r >= 94) {
        op.kind = r < 97 ? TM_COMMIT : TM_NAP;
        op.iters = 1 + tm_rand(m->seed, n, 3) % 10;
        return op;
    }
    if (!s->size || r < 30) {
        op.size = tm_size(m, n, 4, s->size);
        op.fill = tm_fillseed(m, n, 5);
        op.kind = op.fill == 0 && tm_rand(m->seed, n, 6) % 2 ? TM_CALLOC : TM_MALLOC;
    } else if (r < 45) {
        op.kind = TM_FREE;
    } else if (r < 60) {
        op.kind = TM_REALLOC;
        op.size = tm_size(m, n, 4, s->size);
        op.fill = tm_fillseed(m, n, 5);
        if (op.size > s->size && s->n == TM_EXTS) /* no room for one more extent */
            op.kind = TM_MALLOC;
    } else {
        op.kind = TM_WRITE;
        uint64_t x = tm_rand(m->seed, n, 7) % s->size, y = tm_rand(m->seed, n, 8) % (s->size + 1);
        op.a = x < y ? x : y;
        op.b = x < y ? y : x + 1;
        op.fill = tm_fillseed(m, n, 5);
        if (s->n + 2 > TM_EXTS) { /* a write may split one extent in three: rewrite it whole */
            op.a = 0;
            op.b = s->size;
        }
    }
    return op;
}

/* tm_write_extent -- contents of slot s over [a, b) := fill, with a <= the slot's current end
 * (a == end: a grown tail). At most one old extent straddles a and one straddles b, so the
 * result has at most two extents more than before; tm_plan made sure there is room. */
static inline void tm_write_extent(struct tm_slot *s, uint64_t a, uint64_t b, uint64_t fill)
{
    struct tm_ext out[TM_EXTS + 2];
    unsigned k = 0;
    uint64_t start = 0;
    for (unsigned i = 0; i < s->n; start = s->e[i].end, i++) /* the parts before a */
        if (start < a)
            out[k++] = (struct tm_ext){s->e[i].end < a ? s->e[i].end : a, s->e[i].fill};
    out[k++] = (struct tm_ext){b, fill};
    for (unsigned i = 0; i < s->n; i++) /* the parts after b */
        if (s->e[i].end > b)
            out[k++] = s->e[i];
    /* neighbours with one fill seed are one extent (a byte depends on its offset, not on the
   * extent), which keeps the list short */
    unsigned j = 0;
    for (unsigned i = 0; i < k; i++) {
        if (j && out[j - 1].fill == out[i].fill)
            out[j - 1].end = out[i].end;
        else
            out[j++] = out[i];
    }
    memcpy(s->e, out, j * sizeof(out[0]));
    s->n = j;
}

/* tm_truncate -- slot s shrinks to size (extents past it dropped, the last one cut) */
static inline void tm_truncate(struct tm_slot *s, uint64_t size)
{
    unsigned j = 0;
    while (j < s->n && s->e[j].end < size)
        j++;
    if (j < s->n) {
        s->e[j].end = size;
        s->n = j + 1;
    }
}

/* tm_apply -- the model after op */
static inline void tm_apply(struct tm_model *m, const struct tm_op *op)
{
    struct tm_slot *s = &m->s[op->slot];
    switch (op->kind) {
    case TM_MALLOC:
    case TM_CALLOC:
        m->live += op->size - s->size;
        s->size = op->size;
        s->n = 1;
        s->e[0] = (struct tm_ext){op->size, op->kind == TM_CALLOC ? 0 : op->fill};
        break;
    case TM_FREE:
        m->live -= s->size;
        memset(s, 0, sizeof(*s));
        break;
    case TM_REALLOC:
        m->live += op->size - s->size;
        if (op->size <= s->size)
            tm_truncate(s, op->size);
        else
            tm_write_extent(s, s->size, op->size, op->fill);
        s->size = op->size;
        break;
    case TM_WRITE: tm_write_extent(s, op->a, op->b, op->fill); break;
    default: break;
    }
}

/* tm_touches_slot -- whether op changes its slot (a run that died inside it left that slot
 * half done) */
static inline int tm_touches_slot(const struct tm_op *op)
{
    return op->kind <= TM_WRITE;
}

#endif
