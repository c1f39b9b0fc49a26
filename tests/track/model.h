/* SPDX-License-Identifier: MIT */
/*
 * model.h -- deterministic batches of writes for model-based crash tests. Batch c of seed
 * writes to mem[0..len): sparse 8-byte stores, dense memsets over up to 3 pages, writes
 * across page ends, read(2) from a pipe (child != 0; the model uses memcpy of the same
 * bytes), single-byte stores, and rewrites of bytes with their own value.
 */
#ifndef LRVM_TESTS_MODEL_H
#define LRVM_TESTS_MODEL_H

#include <stddef.h>
#include <stdint.h>

void model_batch(char *mem, size_t len, uint64_t seed, uint64_t c, int child, int pfd[2]);

#endif
