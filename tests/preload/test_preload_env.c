/* SPDX-License-Identifier: MIT */
/* test_preload_env.c -- the shim's options table and parsers (suite 'preload'). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* parse_env -- run shim_env_parse over the given entries; stderr text into err */
static int parse_env(char **envp, char *err, size_t errsz)
{
    char path[] = "/tmp/lrvm-env-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    int rc = shim_env_parse(envp, fd);
    ssize_t n = pread(fd, err, errsz - 1, 0);
    err[n > 0 ? n : 0] = 0;
    close(fd);
    return rc;
}

Test(preload_env, defaults)
{
    char *envp[] = {"PATH=/bin", NULL};
    char err[512];
    cr_assert_eq(parse_env(envp, err, sizeof(err)), 0, "%s", err);
    cr_expect_null(shim_opts.segment);
    cr_expect_eq(shim_opts.heap_size, (size_t)16 << 30);
    cr_expect_eq(shim_opts.heap_base, (uintptr_t)0x200000000000ull);
    cr_expect_eq(shim_opts.commit, SHIM_COMMIT_EXIT);
    cr_expect_eq(shim_opts.flush, 1);
    cr_expect_eq(shim_opts.globals, 1);
    cr_expect_eq(shim_opts.inherit, 0);
    cr_expect_str_eq(shim_opts.track, "auto");
}

Test(preload_env, sizes)
{
    size_t v;
    cr_expect_eq(shim_parse_size("4096", &v), 0);
    cr_expect_eq(v, 4096);
    cr_expect_eq(shim_parse_size("64K", &v), 0);
    cr_expect_eq(v, 64 << 10);
    cr_expect_eq(shim_parse_size("512m", &v), 0);
    cr_expect_eq(v, (size_t)512 << 20);
    cr_expect_eq(shim_parse_size("2GB", &v), 0);
    cr_expect_eq(v, (size_t)2 << 30);
    cr_expect_eq(shim_parse_size("0x1000", &v), 0);
    cr_expect_eq(v, 4096);
    const char *bad[] = {
        "", "G", "12X", "1.5G", "-1", "12 M", "99999999999999999999", "17179869184G"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_neq(shim_parse_size(bad[i], &v), 0, "accepted %s", bad[i]);
}

Test(preload_env, times)
{
    uint64_t ns;
    cr_expect_eq(shim_parse_time_ns("500ms", &ns), 0);
    cr_expect_eq(ns, 500000000ull);
    cr_expect_eq(shim_parse_time_ns("2s", &ns), 0);
    cr_expect_eq(ns, 2000000000ull);
    const char *bad[] = {"500", "0ms", "ms", "5m", "1.5s", "5 s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_neq(shim_parse_time_ns(bad[i], &ns), 0, "accepted %s", bad[i]);
}

Test(preload_env, commit_lists)
{
    unsigned h;
    int sig;
    uint64_t iv;
    cr_assert_eq(shim_parse_commit("exit,signal:USR2,interval:500ms", &h, &sig, &iv), 0);
    cr_expect_eq(h, SHIM_COMMIT_EXIT | SHIM_COMMIT_SIGNAL | SHIM_COMMIT_INTERVAL);
    cr_expect_eq(sig, SIGUSR2);
    cr_expect_eq(iv, 500000000ull);
    cr_assert_eq(shim_parse_commit("signal", &h, &sig, &iv), 0);
    cr_expect_eq(h, SHIM_COMMIT_SIGNAL);
    cr_expect_eq(sig, SIGUSR1);
    cr_assert_eq(shim_parse_commit("signal:SIGHUP", &h, &sig, &iv), 0);
    cr_expect_eq(sig, SIGHUP);
    cr_assert_eq(shim_parse_commit("signal:40", &h, &sig, &iv), 0);
    cr_expect_eq(sig, 40);
    cr_assert_eq(shim_parse_commit("none", &h, &sig, &iv), 0);
    cr_expect_eq(h, 0);
    const char *bad[] = {
        "",         "exit,",       "exit,,signal", "interval",   "interval:500", "signal:KILL",
        "signal:9", "signal:SEGV", "signal:11",    "signal:FOO", "exit:now",     "never"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_neq(shim_parse_commit(bad[i], &h, &sig, &iv), 0, "accepted '%s'", bad[i]);
}

Test(preload_env, invalid_values_name_variable_and_accepted)
{
    char *envp[] = {"LRVM_HEAP_SIZE=12X", "LRVM_TRACK=fast", "LRVM_HEAP_BASE=0x1234", NULL};
    char err[2048];
    cr_assert_neq(parse_env(envp, err, sizeof(err)), 0);
    cr_expect(strstr(err, "LRVM_HEAP_SIZE=12X: invalid value; accepted: a size") != NULL, "%s",
              err);
    cr_expect(strstr(err, "LRVM_TRACK=fast: invalid value; accepted: auto, wp-async") != NULL, "%s",
              err);
    cr_expect(strstr(err, "LRVM_HEAP_BASE=0x1234: invalid value; accepted: a 4 MiB-aligned") !=
                  NULL,
              "%s", err);
}

Test(preload_env, heap_size_bounds)
{
    char err[512];
    char *small[] = {"LRVM_HEAP_SIZE=4M", NULL}, *odd[] = {"LRVM_HEAP_SIZE=10M", NULL},
         *big[] = {"LRVM_HEAP_SIZE=512G", NULL}, *ok[] = {"LRVM_HEAP_SIZE=1G", NULL};
    cr_expect_neq(parse_env(small, err, sizeof(err)), 0);
    cr_expect_neq(parse_env(odd, err, sizeof(err)), 0);
    cr_expect_neq(parse_env(big, err, sizeof(err)), 0);
    cr_expect_eq(parse_env(ok, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(shim_opts.heap_size, (size_t)1 << 30);
}

Test(preload_env, unknown_variable_is_named)
{
    char *envp[] = {"LRVM_SEGMNT=/tmp/x", "LRVM_TEST_SCALE=3", NULL};
    char err[512];
    cr_assert_neq(parse_env(envp, err, sizeof(err)), 0);
    cr_expect(strstr(err, "LRVM_SEGMNT: unknown variable") != NULL, "%s", err);
    cr_expect(strstr(err, "LRVM_TEST_SCALE") == NULL, "test variables are not the shim's: %s", err);
}

Test(preload_env, booleans_and_paths)
{
    char *envp[] = {"LRVM_SEGMENT=/tmp/seg", "LRVM_FLUSH=off", "LRVM_STATS=YES",
                    "LRVM_INHERIT=true",     "LRVM_GLOBALS=0", NULL};
    char err[512];
    cr_assert_eq(parse_env(envp, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(shim_opts.segment, "/tmp/seg");
    cr_expect_eq(shim_opts.flush, 0);
    cr_expect_eq(shim_opts.stats, 1);
    cr_expect_eq(shim_opts.inherit, 1);
    cr_expect_eq(shim_opts.globals, 0);
    char *bad[] = {"LRVM_FLUSH=maybe", NULL};
    cr_expect_neq(parse_env(bad, err, sizeof(err)), 0);
}

Test(preload_env, option_names_mirror_variables)
{
    int tv;
    cr_expect_str_eq(shim_env_option("segment", &tv), "LRVM_SEGMENT");
    cr_expect_str_eq(shim_env_option("heap-size", &tv), "LRVM_HEAP_SIZE");
    cr_expect_str_eq(shim_env_option("commit", &tv), "LRVM_COMMIT");
    cr_expect_null(shim_env_option("heap_size", &tv));
    cr_expect_null(shim_env_option("bogus", &tv));
}

Test(preload_env, mutex_wait)
{
    char *off[] = {"PATH=/bin", NULL};
    char err[1024];
    cr_assert_eq(parse_env(off, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(shim_opts.mutex_wait_ns, 0); /* default: off */
    char *on[] = {"LRVM_MUTEX_WAIT=20ms", NULL};
    cr_assert_eq(parse_env(on, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(shim_opts.mutex_wait_ns, 20000000ull);
    char *zero[] = {"LRVM_MUTEX_WAIT=0", NULL};
    cr_assert_eq(parse_env(zero, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(shim_opts.mutex_wait_ns, 0);
    char *bad[] = {"LRVM_MUTEX_WAIT=20", NULL};
    cr_assert_neq(parse_env(bad, err, sizeof(err)), 0);
    cr_expect(strstr(err, "LRVM_MUTEX_WAIT=20: invalid value; accepted: 0 (off) or a time with "
                          "ms or s") != NULL,
              "%s", err);
    int tv;
    cr_expect_str_eq(shim_env_option("mutex-wait", &tv), "LRVM_MUTEX_WAIT");
}
