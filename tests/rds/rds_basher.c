/* SPDX-License-Identifier: MIT */
/*
 * rds_basher.c -- a stress program for RDS in the spirit of the original distribution's
 * basher: random allocations, frees (direct and deferred through rds_fake_free/rds_do_free)
 * and range writes into allocated blocks, in random transactions (restore mode; aborted,
 * committed flush or no_flush), with periodic full consistency checks of the heap and of
 * the data. It is run under SIGKILL by test_rds_crash and timed by the RDS benchmark.
 *
 *   rds_basher init LOG SEG                make the log and an RDS segment
 *   rds_basher run LOG SEG SEED TXNS       recover, verify, print "verified", then TXNS
 *                                          transactions (0: until killed), verify, unload
 *
 * The data model lives in the segment's static region: slots {block, length, checksum,
 * state}. Every change to a block and to its slot is in the same transaction, so after any
 * crash each used slot's checksum matches its block. A deferred free goes slot -> PENDING
 * (committed), rds_do_free, slot -> empty; a restart finishes a PENDING slot whatever
 * point the crash interrupted. Exit status: 0 ok, 3 inconsistency (message on stderr),
 * 1 other failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rvm/rds.h>
#include <rvm/rvm.h>
#include <rvm/rvm_segment.h>

#include "rds_int.h"

#define NSLOTS 256
#define HEAP_ADDR ((char *)0x5a0000000000UL)
#define HEAP_LEN (1UL << 20)
#define STATIC_LEN 16384UL
#define LOG_LEN (8UL << 20)

enum { EMPTY = 0, USED = 1, PENDING = 2 };

struct slot {
    char *p;
    uint64_t len, sum, state;
};
struct model {
    uint64_t magic;
    uint64_t txns; /* committed transactions (flush or no_flush) */
    struct slot s[NSLOTS];
};
#define MAGIC 0x7264736261736821ULL

static struct model *M;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t fnv(const char *p, uint64_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void die(int code, const char *what, int err)
{
    fprintf(stderr, "rds_basher: %s: err %d: %s\n", what, err, rds_errmsg);
    exit(code);
}

/* verify -- the heap checker, then every slot against its block; exits 3 on damage */
static void verify(void)
{
    char msg[512];
    struct rds_check_stats st;
    rds_heap_hdr_t *h = RecoverableHeapStartAddress;
    if (rds_check_image((char *)h, h->heaplength, (uintptr_t)h, &st, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "rds_basher: heap check: %s\n", msg);
        exit(3);
    }
    unsigned long used = 0, bytes = 0;
    for (int i = 0; i < NSLOTS; i++) {
        struct slot *s = &M->s[i];
        if (s->state == EMPTY)
            continue;
        rds_block_t *bp = (rds_block_t *)(s->p - RDS_USER_OFFSET);
        if (bp->type != ALLOC_GUARD || bp->size * h->chunk_size < s->len + RDS_BLOCK_OVERHEAD) {
            fprintf(stderr, "rds_basher: slot %d: block %p not allocated or too small\n", i,
                    (void *)s->p);
            exit(3);
        }
        if (s->state == USED && fnv(s->p, s->len) != s->sum) {
            fprintf(stderr, "rds_basher: slot %d: block %p checksum differs\n", i, (void *)s->p);
            exit(3);
        }
        used++;
        bytes += bp->size * h->chunk_size;
    }
    if (used != st.nalloc || bytes != st.alloc_bytes || st.stats_mismatch) {
        fprintf(stderr,
                "rds_basher: %lu slots hold %lu bytes, the heap has %lu blocks of %lu "
                "bytes allocated (counters %s)\n",
                used, bytes, st.nalloc, st.alloc_bytes, st.stats_mismatch ? "disagree" : "agree");
        exit(3);
    }
}

/* fill -- random bytes into [p, p+n) (range declared by the caller) */
static void fill(char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (char)(rnd() >> 24);
}

static int sr(rvm_tid_t *t, void *p, uint64_t n)
{
    rvm_return_t rc = rvm_set_range(t, p, n);
    if (rc != RVM_SUCCESS)
        die(1, "rvm_set_range", rc);
    return 0;
}

/* op_malloc -- allocate into an empty slot; -1 if the heap is full (abort) */
static int op_malloc(rvm_tid_t *t, struct slot *s)
{
    uint64_t len = rnd() % 16 == 0 ? 4096 + rnd() % 16384 : 1 + rnd() % 1500;
    int err;
    char *p = rds_malloc(len, t, &err);
    if (p == NULL) {
        if (err == ENO_ROOM)
            return -1;
        die(3, "rds_malloc", err);
    }
    sr(t, p, len);
    fill(p, len);
    sr(t, s, sizeof(*s));
    *s = (struct slot){p, len, fnv(p, len), USED};
    return 0;
}

/* op_write -- rewrite a random range of a used block */
static void op_write(rvm_tid_t *t, struct slot *s)
{
    uint64_t off = rnd() % s->len, n = 1 + rnd() % (s->len - off);
    sr(t, s->p + off, n);
    fill(s->p + off, n);
    sr(t, &s->sum, sizeof(s->sum));
    s->sum = fnv(s->p, s->len);
}

/* op_free -- free in the transaction, or mark for a deferred free after commit */
static void op_free(rvm_tid_t *t, struct slot *s, intentionList_t *later)
{
    int err;
    sr(t, s, sizeof(*s));
    if (rnd() % 2) {
        if (rds_fake_free(s->p, later) != SUCCESS)
            die(3, "rds_fake_free", -1);
        s->state = PENDING;
        return;
    }
    if (rds_free(s->p, t, &err) != 0)
        die(3, "rds_free", err);
    memset(s, 0, sizeof(*s));
}

/* finish_pending -- complete deferred frees: free what is still allocated, clear slots */
static void finish_pending(rvm_mode_t mode)
{
    intentionList_t l = {0, 0, NULL};
    for (int i = 0; i < NSLOTS; i++) {
        struct slot *s = &M->s[i];
        rds_block_t *bp = (rds_block_t *)(s->p - RDS_USER_OFFSET);
        if (s->state == PENDING && bp->type == ALLOC_GUARD && rds_fake_free(s->p, &l))
            die(3, "rds_fake_free (pending)", -1);
    }
    int err = rds_do_free(&l, mode);
    if (err != SUCCESS)
        die(3, "rds_do_free", err);
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_begin_transaction(&t, restore);
    for (int i = 0; i < NSLOTS; i++)
        if (M->s[i].state == PENDING) {
            sr(&t, &M->s[i], sizeof(M->s[i]));
            memset(&M->s[i], 0, sizeof(M->s[i]));
        }
    rvm_end_transaction(&t, mode);
}

/* one_txn -- 1..8 random operations, then abort, flush or no_flush commit */
static void one_txn(void)
{
    rvm_tid_t t;
    rvm_init_tid(&t);
    if (rvm_begin_transaction(&t, restore) != RVM_SUCCESS)
        die(1, "rvm_begin_transaction", -1);
    intentionList_t later = {0, 0, NULL};
    int nops = 1 + (int)(rnd() % 8), full = 0;
    for (int k = 0; k < nops && !full; k++) {
        struct slot *s = &M->s[rnd() % NSLOTS];
        if (s->state == EMPTY)
            full = op_malloc(&t, s);
        else if (s->state == USED)
            rnd() % 3 ? op_write(&t, s) : op_free(&t, s, &later);
    }
    uint64_t r = rnd() % 10;
    if (full || r == 0) { /* restore mode: memory and heap come back */
        rvm_abort_transaction(&t);
        free(later.table);
        return;
    }
    sr(&t, &M->txns, sizeof(M->txns));
    M->txns++;
    rvm_mode_t mode = r < 3 ? flush : no_flush;
    if (rvm_end_transaction(&t, mode) != RVM_SUCCESS)
        die(1, "rvm_end_transaction", -1);
    if (later.table != NULL) {
        free(later.table);
        finish_pending(mode);
    }
}

static void start_rvm(const char *log)
{
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = (char *)log;
    /* RDS_BASHER_TRUNCATE=PCT: the truncation threshold (a test that needs records to stay
     * in the log sets 100: nothing is applied before the log is full) */
    const char *tr = getenv("RDS_BASHER_TRUNCATE");
    if (tr != NULL)
        o->truncate = (rvm_length_t)strtoul(tr, NULL, 10);
    rvm_return_t rc = RVM_INIT(o);
    if (rc != RVM_SUCCESS)
        die(1, "rvm_initialize", rc);
    rvm_free_options(o);
}

static void load(const char *seg)
{
    char *statics;
    int err;
    if (rds_load_heap((char *)seg, RVM_MK_OFFSET(0, 0), &statics, &err) != 0)
        die(1, "rds_load_heap", err);
    M = (struct model *)statics;
}

static int cmd_init(const char *log, const char *seg)
{
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = (char *)log;
    rvm_offset_t len = RVM_MK_OFFSET(0, LOG_LEN);
    if (rvm_create_log(o, &len, 0600) != RVM_SUCCESS || RVM_INIT(o) != RVM_SUCCESS)
        die(1, "create log", -1);
    rvm_free_options(o);
    FILE *f = fopen(seg, "w");
    if (f == NULL || ftruncate(fileno(f), (off_t)(HEAP_LEN + STATIC_LEN + 4096 * 4)) != 0)
        die(1, "create segment", -1);
    fclose(f);
    int err;
    rds_zap_heap((char *)seg, RVM_MK_OFFSET(0, HEAP_LEN + STATIC_LEN + 4096 * 4), HEAP_ADDR,
                 STATIC_LEN, HEAP_LEN, 64, 64, &err);
    if (err != SUCCESS)
        die(1, "rds_zap_heap", err);
    load(seg);
    rvm_tid_t t;
    rvm_init_tid(&t);
    rvm_begin_transaction(&t, restore);
    sr(&t, M, sizeof(*M));
    memset(M, 0, sizeof(*M));
    M->magic = MAGIC;
    rvm_end_transaction(&t, flush);
    return 0;
}

static int cmd_run(const char *log, const char *seg, uint64_t seed, uint64_t txns)
{
    start_rvm(log);
    load(seg);
    if (M->magic != MAGIC)
        die(3, "static area has no basher model", -1);
    finish_pending(flush);
    verify();
    printf("verified %llu\n", (unsigned long long)M->txns);
    fflush(stdout);
    rng_state = seed * 2654435761ULL + 88172645463325252ULL;
    for (uint64_t i = 0; txns == 0 || i < txns; i++) {
        one_txn();
        if (i % 64 == 63)
            verify();
    }
    verify();
    /* RDS_BASHER_KILL_AT_END: die here as a crash would, the records still in the log */
    if (getenv("RDS_BASHER_KILL_AT_END") != NULL) {
        fflush(stdout);
        raise(SIGKILL);
    }
    int err;
    rds_unload_heap(&err);
    rvm_terminate();
    printf("done %llu\n", (unsigned long long)txns);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "init"))
        return cmd_init(argv[2], argv[3]);
    if (argc == 6 && !strcmp(argv[1], "run"))
        return cmd_run(argv[2], argv[3], strtoull(argv[4], NULL, 0), strtoull(argv[5], NULL, 0));
    fprintf(stderr, "usage: rds_basher init LOG SEG | run LOG SEG SEED TXNS\n");
    return 2;
}
