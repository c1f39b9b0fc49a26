/* SPDX-License-Identifier: MIT */
/*
 * preload_api.h -- everything of core's internals the LD_PRELOAD shim (preload/) may use.
 *
 * The shim is core's one privileged client: it owns the process's persistent heap, decides
 * when commits happen, and checks the files it is handed before core opens them. It needs a
 * few calls that are not part of the public API (rvm/rvm.h, lrvm/lrvm.h), and only those: this
 * header declares them, grouped by what the shim does with them. It is not installed.
 *
 * preload/ is compiled with this folder and the public include folders only, so an
 * `#include "track.h"` (or any other internal header) in the shim does not compile: a new
 * need of the shim is a new declaration here, made on purpose and reviewed as a change to the
 * interface between the two layers.
 *
 * The declarations repeat those of the internal headers that define them (heap.h, track.h,
 * roots.h, ...). preload_api_check.c includes this header together with all of those, so if
 * one of them changes a signature the build fails there instead of the two drifting apart.
 * Types are never repeated: the few the shim needs come from the headers included below.
 */
#ifndef LRVM_PRELOAD_API_H
#define LRVM_PRELOAD_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lrvm/lrvm.h>
#include <rvm/rvm.h>

/*
 * On-disk formats the shim reads and writes itself: the segment's image header (it creates
 * it, stamps each commit, keeps its crash note and lock table in it) and the heap's header
 * (it recognises a segment holding a heap before opening it, and sizes the first tracked
 * range by the heap's chunk). Included whole: a format is one specification, not a subset.
 */
#include "../heap/heap_format.h"
#include "../image/image_format.h"

/* The heap's types (backing, options, statistics, HEAP_E* codes, HEAP_BS_* answers): the shim
 * builds its heaps on backings of its own. */
#include "../heap/heap_types.h"

#pragma GCC visibility push(hidden)

/*
 * The persistent heap behind the shim's malloc family: the program's heap (a tracked segment
 * region, or anonymous memory without LRVM_SEGMENT) and the shim's internal heap for libc's
 * own objects. heap_lock_all/heap_unlock_all bracket each commit and fork (so the image
 * committed, or copied into the child, has no half-done metadata update); heap_fork_child
 * resets the child's copy; heap_block_state and heap_owns answer the restorability scan and
 * the free() router; heap_purge returns free pages before an exit commit.
 */
void heap_opts_init(struct heap_opts *o);
int heap_create(struct heap **out, void *base, size_t reserve, const struct heap_backing *b,
                const struct heap_opts *o);
int heap_open(struct heap **out, void *base, const struct heap_backing *b,
              const struct heap_opts *o);
void *heap_malloc(struct heap *h, size_t n);
void *heap_calloc(struct heap *h, size_t nmemb, size_t size);
void *heap_realloc(struct heap *h, void *p, size_t n);
void *heap_memalign(struct heap *h, size_t align, size_t n);
int heap_free(struct heap *h, void *p);
size_t heap_usable_size(struct heap *h, const void *p);
int heap_block_state(struct heap *h, const void *p);
int heap_owns(const struct heap *h, const void *p);
int heap_owns_private(const struct heap *h, const void *p);
void heap_stats_get(struct heap *h, struct heap_stats *st);
void heap_lock_all(struct heap *h);
void heap_unlock_all(struct heap *h);
void heap_fork_child(struct heap *h);
int heap_purge(struct heap *h);
const char *heap_strerror(int err);

/*
 * Commits of the tracked heap. The shim's reservation is tracked with
 * track_region_add_sparse (only the part in use is write-protected); its commit hooks call
 * track_commit_then(final, released, arg) (final = the exit commit: diffed in place, no
 * snapshot copies); released(arg) runs once, as soon as the instant is captured, so the shim
 * drops its heap locks before the diff and the log write. Never rvm_commit, which the shim
 * overrides below.
 * track_safepoint_set_check lets LRVM_MUTEX_WAIT decline a commit instant at which a
 * thread holds a mutex.
 */
rvm_return_t track_region_add_sparse(rvm_region_t *region, uint64_t wp_len);
rvm_return_t track_commit(void);
rvm_return_t track_commit_mode(int final);
rvm_return_t track_commit_then(int final, void (*released)(void *arg), void *arg);
void track_commit_warm(void);
int track_release_try(void *addr, size_t len);
int track_owns(const void *p);
void track_safepoint_set_check(int (*fn)(void *arg), void *arg);
#define TRACK_PAUSE_BOUNDS 6
#define TRACK_PAUSE_MS      \
    {                       \
        1, 2, 5, 10, 20, 50 \
    }
void track_pause_counts(uint64_t over[TRACK_PAUSE_BOUNDS]);
uint64_t track_precopied_pages(void);

/* An aware program's rvm_commit under the shim: the shim installs its own commit (its lock,
 * heap_lock_all, the fork-child refusal) as the override of core's public rvm_commit. */
typedef rvm_return_t (*commit_override_fn)(void);
void commit_set_override(commit_override_fn fn);

/* The named roots (rvm_root_set/rvm_root_get) kept in the persistent heap instead of a
 * process-local table; roots_bind_message says why a heap's root table was refused. */
int roots_bind(struct heap *h);
const char *roots_bind_message(void);

/* The ownership rules for the segment and log (LRVM_SHARED_GROUP sets the flag): the shim
 * opens the segment itself, through the same checks core applies to the log. */
extern int filecheck_shared_group;
int filecheck_open(const char *path, int flags, mode_t mode, const char *what, char *why,
                   size_t whylen);

/* flock(fd, op | LOCK_NB), waiting out a holder that only inherited the lock (a fork child
 * of a program that has exited), as the library locks its log: the shim locks its segment,
 * one writer per segment. 0, or an errno value; *holder names a live holder (or 0). */
int loglock_flock(int fd, int op, pid_t *holder);

/* err_set -- set rvm_errmsg (printf-style) and return code: how the shim's rvm_commit
 * override explains a refusal to the aware program that called it. */
rvm_return_t err_set(rvm_return_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* crc32c -- the checksum of the image header's executable identity and crash note (the
 * image format specifies crc32c with seed 0). */
uint32_t crc32c(uint32_t seed, const void *buf, size_t len);

#pragma GCC visibility pop

#endif /* LRVM_PRELOAD_API_H */
