/* SPDX-License-Identifier: MIT */
/*
 * track_region.c -- tracked regions: the process-wide tracking state, configuration,
 * rvm_track (creating the DIRTY tracker, the region's page states and slots, arming) and
 * rvm_untrack / rvm_unmap / rvm_terminate (see track.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "observer.h"
#include "rvm_int.h"
#include "track_int.h"

struct track_state tracker = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .kw = PTHREAD_RWLOCK_INITIALIZER,
    .flush = 1,
};

atomic_int track_published;

static char track_msg[512];

/* track_err -- record a message for rvm_errmsg and return code */
rvm_return_t track_err(rvm_return_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(track_msg, sizeof(track_msg), fmt, ap);
    va_end(ap);
    err_set(code, "%s", track_msg); /* rvm_errmsg, as for every core failure */
    return code;
}

/* track_errmsg -- message of the last failure */
const char *track_errmsg(void)
{
    return track_msg;
}

/* track_now_ns -- monotonic nanoseconds */
uint64_t track_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* track_find -- the tracked region holding address a (async-signal-safe, lock-free) */
struct track_region *track_find(uintptr_t a)
{
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r != NULL && a >= (uintptr_t)r->base && a < (uintptr_t)r->base + r->npages * track_ps())
            return r;
    }
    return NULL;
}

/* track_defaults -- fill unset configuration */
static void track_defaults(void)
{
    if (tracker.configured)
        return;
    tracker.want_backend = VMP_BACKEND_AUTO;
    tracker.budget_pages = TRACK_DEFAULT_BUDGET / track_ps();
    tracker.merge_gap = TRACK_DEFAULT_GAP;
    tracker.configured = 1;
}

/* track_nregions -- number of tracked regions (mu held) */
size_t track_nregions(void)
{
    size_t n = 0;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++)
        if (atomic_load(&tracker.regions[k]) != NULL)
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
        return track_err(RVM_EOPTIONS,
                         "rvm_track_configure: unknown backend \"%s\" (use "
                         "auto, wp-async, uffd-sigbus or mprotect)",
                         o->backend);
    if (b != VMP_BACKEND_AUTO) {
        char why[256] = "";
        if (vmp_backend_probe(b, why, sizeof(why)) != 0)
            return track_err(RVM_EOPTIONS,
                             "rvm_track_configure: backend %s is not usable "
                             "here: %s",
                             vmp_backend_name(b), why);
    }
    pthread_mutex_lock(&tracker.mu);
    if (track_nregions() > 0) {
        pthread_mutex_unlock(&tracker.mu);
        return track_err(RVM_EUNCOMMIT, "rvm_track_configure: regions are tracked; untrack "
                                        "them first");
    }
    if (tracker.dirty != NULL) {
        vmp_dirty_destroy(tracker.dirty);
        tracker.dirty = NULL;
    }
    tracker.want_backend = b;
    tracker.budget_pages = (o->twin_budget ? o->twin_budget : TRACK_DEFAULT_BUDGET) / track_ps();
    tracker.merge_gap = o->merge_gap ? (unsigned)o->merge_gap : TRACK_DEFAULT_GAP;
    tracker.configured = 1;
    pthread_mutex_unlock(&tracker.mu);
    return RVM_SUCCESS;
}

/* track_set_sink -- where commits go */
void track_set_sink(track_sink_fn fn, void *arg)
{
    pthread_mutex_lock(&tracker.mu);
    tracker.sink = fn;
    tracker.sink_arg = arg;
    pthread_mutex_unlock(&tracker.mu);
}

/* track_region_free -- release a region's memory (it is no longer reachable) */
static void track_region_free(struct track_region *r)
{
    if (r->slots != NULL && r->slots != MAP_FAILED)
        munmap(r->slots, 2 * r->npages * track_ps());
    free((void *)r->st);
    free(r->seen);
    if (r->preq != NULL && r->preq != MAP_FAILED)
        munmap(r->preq, r->npages * sizeof(*r->preq));
    free((void *)r->carry);
    free(r);
}

/* track_plist_grow -- room for every page of every tracked region (mu held), so the pause
 * never allocates */
static int track_plist_grow(size_t need)
{
    if (need <= tracker.plist_cap)
        return 0;
    /* mmap, not malloc: sized for every page of the heap reservation and used at the front
     * only, they must not be copied or zeroed as they grow (allocated with calloc/realloc,
     * the lists made 80 MB resident for the shim's 16 GiB reservation) */
    if (mmap_buf_grow((void **)&tracker.plist, &tracker.plist_bytes, need * sizeof(*tracker.plist),
                      1 << 20) != 0 ||
        mmap_buf_grow((void **)&tracker.pool_of, &tracker.pool_of_bytes,
                      need * sizeof(*tracker.pool_of), 1 << 20) != 0)
        return -1;
    tracker.plist_cap = need;
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

/* track_region_check -- is region a descriptor rvm_track can take? *priv: 1 if it is a
 * RVM_MAP_PRIVATE file mapping */
static rvm_return_t track_region_check(const rvm_region_t *region, int *priv)
{
    *priv = 0;
    if (region == NULL || region->struct_id != rvm_region_id)
        return track_err(RVM_EREGION, "rvm_track: not a region descriptor (initialise it "
                                      "with rvm_init_region and map it with rvm_map)");
    if (region->vmaddr == NULL || region->length == 0 ||
        ((uintptr_t)region->vmaddr & (track_ps() - 1)) != 0)
        return track_err(RVM_ERANGE,
                         "rvm_track: region at %p, length %lu: vmaddr must be "
                         "page aligned and length > 0 (map the region with rvm_map first)",
                         (void *)region->vmaddr, (unsigned long)region->length);
    if (region->offset.high != 0)
        return track_err(RVM_EOFFSET, "rvm_track: region offset does not fit in 64 bits");
    if (tracker.sink != NULL)
        return RVM_SUCCESS; /* a test's sink: the region need not be rvm_map'ed */
    rvm_return_t m = track_core_check_mapped(region->vmaddr, region->length, priv);
    if (m != RVM_SUCCESS)
        return track_err(m, "rvm_track: region at %p (%lu bytes): %s", (void *)region->vmaddr,
                         (unsigned long)region->length,
                         m == RVM_EINIT ? "not mapped: call rvm_initialize and rvm_map first"
                                        : "not mapped: map it with rvm_map first");
    return RVM_SUCCESS;
}

/* track_free_slot_for -- the free entry of tracker.regions for [a, a + npages pages), refusing an
 * overlap with a tracked region (mu held); *slot set on success */
static rvm_return_t track_free_slot_for(uintptr_t a, size_t npages, int *slot)
{
    size_t ps = track_ps();
    *slot = -1;
    for (int k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *o = atomic_load(&tracker.regions[k]);
        if (o == NULL) {
            if (*slot < 0)
                *slot = k;
            continue;
        }
        if (a < (uintptr_t)o->base + o->npages * ps && (uintptr_t)o->base < a + npages * ps)
            return track_err(RVM_EOVERLAP,
                             "rvm_track: region at %p is already tracked or "
                             "overlaps the tracked region at %p",
                             (void *)a, (void *)o->base);
    }
    if (*slot < 0)
        return track_err(RVM_ETOO_BIG,
                         "rvm_track: %d regions are tracked already (the "
                         "limit); untrack one first",
                         TRACK_MAX_REGIONS);
    return RVM_SUCCESS;
}

/* track_tracker_create -- the DIRTY tracker, made with the first tracked region (mu held) */
static rvm_return_t track_tracker_create(void)
{
    if (tracker.dirty != NULL)
        return RVM_SUCCESS;
    vmp_dirty_opts_t opts = {.backend = tracker.want_backend};
    vmp_dirty_t *d = NULL;
    int e = vmp_dirty_create(&opts, &d);
    if (e == 0 && vmp_dirty_backend(d) != VMP_BACKEND_WP_ASYNC) {
        /* the fault backends notify the first write: recreate with our hook */
        vmp_backend_t b = vmp_dirty_backend(d);
        vmp_dirty_destroy(d);
        d = NULL;
        vmp_dirty_opts_t hooked = {.backend = b, .hook = track_hook};
        e = vmp_dirty_create(&hooked, &d);
    }
    if (e != 0) {
        char why[256] = "";
        vmp_backend_probe(tracker.want_backend == VMP_BACKEND_AUTO ? VMP_BACKEND_MPROTECT
                                                                   : tracker.want_backend,
                          why, sizeof(why));
        return track_err(RVM_EINTERNAL,
                         "rvm_track: cannot create the DIRTY tracker "
                         "(backend %s): %s %s",
                         vmp_backend_name(tracker.want_backend), strerror(e), why);
    }
    tracker.dirty = d;
    tracker.pid = getpid();
    tracker.backend = vmp_dirty_backend(d);
    tracker.hook_backend = tracker.backend != VMP_BACKEND_WP_ASYNC;
    snprintf(tracker.st.backend, sizeof(tracker.st.backend), "%s",
             vmp_backend_name(tracker.backend));
    return RVM_SUCCESS;
}

/* track_region_new -- the state of a region of npages pages (mu held): page states, carry
 * bitmap, eviction clock, slot area; NULL if out of memory */
static struct track_region *track_region_new(rvm_region_t *region, size_t npages, int file_fd)
{
    size_t ps = track_ps();
    struct track_region *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->file_fd = file_fd;
    r->pub = region;
    r->base = region->vmaddr;
    r->len = region->length;
    r->npages = npages;
    r->seg_off = region->offset.low; /* high is 0: checked by track_region_check */
    r->nwords = (npages + 63) / 64;
    r->carry_lo = r->nwords; /* empty */
    r->st = calloc(npages, 1);
    r->seen = calloc(npages, sizeof(*r->seen));
    r->preq = mmap(NULL, npages * sizeof(*r->preq), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    r->carry = calloc(r->nwords, sizeof(uint64_t));
    r->slots = mmap(NULL, 2 * npages * ps, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    size_t tracked_pages = npages;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *o = atomic_load(&tracker.regions[k]);
        tracked_pages += o != NULL ? o->npages : 0;
    }
    if (r->st == NULL || r->seen == NULL || r->preq == MAP_FAILED || r->carry == NULL ||
        r->slots == MAP_FAILED || track_plist_grow(tracked_pages) != 0) {
        track_region_free(r);
        return NULL;
    }
    /* 4 KiB pages for the slots: a transparent huge page would make the first copy into a
     * slot zero 2 MiB (in a fault handler, or in the pause), and slots are used sparsely */
    madvise(r->slots, 2 * npages * ps, MADV_NOHUGEPAGE);
    if (!tracker.hook_backend && file_fd >= 0) {
        /* wp-async, memory made from the segment: every page starts lazy. TF_FILE is
         * stored inverted in such a region (track_st_load), so the all-zero array calloc
         * returned already says TF_FILE everywhere: a memset here touched one byte per
         * page, 4 MiB for the shim's 16 GiB heap reservation, in every process. */
        r->st_xor = TF_FILE;
        tracker.refile = 1;
    } else if (!tracker.hook_backend) {
        track_twins_from_memory(r);
    }
    return r;
}

/* track_region_publish -- make r visible in slot and arm it (mu held); on failure r is
 * withdrawn and freed */
static rvm_return_t track_region_publish(int slot, struct track_region *r, uint64_t wp_len)
{
    size_t span = r->npages * track_ps();
    /* publish before arming: a fault after arming must find the region */
    atomic_store(&tracker.regions[slot], r);
    atomic_fetch_add(&track_published, 1);
    int e =
        vmp_dirty_arm_sparse(tracker.dirty, r->base, span, wp_len < span ? (size_t)wp_len : span);
    if (e == 0)
        return RVM_SUCCESS;
    atomic_store(&tracker.regions[slot], NULL);
    atomic_fetch_sub(&track_published, 1);
    track_give_region_twins(r);
    rvm_return_t rc = track_err(e == EINVAL ? RVM_EOVERLAP : RVM_EINTERNAL,
                                "rvm_track: "
                                "cannot arm region at %p (%zu pages) with backend %s: %s (%s)",
                                (void *)r->base, r->npages, vmp_backend_name(tracker.backend),
                                strerror(e), vmp_dirty_errmsg(tracker.dirty));
    track_region_free(r);
    return rc;
}

/* track_region_add_locked -- the body of track_region_add_sparse (mu held) */
static rvm_return_t track_region_add_locked(rvm_region_t *region, uint64_t wp_len, int priv)
{
    track_defaults();
    size_t npages = (region->length + track_ps() - 1) / track_ps();
    int slot;
    rvm_return_t rc = track_free_slot_for((uintptr_t)region->vmaddr, npages, &slot);
    if (rc == RVM_SUCCESS)
        rc = track_tracker_create();
    if (rc != RVM_SUCCESS)
        return rc;
    if (priv && tracker.hook_backend) {
        /* a file mapping rvm_map chose by itself becomes anonymous memory here (the fault
         * backends need that); one the program asked for is refused below */
        rvm_return_t m = track_core_unfile(region->vmaddr, region->length, &priv);
        if (m != RVM_SUCCESS)
            return track_err(m, "rvm_track: region at %p: %s", (void *)region->vmaddr, rvm_errmsg);
    }
    if (priv && tracker.hook_backend)
        return track_err(RVM_EREGION,
                         "rvm_track: region at %p is mapped with RVM_MAP_PRIVATE "
                         "(a file mapping), which only the wp-async backend can track (this "
                         "process uses %s): map it without that flag",
                         (void *)region->vmaddr, vmp_backend_name(tracker.backend));
    int file_fd = -1;
    if (!tracker.hook_backend && tracker.sink == NULL) {
        /* lazy twins (track.h, "LAZY TWINS"): settles the segment first */
        rvm_return_t m = track_core_file_image(region->vmaddr, region->length, &file_fd);
        if (m != RVM_SUCCESS)
            return track_err(m,
                             "rvm_track: cannot bring segment of region %p up to date "
                             "before tracking: %s",
                             (void *)region->vmaddr, rvm_errmsg);
    }
    struct track_region *r = track_region_new(region, npages, file_fd);
    if (r == NULL)
        return track_err(RVM_ENO_MEMORY,
                         "rvm_track: out of memory for the state of a "
                         "%zu-page region (needs 2 x its size of reserved virtual memory)",
                         npages);
    return track_region_publish(slot, r, wp_len);
}

/* track_region_add_sparse -- see track.h */
rvm_return_t track_region_add_sparse(rvm_region_t *region, uint64_t wp_len)
{
    engine_observe(&track_observer);
    int priv = 0;
    rvm_return_t rc = track_region_check(region, &priv);
    if (rc != RVM_SUCCESS)
        return rc;
    pthread_mutex_lock(&tracker.mu);
    rc = track_region_add_locked(region, wp_len, priv);
    pthread_mutex_unlock(&tracker.mu);
    return rc;
}

/* track_collect_cb -- vmprim run callback: remember collected pages in the carry bitmaps
 * (tracker.mu held: every collect runs under it) */
void track_collect_cb(void *start, size_t npages, void *arg)
{
    (void)arg;
    size_t ps = track_ps();
    for (size_t j = 0; j < npages; j++) {
        uintptr_t p = (uintptr_t)start + j * ps;
        size_t i;
        struct track_region *r = track_locate(p, &i);
        if (r == NULL)
            continue;
        atomic_fetch_or(&r->carry[i / 64], (uint64_t)1 << (i % 64));
        if (i / 64 < r->carry_lo)
            r->carry_lo = i / 64;
        if (i / 64 >= r->carry_hi)
            r->carry_hi = i / 64 + 1;
    }
}

/* track_region_changed -- does r hold changes not yet committed? (mu held; collects into
 * the carry bitmap first, so the next commit still sees every page) */
static int track_region_changed(struct track_region *r)
{
    size_t ps = track_ps();
    if (vmp_dirty_collect_runs(tracker.dirty, track_collect_cb, NULL) != 0)
        return 1; /* cannot tell: say changed */
    for (size_t i = 0; i < r->npages; i++) {
        uint8_t s = track_st_load(r, i);
        int carried = ((atomic_load(&r->carry[i / 64]) >> (i % 64)) & 1) || r->preq[i] != 0;
        if (!carried && (s & TS_MASK) == TS_CLEAN)
            continue;
        const char *image = track_committed_image(r, i, s);
        if (image == NULL || memcmp(r->base + i * ps, image, track_page_len(r, i)) != 0)
            return 1;
    }
    return 0;
}

/* track_region_drop -- stop tracking region slot k (tracker.mu held): disarm first (vmprim waits
 * for running fault handlers, so none uses r afterwards), then return its twins' budget */
static void track_region_drop(size_t k, struct track_region *r)
{
    track_precopy_forget(r, 0, r->npages);
    vmp_dirty_disarm(tracker.dirty, r->base);
    atomic_store(&tracker.regions[k], NULL);
    atomic_fetch_sub(&track_published, 1);
    track_give_region_twins(r);
    track_region_free(r);
}

/* track_region_remove -- stop tracking (rvm_untrack; implicit: from rvm_unmap) */
rvm_return_t track_region_remove(const rvm_region_t *region, int implicit)
{
    const char *who = implicit ? "rvm_unmap" : "rvm_untrack";
    if (region == NULL)
        return track_err(RVM_EREGION, "%s: region pointer is NULL", who);
    pthread_mutex_lock(&tracker.mu);
    int k;
    struct track_region *r = NULL;
    for (k = 0; k < TRACK_MAX_REGIONS; k++) {
        r = atomic_load(&tracker.regions[k]);
        if (r != NULL && r->base == region->vmaddr)
            break;
    }
    if (k == TRACK_MAX_REGIONS) {
        pthread_mutex_unlock(&tracker.mu);
        return track_err(RVM_EREGION, "%s: region at %p is not tracked", who,
                         (void *)region->vmaddr);
    }
    if (track_region_changed(r)) {
        pthread_mutex_unlock(&tracker.mu);
        return track_err(RVM_EUNCOMMIT,
                         "%s: tracked region at %p has changes not yet "
                         "committed: call rvm_commit first (the region stays tracked)",
                         who, (void *)region->vmaddr);
    }
    track_region_drop(k, r);
    pthread_mutex_unlock(&tracker.mu);
    return RVM_SUCCESS;
}

/* track_on_terminate -- see track.h */
rvm_return_t track_on_terminate(void)
{
    pthread_mutex_lock(&tracker.mu);
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r != NULL && track_region_changed(r)) {
            pthread_mutex_unlock(&tracker.mu);
            return track_err(RVM_EUNCOMMIT,
                             "rvm_terminate: tracked region at %p has changes "
                             "not yet committed: call rvm_commit first",
                             (void *)r->base);
        }
    }
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r == NULL)
            continue;
        track_region_drop(k, r);
    }
    pthread_mutex_unlock(&tracker.mu);
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
    return rc == RVM_EREGION ? RVM_SUCCESS : rc; /* not tracked: nothing to do */
}

/* track_reset -- untrack everything (changes or not) and forget the configuration */
void track_reset(void)
{
    pthread_mutex_lock(&tracker.mu);
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r == NULL)
            continue;
        vmp_dirty_disarm(tracker.dirty, r->base);
        atomic_store(&tracker.regions[k], NULL);
        track_region_free(r);
    }
    vmp_dirty_destroy(tracker.dirty);
    tracker.dirty = NULL;
    tracker.npre = tracker.npre_taken = 0; /* the precopies named the regions just freed */
    atomic_store(&tracker.twin_pages, 0);
    atomic_store(&tracker.hook_snaps, 0);
    tracker.configured = 0;
    tracker.sticky = RVM_SUCCESS;
    tracker.flush = 1;
    memset(&tracker.st, 0, sizeof(tracker.st));
    pthread_mutex_unlock(&tracker.mu);
}

/* track_owns -- see track.h */
int track_owns(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    for (size_t k = 0; k < TRACK_MAX_REGIONS; k++) {
        struct track_region *r = atomic_load(&tracker.regions[k]);
        if (r != NULL && r->slots != NULL && r->slots != MAP_FAILED &&
            v - (uintptr_t)r->slots < 2 * r->npages * track_ps())
            return 1;
    }
    return 0;
}
