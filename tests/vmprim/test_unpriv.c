/* SPDX-License-Identifier: MIT */
/*
 * test_unpriv.c -- userfaultfd routes: unprivileged use (UFFD_USER_MODE_ONLY works even with
 * vm.unprivileged_userfaultfd=0) and a clean fall-back when userfaultfd is not permitted.
 * Each test forks a child that drops to uid/gid 65534 (so it needs root; skipped otherwise)
 * and reports through its exit status; no Criterion asserts run in the child.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* drop_privileges -- become nobody, as a program started by an ordinary user would be
 * (including dumpable: after setuid the kernel marks us non-dumpable, which would make
 * /proc/self/pagemap root-owned -- not the situation we want to test); 0 or -1 */
static int drop_privileges(void)
{
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        return -1;
    return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

/* deny_userfaultfd -- seccomp: userfaultfd(2) fails with EPERM, as under a strict sandbox */
static int deny_userfaultfd(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* run_child -- fork, run fn in the child, return its exit status (or 100 + signal) */
static int run_child(int (*fn)(void))
{
    if (geteuid() != 0)
        cr_skip_test("needs root to drop to an unprivileged user");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(fn());
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

/* child_unprivileged -- as nobody: the best uffd backend is still usable and tracks writes */
static int child_unprivileged(void)
{
    if (drop_privileges() != 0)
        return 10;
    char why[256];
    vmp_backend_t want = VMP_BACKEND_WP_ASYNC;
    if (vmp_backend_probe(want, why, sizeof(why)) != 0) {
        fprintf(stderr, "unprivileged wp-async probe: %s\n", why);
        return 11;
    }
    vmp_dirty_t *t;
    if (vmp_dirty_create(NULL, &t) != 0 || vmp_dirty_backend(t) != want)
        return 12;
    size_t ps = vmp_page_size();
    char *m = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || vmp_dirty_arm(t, m, 8 * ps) != 0)
        return 13;
    m[3 * ps] = 1;
    void *pages[8];
    size_t n;
    int more;
    if (vmp_dirty_collect(t, pages, 8, &n, &more) != 0 || n != 1 || pages[0] != m + 3 * ps)
        return 14;
    vmp_dirty_destroy(t);
    return 0;
}

Test(unpriv, userfaultfd_user_mode_only_works_unprivileged)
{
    char why[256];
    /* probing here would be cached for this process only; the child probes afresh */
    int rc = run_child(child_unprivileged);
    if (rc == 11 && vmp_backend_probe(VMP_BACKEND_WP_ASYNC, why, sizeof(why)) != 0)
        cr_skip_test("wp-async unavailable even as root: %s", why);
    cr_assert_eq(rc, 0, "unprivileged child failed at step %d", rc);
}

/* child_denied -- userfaultfd denied: AUTO falls back to mprotect and says why; an explicit
 * uffd backend is refused with EPERM */
static int child_denied(void)
{
    if (drop_privileges() != 0 || deny_userfaultfd() != 0)
        return 10;
    char why[512];
    if (vmp_backend_probe(VMP_BACKEND_WP_ASYNC, why, sizeof(why)) != EPERM)
        return 11;
    if (strstr(why, "not permitted") == NULL)
        return 12;
    vmp_dirty_t *t;
    vmp_dirty_opts_t o = {.backend = VMP_BACKEND_UFFD_SIGBUS};
    if (vmp_dirty_create(&o, &t) != EPERM || t != NULL)
        return 13;
    if (vmp_dirty_create(NULL, &t) != 0 || vmp_dirty_backend(t) != VMP_BACKEND_MPROTECT)
        return 14;
    if (strstr(vmp_dirty_reason(t), "wp-async unavailable") == NULL ||
        strstr(vmp_dirty_reason(t), "uffd-sigbus unavailable") == NULL)
        return 15;
    size_t ps = vmp_page_size();
    char *m = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || vmp_dirty_arm(t, m, 8 * ps) != 0)
        return 16;
    m[5 * ps] = 1;
    void *pages[8];
    size_t n;
    int more;
    if (vmp_dirty_collect(t, pages, 8, &n, &more) != 0 || n != 1 || pages[0] != m + 5 * ps)
        return 17;
    vmp_dirty_destroy(t);
    return 0;
}

Test(unpriv, falls_back_when_userfaultfd_denied)
{
    int rc = run_child(child_denied);
    cr_assert_eq(rc, 0, "denied child failed at step %d", rc);
}
