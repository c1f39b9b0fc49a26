/* SPDX-License-Identifier: MIT */
/*
 * rds_test.h -- shared helpers for the RDS tests: a fresh log and RDS segment in a
 * per-test directory, RVM started on it and the heap loaded; the LRVM_TEST_SCALE knob.
 */
#ifndef RDS_TEST_H
#define RDS_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rvm/rds.h>
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

#include "rds_int.h"

#define T_HEAP ((char *)0x5b0000000000UL)
#define T_HEAPLEN (256UL * 1024)
#define T_STATLEN 8192UL
#define T_SEGLEN (T_HEAPLEN + T_STATLEN + 4096)

struct rds_env {
    char dir[256], log[300], seg[300];
    char *statics;
};

static inline long test_scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    long v = s ? atol(s) : 1;
    return v > 0 ? v : 1;
}

/* env_dir -- a fresh temporary directory and the file names in it */
static inline void env_dir(struct rds_env *e)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(e->dir, sizeof(e->dir), "%s/rds-test-XXXXXX", tmp);
    cr_assert_not_null(mkdtemp(e->dir));
    snprintf(e->log, sizeof(e->log), "%s/log", e->dir);
    snprintf(e->seg, sizeof(e->seg), "%s/seg", e->dir);
}

/* env_start -- start RVM on the directory's log, creating the log if it is not there */
static inline void env_start(struct rds_env *e)
{
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = e->log;
    if (access(e->log, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, 4UL << 20);
        cr_assert_eq(rvm_create_log(o, &len, 0600), RVM_SUCCESS, "%s", rvm_errmsg);
    }
    cr_assert_eq(RVM_INIT(o), RVM_SUCCESS, "%s", rvm_errmsg);
    rvm_free_options(o);
}

/* env_make_heap -- an RDS segment with nlists lists of chunk bytes, loaded */
static inline void env_make_heap(struct rds_env *e, unsigned long nlists, unsigned long chunk)
{
    FILE *f = fopen(e->seg, "w");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), T_SEGLEN), 0);
    fclose(f);
    int err;
    rds_zap_heap(e->seg, RVM_MK_OFFSET(0, T_SEGLEN), T_HEAP, T_STATLEN, T_HEAPLEN, nlists, chunk,
                 &err);
    cr_assert_eq(err, SUCCESS, "rds_zap_heap: %d %s", err, rds_errmsg);
    cr_assert_eq(rds_load_heap(e->seg, RVM_MK_OFFSET(0, T_SEGLEN), &e->statics, &err), 0,
                 "rds_load_heap: %d %s", err, rds_errmsg);
    cr_assert_eq(err, SUCCESS);
}

/* env_zap -- all three */
static inline void env_zap(struct rds_env *e, unsigned long nlists, unsigned long chunk)
{
    env_dir(e);
    env_start(e);
    env_make_heap(e, nlists, chunk);
}

/* heap_ok -- the checker passes, with byte counters that agree; returns the stats */
static inline struct rds_check_stats heap_ok(void)
{
    char msg[512];
    struct rds_check_stats st;
    rds_heap_hdr_t *h = RecoverableHeapStartAddress;
    cr_assert_not_null(h);
    cr_assert_eq(rds_check_image((char *)h, h->heaplength, (uintptr_t)h, &st, msg, sizeof(msg)), 0,
                 "heap check: %s", msg);
    cr_assert_eq(st.stats_mismatch, 0, "byte counters disagree with the blocks");
    return st;
}

static inline void env_done(struct rds_env *e)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e->dir);
}

#endif
