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

#include <rvm/rvm.h>

struct txn_vec {
    void *dest;
    const void *src;
    size_t len;
};

__attribute__((visibility("hidden")))
rvm_return_t txn_commit_vector(const struct txn_vec *v, size_t n, rvm_mode_t mode);

#endif /* LRVM_CORE_TXN_H */
