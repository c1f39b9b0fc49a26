/* SPDX-License-Identifier: MIT */
/*
 * journal.c -- the demo's program (scripts/demo.sh): an ORDINARY C program. It makes no lrvm
 * call, opens no file and knows nothing of persistence. Its data is a linked list of entries
 * in the heap (malloc), reachable only from global variables.
 *
 * Run on its own, it starts from nothing every time. Run under lrvm-run, the shim keeps its heap
 * and its globals in a data segment: each run continues from the state of the last commit
 * (by default the one made at exit; `lrvm-run --commit exit,interval:100ms` adds one every
 * 100 ms), and a run killed with SIGKILL leaves exactly that state behind.
 *
 *   journal add N     append N entries, then print a summary
 *   journal grow      append entries until killed, printing progress every 100 ms
 *   journal show      print the summary only
 *
 * Every run first verifies the whole structure: entry k (counting from 1) carries k, the run
 * that wrote it, a text made from both and a checksum over them, and the list runs k = n .. 1
 * without a gap. A torn state -- half an entry, a pointer to a block that was never committed,
 * a list that lost its tail -- fails that check with exit status 3.
 *
 * A timer commit stops the program at an arbitrary instruction, as a signal handler would.
 * So append() publishes an entry only after filling it (the signal fence keeps the compiler
 * from reordering those stores), and the counters `count` and `digest` may lag the list by
 * the one entry being appended: verify() accepts exactly that and repairs them. Nothing else
 * in the program knows about lrvm.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct entry {
    struct entry *prev; /* the entry before (k - 1), NULL for the first */
    uint64_t k;         /* 1, 2, 3, ... */
    uint64_t run;       /* the run that appended it */
    uint64_t check;     /* entry_check(k, run, text) */
    char text[48];
};

/* The program's state: globals (.bss) and the heap they point to. Nothing else. */
static struct entry *last; /* the newest entry */
static uint64_t count;     /* entries in the list */
static uint64_t digest;    /* sum of every entry's check */
static uint64_t runs;      /* how many times this program has started */

/* entry_check -- a checksum over an entry's content (FNV-1a) */
static uint64_t entry_check(const struct entry *e)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)e->text;
    for (size_t i = 0; i < sizeof(e->text); i++)
        h = (h ^ p[i]) * 1099511628211ull;
    h = (h ^ e->k) * 1099511628211ull;
    return (h ^ e->run) * 1099511628211ull;
}

/* append -- one new entry at the end of the journal */
static void append(void)
{
    struct entry *e = malloc(sizeof(*e));
    if (!e) {
        perror("journal: malloc");
        exit(1);
    }
    memset(e, 0, sizeof(*e));
    e->prev = last;
    e->k = count + 1;
    e->run = runs;
    snprintf(e->text, sizeof(e->text), "entry %" PRIu64 ", written by run %" PRIu64, e->k, e->run);
    e->check = entry_check(e);
    atomic_signal_fence(memory_order_seq_cst); /* the entry is whole before it is reachable */
    last = e;
    atomic_signal_fence(memory_order_seq_cst);
    digest += e->check;
    count = e->k;
}

/* verify -- walk the whole journal; 0 if it is intact (repairing counters that lag the list
 * by the entry a commit interrupted), 3 after printing what is wrong */
static int verify(void)
{
    uint64_t n = 0, sum = 0, want = last ? last->k : 0;
    for (const struct entry *e = last; e; e = e->prev, n++) {
        char text[48] = {0};
        snprintf(text, sizeof(text), "entry %" PRIu64 ", written by run %" PRIu64, e->k, e->run);
        if (e->k != want - n || e->run == 0 || e->run > runs || entry_check(e) != e->check ||
            memcmp(text, e->text, sizeof(text)) != 0) {
            fprintf(stderr, "journal: CORRUPT: entry %" PRIu64 " of %" PRIu64 " is wrong\n",
                    want - n, want);
            return 3;
        }
        sum += e->check;
    }
    int lag = n == count + 1 && (digest == sum || digest + last->check == sum);
    if (!(n == count && digest == sum) && !lag) {
        fprintf(stderr,
                "journal: CORRUPT: %" PRIu64 " entries in the list, the counters say %" PRIu64 "\n",
                n, count);
        return 3;
    }
    if (lag) {
        printf("journal: the last commit fell inside an append: entry %" PRIu64
               " is whole, its counters are repaired\n",
               n);
        count = n;
        digest = sum;
    }
    return 0;
}

static void summary(void)
{
    printf("journal: run #%" PRIu64 ": %" PRIu64 " entries, all verified", runs, count);
    if (last)
        printf("; newest: \"%s\"", last->text);
    printf("\n");
    fflush(stdout);
}

static int usage(void)
{
    fprintf(stderr, "usage: journal add N | grow | show\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    runs++;
    int rc = verify();
    if (rc)
        return rc;
    if (strcmp(argv[1], "show") == 0) {
        summary();
        return 0;
    }
    if (strcmp(argv[1], "add") == 0 && argc == 3) {
        long n = strtol(argv[2], NULL, 10);
        for (long i = 0; i < n; i++)
            append();
        summary();
        return 0;
    }
    if (strcmp(argv[1], "grow") == 0) {
        printf("journal: run #%" PRIu64 ": starting from %" PRIu64
               " entries, appending until killed\n",
               runs, count);
        fflush(stdout);
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            for (int i = 0; i < 200; i++)
                append();
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) >= 100000000L) {
                printf("journal:   ... %" PRIu64 " entries\n", count);
                fflush(stdout);
                t0 = now;
            }
        }
    }
    return usage();
}
