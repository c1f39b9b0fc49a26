/* SPDX-License-Identifier: MIT */
/*
 * track_test.h -- helpers shared by the tracking tests: available backends, scale, a
 * tracked anonymous region with its test log, a deterministic PRNG.
 */
#ifndef LRVM_TESTS_TRACK_TEST_H
#define LRVM_TESTS_TRACK_TEST_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <criterion/criterion.h>

#include "tlog.h"
#include "track.h"

/* tt_scale -- LRVM_TEST_SCALE (default 1) */
static inline unsigned tt_scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v > 0 ? (unsigned)v : 1;
}

/* tt_backend_ok -- is backend b usable here? */
static inline int tt_backend_ok(vmp_backend_t b)
{
    char why[256];
    return vmp_backend_probe(b, why, sizeof(why)) == 0;
}

/* tt_use -- reset tracking and select backend b with the given budget (0: default) */
static inline void tt_use(vmp_backend_t b, size_t budget)
{
    track_reset();
    rvm_track_options_t o = {.backend = vmp_backend_name(b), .twin_budget = budget};
    cr_assert_eq(rvm_track_configure(&o), RVM_SUCCESS, "configure %s: %s", vmp_backend_name(b),
                 track_errmsg());
}

/* a tracked anonymous region as rvm_map would leave it */
struct tt_region {
    rvm_region_t reg;
    char *mem;
    size_t len;
};

/* tt_map -- len bytes of private anonymous memory, described as a region at segoff */
static inline void tt_map(struct tt_region *t, size_t len, uint64_t segoff)
{
    rvm_init_region(&t->reg);
    t->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(t->mem, MAP_FAILED);
    t->len = len;
    t->reg.vmaddr = t->mem;
    t->reg.length = len;
    t->reg.offset = RVM_MK_OFFSET(0, segoff);
    t->reg.data_dev = (char *)"test-segment";
}

/* xorshift64* */
static inline uint64_t tt_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

#endif
