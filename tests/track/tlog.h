/* SPDX-License-Identifier: MIT */
/*
 * tlog.h -- a minimal redo log used as the commit sink of tracking tests and benchmarks,
 * until core's commit-vector entry (txn_commit_ranges) is merged on this branch.
 *
 * Format (one file, records back to back from offset 0):
 *   u32 magic "TLG1" | u32 pad | u64 seq (1, 2, ...) | u64 nranges | u64 payload_len |
 *   u64 checksum (FNV-1a 64 of seq..payload) | payload = nranges x (u64 off, u64 len, bytes)
 * A record is valid iff magic, seq (previous + 1), length and checksum all match; recovery
 * applies valid records in order and stops at the first invalid one (a torn tail).
 * flush: fdatasync after the pwrite, so the record is durable when the sink returns.
 */
#ifndef LRVM_TESTS_TLOG_H
#define LRVM_TESTS_TLOG_H

#include <stddef.h>
#include <stdint.h>

#include "track.h"

struct tlog {
    int fd; /* -1: no file, only the in-memory image */
    uint64_t tail;
    uint64_t seq;
    char *image; /* if not NULL: ranges are also applied here (the segment model) */
    size_t image_len;
    rvm_return_t fail_next; /* if not 0: the next commit fails with it (fault injection) */
    char *buf;
    size_t cap;
    uint64_t nrec, nbytes;
    uint64_t oob; /* ranges outside the image (must stay 0) */
};

/* tlog_open -- create/truncate path (NULL: no file) and attach an optional image */
int tlog_open(struct tlog *l, const char *path, char *image, size_t image_len);
void tlog_close(struct tlog *l);
/* tlog_sink -- the track_sink_fn */
rvm_return_t tlog_sink(void *arg, const struct track_range *r, size_t n, int sync,
                       uint64_t *logged);
/* tlog_recover -- apply every valid record of path to image; *nrec: records applied */
int tlog_recover(const char *path, char *image, size_t image_len, uint64_t *nrec);

#endif
