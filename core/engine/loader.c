/* SPDX-License-Identifier: MIT */
/*
 * loader.c -- the LRVM segment loader (rvm_segment.h): a header page listing the
 * regions of a segment and their VM addresses; load maps them all.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rvm/rvm_segment.h>

#include "rvm_int.h"

#define LOADER_ID 1

/* Set by every successful rvm_load_segment, as the original's loader does (programs and
 * RDS users read them): the lowest region address, and the bytes from there to the end of
 * the highest region. */
RVM_API char *rds_startaddr;
RVM_API rvm_length_t rds_rvmsize;

/* loader_note_extent -- set rds_startaddr/rds_rvmsize from the loaded regions */
static void loader_note_extent(const rvm_region_def_t *defs, rvm_length_t n)
{
    char *lo = NULL, *hi = NULL;
    for (rvm_length_t i = 0; i < n; i++) {
        if (lo == NULL || defs[i].vmaddr < lo)
            lo = defs[i].vmaddr;
        if (hi == NULL || defs[i].vmaddr + defs[i].length > hi)
            hi = defs[i].vmaddr + defs[i].length;
    }
    rds_startaddr = lo;
    rds_rvmsize = (rvm_length_t)(hi - lo);
}

/* the on-disk header (first page of the segment) */
struct loader_hdr {
    int struct_id;
    char version[128];
    rvm_length_t nregions;
    rvm_region_def_t regions[];
};

/* loader_max -- most regions a header page holds: the definitions follow the fixed fields
 * and must end inside the page (the page is all that is mapped while the header is read). */
static rvm_length_t loader_max(void)
{
    return (RVM_SEGMENT_HDR_SIZE - offsetof(struct loader_hdr, regions)) / sizeof(rvm_region_def_t);
}

/* loader_cmp -- order region defs by vmaddr */
static int loader_cmp(const void *a, const void *b)
{
    const rvm_region_def_t *x = a, *y = b;
    return x->vmaddr < y->vmaddr ? -1 : x->vmaddr > y->vmaddr;
}

/* loader_map_hdr -- map the header page of a segment at fresh VM */
static rvm_return_t loader_map_hdr(char *dev, rvm_offset_t len, rvm_options_t *options,
                                   rvm_region_t *r)
{
    rvm_init_region(r);
    r->data_dev = dev;
    r->dev_length = len;
    r->offset = RVM_MK_OFFSET(0, 0);
    r->length = RVM_SEGMENT_HDR_SIZE;
    r->vmaddr = NULL;
    return rvm_map(r, options);
}

/* loader_unmap_hdr -- unmap and release the header page */
static void loader_unmap_hdr(rvm_region_t *r)
{
    char *vm = r->vmaddr;
    rvm_length_t len = r->length;
    if (rvm_unmap(r) == RVM_SUCCESS)
        munmap(vm, RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(len));
}

/* rvm_create_segment -- write a segment header describing region_defs */
rvm_return_t rvm_create_segment(char *DevName, rvm_offset_t DevLength, rvm_options_t *options,
                                rvm_length_t nregions, rvm_region_def_t *region_defs)
{
    if (DevName == NULL || (nregions > 0 && region_defs == NULL))
        return RVM_EREGION_DEF;
    if (nregions > loader_max())
        return err_set(RVM_ETOO_BIG,
                       "rvm_create_segment %s: %lu regions, at most %lu fit in "
                       "the header",
                       DevName, nregions, loader_max());
    qsort(region_defs, nregions, sizeof(*region_defs), loader_cmp); /* as the original */
    for (rvm_length_t i = 1; i < nregions; i++)
        if (region_defs[i - 1].vmaddr + region_defs[i - 1].length > region_defs[i].vmaddr)
            return err_set(RVM_ERANGE,
                           "rvm_create_segment %s: regions %lu and %lu overlap in "
                           "VM",
                           DevName, i - 1, i);
    rvm_region_t hdr;
    rvm_return_t rc = loader_map_hdr(DevName, DevLength, options, &hdr);
    if (rc)
        return rc;
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    rc = rvm_begin_transaction(&tid, restore);
    if (rc == RVM_SUCCESS)
        rc = rvm_set_range(&tid, hdr.vmaddr, RVM_SEGMENT_HDR_SIZE);
    if (rc == RVM_SUCCESS) {
        struct loader_hdr *h = (struct loader_hdr *)hdr.vmaddr;
        memset(h, 0, RVM_SEGMENT_HDR_SIZE);
        h->struct_id = LOADER_ID;
        strncpy(h->version, RVM_SEGMENT_VERSION, sizeof(h->version) - 1);
        h->nregions = nregions;
        rvm_offset_t off = RVM_MK_OFFSET(0, RVM_SEGMENT_HDR_SIZE);
        for (rvm_length_t i = 0; i < nregions; i++) {
            h->regions[i].offset = off;
            h->regions[i].length = region_defs[i].length;
            h->regions[i].vmaddr = region_defs[i].vmaddr;
            off = rvm_add_length_to_offset(&off, region_defs[i].length);
        }
        rc = rvm_end_transaction(&tid, flush);
        if (rc != RVM_SUCCESS)
            rvm_abort_transaction(&tid);
    }
    loader_unmap_hdr(&hdr);
    return rc;
}

/* loader_read_defs -- the header's region definitions, judged and copied to *defs (malloc'ed) */
static rvm_return_t loader_read_defs(const char *DevName, const struct loader_hdr *h,
                                     rvm_region_def_t **defs, rvm_length_t *nregions)
{
    if (h->struct_id != LOADER_ID)
        return err_set(RVM_ESEGMENT_HDR,
                       "segment %s has no segment-loader header (bad struct "
                       "id %d); create it with rvm_create_segment",
                       DevName, h->struct_id);
    if (strncmp(h->version, RVM_SEGMENT_VERSION, sizeof(h->version)) != 0)
        return err_set(RVM_EVERSION_SKEW, "segment %s: loader version \"%.127s\" is not \"%s\"",
                       DevName, h->version, RVM_SEGMENT_VERSION);
    rvm_length_t n = h->nregions;
    if (n > loader_max())
        return err_set(RVM_ESEGMENT_HDR,
                       "segment %s: header claims %lu regions (at most %lu); "
                       "the header is damaged",
                       DevName, n, loader_max());
    *defs = malloc((n ? n : 1) * sizeof(**defs));
    if (*defs == NULL)
        return RVM_ENO_MEMORY;
    memcpy(*defs, h->regions, n * sizeof(**defs));
    *nregions = n;
    return RVM_SUCCESS;
}

/* loader_check_def -- region i's definition is one that can be mapped (vmlen: its length
 * rounded up to pages) */
static rvm_return_t loader_check_def(const char *DevName, rvm_length_t i,
                                     const rvm_region_def_t *def, rvm_length_t vmlen)
{
    if (def->vmaddr == NULL || def->length == 0)
        return err_set(RVM_ESEGMENT_HDR,
                       "segment %s: region %lu has no address or no "
                       "length; the header is damaged",
                       DevName, i);
    if ((uintptr_t)def->vmaddr & (rvm_page_size() - 1))
        return err_set(RVM_ESEGMENT_HDR,
                       "segment %s: region %lu address %p is not page "
                       "aligned; the header is damaged",
                       DevName, i, (void *)def->vmaddr);
    /* The header is data from a file: a length whose page round-up wraps, or a region
     * that would wrap the address space, is damage, not an overlap. */
    if (vmlen < def->length || (uintptr_t)def->vmaddr + vmlen < (uintptr_t)def->vmaddr)
        return err_set(RVM_ESEGMENT_HDR,
                       "segment %s: region %lu (address %p, length %lu) "
                       "wraps the address space; the header is damaged",
                       DevName, i, (void *)def->vmaddr, def->length);
    return RVM_SUCCESS;
}

/* loader_map_def -- region i at its recorded address: the address range reserved (it must be
 * free), then rvm_map'ed there; on failure nothing of it stays mapped */
static rvm_return_t loader_map_def(char *DevName, rvm_offset_t DevLength, rvm_length_t i,
                                   const rvm_region_def_t *def)
{
    rvm_length_t vmlen = RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(def->length);
    rvm_return_t rc = loader_check_def(DevName, i, def, vmlen);
    if (rc)
        return rc;
    void *p = mmap(def->vmaddr, vmlen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED || p != def->vmaddr) {
        int e = p == MAP_FAILED ? errno : EEXIST; /* old kernels ignore NOREPLACE: moved */
        if (p != MAP_FAILED)
            munmap(p, vmlen);
        if (e == EEXIST)
            return err_set(RVM_EVM_OVERLAP,
                           "segment %s: region %lu at %p overlaps memory "
                           "in use",
                           DevName, i, (void *)def->vmaddr);
        return err_set(RVM_ERANGE,
                       "segment %s: region %lu at %p (length %lu) cannot be "
                       "mapped: %s",
                       DevName, i, (void *)def->vmaddr, def->length, strerror(e));
    }
    rvm_region_t r;
    rvm_init_region(&r);
    r.data_dev = DevName;
    r.dev_length = DevLength;
    r.offset = def->offset;
    r.length = def->length;
    r.vmaddr = def->vmaddr;
    rc = rvm_map(&r, NULL);
    if (rc) {
        munmap(def->vmaddr, vmlen);
        return rc;
    }
    if (RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(r.length) != vmlen) {
        /* rvm_map cut it at the end of the segment: the header does not fit it */
        rvm_unmap(&r);
        munmap(def->vmaddr, vmlen);
        return err_set(RVM_ESEGMENT_HDR,
                       "segment %s: region %lu (offset %lu, length %lu) "
                       "extends beyond the end of the segment; the header is damaged",
                       DevName, i, def->offset.low, def->length);
    }
    return RVM_SUCCESS;
}

/* loader_unmap_defs -- undo the first done regions, which this call mapped: memory at the
 * other addresses belongs to the caller */
static void loader_unmap_defs(const rvm_region_def_t *defs, rvm_length_t done)
{
    for (rvm_length_t i = 0; i < done; i++) {
        rvm_region_t r;
        rvm_init_region(&r);
        r.vmaddr = defs[i].vmaddr;
        r.length = defs[i].length;
        if (rvm_unmap(&r) == RVM_SUCCESS)
            munmap(defs[i].vmaddr, RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(defs[i].length));
    }
}

/* rvm_load_segment -- map every region of a segment at its recorded address */
rvm_return_t rvm_load_segment(char *DevName, rvm_offset_t DevLength, rvm_options_t *options,
                              unsigned long *nregions, rvm_region_def_t *regions[])
{
    if (DevName == NULL || nregions == NULL || regions == NULL)
        return RVM_EREGION_DEF;
    rvm_region_t hdr;
    rvm_return_t rc = loader_map_hdr(DevName, DevLength, options, &hdr);
    if (rc)
        return rc;
    rvm_region_def_t *defs = NULL;
    rvm_length_t n = 0;
    rc = loader_read_defs(DevName, (const struct loader_hdr *)hdr.vmaddr, &defs, &n);
    if (rc)
        goto out;
    rvm_length_t done = 0; /* regions this call mapped (undone on failure) */
    while (done < n && (rc = loader_map_def(DevName, DevLength, done, &defs[done])) == 0)
        done++;
    if (rc) {
        loader_unmap_defs(defs, done);
        free(defs);
        goto out;
    }
    *nregions = n;
    *regions = defs;
    loader_note_extent(defs, n);
out:
    loader_unmap_hdr(&hdr);
    return rc;
}

/* rvm_release_segment -- unmap and release every region of a loaded segment */
rvm_return_t rvm_release_segment(unsigned long nregions, rvm_region_def_t **regions)
{
    if (regions == NULL || (*regions == NULL && nregions > 0))
        return RVM_EREGION_DEF;
    rvm_return_t rc = RVM_SUCCESS;
    for (unsigned long i = 0; i < nregions; i++) {
        rvm_region_t r;
        rvm_init_region(&r);
        r.vmaddr = (*regions)[i].vmaddr;
        r.length = (*regions)[i].length;
        rvm_return_t e = rvm_unmap(&r);
        if (e == RVM_SUCCESS)
            munmap(r.vmaddr, RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(r.length));
        else if (rc == RVM_SUCCESS)
            rc = e;
    }
    free(*regions);
    *regions = NULL;
    return rc;
}
