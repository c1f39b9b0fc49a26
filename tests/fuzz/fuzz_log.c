/* SPDX-License-Identifier: MIT */
/*
 * fuzz_log.c -- libFuzzer target: the log reader over arbitrary bytes.
 *
 * Built by scripts/fuzz.sh with clang -fsanitize=fuzzer,address,undefined against the core
 * sources (internal headers included), so it reaches the reader directly instead of going
 * through rvm_initialize (which works once per process).
 *
 * Input: byte 0 selects the mode, the rest is the payload.
 *   mode & 1 == 0   STATUS: payload is the first bytes of the status area (slot 0, then
 *                   slot 1); with mode & 2 the harness repairs magic, version, RVM version
 *                   and the CRC of slot 0 so that the fuzzer gets past the checksum and
 *                   exercises the consistency checks and the segment dictionary.
 *   mode & 1 == 1   RECORDS: a valid status (one salt epoch) and the payload as the record area
 *                   from head 0; with mode & 2 the harness repairs each record it can walk
 *                   (magic, type, expected sequence number, CRC) so that the fuzzer reaches
 *                   the payload checks (ranges inside the record, lengths, segment ids).
 * Any crash, sanitizer report, or hang is a bug in the reader.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log_format.h"
#include "rvm_int.h"
#include "sysio.h"

#define AREA_LEN (64u * 1024u)
#define FILE_LEN (LOG_HDR_SIZE + AREA_LEN)
#define SALT 0x0123456789abcdefull

static int fd = -1;
static char *file; /* the log image we write to fd */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* seal_slot -- make slot 0 of the image a valid status header (keeping fuzzed fields). */
static void seal_slot(char *slot, int keep_fields)
{
    struct log_status st;
    memcpy(&st, slot, sizeof st);
    st.magic = LOG_STATUS_MAGIC;
    st.version = LOG_FORMAT_VERSION;
    if (!keep_fields) {
        st.generation = 1;
        st.area_off = LOG_HDR_SIZE;
        st.area_len = AREA_LEN;
        st.head_off = 0;
        st.head_seq = 1;
        st.salt = SALT;
        st.nsegs = 0;
        st.used = sizeof st;
        st.nepochs = 1;
        st.zero = 0;
        memset(st.epochs, 0, sizeof st.epochs);
        st.epochs[0].seq = 1;
        st.epochs[0].salt = SALT;
    }
    if (st.used < sizeof st || st.used > LOG_SLOT_SIZE)
        st.used = sizeof st + (st.used % 512);
    memset(st.rvm_version, 0, sizeof st.rvm_version);
    strcpy(st.rvm_version, RVM_VERSION);
    st.crc = 0;
    memcpy(slot, &st, sizeof st);
    uint32_t c = crc32c(0, slot, sizeof st);
    c = crc32c(c, slot + sizeof st, st.used - sizeof st);
    st.crc = c;
    memcpy(slot, &st, sizeof st);
}

/* seal_records -- walk the record area as the writer lays it out and repair each record. */
static void seal_records(char *area)
{
    uint64_t pos = 0, seq = 1;
    uint32_t seed = (uint32_t)(SALT ^ (SALT >> 32));
    while (pos + LOG_REC_HDR <= AREA_LEN) {
        struct log_rec_hdr h;
        memcpy(&h, area + pos, sizeof h);
        uint32_t len = h.len & ~7u;
        if (len < LOG_REC_HDR)
            len = LOG_REC_HDR;
        if (pos + len > AREA_LEN)
            break;
        h.len = len;
        h.magic = LOG_REC_MAGIC;
        h.type = LOG_REC_TXN;
        h.seq = seq++;
        h.crc = 0;
        memcpy(area + pos, &h, sizeof h);
        h.crc = crc32c(seed, area + pos, len);
        memcpy(area + pos, &h, sizeof h);
        pos += len;
    }
}

/* LLVMFuzzerTestOneInput -- build a log image from one input and read it as recovery would */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (fd < 0) {
        fd = memfd_create("fuzz-log", 0);
        file = calloc(1, FILE_LEN);
        if (fd < 0 || !file || ftruncate(fd, FILE_LEN) != 0)
            abort();
    }
    int mode = data[0];
    data++;
    size--;
    memset(file, 0, FILE_LEN);
    if ((mode & 1) == 0) {
        size_t n = size < LOG_HDR_SIZE ? size : LOG_HDR_SIZE;
        memcpy(file, data, n);
        if (mode & 2)
            seal_slot(file, 1);
    } else {
        seal_slot(file, 0);
        size_t n = size < AREA_LEN ? size : AREA_LEN;
        memcpy(file + LOG_HDR_SIZE, data, n);
        if (mode & 2)
            seal_records(file + LOG_HDR_SIZE);
    }
    if (pwrite(fd, file, FILE_LEN, 0) != (ssize_t)FILE_LEN)
        abort();

    struct log_status st;
    struct buf dict = {0};
    if (log_status_read(fd, "fuzz-log", &st, &dict) != RVM_SUCCESS) {
        buf_free(&dict);
        return 0;
    }
    buf_free(&dict);

    /* walk the valid chain from the head, as recovery does, checking every payload */
    struct logrd rd;
    memset(&rd, 0, sizeof rd);
    rd.fd = fd;
    rd.path = "fuzz-log";
    rd.area_off = st.area_off;
    rd.area_len = st.area_len;
    rd.epochs = st.epochs;
    rd.nepochs = st.nepochs;
    rd.chunk = 16 * 1024;
    uint64_t pos = st.head_off, seq = st.head_seq;
    for (int i = 0; i < 10000; i++) {
        const struct log_rec_hdr *h = NULL;
        const char *payload = NULL;
        uint64_t p = pos;
        /* 1: a valid record with this seq at pos or (after a wrap) at 0, p updated */
        if (logrd_next(&rd, &p, seq, &h, &payload) != 1)
            break;
        if (h == NULL || payload == NULL || rec_check_payload(h, payload) != 0)
            abort(); /* logrd_next returned a record its own payload check rejects */
        /* touch every range's data as apply would, so ASan sees any overrun */
        const char *data = payload + (size_t)h->nranges * LOG_RANGE_HDR;
        volatile unsigned char sink = 0;
        for (uint32_t k = 0; k < h->nranges; k++) {
            struct log_range_hdr r;
            memcpy(&r, payload + (size_t)k * LOG_RANGE_HDR, sizeof r);
            if (r.len)
                sink ^= (unsigned char)(data[0] ^ data[r.len - 1]);
            data += r.len;
        }
        (void)sink;
        pos = p + h->len;
        if (rd.area_len - pos < LOG_REC_HDR)
            pos = 0;
        seq++;
    }
    /* where the chain ended: the end-marker check and the scan of the free space for a later
     * record (log_end.c) read the same untrusted bytes */
    struct log_end e;
    if (log_end_find(&rd, pos, seq, st.head_off, &e) == 0 && e.kind == LOG_END_DAMAGED &&
        (e.later_seq <= seq || e.later_off + LOG_REC_HDR > rd.area_len))
        abort(); /* a "later record" that is not later, or not inside the area */
    buf_free(&rd.b);
    return 0;
}
