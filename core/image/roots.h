/* SPDX-License-Identifier: MIT */
/*
 * roots.h -- core-internal side of the named roots (rvm_root_set/rvm_root_get, lrvm.h).
 *
 * Core does not know which heap is "the" persistent heap: the layer that owns one (the
 * LD_PRELOAD shim) binds it here at start-up. Until then (and in a program linked with
 * liblrvm alone) the roots live in a process-local table.
 */
#ifndef LRVM_ROOTS_H
#define LRVM_ROOTS_H

struct heap;

/* roots_bind -- keep the root table in h from now on, found through h's root pointer
 * (heap_set_root / heap_get_root: the roots own that pointer). Call once, single-threaded,
 * before any rvm_root_* call. Returns 0, or EINVAL if h's root pointer is set but is not a
 * root table of this version (nothing is changed; roots_bind_message() says what was found). */
int roots_bind(struct heap *h);
/* roots_bind_message -- what roots_bind found wrong */
const char *roots_bind_message(void);

#endif
