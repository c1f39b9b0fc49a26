/* SPDX-License-Identifier: MIT */
/*
 * persist.c -- the heap made persistent: an LRVM segment region, auto-tracked, committed.
 *
 * Layout: the segment file (LRVM_SEGMENT) is a process image in the format of
 * core/image/image_format.h: a header page, the executable's globals (globals.c; absent with
 * LRVM_GLOBALS=0), then the heap. Three regions of one segment, all tracked: one rvm_commit
 * commits them together. Its log is LRVM_LOG (default "<segment>.log", created with
 * LRVM_LOG_SIZE).
 *
 * Start-up (from init.c, single-threaded, before main):
 *   0. the header page is read from the file and judged (image.c) BEFORE the log is opened: a
 *      refusal (old layout, another program, another load base ...) leaves segment and log
 *      untouched.
 *   1. rvm_initialize with the log: recovery applies every committed record to the segment.
 *      A header that existed only in the log is judged now.
 *   2. The segment file is extended (sparse, ftruncate) to heap_off + reservation; the header
 *      page is mapped (read); the heap region [heap_off, + reserve) is rvm_map'ed at the heap
 *      base: with wp-async a MAP_PRIVATE mapping of the file (nothing is read at start-up),
 *      else anonymous memory into which the heap's backed size (from its header) is read
 *      (persist_load_image). Restart cost does not grow with the heap (wp-async) or grows
 *      with the heap in use only (fault backends), never with the reservation.
 *   3. the header page and the heap are tracked (the heap sparsely: only the part in use can
 *      hold pages); only then heap_open / heap_create and the new header's fields, so their
 *      writes are tracked; a new segment is committed at once (an empty heap is a valid
 *      restart point).
 *   4. the globals (globals.c): mapped and tracked now, restored just before main.
 * Commit (shim_commit): the globals' restore lock (no commit before they are restored), the
 * header's commit stamp, heap_lock_all, rvm_commit, unlock. The heap lock is taken before
 * rvm_commit stops the other threads (heap.h's contract), so the image holds no half-made
 * multi-word metadata update; user data is captured at the same instant by the tracker. It is
 * released as soon as that instant is captured, before the diff and the log write.
 *
 * Internal memory: liblrvm (linked into this library) allocates with malloc. Those blocks must
 * not live in the persistent heap (they would be committed, and a commit holding heap_lock_all
 * would deadlock on its own malloc). They come from a second, volatile instance of the same
 * allocator (shim_internal_heap, anonymous memory): malloc.c sends a call there when it comes from
 * this library's code (return address) or from a thread inside an rvm_* call (shim_in_core,
 * which catches libc functions such as strdup called by liblrvm).
 *
 * Release of freed heap memory (seg_release): MADV_DONTNEED, so free memory leaves the
 * process's RSS; the segment file is not touched (hole punching needs heap_punch_collect after a
 * durable commit: not done). Afterwards the range reads as zeros (anonymous mapping) or as the
 * file's bytes (a MAP_PRIVATE mapping of the segment), which may be older than the last commit
 * until truncation. Either is safe because the range is FREE: the heap keeps no metadata in
 * data pages (page records live in the chunk header, which is rewritten before a chunk is
 * reused), malloc'ed memory has no defined content, calloc zeroes (seg_backing does not claim
 * HEAP_BACKING_ZERO_ON_RELEASE), and the tracker logs whatever a later write leaves in the
 * page against its committed image, so the committed image always equals memory.
 * The exit commit purges first (heap_purge): freed memory is then not logged at all (its pages
 * are no longer written, or read as zeros = the fresh heap's committed bytes).
 */
#include "shim.h"
#include "preload_api.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lrvm/lrvm.h>
#include <lrvm/vmprim.h>
#include <rvm/rvm.h>

__thread int shim_in_core __attribute__((tls_model("initial-exec")));
int shim_persistent;
struct heap *shim_internal_heap;

static rvm_region_t heap_region;        /* the heap, tracked */
static rvm_region_t header_region;      /* the header page (struct image_header), tracked */
static struct image_header *seg_header; /* header_region's memory */
static int image_mapped; /* the heap region is a MAP_PRIVATE mapping of the segment */
static char log_path[PATH_MAX];

/* struct heap_seg -- the heap's backing in the segment file: its blocks are reserved as the
 * heap grows */
static struct heap_seg {
    int fd;
    size_t size;
    size_t reserve;
    uint64_t off; /* the heap's offset in the segment */
} heap_seg = {.fd = -1};

/* seg_grow -- reserve file space for the heap's [0, new_size): a full disk is ENOSPC now, not
 * SIGBUS or a failed truncation later */
static int seg_grow(void *ctx, size_t new_size)
{
    struct heap_seg *b = ctx;
    if (new_size > b->reserve)
        return ENOMEM;
    if (b->fd < 0) { /* fork child: private memory only, the file is the parent's */
        b->size = new_size;
        return 0;
    }
    int rc = posix_fallocate(b->fd, (off_t)b->off, (off_t)new_size);
    if (rc)
        return rc;
    b->size = new_size;
    return 0;
}

/* seg_release -- drop the memory of a free range (see the file comment); errno on failure */
static int seg_release(void *ctx, size_t off, size_t len)
{
    (void)ctx;
    /* through the tracker, not madvise: the pages stay tracked and their next commit is
   * diffed against the committed image, not against the zeros the release leaves */
    return rvm_track_release((char *)heap_region.vmaddr + off, len) == RVM_SUCCESS ? 0 : EIO;
}

/* seg_try_release -- seg_release unless a commit holds the tracker: EAGAIN, and the heap
 * releases the range later (a free() must not wait for a commit's log write) */
static int seg_try_release(void *ctx, size_t off, size_t len)
{
    (void)ctx;
    return track_release_try((char *)heap_region.vmaddr + off, len);
}

static size_t seg_size(void *ctx)
{
    return ((struct heap_seg *)ctx)->size;
}

static const struct heap_backing seg_backing = {
    .grow = seg_grow,
    .release = seg_release,
    .reserve_space = NULL,
    .size = seg_size,
    .ctx = &heap_seg,
    .flags = 0,
    .try_release = seg_try_release,
};

/* say_rvm -- a failed rvm_* call, with rvm_errmsg */
static void say_rvm(const char *what, rvm_return_t rc)
{
    shim_say(2, what, ": ", rvm_return((rvm_return_t)rc), rvm_errmsg && *rvm_errmsg ? " (" : "",
             rvm_errmsg ? rvm_errmsg : "", rvm_errmsg && *rvm_errmsg ? ")" : "", NULL);
}

/* report -- heap diagnostics */
static void report(void *arg, const char *msg)
{
    (void)arg;
    shim_say(2, "heap: ", msg, NULL);
}

/* read_header -- the header page as the file has it (zeros past its end) and its verdict */
static int read_header(struct image_header *h, const char *seg)
{
    memset(h, 0, sizeof(*h));
    ssize_t r = pread(heap_seg.fd, h, sizeof(*h), 0);
    if (r < 0) {
        int err = errno;
        shim_say(2, "cannot read LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
        return err;
    }
    return shim_image_check(h, seg);
}

/* log_create_atomic -- create the log under a temporary name and rename it into place: a
 * process killed while the log is being written (zero-filling LRVM_LOG_SIZE takes a while)
 * leaves no half-made file at the log's path, which the next start would refuse as "not an
 * lrvm log". A stale temporary file from such a kill is removed first. */
static rvm_return_t log_create_atomic(rvm_options_t *o)
{
    char tmp[PATH_MAX + 16];
    int n = snprintf(tmp, sizeof(tmp), "%s.creating", log_path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        shim_say(2, "LRVM_LOG / LRVM_SEGMENT: path too long", NULL);
        return RVM_ENAME_TOO_LONG;
    }
    unlink(tmp);
    o->log_dev = tmp;
    rvm_offset_t len = RVM_MK_OFFSET(0, shim_opts.log_size);
    rvm_return_t rc = rvm_create_log(o, &len, 0600);
    o->log_dev = log_path;
    if (rc != RVM_SUCCESS) {
        shim_say(2, "cannot open the log (LRVM_LOG or <LRVM_SEGMENT>.log) ", log_path,
                 ": it does not exist and creating it failed: ", rvm_return(rc), " (",
                 rvm_errmsg ? rvm_errmsg : "", ")", NULL);
        return rc;
    }
    if (rename(tmp, log_path) != 0) {
        int err = errno;
        unlink(tmp);
        shim_say(2, "cannot create the log ", log_path, ": rename: ", strerror(err), NULL);
        return RVM_EIO;
    }
    /* the new name must be durable before the first commit is acknowledged into the file */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", log_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int bad = dfd < 0 || fsync(dfd) != 0;
    int err = errno;
    if (dfd >= 0)
        close(dfd);
    if (bad) {
        shim_say(2, "cannot create the log ", log_path, ": fsync of its directory: ", strerror(err),
                 NULL);
        return RVM_EIO;
    }
    return RVM_SUCCESS;
}

/* map_region -- rvm_map one part of the segment; 0 or EIO after a message */
static int map_region(rvm_region_t *r, const char *seg, uint64_t off, size_t len, void *at,
                      int no_copy, const char *what)
{
    rvm_init_region(r);
    r->data_dev = (char *)seg;
    r->offset = RVM_MK_OFFSET(0, off);
    r->length = len;
    r->vmaddr = at;
    r->no_copy = no_copy ? rvm_true : rvm_false;
    rvm_return_t rc = rvm_map(r, NULL);
    if (rc != RVM_SUCCESS) {
        say_rvm(what, rc);
        return EIO;
    }
    return 0;
}

/*
 * persist_load_image -- map the segment's heap image (at heap_off) at base as the LRVM region;
 * existing: the segment has a header, so its heap (if its magic is there) is loaded. "Map, don't read": restart cost must not
 * grow with the heap (<= 0.2 s for a 1 GiB heap).
 *  - wp-async (the backend the shim runs with; see below): the reservation is mapped
 *    MAP_PRIVATE from the segment file (RVM_MAP_PRIVATE). A page is read from the page cache
 *    only when the program touches it, and a write makes it a private (anonymous) copy, so
 *    the file receives nothing but what truncation writes: committed records (no-steal).
 *    Pages never written in this process show the file, and truncation only writes pages
 *    some commit of this process wrote, which are private copies by then: the program never
 *    sees the file change under it. wp-async tracks such a mapping (Linux 6.7+ registers any
 *    memory type for WP-only async mode), and core takes a page's committed image from the
 *    file lazily at its first commit (core/track/track.h, LAZY TWINS), so tracking costs nothing
 *    up front either.
 *  - the fault backends (uffd-sigbus, mprotect) need anonymous memory: the region is mapped
 *    with no_copy and the heap in use (its header says how much) is read into it. Restart
 *    then costs a read of the heap in use (~0.5 s per GiB here).
 */
static int persist_load_image(const char *seg, void *base, size_t reserve, uint64_t heap_off,
                              int existing)
{
    struct heap_header hdr;
    int heap_there =
        existing &&
        pread(heap_seg.fd, &hdr, sizeof(hdr), (off_t)heap_off) == (ssize_t)sizeof(hdr) &&
        memcmp(hdr.magic, HEAP_MAGIC, 8) == 0;
    size_t sz = heap_there ? (hdr.size <= reserve ? (size_t)hdr.size : reserve) : 0;
    char why[256];
    /* LRVM_TEST_READ_IMAGE=1 (benchmarks only: bench/shim) takes the read path with wp-async,
   * to measure mapping against reading in one run */
    const char *rd = getenv("LRVM_TEST_READ_IMAGE");
    int map_file =
        (strcmp(shim_opts.track, "auto") == 0 || strcmp(shim_opts.track, "wp-async") == 0) &&
        vmp_backend_probe(VMP_BACKEND_WP_ASYNC, why, sizeof(why)) == 0 &&
        !(rd != NULL && strcmp(rd, "1") == 0);
    rvm_init_region(&heap_region);
    heap_region.data_dev = (char *)seg;
    heap_region.offset = RVM_MK_OFFSET(0, heap_off);
    heap_region.length = reserve;
    heap_region.vmaddr = base;
    heap_region.no_copy = rvm_true; /* without map_file: rvm_map would read the whole reservation */
    rvm_bool_t was = rvm_map_private;
    rvm_map_private = map_file ? rvm_true : rvm_false;
    rvm_return_t rc = rvm_map(&heap_region, NULL);
    rvm_map_private = was;
    if (rc != RVM_SUCCESS) {
        say_rvm("cannot map LRVM_SEGMENT", rc);
        return EIO;
    }
    image_mapped = map_file;
    if (map_file && sz < reserve) {
        /* No read-around on faults in the part the heap will grow into: those file pages are
         * holes, and read-around would cache them as zeroed large folios, into which every
         * later record the truncation thread applies is a costly small write (apply_pass.c,
         * PAGE-SIZED WRITES). The heap in use keeps read-around: without it a fault on an
         * uncached page reads that page alone (touching a 256 MiB heap after a cold start:
         * 5.6 s instead of 0.46 s). Advice only. */
        size_t from = (sz + 4095u) & ~(size_t)4095u;
        if (from < reserve)
            (void)madvise((char *)base + from, reserve - from, MADV_RANDOM);
    }
    if (sz && !map_file) {
        for (size_t done = 0; done < sz;) {
            ssize_t r =
                pread(heap_seg.fd, (char *)base + done, sz - done, (off_t)(heap_off + done));
            if (r <= 0) {
                int err = r < 0 ? errno : EIO;
                shim_say(2, "cannot read LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
                return err;
            }
            done += (size_t)r;
        }
    }
    heap_seg.size = sz;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* shim_persist_fork_unlock -- in a fork child, first of all: its duplicate of the segment's
 * descriptor would keep the one-writer lock (flock: held while any duplicate is open) after
 * the parent exits, refusing the next run for as long as the child lives; its heap never
 * commits, so it needs no file blocks either. The sooner it goes, the shorter the instant in
 * which a parent that forked and exited still seems to hold the segment (loglock_flock waits
 * such an instant out). */
void shim_persist_fork_unlock(void)
{
    if (heap_seg.fd >= 0) {
        close(heap_seg.fd);
        heap_seg.fd = -1;
    }
}

/*
 * shim_persist_fork_child -- in a fork child (heap.c's handler): detach the heap from the
 * segment file. With a MAP_PRIVATE image, a page neither process wrote before the fork is
 * still the file's page in the child; the parent's truncation later writes committed data
 * into the file, and the child would see it change under it (fork promises a snapshot). So
 * every page of the heap in use is made the child's own copy now (MADV_POPULATE_WRITE: one
 * call, ~0.2-0.3 s per GiB never written by the parent; a fork+exec child pays it too), and
 * the rest of the reservation becomes fresh anonymous memory (the child's heap may grow into
 * it and expects zeros there, whatever the parent commits).
 */
void shim_persist_fork_child(void)
{
    if (!image_mapped)
        return;
    char *base = heap_region.vmaddr;
    size_t used = heap_seg.size, reserve = heap_seg.reserve;
    if (used > 0 && madvise(base, used, MADV_POPULATE_WRITE) != 0)
        shim_say(2, "fork child: cannot copy the heap (", strerror(errno),
                 "); its pages not "
                 "written before the fork may show the parent's later commits",
                 NULL);
    if (reserve > used &&
        mmap(base + used, reserve - used, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
        shim_say(2, "fork child: cannot detach the heap reservation: ", strerror(errno), NULL);
}

/*
 * segment_open -- open LRVM_SEGMENT under the ownership rules (filecheck.h) into heap_seg.fd,
 * creating it only when that loses nothing. A missing segment whose log exists is the
 * dangerous case: the log may hold commits for it (the file was deleted or not restored
 * with its log). Creating an empty file first would let recovery write those records into
 * it, leaving a file with some pages of the heap and no header ("not an lrvm segment" at
 * the next step, and the records gone from the log). So the log is opened (and recovered)
 * first, with the segment absent: a record for it is then an error naming both files, and
 * nothing is created or changed. Returns 0, or an errno value after a message (EPERM, EIO:
 * message given here; others: the caller names the file).
 */
static int segment_open(const char *seg, rvm_options_t *o)
{
    char why[1024];
    heap_seg.fd = filecheck_open(seg, O_RDWR, 0, "segment", why, sizeof(why));
    if (heap_seg.fd < 0 && why[0]) {
        shim_say(2, "LRVM_SEGMENT: ", why, NULL);
        return EPERM;
    }
    if (heap_seg.fd >= 0 || errno != ENOENT)
        return heap_seg.fd >= 0 ? 0 : errno;
    if (access(log_path, F_OK) == 0) {
        rvm_log_max_len = shim_opts.log_max;
        rvm_return_t rc = rvm_initialize(RVM_VERSION, o);
        if (rc != RVM_SUCCESS) {
            shim_say(2, "LRVM_SEGMENT=", seg, " does not exist, and its log ", log_path,
                     " could not be recovered without it (",
                     rvm_errmsg ? rvm_errmsg : rvm_return(rc),
                     "); if the log holds commits for it, restore the segment; to start afresh, "
                     "move both files away",
                     NULL);
            return EIO;
        }
    }
    /* O_EXCL: a file that appears meanwhile is not ours to adopt unchecked */
    heap_seg.fd = filecheck_open(seg, O_RDWR | O_CREAT | O_EXCL, 0600, "segment", why, sizeof(why));
    if (heap_seg.fd < 0 && why[0]) {
        shim_say(2, "LRVM_SEGMENT: ", why, NULL);
        return EPERM;
    }
    return heap_seg.fd >= 0 ? 0 : errno;
}

/* mark_log_pending -- before anything of this run can reach the log, the segment file says
 * that its log holds commits (image_format.h, LOG PENDING): pwrite + fdatasync of one field,
 * before the header is mapped so the mapped copy has it too. If it was set already (the usual
 * case after the first run) nothing is written. */
static int mark_log_pending(const char *seg)
{
    uint32_t v = 0;
    off_t at = (off_t)offsetof(struct image_header, log_pending);
    if (pread(heap_seg.fd, &v, sizeof(v), at) == (ssize_t)sizeof(v) && v != 0)
        return 0;
    v = 1;
    if (pwrite(heap_seg.fd, &v, sizeof(v), at) != (ssize_t)sizeof(v) ||
        fdatasync(heap_seg.fd) != 0) {
        int err = errno;
        shim_say(2, "cannot write the header of LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
        return err ? err : EIO;
    }
    return 0;
}

/* persist_log_path -- the log's path into log_path: LRVM_LOG, else "<segment>.log" */
static int persist_log_path(const char *seg)
{
    int n = shim_opts.log ? snprintf(log_path, sizeof(log_path), "%s", shim_opts.log)
                          : snprintf(log_path, sizeof(log_path), "%s.log", seg);
    if (n < 0 || (size_t)n >= sizeof(log_path)) {
        shim_say(2, "LRVM_LOG / LRVM_SEGMENT: path too long", NULL);
        return ENAMETOOLONG;
    }
    return 0;
}

/* persist_log_options -- the engine's options for the shim's log */
static void persist_log_options(rvm_options_t *o)
{
    rvm_init_options(o);
    o->log_dev = log_path;
    /* Truncate once 1/8 of the log holds records (LRVM's default waits for half): the records
     * left in the log are what the next start must apply, so this bounds the restart. */
    o->truncate = 12;
    if (shim_opts.shared_group)
        o->flags |= RVM_SHARED_GROUP;
    filecheck_shared_group = shim_opts.shared_group;
}

/* persist_open_segment -- segment_open, and the file's size into *st */
static int persist_open_segment(const char *seg, rvm_options_t *o, struct stat *st)
{
    int oerr = segment_open(seg, o);
    if (oerr == 0 && fstat(heap_seg.fd, st) != 0)
        oerr = errno;
    if (oerr) {
        if (oerr != EPERM && oerr != EIO)
            shim_say(2, "cannot open LRVM_SEGMENT=", seg, ": ", strerror(oerr), NULL);
        return oerr;
    }
    return 0;
}

/* persist_lock_segment -- one writer per segment, locked before the log is opened (recovery
 * writes the segment): two processes committing the same heap would overwrite each other. The
 * lock lives as long as the descriptor (O_CLOEXEC: an exec'd program does not hold it; a fork
 * child shares it but never commits). */
static int persist_lock_segment(const char *seg)
{
    pid_t holder;
    int err = loglock_flock(heap_seg.fd, LOCK_EX, &holder);
    if (err == 0)
        return 0;
    char pid[24];
    shim_say(2, "LRVM_SEGMENT=", seg, err == EWOULDBLOCK ? " is in use by " : ": cannot lock it: ",
             err != EWOULDBLOCK ? strerror(err)
             : holder > 0       ? "pid "
                                : "another process, perhaps a child a program forked without exec",
             holder > 0 ? shim_fmt_u64(pid, (uint64_t)holder) : "",
             err == EWOULDBLOCK ? " (one writer per segment); wait for it to exit or choose "
                                  "another LRVM_SEGMENT"
                                : "",
             NULL);
    return err;
}

/* persist_recover -- steps 0 and 1: the header judged before the log is touched, the log
 * created if there is none (and may be), rvm_initialize (recovery), and the header judged
 * again into *fh; *existing is 1 when the segment holds an image. */
static int persist_recover(const char *seg, rvm_options_t *o, struct image_header *fh,
                           int *existing)
{
    int chk = read_header(fh, seg);
    if (chk > 1)
        return chk;
    rvm_return_t rc;
    if (access(log_path, F_OK) != 0) {
        if (fh->log_pending) {
            /* the file alone is not the last committed state: recreating the log would lose the
             * commits it held, silently (image_format.h, LOG PENDING) */
            shim_say(
                2, "LRVM_SEGMENT=", seg, " has commits in its log, but the log ", log_path,
                " is missing: restore the log (a copy of the segment needs the copy of its log "
                "made with it), or, to accept the segment as the file has it and lose what the "
                "log held, run `rvmutl forget-log ",
                seg, "`", NULL);
            return ENOENT;
        }
        if ((rc = log_create_atomic(o)) != RVM_SUCCESS)
            return EIO;
    }
    rvm_log_max_len = shim_opts.log_max; /* how far a too-small log may grow */
    rc = rvm_initialize(RVM_VERSION, o);
    if (rc != RVM_SUCCESS) {
        say_rvm("cannot open the log (LRVM_LOG or <LRVM_SEGMENT>.log)", rc);
        return EIO;
    }
    /* Read again after recovery: the file's header is older than the log's when the last run
     * did not truncate (a crash, a kill), and the verdict that counts is the last commit's. */
    if ((chk = read_header(fh, seg)) > 1)
        return chk;
    *existing = chk == 0;
    return 0;
}

/* persist_configure_engine -- commit mode (LRVM_FLUSH) and tracking backend (LRVM_TRACK) */
static int persist_configure_engine(void)
{
    if (!shim_opts.flush)
        rvm_commit_mode(no_flush);
    if (strcmp(shim_opts.track, "auto") != 0) {
        rvm_track_options_t to;
        memset(&to, 0, sizeof(to));
        to.backend = shim_opts.track;
        rvm_return_t rc = rvm_track_configure(&to);
        if (rc != RVM_SUCCESS) {
            say_rvm("LRVM_TRACK", rc);
            return EINVAL;
        }
    }
    return 0;
}

/* persist_size_segment -- step 2's extension: the file is heap_off + reserve bytes (sparse);
 * a larger file is not one this header and LRVM_HEAP_SIZE describe */
static int persist_size_segment(const char *seg, const struct stat *st, uint64_t heap_off,
                                size_t reserve)
{
    heap_seg.reserve = reserve;
    heap_seg.off = heap_off;
    if ((uint64_t)st->st_size > heap_off + reserve) {
        char a[24], b[24];
        shim_say(2, "LRVM_SEGMENT=", seg, " is ", shim_fmt_u64(a, (uint64_t)st->st_size >> 20),
                 " MiB, larger than its header and LRVM_HEAP_SIZE (",
                 shim_fmt_u64(b, reserve >> 20),
                 " MiB) allow: a damaged segment? choose another LRVM_SEGMENT", NULL);
        return EFBIG;
    }
    if ((uint64_t)st->st_size < heap_off + reserve &&
        ftruncate(heap_seg.fd, (off_t)(heap_off + reserve)) != 0) {
        int err = errno;
        shim_say(2, "cannot extend LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
        return err;
    }
    return 0;
}

/* persist_map_and_track -- steps 2 and 3 up to the heap: the log marked pending, the header
 * page and the heap mapped, both tracked */
static int persist_map_and_track(const char *seg, void *base, size_t reserve, uint64_t heap_off,
                                 int existing)
{
    int mrc = mark_log_pending(seg);
    if (mrc != 0)
        return mrc;
    mrc = map_region(&header_region, seg, 0, IMG_HEADER_SIZE, NULL, 0,
                     "cannot map the header of LRVM_SEGMENT");
    if (mrc)
        return mrc;
    seg_header = (struct image_header *)header_region.vmaddr;
    if ((mrc = persist_load_image(seg, base, reserve, heap_off, existing)))
        return mrc;
    /* only the heap in use can hold pages: the rest of the reservation was never touched */
    rvm_return_t rc = track_region_add_sparse(
        &heap_region, heap_seg.size > 0 ? heap_seg.size : (uint64_t)1 << HEAP_CHUNK_SHIFT);
    if (rc == RVM_SUCCESS)
        rc = rvm_track(&header_region);
    if (rc != RVM_SUCCESS) {
        say_rvm("cannot track the heap (LRVM_TRACK)", rc);
        return EIO;
    }
    /* Only wp-async lets the kernel write into tracked memory. With the
     * fault backends, kwrite.c prepares heap buffers before read, recv, stat ... (and libcobj.c
     * keeps libc's own stdio buffers and DIR streams out of the heap). */
    rvm_track_statistics_t ts;
    if (rvm_track_statistics(&ts) == RVM_SUCCESS && strcmp(ts.backend, "wp-async") != 0) {
        shim_kw_lo = (uintptr_t)base;
        shim_kw_hi = (uintptr_t)base + reserve;
    }
    return 0;
}

/* persist_open_heap -- step 3's end: heap_open or heap_create in tracked memory; a new
 * segment's header filled in and committed at once (an empty heap is a valid restart point) */
static int persist_open_heap(const char *seg, void *base, size_t reserve, int existing,
                             uint64_t glen, uint64_t heap_off)
{
    struct heap_opts ho;
    heap_opts_init(&ho);
    ho.report = report;
    /* Every commit judges the words of the blocks the globals reach (restorable.c): a block
     * the program has not filled yet must not show a freed block's pointers, nor a short
     * last word that reads as an address. The scan reads no block past its budget. */
    ho.clean_bytes = SHIM_SCAN_BUDGET;
    int hrc = existing ? heap_open(&shim_heap, base, &seg_backing, &ho)
                       : heap_create(&shim_heap, base, reserve, &seg_backing, &ho);
    if (hrc) {
        shim_say(2,
                 existing ? "cannot open the heap in LRVM_SEGMENT="
                          : "cannot create a heap in "
                            "LRVM_SEGMENT=",
                 seg, ": ", heap_strerror(hrc),
                 existing ? " (a damaged segment? rvmutl image shows its header)" : "", NULL);
        return hrc;
    }
    if (existing)
        return 0;
    shim_image_create(seg_header, glen, heap_off);
    if (shim_opts.globals)
        seg_header->flags |= IMG_F_GLOBALS; /* even with no writable data: the layout is fixed */
    shim_image_stamp(seg_header, 0);
    /* track_commit, not rvm_commit: that is overridden to come back here (aware.c) */
    rvm_return_t rc = track_commit();
    if (rc != RVM_SUCCESS) {
        say_rvm("cannot commit the new segment", rc);
        return EIO;
    }
    return 0;
}

/* persist_setup_globals -- step 4, and the lock ranges: locks held at the last commit come
 * back released (lockset.c), the heap's now, the globals' when globals.c restores them */
static int persist_setup_globals(const char *seg, void *base, size_t reserve, int existing,
                                 uint64_t glen)
{
    shim_locks_setup(seg_header, seg, existing, (uintptr_t)base, (uintptr_t)base + heap_seg.size);
    if (glen && shim_opts.globals && shim_restore_setup() != 0)
        shim_say(2,
                 "LRVM_GLOBALS: no memory for the restorability scan; commits record no "
                 "verdict",
                 NULL);
    int mrc;
    if (glen && shim_opts.globals &&
        (mrc = shim_globals_map(seg, IMG_HEADER_SIZE,
                                (seg_header->flags & IMG_F_GLOBALS_VALID) != 0)))
        return mrc;
    int gl = shim_globals_tracked();
    if (gl && shim_kw_hi != 0) { /* a fault backend: the kernel must not write them blindly */
        shim_kw_glo = shim_exe.g_lo;
        shim_kw_ghi = shim_exe.g_hi;
    }
    shim_locks_ranges(gl ? shim_exe.g_lo : 0, gl ? shim_exe.g_hi : 0, (uintptr_t)base,
                      (uintptr_t)base + reserve);
    return 0;
}

/* shim_persist_setup -- steps 0-4 of the file comment; the heap is reserved at base already */
int shim_persist_setup(void *base, size_t reserve)
{
    const char *seg = shim_opts.segment;
    int err = persist_log_path(seg);
    if (err)
        return err;
    /* The executable's identity and globals: checked against the header (globals), recorded
     * for display (heap-only). */
    int prc = shim_exe_probe();
    if (prc && shim_opts.globals)
        return prc;
    rvm_options_t o;
    persist_log_options(&o);
    struct stat st;
    if ((err = persist_open_segment(seg, &o, &st)) || (err = persist_lock_segment(seg)))
        return err;
    struct image_header fh;
    int existing = 0;
    if ((err = persist_recover(seg, &o, &fh, &existing)))
        return err;
    /* Restoring globals the last commit judged unrestorable, or that made the last restored run
     * crash, is refused here: before main, nothing of the program has run, and recovery only
     * applied committed records (restorable.c, crashnote.c). */
    if (existing && shim_opts.globals && (fh.flags & IMG_F_GLOBALS_VALID) &&
        (shim_restore_refuse(&fh, seg) || shim_crash_refuse(&fh, seg)))
        return EPERM;
    if ((err = persist_configure_engine()))
        return err;
    uint64_t glen =
        existing ? fh.globals_len : (shim_opts.globals ? shim_exe.g_hi - shim_exe.g_lo : 0);
    uint64_t heap_off = existing ? fh.heap_off : IMG_HEADER_SIZE + glen;
    if ((err = persist_size_segment(seg, &st, heap_off, reserve)) ||
        (err = persist_map_and_track(seg, base, reserve, heap_off, existing)) ||
        (err = persist_open_heap(seg, base, reserve, existing, glen, heap_off)) ||
        (err = persist_setup_globals(seg, base, reserve, existing, glen)))
        return err;
    shim_persistent = 1;
    return 0;
}

/* unlock_heap_after_instant -- track_commit_then's callback: the instant is captured */
static void unlock_heap_after_instant(void *arg)
{
    (void)arg;
    shim_forkgate_tail_begin(); /* a fork now waits for the end of this commit */
    heap_unlock_all(shim_heap);
}

/* shim_persist_commit -- one commit of header, globals and heap; 0 or an rvm_return_t */
int shim_persist_commit(int final)
{
    shim_in_core = 1;
    shim_globals_lock();
    if (shim_globals_pending()) {
        /* before main: the globals are not restored yet (globals.c) */
        shim_globals_unlock();
        shim_in_core = 0;
        if (final)
            shim_say(
                2,
                "nothing committed: the globals were not restored yet (the program exited "
                "before main, or was not started through glibc's __libc_start_main: then run it "
                "with LRVM_GLOBALS=0)",
                NULL);
        return 0;
    }
    if (final && !shim_opts.flush)
        rvm_commit_mode(flush); /* the exit commit makes the earlier no_flush ones durable too */
    if (final)
        heap_purge(shim_heap); /* freed memory is not worth logging (see seg_release) */
    else
        track_commit_warm(); /* its slow part, done before malloc and free have to wait */
    heap_lock_all(shim_heap);
    if (shim_globals_tracked())
        shim_restore_judge(seg_header, final); /* written into the header: part of this commit */
    shim_image_stamp(seg_header, shim_globals_tracked());
    /* track_commit_then, not rvm_commit: that is overridden to come back here (aware.c). The
   * exit commit is the last: no snapshots or twins for a next commit (track.h). The heap locks
   * are needed only at the instant (no multi-word metadata update half made when the threads
   * stop); they are dropped as soon as the tracker has captured it, so the program's malloc
   * and free do not wait for the diff and the log write. Nothing the program does after that
   * can enter this commit: the tracker copied or protects every captured page. */
    rvm_return_t rc = track_commit_then(final, unlock_heap_after_instant, NULL);
    shim_forkgate_tail_end();
    /* An exit commit that finds nothing changed writes no record, so its flush mode alone
   * would leave the earlier no_flush commits queued -- and lost at exit (seen: a whole run's
   * commits gone after a clean exit with LRVM_FLUSH=0). Flush them explicitly. */
    if (final && !shim_opts.flush && rc == RVM_SUCCESS)
        rc = rvm_flush();
    shim_globals_unlock();
    shim_in_core = 0;
    if (rc == RVM_SUCCESS)
        shim_crash_disarm(); /* the state is this run's own now */
    if (rc == RVM_ETOO_BIG) {
        /* One commit is one log record: the log grows for it up to LRVM_LOG_MAX, and a record
     * holds at most 4 GiB. Nothing committed is lost; this commit's changes are, if no later
     * one fits. */
        char a[24];
        shim_say(2,
                 "commit failed: the changes since the last commit need more log than "
                 "LRVM_LOG_MAX allows, or more than 4 GiB (log ",
                 log_path, ", ", shim_fmt_u64(a, shim_opts.log_size >> 20), " MiB when created; ",
                 rvm_errmsg ? rvm_errmsg : "",
                 "). The segment keeps the previous commit. Commit "
                 "more often (LRVM_COMMIT=exit,interval:TIME), or raise LRVM_LOG_MAX (0: twice the "
                 "segment's size)",
                 NULL);
    } else if (rc != RVM_SUCCESS && !shim_mutex_declined) { /* declined: mutexwait.c retries */
        say_rvm("commit failed; the segment keeps the previous commit", rc);
    }
    return (int)rc;
}

/* shim_persist_flush -- the records are in the log's queue in this process only:
 * written and synced now, they survive; a crash before this loses them, whole and from the end
 * (what no_flush allows). */
int shim_persist_flush(void)
{
    shim_in_core = 1;
    rvm_return_t rc = rvm_flush();
    shim_in_core = 0;
    if (rc != RVM_SUCCESS)
        say_rvm("flushing the commits of LRVM_FLUSH=0 at exit failed", rc);
    return (int)rc;
}

/* shim_persist_settle -- apply every committed record to the segment (rvm_truncate: the
 * segment fsynced before the log's head moves past them). A clean exit ends with it, so the
 * next start finds the log empty and maps the segment without replaying anything: restart
 * time does not depend on how much the last run logged. The exit also calls it before its
 * commit, so that a big exit commit is the log's only live record and is applied from memory
 * as it is logged (log_stream.c) rather than read back from the log. A failure loses
 * nothing: the records stay in the log and the next start applies them. */
int shim_persist_settle(void)
{
    shim_in_core = 1;
    rvm_return_t rc = rvm_truncate();
    shim_in_core = 0;
    if (rc != RVM_SUCCESS)
        say_rvm("applying the log to the segment at exit failed (every commit is safe in the "
                "log: the next start applies it)",
                rc);
    return (int)rc;
}

struct image_header *shim_persist_header(void)
{
    return seg_header;
}

/* shim_persist_write_note -- the only write to the segment outside the log
 * (image_format.h, CRASH NOTE, says why it is safe) */
int shim_persist_write_note(const void *p, size_t len, uint64_t off)
{
    if (heap_seg.fd < 0)
        return EBADF;
    ssize_t w = pwrite(heap_seg.fd, p, len, (off_t)off);
    return w == (ssize_t)len ? 0 : EIO;
}

/* shim_persist_stats -- the tracker's statistics (LRVM_STATS) */
void shim_persist_stats(int fd)
{
    rvm_track_statistics_t st;
    if (rvm_track_statistics(&st) != RVM_SUCCESS)
        return;
    char a[24], b[24], c[24], d[24], e[24], f[24], g[24];
    uint64_t n = st.n_commits + st.n_empty_commits;
    shim_say(fd, "stats: tracking ", st.backend, ": ", shim_fmt_u64(a, n), " commits, ",
             shim_fmt_u64(b, st.bytes_logged >> 10), " KiB logged, pause max ",
             shim_fmt_u64(c, st.max_pause_ns / 1000), " us avg ",
             shim_fmt_u64(d, n ? st.total_pause_ns / n / 1000 : 0), " us, commit avg ",
             shim_fmt_u64(e, n ? st.total_commit_ns / n / 1000 : 0), " us (durable avg ",
             shim_fmt_u64(f, n ? st.total_durable_ns / n / 1000 : 0), " us), threads skipped ",
             shim_fmt_u64(g, st.last_skipped), NULL);
    uint64_t over[TRACK_PAUSE_BOUNDS];
    track_pause_counts(over);
    char o[TRACK_PAUSE_BOUNDS][24];
    shim_say(fd, "stats: pauses over 1/2/5/10/20/50 ms: ", shim_fmt_u64(o[0], over[0]), "/",
             shim_fmt_u64(o[1], over[1]), "/", shim_fmt_u64(o[2], over[2]), "/",
             shim_fmt_u64(o[3], over[3]), "/", shim_fmt_u64(o[4], over[4]), "/",
             shim_fmt_u64(o[5], over[5]), " of ", shim_fmt_u64(a, n),
             "; pages copied before a pause ", shim_fmt_u64(b, track_precopied_pages()), NULL);
}
