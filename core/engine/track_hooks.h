/*
 * track_hooks.h -- the two calls core makes into auto-tracking (track.c), declared weak so
 * that core links with or without the tracking sources (NULL when absent: call through
 * TRACK_HOOK only).
 *
 *  - rvm_end_transaction, after an explicit transaction's record is queued/durable:
 *    track_note_commit(memory address, length) for each committed range, so the next
 *    rvm_commit does not log those bytes again. Called with no core lock held.
 *  - rvm_unmap, before forgetting a mapping: track_on_unmap(vmaddr, length) returns
 *    RVM_EUNCOMMIT if the region is tracked and has uncommitted changes (the unmap is
 *    refused), else untracks it if tracked and returns RVM_SUCCESS.
 *  - the truncation thread, at start and before it exits: track_thread_ignore(1 / 0), so
 *    that commits of tracked memory do not stop it (it never writes tracked memory).
 */
#ifndef LRVM_CORE_TRACK_HOOKS_H
#define LRVM_CORE_TRACK_HOOKS_H

#include <stdint.h>

#include <rvm/rvm.h>

__attribute__((visibility("hidden"), weak)) void track_note_commit(const void *addr,
                                                                  uint64_t len);
__attribute__((visibility("hidden"), weak)) rvm_return_t track_on_unmap(const void *addr,
                                                                       uint64_t len);

__attribute__((visibility("hidden"), weak)) void track_thread_ignore(int on);
/* rvm_terminate, first: RVM_EUNCOMMIT if a tracked region has uncommitted changes (nothing
 * changes), else every region is untracked and RVM_SUCCESS returned */
__attribute__((visibility("hidden"), weak)) rvm_return_t track_on_terminate(void);

#endif /* LRVM_CORE_TRACK_HOOKS_H */
