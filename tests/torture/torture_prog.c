/* SPDX-License-Identifier: MIT */
/*
 * torture_prog.c -- the unmodified program of the differential torture.
 *
 * It calls no lrvm function (except rvm_commit in "aware" mode, looked up with dlsym so that
 * the program links nothing of lrvm), and does what ordinary programs do to a heap: malloc,
 * calloc, realloc and free of small and huge blocks, writes of random bytes and of zeros,
 * threads that start, write, allocate and exit. Run under the shim, all of that lives in the
 * persistent segment; this program's job is to check, at its start, that what it finds is
 * exactly the state of ONE commit, then to go on changing it until it exits or is killed.
 *
 * The state it keeps (globals and heap, so both halves of the segment are exercised):
 *  - G.done_op / G.cur_op: the script's progress. Operation n sets cur_op = n, does its work,
 *    then sets done_op = n; so at any instant either cur_op == done_op (between operations) or
 *    cur_op == done_op + 1 (inside one).
 *  - G.p[] / G.size[]: the slots of torture_model.h, each a heap block. The model replayed to
 *    done_op predicts every slot's size and every byte, except the one slot an operation in
 *    progress is changing.
 *  - counter groups: six counters per group, in six different pages (three in globals, three
 *    in a heap block), that the group's writer thread increments one after the other. At any
 *    single instant they read v+1..v+1, v..v (a prefix updated): a commit that mixes pages of
 *    two instants shows a later counter newer than an earlier one, or a gap of more than one.
 *    One group's writer runs through the whole of every run, so that every commit, explicit,
 *    signal, interval or exit, takes its instant while a thread is writing.
 *    Two relations tie threads together: a thread copies G.cur_op into its group ("seen op",
 *    never ahead of G.cur_op at any instant), and main copies a group's last counter into
 *    G.seen_ctr (never ahead of that counter).
 *
 * Bounds kept outside the segment, in the acknowledgement file given as --ack (fdatasync'ed
 * where it matters): `lo`, the last operation whose commit was acknowledged durable (an
 * rvm_commit that returned in flush mode; the final state of a clean exit with the exit commit
 * or an explicit last commit); `hi`, the last operation any run started. The state found must
 * have lo <= done_op and cur_op <= hi: never older than what was promised, never newer than
 * what was attempted.
 *
 * Exit status: 0 fine; 3 the state found is wrong (the message says how); 4 rvm_commit failed;
 * 5 bad usage or a system call failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "torture_model.h"

#define MAGIC 0x74727475726531ull /* "torture1" */
#define PAGE_WORDS 512            /* uint64_t per 4 KiB page */
#define HEAP_CTR_BYTES (3 * 4096)
#define SEEN_OP_WORD (2 * PAGE_WORDS + 1) /* a group's "seen op", in its third heap page */
#define RESIDENT 0 /* the group whose writer runs from the check to the end of every run */

enum { EXIT_CHECK = 3, EXIT_COMMIT = 4, EXIT_USAGE = 5 };

/* ---- persistent state: globals (and the heap they point into) ---------------------------- */

static struct {
    uint64_t magic, seed;
    volatile uint64_t done_op, cur_op;
    void *p[TM_SLOTS];
    uint64_t size[TM_SLOTS];
    volatile uint64_t *hctr[TM_GROUPS]; /* each group's three heap counter pages */
    volatile uint64_t seen_ctr[TM_GROUPS];
} G;

/* three pages of globals per group; counter k of a group is the first word of a page */
static volatile uint64_t gctr[TM_GROUPS][3][PAGE_WORDS] __attribute__((aligned(4096)));

/* ---- volatile state: outside the heap (mmap), so that it neither persists nor is logged --- */

struct ack {
    uint64_t lo, hi, ready_run;
};

struct opts {
    uint64_t seed, run, ops;
    const char *ack_path, *end;
    int aware, exit_commit, flush;
};

struct vol {
    struct tm_model model;
    struct opts o;
    int ack_fd;
    struct ack ack;
    uint64_t last_commit; /* done_op at this run's last acknowledged rvm_commit */
    int (*commit_fn)(void);
    struct worker {
        pthread_t t;
        int running;
        volatile int stop; /* set by group_join for a thread that runs until joined */
        uint64_t iters, group;
        struct vol *vol; /* the run's volatile state, for the thread's own V */
    } w[TM_GROUPS];
    uint8_t expect[1 << 16]; /* expected bytes, one chunk of a block at a time */
};
/* The run's volatile state lives in a private mapping made anew by every run. Its address is
 * kept in thread-local storage, not in a global: the shim commits the globals, and a global
 * pointing into memory that does not come back at a restart makes the shim refuse the restart
 * (it cannot know that main sets the pointer again). Worker threads copy it from their
 * struct worker. */
static __thread struct vol *V;

/* ---- messages ---------------------------------------------------------------------------- */

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    dprintf(2, "torture: run %llu: %s%s\n", (unsigned long long)(V ? V->o.run : 0),
            code == EXIT_CHECK ? "CHECK FAILED: " : "", buf);
    _exit(code);
}

/* ---- the acknowledgement file ------------------------------------------------------------ */

static void ack_write(int durable)
{
    if (pwrite(V->ack_fd, &V->ack, sizeof(V->ack), 0) != (ssize_t)sizeof(V->ack))
        die(EXIT_USAGE, "write %s: %s", V->o.ack_path, strerror(errno));
    if (durable && fdatasync(V->ack_fd))
        die(EXIT_USAGE, "fdatasync %s: %s", V->o.ack_path, strerror(errno));
}

/* ack_durable -- the state after operation op is promised: record it before going on */
static void ack_durable(uint64_t op)
{
    if (op > V->ack.lo) {
        V->ack.lo = op;
        ack_write(1);
    }
}

static void ack_open(void)
{
    V->ack_fd = open(V->o.ack_path, O_RDWR | O_CREAT, 0600);
    if (V->ack_fd < 0)
        die(EXIT_USAGE, "open %s: %s", V->o.ack_path, strerror(errno));
    ssize_t n = pread(V->ack_fd, &V->ack, sizeof(V->ack), 0);
    if (n != 0 && n != (ssize_t)sizeof(V->ack))
        die(EXIT_USAGE, "%s: %zd bytes, not an acknowledgement file", V->o.ack_path, n);
}

static void *xmalloc(size_t n);

/* ---- counter groups and their writer threads ---------------------------------------------- */

/* group_ctr -- counter k (0..5) of group g, alternating globals and heap pages */
static volatile uint64_t *group_ctr(int g, int k)
{
    return k % 2 == 0 ? &gctr[g][k / 2][0] : &G.hctr[g][(k / 2) * PAGE_WORDS];
}

/* count_turn -- one turn of group g's writer: every counter once, in order, then the op seen.
 * Each counter is incremented from its own value (not all set from the first one): a store
 * lost in memory, not only in a commit, then stays visible instead of being healed by the
 * next turn. */
static void count_turn(int g)
{
    for (int k = 0; k < 6; k++)
        (*group_ctr(g, k))++;
    G.hctr[g][SEEN_OP_WORD] = G.cur_op;
}

/* worker_main -- a group's writer. The resident one is a tight loop (as many writes as
 * possible around each commit instant). The others also fill their heap cache (a batch of
 * blocks held through the loop, freed at the end, so that the thread's exit flushes a full
 * cache while commits run) and churn single blocks; in aware mode one in eight commits itself
 * before it exits (a thread's first commit, racing with its siblings' exits; not
 * acknowledged: the program's main thread may be inside an operation). */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    V = w->vol;
    int g = (int)w->group;
    if (g == RESIDENT) {
        while (!w->stop)
            count_turn(g);
        return NULL;
    }
    uint64_t x = tm_mix(w->iters);
    char *held[64];
    unsigned nheld = 16 + (unsigned)(x % 48);
    for (unsigned k = 0; k < nheld; k++) {
        size_t n = 16 + (x = tm_mix(x)) % 2000;
        held[k] = xmalloc(n);
        memset(held[k], (int)k, n);
    }
    for (uint64_t it = 0; w->iters ? it < w->iters : !w->stop; it++) {
        count_turn(g);
        if (it % 64 == 0) {
            size_t n = 1 + (x = tm_mix(x)) % 3000;
            char *p = xmalloc(n);
            memset(p, (int)it, n);
            free(p);
        }
    }
    for (unsigned k = 0; k < nheld; k++)
        free(held[k]);
    if (V->o.aware && x % 8 == 0 && V->commit_fn() != 0)
        die(EXIT_COMMIT, "rvm_commit in group %d's thread failed", g);
    return NULL;
}

static void group_join(int g)
{
    if (V->w[g].running) {
        V->w[g].stop = 1;
        pthread_join(V->w[g].t, NULL);
        V->w[g].running = 0;
    }
}

static void group_spawn(int g, uint64_t iters)
{
    if (V->w[g].running)
        return;
    V->w[g].iters = iters;
    V->w[g].stop = 0;
    V->w[g].group = (uint64_t)g;
    V->w[g].vol = V;
    int e = pthread_create(&V->w[g].t, NULL, worker_main, &V->w[g]);
    if (e)
        die(EXIT_USAGE, "pthread_create: %s", strerror(e));
    V->w[g].running = 1;
}

/* check_groups -- the instant invariant across the six pages of every group, and the two
 * relations between threads */
static void check_groups(uint64_t cur)
{
    for (int g = 0; g < TM_GROUPS; g++) {
        if (!G.hctr[g])
            die(EXIT_CHECK, "group %d has no heap counters although the state is initialised", g);
        uint64_t v[6];
        for (int k = 0; k < 6; k++)
            v[k] = *group_ctr(g, k);
        for (int k = 1; k < 6; k++)
            if (v[k] > v[k - 1] || v[0] - v[k] > 1)
                die(EXIT_CHECK,
                    "group %d counters are not one instant: %llu %llu %llu %llu %llu %llu "
                    "(globals, heap, globals, heap, globals, heap; one thread increments them in "
                    "this "
                    "order, so a later one is never newer, nor older by more than one: a torn "
                    "commit, "
                    "or an increment lost in memory)",
                    g, (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[2],
                    (unsigned long long)v[3], (unsigned long long)v[4], (unsigned long long)v[5]);
        uint64_t seen = G.hctr[g][SEEN_OP_WORD];
        if (seen > cur)
            die(EXIT_CHECK,
                "group %d's thread saw operation %llu but the state's current operation "
                "is %llu: its heap page is newer than the globals",
                g, (unsigned long long)seen, (unsigned long long)cur);
        if (G.seen_ctr[g] > v[5])
            die(EXIT_CHECK,
                "main saw group %d's last counter at %llu but it is %llu: the globals are "
                "newer than the group's heap page",
                g, (unsigned long long)G.seen_ctr[g], (unsigned long long)v[5]);
    }
}

/* ---- slots: doing an operation on real memory, and checking a block --------------------- */

/* fill_slot_like_model -- write block p (of slot s's model size) as the model predicts */
static void fill_slot_like_model(uint8_t *p, const struct tm_slot *s)
{
    uint64_t start = 0;
    for (unsigned i = 0; i < s->n; start = s->e[i].end, i++)
        tm_fill(p, start, s->e[i].end, s->e[i].fill);
}

/* check_extent -- block p's bytes [a, b) against fill; dies naming the first difference */
static void check_extent(int slot, const uint8_t *p, uint64_t a, uint64_t b, uint64_t fill)
{
    for (uint64_t c = a; c < b; c += sizeof(V->expect)) {
        uint64_t e = b - c < sizeof(V->expect) ? b - c : sizeof(V->expect);
        memset(V->expect, 0, e);
        if (fill)
            tm_fill(V->expect - c, c, c + e, fill);
        if (memcmp(p + c, V->expect, e) == 0)
            continue;
        uint64_t i = 0, bad = 0;
        while (p[c + i] == V->expect[i])
            i++;
        char where[256];
        int w = 0;
        for (uint64_t j = i; j < e; j++)
            if (p[c + j] != V->expect[j] && bad++ < 6 && w < 200)
                w += snprintf(where + w, sizeof(where) - (size_t)w, " @%llu:%02x/%02x",
                              (unsigned long long)(c + j), p[c + j], V->expect[j]);
        dprintf(2, "torture: differences (offset:found/expected):%s\n", w ? where : "");
        die(EXIT_CHECK,
            "slot %d (%p, %llu bytes): byte %llu is 0x%02x, expected 0x%02x (%s over "
            "[%llu, %llu)); %llu of the next %llu bytes differ",
            slot, (const void *)p, (unsigned long long)G.size[slot], (unsigned long long)(c + i),
            p[c + i], V->expect[i], fill ? "random bytes" : "zeros", (unsigned long long)a,
            (unsigned long long)b, (unsigned long long)bad, (unsigned long long)(e - i));
    }
}

static void check_slot(int i)
{
    const struct tm_slot *s = &V->model.s[i];
    if (G.size[i] != s->size || (G.p[i] != NULL) != (s->size != 0))
        die(EXIT_CHECK, "slot %d is %p with %llu bytes, the model after operation %llu says %llu",
            i, G.p[i], (unsigned long long)G.size[i], (unsigned long long)G.done_op,
            (unsigned long long)s->size);
    uint64_t start = 0;
    for (unsigned k = 0; k < s->n; start = s->e[k].end, k++)
        check_extent(i, G.p[i], start, s->e[k].end, s->e[k].fill);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        die(EXIT_USAGE, "malloc(%zu) failed", n);
    return p;
}

/* slot_release -- slot i becomes empty. The table forgets the block BEFORE it is freed, so a
 * commit at any instant never holds a table entry naming freed memory. */
static void slot_release(int i)
{
    void *old = G.p[i];
    G.p[i] = NULL;
    G.size[i] = 0;
    free(old);
}

/* do_slot_op -- operation op on real memory (the model is updated by the caller) */
static void do_slot_op(const struct tm_op *op)
{
    int i = op->slot;
    uint8_t *p;
    switch (op->kind) {
    case TM_MALLOC:
    case TM_CALLOC:
        slot_release(i);
        if (op->kind == TM_CALLOC) {
            p = calloc(1, op->size);
            if (!p)
                die(EXIT_USAGE, "calloc(%llu) failed", (unsigned long long)op->size);
        } else {
            p = xmalloc(op->size);
            tm_fill(p, 0, op->size, op->fill);
        }
        G.p[i] = p;
        G.size[i] = op->size;
        break;
    case TM_FREE: slot_release(i); break;
    case TM_REALLOC:
        p = realloc(G.p[i], op->size);
        if (!p)
            die(EXIT_USAGE, "realloc(%llu) failed", (unsigned long long)op->size);
        if (op->size > G.size[i])
            tm_fill(p, G.size[i], op->size, op->fill);
        G.p[i] = p;
        G.size[i] = op->size;
        break;
    case TM_WRITE: tm_fill(G.p[i], op->a, op->b, op->fill); break;
    default: break;
    }
}

/* ---- the run: check what was found, then go on ------------------------------------------- */

/* init_fresh -- a fresh segment: the heap counters first, the magic last, so that a commit
 * taken in between shows an uninitialised state (the next run starts again; a leak only) */
static void init_fresh(void)
{
    if (V->ack.lo > 0)
        die(EXIT_CHECK, "the state is empty, but operation %llu's commit was acknowledged",
            (unsigned long long)V->ack.lo);
    for (int g = 0; g < TM_GROUPS; g++) {
        G.hctr[g] = calloc(1, HEAP_CTR_BYTES);
        if (!G.hctr[g])
            die(EXIT_USAGE, "calloc of the counters failed");
    }
    G.seed = V->o.seed;
    G.magic = MAGIC;
}

/* finish_turns -- complete each group's turn that the commit cut in the middle. Threads do not
 * come back after a restart: a new writer starts its turn at counter 0, so on a state such as
 * (n+1, n+1, n, n, n, n) it would make (n+2, n+1, n, ...), which is a true instant of this run
 * but breaks the invariant the next run checks. A program that resumes must re-establish its
 * invariants itself; this one finishes the interrupted turn, as its dead writer would have. */
static void finish_turns(void)
{
    for (int g = 0; g < TM_GROUPS; g++) {
        uint64_t first = *group_ctr(g, 0);
        for (int k = 1; k < 6; k++)
            *group_ctr(g, k) = first;
    }
}

/* check_found -- the state found must be one commit's: bounds, slots, counters. A run that
 * died inside operation C = done_op + 1 left C's slot half changed: it is rebuilt as the model
 * after done_op says (the half-changed block is leaked: its table entry may be stale), and C
 * is done again by the caller. */
static void check_found(void)
{
    uint64_t d = G.done_op, c = G.cur_op;
    if (G.seed != V->o.seed)
        die(EXIT_USAGE, "this segment was made with seed %llu, not %llu",
            (unsigned long long)G.seed, (unsigned long long)V->o.seed);
    if (c != d && c != d + 1)
        die(EXIT_CHECK, "done operation %llu and current operation %llu are not one instant",
            (unsigned long long)d, (unsigned long long)c);
    if (d < V->ack.lo)
        die(EXIT_CHECK,
            "found the state after operation %llu, older than the acknowledged "
            "durable commit after operation %llu",
            (unsigned long long)d, (unsigned long long)V->ack.lo);
    if (c > V->ack.hi)
        die(EXIT_CHECK, "found operation %llu in progress, but no run ever started beyond %llu",
            (unsigned long long)c, (unsigned long long)V->ack.hi);
    for (uint64_t n = 1; n <= d; n++) {
        struct tm_op op = tm_plan(&V->model, n);
        tm_apply(&V->model, &op);
    }
    struct tm_op inside = tm_plan(&V->model, c);
    int skip = c == d + 1 && tm_touches_slot(&inside) ? inside.slot : -1;
    for (int i = 0; i < TM_SLOTS; i++)
        if (i != skip)
            check_slot(i);
    check_groups(c);
    finish_turns();
    if (skip >= 0) {
        const struct tm_slot *s = &V->model.s[skip];
        G.p[skip] = NULL;
        G.size[skip] = 0;
        if (s->size) {
            uint8_t *p = xmalloc(s->size);
            fill_slot_like_model(p, s);
            G.p[skip] = p;
            G.size[skip] = s->size;
        }
    }
}

static void explicit_commit(void)
{
    if (!V->o.aware)
        return;
    int r = V->commit_fn();
    if (r != 0)
        die(EXIT_COMMIT, "rvm_commit returned %d after operation %llu", r,
            (unsigned long long)G.done_op);
    V->last_commit = G.done_op;
    if (V->o.flush)
        ack_durable(G.done_op);
}

static void nap_ms(uint64_t ms)
{
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* run_op -- operation n: announce it (hi, then cur_op), do it, then mark it done */
static void run_op(uint64_t n)
{
    if (n > V->ack.hi) {
        V->ack.hi = n;
        ack_write(0);
    }
    struct tm_op op = tm_plan(&V->model, n);
    G.cur_op = n;
    G.seen_ctr[op.group] = *group_ctr(op.group, 5);
    if (tm_touches_slot(&op))
        do_slot_op(&op);
    else if (op.kind == TM_SPAWN && op.group != RESIDENT)
        group_spawn(op.group, op.iters);
    else if (op.kind == TM_JOIN && op.group != RESIDENT)
        group_join(op.group);
    else if (op.kind == TM_NAP)
        nap_ms(op.iters);
    tm_apply(&V->model, &op);
    G.done_op = n;
    if (op.kind == TM_COMMIT)
        explicit_commit();
}

/* finish -- how this run ends (--end) */
static int finish(void)
{
    const char *end = V->o.end;
    if (strcmp(end, "kill") == 0)
        for (;;)
            pause(); /* the driver kills it; ops ran out first */
    if (strcmp(end, "_exit") == 0) {
        for (int i = 0; i < 3; i++) { /* threads still running, no joins: only acknowledged */
            nap_ms(10);               /* commits count */
            explicit_commit();
        }
        _exit(0);
    }
    for (int g = 0; g < TM_GROUPS; g++)
        group_join(g);
    if (!V->o.exit_commit)
        explicit_commit();
    /* a clean exit makes the exit commit (or, without one, the last explicit commit) durable,
   * whatever LRVM_FLUSH says */
    if (V->o.exit_commit)
        ack_durable(G.done_op);
    else if (V->o.aware)
        ack_durable(V->last_commit);
    if (strcmp(end, "exit") == 0)
        exit(0);
    return 0; /* "return": out of main */
}

/* ---- arguments and main ------------------------------------------------------------------ */

static void usage(void)
{
    die(EXIT_USAGE,
        "usage: torture_prog --seed N --ack FILE --run N --ops N "
        "--end kill|exit|return|_exit|verify --aware 0|1 --exit-commit 0|1 --flush 0|1");
}

static uint64_t num(const char *s)
{
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 0);
    if (errno || e == s || *e)
        usage();
    return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
    o->end = "exit";
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(k, "--seed"))
            o->seed = num(v);
        else if (!strcmp(k, "--ack"))
            o->ack_path = v;
        else if (!strcmp(k, "--run"))
            o->run = num(v);
        else if (!strcmp(k, "--ops"))
            o->ops = num(v);
        else if (!strcmp(k, "--end"))
            o->end = v;
        else if (!strcmp(k, "--aware"))
            o->aware = (int)num(v);
        else if (!strcmp(k, "--exit-commit"))
            o->exit_commit = (int)num(v);
        else if (!strcmp(k, "--flush"))
            o->flush = (int)num(v);
        else
            usage();
    }
    if (!o->ack_path || !o->seed)
        usage();
}

int main(int argc, char **argv)
{
    V = mmap(NULL, sizeof(*V), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (V == MAP_FAILED) {
        dprintf(2, "torture: mmap: %s\n", strerror(errno));
        return EXIT_USAGE;
    }
    parse(argc, argv, &V->o);
    V->model.seed = V->o.seed;
    if (V->o.aware) {
        V->commit_fn = (int (*)(void))dlsym(RTLD_DEFAULT, "rvm_commit");
        if (!V->commit_fn)
            die(EXIT_USAGE, "--aware 1 needs rvm_commit: run under liblrvm-preload.so");
    }
    ack_open();
    if (G.magic != MAGIC)
        init_fresh();
    else
        check_found();
    uint64_t start = G.done_op;
    dprintf(1,
            "torture: run %llu found operation %llu (current %llu), acknowledged %llu, "
            "started %llu, %llu bytes live\n",
            (unsigned long long)V->o.run, (unsigned long long)start, (unsigned long long)G.cur_op,
            (unsigned long long)V->ack.lo, (unsigned long long)V->ack.hi,
            (unsigned long long)V->model.live);
    V->ack.ready_run = V->o.run;
    ack_write(0);
    if (!strcmp(V->o.end, "verify"))
        _exit(0);
    group_spawn(RESIDENT, 0); /* a writer busy at every commit instant of the run */
    for (uint64_t n = start + 1; n <= start + V->o.ops; n++)
        run_op(n);
    return finish();
}
