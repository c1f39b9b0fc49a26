/* SPDX-License-Identifier: MIT */
/*
 * rvm_statistics.h -- LRVM statistics (original layout and field order).
 *
 * "Current epoch" counters restart at each truncation; tot_* counters accumulate
 * since rvm_initialize. Fields lrvm does not measure stay zero.
 */
#ifndef RVM_RVM_STATISTICS_H
#define RVM_RVM_STATISTICS_H

#include <stdio.h>
#include <rvm/rvm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RVM_STATISTICS_VERSION "RVM Statistics Version 1.1 8 Dec 1992"

/* histogram sizes and bucket boundaries */
#define flush_times_len 10
#define flush_times_dist 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 /* msec */
#define truncation_times_len 5
#define truncation_times_dist 1, 10, 100, 500 /* sec */
#define range_lengths_len 13
#define range_lengths_dist 0, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096
#define range_overlaps_len 13
#define range_overlaps_dist range_lengths_dist
#define trans_overlaps_len 13
#define trans_overlaps_dist range_lengths_dist
#define range_elims_len 6
#define range_elims_dist 0, 5, 10, 50, 100
#define trans_elims_len 6
#define trans_elims_dist 0, 5, 10, 50, 100
#define trans_coalesces_len 6
#define trans_coalesces_dist 0, 5, 10, 50, 100

typedef struct {
    rvm_struct_id_t struct_id; /* self-identifier, do not change */
    rvm_bool_t from_heap;      /* true if heap allocated, do not change */

    /* current epoch, transactions */
    rvm_length_t n_abort;           /* aborted transactions */
    rvm_length_t n_flush_commit;    /* flush-mode commits */
    rvm_length_t n_no_flush_commit; /* no_flush-mode commits */
    rvm_length_t n_uncommit;        /* transactions begun, not yet ended */
    rvm_length_t n_no_flush;        /* no_flush commits queued, not yet on the log */
    rvm_length_t n_truncation_wait; /* commits that waited for log space */
    rvm_offset_t no_flush_length;   /* bytes queued by no_flush commits */

    /* current epoch, log */
    rvm_length_t n_split;              /* records split across the log end (lrvm: never) */
    rvm_length_t n_flush;              /* log writes (each followed by one sync) */
    rvm_length_t n_rvm_flush;          /* explicit rvm_flush calls */
    rvm_length_t n_special;            /* special records (segment dictionary) */
    rvm_length_t n_wrap;               /* 1 iff the log head is beyond its tail */
    rvm_length_t log_dev_cur;          /* current log fill, % */
    rvm_offset_t log_written;          /* bytes written to the log */
    rvm_offset_t range_overlap;        /* bytes saved by intra-transaction coalescing */
    rvm_offset_t trans_overlap;        /* bytes saved by inter-transaction coalescing */
    rvm_length_t n_range_elim;         /* ranges eliminated within transactions */
    rvm_length_t n_trans_elim;         /* ranges eliminated across no_flush transactions */
    rvm_length_t n_trans_coalesced;    /* no_flush transactions coalesced into others */
    struct timeval flush_time;         /* time spent writing+syncing the log */
    rvm_length_t last_flush_time;      /* msec */
    rvm_length_t last_truncation_time; /* msec */
    rvm_length_t last_tree_build_time; /* msec */
    rvm_length_t last_tree_apply_time; /* msec */
    rvm_length_t flush_times[flush_times_len];
    rvm_length_t range_lengths[range_lengths_len];
    rvm_length_t range_elims[range_elims_len];
    rvm_length_t trans_elims[trans_elims_len];
    rvm_length_t range_overlaps[range_overlaps_len];
    rvm_length_t trans_overlaps[range_overlaps_len];

    /* cumulative since initialization */
    rvm_length_t tot_abort;
    rvm_length_t tot_flush_commit;
    rvm_length_t tot_no_flush_commit;
    rvm_length_t tot_split;
    rvm_length_t tot_flush;
    rvm_length_t tot_rvm_flush;
    rvm_length_t tot_special;
    rvm_length_t tot_wrap;
    rvm_length_t log_dev_max; /* highest log fill seen, % */
    rvm_offset_t tot_log_written;
    rvm_offset_t tot_range_overlap;
    rvm_offset_t tot_trans_overlap;
    rvm_length_t tot_range_elim;
    rvm_length_t tot_trans_elim;
    rvm_length_t tot_trans_coalesced;
    rvm_length_t tot_rvm_truncate;     /* rvm_truncate calls */
    rvm_length_t tot_async_truncation; /* background (incremental) truncations */
    rvm_length_t tot_sync_truncation;  /* truncations run by a waiting committer */
    rvm_length_t tot_truncation_wait;
    rvm_length_t tot_recovery;
    struct timeval tot_flush_time;
    struct timeval tot_truncation_time;
    rvm_length_t tot_tree_build_times[truncation_times_len];
    rvm_length_t tot_tree_apply_times[truncation_times_len];
    rvm_length_t tot_truncation_times[truncation_times_len];
    rvm_length_t tot_flush_times[flush_times_len];
    rvm_length_t tot_range_lengths[range_lengths_len];
    rvm_length_t tot_range_elims[range_elims_len];
    rvm_length_t tot_trans_elims[trans_elims_len];
    rvm_length_t tot_range_overlaps[range_overlaps_len];
    rvm_length_t tot_trans_overlaps[range_overlaps_len];
    rvm_length_t tot_trans_coalesces[trans_coalesces_len];
} rvm_statistics_t;

RVM_API rvm_return_t rvm_statistics(const char *version, rvm_statistics_t *statistics);
#define RVM_STATISTICS(statistics) rvm_statistics(RVM_STATISTICS_VERSION, (statistics))
RVM_API rvm_statistics_t *rvm_malloc_statistics(void);
RVM_API void rvm_init_statistics(rvm_statistics_t *statistics);
RVM_API rvm_statistics_t *rvm_copy_statistics(rvm_statistics_t *statistics);
RVM_API void rvm_free_statistics(rvm_statistics_t *statistics);
RVM_API rvm_return_t rvm_print_statistics(rvm_statistics_t *statistics, FILE *out_stream);

#ifdef __cplusplus
}
#endif

#endif /* RVM_RVM_STATISTICS_H */
