/* SPDX-License-Identifier: MIT */
/*
 * test_api_map.c -- rvm_map and rvm_unmap: whole-file maps chopped to 512,
 * page rounding of offset and end, chosen or given addresses, no_copy, RVM_MAP_PRIVATE, and
 * every error a program can provoke (EREGION, ENAME_TOO_LONG, EPAGER, EOFFSET, ERANGE,
 * EVM_OVERLAP, EOVERLAP, ENOT_MAPPED, EUNCOMMIT), with the region record left untouched on error.
 */
#include <criterion/criterion.h>
#include <sys/param.h>

#include "core_test.h"

static tpaths_t T;
static long PS;

/* setup -- fresh directory, a log, RVM initialised with it. */
static void setup(void)
{
    tpaths_make(&T, "map");
    PS = sysconf(_SC_PAGESIZE);
    cr_assert_eq(rvmt_init_create(T.log, 256 * 1024, 0, 0), RVM_SUCCESS);
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(api_map, .init = setup, .fini = teardown, .timeout = 30);

/* fill_pattern -- a segment file whose byte i is (i*7 + i/4096) & 0xff, so misplacement shows. */
static void fill_pattern(const char *path, size_t len)
{
    unsigned char *b = malloc(len);
    cr_assert_not_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(i * 7 + i / 4096);
    cr_assert_eq(file_spit(path, b, len), 0);
    free(b);
}

/* pattern_at -- the byte fill_pattern put at file offset i. */
static unsigned char pattern_at(size_t i)
{
    return (unsigned char)(i * 7 + i / 4096);
}

Test(api_map, whole_file_length_zero_chopped_to_512)
{
    fill_pattern(T.seg, 10000);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(r.length, 9728, "10000-byte file mapped with length 0: length %lu", r.length);
    cr_assert_not_null(r.vmaddr);
    cr_expect_eq((uintptr_t)r.vmaddr % (uintptr_t)PS, 0, "RVM-chosen vmaddr is page aligned");
    for (size_t i = 0; i < r.length; i++)
        if ((unsigned char)r.vmaddr[i] != pattern_at(i))
            cr_assert_fail("byte %zu of the mapped region differs from the file", i);
    cr_expect_eq(rvm_unmap(&r), RVM_SUCCESS);
}

Test(api_map, offset_rounded_down_end_rounded_up)
{
    fill_pattern(T.seg, 8 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, (rvm_length_t)PS + 100, 200, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(r.offset.low, (rvm_length_t)PS, "offset rounded down to a page");
    cr_expect_eq(r.length, (rvm_length_t)PS, "end rounded up to a page");
    cr_expect_eq((unsigned char)r.vmaddr[0], pattern_at((size_t)PS));
    cr_expect_eq(rvm_unmap(&r), RVM_SUCCESS);

    /* an end beyond the device means "to the end of the device" */
    rvmt_region(&r, T.seg, 6 * (rvm_length_t)PS, 100 * (rvm_length_t)PS, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(r.length, 2 * (rvm_length_t)PS);
    cr_expect_eq(rvm_unmap(&r), RVM_SUCCESS);
}

Test(api_map, dev_length_only_shrinks)
{
    fill_pattern(T.seg, 8 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    r.dev_length = RVM_MK_OFFSET(0, 4 * PS);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(r.length, 4 * (rvm_length_t)PS, "dev_length limits the device: %lu", r.length);
}

Test(api_map, offset_beyond_device)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 8 * (rvm_length_t)PS, (rvm_length_t)PS, NULL);
    cr_expect_eq(rvm_map(&r, NULL), RVM_EOFFSET);
    rvmt_region(&r, T.seg, 4 * (rvm_length_t)PS, (rvm_length_t)PS, NULL);
    cr_expect_eq(rvm_map(&r, NULL), RVM_EOFFSET, "offset == device size");
}

Test(api_map, given_vmaddr)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    char *area =
        mmap(NULL, 4 * (size_t)PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(area, MAP_FAILED);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 2 * (rvm_length_t)PS, area + PS);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(r.vmaddr, area + PS);
    cr_expect_eq((unsigned char)area[PS + 5], pattern_at(5));
    cr_expect_eq(area[0], 0, "memory outside the region is untouched");
    cr_expect_eq(rvm_unmap(&r), RVM_SUCCESS);
    /* unmap does not release the VM: the memory is still ours */
    area[PS] = 1;
    munmap(area, 4 * (size_t)PS);
}

Test(api_map, bad_vmaddr_is_erange)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    char *area =
        mmap(NULL, 4 * (size_t)PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(area, MAP_FAILED);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, (rvm_length_t)PS, area + 8);
    cr_expect_eq(rvm_map(&r, NULL), RVM_ERANGE, "unaligned vmaddr");
    /* not part of the address space: a hole we just made */
    munmap(area + 2 * PS, 2 * (size_t)PS);
    rvmt_region(&r, T.seg, 0, 2 * (rvm_length_t)PS, area + PS);
    cr_expect_eq(rvm_map(&r, NULL), RVM_ERANGE, "vmaddr range partly unmapped");
    rvmt_region(&r, T.seg, 0, (rvm_length_t)PS, area + 2 * PS);
    cr_expect_eq(rvm_map(&r, NULL), RVM_ERANGE, "vmaddr not in the address space");
    munmap(area, 2 * (size_t)PS);
}

Test(api_map, error_leaves_region_record_unchanged)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_region_t r, before;
    rvmt_region(&r, T.seg, 100 * (rvm_length_t)PS, 0, NULL);
    before = r;
    cr_expect_eq(rvm_map(&r, NULL), RVM_EOFFSET);
    cr_expect_eq(memcmp(&r, &before, sizeof r), 0, "region record restored on error");
}

Test(api_map, bad_region_record_and_name)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    r.struct_id = rvm_tid_id;
    cr_expect_eq(rvm_map(&r, NULL), RVM_EREGION);
    cr_expect_eq(rvm_map(NULL, NULL), RVM_EREGION);
    cr_expect_eq(rvm_unmap(NULL), RVM_EREGION);
    cr_expect_eq(rvm_unmap(&r), RVM_EREGION);

    static char name[MAXPATHLEN + 16];
    memset(name, 's', sizeof name - 1);
    name[sizeof name - 1] = 0;
    rvmt_region(&r, name, 0, 0, NULL);
    cr_expect_eq(rvm_map(&r, NULL), RVM_ENAME_TOO_LONG);

    rvm_options_t o;
    rvm_init_options(&o);
    o.struct_id = rvm_tid_id;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_expect_eq(rvm_map(&r, &o), RVM_EOPTIONS);
}

Test(api_map, missing_segment_is_an_error)
{
    rvm_region_t r;
    char path[400];
    snprintf(path, sizeof path, "%s/does-not-exist", T.dir);
    rvmt_region(&r, path, 0, 0, NULL);
    rvm_return_t rc = rvm_map(&r, NULL);
    cr_expect(rc == RVM_EIO || rc == RVM_ENOT_MAPPED || rc == RVM_EOFFSET,
              "mapping a missing file: %s", rvm_return(rc));
    cr_expect_eq(file_size(path), -1, "rvm_map must not create segment files");
}

Test(api_map, external_pager_refused)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_options_t o;
    rvm_init_options(&o);
    static char pager[] = "/bin/pager";
    o.pager = pager;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_expect_eq(rvm_map(&r, &o), RVM_EPAGER);
}

Test(api_map, vm_overlap_and_segment_overlap)
{
    fill_pattern(T.seg, 8 * (size_t)PS);
    fill_pattern(T.seg2, 8 * (size_t)PS);
    rvm_region_t a;
    rvmt_region(&a, T.seg, 0, 4 * (rvm_length_t)PS, NULL);
    cr_assert_eq(rvm_map(&a, NULL), RVM_SUCCESS);

    /* other segment, VM overlapping a's pages */
    rvm_region_t b;
    rvmt_region(&b, T.seg2, 0, 2 * (rvm_length_t)PS, a.vmaddr + 2 * PS);
    cr_expect_eq(rvm_map(&b, NULL), RVM_EVM_OVERLAP);

    /* same segment bytes mapped again elsewhere */
    rvm_region_t c;
    rvmt_region(&c, T.seg, 3 * (rvm_length_t)PS, 2 * (rvm_length_t)PS, NULL);
    cr_expect_eq(rvm_map(&c, NULL), RVM_EOVERLAP);

    /* disjoint bytes of the same segment are fine */
    rvmt_region(&c, T.seg, 4 * (rvm_length_t)PS, 2 * (rvm_length_t)PS, NULL);
    cr_expect_eq(rvm_map(&c, NULL), RVM_SUCCESS);
    cr_expect_eq((unsigned char)c.vmaddr[0], pattern_at(4 * (size_t)PS));

    /* after unmap the bytes and the VM may be mapped again */
    cr_assert_eq(rvm_unmap(&a), RVM_SUCCESS);
    rvmt_region(&b, T.seg2, 0, 2 * (rvm_length_t)PS, a.vmaddr + 2 * PS);
    cr_expect_eq(rvm_map(&b, NULL), RVM_SUCCESS);
    rvmt_region(&a, T.seg, 0, 2 * (rvm_length_t)PS, NULL);
    cr_expect_eq(rvm_map(&a, NULL), RVM_SUCCESS);
}

Test(api_map, no_copy_leaves_memory_alone)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    char *area =
        mmap(NULL, 2 * (size_t)PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(area, MAP_FAILED);
    memset(area, 0x5a, 2 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 2 * (rvm_length_t)PS, area);
    r.no_copy = rvm_true;
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq((unsigned char)area[0], 0x5a, "no_copy: segment data not read into memory");
    cr_expect_eq((unsigned char)area[2 * PS - 1], 0x5a);
}

Test(api_map, map_private_reads_segment)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_options_t o;
    rvm_init_options(&o);
    o.flags = RVM_MAP_PRIVATE;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, &o), RVM_SUCCESS);
    cr_expect_eq((unsigned char)r.vmaddr[PS + 3], pattern_at((size_t)PS + 3));
    /* private: writes to memory do not reach the file without a transaction */
    r.vmaddr[0] = (char)~pattern_at(0);
    unsigned char b;
    cr_assert_eq(file_read(T.seg, &b, 1, 0), 0);
    cr_expect_eq(b, pattern_at(0));
}

Test(api_map, unmap_errors)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 2 * (rvm_length_t)PS, NULL);
    cr_expect_eq(rvm_unmap(&r), RVM_ENOT_MAPPED, "never mapped");
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);

    rvm_region_t wrong = r;
    wrong.length = (rvm_length_t)PS;
    cr_expect_eq(rvm_unmap(&wrong), RVM_ERANGE, "length differs from the mapped region");

    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&t, r.vmaddr + 10, 10), RVM_SUCCESS);
    cr_expect_eq(rvm_unmap(&r), RVM_EUNCOMMIT);
    cr_assert_eq(rvm_end_transaction(&t, flush), RVM_SUCCESS);
    cr_expect_eq(rvm_unmap(&r), RVM_SUCCESS);
    cr_expect_eq(rvm_unmap(&r), RVM_ENOT_MAPPED, "unmapped twice");
}

/* Shared state for the remap test: data written before unmap must be seen after remap. */
Test(api_map, remap_after_unmap_sees_committed_data)
{
    fill_pattern(T.seg, 4 * (size_t)PS);
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_modify_bytes(&t, r.vmaddr + 123, "remapped", 8), RVM_SUCCESS);
    cr_assert_eq(rvm_end_transaction(&t, no_flush), RVM_SUCCESS);
    cr_assert_eq(rvm_unmap(&r), RVM_SUCCESS);
    rvm_region_t r2;
    rvmt_region(&r2, T.seg, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r2, NULL), RVM_SUCCESS);
    cr_expect_eq(memcmp(r2.vmaddr + 123, "remapped", 8), 0,
                 "a committed but untruncated change is visible after unmap + map");
}

/* private_commits -- n commits of varying ranges over a MAP_PRIVATE mapping through a small
 * log (no truncation thread: the log fills and is truncated synchronously); after each
 * commit memory must equal what the program wrote. Returns the first failing commit or 0. */
static int private_commits(rvm_region_t *r, unsigned char *model, size_t len, int n,
                           rvm_length_t flags)
{
    trng_t g = {42};
    for (int i = 1; i <= n; i++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
        int nr = 1 + (int)trng_below(&g, 8);
        for (int k = 0; k < nr; k++) {
            size_t l = 1 + trng_below(&g, 1500);
            size_t off = trng_below(&g, len - l);
            unsigned char v[1500];
            for (size_t b = 0; b < l; b++)
                v[b] = (unsigned char)trng_next(&g);
            cr_assert_eq(rvm_modify_bytes(&t, r->vmaddr + off, v, l), RVM_SUCCESS);
            memcpy(model + off, v, l);
        }
        rvm_return_t rc = rvm_end_transaction(&t, trng_below(&g, 2) ? flush : no_flush);
        cr_assert_eq(rc, RVM_SUCCESS, "commit %d: %s", i, rvm_return(rc));
        if (memcmp(r->vmaddr, model, len) != 0) {
            size_t d = 0;
            while (r->vmaddr[d] == (char)model[d])
                d++;
            cr_expect_fail("flags %lu: after commit %d memory differs from what the program "
                           "wrote at byte %zu (page %zu): 0x%02x, want 0x%02x",
                           flags, i, d, d / 4096, (unsigned char)r->vmaddr[d], model[d]);
            return i;
        }
    }
    return 0;
}

Test(api_map, map_private_memory_survives_log_wrap)
{
    /* with RVM_MAP_PRIVATE the region is an mmap of the segment; truncation writes the file
     * underneath it. Memory must still hold exactly what the program committed. */
    size_t len = 16 * (size_t)PS;
    cr_assert_eq(file_make(T.seg2, len, 0), 0);
    rvm_options_t o;
    rvm_init_options(&o);
    o.flags = RVM_MAP_PRIVATE;
    o.truncate = 0;
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    rvm_region_t r;
    rvmt_region(&r, T.seg2, 0, 0, NULL);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    unsigned char *model = calloc(1, len);
    private_commits(&r, model, len, 600, o.flags);
    free(model);
}
