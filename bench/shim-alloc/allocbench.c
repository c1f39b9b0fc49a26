/* SPDX-License-Identifier: MIT */
/*
 * allocbench.c -- classic allocator benchmarks as ONE ordinary program: it calls malloc/free and
 * nothing of lrvm, so under LD_PRELOAD it is an "unmodified program" for the shim.
 * scripts/bench-shim-alloc.sh runs it under glibc, jemalloc and the shim.
 *
 * Usage: allocbench WORKLOAD [SCALE]   (SCALE: a positive number, default 1; work grows with it)
 *
 * Workloads (shapes after the allocator literature; sizes and lifetimes chosen here):
 *   larson   server churn (Larson & Krishnan '98): 2 threads each replace random blocks of a
 *            slot array; after every epoch the arrays rotate between threads, so most frees
 *            release blocks another thread allocated
 *   scratch  cache-scratch (Hoard, Berger '00): each thread frees one object the main thread
 *            allocated, then repeatedly allocates a small object, writes it many times, frees it;
 *            an allocator that hands two threads the same cache line shows false sharing
 *   xmalloc  xmalloc-test (Lever & Boreham '00): a producer thread allocates, a consumer thread
 *            frees (batches through a queue): every free is remote
 *   mix      one thread, realistic sizes (most 16-128 B, a tail up to 64 KiB, rare 256 KiB),
 *            random lifetimes, and strings grown with realloc
 *   tree     build a binary search tree of nodes with malloc'd string keys, walk it, free it
 *
 * Output (stdout, one line): "workload=W ops=N checksum=C". The checksum depends only on the
 * workload and scale (fixed seeds, no addresses), so every allocator must print the same line:
 * the script compares them. Timing and RSS are measured from outside (wait4 of the child).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rng -- xorshift64*, one per thread (fixed seeds: the same work under every allocator) */
struct rng {
    uint64_t s;
};

/* rng_next -- next 64-bit value */
static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

/* xmalloc -- malloc or exit with a message (a benchmark that silently skips work is wrong) */
static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "allocbench: malloc(%zu) failed: %s\n", n, strerror(errno));
        exit(1);
    }
    return p;
}

/* touch -- write the first and last byte and one per 4 KiB (a real program uses its blocks) */
static void touch(unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += 4096)
        p[i] = v;
    p[n - 1] = v;
}

/* run_threads -- run fn(arg_i) on n threads and join them */
static void run_threads(int n, void *(*fn)(void *), void *args, size_t argsz)
{
    pthread_t t[16];
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsz) != 0) {
            fprintf(stderr, "allocbench: pthread_create failed\n");
            exit(1);
        }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* ---- larson ------------------------------------------------------------------------------ */

#define LARSON_THREADS 2
#define LARSON_SLOTS 20000

struct larson_arg {
    int id;
    long rounds_per_epoch;
    int epochs;
    uint64_t sum;
};

static unsigned char **larson_arrays[LARSON_THREADS];
static pthread_barrier_t larson_bar;

/* larson_size -- 16..1024 B, skewed small (servers allocate mostly small records) */
static size_t larson_size(struct rng *r)
{
    uint64_t x = rng_next(r);
    return 16 + ((x & 1023) * (x >> 10 & 1023) >> 10);
}

/* larson_thread -- per epoch: churn the array this thread holds now, then rotate */
static void *larson_thread(void *p)
{
    struct larson_arg *a = p;
    struct rng r = {0x9e3779b97f4a7c15ull + (uint64_t)a->id};
    for (int e = 0; e < a->epochs; e++) {
        unsigned char **arr = larson_arrays[(a->id + e) % LARSON_THREADS];
        for (long k = 0; k < a->rounds_per_epoch; k++) {
            size_t i = rng_next(&r) % LARSON_SLOTS;
            if (arr[i] != NULL)
                a->sum += arr[i][0];
            free(arr[i]);
            size_t n = larson_size(&r);
            arr[i] = xmalloc(n);
            touch(arr[i], n, (unsigned char)k);
        }
        pthread_barrier_wait(&larson_bar);
    }
    return NULL;
}

/* wl_larson -- see the file comment */
static uint64_t wl_larson(double scale, uint64_t *ops)
{
    struct larson_arg a[LARSON_THREADS];
    struct rng r = {42};
    for (int t = 0; t < LARSON_THREADS; t++) {
        larson_arrays[t] = xmalloc(LARSON_SLOTS * sizeof(unsigned char *));
        for (int i = 0; i < LARSON_SLOTS; i++) {
            size_t n = larson_size(&r);
            larson_arrays[t][i] = xmalloc(n);
            touch(larson_arrays[t][i], n, 1);
        }
    }
    pthread_barrier_init(&larson_bar, NULL, LARSON_THREADS);
    for (int t = 0; t < LARSON_THREADS; t++)
        a[t] =
            (struct larson_arg){.id = t, .rounds_per_epoch = 100000, .epochs = (int)(40 * scale)};
    if (a[0].epochs < 1)
        a[0].epochs = a[1].epochs = 1;
    run_threads(LARSON_THREADS, larson_thread, a, sizeof(a[0]));
    uint64_t sum = 0;
    for (int t = 0; t < LARSON_THREADS; t++) {
        sum += a[t].sum;
        *ops += (uint64_t)a[t].rounds_per_epoch * (uint64_t)a[t].epochs;
        for (int i = 0; i < LARSON_SLOTS; i++)
            free(larson_arrays[t][i]);
        free(larson_arrays[t]);
    }
    pthread_barrier_destroy(&larson_bar);
    return sum;
}

/* ---- cache-scratch ----------------------------------------------------------------------- */

struct scratch_arg {
    void *first; /* allocated by main, freed by this thread (passive false sharing) */
    long iters;
    int writes;
    uint64_t sum;
};

/* scratch_thread -- malloc(8), write it `writes` times, free; `iters` times */
static void *scratch_thread(void *p)
{
    struct scratch_arg *a = p;
    free(a->first);
    for (long i = 0; i < a->iters; i++) {
        volatile unsigned char *o = xmalloc(8);
        memset((void *)o, 0, 8);
        for (int w = 0; w < a->writes; w++)
            o[w & 7] = (unsigned char)(o[w & 7] + 1);
        a->sum += o[0];
        free((void *)o);
    }
    return NULL;
}

/* wl_scratch -- see the file comment */
static uint64_t wl_scratch(double scale, uint64_t *ops)
{
    enum { T = 2 };
    struct scratch_arg a[T];
    for (int t = 0; t < T; t++) {
        a[t] = (struct scratch_arg){
            .first = xmalloc(8), .iters = (long)(1500000 * scale), .writes = 100};
        memset(a[t].first, 0, 8);
    }
    run_threads(T, scratch_thread, a, sizeof(a[0]));
    *ops = (uint64_t)a[0].iters * T;
    return a[0].sum + a[1].sum;
}

/* ---- xmalloc-test ------------------------------------------------------------------------ */

#define XM_BATCH 256
#define XM_QUEUE 64

/* The queue: batches of pointers from the producer to the consumer. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **q[XM_QUEUE];
    int head, tail, done;
} xm = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct xm_arg {
    long batches;
    uint64_t sum;
};

/* xm_producer -- allocate batches of 16-256 B blocks, hand them over */
static void *xm_producer(void *p)
{
    struct xm_arg *a = p;
    struct rng r = {7};
    for (long b = 0; b < a->batches; b++) {
        void **batch = xmalloc(XM_BATCH * sizeof(void *));
        for (int i = 0; i < XM_BATCH; i++) {
            size_t n = 16 + rng_next(&r) % 241;
            batch[i] = xmalloc(n);
            touch(batch[i], n, (unsigned char)i);
        }
        pthread_mutex_lock(&xm.mu);
        while ((xm.tail + 1) % XM_QUEUE == xm.head)
            pthread_cond_wait(&xm.cv, &xm.mu);
        xm.q[xm.tail] = batch;
        xm.tail = (xm.tail + 1) % XM_QUEUE;
        pthread_cond_broadcast(&xm.cv);
        pthread_mutex_unlock(&xm.mu);
    }
    pthread_mutex_lock(&xm.mu);
    xm.done = 1;
    pthread_cond_broadcast(&xm.cv);
    pthread_mutex_unlock(&xm.mu);
    return NULL;
}

/* xm_consumer -- free every block of every batch (all frees are remote) */
static void *xm_consumer(void *p)
{
    struct xm_arg *a = p;
    for (;;) {
        pthread_mutex_lock(&xm.mu);
        while (xm.head == xm.tail && !xm.done)
            pthread_cond_wait(&xm.cv, &xm.mu);
        if (xm.head == xm.tail) {
            pthread_mutex_unlock(&xm.mu);
            return NULL;
        }
        void **batch = xm.q[xm.head];
        xm.head = (xm.head + 1) % XM_QUEUE;
        pthread_cond_broadcast(&xm.cv);
        pthread_mutex_unlock(&xm.mu);
        for (int i = 0; i < XM_BATCH; i++) {
            a->sum += *(unsigned char *)batch[i];
            free(batch[i]);
        }
        free(batch);
    }
}

/* wl_xmalloc -- see the file comment */
static uint64_t wl_xmalloc(double scale, uint64_t *ops)
{
    struct xm_arg prod = {.batches = (long)(12000 * scale)}, cons = {0};
    pthread_t tp, tc;
    if (pthread_create(&tp, NULL, xm_producer, &prod) ||
        pthread_create(&tc, NULL, xm_consumer, &cons)) {
        fprintf(stderr, "allocbench: pthread_create failed\n");
        exit(1);
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    *ops = (uint64_t)prod.batches * XM_BATCH;
    return cons.sum;
}

/* ---- mix --------------------------------------------------------------------------------- */

/* mix_size -- a size distribution like measured C/C++ programs': 80% 16-128 B, 18% up to 4 KiB,
 * 2% up to 64 KiB, 1 in 5000 is 256 KiB (beyond the small classes of every allocator here) */
static size_t mix_size(struct rng *r)
{
    uint64_t x = rng_next(r);
    unsigned pick = (unsigned)(x % 5000);
    x >>= 16;
    if (pick == 0)
        return 256 * 1024;
    if (pick < 4000)
        return 16 + x % 113;
    if (pick < 4900)
        return 128 + x % 3969;
    return 4096 + x % 61441;
}

/* wl_mix -- a live set of 50 000 slots; each op frees a random slot and allocates a new block;
 * every 16th op instead grows a string slot by realloc (doubling, reset at 16 KiB) */
static uint64_t wl_mix(double scale, uint64_t *ops)
{
    enum { SLOTS = 50000, STRS = 1000 };
    struct rng r = {1234};
    unsigned char **slot = xmalloc(SLOTS * sizeof(*slot));
    size_t *len = xmalloc(SLOTS * sizeof(*len));
    char **str = xmalloc(STRS * sizeof(*str));
    size_t *slen = xmalloc(STRS * sizeof(*slen));
    uint64_t sum = 0;
    for (int i = 0; i < SLOTS; i++) {
        len[i] = mix_size(&r);
        slot[i] = xmalloc(len[i]);
        touch(slot[i], len[i], 3);
    }
    for (int i = 0; i < STRS; i++) {
        slen[i] = 16;
        str[i] = xmalloc(16);
        memset(str[i], 'a', 16);
    }
    long n = (long)(3000000 * scale);
    for (long k = 0; k < n; k++) {
        uint64_t x = rng_next(&r);
        if ((k & 15) == 0) {
            size_t i = x % STRS;
            size_t nl = slen[i] >= 16384 ? 16 : slen[i] * 2;
            char *s = realloc(str[i], nl);
            if (s == NULL) {
                fprintf(stderr, "allocbench: realloc(%zu) failed\n", nl);
                exit(1);
            }
            if (nl > slen[i])
                memset(s + slen[i], 'b', nl - slen[i]);
            sum += (unsigned char)s[nl / 2];
            str[i] = s;
            slen[i] = nl;
            continue;
        }
        size_t i = x % SLOTS;
        sum += slot[i][len[i] - 1];
        free(slot[i]);
        len[i] = mix_size(&r);
        slot[i] = xmalloc(len[i]);
        touch(slot[i], len[i], (unsigned char)k);
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    for (int i = 0; i < STRS; i++)
        free(str[i]);
    free(slot);
    free(len);
    free(str);
    free(slen);
    *ops = (uint64_t)n;
    return sum;
}

/* ---- tree -------------------------------------------------------------------------------- */

struct node {
    struct node *l, *r;
    uint64_t key;
    char *name; /* a separate small allocation, as real records have */
};

/* tree_insert -- unbalanced BST insert (random keys keep it ~2 ln n deep), iterative */
static void tree_insert(struct node **root, struct node *n)
{
    while (*root != NULL)
        root = n->key < (*root)->key ? &(*root)->l : &(*root)->r;
    *root = n;
}

/* tree_sum_free -- post-order walk: checksum, then free (explicit stack: no deep recursion) */
static uint64_t tree_sum_free(struct node *root, size_t n)
{
    struct node **stack = xmalloc((n + 1) * sizeof(*stack));
    size_t sp = 0;
    uint64_t sum = 0;
    if (root != NULL)
        stack[sp++] = root;
    while (sp > 0) {
        struct node *x = stack[--sp];
        if (x->l != NULL)
            stack[sp++] = x->l;
        if (x->r != NULL)
            stack[sp++] = x->r;
        sum += x->key ^ (uint64_t)strlen(x->name);
        free(x->name);
        free(x);
    }
    free(stack);
    return sum;
}

/* wl_tree -- 3 rounds: build a tree of n nodes, free it */
static uint64_t wl_tree(double scale, uint64_t *ops)
{
    size_t n = (size_t)(400000 * scale);
    struct rng r = {99};
    uint64_t sum = 0;
    for (int round = 0; round < 3; round++) {
        struct node *root = NULL;
        for (size_t i = 0; i < n; i++) {
            struct node *x = xmalloc(sizeof(*x));
            x->l = x->r = NULL;
            x->key = rng_next(&r);
            char buf[64];
            int len = snprintf(buf, sizeof(buf), "node-%llu-%zu",
                               (unsigned long long)(x->key % 100000), i);
            x->name = xmalloc((size_t)len + 1);
            memcpy(x->name, buf, (size_t)len + 1);
            tree_insert(&root, x);
        }
        sum += tree_sum_free(root, n);
    }
    *ops = 3 * n;
    return sum;
}

/* ---- main -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    uint64_t (*fn)(double, uint64_t *);
} wls[] = {
    {"larson", wl_larson}, {"scratch", wl_scratch}, {"xmalloc", wl_xmalloc},
    {"mix", wl_mix},       {"tree", wl_tree},
};

int main(int argc, char **argv)
{
    double scale = 1;
    if (argc >= 3) {
        char *end;
        scale = strtod(argv[2], &end);
        if (*end != '\0' || !(scale > 0)) {
            fprintf(stderr, "allocbench: SCALE must be a positive number, got '%s'\n", argv[2]);
            return 2;
        }
    }
    for (size_t i = 0; argc >= 2 && i < sizeof(wls) / sizeof(wls[0]); i++)
        if (strcmp(argv[1], wls[i].name) == 0) {
            uint64_t ops = 0;
            uint64_t sum = wls[i].fn(scale, &ops);
            printf("workload=%s ops=%llu checksum=%llu\n", wls[i].name, (unsigned long long)ops,
                   (unsigned long long)sum);
            return 0;
        }
    fprintf(stderr, "usage: allocbench larson|scratch|xmalloc|mix|tree [SCALE]\n");
    return 2;
}
