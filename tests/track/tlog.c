/* SPDX-License-Identifier: MIT */
/*
 * tlog.c -- the tests' minimal redo log (see tlog.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlog.h"

#define TLOG_MAGIC 0x31474c54u /* "TLG1" */

struct tlog_hdr {
    uint32_t magic, pad;
    uint64_t seq, nranges, payload_len, sum;
};

/* tlog_fnv -- FNV-1a 64 over p[0..n) continuing from h */
static uint64_t tlog_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* tlog_open -- see tlog.h */
int tlog_open(struct tlog *l, const char *path, char *image, size_t image_len)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    if (path != NULL) {
        l->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (l->fd < 0)
            return errno;
    }
    l->image = image;
    l->image_len = image_len;
    return 0;
}

/* tlog_close -- close the file, free the buffer */
void tlog_close(struct tlog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    free(l->buf);
    l->buf = NULL;
    l->fd = -1;
}

/* tlog_sink -- format one record of n ranges, write it, sync it if flush */
rvm_return_t tlog_sink(void *arg, const struct track_range *r, size_t n, int sync, uint64_t *logged)
{
    struct tlog *l = arg;
    if (l->fail_next != 0) {
        rvm_return_t rc = l->fail_next;
        l->fail_next = 0;
        return rc;
    }
    size_t payload = 0;
    for (size_t k = 0; k < n; k++)
        payload += 16 + r[k].len;
    size_t total = sizeof(struct tlog_hdr) + payload;
    if (total > l->cap) {
        char *p = realloc(l->buf, total);
        if (p == NULL)
            return RVM_ENO_MEMORY;
        l->buf = p;
        l->cap = total;
    }
    struct tlog_hdr h = {TLOG_MAGIC, 0, l->seq + 1, n, payload, 0};
    char *q = l->buf + sizeof(h);
    for (size_t k = 0; k < n; k++) {
        memcpy(q, &r[k].off, 8);
        memcpy(q + 8, &r[k].len, 8);
        memcpy(q + 16, r[k].src, r[k].len);
        q += 16 + r[k].len;
        if (l->image != NULL && r[k].off + r[k].len <= l->image_len)
            memcpy(l->image + r[k].off, r[k].src, r[k].len);
        else if (l->image != NULL)
            l->oob++;
    }
    h.sum = tlog_fnv(tlog_fnv(0xcbf29ce484222325ull, &h.seq, 24), l->buf + sizeof(h), payload);
    memcpy(l->buf, &h, sizeof(h));
    if (l->fd >= 0) {
        if (pwrite(l->fd, l->buf, total, (off_t)l->tail) != (ssize_t)total)
            return RVM_EIO;
        if (sync && fdatasync(l->fd) != 0)
            return RVM_EIO;
    }
    l->tail += total;
    l->seq++;
    l->nrec++;
    l->nbytes += total;
    *logged = total;
    return RVM_SUCCESS;
}

/* tlog_recover -- see tlog.h */
int tlog_recover(const char *path, char *image, size_t image_len, uint64_t *nrec)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *nrec = 0;
    if (fd < 0)
        return errno == ENOENT ? 0 : errno;
    off_t size = lseek(fd, 0, SEEK_END);
    char *all = malloc((size_t)size + 1);
    if (all == NULL || pread(fd, all, (size_t)size, 0) != size) {
        free(all);
        close(fd);
        return EIO;
    }
    close(fd);
    uint64_t pos = 0, seq = 0;
    while (pos + sizeof(struct tlog_hdr) <= (uint64_t)size) {
        struct tlog_hdr h;
        memcpy(&h, all + pos, sizeof(h));
        if (h.magic != TLOG_MAGIC || h.seq != seq + 1 ||
            h.payload_len > (uint64_t)size - pos - sizeof(h))
            break;
        const char *p = all + pos + sizeof(h);
        if (tlog_fnv(tlog_fnv(0xcbf29ce484222325ull, &h.seq, 24), p, h.payload_len) != h.sum)
            break;
        for (uint64_t k = 0; k < h.nranges; k++) {
            uint64_t off, len;
            memcpy(&off, p, 8);
            memcpy(&len, p + 8, 8);
            if (off + len <= image_len)
                memcpy(image + off, p + 16, len);
            p += 16 + len;
        }
        pos += sizeof(h) + h.payload_len;
        seq++;
    }
    free(all);
    *nrec = seq;
    return 0;
}
