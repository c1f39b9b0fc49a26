/* SPDX-License-Identifier: MIT */
/*
 * rds_format.h -- the on-disk (in-segment) layout of an RDS heap. It is the layout of the
 * original LRVM distribution's RDS ("Dynamic Allocator Using Rvm Release 0.1 1 Dec 1990"),
 * byte for byte on the same ABI, so a heap written by either implementation loads and keeps
 * working under the other. Native byte order and native word size (LP64 here: a long and a
 * pointer are 8 bytes); a heap is not portable between ABIs, exactly as with the original.
 *
 * SEGMENT. An RDS segment is a segment-loader segment (rvm_segment.h) with exactly two
 * regions: region 0 is the heap, mapped at the heap's start address; region 1 is the
 * "statics" area the application manages itself, mapped right after the heap.
 *
 * HEAP HEADER, at the heap's first byte (offsets for LP64):
 *     0  char version[80]          RDS_HEAP_VERSION, NUL-terminated
 *    80  unsigned long heaplength  length of the heap region in bytes
 *    88  unsigned long chunk_size  allocation unit in bytes
 *    96  unsigned long nlists      number of quick-fit free lists
 *   104  rds_stats_t stats         13 x 32-bit counters (rds.h), kept in the heap
 *   160  unsigned long maxlist     the highest list in use (see FREE LISTS)
 *   168  unsigned long dummy[10]   reserved, zero
 *   248  list_t lists[nlists + 1]  {unsigned long guard; block *head}; lists[0] is unused
 * The header therefore takes 264 + 16 * nlists bytes (sizeof(rds_heap_hdr_t) counts lists[0]
 * only, and lists[1..nlists] follow it).
 *
 * BLOCKS. The rest of the heap is tiled by blocks. The first block starts at the first
 * chunk_size-aligned ADDRESS (not offset) after lists[nlists]; blocks follow one another with
 * no gaps and end at blocks_end = first + nchunks * chunk_size, where
 * nchunks = (heaplength - header length) / chunk_size (one chunk fewer if that would pass the
 * end of the region, which the original refused with an assertion). A block of n chunks:
 *     +0   unsigned long type      FREE_GUARD or ALLOC_GUARD
 *     +8   unsigned long size      n, in chunks (>= 1)
 *     +16  user data (allocated) or {block *prev; block *next} (free)
 *     +n*chunk_size-8  unsigned long END_GUARD
 * rds_malloc(bytes) returns block + 16 and takes n = (bytes + 24) / chunk_size + 1 chunks.
 * When two free blocks merge, the end guard of the first and the type and size of the
 * second become zero (they are inside the merged block now).
 * The original's "high address" (RecoverableHeapHighAddress) is
 * start + header length + nchunks * chunk_size; it lies in the last chunk of the last block.
 *
 * FREE LISTS. Free blocks are on doubly linked lists (prev, next are absolute addresses; the
 * head's prev is NULL). Quick fit: a free block of n chunks is on list n if n < maxlist and on
 * list maxlist if n >= maxlist; lists above maxlist are empty. Every list header carries
 * FREE_LIST_GUARD. maxlist drops when its list runs empty during a split and is restored by
 * coalescing, which also merges every run of adjacent free blocks.
 *
 * STATS: malloc/free/prealloc/... counters as in rds.h; freebytes and mallocbytes are the
 * bytes in free and allocated blocks (modulo 2^32, as the fields are 32-bit).
 *
 * CRASH SAFETY. The heap lives in a recoverable region: every byte RDS changes is declared
 * with rvm_set_range in the transaction that changes it, so after a crash the heap is exactly
 * as the last committed transaction left it. No format change is needed for that.
 * This is version RDS_HEAP_VERSION, the only version: a heap with another version string is
 * refused with EHEAP_VERSION_SKEW.
 */
#ifndef LRVM_RDS_FORMAT_H
#define LRVM_RDS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <rvm/rds.h>

#define RDS_HEAP_VERSION "Dynamic Allocator Using Rvm Release 0.1 1 Dec 1990"
#define RDS_VERSION_MAX 80

#define FREE_GUARD 0x345298afUL
#define ALLOC_GUARD 0x783bd92cUL
#define END_GUARD 0xfd10a32eUL
#define FREE_LIST_GUARD 0xad938945UL

typedef unsigned long rds_guard_t;

typedef struct rds_block {
    rds_guard_t type;       /* FREE_GUARD or ALLOC_GUARD */
    unsigned long size;     /* in chunks */
    struct rds_block *prev; /* free blocks only; user data starts here */
    struct rds_block *next;
} rds_block_t;

typedef struct {
    rds_guard_t guard; /* FREE_LIST_GUARD */
    rds_block_t *head;
} rds_list_t;

typedef struct {
    char version[RDS_VERSION_MAX];
    unsigned long heaplength;
    unsigned long chunk_size;
    unsigned long nlists;
    rds_stats_t stats;
    unsigned long maxlist;
    unsigned long dummy[10];
    rds_list_t lists[1]; /* lists[1..nlists] follow */
} rds_heap_hdr_t;

/* bytes hidden in each block: type and size before the user data, END_GUARD after it */
#define RDS_BLOCK_OVERHEAD (2 * sizeof(unsigned long) + sizeof(rds_guard_t))
/* offset of the user data in a block */
#define RDS_USER_OFFSET offsetof(rds_block_t, prev)
/* smallest chunk: a free block's header and its end guard must fit in one chunk */
#define RDS_MIN_CHUNK_SIZE (sizeof(rds_block_t) + sizeof(rds_guard_t))
#define RDS_MIN_FREE_LISTS 1

/* the documented LP64 layout, checked at compile time */
#if defined(__LP64__)
_Static_assert(offsetof(rds_heap_hdr_t, stats) == 104, "RDS header layout");
_Static_assert(offsetof(rds_heap_hdr_t, maxlist) == 160, "RDS header layout");
_Static_assert(offsetof(rds_heap_hdr_t, lists) == 248, "RDS header layout");
_Static_assert(sizeof(rds_heap_hdr_t) == 264, "RDS header layout");
_Static_assert(sizeof(rds_stats_t) == 52, "RDS stats layout");
#endif

/* rds_hdr_len -- bytes of the header of a heap with nlists lists */
static inline unsigned long rds_hdr_len(unsigned long nlists)
{
    return sizeof(rds_heap_hdr_t) + nlists * sizeof(rds_list_t);
}

/* rds_geometry -- first block and blocks_end (see BLOCKS) of a heap of `length` bytes at
 * address `base` whose header says chunk and nlists; 0, or -1 if not even one chunk fits */
static inline int rds_geometry(uintptr_t base, unsigned long length, unsigned long chunk,
                               unsigned long nlists, uintptr_t *first, uintptr_t *end)
{
    unsigned long hdr = rds_hdr_len(nlists);
    if (chunk == 0 || nlists == 0 || nlists > length || length <= hdr)
        return -1;
    uintptr_t f = (base + hdr + chunk - 1) / chunk * chunk;
    unsigned long n = (length - hdr) / chunk;
    if (n > 0 && f + n * chunk > base + length)
        n--; /* the original asserted here; we keep it inside */
    if (n == 0)
        return -1;
    *first = f;
    *end = f + n * chunk;
    return 0;
}

#endif /* LRVM_RDS_FORMAT_H */
