/* SPDX-License-Identifier: MIT */
/*
 * test_smoke.c -- the core engineer's smoke test: commit, crash, recover; a torn tail
 * is dropped; a failed fdatasync is sticky and loses nothing acknowledged; the log
 * wraps many times under incremental truncation. (The full suite is test_*.c by the
 * test engineer.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>

#include "log_format.h"
#include "sysio.h"

static char dir[256], logp[300], segp[300];

/* setup -- a fresh directory with a 64 KiB segment */
static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-smoke-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, 65536) == 0);
    close(fd);
}

/* teardown -- remove the directory */
static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* start -- initialize with the log (created if absent) and map the whole segment */
static long *start(uint64_t log_len, long truncate, long flags, rvm_region_t *rg)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    o.truncate = truncate;
    o.flags = flags;
    if (access(logp, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, log_len);
        cr_assert_eq(rvm_create_log(&o, &len, 0600), RVM_SUCCESS, "%s", rvm_errmsg);
    }
    cr_assert_eq(RVM_INIT(&o), RVM_SUCCESS, "%s", rvm_errmsg);
    rvm_init_region(rg);
    rg->data_dev = segp;
    cr_assert_eq(rvm_map(rg, NULL), RVM_SUCCESS, "%s", rvm_errmsg);
    cr_assert_eq(rg->length, 65536);
    return (long *)rg->vmaddr;
}

/* bump -- one transaction adding 1 to counters [0, n) */
static rvm_return_t bump(long *c, int n, rvm_mode_t mode)
{
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_return_t rc = rvm_begin_transaction(&t, restore);
    for (int i = 0; i < n && rc == RVM_SUCCESS; i++) {
        rc = rvm_set_range(&t, &c[i * 7], sizeof(long));
        c[i * 7]++;
    }
    if (rc == RVM_SUCCESS)
        rc = rvm_end_transaction(&t, mode);
    if (rc != RVM_SUCCESS)
        rvm_abort_transaction(&t);
    return rc;
}

/* child -- run fn in a child process that exits without terminating (a crash) */
static void child(void (*fn)(void))
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        fn();
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(p, &st, 0), p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
}

static void run_commits(void)
{
    rvm_region_t rg;
    long *c = start(1 << 20, 0, RVM_ALL_OPTIMIZATIONS, &rg);
    for (int k = 0; k < 100; k++)
        if (bump(c, 8, k % 2 ? flush : no_flush) != RVM_SUCCESS)
            _exit(1);
    /* one more no_flush commit that is never flushed: lost whole, from the end */
    if (bump(c, 8, no_flush) != RVM_SUCCESS)
        _exit(1);
}

Test(smoke, crash_then_recover, .init = setup, .fini = teardown)
{
    child(run_commits);
    rvm_region_t rg;
    long *c = start(1 << 20, 0, 0, &rg);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(c[i * 7], 100, "counter %d = %ld after recovery", i, c[i * 7]);
}

static void run_two_flush(void)
{
    rvm_region_t rg;
    long *c = start(1 << 20, 0, 0, &rg);
    if (bump(c, 8, flush) || bump(c, 8, flush))
        _exit(1);
}

Test(smoke, torn_tail_dropped, .init = setup, .fini = teardown)
{
    child(run_two_flush);
    /* the second record starts where the first ends: corrupt every byte of it in turn */
    int fd = open(logp, O_RDWR);
    struct log_rec_hdr h1, h2;
    struct log_status st;
    cr_assert_eq(pread(fd, &st, sizeof(st), 0), (ssize_t)sizeof(st));
    /* the newer status slot names the head; it is slot 1 after create + recovery */
    struct log_status st1;
    cr_assert_eq(pread(fd, &st1, sizeof(st1), LOG_SLOT_SIZE), (ssize_t)sizeof(st1));
    if (st1.magic == LOG_STATUS_MAGIC && st1.generation > st.generation)
        st = st1;
    uint64_t base = LOG_HDR_SIZE + st.head_off;
    cr_assert_eq(pread(fd, &h1, sizeof(h1), base), (ssize_t)sizeof(h1));
    cr_assert_eq(pread(fd, &h2, sizeof(h2), base + h1.len), (ssize_t)sizeof(h2));
    cr_assert_eq(h2.seq, h1.seq + 1);
    char *orig = malloc(h2.len);
    cr_assert_eq(pread(fd, orig, h2.len, base + h1.len), (ssize_t)h2.len);
    char *copy = malloc(LOG_HDR_SIZE + st.area_len);
    cr_assert_eq(pread(fd, copy, LOG_HDR_SIZE + st.area_len, 0),
                 (ssize_t)(LOG_HDR_SIZE + st.area_len));
    char *segcopy = malloc(65536);
    int sfd = open(segp, O_RDWR);
    cr_assert_eq(pread(sfd, segcopy, 65536, 0), 65536);
    for (uint32_t b = 0; b < h2.len; b += (b < 64 ? 1 : 13)) {
        /* restore pristine log and segment, flip one byte of record 2 */
        cr_assert_eq(pwrite(fd, copy, LOG_HDR_SIZE + st.area_len, 0),
                     (ssize_t)(LOG_HDR_SIZE + st.area_len));
        cr_assert_eq(pwrite(sfd, segcopy, 65536, 0), 65536);
        char x = orig[b] ^ 0x5a;
        cr_assert_eq(pwrite(fd, &x, 1, base + h1.len + b), 1);
        pid_t p = fork();
        if (p == 0) {
            rvm_region_t rg;
            long *c = start(0, 0, 0, &rg);
            _exit(c[0] == 1 && c[49] == 1 ? 0 : 3);
        }
        int ws;
        waitpid(p, &ws, 0);
        cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
                  "byte %u of the torn record: "
                  "recovery did not yield the state after record 1 (status %d)",
                  b, ws);
    }
    close(sfd);
    close(fd);
    free(orig);
    free(copy);
    free(segcopy);
}

static int fail_sync(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

static void run_sticky(void)
{
    rvm_region_t rg;
    long *c = start(1 << 20, 0, 0, &rg);
    for (int k = 0; k < 5; k++)
        if (bump(c, 8, flush))
            _exit(1);
    sysio.fdatasync = fail_sync;
    if (bump(c, 8, flush) != RVM_EIO)
        _exit(2);
    sysio = sysio_default;
    if (bump(c, 8, flush) != RVM_EIO) /* sticky */
        _exit(3);
    if (strstr(rvm_errmsg, logp) == NULL)
        _exit(4);
}

Test(smoke, failed_sync_is_sticky, .init = setup, .fini = teardown)
{
    child(run_sticky);
    rvm_region_t rg;
    long *c = start(0, 0, 0, &rg);
    /* 5 acknowledged commits; the 6th was not acknowledged: either outcome is legal */
    cr_assert(c[0] == 5 || c[0] == 6, "c[0] = %ld", c[0]);
    for (int i = 1; i < 8; i++)
        cr_assert_eq(c[i * 7], c[0]);
}

static void run_wrap(void)
{
    rvm_region_t rg;
    long *c = start(64 * 1024, 30, 0, &rg);
    long n = 3000 * (getenv("LRVM_TEST_SCALE") ? atol(getenv("LRVM_TEST_SCALE")) : 1);
    for (long k = 0; k < n; k++)
        if (bump(c, 40, k % 3 ? no_flush : flush))
            _exit(1);
    if (rvm_flush())
        _exit(2);
    rvm_statistics_t s;
    rvm_init_statistics(&s);
    if (RVM_STATISTICS(&s) || s.tot_async_truncation + s.tot_sync_truncation == 0)
        _exit(3);
    FILE *f = fopen("/dev/null", "w");
    rvm_print_statistics(&s, f);
    fclose(f);
    c[1000] = n;
}

Test(smoke, wraps_with_incremental_truncation, .init = setup, .fini = teardown, .timeout = 120)
{
    child(run_wrap);
    rvm_region_t rg;
    long *c = start(0, 0, 0, &rg);
    long n = 3000 * (getenv("LRVM_TEST_SCALE") ? atol(getenv("LRVM_TEST_SCALE")) : 1);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(c[i * 7], n, "counter %d = %ld, want %ld", i, c[i * 7], n);
}

Test(smoke, layouts_and_names)
{
    cr_assert_eq(sizeof(rvm_tid_t), 40);
    cr_assert_eq(sizeof(rvm_options_t), 120);
    cr_assert_eq(sizeof(rvm_region_t), 72);
    cr_assert_str_eq(rvm_return(RVM_EIO), "RVM_EIO");
    cr_assert_str_eq(rvm_return(203), "RVM_EPLACEHOLDER");
    cr_assert_str_eq(rvm_return(RVM_EVM_OVERLAP), "RVM_EVM_OVERLAP");
    cr_assert_str_eq(rvm_mode(no_flush), "no_flush");
    cr_assert_eq(rvm_initialize("bogus", NULL), RVM_EVERSION_SKEW);
}

static void run_big(void)
{
    rvm_region_t rg;
    long *c = start(64 * 1024, 0, 0, &rg);
    char *b = (char *)c;
    for (int k = 1; k <= 40; k++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        if (rvm_begin_transaction(&t, no_restore) || rvm_set_range(&t, b, 30000))
            _exit(1);
        memset(b, 'a' + k % 26, 30000);
        if (rvm_end_transaction(&t, flush))
            _exit(2);
        if (k % 3 == 0 && rvm_truncate())
            _exit(3);
    }
    /* a record larger than the whole log that may not grow is refused, and the tid stays
     * usable */
    rvm_log_max_len = 64 * 1024;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, no_restore) || rvm_set_range(&t, b, 65536))
        _exit(4);
    if (rvm_end_transaction(&t, flush) != RVM_ETOO_BIG)
        _exit(5);
    if (rvm_abort_transaction(&t))
        _exit(6);
}

Test(smoke, big_records_in_a_small_log, .init = setup, .fini = teardown)
{
    child(run_big);
    rvm_region_t rg;
    char *b = (char *)start(0, 0, 0, &rg);
    for (int i = 0; i < 30000; i++)
        cr_assert_eq(b[i], 'a' + 40 % 26, "byte %d", i);
}

/* ---- a new log's first opening reads its status, not its whole empty area ------------- */

static uint64_t bytes_read;
static ssize_t counting_pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t r = sysio_default.pread(fd, buf, n, off);
    if (r > 0)
        bytes_read += (uint64_t)r;
    return r;
}

static void run_first_open(void)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    o.truncate = 0;
    rvm_offset_t len = RVM_MK_OFFSET(0, 64u << 20);
    if (rvm_create_log(&o, &len, 0600) != RVM_SUCCESS)
        _exit(2);
    sysio.pread = counting_pread;
    if (RVM_INIT(&o) != RVM_SUCCESS)
        _exit(3);
    sysio = sysio_default;
    /* the status area and a few headers; a scan of the free space would read 64 MiB */
    _exit(bytes_read < (1u << 20) ? 0 : 4);
}

Test(smoke, first_open_of_a_new_log_does_not_scan_it, .init = setup, .fini = teardown)
{
    child(run_first_open);
}
