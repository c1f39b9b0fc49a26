/* SPDX-License-Identifier: MIT */
/*
 * common.h -- helpers shared by the vmprim Criterion tests.
 */
#ifndef LRVM_TEST_VMPRIM_COMMON_H
#define LRVM_TEST_VMPRIM_COMMON_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "lrvm/vmprim.h"

/* test_scale -- LRVM_TEST_SCALE (default 1): multiplies torture sizes */
static inline int test_scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* test_rand -- xorshift64*: deterministic per seed */
static inline uint64_t test_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* test_map -- anonymous private read-write memory */
static inline void *test_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED, "mmap %zu bytes", len);
    return p;
}

/* test_require_backend -- skip the test (not a pass) if backend b is unusable here */
static inline void test_require_backend(vmp_backend_t b)
{
    char why[256];
    if (vmp_backend_probe(b, why, sizeof(why)) != 0)
        cr_skip_test("backend %s unavailable: %s", vmp_backend_name(b), why);
}

#endif
