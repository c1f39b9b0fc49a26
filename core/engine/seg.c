/* SPDX-License-Identifier: MIT */
/*
 * seg.c -- segments (open data files, identified by device+inode, with a dictionary
 * id) and regions (mapped parts of them): rvm_map and rvm_unmap.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filecheck.h"
#include "rvm_int.h"
#include "sysio.h"
#include "observer.h"


static struct region **graveyard; /* regions unmapped while transactions were open: a */
static size_t ngrave, gravecap;   /* tid may still cache them (freed when none is open) */

/*
 * seg_fd_tune -- no readahead on a segment descriptor. Readahead fills the page cache in large
 * folios, and every later small write into a large folio costs a walk of all its block
 * buffers (apply_pass.c, PAGE-SIZED WRITES): records are small writes, forever. What this
 * descriptor reads is either large (rvm_map copying a region: read in one request, batched
 * by the kernel all the same) or random (one committed page image, the gaps of an apply
 * span), so readahead buys nothing here. Advice only: a failure changes no result.
 */
static void seg_fd_tune(int fd)
{
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
}

/* seg_get -- the segment for path, opened on first use (caller holds engine.mu) */
rvm_return_t seg_get(const char *path, uint64_t dev_length, int create_ok, struct seg **out)
{
    (void)dev_length;
    char why[1024];
    int fd =
        filecheck_open(path, O_RDWR | (create_ok ? O_CREAT : 0), 0600, "segment", why, sizeof(why));
    if (fd < 0 && why[0])
        return err_set(RVM_EIO, "%s", why);
    if (fd < 0)
        return err_set(RVM_EIO, "cannot open segment %s: %s", path, strerror(errno));
    seg_fd_tune(fd);
    struct stat sb;
    if (sysio.fstat(fd, &sb) != 0) {
        int e = errno;
        sysio.close(fd);
        return err_set(RVM_EIO, "cannot stat segment %s: %s", path, strerror(e));
    }
    char abs[PATH_MAX];
    if (realpath(path, abs) == NULL) {
        int e = errno;
        sysio.close(fd);
        return err_set(RVM_EIO, "segment %s: cannot resolve its path: %s", path, strerror(e));
    }
    for (uint32_t i = 1; i <= engine.nsegs; i++) {
        struct seg *s = engine.segs[i];
        if (s->fd < 0 && strcmp(s->path, abs) == 0) {
            /* a dictionary segment that could not be opened at recovery is back. If the
             * file there carried another identity, recovery succeeded, so no live record
             * names the old one: the log now belongs to this file and its identity */
            if (s->ident_bad) {
                seg_ident_read(fd, s->ident);
                s->ident_bad = 0;
            }
            s->fd = fd;
            s->dev = sb.st_dev;
            s->ino = sb.st_ino;
            fd = -1;
        }
        if (s->fd >= 0 && s->dev == sb.st_dev && s->ino == sb.st_ino) {
            if (fd >= 0)
                sysio.close(fd);
            if (S_ISREG(sb.st_mode))
                s->size = (uint64_t)sb.st_size & ~(uint64_t)511;
            *out = s;
            return RVM_SUCCESS;
        }
    }
    if (engine.nsegs >= SEG_MAX) {
        sysio.close(fd);
        return err_set(RVM_ETOO_BIG, "segment %s: at most %u segments per log", path, SEG_MAX);
    }
    struct seg *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(abs)) == NULL) {
        free(s);
        sysio.close(fd);
        return err_set(RVM_ENO_MEMORY, "segment %s: cannot resolve its path", path);
    }
    s->fd = fd;
    s->dev = sb.st_dev;
    s->ino = sb.st_ino;
    seg_ident_read(fd, s->ident); /* none yet is fine: log_status_write looks again */
    /* files: usable size is the file size chopped to 512; devices need dev_length */
    s->size = S_ISREG(sb.st_mode) ? ((uint64_t)sb.st_size & ~(uint64_t)511) : UINT64_MAX;
    s->id = engine.nsegs + 1;
    engine.segs[s->id] = s;
    __atomic_store_n(&engine.nsegs, s->id, __ATOMIC_RELEASE);
    *out = s;
    return RVM_SUCCESS;
}

/* seg_open_checked -- open a dictionary segment and check that it carries the identity the
 * log recorded for it. A file that cannot be opened, or carries another identity (or none
 * where the log knows one), is kept with fd -1: that is an error only if a record needs it
 * (apply_record says which), and the file is never written. */
static void seg_open_checked(struct seg *s)
{
    /* the same rules as for a segment the program names itself: a path in the log is
     * never followed into a file the process's user could not have handed over */
    char why[1024];
    s->fd = filecheck_open(s->path, O_RDWR, 0, "segment", why, sizeof(why));
    if (s->fd < 0) {
        s->open_err = errno;
        s->open_why = why[0] ? strdup(why) : NULL;
        return;
    }
    seg_fd_tune(s->fd);
    struct stat sb;
    if (sysio.fstat(s->fd, &sb) == 0) {
        s->dev = sb.st_dev;
        s->ino = sb.st_ino;
        s->size = S_ISREG(sb.st_mode) ? ((uint64_t)sb.st_size & ~(uint64_t)511) : UINT64_MAX;
    }
    uint8_t have[LOG_SEG_ID_LEN];
    if (seg_ident_known(s->ident) &&
        (!seg_ident_read(s->fd, have) || memcmp(have, s->ident, LOG_SEG_ID_LEN) != 0)) {
        sysio.close(s->fd);
        s->fd = -1;
        s->ident_bad = 1;
    }
}

/*
 * seg_load_dict -- adopt the segment dictionary of a log being recovered: live records
 * name segments by these ids, so they keep them. Version 3 entries carry the segment's
 * identity and a path that may be relative to the log's directory; version 2 entries have
 * an absolute path and no identity (log_format.h).
 */
rvm_return_t seg_load_dict(const struct log *lg, const struct buf *dict, uint32_t n,
                           uint32_t version)
{
    size_t pos = 0, idlen = version >= LOG_FORMAT_VERSION ? LOG_SEG_ID_LEN : 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t id, plen;
        if (pos + 8 + idlen > dict->len)
            return err_set(RVM_ELOG, "log %s: segment dictionary is truncated", lg->path);
        memcpy(&id, dict->p + pos, 4);
        memcpy(&plen, dict->p + pos + 4, 4);
        const char *path = dict->p + pos + 8 + idlen;
        if (id != k + 1 || plen == 0 || pos + 8 + idlen + plen > dict->len ||
            path[plen - 1] != '\0')
            return err_set(RVM_ELOG, "log %s: segment dictionary entry %u is damaged", lg->path, k);
        struct seg *s = calloc(1, sizeof(*s));
        if (s == NULL || (s->path = dict_path_resolve(lg->dir, path)) == NULL) {
            free(s);
            return err_set(RVM_ENO_MEMORY, "out of memory reading the log's dictionary");
        }
        s->id = id;
        if (idlen)
            memcpy(s->ident, dict->p + pos + 8, LOG_SEG_ID_LEN);
        seg_open_checked(s);
        engine.segs[id] = s;
        __atomic_store_n(&engine.nsegs, id, __ATOMIC_RELEASE);
        pos += 8 + idlen + ((plen + 7u) & ~7u);
    }
    return RVM_SUCCESS;
}

static rvm_return_t seg_settle(struct log *lg, struct seg *s);

/* seg_file_image -- for rvm_track's lazy committed images (track_twin.c): if [addr, addr+len)
 * lies in one region whose memory was made from the segment by rvm_map (copied or
 * RVM_MAP_PRIVATE, not no_copy), settle the segment (seg_settle) and return its descriptor
 * in *fd: from now on the file holds the committed image of every byte of the region that no
 * later commit names. Else *fd = -1. engine.mu must NOT be held. */
rvm_return_t seg_file_image(const char *addr, uint64_t len, int *fd)
{
    *fd = -1;
    pthread_mutex_lock(&engine.mu);
    struct region *g = region_find(addr, len);
    rvm_return_t rc = RVM_SUCCESS;
    if (g != NULL && g->copied && engine.log != NULL && g->seg->fd >= 0 &&
        (rc = seg_settle(engine.log, g->seg)) == RVM_SUCCESS)
        *fd = g->seg->fd;
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* region_find -- the region holding [addr, addr+len) entirely (caller holds engine.mu) */
struct region *region_find(const char *addr, uint64_t len)
{
    size_t lo = 0, hi = engine.nregions;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        struct region *g = engine.regions[mid];
        if (addr < g->vmaddr)
            hi = mid;
        else if (addr >= g->vmaddr + g->len)
            lo = mid + 1;
        else
            return (uint64_t)(addr - g->vmaddr) + len <= g->len ? g : NULL;
    }
    return NULL;
}

/* region_find_overlap -- any region whose VM overlaps [addr, addr+len) */
struct region *region_find_overlap(const char *addr, uint64_t len)
{
    for (size_t i = 0; i < engine.nregions; i++) {
        struct region *g = engine.regions[i];
        if (addr < g->vmaddr + g->vmlen && g->vmaddr < addr + len)
            return g;
    }
    return NULL;
}

/* seg_close_all -- close every segment and free regions (rvm_terminate) */
void seg_close_all(void)
{
    for (uint32_t i = 1; i <= engine.nsegs; i++) {
        if (engine.segs[i]->fd >= 0)
            sysio.close(engine.segs[i]->fd);
        cset_seg_free(engine.segs[i]);
        free(engine.segs[i]->path);
        free(engine.segs[i]->open_why);
        free(engine.segs[i]);
        engine.segs[i] = NULL;
    }
    engine.nsegs = 0;
    for (size_t i = 0; i < engine.nregions; i++)
        free(engine.regions[i]);
    free(engine.regions);
    engine.regions = NULL;
    engine.nregions = engine.regcap = 0;
    for (size_t i = 0; i < ngrave; i++)
        free(graveyard[i]);
    free(graveyard);
    graveyard = NULL;
    ngrave = gravecap = 0;
}

/* map_vm_ok -- is [addr, addr+len) part of the address space? One msync(MS_ASYNC) answers
 * for the whole range: it fails with ENOMEM if any page of it is unmapped, and MS_ASYNC does
 * nothing else (Linux >= 2.6.19 writes nothing back for it). The former loop of mincore calls
 * (one per 256 KiB) cost 1.67 s for the shim's 16 GiB reservation. */
static int map_vm_ok(char *addr, uint64_t len)
{
    return msync(addr, (size_t)len, MS_ASYNC) == 0;
}

/* seg_settle -- make the segment file hold every committed update of s: records still in
 * the log (or in the coalescing set) are forced and truncated. engine.mu held. */
static rvm_return_t seg_settle(struct log *lg, struct seg *s)
{
    rvm_return_t rc = RVM_SUCCESS;
    pthread_mutex_lock(&lg->mu);
    int pending = s->last_seq != 0 && s->last_seq >= lg->head_seq;
    if (pending) {
        if (lg->cs.n)
            rc = cset_materialize(lg);
        if (rc == RVM_SUCCESS)
            rc = log_force(lg, lg->next_seq - 1);
    }
    pthread_mutex_unlock(&lg->mu);
    if (rc == RVM_SUCCESS && pending)
        rc = trunc_all(lg);
    return rc;
}

/*
 * MAP, DON'T COPY. A region that rvm_map allocates itself (vmaddr NULL, not no_copy) is by
 * default a MAP_PRIVATE mapping of the segment file, not anonymous memory the file is read
 * into: mapping 64 MiB then costs one mmap instead of a 64 MiB read and as many page faults.
 * Why this keeps every LRVM guarantee:
 *  - no-steal: a private mapping never writes back. A store makes the page a private copy; the
 *    file receives only what truncation and recovery write, which is committed data. Stores
 *    made without rvm_set_range stay in those private copies and are never committed.
 *  - the region shows the committed state: recovery (inside rvm_initialize) and seg_settle
 *    (below, before the mmap) have put every committed record of the segment into the file's
 *    page cache, so an untouched page reads exactly what a copy would have read.
 *  - later truncations write only pages that commits of this mapping wrote, and those are
 *    private copies by then: the program never sees the file change under it. (A record's
 *    bytes come from the region's memory: set_range then a store, rvm_modify_bytes, or a
 *    tracked page; all of them write the page first.)
 *  - abort of a restore transaction writes the saved old values into memory: a store like
 *    any other.
 * Where it is not used (the copy stays): memory the caller supplies (vmaddr given: it may be
 * shared with a child, locked, or of a kind the caller chose; replacing it would change that);
 * a device segment; a region that ends inside a page (the rest of that page would show file
 * bytes past the region, and a file shrunk under the mapping raises SIGBUS); RVM_MAP_COPY.
 * Two places turn a default mapping into anonymous memory holding the same bytes
 * (region_unfile): rvm_unmap, because memory the program keeps must not follow a later
 * mapping's truncations of the same bytes, and rvm_track on a fault backend, which needs
 * anonymous memory. A fork child shares untouched pages with the file: it sees the parent's
 * later truncations in pages neither process wrote; and rvm_terminate leaves the mapping as
 * it is (copying there would only slow every exit), so memory used after it shows what
 * another process later writes to the file (RVM_MAP_COPY gives a snapshot in both cases).
 */
static int map_file_ok(const rvm_region_t *region, const struct seg *s, const char *vm,
                       uint64_t len, uint64_t vmlen)
{
    return vm == NULL && !region->no_copy && !engine.map_copy && s->size != UINT64_MAX &&
           len == vmlen;
}

/* region_unfile -- replace a default file mapping by anonymous memory with the same bytes,
 * at the same address (mremap moves the copy over it in one step, so no other mapping can
 * take the range in between). Caller holds engine.mu. A store to the region by another thread
 * during the copy would be lost: callers run where the region is not being written
 * (rvm_unmap, the start of tracking). */
static rvm_return_t region_unfile(struct region *g)
{
    void *tmp = mmap(NULL, g->vmlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED)
        return err_set(RVM_ENO_MEMORY,
                       "cannot allocate %llu bytes to copy the region at %p "
                       "out of segment %s",
                       (unsigned long long)g->vmlen, (void *)g->vmaddr, g->seg->path);
    memcpy(tmp, g->vmaddr, g->vmlen);
    if (mremap(tmp, g->vmlen, g->vmlen, MREMAP_MAYMOVE | MREMAP_FIXED, g->vmaddr) == MAP_FAILED) {
        int e = errno;
        munmap(tmp, g->vmlen);
        return err_set(RVM_ENO_MEMORY,
                       "cannot move the copy of the region at %p (segment "
                       "%s) into place: %s",
                       (void *)g->vmaddr, g->seg->path, strerror(e));
    }
    g->priv = g->lazy = 0;
    return RVM_SUCCESS;
}

/* seg_region_unfile -- for rvm_track on a fault backend: if [addr, addr+len) lies in a region
 * rvm_map mapped from the file by default, make it anonymous memory (region_unfile).
 * *still_file: the region is a file mapping the caller asked for (RVM_MAP_PRIVATE). engine.mu must
 * NOT be held. */
rvm_return_t seg_region_unfile(const char *addr, uint64_t len, int *still_file)
{
    pthread_mutex_lock(&engine.mu);
    struct region *g = region_find(addr, len);
    rvm_return_t rc = RVM_SUCCESS;
    if (g != NULL && g->lazy)
        rc = region_unfile(g);
    *still_file = g != NULL && g->priv;
    pthread_mutex_unlock(&engine.mu);
    return rc;
}

/* One rvm_map in progress: the segment bytes [off, end) it maps (len of them), the memory
 * (vmlen bytes at vm) they go to, and how that memory was obtained. */
struct map_plan {
    struct seg *s;
    const char *dev;
    uint64_t off, end, len, vmlen;
    char *vm;
    int priv;      /* a MAP_PRIVATE mapping of the segment file */
    int lazy;      /* ... chosen because nothing needs reading now (map_file_ok) */
    int allocated; /* rvm_map allocated vm, and unmaps it on failure */
};

/* map_plan_range -- the page-aligned bytes of the segment the region maps, within the usable
 * size of the file or of dev_length */
static rvm_return_t map_plan_range(const rvm_region_t *region, struct map_plan *p)
{
    uint64_t devsize = p->s->size;
    if (!RVM_OFFSET_EQL_ZERO(region->dev_length) && region->dev_length.high == 0 &&
        region->dev_length.low < devsize)
        devsize = region->dev_length.low & ~(uint64_t)511;
    if (devsize == UINT64_MAX)
        return err_set(RVM_ENOT_MAPPED, "segment %s is a device: give region->dev_length", p->dev);
    if (region->offset.high != 0)
        return err_set(RVM_EOFFSET, "segment %s: offset beyond the device", p->dev);
    uint64_t pg = rvm_page_size();
    p->off = region->offset.low & ~(pg - 1);
    if (p->off >= devsize)
        return err_set(RVM_EOFFSET, "segment %s: offset %lu is beyond its usable size %llu", p->dev,
                       region->offset.low, (unsigned long long)devsize);
    p->end = region->offset.low + region->length;
    p->end = (p->end + pg - 1) & ~(pg - 1);
    if (region->length == 0 || p->end > devsize || p->end < p->off)
        p->end = devsize;
    p->len = p->end - p->off;
    p->vmlen = (p->len + pg - 1) & ~(pg - 1);
    return RVM_SUCCESS;
}

/* map_check_overlaps -- the caller's memory (if given) is page aligned, allocated and not
 * mapped yet; the segment bytes are not mapped by another region */
static rvm_return_t map_check_overlaps(const struct map_plan *p)
{
    char *vm = p->vm;
    if (vm != NULL) {
        if ((uintptr_t)vm & (rvm_page_size() - 1))
            return err_set(RVM_ERANGE, "rvm_map: vmaddr %p is not page aligned", (void *)vm);
        if (!map_vm_ok(vm, p->vmlen))
            return err_set(RVM_ERANGE,
                           "rvm_map: [%p, +%llu) is not allocated memory of this "
                           "process; pass NULL to let rvm_map allocate",
                           (void *)vm, (unsigned long long)p->vmlen);
        if (region_find_overlap(vm, p->vmlen) != NULL)
            return err_set(RVM_EVM_OVERLAP, "rvm_map: [%p, +%llu) overlaps a mapped region",
                           (void *)vm, (unsigned long long)p->vmlen);
    }
    for (size_t i = 0; i < engine.nregions; i++) {
        struct region *g = engine.regions[i];
        if (g->seg == p->s && p->off < g->off + g->len && g->off < p->off + p->len)
            return err_set(RVM_EOVERLAP,
                           "rvm_map: bytes [%llu, %llu) of segment %s are "
                           "already mapped",
                           (unsigned long long)p->off, (unsigned long long)p->end, p->dev);
    }
    return RVM_SUCCESS;
}

/* map_memory -- the region's memory holding the segment's bytes: a private mapping of the file
 * (rvm_map_private, or lazily when map_file_ok), else memory (allocated here if vm is NULL)
 * read from the file. On failure p->allocated says whether p->vm must be unmapped. */
static rvm_return_t map_memory(const rvm_region_t *region, struct map_plan *p)
{
    struct seg *s = p->s;
    p->priv = rvm_map_private ? 1 : 0;
    p->lazy = !p->priv && map_file_ok(region, s, p->vm, p->len, p->vmlen);
    p->allocated = 0;
    if (p->vm == NULL && (p->priv || p->lazy)) {
        /* one mmap of the file at an address the kernel picks: nothing is read now */
        p->vm = sysio.mmap(NULL, p->vmlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
                           s->fd, (off_t)p->off);
        if (p->vm == MAP_FAILED)
            return err_set(RVM_EIO,
                           "rvm_map: mmap(MAP_PRIVATE) of %llu bytes of segment %s "
                           "failed: %s",
                           (unsigned long long)p->vmlen, p->dev, strerror(errno));
        p->allocated = 1;
        p->priv = 1;
    } else if (p->vm == NULL) {
        p->vm = mmap(NULL, p->vmlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p->vm == MAP_FAILED)
            return err_set(RVM_ENO_MEMORY, "rvm_map: cannot allocate %llu bytes of VM",
                           (unsigned long long)p->vmlen);
        p->allocated = 1;
    } else if (p->priv) {
        /* MAP_NORESERVE: a writable private mapping is otherwise charged in full against the
         * overcommit limit, and a large sparse segment (the shim's 64 GiB heap reservation)
         * is refused; only the pages written become private copies */
        void *m = sysio.mmap(p->vm, p->vmlen, PROT_READ | PROT_WRITE,
                             MAP_FIXED | MAP_PRIVATE | MAP_NORESERVE, s->fd, (off_t)p->off);
        if (m == MAP_FAILED)
            return err_set(RVM_EIO, "rvm_map: mmap(MAP_PRIVATE) of segment %s failed: %s", p->dev,
                           strerror(errno));
    }
    if (!p->priv && !region->no_copy) {
        int e = full_pread(s->fd, p->vm, p->len, p->off);
        if (e > 0)
            return err_set(RVM_EIO, "rvm_map: reading segment %s failed: %s", p->dev, strerror(e));
    }
    return RVM_SUCCESS;
}

/* map_register -- the mapped region entered in the engine's table, kept sorted by address */
static rvm_return_t map_register(const rvm_region_t *region, const struct map_plan *p)
{
    struct region *g = calloc(1, sizeof(*g));
    if (g == NULL ||
        (engine.nregions == engine.regcap &&
         !(engine.regions =
               realloc(engine.regions, (engine.regcap = engine.regcap ? engine.regcap * 2 : 16) *
                                           sizeof(*engine.regions))))) {
        free(g);
        return err_set(RVM_ENO_MEMORY, "rvm_map: out of memory");
    }
    *g = (struct region){.seg = p->s,
                         .vmaddr = p->vm,
                         .len = p->len,
                         .vmlen = p->vmlen,
                         .off = p->off,
                         .allocated = p->allocated,
                         .priv = p->priv,
                         .lazy = p->lazy,
                         .copied = p->priv || !region->no_copy};
    size_t at = 0;
    while (at < engine.nregions && engine.regions[at]->vmaddr < p->vm)
        at++;
    memmove(engine.regions + at + 1, engine.regions + at,
            (engine.nregions - at) * sizeof(*engine.regions));
    engine.regions[at] = g;
    engine.nregions++;
    return RVM_SUCCESS;
}

/* map_locked -- rvm_map body; engine.mu held */
static rvm_return_t map_locked(rvm_region_t *region)
{
    struct log *lg = engine.log;
    struct map_plan p = {.dev = region->data_dev, .vm = region->vmaddr};
    rvm_return_t rc = seg_get(p.dev, region->dev_length.low, 0, &p.s);
    if (rc)
        return rc;
    if ((rc = log_add_segment(lg, p.s)) != RVM_SUCCESS)
        return rc;
    if ((rc = map_plan_range(region, &p)) != RVM_SUCCESS ||
        (rc = map_check_overlaps(&p)) != RVM_SUCCESS)
        return rc;
    /* committed updates of this segment still in the log (from an earlier mapping)
     * must reach the file before we read it */
    if ((rc = seg_settle(lg, p.s)) != RVM_SUCCESS)
        return rc;
    if ((rc = map_memory(region, &p)) != RVM_SUCCESS ||
        (rc = map_register(region, &p)) != RVM_SUCCESS) {
        if (p.allocated)
            munmap(p.vm, p.vmlen);
        return rc;
    }
    p.s->nmapped++;
    region->vmaddr = p.vm;
    region->length = p.len;
    region->offset = RVM_MK_OFFSET(0, p.off);
    return RVM_SUCCESS;
}

/* rvm_map -- map (part of) a segment into memory */
rvm_return_t rvm_map(rvm_region_t *region, rvm_options_t *options)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (region == NULL || region->struct_id != rvm_region_id)
        return RVM_EREGION;
    if (options != NULL) {
        if (options->struct_id != rvm_options_id)
            return RVM_EOPTIONS;
        if (options->pager != NULL)
            return err_set(RVM_EPAGER, "rvm_map: external pagers are not supported");
        rvm_return_t rc = rvm_opts_apply(options);
        if (rc)
            return rc;
    }
    if (region->data_dev == NULL)
        return err_set(RVM_EREGION, "rvm_map: region->data_dev is NULL");
    if (strlen(region->data_dev) > MAXPATHLEN - 1)
        return RVM_ENAME_TOO_LONG;
    if (engine.log == NULL)
        return err_set(RVM_ELOG, "rvm_map: no log; set options->log_dev in rvm_initialize "
                                 "or rvm_set_options");
    if (__atomic_load_n(&engine.sticky, __ATOMIC_ACQUIRE))
        return RVM_EIO;
    rvm_region_t save = *region;
    pthread_mutex_lock(&engine.mu);
    rvm_return_t rc = map_locked(region);
    pthread_mutex_unlock(&engine.mu);
    if (rc)
        *region = save;
    return rc;
}

/* rvm_unmap -- forget a mapping; the memory stays (the caller owns it) */
rvm_return_t rvm_unmap(rvm_region_t *region)
{
    if (!rvm_ready())
        return RVM_EINIT;
    if (region == NULL || region->struct_id != rvm_region_id)
        return RVM_EREGION;
    /* a tracked region: refused if it has uncommitted changes, else untracked (before
     * engine.mu: tracking takes its own lock first and then core's, in rvm_commit) */
    const struct engine_observer *obs = engine_observer();
    if (obs != NULL) {
        rvm_return_t trc = obs->before_unmap(region->vmaddr, region->length);
        if (trc != RVM_SUCCESS)
            return trc;
    }
    pthread_mutex_lock(&engine.mu);
    rvm_return_t rc = RVM_SUCCESS;
    size_t at = engine.nregions;
    for (size_t i = 0; i < engine.nregions; i++)
        if (engine.regions[i]->vmaddr == region->vmaddr)
            at = i;
    if (at == engine.nregions) {
        rc = region_find(region->vmaddr, 1) ? RVM_ERANGE : RVM_ENOT_MAPPED;
        goto out;
    }
    struct region *g = engine.regions[at];
    if (g->len != region->length && RVM_ROUND_LENGTH_UP_TO_PAGE_SIZE(region->length) != g->vmlen) {
        rc = err_set(RVM_ERANGE, "rvm_unmap: length %lu differs from the mapped %llu",
                     region->length, (unsigned long long)g->len);
        goto out;
    }
    for (struct txn *t = engine.open_txns; t != NULL; t = t->next)
        for (size_t k = 0; k < t->n; k++)
            if (t->r[k].rg == g) {
                rc = RVM_EUNCOMMIT;
                goto out;
            }
    if (engine.n_open > 0 && ngrave == gravecap) {
        size_t cap = gravecap ? gravecap * 2 : 16;
        struct region **p = realloc(graveyard, cap * sizeof(*p));
        if (p == NULL) {
            rc = RVM_ENO_MEMORY;
            goto out;
        }
        graveyard = p;
        gravecap = cap;
    }
    if (g->lazy && (rc = region_unfile(g)) != RVM_SUCCESS)
        goto out;
    memmove(engine.regions + at, engine.regions + at + 1,
            (engine.nregions - at - 1) * sizeof(*engine.regions));
    engine.nregions--;
    g->seg->nmapped--;
    __atomic_add_fetch(&engine.map_gen, 1, __ATOMIC_RELEASE);
    if (engine.n_open > 0) {
        /* a begun transaction may be inside rvm_set_range with g in its region cache
         * (checked against map_gen without engine.mu): free g only when none is open */
        graveyard[ngrave++] = g;
    } else {
        /* no transaction is begun and none can begin while we hold engine.mu; pooled ones
         * find their cached map_gen stale and never look at their cached pointer */
        free(g);
        for (size_t i = 0; i < ngrave; i++)
            free(graveyard[i]);
        ngrave = 0;
    }
out:
    pthread_mutex_unlock(&engine.mu);
    return rc;
}
