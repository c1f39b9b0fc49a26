/* SPDX-License-Identifier: MIT */
/*
 * biglog_probe.c -- an ordinary program whose commits are larger than the shim's log, for
 * test_preload_biglog.c. A global block pointer and run number persist with the heap.
 *
 *   biglog_probe fill MB    checks the block of the last commit (if any: every byte must hold
 *                           the pattern of the run that wrote it), then (allocating MB MiB
 *                           when the block has another size) writes the next run's pattern,
 *                           prints "wrote run R"
 *                           and returns from main: the exit commit saves it
 *   biglog_probe commit MB  the same, but commits with rvm_commit (the shim's, found with
 *                           dlsym), prints "committed run R" and leaves with _exit(0)
 *   biglog_probe sparse MB  over a block of MB MiB written whole by the last run: writes the
 *                           next run's pattern into 8 bytes of every 48 only (a commit of
 *                           ~870 000 separate ranges for 40 MiB), prints "wrote run R", returns
 *   biglog_probe check      only the check; prints "run R ok" (R = 0: nothing committed yet)
 * A failed check prints what it found and exits 1.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *blk;
static size_t blk_len;
static unsigned run;
static unsigned
    sparse_base; /* nonzero: only SPARSE bytes hold run's pattern, the rest this run's */

/* a sparse run writes 8 bytes of every 48: separate ranges in its commit (the tracker merges
 * gaps below 32 bytes), ~870 000 of them for 40 MiB, a record well over 16 MiB */
#define SPARSE_STRIDE 48
#define SPARSE_BYTES 8
static int sparse_byte(size_t i)
{
    return i % SPARSE_STRIDE < SPARSE_BYTES;
}

/* pattern -- byte i of run r */
static unsigned char pattern(size_t i, unsigned r)
{
    return (unsigned char)(i * 7 + r * 13 + 1);
}

/* expected -- byte i of the committed block */
static unsigned char expected(size_t i)
{
    return pattern(i, sparse_base != 0 && !sparse_byte(i) ? sparse_base : run);
}

/* check -- does the block hold run's pattern? */
static int check(void)
{
    for (size_t i = 0; i < blk_len; i++)
        if (blk[i] != expected(i)) {
            printf("run %u: byte %zu of %zu is %u, expected %u\n", run, i, blk_len, blk[i],
                   expected(i));
            return 1;
        }
    printf("run %u ok\n", run);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || check() != 0)
        return 1;
    if (strcmp(argv[1], "check") == 0)
        return 0;
    if (argc != 3)
        return 2;
    size_t n = (size_t)atol(argv[2]) << 20;
    if (blk_len != n) { /* another size than the last run's: a new block */
        free(blk);
        if ((blk = malloc(n)) == NULL)
            return 3;
        blk_len = n;
    }
    if (strcmp(argv[1], "sparse") == 0) {
        /* over a block of the same size, whole from one run: 8 bytes of every 48 change */
        if (blk_len != n || sparse_base != 0 || run == 0)
            return 5;
        sparse_base = run++;
        for (size_t i = 0; i < blk_len; i++)
            if (sparse_byte(i))
                blk[i] = pattern(i, run);
        printf("wrote run %u\n", run);
        return 0;
    }
    run++;
    sparse_base = 0;
    for (size_t i = 0; i < blk_len; i++)
        blk[i] = pattern(i, run);
    if (strcmp(argv[1], "commit") == 0) {
        int (*commit)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "rvm_commit");
        int rc = commit != NULL ? commit() : -1;
        printf("committed run %u: %d\n", run, rc);
        _exit(rc == 0 ? 0 : 4);
    }
    printf("wrote run %u\n", run);
    return 0;
}
