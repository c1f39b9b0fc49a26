/* SPDX-License-Identifier: MIT */
/*
 * test_preload_run.c -- programs run under liblrvm-preload.so (suite 'preload').
 *
 * Each test runs a real program twice where it makes sense, without and with the shim, and
 * compares: unmodified Debian programs (sort, gawk, python3, sqlite3), a C++ program, and the
 * probe (preload_probe.c) for stress, fork, exec inheritance, signal handlers, AT_SECURE, invalid
 * options and lrvm-run. With the shim, LRVM_STATS=1 makes the shim print its heap statistics at
 * exit: the tests check them to know the shim really served the program.
 * Paths come from meson (LRVM_TEST_SHIM, LRVM_TEST_PROBE, LRVM_TEST_CXX, LRVM_TEST_RUN).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/* run -- argv (see child.h for its environment) plus extra and, if shim, the shim with
 * LRVM_STATS=1; stdin from in_path; killed after timeout_s (status -1) */
static struct result run(char *const argv[], const char *const extra[], int shim,
                         const char *in_path, int timeout_s)
{
    return child_run(argv, extra, shim ? CHILD_SHIM | CHILD_STATS : 0, in_path, timeout_s * 1000L);
}

/* same_output_env -- run argv without and with the shim (plus extra); stdout and status must
 * be identical */
static void same_output_env(char *const argv[], const char *in_path, const char *const extra[])
{
    if (access(argv[0], X_OK) != 0)
        cr_skip_test("%s is not installed (scripts/setup.sh installs it)", argv[0]);
    struct result a = run(argv, NULL, 0, in_path, 120);
    struct result b = run(argv, extra, 1, in_path, 120);
    cr_assert_eq(a.status, 0, "%s without the shim: status %d: %s", argv[0], a.status, a.err);
    cr_assert_eq(b.status, a.status, "%s with the shim: status %d: %s", argv[0], b.status, b.err);
    cr_assert(strlen(a.out) > 0);
    cr_assert_str_eq(b.out, a.out, "%s: output differs with the shim", argv[0]);
    cr_assert(strstr(b.err, "lrvm: stats: heap reserve") != NULL,
              "%s: the shim did not serve the program (no statistics at exit): %s", argv[0], b.err);
}

/* same_output -- same_output_env with the volatile heap */
static void same_output(char *const argv[], const char *in_path)
{
    same_output_env(argv, in_path, NULL);
}

/* gen_input -- a deterministic file of n lines "NUMBER wordK text" */
static const char *gen_input(long lines)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/lrvm-preload-input-%d", getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    unsigned x = 42;
    for (long i = 0; i < lines; i++) {
        x = x * 1103515245u + 12345u;
        fprintf(f, "%u word%u some text %ld\n", x >> 4, (x >> 10) % 3000, i);
    }
    fclose(f);
    return path;
}

Test(preload_programs, sort_large_input, .timeout = 120)
{
    const char *in = gen_input(300000L * scale());
    char *argv[] = {"/usr/bin/sort", "-k2,2", "-k1,1n", (char *)in, NULL};
    same_output(argv, NULL);
    unlink(in);
}

Test(preload_programs, gawk, .timeout = 120)
{
    const char *in = gen_input(100000L * scale());
    char *argv[] = {"/usr/bin/gawk",
                    "{ c[$2]++; s += $1; t[$2] = t[$2] substr($3, 1, 2) } "
                    "END { PROCINFO[\"sorted_in\"] = \"@ind_str_asc\"; "
                    "for (k in c) print k, c[k], length(t[k]); print s }",
                    (char *)in, NULL};
    same_output(argv, NULL);
    unlink(in);
}

Test(preload_programs, python3, .timeout = 120)
{
    char *argv[] = {"/usr/bin/python3", "-c",
                    "import json, re, collections\n"
                    "d = collections.Counter()\n"
                    "words = ['w%d' % (i * 7919 % 1000) for i in range(200000)]\n"
                    "for w in words: d[w] += 1\n"
                    "big = [list(range(i % 50)) for i in range(20000)]\n"
                    "s = json.dumps({k: v for k, v in sorted(d.items())[:50]})\n"
                    "print(len(s), sum(map(len, big)), re.sub(r'\\d', '#', s[:40]))\n",
                    NULL};
    same_output(argv, NULL);
}

Test(preload_programs, sqlite3_memory, .timeout = 120)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/lrvm-preload-sql-%d", getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "create table t(k integer primary key, g text, v real);\n"
            "with recursive c(i) as (select 1 union all select i + 1 from c where i < %d)\n"
            "  insert into t select i, 'g' || (i %% 97), i * 0.5 from c;\n"
            "create index tg on t(g);\n"
            "select g, count(*), sum(v) from t group by g order by g limit 20;\n"
            "delete from t where k %% 3 = 0;\n"
            "select count(*), max(v), group_concat(g, '') like '%%g1%%' from t;\n",
            50000 * scale());
    fclose(f);
    char *argv[] = {"/usr/bin/sqlite3", ":memory:", NULL};
    same_output(argv, path);
    unlink(path);
}

Test(preload_programs, cxx_map_string, .timeout = 120)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_CXX"), NULL};
    same_output(argv, NULL);
}

/* probe -- run the probe with the shim and the extra environment */
/* probe_for -- run the probe program in a mode under the shim; killed (status -1) after
 * timeout_s, which is how a deadlock shows. Limits are generous: on a loaded 2-core machine
 * the fork-under-commits probe alone takes 15-25 s, and a slow run must not pass for a hang. */
static struct result probe_for(const char *mode, const char *arg, const char *const extra[],
                               int timeout_s)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), (char *)mode, (char *)arg, NULL};
    return run(argv, extra, 1, NULL, timeout_s);
}

static struct result probe(const char *mode, const char *arg, const char *const extra[])
{
    return probe_for(mode, arg, extra, 60);
}

/* seg_env -- "LRVM_SEGMENT=<dir>/seg", the setting that puts a test's segment in its own dir */
static void seg_env(char *seg, size_t n, const char *dir)
{
    cr_assert((size_t)snprintf(seg, n, "LRVM_SEGMENT=%s/seg", dir) < n);
}

Test(preload_probe, shim_serves_malloc)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), "where", NULL};
    struct result a = run(argv, NULL, 0, NULL, 30), b = run(argv, NULL, 1, NULL, 30);
    cr_expect_str_eq(a.out, "glibc\n");
    cr_expect_str_eq(b.out, "shim\n", "%s", b.err);
}

Test(preload_probe, stress_8_threads, .timeout = 120)
{
    struct result r = probe("stress", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "stress threads failed 0\n");
    cr_assert(strstr(r.err, "foreign frees 0") != NULL, "%s", r.err);
}

Test(preload_probe, invalid_value_stops_before_main)
{
    const char *extra[] = {"LRVM_COMMIT=exit,sometimes", NULL};
    struct result r = probe("main", NULL, extra);
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.out, "", "main must not run");
    cr_expect(
        strstr(r.err, "lrvm: LRVM_COMMIT=exit,sometimes: invalid value; accepted: comma list") !=
            NULL,
        "%s", r.err);
}

Test(preload_probe, heap_base_taken_is_refused)
{
    /* lrvm-run turns ASLR off, so the (PIE) probe is loaded at 0x555555554000: a heap asked for
   * at 0x555555400000 overlaps it and MAP_FIXED_NOREPLACE must refuse (EEXIST), not replace. */
    char *argv[] = {(char *)child_need("LRVM_TEST_RUN"),
                    "--heap-base=0x555555400000",
                    "--heap-size=8M",
                    (char *)child_need("LRVM_TEST_PROBE"),
                    "main",
                    NULL};
    struct result r = run(argv, NULL, 0, NULL, 30);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect_str_eq(r.out, "");
    cr_expect(strstr(r.err,
                     "cannot reserve the heap at LRVM_HEAP_BASE=0x555555400000 "
                     "(LRVM_HEAP_SIZE=8M): File exists; something is already mapped there") != NULL,
              "%s", r.err);
    /* Beyond the user address space: refused with the other advice. */
    const char *extra[] = {"LRVM_HEAP_BASE=0x7ffc00000000", "LRVM_HEAP_SIZE=32G", NULL};
    r = probe("main", NULL, extra);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "cannot reserve the heap at LRVM_HEAP_BASE=0x7ffc00000000") != NULL,
              "%s", r.err);
}

Test(preload_probe, at_secure_leaves_program_alone)
{
    /* The test hook behaves as AT_SECURE would: the shim must not even read LRVM_* (the invalid
   * value below would otherwise stop the program) and glibc serves malloc. */
    const char *extra[] = {"_LRVM_TEST_AT_SECURE=1", "LRVM_HEAP_SIZE=bogus", NULL};
    struct result r = probe("where", NULL, extra);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "glibc\n");
    /* ... and says so, once, without having read any LRVM_* variable */
    cr_expect(strstr(r.err, "lrvm: persistence is OFF for this program: it runs in secure mode "
                            "(AT_SECURE") != NULL,
              "no notice from the inactive shim: %s", r.err);
    cr_expect(strstr(r.err, "LRVM_HEAP_SIZE") == NULL, "the shim read LRVM_*: %s", r.err);
}

Test(preload_probe, own_sigsegv_handler_gets_its_faults)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), "segv", NULL};
    struct result a = run(argv, NULL, 0, NULL, 30);
    cr_expect_str_eq(a.out, "faults 1 value 1 query own\n", "without the shim: %s", a.err);
    /* With the shim the handler is chained behind vmprim's dispatcher (LRVM_BACKTRACE=1 makes
   * sure the dispatcher is installed before the program's sigaction). */
    const char *bt[] = {"LRVM_BACKTRACE=1", NULL};
    struct result r = probe("segv", NULL, NULL), b = probe("segv", NULL, bt);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "faults 1 value 1 query own\n", "%s", r.err);
    cr_expect_eq(b.status, 0, "%s", b.err);
    cr_expect_str_eq(b.out, "faults 1 value 1 query own\n", "%s", b.err);
}

Test(preload_probe, genuine_crash_still_crashes)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), "crash", NULL};
    struct result a = run(argv, NULL, 0, NULL, 30);
    cr_assert_eq(a.status, 128 + SIGSEGV, "without the shim: %d", a.status);
    struct result r = probe("crash", NULL, NULL);
    cr_expect_eq(r.status, 128 + SIGSEGV, "%s", r.err);
    const char *bt[] = {"LRVM_BACKTRACE=1", NULL};
    r = probe("crash", NULL, bt);
    cr_expect_eq(r.status, 128 + SIGSEGV, "%s", r.err);
    cr_expect(strstr(r.err, "vmprim: fatal SIGSEGV at 0x10") != NULL, "no crash report: %s", r.err);
    cr_expect_str_eq(r.out, "");
}

Test(preload_probe, fork_in_threaded_program, .timeout = 120)
{
    struct result r = probe("fork", NULL, NULL);
    cr_assert_eq(r.status, 0, "status %d (-1 = deadlock, killed): %s", r.status, r.err);
    char want[64];
    snprintf(want, sizeof(want), "forks ok %d of %d\n", 40 * scale(), 40 * scale());
    cr_assert_str_eq(r.out, want);
}

Test(preload_probe, exec_does_not_inherit_unless_asked)
{
    struct result r = probe("exec", NULL, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "glibc\n", "exec'd child kept the shim");
    const char *extra[] = {"LRVM_INHERIT=1", NULL};
    r = probe("exec", NULL, extra);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "shim\n", "LRVM_INHERIT=1: exec'd child lost the shim");
}

Test(preload_probe, commit_hooks_fire)
{
    char sig[8];
    snprintf(sig, sizeof(sig), "%d", SIGUSR2);
    const char *extra[] = {"LRVM_COMMIT=exit,signal:USR2", NULL};
    struct result r = probe("signal", sig, extra);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "signalled\n");
    /* exit always; the signal commit runs in the commit thread during the probe's sleep, or, if
   * the thread has not taken it by then, in the exit hook: counted once either way. */
    cr_expect(
        strstr(r.err,
               "stats: commits 2 (exit 1, signal 1, interval 0, explicit 0, skipped periods 0)") !=
            NULL,
        "%s", r.err);
    const char *none[] = {"LRVM_COMMIT=none", NULL};
    r = probe("main", NULL, none);
    cr_expect(strstr(r.err, "stats: commits 0 (exit 0") != NULL, "%s", r.err);
}

/* lrvm-run */
static struct result lrvm_run(char *const args[], int nargs)
{
    char *argv[16] = {(char *)child_need("LRVM_TEST_RUN")};
    for (int i = 0; i < nargs; i++)
        argv[1 + i] = args[i];
    argv[1 + nargs] = NULL;
    return run(argv, NULL, 0, NULL, 60);
}

Test(preload_run, status_aslr_and_shim)
{
    char *probe_path = (char *)child_need("LRVM_TEST_PROBE");
    char *a1[] = {"--", probe_path, "status", "42"};
    cr_expect_eq(lrvm_run(a1, 4).status, 42);
    char *a2[] = {"--stats", "1", probe_path, "personality"};
    struct result r = lrvm_run(a2, 4);
    cr_expect_str_eq(r.out, "aslr off\n", "%s", r.err);
    cr_expect(strstr(r.err, "lrvm: stats: heap reserve") != NULL, "%s", r.err);
    char *a3[] = {"--heap-size=64M", "--", probe_path, "where"};
    r = lrvm_run(a3, 4);
    cr_expect_str_eq(r.out, "shim\n", "%s", r.err);
}

Test(preload_run, errors)
{
    char *probe_path = (char *)child_need("LRVM_TEST_PROBE");
    char *a1[] = {"--bogus", "1", probe_path};
    struct result r = lrvm_run(a1, 3);
    cr_expect_eq(r.status, 125);
    cr_expect(strstr(r.err, "unknown option --bogus") != NULL, "%s", r.err);
    char *a2[] = {"--commit", "sometimes", probe_path, "main"};
    r = lrvm_run(a2, 4);
    cr_expect_eq(r.status, 125);
    cr_expect_str_eq(r.out, "");
    cr_expect(strstr(r.err, "LRVM_COMMIT=sometimes: invalid value") != NULL, "%s", r.err);
    char *a3[] = {"/nonexistent/program"};
    r = lrvm_run(a3, 1);
    cr_expect_eq(r.status, 127, "%s", r.err);
    char *a4[] = {"--help"};
    r = lrvm_run(a4, 1);
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "--heap-size") && strstr(r.out, "LRVM_HEAP_SIZE"), "%s", r.out);
}

Test(preload_probe, malloc_family_contracts)
{
    char *argv[] = {(char *)child_need("LRVM_TEST_PROBE"), "api", NULL};
    struct result a = run(argv, NULL, 0, NULL, 30), b = run(argv, NULL, 1, NULL, 30);
    cr_expect_str_eq(a.out, "api ok\n", "glibc itself: %s", a.out);
    cr_expect_str_eq(b.out, "api ok\n", "with the shim: %s %s", b.out, b.err);
    cr_expect_eq(b.status, 0);
}

Test(preload_probe, foreign_free_is_routed_not_fatal)
{
    struct result r = probe("foreign", NULL, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "survived\n");
    cr_expect(strstr(r.err, "foreign frees 2") != NULL, "%s", r.err);
}

/* pers -- the probe under lrvm-run with LRVM_SEGMENT=dir/seg (small heap and log) */
static struct result pers(const char *dir, char *a1, char *a2, char *a3, char *a4)
{
    char seg[128];
    seg_env(seg, sizeof(seg), dir);
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
    char *argv[] = {(char *)child_need("LRVM_TEST_RUN"),
                    (char *)child_need("LRVM_TEST_PROBE"),
                    a1,
                    a2,
                    a3,
                    a4,
                    NULL};
    return run(argv, extra, 0, NULL, 60);
}

Test(preload_persist, heap_survives_exit_and_kill, .timeout = 120)
{
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    struct result r = pers(dir, "pwrite", "generation 1", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", r.out);
    addr[strcspn(addr, "\n")] = 0;
    cr_assert(strncmp(addr, "0x2000", 6) == 0, "block not in the heap: %s", addr);
    /* committed at exit: the next run sees the block, still allocated */
    r = pers(dir, "pread", addr, NULL, NULL);
    cr_assert_str_eq(r.out, "generation 1 64\n", "%s", r.err);
    /* killed before any commit: the change is lost */
    r = pers(dir, "pover", addr, "generation 2", "kill");
    cr_assert_eq(r.status, 128 + SIGKILL);
    r = pers(dir, "pread", addr, NULL, NULL);
    cr_assert_str_eq(r.out, "generation 1 64\n", "%s", r.err);
    /* a fork child's exit does not commit the parent's segment */
    r = pers(dir, "pfork", addr, NULL, NULL);
    cr_assert_eq(r.status, 128 + SIGKILL, "%s", r.err);
    r = pers(dir, "pread", addr, NULL, NULL);
    cr_assert_str_eq(r.out, "generation 1 64\n", "%s", r.err);
    /* a normal exit commits */
    r = pers(dir, "pover", addr, "generation 3", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r = pers(dir, "pread", addr, NULL, NULL);
    cr_assert_str_eq(r.out, "generation 3 64\n", "%s", r.err);
    child_dir_remove(dir);
}

/* A fork child must not share the segment file's pages with the parent (MAP_PRIVATE image):
 * the parent's later truncations would show through them (persist.c,
 * shim_persist_fork_child). A page the parent only read is the child's own after fork. */
Test(preload_persist, fork_child_owns_its_heap_pages, .timeout = 120)
{
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    struct result r = pers(dir, "pwrite", "generation 1", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", r.out);
    addr[strcspn(addr, "\n")] = 0;
    r = pers(dir, "pforkmap", addr, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "private\n", "the child's heap page is %s", r.out);
    child_dir_remove(dir);
}

Test(preload_persist, segment_errors_are_named)
{
    const char *extra[] = {"LRVM_SEGMENT=/nonexistent-dir/seg", NULL};
    struct result r = probe("main", NULL, extra);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect_str_eq(r.out, "");
    cr_expect(strstr(r.err, "cannot open LRVM_SEGMENT=/nonexistent-dir/seg: No such file") != NULL,
              "%s", r.err);
    /* a log in a missing directory is named too */
    const char *log[] = {"LRVM_SEGMENT=/tmp/lrvm-preload-seg-log-test",
                         "LRVM_LOG=/nonexistent-dir/l", NULL};
    r = probe("main", NULL, log);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "cannot open the log") && strstr(r.err, "/nonexistent-dir/l"), "%s",
              r.err);
    unlink("/tmp/lrvm-preload-seg-log-test");
}

/* The uffd-sigbus and mprotect backends are no longer refused: test_preload_kwrite.c runs
 * programs with kernel writes into the heap under each of them. */

Test(preload_persist, one_writer_per_segment)
{
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[128], seg[160];
    snprintf(path, sizeof(path), "%s/seg", dir);
    snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s", path);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(flock(fd, LOCK_EX), 0); /* this process plays the running writer */
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=4M", NULL};
    struct result r = probe("main", NULL, extra);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect_str_eq(r.out, "");
    char who[64];
    snprintf(who, sizeof(who), "is in use by pid %d (one writer per segment)", (int)getpid());
    cr_expect(strstr(r.err, who) != NULL, "%s", r.err);
    close(fd);
    r = probe("main", NULL, extra);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "main reached\n");
    child_dir_remove(dir);
}

Test(preload_persist, kill_torture, .timeout = 180)
{
    /* 100 runs (x LRVM_TEST_SCALE) of an unmodified program, each killed with SIGKILL or
   * exiting (the exit commit) at random; every run must see exactly the last committed value. */
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    struct result r = pers(dir, "pwrite", "v0", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", r.out);
    addr[strcspn(addr, "\n")] = 0;
    char expect[32] = "v0";
    unsigned seed = 20261126u;
    int runs = 100 * scale(), kills = 0;
    for (int i = 1; i <= runs; i++) {
        char next[32];
        snprintf(next, sizeof(next), "v%d", i);
        int kill = rand_r(&seed) % 2;
        char *argv[] = {(char *)child_need("LRVM_TEST_RUN"),
                        (char *)child_need("LRVM_TEST_PROBE"),
                        "torture",
                        addr,
                        expect,
                        next,
                        kill ? "kill" : "exit",
                        NULL};
        char seg[128];
        seg_env(seg, sizeof(seg), dir);
        const char *extra[] = {seg, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=1M", NULL};
        r = run(argv, extra, 0, NULL, 60);
        cr_assert_str_eq(r.out, "ok\n", "run %d expected %s: %s %s", i, expect, r.out, r.err);
        cr_assert_eq(r.status, kill ? 128 + SIGKILL : 0, "run %d: %s", i, r.err);
        if (kill)
            kills++;
        else
            snprintf(expect, sizeof(expect), "%s", next);
    }
    cr_expect(kills > runs / 4 && kills < runs * 3 / 4);
    child_dir_remove(dir);
}

Test(preload_persist, unmodified_programs_with_a_segment, .timeout = 180)
{
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    char seg[128];
    seg_env(seg, sizeof(seg), dir);
    /* heap-only (LRVM_GLOBALS=0): only such a segment may be reopened by another program */
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=2G", "LRVM_COMMIT=exit,interval:100ms",
                           "LRVM_GLOBALS=0", NULL};
    const char *in = gen_input(300000L * scale());
    char *sort[] = {"/usr/bin/sort", "-k2,2", "-k1,1n", (char *)in, NULL};
    same_output_env(sort, NULL, extra);
    unlink(in);
    char *cxx[] = {(char *)child_need("LRVM_TEST_CXX"), NULL}; /* reopens the same segment */
    same_output_env(cxx, NULL, extra);
    child_dir_remove(dir);
}

Test(preload_persist, stress_8_threads_with_interval_commits, .timeout = 300)
{
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    char seg[128];
    seg_env(seg, sizeof(seg), dir);
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=1G", "LRVM_COMMIT=exit,interval:50ms", NULL};
    struct result r = probe("stress", NULL, extra);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "stress threads failed 0\n");
    cr_assert(strstr(r.err, "; segment ") != NULL, "%s", r.err);
    child_dir_remove(dir);
}

/* Fork while 8 threads allocate and 50 ms interval commits run: no deadlock, no starvation.
 * It used to take 40-160 s and hang in loaded suite runs: commits slower than the period ran
 * back to back and the forking thread starved on the heap locks (preload/forkgate.c has the
 * analysis); now a fork waits for at most one commit. A hang shows as status -1 (killed). */
Test(preload_persist, fork_during_interval_commits, .timeout = 300)
{
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    char seg[128];
    seg_env(seg, sizeof(seg), dir);
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=1G", "LRVM_COMMIT=exit,interval:50ms", NULL};
    struct result r = probe_for("fork", NULL, extra, 200);
    cr_assert_eq(r.status, 0, "status %d (-1 = deadlock, killed): %s", r.status, r.err);
    char want[64];
    snprintf(want, sizeof(want), "forks ok %d of %d\n", 40 * scale(), 40 * scale());
    cr_assert_str_eq(r.out, want, "%s", r.err);
    child_dir_remove(dir);
}

/* spawn_kill -- run argv (environment as run() builds it, without the shim's stats) until it
 * has printed its first line (it is running main) plus delay_ms, then SIGKILL it; returns that
 * line */
static void spawn_kill(char *const argv[], const char *const extra[], int delay_ms, char *line,
                       size_t linesz)
{
    struct child c = child_start(argv, extra, 0, NULL);
    int exited = 0;
    struct stat st0;
    for (int waited = 0; waited < 3000; waited++) { /* at most 30 s for start-up */
        if (fstat(c.ofd, &st0) == 0 && st0.st_size > 0)
            break;
        if (waitpid(c.pid, NULL, WNOHANG) == c.pid) {
            exited = 1; /* it exited (refused?): nothing to kill */
            break;
        }
        child_nap_ms(10);
    }
    child_nap_ms(delay_ms);
    if (!exited) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, NULL, 0);
    }
    char *out = child_slurp(c.ofd);
    close(c.ofd);
    close(c.efd);
    snprintf(line, linesz, "%s", out);
    line[strcspn(line, "\n")] = 0;
    free(out);
}

Test(preload_persist, kill_during_interval_commits, .timeout = 180)
{
    /* A program that keeps changing its data while 4 threads allocate, with 10 ms interval
   * commits, killed 5-105 ms into main, 30 times (x LRVM_TEST_SCALE): every restart must open the
   * heap (its metadata is checked at open) and see a committed value, never an older one than
   * the previous restart saw. Only the kill moment is random; what is asserted is not timing. */
    char dir[] = "/tmp/lrvm-preload-persist-XXXXXX";
    cr_assert(mkdtemp(dir));
    struct result r = pers(dir, "pwrite", "n0", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", r.out);
    addr[strcspn(addr, "\n")] = 0;
    char seg[128];
    seg_env(seg, sizeof(seg), dir);
    const char *extra[] = {seg, "LRVM_HEAP_SIZE=64M", "LRVM_LOG_SIZE=2M",
                           "LRVM_COMMIT=exit,interval:10ms", NULL};
    unsigned seed = 777;
    long last = 0, advanced = 0;
    int runs = 30 * scale();
    for (int i = 0; i < runs; i++) {
        char *argv[] = {(char *)child_need("LRVM_TEST_RUN"), (char *)child_need("LRVM_TEST_PROBE"),
                        "climb", addr, NULL};
        char line[128];
        spawn_kill(argv, extra, 5 + (int)(rand_r(&seed) % 100), line, sizeof(line));
        cr_assert(line[0] == 'n', "run %d did not start (heap refused after a kill?): '%s'", i,
                  line);
        long v = strtol(line + 1, NULL, 10);
        cr_assert(v >= last, "run %d saw n%ld after n%ld had been seen: a commit went backwards", i,
                  v, last);
        advanced += v > last;
        last = v;
    }
    struct result fin = pers(dir, "pread", addr, NULL, NULL);
    cr_assert_eq(fin.status, 0, "%s", fin.err);
    cr_expect(advanced > 0, "no interval commit was ever seen");
    child_dir_remove(dir);
}
