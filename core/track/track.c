/* SPDX-License-Identifier: MIT */
/*
 * track.c -- tracked regions, first-write hook, commit pipeline, twins (see track.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rvm_int.h"
#include "sysio.h"
#include "observer.h"
#include "track.h"

struct track_state T = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .kw = PTHREAD_RWLOCK_INITIALIZER,
    .flush = 1,
};

static char track_msg[512];


/* regions published in T.regions (track_note_commit's fast path: none tracked) */
static atomic_int track_published;

/* commit output, reused across commits (grown outside the pause only) */
static char *out_data;
static size_t out_len, out_cap;
static struct track_range *out_r;
static size_t out_n, out_rcap;
static struct track_run *run_buf;
/* zero-copy emission (a final commit written while the threads are parked): ranges point at
 * the tracked memory itself, out_data is not used */
static int emit_zc;

/* track_err -- record a message for rvm_errmsg and return code */
static rvm_return_t track_err(rvm_return_t code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static rvm_return_t track_err(rvm_return_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(track_msg, sizeof(track_msg), fmt, ap);
    va_end(ap);
    err_set(code, "%s", track_msg);     /* rvm_errmsg, as for every core failure */
    return code;
}

/* track_errmsg -- message of the last failure */
const char *track_errmsg(void)
{
    return track_msg;
}

/* track_now_ns -- monotonic nanoseconds */
static uint64_t track_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* track_ps -- the page size */
static size_t track_ps(void)
{
    return vmp_page_size();
}

/* track_slot -- slot A (b == 0) or B of page i of r */
static char *track_slot(const struct track_region *r, size_t i, int b)
{
    return r->slots + ((b ? r->npages : 0) + i) * track_ps();
}

/* track_page_len -- bytes of page i that belong to the region (the last may be partial) */
static size_t track_page_len(const struct track_region *r, size_t i)
{
    uint64_t start = (uint64_t)i * track_ps();
    uint64_t left = r->len - start;
    return left < track_ps() ? (size_t)left : track_ps();
}

/*
 * Per-page state accessors. In a lazy-twin region (file_fd >= 0 with wp-async) the TF_FILE
 * bit is stored inverted (st_xor == TF_FILE), so that "TF_FILE, clean, no twin" -- the state
 * of every page at rvm_track -- is the all-zero byte: the state array comes zeroed from
 * calloc (mmap'ed pages for large regions) and pages of it that are never touched are never
 * resident. Every access goes through these three functions; the logic above and below
 * sees the logical state only.
 */

/* track_st_load -- logical state of page i */
static inline uint8_t track_st_load(const struct track_region *r, size_t i)
{
    return (uint8_t)(atomic_load(&r->st[i]) ^ r->st_xor);
}

/* track_st_store -- set the logical state of page i */
static inline void track_st_store(struct track_region *r, size_t i, uint8_t v)
{
    atomic_store(&r->st[i], (uint8_t)(v ^ r->st_xor));
}

/* track_st_cas -- compare-and-swap of the logical state (acq_rel; *expect updated on
 * failure, as atomic_compare_exchange_strong does) */
static inline int track_st_cas(struct track_region *r, size_t i, uint8_t *expect, uint8_t v)
{
    uint8_t e = (uint8_t)(*expect ^ r->st_xor);
    if (atomic_compare_exchange_strong_explicit(&r->st[i], &e, (uint8_t)(v ^ r->st_xor),
                                                memory_order_acq_rel, memory_order_acquire))
        return 1;
    *expect = (uint8_t)(e ^ r->st_xor);
    return 0;
}

/* track_budget_take -- reserve one twin page under the budget; 0 or -1 (async-signal-safe) */
static int track_budget_take(void)
{
    uint64_t n = atomic_fetch_add(&T.twin_pages, 1);
    if (n < T.budget_pages)
        return 0;
    atomic_fetch_sub(&T.twin_pages, 1);
    return -1;
}

/* track_budget_give -- release one twin page */
static void track_budget_give(void)
{
    atomic_fetch_sub(&T.twin_pages, 1);
}

/* track_find -- the tracked region holding address a (async-signal-safe, lock-free) */
static struct track_region *track_find(uintptr_t a)
{
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r != NULL && a >= (uintptr_t)r->base && a < (uintptr_t)r->base + r->npages * track_ps())
            return r;
    }
    return NULL;
}

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
static void track_hook(void *page, void *arg)
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
                atomic_fetch_add(&T.slot_touches, 1);
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
            atomic_fetch_add(&T.slot_touches, 1);
            uint8_t ns = (uint8_t)(TS_SNAP | (s & (TF_TWIN | TF_SLOTB)));
            if (track_st_cas(r, i, &s, ns)) {
                atomic_fetch_add(&T.hook_snaps, 1);
                break;
            }
            continue;   /* the differ finished it first (now CLEAN): take the CLEAN path */
        }
        break;  /* DIRTY/SNAP: the twin already holds the committed image */
    }
}

/* track_defaults -- fill unset configuration */
static void track_defaults(void)
{
    if (T.configured)
        return;
    T.want_backend = VMP_BACKEND_AUTO;
    T.budget_pages = TRACK_DEFAULT_BUDGET / track_ps();
    T.merge_gap = TRACK_DEFAULT_GAP;
    T.configured = 1;
}

/* track_nregions -- number of tracked regions (mu held) */
static size_t track_nregions(void)
{
    size_t n = 0;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++)
        if (atomic_load(&T.regions[k]) != NULL)
            n++;
    return n;
}

/* track_configure -- set backend, budget, gap (no region tracked) */
rvm_return_t track_configure(const rvm_track_options_t *o)
{
    if (o == NULL)
        return track_err(RVM_EOPTIONS, "rvm_track_configure: options pointer is NULL");
    vmp_backend_t b = VMP_BACKEND_AUTO;
    if (o->backend != NULL && vmp_backend_parse(o->backend, &b) != 0)
        return track_err(RVM_EOPTIONS, "rvm_track_configure: unknown backend \"%s\" (use "
                         "auto, wp-async, uffd-sigbus or mprotect)", o->backend);
    if (b != VMP_BACKEND_AUTO) {
        char why[256] = "";
        if (vmp_backend_probe(b, why, sizeof(why)) != 0)
            return track_err(RVM_EOPTIONS, "rvm_track_configure: backend %s is not usable "
                             "here: %s", vmp_backend_name(b), why);
    }
    pthread_mutex_lock(&T.mu);
    if (track_nregions() > 0) {
        pthread_mutex_unlock(&T.mu);
        return track_err(RVM_EUNCOMMIT, "rvm_track_configure: regions are tracked; untrack "
                         "them first");
    }
    if (T.dirty != NULL) {
        vmp_dirty_destroy(T.dirty);
        T.dirty = NULL;
    }
    T.want_backend = b;
    T.budget_pages = (o->twin_budget ? o->twin_budget : TRACK_DEFAULT_BUDGET) / track_ps();
    T.merge_gap = o->merge_gap ? (unsigned)o->merge_gap : TRACK_DEFAULT_GAP;
    T.configured = 1;
    pthread_mutex_unlock(&T.mu);
    return RVM_SUCCESS;
}

/* track_set_sink -- where commits go */
void track_set_sink(track_sink_fn fn, void *arg)
{
    pthread_mutex_lock(&T.mu);
    T.sink = fn;
    T.sink_arg = arg;
    pthread_mutex_unlock(&T.mu);
}

/* track_region_free -- release a region's memory (it is no longer reachable) */
static void track_region_free(struct track_region *r)
{
    if (r->slots != NULL && r->slots != MAP_FAILED)
        munmap(r->slots, 2 * r->npages * track_ps());
    free((void *)r->st);
    free(r->seen);
    free((void *)r->carry);
    free(r);
}

/* track_plist_grow -- room for every page of every tracked region (mu held), so the pause
 * never allocates */
static int track_plist_grow(size_t need)
{
    if (need <= T.plist_cap)
        return 0;
    uint64_t *p = realloc(T.plist, need * sizeof(*p));
    if (p == NULL)
        return -1;
    T.plist = p;
    T.plist_cap = need;
    return 0;
}

/* The engine events tracking acts on (observer.h). Registered with the first tracked
 * region: before it, every one of them would be a no-op. */
static const struct engine_observer track_observer = {
    .committed_range = track_note_commit,
    .before_unmap = track_on_unmap,
    .before_terminate = track_on_terminate,
};

/* track_region_add -- start tracking region (rvm_track) */
rvm_return_t track_region_add(rvm_region_t *region)
{
    return track_region_add_sparse(region, UINT64_MAX);
}

/* track_region_add_sparse -- see track.h */
rvm_return_t track_region_add_sparse(rvm_region_t *region, uint64_t wp_len)
{
    engine_observe(&track_observer);
    size_t ps = track_ps();
    if (region == NULL || region->struct_id != rvm_region_id)
        return track_err(RVM_EREGION, "rvm_track: not a region descriptor (initialise it "
                         "with rvm_init_region and map it with rvm_map)");
    if (region->vmaddr == NULL || region->length == 0 ||
        ((uintptr_t)region->vmaddr & (ps - 1)) != 0)
        return track_err(RVM_ERANGE, "rvm_track: region at %p, length %lu: vmaddr must be "
                         "page aligned and length > 0 (map the region with rvm_map first)",
                         (void *)region->vmaddr, (unsigned long)region->length);
    if (region->offset.high != 0)
        return track_err(RVM_EOFFSET, "rvm_track: region offset does not fit in 64 bits");
    int priv = 0;
    if (T.sink == NULL) {   /* committing through core: the region must be rvm_map'ed */
        rvm_return_t m = track_core_check_mapped(region->vmaddr, region->length, &priv);
        if (m != RVM_SUCCESS)
            return track_err(m, "rvm_track: region at %p (%lu bytes): %s",
                             (void *)region->vmaddr, (unsigned long)region->length,
                             m == RVM_EINIT ? "not mapped: call rvm_initialize and rvm_map "
                                              "first"
                                            : "not mapped: map it with rvm_map first");
    }
    pthread_mutex_lock(&T.mu);
    track_defaults();
    rvm_return_t rc = RVM_SUCCESS;
    uintptr_t a = (uintptr_t)region->vmaddr;
    size_t npages = (region->length + ps - 1) / ps;
    int slot = -1;
    for (int k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *o = atomic_load(&T.regions[k]);
        if (o == NULL) {
            if (slot < 0)
                slot = k;
            continue;
        }
        if (a < (uintptr_t)o->base + o->npages * ps && (uintptr_t)o->base < a + npages * ps) {
            pthread_mutex_unlock(&T.mu);
            return track_err(RVM_EOVERLAP, "rvm_track: region at %p is already tracked or "
                             "overlaps the tracked region at %p", (void *)a, (void *)o->base);
        }
    }
    if (slot < 0) {
        pthread_mutex_unlock(&T.mu);
        return track_err(RVM_ETOO_BIG, "rvm_track: %d regions are tracked already (the "
                         "limit); untrack one first", TRACK_MAX_REGIONS);
    }
    if (T.dirty == NULL) {
        vmp_dirty_opts_t o = {.backend = T.want_backend};
        vmp_dirty_t *d = NULL;
        int e = vmp_dirty_create(&o, &d);
        if (e == 0 && vmp_dirty_backend(d) != VMP_BACKEND_WP_ASYNC) {
            /* the fault backends notify the first write: recreate with our hook */
            vmp_backend_t b = vmp_dirty_backend(d);
            vmp_dirty_destroy(d);
            d = NULL;
            vmp_dirty_opts_t o2 = {.backend = b, .hook = track_hook};
            e = vmp_dirty_create(&o2, &d);
        }
        if (e != 0) {
            char why[256] = "";
            vmp_backend_probe(T.want_backend == VMP_BACKEND_AUTO ? VMP_BACKEND_MPROTECT
                                                                 : T.want_backend,
                              why, sizeof(why));
            pthread_mutex_unlock(&T.mu);
            return track_err(RVM_EINTERNAL, "rvm_track: cannot create the DIRTY tracker "
                             "(backend %s): %s %s", vmp_backend_name(T.want_backend),
                             strerror(e), why);
        }
        T.dirty = d;
        T.pid = getpid();
        T.backend = vmp_dirty_backend(d);
        T.hook_backend = T.backend != VMP_BACKEND_WP_ASYNC;
        snprintf(T.st.backend, sizeof(T.st.backend), "%s", vmp_backend_name(T.backend));
    }

    if (priv && T.hook_backend) {
        /* a file mapping rvm_map chose by itself becomes anonymous memory here (the fault
         * backends need that); one the program asked for is refused below */
        rvm_return_t m = track_core_unfile(region->vmaddr, region->length, &priv);
        if (m != RVM_SUCCESS) {
            pthread_mutex_unlock(&T.mu);
            return track_err(m, "rvm_track: region at %p: %s", (void *)region->vmaddr,
                             rvm_errmsg);
        }
    }
    if (priv && T.hook_backend) {
        pthread_mutex_unlock(&T.mu);
        return track_err(RVM_EREGION, "rvm_track: region at %p is mapped with RVM_MAP_PRIVATE "
                         "(a file mapping), which only the wp-async backend can track (this "
                         "process uses %s): map it without that flag", (void *)region->vmaddr,
                         vmp_backend_name(T.backend));
    }
    int file_fd = -1;
    if (!T.hook_backend && T.sink == NULL) {
        /* lazy twins (track.h, "LAZY TWINS"): settles the segment first */
        rvm_return_t m = track_core_file_image(region->vmaddr, region->length, &file_fd);
        if (m != RVM_SUCCESS) {
            pthread_mutex_unlock(&T.mu);
            return track_err(m, "rvm_track: cannot bring segment of region %p up to date "
                             "before tracking: %s", (void *)region->vmaddr, rvm_errmsg);
        }
    }
    struct track_region *r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto nomem;
    r->file_fd = file_fd;
    r->pub = region;
    r->base = region->vmaddr;
    r->len = region->length;
    r->npages = npages;
    r->seg_off = region->offset.low;    /* high is 0: checked by the caller */
    r->nwords = (npages + 63) / 64;
    r->st = calloc(npages, 1);
    r->seen = calloc(npages, sizeof(*r->seen));
    r->carry = calloc(r->nwords, sizeof(uint64_t));
    r->slots = mmap(NULL, 2 * npages * ps, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    size_t tracked_pages = npages;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *o = atomic_load(&T.regions[k]);
        tracked_pages += o != NULL ? o->npages : 0;
    }
    if (r->st == NULL || r->seen == NULL || r->carry == NULL || r->slots == MAP_FAILED ||
        track_plist_grow(tracked_pages) != 0) {
        track_region_free(r);
        goto nomem;
    }
    /* 4 KiB pages for the slots: a transparent huge page would make the first copy into a
     * slot zero 2 MiB (in a fault handler, or in the pause), and slots are used sparsely */
    madvise(r->slots, 2 * npages * ps, MADV_NOHUGEPAGE);
    if (!T.hook_backend && file_fd >= 0) {
        /* wp-async, memory made from the segment: every page starts lazy. TF_FILE is
         * stored inverted in such a region (track_st_load), so the all-zero array calloc
         * returned already says TF_FILE everywhere: a memset here touched one byte per
         * page, 4 MiB for the shim's 16 GiB heap reservation, in every process. */
        r->st_xor = TF_FILE;
    } else if (!T.hook_backend) {
        /* wp-async on no_copy memory: no hook, so the twins must exist before the first
         * write */
        for (size_t i = 0; i < npages; i++) {
            if (track_budget_take() != 0)
                break;
            memcpy(track_slot(r, i, 0), r->base + i * ps, track_page_len(r, i));
            atomic_fetch_add(&T.slot_touches, 1);
            track_st_store(r, i, TF_TWIN);
        }
    }
    /* publish before arming: a fault after arming must find the region */
    atomic_store(&T.regions[slot], r);
    atomic_fetch_add(&track_published, 1);
    int e = vmp_dirty_arm_sparse(T.dirty, r->base, npages * ps,
                                 wp_len < npages * ps ? (size_t)wp_len : npages * ps);
    if (e != 0) {
        atomic_store(&T.regions[slot], NULL);
        atomic_fetch_sub(&track_published, 1);
        for (size_t i = 0; i < npages; i++)
            if (track_st_load(r, i) & TF_TWIN)
                track_budget_give();
        rc = track_err(e == EINVAL ? RVM_EOVERLAP : RVM_EINTERNAL, "rvm_track: cannot arm "
                       "region at %p (%zu pages) with backend %s: %s (%s)", (void *)r->base,
                       npages, vmp_backend_name(T.backend), strerror(e),
                       vmp_dirty_errmsg(T.dirty));
        track_region_free(r);
    }
    pthread_mutex_unlock(&T.mu);
    return rc;
nomem:
    pthread_mutex_unlock(&T.mu);
    return track_err(RVM_ENO_MEMORY, "rvm_track: out of memory for the state of a %zu-page "
                     "region (needs 2 x its size of reserved virtual memory)", npages);
}

static const char *track_file_image(struct track_region *r, size_t i);

/* track_collect_cb -- vmprim run callback: remember collected pages in the carry bitmaps */
static void track_collect_cb(void *start, size_t npages, void *arg)
{
    (void)arg;
    size_t ps = track_ps();
    for (size_t j = 0; j < npages; j++) {
        uintptr_t p = (uintptr_t)start + j * ps;
        struct track_region *r = track_find(p);
        if (r == NULL)
            continue;
        size_t i = (p - (uintptr_t)r->base) / ps;
        atomic_fetch_or(&r->carry[i / 64], (uint64_t)1 << (i % 64));
    }
}

/* track_region_changed -- does r hold changes not yet committed? (mu held; collects into
 * the carry bitmap first, so the next commit still sees every page) */
static int track_region_changed(struct track_region *r)
{
    size_t ps = track_ps();
    if (vmp_dirty_collect_runs(T.dirty, track_collect_cb, NULL) != 0)
        return 1;   /* cannot tell: say changed */
    for (size_t i = 0; i < r->npages; i++) {
        uint8_t s = track_st_load(r, i);
        int carried = (atomic_load(&r->carry[i / 64]) >> (i % 64)) & 1;
        if (!carried && (s & TS_MASK) == TS_CLEAN)
            continue;
        const char *twin = (s & TF_TWIN) ? track_slot(r, i, (s & TF_SLOTB) != 0)
                           : (s & TF_FILE) ? track_file_image(r, i) : NULL;
        if (twin == NULL || memcmp(r->base + i * ps, twin, track_page_len(r, i)) != 0)
            return 1;
    }
    return 0;
}


/* track_region_drop -- stop tracking region slot k (T.mu held): disarm first (vmprim waits
 * for running fault handlers, so none uses r afterwards), then return its twins' budget */
static void track_region_drop(size_t k, struct track_region *r)
{
    vmp_dirty_disarm(T.dirty, r->base);
    atomic_store(&T.regions[k], NULL);
    atomic_fetch_sub(&track_published, 1);
    for (size_t i = 0; i < r->npages; i++)
        if (track_st_load(r, i) & TF_TWIN)
            track_budget_give();
    track_region_free(r);
}
/* track_region_remove -- stop tracking (rvm_untrack; implicit: from rvm_unmap) */
rvm_return_t track_region_remove(const rvm_region_t *region, int implicit)
{
    const char *who = implicit ? "rvm_unmap" : "rvm_untrack";
    if (region == NULL)
        return track_err(RVM_EREGION, "%s: region pointer is NULL", who);
    pthread_mutex_lock(&T.mu);
    int k;
    struct track_region *r = NULL;
    for (k = 0; k < TRACK_MAX_REGIONS; k++) {
        r = atomic_load(&T.regions[k]);
        if (r != NULL && r->base == region->vmaddr)
            break;
    }
    if (k == TRACK_MAX_REGIONS) {
        pthread_mutex_unlock(&T.mu);
        return track_err(RVM_EREGION, "%s: region at %p is not tracked", who,
                         (void *)region->vmaddr);
    }
    if (track_region_changed(r)) {
        pthread_mutex_unlock(&T.mu);
        return track_err(RVM_EUNCOMMIT, "%s: tracked region at %p has changes not yet "
                         "committed: call rvm_commit first (the region stays tracked)", who,
                         (void *)region->vmaddr);
    }
    track_region_drop(k, r);
    pthread_mutex_unlock(&T.mu);
    return RVM_SUCCESS;
}

/* track_on_terminate -- see track.h */
rvm_return_t track_on_terminate(void)
{
    pthread_mutex_lock(&T.mu);
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r != NULL && track_region_changed(r)) {
            pthread_mutex_unlock(&T.mu);
            return track_err(RVM_EUNCOMMIT, "rvm_terminate: tracked region at %p has changes "
                             "not yet committed: call rvm_commit first", (void *)r->base);
        }
    }
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r == NULL)
            continue;
        track_region_drop(k, r);
    }
    pthread_mutex_unlock(&T.mu);
    return RVM_SUCCESS;
}

/* track_on_unmap -- rvm_unmap of [addr, addr+len): the unmap rule (see track.h) */
rvm_return_t track_on_unmap(const void *addr, uint64_t len)
{
    (void)len;
    rvm_region_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.vmaddr = (char *)addr;
    rvm_return_t rc = track_region_remove(&tmp, 1);
    return rc == RVM_EREGION ? RVM_SUCCESS : rc;    /* not tracked: nothing to do */
}

/* track_out_reserve -- room for `bytes` more data and one more range */
static int track_out_reserve(size_t bytes)
{
    if (out_len + bytes > out_cap &&
        mmap_buf_grow((void **)&out_data, &out_cap, out_len + bytes, 1 << 16) != 0)
        return -1;
    if (out_n + 1 > out_rcap) {
        size_t bytes_r = out_rcap * sizeof(*out_r);
        if (mmap_buf_grow((void **)&out_r, &bytes_r, (out_n + 1) * sizeof(*out_r),
                           1024 * sizeof(*out_r)) != 0)
            return -1;
        out_rcap = bytes_r / sizeof(*out_r);
    }
    return 0;
}

/* track_emit -- append n bytes at segment offset off of r (data from src); joins a range
 * that ends exactly where this one starts. src is kept as an offset into out_data until
 * the record is complete (out_data may move). */
static int track_emit(struct track_region *r, uint64_t off, const char *src, size_t n)
{
    if (emit_zc) {
        if (track_out_reserve(0) != 0)
            return -1;
        struct track_range *l = out_n > 0 ? &out_r[out_n - 1] : NULL;
        if (l != NULL && l->cookie == r->pub && l->off + l->len == off && l->src + l->len == src) {
            l->len += n;
            return 0;
        }
        out_r[out_n++] = (struct track_range){.cookie = r->pub, .dest = r->base + (off - r->seg_off),
                                              .off = off, .len = n, .src = src};
        return 0;
    }
    if (track_out_reserve(n) != 0)
        return -1;
    if (out_n > 0) {
        struct track_range *l = &out_r[out_n - 1];
        if (l->cookie == r->pub && l->off + l->len == off &&
            (uintptr_t)l->src + l->len == out_len) {
            memcpy(out_data + out_len, src, n);
            out_len += n;
            l->len += n;
            return 0;
        }
    }
    out_r[out_n].cookie = r->pub;
    out_r[out_n].dest = r->base + (off - r->seg_off);
    out_r[out_n].off = off;
    out_r[out_n].len = n;
    out_r[out_n].src = (const char *)(uintptr_t)out_len;
    out_n++;
    memcpy(out_data + out_len, src, n);
    out_len += n;
    return 0;
}

/* track_out_materialize -- turn zero-copy ranges (src: the memory) into ordinary ones (src:
 * an offset into out_data, the bytes copied there); mmap only, so it may run in the pause */
static int track_out_materialize(void)
{
    size_t total = 0;
    for (size_t k = 0; k < out_n; k++)
        total += out_r[k].len;
    out_len = 0;
    if (total > out_cap && mmap_buf_grow((void **)&out_data, &out_cap, total, 1 << 16) != 0)
        return -1;
    for (size_t k = 0; k < out_n; k++) {
        memcpy(out_data + out_len, out_r[k].src, out_r[k].len);
        out_r[k].src = (const char *)(uintptr_t)out_len;
        out_len += out_r[k].len;
    }
    return 0;
}

/* track_emit_page -- emit the changes of page i (content cur, committed image old or NULL
 * for "log it whole") */
static int track_emit_page(struct track_region *r, size_t i, const char *cur, const char *old)
{
    size_t plen = track_page_len(r, i);
    uint64_t off = r->seg_off + (uint64_t)i * track_ps();
    T.st.bytes_diffed += old ? plen : 0;
    if (old == NULL) {
        T.st.whole_pages++;
        return track_emit(r, off, cur, plen);
    }
    size_t n = track_diff_page(cur, old, plen, T.merge_gap, run_buf);
    for (size_t k = 0; k < n; k++)
        if (track_emit(r, off + run_buf[k].off, cur + run_buf[k].off, run_buf[k].len) != 0)
            return -1;
    return 0;
}

/*
 * track_evict_one -- wp-async beyond the budget: take the twin of a page that was not
 * dirty in the last two commits (CLOCK over all regions, at most 512 pages looked at), so
 * that pages written now get twins and pages no longer written lose theirs (an
 * approximate LRU). The page keeps being tracked: without a twin it is logged whole if it
 * is ever written again. Only for wp-async, where no hook touches states concurrently
 * (mu held). Returns 0 if a twin was freed and its budget handed to the caller.
 */
static int track_evict_one(void)
{
    for (unsigned n = 0; n < 512; n++) {
        struct track_region *r = atomic_load(&T.regions[T.clock_k]);
        if (r == NULL || T.clock_i >= r->npages) {
            T.clock_k = (T.clock_k + 1) % TRACK_MAX_REGIONS;
            T.clock_i = 0;
            continue;
        }
        size_t i = T.clock_i++;
        uint8_t s = track_st_load(r, i);
        if ((s & TF_TWIN) && (s & TS_MASK) == TS_CLEAN && r->seen[i] + 2 <= T.ncaptures) {
            track_st_store(r, i, (uint8_t)(s & ~TF_TWIN));
            return 0;   /* its budget unit passes to the caller */
        }
    }
    return -1;
}

/* track_keep_snapshot -- after diffing a SNAP page: its snapshot becomes the twin if it had
 * one or the budget allows; returns the new flag bits */
static uint8_t track_keep_snapshot(uint8_t s)
{
    uint8_t flipped = (uint8_t)((s & TF_SLOTB) ^ TF_SLOTB);
    if (s & TF_TWIN)
        return (uint8_t)(TF_TWIN | flipped);
    if (track_budget_take() == 0 || (!T.hook_backend && track_evict_one() == 0))
        return (uint8_t)(TF_TWIN | flipped);
    return (uint8_t)(s & TF_SLOTB);
}

/* scratch page for pre-images read from the segment (T.mu held by every user) */
static char *file_page;

/* track_file_image -- the committed image of TF_FILE page i of r, read from the segment into
 * a scratch page (valid until the next call); NULL if it cannot be read: the caller then
 * logs the page whole, which is always correct. Beyond the file's end the image is zeros
 * (the file grows only by preallocation, never by a commit). */
static const char *track_file_image(struct track_region *r, size_t i)
{
    size_t ps = track_ps(), plen = track_page_len(r, i), got = 0;
    if (file_page == NULL && (file_page = malloc(ps)) == NULL)
        goto fail;
    off_t at = (off_t)(r->seg_off + (uint64_t)i * ps);
    while (got < plen) {
        ssize_t n = sysio.pread(r->file_fd, file_page + got, plen - got, at + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    memset(file_page + got, 0, ps - got);
    T.file_reads++;
    return file_page;
fail:
    T.file_read_errors++;
    return NULL;
}

/* track_diff_all -- diff every captured page (threads running again); 0 or -1 (ENOMEM) */
static int track_diff_all(size_t np)
{
    size_t ps = track_ps();
    for (size_t q = 0; q < np; q++) {
        struct track_region *r = atomic_load(&T.regions[T.plist[q] >> 40]);
        size_t i = (size_t)(T.plist[q] & (((uint64_t)1 << 40) - 1));
        char *live = r->base + i * ps;
        uint8_t s = track_st_load(r, i);
        if ((s & TS_MASK) == TS_PENDING) {
            size_t mark_len = out_len, mark_n = out_n;
            struct track_range saved;
            if (out_n > 0)
                saved = out_r[out_n - 1];
            const char *twin = (s & TF_TWIN) ? track_slot(r, i, (s & TF_SLOTB) != 0) : NULL;
            if (track_emit_page(r, i, live, twin) != 0)
                return -1;
            /* Release: our reads of the live page happen before the CAS. If a hook copied
             * the page and let a write through first, the CAS fails and what we read may be
             * torn: undo it and use the snapshot. */
            uint8_t ns = (uint8_t)(TS_CLEAN | (s & TF_SLOTB));
            if (track_st_cas(r, i, &s, ns)) {
                if (twin != NULL)
                    track_budget_give();
                continue;
            }
            out_len = mark_len;
            out_n = mark_n;
            if (mark_n > 0)
                out_r[mark_n - 1] = saved;
            if (twin != NULL)
                T.st.bytes_diffed -= track_page_len(r, i);
            else
                T.st.whole_pages--;
        }
        if ((s & TS_MASK) != TS_SNAP)
            continue;
        int b = (s & TF_SLOTB) != 0;
        const char *twin = (s & TF_TWIN) ? track_slot(r, i, b) : NULL;
        if (twin == NULL && (s & TF_FILE))
            twin = track_file_image(r, i);
        if (track_emit_page(r, i, track_slot(r, i, !b), twin) != 0)
            return -1;
        uint8_t flags = track_keep_snapshot(s);
        uint8_t ns = (uint8_t)((T.hook_backend ? TS_DIRTY : TS_CLEAN) | flags);
        if (!T.hook_backend && !(flags & TF_TWIN))
            ns = TS_CLEAN;
        track_st_store(r, i, ns);
    }
    return 0;
}

/* track_diff_live -- a final commit (wp-async, threads still parked): diff every captured
 * page as it is in memory, without a snapshot, and leave it with no committed image (a later
 * write, if any, logs it whole). No allocation but mmap (track_out_reserve). 0 or -1. */
static int track_diff_live(size_t np)
{
    size_t ps = track_ps();
    for (size_t q = 0; q < np; q++) {
        struct track_region *r = atomic_load(&T.regions[T.plist[q] >> 40]);
        size_t i = (size_t)(T.plist[q] & (((uint64_t)1 << 40) - 1));
        uint8_t s = track_st_load(r, i);
        const char *twin = (s & TF_TWIN) ? track_slot(r, i, (s & TF_SLOTB) != 0)
                           : (s & TF_FILE) ? track_file_image(r, i) : NULL;
        if (track_emit_page(r, i, r->base + i * ps, twin) != 0)
            return -1;
        if (s & TF_TWIN)
            track_budget_give();
        track_st_store(r, i, (uint8_t)(TS_CLEAN | (s & TF_SLOTB)));
    }
    return 0;
}

/* track_slot_in_use -- does slot b of page i hold a twin or a snapshot in flight? */
static int track_slot_in_use(const struct track_region *r, size_t i, int b)
{
    uint8_t s = track_st_load(r, i);
    int tb = (s & TF_SLOTB) != 0;
    if ((s & TF_TWIN) && b == tb)
        return 1;
    return (s & TS_MASK) == TS_SNAP && b != tb;
}

/*
 * track_trim -- give the memory of unused slots back to the kernel (MADV_DONTNEED) once the
 * slots copied into since the last sweep exceed the budget by a quarter. A sweep walks
 * every region's two slot areas and madvises each run of unused slots; it is incremental
 * (at most TRACK_TRIM_RUNS madvise calls per commit, continuing at the next commit), so no
 * commit pays more than ~0.5 ms for it. With the hook backends it must run in the pause:
 * no first-write hook copies into a slot then (the hook blocks the safepoint signal before
 * it copies; prepare_write is excluded by `kw`), so a slot seen unused stays unused until
 * the threads are released. wp-async has no hook: there it runs after the release (mu
 * held: nothing else writes slots).
 */
static void track_trim(void)
{
    uint64_t limit = T.budget_pages + T.budget_pages / 4 + 64;
    if (!T.trim_active) {
        if (atomic_load(&T.slot_touches) <= limit)
            return;
        T.trim_active = 1;
        T.trim_k = 0;
        T.trim_b = 0;
        T.trim_i = 0;
        T.trim_kept = 0;
    }
    size_t ps = track_ps();
    unsigned calls = 0;
    while (T.trim_k < TRACK_MAX_REGIONS && calls < TRACK_TRIM_RUNS) {
        struct track_region *r = atomic_load(&T.regions[T.trim_k]);
        if (r == NULL || T.trim_b > 1) {
            T.trim_k++;
            T.trim_b = 0;
            T.trim_i = 0;
            continue;
        }
        size_t i = T.trim_i, run0 = 0, runn = 0;
        for (; i <= r->npages && calls < TRACK_TRIM_RUNS; i++) {
            int used = i < r->npages && track_slot_in_use(r, i, T.trim_b);
            if (i < r->npages && !used) {
                if (runn++ == 0)
                    run0 = i;
                continue;
            }
            T.trim_kept += used;
            if (runn > 0) {
                madvise(track_slot(r, run0, T.trim_b), runn * ps, MADV_DONTNEED);
                calls++;
            }
            runn = 0;
        }
        /* the loop ends right after a flush, so no run is left open here */
        if (i > r->npages) {
            T.trim_b++;
            T.trim_i = 0;
        } else {
            T.trim_i = i;
        }
    }
    if (T.trim_k >= TRACK_MAX_REGIONS) {
        atomic_store(&T.slot_touches, T.trim_kept);
        T.trim_active = 0;
        T.st.trims++;
    }
}

/* track_capture -- at the safepoint: collect the dirty set and mark it (no allocation);
 * live: a final wp-async commit that diffs the pages before releasing the threads, so
 * they are not copied */
static int track_capture(size_t *np_out, int live)
{
    size_t ps = track_ps();
    int e = vmp_dirty_collect_runs(T.dirty, track_collect_cb, NULL);
    if (e != 0)
        return e;   /* collected pages stay in the carry bitmaps for the next try */
    size_t np = 0;
    T.ncaptures++;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r == NULL)
            continue;
        for (size_t w = 0; w < r->nwords; w++) {
            uint64_t bits = atomic_exchange(&r->carry[w], 0);
            while (bits != 0) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                uint8_t s = track_st_load(r, i);
                if (T.hook_backend) {
                    /* a collected page had its hook run (DIRTY); anything else cannot
                     * hold a change */
                    if ((s & TS_MASK) != TS_DIRTY)
                        continue;
                    track_st_store(r, i, (uint8_t)(TS_PENDING | (s & ~TS_MASK)));
                } else if (live) {
                    /* diffed before the release (track_diff_live): state unchanged */
                } else {
                    /* no hook: copy the page now, while nobody can write it */
                    int b = (s & TF_SLOTB) != 0;
                    memcpy(track_slot(r, i, !b), r->base + i * ps, track_page_len(r, i));
                    atomic_fetch_add(&T.slot_touches, 1);
                    track_st_store(r, i, (uint8_t)(TS_SNAP | (s & ~TS_MASK)));
                }
                r->seen[i] = T.ncaptures;
                T.plist[np++] = ((uint64_t)k << 40) | i;
            }
        }
    }
    *np_out = np;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif

/* the slot run being pre-faulted (track_prefault_cb) */
struct prefault {
    char *lo, *hi;
};

/* track_prefault_flush -- populate the pending slot run */
static void track_prefault_flush(struct prefault *pf)
{
    if (pf->hi > pf->lo)
        madvise(pf->lo, (size_t)(pf->hi - pf->lo), MADV_POPULATE_WRITE);
    pf->lo = pf->hi = NULL;
}

/* track_prefault_cb -- vmprim peek callback: the snapshot slots of these written pages */
static void track_prefault_cb(void *start, size_t npages, void *arg)
{
    struct prefault *pf = arg;
    size_t ps = track_ps();
    for (size_t j = 0; j < npages; j++) {
        uintptr_t p = (uintptr_t)start + j * ps;
        struct track_region *r = track_find(p);
        if (r == NULL)
            continue;
        size_t i = (p - (uintptr_t)r->base) / ps;
        char *slot = track_slot(r, i, !(track_st_load(r, i) & TF_SLOTB));
        if (slot != pf->hi) {
            track_prefault_flush(pf);
            pf->lo = slot;
        }
        pf->hi = slot + ps;
    }
}

/*
 * track_prefault -- wp-async, before the stop: the capture copies every dirty page into its
 * snapshot slot inside the pause, and a slot page never used before costs a page fault there
 * (~4 us, 20x the copy: 64 MiB dirty paused the program ~70 ms). So the pages written so far
 * are previewed (vmp_dirty_peek_runs: no re-arming) and their snapshot slots populated now,
 * while the threads run. Pages written between this and the stop fault in the pause as
 * before; pages previewed but not captured (impossible: a written page stays written until
 * the collect) would only cost memory the trim gives back.
 */
static void track_prefault(void)
{
    struct prefault pf = {NULL, NULL};
    if (vmp_dirty_peek_runs(T.dirty, track_prefault_cb, &pf) == 0)
        track_prefault_flush(&pf);
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
    track_in_prepare = 1;      /* not in a fault handler: the hook leaves the mask alone */
    vmp_dirty_prepare_write(T.dirty, (void *)w, sizeof(uint32_t));
    track_in_prepare = 0;
}

/* track_robust_thread -- the robust list of a parked thread (or this one): open its lock
 * words' pages. The list lives in the thread's descriptor and its mutexes; both are only
 * read, and cannot change: the thread is parked. At most 4096 entries (the kernel's own
 * limit is 2048). */
static void track_robust_thread(pid_t tid, void *arg)
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
rvm_return_t track_commit(void)
{
    return track_commit_mode(0);
}

/* track_commit_mode -- rvm_commit; final: see track.h (track_commit_final) */
rvm_return_t track_commit_mode(int final)
{
    pthread_mutex_lock(&T.mu);
    uint64_t t0 = track_now_ns();
    rvm_return_t rc = RVM_SUCCESS;
    if (T.dirty != NULL && T.pid != getpid()) {
        /* a child of fork(): the tracker's userfaultfd and the log belong to the parent */
        rc = track_err(RVM_EINTERNAL, "rvm_commit: tracking belongs to process %d; a child "
                       "of fork() cannot commit tracked regions (its copy of them is plain "
                       "memory)", (int)T.pid);
        goto out;
    }
    if (T.sticky != RVM_SUCCESS) {
        rc = track_err(T.sticky, "rvm_commit: an earlier tracked commit failed (%s); restart "
                       "the process to recover", T.sticky_msg);
        goto out;
    }
    if (T.dirty == NULL || track_nregions() == 0) {
        T.st.n_empty_commits++;
        goto out;
    }
    if (run_buf == NULL && (run_buf = malloc((track_ps() / 2 + 2) * sizeof(*run_buf))) == NULL) {
        rc = track_err(RVM_ENO_MEMORY, "rvm_commit: out of memory");
        goto out;
    }
    int live = final && !T.hook_backend;
    /* a final commit streams its record from out_data to the log (no second copy in core:
     * log_stream.c); the threads are released by then, and out_data is ours */
    track_sink_fn sink = T.sink != NULL ? T.sink : final ? track_core_sink_stream
                                                         : track_core_sink;
    if (live && file_page == NULL && (file_page = malloc(track_ps())) == NULL) {
        rc = track_err(RVM_ENO_MEMORY, "rvm_commit: out of memory");
        goto out;
    }
    if (live) {
        out_len = 0;
        out_n = 0;
    }
    if (!T.hook_backend && !live)
        track_prefault();
    uint64_t t_halt = track_now_ns();   /* the pause starts here (the prefault is not in it) */
    struct track_safepoint_stats ss = {0, 0, 0};
    size_t np = 0;
    pthread_rwlock_wrlock(&T.kw);
    int e = track_safepoint_stop(&ss);
    if (e != 0) {
        pthread_rwlock_unlock(&T.kw);
        rc = track_err(RVM_EINTERNAL, "rvm_commit: %s", track_safepoint_message());
        goto out;
    }
    uint64_t t_stop = track_now_ns();
    e = track_capture(&np, live);
    if (e == 0 && T.hook_backend)
        track_safepoint_each(track_robust_thread, NULL);   /* ROBUST MUTEXES (track.h) */
    int diff_failed = 0, zc = 0;
    rvm_return_t zc_rc = RVM_SUCCESS;
    uint64_t zc_logged = 0, zc_ns = 0;
    if (e == 0 && live) {
        /* ZERO-COPY FINAL COMMIT. If core can write a record now without waiting for any
         * parked thread (track_core_stream_ready: its locks are free, no log writer, nothing
         * queued, the truncation daemon runs), the ranges point at the tracked memory
         * itself and the record is written from there before the threads are released:
         * nobody can change those bytes meanwhile (the parked threads execute nothing;
         * the truncation daemon writes segment files, never tracked memory; threads the
         * safepoint skipped are assumed not to write tracked memory, as for every commit).
         * The exit commit then holds no copy of the changed bytes at all; the price is a
         * pause as long as the write (it is the process's last commit). Otherwise the
         * changed bytes are copied into out_data and written after the release. */
        zc = T.sink == NULL && track_core_stream_ready();
        emit_zc = zc;
        diff_failed = track_diff_live(np) != 0;
        emit_zc = 0;
        if (zc && !diff_failed && out_n > 0 && !track_core_stream_fits(out_r, out_n)) {
            /* the log would have to be truncated first: copy (mmap only) and write after
             * the release, as without zero-copy */
            diff_failed = track_out_materialize() != 0;
            zc = 0;
        }
        if (zc && !diff_failed && out_n > 0) {
            uint64_t ts = track_now_ns();
            zc_rc = track_core_sink_stream(NULL, out_r, out_n, 1, &zc_logged);
            zc_ns = track_now_ns() - ts;
        }
    }
    uint64_t t_capt = track_now_ns();
    track_safepoint_release();
    if (e == 0 && T.hook_backend)
        track_trim();
    T.st.last_stop_ns = t_stop - t_halt;
    T.st.last_capture_ns = t_capt - t_stop;
    pthread_rwlock_unlock(&T.kw);
    uint64_t t_pause = track_now_ns() - t_halt;
    if (e != 0) {
        rc = track_err(RVM_EINTERNAL, "rvm_commit: collecting dirty pages failed: %s (%s)",
                       strerror(e), vmp_dirty_errmsg(T.dirty));
        goto out;
    }
    T.st.last_threads = ss.nthreads;
    T.st.last_skipped = ss.nskipped;
    T.st.last_pages = np;
    T.st.pages_dirtied += np;
    T.st.last_pause_ns = t_pause;
    T.st.total_pause_ns += t_pause;
    if (t_pause > T.st.max_pause_ns)
        T.st.max_pause_ns = t_pause;

    if (!T.hook_backend && !live)
        track_trim();
    if (!live) {
        out_len = 0;
        out_n = 0;
        diff_failed = track_diff_all(np) != 0;
    }
    if (diff_failed) {
        /* twins were already advanced for part of the pages: the tracked state no longer
         * matches the log, so this is sticky */
        T.sticky = RVM_ENO_MEMORY;
        snprintf(T.sticky_msg, sizeof(T.sticky_msg), "out of memory for a %zu-byte record",
                 out_len);
        rc = track_err(RVM_ENO_MEMORY, "rvm_commit: out of memory building the record");
        goto out;
    }
    if (out_n == 0) {
        T.st.n_empty_commits++;
        T.st.last_durable_ns = 0;
        goto done;
    }
    for (size_t k = 0; k < out_n; k++) {
        if (!zc)   /* zero-copy ranges point at the memory already */
            out_r[k].src = out_data + (uintptr_t)out_r[k].src;
        T.st.bytes_logged += out_r[k].len;
    }
    T.st.ranges_logged += out_n;
    uint64_t t_sink = track_now_ns(), logged = zc_logged;
    if (zc) {
        rc = zc_rc;
        T.st.last_durable_ns = zc_ns;
        T.zero_copy_commits++;
    } else {
        rc = sink(T.sink_arg, out_r, out_n, T.flush, &logged);
        T.st.last_durable_ns = track_now_ns() - t_sink;
    }
    T.st.total_durable_ns += T.st.last_durable_ns;
    if (rc != RVM_SUCCESS) {
        T.sticky = rc;
        snprintf(T.sticky_msg, sizeof(T.sticky_msg), "the log refused a %zu-range record: "
                 "%s: %.160s", out_n, rvm_return(rc), rvm_errmsg);
        track_err(rc, "rvm_commit: %s; every later rvm_commit fails: restart the process to "
                  "recover", T.sticky_msg);
        goto out;
    }
    T.st.record_bytes += logged;
    T.st.n_commits++;
done:
    if (out_cap > ((size_t)64 << 20)) {     /* do not keep a huge record buffer around */
        munmap(out_data, out_cap);
        out_data = NULL;
        out_cap = 0;
    }
    if (out_rcap * sizeof(*out_r) > ((size_t)64 << 20)) {   /* nor a huge range list */
        munmap(out_r, out_rcap * sizeof(*out_r));
        out_r = NULL;
        out_rcap = 0;
    }
    T.st.last_commit_ns = track_now_ns() - t0;
    T.st.total_commit_ns += T.st.last_commit_ns;
out:
    pthread_mutex_unlock(&T.mu);
    return rc;
}

/* track_note_commit -- an explicit transaction committed [addr, addr+len) (see track.h) */
void track_note_commit(const void *addr, uint64_t len)
{
    size_t ps = track_ps();
    uintptr_t a = (uintptr_t)addr, b = a + len;
    /* Fast path: most explicit ranges (RDS's heap, set_range programs) touch no tracked
     * region; do not take T.mu for each of them. A region tracked after this check was
     * tracked after the commit, and track() takes its image from memory then. */
    int touches = 0;
    if (atomic_load(&track_published) == 0)
        return;
    for (size_t k = 0; k < TRACK_MAX_REGIONS && !touches; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        touches = r != NULL && a < (uintptr_t)r->base + r->len && (uintptr_t)r->base < b;
    }
    if (!touches)
        return;
    pthread_mutex_lock(&T.mu);
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r == NULL)
            continue;
        uintptr_t lo = a > (uintptr_t)r->base ? a : (uintptr_t)r->base;
        uintptr_t hi = b < (uintptr_t)r->base + r->len ? b : (uintptr_t)r->base + r->len;
        while (lo < hi) {
            size_t i = (lo - (uintptr_t)r->base) / ps;
            uintptr_t pend = (uintptr_t)r->base + (i + 1) * ps;
            uintptr_t e = hi < pend ? hi : pend;
            uint8_t s = track_st_load(r, i);
            if ((s & TF_FILE) && !(s & TF_TWIN)) {
                /* Lazy page: the file stops being its committed image now (this record
                 * reaches the file only at truncation). Its image is the file's page with
                 * the committed bytes laid over it, below: make that the twin, or forget
                 * the image (logged whole when written) if no twin can be had. */
                uint8_t ns = (uint8_t)(s & ~TF_FILE);
                if (track_budget_take() == 0) {
                    const char *img = track_file_image(r, i);
                    if (img != NULL) {
                        memcpy(track_slot(r, i, (s & TF_SLOTB) != 0), img,
                               track_page_len(r, i));
                        atomic_fetch_add(&T.slot_touches, 1);
                        ns |= TF_TWIN;
                    } else {
                        track_budget_give();
                    }
                }
                track_st_store(r, i, ns);
                s = ns;
            }
            /* the committed bytes are the current memory: copy them into the twin */
            if (s & TF_TWIN)
                memcpy(track_slot(r, i, (s & TF_SLOTB) != 0) + (lo - (uintptr_t)r->base - i * ps),
                       (const void *)lo, e - lo);
            lo = e;
        }
    }
    pthread_mutex_unlock(&T.mu);
}

/* track_prepare_write -- before a kernel write into tracked memory */
rvm_return_t track_prepare_write(void *addr, size_t len)
{
    if (T.dirty == NULL || len == 0)
        return RVM_SUCCESS;
    pthread_rwlock_rdlock(&T.kw);
    track_in_prepare = 1;
    int e = vmp_dirty_prepare_write(T.dirty, addr, len);
    track_in_prepare = 0;
    pthread_rwlock_unlock(&T.kw);
    if (e != 0)
        return track_err(RVM_EINTERNAL, "rvm_track_prepare_write(%p, %zu): %s (%s)", addr, len,
                         strerror(e), vmp_dirty_errmsg(T.dirty));
    return RVM_SUCCESS;
}

/* track_release_region -- mark the CLEAN twinless pages of [lo, hi) of r TF_LOST (hook
 * backends; T.mu held, so no commit is in flight and pages are CLEAN or DIRTY) */
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

/* track_release -- give whole pages of [addr, addr+len) back to the kernel (RELEASED MEMORY
 * in track.h); memory outside tracked regions is released too */
rvm_return_t track_release(void *addr, size_t len)
{
    size_t ps = track_ps();
    uintptr_t a = ((uintptr_t)addr + ps - 1) & ~(uintptr_t)(ps - 1);
    uintptr_t b = ((uintptr_t)addr + len) & ~(uintptr_t)(ps - 1);
    if (len == 0 || b <= a)
        return RVM_SUCCESS;
    pthread_mutex_lock(&T.mu);
    if (T.dirty == NULL || T.pid != getpid()) {
        /* nothing tracked here (or a fork child's plain copy) */
        pthread_mutex_unlock(&T.mu);
        return madvise((void *)a, b - a, MADV_DONTNEED) == 0
                   ? RVM_SUCCESS
                   : track_err(RVM_EINTERNAL, "rvm_track_release(%p, %zu): madvise: %s", addr,
                               len, strerror(errno));
    }
    if (T.hook_backend)
        for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
            struct track_region *r = atomic_load(&T.regions[k]);
            if (r == NULL)
                continue;
            uintptr_t lo = a > (uintptr_t)r->base ? a : (uintptr_t)r->base;
            uintptr_t rend = (uintptr_t)r->base + r->npages * ps;
            uintptr_t hi = b < rend ? b : rend;
            /* a partial last page of the region is left alone: its tail is not ours */
            if (hi == rend && r->len % ps)
                hi -= ps;
            if (lo < hi)
                track_release_region(r, lo, hi);
        }
    int e = vmp_dirty_release(T.dirty, (void *)a, b - a);
    pthread_mutex_unlock(&T.mu);
    if (e == EOPNOTSUPP)
        return RVM_SUCCESS;   /* kept resident, still tracked: nothing changed */
    if (e != 0)
        return track_err(RVM_EINTERNAL, "rvm_track_release(%p, %zu): %s (%s)", addr, len,
                         strerror(e), vmp_dirty_errmsg(T.dirty));
    return RVM_SUCCESS;
}

/* track_reset -- untrack everything (changes or not) and forget the configuration */
void track_reset(void)
{
    pthread_mutex_lock(&T.mu);
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&T.regions[k]);
        if (r == NULL)
            continue;
        vmp_dirty_disarm(T.dirty, r->base);
        atomic_store(&T.regions[k], NULL);
        track_region_free(r);
    }
    vmp_dirty_destroy(T.dirty);
    T.dirty = NULL;
    atomic_store(&T.twin_pages, 0);
    atomic_store(&T.hook_snaps, 0);
    T.configured = 0;
    T.sticky = RVM_SUCCESS;
    T.flush = 1;
    memset(&T.st, 0, sizeof(T.st));
    pthread_mutex_unlock(&T.mu);
}
