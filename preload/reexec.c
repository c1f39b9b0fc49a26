/* SPDX-License-Identifier: MIT */
/*
 * reexec.c -- the shim used directly (LD_PRELOAD, without lrvm-run) with globals kept: run the
 * program once more, from the start, with address-space randomisation off.
 *
 * Why: pointers in the restored globals (and in the heap) into the executable, its libraries
 * and their data are only right if everything is loaded where it was when they were committed.
 * lrvm-run sets ADDR_NO_RANDOMIZE before it execs the program; here we are already running at
 * random addresses, so we set the personality and execve /proc/self/exe with the same argv
 * and environment. This runs in init.c before the segment is opened or locked: nothing of ours
 * has happened yet, the new image starts clean.
 *
 * Loop guard: the personality survives execve, so the new image finds ADDR_NO_RANDOMIZE set and
 * does not re-exec. If the kernel (seccomp, a container) refuses the personality, or the flag
 * does not stick, we go on at random addresses; opening a segment whose recorded load base
 * differs is then refused (image.c) -- never a restore into the wrong addresses.
 *
 * argv: we may be inside the first malloc, before our constructor (which has no argv anyway):
 * /proc/self/cmdline holds the original arguments, NUL separated. Buffers are mmap'ed: malloc is
 * not available here.
 *
 * Side effect (as with lrvm-run): programs this one execs inherit the personality, i.e. also run
 * without randomisation.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <unistd.h>

extern char **environ;

#define CMDLINE_MAX ((size_t)2 << 20)

/* test_hook -- LRVM_TEST_NO_PERSONALITY=1 behaves as if the kernel refused the personality
 * (what seccomp does); like the AT_SECURE hook it can only make the shim do less */
static int test_hook(void)
{
    for (char **e = environ; e && *e; e++)
        if (strcmp(*e, "LRVM_TEST_NO_PERSONALITY=1") == 0)
            return 1;
    return 0;
}

/* read_cmdline -- /proc/self/cmdline into an mmap'ed buffer; its length or -1 */
static ssize_t read_cmdline(char **out)
{
    char *buf = mmap(NULL, CMDLINE_MAX, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (buf == MAP_FAILED)
        return -1;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = 0, r = 0;
    while (fd >= 0 && (size_t)n < CMDLINE_MAX - 1 &&
           (r = read(fd, buf + n, CMDLINE_MAX - 1 - (size_t)n)) > 0)
        n += r;
    if (fd >= 0)
        close(fd);
    if (fd < 0 || r < 0 || n == 0 || (size_t)n >= CMDLINE_MAX - 1) {
        munmap(buf, CMDLINE_MAX);
        return -1;
    }
    buf[n] = 0;
    *out = buf;
    return n;
}

int shim_reexec_norandom(void)
{
    int pers = personality(0xffffffff);
    if (pers == -1 || (pers & ADDR_NO_RANDOMIZE))
        return 0; /* already off (lrvm-run, setarch -R, or we re-exec'ed), or unknowable */
    if (test_hook() || personality((unsigned long)pers | ADDR_NO_RANDOMIZE) == -1)
        return 0;
    int now = personality(0xffffffff);
    if (now == -1 || !(now & ADDR_NO_RANDOMIZE))
        return 0;
    char *cmd;
    ssize_t n = read_cmdline(&cmd);
    size_t argc = 0;
    for (ssize_t i = 0; n > 0 && i < n; i++)
        argc += cmd[i] == 0;
    if (n > 0 && cmd[n - 1] != 0)
        argc++;
    char **argv = n > 0 ? mmap(NULL, (argc + 1) * sizeof(char *), PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                        : MAP_FAILED;
    if (argv != MAP_FAILED) {
        size_t k = 0;
        for (ssize_t i = 0; i < n && k < argc; k++) {
            argv[k] = cmd + i;
            i += (ssize_t)strlen(cmd + i) + 1;
        }
        argv[k] = NULL;
        execve("/proc/self/exe", argv, environ);
    }
    int err = argv == MAP_FAILED ? ENOMEM : errno;
    personality((unsigned long)pers);
    shim_say(2,
             "LRVM_GLOBALS: cannot re-execute the program with address-space randomisation "
             "off (",
             strerror(err), "); going on at random addresses: run it with lrvm-run", NULL);
    return 0;
}
