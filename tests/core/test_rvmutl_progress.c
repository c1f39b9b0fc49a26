/* SPDX-License-Identifier: MIT */
/*
 * test_rvmutl_progress.c -- `rvmutl recover` shows its progress line (bytes applied / total,
 * rate, rewritten with \r) when standard error is a terminal, and prints nothing on standard
 * error when it is a pipe. The terminal is a pseudo-terminal (forkpty). LRVM_TEST_RVMUTL from
 * meson.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <rvm/rvm.h>

#define SEG_LEN (1u << 20)

static char dir[64], logp[128], segp[128];

/* make_log -- a segment and a log holding committed, unapplied records (a killed writer) */
static void make_log(void)
{
    snprintf(dir, sizeof(dir), "/tmp/lrvm-progress-XXXXXX");
    cr_assert_neq(mkdtemp(dir), NULL);
    snprintf(logp, sizeof(logp), "%s/log", dir);
    snprintf(segp, sizeof(segp), "%s/seg", dir);
    int fd = open(segp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && ftruncate(fd, SEG_LEN) == 0);
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        rvm_options_t o;
        rvm_init_options(&o);
        o.log_dev = logp;
        o.truncate = 0;
        rvm_offset_t len = RVM_MK_OFFSET(0, 4u << 20);
        rvm_region_t rg;
        rvm_init_region(&rg);
        rg.data_dev = segp;
        if (rvm_create_log(&o, &len, 0600) != RVM_SUCCESS || RVM_INIT(&o) != RVM_SUCCESS ||
            rvm_map(&rg, NULL) != RVM_SUCCESS)
            _exit(10);
        for (int t = 0; t < 16; t++) {
            rvm_tid_t tid;
            rvm_init_tid(&tid);
            char *p = rg.vmaddr + (size_t)t * 65536;
            if (rvm_begin_transaction(&tid, no_restore) != RVM_SUCCESS ||
                rvm_set_range(&tid, p, 60000) != RVM_SUCCESS)
                _exit(11);
            memset(p, 'a' + t, 60000);
            if (rvm_end_transaction(&tid, flush) != RVM_SUCCESS)
                _exit(12);
        }
        _exit(0); /* no rvm_terminate: the records stay in the log */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer status %#x", st);
}

static void cleanup(void)
{
    unlink(logp);
    unlink(segp);
    rmdir(dir);
}

/* read_all -- everything from fd until end of file (or EIO: the pty's other side closed) */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    buf[n] = 0;
    return n;
}

static const char *rvmutl_bin(void)
{
    const char *bin = getenv("LRVM_TEST_RVMUTL");
    cr_assert(bin && *bin, "LRVM_TEST_RVMUTL not set: run through meson test");
    return bin;
}

Test(rvmutl_progress, terminal_shows_progress)
{
    const char *bin = rvmutl_bin();
    make_log();
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, "rvmutl", "recover", logp, (char *)NULL);
        _exit(127);
    }
    static char out[65536];
    read_all(master, out, sizeof(out));
    close(master);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rvmutl status %#x: %s", st, out);
    cr_expect_neq(strstr(out, "\rrvmutl: applying the log: "), NULL, "no progress line: %s", out);
    cr_expect_neq(strstr(out, " MB (100%), "), NULL, "no final figures: %s", out);
    cr_expect_neq(strstr(out, " MB/s"), NULL, "no rate: %s", out);
    cleanup();
}

Test(rvmutl_progress, pipe_stays_quiet)
{
    const char *bin = rvmutl_bin();
    make_log();
    int err[2], outp[2];
    cr_assert(pipe(err) == 0 && pipe(outp) == 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(outp[1], 1);
        dup2(err[1], 2);
        close(err[0]);
        close(outp[0]);
        execl(bin, "rvmutl", "recover", logp, (char *)NULL);
        _exit(127);
    }
    close(err[1]);
    close(outp[1]);
    static char e[4096], o[4096];
    size_t ne = read_all(err[0], e, sizeof(e));
    read_all(outp[0], o, sizeof(o));
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rvmutl status %#x: %s", st, e);
    cr_expect_eq(ne, 0, "standard error is a pipe, yet rvmutl wrote: %s", e);
    cr_expect_neq(strstr(o, "recovered"), NULL, "stdout: %s", o);
    cleanup();
}
