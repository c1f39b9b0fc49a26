/* SPDX-License-Identifier: MIT */
/*
 * test_fault_inject.c -- I/O faults through the sysio seam (core/base/sysio.h) during commit,
 * rvm_flush, truncation and recovery: EIO and ENOSPC from pwrite, a short pwrite (alone, and
 * followed by ENOSPC), EIO and ENOSPC from fdatasync/fsync.
 *
 * What must hold (bad input must never lose what was committed):
 *  - the call under the fault returns RVM_EIO (a lone short write may instead be completed by
 *    the library, in which case the call succeeds and its data must be durable);
 *  - the failure is sticky: a later commit in the same process is refused, even though the
 *    disk works again (a fault fires once only);
 *  - after recovery in a fresh process, everything acknowledged durable before the fault is
 *    present, the transaction that failed is either wholly present or wholly absent (never
 *    partial), and the refused later commit is absent;
 *  - a fault that never fired means the library bypassed the seam: the test says so.
 *
 * rvm_initialize works once per process and fork() would inherit an initialised library, so
 * every scenario runs in a fresh child that never initialised RVM before.
 */
#include <criterion/criterion.h>

#include "core_test.h"
#include "sysio.h"

#define SEG_PAGES 4

static tpaths_t T;
static long PS;
static size_t SEG_LEN;

enum op { OP_PWRITE, OP_SYNC }; /* sync: fdatasync and fsync */
enum kind { K_EIO, K_ENOSPC, K_SHORT, K_SHORT_ENOSPC };
enum phase { PH_COMMIT, PH_FLUSH, PH_TRUNCATE, PH_RECOVERY };

static const char *op_name[] = {"pwrite", "fdatasync/fsync"};
static const char *kind_name[] = {"EIO", "ENOSPC", "short write", "short write then ENOSPC"};
static const char *phase_name[] = {"flush commit", "rvm_flush of no_flush commits", "rvm_truncate",
                                   "recovery (rvm_initialize)"};

/* The armed fault, and what it did. Lives in the child that runs the scenario. */
static struct {
    int armed;
    enum op op;
    enum kind kind;
    int nth;        /* fail the nth call of op after arming (1-based) */
    int calls;      /* calls of op seen while armed */
    int fired;      /* 1 once the fault was injected; 2 for K_SHORT_ENOSPC after both steps */
    ino_t only_ino; /* non-zero: count only calls on this file (e.g. the segment) */
} F;

/* f_counts -- is this call on a file the armed fault watches? */
static int f_counts(int fd)
{
    if (!F.only_ino)
        return 1;
    struct stat st;
    return sysio_default.fstat(fd, &st) == 0 && st.st_ino == F.only_ino;
}

/* f_pwrite -- sysio.pwrite replacement: inject the armed fault once, else pass through. */
static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!F.armed || F.op != OP_PWRITE || !f_counts(fd))
        return sysio_default.pwrite(fd, buf, n, off);
    __atomic_add_fetch(&F.calls, 1, __ATOMIC_SEQ_CST);
    if (F.kind == K_SHORT_ENOSPC && F.fired == 1) {
        F.fired = 2; /* the call after the short write: the disk is full */
        errno = ENOSPC;
        return -1;
    }
    if (F.calls != F.nth || F.fired)
        return sysio_default.pwrite(fd, buf, n, off);
    F.fired = 1;
    switch (F.kind) {
    case K_EIO: errno = EIO; return -1;
    case K_ENOSPC: errno = ENOSPC; return -1;
    case K_SHORT:
    case K_SHORT_ENOSPC:
        if (n < 2) {
            errno = ENOSPC;
            return -1;
        }
        return sysio_default.pwrite(fd, buf, n / 2, off);
    }
    return -1;
}

/* f_sync -- common body of the fdatasync/fsync replacements. */
static int f_sync(int fd, int (*real)(int))
{
    if (!F.armed || F.op != OP_SYNC || !f_counts(fd))
        return real(fd);
    __atomic_add_fetch(&F.calls, 1, __ATOMIC_SEQ_CST);
    if (F.calls != F.nth || F.fired)
        return real(fd);
    F.fired = 1;
    /* a failed sync: the kernel may or may not have written the pages */
    errno = F.kind == K_ENOSPC ? ENOSPC : EIO;
    return -1;
}

/* f_fdatasync -- sysio.fdatasync replacement. */
static int f_fdatasync(int fd)
{
    return f_sync(fd, sysio_default.fdatasync);
}

/* f_fsync -- sysio.fsync replacement. */
static int f_fsync(int fd)
{
    return f_sync(fd, sysio_default.fsync);
}

/* fault_install -- route the seam through the injectors (disarmed). */
static void fault_install(void)
{
    sysio.pwrite = f_pwrite;
    sysio.fdatasync = f_fdatasync;
    sysio.fsync = f_fsync;
}

/* fault_arm -- arm a fault: the nth call of op fails in the given way. */
static void fault_arm(enum op op, enum kind kind, int nth)
{
    F.op = op;
    F.kind = kind;
    F.nth = nth;
    F.calls = 0;
    F.fired = 0;
    F.armed = 1;
}

/* Results a scenario child hands back to the parent. */
typedef struct {
    int stage;             /* how far the child got (for messages) */
    int fired, calls;      /* fault bookkeeping */
    rvm_return_t rc_fault; /* first non-success code of the operation under fault (or 0) */
    rvm_return_t rc_after; /* first non-success code of the commit attempted afterwards */
    rvm_return_t rc_setup;
    unsigned char image[SEG_PAGES * 4096];
} result_t;

static result_t *R; /* shared with children */

typedef struct {
    enum phase phase;
    enum op op;
    enum kind kind;
    int nth;
} scen_t;

/* The data: A (durable before the fault), B (the operation under fault: three ranges on
 * three pages, so "partial" is visible), C (attempted after the fault). */
static const size_t B_OFF[3] = {100, 4096 + 200, 2 * 4096 + 4000}; /* last one crosses a page */

/* put -- set_range + store of `len` copies of byte v at off; first error wins in *rc. */
static void put(rvm_tid_t *t, char *base, size_t off, int v, size_t len, rvm_return_t *rc)
{
    if (*rc)
        return;
    *rc = rvm_set_range(t, base + off, len);
    if (*rc == RVM_SUCCESS)
        memset(base + off, v, len);
}

/* commit -- one transaction of the named shape ('A', 'B' or 'C'), ended with mode. */
static rvm_return_t commit(char *base, int which, rvm_mode_t mode)
{
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_return_t rc = rvm_begin_transaction(&t, restore);
    if (rc)
        return rc;
    if (which == 'A')
        put(&t, base, 0, 'A', 64, &rc);
    else if (which == 'B')
        for (int k = 0; k < 3; k++)
            put(&t, base, B_OFF[k], 'B', 300, &rc);
    else
        put(&t, base, 3 * 4096 + 1024, 'C', 64, &rc);
    if (rc) {
        rvm_abort_transaction(&t);
        return rc;
    }
    rc = rvm_end_transaction(&t, mode);
    if (rc)
        rvm_abort_transaction(&t); /* the tid stays valid after an end error */
    return rc;
}

/* start -- initialise RVM with the log (create it if asked) and map the segment. */
static rvm_return_t start(int create, rvm_region_t *r)
{
    rvm_return_t rc = create ? rvmt_init_create(T.log, 256 * 1024, 0, 0) : rvmt_init(T.log, 0, 0);
    if (rc)
        return rc;
    rvmt_region(r, T.seg, 0, 0, NULL);
    return rvm_map(r, NULL);
}

/* child_scenario -- run one faulted operation; results in *R. */
static int child_scenario(void *arg)
{
    const scen_t *s = arg;
    rvm_region_t r;
    fault_install();
    R->stage = 1;
    if ((R->rc_setup = start(1, &r)) != RVM_SUCCESS)
        return 1;
    R->stage = 2;
    if ((R->rc_setup = commit(r.vmaddr, 'A', flush)) != RVM_SUCCESS)
        return 2;
    R->stage = 3;
    switch (s->phase) {
    case PH_COMMIT:
        fault_arm(s->op, s->kind, s->nth);
        R->rc_fault = commit(r.vmaddr, 'B', flush);
        break;
    case PH_FLUSH:
        fault_arm(s->op, s->kind, s->nth);
        R->rc_fault = commit(r.vmaddr, 'B', no_flush);
        if (R->rc_fault == RVM_SUCCESS)
            R->rc_fault = rvm_flush();
        break;
    case PH_TRUNCATE:
        if ((R->rc_setup = commit(r.vmaddr, 'B', flush)) != RVM_SUCCESS)
            return 3;
        fault_arm(s->op, s->kind, s->nth);
        R->rc_fault = rvm_truncate();
        break;
    case PH_RECOVERY: return 4; /* not a scenario of this child */
    }
    F.armed = 0;
    R->fired = F.fired;
    R->calls = F.calls;
    R->stage = 4;
    R->rc_after = commit(r.vmaddr, 'C', flush);
    if (R->rc_after == RVM_SUCCESS)
        R->rc_after = rvm_flush();
    R->stage = 5;
    return 0; /* no terminate: as after a crash */
}

/* child_prepare_log -- commit A and B durably, then die: a log that recovery must apply. */
static int child_prepare_log(void *arg)
{
    (void)arg;
    rvm_region_t r;
    if (start(1, &r) || commit(r.vmaddr, 'A', flush) || commit(r.vmaddr, 'B', flush))
        return 1;
    return 0;
}

/* child_faulty_recovery -- rvm_initialize with a fault armed from the start. */
static int child_faulty_recovery(void *arg)
{
    const scen_t *s = arg;
    fault_install();
    fault_arm(s->op, s->kind, s->nth);
    R->rc_fault = rvmt_init(T.log, 0, 0);
    F.armed = 0;
    R->fired = F.fired;
    R->calls = F.calls;
    R->rc_after = RVM_EINIT; /* no commit attempted: C must be absent */
    if (R->rc_fault != RVM_SUCCESS)
        return 0;
    /* recovery claimed success despite the fault: try to commit, report */
    rvm_region_t r;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    R->rc_after = rvm_map(&r, NULL);
    if (R->rc_after == RVM_SUCCESS)
        R->rc_after = commit(r.vmaddr, 'C', flush);
    return 0;
}

/* child_recover -- clean recovery in a fresh process; the image lands in R->image. */
static int child_recover(void *arg)
{
    (void)arg;
    rvm_region_t r;
    if ((R->rc_setup = start(0, &r)) != RVM_SUCCESS)
        return 1;
    if (r.length != SEG_LEN)
        return 2;
    memcpy(R->image, r.vmaddr, SEG_LEN);
    return rvm_terminate() == RVM_SUCCESS ? 0 : 3;
}

/* all_bytes -- 1 if img[off, off+len) are all v. */
static int all_bytes(const unsigned char *img, size_t off, int v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (img[off + i] != (unsigned char)v)
            return 0;
    return 1;
}

/* b_state -- 1: B wholly present, 0: wholly absent, -1: partial. */
static int b_state(const unsigned char *img)
{
    int present = 0;
    for (int k = 0; k < 3; k++)
        present += all_bytes(img, B_OFF[k], 'B', 300);
    int absent = 0;
    for (int k = 0; k < 3; k++)
        absent += all_bytes(img, B_OFF[k], 0, 300);
    return present == 3 ? 1 : absent == 3 ? 0 : -1;
}

/* setup -- fresh directory and zeroed segment; shared result block. */
static void setup(void)
{
    tpaths_make(&T, "fault");
    PS = sysconf(_SC_PAGESIZE);
    cr_assert_eq(PS, 4096, "this test lays data out for 4 KiB pages");
    SEG_LEN = SEG_PAGES * (size_t)PS;
    R = shared_alloc(sizeof *R);
    cr_assert_not_null(R);
}

/* teardown -- remove the test directory. */
static void teardown(void)
{
    tdir_remove(T.dir);
}

TestSuite(fault, .init = setup, .fini = teardown, .timeout = 120);

/*
 * run_case -- one scenario from scratch; checks everything listed at the top. Returns 1 if
 * the fault fired, 0 if the operation never made that call (legitimate only for nth > 1 or
 * for ops a phase does not need).
 */
static int run_case(const scen_t *s)
{
    char d[64], what[160];
    snprintf(what, sizeof what, "%s: %s on %s call #%d", phase_name[s->phase], kind_name[s->kind],
             op_name[s->op], s->nth);
    tdir_remove(T.dir);
    tpaths_make(&T, "fault");
    cr_assert_eq(file_make(T.seg, SEG_LEN, 0), 0);
    memset(R, 0, sizeof *R);

    int st;
    if (s->phase == PH_RECOVERY) {
        st = proc_run(child_prepare_log, NULL);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: preparing the log: %s", what,
                  proc_describe(st, d, sizeof d));
        st = proc_run(child_faulty_recovery, (void *)s);
    } else {
        st = proc_run(child_scenario, (void *)s);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        cr_expect_fail("%s: scenario process failed at stage %d: %s (setup rc %s)", what, R->stage,
                       proc_describe(st, d, sizeof d), rvm_return(R->rc_setup));
        return 0;
    }
    if (!R->fired)
        return 0;

    int short_only = s->kind == K_SHORT;
    if (!(short_only && R->rc_fault == RVM_SUCCESS))
        cr_expect_eq(R->rc_fault, RVM_EIO, "%s: the call returned %s, want RVM_EIO", what,
                     rvm_return(R->rc_fault));
    /* (a failed rvm_initialize leaves nothing to commit with: stickiness is moot there) */
    if (R->rc_fault != RVM_SUCCESS && s->phase != PH_RECOVERY)
        cr_expect_neq(R->rc_after, RVM_SUCCESS,
                      "%s: not sticky -- a commit after the failed call succeeded", what);

    /* recovery in a fresh process, no fault */
    result_t keep = *R;
    st = proc_run(child_recover, NULL);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "%s: clean recovery afterwards failed: %s (rc %s)", what,
              proc_describe(st, d, sizeof d), rvm_return(R->rc_setup));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 1;
    const unsigned char *img = R->image;
    cr_expect(all_bytes(img, 0, 'A', 64), "%s: durable transaction A lost", what);
    int b = b_state(img);
    cr_expect_neq(b, -1, "%s: transaction B is partially present after recovery", what);
    if (s->phase == PH_TRUNCATE || s->phase == PH_RECOVERY || keep.rc_fault == RVM_SUCCESS)
        cr_expect_eq(b, 1, "%s: acknowledged transaction B lost", what);
    int c = all_bytes(img, 3 * 4096 + 1024, 'C', 64);
    if (keep.rc_after != RVM_SUCCESS)
        cr_expect(all_bytes(img, 3 * 4096 + 1024, 0, 64), "%s: refused transaction C present",
                  what);
    else
        cr_expect(c, "%s: transaction C was acknowledged but is lost", what);
    unsigned char *file = malloc(SEG_LEN);
    cr_assert_eq(file_read(T.seg, file, SEG_LEN, 0), 0);
    cr_expect_eq(memcmp(file, img, SEG_LEN), 0, "%s: segment file differs from recovered image",
                 what);
    free(file);
    fprintf(stderr, "fault: %-70s -> %s, later commit %s, B %s\n", what, rvm_return(keep.rc_fault),
            rvm_return(keep.rc_after), b == 1 ? "present" : "absent");
    return 1;
}

/* run_phase -- every fault kind on every op for one phase; the first call of each op that
 * the phase must make has to be seen by the seam. */
static void run_phase(enum phase ph)
{
    static const struct {
        enum op op;
        enum kind kind;
    } kinds[] = {
        {OP_PWRITE, K_EIO},          {OP_PWRITE, K_ENOSPC}, {OP_PWRITE, K_SHORT},
        {OP_PWRITE, K_SHORT_ENOSPC}, {OP_SYNC, K_EIO},      {OP_SYNC, K_ENOSPC},
    };
    int fired_write = 0, fired_sync = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        for (int nth = 1; nth <= 3; nth++) {
            scen_t s = {ph, kinds[i].op, kinds[i].kind, nth};
            int f = run_case(&s);
            if (f && kinds[i].op == OP_PWRITE)
                fired_write++;
            if (f && kinds[i].op == OP_SYNC)
                fired_sync++;
            if (!f)
                break; /* the operation makes fewer than nth such calls */
        }
    }
    cr_expect_gt(fired_write, 0, "%s never called pwrite through sysio: faults not exercised",
                 phase_name[ph]);
    cr_expect_gt(fired_sync, 0,
                 "%s never called fdatasync/fsync through sysio: durability not exercised",
                 phase_name[ph]);
}

Test(fault, during_flush_commit)
{
    run_phase(PH_COMMIT);
}

Test(fault, during_rvm_flush)
{
    run_phase(PH_FLUSH);
}

Test(fault, during_truncation)
{
    run_phase(PH_TRUNCATE);
}

Test(fault, during_recovery)
{
    run_phase(PH_RECOVERY);
}

/* Results of the incremental-truncation scenario. */
typedef struct {
    int fired;
    int n_ok;              /* commits acknowledged before the first refusal */
    rvm_return_t rc_fail;  /* the first refused commit's code */
    rvm_return_t rc_again; /* the commit after it */
} daemon_res_t;

static daemon_res_t *DR;

/* slot_put -- commit value i (1 KiB of byte i) into slot i % 8 of page 1-2, flush. */
static rvm_return_t slot_put(char *base, int i)
{
    rvm_tid_t t;
    rvm_init_tid(&t);
    char v[512];
    memset(v, (char)(i & 0x7f) | 1, sizeof v);
    rvm_return_t rc = rvm_begin_transaction(&t, restore);
    if (!rc)
        rc = rvm_modify_bytes(&t, base + 4096 + (size_t)(i % 8) * 1024, v, sizeof v);
    if (!rc)
        rc = rvm_end_transaction(&t, flush);
    if (rc)
        rvm_abort_transaction(&t);
    return rc;
}

/* child_daemon -- commits keep the truncation thread busy; a fault on the segment file hits
 * it (not a committer): the failure must surface as refused commits. */
static int child_daemon(void *arg)
{
    const scen_t *s = arg;
    fault_install();
    rvm_region_t r;
    if (rvmt_init_create(T.log, 64 * 1024, 0, 10) != RVM_SUCCESS)
        return 1;
    rvmt_region(&r, T.seg, 0, 0, NULL);
    if (rvm_map(&r, NULL) != RVM_SUCCESS || commit(r.vmaddr, 'A', flush) != RVM_SUCCESS)
        return 2;
    struct stat st;
    if (stat(T.seg, &st) != 0)
        return 3;
    F.only_ino = st.st_ino;
    fault_arm(s->op, s->kind, s->nth);
    for (int i = 1; i <= 3000; i++) {
        rvm_return_t rc = slot_put(r.vmaddr, i);
        if (rc) {
            DR->rc_fail = rc;
            DR->rc_again = slot_put(r.vmaddr, i + 1);
            break;
        }
        DR->n_ok = i;
    }
    DR->fired = __atomic_load_n(&F.fired, __ATOMIC_SEQ_CST);
    return 0;
}

Test(fault, during_incremental_truncation)
{
    /* the truncation thread (truncate = 10%) writes and syncs the segment; a fault there
     * happens in no caller's call: later commits must be refused (RVM_EIO), and recovery
     * must keep every acknowledged commit */
    static const struct {
        enum op op;
        enum kind kind;
    } kinds[] = {{OP_PWRITE, K_EIO}, {OP_PWRITE, K_ENOSPC}, {OP_SYNC, K_EIO}};
    DR = shared_alloc(sizeof *DR);
    cr_assert_not_null(DR);
    char d[64];
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        tdir_remove(T.dir);
        tpaths_make(&T, "fault");
        cr_assert_eq(file_make(T.seg, SEG_LEN, 0), 0);
        memset(DR, 0, sizeof *DR);
        scen_t sc = {PH_TRUNCATE, kinds[k].op, kinds[k].kind, 1};
        char what[96];
        snprintf(what, sizeof what, "%s on segment %s", kind_name[kinds[k].kind],
                 op_name[kinds[k].op]);
        int st = proc_run(child_daemon, &sc);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s", what,
                  proc_describe(st, d, sizeof d));
        cr_expect(DR->fired,
                  "%s: the truncation thread never wrote/synced the segment in "
                  "3000 commits through a 64 KiB log",
                  what);
        if (!DR->fired)
            continue;
        cr_expect_eq(DR->rc_fail, RVM_EIO,
                     "%s in the truncation thread: commits after it "
                     "returned %s (acknowledged %d), want RVM_EIO",
                     what, rvm_return(DR->rc_fail), DR->n_ok);
        cr_expect_neq(DR->rc_again, RVM_SUCCESS, "%s: not sticky", what);
        st = proc_run(child_recover, NULL);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: recovery: %s", what,
                  proc_describe(st, d, sizeof d));
        cr_expect(all_bytes(R->image, 0, 'A', 64), "%s: A lost", what);
        /* each slot holds its last acknowledged value (or the refused one's, whole) */
        for (int slot = 0; slot < 8; slot++) {
            int last = 0;
            for (int i = 1; i <= DR->n_ok; i++)
                if (i % 8 == slot)
                    last = i;
            if (!last)
                continue;
            const unsigned char *p = R->image + 4096 + (size_t)slot * 1024;
            int want = (last & 0x7f) | 1, refused = ((DR->n_ok + 1) & 0x7f) | 1;
            int ok = all_bytes(p, 0, want, 512) ||
                     ((DR->n_ok + 1) % 8 == slot && all_bytes(p, 0, refused, 512));
            cr_expect(ok, "%s: slot %d lost acknowledged commit %d (byte 0x%02x)", what, slot, last,
                      p[0]);
        }
        fprintf(stderr,
                "fault: truncation thread, %-36s -> %d commits acknowledged, then %s, "
                "then %s\n",
                what, DR->n_ok, rvm_return(DR->rc_fail), rvm_return(DR->rc_again));
    }
}
