/* SPDX-License-Identifier: MIT */
/*
 * test_rds_fixture.c -- the heap layout is the original's, both ways. rds_fixture.c knows
 * the format only from its documentation (no lrvm code); it made fixture/original-lp64.seg,
 * a segment as the original rdsinit and RDS leave it after a few mallocs and a free.
 * lrvm must load that file and keep working in it, and what lrvm writes must read back
 * correctly with rds_fixture's independent walker. A fresh heap made by lrvm must be byte
 * for byte the one rds_fixture lays out.
 */
#include <sys/wait.h>

#include "rds_test.h"

#define FIX_ADDR ((char *)0x5d0000000000UL)
#define FIX_LEN (4096UL + 16384 + 4096)

static char *fixture_tool(void)
{
    char *t = getenv("RDS_FIXTURE");
    cr_assert_not_null(t, "RDS_FIXTURE is not set (run through meson test)");
    return t;
}

static int run(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), fmt, a, b, c);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long read_file(const char *path, char *buf, long n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    long got = (long)fread(buf, 1, (size_t)n, f);
    fclose(f);
    return got;
}

Test(rds_fixture, checked_in_fixture_is_what_the_layout_program_makes)
{
    struct rds_env e;
    env_dir(&e);
    cr_assert_eq(run("'%s' make '%s/made' %s", fixture_tool(), e.dir, ""), 0);
    cr_assert_eq(
        run("cmp -s '%s/original-lp64.seg' '%s/made'%s", getenv("RDS_FIXTURE_DIR"), e.dir, ""), 0,
        "tests/rds/fixture/original-lp64.seg is stale");
    env_done(&e);
}

Test(rds_fixture, a_fresh_lrvm_heap_is_byte_for_byte_the_documented_one)
{
    struct rds_env e;
    env_dir(&e);
    env_start(&e);
    FILE *f = fopen(e.seg, "w");
    cr_assert_eq(ftruncate(fileno(f), FIX_LEN), 0);
    fclose(f);
    int err;
    rds_zap_heap(e.seg, RVM_MK_OFFSET(0, FIX_LEN), FIX_ADDR, 4096, 16384, 8, 64, &err);
    cr_assert_eq(err, SUCCESS, "%s", rds_errmsg);
    char want[512];
    snprintf(want, sizeof(want), "%s/fresh", e.dir);
    cr_assert_eq(run("'%s' fresh '%s'%s", fixture_tool(), want, ""), 0);
    static char a[FIX_LEN], b[FIX_LEN];
    cr_assert_eq(read_file(e.seg, a, FIX_LEN), (long)FIX_LEN);
    cr_assert_eq(read_file(want, b, FIX_LEN), (long)FIX_LEN);
    for (unsigned long i = 0; i < FIX_LEN; i++)
        cr_assert_eq(a[i], b[i], "byte %lu differs: lrvm %#x, documented layout %#x", i,
                     (unsigned char)a[i], (unsigned char)b[i]);
    env_done(&e);
}

Test(rds_fixture, original_heap_loads_works_and_reads_back_under_the_layout_program)
{
    struct rds_env e;
    env_dir(&e);
    cr_assert_eq(run("cp '%s/original-lp64.seg' '%s'%s", getenv("RDS_FIXTURE_DIR"), e.seg, ""), 0);
    env_start(&e);
    int err;
    cr_assert_eq(rds_load_heap(e.seg, RVM_MK_OFFSET(0, 0), &e.statics, &err), 0, "%s", rds_errmsg);
    char **st = (char **)e.statics;
    cr_assert_eq((char *)RecoverableHeapStartAddress, FIX_ADDR);
    cr_assert_str_eq(st[0], "written by the original layout");
    cr_assert_str_eq(st[1], "second block");
    rds_stats_t s;
    rds_get_stats(&s);
    cr_assert_eq(s.malloc, 3);
    cr_assert_eq(s.free, 1);
    cr_assert_eq(heap_ok().nalloc, 2);
    /* the freed 6-chunk block is reused for an exact fit (a hit on list 6) */
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    char *p = rds_malloc(300, &t, &err);
    cr_assert_not_null(p, "%s", rds_errmsg);
    cr_assert_eq(rvm_set_range(&t, p, 16), RVM_SUCCESS);
    strcpy(p, "written by lrvm");
    cr_assert_eq(rvm_set_range(&t, st, 3 * sizeof(char *)), RVM_SUCCESS);
    cr_assert_eq(rds_free(st[1], &t, &err), 0, "%s", rds_errmsg);
    st[1] = NULL;
    st[2] = p;
    cr_assert_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    rds_get_stats(&s);
    cr_assert_eq(s.hits, 1);
    heap_ok();
    cr_assert_eq(rds_unload_heap(&err), 0, "%s", rds_errmsg);
    cr_assert_eq(run("'%s' verify '%s' lrvm%s", fixture_tool(), e.seg, ""), 0,
                 "the layout program rejects the heap lrvm wrote");
    env_done(&e);
}
