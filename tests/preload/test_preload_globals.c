/* SPDX-License-Identifier: MIT */
/*
 * test_preload_globals.c -- the executable's globals in the segment (suite
 * 'preload'): globals_prog.c and globals_cxx.cpp run under liblrvm-preload.so, mostly with
 * LD_PRELOAD directly (the shim re-executes them once with randomisation off), some under
 * lrvm-run. Paths come from meson: LRVM_TEST_SHIM, LRVM_TEST_GPROG, LRVM_TEST_GCXX,
 * LRVM_TEST_RUN, LRVM_TEST_RVMUTL.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

static int scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* run -- argv (see child.h for its environment) plus extra and, if preload, the shim; killed
 * after 60 s (status -1) */
static struct result run(char *const argv[], const char *const extra[], int preload)
{
    return child_run(argv, extra, preload ? CHILD_SHIM : 0, NULL, 60000);
}

/* struct segdir -- a temporary directory holding "seg" and its log */
struct segdir {
    char dir[64];
    char seg[128];
    char segvar[160];
};

static void segdir_make(struct segdir *d)
{
    snprintf(d->dir, sizeof(d->dir), "/tmp/lrvm-globals-XXXXXX");
    cr_assert(mkdtemp(d->dir));
    snprintf(d->seg, sizeof(d->seg), "%s/seg", d->dir);
    snprintf(d->segvar, sizeof(d->segvar), "LRVM_SEGMENT=%s", d->seg);
}

static void segdir_remove(struct segdir *d)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", d->dir);
}

/* file_sum -- FNV-1a of a file's contents (0 if missing) */
static uint64_t file_sum(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    int c;
    while ((c = getc(f)) != EOF)
        h = (h ^ (uint64_t)c) * 0x100000001b3ull;
    fclose(f);
    return h;
}

/* count -- one run of `globals_prog count -x` with LD_PRELOAD directly */
static struct result count(struct segdir *d, const char *more)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_GPROG"), "count", "-x", NULL};
    const char *extra[] = {
        d->segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", "GLOBALS_PROG_MARK=present", more,
        NULL};
    return run(argv, extra, 1);
}

/* field -- the number after "name " in s */
static long field(const char *s, const char *name)
{
    const char *p = strstr(s, name);
    cr_assert(p, "no %s in: %s", name, s);
    return strtol(p + strlen(name) + 1, NULL, 0);
}

Test(preload_globals, c_globals_survive_restarts)
{
    struct segdir d;
    segdir_make(&d);
    char addr[64] = "";
    for (int i = 1; i <= 4; i++) {
        struct result r = count(&d, NULL);
        cr_assert_eq(r.status, 0, "run %d: %s", i, r.err);
        /* .data counter, .bss list root and static local continue; the list's heap blocks too */
        cr_assert_eq(field(r.out, "counter"), 1000 + i, "%s", r.out);
        cr_assert_eq(field(r.out, "len"), i, "%s", r.out);
        cr_assert_eq(field(r.out, "sum"), 1000L * i + i * (i + 1) / 2, "%s", r.out);
        cr_assert_eq(field(r.out, "static"), 10 + i, "%s", r.out);
        /* libc's copy-relocated objects are not restored: optind is fresh, stdout and stderr and
     * the environment work */
        cr_assert_eq(field(r.out, "optind"), 1, "%s", r.out);
        cr_assert(strstr(r.out, "mark present"), "%s", r.out);
        cr_assert(field(r.out, "env") >= 4, "%s", r.out);
        cr_assert(strstr(r.err, "stderr works"), "%s", r.err);
        /* re-executed without randomisation: the same address on every run */
        char a[64];
        snprintf(a, sizeof(a), "%s", strstr(r.out, "addr ") + 5);
        a[strcspn(a, "\n")] = 0;
        if (i == 1)
            snprintf(addr, sizeof(addr), "%s", a);
        cr_assert_str_eq(a, addr, "the load base moved between runs");
    }
    segdir_remove(&d);
}

Test(preload_globals, lrvm_run_and_direct_preload_share_the_base)
{
    struct segdir d;
    segdir_make(&d);
    struct result r = count(&d, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *argv[] = {(char *)child_need("LRVM_TEST_RUN"), (char *)child_need("LRVM_TEST_GPROG"),
                    "count", NULL};
    const char *extra[] = {d.segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
    struct result r2 = run(argv, extra, 0);
    cr_assert_eq(r2.status, 0, "%s", r2.err);
    cr_assert_eq(field(r2.out, "counter"), 1002, "%s", r2.out);
    cr_assert_eq(field(r2.out, "len"), 2, "%s", r2.out);
    segdir_remove(&d);
}

Test(preload_globals, cxx_global_map_survives)
{
    const char *cxx = getenv("LRVM_TEST_GCXX");
    if (!cxx || !*cxx)
        cr_skip_test("no C++ compiler at configure time");
    struct segdir d;
    segdir_make(&d);
    for (int i = 1; i <= 3; i++) {
        char *argv[] = {(char *)cxx, NULL};
        const char *extra[] = {d.segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
        struct result r = run(argv, extra, 1);
        cr_assert_eq(r.status, 0, "run %d: %s %s", i, r.out, r.err);
        char want[64];
        snprintf(want, sizeof(want), "entries %d intact yes\n", i);
        cr_assert_str_eq(r.out, want, "run %d: %s", i, r.err);
    }
    segdir_remove(&d);
}

Test(preload_globals, globals_off_keeps_them_fresh)
{
    struct segdir d;
    segdir_make(&d);
    for (int i = 1; i <= 2; i++) {
        struct result r = count(&d, "LRVM_GLOBALS=0");
        cr_assert_eq(r.status, 0, "%s", r.err);
        cr_assert_eq(field(r.out, "counter"), 1001, "%s", r.out);
        cr_assert_eq(field(r.out, "len"), 1, "%s", r.out);
        cr_assert_eq(field(r.out, "static"), 11, "%s", r.out);
    }
    /* a heap-only segment is refused with globals on (and the reverse) */
    uint64_t s0 = file_sum(d.seg);
    struct result r = count(&d, NULL);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert(strstr(r.err, "holds a heap only (created with LRVM_GLOBALS=0): run with "
                            "LRVM_GLOBALS=0"),
              "%s", r.err);
    cr_assert_eq(file_sum(d.seg), s0, "the refusal changed the segment");
    /* another program (standing for another build) may open a heap-only segment */
    const char *cxx = getenv("LRVM_TEST_GCXX");
    if (cxx && *cxx) {
        char *argv[] = {(char *)cxx, NULL};
        const char *extra[] = {d.segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", "LRVM_GLOBALS=0",
                               NULL};
        r = run(argv, extra, 1);
        cr_assert_eq(r.status, 0, "%s", r.err);
        cr_assert_str_eq(r.out, "entries 1 intact yes\n", "%s", r.err);
    }
    segdir_remove(&d);
}

Test(preload_globals, another_program_is_refused_and_nothing_changes)
{
    const char *cxx = getenv("LRVM_TEST_GCXX");
    if (!cxx || !*cxx)
        cr_skip_test("no C++ compiler at configure time");
    struct segdir d;
    segdir_make(&d);
    struct result r = count(&d, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char log[160];
    snprintf(log, sizeof(log), "%s.log", d.seg);
    uint64_t s0 = file_sum(d.seg), l0 = file_sum(log);
    char *argv[] = {(char *)cxx, NULL};
    const char *extra[] = {d.segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
    r = run(argv, extra, 1);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert_str_eq(r.out, "");
    char want[512];
    snprintf(want, sizeof(want), "lrvm: LRVM_SEGMENT=%s was written by %s (build-id ", d.seg,
             child_need("LRVM_TEST_GPROG"));
    cr_assert(strstr(r.err, want), "%s", r.err);
    snprintf(want, sizeof(want), "this program is %s (build-id ", cxx);
    cr_assert(strstr(r.err, want) && strstr(r.err, "Use another LRVM_SEGMENT"), "%s", r.err);
    cr_assert_eq(file_sum(d.seg), s0, "the refusal changed the segment");
    cr_assert_eq(file_sum(log), l0, "the refusal changed the log");
    /* and the owner still runs on it */
    r = count(&d, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(field(r.out, "counter"), 1002, "%s", r.out);
    segdir_remove(&d);
}

Test(preload_globals, another_load_base_is_refused_and_nothing_changes)
{
    struct segdir d;
    segdir_make(&d);
    /* the test hook plays a kernel that refuses the personality (seccomp): the program runs at
   * a random base, recorded at creation; the next run lands elsewhere */
    struct result r = count(&d, "LRVM_TEST_NO_PERSONALITY=1");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char log[160];
    snprintf(log, sizeof(log), "%s.log", d.seg);
    uint64_t s0 = file_sum(d.seg), l0 = file_sum(log);
    r = count(&d, "LRVM_TEST_NO_PERSONALITY=1");
    if (r.status == 0)
        cr_skip_test("the kernel placed the program at the same random base twice: %s", r.out);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert_str_eq(r.out, "");
    cr_assert(strstr(r.err, "this run loaded it at") &&
                  strstr(r.err, "run the program with lrvm-run, or under `setarch -R`, or with "
                                "LRVM_GLOBALS=0 and another LRVM_SEGMENT"),
              "%s", r.err);
    cr_assert_eq(file_sum(d.seg), s0, "the refusal changed the segment");
    cr_assert_eq(file_sum(log), l0, "the refusal changed the log");
    segdir_remove(&d);
}

Test(preload_globals, old_layout_and_unknown_version_are_refused)
{
    struct segdir d;
    segdir_make(&d);
    /* the layout before format 1: the heap's magic at offset 0 */
    int fd = open(d.seg, O_RDWR | O_CREAT, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, "LRVMHEAP\1\0\0\0", 12, 0), 12);
    close(fd);
    uint64_t s0 = file_sum(d.seg);
    struct result r = count(&d, NULL);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert(strstr(r.err, "holds a heap in the layout of lrvm before segment format 1"), "%s",
              r.err);
    cr_assert_eq(file_sum(d.seg), s0);
    char log[160];
    snprintf(log, sizeof(log), "%s.log", d.seg);
    cr_assert(access(log, F_OK) != 0, "a refusal created the log");
    /* format version 99 */
    fd = open(d.seg, O_RDWR | O_TRUNC, 0600);
    unsigned char h[16] = "LRVMIMG1";
    h[8] = 99;
    cr_assert_eq(pwrite(fd, h, 16, 0), 16);
    close(fd);
    r = count(&d, NULL);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert(strstr(r.err, "has segment format version 99; this lrvm reads versions 1 to 2"), "%s",
              r.err);
    /* something else entirely */
    fd = open(d.seg, O_RDWR | O_TRUNC, 0600);
    cr_assert_eq(pwrite(fd, "hello, world\n", 13, 0), 13);
    close(fd);
    r = count(&d, NULL);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert(strstr(r.err, "is not an lrvm segment"), "%s", r.err);
    segdir_remove(&d);
}

Test(preload_globals, nothing_is_committed_before_main)
{
    struct segdir d;
    segdir_make(&d);
    struct result r = count(&d, NULL);
    cr_assert_eq(field(r.out, "counter"), 1001, "%s", r.out);
    r = count(&d, "GLOBALS_PROG_CTOR_EXIT=1");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    cr_assert(strstr(r.err, "nothing committed: the globals were not restored yet"), "%s", r.err);
    r = count(&d, NULL);
    cr_assert_eq(field(r.out, "counter"), 1002, "the constructor's change was committed: %s",
                 r.out);
    cr_assert_eq(field(r.out, "len"), 2, "%s", r.out);
    segdir_remove(&d);
}

Test(preload_globals, heap_base_and_size_must_match_the_header)
{
    struct segdir d;
    segdir_make(&d);
    struct result r = count(&d, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    uint64_t s0 = file_sum(d.seg);
    char *argv[] = {(char *)child_need("LRVM_TEST_GPROG"), "count", NULL};
    const char *extra[] = {d.segvar, "LRVM_HEAP_SIZE=128M", "LRVM_LOG_SIZE=4M", NULL};
    r = run(argv, extra, 1);
    cr_assert_eq(r.status, 2, "%s", r.out);
    char want[256];
    snprintf(want, sizeof(want),
             "LRVM_SEGMENT=%s was created with LRVM_HEAP_BASE=0x200000000000 "
             "LRVM_HEAP_SIZE=64M: run with these values",
             d.seg);
    cr_assert(strstr(r.err, want), "%s", r.err);
    cr_assert_eq(file_sum(d.seg), s0, "the refusal changed the segment");
    segdir_remove(&d);
}

/* image_of -- `rvmutl image seg` */
static struct result image_of(const char *seg)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "image", (char *)seg, NULL};
    return run(argv, NULL, 0);
}

/* count_prog -- one `prog count` run with LD_PRELOAD directly */
static struct result count_prog(struct segdir *d, const char *prog)
{
    char *argv[] = {(char *)prog, "count", NULL};
    const char *extra[] = {d->segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
    return run(argv, extra, 1);
}

Test(preload_globals, non_pie_executable)
{
    struct segdir d;
    segdir_make(&d);
    for (int i = 1; i <= 2; i++) {
        struct result r = count_prog(&d, child_need("LRVM_TEST_GPROG_NOPIE"));
        cr_assert_eq(r.status, 0, "%s", r.err);
        cr_assert_eq(field(r.out, "counter"), 1000 + i, "%s", r.out);
        cr_assert_eq(field(r.out, "len"), i, "%s", r.out);
    }
    struct result r = image_of(d.seg);
    cr_assert(strstr(r.out, "  load base:   0x0\n"), "%s", r.out);
    segdir_remove(&d);
}

Test(preload_globals, executable_without_build_id)
{
    /* identified by the crc32c of its file: a copy runs on, a changed copy is refused */
    struct segdir d;
    segdir_make(&d);
    char exe[160], cmd[400];
    snprintf(exe, sizeof(exe), "%s/prog", d.dir);
    snprintf(cmd, sizeof(cmd), "cp %s %s", child_need("LRVM_TEST_GPROG_NOID"), exe);
    cr_assert_eq(system(cmd), 0);
    struct result r = count_prog(&d, exe);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r = count_prog(&d, exe);
    cr_assert_eq(field(r.out, "counter"), 1002, "%s", r.out);
    r = image_of(d.seg);
    cr_assert(strstr(r.out, " (crc32c of the file: it had no build-id)\n"), "%s", r.out);
    uint64_t s0 = file_sum(d.seg);
    FILE *f = fopen(exe, "ab"); /* one more byte: another file */
    cr_assert(f);
    fputc(0, f);
    fclose(f);
    r = count_prog(&d, exe);
    cr_assert_eq(r.status, 2, "%s", r.out);
    cr_assert(strstr(r.err, "(build-id crc32c of the file ") &&
                  strstr(r.err, "its globals cannot be restored into another program"),
              "%s", r.err);
    cr_assert_eq(file_sum(d.seg), s0, "the refusal changed the segment");
    segdir_remove(&d);
}

Test(preload_globals, rvmutl_shows_the_segment)
{
    struct segdir d;
    segdir_make(&d);
    for (int i = 0; i < 2; i++) {
        struct result r = count(&d, NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
    }
    char *argv[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "image", d.seg, NULL};
    struct result r = run(argv, NULL, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char want[512];
    snprintf(want, sizeof(want), "  binary:      %s\n", child_need("LRVM_TEST_GPROG"));
    cr_assert(strstr(r.out, want), "%s", r.out);
    cr_assert(strstr(r.out, "  build-id:    ") && !strstr(r.out, "build-id:    (none)"), "%s",
              r.out);
    cr_assert(strstr(r.out, "  load base:   0x5555"), "%s", r.out);
    cr_assert(strstr(r.out, "bytes at segment offset 4096, committed\n"), "%s", r.out);
    cr_assert(strstr(r.out, "  heap:        base 0x200000000000, reservation 64 MiB"), "%s", r.out);
    cr_assert(strstr(r.out, "  heap in use: 8 MiB backed"), "%s", r.out);
    /* creation + two exit commits, with the log's pending records overlaid if any */
    cr_assert_eq(field(r.out, "commits:"), 3, "%s", r.out);
    char log[160];
    snprintf(log, sizeof(log), "%s.log", d.seg);
    int pending =
        strstr(r.out, "not yet applied to the segment file; shown above with them") != NULL;
    /* after recovery the file alone says the same */
    char *rec[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "recover", log, NULL};
    r = run(rec, NULL, 0);
    cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
    r = run(argv, NULL, 0);
    cr_assert_eq(field(r.out, "commits:"), 3, "%s", r.out);
    cr_assert(strstr(r.out, "no records pending (the segment file holds the last commit)"), "%s",
              r.out);
    cr_log_info("rvmutl image: records were pending before recover: %d", pending);
    /* a heap-only segment says so; a non-segment is an error */
    struct segdir d2;
    segdir_make(&d2);
    r = count(&d2, "LRVM_GLOBALS=0");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *argv2[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "image", d2.seg, NULL};
    r = run(argv2, NULL, 0);
    cr_assert(strstr(r.out, "globals:     not kept (heap-only segment, LRVM_GLOBALS=0)"), "%s",
              r.out);
    char *argv3[] = {(char *)child_need("LRVM_TEST_RVMUTL"), "image",
                     (char *)child_need("LRVM_TEST_GPROG"), NULL};
    r = run(argv3, NULL, 0);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert(strstr(r.out, "not an lrvm process-image segment"), "%s", r.out);
    segdir_remove(&d);
    segdir_remove(&d2);
}

/* last_gen -- the generation in the last complete "start N" / "at N" line of out, or -1 */
static long last_gen(const char *out, const char *what)
{
    long g = -1;
    size_t wl = strlen(what);
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            break; /* an incomplete last line (killed mid-write) */
        if (strncmp(p, what, wl) == 0 && p[wl] == ' ')
            g = strtol(p + wl + 1, NULL, 10);
        p = nl + 1;
    }
    return g;
}

Test(preload_globals, kill_torture_global_rooted_structure, .timeout = 240)
{
    /* An unmodified program whose structure is rooted in a .bss pointer, run >= 100 times
   * (x LRVM_TEST_SCALE) with LD_PRELOAD directly, interval commits every 5 ms (odd runs) or
   * commits on SIGUSR1 sent by this parent 1-4 times (even runs), and killed with
   * SIGKILL at a random moment (every tenth run instead exits after 40 steps: its exit commit is
   * known durable). Each restart must find a valid structure (the program checks every node and
   * exits 3 otherwise) whose generation:
   *   - never goes back (every commit is durable: LRVM_FLUSH=1), i.e. >= the previous start;
   *   - equals exactly the final generation of the last run that exited;
   *   - was reached by the previous run (<= its last printed generation + 1: the step after the
   *     last line may have been published and committed before the kill). */
    struct segdir d;
    segdir_make(&d);
    unsigned seed = 61126u;
    int runs = 100 * scale(), killed = 0, advanced = 0, signals = 0;
    long prev_start = -1, prev_reached = 0, durable = 0;
    int prev_exited = 1;
    for (int i = 0; i < runs; i++) {
        int clean = i % 10 == 9;
        char *argv[] = {(char *)child_need("LRVM_TEST_GPROG"), "torture", clean ? "40" : "0", NULL};
        int by_signal = i % 2 == 0; /* half the runs commit on SIGUSR1 instead of a timer */
        const char *extra[] = {
            d.segvar, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=8M",
            by_signal ? "LRVM_COMMIT=exit,signal:USR1" : "LRVM_COMMIT=exit,interval:5ms", NULL};
        struct child c = child_start(argv, extra, CHILD_SHIM, NULL);
        if (!clean) {
            /* a third during start-up (re-exec, log creation, recovery), the rest mid-run: 0-200 ms
       * after the child said "start" (waiting for it keeps the mix the same on a loaded
       * machine) */
            if (rand_r(&seed) % 3 == 0) {
                child_nap_ms(rand_r(&seed) % 60);
            } else {
                char buf[16];
                for (int w = 0; w < 1000 && pread(c.ofd, buf, 6, 0) < 6; w++)
                    child_nap_ms(10);
                if (by_signal) {
                    /* the handler is installed before main: safe once "start" is out */
                    for (int k = 1 + rand_r(&seed) % 4; k > 0; k--) {
                        child_nap_ms(5 + rand_r(&seed) % 35);
                        kill(c.pid, SIGUSR1);
                        signals++;
                    }
                    child_nap_ms(rand_r(&seed) % 40);
                } else {
                    child_nap_ms(rand_r(&seed) % 200);
                }
            }
            kill(c.pid, SIGKILL);
        }
        struct result r = child_finish(c, 60000);
        cr_assert(!strstr(r.out, "CORRUPT"), "run %d: %s\n%s", i, r.out, r.err);
        long st = last_gen(r.out, "start"), at = last_gen(r.out, "at");
        if (clean) {
            cr_assert_eq(r.status, 0, "run %d: %s", i, r.err);
            cr_assert(st >= 0, "run %d printed no start: %s", i, r.err);
        } else {
            cr_assert(r.status == 128 + SIGKILL || r.status == 0, "run %d: status %d %s", i,
                      r.status, r.err);
            killed++;
        }
        if (st >= 0) {
            cr_assert(st >= prev_start, "run %d: generation went back from %ld to %ld", i,
                      prev_start, st);
            cr_assert(st >= durable, "run %d: started at %ld, before the durable %ld", i, st,
                      durable);
            if (prev_exited)
                cr_assert_eq(st, durable, "run %d: the previous run exited at %ld", i, durable);
            cr_assert(st <= prev_reached + 1,
                      "run %d: started at %ld, beyond what was reached (%ld)", i, st, prev_reached);
            if (st > prev_start && !prev_exited)
                advanced++;
            prev_start = st;
            prev_reached = at > st ? at : st;
        }
        /* a run killed before it printed "start" may still have committed nothing but the
     * recovery: what it reached is what it started from */
        prev_exited = clean;
        if (clean)
            durable = at;
        free(r.out);
        free(r.err);
    }
    cr_log_info("kill torture: %d runs, %d killed, %d restarts after a kill advanced, %d commit "
                "signals sent",
                runs, killed, advanced, signals);
    segdir_remove(&d);
}
