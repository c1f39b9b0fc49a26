/* SPDX-License-Identifier: MIT */
/*
 * globals.c -- the executable's global variables (.data/.bss after RELRO, exe.c) kept in the
 * segment's globals area, tracked like the heap, restored before main.
 *
 * WHEN THEY ARE RESTORED: after the executable's constructors, just before main (we wrap
 * __libc_start_main and hand it our main_hook). Why not earlier, in our own constructor: the
 * executable's constructors run after ours and would then reset what we restored -- a C++
 * `std::map<K, V> g;` would be re-constructed empty and its persistent nodes leaked. Restoring
 * after them keeps g pointing at its committed nodes. The price: a constructor that allocates
 * (std::string g = "a long text ...") allocates again on every run and that block is leaked in
 * the persistent heap when the restore overwrites the pointer (one block per run per such global).
 *
 * HOW (at start-up, single-threaded, before any commit):
 *   1. B := the segment's globals area (the committed globals, or zeros before the first
 *      commit that carried them); B's excluded bytes (exe.c: copy-relocated libc objects, GOT
 *      words ...) := the live ones. Copies skip zero pages and file holes (copy_pages,
 *      read_sparse): a large untouched .bss must not become resident through them.
 *   2. replace the globals' pages by anonymous memory (mmap MAP_FIXED: rvm_track needs private
 *      anonymous memory, the executable's .data is a private FILE mapping), fill it with B,
 *      rvm_map the globals area there (no_copy) and rvm_track it: the tracker's committed image
 *      is then the segment's content (B differs from it only in excluded bytes, never restored).
 *      Between the mmap and the copy, only memcpy runs: libc's copy-relocated stdout/environ
 *      are back before any other code can read them.
 *   3. copy the live globals L back over everything (the program starts on fresh globals; its
 *      constructors run on them). These are writes to tracked memory: a page that differs from
 *      the committed image is dirty, so a first commit of a new segment logs every page.
 *   4. main_hook: overlay B's non-excluded bytes (the restore), then allow commits.
 * Until step 4 every commit is skipped (shim_globals_pending): a commit during the constructors
 * would record half-constructed globals, which a later restart would restore over fully
 * constructed ones. A program that exits before main therefore commits nothing.
 *
 * EXIT: the exit commit is registered from main_hook (shim_commit_before_dtors), i.e. after the
 * executable's constructors registered their destructors, so it runs BEFORE those destructors:
 * ~map() frees the map's nodes, and a commit after it would keep a global pointing at freed
 * heap blocks. Handlers the program registers in main still run before the commit.
 *
 * THREADS: a constructor that starts a thread writing globals races with the swap in main_hook
 * (its writes between our read and write are lost). Documented, not handled.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lrvm/lrvm.h>
#include <rvm/rvm.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

static rvm_region_t gregion;
static int tracked;
static volatile int pending;   /* tracked, not yet restored: commits are skipped */
static int restore_valid;      /* B holds committed globals to overlay in main_hook */
static unsigned char *saved_b; /* B (step 1), kept until main_hook */
static pthread_mutex_t restore_mu = PTHREAD_MUTEX_INITIALIZER;

int shim_globals_pending(void)
{
    return __atomic_load_n(&pending, __ATOMIC_ACQUIRE);
}

int shim_globals_tracked(void)
{
    return tracked;
}

/* copy_excluded -- dst[r] = src[r] for each excluded range r (dst, src: images of the globals
 * range) */
static void copy_excluded(unsigned char *dst, const unsigned char *src)
{
    const struct shim_exe *e = &shim_exe;
    for (size_t i = 0; i < e->nexcl; i++)
        memcpy(dst + (e->excl[i].lo - e->g_lo), src + (e->excl[i].lo - e->g_lo),
               e->excl[i].hi - e->excl[i].lo);
}

/* overlay -- dst := src except the excluded ranges, writing only bytes that differ (a page that
 * needs no change is not dirtied) */
static void overlay(unsigned char *dst, const unsigned char *src, size_t len)
{
    const struct shim_exe *e = &shim_exe;
    size_t at = 0;
    for (size_t i = 0; i <= e->nexcl; i++) {
        size_t end = i < e->nexcl ? e->excl[i].lo - e->g_lo : len;
        for (size_t p = at; p < end;) {
            size_t n = 4096 - (p & 4095);
            if (n > end - p)
                n = end - p;
            if (memcmp(dst + p, src + p, n) != 0)
                memcpy(dst + p, src + p, n);
            p += n;
        }
        if (i < e->nexcl)
            at = e->excl[i].hi - e->g_lo;
    }
}

/* page_zero -- the 4 KiB page at p is all zero (reading an untouched .bss page maps the shared
 * zero page: it costs no memory) */
static int page_zero(const unsigned char *p)
{
    const uint64_t *w = (const void *)p;
    for (size_t i = 0; i < 4096 / sizeof(*w); i++)
        if (w[i])
            return 0;
    return 1;
}

/* copy_pages -- dst := src page by page, writing only pages that differ. With dst_zero (dst is
 * fresh anonymous memory) a zero source page is skipped without reading dst. Why: a large,
 * mostly untouched .bss (static char buf[1 << 28]) must not become resident through our copies
 * nor dirty for the tracker. */
static void copy_pages(unsigned char *dst, const unsigned char *src, size_t len, int dst_zero)
{
    for (size_t p = 0; p < len; p += 4096) {
        if (dst_zero ? page_zero(src + p) : memcmp(dst + p, src + p, 4096) == 0)
            continue;
        memcpy(dst + p, src + p, 4096);
    }
}

/* read_sparse -- len bytes of fd at off into b (fresh, zero memory), reading only the file's
 * data extents (SEEK_DATA/SEEK_HOLE): holes of a large .bss area stay untouched in b.
 * 0 or an errno. */
static int read_sparse(int fd, unsigned char *b, size_t len, off_t off)
{
    off_t end = off + (off_t)len, at = off;
    while (at < end) {
        off_t d = lseek(fd, at, SEEK_DATA);
        if (d < 0)
            return errno == ENXIO ? 0 : errno; /* ENXIO: only a hole after at */
        if (d >= end)
            return 0;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0 || h > end)
            h = end;
        for (off_t p = d; p < h;) {
            ssize_t r = pread(fd, b + (p - off), (size_t)(h - p), p);
            if (r <= 0)
                return r < 0 ? errno : EIO;
            p += r;
        }
        at = h;
    }
    return 0;
}

/* say_rvm -- a failed rvm_* call */
static void say_rvm(const char *what, rvm_return_t rc)
{
    shim_say(2, what, ": ", rvm_return(rc), " (", rvm_errmsg ? rvm_errmsg : "", ")", NULL);
}

/* shim_globals_map -- steps 1-3 of the file comment */
int shim_globals_map(const char *seg, uint64_t off, int valid)
{
    const struct shim_exe *e = &shim_exe;
    unsigned char *g = (unsigned char *)e->g_lo;
    size_t len = e->g_hi - e->g_lo;
    unsigned char *live =
        mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (live == MAP_FAILED) {
        int err = errno;
        shim_say(2, "LRVM_GLOBALS: cannot allocate a copy of the globals: ", strerror(err), NULL);
        return err;
    }
    unsigned char *b = live + len;
    copy_pages(live, g, len, 1);
    /* B is read even when it holds no committed globals (valid == 0; then it is zeros): the
   * tracker's committed image must be the file's content in every case. The file is current:
   * recovery and rvm_map's truncation applied the log before we got here. */
    int fd = open(seg, O_RDONLY | O_CLOEXEC);
    int err = fd < 0 ? errno : read_sparse(fd, b, len, (off_t)off);
    if (fd >= 0)
        close(fd);
    if (err) {
        shim_say(2, "cannot read the globals from LRVM_SEGMENT=", seg, ": ", strerror(err), NULL);
        return err;
    }
    copy_excluded(b, live);
    if (mmap(g, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != g) {
        /* the caller stops the program (status 2) right after this message: a failed MAP_FIXED
     * may already have unmapped the old pages, so nothing of the program may run any more;
     * the segment is untouched */
        err = errno;
        shim_say(2, "LRVM_GLOBALS: cannot remap the globals: ", strerror(err), NULL);
        return err;
    }
    copy_pages(g, b, len, 1); /* only memory copies between the mmap and here: see above */
    rvm_init_region(&gregion);
    gregion.data_dev = (char *)seg;
    gregion.offset = RVM_MK_OFFSET(0, off);
    gregion.length = len;
    gregion.vmaddr = (char *)g;
    gregion.no_copy = rvm_true;
    rvm_return_t rc = rvm_map(&gregion, NULL);
    if (rc == RVM_SUCCESS)
        rc = rvm_track(&gregion);
    copy_pages(g, live, len, 0); /* fresh globals until main_hook (step 3) */
    if (rc != RVM_SUCCESS) {
        say_rvm("cannot map the globals from LRVM_SEGMENT (LRVM_GLOBALS=0 runs without them)", rc);
        return EIO;
    }
    munmap(live, len);
    saved_b = b;
    restore_valid = valid;
    tracked = 1;
    __atomic_store_n(&pending, 1, __ATOMIC_RELEASE);
    return 0;
}

/* globals_restore -- step 4, under restore_mu: shim_persist_commit checks pending under the
 * same lock, so no commit sees a half-restored image */
static void globals_restore(void)
{
    const struct shim_exe *e = &shim_exe;
    size_t len = e->g_hi - e->g_lo;
    pthread_mutex_lock(&restore_mu);
    if (restore_valid) {
        overlay((unsigned char *)e->g_lo, saved_b, len);
        shim_locks_restore_globals(e->g_lo, e->g_hi); /* held at the commit: released */
        shim_crash_arm(shim_persist_header());        /* a crash before our first commit */
    }
    __atomic_store_n(&pending, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&restore_mu);
    munmap(saved_b, len);
    saved_b = NULL;
    if (shim_commit_before_dtors())
        shim_say(2,
                 "LRVM_GLOBALS: cannot register the exit commit (atexit failed); the exit "
                 "commit runs after the static destructors",
                 NULL);
}

/* shim_globals_lock / unlock -- held by a commit around its pending check and rvm_commit */
void shim_globals_lock(void)
{
    pthread_mutex_lock(&restore_mu);
}

void shim_globals_unlock(void)
{
    pthread_mutex_unlock(&restore_mu);
}

typedef int (*main_fn)(int, char **, char **);
typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
                        void *);
static main_fn real_main;

/* main_hook -- runs where main would, after the executable's constructors */
static int main_hook(int argc, char **argv, char **envp)
{
    if (tracked && !shim_forked_child)
        globals_restore();
    return real_main(argc, argv, envp);
}

SHIM_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                                  void (*fini)(void), void (*rtld_fini)(void), void *stack_end);

/* __libc_start_main -- glibc's, with main replaced by main_hook when the globals are tracked.
 * glibc >= 2.34 passes init = fini = NULL and runs the constructors itself; they are passed on
 * untouched either way. */
int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end)
{
    start_fn real = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    if (!real) {
        shim_say(2, "cannot find glibc's __libc_start_main: ", dlerror(), NULL);
        _exit(127);
    }
    real_main = main;
    return real(tracked ? main_hook : main, argc, argv, init, fini, rtld_fini, stack_end);
}
