/* SPDX-License-Identifier: MIT */
/*
 * rvmutl_leaks.c -- `rvmutl leaks SEGMENT [LOG] [--all] [--reclaim [--yes]]`: the heap blocks
 * of a process-image segment (image_format.h) that nothing the program can find at its next
 * start points to, and, on request, their release in one commit.
 *
 * WHAT IS A LEAK HERE. A restarted program finds its data through its roots only: the
 * committed globals (when the segment keeps them), the heap's root pointer and the named
 * roots in the table it points to, and the objects of the held-lock table in the header page
 * (restore writes into those). The mark is conservative: every aligned 8-byte word of a root
 * or of a marked block whose value lies inside a live block (at its start or anywhere inside
 * it) marks that block, transitively. A block no chain of such words reaches is reported.
 * The mark cannot see pointers a program hides (stored xor'ed, tagged in high bits, as an
 * offset, in a file, or in memory outside the segment that it rebuilds at start): such a
 * block is reported although it is in use, which is why the default is a report only.
 *
 * READING. Without --reclaim nothing is written: the segment and its log are opened
 * read-only under shared locks (a running program holds them exclusively: refused with its
 * pid), the heap is mapped privately at its own address, and the log's records not yet
 * applied are laid over the bytes, so the heap examined is the last committed one.
 *
 * RECLAIMING (crash safety). --reclaim takes the segment's and the log's locks exclusively,
 * as the program does, and runs recovery (rvm_initialize, rvm_truncate: the file then holds
 * every committed byte). The heap is rvm_map'ed at its address and auto-tracked; the frees
 * change only tracked memory (allocation bits, span descriptors, the chunk table), and ONE
 * rvm_commit turns every change into ONE log record, synced before rvm_commit returns. A
 * process killed before that record is complete leaves a torn tail that recovery drops (none
 * of the frees); killed after it, recovery applies the whole record (all of them). The file
 * itself is written only by truncation, which applies committed records. Before the commit,
 * the header's log-pending mark is set directly in the file (as the program does at start),
 * so a segment whose log was emptied still says that its log holds a commit it lacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lrvm/lrvm.h>
#include <rvm/rvm.h>

#include "filecheck.h"
#include "heap.h"
#include "heap_format.h"
#include "image_format.h"
#include "loglock.h"
#include "rvmutl.h"
#include "sysio.h"

#define LEAKS_SHOWN 10 /* largest unreachable blocks listed without --all */

struct blk {
    uintptr_t p;
    size_t size;
    int marked;
};

/* struct leaks -- one run of the command */
struct leaks {
    const char *seg, *logp;
    int reclaim, yes, all, have_log;
    int fd, lfd;
    char hpage[IMG_HEADER_SIZE]; /* the header page: struct image_header + lock table */
    struct image_header *h;
    char *base;        /* the heap, mapped at its own address */
    size_t size;       /* its backed bytes */
    uint64_t *globals; /* the committed globals (NULL: none) */
    size_t nglobals;   /* words */
    struct heap *heap;
    struct blk *b;
    size_t nb, cap;
    size_t *stack;
    size_t nstack;
    rvm_region_t region;
};

/* say -- one error line on stderr */
#define say(...) (fprintf(stderr, "rvmutl: " __VA_ARGS__), fputc('\n', stderr))

/* lock_segment -- one writer per segment (the program holds it exclusively while it runs) */
static int lock_segment(struct leaks *run)
{
    pid_t pid;
    int e = loglock_flock(run->fd, run->reclaim ? LOCK_EX : LOCK_SH, &pid);
    if (e == 0)
        return 0;
    if (e != EWOULDBLOCK)
        say("cannot lock segment %s: %s", run->seg, strerror(e));
    else if (pid > 0)
        say("segment %s is in use by pid %ld: wait for the program to exit", run->seg, (long)pid);
    else
        say("segment %s is in use by another process, perhaps a child a program forked "
            "without exec: wait for it to exit",
            run->seg);
    return -1;
}

/* overlay -- lay the log's pending records for [off, off + len) over buf (report mode) */
static int overlay(struct leaks *run, uint64_t off, void *buf, size_t len)
{
    uint64_t n;
    if (run->reclaim || !run->have_log)
        return 0; /* reclaim: recovery has put every committed byte into the file */
    return utl_overlay_file(run->logp, run->seg, off, buf, len, &n);
}

/* read_at -- pread exactly len bytes (zeros past the end of the file); 0 or -1 */
static int read_at(struct leaks *run, void *buf, size_t len, uint64_t off)
{
    memset(buf, 0, len);
    for (size_t done = 0; done < len;) {
        ssize_t r = pread(run->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            say("cannot read segment %s: %s", run->seg, strerror(errno));
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return overlay(run, off, buf, len);
}

/* read_headers -- the image header page and the heap header, as last committed */
static int read_headers(struct leaks *run, struct heap_header *hh)
{
    run->h = (struct image_header *)run->hpage;
    if (read_at(run, run->hpage, sizeof(run->hpage), 0) != 0)
        return -1;
    struct image_header *h = run->h;
    if (memcmp(h->magic, IMG_MAGIC, 8) != 0 ||
        (h->version != IMG_FORMAT_VERSION && h->version != IMG_FORMAT_VERSION_V1)) {
        say("%s is not a process-image segment this rvmutl reads (`rvmutl image %s` says what "
            "it is)",
            run->seg, run->seg);
        return -1;
    }
    if (read_at(run, hh, sizeof(*hh), h->heap_off) != 0)
        return -1;
    if (memcmp(hh->magic, HEAP_MAGIC, 8) != 0 || hh->base != h->heap_base ||
        hh->size > h->heap_reserve || hh->size % HEAP_CHUNK != 0) {
        say("segment %s: no valid heap header at offset %llu (a damaged segment?)", run->seg,
            (unsigned long long)h->heap_off);
        return -1;
    }
    run->size = hh->size;
    return 0;
}

/* reserve_heap -- claim the heap's addresses in this process (they must be free) */
static int reserve_heap(struct leaks *run, int fd_or_anon)
{
    int anon = fd_or_anon < 0;
    void *want = (void *)(uintptr_t)run->h->heap_base;
    void *p = mmap(want, run->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_FIXED_NOREPLACE | (anon ? MAP_ANONYMOUS : 0),
                   anon ? -1 : fd_or_anon, anon ? 0 : (off_t)run->h->heap_off);
    if (p == MAP_FAILED || p != want) {
        say("segment %s: cannot map its heap at its address %p (%s)", run->seg, want,
            p == MAP_FAILED ? strerror(errno) : "the address is taken in this process");
        return -1;
    }
    run->base = p;
    return 0;
}

/* open_report -- read-only: the heap is a private mapping of the file with the log's pending
 * records laid over it; nothing reaches the files */
static int open_report(struct leaks *run, struct heap_header *hh)
{
    if (run->have_log) {
        char why[1024];
        run->lfd = filecheck_open(run->logp, O_RDONLY, 0, "log", why, sizeof(why));
        if (run->lfd < 0 || loglock_take(run->lfd, run->logp, 0, why, sizeof(why)) != 0) {
            say("%s", why[0] ? why : strerror(errno));
            return -1;
        }
    }
    if (read_headers(run, hh) != 0)
        return -1;
    if (run->h->log_pending && !run->have_log) {
        say("segment %s: its log %s is missing but holds commits the file may lack: restore it, "
            "or accept the file with `rvmutl forget-log %s`",
            run->seg, run->logp, run->seg);
        return -1;
    }
    if (reserve_heap(run, run->fd) != 0)
        return -1;
    return overlay(run, run->h->heap_off, run->base, run->size);
}

/* open_reclaim -- recover, then map and track the heap: its changes are committed through
 * the log (see the file comment) */
static int open_reclaim(struct leaks *run, struct heap_header *hh)
{
    if (!run->have_log) {
        say("segment %s: no log at %s; --reclaim commits through the segment's log (give it as "
            "LOG, or run the program once to create it)",
            run->seg, run->logp);
        return -1;
    }
    rvm_options_t *o = rvm_malloc_options();
    o->log_dev = (char *)run->logp;
    o->truncate = 0;
    o->flags |= filecheck_shared_group ? RVM_SHARED_GROUP : 0;
    rvm_return_t rc = rvm_initialize(RVM_VERSION, o);
    rvm_free_options(o);
    if (rc == RVM_SUCCESS)
        rc = rvm_truncate(); /* every committed byte into the file before it is read */
    if (rc != RVM_SUCCESS) {
        say("cannot recover log %s: %s: %s", run->logp, rvm_return(rc), rvm_errmsg);
        return -1;
    }
    if (read_headers(run, hh) != 0 || reserve_heap(run, -1) != 0)
        return -1;
    rvm_init_region(&run->region);
    run->region.data_dev = (char *)run->seg;
    run->region.offset = RVM_MK_OFFSET(0, run->h->heap_off);
    run->region.length = run->size;
    run->region.vmaddr = run->base;
    rc = rvm_map(&run->region, NULL);
    if (rc == RVM_SUCCESS)
        rc = rvm_track(&run->region);
    if (rc != RVM_SUCCESS) {
        say("cannot map the heap of %s for a commit: %s: %s", run->seg, rvm_return(rc), rvm_errmsg);
        return -1;
    }
    return 0;
}

/* the heap's backing in this process: fixed size, nothing released (memory stays as is) */
static int backing_grow(void *ctx, size_t n)
{
    (void)ctx;
    (void)n;
    return ENOMEM;
}
static int backing_release(void *ctx, size_t off, size_t len)
{
    (void)ctx;
    (void)off;
    (void)len;
    return 0;
}
static size_t backing_size(void *ctx)
{
    return ((struct leaks *)ctx)->size;
}

static void heap_say(void *arg, const char *msg)
{
    say("segment %s: heap: %s", ((struct leaks *)arg)->seg, msg);
}

/* open_heap -- open the mapped heap (checked whole: the mark trusts its metadata) */
static int open_heap(struct leaks *run)
{
    static struct heap_backing backing = {
        .grow = backing_grow, .release = backing_release, .size = backing_size};
    backing.ctx = run;
    struct heap_opts ho;
    heap_opts_init(&ho);
    ho.report = heap_say;
    ho.report_arg = run;
    int rc = heap_open(&run->heap, run->base, &backing, &ho);
    if (rc != 0) {
        say("cannot open the heap of %s: %s (`rvmutl image %s` shows its header)", run->seg,
            heap_strerror(rc), run->seg);
        return -1;
    }
    return 0;
}

/* read_globals -- the committed globals, the main root (none in a heap-only segment) */
static int read_globals(struct leaks *run)
{
    struct image_header *h = run->h;
    if (!(h->flags & IMG_F_GLOBALS) || h->globals_len == 0)
        return 0;
    if (!(h->flags & IMG_F_GLOBALS_VALID)) {
        if (run->reclaim) {
            say("segment %s: its globals were never committed, so what they point to is unknown: "
                "nothing is reclaimed",
                run->seg);
            return -1;
        }
        return 0;
    }
    run->nglobals = h->globals_len / 8;
    run->globals = malloc(h->globals_len);
    if (run->globals == NULL) {
        say("out of memory for the globals (%llu bytes)", (unsigned long long)h->globals_len);
        return -1;
    }
    return read_at(run, run->globals, h->globals_len, h->globals_off);
}

/* collect -- heap_walk's callback: the live blocks, in address order */
static int collect(void *arg, void *block, size_t size)
{
    struct leaks *run = arg;
    if (run->nb == run->cap) {
        size_t cap = run->cap ? 2 * run->cap : 1024;
        struct blk *b = realloc(run->b, cap * sizeof(*b));
        if (b == NULL)
            return ENOMEM;
        run->b = b;
        run->cap = cap;
    }
    run->b[run->nb++] = (struct blk){.p = (uintptr_t)block, .size = size, .marked = 0};
    return 0;
}

/* find -- the live block holding address v, or SIZE_MAX */
static size_t find(const struct leaks *run, uint64_t v)
{
    if (v < (uintptr_t)run->base || v >= (uintptr_t)run->base + run->size)
        return SIZE_MAX;
    size_t lo = 0, hi = run->nb; /* first block starting above v */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (run->b[mid].p <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || v >= run->b[lo - 1].p + run->b[lo - 1].size)
        return SIZE_MAX;
    return lo - 1;
}

/* mark_value -- v marks the block it points into (pushed once onto the stack) */
static void mark_value(struct leaks *run, uint64_t v)
{
    size_t i = find(run, v);
    if (i == SIZE_MAX || run->b[i].marked)
        return;
    run->b[i].marked = 1;
    run->stack[run->nstack++] = i; /* at most nb pushes: each block is marked once */
}

/* mark_words -- every aligned word of [p, p + n) */
static void mark_words(struct leaks *run, const uint64_t *w, size_t nwords)
{
    for (size_t i = 0; i < nwords; i++)
        mark_value(run, w[i]);
}

/* mark -- from the roots (file comment), transitively through the marked blocks */
static int mark(struct leaks *run)
{
    run->stack = malloc((run->nb ? run->nb : 1) * sizeof(*run->stack));
    if (run->stack == NULL)
        return -1;
    if (run->globals)
        mark_words(run, run->globals, run->nglobals);
    mark_value(run, (uintptr_t)heap_get_root(run->heap));
    /* the held-lock table: object addresses, low bit set for a condition variable */
    const uint64_t *locks = (const uint64_t *)(run->hpage + IMG_LOCK_OFF);
    for (size_t i = 0; i < (IMG_HEADER_SIZE - IMG_LOCK_OFF) / 8; i++)
        mark_value(run, locks[i] & ~(uint64_t)1);
    while (run->nstack > 0) {
        const struct blk *b = &run->b[run->stack[--run->nstack]];
        mark_words(run, (const uint64_t *)b->p, b->size / 8);
    }
    return 0;
}

/* by_size -- largest first, then by address */
static int by_size(const void *a, const void *b)
{
    const struct blk *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->p < y->p ? -1 : x->p > y->p;
}

/* report -- the unreachable blocks: count, bytes, the largest (all with --all) */
static size_t report(struct leaks *run, size_t *bytes, struct blk **lost)
{
    size_t n = 0, live_bytes = 0;
    *bytes = 0;
    *lost = malloc((run->nb ? run->nb : 1) * sizeof(**lost));
    if (*lost == NULL)
        return SIZE_MAX;
    for (size_t i = 0; i < run->nb; i++) {
        live_bytes += run->b[i].size;
        if (!run->b[i].marked) {
            (*lost)[n++] = run->b[i];
            *bytes += run->b[i].size;
        }
    }
    const struct image_header *h = run->h;
    int globals = (h->flags & IMG_F_GLOBALS_VALID) && run->globals != NULL;
    printf("segment %s: %zu live heap blocks, %zu bytes; roots: %s, the named roots, the "
           "held-lock table\n",
           run->seg, run->nb, live_bytes,
           globals                      ? "the committed globals"
           : (h->flags & IMG_F_GLOBALS) ? "no globals (never committed)"
                                        : "no globals (heap-only segment)");
    printf("unreachable: %zu blocks, %zu bytes\n", n, *bytes);
    qsort(*lost, n, sizeof(**lost), by_size);
    size_t show = run->all ? n : (n < LEAKS_SHOWN ? n : LEAKS_SHOWN);
    if (show > 0)
        printf("  %s (address: allocation size in bytes):\n",
               show < n ? "the largest" : "the blocks");
    for (size_t i = 0; i < show; i++)
        printf("    %#llx: %zu\n", (unsigned long long)(*lost)[i].p, (*lost)[i].size);
    if (show < n)
        printf("    ... and %zu more (--all lists every one)\n", n - show);
    if (n > 0)
        printf("note: the search is conservative but cannot see hidden pointers (stored xor'ed, "
               "tagged, as offsets, or kept outside the segment): a block found only through "
               "such a pointer is listed although the program uses it.%s\n",
               run->reclaim ? "" : " Nothing was changed; --reclaim frees these blocks.");
    return n;
}

/* confirm -- the user agrees to free n blocks (--yes: always) */
static int confirm(struct leaks *run, size_t n, size_t bytes)
{
    if (run->yes)
        return 1;
    printf("free these %zu blocks (%zu bytes) of %s in one commit? [y/N] ", n, bytes, run->seg);
    fflush(stdout);
    char line[32];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return 0;
    return line[0] == 'y' || line[0] == 'Y';
}

/* set_log_pending -- the file says its log holds a commit it lacks, before the commit exists
 * (image_format.h, LOG PENDING): a direct write, synced */
static int set_log_pending(struct leaks *run)
{
    uint32_t v = 1;
    off_t at = (off_t)offsetof(struct image_header, log_pending);
    if (pwrite(run->fd, &v, sizeof(v), at) != (ssize_t)sizeof(v) || fdatasync(run->fd) != 0) {
        say("cannot write the header of segment %s: %s", run->seg, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Crash test hook. LRVM_TEST_LEAKS_KILL_WRITE=N makes the Nth write that core issues during
 * the reclaim commit write only the first half of its bytes and then SIGKILL this process:
 * a torn log record (or torn end marker or status block) at a chosen point, which the tests
 * use to check that recovery then applies all of the frees or none. Unset in normal use.
 */
static long kill_write_at, kill_writes;

static ssize_t kill_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    if (++kill_writes == kill_write_at) {
        ssize_t w = sysio_default.pwrite(fd, buf, count / 2, offset);
        (void)w;
        raise(SIGKILL);
    }
    return sysio_default.pwrite(fd, buf, count, offset);
}

static void kill_hook_arm(void)
{
    const char *v = getenv("LRVM_TEST_LEAKS_KILL_WRITE");
    if (v != NULL && (kill_write_at = strtol(v, NULL, 10)) > 0)
        sysio.pwrite = kill_pwrite;
}

/* reclaim -- free the n blocks of lost and commit them as one record (file comment) */
static int reclaim(struct leaks *run, const struct blk *lost, size_t n, size_t bytes)
{
    if (set_log_pending(run) != 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (heap_free(run->heap, (void *)lost[i].p) != 0) {
            /* nothing is committed: the process exits and the log has no record of these frees */
            say("segment %s: freeing the block at %#llx failed; nothing was freed", run->seg,
                (unsigned long long)lost[i].p);
            return 1;
        }
    /* the blocks now sit in this thread's cache, FREE in the persistent bits (heap.h): the
   * commit captures them as free whatever the cache does afterwards */
    kill_hook_arm();
    rvm_return_t rc = rvm_commit();
    if (rc != RVM_SUCCESS) {
        say("commit to log %s failed: %s: %s; nothing was freed", run->logp, rvm_return(rc),
            rvm_errmsg);
        return 1;
    }
    printf("reclaimed: %zu blocks, %zu bytes freed in one commit (in log %s; applied to the "
           "segment by the program's next start or `rvmutl recover %s`)\n",
           n, bytes, run->logp, run->logp);
    return 0;
}

/* leaks_usage_error -- exit status 2 after a message */
static int leaks_usage_error(const char *what)
{
    say("leaks: %s; usage: rvmutl leaks SEGMENT [LOG] [--all] [--reclaim [--yes]]", what);
    return 2;
}

int cmd_leaks(int argc, char **argv)
{
    static struct leaks run;
    memset(&run, 0, sizeof(run));
    run.fd = run.lfd = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--reclaim"))
            run.reclaim = 1;
        else if (!strcmp(argv[i], "--yes"))
            run.yes = 1;
        else if (!strcmp(argv[i], "--all"))
            run.all = 1;
        else if (argv[i][0] == '-')
            return leaks_usage_error("unknown option");
        else if (!run.seg)
            run.seg = argv[i];
        else if (!run.logp)
            run.logp = argv[i];
        else
            return leaks_usage_error("too many arguments");
    }
    if (!run.seg)
        return leaks_usage_error("no SEGMENT");
    char deflog[4096];
    if (!run.logp) {
        snprintf(deflog, sizeof(deflog), "%s.log", run.seg);
        run.logp = deflog;
    }
    run.have_log = access(run.logp, F_OK) == 0;
    char why[1024];
    run.fd =
        filecheck_open(run.seg, run.reclaim ? O_RDWR : O_RDONLY, 0, "segment", why, sizeof(why));
    if (run.fd < 0) {
        say("%s", why[0] ? why : strerror(errno));
        return 1;
    }
    struct heap_header hh;
    if (lock_segment(&run) != 0 ||
        (run.reclaim ? open_reclaim(&run, &hh) : open_report(&run, &hh)) != 0 ||
        open_heap(&run) != 0 || read_globals(&run) != 0)
        return 1;
    int wrc = heap_walk(run.heap, collect, &run);
    if (wrc != 0 || mark(&run) != 0) {
        say("segment %s: %s", run.seg, wrc ? heap_strerror(wrc) : "out of memory");
        return 1;
    }
    size_t bytes;
    struct blk *lost;
    size_t n = report(&run, &bytes, &lost);
    if (n == SIZE_MAX)
        return 1;
    if (!run.reclaim || n == 0)
        return 0;
    if (!confirm(&run, n, bytes)) {
        printf("nothing freed\n");
        return 1;
    }
    int rc = reclaim(&run, lost, n, bytes);
    rvm_return_t trc = rvm_terminate();
    if (rc == 0 && trc != RVM_SUCCESS) {
        say("closing log %s: %s: %s (the commit is durable)", run.logp, rvm_return(trc),
            rvm_errmsg);
    }
    return rc;
}
