/* SPDX-License-Identifier: MIT */
/*
 * sysio.c -- default entries of the system-call seam (see sysio.h).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sysio.h"

/* sysio_open -- open(2) with an explicit mode, so the table entry has a fixed signature */
static int sysio_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags | O_CLOEXEC, mode);
}

const struct sysio_ops sysio_default = {
    .open = sysio_open,
    .close = close,
    .pread = pread,
    .pwrite = pwrite,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .fallocate = fallocate,
    .fstat = fstat,
    .mmap = mmap,
};

struct sysio_ops sysio = {
    .open = sysio_open,
    .close = close,
    .pread = pread,
    .pwrite = pwrite,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .fallocate = fallocate,
    .fstat = fstat,
    .mmap = mmap,
};
