/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c -- CRC32C (Castagnoli), with the SSE4.2 crc32 instruction when the CPU has
 * it and a table otherwise. Log records and status slots are checked with it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rvm_int.h"

#include <pthread.h>

static uint32_t crc_table[256];
static int crc_hw;          /* 0 table, 1 SSE4.2 */
static int crc_hw_detected; /* what the CPU offers */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* crc_init_table -- build the reflected CRC32C table (polynomial 0x82F63B78) */
static void crc_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

/* crc_setup -- table and CPU detection, once per process */
static void crc_setup(void)
{
    crc_init_table();
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw_detected = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
    crc_hw = crc_hw_detected;
}

/* crc_sw -- table-driven update */
static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t n)
{
    while (n--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
/* crc_hw_update -- SSE4.2 update, 8 bytes per instruction */
__attribute__((target("sse4.2"))) static uint32_t crc_hw_update(uint32_t c, const unsigned char *p,
                                                                size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

/* crc32c -- CRC32C of buf, continuing from seed (0 to start, or a previous result) */
uint32_t crc32c(uint32_t seed, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_setup);
    uint32_t c = ~seed;
#if defined(__x86_64__)
    if (crc_hw == 1)
        return ~crc_hw_update(c, buf, len);
#endif
    return ~crc_sw(c, buf, len);
}

/* crc32c_force_table -- testing: use the table path even on SSE4.2 CPUs (1) or not (0) */
void crc32c_force_table(int on)
{
    pthread_once(&crc_once, crc_setup);
    crc_hw = on ? 0 : crc_hw_detected;
}
