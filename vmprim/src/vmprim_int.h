/* SPDX-License-Identifier: MIT */
/*
 * vmprim_int.h -- internals shared between vmprim's source files, grouped by the file that
 * defines them. Tests link the static library and may use these.
 */
#ifndef LRVM_VMPRIM_INT_H
#define LRVM_VMPRIM_INT_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lrvm/vmprim.h"

/* Kernel interfaces newer than Debian 12's linux-libc-dev (6.1): values from the 6.7+ uapi. */
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

/* ---- page.c ---- */
/* page_shift -- log2 of the page size */
unsigned page_shift(void);

/* ---- trap.c ---- */
/* trap_write_msg -- write a NUL-terminated message to stderr with write(2) (signal-safe) */
void trap_write_msg(const char *s);
/* trap_fmt_hex -- format v as 0x... into buf (>= 19 bytes); async-signal-safe */
char *trap_fmt_hex(char *buf, uintptr_t v);

/* ---- uffd.c ---- */
/* How the process may open userfaultfd, and what the kernel supports. Probed once. */
struct uffd_caps {
    int usable;        /* 1 if some route opened a userfaultfd */
    uint64_t features; /* UFFDIO_API features the kernel offers */
    int pagemap_scan;  /* 1 if PAGEMAP_SCAN + WP_ASYNC worked on a scratch page */
    char route[64];    /* which route worked, e.g. "userfaultfd(UFFD_USER_MODE_ONLY)" */
    char why[256];     /* if !usable: every route's failure */
};
/* uffd_caps_get -- the cached capabilities (probed on first call, thread-safe) */
const struct uffd_caps *uffd_caps_get(void);
/* uffd_open -- open a userfaultfd and enable features (UFFDIO_API); returns fd or -errno */
int uffd_open(uint64_t features, char *why, size_t whylen);
/* uffd_register_wp -- UFFDIO_REGISTER [addr,len) in write-protect mode */
int uffd_register_wp(int fd, void *addr, size_t len);
/* uffd_unregister -- UFFDIO_UNREGISTER [addr,len) */
int uffd_unregister(int fd, void *addr, size_t len);
/* uffd_wp -- UFFDIO_WRITEPROTECT [addr,len): protect (on=1) or unprotect (on=0).
 * Async-signal-safe (one ioctl). Returns 0 or errno. */
int uffd_wp(int fd, void *addr, size_t len, int on);

/* ---- dirty.c ---- */
/* One armed range of a tracker. */
struct dirty_range {
    uintptr_t start;
    size_t len;
    size_t npages;
    int trap_id;               /* dispatcher slot (fault backends), -1 otherwise */
    int sparse;                /* wp-async armed sparsely (vmp_dirty_arm_sparse) */
    _Atomic uint64_t *written; /* fault backends: page must be reported (set before open) */
    _Atomic uint64_t *claimed; /* fault backends: a thread took this epoch's opening */
    _Atomic uint64_t *ready;   /* fault backends: the opening is complete (page writable) */
    struct vmp_dirty *owner;
};

#define DIRTY_MAX_RANGES 64

struct vmp_dirty {
    vmp_backend_t backend;
    vmp_first_write_fn hook;
    void *hook_arg;
    int uffd;             /* userfaultfd (WP_ASYNC, UFFD_SIGBUS), -1 otherwise */
    int pagemap_fd;       /* /proc/self/pagemap (WP_ASYNC), -1 otherwise */
    pthread_mutex_t lock; /* serialises arm/disarm/collect/prepare */
    struct dirty_range *ranges[DIRTY_MAX_RANGES];
    size_t nranges;
    /* continuation of a collect that filled the caller's array */
    int cont_active;
    size_t cont_range;
    uintptr_t cont_addr; /* WP_ASYNC: next address to scan */
    size_t cont_word;    /* fault backends: next bitmap word */
    void *scan_vec;      /* WP_ASYNC: struct page_region buffer */
    size_t scan_vec_len;
    char reason[256];
    char errmsg[256];
};

/* dirty_set_err -- record a printf-style message in t->errmsg; returns rc */
int dirty_set_err(struct vmp_dirty *t, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- dirty_fault.c: backends UFFD_SIGBUS and MPROTECT ---- */
int fault_arm(struct vmp_dirty *t, struct dirty_range *r);
int fault_disarm(struct vmp_dirty *t, struct dirty_range *r);
/* fault_collect -- collect from range r starting at bitmap word *word; emits runs to fn
 * until room (in pages, SIZE_MAX = unlimited) is exhausted. Returns 0 or errno;
 * *word is where to resume (== nwords when the range is done). */
int fault_collect(struct vmp_dirty *t, struct dirty_range *r, size_t *word, size_t *room,
                  vmp_run_fn fn, void *arg);
int fault_prepare(struct vmp_dirty *t, struct dirty_range *r, uintptr_t a, uintptr_t b);
/* fault_release -- MADV_DONTNEED pages [a, b) of r and keep them tracked; 0 or errno */
int fault_release(struct vmp_dirty *t, struct dirty_range *r, uintptr_t a, uintptr_t b);

/* ---- dirty_wpasync.c: backend WP_ASYNC ---- */
int wpasync_arm(struct vmp_dirty *t, struct dirty_range *r, size_t wp_len);
int wpasync_peek(struct vmp_dirty *t, struct dirty_range *r, vmp_run_fn fn, void *arg);
int wpasync_disarm(struct vmp_dirty *t, struct dirty_range *r);
/* wpasync_collect -- scan [*addr, range end) re-arming written pages; like fault_collect */
int wpasync_collect(struct vmp_dirty *t, struct dirty_range *r, uintptr_t *addr, size_t *room,
                    vmp_run_fn fn, void *arg);
/* wpasync_probe -- try WP_ASYNC + PAGEMAP_SCAN on a scratch page; 0 or errno + why */
int wpasync_probe(int uffd, char *why, size_t whylen);

#endif /* LRVM_VMPRIM_INT_H */
