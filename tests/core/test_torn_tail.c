/* SPDX-License-Identifier: MIT */
/*
 * test_torn_tail.c -- the last log record torn or corrupted at every byte: torn or stale
 * tails are detected and dropped.
 *
 * Format-agnostic: a child commits N-1 transactions and snapshots the log file (pre), then
 * commits transaction N and snapshots it again (post). The bytes that differ are what commit
 * N wrote. For every cut point b we build the log a crash could leave -- post's bytes before b,
 * and beyond b either pre's bytes (the write never reached them: a stale tail) or garbage --
 * and for every byte of the record a log with that byte flipped. Recovery in a fresh process
 * must succeed and yield exactly the state after N-1 (or after N when the record is intact),
 * never anything else, and the segment file must agree with the mapped image.
 *
 * Two shapes of transaction N: small (3 ranges, one sector's worth) and large (many pages,
 * one record spanning many blocks). Every byte offset is tried for the small record; for the
 * large one (~12 KiB) every offset within 64 bytes of each end and every (64/LRVM_TEST_SCALE)th
 * in between (LRVM_TEST_SCALE=64 tries all; each try is a fresh-process recovery, ~15 ms).
 */
#include <criterion/criterion.h>

#include "core_test.h"

#define SEG_PAGES 8
#define N_TXNS 6

static tpaths_t T;
static long PS;
static size_t SEG_LEN;
static char pre_path[320], post_path[320], base_path[320];
static unsigned char *image; /* shared with the recovery child */

/* setup -- fresh directory, zeroed segment. */
static void setup(void)
{
    tpaths_make(&T, "torn");
    PS = sysconf(_SC_PAGESIZE);
    SEG_LEN = SEG_PAGES * (size_t)PS;
    snprintf(pre_path, sizeof pre_path, "%s/log.pre", T.dir);
    snprintf(post_path, sizeof post_path, "%s/log.post", T.dir);
    snprintf(base_path, sizeof base_path, "%s/seg.base", T.dir);
    cr_assert_eq(file_make(T.seg, SEG_LEN, 0), 0);
    image = shared_alloc(SEG_LEN);
    cr_assert_not_null(image);
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

/* no Criterion timeout: sizes scale with LRVM_TEST_SCALE; meson test enforces the limit
 * (with --timeout-multiplier for large scales) */
TestSuite(torn, .init = setup, .fini = teardown);

/* txn_apply -- transaction j (1-based) of the workload on an image; big: N is large. */
static void txn_apply(int j, int big, unsigned char *img, rvm_tid_t *t)
{
    /* t != NULL: also tell RVM (set_range before each store) */
    int nr = 3;
    for (int k = 0; k < nr; k++) {
        size_t len = (big && j == N_TXNS) ? (size_t)PS + 123 : 40 + 17 * (size_t)k;
        size_t off = ((size_t)j * 977 + (size_t)k * 1301) % (SEG_LEN - len);
        if (big && j == N_TXNS)
            off = (size_t)k * ((size_t)PS + 200) % (SEG_LEN - len);
        if (t && rvm_set_range(t, img + off, len) != RVM_SUCCESS)
            _exit(30 + k);
        for (size_t i = 0; i < len; i++)
            img[off + i] = (unsigned char)(j * 31 + k * 7 + i * 13 + 1);
    }
}

/* copy_file -- byte copy of a file; 0 or errno. */
static int copy_file(const char *from, const char *to)
{
    size_t len;
    unsigned char *b = file_slurp(from, &len);
    if (!b)
        return EIO;
    int e = file_spit(to, b, len);
    free(b);
    return e;
}

/* child_make -- commit N-1 txns, snapshot log+segment, commit txn N, snapshot log, _exit. */
static int child_make(void *arg)
{
    int big = *(int *)arg;
    if (rvmt_init_create(T.log, 1024 * 1024, 0, 0) != RVM_SUCCESS)
        return 10;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 11;
    for (int j = 1; j <= N_TXNS; j++) {
        if (j == N_TXNS) {
            if (copy_file(T.log, pre_path) || copy_file(T.seg, base_path))
                return 12;
        }
        rvm_tid_t t;
        rvm_init_tid(&t);
        if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
            return 13;
        txn_apply(j, big, (unsigned char *)r.vmaddr, &t);
        if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
            return 14;
    }
    if (copy_file(T.log, post_path))
        return 15;
    return 0; /* no terminate: the log is left as a crash would leave it */
}

/* child_recover -- fresh process: recovery, map, copy image, terminate. */
static int child_recover(void *arg)
{
    (void)arg;
    rvm_return_t rc = rvmt_init(T.log, 0, 0);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "torn tail: rvm_initialize: %s\n", rvm_return(rc));
        return 20;
    }
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS || r.length != SEG_LEN)
        return 21;
    memcpy(image, r.vmaddr, SEG_LEN);
    return rvm_terminate() == RVM_SUCCESS ? 0 : 22;
}

typedef struct {
    unsigned char *pre, *post, *base, *s_prev, *s_last;
    size_t log_len;
    long n_prev, n_last, n_fail;
} torn_t;

/*
 * try_log -- recover from log bytes `log`; 1 = state N, 0 = state N-1, fails the test on
 * anything else (error, crash, or a third state). `what` describes the case for messages.
 */
static int try_log(torn_t *tt, const unsigned char *log, const char *what, long at)
{
    char d[64];
    cr_assert_eq(file_spit(T.log, log, tt->log_len), 0);
    cr_assert_eq(file_spit(T.seg, tt->base, SEG_LEN), 0);
    int st = proc_run(child_recover, NULL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        tt->n_fail++;
        cr_expect_fail("%s at byte %ld: recovery failed: %s", what, at,
                       proc_describe(st, d, sizeof d));
        return -1;
    }
    int res;
    if (memcmp(image, tt->s_last, SEG_LEN) == 0) {
        res = 1;
        tt->n_last++;
    } else if (memcmp(image, tt->s_prev, SEG_LEN) == 0) {
        res = 0;
        tt->n_prev++;
    } else {
        size_t i = 0;
        while (i < SEG_LEN && image[i] == tt->s_prev[i])
            i++;
        tt->n_fail++;
        cr_expect_fail("%s at byte %ld: recovered state is neither txn N-1 nor N (first "
                       "difference from N-1 at segment byte %zu)",
                       what, at, i);
        return -1;
    }
    unsigned char *f = malloc(SEG_LEN);
    cr_assert_eq(file_read(T.seg, f, SEG_LEN, 0), 0);
    if (memcmp(f, image, SEG_LEN) != 0) {
        tt->n_fail++;
        cr_expect_fail("%s at byte %ld: segment file differs from the mapped image", what, at);
    }
    free(f);
    return res;
}

/* torn_run -- the whole experiment for one shape of the last transaction. */
static void torn_run(int big)
{
    char d[64];
    int st = proc_run(child_make, &big);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "making the logs: %s",
              proc_describe(st, d, sizeof d));
    torn_t tt = {0};
    size_t pre_len = 0, base_len = 0;
    tt.pre = file_slurp(pre_path, &pre_len);
    tt.post = file_slurp(post_path, &tt.log_len);
    tt.base = file_slurp(base_path, &base_len);
    cr_assert(tt.pre && tt.post && tt.base);
    cr_assert_eq(pre_len, tt.log_len, "the log file changed size during a commit");
    cr_assert_eq(base_len, SEG_LEN);
    tt.s_prev = calloc(1, SEG_LEN);
    tt.s_last = calloc(1, SEG_LEN);
    for (int j = 1; j < N_TXNS; j++)
        txn_apply(j, big, tt.s_prev, NULL);
    memcpy(tt.s_last, tt.s_prev, SEG_LEN);
    txn_apply(N_TXNS, big, tt.s_last, NULL);

    /* the bytes commit N wrote */
    size_t lo = 0, hi = tt.log_len, ndiff = 0, nclusters = 0;
    for (size_t i = 0; i < tt.log_len; i++)
        if (tt.pre[i] != tt.post[i]) {
            if (ndiff == 0)
                lo = i;
            if (ndiff == 0 || tt.pre[i - 1] == tt.post[i - 1])
                nclusters++;
            hi = i + 1;
            ndiff++;
        }
    cr_assert_gt(ndiff, 0, "commit N changed nothing in the log file");
    cr_log_info("torn tail (%s): commit N wrote %zu differing bytes in [%zu, %zu), %zu "
                "clusters",
                big ? "large" : "small", ndiff, lo, hi, nclusters);

    /* sanity: the two snapshots recover to N-1 and N */
    cr_assert_eq(try_log(&tt, tt.pre, "unmodified pre-commit log", 0), 0);
    cr_assert_eq(try_log(&tt, tt.post, "unmodified post-commit log", 0), 1);

    long step = big ? 64 / (test_scale() < 64 ? test_scale() : 64) : 1;
    unsigned char *buf = malloc(tt.log_len);
    trng_t g = {0x7013ULL + (uint64_t)big};
    long tried = 0, n_early = 0;
    for (size_t b = lo; b <= hi; b++) {
        int edge = b < lo + 64 || b + 64 > hi;
        if (!edge && (long)(b - lo) % step != 0)
            continue;
        /* cut at b, stale tail: the write stopped before byte b */
        memcpy(buf, tt.post, b);
        memcpy(buf + b, tt.pre + b, tt.log_len - b);
        if (try_log(&tt, buf, "cut (stale tail)", (long)b) == 1 && b < hi)
            n_early++; /* N although bytes are missing: only right if they were padding */
        /* cut at b, garbage tail up to the end of the record (a torn sector) */
        if (b < hi) {
            memcpy(buf, tt.post, tt.log_len);
            for (size_t i = b; i < hi; i++)
                buf[i] = (unsigned char)trng_next(&g);
            try_log(&tt, buf, "cut (garbage tail)", (long)b);
            /* one corrupted byte */
            memcpy(buf, tt.post, tt.log_len);
            buf[b] ^= (unsigned char)(1u << (b % 8)) | 0x80u;
            try_log(&tt, buf, "byte corrupted", (long)b);
        }
        tried++;
        if (tt.n_fail > 20)
            break;
    }
    cr_log_info("torn tail (%s): %ld cut points, %ld recoveries -> N-1, %ld -> N, %ld wrong",
                big ? "large" : "small", tried, tt.n_prev, tt.n_last, tt.n_fail);
    fprintf(stderr,
            "torn tail (%s): record %zu bytes, %ld cut points, %ld -> N-1, %ld -> N "
            "(%ld stale-tail cuts short of the end), %ld wrong\n",
            big ? "large" : "small", hi - lo, tried, tt.n_prev, tt.n_last, n_early, tt.n_fail);
    cr_expect_eq(tt.n_fail, 0);
    free(buf);
    free(tt.pre);
    free(tt.post);
    free(tt.base);
    free(tt.s_prev);
    free(tt.s_last);
}

Test(torn, small_last_record_every_byte)
{
    torn_run(0);
}

Test(torn, large_last_record)
{
    torn_run(1);
}

/* child_make_series -- commit N_TXNS transactions, snapshotting the log after each (log.J). */
static int child_make_series(void *arg)
{
    (void)arg;
    if (rvmt_init_create(T.log, 1024 * 1024, 0, 0) != RVM_SUCCESS)
        return 10;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 11;
    if (copy_file(T.seg, base_path))
        return 12;
    for (int j = 1; j <= N_TXNS; j++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
            return 13;
        txn_apply(j, 0, (unsigned char *)r.vmaddr, &t);
        if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
            return 14;
        char p[340];
        snprintf(p, sizeof p, "%s/log.%d", T.dir, j);
        if (copy_file(T.log, p))
            return 15;
    }
    return 0;
}

static rvm_return_t *rec_rc; /* shared: rvm_initialize's code in child_recover_rc */

/* child_recover_rc -- like child_recover, but a refused recovery is a result, not a failure */
static int child_recover_rc(void *arg)
{
    (void)arg;
    *rec_rc = rvmt_init(T.log, 0, 0);
    if (*rec_rc != RVM_SUCCESS) {
        fprintf(stderr, "corrupt middle record: rvm_initialize: %s: %s\n", rvm_return(*rec_rc),
                rvm_errmsg ? rvm_errmsg : "(no rvm_errmsg)");
        return 0;
    }
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS || r.length != SEG_LEN)
        return 21;
    memcpy(image, r.vmaddr, SEG_LEN);
    return 0;
}

Test(torn, corrupt_middle_record)
{
    /* a damaged record followed by valid ones, each made durable by its own fdatasync before
     * the next was formatted: their durable frontiers prove record 3 was acknowledged, so
     * recovery must refuse the log (RVM_ELOG) rather than end it at record 3 and drop
     * commits 3..N (log_format.h, END MARKER AND DAMAGE; test_damaged_middle.c tries every
     * position). Never a crash, never garbage. */
    char d[64];
    rec_rc = shared_alloc(sizeof *rec_rc);
    int st = proc_run(child_make_series, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "making the logs: %s",
              proc_describe(st, d, sizeof d));
    char p2[340], p3[340], pn[340];
    snprintf(p2, sizeof p2, "%s/log.2", T.dir);
    snprintf(p3, sizeof p3, "%s/log.3", T.dir);
    snprintf(pn, sizeof pn, "%s/log.%d", T.dir, N_TXNS);
    size_t l2 = 0, l3 = 0, ln = 0, bl = 0;
    unsigned char *a = file_slurp(p2, &l2), *b = file_slurp(p3, &l3), *n = file_slurp(pn, &ln);
    unsigned char *base = file_slurp(base_path, &bl);
    cr_assert(a && b && n && base && l2 == l3 && l3 == ln);
    size_t lo = 0, hi = 0;
    for (size_t i = 0; i < l3; i++)
        if (a[i] != b[i]) {
            if (!hi)
                lo = i;
            hi = i + 1;
        }
    cr_assert_gt(hi, lo, "commit 3 wrote nothing to the log");
    unsigned char *s_last = calloc(1, SEG_LEN), *s_two = calloc(1, SEG_LEN);
    for (int j = 1; j <= N_TXNS; j++)
        txn_apply(j, 0, s_last, NULL);
    for (int j = 1; j <= 2; j++)
        txn_apply(j, 0, s_two, NULL);
    /* flip a byte in the payload of record 3 (the middle of what commit 3 wrote) */
    n[lo + (hi - lo) / 2] ^= 0x5a;
    cr_assert_eq(file_spit(T.log, n, ln), 0);
    cr_assert_eq(file_spit(T.seg, base, SEG_LEN), 0);
    *rec_rc = RVM_SUCCESS;
    st = proc_run(child_recover_rc, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery crashed: %s",
              proc_describe(st, d, sizeof d));
    cr_expect_eq(*rec_rc, RVM_ELOG,
                 "record 3 of %d damaged: recovery must refuse the log, "
                 "got %s",
                 N_TXNS, rvm_return(*rec_rc));
    if (*rec_rc == RVM_SUCCESS) {
        int two = memcmp(image, s_two, SEG_LEN) == 0;
        int all = memcmp(image, s_last, SEG_LEN) == 0;
        cr_expect(two || all,
                  "record 3 damaged: recovered state is neither the state after "
                  "commit 2 nor after commit %d (garbage)",
                  N_TXNS);
    }
    free(a);
    free(b);
    free(n);
    free(base);
    free(s_last);
    free(s_two);
}
