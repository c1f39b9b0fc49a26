/* SPDX-License-Identifier: MIT */
/*
 * heap_file.h -- a heap backing for tests and benchmarks: the heap without an LRVM segment.
 * Not part of liblrvm (built as its own static library for the test suite and bench/).
 */
#ifndef LRVM_HEAP_FILE_H
#define LRVM_HEAP_FILE_H

#include "heap.h"

/*
 * A heap_backing over private anonymous memory reserved at base (MAP_FIXED_NOREPLACE |
 * MAP_NORESERVE) plus a file whose size tracks the heap's with posix_fallocate (space
 * accounting: a full disk fails grow with ENOSPC). heap_file_open loads an existing file image
 * (e.g. a committed snapshot) into the reserve. The memory is never written to the file by the
 * backing (no-steal): saving an image is the caller's job (heap_file_save).
 */
struct heap_file;
int heap_file_create(struct heap_file **out, const char *path, void *base, size_t reserve);
int heap_file_open(struct heap_file **out, const char *path, void *base, size_t reserve);
const struct heap_backing *heap_file_backing(struct heap_file *f);
/* heap_file_save -- write [base, base + size) to path atomically (temp + fsync + rename). */
int heap_file_save(struct heap_file *f, const char *path);
/* heap_file_close -- unmap the reserve and close the file. */
int heap_file_close(struct heap_file *f);

#endif
