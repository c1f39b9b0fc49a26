/* SPDX-License-Identifier: MIT */
/*
 * route_bench.c -- the cost of the shim's malloc routing on the hot path (libcobj.c adds a
 * test of the return address against libc's text to every persistent-mode malloc). Run it
 * under two builds of liblrvm-preload.so side by side (bench/preload/route_bench.sh):
 *   malloc/free 64 B from the program     the program's own calls (one range test more)
 *   strdup/free 64 B                      malloc called from inside libc (range test hit,
 *                                         then the scan of the learnt call sites)
 *   fopen/fgetc/fclose                    libc's FILE + stdio buffer (routed to the
 *                                         internal heap)
 * Prints ns per operation for each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    void *keep[64];
    memset(keep, 0, sizeof(keep));
    double t0 = now();
    for (long i = 0; i < n; i++) {
        void **slot = &keep[i & 63];
        free(*slot);
        *slot = malloc(64);
    }
    double t1 = now();
    char src[64];
    memset(src, 'x', 63);
    src[63] = 0;
    for (long i = 0; i < n; i++) {
        void **slot = &keep[i & 63];
        free(*slot);
        *slot = strdup(src);
    }
    double t2 = now();
    long nf = n / 100;
    for (long i = 0; i < nf; i++) {
        FILE *f = fopen("/dev/null", "r");
        (void)fgetc(f);
        fclose(f);
    }
    double t3 = now();
    printf("malloc_free_ns %.1f\nstrdup_free_ns %.1f\nfopen_fgetc_fclose_ns %.1f\n",
           (t1 - t0) / (double)n, (t2 - t1) / (double)n, (t3 - t2) / (double)nf);
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return 0;
}
