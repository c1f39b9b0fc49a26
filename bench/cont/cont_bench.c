/* SPDX-License-Identifier: MIT */
/*
 * cont_bench.c -- a plain C program that keeps mutating a heap of many small nodes at a steady
 * rate: the workload of continuous persistence. It makes no lrvm call and knows nothing of the
 * shim; scripts/bench-cont.sh runs it alone and under `lrvm-run --commit exit,interval:T`.
 *
 * The heap: N nodes of 120-240 bytes (a 24-byte header and a random payload size), each in a
 * chained hash table (bucket array, singly linked chains) and in an index array. Both arrays
 * hang off globals, so under the shim a restarted run finds the whole structure through its
 * own global pointers.
 *
 * The mutation: every PERIOD, one batch touches FRACTION of the nodes, chosen at random: 90 % are
 * rewritten in place (new payload), 10 % are replaced by a node of another size (malloc, copy
 * the key, unlink the old one from its chain, link the new one, free the old one).
 *
 * Every payload is a function of (key, version), so the structure can be verified completely:
 * a restarted run (the globals came back) checks it before doing anything else; a commit that
 * is not one instant, or a lost page, shows up as a node whose bytes do not match its version
 * or an index entry missing from its chain. The verification exits 1 on the first mismatch.
 *
 * Output: a human summary on stderr and one CSV line on stdout (`run,...` after a run,
 * `restart,...` after the verification of a restored heap); see usage().
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MIN 96
#define PAYLOAD_SPAN 128 /* payload sizes are PAYLOAD_MIN + [0, PAYLOAD_SPAN) */
#define REPLACE_PERCENT 10

struct node {
    struct node *next; /* hash chain */
    uint64_t key;
    uint32_t version; /* payload = pattern(key, version) */
    uint32_t len;     /* payload bytes */
    unsigned char payload[];
};

/* The roots: globals, so a restored run finds the heap again. */
static struct node **g_buckets;
static struct node **g_index;
static uint64_t g_nodes, g_nbuckets;
static uint64_t g_built; /* 1 once the structure is complete (a crash in the build leaves 0) */

static struct {
    double heap_mib, fraction, period_ms, seconds;
    uint64_t count;   /* nodes per batch; 0: from fraction */
    int end_kill;     /* end with SIGKILL after reporting (no exit commit) */
    double quiet_ms;  /* --end-kill: this long without a write before the kill */
    int restart_only; /* a restored run: verify and exit */
    int verify_end;   /* verify the structure after the run too (not timed) */
} opt = {256, 0.001, 100, 20, 0, 0, 1000, 0, 0};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* rng -- xorshift64*: fast and good enough to spread mutations over the heap */
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t now_ns(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* fill -- the payload of (key, version): 8-byte words of a mix of both, so a stale or torn
 * payload cannot pass for the current one */
static void fill(struct node *n)
{
    uint64_t w = n->key * 0x100000001b3ull ^ ((uint64_t)n->version << 32 | n->version);
    for (uint32_t i = 0; i + 8 <= n->len; i += 8) {
        w = w * 6364136223846793005ull + 1442695040888963407ull;
        memcpy(n->payload + i, &w, 8);
    }
}

/* payload_ok -- does the payload match (key, version)? */
static int payload_ok(const struct node *n)
{
    uint64_t w = n->key * 0x100000001b3ull ^ ((uint64_t)n->version << 32 | n->version);
    for (uint32_t i = 0; i + 8 <= n->len; i += 8) {
        w = w * 6364136223846793005ull + 1442695040888963407ull;
        if (memcmp(n->payload + i, &w, 8) != 0)
            return 0;
    }
    return 1;
}

static uint64_t bucket_of(uint64_t key)
{
    return (key * 0x9e3779b97f4a7c15ull >> 20) % g_nbuckets;
}

static struct node *node_new(uint64_t key, uint32_t version, uint32_t len)
{
    struct node *n = malloc(sizeof(*n) + len);
    if (n == NULL) {
        fprintf(stderr, "cont-bench: out of memory after %llu nodes; use a smaller --heap-mib\n",
                (unsigned long long)g_nodes);
        exit(1);
    }
    n->key = key;
    n->version = version;
    n->len = len;
    fill(n);
    return n;
}

static uint32_t random_len(void)
{
    return PAYLOAD_MIN + (uint32_t)(rng() % PAYLOAD_SPAN / 8 * 8);
}

/* build -- allocate the table and nodes; ~HEAP_MIB of heap in all (node + malloc's header +
 * one index slot + one bucket per node) */
static void build(void)
{
    uint64_t per_node = sizeof(struct node) + PAYLOAD_MIN + PAYLOAD_SPAN / 2 + 16 + 16;
    uint64_t n = (uint64_t)(opt.heap_mib * 1048576.0) / per_node;
    if (n < 16)
        n = 16;
    g_nbuckets = n;
    g_buckets = calloc(n, sizeof(*g_buckets));
    g_index = calloc(n, sizeof(*g_index));
    if (g_buckets == NULL || g_index == NULL) {
        fprintf(stderr,
                "cont-bench: cannot allocate the %llu-node table; use a smaller --heap-mib\n",
                (unsigned long long)n);
        exit(1);
    }
    for (uint64_t i = 0; i < n; i++) {
        struct node *x = node_new(i + 1, 0, random_len());
        uint64_t b = bucket_of(x->key);
        x->next = g_buckets[b];
        g_buckets[b] = x;
        g_index[i] = x;
        g_nodes = i + 1;
    }
    g_built = 1;
}

/* verify -- every index entry is in its chain and its payload matches its version; chains
 * hold exactly the indexed nodes. Returns 0, or 1 after saying what is wrong. */
static int verify(void)
{
    uint64_t in_chains = 0;
    for (uint64_t b = 0; b < g_nbuckets; b++)
        for (struct node *x = g_buckets[b]; x != NULL; x = x->next) {
            if (bucket_of(x->key) != b || x->key == 0 || x->key > g_nodes || !payload_ok(x)) {
                fprintf(stderr,
                        "cont-bench: node of key %llu in bucket %llu is damaged (payload does "
                        "not match version %u, or wrong bucket)\n",
                        (unsigned long long)x->key, (unsigned long long)b, x->version);
                return 1;
            }
            in_chains++;
        }
    for (uint64_t i = 0; i < g_nodes; i++) {
        struct node *x = g_index[i], *y = g_buckets[bucket_of(i + 1)];
        while (y != NULL && y != x)
            y = y->next;
        if (x == NULL || y == NULL || x->key != i + 1) {
            fprintf(stderr, "cont-bench: index entry %llu is not the node its chain holds\n",
                    (unsigned long long)i);
            return 1;
        }
    }
    if (in_chains != g_nodes) {
        fprintf(stderr, "cont-bench: chains hold %llu nodes, index %llu\n",
                (unsigned long long)in_chains, (unsigned long long)g_nodes);
        return 1;
    }
    return 0;
}

/* mutate -- one node: rewrite in place, or replace by a node of another size. Returns the
 * bytes the program stored. */
static uint64_t mutate(void)
{
    uint64_t i = rng() % g_nodes;
    struct node *x = g_index[i];
    if (rng() % 100 >= REPLACE_PERCENT) {
        x->version++;
        fill(x);
        return 4 + x->len;
    }
    uint32_t len = random_len();
    while (len == x->len)
        len = random_len();
    struct node *y = node_new(x->key, x->version + 1, len);
    struct node **p = &g_buckets[bucket_of(x->key)];
    while (*p != x)
        p = &(*p)->next;
    y->next = x->next;
    *p = y;
    g_index[i] = y;
    free(x);
    return sizeof(*y) + len + 8 + 8; /* the new node, the chain link, the index slot */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct run_stats {
    uint64_t batches, asked, mutations, bytes, stall_ns, *work_ns;
    uint64_t cpu_ns; /* process CPU (every thread) during the mutations only */
};

/* note_gap -- progress at t after the previous point prev: the program saw a stall if the gap
 * is longer than nothing happening could explain (the caller passes prev past any sleep) */
static void note_gap(struct run_stats *s, uint64_t prev, uint64_t t)
{
    if (t > prev && t - prev > s->stall_ns)
        s->stall_ns = t - prev;
}

/* run -- batches every period for the given seconds. A batch that starts late (the previous
 * one overran, or the process was stopped) counts its lateness as a stall; a batch never
 * catches up on missed periods (batches done < asked says how far the program fell behind). */
static void run(struct run_stats *s, uint64_t per_batch)
{
    uint64_t period = (uint64_t)(opt.period_ms * 1e6), t0 = now_ns(CLOCK_MONOTONIC);
    uint64_t end = t0 + (uint64_t)(opt.seconds * 1e9), deadline = t0;
    /* the process's CPU before the first batch: what the mutations cost, without the build
     * and without what a tool did before it (under lrvm-run: creating the log) */
    uint64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    s->asked = (end - t0) / period;
    s->work_ns = calloc(s->asked + 1, sizeof(uint64_t));
    if (s->work_ns == NULL) {
        fprintf(stderr, "cont-bench: cannot allocate %llu batch timings\n",
                (unsigned long long)s->asked);
        exit(1);
    }
    for (;;) {
        struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        uint64_t start = now_ns(CLOCK_MONOTONIC), prev = start;
        if (start >= end || s->batches >= s->asked)
            break;
        note_gap(s, deadline, start);
        for (uint64_t k = 0; k < per_batch; k++) {
            s->bytes += mutate();
            uint64_t t = now_ns(CLOCK_MONOTONIC);
            note_gap(s, prev, t);
            prev = t;
        }
        s->mutations += per_batch;
        s->work_ns[s->batches++] = prev - start;
        deadline += period;
        if (deadline < prev)
            deadline = prev; /* behind: the next batch starts now, missed periods are skipped */
    }
    s->cpu_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* rss_now_kb -- the resident set now (VmRSS), -1 if unknown: after the steady mutations, where
 * the peak (ru_maxrss) may come from the build */
static long rss_now_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

/* report -- the human summary (stderr) and the CSV line (stdout) of a run */
static void report(struct run_stats *s, uint64_t build_ns, uint64_t per_batch)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss = rss_now_kb();
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    uint64_t n = s->batches ? s->batches : 1;
    qsort(s->work_ns, s->batches, sizeof(uint64_t), cmp_u64);
    uint64_t p50 = s->work_ns[(n - 1) / 2], p99 = s->work_ns[(n - 1) * 99 / 100];
    uint64_t wmax = s->batches ? s->work_ns[s->batches - 1] : 0;
    fprintf(stderr,
            "cont-bench: %llu nodes (%.0f MiB heap), build %.3f s; %llu of %llu batches "
            "of %llu nodes every %.3g ms; work p50 %.3f ms, p99 %.3f ms, max %.3f ms; longest "
            "stall %.3f ms; CPU %.3f s (%.3f s during the mutations); peak RSS %ld KiB, at the end "
            "%ld KiB; %llu bytes "
            "changed (%.0f KB/s)\n",
            (unsigned long long)g_nodes, opt.heap_mib, (double)build_ns / 1e9,
            (unsigned long long)s->batches, (unsigned long long)s->asked,
            (unsigned long long)per_batch, opt.period_ms, ms(p50), ms(p99), ms(wmax),
            ms(s->stall_ns), cpu, (double)s->cpu_ns / 1e9, ru.ru_maxrss, rss,
            (unsigned long long)s->bytes, (double)s->bytes / opt.seconds / 1e3);
    printf("run,nodes=%llu,build_ms=%.3f,batches=%llu,asked=%llu,per_batch=%llu,work_p50_ms=%.4f,"
           "work_p99_ms=%.4f,work_max_ms=%.4f,stall_ms=%.4f,cpu_s=%.4f,maxrss_kb=%ld,bytes=%llu,"
           "rss_end_kb=%ld,cpu_run_s=%.4f\n",
           (unsigned long long)g_nodes, ms(build_ns), (unsigned long long)s->batches,
           (unsigned long long)s->asked, (unsigned long long)per_batch, ms(p50), ms(p99), ms(wmax),
           ms(s->stall_ns), cpu, ru.ru_maxrss, (unsigned long long)s->bytes, rss,
           (double)s->cpu_ns / 1e9);
    fflush(NULL);
}

/* restarted -- the globals came back: verify the structure, report the time to main (from
 * CONT_T0_NS, the launcher's CLOCK_REALTIME, if set) and the verification time */
static int restarted(uint64_t main_ns)
{
    const char *t0s = getenv("CONT_T0_NS");
    double to_main = t0s ? ms(main_ns - strtoull(t0s, NULL, 10)) : -1;
    if (!g_built) {
        fprintf(stderr, "cont-bench: the restored heap is from an unfinished build (no commit "
                        "after it completed); remove the segment and start again\n");
        return 1;
    }
    uint64_t v0 = now_ns(CLOCK_MONOTONIC);
    if (verify())
        return 1;
    double vms = ms(now_ns(CLOCK_MONOTONIC) - v0);
    fprintf(stderr,
            "cont-bench: restored %llu nodes, all verified in %.1f ms; time to main "
            "%.1f ms\n",
            (unsigned long long)g_nodes, vms, to_main);
    printf("restart,nodes=%llu,to_main_ms=%.3f,verify_ms=%.3f\n", (unsigned long long)g_nodes,
           to_main, vms);
    return 0;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: cont-bench [--heap-mib M] [--fraction F | --count N] [--period-ms P]\n"
        "                  [--seconds S] [--end-kill [--quiet-ms Q]] [--restart-only] [--verify]\n"
        "  builds ~M MiB (default 256) of small nodes in a hash table + index, then every P ms\n"
        "  (default 100) mutates F of them (default 0.001) or N, for S seconds (default 20);\n"
        "  --end-kill: end by SIGKILL after the report and Q ms (default 1000) without a\n"
        "  write, so that the last commit is one of a whole heap (a rewrite is not atomic: a\n"
        "  commit in the middle of one keeps half of it); --restart-only: the heap must come\n"
        "  back (run under lrvm-run with a segment): verify it and exit; --verify: also\n"
        "  verify the structure after the run (not timed).\n"
        "  A restored heap is always verified first (exit 1 if damaged).\n");
    exit(2);
}

static double num_arg(int argc, char **argv, int *i)
{
    char *e;
    if (*i + 1 >= argc)
        usage();
    double v = strtod(argv[++*i], &e);
    if (*e != '\0' || v < 0) {
        fprintf(stderr, "cont-bench: %s: not a non-negative number: %s\n", argv[*i - 1], argv[*i]);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--heap-mib"))
            opt.heap_mib = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--fraction"))
            opt.fraction = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--count"))
            opt.count = (uint64_t)num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--period-ms"))
            opt.period_ms = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--seconds"))
            opt.seconds = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--end-kill"))
            opt.end_kill = 1;
        else if (!strcmp(argv[i], "--quiet-ms"))
            opt.quiet_ms = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--restart-only"))
            opt.restart_only = 1;
        else if (!strcmp(argv[i], "--verify"))
            opt.verify_end = 1;
        else
            usage();
    }
    if (opt.period_ms <= 0 || opt.heap_mib <= 0)
        usage();
}

int main(int argc, char **argv)
{
    uint64_t main_ns = now_ns(CLOCK_REALTIME);
    parse(argc, argv);
    if (g_buckets != NULL || g_built) {
        if (restarted(main_ns))
            return 1;
        if (opt.restart_only)
            return 0;
        fprintf(stderr, "cont-bench: a restored heap is only verified; remove the segment to "
                        "measure a run\n");
        return 2;
    }
    if (opt.restart_only) {
        fprintf(stderr, "cont-bench: --restart-only, but no heap came back (run it under lrvm-run "
                        "with the segment of an earlier run)\n");
        return 1;
    }
    uint64_t b0 = now_ns(CLOCK_MONOTONIC);
    build();
    uint64_t build_ns = now_ns(CLOCK_MONOTONIC) - b0;
    uint64_t per_batch = opt.count ? opt.count : (uint64_t)(opt.fraction * (double)g_nodes + 0.5);
    if (per_batch == 0)
        per_batch = 1;
    struct run_stats s = {0};
    run(&s, per_batch);
    report(&s, build_ns, per_batch);
    free(s.work_ns);
    if (opt.verify_end && verify())
        return 1;
    if (opt.end_kill) {
        /* The program rewrites a node in place with plain stores, as programs do: a commit
         * whose instant falls inside a rewrite keeps the node half rewritten, which is the
         * program's state at that instant (not damage), and a restart from it would fail
         * verification. With the fault backends that instant is likely: a commit that starts
         * while the program is in a first-write fault takes its instant right after the
         * fault, before the store -- in the middle of a node that spans two pages. Staying
         * still for longer than the commit interval leaves the heap whole in the last commits
         * before the kill. */
        struct timespec q = {
            (time_t)(opt.quiet_ms / 1000),
            (long)((opt.quiet_ms - 1000 * (double)(time_t)(opt.quiet_ms / 1000)) * 1e6)};
        while (nanosleep(&q, &q) != 0 && errno == EINTR)
            ;
        raise(SIGKILL);
    }
    return 0;
}
