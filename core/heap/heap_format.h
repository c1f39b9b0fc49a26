/* SPDX-License-Identifier: MIT */
/*
 * heap_format.h -- the persistent heap's in-segment format, version 1.
 *
 * LAYOUT. The heap occupies [base, base + reserve); base is 4 MiB aligned. It is cut into
 * 4 MiB CHUNKS; chunk i lives at base + i * 4 MiB. Backed memory ("size") is always a whole
 * number of chunks, grown from the start. Everything below is little-endian native structs.
 *
 *   chunk 0 (HEADER chunk):
 *     off 0      struct heap_header (one page)
 *     off 4096   chunk table: struct heap_chunk_ent[reserve / 4 MiB]  (8 bytes each, <= 512 KiB)
 *     rest       unused
 *   chunk i, kind NORMAL:
 *     pages 0..15  struct heap_pdesc[1024]: one 64-byte record per page of the chunk: the page's
 *                  descriptor and the allocation bits of its 256 16-byte granules (bit g set
 *                  <=> a block held by the program starts at page + 16 * g). A free() reads
 *                  one cache line: the record of the page its pointer lies in.
 *     pages 16..1023  data pages, tiled exactly by spans (below)
 *   chunk i, kind HUGE (head) followed by n-1 HUGE_TAIL chunks: one block of n * 4 MiB starting
 *     at the head chunk's first byte. No metadata in the chunk itself (the table describes it).
 *   chunk i, kind FREE: backed but unused (memory released). UNUSED: not backed (>= size).
 *
 * SPANS (NORMAL chunks). Data pages are tiled by spans; a span's first page descriptor says:
 *   PD_FREE   npages free pages; its last page (if npages > 1) is PD_FREE_TAIL with back =
 *             npages - 1 so the span before it can coalesce. Other pages: don't care.
 *   PD_RUN    a slab of npages pages holding blocks of size class `cls`; blocks start at the
 *             head page, block k at head + k * size; nblocks = npages * 4096 / size.
 *   PD_LARGE  one block of npages pages.
 *   Pages 1..npages-1 of a RUN or LARGE span are PD_INTERIOR with back = distance to the head,
 *   aux = the head's kind, and (runs) cls = the head's class.
 *   flags (on PD_FREE): PDF_ZERO (contents known zero), PDF_CLEAN (memory released after the
 *   span was used: its file space is offered for punching), PDF_PUNCH (its file blocks may
 *   have been punched: re-reserve before reuse).
 *
 * VALIDITY (what heap_check verifies; what a crash-restored commit must satisfy):
 *   header fields as recorded and checksum of the immutable ones; chunk table: kinds known,
 *   HEADER only at 0, UNUSED exactly at and beyond size, HUGE followed by n-1 HUGE_TAILs;
 *   NORMAL chunks: meta descriptors intact (canary), spans tile pages 16..1023 exactly, no two
 *   adjacent free spans (coalesced), free tails correct, interiors point to their head,
 *   class and npages agree with the class table; allocation bits set only at the granules
 *   where blocks of a run start (never in metadata, free or large pages).
 *
 * WHAT IS NOT PERSISTENT: per-thread caches, the "available" bitmaps, free-count per run, free
 * span bins and run lists. They are rebuilt at open from the above. A block in a thread cache
 * has its allocation bit clear, so after a restart it is simply free.
 *
 * CRASH SAFETY. The heap never writes anything outside the heap, and a commit (under
 * heap_lock_all) sees only complete multi-word updates; single-bit updates (malloc/free) are
 * atomic words. Any committed image therefore satisfies VALIDITY.
 */
#ifndef LRVM_HEAP_FORMAT_H
#define LRVM_HEAP_FORMAT_H

#include <stdint.h>

#define HEAP_MAGIC "LRVMHEAP"
#define HEAP_FORMAT_VERSION 1u

#define HEAP_PAGE_SHIFT 12
#define HEAP_PAGE ((size_t)1 << HEAP_PAGE_SHIFT)
#define HEAP_CHUNK_SHIFT 22
#define HEAP_CHUNK ((size_t)1 << HEAP_CHUNK_SHIFT)
#define HEAP_CHUNK_PAGES (HEAP_CHUNK / HEAP_PAGE)     /* 1024 */
#define HEAP_GRANULE 16                               /* min block size and alignment */
#define HEAP_BITS_PER_PAGE (HEAP_PAGE / HEAP_GRANULE) /* 256 */
#define HEAP_PDESC_OFF 0
#define HEAP_META_PAGES 16u
#define HEAP_DATA_PAGES (HEAP_CHUNK_PAGES - HEAP_META_PAGES) /* 1008 */
#define HEAP_RESERVE_MIN (2 * HEAP_CHUNK)
#define HEAP_RESERVE_MAX ((size_t)256 << 30)
#define HEAP_CTABLE_OFF HEAP_PAGE

/* struct heap_header -- page 0 of chunk 0. `checksum` covers magic..chunk_size (immutable). */
struct heap_header {
    char magic[8];        /* "LRVMHEAP" */
    uint32_t version;     /* HEAP_FORMAT_VERSION */
    uint32_t page_size;   /* 4096 */
    uint32_t chunk_size;  /* 4 MiB */
    uint32_t header_size; /* sizeof(struct heap_header) */
    uint64_t base;        /* address the heap was created at */
    uint64_t reserve;     /* bytes of address space reserved */
    uint64_t checksum;    /* FNV-1a 64 of the fields above */
    uint64_t size;        /* backed bytes: whole chunks */
    uint64_t root;        /* the program's root pointer (in the heap, or 0) */
    uint64_t nchunks;     /* chunks below size (= size / 4 MiB) */
};

enum heap_chunk_kind {
    CK_UNUSED = 0,
    CK_HEADER = 1,
    CK_NORMAL = 2,
    CK_FREE = 3,
    CK_HUGE = 4,
    CK_HUGE_TAIL = 5,
};
#define CKF_ZERO 0x100u  /* FREE chunk: contents known zero */
#define CKF_PUNCH 0x200u /* FREE chunk: file blocks may be punched */
#define CK_KIND(k) ((k)&0xffu)

/* struct heap_chunk_ent -- chunk table entry. n: HUGE: chunks in the block; HUGE_TAIL:
 * distance back to the head. */
struct heap_chunk_ent {
    uint32_t kind;
    uint32_t n;
};

enum heap_pdesc_kind {
    PD_NONE = 0,
    PD_META = 1,
    PD_FREE = 2,
    PD_FREE_TAIL = 3,
    PD_RUN = 4,
    PD_LARGE = 5,
    PD_INTERIOR = 6,
};
#define PDF_ZERO 1u
#define PDF_CLEAN 2u
#define PDF_PUNCH 4u
#define HEAP_META_CANARY 0x4d455441u /* "META" in pdesc[0].aux: overflow into metadata shows */

/* struct heap_pdesc -- the record of one page of a NORMAL chunk (one cache line). */
struct heap_pdesc {
    uint8_t kind;
    uint8_t flags;
    uint16_t cls;    /* RUN and its INTERIOR pages: size class */
    uint32_t npages; /* span heads (and FREE_TAIL): pages in the span */
    uint32_t back;   /* INTERIOR, FREE_TAIL: pages back to the head */
    uint32_t aux;    /* META page 0: canary; INTERIOR: the head's kind; otherwise 0 */
    uint64_t bits[HEAP_BITS_PER_PAGE / 64]; /* allocation bits of this page's granules */
    uint64_t reserved[2];
};

_Static_assert(sizeof(struct heap_pdesc) == 64, "a page record is one cache line");
_Static_assert(sizeof(struct heap_pdesc) * HEAP_CHUNK_PAGES == HEAP_META_PAGES * HEAP_PAGE,
               "records fill the meta pages");
_Static_assert(HEAP_CTABLE_OFF + (HEAP_RESERVE_MAX / HEAP_CHUNK) * 8 <= HEAP_CHUNK, "table fit");

#endif
