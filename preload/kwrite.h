/* SPDX-License-Identifier: MIT */
/*
 * kwrite.h -- the machinery of the kernel-write wrappers (kwrite.c, kwinfo.c, kwstdio.c):
 * finding libc's real function, testing whether an output range meets the tracked heap, and
 * the two remedies, prepare (KW_RETRY) and bounce (BOUNCE). See kwrite.c's file comment.
 */
#ifndef LRVM_PRELOAD_KWRITE_H
#define LRVM_PRELOAD_KWRITE_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "shim.h"

#define KW_EXPORT __attribute__((visibility("default")))

/* kw_real -- the next definition of name (glibc's), cached in *slot; a libc without it is
 * a broken installation: says which symbol and aborts */
void *kw_real(void **slot, const char *name);

/* kw_try -- resolve *slot now if libc has name (a missing one aborts only when called) */
void kw_try(void **slot, const char *name);
/* shim_kwinfo_setup, shim_helpers_setup -- resolve kwinfo.c's and helpers.c's real
 * functions (called by shim_kwrite_setup) */
void shim_kwinfo_setup(void);
void shim_helpers_setup(void);
/* shim_stacks_setup -- resolve stacks.c's real functions (called by shim_kwrite_setup) */
void shim_stacks_setup(void);

#define REAL(fn) ((__typeof__(&fn))kw_real(&kw_slot_##fn, #fn))
#define SLOT(fn) static void *kw_slot_##fn

/* kw_hit -- [p, p+len) meets the tracked heap or the tracked globals (false whenever no fault
 * backend is in use). The globals count too: a program's static buffer (xz reads its input
 * into one in .bss) is as write-protected as the heap. */
static inline int kw_hit_a(uintptr_t a, size_t len)
{
    return len != 0 &&
           ((a < shim_kw_hi && a + len > shim_kw_lo) || (a < shim_kw_ghi && a + len > shim_kw_glo));
}

/* kw_prep_a -- open and record the tracked part of [a, a+len) (heap or globals) before the
 * kernel writes there; 1 if some of it is tracked (then an EFAULT is worth a retry), else 0 */
int kw_prep_a(uintptr_t a, size_t len);

/* Addresses, not pointers: glibc declares read's buffer write-only, and gcc would take a
 * const pointer argument for a read of uninitialised memory. */
#define kw_hit(p, len) kw_hit_a((uintptr_t)(p), (len))
#define kw_prep(p, len) kw_prep_a((uintptr_t)(p), (len))

/* KW_RETRY -- evaluate call; if it failed with EFAULT and prep touched the heap, prepare
 * again (prep re-evaluated) and call once more */
#define KW_RETRY(prep, call)                     \
    ({                                           \
        int hit_ = (prep);                       \
        __typeof__(call) r_ = (call);            \
        if (r_ < 0 && errno == EFAULT && hit_) { \
            (void)(prep);                        \
            r_ = (call);                         \
        }                                        \
        r_;                                      \
    })

/* BOUNCE -- call with *out redirected to a stack copy when out is in the heap, then copy the
 * result into the heap (a user-space store, recorded by the fault handler). The copy is
 * made only on success: on failure the kernel leaves *out unspecified anyway. */
#define BOUNCE(type, out, call_with)                \
    ({                                              \
        __typeof__(call_with(out)) r_;              \
        if (kw_hit((out), sizeof(type))) {          \
            type tmp_;                              \
            r_ = call_with(&tmp_);                  \
            if (r_ >= 0) {                          \
                int e_ = errno;                     \
                memcpy((out), &tmp_, sizeof(type)); \
                errno = e_;                         \
            }                                       \
        } else {                                    \
            r_ = call_with(out);                    \
        }                                           \
        r_;                                         \
    })

#endif
