/* SPDX-License-Identifier: MIT */
/*
 * heap.h -- lrvm's persistent, restartable heap allocator (internal to core; used by the
 * LD_PRELOAD shim and, later, by RDS compatibility).
 *
 * The heap lives in [base, base + reserve) at a FIXED address: every restart maps it at the
 * same base, so absolute pointers inside the heap stay valid. All of the allocator's metadata
 * lives inside that range (see heap_format.h for the layout), none of it points outside, and
 * nothing of it is in process globals that a restart would need. Hence, when the range is an
 * auto-tracked segment region, a commit captures user data and allocator metadata at the same
 * instant and the heap is crash-consistent through the commit alone, with no logging of its own.
 *
 * Memory below `size` is backed; it grows in 4 MiB chunks through struct heap_backing, which in
 * production is an LRVM segment region (private memory, file space reserved by posix_fallocate
 * so a full disk is an error return, never SIGBUS).
 *
 * Commits and threads (the contract the commit layer relies on):
 *   - The per-thread caches are volatile. A block sitting in a cache is recorded as FREE in the
 *     persistent bitmaps; only the volatile "available" bitmap keeps two threads from taking it.
 *     After a restart the volatile state is rebuilt from the persistent one, so cached blocks
 *     come back as free: caches leak nothing across a crash (leak bound: 0 blocks).
 *   - Outside the heap's locks, the persistent metadata changes only by single atomic word
 *     updates (one allocation bit set by malloc, cleared by free). Every multi-word change (new
 *     run, large block, span split/merge, growth) happens under them. So a commit that takes
 *     heap_lock_all() before stopping the other threads (or before snapshotting) captures a heap
 *     whose metadata is valid, whatever the other threads were doing.
 *   - A block malloc'ed but not yet stored by the program at the commit instant is leaked if
 *     the process then crashes: that is the program's state, not the allocator's (at most one
 *     block per thread inside malloc/realloc at that instant).
 *
 * Errors: functions return int codes, 0 = success; positive values are errno values, negative
 * values are the HEAP_E* codes of heap_types.h (heap_strerror() covers both). Every
 * user-facing failure is also reported through the report callback with the address/field and
 * what to do.
 */
#ifndef LRVM_HEAP_H
#define LRVM_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "heap_types.h"

void heap_opts_init(struct heap_opts *o);

/* heap_create -- format a new heap at base (4 MiB aligned) with the given reserve (multiple of
 * 4 MiB, 8 MiB .. 256 GiB); backing must already map [base, base + reserve). */
int heap_create(struct heap **out, void *base, size_t reserve, const struct heap_backing *b,
                const struct heap_opts *o);
/* heap_open -- open an existing heap image mapped at base: verifies magic, version, checksum,
 * base, geometry, size (and the whole metadata if o->check_on_open), rebuilds volatile state. */
int heap_open(struct heap **out, void *base, const struct heap_backing *b,
              const struct heap_opts *o);
/* heap_close -- flush every thread cache and free the volatile state (memory stays mapped). */
int heap_close(struct heap *h);

void *heap_malloc(struct heap *h, size_t n);
void *heap_calloc(struct heap *h, size_t nmemb, size_t size);
void *heap_realloc(struct heap *h, void *p, size_t n);
/* heap_memalign -- align: any power of two (>= sizeof(void *)); EINVAL otherwise. */
void *heap_memalign(struct heap *h, size_t align, size_t n);
/* heap_free -- 0, or HEAP_EBADFREE (reported with the address) for a pointer that is not a live
 * block start: outside the heap, inside a block, already free. The heap is left untouched. */
int heap_free(struct heap *h, void *p);
size_t heap_usable_size(struct heap *h, const void *p);
/* heap_block_state -- what p points at: the start of a live block, the inside of one, free
 * memory (a freed block, free pages), or nothing of the heap's in use: HEAP_BS_* (no lock
 * taken: hold heap_lock_all for a stable answer). A conservative pointer scan's question. */
int heap_block_state(struct heap *h, const void *p);
/* heap_walk -- call fn(arg, block, usable_size) for every live block, in address order; a
 * nonzero return from fn stops the walk and is returned. Blocks in thread caches are free
 * (heap.h's contract), so they are not visited. Call on a quiescent heap (heap_check's rule).
 * HEAP_ECORRUPT if the metadata cannot be walked (heap_check says where). */
typedef int (*heap_walk_fn)(void *arg, void *block, size_t size);
int heap_walk(struct heap *h, heap_walk_fn fn, void *arg);
/* heap_owns -- 1 if p lies inside this heap's reserve (a free() router's question). */
int heap_owns(const struct heap *h, const void *p);
/* heap_owns_private -- 1 if p lies in the heap's own volatile bookkeeping (page table and
 * availability bits, mapped apart from the reserve): no pointer the heap hands out leads there */
int heap_owns_private(const struct heap *h, const void *p);

/* The program's root: one pointer in the header, how a restarted program finds its data. */
void heap_set_root(struct heap *h, void *root);
void *heap_get_root(const struct heap *h);

void heap_stats_get(struct heap *h, struct heap_stats *st);

/* heap_check -- walk all metadata and report every violation through fn (NULL: the heap's
 * report callback). Returns 0 or HEAP_ECORRUPT; *nviolations if non-NULL. Call on a quiescent
 * heap (no thread inside heap calls), e.g. under heap_lock_all or after open. */
int heap_check(struct heap *h, heap_report_fn fn, void *arg, size_t *nviolations);
/* heap_check_file -- heap_check reporting to a FILE *, one violation per line. */
int heap_check_file(struct heap *h, FILE *out, size_t *nviolations);

/* heap_lock_all / heap_unlock_all -- bracket a commit: while held, no thread is in the middle
 * of a multi-word metadata update, so the heap image is valid. Take it BEFORE stopping other
 * threads (they may be waiting for it; they are not holding it). Also the fork handlers:
 * lock_all in prepare, unlock_all in the parent, heap_fork_child in the child. */
void heap_lock_all(struct heap *h);
void heap_unlock_all(struct heap *h);
/* heap_fork_child -- in the child after fork(): reset the lock (held by prepare) and return
 * the caches of threads that do not exist in the child to the heap. */
void heap_fork_child(struct heap *h);

/* heap_purge -- release every free resident page range now (normally done in batches). */
int heap_purge(struct heap *h);

/*
 * heap_punch_collect -- ranges of the segment FILE that may be hole-punched after the commit
 * being taken now becomes durable.
 *
 * Why not punch at free time: a crash restores the last commit, in which the freed block may
 * still be live; its bytes must still be in the file. So the heap only releases memory at free
 * time, and the commit layer, holding heap_lock_all at the commit instant, calls this to learn
 * which released free ranges (>= 64 KiB) exist in the image it is committing; it punches them
 * only after that commit is durable. Such ranges are marked "maybe punched" in the metadata;
 * reusing one calls backing->reserve_space first so the file blocks exist again before any
 * later commit writes there. Call with heap_lock_all held. cb(arg, off, len) per range.
 */
int heap_punch_collect(struct heap *h, void (*cb)(void *arg, size_t off, size_t len), void *arg);

const char *heap_strerror(int err);

#endif
