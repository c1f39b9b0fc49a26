/* SPDX-License-Identifier: MIT */
/*
 * restorable.c -- the restorability verdict of a commit (image_format.h, RESTORABILITY
 * VERDICT): do the committed globals point at memory that will not come back at a restart?
 *
 * Why: restored globals are only worth restoring if what they point to is restored with them.
 * The heap is (same addresses, same commit), the executable's own image is (same load base,
 * checked at open), a shared library's code and constants are (same file, randomisation off).
 * Everything else is this process's and dies with it: an interpreter's own mmap'ed arenas,
 * the stack, thread-local storage, the program break, a library's writable data, files mapped
 * by the program, lrvm's own volatile memory. A global holding such an address makes the next
 * run crash (python3's allocator) or, worse, act on garbage (vim wrote a file from it). The
 * verdict turns that into a refusal before main with the global's name (shim_restore_refuse).
 *
 * WHEN: every commit that carries the globals, from shim_persist_commit with the heap locked
 * (heap_lock_all: block boundaries cannot move while we walk them), before the tracker stops
 * the other threads, and its result is written into the header page, which is part of the
 * same commit. Another thread may store a bad pointer between the scan and the commit's
 * instant: the next commit sees it, and a crash in between is what the crash note
 * (crashnote.c) is for.
 *
 * WHAT IS SCANNED: every aligned word of the globals (minus the excluded bytes, exe.c: they are
 * never restored), then, depth first, the heap blocks those words point to (block starts only)
 * and the blocks those point to, up to SCAN_BUDGET bytes of heap per commit: a commit's cost
 * must not grow with a large heap. The scan stops at the first bad value: one reason is
 * enough to refuse.
 *
 * HOW OFTEN THE HEAP IS WALKED IN FULL: the walk's budget is also a rate. A full walk costs
 * 1-2 ms (a lookup of the block behind every pointer-like word, mostly cache misses): 2 % of
 * a 100 ms interval, but the whole of a 1 ms commit, whose rate it then halves. So the budget
 * comes back at SCAN_BUDGET per SCAN_REFILL_NS (a token bucket holding at most SCAN_BUDGET):
 * commits 50 ms or more apart walk the full budget each, commits every millisecond walk
 * SCAN_FLOOR each (the blocks the globals point to directly, at least), and the exit commit
 * always walks the full budget. Frequent commits thus judge less of the heap per commit,
 * never less of it per second than commits 50 ms apart would.
 *
 * No allocation (the heap is locked by this thread): the mapping table, the work list and the
 * visited set live in memory mapped here once.
 */
#include "shim.h"
#include "preload_api.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* /proc/self/maps text, at most: with LRVM_TRACK=mprotect every dirty heap page can be a
 * mapping of its own (~65 000 lines, ~6 MiB); reserved, not touched beyond what is read */
#define MAPS_BUF (16u << 20)
#define MAX_MAPS 8192u /* mappings kept (a process rarely has more) */
/* heap bytes walked per commit, at most. Measured, 64 MiB of pointer-filled blocks reachable
 * from the globals: a 1 MiB walk took 1.8-18 ms (up to a third of that commit's pause), a
 * 256 KiB walk 0.9-1.6 ms (~2%) */
#define SCAN_BUDGET SHIM_SCAN_BUDGET
#define SCAN_REFILL_NS 50000000ull    /* the walk budget comes back in full in 50 ms */
#define SCAN_FLOOR ((size_t)16 << 10) /* heap bytes every commit may walk, at least */
#define WORK_MAX 65536u               /* pending heap addresses */
#define SEEN_SLOTS (1u << 17) /* visited addresses (open addressing, filled to half at most) */
#define LOWEST_ADDR 0x10000u  /* below: small integers, never a mapping */
/* at or above: no user-space address (x86_64, 4-level paging), never followed nor judged. The
 * heap's mark in the top byte of a block's short last word (heap_opts.clean_bytes) relies on
 * it: six random bytes of the program's plus that byte cannot read as an address */
#define USER_TOP ((uint64_t)1 << 47)

struct map_ent {
    uintptr_t lo, hi;
    uint32_t kind; /* enum img_restore_kind; IMG_RK_RESTORABLE = comes back */
    uint32_t name; /* offset of its name in maps_text, 0 = anonymous */
};

struct work {
    uintptr_t block, origin; /* a heap address to scan if a block starts there; the global its
                              * path started from */
};

static char *maps_text;      /* MAPS_BUF bytes: the file, names NUL terminated in place */
static struct map_ent *maps; /* MAX_MAPS entries, sorted (the kernel lists them in order) */
static size_t nmaps;
static struct work *work;
static uintptr_t *seen;
static uint32_t *seen_used; /* the slots of seen in use (SEEN_SLOTS / 2 at most) */
static size_t nseen;
static uintptr_t main_tp;              /* the main thread's thread pointer (TLS) */
static unsigned char *resident;        /* mincore vector of the globals, one byte per page */
static char self_path[IMG_TARGET_MAX]; /* this library's file */

static uint64_t n_scans, scan_ns_total, scan_ns_max, heap_bytes_total; /* LRVM_STATS */
static uint64_t walk_tokens = SCAN_BUDGET, walk_tokens_ns; /* HOW OFTEN... (file comment) */

/* struct finding -- the first bad value of a scan */
struct finding {
    uint32_t kind;
    uintptr_t at, value, origin;
    const struct map_ent *m;
};

/* shim_restore_setup -- before main, on the main thread: its thread pointer (the TLS kind) and
 * the scratch memory; 0 or ENOMEM (then commits record no verdict: a message says so once) */
int shim_restore_setup(void)
{
    main_tp = (uintptr_t)pthread_self();
    size_t gpages = (shim_exe.g_hi - shim_exe.g_lo) / 4096;
    size_t bytes = MAPS_BUF + MAX_MAPS * sizeof(struct map_ent) + WORK_MAX * sizeof(struct work) +
                   SEEN_SLOTS * sizeof(uintptr_t) + SEEN_SLOTS / 2 * sizeof(uint32_t) + gpages;
    /* MAP_NORESERVE, untouched until a commit: costs address space only */
    char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED)
        return ENOMEM;
    maps_text = m;
    maps = (struct map_ent *)(m + MAPS_BUF);
    work = (struct work *)(maps + MAX_MAPS);
    seen = (uintptr_t *)(work + WORK_MAX);
    seen_used = (uint32_t *)(seen + SEEN_SLOTS);
    resident = (unsigned char *)(seen_used + SEEN_SLOTS / 2);
    return 0;
}

/* read_maps_text -- /proc/self/maps into maps_text (NUL terminated); bytes read or -1 */
static ssize_t read_maps_text(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, maps_text + n, MAPS_BUF - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    maps_text[n] = 0;
    return (ssize_t)n;
}

/* hex -- parse hex digits at *s, advance */
static uintptr_t hex(char **s)
{
    uintptr_t v = 0;
    for (;; (*s)++) {
        char c = **s;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return v;
        v = v << 4 | (uintptr_t)d;
    }
}

/* is_object -- a file the dynamic linker loads (code and constants come back at the same
 * address with randomisation off): the executable, a shared library */
static int is_object(const char *name)
{
    return strcmp(name, shim_exe.path) == 0 || strstr(name, ".so") != NULL;
}

/* kind_of -- what a mapping is for a pointer into it; prev: the mapping before it */
static uint32_t kind_of(const struct map_ent *m, const char *name, int writable,
                        const struct map_ent *prev)
{
    const struct shim_exe *e = &shim_exe;
    if (m->lo >= e->g_lo && m->hi <= e->g_hi)
        return IMG_RK_RESTORABLE; /* the globals (anonymous since globals.c) */
    if (!*name) {
        /* a library's .bss beyond its file: the anonymous mapping right after its data */
        if (prev && prev->hi == m->lo && prev->kind == IMG_RK_LIBDATA)
            return IMG_RK_LIBDATA;
        return m->lo <= main_tp && main_tp < m->hi ? IMG_RK_TLS : IMG_RK_ANON;
    }
    if (strcmp(name, "[stack]") == 0)
        return IMG_RK_STACK;
    if (strcmp(name, "[heap]") == 0)
        return IMG_RK_BRK;
    if (name[0] == '[')
        return IMG_RK_KERNEL;
    if (strcmp(name, self_path) == 0) /* lrvm's code and constants come back like a library's */
        return writable ? IMG_RK_INTERNAL : IMG_RK_RESTORABLE;
    if (strcmp(name, e->path) == 0)
        return IMG_RK_RESTORABLE; /* the executable: same base, same file */
    if (m->lo <= main_tp && main_tp < m->hi)
        return IMG_RK_TLS;
    if (writable)
        return is_object(name) ? IMG_RK_LIBDATA : IMG_RK_FILE;
    return is_object(name) ? IMG_RK_RESTORABLE : IMG_RK_FILE;
}

/* load_maps -- parse /proc/self/maps into maps[]; 0 or -1 */
static int load_maps(void)
{
    ssize_t n = read_maps_text();
    if (n <= 0)
        return -1;
    nmaps = 0;
    for (char *s = maps_text; *s && nmaps < MAX_MAPS;) {
        char *eol = strchr(s, '\n');
        if (eol)
            *eol = 0;
        struct map_ent *m = &maps[nmaps];
        m->lo = hex(&s);
        s++; /* '-' */
        m->hi = hex(&s);
        int writable = s[2] == 'w';
        /* perms offset dev inode: four fields, then spaces, then the name (may be absent) */
        for (int f = 0; f < 4 && *s; f++) {
            while (*s == ' ')
                s++;
            while (*s && *s != ' ')
                s++;
        }
        while (*s == ' ')
            s++;
        m->name = (uint32_t)(s - maps_text);
        if (!self_path[0] && m->lo <= shim_self_lo && shim_self_lo < m->hi && *s)
            snprintf(self_path, sizeof(self_path), "%s", s);
        m->kind = kind_of(m, s, writable, nmaps ? &maps[nmaps - 1] : NULL);
        /* the heap's mappings are judged by the heap itself (judge_word), never looked up here:
     * not kept, so that the split mappings of the mprotect backend cannot crowd out the rest */
        if (!(m->lo >= shim_opts.heap_base && m->hi <= shim_opts.heap_base + shim_opts.heap_size))
            nmaps++;
        if (!eol)
            break;
        s = eol + 1;
    }
    return 0;
}

/* find_map -- the mapping holding v, or NULL (binary search) */
static const struct map_ent *find_map(uintptr_t v)
{
    size_t lo = 0, hi = nmaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v < maps[mid].lo)
            hi = mid;
        else if (v >= maps[mid].hi)
            lo = mid + 1;
        else
            return &maps[mid];
    }
    return NULL;
}

/* seen_add -- 1 if addr was not visited yet (now it is), 0 if it was or the set is half full
 * (then the walk stops following pointers: a budget of 256 KiB visits at most 16 Ki blocks, so
 * only a walk through that many interior pointers gets there). At most half full, a probe
 * sequence stays short; only the slots filled are cleared for the next scan (seen_clear). */
static int seen_add(uintptr_t addr)
{
    if (nseen >= SEEN_SLOTS / 2)
        return 0;
    size_t i = (size_t)((addr >> 4) * 0x9e3779b97f4a7c15u >> 47) & (SEEN_SLOTS - 1);
    for (;; i = (i + 1) & (SEEN_SLOTS - 1)) {
        if (seen[i] == addr)
            return 0;
        if (seen[i] == 0) {
            seen[i] = addr;
            seen_used[nseen++] = (uint32_t)i;
            return 1;
        }
    }
}

/* seen_clear -- the visited set empty again */
static void seen_clear(void)
{
    for (size_t k = 0; k < nseen; k++)
        seen[seen_used[k]] = 0;
    nseen = 0;
}

/* std_stream -- v points into stdin, stdout or stderr's FILE: libc's own objects, at the same
 * address in every process (randomisation off), so a global holding one (FILE *out = stdout)
 * is restorable */
static int std_stream(uintptr_t v)
{
    const FILE *const s[3] = {stdin, stdout, stderr};
    for (int i = 0; i < 3; i++)
        if (v >= (uintptr_t)s[i] && v < (uintptr_t)s[i] + sizeof(FILE))
            return 1;
    return 0;
}

/* listed_lock -- at lies inside a mutex or condition variable of the held-lock table: its
 * internal words (a robust mutex's list links point into its owner's thread descriptor) are
 * put back in the released state when the image is restored, never used as they are */
static int listed_lock(const struct image_header *img, uintptr_t at)
{
    const uint64_t *t = (const uint64_t *)((const char *)img + IMG_LOCK_OFF);
    const size_t words = IMG_LOCK_ROW_SIZE / sizeof(uint64_t);
    for (size_t r = 1; r < IMG_LOCK_ROWS; r++) {
        const uint64_t *row = t + r * words;
        if (!row[0])
            continue;
        for (size_t i = 1; i <= IMG_LOCK_ROW_ENTRIES; i++) {
            uintptr_t o = (uintptr_t)(row[i] & ~(uint64_t)1);
            size_t n = (row[i] & 1) ? sizeof(pthread_cond_t) : sizeof(pthread_mutex_t);
            if (o && at >= o && at < o + n)
                return 1;
        }
    }
    return 0;
}

/* struct scan -- one commit's walk */
struct scan {
    const struct image_header *img; /* its held-lock table (lockset.c) */
    int final;                      /* the exit commit: dangling heap pointers count */
    uintptr_t heap_lo, heap_hi;
    size_t nwork, budget;
    struct finding f;
};

/* internal_block -- v, inside the internal heap's reservation, points into a block that heap has
 * handed out. Only a live
 * block counts, not the heap's whole reservation: that is 64 GiB of address space, and a word
 * of the program's own data that merely falls in it (uniformly random bytes do, about one word
 * in 2^28, so a walk of 256 KiB now and then) is an integer, not a pointer to lrvm's memory.
 * Judged a pointer (into lrvm's memory, or into an anonymous mapping, which the reservation
 * also is), it made a good segment unrestorable for good. No lock of the internal heap
 * is taken (other threads of lrvm may allocate meanwhile): a block that changes state during
 * the probe is judged either way, as a racing store would be. */
static int internal_block(uintptr_t v)
{
    int state = heap_block_state(shim_internal_heap, (void *)v);
    return state == HEAP_BS_START || state == HEAP_BS_INTERIOR;
}

/* judge_word -- v, found at `at` on a path from global `origin`: bad (recorded, returns 1),
 * a heap block to visit (queued), or harmless */
static int judge_word(struct scan *sc, uintptr_t v, uintptr_t at, uintptr_t origin)
{
    if (v < LOWEST_ADDR || v >= USER_TOP)
        return 0;
    uint32_t kind;
    const struct map_ent *m = NULL;
    if (v >= sc->heap_lo && v < sc->heap_hi) {
        /* A pointer to free memory counts at the exit commit only: there it is how the program
         * ends (git leaves one), while a signal or interval commit may catch `free(p); p = q;`
         * between its two steps, or a block taken from a thread cache just before its bit is
         * set (malloc's fast path takes no heap lock): a refusal for that instant would
         * outlive it. A real dangling pointer there is left to the crash note.
         * Only a GLOBAL holding such a pointer counts: a word found by the walk through heap
         * blocks may be stale bytes past what the program asks for now (what it wrote there
         * before a realloc shrank the block in place, or, in a block allocated before the
         * heap handed out clean blocks, an old pointer left by the block's previous owner),
         * which is no dangling pointer of the program's. */
        int in_heap = at >= sc->heap_lo && at < sc->heap_hi;
        if (in_heap || !sc->final) {
            /* only to be followed: the block is looked up when the walk takes it from the
             * work list (scan_heap), so the many pointers a spent budget never reaches (a
             * large array of them) cost no lookup, which is mostly cache misses */
            if (sc->nwork < WORK_MAX)
                work[sc->nwork++] = (struct work){v, origin};
            return 0;
        }
        int state = heap_block_state(shim_heap, (void *)v);
        if (state == HEAP_BS_START && sc->nwork < WORK_MAX)
            work[sc->nwork++] = (struct work){v, origin};
        if (state != HEAP_BS_FREE)
            return 0; /* live (interior pointers are not followed) */
        kind = IMG_RK_FREED;
    } else if (std_stream(v)) {
        return 0;
    } else if (track_owns((void *)v) || heap_owns_private(shim_heap, (void *)v) ||
               (shim_internal_heap && heap_owns_private(shim_internal_heap, (void *)v))) {
        /* lrvm's own bookkeeping: the tracker's twin and snapshot slots (twice the heap's
         * reservation: the largest mapping of the process, 32 GiB by default, so random data
         * of the program's lands there before anywhere else) and the heaps' page tables. The
         * program is never handed a pointer into them: the word is an integer. */
        return 0;
    } else if (shim_internal_heap && heap_owns(shim_internal_heap, (void *)v)) {
        if (!internal_block(v))
            return 0; /* inside the reservation, in no block: an integer (internal_block) */
        kind = IMG_RK_INTERNAL;
    } else if (boot_owns((void *)v))
        kind = IMG_RK_INTERNAL;
    else if ((m = find_map(v)) == NULL)
        return 0; /* unmapped: an integer, or a dangling pointer nobody may follow */
    else
        kind = m->kind;
    if (kind == IMG_RK_RESTORABLE || listed_lock(sc->img, at))
        return 0;
    sc->f = (struct finding){kind, at, v, origin, m};
    return 1;
}

/* small_words -- every word of the 4 KiB page-aligned p is below LOWEST_ADDR (a zero page: a
 * large untouched .bss is mostly that). One OR-reduction the compiler vectorises: ~30x faster
 * than judging 512 words (a 256 MiB .bss: 0.2-0.5 s per commit before). */
static int small_words(const uintptr_t *p)
{
    uintptr_t acc = 0;
    for (size_t i = 0; i < 4096 / sizeof(*p); i++)
        acc |= p[i];
    return acc < LOWEST_ADDR;
}

/* scan_words -- judge the aligned words of [lo, hi) */
static int scan_words(struct scan *sc, uintptr_t lo, uintptr_t hi, int is_global)
{
    for (uintptr_t a = (lo + 7) & ~(uintptr_t)7; a + 8 <= hi;) {
        if ((a & 4095) == 0 && a + 4096 <= hi && small_words((const uintptr_t *)a)) {
            a += 4096;
            continue;
        }
        if (judge_word(sc, *(const uintptr_t *)a, a, is_global ? a : sc->f.origin))
            return 1;
        a += 8;
    }
    return 0;
}

/* scan_heap -- the queued heap addresses that are block starts, each block once, depth first,
 * within the budget */
static int scan_heap(struct scan *sc)
{
    while (sc->nwork > 0 && sc->budget > 0) {
        struct work w = work[--sc->nwork];
        if (!seen_add(w.block) || heap_block_state(shim_heap, (void *)w.block) != HEAP_BS_START)
            continue;
        size_t n = heap_usable_size(shim_heap, (void *)w.block);
        if (n > sc->budget)
            n = sc->budget;
        sc->budget -= n;
        sc->f.origin = w.origin;
        if (scan_words(sc, w.block, w.block + n, 0))
            return 1;
    }
    return 0;
}

/* scan_resident -- scan_words over the pages of [lo, hi) that are resident. A page of the
 * globals' anonymous mapping that was never touched is not, and reads as zeros: reading it
 * would only fault the zero page in (65 536 faults for a 256 MiB .bss: ~0.1-0.2 s per commit).
 * A page swapped out is skipped too: a value there is missed (the crash note is the net). */
static int scan_resident(struct scan *sc, uintptr_t lo, uintptr_t hi)
{
    const struct shim_exe *e = &shim_exe;
    while (lo < hi) {
        uintptr_t page_end = (lo | 4095) + 1, end = page_end < hi ? page_end : hi;
        if (resident[(lo - e->g_lo) / 4096] & 1) {
            if (scan_words(sc, lo, end, 1))
                return 1;
        }
        lo = end;
    }
    return 0;
}

/* scan_globals -- the globals minus the excluded bytes, then the heap they reach */
static int scan_globals(struct scan *sc)
{
    const struct shim_exe *e = &shim_exe;
    if (mincore((void *)e->g_lo, e->g_hi - e->g_lo, resident) != 0)
        memset(resident, 1, (e->g_hi - e->g_lo) / 4096); /* unknown: scan everything */
    uintptr_t at = e->g_lo;
    for (size_t i = 0; i <= e->nexcl; i++) {
        uintptr_t end = i < e->nexcl ? e->excl[i].lo : e->g_hi;
        if (at < end && scan_resident(sc, at, end))
            return 1;
        if (i < e->nexcl)
            at = e->excl[i].hi;
    }
    return scan_heap(sc);
}

/* shim_restore_clear -- no verdict (restorable) */
void shim_restore_clear(struct image_header *h)
{
    h->restore_kind = IMG_RK_RESTORABLE;
    h->restore_addr = h->restore_value = h->restore_sym_off = 0;
    memset(h->restore_sym, 0, sizeof(h->restore_sym));
    memset(h->restore_target, 0, sizeof(h->restore_target));
}

/* record -- the finding into the header (which the coming commit carries) */
static void record(struct image_header *h, const struct finding *f)
{
    /* the same value in the same place as at the last commit (an interval commit of a program
   * that is not restorable): the verdict stands, no symbol lookup */
    if (h->restore_kind == f->kind && h->restore_addr == f->at && h->restore_value == f->value)
        return;
    /* write only what changes: an unchanged verdict must not dirty the header page's bytes */
    struct image_header v;
    memcpy(&v, h, sizeof(v));
    shim_restore_clear(&v);
    v.restore_kind = f->kind;
    v.restore_addr = f->at;
    v.restore_value = f->value;
    uint64_t off = 0;
    shim_exe_symbol(f->origin, v.restore_sym, sizeof(v.restore_sym), &off);
    v.restore_sym_off = off;
    if (f->m && f->m->name)
        snprintf(v.restore_target, sizeof(v.restore_target), "%s", maps_text + f->m->name);
    else if (f->kind == IMG_RK_INTERNAL)
        snprintf(v.restore_target, sizeof(v.restore_target), "%s", "lrvm's internal heap");
    size_t o = __builtin_offsetof(struct image_header, restore_kind);
    size_t n = __builtin_offsetof(struct image_header, crash_magic) - o;
    if (memcmp((char *)h + o, (char *)&v + o, n) != 0)
        memcpy((char *)h + o, (char *)&v + o, n);
}

/* walk_budget -- heap bytes this commit may walk, at time now (ns); HOW OFTEN THE HEAP IS
 * WALKED IN FULL in the file comment */
static size_t walk_budget(uint64_t now, int final)
{
    if (walk_tokens_ns != 0 && now > walk_tokens_ns) {
        uint64_t dt = now - walk_tokens_ns;
        walk_tokens = dt >= SCAN_REFILL_NS
                          ? SCAN_BUDGET
                          : walk_tokens + dt * (uint64_t)SCAN_BUDGET / SCAN_REFILL_NS;
        if (walk_tokens > SCAN_BUDGET)
            walk_tokens = SCAN_BUDGET;
    }
    walk_tokens_ns = now;
    if (final)
        return SCAN_BUDGET;
    return walk_tokens > SCAN_FLOOR ? (size_t)walk_tokens : SCAN_FLOOR;
}

/* walk_spent -- the walk used `bytes` of the bucket */
static void walk_spent(size_t bytes)
{
    walk_tokens = walk_tokens > bytes ? walk_tokens - bytes : 0;
    heap_bytes_total += bytes;
}

/* shim_restore_judge -- scan and record the verdict in h (see the file comment). The heap is
 * locked by the caller. Returns the kind found (IMG_RK_RESTORABLE: none). */
static uint32_t judge(struct image_header *h, int final, size_t budget);

uint32_t shim_restore_judge(struct image_header *h, int final)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint32_t kind =
        judge(h, final, walk_budget((uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec, final));
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t ns =
        (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
    n_scans++;
    scan_ns_total += ns;
    if (ns > scan_ns_max)
        scan_ns_max = ns;
    return kind;
}

/* shim_restore_stats -- the LRVM_STATS line */
void shim_restore_stats(int fd)
{
    if (!n_scans)
        return;
    char a[24], b[24], c[24], d[24];
    shim_say(fd, "stats: restorability scans ", shim_fmt_u64(a, n_scans), ", avg ",
             shim_fmt_u64(b, scan_ns_total / n_scans / 1000), " us, max ",
             shim_fmt_u64(c, scan_ns_max / 1000), " us, heap walked ",
             shim_fmt_u64(d, heap_bytes_total >> 10), " KiB in all", NULL);
}

/* judge -- the scan, walking at most budget bytes of heap, and the header's verdict */
static uint32_t judge(struct image_header *h, int final, size_t budget)
{
    if (!maps || load_maps() != 0) {
        /* no scratch or no /proc: say nothing rather than refuse every restart for it */
        if (h->restore_kind != IMG_RK_RESTORABLE)
            shim_restore_clear(h);
        return IMG_RK_RESTORABLE;
    }
    struct scan sc = {0};
    sc.img = h;
    sc.final = final;
    sc.heap_lo = shim_opts.heap_base;
    sc.heap_hi = shim_opts.heap_base + shim_opts.heap_size;
    sc.budget = budget;
    seen_clear();
    int bad = scan_globals(&sc);
    walk_spent(budget - sc.budget);
    if (bad) {
        record(h, &sc.f);
        return sc.f.kind;
    }
    if (h->restore_kind != IMG_RK_RESTORABLE)
        shim_restore_clear(h);
    return IMG_RK_RESTORABLE;
}

/* kind_text -- what the memory is, for the refusal */
static const char *kind_text(uint32_t kind)
{
    switch (kind) {
    case IMG_RK_ANON:
        return "an anonymous mapping that is not persistent (memory the program or a library "
               "mmap'ed itself: an allocator's arenas, a thread's stack or thread-local storage)";
    case IMG_RK_STACK: return "the stack, which is not persistent";
    case IMG_RK_TLS: return "thread-local storage, which is not persistent";
    case IMG_RK_BRK: return "the program break ([heap], sbrk memory), which is not persistent";
    case IMG_RK_FILE: return "a file mapping, which is not persistent";
    case IMG_RK_LIBDATA:
        return "a shared library's writable data, which starts afresh in every "
               "process";
    case IMG_RK_INTERNAL: return "lrvm's own volatile memory";
    case IMG_RK_KERNEL: return "memory the kernel maps into every process anew";
    case IMG_RK_FREED: return "a heap block the program had freed (a dangling pointer)";
    default: return "memory that is not persistent";
    }
}

/* prog_name -- the executable's file name, from the header */
static const char *prog_name(const struct image_header *h, char *buf, size_t len)
{
    snprintf(buf, len, "%s", h->exe_path);
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

/* shim_restore_refuse -- the verdict of the commit about to be restored (header h, just
 * recovered): 0 = restorable, or EPERM after the refusal message. Only for a run that restores
 * the globals (a heap-only open ignores the verdict). */
int shim_restore_refuse(const struct image_header *h, const char *seg)
{
    if (h->version < IMG_FORMAT_VERSION || h->restore_kind == IMG_RK_RESTORABLE ||
        !(h->flags & IMG_F_GLOBALS_VALID))
        return 0;
    char prog[IMG_PATH_MAX], sym[IMG_SYM_MAX + 1], target[IMG_TARGET_MAX + 1], a[24], b[24];
    memcpy(sym, h->restore_sym, IMG_SYM_MAX);
    sym[IMG_SYM_MAX] = 0;
    memcpy(target, h->restore_target, IMG_TARGET_MAX);
    target[IMG_TARGET_MAX] = 0;
    int via_heap =
        h->restore_addr >= h->heap_base && h->restore_addr < h->heap_base + h->heap_reserve;
    char glob[IMG_SYM_MAX + 64];
    if (sym[0])
        snprintf(glob, sizeof(glob), "the global `%s`+%s", sym,
                 shim_fmt_hex(a, h->restore_sym_off));
    else /* no symbol: the offset in the executable, for nm / objdump / addr2line */
        snprintf(glob, sizeof(glob), "the global at offset %s of the executable",
                 shim_fmt_hex(a, h->restore_sym_off - h->load_base));
    shim_say(
        2, "cannot restore ", prog_name(h, prog, sizeof(prog)), "'s state from LRVM_SEGMENT=", seg,
        ": ", glob, via_heap ? " reaches, through the persistent heap, a pointer (at " : "",
        via_heap ? shim_fmt_hex(b, h->restore_addr) : "", via_heap ? ") that points" : " points",
        " into ", kind_text(h->restore_kind), target[0] ? " (" : "", target, target[0] ? ")" : "",
        ". Run with LRVM_GLOBALS=0 to keep only the heap, or remove the "
        "segment and its log to start afresh",
        NULL);
    return EPERM;
}
