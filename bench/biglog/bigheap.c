/* SPDX-License-Identifier: MIT */
/*
 * bigheap.c -- an ordinary program (no lrvm calls) for the "commit of any size" benchmark:
 *
 *   bigheap MIB      first run: malloc MIB MiB in 64 MiB blocks, fill every byte with the
 *                    run number, exit; later runs (under lrvm-run on the same segment): check
 *                    that every byte holds the previous run's number, then refill with the
 *                    next one and exit
 *   bigheap -c MIB   check only (no refill, no change: the exit commit logs nothing)
 *
 * The first line on stderr is "main_at_ns=N" (CLOCK_REALTIME at the start of main), so a
 * script can compute the time from exec to main. The block table and the run number are
 * globals: under lrvm-run they persist with the heap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK ((size_t)64 << 20)
#define MAXBLOCKS 4096

static unsigned char *blocks[MAXBLOCKS];
static size_t nblocks;
static unsigned run;

/* check -- does every byte of every block hold v? prints the first mismatch */
static int check(unsigned char v)
{
    for (size_t b = 0; b < nblocks; b++)
        for (size_t i = 0; i < BLOCK; i++)
            if (blocks[b][i] != v) {
                fprintf(stderr, "bigheap: block %zu byte %zu is %u, expected %u\n", b, i,
                        blocks[b][i], v);
                return 1;
            }
    return 0;
}

int main(int argc, char **argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "main_at_ns=%llu\n",
            (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    int check_only = argc > 1 && strcmp(argv[1], "-c") == 0;
    if (argc != 2 + check_only) {
        fprintf(stderr, "usage: bigheap [-c] MIB\n");
        return 2;
    }
    size_t mib = strtoull(argv[1 + check_only], NULL, 10);
    size_t want = (mib * ((size_t)1 << 20) + BLOCK - 1) / BLOCK;
    if (want == 0 || want > MAXBLOCKS) {
        fprintf(stderr, "bigheap: MIB must be 1..%d\n", MAXBLOCKS * 64);
        return 2;
    }
    if (nblocks > 0) {
        if (check((unsigned char)run) != 0)
            return 1;
        fprintf(stderr, "bigheap: run %u: all %zu MiB hold %u\n", run, nblocks * 64, run);
    } else if (check_only) {
        fprintf(stderr, "bigheap: no heap from an earlier run\n");
        return 1;
    }
    if (check_only)
        return 0;
    for (; nblocks < want; nblocks++)
        if ((blocks[nblocks] = malloc(BLOCK)) == NULL) {
            fprintf(stderr, "bigheap: out of memory at block %zu\n", nblocks);
            return 1;
        }
    run++;
    for (size_t b = 0; b < nblocks; b++)
        memset(blocks[b], (unsigned char)run, BLOCK);
    fprintf(stderr, "bigheap: run %u: wrote %zu MiB\n", run, nblocks * 64);
    return 0;
}
