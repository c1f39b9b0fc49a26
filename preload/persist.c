/*
 * persist.c -- the heap made persistent: an LRVM segment region, auto-tracked, committed.
 *
 * Layout: the segment file (LRVM_SEGMENT) is the heap's image, byte for byte: segment offset 0
 * is the heap base. Its log is LRVM_LOG (default "<segment>.log", created with LRVM_LOG_SIZE).
 *
 * Start-up (from init.c, single-threaded, before main):
 *   1. rvm_initialize with the log: recovery applies every committed record to the segment.
 *   2. The segment file is extended (sparse, ftruncate) to the reservation, and the region
 *      [0, reserve) is rvm_map'ed at the heap base with no_copy: rvm_map would otherwise read
 *      the whole reservation (16 GiB by default). Instead we read only the heap's backed size
 *      (from its header) ourselves: restart cost is proportional to the heap in use.
 *   3. rvm_track(region); only then heap_open / heap_create, so the heap's own writes are
 *      tracked; a new heap is committed at once (an empty heap is a valid restart point).
 * Commit (shim_commit): heap_lock_all, rvm_commit, heap_unlock_all. The lock is taken before
 * rvm_commit stops the other threads (heap.h's contract), so the image holds no half-made
 * multi-word metadata update; user data is captured at the same instant by the tracker.
 *
 * Internal memory: liblrvm (linked into this library) allocates with malloc. Those blocks must
 * not live in the persistent heap (they would be committed, and a commit holding heap_lock_all
 * would deadlock on its own malloc). They come from a second, volatile instance of the same
 * allocator (shim_iheap, anonymous memory): malloc.c sends a call there when it comes from
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
#include "heap.h"
#include "heap_format.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lrvm/lrvm.h>
#include <rvm/rvm.h>

__thread int shim_in_core __attribute__((tls_model("initial-exec")));
int shim_persistent;
struct heap *shim_iheap;

static rvm_region_t region;
static char log_path[PATH_MAX];

/* struct segb -- the segment backing: the file's blocks are reserved as the heap grows */
static struct segb {
  int fd;
  size_t size;
  size_t reserve;
} segb = {.fd = -1};

/* seg_grow -- reserve file space for [0, new_size): a full disk is ENOSPC now, not SIGBUS or
 * a failed truncation later */
static int seg_grow(void *ctx, size_t new_size)
{
  struct segb *b = ctx;
  if (new_size > b->reserve)
    return ENOMEM;
  int rc = posix_fallocate(b->fd, 0, (off_t)new_size);
  if (rc)
    return rc;
  b->size = new_size;
  return 0;
}

/* seg_release -- drop the memory of a free range (see the file comment); errno on failure */
static int seg_release(void *ctx, size_t off, size_t len)
{
  (void)ctx;
  return madvise((char *)region.vmaddr + off, len, MADV_DONTNEED) == 0 ? 0 : errno;
}

static size_t seg_size(void *ctx)
{
  return ((struct segb *)ctx)->size;
}

static const struct heap_backing seg_backing = {
  .grow = seg_grow, .release = seg_release, .reserve_space = NULL, .size = seg_size,
  .ctx = &segb, .flags = 0,
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

/* shim_persist_setup -- steps 1-3 of the file comment; the heap is reserved at base already */
int shim_persist_setup(void *base, size_t reserve)
{
  const char *seg = shim_opts.segment;
  int n = shim_opts.log ? snprintf(log_path, sizeof(log_path), "%s", shim_opts.log)
                        : snprintf(log_path, sizeof(log_path), "%s.log", seg);
  if (n < 0 || (size_t)n >= sizeof(log_path)) {
    shim_say(2, "LRVM_LOG / LRVM_SEGMENT: path too long", NULL);
    return ENAMETOOLONG;
  }
  segb.fd = open(seg, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  if (segb.fd < 0 || fstat(segb.fd, &st) != 0) {
    int err = errno;
    shim_say(2, "cannot open LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
    return err;
  }
  /* One writer per segment, locked before the log is opened (recovery writes the segment):
   * two processes committing the same heap would overwrite each other. The lock lives as long as the descriptor (O_CLOEXEC: an exec'd program does
   * not hold it; a fork child shares it but never commits). */
  if (flock(segb.fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    shim_say(2, "LRVM_SEGMENT=", seg, err == EWOULDBLOCK
                 ? " is in use by another process (one writer per segment); wait for it to exit"
                   " or choose another LRVM_SEGMENT"
                 : ": cannot lock it: ", err == EWOULDBLOCK ? "" : strerror(err), NULL);
    return err;
  }
  rvm_options_t o;
  rvm_init_options(&o);
  o.log_dev = log_path;
  if (access(log_path, F_OK) != 0) {
    o.create_log_file = rvm_true;
    o.create_log_size = RVM_MK_OFFSET(0, shim_opts.log_size);
    o.create_log_mode = 0600;
  }
  rvm_return_t rc = rvm_initialize(RVM_VERSION, &o);
  if (rc != RVM_SUCCESS) {
    say_rvm("cannot open the log (LRVM_LOG or <LRVM_SEGMENT>.log)", rc);
    return EIO;
  }
  if (!shim_opts.flush)
    rvm_commit_mode(no_flush);
  if (strcmp(shim_opts.track, "auto") != 0) {
    rvm_track_options_t to;
    memset(&to, 0, sizeof(to));
    to.backend = shim_opts.track;
    if ((rc = rvm_track_configure(&to)) != RVM_SUCCESS) {
      say_rvm("LRVM_TRACK", rc);
      return EINVAL;
    }
  }
  segb.reserve = reserve;
  if ((size_t)st.st_size > reserve) {
    char a[24], b[24];
    shim_say(2, "LRVM_SEGMENT=", seg, " is ", shim_fmt_u64(a, (uint64_t)st.st_size >> 20),
             " MiB, larger than LRVM_HEAP_SIZE (", shim_fmt_u64(b, reserve >> 20),
             " MiB): run with the LRVM_HEAP_SIZE it was created with", NULL);
    return EFBIG;
  }
  if ((size_t)st.st_size < reserve && ftruncate(segb.fd, (off_t)reserve) != 0) {
    int err = errno;
    shim_say(2, "cannot extend LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
    return err;
  }
  rvm_init_region(&region);
  region.data_dev = (char *)seg;
  region.offset = RVM_MK_OFFSET(0, 0);
  region.length = reserve;
  region.vmaddr = base;
  region.no_copy = rvm_true;
  if ((rc = rvm_map(&region, NULL)) != RVM_SUCCESS) {
    say_rvm("cannot map LRVM_SEGMENT", rc);
    return EIO;
  }
  /* Read the heap in use (its header says how much), not the whole reservation. */
  struct heap_header hdr;
  int existing = pread(segb.fd, &hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
                 memcmp(hdr.magic, HEAP_MAGIC, 8) == 0;
  if (existing) {
    size_t sz = hdr.size <= reserve ? (size_t)hdr.size : reserve;
    for (size_t done = 0; done < sz;) {
      ssize_t r = pread(segb.fd, (char *)base + done, sz - done, (off_t)done);
      if (r <= 0) {
        int err = r < 0 ? errno : EIO;
        shim_say(2, "cannot read LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
        return err;
      }
      done += (size_t)r;
    }
    segb.size = sz;
  }
  if ((rc = rvm_track(&region)) != RVM_SUCCESS) {
    say_rvm("cannot track the heap (LRVM_TRACK)", rc);
    return EIO;
  }
  /* Only wp-async lets the kernel write into tracked memory (DESIGN.md §5.3). With the other
   * backends read(2), recv(2), fread ... into a heap buffer fail with EFAULT unless the shim
   * calls rvm_track_prepare_write first, and it does not wrap those calls yet: refuse rather
   * than let the program fail later with "Bad address". */
  rvm_track_statistics_t ts;
  if (rvm_track_statistics(&ts) == RVM_SUCCESS && strcmp(ts.backend, "wp-async") != 0) {
    shim_say(2, "LRVM_TRACK=", shim_opts.track, ": the DIRTY backend is ", ts.backend,
             "; with it, system calls that write into the heap (read, recv, fread ...) fail with"
             " EFAULT, and the shim does not wrap them yet. Use LRVM_TRACK=auto or wp-async "
             "(needs Linux 6.7+ userfaultfd WP_ASYNC and PAGEMAP_SCAN)", NULL);
    return ENOTSUP;
  }
  struct heap_opts ho;
  heap_opts_init(&ho);
  ho.report = report;
  int hrc = existing ? heap_open(&shim_heap, base, &seg_backing, &ho)
                     : heap_create(&shim_heap, base, reserve, &seg_backing, &ho);
  if (hrc) {
    shim_say(2, existing ? "cannot open the heap in LRVM_SEGMENT=" : "cannot create a heap in "
             "LRVM_SEGMENT=", seg, ": ", heap_strerror(hrc),
             existing ? " (a segment written by another lrvm version, base or LRVM_HEAP_SIZE?)"
                      : "", NULL);
    return hrc;
  }
  if (!existing && (rc = rvm_commit()) != RVM_SUCCESS) {
    say_rvm("cannot commit the new heap", rc);
    return EIO;
  }
  shim_persistent = 1;
  return 0;
}

/* shim_persist_commit -- one commit of the heap; 0 or an rvm_return_t */
int shim_persist_commit(int final)
{
  shim_in_core = 1;
  if (final && !shim_opts.flush)
    rvm_commit_mode(flush);   /* the exit commit makes the earlier no_flush ones durable too */
  if (final)
    heap_purge(shim_heap);    /* freed memory is not worth logging (see seg_release) */
  heap_lock_all(shim_heap);
  rvm_return_t rc = rvm_commit();
  heap_unlock_all(shim_heap);
  shim_in_core = 0;
  if (rc != RVM_SUCCESS)
    say_rvm("commit failed; the segment keeps the previous commit", rc);
  return (int)rc;
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
}
