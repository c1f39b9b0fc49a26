/* SPDX-License-Identifier: MIT */
/*
 * test_rds_tools.c -- the scripting forms of the tools: rdsinit with -f (no questions),
 * with arguments and a confirmation on stdin, fully interactive from stdin, quitting, and
 * refusing bad parameters; rvmutl rds-check on a good, a damaged and a foreign segment.
 */
#include <stdarg.h>
#include <sys/wait.h>

#include "rds_test.h"

static char out[16384];

/* sh -- run a shell command, capture its output in out, return its exit status */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *tool(const char *var)
{
    const char *t = getenv(var);
    cr_assert_not_null(t, "%s is not set (run through meson test)", var);
    return t;
}

static struct rds_env E;

static void setup(void)
{
    env_dir(&E);
    cr_assert_eq(sh("'%s' create-log '%s' 2m 2>&1", tool("RVMUTL"), E.log), 0, "%s", out);
}

static void teardown(void)
{
    env_done(&E);
}

TestSuite(rds_tools, .init = setup, .fini = teardown, .timeout = 60);

Test(rds_tools, rdsinit_firm_makes_a_heap_rds_check_accepts)
{
    cr_assert_eq(sh("'%s' -f '%s' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 64 2>&1",
                    tool("RDSINIT"), E.log, E.seg),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "rds_zap_heap completed successfully."), "%s", out);
    cr_assert_not_null(strstr(out, "rvm_terminate succeeded."), "%s", out);
    cr_assert_null(strstr(out, "(y|n|q)"), "-f must not ask: %s", out);
    cr_assert_eq(sh("'%s' rds-check '%s'", tool("RVMUTL"), E.seg), 0, "%s", out);
    cr_assert_not_null(strstr(out, "consistent"), "%s", out);
}

Test(rds_tools, rdsinit_arguments_are_confirmed_on_stdin)
{
    cr_assert_eq(sh("echo q | '%s' '%s' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 64",
                    tool("RDSINIT"), E.log, E.seg),
                 1, "%s", out);
    cr_assert_not_null(strstr(out, "Do you agree with these parameters ? (y|n|q)"), "%s", out);
    cr_assert_not_null(strstr(out, "rdsinit quit.  No permanent change is made"), "%s", out);
    cr_assert_neq(access(E.seg, F_OK), 0, "quit must leave no segment");
    cr_assert_eq(sh("echo y | '%s' '%s' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 64",
                    tool("RDSINIT"), E.log, E.seg),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "heap len:    0x40000 (    262144)"), "%s", out);
    cr_assert_eq(sh("'%s' rds-check '%s'", tool("RVMUTL"), E.seg), 0, "%s", out);
}

Test(rds_tools, rdsinit_interactive_dialogue_from_a_script)
{
    /* datalen (rounded up: accepted), saddr, hlen, slen, nlists, chunk, then agree */
    cr_assert_eq(sh("printf '0x43001\\ny\\n0x5e0000000000\\ny\\n0x40000\\ny\\n0x2000\\ny\\n"
                    "50\\ny\\n64\\ny\\ny\\n' | '%s' '%s' '%s'",
                    tool("RDSINIT"), E.log, E.seg),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "Umm... not a multiple of 4096"), "%s", out);
    cr_assert_not_null(strstr(out, "length of data segment:    0x44000"), "%s", out);
    cr_assert_not_null(strstr(out, "rds_zap_heap completed successfully."), "%s", out);
    cr_assert_eq(sh("'%s' rds-check '%s'", tool("RVMUTL"), E.seg), 0, "%s", out);
}

Test(rds_tools, rdsinit_refuses_bad_parameters_and_a_missing_log)
{
    cr_assert_eq(sh("'%s' -f '%s' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 8",
                    tool("RDSINIT"), E.log, E.seg),
                 1, "%s", out);
    cr_assert_not_null(strstr(out, "chunk must be"), "%s", out);
    cr_assert_eq(sh("'%s' -f '%s' '%s' 0x20000 0x5e0000000000 0x40000 0x2000 100 64",
                    tool("RDSINIT"), E.log, E.seg),
                 1, "%s", out);
    cr_assert_not_null(strstr(out, "datalen must be"), "%s", out);
    cr_assert_neq(access(E.seg, F_OK), 0, "a refused rdsinit must leave no segment");
    cr_assert_eq(sh("'%s' -f '%s/nolog' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 64",
                    tool("RDSINIT"), E.dir, E.seg),
                 1, "%s", out);
    cr_assert_not_null(strstr(out, "create-log"), "%s", out);
    cr_assert_eq(sh("'%s' -f '%s' 2>&1", tool("RDSINIT"), E.log), 1, "%s", out);
    cr_assert_not_null(strstr(out, "Usage: rdsinit"), "%s", out);
}

Test(rds_tools, rds_check_names_the_damaged_block)
{
    cr_assert_eq(sh("'%s' -f '%s' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 64",
                    tool("RDSINIT"), E.log, E.seg),
                 0, "%s", out);
    /* the one free block starts at heap offset 1920 (header 1864 rounded up to 64); its
     * size field lies at file offset 4096 + 1928: make it too big */
    FILE *f = fopen(E.seg, "r+b");
    cr_assert_not_null(f);
    unsigned long big = 1UL << 30;
    cr_assert_eq(fseek(f, 4096 + 1928, SEEK_SET), 0);
    cr_assert_eq(fwrite(&big, sizeof(big), 1, f), 1);
    fclose(f);
    cr_assert_eq(sh("'%s' rds-check '%s'", tool("RVMUTL"), E.seg), 1, "%s", out);
    cr_assert_not_null(strstr(out, "DAMAGED"), "%s", out);
    cr_assert_not_null(strstr(out, "0x5e0000000780"), "the block's address: %s", out);
    /* a file that is no segment at all */
    cr_assert_eq(sh("'%s' rds-check '%s' 2>&1", tool("RVMUTL"), E.log), 1, "%s", out);
    cr_assert_not_null(strstr(out, "not a segment-loader segment"), "%s", out);
}

Test(rds_tools, rvmutl_command_language_as_setup_scripts_use_it)
{
    /* the log setup of a server written for the original: `i LOG SIZE` then quit */
    cr_assert_eq(sh("printf 'i %s/log2 2M\\nq\\n' | '%s' 2>&1", E.dir, tool("RVMUTL")), 0, "%s",
                 out);
    cr_assert_eq(sh("'%s' status '%s/log2' 2>&1", tool("RVMUTL"), E.dir), 0, "%s", out);
    cr_assert_eq(sh("'%s' -f '%s/log2' '%s' 0x44000 0x5e0000000000 0x40000 0x2000 100 64",
                    tool("RDSINIT"), E.dir, E.seg),
                 0, "%s", out);
    /* `rvmutl LOG` then commands, abbreviated, with a comment */
    cr_assert_eq(sh("printf '# check and recover\\nstatus\\nrec\\nrds_check %s\\nquit\\n' | "
                    "'%s' '%s/log2' 2>&1",
                    E.seg, tool("RVMUTL"), E.dir),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "recovered"), "%s", out);
    cr_assert_not_null(strstr(out, "consistent"), "%s", out);
    /* a command that fails, or that lrvm does not have, says so and fails the run */
    cr_assert_eq(sh("printf 'open_log %s/nolog\\nq\\n' | '%s' 2>&1", E.dir, tool("RVMUTL")), 1,
                 "%s", out);
    cr_assert_not_null(strstr(out, "? open_log: cannot open"), "%s", out);
    cr_assert_eq(sh("printf 'peek 0\\nq\\n' | '%s' '%s/log2' 2>&1", tool("RVMUTL"), E.dir), 1, "%s",
                 out);
    cr_assert_not_null(strstr(out, "rvmutl dump"), "%s", out);
}

Test(rds_tools, rds_check_with_the_log_sees_commits_not_yet_applied)
{
    const char *b = tool("RDS_BASHER");
    char log3[320], seg3[320];
    snprintf(log3, sizeof(log3), "%s/blog", E.dir);
    snprintf(seg3, sizeof(seg3), "%s/bseg", E.dir);
    cr_assert_eq(sh("'%s' init '%s' '%s' 2>&1", b, log3, seg3), 0, "%s", out);
    /* 200 transactions with the truncation threshold at 100% (far from filling the log, so
     * nothing is applied to the segment file), then SIGKILL: the records stay in the log
     * (no timing: a kill after a fixed sleep let a fast machine fill the log first) */
    cr_assert_eq(sh("(RDS_BASHER_TRUNCATE=100 RDS_BASHER_KILL_AT_END=1 '%s' run '%s' '%s' 7 200 "
                    ">/dev/null) 2>&1; true",
                    b, log3, seg3),
                 0, "%s", out);
    cr_assert_eq(sh("'%s' rds-check '%s'", tool("RVMUTL"), seg3), 0, "%s", out);
    cr_assert_not_null(strstr(out, " 0 allocated"), "the file alone has no allocation: %s", out);
    cr_assert_eq(sh("'%s' rds-check '%s' '%s'", tool("RVMUTL"), seg3, log3), 0, "%s", out);
    cr_assert_not_null(strstr(out, "not yet applied: laid over the file"), "%s", out);
    cr_assert_null(strstr(out, " 0 allocated"), "with the log the allocations show: %s", out);
}
