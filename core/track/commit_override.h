/* SPDX-License-Identifier: MIT */
/*
 * commit_override.h -- core-internal: let the layer that owns the process's commits (the
 * LD_PRELOAD shim) take over the public rvm_commit.
 *
 * Why: under the shim, a commit must hold the shim's commit lock and heap_lock_all around
 * the tracked commit, be refused in a fork child, and be counted. An aware program calls
 * rvm_commit (the shim exports it, interposing liblrvm.so's); inside the shim that is
 * core's rvm_commit, which hands the call to the installed override. The override must
 * reach the tracker through track_commit() (track.h), never rvm_commit: that would recurse.
 */
#ifndef LRVM_COMMIT_OVERRIDE_H
#define LRVM_COMMIT_OVERRIDE_H

#include <rvm/rvm.h>

typedef rvm_return_t (*commit_override_fn)(void);

/* commit_set_override -- from now on rvm_commit() returns fn() (NULL: core's own commit).
 * Set once at start-up, before other threads call rvm_commit. */
void commit_set_override(commit_override_fn fn);

#endif
