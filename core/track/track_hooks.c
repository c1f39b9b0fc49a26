/* SPDX-License-Identifier: MIT */
/*
 * track_hooks.c -- where tracking meets writes it does not make itself: the first-write hook
 * of the fault backends, kernel writes into tracked memory (rvm_track_prepare_write, the
 * lock words of robust mutexes) and memory given back to the kernel (rvm_track_release).
 * See track.h: "THE HOOK AND THE SAFEPOINT", "KERNEL WRITES", "ROBUST MUTEXES" and
 * "RELEASED MEMORY".
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "track_int.h"

/* set while this thread runs vmp_dirty_prepare_write (the hook is then not in a signal
 * handler); initial-exec: read from signal context */
static __thread int track_in_prepare __attribute__((tls_model("initial-exec")));

/*
 * track_hook -- first write to a page in this epoch (hook backends). The page still holds
 * its content as of the last collect.
 *
 * Safepoint interplay: in a fault, vmprim calls us, then sets the page's written bit, opens
 * the page, sets its ready bit; a collect that took the written bit waits for ready. A
 * thread parked by the safepoint inside that window would deadlock the committer's
 * collect. So, in a fault, we block LRVM_TRACK_SIGNAL here and leave it blocked: the
 * kernel restores the thread's mask when the fault handler returns (sigreturn). Parked
 * *before* this point is harmless: the page is claimed but not written, so the commit
 * taking the instant neither reports it nor waits for it, and the write has not happened.
 * From vmp_dirty_prepare_write (not a signal handler) we must not touch the mask; no
 * safepoint can run then anyway (prepare holds `kw` as a reader, the capture as writer).
 */
void track_hook(void *page, void *arg)
{
    (void)arg;
    if (!track_in_prepare) {
        sigset_t blk;
        sigemptyset(&blk);
        sigaddset(&blk, LRVM_TRACK_SIGNAL);
        pthread_sigmask(SIG_BLOCK, &blk, NULL);
    }
    struct track_region *r = track_find((uintptr_t)page);
    if (r == NULL)
        return;
    size_t i = (size_t)((char *)page - r->base) / track_ps();
    uint8_t s = track_st_load(r, i);
    for (;;) {
        unsigned state = s & TS_MASK;
        int b = (s & TF_SLOTB) != 0;
        if (state == TS_CLEAN) {
            /* memory == committed image: it becomes the twin (if the budget allows) --
             * unless the page was released (TF_LOST): then memory is not the committed
             * image, and the page is logged whole */
            uint8_t ns = (uint8_t)(TS_DIRTY | (s & TF_SLOTB));
            if (!(s & TF_LOST) && track_budget_take() == 0) {
                memcpy(track_slot(r, i, b), page, track_ps());
                track_slot_touched(r, i);
                ns |= TF_TWIN;
            }
            if (track_st_cas(r, i, &s, ns))
                break;
            if (ns & TF_TWIN)
                track_budget_give();
            continue;
        }
        if (state == TS_PENDING) {
            /* captured by the commit in flight and not yet diffed: keep its content at the
             * instant in the free slot before this write changes it */
            memcpy(track_slot(r, i, !b), page, track_ps());
            track_slot_touched(r, i);
            uint8_t ns = (uint8_t)(TS_SNAP | (s & (TF_TWIN | TF_SLOTB)));
            if (track_st_cas(r, i, &s, ns)) {
                atomic_fetch_add(&tracker.hook_snaps, 1);
                break;
            }
            continue; /* the differ finished it first (now CLEAN): take the CLEAN path */
        }
        break; /* DIRTY/SNAP: the twin already holds the committed image */
    }
}

/* the kernel's robust-list layout (linux/futex.h) */
struct track_robust_entry {
    struct track_robust_entry *next;
};
struct track_robust_head {
    struct track_robust_entry list;
    long futex_offset;
    struct track_robust_entry *pending;
};

/* track_robust_open_word -- open the page of a lock word if it is tracked (ROBUST MUTEXES) */
static void track_robust_open_word(uintptr_t entry, long off)
{
    uintptr_t w = (entry & ~(uintptr_t)1) + (uintptr_t)off;
    if (entry == 0 || track_find(w) == NULL)
        return;
    track_in_prepare = 1; /* not in a fault handler: the hook leaves the mask alone */
    vmp_dirty_prepare_write(tracker.dirty, (void *)w, sizeof(uint32_t));
    track_in_prepare = 0;
}

/* track_robust_thread -- the robust list of a parked thread (or this one): open its lock
 * words' pages. The list lives in the thread's descriptor and its mutexes; both are only
 * read, and cannot change: the thread is parked. At most 4096 entries (the kernel's own
 * limit is 2048). */
void track_robust_thread(pid_t tid, void *arg)
{
    (void)arg;
    struct track_robust_head *h = NULL;
    size_t len = 0;
    if (syscall(SYS_get_robust_list, tid, &h, &len) != 0 || h == NULL || len != sizeof(*h))
        return;
    struct track_robust_entry *e = h->list.next;
    for (unsigned n = 0; e != NULL && e != &h->list && n < 4096; n++) {
        track_robust_open_word((uintptr_t)e, h->futex_offset);
        e = (struct track_robust_entry *)((uintptr_t)e->next & ~(uintptr_t)1);
    }
    track_robust_open_word((uintptr_t)h->pending, h->futex_offset);
}

/* track_commit -- rvm_commit (see track.h) */

/* track_prepare_write -- before a kernel write into tracked memory */
rvm_return_t track_prepare_write(void *addr, size_t len)
{
    if (tracker.dirty == NULL || len == 0)
        return RVM_SUCCESS;
    pthread_rwlock_rdlock(&tracker.kw);
    track_in_prepare = 1;
    int e = vmp_dirty_prepare_write(tracker.dirty, addr, len);
    track_in_prepare = 0;
    pthread_rwlock_unlock(&tracker.kw);
    if (e != 0)
        return track_err(RVM_EINTERNAL, "rvm_track_prepare_write(%p, %zu): %s (%s)", addr, len,
                         strerror(e), vmp_dirty_errmsg(tracker.dirty));
    return RVM_SUCCESS;
}

/* track_release_region -- mark the CLEAN twinless pages of [lo, hi) of r TF_LOST (hook
 * backends; tracker.mu held, so no commit is in flight and pages are CLEAN or DIRTY) */
static void track_release_region(struct track_region *r, uintptr_t lo, uintptr_t hi)
{
    size_t ps = track_ps();
    for (size_t i = (lo - (uintptr_t)r->base) / ps; i < (hi - (uintptr_t)r->base) / ps; i++) {
        uint8_t s = track_st_load(r, i);
        /* CAS: a fault in another thread may take the page CLEAN -> DIRTY meanwhile (a
         * write into free memory: then it keeps what it did, a twin of released memory
         * is no worse than the write itself) */
        while ((s & TS_MASK) == TS_CLEAN && !(s & (TF_TWIN | TF_LOST)) &&
               !track_st_cas(r, i, &s, (uint8_t)(s | TF_LOST)))
            ;
    }
}

/* release_locked -- track_release's work on the whole pages [a, b) (tracker.mu held; it
 * is released here) */
static rvm_return_t release_locked(uintptr_t a, uintptr_t b, void *addr, size_t len)
{
    size_t ps = track_ps();
    if (tracker.dirty == NULL || tracker.pid != getpid()) {
        /* nothing tracked here (or a fork child's plain copy) */
        pthread_mutex_unlock(&tracker.mu);
        return madvise((void *)a, b - a, MADV_DONTNEED) == 0
                   ? RVM_SUCCESS
                   : track_err(RVM_EINTERNAL, "rvm_track_release(%p, %zu): madvise: %s", addr, len,
                               strerror(errno));
    }
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r == NULL)
            continue;
        uintptr_t lo = a > (uintptr_t)r->base ? a : (uintptr_t)r->base;
        uintptr_t rend = (uintptr_t)r->base + r->npages * ps;
        uintptr_t hi = b < rend ? b : rend;
        if (lo >= hi)
            continue;
        if (!tracker.hook_backend) {
            /* wp-async: a page written, then precopied, then released is not captured from
             * its copy; without the precopy its write would have left the dirty set with the
             * release too (PRECOPY in track_capture.c) */
            track_precopy_forget(r, (lo - (uintptr_t)r->base) / ps, (hi - (uintptr_t)r->base) / ps);
            continue;
        }
        /* a partial last page of the region is left alone: its tail is not ours */
        if (hi == rend && r->len % ps)
            hi -= ps;
        if (lo < hi)
            track_release_region(r, lo, hi);
    }
    int e = vmp_dirty_release(tracker.dirty, (void *)a, b - a);
    pthread_mutex_unlock(&tracker.mu);
    if (e == EOPNOTSUPP)
        return RVM_SUCCESS; /* kept resident, still tracked: nothing changed */
    if (e != 0)
        return track_err(RVM_EINTERNAL, "rvm_track_release(%p, %zu): %s (%s)", addr, len,
                         strerror(e), vmp_dirty_errmsg(tracker.dirty));
    return RVM_SUCCESS;
}

/* release_span -- the whole pages of [addr, addr+len); 0 if there are none */
static int release_span(void *addr, size_t len, uintptr_t *a, uintptr_t *b)
{
    size_t ps = track_ps();
    *a = ((uintptr_t)addr + ps - 1) & ~(uintptr_t)(ps - 1);
    *b = ((uintptr_t)addr + len) & ~(uintptr_t)(ps - 1);
    return len != 0 && *b > *a;
}

/* track_release -- give whole pages of [addr, addr+len) back to the kernel (RELEASED MEMORY
 * in track.h); memory outside tracked regions is released too */
rvm_return_t track_release(void *addr, size_t len)
{
    uintptr_t a, b;
    if (!release_span(addr, len, &a, &b))
        return RVM_SUCCESS;
    pthread_mutex_lock(&tracker.mu);
    return release_locked(a, b, addr, len);
}

/* track_release_try -- see track.h */
int track_release_try(void *addr, size_t len)
{
    uintptr_t a, b;
    if (!release_span(addr, len, &a, &b))
        return 0;
    if (pthread_mutex_trylock(&tracker.mu) != 0)
        return EAGAIN;
    return release_locked(a, b, addr, len) == RVM_SUCCESS ? 0 : EIO;
}
