/* SPDX-License-Identifier: MIT */
/*
 * test_dirty_sparse.c -- vmp_dirty_arm_sparse with WP_ASYNC: only the first wp_len bytes are
 * write-protected; a write anywhere in the range is still reported, at every epoch, on
 * private anonymous memory and on a MAP_PRIVATE mapping of a sparse file (the shim's heap).
 * Reads beyond wp_len may be over-reported once; nothing untouched is ever reported.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <lrvm/vmprim.h>

#define LEN ((size_t)64 << 20)
#define WP_LEN ((size_t)1 << 20)

/* collect -- every reported page, as page indexes from base, into idx (cap entries) */
static size_t collect(vmp_dirty_t *t, char *base, size_t *idx, size_t cap)
{
    void *pages[256];
    size_t n, total = 0;
    int more;
    do {
        cr_assert_eq(vmp_dirty_collect(t, pages, 256, &n, &more), 0, "%s", vmp_dirty_errmsg(t));
        for (size_t i = 0; i < n && total < cap; i++)
            idx[total++] = (size_t)((char *)pages[i] - base) / vmp_page_size();
    } while (more);
    return total;
}

/* has -- is page i among the n reported? */
static int has(const size_t *idx, size_t n, size_t i)
{
    for (size_t k = 0; k < n; k++)
        if (idx[k] == i)
            return 1;
    return 0;
}

/* check -- arm [base, LEN) sparsely and exercise writes inside and beyond wp_len */
static void check(char *base, const char *what)
{
    char why[256];
    if (vmp_backend_probe(VMP_BACKEND_WP_ASYNC, why, sizeof(why)) != 0)
        cr_skip_test("wp-async not available: %s", why);
    size_t ps = vmp_page_size(), idx[64], n;
    vmp_dirty_opts_t o = {.backend = VMP_BACKEND_WP_ASYNC};
    vmp_dirty_t *t;
    cr_assert_eq(vmp_dirty_create(&o, &t), 0);
    cr_assert_eq(vmp_dirty_arm_sparse(t, base, LEN, WP_LEN), 0, "%s: %s", what,
                 vmp_dirty_errmsg(t));
    size_t in = 3, beyond = (32u << 20) / ps, read_only = (40u << 20) / ps;
    n = collect(t, base, idx, 64);
    cr_assert_eq(n, 0, "%s: %zu pages reported before any access", what, n);
    for (int epoch = 0; epoch < 3; epoch++) {
        base[in * ps + (size_t)epoch] = 1;
        base[beyond * ps + (size_t)epoch] = 1;
        volatile char c = base[read_only * ps];
        (void)c;
        n = collect(t, base, idx, 64);
        cr_assert(has(idx, n, in), "%s epoch %d: the write below wp_len was not reported", what,
                  epoch);
        cr_assert(has(idx, n, beyond), "%s epoch %d: the write beyond wp_len was not reported",
                  what, epoch);
        for (size_t k = 0; k < n; k++)
            cr_assert(idx[k] == in || idx[k] == beyond || (idx[k] == read_only && epoch == 0),
                      "%s epoch %d: page %zu reported, never written", what, epoch, idx[k]);
    }
    n = collect(t, base, idx, 64);
    cr_assert_eq(n, 0, "%s: %zu pages reported with no write", what, n);
    cr_assert_eq(vmp_dirty_disarm(t, base), 0);
    vmp_dirty_destroy(t);
}

Test(dirty_sparse, anonymous)
{
    char *m =
        mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    check(m, "anonymous");
    munmap(m, LEN);
}

Test(dirty_sparse, private_file_mapping)
{
    char path[] = "/tmp/lrvm-sparse-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(ftruncate(fd, (off_t)LEN), 0);
    cr_assert_eq(pwrite(fd, "x", 1, (off_t)(40u << 20)), 1); /* a page-cache page to read */
    char *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    check(m, "MAP_PRIVATE file");
    munmap(m, LEN);
    close(fd);
}

/* peek_cb -- count the pages a peek reports */
static void peek_cb(void *start, size_t npages, void *arg)
{
    (void)start;
    *(size_t *)arg += npages;
}

/* vmp_dirty_peek_runs previews the next collect without re-arming: the pages it reports are
 * reported again by the collect, and a second peek after the collect reports nothing */
Test(dirty_sparse, peek_does_not_rearm)
{
    char why[256];
    if (vmp_backend_probe(VMP_BACKEND_WP_ASYNC, why, sizeof(why)) != 0)
        cr_skip_test("wp-async not available: %s", why);
    size_t ps = vmp_page_size(), idx[64];
    char *m =
        mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    vmp_dirty_opts_t o = {.backend = VMP_BACKEND_WP_ASYNC};
    vmp_dirty_t *t;
    cr_assert_eq(vmp_dirty_create(&o, &t), 0);
    cr_assert_eq(vmp_dirty_arm_sparse(t, m, LEN, WP_LEN), 0, "%s", vmp_dirty_errmsg(t));
    m[5 * ps] = 1;
    m[(40u << 20) + 7] = 1;
    size_t seen = 0;
    cr_assert_eq(vmp_dirty_peek_runs(t, peek_cb, &seen), 0);
    cr_assert_eq(seen, 2, "peek saw %zu pages", seen);
    seen = 0;
    cr_assert_eq(vmp_dirty_peek_runs(t, peek_cb, &seen), 0);
    cr_assert_eq(seen, 2, "a second peek saw %zu pages: the first re-armed", seen);
    size_t n = collect(t, m, idx, 64);
    cr_assert(n == 2 && has(idx, n, 5) && has(idx, n, (40u << 20) / ps), "collect saw %zu", n);
    seen = 0;
    cr_assert_eq(vmp_dirty_peek_runs(t, peek_cb, &seen), 0);
    cr_assert_eq(seen, 0);
    vmp_dirty_destroy(t);
    munmap(m, LEN);
}
