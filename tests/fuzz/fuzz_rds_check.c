/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rds_check.c -- libFuzzer target: the RDS heap checker (the code behind rvmutl
 * rds-check and rds_check_heap) over arbitrary heap images. It must report damage, never
 * crash, read out of bounds or loop forever: every pointer in a heap is data from a file.
 *
 * With input byte 0 == 'R' the harness writes a valid header (version string, chunk size,
 * list count, list guards) over the input, so the fuzzer spends its time on blocks and list
 * links rather than on the version string. The seed (corpus/rds_check) is a valid heap of
 * three blocks at the harness's address.
 * FUZZ_SOURCES: core/rds/rds_check.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rds_int.h"

#define IMG_LEN 8192
#define VM_BASE 0x5b5000000000UL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *img;
    if (img == NULL)
        img = malloc(IMG_LEN);
    memset(img, 0, IMG_LEN);
    memcpy(img, data, size < IMG_LEN ? size : IMG_LEN);
    if (size > 0 && data[0] == 'R') {
        rds_heap_hdr_t *h = (rds_heap_hdr_t *)img;
        unsigned long nl = 4 + (size > 1 ? data[1] % 8 : 0);
        memset(h->version, 0, sizeof(h->version));
        strcpy(h->version, RDS_HEAP_VERSION);
        h->heaplength = IMG_LEN;
        h->chunk_size = 64;
        h->nlists = nl;
        if (h->maxlist < 1 || h->maxlist > nl)
            h->maxlist = nl;
        for (unsigned long i = 1; i <= nl; i++)
            h->lists[i].guard = FREE_LIST_GUARD;
    }
    char msg[512];
    struct rds_check_stats st;
    rds_check_image(img, IMG_LEN, VM_BASE, &st, msg, sizeof(msg));
    return 0;
}
