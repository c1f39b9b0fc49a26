/* SPDX-License-Identifier: MIT */
/*
 * test_preload_biglog.c -- under lrvm-run, a commit larger than the log is never refused:
 * the log grows (docs/limits.md, "Log size"). Every DIRTY backend, with a 4 MiB log and a
 * 40 MiB block rewritten wholly:
 *  - the exit commit of a first run and of a restarted run, each checked byte by byte by the
 *    next run;
 *  - an explicit rvm_commit (not the exit commit: the tracker's copying path) as large;
 *  - SIGKILL at a random moment of a growing exit commit: the next run starts from the
 *    previous commit exactly, or from the new one exactly.
 * And a clean exit leaves the log empty (the next start replays nothing): after a run that
 * recovered records, and after a big exit commit that follows records still in the log.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "child.h"

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

struct cfg {
    char seg[200], track[64];
    const char *extra[8];
};

/* cfg_init -- segment in dir, backend, a 256 MiB heap, a 4 MiB log, one more setting */
static void cfg_init(struct cfg *c, const char *dir, const char *backend, const char *more)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->seg, sizeof(c->seg), "LRVM_SEGMENT=%s/seg", dir);
    snprintf(c->track, sizeof(c->track), "LRVM_TRACK=%s", backend);
    const char *e[] = {c->seg, c->track, "LRVM_HEAP_SIZE=256M", "LRVM_LOG_SIZE=4M", more};
    size_t k = 0;
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
        if (e[i] != NULL)
            c->extra[k++] = e[i];
    c->extra[k] = NULL;
}

/* free_result -- release a result's buffers */
static void free_result(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* wipe -- remove the segment and its log of dir */
static void wipe(const char *dir)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/seg", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/seg.log", dir);
    unlink(p);
}

/* probe -- run the probe with mode and size (NULL: none); returns its result */
static struct result probe(const struct cfg *c, const char *mode, const char *mb)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_BIGLOGPROBE"), (char *)mode, (char *)mb, NULL};
    return child_run(argv, c->extra, CHILD_SHIM, NULL, 120000);
}

/* expect_run -- run the probe; status 0 and `want` in its stdout */
static void expect_run(const struct cfg *c, const char *b, const char *mode, const char *mb,
                       const char *want)
{
    struct result r = probe(c, mode, mb);
    cr_expect(r.status == 0 && strstr(r.out, want) != NULL,
              "%s: %s %s: status %d, expected "
              "\"%s\":\n%s\n%s",
              b, mode, mb ? mb : "", r.status, want, r.out, r.err);
    free_result(&r);
}

static long long log_size(const char *dir)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof(p), "%s/seg.log", dir);
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

Test(preload_biglog, exit_commit_larger_than_log, .timeout = 300)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "biglog-exit");
    for (size_t b = 0; b < 3; b++) {
        struct cfg c;
        cfg_init(&c, dir, backends[b], NULL);
        wipe(dir);
        expect_run(&c, backends[b], "fill", "40", "wrote run 1\n");
        cr_expect_geq(log_size(dir), 40ll << 20, "%s: the log grew", backends[b]);
        expect_run(&c, backends[b], "check", NULL, "run 1 ok\n");
        expect_run(&c, backends[b], "fill", "40", "wrote run 2\n"); /* a restarted run */
        expect_run(&c, backends[b], "check", NULL, "run 2 ok\n");
    }
    child_dir_remove(dir);
}

/* an exit commit of ~870 000 separate small ranges (over 16 MiB of record): it is applied to
 * the segment at exit through apply passes (sorted, neighbours merged with the bytes between
 * them read back from the file); the next run checks every byte, then a restarted run does it
 * again over the settled block */
Test(preload_biglog, exit_commit_of_many_small_ranges, .timeout = 300)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "biglog-sparse");
    for (size_t b = 0; b < 3; b++) {
        struct cfg c;
        cfg_init(&c, dir, backends[b], NULL);
        wipe(dir);
        expect_run(&c, backends[b], "fill", "40", "wrote run 1\n");
        expect_run(&c, backends[b], "sparse", "40", "wrote run 2\n");
        expect_run(&c, backends[b], "check", NULL, "run 2 ok\n");
        cr_expect_eq(child_live_records(dir), 0, "%s: the sparse exit commit left records",
                     backends[b]);
        expect_run(&c, backends[b], "fill", "40", "wrote run 3\n");
        expect_run(&c, backends[b], "sparse", "40", "wrote run 4\n");
        expect_run(&c, backends[b], "check", NULL, "run 4 ok\n");
    }
    child_dir_remove(dir);
}

Test(preload_biglog, explicit_commit_larger_than_log, .timeout = 300)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "biglog-explicit");
    for (size_t b = 0; b < 3; b++) {
        struct cfg c;
        cfg_init(&c, dir, backends[b], "LRVM_COMMIT=none");
        wipe(dir);
        expect_run(&c, backends[b], "commit", "40", "committed run 1: 0\n");
        expect_run(&c, backends[b], "check", NULL, "run 1 ok\n");
    }
    child_dir_remove(dir);
}

/* killed_round -- a 1 MiB commit (fits the log), then a 40 MiB exit commit that grows the
 * log, SIGKILLed delay_ms after the program said it wrote the block (-1: not killed); then
 * the next run must start from one of the two commits, whole. Returns the milliseconds from
 * "wrote" to the program's end when not killed. */
static long killed_round(const char *dir, const char *b, long delay_ms)
{
    struct cfg c;
    cfg_init(&c, dir, b, NULL);
    wipe(dir);
    expect_run(&c, b, "fill", "1", "wrote run 1\n");
    char *argv[] = {(char *)child_need("LRVM_TEST_BIGLOGPROBE"), "fill", "40", NULL};
    struct child ch = child_start(argv, c.extra, CHILD_SHIM, NULL);
    struct timespec t0, t1;
    for (int i = 0; i < 60000; i++) { /* until the block is written: the exit commit follows */
        char *o = child_slurp(ch.ofd);
        int wrote = strstr(o, "wrote run 2") != NULL;
        free(o);
        if (wrote)
            break;
        child_nap_ms(1);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (delay_ms >= 0) {
        child_nap_ms(delay_ms);
        kill(ch.pid, SIGKILL);
    }
    struct result r = child_finish(ch, 120000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (delay_ms < 0)
        cr_expect_eq(r.status, 0, "%s: the unkilled run failed:\n%s\n%s", b, r.out, r.err);
    int acked = r.status == 0;
    free_result(&r);
    struct result k = probe(&c, "check", NULL);
    int one = strstr(k.out, "run 1 ok\n") != NULL, two = strstr(k.out, "run 2 ok\n") != NULL;
    cr_expect(k.status == 0 && (one || two),
              "%s: killed %ld ms into the exit commit, the next "
              "run found neither commit whole (status %d):\n%s\n%s",
              b, delay_ms, k.status, k.out, k.err);
    cr_expect(!acked || two, "%s: the exit commit completed but the next run has run 1", b);
    free_result(&k);
    return (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
}

Test(preload_biglog, sigkill_during_growing_exit_commit, .timeout = 300)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "biglog-kill");
    srand((unsigned)time(NULL));
    const char *s = getenv("LRVM_TEST_SCALE");
    long scale = s && atol(s) > 0 ? atol(s) : 1;
    for (size_t b = 0; b < 3; b++) {
        long full = killed_round(dir, backends[b], -1);
        long rounds = (b == 0 ? 4 : 2) * scale;
        for (long i = 0; i < rounds; i++)
            killed_round(dir, backends[b], full > 0 ? rand() % (full + 1) : 0);
        fprintf(stderr, "%s: exit commit of 40 MiB into a 4 MiB log: %ld ms; %ld kills\n",
                backends[b], full, rounds);
    }
    child_dir_remove(dir);
}

Test(preload_biglog, clean_exit_leaves_the_log_empty, .timeout = 300)
{
    char dir[128];
    child_tdir(dir, sizeof(dir), "biglog-empty");
    for (size_t b = 0; b < 3; b++) {
        /* a 256 MiB log: 8 MiB of records stay far below the truncation threshold (1/8) */
        struct cfg c;
        cfg_init(&c, dir, backends[b], NULL);
        c.extra[3] = "LRVM_LOG_SIZE=256M";
        wipe(dir);
        /* explicit commit, then _exit: like a crash, the records stay in the log */
        expect_run(&c, backends[b], "commit", "8", "committed run 1: 0\n");
        cr_expect_gt(child_live_records(dir), 0, "%s: the killed-like run left no record",
                     backends[b]);
        /* a run that recovers them and exits cleanly applies them for good */
        expect_run(&c, backends[b], "check", NULL, "run 1 ok\n");
        cr_expect_eq(child_live_records(dir), 0,
                     "%s: records live after a clean exit (recovered ones)", backends[b]);
        /* records in the log, then a big exit commit (applied from memory when alone) */
        expect_run(&c, backends[b], "commit", "8", "committed run 2: 0\n");
        expect_run(&c, backends[b], "fill", "24", "wrote run 3\n");
        cr_expect_eq(child_live_records(dir), 0, "%s: records live after a clean exit (big commit)",
                     backends[b]);
        expect_run(&c, backends[b], "check", NULL, "run 3 ok\n");
    }
    child_dir_remove(dir);
}
