/* SPDX-License-Identifier: MIT */
/*
 * test_torture.c -- the differential torture at CI size: for every DIRTY backend, sessions of
 * torture_driver over a table of settings (commit hooks, aware or not, LRVM_FLUSH: four on
 * every backend, three more shared out among them), each session a fresh segment and 4 runs of
 * torture_prog (clean exits, _exit, SIGKILLs at random times,
 * also during start-up and recovery) plus a last run that only checks. LRVM_TEST_SCALE
 * multiplies the sessions per setting. Every setting is run even after a failure, so that one
 * test run shows every failing setting; the driver's report (the program's message and the
 * command that reruns the session) is printed for each.
 */
#include "child.h"

/* the settings every backend runs: explicit commits durable and no_flush, interval commits
 * while threads start, write and exit, and signal + interval commits with threads that commit
 * themselves before they exit */
static const struct setting {
    const char *commit, *aware, *flush;
} settings[] = {
    {"none", "1", "1"},
    {"none", "1", "0"}, /* no_flush commits: durable at a clean exit */
    {"interval:5ms", "0", "1"},
    {"signal,interval:10ms", "1", "1"}, /* SIGUSR1 commits sent by the driver */
};
/* and one more each, so that every hook and flush mode meets some backend in CI (CI time:
 * each setting costs about 5 s per backend on the loaded 2-core machine) */
static const struct setting rotating[] = {
    {"exit", "1", "0"},
    {"exit,signal", "1", "1"},
    {"exit,interval:2ms", "0", "0"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))
#define RUNS "4"

static unsigned scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    long v = s ? atol(s) : 1;
    return v > 0 ? (unsigned)v : 1;
}

/* torture_backend -- every setting on one backend; fails the test if any session failed */
static void torture_backend(const char *backend, unsigned which)
{
    char dir[256], seed[32], sessions[32];
    child_tdir(dir, sizeof(dir), "torture");
    snprintf(sessions, sizeof(sessions), "%u", scale());
    unsigned failed = 0;
    for (unsigned i = 0; i <= NSETTINGS; i++) {
        const struct setting *st = i < NSETTINGS ? &settings[i] : &rotating[which];
        snprintf(seed, sizeof(seed), "%u", 1 + i * 1000);
        char *argv[] = {(char *)child_need("LRVM_TEST_TORTURE_DRIVER"),
                        "--prog",
                        (char *)child_need("LRVM_TEST_TORTURE_PROG"),
                        "--shim",
                        (char *)child_need("LRVM_TEST_SHIM"),
                        "--dir",
                        dir,
                        "--seed",
                        seed,
                        "--sessions",
                        sessions,
                        "--runs",
                        RUNS,
                        "--backend",
                        (char *)backend,
                        "--commit",
                        (char *)st->commit,
                        "--aware",
                        (char *)st->aware,
                        "--flush",
                        (char *)st->flush,
                        "--timeout-ms",
                        "60000",
                        NULL};
        /* a session is 7 runs, each at most the driver's 60 s limit */
        struct result r = child_run(argv, NULL, 0, NULL, 7L * 61000 * (long)scale());
        if (r.status != 0) {
            failed++;
            fprintf(stderr, "--- %s, LRVM_COMMIT=%s, aware %s, LRVM_FLUSH=%s: status %d\n%s%s",
                    backend, st->commit, st->aware, st->flush, r.status, r.out, r.err);
        }
        free(r.out);
        free(r.err);
    }
    child_dir_remove(dir);
    cr_assert_eq(failed, 0,
                 "%s: %u of %zu settings failed (reports above, with the commands "
                 "that rerun them)",
                 backend, failed, NSETTINGS + 1);
}

Test(torture, wp_async, .timeout = 0)
{
    torture_backend("wp-async", 0);
}

Test(torture, uffd_sigbus, .timeout = 0)
{
    torture_backend("uffd-sigbus", 1);
}

Test(torture, mprotect, .timeout = 0)
{
    torture_backend("mprotect", 2);
}
