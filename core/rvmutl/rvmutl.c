/* SPDX-License-Identifier: MIT */
/*
 * rvmutl.c -- inspect and maintain an lrvm log: create-log, status, list, dump,
 * verify, recover, truncate; and show a process-image segment (image_format.h): image. Exit status 0 when all is well, 1 when a problem was
 * found (verify) or a command failed, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <time.h>

#include <rvm/rvm.h>

#include "filecheck.h"
#include "heap_format.h"
#include "loglock.h"
#include "image_format.h"
#include "rvm_int.h"
#include "rvmutl.h"
#include "rvmutl_rds.h"
#include "sysio.h"

/* usage -- print help */
static void usage(FILE *f)
{
    fprintf(f, "usage: rvmutl COMMAND LOG [ARGS]\n"
               "       rvmutl [LOG] < commands   the original rvmutl's command language on\n"
               "                                 standard input (init_log LOG SIZE, open_log LOG,\n"
               "                                 status, recover, quit, ...: `rvmutl` then help)\n"
               "  create-log LOG SIZE   create a log with SIZE bytes of record space (k/m/g ok)\n"
               "  status LOG            head, tail, sequence numbers, fill, segments known\n"
               "  list LOG              one line per valid record\n"
               "  dump LOG [SEQ]        records with their ranges and first bytes of data\n"
               "  verify LOG            check status copies, record checksums, segments;\n"
               "                        exit 1 on any problem (including a torn tail)\n"
               "  recover LOG           apply committed records to the segments, reset log\n"
               "  truncate LOG          same as recover for a log no process has open\n"
               "  salvage LOG           recover a log with a damaged record in the middle:\n"
               "                        keep the records before it, say which were dropped\n"
               "  forget-log SEGMENT    accept a process-image segment whose log is lost, as\n"
               "                        its file holds it (what only the log held is gone)\n"
               "  image SEGMENT [LOG]   a program's segment (LD_PRELOAD shim): binary, build-id,\n"
               "                        load base, globals, heap, commits; LOG defaults to\n"
               "                        SEGMENT.log (reads the files only)\n"
               "  leaks SEGMENT [LOG] [--all] [--reclaim [--yes]]\n"
               "                        heap blocks of a program's segment that no root (its\n"
               "                        committed globals, named roots) reaches: count, bytes,\n"
               "                        the largest (--all: every one); report only (reads the\n"
               "                        files). --reclaim frees them in one commit after asking\n"
               "                        (--yes: without asking)\n"
               "  rds-check SEGMENT [LOG]  check the RDS heap in a segment file (rdsinit/RDS):\n"
               "                        every block and free list; exit 1 and the first damaged\n"
               "                        block's address if it is damaged; with LOG, the records\n"
               "                        not yet applied are laid over it (reads the files only)\n"
               "  --help                this text\n"
               "Logs and segments must belong to you and be writable by nobody else\n"
               "(LRVM_SHARED_GROUP=1 also accepts your groups' files). recover and truncate\n"
               "lock the log exclusively, the other commands share the lock: each is refused\n"
               "with \"in use by pid N\" while a program has the log open.\n");
}

/* parse_size -- "64m" -> bytes */
int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        end++;
        break;
    default: break;
    }
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

struct utl {
    int fd;
    const char *path;
    char *dir; /* the log's directory: relative dictionary paths start there */
    struct log_status st;
    struct buf dict;
    struct logrd rd;
};

/* utl_open -- open a log read-only and read its status */
static int utl_open(struct utl *u, const char *path)
{
    memset(u, 0, sizeof(*u));
    u->path = path;
    char why[1024];
    u->fd = filecheck_open(path, O_RDONLY, 0, "log", why, sizeof(why));
    if (u->fd < 0) {
        if (why[0])
            fprintf(stderr, "rvmutl: %s\n", why);
        else
            fprintf(stderr, "rvmutl: cannot open log %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* read-only commands share the lock: they see a log no program is changing (a live
     * writer appends and reclaims records under a reader, which would then report damage
     * that is not there), and a program cannot start on it while they read */
    if (loglock_take(u->fd, path, 0, why, sizeof(why)) != 0) {
        fprintf(stderr, "rvmutl: %s\n", why);
        close(u->fd);
        return -1;
    }
    if (log_status_read(u->fd, path, &u->st, &u->dict) != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: %s\n", rvm_errmsg);
        close(u->fd);
        return -1;
    }
    u->dir = log_dir_of(path);
    u->rd = (struct logrd){.fd = u->fd,
                           .path = path,
                           .area_off = u->st.area_off,
                           .area_len = u->st.area_len,
                           .epochs = u->st.epochs,
                           .nepochs = u->st.nepochs,
                           .chunk = 4u << 20};
    return 0;
}

/* utl_close -- release what utl_open took */
static void utl_close(struct utl *u)
{
    buf_free(&u->dict);
    buf_free(&u->rd.b);
    free(u->dir);
    u->dir = NULL;
    close(u->fd);
}

/* one dictionary entry as rvmutl shows it */
struct utl_seg {
    uint32_t id;
    uint8_t ident[LOG_SEG_ID_LEN]; /* all zero: none recorded */
    const char *stored;            /* as the log stores it (maybe relative) */
    char *path;                    /* resolved against the log's directory (malloc'd) */
};

/* utl_dict_next -- the entry at *pos of the dictionary (both formats); 0, or -1 at its end */
static int utl_dict_next(struct utl *u, size_t *pos, uint32_t k, struct utl_seg *e)
{
    size_t idlen = u->st.version >= LOG_FORMAT_VERSION ? LOG_SEG_ID_LEN : 0;
    if (k >= u->st.nsegs || *pos + 8 + idlen > u->dict.len)
        return -1;
    uint32_t plen;
    memcpy(&e->id, u->dict.p + *pos, 4);
    memcpy(&plen, u->dict.p + *pos + 4, 4);
    memset(e->ident, 0, sizeof(e->ident));
    memcpy(e->ident, u->dict.p + *pos + 8, idlen);
    e->stored = u->dict.p + *pos + 8 + idlen;
    if (plen == 0 || *pos + 8 + idlen + plen > u->dict.len || e->stored[plen - 1] != 0)
        return -1;
    e->path = dict_path_resolve(u->dir, e->stored);
    *pos += 8 + idlen + ((plen + 7u) & ~7u);
    return e->path ? 0 : -1;
}

/* utl_dict_print -- list the segment dictionary; returns how many have a problem (missing,
 * not writable, or carrying another identity than the log recorded) */
static int utl_dict_print(struct utl *u, int check)
{
    size_t pos = 0;
    int problems = 0;
    struct utl_seg e;
    for (uint32_t k = 0; utl_dict_next(u, &pos, k, &e) == 0; k++) {
        int ok = access(e.path, R_OK | W_OK) == 0;
        char want[2 * LOG_SEG_ID_LEN + 1], have[2 * LOG_SEG_ID_LEN + 1];
        uint8_t fid[LOG_SEG_ID_LEN];
        int fd = ok ? sysio.open(e.path, O_RDONLY, 0) : -1;
        int carries = fd >= 0 && seg_ident_read(fd, fid);
        if (fd >= 0)
            close(fd);
        seg_ident_hex(e.ident, want);
        seg_ident_hex(fid, have);
        int other = ok && seg_ident_known(e.ident) &&
                    (!carries || memcmp(fid, e.ident, LOG_SEG_ID_LEN) != 0);
        printf("  segment %u: %s%s%s, identity %s%s\n", e.id, e.path,
               e.stored[0] == '/' ? "" : " (stored relative to the log)",
               ok ? "" : "  (MISSING or not writable)",
               seg_ident_known(e.ident) ? want : "none recorded",
               other ? (carries ? "  (the file there carries ANOTHER identity)"
                                : "  (the file there carries NO identity)")
                     : "");
        (void)have;
        if (check && (!ok || other))
            problems++;
        free(e.path);
    }
    return problems;
}

/* utl_walk -- visit valid records from the head; returns the count; fills end/seq */
static uint64_t utl_walk(struct utl *u, int verbose, int dump, uint64_t only, uint64_t *end_off,
                         uint64_t *next_seq, uint64_t *bytes)
{
    uint64_t cur = u->st.head_off, seq = u->st.head_seq, n = 0;
    *bytes = 0;
    for (;;) {
        const struct log_rec_hdr *h;
        const char *pl;
        uint64_t p = cur;
        if (logrd_next(&u->rd, &p, seq, &h, &pl) != 1)
            break;
        if (p != cur)
            *bytes += u->st.area_len - cur;
        if (verbose && (only == 0 || only == seq))
            printf("record %llu at %llu: %u bytes, %u ranges, %u transaction(s)\n",
                   (unsigned long long)seq, (unsigned long long)p, h->len, h->nranges, h->ntxn);
        if (dump && (only == 0 || only == seq)) {
            const char *data = pl + (size_t)h->nranges * LOG_RANGE_HDR;
            for (uint32_t i = 0; i < h->nranges; i++) {
                struct log_range_hdr r;
                memcpy(&r, pl + (size_t)i * LOG_RANGE_HDR, sizeof(r));
                printf("  seg %u off %llu len %u:", r.seg, (unsigned long long)r.off, r.len);
                for (uint32_t b = 0; b < r.len && b < 16; b++)
                    printf(" %02x", (unsigned char)data[b]);
                printf("%s\n", r.len > 16 ? " ..." : "");
                data += r.len;
            }
        }
        *bytes += h->len;
        cur = p + h->len;
        if (u->st.area_len - cur < LOG_REC_HDR) {
            *bytes += u->st.area_len - cur;
            cur = 0;
        }
        seq++;
        n++;
    }
    *end_off = cur;
    *next_seq = seq;
    return n;
}

/* utl_verify_end -- tell a torn tail from a record damaged in the middle of the log
 * (log_end.c); returns the problems found (0 or 1) */
static int utl_verify_end(struct utl *u, uint64_t end, uint64_t next)
{
    struct log_end e;
    int r = log_end_find(&u->rd, end, next, u->st.head_off, &e);
    if (r < 0) {
        printf("  PROBLEM: reading the log failed: %s\n", strerror(-r));
        return 1;
    }
    if (e.kind == LOG_END_DAMAGED) {
        printf("  PROBLEM: DAMAGED RECORD in the middle of the log: record %llu at offset %llu "
               "is invalid, but records %llu..%llu after it are valid (the first at offset "
               "%llu). These are acknowledged commits: recovery refuses this log rather than "
               "drop them. `rvmutl salvage %s` recovers the records before %llu and drops "
               "records %llu..%llu\n",
               (unsigned long long)e.seq, (unsigned long long)e.off,
               (unsigned long long)e.later_seq, (unsigned long long)e.last_seq,
               (unsigned long long)e.later_off, u->path, (unsigned long long)e.seq,
               (unsigned long long)e.seq, (unsigned long long)e.last_seq);
        return 1;
    }
    if (e.kind != LOG_END_UNMARKED)
        return 0;
    struct log_rec_hdr h;
    if (u->st.area_len - end >= LOG_REC_HDR &&
        full_pread(u->fd, &h, sizeof(h), u->st.area_off + end) == 0 && h.magic == LOG_REC_MAGIC &&
        h.type == LOG_REC_TXN && h.seq == next) {
        printf("  PROBLEM: record %llu at offset %llu fails its checksum and no later record "
               "exists: the TORN TAIL of a crashed commit, which was never acknowledged "
               "(recovery drops it)\n",
               (unsigned long long)next, (unsigned long long)end);
        return 1;
    }
    /* a version 3 writer leaves an end marker wherever there is room for one */
    uint64_t room = (u->st.head_off > end ? u->st.head_off : u->st.area_len) - end;
    if (u->st.version >= LOG_FORMAT_VERSION && end != 0 && room >= LOG_REC_HDR) {
        printf("  PROBLEM: no end marker where the records end (offset %llu, next seq %llu) "
               "and no later record: the TORN TAIL of a write that did not complete, never "
               "acknowledged (recovery drops it)\n",
               (unsigned long long)end, (unsigned long long)next);
        return 1;
    }
    return 0;
}

/* cmd_status -- print the status and a summary of the live records */
int cmd_status(const char *path, int verify)
{
    struct utl u;
    if (utl_open(&u, path) != 0)
        return 1;
    uint64_t end, next, bytes;
    uint64_t n = utl_walk(&u, 0, 0, 0, &end, &next, &bytes);
    int problems = 0;
    printf("log %s: format %u, %s\n", path, u.st.version, u.st.rvm_version);
    printf("  record area: %llu bytes at file offset %llu; status generation %llu\n",
           (unsigned long long)u.st.area_len, (unsigned long long)u.st.area_off,
           (unsigned long long)u.st.generation);
    printf("  head: offset %llu, seq %llu\n", (unsigned long long)u.st.head_off,
           (unsigned long long)u.st.head_seq);
    printf("  salt epochs (one per recovery since the head last moved): %u, from seq",
           u.st.nepochs);
    for (uint32_t i = 0; i < u.st.nepochs; i++)
        printf(" %llu", (unsigned long long)u.st.epochs[i].seq);
    printf("\n");
    printf("  tail: offset %llu, next seq %llu\n", (unsigned long long)end,
           (unsigned long long)next);
    printf("  %llu live record(s) (committed, not yet truncated), %llu bytes, fill %.1f%%\n",
           (unsigned long long)n, (unsigned long long)bytes,
           100.0 * (double)bytes / (double)u.st.area_len);
    printf("  %u segment(s) known:\n", u.st.nsegs);
    problems += utl_dict_print(&u, verify);
    if (verify) {
        /* both status copies */
        char *hdr = malloc(LOG_HDR_SIZE);
        if (hdr && full_pread(u.fd, hdr, LOG_HDR_SIZE, 0) == 0) {
            for (int s = 0; s < 2; s++) {
                struct log_status x;
                memcpy(&x, hdr + s * LOG_SLOT_SIZE, sizeof(x));
                uint32_t c = x.crc;
                char tmp[sizeof(x)];
                memcpy(tmp, &x, sizeof(x));
                memset(tmp + offsetof(struct log_status, crc), 0, 4);
                int ok = x.magic == LOG_STATUS_MAGIC && x.used >= sizeof(x) &&
                         x.used <= LOG_SLOT_SIZE &&
                         crc32c(crc32c(0, tmp, sizeof(x)), hdr + s * LOG_SLOT_SIZE + sizeof(x),
                                x.used - sizeof(x)) == c;
                printf("  status copy %d: %s (generation %llu)\n", s,
                       ok ? "valid" : (x.magic == 0 ? "never written" : "INVALID"),
                       (unsigned long long)x.generation);
                if (!ok && x.magic != 0) {
                    /* e.g. a torn status write: the other copy is in use */
                    printf("  PROBLEM: status copy %d is damaged (the other copy is in use; "
                           "the next truncation rewrites it)\n",
                           s);
                    problems++;
                }
            }
        }
        free(hdr);
        problems += utl_verify_end(&u, end, next);
        printf(problems ? "verify: %d problem(s) found\n" : "verify: OK\n", problems);
    }
    utl_close(&u);
    return problems ? 1 : 0;
}

/* cmd_list -- list (and optionally dump) records */
static int cmd_list(const char *path, int dump, uint64_t only)
{
    struct utl u;
    if (utl_open(&u, path) != 0)
        return 1;
    uint64_t end, next, bytes;
    uint64_t n = utl_walk(&u, 1, dump, only, &end, &next, &bytes);
    printf("%llu record(s), %llu bytes\n", (unsigned long long)n, (unsigned long long)bytes);
    utl_close(&u);
    return 0;
}

/* image_set_log_pending -- write the LOG PENDING field of a process-image segment straight
 * into its file (image_format.h) and sync it; 1 written, 0 not an image segment, -1 error */
static int image_set_log_pending(int fd, uint32_t v)
{
    struct image_header h;
    if (full_pread(fd, &h, sizeof(h), 0) != 0 || memcmp(h.magic, IMG_MAGIC, 8) != 0)
        return 0;
    if (full_pwrite(fd, &v, sizeof(v), offsetof(struct image_header, log_pending)) != 0 ||
        sysio.fsync(fd) != 0)
        return -1;
    return 1;
}

/* recover_clear_pending -- the log is empty and every segment synced (rvm_truncate): the
 * process-image segments it names now hold their last commit by themselves */
static int recover_clear_pending(void)
{
    int bad = 0;
    for (uint32_t i = 1; i <= engine.nsegs; i++) {
        struct seg *s = engine.segs[i];
        if (s != NULL && s->fd >= 0 && image_set_log_pending(s->fd, 0) < 0) {
            fprintf(stderr, "rvmutl: segment %s: cannot clear its log-pending mark: %s\n", s->path,
                    strerror(errno));
            bad = 1;
        }
    }
    return bad;
}

/* cmd_recover -- run recovery as rvm_initialize does; salvage: also when a record in the
 * middle of the log is damaged, keeping the valid records before it (log_end.c) */
int cmd_recover(const char *path, int salvage)
{
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = (char *)path;
    o->truncate = 0;
    o->flags |= filecheck_shared_group ? RVM_SHARED_GROUP : 0;
    engine.salvage = salvage;
    memset(&engine.salvaged, 0, sizeof(engine.salvaged));
    progress_begin();
    rvm_return_t rc = RVM_INIT(o);
    if (rc != RVM_SUCCESS) {
        progress_end();
        fprintf(stderr, "rvmutl: recovery of %s failed: %s: %s\n", path, rvm_return(rc),
                rvm_errmsg);
        return 1;
    }
    /* rvm_initialize applied the records; rvm_truncate syncs the segments and empties
     * the log */
    rc = rvm_truncate();
    progress_end();
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: truncation of %s failed: %s: %s\n", path, rvm_return(rc),
                rvm_errmsg);
        return 1;
    }
    int bad = recover_clear_pending();
    rc = rvm_terminate();
    rvm_free_options(o);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: %s: %s\n", rvm_return(rc), rvm_errmsg);
        return 1;
    }
    if (engine.salvaged.kind == LOG_END_DAMAGED)
        printf(
            "log %s salvaged: records before %llu applied; DROPPED records %llu..%llu "
            "(record %llu at offset %llu was damaged; the later ones started at offset "
            "%llu)\n",
            path, (unsigned long long)engine.salvaged.seq, (unsigned long long)engine.salvaged.seq,
            (unsigned long long)engine.salvaged.last_seq, (unsigned long long)engine.salvaged.seq,
            (unsigned long long)engine.salvaged.off, (unsigned long long)engine.salvaged.later_off);
    else if (salvage)
        printf("log %s: no damaged record found; nothing dropped\n", path);
    printf("log %s recovered: committed records applied to their segments, log empty\n", path);
    return bad;
}

/* cmd_forget_log -- accept a process-image segment as its file has it, without its log */
static int cmd_forget_log(const char *seg)
{
    int fd = sysio.open(seg, O_RDWR, 0);
    if (fd < 0) {
        fprintf(stderr, "rvmutl: cannot open segment %s: %s\n", seg, strerror(errno));
        return 1;
    }
    int r = image_set_log_pending(fd, 0);
    int e = errno;
    close(fd);
    if (r <= 0) {
        fprintf(stderr,
                r == 0 ? "rvmutl: %s is not a process-image segment (no \"" IMG_MAGIC "\" header)\n"
                       : "rvmutl: cannot write segment %s: %s\n",
                seg, strerror(e));
        return 1;
    }
    printf("segment %s: accepted as its file holds it; commits that only its log held are "
           "lost. The next run starts a new log.\n",
           seg);
    return 0;
}

/* utl_time -- "YYYY-MM-DD HH:MM:SS UTC" of ns since the epoch */
static const char *utl_time(char *buf, size_t n, uint64_t ns)
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    if (ns == 0 || !gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(buf, n, "never");
    return buf;
}

/* utl_seg_id -- the log's id of segment path seg (same file), or -1 */
static int64_t utl_seg_id(struct utl *u, const char *seg)
{
    struct stat want, st;
    if (stat(seg, &want) != 0)
        return -1;
    size_t pos = 0;
    struct utl_seg e;
    for (uint32_t k = 0; utl_dict_next(u, &pos, k, &e) == 0; k++) {
        int same = stat(e.path, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino;
        free(e.path);
        if (same)
            return e.id;
    }
    return -1;
}

/* utl_overlay -- apply, in log order, the live records' bytes for [off, off + len) of segment
 * id onto buf: buf then shows what recovery would leave there. Returns the records counted. */
static uint64_t utl_overlay(struct utl *u, int64_t id, uint64_t off, void *buf, size_t len)
{
    uint64_t cur = u->st.head_off, seq = u->st.head_seq, n = 0;
    for (;;) {
        const struct log_rec_hdr *h;
        const char *pl;
        uint64_t p = cur;
        if (logrd_next(&u->rd, &p, seq, &h, &pl) != 1)
            break;
        const char *data = pl + (size_t)h->nranges * LOG_RANGE_HDR;
        for (uint32_t i = 0; i < h->nranges; i++) {
            struct log_range_hdr r;
            memcpy(&r, pl + (size_t)i * LOG_RANGE_HDR, sizeof(r));
            uint64_t lo = r.off > off ? r.off : off;
            uint64_t hi = r.off + r.len < off + len ? r.off + r.len : off + len;
            if ((int64_t)r.seg == id && lo < hi)
                memcpy((char *)buf + (lo - off), data + (lo - r.off), hi - lo);
            data += r.len;
        }
        cur = p + h->len;
        if (u->st.area_len - cur < LOG_REC_HDR)
            cur = 0;
        seq++;
        n++;
    }
    return n;
}

/* utl_overlay_file -- open log logp read-only and overlay its live records for segment seg
 * on [off, off + len) into buf (see utl_overlay); *nrec = records read. 0, or -1 (message on
 * stderr) if the log cannot be read; a log that does not know seg overlays nothing. */
int utl_overlay_file(const char *logp, const char *seg, uint64_t off, void *buf, size_t len,
                     uint64_t *nrec)
{
    struct utl u;
    *nrec = 0;
    if (utl_open(&u, logp) != 0)
        return -1;
    int64_t id = utl_seg_id(&u, seg);
    if (id >= 0)
        *nrec = utl_overlay(&u, id, off, buf, len);
    utl_close(&u);
    return 0;
}

/* cmd_image -- show a process-image segment as its last commit left it: the segment file's
 * header and heap header, with the log's records not yet applied overlaid (read-only) */

/* image_verdict -- the restorability verdict of the last commit and a crash note (format 2) */
static void image_verdict(struct image_header *h)
{
    static const char *const kinds[] = {"restorable",
                                        "an anonymous mapping",
                                        "the stack",
                                        "thread-local storage",
                                        "the program break",
                                        "a file mapping",
                                        "a shared library's writable data",
                                        "lrvm's volatile memory",
                                        "kernel-mapped memory",
                                        "a freed heap block"};
    h->restore_sym[IMG_SYM_MAX - 1] = 0;
    h->restore_target[IMG_TARGET_MAX - 1] = 0;
    h->crash_sym[IMG_SYM_MAX - 1] = 0;
    if (!(h->flags & IMG_F_GLOBALS_VALID))
        ;
    else if (h->restore_kind == 0)
        printf("  restorable:  yes (no committed global points at memory that does not come "
               "back)\n");
    else
        printf("  restorable:  no: %s%s+0x%llx holds 0x%llx (at 0x%llx), which points "
               "into %s%s%s%s\n",
               h->restore_sym[0] ? "the global " : "the global at ",
               h->restore_sym[0] ? h->restore_sym : "", (unsigned long long)h->restore_sym_off,
               (unsigned long long)h->restore_value, (unsigned long long)h->restore_addr,
               h->restore_kind < sizeof(kinds) / sizeof(kinds[0]) ? kinds[h->restore_kind]
                                                                  : "unknown memory",
               h->restore_target[0] ? " (" : "", h->restore_target,
               h->restore_target[0] ? ")" : "");
    if (h->crash_magic == IMG_CRASH_MAGIC && h->crash_commit_count == h->commit_count)
        printf("  crash note:  pid %llu died of signal %u at 0x%llx%s%s, restoring this "
               "commit; starts with its globals are refused\n",
               (unsigned long long)h->crash_pid, h->crash_signal, (unsigned long long)h->crash_pc,
               h->crash_sym[0] ? " in " : "", h->crash_sym);
}

/* image_print_fields -- a process-image header of a known format, field by field, with the heap
 * header it points at (both as recovery would leave them: the log's pending records overlaid) */
static void image_print_fields(int fd, struct utl *u, int64_t id, struct image_header *h,
                               const char *seg)
{
    char idh[2 * IMG_BUILD_ID_MAX + 1], t1[40], t2[40];
    idh[0] = 0;
    for (uint32_t i = 0; i < h->id_len && i < IMG_BUILD_ID_MAX; i++)
        sprintf(idh + 2 * i, "%02x", h->build_id[i]);
    h->exe_path[IMG_PATH_MAX - 1] = 0;
    struct heap_header hh;
    memset(&hh, 0, sizeof(hh));
    if (pread(fd, &hh, sizeof(hh), (off_t)h->heap_off) < 0)
        memset(&hh, 0, sizeof(hh));
    if (id >= 0)
        utl_overlay(u, id, h->heap_off, &hh, sizeof(hh));
    int heap_ok = memcmp(hh.magic, HEAP_MAGIC, 8) == 0;
    printf("segment %s: process image, format %u\n", seg, h->version);
    printf("  binary:      %s\n", h->exe_path[0] ? h->exe_path : "(unknown)");
    printf("  build-id:    %s%s\n", h->id_len ? idh : "(none)",
           h->id_kind == IMG_ID_CRC32C ? " (crc32c of the file: it had no build-id)" : "");
    printf("  load base:   0x%llx\n", (unsigned long long)h->load_base);
    printf("  created:     %s\n", utl_time(t1, sizeof(t1), h->created_ns));
    if (h->flags & IMG_F_GLOBALS)
        printf("  globals:     [0x%llx, 0x%llx) %llu bytes at segment offset %llu, %s\n",
               (unsigned long long)h->globals_vaddr,
               (unsigned long long)(h->globals_vaddr + h->globals_len),
               (unsigned long long)h->globals_len, (unsigned long long)h->globals_off,
               (h->flags & IMG_F_GLOBALS_VALID) ? "committed"
                                                : "not committed yet (restored fresh)");
    else
        printf("  globals:     not kept (heap-only segment, LRVM_GLOBALS=0); any build of "
               "the program may open it\n");
    printf("  heap:        base 0x%llx, reservation %llu MiB, at segment offset %llu\n",
           (unsigned long long)h->heap_base, (unsigned long long)(h->heap_reserve >> 20),
           (unsigned long long)h->heap_off);
    if (heap_ok)
        printf("  heap in use: %llu MiB backed (%llu chunks of 4 MiB)\n",
               (unsigned long long)(hh.size >> 20), (unsigned long long)hh.nchunks);
    else
        printf("  heap in use: no heap header at offset %llu (a damaged segment)\n",
               (unsigned long long)h->heap_off);
    char sid[2 * LOG_SEG_ID_LEN + 1];
    seg_ident_hex(h->seg_id, sid);
    printf("  identity:    %s\n", h->version >= IMG_FORMAT_VERSION
                                      ? sid
                                      : "none yet (format 1: given at the next commit)");
    printf("  commits:     %llu; last %s by pid %llu\n", (unsigned long long)h->commit_count,
           utl_time(t2, sizeof(t2), h->last_commit_ns), (unsigned long long)h->last_commit_pid);
    if (h->version >= IMG_FORMAT_VERSION)
        image_verdict(h);
}

/* image_print_header -- what the segment's header page is; returns 1 when it is not a segment
 * this rvmutl reads (an old layout, another kind of file, another format version) */
static int image_print_header(int fd, struct utl *u, int64_t id, struct image_header *h,
                              const char *seg)
{
    if (memcmp(h->magic, HEAP_MAGIC, 8) == 0) {
        printf("segment %s: a heap in the layout before segment format 1 (no header); lrvm "
               "no longer opens it\n",
               seg);
        return 1;
    }
    if (memcmp(h->magic, IMG_MAGIC, 8) != 0) {
        int zero = 1;
        for (size_t i = 0; i < sizeof(*h) && zero; i++)
            zero = ((const char *)h)[i] == 0;
        printf("segment %s: %s\n", seg,
               zero ? "no header (a new segment, never committed)"
                    : "not an lrvm process-image segment");
        return zero ? 0 : 1;
    }
    if (h->version != IMG_FORMAT_VERSION && h->version != IMG_FORMAT_VERSION_V1) {
        printf("segment %s: segment format version %u (this rvmutl reads %u)\n", seg, h->version,
               IMG_FORMAT_VERSION);
        return 1;
    }
    image_print_fields(fd, u, id, h, seg);
    return 0;
}

/* image_print_log -- the state of the segment's log (absent, missing, records pending);
 * rc is the header's verdict, returned unless the log is missing */
static int image_print_log(struct utl *u, int have_log, int64_t id, uint64_t pending,
                           const struct image_header *h, const char *seg, const char *logp, int rc)
{
    if (!have_log) {
        if (h->log_pending) {
            printf("  log %s: MISSING, but the segment says its log holds commits the file "
                   "may lack: restore the log, or accept the file as it is with `rvmutl "
                   "forget-log %s`\n",
                   logp, seg);
            return 1;
        }
        printf("  log %s: absent\n", logp);
        return rc;
    }
    if (pending)
        printf("  log %s: %llu committed record(s) not yet applied to the segment file; shown "
               "above with them (as recovery will apply them: `rvmutl recover %s`, or the "
               "program's next start)\n",
               logp, (unsigned long long)pending, logp);
    else
        printf("  log %s: %s\n", logp,
               id >= 0 || u->st.nsegs == 0
                   ? "no records pending (the segment file holds the last commit)"
                   : "does not know this segment (another log? give it as LOG)");
    utl_close(u);
    return rc;
}

static int cmd_image(const char *seg, const char *logp)
{
    char why[1024];
    int fd = filecheck_open(seg, O_RDONLY, 0, "segment", why, sizeof(why));
    if (fd < 0) {
        if (why[0])
            fprintf(stderr, "rvmutl: %s\n", why);
        else
            fprintf(stderr, "rvmutl: cannot open segment %s: %s\n", seg, strerror(errno));
        return 1;
    }
    char deflog[4096];
    if (!logp) {
        snprintf(deflog, sizeof(deflog), "%s.log", seg);
        logp = deflog;
    }
    struct utl u;
    int have_log = access(logp, F_OK) == 0;
    if (have_log && utl_open(&u, logp) != 0) {
        close(fd);
        return 1;
    }
    int64_t id = have_log ? utl_seg_id(&u, seg) : -1;
    uint64_t pending = 0;
    static struct image_header h;
    memset(&h, 0, sizeof(h));
    ssize_t r = pread(fd, &h, sizeof(h), 0);
    if (r < 0) {
        fprintf(stderr, "rvmutl: cannot read segment %s: %s\n", seg, strerror(errno));
        close(fd);
        return 1;
    }
    if (id >= 0)
        pending = utl_overlay(&u, id, 0, &h, sizeof(h));
    int rc = image_print_header(fd, &u, id, &h, seg);
    close(fd);
    return image_print_log(&u, have_log, id, pending, &h, seg, logp, rc);
}

/* cmd_create_log -- a new log with size bytes of record space */
int cmd_create_log(const char *log, uint64_t size)
{
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = (char *)log;
    rvm_offset_t len = RVM_MK_OFFSET(0, size);
    rvm_return_t rc = rvm_create_log(o, &len, 0600);
    rvm_free_options(o);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: %s: %s\n", rvm_return(rc), rvm_errmsg);
        return 1;
    }
    printf("created log %s with %llu bytes of record space\n", log, (unsigned long long)size);
    return 0;
}

/* main -- dispatch */
int main(int argc, char **argv)
{
    /* the original's forms: `rvmutl` and `rvmutl LOG`, then commands on standard input
     * (today's commands all take a LOG or SEGMENT argument, so one other word is a log) */
    static const char *const forms[] = {"create-log", "status",  "list",     "dump",
                                        "verify",     "recover", "truncate", "image",
                                        "rds-check",  "leaks",   "help"};
    int is_form = 0;
    for (size_t i = 0; argc == 2 && i < sizeof(forms) / sizeof(forms[0]); i++)
        is_form |= !strcmp(argv[1], forms[i]);
    if (argc == 1 || (argc == 2 && argv[1][0] != '-' && !is_form))
        return utl_command_language(argc == 2 ? argv[1] : NULL, stdin);
    if (argc >= 2 &&
        (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1], *log = argv[2];
    const char *sg = getenv("LRVM_SHARED_GROUP");
    if (sg != NULL && strcmp(sg, "0") != 0 && strcmp(sg, "1") != 0) {
        fprintf(stderr,
                "rvmutl: LRVM_SHARED_GROUP=%s: use 1 (accept files of your groups) "
                "or 0\n",
                sg);
        return 2;
    }
    filecheck_shared_group = sg != NULL && strcmp(sg, "1") == 0;
    if (!strcmp(cmd, "create-log")) {
        uint64_t size;
        if (argc < 4 || parse_size(argv[3], &size) != 0) {
            fprintf(stderr, "rvmutl: create-log needs a SIZE such as 64m\n");
            return 2;
        }
        return cmd_create_log(log, size);
    }
    if (!strcmp(cmd, "status"))
        return cmd_status(log, 0);
    if (!strcmp(cmd, "verify"))
        return cmd_status(log, 1);
    if (!strcmp(cmd, "list"))
        return cmd_list(log, 0, 0);
    if (!strcmp(cmd, "dump"))
        return cmd_list(log, 1, argc > 3 ? strtoull(argv[3], NULL, 10) : 0);
    if (!strcmp(cmd, "image"))
        return cmd_image(log, argc > 3 ? argv[3] : NULL);
    if (!strcmp(cmd, "leaks"))
        return cmd_leaks(argc - 2, argv + 2);
    if (!strcmp(cmd, "rds-check"))
        return cmd_rds_check(log, argc > 3 ? argv[3] : NULL);
    if (!strcmp(cmd, "recover") || !strcmp(cmd, "truncate"))
        return cmd_recover(log, 0);
    if (!strcmp(cmd, "salvage"))
        return cmd_recover(log, 1);
    if (!strcmp(cmd, "forget-log"))
        return cmd_forget_log(log);
    fprintf(stderr, "rvmutl: unknown command %s\n", cmd);
    usage(stderr);
    return 2;
}
