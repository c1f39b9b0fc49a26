/* SPDX-License-Identifier: MIT */
/*
 * uffd.c -- opening userfaultfd and talking to it.
 *
 * Routes, in order (the first that works is used, and named in the probe result):
 *   1. userfaultfd(2) with UFFD_USER_MODE_ONLY: permitted to everyone even when
 *      vm.unprivileged_userfaultfd=0, because such a descriptor cannot stall the kernel on
 *      its own accesses. Enough for us: write-protect tracking never needs kernel-mode faults
 *      (WP_ASYNC resolves them in the kernel; with SIGBUS they fail with EFAULT regardless).
 *   2. userfaultfd(2) without the flag (root/CAP_SYS_PTRACE, or the sysctl set to 1).
 *   3. /dev/userfaultfd + USERFAULTFD_IOC_NEW (access controlled by the device's mode).
 * The features are checked with UFFDIO_API: a descriptor accepts exactly one UFFDIO_API,
 * so the probe asks for none (the kernel answers with what it offers) on a throwaway fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmprim_int.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static struct uffd_caps uffd_caps;
static pthread_once_t uffd_caps_once = PTHREAD_ONCE_INIT;

/* uffd_open_raw -- open a userfaultfd by the first route that works; fd or -errno.
 * route (may be NULL) receives the route's name; why collects the failures. */
static int uffd_open_raw(char *route, size_t routelen, char *why, size_t whylen)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
    int fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    if (fd >= 0) {
        if (route)
            snprintf(route, routelen, "userfaultfd(UFFD_USER_MODE_ONLY)");
        return fd;
    }
    int e1 = errno;
    if (e1 == ENOSYS) {
        snprintf(why, whylen, "userfaultfd(2): %s (kernel built without CONFIG_USERFAULTFD)",
                 strerror(e1));
        return -ENOSYS;
    }
    fd = (int)syscall(SYS_userfaultfd, flags);
    if (fd >= 0) {
        if (route)
            snprintf(route, routelen, "userfaultfd()");
        return fd;
    }
    int e2 = errno;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    int e3 = errno;
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags | UFFD_USER_MODE_ONLY);
        e3 = errno;
        close(dev);
        if (fd >= 0) {
            if (route)
                snprintf(route, routelen, "/dev/userfaultfd");
            return fd;
        }
    }
    snprintf(why, whylen,
             "userfaultfd not permitted: userfaultfd(UFFD_USER_MODE_ONLY): %s; userfaultfd(): %s "
             "(see sysctl vm.unprivileged_userfaultfd); /dev/userfaultfd: %s",
             strerror(e1), strerror(e2), strerror(e3));
    return e1 == EPERM || e2 == EPERM || e3 == EACCES ? -EPERM : -e1;
}

/* uffd_open -- open a userfaultfd and enable features (UFFDIO_API); returns fd or -errno */
int uffd_open(uint64_t features, char *why, size_t whylen)
{
    int fd = uffd_open_raw(NULL, 0, why, whylen);
    if (fd < 0)
        return fd;
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        int rc = errno;
        snprintf(why, whylen, "UFFDIO_API(features=0x%llx): %s: kernel lacks a feature",
                 (unsigned long long)features, strerror(rc));
        close(fd);
        return rc == EINVAL ? -ENOTSUP : -rc;
    }
    return fd;
}

/* uffd_caps_probe -- fill uffd_caps (run once) */
static void uffd_caps_probe(void)
{
    struct uffd_caps *c = &uffd_caps;
    int fd = uffd_open_raw(c->route, sizeof(c->route), c->why, sizeof(c->why));
    if (fd < 0)
        return;
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        snprintf(c->why, sizeof(c->why), "UFFDIO_API: %s", strerror(errno));
        close(fd);
        return;
    }
    close(fd);
    c->usable = 1;
    c->features = api.features;
    if ((c->features & UFFD_FEATURE_WP_ASYNC) != 0) {
        fd = uffd_open(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, c->why, sizeof(c->why));
        if (fd >= 0) {
            c->pagemap_scan = wpasync_probe(fd, c->why, sizeof(c->why)) == 0;
            close(fd);
        }
    }
}

/* uffd_caps_get -- the cached capabilities (probed on first call, thread-safe) */
const struct uffd_caps *uffd_caps_get(void)
{
    pthread_once(&uffd_caps_once, uffd_caps_probe);
    return &uffd_caps;
}

/* uffd_register_wp -- UFFDIO_REGISTER [addr,len) in write-protect mode */
int uffd_register_wp(int fd, void *addr, size_t len)
{
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    return ioctl(fd, UFFDIO_REGISTER, &reg) == 0 ? 0 : errno;
}

/* uffd_unregister -- UFFDIO_UNREGISTER [addr,len) */
int uffd_unregister(int fd, void *addr, size_t len)
{
    struct uffdio_range r = {.start = (uintptr_t)addr, .len = len};
    return ioctl(fd, UFFDIO_UNREGISTER, &r) == 0 ? 0 : errno;
}

/* uffd_wp -- UFFDIO_WRITEPROTECT [addr,len) on or off; async-signal-safe */
int uffd_wp(int fd, void *addr, size_t len, int on)
{
    struct uffdio_writeprotect wp = {
        .range = {.start = (uintptr_t)addr, .len = len},
        .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    /* No thread ever waits on this descriptor (SIGBUS/async modes), so nothing to wake.
     * EAGAIN means the address space was changing (fork, mremap) at that instant: retry. */
    for (;;) {
        if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return errno;
    }
}
