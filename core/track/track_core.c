/* SPDX-License-Identifier: MIT */
/*
 * track_core.c -- tracking on top of core: the commit sink (core's txn_commit_vector, so a
 * tracked commit is one transaction of the same redo log as explicit transactions) and the
 * check that a region given to rvm_track is mapped by rvm_map.
 */
#include <stdlib.h>

#include "log_format.h"
#include "rvm_int.h"
#include "track.h"
#include "txn.h"

static struct txn_vec *core_vec;
static size_t core_veccap;

/* track_core_sink -- commit n ranges as one transaction through core (tracker.mu held, so the
 * vector buffer needs no lock of its own) */
rvm_return_t track_core_sink(void *arg, const struct track_range *r, size_t n, int sync,
                             uint64_t *logged)
{
    (void)arg;
    if (n > core_veccap) {
        size_t c = core_veccap ? core_veccap : 1024;
        while (c < n)
            c *= 2;
        struct txn_vec *v = realloc(core_vec, c * sizeof(*v));
        if (v == NULL)
            return RVM_ENO_MEMORY;
        core_vec = v;
        core_veccap = c;
    }
    uint64_t size = LOG_REC_HDR + (uint64_t)n * LOG_RANGE_HDR;
    for (size_t i = 0; i < n; i++) {
        core_vec[i] = (struct txn_vec){.dest = r[i].dest, .src = r[i].src, .len = r[i].len};
        size += r[i].len;
    }
    rvm_return_t rc = txn_commit_vector(core_vec, n, sync ? flush : no_flush);
    *logged = (size + 7u) & ~(uint64_t)7u; /* log_record_size() */
    return rc;
}

/* track_core_entry -- txn_commit_stream's view of range i of a track_range array */
static void track_core_entry(void *arg, size_t i, struct txn_vec *v)
{
    const struct track_range *r = arg;
    *v = (struct txn_vec){.dest = r[i].dest, .src = r[i].src, .len = r[i].len};
}

/* track_core_sink_stream -- the sink of a final commit: the record goes to the log
 * straight from the tracker's buffer (txn_commit_stream), without core's range array and
 * copy into its queue, so the exit commit holds the changed bytes once. Always durable
 * (flush), whatever sync asks: it is the process's last commit. */
rvm_return_t track_core_sink_stream(void *arg, const struct track_range *r, size_t n, int sync,
                                    uint64_t *logged)
{
    (void)arg;
    (void)sync;
    uint64_t size = LOG_REC_HDR + (uint64_t)n * LOG_RANGE_HDR;
    for (size_t i = 0; i < n; i++)
        size += r[i].len;
    *logged = (size + 7u) & ~(uint64_t)7u;
    return txn_commit_stream(track_core_entry, (void *)r, n);
}

/* track_core_cover_seq -- see track.h */
uint64_t track_core_cover_seq(void)
{
    struct log *lg = engine.log;
    if (lg == NULL)
        return 0;
    pthread_mutex_lock(&lg->mu);
    uint64_t v = lg->cs.n ? UINT64_MAX : lg->next_seq - 1;
    pthread_mutex_unlock(&lg->mu);
    return v;
}

/* track_core_applied_seq -- see track.h */
uint64_t track_core_applied_seq(void)
{
    return engine.log != NULL ? trunc_applied_seq(engine.log) : 0;
}

/* track_core_apply_ahead -- see track.h */
int track_core_apply_ahead(void)
{
    if (engine.log != NULL)
        return trunc_set_apply_ahead(engine.log, 1);
    return 0;
}

/* track_core_apply_through -- see track.h */
uint64_t track_core_apply_through(uint64_t seq)
{
    return engine.log != NULL ? trunc_apply_through(engine.log, seq) : 0;
}

/* track_core_stream_ready -- see track.h */
int track_core_stream_ready(void)
{
    return txn_stream_ready();
}

/* track_core_stream_fits -- see track.h */
int track_core_stream_fits(const struct track_range *r, size_t n)
{
    uint64_t size = LOG_REC_HDR + (uint64_t)n * LOG_RANGE_HDR;
    for (size_t i = 0; i < n; i++)
        size += r[i].len;
    return txn_stream_fits((size + 7u) & ~(uint64_t)7u);
}

/* track_core_check_mapped -- RVM_SUCCESS if [addr, addr+len) lies in one region mapped by
 * rvm_map; *priv tells whether it is a RVM_MAP_PRIVATE (file-backed) mapping, which only
 * wp-async can track (Linux 6.7+ registers any memory type for WP-only async mode; the
 * fault backends need anonymous memory) */
rvm_return_t track_core_check_mapped(const char *addr, uint64_t len, int *priv)
{
    *priv = 0;
    if (engine.state != RVM_ST_INIT)
        return RVM_EINIT;
    pthread_mutex_lock(&engine.mu);
    struct region *g = region_find(addr, len);
    *priv = g != NULL && g->priv;
    pthread_mutex_unlock(&engine.mu);
    return g == NULL ? RVM_ENOT_MAPPED : RVM_SUCCESS;
}

/* track_core_unfile -- see track.h */
rvm_return_t track_core_unfile(const char *addr, uint64_t len, int *still_file)
{
    return seg_region_unfile(addr, len, still_file);
}

/* track_core_file_image -- see track.h */
rvm_return_t track_core_file_image(const char *addr, uint64_t len, int *fd)
{
    return seg_file_image(addr, len, fd);
}
