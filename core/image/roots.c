/* SPDX-License-Identifier: MIT */
/*
 * roots.c -- named roots (rvm_root_set / rvm_root_get, lrvm.h): how a restarted program finds
 * its data in the persistent heap without a global variable.
 *
 * Storage. One table of RVM_ROOTS_MAX fixed-size entries. Bound to a heap (roots_bind), the
 * table is a heap block found through the heap's single root pointer; unbound, it is a
 * static, process-local table (no persistence, same behaviour otherwise).
 *
 * Crash consistency. The heap is auto-tracked memory: a commit captures all of it at one
 * instant, whatever the threads were doing, and only committed instants survive. The table
 * needs no logging of its own, but every instant must show a valid table, because a commit
 * (an interval timer, another thread's rvm_commit) may stop this thread between any two of
 * its stores. So each change is published by ONE aligned 8-byte store:
 *   - new binding: the name and pointer are written into a slot whose `used` word is 0
 *     (invisible), then `used` is set to 1 with a release store;
 *   - rebinding: one store of `ptr`;
 *   - deletion: one store of `used` = 0 (the stale name and pointer are dead bytes);
 *   - the table itself: allocated and filled (magic last) before the heap's root pointer is
 *     set with one store. A commit between the allocation and that store captures an
 *     allocated block that nothing points to: leaked once, if the process then crashes.
 * The slot's earlier stores are visible to a commit that stops the thread after the release
 * store (the safepoint registers with an atomic store after them), and the release keeps the
 * compiler from sinking them below it.
 *
 * Threads. A mutex serialises rvm_root_* calls (gets too: a get must not read a name a
 * concurrent set is writing into a slot being reused). It is taken before any heap lock
 * (the table's allocation), and the fork handlers take it before the heap's (they run in
 * reverse registration order and ours are registered after the shim's), so no order
 * inversion; the child re-initialises it: a fork in the middle of a set leaves the child a
 * usable table (each instant is valid, above) and a usable lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "heap.h"
#include "roots.h"
#include "rvm_int.h"

#include <lrvm/lrvm.h>

#define ROOTS_MAGIC 0x31544f4f524d5652ull /* "RVMROOT1", little-endian */
#define ROOTS_VERSION 1u

/* struct roots_entry -- one binding; 64 bytes. Valid iff used == 1. */
struct roots_entry {
    uint64_t used;
    uint64_t ptr;
    char name[RVM_ROOT_NAME_MAX + 1];
};

/* struct roots_table -- the table as stored in the heap (and as the local table) */
struct roots_table {
    uint64_t magic;    /* ROOTS_MAGIC, written last when the table is made */
    uint32_t version;  /* ROOTS_VERSION */
    uint32_t nentries; /* RVM_ROOTS_MAX */
    uint64_t reserved[6];
    struct roots_entry e[RVM_ROOTS_MAX];
};

_Static_assert(sizeof(struct roots_entry) == 64, "roots_entry is part of the heap format");
_Static_assert(sizeof(struct roots_table) == 64 + 64 * RVM_ROOTS_MAX, "roots_table layout");

static pthread_mutex_t roots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t roots_once = PTHREAD_ONCE_INIT;
static struct heap *roots_heap;        /* bound heap, or NULL: roots_local */
static struct roots_table roots_local; /* the process-local table (unbound) */
static char roots_msg[200];

static void roots_fork_prepare(void)
{
    pthread_mutex_lock(&roots_mu);
}

static void roots_fork_parent(void)
{
    pthread_mutex_unlock(&roots_mu);
}

static void roots_fork_child(void)
{
    pthread_mutex_init(&roots_mu, NULL);
}

/* roots_atfork -- register the fork handlers, once, at the first rvm_root_* call (after the
 * shim registered its heap handlers: ours then run before theirs in the parent's prepare) */
static void roots_atfork(void)
{
    pthread_atfork(roots_fork_prepare, roots_fork_parent, roots_fork_child);
}

/* roots_valid -- is t a root table of this version (magic, version, size, inside h)? */
static int roots_valid(struct heap *h, const struct roots_table *t)
{
    if (!heap_owns(h, t) || ((uintptr_t)t & 7) != 0)
        return 0;
    if (heap_usable_size(h, t) < sizeof(*t))
        return 0;
    return t->magic == ROOTS_MAGIC && t->version == ROOTS_VERSION && t->nentries == RVM_ROOTS_MAX;
}

int roots_bind(struct heap *h)
{
    pthread_once(&roots_once, roots_atfork);
    struct roots_table *t = heap_get_root(h);
    if (t != NULL && !roots_valid(h, t)) {
        snprintf(roots_msg, sizeof(roots_msg),
                 "the heap's root pointer (%p) is not a table "
                 "of named roots of this lrvm version",
                 (void *)t);
        return EINVAL;
    }
    roots_heap = h;
    return 0;
}

const char *roots_bind_message(void)
{
    return roots_msg;
}

/* roots_table_get -- the table in use; NULL if bound and none was made yet */
static struct roots_table *roots_table_get(void)
{
    if (roots_heap == NULL)
        return &roots_local;
    return heap_get_root(roots_heap);
}

/* roots_table_make -- allocate and publish the bound heap's table (see the file comment) */
static struct roots_table *roots_table_make(void)
{
    struct roots_table *t = heap_calloc(roots_heap, 1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->version = ROOTS_VERSION;
    t->nentries = RVM_ROOTS_MAX;
    __atomic_store_n(&t->magic, ROOTS_MAGIC, __ATOMIC_RELEASE);
    heap_set_root(roots_heap, t); /* the one store that makes the table reachable */
    return t;
}

/* roots_name_ok -- 1 if name is a valid root name */
static int roots_name_ok(const char *name)
{
    return name != NULL && name[0] != '\0' &&
           strnlen(name, RVM_ROOT_NAME_MAX + 1) <= RVM_ROOT_NAME_MAX;
}

/* roots_find -- the used slot named name, or NULL */
static struct roots_entry *roots_find(struct roots_table *t, const char *name)
{
    for (unsigned i = 0; i < RVM_ROOTS_MAX; i++) {
        struct roots_entry *e = &t->e[i];
        if (__atomic_load_n(&e->used, __ATOMIC_ACQUIRE) == 1 &&
            strncmp(e->name, name, sizeof(e->name)) == 0)
            return e;
    }
    return NULL;
}

RVM_API rvm_return_t rvm_root_set(const char *name, void *ptr)
{
    if (!roots_name_ok(name))
        return err_set(RVM_ENAME_TOO_LONG,
                       "rvm_root_set: the name must be 1 to %d bytes "
                       "(got %s)",
                       RVM_ROOT_NAME_MAX,
                       name == NULL      ? "NULL"
                       : name[0] == '\0' ? "\"\""
                                         : "a longer one");
    pthread_once(&roots_once, roots_atfork);
    rvm_return_t rc = RVM_SUCCESS;
    pthread_mutex_lock(&roots_mu);
    struct roots_table *t = roots_table_get();
    struct roots_entry *e = t != NULL ? roots_find(t, name) : NULL;
    if (e != NULL) {
        if (ptr != NULL)
            __atomic_store_n(&e->ptr, (uint64_t)(uintptr_t)ptr, __ATOMIC_RELEASE);
        else
            __atomic_store_n(&e->used, 0, __ATOMIC_RELEASE);
        goto out;
    }
    if (ptr == NULL)
        goto out; /* deleting an unknown name: nothing to do */
    if (t == NULL && (t = roots_table_make()) == NULL) {
        rc = err_set(RVM_ENO_MEMORY,
                     "rvm_root_set(\"%s\"): the heap cannot hold the table "
                     "of roots (%zu bytes): raise LRVM_HEAP_SIZE",
                     name, sizeof(*t));
        goto out;
    }
    for (unsigned i = 0; i < RVM_ROOTS_MAX; i++) {
        e = &t->e[i];
        if (__atomic_load_n(&e->used, __ATOMIC_ACQUIRE) != 0)
            continue;
        memset(e->name, 0, sizeof(e->name));
        memcpy(e->name, name, strlen(name));
        e->ptr = (uint64_t)(uintptr_t)ptr;
        __atomic_store_n(&e->used, 1, __ATOMIC_RELEASE); /* publishes the binding */
        goto out;
    }
    rc = err_set(RVM_ETOO_BIG,
                 "rvm_root_set(\"%s\"): all %d names are bound; delete one "
                 "with rvm_root_set(name, NULL)",
                 name, RVM_ROOTS_MAX);
out:
    pthread_mutex_unlock(&roots_mu);
    return rc;
}

RVM_API void *rvm_root_get(const char *name)
{
    if (!roots_name_ok(name))
        return NULL;
    pthread_once(&roots_once, roots_atfork);
    pthread_mutex_lock(&roots_mu);
    struct roots_table *t = roots_table_get();
    struct roots_entry *e = t != NULL ? roots_find(t, name) : NULL;
    void *p = e != NULL ? (void *)(uintptr_t)__atomic_load_n(&e->ptr, __ATOMIC_ACQUIRE) : NULL;
    pthread_mutex_unlock(&roots_mu);
    return p;
}
