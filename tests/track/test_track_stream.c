/* SPDX-License-Identifier: MIT */
/*
 * test_track_stream.c -- the final commit's streamed record (core/engine/log_stream.c): a final
 * commit of a large dirty region, written to the log in 1 MiB pieces from the tracker's
 * buffer, is recovered byte-exact after the process is killed right after it returned (also
 * when the record has to wrap around the log's end behind a truncation); and a streamed
 * record whose write fails midway leaves the previous commit intact and makes every later
 * commit fail. Each run is a child that dies without rvm_terminate; a fresh child recovers.
 * Size: SEG_MB MiB of segment x LRVM_TEST_SCALE.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rvm_int.h"
#include "sysio.h"
#include "track_test.h"

#define SEG_MB 6

static char dir[64], logp[128], segp[128];
static size_t seg_len, log_len;

/* scale -- LRVM_TEST_SCALE (default 1) */
static size_t scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    long v = s ? atol(s) : 1;
    return v > 0 ? (size_t)v : 1;
}

/* files -- a fresh directory with an empty segment */
static void files(size_t log_bytes)
{
    seg_len = (size_t)SEG_MB * scale() << 20;
    log_len = log_bytes * scale();
    snprintf(dir, sizeof(dir), "/tmp/lrvm-track-stream-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, (off_t)seg_len) == 0);
    close(fd);
}

/* rmfiles -- remove what files() made */
static void rmfiles(void)
{
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}

/* start -- initialise (recovering), map the segment copied and track it with wp-async */
static int start(rvm_region_t *rg)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    if (access(logp, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, log_len);
        if (rvm_create_log(&o, &len, 0600) != RVM_SUCCESS)
            return 1;
    }
    if (RVM_INIT(&o) != RVM_SUCCESS)
        return 2;
    if (rg == NULL)
        return 0;
    rvm_track_options_t to = {.backend = "wp-async"};
    if (rvm_track_configure(&to) != RVM_SUCCESS)
        return 3;
    rvm_init_region(rg);
    rg->data_dev = segp;
    if (rvm_map(rg, NULL) != RVM_SUCCESS)
        return 4;
    if (rvm_track(rg) != RVM_SUCCESS)
        return 5;
    return 0;
}

/* in_child -- run fn(arg) in a child; assert it exited 0, or was SIGKILLed if killed */
static void in_child(int (*fn)(int), int arg, int killed, const char *what)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        track_set_sink(NULL, NULL);
        _exit(fn(arg));
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: failed at step %d", what,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* recover_run -- a fresh process recovers and truncates: the file is the committed state */
static int recover_run(int unused)
{
    (void)unused;
    if (start(NULL) != 0 || rvm_truncate() != RVM_SUCCESS || rvm_terminate() != RVM_SUCCESS)
        return 1;
    return 0;
}

/* pat -- byte i of the region after phase p (0: zeros). Phase 1 fills the first half;
 * phase 2 rewrites every page: even pages whole (long ranges), odd pages one byte in 97
 * (hundreds of short ranges per page: a range array far bigger than 1 MiB) */
static char pat(int p, size_t i)
{
    size_t ps = vmp_page_size();
    if (p == 0)
        return 0;
    if (p == 1)
        return i < seg_len / 2 ? (char)('a' + i % 23) : 0;
    if ((i / ps) % 2 == 0)
        return (char)(i * 2654435761u >> 13);
    return i % 97 == 5 ? (char)(0x80 | i % 31) : pat(1, i);
}

/* fill -- write phase p into m */
static void fill(char *m, int p)
{
    for (size_t i = 0; i < seg_len; i++)
        m[i] = pat(p, i);
}

/* check -- the segment file holds phase p */
static void check(int p)
{
    char *seg = malloc(seg_len);
    int fd = open(segp, O_RDONLY);
    cr_assert(seg != NULL && fd >= 0);
    cr_assert_eq(pread(fd, seg, seg_len, 0), (ssize_t)seg_len);
    close(fd);
    for (size_t i = 0; i < seg_len; i++)
        if (seg[i] != pat(p, i))
            cr_assert_fail("segment byte %zu is %d, phase %d says %d", i, seg[i], p, pat(p, i));
    free(seg);
}

/* phase1 -- commit the first phase (an ordinary commit) */
static int phase1(int unused)
{
    (void)unused;
    rvm_region_t rg;
    int e = start(&rg);
    if (e)
        return 10 + e;
    fill(rg.vmaddr, 1);
    return rvm_commit() == RVM_SUCCESS ? 0 : 20;
}

/* phase2_kill -- final commit of the whole rewritten region, then SIGKILL at once.
 * copy: hold a log lock, so the commit cannot be written while parked (txn_stream_ready)
 * and takes the copying path; else it must be zero-copy */
static int phase2_kill(int how)
{
    int copy = how & 1, wrap = how & 2;
    uint64_t t1 = 0, rec1 = 0;
    rvm_region_t rg;
    int e = start(&rg);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    if (wrap) {
        /* first half by an ordinary commit: the final record then starts behind it and
         * does not fit before the log's end (asserted below) */
        for (size_t i = 0; i < seg_len / 2; i++)
            m[i] = pat(2, i);
        if (rvm_commit() != RVM_SUCCESS)
            return 19;
        t1 = engine.log->tail_off;
        rec1 = tracker.st.record_bytes;
    }
    fill(m, 2);
    if (copy)
        pthread_mutex_lock(&engine.log->status_mu);
    if (track_commit_final() != RVM_SUCCESS)
        return 20;
    /* the wrapping record is zero-copy if the daemon emptied the log in time, else it is
     * copied first (it must not wait for space with the threads parked): either is right */
    if (!wrap && tracker.zero_copy_commits != (copy ? 0u : 1u))
        return 22;
    if (wrap && engine.log->tail_off == t1 + (tracker.st.record_bytes - rec1))
        return 23; /* the record did not have to go back to the area's start */
    kill(getpid(), SIGKILL);
    return 21;
}

Test(track_stream, final_commit_recovered_after_kill)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    /* a roomy log; a 3.5 MiB one, where the final record (~1.8 MiB at scale 1) follows
     * an ordinary one (~1.8 MiB) and must wrap or wait for truncation; the roomy log with
     * the copying path */
    size_t logs[3] = {(size_t)4 * SEG_MB << 20, (size_t)7 << 19, (size_t)4 * SEG_MB << 20};
    for (int k = 0; k < 3; k++) {
        files(logs[k]);
        in_child(phase1, 0, 0, "phase 1");
        in_child(phase2_kill, k == 2 ? 1 : k == 1 ? 2 : 0, 1, "final commit");
        in_child(recover_run, 0, 0, "recovery");
        check(2);
        rmfiles();
    }
}

static int fail_after; /* pwrite calls of the log to let through, then EIO */
static int log_fd = -1;

/* failing_pwrite -- sysio.pwrite that fails the log's writes after fail_after of them */
static ssize_t failing_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fd == log_fd && fail_after-- <= 0) {
        errno = EIO;
        return -1;
    }
    return sysio_default.pwrite(fd, buf, n, off);
}

/* phase2_fail -- a final commit whose record write fails after `after` 1 MiB pieces */
static int phase2_fail(int after)
{
    rvm_region_t rg;
    int e = start(&rg);
    if (e)
        return 10 + e;
    fill(rg.vmaddr, 2);
    log_fd = engine.log->fd;
    fail_after = after;
    sysio.pwrite = failing_pwrite;
    rvm_return_t rc = track_commit_final();
    sysio = sysio_default;
    if (rc != RVM_EIO) {
        fprintf(stderr, "final commit with a failing log write: %s (%s)\n", rvm_return(rc),
                rvm_errmsg);
        return 20;
    }
    if (rvm_commit() == RVM_SUCCESS) /* sticky: nothing may follow a hole */
        return 21;
    return 0;
}

Test(track_stream, failed_record_keeps_previous_commit)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    /* the record is ~3.7 MiB at scale 1: pieces 0-3, then the header's rewrite with the
     * CRC (write 4): fail the first piece, one midway, and the header */
    int afters[3] = {0, 2, 4};
    for (int k = 0; k < 3; k++) {
        files((size_t)4 * SEG_MB << 20);
        in_child(phase1, 0, 0, "phase 1");
        in_child(phase2_fail, afters[k], 0, "failing final commit");
        in_child(recover_run, 0, 0, "recovery");
        check(1);
        rmfiles();
    }
}
