/* SPDX-License-Identifier: MIT */
/*
 * measure.c -- run one program and report its wall time, CPU time and peak RSS, measured from
 * outside: fork, exec, wait4. ru_maxrss of wait4 is the child's own high-water mark (the
 * kernel's, in KiB), so it counts everything the allocator touched (its metadata, the shim's
 * twins and snapshots, liblrvm's buffers) and nothing of this runner.
 *
 * Usage: measure [-i IN] [-o OUT] [-e NAME=VALUE]... -- PROGRAM [ARGS...]
 *   -i  stdin from IN (default /dev/null)
 *   -o  stdout to OUT (default /dev/null); stderr is inherited
 *   -e  set NAME=VALUE in the child only (LD_PRELOAD must not apply to this runner)
 * Prints one line: "wall_s=W user_s=U sys_s=S maxrss_kb=K status=X" (X: exit code, or
 * "sig=N"). Exit status: 0 if the child exited 0, else 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* now_s -- monotonic seconds */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* redirect -- open path and dup it onto fd in the child; exits 127 with a message on failure */
static void redirect(const char *path, int flags, int fd)
{
    int f = open(path, flags, 0644);
    if (f < 0 || dup2(f, fd) < 0) {
        fprintf(stderr, "measure: %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(f);
}

int main(int argc, char **argv)
{
    const char *in = "/dev/null", *out = "/dev/null";
    char *envs[64];
    int nenv = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "-i") == 0)
            in = argv[++i];
        else if (strcmp(argv[i], "-o") == 0)
            out = argv[++i];
        else if (strcmp(argv[i], "-e") == 0 && nenv < 64 && strchr(argv[i + 1], '='))
            envs[nenv++] = argv[++i];
        else
            break;
    }
    if (i + 1 >= argc || strcmp(argv[i], "--") != 0) {
        fprintf(stderr,
                "usage: measure [-i IN] [-o OUT] [-e NAME=VALUE]... -- PROGRAM [ARGS...]\n");
        return 2;
    }
    char **cmd = argv + i + 1;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "measure: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        redirect(in, O_RDONLY, 0);
        redirect(out, O_WRONLY | O_CREAT | O_TRUNC, 1);
        for (int k = 0; k < nenv; k++)
            putenv(envs[k]);
        execvp(cmd[0], cmd);
        fprintf(stderr, "measure: %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
            return 2;
        }
    double wall = now_s() - t0;
    char sts[32];
    if (WIFEXITED(st))
        snprintf(sts, sizeof(sts), "%d", WEXITSTATUS(st));
    else
        snprintf(sts, sizeof(sts), "sig=%d", WTERMSIG(st));
    printf("wall_s=%.4f user_s=%.4f sys_s=%.4f maxrss_kb=%ld status=%s\n", wall,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss, sts);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
