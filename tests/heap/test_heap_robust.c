/* SPDX-License-Identifier: MIT */
/*
 * test_heap_robust.c -- bad frees are detected and reported with the address, never corrupt
 * the heap; overflows into metadata and stray metadata writes are found by the checker.
 */
#include <errno.h>

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

TestSuite(heap_robust, .init = setup, .fini = teardown, .timeout = 60);

/* expect_bad_free -- free(p) is refused, reported with p's address, and the heap stays valid */
static void expect_bad_free(void *p, const char *why)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "%p", p);
    int before = T.rep.n;
    cr_assert_eq(heap_free(T.h, p), HEAP_EBADFREE, "%s: free(%p) accepted", why, p);
    cr_assert_eq(T.rep.n, before + 1, "%s: one report", why);
    cr_assert(strstr(T.rep.last, addr), "%s: report names the address: %s", why, T.rep.last);
    theap_check(&T);
}

Test(heap_robust, double_free_small)
{
    void *p = heap_malloc(T.h, 40);
    cr_assert_eq(heap_free(T.h, p), 0);
    expect_bad_free(p, "double free (block in the thread cache)");
    cr_assert(strstr(T.rep.last, "not allocated"));
    /* the cache holds p once: two mallocs of its class return distinct blocks */
    void *a = heap_malloc(T.h, 40), *b = heap_malloc(T.h, 40);
    cr_assert_neq(a, b);
    heap_free(T.h, a);
    heap_free(T.h, b);
}

Test(heap_robust, double_free_after_flush)
{
    /* free enough blocks that p leaves the cache for its run, then free it again */
    void *ps[200];
    for (int i = 0; i < 200; i++)
        ps[i] = heap_malloc(T.h, 64);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(heap_free(T.h, ps[i]), 0);
    expect_bad_free(ps[0], "double free (block back in its run)");
    expect_bad_free(ps[199], "double free (recent)");
}

Test(heap_robust, not_a_block_start)
{
    char *p = heap_malloc(T.h, 48);
    expect_bad_free(p + 16, "inside a small block");
    expect_bad_free(p + 1, "misaligned");
    char *l = heap_malloc(T.h, 100000);
    expect_bad_free(l + 4096, "inside a large block");
    expect_bad_free(l + 8, "inside a large block's first page");
    char *g = heap_malloc(T.h, 10 << 20);
    expect_bad_free(g + HEAP_CHUNK, "inside a huge block");
    expect_bad_free(g + 64, "inside a huge block's first chunk");
    cr_assert_eq(heap_free(T.h, p), 0);
    cr_assert_eq(heap_free(T.h, l), 0);
    cr_assert_eq(heap_free(T.h, g), 0);
    expect_bad_free(l, "large double free");
    expect_bad_free(g, "huge double free");
}

Test(heap_robust, outside_the_heap_and_metadata)
{
    int local;
    expect_bad_free(&local, "stack address");
    expect_bad_free((char *)T_BASE - 16, "just below the heap");
    expect_bad_free((char *)T_BASE + (T_RESERVE - 4096), "reserved but unbacked");
    expect_bad_free(T_BASE, "the header");
    void *p = heap_malloc(T.h, 10);
    char *chunk = (char *)((uintptr_t)p & ~(uintptr_t)(HEAP_CHUNK - 1));
    expect_bad_free(chunk, "chunk metadata");
    expect_bad_free(chunk + 8 * HEAP_PAGE + 64, "page records");
    char *free_space = chunk + (HEAP_CHUNK_PAGES - 1) * HEAP_PAGE;
    expect_bad_free(free_space, "free pages");
    heap_free(T.h, p);
}

Test(heap_robust, realloc_of_bad_pointers)
{
    char *p = heap_malloc(T.h, 100);
    heap_free(T.h, p);
    errno = 0;
    cr_assert_null(heap_realloc(T.h, p, 200));
    cr_assert_eq(errno, EINVAL);
    cr_assert(strstr(T.rep.last, "realloc"));
    errno = 0;
    int local;
    cr_assert_null(heap_realloc(T.h, &local, 10));
    cr_assert_eq(errno, EINVAL);
    theap_check(&T);
}

Test(heap_robust, overflow_into_next_chunk_metadata_is_detected)
{
    char *a = heap_malloc(T.h, (size_t)HEAP_DATA_PAGES * HEAP_PAGE); /* fills chunk 1 */
    char *b = heap_malloc(T.h, 100);                                 /* opens chunk 2 */
    cr_assert_eq(((uintptr_t)b - (uintptr_t)a) >> 22, 1, "b is in the next chunk");
    theap_check(&T);
    memset(a + (size_t)HEAP_DATA_PAGES * HEAP_PAGE, 0x41, 32); /* overflow by 32 bytes */
    struct reports r = {0};
    size_t nv = 0;
    cr_assert_eq(heap_check(T.h, collect_report, &r, &nv), HEAP_ECORRUPT);
    cr_assert(nv >= 1);
    cr_assert(strstr(r.all, "canary"), "%s", r.all);
    /* repair so teardown does not trip over it */
    struct heap_pdesc *pd = (struct heap_pdesc *)(a + (size_t)HEAP_DATA_PAGES * HEAP_PAGE);
    pd[0] = (struct heap_pdesc){
        .kind = PD_META, .npages = HEAP_META_PAGES, .back = 0, .aux = HEAP_META_CANARY};
    pd[1] = (struct heap_pdesc){.kind = PD_META, .npages = HEAP_META_PAGES, .back = 1};
    theap_check(&T);
}

Test(heap_robust, stray_metadata_writes_are_detected)
{
    void *p = heap_malloc(T.h, 100);
    size_t ci = ((char *)p - (char *)T_BASE) >> HEAP_CHUNK_SHIFT;
    struct heap_pdesc *rec = heap_pdesc_of(T.h, ci);
    /* a bit in the record of a page of the chunk's free tail */
    rec[HEAP_CHUNK_PAGES - 2].bits[0] |= 1;
    struct reports r = {0};
    size_t nv;
    cr_assert_eq(heap_check(T.h, collect_report, &r, &nv), HEAP_ECORRUPT);
    cr_assert(strstr(r.all, "free pages"), "%s", r.all);
    rec[HEAP_CHUNK_PAGES - 2].bits[0] &= ~1ull;
    /* a bit where no block starts, inside p's run */
    uint32_t ppi = (uint32_t)((((char *)p - (char *)T_BASE) >> 12) % HEAP_CHUNK_PAGES);
    size_t g = (((uintptr_t)p & 4095) / 16) + 1; /* the granule after p's start: class 112 */
    rec[ppi].bits[g / 64] |= 1ull << (g % 64);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(heap_check(T.h, collect_report, &r, &nv), HEAP_ECORRUPT);
    cr_assert(strstr(r.all, "where no block"), "%s", r.all);
    rec[ppi].bits[g / 64] &= ~(1ull << (g % 64));
    /* a span length that no longer tiles the chunk */
    struct heap_pdesc *pd = heap_pdesc_of(T.h, ci);
    uint32_t pi = (uint32_t)((((char *)p - (char *)T_BASE) >> 12) % HEAP_CHUNK_PAGES);
    uint32_t hd = pd[pi].kind == PD_INTERIOR ? pi - pd[pi].back : pi;
    uint32_t saved = pd[hd].npages;
    pd[hd].npages = 5000;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(heap_check(T.h, collect_report, &r, &nv), HEAP_ECORRUPT);
    cr_assert(strstr(r.all, "does not fit"), "%s", r.all);
    pd[hd].npages = saved;
    /* the header's chunk table */
    T.h->ct[T_RESERVE / HEAP_CHUNK - 1].kind = CK_NORMAL;
    memset(&r, 0, sizeof(r));
    cr_assert_eq(heap_check(T.h, collect_report, &r, &nv), HEAP_ECORRUPT);
    cr_assert(strstr(r.all, "beyond the heap size"), "%s", r.all);
    T.h->ct[T_RESERVE / HEAP_CHUNK - 1].kind = CK_UNUSED;
    theap_check(&T);
    heap_free(T.h, p);
}

Test(heap_robust, check_file_output)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    T.h->hdr->root = 1; /* outside the heap */
    size_t nv;
    cr_assert_eq(heap_check_file(T.h, f, &nv), HEAP_ECORRUPT);
    fclose(f);
    cr_assert_eq(nv, 1);
    cr_assert(strstr(buf, "root pointer"), "%s", buf);
    free(buf);
    T.h->hdr->root = 0;
}
