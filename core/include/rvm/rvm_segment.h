/* SPDX-License-Identifier: MIT */
/*
 * rvm_segment.h -- the LRVM segment loader: a segment file whose first page is a
 * header listing regions (offset, length, vmaddr); load maps them all at their
 * recorded addresses.
 *
 * Header (first RVM_SEGMENT_HDR_SIZE bytes of the segment, native byte order):
 *   int struct_id (= 1); char version[128] = RVM_SEGMENT_VERSION; rvm_length_t nregions;
 *   rvm_region_def_t regions[nregions];  at most RVM_SEGMENT_HDR_SIZE /
 *   sizeof(rvm_region_def_t) - 1 regions. Region i starts at page + sum(previous lengths).
 * A segment whose header is not of this shape is refused with RVM_ESEGMENT_HDR (or
 * RVM_EVERSION_SKEW for another loader version), and rvm_errmsg names the file.
 */
#ifndef RVM_RVM_SEGMENT_H
#define RVM_RVM_SEGMENT_H

#include <rvm/rvm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RVM_SEGMENT_HDR_SIZE RVM_PAGE_SIZE /* length of segment header */
#define RVM_SEGMENT_VERSION "RVM Segment Loader Release 0.1  15 Nov. 1990"

typedef struct {
    rvm_offset_t offset; /* region's offset in segment */
    rvm_length_t length; /* region length */
    char *vmaddr;        /* mapping address for region */
} rvm_region_def_t;

/* One expression statement (the original's three statements put only the first under a
 * `for` or `if`); the trailing semicolon is kept so code written for the original, which may
 * omit its own, still compiles. */
#define RVM_INIT_REGION(region, off, len, addr) \
    ((region).length = (len), (region).vmaddr = (addr), (region).offset = (off));

#define RVM_ESEGMENT_HDR 2000 /* bad segment header */

RVM_API rvm_return_t rvm_create_segment(char *DevName, rvm_offset_t DevLength,
                                        rvm_options_t *options, rvm_length_t nregions,
                                        rvm_region_def_t *region_defs);
RVM_API rvm_return_t rvm_load_segment(char *DevName, rvm_offset_t DevLength, rvm_options_t *options,
                                      unsigned long *nregions, rvm_region_def_t *regions[]);
RVM_API rvm_return_t rvm_release_segment(unsigned long nregions, rvm_region_def_t **regions);

#ifdef __cplusplus
}
#endif

#endif /* RVM_RVM_SEGMENT_H */
