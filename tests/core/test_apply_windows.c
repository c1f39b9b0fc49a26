/* SPDX-License-Identifier: MIT */
/*
 * test_apply_windows.c -- truncation/recovery of one record whose ranges fall into more than
 * 128 windows of 1 MiB (apply.c's window table grows and rehashes): every range must reach
 * its own offset. Before the fix, pieces kept the hash slot of their window across a rehash
 * and recovery wrote (or crashed copying) ranges into the wrong window; a restart of a shim
 * heap with 256 MiB committed at exit hit it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <rvm/rvm.h>

#define NWIN 200 /* windows touched: > 128 forces two rehashes */
#define SEG_LEN ((size_t)(NWIN + 1) << 20)

static char dir[64], logp[128], segp[128];

/* open_rvm -- rvm_initialize (recovery) with a 4 MiB log, created if absent */
static int open_rvm(void)
{
    rvm_options_t o;
    rvm_init_options(&o);
    o.log_dev = logp;
    if (access(logp, F_OK) != 0) {
        rvm_offset_t len = RVM_MK_OFFSET(0, 4 << 20);
        if (rvm_create_log(&o, &len, 0600) != RVM_SUCCESS)
            return -1;
    }
    return RVM_INIT(&o) == RVM_SUCCESS ? 0 : -1;
}

/* writer -- one transaction with one 3-byte range per MiB, committed, then die unclean */
static int writer(void)
{
    if (open_rvm() != 0)
        return 10;
    rvm_region_t rg;
    rvm_init_region(&rg);
    rg.data_dev = segp;
    rg.no_copy = rvm_true; /* the segment is zeros: no need to read 200 MiB */
    if (rvm_map(&rg, NULL) != RVM_SUCCESS)
        return 11;
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
        return 12;
    for (unsigned i = 0; i < NWIN; i++) {
        char *p = rg.vmaddr + ((size_t)i << 20) + i * 8;
        if (rvm_set_range(&t, p, 3) != RVM_SUCCESS)
            return 13;
        p[0] = 'w';
        p[1] = (char)(i & 0xff);
        p[2] = (char)(i >> 8);
    }
    if (rvm_end_transaction(&t, flush) != RVM_SUCCESS)
        return 14;
    return 0; /* no rvm_terminate: the record is only in the log */
}

Test(apply_windows, record_over_200_windows_recovers)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-apply-win-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, (off_t)SEG_LEN) == 0);
    close(fd);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(writer());
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer failed at step %d",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) /* recovery applies the record */
        _exit(open_rvm() == 0 && rvm_terminate() == RVM_SUCCESS ? 0 : 1);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "recovery failed (exit %d, signal %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    fd = open(segp, O_RDONLY);
    cr_assert_geq(fd, 0);
    for (unsigned i = 0; i < NWIN; i++) {
        unsigned char b[5];
        off_t at = (off_t)(((size_t)i << 20) + i * 8) - 1;
        cr_assert_eq(pread(fd, b, 5, at > 0 ? at : 0), 5);
        const unsigned char *v = at > 0 ? b + 1 : b;
        cr_assert(v[0] == 'w' && v[1] == (i & 0xff) && v[2] == (i >> 8),
                  "range %u is not at its offset after recovery", i);
        if (at > 0)
            cr_assert(b[0] == 0 && b[4] == 0, "range %u: bytes around it changed", i);
    }
    close(fd);
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}
