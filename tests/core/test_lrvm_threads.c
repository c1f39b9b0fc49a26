/* SPDX-License-Identifier: MIT */
/*
 * test_lrvm_threads.c -- lrvm's own threads never run the application's signal handlers.
 * A process-directed signal goes to any thread that does not block it; user-level thread
 * packages (Coda's LWP) and programs that handle signals in one chosen thread block them in
 * their own threads and rely on no other thread taking them. Here every application thread
 * blocks SIGUSR1 while a thread sends it to the whole process during commits that keep the
 * truncation thread busy: the handler must only ever run on an application thread (once
 * the main thread unblocks it at the end).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "core_test.h"

#define MAXREC 4096
static _Atomic long handled;
static pid_t on_tid[MAXREC];
static atomic_int stop;

static void on_usr1(int sig)
{
    (void)sig;
    long i = atomic_fetch_add(&handled, 1);
    if (i < MAXREC)
        on_tid[i] = (pid_t)syscall(SYS_gettid);
}

static pid_t signaller_tid;

static void *signaller(void *arg)
{
    (void)arg;
    signaller_tid = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < 2000 && !atomic_load(&stop); i++) {
        kill(getpid(), SIGUSR1);
        usleep(100);
    }
    atomic_store(&stop, 1);
    return NULL;
}

Test(lrvm_threads, process_signals_never_run_on_an_lrvm_thread, .timeout = 60)
{
    char dir[256], log[300], seg[300];
    tdir_make(dir, sizeof(dir), "sigs");
    snprintf(log, sizeof(log), "%s/log", dir);
    snprintf(seg, sizeof(seg), "%s/seg", dir);
    cr_assert_eq(file_make(seg, 1 << 20, 0), 0);
    /* a small log and a low threshold: the truncation thread runs all the time */
    cr_assert_eq(rvmt_init_create(log, 256 * 1024, 0, 5), RVM_SUCCESS, "%s", rvm_errmsg);
    rvm_region_t r;
    rvm_init_region(&r);
    r.data_dev = seg;
    r.length = 1 << 20;
    cr_assert_eq(rvm_map(&r, NULL), RVM_SUCCESS, "%s", rvm_errmsg);

    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    /* blocked only now, after rvm_initialize: lrvm must not rely on the caller's mask */
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, signaller, NULL), 0);
    char buf[4096];
    for (long i = 0; !atomic_load(&stop); i++) {
        rvm_tid_t tid;
        rvm_init_tid(&tid);
        cr_assert_eq(rvm_begin_transaction(&tid, no_restore), RVM_SUCCESS);
        memset(buf, (int)i, sizeof(buf));
        cr_assert_eq(rvm_modify_bytes(&tid, r.vmaddr + (i % 200) * 4096, buf, sizeof(buf)),
                     RVM_SUCCESS);
        cr_assert_eq(rvm_end_transaction(&tid, i % 8 ? no_flush : flush), RVM_SUCCESS, "%s",
                     rvm_errmsg);
    }
    pthread_join(t, NULL);
    cr_assert_eq(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL), 0); /* pending: runs here */
    pid_t self = (pid_t)syscall(SYS_gettid);
    long n = atomic_load(&handled);
    cr_assert_gt(n, 0, "the signal was never handled");
    for (long i = 0; i < n && i < MAXREC; i++)
        cr_assert(on_tid[i] == self || on_tid[i] == signaller_tid,
                  "the application's SIGUSR1 handler ran on thread %d, which is not one of "
                  "the application's threads (%d, %d): an lrvm thread took the signal",
                  on_tid[i], self, signaller_tid);
    rvm_terminate();
    tdir_remove(dir);
}
