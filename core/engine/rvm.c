/* SPDX-License-Identifier: MIT */
/*
 * rvm.c -- the process-level calls: initialize, terminate, options, query, flush,
 * truncate, create_log.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filecheck.h"
#include "rvm_int.h"
#include "observer.h"

struct rvm_state engine = {.mu = PTHREAD_MUTEX_INITIALIZER,
                           .truncate = TRUNCATE,
                           .recovery_buf_len = RECOVERY_BUF_LEN,
                           .flush_buf_len = FLUSH_BUF_LEN,
                           .max_read_len = MAX_READ_LEN};


/* opts_check -- reject a bad options record (bad_options in the original) */
static rvm_return_t opts_check(rvm_options_t *o)
{
    if (o == NULL || o->struct_id != rvm_options_id)
        return RVM_EOPTIONS;
    if (o->log_dev != NULL && strlen(o->log_dev) > MAXPATHLEN - 1)
        return RVM_ENAME_TOO_LONG;
    return RVM_SUCCESS;
}

/* opts_open_log -- open (and recover) the log named by o->log_dev; engine.mu held */
static rvm_return_t opts_open_log(rvm_options_t *o)
{
    if (o->log_dev == NULL)
        return RVM_SUCCESS;
    if (engine.log != NULL) {
        if (strcmp(engine.log->path, o->log_dev) == 0)
            return RVM_SUCCESS;
        return err_set(RVM_ELOG, "log %s is already open; one log per process (asked for %s)",
                       engine.log->path, o->log_dev);
    }
    struct log *lg;
    rvm_return_t rc = log_open(o->log_dev, &lg);
    if (rc)
        return rc;
    engine.log = lg;
    if (engine.truncate >= 1 && engine.truncate <= 100)
        rc = trunc_start(lg, engine.truncate);
    return rc;
}

/*
 * rvm_opts_apply -- apply an options record: the process-global optimization and
 * private-mapping switches, the truncation threshold (1..100 runs the incremental
 * truncation thread; anything else stops it), buffer lengths, and the log.
 */
rvm_return_t rvm_opts_apply(rvm_options_t *o)
{
    rvm_return_t rc = opts_check(o);
    if (rc)
        return rc;
    rvm_length_t opt = o->flags & RVM_ALL_OPTIMIZATIONS;
    if (opt & RVM_COALESCE_TRANS)
        opt |= RVM_COALESCE_RANGES;
    rvm_optimizations = opt;
    rvm_map_private = (o->flags & RVM_MAP_PRIVATE) ? rvm_true : rvm_false;
    filecheck_shared_group = (o->flags & RVM_SHARED_GROUP) != 0;
    engine.map_copy = (o->flags & RVM_MAP_COPY) != 0;
    if (o->max_read_len < 512)
        o->max_read_len = MAX_READ_LEN;
    o->max_read_len &= ~(rvm_length_t)511;
    engine.max_read_len = o->max_read_len;
    engine.recovery_buf_len =
        o->recovery_buf_len < MIN_RECOVERY_BUF_LEN ? MIN_RECOVERY_BUF_LEN : o->recovery_buf_len;
    engine.flush_buf_len =
        o->flush_buf_len < MIN_FLUSH_BUF_LEN ? MIN_FLUSH_BUF_LEN : o->flush_buf_len;
    engine.truncate = o->truncate;
    if (engine.log != NULL) {
        if (o->truncate >= 1 && o->truncate <= 100)
            rc = trunc_start(engine.log, o->truncate);
        else
            trunc_stop(engine.log);
        if (rc)
            return rc;
    }
    return RVM_SUCCESS;
}

/* rvm_initialize -- check the version, apply options, open + recover the log */
rvm_return_t rvm_initialize(const char *version, rvm_options_t *opts)
{
    if (version == NULL || strcmp(version, RVM_VERSION) != 0)
        return RVM_EVERSION_SKEW;
    if (opts != NULL) {
        rvm_return_t rc = opts_check(opts);
        if (rc)
            return rc;
    }
    pthread_mutex_lock(&engine.mu);
    if (engine.state == RVM_ST_INIT) {
        pthread_mutex_unlock(&engine.mu);
        return RVM_SUCCESS;
    }
    if (engine.state == RVM_ST_TERMINATED) {
        pthread_mutex_unlock(&engine.mu);
        return err_set(RVM_EINIT, "rvm_initialize after rvm_terminate: restart is not "
                                  "allowed in one process");
    }
    rvm_return_t rc = RVM_SUCCESS;
    rvm_init_statistics(&engine.st);
    if (opts != NULL) {
        if (opts->create_log_file && opts->log_dev != NULL) {
            /* as the original: an existing log file makes this fail (RVM_ELOG) */
            rc = rvm_create_log(opts, &opts->create_log_size, opts->create_log_mode);
        }
        if (rc == RVM_SUCCESS)
            rc = rvm_opts_apply(opts);
        if (rc == RVM_SUCCESS)
            rc = opts_open_log(opts);
    }
    if (rc == RVM_SUCCESS)
        __atomic_store_n(&engine.state, RVM_ST_INIT, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* rvm_set_options -- apply options after initialization (may open the log) */
rvm_return_t rvm_set_options(rvm_options_t *options)
{
    if (!rvm_ready())
        return RVM_EINIT;
    rvm_return_t rc = opts_check(options);
    if (rc)
        return rc;
    pthread_mutex_lock(&engine.mu);
    rc = rvm_opts_apply(options);
    if (rc == RVM_SUCCESS)
        rc = opts_open_log(options);
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* rvm_flush -- make every queued no_flush commit durable */
rvm_return_t rvm_flush(void)
{
    if (!rvm_ready())
        return RVM_EINIT;
    struct log *lg = engine.log;
    if (lg == NULL)
        return RVM_ELOG;
    pthread_mutex_lock(&lg->mu);
    rvm_return_t rc = RVM_SUCCESS;
    if (lg->cs.n)
        rc = cset_materialize(lg);
    if (rc == RVM_SUCCESS)
        rc = log_force(lg, lg->next_seq - 1);
    if (rc == RVM_SUCCESS) {
        engine.st.n_rvm_flush++;
        engine.st.n_no_flush = 0;
        engine.st.no_flush_length = RVM_MK_OFFSET(0, 0);
    }
    pthread_mutex_unlock(&lg->mu);
    return rc;
}

/* rvm_truncate -- flush, then apply the whole log to the segments */
rvm_return_t rvm_truncate(void)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (engine.log == NULL)
        return RVM_ELOG;
    rvm_return_t rc = rvm_flush();
    if (rc == RVM_SUCCESS)
        rc = trunc_all(engine.log);
    if (rc == RVM_SUCCESS) {
        pthread_mutex_lock(&engine.log->mu);
        engine.st.tot_rvm_truncate++;
        pthread_mutex_unlock(&engine.log->mu);
    }
    return rc;
}

/* rvm_terminate -- flush the no_flush queue, stop the daemon, close everything */
rvm_return_t rvm_terminate(void)
{
    if (!rvm_ready())
        return RVM_EINIT;
    /* tracked regions: RVM_EUNCOMMIT if one has uncommitted changes, else all untracked */
    const struct engine_observer *obs = engine_observer();
    if (obs != NULL) {
        rvm_return_t trc = obs->before_terminate();
        if (trc != RVM_SUCCESS)
            return trc;
    }
    pthread_mutex_lock(&engine.mu);
    if (engine.n_open > 0) {
        pthread_mutex_unlock(&engine.mu);
        return RVM_EUNCOMMIT;
    }
    pthread_mutex_unlock(&engine.mu);
    rvm_return_t rc = RVM_SUCCESS;
    if (engine.log != NULL && !engine.sticky)
        rc = rvm_flush();
    if (rc == RVM_SUCCESS && engine.log != NULL && !engine.sticky)
        rc = trunc_recovered(engine.log);
    pthread_mutex_lock(&engine.mu);
    if (engine.log != NULL) {
        trunc_stop(engine.log);
        log_close(engine.log);
        engine.log = NULL;
    }
    seg_close_all();
    txn_free_all();
    __atomic_store_n(&engine.state, RVM_ST_TERMINATED, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* rvm_create_log -- create a log file with *log_len bytes of record space */
rvm_return_t rvm_create_log(rvm_options_t *rvm_options, rvm_offset_t *log_len, long mode)
{
    if (rvm_options == NULL || rvm_options->struct_id != rvm_options_id)
        return RVM_EOPTIONS;
    if (rvm_options->log_dev == NULL)
        return err_set(RVM_EOPTIONS, "rvm_create_log: options->log_dev is NULL");
    if (strlen(rvm_options->log_dev) > MAXPATHLEN - 1)
        return RVM_ENAME_TOO_LONG;
    if (log_len == NULL)
        return RVM_EOFFSET;
    if (log_len->high != 0 || log_len->low > (1ull << 46))
        return RVM_ETOO_BIG;
    if (engine.log != NULL && strcmp(engine.log->path, rvm_options->log_dev) == 0)
        return err_set(RVM_ELOG, "rvm_create_log: log %s is open", rvm_options->log_dev);
    return log_create(rvm_options->log_dev, log_len->low, mode);
}

/* rvm_query -- options in force and the uncommitted transactions (of a region) */
rvm_return_t rvm_query(rvm_options_t *options, rvm_region_t *region)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (options == NULL || options->struct_id != rvm_options_id)
        return RVM_EOPTIONS;
    if (region != NULL && region->struct_id != rvm_region_id)
        return RVM_EREGION;
    pthread_mutex_lock(&engine.mu);
    rvm_return_t rc = RVM_SUCCESS;
    struct region *g = NULL;
    if (region != NULL) {
        for (size_t i = 0; i < engine.nregions; i++)
            if (engine.regions[i]->vmaddr == region->vmaddr)
                g = engine.regions[i];
        if (g == NULL) {
            rc = RVM_ENOT_MAPPED;
            goto out;
        }
    }
    options->truncate = engine.truncate;
    options->recovery_buf_len = engine.recovery_buf_len;
    options->flush_buf_len = engine.flush_buf_len;
    options->max_read_len = engine.max_read_len;
    options->flags = rvm_optimizations | (rvm_map_private ? RVM_MAP_PRIVATE : 0) |
                     (filecheck_shared_group ? RVM_SHARED_GROUP : 0) |
                     (engine.map_copy ? RVM_MAP_COPY : 0);
    options->log_empty = rvm_true;
    if (engine.log != NULL) {
        pthread_mutex_lock(&engine.log->mu);
        options->log_empty =
            (engine.log->used == 0 && engine.log->pend.len == 0 && engine.log->cs.n == 0)
                ? rvm_true
                : rvm_false;
        pthread_mutex_unlock(&engine.log->mu);
        if (options->log_dev != NULL)
            strcpy(options->log_dev, engine.log->path);
    }
    for (struct txn *t = engine.open_txns; t != NULL; t = t->next) {
        int hit = g == NULL;
        for (size_t k = 0; !hit && k < t->n; k++)
            hit = t->r[k].rg == g;
        if (!hit)
            continue;
        rvm_tid_t *a = realloc(options->tid_array, (size_t)(options->n_uncommit + 1) * sizeof(*a));
        if (a == NULL) {
            rc = RVM_ENO_MEMORY;
            goto out;
        }
        options->tid_array = a;
        a[options->n_uncommit++] = *t->pub;
    }
out:
    pthread_mutex_unlock(&engine.mu);
    return rc;
}
