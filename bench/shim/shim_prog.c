/* SPDX-License-Identifier: MIT */
/*
 * shim_prog.c -- the unmodified program of the shim's restart and pause benchmarks (it makes
 * no lrvm call; scripts/bench-shim-restart.sh runs it under liblrvm-preload.so).
 *
 *   shim-prog fill MIB      allocate MIB MiB in 256 KiB blocks and write every byte
 *   shim-prog start         do nothing (a restart: what does start-up cost?)
 *   shim-prog touch MIB     read one byte of each of MIB MiB of the heap (the pages a restart
 *                           maps but has not read)
 *   shim-prog pause MIB     allocate and write MIB MiB, send itself SIGUSR1 (LRVM_COMMIT=signal
 *                           commits on it) and spin reading the clock: the longest gap between
 *                           two readings is the pause the program saw; then write the same
 *                           MIB MiB again and do it a second time (max_gap_ns_0, _1)
 * Every mode prints "main_ns=<CLOCK_MONOTONIC at main>" first, so the driver can tell start-up
 * (exec to main) from the rest.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK ((size_t)256 << 10)

/* now_ns -- CLOCK_MONOTONIC in ns (system-wide: comparable with the driver's clock) */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* fill -- allocate and write mib MiB; the blocks stay allocated (the heap in use) */
static int fill(size_t mib, unsigned seed)
{
    size_t n = (mib << 20) / BLOCK;
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = malloc(BLOCK);
        if (p == NULL) {
            fprintf(stderr, "shim-prog: malloc failed after %zu MiB\n", i * BLOCK >> 20);
            return 1;
        }
        memset(p, (int)((seed + i) & 0xff), BLOCK);
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t t0 = now_ns();
    printf("main_ns=%llu\n", (unsigned long long)t0);
    fflush(stdout);
    if (argc < 2)
        goto usage;
    size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    if (strcmp(argv[1], "start") == 0)
        return 0;
    if (strcmp(argv[1], "fill") == 0)
        return fill(mib, 1);
    if (strcmp(argv[1], "touch") == 0) {
        /* the heap's blocks are not reachable without a root: walk the heap's address range
         * from a fresh small block downwards is not portable; read through new allocations
         * instead is meaningless. So: read the reservation's first mib MiB directly. */
        const char *base = (const char *)(uintptr_t)strtoull(
            getenv("LRVM_HEAP_BASE") ? getenv("LRVM_HEAP_BASE") : "0x200000000000", NULL, 0);
        unsigned long sum = 0;
        for (size_t o = 0; o < (mib << 20); o += 4096)
            sum += (unsigned char)base[o];
        printf("sum=%lu touch_ns=%llu\n", sum, (unsigned long long)(now_ns() - t0));
        return 0;
    }
    if (strcmp(argv[1], "pause") == 0) {
        /* two signal commits: the first of freshly dirtied pages, the second after writing
         * the same pages again (the steady state of a program that keeps changing its data) */
        size_t n = (mib << 20) / BLOCK;
        unsigned char **b = calloc(n, sizeof(*b));
        if (b == NULL)
            return 1;
        for (size_t i = 0; i < n; i++)
            if ((b[i] = malloc(BLOCK)) == NULL)
                return 1;
        for (int round = 0; round < 2; round++) {
            for (size_t i = 0; i < n; i++)
                memset(b[i], round + 1, BLOCK);
            uint64_t t_sig = now_ns(), last = t_sig, gap = 0;
            kill(getpid(), SIGUSR1);
            /* spin 1.5 s: long enough for the commit thread to finish a 64 MiB commit */
            while (last - t_sig < 1500000000u) {
                uint64_t t = now_ns();
                if (t - last > gap)
                    gap = t - last;
                last = t;
            }
            printf("max_gap_ns_%d=%llu\n", round, (unsigned long long)gap);
        }
        return 0;
    }
usage:
    fprintf(stderr, "usage: shim-prog fill|start|touch|pause [MIB]\n");
    return 2;
}
