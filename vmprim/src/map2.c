/* SPDX-License-Identifier: MIT */
/*
 * map2.c -- MAP2: the same memory at two addresses with independent protections.
 *
 * The memory is a memfd (shmem): both views are MAP_SHARED mappings of it, so they share
 * physical pages while each VMA keeps its own protection. Appel & Li use this for a
 * collector or checkpointer that reads/writes through an unprotected view while the
 * application's view stays protected.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmprim_int.h"

/* vmp_map2 -- create len bytes of memfd memory mapped twice */
VMP_API int vmp_map2(size_t len, int prot1, int prot2, vmp_map2_t *out)
{
    if (out == NULL || len == 0 || (len & (vmp_page_size() - 1)) != 0)
        return EINVAL;
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    int fd = memfd_create("lrvm-vmprim-map2", MFD_CLOEXEC);
    if (fd < 0)
        return errno;
    if (ftruncate(fd, (off_t)len) != 0) {
        int rc = errno;
        close(fd);
        return rc;
    }
    void *a = mmap(NULL, len, prot1, MAP_SHARED, fd, 0);
    if (a == MAP_FAILED) {
        int rc = errno;
        close(fd);
        return rc;
    }
    void *b = mmap(NULL, len, prot2, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED) {
        int rc = errno;
        munmap(a, len);
        close(fd);
        return rc;
    }
    out->view1 = a;
    out->view2 = b;
    out->len = len;
    out->fd = fd;
    return 0;
}

/* vmp_map2_free -- unmap both views and close the memfd */
VMP_API void vmp_map2_free(vmp_map2_t *m)
{
    if (m == NULL || m->fd < 0)
        return;
    munmap(m->view1, m->len);
    munmap(m->view2, m->len);
    close(m->fd);
    memset(m, 0, sizeof(*m));
    m->fd = -1;
}
