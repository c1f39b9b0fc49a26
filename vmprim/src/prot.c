/* SPDX-License-Identifier: MIT */
/*
 * prot.c -- PROT1, PROTN, UNPROT: page protection changes, and the page size.
 *
 * PROTN is Appel & Li's batched protection: the cost of mprotect is mostly per call (VMA
 * lookup, split/merge, TLB shootdown), so n pages in k contiguous runs cost k calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmprim_int.h"

static size_t prot_page_size;
static unsigned prot_page_shift;

/* prot_init -- cache the page size (idempotent; races are benign: same values) */
static void prot_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    unsigned sh = 0;
    if (ps <= 0)
        ps = 4096;
    while (((size_t)1 << sh) < (size_t)ps)
        sh++;
    prot_page_shift = sh;
    __atomic_store_n(&prot_page_size, (size_t)ps, __ATOMIC_RELEASE);
}

/* vmp_page_size -- the system page size */
VMP_API size_t vmp_page_size(void)
{
    size_t ps = __atomic_load_n(&prot_page_size, __ATOMIC_ACQUIRE);
    if (ps == 0) {
        prot_init();
        ps = prot_page_size;
    }
    return ps;
}

/* page_shift -- log2 of the page size */
unsigned page_shift(void)
{
    vmp_page_size();
    return prot_page_shift;
}

/* vmp_prot1 -- set the protection of one page */
VMP_API int vmp_prot1(void *page, int prot)
{
    if (((uintptr_t)page & (vmp_page_size() - 1)) != 0)
        return EINVAL;
    return mprotect(page, vmp_page_size(), prot) == 0 ? 0 : errno;
}

/* prot_cmp -- order page addresses for qsort */
static int prot_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* vmp_protn -- protect n pages with one mprotect per contiguous run */
VMP_API int vmp_protn(void **pages, size_t n, int prot)
{
    size_t ps = vmp_page_size();
    if (n == 0)
        return 0;
    if (pages == NULL)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (((uintptr_t)pages[i] & (ps - 1)) != 0)
            return EINVAL;
    qsort(pages, n, sizeof(*pages), prot_cmp);
    uintptr_t run = (uintptr_t)pages[0], end = run + ps;
    for (size_t i = 1; i <= n; i++) {
        uintptr_t p = i < n ? (uintptr_t)pages[i] : 0;
        if (i < n && p <= end) { /* duplicate (p < end) or adjacent (p == end) */
            if (p == end)
                end += ps;
            continue;
        }
        if (mprotect((void *)run, end - run, prot) != 0)
            return errno;
        run = p;
        end = p + ps;
    }
    return 0;
}

/* vmp_unprot -- make [addr, addr+len) readable and writable */
VMP_API int vmp_unprot(void *addr, size_t len)
{
    if (((uintptr_t)addr & (vmp_page_size() - 1)) != 0 || len == 0)
        return EINVAL;
    return mprotect(addr, len, PROT_READ | PROT_WRITE) == 0 ? 0 : errno;
}
