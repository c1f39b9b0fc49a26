/* SPDX-License-Identifier: MIT */
/*
 * sysio.h -- the system-call seam of core: every file I/O call goes through `sysio`.
 *
 * Why: crash and fault tests (which link the static library) replace entries to inject
 * short writes, EIO, ENOSPC on write and sync, then check the library fails safe.
 * Production code never changes the table. Fields are named after the libc calls and
 * have their signatures (open takes its mode explicitly); each returns what libc
 * returns and sets errno the same way. Restore an entry with `sysio = sysio_default`.
 */
#ifndef LRVM_CORE_SYSIO_H
#define LRVM_CORE_SYSIO_H

#include <sys/types.h>
#include <sys/stat.h>

struct sysio_ops {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t count, off_t offset);
    ssize_t (*pwrite)(int fd, const void *buf, size_t count, off_t offset);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t length);
    int (*fallocate)(int fd, int mode, off_t offset, off_t len);
    int (*fstat)(int fd, struct stat *st);
    void *(*mmap)(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
};

/* the live table (all core I/O) and the pristine one (to restore after a test) */
extern struct sysio_ops sysio __attribute__((visibility("hidden")));
extern const struct sysio_ops sysio_default __attribute__((visibility("hidden")));

#endif /* LRVM_CORE_SYSIO_H */
