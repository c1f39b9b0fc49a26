/* SPDX-License-Identifier: MIT */
/*
 * heap_types.h -- the persistent heap's types and codes: error codes, the backing it grows
 * through, its options and statistics, and what heap_block_state answers.
 *
 * They are apart from heap.h (the heap's functions) because the LD_PRELOAD shim builds its
 * heaps with them while seeing only the heap calls it uses (core/preload_api/preload_api.h):
 * one definition of each type, included by both.
 */
#ifndef LRVM_HEAP_TYPES_H
#define LRVM_HEAP_TYPES_H

#include <stddef.h>

/* Heap-specific error codes (negative, from a reserved range; errno values are positive). */
enum heap_error {
    HEAP_EBADMAGIC = -31001, /* header magic is not "LRVMHEAP": not a heap, or overwritten */
    HEAP_EVERSION = -31002,  /* format version differs from this library's */
    HEAP_EBASE = -31003,     /* heap recorded for another base address */
    HEAP_EGEOMETRY = -31004, /* page/chunk size, reserve or size field invalid or mismatched */
    HEAP_ECHECKSUM = -31005, /* header checksum mismatch: header corrupted */
    HEAP_ECORRUPT = -31006,  /* metadata inconsistent (checker found violations) */
    HEAP_EBADFREE = -31007,  /* free/realloc of a pointer that is not a live block start */
    HEAP_ERESERVE = -31008,  /* the reserve is exhausted */
    HEAP_ESHORT = -31009,    /* backing is shorter than the header's size */
};

/*
 * struct heap_backing -- where the heap's memory comes from.
 *
 * Preconditions at every call: offsets and lengths are multiples of the 4 KiB page, and the
 * heap lock is held (calls are serialised).
 *   grow(ctx, new_size): make [base, base + new_size) usable, zero-filled beyond the old size,
 *       with its file space reserved (ENOSPC returned now, never SIGBUS later). errno on failure.
 *   release(ctx, off, len): the range is free; drop its memory now (MADV_DONTNEED). Must NOT
 *       touch the segment file: the free is not committed yet (see heap_punch_collect).
 *   reserve_space(ctx, off, len): the range is being reused and its file blocks may have been
 *       punched after an earlier commit; reserve them again (posix_fallocate). May be NULL.
 *   size(ctx): bytes currently backed (>= the heap's recorded size when opening).
 *   flags: HEAP_BACKING_ZERO_ON_RELEASE if released memory reads back as zeros (anonymous
 *       memory); then calloc skips zeroing pages it knows are untouched since release.
 *   try_release(ctx, off, len): as release, but EAGAIN instead of waiting (the shim's tracker
 *       is busy with a commit). The heap then keeps the range resident, free, and releases it
 *       later (HEAP_DEFER_MAX ranges at most; beyond that it calls release). May be NULL.
 */
#define HEAP_BACKING_ZERO_ON_RELEASE 1u
struct heap_backing {
    int (*grow)(void *ctx, size_t new_size);
    int (*release)(void *ctx, size_t off, size_t len);
    int (*reserve_space)(void *ctx, size_t off, size_t len);
    size_t (*size)(void *ctx);
    void *ctx;
    unsigned flags;
    int (*try_release)(void *ctx, size_t off, size_t len);
};

/* Report callback: one complete human-readable line per call (no trailing newline). */
typedef void (*heap_report_fn)(void *arg, const char *msg);

struct heap_opts {
    heap_report_fn report; /* NULL: write(2) to stderr, prefixed "lrvm heap: " */
    void *report_arg;
    int check_on_open; /* 1 (heap_opts_init's default): heap_check at open, refuse on error */
    /* clean_bytes: N > 0 = the first N bytes of a block handed out (malloc, calloc, memalign,
     * realloc's new bytes; all of it when it is smaller) are zeros, never bytes of an earlier
     * use of its memory, and the word that holds the request's last byte, if among them, has
     * a non-zero top byte when the request is not a multiple of 8. For a heap whose blocks a
     * conservative scan reads word by word, no further than N bytes into a block (the shim's
     * restorability verdict): an unfilled block or a short last word must not look like an
     * address. Memory known to be zero (fresh, or released with a zeroing backing) is not
     * written, nor are bytes past N (a large buffer the program uses sparsely stays so).
     * SIZE_MAX: whole blocks. 0 (heap_opts_init's default): contents undefined, as malloc's. */
    size_t clean_bytes;
};

struct heap;

/* Statistics. "Allocated" is what users hold (usable sizes); the rest is overhead. */
struct heap_stats {
    size_t reserve;    /* virtual reserve */
    size_t size;       /* backed bytes (file size) */
    size_t allocated;  /* usable bytes of live user blocks */
    size_t nallocated; /* live user blocks */
    size_t active;     /* bytes of pages in runs, large and huge blocks */
    size_t cached;     /* bytes in per-thread caches (free in the persistent metadata) */
    size_t metadata;   /* header chunk + per-chunk metadata pages */
    size_t free_dirty; /* free pages still resident */
    size_t free_clean; /* free pages released to the kernel */
    size_t nchunks;    /* chunks in use (normal + huge) */
    size_t purges;     /* release calls so far (this process) */
};

/* What heap_block_state answers about a pointer. */
enum { HEAP_BS_OUTSIDE = 0, HEAP_BS_FREE, HEAP_BS_START, HEAP_BS_INTERIOR };

#endif
