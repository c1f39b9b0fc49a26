/* SPDX-License-Identifier: MIT */
/*
 * stats.c -- rvm_statistics and rvm_print_statistics.
 */
#include <string.h>

#include "rvm_int.h"

/* stats_hist -- count v in the histogram bucket whose bound it does not exceed */
void stats_hist(rvm_length_t *hist, int len, const rvm_length_t *dist, rvm_length_t v)
{
    int i = 0;
    while (i < len - 1 && v > dist[i])
        i++;
    hist[i]++;
}

/* add_off -- a += b for offsets */
static void add_off(rvm_offset_t *a, rvm_offset_t b)
{
    *a = rvm_add_offsets(a, &b);
}

/* add_hist -- tot[i] += n[i], n[i] = 0 */
static void add_hist(rvm_length_t *tot, rvm_length_t *n, int len)
{
    for (int i = 0; i < len; i++) {
        tot[i] += n[i];
        n[i] = 0;
    }
}

#define EPOCH(field) (s->tot_##field += s->n_##field, s->n_##field = 0)

/*
 * stats_end_epoch -- the original's statistics semantics: an n_* counter counts the
 * current epoch (since the last truncation) and truncation moves it into its tot_* total,
 * so n_x + tot_x is the count since the log was opened and neither is counted twice.
 */
void stats_end_epoch(rvm_statistics_t *s)
{
    EPOCH(abort);
    EPOCH(flush_commit);
    EPOCH(no_flush_commit);
    EPOCH(split);
    EPOCH(flush);
    EPOCH(rvm_flush);
    EPOCH(special);
    EPOCH(truncation_wait);
    EPOCH(range_elim);
    EPOCH(trans_elim);
    EPOCH(trans_coalesced);
    add_off(&s->tot_log_written, s->log_written);
    add_off(&s->tot_range_overlap, s->range_overlap);
    add_off(&s->tot_trans_overlap, s->trans_overlap);
    s->log_written = s->range_overlap = s->trans_overlap = RVM_MK_OFFSET(0, 0);
    s->tot_flush_time.tv_sec += s->flush_time.tv_sec;
    s->tot_flush_time.tv_usec += s->flush_time.tv_usec;
    s->tot_flush_time.tv_sec += s->tot_flush_time.tv_usec / 1000000;
    s->tot_flush_time.tv_usec %= 1000000;
    s->flush_time.tv_sec = 0;
    s->flush_time.tv_usec = 0;
    add_hist(s->tot_flush_times, s->flush_times, flush_times_len);
    add_hist(s->tot_range_lengths, s->range_lengths, range_lengths_len);
    add_hist(s->tot_range_elims, s->range_elims, range_elims_len);
    add_hist(s->tot_trans_elims, s->trans_elims, trans_elims_len);
    add_hist(s->tot_range_overlaps, s->range_overlaps, range_overlaps_len);
    add_hist(s->tot_trans_overlaps, s->trans_overlaps, range_overlaps_len);
}

/* rvm_statistics -- copy the counters */
rvm_return_t rvm_statistics(const char *version, rvm_statistics_t *statistics)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (version == NULL || strcmp(version, RVM_STATISTICS_VERSION) != 0)
        return RVM_ESTAT_VERSION_SKEW;
    if (statistics == NULL || statistics->struct_id != rvm_statistics_id)
        return RVM_ESTATISTICS;
    if (engine.log == NULL)
        return RVM_ELOG;
    rvm_bool_t heap = statistics->from_heap;
    pthread_mutex_lock(&engine.mu);
    pthread_mutex_lock(&engine.log->mu);
    engine.st.n_uncommit = (rvm_length_t)engine.n_open;
    engine.st.n_wrap = engine.log->used > 0 && engine.log->head_off >= engine.log->tail_off;
    engine.st.log_dev_cur = engine.log->used * 100 / engine.log->area_len;
    *statistics = engine.st;
    pthread_mutex_unlock(&engine.log->mu);
    pthread_mutex_unlock(&engine.mu);
    statistics->struct_id = rvm_statistics_id;
    statistics->from_heap = heap;
    return RVM_SUCCESS;
}

/* stats_off -- an rvm_offset_t as one number */
static unsigned long long stats_off(rvm_offset_t o)
{
    return (unsigned long long)o.low;
}

/* rvm_print_statistics -- human-readable dump */
rvm_return_t rvm_print_statistics(rvm_statistics_t *s, FILE *out)
{
    if (s == NULL || s->struct_id != rvm_statistics_id)
        return RVM_ESTATISTICS;
    if (out == NULL)
        out = stdout;
    fprintf(out, "RVM statistics (%s)\n", RVM_STATISTICS_VERSION);
    fprintf(out, "  current epoch:\n");
    fprintf(out,
            "    transactions: flush commits %lu, no_flush commits %lu, aborts %lu, "
            "uncommitted %lu, queued no_flush %lu (%llu bytes)\n",
            s->n_flush_commit, s->n_no_flush_commit, s->n_abort, s->n_uncommit, s->n_no_flush,
            stats_off(s->no_flush_length));
    fprintf(out,
            "    log: writes %lu, rvm_flush calls %lu, split %lu, special %lu, wrapped "
            "%lu, fill %lu%%, bytes written %llu, truncation waits %lu\n",
            s->n_flush, s->n_rvm_flush, s->n_split, s->n_special, s->n_wrap, s->log_dev_cur,
            stats_off(s->log_written), s->n_truncation_wait);
    fprintf(out,
            "    coalescing: ranges eliminated %lu (%llu bytes), across transactions "
            "%lu ranges (%llu bytes), transactions coalesced %lu\n",
            s->n_range_elim, stats_off(s->range_overlap), s->n_trans_elim,
            stats_off(s->trans_overlap), s->n_trans_coalesced);
    fprintf(out, "    last flush %lu ms, last truncation %lu ms\n", s->last_flush_time,
            s->last_truncation_time);
    fprintf(out, "  since initialization:\n");
    fprintf(out, "    transactions: flush %lu, no_flush %lu, aborts %lu\n", s->tot_flush_commit,
            s->tot_no_flush_commit, s->tot_abort);
    fprintf(out,
            "    log: writes %lu, rvm_flush %lu, split %lu, special %lu, wraps %lu, max "
            "fill %lu%%, bytes written %llu, sync time %ld.%06ld s\n",
            s->tot_flush, s->tot_rvm_flush, s->tot_split, s->tot_special, s->tot_wrap,
            s->log_dev_max, stats_off(s->tot_log_written), (long)s->tot_flush_time.tv_sec,
            (long)s->tot_flush_time.tv_usec);
    fprintf(out,
            "    coalescing: ranges %lu (%llu bytes), across transactions %lu (%llu "
            "bytes), transactions coalesced %lu\n",
            s->tot_range_elim, stats_off(s->tot_range_overlap), s->tot_trans_elim,
            stats_off(s->tot_trans_overlap), s->tot_trans_coalesced);
    fprintf(out,
            "    truncation: rvm_truncate %lu, incremental %lu, by waiting committers "
            "%lu, waits %lu, recoveries %lu, time %ld.%06ld s\n",
            s->tot_rvm_truncate, s->tot_async_truncation, s->tot_sync_truncation,
            s->tot_truncation_wait, s->tot_recovery, (long)s->tot_truncation_time.tv_sec,
            (long)s->tot_truncation_time.tv_usec);
    fprintf(out, "    range lengths (<=0,4,8,16,...,4096,more):");
    for (int i = 0; i < range_lengths_len; i++)
        fprintf(out, " %lu", s->tot_range_lengths[i]);
    fprintf(out, "\n");
    return RVM_SUCCESS;
}
