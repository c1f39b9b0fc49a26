/* SPDX-License-Identifier: MIT */
/*
 * test_damaged_middle.c -- a damaged record in the middle of the log is an error, never the
 * end of the log; `rvmutl verify` tells it from a torn tail; `rvmutl salvage` recovers the
 * valid prefix and says what it dropped.
 *
 * A child makes N flush commits (one record each, each durable before the next is
 * formatted) and leaves the log as a crash would. For every record position i and two kinds
 * of damage (a payload byte, a header byte) we build the damaged log and check, each in a
 * fresh process:
 *   - i < N: rvm_initialize fails with RVM_ELOG naming record i; verify reports a DAMAGED
 *     record; salvage succeeds, reports records i..N dropped, and the segment file then
 *     holds exactly commits 1..i-1.
 *   - i == N: nothing later exists, so it is a torn tail: recovery succeeds with commits
 *     1..N-1 and verify calls it a torn tail.
 * Before the format carried end markers and durable frontiers, recovery stopped silently at
 * record i and the later acknowledged commits were lost.
 */
#include <criterion/criterion.h>

#include "core_test.h"
#include "rvm_int.h"

#define SEG_PAGES 4
#define N_TXNS 6

static tpaths_t T;
static size_t SEG_LEN;
static char post_path[320];
static unsigned char *image; /* shared with the recovery child */
static rvm_return_t *rec_rc; /* shared: rvm_initialize's code in the child */
static char *rec_msg;        /* shared: its rvm_errmsg */

static void setup(void)
{
    tpaths_make(&T, "dmg");
    SEG_LEN = SEG_PAGES * 4096u;
    snprintf(post_path, sizeof post_path, "%s/log.post", T.dir);
    cr_assert_eq(file_make(T.seg, SEG_LEN, 0), 0);
    image = shared_alloc(SEG_LEN);
    rec_rc = shared_alloc(sizeof *rec_rc);
    rec_msg = shared_alloc(2048);
    cr_assert(image && rec_rc && rec_msg);
}

static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(damaged, .init = setup, .fini = teardown);

/* txn_apply -- commit j's stores (40..80 bytes at a few places) on img; t: tell RVM too */
static void txn_apply(int j, unsigned char *img, rvm_tid_t *t)
{
    for (int k = 0; k < 3; k++) {
        size_t len = 40 + 13 * (size_t)k;
        size_t off = ((size_t)j * 977 + (size_t)k * 1301) % (SEG_LEN - len);
        if (t && rvm_set_range(t, img + off, len) != RVM_SUCCESS)
            _exit(30 + k);
        for (size_t i = 0; i < len; i++)
            img[off + i] = (unsigned char)(j * 31 + k * 7 + i * 13 + 1);
    }
}

/* make_log -- N commits (flush up to last_flush, no_flush after it, then one rvm_flush), then
 * the log is copied as a crash leaves it; 0 or a distinct exit code */
static int make_log(int last_flush)
{
    if (rvmt_init_create(T.log, 1024 * 1024, 0, 0) != RVM_SUCCESS)
        return 10;
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 11;
    for (int j = 1; j <= N_TXNS; j++) {
        rvm_tid_t t;
        rvm_init_tid(&t);
        if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
            return 12;
        txn_apply(j, (unsigned char *)r.vmaddr, &t);
        if (rvm_end_transaction(&t, j <= last_flush ? flush : no_flush) != RVM_SUCCESS)
            return 13;
    }
    if (last_flush < N_TXNS && rvm_flush() != RVM_SUCCESS)
        return 14;
    size_t n;
    unsigned char *b = file_slurp(T.log, &n);
    return b && file_spit(post_path, b, n) == 0 ? 0 : 15;
}

/* child_make -- N flush commits */
static int child_make(void *arg)
{
    (void)arg;
    return make_log(N_TXNS);
}

/* child_recover -- fresh process: recovery, map, copy the image; a refusal is a result */
static int child_recover(void *arg)
{
    (void)arg;
    *rec_rc = rvmt_init(T.log, 0, 0);
    if (*rec_rc != RVM_SUCCESS) {
        snprintf(rec_msg, 2048, "%s", rvm_errmsg ? rvm_errmsg : "");
        return 0;
    }
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS || r.length != SEG_LEN)
        return 21;
    memcpy(image, r.vmaddr, SEG_LEN);
    return 0;
}

/* record_offsets -- file offset, length and seq of each of the N records of the log */
static void record_offsets(uint64_t *off, uint32_t *len, uint64_t *seq)
{
    int fd = open(post_path, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct log_status st;
    cr_assert_eq(log_status_read(fd, post_path, &st, NULL), RVM_SUCCESS);
    struct logrd rd = {.fd = fd,
                       .path = post_path,
                       .area_off = st.area_off,
                       .area_len = st.area_len,
                       .epochs = st.epochs,
                       .nepochs = st.nepochs,
                       .chunk = 64u << 10};
    uint64_t cur = st.head_off, s = st.head_seq;
    for (int i = 0; i < N_TXNS; i++) {
        const struct log_rec_hdr *h;
        const char *pl;
        uint64_t p = cur;
        cr_assert_eq(logrd_next(&rd, &p, s, &h, &pl), 1, "record %d of the log not found", i);
        off[i] = st.area_off + p;
        len[i] = h->len;
        seq[i] = s++;
        cur = p + h->len;
    }
    buf_free(&rd.b);
    close(fd);
}

/* rvmutl -- run `rvmutl CMD LOG`; its output (malloc'd) and exit status */
static char *rvmutl(const char *cmd, int *status)
{
    const char *bin = getenv("LRVM_TEST_RVMUTL");
    cr_assert_not_null(bin, "LRVM_TEST_RVMUTL is not set (run through meson test)");
    char line[1024];
    snprintf(line, sizeof line, "%s %s %s 2>&1", bin, cmd, T.log);
    FILE *p = popen(line, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += k;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

/* state_after -- the segment after commits 1..j */
static void state_after(int j, unsigned char *img)
{
    memset(img, 0, SEG_LEN);
    for (int i = 1; i <= j; i++)
        txn_apply(i, img, NULL);
}

/* one_case -- record i (0-based) damaged at file offset `at` */
static void one_case(const unsigned char *post, size_t log_len, const uint64_t *seq, int i,
                     uint64_t at, const char *what)
{
    char d[64], want[64];
    unsigned char *buf = malloc(log_len), *expect = malloc(SEG_LEN), *zero = calloc(1, SEG_LEN);
    memcpy(buf, post, log_len);
    buf[at] ^= 0x5a;
    cr_assert_eq(file_spit(T.log, buf, log_len), 0);
    cr_assert_eq(file_spit(T.seg, zero, SEG_LEN), 0);

    int vst;
    char *v = rvmutl("verify", &vst);
    cr_expect_eq(vst, 1, "%s in record %d: verify must report a problem:\n%s", what, i + 1, v);
    int st = proc_run(child_recover, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s in record %d: recovery child: %s", what,
              i + 1, proc_describe(st, d, sizeof d));
    if (i < N_TXNS - 1) {
        snprintf(want, sizeof want, "record %llu ", (unsigned long long)seq[i]);
        cr_expect(strstr(v, "DAMAGED RECORD") != NULL,
                  "%s in record %d: verify must call it a damaged record:\n%s", what, i + 1, v);
        cr_expect_eq(*rec_rc, RVM_ELOG,
                     "%s in record %d of %d: recovery must refuse the log "
                     "(got %s), not drop the later commits",
                     what, i + 1, N_TXNS, rvm_return(*rec_rc));
        cr_expect(strstr(rec_msg, want) != NULL && strstr(rec_msg, "damaged") != NULL,
                  "%s in record %d: the message must name the record: %s", what, i + 1, rec_msg);
        /* salvage: the prefix, and what was dropped */
        int sst;
        char *s = rvmutl("salvage", &sst);
        snprintf(want, sizeof want, "DROPPED records %llu..%llu", (unsigned long long)seq[i],
                 (unsigned long long)seq[N_TXNS - 1]);
        cr_expect_eq(sst, 0, "%s in record %d: salvage failed:\n%s", what, i + 1, s);
        cr_expect(strstr(s, want) != NULL, "%s in record %d: salvage must say '%s':\n%s", what,
                  i + 1, want, s);
        unsigned char *f = malloc(SEG_LEN);
        cr_assert_eq(file_read(T.seg, f, SEG_LEN, 0), 0);
        state_after(i, expect);
        cr_expect(memcmp(f, expect, SEG_LEN) == 0,
                  "%s in record %d: after salvage the "
                  "segment must hold exactly commits 1..%d",
                  what, i + 1, i);
        free(f);
        free(s);
        /* the salvaged log is consistent again */
        free(v);
        v = rvmutl("verify", &vst);
        cr_expect_eq(vst, 0, "%s in record %d: verify after salvage:\n%s", what, i + 1, v);
    } else {
        cr_expect(strstr(v, "TORN TAIL") != NULL, "damage in the last record is a torn tail:\n%s",
                  v);
        cr_expect_eq(*rec_rc, RVM_SUCCESS, "a torn tail is recovered: %s", rec_msg);
        state_after(N_TXNS - 1, expect);
        cr_expect(memcmp(image, expect, SEG_LEN) == 0,
                  "torn tail: state after commit %d "
                  "expected",
                  N_TXNS - 1);
    }
    free(v);
    free(buf);
    free(expect);
    free(zero);
}

Test(damaged, every_record_position)
{
    char d[64];
    int st = proc_run(child_make, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "making the log: %s",
              proc_describe(st, d, sizeof d));
    uint64_t off[N_TXNS], seq[N_TXNS];
    uint32_t len[N_TXNS];
    record_offsets(off, len, seq);
    size_t log_len;
    unsigned char *post = file_slurp(post_path, &log_len);
    cr_assert_not_null(post);
    for (int i = 0; i < N_TXNS; i++) {
        one_case(post, log_len, seq, i, off[i] + len[i] / 2 + 4, "a payload byte");
        one_case(post, log_len, seq, i, off[i] + 1, "a header byte (magic)");
    }
    free(post);
}

/* to_format2 -- rewrite a valid status slot of log bytes `log` as format 2 wrote it: no
 * identities, absolute paths; and remove the end marker (format 2 had none) */
static void to_format2(unsigned char *log, size_t slot, uint64_t marker_at)
{
    struct log_status st;
    memcpy(&st, log + slot, sizeof(st));
    if (st.magic != LOG_STATUS_MAGIC)
        return;
    cr_assert_eq(st.version, LOG_FORMAT_VERSION);
    unsigned char *d = log + slot + sizeof(st), out[4096];
    size_t in = 0, o = 0;
    for (uint32_t k = 0; k < st.nsegs; k++) {
        uint32_t id, plen;
        memcpy(&id, d + in, 4);
        memcpy(&plen, d + in + 4, 4);
        char path[600];
        const char *stored = (const char *)d + in + 8 + LOG_SEG_ID_LEN;
        snprintf(path, sizeof path, "%s%s%s", stored[0] == '/' ? "" : T.dir,
                 stored[0] == '/' ? "" : "/", stored);
        uint32_t nlen = (uint32_t)strlen(path) + 1;
        memcpy(out + o, &id, 4);
        memcpy(out + o + 4, &nlen, 4);
        memset(out + o + 8, 0, (nlen + 7u) & ~7u);
        memcpy(out + o + 8, path, nlen);
        o += 8 + ((nlen + 7u) & ~7u);
        in += 8 + LOG_SEG_ID_LEN + ((plen + 7u) & ~7u);
    }
    memset(d, 0, LOG_SLOT_SIZE - sizeof(st));
    memcpy(d, out, o);
    st.version = LOG_FORMAT_VERSION_V2;
    st.used = (uint32_t)(sizeof(st) + o);
    st.crc = 0;
    memcpy(log + slot, &st, sizeof(st));
    st.crc = crc32c(0, log + slot, st.used);
    memcpy(log + slot, &st, sizeof(st));
    memset(log + marker_at, 0, LOG_REC_HDR);
}

Test(damaged, format2_log_is_still_recovered)
{
    char d[64];
    int st = proc_run(child_make, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "making the log: %s",
              proc_describe(st, d, sizeof d));
    uint64_t off[N_TXNS], seq[N_TXNS];
    uint32_t len[N_TXNS];
    record_offsets(off, len, seq);
    size_t log_len;
    unsigned char *log = file_slurp(post_path, &log_len);
    cr_assert_not_null(log);
    to_format2(log, 0, off[N_TXNS - 1] + len[N_TXNS - 1]);
    to_format2(log, LOG_SLOT_SIZE, off[N_TXNS - 1] + len[N_TXNS - 1]);
    cr_assert_eq(file_spit(T.log, log, log_len), 0);
    int vst;
    char *v = rvmutl("status", &vst);
    cr_assert(strstr(v, "format 2") != NULL, "the rewritten log must read as format 2:\n%s", v);
    free(v);
    st = proc_run(child_recover, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery child: %s",
              proc_describe(st, d, sizeof d));
    cr_expect_eq(*rec_rc, RVM_SUCCESS, "a format 2 log must recover: %s", rec_msg);
    unsigned char *expect = malloc(SEG_LEN);
    state_after(N_TXNS, expect);
    cr_expect(memcmp(image, expect, SEG_LEN) == 0, "format 2 log: every commit recovered");
    /* opening it made it format 3, with the path stored relative to the log */
    v = rvmutl("verify", &vst);
    cr_expect(strstr(v, "format 3") != NULL && strstr(v, "stored relative to the log") != NULL,
              "after one open the log is format 3:\n%s", v);
    cr_expect_eq(vst, 0, "%s", v);
    free(v);
    free(expect);
    free(log);
}

/* child_make_group -- commits 1..2 flushed one by one, then 3..N as no_flush commits that
 * rvm_flush writes in ONE write: a crash before that write's fdatasync may keep any subset
 * of records 3..N, so none of them proves another acknowledged */
static int child_make_group(void *arg)
{
    (void)arg;
    return make_log(2);
}

Test(damaged, torn_group_write_is_a_tail_not_damage)
{
    char d[64];
    int st = proc_run(child_make_group, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "making the log: %s",
              proc_describe(st, d, sizeof d));
    uint64_t off[N_TXNS], seq[N_TXNS];
    uint32_t len[N_TXNS];
    record_offsets(off, len, seq);
    size_t log_len;
    unsigned char *post = file_slurp(post_path, &log_len), *expect = malloc(SEG_LEN);
    cr_assert_not_null(post);
    /* record 3 torn, 4..N of the same write intact: an unacknowledged group, dropped */
    unsigned char *buf = malloc(log_len), *zero = calloc(1, SEG_LEN);
    memcpy(buf, post, log_len);
    buf[off[2] + len[2] / 2] ^= 0x5a;
    cr_assert_eq(file_spit(T.log, buf, log_len), 0);
    cr_assert_eq(file_spit(T.seg, zero, SEG_LEN), 0);
    st = proc_run(child_recover, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery child: %s",
              proc_describe(st, d, sizeof d));
    cr_expect_eq(*rec_rc, RVM_SUCCESS, "a torn group write must not be called damage: %s", rec_msg);
    state_after(2, expect);
    cr_expect(memcmp(image, expect, SEG_LEN) == 0, "torn group: state after commit 2");
    /* record 2 damaged: record 3 was formatted after 2 was durable, which proves it */
    memcpy(buf, post, log_len);
    buf[off[1] + len[1] / 2] ^= 0x5a;
    cr_assert_eq(file_spit(T.log, buf, log_len), 0);
    cr_assert_eq(file_spit(T.seg, zero, SEG_LEN), 0);
    st = proc_run(child_recover, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery child: %s",
              proc_describe(st, d, sizeof d));
    cr_expect_eq(*rec_rc, RVM_ELOG, "record 2 was acknowledged: recovery must refuse, got %s",
                 rvm_return(*rec_rc));
    free(buf);
    free(zero);
    free(expect);
    free(post);
}
