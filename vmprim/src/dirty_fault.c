/* SPDX-License-Identifier: MIT */
/*
 * dirty_fault.c -- DIRTY backends that learn of a first write from a fault in the writing
 * thread: UFFD_SIGBUS (userfaultfd write-protect + UFFD_FEATURE_SIGBUS, opened with
 * UFFDIO_WRITEPROTECT) and MPROTECT (PROT_READ + SIGSEGV, opened with mprotect).
 *
 * Per page, three bits: `claimed` (a thread took responsibility for opening the page this
 * epoch), `written` (the page must be reported by the next collect) and `ready` (the opening
 * is complete: the page is writable). The protocol:
 *
 *   Opener (first-write fault, or prepare_write):
 *       claim (fetch_or); if another thread holds the claim, return and let the instruction
 *       retry. Otherwise: call the hook (page unchanged since the last collect), set written,
 *       make the page writable, set ready.
 *   Collect, per run of pages:
 *       take written (fetch_and); wait until each taken page is ready; re-protect the run;
 *       clear ready, then clear claimed; report the run.
 *
 * Why no write is ever lost -- the invariant is "a writable page has its written bit set, or
 * a collect that took the bit is in progress and will report the page":
 *  - The opener sets written *before* the page becomes writable. If it set it after (the
 *    intuitive order), another thread could write the freshly opened page, and a collect
 *    starting after that write completed would miss it while the opener is still on its way
 *    to setting the bit -- for as long as the opener is preempted. The 4-writer test caught
 *    exactly this in an earlier version of this file.
 *  - Collect takes written *before* re-protecting. A write slipping in between is a write
 *    this collect reports, and it is in memory when collect returns, because re-protection
 *    (mprotect, UFFDIO_WRITEPROTECT) flushes every CPU's TLB before it returns. Protecting
 *    first would let a writer fault, open the page and set a fresh bit that the take then
 *    clears, leaving the page writable and unrecorded.
 *  - Collect waits for ready before re-protecting: a taken page whose opener has not made it
 *    writable yet would otherwise be re-protected first and then opened by the late opener,
 *    again writable and unrecorded. The wait is short: the opener is one system call away.
 *  - Collect clears ready before claimed, and claimed only after re-protecting: until then a
 *    faulting writer loses the claim and retries, so the hook runs exactly once per page per
 *    epoch and always sees the page as of the last collect (the pre-image a checkpointer
 *    needs); and a new opener can only set ready after the old ready bit is gone.
 * Writes are never lost, but a page may be reported once without a write of its own (an
 * opener whose fault raced with a collect): the header allows that.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmprim_int.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Per-thread guard against a genuine fault on an open page (e.g. SIGBUS past the end of a
 * truncated memfd): such a fault would otherwise be retried forever. */
static __thread uintptr_t fault_last_addr __attribute__((tls_model("initial-exec")));
static __thread unsigned fault_repeats __attribute__((tls_model("initial-exec")));
#define FAULT_MAX_REPEATS 64

/* fault_open -- make [a, a+len) writable (async-signal-safe); 0 or errno */
static int fault_open(struct vmp_dirty *t, uintptr_t a, size_t len)
{
    if (t->backend == VMP_BACKEND_MPROTECT)
        return mprotect((void *)a, len, PROT_READ | PROT_WRITE) == 0 ? 0 : errno;
    return uffd_wp(t->uffd, (void *)a, len, 0);
}

/* fault_close -- re-protect [a, a+len); 0 or errno */
static int fault_close(struct vmp_dirty *t, uintptr_t a, size_t len)
{
    if (t->backend == VMP_BACKEND_MPROTECT)
        return mprotect((void *)a, len, PROT_READ) == 0 ? 0 : errno;
    return uffd_wp(t->uffd, (void *)a, len, 1);
}

/* fault_open_failed -- tell the user, from signal context, why a tracked page cannot be
 * opened; the fault is then passed on (and normally kills the process) */
static void fault_open_failed(struct vmp_dirty *t, uintptr_t page, int rc)
{
    char hex[24];
    trap_write_msg("vmprim: cannot make tracked page ");
    trap_write_msg(trap_fmt_hex(hex, page));
    if (t->backend == VMP_BACKEND_MPROTECT) {
        trap_write_msg(" writable: mprotect failed");
        if (rc == ENOMEM)
            trap_write_msg(" with ENOMEM: the process reached vm.max_map_count (per-page "
                           "protection splits mappings); use backend wp-async or raise "
                           "/proc/sys/vm/max_map_count");
    } else {
        trap_write_msg(" writable: UFFDIO_WRITEPROTECT failed");
    }
    trap_write_msg("\n");
}

/* fault_trap -- dispatcher callback for faults inside an armed range (signal context) */
static int fault_trap(void *addr, int sig, siginfo_t *si, void *uctx, void *arg)
{
    struct dirty_range *r = arg;
    struct vmp_dirty *t = r->owner;
    size_t ps = vmp_page_size();
    if (t->backend == VMP_BACKEND_MPROTECT ? (sig != SIGSEGV || si->si_code != SEGV_ACCERR)
                                           : sig != SIGBUS)
        return -1; /* not a protection fault of ours: pass it on */
    uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
    size_t i = (page - r->start) >> page_shift();
    uint64_t bit = (uint64_t)1 << (i & 63);
    _Atomic uint64_t *cw = &r->claimed[i >> 6], *ww = &r->written[i >> 6];
    _Atomic uint64_t *rw = &r->ready[i >> 6];

    if (atomic_fetch_or(cw, bit) & bit) {
        /* Someone else owns this epoch's opening, or a collect is closing the page. If the
         * page is open (ready and not taken by a collect) the fault was raised before it
         * opened and the retry succeeds -- unless it keeps faulting, which means the fault
         * is not a write-protect fault at all. */
        if ((atomic_load(rw) & bit) != 0 && (atomic_load(ww) & bit) != 0) {
            if (fault_last_addr == (uintptr_t)addr && ++fault_repeats >= FAULT_MAX_REPEATS) {
                fault_repeats = 0;
                return -1;
            }
            fault_last_addr = (uintptr_t)addr;
        } else {
            sched_yield(); /* opening or closing in another thread: let it finish */
        }
        return 0;
    }
    fault_repeats = 0;
    if (t->hook != NULL)
        t->hook((void *)page, t->hook_arg); /* page still holds last epoch's contents */
    atomic_fetch_or(ww, bit);               /* before the page is writable: see the essay above */
    int rc = fault_open(t, page, ps);
    atomic_fetch_or(rw, bit); /* even on failure, so that a collect never waits forever */
    if (rc != 0) {
        fault_open_failed(t, page, rc);
        return -1;
    }
    return 0;
}

/* fault_arm -- allocate the range's bits, route its faults to us, protect it */
int fault_arm(struct vmp_dirty *t, struct dirty_range *r)
{
    size_t nwords = (r->npages + 63) / 64;
    int rc;
    r->written = calloc(nwords, sizeof(*r->written));
    r->claimed = calloc(nwords, sizeof(*r->claimed));
    r->ready = calloc(nwords, sizeof(*r->ready));
    if (r->written == NULL || r->claimed == NULL || r->ready == NULL) {
        rc = dirty_set_err(t, ENOMEM, "cannot allocate the dirty bitmap for %zu pages", r->npages);
        goto fail;
    }
    rc = vmp_trap_register((void *)r->start, r->len, fault_trap, r, &r->trap_id);
    if (rc != 0) {
        dirty_set_err(t, rc, "cannot register the range with the fault dispatcher: %s%s",
                      strerror(rc), rc == ENOSPC ? " (VMP_TRAP_MAX_RANGES ranges in use)" : "");
        goto fail;
    }
    if (t->backend == VMP_BACKEND_MPROTECT) {
        if (mprotect((void *)r->start, r->len, PROT_READ) != 0) {
            rc = dirty_set_err(t, errno, "mprotect(%p, %zu, PROT_READ): %s", (void *)r->start,
                               r->len, strerror(errno));
            goto fail_trap;
        }
        return 0;
    }
    /* Without WP_UNPOPULATED (kernels before 6.4), write-protect does not cover pages that
     * were never touched: populate them first so that their first write faults. */
    if ((uffd_caps_get()->features & UFFD_FEATURE_WP_UNPOPULATED) == 0)
        madvise((void *)r->start, r->len, MADV_POPULATE_WRITE);
    rc = uffd_register_wp(t->uffd, (void *)r->start, r->len);
    if (rc != 0) {
        dirty_set_err(t, rc,
                      "uffd-sigbus: UFFDIO_REGISTER(%p, %zu): %s (memory must be private "
                      "anonymous or shared memfd/shmem, mapped read-write)",
                      (void *)r->start, r->len, strerror(rc));
        goto fail_trap;
    }
    rc = uffd_wp(t->uffd, (void *)r->start, r->len, 1);
    if (rc != 0) {
        dirty_set_err(t, rc, "uffd-sigbus: UFFDIO_WRITEPROTECT(%p, %zu): %s", (void *)r->start,
                      r->len, strerror(rc));
        uffd_unregister(t->uffd, (void *)r->start, r->len);
        goto fail_trap;
    }
    return 0;
fail_trap:
    vmp_trap_unregister(r->trap_id);
    r->trap_id = -1;
fail:
    free((void *)r->written);
    free((void *)r->claimed);
    free((void *)r->ready);
    r->written = r->claimed = r->ready = NULL;
    return rc;
}

/* fault_disarm -- open the whole range, then stop routing its faults (in this order, so a
 * write racing with disarm finds either our handler or a writable page) */
int fault_disarm(struct vmp_dirty *t, struct dirty_range *r)
{
    int rc = 0;
    if (t->backend == VMP_BACKEND_MPROTECT) {
        if (mprotect((void *)r->start, r->len, PROT_READ | PROT_WRITE) != 0)
            rc = dirty_set_err(t, errno, "mprotect(%p, %zu, PROT_READ|PROT_WRITE): %s",
                               (void *)r->start, r->len, strerror(errno));
    } else {
        rc = uffd_wp(t->uffd, (void *)r->start, r->len, 0);
        int rc2 = uffd_unregister(t->uffd, (void *)r->start, r->len);
        if (rc == 0)
            rc = rc2;
        if (rc != 0)
            dirty_set_err(t, rc, "uffd-sigbus: cannot disarm %p: %s", (void *)r->start,
                          strerror(rc));
    }
    if (r->trap_id >= 0)
        vmp_trap_unregister(r->trap_id);
    r->trap_id = -1;
    free((void *)r->written);
    free((void *)r->claimed);
    free((void *)r->ready);
    r->written = r->claimed = r->ready = NULL;
    return rc;
}

/* fault_bits_or / fault_bits_clear -- set or clear bits [i0, i0+n) of a bitmap */
static void fault_bits_op(_Atomic uint64_t *bm, size_t i0, size_t n, int set)
{
    while (n > 0) {
        size_t b = i0 & 63, k = 64 - b < n ? 64 - b : n;
        uint64_t m = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        if (set)
            atomic_fetch_or(&bm[i0 >> 6], m);
        else
            atomic_fetch_and(&bm[i0 >> 6], ~m);
        i0 += k;
        n -= k;
    }
}

/* fault_flush_run -- re-protect a run of taken pages, release their claims, report it */
static int fault_flush_run(struct vmp_dirty *t, struct dirty_range *r, size_t i0, size_t n,
                           vmp_run_fn fn, void *arg)
{
    unsigned sh = page_shift();
    uintptr_t a = r->start + (i0 << sh);
    /* Every taken page has an opener that set written; wait until it has opened the page. */
    for (size_t i = i0; i < i0 + n; i++)
        while ((atomic_load(&r->ready[i >> 6]) & ((uint64_t)1 << (i & 63))) == 0)
            sched_yield();
    int rc = fault_close(t, a, n << sh);
    if (rc != 0) {
        /* mprotect may have changed part of the run: open it all again so that the state
         * stays "open" (claimed, ready, written), and give the bits back so the next
         * collect reports these pages. */
        fault_open(t, a, n << sh);
        fault_bits_op(r->written, i0, n, 1);
        return dirty_set_err(t, rc, "%s: cannot re-protect %zu pages at %p: %s%s",
                             vmp_backend_name(t->backend), n, (void *)a, strerror(rc),
                             rc == ENOMEM && t->backend == VMP_BACKEND_MPROTECT
                                 ? " (vm.max_map_count reached: use wp-async or raise it)"
                                 : "");
    }
    fault_bits_op(r->ready, i0, n, 0); /* ready before claimed: see the essay */
    fault_bits_op(r->claimed, i0, n, 0);
    fn((void *)a, n, arg);
    return 0;
}

/* fault_collect -- take, re-protect and report written pages from bitmap word *word on */
int fault_collect(struct vmp_dirty *t, struct dirty_range *r, size_t *word, size_t *room,
                  vmp_run_fn fn, void *arg)
{
    size_t nwords = (r->npages + 63) / 64;
    size_t run0 = 0, runn = 0; /* pending run of taken pages (page indexes) */
    int rc = 0;
    size_t w = *word;
    for (; w<nwords && * room> 0; w++) {
        uint64_t v = atomic_load_explicit(&r->written[w], memory_order_relaxed);
        if (v == 0)
            continue;
        const uint64_t v0 = v;
        uint64_t take = v;
        size_t cnt = (size_t)__builtin_popcountll(v);
        if (*room != SIZE_MAX && cnt > *room) {
            /* keep only the lowest *room bits */
            take = 0;
            for (size_t k = 0; k < *room; k++) {
                uint64_t low = v & -v;
                take |= low;
                v &= v - 1;
            }
            cnt = *room;
        }
        /* Only collect clears written bits (and collects are serialised), so every bit of
         * take is still set: fetch_and takes exactly these pages. */
        atomic_fetch_and(&r->written[w], ~take);
        if (*room != SIZE_MAX)
            *room -= cnt;
        uint64_t rest = take;
        while (rest != 0) {
            unsigned b0 = (unsigned)__builtin_ctzll(rest);
            uint64_t shifted = rest >> b0;
            unsigned len = shifted == ~(uint64_t)0 ? 64 - b0 : (unsigned)__builtin_ctzll(~shifted);
            size_t i0 = w * 64 + b0;
            if (runn > 0 && run0 + runn == i0) {
                runn += len;
            } else {
                if (runn > 0 && (rc = fault_flush_run(t, r, run0, runn, fn, arg)) != 0)
                    goto out;
                run0 = i0;
                runn = len;
            }
            rest = len >= 64 ? 0 : rest & ~((((uint64_t)1 << len) - 1) << b0);
        }
        if (take != v0)
            break; /* word only partly taken (output full): resume at it */
    }
    if (runn > 0)
        rc = fault_flush_run(t, r, run0, runn, fn, arg);
out:
    *word = w;
    return rc;
}

/* fault_prepare -- open and record pages [a, b) of r before a kernel write into them */
int fault_prepare(struct vmp_dirty *t, struct dirty_range *r, uintptr_t a, uintptr_t b)
{
    unsigned sh = page_shift();
    size_t i = (a - r->start) >> sh, iend = (b - r->start) >> sh;
    size_t run0 = 0, runn = 0; /* pending run of pages we claimed */
    for (; i <= iend; i++) {
        int claimed_now = 0;
        if (i < iend) {
            uint64_t bit = (uint64_t)1 << (i & 63);
            if ((atomic_fetch_or(&r->claimed[i >> 6], bit) & bit) == 0) {
                claimed_now = 1;
                if (t->hook != NULL)
                    t->hook((void *)(r->start + (i << sh)), t->hook_arg);
                atomic_fetch_or(&r->written[i >> 6], bit); /* before it is writable */
            } else {
                /* We hold the tracker lock, so no collect is closing it: a fault handler
                 * is opening it right now. Wait for it to finish. */
                while ((atomic_load(&r->ready[i >> 6]) & bit) == 0)
                    sched_yield();
            }
        }
        if (claimed_now && runn > 0 && run0 + runn == i) {
            runn++;
            continue;
        }
        if (runn > 0) {
            uintptr_t ra = r->start + (run0 << sh);
            int rc = fault_open(t, ra, runn << sh);
            fault_bits_op(r->ready, run0, runn, 1);
            if (rc != 0)
                return dirty_set_err(t, rc, "%s: cannot make %zu pages at %p writable: %s%s",
                                     vmp_backend_name(t->backend), runn, (void *)ra, strerror(rc),
                                     rc == ENOMEM && t->backend == VMP_BACKEND_MPROTECT
                                         ? " (vm.max_map_count reached: use wp-async or "
                                           "raise it)"
                                         : "");
            runn = 0;
        }
        if (claimed_now) {
            run0 = i;
            runn = 1;
        }
    }
    return 0;
}

/*
 * fault_release -- give pages [a, b) of r back to the kernel (MADV_DONTNEED), keeping them
 * tracked.
 * MPROTECT: the protection belongs to the mapping, not to the page, and survives the
 * release: a protected released page still faults on its next write.
 * UFFD_SIGBUS: the write-protect bit lives in the page-table entry, which releasing an
 * anonymous page removes. The next write would then get a fresh writable page without any
 * fault -- a write nobody records, lost from every later commit. So every page that is not
 * open this epoch (claimed bit clear) is protected again: with WP_UNPOPULATED the kernel
 * keeps a marker in the empty entry, and the next write faults as before. An open page
 * (claimed) already has its written bit set: it stays writable, and the next collect reports
 * it and protects it then. The caller holds t->lock, so no collect or prepare changes the
 * bits meanwhile; no fault handler runs on these pages either (free memory is not written).
 */
int fault_release(struct vmp_dirty *t, struct dirty_range *r, uintptr_t a, uintptr_t b)
{
    if (t->backend == VMP_BACKEND_UFFD_SIGBUS &&
        (uffd_caps_get()->features & UFFD_FEATURE_WP_UNPOPULATED) == 0)
        return dirty_set_err(t, EOPNOTSUPP,
                             "uffd-sigbus: released pages cannot be protected "
                             "again on this kernel (no UFFD_FEATURE_WP_UNPOPULATED): kept");
    if (madvise((void *)a, b - a, MADV_DONTNEED) != 0)
        return dirty_set_err(t, errno, "madvise(%p, %zu, MADV_DONTNEED): %s", (void *)a, b - a,
                             strerror(errno));
    if (t->backend == VMP_BACKEND_MPROTECT)
        return 0;
    unsigned sh = page_shift();
    size_t i = (a - r->start) >> sh, iend = (b - r->start) >> sh;
    while (i < iend) {
        if (atomic_load(&r->claimed[i >> 6]) & ((uint64_t)1 << (i & 63))) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < iend && !(atomic_load(&r->claimed[j >> 6]) & ((uint64_t)1 << (j & 63))))
            j++;
        int rc = uffd_wp(t->uffd, (void *)(r->start + (i << sh)), (j - i) << sh, 1);
        if (rc != 0)
            return dirty_set_err(t, rc,
                                 "uffd-sigbus: cannot protect %zu released pages at %p "
                                 "again: %s",
                                 j - i, (void *)(r->start + (i << sh)), strerror(rc));
        i = j;
    }
    return 0;
}
