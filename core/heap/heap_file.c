/* SPDX-License-Identifier: MIT */
/*
 * heap_file.c -- a simple heap_backing: private anonymous memory at the heap's fixed base plus
 * a file whose blocks are reserved with posix_fallocate as the heap grows. It stands in for the
 * LRVM segment region until auto-tracking lands; the memory is never written to the file by
 * the backing (like a segment, the file receives only what the caller saves/commits).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heap_file.h"
#include "heap_int.h"

struct heap_file {
    struct heap_backing b;
    int fd;
    char *base;
    size_t reserve;
    size_t size;
    char path[512];
};

/* file_grow -- reserve file blocks for [0, new_size); memory beyond the old size is zero */
static int file_grow(void *ctx, size_t new_size)
{
    struct heap_file *f = ctx;
    if (new_size > f->reserve)
        return ENOMEM;
    if (new_size > f->size) {
        int rc = posix_fallocate(f->fd, (off_t)f->size, (off_t)(new_size - f->size));
        if (rc)
            return rc;
        f->size = new_size;
    }
    return 0;
}

/* file_release -- drop the memory of a free range (anonymous: it reads back as zeros) */
static int file_release(void *ctx, size_t off, size_t len)
{
    struct heap_file *f = ctx;
    return madvise(f->base + off, len, MADV_DONTNEED) ? errno : 0;
}

/* file_reserve_space -- re-reserve file blocks of a range that may have been punched */
static int file_reserve_space(void *ctx, size_t off, size_t len)
{
    struct heap_file *f = ctx;
    return posix_fallocate(f->fd, (off_t)off, (off_t)len);
}

/* file_size -- bytes backed */
static size_t file_size(void *ctx)
{
    return ((struct heap_file *)ctx)->size;
}

/* file_setup -- open path and reserve [base, base+reserve) */
static int file_setup(struct heap_file **out, const char *path, void *base, size_t reserve,
                      int flags)
{
    *out = NULL;
    struct heap_file *f =
        mmap(NULL, sizeof(*f), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (f == MAP_FAILED)
        return errno;
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->fd = open(path, flags | O_RDWR | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        int e = errno;
        heap_reportf(NULL, "cannot open heap file %s: %s", path, strerror(e));
        munmap(f, sizeof(*f));
        return e;
    }
    void *m = mmap(base, reserve, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED || m != base) {
        int e = m == MAP_FAILED ? errno : EEXIST;
        if (m != MAP_FAILED)
            munmap(m, reserve);
        heap_reportf(NULL,
                     "cannot reserve %zu MiB at %p for heap file %s: %s (the address range "
                     "is in use: choose another base)",
                     reserve >> 20, base, path, strerror(e));
        close(f->fd);
        munmap(f, sizeof(*f));
        return e;
    }
    f->base = base;
    f->reserve = reserve;
    f->b = (struct heap_backing){.grow = file_grow,
                                 .release = file_release,
                                 .reserve_space = file_reserve_space,
                                 .size = file_size,
                                 .ctx = f,
                                 .flags = HEAP_BACKING_ZERO_ON_RELEASE};
    *out = f;
    return 0;
}

/* heap_file_create -- a new, empty backing file at path (truncated if it exists) */
int heap_file_create(struct heap_file **out, const char *path, void *base, size_t reserve)
{
    return file_setup(out, path, base, reserve, O_CREAT | O_TRUNC);
}

/* heap_file_open -- load the image in path into a fresh reserve at base */
int heap_file_open(struct heap_file **out, const char *path, void *base, size_t reserve)
{
    int rc = file_setup(out, path, base, reserve, 0);
    if (rc)
        return rc;
    struct heap_file *f = *out;
    struct stat st;
    if (fstat(f->fd, &st) != 0 || (size_t)st.st_size > reserve) {
        rc = errno ? errno : EFBIG;
        heap_reportf(NULL, "heap file %s is larger than the reserve of %zu MiB", path,
                     reserve >> 20);
        heap_file_close(f);
        *out = NULL;
        return rc ? rc : EFBIG;
    }
    size_t done = 0, n = (size_t)st.st_size;
    while (done < n) {
        ssize_t r = pread(f->fd, f->base + done, n - done, (off_t)done);
        if (r <= 0) {
            rc = r < 0 ? errno : EIO;
            heap_reportf(NULL, "cannot read heap file %s: %s", path, strerror(rc));
            heap_file_close(f);
            *out = NULL;
            return rc;
        }
        done += (size_t)r;
    }
    f->size = n;
    return 0;
}

/* heap_file_backing -- the backing interface of f */
const struct heap_backing *heap_file_backing(struct heap_file *f)
{
    return &f->b;
}

/* heap_file_save -- write the image atomically: temp file, fsync, rename, fsync directory */
int heap_file_save(struct heap_file *f, const char *path)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    /* Long runs of pages that read as zero (the header chunk's unused part, released ranges)
   * are left as holes; short gaps are written through, since many small extents make the
   * write and the fsync far slower than the bytes saved (ext4: ~10x). */
    static const char zero[4096];
    const size_t gap = 64 * HEAP_PAGE;
    size_t start = SIZE_MAX, last = 0;
    for (size_t off = 0; off <= f->size; off += HEAP_PAGE) {
        int nz = off < f->size && memcmp(f->base + off, zero, HEAP_PAGE) != 0;
        if (nz && start == SIZE_MAX)
            start = off;
        if (nz)
            last = off + HEAP_PAGE;
        if (start != SIZE_MAX && (off == f->size || (!nz && off - last >= gap))) {
            for (size_t done = start; done < last;) {
                ssize_t w = pwrite(fd, f->base + done, last - done, (off_t)done);
                if (w < 0) {
                    int e = errno;
                    close(fd);
                    return e;
                }
                done += (size_t)w;
            }
            start = SIZE_MAX;
        }
    }
    if (ftruncate(fd, (off_t)f->size) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return errno;
    /* make the rename itself durable */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* heap_file_close -- unmap the reserve, close the file */
int heap_file_close(struct heap_file *f)
{
    if (!f)
        return 0;
    munmap(f->base, f->reserve);
    close(f->fd);
    munmap(f, sizeof(*f));
    return 0;
}
