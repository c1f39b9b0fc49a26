/* SPDX-License-Identifier: MIT */
/*
 * preload_grow.c -- an unmodified program (malloc/free only) whose heap grows far past its
 * size at start-up, used by
 * test_preload_grow.c. It finds its data again through an address printed by the first run.
 *
 *   preload_grow build MIB        allocate ~MIB MiB in blocks of 1 KiB..1 MiB (sizes cycle), fill
 *                                 each with a pattern of (index, generation 1), print the table's
 *                                 address; exit (the exit commit persists it)
 *   preload_grow check ADDR GEN   verify every block holds generation GEN (odd blocks) / 1 (even
 *                                 blocks) and is still allocated; print "ok N" or the first error
 *   preload_grow bump ADDR GEN [kill]  rewrite the odd blocks with generation GEN, then exit
 *                                 normally, or SIGKILL itself (no commit) with "kill"
 *   preload_grow thin ADDR        free the even blocks (their table entries become size 0), then
 *                                 allocate and fill as much again in new blocks of other sizes
 *                                 (reusing the freed, released memory), free those too; exit
 * Exit status: 0, 1 on a check failure (message on stdout), 2 on usage errors.
 */
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct table {
    uint64_t magic;
    size_t n;
    size_t size[4096];
    unsigned char *blk[4096];
};

#define MAGIC 0x67726f7774626c31ull

/* fill -- the pattern of block i, generation g */
static void fill(unsigned char *p, size_t n, size_t i, unsigned g)
{
    for (size_t k = 0; k < n; k++)
        p[k] = (unsigned char)(i * 31u + k * 7u + g * 101u + (k >> 12));
}

/* same -- does block i hold generation g? index of the first wrong byte, or n */
static size_t same(const unsigned char *p, size_t n, size_t i, unsigned g)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != (unsigned char)(i * 31u + k * 7u + g * 101u + (k >> 12)))
            return k;
    return n;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "build") == 0) {
        size_t want = strtoull(argv[2], NULL, 10) << 20, total = 0;
        struct table *t = calloc(1, sizeof(*t));
        if (t == NULL)
            return 1;
        static const size_t sizes[] = {1024, 40000, 1 << 20, 3000, 200000, 65536 + 16};
        for (t->n = 0; total < want && t->n < 4096; t->n++) {
            size_t n = sizes[t->n % 6];
            t->blk[t->n] = malloc(n);
            if (t->blk[t->n] == NULL) {
                printf("malloc(%zu) failed at %zu MiB\n", n, total >> 20);
                return 1;
            }
            t->size[t->n] = n;
            fill(t->blk[t->n], n, t->n, 1);
            total += n;
        }
        t->magic = MAGIC;
        printf("%p\n", (void *)t);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "thin") == 0) {
        struct table *t = (struct table *)(uintptr_t)strtoull(argv[2], NULL, 0);
        if (t->magic != MAGIC) {
            printf("table at %p lost\n", (void *)t);
            return 1;
        }
        size_t freed = 0;
        for (size_t i = 0; i < t->n; i += 2) {
            freed += t->size[i];
            free(t->blk[i]);
            t->blk[i] = NULL;
            t->size[i] = 0;
        }
        unsigned char *tmp[4096];
        size_t m = 0;
        for (size_t got = 0; got < freed && m < 4096; m++) {
            size_t n = 5000 + (m % 7) * 77777;
            tmp[m] = malloc(n);
            if (tmp[m] == NULL)
                return 1;
            fill(tmp[m], n, m, 9);
            got += n;
        }
        /* read back what was written: stores into blocks that are freed unread may be removed by
     * the compiler, and this run must really write into the reused memory */
        unsigned sum = 0;
        for (size_t i = 0; i < m; i++) {
            sum += tmp[i][4999];
            free(tmp[i]);
        }
        printf("thin %zu %u\n", m, sum);
        return 0;
    }
    if (argc >= 4 && (strcmp(argv[1], "check") == 0 || strcmp(argv[1], "bump") == 0)) {
        struct table *t = (struct table *)(uintptr_t)strtoull(argv[2], NULL, 0);
        unsigned gen = (unsigned)atoi(argv[3]);
        if (t->magic != MAGIC) {
            printf("table at %p lost (magic %llx)\n", (void *)t, (unsigned long long)t->magic);
            return 1;
        }
        if (strcmp(argv[1], "bump") == 0) {
            for (size_t i = 1; i < t->n; i += 2)
                fill(t->blk[i], t->size[i], i, gen);
            if (argc >= 5 && strcmp(argv[4], "kill") == 0)
                raise(SIGKILL);
            return 0;
        }
        for (size_t i = 0; i < t->n; i++) {
            if (t->size[i] == 0)
                continue; /* freed by "thin" */
            unsigned g = i % 2 ? gen : 1;
            size_t k = same(t->blk[i], t->size[i], i, g);
            if (k != t->size[i]) {
                printf("block %zu (%p, %zu bytes): byte %zu is not generation %u\n", i,
                       (void *)t->blk[i], t->size[i], k, g);
                return 1;
            }
            if (malloc_usable_size(t->blk[i]) < t->size[i]) {
                printf("block %zu (%p) is no longer allocated\n", i, (void *)t->blk[i]);
                return 1;
            }
        }
        printf("ok %zu\n", t->n);
        return 0;
    }
    fprintf(stderr,
            "usage: preload_grow build MIB | check ADDR GEN | bump ADDR GEN [kill] | thin ADDR\n");
    return 2;
}
