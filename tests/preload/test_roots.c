/* SPDX-License-Identifier: MIT */
/*
 * test_roots.c -- core's named roots (core/image/roots.c) without the shim: the process-local table,
 * and a table bound to a heap surviving a save/reopen of the heap image at the same base.
 * Links the static liblrvm (internals: roots.h, heap.h); no LD_PRELOAD, so it also runs in
 * the sanitizer build. Suite 'preload' (the roots serve aware programs under the shim).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <lrvm/lrvm.h>

#include "heap_file.h"
#include "roots.h"

#define R_BASE ((void *)0x5d0000000000ull)
#define R_RESERVE ((size_t)64 << 20)

Test(roots, local_table_contract)
{
    int x = 1, y = 2;
    cr_assert_eq(rvm_root_set(NULL, &x), RVM_ENAME_TOO_LONG);
    cr_assert_eq(rvm_root_set("", &x), RVM_ENAME_TOO_LONG);
    cr_assert(strstr(rvm_errmsg, "1 to 47 bytes") != NULL, "%s", rvm_errmsg);
    char longest[RVM_ROOT_NAME_MAX + 2];
    memset(longest, 'q', sizeof(longest));
    longest[RVM_ROOT_NAME_MAX + 1] = 0;
    cr_assert_eq(rvm_root_set(longest, &x), RVM_ENAME_TOO_LONG);
    longest[RVM_ROOT_NAME_MAX] = 0;
    cr_assert_eq(rvm_root_set(longest, &x), RVM_SUCCESS);
    cr_assert_eq(rvm_root_get(longest), &x);
    cr_assert_eq(rvm_root_set("a", &x), RVM_SUCCESS);
    cr_assert_eq(rvm_root_set("a", &y), RVM_SUCCESS);
    cr_assert_eq(rvm_root_get("a"), &y);
    cr_assert_eq(rvm_root_set("a", NULL), RVM_SUCCESS);
    cr_assert_null(rvm_root_get("a"));
    char nm[16];
    for (int i = 0; i < RVM_ROOTS_MAX - 1; i++) {
        snprintf(nm, sizeof(nm), "n%d", i);
        cr_assert_eq(rvm_root_set(nm, &x), RVM_SUCCESS, "%s", nm);
    }
    cr_assert_eq(rvm_root_set("full", &x), RVM_ETOO_BIG);
    cr_assert(strstr(rvm_errmsg, "delete one") != NULL, "%s", rvm_errmsg);
    /* rvm_commit with nothing tracked: nothing to commit, success (lrvm.h) */
    cr_assert_eq(rvm_commit(), RVM_SUCCESS);
}

/* heap_at -- create (path NULL: anew) or reopen a file-backed heap at R_BASE */
static struct heap *heap_at(struct heap_file **f, const char *path, int create)
{
    struct heap *h = NULL;
    if (create) {
        cr_assert_eq(heap_file_create(f, path, R_BASE, R_RESERVE), 0);
        cr_assert_eq(heap_create(&h, R_BASE, R_RESERVE, heap_file_backing(*f), NULL), 0);
    } else {
        cr_assert_eq(heap_file_open(f, path, R_BASE, R_RESERVE), 0);
        cr_assert_eq(heap_open(&h, R_BASE, heap_file_backing(*f), NULL), 0);
    }
    return h;
}

Test(roots, bound_table_lives_in_the_heap_and_reopens)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/lrvm-roots-%d", (int)getpid());
    struct heap_file *f;
    struct heap *h = heap_at(&f, path, 1);
    cr_assert_eq(roots_bind(h), 0);
    cr_assert_null(rvm_root_get("list"));
    cr_assert_null(heap_get_root(h), "no table before the first rvm_root_set");
    char *p = heap_malloc(h, 32);
    strcpy(p, "persistent data");
    cr_assert_eq(rvm_root_set("list", p), RVM_SUCCESS);
    cr_assert_eq(rvm_root_set("gone", p), RVM_SUCCESS);
    cr_assert_eq(rvm_root_set("gone", NULL), RVM_SUCCESS);
    void *table = heap_get_root(h);
    cr_assert(heap_owns(h, table) && heap_usable_size(h, table) >= 4096);
    cr_assert_eq(heap_check(h, NULL, NULL, NULL), 0, "the table is an ordinary heap block");
    cr_assert_eq(heap_file_save(f, path), 0);
    heap_close(h);
    heap_file_close(f);

    h = heap_at(&f, path, 0);
    cr_assert_eq(roots_bind(h), 0);
    char *q = rvm_root_get("list");
    cr_assert_eq(q, p, "same base, same pointer");
    cr_assert_str_eq(q, "persistent data");
    cr_assert_null(rvm_root_get("gone"));
    heap_close(h);
    heap_file_close(f);
    unlink(path);
}

Test(roots, bind_refuses_a_root_that_is_not_a_table)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/lrvm-roots-bad-%d", (int)getpid());
    struct heap_file *f;
    struct heap *h = heap_at(&f, path, 1);
    char *junk = heap_calloc(h, 1, 8192);
    memcpy(junk, "not a table", 12);
    heap_set_root(h, junk); /* someone else's use of the heap's root */
    cr_assert_eq(roots_bind(h), EINVAL);
    cr_assert(strstr(roots_bind_message(), "not a table of named roots") != NULL, "%s",
              roots_bind_message());
    heap_close(h);
    heap_file_close(f);
    unlink(path);
}
