/* SPDX-License-Identifier: MIT */
/*
 * limits_probe.c -- one case per entry of docs/limits.md: an unmodified program has the
 * kernel (or a thread that blocks signals) write into heap memory whose pages were just
 * write-protected again by a commit; run by test_preload_limits.c under each DIRTY backend.
 *   limits_probe CASE    runs CASE; prints "CASE ok" or "CASE FAIL: why"; status 0 or 1
 *   limits_probe list    prints every case name
 * Each case first commits (rvm_commit, the shim's, when preloaded) so that the heap pages it
 * uses are protected again with a fault backend: their next write is a first write.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

int rvm_commit(void) __attribute__((weak));

/* fresh -- n bytes of heap, written, then committed: protected again (fault backends) */
static void *fresh(size_t n)
{
    char *p = malloc(n);
    if (p == NULL)
        exit(3);
    memset(p, 0x5a, n);
    if (rvm_commit && rvm_commit() != 0) {
        printf("rvm_commit failed\n");
        exit(3);
    }
    return p;
}

/* tmpfile_with -- an unlinked temporary file holding s */
static int tmpfile_with(const char *s)
{
    char path[] = "/tmp/lrvm-limits-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
        return -1;
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* ---- kernel writes ---- */

static int c_sysinfo(void)
{
    struct sysinfo *p = fresh(sizeof(*p));
    return sysinfo(p) == 0 && p->uptime > 0;
}
static int c_times(void)
{
    struct tms *p = fresh(sizeof(*p));
    return times(p) != (clock_t)-1;
}
static int c_getresuid(void)
{
    uid_t *p = fresh(3 * sizeof(uid_t));
    return getresuid(p, p + 1, p + 2) == 0 && p[0] == getuid();
}
static int c_getresgid(void)
{
    gid_t *p = fresh(3 * sizeof(gid_t));
    return getresgid(p, p + 1, p + 2) == 0 && p[0] == getgid();
}
static int c_prctl_name(void)
{
    char *p = fresh(16);
    return prctl(PR_SET_NAME, "probe-name") == 0 && prctl(PR_GET_NAME, p) == 0 &&
           strcmp(p, "probe-name") == 0;
}
static int c_sigprocmask_old(void)
{
    sigset_t *p = fresh(sizeof(*p));
    return sigprocmask(SIG_BLOCK, NULL, p) == 0;
}
static int c_pthread_sigmask_old(void)
{
    sigset_t *p = fresh(sizeof(*p));
    return pthread_sigmask(SIG_BLOCK, NULL, p) == 0;
}
static int c_getcpu(void)
{
    unsigned *p = fresh(2 * sizeof(unsigned));
    return getcpu(p, p + 1) == 0 && p[0] < 4096;
}
static int c_setvbuf_fread(void)
{
    int fd = tmpfile_with("hello stdio buffer\n");
    FILE *f = fdopen(fd, "r");
    char *buf = fresh(8192), *out = fresh(64);
    if (f == NULL || setvbuf(f, buf, _IOFBF, 8192) != 0)
        return 0;
    return fgets(out, 64, f) && strcmp(out, "hello stdio buffer\n") == 0;
}
static int c_clock_gettime_cpu(void)
{
    struct timespec *p = fresh(sizeof(*p));
    return clock_gettime(CLOCK_PROCESS_CPUTIME_ID, p) == 0;
}
static int c_getitimer(void)
{
    struct itimerval *p = fresh(sizeof(*p));
    return getitimer(ITIMER_REAL, p) == 0;
}
static int c_setitimer_old(void)
{
    struct itimerval z = {{0, 0}, {0, 0}}, *p = fresh(sizeof(*p));
    return setitimer(ITIMER_REAL, &z, p) == 0;
}
static int c_timerfd_gettime(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec *p = fresh(sizeof(*p));
    return fd >= 0 && timerfd_gettime(fd, p) == 0;
}
static int c_sigpending(void)
{
    sigset_t *p = fresh(sizeof(*p));
    return sigpending(p) == 0;
}
static int c_sigtimedwait(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    raise(SIGUSR1);
    siginfo_t *p = fresh(sizeof(*p));
    struct timespec ts = {1, 0};
    return sigtimedwait(&s, p, &ts) == SIGUSR1 && p->si_signo == SIGUSR1;
}
static int c_sched_getaffinity(void)
{
    cpu_set_t *p = fresh(sizeof(*p));
    return sched_getaffinity(0, sizeof(*p), p) == 0 && CPU_COUNT(p) > 0;
}
static int c_sched_getparam(void)
{
    struct sched_param *p = fresh(sizeof(*p));
    return sched_getparam(0, p) == 0;
}
static int c_getgroups(void)
{
    gid_t *p = fresh(256 * sizeof(gid_t));
    return getgroups(256, p) >= 0;
}
static int c_prlimit(void)
{
    struct rlimit *p = fresh(sizeof(*p));
    return prlimit(0, RLIMIT_NOFILE, NULL, p) == 0 && p->rlim_cur > 0;
}
static int c_fcntl_getlk(void)
{
    int fd = tmpfile_with("x");
    struct flock *p = fresh(sizeof(*p));
    memset(p, 0, sizeof(*p));
    p->l_type = F_WRLCK;
    p->l_whence = SEEK_SET;
    return fd >= 0 && fcntl(fd, F_GETLK, p) == 0 && p->l_type == F_UNLCK;
}
static int c_ioctl_fionread(void)
{
    int fds[2];
    int *p = fresh(sizeof(int));
    return pipe(fds) == 0 && write(fds[1], "abc", 3) == 3 && ioctl(fds[0], FIONREAD, p) == 0 &&
           *p == 3;
}
static int c_sendfile_offset(void)
{
    int in = tmpfile_with("0123456789"), out = open("/dev/null", O_WRONLY);
    off_t *p = fresh(sizeof(*p));
    *p = 2;
    return sendfile(out, in, p, 4) == 4 && *p == 6;
}
static int c_copy_file_range_offset(void)
{
    int in = tmpfile_with("0123456789"), out = tmpfile_with("");
    loff_t *p = fresh(sizeof(*p));
    *p = 3;
    return copy_file_range(in, p, out, NULL, 4, 0) == 4 && *p == 7;
}
static int c_msgrcv(void)
{
    int q = msgget(IPC_PRIVATE, 0600);
    struct {
        long type;
        char text[32];
    } m = {1, "message"}, *p = fresh(sizeof(m));
    int ok = q >= 0 && msgsnd(q, &m, sizeof(m.text), 0) == 0 &&
             msgrcv(q, p, sizeof(p->text), 0, IPC_NOWAIT) == (ssize_t)sizeof(m.text) &&
             strcmp(p->text, "message") == 0;
    if (q >= 0)
        msgctl(q, IPC_RMID, NULL);
    return ok;
}
static int c_mq_receive(void)
{
    char name[64];
    snprintf(name, sizeof(name), "/lrvm-limits-%d", (int)getpid());
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (q == (mqd_t)-1)
        return errno == ENOSYS || errno == EACCES; /* no mqueue here: nothing to test */
    mq_unlink(name);
    char *p = fresh(64);
    unsigned *prio = fresh(sizeof(unsigned));
    return mq_send(q, "queued", 7, 5) == 0 && mq_receive(q, p, 64, prio) == 7 &&
           strcmp(p, "queued") == 0 && *prio == 5;
}
static int c_eventfd_read(void)
{
    int fd = eventfd(41, 0);
    eventfd_t *p = fresh(sizeof(*p));
    return fd >= 0 && eventfd_read(fd, p) == 0 && *p == 41;
}
static int c_getentropy(void)
{
    char *p = fresh(64);
    return getentropy(p, 64) == 0;
}
static int c_pthread_getname(void)
{
    char *p = fresh(32);
    return pthread_setname_np(pthread_self(), "nm-probe") == 0 &&
           pthread_getname_np(pthread_self(), p, 32) == 0 && strcmp(p, "nm-probe") == 0;
}
static int c_ttyname_r(void)
{
    int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    char *p = fresh(256);
    if (fd < 0)
        return 1; /* no pseudo-terminals here */
    int e = ttyname_r(fd, p, 256);
    return e == 0 ? strncmp(p, "/dev/", 5) == 0 : e != EFAULT;
}
static int c_getxattr(void)
{
    char *p = fresh(256);
    ssize_t r = getxattr("/tmp", "user.lrvm-none", p, 256);
    ssize_t l = listxattr("/tmp", p, 256);
    return (r >= 0 || errno != EFAULT) && (l >= 0 || errno != EFAULT);
}
static int c_mincore(void)
{
    unsigned char *p = fresh(16);
    void *m = mmap(NULL, 4 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m != MAP_FAILED && mincore(m, 4 * 4096, p) == 0;
}
static int c_syscall_read(void)
{
    int fd = tmpfile_with("raw syscall read");
    char *p = fresh(64);
    return syscall(SYS_read, fd, p, 63) == 16 && memcmp(p, "raw syscall read", 16) == 0;
}

static int c_msgctl_stat(void)
{
    int q = msgget(IPC_PRIVATE, 0600);
    struct msqid_ds *p = fresh(sizeof(*p));
    int ok = q >= 0 && msgctl(q, IPC_STAT, p) == 0 && (p->msg_perm.mode & 0777) == 0600;
    if (q >= 0)
        msgctl(q, IPC_RMID, NULL);
    return ok;
}
static int c_semctl_getall(void)
{
    int id = semget(IPC_PRIVATE, 3, 0600);
    unsigned short *p = fresh(3 * sizeof(unsigned short));
    struct semid_ds *ds = fresh(sizeof(*ds));
    int ok = id >= 0 && semctl(id, 0, GETALL, p) == 0 && p[0] == 0 && p[2] == 0 &&
             semctl(id, 0, IPC_STAT, ds) == 0 && ds->sem_nsems == 3;
    if (id >= 0)
        semctl(id, 0, IPC_RMID);
    return ok;
}
static int c_mq_getattr(void)
{
    char name[64];
    snprintf(name, sizeof(name), "/lrvm-limits-a%d", (int)getpid());
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (q == (mqd_t)-1)
        return errno == ENOSYS || errno == EACCES;
    mq_unlink(name);
    struct mq_attr *p = fresh(sizeof(*p));
    return mq_getattr(q, p) == 0 && p->mq_msgsize == 64;
}
static int c_process_vm_readv(void)
{
    static const char src[] = "copied from a process";
    char *p = fresh(64);
    struct iovec l = {p, sizeof(src)}, r = {(void *)src, sizeof(src)};
    return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == (ssize_t)sizeof(src) &&
           strcmp(p, src) == 0;
}

/* ---- threads and handlers that block signals ---- */

static char *volatile target;
static volatile int handler_ok;

static void fill_handler(int sig)
{
    (void)sig;
    target[100] = 1; /* a first write, with every signal blocked by sa_mask */
    handler_ok = 1;
}
static int c_handler_blocks_all(void)
{
    target = fresh(4096);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fill_handler;
    sigfillset(&sa.sa_mask);
    return sigaction(SIGUSR2, &sa, NULL) == 0 && raise(SIGUSR2) == 0 && handler_ok &&
           target[100] == 1;
}

static void *blocked_thread(void *arg)
{
    (void)arg;
    target[200] = 2;
    return (void *)1;
}
static int c_attr_sigmask_all(void)
{
    target = fresh(4096);
    pthread_attr_t at;
    sigset_t all;
    sigfillset(&all);
    pthread_t t;
    void *r = NULL;
    return pthread_attr_init(&at) == 0 && pthread_attr_setsigmask_np(&at, &all) == 0 &&
           pthread_create(&t, &at, blocked_thread, NULL) == 0 && pthread_join(t, &r) == 0 && r &&
           target[200] == 2;
}

/* a thread that blocks every signal with the raw system call, through syscall(2), old set in
 * the heap, then writes the heap */
static void *raw_mask_thread(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    sigset_t *old = fresh(sizeof(sigset_t));
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, old, 8) != 0)
        return NULL;
    target[600] = 6;
    return (void *)1;
}
static int c_syscall_sigprocmask(void)
{
    target = fresh(4096);
    pthread_t t;
    void *r = NULL;
    return pthread_create(&t, NULL, raw_mask_thread, NULL) == 0 && pthread_join(t, &r) == 0 && r &&
           target[600] == 6;
}

/* a robust mutex in the heap whose owner exits holding it, after a commit made by the owner
 * (self) or by another thread (main): the next lock must say EOWNERDEAD, not hang */
static pthread_mutex_t *robust;
static volatile int robust_locked, robust_go;
static void *robust_owner(void *arg)
{
    pthread_mutex_lock(robust);
    if (arg != NULL && rvm_commit)
        rvm_commit();
    robust_locked = 1;
    while (!robust_go)
        usleep(1000);
    return NULL; /* exits holding it */
}
static int robust_case(int self_commits)
{
    alarm(10); /* a hang is the failure */
    robust = fresh(4096);
    pthread_mutexattr_t at;
    pthread_t t;
    if (pthread_mutexattr_init(&at) || pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST) ||
        pthread_mutex_init(robust, &at) || rvm_commit == NULL || rvm_commit() != 0 ||
        pthread_create(&t, NULL, robust_owner, self_commits ? (void *)1 : NULL))
        return 0;
    while (!robust_locked)
        usleep(1000);
    if (!self_commits && rvm_commit() != 0)
        return 0;
    robust_go = 1;
    pthread_join(t, NULL);
    return pthread_mutex_lock(robust) == EOWNERDEAD;
}
static int c_robust_owner_commits(void)
{
    return robust_case(1);
}
static int c_robust_other_commits(void)
{
    return robust_case(0);
}

static volatile int timer_fired;
static void on_timer(union sigval v)
{
    char *p = malloc(100000); /* the heap from glibc's timer thread */
    memset(p, 3, 100000);
    ((char *)v.sival_ptr)[300] = 3;
    free(p);
    timer_fired = 1;
}
static int c_timer_sigev_thread(void)
{
    target = fresh(4096);
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_timer;
    ev.sigev_value.sival_ptr = target;
    timer_t *t = fresh(sizeof(timer_t));
    struct itimerspec its = {{0, 0}, {0, 20 * 1000 * 1000}};
    if (timer_create(CLOCK_MONOTONIC, &ev, t) != 0 || timer_settime(*t, 0, &its, NULL) != 0)
        return 0;
    for (int i = 0; i < 300 && !timer_fired; i++)
        usleep(10000);
    struct itimerspec *left = fresh(sizeof(*left));
    int ok = timer_fired && target[300] == 3 && timer_gettime(*t, left) == 0 &&
             left->it_value.tv_sec == 0 && left->it_value.tv_nsec == 0;
    return timer_delete(*t) == 0 && ok;
}

static volatile int aio_notified;
static void on_aio(union sigval v)
{
    ((char *)v.sival_ptr)[400] = 4;
    aio_notified = 1;
}
static int c_aio_read(void)
{
    int fd = tmpfile_with("asynchronous input into the heap");
    target = fresh(4096);
    struct aiocb *cb = fresh(sizeof(*cb));
    char *buf = fresh(64);
    memset(cb, 0, sizeof(*cb));
    cb->aio_fildes = fd;
    cb->aio_buf = buf;
    cb->aio_nbytes = 63;
    cb->aio_sigevent.sigev_notify = SIGEV_THREAD;
    cb->aio_sigevent.sigev_notify_function = on_aio;
    cb->aio_sigevent.sigev_value.sival_ptr = target;
    if (aio_read(cb) != 0)
        return 0;
    const struct aiocb *list[1] = {cb};
    while (aio_error(cb) == EINPROGRESS)
        aio_suspend(list, 1, NULL);
    for (int i = 0; i < 300 && !aio_notified; i++)
        usleep(10000);
    return aio_error(cb) == 0 && aio_return(cb) == 32 &&
           memcmp(buf, "asynchronous input into the heap", 32) == 0 && aio_notified &&
           target[400] == 4;
}

static volatile int co_ran;
static ucontext_t uc_main, uc_co;
static void coroutine(int a, int b)
{
    target[500] = (char)(a + b); /* on a stack carved out of the heap */
    co_ran = 1;
}
static int c_makecontext_heap_stack(void)
{
    target = fresh(4096);
    char *stack = fresh(65536);
    if (getcontext(&uc_co) != 0)
        return 0;
    uc_co.uc_stack.ss_sp = stack;
    uc_co.uc_stack.ss_size = 65536;
    uc_co.uc_link = &uc_main;
    makecontext(&uc_co, (void (*)(void))coroutine, 2, 2, 3);
    if (rvm_commit)
        rvm_commit();
    return swapcontext(&uc_main, &uc_co) == 0 && co_ran && target[500] == 5;
}
static int c_attr_setstack_heap(void)
{
    target = fresh(4096);
    size_t n = 1 << 20;
    char *stack = fresh(n);
    pthread_attr_t at;
    pthread_t t;
    void *r = NULL;
    return pthread_attr_init(&at) == 0 && pthread_attr_setstack(&at, stack, n) == 0 &&
           pthread_create(&t, &at, blocked_thread, NULL) == 0 && pthread_join(t, &r) == 0 && r &&
           target[200] == 2;
}

static int c_getaddrinfo_a(void)
{
    struct gaicb *g = fresh(sizeof(*g));
    memset(g, 0, sizeof(*g));
    g->ar_name = "127.0.0.1"; /* numeric: needs no /etc/hosts (a minimal system has none) */
    struct gaicb *list[1] = {g};
    if (getaddrinfo_a(GAI_WAIT, list, 1, NULL) != 0)
        return 0;
    return gai_error(g) == 0 && g->ar_result != NULL;
}

static volatile int mq_fired;
static void on_mq(union sigval v)
{
    (void)v;
    mq_fired = 1;
}
/* with a fault backend: refused with ENOSYS and a message; with wp-async: works */
static int c_mq_notify_thread(void)
{
    char name[64];
    snprintf(name, sizeof(name), "/lrvm-limits-n%d", (int)getpid());
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (q == (mqd_t)-1)
        return errno == ENOSYS || errno == EACCES;
    mq_unlink(name);
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_mq;
    const char *tr = getenv("LRVM_TRACK");
    int fault = tr && strcmp(tr, "wp-async") != 0;
    int r = mq_notify(q, &ev);
    if (fault)
        return r == -1 && errno == ENOSYS;
    if (r != 0 || mq_send(q, "x", 1, 0) != 0)
        return 0;
    for (int i = 0; i < 300 && !mq_fired; i++)
        usleep(10000);
    return mq_fired;
}

/* the detected limit: a raw system call the shim cannot know writes into the heap */
static int c_syscall_uname(void)
{
    struct utsname *p = fresh(sizeof(*p));
    long r = syscall(SYS_uname, p);
    printf("syscall-uname: %s\n", r == 0 ? "worked" : strerror(errno));
    return 1;
}

static const struct {
    const char *name;
    int (*fn)(void);
} cases[] = {
    {"sysinfo", c_sysinfo},
    {"times", c_times},
    {"getresuid", c_getresuid},
    {"getresgid", c_getresgid},
    {"prctl-get-name", c_prctl_name},
    {"sigprocmask-old", c_sigprocmask_old},
    {"pthread-sigmask-old", c_pthread_sigmask_old},
    {"getcpu", c_getcpu},
    {"setvbuf-fread", c_setvbuf_fread},
    {"clock-gettime-cpu", c_clock_gettime_cpu},
    {"getitimer", c_getitimer},
    {"setitimer-old", c_setitimer_old},
    {"timerfd-gettime", c_timerfd_gettime},
    {"sigpending", c_sigpending},
    {"sigtimedwait", c_sigtimedwait},
    {"sched-getaffinity", c_sched_getaffinity},
    {"sched-getparam", c_sched_getparam},
    {"getgroups", c_getgroups},
    {"prlimit", c_prlimit},
    {"fcntl-getlk", c_fcntl_getlk},
    {"ioctl-fionread", c_ioctl_fionread},
    {"sendfile-offset", c_sendfile_offset},
    {"copy-file-range-offset", c_copy_file_range_offset},
    {"msgrcv", c_msgrcv},
    {"mq-receive", c_mq_receive},
    {"eventfd-read", c_eventfd_read},
    {"getentropy", c_getentropy},
    {"pthread-getname", c_pthread_getname},
    {"ttyname-r", c_ttyname_r},
    {"getxattr", c_getxattr},
    {"mincore", c_mincore},
    {"syscall-read", c_syscall_read},
    {"handler-blocks-all", c_handler_blocks_all},
    {"attr-sigmask-all", c_attr_sigmask_all},
    {"timer-sigev-thread", c_timer_sigev_thread},
    {"aio-read", c_aio_read},
    {"syscall-uname", c_syscall_uname},
    {"makecontext-heap-stack", c_makecontext_heap_stack},
    {"attr-setstack-heap", c_attr_setstack_heap},
    {"getaddrinfo-a", c_getaddrinfo_a},
    {"mq-notify-thread", c_mq_notify_thread},
    {"msgctl-stat", c_msgctl_stat},
    {"semctl-getall", c_semctl_getall},
    {"mq-getattr", c_mq_getattr},
    {"process-vm-readv", c_process_vm_readv},
    {"syscall-sigprocmask", c_syscall_sigprocmask},
    {"robust-owner-commits", c_robust_owner_commits},
    {"robust-other-commits", c_robust_other_commits},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t n = sizeof(cases) / sizeof(*cases);
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < n; i++)
        if (strcmp(argv[1], cases[i].name) == 0) {
            errno = 0;
            int ok = cases[i].fn();
            if (ok)
                printf("%s ok\n", cases[i].name);
            else
                printf("%s FAIL (errno %s)\n", cases[i].name, strerror(errno));
            return ok ? 0 : 1;
        }
    fprintf(stderr, "usage: limits_probe CASE | list\n");
    return 2;
}
