/* SPDX-License-Identifier: MIT */
/*
 * restore_prog.c -- an unmodified C program whose globals hold process state of each kind the
 * restorability check must judge; run under the shim by test_preload_restore.c.
 *
 *   restore_prog clean FILE   restorable state: a counter, a heap list, a FILE * to stdout;
 *                             prints the counter and the list's length, writes them to FILE
 *   restore_prog anon FILE    a global pointing into memory the program mmap'ed itself: a
 *                             restored run would read an unmapped address (a crash)
 *   restore_prog freed FILE   a global left pointing at a heap block the program freed: a
 *                             restored run would follow a pointer read from freed memory
 *   restore_prog deep FILE    a global reaching, through an array of pointers and a list of
 *                             heap blocks, a block that points into memory the program mmap'ed
 *                             itself: refused like anon, though no global holds that address
 *   restore_prog handle FILE  a global holding an integer handle the check cannot recognise
 *                             (as perl's thread key): a restored run crashes with SIGSEGV
 *   restore_prog read FILE    read(2) FILE into a static buffer (as xz does): the kernel writes
 *                             into the tracked globals; prints the bytes read
 *   restore_prog intlike FILE a heap block reached from a global holds integers that fall in
 *                             the address range the shim reserved for its internal heap, but in
 *                             no block of it (random data does): restorable, prints "intlike N"
 *   restore_prog slotlike FILE a heap block reached from a global holds integers that fall in
 *                             the tracker's twin and snapshot slots (an anonymous mapping of
 *                             twice LRVM_HEAP_SIZE, the largest of the process by default):
 *                             restorable, prints "slotlike N"
 *   restore_prog tailword FILE a global points at a block of 8k+6 bytes whose last 6 bytes are
 *                             the low bytes of an address inside an anonymous mapping the
 *                             program made (random data can be that): restorable
 *   restore_prog stale-malloc FILE, stale-realloc FILE, stale-large FILE, stale-thread FILE
 *                             a global reaches blocks the program has not filled yet, made of
 *                             memory that earlier held addresses of anonymous mappings: a block
 *                             the program freed (malloc of the same size; realloc moving into
 *                             it; a large block grown in place over it) or the blocks glibc
 *                             freed when a thread ended (pointers into its stack): restorable
 * tailword and the stale modes print "<mode> new" on a fresh segment, "<mode> kept" when their
 * global came back with the block's bytes.
 * Each mode writes "<mode> <state>" to FILE (truncating it first), so a test sees whether a
 * run got as far as main and whether it damaged the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

struct item {
    struct item *next;
    char *name;
};

int counter;                 /* clean */
struct item *items;          /* clean, freed */
FILE *report_to;             /* clean: libc's stdout object, restorable */
char *arena;                 /* anon */
struct item **table;         /* deep */
uintptr_t handle;            /* handle */
uint64_t *numbers;           /* intlike */
static char inbuf[3 * 4096]; /* read: .bss, three pages */
unsigned char *tail;         /* tailword */
char *held[64];              /* stale-* */

#define TAIL_SIZE 1646 /* 8 * 205 + 6: the size the differential torture met */
#define FILL 'y'       /* the bytes the stale modes write: 0x7979... is no address */

/* anon_map -- 1 MiB of the program's own anonymous memory, kept mapped until exit; only
 * locals hold its address, so a global reaching it can only be through stale bytes */
static char *anon_map(void)
{
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    m[0] = 1;
    return m;
}

/* junk -- a block of n bytes full of addresses inside m, freed: its memory is what the next
 * allocation of that size may get */
static void junk(char *m, size_t n)
{
    uintptr_t *j = malloc(n);
    for (size_t i = 0; i < n / sizeof(*j); i++)
        j[i] = (uintptr_t)m + 64 * (i % 4096);
    __asm__ volatile("" : : "r"(j) : "memory"); /* the stores happen: no malloc/free elision */
    free(j);
}

/* filled -- the first n bytes of p are FILL */
static int filled(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != FILL)
            return 0;
    return 1;
}

/* thread_main -- touch thread-local storage, so glibc gives the thread its TLS blocks */
static __thread volatile int tls_word;
static void *thread_main(void *arg)
{
    tls_word = 1;
    return arg;
}

/* stale -- the stale-* modes' first run; 0 or 1 */
static int stale(const char *mode)
{
    char *m = anon_map();
    if (strcmp(mode, "stale-malloc") == 0) {
        junk(m, 2000);
        held[0] = malloc(2000); /* the block just freed: filled later, or never */
        memset(held[0], FILL, 16);
    } else if (strcmp(mode, "stale-realloc") == 0) {
        junk(m, 2000);
        held[0] = malloc(1000);
        memset(held[0], FILL, 16);
        held[0] = realloc(held[0], 2000); /* too big for its class: moves, the tail unfilled */
    } else if (strcmp(mode, "stale-large") == 0) {
        held[0] = malloc(100 << 10);
        memset(held[0], FILL, 16);
        junk(m, 100 << 10);                    /* the pages right after held[0] */
        held[0] = realloc(held[0], 200 << 10); /* grown in place over them */
    } else if (strcmp(mode, "stale-thread") == 0) {
        /* threads on stacks of the program's own memory: glibc caches no such stack, so
         * joining one frees its blocks at once (the dtv points into the thread's TLS, which
         * lies in that stack) */
        for (int i = 0; i < 4; i++) {
            pthread_attr_t at;
            pthread_t t;
            size_t sz = 256 << 10;
            void *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (stk == MAP_FAILED || pthread_attr_init(&at) ||
                pthread_attr_setstack(&at, stk, sz) || pthread_create(&t, &at, thread_main, NULL) ||
                pthread_join(t, NULL))
                return 1;
            pthread_attr_destroy(&at);
        }
        for (int i = 0; i < 64; i++) { /* sizes 16 .. 1024: glibc's per-thread blocks among them */
            held[i] = malloc(16 * (size_t)(i + 1));
            held[i][0] = FILL;
        }
    } else {
        return 1;
    }
    return 0;
}

/* write_file -- FILE := "<mode> <n>\n" */
static void write_file(const char *path, const char *mode, long n)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "%s %ld\n", mode, n);
    fclose(f);
}

/* internal_reserve_end -- the end of the largest anonymous mapping of 64 GiB or more that is not
 * the persistent heap (the shim's internal heap reservation), or 0 */
static uintptr_t internal_reserve_end(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t best = 0, best_len = 0;
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || strchr(line, '/') != NULL)
            continue;
        if (hi - lo >= (64ul << 30) && lo != 0x200000000000ul && hi - lo > best_len) {
            best = hi;
            best_len = hi - lo;
        }
    }
    if (f)
        fclose(f);
    return best;
}

/* anon_of_size -- the start of an anonymous mapping of exactly len bytes, or 0 */
static uintptr_t anon_of_size(unsigned long len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t found = 0;
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strchr(line, '/') == NULL &&
            strchr(line, '[') == NULL && hi - lo == len)
            found = lo;
    }
    if (f)
        fclose(f);
    return found;
}

/* report_numbers -- intlike, slotlike: print "<mode> <integers still set> <run>" */
static void report_numbers(const char *mode, const char *path)
{
    long n = 0;
    for (int i = 0; i < 64; i++)
        n += numbers[i] != 0;
    counter++;
    printf("%s %ld %d\n", mode, n, counter);
    write_file(path, mode, counter);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 64;
    const char *mode = argv[1], *path = argv[2];
    if (strcmp(mode, "clean") == 0) {
        if (!report_to)
            report_to = stdout;
        struct item *it = malloc(sizeof(*it));
        it->name = strdup("item");
        it->next = items;
        items = it;
        long n = 0;
        for (it = items; it; it = it->next)
            n += strcmp(it->name, "item") == 0;
        counter++;
        fprintf(report_to, "clean %d %ld\n", counter, n);
        write_file(path, mode, counter);
    } else if (strcmp(mode, "anon") == 0) {
        if (!arena) {
            arena = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (arena == MAP_FAILED)
                return 1;
            strcpy(arena, "arena");
        }
        printf("anon %s\n", arena); /* restored: arena is not mapped in this process */
        write_file(path, mode, (long)strlen(arena));
    } else if (strcmp(mode, "deep") == 0) {
        if (!table) {
            /* 512 slots, each a list of three items; only the last item of slot 300 names
             * memory that will not come back */
            table = calloc(512, sizeof(*table));
            for (int i = 0; i < 512; i++)
                for (int k = 0; k < 3; k++) {
                    struct item *it = malloc(sizeof(*it));
                    it->name = strdup("item");
                    it->next = table[i];
                    table[i] = it;
                }
            char *m =
                mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED)
                return 1;
            strcpy(m, "deep");
            table[300]->next->next->name = m;
        }
        printf("deep %s\n", table[300]->next->next->name);
        write_file(path, mode, 1);
    } else if (strcmp(mode, "freed") == 0) {
        if (items)
            printf("freed %s\n", items->name); /* restored: items->name read from freed memory */
        struct item *it = malloc(sizeof(*it));
        it->name = strdup("freed");
        it->next = NULL;
        items = it;
        printf("freed %s\n", items->name);
        write_file(path, mode, 1);
        free(it->name);
        free(it); /* items dangles from here on */
    } else if (strcmp(mode, "handle") == 0) {
        if (handle)
            *(volatile int *)handle = 1; /* a handle of the last process: here it is nothing */
        handle = 0x38;
        printf("handle fresh\n");
        write_file(path, mode, (long)handle);
    } else if (strcmp(mode, "intlike") == 0) {
        if (!numbers) {
            uintptr_t end = internal_reserve_end();
            if (end == 0) {
                fprintf(stderr, "restore_prog: no internal heap reservation in /proc/self/maps\n");
                return 1;
            }
            numbers = malloc(64 * sizeof(*numbers));
            for (int i = 0; i < 64; i++) /* far past anything the internal heap has handed out */
                numbers[i] = end - (4ul << 30) + (uint64_t)i * 4096;
        }
        report_numbers(mode, path);
    } else if (strcmp(mode, "slotlike") == 0) {
        if (!numbers) {
            const char *hs = getenv("LRVM_HEAP_SIZE");
            unsigned long mib = hs ? strtoul(hs, NULL, 10) : 16384; /* "64M" in the test */
            uintptr_t lo = anon_of_size(2 * (mib << 20));
            if (lo == 0) {
                fprintf(stderr, "restore_prog: no anonymous mapping of twice the heap size\n");
                return 1;
            }
            numbers = malloc(64 * sizeof(*numbers));
            for (int i = 0; i < 64; i++)
                numbers[i] = lo + (uint64_t)i * 4096 + 8;
        }
        report_numbers(mode, path);
    } else if (strcmp(mode, "tailword") == 0) {
        if (tail) {
            printf("tailword %s\n", filled((char *)tail, TAIL_SIZE - 6) ? "kept" : "changed");
        } else {
            uintptr_t a = (uintptr_t)anon_map() + 4096; /* 48 bits: the top two bytes are 0 */
            tail = malloc(TAIL_SIZE);
            memset(tail, FILL, TAIL_SIZE - 6);
            memcpy(tail + TAIL_SIZE - 6, &a, 6); /* little-endian: the address's low 6 bytes */
            printf("tailword new\n");
        }
        write_file(path, mode, 1);
    } else if (strncmp(mode, "stale-", 6) == 0) {
        if (held[0]) {
            printf("%s %s\n", mode, held[0][0] == FILL ? "kept" : "changed");
        } else {
            if (stale(mode))
                return 1;
            printf("%s new\n", mode);
        }
        write_file(path, mode, 1);
    } else if (strcmp(mode, "read") == 0) {
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, inbuf + 100, sizeof(inbuf) - 100); /* spans pages */
        if (n < 0) {
            perror("read into a global buffer");
            return 1;
        }
        printf("read %zd\n", n);
    } else {
        return 64;
    }
    return 0;
}
