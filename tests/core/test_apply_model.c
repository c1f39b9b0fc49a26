/* SPDX-License-Identifier: MIT */
/*
 * test_apply_model.c -- the apply pass (recovery and truncation write each touched range once,
 * in segment offset order, newest record winning) against the simplest model there is:
 * applying every committed transaction's bytes in order to an array.
 *
 * Each round (seeded; LRVM_TEST_SCALE multiplies the rounds) runs three processes on a fresh
 * segment and a small log:
 *   1. a writer commits random transactions -- many ranges of 1 to 3000 bytes, half of them in
 *      a small hot area so that records overlap one another, some spanning the others -- with
 *      an rvm_truncate every few transactions (so passes run over partly overlapping data and
 *      the log wraps), and reports each acknowledged commit on a pipe. In some rounds it is
 *      killed in the middle of one of its truncations: after a random number of segment
 *      writes, the next one is cut in half and the process SIGKILLs itself (through the sysio
 *      seam), as a crash in the middle of applying would leave the page cache;
 *   2. a recovering process, killed the same way in the middle of recovery in some rounds;
 *   3. a checker: recovery, then the segment file must hold exactly the model's bytes for the
 *      commits the writer saw acknowledged; then rvm_truncate, and the same again.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <rvm/rvm.h>

#include "sysio.h"

#define SEG_LEN (512u << 10)
#define HOT_LEN (8u << 10)
#define LOG_LEN (1u << 20)
#define TXNS 120
#define TRUNC_EVERY 17

static char dir[64], logp[128], segp[128];
static int trunc_every = TRUNC_EVERY;

/* --- the transactions and the model ------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct wrange {
    uint32_t off, len;
    unsigned char val;
};

/* txn_ranges -- transaction t of the round with this seed: its ranges (at most 40) */
static int txn_ranges(uint64_t seed, int t, struct wrange *r)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)t * 0xBF58476D1CE4E5B9ull + 1;
    int n = 1 + (int)(rnd(&s) % 40);
    for (int i = 0; i < n; i++) {
        uint32_t len = 1 + (uint32_t)(rnd(&s) % (rnd(&s) % 8 == 0 ? 3000 : 300));
        uint32_t area = rnd(&s) % 2 ? HOT_LEN : SEG_LEN;
        r[i].off = (uint32_t)(rnd(&s) % (area - len + 1));
        r[i].len = len;
        r[i].val = (unsigned char)(1 + rnd(&s) % 255);
    }
    return n;
}

/* model -- the segment after the first ncommit transactions, applied in order */
static void model(uint64_t seed, int ncommit, unsigned char *m)
{
    memset(m, 0, SEG_LEN);
    struct wrange r[40];
    for (int t = 0; t < ncommit; t++) {
        int n = txn_ranges(seed, t, r);
        for (int i = 0; i < n; i++) /* later ranges of one transaction win, as later txns */
            for (uint32_t k = 0; k < r[i].len; k++)
                m[r[i].off + k] = (unsigned char)(r[i].val + k * 7);
    }
}

/* --- the crash seam ------------------------------------------------------------------ */

static ino_t seg_ino;
static long writes_left = -1; /* segment writes before the crash; -1: never */

static int is_segment(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_ino == seg_ino;
}

/* crash_pwrite -- the segment write that crosses the count is cut in half, then the process
 * dies as a crash would leave it (the page cache keeps what was written) */
static ssize_t crash_pwrite(int fd, const void *p, size_t n, off_t off)
{
    if (writes_left >= 0 && is_segment(fd) && writes_left-- == 0) {
        if (n > 1)
            (void)pwrite(fd, p, n / 2, off);
        raise(SIGKILL);
    }
    return pwrite(fd, p, n, off);
}

static void arm_crash(long after)
{
    struct stat st;
    if (stat(segp, &st) == 0)
        seg_ino = st.st_ino;
    writes_left = after;
    sysio.pwrite = crash_pwrite;
}

/* --- the three processes ------------------------------------------------------------- */

static int open_rvm(void)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    o.truncate = 0; /* truncation only where the test says */
    if (access(logp, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, LOG_LEN);
        if (rvm_create_log(&o, &len, 0600) != RVM_SUCCESS)
            return -1;
    }
    return RVM_INIT(&o) == RVM_SUCCESS ? 0 : -1;
}

/* writer -- commit TXNS transactions, truncating every TRUNC_EVERY; report each on fd */
static int writer(uint64_t seed, long crash_after, int fd)
{
    if (open_rvm() != 0)
        return 10;
    rvm_region_t rg;
    rvm_init_region(&rg);
    rg.data_dev = segp;
    rg.length = SEG_LEN;
    if (rvm_map(&rg, NULL) != RVM_SUCCESS)
        return 11;
    arm_crash(crash_after);
    struct wrange r[40];
    for (int t = 0; t < TXNS; t++) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        if (rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS)
            return 12;
        int n = txn_ranges(seed, t, r);
        for (int i = 0; i < n; i++) {
            char *p = rg.vmaddr + r[i].off;
            if (rvm_set_range(&tid, p, r[i].len) != RVM_SUCCESS)
                return 13;
            for (uint32_t k = 0; k < r[i].len; k++)
                p[k] = (char)(r[i].val + k * 7);
        }
        if (rvm_end_transaction(&tid, flush) != RVM_SUCCESS)
            return 14;
        char c = 1;
        if (write(fd, &c, 1) != 1)
            return 15;
        if (t % trunc_every == trunc_every - 1 && rvm_truncate() != RVM_SUCCESS)
            return 16;
    }
    return 0; /* no rvm_terminate: what the last truncation left stays in the log */
}

/* recoverer -- recovery alone, killed after crash_after segment writes if it gets that far */
static int recoverer(long crash_after)
{
    arm_crash(crash_after);
    return open_rvm() == 0 ? 0 : 20;
}

/* seg_equals -- the segment file holds exactly m? 0 yes, else the first differing offset + 1 */
static long seg_equals(const unsigned char *m)
{
    unsigned char *b = calloc(1, SEG_LEN);
    int fd = open(segp, O_RDONLY);
    ssize_t got = fd >= 0 ? pread(fd, b, SEG_LEN, 0) : -1;
    if (fd >= 0)
        close(fd);
    long bad = 0;
    if (got < 0)
        bad = -1;
    for (size_t i = 0; bad == 0 && i < SEG_LEN; i++)
        if (b[i] != m[i]) /* bytes past a short file read as the zeros calloc left */
            bad = (long)i + 1;
    free(b);
    return bad;
}

/* checker -- recovery, compare, truncation, compare */
static int checker(uint64_t seed, int ncommit)
{
    unsigned char *m = malloc(SEG_LEN);
    model(seed, ncommit, m);
    if (open_rvm() != 0)
        return 30;
    long bad = seg_equals(m);
    if (bad) {
        fprintf(stderr,
                "after recovery: segment differs from the model of %d commits at offset "
                "%ld\n",
                ncommit, bad - 1);
        return 31;
    }
    if (rvm_truncate() != RVM_SUCCESS)
        return 32;
    bad = seg_equals(m);
    if (bad) {
        fprintf(stderr,
                "after truncation: segment differs from the model of %d commits at "
                "offset %ld\n",
                ncommit, bad - 1);
        return 33;
    }
    free(m);
    return 0;
}

static int run(int (*fn)(uint64_t, long, int), uint64_t seed, long arg, int fd)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(seed, arg, fd));
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static int writer_fn(uint64_t seed, long crash, int fd)
{
    return writer(seed, crash, fd);
}

static int recoverer_fn(uint64_t seed, long crash, int fd)
{
    (void)seed;
    (void)fd;
    return recoverer(crash);
}

static int checker_fn(uint64_t seed, long ncommit, int fd)
{
    (void)fd;
    return checker(seed, (int)ncommit);
}

/* ok -- exited 0, or was killed by its own crash seam (SIGKILL) when allowed */
static int ok(int st, int may_die)
{
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
           (may_die && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void round_once(uint64_t seed)
{
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    unlink(logp);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, SEG_LEN) == 0);
    close(fd);
    uint64_t s = seed + 12345;
    long wcrash = rnd(&s) % 3 == 0 ? -1 : (long)(rnd(&s) % 400);
    long rcrash = rnd(&s) % 2 == 0 ? -1 : (long)(rnd(&s) % 60);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    int st = run(writer_fn, seed, wcrash, pfd[1]);
    close(pfd[1]);
    int ncommit = 0;
    char c;
    while (read(pfd[0], &c, 1) == 1)
        ncommit++;
    close(pfd[0]);
    cr_assert(ok(st, wcrash >= 0), "seed %llu: writer status %#x", (unsigned long long)seed, st);
    st = run(recoverer_fn, seed, rcrash, -1);
    cr_assert(ok(st, rcrash >= 0), "seed %llu: recovery status %#x", (unsigned long long)seed, st);
    st = run(checker_fn, seed, ncommit, -1);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "seed %llu (writer crash after %ld segment writes, recovery crash after %ld, %d "
              "commits): checker status %#x",
              (unsigned long long)seed, wcrash, rcrash, ncommit, st);
}

Test(apply_model, overlapping_records_equal_sequential_replay_with_crashes)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-apply-model-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    const char *sc = getenv("LRVM_TEST_SCALE");
    int rounds = 12 * (sc && atoi(sc) > 0 ? atoi(sc) : 1);
    for (int i = 0; i < rounds; i++)
        round_once(0xA11CE + (uint64_t)i);
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}

/* count_pwrite -- counts segment writes (the crash seam's inode test) */
static long seg_writes;
static ssize_t count_pwrite(int fd, const void *p, size_t n, off_t off)
{
    if (is_segment(fd))
        seg_writes++;
    return pwrite(fd, p, n, off);
}

/* recover_then_truncate -- recovery applies the records once; the truncation after it moves
 * the head without writing them again. 0, or what went wrong */
static int recover_then_truncate(uint64_t seed, long ncommit, int fd)
{
    (void)fd;
    unsigned char *m = malloc(SEG_LEN);
    model(seed, (int)ncommit, m);
    struct stat st;
    if (stat(segp, &st) != 0)
        return 40;
    seg_ino = st.st_ino;
    sysio.pwrite = count_pwrite;
    if (open_rvm() != 0)
        return 41;
    if (seg_writes == 0)
        return 42; /* recovery must have applied something */
    seg_writes = 0;
    if (rvm_truncate() != RVM_SUCCESS)
        return 43;
    if (seg_writes != 0) {
        fprintf(stderr, "truncation after recovery wrote the segment %ld times\n", seg_writes);
        return 44;
    }
    return seg_equals(m) == 0 ? 0 : 45;
}

/* recover_commit_truncate -- recovery, then one more commit, then a truncation: the step that
 * takes the recovered records (without applying them) must not mistake the newer record
 * after them for a damaged one, and the next step applies that record */
static int recover_commit_truncate(uint64_t seed, long ncommit, int fd)
{
    (void)fd;
    if (open_rvm() != 0)
        return 50;
    rvm_region_t rg;
    rvm_init_region(&rg);
    rg.data_dev = segp;
    rg.length = SEG_LEN;
    if (rvm_map(&rg, NULL) != RVM_SUCCESS)
        return 51;
    struct wrange r[40];
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    if (rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS)
        return 52;
    int n = txn_ranges(seed, (int)ncommit, r);
    for (int i = 0; i < n; i++) {
        char *p = rg.vmaddr + r[i].off;
        if (rvm_set_range(&tid, p, r[i].len) != RVM_SUCCESS)
            return 53;
        for (uint32_t k = 0; k < r[i].len; k++)
            p[k] = (char)(r[i].val + k * 7);
    }
    if (rvm_end_transaction(&tid, flush) != RVM_SUCCESS)
        return 54;
    rvm_return_t rc = rvm_truncate();
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "truncation after recovery and a commit: %s: %s\n", rvm_return(rc),
                rvm_errmsg);
        return 55;
    }
    unsigned char *m = malloc(SEG_LEN);
    model(seed, (int)ncommit + 1, m);
    return seg_equals(m) == 0 ? 0 : 56;
}

Test(apply_model, truncation_after_recovery_does_not_apply_again)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-apply-once-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, SEG_LEN) == 0);
    close(fd);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    trunc_every = TXNS + 1; /* the writer never truncates: all stays in the log */
    int st = run(writer_fn, 7, -1, pfd[1]);
    trunc_every = TRUNC_EVERY;
    close(pfd[1]);
    close(pfd[0]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status %#x", st);
    st = run(recover_then_truncate, 7, TXNS, -1);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    unlink(logp);
    fd = open(segp, O_RDWR | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, SEG_LEN) == 0);
    close(fd);
    cr_assert_eq(pipe(pfd), 0);
    trunc_every = TXNS + 1;
    st = run(writer_fn, 8, -1, pfd[1]);
    trunc_every = TRUNC_EVERY;
    close(pfd[1]);
    close(pfd[0]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status %#x", st);
    st = run(recover_commit_truncate, 8, TXNS, -1);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}
