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
 *   restore_prog handle FILE  a global holding an integer handle the check cannot recognise
 *                             (as perl's thread key): a restored run crashes with SIGSEGV
 *   restore_prog read FILE    read(2) FILE into a static buffer (as xz does): the kernel writes
 *                             into the tracked globals; prints the bytes read
 *   restore_prog intlike FILE a heap block reached from a global holds integers that fall in
 *                             the address range the shim reserved for its internal heap, but in
 *                             no block of it (random data does): restorable, prints "intlike N"
 * Each mode writes "<mode> <state>" to FILE (truncating it first), so a test sees whether a
 * run got as far as main and whether it damaged the file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
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
uintptr_t handle;            /* handle */
uint64_t *numbers;           /* intlike */
static char inbuf[3 * 4096]; /* read: .bss, three pages */

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
        long n = 0;
        for (int i = 0; i < 64; i++)
            n += numbers[i] != 0;
        counter++;
        printf("intlike %ld %d\n", n, counter);
        write_file(path, mode, counter);
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
