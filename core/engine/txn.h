/* SPDX-License-Identifier: MIT */
/*
 * txn.h -- internal entry point for committing without set_range (for auto-tracked
 * regions: page diffs become redo records in the same log).
 *
 * txn_commit_vector(v, n, mode) commits v[0..n) as ONE transaction: for each entry,
 * `len` new bytes at `src` are the new value of the mapped memory at `dest` (dest
 * names the region and the offset in it; it must lie entirely inside one mapped
 * region). The bytes are copied from src before the call returns, so src may be a
 * scratch buffer. mode is flush (durable on return, group-committed with other
 * threads) or no_flush (queued; coalesced with other no_flush commits under
 * RVM_COALESCE_TRANS). The caller supplies disjoint entries; no intra-transaction
 * coalescing is done. The memory at dest is NOT written: the caller owns it.
 * Returns RVM_SUCCESS, RVM_EINIT, RVM_ELOG, RVM_ENOT_MAPPED, RVM_EMODE, RVM_ETOO_BIG,
 * RVM_ENO_MEMORY or RVM_EIO (sticky).
 */
#ifndef LRVM_CORE_TXN_H
#define LRVM_CORE_TXN_H

#include <stddef.h>
#include <stdint.h>

#include <rvm/rvm.h>

struct txn_vec {
    void *dest;
    const void *src;
    size_t len;
};

__attribute__((visibility("hidden"))) rvm_return_t txn_commit_vector(const struct txn_vec *v,
                                                                     size_t n, rvm_mode_t mode);

/*
 * txn_commit_stream(get, arg, n) commits n entries as ONE transaction, like
 * txn_commit_vector in flush mode (durable on return), but writes the log record straight
 * from each entry's src through a bounded staging buffer instead of copying the new bytes
 * into the log's queue first (log_stream.c): core's memory stays O(1 MiB + regions) for
 * a record of any size. get(arg, i, &v) returns entry i; it is called up to three times
 * per entry and must return the same entry each time, and the bytes at src must not change
 * until the call returns. Same record format, same recovery. A record larger than the log
 * grows it (log_grow.c); a record of 16 MiB or more is applied to its segments from src once
 * durable, when no older record is live, so the log is empty again on return (log_stream.c,
 * stream_settle). Returns what txn_commit_vector returns; an I/O failure is sticky.
 */
typedef void (*txn_vec_fn)(void *arg, size_t i, struct txn_vec *v);
__attribute__((visibility("hidden"))) rvm_return_t txn_commit_stream(txn_vec_fn get, void *arg,
                                                                     size_t n);
/* txn_stream_ready -- 1 if txn_commit_stream can run now with every other thread parked
 * without waiting for one of them (log_stream.c says what is checked), else 0 */
__attribute__((visibility("hidden"))) int txn_stream_ready(void);
/* txn_stream_fits -- 1 if a record of size bytes can be placed in the log now, without
 * waiting for truncation to free space (growing the log if need be). A yes also tells the
 * calling thread's NEXT txn_commit_stream that the other threads are parked: it then never
 * waits for truncation (it grows the log instead) and only tries trunc_mu. Call it right
 * before that commit, with the threads still parked. */
__attribute__((visibility("hidden"))) int txn_stream_fits(uint64_t size);

#endif /* LRVM_CORE_TXN_H */
