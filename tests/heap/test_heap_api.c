/* SPDX-License-Identifier: MIT */
/*
 * test_heap_api.c -- every call and every size class of the heap, on one thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "heap_test.h"

static struct theap T;

static void setup(void)
{
    theap_create(&T, T_BASE, T_RESERVE);
}

static void teardown(void)
{
    theap_destroy(&T);
}

TestSuite(heap_api, .init = setup, .fini = teardown, .timeout = 60);

Test(heap_api, size_classes_are_sane)
{
    for (unsigned c = 0; c < HEAP_NCLASS; c++) {
        const struct heap_class *k = &heap_classes[c];
        cr_assert(k->size % 16 == 0, "class %u size %u", c, k->size);
        cr_assert(c == 0 || k->size > heap_classes[c - 1].size);
        cr_assert(k->npages >= 1 && k->npages <= 64);
        cr_assert(k->nblocks >= 1 && k->nblocks <= k->npages * HEAP_BITS_PER_PAGE);
        cr_assert_eq(heap_size_class(k->size), c, "size %u maps to class %u", k->size,
                     heap_size_class(k->size));
        if (c)
            cr_assert_eq(heap_size_class(heap_classes[c - 1].size + 1), c);
        /* waste at most 1/8 of a request just above the previous class */
        if (c)
            cr_assert(k->size - heap_classes[c - 1].size <=
                      (heap_classes[c - 1].size + 1) / 4 + 16);
    }
    cr_assert_eq(heap_classes[HEAP_NCLASS - 1].size, HEAP_SMALL_MAX);
}

Test(heap_api, every_class_malloc_write_free)
{
    for (unsigned c = 0; c < HEAP_NCLASS; c++) {
        size_t s = heap_classes[c].size;
        void *ps[300];
        unsigned n = heap_classes[c].nblocks * 2 + 3; /* spill into a second and third run */
        if (n > 300)
            n = 300;
        for (unsigned i = 0; i < n; i++) {
            ps[i] = heap_malloc(T.h, s);
            cr_assert_not_null(ps[i], "class %u", c);
            cr_assert_eq((uintptr_t)ps[i] % 16, 0);
            cr_assert_eq(heap_usable_size(T.h, ps[i]), s);
            pat_fill(ps[i], s, c * 1000 + i);
        }
        for (unsigned i = 0; i < n; i++) {
            cr_assert(pat_ok(ps[i], s, c * 1000 + i), "class %u block %u overwritten", c, i);
            cr_assert_eq(heap_free(T.h, ps[i]), 0);
        }
    }
    theap_check(&T);
    cr_assert_eq(T.rep.n, 0, "unexpected report: %s", T.rep.last);
}

Test(heap_api, malloc_zero_and_odd_sizes)
{
    void *p = heap_malloc(T.h, 0);
    cr_assert_not_null(p);
    cr_assert_eq(heap_usable_size(T.h, p), 16);
    for (size_t n = 1; n < 70000; n = n * 3 + 1) {
        void *q = heap_malloc(T.h, n);
        cr_assert_not_null(q);
        cr_assert(heap_usable_size(T.h, q) >= n);
        memset(q, 0xab, n);
        heap_free(T.h, q);
    }
    heap_free(T.h, p);
    cr_assert_eq(heap_free(T.h, NULL), 0);
    theap_check(&T);
}

Test(heap_api, large_and_huge)
{
    size_t sizes[] = {HEAP_SMALL_MAX + 1,
                      100000,
                      1 << 20,
                      3 << 20,
                      (size_t)HEAP_DATA_PAGES * 4096,
                      (size_t)HEAP_DATA_PAGES * 4096 + 1,
                      9 << 20,
                      64 << 20};
    void *ps[8];
    for (int i = 0; i < 8; i++) {
        ps[i] = heap_malloc(T.h, sizes[i]);
        cr_assert_not_null(ps[i], "size %zu", sizes[i]);
        cr_assert(heap_usable_size(T.h, ps[i]) >= sizes[i]);
        cr_assert_eq((uintptr_t)ps[i] % 4096, 0);
        pat_fill(ps[i], sizes[i], (uint64_t)i);
    }
    theap_check(&T);
    for (int i = 0; i < 8; i++) {
        cr_assert(pat_ok(ps[i], sizes[i], (uint64_t)i));
        cr_assert_eq(heap_free(T.h, ps[i]), 0);
    }
    theap_check(&T);
    struct heap_stats st;
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.nallocated, 0);
    cr_assert_eq(st.allocated, 0);
}

Test(heap_api, calloc_zeroes_and_overflows)
{
    /* dirty some memory first so calloc must really zero reused blocks */
    for (int r = 0; r < 2; r++) {
        void *ps[64];
        for (int i = 0; i < 64; i++) {
            ps[i] = r ? heap_calloc(T.h, 1, 100 + i * 997) : heap_malloc(T.h, 100 + i * 997);
            cr_assert_not_null(ps[i]);
            if (r) {
                for (size_t k = 0; k < (size_t)(100 + i * 997); k++)
                    cr_assert_eq(((unsigned char *)ps[i])[k], 0, "calloc byte %zu of %d", k, i);
            } else {
                memset(ps[i], 0xee, 100 + i * 997);
            }
        }
        for (int i = 0; i < 64; i++)
            heap_free(T.h, ps[i]);
    }
    /* large calloc from fresh pages (known zero) and from reused dirty pages */
    char *a = heap_malloc(T.h, 200000);
    memset(a, 0x5a, 200000);
    heap_free(T.h, a);
    char *b = heap_calloc(T.h, 2, 100000);
    for (size_t k = 0; k < 200000; k++)
        cr_assert_eq(b[k], 0);
    heap_free(T.h, b);
    errno = 0;
    cr_assert_null(heap_calloc(T.h, SIZE_MAX / 2, 3));
    cr_assert_eq(errno, ENOMEM);
}

Test(heap_api, realloc_in_place_and_moving)
{
    char *p = heap_malloc(T.h, 100);
    pat_fill(p, 100, 1);
    cr_assert_eq(heap_realloc(T.h, p, 110), p, "same class grows in place");
    cr_assert_eq(heap_realloc(T.h, p, 70), p, "shrink within half stays");
    char *q = heap_realloc(T.h, p, 5000);
    cr_assert_neq(q, p);
    cr_assert(pat_ok(q, 70, 1));
    /* large: grow into the following free pages */
    char *l = heap_malloc(T.h, 100000);
    pat_fill(l, 100000, 2);
    char *l2 = heap_realloc(T.h, l, 300000);
    cr_assert_eq(l2, l, "large grows in place when followed by free pages");
    cr_assert(pat_ok(l2, 100000, 2));
    cr_assert_eq(heap_realloc(T.h, l2, 70000), l2, "large shrinks in place");
    cr_assert_eq(heap_usable_size(T.h, l2), 70000 + 4096 - 70000 % 4096);
    /* huge: grow into following chunks */
    char *g = heap_malloc(T.h, 8 << 20);
    pat_fill(g, 4096, 3);
    char *g2 = heap_realloc(T.h, g, 20 << 20);
    cr_assert_eq(g2, g);
    cr_assert(pat_ok(g2, 4096, 3));
    cr_assert_eq(heap_realloc(T.h, g2, 5 << 20), g2);
    /* huge -> small moves */
    char *s = heap_realloc(T.h, g2, 64);
    cr_assert(pat_ok(s, 64, 3));
    cr_assert_null(heap_realloc(T.h, s, 0), "realloc(p, 0) frees");
    char *n = heap_realloc(T.h, NULL, 10);
    cr_assert_not_null(n);
    heap_free(T.h, n);
    heap_free(T.h, q);
    heap_free(T.h, l2);
    theap_check(&T);
    struct heap_stats st;
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.nallocated, 0);
}

Test(heap_api, memalign_every_power_of_two)
{
    for (size_t a = 1; a <= ((size_t)16 << 20); a <<= 1) {
        size_t sizes[] = {1, 24, 100, 4096, 40000, 200000};
        for (int i = 0; i < 6; i++) {
            void *p = heap_memalign(T.h, a, sizes[i]);
            cr_assert_not_null(p, "align %zu size %zu", a, sizes[i]);
            cr_assert_eq((uintptr_t)p % a, 0, "align %zu size %zu -> %p", a, sizes[i], p);
            cr_assert(heap_usable_size(T.h, p) >= sizes[i]);
            memset(p, 1, sizes[i]);
            cr_assert_eq(heap_free(T.h, p), 0);
        }
    }
    errno = 0;
    cr_assert_null(heap_memalign(T.h, 24, 10));
    cr_assert_eq(errno, EINVAL);
    theap_check(&T);
}

Test(heap_api, root_and_stats)
{
    void *p = heap_malloc(T.h, 1000);
    heap_set_root(T.h, p);
    cr_assert_eq(heap_get_root(T.h), p);
    void *l = heap_malloc(T.h, 1 << 20);
    struct heap_stats st;
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.nallocated, 2);
    cr_assert_eq(st.allocated, 1024 + (1 << 20));
    cr_assert(st.size >= 2 * HEAP_CHUNK);
    cr_assert(st.metadata >= HEAP_CHUNK);
    cr_assert(st.active >= (1 << 20));
    heap_free(T.h, l);
    heap_free(T.h, p);
    heap_stats_get(T.h, &st);
    cr_assert_eq(st.nallocated, 0);
    cr_assert(st.cached >= 1024, "the small block sits in the thread cache");
}

/* resident -- pages of [p, p+n) in memory */
static size_t resident(void *p, size_t n)
{
    unsigned char v[4096];
    size_t np = n / 4096, r = 0;
    cr_assert(np <= sizeof(v));
    cr_assert_eq(mincore(p, n, v), 0);
    for (size_t i = 0; i < np; i++)
        r += v[i] & 1;
    return r;
}

Test(heap_api, freed_pages_go_back_to_the_kernel)
{
    /* big free span: released at once */
    char *a = heap_malloc(T.h, 2 << 20);
    memset(a, 1, 2 << 20);
    cr_assert_eq(resident(a, 2 << 20), 512);
    heap_free(T.h, a);
    cr_assert_eq(resident(a, 2 << 20), 0, "a freed 2 MiB block is released at once");
    /* small frees: released in batches, all of it by heap_purge */
    char *b = heap_malloc(T.h, 256 << 10);
    memset(b, 1, 256 << 10);
    char *guard = heap_malloc(T.h, 40000); /* keep b from merging into the 1 MiB+ free tail */
    heap_free(T.h, b);
    heap_purge(T.h);
    cr_assert_eq(resident(b, 256 << 10), 0);
    heap_free(T.h, guard);
    /* a freed huge block */
    char *g = heap_malloc(T.h, 12 << 20);
    memset(g, 1, 12 << 20);
    heap_free(T.h, g);
    cr_assert_eq(resident(g, 8 << 20), 0);
    theap_check(&T);
}

/* counting backing: wraps the file backing, counts reserve_space calls */
static const struct heap_backing *inner;
static int nreserve;
static int count_reserve(void *ctx, size_t off, size_t len)
{
    nreserve++;
    return inner->reserve_space(ctx, off, len);
}

struct punch {
    size_t off[64], len[64];
    int n;
};
static void on_punch(void *arg, size_t off, size_t len)
{
    struct punch *p = arg;
    if (p->n < 64) {
        p->off[p->n] = off;
        p->len[p->n] = len;
    }
    p->n++;
}

Test(heap_punch, punchable_ranges_and_reserve_on_reuse, .timeout = 60)
{
    struct theap t;
    memset(&t, 0, sizeof(t));
    tmp_path(t.path, sizeof(t.path), "punch");
    cr_assert_eq(heap_file_create(&t.f, t.path, T_BASE, T_RESERVE), 0);
    inner = heap_file_backing(t.f);
    struct heap_backing b = *inner;
    b.reserve_space = count_reserve;
    cr_assert_eq(heap_create(&t.h, T_BASE, T_RESERVE, &b, NULL), 0);
    char *a = heap_malloc(t.h, 2 << 20);
    memset(a, 1, 2 << 20);
    heap_free(t.h, a); /* released now, file untouched */
    char *g = heap_malloc(t.h, 8 << 20);
    heap_free(t.h, g);
    struct punch p = {0};
    heap_lock_all(t.h);
    heap_punch_collect(t.h, on_punch, &p);
    heap_unlock_all(t.h);
    cr_assert(p.n >= 2, "a freed large run and freed huge chunks are punchable (%d)", p.n);
    int found_a = 0, found_g = 0;
    for (int i = 0; i < p.n && i < 64; i++) {
        char *lo = (char *)T_BASE + p.off[i], *hi = lo + p.len[i];
        found_a |= lo <= a && a + (2 << 20) <= hi;
        found_g |= lo <= g && g + HEAP_CHUNK <= hi;
        /* the commit layer would punch now, after the commit is durable */
        cr_assert_eq(fallocate(open(t.path, O_RDWR), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               (off_t)p.off[i], (off_t)p.len[i]),
                     0);
    }
    cr_assert(found_a && found_g);
    /* collected once only */
    struct punch p2 = {0};
    heap_punch_collect(t.h, on_punch, &p2);
    cr_assert_eq(p2.n, 0);
    /* reuse re-reserves file space before handing out the memory */
    nreserve = 0;
    char *c = heap_malloc(t.h, 2 << 20);
    cr_assert_not_null(c);
    cr_assert(nreserve >= 1, "reuse of a maybe-punched range reserves space again");
    char *h2 = heap_malloc(t.h, 8 << 20);
    cr_assert_not_null(h2);
    cr_assert(nreserve >= 2);
    size_t nv;
    cr_assert_eq(heap_check(t.h, NULL, NULL, &nv), 0);
    heap_close(t.h);
    heap_file_close(t.f);
    unlink(t.path);
}

/* ---- clean_bytes: what a conservative scan of the blocks may read ------------------------- */

static void clean_setup(void)
{
    theap_create_with(&T, T_BASE, T_RESERVE, SIZE_MAX);
}

TestSuite(heap_clean, .init = clean_setup, .fini = teardown, .timeout = 60);

/* clean -- block p of n requested bytes reads as zeros to its usable size, except the mark in
 * the top byte of the word holding byte n-1 when n is not a multiple of 8 */
static void expect_clean(const void *p, size_t n, const char *what)
{
    const unsigned char *b = p;
    size_t usable = heap_usable_size(T.h, p), mark = n % 8 ? (n - 1) | 7 : SIZE_MAX;
    cr_assert_geq(usable, n);
    for (size_t k = 0; k < usable; k++) {
        if (k == mark)
            cr_assert_neq(b[k], 0, "%s: n %zu: no mark at byte %zu", what, n, k);
        else
            cr_assert_eq(b[k], 0, "%s: n %zu: byte %zu of %zu is 0x%x", what, n, k, usable, b[k]);
    }
}

/* dirty -- fill the whole usable size of p, as a program that used it (and its slack) would */
static void dirty(void *p)
{
    memset(p, 0xee, heap_usable_size(T.h, p));
}

/* a reused block of any kind (small, large, aligned, calloc'ed) holds no byte of its earlier
 * use, and a short last word has its mark */
Test(heap_clean, reused_blocks_are_zero_and_marked)
{
    static const size_t sizes[] = {1,    7,    8,     9,     24,    100,   1646,
                                   4095, 5000, 40001, 65536, 70001, 200003};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        void *p = heap_malloc(T.h, n);
        expect_clean(p, n, "fresh malloc");
        dirty(p);
        heap_free(T.h, p);
        p = heap_malloc(T.h, n);
        expect_clean(p, n, "reused malloc");
        dirty(p);
        heap_free(T.h, p);
        p = heap_calloc(T.h, 1, n);
        expect_clean(p, n, "reused calloc");
        dirty(p);
        heap_free(T.h, p);
        p = heap_memalign(T.h, 64, n);
        expect_clean(p, n, "reused memalign");
        heap_free(T.h, p);
    }
    theap_check(&T);
}

/* realloc: a moved block's new bytes and a large block's pages gained in place are zeros; a
 * block resized within its class gets the mark of its new size */
Test(heap_clean, realloc_tails_are_zero)
{
    char *junk = heap_malloc(T.h, 2000);
    dirty(junk);
    heap_free(T.h, junk);
    char *p = heap_malloc(T.h, 1000);
    memset(p, 'a', 1000);
    char *q = heap_realloc(T.h, p, 2000);
    cr_assert_eq(q, junk, "the freed block is reused");
    for (size_t k = 1024; k < 2048; k++)
        cr_assert_eq(q[k], 0, "byte %zu", k); /* 2000: no short last word */
    q = heap_realloc(T.h, q, 2005);           /* same class: in place, marked anew */
    cr_assert_neq((unsigned char)q[2007], 0);
    heap_free(T.h, q);

    char *l = heap_malloc(T.h, 100000);
    char *after = heap_malloc(T.h, 100000);
    cr_assert_eq(after, l + 100000 + 4096 - 100000 % 4096, "adjacent large blocks");
    dirty(after);
    heap_free(T.h, after);
    char *l2 = heap_realloc(T.h, l, 300001);
    cr_assert_eq(l2, l, "grown in place over the freed block");
    for (size_t k = 100000; k < heap_usable_size(T.h, l2); k++)
        cr_assert_eq((unsigned char)l2[k], k == 300007 ? 0x80 : 0, "byte %zu", k);
    heap_free(T.h, l2);
    theap_check(&T);
}

/* with a limit, only a block's first clean_bytes are written: the rest of a reused buffer is
 * left as it is (not made resident), calloc still zeroes all it promises, and a mark past the
 * limit is not written */
Test(heap_clean, limit_leaves_the_rest_alone)
{
    theap_destroy(&T);
    theap_create_with(&T, T_BASE, T_RESERVE, 8192);
    size_t n = 300001;
    char *keep = heap_malloc(T.h, 100); /* the chunk never becomes all free (released at once) */
    char *p = heap_malloc(T.h, n);
    dirty(p);
    heap_free(T.h, p);
    char *q = heap_malloc(T.h, n);
    cr_assert_eq(q, p, "the freed pages are reused");
    for (size_t k = 0; k < heap_usable_size(T.h, q); k++)
        cr_assert_eq((unsigned char)q[k], k < 8192 ? 0 : 0xee, "byte %zu", k);
    heap_free(T.h, q);
    char *c = heap_calloc(T.h, 1, n);
    cr_assert_eq(c, p);
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(c[k], 0, "calloc byte %zu", k);
    heap_free(T.h, c);
    char *s = heap_malloc(T.h, 5001); /* short last word before the limit: marked */
    cr_assert_neq((unsigned char)s[5007], 0);
    heap_free(T.h, s);
    heap_free(T.h, keep);
    theap_check(&T);
}
