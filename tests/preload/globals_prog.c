/* SPDX-License-Identifier: MIT */
/*
 * globals_prog.c -- an unmodified C program (no lrvm call, no lrvm header) whose state lives in
 * its global variables and in heap blocks they point to; run under the shim by
 * test_preload_globals.c.
 *
 *   globals_prog count [-x]   one step of a counter in .data, a list rooted in a .bss pointer and
 *                             a static local; prints them, optind (must always read 1 before
 *                             getopt: it is libc's, copy-relocated, never restored), HOME (environ
 *                             is libc's too) and the address of a global (the load base)
 *   GLOBALS_PROG_CTOR_EXIT=1  exits from a constructor (before main) after changing counter
 *   globals_prog torture N    the kill-torture child: checks the structure it finds, prints
 *                             "start G", then makes N steps (N = 0: forever), printing each
 *                             generation it publishes; exits 0 after N steps
 *
 * The torture structure is valid at EVERY instruction boundary, because an interval commit
 * captures the program at an arbitrary instant: a step builds a new node completely, publishes
 * it with one store to the root `head`, then unlinks the oldest node beyond RING with one store,
 * then frees it. At any instant the list from head is: node gens g, g-1, ... descending by one,
 * at most RING + 1 of them, each with val = mix(gen) and chain = the running hash of gens 1..gen,
 * and a blob of blob_len(gen) bytes all equal to (char)gen. `published` (in .data) is written
 * after the publication: it equals head's gen or head's gen - 1.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct node {
    uint64_t gen;
    uint64_t val;
    uint64_t chain;
    struct node *next;
    unsigned char *blob;
    size_t blob_len;
};

#define RING 64

int counter = 1000;       /* .data */
static struct node *list; /* .bss: the count mode's list */
static struct node *head; /* .bss: the torture's root */
uint64_t published = 7;   /* .data: generation published last (see the comment) */

/* mix -- splitmix64 */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t blob_len(uint64_t g)
{
    return 1 + mix(g ^ 0x55) % 300;
}

/* bump -- a static local */
static int bump(void)
{
    static int calls = 10;
    return ++calls;
}

/* early -- with GLOBALS_PROG_CTOR_EXIT set, change a global and exit from a constructor,
 * before main: nothing of this run may be committed */
__attribute__((constructor)) static void early(void)
{
    if (getenv("GLOBALS_PROG_CTOR_EXIT")) {
        counter += 500;
        exit(0);
    }
}

static int count_mode(int argc, char **argv)
{
    int opt_before = optind;
    while (getopt(argc, argv, "x") != -1)
        ;
    counter++;
    struct node *n = malloc(sizeof(*n));
    n->gen = (uint64_t)counter;
    n->next = list;
    list = n;
    int len = 0;
    long sum = 0;
    for (struct node *p = list; p; p = p->next, len++)
        sum += (long)p->gen;
    int nenv = 0;
    for (char **e = environ; *e; e++) /* environ: libc's, copy-relocated into our .bss */
        nenv++;
    const char *home = getenv("GLOBALS_PROG_MARK");
    printf("counter %d len %d sum %ld static %d optind %d mark %s env %d addr %p\n", counter, len,
           sum, bump(), opt_before, home ? home : "(unset)", nenv, (void *)&counter);
    fprintf(stderr, "stderr works\n");
    return 0;
}

/* check -- the torture invariant; returns the generation at head (0 = empty), or exits 3 */
static uint64_t check(void)
{
    if (!head)
        return 0;
    uint64_t g = head->gen, k = 0;
    uint64_t chain = 0;
    for (uint64_t i = 1; i <= g; i++)
        chain = chain * 31 + mix(i);
    for (struct node *p = head; p; p = p->next, k++) {
        int bad =
            p->gen != g - k || p->val != mix(p->gen) || p->blob_len != blob_len(p->gen) || k > RING;
        if (!bad && k == 0 && p->chain != chain)
            bad = 1;
        for (size_t b = 0; !bad && b < p->blob_len; b++)
            bad = p->blob[b] != (unsigned char)p->gen;
        if (bad) {
            printf("CORRUPT at gen %llu (node %llu from head)\n", (unsigned long long)g,
                   (unsigned long long)k);
            fflush(stdout);
            _exit(3);
        }
    }
    if (published != g && published + 1 != g && !(g <= 1 && published == 7)) {
        printf("CORRUPT published %llu head %llu\n", (unsigned long long)published,
               (unsigned long long)g);
        fflush(stdout);
        _exit(3);
    }
    return g;
}

/* say -- one write(2) per line: nothing is buffered when the parent kills us */
static void say(const char *what, uint64_t g)
{
    char b[64];
    int n = snprintf(b, sizeof(b), "%s %llu\n", what, (unsigned long long)g);
    if (write(1, b, (size_t)n) != n)
        _exit(4);
}

static int torture_mode(long steps)
{
    uint64_t g = check();
    say("start", g);
    for (long s = 0; steps == 0 || s < steps; s++) {
        uint64_t ng = g + 1;
        struct node *n = malloc(sizeof(*n));
        n->gen = ng;
        n->val = mix(ng);
        n->chain = (head ? head->chain : 0) * 31 + mix(ng);
        n->blob_len = blob_len(ng);
        n->blob = malloc(n->blob_len);
        memset(n->blob, (unsigned char)ng, n->blob_len);
        n->next = head;
        __atomic_store_n(&head, n, __ATOMIC_RELEASE); /* publish */
        __atomic_store_n(&published, ng, __ATOMIC_RELEASE);
        struct node *p = head;
        for (int k = 0; p && k < RING - 1; k++)
            p = p->next;
        if (p && p->next) {
            struct node *old = p->next;
            __atomic_store_n(&p->next, NULL, __ATOMIC_RELEASE); /* unlink */
            free(old->blob);
            free(old);
        }
        g = ng;
        say("at", g);
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    check();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "count") == 0)
        return count_mode(argc - 1, argv + 1);
    if (argc >= 3 && strcmp(argv[1], "torture") == 0)
        return torture_mode(atol(argv[2]));
    fprintf(stderr, "usage: globals_prog count [-x] | torture STEPS\n");
    return 2;
}
