/* SPDX-License-Identifier: MIT */
/*
 * dirty_wpasync.c -- DIRTY backend WP_ASYNC: userfaultfd asynchronous write-protect read
 * and re-armed by the PAGEMAP_SCAN ioctl (Linux 6.7+).
 *
 * Arming registers the range in write-protect mode on a descriptor with UFFD_FEATURE_WP_ASYNC
 * and write-protects it (UFFD_FEATURE_WP_UNPOPULATED makes that cover never-touched pages of
 * anonymous memory too; shmem always gets markers). A write to a protected page is resolved
 * by the kernel itself: it clears the page's uffd-wp bit and lets the write proceed -- no
 * signal, no thread, and kernel-mode writes (read(2)) work the same way.
 *
 * Collect is one ioctl per chunk: PAGEMAP_SCAN with PM_SCAN_WP_MATCHING reports pages whose
 * category PAGE_IS_WRITTEN is set (uffd-wp bit clear) and write-protects exactly those pages,
 * under the page-table lock and with a TLB flush before it returns. So a write either happened
 * before the scan reached its page (reported now, and in memory when we return) or faults
 * again after re-protection (reported next time): the header's rules 1-3 hold. The
 * PM_SCAN_CHECK_WPASYNC flag makes the kernel refuse ranges that are not async-wp registered
 * instead of silently reporting them.
 *
 * The walk_end quirk: past 512 returned regions walk_end is not reliable.
 * We never use it: a scan is complete when the output vector came back with room left and
 * the page budget was not used up; otherwise we resume at the end of the last region
 * returned (every page before it was scanned; re-scanning clean pages is harmless).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmprim_int.h"

/* PAGEMAP_SCAN uapi (linux/fs.h, 6.7+); Debian 12's headers are 6.1. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
struct page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#define WPASYNC_VEC_LEN 1024

/* wpasync_scan -- one PAGEMAP_SCAN: report-and-protect written pages of [start,end).
 * Returns the number of regions or -errno. */
static long wpasync_scan(int pagemap_fd, uintptr_t start, uintptr_t end, struct page_region *vec,
                         size_t vec_len, uint64_t max_pages, int sparse, int protect)
{
    struct pm_scan_arg arg = {
        .size = sizeof(arg),
        .flags = (protect ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
        .start = start,
        .end = end,
        .vec = (uintptr_t)vec,
        .vec_len = vec_len,
        .max_pages = max_pages,
        .category_mask = PAGE_IS_WRITTEN,
        .return_mask = PAGE_IS_WRITTEN,
        /* sparse ranges (wpasync_arm): a hole has no uffd-wp marker and would count as
         * written; only a page that exists can have been written (private memory: a written
         * page is anonymous and stays present or in swap until the caller discards it) */
        .category_anyof_mask = sparse ? PAGE_IS_PRESENT | PAGE_IS_SWAPPED : 0,
    };
    long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
    return n < 0 ? -errno : n;
}

/* wpasync_probe -- try WP_ASYNC + PAGEMAP_SCAN on a scratch page; 0 or errno + why */
int wpasync_probe(int uffd, char *why, size_t whylen)
{
    size_t ps = vmp_page_size();
    struct page_region vec[4];
    int rc = 0;
    char *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(why, whylen, "wp-async probe: mmap: %s", strerror(errno));
        return errno;
    }
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0) {
        rc = errno;
        snprintf(why, whylen, "wp-async: cannot open /proc/self/pagemap: %s", strerror(rc));
        goto out;
    }
    if ((rc = uffd_register_wp(uffd, p, 2 * ps)) != 0 || (rc = uffd_wp(uffd, p, 2 * ps, 1)) != 0) {
        snprintf(why, whylen, "wp-async probe: UFFDIO_REGISTER/WRITEPROTECT: %s", strerror(rc));
        goto out;
    }
    p[ps] = 1; /* resolved by the kernel (async); must be reported, page 0 must not */
    long n = wpasync_scan(pm, (uintptr_t)p, (uintptr_t)p + 2 * ps, vec, 4, 0, 0, 1);
    if (n < 0) {
        rc = (int)-n;
        snprintf(why, whylen, "wp-async: PAGEMAP_SCAN on /proc/self/pagemap: %s (needs Linux 6.7+)",
                 strerror(rc));
    } else if (n != 1 || vec[0].start != (uintptr_t)p + ps || vec[0].end != (uintptr_t)p + 2 * ps) {
        rc = ENOTSUP;
        snprintf(why, whylen, "wp-async: PAGEMAP_SCAN reported %ld regions for one written page",
                 n);
    }
out:
    if (pm >= 0)
        close(pm);
    munmap(p, 2 * ps);
    return rc;
}

/* wpasync_arm -- register [start,len) async-wp and protect its first wp_len bytes (all
 * pages clean now). Beyond wp_len the caller promises that no page is populated: a
 * never-populated page (pte_none, no uffd-wp marker) that is then written gets a present,
 * writable pte without the uffd-wp bit, which PAGEMAP_SCAN reports as written like any
 * other; one that is only read gets such a pte too and is over-reported once (the scan
 * protects it). Protecting an unpopulated range instead installs markers, allocating page
 * tables for all of it: 67 ms and 32 MiB for the shim's 16 GiB reservation, and every
 * collect then walks those tables (~20 ms). A hole left unprotected would be reported as
 * written by PAGEMAP_SCAN, so the collects of a sparse range only look at pages that
 * exist (wpasync_scan); that is sound for PRIVATE memory only, where a written page never
 * becomes a hole again unless the caller discards it (vmprim.h). */
int wpasync_arm(struct vmp_dirty *t, struct dirty_range *r, size_t wp_len)
{
    r->sparse = wp_len < r->len;
    int rc = uffd_register_wp(t->uffd, (void *)r->start, r->len);
    if (rc != 0)
        return dirty_set_err(t, rc,
                             "wp-async: UFFDIO_REGISTER(%p, %zu): %s (memory must be "
                             "private anonymous or shared memfd/shmem, mapped read-write)",
                             (void *)r->start, r->len, strerror(rc));
    rc = wp_len ? uffd_wp(t->uffd, (void *)r->start, wp_len, 1) : 0;
    if (rc != 0) {
        uffd_unregister(t->uffd, (void *)r->start, r->len);
        return dirty_set_err(t, rc, "wp-async: UFFDIO_WRITEPROTECT(%p, %zu): %s", (void *)r->start,
                             wp_len, strerror(rc));
    }
    return 0;
}

/* wpasync_disarm -- unregister (this also drops the write protection) */
int wpasync_disarm(struct vmp_dirty *t, struct dirty_range *r)
{
    int rc = uffd_unregister(t->uffd, (void *)r->start, r->len);
    if (rc != 0)
        return dirty_set_err(t, rc, "wp-async: UFFDIO_UNREGISTER(%p, %zu): %s", (void *)r->start,
                             r->len, strerror(rc));
    return 0;
}

/* wpasync_collect -- scan [*addr, range end) re-arming written pages; runs go to fn */
int wpasync_collect(struct vmp_dirty *t, struct dirty_range *r, uintptr_t *addr, size_t *room,
                    vmp_run_fn fn, void *arg)
{
    struct page_region *vec = t->scan_vec;
    uintptr_t end = r->start + r->len;
    unsigned sh = page_shift();
    while (*addr<end && * room> 0) {
        uint64_t budget = *room == SIZE_MAX ? 0 : (uint64_t)*room;
        long n =
            wpasync_scan(t->pagemap_fd, *addr, end, vec, t->scan_vec_len, budget, r->sparse, 1);
        if (n < 0)
            return dirty_set_err(t, (int)-n, "wp-async: PAGEMAP_SCAN(%p..%p): %s", (void *)*addr,
                                 (void *)end, strerror((int)-n));
        uint64_t got = 0;
        for (long i = 0; i < n; i++) {
            size_t np = (size_t)((vec[i].end - vec[i].start) >> sh);
            got += np;
            if (*room != SIZE_MAX)
                *room -= np;
            fn((void *)(uintptr_t)vec[i].start, np, arg);
        }
        int full = (size_t)n == t->scan_vec_len || (budget != 0 && got >= budget);
        if (!full) {
            *addr = end; /* the kernel walked to the end: do not trust walk_end */
            break;
        }
        *addr = (uintptr_t)vec[n - 1].end;
    }
    return 0;
}

/* wpasync_peek -- report the written pages of r to fn WITHOUT re-arming them (a PAGEMAP_SCAN
 * without PM_SCAN_WP_MATCHING): a preview of what the next collect will report */
int wpasync_peek(struct vmp_dirty *t, struct dirty_range *r, vmp_run_fn fn, void *arg)
{
    struct page_region *vec = t->scan_vec;
    uintptr_t addr = r->start, end = r->start + r->len;
    unsigned sh = page_shift();
    while (addr < end) {
        long n = wpasync_scan(t->pagemap_fd, addr, end, vec, t->scan_vec_len, 0, r->sparse, 0);
        if (n < 0)
            return dirty_set_err(t, (int)-n, "wp-async: PAGEMAP_SCAN(%p..%p): %s", (void *)addr,
                                 (void *)end, strerror((int)-n));
        for (long i = 0; i < n; i++)
            fn((void *)(uintptr_t)vec[i].start, (size_t)((vec[i].end - vec[i].start) >> sh), arg);
        if ((size_t)n < t->scan_vec_len)
            break; /* the kernel walked to the end (walk_end is not trusted) */
        addr = (uintptr_t)vec[n - 1].end;
    }
    return 0;
}
