/* SPDX-License-Identifier: MIT */
/*
 * leak_prog.c -- a program that leaks on purpose, for `rvmutl leaks` (test_preload_leaks.c).
 * Run under the shim with its globals kept. Every run checks the list its earlier runs built
 * (reached from a global: one node per run, each with a payload reached only through a
 * pointer into its middle), prints "ok RUNS", appends a node, and with "leak" allocates
 * LEAK_BLOCKS blocks of sizes 48, 1024 and 131072 bytes (exact size classes, so their
 * allocation sizes are these) and drops every pointer to them. Exit 3 if the list is damaged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    long n;
    char *mid; /* points 256 bytes into a 512-byte payload: an interior pointer */
};

static struct node *head;
static long runs;

/* leak -- allocate and forget; the bytes are written so the blocks are really used */
static void leak(void)
{
    static const size_t sizes[] = {48, 1024, 131072};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *volatile p = malloc(sizes[i]);
        if (p == NULL)
            exit(4);
        memset(p, 0x5a, sizes[i]);
        p = NULL;
    }
}

int main(int argc, char **argv)
{
    long seen = 0;
    for (struct node *x = head; x != NULL; x = x->next, seen++) {
        char want = (char)('a' + x->n % 26);
        if (x->n != runs - 1 - seen || x->mid[-256] != want || x->mid[255] != want) {
            printf("damaged at node %ld\n", seen);
            return 3;
        }
    }
    if (seen != runs) {
        printf("damaged: %ld nodes for %ld runs\n", seen, runs);
        return 3;
    }
    printf("ok %ld\n", runs);
    struct node *x = malloc(sizeof(*x));
    char *payload = malloc(512);
    if (x == NULL || payload == NULL)
        return 4;
    memset(payload, 'a' + runs % 26, 512);
    x->n = runs;
    x->mid = payload + 256;
    x->next = head;
    head = x;
    runs++;
    if (argc > 1 && strcmp(argv[1], "leak") == 0)
        leak();
    return 0;
}
