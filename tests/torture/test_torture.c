/*
 * test_torture.c -- the differential torture at CI size: for every DIRTY backend, sessions of
 * torture_driver over a fixed table of settings (commit hooks, aware or not, LRVM_FLUSH), each
 * a fresh segment and 6 runs of torture_prog (clean exits, _exit, SIGKILLs at random times,
 * also during start-up and recovery) plus a last run that only checks. LRVM_TEST_SCALE
 * multiplies the sessions per setting. Every setting is run even after a failure, so that one
 * test run shows every failing setting; the driver's report (the program's message and the
 * command that reruns the session) is printed for each.
 */
#include "child.h"

/* the settings every backend runs: each commit hook, explicit commits, flush and no_flush */
static const struct setting {
  const char *commit, *aware, *flush;
} settings[] = {
  {"none", "1", "1"},                   /* explicit rvm_commit only, durable */
  {"none", "1", "0"},                   /* explicit no_flush commits: durable at a clean exit */
  {"exit", "1", "0"},
  {"interval:5ms", "0", "1"},           /* commits while threads start, write and exit */
  {"exit,signal", "1", "1"},            /* SIGUSR1 commits sent by the driver */
  {"exit,interval:2ms", "0", "0"},
  {"signal,interval:10ms", "1", "1"},
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
static void torture_backend(const char *backend)
{
  char dir[256], seed[32], sessions[32];
  child_tdir(dir, sizeof(dir), "torture");
  snprintf(sessions, sizeof(sessions), "%u", scale());
  unsigned failed = 0;
  for (unsigned i = 0; i < NSETTINGS; i++) {
    const struct setting *st = &settings[i];
    snprintf(seed, sizeof(seed), "%u", 1 + i * 1000);
    char *argv[] = {(char *)child_need("LRVM_TEST_TORTURE_DRIVER"),
                    "--prog", (char *)child_need("LRVM_TEST_TORTURE_PROG"),
                    "--shim", (char *)child_need("LRVM_TEST_SHIM"),
                    "--dir", dir, "--seed", seed, "--sessions", sessions, "--runs", RUNS,
                    "--backend", (char *)backend, "--commit", (char *)st->commit,
                    "--aware", (char *)st->aware, "--flush", (char *)st->flush,
                    "--timeout-ms", "60000", NULL};
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
  cr_assert_eq(failed, 0, "%s: %u of %zu settings failed (reports above, with the commands "
               "that rerun them)", backend, failed, NSETTINGS);
}

Test(torture, wp_async, .timeout = 0)
{
  torture_backend("wp-async");
}

Test(torture, uffd_sigbus, .timeout = 0)
{
  torture_backend("uffd-sigbus");
}

Test(torture, mprotect, .timeout = 0)
{
  torture_backend("mprotect");
}
