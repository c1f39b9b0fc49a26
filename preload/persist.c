/*
 * persist.c -- the heap made persistent: an LRVM segment region, auto-tracked, committed.
 *
 * Layout: the segment file (LRVM_SEGMENT) is a process image in the format of
 * core/image_format.h: a header page, the executable's globals (globals.c; absent with
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
 *      page is mapped (read), the heap region [heap_off, + reserve) is rvm_map'ed at the heap
 *      base with no_copy: rvm_map would otherwise read the whole reservation (16 GiB by
 *      default). Instead we read only the heap's backed size (from its header) ourselves:
 *      restart cost is proportional to the heap in use.
 *   3. rvm_track(both); only then heap_open / heap_create and the new header's fields, so their
 *      writes are tracked; a new segment is committed at once (an empty heap is a valid restart
 *      point).
 *   4. the globals (globals.c): mapped and tracked now, restored just before main.
 * Commit (shim_commit): the globals' restore lock (no commit before they are restored), the
 * header's commit stamp, heap_lock_all, rvm_commit, unlock. The heap lock is taken before
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
 * Release of freed heap memory is a no-op for now (memory is not returned to the kernel while
 * the heap is persistent; MADV_DONTNEED on a private file mapping would bring back old file
 * bytes, and hole punching needs heap_punch_collect after a durable commit: next session).
 */
#include "shim.h"
#include "heap.h"
#include "heap_format.h"
#include "track.h"

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

static rvm_region_t region;     /* the heap */
static rvm_region_t hregion;    /* the header page */
static struct image_header *img;
static char log_path[PATH_MAX];

/* struct segb -- the segment backing: the file's blocks are reserved as the heap grows */
static struct segb {
  int fd;
  size_t size;
  size_t reserve;
  uint64_t off;    /* the heap's offset in the segment */
} segb = {.fd = -1};

/* seg_grow -- reserve file space for the heap's [0, new_size): a full disk is ENOSPC now, not
 * SIGBUS or a failed truncation later */
static int seg_grow(void *ctx, size_t new_size)
{
  struct segb *b = ctx;
  if (new_size > b->reserve)
    return ENOMEM;
  if (b->fd < 0) {          /* fork child: private memory only, the file is the parent's */
    b->size = new_size;
    return 0;
  }
  int rc = posix_fallocate(b->fd, (off_t)b->off, (off_t)new_size);
  if (rc)
    return rc;
  b->size = new_size;
  return 0;
}

/* seg_release -- keep the memory (see the file comment) */
static int seg_release(void *ctx, size_t off, size_t len)
{
  (void)ctx;
  (void)off;
  (void)len;
  return 0;
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

/* read_header -- the header page as the file has it (zeros past its end) and its verdict */
static int read_header(struct image_header *h, const char *seg)
{
  memset(h, 0, sizeof(*h));
  ssize_t r = pread(segb.fd, h, sizeof(*h), 0);
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

/* shim_persist_setup -- steps 0-4 of the file comment; the heap is reserved at base already */
int shim_persist_setup(void *base, size_t reserve)
{
  const char *seg = shim_opts.segment;
  int n = shim_opts.log ? snprintf(log_path, sizeof(log_path), "%s", shim_opts.log)
                        : snprintf(log_path, sizeof(log_path), "%s.log", seg);
  if (n < 0 || (size_t)n >= sizeof(log_path)) {
    shim_say(2, "LRVM_LOG / LRVM_SEGMENT: path too long", NULL);
    return ENAMETOOLONG;
  }
  /* The executable's identity and globals: checked against the header (globals), recorded
   * for display (heap-only). */
  int prc = shim_exe_probe();
  if (prc && shim_opts.globals)
    return prc;
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
  /* step 0: judge the header before the log is touched */
  struct image_header fh;
  int chk = read_header(&fh, seg);
  if (chk > 1)
    return chk;
  rvm_options_t o;
  rvm_init_options(&o);
  o.log_dev = log_path;
  rvm_return_t rc;
  if (access(log_path, F_OK) != 0 && (rc = log_create_atomic(&o)) != RVM_SUCCESS)
    return EIO;
  rc = rvm_initialize(RVM_VERSION, &o);
  if (rc != RVM_SUCCESS) {
    say_rvm("cannot open the log (LRVM_LOG or <LRVM_SEGMENT>.log)", rc);
    return EIO;
  }
  if (chk == 1 && (chk = read_header(&fh, seg)) > 1)
    return chk;  /* the header was only in the log: recovery wrote it */
  int existing = chk == 0;
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
  uint64_t glen = existing ? fh.globals_len
                           : (shim_opts.globals ? shim_exe.g_hi - shim_exe.g_lo : 0);
  uint64_t heap_off = existing ? fh.heap_off : IMG_HEADER_SIZE + glen;
  segb.reserve = reserve;
  segb.off = heap_off;
  if ((uint64_t)st.st_size > heap_off + reserve) {
    char a[24], b[24];
    shim_say(2, "LRVM_SEGMENT=", seg, " is ", shim_fmt_u64(a, (uint64_t)st.st_size >> 20),
             " MiB, larger than its header and LRVM_HEAP_SIZE (", shim_fmt_u64(b, reserve >> 20),
             " MiB) allow: a damaged segment? choose another LRVM_SEGMENT", NULL);
    return EFBIG;
  }
  if ((uint64_t)st.st_size < heap_off + reserve &&
      ftruncate(segb.fd, (off_t)(heap_off + reserve)) != 0) {
    int err = errno;
    shim_say(2, "cannot extend LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
    return err;
  }
  int mrc = map_region(&hregion, seg, 0, IMG_HEADER_SIZE, NULL, 0,
                       "cannot map the header of LRVM_SEGMENT");
  if (mrc)
    return mrc;
  img = (struct image_header *)hregion.vmaddr;
  if ((mrc = map_region(&region, seg, heap_off, reserve, base, 1, "cannot map LRVM_SEGMENT")))
    return mrc;
  /* Read the heap in use (its header says how much), not the whole reservation. */
  struct heap_header hdr;
  int heap_there = pread(segb.fd, &hdr, sizeof(hdr), (off_t)heap_off) == (ssize_t)sizeof(hdr) &&
                   memcmp(hdr.magic, HEAP_MAGIC, 8) == 0;
  if (existing && heap_there) {
    size_t sz = hdr.size <= reserve ? (size_t)hdr.size : reserve;
    for (size_t done = 0; done < sz;) {
      ssize_t r = pread(segb.fd, (char *)base + done, sz - done, (off_t)(heap_off + done));
      if (r <= 0) {
        int err = r < 0 ? errno : EIO;
        shim_say(2, "cannot read LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
        return err;
      }
      done += (size_t)r;
    }
    segb.size = sz;
  }
  if ((rc = rvm_track(&region)) != RVM_SUCCESS || (rc = rvm_track(&hregion)) != RVM_SUCCESS) {
    say_rvm("cannot track the heap (LRVM_TRACK)", rc);
    return EIO;
  }
  /* Only wp-async lets the kernel write into tracked memory (DESIGN.md §5.3). With the
   * fault backends, kwrite.c prepares heap buffers before read, recv, stat ... (and libcobj.c
   * keeps libc's own stdio buffers and DIR streams out of the heap). */
  rvm_track_statistics_t ts;
  if (rvm_track_statistics(&ts) == RVM_SUCCESS && strcmp(ts.backend, "wp-async") != 0) {
    shim_kw_lo = (uintptr_t)base;
    shim_kw_hi = (uintptr_t)base + reserve;
  }
  struct heap_opts ho;
  heap_opts_init(&ho);
  ho.report = report;
  int hrc = existing ? heap_open(&shim_heap, base, &seg_backing, &ho)
                     : heap_create(&shim_heap, base, reserve, &seg_backing, &ho);
  if (hrc) {
    shim_say(2, existing ? "cannot open the heap in LRVM_SEGMENT=" : "cannot create a heap in "
             "LRVM_SEGMENT=", seg, ": ", heap_strerror(hrc),
             existing ? " (a damaged segment? rvmutl image shows its header)" : "", NULL);
    return hrc;
  }
  if (!existing) {
    shim_image_create(img, glen, heap_off);
    if (shim_opts.globals)
      img->flags |= IMG_F_GLOBALS;  /* even with no writable data: the layout is fixed */
    shim_image_stamp(img, 0);
    /* track_commit, not rvm_commit: that is overridden to come back here (aware.c) */
    if ((rc = track_commit()) != RVM_SUCCESS) {
      say_rvm("cannot commit the new segment", rc);
      return EIO;
    }
  }
  /* locks held at the last commit come back released (lockset.c): the heap's now, the
   * globals' when globals.c restores them */
  shim_locks_setup(img, seg, existing, (uintptr_t)base, (uintptr_t)base + segb.size);
  if (glen && (mrc = shim_globals_map(seg, IMG_HEADER_SIZE,
                                      (img->flags & IMG_F_GLOBALS_VALID) != 0)))
    return mrc;
  int gl = shim_globals_tracked();
  shim_locks_ranges(gl ? shim_exe.g_lo : 0, gl ? shim_exe.g_hi : 0, (uintptr_t)base,
                    (uintptr_t)base + reserve);
  shim_persistent = 1;
  return 0;
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
      shim_say(2, "nothing committed: the globals were not restored yet (the program exited "
               "before main, or was not started through glibc's __libc_start_main: then run it "
               "with LRVM_GLOBALS=0)", NULL);
    return 0;
  }
  if (final && !shim_opts.flush)
    rvm_commit_mode(flush);   /* the exit commit makes the earlier no_flush ones durable too */
  heap_lock_all(shim_heap);
  shim_image_stamp(img, shim_globals_tracked());
  /* track_commit, not rvm_commit: that is overridden to come back here (aware.c) */
  rvm_return_t rc = track_commit();
  heap_unlock_all(shim_heap);
  /* An exit commit that finds nothing changed writes no record, so its flush mode alone
   * would leave the earlier no_flush commits queued -- and lost at exit (seen: a whole run's
   * commits gone after a clean exit with LRVM_FLUSH=0). Flush them explicitly. */
  if (final && !shim_opts.flush && rc == RVM_SUCCESS)
    rc = rvm_flush();
  shim_globals_unlock();
  shim_in_core = 0;
  if (rc != RVM_SUCCESS && !shim_mutex_declined)   /* declined: mutexwait.c retries */
    say_rvm("commit failed; the segment keeps the previous commit", rc);
  return (int)rc;
}

/* shim_persist_fork_child -- a fork child lets go of the segment: its heap is a private copy
 * that never commits, so it needs no file blocks, and its duplicate of the descriptor would
 * keep the one-writer lock (flock: held while any duplicate is open) after the parent exits,
 * refusing the next run for as long as the child lives. */
void shim_persist_fork_child(void)
{
  if (segb.fd >= 0) {
    close(segb.fd);
    segb.fd = -1;
  }
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
