/* SPDX-License-Identifier: MIT */
/*
 * rds_heap.c -- an RDS heap's life: lay one out (rds_init_heap), make a segment holding one
 * (rds_zap_heap), start/stop using one already mapped, load/unload one from a segment; the
 * globals the original exports; error messages.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rds_int.h"

struct rds_heap rds_h;
pthread_mutex_t rds_lock = PTHREAD_MUTEX_INITIALIZER;

/* the original's exported globals (programs written for it declare them extern) */
RVM_API rds_heap_hdr_t *RecoverableHeapStartAddress;
RVM_API rds_block_t *RecoverableHeapHighAddress;
RVM_API rvm_region_def_t *RegionDefs;
RVM_API unsigned long NRegionDefs;
RVM_API rvm_bool_t rds_testsw = rvm_false;

static char rds_msg[1024];
char *rds_errmsg = rds_msg;

int rds_fail(int *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rds_msg, sizeof(rds_msg), fmt, ap);
    va_end(ap);
    RDS_LOG("rdstrace: Error!!! %s\n", rds_msg);
    *err = code;
    return -1;
}

int rds_rvm_fail(int *err, rvm_return_t rc, const char *what)
{
    return rds_fail(err, (int)rc, "RDS: %s failed: %s (%s)", what, rvm_return(rc),
                    rvm_errmsg ? rvm_errmsg : "");
}

/* check_params -- chunk size and list count a heap can be built with */
static int check_params(unsigned long chunk, unsigned long nlists, int *err)
{
    if (chunk < RDS_MIN_CHUNK_SIZE || chunk % sizeof(char *) != 0)
        return rds_fail(err, EBAD_ARGS,
                        "RDS: chunk size %lu must be a multiple of %zu and at "
                        "least %zu",
                        chunk, sizeof(char *), RDS_MIN_CHUNK_SIZE);
    if (nlists < RDS_MIN_FREE_LISTS)
        return rds_fail(err, EBAD_ARGS, "RDS: the number of free lists must be at least %d",
                        RDS_MIN_FREE_LISTS);
    return 0;
}

/* lay_out -- write a fresh header and one free block covering the heap (ranges declared) */
static int lay_out(char *base, rvm_length_t length, unsigned long chunk, unsigned long nlists,
                   uintptr_t first, uintptr_t end, rvm_tid_t *tid, int *err)
{
    rds_heap_hdr_t *h = (rds_heap_hdr_t *)base;
    rds_block_t *bp = (rds_block_t *)first;
    if (rds_range(tid, base, rds_hdr_len(nlists), err) || rds_range(tid, bp, sizeof(*bp), err) ||
        rds_range(tid, (char *)end - sizeof(rds_guard_t), sizeof(rds_guard_t), err))
        return -1;
    memset(h, 0, rds_hdr_len(nlists));
    strcpy(h->version, RDS_HEAP_VERSION);
    h->heaplength = length;
    h->chunk_size = chunk;
    h->nlists = h->maxlist = nlists;
    for (unsigned long i = 1; i <= nlists; i++)
        h->lists[i].guard = FREE_LIST_GUARD;
    bp->type = FREE_GUARD;
    bp->size = (end - first) / chunk;
    bp->prev = bp->next = NULL;
    *(rds_guard_t *)(end - sizeof(rds_guard_t)) = END_GUARD;
    h->lists[nlists].head = bp;
    h->stats.freebytes = (unsigned)(end - first);
    return 0;
}

int rds_init_heap(char *base, rvm_length_t length, unsigned long chunkSize, unsigned long nlists,
                  rvm_tid_t *tid, int *err)
{
    uintptr_t first, end;
    if (check_params(chunkSize, nlists, err))
        return -1;
    if (base == NULL || rds_geometry((uintptr_t)base, length, chunkSize, nlists, &first, &end))
        return rds_fail(err, ENO_ROOM,
                        "rds_init_heap: %lu bytes cannot hold the header of %lu "
                        "lists (%lu bytes) and one chunk of %lu",
                        (unsigned long)length, nlists, rds_hdr_len(nlists), chunkSize);
    struct rds_txn t;
    if (rds_txn_begin(&t, tid, err))
        return -1;
    *err = SUCCESS;
    int rc = lay_out(base, length, chunkSize, nlists, first, end, t.tid, err);
    return rds_txn_end(&t, rc == 0, err);
}

/* header_fail -- a started heap's header makes no sense */
static int header_fail(int *err, char *addr, const char *what)
{
    RecoverableHeapStartAddress = NULL;
    return rds_fail(err, ECORRUPT,
                    "RDS heap at %p: %s; this is not a usable RDS heap (run "
                    "rvmutl rds-check on its segment)",
                    (void *)addr, what);
}

int rds_start_heap(char *startAddr, int *err)
{
    rds_heap_hdr_t *h = (rds_heap_hdr_t *)startAddr;
    uintptr_t first, end;
    if (h == NULL)
        return rds_fail(err, EBAD_ARGS, "rds_start_heap: NULL start address");
    pthread_mutex_lock(&rds_lock);
    rds_h.hdr = NULL;
    int rc = 0;
    RecoverableHeapStartAddress = h;
    if (strncmp(h->version, RDS_HEAP_VERSION, RDS_VERSION_MAX) != 0) {
        RecoverableHeapStartAddress = NULL;
        rc = rds_fail(err, EHEAP_VERSION_SKEW,
                      "RDS heap at %p: version \"%.79s\" is not "
                      "\"%s\" (not an RDS heap, or another version)",
                      (void *)h, h->version, RDS_HEAP_VERSION);
    } else if (h->chunk_size < RDS_MIN_CHUNK_SIZE || h->chunk_size % sizeof(char *) ||
               h->nlists < 1 || h->maxlist < 1 || h->maxlist > h->nlists ||
               rds_geometry((uintptr_t)h, h->heaplength, h->chunk_size, h->nlists, &first, &end)) {
        rc = header_fail(err, startAddr,
                         "chunk size, list count, maxlist or heap length is "
                         "out of range");
    } else {
        rds_h.first = (char *)first;
        rds_h.end = (char *)end;
        rds_h.chunk = h->chunk_size;
        rds_h.hdr = h;
        unsigned long hdr = rds_hdr_len(h->nlists);
        RecoverableHeapHighAddress =
            (rds_block_t *)(startAddr + hdr +
                            (h->heaplength - hdr) / h->chunk_size * h->chunk_size);
        *err = SUCCESS;
    }
    pthread_mutex_unlock(&rds_lock);
    return rc;
}

int rds_stop_heap(int *err)
{
    pthread_mutex_lock(&rds_lock);
    rds_h.hdr = NULL;
    RecoverableHeapStartAddress = NULL;
    pthread_mutex_unlock(&rds_lock);
    *err = SUCCESS;
    return 0;
}

int rds_load_heap(char *DevName, rvm_offset_t DevLength, char **staticAddr, int *err)
{
    rvm_return_t rc = rvm_load_segment(DevName, DevLength, NULL, &NRegionDefs, &RegionDefs);
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(err, rc, "rds_load_heap: rvm_load_segment");
    if (NRegionDefs != 2) {
        unsigned long n = NRegionDefs;
        rvm_release_segment(NRegionDefs, &RegionDefs);
        return rds_fail(err, EBAD_SEGMENT_HDR,
                        "rds_load_heap %s: the segment has %lu regions; "
                        "an RDS segment has 2 (heap, statics): make it with rdsinit",
                        DevName, n);
    }
    if (rds_start_heap(RegionDefs[0].vmaddr, err) == 0 &&
        RecoverableHeapStartAddress->heaplength > RegionDefs[0].length)
        header_fail(err, RegionDefs[0].vmaddr, "its length exceeds the heap region");
    if (*err != SUCCESS) {
        char msg[sizeof(rds_msg) / 2];
        snprintf(msg, sizeof(msg), "%s", rds_errmsg);
        rds_stop_heap(&(int){0});
        rvm_release_segment(NRegionDefs, &RegionDefs);
        NRegionDefs = 0;
        snprintf(rds_msg, sizeof(rds_msg), "rds_load_heap %.256s: %s", DevName, msg);
        return -1;
    }
    *staticAddr = RegionDefs[1].vmaddr;
    return 0;
}

int rds_unload_heap(int *err)
{
    rvm_flush();
    rvm_truncate();
    rvm_return_t rc = RVM_SUCCESS;
    if (RegionDefs != NULL)
        rc = rvm_release_segment(NRegionDefs, &RegionDefs);
    NRegionDefs = 0;
    rds_stop_heap(err);
    return rc == RVM_SUCCESS ? 0
                             : rds_rvm_fail(err, rc,
                                            "rds_unload_heap: "
                                            "rvm_release_segment");
}

/* zap_init -- initialise the heap of a freshly loaded two-region segment */
static int zap_init(char *startAddr, rvm_length_t heapLength, unsigned long nlists,
                    unsigned long chunkSize, int *err)
{
    rvm_tid_t tid;
    rvm_init_tid(&tid);
    rvm_return_t rc = rvm_begin_transaction(&tid, restore);
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(err, rc, "rds_zap_heap: rvm_begin_transaction");
    if (rds_init_heap(startAddr, heapLength, chunkSize, nlists, &tid, err)) {
        rvm_abort_transaction(&tid);
        return -1;
    }
    rc = rvm_end_transaction(&tid, no_flush);
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(err, rc, "rds_zap_heap: rvm_end_transaction");
    return 0;
}

int rds_zap_heap(char *DevName, rvm_offset_t DevLength, char *startAddr, rvm_length_t staticLength,
                 rvm_length_t heapLength, unsigned long nlists, unsigned long chunkSize, int *err)
{
    if (check_params(chunkSize, nlists, err))
        return -1;
    rvm_region_def_t regions[2];
    regions[0].length = heapLength;
    regions[0].vmaddr = startAddr;
    regions[1].length = staticLength;
    regions[1].vmaddr = startAddr + heapLength;
    rvm_return_t rc = rvm_create_segment(DevName, DevLength, NULL, 2, regions);
    if (rc == RVM_SUCCESS)
        rc = rvm_truncate();
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(err, rc, "rds_zap_heap: rvm_create_segment");
    unsigned long n = 0;
    rvm_region_def_t *loaded = NULL;
    rc = rvm_load_segment(DevName, DevLength, NULL, &n, &loaded);
    if (rc != RVM_SUCCESS)
        return rds_rvm_fail(err, rc, "rds_zap_heap: rvm_load_segment");
    *err = SUCCESS;
    if (n != 2)
        rds_fail(err, EBAD_SEGMENT_HDR, "rds_zap_heap %s: reloaded segment has %lu regions",
                 DevName, n);
    else
        zap_init(startAddr, heapLength, nlists, chunkSize, err);
    /* the heap must be in the segment file, not only in the log, when we return */
    if (*err == SUCCESS && (rc = rvm_flush()) == RVM_SUCCESS)
        rc = rvm_truncate();
    if (*err == SUCCESS && rc != RVM_SUCCESS)
        rds_rvm_fail(err, rc, "rds_zap_heap: rvm_flush/rvm_truncate");
    rvm_release_segment(n, &loaded);
    return *err == SUCCESS ? 0 : -1;
}
