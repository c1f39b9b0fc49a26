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

#include "heap_format.h"
#include "image_format.h"
#include "rvm_int.h"
#include "rvmutl.h"
#include "rvmutl_rds.h"
#include "sysio.h"

/* usage -- print help */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: rvmutl COMMAND LOG [ARGS]\n"
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
            "  image SEGMENT [LOG]   a program's segment (LD_PRELOAD shim): binary, build-id,\n"
            "                        load base, globals, heap, commits; LOG defaults to\n"
            "                        SEGMENT.log (reads the files only)\n"
            "  rds-check SEGMENT [LOG]  check the RDS heap in a segment file (rdsinit/RDS):\n"
            "                        every block and free list; exit 1 and the first damaged\n"
            "                        block's address if it is damaged; with LOG, the records\n"
            "                        not yet applied are laid over it (reads the files only)\n"
            "  --help                this text\n");
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
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
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
    struct log_status st;
    struct buf dict;
    struct logrd rd;
};

/* utl_open -- open a log read-only and read its status */
static int utl_open(struct utl *u, const char *path)
{
    memset(u, 0, sizeof(*u));
    u->path = path;
    u->fd = sysio.open(path, O_RDONLY, 0);
    if (u->fd < 0) {
        fprintf(stderr, "rvmutl: cannot open log %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (log_status_read(u->fd, path, &u->st, &u->dict) != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: %s\n", rvm_errmsg);
        close(u->fd);
        return -1;
    }
    u->rd = (struct logrd){ .fd = u->fd, .path = path, .area_off = u->st.area_off,
                            .area_len = u->st.area_len, .epochs = u->st.epochs,
                            .nepochs = u->st.nepochs,
                            .chunk = 4u << 20 };
    return 0;
}

/* utl_dict_print -- list the segment dictionary; returns how many are missing */
static int utl_dict_print(struct utl *u, int check)
{
    size_t pos = 0;
    int missing = 0;
    for (uint32_t k = 0; k < u->st.nsegs && pos + 8 <= u->dict.len; k++) {
        uint32_t id, plen;
        memcpy(&id, u->dict.p + pos, 4);
        memcpy(&plen, u->dict.p + pos + 4, 4);
        const char *p = u->dict.p + pos + 8;
        int ok = access(p, R_OK | W_OK) == 0;
        printf("  segment %u: %s%s\n", id, p, ok ? "" : "  (MISSING or not writable)");
        if (check && !ok)
            missing++;
        pos += 8 + ((plen + 7u) & ~7u);
    }
    return missing;
}

/* utl_walk -- visit valid records from the head; returns the count; fills end/seq */
static uint64_t utl_walk(struct utl *u, int verbose, int dump, uint64_t only,
                         uint64_t *end_off, uint64_t *next_seq, uint64_t *bytes)
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
                   (unsigned long long)seq, (unsigned long long)p, h->len, h->nranges,
                   h->ntxn);
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
                           "the next truncation rewrites it)\n", s);
                    problems++;
                }
            }
        }
        free(hdr);
        /* torn tail: does something with the next seq start at the end? */
        struct log_rec_hdr h;
        if (u.st.area_len - end >= LOG_REC_HDR &&
            full_pread(u.fd, &h, sizeof(h), u.st.area_off + end) == 0 &&
            h.magic == LOG_REC_MAGIC && h.seq == next) {
            printf("  PROBLEM: record %llu at offset %llu fails its checksum (torn tail of a "
                   "crashed commit; recovery drops it)\n", (unsigned long long)next,
                   (unsigned long long)end);
            problems++;
        }
        printf(problems ? "verify: %d problem(s) found\n" : "verify: OK\n", problems);
    }
    buf_free(&u.dict);
    buf_free(&u.rd.b);
    close(u.fd);
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
    buf_free(&u.dict);
    buf_free(&u.rd.b);
    close(u.fd);
    return 0;
}

/* cmd_recover -- run recovery as rvm_initialize does */
int cmd_recover(const char *path)
{
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = (char *)path;
    o->truncate = 0;
    rvm_return_t rc = RVM_INIT(o);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: recovery of %s failed: %s: %s\n", path, rvm_return(rc),
                rvm_errmsg);
        return 1;
    }
    /* rvm_initialize applied the records; rvm_truncate syncs the segments and empties
     * the log */
    rc = rvm_truncate();
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: truncation of %s failed: %s: %s\n", path, rvm_return(rc),
                rvm_errmsg);
        return 1;
    }
    rc = rvm_terminate();
    rvm_free_options(o);
    if (rc != RVM_SUCCESS) {
        fprintf(stderr, "rvmutl: %s: %s\n", rvm_return(rc), rvm_errmsg);
        return 1;
    }
    printf("log %s recovered: committed records applied to their segments, log empty\n",
           path);
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
    for (uint32_t k = 0; k < u->st.nsegs && pos + 8 <= u->dict.len; k++) {
        uint32_t id, plen;
        memcpy(&id, u->dict.p + pos, 4);
        memcpy(&plen, u->dict.p + pos + 4, 4);
        const char *p = u->dict.p + pos + 8;
        if (stat(p, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino)
            return id;
        pos += 8 + ((plen + 7u) & ~7u);
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
    buf_free(&u.dict);
    buf_free(&u.rd.b);
    close(u.fd);
    return 0;
}

/* cmd_image -- show a process-image segment as its last commit left it: the segment file's
 * header and heap header, with the log's records not yet applied overlaid (read-only) */
static int cmd_image(const char *seg, const char *logp)
{
    int fd = sysio.open(seg, O_RDONLY, 0);
    if (fd < 0) {
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
    int rc = 0;
    if (memcmp(h.magic, HEAP_MAGIC, 8) == 0) {
        printf("segment %s: a heap in the layout before segment format 1 (no header); lrvm "
               "no longer opens it\n", seg);
        rc = 1;
    } else if (memcmp(h.magic, IMG_MAGIC, 8) != 0) {
        int zero = 1;
        for (size_t i = 0; i < sizeof(h) && zero; i++)
            zero = ((const char *)&h)[i] == 0;
        printf("segment %s: %s\n", seg, zero ? "no header (a new segment, never committed)"
                                             : "not an lrvm process-image segment");
        rc = zero ? 0 : 1;
    } else if (h.version != IMG_FORMAT_VERSION) {
        printf("segment %s: segment format version %u (this rvmutl reads %u)\n", seg,
               h.version, IMG_FORMAT_VERSION);
        rc = 1;
    } else {
        char idh[2 * IMG_BUILD_ID_MAX + 1], t1[40], t2[40];
        idh[0] = 0;
        for (uint32_t i = 0; i < h.id_len && i < IMG_BUILD_ID_MAX; i++)
            sprintf(idh + 2 * i, "%02x", h.build_id[i]);
        h.exe_path[IMG_PATH_MAX - 1] = 0;
        struct heap_header hh;
        memset(&hh, 0, sizeof(hh));
        if (pread(fd, &hh, sizeof(hh), (off_t)h.heap_off) < 0)
            memset(&hh, 0, sizeof(hh));
        if (id >= 0)
            utl_overlay(&u, id, h.heap_off, &hh, sizeof(hh));
        int heap_ok = memcmp(hh.magic, HEAP_MAGIC, 8) == 0;
        printf("segment %s: process image, format %u\n", seg, h.version);
        printf("  binary:      %s\n", h.exe_path[0] ? h.exe_path : "(unknown)");
        printf("  build-id:    %s%s\n", h.id_len ? idh : "(none)",
               h.id_kind == IMG_ID_CRC32C ? " (crc32c of the file: it had no build-id)" : "");
        printf("  load base:   0x%llx\n", (unsigned long long)h.load_base);
        printf("  created:     %s\n", utl_time(t1, sizeof(t1), h.created_ns));
        if (h.flags & IMG_F_GLOBALS)
            printf("  globals:     [0x%llx, 0x%llx) %llu bytes at segment offset %llu, %s\n",
                   (unsigned long long)h.globals_vaddr,
                   (unsigned long long)(h.globals_vaddr + h.globals_len),
                   (unsigned long long)h.globals_len, (unsigned long long)h.globals_off,
                   (h.flags & IMG_F_GLOBALS_VALID) ? "committed"
                                                   : "not committed yet (restored fresh)");
        else
            printf("  globals:     not kept (heap-only segment, LRVM_GLOBALS=0); any build of "
                   "the program may open it\n");
        printf("  heap:        base 0x%llx, reservation %llu MiB, at segment offset %llu\n",
               (unsigned long long)h.heap_base, (unsigned long long)(h.heap_reserve >> 20),
               (unsigned long long)h.heap_off);
        if (heap_ok)
            printf("  heap in use: %llu MiB backed (%llu chunks of 4 MiB)\n",
                   (unsigned long long)(hh.size >> 20), (unsigned long long)hh.nchunks);
        else
            printf("  heap in use: no heap header at offset %llu (a damaged segment)\n",
                   (unsigned long long)h.heap_off);
        printf("  commits:     %llu; last %s by pid %llu\n",
               (unsigned long long)h.commit_count, utl_time(t2, sizeof(t2), h.last_commit_ns),
               (unsigned long long)h.last_commit_pid);
    }
    close(fd);
    if (!have_log) {
        printf("  log %s: absent\n", logp);
        return rc;
    }
    if (pending)
        printf("  log %s: %llu committed record(s) not yet applied to the segment file; shown "
               "above with them (as recovery will apply them: `rvmutl recover %s`, or the "
               "program's next start)\n", logp, (unsigned long long)pending, logp);
    else
        printf("  log %s: %s\n", logp, id >= 0 || u.st.nsegs == 0
               ? "no records pending (the segment file holds the last commit)"
               : "does not know this segment (another log? give it as LOG)");
    buf_free(&u.dict);
    buf_free(&u.rd.b);
    close(u.fd);
    return rc;
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
    static const char *const forms[] = { "create-log", "status", "list", "dump", "verify",
                                         "recover", "truncate", "image", "rds-check", "help" };
    int is_form = 0;
    for (size_t i = 0; argc == 2 && i < sizeof(forms) / sizeof(forms[0]); i++)
        is_form |= !strcmp(argv[1], forms[i]);
    if (argc == 1 || (argc == 2 && argv[1][0] != '-' && !is_form))
        return utl_command_language(argc == 2 ? argv[1] : NULL, stdin);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
                      !strcmp(argv[1], "help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1], *log = argv[2];
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
    if (!strcmp(cmd, "rds-check"))
        return cmd_rds_check(log, argc > 3 ? argv[3] : NULL);
    if (!strcmp(cmd, "recover") || !strcmp(cmd, "truncate"))
        return cmd_recover(log);
    fprintf(stderr, "rvmutl: unknown command %s\n", cmd);
    usage(stderr);
    return 2;
}
