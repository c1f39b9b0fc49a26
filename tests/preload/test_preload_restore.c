/* SPDX-License-Identifier: MIT */
/*
 * test_preload_restore.c -- restarts of an unmodified program either continue from the committed
 * state or are refused before main with a reason, never crash from it and never damage a file
 * (suite 'preload'): restore_prog.c under the shim, on one segment per test. Paths from meson:
 * LRVM_TEST_SHIM, LRVM_TEST_RPROG, LRVM_TEST_RVMUTL.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"

/* struct seg -- a temporary directory with "seg" (and its log) and the program's file "out" */
struct seg {
    char dir[96];
    char segvar[160];
    char out[128];
};

static void seg_make(struct seg *s, const char *tag)
{
    child_tdir(s->dir, sizeof(s->dir), tag);
    snprintf(s->segvar, sizeof(s->segvar), "LRVM_SEGMENT=%s/seg", s->dir);
    snprintf(s->out, sizeof(s->out), "%s/out", s->dir);
}

/* prog -- one run of restore_prog MODE under the shim; more: an extra setting or NULL */
static struct result prog(struct seg *s, const char *mode, const char *more)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_RPROG"), (char *)mode, s->out, NULL};
    const char *extra[] = {s->segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", more, NULL};
    return child_run(argv, extra, CHILD_SHIM, NULL, 60000);
}

/* slurp -- a file's contents (malloc'ed, "" if missing) */
static char *slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return strdup("");
    char *t = child_slurp(fd);
    close(fd);
    return t;
}

/* put -- path := text */
static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

/* expect_refused -- r is a refusal before main naming want (and the advice), and out still
 * holds what it held */
static void expect_refused(struct result r, const struct seg *s, const char *want)
{
    cr_assert_eq(r.status, 2, "status %d, stderr: %s", r.status, r.err);
    cr_expect(strstr(r.err, "lrvm: cannot restore restore_prog's state"), "stderr: %s", r.err);
    cr_expect(strstr(r.err, want), "no \"%s\" in: %s", want, r.err);
    cr_expect(strstr(r.err, "Run with LRVM_GLOBALS=0"), "no advice in: %s", r.err);
    cr_expect_str_empty(r.out, "main ran: %s", r.out);
    char *now = slurp(s->out);
    cr_expect_str_eq(now, "the user's data\n", "the refused run changed the program's file");
    free(now);
}

/* globals that point only at the heap, the executable and libc's stdout are restored */
Test(restore, restorable_state_continues)
{
    struct seg s;
    seg_make(&s, "restore-clean");
    for (int i = 1; i <= 3; i++) {
        struct result r = prog(&s, "clean", NULL);
        cr_assert_eq(r.status, 0, "run %d: status %d, stderr: %s", i, r.status, r.err);
        char want[64];
        snprintf(want, sizeof(want), "clean %d %d\n", i, i);
        cr_expect_str_eq(r.out, want, "run %d", i);
    }
    child_dir_remove(s.dir);
}

/* three_runs_continue -- three runs of mode on a fresh segment named name: none refused, each
 * printing "<mode> 64 <run>" (the 64 integers came back) */
static void three_runs_continue(const char *name, const char *mode)
{
    struct seg s;
    seg_make(&s, name);
    for (int i = 1; i <= 3; i++) {
        struct result r = prog(&s, mode, NULL);
        cr_assert_eq(r.status, 0, "run %d: status %d, stderr: %s", i, r.status, r.err);
        char want[64];
        snprintf(want, sizeof(want), "%s 64 %d\n", mode, i);
        cr_expect_str_eq(r.out, want, "run %d", i);
    }
    child_dir_remove(s.dir);
}

/* integers in a heap block that fall in the address range of lrvm's internal heap, but in no
 * block of it, are data: the restart continues (the differential torture's random bytes once
 * made such a segment unrestorable for good) */
Test(restore, integers_in_internal_heap_range_continue)
{
    three_runs_continue("restore-intlike", "intlike");
}

/* integers that fall in the tracker's own slots (lrvm's largest mapping: random data lands
 * there first; the differential torture met one) are no pointers of the program's */
Test(restore, integers_in_tracker_slots_continue)
{
    three_runs_continue("restore-slotlike", "slotlike");
}

/* first_run -- a fresh segment named name, one run of mode that must succeed (printing
 * want_out, if given), then the program's file set to known data for expect_refused */
static void first_run(struct seg *s, const char *name, const char *mode, const char *want_out)
{
    seg_make(s, name);
    struct result r = prog(s, mode, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    if (want_out)
        cr_expect_str_eq(r.out, want_out);
    put(s->out, "the user's data\n");
}

/* a global pointing into the program's own mmap'ed memory: refused, named, file untouched;
 * LRVM_GLOBALS=0 then runs on the heap alone, and a later run with globals starts afresh */
Test(restore, anonymous_mapping_refused)
{
    struct seg s;
    first_run(&s, "restore-anon", "anon", "anon arena\n");
    for (int i = 0; i < 2; i++) /* refused every time, not only once */
        expect_refused(prog(&s, "anon", NULL), &s,
                       "the global `arena`+0x0 points into an "
                       "anonymous mapping");
    struct result r = prog(&s, "anon", "LRVM_GLOBALS=0");
    cr_assert_eq(r.status, 0, "heap-only: status %d, stderr: %s", r.status, r.err);
    cr_expect_str_eq(r.out, "anon arena\n");
    r = prog(&s, "anon", NULL); /* the heap-only commit voided the globals: fresh ones */
    cr_assert_eq(r.status, 0, "after heap-only: status %d, stderr: %s", r.status, r.err);
    child_dir_remove(s.dir);
}

/* the same, reached only through heap blocks (the walk from the globals): refused every
 * time, naming the global the path starts from */
Test(restore, anonymous_mapping_reached_through_the_heap_refused)
{
    struct seg s;
    first_run(&s, "restore-deep", "deep", "deep deep\n");
    for (int i = 0; i < 2; i++)
        expect_refused(prog(&s, "deep", NULL), &s,
                       "the global `table`+0x0 reaches, through the persistent heap, a pointer "
                       "(at 0x");
    struct result r = prog(&s, "deep", NULL);
    cr_expect(strstr(r.err, "points into an anonymous mapping that is not persistent"), "%s",
              r.err);
    child_dir_remove(s.dir);
}

/* a global left pointing at a freed heap block: refused */
Test(restore, dangling_pointer_refused)
{
    struct seg s;
    first_run(&s, "restore-freed", "freed", NULL);
    expect_refused(prog(&s, "freed", NULL), &s,
                   "the global `items`+0x0 points into a heap "
                   "block the program had freed");
    child_dir_remove(s.dir);
}

/* a handle the scan cannot see: the restored run crashes once, the crash is noted in the
 * segment, and every later start is refused with it instead of crashing again */
Test(restore, crash_before_first_commit_noted)
{
    struct seg s;
    seg_make(&s, "restore-crash");
    struct result r = prog(&s, "handle", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    r = prog(&s, "handle", NULL);
    cr_assert_eq(r.status, 128 + SIGSEGV, "status %d, stderr: %s", r.status, r.err);
    put(s.out, "the user's data\n");
    for (int i = 0; i < 2; i++) {
        r = prog(&s, "handle", NULL);
        expect_refused(r, &s, "died of SIGSEGV");
        cr_expect(strstr(r.err, "before its first commit"), "stderr: %s", r.err);
        cr_expect(strstr(r.err, " in main+") || strstr(r.err, " in restore_prog+"),
                  "no faulting function in: %s", r.err);
    }
    r = prog(&s, "handle", "LRVM_GLOBALS=0");
    cr_assert_eq(r.status, 0, "heap-only: status %d, stderr: %s", r.status, r.err);
    child_dir_remove(s.dir);
}

/* a segment of format version 1 (no verdict, no crash note) still opens, and its next commit
 * upgrades it to version 2 */
Test(restore, format_version_1_upgraded)
{
    struct seg s;
    seg_make(&s, "restore-v1");
    struct result r = prog(&s, "clean", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    char seg[160], log[168];
    snprintf(seg, sizeof(seg), "%s/seg", s.dir);
    snprintf(log, sizeof(log), "%s.log", seg);
    /* An old lrvm's pair: its log names no segment identity. Apply this run's log to the file
   * and drop the log (a log of today's format records the segment's identity, which a
   * version-1 header cannot carry, so recovery would rightly refuse the pair). */
    char *recover[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "recover", log, NULL};
    r = child_run(recover, NULL, 0, NULL, 60000);
    cr_assert_eq(r.status, 0, "rvmutl recover: %s%s", r.out, r.err);
    cr_assert_eq(unlink(log), 0);
    int fd = open(seg, O_RDWR);
    cr_assert(fd >= 0);
    /* version 1: version 1, header_size 1208, nothing after (offsets: image_format.h) */
    uint32_t v1[2] = {1, 1208};
    char zero[2048 - 1208];
    memset(zero, 0, sizeof(zero));
    cr_assert_eq(pwrite(fd, v1, sizeof(v1), 8), (ssize_t)sizeof(v1));
    cr_assert_eq(pwrite(fd, zero, sizeof(zero), 1208), (ssize_t)sizeof(zero));
    close(fd);
    r = prog(&s, "clean", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect_str_eq(r.out, "clean 2 2\n");
    /* the segment as recovery will have it (rvmutl overlays the log's pending records) */
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "image", seg, NULL};
    r = child_run(argv, NULL, 0, NULL, 60000);
    cr_assert_eq(r.status, 0, "rvmutl: %s%s", r.out, r.err);
    cr_expect(strstr(r.out, "process image, format 2"), "rvmutl image: %s", r.out);
    cr_expect(strstr(r.out, "restorable:  yes"), "rvmutl image: %s", r.out);
    child_dir_remove(s.dir);
}

/* with the fault backends the kernel's writes into the tracked globals (read(2) into a static
 * buffer) are prepared like the heap's, instead of failing with EFAULT */
Test(restore, kernel_writes_into_globals)
{
    static const char *const backends[] = {"LRVM_TRACK=uffd-sigbus", "LRVM_TRACK=mprotect",
                                           "LRVM_TRACK=wp-async"};
    for (int b = 0; b < 3; b++) {
        struct seg s;
        seg_make(&s, "restore-read");
        char text[9000];
        memset(text, 'x', sizeof(text));
        text[sizeof(text) - 1] = 0;
        put(s.out, text);
        for (int i = 0; i < 2; i++) {
            struct result r = prog(&s, "read", backends[b]);
            cr_expect_eq(r.status, 0, "%s run %d: status %d, stderr: %s", backends[b], i, r.status,
                         r.err);
            cr_expect_str_eq(r.out, "read 8999\n", "%s run %d", backends[b], i);
        }
        child_dir_remove(s.dir);
    }
}

/* restorable_twice -- a first run of mode on a fresh segment commits a restorable state
 * (rvmutl image says so) and the second run continues from it */
static void restorable_twice(const char *mode, const char *tag)
{
    struct seg s;
    seg_make(&s, tag);
    char want[64];
    struct result r = prog(&s, mode, NULL);
    snprintf(want, sizeof(want), "%s new\n", mode);
    cr_assert_eq(r.status, 0, "%s: status %d, stderr: %s", mode, r.status, r.err);
    cr_assert_str_eq(r.out, want, "%s", mode);
    char seg[160];
    snprintf(seg, sizeof(seg), "%s/seg", s.dir);
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "image", seg, NULL};
    r = child_run(argv, NULL, 0, NULL, 60000);
    cr_assert_eq(r.status, 0, "rvmutl: %s%s", r.out, r.err);
    cr_expect(strstr(r.out, "restorable:  yes"), "%s: rvmutl image: %s", mode, r.out);
    r = prog(&s, mode, NULL);
    snprintf(want, sizeof(want), "%s kept\n", mode);
    cr_expect_eq(r.status, 0, "%s: second run: status %d, stderr: %s", mode, r.status, r.err);
    cr_expect_str_eq(r.out, want, "%s: second run", mode);
    child_dir_remove(s.dir);
}

/* a block whose size is not a multiple of 8 ends with program bytes that, read as one word
 * with the allocator's slack after them, would be an address of the program's own anonymous
 * memory: the scan must not take them for a pointer (the differential torture once did) */
Test(restore, partial_last_word_restorable)
{
    restorable_twice("tailword", "restore-tailword");
}

/* blocks the program has not filled yet carry no bytes of an earlier use of their memory
 * (a freed block's pointers, a thread's stack addresses left by glibc): a commit taken before
 * the program fills them is restorable */
Test(restore, unfilled_blocks_restorable)
{
    static const char *const modes[] = {"stale-malloc", "stale-realloc", "stale-large",
                                        "stale-thread"};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        restorable_twice(modes[i], modes[i]);
}
