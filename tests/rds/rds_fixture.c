/* SPDX-License-Identifier: MIT */
/*
 * rds_fixture.c -- writes and reads RDS segments from the documented on-disk layout alone,
 * without lrvm's code or headers: a second, independent implementation of the format, so
 * the compatibility test does not compare lrvm with itself.
 *
 *   rds_fixture fresh FILE     the segment the original rdsinit makes for the parameters
 *                              below (loader header page, empty heap, zero statics)
 *   rds_fixture make FILE      the same heap after the original's RDS served malloc(100),
 *                              malloc(300), malloc(40) and free of the second (each in its
 *                              own transaction); statics[0], statics[1] point to the first
 *                              and third blocks, which hold known strings
 *   rds_fixture verify FILE [lrvm]  walk blocks and free lists as the format says; with
 *                              "lrvm", also expect statics[2] -> "written by lrvm" and the
 *                              third block freed (what test_rds_fixture does under lrvm)
 *
 * Layout (LP64): segment header page: int struct_id = 1 @0, char version[128] @4,
 * unsigned long nregions @136, regions @144 of {offset.high, offset.low, length, vmaddr}.
 * Heap: version[80] @0, heaplength @80, chunk_size @88, nlists @96, 13 x u32 stats @104,
 * maxlist @160, dummy[10] @168, lists[nlists+1] of {guard, head} @248. Blocks from the
 * first chunk-aligned address after the lists: {type, size, prev/next or data ..., end guard}.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 4096UL
#define SADDR 0x5d0000000000UL
#define HLEN 16384UL
#define SLEN 4096UL
#define NLISTS 8UL
#define CHUNK 64UL
#define FILE_LEN (PAGE + HLEN + SLEN)

#define G_FREE 0x345298afUL
#define G_ALLOC 0x783bd92cUL
#define G_END 0xfd10a32eUL
#define G_LIST 0xad938945UL

enum {
    ST_MALLOC,
    ST_PREALLOC,
    ST_FREE,
    ST_COALESCE,
    ST_HITS,
    ST_MISSES,
    ST_LARGE_LIST,
    ST_LARGE_HITS,
    ST_LARGE_MISSES,
    ST_MERGED,
    ST_UNMERGED,
    ST_FREEBYTES,
    ST_MALLOCBYTES
};

static unsigned char img[FILE_LEN];

static uint64_t *w64(uint64_t off)
{
    return (uint64_t *)(img + off);
}
static uint32_t *stat32(int i)
{
    return (uint32_t *)(img + PAGE + 104 + 4 * i);
}
/* heap offset <-> VM address */
static uint64_t vm(uint64_t heapoff)
{
    return SADDR + heapoff;
}
static uint64_t hoff(uint64_t addr)
{
    return addr - SADDR;
}
static uint64_t list_off(uint64_t i)
{
    return PAGE + 248 + 16 * i;
}

static uint64_t first_block(void)
{
    uint64_t hdr = 264 + 16 * NLISTS;
    return ((vm(hdr) + CHUNK - 1) / CHUNK * CHUNK) - SADDR; /* heap offset */
}

static uint64_t nchunks(void)
{
    return (HLEN - (264 + 16 * NLISTS)) / CHUNK;
}

static void fresh(void)
{
    memset(img, 0, sizeof(img));
    *(int *)img = 1;
    strcpy((char *)img + 4, "RVM Segment Loader Release 0.1  15 Nov. 1990");
    *w64(136) = 2;
    uint64_t regs[2][4] = {{0, PAGE, HLEN, SADDR}, {0, PAGE + HLEN, SLEN, SADDR + HLEN}};
    memcpy(img + 144, regs, sizeof(regs));
    strcpy((char *)img + PAGE, "Dynamic Allocator Using Rvm Release 0.1 1 Dec 1990");
    *w64(PAGE + 80) = HLEN;
    *w64(PAGE + 88) = CHUNK;
    *w64(PAGE + 96) = NLISTS;
    *w64(PAGE + 160) = NLISTS;
    for (uint64_t i = 1; i <= NLISTS; i++)
        *w64(list_off(i)) = G_LIST;
    uint64_t b = first_block();
    *w64(PAGE + b) = G_FREE;
    *w64(PAGE + b + 8) = nchunks();
    *w64(PAGE + b + nchunks() * CHUNK - 8) = G_END;
    *w64(list_off(NLISTS) + 8) = vm(b);
    *stat32(ST_FREEBYTES) = (uint32_t)(nchunks() * CHUNK);
}

/* take -- the original's malloc of n chunks from the tail of the one big free block */
static uint64_t take(uint64_t n)
{
    uint64_t big = first_block(), rest = *w64(PAGE + big + 8) - n;
    *w64(PAGE + big + 8) = rest;
    *w64(PAGE + big + rest * CHUNK - 8) = G_END;
    uint64_t b = big + rest * CHUNK;
    *w64(PAGE + b) = G_ALLOC;
    *w64(PAGE + b + 8) = n;
    *w64(PAGE + b + 16) = *w64(PAGE + b + 24) = 0;
    (*stat32(ST_MALLOC))++;
    (*stat32(ST_MISSES))++; /* list n was empty: a split */
    *stat32(ST_FREEBYTES) -= (uint32_t)(n * CHUNK);
    *stat32(ST_MALLOCBYTES) += (uint32_t)(n * CHUNK);
    return b;
}

static void make(void)
{
    fresh();
    uint64_t a = take((100 + 24) / CHUNK + 1), b = take((300 + 24) / CHUNK + 1);
    uint64_t c = take((40 + 24) / CHUNK + 1);
    strcpy((char *)img + PAGE + a + 16, "written by the original layout");
    strcpy((char *)img + PAGE + c + 16, "second block");
    /* free b: its successor a is allocated, no merge; it goes on list 6 */
    *w64(PAGE + b) = G_FREE;
    *w64(list_off(6) + 8) = vm(b);
    (*stat32(ST_FREE))++;
    *stat32(ST_FREEBYTES) += (uint32_t)(6 * CHUNK);
    *stat32(ST_MALLOCBYTES) -= (uint32_t)(6 * CHUNK);
    *w64(PAGE + HLEN) = vm(a + 16);
    *w64(PAGE + HLEN + 8) = vm(c + 16);
}

static int fail(const char *what, uint64_t at)
{
    printf("rds_fixture: %s at %#lx\n", what, (unsigned long)at);
    return 1;
}

/* verify -- walk the blocks, then the lists, as the format says */
static int verify(int lrvm)
{
    if (strcmp((char *)img + PAGE, "Dynamic Allocator Using Rvm Release 0.1 1 Dec 1990"))
        return fail("heap version", SADDR);
    uint64_t maxlist = *w64(PAGE + 160), nfree = 0, listed = 0, freeb = 0, allocb = 0;
    for (uint64_t b = first_block(); b < first_block() + nchunks() * CHUNK;) {
        uint64_t t = *w64(PAGE + b), n = *w64(PAGE + b + 8);
        if ((t != G_FREE && t != G_ALLOC) || n == 0 || b + n * CHUNK > HLEN)
            return fail("bad block header", vm(b));
        if (*w64(PAGE + b + n * CHUNK - 8) != G_END)
            return fail("bad end guard", vm(b));
        nfree += t == G_FREE;
        *(t == G_FREE ? &freeb : &allocb) += n * CHUNK;
        b += n * CHUNK;
    }
    for (uint64_t i = 1; i <= NLISTS; i++) {
        if (*w64(list_off(i)) != G_LIST)
            return fail("bad list guard", vm(list_off(i) - PAGE));
        uint64_t prev = 0;
        for (uint64_t p = *w64(list_off(i) + 8); p; p = *w64(PAGE + hoff(p) + 24)) {
            uint64_t n = *w64(PAGE + hoff(p) + 8);
            if (*w64(PAGE + hoff(p)) != G_FREE || *w64(PAGE + hoff(p) + 16) != prev ||
                (i < maxlist && n != i) || (i == maxlist && n < i) || i > maxlist ||
                ++listed > nfree)
                return fail("bad free list entry", p);
            prev = p;
        }
    }
    if (listed != nfree)
        return fail("free blocks missing from the lists", SADDR);
    if (*stat32(ST_FREEBYTES) != freeb || *stat32(ST_MALLOCBYTES) != allocb)
        return fail("byte counters", SADDR + 104);
    uint64_t s0 = *w64(PAGE + HLEN), s2 = *w64(PAGE + HLEN + 16);
    if (strcmp((char *)img + PAGE + hoff(s0), "written by the original layout"))
        return fail("first block's data", s0);
    if (lrvm && (s2 == 0 || strcmp((char *)img + PAGE + hoff(s2), "written by lrvm")))
        return fail("lrvm's block (statics[2])", s2);
    printf("rds_fixture: consistent: %lu free blocks, %lu free bytes, %lu allocated bytes\n",
           (unsigned long)nfree, (unsigned long)freeb, (unsigned long)allocb);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return fprintf(stderr, "usage: rds_fixture fresh|make|verify FILE [lrvm]\n"), 2;
    if (!strcmp(argv[1], "verify")) {
        FILE *f = fopen(argv[2], "rb");
        if (f == NULL || fread(img, 1, FILE_LEN, f) != FILE_LEN)
            return fprintf(stderr, "rds_fixture: cannot read %s\n", argv[2]), 1;
        fclose(f);
        return verify(argc > 3 && !strcmp(argv[3], "lrvm"));
    }
    if (!strcmp(argv[1], "fresh"))
        fresh();
    else if (!strcmp(argv[1], "make"))
        make();
    else
        return 2;
    FILE *f = fopen(argv[2], "wb");
    if (f == NULL || fwrite(img, 1, FILE_LEN, f) != FILE_LEN || fclose(f) != 0)
        return fprintf(stderr, "rds_fixture: cannot write %s\n", argv[2]), 1;
    return 0;
}
