/* SPDX-License-Identifier: MIT */
/*
 * heap.c -- heap lifecycle: create, open (with every refusal spelled out), close, errors and
 * reporting, root, statistics, lock_all/fork handlers, purge.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heap_int.h"

static _Atomic uint64_t next_heap_id = 1;

/* default_report -- write one line to stderr without allocating (the shim calls us from malloc) */
static void default_report(void *arg, const char *msg)
{
    (void)arg;
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "lrvm heap: %s\n", msg);
    if (n > 0) {
        ssize_t w = write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
        (void)w;
    }
}

/* heap_opts_init -- defaults: report to stderr, check the heap at open */
void heap_opts_init(struct heap_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->check_on_open = 1;
}

/* heap_reportf -- format a message and hand it to the heap's report callback */
void heap_reportf(const struct heap *h, const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (h && h->o.report)
        h->o.report(h->o.report_arg, buf);
    else
        default_report(NULL, buf);
}

/* heap_strerror -- message for a HEAP_E* code or an errno value */
const char *heap_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case HEAP_EBADMAGIC: return "not a heap (bad magic)";
    case HEAP_EVERSION: return "heap format version mismatch";
    case HEAP_EBASE: return "heap mapped at a different base address than recorded";
    case HEAP_EGEOMETRY: return "heap geometry (page, chunk, reserve or size) invalid";
    case HEAP_ECHECKSUM: return "heap header checksum mismatch";
    case HEAP_ECORRUPT: return "heap metadata corrupted";
    case HEAP_EBADFREE: return "pointer is not a live heap block";
    case HEAP_ERESERVE: return "heap reserve exhausted";
    case HEAP_ESHORT: return "heap segment shorter than its header says";
    default: return err > 0 ? strerror(err) : "unknown heap error";
    }
}

/* heap_header_checksum -- FNV-1a 64 over the immutable header fields (magic..reserve) */
uint64_t heap_header_checksum(const struct heap_header *hd)
{
    const unsigned char *p = (const unsigned char *)hd;
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < offsetof(struct heap_header, checksum); i++)
        x = (x ^ p[i]) * 1099511628211ull;
    return x;
}

/* heap_new -- allocate the volatile struct heap (mmap: never the malloc we may be replacing) */
static struct heap *heap_new(void *base, const struct heap_backing *b, const struct heap_opts *o)
{
    struct heap *h =
        mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED)
        return NULL;
    memset(h, 0, sizeof(*h));
    h->id = atomic_fetch_add(&next_heap_id, 1);
    h->base = base;
    h->b = *b;
    if (o)
        h->o = *o;
    else
        heap_opts_init(&h->o);
    h->hdr = (struct heap_header *)base;
    h->ct = (struct heap_chunk_ent *)((char *)base + HEAP_CTABLE_OFF);
    pthread_mutex_init(&h->lock, NULL);
    for (unsigned a = 0; a < HEAP_NARENAS; a++)
        pthread_mutex_init(&h->arenas[a].lock, NULL);
    heap_classes_init();
    return h;
}

/* heap_delete -- free the volatile struct heap */
static void heap_delete(struct heap *h)
{
    heap_page_fini_volatile(h);
    pthread_mutex_destroy(&h->lock);
    for (unsigned a = 0; a < HEAP_NARENAS; a++)
        pthread_mutex_destroy(&h->arenas[a].lock);
    munmap(h, sizeof(*h));
}

int heap_create(struct heap **out, void *base, size_t reserve, const struct heap_backing *b,
                const struct heap_opts *o)
{
    *out = NULL;
    struct heap tmp = {.o = o ? *o : (struct heap_opts){0}};
    if (sysconf(_SC_PAGESIZE) != (long)HEAP_PAGE) {
        heap_reportf(&tmp, "system page size is %ld, the heap format needs 4096",
                     sysconf(_SC_PAGESIZE));
        return HEAP_EGEOMETRY;
    }
    if (((uintptr_t)base & (HEAP_CHUNK - 1)) || !base) {
        heap_reportf(&tmp, "heap base %p is not 4 MiB aligned: choose an aligned base", base);
        return EINVAL;
    }
    if (reserve % HEAP_CHUNK || reserve < HEAP_RESERVE_MIN || reserve > HEAP_RESERVE_MAX) {
        heap_reportf(&tmp,
                     "heap reserve %zu is invalid: it must be a multiple of 4 MiB between "
                     "8 MiB and 256 GiB",
                     reserve);
        return EINVAL;
    }
    struct heap *h = heap_new(base, b, o);
    if (!h)
        return ENOMEM;
    h->reserve = reserve;
    int rc = h->b.grow(h->b.ctx, HEAP_CHUNK);
    if (rc) {
        heap_reportf(h, "cannot back the heap header chunk (4 MiB): %s", heap_strerror(rc));
        heap_delete(h);
        return rc;
    }
    struct heap_header *hd = h->hdr;
    memset(hd, 0, HEAP_CTABLE_OFF + (reserve / HEAP_CHUNK) * sizeof(struct heap_chunk_ent));
    memcpy(hd->magic, HEAP_MAGIC, 8);
    hd->version = HEAP_FORMAT_VERSION;
    hd->page_size = (uint32_t)HEAP_PAGE;
    hd->chunk_size = (uint32_t)HEAP_CHUNK;
    hd->header_size = sizeof(*hd);
    hd->base = (uint64_t)(uintptr_t)base;
    hd->reserve = reserve;
    hd->checksum = heap_header_checksum(hd);
    hd->size = HEAP_CHUNK;
    hd->nchunks = 1;
    h->ct[0] = (struct heap_chunk_ent){.kind = CK_HEADER, .n = 0};
    h->live = 1;
    if ((rc = heap_page_init_volatile(h)) != 0 || (rc = heap_registry_add(h)) != 0) {
        heap_reportf(h, "cannot set up the heap's volatile state: %s", heap_strerror(rc));
        heap_delete(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* open_refuse -- report why an image cannot be opened */
#define open_refuse(h, rc, ...)         \
    do {                                \
        heap_reportf((h), __VA_ARGS__); \
        heap_delete(h);                 \
        return (rc);                    \
    } while (0)

/* header_refuse -- open_refuse for open_judge_header: report, and leave h to the caller */
#define header_refuse(rc, ...)          \
    do {                                \
        heap_reportf((h), __VA_ARGS__); \
        return (rc);                    \
    } while (0)

/* open_judge_header -- the image's header against this library and the backing's size: 0, or
 * the code of the first refusal after reporting it (heap_open deletes h then) */
static int open_judge_header(struct heap *h, void *base, size_t have)
{
    if (have < HEAP_CHUNK)
        header_refuse(HEAP_ESHORT,
                      "heap at %p: segment holds %zu bytes, less than the 4 MiB "
                      "header chunk: not a heap image (truncated?)",
                      base, have);
    const struct heap_header *hd = h->hdr;
    if (memcmp(hd->magic, HEAP_MAGIC, 8) != 0)
        header_refuse(HEAP_EBADMAGIC,
                      "heap at %p: magic is %02x%02x%02x%02x%02x%02x%02x%02x, "
                      "expected \"LRVMHEAP\": not a heap image or its header was overwritten; "
                      "restore a good copy or create a new heap",
                      base, (unsigned char)hd->magic[0], (unsigned char)hd->magic[1],
                      (unsigned char)hd->magic[2], (unsigned char)hd->magic[3],
                      (unsigned char)hd->magic[4], (unsigned char)hd->magic[5],
                      (unsigned char)hd->magic[6], (unsigned char)hd->magic[7]);
    if (hd->version != HEAP_FORMAT_VERSION)
        header_refuse(HEAP_EVERSION,
                      "heap at %p: format version is %u, this library reads "
                      "version %u: use the lrvm release that wrote it (or the header is corrupted)",
                      base, hd->version, HEAP_FORMAT_VERSION);
    uint64_t sum = heap_header_checksum(hd);
    if (hd->checksum != sum)
        header_refuse(HEAP_ECHECKSUM,
                      "heap at %p: header checksum is %#llx, computed %#llx: the "
                      "header is corrupted; restore a good copy",
                      base, (unsigned long long)hd->checksum, (unsigned long long)sum);
    if (hd->base != (uint64_t)(uintptr_t)base)
        header_refuse(HEAP_EBASE,
                      "heap was created at base %#llx but is mapped at %p: pointers "
                      "inside it would be wrong; map it at %#llx (same base setting, ASLR off)",
                      (unsigned long long)hd->base, base, (unsigned long long)hd->base);
    if (hd->page_size != HEAP_PAGE || hd->chunk_size != HEAP_CHUNK)
        header_refuse(HEAP_EGEOMETRY, "heap at %p: page/chunk size is %u/%u, expected %zu/%zu",
                      base, hd->page_size, hd->chunk_size, HEAP_PAGE, HEAP_CHUNK);
    if (hd->reserve % HEAP_CHUNK || hd->reserve < HEAP_RESERVE_MIN ||
        hd->reserve > HEAP_RESERVE_MAX)
        header_refuse(HEAP_EGEOMETRY,
                      "heap at %p: reserve field is %llu, expected a multiple of "
                      "4 MiB in [8 MiB, 256 GiB]",
                      base, (unsigned long long)hd->reserve);
    if (hd->size % HEAP_CHUNK || hd->size < HEAP_CHUNK || hd->size > hd->reserve ||
        hd->nchunks != hd->size / HEAP_CHUNK)
        header_refuse(HEAP_EGEOMETRY,
                      "heap at %p: size field is %llu (%llu chunks), expected a "
                      "multiple of 4 MiB up to the reserve %llu: header corrupted",
                      base, (unsigned long long)hd->size, (unsigned long long)hd->nchunks,
                      (unsigned long long)hd->reserve);
    if (have < hd->size)
        header_refuse(HEAP_ESHORT,
                      "heap at %p: header says %llu bytes but the segment holds only "
                      "%zu: the image is truncated",
                      base, (unsigned long long)hd->size, have);
    return 0;
}
#undef header_refuse

/* heap_open -- each refusal names the field, expected vs found, what to do. */
int heap_open(struct heap **out, void *base, const struct heap_backing *b,
              const struct heap_opts *o)
{
    *out = NULL;
    struct heap *h = heap_new(base, b, o);
    if (!h)
        return ENOMEM;
    size_t have = b->size(b->ctx);
    int rc = open_judge_header(h, base, have);
    if (rc) {
        heap_delete(h);
        return rc;
    }
    h->reserve = h->hdr->reserve;
    rc = heap_page_init_volatile(h);
    if (rc)
        open_refuse(h, rc, "cannot set up the heap's volatile state: %s", heap_strerror(rc));
    if (h->o.check_on_open) {
        size_t nv = 0;
        if (heap_check(h, NULL, NULL, &nv) != 0)
            open_refuse(h, HEAP_ECORRUPT,
                        "heap at %p: %zu metadata violation(s) (listed above); "
                        "refusing to open: restore the last good copy",
                        base, nv);
    }
    if ((rc = heap_page_rebuild(h)) != 0)
        open_refuse(h, rc,
                    "heap at %p: metadata is inconsistent (run with check_on_open to see "
                    "where); refusing to open",
                    base);
    h->live = 1;
    if ((rc = heap_registry_add(h)) != 0)
        open_refuse(h, rc, "too many heaps open in this process (max 64)");
    *out = h;
    return 0;
}

int heap_close(struct heap *h)
{
    if (!h)
        return 0;
    heap_registry_remove(h);
    heap_tcache_forget_all(h);
    heap_delete(h);
    return 0;
}

int heap_owns(const struct heap *h, const void *p)
{
    return (const char *)p >= h->base && (size_t)((const char *)p - h->base) < h->reserve;
}

int heap_owns_private(const struct heap *h, const void *p)
{
    return h->vp != NULL && (const char *)p >= (const char *)h->vp &&
           (size_t)((const char *)p - (const char *)h->vp) < h->volsize;
}

/* heap_set_root -- store the program's root pointer in the header */
void heap_set_root(struct heap *h, void *root)
{
    __atomic_store_n(&h->hdr->root, (uint64_t)(uintptr_t)root, __ATOMIC_RELAXED);
}

/* heap_get_root -- the program's root pointer */
void *heap_get_root(const struct heap *h)
{
    return (void *)(uintptr_t)__atomic_load_n(&h->hdr->root, __ATOMIC_RELAXED);
}

/* heap_lock_all -- every arena lock in order, then the page lock (the order all
 * other paths use), so no multi-word update of runs, spans or chunks is in progress */
void heap_lock_all(struct heap *h)
{
    for (unsigned a = 0; a < HEAP_NARENAS; a++)
        pthread_mutex_lock(&h->arenas[a].lock);
    pthread_mutex_lock(&h->lock);
}

void heap_unlock_all(struct heap *h)
{
    pthread_mutex_unlock(&h->lock);
    for (unsigned a = HEAP_NARENAS; a-- > 0;)
        pthread_mutex_unlock(&h->arenas[a].lock);
}

/* heap_fork_child -- the locks were taken by the parent's prepare handler; only
 * this thread exists now, so fresh locks are safe */
void heap_fork_child(struct heap *h)
{
    pthread_mutex_init(&h->lock, NULL);
    for (unsigned a = 0; a < HEAP_NARENAS; a++)
        pthread_mutex_init(&h->arenas[a].lock, NULL);
    heap_registry_fork_child();
    heap_tcache_flush_all(h, 1);
}

int heap_purge(struct heap *h)
{
    pthread_mutex_lock(&h->lock);
    heap_page_purge_all(h);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

/* heap_stats_get -- see heap.h (caches are read without their owners' cooperation: the
 * figures are a consistent snapshot only on a quiescent heap) */
void heap_stats_get(struct heap *h, struct heap_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&h->lock);
    int64_t alloc = h->allocated, nalloc = h->nallocated;
    size_t cached = 0;
    for (struct heap_tcache *tc = h->tcaches; tc; tc = tc->next) {
        alloc += tc->allocated;
        nalloc += tc->nallocated;
        for (unsigned c = 0; c < HEAP_NCLASS; c++)
            cached += (size_t)tc->bins[c].n * heap_classes[c].size;
    }
    size_t free_pages = 0;
    for (size_t b = 1; b <= HEAP_CHUNK_PAGES; b++)
        for (uint32_t gp = h->bins[b]; gp != HEAP_NIL; gp = h->vp[gp].next)
            free_pages += b;
    st->reserve = h->reserve;
    st->size = h->hdr->size;
    st->allocated = alloc > 0 ? (size_t)alloc : 0;
    st->nallocated = nalloc > 0 ? (size_t)nalloc : 0;
    st->cached = cached;
    st->active = (h->active_pages << HEAP_PAGE_SHIFT);
    size_t nnormal = 0, nhuge = 0;
    for (size_t ci = 1; ci < h->hdr->nchunks; ci++) {
        uint32_t k = CK_KIND(h->ct[ci].kind);
        nnormal += k == CK_NORMAL;
        nhuge += k == CK_HUGE || k == CK_HUGE_TAIL;
    }
    st->active += nhuge << HEAP_CHUNK_SHIFT;
    st->metadata = HEAP_CHUNK + nnormal * HEAP_META_PAGES * HEAP_PAGE;
    st->free_dirty = h->dirty_pages << HEAP_PAGE_SHIFT;
    st->free_clean =
        free_pages > h->dirty_pages ? (free_pages - h->dirty_pages) << HEAP_PAGE_SHIFT : 0;
    st->nchunks = nnormal + nhuge;
    st->purges = h->purges;
    pthread_mutex_unlock(&h->lock);
}
