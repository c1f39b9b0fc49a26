/* SPDX-License-Identifier: MIT */
/*
 * todo.c -- an "aware" program: a to-do list that persists when run under lrvm's shim.
 *
 * It is written like any C program (malloc'ed nodes, a linked list) plus two lrvm calls:
 * rvm_root_get("todo") at start finds the list a previous run left, and rvm_commit() after
 * each change makes that change durable and atomic. Linked with -llrvm, it runs anywhere:
 *
 *   ./todo add "buy milk"          no shim: prints the list of this run only (volatile)
 *   lrvm-run --segment todo.seg --commit none -- ./todo add "buy milk"
 *   lrvm-run --segment todo.seg --commit none -- ./todo list      -> 1. [ ] buy milk
 *
 * With --commit none the shim commits only when the program calls rvm_commit, so what the
 * next run sees is exactly what was committed: kill the program at any moment and the list
 * is the one of its last rvm_commit, never half an "add".
 *
 *   todo add TEXT...   append one item per argument (one commit per item)
 *   todo done N        mark item N done
 *   todo rm N          remove item N
 *   todo list          print the list (the default)
 * Exit status: 0; 1 on a failed commit or allocation; 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lrvm/lrvm.h>

/* struct item / struct todo -- the program's data; all of it in the (persistent) heap */
struct item {
    struct item *next;
    int done;
    char text[];
};

struct todo {
    struct item *head;
    unsigned long added; /* items ever added (shows history across runs) */
};

/* commit -- make the last change durable; the result matters only under the shim */
static void commit(const char *what)
{
    rvm_return_t rc = rvm_commit();
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "todo: %s: rvm_commit: %s (%s)\n", what, rvm_return(rc), rvm_errmsg);
        exit(1);
    }
}

/* todo_open -- the list of the last committed run, or a new empty one bound to "todo" */
static struct todo *todo_open(void)
{
    struct todo *t = rvm_root_get("todo");
    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        fprintf(stderr, "todo: out of memory\n");
        exit(1);
    }
    rvm_return_t rc = rvm_root_set("todo", t);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "todo: rvm_root_set: %s (%s)\n", rvm_return(rc), rvm_errmsg);
        exit(1);
    }
    commit("new list");
    return t;
}

/* todo_nth -- the link pointing at item n (1-based), or NULL */
static struct item **todo_nth(struct todo *t, long n)
{
    struct item **pp = &t->head;
    for (long i = 1; *pp != NULL; i++, pp = &(*pp)->next)
        if (i == n)
            return pp;
    return NULL;
}

/* todo_print -- the list and a summary line */
static void todo_print(const struct todo *t)
{
    long n = 0, open = 0;
    for (const struct item *it = t->head; it != NULL; it = it->next) {
        printf("%ld. [%c] %s\n", ++n, it->done ? 'x' : ' ', it->text);
        open += !it->done;
    }
    printf("(%ld open of %ld; %lu added ever)\n", open, n, t->added);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "list";
    struct todo *t = todo_open();
    if (strcmp(cmd, "add") == 0 && argc > 2) {
        struct item **tail = &t->head;
        while (*tail != NULL)
            tail = &(*tail)->next;
        for (int a = 2; a < argc; a++) {
            size_t len = strlen(argv[a]);
            struct item *it = malloc(sizeof(*it) + len + 1);
            if (it == NULL) {
                fprintf(stderr, "todo: out of memory\n");
                return 1;
            }
            it->next = NULL;
            it->done = 0;
            memcpy(it->text, argv[a], len + 1);
            *tail = it; /* linked and counted in one commit */
            tail = &it->next;
            t->added++;
            commit("add");
        }
    } else if ((strcmp(cmd, "done") == 0 || strcmp(cmd, "rm") == 0) && argc == 3) {
        struct item **pp = todo_nth(t, atol(argv[2]));
        if (pp == NULL) {
            fprintf(stderr, "todo: no item %s\n", argv[2]);
            return 2;
        }
        if (cmd[0] == 'd') {
            (*pp)->done = 1;
        } else {
            struct item *it = *pp;
            *pp = it->next;
            free(it);
        }
        commit(cmd);
    } else if (strcmp(cmd, "list") != 0) {
        fprintf(stderr, "usage: todo [add TEXT... | done N | rm N | list]\n");
        return 2;
    }
    todo_print(t);
    return 0;
}
