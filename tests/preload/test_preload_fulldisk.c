/* SPDX-License-Identifier: MIT */
/*
 * test_preload_fulldisk.c -- sparse files + a full disk must not be SIGBUS.
 *
 * The shim backs the heap with posix_fallocate as it grows (persist.c seg_grow), so a full
 * file system makes malloc return NULL (ENOMEM) instead of killing the program at its first
 * write to an unbacked page. The segment and its log live on a 40 MiB tmpfs mounted for the
 * test (root only: skipped, and reported as skipped, where mount(2) is not allowed). The probe
 * allocates 256 KiB blocks until malloc fails, exits normally; its exit commit must succeed
 * on the full file system (the log was preallocated) and the next run must find every block.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static const char *need(const char *var)
{
    const char *v = getenv(var);
    cr_assert(v && *v, "%s is not set (run through meson test)", var);
    return v;
}

/* under_shim -- run the probe with `what` under the shim; its stdout+stderr in out */
static int under_shim(const char *dir, const char *what, char *out, size_t outsz)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "env LD_PRELOAD=%s LRVM_SEGMENT=%s/seg LRVM_LOG_SIZE=4M LRVM_HEAP_SIZE=256M "
             "%s %s 2>&1",
             need("LRVM_TEST_SHIM"), dir, need("LRVM_TEST_FULLDISK"), what);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    size_t n = fread(out, 1, outsz - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

Test(preload_fulldisk, malloc_fails_cleanly_and_the_commit_survives, .timeout = 120)
{
    char dir[] = "/tmp/lrvm-fulldisk-XXXXXX";
    cr_assert(mkdtemp(dir));
    if (mount("tmpfs", dir, "tmpfs", 0, "size=40m") != 0) {
        int err = errno;
        rmdir(dir);
        cr_skip_test("cannot mount a tmpfs (%s): needs root", strerror(err));
    }
    char out[4096];
    int st = under_shim(dir, "fill", out, sizeof(out));
    unsigned long filled = 0;
    int err = -1;
    const char *line = strstr(out, "filled "); /* after the shim's message on stderr */
    int got = line ? sscanf(line, "filled %lu errno %d", &filled, &err) : 0;
    cr_expect_eq(st, 0, "fill: status %d (a SIGBUS would be 135): %s", st, out);
    cr_expect(strstr(out, "No space left on device") != NULL, "no message about the full disk: %s",
              out);
    cr_expect_eq(got, 2, "fill: %s", out);
    cr_expect_eq(err, ENOMEM, "malloc failed with errno %d, not ENOMEM: %s", err, out);
    /* 40 MiB minus the log (4 MiB), the header, globals and heap metadata: some blocks, and
   * fewer than the file system could ever hold */
    cr_expect(filled > 16 && filled < 160, "filled %lu blocks on a 40 MiB file system", filled);
    st = under_shim(dir, "check", out, sizeof(out));
    unsigned long verified = 0;
    cr_expect_eq(st, 0, "check: status %d: %s", st, out);
    line = strstr(out, "verified ");
    cr_expect(line && sscanf(line, "verified %lu", &verified) == 1, "check: %s", out);
    cr_expect_eq(verified, filled, "the exit commit kept %lu of %lu blocks: %s", verified, filled,
                 out);
    cr_expect_eq(umount(dir), 0, "umount %s: %s", dir, strerror(errno));
    rmdir(dir);
}
