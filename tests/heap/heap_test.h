/* SPDX-License-Identifier: MIT */
/*
 * heap_test.h -- shared helpers for the heap tests: a file-backed heap at a fixed base, a
 * report collector, the LRVM_TEST_SCALE knob and a small deterministic PRNG.
 */
#ifndef HEAP_TEST_H
#define HEAP_TEST_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heap_file.h"
#include "heap_int.h"

#define T_BASE ((void *)0x5e0000000000ull)
#define T_BASE2 ((void *)0x5f0000000000ull)
#define T_RESERVE ((size_t)4 << 30)

/* test_scale -- LRVM_TEST_SCALE (default 1) */
static inline long test_scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    long v = s ? atol(s) : 1;
    return v > 0 ? v : 1;
}

/* xorshift64* */
static inline uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

/* Collects report lines so tests can assert on messages. */
struct reports {
    int n;
    char last[768];
    char all[8192];
};

static inline void collect_report(void *arg, const char *msg)
{
    struct reports *r = arg;
    r->n++;
    snprintf(r->last, sizeof(r->last), "%s", msg);
    size_t l = strlen(r->all);
    if (l + strlen(msg) + 2 < sizeof(r->all)) {
        strcat(r->all, msg);
        strcat(r->all, "\n");
    }
}

/* tmp_path -- a per-process file name under /tmp */
static inline void tmp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/lrvm-heap-test-%d-%s", (int)getpid(), tag);
}

/* fill/verify a block with a pattern derived from a seed */
static inline void pat_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

static inline int pat_ok(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(seed * 131 + i * 7 + (i >> 8)))
            return 0;
    return 1;
}

/* A fixture: file-backed heap at T_BASE reporting into `reports`. */
struct theap {
    struct heap_file *f;
    struct heap *h;
    struct reports rep;
    char path[128];
};

/* theap_create_with -- clean_bytes: heap_opts.clean_bytes */
static inline void theap_create_with(struct theap *t, void *base, size_t reserve,
                                     size_t clean_bytes)
{
    memset(t, 0, sizeof(*t));
    tmp_path(t->path, sizeof(t->path), "heap");
    cr_assert_eq(heap_file_create(&t->f, t->path, base, reserve), 0);
    struct heap_opts o;
    heap_opts_init(&o);
    o.report = collect_report;
    o.report_arg = &t->rep;
    o.clean_bytes = clean_bytes;
    cr_assert_eq(heap_create(&t->h, base, reserve, heap_file_backing(t->f), &o), 0);
}

static inline void theap_create(struct theap *t, void *base, size_t reserve)
{
    theap_create_with(t, base, reserve, 0);
}

static inline void theap_destroy(struct theap *t)
{
    heap_close(t->h);
    heap_file_close(t->f);
    unlink(t->path);
}

/* theap_check -- assert the checker finds nothing, showing what it found otherwise */
static inline void theap_check(struct theap *t)
{
    struct reports r = {0};
    size_t nv = 99;
    int rc = heap_check(t->h, collect_report, &r, &nv);
    cr_assert_eq(rc, 0, "checker: %zu violations:\n%s", nv, r.all);
}

#endif
