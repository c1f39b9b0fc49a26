/* SPDX-License-Identifier: MIT */
/*
 * test_preload_leaks.c -- `rvmutl leaks` on a program that leaks on purpose (leak_prog.c)
 * under the shim (suite 'preload'): the report counts exactly what the program leaked and
 * nothing it can still reach; --reclaim frees it in one commit, keeps the heap's live bytes
 * bounded over 50 runs and leaves a program that still works; a SIGKILL during --reclaim
 * leaves all of the frees or none; a segment in use is refused with the pid. Paths from
 * meson: LRVM_TEST_SHIM, LRVM_TEST_LPROG, LRVM_TEST_RVMUTL, LRVM_TEST_TODO.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

#define LEAK_BLOCKS 3 /* per "leak" run: 48, 1024, 131072 bytes */
#define LEAK_BYTES (48 + 1024 + 131072)

struct seg {
    char dir[96];
    char path[128];
    char segvar[160];
};

static void seg_make(struct seg *s, const char *tag)
{
    child_tdir(s->dir, sizeof(s->dir), tag);
    snprintf(s->path, sizeof(s->path), "%s/seg", s->dir);
    snprintf(s->segvar, sizeof(s->segvar), "LRVM_SEGMENT=%s", s->path);
}

/* prog -- one run of leak_prog MODE under the shim; asserts it found its list intact */
static void prog(const struct seg *s, const char *mode, long run)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_LPROG"), (char *)mode, NULL};
    const char *extra[] = {s->segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=8M", NULL};
    struct result r = child_run(argv, extra, CHILD_SHIM, NULL, 60000);
    char want[32];
    snprintf(want, sizeof(want), "ok %ld\n", run);
    cr_assert_eq(r.status, 0, "run %ld: status %d, out: %s, err: %s", run, r.status, r.out, r.err);
    cr_assert_str_eq(r.out, want, "run %ld: %s (stderr: %s)", run, r.out, r.err);
    free(r.out);
    free(r.err);
}

/* utl -- rvmutl leaks SEGMENT with up to two options; stdin from in_path (NULL: empty) */
static struct result utl(const struct seg *s, const char *o1, const char *o2, const char *in_path)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"),
                    "leaks",
                    (char *)s->path,
                    (char *)o1,
                    (char *)o2,
                    NULL};
    return child_run(argv, NULL, 0, in_path, 60000);
}

/* struct found -- what a report says */
struct found {
    size_t live, live_bytes, lost, lost_bytes;
};

/* report -- rvmutl leaks SEGMENT --all: the counts, and every block listed has one of the
 * sizes leak_prog leaks (a reachable block is never listed) */
static struct found report(const struct seg *s)
{
    struct result r = utl(s, "--all", NULL, NULL);
    cr_assert_eq(r.status, 0, "rvmutl leaks: status %d: %s%s", r.status, r.out, r.err);
    struct found f;
    const char *a = strstr(r.out, ": "), *b = strstr(r.out, "unreachable: ");
    cr_assert(a && b &&
                  sscanf(a, ": %zu live heap blocks, %zu bytes", &f.live, &f.live_bytes) == 2 &&
                  sscanf(b, "unreachable: %zu blocks, %zu bytes", &f.lost, &f.lost_bytes) == 2,
              "unexpected report: %s", r.out);
    size_t listed = 0;
    for (const char *l = strstr(r.out, "    0x"); l; l = strstr(l + 1, "    0x")) {
        size_t sz;
        cr_assert(sscanf(strchr(l, ':') + 1, " %zu", &sz) == 1);
        cr_expect(sz == 48 || sz == 1024 || sz == 131072,
                  "a block of %zu bytes is reported: "
                  "leak_prog leaks none of that size:\n%s",
                  sz, r.out);
        listed++;
    }
    cr_expect_eq(listed, f.lost, "--all listed %zu of %zu blocks", listed, f.lost);
    free(r.out);
    free(r.err);
    return f;
}

/* reclaim_yes -- rvmutl leaks --reclaim --yes: frees n blocks */
static void reclaim_yes(const struct seg *s, size_t n)
{
    struct result r = utl(s, "--reclaim", "--yes", NULL);
    char want[64];
    snprintf(want, sizeof(want), "reclaimed: %zu blocks, %zu bytes", n,
             n / LEAK_BLOCKS * (size_t)LEAK_BYTES);
    cr_assert_eq(r.status, 0, "reclaim: status %d: %s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, want), "no \"%s\" in: %s", want, r.out);
    free(r.out);
    free(r.err);
}

/* 50 runs that leak 3 blocks each; every 5 runs a report (exact counts) and a reclaim */
Test(leaks, report_and_reclaim_over_50_runs)
{
    struct seg s;
    seg_make(&s, "leaks-50");
    prog(&s, "keep", 0);
    struct found f0 = report(&s);
    cr_assert_eq(f0.lost, 0, "a program that leaks nothing has %zu unreachable blocks", f0.lost);
    size_t max_live = 0;
    for (long run = 1; run <= 50; run++) {
        prog(&s, "leak", run);
        if (run % 5 != 0)
            continue;
        struct found f = report(&s);
        cr_assert_eq(f.lost, 5 * LEAK_BLOCKS, "run %ld: %zu unreachable blocks", run, f.lost);
        cr_assert_eq(f.lost_bytes, 5 * (size_t)LEAK_BYTES, "run %ld: %zu bytes", run, f.lost_bytes);
        reclaim_yes(&s, f.lost);
        struct found g = report(&s);
        cr_assert_eq(g.lost, 0, "run %ld: %zu blocks left after --reclaim", run, g.lost);
        cr_assert_eq(g.live, f.live - f.lost);
        max_live = g.live_bytes > max_live ? g.live_bytes : max_live;
    }
    /* what is reachable grows by one node and one payload per run (32 + 512 bytes); without
   * the reclaims the leaks alone would hold 50 * 132144 bytes */
    cr_expect_leq(max_live, f0.live_bytes + 51 * (32 + 512), "live bytes grew to %zu", max_live);
    prog(&s, "keep", 51);
    child_dir_remove(s.dir);
}

/* a heap-only segment: the named roots are the roots. examples/todo keeps its list under a
 * named root, so nothing of it is unreachable; leak_prog keeps its list in a global that is
 * not kept, so each run's node and payload (32 + 512 bytes) are unreachable with its leaks */
Test(leaks, heap_only_segment_named_roots)
{
    struct seg s;
    seg_make(&s, "leaks-roots");
    const char *extra[] = {s.segvar, "LRVM_GLOBALS=0", "LRVM_HEAP_SIZE=64M", NULL};
    char *add[] = {(char *)child_need("LRVM_TEST_TODO"), "add", "milk", "bread", NULL};
    char *rm[] = {(char *)child_need("LRVM_TEST_TODO"), "rm", "1", NULL};
    for (int i = 0; i < 2; i++) {
        struct result r = child_run(i ? rm : add, extra, CHILD_SHIM, NULL, 60000);
        cr_assert_eq(r.status, 0, "todo: %s%s", r.out, r.err);
        free(r.out);
        free(r.err);
    }
    struct found f = report(&s);
    cr_expect_gt(f.live, 0);
    cr_expect_eq(f.lost, 0, "%zu blocks of the to-do list reported unreachable", f.lost);
    child_dir_remove(s.dir);

    seg_make(&s, "leaks-noglobals");
    const char *extra2[] = {s.segvar, "LRVM_GLOBALS=0", "LRVM_HEAP_SIZE=64M", NULL};
    char *leak[] = {(char *)child_need("LRVM_TEST_LPROG"), "leak", NULL};
    for (int i = 0; i < 2; i++) {
        struct result r = child_run(leak, extra2, CHILD_SHIM, NULL, 60000);
        cr_assert_eq(r.status, 0, "leak_prog: %s%s", r.out, r.err);
        cr_assert_str_eq(r.out, "ok 0\n");
        free(r.out);
        free(r.err);
    }
    struct result r = utl(&s, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "unreachable: 10 blocks, 265376 bytes") &&
                  strstr(r.out, "no globals (heap-only segment)"),
              "%s", r.out);
    free(r.out);
    free(r.err);
    child_dir_remove(s.dir);
}

/* the confirmation: anything but "y" frees nothing */
Test(leaks, reclaim_asks_first)
{
    struct seg s;
    seg_make(&s, "leaks-ask");
    prog(&s, "leak", 0);
    char no[160];
    snprintf(no, sizeof(no), "%s/no", s.dir);
    FILE *f = fopen(no, "w");
    cr_assert(f);
    fputs("n\n", f);
    fclose(f);
    struct result r = utl(&s, "--reclaim", NULL, no);
    cr_expect_eq(r.status, 1, "status %d: %s%s", r.status, r.out, r.err);
    cr_expect(strstr(r.out, "[y/N]") && strstr(r.out, "nothing freed"), "out: %s", r.out);
    cr_expect_eq(report(&s).lost, LEAK_BLOCKS);
    prog(&s, "keep", 1);
    child_dir_remove(s.dir);
}

/* a segment a program holds is refused with its pid (here: this process holds the lock) */
Test(leaks, refuses_a_segment_in_use)
{
    struct seg s;
    seg_make(&s, "leaks-busy");
    prog(&s, "leak", 0);
    int fd = open(s.path, O_RDONLY);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);
    char want[64];
    snprintf(want, sizeof(want), "in use by pid %ld", (long)getpid());
    for (int i = 0; i < 2; i++) {
        struct result r = utl(&s, i ? "--reclaim" : NULL, i ? "--yes" : NULL, NULL);
        cr_expect_eq(r.status, 1, "status %d: %s%s", r.status, r.out, r.err);
        cr_expect(strstr(r.err, want), "no \"%s\" in: %s", want, r.err);
        free(r.out);
        free(r.err);
    }
    close(fd);
    cr_expect_eq(report(&s).lost, LEAK_BLOCKS);
    child_dir_remove(s.dir);
}

/* setup_kill -- s holds a segment with 10 runs' leaks (30 blocks); t is for its copies */
static size_t setup_kill(struct seg *s, struct seg *t, const char *tag)
{
    char tt[64];
    seg_make(s, tag);
    snprintf(tt, sizeof(tt), "%s-copy", tag);
    seg_make(t, tt);
    for (long run = 0; run < 10; run++)
        prog(s, "leak", run);
    size_t n = 10 * LEAK_BLOCKS;
    cr_assert_eq(report(s).lost, n);
    return n;
}

/* expect_all_or_none -- after a killed --reclaim: the blocks of t are all freed or none, and
 * the program still runs; returns 1 if all were freed */
static int expect_all_or_none(const struct seg *t, size_t n, const char *when)
{
    struct found f = report(t);
    cr_assert(f.lost == n || f.lost == 0, "kill %s: %zu of %zu blocks freed", when, n - f.lost, n);
    cr_assert_eq(f.lost_bytes, f.lost ? 10 * (size_t)LEAK_BYTES : 0);
    prog(t, "keep", 10);
    return f.lost == 0;
}

static void copy(const char *from, const char *to);

/* a torn write at each write of the reclaim commit in turn (LRVM_TEST_LEAKS_KILL_WRITE: the
 * Nth write stops halfway and the process is SIGKILLed), until one commit completes */
Test(leaks, torn_write_during_reclaim_frees_all_or_none)
{
    struct seg s, t;
    size_t n = setup_kill(&s, &t, "leaks-torn");
    int killed = 0, done = 0;
    for (int w = 1; w <= 64 && !done; w++) {
        copy(s.dir, t.dir);
        char at[48];
        snprintf(at, sizeof(at), "LRVM_TEST_LEAKS_KILL_WRITE=%d", w);
        char *argv[] = {
            (char *)child_need("LRVM_TEST_RVMUTL"), "leaks", t.path, "--reclaim", "--yes", NULL};
        const char *extra[] = {at, NULL};
        struct result r = child_run(argv, extra, 0, NULL, 60000);
        cr_assert(r.status == 128 + SIGKILL || r.status == 0, "write %d: status %d: %s%s", w,
                  r.status, r.out, r.err);
        done = r.status == 0;
        killed += !done;
        char when[48];
        snprintf(when, sizeof(when), "at write %d", w);
        int all = expect_all_or_none(&t, n, when);
        /* a commit whose writes were all complete is in the log: all freed */
        cr_assert(!done || all, "a completed --reclaim left its blocks: %s", r.out);
        free(r.out);
        free(r.err);
    }
    cr_log_info("%d writes torn before the reclaim commit completed", killed);
    cr_assert(done, "the reclaim commit did not complete within 64 writes");
    cr_assert_gt(killed, 0, "no write was torn");
    child_dir_remove(s.dir);
    child_dir_remove(t.dir);
}

/* now_ns -- CLOCK_MONOTONIC */
static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* copy -- the segment and its log from one directory to another (cp -p keeps modes) */
static void copy(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp -p %s/seg %s/seg.log %s/", from, from, to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* SIGKILL at times spread over a --reclaim's whole duration (the fastest of three): every
 * copy then has all of the blocks freed or none, and the program still runs on it */
Test(leaks, sigkill_during_reclaim_frees_all_or_none)
{
    struct seg s, t;
    size_t n = setup_kill(&s, &t, "leaks-kill");
    char *argv[] = {
        (char *)child_need("LRVM_TEST_RVMUTL"), "leaks", t.path, "--reclaim", "--yes", NULL};
    long long whole = 0;
    for (int i = 0; i < 3; i++) {
        copy(s.dir, t.dir);
        long long t0 = now_ns();
        struct result full = child_run(argv, NULL, 0, NULL, 60000);
        long long took = now_ns() - t0;
        whole = i == 0 || took < whole ? took : whole;
        cr_assert_eq(full.status, 0, "%s%s", full.out, full.err);
        free(full.out);
        free(full.err);
    }
    int steps = 20 * (getenv("LRVM_TEST_SCALE") ? atoi(getenv("LRVM_TEST_SCALE")) : 1);
    int all = 0;
    for (int i = 0; i < steps; i++) {
        copy(s.dir, t.dir);
        struct child c = child_start(argv, NULL, 0, NULL);
        long long delay = whole * i / steps;
        struct timespec d = {.tv_sec = delay / 1000000000LL, .tv_nsec = delay % 1000000000LL};
        nanosleep(&d, NULL);
        kill(c.pid, SIGKILL);
        struct result r = child_finish(c, 60000);
        free(r.out);
        free(r.err);
        char when[48];
        snprintf(when, sizeof(when), "after %lld us", delay / 1000);
        all += expect_all_or_none(&t, n, when);
    }
    cr_log_info("%d kills: %d left none freed, %d all (a --reclaim took %lld us)", steps,
                steps - all, all, whole / 1000);
    child_dir_remove(s.dir);
    child_dir_remove(t.dir);
}
