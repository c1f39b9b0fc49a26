/* SPDX-License-Identifier: MIT */
/*
 * test_preload_kwrite.c -- kernel writes and mutex-safe commits (suite 'preload'):
 *   - kernel writes into the persistent heap work with EVERY DIRTY backend (kwrite.c,
 *     libcobj.c): kwrite_probe read()s, recv()s, fread()s, readv()s, stat()s, readdir()s ...
 *     into heap buffers; the data persists; gawk and sort give the output they give without
 *     the shim; stdin read with fgets/getline;
 *   - LRVM_MUTEX_WAIT (mutexwait.c): with it, restarts after random SIGKILLs under interval
 *     commits always see mutex_probe's invariant; without it, violations are counted and
 *     logged (not asserted: they are likely, not certain).
 * Programs are started directly with LD_PRELOAD (not through `timeout` or a shell, which would
 * take the shim and drop it from the environment of their child).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

static int scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* run -- argv (see child.h for its environment); with shim, the shim, LRVM_STATS=1 and extra
 * (without it extra is not used); stdin from in_path; killed after 120 s (status -1) */
static struct result run(char *const argv[], const char *const extra[], int shim,
                         const char *in_path)
{
    return child_run(argv, shim ? extra : NULL, shim ? CHILD_SHIM | CHILD_STATS : 0, in_path,
                     120000);
}

/* gen_input -- a deterministic file of n lines "NUMBER wordK text I" */
static void gen_input(const char *path, long lines)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    unsigned x = 7;
    for (long i = 0; i < lines; i++) {
        x = x * 1103515245u + 12345u;
        fprintf(f, "%u word%u some text %ld\n", x >> 4, (x >> 10) % 3000, i);
    }
    fclose(f);
}

/* the settings of one backend's persistent runs */
struct cfg {
    char seg[256], track[64];
    const char *extra[8];
};
static void cfg_init(struct cfg *c, const char *dir, const char *backend, const char *more)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->seg, sizeof(c->seg), "LRVM_SEGMENT=%s/seg", dir);
    snprintf(c->track, sizeof(c->track), "LRVM_TRACK=%s", backend);
    const char *e[] = {c->seg, c->track, "LRVM_HEAP_SIZE=256M", "LRVM_LOG_SIZE=16M", more, NULL};
    memcpy(c->extra, e, sizeof(e));
}

/* backend_line -- the shim's statistics must name the backend: it really was in use */
static void expect_backend(const struct result *r, const char *backend)
{
    char want[64];
    snprintf(want, sizeof(want), "stats: tracking %s:", backend);
    cr_expect(strstr(r->err, want) != NULL, "backend %s not in use: %s", backend, r->err);
}

Test(preload_kwrite, probe_every_backend, .timeout = 240)
{
    for (size_t b = 0; b < 3; b++) {
        char dir[64], in[128], scratch[128];
        child_tdir(dir, sizeof(dir), "kwrite");
        snprintf(in, sizeof(in), "%s/input", dir);
        snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
        mkdir(scratch, 0700);
        gen_input(in, 20000);
        struct cfg c;
        cfg_init(&c, dir, backends[b], NULL);
        char *io[] = {(char *)child_need("LRVM_TEST_KWPROBE"), "io", in, scratch, NULL};
        struct result r = run(io, c.extra, 1, NULL);
        cr_expect_eq(r.status, 0, "%s: status %d\n%s\n%s", backends[b], r.status, r.out, r.err);
        cr_expect(strstr(r.out, "done 0 failures") && !strstr(r.out, "FAIL"), "%s:\n%s\n%s",
                  backends[b], r.out, r.err);
        expect_backend(&r, backends[b]);
        char addr[64] = "";
        sscanf(r.out, "keep %63s", addr);
        cr_expect(strncmp(addr, "0x2000", 6) == 0, "%s: the block is not in the heap: %s",
                  backends[b], addr);
        /* the bytes read(2) put into the heap were committed at exit */
        char *chk[] = {(char *)child_need("LRVM_TEST_KWPROBE"), "check", addr, in, NULL};
        r = run(chk, c.extra, 1, NULL);
        cr_expect_eq(r.status, 0, "%s: %s %s", backends[b], r.out, r.err);
        cr_expect(strstr(r.out, "persisted ok") != NULL, "%s: %s %s", backends[b], r.out, r.err);
        child_dir_remove(dir);
    }
}

/* same -- argv's stdout and status with the shim (cfg) equal those without */
static void same(char *const argv[], const struct cfg *c, const char *in_path, const char *what)
{
    if (access(argv[0], X_OK) != 0)
        cr_skip_test("%s is not installed (scripts/setup.sh installs it)", argv[0]);
    /* each program its own segment: a segment keeps one executable's globals, and another
   * program is refused (README "Globals") */
    struct cfg own = *c;
    const char *base = strrchr(argv[0], '/');
    cr_assert((size_t)snprintf(own.seg, sizeof(own.seg), "%.120s-%.64s", c->seg,
                               base ? base + 1 : argv[0]) < sizeof(own.seg));
    own.extra[0] = own.seg;
    own.extra[1] = own.track;
    struct result a = run(argv, NULL, 0, in_path);
    struct result b = run(argv, own.extra, 1, in_path);
    cr_assert_eq(a.status, 0, "%s without the shim: %d %s", argv[0], a.status, a.err);
    cr_expect_eq(b.status, a.status, "%s (%s) with the shim: %d %s", argv[0], what, b.status,
                 b.err);
    cr_expect(strlen(a.out) > 0);
    cr_expect(strcmp(a.out, b.out) == 0, "%s (%s): output differs with the shim", argv[0], what);
    expect_backend(&b, what);
}

Test(preload_kwrite, programs_every_backend, .timeout = 300)
{
    for (size_t b = 0; b < 3; b++) {
        char dir[64], in[128];
        child_tdir(dir, sizeof(dir), "kwrite");
        snprintf(in, sizeof(in), "%s/input", dir);
        gen_input(in, 100000L * scale());
        struct cfg c;
        cfg_init(&c, dir, backends[b], "LRVM_COMMIT=exit,interval:50ms");
        char *sort[] = {"/usr/bin/sort", "-k2,2", "-k1,1n", in, NULL};
        same(sort, &c, NULL, backends[b]);
        char *awk[] = {"/usr/bin/gawk",
                       "{ n[$2]++; s += $1 } END { for (k in n) c++; "
                       "print c, s, NR }",
                       in, NULL};
        same(awk, &c, NULL, backends[b]);
        char *kw_stdin[] = {(char *)child_need("LRVM_TEST_KWPROBE"), "stdin", NULL};
        same(kw_stdin, &c, in, backends[b]); /* fgets + getline on stdin */
        child_dir_remove(dir);
    }
}

/* torture -- `runs` runs of mutex_probe under interval commits every 10 ms, each SIGKILLed
 * 0.3-1 s after it printed its state; returns how many restarts saw the invariant broken (runs killed before
 * they printed their state are not counted; *judged counts the others) */
static int torture(const char *mode, int runs, int *judged, const char *backend, const char *how)
{
    char dir[64], wait[64];
    child_tdir(dir, sizeof(dir), "kwrite");
    struct cfg c;
    snprintf(wait, sizeof(wait), "LRVM_MUTEX_WAIT=%s", mode);
    cfg_init(&c, dir, backend, "LRVM_COMMIT=interval:10ms");
    c.extra[5] = wait;
    char *init[] = {(char *)child_need("LRVM_TEST_MUTEXPROBE"), "init", NULL};
    struct result r = run(init, c.extra, 1, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char addr[64] = "";
    sscanf(r.out, "%63s", addr);
    cr_assert(strncmp(addr, "0x2000", 6) == 0, "%s", r.out);
    char *argv[] = {(char *)child_need("LRVM_TEST_MUTEXPROBE"), (char *)how, addr, NULL};
    unsigned seed = 12345;
    int broken = 0;
    *judged = 0;
    for (int i = 0; i < runs; i++) {
        struct child p = child_start(argv, c.extra, CHILD_SHIM | CHILD_STATS, NULL);
        /* restart time varies (recovery replays the log): kill at a random moment AFTER the
     * program has judged and repaired the pair */
        struct stat st;
        for (int w = 0; w < 20000 && fstat(p.ofd, &st) == 0 && st.st_size == 0; w++) {
            struct timespec t1 = {0, 1000000L};
            nanosleep(&t1, NULL);
        }
        int ms = 300 + (int)(rand_r(&seed) % 700);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(p.pid, SIGKILL);
        r = child_finish(p, 10000);
        cr_expect_eq(r.status, 128 + SIGKILL, "run %d: %s", i, r.err);
        if (strncmp(r.out, "state ", 6) != 0)
            continue;
        (*judged)++;
        if (strstr(r.out, "broken")) {
            broken++;
            if (strcmp(mode, "0") != 0)
                cr_log_error("run %d (%s): %s", i, backend, r.out);
        }
    }
    child_dir_remove(dir);
    return broken;
}

Test(preload_kwrite, mutex_wait_keeps_invariants, .timeout = 300)
{
    int runs = 10 * scale(), judged;
    int broken = torture("200ms", runs, &judged, "wp-async", "run");
    cr_expect(judged >= runs - 2, "only %d of %d runs printed their state", judged, runs);
    cr_expect_eq(broken, 0, "LRVM_MUTEX_WAIT=200ms: %d of %d restarts saw a half-made update",
                 broken, judged);
    broken = torture("200ms", runs / 2, &judged, "mprotect", "run");
    cr_expect_eq(broken, 0, "LRVM_MUTEX_WAIT=200ms (mprotect): %d of %d restarts broken", broken,
                 judged);
    /* Without the mode the torture does see half-made updates (it can fail): shown with the
   * busy variant, where nearly every instant is inside one. (The default variant's commits
   * land between bursts on this machine: mode-off violations there are rare.) Logged, not
   * asserted: likely, not certain. */
    broken = torture("0", runs, &judged, "wp-async", "busy");
    /* stderr, not cr_log_warn (a warning makes Criterion exit 1): shown in meson's test log */
    fprintf(stderr,
            "LRVM_MUTEX_WAIT=0 (busy variant): %d of %d restarts saw a half-made "
            "update%s\n",
            broken, judged, broken ? "" : " -- the torture was weak this time");
}

Test(preload_kwrite, mutex_wait_option_and_stats, .timeout = 120)
{
    char dir[64], in[128], scratch[128];
    child_tdir(dir, sizeof(dir), "kwrite");
    snprintf(in, sizeof(in), "%s/input", dir);
    snprintf(scratch, sizeof(scratch), "%s/scratch", dir);
    mkdir(scratch, 0700);
    gen_input(in, 20000);
    struct cfg c;
    cfg_init(&c, dir, "mprotect", "LRVM_MUTEX_WAIT=5");
    char *io[] = {(char *)child_need("LRVM_TEST_KWPROBE"), "io", in, scratch, NULL};
    struct result r = run(io, c.extra, 1, NULL);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "LRVM_MUTEX_WAIT=5: invalid value; accepted: 0 (off) or a time") !=
                  NULL,
              "%s", r.err);
    cfg_init(&c, dir, "mprotect", "LRVM_MUTEX_WAIT=20ms");
    c.extra[5] = "LRVM_COMMIT=exit,interval:5ms";
    r = run(io, c.extra, 1, NULL);
    cr_expect_eq(r.status, 0, "%s %s", r.out, r.err);
    cr_expect(strstr(r.err, "stats: mutex wait: ") && strstr(r.err, " forced (LRVM_MUTEX_WAIT"),
              "%s", r.err);
    child_dir_remove(dir);
}

/* With LRVM_FLUSH=0 the exit commit must make every earlier no_flush commit durable, even
 * when it finds nothing new to log itself (then it writes no record; persist.c flushes). */
Test(preload_kwrite, exit_after_no_flush_commits_is_durable, .timeout = 120)
{
    char dir[64], prev[64] = "";
    child_tdir(dir, sizeof(dir), "kwrite");
    struct cfg c;
    cfg_init(&c, dir, "wp-async", "LRVM_COMMIT=exit,interval:10ms");
    c.extra[5] = "LRVM_FLUSH=0";
    char *init[] = {(char *)child_need("LRVM_TEST_MUTEXPROBE"), "init", NULL};
    struct result r = run(init, c.extra, 1, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char addr[64] = "";
    sscanf(r.out, "%63s", addr);
    for (int i = 0; i < 5; i++) {
        char *argv[] = {(char *)child_need("LRVM_TEST_MUTEXPROBE"), "run", addr, "400", NULL};
        r = run(argv, c.extra, 1, NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        unsigned long long sx, sy, ex, ey;
        cr_assert(sscanf(r.out, "state %llu %llu ok\nend %llu %llu", &sx, &sy, &ex, &ey) == 4, "%s",
                  r.out);
        char now[64];
        snprintf(now, sizeof(now), "%llu", sx);
        if (i > 0)
            cr_expect_str_eq(now, prev, "run %d started from %s, the previous run ended at %s", i,
                             now, prev);
        snprintf(prev, sizeof(prev), "%llu", ex);
    }
    child_dir_remove(dir);
}
