/* SPDX-License-Identifier: MIT */
/*
 * test_map_file.c -- rvm_map maps the segment file (MAP_PRIVATE) for regions it allocates:
 * the memory shows the committed state after a crash with records still in the log, and
 * rvm_map itself writes nothing (no truncation first); truncating the recovered records never
 * shows the region an older committed value; no uncommitted byte reaches the file (stores
 * without set_range, aborted transactions, unmap, terminate); a restore abort puts the file's
 * bytes back; memory kept after rvm_unmap no longer follows the file; RVM_MAP_COPY and
 * caller-supplied memory keep the copy.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/param.h>

#include "core_test.h"
#include <lrvm/lrvm.h>
#include "rvm_int.h"
#include "sysio.h"

#define SEG_PAGES 16

static tpaths_t T;
static long PS;

static void setup(void)
{
    tpaths_make(&T, "mapfile");
    PS = sysconf(_SC_PAGESIZE);
    cr_assert_eq(file_make(T.seg, SEG_PAGES * (size_t)PS, 0), 0);
}

static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(map_file, .init = setup, .fini = teardown, .timeout = 60);

/* file_mapping_of -- 1 if addr lies in a mapping of the file at path (from /proc/self/maps),
 * 0 if in another mapping (anonymous memory), -1 if the answer was not found */
static int file_mapping_of(const void *addr, const char *path)
{
    char real[PATH_MAX], line[PATH_MAX + 256];
    if (realpath(path, real) == NULL)
        return -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f) != NULL) {
        uintptr_t lo, hi;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) != 2 || (uintptr_t)addr < lo ||
            (uintptr_t)addr >= hi)
            continue;
        char *name = strchr(line, '/');
        if (name != NULL)
            name[strcspn(name, "\n")] = '\0';
        found = name != NULL && strcmp(name, real) == 0;
    }
    fclose(f);
    return found;
}

/* map_whole -- map the whole of T.seg at an address rvm_map chooses */
static rvm_return_t map_whole(rvm_region_t *r)
{
    rvmt_region(r, T.seg, 0, 0, NULL);
    return rvm_map(r, NULL);
}

/* commit_fill -- one flush transaction setting n bytes at p to c */
static rvm_return_t commit_fill(char *p, size_t n, int c, rvm_mode_t mode)
{
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_return_t rc = rvm_begin_transaction(&t, no_restore);
    if (rc == RVM_SUCCESS && (rc = rvm_set_range(&t, p, n)) == RVM_SUCCESS) {
        memset(p, c, n);
        rc = rvm_end_transaction(&t, mode);
    }
    return rc;
}

/* ---- crash with records pending in the log ---- */

/* child_commit_then_die -- 'X' over 64 bytes of page 2, ~40 KiB of commits to pages 5-12,
 * then 'Z' over the same 64 bytes; killed by SIGKILL with everything still in the log */
static int child_commit_then_die(void *arg)
{
    (void)arg;
    rvm_region_t r;
    if (rvmt_init_create(T.log, 64 * 1024, 0, 0) != RVM_SUCCESS || map_whole(&r) != RVM_SUCCESS)
        return 1;
    if (commit_fill(r.vmaddr + 2 * PS, 64, 'X', flush) != RVM_SUCCESS)
        return 2;
    for (int i = 0; i < 40; i++)
        if (commit_fill(r.vmaddr + (5 + (size_t)(i % 8)) * PS, 1000, 'a' + i % 26, flush))
            return 3;
    if (commit_fill(r.vmaddr + 2 * PS, 64, 'Z', flush) != RVM_SUCCESS)
        return 4;
    raise(SIGKILL);
    return 5;
}

/* the expected byte at offset i after child_commit_then_die */
static char committed_at(size_t i)
{
    size_t page = i / (size_t)PS, in = i % (size_t)PS;
    if (page == 2 && in < 64)
        return 'Z';
    if (page >= 5 && page < 13 && in < 1000) {
        int last = -1;
        for (int k = 0; k < 40; k++)
            if (5 + (size_t)(k % 8) == page)
                last = k;
        return (char)('a' + last % 26);
    }
    return 0;
}

static struct {
    int seg_fd;        /* the segment's descriptor (-1: not watching) */
    long writes;       /* pwrites and fsyncs of it */
    const char *watch; /* a mapped byte that must read 'Z' after each of them */
    int saw_older;     /* ... and what it read when it did not */
} W = {.seg_fd = -1};

/* w_pwrite -- sysio.pwrite: count writes to the segment, check the watched byte after each */
static ssize_t w_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t rc = sysio_default.pwrite(fd, buf, n, off);
    if (fd == W.seg_fd) {
        W.writes++;
        if (W.watch != NULL && *W.watch != 'Z' && W.saw_older == 0)
            W.saw_older = *W.watch;
    }
    return rc;
}

/* w_fsync -- sysio.fsync: count syncs of the segment */
static int w_fsync(int fd)
{
    if (fd == W.seg_fd)
        W.writes++;
    return sysio_default.fsync(fd);
}

/* child_recover_and_map -- recovery, map, a commit, then the log truncated in slices of
 * *arg bytes while the region is mapped; exit codes name what went wrong */
static int child_recover_and_map(void *arg)
{
    uint64_t limit = *(uint64_t *)arg;
    if (rvmt_init(T.log, 0, 0) != RVM_SUCCESS)
        return 10;
    struct seg *s;
    pthread_mutex_lock(&engine.mu);
    rvm_return_t rc = seg_get(T.seg, 0, 0, &s);
    pthread_mutex_unlock(&engine.mu);
    if (rc != RVM_SUCCESS)
        return 11;
    W.seg_fd = s->fd;
    sysio.pwrite = w_pwrite;
    sysio.fsync = w_fsync;
    rvm_region_t r;
    if (map_whole(&r) != RVM_SUCCESS)
        return 12;
    if (W.writes != 0) {
        fprintf(stderr,
                "rvm_map after recovery wrote or synced the segment %ld times: it "
                "truncated the log first instead of mapping the recovered file\n",
                W.writes);
        return 13;
    }
    if (file_mapping_of(r.vmaddr, T.seg) != 1) {
        fprintf(stderr, "the region rvm_map allocated is not a mapping of %s\n", T.seg);
        return 14;
    }
    for (size_t i = 0; i < r.length; i++)
        if (r.vmaddr[i] != committed_at(i)) {
            fprintf(stderr, "mapped byte %zu is 0x%02x, committed 0x%02x\n", i,
                    (unsigned char)r.vmaddr[i], (unsigned char)committed_at(i));
            return 15;
        }
    /* a commit of this run, then truncation in slices, as the daemon does. Small slices:
     * the first ones hold 'X' for page 2, a later one 'Z'; the mapped page 2 (never written
     * here) must read 'Z' throughout. Large slices: the recovered records end before both
     * the slice limit and the last durable record, and the slice must still succeed. */
    if (commit_fill(r.vmaddr, 100, 'q', flush) != RVM_SUCCESS)
        return 18;
    W.watch = r.vmaddr + 2 * PS;
    int progress = 1;
    for (int k = 0; progress && k < 1000; k++)
        if ((rc = trunc_step(engine.log, limit, &progress)) != RVM_SUCCESS) {
            fprintf(stderr, "truncation slice %d after recovery: %s: %s\n", k, rvm_return(rc),
                    rvm_errmsg);
            return 16;
        }
    if (W.saw_older) {
        fprintf(stderr,
                "truncating the recovered records showed the mapped region an older "
                "committed value ('%c' where 'Z' was committed last)\n",
                W.saw_older);
        return 17;
    }
    if (rvm_truncate() != RVM_SUCCESS)
        return 18;
    for (size_t i = PS; i < r.length; i++)
        if (r.vmaddr[i] != committed_at(i))
            return 19;
    sysio.pwrite = sysio_default.pwrite;
    sysio.fsync = sysio_default.fsync;
    return rvm_terminate() == RVM_SUCCESS ? 0 : 20;
}

Test(map_file, crash_with_records_pending_maps_the_committed_state)
{
    char d[64];
    uint64_t limits[] = {4096, 1u << 30};
    for (size_t k = 0; k < 2; k++) {
        unlink(T.log);
        cr_assert_eq(file_make(T.seg, SEG_PAGES * (size_t)PS, 0), 0);
        int st = proc_run(child_commit_then_die, NULL);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s", proc_describe(st, d, sizeof d));
        st = proc_run(child_recover_and_map, &limits[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "slices of %llu bytes: %s",
                  (unsigned long long)limits[k], proc_describe(st, d, sizeof d));
    }
    unsigned char *b = malloc(SEG_PAGES * (size_t)PS);
    cr_assert_not_null(b);
    cr_assert_eq(file_read(T.seg, b, SEG_PAGES * (size_t)PS, 0), 0);
    for (size_t i = 0; i < SEG_PAGES * (size_t)PS; i++) {
        char want = i < 100 ? 'q' : committed_at(i);
        if (b[i] != (unsigned char)want)
            cr_assert_fail("file byte %zu is 0x%02x after the run, want 0x%02x", i, b[i],
                           (unsigned char)want);
    }
    free(b);
}

/* ---- no-steal, abort, unmap ---- */

Test(map_file, no_uncommitted_byte_reaches_the_file)
{
    cr_assert_eq(rvmt_init_create(T.log, 256 * 1024, 0, 0), RVM_SUCCESS);
    rvm_region_t r;
    cr_assert_eq(map_whole(&r), RVM_SUCCESS);
    cr_assert_eq(file_mapping_of(r.vmaddr, T.seg), 1, "rvm_map did not map the file");
    memset(r.vmaddr + 3 * PS, 'u', 200); /* no set_range: never committed */
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, no_restore), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&t, r.vmaddr + 4 * PS, 300), RVM_SUCCESS);
    memset(r.vmaddr + 4 * PS, 'a', 300); /* aborted: never committed */
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_assert_eq(commit_fill(r.vmaddr + 6 * PS, 50, 'c', no_flush), RVM_SUCCESS);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    memset(r.vmaddr + 7 * PS, 'v', 10); /* after the truncation */
    cr_assert_eq(rvm_unmap(&r), RVM_SUCCESS);
    cr_expect_eq(r.vmaddr[3 * PS], 'u', "the program's own store is gone after rvm_unmap");
    cr_assert_eq(rvm_terminate(), RVM_SUCCESS);
    unsigned char *b = malloc(SEG_PAGES * (size_t)PS);
    cr_assert_not_null(b);
    cr_assert_eq(file_read(T.seg, b, SEG_PAGES * (size_t)PS, 0), 0);
    for (size_t i = 0; i < SEG_PAGES * (size_t)PS; i++) {
        unsigned char want = i >= 6 * (size_t)PS && i < 6 * (size_t)PS + 50 ? 'c' : 0;
        if (b[i] != want)
            cr_assert_fail("segment byte %zu (page %zu) is '%c' (0x%02x), want 0x%02x: an "
                           "uncommitted store reached the file",
                           i, i / (size_t)PS, b[i], b[i], want);
    }
    free(b);
}

Test(map_file, restore_abort_puts_back_the_file_bytes)
{
    unsigned char pat[512];
    for (size_t i = 0; i < sizeof pat; i++)
        pat[i] = (unsigned char)(i * 13 + 1);
    cr_assert_eq(file_write(T.seg, pat, sizeof pat, 5 * PS), 0);
    cr_assert_eq(rvmt_init_create(T.log, 256 * 1024, 0, 0), RVM_SUCCESS);
    rvm_region_t r;
    cr_assert_eq(map_whole(&r), RVM_SUCCESS);
    char *p = r.vmaddr + 5 * PS;
    rvm_tid_t t;
    rvm_init_tid(&t);
    cr_assert_eq(rvm_begin_transaction(&t, restore), RVM_SUCCESS);
    cr_assert_eq(rvm_set_range(&t, p + 100, 200), RVM_SUCCESS);
    memset(p + 100, 0xee, 200);
    cr_assert_eq(rvm_abort_transaction(&t), RVM_SUCCESS);
    cr_expect_eq(memcmp(p, pat, sizeof pat), 0, "abort did not restore the file's bytes");
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    unsigned char b[512];
    cr_assert_eq(file_read(T.seg, b, sizeof b, 5 * PS), 0);
    cr_expect_eq(memcmp(b, pat, sizeof pat), 0, "the aborted values reached the file");
    cr_assert_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(map_file, memory_kept_after_unmap_does_not_follow_the_file)
{
    cr_assert_eq(rvmt_init_create(T.log, 256 * 1024, 0, 0), RVM_SUCCESS);
    rvm_region_t a, b;
    cr_assert_eq(map_whole(&a), RVM_SUCCESS);
    cr_assert_eq(commit_fill(a.vmaddr + PS, 64, 'A', no_flush), RVM_SUCCESS);
    cr_assert_eq(rvm_unmap(&a), RVM_SUCCESS);
    cr_expect_eq(file_mapping_of(a.vmaddr, T.seg), 0,
                 "memory kept after rvm_unmap is still a mapping of the segment");
    /* the same bytes mapped again elsewhere: the queued commit is there */
    cr_assert_eq(map_whole(&b), RVM_SUCCESS);
    cr_assert_neq(b.vmaddr, a.vmaddr);
    cr_expect_eq(b.vmaddr[PS], 'A', "remap after unmap lost a committed (no_flush) update");
    /* commits through the new mapping, truncated into the file: the old memory, which the
     * program still owns, keeps what it held at unmap */
    cr_assert_eq(commit_fill(b.vmaddr + 6 * PS, 64, 'B', flush), RVM_SUCCESS);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    cr_expect_eq(a.vmaddr[6 * PS], 0, "unmapped memory shows a later mapping's commit ('%c')",
                 a.vmaddr[6 * PS]);
    cr_expect_eq(a.vmaddr[PS], 'A');
    cr_assert_eq(rvm_unmap(&b), RVM_SUCCESS);
    cr_assert_eq(rvm_terminate(), RVM_SUCCESS);
}

Test(map_file, copy_flag_and_caller_memory_keep_the_copy)
{
    cr_assert_eq(rvmt_init_create(T.log, 256 * 1024, RVM_MAP_COPY, 0), RVM_SUCCESS);
    rvm_options_t q;
    rvm_init_options(&q);
    cr_assert_eq(rvm_query(&q, NULL), RVM_SUCCESS);
    cr_expect(q.flags & RVM_MAP_COPY, "rvm_query does not report RVM_MAP_COPY");
    rvm_region_t r;
    cr_assert_eq(map_whole(&r), RVM_SUCCESS);
    cr_expect_eq(file_mapping_of(r.vmaddr, T.seg), 0, "RVM_MAP_COPY mapped the file");
    cr_assert_eq(rvm_unmap(&r), RVM_SUCCESS);
    rvm_options_t o;
    rvmt_options(&o, T.log);
    cr_assert_eq(rvm_set_options(&o), RVM_SUCCESS);
    char *mem = mmap(NULL, SEG_PAGES * (size_t)PS, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    rvmt_region(&r, T.seg, 0, 0, mem);
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS);
    cr_expect_eq(file_mapping_of(mem, T.seg), 0, "rvm_map replaced the caller's memory");
    cr_assert_eq(rvm_unmap(&r), RVM_SUCCESS);
    cr_assert_eq(map_whole(&r), RVM_SUCCESS);
    cr_expect_eq(file_mapping_of(r.vmaddr, T.seg), 1, "without RVM_MAP_COPY: not the file");
    cr_assert_eq(rvm_terminate(), RVM_SUCCESS);
}

/* ---- tracking on a fault backend ---- */

Test(map_file, fault_backend_tracking_gets_anonymous_memory)
{
    unsigned char pat[256];
    for (size_t i = 0; i < sizeof pat; i++)
        pat[i] = (unsigned char)(i * 5 + 3);
    cr_assert_eq(file_write(T.seg, pat, sizeof pat, 3 * PS), 0);
    cr_assert_eq(rvmt_init_create(T.log, 256 * 1024, 0, 0), RVM_SUCCESS);
    rvm_track_options_t to = {.backend = "mprotect"};
    cr_assert_eq(rvm_track_configure(&to), RVM_SUCCESS);
    rvm_region_t r;
    cr_assert_eq(map_whole(&r), RVM_SUCCESS);
    cr_assert_eq(file_mapping_of(r.vmaddr, T.seg), 1);
    cr_assert_eq(rvm_track(&r), RVM_SUCCESS, "rvm_track: %s", rvm_errmsg);
    cr_expect_eq(file_mapping_of(r.vmaddr, T.seg), 0, "a fault backend tracks file memory");
    cr_expect_eq(memcmp(r.vmaddr + 3 * PS, pat, sizeof pat), 0, "bytes lost making it anonymous");
    memset(r.vmaddr + 8 * PS, 't', 10); /* tracked: committed by rvm_commit */
    cr_assert_eq(rvm_commit(), RVM_SUCCESS);
    cr_assert_eq(rvm_untrack(&r), RVM_SUCCESS);
    cr_assert_eq(rvm_truncate(), RVM_SUCCESS);
    char b[10];
    cr_assert_eq(file_read(T.seg, b, sizeof b, 8 * PS), 0);
    cr_expect_eq(memcmp(b, "tttttttttt", 10), 0, "the tracked store did not reach the file");
    cr_assert_eq(rvm_terminate(), RVM_SUCCESS);
}
