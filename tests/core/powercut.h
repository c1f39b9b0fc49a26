/* SPDX-License-Identifier: MIT */
/*
 * powercut.h -- simulated power loss through the sysio seam (after SQLite's test6.c).
 *
 * SIGKILL keeps the page cache: everything written reaches the file, synced or not. A power
 * cut does not: writes since the file's last fsync/fdatasync may be lost, in any order, or
 * torn at a sector boundary. With powercut_install(k, seed) every pwrite through sysio first
 * saves the bytes it overwrites; a successful sync of a file forgets that file's saved writes
 * (they are durable). At the kth I/O call the process reconstructs a disk state a power cut
 * could leave -- each unsynced write independently kept, dropped, or torn at a 512-byte
 * boundary -- and SIGKILLs itself.
 *
 * Reconstruction walks the unsynced writes newest first. A kept write protects its bytes; a
 * dropped one restores the bytes it overwrote except those a newer kept write protects. That
 * is exactly "each write persisted or not, independently", overlaps included, so a missing
 * write barrier in the library (e.g. the head moved before the segments were synced) shows
 * up as a recovered state that matches no durable prefix.
 *
 * All wrapped calls serialise on one mutex, so a reconstruction never races another thread's
 * write (the truncation thread's included).
 */
#ifndef LRVM_TESTS_POWERCUT_H
#define LRVM_TESTS_POWERCUT_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core_test.h"
#include "sysio.h"

#define PC_MAX 4096

typedef struct {
    dev_t dev;
    ino_t ino;
    int fd;
    off_t off;
    size_t len;
    unsigned char *old; /* the bytes this write overwrote (zeros past the old end of file) */
} pc_write_t;

static struct {
    pthread_mutex_t mu;
    int kill_at, count;
    trng_t g;
    int n;
    pc_write_t w[PC_MAX];
} PC = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {0}, 0, {{0}}};

/* pc_forget -- drop the saved writes of the file behind fd (it was synced). */
static inline void pc_forget(int fd)
{
    struct stat st;
    if (sysio_default.fstat(fd, &st) != 0)
        return;
    int k = 0;
    for (int i = 0; i < PC.n; i++) {
        if (PC.w[i].dev == st.st_dev && PC.w[i].ino == st.st_ino)
            free(PC.w[i].old);
        else
            PC.w[k++] = PC.w[i];
    }
    PC.n = k;
}

/* pc_protected -- is byte [off] of file (dev, ino) persisted by a write newer than i?
 * kept[j] is how many leading bytes of write j persisted (len: whole, 0: dropped). */
static inline int pc_protected(const size_t *kept, int i, dev_t dev, ino_t ino, off_t off)
{
    for (int j = i + 1; j < PC.n; j++)
        if (kept[j] && PC.w[j].dev == dev && PC.w[j].ino == ino && off >= PC.w[j].off &&
            off < PC.w[j].off + (off_t)kept[j])
            return 1;
    return 0;
}

/* pc_cut -- leave a power-cut disk state behind and die. Called with PC.mu held. */
static inline void pc_cut(void)
{
    static size_t kept[PC_MAX]; /* leading bytes of each unsynced write that persisted */
    for (int i = 0; i < PC.n; i++) {
        uint64_t r = trng_below(&PC.g, 4);
        kept[i] = r == 0 ? PC.w[i].len : 0; /* 1/4 persisted whole, 1/2 lost */
        if (r == 1 && PC.w[i].len > 512)    /* 1/4 torn at a sector boundary */
            kept[i] = 512 * (1 + trng_below(&PC.g, (PC.w[i].len - 1) / 512));
    }
    for (int i = PC.n - 1; i >= 0; i--) {
        pc_write_t *w = &PC.w[i];
        /* restore the bytes [kept, len) overwrote, except those a newer write persisted */
        for (size_t b = kept[i]; b < w->len;) {
            size_t e = b;
            while (e < w->len && !pc_protected(kept, i, w->dev, w->ino, w->off + (off_t)e))
                e++;
            if (e > b && sysio_default.pwrite(w->fd, w->old + b, e - b, w->off + (off_t)b) < 0)
                _exit(97);
            b = e + 1;
        }
    }
    raise(SIGKILL);
}

/* pc_tick -- count an I/O call; at the chosen one, cut the power. PC.mu held. */
static inline void pc_tick(void)
{
    if (++PC.count == PC.kill_at)
        pc_cut();
}

/* pc_pwrite -- save what the write overwrites, then write. */
static inline ssize_t pc_pwrite(int fd, const void *b, size_t n, off_t off)
{
    pthread_mutex_lock(&PC.mu);
    pc_tick();
    struct stat st;
    if (PC.n < PC_MAX && sysio_default.fstat(fd, &st) == 0) {
        pc_write_t *w = &PC.w[PC.n];
        w->old = calloc(1, n ? n : 1);
        if (w->old) {
            ssize_t r = sysio_default.pread(fd, w->old, n, off);
            (void)r; /* past the end of file: zeros */
            w->dev = st.st_dev;
            w->ino = st.st_ino;
            w->fd = fd;
            w->off = off;
            w->len = n;
            PC.n++;
        }
    }
    ssize_t r = sysio_default.pwrite(fd, b, n, off);
    pthread_mutex_unlock(&PC.mu);
    return r;
}

/* pc_fdatasync -- sync; on success the file's writes are durable. */
static inline int pc_fdatasync(int fd)
{
    pthread_mutex_lock(&PC.mu);
    pc_tick();
    int r = sysio_default.fdatasync(fd);
    if (r == 0)
        pc_forget(fd);
    pthread_mutex_unlock(&PC.mu);
    return r;
}

/* pc_fsync -- as pc_fdatasync. */
static inline int pc_fsync(int fd)
{
    pthread_mutex_lock(&PC.mu);
    pc_tick();
    int r = sysio_default.fsync(fd);
    if (r == 0)
        pc_forget(fd);
    pthread_mutex_unlock(&PC.mu);
    return r;
}

/* powercut_install -- cut the power at the kth write/sync from now (k > 0). */
static inline void powercut_install(int k, uint64_t seed)
{
    PC.kill_at = k;
    PC.count = 0;
    PC.g.s = seed;
    PC.n = 0;
    sysio.pwrite = pc_pwrite;
    sysio.fdatasync = pc_fdatasync;
    sysio.fsync = pc_fsync;
}

#endif
