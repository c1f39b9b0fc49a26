/* SPDX-License-Identifier: MIT */
/*
 * classic_rds.c -- a program written for the original LRVM distribution: RVM, the segment
 * loader and RDS through their original headers and globals only. Built by
 * run_classic_rds.sh with the original's compile lines against an installed lrvm.
 *
 *   classic_rds LOG SEG fill    allocate 16 strings (one caller transaction each), then
 *                               free two of them with rds_fake_free + rds_do_free
 *   classic_rds LOG SEG check   the 14 strings are there, the two are gone
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>
#include <rvm/rds.h>

extern rvm_region_def_t *RegionDefs;
extern unsigned long NRegionDefs;
extern rvm_bool_t rds_testsw;

struct root {
    char *str[16];
};

static void fail(const char *what, int err)
{
    printf("classic_rds: %s failed: %d (%s)\n", what, err,
           err > 0 ? rvm_return((rvm_return_t)err) : "RDS error");
    exit(1);
}

static void fill(struct root *r)
{
    int err, i;
    for (i = 0; i < 16; i++) {
        rvm_tid_t tid;
        char *p;
        rvm_init_tid(&tid);
        if (rvm_begin_transaction(&tid, restore) != RVM_SUCCESS)
            fail("rvm_begin_transaction", 0);
        p = rds_malloc(40 + i, &tid, &err);
        if (p == NULL)
            fail("rds_malloc", err);
        rvm_set_range(&tid, p, 40 + i);
        sprintf(p, "string number %d", i);
        rvm_set_range(&tid, &r->str[i], sizeof(char *));
        r->str[i] = p;
        if (rvm_end_transaction(&tid, i % 2 ? no_flush : flush) != RVM_SUCCESS)
            fail("rvm_end_transaction", 0);
    }
    {
        intentionList_t list;
        rvm_tid_t tid;
        list.table = NULL;
        rvm_init_tid(&tid);
        rvm_begin_transaction(&tid, restore);
        for (i = 0; i < 2; i++) {
            if ((err = rds_fake_free(r->str[i], &list)) != SUCCESS)
                fail("rds_fake_free", err);
            rvm_set_range(&tid, &r->str[i], sizeof(char *));
            r->str[i] = NULL;
        }
        rvm_end_transaction(&tid, flush);
        if ((err = rds_do_free(&list, flush)) != SUCCESS)
            fail("rds_do_free", err);
    }
}

static void check(struct root *r)
{
    int i;
    char want[64];
    for (i = 0; i < 16; i++) {
        sprintf(want, "string number %d", i);
        if (i < 2 ? r->str[i] != NULL : (r->str[i] == NULL || strcmp(r->str[i], want)))
            fail("check of the strings", i);
    }
}

int main(int argc, char **argv)
{
    rvm_options_t *options;
    rvm_return_t ret;
    char *statics;
    int err;
    rds_stats_t stats;

    if (argc != 4) {
        printf("usage: classic_rds LOG SEG fill|check\n");
        return 2;
    }
    options = rvm_malloc_options();
    options->log_dev = argv[1];
    ret = RVM_INIT(options);
    if (ret != RVM_SUCCESS)
        fail("rvm_initialize", (int)ret);
    rds_load_heap(argv[2], RVM_MK_OFFSET(0, 0), &statics, &err);
    if (err != SUCCESS)
        fail("rds_load_heap", err);
    if (NRegionDefs != 2 || RegionDefs == NULL || rds_testsw)
        fail("RegionDefs/NRegionDefs/rds_testsw", 0);
    if (!strcmp(argv[3], "fill"))
        fill((struct root *)statics);
    check((struct root *)statics);
    rds_get_stats(&stats);
    printf("classic_rds: mallocs %u, frees %u\n", stats.malloc, stats.free);
    rds_unload_heap(&err);
    rvm_terminate();
    printf("classic_rds: OK\n");
    return 0;
}
