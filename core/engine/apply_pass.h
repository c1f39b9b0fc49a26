/* SPDX-License-Identifier: MIT */
/*
 * apply_pass.h -- one apply pass (apply_pass.c): collect the ranges of consecutive records,
 * then write the final bytes of everything they touch once, in segment offset order.
 * Used by apply.c (recovery and truncation); one pass at a time (trunc_mu).
 */
#ifndef LRVM_ENGINE_APPLY_PASS_H
#define LRVM_ENGINE_APPLY_PASS_H

#include <stddef.h>
#include <stdint.h>

#include "rvm_int.h"

/* the log read window of an apply grows up to this, and a pass gathers records up to this
 * much again (a record larger than this is a window, and a pass, of its own). Both are
 * resident while a truncation runs (the shim's exit truncation too), so they count in the
 * program's peak RSS. Measured with bench-apply.sh (300 MB of records, side by side with 64 MiB):
 * windows of 4, 8 and 16 MiB all applied 10-50 % faster than 64 MiB (a pass that fits the
 * caches sorts and sweeps faster), so the smallest costs least memory for no loss. */
#define APPLY_PASS_BYTES (4u << 20)

/* a piece's sort key: segment id above PASS_OFF_BITS bits of segment offset */
#define PASS_OFF_BITS 48
#define PASS_OFF_LIMIT (1ull << PASS_OFF_BITS)
#define PASS_KEY(id, off) (((uint64_t)(id) << PASS_OFF_BITS) | (off))

struct pass_piece {  /* one range of a record, in log order */
    uint64_t key;    /* PASS_KEY(segment id, offset) */
    const char *src; /* its new bytes (in the log read window) */
    uint32_t len;
};
struct pass_ord { /* sort entry: a piece's key and its log position */
    uint64_t key;
    uint32_t idx;
};
struct pass_extent { /* a run of final bytes, disjoint from every other */
    uint64_t key;
    uint64_t len;
    const char *src;
};

struct apply_pass {
    struct pass_piece *pc;
    size_t n, cap;
    struct pass_ord *ord, *tmp;
    size_t ordcap, tmpcap;
    uint32_t *heap;
    size_t heapcap;
    struct pass_extent *x;
    size_t nx, xcap;
    struct buf scratch; /* one merged write */
    char *carry;        /* new values kept from earlier read windows (up to
                                   * APPLY_PASS_BYTES, allocated once, touched as used) */
    size_t carry_len;
    const char *wlo, *whi;         /* the bytes of the current read window the pass uses */
    size_t wfirst;                 /* the first piece pointing into the current window */
    struct seg *segs[SEG_MAX + 1]; /* the segments pieces name, by id */
};

int pass_add(struct apply_pass *p, struct seg *s, uint64_t off, uint32_t len, const char *src);
int pass_write(struct apply_pass *p, struct seg **bad);
void pass_note(struct apply_pass *p, const char *lo, const char *hi);
int pass_carry(struct apply_pass *p);
void pass_reset(struct apply_pass *p);
void pass_free(struct apply_pass *p);

#endif /* LRVM_ENGINE_APPLY_PASS_H */
