/* SPDX-License-Identifier: MIT */
/*
 * records.c -- allocate, initialise, copy and free the public records (tid, options,
 * region, statistics). Every record carries its struct_id so calls can reject one
 * that was never initialised.
 */
#include <stdlib.h>
#include <string.h>

#include <rvm/rvm.h>
#include <rvm/rvm_statistics.h>

_Static_assert(sizeof(rvm_tid_t) == 40, "rvm_tid_t layout must match LRVM (40 bytes)");
_Static_assert(sizeof(rvm_options_t) == 120, "rvm_options_t layout must match LRVM (120)");
_Static_assert(sizeof(rvm_region_t) == 72, "rvm_region_t layout must match LRVM (72)");
_Static_assert(sizeof(rvm_offset_t) == 16, "rvm_offset_t layout must match LRVM (16)");
_Static_assert(sizeof(rvm_length_t) == sizeof(char *), "rvm_length_t is pointer sized");

/* rvm_init_tid -- make *tid a fresh, unbegun transaction identifier */
void rvm_init_tid(rvm_tid_t *tid)
{
    if (tid == NULL)
        return;
    memset(tid, 0, sizeof(*tid));
    tid->struct_id = rvm_tid_id;
    tid->from_heap = rvm_false; /* stack garbage must never read as "heap" */
}

/* rvm_malloc_tid -- heap-allocated, initialised tid (NULL if out of memory) */
rvm_tid_t *rvm_malloc_tid(void)
{
    rvm_tid_t *tid = calloc(1, sizeof(*tid));
    if (tid == NULL)
        return NULL;
    rvm_init_tid(tid);
    tid->from_heap = rvm_true;
    return tid;
}

/* rvm_copy_tid -- heap copy of a tid */
rvm_tid_t *rvm_copy_tid(rvm_tid_t *tid)
{
    if (tid == NULL || tid->struct_id != rvm_tid_id)
        return NULL;
    rvm_tid_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *tid;
    c->from_heap = rvm_true;
    return c;
}

/* rvm_free_tid -- free a heap tid; a stack tid is only invalidated */
void rvm_free_tid(rvm_tid_t *tid)
{
    if (tid == NULL || tid->struct_id != rvm_tid_id)
        return;
    if (tid->from_heap) {
        tid->struct_id = 0;
        free(tid);
    }
}

/* rvm_init_options -- the original's defaults (truncate 50 %, buffer lengths, mode 0600) */
void rvm_init_options(rvm_options_t *options)
{
    if (options == NULL)
        return;
    memset(options, 0, sizeof(*options));
    options->struct_id = rvm_options_id;
    options->from_heap = rvm_false; /* stack garbage must never read as "heap" */
    options->truncate = TRUNCATE;
    options->recovery_buf_len = RECOVERY_BUF_LEN;
    options->flush_buf_len = FLUSH_BUF_LEN;
    options->max_read_len = MAX_READ_LEN;
    options->create_log_file = rvm_false;
    options->create_log_mode = 0600;
}

/* rvm_malloc_options -- heap-allocated options with defaults */
rvm_options_t *rvm_malloc_options(void)
{
    rvm_options_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    rvm_init_options(o);
    o->from_heap = rvm_true;
    return o;
}

/* rvm_copy_options -- heap copy (pointers are copied, not the strings they point to) */
rvm_options_t *rvm_copy_options(rvm_options_t *options)
{
    if (options == NULL || options->struct_id != rvm_options_id)
        return NULL;
    rvm_options_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *options;
    c->from_heap = rvm_true;
    return c;
}

/* rvm_free_options -- free heap options (and the tid_array rvm_query allocated) */
void rvm_free_options(rvm_options_t *options)
{
    if (options == NULL || options->struct_id != rvm_options_id)
        return;
    if (options->tid_array != NULL) {
        free(options->tid_array);
        options->tid_array = NULL;
        options->n_uncommit = 0;
    }
    if (options->from_heap) {
        options->struct_id = 0;
        free(options);
    }
}

/* rvm_init_region -- zeroed region record */
void rvm_init_region(rvm_region_t *region)
{
    if (region == NULL)
        return;
    memset(region, 0, sizeof(*region));
    region->struct_id = rvm_region_id;
    region->from_heap = rvm_false; /* stack garbage must never read as "heap" */
}

/* rvm_malloc_region -- heap-allocated, zeroed region record */
rvm_region_t *rvm_malloc_region(void)
{
    rvm_region_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    rvm_init_region(r);
    r->from_heap = rvm_true;
    return r;
}

/* rvm_copy_region -- heap copy; copies the data_dev pointer, not the string */
rvm_region_t *rvm_copy_region(rvm_region_t *region)
{
    if (region == NULL || region->struct_id != rvm_region_id)
        return NULL;
    rvm_region_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *region;
    c->from_heap = rvm_true;
    return c;
}

/* rvm_free_region -- free a heap region record */
void rvm_free_region(rvm_region_t *region)
{
    if (region == NULL || region->struct_id != rvm_region_id)
        return;
    if (region->from_heap) {
        region->struct_id = 0;
        free(region);
    }
}

/* rvm_init_statistics -- zeroed statistics record */
void rvm_init_statistics(rvm_statistics_t *statistics)
{
    if (statistics == NULL)
        return;
    memset(statistics, 0, sizeof(*statistics));
    statistics->struct_id = rvm_statistics_id;
    statistics->from_heap = rvm_false; /* stack garbage must never read as "heap" */
}

/* rvm_malloc_statistics -- heap-allocated, zeroed statistics record */
rvm_statistics_t *rvm_malloc_statistics(void)
{
    rvm_statistics_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    rvm_init_statistics(s);
    s->from_heap = rvm_true;
    return s;
}

/* rvm_copy_statistics -- heap copy of a statistics record */
rvm_statistics_t *rvm_copy_statistics(rvm_statistics_t *statistics)
{
    if (statistics == NULL || statistics->struct_id != rvm_statistics_id)
        return NULL;
    rvm_statistics_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *statistics;
    c->from_heap = rvm_true;
    return c;
}

/* rvm_free_statistics -- free a heap statistics record */
void rvm_free_statistics(rvm_statistics_t *statistics)
{
    if (statistics == NULL || statistics->struct_id != rvm_statistics_id)
        return;
    if (statistics->from_heap) {
        statistics->struct_id = 0;
        free(statistics);
    }
}
