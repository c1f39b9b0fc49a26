/* SPDX-License-Identifier: MIT */
/*
 * test_api_segment.c -- the segment loader <rvm/rvm_segment.h>:
 * rvm_create_segment, rvm_load_segment, rvm_release_segment; regions come back at their
 * recorded addresses with their committed data in a fresh process; a foreign header is
 * RVM_ESEGMENT_HDR, a foreign loader version RVM_EVERSION_SKEW, overlapping definitions
 * RVM_ERANGE, an address already holding an RVM region RVM_EVM_OVERLAP.
 */
#include <criterion/criterion.h>

#include "core_test.h"
#include <rvm/rvm_segment.h>

static tpaths_t T;
static long PS;
static char *base; /* a VM range free in the test process (reserved, then released) */
#define NPAGES 16

/* setup -- fresh directory; find a free 16-page VM range for the region definitions. */
static void setup(void)
{
    tpaths_make(&T, "segment");
    PS = sysconf(_SC_PAGESIZE);
    /* a fixed address far from heap, libraries and sanitizer arenas, so that it is still
     * free in the forked children that load the segment; probe it, fall back to a hole */
    static const uintptr_t candidates[] = {0x3e0000000000ULL, 0x2a0000000000ULL};
    size_t len = (NPAGES + 64) * (size_t)PS;
    base = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0] && !base; i++) {
        char *p = mmap((void *)candidates[i], len, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (char *)candidates[i])
            base = p;
        else if (p != MAP_FAILED)
            munmap(p, len);
    }
    if (!base)
        base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(base, MAP_FAILED);
    munmap(base, len);
    base += 32 * PS;
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(api_segment, .init = setup, .fini = teardown, .timeout = 30);

/* child_create -- a file for a header page + 3 + 2 pages; create a 2-region segment in it. */
static int child_create(void *arg)
{
    (void)arg;
    if (file_make(T.seg, (1 + 5) * (size_t)PS, 0) != 0)
        return 1;
    if (rvmt_init_create(T.log, 256 * 1024, 0, 0) != RVM_SUCCESS)
        return 2;
    rvm_region_def_t defs[2];
    RVM_INIT_REGION(defs[0], RVM_MK_OFFSET(0, 0), 3 * (rvm_length_t)PS, base);
    RVM_INIT_REGION(defs[1], RVM_MK_OFFSET(0, 0), 2 * (rvm_length_t)PS, base + 8 * PS);
    rvm_return_t rc = rvm_create_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, 2, defs);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvm_create_segment: %s\n", rvm_return(rc));
        return 3;
    }
    /* apply the header to the file, so tests can damage it there */
    if (rvm_truncate() != RVM_SUCCESS)
        return 5;
    return rvm_terminate() == RVM_SUCCESS ? 0 : 4;
}

/* create_segment -- child_create in a fresh process, asserting success. */
static void create_segment(void)
{
    char d[64];
    int st = proc_run(child_create, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "creating the segment: %s",
              proc_describe(st, d, sizeof d));
}

/* child_load_write -- load the segment, check layout, commit data to both regions. */
static int child_load_write(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 10;
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    rvm_return_t rc = rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &n, &defs);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvm_load_segment: %s\n", rvm_return(rc));
        return 11;
    }
    if (n != 2 || !defs)
        return 12;
    /* order of definitions as created (sorted by vmaddr, which is the same here) */
    if (defs[0].vmaddr != base || defs[0].length != 3 * (rvm_length_t)PS)
        return 13;
    if (defs[1].vmaddr != base + 8 * PS || defs[1].length != 2 * (rvm_length_t)PS)
        return 14;
    /* region i is placed after the header page and the previous regions */
    if (defs[0].offset.low != (rvm_length_t)PS || defs[1].offset.low != 4 * (rvm_length_t)PS)
        return 15;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
        return 16;
    if (rvm_modify_bytes(&t, base + 5, "region-0", 8) != RVM_SUCCESS)
        return 17;
    if (rvm_modify_bytes(&t, base + 8 * PS + 2 * PS - 8, "region-1", 8) != RVM_SUCCESS)
        return 18;
    if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
        return 19;
    if (rvm_release_segment(n, &defs) != RVM_SUCCESS)
        return 20;
    /* released: the VM is gone (the loader munmaps) */
    if (msync(base, (size_t)PS, MS_ASYNC) == 0 || errno != ENOMEM)
        return 21;
    return 0; /* no terminate: recovery must bring the commit back */
}

/* child_load_check -- fresh process: load and verify the committed data. */
static int child_load_check(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 30;
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    if (rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &n, &defs) != RVM_SUCCESS)
        return 31;
    if (n != 2)
        return 32;
    if (memcmp(base + 5, "region-0", 8) != 0)
        return 33;
    if (memcmp(base + 8 * PS + 2 * PS - 8, "region-1", 8) != 0)
        return 34;
    if (rvm_release_segment(n, &defs) != RVM_SUCCESS)
        return 35;
    return rvm_terminate() == RVM_SUCCESS ? 0 : 36;
}

Test(api_segment, create_load_write_reload)
{
    char d[64];
    create_segment();
    int st = proc_run(child_load_write, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "load+write: %s",
              proc_describe(st, d, sizeof d));
    st = proc_run(child_load_check, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reload: %s", proc_describe(st, d, sizeof d));
    /* after recovery the data sits at the region's offset in the segment file */
    char b[8];
    cr_assert_eq(file_read(T.seg, b, 8, PS + 5), 0);
    cr_expect_eq(memcmp(b, "region-0", 8), 0);
}

/* child_load_expect -- load must fail with the RVM code in *arg. */
static int child_load_expect(void *arg)
{
    rvm_return_t want = *(rvm_return_t *)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 40;
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    rvm_return_t rc = rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &n, &defs);
    if (rc != want) {
        fprintf(stderr, "rvm_load_segment: got %s (%d), want %s\n", rvm_return(rc), rc,
                rvm_return(want));
        return 41;
    }
    return 0;
}

Test(api_segment, foreign_header_refused)
{
    char d[64];
    create_segment();
    /* wipe the header page: not a segment */
    char *zero = calloc(1, (size_t)PS);
    cr_assert_eq(file_write(T.seg, zero, (size_t)PS, 0), 0);
    free(zero);
    rvm_return_t want = RVM_ESEGMENT_HDR;
    int st = proc_run(child_load_expect, &want);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "zeroed header: %s",
              proc_describe(st, d, sizeof d));
}

Test(api_segment, loader_version_skew)
{
    char d[64];
    create_segment();
    unsigned char *hdr = malloc((size_t)PS);
    cr_assert_eq(file_read(T.seg, hdr, (size_t)PS, 0), 0);
    const char *v = "RVM Segment Loader";
    unsigned char *p = memmem(hdr, (size_t)PS, v, strlen(v));
    cr_assert_not_null(p, "segment header holds no loader version string "
                          "(\"RVM Segment Loader Release 0.1  15 Nov. 1990\")");
    p[strlen(v) + 1] ^= 0x20; /* "Release" -> "release" */
    cr_assert_eq(file_write(T.seg, hdr, (size_t)PS, 0), 0);
    free(hdr);
    rvm_return_t want = RVM_EVERSION_SKEW;
    int st = proc_run(child_load_expect, &want);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "foreign version: %s",
              proc_describe(st, d, sizeof d));
}

/* child_vm_overlap -- an RVM region already at the segment's address: RVM_EVM_OVERLAP. */
static int child_vm_overlap(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 50;
    if (file_make(T.seg2, 4 * (size_t)PS, 0) != 0)
        return 51;
    char *area = mmap(base + PS, (size_t)PS, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (area != base + PS)
        return 52;
    rvm_region_t r;
    rvmt_region(&r, T.seg2, 0, (rvm_length_t)PS, area);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 53;
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    rvm_return_t rc = rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &n, &defs);
    if (rc != RVM_EVM_OVERLAP) {
        fprintf(stderr, "rvm_load_segment over a mapped region: %s\n", rvm_return(rc));
        return 54;
    }
    return 0;
}

Test(api_segment, load_over_mapped_region_is_vm_overlap)
{
    char d[64];
    create_segment();
    int st = proc_run(child_vm_overlap, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", proc_describe(st, d, sizeof d));
}

Test(api_segment, create_rejects_overlapping_definitions)
{
    cr_assert_eq(file_make(T.seg, 8 * (size_t)PS, 0), 0);
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    rvm_region_def_t defs[3];
    RVM_INIT_REGION(defs[0], RVM_MK_OFFSET(0, 0), 2 * (rvm_length_t)PS, base + 4 * PS);
    RVM_INIT_REGION(defs[1], RVM_MK_OFFSET(0, 0), 2 * (rvm_length_t)PS, base);
    RVM_INIT_REGION(defs[2], RVM_MK_OFFSET(0, 0), 2 * (rvm_length_t)PS, base + 5 * PS);
    cr_expect_eq(rvm_create_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, 3, defs), RVM_ERANGE);
    /* nothing was written: the header page is still zero */
    unsigned char b[64];
    cr_assert_eq(file_read(T.seg, b, sizeof b, 0), 0);
    for (size_t i = 0; i < sizeof b; i++)
        cr_expect_eq(b[i], 0, "header written despite RVM_ERANGE");
    /* too many regions for one header page */
    size_t max = (size_t)PS / sizeof(rvm_region_def_t) - 1;
    rvm_region_def_t *many = calloc(max + 1, sizeof *many);
    for (size_t i = 0; i <= max; i++) {
        /* braces needed: the original's RVM_INIT_REGION expands to three statements */
        RVM_INIT_REGION(many[i], RVM_MK_OFFSET(0, 0), (rvm_length_t)PS,
                        (char *)(uintptr_t)0x100000000000ULL + i * (size_t)PS);
    }
    cr_expect_neq(rvm_create_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, max + 1, many), RVM_SUCCESS,
                  "%zu regions cannot fit in the header page", max + 1);
    free(many);
}

/* child_failed_load_keeps_callers_region -- a load that fails must undo only what it mapped:
 * the caller's own region, sitting exactly where the segment's region 1 would go, survives. */
static int child_failed_load_keeps_callers_region(void *arg)
{
    (void)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 60;
    if (file_make(T.seg2, 4 * (size_t)PS, 0) != 0)
        return 61;
    /* the caller maps another segment at exactly region 1's address and length */
    char *at = base + 8 * PS;
    char *area = mmap(at, 2 * (size_t)PS, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (area != at)
        return 62;
    rvm_region_t mine;
    rvmt_region(&mine, T.seg2, 0, 2 * (rvm_length_t)PS, area);
    if (rvm_map(&mine, NULL) != RVM_SUCCESS)
        return 63;
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    rvm_return_t rc = rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &n, &defs);
    if (rc != RVM_EVM_OVERLAP) {
        fprintf(stderr, "load over the caller's region: %s\n", rvm_return(rc));
        return 64;
    }
    /* region 0 (which the load did map) must be undone; the caller's region must not be */
    if (msync(base, (size_t)PS, MS_ASYNC) == 0) {
        fprintf(stderr, "failed load left region 0 mapped\n");
        return 65;
    }
    if (msync(area, (size_t)PS, MS_ASYNC) != 0) {
        fprintf(stderr, "failed load munmap'ed the caller's memory at %p\n", (void *)area);
        return 66;
    }
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
        return 67;
    rc = rvm_set_range(&t, area, 8);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "failed load unmapped the caller's RVM region: set_range %s\n",
                rvm_return(rc));
        return 68;
    }
    rvm_abort_transaction(&t);
    return 0;
}

Test(api_segment, failed_load_undoes_only_its_own_regions)
{
    char d[64];
    create_segment();
    int st = proc_run(child_failed_load_keeps_callers_region, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", proc_describe(st, d, sizeof d));
}

Test(api_segment, bad_arguments_are_eregion_def)
{
    cr_assert_eq(rvmt_init_create(T.log, 64 * 1024, 0, 0), RVM_SUCCESS);
    unsigned long n = 0;
    rvm_region_def_t *defs = NULL;
    cr_expect_eq(rvm_load_segment(NULL, RVM_MK_OFFSET(0, 0), NULL, &n, &defs), RVM_EREGION_DEF);
    cr_expect_eq(rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, NULL, &defs), RVM_EREGION_DEF);
    cr_expect_eq(rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &n, NULL), RVM_EREGION_DEF);
    cr_expect_eq(rvm_create_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, 2, NULL), RVM_EREGION_DEF);
    cr_expect_eq(rvm_release_segment(1, NULL), RVM_EREGION_DEF);
    cr_expect_eq(rvm_release_segment(1, &defs), RVM_EREGION_DEF, "NULL array, 1 region");
}

/* child_load_forged -- write a forged header (valid id and version, one region as given) over
 * the segment's header page, then load: want RVM_ESEGMENT_HDR and nothing mapped. */
typedef struct {
    rvm_length_t off, len;
    uintptr_t vmaddr;
    rvm_return_t also_ok; /* a second acceptable code (0: only RVM_ESEGMENT_HDR) */
} forged_t;

static int child_load_forged(void *arg)
{
    const forged_t *f = arg;
    unsigned char *hdr = calloc(1, (size_t)PS);
    if (!hdr)
        return 70;
    int id = 1;
    memcpy(hdr, &id, sizeof id);
    strcpy((char *)hdr + 4, "RVM Segment Loader Release 0.1  15 Nov. 1990");
    rvm_length_t n = 1;
    memcpy(hdr + 136, &n, sizeof n); /* int + char[128], aligned to 8 */
    rvm_region_def_t d;
    d.offset = RVM_MK_OFFSET(0, f->off);
    d.length = f->len;
    d.vmaddr = (char *)f->vmaddr;
    memcpy(hdr + 144, &d, sizeof d);
    if (file_write(T.seg, hdr, (size_t)PS, 0) != 0)
        return 71;
    free(hdr);
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 72;
    unsigned long nr = 0;
    rvm_region_def_t *defs = NULL;
    rvm_return_t rc = rvm_load_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, &nr, &defs);
    if (rc != RVM_ESEGMENT_HDR && !(f->also_ok && rc == f->also_ok)) {
        fprintf(stderr,
                "forged region {off %lu, len %lu, vmaddr %#lx}: %s, want "
                "RVM_ESEGMENT_HDR\n",
                f->off, f->len, (unsigned long)f->vmaddr, rvm_return(rc));
        if (rc == RVM_SUCCESS)
            rvm_release_segment(nr, &defs);
        return 73;
    }
    return 0;
}

Test(api_segment, forged_region_definitions_refused)
{
    /* found by fuzz_segment: a region with vmaddr NULL was loaded at a fresh address and could
     * not be released. A header is data from a file: every field must be checked. */
    char d[64];
    create_segment(); /* 1 + 5 pages */
    const forged_t cases[] = {
        {(rvm_length_t)PS, (rvm_length_t)PS, 0, 0},                               /* no address */
        {(rvm_length_t)PS, 0, (uintptr_t)base, 0},                                /* no length */
        {(rvm_length_t)PS, 64 * (rvm_length_t)PS, (uintptr_t)base, 0},            /* past the end */
        {100 * (rvm_length_t)PS, (rvm_length_t)PS, (uintptr_t)base, RVM_EOFFSET}, /* offset */
        {(rvm_length_t)PS, (rvm_length_t)PS, (uintptr_t)base + 8, 0},             /* unaligned */
        /* a length whose page round-up wraps to 0: not "overlaps memory in use" */
        {(rvm_length_t)PS, ~(rvm_length_t)0 - 4095, (uintptr_t)base, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = proc_run(child_load_forged, (void *)&cases[i]);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "forged case %zu: %s", i,
                  proc_describe(st, d, sizeof d));
    }
}

/* child_create_n -- create a segment of *arg one-page regions; exit with the return code. */
static int child_create_n(void *arg)
{
    rvm_length_t n = *(rvm_length_t *)arg;
    unlink(T.log); /* each call starts from a fresh pair */
    unlink(T.seg);
    if (file_make(T.seg, (1 + n) * (size_t)PS, 0) != 0)
        return 100;
    if (rvmt_init_create(T.log, 256 * 1024, 0, 0) != RVM_SUCCESS)
        return 101;
    rvm_region_def_t *defs = calloc(n, sizeof *defs);
    if (defs == NULL)
        return 102;
    for (rvm_length_t i = 0; i < n; i++)
        RVM_INIT_REGION(defs[i], RVM_MK_OFFSET(0, 0), (rvm_length_t)PS, base + i * PS);
    return rvm_create_segment(T.seg, RVM_MK_OFFSET(0, 0), NULL, n, defs);
}

Test(api_segment, region_definitions_must_fit_the_header_page)
{
    /* found by fuzz_segment: the limit ignored the fixed fields before the definitions, so
     * up to four definitions more than fit were accepted, written past the header page at
     * create and read past it at load. 4096-byte page: 144 bytes of fixed fields, then
     * 32-byte definitions: 123 fit. */
    char d[64];
    rvm_length_t fit = (rvm_length_t)(PS - 144) / 32, over = fit + 1;
    int st = proc_run(child_create_n, &fit);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RVM_SUCCESS, "%lu regions: %s", fit,
              proc_describe(st, d, sizeof d));
    st = proc_run(child_create_n, &over);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == RVM_ETOO_BIG,
              "%lu regions: %s (want "
              "RVM_ETOO_BIG = %d)",
              over, proc_describe(st, d, sizeof d), RVM_ETOO_BIG);
}
