/* SPDX-License-Identifier: MIT */
/*
 * rds_stats.c -- the heap's statistics (kept in the heap header), tracing, the heap dump,
 * and rds_check_heap (the checker run on the live heap).
 */
#include <string.h>

#include "rds_int.h"

#define HDR (rds_h.hdr)

int rds_tracing;
FILE *rds_tracing_file;

int rds_print_stats(void)
{
    if (HDR == NULL)
        return -1;
    rds_stats_t s = HDR->stats; /* a racy copy is fine: these are counters for people */
    printf("Number of\n");
    printf(" Free bytes: \t %x\n", s.freebytes);
    printf(" Alloced bytes:\t %x\n", s.mallocbytes);
    printf(" Mallocs: \t %u\n", s.malloc);
    printf(" Frees: \t %u\n", s.free);
    printf(" Preallocs: \t %u\n", s.prealloc);
    printf(" Hits: \t\t %u\n", s.hits);
    printf(" Misses: \t %u\n", s.misses);
    printf(" Large Hits: \t %u\n", s.large_hits);
    printf(" Large Misses: \t %u\n", s.large_misses);
    printf(" Coalesces: \t %u\n", s.coalesce);
    printf(" Merges \t %u\n", s.merged);
    printf(" Not Merged: \t %u\n", s.unmerged);
    printf(" Times the Large List pointer has changed: %u\n", s.large_list);
    return 0;
}

int rds_clear_stats(int *err)
{
    if (HDR == NULL)
        return rds_fail(err, EHEAP_INIT, "rds_clear_stats: no RDS heap is started");
    struct rds_txn t;
    if (rds_txn_begin(&t, NULL, err))
        return -1;
    *err = SUCCESS;
    pthread_mutex_lock(&rds_lock);
    int rc = rds_range(t.tid, &HDR->stats, sizeof(HDR->stats), err);
    if (rc == 0) {
        /* freebytes and mallocbytes describe the heap, not the history: keep them */
        unsigned fb = HDR->stats.freebytes, mb = HDR->stats.mallocbytes;
        memset(&HDR->stats, 0, sizeof(HDR->stats));
        HDR->stats.freebytes = fb;
        HDR->stats.mallocbytes = mb;
    }
    rc = rds_txn_end(&t, rc == 0, err);
    pthread_mutex_unlock(&rds_lock);
    return rc;
}

int rds_get_stats(rds_stats_t *stats)
{
    if (stats == NULL)
        return EBAD_ARGS;
    if (HDR == NULL)
        return EHEAP_INIT;
    *stats = HDR->stats;
    return 0;
}

int rds_trace_on(FILE *file)
{
    if (file == NULL)
        return EBAD_ARGS;
    rds_tracing_file = file;
    rds_tracing = 1;
    RDS_LOG("rdstrace: tracing on\n");
    return 0;
}

int rds_trace_off(void)
{
    RDS_LOG("rdstrace: tracing off\n");
    rds_tracing = 0;
    return 0;
}

/* rds_trace_dump_free_lists -- one trace line per list (and per block on the top list);
 * exported by the original without a prototype in rds.h (caller holds rds_lock or knows no
 * other thread uses the heap) */
void rds_trace_dump_free_lists(void)
{
    if (HDR == NULL)
        return;
    unsigned long limit = (unsigned long)(rds_h.end - rds_h.first) / rds_h.chunk;
    RDS_LOG("rdstrace: start dump_free_lists\n");
    for (unsigned long i = 1; i <= HDR->nlists; i++) {
        if (HDR->lists[i].guard != FREE_LIST_GUARD)
            RDS_LOG("rdstrace: Error!!! Bad guard on list %lu!!!\n", i);
        unsigned long count = 0;
        for (rds_block_t *bp = HDR->lists[i].head; bp != NULL; bp = bp->next) {
            if (!rds_blk_valid(bp) || bp->type != FREE_GUARD || ++count > limit) {
                RDS_LOG("rdstrace: Error!!! Bad block %p on list %lu\n", (void *)bp, i);
                break;
            }
            if (i == HDR->maxlist)
                RDS_LOG("rdstrace: size %lu count 1\n", bp->size);
        }
        if (i != HDR->maxlist)
            RDS_LOG("rdstrace: size %lu count %lu\n", i, count);
    }
    RDS_LOG("rdstrace: stop dump_free_lists\n");
}

int rds_trace_dump_heap(void)
{
    if (HDR == NULL)
        return EHEAP_INIT;
    pthread_mutex_lock(&rds_lock);
    RDS_LOG("rdstrace: start heap_dump\n");
    RDS_LOG("rdstrace: version_string %s\n", HDR->version);
    RDS_LOG("rdstrace: heaplength %lu\n", HDR->heaplength);
    RDS_LOG("rdstrace: chunk_size %lu\n", HDR->chunk_size);
    RDS_LOG("rdstrace: nlists %lu\n", HDR->nlists);
    rds_trace_dump_stats();
    RDS_LOG("rdstrace: maxlist %lu\n", HDR->maxlist);
    rds_trace_dump_free_lists();
    RDS_LOG("rdstrace: stop heap_dump\n");
    pthread_mutex_unlock(&rds_lock);
    return 0;
}

/* rds_trace_dump_stats -- the statistics to the trace (exported as by the original) */
void rds_trace_dump_stats(void)
{
    if (HDR == NULL)
        return;
    rds_stats_t s = HDR->stats;
    RDS_LOG("rdstrace: start dump_stats\n");
    RDS_LOG("rdstrace: Free_bytes \t %x\nrdstrace: Alloced_bytes\t %x\n", s.freebytes,
            s.mallocbytes);
    RDS_LOG("rdstrace: Mallocs \t %u\nrdstrace: Frees \t %u\nrdstrace: Preallocs \t %u\n", s.malloc,
            s.free, s.prealloc);
    RDS_LOG("rdstrace: Hits \t\t %u\nrdstrace: Misses \t %u\n", s.hits, s.misses);
    RDS_LOG("rdstrace: Large_Hits \t %u\nrdstrace: Large_Misses \t %u\n", s.large_hits,
            s.large_misses);
    RDS_LOG("rdstrace: Coalesces \t %u\nrdstrace: Merges \t %u\nrdstrace: Not_Merged \t %u\n",
            s.coalesce, s.merged, s.unmerged);
    RDS_LOG("rdstrace: Large_List %u\nrdstrace: stop dump_stats\n", s.large_list);
}

int rds_check_heap(FILE *report, int *err)
{
    if (HDR == NULL)
        return rds_fail(err, EHEAP_INIT, "rds_check_heap: no RDS heap is started");
    char msg[512];
    struct rds_check_stats st;
    pthread_mutex_lock(&rds_lock);
    int rc =
        rds_check_image((const char *)HDR, HDR->heaplength, (uintptr_t)HDR, &st, msg, sizeof(msg));
    pthread_mutex_unlock(&rds_lock);
    if (rc != 0) {
        if (report != NULL)
            fprintf(report, "%s\n", msg);
        return rds_fail(err, ECORRUPT, "%s", msg);
    }
    if (report != NULL)
        fprintf(report,
                "RDS heap at %p: consistent: %lu blocks, %lu free (%lu bytes, largest "
                "%lu), %lu allocated (%lu bytes)%s\n",
                (void *)HDR, st.nblocks, st.nfree, st.free_bytes, st.largest_free, st.nalloc,
                st.alloc_bytes,
                st.stats_mismatch ? "; note: the header's byte counters disagree" : "");
    *err = SUCCESS;
    return 0;
}
