/* SPDX-License-Identifier: MIT */
/*
 * kwrite_probe.c -- an unmodified program (no lrvm calls) that has the KERNEL write into
 * malloc'd memory in every way the shim's kwrite.c wraps; run by test_preload_kwrite.c under
 * each DIRTY backend. Every check prints "NAME ok" or "NAME FAIL: why"; the last line is
 * "done". Usage:
 *   kwrite_probe io FILE DIR   FILE: a data file; DIR: a scratch directory
 *                              prints "keep ADDR" first: a heap block holding FILE's bytes
 *   kwrite_probe check ADDR FILE   the block at ADDR (from a previous run) equals FILE
 *   kwrite_probe stdin         fgets + getline on stdin into heap buffers, echoed to stdout
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int fails;

/* in_heap -- p lies in the shim's heap at its default base (LRVM_HEAP_BASE unset) */
static int in_heap(const void *p)
{
    return (uintptr_t)p >= 0x200000000000ull && (uintptr_t)p < 0x200000000000ull + (256ull << 30);
}
static volatile int on_alt;

/* on_usr2 -- records that the handler ran on the alternate stack (SS_ONSTACK) */
static void on_usr2(int sig)
{
    (void)sig;
    stack_t cur;
    sigaltstack(NULL, &cur);
    on_alt = (cur.ss_flags & SS_ONSTACK) ? 1 : -1;
}

static void check(const char *name, int ok, const char *why)
{
    if (ok) {
        printf("%s ok\n", name);
    } else {
        printf("%s FAIL: %s (errno %s)\n", name, why, strerror(errno));
        fails++;
    }
}

/* slurp -- FILE's bytes, read with a stack-sized loop into a heap block */
static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return NULL;
    char *b = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return b;
}

/* blocked_writer -- a helper thread that blocks every signal (as GLib's workers do) and then
 * writes fresh heap pages: with the fault backends the first write of each is a fault */
static void *blocked_writer(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    char *p = malloc(1 << 20);
    memset(p, 7, 1 << 20);
    return p;
}

static int do_io(const char *file, const char *dir)
{
    size_t len = 0;
    char *data = slurp(file, &len); /* read(2) of the whole file into one heap block */
    printf("keep %p\n", (void *)data);
    check("read", data != NULL && len > 100000, "short");
    /* reference copy, filled by user-space stores only */
    char *ref = malloc(len);
    FILE *rf = fopen(file, "r");
    for (size_t i = 0; i < len; i++)
        ref[i] = (char)fgetc(rf);
    fclose(rf);
    check("read-content", memcmp(ref, data, len) == 0, "differs");

    int fd = open(file, O_RDONLY);
    char *b = malloc(65536);
    check("pread", pread(fd, b, 5000, 1000) == 5000 && memcmp(b, ref + 1000, 5000) == 0, "");
    char *v1 = malloc(3000), *v2 = malloc(9000);
    struct iovec *iov = malloc(2 * sizeof(*iov)); /* the iovec array in the heap, too */
    iov[0] = (struct iovec){v1, 3000};
    iov[1] = (struct iovec){v2, 9000};
    check("preadv",
          preadv(fd, iov, 2, 7) == 12000 && memcmp(v1, ref + 7, 3000) == 0 &&
              memcmp(v2, ref + 3007, 9000) == 0,
          "");
    lseek(fd, 0, SEEK_SET);
    check("readv", readv(fd, iov, 2) == 12000 && memcmp(v2, ref + 3000, 9000) == 0, "");

    FILE *f = fopen(file, "r");
    char *big = malloc(len); /* a large fread goes straight to read(2) inside libc */
    size_t got = fread(big, 1, len, f);
    check("fread-large", got == len && memcmp(big, ref, len) == 0, "");
    rewind(f);
    char *small = malloc(100);
    check("fread-small", fread(small, 10, 10, f) == 10 && memcmp(small, ref, 100) == 0, "");
    check("fread_unlocked",
          fread_unlocked(small, 1, 50, f) == 50 && memcmp(small, ref + 100, 50) == 0, "");
    fclose(f);

    struct stat *st = malloc(sizeof(*st));
    check("stat", stat(file, st) == 0 && (size_t)st->st_size == len, "");
    memset(st, 0, sizeof(*st));
    check("fstat", fstat(fd, st) == 0 && (size_t)st->st_size == len, "");
    memset(st, 0, sizeof(*st));
    check("lstat", lstat(file, st) == 0 && (size_t)st->st_size == len, "");
    memset(st, 0, sizeof(*st));
    check("fstatat", fstatat(AT_FDCWD, file, st, 0) == 0 && (size_t)st->st_size == len, "");
    struct statx *sx = malloc(sizeof(*sx));
    check("statx", statx(AT_FDCWD, file, 0, STATX_SIZE, sx) == 0 && sx->stx_size == len, "");
    close(fd);

    int *p = malloc(2 * sizeof(int));
    check("pipe", pipe(p) == 0 && p[0] > 2 && p[1] > 2, "");
    check("pipe-write", write(p[1], "hello", 5) == 5, "");
    struct pollfd *pf = malloc(sizeof(*pf));
    pf->fd = p[0];
    pf->events = POLLIN;
    pf->revents = 0;
    check("poll", poll(pf, 1, 1000) == 1 && (pf->revents & POLLIN), "");
    fd_set *rs = malloc(sizeof(*rs));
    FD_ZERO(rs);
    FD_SET(p[0], rs);
    struct timeval *tv = malloc(sizeof(*tv));
    *tv = (struct timeval){1, 0};
    check("select", select(p[0] + 1, rs, NULL, NULL, tv) == 1 && FD_ISSET(p[0], rs), "");
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    struct epoll_event *evs = malloc(4 * sizeof(*evs));
    check("epoll_wait", epoll_wait(ep, evs, 4, 1000) == 1 && evs[0].data.fd == p[0], "");
    close(ep);
    char *pb = malloc(16);
    check("read-pipe", read(p[0], pb, 16) == 5 && memcmp(pb, "hello", 5) == 0, "");
    close(p[0]);
    close(p[1]);
    check("pipe2", pipe2(p, O_CLOEXEC) == 0 && p[0] > 2, "");
    close(p[0]);
    close(p[1]);

    int *sv = malloc(2 * sizeof(int));
    check("socketpair", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0, "");
    send(sv[1], "datagram1", 9, 0);
    send(sv[1], "datagram2", 9, 0);
    send(sv[1], "datagram3", 9, 0);
    char *rb = malloc(64);
    check("recv", recv(sv[0], rb, 64, 0) == 9 && memcmp(rb, "datagram1", 9) == 0, "");
    struct sockaddr_un *from = malloc(sizeof(*from));
    socklen_t *flen = malloc(sizeof(*flen));
    *flen = sizeof(*from);
    check("recvfrom",
          recvfrom(sv[0], rb, 64, 0, (struct sockaddr *)from, flen) == 9 &&
              memcmp(rb, "datagram2", 9) == 0 && *flen <= sizeof(*from),
          "");
    struct msghdr *mh = calloc(1, sizeof(*mh));
    struct iovec *mi = malloc(sizeof(*mi));
    *mi = (struct iovec){rb, 64};
    mh->msg_iov = mi;
    mh->msg_iovlen = 1;
    mh->msg_name = from;
    mh->msg_namelen = sizeof(*from);
    mh->msg_control = malloc(256);
    mh->msg_controllen = 256;
    check("recvmsg",
          recvmsg(sv[0], mh, 0) == 9 && memcmp(rb, "datagram3", 9) == 0 && mh->msg_flags == 0, "");
    /* SCM_RIGHTS: the descriptor arrives in a heap control buffer */
    int fds[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, fds);
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr a;
    } cb;
    memset(&cb, 0, sizeof(cb));
    struct msghdr sm = {0};
    struct iovec si = {"x", 1};
    sm.msg_iov = &si;
    sm.msg_iovlen = 1;
    sm.msg_control = cb.b;
    sm.msg_controllen = sizeof(cb.b);
    struct cmsghdr *c = CMSG_FIRSTHDR(&sm);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
    sendmsg(fds[1], &sm, 0);
    mh->msg_name = NULL;
    mh->msg_namelen = 0;
    mh->msg_controllen = 256;
    int nfd = -1;
    if (recvmsg(fds[0], mh, 0) == 1) {
        struct cmsghdr *rc = CMSG_FIRSTHDR(mh);
        if (rc && rc->cmsg_type == SCM_RIGHTS)
            memcpy(&nfd, CMSG_DATA(rc), sizeof(int));
    }
    check("recvmsg-scm_rights", nfd > 2, "no descriptor received");
    int *optv = malloc(sizeof(int));
    socklen_t *optl = malloc(sizeof(*optl));
    *optl = sizeof(int);
    check("getsockopt",
          getsockopt(sv[0], SOL_SOCKET, SO_TYPE, optv, optl) == 0 && *optv == SOCK_DGRAM &&
              *optl == sizeof(int),
          "");

    /* accept: the peer's address lands in the heap */
    char path[4096];
    snprintf(path, sizeof(path), "%s/sock", dir);
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        printf("accept FAIL: socket path too long: %s\n", path);
        return 1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    unlink(path);
    int lok = bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 1) == 0;
    int cs = socket(AF_UNIX, SOCK_STREAM, 0);
    lok = lok && connect(cs, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    *flen = sizeof(*from);
    int as = lok ? accept(ls, (struct sockaddr *)from, flen) : -1;
    check("accept", as >= 0 && from->sun_family == AF_UNIX, "");
    close(as);
    close(cs);
    close(ls);

    /* wait status in the heap */
    int *status = malloc(sizeof(int));
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    check("waitpid",
          waitpid(pid, status, 0) == pid && WIFEXITED(*status) && WEXITSTATUS(*status) == 7, "");

    /* directories: readdir (libc's DIR buffer) and getdents64 into the heap */
    for (int i = 0; i < 50; i++) {
        char fp[4200];
        snprintf(fp, sizeof(fp), "%s/file%02d", dir, i);
        close(open(fp, O_CREAT | O_WRONLY, 0600));
    }
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "file", 4) == 0;
    if (d)
        closedir(d);
    check("readdir", n == 50, "wrong count");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char *db = malloc(32768);
    long dn = getdents64(dfd, db, 32768);
    check("getdents64", dn > 0, "");
    close(dfd);
    struct dirent **names = NULL;
    int sn = scandir(dir, &names, NULL, alphasort);
    check("scandir", sn >= 50 && names && strcmp(names[sn - 1]->d_name, "sock") == 0, "");

    char *cwd = getcwd(NULL, 0);
    char *cwd2 = malloc(4096);
    check("getcwd", cwd && getcwd(cwd2, 4096) && strcmp(cwd, cwd2) == 0, "");
    char *lnk = malloc(256);
    snprintf(path, sizeof(path), "%s/link", dir);
    check("readlink",
          symlink("target-of-link", path) == 0 && readlink(path, lnk, 256) == 14 &&
              memcmp(lnk, "target-of-link", 14) == 0,
          "");

    /* an alternate signal stack in the heap (gawk does this): the kernel writes signal frames */
    stack_t *alt = malloc(sizeof(*alt)), q;
    alt->ss_sp = malloc(65536);
    alt->ss_size = 65536;
    alt->ss_flags = 0;
    struct sigaction sa2;
    memset(&sa2, 0, sizeof(sa2));
    sa2.sa_handler = on_usr2;
    sa2.sa_flags = SA_ONSTACK;
    check("sigaltstack",
          sigaltstack(alt, NULL) == 0 && sigaction(SIGUSR2, &sa2, NULL) == 0 &&
              raise(SIGUSR2) == 0 && on_alt == 1 && sigaltstack(NULL, &q) == 0 &&
              q.ss_sp == alt->ss_sp && q.ss_size == 65536,
          "");
    /* libc's own objects go to the shim's volatile internal heap, what escapes to the program
   * stays in the persistent heap (default base) */
    FILE *g = fopen(file, "r");
    char *gl = NULL;
    size_t gcap = 0;
    DIR *gd = opendir(dir);
    char *dup = strdup("escapes");
    check("libc-objects-routed",
          g && gd && getline(&gl, &gcap, g) > 0 && !in_heap(g) && !in_heap(gd) && in_heap(gl) &&
              in_heap(dup),
          "");
    fclose(g);
    closedir(gd);
    pthread_t bt;
    void *bw = NULL;
    check("thread-blocking-all-signals",
          pthread_create(&bt, NULL, blocked_writer, NULL) == 0 && pthread_join(bt, &bw) == 0 &&
              bw && ((char *)bw)[12345] == 7,
          "");
    printf("done %d failures\n", fails);
    return fails ? 1 : 0;
}

static int do_check(const char *addr, const char *file)
{
    size_t len;
    char *ref = slurp(file, &len);
    char *p = (char *)(uintptr_t)strtoull(addr, NULL, 16);
    check("persisted", ref && memcmp(p, ref, len) == 0, "the block differs from the file");
    printf("done %d failures\n", fails);
    return fails ? 1 : 0;
}

static int do_stdin(void)
{
    char *line = malloc(4096);
    long n = 0;
    if (fgets(line, 4096, stdin))
        fputs(line, stdout), n++;
    char *gl = NULL;
    size_t cap = 0;
    while (getline(&gl, &cap, stdin) > 0)
        fputs(gl, stdout), n++;
    printf("lines %ld\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "io") == 0)
        return do_io(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "check") == 0)
        return do_check(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "stdin") == 0)
        return do_stdin();
    fprintf(stderr, "usage: kwrite_probe io FILE DIR | check ADDR FILE | stdin\n");
    return 2;
}
