/* SPDX-License-Identifier: MIT */
/*
 * test_prot.c -- PROT1, PROTN, UNPROT and MAP2.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static atomic_int faults;

/* count_fn -- count a fault and make the page writable again */
static int count_fn(void *addr, int sig, siginfo_t *si, void *uctx, void *arg)
{
    (void)sig, (void)si, (void)uctx, (void)arg;
    size_t ps = vmp_page_size();
    atomic_fetch_add(&faults, 1);
    return vmp_unprot((void *)((uintptr_t)addr & ~(ps - 1)), ps);
}

/* vma_count -- number of /proc/self/maps entries overlapping [a, a+len) */
static int vma_count(char *a, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < (uintptr_t)a + len && hi > (uintptr_t)a)
            n++;
    }
    fclose(f);
    return n;
}

Test(prot, prot1_unprot)
{
    size_t ps = vmp_page_size();
    char *m = test_map(4 * ps);
    int id;
    cr_assert_eq(vmp_trap_register(m, 4 * ps, count_fn, NULL, &id), 0);
    cr_assert_eq(vmp_prot1(m + ps, PROT_READ), 0);
    cr_assert_eq(vmp_prot1(m + 1, PROT_READ), EINVAL);
    m[0] = 1;
    cr_assert_eq(atomic_load(&faults), 0);
    m[ps] = 1;
    cr_assert_eq(atomic_load(&faults), 1);
    m[ps] = 2;
    cr_assert_eq(atomic_load(&faults), 1, "unprotected by the handler");
    cr_assert_eq(vmp_unprot(m, 0), EINVAL);
}

/* protn: pages in any order, with duplicates, become one mapping per contiguous run */
Test(prot, protn_one_call_per_run)
{
    size_t ps = vmp_page_size();
    char *m = test_map(32 * ps);
    memset(m, 0, 32 * ps);
    int id;
    cr_assert_eq(vmp_trap_register(m, 32 * ps, count_fn, NULL, &id), 0);
    /* runs: [2,5) [9] [20,24) -- given shuffled, with duplicates */
    size_t idx[] = {21, 3, 9, 2, 23, 4, 20, 3, 22, 9};
    void *pages[10];
    for (int i = 0; i < 10; i++)
        pages[i] = m + idx[i] * ps;
    cr_assert_eq(vmp_protn(pages, 10, PROT_READ), 0);
    for (int i = 1; i < 10; i++)
        cr_assert_leq((uintptr_t)pages[i - 1], (uintptr_t)pages[i], "list sorted in place");
    /* 3 protected runs split 32 pages into 7 mappings */
    cr_assert_eq(vma_count(m, 32 * ps), 7);
    for (size_t p = 0; p < 32; p++)
        m[p * ps] = 1;
    cr_assert_eq(atomic_load(&faults), 8, "exactly the 8 distinct listed pages were protected");
    void *bad[] = {m + 1};
    cr_assert_eq(vmp_protn(bad, 1, PROT_READ), EINVAL);
    cr_assert_eq(vmp_protn(NULL, 0, PROT_READ), 0);
}

Test(map2, aliasing_and_protections)
{
    size_t ps = vmp_page_size();
    vmp_map2_t mm;
    cr_assert_eq(vmp_map2(4 * ps, PROT_READ | PROT_WRITE, PROT_READ, &mm), 0);
    char *v1 = mm.view1, *v2 = mm.view2;
    cr_assert_neq(v1, v2);
    strcpy(v1 + ps, "through view 1");
    cr_assert_str_eq(v2 + ps, "through view 1", "the views share memory");
    /* view 2 is read-only: a write there faults (into our handler) while view 1 stays
     * writable -- independent protections on the same pages */
    int id;
    cr_assert_eq(vmp_trap_register(v2, 4 * ps, count_fn, NULL, &id), 0);
    v2[2 * ps] = 'x';
    cr_assert_eq(atomic_load(&faults), 1);
    cr_assert_eq(v1[2 * ps], 'x');
    v1[3 * ps] = 'y';
    cr_assert_eq(atomic_load(&faults), 1);
    /* and the other way round: protect view 1, write through view 2 */
    cr_assert_eq(vmp_prot1(v1, PROT_NONE), 0);
    v2[0] = 'z';
    cr_assert_eq(atomic_load(&faults), 2, "view 2 page 0 was still read-only");
    cr_assert_eq(vmp_unprot(v1, ps), 0);
    cr_assert_eq(v1[0], 'z');
    vmp_map2_free(&mm);
    cr_assert_eq(mm.fd, -1);
    cr_assert_eq(vmp_map2(ps + 1, PROT_READ, PROT_READ, &mm), EINVAL);
}
