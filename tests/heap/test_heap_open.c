/* SPDX-License-Identifier: MIT */
/*
 * test_heap_open.c -- restart: a saved heap image reopens at its base with its contents,
 * root and no leaked cache blocks; foreign, moved, other-version or corrupted images are
 * refused with a clear message and a defined code.
 */
#include <errno.h>
#include <fcntl.h>

#include "heap_test.h"

TestSuite(heap_open, .timeout = 60);

static char img[128];

/* make_image -- create a heap, fill it, save it to img; returns the number of live blocks */
static size_t make_image(void)
{
    struct theap t;
    theap_create(&t, T_BASE, T_RESERVE);
    tmp_path(img, sizeof(img), "img");
    void **live = heap_malloc(t.h, 1000 * sizeof(void *));
    size_t nlive = 0;
    uint64_t s = 42;
    for (int i = 0; i < 1000; i++) {
        size_t n = 16 + rnd(&s) % 3000;
        if (i % 50 == 0)
            n = 70000 + rnd(&s) % 300000;
        char *p = heap_malloc(t.h, n);
        cr_assert_not_null(p);
        *(size_t *)p = n;
        pat_fill(p + 8, n - 8, (uint64_t)i);
        if (i % 2 == 0) {
            live[nlive++] = p;
        } else {
            heap_free(t.h, p); /* many of these sit in the thread cache at save time */
        }
    }
    live[nlive] = NULL;
    heap_set_root(t.h, live);
    cr_assert_eq(heap_file_save(t.f, img), 0);
    heap_close(t.h);
    heap_file_close(t.f);
    unlink(t.path);
    return nlive + 1;
}

/* open_image -- open img at base; returns heap_open's code, *rep gets the reports */
static int open_image(void *base, struct heap_file **f, struct heap **h, struct reports *rep)
{
    memset(rep, 0, sizeof(*rep));
    int rc = heap_file_open(f, img, base, T_RESERVE);
    cr_assert_eq(rc, 0);
    struct heap_opts o;
    heap_opts_init(&o);
    o.report = collect_report;
    o.report_arg = rep;
    return heap_open(h, base, heap_file_backing(*f), &o);
}

/* patch -- overwrite bytes of the image file */
static void patch(off_t off, const void *data, size_t n)
{
    int fd = open(img, O_RDWR);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, data, n, off), (ssize_t)n);
    close(fd);
}

Test(heap_open, reopen_keeps_contents_root_and_reclaims_caches)
{
    size_t nlive = make_image();
    struct heap_file *f;
    struct heap *h;
    struct reports rep;
    cr_assert_eq(open_image(T_BASE, &f, &h, &rep), 0, "%s", rep.all);
    void **live = heap_get_root(h);
    cr_assert_not_null(live);
    size_t i = 0;
    for (; live[i]; i++) {
        char *p = live[i];
        size_t n = *(size_t *)p;
        cr_assert(heap_usable_size(h, p) >= n);
        cr_assert(pat_ok(p + 8, n - 8, (uint64_t)(2 * i)), "block %zu contents", i);
    }
    cr_assert_eq(i + 1, nlive);
    struct heap_stats st;
    heap_stats_get(h, &st);
    cr_assert_eq(st.nallocated, nlive, "cached blocks at save time are free after reopen");
    size_t nv;
    cr_assert_eq(heap_check(h, NULL, NULL, &nv), 0);
    /* the reopened heap works: free everything, allocate again */
    for (i = 0; live[i]; i++)
        cr_assert_eq(heap_free(h, live[i]), 0);
    cr_assert_eq(heap_free(h, live), 0);
    for (i = 0; i < 1000; i++)
        cr_assert_not_null(heap_malloc(h, 100 + i));
    cr_assert_eq(heap_check(h, NULL, NULL, &nv), 0);
    heap_close(h);
    heap_file_close(f);
    unlink(img);
}

Test(heap_open, different_base_is_refused)
{
    make_image();
    struct heap_file *f;
    struct heap *h;
    struct reports rep;
    cr_assert_eq(open_image(T_BASE2, &f, &h, &rep), HEAP_EBASE);
    cr_assert_null(h);
    cr_assert(strstr(rep.last, "0x5e0000000000") && strstr(rep.last, "0x5f0000000000"),
              "names both addresses: %s", rep.last);
    heap_file_close(f);
    unlink(img);
}

Test(heap_open, other_format_version_is_refused)
{
    make_image();
    struct heap_header hd;
    int fd = open(img, O_RDONLY);
    cr_assert_eq(pread(fd, &hd, sizeof(hd), 0), (ssize_t)sizeof(hd));
    close(fd);
    hd.version = HEAP_FORMAT_VERSION + 1;
    hd.checksum = heap_header_checksum(&hd); /* a genuine other-version header */
    patch(0, &hd, sizeof(hd));
    struct heap_file *f;
    struct heap *h;
    struct reports rep;
    cr_assert_eq(open_image(T_BASE, &f, &h, &rep), HEAP_EVERSION);
    cr_assert(strstr(rep.last, "version is 2") && strstr(rep.last, "reads version 1"), "%s",
              rep.last);
    heap_file_close(f);
    unlink(img);
}

Test(heap_open, corrupted_headers_are_refused)
{
    struct {
        off_t off;
        const char *bytes;
        size_t n;
        int rc;
        const char *msg;
    } cases[] = {
        {0, "XXXX", 4, HEAP_EBADMAGIC, "magic"},
        {offsetof(struct heap_header, reserve) + 3, "\x7f", 1, HEAP_ECHECKSUM, "checksum"},
        {offsetof(struct heap_header, base) + 1, "\x01", 1, HEAP_ECHECKSUM, "checksum"},
        {offsetof(struct heap_header, size), "\x01\x00\x10", 3, HEAP_EGEOMETRY, "size field"},
        {offsetof(struct heap_header, nchunks), "\x09", 1, HEAP_EGEOMETRY, "size field"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        make_image();
        patch(cases[i].off, cases[i].bytes, cases[i].n);
        struct heap_file *f;
        struct heap *h;
        struct reports rep;
        cr_assert_eq(open_image(T_BASE, &f, &h, &rep), cases[i].rc, "case %zu: %s", i, rep.all);
        cr_assert(strstr(rep.last, cases[i].msg), "case %zu: %s", i, rep.last);
        heap_file_close(f);
        unlink(img);
    }
}

Test(heap_open, truncated_and_empty_images_are_refused)
{
    make_image();
    cr_assert_eq(truncate(img, (off_t)HEAP_CHUNK + 4096), 0);
    struct heap_file *f;
    struct heap *h;
    struct reports rep;
    cr_assert_eq(open_image(T_BASE, &f, &h, &rep), HEAP_ESHORT);
    cr_assert(strstr(rep.last, "truncated"), "%s", rep.last);
    heap_file_close(f);
    cr_assert_eq(truncate(img, 0), 0);
    cr_assert_eq(open_image(T_BASE, &f, &h, &rep), HEAP_ESHORT);
    heap_file_close(f);
    unlink(img);
}

Test(heap_open, corrupted_metadata_is_refused)
{
    make_image();
    /* chunk 1, first data span: claim 2000 pages */
    uint32_t big = 2000;
    patch((off_t)(HEAP_CHUNK + HEAP_META_PAGES * sizeof(struct heap_pdesc) +
                  offsetof(struct heap_pdesc, npages)),
          &big, 4);
    struct heap_file *f;
    struct heap *h;
    struct reports rep;
    cr_assert_eq(open_image(T_BASE, &f, &h, &rep), HEAP_ECORRUPT);
    cr_assert(strstr(rep.all, "does not fit"), "%s", rep.all);
    cr_assert(strstr(rep.last, "refusing to open"), "%s", rep.last);
    heap_file_close(f);
    /* without the checker, the rebuild still refuses instead of crashing */
    cr_assert_eq(heap_file_open(&f, img, T_BASE, T_RESERVE), 0);
    struct heap_opts o;
    heap_opts_init(&o);
    o.check_on_open = 0;
    o.report = collect_report;
    o.report_arg = &rep;
    cr_assert_eq(heap_open(&h, T_BASE, heap_file_backing(f), &o), HEAP_ECORRUPT);
    heap_file_close(f);
    unlink(img);
}

Test(heap_open, address_in_use_is_a_clear_error)
{
    struct theap t;
    theap_create(&t, T_BASE, T_RESERVE);
    struct heap_file *f2;
    char p2[128];
    tmp_path(p2, sizeof(p2), "second");
    cr_assert_eq(heap_file_create(&f2, p2, T_BASE, T_RESERVE), EEXIST);
    unlink(p2);
    theap_destroy(&t);
}
