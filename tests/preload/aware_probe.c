/* SPDX-License-Identifier: MIT */
/*
 * aware_probe.c -- an aware program (linked with liblrvm.so: rvm_commit, rvm_root_*) driven by
 * test_preload_aware.c, with and without the shim. Modes:
 *   api                 the roots' contract (names, limits, rebind, delete) and rvm_commit's
 *                       result; prints "api ok" or each failure
 *   set NAME VALUE HOW  binds NAME to a malloc'ed copy of VALUE; HOW: commit-kill (rvm_commit,
 *                       print "committed", die of SIGKILL), nocommit-kill (die of SIGKILL
 *                       without committing), commit-exit (rvm_commit, exit normally)
 *   get NAME            prints the string NAME points to, or "(none)"
 *   forks N             4 threads malloc/free and 1 thread calls rvm_commit in a loop while
 *                       main forks N children; each child checks that rvm_commit fails
 *                       (RVM_EINTERNAL), binds "child", allocates, and exits normally; the
 *                       parent prints "forks ok K of N", commits, and dies of SIGKILL
 *   orphan MS           forks a child that sleeps MS milliseconds, then exits at once itself
 *                       (the child outlives it, holding the parent's descriptors)
 *   orphan-raw MS       the same with a raw clone(2): the child runs no fork handler, so it
 *                       holds the parent's segment and log locks until it exits; prints
 *                       the child's pid
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lrvm/lrvm.h>

static int failures;

#define EXPECT(cond)                                         \
    do {                                                     \
        if (!(cond)) {                                       \
            printf("FAILED line %d: %s\n", __LINE__, #cond); \
            failures++;                                      \
        }                                                    \
    } while (0)

/* api -- the contract of lrvm.h's roots on whatever table is in use */
static void api(void)
{
    char name[RVM_ROOT_NAME_MAX + 2];
    memset(name, 'n', sizeof(name));
    name[RVM_ROOT_NAME_MAX + 1] = 0; /* one byte too long */
    int x = 1, y = 2;
    EXPECT(rvm_root_set(NULL, &x) == RVM_ENAME_TOO_LONG);
    EXPECT(rvm_root_set("", &x) == RVM_ENAME_TOO_LONG);
    EXPECT(rvm_root_set(name, &x) == RVM_ENAME_TOO_LONG);
    EXPECT(rvm_root_get(name) == NULL && rvm_root_get(NULL) == NULL && rvm_root_get("") == NULL);
    name[RVM_ROOT_NAME_MAX] = 0; /* the longest valid name */
    EXPECT(rvm_root_set(name, &x) == RVM_SUCCESS && rvm_root_get(name) == &x);
    EXPECT(rvm_root_get("api-unknown") == NULL);
    EXPECT(rvm_root_set("a", &x) == RVM_SUCCESS && rvm_root_set("b", &y) == RVM_SUCCESS);
    EXPECT(rvm_root_get("a") == &x && rvm_root_get("b") == &y);
    EXPECT(rvm_root_set("a", &y) == RVM_SUCCESS && rvm_root_get("a") == &y);     /* rebind */
    EXPECT(rvm_root_set("a", NULL) == RVM_SUCCESS && rvm_root_get("a") == NULL); /* delete */
    EXPECT(rvm_root_set("a", NULL) == RVM_SUCCESS); /* deleting an unknown name */
    EXPECT(rvm_root_get("b") == &y);
    /* fill the table: "b" and the long name are bound, so RVM_ROOTS_MAX - 2 more fit */
    char nm[16];
    for (int i = 0; i < RVM_ROOTS_MAX - 2; i++) {
        snprintf(nm, sizeof(nm), "r%d", i);
        EXPECT(rvm_root_set(nm, &x) == RVM_SUCCESS);
    }
    EXPECT(rvm_root_set("one-too-many", &x) == RVM_ETOO_BIG);
    EXPECT(strstr(rvm_errmsg, "delete one") != NULL); /* the message of the instance called */
    EXPECT(rvm_root_set("r0", NULL) == RVM_SUCCESS);
    EXPECT(rvm_root_set("one-too-many", &y) == RVM_SUCCESS && rvm_root_get("one-too-many") == &y);
    /* leave the table empty */
    for (int i = 1; i < RVM_ROOTS_MAX - 2; i++) {
        snprintf(nm, sizeof(nm), "r%d", i);
        EXPECT(rvm_root_set(nm, NULL) == RVM_SUCCESS);
    }
    rvm_root_set("one-too-many", NULL);
    rvm_root_set("b", NULL);
    rvm_root_set(name, NULL);
    EXPECT(rvm_commit() == RVM_SUCCESS);
    if (failures == 0)
        printf("api ok\n");
}

static volatile int stop;

/* churn -- malloc/free until stop */
static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *keep[64] = {0};
    while (!stop) {
        unsigned i = (unsigned)rand_r(&seed) % 64;
        free(keep[i]);
        keep[i] = malloc((size_t)rand_r(&seed) % 4000 + 1);
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return NULL;
}

/* committer -- explicit commits until stop */
static void *committer(void *arg)
{
    (void)arg;
    while (!stop) {
        rvm_return_t rc = rvm_commit();
        if (rc != RVM_SUCCESS) {
            printf("parent rvm_commit: %s\n", rvm_return(rc));
            failures++;
        }
    }
    return NULL;
}

/* forks -- see the file comment */
static int forks(int n)
{
    pthread_t t[5];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    pthread_create(&t[4], NULL, committer, NULL);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int good = rvm_commit() == RVM_EINTERNAL;
            char *p = malloc(100);
            strcpy(p, "child");
            good &= rvm_root_set("child", p) == RVM_SUCCESS && rvm_root_get("child") == p;
            free(malloc(100000));
            exit(good ? 7 : 1); /* exit, not _exit: the exit hook must not commit here */
        }
        int st;
        if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7)
            ok++;
    }
    stop = 1;
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    printf("forks ok %d of %d\n", ok, n);
    fflush(stdout);
    rvm_commit();
    raise(SIGKILL);
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "api")) {
        api();
        return failures != 0;
    }
    if (!strcmp(m, "set") && argc == 5) {
        char *v = strdup(argv[3]);
        rvm_return_t rc = rvm_root_set(argv[2], v);
        if (rc != RVM_SUCCESS) {
            printf("rvm_root_set: %s (%s)\n", rvm_return(rc), rvm_errmsg);
            return 1;
        }
        if (strncmp(argv[4], "commit", 6) == 0) {
            if ((rc = rvm_commit()) != RVM_SUCCESS) {
                printf("rvm_commit: %s (%s)\n", rvm_return(rc), rvm_errmsg);
                return 1;
            }
            printf("committed\n");
        }
        if (strstr(argv[4], "kill"))
            raise(SIGKILL);
        return 0;
    }
    if (!strcmp(m, "get") && argc == 3) {
        const char *v = rvm_root_get(argv[2]);
        printf("%s\n", v ? v : "(none)");
        return 0;
    }
    if (!strcmp(m, "orphan") && argc == 3) {
        if (fork() == 0) {
            struct timespec ts = {atoi(argv[2]) / 1000, (long)(atoi(argv[2]) % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            exit(0);
        }
        return 0;
    }
    if (!strcmp(m, "orphan-raw") && argc == 3) {
        struct timespec ts = {atoi(argv[2]) / 1000, (long)(atoi(argv[2]) % 1000) * 1000000L};
        /* only system calls in the child: it shares nothing with the C library's state */
        long child = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
        if (child == 0) {
            syscall(SYS_nanosleep, &ts, NULL);
            syscall(SYS_exit_group, 0);
        }
        printf("%ld\n", child);
        return child > 0 ? 0 : 1;
    }
    if (!strcmp(m, "forks") && argc == 3)
        return forks(atoi(argv[2]));
    fprintf(stderr, "usage: aware_probe api | set NAME VALUE commit-kill|nocommit-kill|"
                    "commit-exit | get NAME | forks N | orphan MS | orphan-raw MS\n");
    return 2;
}
