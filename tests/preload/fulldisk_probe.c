/* SPDX-License-Identifier: MIT */
/*
 * fulldisk_probe.c -- an unmodified program that allocates until malloc fails (a sparse segment on a full disk must not end in SIGBUS). Its blocks are rooted in globals.
 *   fulldisk_probe fill    check what an earlier run committed, then malloc 256 KiB blocks
 *                          until malloc returns NULL, mark each, print "filled N errno E"
 *   fulldisk_probe check   check what an earlier run committed, print "verified N"
 * A block k holds k in its first and last bytes; a damaged or missing block prints "BAD".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (256u * 1024u)
#define MAXBLOCKS 4096

static unsigned char *blocks[MAXBLOCKS];
static unsigned long nblocks;

static int check(void)
{
    for (unsigned long k = 0; k < nblocks; k++)
        if (!blocks[k] || blocks[k][0] != (unsigned char)k ||
            blocks[k][BLOCK - 1] != (unsigned char)k) {
            printf("BAD block %lu of %lu\n", k, nblocks);
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    if (check())
        return 1;
    if (strcmp(argv[1], "check") == 0) {
        printf("verified %lu\n", nblocks);
        return 0;
    }
    errno = 0;
    unsigned char *p = NULL;
    while (nblocks < MAXBLOCKS && (p = malloc(BLOCK)) != NULL) {
        p[0] = p[BLOCK - 1] = (unsigned char)nblocks;
        blocks[nblocks++] = p;
    }
    printf("filled %lu errno %d\n", nblocks, p ? 0 : errno);
    return 0;
}
