/* SPDX-License-Identifier: MIT */
/*
 * test_track_lazy.c -- lazy committed images (track.h, "LAZY TWINS"): with wp-async, a page
 * of a region rvm_map made from the segment has no twin until its first commit, which diffs
 * it against the segment file. Each test commits in one process, dies without rvm_terminate
 * (as a SIGKILL would), recovers in a fresh one and compares the segment with what must be
 * there. A wrong pre-image shows either as too many bytes logged (an image older than the
 * file) or as a lost change (an image newer than the file).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rvm_int.h"
#include "track_int.h"
#include "track_test.h"

#define SEG_PAGES 32

static char dir[64], logp[128], segp[128];

/* files -- a fresh directory with an empty segment of SEG_PAGES pages */
static void files(void)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-track-lazy-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, (off_t)(SEG_PAGES * vmp_page_size())) == 0);
    close(fd);
}

/* rmfiles -- remove what files() made */
static void rmfiles(void)
{
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}

/* start_t -- rvm_initialize (recovery) with the log (created if absent) and a truncation
 * daemon at threshold `truncate` (0: none); map the segment (private: RVM_MAP_PRIVATE, else
 * copied) and, unless rg is NULL, track it with wp-async */
static int start_t(rvm_region_t *rg, int private_map, int track, long truncate)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    o.truncate = truncate;
    if (access(logp, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, 4 << 20);
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
    rvm_map_private = private_map ? rvm_true : rvm_false;
    rvm_init_region(rg);
    rg->data_dev = segp;
    rvm_return_t rc = rvm_map(rg, NULL);
    rvm_map_private = rvm_false;
    if (rc != RVM_SUCCESS)
        return 4;
    if (track && rvm_track(rg) != RVM_SUCCESS)
        return 5;
    return 0;
}

/* start -- start_t with the default truncation daemon */
static int start(rvm_region_t *rg, int private_map, int track)
{
    return start_t(rg, private_map, track, TRUNCATE);
}

/* in_child -- run fn(arg) in a child that exits with its result without rvm_terminate;
 * assert it returned 0 */
static void in_child(int (*fn)(int), int arg, const char *what)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        track_set_sink(NULL, NULL);
        _exit(fn(arg));
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: failed at step %d", what,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* recover_child -- a fresh process recovers and truncates, so the file is the committed state */
static int recover_child(int unused)
{
    (void)unused;
    if (start(NULL, 0, 0) != 0 || rvm_truncate() != RVM_SUCCESS || rvm_terminate() != RVM_SUCCESS)
        return 1;
    return 0;
}

/* logged -- bytes_logged so far */
static uint64_t logged(void)
{
    rvm_track_statistics_t st;
    rvm_track_statistics(&st);
    return st.bytes_logged;
}

/* run1 -- commit 100 'A's on page 3 and a 'Q' on page 7 */
static int run1(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 1);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    memset(m + 3 * ps, 'A', 100);
    m[7 * ps] = 'Q';
    if (rvm_commit() != RVM_SUCCESS || logged() != 101)
        return 20;
    return 0;
}

/* run2 -- a later run: nothing is copied at rvm_track; changing one byte of the committed
 * page logs that byte only (its image is the file's page, not zeros), a byte of a never
 * written page logs one byte (a hole reads as zeros) */
static int run2(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 1);
    if (e)
        return 10 + e;
    if (atomic_load(&tracker.twin_pages) != 0)
        return 20; /* an eager copy */
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    if (m[3 * ps + 99] != 'A' || m[7 * ps] != 'Q')
        return 21;
    m[3 * ps + 50] = 'B';
    m[10 * ps + 5] = 'z';
    if (rvm_commit() != RVM_SUCCESS)
        return 22;
    if (logged() != 2)
        return 23; /* the diff was taken against the wrong image */
    if (tracker.file_reads != 2 || atomic_load(&tracker.twin_pages) != 0)
        return 24; /* a page captured for the first time keeps no twin (REFILING) */
    /* page 3 again at once: diffed against the file (which holds the first commit by then,
     * applied by the daemon or by the commit), and written two commits in a row it keeps
     * its snapshot as its twin: the next change of page 3 diffs against memory */
    m[3 * ps + 51] = 'C';
    if (rvm_commit() != RVM_SUCCESS || logged() != 3 || tracker.file_reads != 3 ||
        atomic_load(&tracker.twin_pages) != 1)
        return 25;
    m[3 * ps + 52] = 'D';
    if (rvm_commit() != RVM_SUCCESS || logged() != 4 || tracker.file_reads != 3)
        return 26;
    return 0;
}

/* check2 -- the recovered segment holds run1 + run2 */
static void check2(void)
{
    size_t ps = vmp_page_size();
    char *seg = malloc(SEG_PAGES * ps);
    int fd = open(segp, O_RDONLY);
    cr_assert(fd >= 0 && pread(fd, seg, SEG_PAGES * ps, 0) == (ssize_t)(SEG_PAGES * ps));
    close(fd);
    for (int k = 0; k < 100; k++)
        cr_assert_eq(seg[3 * ps + k],
                     k == 50   ? 'B'
                     : k == 51 ? 'C'
                     : k == 52 ? 'D'
                               : 'A',
                     "byte %d", k);
    cr_assert_eq(seg[3 * ps + 100], 0);
    cr_assert_eq(seg[7 * ps], 'Q');
    cr_assert_eq(seg[10 * ps + 5], 'z');
    free(seg);
}

Test(track_lazy, preimage_is_the_committed_file_page)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    for (int priv = 0; priv < 2; priv++) {
        files();
        in_child(run1, priv, priv ? "run 1 (MAP_PRIVATE)" : "run 1 (copied)");
        in_child(run2, priv, priv ? "run 2 (MAP_PRIVATE)" : "run 2 (copied)");
        in_child(recover_child, 0, "recovery");
        check2();
        rmfiles();
    }
}

/* explicit -- set_range transactions meet lazy pages: one committed before rvm_track (the
 * log holds it, the file not yet: rvm_track must truncate it first), one after (its page's
 * image must include the committed bytes). Then plain stores put the pages back to their
 * old bytes and rvm_commit must log that: the recovered segment shows zeros. */
static int explicit(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 0);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS ||
        rvm_set_range(&t, m + 5 * ps, 8) != RVM_SUCCESS)
        return 20;
    memcpy(m + 5 * ps, "explicit", 8);
    if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
        return 21;
    if (rvm_track(&rg) != RVM_SUCCESS)
        return 22;
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS ||
        rvm_set_range(&t, m + 6 * ps + 8, 4) != RVM_SUCCESS)
        return 23;
    memcpy(m + 6 * ps + 8, "txn6", 4);
    if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
        return 24;
    memset(m + 5 * ps, 0, 8);
    memset(m + 6 * ps + 8, 0, 4);
    if (rvm_commit() != RVM_SUCCESS)
        return 25;
    if (logged() != 12)
        return 26;
    return 0;
}

Test(track_lazy, explicit_transactions_update_the_image)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    size_t ps = vmp_page_size();
    for (int priv = 0; priv < 2; priv++) {
        files();
        in_child(explicit, priv, priv ? "explicit (MAP_PRIVATE)" : "explicit (copied)");
        in_child(recover_child, 0, "recovery");
        char buf[16];
        int fd = open(segp, O_RDONLY);
        cr_assert(fd >= 0 && pread(fd, buf, 8, (off_t)(5 * ps)) == 8);
        cr_assert(memcmp(buf, "\0\0\0\0\0\0\0\0", 8) == 0, "page 5: the revert was lost");
        cr_assert(pread(fd, buf, 4, (off_t)(6 * ps + 8)) == 4);
        cr_assert(memcmp(buf, "\0\0\0\0", 4) == 0, "page 6: the revert was lost");
        close(fd);
        rmfiles();
    }
}

/* refused -- a hook backend cannot track a RVM_MAP_PRIVATE mapping: a clear refusal */
static int refused(int unused)
{
    (void)unused;
    if (start(NULL, 0, 0) != 0)
        return 10;
    rvm_track_options_t to = {.backend = "mprotect"};
    if (rvm_track_configure(&to) != RVM_SUCCESS)
        return 11;
    rvm_map_private = rvm_true;
    rvm_region_t rg;
    rvm_init_region(&rg);
    rg.data_dev = segp;
    if (rvm_map(&rg, NULL) != RVM_SUCCESS)
        return 12;
    if (rvm_track(&rg) != RVM_EREGION || strstr(rvm_errmsg, "RVM_MAP_PRIVATE") == NULL ||
        strstr(rvm_errmsg, "wp-async") == NULL)
        return 13;
    return 0;
}

Test(track_lazy, map_private_needs_wp_async)
{
    files();
    in_child(refused, 0, "refusal");
    rmfiles();
}

/* final -- after run1: a final commit diffs in place (no snapshot, no twin), logging exactly
 * the changed bytes against each page's image (twin, file or zeros); a commit after it is
 * still correct (the pages, now without an image, are logged whole) */
static int final(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 1);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    m[12 * ps] = 't';
    if (rvm_commit() != RVM_SUCCESS || logged() != 1)
        return 19;
    m[12 * ps + 2] = 'v'; /* written in two commits in a row: it keeps a twin */
    if (rvm_commit() != RVM_SUCCESS || logged() != 2 || atomic_load(&tracker.twin_pages) != 1)
        return 20;
    uint64_t touches = atomic_load(&tracker.slot_touches);
    m[12 * ps + 1] = 'u'; /* diffed against its twin */
    m[3 * ps + 7] = 'F';  /* against the file page ('A's) */
    m[20 * ps + 9] = 'z'; /* against zeros (a hole) */
    if (track_commit_final() != RVM_SUCCESS)
        return 21;
    if (logged() != 5)
        return 22;
    if (atomic_load(&tracker.twin_pages) != 0 || atomic_load(&tracker.slot_touches) != touches)
        return 23; /* a final commit made snapshots or kept twins */
    /* no twin any more: diffed against the file page once the file holds the final commit's
     * record (the commit applies it if the daemon has not) */
    m[20 * ps + 10] = 'y';
    if (rvm_commit() != RVM_SUCCESS || logged() != 6)
        return 24;
    return 0;
}

Test(track_lazy, final_commit_diffs_in_place)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    size_t ps = vmp_page_size();
    for (int priv = 0; priv < 2; priv++) {
        files();
        in_child(run1, priv, "run 1");
        in_child(final, priv, priv ? "final (MAP_PRIVATE)" : "final (copied)");
        in_child(recover_child, 0, "recovery");
        char *seg = malloc(SEG_PAGES * ps);
        int fd = open(segp, O_RDONLY);
        cr_assert(fd >= 0 && pread(fd, seg, SEG_PAGES * ps, 0) == (ssize_t)(SEG_PAGES * ps));
        close(fd);
        cr_assert(seg[12 * ps] == 't' && seg[12 * ps + 1] == 'u');
        cr_assert(seg[3 * ps + 6] == 'A' && seg[3 * ps + 7] == 'F' && seg[3 * ps + 8] == 'A');
        cr_assert(seg[20 * ps + 9] == 'z' && seg[20 * ps + 10] == 'y' && seg[20 * ps] == 0);
        cr_assert_eq(seg[7 * ps], 'Q');
        free(seg);
        rmfiles();
    }
}

/* ---- REFILING (track_twin.c): twins given back once the segment file is current ---- */

/* tick -- n commits that change only page 20: they advance the capture clock */
static int tick(char *m, int n)
{
    for (int k = 0; k < n; k++) {
        m[20 * vmp_page_size() + k % 64]++;
        if (rvm_commit() != RVM_SUCCESS)
            return -1;
    }
    return 0;
}

/* commit_logs -- rvm_commit of a change of `bytes` bytes: 1 if it logged exactly those */
static int commit_logs(uint64_t bytes)
{
    uint64_t l0 = logged();
    return rvm_commit() == RVM_SUCCESS && logged() - l0 == bytes;
}

/* hold -- keep the log's truncation lock (1) or let it go (0): the daemon cannot apply any
 * record to the file meanwhile */
static void hold(int on)
{
    if (on)
        pthread_mutex_lock(&engine.log->trunc_mu);
    else
        pthread_mutex_unlock(&engine.log->trunc_mu);
}

/*
 * refile_explicit -- no truncation daemon: records reach the file only by rvm_truncate. A page
 * must keep its twin until every record naming it is in the file (a tracked one, then an
 * explicit transaction's); once refiled, its pre-image is the file page. Each check writes
 * back bytes the file still holds at that moment: a page refiled too early diffs them as
 * unchanged and the change is lost, which the recovered segment shows
 * (check_refile_recovered).
 */
static int refile_explicit(int priv)
{
    rvm_region_t rg;
    int e = start_t(&rg, priv, 1, 0);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    memset(m + 3 * ps, 'A', 100);
    if (rvm_commit() != RVM_SUCCESS || tick(m, 4) != 0)
        return 20;
    if (tracker.refiled != 0)
        return 21;                  /* its record is only in the log */
    memset(m + 3 * ps + 50, 0, 10); /* the file's bytes */
    if (!commit_logs(10))
        return 22;
    if (rvm_truncate() != RVM_SUCCESS || tick(m, 3) != 0 || tracker.refiled == 0)
        return 23;
    uint64_t reads = tracker.file_reads;
    m[3 * ps + 7] = 'b';
    if (!commit_logs(1) || tracker.file_reads != reads + 1)
        return 24; /* diffed against the file page */
    /* an explicit transaction names the page; its record stays in the log */
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS ||
        rvm_set_range(&t, m + 3 * ps + 60, 4) != RVM_SUCCESS)
        return 26;
    memcpy(m + 3 * ps + 60, "EEEE", 4);
    if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
        return 27;
    uint64_t refiled = tracker.refiled;
    if (tick(m, 4) != 0 || tracker.refiled != refiled)
        return 28;                      /* the explicit record is only in the log */
    memcpy(m + 3 * ps + 60, "AAAA", 4); /* what the file holds */
    if (!commit_logs(4))
        return 29;
    return 0;
}

/* check_refile_recovered -- recover in a fresh process; page 3 of the segment must be what
 * refile_explicit and refile_daemon committed last. Removes the files. */
static void check_refile_recovered(void)
{
    in_child(recover_child, 0, "recovery");
    size_t ps = vmp_page_size();
    char page[4096];
    int fd = open(segp, O_RDONLY);
    cr_assert(fd >= 0 && pread(fd, page, 100, (off_t)(3 * ps)) == 100);
    close(fd);
    for (int k = 0; k < 100; k++) {
        char want = k == 7 ? 'b' : k >= 50 && k < 60 ? 0 : 'A';
        cr_assert_eq(page[k], want, "page 3, byte %d: 0x%02x, expected 0x%02x", k,
                     (unsigned char)page[k], (unsigned char)want);
    }
    rmfiles();
}

Test(track_lazy, twins_are_given_back_only_once_the_file_is_current)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    for (int priv = 0; priv < 2; priv++) {
        files();
        in_child(refile_explicit, priv, priv ? "refile (MAP_PRIVATE)" : "refile (copied)");
        check_refile_recovered();
    }
}

/* refile_daemon -- with the truncation daemon (far below its threshold): records a commit
 * could not apply itself reach the file within a few milliseconds without any commit, and
 * the next commit gives the twins back */
static int refile_daemon(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 1);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    hold(1);
    memset(m + 3 * ps, 'A', 100);
    if (rvm_commit() != RVM_SUCCESS)
        return 19;
    m[3 * ps + 200] = 'x'; /* written in two commits in a row: it keeps a twin */
    if (rvm_commit() != RVM_SUCCESS || tick(m, 2) != 0 || tracker.refiled != 0)
        return 20;
    uint64_t applied = trunc_applied_seq(engine.log);
    hold(0);
    for (int k = 0; k < 1000 && trunc_applied_seq(engine.log) == applied; k++)
        usleep(5000);
    if (trunc_applied_seq(engine.log) == applied)
        return 21; /* nothing applied after 5 s */
    uint64_t twins = atomic_load(&tracker.twin_pages);
    if (tick(m, 1) != 0 || tracker.refiled == 0 || atomic_load(&tracker.twin_pages) >= twins)
        return 22;
    m[3 * ps + 7] = 'b';
    memset(m + 3 * ps + 50, 0, 10);
    if (!commit_logs(11))
        return 23;
    return 0;
}

Test(track_lazy, the_daemon_makes_the_file_current)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    files();
    in_child(refile_daemon, 1, "refile by the daemon");
    check_refile_recovered();
}

/* unhold -- track_commit_then's callback after the instant: let the daemon apply again */
static void unhold(void *unused)
{
    (void)unused;
    hold(0);
}

/* twinned -- does page p of the tracked region at m have a twin? */
static int twinned(char *m, int p)
{
    size_t i;
    struct track_region *r = track_locate((uintptr_t)(m + p * vmp_page_size()), &i);
    return r != NULL && (track_st_load(r, i) & TF_TWIN) != 0;
}

/* applied_all -- wait (at most 5 s) until the daemon has applied every record so far */
static int applied_all(void)
{
    for (int k = 0; k < 1000; k++) {
        if (trunc_applied_seq(engine.log) >= track_core_cover_seq())
            return 1;
        usleep(5000);
    }
    return 0;
}

/*
 * refile_scatter -- with the daemon keeping up, a page that is not written in two commits in
 * a row gets no twin: its next commit diffs it against the segment file, which holds its
 * record by then (the daemon applied it), or will once the commit has applied the record
 * itself (the daemon had not yet). Every commit must log exactly the bytes changed (a page
 * logged whole shows as 4 KiB more), and the recovered segment must hold them all.
 */
static int refile_scatter(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 1);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    hold(1); /* the daemon applies nothing until the third commit's instant */
    for (int p = 8; p < 16; p++)
        m[p * ps + p] = 'a';
    if (!commit_logs(8))
        return 20;
    for (int p = 8; p < 16; p++)
        if (twinned(m, p))
            return 21; /* a first capture makes no twin */
    if (tick(m, 1) != 0)
        return 22; /* not written two commits in a row */
    for (int p = 8; p < 16; p++)
        m[p * ps + p + 1] = 'b';
    uint64_t l0 = logged(), reads = tracker.file_reads, wanted = tracker.file_wanted;
    if (track_commit_then(0, unhold, NULL) != RVM_SUCCESS)
        return 23;
    if (logged() - l0 != 8)
        return 24; /* the record was not in the file at the instant: applied by the commit */
    if (tracker.file_wanted == wanted || tracker.file_reads != reads + 8)
        return 25;
    if (!applied_all() || tick(m, 1) != 0 || !applied_all())
        return 26;
    for (int p = 8; p < 16; p++) {
        if (twinned(m, p))
            return 27;
        m[p * ps + p + 2] = 'c';
    }
    wanted = tracker.file_wanted;
    reads = tracker.file_reads;
    if (!commit_logs(8) || tracker.file_wanted != wanted || tracker.file_reads != reads + 8)
        return 28; /* the file held the record at the instant: no apply asked for */
    return 0;
}

/* refile_lagging -- while the daemon has not applied the records of a commit that ended
 * TRACK_LAG_MS ago, a commit's pages written in one of the last few commits keep their
 * snapshots as twins (the file may not hold their records by their next commit); pages
 * written for the first time (a heap being built) still keep none */
static int refile_lagging(int priv)
{
    rvm_region_t rg;
    int e = start(&rg, priv, 1);
    if (e)
        return 10 + e;
    char *m = rg.vmaddr;
    size_t ps = vmp_page_size();
    hold(1); /* to the end: the daemon applies nothing, and neither can a commit */
    for (int p = 8; p < 20; p++)
        if (p < 12 || p >= 16)
            m[p * ps] = 'a'; /* P = 8-11, Q = 16-19 */
    if (!commit_logs(8) || tick(m, 1) != 0)
        return 20;
    usleep((TRACK_LAG_MS + 10) * 1000); /* the daemon now lags */
    for (int p = 12; p < 20; p++)
        m[p * ps + (p >= 16)] = p >= 16 ? 'b' : 'a'; /* Q again, R = 12-15 first */
    /* Q: no twin, and the file does not hold its record: logged whole */
    if (!commit_logs(4 * ps + 4))
        return 21;
    for (int p = 8; p < 20; p++)
        if (twinned(m, p) != (p >= 16))
            return 22; /* Q was written two commits before: it keeps a twin now */
    for (int p = 16; p < 20; p++)
        m[p * ps + 2] = 'c';
    uint64_t reads = tracker.file_reads;
    if (!commit_logs(4) || tracker.file_reads != reads)
        return 23; /* diffed against their twins */
    hold(0);
    return 0;
}

/* check_scatter_recovered -- recover in a fresh process; pages 8-19 of the segment must hold
 * what refile_scatter or refile_lagging committed. Removes the files. */
static void check_scatter_recovered(int lagging)
{
    in_child(recover_child, 0, "recovery");
    size_t ps = vmp_page_size();
    char page[64];
    int fd = open(segp, O_RDONLY);
    cr_assert(fd >= 0);
    for (int p = 8; p < 20; p++) {
        cr_assert(pread(fd, page, sizeof(page), (off_t)(p * ps)) == (ssize_t)sizeof(page));
        for (int k = 0; k < (int)sizeof(page); k++) {
            char want = 0;
            if (lagging)
                want = k == 0 ? 'a' : k == 1 && p >= 16 ? 'b' : k == 2 && p >= 16 ? 'c' : 0;
            else if (p < 16)
                want = k == p ? 'a' : k == p + 1 ? 'b' : k == p + 2 ? 'c' : 0;
            cr_assert_eq(page[k], want, "page %d, byte %d: 0x%02x, expected 0x%02x", p, k,
                         (unsigned char)page[k], (unsigned char)want);
        }
    }
    close(fd);
    rmfiles();
}

Test(track_lazy, a_page_written_once_keeps_no_twin_and_is_diffed_against_the_file)
{
    if (!tt_backend_ok(VMP_BACKEND_WP_ASYNC))
        cr_skip_test("wp-async is not available here");
    for (int priv = 0; priv < 2; priv++) {
        files();
        in_child(refile_scatter, priv, priv ? "scatter (MAP_PRIVATE)" : "scatter (copied)");
        check_scatter_recovered(0);
        files();
        in_child(refile_lagging, priv, priv ? "lagging (MAP_PRIVATE)" : "lagging (copied)");
        check_scatter_recovered(1);
    }
}
