/* SPDX-License-Identifier: MIT */
/*
 * rds.h -- Recoverable Dynamic Storage: a malloc/free heap inside an RVM segment, whose
 * every change is part of an RVM transaction. Source-compatible with the original LRVM
 * distribution's rds.h, and the heap layout is the original's (see docs/rds.md).
 *
 * Errors: functions store SUCCESS (0), a negative RDS code below, or a positive
 * rvm_return_t (the RVM call that failed) in *err. After a failure, rds_errmsg says what
 * went wrong in words (which block, which address, what to do).
 *
 * Transactions: with tid == NULL, rds_malloc/rds_free/rds_prealloc run their own
 * transaction (restore mode, committed no_flush). With a caller's tid, the change is part
 * of that transaction: undone by rvm_abort_transaction if the tid was begun in restore mode
 * (begin it in restore mode; after a failed call, abort it), made durable by its commit.
 * RVM gives no isolation: while a caller's transaction that freed or allocated is open, do
 * not let another thread's transaction use the heap, or use rds_fake_free/rds_do_free,
 * which frees only once the caller has committed.
 */
#ifndef _RDS_H_
#define _RDS_H_

#include <stdio.h>

#include "rvm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* error codes (negative; positive values in *err are rvm_return_t codes) */
#define SUCCESS 0
#define ERVM_FAILED -1
#define EBAD_LIST -2
#define EBAD_SEGMENT_HDR -3
#define EHEAP_VERSION_SKEW -4
#define EHEAP_INIT -5
#define EBAD_ARGS -6
#define ECORRUPT -7
#define EFREED_TWICE -8
#define ENO_ROOM -9

RVM_API int rds_zap_heap(char *DevName, rvm_offset_t DevLength, char *startAddr,
                         rvm_length_t staticLength, rvm_length_t heapLength, unsigned long nlists,
                         unsigned long chunkSize, int *err);
RVM_API int rds_init_heap(char *base, rvm_length_t length, unsigned long chunkSize,
                          unsigned long nlists, rvm_tid_t *tid, int *err);
RVM_API int rds_load_heap(char *DevName, rvm_offset_t DevLength, char **staticAddr, int *err);
RVM_API int rds_unload_heap(int *err);
RVM_API int rds_start_heap(char *startAddr, int *err);
RVM_API int rds_stop_heap(int *err);
RVM_API int rds_prealloc(unsigned long size, unsigned long nblocks, rvm_tid_t *tid, int *err);
RVM_API char *rds_malloc(unsigned long size, rvm_tid_t *tid, int *err);
RVM_API int rds_free(char *addr, rvm_tid_t *tid, int *err);
RVM_API int rds_maxblock(unsigned long size);

/* Frees that wait for the caller's commit: rds_fake_free records the intention (in
 * ordinary memory), rds_do_free frees every recorded block in one transaction ended with
 * mode, then releases the table. Call rds_do_free after your transaction committed, or
 * drop the list (free(list->table)) if it aborted. Start with table = NULL. */
typedef struct intlist {
    unsigned long size;  /* bytes allocated for table */
    unsigned long count; /* entries in use */
    char **table;
} intentionList_t;

#define STARTSIZE 128 /* first size of an intention table, in bytes */

RVM_API int rds_fake_free(char *addr, intentionList_t *list);
RVM_API int rds_do_free(intentionList_t *list, rvm_mode_t mode);

/* statistics, kept in the heap header (13 x 32-bit, in this order) */
typedef struct {
    unsigned malloc;       /* allocation requests */
    unsigned prealloc;     /* preallocation requests */
    unsigned free;         /* block free requests */
    unsigned coalesce;     /* heap coalesce count */
    unsigned hits;         /* no need to split */
    unsigned misses;       /* split required */
    unsigned large_list;   /* largest list pointer changed */
    unsigned large_hits;   /* large blocks present in list */
    unsigned large_misses; /* large block split required */
    unsigned merged;       /* objects merged by coalescing */
    unsigned unmerged;     /* objects not merged by coalescing */
    unsigned freebytes;    /* bytes in free blocks */
    unsigned mallocbytes;  /* bytes in allocated blocks */
} rds_stats_t;

RVM_API int rds_print_stats(void);
RVM_API int rds_clear_stats(int *err);
RVM_API int rds_get_stats(rds_stats_t *stats);

RVM_API extern int rds_tracing;
RVM_API extern FILE *rds_tracing_file;
RVM_API int rds_trace_on(FILE *file);
RVM_API int rds_trace_off(void);
RVM_API int rds_trace_dump_heap(void);

#define RDS_LOG(...)                                \
    do {                                            \
        if (rds_tracing && rds_tracing_file) {      \
            fprintf(rds_tracing_file, __VA_ARGS__); \
            fflush(rds_tracing_file);               \
        }                                           \
    } while (0)

/* lrvm extensions (not in the original) */

/* rds_errmsg -- text of the last RDS failure (names the address and what to do) */
RVM_API extern char *rds_errmsg;
/* rds_check_heap -- walk every block and every free list of the started heap; returns 0
 * and *err = SUCCESS if the heap is consistent, else -1 and *err = ECORRUPT with the first
 * damaged block described in rds_errmsg (also written to report unless it is NULL) */
RVM_API int rds_check_heap(FILE *report, int *err);

#ifdef __cplusplus
}
#endif

#endif /* _RDS_H_ */
