/* SPDX-License-Identifier: MIT */
/*
 * aware.c -- the lrvm API for aware programs under the shim: explicit rvm_commit() and named
 * roots (rvm_root_set / rvm_root_get, lrvm/lrvm.h).
 *
 * A program linked with -llrvm calls liblrvm.so's rvm_commit/rvm_root_*. This library links
 * its own copy of liblrvm (static, hidden) and EXPORTS those three names
 * (liblrvm-preload.map), so, preloaded, they interpose liblrvm.so's (an unversioned
 * definition in a preloaded object satisfies the program's rvm_commit@LRVM_1.0 reference).
 * The program then reaches the instance that tracks the heap, not liblrvm.so's idle one.
 * rvm_errmsg is exported too, so the program reads this instance's messages. Only these
 * calls (and pure ones such as rvm_return) are meant for a program under the shim: any other
 * rvm_* call reaches liblrvm.so's separate instance (a second LRVM in the process).
 *
 *   rvm_commit   core's public rvm_commit calls the override installed here, which goes
 *                through shim_commit("explicit"): the same commit lock, fork-child refusal,
 *                counting and heap_lock_all as the exit/signal/interval hooks. shim_commit
 *                reaches the tracker through track_commit(), never rvm_commit (no recursion).
 *   rvm_root_*   core's roots.c, bound here to the persistent heap: the table lives in the
 *                segment and is committed with the heap. Without LRVM_SEGMENT the heap is
 *                volatile and the table stays process-local.
 * Without the shim, liblrvm.so's own calls run: rvm_commit with nothing tracked succeeds,
 * the roots are process-local; the program runs, without persistence.
 */
#include "shim.h"
#include "preload_api.h"

#include <errno.h>

#include <lrvm/lrvm.h>

/* aware_commit -- the override of rvm_commit (commit_override.h) */
static rvm_return_t aware_commit(void)
{
    int rc = shim_commit("explicit");
    if (rc == 0 || rc == ENOSYS)
        return RVM_SUCCESS; /* ENOSYS: volatile heap (no LRVM_SEGMENT), nothing to commit */
    if (rc == EPERM)
        return err_set(RVM_EINTERNAL,
                       "rvm_commit: this is a child of fork(); its heap is a "
                       "private volatile copy and never commits (the parent owns LRVM_SEGMENT)");
    return (rvm_return_t)rc; /* an rvm_return_t from the tracked commit; message printed */
}

/* shim_aware_setup -- bind the roots to the persistent heap, install the commit override;
 * 0 or EINVAL after a message */
int shim_aware_setup(void)
{
    if (shim_persistent) {
        shim_in_core = 1; /* roots_bind registers fork handlers: pthread_atfork may allocate */
        int rc = roots_bind(shim_heap);
        shim_in_core = 0;
        if (rc != 0) {
            shim_say(2, "LRVM_SEGMENT=", shim_opts.segment, ": ", roots_bind_message(),
                     "; the segment was written by another program or lrvm version: use another "
                     "LRVM_SEGMENT",
                     NULL);
            return rc;
        }
    }
    commit_set_override(aware_commit);
    return 0;
}
