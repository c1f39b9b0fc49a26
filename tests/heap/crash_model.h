/* SPDX-License-Identifier: MIT */
/*
 * crash_model.h -- the program model shared by the heap crash tests (test_heap_crash.c: image
 * snapshots as a stand-in commit; test_heap_tracked_crash.c: real LRVM tracked commits).
 *
 * A child process keeps C_SLOTS blocks in a model that lives inside the heap, reachable from
 * the header's root pointer, as a real program's data would: each slot holds a block, its size
 * and the seed of its contents. The child runs random malloc/free/realloc/writes, commits at
 * random points, and tells the parent over a pipe ("C commit digest"). After a SIGKILL, the
 * next child opens the recovered heap (heap_open runs the checker), and cm_verify checks every
 * live block's contents, that no two blocks overlap and the allocation count, then reports
 * "V commit nlive digest". The parent (cm_round_check) accepts only the last acknowledged
 * commit or the next one (in flight at the kill), and when it knows that commit's digest the
 * recovered model must match it exactly.
 */
#ifndef HEAP_CRASH_MODEL_H
#define HEAP_CRASH_MODEL_H

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>

#include "heap_test.h"

#define C_MAGIC 0x4d4f44454c303031ull /* "MODEL001" */
#define C_SLOTS 400

struct cslot {
    char *p;
    uint64_t n;
    uint64_t seed;
};

struct cmodel {
    uint64_t magic;
    uint64_t commit;
    uint64_t nslots;
    struct cslot s[];
};

static int out_fd; /* the child's end of the pipe to the parent */

/* say -- one line to the parent */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ssize_t w = write(out_fd, buf, (size_t)n);
    (void)w;
}

#define CHILD_CHECK(cond, ...)     \
    do {                           \
        if (!(cond)) {             \
            say("F " __VA_ARGS__); \
            say("\n");             \
            _exit(3);              \
        }                          \
    } while (0)

/* child_report -- heap diagnostics go to the parent, which fails the round on them */
static void child_report(void *arg, const char *msg)
{
    (void)arg;
    say("R %s\n", msg);
}

/* c_size -- mostly small, some up to 64 KiB, a few large and rare huge blocks */
static size_t c_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 10000;
    if (r < 9000)
        return 16 + rnd(s) % 497;
    if (r < 9950)
        return rnd(s) % 65536 + 1;
    if (r < 9995)
        return rnd(s) % (512 << 10) + 1;
    return (4 << 20) + rnd(s) % (2 << 20);
}

/* c_fill / c_ok -- the committed contents of a block: all of it up to 16 KiB, else both ends */
static void c_fill(struct cslot *x)
{
    if (x->n <= 16384) {
        pat_fill(x->p, x->n, x->seed);
    } else {
        pat_fill(x->p, 8192, x->seed);
        pat_fill(x->p + x->n - 8192, 8192, x->seed + 1);
    }
}

static int c_ok(const struct cslot *x)
{
    if (x->n <= 16384)
        return pat_ok(x->p, x->n, x->seed);
    return pat_ok(x->p, 8192, x->seed) && pat_ok(x->p + x->n - 8192, 8192, x->seed + 1);
}

static int cmp_slot(const void *a, const void *b)
{
    const struct cslot *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

/* cm_digest -- FNV-1a over the model's slots: the parent compares the recovered model with the
 * one the child had at that commit */
static uint64_t cm_digest(const struct cmodel *m)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *c = (const unsigned char *)m->s;
    for (size_t i = 0; i < m->nslots * sizeof(struct cslot); i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

/* cm_new -- the model of a freshly created heap, published through the root */
static struct cmodel *cm_new(struct heap *h)
{
    struct cmodel *m = heap_calloc(h, 1, sizeof(*m) + C_SLOTS * sizeof(struct cslot));
    CHILD_CHECK(m, "calloc of the model");
    m->magic = C_MAGIC;
    m->nslots = C_SLOTS;
    heap_set_root(h, m);
    return m;
}

/*
 * cm_verify -- the recovered heap is open (heap_open ran the checker): every live block's
 * contents, no overlaps, allocation count. Reports "L leaked" and "V commit nlive digest".
 */
static struct cmodel *cm_verify(struct heap *h, int nthreads)
{
    struct cmodel *m = heap_get_root(h);
    CHILD_CHECK(m && m->magic == C_MAGIC && m->nslots == C_SLOTS, "model root lost");
    static struct cslot sorted[C_SLOTS];
    size_t nlive = 0;
    for (size_t i = 0; i < C_SLOTS; i++) {
        struct cslot *x = &m->s[i];
        if (!x->p)
            continue;
        CHILD_CHECK(heap_usable_size(h, x->p) >= x->n, "slot %zu: %p is not a block of %llu bytes",
                    i, (void *)x->p, (unsigned long long)x->n);
        CHILD_CHECK(c_ok(x), "slot %zu: block %p (%llu bytes) lost its committed contents", i,
                    (void *)x->p, (unsigned long long)x->n);
        sorted[nlive++] = *x;
    }
    qsort(sorted, nlive, sizeof(sorted[0]), cmp_slot);
    for (size_t i = 1; i < nlive; i++)
        CHILD_CHECK(sorted[i - 1].p + heap_usable_size(h, sorted[i - 1].p) <= sorted[i].p,
                    "blocks %p and %p overlap", (void *)sorted[i - 1].p, (void *)sorted[i].p);
    struct heap_stats st;
    heap_stats_get(h, &st);
    /* Every live block and the model are allocated (a missing one would have failed above or
   * shows here as a count below nlive + 1). Blocks above that are leaks: malloc'ed but not yet
   * stored by the program (or freed but not yet unpublished) at a commit instant. One thread
   * with commits between operations leaks nothing; see the parent for the threaded bound. */
    CHILD_CHECK(st.nallocated >= nlive + 1, "allocation count %zu, model has %zu live blocks",
                st.nallocated, nlive + 1);
    CHILD_CHECK(nthreads > 1 || st.nallocated == nlive + 1,
                "single thread: allocation count %zu, model has %zu live blocks (a leak)",
                st.nallocated, nlive + 1);
    say("L %zu\n", st.nallocated - nlive - 1);
    say("V %llu %zu %llu\n", (unsigned long long)m->commit, nlive,
        (unsigned long long)cm_digest(m));
    return m;
}

static void app_lock(pthread_mutex_t *m)
{
    if (m)
        pthread_mutex_lock(m);
}

static void app_unlock(pthread_mutex_t *m)
{
    if (m)
        pthread_mutex_unlock(m);
}

/* c_op -- one random operation on slot x; writes go only to blocks the slot owns */
static void c_op(struct heap *h, struct cslot *x, uint64_t *s, pthread_mutex_t *app)
{
    if (x->p) {
        unsigned r = (unsigned)(rnd(s) % 10);
        if (r < 5) {
            char *p = x->p;
            app_lock(app);
            x->p = NULL;
            app_unlock(app);
            CHILD_CHECK(heap_free(h, p) == 0, "free(%p)", (void *)p);
        } else if (r < 8 || app) {
            /* realloc: build the new block, then publish (a commit sees the old or the new) */
            size_t nn = c_size(s);
            struct cslot y = {heap_malloc(h, nn), nn, rnd(s)};
            CHILD_CHECK(y.p, "malloc %zu", nn);
            c_fill(&y);
            char *old = x->p;
            app_lock(app);
            *x = y;
            app_unlock(app);
            CHILD_CHECK(heap_free(h, old) == 0, "free(%p)", (void *)old);
        } else {
            /* in-place realloc (single thread only: the contents change under the slot) */
            size_t nn = c_size(s), keep = nn < x->n ? nn : x->n;
            uint64_t oldseed = x->seed;
            char *q = heap_realloc(h, x->p, nn);
            CHILD_CHECK(q, "realloc");
            if (x->n <= 16384)
                CHILD_CHECK(pat_ok(q, keep, oldseed), "realloc lost contents");
            *x = (struct cslot){q, nn, rnd(s)};
            c_fill(x);
        }
        return;
    }
    size_t n = c_size(s);
    struct cslot y = {NULL, n, rnd(s)};
    unsigned r = (unsigned)(rnd(s) % 10);
    y.p = r < 7   ? heap_malloc(h, n)
          : r < 9 ? heap_calloc(h, 1, n)
                  : heap_memalign(h, (size_t)64 << (rnd(s) % 7), n);
    CHILD_CHECK(y.p, "alloc %zu", n);
    c_fill(&y);
    app_lock(app);
    *x = y;
    app_unlock(app);
}

/* ---- parent side ---------------------------------------------------------------------------- */

/* ---- the two-thread child: shared by the snapshot and the tracked crash tests --------------- */

/* cm_mt -- two allocating threads, each owning the slots of its parity under the program's own
 * lock, and a committer that takes both locks (the program's consistency point) */
struct cm_mt {
    struct heap *h;
    struct cmodel *m;
    pthread_mutex_t app[2];     /* the program's own locks over its model (slot parity) */
    _Atomic int commit_pending; /* workers step aside so the committer is not starved */
    uint64_t seed;
};
static struct cm_mt MT;

/* cm_mt_worker -- thread idx (0 or 1) churns random slots of its parity forever */
static void *cm_mt_worker(void *arg)
{
    int idx = (int)(intptr_t)arg;
    uint64_t s = MT.seed * 7 + (uint64_t)idx + 1;
    for (;;) {
        size_t i = (rnd(&s) % (C_SLOTS / 2)) * 2 + (size_t)idx;
        while (MT.commit_pending)
            sched_yield();
        c_op(MT.h, &MT.m->s[i], &s, &MT.app[idx]);
    }
    return NULL;
}

/* struct round -- what one child said: its verification (V, L), commits (C), failures (F, R) */
struct round {
    char buf[65536];
    size_t len;
    int have_v;
    unsigned long long v_commit, max_c;
    uint64_t v_digest;
    size_t v_live;
    size_t leaked;
    char fail[512];
};

/* struct cm_digests -- the digest the children reported for each commit number */
struct cm_digests {
    uint64_t *d;
    unsigned char *known;
    size_t cap;
};

static void cm_digest_put(struct cm_digests *g, unsigned long long c, uint64_t d)
{
    if (c >= g->cap) {
        size_t cap = g->cap ? g->cap : 1024;
        while (cap <= c)
            cap *= 2;
        g->d = realloc(g->d, cap * sizeof(*g->d));
        g->known = realloc(g->known, cap);
        cr_assert(g->d && g->known);
        memset(g->known + g->cap, 0, cap - g->cap);
        g->cap = cap;
    }
    g->d[c] = d;
    g->known[c] = 1;
}

static void cm_digests_free(struct cm_digests *g)
{
    free(g->d);
    free(g->known);
    memset(g, 0, sizeof(*g));
}

/* parse -- consume the complete lines in r->buf; C lines' digests go to g */
static void parse(struct round *r, struct cm_digests *g)
{
    char *line = r->buf, *nl;
    while ((nl = memchr(line, '\n', r->len - (size_t)(line - r->buf)))) {
        *nl = 0;
        unsigned long long a, d;
        size_t b;
        if (sscanf(line, "V %llu %zu %llu", &a, &b, &d) == 3) {
            r->have_v = 1;
            r->v_commit = a;
            r->v_live = b;
            r->v_digest = d;
        } else if (sscanf(line, "L %zu", &b) == 1) {
            r->leaked = b;
        } else if (sscanf(line, "C %llu %llu", &a, &d) == 2) {
            if (a > r->max_c)
                r->max_c = a;
            cm_digest_put(g, a, d);
        } else if (line[0] == 'F' || line[0] == 'R') {
            if (!r->fail[0] || line[0] == 'F')
                snprintf(r->fail, sizeof(r->fail), "%.500s", line);
        }
        line = nl + 1;
    }
    size_t rest = r->len - (size_t)(line - r->buf);
    memmove(r->buf, line, rest);
    r->len = rest;
}

/* read_some -- 1 if something was read, 0 on timeout, -1 at EOF */
static int read_some(int fd, struct round *r, struct cm_digests *g, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    ssize_t n = read(fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
    if (n <= 0)
        return -1;
    r->len += (size_t)n;
    parse(r, g);
    return 1;
}

/*
 * cm_round_check -- judge one round: the child verified the recovered heap without complaint,
 * the recovered commit is the last acknowledged one (*last) or the next one (in flight at the
 * kill), and its model equals the one reported at that commit when the parent heard of it.
 * Advances *last to what is now known committed.
 */
static void cm_round_check(const char *what, int round, struct round *r, const struct cm_digests *g,
                           unsigned long long *last)
{
    cr_assert(r->have_v, "%s round %d: the child did not verify the last commit (%s)", what, round,
              r->fail[0] ? r->fail : "no message");
    cr_assert(!r->fail[0] || r->fail[0] == 'R', "%s round %d: %s", what, round, r->fail);
    cr_assert(r->v_commit == *last || r->v_commit == *last + 1,
              "%s round %d: recovered commit %llu, last acknowledged %llu", what, round,
              r->v_commit, *last);
    if (r->v_commit < g->cap && g->known[r->v_commit])
        cr_assert(g->d[r->v_commit] == r->v_digest,
                  "%s round %d: the recovered model is not the one of commit %llu", what, round,
                  r->v_commit);
    if (r->v_commit > *last)
        *last = r->v_commit; /* killed between committing and reporting: the image is newer */
    if (r->max_c > *last)
        *last = r->max_c;
}

#endif
