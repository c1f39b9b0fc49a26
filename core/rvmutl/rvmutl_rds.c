/* SPDX-License-Identifier: MIT */
/*
 * rvmutl_rds.c -- `rvmutl rds-check SEGMENT [LOG]`: check the RDS heap in a segment file
 * without mapping it (reads the files only), and report the first damaged block with its
 * address. Without LOG it checks the file as it is; with LOG, the records committed to that
 * log but not yet applied are laid over the bytes first, so the heap checked is the one
 * recovery would leave.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rvm/rvm_segment.h>

#include "rds_int.h"
#include "rvmutl.h"
#include "rvmutl_rds.h"

/* the segment loader's header (rvm_segment.h) as it lies in the file */
struct seg_hdr {
    int struct_id;
    char version[128];
    rvm_length_t nregions;
    rvm_region_def_t regions[];
};

/* read_all -- pread exactly n bytes at off; 0 or -1 (errno, or EIO for a short file) */
static int read_all(int fd, void *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p = (char *)p + r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* overlay -- lay logp's pending records for seg over [off, off + len) of buf (if logp) */
static int overlay(const char *logp, const char *seg, uint64_t off, void *buf, size_t len)
{
    uint64_t n;
    if (logp == NULL)
        return 0;
    if (utl_overlay_file(logp, seg, off, buf, len, &n) != 0)
        return -1;
    if (n > 0 && off == 0)
        printf("%s: %llu record(s) of log %s not yet applied: laid over the file\n", seg,
               (unsigned long long)n, logp);
    return 0;
}

/* load_heap_region -- read region 0 of an RDS segment; NULL with a message on stderr */
static char *load_heap_region(int fd, const char *seg, const char *logp, rvm_region_def_t *def)
{
    size_t hsz = RVM_SEGMENT_HDR_SIZE;
    struct seg_hdr *h = malloc(hsz);
    if (h == NULL || read_all(fd, h, hsz, 0) != 0) {
        fprintf(stderr, "rvmutl: %s: cannot read the segment header: %s\n", seg,
                h ? strerror(errno) : "out of memory");
        free(h);
        return NULL;
    }
    if (overlay(logp, seg, 0, h, hsz) != 0) {
        free(h);
        return NULL;
    }
    if (h->struct_id != 1 || strncmp(h->version, RVM_SEGMENT_VERSION, sizeof(h->version))) {
        fprintf(stderr,
                "rvmutl: %s is not a segment-loader segment (no header); an RDS "
                "segment is made by rdsinit or rds_zap_heap\n",
                seg);
        free(h);
        return NULL;
    }
    if (h->nregions != 2)
        fprintf(stderr,
                "rvmutl: %s: %lu regions (an RDS segment has 2); checking region 0 "
                "as the heap\n",
                seg, (unsigned long)h->nregions);
    if (h->nregions < 1 || h->nregions > hsz / sizeof(rvm_region_def_t) - 1 ||
        h->regions[0].length == 0 || h->regions[0].length > (1UL << 40)) {
        fprintf(stderr,
                "rvmutl: %s: the segment header is damaged (region count or heap "
                "length)\n",
                seg);
        free(h);
        return NULL;
    }
    *def = h->regions[0];
    free(h);
    char *img = malloc(def->length);
    if (img == NULL || read_all(fd, img, def->length, (off_t)def->offset.low) != 0) {
        fprintf(stderr,
                "rvmutl: %s: cannot read the heap region (%lu bytes at offset %lu): "
                "%s\n",
                seg, def->length, def->offset.low, img ? strerror(errno) : "out of memory");
        free(img);
        return NULL;
    }
    if (overlay(logp, seg, def->offset.low, img, def->length) != 0) {
        free(img);
        return NULL;
    }
    return img;
}

int cmd_rds_check(const char *seg, const char *logp)
{
    int fd = open(seg, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "rvmutl: cannot open %s: %s\n", seg, strerror(errno));
        return 1;
    }
    rvm_region_def_t def;
    char *img = load_heap_region(fd, seg, logp, &def);
    close(fd);
    if (img == NULL)
        return 1;
    char msg[512];
    struct rds_check_stats st;
    int rc = rds_check_image(img, def.length, (uintptr_t)def.vmaddr, &st, msg, sizeof(msg));
    free(img);
    if (rc != 0) {
        printf("%s: DAMAGED: %s\n", seg, msg);
        return 1;
    }
    printf("%s: RDS heap at %p (%lu bytes): consistent: %lu blocks; %lu free (%lu bytes, "
           "largest %lu); %lu allocated (%lu bytes)\n",
           seg, (void *)def.vmaddr, def.length, st.nblocks, st.nfree, st.free_bytes,
           st.largest_free, st.nalloc, st.alloc_bytes);
    if (st.stats_mismatch)
        printf("%s: note: the heap header's free/allocated byte counters disagree with the "
               "blocks (statistics only; the heap itself is sound)\n",
               seg);
    return 0;
}
