/* SPDX-License-Identifier: MIT */
/*
 * preload_probe.c -- a small unmodified program (no lrvm calls) that the preload tests run with
 * and without the shim. argv[1] picks what it does; it prints what it observed.
 *   where        "shim" if malloc returns heap memory (default base), else "glibc"
 *   main         prints "main reached" (invalid-option tests check it is NOT printed)
 *   exec         execs itself with "where": shows whether the shim was inherited
 *   personality  "aslr off" / "aslr on"
 *   segv         its own SIGSEGV handler must see a fault on a PROT_NONE page, and a query
 *                of the SIGSEGV disposition must return that handler
 *   crash        writes to address 16
 *   fork         8 threads malloc/free while main forks 40 times; children malloc and exit
 *   stress       8 threads x N malloc/realloc/free with content checks
 *   signal SIG   raises SIG, then sleeps 300 ms so a commit thread can run
 *   status N     exits with status N
 *   api          the whole malloc family's contracts (alignment, overflow, errno kept on
 *                success, usable sizes, __libc_* aliases); prints "api ok" or the failures
 *   pwrite STR   mallocs a block, stores STR, prints its address (persistence tests)
 *   pread ADDR   prints the string at ADDR and malloc_usable_size(ADDR)
 *   pover ADDR STR [kill]  overwrites the string at ADDR; with "kill", dies of SIGKILL
 *   pfork ADDR   a fork child overwrites ADDR and exits normally; the parent then dies of
 *                SIGKILL (so only the child could have committed)
 *   pforkmap ADDR  the parent reads ADDR (never writes its page) and forks; the child prints
 *                whether that page is its own ("private") or still the segment file's page
 *                ("file"/"absent"), from /proc/self/pagemap
 *   torture ADDR EXPECT NEW kill|exit  checks the string at ADDR is EXPECT ("ok" or "bad X"),
 *                stores NEW, then dies of SIGKILL or exits (committing)
 *   climb ADDR   prints the number at ADDR ("nK"), then with 4 threads churning malloc/free
 *                stores K+1, K+2, ... at ADDR forever (killed by the test)
 *   foreign      free()s pointers no malloc returned (static, stack+16): must survive
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HEAP_BASE 0x200000000000ull
#define HEAP_MAX (256ull << 30)

static int scale(void)
{
    const char *s = getenv("LRVM_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

static void where(void)
{
    void *p = malloc(64);
    uintptr_t a = (uintptr_t)p;
    puts(a >= HEAP_BASE && a < HEAP_BASE + HEAP_MAX ? "shim" : "glibc");
    free(p);
}

static volatile sig_atomic_t faults;
static char *guard;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if ((char *)si->si_addr >= guard && (char *)si->si_addr < guard + 4096) {
        faults++;
        mprotect(guard, 4096, PROT_READ | PROT_WRITE);
    } else {
        _exit(99);
    }
}

static volatile int stop;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!stop) {
        void *v[16];
        for (int i = 0; i < 16; i++)
            v[i] = malloc((size_t)(rand_r(&seed) % 2000) + 1);
        for (int i = 0; i < 16; i++)
            free(v[i]);
    }
    return NULL;
}

static void *stress(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    enum { SLOTS = 512 };
    unsigned char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    long n = 40000L * scale();
    for (long it = 0; it < n; it++) {
        int i = rand_r(&seed) % SLOTS;
        if (slot[i]) {
            for (size_t k = 0; k < len[i]; k++)
                if (slot[i][k] != (unsigned char)(i + k))
                    return (void *)1; /* someone else's write landed in our block */
            if (rand_r(&seed) % 4 == 0) {
                size_t nl = (size_t)(rand_r(&seed) % 5000) + 1;
                unsigned char *q = realloc(slot[i], nl);
                if (!q)
                    return (void *)2;
                for (size_t k = len[i]; k < nl; k++)
                    q[k] = (unsigned char)(i + k);
                slot[i] = q;
                len[i] = nl;
                continue;
            }
            free(slot[i]);
            slot[i] = NULL;
        } else {
            size_t nl = rand_r(&seed) % 8 == 0 ? (size_t)(rand_r(&seed) % 200000) + 1
                                               : (size_t)(rand_r(&seed) % 300) + 1;
            slot[i] = rand_r(&seed) % 2 ? malloc(nl) : calloc(1, nl);
            if (!slot[i])
                return (void *)3;
            for (size_t k = 0; k < nl; k++)
                slot[i][k] = (unsigned char)(i + k);
            len[i] = nl;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    return NULL;
}

#define CHECK(c)                                               \
    do {                                                       \
        if (!(c)) {                                            \
            printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #c); \
            bad++;                                             \
        }                                                      \
    } while (0)

void *__libc_malloc(size_t n);
void __libc_free(void *p);
void *__libc_calloc(size_t nmemb, size_t size);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);

/* api -- contracts every malloc must keep, checked without and with the shim */
static int api(void)
{
    int bad = 0;
    errno = 1234;
    void *p = malloc(0);
    CHECK(p != NULL && errno == 1234);
    free(p);
    CHECK(errno == 1234);
    p = calloc(10, 10);
    CHECK(p && errno == 1234 && ((unsigned char *)p)[99] == 0);
    p = realloc(p, 100000);
    CHECK(p && errno == 1234 && ((unsigned char *)p)[99] == 0);
    CHECK(malloc_usable_size(p) >= 100000);
    free(p);
    CHECK(malloc_usable_size(NULL) == 0);
    volatile size_t half = SIZE_MAX / 2, huge = SIZE_MAX - 4096; /* hidden from the compiler */
    errno = 0;
    CHECK(calloc(half, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, half, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM);
    for (size_t al = 8; al <= (1u << 22); al <<= 1) {
        void *q = NULL;
        CHECK(posix_memalign(&q, al, 100) == 0 && q && (uintptr_t)q % al == 0);
        free(q);
        q = aligned_alloc(al, al * 2);
        CHECK(q && (uintptr_t)q % al == 0);
        free(q);
        q = memalign(al, 24);
        CHECK(q && (uintptr_t)q % al == 0);
        free(q);
    }
    void *q = (void *)1;
    errno = 77;
    CHECK(posix_memalign(&q, 24, 100) == EINVAL && q == (void *)1 && errno == 77);
    q = valloc(10);
    CHECK(q && (uintptr_t)q % 4096 == 0);
    free(q);
    q = pvalloc(10);
    CHECK(q && (uintptr_t)q % 4096 == 0 && malloc_usable_size(q) >= 4096);
    free(q);
    q = __libc_malloc(50);
    CHECK(q != NULL);
    q = __libc_realloc(q, 5000);
    CHECK(q != NULL);
    __libc_free(q);
    q = __libc_calloc(3, 7);
    CHECK(q && ((char *)q)[20] == 0);
    __libc_free(q);
    q = __libc_memalign(256, 3);
    CHECK(q && (uintptr_t)q % 256 == 0);
    __libc_free(q);
    char *r = realloc(NULL, 10);
    strcpy(r, "abcdefghi");
    r = realloc(r, 1 << 20);
    CHECK(r && strcmp(r, "abcdefghi") == 0);
    r = realloc(r, 5);
    CHECK(r && memcmp(r, "abcde", 5) == 0);
    free(r);
    puts(bad ? "api FAILED" : "api ok");
    return bad;
}

static char static_buf[64];

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "where";
    if (!strcmp(m, "where")) {
        where();
    } else if (!strcmp(m, "main")) {
        puts("main reached");
    } else if (!strcmp(m, "exec")) {
        fflush(stdout);
        execl("/proc/self/exe", argv[0], "where", (char *)NULL);
        perror("exec");
        return 1;
    } else if (!strcmp(m, "personality")) {
        puts(personality(0xffffffff) & ADDR_NO_RANDOMIZE ? "aslr off" : "aslr on");
    } else if (!strcmp(m, "segv")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        struct sigaction q;
        sigaction(SIGSEGV, NULL, &q); /* must report the program's own handler */
        int own = (q.sa_flags & SA_SIGINFO) && q.sa_sigaction == on_segv;
        guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *heap = malloc(100); /* the heap works alongside the handler */
        guard[10] = 1;
        heap[0] = guard[10];
        printf("faults %d value %d query %s\n", (int)faults, heap[0], own ? "own" : "other");
        free(heap);
    } else if (!strcmp(m, "crash")) {
        fflush(stdout);
        int *volatile bad = (int *)(uintptr_t)16;
        *bad = 1; /* a genuine crash: must still die of SIGSEGV */
        puts("not reached");
    } else if (!strcmp(m, "fork")) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
        int ok = 0, n = 40 * scale();
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                void *p = malloc(1000), *q = malloc(100000);
                free(p);
                free(q);
                _exit(7);
            }
            int st;
            if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7)
                ok++;
        }
        stop = 1;
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
        printf("forks ok %d of %d\n", ok, n);
    } else if (!strcmp(m, "stress")) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, stress, (void *)(uintptr_t)(i * 7919 + 1));
        int bad = 0;
        for (int i = 0; i < 8; i++) {
            void *r;
            pthread_join(t[i], &r);
            bad += r != NULL;
        }
        printf("stress threads failed %d\n", bad);
    } else if (!strcmp(m, "signal") && argc > 2) {
        raise(atoi(argv[2]));
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        puts("signalled");
    } else if (!strcmp(m, "pwrite") && argc > 2) {
        char *p = malloc(64);
        snprintf(p, 64, "%s", argv[2]);
        printf("%p\n", (void *)p);
    } else if (!strcmp(m, "pread") && argc > 2) {
        char *p = (char *)(uintptr_t)strtoull(argv[2], NULL, 16);
        printf("%s %zu\n", p, malloc_usable_size(p));
    } else if (!strcmp(m, "pforkmap") && argc > 2) {
        volatile char *p = (char *)(uintptr_t)strtoull(argv[2], NULL, 16);
        char c = p[0]; /* the parent reads the page, it never writes it */
        (void)c;
        pid_t pid = fork();
        if (pid == 0) {
            uint64_t e = 0;
            int fd = open("/proc/self/pagemap", O_RDONLY);
            if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)p / 4096 * 8)) != 8)
                _exit(3);
            printf("%s\n", !((e >> 63) & 1) ? "absent" : ((e >> 61) & 1) ? "file" : "private");
            fflush(stdout);
            _exit(0);
        }
        waitpid(pid, NULL, 0);
    } else if (!strcmp(m, "pover") && argc > 3) {
        char *p = (char *)(uintptr_t)strtoull(argv[2], NULL, 16);
        snprintf(p, 64, "%s", argv[3]);
        if (argc > 4)
            raise(SIGKILL);
    } else if (!strcmp(m, "torture") && argc > 5) {
        char *p = (char *)(uintptr_t)strtoull(argv[2], NULL, 16);
        if (strcmp(p, argv[3]) == 0)
            puts("ok");
        else
            printf("bad %.60s\n", p);
        fflush(stdout);
        void *garbage = malloc(1000); /* allocations that are lost or committed with the run */
        memset(garbage, 0x5a, 1000);
        snprintf(p, 64, "%s", argv[4]);
        if (!strcmp(argv[5], "kill"))
            raise(SIGKILL);
    } else if (!strcmp(m, "climb") && argc > 2) {
        char *p = (char *)(uintptr_t)strtoull(argv[2], NULL, 16);
        long k = strtol(p + 1, NULL, 10);
        printf("n%ld\n", k);
        fflush(stdout);
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
        for (;;) {
            char *tmp = malloc(64); /* the new value goes through a fresh block, like real code */
            snprintf(tmp, 64, "n%ld", ++k);
            memcpy(p, tmp, 64);
            free(tmp);
        }
    } else if (!strcmp(m, "pfork") && argc > 2) {
        char *p = (char *)(uintptr_t)strtoull(argv[2], NULL, 16);
        pid_t pid = fork();
        if (pid == 0) {
            snprintf(p, 64, "written by the child");
            exit(0); /* runs the exit hook: the child must not commit */
        }
        waitpid(pid, NULL, 0);
        raise(SIGKILL);
    } else if (!strcmp(m, "api")) {
        return api() ? 1 : 0;
    } else if (!strcmp(m, "foreign")) {
        char stack_buf[64];
        char *volatile launder = static_buf + 16; /* the compiler rightly warns on a direct call */
        free(launder);
        launder = stack_buf + 16;
        free(launder);
        puts("survived");
    } else if (!strcmp(m, "status") && argc > 2) {
        return atoi(argv[2]);
    } else {
        fprintf(stderr, "preload_probe: unknown mode %s\n", m);
        return 64;
    }
    return 0;
}
