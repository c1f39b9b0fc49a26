/* SPDX-License-Identifier: MIT */
/*
 * release_probe.c -- an unmodified program that frees memory the heap gives back to the
 * kernel (MADV_DONTNEED) and reuses it, for test_preload_release.c. Its data is found again
 * through two globals (the shim keeps them in the segment).
 *
 *   release_probe fill MIB SHAPE BYTE     allocate MIB MiB as SHAPE ("huge": one block;
 *                                         "small": 100 KiB blocks), fill every byte with BYTE
 *   release_probe reuse MIB SHAPE BYTE [commit-kill]
 *                                         free all of it (the heap releases the memory), then
 *                                         allocate as much again and fill it with BYTE; with
 *                                         commit-kill: rvm_commit(), then SIGKILL itself
 *   release_probe calloc MIB SHAPE        free all, then calloc as much again (zeros)
 *   release_probe poke MIB SHAPE BYTE     free all, then malloc as much again and write BYTE
 *                                         only at the first byte of every page (the rest of
 *                                         each page is never written)
 *   release_probe check BYTE [poke]       every byte (poke: every page's first byte) is BYTE;
 *                                         prints "ok N" or the number of wrong pages
 * Exit status: 0, 1 on a failed check, 2 on usage errors.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rvm_commit(void) __attribute__((weak)); /* the shim's, when it is preloaded */

#define MAXB 4096
#define SMALL (100u << 10)

static unsigned char *blk[MAXB]; /* globals: persistent under the shim */
static size_t blen[MAXB], nblk;

/* alloc_all -- MIB MiB as one block or as 100 KiB blocks, zeroed if zero */
static int alloc_all(size_t mib, int huge, int zero)
{
    size_t total = mib << 20, step = huge ? total : SMALL;
    for (nblk = 0; total > 0 && nblk < MAXB; nblk++) {
        size_t n = step < total ? step : total;
        blk[nblk] = zero ? calloc(1, n) : malloc(n);
        if (blk[nblk] == NULL) {
            printf("allocation of %zu bytes failed\n", n);
            return -1;
        }
        blen[nblk] = n;
        total -= n;
    }
    return 0;
}

/* free_all -- free every block (the heap releases their memory) */
static void free_all(void)
{
    for (size_t i = 0; i < nblk; i++)
        free(blk[i]);
    nblk = 0;
}

/* check -- count the pages holding a byte other than want (poke: only first bytes) */
static int check(unsigned char want, int poke)
{
    size_t bad = 0, pages = 0;
    for (size_t i = 0; i < nblk; i++)
        for (size_t off = 0; off < blen[i]; off += 4096, pages++) {
            size_t n = poke ? 1 : (blen[i] - off < 4096 ? blen[i] - off : 4096);
            for (size_t k = 0; k < n; k++)
                if (blk[i][off + k] != want) {
                    if (bad == 0)
                        printf("block %zu page at +%zu: byte %zu is 0x%02x, not 0x%02x\n", i, off,
                               k, blk[i][off + k], want);
                    bad++;
                    break;
                }
        }
    if (nblk == 0 || bad) {
        printf("%zu of %zu pages wrong (%zu blocks)\n", bad, pages, nblk);
        return 1;
    }
    printf("ok %zu\n", pages);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "check") == 0)
        return check((unsigned char)strtoul(argv[2], NULL, 0), argc > 3);
    if (argc < 4)
        goto usage;
    size_t mib = strtoull(argv[2], NULL, 10);
    int huge = strcmp(argv[3], "huge") == 0;
    const char *mode = argv[1];
    unsigned char byte = argc > 4 ? (unsigned char)strtoul(argv[4], NULL, 0) : 0;
    if (strcmp(mode, "fill") == 0 || strcmp(mode, "reuse") == 0) {
        if (mode[0] == 'r')
            free_all();
        if (alloc_all(mib, huge, 0) != 0)
            return 1;
        for (size_t i = 0; i < nblk; i++)
            memset(blk[i], byte, blen[i]);
        if (argc > 5 && strcmp(argv[5], "commit-kill") == 0) {
            if (rvm_commit == NULL || rvm_commit() != 0) {
                printf("rvm_commit failed\n");
                return 1;
            }
            raise(SIGKILL);
        }
        return 0;
    }
    if (strcmp(mode, "calloc") == 0) {
        free_all();
        return alloc_all(mib, huge, 1) != 0;
    }
    if (strcmp(mode, "poke") == 0) {
        free_all();
        if (alloc_all(mib, huge, 0) != 0)
            return 1;
        for (size_t i = 0; i < nblk; i++)
            for (size_t off = 0; off < blen[i]; off += 4096)
                blk[i][off] = byte;
        return 0;
    }
usage:
    fprintf(stderr, "usage: release_probe fill|reuse|calloc|poke MIB huge|small [BYTE] "
                    "[commit-kill] | check BYTE [poke]\n");
    return 2;
}
