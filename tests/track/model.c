/* SPDX-License-Identifier: MIT */
/*
 * model.c -- the random write batches of the model-based crash tests (see model.h).
 */
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "track_test.h"

/* one batch of writes for commit c, applied to mem; child != 0 uses read(2) via a pipe
 * where the model uses memcpy */
void model_batch(char *mem, size_t len, uint64_t seed, uint64_t c, int child, int pfd[2])
{
    size_t ps = vmp_page_size();
    uint64_t s = seed ^ (c * 0x9e3779b97f4a7c15ull);
    unsigned nops = 1 + (unsigned)(tt_rnd(&s) % 12);
    static char tmp[4 * 4096 + 64];
    for (unsigned k = 0; k < nops; k++) {
        unsigned op = (unsigned)(tt_rnd(&s) % 6);
        size_t off, n;
        switch (op) {
        case 0: /* sparse 8-byte stores */
            for (unsigned j = 0; j < 8; j++) {
                off = (tt_rnd(&s) % (len / 8)) * 8;
                uint64_t v = tt_rnd(&s);
                *(volatile uint64_t *)(mem + off) = v;
            }
            break;
        case 1: /* dense memset over up to 3 pages */
            n = 1 + tt_rnd(&s) % (3 * ps);
            off = tt_rnd(&s) % (len - n);
            memset(mem + off, (int)(tt_rnd(&s) & 0xff), n);
            break;
        case 2: /* across a page end */
            n = 2 + tt_rnd(&s) % 64;
            off = (1 + tt_rnd(&s) % (len / ps - 1)) * ps - n / 2;
            for (size_t j = 0; j < n; j++)
                tmp[j] = (char)tt_rnd(&s);
            memcpy(mem + off, tmp, n);
            break;
        case 3: /* a kernel write: read(2) from a pipe */
            n = 1 + tt_rnd(&s) % (2 * ps + 100);
            off = tt_rnd(&s) % (len - n);
            for (size_t j = 0; j < n; j++)
                tmp[j] = (char)tt_rnd(&s);
            if (!child) {
                memcpy(mem + off, tmp, n);
            } else {
                if (write(pfd[1], tmp, n) != (ssize_t)n)
                    _exit(3);
                if (rvm_track_prepare_write(mem + off, n) != RVM_SUCCESS)
                    _exit(4);
                if (read(pfd[0], mem + off, n) != (ssize_t)n)
                    _exit(5);
            }
            break;
        case 4: /* single bytes, plain stores */
            for (unsigned j = 0; j < 16; j++)
                mem[tt_rnd(&s) % len] = (char)tt_rnd(&s);
            break;
        default: /* rewrite bytes with their own value: dirty, unchanged */
            n = 1 + tt_rnd(&s) % ps;
            off = tt_rnd(&s) % (len - n);
            memmove(mem + off, mem + off, n);
            break;
        }
    }
}
