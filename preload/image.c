/* SPDX-License-Identifier: MIT */
/*
 * image.c -- the segment's header page (core/image/image_format.h) as the shim uses it: is this
 * segment ours to open, the header of a new one, and the commit stamp.
 *
 * Why the checks run on the header read from the FILE, before the log is opened: a refusal must
 * leave the segment and its log exactly as they were (no recovery, no truncation, no lock held
 * after exit). A header that is only in the log (a crash right after the creating commit) is
 * checked again after recovery (persist.c).
 */
#include "shim.h"
#include "preload_api.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* id_hex -- "kind:hex" of a build-id into buf (>= 2 * IMG_BUILD_ID_MAX + 16) */
static char *id_hex(char *buf, uint32_t kind, const uint8_t *id, uint32_t len)
{
    size_t k = 0;
    if (kind == IMG_ID_CRC32C) {
        memcpy(buf, "crc32c of the file ", 19);
        k = 19;
    }
    for (uint32_t i = 0; i < len && i < IMG_BUILD_ID_MAX; i++) {
        buf[k++] = "0123456789abcdef"[id[i] >> 4];
        buf[k++] = "0123456789abcdef"[id[i] & 15];
    }
    if (!len) {
        memcpy(buf + k, "none", 4);
        k += 4;
    }
    buf[k] = 0;
    return buf;
}

/* all_zero -- n bytes of p are zero */
static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

/* image_check_program -- a segment with globals against this program: same executable
 * (build-id), same load base, same globals layout */
static int image_check_program(const struct image_header *h, const char *seg)
{
    char a[160], b[160];
    const struct shim_exe *e = &shim_exe;
    char path[IMG_PATH_MAX];
    memcpy(path, h->exe_path, sizeof(path));
    path[sizeof(path) - 1] = 0;
    if (h->id_kind != e->id_kind || h->id_len != e->id_len ||
        memcmp(h->build_id, e->build_id, e->id_len) != 0) {
        shim_say(2, "LRVM_SEGMENT=", seg, " was written by ", path, " (build-id ",
                 id_hex(a, h->id_kind, h->build_id, h->id_len), "); this program is ", e->path,
                 " (build-id ", id_hex(b, e->id_kind, e->build_id, e->id_len),
                 "): its globals cannot be restored into another program. Use another "
                 "LRVM_SEGMENT",
                 NULL);
        return EINVAL;
    }
    if (h->load_base != e->load_base) {
        shim_say(2, "LRVM_SEGMENT=", seg, " holds the globals of ", path, " loaded at ",
                 shim_fmt_hex(a, h->load_base), "; this run loaded it at ",
                 shim_fmt_hex(b, e->load_base),
                 " (address-space randomisation is on and could "
                 "not be turned off): run the program with lrvm-run, or under `setarch -R`, or "
                 "with LRVM_GLOBALS=0 and another LRVM_SEGMENT",
                 NULL);
        return EINVAL;
    }
    if (h->globals_vaddr != e->g_lo || h->globals_len != e->g_hi - e->g_lo ||
        h->globals_off != IMG_HEADER_SIZE) {
        shim_say(2, "LRVM_SEGMENT=", seg, ": its globals area does not match ", e->path,
                 " (same build-id and base, different layout: a damaged header?); use another "
                 "LRVM_SEGMENT",
                 NULL);
        return EINVAL;
    }
    return 0;
}

/* shim_image_check -- the order of the checks is the order a user fixes them in */
int shim_image_check(const struct image_header *h, const char *seg)
{
    char a[160], b[160], c[24], d[24];
    /* log_pending is written straight into the file before the creating commit reaches the log
   * (image_format.h): a header of zeros but for it is still a segment not created yet */
    if (all_zero(h, offsetof(struct image_header, log_pending)) &&
        all_zero(&h->pad2, sizeof(h->pad2)))
        return 1;
    if (memcmp(h->magic, HEAP_MAGIC, 8) == 0) {
        shim_say(2, "LRVM_SEGMENT=", seg,
                 " holds a heap in the layout of lrvm before segment "
                 "format 1 (no header page): this version cannot open it. Move it away (or delete "
                 "it and its log) and start a new segment",
                 NULL);
        return EPROTO;
    }
    if (memcmp(h->magic, IMG_MAGIC, 8) != 0) {
        shim_say(2, "LRVM_SEGMENT=", seg,
                 " is not an lrvm segment (no \"" IMG_MAGIC "\" header):"
                 " choose another LRVM_SEGMENT; lrvm never overwrites a file it does not "
                 "recognise",
                 NULL);
        return EPROTO;
    }
    int v2 = h->version == IMG_FORMAT_VERSION && h->header_size == sizeof(*h);
    int v1 = h->version == IMG_FORMAT_VERSION_V1 && h->header_size == IMG_HEADER_SIZE_V1;
    if (!v1 && !v2) {
        shim_say(2, "LRVM_SEGMENT=", seg, " has segment format version ",
                 shim_fmt_u64(c, h->version), "; this lrvm reads versions 1 to ",
                 shim_fmt_u64(d, IMG_FORMAT_VERSION),
                 ": open it with the lrvm that wrote it, or choose another LRVM_SEGMENT", NULL);
        return EPROTO;
    }
    if (h->heap_base != shim_opts.heap_base || h->heap_reserve != shim_opts.heap_size) {
        shim_say(2, "LRVM_SEGMENT=", seg,
                 " was created with LRVM_HEAP_BASE=", shim_fmt_hex(a, h->heap_base),
                 " LRVM_HEAP_SIZE=", shim_fmt_u64(b, h->heap_reserve >> 20),
                 "M: run with these values (this run has ", shim_fmt_hex(c, shim_opts.heap_base),
                 ", ", shim_fmt_u64(d, shim_opts.heap_size >> 20), "M)", NULL);
        return EINVAL;
    }
    int has_globals = (h->flags & IMG_F_GLOBALS) != 0;
    if (!has_globals && shim_opts.globals) {
        shim_say(2, "LRVM_SEGMENT=", seg,
                 " holds a heap only (created with LRVM_GLOBALS=0): run "
                 "with LRVM_GLOBALS=0, or choose another LRVM_SEGMENT to keep the globals too",
                 NULL);
        return EINVAL;
    }
    /* heap-only, whether the segment has globals or not (LRVM_GLOBALS=0 on a segment with
   * globals keeps its heap and leaves its globals area alone): another build may open it
   * (image_format.h) */
    if (!shim_opts.globals)
        return 0;
    return image_check_program(h, seg);
}

/* now_ns -- CLOCK_REALTIME in nanoseconds */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* new_seg_id -- a random identity (image_format.h, IDENTITY); never all zeros */
static void new_seg_id(uint8_t id[16])
{
    if (getrandom(id, 16, 0) != 16) {
        uint64_t t = now_ns() ^ ((uint64_t)getpid() << 32);
        memcpy(id, &t, 8);
        t *= 0x9E3779B97F4A7C15ull;
        memcpy(id + 8, &t, 8);
    }
    id[0] |= 1;
}

/* shim_image_create -- the immutable fields; the header page is tracked, so these writes are
 * part of the creating commit */
void shim_image_create(struct image_header *h, uint64_t globals_len, uint64_t heap_off)
{
    const struct shim_exe *e = &shim_exe;
    memcpy(h->magic, IMG_MAGIC, 8);
    h->version = IMG_FORMAT_VERSION;
    h->header_size = sizeof(*h);
    h->heap_base = shim_opts.heap_base;
    h->heap_reserve = shim_opts.heap_size;
    h->heap_off = heap_off;
    h->globals_off = IMG_HEADER_SIZE;
    h->globals_len = globals_len;
    h->globals_vaddr = globals_len ? e->g_lo : 0;
    h->load_base = e->load_base;
    h->created_ns = now_ns();
    h->id_kind = e->id_kind;
    h->id_len = e->id_len;
    memcpy(h->build_id, e->build_id, sizeof(h->build_id));
    memcpy(h->exe_path, e->path, sizeof(h->exe_path));
    h->flags = globals_len ? IMG_F_GLOBALS : 0;
    new_seg_id(h->seg_id);
}

/* shim_image_stamp -- count the commit about to be made; it carries these writes. A version-1
 * header is upgraded in the same commit (image_format.h, VERSIONS). A commit without the
 * globals voids them (GLOBALS COMMITTED) and their verdict. */
void shim_image_stamp(struct image_header *h, int globals_in_commit)
{
    if (h->version != IMG_FORMAT_VERSION) {
        /* a version 1 segment becomes version 2 in this commit: it gets its identity */
        h->version = IMG_FORMAT_VERSION;
        h->header_size = sizeof(*h);
        new_seg_id(h->seg_id);
    }
    h->log_pending = 1; /* already in the file (persist.c); kept so no commit clears it */
    h->commit_count++;
    h->last_commit_ns = now_ns();
    h->last_commit_pid = (uint64_t)getpid();
    if (globals_in_commit) {
        h->flags |= IMG_F_GLOBALS_VALID;
    } else if (h->flags & IMG_F_GLOBALS_VALID) {
        h->flags &= ~(uint32_t)IMG_F_GLOBALS_VALID;
        shim_restore_clear(h);
    }
}
