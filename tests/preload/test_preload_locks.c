/* SPDX-License-Identifier: MIT */
/*
 * test_preload_locks.c -- locks do not come back held (preload/lockset.c; suite 'preload').
 * locks_probe, an unmodified program, holds a global mutex, a global robust mutex and a
 * heap-allocated mutex in one thread and waits on a global condition variable in another when
 * a commit captures its image: (a) the exit commit (main calls exit() while they are held),
 * (b) interval commits, then SIGKILL. The next run must lock them, time out a wait on the
 * condition variable and wake its waiters by signal and broadcast without hanging (a hang is
 * a kill after HANG_MS: a failure naming the run), get EOWNERDEAD from the robust mutex, and
 * see the data the holder set under the locks (what the commit captured).
 * Programs are started directly with LD_PRELOAD (not through `timeout`, which would take the
 * shim itself).
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

#define HANG_MS 15000 /* a run of locks_probe takes well under a second */

static const char *const backends[] = {"wp-async", "uffd-sigbus", "mprotect"};

/* start -- locks_probe MODE under the shim (the environment of child.h plus the segment's
 * settings) */
static struct child start(const char *mode, const char *dir, const char *backend,
                          const char *commit)
{
    char seg[128], track[64], com[64];
    snprintf(seg, sizeof(seg), "LRVM_SEGMENT=%s/seg", dir);
    snprintf(track, sizeof(track), "LRVM_TRACK=%s", backend);
    snprintf(com, sizeof(com), "LRVM_COMMIT=%s", commit);
    const char *extra[] = {seg,
                           track,
                           com,
                           "LRVM_GLOBALS=1",
                           "LRVM_STATS=1",
                           "LRVM_HEAP_SIZE=256M",
                           "LRVM_LOG_SIZE=16M",
                           NULL};
    char *argv[] = {(char *)child_need("LRVM_TEST_LOCKSPROBE"), (char *)mode, NULL};
    return child_start(argv, extra, CHILD_SHIM, NULL);
}

/* expect_restored -- run n (1-based) started from the image the previous run's holder left:
 * data set under the locks, every object usable, the robust mutex reporting its dead owner */
static void expect_restored(const struct result *r, int n, const char *backend)
{
    cr_assert_neq(r->status, -1,
                  "%s: run %d hung (a lock or condition held at the last commit "
                  "came back held?)\nstdout:\n%s\nstderr:\n%s",
                  backend, n, r->out, r->err);
    char want[64];
    if (n == 1)
        snprintf(want, sizeof(want), "run 1 data 0 0\n");
    else
        snprintf(want, sizeof(want), "run %d data %d %d\n", n, (n - 1) * 10 + 1, (n - 1) * 10 + 2);
    cr_expect(strncmp(r->out, want, strlen(want)) == 0, "%s: run %d: expected \"%.*s\", got:\n%s",
              backend, n, (int)strlen(want) - 1, want, r->out);
    cr_expect(strstr(r->out, "checked\n") != NULL, "%s: run %d:\n%s\n%s", backend, n, r->out,
              r->err);
    if (n > 1) {
        cr_expect(strstr(r->out, "robust eownerdead\n") != NULL,
                  "%s: run %d: the robust mutex held at the commit did not report EOWNERDEAD:\n%s",
                  backend, n, r->out);
        if (r->status == 0) /* LRVM_STATS prints at exit (not after a SIGKILL) */
            cr_expect(strstr(r->err, "stats: locks: released at start 3 mutexes and 1 condition") !=
                          NULL,
                      "%s: run %d:\n%s", backend, n, r->err);
    }
}

Test(preload_locks, held_at_exit_commit, .timeout = 150)
{
    for (size_t b = 0; b < 3; b++) {
        char dir[64];
        child_tdir(dir, sizeof(dir), "locks");
        for (int n = 1; n <= 3; n++) {
            struct result r = child_finish(start("exit", dir, backends[b], "exit"), HANG_MS);
            expect_restored(&r, n, backends[b]);
            cr_expect_eq(r.status, 0, "%s: run %d: status %d\n%s", backends[b], n, r.status, r.err);
            cr_expect(strstr(r.out, "ready ") != NULL, "%s", r.out);
            free(r.out);
            free(r.err);
        }
        child_dir_remove(dir);
    }
}

/* log_has -- the log (dir/seg.log) contains the string s: a commit record holding it was
 * written (LRVM_FLUSH=1: and is durable) */
static int log_has(const char *dir, const char *s)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/seg.log", dir);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return 0;
    char *b = child_slurp(fd); /* NUL-terminated copy; memmem for the binary parts */
    struct stat st;
    fstat(fd, &st);
    close(fd);
    int found = memmem(b, (size_t)st.st_size, s, strlen(s)) != NULL;
    free(b);
    return found;
}

Test(preload_locks, held_at_interval_commit_then_sigkill, .timeout = 150)
{
    for (size_t b = 0; b < 3; b++) {
        char dir[64];
        child_tdir(dir, sizeof(dir), "locks");
        for (int n = 1; n <= 3; n++) {
            struct child p = start("hold", dir, backends[b], "interval:20ms");
            /* wait until it holds the locks, then until a commit record holding its marker (set
       * last, under the locks, in the instant the commit captures) is in the log */
            int ms = 0, committed = 0;
            char *out = NULL, marker[64] = "";
            for (; ms < HANG_MS; ms++) {
                free(out);
                out = child_slurp(p.ofd);
                char *rd = strstr(out, "ready ");
                if ((rd && sscanf(rd, "ready %63s", marker) == 1) || strstr(out, "FAIL"))
                    break;
                child_nap_ms(1);
            }
            for (; *marker && ms < HANG_MS && !committed; ms += 5) {
                committed = log_has(dir, marker);
                child_nap_ms(5);
            }
            kill(p.pid, SIGKILL);
            struct result r = child_finish(p, HANG_MS);
            expect_restored(&r, n, backends[b]);
            cr_expect(strstr(r.out, "ready ") != NULL, "%s: run %d never held its locks:\n%s\n%s",
                      backends[b], n, r.out, r.err);
            cr_expect(committed, "%s: run %d: no commit of the held state (marker %s) in the log",
                      backends[b], n, marker);
            free(out);
            free(r.out);
            free(r.err);
        }
        /* and a clean run afterwards */
        struct result r = child_finish(start("exit", dir, backends[b], "exit"), HANG_MS);
        expect_restored(&r, 4, backends[b]);
        free(r.out);
        free(r.err);
        child_dir_remove(dir);
    }
}
