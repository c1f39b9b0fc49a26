/* SPDX-License-Identifier: MIT */
/*
 * test_trust.c -- logs and segments that cannot be turned against their user: the ownership
 * rules (owner, write bits, symbolic links), the shared-group option, and the one lock on a log
 * (library and rvmutl, fork children, a live writer).
 *
 * The ownership tests need files of other users, so they need root (CI runs as root): root
 * creates the files, chowns them to test uids (65534 "nobody", 65533), and each case runs in a
 * child that drops to such a uid with setgid/setuid before it touches the library. They are
 * skipped (reported as skipped, never as passed) without root. Everything happens under /tmp,
 * which every test uid can reach.
 */
#include <criterion/criterion.h>
#include <grp.h>

#include "core_test.h"

#define NOBODY 65534 /* the unprivileged user the cases run as */
#define OTHER 65533  /* "another user" */
#define SEG_LEN 8192

/* what a child hands back: its rvm_errmsg */
struct report {
    char msg[2048];
};
static struct report *rep;

static char dir[128];

static void setup(void)
{
    rep = shared_alloc(sizeof(*rep));
    snprintf(dir, sizeof(dir), "/tmp/lrvm-trust-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    cr_assert_eq(chmod(dir, 0755), 0);
}

static void teardown(void)
{
    tdir_remove(dir);
}

/* need_root -- the ownership cases create files of other users */
static void need_root(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to create files owned by other users (CI runs as root)");
}

/* as_user -- run fn(arg) in a child with uid/gid (0: stay root); its exit status, or 128+sig */
static int as_user(uid_t uid, gid_t gid, int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        if (uid != 0 && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
            _exit(99);
        _exit(fn(arg));
    }
    int st;
    cr_assert_eq(waitpid(p, &st, 0), p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* path_in -- dir/name into a static ring of buffers */
static const char *path_in(const char *name)
{
    static char ring[8][256];
    static int k;
    char *b = ring[k++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

/* ---- what the children do --------------------------------------------------------------- */

struct job {
    const char *log;
    const char *seg;
    int fill;           /* byte to commit into the segment */
    rvm_length_t flags; /* extra option flags (RVM_SHARED_GROUP) */
};

/* init_log -- rvm_initialize with the job's log; 0, or 1 with the message in rep */
static int init_log(const struct job *j)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = (char *)j->log;
    o.truncate = 0;
    o.flags |= j->flags;
    rvm_return_t rc = rvm_initialize(RVM_VERSION, &o);
    if (rc != RVM_SUCCESS) {
        snprintf(rep->msg, sizeof(rep->msg), "%s", rvm_errmsg);
        return 1;
    }
    return 0;
}

/* open_only -- does the library accept the log (and, if given, map the segment)? */
static int open_only(void *arg)
{
    const struct job *j = arg;
    if (init_log(j))
        return 1;
    if (j->seg == NULL)
        return 0;
    rvm_region_t r;
    rvm_init_region(&r);
    r.data_dev = (char *)j->seg;
    r.length = SEG_LEN;
    if (rvm_map(&r, NULL) != RVM_SUCCESS) {
        snprintf(rep->msg, sizeof(rep->msg), "%s", rvm_errmsg);
        return 2;
    }
    return 0;
}

/* commit_pending -- create the log, commit `fill` over the segment, leave without truncating:
 * the record stays in the log for the next start to apply */
static int commit_pending(void *arg)
{
    const struct job *j = arg;
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = (char *)j->log;
    o.create_log_file = rvm_true;
    o.create_log_size = RVM_MK_OFFSET(0, 1u << 20);
    o.create_log_mode = 0600;
    o.truncate = 0;
    if (rvm_initialize(RVM_VERSION, &o) != RVM_SUCCESS)
        return 10;
    rvm_region_t r;
    rvm_init_region(&r);
    r.data_dev = (char *)j->seg;
    r.length = SEG_LEN;
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 11;
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    if (rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS ||
        rvm_set_range(&tid, r.vmaddr, SEG_LEN) != RVM_SUCCESS)
        return 12;
    memset(r.vmaddr, j->fill, SEG_LEN);
    if (rvm_end_transaction(&tid, flush) != RVM_SUCCESS)
        return 13;
    return 0; /* _exit without rvm_terminate */
}

/* plant_link -- replace job->seg with a symbolic link to job->log (reused as "target") */
static int plant_link(void *arg)
{
    const struct job *j = arg;
    unlink(j->seg);
    return symlink(j->log, j->seg) == 0 ? 0 : 1;
}

/* make_file -- a file of SEG_LEN bytes of `fill` with owner and mode */
static void make_file(const char *path, int fill, uid_t uid, gid_t gid, mode_t mode)
{
    cr_assert_eq(file_make(path, SEG_LEN, fill), 0, "%s", path);
    cr_assert_eq(chown(path, uid, gid), 0, "%s", path);
    cr_assert_eq(chmod(path, mode), 0, "%s", path);
}

/* make_log -- a fresh empty log with owner and mode */
static void make_log(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = (char *)path;
    rvm_offset_t len = RVM_MK_OFFSET(0, 1u << 20);
    cr_assert_eq(rvm_create_log(&o, &len, 0600), RVM_SUCCESS, "%s", rvm_errmsg);
    cr_assert_eq(chown(path, uid, gid), 0);
    cr_assert_eq(chmod(path, mode), 0);
}

/* all_bytes -- is every byte of the file `fill`? */
static int all_bytes(const char *path, int fill)
{
    unsigned char b[SEG_LEN];
    if (file_read(path, b, sizeof(b), 0) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(b); i++)
        if (b[i] != (unsigned char)fill)
            return 0;
    return 1;
}

TestSuite(trust, .init = setup, .fini = teardown, .timeout = 60);

/*
 * The reported attack: another user plants <segment>.log in a shared directory, its dictionary
 * naming a path that the user then turns into a symbolic link to a root-owned file; root
 * starts and recovery writes the attacker's bytes into that file. The log must be refused
 * because of its owner, before recovery reads a byte of it.
 */
Test(trust, planted_log_of_another_user_is_refused)
{
    need_root();
    cr_assert_eq(chmod(dir, 01777), 0); /* a shared directory, like /tmp */
    const char *victim = path_in("victim"), *att = path_in("att");
    make_file(victim, 'V', 0, 0, 0644);
    cr_assert_eq(mkdir(att, 0755), 0);
    cr_assert_eq(chown(att, NOBODY, NOBODY), 0);
    struct job planted = {.log = path_in("seg.log"), .seg = path_in("att/seg"), .fill = 'A'};
    make_file(planted.seg, 0, NOBODY, NOBODY, 0600);
    cr_assert_eq(as_user(NOBODY, NOBODY, commit_pending, &planted), 0);
    struct job link = {.log = victim, .seg = planted.seg};
    cr_assert_eq(as_user(NOBODY, NOBODY, plant_link, &link), 0);

    struct job root = {.log = planted.log};
    cr_expect_eq(as_user(0, 0, open_only, &root), 1, "root accepted the planted log");
    cr_expect(strstr(rep->msg, planted.log) && strstr(rep->msg, "belongs to uid 65534, not to "
                                                                "uid 0"),
              "%s", rep->msg);
    cr_expect(all_bytes(victim, 'V'), "the root-owned file was overwritten");
}

/*
 * Root's own log, but the segment it names was replaced (in a directory another user may
 * write) by that user's symbolic link to a root-owned file: recovery must refuse to follow it,
 * with a message naming both files, and write nothing.
 */
Test(trust, dictionary_path_through_a_foreign_link_is_refused)
{
    need_root();
    cr_assert_eq(chmod(dir, 0777), 0);
    const char *victim = path_in("victim");
    make_file(victim, 'V', 0, 0, 0644);
    struct job own = {.log = path_in("seg.log"), .seg = path_in("seg"), .fill = 'A'};
    make_file(own.seg, 0, 0, 0, 0600);
    cr_assert_eq(as_user(0, 0, commit_pending, &own), 0);
    struct job link = {.log = victim, .seg = own.seg};
    cr_assert_eq(as_user(NOBODY, NOBODY, plant_link, &link), 0);

    cr_expect_eq(as_user(0, 0, open_only, &own), 1, "recovery followed the foreign link");
    cr_expect(strstr(rep->msg, own.log) && strstr(rep->msg, own.seg) &&
                  strstr(rep->msg, "symbolic link of uid 65534"),
              "%s", rep->msg);
    cr_expect(all_bytes(victim, 'V'), "the root-owned file was overwritten");
}

/* The rules, as an unprivileged user: owner, group and other write bits, the shared-group
 * option, symbolic links; for the log and for a segment. */
Test(trust, ownership_rules_as_an_unprivileged_user)
{
    need_root();
    cr_assert_eq(chmod(dir, 0777), 0); /* the user makes its links here */
    struct job j = {.log = path_in("own.log")};
    make_log(j.log, NOBODY, NOBODY, 0600);
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 0, "own log refused: %s", rep->msg);

    j.log = path_in("other.log");
    make_log(j.log, OTHER, OTHER, 0666);
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 1);
    cr_expect(strstr(rep->msg, "belongs to uid 65533, not to uid 65534"), "%s", rep->msg);

    j.log = path_in("gw.log");
    make_log(j.log, NOBODY, NOBODY, 0620);
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 1);
    cr_expect(strstr(rep->msg, "writable by its group (mode 0620)"), "%s", rep->msg);
    j.flags = RVM_SHARED_GROUP;
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 0, "shared group: %s", rep->msg);

    j.log = path_in("group.log"); /* another user's, of our group */
    j.flags = 0;
    make_log(j.log, OTHER, NOBODY, 0660);
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 1);
    cr_expect(strstr(rep->msg, "LRVM_SHARED_GROUP"), "%s", rep->msg);
    j.flags = RVM_SHARED_GROUP;
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 0, "shared group: %s", rep->msg);

    j.log = path_in("ow.log"); /* writable by everyone: never, not even shared */
    make_log(j.log, NOBODY, NOBODY, 0602);
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 1);
    cr_expect(strstr(rep->msg, "writable by every user"), "%s", rep->msg);

    /* segments: another user's (even writable for us) and a link of ours to it */
    j = (struct job){.log = path_in("own.log"), .seg = path_in("other-seg")};
    make_file(j.seg, 0, OTHER, OTHER, 0666);
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 2);
    cr_expect(strstr(rep->msg, "segment") && strstr(rep->msg, j.seg) &&
                  strstr(rep->msg, "belongs to uid 65533"),
              "%s", rep->msg);
    struct job link = {.log = j.seg, .seg = path_in("link-seg")};
    cr_assert_eq(as_user(NOBODY, NOBODY, plant_link, &link), 0);
    j.seg = link.seg;
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 2);
    cr_expect(strstr(rep->msg, "belongs to uid 65533"), "%s", rep->msg);

    /* a link of ours to a segment of ours is fine */
    make_file(path_in("own-seg"), 0, NOBODY, NOBODY, 0600);
    link = (struct job){.log = path_in("own-seg"), .seg = path_in("own-link")};
    cr_assert_eq(as_user(NOBODY, NOBODY, plant_link, &link), 0);
    j.seg = link.seg;
    cr_expect_eq(as_user(NOBODY, NOBODY, open_only, &j), 0, "%s", rep->msg);
}

/* ---- the lock ------------------------------------------------------------------------------ */

struct holder {
    const char *log;
    int go[2];    /* the holder (and its fork child) wait for a byte here */
    int ready[2]; /* ... after writing one here */
};

/* hold_log -- open the log, say ready, wait; with fork_too, fork a child that outlives us */
static int hold_log(struct holder *h, int fork_too)
{
    struct job j = {.log = h->log};
    if (init_log(&j))
        return 1;
    if (fork_too) {
        pid_t c = fork();
        if (c == 0) {
            /* ready from the child: fork has returned here, so the library's fork handler
             * has run (until then the child shares the holder's open log and its lock) */
            char b;
            if (write(h->ready[1], "r", 1) != 1 || read(h->go[0], &b, 1) < 0)
                _exit(2);
            _exit(0);
        }
        return c > 0 ? 0 : 3; /* leave at once, the child stays */
    }
    char b;
    if (write(h->ready[1], "r", 1) != 1 || read(h->go[0], &b, 1) < 0)
        return 3;
    return 0;
}

static int hold_plain(void *arg)
{
    return hold_log(arg, 0);
}
static int hold_and_fork(void *arg)
{
    return hold_log(arg, 1);
}

/* A log open in one process is refused to another with the holder's pid. */
Test(trust, open_log_is_in_use_by_pid)
{
    struct holder h = {.log = path_in("seg.log")};
    make_log(h.log, geteuid(), getegid(), 0600);
    cr_assert_eq(pipe(h.go), 0);
    cr_assert_eq(pipe(h.ready), 0);
    pid_t p = fork();
    if (p == 0)
        _exit(hold_plain(&h));
    char b;
    cr_assert_eq(read(h.ready[0], &b, 1), 1);
    struct job j = {.log = h.log};
    cr_expect_eq(as_user(0, 0, open_only, &j), 1, "a second process opened the log");
    char want[64];
    snprintf(want, sizeof(want), "is in use by pid %d", (int)p);
    cr_expect(strstr(rep->msg, want) && strstr(rep->msg, h.log), "%s", rep->msg);
    cr_assert_eq(write(h.go[1], "g", 1), 1);
    int st;
    waitpid(p, &st, 0);
    cr_expect_eq(as_user(0, 0, open_only, &j), 0, "after the holder exited: %s", rep->msg);
}

/* A fork child of the log's holder must not keep the lock once the holder is gone (nor write
 * the log): the next start is not refused while the child lives on. */
Test(trust, fork_child_does_not_keep_the_lock)
{
    struct holder h = {.log = path_in("seg.log")};
    make_log(h.log, geteuid(), getegid(), 0600);
    cr_assert_eq(pipe(h.go), 0);
    cr_assert_eq(pipe(h.ready), 0);
    pid_t p = fork();
    if (p == 0)
        _exit(hold_and_fork(&h));
    char b;
    cr_assert_eq(read(h.ready[0], &b, 1), 1);
    int st;
    cr_assert_eq(waitpid(p, &st, 0), p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct job j = {.log = h.log};
    cr_expect_eq(as_user(0, 0, open_only, &j), 0, "the fork child kept the log: %s", rep->msg);
    cr_assert_eq(write(h.go[1], "g", 1), 1); /* let the grandchild go */
}

/* ---- rvmutl against a live writer ------------------------------------------------------- */

/* run_rvmutl -- `rvmutl cmd log`, its exit status; stdout and stderr into out */
static int run_rvmutl(const char *cmd, const char *log, char *out, size_t outlen)
{
    const char *utl = getenv("LRVM_TEST_RVMUTL");
    cr_assert(utl != NULL, "LRVM_TEST_RVMUTL is not set (meson sets it)");
    const char *capture = path_in("rvmutl.out");
    fflush(NULL);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        int fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(98);
        execl(utl, "rvmutl", cmd, log, (char *)NULL);
        _exit(97);
    }
    int st;
    cr_assert_eq(waitpid(p, &st, 0), p);
    memset(out, 0, outlen);
    int fd = open(capture, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, out, outlen - 1);
        (void)n;
        close(fd);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct writer {
    const char *log, *seg;
    int cmd[2], ack[2];
};

/* writer_run -- a program with the log open: each byte on cmd commits counter+1 (flush) and
 * acknowledges the new value on ack, as a program tells its client "done" */
static int writer_run(struct writer *w)
{
    struct job j = {.log = w->log};
    if (init_log(&j))
        return 1;
    rvm_region_t r;
    rvm_init_region(&r);
    r.data_dev = (char *)w->seg;
    r.length = SEG_LEN;
    if (rvm_map(&r, NULL) != RVM_SUCCESS)
        return 2;
    uint64_t *ctr = (uint64_t *)r.vmaddr;
    char b;
    while (read(w->cmd[0], &b, 1) == 1) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        if (rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS ||
            rvm_set_range(&tid, ctr, sizeof(*ctr)) != RVM_SUCCESS)
            return 3;
        (*ctr)++;
        if (rvm_end_transaction(&tid, flush) != RVM_SUCCESS)
            return 4;
        if (write(w->ack[1], ctr, sizeof(*ctr)) != (ssize_t)sizeof(*ctr))
            return 5;
    }
    return 0;
}

/* commit_n -- ask the writer for n commits; the last acknowledged value */
static uint64_t commit_n(struct writer *w, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(write(w->cmd[1], "c", 1), 1);
        cr_assert_eq(read(w->ack[0], &v, sizeof(v)), (ssize_t)sizeof(v));
    }
    return v;
}

/* rvmutl recover/truncate on the log of a running program used to reset it under the writer:
 * commits acknowledged afterwards were gone at the next start. Now every rvmutl command is
 * refused with the writer's pid, and every acknowledged commit survives a SIGKILL. */
Test(trust, rvmutl_against_a_live_writer)
{
    struct writer w = {.log = path_in("seg.log"), .seg = path_in("seg")};
    make_log(w.log, geteuid(), getegid(), 0600);
    make_file(w.seg, 0, geteuid(), getegid(), 0600);
    cr_assert_eq(pipe(w.cmd), 0);
    cr_assert_eq(pipe(w.ack), 0);
    fflush(NULL);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0)
        _exit(writer_run(&w));
    cr_assert_eq(commit_n(&w, 3), 3);
    char out[4096], want[64];
    snprintf(want, sizeof(want), "is in use by pid %d", (int)p);
    static const char *const cmds[] = {"recover", "truncate", "status", "verify"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        cr_expect_eq(run_rvmutl(cmds[i], w.log, out, sizeof(out)), 1,
                     "rvmutl %s ran on a live log: %s", cmds[i], out);
        cr_expect(strstr(out, want) != NULL, "rvmutl %s: %s", cmds[i], out);
    }
    uint64_t acked = commit_n(&w, 2);
    cr_assert_eq(acked, 5);
    kill(p, SIGKILL);
    int st;
    waitpid(p, &st, 0);
    cr_expect_eq(run_rvmutl("recover", w.log, out, sizeof(out)), 0, "%s", out);
    uint64_t v = 0;
    cr_assert_eq(file_read(w.seg, &v, sizeof(v), 0), 0);
    cr_expect_eq(v, acked, "acknowledged %llu, the segment holds %llu after recovery",
                 (unsigned long long)acked, (unsigned long long)v);
}
