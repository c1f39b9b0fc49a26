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

/* pattern -- byte i of run r */
static unsigned char pattern(size_t i, unsigned r)
{
    return (unsigned char)(i * 7 + r * 13 + 1);
}

/* check -- does the block hold run's pattern? */
static int check(void)
{
    for (size_t i = 0; i < blk_len; i++)
        if (blk[i] != pattern(i, run)) {
            printf("run %u: byte %zu of %zu is %u, expected %u\n", run, i, blk_len, blk[i],
                   pattern(i, run));
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
    run++;
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
