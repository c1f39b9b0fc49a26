/* SPDX-License-Identifier: MIT */
/*
 * core_test.h -- shared helpers of the core test suite (tests/core).
 *
 * Every test gets a fresh temporary directory (tdir_make) so tests never see each other's logs
 * or segments. rvm_initialize() can run only once per process (after rvm_terminate() it returns
 * RVM_EINIT), so anything that needs "a fresh process" -- recovery after a crash above all --
 * runs in a fork()ed child (proc_run) that reports back through its exit status and, where it
 * must hand over bytes, through a MAP_SHARED buffer. Children leave with _exit() so Criterion's
 * atexit machinery in the test process is never run twice.
 */
#ifndef LRVM_TESTS_CORE_TEST_H
#define LRVM_TESTS_CORE_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rvm/rvm.h>

/* test_scale -- LRVM_TEST_SCALE (default 1): multiplies torture sizes. */
static inline long test_scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    long v = s ? strtol(s, NULL, 10) : 1;
    return v > 0 ? v : 1;
}

/* tdir_make -- create a fresh temporary directory; returns its path in buf. */
static inline void tdir_make(char *buf, size_t len, const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/lrvm-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(buf)) {
        fprintf(stderr, "tdir_make: mkdtemp(%s): %s\n", buf, strerror(errno));
        abort();
    }
}

/* tdir_remove -- remove a test directory and the plain files in it (best effort). */
static inline void tdir_remove(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tdir_remove: could not remove %s\n", dir);
}

/* file_make -- create a file of len bytes filled with byte value fill (0600). 0 or errno. */
static inline int file_make(const char *path, size_t len, int fill)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return errno;
    char buf[4096];
    memset(buf, fill, sizeof buf);
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < sizeof buf ? len - done : sizeof buf;
        ssize_t w = write(fd, buf, n);
        if (w <= 0) {
            int e = errno ? errno : EIO;
            close(fd);
            return e;
        }
        done += (size_t)w;
    }
    close(fd);
    return 0;
}

/* file_size -- size of a file in bytes, -1 if it cannot be stat'ed. */
static inline long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* file_read -- read len bytes at off into buf; 0 or errno (EIO on short read). */
static inline int file_read(const char *path, void *buf, size_t len, off_t off)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno;
    ssize_t r = pread(fd, buf, len, off);
    int e = r < 0 ? errno : (size_t)r != len ? EIO : 0;
    close(fd);
    return e;
}

/* file_write -- write len bytes from buf at off; 0 or errno. */
static inline int file_write(const char *path, const void *buf, size_t len, off_t off)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return errno;
    ssize_t w = pwrite(fd, buf, len, off);
    int e = w < 0 ? errno : (size_t)w != len ? EIO : 0;
    close(fd);
    return e;
}

/* file_slurp -- read a whole file into a malloc'ed buffer; NULL on error. */
static inline unsigned char *file_slurp(const char *path, size_t *len)
{
    long long sz = file_size(path);
    if (sz < 0)
        return NULL;
    unsigned char *p = malloc(sz ? (size_t)sz : 1);
    if (p && file_read(path, p, (size_t)sz, 0) != 0) {
        free(p);
        return NULL;
    }
    *len = (size_t)sz;
    return p;
}

/* file_spit -- replace a file's whole contents with buf[0..len); 0 or errno. */
static inline int file_spit(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return errno;
    ssize_t w = write(fd, buf, len);
    int e = w < 0 ? errno : (size_t)w != len ? EIO : 0;
    close(fd);
    return e;
}

/* shared_alloc -- zeroed memory shared with forked children (results come back through it). */
static inline void *shared_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * proc_run -- run fn(arg) in a forked child and return its wait status. The child's return
 * value becomes its exit code (use small distinct codes to say what failed).
 */
static inline int proc_run(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(fn(arg));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return st;
}

/* proc_describe -- human-readable wait status (for assertion messages). */
static inline const char *proc_describe(int st, char *buf, size_t len)
{
    if (st == -1)
        snprintf(buf, len, "fork/wait failed");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit code %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, len, "status 0x%x", st);
    return buf;
}

/* Deterministic RNG (splitmix64): parent and child regenerate identical workloads from a seed. */
typedef struct {
    uint64_t s;
} trng_t;

/* trng_next -- next 64 random bits. */
static inline uint64_t trng_next(trng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* trng_below -- uniform-ish value in [0, n). */
static inline uint64_t trng_below(trng_t *r, uint64_t n)
{
    return n ? trng_next(r) % n : 0;
}

/*
 * rvmt_options -- an initialised options record naming log_dev (NULL for none). The record
 * keeps pointing at the caller's string, as LRVM's does.
 */
static inline void rvmt_options(rvm_options_t *o, char *log_dev)
{
    rvm_init_options(o);
    o->log_dev = log_dev;
}

/* rvmt_region -- an initialised region record for data_dev at offset off, length len. */
static inline void rvmt_region(rvm_region_t *r, char *data_dev, rvm_length_t off, rvm_length_t len,
                               char *vmaddr)
{
    rvm_init_region(r);
    r->data_dev = data_dev;
    r->offset = RVM_MK_OFFSET(0, off);
    r->length = len;
    r->vmaddr = vmaddr;
}

/* rvmt_create_log -- create a log file of (about) len bytes at path; RVM code. */
static inline rvm_return_t rvmt_create_log(char *path, rvm_length_t len)
{
    rvm_options_t o;
    rvmt_options(&o, path);
    rvm_offset_t l = RVM_MK_OFFSET(0, len);
    return rvm_create_log(&o, &l, 0600);
}

/* rvmt_init -- rvm_initialize with log_dev = log (NULL: no log) and flags; RVM code. */
static inline rvm_return_t rvmt_init(char *log, rvm_length_t flags, long truncate)
{
    rvm_options_t o;
    rvmt_options(&o, log);
    o.flags = flags;
    o.truncate = truncate;
    return rvm_initialize(RVM_VERSION, &o);
}

/*
 * rvmt_init_create -- rvm_initialize that first creates the log at path (log_len bytes of
 * records) through the create_log_file option, as a program setting up a fresh store does.
 */
static inline rvm_return_t rvmt_init_create(char *log, rvm_length_t log_len, rvm_length_t flags,
                                            long truncate)
{
    rvm_options_t o;
    rvmt_options(&o, log);
    o.flags = flags;
    o.truncate = truncate;
    o.create_log_file = rvm_true;
    o.create_log_size = RVM_MK_OFFSET(0, log_len);
    o.create_log_mode = 0600;
    return rvm_initialize(RVM_VERSION, &o);
}

/* Paths of one test's files, under a fresh directory (fixture state of every test file). */
typedef struct {
    char dir[256];
    char log[300];
    char seg[300];
    char seg2[300];
} tpaths_t;

/* tpaths_make -- fresh directory plus the conventional file names in it. */
static inline void tpaths_make(tpaths_t *t, const char *tag)
{
    tdir_make(t->dir, sizeof t->dir, tag);
    snprintf(t->log, sizeof t->log, "%s/log", t->dir);
    snprintf(t->seg, sizeof t->seg, "%s/seg", t->dir);
    snprintf(t->seg2, sizeof t->seg2, "%s/seg2", t->dir);
}

#endif
