/* SPDX-License-Identifier: MIT */
/*
 * heap_check.c -- the consistency checker: walks the header, the chunk table and every chunk's
 * metadata and reports each violation of heap_format.h's VALIDITY rules, one line each.
 *
 * Because user data never shares a page with metadata, a buffer overflow reaches metadata
 * only by running off the end of a chunk's last block into the next chunk's descriptor pages;
 * the META canary and descriptor rules catch that, and allocation bits set anywhere but at
 * block starts catch wild writes into the records. Overflows from one user block into its
 * neighbour are not detected (there are no per-block canaries).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "heap_int.h"

struct checker {
    struct heap *h;
    heap_report_fn fn;
    void *arg;
    size_t n;
};

/* bad -- report one violation */
__attribute__((format(printf, 2, 3))) static void bad(struct checker *ck, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(buf, sizeof(buf), "check: ");
    vsnprintf(buf + k, sizeof(buf) - (size_t)k, fmt, ap);
    va_end(ap);
    ck->n++;
    if (ck->fn)
        ck->fn(ck->arg, buf);
    else
        heap_reportf(ck->h, "%s", buf);
}

/* check_header -- header fields and the chunk table */
static int check_header(struct checker *ck)
{
    struct heap *h = ck->h;
    const struct heap_header *hd = h->hdr;
    if (memcmp(hd->magic, HEAP_MAGIC, 8) != 0)
        bad(ck, "header magic is not LRVMHEAP");
    if (hd->version != HEAP_FORMAT_VERSION)
        bad(ck, "header version is %u, expected %u", hd->version, HEAP_FORMAT_VERSION);
    if (hd->checksum != heap_header_checksum(hd))
        bad(ck, "header checksum mismatch");
    if (hd->base != (uint64_t)(uintptr_t)h->base)
        bad(ck, "header base %#llx, mapped at %p", (unsigned long long)hd->base, (void *)h->base);
    if (hd->size % HEAP_CHUNK || hd->size < HEAP_CHUNK || hd->size > h->reserve ||
        hd->nchunks != hd->size / HEAP_CHUNK) {
        bad(ck, "header size %llu / nchunks %llu invalid", (unsigned long long)hd->size,
            (unsigned long long)hd->nchunks);
        return -1; /* cannot walk chunks safely */
    }
    if (hd->root && !((size_t)(hd->root - (uint64_t)(uintptr_t)h->base) < hd->size))
        bad(ck, "root pointer %#llx is outside the heap", (unsigned long long)hd->root);
    if (h->ct[0].kind != CK_HEADER)
        bad(ck, "chunk 0 is kind %u, expected HEADER", h->ct[0].kind);
    size_t nch = hd->nchunks, maxch = h->reserve / HEAP_CHUNK;
    for (size_t ci = 1; ci < nch; ci++) {
        uint32_t k = h->ct[ci].kind, kind = CK_KIND(k);
        if (kind == CK_HUGE) {
            size_t n = h->ct[ci].n;
            if (n == 0 || ci + n > nch) {
                bad(ck, "chunk %zu: huge block of %zu chunks runs past the heap size", ci, n);
                continue;
            }
            for (size_t i = 1; i < n; i++)
                if (h->ct[ci + i].kind != CK_HUGE_TAIL || h->ct[ci + i].n != i)
                    bad(ck, "chunk %zu: expected tail %zu of the huge block at chunk %zu", ci + i,
                        i, ci);
            ci += n - 1;
        } else if (kind == CK_HUGE_TAIL) {
            bad(ck, "chunk %zu: huge tail without its head", ci);
        } else if (kind == CK_FREE) {
            if (k & ~(CKF_ZERO | CKF_PUNCH | 0xffu))
                bad(ck, "chunk %zu: unknown flags %#x", ci, k);
        } else if (kind != CK_NORMAL) {
            bad(ck, "chunk %zu: kind %u is not valid below the heap size", ci, k);
        }
    }
    for (size_t ci = nch; ci < maxch; ci++)
        if (h->ct[ci].kind != CK_UNUSED || h->ct[ci].n)
            bad(ck, "chunk %zu is beyond the heap size but its table entry is not empty", ci);
    return 0;
}

/* bits_zero -- report allocation bits set in the records of pages [p, p+n) */
static void bits_zero(struct checker *ck, size_t ci, const struct heap_pdesc *pd, uint32_t p,
                      uint32_t n, const char *what)
{
    for (uint32_t i = p; i < p + n; i++)
        for (size_t w = 0; w < HEAP_BITS_PER_PAGE / 64; w++)
            if (pd[i].bits[w]) {
                bad(ck, "chunk %zu page %u: allocation bits set in %s (stray write into metadata?)",
                    ci, i, what);
                return;
            }
}

/* check_run -- a run's allocation bits are set only where its blocks start; in a live heap,
 * no block is both available and allocated and the free count matches the available bits */
static void check_run(struct checker *ck, size_t ci, const struct heap_pdesc *pd, uint32_t p)
{
    struct heap *h = ck->h;
    const struct heap_class *c = &heap_classes[pd[p].cls];
    uint32_t n = pd[p].npages, nset = 0, nused = 0, navail = 0;
    /* Work on a copy: under heap_lock_all other threads still set and clear allocation bits
   * (single atomic updates), and counting twice from live memory could disagree. */
    uint64_t bits[64 * (HEAP_BITS_PER_PAGE / 64)];
    for (uint32_t i = 0; i < n && i < 64; i++)
        for (size_t w = 0; w < HEAP_BITS_PER_PAGE / 64; w++) {
            bits[i * (HEAP_BITS_PER_PAGE / 64) + w] =
                __atomic_load_n(&pd[p + i].bits[w], __ATOMIC_RELAXED);
            nset += (uint32_t)__builtin_popcountll(bits[i * (HEAP_BITS_PER_PAGE / 64) + w]);
        }
    const uint64_t *av = heap_avail_of(h, ci) + (size_t)p * (HEAP_BITS_PER_PAGE / 64);
    for (uint32_t b = 0; b < c->nblocks; b++) {
        size_t g = ((size_t)b * c->size) / HEAP_GRANULE; /* granule from the run start */
        int used = (bits[g / 64] >> (g % 64)) & 1;
        nused += (uint32_t)used;
        if (h->live) {
            int avail = (av[b / 64] >> (b % 64)) & 1;
            navail += (uint32_t)avail;
            if (avail && used)
                bad(ck, "chunk %zu page %u: block %u both available and allocated", ci, p, b);
        }
    }
    if (nset != nused)
        bad(ck,
            "chunk %zu page %u: %u allocation bits set where no block of class %u starts "
            "(stray write into metadata?)",
            ci, p, nset - nused, pd[p].cls);
    if (h->live && navail != h->vp[ci * HEAP_CHUNK_PAGES + p].nfree)
        bad(ck, "chunk %zu page %u: run free count %u, available bits %u", ci, p,
            h->vp[ci * HEAP_CHUNK_PAGES + p].nfree, navail);
}

/* check_normal -- one NORMAL chunk: meta pages, span tiling, descriptors, allocation bits */
static void check_normal(struct checker *ck, size_t ci)
{
    struct heap *h = ck->h;
    const struct heap_pdesc *pd = heap_pdesc_of(h, ci);
    if (pd[0].aux != HEAP_META_CANARY)
        bad(ck,
            "chunk %zu: metadata canary is %#x, expected %#x (a block before this chunk "
            "overflowed into its metadata?)",
            ci, pd[0].aux, HEAP_META_CANARY);
    for (uint32_t i = 0; i < HEAP_META_PAGES; i++)
        if (pd[i].kind != PD_META || pd[i].npages != HEAP_META_PAGES || pd[i].back != i) {
            bad(ck, "chunk %zu: metadata descriptor %u overwritten", ci, i);
            break;
        }
    bits_zero(ck, ci, pd, 0, HEAP_META_PAGES, "metadata pages");
    int prev_free = 0;
    for (uint32_t p = HEAP_META_PAGES; p < HEAP_CHUNK_PAGES;) {
        const struct heap_pdesc *d = &pd[p];
        uint32_t n = d->npages;
        if (n == 0 || p + n > HEAP_CHUNK_PAGES) {
            bad(ck, "chunk %zu page %u: span of %u pages does not fit the chunk (kind %u)", ci, p,
                n, d->kind);
            return;
        }
        switch (d->kind) {
        case PD_FREE:
            if (prev_free)
                bad(ck, "chunk %zu page %u: free span not coalesced with the one before", ci, p);
            if (d->flags & ~(PDF_ZERO | PDF_CLEAN | PDF_PUNCH))
                bad(ck, "chunk %zu page %u: unknown free span flags %#x", ci, p, d->flags);
            if (n > 1 && (pd[p + n - 1].kind != PD_FREE_TAIL || pd[p + n - 1].back != n - 1 ||
                          pd[p + n - 1].npages != n))
                bad(ck, "chunk %zu page %u: free span of %u pages has a bad tail descriptor", ci, p,
                    n);
            bits_zero(ck, ci, pd, p, n, "free pages");
            break;
        case PD_LARGE:
        case PD_RUN:
            for (uint32_t i = 1; i < n; i++)
                if (pd[p + i].kind != PD_INTERIOR || pd[p + i].back != i ||
                    pd[p + i].aux != d->kind || (d->kind == PD_RUN && pd[p + i].cls != d->cls)) {
                    bad(ck,
                        "chunk %zu page %u: interior page %u of the block does not point back to "
                        "it",
                        ci, p, p + i);
                    break;
                }
            if (d->kind == PD_LARGE) {
                bits_zero(ck, ci, pd, p, n, "a large block");
                break;
            }
            if (d->cls >= HEAP_NCLASS || heap_classes[d->cls].npages != n) {
                bad(ck, "chunk %zu page %u: run of class %u has %u pages, class table says %u", ci,
                    p, d->cls, n, d->cls < HEAP_NCLASS ? heap_classes[d->cls].npages : 0);
                break;
            }
            check_run(ck, ci, pd, p);
            break;
        default:
            bad(ck, "chunk %zu page %u: descriptor kind %u is not a span head", ci, p, d->kind);
            return;
        }
        prev_free = d->kind == PD_FREE;
        p += n;
    }
}

int heap_check(struct heap *h, heap_report_fn fn, void *arg, size_t *nviolations)
{
    struct checker ck = {.h = h, .fn = fn, .arg = arg, .n = 0};
    if (check_header(&ck) == 0)
        for (size_t ci = 1; ci < h->hdr->nchunks; ci++)
            if (CK_KIND(h->ct[ci].kind) == CK_NORMAL)
                check_normal(&ck, ci);
    if (nviolations)
        *nviolations = ck.n;
    return ck.n ? HEAP_ECORRUPT : 0;
}

/* file_report -- heap_check_file's callback */
static void file_report(void *arg, const char *msg)
{
    fprintf((FILE *)arg, "%s\n", msg);
}

int heap_check_file(struct heap *h, FILE *out, size_t *nviolations)
{
    return heap_check(h, file_report, out, nviolations);
}
