/* SPDX-License-Identifier: MIT */
/*
 * dirty.c -- DIRTY: the tracker object, backend choice, and the collect driver shared by the
 * backends (dirty_wpasync.c, dirty_fault.c).
 *
 * A collect walks the armed ranges in arming order. When the caller's array fills, the
 * position (range, and address or bitmap word) is kept in the tracker and the next call
 * continues the same collect; the backends take and re-arm only as many pages as fit, so no
 * page is ever re-armed without being reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmprim_int.h"

static const char *const dirty_names[] = {"auto", "wp-async", "uffd-sigbus", "mprotect"};

/* dirty_set_err -- record a message in t->errmsg; returns rc */
int dirty_set_err(struct vmp_dirty *t, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

/* vmp_backend_name -- the name of a backend */
VMP_API const char *vmp_backend_name(vmp_backend_t b)
{
    return (unsigned)b <= VMP_BACKEND_COUNT ? dirty_names[b] : "invalid";
}

/* vmp_backend_parse -- parse a backend name */
VMP_API int vmp_backend_parse(const char *name, vmp_backend_t *out)
{
    if (name == NULL || out == NULL)
        return EINVAL;
    for (unsigned i = 0; i <= VMP_BACKEND_COUNT; i++) {
        if (strcmp(name, dirty_names[i]) == 0) {
            *out = (vmp_backend_t)i;
            return 0;
        }
    }
    return EINVAL;
}

/* vmp_backend_probe -- can backend b be used in this process? */
VMP_API int vmp_backend_probe(vmp_backend_t b, char *why, size_t whylen)
{
    char dummy[8];
    if (why == NULL) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (whylen > 0)
        why[0] = '\0';
    if (b == VMP_BACKEND_AUTO || b == VMP_BACKEND_MPROTECT)
        return 0;
    if (b != VMP_BACKEND_WP_ASYNC && b != VMP_BACKEND_UFFD_SIGBUS)
        return EINVAL;
    const struct uffd_caps *c = uffd_caps_get();
    if (!c->usable) {
        snprintf(why, whylen, "%s", c->why);
        return strstr(c->why, "not permitted") != NULL ? EPERM : ENOTSUP;
    }
    if (b == VMP_BACKEND_WP_ASYNC) {
        if ((c->features & UFFD_FEATURE_WP_ASYNC) == 0) {
            snprintf(why, whylen, "kernel lacks UFFD_FEATURE_WP_ASYNC (needs Linux 6.7+)");
            return ENOTSUP;
        }
        if (!c->pagemap_scan) {
            snprintf(why, whylen, "%s", c->why);
            return ENOTSUP;
        }
        return 0;
    }
    if ((c->features & UFFD_FEATURE_SIGBUS) == 0 ||
        (c->features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) == 0) {
        snprintf(why, whylen, "kernel lacks userfaultfd write-protect with UFFD_FEATURE_SIGBUS");
        return ENOTSUP;
    }
    return 0;
}

/* dirty_open_backend -- acquire what backend b needs (descriptors, buffers); 0 or errno */
static int dirty_open_backend(struct vmp_dirty *t, vmp_backend_t b, char *why, size_t whylen)
{
    int rc = vmp_backend_probe(b, why, whylen);
    if (rc != 0)
        return rc;
    t->backend = b;
    if (b == VMP_BACKEND_MPROTECT)
        return 0;
    uint64_t offered = uffd_caps_get()->features;
    uint64_t want = b == VMP_BACKEND_WP_ASYNC ? UFFD_FEATURE_WP_ASYNC : UFFD_FEATURE_SIGBUS;
    want |= offered & (UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    int fd = uffd_open(want, why, whylen);
    if (fd < 0)
        return -fd;
    t->uffd = fd;
    if (b == VMP_BACKEND_WP_ASYNC) {
        t->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (t->pagemap_fd < 0) {
            rc = errno;
            snprintf(why, whylen, "cannot open /proc/self/pagemap: %s", strerror(rc));
            goto fail;
        }
        t->scan_vec_len = 1024;
        t->scan_vec = calloc(t->scan_vec_len, 3 * sizeof(uint64_t));
        if (t->scan_vec == NULL) {
            rc = ENOMEM;
            snprintf(why, whylen, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    close(t->uffd);
    t->uffd = -1;
    if (t->pagemap_fd >= 0)
        close(t->pagemap_fd);
    t->pagemap_fd = -1;
    return rc;
}

/* vmp_dirty_create -- create a tracker with the requested (or best) backend */
VMP_API int vmp_dirty_create(const vmp_dirty_opts_t *opts, vmp_dirty_t **out)
{
    vmp_dirty_opts_t o = {0};
    char why[256] = "";
    if (out == NULL)
        return EINVAL;
    *out = NULL;
    if (opts != NULL)
        o = *opts;
    if ((unsigned)o.backend > VMP_BACKEND_COUNT)
        return EINVAL;
    if (o.backend == VMP_BACKEND_WP_ASYNC && o.hook != NULL)
        return ENOTSUP; /* the kernel resolves WP_ASYNC faults: there is no place to hook */
    struct vmp_dirty *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ENOMEM;
    t->uffd = -1;
    t->pagemap_fd = -1;
    t->hook = o.hook;
    t->hook_arg = o.hook_arg;
    pthread_mutex_init(&t->lock, NULL);
    int rc;
    if (o.backend != VMP_BACKEND_AUTO) {
        rc = dirty_open_backend(t, o.backend, why, sizeof(why));
        if (rc != 0) {
            pthread_mutex_destroy(&t->lock);
            free(t);
            return rc;
        }
    } else {
        size_t used = 0;
        for (vmp_backend_t b = VMP_BACKEND_WP_ASYNC; b <= VMP_BACKEND_MPROTECT; b++) {
            if (b == VMP_BACKEND_WP_ASYNC && o.hook != NULL) {
                snprintf(why, sizeof(why), "a first-write hook was requested");
                rc = ENOTSUP;
            } else {
                rc = dirty_open_backend(t, b, why, sizeof(why));
            }
            if (rc == 0)
                break;
            int k = snprintf(t->reason + used, sizeof(t->reason) - used, "%s%s unavailable: %s",
                             used ? "; " : "", vmp_backend_name(b), why);
            if (k > 0)
                used =
                    used + (size_t)k < sizeof(t->reason) ? used + (size_t)k : sizeof(t->reason) - 1;
        }
    }
    *out = t;
    return 0;
}

/* dirty_range_disarm -- backend-specific disarm of one range */
static int dirty_range_disarm(struct vmp_dirty *t, struct dirty_range *r)
{
    return t->backend == VMP_BACKEND_WP_ASYNC ? wpasync_disarm(t, r) : fault_disarm(t, r);
}

/* vmp_dirty_destroy -- disarm everything and free */
VMP_API void vmp_dirty_destroy(vmp_dirty_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nranges; i++) {
        dirty_range_disarm(t, t->ranges[i]);
        free(t->ranges[i]);
    }
    t->nranges = 0;
    pthread_mutex_unlock(&t->lock);
    if (t->uffd >= 0)
        close(t->uffd);
    if (t->pagemap_fd >= 0)
        close(t->pagemap_fd);
    free(t->scan_vec);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* vmp_dirty_backend -- the tracker's backend */
VMP_API vmp_backend_t vmp_dirty_backend(const vmp_dirty_t *t)
{
    return t->backend;
}

/* vmp_dirty_reason -- why AUTO did not choose a better backend */
VMP_API const char *vmp_dirty_reason(const vmp_dirty_t *t)
{
    return t->reason;
}

/* vmp_dirty_errmsg -- message of the last failure */
VMP_API const char *vmp_dirty_errmsg(const vmp_dirty_t *t)
{
    return t->errmsg;
}

/* vmp_dirty_arm -- start tracking [addr, addr+len) */
VMP_API int vmp_dirty_arm(vmp_dirty_t *t, void *addr, size_t len)
{
    return vmp_dirty_arm_sparse(t, addr, len, len);
}

/* vmp_dirty_arm_sparse -- vmp_dirty_arm; with WP_ASYNC only [addr, addr+wp_len) is
 * write-protected (see vmprim.h) */
VMP_API int vmp_dirty_arm_sparse(vmp_dirty_t *t, void *addr, size_t len, size_t wp_len)
{
    size_t ps = vmp_page_size();
    uintptr_t a = (uintptr_t)addr;
    if (t == NULL)
        return EINVAL;
    pthread_mutex_lock(&t->lock);
    int rc;
    if (len == 0 || (a & (ps - 1)) != 0 || (len & (ps - 1)) != 0 || a + len < a) {
        rc = dirty_set_err(t, EINVAL,
                           "arm(%p, %zu): address and length must be page aligned "
                           "(page size %zu) and non-zero",
                           addr, len, ps);
        goto out;
    }
    for (size_t i = 0; i < t->nranges; i++) {
        struct dirty_range *o = t->ranges[i];
        if (a < o->start + o->len && o->start < a + len) {
            rc = dirty_set_err(t, EINVAL, "arm(%p, %zu): overlaps the armed range %p+%zu", addr,
                               len, (void *)o->start, o->len);
            goto out;
        }
    }
    if (t->nranges == DIRTY_MAX_RANGES) {
        rc = dirty_set_err(t, ENOSPC, "arm: tracker already has %d ranges", DIRTY_MAX_RANGES);
        goto out;
    }
    struct dirty_range *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        rc = dirty_set_err(t, ENOMEM, "arm: out of memory");
        goto out;
    }
    r->start = a;
    r->len = len;
    r->npages = len / ps;
    r->trap_id = -1;
    r->owner = t;
    if (wp_len > len)
        wp_len = len;
    wp_len = (wp_len + ps - 1) & ~(ps - 1);
    rc = t->backend == VMP_BACKEND_WP_ASYNC ? wpasync_arm(t, r, wp_len) : fault_arm(t, r);
    if (rc != 0) {
        free(r);
        goto out;
    }
    t->ranges[t->nranges++] = r;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* vmp_dirty_disarm -- stop tracking the range armed at addr */
VMP_API int vmp_dirty_disarm(vmp_dirty_t *t, void *addr)
{
    if (t == NULL)
        return EINVAL;
    pthread_mutex_lock(&t->lock);
    int rc = dirty_set_err(t, EINVAL, "disarm(%p): no armed range starts there", addr);
    for (size_t i = 0; i < t->nranges; i++) {
        struct dirty_range *r = t->ranges[i];
        if (r->start != (uintptr_t)addr)
            continue;
        rc = dirty_range_disarm(t, r);
        free(r);
        memmove(&t->ranges[i], &t->ranges[i + 1], (t->nranges - i - 1) * sizeof(r));
        t->nranges--;
        t->cont_active = 0; /* an unfinished collect restarts from the first range */
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* Output of the array form of collect. */
struct dirty_out {
    void **pages;
    size_t n;
};

/* dirty_emit_pages -- run callback expanding a run into page addresses */
static void dirty_emit_pages(void *start, size_t npages, void *arg)
{
    struct dirty_out *o = arg;
    size_t ps = vmp_page_size();
    for (size_t i = 0; i < npages; i++)
        o->pages[o->n++] = (char *)start + i * ps;
}

/* dirty_collect_locked -- advance the (possibly continued) collect with the given budget.
 * Returns 0 or errno; *more says whether the collect is unfinished. */
static int dirty_collect_locked(struct vmp_dirty *t, size_t room, vmp_run_fn fn, void *arg,
                                int *more)
{
    int rc = 0;
    if (!t->cont_active) {
        t->cont_active = 1;
        t->cont_range = 0;
        t->cont_word = 0;
        t->cont_addr = t->nranges > 0 ? t->ranges[0]->start : 0;
    }
    while (t->cont_range < t->nranges) {
        struct dirty_range *r = t->ranges[t->cont_range];
        int done;
        if (t->backend == VMP_BACKEND_WP_ASYNC) {
            rc = wpasync_collect(t, r, &t->cont_addr, &room, fn, arg);
            done = t->cont_addr >= r->start + r->len;
        } else {
            rc = fault_collect(t, r, &t->cont_word, &room, fn, arg);
            done = t->cont_word >= (r->npages + 63) / 64;
        }
        if (rc != 0 || !done)
            break;
        t->cont_range++;
        t->cont_word = 0;
        if (t->cont_range < t->nranges)
            t->cont_addr = t->ranges[t->cont_range]->start;
    }
    *more = rc == 0 && t->cont_range < t->nranges;
    if (!*more)
        t->cont_active = 0; /* complete (or failed: the next call starts afresh) */
    return rc;
}

/* vmp_dirty_collect -- report written pages into an array, re-arming them */
VMP_API int vmp_dirty_collect(vmp_dirty_t *t, void **pages, size_t cap, size_t *n, int *more)
{
    if (t == NULL || pages == NULL || cap == 0 || n == NULL || more == NULL)
        return EINVAL;
    struct dirty_out o = {pages, 0};
    pthread_mutex_lock(&t->lock);
    t->errmsg[0] = '\0';
    int rc = dirty_collect_locked(t, cap, dirty_emit_pages, &o, more);
    pthread_mutex_unlock(&t->lock);
    *n = o.n;
    return rc;
}

/* vmp_dirty_collect_runs -- a complete collect reporting runs to fn */
VMP_API int vmp_dirty_collect_runs(vmp_dirty_t *t, vmp_run_fn fn, void *arg)
{
    int more;
    if (t == NULL || fn == NULL)
        return EINVAL;
    pthread_mutex_lock(&t->lock);
    t->errmsg[0] = '\0';
    int rc = dirty_collect_locked(t, SIZE_MAX, fn, arg, &more);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* vmp_dirty_peek_runs -- the written pages, without re-arming (WP_ASYNC only) */
VMP_API int vmp_dirty_peek_runs(vmp_dirty_t *t, vmp_run_fn fn, void *arg)
{
    if (t == NULL || fn == NULL)
        return EINVAL;
    if (t->backend != VMP_BACKEND_WP_ASYNC)
        return ENOTSUP;
    pthread_mutex_lock(&t->lock);
    t->errmsg[0] = '\0';
    int rc = 0;
    for (size_t i = 0; i < t->nranges && rc == 0; i++)
        rc = wpasync_peek(t, t->ranges[i], fn, arg);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* vmp_dirty_prepare_write -- open and record [addr, addr+len) before a kernel write */
VMP_API int vmp_dirty_prepare_write(vmp_dirty_t *t, void *addr, size_t len)
{
    if (t == NULL)
        return EINVAL;
    if (t->backend == VMP_BACKEND_WP_ASYNC || len == 0)
        return 0;
    size_t ps = vmp_page_size();
    uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(ps - 1);
    uintptr_t b = ((uintptr_t)addr + len + ps - 1) & ~(uintptr_t)(ps - 1);
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nranges && rc == 0; i++) {
        struct dirty_range *r = t->ranges[i];
        uintptr_t lo = a > r->start ? a : r->start;
        uintptr_t hi = b < r->start + r->len ? b : r->start + r->len;
        if (lo < hi)
            rc = fault_prepare(t, r, lo, hi);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* vmp_dirty_release -- release whole pages of tracked memory, keeping them tracked */
VMP_API int vmp_dirty_release(vmp_dirty_t *t, void *addr, size_t len)
{
    size_t ps = vmp_page_size();
    uintptr_t a = (uintptr_t)addr, b = a + len;
    if (t == NULL || (a & (ps - 1)) != 0 || (len & (ps - 1)) != 0 || b < a)
        return EINVAL;
    if (len == 0)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    t->errmsg[0] = '\0';
    /* Untracked parts first, then each armed range's part by its backend (wp-async needs
     * nothing more than the madvise: it keeps its write protection in the empty page-table
     * entry of a file mapping, and an anonymous page written after the release is reported
     * as written because it comes back without the protection bit). */
    uintptr_t at = a;
    while (at < b && rc == 0) {
        struct dirty_range *r = NULL;
        uintptr_t next = b;
        for (size_t i = 0; i < t->nranges; i++) {
            struct dirty_range *q = t->ranges[i];
            if (at >= q->start && at < q->start + q->len)
                r = q;
            else if (q->start > at && q->start < next)
                next = q->start;
        }
        if (r == NULL) {
            if (madvise((void *)at, next - at, MADV_DONTNEED) != 0)
                rc = dirty_set_err(t, errno, "madvise(%p, %zu, MADV_DONTNEED): %s", (void *)at,
                                   next - at, strerror(errno));
            at = next;
            continue;
        }
        uintptr_t end = b < r->start + r->len ? b : r->start + r->len;
        if (t->backend == VMP_BACKEND_WP_ASYNC) {
            if (madvise((void *)at, end - at, MADV_DONTNEED) != 0)
                rc = dirty_set_err(t, errno, "madvise(%p, %zu, MADV_DONTNEED): %s", (void *)at,
                                   end - at, strerror(errno));
        } else {
            rc = fault_release(t, r, at, end);
        }
        at = end;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}
