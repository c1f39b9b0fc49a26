/* SPDX-License-Identifier: MIT */
/*
 * loglock.c -- the advisory lock on a log file (see loglock.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "loglock.h"

static int watched_fd = -1; /* the library's locked log descriptor, replaced in fork children */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* fork_child -- in a fork child: swap the log descriptor for an O_PATH one of "/". Reads and
 * writes through it fail (EBADF), so nothing the child does can reach its parent's log, and
 * the child's share of the lock is gone: the lock now lives exactly as long as the parent's
 * descriptor. (Closing the number instead would let a later open reuse it for an unrelated
 * file that a stray log write would then damage.) Only async-signal-safe calls. */
static void fork_child(void)
{
    int fd = __atomic_load_n(&watched_fd, __ATOMIC_ACQUIRE);
    if (fd < 0)
        return;
    int inert = open("/", O_PATH | O_CLOEXEC);
    if (inert >= 0) {
        dup3(inert, fd, O_CLOEXEC);
        close(inert);
    }
}

/* fork_register -- install the child handler once */
static void fork_register(void)
{
    pthread_atfork(NULL, NULL, fork_child);
}

/* loglock_holder -- the pid that took a flock on fd's file, 0 if unknown. /proc/locks lines
 * look like
 * "3: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF"; waiters ("3: -> FLOCK ...") are skipped. */
static pid_t loglock_holder(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (f == NULL)
        return 0;
    char line[256];
    pid_t found = 0;
    while (found == 0 && fgets(line, sizeof(line), f) != NULL) {
        char type[16];
        long pid;
        unsigned maj, min;
        unsigned long ino;
        if (strstr(line, "->") != NULL)
            continue;
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &pid, &maj, &min, &ino) == 5 &&
            strcmp(type, "FLOCK") == 0 && maj == major(st.st_dev) && min == minor(st.st_dev) &&
            ino == (unsigned long)st.st_ino && pid > 0)
            found = (pid_t)pid;
    }
    fclose(f);
    return found;
}

/* How long a lock whose taker has exited is waited for (see loglock_flock in loglock.h). */
#define INHERITED_WAIT_MS 5000
#define INHERITED_POLL_MS 10

/* taker_alive -- whether the process /proc/locks names as the lock's taker still runs (a
 * process of another user answers EPERM, and runs) */
static int taker_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* loglock_flock -- see loglock.h */
int loglock_flock(int fd, int op, pid_t *holder)
{
    *holder = 0;
    for (int waited = 0;; waited += INHERITED_POLL_MS) {
        if (flock(fd, op | LOCK_NB) == 0)
            return 0;
        int e = errno;
        if (e != EWOULDBLOCK)
            return e;
        pid_t pid = loglock_holder(fd);
        if (taker_alive(pid)) {
            *holder = pid;
            return e;
        }
        if (waited >= INHERITED_WAIT_MS)
            return e;
        struct timespec ts = {0, INHERITED_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* loglock_take -- see loglock.h */
int loglock_take(int fd, const char *path, int exclusive, char *why, size_t whylen)
{
    pid_t pid;
    int e = loglock_flock(fd, exclusive ? LOCK_EX : LOCK_SH, &pid);
    if (e != 0) {
        if (e != EWOULDBLOCK) {
            snprintf(why, whylen, "cannot lock log %s: %s", path, strerror(e));
            return e;
        }
        char who[48];
        if (pid > 0)
            snprintf(who, sizeof(who), "pid %ld", (long)pid);
        else
            snprintf(who, sizeof(who), "another process");
        snprintf(why, whylen,
                 "log %s is in use by %s (a program running with it, rvmutl, or a child a "
                 "program forked without exec); wait for it to finish or stop it, then try again",
                 path, who);
        return e;
    }
    if (exclusive) {
        pthread_once(&fork_once, fork_register);
        __atomic_store_n(&watched_fd, fd, __ATOMIC_RELEASE);
    }
    return 0;
}

/* loglock_forget -- see loglock.h */
void loglock_forget(int fd)
{
    int expect = fd;
    __atomic_compare_exchange_n(&watched_fd, &expect, -1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
