/* SPDX-License-Identifier: MIT */
/*
 * util.c -- helpers shared by every driver of the core benchmark: clock, PRNG, per-process I/O
 * counters, percentiles, file preallocation, and running one measurement in a child process.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* bench_now -- monotonic time in seconds. */
double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* bench_rand -- xorshift64*: cheap, deterministic, identical sequence for every system. */
uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int io_parse(double *wbytes, double *rchar, double *dev_rbytes, double *wchar,
                    double *syscw);

/*
 * bench_io_read -- this process's /proc/self/io counters.
 * write_bytes is charged when a page-cache page is first dirtied (or at submission for
 * O_DIRECT), to the process that dirtied it: it counts what this process will send to the
 * device, page-granular, and nothing from the other users of this shared disk (which
 * /sys/block/<dev>/stat would mix in). It does not count the file system's own journal writes
 * (done by jbd2). rchar counts bytes returned by read-family calls (page cache or not);
 * read_bytes counts bytes actually fetched from the device. Any pointer may be NULL.
 */
int bench_io_read(double *wbytes, double *rchar, double *dev_rbytes)
{
    return io_parse(wbytes, rchar, dev_rbytes, NULL, NULL);
}

/* bench_io_mark -- start counting write-family calls (syscw) and the bytes passed to them
 * (wchar): what a durable commit costs in system calls, whatever reaches the device. */
void bench_io_mark(struct bench_res *res)
{
    io_parse(NULL, NULL, NULL, &res->wchar, &res->syscw);
}

/* bench_io_delta -- turn the counters saved by bench_io_mark into the amounts since then. */
void bench_io_delta(struct bench_res *res)
{
    double wc = res->wchar, sc = res->syscw;

    io_parse(NULL, NULL, NULL, &wc, &sc);
    res->wchar = wc - res->wchar;
    res->syscw = sc - res->syscw;
}

/* io_parse -- read the named /proc/self/io counters (NULL = not wanted). */
static int io_parse(double *wbytes, double *rchar, double *dev_rbytes, double *wchar, double *syscw)
{
    char buf[1024];
    ssize_t got;
    int fd = open("/proc/self/io", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno;
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (got <= 0)
        return EIO;
    buf[got] = '\0';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long long v;
        char key[32];

        if (sscanf(line, "%31[^:]: %llu", key, &v) != 2)
            continue;
        if (wbytes && strcmp(key, "write_bytes") == 0)
            *wbytes = (double)v;
        if (rchar && strcmp(key, "rchar") == 0)
            *rchar = (double)v;
        if (dev_rbytes && strcmp(key, "read_bytes") == 0)
            *dev_rbytes = (double)v;
        if (wchar && strcmp(key, "wchar") == 0)
            *wchar = (double)v;
        if (syscw && strcmp(key, "syscw") == 0)
            *syscw = (double)v;
    }
    return 0;
}

/* cmp_double -- qsort order for latencies. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* bench_pct -- p50 and p99 of n samples (sorts them in place). */
int bench_pct(double *samples, long n, double *p50, double *p99)
{
    if (n <= 0)
        return EINVAL;
    qsort(samples, (size_t)n, sizeof(double), cmp_double);
    *p50 = samples[n / 2];
    *p99 = samples[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    return 0;
}

/* bench_fail -- record a failure (rc and a message naming what failed) and return rc. */
int bench_fail(struct bench_res *res, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
    va_end(ap);
    res->rc = rc ? rc : EIO;
    return res->rc;
}

/* bench_mkpath -- dir + "/" + name into buf; ENAMETOOLONG if it does not fit. */
int bench_mkpath(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);

    return (n < 0 || (size_t)n >= len) ? ENAMETOOLONG : 0;
}

/*
 * bench_prealloc -- create path with len bytes allocated and written once (so later in-place
 * writes allocate nothing and the file system has no unwritten extents to convert), the
 * first BENCH_ARRAY_BYTES holding a[i] = i when fill_array, the rest zero; optionally synced.
 */
int bench_prealloc(const char *path, size_t len, int fill_array, int sync_after)
{
    enum { CHUNK = 1 << 20 };
    uint32_t *buf;
    int rc = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        return errno;
    buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return ENOMEM;
    }
    rc = posix_fallocate(fd, 0, (off_t)len);
    for (size_t off = 0; rc == 0 && off < len; off += CHUNK) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;

        for (size_t i = 0; i < n / 4; i++) {
            size_t idx = off / 4 + i;

            buf[i] = (fill_array && idx < BENCH_NINTS) ? (uint32_t)idx : 0;
        }
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
            rc = errno ? errno : EIO;
    }
    if (rc == 0 && sync_after && fsync(fd) != 0)
        rc = errno;
    free(buf);
    close(fd);
    return rc;
}

/* rm_entry -- nftw callback of bench_rmtree. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* bench_rmtree -- remove dir and everything under it (data files of one measurement). */
int bench_rmtree(const char *dir)
{
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : errno;
}

/*
 * bench_evict -- make every file under dir cold: fsync it (the crashed writer may have left
 * dirty pages, which DONTNEED would not drop), then POSIX_FADV_DONTNEED. Only these files
 * leave the page cache; the other users of this machine are not disturbed (no drop_caches).
 */
int bench_evict(const char *dir)
{
    struct dirent *e;
    DIR *d = opendir(dir);
    int rc = 0;

    if (!d)
        return errno;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        int fd;

        if (e->d_name[0] == '.' || bench_mkpath(path, sizeof(path), dir, e->d_name) != 0)
            continue;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fsync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
            rc = EIO;
        close(fd);
    }
    closedir(d);
    return rc;
}

/* read_full -- read exactly len bytes unless EOF/error; returns bytes read. */
static size_t read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* child_exit -- send res to the parent and leave without running atexit handlers (a
 * library's exit hooks in a forked copy must not touch files the parent still owns). */
static void child_exit(int fd, const struct bench_res *res)
{
    size_t off = 0;

    while (off < sizeof(*res)) {
        ssize_t n = write(fd, (const char *)res + off, sizeof(*res) - off);

        if (n <= 0)
            break;
        off += (size_t)n;
    }
    _exit(0);
}

/* describe_status -- put a waitpid status into res->msg as a failure. */
static int describe_status(struct bench_res *res, int status, const char *what)
{
    if (WIFSIGNALED(status))
        return bench_fail(res, EINTR, "%s: child killed by signal %d (%s)", what, WTERMSIG(status),
                          strsignal(WTERMSIG(status)));
    return bench_fail(res, EIO, "%s: child exited with status %d without a result", what,
                      WEXITSTATUS(status));
}

/*
 * bench_run_child -- run fn(cfg, dir, res) in a fresh child process and collect its result.
 * The parent never initializes any system, so each child starts clean (LRVM: one
 * rvm_initialize per process; /proc/self/io: counters of this measurement only).
 */
int bench_run_child(bench_fn fn, const struct bench_cfg *cfg, const char *dir,
                    struct bench_res *res)
{
    int pfd[2], status = 0;
    pid_t pid;
    size_t got;

    memset(res, 0, sizeof(*res));
    fflush(NULL);
    if (pipe(pfd) != 0)
        return bench_fail(res, errno, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return bench_fail(res, errno, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        struct bench_res r;

        close(pfd[0]);
        memset(&r, 0, sizeof(r));
        r.rc = fn(cfg, dir, &r);
        child_exit(pfd[1], &r);
    }
    close(pfd[1]);
    got = read_full(pfd[0], res, sizeof(*res));
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof(*res))
        return describe_status(res, status, "measurement");
    return res->rc;
}

/*
 * bench_kill_child -- run fn in a child that must end by SIGKILLing itself (W4: "a process
 * that committed N transactions and was killed -9"). If fn returns instead, it failed, and its
 * res (sent through the pipe) says why.
 */
int bench_kill_child(bench_fn fn, const struct bench_cfg *cfg, const char *dir,
                     struct bench_res *res)
{
    int pfd[2], status = 0;
    pid_t pid;
    size_t got;

    fflush(NULL);
    if (pipe(pfd) != 0)
        return bench_fail(res, errno, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return bench_fail(res, errno, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        struct bench_res r;

        close(pfd[0]);
        memset(&r, 0, sizeof(r));
        r.rc = fn(cfg, dir, &r);
        if (r.rc == 0)
            bench_fail(&r, EPROTO, "W4 writer returned instead of killing itself");
        child_exit(pfd[1], &r);
    }
    close(pfd[1]);
    got = read_full(pfd[0], res, sizeof(*res));
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && got == 0) {
        memset(res, 0, sizeof(*res));
        return 0;
    }
    if (got == sizeof(*res) && res->rc != 0)
        return res->rc;
    return describe_status(res, status, "W4 writer");
}

/* bench_lat_alloc -- latency sample array for n transactions (NULL on ENOMEM). */
double *bench_lat_alloc(long n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}
